/* SPDX-License-Identifier: MIT */
/* TCP connections on libuv: batched writes with a high-water mark, listeners, clients. */
#ifndef PARLEY_NET_H
#define PARLEY_NET_H

#include "core/buf.h"
#include "core/log.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct net_conn net_conn_t;
/* A connection's TLS state (src/net/tls.c); see net/tls.h. */
typedef struct net_tls_conn net_tls_conn_t;

/*
 * A read budget (src/net/throttle.c): a token bucket that refills at bytes_per_sec and holds
 * at most burst bytes. A connection with one reads no faster: when the budget is spent it
 * stops reading until the bucket has refilled (RFC 6120 §13.12 recommends limiting the bytes
 * a peer may send per second). Both are at least 1.
 */
typedef struct net_rate {
    uint64_t bytes_per_sec;
    uint64_t burst;
} net_rate_t;

/* net_conn_t.throttle_idx of a connection that is not waiting for read budget. */
#define NET_NOT_THROTTLED UINT32_MAX

/*
 * The per-loop context of the network layer: one read buffer shared by every connection
 * (bytes are consumed before the next read), and the list of connections with output to
 * flush, written once per loop iteration from a uv_prepare handle.
 */
typedef struct net_ctx {
    uv_loop_t *loop; /* borrowed */
    const core_log_t *log; /* borrowed */
    uv_prepare_t flush;
    net_conn_t *pending; /* connections with queued output */
    net_conn_t *all; /* every open connection, for shutdown */
    uint64_t next_id; /* connection ids for the logs */
    core_buf_t spare[8]; /* emptied output buffers, lent to the next writer */
    unsigned nspare;
    char read_buf[64 * 1024];
    bool reading; /* read_buf is lent out */
    uv_timer_t trim_timer; /* gives idle TLS connections' buffers back */
    size_t ntrim; /* connections waiting for it */
    size_t trimmed; /* connections trimmed since the heap was last trimmed */
    uint64_t heap_trimmed_at; /* loop time of that, ms */
    uint64_t trim_ms; /* how long a connection must be quiet first (NET_TRIM_MS; tests lower it) */
    uv_timer_t throttle_timer; /* resumes throttled connections once their budget refills */
    net_conn_t **throttled; /* owned array of the connections waiting for budget */
    uint32_t nthrottled;
    uint32_t throttled_cap;
} net_ctx_t;

/* What a connection's owner is told. Both run on the loop thread. */
typedef struct net_conn_ops {
    /* Bytes arrived: data is borrowed for the call. */
    void (*on_read)(net_conn_t *c, const char *data, size_t len);
    /*
     * The connection is gone (peer closed, error, or after net_conn_close). Called exactly
     * once; the owner must forget c, whose memory is freed after the callback returns.
     * status is 0 or a negative libuv error.
     */
    void (*on_close)(net_conn_t *c, int status);
    /* A connect started with net_connect finished; status 0 or a negative libuv error. */
    void (*on_connect)(net_conn_t *c, int status);
    /* Optional: the TLS handshake started by net_conn_start_tls completed. Called once. */
    void (*on_tls_ready)(net_conn_t *c);
    /* Optional: all queued output reached the kernel, after net_conn_want_drain. Once. */
    void (*on_drain)(net_conn_t *c);
    /*
     * Optional: c has neither read nor written for a while (NET_TRIM_MS to twice that) since
     * it last did: a time to give back what only a busy connection needs. Must not free c.
     */
    void (*on_quiet)(net_conn_t *c);
} net_conn_ops_t;

struct net_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    net_ctx_t *ctx;
    uint64_t id;
    const net_conn_ops_t *ops;
    void *ud; /* the owner's object */
    core_buf_t out; /* queued output, not yet handed to the kernel */
    size_t in_flight; /* bytes in a uv_write not yet completed */
    size_t tls_plain; /* TLS: plaintext waiting to be sealed into records at the next flush */
    size_t out_limit; /* high-water mark for what the kernel has not taken (net_conn_queued) */
    const net_rate_t *read_rate; /* borrowed; NULL: reads are not limited */
    uint64_t read_tat; /* the budget's state: when its bucket is full again, loop time in ns */
    net_conn_t *next_pending;
    net_conn_t *all_next;
    net_conn_t *all_prev;
    bool pending;
    bool closing; /* no more reads or callbacks to the owner except on_close */
    bool close_after_flush;
    bool notified; /* on_close has run */
    bool want_drain; /* call ops->on_drain when the output is empty */
    bool trim_due; /* buffers to give back (TLS, the owner's on_quiet) once it is quiet */
    bool trim_busy; /* it read or wrote since the last trim sweep */
    bool read_wanted; /* the owner asked for reading (net_conn_read_start) */
    int close_status;
    uint32_t throttle_idx; /* its slot in ctx->throttled, or NET_NOT_THROTTLED */
    net_tls_conn_t *tls; /* owned; set by net_conn_start_tls, freed with the connection */
    char peer[64]; /* "ip:port" for the logs */
};

void net_ctx_init(net_ctx_t *ctx, uv_loop_t *loop, const core_log_t *log);
/* Closes every connection at once, without flushing (the end of a shutdown deadline). */
void net_ctx_close_all(net_ctx_t *ctx);
/* Closes the flush handle; call once every connection is gone, before uv_loop_close. */
void net_ctx_close(net_ctx_t *ctx);

/*
 * Queues bytes for writing (copied; on a TLS connection, plaintext to encrypt). Returns 0, or
 * -ENOBUFS when the output would pass the connection's high-water mark, out_limit (nothing is
 * queued: the caller closes the slow consumer), or -EPIPE when the connection is closing.
 * Before it says -ENOBUFS it hands what is queued to the kernel, so the mark counts only
 * what the peer has not read, not a burst queued within one loop iteration.
 */
int net_conn_write(net_conn_t *c, const char *data, size_t len);

/*
 * The same for one message in n pieces (borrowed, copied into the queue one after the other,
 * so a stanza shared by many connections is not joined first): all are queued, or none.
 */
int net_conn_writev(net_conn_t *c, const core_span_t *v, size_t n);

/* Bytes queued for this connection that the kernel has not taken yet. */
static inline size_t net_conn_queued(const net_conn_t *c)
{
    return c->out.len + c->in_flight + c->tls_plain;
}

/* Asks for one ops->on_drain call when the queued output is next empty (at once if it is:
 * from the loop, not from inside this call). */
void net_conn_want_drain(net_conn_t *c);

/* Starts or stops reading (to throttle a peer). While the read budget is spent, reading
 * starts only once it has refilled. */
int net_conn_read_start(net_conn_t *c);
void net_conn_read_stop(net_conn_t *c);

/*
 * Limits how fast c is read (rate borrowed, must outlive c; NULL: no limit). The budget
 * starts full. Bytes are never dropped: reading pauses, and what was read is handed on in
 * order. One timer per context resumes every throttled connection.
 */
void net_conn_set_read_rate(net_conn_t *c, const net_rate_t *rate);

/*
 * The same as net_conn_write, but past the high-water mark: for a stream's last words (a
 * stream error and </stream:stream>, a few hundred bytes), so that even a consumer closed
 * for not reading can learn why, if it reads within the close's flush deadline.
 */
int net_conn_write_last(net_conn_t *c, const char *data, size_t len);

/*
 * Closes the connection. With flush, queued output is written first (bounded by the peer
 * reading it); then on_close runs. Safe to call more than once and from inside on_read.
 */
void net_conn_close(net_conn_t *c, bool flush);

/* ---- listeners ---- */

typedef struct net_listener net_listener_t;

/* A new connection was accepted: set c->ops and c->ud, then call net_conn_read_start. */
typedef void (*net_accept_fn)(void *ud, net_conn_t *c);

/*
 * Listens on addr ("127.0.0.1:5347", "[::1]:5347", "*:5347" or ":5347" for every address).
 * Returns 0 and *out, or a negative libuv error (the address is logged by the caller).
 */
int net_listen(net_ctx_t *ctx, const char *addr, net_accept_fn fn, void *ud, net_listener_t **out);
/* The port actually bound (useful with port 0). */
int net_listener_port(const net_listener_t *l);
/* Stops accepting and frees the listener (after its handle closes). */
void net_listener_close(net_listener_t *l);

/* Parses "host:port" / "[v6]:port" into a sockaddr. Returns 0 or -EINVAL. */
int net_addr_parse(const char *addr, struct sockaddr_storage *out);

/* Connects to addr; ops->on_connect reports the result. Returns 0 and *out, or an error. */
int net_connect(net_ctx_t *ctx, const char *addr, const net_conn_ops_t *ops, void *ud,
                net_conn_t **out);

#endif
