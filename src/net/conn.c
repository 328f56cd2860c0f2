/* SPDX-License-Identifier: MIT */
/* TCP connections: reading into the loop's shared buffer, batched writes, orderly close. */
#include "net/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define DEFAULT_OUT_LIMIT (4u * 1024 * 1024)
/* A TLS connection quiet for one to two of these gives its record buffers back. */
#define NET_TRIM_MS 250
/* Quiet connections after which the heap's free pages are given back. */
#define NET_HEAP_TRIM_CONNS 64

/* A uv_write in progress: owns the bytes until the callback. */
typedef struct write_req {
    uv_write_t req;
    net_conn_t *conn;
    core_buf_t buf;
} write_req_t;

static void flush_all(uv_prepare_t *h);

void net_ctx_init(net_ctx_t *ctx, uv_loop_t *loop, const core_log_t *log)
{
    memset(ctx, 0, sizeof(*ctx));
    ctx->loop = loop;
    ctx->log = log;
    uv_prepare_init(loop, &ctx->flush);
    uv_prepare_start(&ctx->flush, flush_all);
    /* Flushing is work to do when there is output, not a reason to keep the loop alive. */
    uv_unref((uv_handle_t *)&ctx->flush);
    uv_timer_init(loop, &ctx->trim_timer);
    uv_unref((uv_handle_t *)&ctx->trim_timer);
    ctx->trim_ms = NET_TRIM_MS;
    net_throttle_init(ctx);
}

void net_ctx_close(net_ctx_t *ctx)
{
    while (ctx->nspare > 0)
        core_buf_release(&ctx->spare[--ctx->nspare]);
    uv_prepare_stop(&ctx->flush);
    uv_close((uv_handle_t *)&ctx->flush, NULL);
    uv_timer_stop(&ctx->trim_timer);
    uv_close((uv_handle_t *)&ctx->trim_timer, NULL);
    net_throttle_close(ctx);
}

/*
 * Trims the connections that waited a whole sweep without reading or writing. One timer and
 * a walk over the connections, only while some wait: no per-connection timer to hold.
 */
static void trim_sweep(uv_timer_t *t)
{
    net_ctx_t *ctx = (net_ctx_t *)((char *)t - offsetof(net_ctx_t, trim_timer));
    for (net_conn_t *c = ctx->all; c != NULL && ctx->ntrim > 0; c = c->all_next) {
        if (!c->trim_due)
            continue;
        if (c->trim_busy) {
            c->trim_busy = false;
            continue;
        }
        c->trim_due = false;
        ctx->ntrim--;
        if (c->closing)
            continue;
        ctx->trimmed++;
        if (c->tls != NULL)
            net_tls_trim(c);
        if (c->ops != NULL && c->ops->on_quiet != NULL)
            c->ops->on_quiet(c);
    }
    /* What the quiet connections gave back is free heap, still resident until returned:
     * once things settle, or after many, at most about once a second. */
    uint64_t now = uv_now(ctx->loop);
    if (ctx->trimmed > 0 && (ctx->ntrim == 0 || ctx->trimmed >= NET_HEAP_TRIM_CONNS) &&
        now - ctx->heap_trimmed_at >= 1000) {
        core_alloc_trim();
        ctx->trimmed = 0;
        ctx->heap_trimmed_at = now;
    }
    if (ctx->ntrim == 0 && ctx->trimmed == 0)
        uv_timer_stop(t);
}

void net_conn_trim_later(net_conn_t *c)
{
    net_ctx_t *ctx = c->ctx;
    c->trim_busy = true;
    if (c->trim_due)
        return;
    c->trim_due = true;
    if (ctx->ntrim++ == 0)
        uv_timer_start(&ctx->trim_timer, trim_sweep, ctx->trim_ms, ctx->trim_ms);
}

static void trim_forget(net_conn_t *c)
{
    if (!c->trim_due)
        return;
    c->trim_due = false;
    if (--c->ctx->ntrim == 0 && c->ctx->trimmed == 0)
        uv_timer_stop(&c->ctx->trim_timer);
}

/*
 * An idle connection holds no output buffer, but a busy loop should not pay a fresh
 * allocation (and its page faults) for every flush: emptied buffers wait in the context
 * for the next writer.
 */
static void buf_give_back(net_conn_t *c)
{
    net_ctx_t *ctx = c->ctx;
    c->out.len = 0;
    if (ctx->nspare < sizeof(ctx->spare) / sizeof(ctx->spare[0]) && c->out.cap <= 4 * 1024 * 1024) {
        ctx->spare[ctx->nspare++] = c->out;
        c->out = (core_buf_t){0};
    } else {
        core_buf_release(&c->out);
    }
}

static void buf_borrow(net_conn_t *c)
{
    net_ctx_t *ctx = c->ctx;
    if (c->out.data == NULL && ctx->nspare > 0)
        c->out = ctx->spare[--ctx->nspare];
}

static void pending_add(net_conn_t *c)
{
    if (c->pending)
        return;
    c->pending = true;
    /* While output waits, the loop must run once more to write it, even at shutdown. */
    if (c->ctx->pending == NULL)
        uv_ref((uv_handle_t *)&c->ctx->flush);
    c->next_pending = c->ctx->pending;
    c->ctx->pending = c;
}

static void pending_remove(net_conn_t *c)
{
    if (!c->pending)
        return;
    for (net_conn_t **pp = &c->ctx->pending; *pp != NULL; pp = &(*pp)->next_pending) {
        if (*pp == c) {
            *pp = c->next_pending;
            break;
        }
    }
    if (c->ctx->pending == NULL)
        uv_unref((uv_handle_t *)&c->ctx->flush);
    c->pending = false;
    c->next_pending = NULL;
}

static void on_handle_closed(uv_handle_t *h)
{
    net_conn_t *c = h->data;
    if (!c->notified) {
        c->notified = true;
        if (c->ops != NULL && c->ops->on_close != NULL)
            c->ops->on_close(c, c->close_status);
    }
    if (c->all_prev != NULL)
        c->all_prev->all_next = c->all_next;
    else
        c->ctx->all = c->all_next;
    if (c->all_next != NULL)
        c->all_next->all_prev = c->all_prev;
    trim_forget(c);
    net_throttle_forget(c);
    if (c->tls != NULL)
        net_tls_free(c);
    core_buf_release(&c->out);
    core_free(c);
}

static void close_now(net_conn_t *c)
{
    pending_remove(c);
    net_throttle_forget(c);
    c->closing = true;
    c->close_after_flush = false;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void maybe_drained(net_conn_t *c)
{
    if (!c->want_drain || c->closing || net_conn_queued(c) > 0)
        return;
    c->want_drain = false;
    if (c->ops->on_drain != NULL)
        c->ops->on_drain(c);
}

void net_conn_want_drain(net_conn_t *c)
{
    c->want_drain = true;
    /* The next flush reports it, even when there is nothing left to write. */
    pending_add(c);
}

static void on_write_done(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    net_conn_t *c = w->conn;
    net_ctx_t *ctx = c->ctx;
    if (ctx->nspare < sizeof(ctx->spare) / sizeof(ctx->spare[0]) && w->buf.cap <= 4 * 1024 * 1024)
        ctx->spare[ctx->nspare++] = (core_buf_t){.data = w->buf.data, .cap = w->buf.cap};
    else
        core_buf_release(&w->buf);
    core_free(w);
    c->in_flight = 0;
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (status < 0) {
        c->close_status = status;
        close_now(c);
        return;
    }
    if (c->out.len > 0)
        pending_add(c);
    else if (c->close_after_flush)
        close_now(c);
    else
        maybe_drained(c);
}

/*
 * Hands queued output to the kernel: directly when it takes it, else through uv_write (one
 * at a time). Returns false when that failed and c is closing now.
 */
static bool hand_over(net_conn_t *c)
{
    if (c->in_flight > 0 || c->out.len == 0)
        return true;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        c->close_status = n;
        close_now(c);
        return false;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    if (done == c->out.len) {
        c->out.len = 0;
        buf_give_back(c);
        return true;
    }
    write_req_t *w = core_malloc(sizeof(*w));
    w->conn = c;
    w->buf = c->out;
    c->out = (core_buf_t){0};
    size_t len = w->buf.len;
    uv_buf_t rest = uv_buf_init(w->buf.data + done, (unsigned)(len - done));
    c->in_flight = len - done;
    int err = uv_write(&w->req, (uv_stream_t *)&c->tcp, &rest, 1, on_write_done);
    if (err < 0) {
        core_buf_release(&w->buf);
        core_free(w);
        c->in_flight = 0;
        c->close_status = err;
        close_now(c);
        return false;
    }
    return true;
}

static void flush_one(net_conn_t *c)
{
    if (c->in_flight > 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    if (!hand_over(c))
        return;
    if (c->out.len == 0 && c->in_flight == 0 && c->close_after_flush)
        close_now(c);
    else
        maybe_drained(c);
}

static void flush_all(uv_prepare_t *h)
{
    net_ctx_t *ctx = (net_ctx_t *)((char *)h - offsetof(net_ctx_t, flush));
    while (ctx->pending != NULL) {
        net_conn_t *c = ctx->pending;
        ctx->pending = c->next_pending;
        c->pending = false;
        c->next_pending = NULL;
        if (c->tls != NULL)
            net_tls_seal(c);
        net_conn_trim_later(c);
        flush_one(c);
    }
    uv_unref((uv_handle_t *)&ctx->flush);
}

static int write_limited(net_conn_t *c, const core_span_t *v, size_t n, size_t limit)
{
    if (c->closing)
        return -EPIPE;
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += v[i].len;
    /*
     * Output is batched until the loop's flush, so one iteration can queue more than the
     * mark for a peer that reads everything (a burst of stanzas for it). What the kernel
     * takes at once is not "unread": hand it over now, and count only what is left.
     */
    if (net_conn_queued(c) + len > limit && c->in_flight == 0) {
        if (c->tls != NULL)
            net_tls_seal(c);
        if (!hand_over(c))
            return -EPIPE;
    }
    if (c->tls != NULL)
        return net_tls_write(c, v, n, len, limit);
    if (c->out.len + c->in_flight + len > limit)
        return -ENOBUFS;
    buf_borrow(c);
    core_buf_reserve(&c->out, len);
    for (size_t i = 0; i < n; i++)
        core_buf_append(&c->out, v[i].data, v[i].len);
    pending_add(c);
    return 0;
}

int net_conn_write(net_conn_t *c, const char *data, size_t len)
{
    core_span_t v = {data, len};
    return write_limited(c, &v, 1, c->out_limit);
}

int net_conn_writev(net_conn_t *c, const core_span_t *v, size_t n)
{
    return write_limited(c, v, n, c->out_limit);
}

int net_conn_write_last(net_conn_t *c, const char *data, size_t len)
{
    core_span_t v = {data, len};
    return write_limited(c, &v, 1, SIZE_MAX);
}

char *net_conn_out_reserve(net_conn_t *c, size_t n)
{
    buf_borrow(c);
    return core_buf_reserve(&c->out, n);
}

void net_conn_want_flush(net_conn_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        pending_add(c);
}

void net_conn_out_commit(net_conn_t *c, size_t n)
{
    core_buf_commit(&c->out, n);
    /* Once the handle is closing the queue is only waiting to be freed. */
    if (n > 0 && !uv_is_closing((uv_handle_t *)&c->tcp))
        pending_add(c);
}

static void alloc_read(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    net_conn_t *c = h->data;
    /* One buffer per loop: each read is consumed before the next one is made. A read
     * takes no more than the read budget allows. */
    size_t n = net_throttle_read_size(c, sizeof(c->ctx->read_buf));
    *buf = uv_buf_init(c->ctx->read_buf, (unsigned)n);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    net_conn_t *c = s->data;
    if (nread > 0) {
        if (c->closing)
            return;
        net_throttle_spend(c, (size_t)nread);
        if (c->tls != NULL)
            net_tls_feed(c, buf->base, (size_t)nread);
        else
            c->ops->on_read(c, buf->base, (size_t)nread);
        net_conn_trim_later(c);
        /* What was read is handed on in full and in order; only further reads wait. */
        if (!c->closing && c->read_wanted)
            net_throttle_check(c);
        return;
    }
    if (nread == 0)
        return;
    /* EOF or a read error: the peer is gone; what we still have queued may go out. */
    c->close_status = nread == UV_EOF ? 0 : (int)nread;
    if (nread == UV_EOF && c->tls != NULL)
        c->close_status = net_tls_eof_status(c);
    net_conn_close(c, nread == UV_EOF);
}

int net_conn_read_start(net_conn_t *c)
{
    if (c->closing)
        return -EPIPE;
    c->read_wanted = true;
    /* With its budget spent, the throttle timer starts reading once it has refilled. */
    if (net_throttle_check(c))
        return 0;
    return uv_read_start((uv_stream_t *)&c->tcp, alloc_read, on_read);
}

void net_conn_read_resume(net_conn_t *c)
{
    int err = uv_read_start((uv_stream_t *)&c->tcp, alloc_read, on_read);
    if (err < 0) {
        c->close_status = err;
        close_now(c);
    }
}

void net_conn_read_stop(net_conn_t *c)
{
    c->read_wanted = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
}

void net_conn_close(net_conn_t *c, bool flush)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (c->closing && !flush) {
        close_now(c);
        return;
    }
    /* A TLS peer learns that the end is not a truncation (RFC 8446 §6.1). */
    if (flush && !c->closing && c->tls != NULL)
        net_tls_close_notify(c);
    c->closing = true;
    if (flush && (c->out.len > 0 || c->in_flight > 0)) {
        c->close_after_flush = true;
        pending_add(c);
        return;
    }
    close_now(c);
}

static void describe_peer(net_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(c->peer, sizeof(c->peer), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

net_conn_t *net_conn_alloc(net_ctx_t *ctx)
{
    net_conn_t *c = core_calloc(1, sizeof(*c));
    c->ctx = ctx;
    c->id = ++ctx->next_id;
    c->out_limit = DEFAULT_OUT_LIMIT;
    c->throttle_idx = NET_NOT_THROTTLED;
    uv_tcp_init(ctx->loop, &c->tcp);
    c->tcp.data = c;
    c->all_next = ctx->all;
    if (ctx->all != NULL)
        ctx->all->all_prev = c;
    ctx->all = c;
    return c;
}

void net_ctx_close_all(net_ctx_t *ctx)
{
    for (net_conn_t *c = ctx->all; c != NULL; c = c->all_next)
        close_now(c);
}

void net_conn_accepted(net_conn_t *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    describe_peer(c);
}

static void on_connected(uv_connect_t *req, int status)
{
    net_conn_t *c = req->data;
    if (status == 0) {
        net_conn_accepted(c);
        c->ops->on_connect(c, 0);
        return;
    }
    c->notified = true; /* a failed connect is reported by on_connect alone */
    c->ops->on_connect(c, status);
    close_now(c);
}

int net_connect(net_ctx_t *ctx, const char *addr, const net_conn_ops_t *ops, void *ud,
                net_conn_t **out)
{
    struct sockaddr_storage ss;
    int err = net_addr_parse(addr, &ss);
    if (err < 0)
        return err;
    net_conn_t *c = net_conn_alloc(ctx);
    c->ops = ops;
    c->ud = ud;
    c->connect_req.data = c;
    err = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&ss, on_connected);
    if (err < 0) {
        c->notified = true;
        close_now(c);
        return err;
    }
    snprintf(c->peer, sizeof(c->peer), "%s", addr);
    *out = c;
    return 0;
}
