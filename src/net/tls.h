/* SPDX-License-Identifier: MIT */
/* TLS for net connections: one policy-holding context per listener or role, and per-connection
 * TLS over memory BIOs (STARTTLS, direct TLS, channel binding data). */
#ifndef PARLEY_NET_TLS_H
#define PARLEY_NET_TLS_H

#include "net/net.h"

#include <stdbool.h>
#include <stddef.h>

/* Protocol versions as on the wire, as returned by net_conn_tls_version. */
#define NET_TLS_VERSION_1_2 0x0303
#define NET_TLS_VERSION_1_3 0x0304

/* The largest channel binding value any of the net_conn_tls_* functions returns (SHA-512). */
#define NET_TLS_CB_MAX 64

/*
 * A TLS context: one OpenSSL SSL_CTX (plus one per SNI name), built at startup, holding the
 * whole TLS policy: TLS 1.2 minimum, OpenSSL's default ciphers, no compression, no
 * renegotiation, buffers released while idle, session tickets on. A context must outlive
 * every connection started with it.
 */
typedef struct net_tls_ctx net_tls_ctx_t;

/* A certificate for one virtual host name (SNI, RFC 6066 §3). Strings are borrowed. */
typedef struct net_tls_cert {
    const char *name; /* the DNS name a client asks for, matched without regard to case */
    const char *cert_file; /* PEM: the certificate, then its intermediates */
    const char *key_file; /* PEM, unencrypted */
} net_tls_cert_t;

typedef struct net_tls_server_opts {
    const char *cert_file; /* required; the default certificate chain (PEM) */
    const char *key_file; /* required; its key (PEM, unencrypted) */
    const net_tls_cert_t *sni; /* optional: certificates chosen by the client's SNI name */
    size_t nsni;
} net_tls_server_opts_t;

typedef struct net_tls_client_opts {
    /* Trust anchors (PEM); NULL means the system store. */
    const char *ca_file;
    /* The name to verify and to send as SNI when a connection names none; may be NULL. */
    const char *host;
    /* Verification of the peer's certificate and name is on unless this is set. */
    bool no_verify;
    /* An optional client certificate (PEM) and key, both or neither. */
    const char *cert_file;
    const char *key_file;
} net_tls_client_opts_t;

/*
 * Routes OpenSSL's heap through core_malloc, so its bytes are counted with ours (STYLE §3).
 * Call once at process start, before anything uses OpenSSL. Returns 0, or -EBUSY when
 * OpenSSL has already allocated (nothing changes then; everything still works).
 */
int net_tls_init(void);

/*
 * Builds a server context. Files are read now (startup), never on the loop. Returns 0 and
 * *out (new; free with net_tls_ctx_free), or a negative errno code with a message naming the
 * file and OpenSSL's reason written to err (a missing file is -ENOENT).
 */
int net_tls_ctx_new_server(const net_tls_server_opts_t *opts, net_tls_ctx_t **out, char *err,
                           size_t errlen);

/* Builds a client context, the same way. A missing ca_file is -ENOENT. */
int net_tls_ctx_new_client(const net_tls_client_opts_t *opts, net_tls_ctx_t **out, char *err,
                           size_t errlen);

/* Frees a context; NULL is fine. Its connections must be gone. */
void net_tls_ctx_free(net_tls_ctx_t *t);

/*
 * Switches c to TLS, as server or client depending on t. From now on bytes read go through
 * TLS and ops->on_read receives plaintext; net_conn_write takes plaintext (written before the
 * handshake completes it is held, then sent encrypted). Output queued before this call still
 * goes out in plaintext first: that is how STARTTLS's <proceed/> (RFC 6120 §5.4.2.3) is sent
 * before the handshake. Bytes already delivered to on_read are not fed to TLS again: after
 * <starttls/> the caller must drop any plaintext it has buffered from the peer (and restart its
 * stream), since a peer must not send any before the handshake. For direct TLS (XEP-0368) call
 * this right after accept or connect. Callable from inside on_read.
 *
 * When the handshake completes, ops->on_tls_ready (if set) runs once. When it fails, the
 * failure is logged once at info with OpenSSL's reason and the connection closes: on_close
 * runs with UV_EPROTO (or UV_ECONNRESET if the peer left mid-handshake). A peer's
 * close_notify is a clean EOF (on_close with 0); a flushing net_conn_close sends ours.
 *
 * Returns 0, -EALREADY when c is already TLS, -EPIPE when c is closing, or -EINVAL for a
 * verifying client context without a host name.
 */
int net_conn_start_tls(net_conn_t *c, net_tls_ctx_t *t);

/*
 * The same for a client, verifying and sending as SNI the given host (borrowed for the call)
 * instead of the context's: an s2s context serves many peers. An IP literal is verified
 * against the certificate's IP addresses and sent without SNI (RFC 6066 §3).
 */
int net_conn_start_tls_host(net_conn_t *c, net_tls_ctx_t *t, const char *host);

/* True once c's TLS handshake has completed. */
bool net_conn_tls_ready(const net_conn_t *c);

/* The negotiated version (NET_TLS_VERSION_1_2 or _1_3), or -ENOTCONN before the handshake. */
int net_conn_tls_version(const net_conn_t *c);

/*
 * Channel binding data (RFC 5056) for SCRAM-*-PLUS. Each writes at most cap bytes to out and
 * their number to *len, and returns 0; or -ENOTCONN when c has no completed TLS handshake,
 * -ENOTSUP when the binding type is not defined for this session, -ENOSPC when cap is too small.
 * NET_TLS_CB_MAX bytes are always enough. With out NULL (and cap 0) each only tells whether
 * the type applies and how long its data would be, without computing it: the exporter and the
 * certificate hash cost a key derivation or a digest, and most clients never ask for them.
 *
 * tls-unique (RFC 5929 §3.1): the first Finished message of the handshake. Defined for TLS 1.2
 * only (RFC 9266 §1); also refused without the extended master secret (RFC 7627), without
 * which it does not identify the connection.
 */
int net_conn_tls_unique(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len);

/* tls-exporter (RFC 9266 §2): 32 bytes of keying material with label
 * "EXPORTER-Channel-Binding" and no context. TLS 1.3, or TLS 1.2 with extended master secret. */
int net_conn_tls_exporter(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len);

/*
 * tls-server-end-point (RFC 5929 §4.1): the hash of the server's certificate, with the hash
 * of its signature algorithm, or SHA-256 when that is MD5 or SHA-1. A certificate signed
 * without a separate hash (Ed25519) is -ENOTSUP: §4.1 leaves the binding undefined there.
 */
int net_conn_tls_server_end_point(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len);

#endif
