/* SPDX-License-Identifier: MIT */
/* Queries of a room's archive (XEP-0313 §4, §5 on rooms): access, the form, paging, results. */
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"

/* ---- XEP-0082 DateTime with microseconds ---- */

void muc_mam_stamp_format(int64_t us, char out[32])
{
    int64_t sec = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    char ts[21];
    muc_time_format(sec, ts);
    /* "…ssZ" becomes "…ss.uuuuuuZ" */
    snprintf(out, 32, "%.19s.%06lldZ", ts, (long long)frac);
}

int muc_mam_stamp_parse(const char *s, int64_t *out)
{
    int64_t sec;
    if (muc_time_parse(s, &sec) < 0)
        return -EINVAL;
    int64_t frac = 0;
    if (s[19] == '.') {
        int n = 0;
        for (const char *p = s + 20; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 6)
                frac = frac * 10 + (*p - '0');
        }
        for (; n < 6; n++)
            frac *= 10;
    }
    *out = sec * 1000000 + frac;
    return 0;
}

/* ---- parsing ---- */

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_free(v[i]);
    core_free(v);
}

static void strv_add(char ***v, size_t *n, const char *s)
{
    *v = core_realloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = core_strdup(s);
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

/* The key of one of our ids; room archives hold no other kind (they began at schema 6). */
static bool id_key(const char *id, int64_t *key)
{
    uint64_t nonce;
    return strlen(id) == STORAGE_ARCHIVE_ID_LEN && storage_archive_id_parse(id, key, &nonce) == 0;
}

/*
 * A cursor into *slot: of two in the same direction (the form's after-id and RSM's <after/>,
 * §9), the tighter one bounds the page, and the other only has to exist (§4.1.3).
 * later: for 'after', the later of the two is tighter; for 'before', the earlier.
 */
static int set_cursor(muc_mam_query_t *q, char **slot, const char *id, bool later)
{
    int64_t k, old;
    if (!id_key(id, &k))
        return CORE_STANZA_ERR_ITEM_NOT_FOUND; /* names no entry of ours */
    if (*slot == NULL) {
        *slot = core_strdup(id);
        return MUC_MAM_OK;
    }
    id_key(*slot, &old);
    bool tighter = later ? k > old : k < old;
    strv_add(&q->check, &q->ncheck, tighter ? *slot : id);
    if (tighter) {
        core_free(*slot);
        *slot = core_strdup(id);
    }
    return MUC_MAM_OK;
}

/* The values of a field (XEP-0004 §3.2): the one value of a single-valued field, or NULL. */
static int single_value(const xml_node_t *field, const char **out)
{
    *out = NULL;
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MUC_NS_DATA, "value"))
            continue;
        if (*out != NULL)
            return -EINVAL;
        *out = xml_node_text(v, NULL);
    }
    if (*out != NULL && (*out)[0] == '\0')
        *out = NULL;
    return 0;
}

static int parse_ids(muc_mam_query_t *q, const xml_node_t *field)
{
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MUC_NS_DATA, "value"))
            continue;
        const char *id = xml_node_text(v, NULL);
        int64_t k;
        if (q->nids == STORAGE_ARCHIVE_IDS_MAX)
            return CORE_STANZA_ERR_POLICY_VIOLATION;
        if (!id_key(id, &k))
            return CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §4.1.3: no entry has it */
        strv_add(&q->ids, &q->nids, id);
        strv_add(&q->check, &q->ncheck, id);
    }
    return MUC_MAM_OK;
}

static int parse_field(muc_mam_query_t *q, jid_cache_t *jids, const char *var,
                       const xml_node_t *field)
{
    if (strcmp(var, "ids") == 0)
        return parse_ids(q, field);
    const char *v;
    if (single_value(field, &v) < 0)
        return CORE_STANZA_ERR_BAD_REQUEST;
    if (strcmp(var, "FORM_TYPE") == 0)
        return v != NULL && strcmp(v, MUC_NS_MAM) == 0 ? MUC_MAM_OK : CORE_STANZA_ERR_BAD_REQUEST;
    if (v == NULL)
        return MUC_MAM_OK;
    if (strcmp(var, "with") == 0) {
        jid_t j;
        if (jid_parse(jids, v, strlen(v), &j) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        core_free(q->with);
        q->with = core_strdup(j.full);
        jid_clear(&j);
        return MUC_MAM_OK;
    }
    if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
        bool start = var[0] == 's';
        if (muc_mam_stamp_parse(v, start ? &q->q.start_us : &q->q.end_us) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        *(start ? &q->q.has_start : &q->q.has_end) = true;
        return MUC_MAM_OK;
    }
    if (strcmp(var, "after-id") == 0)
        return set_cursor(q, &q->after, v, true);
    if (strcmp(var, "before-id") == 0)
        return set_cursor(q, &q->before, v, false);
    return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* §4.1.5: a field we do not know */
}

static const char *const known_fields[] = {"FORM_TYPE", "with",      "start", "end",
                                           "after-id",  "before-id", "ids",   NULL};

static int parse_form(muc_mam_query_t *q, jid_cache_t *jids, const xml_node_t *x)
{
    const char *type = xml_node_attr(x, "type");
    if (type != NULL && strcmp(type, "submit") != 0)
        return CORE_STANZA_ERR_BAD_REQUEST;
    unsigned seen = 0;
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        if (!xml_node_is(f, MUC_NS_DATA, "field"))
            continue;
        const char *var = xml_node_attr(f, "var");
        if (var == NULL)
            return CORE_STANZA_ERR_BAD_REQUEST;
        for (unsigned i = 0; known_fields[i] != NULL; i++) {
            if (strcmp(var, known_fields[i]) != 0)
                continue;
            if (seen & (1u << i))
                return CORE_STANZA_ERR_BAD_REQUEST; /* XEP-0004 §3.2: each var once */
            seen |= 1u << i;
        }
        int e = parse_field(q, jids, var, f);
        if (e != MUC_MAM_OK)
            return e;
    }
    return (seen & 1u) ? MUC_MAM_OK : CORE_STANZA_ERR_BAD_REQUEST; /* §4.1: FORM_TYPE */
}

/* XEP-0059 <max/>: a non-negative integer; beyond our page it is cut (§2.1). */
static bool parse_max(const xml_node_t *n, size_t *out)
{
    const char *t = xml_node_text(n, NULL);
    size_t v = 0, len = 0;
    for (; t[len] != '\0'; len++) {
        if (t[len] < '0' || t[len] > '9')
            return false;
        if (v <= MUC_MAM_PAGE_MAX)
            v = v * 10 + (size_t)(t[len] - '0');
    }
    if (len == 0)
        return false;
    *out = v > MUC_MAM_PAGE_MAX ? MUC_MAM_PAGE_MAX : v;
    return true;
}

static int parse_rsm(muc_mam_query_t *q, const xml_node_t *set)
{
    for (const xml_node_t *n = xml_node_first_element(set); n != NULL;
         n = xml_node_next_element(n)) {
        const char *t = xml_node_text(n, NULL);
        int e = MUC_MAM_OK;
        if (xml_node_is(n, MUC_NS_RSM, "max")) {
            e = parse_max(n, &q->q.max) ? MUC_MAM_OK : CORE_STANZA_ERR_BAD_REQUEST;
        } else if (xml_node_is(n, MUC_NS_RSM, "after")) {
            e = t[0] == '\0' ? CORE_STANZA_ERR_BAD_REQUEST : set_cursor(q, &q->after, t, true);
        } else if (xml_node_is(n, MUC_NS_RSM, "before")) {
            /* XEP-0059 §2.5: an empty <before/> asks for the last page. */
            q->q.from_end = true;
            if (t[0] != '\0')
                e = set_cursor(q, &q->before, t, false);
        } else if (xml_node_is(n, MUC_NS_RSM, "index")) {
            e = CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* XEP-0059 §2.6: ids, not indexes */
        }
        if (e != MUC_MAM_OK)
            return e;
    }
    return MUC_MAM_OK;
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
    if (xml_node_attr(query, "node") != NULL)
        return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* pubsub archives (XEP-0442) */
    const char *qid = xml_node_attr(query, "queryid");
    q->queryid = qid != NULL ? core_strdup(qid) : NULL;
    q->q.max = MUC_MAM_PAGE_DEFAULT;
    bool form = false;
    int e = MUC_MAM_OK;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL && e == MUC_MAM_OK;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, MUC_NS_DATA, "x")) {
            e = form ? CORE_STANZA_ERR_BAD_REQUEST : parse_form(q, jids, n);
            form = true;
        } else if (xml_node_is(n, MUC_NS_RSM, "set")) {
            e = parse_rsm(q, n);
        } else if (xml_node_is(n, MUC_NS_MAM, "flip-page")) {
            q->flip = true;
        }
    }
    if (e != MUC_MAM_OK)
        return e;
    distinct(q->ids, &q->nids);
    distinct(q->check, &q->ncheck);
    q->q.with = q->with;
    q->q.after_id = q->after;
    q->q.before_id = q->before;
    q->q.ids = (const char *const *)q->ids;
    q->q.nids = q->nids;
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

static void add_text(xml_stanza_t *st, xml_node_t *parent, const char *ns, const char *name,
                     const char *text)
{
    xml_node_t *n = xml_node_add_element(st, parent, ns, name);
    xml_node_add_text(st, n, text, strlen(text));
}

/* §4.2 and §6.1.2: <message from=room><result><forwarded><delay/><message from=occupant/>. */
static void send_item(qctx_t *c, const storage_archive_item_t *it)
{
    xml_stanza_t *msg = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(msg, msg->root, NULL, "from", c->owner);
    xml_node_set_attr(msg, msg->root, NULL, "to", c->to);
    xml_node_t *r = xml_node_add_element(msg, msg->root, MUC_NS_MAM, "result");
    if (c->mq.queryid != NULL)
        xml_node_set_attr(msg, r, NULL, "queryid", c->mq.queryid);
    xml_node_set_attr(msg, r, NULL, "id", it->id);
    xml_node_t *fwd = xml_node_add_element(msg, r, MUC_NS_FORWARD, "forwarded");
    xml_node_t *delay = xml_node_add_element(msg, fwd, MUC_NS_DELAY, "delay");
    char stamp[32];
    muc_mam_stamp_format(it->stamp_us, stamp);
    xml_node_set_attr(msg, delay, NULL, "stamp", stamp);
    xml_stanza_t *orig = xml_stanza_parse(it->data.data, it->data.len);
    if (orig != NULL)
        muc_mam_entry_add(msg, fwd, orig->root, c->sees_jids);
    else
        core_log(c->muc->log, CORE_LOG_WARN, 0, "%s: archived message %s does not parse", c->owner,
                 it->id);
    xml_stanza_unref(orig);
    muc_send(c->muc, msg);
    xml_stanza_unref(msg);
}

/* §4.3: the results, then <fin/> with XEP-0059's <first/>, <last/> and <count/>. */
static void send_page(qctx_t *c, const storage_archive_result_t *res)
{
    for (size_t i = 0; i < res->count; i++)
        send_item(c, &res->items[c->mq.flip ? res->count - 1 - i : i]);
    xml_stanza_t *r = c->reply;
    xml_node_t *fin = xml_node_add_element(r, r->root, MUC_NS_MAM, "fin");
    if (res->complete)
        xml_node_set_attr(r, fin, NULL, "complete", "true");
    xml_node_t *set = xml_node_add_element(r, fin, MUC_NS_RSM, "set");
    char num[32];
    if (res->count > 0) {
        /* The page in archive order, whether or not it was sent flipped. */
        add_text(r, set, MUC_NS_RSM, "first", res->items[0].id);
        snprintf(num, sizeof num, "%zu", res->first_index);
        xml_node_set_attr(r, xml_node_child(set, MUC_NS_RSM, "first"), NULL, "index", num);
        add_text(r, set, MUC_NS_RSM, "last", res->items[res->count - 1].id);
    }
    snprintf(num, sizeof num, "%zu", res->total);
    add_text(r, set, MUC_NS_RSM, "count", num);
    muc_send(c->muc, r);
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

/* §4.1.5: the fields a query may use (none required, §4.1). */
static void query_form(muc_t *muc, const xml_stanza_t *st)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},    {"end", "text-single"},
        {"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "list-multi"},
    };
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_MAM, "query");
    xml_node_t *x = xml_node_add_element(r, q, MUC_NS_DATA, "x");
    xml_node_set_attr(r, x, NULL, "type", "form");
    xml_node_t *f = xml_node_add_element(r, x, MUC_NS_DATA, "field");
    xml_node_set_attr(r, f, NULL, "type", "hidden");
    xml_node_set_attr(r, f, NULL, "var", "FORM_TYPE");
    add_text(r, f, MUC_NS_DATA, "value", MUC_NS_MAM);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        f = xml_node_add_element(r, x, MUC_NS_DATA, "field");
        xml_node_set_attr(r, f, NULL, "type", fields[i][1]);
        xml_node_set_attr(r, f, NULL, "var", fields[i][0]);
    }
    /* §4.1.5: 'ids' takes any value (XEP-0122 <open/>). */
    xml_node_t *v = xml_node_add_element(r, f, NS_XDATA_VALIDATE, "validate");
    xml_node_set_attr(r, v, NULL, "datatype", "xs:string");
    xml_node_add_element(r, v, NS_XDATA_VALIDATE, "open");
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* ---- metadata (§5): the first and the last entry, one request each ---- */

static void add_bound(qctx_t *c, const char *name, const storage_archive_result_t *res)
{
    if (res->count == 0)
        return; /* §5: an empty archive has an empty <metadata/> */
    xml_stanza_t *r = c->reply;
    xml_node_t *md = xml_node_child(r->root, MUC_NS_MAM, "metadata");
    xml_node_t *n = xml_node_add_element(r, md, MUC_NS_MAM, name);
    char stamp[32];
    muc_mam_stamp_format(res->items[0].stamp_us, stamp);
    xml_node_set_attr(r, n, NULL, "id", res->items[0].id);
    xml_node_set_attr(r, n, NULL, "timestamp", stamp);
}

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
    add_bound(c, last ? "end" : "start", res);
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
    xml_node_add_element(c->reply, c->reply->root, MUC_NS_MAM, "metadata");
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
