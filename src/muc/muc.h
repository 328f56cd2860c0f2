/* SPDX-License-Identifier: MIT */
/* The multi-user chat component (XEP-0045): rooms at one service domain, over a router link. */
#ifndef PARLEY_MUC_H
#define PARLEY_MUC_H

#include "core/config.h"
#include "core/log.h"
#include "link/link.h"
#include "storage/storage.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Who may create rooms ([muc] create). */
typedef enum muc_create_policy {
    MUC_CREATE_EVERYONE = 0,
    MUC_CREATE_LOCAL, /* users of local_domains */
    MUC_CREATE_ADMINS, /* only the JIDs in admins */
} muc_create_policy_t;

/* How a room handles registration requests from those who are not members ([muc] registration,
 * XEP-0045 §7.10, §9.9). */
typedef enum muc_reg_policy {
    MUC_REG_OPEN = 0, /* register at once; members-only rooms refuse (membership is the admins') */
    MUC_REG_APPROVAL, /* kept pending until a room admin or owner approves it (§9.9) */
    MUC_REG_CLOSED, /* refused: only admins add members */
} muc_reg_policy_t;

/* [muc] */
typedef struct muc_config {
    char *name; /* the service domain, e.g. conference.localhost (its link name) */
    int create; /* muc_create_policy_t */
    core_cfg_list_t local_domains; /* the server's own domains; empty: name minus its first label */
    core_cfg_list_t admins; /* service admins (bare JIDs): may always create, own every room */
    int64_t max_rooms; /* rooms the service holds at once */
    int64_t max_rooms_per_user; /* rooms one bare JID may have created that still exist */
    int64_t max_occupants; /* occupants of one room, whatever its maxusers says */
    uint64_t max_message_size; /* serialised bytes of one message to a room or occupant */
    int64_t
        history_default; /* messages of discussion history a new room keeps (XEP-0045 §7.2.15) */
    int64_t history_max; /* the most a room owner may set */
    /* room defaults, for rooms created instantly (XEP-0045 §10.1.2) */
    bool room_public;
    bool room_persistent;
    int room_whois; /* 0 moderators (semi-anonymous), 1 anyone (non-anonymous) */
    int64_t room_maxusers;
    bool room_changesubject;
    int room_allowpm; /* anyone, participants, moderators, none */
    int room_archiving; /* which new rooms archive (XEP-0313): public, always, never */
    uint64_t voice_request_interval; /* ms an occupant waits between voice requests */
    int registration; /* muc_reg_policy_t */
    int64_t registration_pending; /* requests one room keeps waiting for approval */
} muc_config_t;

extern const core_cfg_section_t muc_cfg_section;

typedef struct muc muc_t;

/*
 * Builds the component from cfg's [muc] section (borrowed; must outlive it). loop, log,
 * opener and store are borrowed and must outlive it; store may be NULL (rooms are then kept
 * in memory only). Returns 0 and *out, or -EINVAL (no [muc] section: logged).
 */
int muc_new(uv_loop_t *loop, const core_log_t *log, const core_cfg_t *cfg,
            const link_opener_t *opener, storage_t *store, muc_t **out);

/* Opens the link to the router. Returns 0 or -ENOTCONN (logged). */
int muc_start(muc_t *muc);

/*
 * Tells every occupant of every room that the service is going away (unavailable presence
 * with status 332, XEP-0045 §9.2), then closes the link once those have been handed to it
 * (on the next loop iteration). Idempotent.
 */
void muc_stop(muc_t *muc);

/* Frees everything; call after muc_stop once the loop has run (no callback can run). */
void muc_free(muc_t *muc);

#endif
