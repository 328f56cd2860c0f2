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

/* ---- tls.c, for conn.c (called only when c->tls is set) ---- */

/* Ciphertext arrived (borrowed): drives the handshake, hands plaintext to ops->on_read. */
void net_tls_feed(net_conn_t *c, const char *data, size_t len);
/* Encrypts plaintext into the output queue; same results as net_conn_write. */
int net_tls_write(net_conn_t *c, const char *data, size_t len);
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
