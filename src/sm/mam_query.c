/* SPDX-License-Identifier: MIT */
/* XEP-0313 queries of a user's own archive: the form, paging (XEP-0059), results, metadata. */
#include "sm/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"

/* ---- XEP-0082 DateTime ---- */

void mam_stamp_format(int64_t us, char *out, size_t outlen)
{
    time_t sec = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, outlen, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, outlen - n, ".%06ldZ", frac);
}

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static bool valid_date(int y, int mo, int d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[mo - 1] + (mo == 2 && leap ? 1 : 0);
}

/* XEP-0082 §3.2: CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD being Z or (+|-)hh:mm. */
static int stamp_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec, tzh = 0, tzm = 0;
    const char *p = s;
    if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
        !digits(&p, 2, &d) || !expect(&p, 'T') || !digits(&p, 2, &h) || !expect(&p, ':') ||
        !digits(&p, 2, &mi) || !expect(&p, ':') || !digits(&p, 2, &sec))
        return -EINVAL;
    if (!valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++, n++) {
            if (n < 6)
                frac = frac * 10 + (*p - '0');
        }
        if (n == 0)
            return -EINVAL;
        for (; n < 6; n++)
            frac *= 10;
    }
    int sign = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (!digits(&p, 2, &tzh) || !expect(&p, ':') || !digits(&p, 2, &tzm) || tzh > 23 ||
            tzm > 59)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    int64_t t = (int64_t)timegm(&tm) - (int64_t)sign * (tzh * 3600 + tzm * 60);
    *out = t * 1000000 + frac;
    return 0;
}

/* ---- a query in flight ---- */

typedef struct query_ctx {
    mam_t *m;
    sm_user_t *u;
    char *full; /* the session that asked (owned): results go to it only */
    xml_stanza_t *reply; /* the iq result, without its payload yet */
    char *queryid; /* owned, or NULL */
    bool flip; /* #extended: send the page newest first */
    storage_archive_query_t q; /* the page's query; its strings are the owned ones below */
    char *with;
    char *form_after, *form_before; /* #extended after-id, before-id: they bound the set */
    char *rsm_after, *rsm_before; /* XEP-0059 <after/>, <before/>: they page within it */
    char **ids; /* distinct */
    size_t nids;
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

static void ctx_free(query_ctx_t *c)
{
    core_free(c->full);
    xml_stanza_unref(c->reply);
    core_free(c->queryid);
    core_free(c->with);
    core_free(c->form_after);
    core_free(c->form_before);
    core_free(c->rsm_after);
    core_free(c->rsm_before);
    strv_free(c->ids, c->nids);
    core_free(c);
}

/* Ends a query that was submitted: the user is let go. */
static void ctx_done(query_ctx_t *c)
{
    sm_user_t *u = c->u;
    mam_user_t *mu = mam_user_get(c->m, u);
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

/* ---- parsing the request ---- */

/* What the parsers below return when all is well; otherwise a core_stanza_err_t. */
#define PARSE_OK (-1)

/* XEP-0359 ids as the store keeps them; anything else names no entry. */
static bool valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > STORAGE_ARCHIVE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The values of a field (XEP-0004 §3.2), at most max of them; -1 if more. */
static int field_values(const xml_node_t *field, const char **out, int max)
{
    int n = 0;
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MAM_NS_DATA, "value"))
            continue;
        if (n == max)
            return -1;
        out[n++] = xml_node_text(v, NULL);
    }
    return n;
}

/* One single-valued field: its value, or NULL when it has none (treated as absent). */
static int single_value(const xml_node_t *field, const char **out)
{
    const char *v[1] = {NULL};
    int n = field_values(field, v, 1);
    if (n < 0)
        return -EINVAL;
    *out = n == 1 && v[0][0] != '\0' ? v[0] : NULL;
    return 0;
}

static int parse_ids(query_ctx_t *c, const xml_node_t *field)
{
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MAM_NS_DATA, "value"))
            continue;
        const char *id = xml_node_text(v, NULL);
        if (c->nids == STORAGE_ARCHIVE_IDS_MAX)
            return CORE_STANZA_ERR_POLICY_VIOLATION;
        if (!valid_id(id))
            return CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §4.1.3: no entry has it */
        strv_add(&c->ids, &c->nids, id);
    }
    return PARSE_OK;
}

/* One field of the form (§4.1). */
static int parse_field(query_ctx_t *c, sm_t *sm, const char *var, const xml_node_t *field)
{
    if (strcmp(var, "ids") == 0)
        return parse_ids(c, field);
    const char *v;
    if (single_value(field, &v) < 0)
        return CORE_STANZA_ERR_BAD_REQUEST;
    if (strcmp(var, "FORM_TYPE") == 0)
        return v != NULL && strcmp(v, MAM_NS) == 0 ? PARSE_OK : CORE_STANZA_ERR_BAD_REQUEST;
    if (v == NULL)
        return PARSE_OK;
    if (strcmp(var, "with") == 0) {
        jid_t j;
        if (jid_parse(sm->jids, v, strlen(v), &j) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        c->with = core_strdup(j.full);
        jid_clear(&j);
    } else if (strcmp(var, "start") == 0 || strcmp(var, "end") == 0) {
        bool start = var[0] == 's';
        if (stamp_parse(v, start ? &c->q.start_us : &c->q.end_us) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        if (start)
            c->q.has_start = true;
        else
            c->q.has_end = true;
    } else if (strcmp(var, "after-id") == 0 || strcmp(var, "before-id") == 0) {
        if (!valid_id(v))
            return CORE_STANZA_ERR_ITEM_NOT_FOUND;
        char **slot = var[0] == 'a' ? &c->form_after : &c->form_before;
        *slot = core_strdup(v);
    } else {
        /* §4.1.5: a field the server does not know. */
        return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED;
    }
    return PARSE_OK;
}

static const char *const known_fields[] = {"FORM_TYPE", "with",      "start", "end",
                                           "after-id",  "before-id", "ids",   NULL};

/* The data form (§4.1, XEP-0004 type 'submit'). */
static int parse_form(query_ctx_t *c, sm_t *sm, const xml_node_t *x)
{
    const char *type = xml_node_attr(x, "type");
    if (type != NULL && strcmp(type, "submit") != 0)
        return CORE_STANZA_ERR_BAD_REQUEST;
    unsigned seen = 0;
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        if (!xml_node_is(f, MAM_NS_DATA, "field"))
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
        int e = parse_field(c, sm, var, f);
        if (e != PARSE_OK)
            return e;
    }
    /* §4.1: FORM_TYPE MUST be urn:xmpp:mam:2. */
    return (seen & 1u) ? PARSE_OK : CORE_STANZA_ERR_BAD_REQUEST;
}

/* XEP-0059 <max/>: a non-negative integer; beyond the server's page it is cut (§4.3.1). */
static bool parse_max(const xml_node_t *n, size_t *out)
{
    size_t len;
    const char *t = xml_node_text(n, &len);
    while (len > 0 && (*t == ' ' || *t == '\n' || *t == '\t' || *t == '\r'))
        t++, len--;
    while (len > 0 &&
           (t[len - 1] == ' ' || t[len - 1] == '\n' || t[len - 1] == '\t' || t[len - 1] == '\r'))
        len--;
    if (len == 0)
        return false;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        if (v <= MAM_PAGE_MAX)
            v = v * 10 + (size_t)(t[i] - '0');
    }
    *out = v > MAM_PAGE_MAX ? MAM_PAGE_MAX : v;
    return true;
}

/* The XEP-0059 <set/> of the query. */
static int parse_rsm(query_ctx_t *c, const xml_node_t *set)
{
    for (const xml_node_t *n = xml_node_first_element(set); n != NULL;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, MAM_NS_RSM, "max")) {
            if (!parse_max(n, &c->q.max))
                return CORE_STANZA_ERR_BAD_REQUEST;
        } else if (xml_node_is(n, MAM_NS_RSM, "after")) {
            const char *id = xml_node_text(n, NULL);
            if (!valid_id(id))
                return id[0] == '\0' ? CORE_STANZA_ERR_BAD_REQUEST : CORE_STANZA_ERR_ITEM_NOT_FOUND;
            core_free(c->rsm_after);
            c->rsm_after = core_strdup(id);
        } else if (xml_node_is(n, MAM_NS_RSM, "before")) {
            /* XEP-0059 §2.5: an empty <before/> asks for the last page. */
            c->q.from_end = true;
            const char *id = xml_node_text(n, NULL);
            if (id[0] != '\0' && !valid_id(id))
                return CORE_STANZA_ERR_ITEM_NOT_FOUND;
            core_free(c->rsm_before);
            c->rsm_before = id[0] != '\0' ? core_strdup(id) : NULL;
        } else if (xml_node_is(n, MAM_NS_RSM, "index")) {
            /* XEP-0059 §2.6 allows refusing pages by index; ids are what MAM pages by. */
            return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED;
        }
    }
    return PARSE_OK;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the ids and drops repeats: the store's count of them then says whether all exist. */
static void ids_distinct(query_ctx_t *c)
{
    if (c->nids == 0)
        return;
    qsort(c->ids, c->nids, sizeof(*c->ids), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < c->nids; i++) {
        if (w > 0 && strcmp(c->ids[w - 1], c->ids[i]) == 0)
            core_free(c->ids[i]);
        else
            c->ids[w++] = c->ids[i];
    }
    c->nids = w;
}

static int parse_query(query_ctx_t *c, sm_t *sm, const xml_node_t *query)
{
    if (xml_node_attr(query, "node") != NULL)
        return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* pubsub archives (XEP-0442) */
    const char *qid = xml_node_attr(query, "queryid");
    c->queryid = qid != NULL ? core_strdup(qid) : NULL;
    c->q.max = MAM_PAGE_DEFAULT;
    int e = PARSE_OK;
    bool form = false;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL && e == PARSE_OK;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, MAM_NS_DATA, "x")) {
            /* §4.1: the query's one form; a second would set its fields again. */
            e = form ? CORE_STANZA_ERR_BAD_REQUEST : parse_form(c, sm, n);
            form = true;
        } else if (xml_node_is(n, MAM_NS_RSM, "set")) {
            e = parse_rsm(c, n);
        } else if (xml_node_is(n, MAM_NS, "flip-page")) {
            c->flip = true; /* §4.3.4 */
        }
    }
    if (e != PARSE_OK)
        return e;
    ids_distinct(c);
    c->q.with = c->with;
    c->q.ids = (const char *const *)c->ids;
    c->q.nids = c->nids;
    /*
     * §9: RSM's cursors page within the range after-id and before-id give. The page query
     * takes the cursor where there is one, the bound otherwise; the bounds' places (STAGE_LO,
     * STAGE_HI) keep the page, its count and its index within the range.
     */
    c->q.after_id = c->rsm_after != NULL ? c->rsm_after : c->form_after;
    c->q.before_id = c->rsm_before != NULL ? c->rsm_before : c->form_before;
    return PARSE_OK;
}

/* ---- answering ---- */

/* §4.2: <message><result queryid id><forwarded><delay/><message/></forwarded></result>. */
static void send_item(query_ctx_t *c, sm_sess_t *sess, const char *bare,
                      const storage_archive_item_t *it)
{
    sm_t *sm = c->m->sm;
    xml_stanza_t *msg = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(msg, msg->root, NULL, "to", sess->jid.full);
    xml_node_set_attr(msg, msg->root, NULL, "from", bare);
    xml_node_t *r = xml_node_add_element(msg, msg->root, MAM_NS, "result");
    if (c->queryid != NULL)
        xml_node_set_attr(msg, r, NULL, "queryid", c->queryid);
    xml_node_set_attr(msg, r, NULL, "id", it->id);
    xml_node_t *fwd = xml_node_add_element(msg, r, MAM_NS_FORWARD, "forwarded");
    xml_node_t *delay = xml_node_add_element(msg, fwd, SM_NS_DELAY, "delay");
    char stamp[48];
    mam_stamp_format(it->stamp_us, stamp, sizeof stamp);
    xml_node_set_attr(msg, delay, NULL, "stamp", stamp);
    xml_stanza_t *orig = xml_stanza_parse(it->data.data, it->data.len);
    if (orig != NULL)
        xml_node_add_copy(msg, fwd, orig->root);
    else
        /* §3.2 lets a result carry no message; its id and stamp keep the archive whole. */
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: archived message %s does not parse",
                 c->u->jid.full, it->id);
    xml_stanza_unref(orig);
    sm_sess_send(sm, sess, msg);
    xml_stanza_unref(msg);
}

static void add_text(xml_stanza_t *st, xml_node_t *parent, const char *ns, const char *name,
                     const char *text)
{
    xml_node_t *n = xml_node_add_element(st, parent, ns, name);
    xml_node_add_text(st, n, text, strlen(text));
}

/* What the <fin/> says about a page (XEP-0059 §2.2 and XEP-0313 §4.3). */
typedef struct page {
    const storage_archive_item_t *items;
    size_t count;
    size_t first_index; /* of items[0] in the set */
    size_t total; /* the set's size */
    bool complete;
} page_t;

/*
 * The page as the store gave it, or cut to [lo, hi) when after-id or before-id bound the
 * set: positions then count from lo, and the page is complete when it reaches the bound in
 * the direction of paging.
 */
static page_t page_of(const query_ctx_t *c, const storage_archive_result_t *res)
{
    page_t p = {.items = res->items,
                .count = res->count,
                .first_index = res->first_index,
                .total = res->total,
                .complete = res->complete};
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
    sm_t *sm = c->m->sm;
    sm_sess_t *sess = sm_session_by_resource(c->u, c->full);
    if (sess == NULL)
        return; /* the session is gone: nobody to page for */
    page_t p = page_of(c, res);
    char *bare = core_strndup(c->u->jid.full, c->u->jid.bare_len);
    for (size_t i = 0; i < p.count; i++)
        send_item(c, sess, bare, &p.items[c->flip ? p.count - 1 - i : i]);
    core_free(bare);
    xml_stanza_t *r = c->reply;
    xml_node_t *fin = xml_node_add_element(r, r->root, MAM_NS, "fin");
    if (p.complete)
        xml_node_set_attr(r, fin, NULL, "complete", "true");
    xml_node_t *set = xml_node_add_element(r, fin, MAM_NS_RSM, "set");
    char num[32];
    if (p.count > 0) {
        /* The page in archive order, whether or not it was sent flipped. */
        add_text(r, set, MAM_NS_RSM, "first", p.items[0].id);
        snprintf(num, sizeof num, "%zu", p.first_index);
        xml_node_set_attr(r, xml_node_child(set, MAM_NS_RSM, "first"), NULL, "index", num);
        add_text(r, set, MAM_NS_RSM, "last", p.items[p.count - 1].id);
    }
    snprintf(num, sizeof num, "%zu", p.total);
    add_text(r, set, MAM_NS_RSM, "count", num);
    sm_route(sm, r);
}

static void next_step(query_ctx_t *c);

/* Takes in what one step learnt; true when the query goes on with the next one. */
static bool step_done(query_ctx_t *c, const storage_archive_result_t *res)
{
    switch (c->stage) {
    case STAGE_IDS:
        if (res->total < c->nids) {
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
    storage_archive_query_t q = {.with = c->q.with,
                                 .has_start = c->q.has_start,
                                 .start_us = c->q.start_us,
                                 .has_end = c->q.has_end,
                                 .end_us = c->q.end_us,
                                 .ids = c->q.ids,
                                 .nids = c->q.nids,
                                 .max = 1};
    for (;;) {
        c->stage++;
        if (c->stage == STAGE_IDS && c->nids > 0) {
            q = (storage_archive_query_t){.ids = c->q.ids, .nids = c->q.nids};
            break;
        }
        if (c->stage == STAGE_LO && c->form_after != NULL) {
            q.after_id = c->form_after;
            break;
        }
        if (c->stage == STAGE_HI && c->form_before != NULL) {
            q.before_id = c->form_before;
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
static bool begin(mam_t *m, sm_pkt_t *pkt)
{
    mam_user_t *mu = mam_user_get(m, pkt->user);
    if (mu->queries >= MAM_QUERIES_MAX) {
        sm_reply_error(m->sm, pkt->st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT);
        return false;
    }
    mu->queries++;
    pkt->user->busy++;
    /* What was archived until now is in the store before the query runs (same queue). */
    storage_archive_writer_flush(m->writer);
    return true;
}

void mam_query_run(mam_t *m, sm_pkt_t *pkt)
{
    query_ctx_t *c = core_calloc(1, sizeof(*c));
    c->m = m;
    c->u = pkt->user;
    c->full = core_strdup(pkt->sess->jid.full);
    c->reply = sm_iq_result(pkt->st);
    int e = parse_query(c, m->sm, pkt->payload);
    if (e != PARSE_OK) {
        answer_error(c, (core_stanza_err_t)e);
        ctx_free(c);
        return;
    }
    if (!begin(m, pkt)) {
        ctx_free(c);
        return;
    }
    next_step(c);
}

/* §4.1.5: the fields a query may use (none required, §4.1). */
void mam_query_form(mam_t *m, sm_pkt_t *pkt)
{
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},    {"end", "text-single"},
        {"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "list-multi"},
    };
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, MAM_NS, "query");
    xml_node_t *x = xml_node_add_element(r, q, MAM_NS_DATA, "x");
    xml_node_set_attr(r, x, NULL, "type", "form");
    xml_node_t *f = xml_node_add_element(r, x, MAM_NS_DATA, "field");
    xml_node_set_attr(r, f, NULL, "type", "hidden");
    xml_node_set_attr(r, f, NULL, "var", "FORM_TYPE");
    add_text(r, f, MAM_NS_DATA, "value", MAM_NS);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        f = xml_node_add_element(r, x, MAM_NS_DATA, "field");
        xml_node_set_attr(r, f, NULL, "type", fields[i][1]);
        xml_node_set_attr(r, f, NULL, "var", fields[i][0]);
    }
    /* §4.1.5: 'ids' is open to any value (XEP-0122), the list of ids is not given. */
    xml_node_t *v = xml_node_add_element(r, f, NS_XDATA_VALIDATE, "validate");
    xml_node_set_attr(r, v, NULL, "datatype", "xs:string");
    xml_node_add_element(r, v, NS_XDATA_VALIDATE, "open");
    sm_route(m->sm, r);
    xml_stanza_unref(r);
}

/* ---- metadata (§5): the first and the last entry, one query each ---- */

static void add_bound(query_ctx_t *c, const char *name, const storage_archive_result_t *res)
{
    if (res->count == 0)
        return; /* §5: an empty archive has an empty <metadata/> */
    xml_stanza_t *r = c->reply;
    xml_node_t *md = xml_node_child(r->root, MAM_NS, "metadata");
    xml_node_t *n = xml_node_add_element(r, md, MAM_NS, name);
    char stamp[48];
    mam_stamp_format(res->items[0].stamp_us, stamp, sizeof stamp);
    xml_node_set_attr(r, n, NULL, "id", res->items[0].id);
    xml_node_set_attr(r, n, NULL, "timestamp", stamp);
}

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
    add_bound(c, last ? "end" : "start", res);
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

void mam_metadata_get(mam_t *m, sm_pkt_t *pkt)
{
    if (!begin(m, pkt))
        return;
    query_ctx_t *c = core_calloc(1, sizeof(*c));
    c->m = m;
    c->u = pkt->user;
    c->reply = sm_iq_result(pkt->st);
    xml_node_add_element(c->reply, c->reply->root, MAM_NS, "metadata");
    c->q.max = 1;
    if (storage_archive_query(m->sm->store, c->u->node, &c->q, on_meta, c) < 0) {
        answer_error(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        ctx_done(c);
    }
}
