/* SPDX-License-Identifier: MIT */
/* XEP-0313 queries read into a mam_query_t: the form (§4.1), XEP-0059 paging, <flip-page/>. */
#include "mam/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What the readers below return when all is well; otherwise a core_stanza_err_t. */
#define PARSE_OK (-1)

bool mam_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > STORAGE_ARCHIVE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool id_valid(const mam_query_limits_t *lim, const char *id)
{
    return lim->id_valid != NULL ? lim->id_valid(id) : mam_id_valid(id);
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_free(v[i]);
    core_free(v);
}

void mam_query_clear(mam_query_t *q)
{
    core_free(q->queryid);
    core_free(q->with);
    core_free(q->after_id);
    core_free(q->before_id);
    core_free(q->rsm_after);
    core_free(q->rsm_before);
    strv_free(q->ids, q->nids);
    memset(q, 0, sizeof(*q));
}

/* Replaces the owned string in *slot with a copy of s (or NULL). */
static void set_str(char **slot, const char *s)
{
    core_free(*slot);
    *slot = s != NULL ? core_strdup(s) : NULL;
}

/* ---- the form (§4.1, XEP-0004 type 'submit') ---- */

/* The one value of a single-valued field (XEP-0004 §3.2), or NULL when it has none or it is
 * empty (the field is then absent); -EINVAL for more than one. */
static int single_value(const xml_node_t *field, const char **out)
{
    *out = NULL;
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MAM_NS_DATA, "value"))
            continue;
        if (*out != NULL)
            return -EINVAL;
        *out = xml_node_text(v, NULL);
    }
    if (*out != NULL && (*out)[0] == '\0')
        *out = NULL;
    return 0;
}

static int parse_ids(mam_query_t *q, const mam_query_limits_t *lim, const xml_node_t *field)
{
    for (const xml_node_t *v = xml_node_first_element(field); v != NULL;
         v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MAM_NS_DATA, "value"))
            continue;
        const char *id = xml_node_text(v, NULL);
        if (q->nids == STORAGE_ARCHIVE_IDS_MAX)
            return CORE_STANZA_ERR_POLICY_VIOLATION;
        if (!id_valid(lim, id))
            return CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §4.1.3: no entry has it */
        q->ids = core_realloc(q->ids, (q->nids + 1) * sizeof(*q->ids));
        q->ids[q->nids++] = core_strdup(id);
    }
    return PARSE_OK;
}

/* One field of the form (§4.1). */
static int parse_field(mam_query_t *q, const mam_query_limits_t *lim, jid_cache_t *jids,
                       const char *var, const xml_node_t *field)
{
    if (strcmp(var, "ids") == 0)
        return parse_ids(q, lim, field);
    const char *v;
    if (single_value(field, &v) < 0)
        return CORE_STANZA_ERR_BAD_REQUEST;
    if (strcmp(var, "FORM_TYPE") == 0)
        return v != NULL && strcmp(v, MAM_NS) == 0 ? PARSE_OK : CORE_STANZA_ERR_BAD_REQUEST;
    if (v == NULL)
        return PARSE_OK;
    if (strcmp(var, "with") == 0) {
        jid_t j;
        if (jid_parse(jids, v, strlen(v), &j) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        set_str(&q->with, j.full);
        jid_clear(&j);
    } else if (strcmp(var, "start") == 0) {
        if (mam_stamp_parse(v, &q->start_us) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        q->has_start = true;
    } else if (strcmp(var, "end") == 0) {
        if (mam_stamp_parse(v, &q->end_us) < 0)
            return CORE_STANZA_ERR_BAD_REQUEST;
        q->has_end = true;
    } else if (strcmp(var, "after-id") == 0 || strcmp(var, "before-id") == 0) {
        if (!id_valid(lim, v))
            return CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §4.1.3: no entry has it */
        set_str(var[0] == 'a' ? &q->after_id : &q->before_id, v);
    } else {
        return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* §4.1.5: a field we do not know */
    }
    return PARSE_OK;
}

static const char *const known_fields[] = {"FORM_TYPE", "with",      "start", "end",
                                           "after-id",  "before-id", "ids",   NULL};

static int parse_form(mam_query_t *q, const mam_query_limits_t *lim, jid_cache_t *jids,
                      const xml_node_t *x)
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
        int e = parse_field(q, lim, jids, var, f);
        if (e != PARSE_OK)
            return e;
    }
    /* §4.1: FORM_TYPE MUST be urn:xmpp:mam:2. */
    return (seen & 1u) ? PARSE_OK : CORE_STANZA_ERR_BAD_REQUEST;
}

/* ---- XEP-0059 <set/> ---- */

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* <max/>: a non-negative xs:int (white space around it collapses); beyond page_max it is cut
 * (XEP-0059 §2.1, XEP-0313 §4.3.1). */
static bool parse_max(const xml_node_t *n, size_t page_max, size_t *out)
{
    size_t len;
    const char *t = xml_node_text(n, &len);
    while (len > 0 && is_space(*t))
        t++, len--;
    while (len > 0 && is_space(t[len - 1]))
        len--;
    if (len == 0)
        return false;
    size_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] < '0' || t[i] > '9')
            return false;
        if (v <= page_max)
            v = v * 10 + (size_t)(t[i] - '0');
    }
    *out = v > page_max ? page_max : v;
    return true;
}

static int parse_rsm(mam_query_t *q, const mam_query_limits_t *lim, const xml_node_t *set)
{
    for (const xml_node_t *n = xml_node_first_element(set); n != NULL;
         n = xml_node_next_element(n)) {
        const char *id = xml_node_text(n, NULL);
        if (xml_node_is(n, MAM_NS_RSM, "max")) {
            if (!parse_max(n, lim->page_max, &q->max))
                return CORE_STANZA_ERR_BAD_REQUEST;
        } else if (xml_node_is(n, MAM_NS_RSM, "after")) {
            /* XEP-0059 §2.2: <after/> names the last item of the page before. */
            if (id[0] == '\0')
                return CORE_STANZA_ERR_BAD_REQUEST;
            if (!id_valid(lim, id))
                return CORE_STANZA_ERR_ITEM_NOT_FOUND;
            set_str(&q->rsm_after, id);
        } else if (xml_node_is(n, MAM_NS_RSM, "before")) {
            /* XEP-0059 §2.5: an empty <before/> asks for the last page. */
            q->from_end = true;
            if (id[0] != '\0' && !id_valid(lim, id))
                return CORE_STANZA_ERR_ITEM_NOT_FOUND;
            set_str(&q->rsm_before, id[0] != '\0' ? id : NULL);
        } else if (xml_node_is(n, MAM_NS_RSM, "index")) {
            /* XEP-0059 §2.6 allows refusing pages by index; ids are what MAM pages by. */
            return CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED;
        }
    }
    return PARSE_OK;
}

/* ---- the query ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts the ids and drops repeats: the store's count of them then says whether all exist. */
static void ids_distinct(mam_query_t *q)
{
    if (q->nids == 0)
        return;
    qsort(q->ids, q->nids, sizeof(*q->ids), cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < q->nids; i++) {
        if (w > 0 && strcmp(q->ids[w - 1], q->ids[i]) == 0)
            core_free(q->ids[i]);
        else
            q->ids[w++] = q->ids[i];
    }
    q->nids = w;
}

static int parse_children(mam_query_t *q, const mam_query_limits_t *lim, jid_cache_t *jids,
                          const xml_node_t *query)
{
    bool form = false;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL;
         n = xml_node_next_element(n)) {
        int e = PARSE_OK;
        if (xml_node_is(n, MAM_NS_DATA, "x")) {
            /* §4.1: the query's one form; a second would set its fields again. */
            e = form ? CORE_STANZA_ERR_BAD_REQUEST : parse_form(q, lim, jids, n);
            form = true;
        } else if (xml_node_is(n, MAM_NS_RSM, "set")) {
            e = parse_rsm(q, lim, n);
        } else if (xml_node_is(n, MAM_NS, "flip-page")) {
            q->flip = true; /* §4.3.4 */
        }
        if (e != PARSE_OK)
            return e;
    }
    return PARSE_OK;
}

int mam_query_parse(mam_query_t *q, const mam_query_limits_t *lim, jid_cache_t *jids,
                    const xml_node_t *query, core_stanza_err_t *cond)
{
    int e = CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED; /* pubsub archives (XEP-0442) */
    if (xml_node_attr(query, "node") == NULL) {
        set_str(&q->queryid, xml_node_attr(query, "queryid"));
        q->max = lim->page_default;
        e = parse_children(q, lim, jids, query);
    }
    if (e != PARSE_OK) {
        *cond = (core_stanza_err_t)e;
        return -EINVAL;
    }
    ids_distinct(q);
    return 0;
}

storage_archive_query_t mam_query_filters(const mam_query_t *q)
{
    return (storage_archive_query_t){.with = q->with,
                                     .has_start = q->has_start,
                                     .start_us = q->start_us,
                                     .has_end = q->has_end,
                                     .end_us = q->end_us,
                                     .ids = (const char *const *)q->ids,
                                     .nids = q->nids,
                                     .max = q->max,
                                     .from_end = q->from_end};
}
