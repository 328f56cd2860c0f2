/* SPDX-License-Identifier: MIT */
/* Unit tests of the SASL server: the RFC exchanges byte for byte, PLAIN, failures, binding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "sasl/internal.h"
#include "sasl/sasl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Both RFC vectors' credentials (user "user", password "pencil"). */
static const char rfc_text[] = "scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                               "D+CSWLOshSulAsxiupA+qs2/fTE= "
                               "scram-sha-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"
                               "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                               "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

static auth_creds_t rfc_creds(void)
{
    auth_creds_t c;
    assert_int_equal(auth_creds_decode(rfc_text, strlen(rfc_text), &c), 0);
    return c;
}

static const sasl_params_t plain_params = {.domain = "example.com", .domain_len = 11};

static sasl_server_t *server(const char *mech, const sasl_params_t *p)
{
    sasl_server_t *s = NULL;
    assert_int_equal(sasl_server_new(mech, strlen(mech), p, &s), 0);
    assert_non_null(s);
    assert_string_equal(sasl_server_mech(s), mech);
    return s;
}

/* One step with a text message (NULL: no data); the output, NUL-terminated, into out. */
static sasl_result_t step_len(sasl_server_t *s, const char *msg, size_t len, char *out, size_t cap)
{
    const uint8_t *o = NULL;
    size_t olen = 99;
    sasl_result_t r = sasl_server_step(s, (const uint8_t *)msg, len, &o, &olen);
    assert_true(olen < cap);
    if (olen != 0)
        memcpy(out, o, olen);
    out[olen] = '\0';
    return r;
}

static sasl_result_t step(sasl_server_t *s, const char *msg, char *out, size_t cap)
{
    return step_len(s, msg, msg != NULL ? strlen(msg) : 0, out, cap);
}

static void expect_failure(sasl_server_t *s, sasl_result_t r, sasl_error_t e)
{
    if (r != SASL_FAILURE || sasl_server_error(s) != e)
        fail_msg("result %d error %s (%s), want failure %s", r,
                 sasl_error_name(sasl_server_error(s)), sasl_server_reason(s), sasl_error_name(e));
    assert_true(strlen(sasl_server_reason(s)) > 0);
}

/* Drives one of the RFC exchanges and checks every byte the server sends. */
static void rfc_exchange(const char *mech, bool initial_response, const char *cfirst,
                         const char *snonce, const char *sfirst, const char *cfinal,
                         const char *sfinal)
{
    auth_creds_t c = rfc_creds();
    sasl_server_t *s = server(mech, &plain_params);
    char out[512];

    sasl_server_set_nonce(s, snonce, strlen(snonce));
    if (!initial_response) {
        assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
        assert_string_equal(out, "");
    }
    assert_null(sasl_server_jid(s));
    assert_int_equal(step(s, cfirst, out, sizeof(out)), SASL_NEED_CREDS);
    assert_string_equal(out, "");
    assert_non_null(sasl_server_jid(s));
    assert_string_equal(sasl_server_jid(s)->full, "user@example.com");
    assert_null(sasl_server_authzid(s));
    assert_int_equal(sasl_server_set_creds(s, 0, &c), 0);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), -EINVAL);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    assert_string_equal(out, sfirst);
    assert_int_equal(step(s, cfinal, out, sizeof(out)), SASL_SUCCESS);
    assert_string_equal(out, sfinal);
    assert_int_equal(sasl_server_error(s), SASL_ERR_NONE);
    /* Nothing more is accepted. */
    expect_failure(s, step(s, NULL, out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);
    auth_creds_clear(&c);
}

static void test_rfc5802(void **state)
{
    (void)state;
    for (int ir = 0; ir < 2; ir++)
        rfc_exchange("SCRAM-SHA-1", ir, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
                     "3rfcNHYJY1ZVvWVs7j",
                     "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                     "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                     "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                     "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
}

static void test_rfc7677(void **state)
{
    (void)state;
    for (int ir = 0; ir < 2; ir++)
        rfc_exchange("SCRAM-SHA-256", ir, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                     "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                     "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                     "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                     "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                     "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
}

/*
 * A test client (RFC 5802 §3), to drive exchanges the RFCs have no vectors for. It reads the
 * salt and count from the server-first message and computes the proof with OpenSSL directly.
 */
static void client_final(auth_hash_t h, const char *password, const char *cfirst,
                         const char *c_header, const char *sfirst, const uint8_t *cb, size_t cb_len,
                         char *out, char *want_v)
{
    const EVP_MD *md = h == AUTH_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
    size_t hl = auth_hash_len(h);
    const char *bare = strchr(strchr(cfirst, ',') + 1, ',') + 1;
    size_t gs2_len = (size_t)(bare - cfirst);
    char nonce[512], salt_b64[128], cbind[256], am[2048], b64[128];
    uint8_t salt[64], cbbuf[256], salted[32], ck[32], sk[32], sig[32], proof[32], svk[32];
    size_t salt_len;
    unsigned iter;

    assert_int_equal(sscanf(sfirst, "r=%511[^,],s=%127[^,],i=%u", nonce, salt_b64, &iter), 3);
    assert_int_equal(auth_b64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt), &salt_len), 0);
    if (c_header != NULL)
        gs2_len = strlen(c_header);
    memcpy(cbbuf, c_header != NULL ? c_header : cfirst, gs2_len);
    if (cb_len != 0)
        memcpy(cbbuf + gs2_len, cb, cb_len);
    auth_b64_encode(cbbuf, gs2_len + cb_len, cbind);
    snprintf(am, sizeof(am), "%s,%s,c=%s,r=%s", bare, sfirst, cbind, nonce);

    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                                       (int)iter, md, (int)hl, salted),
                     1);
    assert_int_equal(auth_hmac(h, salted, hl, "Client Key", 10, ck), 0);
    assert_int_equal(auth_hash(h, ck, hl, sk), 0);
    assert_int_equal(auth_hmac(h, sk, hl, am, strlen(am), sig), 0);
    for (size_t i = 0; i < hl; i++)
        proof[i] = ck[i] ^ sig[i];
    auth_b64_encode(proof, hl, b64);
    sprintf(out, "c=%s,r=%s,p=%s", cbind, nonce, b64);
    assert_int_equal(auth_hmac(h, salted, hl, "Server Key", 10, svk), 0);
    assert_int_equal(auth_hmac(h, svk, hl, am, strlen(am), sig), 0);
    strcpy(want_v, "v=");
    auth_b64_encode(sig, hl, want_v + 2);
}

struct exchange {
    const char *mech;
    const sasl_params_t *params;
    const char *cfirst;
    const char *password;
    int status; /* the lookup's answer */
    const auth_creds_t *creds;
    const uint8_t *cb; /* what the client binds to */
    size_t cb_len;
    const char *final_override; /* sent instead of the correct client-final */
    const char *snonce; /* the server nonce to use, or NULL for a random one */
    const char *c_header; /* the gs2 header the client binds in c=, if not its own */
};

/* Runs an exchange as far as it goes; the server is returned for the caller to inspect. */
static sasl_result_t scram_run(const struct exchange *x, sasl_server_t **out_s)
{
    sasl_server_t *s = server(x->mech, x->params != NULL ? x->params : &plain_params);
    auth_hash_t h = strstr(x->mech, "256") != NULL ? AUTH_HASH_SHA256 : AUTH_HASH_SHA1;
    char out[1024], final[1024], want_v[128];
    sasl_result_t r;

    *out_s = s;
    if (x->snonce != NULL)
        sasl_server_set_nonce(s, x->snonce, strlen(x->snonce));
    r = step(s, x->cfirst, out, sizeof(out));
    if (r != SASL_NEED_CREDS)
        return r;
    assert_int_equal(sasl_server_set_creds(s, x->status, x->creds), 0);
    r = step(s, NULL, out, sizeof(out));
    if (r != SASL_CONTINUE)
        return r;
    client_final(h, x->password, x->cfirst, x->c_header, out, x->cb, x->cb_len, final, want_v);
    r = step(s, x->final_override != NULL ? x->final_override : final, out, sizeof(out));
    if (r == SASL_SUCCESS)
        assert_string_equal(out, want_v);
    return r;
}

static void expect_run(const struct exchange *x, sasl_result_t want, sasl_error_t err)
{
    sasl_server_t *s;
    sasl_result_t r = scram_run(x, &s);
    if (want == SASL_FAILURE)
        expect_failure(s, r, err);
    else
        assert_int_equal(r, want);
    sasl_server_free(s);
}

static void test_scram_outcomes(void **state)
{
    (void)state;
    auth_creds_t c = rfc_creds();
    struct exchange x = {.mech = "SCRAM-SHA-256",
                         .cfirst = "n,,n=user,r=abcdefghijkl",
                         .password = "pencil",
                         .creds = &c};
    expect_run(&x, SASL_SUCCESS, 0);
    x.mech = "SCRAM-SHA-1";
    expect_run(&x, SASL_SUCCESS, 0);

    /* Wrong password. */
    x.password = "pencil2";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.password = "pencil";

    /* Unknown user: it looks like a wrong password, at the end. */
    x.status = -ENOENT;
    x.creds = NULL;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    /* The lookup failed: temporary. */
    x.status = -EIO;
    expect_run(&x, SASL_FAILURE, SASL_ERR_TEMPORARY_AUTH_FAILURE);
    x.status = 0;
    x.creds = &c;

    /* No entry for this hash. */
    auth_creds_t only1 = c;
    only1.scram[AUTH_HASH_SHA256].set = false;
    x.mech = "SCRAM-SHA-256";
    x.creds = &only1;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.mech = "SCRAM-SHA-1";
    expect_run(&x, SASL_SUCCESS, 0);
    /* A stored entry out of range is the server's fault. */
    only1.scram[AUTH_HASH_SHA1].iter = 1;
    expect_run(&x, SASL_FAILURE, SASL_ERR_TEMPORARY_AUTH_FAILURE);

    /* Account state is told only to who knows the password. */
    auth_creds_t st = c;
    x.creds = &st;
    st.state = AUTH_ACCOUNT_DISABLED;
    expect_run(&x, SASL_FAILURE, SASL_ERR_ACCOUNT_DISABLED);
    st.state = AUTH_ACCOUNT_EXPIRED;
    expect_run(&x, SASL_FAILURE, SASL_ERR_CREDENTIALS_EXPIRED);
    x.password = "wrong";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.password = "pencil";
    x.creds = &c;

    /* Unknown optional extensions are ignored. */
    x.cfirst = "n,,n=user,r=abc,x=ext,Y=more";
    expect_run(&x, SASL_SUCCESS, 0);

    /* A nonce of the longest accepted length, and one longer. */
    char longer[400];
    snprintf(longer, sizeof(longer), "n,,n=user,r=%0*d", SASL_CNONCE_MAX, 7);
    x.cfirst = longer;
    expect_run(&x, SASL_SUCCESS, 0);
    snprintf(longer, sizeof(longer), "n,,n=user,r=%0*d", SASL_CNONCE_MAX + 1, 7);
    expect_run(&x, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    auth_creds_clear(&c);
}

/* A user and authzid the server must see as the given JIDs. */
static void expect_names(const char *cfirst, const char *jid, const char *authzid)
{
    auth_creds_t c = rfc_creds();
    struct exchange x = {
        .mech = "SCRAM-SHA-256", .cfirst = cfirst, .password = "pencil", .creds = &c};
    sasl_server_t *s;
    assert_int_equal(scram_run(&x, &s), SASL_SUCCESS);
    assert_string_equal(sasl_server_jid(s)->full, jid);
    if (authzid == NULL)
        assert_null(sasl_server_authzid(s));
    else
        assert_string_equal(sasl_server_authzid(s)->full, authzid);
    sasl_server_free(s);
    auth_creds_clear(&c);
}

static void test_scram_names(void **state)
{
    (void)state;
    expect_names("n,,n=user,r=x", "user@example.com", NULL);
    expect_names("n,,n=User,r=x", "user@example.com", NULL); /* nodeprep */
    expect_names("n,,n=us=3Der,r=x", "us=er@example.com", NULL);
    expect_names("n,,n=a=2Cb,r=x", "a,b@example.com", NULL);
    expect_names("n,a=user@example.com,n=user,r=x", "user@example.com", "user@example.com");
    expect_names("n,a=USER@Example.COM,n=user,r=x", "user@example.com", "user@example.com");
    expect_names("n,,n=\xC3\xA9l\xC3\xA8ve,r=x", "\xC3\xA9l\xC3\xA8ve@example.com", NULL);

    struct {
        const char *cfirst;
        sasl_error_t err;
    } bad[] = {
        {"n,a=other@example.com,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=user@example.org,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=user@example.com/res,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=example.com,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=@@,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=us=2Cer@example.com,n=user,r=x", SASL_ERR_INVALID_AUTHZID},
        {"n,a=user=40example.com,n=user,r=x", SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=us@er,r=x", SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=user@example.com,r=x", SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=us/er,r=x", SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=us er,r=x", SASL_ERR_NOT_AUTHORIZED},
        {"n,,n=us=2cer,r=x", SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=us=4Fer,r=x", SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=user=,r=x", SASL_ERR_MALFORMED_REQUEST},
        {"n,,n=user=3,r=x", SASL_ERR_MALFORMED_REQUEST},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sasl_server_t *s = server("SCRAM-SHA-1", &plain_params);
        char out[64];
        expect_failure(s, step(s, bad[i].cfirst, out, sizeof(out)), bad[i].err);
        sasl_server_free(s);
    }
}

/* Client-first messages that must be refused as malformed. */
static void test_scram_malformed_first(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "x,,n=user,r=abc",
        "N,,n=user,r=abc",
        "nn,,n=user,r=abc",
        "n",
        "n,",
        "n,,",
        "n,n=user,r=abc",
        ",,n=user,r=abc",
        "n,,n=user",
        "n,,n=user,",
        "n,,r=abc,n=user",
        "n,,n=,r=abc",
        "n,,n=user,r=",
        "n,,n=user,r=ab c",
        "n,,n=user,r=ab\x7F",
        "n,,n=user,r=abc,",
        "n,,n=user,r=abc,,x=y",
        "n,,n=user,r=abc,x",
        "n,,n=user,r=abc,x=",
        "n,,n=user,r=abc,1=x",
        "n,,n=user,r=abc,=x",
        "n,,m=ext,n=user,r=abc",
        "n,,n=user,r=abc,m=ext",
        "n,a=,n=user,r=abc",
        "n,b=x,n=user,r=abc",
        "n,a=user@example.com",
        "p,,n=user,r=abc",
        "p=,,n=user,r=abc",
        "p=tls unique,,n=user,r=abc",
        "p=tls_unique,,n=user,r=abc",
        "y,,N=user,r=abc",
        " n,,n=user,r=abc",
        "n,,n=user,r=abc ",
        "n,,n=user,r=\xC3\xA9",
        "n,,n=us\xFF"
        "er,r=abc",
        "n,,n=us\xC0\x80"
        "er,r=abc",
        "n,,n=us\xED\xA0\x80"
        "er,r=abc",
    };
    char out[64];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sasl_server_t *s = server("SCRAM-SHA-256", &plain_params);
        sasl_result_t r = step(s, bad[i], out, sizeof(out));
        if (r != SASL_FAILURE || sasl_server_error(s) != SASL_ERR_MALFORMED_REQUEST)
            fail_msg("\"%s\": result %d, %s", bad[i], r, sasl_error_name(sasl_server_error(s)));
        assert_null(sasl_server_jid(s));
        sasl_server_free(s);
    }

    /* NUL inside, and a message over the limit. */
    sasl_server_t *s = server("SCRAM-SHA-256", &plain_params);
    expect_failure(s, step_len(s, "n,,n=user,r=a\0c", 15, out, sizeof(out)),
                   SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);
    char *big = core_malloc(SASL_MSG_MAX + 2);
    memset(big, 'a', SASL_MSG_MAX + 1);
    memcpy(big, "n,,n=user,r=", 12);
    big[SASL_MSG_MAX + 1] = '\0';
    s = server("SCRAM-SHA-256", &plain_params);
    expect_failure(s, step(s, big, out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);
    core_free(big);

    /* Twice no data: one empty challenge only. */
    s = server("SCRAM-SHA-1", &plain_params);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    expect_failure(s, step(s, NULL, out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);
}

/* A well-formed proof of the right length for SHA-1, but not the right one. */
#define P20 "p=AAAAAAAAAAAAAAAAAAAAAAAAAAA="

/* Client-final messages: each is sent after a correct start with client nonce "abc". */
static void expect_final(const char *final, sasl_error_t err)
{
    auth_creds_t c = rfc_creds();
    struct exchange x = {.mech = "SCRAM-SHA-1",
                         .cfirst = "n,,n=user,r=abc",
                         .password = "pencil",
                         .creds = &c,
                         .final_override = final,
                         .snonce = "SNONCE"};
    sasl_server_t *s;
    sasl_result_t r = scram_run(&x, &s);
    if (r != SASL_FAILURE || sasl_server_error(s) != err)
        fail_msg("\"%s\": result %d, %s (%s)", final, r, sasl_error_name(sasl_server_error(s)),
                 sasl_server_reason(s));
    sasl_server_free(s);
    auth_creds_clear(&c);
}

static void test_scram_malformed_final(void **state)
{
    (void)state;
    /* The server nonce is fixed ("SNONCE") so the messages can be written out. */
    const sasl_error_t mal = SASL_ERR_MALFORMED_REQUEST;

    expect_final("", mal);
    expect_final("c=biws", mal);
    expect_final("c=biws,r=abcSNONCE", mal);
    expect_final("c=biws,r=abcSNONCE," P20 ",", mal);
    expect_final("c=biws,r=abcSNONCE," P20 ",x=y", mal);
    expect_final("r=abcSNONCE,c=biws," P20, mal);
    expect_final("c=biw,r=abcSNONCE," P20, mal);
    expect_final("c=biws=,r=abcSNONCE," P20, mal);
    expect_final("c=,r=abcSNONCE," P20, mal);
    expect_final("c=biws,r=," P20, mal);
    expect_final("c=biws,r=abcSNONCE,m=x," P20, mal);
    expect_final("c=biws,r=abcSNONCE,1=x," P20, mal);
    expect_final("c=biws,r=abcSNONCE,p=", mal);
    expect_final("c=biws,r=abcSNONCE,p=AAAA", mal); /* 3 bytes, not 20 */
    expect_final("c=biws,r=abcSNONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", mal);
    expect_final("c=biws,r=abcSNONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAA", mal);
    expect_final("c=biws,r=abcSNONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAB=", mal);
    expect_final("c=biws,r=abcSNONCE," P20 "\xFF", mal);
    /* Well-formed but wrong. */
    expect_final("c=biws,r=abcSNONCE," P20, SASL_ERR_NOT_AUTHORIZED);
    expect_final("c=biws,r=abcSNONCE,x=ext," P20, SASL_ERR_NOT_AUTHORIZED);
    expect_final("c=eSws,r=abcSNONCE," P20, SASL_ERR_NOT_AUTHORIZED); /* "y,," */
    expect_final("c=biwsAAAA,r=abcSNONCE," P20, SASL_ERR_NOT_AUTHORIZED);
    expect_final("c=biws,r=abcSNONCF," P20, SASL_ERR_NOT_AUTHORIZED);
    expect_final("c=biws,r=abc," P20, SASL_ERR_NOT_AUTHORIZED);
    expect_final("c=biws,r=abcSNONCEx," P20, SASL_ERR_NOT_AUTHORIZED);
}

static const uint8_t exporter_data[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                          12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                          23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

static void test_channel_binding(void **state)
{
    (void)state;
    auth_creds_t c = rfc_creds();
    sasl_cb_data_t cb[SASL_CB_COUNT] = {0};
    sasl_params_t p = {.domain = "example.com", .domain_len = 11, .cb = cb, .plus_offered = true};
    uint8_t other[32];

    cb[SASL_CB_TLS_EXPORTER].len = 32;
    memcpy(cb[SASL_CB_TLS_EXPORTER].data, exporter_data, 32);
    memcpy(other, exporter_data, 32);
    other[31] ^= 1;
    assert_int_equal(sasl_cb_mask(cb), 1u << SASL_CB_TLS_EXPORTER);

    struct exchange x = {.mech = "SCRAM-SHA-256-PLUS",
                         .params = &p,
                         .cfirst = "p=tls-exporter,,n=user,r=abc",
                         .password = "pencil",
                         .creds = &c,
                         .cb = exporter_data,
                         .cb_len = 32};
    expect_run(&x, SASL_SUCCESS, 0);
    x.mech = "SCRAM-SHA-1-PLUS";
    expect_run(&x, SASL_SUCCESS, 0);
    /* With an authzid, which the binding covers too. */
    x.cfirst = "p=tls-exporter,a=user@example.com,n=user,r=abc";
    expect_run(&x, SASL_SUCCESS, 0);

    /* The client is bound to another channel (a man in the middle), or to none. */
    x.cb = other;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cb_len = 31;
    x.cb = exporter_data;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cb_len = 0;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cb_len = 32;

    /*
     * A correct proof over a c= that is not what the client said in its first message: the
     * proof covers c=, but only the server's own comparison catches this.
     */
    x.c_header = "p=tls-exporter,,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = "p=tls-exporter,a=user@example.com,";
    expect_run(&x, SASL_SUCCESS, 0);
    x.cfirst = "p=tls-exporter,,n=user,r=abc";
    x.c_header = "p=tls-unique,,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = "n,,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = NULL;

    auth_creds_clear(&c);
}

/* The gs2 flag against the mechanism and against what we offered (RFC 5802 §6). */
static void test_binding_policy(void **state)
{
    (void)state;
    auth_creds_t c = rfc_creds();
    sasl_cb_data_t cb[SASL_CB_COUNT] = {0};
    sasl_params_t p = {.domain = "example.com", .domain_len = 11, .cb = cb, .plus_offered = true};

    cb[SASL_CB_TLS_EXPORTER].len = 32;
    memcpy(cb[SASL_CB_TLS_EXPORTER].data, exporter_data, 32);

    struct exchange x = {.mech = "SCRAM-SHA-256-PLUS",
                         .params = &p,
                         .cfirst = "p=tls-exporter,,n=user,r=abc",
                         .password = "pencil",
                         .creds = &c,
                         .cb = exporter_data,
                         .cb_len = 32};

    /* Types we do not have here, or do not know. */
    x.cfirst = "p=tls-unique,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cfirst = "p=tls-server-end-point,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cfirst = "p=tls-foo.bar-1,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);

    /* -PLUS needs 'p'; 'p' needs -PLUS. */
    x.cb_len = 0;
    x.cfirst = "n,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.cfirst = "y,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.mech = "SCRAM-SHA-1";
    x.cfirst = "p=tls-exporter,,n=user,r=abc";
    x.cb_len = 32;
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);

    /* RFC 5802 §6: 'y' while we offered -PLUS is a downgrade; when we did not, it is fine. */
    x.cb_len = 0;
    x.cfirst = "y,,n=user,r=abc";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    p.plus_offered = false;
    expect_run(&x, SASL_SUCCESS, 0);
    /* A 'y' header must be echoed as 'y' in c=, even with a correct proof. */
    x.c_header = "n,,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = NULL;
    /* 'n' is fine either way, and must be echoed as 'n'. */
    p.plus_offered = true;
    x.cfirst = "n,,n=user,r=abc";
    expect_run(&x, SASL_SUCCESS, 0);
    x.c_header = "y,,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = "n,a=user@example.com,";
    expect_run(&x, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    x.c_header = NULL;

    /* -PLUS cannot be started without binding data. */
    sasl_server_t *s = NULL;
    assert_int_equal(sasl_server_new("SCRAM-SHA-1-PLUS", 16, &plain_params, &s), -ENOENT);
    assert_null(s);
    sasl_cb_data_t none[SASL_CB_COUNT] = {0};
    p.cb = none;
    assert_int_equal(sasl_server_new("SCRAM-SHA-256-PLUS", 18, &p, &s), -ENOENT);
    auth_creds_clear(&c);
}

/* PLAIN: runs a whole exchange with the given message; returns the result. */
static sasl_result_t plain_run(const char *msg, size_t len, int status, const auth_creds_t *c,
                               sasl_server_t **out_s)
{
    sasl_server_t *s = server("PLAIN", &plain_params);
    char out[64];
    sasl_result_t r;

    *out_s = s;
    r = step_len(s, msg, len, out, sizeof(out));
    if (r != SASL_NEED_CREDS)
        return r;
    assert_int_equal(sasl_server_set_creds(s, status, c), 0);
    r = step(s, NULL, out, sizeof(out));
    if (r != SASL_NEED_WORK)
        return r;
    /* Stepping without doing the work is refused like a message out of turn. */
    sasl_server_work(s);
    r = step(s, NULL, out, sizeof(out));
    if (r == SASL_SUCCESS)
        assert_string_equal(out, "");
    return r;
}

/* A string literal with embedded NULs, as (pointer, length). */
#define LIT(s) s, sizeof(s) - 1

static void plain_expect(const char *msg, size_t len, int status, const auth_creds_t *c,
                         sasl_result_t want, sasl_error_t err)
{
    sasl_server_t *s;
    sasl_result_t r = plain_run(msg, len, status, c, &s);
    if (want == SASL_FAILURE)
        expect_failure(s, r, err);
    else
        assert_int_equal(r, want);
    sasl_server_free(s);
}

static void test_plain(void **state)
{
    (void)state;
    auth_creds_t c = rfc_creds();
    sasl_server_t *s;
    char out[64];

    assert_int_equal(plain_run("\0user\0pencil", 12, 0, &c, &s), SASL_SUCCESS);
    assert_string_equal(sasl_server_jid(s)->full, "user@example.com");
    assert_null(sasl_server_authzid(s));
    sasl_server_free(s);
    assert_int_equal(plain_run("user@example.com\0user\0pencil", 28, 0, &c, &s), SASL_SUCCESS);
    assert_string_equal(sasl_server_authzid(s)->full, "user@example.com");
    sasl_server_free(s);

    plain_expect(LIT("other@example.com\0user\0pencil"), 0, &c, SASL_FAILURE,
                 SASL_ERR_INVALID_AUTHZID);
    plain_expect(LIT("user@example.com/r\0user\0pencil"), 0, &c, SASL_FAILURE,
                 SASL_ERR_INVALID_AUTHZID);
    plain_expect(LIT("\0user\0pencil2"), 0, &c, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    plain_expect(LIT("\0user\0Pencil"), 0, &c, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    plain_expect(LIT("\0user\0pencil"), -ENOENT, NULL, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    plain_expect(LIT("\0user\0pencil"), -EIO, NULL, SASL_FAILURE, SASL_ERR_TEMPORARY_AUTH_FAILURE);
    plain_expect(LIT("\0us@er\0pencil"), 0, &c, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    plain_expect(LIT("\0user\0\x07"), 0, &c, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    /* Malformed. */
    plain_expect(LIT("user\0pencil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("userpencil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\0\0pencil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\0user\0"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\0user\0pen\0cil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\0user\0pen\xFF"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\0us\xC3\0pencil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);
    plain_expect(LIT("\xFF\0user\0pencil"), 0, &c, SASL_FAILURE, SASL_ERR_MALFORMED_REQUEST);

    /* Account state, only after the right password. */
    auth_creds_t d = c;
    d.state = AUTH_ACCOUNT_DISABLED;
    plain_expect(LIT("\0user\0pencil"), 0, &d, SASL_FAILURE, SASL_ERR_ACCOUNT_DISABLED);
    plain_expect(LIT("\0user\0pencil1"), 0, &d, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    d.state = AUTH_ACCOUNT_EXPIRED;
    plain_expect(LIT("\0user\0pencil"), 0, &d, SASL_FAILURE, SASL_ERR_CREDENTIALS_EXPIRED);
    /* Only SHA-1 stored. */
    d = c;
    d.scram[AUTH_HASH_SHA256].set = false;
    plain_expect(LIT("\0user\0pencil"), 0, &d, SASL_SUCCESS, 0);
    d.scram[AUTH_HASH_SHA1].set = false;
    plain_expect(LIT("\0user\0pencil"), 0, &d, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);

    /* SASLprep'd passwords (RFC 4013 §3): stored as "I<SOFT HYPHEN>X". */
    auth_creds_clear(&d);
    assert_int_equal(auth_creds_from_password("I\xC2\xADX", 4, 4096, &d), 0);
    plain_expect(LIT("\0user\0IX"), 0, &d, SASL_SUCCESS, 0);
    plain_expect(LIT("\0user\0\xE2\x85\xA8"), 0, &d, SASL_SUCCESS, 0);
    plain_expect(LIT("\0user\0I\xC2\xADX"), 0, &d, SASL_SUCCESS, 0);
    plain_expect(LIT("\0user\0iX"), 0, &d, SASL_FAILURE, SASL_ERR_NOT_AUTHORIZED);
    auth_creds_clear(&d);

    /* No initial response: one empty challenge, then the message. */
    s = server("PLAIN", &plain_params);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    assert_string_equal(out, "");
    assert_int_equal(step_len(s, "\0user\0pencil", 12, out, sizeof(out)), SASL_NEED_CREDS);
    sasl_server_free(s);
    s = server("PLAIN", &plain_params);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    expect_failure(s, step(s, NULL, out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);

    /* A password longer than we take. */
    char big[AUTH_PASSWORD_MAX + 8] = "\0user\0";
    memset(big + 6, 'p', AUTH_PASSWORD_MAX + 1);
    s = server("PLAIN", &plain_params);
    expect_failure(s, step_len(s, big, 6 + AUTH_PASSWORD_MAX + 1, out, sizeof(out)),
                   SASL_ERR_NOT_AUTHORIZED);
    sasl_server_free(s);
    auth_creds_clear(&c);
}

/* Calls out of order: the session fails, nothing crashes, nothing leaks. */
static void test_out_of_turn(void **state)
{
    (void)state;
    auth_creds_t c = rfc_creds();
    char out[256];

    /* A client message while the lookup is pending. */
    sasl_server_t *s = server("SCRAM-SHA-1", &plain_params);
    assert_int_equal(step(s, "n,,n=user,r=abc", out, sizeof(out)), SASL_NEED_CREDS);
    expect_failure(s, step(s, "c=biws", out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), -EINVAL);
    sasl_server_free(s);

    /* After the credentials, a client message before the server's. */
    s = server("SCRAM-SHA-1", &plain_params);
    assert_int_equal(step(s, "n,,n=user,r=abc", out, sizeof(out)), SASL_NEED_CREDS);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), 0);
    expect_failure(s, step(s, "c=biws", out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_free(s);

    /* Credentials offered before anyone asked. */
    s = server("SCRAM-SHA-1", &plain_params);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), -EINVAL);
    sasl_server_work(s);
    assert_int_equal(step(s, "n,,n=user,r=abc", out, sizeof(out)), SASL_NEED_CREDS);
    sasl_server_free(s);

    /* PLAIN: stepping while the work is pending. */
    s = server("PLAIN", &plain_params);
    assert_int_equal(step_len(s, "\0user\0pencil", 12, out, sizeof(out)), SASL_NEED_CREDS);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), 0);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_NEED_WORK);
    expect_failure(s, step(s, NULL, out, sizeof(out)), SASL_ERR_MALFORMED_REQUEST);
    sasl_server_work(s); /* a no-op now */
    sasl_server_free(s);

    /* A session freed in the middle (connection closed) wipes and frees all. */
    s = server("SCRAM-SHA-256", &plain_params);
    assert_int_equal(step(s, "n,,n=user,r=abc", out, sizeof(out)), SASL_NEED_CREDS);
    assert_int_equal(sasl_server_set_creds(s, 0, &c), 0);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    sasl_server_free(s);
    sasl_server_free(NULL);
    auth_creds_clear(&c);
}

/* The salt answered for an unknown user: the same each time with a mock key, else random. */
static void fake_salt(const sasl_params_t *p, const char *user, char *salt_out)
{
    sasl_server_t *s = server("SCRAM-SHA-256", p);
    char msg[64], out[256];
    snprintf(msg, sizeof(msg), "n,,n=%s,r=abc", user);
    assert_int_equal(step(s, msg, out, sizeof(out)), SASL_NEED_CREDS);
    assert_int_equal(sasl_server_set_creds(s, -ENOENT, NULL), 0);
    assert_int_equal(step(s, NULL, out, sizeof(out)), SASL_CONTINUE);
    const char *salt = strstr(out, ",s=");
    assert_non_null(salt);
    strcpy(salt_out, salt);
    assert_non_null(strstr(out, ",i=4096"));
    sasl_server_free(s);
}

static void test_unknown_user_salt(void **state)
{
    (void)state;
    static const uint8_t key[] = "server secret";
    sasl_params_t p = plain_params;
    char a[128], b[128], c[128];

    fake_salt(&p, "nobody", a);
    fake_salt(&p, "nobody", b);
    assert_string_not_equal(a, b);
    p.mock_key = key;
    p.mock_key_len = sizeof(key) - 1;
    fake_salt(&p, "nobody", a);
    fake_salt(&p, "nobody", b);
    fake_salt(&p, "somebody", c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_int_equal(strlen(a), strlen(",s=") + 24 + strlen(",i=4096"));
}

static void test_mechs_and_names(void **state)
{
    (void)state;
    const char *m[SASL_MECH_COUNT];
    size_t n;

    n = sasl_mechs_offer(false, 0, m, SASL_MECH_COUNT);
    assert_int_equal(n, 2);
    assert_string_equal(m[0], "SCRAM-SHA-256");
    assert_string_equal(m[1], "SCRAM-SHA-1");
    n = sasl_mechs_offer(true, 0, m, SASL_MECH_COUNT);
    assert_int_equal(n, 3);
    assert_string_equal(m[2], "PLAIN");
    n = sasl_mechs_offer(true, 1u << SASL_CB_TLS_EXPORTER, m, SASL_MECH_COUNT);
    assert_int_equal(n, 5);
    assert_string_equal(m[0], "SCRAM-SHA-256-PLUS");
    assert_string_equal(m[1], "SCRAM-SHA-1-PLUS");
    assert_string_equal(m[4], "PLAIN");
    n = sasl_mechs_offer(true, 1u << SASL_CB_TLS_EXPORTER, m, 2);
    assert_int_equal(n, 2);

    sasl_server_t *s = NULL;
    assert_int_equal(sasl_server_new("SCRAM-SHA-512", 13, &plain_params, &s), -ENOENT);
    assert_int_equal(sasl_server_new("plain", 5, &plain_params, &s), -ENOENT);
    assert_int_equal(sasl_server_new("PLAIN", 4, &plain_params, &s), -ENOENT);
    assert_int_equal(sasl_server_new("PLAINX", 6, &plain_params, &s), -ENOENT);
    assert_int_equal(sasl_server_new("", 0, &plain_params, &s), -ENOENT);
    sasl_params_t p = {.domain = "user@example.com", .domain_len = 16};
    assert_int_equal(sasl_server_new("PLAIN", 5, &p, &s), -EINVAL);
    p.domain = "example.com/r";
    p.domain_len = 13;
    assert_int_equal(sasl_server_new("PLAIN", 5, &p, &s), -EINVAL);
    p.domain = "exa mple.com";
    p.domain_len = 12;
    assert_int_equal(sasl_server_new("PLAIN", 5, &p, &s), -EINVAL);
    p.domain = NULL;
    assert_int_equal(sasl_server_new("PLAIN", 5, &p, &s), -EINVAL);
    assert_null(s);
    /* The domain is prepared. */
    p.domain = "Example.COM";
    p.domain_len = 11;
    s = server("PLAIN", &p);
    char out[64];
    assert_int_equal(step_len(s, "\0user\0pencil", 12, out, sizeof(out)), SASL_NEED_CREDS);
    assert_string_equal(sasl_server_jid(s)->full, "user@example.com");
    sasl_server_free(s);

    assert_string_equal(sasl_error_name(SASL_ERR_NOT_AUTHORIZED), "not-authorized");
    assert_string_equal(sasl_error_name(SASL_ERR_INCORRECT_ENCODING), "incorrect-encoding");
    assert_string_equal(sasl_error_name(SASL_ERR_TEMPORARY_AUTH_FAILURE), "temporary-auth-failure");
    assert_string_equal(sasl_error_name(SASL_ERR_NONE), "");
    assert_string_equal(sasl_cb_name(SASL_CB_TLS_SERVER_END_POINT), "tls-server-end-point");
}

static void test_wire_b64(void **state)
{
    (void)state;
    uint8_t out[32];
    size_t n = 9;
    core_buf_t b = {0};

    assert_int_equal(sasl_b64_decode("=", 1, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sasl_b64_decode("", 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(sasl_b64_decode("biws", 4, out, sizeof(out), &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "n,,", 3);
    assert_int_equal(sasl_b64_decode("==", 2, out, sizeof(out), &n), -EINVAL);
    assert_int_equal(sasl_b64_decode("bi ws", 5, out, sizeof(out), &n), -EINVAL);
    assert_int_equal(sasl_b64_decode("biws\n", 5, out, sizeof(out), &n), -EINVAL);
    assert_int_equal(sasl_b64_decode("biwt", 4, out, 2, &n), -EMSGSIZE);

    sasl_b64_encode(NULL, 0, &b);
    sasl_b64_encode((const uint8_t *)"n,,", 3, &b);
    sasl_b64_encode((const uint8_t *)"\0user\0pencil", 12, &b);
    core_buf_append(&b, "", 1);
    assert_string_equal(b.data, "=biwsAHVzZXIAcGVuY2ls");
    core_buf_release(&b);
}

/* An in-memory TLS connection, to check the channel-binding data against the client's view. */
struct tls_pair {
    SSL_CTX *sctx, *cctx;
    SSL *server, *client;
    X509 *cert;
};

static X509 *make_cert(EVP_PKEY *key, const EVP_MD *md)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"example.com", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_subject_name(x, name), 1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    assert_true(X509_sign(x, key, md) > 0);
    X509_NAME_free(name);
    return x;
}

static void tls_pair_open(struct tls_pair *t, EVP_PKEY *key, const EVP_MD *md, int version)
{
    BIO *sb = NULL, *cbio = NULL;
    t->cert = make_cert(key, md);
    t->sctx = SSL_CTX_new(TLS_server_method());
    t->cctx = SSL_CTX_new(TLS_client_method());
    assert_int_equal(SSL_CTX_use_certificate(t->sctx, t->cert), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey(t->sctx, key), 1);
    SSL_CTX_set_min_proto_version(t->sctx, version);
    SSL_CTX_set_max_proto_version(t->sctx, version);
    t->server = SSL_new(t->sctx);
    t->client = SSL_new(t->cctx);
    assert_int_equal(BIO_new_bio_pair(&sb, 0, &cbio, 0), 1);
    SSL_set_bio(t->server, sb, sb);
    SSL_set_bio(t->client, cbio, cbio);
    SSL_set_accept_state(t->server);
    SSL_set_connect_state(t->client);
    for (int i = 0; i < 50 && !(SSL_is_init_finished(t->server) && SSL_is_init_finished(t->client));
         i++) {
        (void)SSL_do_handshake(t->client);
        (void)SSL_do_handshake(t->server);
    }
    assert_true(SSL_is_init_finished(t->server) && SSL_is_init_finished(t->client));
    assert_int_equal(SSL_version(t->server), version);
}

static void tls_pair_close(struct tls_pair *t)
{
    SSL_free(t->server);
    SSL_free(t->client);
    SSL_CTX_free(t->sctx);
    SSL_CTX_free(t->cctx);
    X509_free(t->cert);
}

/* What the client computes for tls-server-end-point: its peer's certificate, hashed. */
static size_t end_point_hash(X509 *cert, const EVP_MD *md, uint8_t *out)
{
    unsigned char *der = NULL;
    unsigned int n = 0;
    int len = i2d_X509(cert, &der);
    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, out, &n, md, NULL), 1);
    OPENSSL_free(der);
    return n;
}

/*
 * A whole SCRAM-SHA-256-PLUS exchange bound to tls-server-end-point of a real handshake, with
 * the data a client computes (the server's side of these values is tested in test_tls.c).
 */
static void check_binding(EVP_PKEY *key, const EVP_MD *sig_md, const EVP_MD *ep_md, int version)
{
    struct tls_pair t;
    sasl_cb_data_t cb[SASL_CB_COUNT] = {0};
    uint8_t want[64];

    tls_pair_open(&t, key, sig_md, version);
    assert_int_equal(
        SSL_export_keying_material(t.client, want, 32, "EXPORTER-Channel-Binding", 24, NULL, 0, 0),
        1);
    cb[SASL_CB_TLS_EXPORTER].len = 32;
    memcpy(cb[SASL_CB_TLS_EXPORTER].data, want, 32);

    X509 *peer = SSL_get1_peer_certificate(t.client);
    size_t n = end_point_hash(peer, ep_md, want);
    X509_free(peer);
    cb[SASL_CB_TLS_SERVER_END_POINT].len = n;
    memcpy(cb[SASL_CB_TLS_SERVER_END_POINT].data, want, n);

    auth_creds_t c = rfc_creds();
    sasl_params_t p = {.domain = "example.com", .domain_len = 11, .cb = cb, .plus_offered = true};
    struct exchange x = {.mech = "SCRAM-SHA-256-PLUS",
                         .params = &p,
                         .cfirst = "p=tls-server-end-point,,n=user,r=abc",
                         .password = "pencil",
                         .creds = &c,
                         .cb = want,
                         .cb_len = n};
    expect_run(&x, SASL_SUCCESS, 0);
    auth_creds_clear(&c);
    tls_pair_close(&t);
}

static void test_binding_from_tls(void **state)
{
    (void)state;
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(ec);
    check_binding(ec, EVP_sha256(), EVP_sha256(), TLS1_3_VERSION);
    check_binding(ec, EVP_sha256(), EVP_sha256(), TLS1_2_VERSION);
    check_binding(ec, EVP_sha384(), EVP_sha384(), TLS1_3_VERSION);
    /* RFC 5929 §4.1: SHA-1 signatures are hashed with SHA-256. */
    check_binding(ec, EVP_sha1(), EVP_sha256(), TLS1_2_VERSION);
    EVP_PKEY_free(ec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc5802),
        cmocka_unit_test(test_rfc7677),
        cmocka_unit_test(test_scram_outcomes),
        cmocka_unit_test(test_scram_names),
        cmocka_unit_test(test_scram_malformed_first),
        cmocka_unit_test(test_scram_malformed_final),
        cmocka_unit_test(test_channel_binding),
        cmocka_unit_test(test_binding_policy),
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_out_of_turn),
        cmocka_unit_test(test_unknown_user_salt),
        cmocka_unit_test(test_mechs_and_names),
        cmocka_unit_test(test_wire_b64),
        cmocka_unit_test(test_binding_from_tls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
