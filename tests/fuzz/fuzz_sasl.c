/* SPDX-License-Identifier: MIT */
/* Fuzz target: SCRAM and PLAIN servers fed peer messages, plus the base64 and credential parsers.
 */
#include "sasl/internal.h"
#include "sasl/sasl.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Input: one flags byte, then the client's messages separated by 0xFF (never in UTF-8).
 *   bits 0-1: SCRAM-SHA-1, SCRAM-SHA-256, SCRAM-SHA-1-PLUS, SCRAM-SHA-256-PLUS
 *   bit 2: -PLUS was offered; bits 3-5: tls-unique, tls-exporter, tls-server-end-point data
 *   bit 6: the lookup says "no such user"; bit 7: the lookup fails
 * The server nonces are the RFC 5802 / RFC 7677 ones and the user is theirs ("user",
 * "pencil"), so the RFC exchanges succeed and corpus entries can reach every state.
 */
#define SEP 0xFF
#define MAX_MESSAGES 8

static const char *const scram_mechs[4] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                           "SCRAM-SHA-256-PLUS"};

static const char rfc_text[] = "scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                               "D+CSWLOshSulAsxiupA+qs2/fTE= "
                               "scram-sha-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"
                               "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                               "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

static void check(bool ok)
{
    if (!ok)
        abort();
}

struct msg {
    const uint8_t *p;
    size_t len;
};

static size_t split(const uint8_t *data, size_t size, struct msg *m)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < MAX_MESSAGES; i++) {
        if (i == size || data[i] == SEP) {
            m[n].p = data + start;
            m[n].len = i - start;
            n++;
            start = i + 1;
        }
    }
    return n;
}

/* Answers NEED_CREDS and NEED_WORK as c2s would, until the server wants the client again. */
static sasl_result_t settle(sasl_server_t *s, sasl_result_t r, uint8_t flags,
                            const auth_creds_t *creds, const uint8_t **out, size_t *out_len)
{
    while (r == SASL_NEED_CREDS || r == SASL_NEED_WORK) {
        if (r == SASL_NEED_CREDS) {
            check(sasl_server_jid(s) != NULL);
            int status = (flags & 0x80) ? -EIO : (flags & 0x40) ? -ENOENT : 0;
            check(sasl_server_set_creds(s, status, status == 0 ? creds : NULL) == 0);
        } else {
            sasl_server_work(s);
        }
        r = sasl_server_step(s, NULL, 0, out, out_len);
    }
    return r;
}

static void drive(const char *mech, const sasl_params_t *p, uint8_t flags,
                  const auth_creds_t *creds, const struct msg *m, size_t n)
{
    sasl_server_t *s = NULL;
    const uint8_t *out = NULL;
    size_t out_len = 0;
    int rc = sasl_server_new(mech, strlen(mech), p, &s);

    if (rc != 0) {
        check(rc == -ENOENT && s == NULL && sasl_cb_mask(p->cb) == 0);
        return;
    }
    if (strncmp(mech, "SCRAM", 5) == 0) {
        const char *nonce =
            strstr(mech, "256") != NULL ? "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" : "3rfcNHYJY1ZVvWVs7j";
        sasl_server_set_nonce(s, nonce, strlen(nonce));
    }
    for (size_t i = 0; i < n; i++) {
        sasl_result_t r = sasl_server_step(s, m[i].p, m[i].len, &out, &out_len);
        r = settle(s, r, flags, creds, &out, &out_len);
        check(r == SASL_CONTINUE || r == SASL_SUCCESS || r == SASL_FAILURE);
        check(out_len <= 2 * SASL_MSG_MAX && (out_len == 0 || out != NULL));
        if (r == SASL_FAILURE) {
            check(sasl_server_error(s) != SASL_ERR_NONE);
            check(sasl_error_name(sasl_server_error(s))[0] != '\0');
            check(sasl_server_reason(s)[0] != '\0');
            break;
        }
        if (r == SASL_SUCCESS) {
            /* Only with a password (every user has the RFC one), for an existing account. */
            const jid_t *j = sasl_server_jid(s);
            check((flags & 0xC0) == 0);
            check(j != NULL && jid_has_node(j) && !jid_has_resource(j));
            check(j->domain_len == 11 && memcmp(jid_domain_ptr(j), "example.com", 11) == 0);
            check(sasl_server_authzid(s) == NULL ||
                  jid_equal(sasl_server_authzid(s), sasl_server_jid(s)));
            check(sasl_server_error(s) == SASL_ERR_NONE);
            /* Nothing is accepted after the end. */
            check(sasl_server_step(s, NULL, 0, &out, &out_len) == SASL_FAILURE);
            break;
        }
    }
    sasl_server_free(s);
}

/* Base64: whatever decodes re-encodes to the same text ("=" and "" both mean no bytes). */
static void fuzz_b64(const uint8_t *p, size_t len)
{
    uint8_t out[1024];
    size_t n = 0;
    if (len > 4 * sizeof(out) / 3)
        len = 4 * sizeof(out) / 3;
    int rc = sasl_b64_decode((const char *)p, len, out, sizeof(out), &n);
    check(rc == 0 || rc == -EINVAL || rc == -EMSGSIZE);
    if (rc != 0)
        return;
    core_buf_t b = {0};
    sasl_b64_encode(out, n, &b);
    if (n == 0)
        check(len == 0 || (len == 1 && p[0] == '='));
    else
        check(b.len == len && memcmp(b.data, p, len) == 0);
    core_buf_release(&b);
}

/* The stored text form: what parses encodes back to something that parses the same. */
static void fuzz_creds(const uint8_t *p, size_t len)
{
    auth_creds_t c, d;
    char text[AUTH_CREDS_TEXT_MAX];
    size_t n = 0;
    if (auth_creds_decode((const char *)p, len, &c) != 0)
        return;
    check(auth_creds_encode(&c, text, &n) == 0 && n == strlen(text) && n == len);
    check(auth_creds_decode(text, n, &d) == 0 && memcmp(&c, &d, sizeof(c)) == 0);
    auth_creds_clear(&c);
    auth_creds_clear(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t mock_key[] = "fuzz mock key";
    struct msg m[MAX_MESSAGES];
    sasl_cb_data_t cb[SASL_CB_COUNT] = {0};
    auth_creds_t creds;

    fuzz_b64(data, size);
    fuzz_creds(data, size);
    if (size == 0)
        return 0;

    uint8_t flags = data[0];
    size_t n = split(data + 1, size - 1, m);
    for (size_t i = 0; i < n; i++)
        fuzz_b64(m[i].p, m[i].len);

    static const size_t cb_len[SASL_CB_COUNT] = {12, 32, 32};
    for (int t = 0; t < SASL_CB_COUNT; t++) {
        if (flags & (0x08 << t)) {
            cb[t].len = cb_len[t];
            memset(cb[t].data, 0x11 * (t + 1), cb_len[t]);
        }
    }
    sasl_params_t p = {.domain = "example.com",
                       .domain_len = 11,
                       .cb = cb,
                       .plus_offered = (flags & 0x04) != 0,
                       .mock_key = mock_key,
                       .mock_key_len = sizeof(mock_key) - 1};
    check(auth_creds_decode(rfc_text, sizeof(rfc_text) - 1, &creds) == 0);

    drive(scram_mechs[flags & 3], &p, flags, &creds, m, n);
    drive("PLAIN", &p, flags, &creds, m, n);
    auth_creds_clear(&creds);
    return 0;
}
