/* SPDX-License-Identifier: MIT */
/* TLS over memory BIOs: the one place where TLS policy is set, and the per-connection pipeline
 * between the socket's bytes and the owner's plaintext. */
#include "net/tls.h"

#include "core/alloc.h"
#include "net/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Plaintext handed to SSL_write at once: one full record, so the write BIO stays small. */
#define WRITE_SLICE (16 * 1024)

/* RFC 9266 §2. */
#define EXPORTER_LABEL "EXPORTER-Channel-Binding"
#define EXPORTER_LEN 32

typedef struct sni_cert {
    char *name; /* owned */
    SSL_CTX *ssl_ctx; /* owned */
} sni_cert_t;

struct net_tls_ctx {
    SSL_CTX *ssl_ctx; /* owned */
    bool server;
    bool verify; /* client: check the peer's chain and name */
    char *host; /* owned; client: default name to verify */
    bool free_buffers; /* SSL_free_buffers is safe in the OpenSSL we run on */
    sni_cert_t *sni; /* owned */
    size_t nsni;
};

struct net_tls_conn {
    SSL *ssl; /* owned; owns both BIOs */
    BIO *rbio; /* ciphertext from the peer, waiting for SSL_read */
    BIO *wbio; /* ciphertext from SSL, drained into the output queue after every call */
    core_buf_t early; /* plaintext written before the handshake completed */
    /* Plaintext written since the last flush: sealed there, so that stanzas written in one
     * loop iteration share records instead of costing one record (and SSL call) each. */
    core_buf_t plain;
    bool free_buffers; /* copied from the context */
    bool ready; /* handshake completed */
    bool failed; /* a fatal TLS error: nothing more goes through the SSL */
};

/* ---- OpenSSL's heap and error queue ---- */

static void *tls_malloc(size_t n, const char *file, int line)
{
    /* OpenSSL's own allocator answers NULL to 0 bytes; keep its contract. */
    return n > 0 ? core_malloc(n) : NULL;
}

static void *tls_realloc(void *p, size_t n, const char *file, int line)
{
    if (n == 0) {
        core_free(p);
        return NULL;
    }
    return core_realloc(p, n);
}

static void tls_free(void *p, const char *file, int line)
{
    core_free(p);
}

int net_tls_init(void)
{
    return CRYPTO_set_mem_functions(tls_malloc, tls_realloc, tls_free) == 1 ? 0 : -EBUSY;
}

/* Empties OpenSSL's error queue into one line of text, so that a failure logs once. */
static void take_errors(char *buf, size_t len)
{
    size_t used = 0;
    unsigned long e;
    const char *data;
    int flags;
    buf[0] = '\0';
    while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        if (used + 1 >= len)
            continue; /* keep emptying the queue */
        const char *reason = ERR_reason_error_string(e);
        char code[32];
        if (reason == NULL) {
            snprintf(code, sizeof(code), "error %08lx", e);
            reason = code;
        }
        bool detail = (flags & ERR_TXT_STRING) != 0 && data != NULL && data[0] != '\0';
        int n = snprintf(buf + used, len - used, "%s%s%s%s%s", used > 0 ? "; " : "", reason,
                         detail ? " (" : "", detail ? data : "", detail ? ")" : "");
        if (n > 0)
            used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
    if (used == 0)
        snprintf(buf, len, "no reason given");
}

/* ---- contexts ---- */

/* OpenSSL would prompt on the terminal for an encrypted key; refuse instead. */
static int no_passphrase(char *buf, int size, int rwflag, void *ud)
{
    return -1;
}

/*
 * STYLE §4: the error queue is empty before each TLS call, so that what is there after a
 * failure belongs to it. Peeking first: clearing walks every slot, and the queue is almost
 * always empty already (each failure drains it where it is handled).
 */
static inline void errors_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/*
 * SSL_free_buffers could touch freed memory before these releases (CVE-2024-4741). Asked of
 * the library we run on, not the headers we were built with.
 */
static bool free_buffers_safe(void)
{
    static const unsigned fixed_patch[] = {14, 6, 2, 1}; /* 3.0.14, 3.1.6, 3.2.2, 3.3.1 */
    unsigned major = OPENSSL_version_major();
    unsigned minor = OPENSSL_version_minor();
    if (major != 3)
        return major > 3;
    if (minor >= sizeof(fixed_patch) / sizeof(fixed_patch[0]))
        return true;
    return OPENSSL_version_patch() >= fixed_patch[minor];
}

/* The policy shared by every context (STYLE §5: TLS policy lives in one place). */
static SSL_CTX *policy_new(bool server)
{
    SSL_CTX *x = SSL_CTX_new_ex(NULL, NULL, server ? TLS_server_method() : TLS_client_method());
    if (x == NULL)
        return NULL;
    if (SSL_CTX_set_min_proto_version(x, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(x);
        return NULL;
    }
    /* Compression invites CRIME; renegotiation (TLS <= 1.2) is an attack surface XMPP never
     * needs. Session tickets stay on: resumption costs the server no memory. */
    SSL_CTX_set_options(x, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /*
     * TLS 1.3: AES-128-GCM with SHA-256 first, the suite every implementation must have
     * (RFC 8446 §9.1). Its key schedule runs on SHA-256, which CPUs accelerate and SHA-384
     * is not, and its records take 10 AES rounds, not 14: a cheaper handshake and cheaper
     * messages for no practical loss of strength. A client that puts ChaCha20 first (no
     * AES instructions) keeps it.
     */
    if (server) {
        SSL_CTX_set_options(x, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA);
        if (SSL_CTX_set_ciphersuites(x,
                                     "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:"
                                     "TLS_AES_256_GCM_SHA384") != 1) {
            SSL_CTX_free(x);
            return NULL;
        }
    }
    /* Idle connections give their record buffers back: net_tls_trim, once a connection has
     * been quiet for a while, so a busy one does not pay an allocation for every record. An
     * OpenSSL whose SSL_free_buffers is unsafe releases them after each record instead. */
    if (!free_buffers_safe())
        SSL_CTX_set_mode(x, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_default_passwd_cb(x, no_passphrase);
    if (server) {
        /* A stateful cache would grow with clients; tickets resume sessions without it. */
        SSL_CTX_set_session_cache_mode(x, SSL_SESS_CACHE_OFF);
        static const unsigned char sid_ctx[] = "parley";
        SSL_CTX_set_session_id_context(x, sid_ctx, sizeof(sid_ctx) - 1);
        /* TLS 1.3: one ticket per handshake (OpenSSL sends two); a client resumes with one. */
        SSL_CTX_set_num_tickets(x, 1);
    }
    return x;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
    if (path == NULL || path[0] == '\0') {
        snprintf(err, errlen, "no %s file given", what);
        return -EINVAL;
    }
    if (access(path, R_OK) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s file '%s': %s", what, path, strerror(e));
        return -e;
    }
    return 0;
}

static int load_cert_key(SSL_CTX *x, const char *cert, const char *key, char *err, size_t errlen)
{
    char reasons[512];
    int rc = check_readable("certificate", cert, err, errlen);
    if (rc == 0)
        rc = check_readable("key", key, err, errlen);
    if (rc < 0)
        return rc;
    errors_reset();
    if (SSL_CTX_use_certificate_chain_file(x, cert) != 1) {
        take_errors(reasons, sizeof(reasons));
        snprintf(err, errlen, "certificate file '%s': %s", cert, reasons);
        return -EINVAL;
    }
    if (SSL_CTX_use_PrivateKey_file(x, key, SSL_FILETYPE_PEM) != 1) {
        take_errors(reasons, sizeof(reasons));
        snprintf(err, errlen, "key file '%s': %s", key, reasons);
        return -EINVAL;
    }
    if (SSL_CTX_check_private_key(x) != 1) {
        take_errors(reasons, sizeof(reasons));
        snprintf(err, errlen, "key file '%s' does not match certificate file '%s': %s", key, cert,
                 reasons);
        return -EINVAL;
    }
    return 0;
}

/* RFC 6066 §3: pick the certificate for the name the client asked for. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    const net_tls_ctx_t *t = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    for (size_t i = 0; i < t->nsni; i++) {
        if (strcasecmp(name, t->sni[i].name) != 0)
            continue;
        if (SSL_set_SSL_CTX(ssl, t->sni[i].ssl_ctx) == NULL) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        return SSL_TLSEXT_ERR_OK;
    }
    /* An unknown name gets the default certificate; the client's own check decides. */
    return SSL_TLSEXT_ERR_NOACK;
}

static net_tls_ctx_t *ctx_new(bool server, char *err, size_t errlen)
{
    errors_reset();
    SSL_CTX *x = policy_new(server);
    if (x == NULL) {
        char reasons[256];
        take_errors(reasons, sizeof(reasons));
        snprintf(err, errlen, "cannot create a TLS context: %s", reasons);
        return NULL;
    }
    net_tls_ctx_t *t = core_calloc(1, sizeof(*t));
    t->ssl_ctx = x;
    t->server = server;
    t->free_buffers = free_buffers_safe();
    return t;
}

int net_tls_ctx_new_server(const net_tls_server_opts_t *opts, net_tls_ctx_t **out, char *err,
                           size_t errlen)
{
    int rc;
    net_tls_ctx_t *t = ctx_new(true, err, errlen);
    if (t == NULL)
        return -ENOMEM;
    rc = load_cert_key(t->ssl_ctx, opts->cert_file, opts->key_file, err, errlen);
    if (rc < 0)
        goto fail;
    if (opts->nsni > 0)
        t->sni = core_calloc(opts->nsni, sizeof(*t->sni));
    for (size_t i = 0; i < opts->nsni; i++) {
        const net_tls_cert_t *sc = &opts->sni[i];
        if (sc->name == NULL || sc->name[0] == '\0') {
            snprintf(err, errlen, "a virtual host certificate needs a name");
            rc = -EINVAL;
            goto fail;
        }
        sni_cert_t *e = &t->sni[t->nsni++];
        e->name = core_strdup(sc->name);
        errors_reset();
        e->ssl_ctx = policy_new(true);
        if (e->ssl_ctx == NULL) {
            char reasons[256];
            take_errors(reasons, sizeof(reasons));
            snprintf(err, errlen, "cannot create a TLS context for '%s': %s", sc->name, reasons);
            rc = -ENOMEM;
            goto fail;
        }
        rc = load_cert_key(e->ssl_ctx, sc->cert_file, sc->key_file, err, errlen);
        if (rc < 0)
            goto fail;
    }
    SSL_CTX_set_tlsext_servername_callback(t->ssl_ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(t->ssl_ctx, t);
    *out = t;
    return 0;
fail:
    net_tls_ctx_free(t);
    return rc;
}

int net_tls_ctx_new_client(const net_tls_client_opts_t *opts, net_tls_ctx_t **out, char *err,
                           size_t errlen)
{
    int rc = 0;
    char reasons[512];
    net_tls_ctx_t *t = ctx_new(false, err, errlen);
    if (t == NULL)
        return -ENOMEM;
    t->verify = !opts->no_verify;
    if (opts->host != NULL)
        t->host = core_strdup(opts->host);
    if (t->verify) {
        SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
        errors_reset();
        if (opts->ca_file != NULL) {
            rc = check_readable("CA", opts->ca_file, err, errlen);
            if (rc < 0)
                goto fail;
            if (SSL_CTX_load_verify_file(t->ssl_ctx, opts->ca_file) != 1) {
                take_errors(reasons, sizeof(reasons));
                snprintf(err, errlen, "CA file '%s': %s", opts->ca_file, reasons);
                rc = -EINVAL;
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(t->ssl_ctx) != 1) {
            take_errors(reasons, sizeof(reasons));
            snprintf(err, errlen, "system CA store: %s", reasons);
            rc = -EINVAL;
            goto fail;
        }
    }
    if (opts->cert_file != NULL || opts->key_file != NULL) {
        rc = load_cert_key(t->ssl_ctx, opts->cert_file, opts->key_file, err, errlen);
        if (rc < 0)
            goto fail;
    }
    *out = t;
    return 0;
fail:
    net_tls_ctx_free(t);
    return rc;
}

void net_tls_ctx_free(net_tls_ctx_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nsni; i++) {
        SSL_CTX_free(t->sni[i].ssl_ctx);
        core_free(t->sni[i].name);
    }
    core_free(t->sni);
    core_free(t->host);
    SSL_CTX_free(t->ssl_ctx);
    core_free(t);
}

SSL_CTX *net_tls_ctx_ssl(net_tls_ctx_t *t)
{
    return t->ssl_ctx;
}

SSL *net_tls_conn_ssl(net_conn_t *c)
{
    return c->tls != NULL ? c->tls->ssl : NULL;
}

/* ---- the per-connection pipeline ---- */

/* Moves what the last SSL call wrote into the connection's output queue. */
static void drain(net_conn_t *c)
{
    BIO *w = c->tls->wbio;
    size_t n = BIO_ctrl_pending(w);
    if (n == 0)
        return;
    char *dst = net_conn_out_reserve(c, n);
    int got = BIO_read(w, dst, (int)n);
    net_conn_out_commit(c, got > 0 ? (size_t)got : 0);
}

/* A fatal TLS error: log it once with OpenSSL's reasons and close (the alert still goes out). */
static void fail(net_conn_t *c, const char *action, int sslerr)
{
    net_tls_conn_t *tls = c->tls;
    char reasons[512];
    take_errors(reasons, sizeof(reasons));
    long v = SSL_get_verify_result(tls->ssl);
    if (!SSL_is_server(tls->ssl) && v != X509_V_OK) {
        size_t used = strlen(reasons);
        snprintf(reasons + used, sizeof(reasons) - used, ": %s", X509_verify_cert_error_string(v));
    }
    core_log(c->ctx->log, CORE_LOG_INFO, c->id, "%s with %s: %s (SSL error %d)", action, c->peer,
             reasons, sslerr);
    tls->failed = true;
    core_buf_release(&tls->early);
    c->close_status = UV_EPROTO;
    net_conn_close(c, true);
}

/* Encrypts plaintext into the output queue, a record's worth per SSL call. */
static int write_plain(net_conn_t *c, const char *data, size_t len)
{
    net_tls_conn_t *tls = c->tls;
    while (len > 0) {
        int n = len < WRITE_SLICE ? (int)len : WRITE_SLICE;
        errors_reset();
        int r = SSL_write(tls->ssl, data, n);
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(tls->ssl, r);
        drain(c);
        /* A memory BIO takes everything, so a write is whole or failed. */
        if (r != n) {
            fail(c, "TLS write failed", e);
            return -EPIPE;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static void established(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    tls->ready = true;
    core_log(c->ctx->log, CORE_LOG_DEBUG, c->id, "TLS established with %s: %s, %s%s", c->peer,
             SSL_get_version(tls->ssl), SSL_get_cipher_name(tls->ssl),
             SSL_session_reused(tls->ssl) ? ", resumed" : "");
    if (tls->early.len > 0) {
        core_buf_t early = tls->early;
        tls->early = (core_buf_t){0};
        int rc = write_plain(c, early.data, early.len);
        OPENSSL_cleanse(early.data, early.len);
        core_buf_release(&early);
        if (rc < 0)
            return;
    }
    if (!c->closing && c->ops != NULL && c->ops->on_tls_ready != NULL)
        c->ops->on_tls_ready(c);
}

/* Advances the handshake with what the read BIO holds. False once the connection is closing. */
static bool handshake(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    errors_reset();
    int r = SSL_do_handshake(tls->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(tls->ssl, r);
    drain(c);
    if (r == 1) {
        established(c);
        return !c->closing;
    }
    if (e == SSL_ERROR_WANT_READ)
        return true;
    fail(c, "TLS handshake failed", e);
    return false;
}

/* Hands every complete record's plaintext to the owner. */
static void read_plain(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    /* The ciphertext is already in the read BIO, so the loop's read buffer is free again. */
    char *buf = c->ctx->read_buf;
    while (!c->closing) {
        errors_reset();
        int r = SSL_read(tls->ssl, buf, (int)sizeof(c->ctx->read_buf));
        int e = r > 0 ? SSL_ERROR_NONE : SSL_get_error(tls->ssl, r);
        drain(c);
        if (r > 0) {
            c->ops->on_read(c, buf, (size_t)r);
            continue;
        }
        if (e == SSL_ERROR_WANT_READ)
            return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            core_log(c->ctx->log, CORE_LOG_DEBUG, c->id, "peer sent TLS close_notify");
            c->close_status = 0;
            net_conn_close(c, true);
            return;
        }
        fail(c, "TLS read failed", e);
        return;
    }
}

void net_tls_feed(net_conn_t *c, const char *data, size_t len)
{
    net_tls_conn_t *tls = c->tls;
    if (tls->failed)
        return;
    /* Memory BIO writes only fail when memory does, and core_malloc aborts first. */
    if (BIO_write(tls->rbio, data, (int)len) != (int)len) {
        fail(c, "TLS input failed", SSL_ERROR_SSL);
        return;
    }
    if (!tls->ready && !handshake(c))
        return;
    if (tls->ready)
        read_plain(c);
}

int net_tls_write(net_conn_t *c, const core_span_t *v, size_t n, size_t len, size_t limit)
{
    net_tls_conn_t *tls = c->tls;
    if (tls->failed)
        return -EPIPE;
    if (len == 0)
        return 0;
    if (net_conn_queued(c) + tls->early.len + len > limit)
        return -ENOBUFS;
    core_buf_t *to = tls->ready ? &tls->plain : &tls->early;
    for (size_t i = 0; i < n; i++)
        core_buf_append(to, v[i].data, v[i].len);
    if (!tls->ready)
        return 0;
    c->tls_plain = tls->plain.len;
    net_conn_want_flush(c);
    return 0;
}

void net_tls_seal(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    if (tls->plain.len == 0)
        return;
    if (tls->ready && !tls->failed)
        write_plain(c, tls->plain.data, tls->plain.len);
    /* The buffer stays for the next flush; net_tls_trim frees it once the connection is quiet. */
    tls->plain.len = 0;
    c->tls_plain = 0;
}

int net_tls_eof_status(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    if (tls->ready || tls->failed)
        return 0;
    core_log(c->ctx->log, CORE_LOG_INFO, c->id, "%s closed the connection during the TLS handshake",
             c->peer);
    return UV_ECONNRESET;
}

void net_tls_close_notify(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    net_tls_seal(c); /* what was written goes before the end */
    if (!tls->ready || tls->failed || (SSL_get_shutdown(tls->ssl) & SSL_SENT_SHUTDOWN) != 0)
        return;
    errors_reset();
    if (SSL_shutdown(tls->ssl) < 0) {
        char reasons[256];
        take_errors(reasons, sizeof(reasons));
        core_log(c->ctx->log, CORE_LOG_DEBUG, c->id, "TLS close_notify not sent: %s", reasons);
    }
    drain(c);
}

/* A memory BIO for which "empty" means "wait for more", not end of file. */
static BIO *mem_bio_new(void)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (b != NULL)
        BIO_set_mem_eof_return(b, -1);
    return b;
}

/* Replaces an empty memory BIO that still holds a buffer: memory BIOs never shrink. */
static BIO *fresh_if_holding(BIO *b)
{
    BUF_MEM *m = NULL;
    if (BIO_ctrl_pending(b) != 0 || BIO_get_mem_ptr(b, &m) <= 0 || m == NULL || m->max == 0)
        return NULL;
    return mem_bio_new();
}

void net_tls_trim(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    /* Frees both record buffers (SSL_MODE_RELEASE_BUFFERS, where we use it, also misses the
     * write buffer that reading TLS 1.3 post-handshake messages sets up); does nothing while
     * either holds data. */
    if (tls->free_buffers && !tls->failed && SSL_free_buffers(tls->ssl) != 1)
        errors_reset();
    BIO *b = fresh_if_holding(tls->rbio);
    if (b != NULL) {
        SSL_set0_rbio(tls->ssl, b);
        tls->rbio = b;
    }
    b = fresh_if_holding(tls->wbio);
    if (b != NULL) {
        SSL_set0_wbio(tls->ssl, b);
        tls->wbio = b;
    }
    if (tls->plain.len == 0)
        core_buf_release(&tls->plain);
}

void net_tls_free(net_conn_t *c)
{
    net_tls_conn_t *tls = c->tls;
    SSL_free(tls->ssl);
    if (tls->early.data != NULL)
        OPENSSL_cleanse(tls->early.data, tls->early.len);
    core_buf_release(&tls->early);
    core_buf_release(&tls->plain);
    core_free(tls);
    c->tls = NULL;
    c->tls_plain = 0;
}

/* Sets the name to send (SNI) and to verify; an IP literal is checked as an address. */
static int set_peer_name(SSL *ssl, const char *host, bool verify)
{
    unsigned char addr[16];
    char name[254]; /* a DNS name has at most 253 characters (RFC 1035 §2.3.4) */
    size_t len = strlen(host);
    if (len == 0 || len >= sizeof(name))
        return -EINVAL;
    memcpy(name, host, len + 1); /* the SNI macro wants a mutable pointer */
    bool is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    /* RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in HostName." */
    if (!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        return -EINVAL;
    if (!verify)
        return 0;
    if (is_ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1 ? 0 : -EINVAL;
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(ssl, host) == 1 ? 0 : -EINVAL;
}

int net_conn_start_tls_host(net_conn_t *c, net_tls_ctx_t *t, const char *host)
{
    int rc;
    if (c->tls != NULL)
        return -EALREADY;
    if (c->closing || uv_is_closing((uv_handle_t *)&c->tcp))
        return -EPIPE;
    if (!t->server && host == NULL)
        host = t->host;
    if (!t->server && t->verify && host == NULL)
        return -EINVAL;
    errors_reset();
    SSL *ssl = SSL_new(t->ssl_ctx);
    BIO *rbio = mem_bio_new();
    BIO *wbio = mem_bio_new();
    if (ssl == NULL || rbio == NULL || wbio == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    SSL_set_bio(ssl, rbio, wbio);
    rbio = wbio = NULL; /* the SSL owns them now */
    if (t->server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
        if (host != NULL && (rc = set_peer_name(ssl, host, t->verify)) < 0)
            goto fail;
    }
    c->tls = core_calloc(1, sizeof(*c->tls));
    c->tls->ssl = ssl;
    c->tls->free_buffers = t->free_buffers;
    c->tls->rbio = SSL_get_rbio(ssl);
    c->tls->wbio = SSL_get_wbio(ssl);
    /* A client speaks first; a server finds nothing to read yet and waits. */
    handshake(c);
    return 0;
fail:
    errors_reset();
    BIO_free(rbio);
    BIO_free(wbio);
    SSL_free(ssl);
    return rc;
}

int net_conn_start_tls(net_conn_t *c, net_tls_ctx_t *t)
{
    return net_conn_start_tls_host(c, t, NULL);
}

/* ---- what the handshake established ---- */

static SSL *ready_ssl(const net_conn_t *c)
{
    if (c->tls == NULL || !c->tls->ready || c->tls->failed)
        return NULL;
    return c->tls->ssl;
}

bool net_conn_tls_ready(const net_conn_t *c)
{
    return ready_ssl(c) != NULL;
}

int net_conn_tls_version(const net_conn_t *c)
{
    SSL *ssl = ready_ssl(c);
    return ssl != NULL ? SSL_version(ssl) : -ENOTCONN;
}

int net_conn_tls_unique(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len)
{
    SSL *ssl = ready_ssl(c);
    if (ssl == NULL)
        return -ENOTCONN;
    if (SSL_version(ssl) != TLS1_2_VERSION || SSL_get_extms_support(ssl) != 1)
        return -ENOTSUP;
    /* RFC 5929 §3.1: the first Finished of the latest handshake is the client's in a full
     * handshake and the server's in a resumed one. */
    bool ours_first = (SSL_is_server(ssl) != 0) == (SSL_session_reused(ssl) != 0);
    unsigned char fin[EVP_MAX_MD_SIZE];
    size_t n = ours_first ? SSL_get_finished(ssl, fin, sizeof(fin))
                          : SSL_get_peer_finished(ssl, fin, sizeof(fin));
    if (n == 0 || n > sizeof(fin))
        return -ENOTSUP;
    if (out == NULL) {
        *len = n;
        return 0;
    }
    if (n > cap)
        return -ENOSPC;
    memcpy(out, fin, n);
    *len = n;
    return 0;
}

int net_conn_tls_exporter(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len)
{
    SSL *ssl = ready_ssl(c);
    if (ssl == NULL)
        return -ENOTCONN;
    /* RFC 9266 §2: over TLS 1.2 only with the extended master secret. */
    if (SSL_version(ssl) < TLS1_3_VERSION && SSL_get_extms_support(ssl) != 1)
        return -ENOTSUP;
    if (out == NULL) {
        *len = EXPORTER_LEN;
        return 0;
    }
    if (cap < EXPORTER_LEN)
        return -ENOSPC;
    errors_reset();
    if (SSL_export_keying_material(ssl, out, EXPORTER_LEN, EXPORTER_LABEL,
                                   sizeof(EXPORTER_LABEL) - 1, NULL, 0, 0) != 1) {
        char reasons[256];
        take_errors(reasons, sizeof(reasons));
        core_log(c->ctx->log, CORE_LOG_WARN, c->id, "TLS exporter failed: %s", reasons);
        return -EIO;
    }
    *len = EXPORTER_LEN;
    return 0;
}

int net_conn_tls_server_end_point(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len)
{
    SSL *ssl = ready_ssl(c);
    if (ssl == NULL)
        return -ENOTCONN;
    X509 *cert = SSL_is_server(ssl) ? SSL_get_certificate(ssl) : SSL_get0_peer_certificate(ssl);
    int md_nid = NID_undef;
    if (cert == NULL || X509_get_signature_info(cert, &md_nid, NULL, NULL, NULL) != 1)
        return -ENOTSUP;
    if (md_nid == NID_md5 || md_nid == NID_sha1)
        md_nid = NID_sha256;
    if (md_nid == NID_undef)
        return -ENOTSUP;
    int rc = 0;
    errors_reset();
    EVP_MD *md = EVP_MD_fetch(NULL, OBJ_nid2sn(md_nid), NULL);
    unsigned int n = 0;
    if (md == NULL) {
        rc = -ENOTSUP;
        goto out;
    }
    if (EVP_MD_get_size(md) <= 0 || (out != NULL && (size_t)EVP_MD_get_size(md) > cap)) {
        rc = -ENOSPC;
        goto out;
    }
    if (out == NULL) {
        *len = (size_t)EVP_MD_get_size(md);
        goto out;
    }
    if (X509_digest(cert, md, out, &n) != 1) {
        rc = -EIO;
        goto out;
    }
    *len = n;
out:
    errors_reset();
    EVP_MD_free(md);
    return rc;
}
