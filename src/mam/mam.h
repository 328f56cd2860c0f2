/* SPDX-License-Identifier: MIT */
/* The XEP-0313 protocol both archives speak (sm: users', muc: rooms'): queries and answers. */
#ifndef PARLEY_MAM_MAM_H
#define PARLEY_MAM_MAM_H

#include "core/xmpp_error.h"
#include "jid/jid.h"
#include "storage/storage.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAM_NS "urn:xmpp:mam:2"
#define MAM_NS_EXTENDED "urn:xmpp:mam:2#extended"
#define MAM_NS_RSM "http://jabber.org/protocol/rsm"
#define MAM_NS_FORWARD "urn:xmpp:forward:0"
#define MAM_NS_DATA "jabber:x:data"
#define MAM_NS_DELAY "urn:xmpp:delay"

/* ---- XEP-0082 DateTime (stamp.c) ---- */

/* Bytes mam_stamp_format writes at most, with the NUL. */
#define MAM_STAMP_SIZE 32

/* us (microseconds since the epoch) as a UTC DateTime with microseconds, "…ss.uuuuuuZ". */
void mam_stamp_format(int64_t us, char out[MAM_STAMP_SIZE]);
/*
 * XEP-0082 §3.2 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD Z or ±hh:mm) to microseconds since
 * the epoch; digits of the fraction beyond six are dropped. 0, or -EINVAL for anything else
 * (an impossible date included).
 */
int mam_stamp_parse(const char *s, int64_t *us);

/* ---- queries (query.c) ---- */

/* What differs between archives when a query is read. */
typedef struct mam_query_limits {
    size_t page_default; /* entries of a page without XEP-0059 <max/> */
    size_t page_max; /* a larger <max/> is cut to this (XEP-0059 §2.1) */
    /*
     * Whether id could name an entry of this archive; any other id names none, so a query
     * giving it is answered item-not-found (§4.1.3, §4.3.2). NULL: mam_id_valid.
     */
    bool (*id_valid)(const char *id);
} mam_query_limits_t;

/* An <iq type='set'><query xmlns='urn:xmpp:mam:2'/></iq>, read. Every string is owned. */
typedef struct mam_query {
    char *queryid; /* or NULL */
    bool flip; /* #extended <flip-page/>: send the page newest first (§4.3.4) */
    char *with; /* the 'with' field as a prepared JID (§4.1.1), or NULL */
    bool has_start, has_end; /* the 'start' and 'end' fields (§4.1.2) */
    int64_t start_us, end_us;
    char *after_id, *before_id; /* #extended 'after-id', 'before-id' (§4.1.3), or NULL */
    char *rsm_after; /* XEP-0059 <after/>, or NULL */
    char *rsm_before; /* XEP-0059 <before/> with an id, or NULL */
    bool from_end; /* a <before/>, empty or not: the page is the last one (XEP-0059 §2.5) */
    size_t max; /* XEP-0059 <max/>, cut to the limits, or their default */
    char **ids; /* #extended 'ids' (§4.1.3): sorted, without repeats */
    size_t nids;
} mam_query_t;

/*
 * Reads query (the <query/> element, borrowed) into q (zeroed by the caller): the XEP-0004
 * form (FORM_TYPE, with, start, end, after-id, before-id, ids, §4.1), XEP-0059 <set/> (max,
 * after, before; <index/> is refused) and <flip-page/>. jids prepares 'with' (may be NULL).
 * Returns 0, or -EINVAL when the query is refused: *cond is then the stanza error to answer
 * (bad-request, item-not-found, feature-not-implemented, policy-violation). Clear q with
 * mam_query_clear either way.
 */
int mam_query_parse(mam_query_t *q, const mam_query_limits_t *lim, jid_cache_t *jids,
                    const xml_node_t *query, core_stanza_err_t *cond);
void mam_query_clear(mam_query_t *q);

/*
 * The store's request for q's filters: with, start, end, ids, max and from_end (strings
 * borrowed from q). No cursor: where after-id, before-id and RSM's cursors go is each
 * archive's rule.
 */
storage_archive_query_t mam_query_filters(const mam_query_t *q);

/*
 * Ids as a store keeps them (STORAGE_ARCHIVE_ID_MAX bytes of [A-Za-z0-9_-], see
 * storage/storage.h): any other text names no entry.
 */
bool mam_id_valid(const char *id);

/* ---- answers (result.c) ---- */

/*
 * Adds the archived message entry (parsed from the store, borrowed) under the <forwarded/>
 * fwd of msg; for an archive that shows readers less than it keeps.
 */
typedef void (*mam_entry_add_fn)(void *arg, xml_stanza_t *msg, xml_node_t *fwd,
                                 const xml_node_t *entry);

/* How the results of one query are made (all borrowed). */
typedef struct mam_results {
    const char *from; /* the archive's JID */
    const char *to; /* the full JID that asked: results go there only */
    const char *queryid; /* or NULL */
    mam_entry_add_fn add; /* NULL: the entry is copied as it is */
    void *arg;
} mam_results_t;

/*
 * §4.2: the result message of the archived item it, <message from to><result queryid id>
 * <forwarded xmlns='urn:xmpp:forward:0'><delay stamp/>(the message)</forwarded></result>,
 * into *out (a new stanza, unsent). Returns 0, or -EBADMSG when the stored bytes do not
 * parse: *out then carries no message (§3.2 allows it; its id and stamp keep the archive
 * whole), and the caller logs it.
 */
int mam_result_new(const mam_results_t *r, const storage_archive_item_t *it, xml_stanza_t **out);

/* A page as the <fin/> tells it (XEP-0313 §4.3, XEP-0059 §2). Borrowed items. */
typedef struct mam_page {
    const storage_archive_item_t *items; /* archive order */
    size_t count;
    size_t first_index; /* of items[0] in the set */
    size_t total; /* the set's size */
    bool complete; /* no entry of the set lies beyond the page in the direction of paging */
} mam_page_t;

/* The page of the store's result as it is. */
mam_page_t mam_page_of(const storage_archive_result_t *res);

/*
 * Adds to reply (the iq result) <fin complete?><set><first index/><last/><count/></set></fin>:
 * first and last in archive order, whether or not the page was sent flipped (§4.3.4).
 */
void mam_fin_add(xml_stanza_t *reply, const mam_page_t *p);

/* §4.1.5: adds to reply (the iq result) the <query/> with the form of the fields we know. */
void mam_form_add(xml_stanza_t *reply);

/* §5: adds to reply (the iq result) an empty <metadata/>, for the bounds below. */
void mam_metadata_add(xml_stanza_t *reply);
/*
 * §5: adds <start/> (end false) or <end/> with the id and timestamp of res's first item to
 * reply's <metadata/>; nothing when res has none (an empty archive has an empty <metadata/>).
 */
void mam_metadata_bound_add(xml_stanza_t *reply, bool end, const storage_archive_result_t *res);

#endif
