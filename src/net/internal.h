/* SPDX-License-Identifier: MIT */
/* Declarations shared by the files of src/net only. */
#ifndef PARLEY_NET_INTERNAL_H
#define PARLEY_NET_INTERNAL_H

#include "net/net.h"
#include "net/tls.h"

#include <openssl/types.h>

/* A connection struct with its TCP handle initialised and an id for the logs. */
net_conn_t *net_conn_alloc(net_ctx_t *ctx);
/* Sets up a connection once TCP is established (no Nagle, peer name for the logs). */
void net_conn_accepted(net_conn_t *c);

/* ---- conn.c, for tls.c: raw bytes (ciphertext) into the output queue ---- */

/* Room for n more bytes at the end of c's output queue; commit what was written. */
char *net_conn_out_reserve(net_conn_t *c, size_t n);
/* Appends n reserved bytes to the queue and schedules a flush. */
void net_conn_out_commit(net_conn_t *c, size_t n);
/* Schedules a flush (TLS plaintext is waiting to be sealed). */
void net_conn_want_flush(net_conn_t *c);
/* c read or wrote: its buffers go back (net_tls_trim, ops->on_quiet) once it is quiet. */
void net_conn_trim_later(net_conn_t *c);
/* Starts reading again after throttling (the owner still wants it); closes c on an error. */
void net_conn_read_resume(net_conn_t *c);

/* ---- throttle.c: read budgets (token buckets as GCRA: one timestamp per connection) ---- */

/* Bytes a bucket with state tat allows at now_ns (0 … rate->burst). */
uint64_t net_rate_avail(const net_rate_t *rate, uint64_t tat, uint64_t now_ns);
/* The state after n bytes are taken at now_ns (n may exceed what is available). */
uint64_t net_rate_take(const net_rate_t *rate, uint64_t tat, uint64_t now_ns, uint64_t n);

void net_throttle_init(net_ctx_t *ctx);
void net_throttle_close(net_ctx_t *ctx);
/* How many bytes the next read of c may take, at most max (at least 1). */
size_t net_throttle_read_size(net_conn_t *c, size_t max);
/* c read n bytes: spends its budget (before they are handed on). */
void net_throttle_spend(net_conn_t *c, size_t n);
/* Stops reading c and queues it for the timer when its budget is spent; true if it did. */
bool net_throttle_check(net_conn_t *c);
/* Takes c off the timer's list (it closes). */
void net_throttle_forget(net_conn_t *c);

/* ---- tls.c, for conn.c (called only when c->tls is set) ---- */

/* Ciphertext arrived (borrowed): drives the handshake, hands plaintext to ops->on_read. */
void net_tls_feed(net_conn_t *c, const char *data, size_t len);
/* Queues plaintext to encrypt at the next flush: the n pieces of v, len bytes in all; same
 * results as net_conn_writev, with limit as the high-water mark (c->out_limit, or SIZE_MAX
 * for net_conn_write_last). */
int net_tls_write(net_conn_t *c, const core_span_t *v, size_t n, size_t len, size_t limit);
/* The peer closed TCP: logs a handshake cut short and returns the on_close status. */
int net_tls_eof_status(net_conn_t *c);
/* Queues our close_notify once, if the handshake completed. */
void net_tls_close_notify(net_conn_t *c);
/* Encrypts the plaintext written since the last flush: as few records as it fits in. */
void net_tls_seal(net_conn_t *c);
/* Gives back the memory BIOs' buffers once they are drained (idle connections hold none). */
void net_tls_trim(net_conn_t *c);
/* Frees the TLS state (from the close path). */
void net_tls_free(net_conn_t *c);

/* The OpenSSL objects behind t and c, for tests that play peers the API refuses to be. */
SSL_CTX *net_tls_ctx_ssl(net_tls_ctx_t *t);
SSL *net_tls_conn_ssl(net_conn_t *c);

#endif
