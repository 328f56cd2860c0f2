/* SPDX-License-Identifier: MIT */
/* Fuzz target: XEP-0313 queries as a peer sends them, read by src/mam for both kinds of archive. */
#include "core/alloc.h"
#include "mam/mam.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* The room archive's rule: only ids storage_archive_id_format makes. */
static bool ours_only(const char *id)
{
    int64_t key;
    uint64_t nonce;
    return strlen(id) == STORAGE_ARCHIVE_ID_LEN && storage_archive_id_parse(id, &key, &nonce) == 0;
}

static const mam_query_limits_t limits[] = {
    {.page_default = 50, .page_max = 250},
    {.page_default = 3, .page_max = 5, .id_valid = ours_only},
};

/* A stamp the reader took prints as a DateTime that reads back the same. */
static void check_stamp(int64_t us)
{
    /* Outside years 1970-9999 strftime may print other than four year digits (a zone can
     * move a stamp across either end). */
    if (us < 0 || us >= 253402300800000000LL)
        return;
    char out[MAM_STAMP_SIZE];
    mam_stamp_format(us, out);
    int64_t back = -1;
    check(mam_stamp_parse(out, &back) == 0 && back == us);
}

static bool id_ok(const mam_query_limits_t *l, const char *id)
{
    return l->id_valid != NULL ? l->id_valid(id) : mam_id_valid(id);
}

static void check_query(const mam_query_limits_t *l, jid_cache_t *jids, const mam_query_t *q)
{
    check(q->max <= l->page_max);
    check(q->nids <= STORAGE_ARCHIVE_IDS_MAX);
    for (size_t i = 0; i < q->nids; i++) {
        check(id_ok(l, q->ids[i]));
        check(i == 0 || strcmp(q->ids[i - 1], q->ids[i]) < 0); /* sorted, distinct */
    }
    check(q->after_id == NULL || id_ok(l, q->after_id));
    check(q->before_id == NULL || id_ok(l, q->before_id));
    check(q->rsm_after == NULL || id_ok(l, q->rsm_after));
    check(q->rsm_before == NULL || (id_ok(l, q->rsm_before) && q->from_end));
    if (q->with != NULL) {
        /* Prepared: it prepares to itself. */
        jid_t j;
        check(jid_parse(jids, q->with, strlen(q->with), &j) == 0 && strcmp(j.full, q->with) == 0);
        jid_clear(&j);
    }
    if (q->has_start)
        check_stamp(q->start_us);
    if (q->has_end)
        check_stamp(q->end_us);
    storage_archive_query_t s = mam_query_filters(q);
    check(s.with == q->with && s.nids == q->nids && s.max == q->max && s.from_end == q->from_end &&
          s.after_id == NULL && s.before_id == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Short inputs are also read as a DateTime (the 'start' and 'end' values). */
    if (size < 64) {
        char s[64];
        memcpy(s, data, size);
        s[size] = '\0';
        int64_t us;
        int rc = mam_stamp_parse(s, &us);
        check(rc == 0 || rc == -EINVAL);
        if (rc == 0)
            check_stamp(us);
    }
    xml_stanza_t *st = xml_stanza_parse((const char *)data, size);
    if (st == NULL)
        return 0;
    jid_cache_t *jids = jid_cache_new(4);
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        mam_query_t q = {0};
        core_stanza_err_t cond = CORE_STANZA_ERR_UNDEFINED_CONDITION;
        int rc = mam_query_parse(&q, &limits[i], jids, st->root, &cond);
        if (rc == 0) {
            check_query(&limits[i], jids, &q);
        } else {
            check(rc == -EINVAL);
            check(cond == CORE_STANZA_ERR_BAD_REQUEST || cond == CORE_STANZA_ERR_ITEM_NOT_FOUND ||
                  cond == CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED ||
                  cond == CORE_STANZA_ERR_POLICY_VIOLATION);
        }
        mam_query_clear(&q);
        check(q.queryid == NULL && q.ids == NULL && q.nids == 0);
    }
    jid_cache_free(jids);
    xml_stanza_unref(st);
    return 0;
}
