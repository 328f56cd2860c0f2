/* SPDX-License-Identifier: MIT */
/* Unit tests of the credential layer: SASLprep, SCRAM keys, the text form, base64, sources. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/storage_source.h"
#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

/* RFC 5802 §5 and RFC 7677 §3: user "user", password "pencil", 4096 iterations. */
static const char rfc5802_salt[] = "QSXCR+Q6sek8bf92";
static const char rfc5802_stored[] = "6dlGYMOdZcOPutkcNY8U2g7vK9Y=";
static const char rfc5802_server[] = "D+CSWLOshSulAsxiupA+qs2/fTE=";
static const char rfc7677_salt[] = "W22ZaJ0SNY7soEsUEjb6gQ==";
static const char rfc7677_stored[] = "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=";
static const char rfc7677_server[] = "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

static void b64_equal(const uint8_t *bytes, size_t len, const char *want)
{
    char buf[256];
    assert_true(auth_b64_len(len) < sizeof(buf));
    size_t n = auth_b64_encode(bytes, len, buf);
    assert_int_equal(n, strlen(want));
    assert_string_equal(buf, want);
}

static void decode_salt(const char *b64, uint8_t *salt, size_t *len)
{
    assert_int_equal(auth_b64_decode(b64, strlen(b64), salt, AUTH_SALT_MAX, len), 0);
}

static void test_rfc_vectors(void **state)
{
    (void)state;
    uint8_t salt[AUTH_SALT_MAX];
    size_t salt_len;
    auth_scram_t k;

    decode_salt(rfc5802_salt, salt, &salt_len);
    assert_int_equal(salt_len, 12);
    assert_int_equal(auth_scram_derive(AUTH_HASH_SHA1, "pencil", 6, salt, salt_len, 4096, &k), 0);
    assert_true(k.set);
    assert_int_equal(k.iter, 4096);
    assert_memory_equal(k.salt, salt, salt_len);
    b64_equal(k.stored_key, 20, rfc5802_stored);
    b64_equal(k.server_key, 20, rfc5802_server);

    decode_salt(rfc7677_salt, salt, &salt_len);
    assert_int_equal(salt_len, 16);
    assert_int_equal(auth_scram_derive(AUTH_HASH_SHA256, "pencil", 6, salt, salt_len, 4096, &k), 0);
    b64_equal(k.stored_key, 32, rfc7677_stored);
    b64_equal(k.server_key, 32, rfc7677_server);

    /* Out-of-range parameters. */
    assert_int_equal(auth_scram_derive(AUTH_HASH_SHA256, "pencil", 6, salt, 11, 4096, &k), -EINVAL);
    assert_false(k.set);
    assert_int_equal(auth_scram_derive(AUTH_HASH_SHA256, "pencil", 6, salt, 16, 4095, &k), -EINVAL);
    assert_int_equal(
        auth_scram_derive(AUTH_HASH_SHA256, "pencil", 6, salt, 16, AUTH_ITER_MAX + 1, &k), -EINVAL);
    assert_int_equal(auth_scram_derive(AUTH_HASH_SHA256, "", 0, salt, 16, 4096, &k), -EINVAL);
    assert_int_equal(auth_hash_len(AUTH_HASH_SHA1), 20);
    assert_string_equal(auth_hash_mech(AUTH_HASH_SHA256), "SCRAM-SHA-256");
}

static void expect_prep(const char *in, bool stored, const char *want)
{
    char out[AUTH_PREP_MAX];
    size_t n = 99;
    int rc = auth_saslprep(in, strlen(in), stored, out, &n);
    if (want == NULL) {
        assert_int_equal(rc, -EINVAL);
        assert_int_equal(n, 0);
        return;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, strlen(want));
    assert_string_equal(out, want);
}

static void test_saslprep(void **state)
{
    (void)state;
    /* RFC 4013 §3's examples. */
    expect_prep("I\xC2\xADX", false, "IX"); /* U+00AD SOFT HYPHEN maps to nothing */
    expect_prep("user", false, "user");
    expect_prep("USER", false, "USER"); /* case is kept */
    expect_prep("\xC2\xAA", false, "a"); /* U+00AA FEMININE ORDINAL, NFKC */
    expect_prep("\xE2\x85\xA8", false, "IX"); /* U+2168 ROMAN NUMERAL NINE, NFKC */
    expect_prep("\x07", false, NULL); /* prohibited control */
    expect_prep("\xD8\xA7"
                "1",
                false, NULL); /* U+0627 U+0031: bidi rule */
    /* Non-ASCII space maps to SPACE (RFC 4013 §2.1). */
    expect_prep("a\xC2\xA0"
                "b",
                false, "a b");
    /* Unassigned in Unicode 3.2 (U+0221): a query may hold it, a stored string may not. */
    expect_prep("x\xC8\xA1", false, "x\xC8\xA1");
    expect_prep("x\xC8\xA1", true, NULL);
    /* Not UTF-8, empty, or empty after mapping. */
    expect_prep("\xFF", false, NULL);
    expect_prep("\xC0\xAF", false, NULL);
    expect_prep("", false, NULL);
    expect_prep("\xC2\xAD", false, NULL);

    char out[AUTH_PREP_MAX], big[AUTH_PASSWORD_MAX + 2];
    size_t n;
    assert_int_equal(auth_saslprep("a\0b", 3, false, out, &n), -EINVAL);
    memset(big, 'p', sizeof(big));
    assert_int_equal(auth_saslprep(big, AUTH_PASSWORD_MAX, false, out, &n), 0);
    assert_int_equal(n, AUTH_PASSWORD_MAX);
    assert_int_equal(auth_saslprep(big, AUTH_PASSWORD_MAX + 1, false, out, &n), -EINVAL);
}

static void test_check_password(void **state)
{
    (void)state;
    auth_creds_t c;

    assert_int_equal(auth_creds_from_password("pencil", 6, 4096, &c), 0);
    for (int h = 0; h < AUTH_HASH_COUNT; h++) {
        assert_true(c.scram[h].set);
        assert_int_equal(c.scram[h].iter, 4096);
        assert_int_equal(c.scram[h].salt_len, AUTH_SALT_LEN);
    }
    assert_memory_not_equal(c.scram[0].salt, c.scram[1].salt, AUTH_SALT_LEN);
    assert_int_equal(c.state, AUTH_ACCOUNT_ACTIVE);
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), 0);
    assert_int_equal(auth_creds_check_password(&c, "pencil2", 7), -EACCES);
    assert_int_equal(auth_creds_check_password(&c, "Pencil", 6), -EACCES);
    assert_int_equal(auth_creds_check_password(&c, "\x07", 1), -EINVAL);

    /* Only SHA-1 set: PLAIN checks against it. */
    c.scram[AUTH_HASH_SHA256].set = false;
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), 0);
    assert_int_equal(auth_creds_check_password(&c, "pencil ", 7), -EACCES);
    c.scram[AUTH_HASH_SHA1].set = false;
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), -EACCES);
    auth_creds_clear(&c);
    assert_false(c.scram[0].set);

    /* The stored form is SASLprep'd: equivalent spellings of one password match. */
    assert_int_equal(auth_creds_from_password("I\xC2\xADX", 4, 4096, &c), 0);
    assert_int_equal(auth_creds_check_password(&c, "IX", 2), 0);
    assert_int_equal(auth_creds_check_password(&c, "\xE2\x85\xA8", 3), 0);
    assert_int_equal(auth_creds_check_password(&c, "ix", 2), -EACCES);
    auth_creds_clear(&c);
    assert_int_equal(auth_creds_from_password("\xC2\xAA", 2, 4096, &c), 0);
    assert_int_equal(auth_creds_check_password(&c, "a", 1), 0);
    auth_creds_clear(&c);

    /* Refused passwords and counts. */
    assert_int_equal(auth_creds_from_password("\x07", 1, 4096, &c), -EINVAL);
    assert_false(c.scram[0].set || c.scram[1].set);
    assert_int_equal(auth_creds_from_password("pencil", 6, 1000, &c), -EINVAL);
    assert_int_equal(auth_creds_from_password("pencil", 6, 10000, &c), 0);
    assert_int_equal(c.scram[1].iter, 10000);
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), 0);
    auth_creds_clear(&c);
}

/* The RFC vectors' credentials, as the text form. */
static const char rfc_text[] = "scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                               "D+CSWLOshSulAsxiupA+qs2/fTE= "
                               "scram-sha-256:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"
                               "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:"
                               "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

static void test_text_form(void **state)
{
    (void)state;
    auth_creds_t c, d;
    char text[AUTH_CREDS_TEXT_MAX];
    size_t n;

    assert_int_equal(auth_creds_decode(rfc_text, strlen(rfc_text), &c), 0);
    assert_true(c.scram[0].set && c.scram[1].set);
    assert_int_equal(c.scram[0].salt_len, 12);
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), 0);
    assert_int_equal(auth_creds_encode(&c, text, &n), 0);
    assert_int_equal(n, strlen(rfc_text));
    assert_string_equal(text, rfc_text);

    /* Either order, one entry alone. */
    const char *sha256 = strchr(rfc_text, ' ') + 1;
    assert_int_equal(auth_creds_decode(sha256, strlen(sha256), &d), 0);
    assert_false(d.scram[0].set);
    assert_true(d.scram[1].set);
    assert_memory_equal(&d.scram[1], &c.scram[1], sizeof(d.scram[1]));
    char swapped[AUTH_CREDS_TEXT_MAX];
    size_t first = (size_t)(sha256 - 1 - rfc_text);
    snprintf(swapped, sizeof(swapped), "%s %.*s", sha256, (int)first, rfc_text);
    assert_int_equal(auth_creds_decode(swapped, strlen(swapped), &d), 0);
    assert_memory_equal(&d, &c, sizeof(d));

    /* A fresh one round-trips. */
    auth_creds_clear(&c);
    assert_int_equal(auth_creds_from_password("correct horse", 13, 4096, &c), 0);
    assert_int_equal(auth_creds_encode(&c, text, &n), 0);
    assert_int_equal(auth_creds_decode(text, n, &d), 0);
    assert_memory_equal(&d, &c, sizeof(d));
    assert_int_equal(auth_creds_check_password(&d, "correct horse", 13), 0);

    /* Nothing set, or out of range, does not encode. */
    auth_creds_clear(&d);
    assert_int_equal(auth_creds_encode(&d, text, &n), -EINVAL);
    c.scram[1].iter = 100;
    assert_int_equal(auth_creds_encode(&c, text, &n), -EINVAL);
    auth_creds_clear(&c);
    auth_creds_clear(&d);
}

static void expect_bad_text(const char *s)
{
    auth_creds_t c;
    int rc = auth_creds_decode(s, strlen(s), &c);
    if (rc != -EINVAL)
        fail_msg("accepted: \"%s\"", s);
    assert_false(c.scram[0].set || c.scram[1].set);
}

#define S1 "QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE="

static void test_text_form_strict(void **state)
{
    (void)state;
    auth_creds_t c;
    assert_int_equal(auth_creds_decode("scram-sha-1:4096:" S1, strlen("scram-sha-1:4096:" S1), &c),
                     0);
    assert_int_equal(auth_creds_decode("scram-sha-1:4096:W22ZaJ0SNY7soEsUEjb6gQ==:"
                                       "6dlGYMOdZcOPutkcNY8U2g7vK9Y=:D+CSWLOshSulAsxiupA+qs2/fTE=",
                                       99, &c),
                     0);
    assert_int_equal(
        auth_creds_decode("scram-sha-1:1000000:" S1, strlen("scram-sha-1:1000000:" S1), &c), 0);

    expect_bad_text("");
    expect_bad_text(" ");
    expect_bad_text(" scram-sha-1:4096:" S1);
    expect_bad_text("scram-sha-1:4096:" S1 " ");
    expect_bad_text("scram-sha-1:4096:" S1 "\n");
    expect_bad_text("scram-sha-1:4096:" S1 "  scram-sha-1:4096:" S1);
    expect_bad_text("scram-sha-1:4096:" S1 " scram-sha-1:4096:" S1); /* twice */
    expect_bad_text("SCRAM-SHA-1:4096:" S1);
    expect_bad_text("scram-sha-512:4096:" S1);
    expect_bad_text("scram-sha-1:04096:" S1);
    expect_bad_text("scram-sha-1:4095:" S1);
    expect_bad_text("scram-sha-1:1000001:" S1);
    expect_bad_text("scram-sha-1:+4096:" S1);
    expect_bad_text("scram-sha-1:40 96:" S1);
    expect_bad_text("scram-sha-1::" S1);
    expect_bad_text("scram-sha-1:99999999999999999999:" S1);
    expect_bad_text("scram-sha-1:4096");
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8bf92");
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=");
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:");
    expect_bad_text("scram-sha-1:4096:" S1 ":");
    expect_bad_text("scram-sha-1:4096:" S1 ":extra");
    /* Salt too short (9 bytes), not canonical, not base64; keys of the wrong length. */
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                    "D+CSWLOshSulAsxiupA+qs2/fTE=");
    expect_bad_text("scram-sha-1:4096:W22ZaJ0SNY7soEsUEjb6gR==:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                    "D+CSWLOshSulAsxiupA+qs2/fTE=");
    expect_bad_text("scram-sha-1:4096:QSXCR-Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                    "D+CSWLOshSulAsxiupA+qs2/fTE=");
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                    "D+CSWLOshSulAsxiupA+qs2/fTF=");
    expect_bad_text("scram-sha-256:4096:" S1);
    expect_bad_text("scram-sha-1:4096:QSXCR+Q6sek8bf92:6dlGYMOdZcOPutkcNY8U2g7vK9Y=:"
                    "D+CSWLOshSulAsxiupA+qs2/fTE=AAAA");
    /* A NUL inside. */
    const char nul[] = "scram-sha-1:4096:" S1 "\0";
    assert_int_equal(auth_creds_decode(nul, sizeof(nul) - 1, &c), -EINVAL);
}

static void expect_b64(const char *in, int want_rc, const char *want, size_t want_len)
{
    uint8_t out[64];
    size_t n = 99;
    int rc = auth_b64_decode(in, strlen(in), out, sizeof(out), &n);
    if (rc != want_rc)
        fail_msg("\"%s\": rc %d, want %d", in, rc, want_rc);
    if (rc == 0) {
        assert_int_equal(n, want_len);
        assert_memory_equal(out, want, want_len);
    } else {
        assert_int_equal(n, 0);
    }
}

static void test_b64(void **state)
{
    (void)state;
    expect_b64("", 0, "", 0);
    expect_b64("QQ==", 0, "A", 1);
    expect_b64("QUI=", 0, "AB", 2);
    expect_b64("QUJD", 0, "ABC", 3);
    expect_b64("AA==", 0, "\0", 1);
    expect_b64("QR==", -EINVAL, NULL, 0); /* unused bits set */
    expect_b64("QUJ=", -EINVAL, NULL, 0);
    expect_b64("QQ=", -EINVAL, NULL, 0);
    expect_b64("QQ", -EINVAL, NULL, 0);
    expect_b64("=", -EINVAL, NULL, 0);
    expect_b64("Q===", -EINVAL, NULL, 0);
    expect_b64("====", -EINVAL, NULL, 0);
    expect_b64("=QQ=", -EINVAL, NULL, 0);
    expect_b64("QQ==QUJD", -EINVAL, NULL, 0);
    expect_b64("QUJD====", -EINVAL, NULL, 0);
    expect_b64(" QUJD", -EINVAL, NULL, 0);
    expect_b64("QUJD ", -EINVAL, NULL, 0);
    expect_b64("QUJD\n", -EINVAL, NULL, 0);
    expect_b64("QU JD", -EINVAL, NULL, 0);
    expect_b64("  QUJD  ", -EINVAL, NULL, 0);
    expect_b64("QUJDQUJD\r\n\r\n", -EINVAL, NULL, 0);
    expect_b64("QU-_", -EINVAL, NULL, 0);
    expect_b64("QUJ\x80", -EINVAL, NULL, 0);

    /* Exact capacity. */
    uint8_t out[3];
    size_t n;
    assert_int_equal(auth_b64_decode("QUJD", 4, out, 3, &n), 0);
    assert_int_equal(auth_b64_decode("QUJD", 4, out, 2, &n), -EMSGSIZE);
    assert_int_equal(auth_b64_decode("QUI=", 4, out, 2, &n), 0);
    assert_int_equal(n, 2);

    /* Random round trips across the chunk sizes. */
    uint8_t raw[300], back[300];
    char text[401];
    for (size_t len = 0; len <= sizeof(raw); len++) {
        assert_int_equal(RAND_bytes(raw, (int)sizeof(raw)), 1);
        size_t tl = auth_b64_encode(raw, len, text);
        assert_int_equal(tl, auth_b64_len(len));
        assert_int_equal(strlen(text), tl);
        assert_int_equal(auth_b64_decode(text, tl, back, len, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(back, raw, len);
        if (len > 0) {
            /* Any one character changed to another base64 character is another text:
             * either it decodes to other bytes, or it is refused as not canonical. */
            size_t at = len % tl;
            text[at] = text[at] == 'A' ? 'B' : 'A';
            if (auth_b64_decode(text, tl, back, len, &n) == 0)
                assert_memory_not_equal(back, raw, len);
        }
    }
}

/* The memory source. */
struct lookup_result {
    int calls;
    int status;
    auth_creds_t creds;
};

static void on_lookup(void *arg, int status, const auth_creds_t *creds)
{
    struct lookup_result *r = arg;
    r->calls++;
    r->status = status;
    if (creds != NULL)
        r->creds = *creds;
    else
        memset(&r->creds, 0, sizeof(r->creds));
}

struct chain {
    auth_source_t *src;
    struct lookup_result second;
    auth_request_t *to_cancel;
    int calls;
};

/* A callback that looks up again and cancels a request still queued. */
static void on_lookup_chain(void *arg, int status, const auth_creds_t *creds)
{
    (void)creds;
    struct chain *c = arg;
    auth_request_t *req;
    c->calls++;
    assert_int_equal(status, 0);
    if (c->to_cancel != NULL) {
        auth_source_cancel(c->src, c->to_cancel);
        c->to_cancel = NULL;
    }
    assert_int_equal(
        auth_source_lookup(c->src, "user", 4, "example.com", 11, on_lookup, &c->second, &req), 0);
}

static void test_memory_source(void **state)
{
    (void)state;
    uv_loop_t loop;
    auth_creds_t c;
    auth_request_t *req;
    struct lookup_result a = {0}, b = {0}, d = {0};
    size_t before = core_alloc_bytes();

    assert_int_equal(uv_loop_init(&loop), 0);
    auth_source_t *src = auth_memory_new(&loop);
    assert_string_equal(src->ops->name, "memory");
    assert_int_equal(auth_creds_decode(rfc_text, strlen(rfc_text), &c), 0);
    assert_int_equal(auth_memory_set(src, "user", 4, "example.com", 11, &c), 0);
    assert_int_equal(auth_memory_set(src, "", 0, "example.com", 11, &c), -EINVAL);

    /* Answers come from the loop, never from inside lookup. */
    assert_int_equal(auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup, &a, &req), 0);
    assert_int_equal(auth_source_lookup(src, "nobody", 6, "example.com", 11, on_lookup, &b, &req),
                     0);
    assert_int_equal(auth_source_lookup(src, "user", 4, "example.org", 11, on_lookup, &d, &req), 0);
    auth_source_cancel(src, req);
    assert_int_equal(a.calls + b.calls + d.calls, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, 0);
    assert_memory_equal(&a.creds, &c, sizeof(c));
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, -ENOENT);
    assert_int_equal(d.calls, 0);

    /* Lookups from inside a callback go to the next round; cancels inside one hold. */
    struct chain ch = {.src = src};
    struct lookup_result e = {0};
    assert_int_equal(
        auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup_chain, &ch, &req), 0);
    assert_int_equal(
        auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup, &e, &ch.to_cancel), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(ch.calls, 1);
    assert_int_equal(ch.second.calls, 1);
    assert_int_equal(ch.second.status, 0);
    assert_int_equal(e.calls, 0);

    /* Replace, remove. */
    c.state = AUTH_ACCOUNT_DISABLED;
    assert_int_equal(auth_memory_set(src, "user", 4, "example.com", 11, &c), 0);
    memset(&a, 0, sizeof(a));
    assert_int_equal(auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup, &a, &req), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.creds.state, AUTH_ACCOUNT_DISABLED);
    assert_int_equal(auth_memory_remove(src, "user", 4, "example.com", 11), 0);
    assert_int_equal(auth_memory_remove(src, "user", 4, "example.com", 11), -ENOENT);
    memset(&a, 0, sizeof(a));
    assert_int_equal(auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup, &a, &req), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.status, -ENOENT);

    /* Freed with a request pending: it learns so, from the loop. */
    assert_int_equal(auth_memory_set(src, "user", 4, "example.com", 11, &c), 0);
    memset(&a, 0, sizeof(a));
    assert_int_equal(auth_source_lookup(src, "user", 4, "example.com", 11, on_lookup, &a, &req), 0);
    auth_source_free(src);
    assert_int_equal(a.calls, 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, -ECANCELED);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(core_alloc_bytes(), before);
    auth_creds_clear(&c);
}

static void test_hash_primitives(void **state)
{
    (void)state;
    uint8_t out[32];
    /* FIPS 180-2 "abc" and RFC 4231 test case 2. */
    assert_int_equal(auth_hash(AUTH_HASH_SHA1, "abc", 3, out), 0);
    b64_equal(out, 20, "qZk+NkcGgWq6PiVxeFDCbJzQ2J0=");
    assert_int_equal(
        auth_hmac(AUTH_HASH_SHA256, "Jefe", 4, "what do ya want for nothing?", 28, out), 0);
    b64_equal(out, 32, "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=");
}

/* ---- the storage-backed source ---- */

typedef struct store_result {
    int calls;
    int status;
    int check;
} store_result_t;

static void on_storage_lookup(void *arg, int status, const auth_creds_t *creds)
{
    store_result_t *r = arg;
    r->calls++;
    r->status = status;
    if (status == 0)
        r->check = auth_creds_check_password(creds, "pencil", 6);
}

/* ---- creating accounts (XEP-0077 registration) through either source ---- */

typedef struct create_result {
    int calls;
    int status;
} create_result_t;

static void on_created(void *arg, int status)
{
    create_result_t *r = arg;
    r->calls++;
    r->status = status;
}

/* Creates "new" twice and looks it up, running loop until each has answered. */
static void create_twice(uv_loop_t *loop, auth_source_t *src)
{
    auth_creds_t c;
    auth_request_t *req;
    create_result_t first = {0}, second = {0}, cancelled = {0};
    store_result_t found = {0};
    assert_int_equal(auth_creds_from_password("pencil", 6, 4096, &c), 0);
    assert_int_equal(
        auth_source_create(src, "new", 3, "localhost", 9, &c, on_created, &first, &req), 0);
    assert_int_equal(first.calls, 0); /* never inside the call */
    while (first.calls == 0)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(first.status, 0);
    assert_int_equal(
        auth_source_create(src, "new", 3, "localhost", 9, &c, on_created, &second, &req), 0);
    assert_int_equal(
        auth_source_create(src, "other", 5, "localhost", 9, &c, on_created, &cancelled, &req), 0);
    auth_source_cancel(src, req);
    assert_int_equal(
        auth_source_lookup(src, "new", 3, "localhost", 9, on_storage_lookup, &found, &req), 0);
    while (second.calls == 0 || found.calls == 0)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(second.status, -EEXIST);
    assert_int_equal(found.status, 0);
    assert_int_equal(found.check, 0);
    assert_int_equal(cancelled.calls, 0);
    auth_creds_clear(&c);
}

static void test_storage_source(void **state)
{
    char dir[] = "/tmp/parley-auth-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/parley.db", dir);
    storage_config_t cfg = {
        .backend = STORAGE_BACKEND_SQLITE, .path = path, .sync = STORAGE_SYNC_NONE};
    /* An account as parleyctl writes it: the credential line, never the password. */
    auth_creds_t c;
    assert_int_equal(auth_creds_from_password("pencil", 6, 4096, &c), 0);
    char text[AUTH_CREDS_TEXT_MAX];
    size_t n;
    assert_int_equal(auth_creds_encode(&c, text, &n), 0);
    auth_creds_clear(&c);
    storage_db_t *db;
    assert_int_equal(storage_db_open(&cfg, &db), 0);
    assert_int_equal(storage_db_user_create(db, "user", text), 0);
    assert_null(strstr(text, "pencil"));
    storage_db_close(db);

    uv_loop_t loop;
    uv_loop_init(&loop);
    storage_t *st;
    assert_int_equal(storage_open(&loop, &cfg, &st), 0);
    auth_source_t *src = auth_storage_new(st);
    store_result_t known = {0}, unknown = {0}, cancelled = {0};
    auth_request_t *req;
    assert_int_equal(
        auth_source_lookup(src, "user", 4, "localhost", 9, on_storage_lookup, &known, &req), 0);
    assert_int_equal(
        auth_source_lookup(src, "nobody", 6, "localhost", 9, on_storage_lookup, &unknown, &req), 0);
    assert_int_equal(
        auth_source_lookup(src, "user", 4, "localhost", 9, on_storage_lookup, &cancelled, &req), 0);
    auth_source_cancel(src, req);
    assert_int_equal(known.calls, 0); /* never inside the call */
    while (known.calls == 0 || unknown.calls == 0)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(known.status, 0);
    assert_int_equal(known.check, 0);
    assert_int_equal(unknown.status, -ENOENT);
    create_twice(&loop, src);
    auth_source_free(src);
    storage_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(cancelled.calls, 0);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The memory source creates accounts too (the storage source: test_storage_source). */
static void test_memory_create(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    auth_source_t *mem = auth_memory_new(&loop);
    create_twice(&loop, mem);
    auth_source_free(mem);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The text form straight from a password (parleyctl, password changes) decodes and checks. */
static void test_text_from_password(void **state)
{
    (void)state;
    char text[AUTH_CREDS_TEXT_MAX];
    size_t n = 0;
    auth_creds_t c;
    assert_int_equal(auth_creds_text_from_password("pencil", 6, 4096, text, &n), 0);
    assert_int_equal(n, strlen(text));
    assert_null(strstr(text, "pencil"));
    assert_int_equal(auth_creds_decode(text, n, &c), 0);
    assert_int_equal(auth_creds_check_password(&c, "pencil", 6), 0);
    assert_int_equal(auth_creds_check_password(&c, "pencil!", 7), -EACCES);
    auth_creds_clear(&c);
    assert_int_equal(auth_creds_text_from_password("", 0, 4096, text, &n), -EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(auth_password_acceptable("pencil", 6), 0);
    assert_int_equal(auth_password_acceptable("", 0), -EINVAL);
    assert_int_equal(auth_password_acceptable("a\x07b", 3), -EINVAL); /* a control character */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_vectors),        cmocka_unit_test(test_saslprep),
        cmocka_unit_test(test_check_password),     cmocka_unit_test(test_text_form),
        cmocka_unit_test(test_text_form_strict),   cmocka_unit_test(test_b64),
        cmocka_unit_test(test_memory_source),      cmocka_unit_test(test_storage_source),
        cmocka_unit_test(test_hash_primitives),    cmocka_unit_test(test_memory_create),
        cmocka_unit_test(test_text_from_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
