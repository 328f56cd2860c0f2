/* SPDX-License-Identifier: MIT */
/* XEP-0198 counters and the queue of stanzas waiting for the client's acknowledgement. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>

/* An idle session keeps a ring this small instead of giving it back after every ack. */
#define SMQ_KEEP 8

static void grow(c2s_smq_t *q)
{
    size_t cap = q->cap != 0 ? q->cap * 2 : SMQ_KEEP;
    c2s_unacked_t *v = core_malloc(cap * sizeof(*v));
    for (size_t i = 0; i < q->len; i++)
        v[i] = q->v[(q->head + i) % q->cap];
    core_free(q->v);
    q->v = v;
    q->cap = cap;
    q->head = 0;
}

c2s_unacked_t *c2s_smq_push(c2s_smq_t *q, xml_stanza_t *st, uint64_t at, bool sent)
{
    /* A written stanza never follows unwritten ones: those go out first, at a resumption. */
    assert(!sent || q->unsent == 0);
    if (q->len == q->cap)
        grow(q);
    size_t len = xml_stanza_size(st);
    c2s_unacked_t *e = &q->v[(q->head + q->len) % q->cap];
    *e = (c2s_unacked_t){.st = xml_stanza_ref(st), .at = at};
    q->len++;
    q->bytes += len;
    if (!sent)
        q->unsent++;
    return e;
}

uint32_t c2s_smq_sent(const c2s_smq_t *q)
{
    /* Unsigned arithmetic is the modulo 2^32 of §4: h wraps from 2^32-1 to 0. */
    return q->acked + (uint32_t)(q->len - q->unsent);
}

c2s_unacked_t *c2s_smq_at(const c2s_smq_t *q, size_t i)
{
    assert(i < q->len);
    return &q->v[(q->head + i) % q->cap];
}

xml_stanza_t *c2s_smq_shift(c2s_smq_t *q, uint64_t *at)
{
    assert(q->len > 0);
    c2s_unacked_t *e = &q->v[q->head];
    xml_stanza_t *st = e->st;
    if (at != NULL)
        *at = e->at;
    q->bytes -= xml_stanza_size(st);
    q->head = (q->head + 1) % q->cap;
    q->len--;
    if (q->unsent > q->len)
        q->unsent = q->len;
    if (q->len == 0) {
        q->head = 0;
        if (q->cap > SMQ_KEEP) {
            core_free(q->v);
            q->v = NULL;
            q->cap = 0;
        }
    }
    return st;
}

int c2s_smq_ack(c2s_smq_t *q, uint32_t h)
{
    uint32_t n = h - q->acked;
    uint32_t written = (uint32_t)(q->len - q->unsent);
    if (n > written)
        return -ERANGE;
    for (uint32_t i = 0; i < n; i++) {
        q->counted_acked += q->v[q->head].counted;
        xml_stanza_unref(c2s_smq_shift(q, NULL));
    }
    q->acked = h;
    return 0;
}

void c2s_smq_clear(c2s_smq_t *q)
{
    for (size_t i = 0; i < q->len; i++)
        xml_stanza_unref(q->v[(q->head + i) % q->cap].st);
    core_free(q->v);
    q->v = NULL;
    q->head = q->len = q->cap = q->unsent = q->bytes = 0;
}

int c2s_smq_parse_h(const char *s, uint32_t *out)
{
    if (s == NULL || *s == '\0')
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9' || p - s >= 10)
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > UINT32_MAX)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}
