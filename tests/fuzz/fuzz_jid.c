/* SPDX-License-Identifier: MIT */
/* Fuzz target: JID parsing and preparation must be stable, bounded and the same on every path. */
#include "jid/internal.h"
#include "jid/jid.h"

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

/* The layout of a parsed JID, and that it prepares to itself. */
static void check_prepared(const jid_t *j)
{
    check(j->full != NULL && strlen(j->full) == j->full_len);
    check(j->domain_len >= 1 && j->domain_len <= JID_PART_MAX);
    check(j->node_len <= JID_PART_MAX && j->res_len <= JID_PART_MAX);
    check(j->domain_off == (j->node_len != 0 ? j->node_len + 1 : 0));
    check(j->node_len == 0 || j->full[j->node_len] == '@');
    check(j->bare_len == j->domain_off + j->domain_len);
    if (j->res_len != 0)
        check(j->full[j->bare_len] == '/' && j->full_len == j->bare_len + 1 + j->res_len);
    else
        check(j->full_len == j->bare_len);

    jid_t again;
    check(jid_parse(NULL, j->full, j->full_len, &again) == 0);
    check(jid_equal(j, &again) && jid_bare_equal(j, &again));
    check(again.node_len == j->node_len && again.domain_len == j->domain_len &&
          again.res_len == j->res_len);
    jid_clear(&again);
}

/* Wherever the ASCII fast path decides, libidn decides the same; preparing is idempotent. */
static void check_part(enum jid_part part, const char *in, size_t len)
{
    char out[JID_PART_MAX + 1];
    char out2[JID_PART_MAX + 1];
    size_t fast_len = 0, slow_len = 0, len2 = 0;
    enum jid_fast f = jid_part_check_fast(part, in, len, &fast_len);
    int rc = jid_part_prepare(part, in, len, out, &slow_len);

    if (f == JID_FAST_INVALID)
        check(rc == -EINVAL);
    if (f == JID_FAST_PREPARED)
        check(rc == 0 && slow_len == fast_len && memcmp(out, in, fast_len) == 0);
    if (rc != 0)
        return;
    check(slow_len >= 1 && slow_len <= JID_PART_MAX && strlen(out) == slow_len);
    check(jid_part_prepare(part, out, slow_len, out2, &len2) == 0);
    check(len2 == slow_len && memcmp(out, out2, len2) == 0);
    f = jid_part_check_fast(part, out, slow_len, &fast_len);
    check(f != JID_FAST_INVALID);
    check(f != JID_FAST_PREPARED || fast_len == slow_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    jid_cache_t *cache = jid_cache_new(4);
    jid_t plain, cached, hit;

    int rc = jid_parse(NULL, s, size, &plain);
    check(rc == 0 || rc == -EINVAL);
    check(jid_parse(cache, s, size, &cached) == rc);
    check(jid_parse(cache, s, size, &hit) == rc);

    const char *dom = NULL;
    size_t dlen = 0;
    int drc = jid_domain(cache, s, size, &dom, &dlen);
    check(drc == 0 || drc == -EINVAL);

    if (rc == 0) {
        check_prepared(&plain);
        check(jid_equal(&plain, &cached) && jid_equal(&plain, &hit));
        check(plain.node_len == cached.node_len && plain.res_len == hit.res_len);
        /* The routing key is the parsed domain. */
        check(drc == 0 && dlen == plain.domain_len &&
              memcmp(dom, jid_domain_ptr(&plain), dlen) == 0);
        jid_t copy;
        jid_copy(&copy, &plain);
        check(jid_equal(&copy, &plain) && copy.full != plain.full);
        jid_clear(&copy);
        jid_clear(&plain);
        jid_clear(&cached);
        jid_clear(&hit);
    }

    /* Small inputs also go through each part's paths directly. */
    if (size <= JID_RAW_MAX) {
        check_part(JID_PART_NODE, s, size);
        check_part(JID_PART_DOMAIN, s, size);
        check_part(JID_PART_RESOURCE, s, size);
    }
    jid_cache_free(cache);
    return 0;
}
