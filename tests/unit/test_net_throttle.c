/* SPDX-License-Identifier: MIT */
/* Read budgets: the token-bucket arithmetic, and throttled reading over real loopback TCP. */
#include "core/alloc.h"
#include "net/internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define SEC 1000000000ull
#define MAX_ENDS 4

/* ---- the arithmetic ---- */

static void test_bucket_arithmetic(void **state)
{
    (void)state;
    net_rate_t r = {.bytes_per_sec = 1000, .burst = 500};
    /* A fresh bucket (tat 0) is full at any time. */
    assert_int_equal(net_rate_avail(&r, 0, 5 * SEC), 500);
    uint64_t tat = net_rate_take(&r, 0, SEC, 500);
    assert_int_equal(tat, SEC + SEC / 2);
    assert_int_equal(net_rate_avail(&r, tat, SEC), 0);
    /* It refills at the rate, and no further than the burst. */
    assert_int_equal(net_rate_avail(&r, tat, SEC + SEC / 4), 250);
    assert_int_equal(net_rate_avail(&r, tat, SEC + SEC / 2), 500);
    assert_int_equal(net_rate_avail(&r, tat, 100 * SEC), 500);
    /* Taking from a partly full bucket moves its time on from where it was. */
    tat = net_rate_take(&r, tat, SEC + SEC / 4, 100);
    assert_int_equal(tat, SEC + SEC / 2 + SEC / 10);
    assert_int_equal(net_rate_avail(&r, tat, SEC + SEC / 4), 150);
    /* Taking more than there is: nothing for longer, then the burst again. */
    tat = net_rate_take(&r, 0, SEC, 2000);
    assert_int_equal(net_rate_avail(&r, tat, SEC + SEC), 0);
    assert_int_equal(net_rate_avail(&r, tat, SEC + 3 * SEC / 2), 0);
    assert_int_equal(net_rate_avail(&r, tat, SEC + 2 * SEC), 500);
}

static void test_bucket_rounding(void **state)
{
    (void)state;
    /* 1/3 s per byte does not divide a nanosecond: taking all that is there leaves none. */
    net_rate_t r = {.bytes_per_sec = 3, .burst = 7};
    uint64_t now = 10 * SEC;
    uint64_t tat = 0;
    for (int i = 0; i < 7; i++)
        tat = net_rate_take(&r, tat, now, 1);
    assert_int_equal(net_rate_avail(&r, tat, now), 0);
    /* Byte by byte at the rate, over a long time, nothing is lost or gained. */
    uint64_t got = 0;
    tat = 0;
    for (uint64_t t = now; t < now + 100 * SEC; t += SEC / 100) {
        uint64_t a = net_rate_avail(&r, tat, t);
        if (a > 0) {
            tat = net_rate_take(&r, tat, t, a);
            got += a;
        }
    }
    /* The burst at first, then 3 a second for 100 s. */
    assert_true(got >= 7 + 299 && got <= 7 + 300);
    /* Big figures stay within 64 bits. */
    net_rate_t big = {.bytes_per_sec = 1ull << 30, .burst = 1ull << 30};
    tat = net_rate_take(&big, 0, SEC, 1ull << 30);
    assert_int_equal(net_rate_avail(&big, tat, SEC), 0);
    assert_int_equal(net_rate_avail(&big, tat, SEC + SEC / 2), 1ull << 29);
}

/* ---- loopback: a reader with a budget, a writer, and one without ---- */

typedef struct world world_t;

typedef struct end {
    world_t *w;
    net_conn_t *c;
    core_buf_t got;
    bool closed;
} end_t;

struct world {
    uv_loop_t loop;
    core_log_t log;
    net_ctx_t net;
    net_listener_t *l;
    char addr[64];
    net_rate_t rate;
    bool limit_next; /* the next accepted connection gets the rate */
    end_t *ends[MAX_ENDS];
    size_t nends;
    end_t *accepted[MAX_ENDS];
    size_t naccepted;
    bool was_throttled;
};

static void end_read(net_conn_t *c, const char *data, size_t len)
{
    end_t *e = c->ud;
    core_buf_append(&e->got, data, len);
}

static void end_close(net_conn_t *c, int status)
{
    (void)status;
    end_t *e = c->ud;
    e->closed = true;
    e->c = NULL;
}

static void end_connected(net_conn_t *c, int status)
{
    assert_int_equal(status, 0);
    assert_int_equal(net_conn_read_start(c), 0);
}

static const net_conn_ops_t end_ops = {
    .on_read = end_read,
    .on_close = end_close,
    .on_connect = end_connected,
};

static end_t *end_new(world_t *w)
{
    assert_true(w->nends < MAX_ENDS);
    end_t *e = core_calloc(1, sizeof(*e));
    e->w = w;
    w->ends[w->nends++] = e;
    return e;
}

static void on_accept(void *ud, net_conn_t *c)
{
    world_t *w = ud;
    end_t *e = end_new(w);
    e->c = c;
    c->ops = &end_ops;
    c->ud = e;
    if (w->limit_next)
        net_conn_set_read_rate(c, &w->rate);
    w->limit_next = false;
    w->accepted[w->naccepted++] = e;
    assert_int_equal(net_conn_read_start(c), 0);
}

static void world_init(world_t *w, uint64_t rate, uint64_t burst)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->log = (core_log_t){.level = CORE_LOG_WARN, .component = "test"};
    net_ctx_init(&w->net, &w->loop, &w->log);
    assert_int_equal(net_listen(&w->net, "127.0.0.1:0", on_accept, w, &w->l), 0);
    snprintf(w->addr, sizeof(w->addr), "127.0.0.1:%d", net_listener_port(w->l));
    w->rate = (net_rate_t){.bytes_per_sec = rate, .burst = burst};
}

static end_t *client_new(world_t *w, bool limited)
{
    end_t *e = end_new(w);
    w->limit_next = limited;
    assert_int_equal(net_connect(&w->net, w->addr, &end_ops, e, &e->c), 0);
    size_t want = w->naccepted + 1;
    uint64_t end = uv_now(&w->loop) + 5000;
    while (w->naccepted < want) {
        assert_true(uv_now(&w->loop) < end);
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    return e;
}

static void world_finish(world_t *w)
{
    for (size_t i = 0; i < w->nends; i++)
        if (w->ends[i]->c != NULL)
            net_conn_close(w->ends[i]->c, false);
    net_listener_close(w->l);
    for (;;) {
        bool open = false;
        for (size_t i = 0; i < w->nends; i++)
            open = open || !w->ends[i]->closed;
        if (!open)
            break;
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    for (size_t i = 0; i < w->nends; i++) {
        core_buf_release(&w->ends[i]->got);
        core_free(w->ends[i]);
    }
    assert_int_equal(w->net.nthrottled, 0);
    net_ctx_close(&w->net);
    while (uv_run(&w->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

static char pattern(size_t i)
{
    return (char)(i * 13 + (i >> 8));
}

static void send_pattern(end_t *e, size_t len)
{
    char *p = core_malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = pattern(i);
    assert_int_equal(net_conn_write(e->c, p, len), 0);
    core_free(p);
}

static void assert_pattern(const end_t *e, size_t len)
{
    assert_int_equal(e->got.len, len);
    for (size_t i = 0; i < len; i++)
        if (e->got.data[i] != pattern(i))
            fail_msg("byte %zu out of order", i);
}

/* Runs the loop until e has len bytes (or fails after limit_ms); returns the time taken. */
static uint64_t wait_bytes(world_t *w, end_t *e, size_t len, uint64_t limit_ms)
{
    uint64_t start = uv_now(&w->loop);
    while (e->got.len < len) {
        if (uv_now(&w->loop) - start > limit_ms)
            fail_msg("only %zu of %zu bytes after %llu ms", e->got.len, len,
                     (unsigned long long)limit_ms);
        uv_run(&w->loop, UV_RUN_ONCE);
        if (w->net.nthrottled > 0)
            w->was_throttled = true;
    }
    return uv_now(&w->loop) - start;
}

static void test_throttled_reading(void **state)
{
    (void)state;
    world_t w;
    /* 32 KiB at 40 KiB/s with an 8 KiB burst: at least 0.6 s. */
    world_init(&w, 40 * 1024, 8 * 1024);
    end_t *slow = client_new(&w, true);
    end_t *fast = client_new(&w, false);
    end_t *slow_srv = w.accepted[0];
    end_t *fast_srv = w.accepted[1];
    const size_t len = 32 * 1024;
    uv_update_time(&w.loop);
    uint64_t start = uv_now(&w.loop);
    send_pattern(slow, len);
    /* The connection without a budget is served at once meanwhile. */
    send_pattern(fast, len);
    assert_true(wait_bytes(&w, fast_srv, len, 2000) < 500);
    assert_true(slow_srv->got.len < len);
    wait_bytes(&w, slow_srv, len, 5000);
    uint64_t took = uv_now(&w.loop) - start;
    assert_true(w.was_throttled);
    if (took < 550 || took > 3000)
        fail_msg("32 KiB at 40 KiB/s (8 KiB burst) took %llu ms", (unsigned long long)took);
    assert_pattern(slow_srv, len);
    assert_pattern(fast_srv, len);
    world_finish(&w);
}

static void test_owner_pause_while_throttled(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 16 * 1024, 4 * 1024);
    end_t *cl = client_new(&w, true);
    end_t *srv = w.accepted[0];
    send_pattern(cl, 12 * 1024);
    wait_bytes(&w, srv, 4 * 1024, 2000);
    /* The owner stops reading (flow control): the refill must not start it again. */
    net_conn_read_stop(srv->c);
    size_t had = srv->got.len;
    uint64_t until = uv_now(&w.loop) + 400;
    while (uv_now(&w.loop) < until)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(srv->got.len, had);
    assert_int_equal(w.net.nthrottled, 0);
    /* Started again, it reads the rest, in order, within the budget. */
    assert_int_equal(net_conn_read_start(srv->c), 0);
    wait_bytes(&w, srv, 12 * 1024, 3000);
    assert_pattern(srv, 12 * 1024);
    /* Closing a throttled connection takes it off the timer's list. */
    send_pattern(cl, 12 * 1024);
    uint64_t stop = uv_now(&w.loop) + 2000;
    while (w.net.nthrottled == 0 && uv_now(&w.loop) < stop)
        uv_run(&w.loop, UV_RUN_ONCE);
    assert_int_equal(w.net.nthrottled, 1);
    net_conn_close(srv->c, false);
    assert_int_equal(w.net.nthrottled, 0);
    world_finish(&w);
}

static void test_write_last_past_limit(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 1024, 1024);
    end_t *cl = client_new(&w, false);
    end_t *srv = w.accepted[0];
    srv->c->out_limit = 1024;
    char buf[1500];
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(net_conn_write(srv->c, buf, sizeof(buf)), -ENOBUFS);
    assert_int_equal(net_conn_write_last(srv->c, buf, sizeof(buf)), 0);
    wait_bytes(&w, cl, sizeof(buf), 2000);
    world_finish(&w);
}

static bool queue_full(end_t *srv, const char *chunk, size_t len, size_t *written)
{
    int rc = net_conn_write(srv->c, chunk, len);
    if (rc == 0)
        *written += len;
    else
        assert_int_equal(rc, -ENOBUFS);
    return rc != 0;
}

static void test_high_water_counts_unread(void **state)
{
    (void)state;
    world_t w;
    world_init(&w, 1024, 1024);
    end_t *cl = client_new(&w, false);
    end_t *srv = w.accepted[0];
    srv->c->out_limit = 16 * 1024;
    static char chunk[8 * 1024];
    memset(chunk, 'y', sizeof(chunk));
    /* A burst of 80 KiB within one iteration, to a peer that reads: the kernel takes it. */
    size_t written = 0;
    for (int i = 0; i < 10; i++)
        assert_false(queue_full(srv, chunk, sizeof(chunk), &written));
    wait_bytes(&w, cl, written, 3000);
    /* The peer stops reading: once the kernel holds what it can, the mark is reached, and
     * what is queued stays under it. */
    net_conn_read_stop(cl->c);
    bool full = false;
    for (int i = 0; i < 64 * 1024 && !full; i++) {
        full = queue_full(srv, chunk, sizeof(chunk), &written);
        uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    assert_true(full);
    assert_true(net_conn_queued(srv->c) <= srv->c->out_limit);
    world_finish(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bucket_arithmetic),
        cmocka_unit_test(test_bucket_rounding),
        cmocka_unit_test(test_throttled_reading),
        cmocka_unit_test(test_owner_pause_while_throttled),
        cmocka_unit_test(test_write_last_past_limit),
        cmocka_unit_test(test_high_water_counts_unread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
