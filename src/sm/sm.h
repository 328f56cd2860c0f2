/* SPDX-License-Identifier: MIT */
/* The session manager: sessions, rosters, presence and delivery for one domain's users. */
#ifndef PARLEY_SM_H
#define PARLEY_SM_H

#include "core/config.h"
#include "core/log.h"
#include "link/link.h"
#include "storage/storage.h"

#include <stdint.h>
#include <uv.h>

/* [sm] */
typedef struct sm_config {
    char *domain; /* the domain whose users this sm serves (its link name) */
    char *name; /* a shard's own name (docs/link-protocol.md "Shards"), or NULL */
    int64_t offline_max; /* messages kept per offline user */
    uint64_t vcard_max_size; /* bytes of one user's vCard (XEP-0054) */
    core_cfg_list_t disable; /* modules switched off, by name */
    int archive_default; /* XEP-0441 default of users without preferences: always, never, roster */
    char *archive_expiry; /* "forever", or days archived messages are kept */
    int64_t archive_expiry_days; /* archive_expiry parsed; -1: forever */
} sm_config_t;

extern const core_cfg_section_t sm_cfg_section;

typedef struct sm sm_t;

/*
 * Builds an sm from cfg's [sm] section (borrowed; must outlive the sm). loop, log, opener
 * and store are borrowed and must outlive the sm. Returns 0 and *out, or -EINVAL (no [sm]
 * section, an unknown module to disable: logged).
 */
int sm_new(uv_loop_t *loop, const core_log_t *log, const core_cfg_t *cfg,
           const link_opener_t *opener, storage_t *store, sm_t **out);

/* Opens the link to the router. Returns 0 or a negative error (logged). */
int sm_start(sm_t *sm);

/* Ends every session (the c2s instances are told kick with system-shutdown) and closes the
 * link. Storage requests in flight still complete; free once the loop has run them. */
void sm_stop(sm_t *sm);

/* Frees the sm; call after sm_stop once the store is closed (no callback can run). */
void sm_free(sm_t *sm);

#endif
