/* SPDX-License-Identifier: MIT */
/* The message archive (XEP-0313): what mod_mam.c (archiving) and mam_query.c (queries) share. */
#ifndef PARLEY_SM_MAM_H
#define PARLEY_SM_MAM_H

#include "sm/internal.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define MAM_NS "urn:xmpp:mam:2"
#define MAM_NS_EXTENDED "urn:xmpp:mam:2#extended"
#define MAM_NS_SID "urn:xmpp:sid:0"
#define MAM_NS_RSM "http://jabber.org/protocol/rsm"
#define MAM_NS_FORWARD "urn:xmpp:forward:0"
#define MAM_NS_DATA "jabber:x:data"

/* XEP-0059 pages: what a query without <max/> gets, and the most one may ask for. */
#define MAM_PAGE_DEFAULT 50
#define MAM_PAGE_MAX 250
/* Queries (and metadata requests) of one user in flight at once; more: resource-constraint. */
#define MAM_QUERIES_MAX 4
/* JIDs in each of the <always/> and <never/> lists (XEP-0441); more: policy-violation. */
#define MAM_PREFS_JIDS_MAX 1000

/* XEP-0441 §2.1.1: the 'default' of the preferences; the order of [sm] archive_default. */
typedef enum mam_default {
    MAM_DEFAULT_ALWAYS = 0,
    MAM_DEFAULT_NEVER,
    MAM_DEFAULT_ROSTER,
} mam_default_t;

/* One listed JID of the preferences: prepared; with a resource it matches only itself. */
typedef struct mam_pref_jid {
    char *jid; /* owned */
    size_t len;
    bool full;
} mam_pref_jid_t;

typedef struct mam_prefs {
    mam_default_t def;
    mam_pref_jid_t *always;
    size_t nalways;
    mam_pref_jid_t *never;
    size_t nnever;
} mam_prefs_t;

/* A user's slot: made when first needed (most users never have one). */
typedef struct mam_user {
    bool has_prefs; /* prefs were set or loaded; otherwise [sm] archive_default applies */
    mam_prefs_t prefs;
    unsigned queries; /* queries and metadata requests in flight */
    bool expired; /* retention ([sm] archive_expiry) applied since the user was loaded */
} mam_user_t;

/* The module's state (mod->data). */
typedef struct mam {
    sm_t *sm;
    unsigned slot;
    storage_archive_writer_t *writer; /* archives by group commit */
} mam_t;

/* mod_mam.c */
/* The user's slot, made if it has none. */
mam_user_t *mam_user_get(mam_t *m, sm_user_t *u);

/* mam_query.c: the IQs of XEP-0313 for the user's own archive (pkt from one of its sessions). */
/* §4.1.5 (iq get <query/>): the fields a query may use. */
void mam_query_form(mam_t *m, sm_pkt_t *pkt);
/* §4 (iq set <query/>): the matching messages, then the <fin/>. */
void mam_query_run(mam_t *m, sm_pkt_t *pkt);
/* §5 (iq get <metadata/>): the first and last entries of the archive. */
void mam_metadata_get(mam_t *m, sm_pkt_t *pkt);
/* XEP-0082 DateTime in UTC with microseconds into out (at least 32 bytes). */
void mam_stamp_format(int64_t us, char *out, size_t outlen);

#endif
