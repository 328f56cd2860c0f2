/* SPDX-License-Identifier: MIT */
/* Read budgets: a token bucket per connection, and one timer per context that resumes them. */
#include "net/internal.h"

#include "core/alloc.h"

#include <stddef.h>

#define NS_PER_SEC 1000000000ull
/* How often throttled connections are looked at: the budget's time resolution. */
#define NET_THROTTLE_MS 50

/*
 * The bucket is kept as one number, GCRA style (ITU-T I.371): tat, the time at which it is
 * full again. Each byte read pushes tat 1/rate s later; the bucket holds at most burst
 * bytes, so what may be read now is burst minus what tat is ahead of now. Exact to a
 * nanosecond per read, with no refill to run while nothing happens. burst is at most a few
 * GiB (the config caps it), so (tat - now) * rate stays within 64 bits.
 */
uint64_t net_rate_avail(const net_rate_t *rate, uint64_t tat, uint64_t now_ns)
{
    if (tat <= now_ns)
        return rate->burst;
    uint64_t owed = (tat - now_ns) * rate->bytes_per_sec / NS_PER_SEC;
    return owed >= rate->burst ? 0 : rate->burst - owed;
}

uint64_t net_rate_take(const net_rate_t *rate, uint64_t tat, uint64_t now_ns, uint64_t n)
{
    uint64_t from = tat > now_ns ? tat : now_ns;
    /* Rounded up, so that taking all that is available leaves none. */
    return from + (n * NS_PER_SEC + rate->bytes_per_sec - 1) / rate->bytes_per_sec;
}

static uint64_t now_ns(const net_conn_t *c)
{
    return uv_now(c->ctx->loop) * 1000000ull;
}

void net_conn_set_read_rate(net_conn_t *c, const net_rate_t *rate)
{
    c->read_rate = rate;
    c->read_tat = 0;
}

size_t net_throttle_read_size(net_conn_t *c, size_t max)
{
    if (c->read_rate == NULL)
        return max;
    uint64_t avail = net_rate_avail(c->read_rate, c->read_tat, now_ns(c));
    /* Reading stops at an empty budget, so this is at least 1 except on a spurious read. */
    if (avail == 0)
        return 1;
    return avail < max ? (size_t)avail : max;
}

void net_throttle_spend(net_conn_t *c, size_t n)
{
    if (c->read_rate != NULL)
        c->read_tat = net_rate_take(c->read_rate, c->read_tat, now_ns(c), n);
}

static void remove_at(net_ctx_t *ctx, uint32_t i)
{
    net_conn_t *c = ctx->throttled[i];
    net_conn_t *last = ctx->throttled[--ctx->nthrottled];
    ctx->throttled[i] = last;
    last->throttle_idx = i;
    c->throttle_idx = NET_NOT_THROTTLED;
    if (ctx->nthrottled == 0)
        uv_timer_stop(&ctx->throttle_timer);
}

/*
 * Resumes the connections whose budget has refilled. One timer and a walk over the
 * throttled connections only, while there are some: no timer per connection to hold.
 */
static void sweep(uv_timer_t *t)
{
    net_ctx_t *ctx = (net_ctx_t *)((char *)t - offsetof(net_ctx_t, throttle_timer));
    uint64_t now = uv_now(ctx->loop) * 1000000ull;
    for (uint32_t i = 0; i < ctx->nthrottled;) {
        net_conn_t *c = ctx->throttled[i];
        if (net_rate_avail(c->read_rate, c->read_tat, now) == 0) {
            i++;
            continue;
        }
        remove_at(ctx, i); /* the last one moved to i: look at it next */
        if (c->read_wanted && !c->closing)
            net_conn_read_resume(c);
    }
}

bool net_throttle_check(net_conn_t *c)
{
    net_ctx_t *ctx = c->ctx;
    if (c->read_rate == NULL)
        return false;
    if (c->throttle_idx != NET_NOT_THROTTLED)
        return true;
    if (net_rate_avail(c->read_rate, c->read_tat, now_ns(c)) > 0)
        return false;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (ctx->nthrottled == ctx->throttled_cap) {
        ctx->throttled_cap = ctx->throttled_cap ? ctx->throttled_cap * 2 : 16;
        ctx->throttled = core_realloc(ctx->throttled, ctx->throttled_cap * sizeof(*ctx->throttled));
    }
    c->throttle_idx = ctx->nthrottled;
    ctx->throttled[ctx->nthrottled++] = c;
    if (ctx->nthrottled == 1)
        uv_timer_start(&ctx->throttle_timer, sweep, NET_THROTTLE_MS, NET_THROTTLE_MS);
    return true;
}

void net_throttle_forget(net_conn_t *c)
{
    if (c->throttle_idx != NET_NOT_THROTTLED)
        remove_at(c->ctx, c->throttle_idx);
}

void net_throttle_init(net_ctx_t *ctx)
{
    /* It runs only while connections wait for budget; a connection that stopped reading
     * does not keep the loop alive, so the timer does for it. */
    uv_timer_init(ctx->loop, &ctx->throttle_timer);
}

void net_throttle_close(net_ctx_t *ctx)
{
    uv_timer_stop(&ctx->throttle_timer);
    uv_close((uv_handle_t *)&ctx->throttle_timer, NULL);
    core_free(ctx->throttled);
    ctx->throttled = NULL;
    ctx->nthrottled = ctx->throttled_cap = 0;
}
