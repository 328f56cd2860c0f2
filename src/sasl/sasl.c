/* SPDX-License-Identifier: MIT */
/* The SASL server session: mechanism choice, the step dispatcher, users, credentials, base64. */
#include "sasl/sasl.h"
#include "sasl/internal.h"

#include "core/utf8.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

/* Strongest first: the order sasl_mechs_offer advertises them in. */
static const sasl_mech_t mechs[SASL_MECH_COUNT] = {
    {.name = "SCRAM-SHA-256-PLUS", .scram = true, .hash = AUTH_HASH_SHA256, .plus = true},
    {.name = "SCRAM-SHA-1-PLUS", .scram = true, .hash = AUTH_HASH_SHA1, .plus = true},
    {.name = "SCRAM-SHA-256", .scram = true, .hash = AUTH_HASH_SHA256},
    {.name = "SCRAM-SHA-1", .scram = true, .hash = AUTH_HASH_SHA1},
    {.name = "PLAIN", .scram = false, .hash = AUTH_HASH_SHA256},
};

static const char *const error_names[] = {
    [SASL_ERR_NONE] = "",
    [SASL_ERR_ABORTED] = "aborted",
    [SASL_ERR_ACCOUNT_DISABLED] = "account-disabled",
    [SASL_ERR_CREDENTIALS_EXPIRED] = "credentials-expired",
    [SASL_ERR_ENCRYPTION_REQUIRED] = "encryption-required",
    [SASL_ERR_INCORRECT_ENCODING] = "incorrect-encoding",
    [SASL_ERR_INVALID_AUTHZID] = "invalid-authzid",
    [SASL_ERR_INVALID_MECHANISM] = "invalid-mechanism",
    [SASL_ERR_MALFORMED_REQUEST] = "malformed-request",
    [SASL_ERR_MECHANISM_TOO_WEAK] = "mechanism-too-weak",
    [SASL_ERR_NOT_AUTHORIZED] = "not-authorized",
    [SASL_ERR_TEMPORARY_AUTH_FAILURE] = "temporary-auth-failure",
};

static const char *const cb_names[SASL_CB_COUNT] = {
    [SASL_CB_TLS_UNIQUE] = "tls-unique",
    [SASL_CB_TLS_EXPORTER] = "tls-exporter",
    [SASL_CB_TLS_SERVER_END_POINT] = "tls-server-end-point",
};

const char *sasl_error_name(sasl_error_t e)
{
    if ((size_t)e >= sizeof(error_names) / sizeof(error_names[0]))
        return "undefined-condition";
    return error_names[e];
}

const char *sasl_cb_name(sasl_cb_type_t t)
{
    return (size_t)t < SASL_CB_COUNT ? cb_names[t] : "";
}

unsigned sasl_cb_mask(const sasl_cb_data_t cb[SASL_CB_COUNT])
{
    unsigned mask = 0;
    for (int t = 0; cb != NULL && t < SASL_CB_COUNT; t++) {
        if (cb[t].len != 0)
            mask |= 1u << t;
    }
    return mask;
}

size_t sasl_mechs_offer(bool tls, unsigned cb_mask, const char **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < SASL_MECH_COUNT && n < cap; i++) {
        const sasl_mech_t *m = &mechs[i];
        if (m->plus && cb_mask == 0)
            continue;
        /* RFC 6120 §6.4.1 and RFC 4616 §6: never a clear-text password outside TLS. */
        if (!m->scram && !tls)
            continue;
        out[n++] = m->name;
    }
    return n;
}

sasl_result_t sasl_fail(sasl_server_t *s, sasl_error_t e, const char *reason)
{
    s->state = SASL_ST_DONE;
    s->error = e;
    s->reason = reason;
    return SASL_FAILURE;
}

bool sasl_utf8_valid(const char *p, size_t len)
{
    return core_utf8_valid(p, len);
}

int sasl_set_user(sasl_server_t *s, const char *authcid, size_t len)
{
    const char *dom = jid_domain_ptr(&s->domain);
    size_t n = len + 1 + s->domain.domain_len;
    int rc = -EINVAL;

    /* The authcid is a simple user name (RFC 6120 §6.3.7): the localpart of our domain. */
    if (len == 0 || memchr(authcid, '@', len) != NULL || memchr(authcid, '/', len) != NULL)
        return -EINVAL;
    char *buf = core_malloc(n);
    memcpy(buf, authcid, len);
    buf[len] = '@';
    memcpy(buf + len + 1, dom, s->domain.domain_len);
    if (jid_parse(NULL, buf, n, &s->user) == 0) {
        if (jid_has_node(&s->user) && !jid_has_resource(&s->user)) {
            s->have_user = true;
            rc = 0;
        } else {
            jid_clear(&s->user);
        }
    }
    core_free(buf);
    return rc;
}

int sasl_set_authzid(sasl_server_t *s, const char *authzid, size_t len)
{
    if (!s->have_user || jid_parse(NULL, authzid, len, &s->authzid) != 0)
        return -EINVAL;
    if (!jid_equal(&s->authzid, &s->user)) {
        jid_clear(&s->authzid);
        return -EINVAL;
    }
    s->have_authzid = true;
    return 0;
}

void sasl_fake_creds(sasl_server_t *s)
{
    auth_hash_t h = s->mech->hash;
    auth_scram_t *k = &s->creds.scram[h];
    uint8_t mac[AUTH_KEY_MAX];

    auth_creds_clear(&s->creds);
    s->fake = true;
    k->set = true;
    k->iter = AUTH_ITER_DEFAULT;
    k->salt_len = AUTH_SALT_LEN;
    /* The same made-up salt for the same name each time, when we have a secret to derive it. */
    if (s->mock_key_len != 0 && s->have_user) {
        core_buf_t data = {0};
        core_buf_append_str(&data, s->mech->name);
        core_buf_append(&data, "", 1);
        core_buf_append(&data, s->user.full, s->user.full_len);
        if (auth_hmac(AUTH_HASH_SHA256, s->mock_key, s->mock_key_len, data.data, data.len, mac) ==
            0)
            memcpy(k->salt, mac, AUTH_SALT_LEN);
        else
            (void)RAND_bytes(k->salt, AUTH_SALT_LEN);
        core_buf_release(&data);
    } else {
        (void)RAND_bytes(k->salt, AUTH_SALT_LEN);
    }
    /* Keys nobody knows: the proof cannot match (and fake fails it anyway). */
    (void)RAND_bytes(k->stored_key, sizeof(k->stored_key));
    (void)RAND_bytes(k->server_key, sizeof(k->server_key));
    OPENSSL_cleanse(mac, sizeof(mac));
}

int sasl_server_new(const char *mech, size_t mech_len, const sasl_params_t *params,
                    sasl_server_t **out)
{
    const sasl_mech_t *m = NULL;
    jid_t dom;

    *out = NULL;
    for (size_t i = 0; i < SASL_MECH_COUNT; i++) {
        if (strlen(mechs[i].name) == mech_len && memcmp(mechs[i].name, mech, mech_len) == 0)
            m = &mechs[i];
    }
    if (m == NULL || (m->plus && sasl_cb_mask(params->cb) == 0))
        return -ENOENT;
    if (params->domain == NULL || params->mock_key_len > SASL_MOCK_KEY_MAX ||
        jid_parse(NULL, params->domain, params->domain_len, &dom) != 0)
        return -EINVAL;
    if (jid_has_node(&dom) || jid_has_resource(&dom)) {
        jid_clear(&dom);
        return -EINVAL;
    }

    sasl_server_t *s = core_calloc(1, sizeof(*s));
    s->mech = m;
    s->state = SASL_ST_START;
    s->domain = dom;
    if (params->cb != NULL)
        memcpy(s->cb, params->cb, sizeof(s->cb));
    s->plus_offered = params->plus_offered;
    if (params->mock_key_len != 0)
        memcpy(s->mock_key, params->mock_key, params->mock_key_len);
    s->mock_key_len = params->mock_key_len;
    *out = s;
    return 0;
}

void sasl_server_free(sasl_server_t *s)
{
    if (s == NULL)
        return;
    if (s->mech->scram)
        sasl_scram_clear(s);
    else
        sasl_plain_clear(s);
    jid_clear(&s->domain);
    if (s->have_user)
        jid_clear(&s->user);
    if (s->have_authzid)
        jid_clear(&s->authzid);
    if (s->out.data != NULL)
        OPENSSL_cleanse(s->out.data, s->out.cap);
    core_buf_release(&s->out);
    OPENSSL_cleanse(s, sizeof(*s));
    core_free(s);
}

sasl_result_t sasl_server_step(sasl_server_t *s, const uint8_t *in, size_t len, const uint8_t **out,
                               size_t *out_len)
{
    sasl_result_t r;

    s->out.len = 0;
    switch (s->state) {
    case SASL_ST_DONE:
        r = sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "message after the end of the exchange");
        break;
    case SASL_ST_NEED_CREDS:
    case SASL_ST_NEED_WORK:
        /* A client that speaks before we answered, or a caller that skipped a step. */
        r = sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "message while the server was busy");
        break;
    case SASL_ST_HAVE_CREDS:
    case SASL_ST_WORKED:
        if (len != 0) {
            r = sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "message while the server was busy");
            break;
        }
        if (s->lookup_status != 0) {
            r = sasl_fail(s, SASL_ERR_TEMPORARY_AUTH_FAILURE, "credential lookup failed");
            break;
        }
        r = s->mech->scram ? sasl_scram_step(s, in, len) : sasl_plain_step(s, in, len);
        break;
    default:
        r = s->mech->scram ? sasl_scram_step(s, in, len) : sasl_plain_step(s, in, len);
        break;
    }
    if (r == SASL_SUCCESS)
        s->state = SASL_ST_DONE;
    *out = (const uint8_t *)s->out.data;
    *out_len = s->out.len;
    return r;
}

/* A stored entry a session can use; anything else is a storage fault, not the user's. */
static bool scram_usable(const auth_scram_t *k)
{
    return k->set && k->iter >= AUTH_ITER_MIN && k->iter <= AUTH_ITER_MAX &&
        k->salt_len >= AUTH_SALT_MIN && k->salt_len <= AUTH_SALT_MAX;
}

int sasl_server_set_creds(sasl_server_t *s, int status, const auth_creds_t *creds)
{
    if (s->state != SASL_ST_NEED_CREDS)
        return -EINVAL;
    s->state = SASL_ST_HAVE_CREDS;
    s->lookup_status = 0;
    s->fake = false;
    auth_creds_clear(&s->creds);
    if (status == -ENOENT || (status == 0 && creds == NULL)) {
        sasl_fake_creds(s);
        return 0;
    }
    if (status != 0) {
        s->lookup_status = status;
        return 0;
    }
    s->creds = *creds;
    if (s->mech->scram) {
        /* No entry for this hash: the password cannot be checked, as for an unknown user. */
        if (!s->creds.scram[s->mech->hash].set) {
            sasl_fake_creds(s);
            return 0;
        }
        if (!scram_usable(&s->creds.scram[s->mech->hash]))
            s->lookup_status = -EINVAL;
        return 0;
    }
    /* PLAIN checks against SHA-256 when it is there, else SHA-1 (auth_creds_check_password). */
    const auth_scram_t *k = &s->creds.scram[AUTH_HASH_SHA256];
    if (!k->set)
        k = &s->creds.scram[AUTH_HASH_SHA1];
    if (!k->set)
        sasl_fake_creds(s);
    else if (!scram_usable(k))
        s->lookup_status = -EINVAL;
    return 0;
}

void sasl_server_work(sasl_server_t *s)
{
    if (s->state != SASL_ST_NEED_WORK)
        return;
    sasl_plain_work(s);
    s->state = SASL_ST_WORKED;
}

const char *sasl_server_mech(const sasl_server_t *s)
{
    return s->mech->name;
}

sasl_error_t sasl_server_error(const sasl_server_t *s)
{
    return s->error;
}

const char *sasl_server_reason(const sasl_server_t *s)
{
    return s->reason != NULL ? s->reason : "";
}

const jid_t *sasl_server_jid(const sasl_server_t *s)
{
    return s->have_user ? &s->user : NULL;
}

const jid_t *sasl_server_authzid(const sasl_server_t *s)
{
    return s->have_authzid ? &s->authzid : NULL;
}

void sasl_server_set_nonce(sasl_server_t *s, const char *nonce, size_t len)
{
    assert(s->mech->scram && len > 0 && len <= SASL_SNONCE_LEN);
    for (size_t i = 0; i < len; i++)
        assert(nonce[i] >= 0x21 && nonce[i] <= 0x7E && nonce[i] != ',');
    memcpy(s->u.scram.snonce, nonce, len);
    s->u.scram.snonce_len = len;
}

int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    /* RFC 6120 §6.4.2: a single '=' is data of length zero. */
    if (len == 1 && in[0] == '=') {
        *out_len = 0;
        return 0;
    }
    return auth_b64_decode(in, len, out, cap, out_len);
}

void sasl_b64_encode(const uint8_t *in, size_t len, core_buf_t *out)
{
    if (len == 0) {
        core_buf_append(out, "=", 1);
        return;
    }
    char *dst = core_buf_reserve(out, auth_b64_len(len) + 1);
    core_buf_commit(out, auth_b64_encode(in, len, dst));
}
