/* SPDX-License-Identifier: MIT */
/* The room archive (XEP-0313 on rooms): what mam.c (archiving) and mam_query.c (queries) share. */
#ifndef PARLEY_MUC_MAM_H
#define PARLEY_MUC_MAM_H

#include "mam/mam.h"
#include "muc/internal.h"

#include <stdbool.h>
#include <stdint.h>

#define MUC_NS_MAM MAM_NS
#define MUC_NS_MAM_EXTENDED MAM_NS_EXTENDED
#define MUC_NS_RSM MAM_NS_RSM
#define MUC_NS_FORWARD MAM_NS_FORWARD

/* XEP-0059 pages: what a query without <max/> gets, and the most one may ask for. */
#define MUC_MAM_PAGE_DEFAULT 50
#define MUC_MAM_PAGE_MAX 250
/* Queries (and metadata requests) of the whole service in flight; more: resource-constraint. */
#define MUC_MAM_QUERIES_MAX 64

/* The [muc] room_archiving policy: which new rooms archive (muc#roomconfig_enablearchiving). */
typedef enum muc_mam_policy {
    MUC_MAM_PUBLIC = 0, /* public rooms (muc#roomconfig_publicroom) */
    MUC_MAM_ALWAYS,
    MUC_MAM_NEVER,
} muc_mam_policy_t;

typedef struct muc_mam muc_mam_t;

/* The archive state of the service; muc->store may be NULL (then nothing archives). */
muc_mam_t *muc_mam_new(muc_t *muc);
/* Hands what waits to the store (muc_stop: the store closes right after). */
void muc_mam_stop(muc_mam_t *mm);
void muc_mam_free(muc_mam_t *mm);

/* True if the room archives now: it is configured to and the service has a store. */
bool muc_mam_enabled(const muc_room_t *room);

/*
 * XEP-0313 §6.1.2 (business rules, MUC archives): a message with a <body/>, a subject change
 * (a <subject/> without a body), or a XEP-0334 <store/> hint; never one with <no-store/> or
 * <no-permanent-store/>. st: the message as the room reflects it.
 */
bool muc_mam_archivable(const xml_stanza_t *st);

/*
 * What the archive keeps of base (the message as reflected, without 'to' or the room's
 * stanza-id): a copy without any muc#user <x/> the sender wrote (§10.2, spoofing), with the
 * room's own <x><item jid affiliation role/></x> naming the sender's real JID (full), so that
 * those who may see it get it from the archive (§6.1.2). A new stanza.
 */
xml_stanza_t *muc_mam_entry_make(const xml_stanza_t *base, const char *real_jid, const char *affil,
                                 const char *role);

/*
 * Adds the archived message entry (parsed from the store) under fwd in msg, without its
 * muc#user <x/> when the reader may not see real JIDs (semi-anonymous rooms, XEP-0045 §7.2.3).
 */
void muc_mam_entry_add(xml_stanza_t *msg, xml_node_t *fwd, const xml_node_t *entry, bool sees_jids);

/*
 * Archives a groupchat message of occupant o in its room, if the room archives and the
 * message is archivable. base: the reflected message (no 'to', no stanza-id by the room).
 * Writes the entry's id (the room's XEP-0359 stanza-id for it) into id and returns true, or
 * returns false (not archived: the store is behind, or the message is not kept). Never waits:
 * the entry goes to the store at the end of the loop iteration (group commit).
 */
bool muc_mam_archive(muc_room_t *room, const muc_occupant_t *o, const xml_stanza_t *base,
                     char id[STORAGE_ARCHIVE_ID_LEN + 1]);

/* Removes the room's archive (a destroyed room, a temporary room that vanished). */
void muc_mam_forget(muc_room_t *room);

/* The room's disco#info features of the archive (XEP-0313 §7), when it archives. */
void muc_mam_disco(xml_stanza_t *r, xml_node_t *q, const muc_room_t *room);

/* ---- queries (mam_query.c) ---- */

/*
 * A query (iq set <query xmlns='urn:xmpp:mam:2'/>) as a room archive runs it: what
 * mam_query_parse read, with the room's rule for two cursors in one direction. Strings owned.
 */
typedef struct muc_mam_query {
    char *queryid; /* or NULL */
    bool flip; /* #extended <flip-page/>: the page newest first (§4.3.4) */
    char *with; /* prepared occupant JID (or bare room JID), or NULL */
    storage_archive_query_t q; /* the page's request; its strings point at the fields here */
    char *after, *before; /* the tighter of the form's after-id/before-id and RSM's cursors */
    char **ids; /* #extended 'ids' */
    size_t nids;
    char **check; /* ids that must exist in the archive (§4.1.3), distinct and sorted */
    size_t ncheck;
} muc_mam_query_t;

/* What muc_mam_query_parse returns when all is well; otherwise a core_stanza_err_t. */
#define MUC_MAM_OK (-1)

/*
 * Parses query (the <query/> element) into q (zeroed by the caller) with mam_query_parse and
 * the room archive's limits: its ids are all storage_archive_id_format's (room archives began
 * at schema 6), so any other id is item-not-found. Returns MUC_MAM_OK or the stanza error to
 * answer with. Clear q with muc_mam_query_clear either way.
 */
int muc_mam_query_parse(muc_mam_query_t *q, jid_cache_t *jids, const xml_node_t *query);
void muc_mam_query_clear(muc_mam_query_t *q);

/*
 * Who may read the room's archive (XEP-0313 §6.1.2: whoever may enter it now): not outcasts;
 * in members-only rooms only members, admins and owners; in password-protected ones, besides
 * those, only occupants (who gave the password). *sees_jids: whether the reader may see real
 * JIDs (non-anonymous rooms; moderators, admins and owners otherwise).
 */
bool muc_mam_may_read(const muc_room_t *room, const jid_t *from, bool *sees_jids);

/* An iq in urn:xmpp:mam:2 to a room (query form get, query set, metadata get). */
void muc_mam_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from);

/* Queries in flight (mam.c keeps the count: one per service). */
unsigned *muc_mam_queries(muc_mam_t *mm);
/* Sends the waiting entries to the store now, so that a query submitted next sees them. */
void muc_mam_flush(muc_mam_t *mm);

/* mam_stamp_format and mam_stamp_parse, under the names the room archive's tests use. */
static inline void muc_mam_stamp_format(int64_t us, char out[MAM_STAMP_SIZE])
{
    mam_stamp_format(us, out);
}
static inline int muc_mam_stamp_parse(const char *s, int64_t *out)
{
    return mam_stamp_parse(s, out);
}

#endif
