/* SPDX-License-Identifier: MIT */
/* Tests of the incremental stream parser: events, splits, restricted XML, limits, restarts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "xml/internal.h"
#include "xml/xml.h"

#include "../common/xml_dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HDR_C                                                                                      \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' "              \
    "xml:lang='en'>"
#define HDR_S                                                                                      \
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>"

/* ---- helpers ---- */

/* Appends one event's canonical form to b. */
static void dump_event(const xml_event_t *ev, core_buf_t *b)
{
    switch (ev->kind) {
    case XMLS_EV_STREAM_OPEN:
        core_buf_append_str(b, "OPEN ");
        xml_dump_node(ev->stanza->root, b);
        break;
    case XMLS_EV_ELEMENT:
        assert_null(xml_dump_check(ev->stanza->root));
        core_buf_append_str(b, "EL ");
        xml_dump_node(ev->stanza->root, b);
        if (ev->stanza->bytes != NULL) {
            core_buf_append_str(b, " BYTES[");
            core_buf_append(b, ev->stanza->bytes, ev->stanza->bytes_len);
            core_buf_append_str(b, "]");
        }
        break;
    case XMLS_EV_STREAM_CLOSE:
        core_buf_append_str(b, "CLOSE");
        break;
    }
    core_buf_append_str(b, "\n");
}

/* Drains p into b; returns the final code (-EAGAIN or -EPROTO). */
static int drain(xml_parser_t *p, core_buf_t *b)
{
    xml_event_t ev;
    int rc;
    while ((rc = xml_parser_next(p, &ev)) == 0) {
        dump_event(&ev, b);
        xml_stanza_unref(ev.stanza);
    }
    return rc;
}

/* Parses s fed in pieces of `step` bytes (0: all at once); returns the events as text. */
static char *parse_split(const char *s, size_t len, size_t step, const xml_limits_t *lim,
                         core_stream_err_t *err)
{
    xml_parser_t *p = xml_parser_new(lim);
    core_buf_t b = {0};
    size_t off = 0;
    int rc = -EAGAIN;
    if (step == 0)
        step = len;
    while (off < len && rc != -EPROTO) {
        size_t n = len - off < step ? len - off : step;
        if (xml_parser_feed(p, s + off, n) != 0) {
            rc = -EPROTO;
            break;
        }
        off += n;
        rc = drain(p, &b);
    }
    if (rc == -EPROTO)
        core_buf_append_str(&b, "ERROR\n");
    *err = xml_parser_error(p, NULL);
    xml_parser_free(p);
    core_buf_append(&b, "", 1);
    size_t l;
    return core_buf_steal(&b, &l);
}

static char *parse_str(const char *s, core_stream_err_t *err)
{
    return parse_split(s, strlen(s), 0, NULL, err);
}

/* Expects s (fed at once and byte by byte) to fail with cond. */
static void expect_error(const char *s, core_stream_err_t cond)
{
    for (size_t step = 0; step <= 1; step++) {
        core_stream_err_t err;
        char *out = parse_split(s, strlen(s), step, NULL, &err);
        if (err != cond)
            fprintf(stderr, "input: %s\nevents: %s\n", s, out);
        assert_int_equal(err, cond);
        assert_non_null(strstr(out, "ERROR"));
        core_free(out);
    }
}

/* Feeds s and returns the next event, which must exist (the caller unrefs it). */
static xml_stanza_t *next_element(xml_parser_t *p, xml_event_kind_t kind)
{
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), 0);
    assert_int_equal(ev.kind, kind);
    return ev.stanza;
}

/* ---- basic events ---- */

static void test_basic_stream(void **state)
{
    (void)state;
    xml_parser_t *p = xml_parser_new(NULL);
    xml_event_t ev;
    assert_null(xml_parser_stream_ns(p));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    const char *in = HDR_C "<message to='a@b' type='chat'><body>hi</body></message>"
                           "\n <presence/></stream:stream>";
    assert_int_equal(xml_parser_feed(p, in, strlen(in)), 0);

    xml_stanza_t *st = next_element(p, XMLS_EV_STREAM_OPEN);
    assert_string_equal(xml_parser_stream_ns(p), "jabber:client");
    assert_string_equal(xml_parser_stream_prefix(p), "stream");
    assert_true(xml_node_is(st->root, XMLS_NS_STREAMS, "stream"));
    assert_null(st->root->first);
    assert_string_equal(xml_node_attr(st->root, "to"), "example.com");
    assert_string_equal(xml_node_attr_ns(st->root, XMLS_NS_XML, "lang"), "en");
    assert_null(st->bytes);
    xml_stanza_unref(st);

    st = next_element(p, XMLS_EV_ELEMENT);
    assert_ptr_equal(st->root->ns, XMLS_NS_CONTENT);
    assert_int_equal(xml_stanza_kind(st), XMLS_KIND_MESSAGE);
    assert_string_equal(xml_stanza_to(st), "a@b");
    assert_string_equal(xml_stanza_type(st), "chat");
    xml_node_t *body = xml_node_child(st->root, XMLS_NS_CONTENT, "body");
    assert_non_null(body);
    size_t len;
    assert_string_equal(xml_node_text(body, &len), "hi");
    assert_int_equal(len, 2);
    size_t blen;
    const char *bytes = xml_stanza_bytes(st, &blen);
    assert_int_equal(blen, strlen("<message to='a@b' type='chat'><body>hi</body></message>"));
    assert_memory_equal(bytes, "<message to='a@b' type='chat'><body>hi</body></message>", blen);
    xml_stanza_unref(st);

    st = next_element(p, XMLS_EV_ELEMENT);
    assert_int_equal(xml_stanza_kind(st), XMLS_KIND_PRESENCE);
    bytes = xml_stanza_bytes(st, &blen);
    assert_int_equal(blen, 11);
    assert_memory_equal(bytes, "<presence/>", 11);
    xml_stanza_unref(st);

    assert_int_equal(xml_parser_next(p, &ev), 0);
    assert_int_equal(ev.kind, XMLS_EV_STREAM_CLOSE);
    assert_null(ev.stanza);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_pending(p), 0);
    assert_int_equal(xml_parser_error(p, NULL), CORE_STREAM_ERR_NONE);
    xml_parser_free(p);
}

/*
 * Debian's expat 2.5.0 has no reparse deferral (CVE-2023-52425's fix came with 2.6.0 and
 * is not backported); and on a newer expat the parser turns it off. Either way a complete
 * stanza must come out without more input, however its bytes arrived.
 */
static void test_no_deferral(void **state)
{
    (void)state;
    xml_parser_t *p = xml_parser_new(NULL);
    const char *hdr = HDR_C;
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);

    /* One complete stanza in one call. */
    const char *m = "<message><body>one</body></message>";
    assert_int_equal(xml_parser_feed(p, m, strlen(m)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);

    /* A large stanza whose last byte comes alone. */
    core_buf_t b = {0};
    core_buf_append_str(&b, "<message><body>");
    for (int i = 0; i < 5000; i++)
        core_buf_append_str(&b, "x");
    core_buf_append_str(&b, "</body></message>");
    assert_int_equal(xml_parser_feed(p, b.data, b.len - 1), 0);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_feed(p, ">", 1), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);

    /* A huge start tag (careful mode) whose '>' comes alone. */
    b.len = 0;
    core_buf_append_str(&b, "<message a='");
    for (int i = 0; i < 5000; i++)
        core_buf_append_str(&b, "y>");
    core_buf_append_str(&b, "'/>");
    assert_int_equal(xml_parser_feed(p, b.data, b.len - 1), 0);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_feed(p, ">", 1), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_pending(p), 0);
    core_buf_release(&b);
    xml_parser_free(p);
}

/* ---- splitting ---- */

static const char *const fixtures[] = {
    HDR_C "<message to='juliet@example.com' from='romeo@example.net/orchard' type='chat' "
          "id='a&amp;b'>\r\n<body>Wherefore &lt;art&gt; thou &#x1F600; caf\xC3\xA9 "
          "\xE2\x82\xAC\xF0\x9F\x98\x80</body><![CDATA[<not> & markup]]>tail"
          "<x xmlns='urn:x' xmlns:p='urn:p' p:a='1' b=\"&quot;'\"><p:y/><z xmlns=''/></x>"
          "</message> \n\t<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>"
          "<presence xml:lang='de'><status>\xD0\x9F\xD1\x80\xD0\xB8</status></presence>"
          "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
          "</stream:features></stream:stream>",
    "<stream:stream xmlns='jabber:component:accept' xmlns:stream="
    "'http://etherx.jabber.org/streams' to='muc.example.com'><handshake>abc</handshake>"
    "<message to='a@muc.example.com' xmlns:ns1='urn:n'><ns1:q attr='&#9;&#10;&#13;'/>"
    "</message>",
    HDR_C "<message>text &#x3C;![CDATA[ no ]]&gt; <!-- a comment --></message>",
    HDR_C "<a><b>&undefined;</b></a>",
};

/* Feeding a stream split anywhere gives the same events (and error) as feeding it whole. */
static void test_split_everywhere(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof(fixtures) / sizeof(fixtures[0]); f++) {
        const char *s = fixtures[f];
        size_t len = strlen(s);
        core_stream_err_t err_whole, err;
        char *whole = parse_split(s, len, 0, NULL, &err_whole);
        assert_non_null(strstr(whole, "OPEN"));
        /* byte by byte, and a few other step sizes */
        for (size_t step = 1; step <= 7; step++) {
            char *out = parse_split(s, len, step, NULL, &err);
            assert_string_equal(out, whole);
            assert_int_equal(err, err_whole);
            core_free(out);
        }
        /* two pieces, split at every offset */
        for (size_t cut = 1; cut < len; cut++) {
            xml_parser_t *p = xml_parser_new(NULL);
            core_buf_t b = {0};
            int rc = -EAGAIN;
            if (xml_parser_feed(p, s, cut) == 0)
                rc = drain(p, &b);
            if (rc != -EPROTO && xml_parser_feed(p, s + cut, len - cut) == 0)
                rc = drain(p, &b);
            if (rc == -EPROTO)
                core_buf_append_str(&b, "ERROR\n");
            core_buf_append(&b, "", 1);
            assert_string_equal(b.data, whole);
            assert_int_equal(xml_parser_error(p, NULL), err_whole);
            core_buf_release(&b);
            xml_parser_free(p);
        }
        core_free(whole);
    }
}

static void test_fixture_events(void **state)
{
    (void)state;
    core_stream_err_t err;
    char *out = parse_str(fixtures[0], &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);
    const char *want =
        "OPEN <{http://etherx.jabber.org/streams}stream {}to='example.com' {}version='1.0' "
        "{http://www.w3.org/XML/1998/namespace}lang='en'></>\n"
        "EL <{#C}message {}to='juliet@example.com' {}from='romeo@example.net/orchard' "
        "{}type='chat' {}id='a&b'>\"\n\"<{#C}body>\"Wherefore <art> thou \xF0\x9F\x98\x80 "
        "caf\xC3\xA9 \xE2\x82\xAC\xF0\x9F\x98\x80\"</>\"<not> & markuptail\"<{urn:x}x "
        "{urn:p}a='1' {}b='\"''><{urn:p}y></><{}z></></></>\n"
        "EL <{#C}iq {}type='get' {}id='1'><{urn:xmpp:ping}ping></></> BYTES[<iq type='get' "
        "id='1'><ping xmlns='urn:xmpp:ping'/></iq>]\n"
        "EL <{#C}presence {http://www.w3.org/XML/1998/namespace}lang='de'><{#C}status>"
        "\"\xD0\x9F\xD1\x80\xD0\xB8\"</></> BYTES[<presence xml:lang='de'><status>"
        "\xD0\x9F\xD1\x80\xD0\xB8</status></presence>]\n"
        "EL <{http://etherx.jabber.org/streams}features><{urn:ietf:params:xml:ns:xmpp-tls}"
        "starttls></></>\n"
        "CLOSE\n";
    /* The message keeps its bytes too: every prefix it uses is declared inside it. */
    char *msg_bytes = strstr(out, "</></></> BYTES[<message");
    assert_non_null(msg_bytes);
    /* compare without the message's BYTES part */
    char *end = strstr(msg_bytes, "]\nEL <{#C}iq");
    assert_non_null(end);
    memmove(msg_bytes + 9, end + 1, strlen(end + 1) + 1);
    assert_string_equal(out, want);
    core_free(out);
}

/* ---- restricted XML and errors ---- */

static void test_restricted(void **state)
{
    (void)state;
    expect_error("<?xml version='1.0'?><!DOCTYPE stream>" HDR_S, CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error("<!DOCTYPE s [<!ENTITY x 'y'>]><s>&x;</s>", CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error("<!-- hi -->" HDR_S, CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error(HDR_S "<!-- hi -->", CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error(HDR_S "<message><!-- hi --></message>", CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error(HDR_S "<message><?php echo 1; ?></message>", CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error("<?php x?>" HDR_S, CORE_STREAM_ERR_RESTRICTED_XML);
    expect_error(HDR_S "<?pi?>", CORE_STREAM_ERR_RESTRICTED_XML);
}

static void test_encoding(void **state)
{
    (void)state;
    expect_error("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR_S,
                 CORE_STREAM_ERR_UNSUPPORTED_ENCODING);
    expect_error("<?xml version='1.0' encoding='UTF-16'?>" HDR_S,
                 CORE_STREAM_ERR_UNSUPPORTED_ENCODING);
    core_stream_err_t err;
    char *out = parse_str("<?xml version='1.0' encoding='utf-8'?>" HDR_S "<a/>", &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);
    assert_non_null(strstr(out, "EL <{#C}a></>"));
    core_free(out);
    /* the XML declaration is allowed only first */
    expect_error(HDR_S "<?xml version='1.0'?>", CORE_STREAM_ERR_NOT_WELL_FORMED);
}

static void test_not_well_formed(void **state)
{
    (void)state;
    expect_error(HDR_S "<a></b>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a x='1' x='2'/>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a>\xC3\x28</a>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a>\xED\xA0\x80</a>", CORE_STREAM_ERR_NOT_WELL_FORMED); /* surrogate */
    expect_error(HDR_S "<a>\xF8\x88\x80\x80\x80</a>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a>&nbsp;</a>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a>&#0;</a>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a>\x01</a>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<foo:a/>", CORE_STREAM_ERR_NOT_WELL_FORMED); /* unbound prefix */
    expect_error(HDR_S "<a foo:b='1'/>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "hello<a/>", CORE_STREAM_ERR_NOT_WELL_FORMED); /* text at depth 0 */
    expect_error(HDR_S "<a/>x", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a/>&#32;&#65;", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error("junk" HDR_S, CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "</stream:stream><a/>", CORE_STREAM_ERR_NOT_WELL_FORMED);
    expect_error(HDR_S "<a><![CDATA[x]]></a><![CDATA[y]]>", CORE_STREAM_ERR_NOT_WELL_FORMED);
}

/* After an error every call returns -EPROTO. */
static void test_error_sticky(void **state)
{
    (void)state;
    xml_parser_t *p = xml_parser_new(NULL);
    const char *s = HDR_S "<a></b><c/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), -EPROTO);
    const char *detail = NULL;
    assert_int_equal(xml_parser_error(p, &detail), CORE_STREAM_ERR_NOT_WELL_FORMED);
    assert_non_null(detail);
    assert_int_equal(xml_parser_next(p, &ev), -EPROTO);
    assert_int_equal(xml_parser_feed(p, "<d/>", 4), -EPROTO);
    assert_int_equal(xml_parser_next(p, &ev), -EPROTO);
    xml_parser_free(p);
}

/* Whitespace between stanzas, entity whitespace included, is ignored. */
static void test_whitespace(void **state)
{
    (void)state;
    core_stream_err_t err;
    char *out = parse_str(HDR_S " \r\n\t <a/>\n\n&#32;<b/> ", &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);
    assert_string_equal(out,
                        "OPEN <{http://etherx.jabber.org/streams}stream></>\n"
                        "EL <{#C}a></> BYTES[<a/>]\nEL <{#C}b></> BYTES[<b/>]\n");
    core_free(out);
}

/* ---- limits ---- */

/* A top-level message of exactly n bytes. */
static void make_stanza(core_buf_t *b, size_t n)
{
    const char *head = "<message><body>";
    const char *tail = "</body></message>";
    core_buf_append_str(b, head);
    size_t fill = n - strlen(head) - strlen(tail);
    memset(core_buf_reserve(b, fill), 'a', fill);
    core_buf_commit(b, fill);
    core_buf_append_str(b, tail);
}

static void test_limit_bytes(void **state)
{
    (void)state;
    xml_limits_t lim = {.max_stanza_bytes = 3000, .max_depth = 8, .max_attrs = 8};
    /* whole, in pieces, byte by byte: exactly at the limit passes, one byte over fails */
    static const size_t steps[] = {0, 1000, 1};
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        for (int over = 0; over <= 1; over++) {
            core_buf_t b = {0};
            core_buf_append_str(&b, HDR_S);
            make_stanza(&b, 3000 + (size_t)over);
            core_stream_err_t err;
            char *out = parse_split(b.data, b.len, steps[s], &lim, &err);
            assert_int_equal(err, over ? CORE_STREAM_ERR_POLICY_VIOLATION : CORE_STREAM_ERR_NONE);
            assert_true((strstr(out, "EL ") != NULL) == !over);
            core_free(out);
            core_buf_release(&b);
        }
    }

    /* Many small stanzas in one feed are fine even when together they exceed the limit. */
    core_buf_t b = {0};
    core_buf_append_str(&b, HDR_S);
    for (int i = 0; i < 200; i++)
        make_stanza(&b, 100);
    core_stream_err_t err;
    char *out = parse_split(b.data, b.len, 0, &lim, &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);
    core_free(out);

    /* An incomplete element (no events possible yet) is bounded as well... */
    b.len = 0;
    core_buf_append_str(&b, HDR_S "<message a='");
    memset(core_buf_reserve(&b, 4000), 'x', 4000);
    core_buf_commit(&b, 4000);
    out = parse_split(b.data, b.len, 0, &lim, &err);
    assert_int_equal(err, CORE_STREAM_ERR_POLICY_VIOLATION);
    core_free(out);

    /* ...and so is a stream header that never ends. */
    b.len = 0;
    core_buf_append_str(&b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='");
    memset(core_buf_reserve(&b, 4000), 'x', 4000);
    core_buf_commit(&b, 4000);
    out = parse_split(b.data, b.len, 100, &lim, &err);
    assert_int_equal(err, CORE_STREAM_ERR_POLICY_VIOLATION);
    core_free(out);
    core_buf_release(&b);
}

static void nest(core_buf_t *b, unsigned depth)
{
    core_buf_append_str(b, HDR_S);
    for (unsigned i = 0; i < depth; i++)
        core_buf_append_str(b, "<a>");
    for (unsigned i = 0; i < depth; i++)
        core_buf_append_str(b, "</a>");
}

static void test_limit_depth(void **state)
{
    (void)state;
    core_stream_err_t err;
    for (int over = 0; over <= 1; over++) {
        core_buf_t b = {0};
        nest(&b, 64 + (unsigned)over); /* default: 64 levels below the stream root */
        char *out = parse_split(b.data, b.len, 0, NULL, &err);
        assert_int_equal(err, over ? CORE_STREAM_ERR_POLICY_VIOLATION : CORE_STREAM_ERR_NONE);
        core_free(out);
        core_buf_release(&b);
    }
    xml_limits_t lim = {.max_stanza_bytes = 1000, .max_depth = 3, .max_attrs = 8};
    for (int over = 0; over <= 1; over++) {
        core_buf_t b = {0};
        nest(&b, 3 + (unsigned)over);
        char *out = parse_split(b.data, b.len, 1, &lim, &err);
        assert_int_equal(err, over ? CORE_STREAM_ERR_POLICY_VIOLATION : CORE_STREAM_ERR_NONE);
        core_free(out);
        core_buf_release(&b);
    }
}

static void attrs(core_buf_t *b, unsigned n, bool on_header)
{
    if (!on_header)
        core_buf_append_str(b, HDR_S "<a");
    else
        core_buf_append_str(b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
    for (unsigned i = 0; i < n; i++) {
        char tmp[32];
        snprintf(tmp, sizeof(tmp), " a%u='%u'", i, i);
        core_buf_append_str(b, tmp);
    }
    core_buf_append_str(b, on_header ? ">" : "/>");
}

static void test_limit_attrs(void **state)
{
    (void)state;
    core_stream_err_t err;
    for (int over = 0; over <= 1; over++) {
        core_buf_t b = {0};
        attrs(&b, 64 + (unsigned)over, false);
        char *out = parse_split(b.data, b.len, 0, NULL, &err);
        assert_int_equal(err, over ? CORE_STREAM_ERR_POLICY_VIOLATION : CORE_STREAM_ERR_NONE);
        core_free(out);
        core_buf_release(&b);
    }
    /* On the header the namespace declaration counts as one of them. */
    for (int over = 0; over <= 1; over++) {
        core_buf_t b = {0};
        attrs(&b, 63 + (unsigned)over, true);
        char *out = parse_split(b.data, b.len, 0, NULL, &err);
        assert_int_equal(err, over ? CORE_STREAM_ERR_POLICY_VIOLATION : CORE_STREAM_ERR_NONE);
        assert_true((strstr(out, "OPEN") != NULL) == !over);
        core_free(out);
        core_buf_release(&b);
    }
}

/*
 * A peer trickling a huge start tag one byte at a time must not make expat re-scan it on
 * every byte: careful mode waits for the tag's end.
 */
static void test_trickled_token(void **state)
{
    (void)state;
    xml_parser_t *p = xml_parser_new(NULL);
    const char *hdr = HDR_S;
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    core_buf_t b = {0};
    core_buf_append_str(&b, "<message a='");
    for (int i = 0; i < 20000; i++)
        core_buf_append_str(&b, i % 7 ? "x" : ">\"");
    core_buf_append_str(&b, "' b=\"'>'\"><body>");
    for (int i = 0; i < 20000; i++)
        core_buf_append_str(&b, "&lt;");
    core_buf_append_str(&b, "</body><!-");
    unsigned long calls0 = xml_parser_parse_calls(p);
    xml_event_t ev;
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(xml_parser_feed(p, b.data + i, 1), 0);
        assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    }
    /* The tag needed few parse calls; the text after it is parsed as it comes. */
    unsigned long calls = xml_parser_parse_calls(p) - calls0;
    assert_true(calls < 90000);
    assert_int_equal(xml_parser_feed(p, "- x -->", 7), 0);
    assert_int_equal(xml_parser_next(p, &ev), -EPROTO);
    assert_int_equal(xml_parser_error(p, NULL), CORE_STREAM_ERR_RESTRICTED_XML);
    xml_parser_free(p);

    /* The same tag, counted alone. */
    p = xml_parser_new(NULL);
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    b.len = 0;
    core_buf_append_str(&b, "<message a='");
    for (int i = 0; i < 20000; i++)
        core_buf_append_str(&b, i % 7 ? "x" : ">\"");
    core_buf_append_str(&b, "'/>");
    calls0 = xml_parser_parse_calls(p);
    for (size_t i = 0; i < b.len - 1; i++) {
        assert_int_equal(xml_parser_feed(p, b.data + i, 1), 0);
        assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    }
    assert_true(xml_parser_parse_calls(p) - calls0 < 2 * 1024 + 10);
    assert_int_equal(xml_parser_feed(p, ">", 1), 0);
    xml_stanza_t *st = next_element(p, XMLS_EV_ELEMENT);
    assert_int_equal(strlen(xml_node_attr(st->root, "a")), 20000 + 20000 / 7 + 1);
    xml_stanza_unref(st);
    core_buf_release(&b);
    xml_parser_free(p);
}

/* ---- restart ---- */

static void test_restart(void **state)
{
    (void)state;
    /* With keep_unparsed: bytes after the event belong to the new stream. */
    xml_parser_t *p = xml_parser_new(NULL);
    const char *s = HDR_C "<auth/>" HDR_S "<b/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    xml_parser_restart(p, true);
    assert_null(xml_parser_stream_ns(p));
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    assert_string_equal(xml_parser_stream_ns(p), "jabber:server");
    xml_stanza_t *st = next_element(p, XMLS_EV_ELEMENT);
    assert_true(xml_node_is(st->root, XMLS_NS_CONTENT, "b"));
    xml_stanza_unref(st);
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    xml_parser_free(p);

    /* Without: they are dropped (plaintext after STARTTLS's <proceed/>). */
    p = xml_parser_new(NULL);
    s = HDR_C "<starttls/><injected/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    assert_int_equal(xml_parser_pending(p), strlen("<injected/>"));
    xml_parser_restart(p, false);
    assert_int_equal(xml_parser_pending(p), 0);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    s = "<?xml version='1.0'?>" HDR_S "<c/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    st = next_element(p, XMLS_EV_ELEMENT);
    assert_true(xml_node_is(st->root, XMLS_NS_CONTENT, "c"));
    xml_stanza_unref(st);
    xml_parser_free(p);

    /* A restart in the middle of a partly parsed element re-parses it on the new stream. */
    p = xml_parser_new(NULL);
    s = HDR_C "<a/>" HDR_S "<d><e>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    xml_parser_restart(p, true);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_feed(p, "</e></d>", 8), 0);
    st = next_element(p, XMLS_EV_ELEMENT);
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    assert_int_equal(len, 14);
    assert_memory_equal(bytes, "<d><e></e></d>", 14);
    xml_stanza_unref(st);
    xml_parser_free(p);

    /* Whitespace after the last element is the old stream's (RFC 6120 §11.7), left unparsed
     * when the owner acted on the element at once, or arriving after the restart: the new
     * stream's XML declaration is still at its start. */
    p = xml_parser_new(NULL);
    s = HDR_C "<success/>\n ";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    xml_parser_restart(p, true);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    s = "\r\n\t<?xml version='1.0'?>" HDR_S " <f/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    st = next_element(p, XMLS_EV_ELEMENT);
    assert_true(xml_node_is(st->root, XMLS_NS_CONTENT, "f"));
    xml_stanza_unref(st);
    xml_parser_free(p);
}

/* ---- namespaces and kept bytes ---- */

static xml_stanza_t *one_element(const char *hdr, const char *el)
{
    xml_parser_t *p = xml_parser_new(NULL);
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    assert_int_equal(xml_parser_feed(p, el, strlen(el)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_t *st = next_element(p, XMLS_EV_ELEMENT);
    xml_parser_free(p);
    return st;
}

static void test_content_ns(void **state)
{
    (void)state;
    xml_stanza_t *st =
        one_element(HDR_C,
                    "<message><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>"
                    "<body>x</body></message></forwarded><body/><foo xmlns=''><bar/></foo>"
                    "<s:x xmlns:s='jabber:client'/></message>");
    xml_node_t *m = st->root;
    assert_ptr_equal(m->ns, XMLS_NS_CONTENT);
    xml_node_t *fwd = xml_node_first_element(m);
    assert_string_equal(fwd->ns, "urn:xmpp:forward:0");
    xml_node_t *inner = xml_node_first_element(fwd);
    assert_string_equal(inner->ns, "jabber:client");
    assert_true(inner->ns != XMLS_NS_CONTENT);
    assert_true(xml_node_is(inner, XMLS_NS_CLIENT, "message"));
    assert_false(xml_node_is(inner, XMLS_NS_CONTENT, "message"));
    assert_string_equal(xml_node_first_element(inner)->ns, "jabber:client");
    xml_node_t *body = xml_node_next_element(fwd);
    assert_ptr_equal(body->ns, XMLS_NS_CONTENT);
    xml_node_t *foo = xml_node_next_element(body);
    assert_null(foo->ns);
    assert_null(xml_node_first_element(foo)->ns);
    /* A prefixed element in the content namespace under a content parent is content too. */
    xml_node_t *x = xml_node_next_element(foo);
    assert_ptr_equal(x->ns, XMLS_NS_CONTENT);
    assert_null(st->bytes); /* declarations name the content namespace */
    xml_stanza_unref(st);

    /* A top-level element in another namespace keeps its URI. */
    st = one_element(HDR_C, "<handshake xmlns='jabber:component:accept'/>");
    assert_string_equal(st->root->ns, XMLS_NS_COMPONENT);
    assert_null(st->bytes); /* it would be content on a component stream */
    xml_stanza_unref(st);
}

static void expect_bytes(const char *hdr, const char *el, bool kept)
{
    xml_stanza_t *st = one_element(hdr, el);
    if (kept) {
        assert_non_null(st->bytes);
        assert_int_equal(st->bytes_len, strlen(el));
        assert_memory_equal(st->bytes, el, st->bytes_len);
    } else {
        assert_null(st->bytes);
        size_t len;
        const char *b = xml_stanza_bytes(st, &len);
        assert_non_null(b);
        assert_ptr_equal(b, st->bytes); /* cached */
    }
    xml_stanza_unref(st);
}

static void test_bytes_rules(void **state)
{
    (void)state;
    const char *hdr_p = "<stream:stream xmlns='jabber:client' xmlns:stream="
                        "'http://etherx.jabber.org/streams' xmlns:x='urn:x'>";
    expect_bytes(HDR_C, "<message to='a' xml:lang='en'><body>\xC3\xA9&amp;</body></message>", true);
    expect_bytes(HDR_C, "<message xmlns:x='urn:x'><x:a x:b='1'/></message>", true);
    expect_bytes(HDR_C, "<message><a xmlns='urn:a'><b xmlns=''/></a></message>", true);
    /* a prefix declared on the stream root, used by an element or an attribute */
    expect_bytes(hdr_p, "<message><x:a/></message>", false);
    expect_bytes(hdr_p, "<message><a x:b='1'/></message>", false);
    expect_bytes(HDR_C, "<stream:features/>", false);
    /* the stream's default namespace reaching an element through a prefixed parent */
    expect_bytes(HDR_C, "<p:q xmlns:p='urn:p'><iq/></p:q>", false);
    expect_bytes(HDR_C, "<p:q xmlns:p='urn:p'><p:iq/></p:q>", true);
    /* a declaration is out of scope once its element ends */
    expect_bytes(HDR_C, "<message><a xmlns:y='urn:y'/><y:b xmlns:y='urn:y'/></message>", true);
    /* the content namespace named explicitly */
    expect_bytes(HDR_C, "<message xmlns='jabber:client'/>", false);
    expect_bytes(HDR_C, "<message><body xmlns='jabber:client'/></message>", false);
    expect_bytes(HDR_S, "<message xmlns='jabber:client'/>", false);
    expect_bytes(HDR_C, "<message><x xmlns='jabber:server'/></message>", false);
    expect_bytes(HDR_C, "<message><x xmlns:p='jabber:client'/></message>", false);
    expect_bytes(HDR_C, "<message><x xmlns='jabber:clientele'/></message>", true);
    /* a stream with no default namespace */
    expect_bytes("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", "<a/>", false);
}

/* Events with CDATA, entities and UTF-8 give the expected text. */
static void test_text(void **state)
{
    (void)state;
    xml_stanza_t *st = one_element(HDR_C, "<m>a&amp;b<![CDATA[<c>&amp;]]>&#x10348;\r\nz</m>");
    size_t len;
    const char *t = xml_node_text(st->root, &len);
    assert_string_equal(t, "a&b<c>&amp;\xF0\x90\x8D\x88\nz");
    assert_int_equal(len, strlen(t));
    assert_ptr_equal(st->root->first, st->root->last);
    xml_stanza_unref(st);
}

/* An idle parser holds no input buffer. */
static void test_idle_memory(void **state)
{
    (void)state;
    xml_parser_t *p = xml_parser_new(NULL);
    const char *s = HDR_C "<a/>";
    assert_int_equal(xml_parser_feed(p, s, strlen(s)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    xml_event_t ev;
    size_t before = core_alloc_bytes();
    assert_int_equal(xml_parser_feed(p, "<b>", 3), 0);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_pending(p), 3);
    assert_int_equal(xml_parser_feed(p, "</b>", 4), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_ELEMENT));
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    assert_int_equal(xml_parser_pending(p), 0);
    assert_true(core_alloc_bytes() <= before);
    xml_parser_free(p);
}

/*
 * Frees expat between stanzas (xml_parser_idle) and rebuilds it from the root: the events,
 * namespaces in scope (declared on the root, one with characters that need escaping) and kept
 * bytes must be what one parser that never idled gives.
 */
static void test_idle_rebuild(void **state)
{
    (void)state;
    static const char hdr[] =
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:db='jabber:server:dialback' xmlns:q=\"urn:x:a&amp;b'&lt;c\" to='example.com'>";
    static const char *const parts[] = {
        "<db:result from='a.example' to='b.example'>key</db:result>",
        " ",
        "<message to='a@b'><q:x q:attr='1'/><body>hi</body></message>",
        "<iq type='get' id='1'><query xmlns='jabber:iq:version'/></iq>",
        "</stream:stream>",
    };
    core_stream_err_t err;
    core_buf_t all = {0};
    core_buf_append_str(&all, hdr);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        core_buf_append_str(&all, parts[i]);
    char *want = parse_split(all.data, all.len, 0, NULL, &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);

    xml_parser_t *p = xml_parser_new(NULL);
    core_buf_t got = {0};
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    assert_int_equal(drain(p, &got), -EAGAIN);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        size_t before = core_alloc_bytes();
        assert_true(xml_parser_idle(p));
        assert_true(core_alloc_bytes() < before || i > 0);
        assert_true(xml_parser_idle(p)); /* idle again: nothing to free */
        /* In two pieces, so that an idle attempt mid-stanza must refuse. */
        size_t half = strlen(parts[i]) / 2;
        assert_int_equal(xml_parser_feed(p, parts[i], half), 0);
        assert_int_equal(drain(p, &got), -EAGAIN);
        if (half > 1)
            assert_false(xml_parser_idle(p));
        assert_int_equal(xml_parser_feed(p, parts[i] + half, strlen(parts[i]) - half), 0);
        drain(p, &got);
    }
    core_buf_append(&got, "", 1);
    assert_string_equal(got.data, want);
    assert_int_equal(xml_parser_error(p, NULL), CORE_STREAM_ERR_NONE);
    xml_parser_free(p);
    core_buf_release(&got);
    core_buf_release(&all);
    core_free(want);
}

static void test_empty_root(void **state)
{
    (void)state;
    core_stream_err_t err;
    char *out = parse_str("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", &err);
    assert_int_equal(err, CORE_STREAM_ERR_NONE);
    assert_string_equal(out, "OPEN <{http://etherx.jabber.org/streams}stream></>\nCLOSE\n");
    core_free(out);
}

/* A rough parse rate, printed for the record (not a pass/fail threshold). */
static void test_rate(void **state)
{
    (void)state;
    const char *msg = "<message to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
                      "type='chat' id='ktx72v49'><body>Art thou not Romeo, and a Montague? "
                      "What light.</body></message>";
    size_t ml = strlen(msg);
    core_buf_t chunk = {0};
    for (int i = 0; i < 300; i++)
        core_buf_append(&chunk, msg, ml);
    xml_parser_t *p = xml_parser_new(NULL);
    const char *hdr = HDR_C;
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    xml_stanza_unref(next_element(p, XMLS_EV_STREAM_OPEN));
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long n = 0;
    for (int r = 0; r < 100; r++) {
        assert_int_equal(xml_parser_feed(p, chunk.data, chunk.len), 0);
        xml_event_t ev;
        while (xml_parser_next(p, &ev) == 0) {
            xml_stanza_unref(ev.stanza);
            n++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_int_equal(n, 30000);
    printf("parse rate: %.0f stanzas/s of %zu bytes (%.0f ns each)\n", (double)n / t, ml,
           t * 1e9 / (double)n);
    core_buf_release(&chunk);
    xml_parser_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_stream),
        cmocka_unit_test(test_no_deferral),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_fixture_events),
        cmocka_unit_test(test_restricted),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_not_well_formed),
        cmocka_unit_test(test_error_sticky),
        cmocka_unit_test(test_whitespace),
        cmocka_unit_test(test_limit_bytes),
        cmocka_unit_test(test_limit_depth),
        cmocka_unit_test(test_limit_attrs),
        cmocka_unit_test(test_trickled_token),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_content_ns),
        cmocka_unit_test(test_bytes_rules),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_idle_memory),
        cmocka_unit_test(test_idle_rebuild),
        cmocka_unit_test(test_empty_root),
        cmocka_unit_test(test_rate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
