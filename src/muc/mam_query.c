/* SPDX-License-Identifier: MIT */
/* Queries of a room's archive (XEP-0313 on rooms): access, cursors, who sees what, and where. */
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing: the room archive's rules over mam_query_parse ---- */

/* The key of one of our ids; room archives hold no other kind (they began at schema 6). */
static bool id_key(const char *id, int64_t *key)
{
    uint64_t nonce;
    return strlen(id) == STORAGE_ARCHIVE_ID_LEN && storage_archive_id_parse(id, key, &nonce) == 0;
}

static bool room_id_valid(const char *id)
{
    int64_t key;
    return id_key(id, &key);
}

static const mam_query_limits_t limits = {
    .page_default = MUC_MAM_PAGE_DEFAULT, .page_max = MUC_MAM_PAGE_MAX, .id_valid = room_id_valid};

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_free(v[i]);
    core_free(v);
}

/* Appends s to v (the string taken). */
static void strv_take(char ***v, size_t *n, char *s)
{
    *v = core_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = s;
}

void muc_mam_query_clear(muc_mam_query_t *q)
{
    core_free(q->queryid);
    core_free(q->with);
    core_free(q->after);
    core_free(q->before);
    strv_free(q->ids, q->nids);
    strv_free(q->check, q->ncheck);
    memset(q, 0, sizeof(*q));
}

/*
 * Of the form's cursor and RSM's in one direction (both taken, either NULL), the tighter
 * bounds the page and the other only has to exist (§4.1.3; §9 leaves the pair to us):
 * later: for 'after', the later of the two is tighter; for 'before', the earlier.
 */
static char *cursor_pick(muc_mam_query_t *q, char *form, char *rsm, bool later)
{
    if (form == NULL || rsm == NULL)
        return form != NULL ? form : rsm;
    int64_t kf = 0, kr = 0;
    id_key(form, &kf);
    id_key(rsm, &kr);
    bool tighter = later ? kr > kf : kr < kf;
    strv_take(&q->check, &q->ncheck, tighter ? form : rsm);
    return tighter ? rsm : form;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted, without repeats: the store's count of them then says whether all exist. */
static void distinct(char **v, size_t *n)
{
    if (*n == 0)
        return;
    qsort(v, *n, sizeof(*v), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w > 0 && strcmp(v[w - 1], v[i]) == 0)
            core_free(v[i]);
        else
            v[w++] = v[i];
    }
    *n = w;
}

int muc_mam_query_parse(muc_mam_query_t *q, jid_cache_t *jids, const xml_node_t *query)
{
    mam_query_t mq = {0};
    core_stanza_err_t cond;
    if (mam_query_parse(&mq, &limits, jids, query, &cond) < 0) {
        mam_query_clear(&mq);
        return (int)cond;
    }
    q->q = mam_query_filters(&mq);
    /* What mq owned is q's now (its cursors too, through cursor_pick). */
    q->queryid = mq.queryid;
    q->flip = mq.flip;
    q->with = mq.with;
    q->ids = mq.ids;
    q->nids = mq.nids;
    for (size_t i = 0; i < q->nids; i++)
        strv_take(&q->check, &q->ncheck, core_strdup(q->ids[i]));
    q->after = cursor_pick(q, mq.after_id, mq.rsm_after, true);
    q->before = cursor_pick(q, mq.before_id, mq.rsm_before, false);
    distinct(q->check, &q->ncheck);
    q->q.after_id = q->after;
    q->q.before_id = q->before;
    return MUC_MAM_OK;
}

/* ---- access ---- */

bool muc_mam_may_read(const muc_room_t *room, const jid_t *from, bool *sees_jids)
{
    const muc_occupant_t *o = muc_occupant_by_jid(room, from->full);
    muc_affil_t a = muc_room_affil(room, from->full, from->bare_len);
    *sees_jids = room->cfg.whois == MUC_WHOIS_ANYONE || a >= MUC_AFFIL_ADMIN ||
        (o != NULL && o->role == MUC_ROLE_MODERATOR);
    if (a == MUC_AFFIL_OUTCAST)
        return false;
    if (room->cfg.members_only)
        return a >= MUC_AFFIL_MEMBER; /* §6.1.2: owners, admins or members */
    if (room->cfg.password_protected)
        return a >= MUC_AFFIL_MEMBER || o != NULL; /* only occupants gave the password */
    return true;
}

/* ---- running a query ---- */

typedef struct qctx {
    muc_t *muc;
    char *owner; /* the room's bare JID: the archive (the room may go meanwhile) */
    char *to; /* the requester's full JID: results go there only */
    xml_stanza_t *reply; /* the iq result, without its payload yet */
    bool sees_jids;
    bool checked; /* the ids that must exist were found */
    muc_mam_query_t mq;
} qctx_t;

static void ctx_free(qctx_t *c)
{
    core_free(c->owner);
    core_free(c->to);
    xml_stanza_unref(c->reply);
    muc_mam_query_clear(&c->mq);
    core_free(c);
}

static void ctx_done(qctx_t *c)
{
    (*muc_mam_queries(c->muc->mam))--;
    ctx_free(c);
}

static void answer_error(qctx_t *c, core_stanza_err_t cond)
{
    xml_node_t *err = xml_stanza_make_error(c->reply, cond, NULL, false);
    if (err != NULL)
        xml_node_set_attr(c->reply, err, NULL, "by", c->owner);
    muc_send(c->muc, c->reply);
}

/* XEP-0045 §7.2.3: the real JIDs in an entry only for those who may see them. */
static void entry_add(void *arg, xml_stanza_t *msg, xml_node_t *fwd, const xml_node_t *entry)
{
    const qctx_t *c = arg;
    muc_mam_entry_add(msg, fwd, entry, c->sees_jids);
}

/* §4.2 and §6.1.2: <message from=room><result><forwarded><delay/><message from=occupant/>. */
static void send_item(qctx_t *c, const storage_archive_item_t *it)
{
    const mam_results_t r = {
        .from = c->owner, .to = c->to, .queryid = c->mq.queryid, .add = entry_add, .arg = c};
    xml_stanza_t *msg;
    if (mam_result_new(&r, it, &msg) < 0)
        core_log(c->muc->log, CORE_LOG_WARN, 0, "%s: archived message %s does not parse", c->owner,
                 it->id);
    muc_send(c->muc, msg);
    xml_stanza_unref(msg);
}

/* §4.3: the results, then <fin/> with XEP-0059's <first/>, <last/> and <count/>. */
static void send_page(qctx_t *c, const storage_archive_result_t *res)
{
    for (size_t i = 0; i < res->count; i++)
        send_item(c, &res->items[c->mq.flip ? res->count - 1 - i : i]);
    mam_page_t p = mam_page_of(res);
    mam_fin_add(c->reply, &p);
    muc_send(c->muc, c->reply);
}

static void submit(qctx_t *c);

static void on_result(void *arg, int status, const storage_archive_result_t *res)
{
    qctx_t *c = arg;
    if (c->muc->stopping) {
        ctx_done(c);
        return;
    }
    if (status == -ENOMSG) {
        answer_error(c, CORE_STANZA_ERR_ITEM_NOT_FOUND); /* §4.1.3, §4.3.2: a cursor not there */
    } else if (status < 0) {
        core_log(c->muc->log, CORE_LOG_WARN, 0, "%s: archive query failed: %s", c->owner,
                 strerror(-status));
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    } else if (!c->checked) {
        c->checked = true;
        if (res->total < c->mq.ncheck) {
            answer_error(c, CORE_STANZA_ERR_ITEM_NOT_FOUND); /* §4.1.3: one is unknown */
        } else {
            submit(c);
            return;
        }
    } else {
        send_page(c, res);
    }
    ctx_done(c);
}

/* The next storage request: first whether the ids named exist (if any), then the page. */
static void submit(qctx_t *c)
{
    storage_archive_query_t q = c->mq.q;
    if (!c->checked) {
        q = (storage_archive_query_t){.ids = (const char *const *)c->mq.check,
                                      .nids = c->mq.ncheck};
    }
    if (storage_archive_query(c->muc->store, c->owner, &q, on_result, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}

static qctx_t *ctx_new(muc_t *muc, const xml_stanza_t *st, const muc_room_t *room,
                       const jid_t *from, bool sees_jids)
{
    qctx_t *c = core_calloc(1, sizeof(*c));
    c->muc = muc;
    c->owner = core_strdup(room->jid);
    c->to = core_strdup(from->full);
    c->reply = xml_stanza_iq_result(st);
    c->sees_jids = sees_jids;
    return c;
}

/* Takes a query slot; false (resource-constraint answered) when none is free. */
static bool begin(muc_t *muc, const xml_stanza_t *st, const muc_room_t *room)
{
    unsigned *n = muc_mam_queries(muc->mam);
    if (*n >= MUC_MAM_QUERIES_MAX) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT, NULL, room->jid);
        return false;
    }
    (*n)++;
    /* What the room said until now is in the store before the query runs (same queue). */
    muc_mam_flush(muc->mam);
    return true;
}

static void query_run(muc_t *muc, xml_stanza_t *st, const xml_node_t *query, muc_room_t *room,
                      const jid_t *from, bool sees_jids)
{
    qctx_t *c = ctx_new(muc, st, room, from, sees_jids);
    int e = muc_mam_query_parse(&c->mq, muc->jids, query);
    if (e != MUC_MAM_OK) {
        answer_error(c, (core_stanza_err_t)e);
        ctx_free(c);
        return;
    }
    if (!begin(muc, st, room)) {
        ctx_free(c);
        return;
    }
    c->checked = c->mq.ncheck == 0;
    submit(c);
}

/* §4.1.5: the fields a query may use. */
static void query_form(muc_t *muc, const xml_stanza_t *st)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    mam_form_add(r);
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* ---- metadata (§5): the first and the last entry, one request each ---- */

static void on_meta(void *arg, int status, const storage_archive_result_t *res)
{
    qctx_t *c = arg;
    if (c->muc->stopping) {
        ctx_done(c);
        return;
    }
    if (status < 0) {
        core_log(c->muc->log, CORE_LOG_WARN, 0, "%s: archive metadata failed: %s", c->owner,
                 strerror(-status));
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
        return;
    }
    bool last = c->mq.q.from_end;
    mam_metadata_bound_add(c->reply, last, res);
    if (last || res->count == 0) {
        muc_send(c->muc, c->reply);
        ctx_done(c);
        return;
    }
    c->mq.q.from_end = true;
    if (storage_archive_query(c->muc->store, c->owner, &c->mq.q, on_meta, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}

static void metadata_get(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    if (!begin(muc, st, room))
        return;
    qctx_t *c = ctx_new(muc, st, room, from, false);
    mam_metadata_add(c->reply);
    c->mq.q.max = 1;
    if (storage_archive_query(muc->store, c->owner, &c->mq.q, on_meta, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}

void muc_mam_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    const xml_node_t *q = xml_node_first_element(st->root);
    const char *type = xml_stanza_type(st);
    bool get = type != NULL && strcmp(type, "get") == 0;
    bool sees_jids;
    if (!muc_mam_enabled(room)) {
        /* The room keeps no archive (and does not advertise one): nothing to query. */
        muc_reply_error(muc, st, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, NULL, room->jid);
    } else if (!muc_mam_may_read(room, from, &sees_jids)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_FORBIDDEN, NULL, room->jid); /* §6.1.2 */
    } else if (xml_node_is(q, MUC_NS_MAM, "query") && get) {
        query_form(muc, st);
    } else if (xml_node_is(q, MUC_NS_MAM, "query")) {
        query_run(muc, st, q, room, from, sees_jids);
    } else if (xml_node_is(q, MUC_NS_MAM, "metadata") && get) {
        metadata_get(muc, st, room, from);
    } else {
        /* Preferences (XEP-0441) are a user's: a room has none. */
        muc_reply_error(muc, st, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, NULL, room->jid);
    }
}
