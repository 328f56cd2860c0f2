/* SPDX-License-Identifier: MIT */
/* SCRAM-SHA-1/-256 and their -PLUS variants, server side (RFC 5802, RFC 7677). */
#include "sasl/internal.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/*
 * The messages are parsed by hand against the grammar of RFC 5802 §7, strictly: attributes in
 * their order, every value non-empty, '=' in names only as "=2C" or "=3D", the nonce printable,
 * base64 canonical. A peer's message never makes us read outside it or allocate more than its
 * own size.
 */

typedef struct cursor {
    const char *p;
    size_t len;
    size_t pos;
} cursor_t;

static bool at_end(const cursor_t *c)
{
    return c->pos == c->len;
}

static bool eat(cursor_t *c, char ch)
{
    if (c->pos < c->len && c->p[c->pos] == ch) {
        c->pos++;
        return true;
    }
    return false;
}

static bool is_alpha(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

/*
 * attr-val = ALPHA "=" value, the value running to the next ',' or the end and not empty.
 * With name 0 any letter is taken (and stored in *name_out). Leaves c unchanged on failure.
 */
static bool attr(cursor_t *c, char name, char *name_out, const char **v, size_t *vlen)
{
    if (c->len - c->pos < 2 || c->p[c->pos + 1] != '=')
        return false;
    char n = c->p[c->pos];
    if (name != 0 ? n != name : !is_alpha(n))
        return false;
    size_t start = c->pos + 2;
    const char *comma = memchr(c->p + start, ',', c->len - start);
    size_t end = comma != NULL ? (size_t)(comma - c->p) : c->len;
    if (end == start)
        return false;
    if (name_out != NULL)
        *name_out = n;
    *v = c->p + start;
    *vlen = end - start;
    c->pos = end;
    return true;
}

/* printable = %x21-2B / %x2D-7E: the nonce's characters. */
static bool printable(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (v[i] < 0x21 || v[i] > 0x7E || v[i] == ',')
            return false;
    }
    return true;
}

/* saslname: "=2C" is ',' and "=3D" is '='; any other '=' is malformed. out has vlen bytes. */
static bool saslname_decode(const char *v, size_t vlen, char *out, size_t *olen)
{
    size_t n = 0;
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] != '=') {
            out[n++] = v[i];
        } else if (vlen - i >= 3 && v[i + 1] == '2' && v[i + 2] == 'C') {
            out[n++] = ',';
            i += 2;
        } else if (vlen - i >= 3 && v[i + 1] == '3' && v[i + 2] == 'D') {
            out[n++] = '=';
            i += 2;
        } else {
            return false;
        }
    }
    *olen = n;
    return n != 0;
}

/* cb-name = 1*(ALPHA / DIGIT / "." / "-"); *known false for a well-formed name we lack. */
static bool cb_name_parse(const char *v, size_t len, sasl_cb_type_t *type, bool *known)
{
    for (size_t i = 0; i < len; i++) {
        char ch = v[i];
        if (!is_alpha(ch) && !(ch >= '0' && ch <= '9') && ch != '.' && ch != '-')
            return false;
    }
    *known = false;
    for (int t = 0; t < SASL_CB_COUNT; t++) {
        const char *name = sasl_cb_name((sasl_cb_type_t)t);
        if (strlen(name) == len && memcmp(name, v, len) == 0) {
            *type = (sasl_cb_type_t)t;
            *known = true;
        }
    }
    return true;
}

/*
 * Optional extensions: *("," attr-val) up to the end, or up to the proof when proof is not
 * NULL (then *proof_at is the offset of the ',' before "p=" and *proof the value). RFC 5802
 * §5.1: unknown optional attributes are ignored, but 'm' is mandatory to understand, and we
 * understand no 'm'. Returns NULL when fine, else the failure reason.
 */
static const char *extensions(cursor_t *c, const char **proof, size_t *proof_len, size_t *proof_at)
{
    while (!at_end(c)) {
        const char *v;
        size_t vlen, comma = c->pos;
        char name = 0;
        if (!eat(c, ',') || !attr(c, 0, &name, &v, &vlen))
            return "extension syntax";
        if (name == 'm')
            return "mandatory extension (m=) not supported";
        if (name == 'p' && proof != NULL) {
            *proof = v;
            *proof_len = vlen;
            *proof_at = comma;
            return at_end(c) ? NULL : "attribute after the proof";
        }
    }
    return proof != NULL ? "no proof" : NULL;
}

/* RFC 5802 §6: the gs2 flag must agree with the mechanism and with what we offered. */
static const char *binding_policy(const sasl_server_t *s, bool cb_known)
{
    const struct scram_state *st = &s->u.scram;
    switch (st->flag) {
    case 'p':
        if (!s->mech->plus)
            return "channel binding with a mechanism without -PLUS";
        if (!cb_known || s->cb[st->cb_type].len == 0)
            return "channel binding type not available";
        return NULL;
    case 'y':
        if (s->mech->plus)
            return "-PLUS mechanism without channel binding";
        /* The client could bind but thinks we cannot: someone removed -PLUS from our list. */
        if (s->plus_offered)
            return "downgrade: 'y' while -PLUS was offered";
        return NULL;
    default:
        return s->mech->plus ? "-PLUS mechanism without channel binding" : NULL;
    }
}

/* The gs2 header: gs2-cbind-flag "," [authzid] ",". */
static const char *parse_gs2(cursor_t *c, struct scram_state *st, bool *cb_known, const char **az,
                             size_t *az_len)
{
    const char *v;
    size_t vlen;

    if (eat(c, 'n')) {
        st->flag = 'n';
    } else if (eat(c, 'y')) {
        st->flag = 'y';
    } else if (attr(c, 'p', NULL, &v, &vlen)) {
        st->flag = 'p';
        if (!cb_name_parse(v, vlen, &st->cb_type, cb_known))
            return "channel binding name syntax";
    } else {
        return "gs2 flag";
    }
    if (!eat(c, ','))
        return "gs2 header syntax";
    /* The authzid is optional; it is checked once the user is known. */
    *az = NULL;
    *az_len = 0;
    (void)attr(c, 'a', NULL, az, az_len);
    if (!eat(c, ','))
        return "gs2 header syntax";
    return NULL;
}

/* Unescapes a saslname into a new buffer and hands it to set (user or authzid). */
static int set_name(sasl_server_t *s, const char *v, size_t vlen,
                    int (*set)(sasl_server_t *, const char *, size_t))
{
    char *name = core_malloc(vlen);
    size_t n = 0;
    int rc = saslname_decode(v, vlen, name, &n) ? set(s, name, n) : -EBADMSG;
    core_free(name);
    return rc;
}

/* client-first-message = gs2-header [reserved-mext ","] username "," nonce ["," extensions] */
static sasl_result_t client_first(sasl_server_t *s, const uint8_t *in, size_t len)
{
    struct scram_state *st = &s->u.scram;
    cursor_t c = {(const char *)in, len, 0};
    const char *why, *az, *user, *nonce;
    size_t az_len, user_len, nonce_len;
    bool cb_known = false;
    int rc;

    if (len > SASL_MSG_MAX || !sasl_utf8_valid(c.p, len))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-first not UTF-8 or too long");
    why = parse_gs2(&c, st, &cb_known, &az, &az_len);
    if (why != NULL)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, why);
    st->bare_off = c.pos;
    if (len - c.pos >= 2 && c.p[c.pos] == 'm' && c.p[c.pos + 1] == '=')
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "mandatory extension (m=) not supported");
    if (!attr(&c, 'n', NULL, &user, &user_len) || !eat(&c, ','))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-first username");
    if (!attr(&c, 'r', NULL, &nonce, &nonce_len) || !printable(nonce, nonce_len) ||
        nonce_len > SASL_CNONCE_MAX)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-first nonce");
    why = extensions(&c, NULL, NULL, NULL);
    if (why != NULL)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, why);

    why = binding_policy(s, cb_known);
    if (why != NULL)
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, why);
    rc = set_name(s, user, user_len, sasl_set_user);
    if (rc == -EBADMSG)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "username escaping");
    if (rc != 0)
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "username is not a localpart");
    if (az != NULL) {
        rc = set_name(s, az, az_len, sasl_set_authzid);
        if (rc == -EBADMSG)
            return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "authzid escaping");
        if (rc != 0)
            return sasl_fail(s, SASL_ERR_INVALID_AUTHZID, "authzid is not the user's JID");
    }

    memcpy(st->cnonce, nonce, nonce_len);
    st->cnonce_len = nonce_len;
    st->first = core_strndup(c.p, len);
    st->first_len = len;
    s->state = SASL_ST_NEED_CREDS;
    return SASL_NEED_CREDS;
}

/* server-first-message = nonce "," salt "," iteration-count ["," extensions] */
static sasl_result_t server_first(sasl_server_t *s)
{
    struct scram_state *st = &s->u.scram;
    const auth_scram_t *k = &s->creds.scram[s->mech->hash];
    uint8_t raw[SASL_SNONCE_RAW];
    char salt[2 * AUTH_SALT_MAX], iter[16]; /* base64 grows 4/3, plus padding and NUL */

    if (st->snonce_len == 0) {
        char tmp[SASL_SNONCE_LEN + 1];
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return sasl_fail(s, SASL_ERR_TEMPORARY_AUTH_FAILURE, "no random bytes");
        st->snonce_len = auth_b64_encode(raw, sizeof(raw), tmp);
        memcpy(st->snonce, tmp, st->snonce_len);
    }
    auth_b64_encode(k->salt, k->salt_len, salt);
    snprintf(iter, sizeof(iter), "%u", (unsigned)k->iter);

    core_buf_t *o = &s->out;
    core_buf_append(o, "r=", 2);
    core_buf_append(o, st->cnonce, st->cnonce_len);
    core_buf_append(o, st->snonce, st->snonce_len);
    core_buf_append_str(o, ",s=");
    core_buf_append_str(o, salt);
    core_buf_append_str(o, ",i=");
    core_buf_append_str(o, iter);
    st->server_first = core_strndup(o->data, o->len);
    st->server_first_len = o->len;
    s->state = SASL_ST_SENT_FIRST;
    return SASL_CONTINUE;
}

/*
 * RFC 5802 §3: ClientSignature = HMAC(StoredKey, AuthMessage), ClientKey = ClientProof XOR
 * ClientSignature, and the proof holds when H(ClientKey) is StoredKey. Also computes
 * ServerSignature = HMAC(ServerKey, AuthMessage) into server_sig.
 */
static bool proof_holds(const sasl_server_t *s, const char *am, size_t am_len, const uint8_t *proof,
                        uint8_t *server_sig)
{
    auth_hash_t h = s->mech->hash;
    const auth_scram_t *k = &s->creds.scram[h];
    size_t hl = auth_hash_len(h);
    uint8_t sig[AUTH_KEY_MAX], client_key[AUTH_KEY_MAX], stored[AUTH_KEY_MAX];
    bool ok = auth_hmac(h, k->stored_key, hl, am, am_len, sig) == 0;

    for (size_t i = 0; i < hl; i++)
        client_key[i] = proof[i] ^ sig[i];
    ok = ok && auth_hash(h, client_key, hl, stored) == 0;
    ok = ok && CRYPTO_memcmp(stored, k->stored_key, hl) == 0;
    ok = ok && auth_hmac(h, k->server_key, hl, am, am_len, server_sig) == 0;
    OPENSSL_cleanse(sig, sizeof(sig));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    OPENSSL_cleanse(stored, sizeof(stored));
    return ok;
}

/* c= must be the base64 of the gs2 header we got, plus the channel's data for 'p'. */
static bool binding_matches(const sasl_server_t *s, const uint8_t *cb, size_t cb_len)
{
    const struct scram_state *st = &s->u.scram;
    const sasl_cb_data_t *d = st->flag == 'p' ? &s->cb[st->cb_type] : NULL;
    size_t want = st->bare_off + (d != NULL ? d->len : 0);

    if (cb_len != want || memcmp(cb, st->first, st->bare_off) != 0)
        return false;
    return d == NULL || CRYPTO_memcmp(cb + st->bare_off, d->data, d->len) == 0;
}

static bool nonce_matches(const struct scram_state *st, const char *v, size_t vlen)
{
    return vlen == st->cnonce_len + st->snonce_len && memcmp(v, st->cnonce, st->cnonce_len) == 0 &&
        memcmp(v + st->cnonce_len, st->snonce, st->snonce_len) == 0;
}

/* The checks after the syntax: binding, nonce, proof, then who the user is. */
static sasl_result_t final_verdict(sasl_server_t *s, const char *msg, size_t without_proof,
                                   const uint8_t *proof)
{
    struct scram_state *st = &s->u.scram;
    size_t hl = auth_hash_len(s->mech->hash);
    uint8_t server_sig[AUTH_KEY_MAX];
    core_buf_t am = {0};
    bool ok;

    /* AuthMessage = client-first-message-bare "," server-first-message "," final-without-proof */
    core_buf_append(&am, st->first + st->bare_off, st->first_len - st->bare_off);
    core_buf_append(&am, ",", 1);
    core_buf_append(&am, st->server_first, st->server_first_len);
    core_buf_append(&am, ",", 1);
    core_buf_append(&am, msg, without_proof);
    ok = proof_holds(s, am.data, am.len, proof, server_sig);
    core_buf_release(&am);
    if (!ok || s->fake) {
        OPENSSL_cleanse(server_sig, sizeof(server_sig));
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, s->fake ? "no such user" : "wrong proof");
    }
    if (s->creds.state == AUTH_ACCOUNT_DISABLED)
        return sasl_fail(s, SASL_ERR_ACCOUNT_DISABLED, "account disabled");
    if (s->creds.state == AUTH_ACCOUNT_EXPIRED)
        return sasl_fail(s, SASL_ERR_CREDENTIALS_EXPIRED, "credentials expired");

    /* server-final-message = "v=" base64(ServerSignature), the <success/> data. */
    core_buf_append(&s->out, "v=", 2);
    sasl_b64_encode(server_sig, hl, &s->out);
    OPENSSL_cleanse(server_sig, sizeof(server_sig));
    return SASL_SUCCESS;
}

/* client-final-message = channel-binding "," nonce ["," extensions] "," proof */
static sasl_result_t client_final(sasl_server_t *s, const uint8_t *in, size_t len)
{
    struct scram_state *st = &s->u.scram;
    cursor_t c = {(const char *)in, len, 0};
    uint8_t cb[SASL_MSG_MAX / 4 * 3], proof[AUTH_KEY_MAX];
    const char *v, *nonce, *pv = NULL, *why;
    size_t vlen, nonce_len, pv_len = 0, proof_at = 0, cb_len = 0, proof_len = 0;

    if (len == 0 || len > SASL_MSG_MAX || !sasl_utf8_valid(c.p, len))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-final not UTF-8 or too long");
    if (!attr(&c, 'c', NULL, &v, &vlen) || auth_b64_decode(v, vlen, cb, sizeof(cb), &cb_len) != 0 ||
        !eat(&c, ','))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-final channel binding");
    if (!attr(&c, 'r', NULL, &nonce, &nonce_len))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-final nonce");
    why = extensions(&c, &pv, &pv_len, &proof_at);
    if (why != NULL)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, why);
    if (auth_b64_decode(pv, pv_len, proof, sizeof(proof), &proof_len) != 0 ||
        proof_len != auth_hash_len(s->mech->hash))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "client-final proof");

    if (!binding_matches(s, cb, cb_len))
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "channel binding mismatch");
    if (!nonce_matches(st, nonce, nonce_len))
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "nonce mismatch");
    return final_verdict(s, c.p, proof_at, proof);
}

sasl_result_t sasl_scram_step(sasl_server_t *s, const uint8_t *in, size_t len)
{
    switch (s->state) {
    case SASL_ST_START:
    case SASL_ST_CHALLENGED:
        if (len != 0)
            return client_first(s, in, len);
        /* RFC 6120 §6.4.2: no initial response; an empty challenge asks for it, once. */
        if (s->state == SASL_ST_CHALLENGED)
            return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "empty client-first");
        s->state = SASL_ST_CHALLENGED;
        return SASL_CONTINUE;
    case SASL_ST_HAVE_CREDS:
        return server_first(s);
    case SASL_ST_SENT_FIRST:
        return client_final(s, in, len);
    default:
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "unexpected SCRAM message");
    }
}

void sasl_scram_clear(sasl_server_t *s)
{
    struct scram_state *st = &s->u.scram;
    if (st->first != NULL) {
        OPENSSL_cleanse(st->first, st->first_len);
        core_free(st->first);
    }
    if (st->server_first != NULL) {
        OPENSSL_cleanse(st->server_first, st->server_first_len);
        core_free(st->server_first);
    }
    OPENSSL_cleanse(st, sizeof(*st));
}
