/* SPDX-License-Identifier: MIT */
/* XEP-0313 queries of a user's own archive: who gets the results, and the range paging keeps. */
#include "sm/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

/* A user archive holds the ids of every Parley version (mam_id_valid's). */
static const mam_query_limits_t limits = {.page_default = SM_MAM_PAGE_DEFAULT,
                                          .page_max = SM_MAM_PAGE_MAX};

/* ---- a query in flight ---- */

typedef struct query_ctx {
    sm_mam_t *m;
    sm_user_t *u;
    char *full; /* the session that asked (owned): results go to it only */
    xml_stanza_t *reply; /* the iq result, without its payload yet */
    mam_query_t mq; /* the query as asked */
    storage_archive_query_t q; /* the page's query; its strings are mq's */
    int stage; /* the storage request in flight (query_stage_t) */
    /* Where after-id and before-id lie among the entries the filters match: the set is
     * [lo, hi) of those. */
    bool has_lo, has_hi;
    size_t lo, hi;
} query_ctx_t;

/* The storage requests of one query, in this order; each is made only when needed. */
typedef enum query_stage {
    STAGE_NONE = 0,
    STAGE_IDS, /* do the ids exist? (§4.1.3) */
    STAGE_LO, /* where is after-id? */
    STAGE_HI, /* where is before-id? */
    STAGE_PAGE, /* the page itself */
} query_stage_t;

static query_ctx_t *ctx_new(sm_mam_t *m, sm_pkt_t *pkt)
{
    query_ctx_t *c = core_calloc(1, sizeof(*c));
    c->m = m;
    c->u = pkt->user;
    c->reply = sm_iq_result(pkt->st);
    return c;
}

static void ctx_free(query_ctx_t *c)
{
    core_free(c->full);
    xml_stanza_unref(c->reply);
    mam_query_clear(&c->mq);
    core_free(c);
}

/* Ends a query that was submitted: the user is let go. */
static void ctx_done(query_ctx_t *c)
{
    sm_user_t *u = c->u;
    sm_mam_user_t *mu = sm_mam_user_get(c->m, u);
    mu->queries--;
    u->busy--;
    ctx_free(c);
    sm_user_release(u->sm, u);
}

static void answer_error(query_ctx_t *c, core_stanza_err_t cond)
{
    xml_stanza_make_error(c->reply, cond, NULL, false);
    sm_route(c->m->sm, c->reply);
}

/* ---- answering ---- */

/* §4.2: the result from the user's bare JID to the session that asked. */
static void send_item(query_ctx_t *c, sm_sess_t *sess, const char *bare,
                      const storage_archive_item_t *it)
{
    sm_t *sm = c->m->sm;
    const mam_results_t r = {.from = bare, .to = sess->jid.full, .queryid = c->mq.queryid};
    xml_stanza_t *msg;
    if (mam_result_new(&r, it, &msg) < 0)
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: archived message %s does not parse",
                 c->u->jid.full, it->id);
    sm_sess_send(sm, sess, msg);
    xml_stanza_unref(msg);
}

/*
 * The page as the store gave it, or cut to [lo, hi) when after-id or before-id bound the
 * set: positions then count from lo, and the page is complete when it reaches the bound in
 * the direction of paging.
 */
static mam_page_t page_of(const query_ctx_t *c, const storage_archive_result_t *res)
{
    mam_page_t p = mam_page_of(res);
    if (!c->has_lo && !c->has_hi)
        return p;
    size_t lo = c->has_lo ? c->lo : 0;
    size_t hi = c->has_hi ? c->hi : res->total;
    if (hi < lo)
        hi = lo;
    if (res->count > 0)
        p.complete = c->q.from_end ? res->first_index <= lo : res->first_index + res->count >= hi;
    /* Only a cursor outside the range (RSM's, §9) puts entries of the page outside it. */
    size_t skip = p.first_index < lo ? lo - p.first_index : 0;
    if (skip > p.count)
        skip = p.count;
    p.items += skip;
    p.count -= skip;
    p.first_index += skip;
    if (p.count > 0 && p.first_index + p.count > hi)
        p.count = hi > p.first_index ? hi - p.first_index : 0;
    p.first_index = p.first_index > lo ? p.first_index - lo : 0;
    p.total = hi - lo;
    return p;
}

/* §4.3: the page's results, then <fin/> with XEP-0059's <first/>, <last/> and <count/>. */
static void send_page(query_ctx_t *c, const storage_archive_result_t *res)
{
    sm_sess_t *sess = sm_session_by_resource(c->u, c->full);
    if (sess == NULL)
        return; /* the session is gone: nobody to page for */
    mam_page_t p = page_of(c, res);
    char *bare = core_strndup(c->u->jid.full, c->u->jid.bare_len);
    for (size_t i = 0; i < p.count; i++)
        send_item(c, sess, bare, &p.items[c->mq.flip ? p.count - 1 - i : i]);
    core_free(bare);
    mam_fin_add(c->reply, &p);
    sm_route(c->m->sm, c->reply);
}

static void next_step(query_ctx_t *c);

/* Takes in what one step learnt; true when the query goes on with the next one. */
static bool step_done(query_ctx_t *c, const storage_archive_result_t *res)
{
    switch (c->stage) {
    case STAGE_IDS:
        if (res->total < c->mq.nids) {
            answer_error(c, CORE_STANZA_ERR_ITEM_NOT_FOUND); /* §4.1.3: one is unknown */
            return false;
        }
        return true;
    case STAGE_LO:
        /* The first entry after after-id is the set's first; none: the set is empty. */
        c->has_lo = true;
        c->lo = res->count > 0 ? res->first_index : res->total;
        return true;
    case STAGE_HI:
        /* The last entry before before-id is the set's last. */
        c->has_hi = true;
        c->hi = res->count > 0 ? res->first_index + 1 : 0;
        return true;
    default:
        send_page(c, res);
        return false;
    }
}

static void on_step(void *arg, int status, const storage_archive_result_t *res)
{
    query_ctx_t *c = arg;
    sm_t *sm = c->m->sm;
    if (sm->stopping) {
        ctx_done(c);
        return;
    }
    if (status == -ENOMSG) {
        /* §4.1.3 and §4.3.2: an after-id, before-id, <after/> or <before/> that is not there. */
        answer_error(c, CORE_STANZA_ERR_ITEM_NOT_FOUND);
    } else if (status < 0) {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: archive query failed: %s", c->u->jid.full,
                 strerror(-status));
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    } else if (step_done(c, res)) {
        next_step(c);
        return;
    }
    ctx_done(c);
}

/* Submits the next storage request the query needs (query_stage_t). */
static void next_step(query_ctx_t *c)
{
    /* The filters of the page, for the places of its bounds. */
    storage_archive_query_t q = mam_query_filters(&c->mq);
    q.max = 1;
    q.from_end = false;
    for (;;) {
        c->stage++;
        if (c->stage == STAGE_IDS && c->mq.nids > 0) {
            q = (storage_archive_query_t){.ids = c->q.ids, .nids = c->q.nids};
            break;
        }
        if (c->stage == STAGE_LO && c->mq.after_id != NULL) {
            q.after_id = c->mq.after_id;
            break;
        }
        if (c->stage == STAGE_HI && c->mq.before_id != NULL) {
            q.before_id = c->mq.before_id;
            q.from_end = true;
            break;
        }
        if (c->stage == STAGE_PAGE) {
            q = c->q;
            break;
        }
    }
    if (storage_archive_query(c->m->sm->store, c->u->node, &q, on_step, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}

/* Takes a query slot of the user; false (and resource-constraint answered) when none is free. */
static bool begin(sm_mam_t *m, sm_pkt_t *pkt)
{
    sm_mam_user_t *mu = sm_mam_user_get(m, pkt->user);
    if (mu->queries >= SM_MAM_QUERIES_MAX) {
        sm_reply_error(m->sm, pkt->st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT);
        return false;
    }
    mu->queries++;
    pkt->user->busy++;
    /* What was archived until now is in the store before the query runs (same queue). */
    storage_archive_writer_flush(m->writer);
    return true;
}

void sm_mam_query_run(sm_mam_t *m, sm_pkt_t *pkt)
{
    query_ctx_t *c = ctx_new(m, pkt);
    c->full = core_strdup(pkt->sess->jid.full);
    core_stanza_err_t cond;
    if (mam_query_parse(&c->mq, &limits, m->sm->jids, pkt->payload, &cond) < 0) {
        answer_error(c, cond);
        ctx_free(c);
        return;
    }
    c->q = mam_query_filters(&c->mq);
    /*
     * §9: RSM's cursors page within the range after-id and before-id give. The page query
     * takes the cursor where there is one, the bound otherwise; the bounds' places (STAGE_LO,
     * STAGE_HI) keep the page, its count and its index within the range.
     */
    c->q.after_id = c->mq.rsm_after != NULL ? c->mq.rsm_after : c->mq.after_id;
    c->q.before_id = c->mq.rsm_before != NULL ? c->mq.rsm_before : c->mq.before_id;
    if (!begin(m, pkt)) {
        ctx_free(c);
        return;
    }
    next_step(c);
}

void sm_mam_query_form(sm_mam_t *m, sm_pkt_t *pkt)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    mam_form_add(r);
    sm_route(m->sm, r);
    xml_stanza_unref(r);
}

/* ---- metadata (§5): the first and the last entry, one query each ---- */

static void on_meta(void *arg, int status, const storage_archive_result_t *res)
{
    query_ctx_t *c = arg;
    sm_t *sm = c->m->sm;
    if (sm->stopping) {
        ctx_done(c);
        return;
    }
    if (status < 0) {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: archive metadata failed: %s", c->u->jid.full,
                 strerror(-status));
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
        return;
    }
    bool last = c->q.from_end;
    mam_metadata_bound_add(c->reply, last, res);
    if (last || res->count == 0) {
        sm_route(sm, c->reply);
        ctx_done(c);
        return;
    }
    c->q.from_end = true;
    if (storage_archive_query(sm->store, c->u->node, &c->q, on_meta, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}

void sm_mam_metadata_get(sm_mam_t *m, sm_pkt_t *pkt)
{
    if (!begin(m, pkt))
        return;
    query_ctx_t *c = ctx_new(m, pkt);
    mam_metadata_add(c->reply);
    c->q.max = 1;
    if (storage_archive_query(m->sm->store, c->u->node, &c->q, on_meta, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}
