/* SPDX-License-Identifier: MIT */
/* Per-source event counts with bounded memory: at most N events in any window, per address;
 * or, for the failed-authentication delay, how many of the last N events fall in the window. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <netinet/in.h>
#include <string.h>

/*
 * One source: the times of its last events (a ring of rl->per slots, oldest at head), and
 * its place in the list ordered by its last event, newest first. A source whose last event
 * is a window old has nothing left to remember and is dropped.
 */
struct c2s_rate_src {
    c2s_rate_src_t *newer;
    c2s_rate_src_t *older;
    uint8_t key[C2S_RATE_KEY_MAX];
    size_t key_len;
    uint64_t last; /* the newest event's time */
    unsigned count; /* events in the ring */
    unsigned head; /* the oldest event's slot */
    uint64_t times[]; /* rl->per slots, milliseconds */
};

void c2s_ratelimit_init(c2s_ratelimit_t *rl, unsigned per, uint64_t window_ms, size_t max_sources)
{
    assert(per > 0 && max_sources > 0);
    *rl = (c2s_ratelimit_t){.per = per, .window_ms = window_ms, .max_sources = max_sources};
    core_map_init(&rl->by_key);
}

static void unlink_src(c2s_ratelimit_t *rl, c2s_rate_src_t *s)
{
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        rl->newest = s->older;
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        rl->oldest = s->newer;
    s->newer = s->older = NULL;
}

static void push_newest(c2s_ratelimit_t *rl, c2s_rate_src_t *s)
{
    s->older = rl->newest;
    if (rl->newest != NULL)
        rl->newest->newer = s;
    else
        rl->oldest = s;
    rl->newest = s;
}

static void drop_src(c2s_ratelimit_t *rl, c2s_rate_src_t *s)
{
    unlink_src(rl, s);
    core_map_del(&rl->by_key, (const char *)s->key, s->key_len);
    rl->count--;
    core_free(s);
}

/* Forgets events a window old or older, and sources left with none (oldest first). */
static void expire(c2s_ratelimit_t *rl, c2s_rate_src_t *s, uint64_t now)
{
    while (s->count > 0 && s->times[s->head] + rl->window_ms <= now) {
        s->head = (s->head + 1) % rl->per;
        s->count--;
    }
}

static void sweep(c2s_ratelimit_t *rl, uint64_t now)
{
    while (rl->oldest != NULL && rl->oldest->last + rl->window_ms <= now)
        drop_src(rl, rl->oldest);
}

/* The source of key with its events older than a window forgotten, or NULL. */
static c2s_rate_src_t *find(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now)
{
    assert(len > 0 && len <= C2S_RATE_KEY_MAX);
    sweep(rl, now);
    c2s_rate_src_t *s = core_map_get(&rl->by_key, (const char *)key, len);
    if (s != NULL)
        expire(rl, s, now);
    return s;
}

/* Records an event for key (whose source s may be NULL); a full ring loses its oldest. */
static c2s_rate_src_t *record(c2s_ratelimit_t *rl, c2s_rate_src_t *s, const uint8_t *key,
                              size_t len, uint64_t now)
{
    if (s == NULL) {
        /* Full of live sources: the one idle longest is forgotten (it may start afresh). */
        if (rl->count == rl->max_sources)
            drop_src(rl, rl->oldest);
        s = core_calloc(1, sizeof(*s) + rl->per * sizeof(s->times[0]));
        memcpy(s->key, key, len);
        s->key_len = len;
        core_map_put(&rl->by_key, (const char *)key, len, s);
        rl->count++;
    } else {
        unlink_src(rl, s);
    }
    if (s->count == rl->per) {
        s->head = (s->head + 1) % rl->per;
        s->count--;
    }
    s->times[(s->head + s->count) % rl->per] = now;
    s->count++;
    s->last = now;
    push_newest(rl, s);
    return s;
}

bool c2s_ratelimit_check(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now,
                         bool take)
{
    c2s_rate_src_t *s = find(rl, key, len, now);
    if (s != NULL && s->count >= rl->per)
        return false;
    if (take)
        record(rl, s, key, len, now);
    return true;
}

unsigned c2s_ratelimit_note(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now)
{
    return record(rl, find(rl, key, len, now), key, len, now)->count;
}

unsigned c2s_ratelimit_count(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now,
                             uint64_t *last)
{
    c2s_rate_src_t *s = find(rl, key, len, now);
    if (s == NULL || s->count == 0)
        return 0;
    *last = s->last;
    return s->count;
}

void c2s_ratelimit_forget(c2s_ratelimit_t *rl, const uint8_t *key, size_t len)
{
    c2s_rate_src_t *s = core_map_get(&rl->by_key, (const char *)key, len);
    if (s != NULL)
        drop_src(rl, s);
}

size_t c2s_ratelimit_sources(const c2s_ratelimit_t *rl)
{
    return rl->count;
}

size_t c2s_ratelimit_key(const struct sockaddr *sa, uint8_t *out)
{
    static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(out, &in->sin_addr, 4);
        return 4;
    }
    if (sa->sa_family != AF_INET6)
        return 0;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    /* An IPv4 client of a dual-stack listener is that IPv4 address. */
    if (memcmp(a, v4_mapped, sizeof(v4_mapped)) == 0) {
        memcpy(out, a + 12, 4);
        return 4;
    }
    /* One site gets a /64 (RFC 6177): its addresses are one source, or any host could make
     * as many as it likes. */
    memcpy(out, a, 8);
    return 8;
}

size_t c2s_ratelimit_peer_key(net_conn_t *nc, uint8_t *out)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    size_t n = 0;
    if (uv_tcp_getpeername(&nc->tcp, (struct sockaddr *)&ss, &len) == 0)
        n = c2s_ratelimit_key((const struct sockaddr *)&ss, out);
    if (n == 0) {
        out[0] = 0;
        n = 1;
    }
    return n;
}

void c2s_ratelimit_free(c2s_ratelimit_t *rl)
{
    while (rl->oldest != NULL)
        drop_src(rl, rl->oldest);
    if (rl->by_key.buckets != NULL)
        core_map_free(&rl->by_key);
}
