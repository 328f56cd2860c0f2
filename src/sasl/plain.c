/* SPDX-License-Identifier: MIT */
/* The PLAIN mechanism (RFC 4616), checked against stored SCRAM credentials. */
#include "sasl/internal.h"

#include <string.h>

#include <openssl/crypto.h>

/* message = [authzid] NUL authcid NUL passwd (RFC 4616 §2), each part UTF-8 without NUL. */
static sasl_result_t plain_message(sasl_server_t *s, const uint8_t *in, size_t len)
{
    struct plain_state *st = &s->u.plain;
    const char *p = (const char *)in;

    if (len == 0) {
        /* RFC 6120 §6.4.2: no initial response, so we ask for it with an empty challenge. */
        if (s->state == SASL_ST_START) {
            s->state = SASL_ST_CHALLENGED;
            return SASL_CONTINUE;
        }
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "empty PLAIN message");
    }
    if (len > SASL_MSG_MAX)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "PLAIN message too long");

    const char *nul1 = memchr(p, '\0', len);
    if (nul1 == NULL)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "PLAIN message without NUL");
    const char *authcid = nul1 + 1;
    const char *nul2 = memchr(authcid, '\0', len - (size_t)(authcid - p));
    if (nul2 == NULL)
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "PLAIN message with one NUL");
    const char *pw = nul2 + 1;
    size_t az_len = (size_t)(nul1 - p);
    size_t ac_len = (size_t)(nul2 - authcid);
    size_t pw_len = len - (size_t)(pw - p);

    /* sasl_utf8_valid also refuses a third NUL inside the password. */
    if (ac_len == 0 || pw_len == 0 || !sasl_utf8_valid(p, az_len) ||
        !sasl_utf8_valid(authcid, ac_len) || !sasl_utf8_valid(pw, pw_len))
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "PLAIN message syntax");
    if (pw_len > sizeof(st->password))
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "password too long");
    if (sasl_set_user(s, authcid, ac_len) != 0)
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "authcid is not a localpart");
    if (az_len != 0 && sasl_set_authzid(s, p, az_len) != 0)
        return sasl_fail(s, SASL_ERR_INVALID_AUTHZID, "authzid is not the user's JID");
    memcpy(st->password, pw, pw_len);
    st->password_len = pw_len;
    s->state = SASL_ST_NEED_CREDS;
    return SASL_NEED_CREDS;
}

/* The verdict of the work, then the account's state (only told to the password's owner). */
static sasl_result_t plain_verdict(sasl_server_t *s)
{
    if (s->fake)
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "no such user");
    if (s->u.plain.verdict != 0)
        return sasl_fail(s, SASL_ERR_NOT_AUTHORIZED, "wrong password");
    if (s->creds.state == AUTH_ACCOUNT_DISABLED)
        return sasl_fail(s, SASL_ERR_ACCOUNT_DISABLED, "account disabled");
    if (s->creds.state == AUTH_ACCOUNT_EXPIRED)
        return sasl_fail(s, SASL_ERR_CREDENTIALS_EXPIRED, "credentials expired");
    return SASL_SUCCESS;
}

sasl_result_t sasl_plain_step(sasl_server_t *s, const uint8_t *in, size_t len)
{
    switch (s->state) {
    case SASL_ST_START:
    case SASL_ST_CHALLENGED:
        return plain_message(s, in, len);
    case SASL_ST_HAVE_CREDS:
        s->state = SASL_ST_NEED_WORK;
        return SASL_NEED_WORK;
    case SASL_ST_WORKED:
        return plain_verdict(s);
    default:
        return sasl_fail(s, SASL_ERR_MALFORMED_REQUEST, "unexpected PLAIN message");
    }
}

void sasl_plain_work(sasl_server_t *s)
{
    struct plain_state *st = &s->u.plain;
    /* The fake credentials cost the same PBKDF2 as real ones, so timing tells nothing. */
    st->verdict = auth_creds_check_password(&s->creds, st->password, st->password_len);
    OPENSSL_cleanse(st->password, sizeof(st->password));
    st->password_len = 0;
}

void sasl_plain_clear(sasl_server_t *s)
{
    OPENSSL_cleanse(&s->u.plain, sizeof(s->u.plain));
}
