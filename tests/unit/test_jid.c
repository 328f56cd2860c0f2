/* SPDX-License-Identifier: MIT */
/* Unit tests of JID parsing, preparation, the ASCII fast path and the preparation cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "jid/internal.h"
#include "jid/jid.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Checks the layout invariants of a parsed JID. */
static void check_layout(const jid_t *j)
{
    assert_non_null(j->full);
    assert_int_equal(strlen(j->full), j->full_len);
    assert_in_range(j->domain_len, 1, JID_PART_MAX);
    assert_in_range(j->node_len, 0, JID_PART_MAX);
    assert_in_range(j->res_len, 0, JID_PART_MAX);
    if (j->node_len != 0) {
        assert_int_equal(j->full[j->node_len], '@');
        assert_int_equal(j->domain_off, j->node_len + 1);
    } else {
        assert_int_equal(j->domain_off, 0);
    }
    assert_int_equal(j->bare_len, j->domain_off + j->domain_len);
    if (j->res_len != 0) {
        assert_int_equal(j->full[j->bare_len], '/');
        assert_int_equal(j->full_len, j->bare_len + 1 + j->res_len);
    } else {
        assert_int_equal(j->full_len, j->bare_len);
    }
}

/* Parses in (with and without a cache) and checks the prepared form is want. */
static void expect_jid_len(const char *in, size_t len, const char *want)
{
    jid_cache_t *c = jid_cache_new(64);
    jid_t a, b, again;

    assert_int_equal(jid_parse(NULL, in, len, &a), 0);
    check_layout(&a);
    assert_string_equal(a.full, want);

    assert_int_equal(jid_parse(c, in, len, &b), 0);
    assert_string_equal(b.full, want);
    assert_true(jid_equal(&a, &b));
    jid_clear(&b);
    /* The second time it comes from the cache, if it was cached at all. */
    assert_int_equal(jid_parse(c, in, len, &b), 0);
    assert_string_equal(b.full, want);

    /* A prepared JID is its own preparation. */
    assert_int_equal(jid_parse(NULL, a.full, a.full_len, &again), 0);
    assert_string_equal(again.full, want);
    assert_int_equal(again.node_len, a.node_len);
    assert_int_equal(again.domain_len, a.domain_len);
    assert_int_equal(again.res_len, a.res_len);

    jid_clear(&again);
    jid_clear(&b);
    jid_clear(&a);
    jid_cache_free(c);
}

static void expect_jid(const char *in, const char *want)
{
    expect_jid_len(in, strlen(in), want);
}

static void expect_invalid_len(const char *in, size_t len)
{
    jid_cache_t *c = jid_cache_new(64);
    jid_t j;
    j.full = (char *)"stale";
    assert_int_equal(jid_parse(NULL, in, len, &j), -EINVAL);
    assert_null(j.full);
    assert_int_equal(jid_parse(c, in, len, &j), -EINVAL);
    assert_int_equal(jid_parse(c, in, len, &j), -EINVAL);
    assert_null(j.full);
    jid_clear(&j);
    jid_cache_free(c);
}

static void expect_invalid(const char *in)
{
    expect_invalid_len(in, strlen(in));
}

/* RFC 7622 §3.5.1 examples, prepared with the stringprep profiles (RFC 6122). */
static void test_rfc7622_valid(void **state)
{
    (void)state;
    expect_jid("juliet@example.com", "juliet@example.com");
    expect_jid("juliet@example.com/foo", "juliet@example.com/foo");
    expect_jid("juliet@example.com/foo bar", "juliet@example.com/foo bar");
    expect_jid("juliet@example.com/foo@bar", "juliet@example.com/foo@bar");
    expect_jid("foo\\20bar@example.com", "foo\\20bar@example.com");
    expect_jid("fussball@example.com", "fussball@example.com");
    /* nodeprep's case folding (RFC 3454 B.2) maps ß to "ss". */
    expect_jid("fu\u00dfball@example.com", "fussball@example.com");
    expect_jid("\u03c0@example.com", "\u03c0@example.com"); /* π */
    expect_jid("\u03a3@example.com/foo", "\u03c3@example.com/foo"); /* Σ → σ */
    expect_jid("\u03c3@example.com/foo", "\u03c3@example.com/foo"); /* σ */
    expect_jid("\u03c2@example.com/foo", "\u03c3@example.com/foo"); /* ς → σ */
    expect_jid("king@example.com/\u265a", "king@example.com/\u265a"); /* ♚ */
    expect_jid("example.com", "example.com");
    expect_jid("example.com/foobar", "example.com/foobar");
    expect_jid("a.example.com/b@example.net", "a.example.com/b@example.net");
}

static void test_parts(void **state)
{
    (void)state;
    jid_t j;
    assert_int_equal(jid_parse(NULL, "a.example.com/b@example.net", 27, &j), 0);
    assert_false(jid_has_node(&j));
    assert_true(jid_has_resource(&j));
    assert_int_equal(j.domain_len, 13);
    assert_memory_equal(jid_domain_ptr(&j), "a.example.com", 13);
    assert_string_equal(j.full + j.bare_len + 1, "b@example.net");
    jid_clear(&j);

    /* The node ends at the last '@' before the resource (RFC 7622 §3.1). */
    const char *s = "juliet@example.com/a@b/c";
    assert_int_equal(jid_parse(NULL, s, strlen(s), &j), 0);
    assert_int_equal(j.node_len, 6);
    assert_memory_equal(jid_domain_ptr(&j), "example.com", 11);
    assert_int_equal(j.res_len, 5);
    assert_string_equal(j.full + j.bare_len + 1, "a@b/c");
    jid_clear(&j);

    /* Only the given length is read. */
    assert_int_equal(jid_parse(NULL, "juliet@example.com/foo", 18, &j), 0);
    assert_string_equal(j.full, "juliet@example.com");
    jid_clear(&j);
}

static void test_ip_literals(void **state)
{
    (void)state;
    expect_jid("[::1]", "[::1]");
    expect_jid("juliet@[2001:DB8:0::0:1]/r", "juliet@[2001:db8::1]/r");
    expect_jid("[2001:db8:0:0:0:0:0:1]", "[2001:db8::1]");
    expect_jid("[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]");
    expect_jid("192.0.2.1", "192.0.2.1");
    expect_jid("juliet@192.0.2.1/x", "juliet@192.0.2.1/x");
    expect_jid("192.0.2.1.", "192.0.2.1");
    expect_invalid("[::1");
    expect_invalid("::1");
    expect_invalid("[]");
    expect_invalid("[zz]");
    expect_invalid("[192.0.2.1]");
    expect_invalid("[::1%eth0]");
    expect_invalid("[::1].");
    expect_invalid_len("[::1\0]", 6);
    /* A numeric last label means an IPv4 address, which this is not. */
    expect_invalid("192.0.2.256");
    expect_invalid("1.2.3");
    expect_invalid("example.123");
    expect_invalid("\uff11.2.3.4.5"); /* fullwidth 1, prepared to 1.2.3.4.5 */
    expect_jid("\uff11.2.3.4", "1.2.3.4");
}

static void test_rfc7622_invalid(void **state)
{
    (void)state;
    expect_invalid("");
    expect_invalid("@");
    expect_invalid("/");
    expect_invalid("@/");
    expect_invalid("@example.com");
    expect_invalid("@example.com/foo");
    expect_invalid("juliet@");
    expect_invalid("juliet@/foo");
    expect_invalid("example.com/");
    expect_invalid("juliet@example.com/");
    expect_invalid("/foobar");
    expect_invalid("\"juliet\"@example.com");
    expect_invalid("foo bar@example.com");
    expect_invalid("a&b@example.com");
    expect_invalid("a'b@example.com");
    expect_invalid("a:b@example.com");
    expect_invalid("<juliet>@example.com");
    expect_invalid("a@b@example.com");
    expect_invalid("ju\uff20liet@example.com"); /* fullwidth '@' becomes a prohibited '@' */
    expect_invalid("ju\uff0fliet@example.com"); /* fullwidth '/' likewise */
    expect_invalid("a\tb@example.com");
    expect_invalid("juliet@example.com/foo\x01");
    expect_invalid("juliet@example.com/foo\x7f");
    expect_invalid("juliet@exa mple.com");
    expect_invalid("juliet@exa_mple.com");
    expect_invalid("juliet@example.com:5222");
    expect_invalid("-example.com");
    expect_invalid("example-.com");
    expect_invalid("a..example.com");
    expect_invalid(".example.com");
    expect_invalid(".");
    expect_invalid("example.com..");
    expect_invalid("\u3002");
    /* Invalid UTF-8: a lone continuation byte, an overlong '/', a surrogate, a cut sequence. */
    expect_invalid("\x80@example.com");
    expect_invalid("a@example.com/\xc0\xaf");
    expect_invalid("a@example.com/\xed\xa0\x80");
    expect_invalid("a@ex\xc3");
    expect_invalid("\xff@example.com");
    expect_invalid_len("ju\0iet@example.com", 18);
    expect_invalid_len("juliet@exa\0mple.com", 19);
    expect_invalid_len("juliet@example.com/f\0o", 22);
    /* Bidi (RFC 3454 §6): a right-to-left character next to left-to-right ones. */
    expect_invalid("\u05d0a@example.com");
    expect_invalid("juliet@example.com/\u05d0a");
    expect_invalid("juliet@\u05d0a.example");
    /* Only mapped-to-nothing code points (U+00AD soft hyphen): empty after preparation. */
    expect_invalid("\u00ad@example.com");
    expect_invalid("juliet@example.com/\u00ad");
    expect_invalid("juliet@\u00ad.example");
}

static void test_bidi_valid(void **state)
{
    (void)state;
    /* All right-to-left is fine, and the bidi rule applies to each label on its own. */
    expect_jid("\u05d0\u05d1@example.com", "\u05d0\u05d1@example.com");
    expect_jid("juliet@\u05d0\u05d1.example", "juliet@\u05d0\u05d1.example");
}

static void fill(char *p, char c, size_t n)
{
    memset(p, c, n);
}

static void test_lengths_real(void **state)
{
    (void)state;
    static char buf[4 * 1100];
    static char want[4 * 1100];
    jid_t j;

    fill(buf, 'a', 1023);
    memcpy(buf + 1023, "@example.com", 13);
    expect_jid(buf, buf);
    fill(buf, 'a', 1024);
    memcpy(buf + 1024, "@example.com", 13);
    expect_invalid(buf);
    /* Upper case goes through nodeprep and is still measured after preparation. */
    fill(buf, 'A', 1023);
    memcpy(buf + 1023, "@example.com", 13);
    fill(want, 'a', 1023);
    memcpy(want + 1023, "@example.com", 13);
    expect_jid(buf, want);
    fill(buf, 'A', 1024);
    memcpy(buf + 1024, "@example.com", 13);
    expect_invalid(buf);
    /* ß doubles to "ss": 512 of them make 1024 octets. */
    for (size_t i = 0; i < 512; i++)
        memcpy(buf + 2 * i, "\u00df", 2);
    memcpy(buf + 1024, "@example.com", 13);
    expect_invalid(buf);

    /* Resource. */
    memcpy(buf, "a@b/", 4);
    fill(buf + 4, 'R', 1023);
    buf[4 + 1023] = '\0';
    expect_jid(buf, buf);
    fill(buf + 4, 'R', 1024);
    buf[4 + 1024] = '\0';
    expect_invalid(buf);
    memcpy(buf + 4, "\u00e9", 2); /* é: the slow path measures too */
    fill(buf + 6, 'R', 1022);
    buf[6 + 1022] = '\0';
    expect_invalid(buf);
    buf[6 + 1021] = '\0';
    expect_jid(buf, buf);

    /* Domain: 16 labels of 63 make 1023 octets; labels of 64 are too long. */
    size_t o = 0;
    for (int l = 0; l < 16; l++) {
        if (l != 0)
            buf[o++] = '.';
        fill(buf + o, 'd', 63);
        o += 63;
    }
    buf[o] = '\0';
    assert_int_equal(o, 1023);
    expect_jid(buf, buf);
    /* The same through the slow path (upper case): the last octet must still fit. */
    for (size_t i = 0; i < o; i++)
        want[i] = buf[i] == 'd' ? 'D' : '.';
    want[o] = '\0';
    expect_jid(want, buf);
    /* A trailing dot does not count. */
    buf[o] = '.';
    buf[o + 1] = '\0';
    assert_int_equal(jid_parse(NULL, buf, o + 1, &j), 0);
    assert_int_equal(j.domain_len, 1023);
    jid_clear(&j);
    buf[o] = 'd';
    buf[o + 1] = '\0';
    expect_invalid(buf);
    want[o] = 'D';
    want[o + 1] = '\0';
    expect_invalid(want);

    fill(buf, 'd', 63);
    memcpy(buf + 63, ".example", 9);
    expect_jid(buf, buf);
    fill(buf, 'd', 64);
    memcpy(buf + 64, ".example", 9);
    expect_invalid(buf);
    fill(buf, 'D', 64);
    memcpy(buf + 64, ".example", 9);
    expect_invalid(buf);

    /* Raw parts far longer than any valid preparation are refused early. */
    fill(buf, 'A', JID_RAW_MAX + 1);
    memcpy(buf + JID_RAW_MAX + 1, "@example.com", 13);
    expect_invalid(buf);
}

static void test_case_folding(void **state)
{
    (void)state;
    /* Node and domain fold case; the resource keeps it (resourceprep has no B.2). */
    expect_jid("JULIET@EXAMPLE.COM/Balcony", "juliet@example.com/Balcony");
    expect_jid("Juliet@Example.Com", "juliet@example.com");
    expect_jid("juliet@example.com/\u00c9T\u00e9", "juliet@example.com/\u00c9T\u00e9");
    expect_jid("\u00c9T\u00c9@example.com", "\u00e9t\u00e9@example.com"); /* ÉTÉ → été */
    /* NFKC: fullwidth letters become ASCII. */
    expect_jid("\uff2a@\uff45xample.com", "j@example.com");
    /* resourceprep still does NFKC and drops B.1 characters. */
    expect_jid("a@b/x\u00ady", "a@b/xy");
    expect_jid("a@b/\uff21", "a@b/A");
    /* A resource may contain '/' after NFKC (fullwidth solidus); it stays one resource. */
    expect_jid("a@b/x\uff0fy", "a@b/x/y");
}

static void test_trailing_dot(void **state)
{
    (void)state;
    expect_jid("juliet@example.com./r", "juliet@example.com/r");
    expect_jid("example.com.", "example.com");
    expect_jid("EXAMPLE.COM.", "example.com");
    expect_jid("juliet@example.com\u3002", "juliet@example.com"); /* U+3002 */
    expect_jid("juliet@example\u3002com", "juliet@example.com");
    expect_jid("juliet@example\uff0ecom", "juliet@example.com"); /* U+FF0E */
    expect_jid("juliet@example\uff61com", "juliet@example.com"); /* U+FF61 */
    expect_invalid("juliet@example..");
}

static void test_idn(void **state)
{
    (void)state;
    /* Kept in Unicode; A-labels become U-labels. */
    expect_jid("juliet@b\u00fccher.example", "juliet@b\u00fccher.example");
    expect_jid("juliet@B\u00dcCHER.example", "juliet@b\u00fccher.example");
    expect_jid("juliet@xn--bcher-kva.example", "juliet@b\u00fccher.example");
    expect_jid("juliet@XN--BCHER-KVA.example", "juliet@b\u00fccher.example");
    expect_jid("juliet@stra\u00dfe.example", "juliet@strasse.example");
    /* Broken A-labels are refused, as are labels that are not valid even before IDNA. */
    expect_invalid("juliet@xn--.example");
    expect_invalid("juliet@xn--abc-.example");
    expect_invalid("juliet@xn--bcher-kva!.example");
    expect_invalid("juliet@xn--bcher-kvb.example");
    /* A-labels hiding a label separator ("a\u3002b", "\u00fc\u3002x"): not one label. */
    expect_invalid("juliet@xn--ab-r13a.example");
    expect_invalid("juliet@xn--x-dha8227a.example");
    expect_invalid("juliet@b\u00fccher_.example");
    expect_invalid("juliet@-b\u00fccher.example");
    /* ⒈ is NFKC "1.": a dot made by preparation must not become a separator. */
    expect_invalid("juliet@\u2488example");
    /* An A-label, even in lower case, is not in prepared form: it becomes a U-label. */
    assert_int_equal(
        jid_part_check_fast(JID_PART_DOMAIN, "xn--bcher-kva.example", 21, &(size_t){0}),
        JID_FAST_NEEDS_PREP);
    /* R-LDH labels other than "xn--" are plain LDH labels under IDNA2003. */
    expect_jid("ab--cd.example", "ab--cd.example");
    expect_jid("AB--CD.example", "ab--cd.example");
}

static void expect_fast(enum jid_part part, const char *in, enum jid_fast want, size_t want_len)
{
    size_t n = 12345;
    assert_int_equal(jid_part_check_fast(part, in, strlen(in), &n), want);
    if (want == JID_FAST_PREPARED)
        assert_int_equal(n, want_len);
}

static void test_fast_path(void **state)
{
    (void)state;
    expect_fast(JID_PART_DOMAIN, "example.com", JID_FAST_PREPARED, 11);
    expect_fast(JID_PART_DOMAIN, "example.com.", JID_FAST_PREPARED, 11);
    expect_fast(JID_PART_DOMAIN, "192.0.2.1", JID_FAST_PREPARED, 9);
    expect_fast(JID_PART_DOMAIN, "a-b.c0", JID_FAST_PREPARED, 6);
    expect_fast(JID_PART_DOMAIN, "Example.com", JID_FAST_NEEDS_PREP, 0);
    expect_fast(JID_PART_DOMAIN, "b\u00fccher.example", JID_FAST_NEEDS_PREP, 0);
    expect_fast(JID_PART_DOMAIN, "[::1]", JID_FAST_NEEDS_PREP, 0);
    expect_fast(JID_PART_DOMAIN, "exa_mple.com", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_DOMAIN, "a..b", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_DOMAIN, "a.-b", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_DOMAIN, "", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_DOMAIN, "1.2.3.04", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_NODE, "juliet", JID_FAST_PREPARED, 6);
    expect_fast(JID_PART_NODE, "foo\\20bar!#$%*+=?^_`{|}~", JID_FAST_PREPARED, 24);
    expect_fast(JID_PART_NODE, "Juliet", JID_FAST_NEEDS_PREP, 0);
    expect_fast(JID_PART_NODE, "ju<liet", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_NODE, "\u00e9<", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_NODE, "a b", JID_FAST_INVALID, 0);
    expect_fast(JID_PART_RESOURCE, "Foo Bar/@<>&", JID_FAST_PREPARED, 12);
    expect_fast(JID_PART_RESOURCE, "caf\u00e9", JID_FAST_NEEDS_PREP, 0);
    expect_fast(JID_PART_RESOURCE, "a\nb", JID_FAST_INVALID, 0);

    /* Prepared ASCII JIDs never reach the cache (nor libidn). */
    jid_cache_t *c = jid_cache_new(8);
    jid_t j;
    uint64_t hits = 1, misses = 1;
    const char *s = "juliet@example.com/Balcony Scene";
    assert_int_equal(jid_parse(c, s, strlen(s), &j), 0);
    jid_clear(&j);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 0);
    assert_int_equal(jid_cache_count(c), 0);
    jid_cache_free(c);
}

/* The fast path and the slow path agree wherever the fast path decides. */
static void test_fast_slow_agree(void **state)
{
    (void)state;
    static const char *const inputs[] = {
        "example.com", "example.com.", "192.0.2.1", "a-b.c0", "exa_mple.com",
        "a..b",        "a.-b",         "-",         ".",      "1.2.3.04",
        "juliet",      "foo\\20bar",   "ju<liet",   "a b",    "Foo Bar/@<>&",
        "a\x7f",       "x.",           "ab--cd",    "@",      "\"",
        "a.b.c.d.e.f", "1.2.3.4",
    };
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        for (int p = JID_PART_NODE; p <= JID_PART_RESOURCE; p++) {
            const char *in = inputs[i];
            size_t fast_len = 0, slow_len = 0;
            char out[JID_PART_MAX + 1];
            enum jid_fast f = jid_part_check_fast((enum jid_part)p, in, strlen(in), &fast_len);
            int rc = jid_part_prepare((enum jid_part)p, in, strlen(in), out, &slow_len);
            if (f == JID_FAST_INVALID) {
                assert_int_equal(rc, -EINVAL);
            } else if (f == JID_FAST_PREPARED) {
                assert_int_equal(rc, 0);
                assert_int_equal(slow_len, fast_len);
                assert_memory_equal(out, in, fast_len);
            }
        }
    }
}

static void test_cache_hits(void **state)
{
    (void)state;
    jid_cache_t *c = jid_cache_new(16);
    uint64_t hits, misses;
    jid_t a, b;
    const char *s = "Juliet@Example.com/Balcony";

    assert_int_equal(jid_parse(c, s, strlen(s), &a), 0);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 0);
    assert_int_equal(misses, 2); /* node and domain; the resource is prepared ASCII */
    assert_int_equal(jid_cache_count(c), 2);

    assert_int_equal(jid_parse(c, s, strlen(s), &b), 0);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 2);
    assert_int_equal(misses, 2);
    assert_true(jid_equal(&a, &b));
    assert_string_equal(b.full, "juliet@example.com/Balcony");
    jid_clear(&a);
    jid_clear(&b);

    /* The same bytes as another part are another key. */
    s = "Example.com@Juliet";
    assert_int_equal(jid_parse(c, s, strlen(s), &a), 0);
    assert_string_equal(a.full, "example.com@juliet");
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 2);
    assert_int_equal(misses, 4);
    jid_clear(&a);

    /* Failures are cached too. */
    s = "\u05d0a@example.com";
    assert_int_equal(jid_parse(c, s, strlen(s), &a), -EINVAL);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(misses, 5);
    assert_int_equal(jid_parse(c, s, strlen(s), &a), -EINVAL);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 3);
    assert_int_equal(misses, 5);

    /* Long raw parts are prepared every time, and counted as misses. */
    char buf[600];
    fill(buf, 'A', 300);
    memcpy(buf + 300, "@example.com", 13);
    assert_int_equal(jid_parse(c, buf, strlen(buf), &a), 0);
    jid_clear(&a);
    assert_int_equal(jid_parse(c, buf, strlen(buf), &a), 0);
    jid_clear(&a);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 3);
    assert_int_equal(misses, 7);
    assert_int_equal(jid_cache_count(c), 5);

    jid_cache_stats(c, NULL, NULL);
    jid_cache_free(c);
}

static void parse_expect(jid_cache_t *c, const char *s, uint64_t want_hits, uint64_t want_misses)
{
    jid_t j;
    uint64_t hits, misses;
    assert_int_equal(jid_parse(c, s, strlen(s), &j), 0);
    jid_clear(&j);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, want_hits);
    assert_int_equal(misses, want_misses);
}

static void test_cache_eviction(void **state)
{
    (void)state;
    jid_cache_t *c = jid_cache_new(2);

    parse_expect(c, "A@x", 0, 1);
    parse_expect(c, "B@x", 0, 2);
    parse_expect(c, "A@x", 1, 2); /* A is now the most recently used */
    parse_expect(c, "C@x", 1, 3); /* evicts B, the least recently used */
    assert_int_equal(jid_cache_count(c), 2);
    parse_expect(c, "A@x", 2, 3);
    parse_expect(c, "C@x", 3, 3);
    parse_expect(c, "B@x", 3, 4); /* evicted; evicts A */
    parse_expect(c, "C@x", 4, 4);
    parse_expect(c, "A@x", 4, 5);
    assert_int_equal(jid_cache_count(c), 2);
    jid_cache_free(c);

    /* A zero-sized cache still holds one entry. */
    c = jid_cache_new(0);
    parse_expect(c, "A@x", 0, 1);
    parse_expect(c, "A@x", 1, 1);
    parse_expect(c, "B@x", 1, 2);
    parse_expect(c, "A@x", 1, 3);
    assert_int_equal(jid_cache_count(c), 1);
    jid_cache_free(c);

    /* A bucket never chains more than 8 entries: the oldest of them makes room. */
    c = jid_cache_new(64);
    char keys[9][32];
    size_t found = 0;
    for (int i = 0; found < 9 && i < 100000; i++) {
        snprintf(keys[found], sizeof(keys[found]), "U%d", i);
        if (jid_cache_bucket(c, JID_PART_NODE, keys[found], strlen(keys[found])) == 0)
            found++;
    }
    assert_int_equal(found, 9);
    uint64_t misses = 0;
    for (size_t i = 0; i < 9; i++) {
        char jid[40];
        snprintf(jid, sizeof(jid), "%s@x", keys[i]);
        parse_expect(c, jid, 0, ++misses);
    }
    assert_int_equal(jid_cache_count(c), 8);
    for (size_t i = 8; i >= 1; i--) {
        char jid[40];
        snprintf(jid, sizeof(jid), "%s@x", keys[i]);
        parse_expect(c, jid, 9 - i, misses);
    }
    char first[40];
    snprintf(first, sizeof(first), "%s@x", keys[0]);
    parse_expect(c, first, 8, ++misses);
    jid_cache_free(c);

    /* Many distinct keys: the count stays bounded and every answer stays right. */
    c = jid_cache_new(100);
    char s[64], want[64];
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 1000; i++) {
            jid_t j;
            snprintf(s, sizeof(s), "User%d@Host%d.Example/R", i, i % 37);
            snprintf(want, sizeof(want), "user%d@host%d.example/R", i, i % 37);
            assert_int_equal(jid_parse(c, s, strlen(s), &j), 0);
            assert_string_equal(j.full, want);
            jid_clear(&j);
            assert_true(jid_cache_count(c) <= 100);
        }
    }
    jid_cache_free(c);
}

static void test_equal(void **state)
{
    (void)state;
    jid_t a, b, c, d, e;
    assert_int_equal(jid_parse(NULL, "a@b/c", 5, &a), 0);
    assert_int_equal(jid_parse(NULL, "A@B/c", 5, &b), 0);
    assert_int_equal(jid_parse(NULL, "a@b/C", 5, &c), 0);
    assert_int_equal(jid_parse(NULL, "a@b", 3, &d), 0);
    assert_int_equal(jid_parse(NULL, "b", 1, &e), 0);

    assert_true(jid_equal(&a, &b));
    assert_true(jid_bare_equal(&a, &b));
    assert_false(jid_equal(&a, &c));
    assert_true(jid_bare_equal(&a, &c));
    assert_false(jid_equal(&a, &d));
    assert_true(jid_bare_equal(&a, &d));
    assert_false(jid_bare_equal(&d, &e));
    assert_false(jid_equal(&d, &e));
    assert_true(jid_equal(&e, &e));

    jid_clear(&a);
    jid_clear(&b);
    jid_clear(&c);
    jid_clear(&d);
    jid_clear(&e);
}

static void test_copy(void **state)
{
    (void)state;
    size_t before = core_alloc_bytes();
    jid_t a, b, empty = {0}, e2;
    const char *s = "Juliet@Example.com/Balcony";
    assert_int_equal(jid_parse(NULL, s, strlen(s), &a), 0);
    jid_copy(&b, &a);
    assert_ptr_not_equal(a.full, b.full);
    assert_true(jid_equal(&a, &b));
    assert_int_equal(b.node_len, a.node_len);
    assert_int_equal(b.domain_off, a.domain_off);
    assert_int_equal(b.domain_len, a.domain_len);
    assert_int_equal(b.bare_len, a.bare_len);
    assert_int_equal(b.res_len, a.res_len);
    jid_clear(&a);
    assert_null(a.full);
    assert_int_equal(a.full_len, 0);
    check_layout(&b);
    assert_string_equal(b.full, "juliet@example.com/Balcony");
    jid_clear(&b);

    jid_copy(&e2, &empty);
    assert_null(e2.full);
    jid_clear(&e2);
    jid_clear(&e2); /* clearing twice is harmless */
    assert_int_equal(core_alloc_bytes(), before);
}

static void test_domain(void **state)
{
    (void)state;
    jid_cache_t *c = jid_cache_new(8);
    const char *dom = NULL;
    size_t dlen = 0;
    uint64_t hits, misses;

    /* Fast path: a pointer into the input. */
    const char *s = "juliet@example.com/res";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_ptr_equal(dom, s + 7);
    assert_int_equal(dlen, 11);
    s = "example.com./a@b";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_ptr_equal(dom, s);
    assert_int_equal(dlen, 11);
    /* RFC 7622 §3.2: the domain starts after the first '@', so this one has an '@' in it. */
    s = "a@b@example.com";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), -EINVAL);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits + misses, 0);

    /* Slow path: prepared into the cache, NUL-terminated. */
    s = "juliet@EXAMPLE.com/res";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_true(dom < s || dom >= s + strlen(s));
    assert_int_equal(dlen, 11);
    assert_string_equal(dom, "example.com");
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_string_equal(dom, "example.com");
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 1);
    assert_int_equal(misses, 1);

    /* It shares entries with jid_parse. */
    jid_t j;
    assert_int_equal(jid_parse(c, s, strlen(s), &j), 0);
    jid_clear(&j);
    jid_cache_stats(c, &hits, &misses);
    assert_int_equal(hits, 2);

    s = "xn--bcher-kva.example";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_string_equal(dom, "b\u00fccher.example");
    assert_int_equal(dlen, strlen("b\u00fccher.example"));
    s = "[::0001]";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), 0);
    assert_string_equal(dom, "[::1]");

    /* Too long to cache: the scratch buffer. */
    char buf[400];
    size_t o = 0;
    for (int l = 0; l < 5; l++) {
        fill(buf + o, 'D', 60);
        o += 60;
        buf[o++] = '.';
    }
    buf[o - 1] = '\0';
    assert_int_equal(jid_domain(c, buf, o - 1, &dom, &dlen), 0);
    assert_int_equal(dlen, o - 1);
    for (size_t i = 0; i < dlen; i++)
        assert_int_equal(dom[i], buf[i] == '.' ? '.' : 'd');
    assert_int_equal(dom[dlen], '\0');

    /* Structure is checked, node and resource are not prepared. */
    assert_int_equal(jid_domain(c, "juliet@/r", 9, &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "@example.com", 12, &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "example.com/", 12, &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "", 0, &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "a@exa_mple.com", 14, &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "a@EXA_MPLE.com", 14, &dom, &dlen), -EINVAL);
    s = "a@\u05d0a.example";
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, s, strlen(s), &dom, &dlen), -EINVAL);
    assert_int_equal(jid_domain(c, "<x>@example.com", 15, &dom, &dlen), 0);
    assert_int_equal(dlen, 11);

    jid_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7622_valid),
        cmocka_unit_test(test_parts),
        cmocka_unit_test(test_ip_literals),
        cmocka_unit_test(test_rfc7622_invalid),
        cmocka_unit_test(test_bidi_valid),
        cmocka_unit_test(test_lengths_real),
        cmocka_unit_test(test_case_folding),
        cmocka_unit_test(test_trailing_dot),
        cmocka_unit_test(test_idn),
        cmocka_unit_test(test_fast_path),
        cmocka_unit_test(test_fast_slow_agree),
        cmocka_unit_test(test_cache_hits),
        cmocka_unit_test(test_cache_eviction),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
