/* SPDX-License-Identifier: MIT */
/* The client load generator's connections: STARTTLS, SCRAM-SHA-1, bind, roster, presence. */

#include "clientload.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#define CL_NS_SEP '\x1f'
#define NS_STREAM "http://etherx.jabber.org/streams"
#define NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_CLIENT "jabber:client"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"

/* ---- base64 and SCRAM-SHA-1 (RFC 5802) ---- */

static size_t b64_encode(char *out, const unsigned char *in, size_t len)
{
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

/* Decodes into out (room for 3/4 of len); returns the length or -EINVAL. */
static int b64_decode(unsigned char *out, const char *in, size_t len)
{
    while (len && (in[len - 1] == '\n' || in[len - 1] == '\r' || in[len - 1] == ' '))
        len--;
    if (len % 4 != 0)
        return -EINVAL;
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    if (n < 0)
        return -EINVAL;
    for (size_t i = len; i > 0 && in[i - 1] == '='; i--)
        n--;
    return n;
}

static bool hmac_sha1(const unsigned char *key, size_t klen, const void *data, size_t dlen,
                      unsigned char *out)
{
    unsigned len = 0;
    return HMAC(EVP_sha1(), key, (int)klen, data, dlen, out, &len) && len == CL_SHA1_LEN;
}

static uint32_t cache_hash(const unsigned char *salt, size_t len, unsigned iter)
{
    uint32_t h = 2166136261u ^ iter;
    for (size_t i = 0; i < len; i++)
        h = (h ^ salt[i]) * 16777619u;
    return h;
}

/* SaltedPassword := Hi(password, salt, i), from the cache or computed and cached. */
static bool salted_password(clientload_t *cl, const unsigned char *salt, size_t salt_len,
                            unsigned iter, unsigned char *out)
{
    uint32_t h = cache_hash(salt, salt_len, iter);
    struct cl_cache_entry *free_slot = NULL;
    for (unsigned k = 0; k < CL_CACHE_PROBES && salt_len <= CL_SALT_MAX; k++) {
        struct cl_cache_entry *e = &cl->cache[(h + k) % CL_CACHE_SLOTS];
        if (e->salt_len == 0) {
            free_slot = e;
            break;
        }
        if (e->salt_len == salt_len && e->iter == iter && memcmp(e->salt, salt, salt_len) == 0) {
            memcpy(out, e->salted, CL_SHA1_LEN);
            return true;
        }
    }
    cl->pbkdf2_runs++;
    if (PKCS5_PBKDF2_HMAC(cl->password, (int)cl->password_len, salt, (int)salt_len, (int)iter,
                          EVP_sha1(), CL_SHA1_LEN, out) != 1)
        return false;
    if (free_slot) {
        memcpy(free_slot->salt, salt, salt_len);
        free_slot->salt_len = (unsigned)salt_len;
        free_slot->iter = iter;
        memcpy(free_slot->salted, out, CL_SHA1_LEN);
    }
    return true;
}

/* Finds "k=value" in a comma-separated SCRAM message. */
static bool scram_attr(const char *msg, size_t len, char key, const char **val, size_t *vlen)
{
    const char *p = msg, *end = msg + len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *e = comma ? comma : end;
        if (e - p >= 2 && p[0] == key && p[1] == '=') {
            *val = p + 2;
            *vlen = (size_t)(e - p - 2);
            return true;
        }
        p = e + 1;
    }
    return false;
}

static void send_auth(cl_conn_t *c)
{
    unsigned char raw[18];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        cl_conn_fail(c, "RAND_bytes failed");
        return;
    }
    b64_encode(c->cnonce, raw, sizeof(raw));
    snprintf(c->cfirst_bare, sizeof(c->cfirst_bare), "n=%s%u,r=%s", c->cl->opt.user_prefix, c->user,
             c->cnonce);
    char first[CL_SMALL * 2 + 8], b64[CL_SMALL * 4];
    int n = snprintf(first, sizeof(first), "n,,%s", c->cfirst_bare);
    size_t blen = b64_encode(b64, (const unsigned char *)first, (size_t)n);
    char out[CL_SMALL * 5];
    n = snprintf(out, sizeof(out), "<auth xmlns='" NS_SASL "' mechanism='SCRAM-SHA-1'>%.*s</auth>",
                 (int)blen, b64);
    cl_conn_send(c, out, (size_t)n);
    c->step = STEP_SASL;
}

/* The client-final message, from the server-first message in c->text (base64). */
static void on_challenge(cl_conn_t *c)
{
    unsigned char sfirst[CL_TEXT_MAX], salt[CL_SALT_MAX * 2];
    int slen = c->text_over ? -EINVAL : b64_decode(sfirst, c->text, c->text_len);
    const char *r, *s, *i;
    size_t rlen, sl, il;
    if (slen <= 0 || !scram_attr((char *)sfirst, (size_t)slen, 'r', &r, &rlen) ||
        !scram_attr((char *)sfirst, (size_t)slen, 's', &s, &sl) ||
        !scram_attr((char *)sfirst, (size_t)slen, 'i', &i, &il)) {
        cl_conn_fail(c, "malformed SCRAM server-first message");
        return;
    }
    size_t cn = strlen(c->cnonce);
    char itext[16];
    int salt_len = sl < sizeof(salt) * 4 / 3 ? b64_decode(salt, s, sl) : -EINVAL;
    snprintf(itext, sizeof(itext), "%.*s", (int)(il < 15 ? il : 15), i);
    long iter = strtol(itext, NULL, 10);
    if (rlen <= cn || memcmp(r, c->cnonce, cn) != 0 || rlen > CL_SMALL || salt_len <= 0 ||
        iter < 1 || iter > 10000000) {
        cl_conn_fail(c, "bad nonce, salt or iteration count in SCRAM server-first message");
        return;
    }
    unsigned char salted[CL_SHA1_LEN], ckey[CL_SHA1_LEN], skey[CL_SHA1_LEN];
    unsigned char stored[CL_SHA1_LEN], csig[CL_SHA1_LEN], proof[CL_SHA1_LEN];
    char without[CL_SMALL + 16], authmsg[CL_TEXT_MAX + 512];
    snprintf(without, sizeof(without), "c=biws,r=%.*s", (int)rlen, r);
    int al = snprintf(authmsg, sizeof(authmsg), "%s,%.*s,%s", c->cfirst_bare, slen, (char *)sfirst,
                      without);
    unsigned dlen = 0;
    if (!salted_password(c->cl, salt, (size_t)salt_len, (unsigned)iter, salted) ||
        !hmac_sha1(salted, CL_SHA1_LEN, "Client Key", 10, ckey) ||
        EVP_Digest(ckey, CL_SHA1_LEN, stored, &dlen, EVP_sha1(), NULL) != 1 ||
        !hmac_sha1(stored, CL_SHA1_LEN, authmsg, (size_t)al, csig) ||
        !hmac_sha1(salted, CL_SHA1_LEN, "Server Key", 10, skey) ||
        !hmac_sha1(skey, CL_SHA1_LEN, authmsg, (size_t)al, c->server_sig)) {
        cl_conn_fail(c, "SCRAM computation failed");
        return;
    }
    for (int k = 0; k < CL_SHA1_LEN; k++)
        proof[k] = ckey[k] ^ csig[k];
    char final[CL_SMALL * 2 + 64], b64[CL_SMALL * 4], out[CL_SMALL * 5];
    int fl = snprintf(final, sizeof(final), "%s,p=", without);
    fl += (int)b64_encode(final + fl, proof, CL_SHA1_LEN);
    size_t blen = b64_encode(b64, (const unsigned char *) final, (size_t)fl);
    int n =
        snprintf(out, sizeof(out), "<response xmlns='" NS_SASL "'>%.*s</response>", (int)blen, b64);
    cl_conn_send(c, out, (size_t)n);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    c->step = STEP_SASL_FINAL;
}

/* Checks the server-final message "v=ServerSignature" (RFC 5802 §3), base64 in c->text. */
static bool server_final_ok(cl_conn_t *c)
{
    unsigned char msg[CL_SMALL * 2];
    char want[64];
    int n = c->text_len < sizeof(msg) ? b64_decode(msg, c->text, c->text_len) : -EINVAL;
    size_t wl = b64_encode(want, c->server_sig, CL_SHA1_LEN);
    const char *v;
    size_t vlen;
    return n > 0 && scram_attr((char *)msg, (size_t)n, 'v', &v, &vlen) && vlen == wl &&
        memcmp(v, want, wl) == 0;
}

/* ---- output ---- */

/* Queues n plaintext bytes: through TLS once it runs. conn_flush() writes them out. */
void cl_conn_send(cl_conn_t *c, const char *p, size_t n)
{
    if (c->dead || c->closing)
        return;
    if (!c->tls_on) {
        core_buf_append(&c->out, p, n);
        return;
    }
    ERR_clear_error();
    /* A memory BIO takes everything: SSL_write completes at once. */
    if (SSL_write(c->ssl, p, (int)n) != (int)n)
        cl_conn_fail(c, "SSL_write failed");
}

/* Moves what TLS produced (handshake, records) to the output buffer. */
static void tls_drain(cl_conn_t *c)
{
    size_t pending;
    while (c->wbio && (pending = BIO_ctrl_pending(c->wbio)) > 0) {
        char *dst = core_buf_reserve(&c->out, pending);
        int n = BIO_read(c->wbio, dst, (int)pending);
        if (n <= 0)
            break;
        core_buf_commit(&c->out, (size_t)n);
    }
}

static void on_write(uv_write_t *req, int status)
{
    cl_conn_t *c = req->data;
    c->write_pending = false;
    c->wq.len = 0;
    if (c->closing)
        return;
    if (status < 0) {
        cl_conn_fail(c, "write failed: %s", uv_strerror(status));
        cl_conn_settle(c);
        return;
    }
    cl_conn_settle(c);
    if (c->cl->opt.mode == CL_MODE_MESSAGE && c->index >= c->cl->opt.pairs)
        cl_sender_pump(c);
    else if (c->cl->opt.mode == CL_MODE_ROOM)
        cl_room_pump(c);
}

static void conn_flush(cl_conn_t *c)
{
    if (c->tls_on)
        tls_drain(c);
    if (c->write_pending || c->out.len == 0 || c->closing)
        return;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)c->out.len) {
        c->out.len = 0;
        return;
    }
    if (r < 0 && r != UV_EAGAIN) {
        cl_conn_fail(c, "write failed: %s", uv_strerror(r));
        return;
    }
    size_t done = r > 0 ? (size_t)r : 0;
    /* The rest goes to uv_write from wq; out starts empty (wq is empty when no write runs). */
    core_buf_t t = c->wq;
    c->wq = c->out;
    c->out = t;
    b = uv_buf_init(c->wq.data + done, (unsigned)(c->wq.len - done));
    c->wreq.data = c;
    r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0) {
        cl_conn_fail(c, "write failed: %s", uv_strerror(r));
        return;
    }
    c->write_pending = true;
}

static void send_header(cl_conn_t *c)
{
    char h[512];
    int n = snprintf(h, sizeof(h),
                     "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
                     "' xmlns:stream='" NS_STREAM "' to='%s' version='1.0'>",
                     c->cl->opt.domain);
    cl_conn_send(c, h, (size_t)n);
}

/* ---- errors and closing ---- */

static const char *const step_names[] = {
    "connecting", "features",   "starttls",      "tls",  "features-tls", "register",
    "sasl",       "sasl-final", "features-auth", "bind", "session",      "roster+presence",
    "joining",    "online",     "closing",
};

void cl_conn_fail(cl_conn_t *c, const char *fmt, ...)
{
    if (c->dead || c->closing)
        return;
    clientload_t *cl = c->cl;
    c->dead = true;
    if (c->in_parse)
        XML_StopParser(c->xp, XML_FALSE);
    if (cl->stopping && cl->phase >= PH_SETTLE)
        return; /* errors while closing at the end do not count */
    cl->errors++;
    if (cl->errors <= CL_ERRORS_SHOWN) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "clientload: %s%u (%s): ", cl->opt.user_prefix, c->user,
                step_names[c->step]);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        if (c->last_len)
            fprintf(stderr, "clientload:   last bytes from the server: %.*s\n", (int)c->last_len,
                    c->last);
    }
    if (cl_mode_keeps_conns(cl->opt.mode))
        cl_abort(cl, "a connection failed");
    else if (cl->errors > cl->opt.max_errors)
        cl_abort(cl, "too many errors");
}

static void on_closed(uv_handle_t *h)
{
    cl_conn_t *c = h->data;
    SSL_free(c->ssl); /* frees both BIOs */
    c->ssl = NULL;
    c->rbio = c->wbio = NULL;
    if (c->xp)
        XML_ParserFree(c->xp);
    c->xp = NULL;
    core_buf_release(&c->out);
    core_buf_release(&c->wq);
    c->in_use = false;
    c->cl->open_conns--;
    cl_conn_closed(c);
}

void cl_conn_close(cl_conn_t *c)
{
    if (c->closing || !c->in_use)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* Ends every entry point into a connection: closes a failed one, else writes what is queued. */
void cl_conn_settle(cl_conn_t *c)
{
    if (c->closing)
        return;
    if (c->dead) {
        cl_conn_close(c);
        return;
    }
    conn_flush(c);
    if (c->dead)
        cl_conn_close(c);
}

/* Sends </stream:stream> and waits (bounded) for the server to close. */
void cl_conn_end_stream(cl_conn_t *c)
{
    static const char end[] = "</stream:stream>";
    if (c->closing || c->dead)
        return;
    cl_conn_send(c, end, sizeof(end) - 1);
    c->step = STEP_CLOSING;
    c->close_deadline = uv_hrtime() + (uint64_t)(c->cl->opt.close_timeout * 1e9);
}

/* ---- XML input ---- */

static bool name_is(const char *name, const char *ns, const char *local)
{
    size_t n = strlen(ns);
    return strncmp(name, ns, n) == 0 && name[n] == CL_NS_SEP && strcmp(name + n + 1, local) == 0;
}

static const char *local_name(const char *name)
{
    const char *sep = strrchr(name, CL_NS_SEP);
    return sep ? sep + 1 : name;
}

static const char *attr(const XML_Char **atts, const char *name)
{
    for (size_t i = 0; atts[i]; i += 2) {
        if (strcmp(atts[i], name) == 0)
            return atts[i + 1];
    }
    return NULL;
}

static void copy_attr(char *dst, size_t cap, const XML_Char **atts, const char *name)
{
    const char *v = attr(atts, name);
    snprintf(dst, cap, "%s", v ? v : "");
}

static enum cl_el classify(const char *name)
{
    static const struct {
        const char *ns, *local;
        enum cl_el el;
    } known[] = {
        {NS_CLIENT, "message", EL_MESSAGE},
        {NS_CLIENT, "presence", EL_PRESENCE},
        {NS_CLIENT, "iq", EL_IQ},
        {NS_STREAM, "features", EL_FEATURES},
        {NS_STREAM, "error", EL_STREAM_ERROR},
        {NS_TLS, "proceed", EL_PROCEED},
        {NS_TLS, "failure", EL_TLS_FAILURE},
        {NS_SASL, "challenge", EL_CHALLENGE},
        {NS_SASL, "success", EL_SUCCESS},
        {NS_SASL, "failure", EL_SASL_FAILURE},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (name_is(name, known[i].ns, known[i].local))
            return known[i].el;
    }
    return EL_OTHER;
}

static void capture_start(cl_conn_t *c)
{
    c->cap_on = true;
    c->cap_depth = c->depth;
    c->text_len = 0;
    c->text_over = false;
    c->text[0] = '\0';
}

/* Message mode, the hot path: the id is "<seq>.<send time in µs>", both fixed width. Room mode
 * reads the header in the body instead (clientload_room.c). */
static void message_begin(cl_conn_t *c, const XML_Char **atts)
{
    const char *id = attr(atts, "id");
    const char *type = attr(atts, "type");
    c->msg_error = type && strcmp(type, "error") == 0;
    c->msg_seq = 0;
    c->msg_ts = 0;
    if (c->cl->opt.mode == CL_MODE_ROOM) {
        c->body_on = type && strcmp(type, "groupchat") == 0;
        c->text_len = 0;
        c->text_over = false;
        c->err_cond[0] = '\0';
        return;
    }
    if (id && strlen(id) == CL_SEQ_DIGITS + 1 + CL_TS_DIGITS && id[CL_SEQ_DIGITS] == '.') {
        c->msg_seq = strtoull(id, NULL, 10);
        c->msg_ts = strtoull(id + CL_SEQ_DIGITS + 1, NULL, 10);
    }
}

static void stanza_begin(cl_conn_t *c, const XML_Char *name, const XML_Char **atts)
{
    c->el = classify(name);
    c->el2 = EL_OTHER;
    c->cap_on = false;
    switch (c->el) {
    case EL_MESSAGE:
        message_begin(c, atts);
        break;
    case EL_IQ:
        copy_attr(c->st_type, sizeof(c->st_type), atts, "type");
        copy_attr(c->st_id, sizeof(c->st_id), atts, "id");
        copy_attr(c->st_from, sizeof(c->st_from), atts, "from");
        c->st_conflict = false;
        c->err_cond[0] = '\0';
        break;
    case EL_PRESENCE:
        copy_attr(c->st_type, sizeof(c->st_type), atts, "type");
        copy_attr(c->st_from, sizeof(c->st_from), atts, "from");
        c->st_self = c->st_created = false;
        c->err_cond[0] = '\0';
        break;
    case EL_CHALLENGE:
    case EL_SUCCESS:
        capture_start(c);
        break;
    case EL_FEATURES:
        c->f_starttls = c->f_scram_sha1 = c->f_bind = false;
        c->f_session = c->f_session_optional = c->f_register = false;
        break;
    case EL_STREAM_ERROR:
        c->err_cond[0] = '\0';
        break;
    default:
        break;
    }
}

/* Room mode: the parts of presences and messages that a join and a delivery need. */
static void room_child(cl_conn_t *c, unsigned d, const XML_Char *name, const XML_Char **atts)
{
    if (c->el == EL_MESSAGE && d == 2 && c->body_on && name_is(name, NS_CLIENT, "body")) {
        capture_start(c);
    } else if (c->el == EL_PRESENCE && d == 3 && name_is(name, NS_MUC_USER, "status")) {
        /* XEP-0045 §7.2.2: 110 marks the occupant's own presence; §10.1.1: 201 a new room. */
        const char *code = attr(atts, "code");
        if (code && strcmp(code, "110") == 0)
            c->st_self = true;
        else if (code && strcmp(code, "201") == 0)
            c->st_created = true;
    }
}

/* An element inside a stanza; d is its depth (2 = child of the stanza). */
static void stanza_child(cl_conn_t *c, unsigned d, const XML_Char *name, const XML_Char **atts)
{
    if (c->cl->opt.mode == CL_MODE_ROOM && (c->el == EL_MESSAGE || c->el == EL_PRESENCE))
        room_child(c, d, name, atts);
    /* The defined condition of a stanza error (RFC 6120 §8.3.2), for the report. */
    if (d == 3 && (c->el == EL_IQ || c->el == EL_MESSAGE || c->el == EL_PRESENCE) &&
        !c->err_cond[0] && strncmp(name, NS_STANZAS, strlen(NS_STANZAS)) == 0 &&
        strcmp(local_name(name), "text") != 0)
        snprintf(c->err_cond, sizeof(c->err_cond), "%s", local_name(name));

    if (c->el == EL_FEATURES && d == 2) {
        c->el2 = EL_OTHER;
        if (name_is(name, NS_TLS, "starttls")) {
            c->f_starttls = true;
        } else if (name_is(name, NS_SASL, "mechanisms")) {
            c->el2 = EL_MECHANISMS;
        } else if (name_is(name, NS_BIND, "bind")) {
            c->f_bind = true;
        } else if (name_is(name, NS_SESSION, "session")) {
            c->f_session = true;
            c->el2 = EL_SESSION;
        } else if (name_is(name, NS_REGISTER_FEATURE, "register")) {
            c->f_register = true;
        }
    } else if (c->el == EL_FEATURES && d == 3) {
        if (c->el2 == EL_MECHANISMS && name_is(name, NS_SASL, "mechanism"))
            capture_start(c);
        else if (c->el2 == EL_SESSION && name_is(name, NS_SESSION, "optional"))
            c->f_session_optional = true;
    } else if (c->el == EL_IQ) {
        if (d == 2 && name_is(name, NS_BIND, "bind"))
            c->el2 = EL_BIND;
        else if (d == 3 && c->el2 == EL_BIND && name_is(name, NS_BIND, "jid"))
            capture_start(c);
        else if (name_is(name, NS_STANZAS, "conflict"))
            c->st_conflict = true;
    } else if (c->el == EL_STREAM_ERROR && d == 2 && !c->err_cond[0]) {
        snprintf(c->err_cond, sizeof(c->err_cond), "%s", local_name(name));
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    cl_conn_t *c = ud;
    unsigned d = c->depth++;
    if (d == 1)
        stanza_begin(c, name, atts);
    else if (d >= 2)
        stanza_child(c, d, name, atts);
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    cl_conn_t *c = ud;
    if (!c->cap_on || c->depth != c->cap_depth)
        return;
    if (c->text_len + (size_t)len >= sizeof(c->text)) {
        c->text_over = true;
        return;
    }
    memcpy(c->text + c->text_len, s, (size_t)len);
    c->text_len += (size_t)len;
    c->text[c->text_len] = '\0';
}

static void capture_end(cl_conn_t *c)
{
    c->cap_on = false;
    c->text[c->text_len] = '\0';
    if (c->el == EL_FEATURES && c->el2 == EL_MECHANISMS) {
        if (strcmp(c->text, "SCRAM-SHA-1") == 0)
            c->f_scram_sha1 = true;
        else if (strcmp(c->text, "SCRAM-SHA-256") == 0)
            c->cl->sha256_offered = true;
    } else if (c->el == EL_IQ && c->el2 == EL_BIND) {
        if (c->text_len < sizeof(c->jid))
            memcpy(c->jid, c->text, c->text_len + 1);
    }
}

static void stanza_end(cl_conn_t *c);

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    cl_conn_t *c = ud;
    unsigned d = --c->depth;
    if (c->cap_on && d + 1 == c->cap_depth && d >= 2)
        capture_end(c);
    if (d == 1) {
        stanza_end(c);
    } else if (d == 0) {
        /* The server closed its stream. */
        if (c->step == STEP_CLOSING)
            cl_conn_close(c);
        else
            cl_conn_fail(c, "the server closed the stream");
    }
}

/*
 * Expat 2.6 (and backports of its fix for CVE-2023-52425) may hold a complete token back until
 * more bytes arrive; a client waiting for the server's answer must see it at once. The weak
 * declaration finds the switch where the library has it, whatever expat.h says.
 */
extern XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled)
    __attribute__((weak));

static void parser_start(cl_conn_t *c)
{
    static const XML_Memory_Handling_Suite mem = {
        .malloc_fcn = core_malloc,
        .realloc_fcn = core_realloc,
        .free_fcn = core_free,
    };
    static const XML_Char sep[] = {CL_NS_SEP, '\0'};
    if (c->xp) {
        XML_ParserReset(c->xp, NULL);
    } else {
        c->xp = XML_ParserCreate_MM(NULL, &mem, sep);
        if (!c->xp)
            abort();
    }
    if (XML_SetReparseDeferralEnabled != NULL)
        XML_SetReparseDeferralEnabled(c->xp, XML_FALSE);
    XML_SetUserData(c->xp, c);
    XML_SetElementHandler(c->xp, on_start, on_end);
    XML_SetCharacterDataHandler(c->xp, on_text);
    c->depth = 0;
    c->action = ACT_NONE;
}

static void remember_last(cl_conn_t *c, const char *data, size_t len)
{
    if (len >= CL_LAST_BYTES) {
        memcpy(c->last, data + len - CL_LAST_BYTES, CL_LAST_BYTES);
        c->last_len = CL_LAST_BYTES;
        return;
    }
    size_t keep = c->last_len + len > CL_LAST_BYTES ? CL_LAST_BYTES - len : c->last_len;
    memmove(c->last, c->last + c->last_len - keep, keep);
    memcpy(c->last + keep, data, len);
    c->last_len = keep + len;
}

static void tls_start(cl_conn_t *c);

/* Feeds plaintext from the server to the parser, then does what a handler asked for. */
static void xml_input(cl_conn_t *c, const char *data, size_t len)
{
    remember_last(c, data, len);
    c->in_parse = true;
    enum XML_Status st = XML_Parse(c->xp, data, (int)len, XML_FALSE);
    c->in_parse = false;
    if (c->dead || c->closing)
        return;
    if (st != XML_STATUS_OK && c->action == ACT_NONE) {
        cl_conn_fail(c, "XML error: %s", XML_ErrorString(XML_GetErrorCode(c->xp)));
        return;
    }
    /* Bytes after <proceed/> or <success/> in the same read are dropped (RFC 6120 §5.4.3.3). */
    enum cl_action a = c->action;
    c->action = ACT_NONE;
    if (a == ACT_STARTTLS) {
        tls_start(c);
    } else if (a == ACT_RESTART) {
        parser_start(c);
        send_header(c);
    }
}

/* ---- TLS ---- */

static void tls_handshake(cl_conn_t *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        clientload_t *cl = c->cl;
        c->handshake_done = true;
        if (!cl->tls_desc[0])
            snprintf(cl->tls_desc, sizeof(cl->tls_desc), "%s/%s", SSL_get_version(c->ssl),
                     SSL_get_cipher_name(c->ssl));
        c->step = STEP_FEATURES_TLS;
        send_header(c);
        return;
    }
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ)
        return;
    unsigned long err = ERR_peek_error();
    cl_conn_fail(c, "TLS handshake failed: %s",
                 err ? ERR_reason_error_string(err) : "connection closed");
}

static void tls_start(cl_conn_t *c)
{
    c->ssl = SSL_new(c->cl->tls);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (!c->ssl || !c->rbio || !c->wbio) {
        cl_conn_fail(c, "cannot create the TLS session");
        return;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_tlsext_host_name(c->ssl, c->cl->opt.domain);
    SSL_set_connect_state(c->ssl);
    c->tls_on = true;
    c->step = STEP_TLS;
    parser_start(c);
    tls_handshake(c);
}

static void tls_input(cl_conn_t *c, const char *data, size_t len)
{
    if (BIO_write(c->rbio, data, (int)len) != (int)len) {
        cl_conn_fail(c, "BIO_write failed");
        return;
    }
    if (!c->handshake_done) {
        tls_handshake(c);
        if (!c->handshake_done)
            return;
    }
    char *buf = c->cl->pbuf;
    while (!c->dead && !c->closing) {
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf, CL_READ_BYTES);
        if (n > 0) {
            xml_input(c, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(c->ssl, n);
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            if (c->step == STEP_CLOSING)
                cl_conn_close(c);
            else
                cl_conn_fail(c, "the server ended TLS");
        } else {
            unsigned long err = ERR_peek_error();
            cl_conn_fail(c, "TLS read failed: %s", err ? ERR_reason_error_string(err) : "?");
        }
        break;
    }
}

/* ---- the login steps ---- */

static void on_features(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    char buf[512];
    int n;
    switch (c->step) {
    case STEP_FEATURES_PLAIN:
        if (!c->f_starttls) {
            cl_conn_fail(c, "the server offers no STARTTLS");
            return;
        }
        n = snprintf(buf, sizeof(buf), "<starttls xmlns='" NS_TLS "'/>");
        cl_conn_send(c, buf, (size_t)n);
        c->step = STEP_STARTTLS;
        return;
    case STEP_FEATURES_TLS:
        if (cl->opt.mode == CL_MODE_REGISTER) {
            /* XEP-0077 §3.1, without first asking for the form: username and password. */
            n = snprintf(buf, sizeof(buf),
                         "<iq type='set' id='reg'><query xmlns='jabber:iq:register'>"
                         "<username>%s%u</username><password>%s</password></query></iq>",
                         cl->opt.user_prefix, c->user, cl->password);
            cl_conn_send(c, buf, (size_t)n);
            c->step = STEP_REGISTER;
            return;
        }
        if (!c->f_scram_sha1) {
            cl_conn_fail(c, "the server offers no SCRAM-SHA-1");
            return;
        }
        send_auth(c);
        return;
    case STEP_FEATURES_AUTH:
        if (!c->f_bind) {
            cl_conn_fail(c, "the server offers no resource binding");
            return;
        }
        /* A resource per login, so that two logins of one user never conflict. */
        n = snprintf(buf, sizeof(buf),
                     "<iq type='set' id='bind'><bind xmlns='" NS_BIND "'><resource>cl%u-%" PRIu64
                     "</resource></bind></iq>",
                     c->index, c->login_no);
        cl_conn_send(c, buf, (size_t)n);
        c->step = STEP_BIND;
        return;
    default:
        return;
    }
}

static void send_roster_presence(cl_conn_t *c)
{
    static const char carbons[] =
        "<iq type='set' id='carbons'><enable xmlns='urn:xmpp:carbons:2'/></iq>";
    static const char req[] = "<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>"
                              "<presence/>";
    /* As Conversations and Dino do at every login; the answer is not waited for. */
    if (c->cl->opt.carbons)
        cl_conn_send(c, carbons, sizeof(carbons) - 1);
    cl_conn_send(c, req, sizeof(req) - 1);
    c->step = STEP_ROSTER;
}

static void on_iq(cl_conn_t *c)
{
    bool result = strcmp(c->st_type, "result") == 0;
    if (c->step == STEP_JOINING && strcmp(c->st_id, "cfg") == 0) {
        cl_room_configured(c, result);
    } else if (c->step == STEP_REGISTER && strcmp(c->st_id, "reg") == 0) {
        if (!result && !c->st_conflict) {
            cl_conn_fail(c, "registration refused");
            return;
        }
        if (!result)
            c->cl->existed++;
        cl_login_done(c); /* counts it */
        cl_conn_end_stream(c);
    } else if (c->step == STEP_BIND && strcmp(c->st_id, "bind") == 0) {
        if (!result || !c->jid[0]) {
            cl_conn_fail(c, "resource binding failed");
            return;
        }
        if (c->f_session && !c->f_session_optional) {
            static const char s[] =
                "<iq type='set' id='sess'><session xmlns='" NS_SESSION "'/></iq>";
            cl_conn_send(c, s, sizeof(s) - 1);
            c->step = STEP_SESSION;
        } else {
            send_roster_presence(c);
        }
    } else if (c->step == STEP_SESSION && strcmp(c->st_id, "sess") == 0) {
        if (!result) {
            cl_conn_fail(c, "session establishment failed");
            return;
        }
        send_roster_presence(c);
    } else if (c->step == STEP_ROSTER && strcmp(c->st_id, "roster") == 0) {
        if (!result) {
            cl_conn_fail(c, "roster get failed");
            return;
        }
        c->got_roster = true;
    } else if (strcmp(c->st_type, "get") == 0 || strcmp(c->st_type, "set") == 0) {
        /* A server ping (XEP-0199) or anything else: answer, so that the server keeps us. */
        char buf[CL_SMALL + CL_JID_MAX + 64];
        int n = snprintf(buf, sizeof(buf), "<iq type='result' id='%s'%s%s%s/>", c->st_id,
                         c->st_from[0] ? " to='" : "", c->st_from, c->st_from[0] ? "'" : "");
        if (!strpbrk(c->st_id, "'<&") && !strpbrk(c->st_from, "'<&"))
            cl_conn_send(c, buf, (size_t)n);
    }
}

static void on_sasl(cl_conn_t *c)
{
    switch (c->el) {
    case EL_CHALLENGE:
        if (c->step == STEP_SASL) {
            on_challenge(c);
        } else if (c->step == STEP_SASL_FINAL && !c->sig_verified) {
            /* The server-final message in a challenge (RFC 6120 §6.4.6): verify, answer. */
            if (!server_final_ok(c)) {
                cl_conn_fail(c, "wrong SCRAM server signature");
                return;
            }
            c->sig_verified = true;
            static const char r[] = "<response xmlns='" NS_SASL "'/>";
            cl_conn_send(c, r, sizeof(r) - 1);
        }
        return;
    case EL_SUCCESS:
        if (c->step != STEP_SASL_FINAL || (!c->sig_verified && !server_final_ok(c))) {
            cl_conn_fail(c, "SASL success without a valid SCRAM server signature");
            return;
        }
        c->step = STEP_FEATURES_AUTH;
        c->action = ACT_RESTART;
        XML_StopParser(c->xp, XML_FALSE);
        return;
    default:
        cl_conn_fail(c, "SASL failure");
        return;
    }
}

static void on_presence(cl_conn_t *c)
{
    if (c->step == STEP_JOINING) {
        cl_room_presence(c);
        return;
    }
    if (c->step != STEP_ROSTER || c->st_type[0] || strcmp(c->st_from, c->jid) != 0)
        return;
    c->got_echo = true;
}

/* The receiver side of message mode. */
static void message_end(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    if (cl->opt.mode == CL_MODE_ROOM) {
        if (c->msg_error) {
            cl->bounced++;
            cl_conn_fail(c, "the room returned a message: <%s/>",
                         c->err_cond[0] ? c->err_cond : "?");
        } else if (c->body_on && c->step == STEP_ONLINE) {
            cl_room_message(c);
        }
        return;
    }
    if (cl->opt.mode != CL_MODE_MESSAGE || c->index >= cl->opt.pairs || c->msg_error) {
        cl->bounced++;
        return;
    }
    c->received++;
    if (c->msg_seq != c->received)
        cl->out_of_order++;
    if (cl->phase == PH_MEASURE && c->msg_ts) {
        uint64_t now = uv_hrtime() / 1000;
        cl_hist_add(cl, now > c->msg_ts ? now - c->msg_ts : 0);
    }
}

static void stanza_end(cl_conn_t *c)
{
    if (c->el == EL_MESSAGE) {
        message_end(c);
        return;
    }
    switch (c->el) {
    case EL_STREAM_ERROR:
        cl_conn_fail(c, "stream error <%s/>", c->err_cond);
        return;
    case EL_FEATURES:
        on_features(c);
        return;
    case EL_PROCEED:
        if (c->step == STEP_STARTTLS) {
            c->action = ACT_STARTTLS;
            XML_StopParser(c->xp, XML_FALSE);
        }
        return;
    case EL_TLS_FAILURE:
        cl_conn_fail(c, "STARTTLS failure");
        return;
    case EL_CHALLENGE:
    case EL_SUCCESS:
    case EL_SASL_FAILURE:
        on_sasl(c);
        return;
    case EL_IQ:
        on_iq(c);
        break;
    case EL_PRESENCE:
        on_presence(c);
        break;
    default:
        return;
    }
    if (c->step == STEP_ROSTER && !c->dead && c->got_roster &&
        (c->got_echo || c->cl->opt.wait_roster)) {
        c->logged_in = true;
        cl_login_done(c);
    }
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    cl_conn_t *c = h->data;
    *buf = uv_buf_init(c->cl->rbuf, sizeof(c->cl->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    cl_conn_t *c = stream->data;
    clientload_t *cl = c->cl;
    if (c->closing)
        return;
    if (nread < 0) {
        if (c->step == STEP_CLOSING)
            cl_conn_close(c);
        else
            cl_conn_fail(c, "the server closed the connection%s%s", nread == UV_EOF ? "" : ": ",
                         nread == UV_EOF ? "" : uv_strerror((int)nread));
        cl_conn_settle(c);
        return;
    }
    if (nread == 0)
        return;
    if (c->tls_on)
        tls_input(c, buf->base, (size_t)nread);
    else
        xml_input(c, buf->base, (size_t)nread);
    cl_conn_settle(c);
    if (cl->opt.mode == CL_MODE_MESSAGE && c->index < cl->opt.pairs)
        cl_input_done(c);
    else if (cl->opt.mode == CL_MODE_ROOM)
        cl_room_input_done(c);
}

static void on_connect(uv_connect_t *req, int status)
{
    cl_conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        cl_conn_fail(c, "connect failed: %s", uv_strerror(status));
        cl_conn_settle(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (r < 0) {
        cl_conn_fail(c, "read failed: %s", uv_strerror(r));
        cl_conn_settle(c);
        return;
    }
    parser_start(c);
    send_header(c);
    c->step = STEP_FEATURES_PLAIN;
    cl_conn_settle(c);
}

/* Starts a login (or registration) of user on connection slot c. */
void cl_conn_open(cl_conn_t *c, unsigned user, uint64_t login_no)
{
    clientload_t *cl = c->cl;
    unsigned index = c->index;
    char *msg = c->msg;
    uint64_t *room_seq = c->room_seq;
    size_t msg_len = c->msg_len, msg_id_at = c->msg_id_at;
    memset(c, 0, sizeof(*c));
    c->cl = cl;
    c->index = index;
    c->msg = msg;
    c->room_seq = room_seq;
    c->msg_len = msg_len;
    c->msg_id_at = msg_id_at;
    c->user = user;
    c->login_no = login_no;
    c->in_use = true;
    c->t_start = uv_hrtime();
    cl->open_conns++;
    uv_tcp_init(&cl->loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    int r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&cl->addr, on_connect);
    if (r < 0) {
        cl_conn_fail(c, "connect failed: %s", uv_strerror(r));
        cl_conn_settle(c);
    }
}
