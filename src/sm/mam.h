/* SPDX-License-Identifier: MIT */
/* The message archive (XEP-0313): what mod_mam.c (archiving) and mam_query.c (queries) share. */
#ifndef PARLEY_SM_MAM_H
#define PARLEY_SM_MAM_H

#include "mam/mam.h"
#include "sm/internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define SM_NS_SID "urn:xmpp:sid:0"

/* XEP-0059 pages: what a query without <max/> gets, and the most one may ask for. */
#define SM_MAM_PAGE_DEFAULT 50
#define SM_MAM_PAGE_MAX 250
/* Queries (and metadata requests) of one user in flight at once; more: resource-constraint. */
#define SM_MAM_QUERIES_MAX 4
/* JIDs in each of the <always/> and <never/> lists (XEP-0441); more: policy-violation. */
#define SM_MAM_PREFS_JIDS_MAX 1000

/* XEP-0441 §2.1.1: the 'default' of the preferences; the order of [sm] archive_default. */
typedef enum sm_mam_default {
    SM_MAM_DEFAULT_ALWAYS = 0,
    SM_MAM_DEFAULT_NEVER,
    SM_MAM_DEFAULT_ROSTER,
} sm_mam_default_t;

/* One listed JID of the preferences: prepared; with a resource it matches only itself. */
typedef struct sm_mam_pref_jid {
    char *jid; /* owned */
    size_t len;
    bool full;
} sm_mam_pref_jid_t;

typedef struct sm_mam_prefs {
    sm_mam_default_t def;
    sm_mam_pref_jid_t *always;
    size_t nalways;
    sm_mam_pref_jid_t *never;
    size_t nnever;
} sm_mam_prefs_t;

/* A user's slot: made when first needed (most users never have one). */
typedef struct sm_mam_user {
    bool has_prefs; /* prefs were set or loaded; otherwise [sm] archive_default applies */
    sm_mam_prefs_t prefs;
    unsigned queries; /* queries and metadata requests in flight */
    bool expired; /* retention ([sm] archive_expiry) applied since the user was loaded */
} sm_mam_user_t;

/* The module's state (mod->data). */
typedef struct sm_mam {
    sm_t *sm;
    unsigned slot;
    storage_archive_writer_t *writer; /* archives by group commit */
} sm_mam_t;

/* mod_mam.c */
/* The user's slot, made if it has none. */
sm_mam_user_t *sm_mam_user_get(sm_mam_t *m, sm_user_t *u);

/* mam_query.c: the IQs of XEP-0313 for the user's own archive (pkt from one of its sessions). */
/* §4.1.5 (iq get <query/>): the fields a query may use. */
void sm_mam_query_form(sm_mam_t *m, sm_pkt_t *pkt);
/* §4 (iq set <query/>): the matching messages, then the <fin/>. */
void sm_mam_query_run(sm_mam_t *m, sm_pkt_t *pkt);
/* §5 (iq get <metadata/>): the first and last entries of the archive. */
void sm_mam_metadata_get(sm_mam_t *m, sm_pkt_t *pkt);

#endif
