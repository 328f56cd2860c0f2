/* SPDX-License-Identifier: MIT */
/* Copies of the messages routed to stream-managed sessions, for when their c2s dies. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* c2s's default sm_max_unacked, when 'managed' names no bound. */
#define KEPT_DEFAULT_MAX 1000
/* Whatever a c2s says, the sm keeps no more than this per session. */
#define KEPT_HARD_MAX 65536

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sm_kept_entry_t *at(const sm_kept_t *k, size_t i)
{
    return &k->v[(k->head + i) % k->cap];
}

static void grow(sm_kept_t *k)
{
    size_t cap = k->cap != 0 ? k->cap * 2 : 8;
    sm_kept_entry_t *v = core_malloc(cap * sizeof(*v));
    for (size_t i = 0; i < k->len; i++)
        v[i] = *at(k, i);
    core_free(k->v);
    k->v = v;
    k->cap = cap;
    k->head = 0;
}

static void drop_oldest(sm_kept_t *k)
{
    xml_stanza_unref(k->v[k->head].st);
    k->head = (k->head + 1) % k->cap;
    k->len--;
}

void sm_kept_clear(sm_kept_t *k)
{
    while (k->len > 0)
        drop_oldest(k);
    core_free(k->v);
    *k = (sm_kept_t){0};
}

void sm_kept_start(sm_t *sm, sm_sess_t *sess, const char *max)
{
    long n = max != NULL ? strtol(max, NULL, 10) : KEPT_DEFAULT_MAX;
    if (n <= 0 || n > KEPT_HARD_MAX)
        n = n <= 0 ? KEPT_DEFAULT_MAX : KEPT_HARD_MAX;
    /* A second 'managed' (c2s's link came back) starts the count again, as c2s does. */
    sm_kept_clear(&sess->kept);
    sess->kept.max = (size_t)n;
    sess->managed = true;
    core_log(sm->log, CORE_LOG_DEBUG, 0, "session %s: keeping up to %ld messages", sess->jid.full,
             n);
}

void sm_kept_routed(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st)
{
    if (!sess->managed || xml_stanza_kind(st) != XMLS_KIND_MESSAGE)
        return;
    sm_kept_t *k = &sess->kept;
    /* Every message counts (c2s counts them all), but errors are never returned (§8.5.3.2). */
    uint32_t seq = k->next_seq++;
    if (xml_stanza_type_bit(st) == XMLS_TYPE_ERROR)
        return;
    if (k->len >= k->max) {
        /* c2s ends the session once its own queue is over the bound; until its acks come,
         * the oldest copy goes: that one is lost only if the c2s dies too. */
        drop_oldest(k);
        if (k->dropped++ == 0)
            core_log(sm->log, CORE_LOG_WARN, 0, "session %s: more than %zu messages unacknowledged",
                     sess->jid.full, k->max);
    }
    if (k->len == k->cap)
        grow(k);
    *at(k, k->len) = (sm_kept_entry_t){.st = xml_stanza_ref(st), .seq = seq, .ms = wall_ms()};
    k->len++;
}

void sm_kept_acked(sm_t *sm, sm_sess_t *sess, const char *count)
{
    char *end = NULL;
    if (!sess->managed || count == NULL)
        return;
    unsigned long long v = strtoull(count, &end, 10);
    if (end == count || *end != '\0' || v > UINT32_MAX) {
        core_log(sm->log, CORE_LOG_INFO, 0, "session %s: bad acked count '%s'", sess->jid.full,
                 count);
        return;
    }
    uint32_t n = (uint32_t)v;
    sm_kept_t *k = &sess->kept;
    /* Counts run modulo 2^32, like XEP-0198's h: seq is acknowledged when it is below n. */
    while (k->len > 0 && (int32_t)(n - k->v[k->head].seq) > 0)
        drop_oldest(k);
}

void sm_kept_take(sm_sess_t *sess, sm_kept_t *out)
{
    *out = sess->kept;
    sess->kept = (sm_kept_t){0};
    sess->managed = false;
}

void sm_kept_replay(sm_t *sm, sm_kept_t *k, const char *sid)
{
    size_t n = k->len;
    for (size_t i = 0; i < n; i++) {
        sm_kept_entry_t *e = at(k, i);
        time_t secs = (time_t)(e->ms / 1000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char stamp[40];
        size_t len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(stamp + len, sizeof(stamp) - len, ".%03dZ", (int)(e->ms % 1000));
        /* XEP-0198 §4 through the path of 'undelivered': as for a resource that is gone. */
        sm_deliver_returned(sm, e->st, stamp, sid);
    }
    if (n > 0)
        core_log(sm->log, CORE_LOG_INFO, 0,
                 "session %s: its c2s is gone: %zu unacknowledged messages delivered again", sid,
                 n);
    sm_kept_clear(k);
}
