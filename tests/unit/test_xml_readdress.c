/* SPDX-License-Identifier: MIT */
/* Tests of readdressed stanzas: shared trees, bytes equal to a copy's, freezing, references. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "xml/xml.h"

#include "../common/xml_dump.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define STREAM_OPEN_FMT "<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>"

/* ---- helpers ---- */

/* Parses one top-level element on a jabber:client stream (its bytes kept as they came). */
static xml_stanza_t *parse_one(const char *el)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), STREAM_OPEN_FMT, XMLS_NS_CLIENT);
    xml_parser_t *p = xml_parser_new(NULL);
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    assert_int_equal(xml_parser_feed(p, el, strlen(el)), 0);
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), 0);
    assert_int_equal(ev.kind, XMLS_EV_STREAM_OPEN);
    xml_stanza_unref(ev.stanza);
    int rc = xml_parser_next(p, &ev);
    if (rc != 0)
        fprintf(stderr, "cannot parse: %s\n", el);
    assert_int_equal(rc, 0);
    assert_int_equal(ev.kind, XMLS_EV_ELEMENT);
    xml_parser_free(p);
    return ev.stanza;
}

static char *str_of(const char *p, size_t len)
{
    return core_strndup(p, len);
}

/* The bytes as xml_stanza_bytes gives them (a NUL-terminated copy). */
static char *bytes_of(xml_stanza_t *st)
{
    size_t len;
    const char *b = xml_stanza_bytes(st, &len);
    return str_of(b, len);
}

/* The pieces joined (a NUL-terminated copy); also checks xml_stanza_size. */
static char *pieces_of(xml_stanza_t *st, size_t *npieces)
{
    core_span_t v[XMLS_PIECES_MAX];
    size_t n = xml_stanza_pieces(st, v);
    assert_true(n >= 1 && n <= XMLS_PIECES_MAX);
    core_buf_t b = {0};
    for (size_t i = 0; i < n; i++)
        core_buf_append(&b, v[i].data, v[i].len);
    assert_int_equal(xml_stanza_size(st), b.len);
    core_buf_append(&b, "", 1);
    if (npieces != NULL)
        *npieces = n;
    size_t len;
    return core_buf_steal(&b, &len);
}

static char *serialize(const xml_node_t *n)
{
    core_buf_t b = {0};
    xml_node_serialize(n, &b);
    core_buf_append(&b, "", 1);
    size_t len;
    return core_buf_steal(&b, &len);
}

static char *dump(const xml_node_t *n)
{
    core_buf_t b = {0};
    xml_dump_node(n, &b);
    core_buf_append(&b, "", 1);
    size_t len;
    return core_buf_steal(&b, &len);
}

/* What readdressing did before: a full copy with the two attributes set. */
static xml_stanza_t *copy_readdressed(const xml_stanza_t *src, const char *from, const char *to)
{
    xml_stanza_t *c = xml_stanza_copy(src);
    xml_node_set_attr(c, c->root, NULL, "from", from);
    xml_node_set_attr(c, c->root, NULL, "to", to);
    return c;
}

/*
 * Readdresses src and checks the result against a full copy changed the old way: the same
 * tree as readers see it, and the same bytes through every way of getting them. Returns
 * the readdressed stanza.
 */
static xml_stanza_t *check_against_copy(xml_stanza_t *src, const char *from, const char *to)
{
    xml_stanza_t *want = copy_readdressed(src, from, to);
    xml_stanza_t *r = xml_stanza_readdress(src, from, to);
    assert_int_equal(r->refs, 1);
    char *d_want = dump(want->root), *d_got = dump(r->root);
    assert_string_equal(d_got, d_want);
    char *b_want = bytes_of(want);
    char *s_got = serialize(r->root);
    assert_string_equal(s_got, b_want);
    char *p_got = pieces_of(r, NULL);
    assert_string_equal(p_got, b_want);
    char *b_got = bytes_of(r);
    assert_string_equal(b_got, b_want);
    /* And they parse back to the same tree. */
    xml_stanza_t *back = xml_stanza_parse(b_got, strlen(b_got));
    assert_non_null(back);
    char *d_back = dump(back->root);
    assert_string_equal(d_back, d_want);
    xml_stanza_unref(back);
    core_free(d_back);
    core_free(d_want);
    core_free(d_got);
    core_free(b_want);
    core_free(s_got);
    core_free(p_got);
    core_free(b_got);
    xml_stanza_unref(want);
    return r;
}

/* Runs fn(arg) in a child process and returns true if it died of SIGABRT (an assert). */
static bool aborts(void (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Quiet: the assertion message is expected. */
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0)
            dup2(devnull, 2);
        fn(arg);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
}

/* ---- tests ---- */

#define MSG                                                                                        \
    "<message from=\"romeo@example.net/orchard\" to=\"room@muc.example.net\" type=\"groupchat\" "  \
    "id=\"m1\" xml:lang=\"en\"><body>Art thou &amp; &lt;not&gt; Romeo?</body>"                     \
    "<x xmlns=\"urn:example:x\" a=\"1\"><y/>text<z xml:lang=\"fr\">z</z></x></message>"

static void test_shape(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    xml_stanza_t *r = xml_stanza_readdress(src, "room@muc.example.net/romeo", "juliet@example.com");
    /* Its own addresses; the rest is src's. */
    assert_string_equal(xml_stanza_from(r), "room@muc.example.net/romeo");
    assert_string_equal(xml_stanza_to(r), "juliet@example.com");
    assert_string_equal(xml_stanza_type(r), "groupchat");
    assert_string_equal(xml_stanza_id(r), "m1");
    assert_string_equal(xml_node_attr_ns(r->root, XMLS_NS_XML, "lang"), "en");
    assert_int_equal(xml_stanza_kind(r), XMLS_KIND_MESSAGE);
    assert_true(xml_node_is(r->root, XMLS_NS_CONTENT, "message"));
    /* src keeps its own. */
    assert_string_equal(xml_stanza_from(src), "romeo@example.net/orchard");
    assert_string_equal(xml_stanza_to(src), "room@muc.example.net");
    /* The children are src's nodes, not copies. */
    const xml_node_t *body = xml_node_child(r->root, XMLS_NS_CONTENT, "body");
    assert_non_null(body);
    assert_ptr_equal(body, xml_node_child(src->root, XMLS_NS_CONTENT, "body"));
    assert_ptr_equal(xml_node_first_element(r->root), body);
    size_t len;
    assert_string_equal(xml_node_text(body, &len), "Art thou & <not> Romeo?");
    assert_int_equal(len, strlen("Art thou & <not> Romeo?"));
    const xml_node_t *x = xml_node_next_element(body);
    assert_true(xml_node_is(x, "urn:example:x", "x"));
    assert_string_equal(xml_node_attr(x, "a"), "1");
    assert_ptr_equal(r->root->last, x);
    /* A text-only root is read the same way. */
    xml_stanza_t *t = parse_one("<message><subject>s</subject></message>");
    xml_stanza_t *rt = xml_stanza_readdress(t, NULL, "a@b");
    assert_string_equal(xml_node_text(xml_node_child(rt->root, XMLS_NS_CONTENT, "subject"), NULL),
                        "s");
    assert_null(xml_stanza_from(rt));
    xml_stanza_unref(rt);
    xml_stanza_unref(t);
    xml_stanza_unref(r);
    xml_stanza_unref(src);
}

static void test_bytes_parsed(void **state)
{
    (void)state;
    /* Written as our serialiser writes (double quotes), so a copy's bytes are exactly these. */
    static const char *const in[] = {
        MSG,
        "<presence/>",
        "<presence from=\"a@b/c\" type=\"unavailable\"/>",
        "<presence><show>away</show><status>brb</status><priority>5</priority>"
        "<c xmlns=\"http://jabber.org/protocol/caps\" hash=\"sha-1\" node=\"n\" ver=\"v=\"/>"
        "</presence>",
        /* a root in another namespace, and children in several */
        "<foo xmlns=\"urn:foo\" to=\"x@y\"><bar/><baz xmlns=\"urn:baz\"><q/></baz>t</foo>",
        /* text right under the root, and the XML namespace on a child */
        "<message>hello<body xml:lang=\"de\">hallo</body>&amp;</message>",
        /* a namespaced attribute on a child */
        "<message><x xmlns=\"urn:x\" xmlns:ns0=\"urn:attr\" ns0:a=\"v\"/></message>",
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        xml_stanza_t *src = parse_one(in[i]);
        xml_stanza_t *a = check_against_copy(src, "room@muc/nick", "juliet@example.com/balcony");
        xml_stanza_t *b = check_against_copy(src, NULL, "juliet@example.com");
        xml_stanza_t *c = check_against_copy(src, NULL, NULL);
        xml_stanza_unref(a);
        xml_stanza_unref(b);
        xml_stanza_unref(c);
        xml_stanza_unref(src);
    }
}

static void test_bytes_not_cut(void **state)
{
    (void)state;
    /*
     * Bytes the parser kept that cannot be cut after the root's start tag: the root declares
     * a prefix its children use, or is written with a prefix itself. The content is then
     * serialised apart (once); the result means the same as a copy. And a start tag that is
     * hard to scan, but can be cut.
     */
    static const char *const in[] = {
        "<message xmlns:p='urn:p' to='a@b'><p:x p:attr='1'><p:y/></p:x></message>",
        "<p:foo xmlns:p='urn:foo' to='x@y'><p:bar/></p:foo>",
        "<message to='a@b' id='q&apos;&quot;'><body a='&gt;'>x</body></message>",
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        xml_stanza_t *src = parse_one(in[i]);
        xml_stanza_t *want = copy_readdressed(src, "f@g/h", "t@u");
        xml_stanza_t *r = xml_stanza_readdress(src, "f@g/h", "t@u");
        size_t srclen;
        const char *srcbytes = xml_stanza_bytes(src, &srclen);
        core_span_t v[XMLS_PIECES_MAX];
        assert_int_equal(xml_stanza_pieces(r, v), 2);
        /* The first two are not cut out of the parser's bytes, which mean something else
         * without their root; the last is (quotes of both kinds, '>' in a value). */
        bool inside = v[1].data > srcbytes && v[1].data + v[1].len == srcbytes + srclen;
        assert_int_equal(inside, i == 2);
        char *got = pieces_of(r, NULL);
        xml_stanza_t *back = xml_stanza_parse(got, strlen(got));
        assert_non_null(back);
        char *d_back = dump(back->root), *d_want = dump(want->root);
        assert_string_equal(d_back, d_want);
        /* Once serialised, a copy's bytes are the same as ours. */
        xml_stanza_changed(want);
        char *b_want = bytes_of(want);
        char *s_got = serialize(r->root);
        assert_string_equal(s_got, b_want);
        core_free(got);
        core_free(d_back);
        core_free(d_want);
        core_free(b_want);
        core_free(s_got);
        xml_stanza_unref(back);
        xml_stanza_unref(want);
        xml_stanza_unref(r);
        xml_stanza_unref(src);
    }
}

static void test_bytes_built(void **state)
{
    (void)state;
    /* A stanza built in process (no bytes yet): namespaced root attributes, xml:lang. */
    xml_stanza_t *src = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(src, src->root, NULL, "type", "headline");
    xml_node_set_attr(src, src->root, XMLS_NS_XML, "lang", "en");
    xml_node_set_attr(src, src->root, "urn:example:attr", "mark", "1");
    static const char ns_event[] = "http://jabber.org/protocol/pubsub#event";
    xml_node_t *ev = xml_node_add_element(src, src->root, ns_event, "event");
    xml_node_t *items = xml_node_add_element(src, ev, ns_event, "items");
    xml_node_set_attr(src, items, NULL, "node", "urn:xmpp:avatar:metadata");
    xml_node_t *item = xml_node_add_element(src, items, NULL, "item");
    xml_node_add_text(src, item, "a\r\nb]]>", 7);
    xml_stanza_t *empty = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    xml_stanza_t *other = xml_stanza_new("urn:other", "thing");
    xml_node_add_element(other, other->root, "urn:other", "inside");
    /* Addresses with characters to escape in an attribute value. */
    static const char odd[] = "a&b<c>\"d'e\tf\ng\rh@example.com/r\xc3\xa9s";
    xml_stanza_t *list[] = {src, empty, other};
    for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
        xml_stanza_t *a = check_against_copy(list[i], odd, "juliet@example.com");
        xml_stanza_t *b = check_against_copy(list[i], "x@y", odd);
        size_t len;
        const char *bytes = xml_stanza_bytes(a, &len);
        static const char esc[] = "from=\"a&amp;b&lt;c>&quot;d'e&#9;f&#10;g&#13;h@";
        assert_non_null(memmem(bytes, len, esc, sizeof(esc) - 1));
        xml_stanza_unref(a);
        xml_stanza_unref(b);
    }
    xml_stanza_unref(src);
    xml_stanza_unref(empty);
    xml_stanza_unref(other);
}

/* The content is serialised once, and every readdressed stanza points at that one buffer. */
static void test_shared_content(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    size_t srclen;
    const char *srcbytes = xml_stanza_bytes(src, &srclen);
    enum { N = 1000 };
    static xml_stanza_t *r[N];
    const char *content = NULL;
    size_t before = core_alloc_bytes();
    for (int i = 0; i < N; i++) {
        char to[64];
        snprintf(to, sizeof to, "user%d@example.com/res", i);
        r[i] = xml_stanza_readdress(src, "room@muc/romeo", to);
        core_span_t v[XMLS_PIECES_MAX];
        assert_int_equal(xml_stanza_pieces(r[i], v), 2);
        /* The parser's bytes are cut, not copied: the content lies inside them. */
        assert_true(v[1].data > srcbytes && v[1].data + v[1].len == srcbytes + srclen);
        if (content == NULL)
            content = v[1].data;
        assert_ptr_equal(v[1].data, content);
        assert_memory_equal(v[0].data, "<message ", 9);
        assert_memory_equal(v[0].data + v[0].len - 1, ">", 1);
    }
    /* Far less than a copy each: the stanza is ~250 bytes, its tree several times that. */
    size_t per = (core_alloc_bytes() - before) / N;
    print_message("%zu bytes per readdressed stanza, pieces built\n", per);
    assert_true(per < 1100);
    for (int i = 0; i < N; i++)
        xml_stanza_unref(r[i]);
    assert_int_equal(src->refs, 1);
    xml_stanza_unref(src);
}

static void set_attr_on(void *arg)
{
    xml_stanza_t *st = arg;
    xml_node_set_attr(st, st->root, NULL, "type", "chat");
}

static void add_child_to(void *arg)
{
    xml_stanza_t *st = arg;
    xml_node_add_element(st, st->root, NULL, "x");
}

static void append_to(void *arg)
{
    xml_stanza_t *st = arg;
    xml_stanza_t *c = xml_stanza_new("urn:x", "id");
    xml_stanza_append_copy(st, c->root);
}

static void test_frozen(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    assert_false(xml_stanza_is_shared(src));
    xml_stanza_t *r = xml_stanza_readdress(src, "a@b", "c@d");
    assert_true(xml_stanza_is_shared(src));
    assert_true(xml_stanza_is_shared(r));
    assert_int_equal(r->refs, 1);
    /* Changing either one is a bug that stops the process. */
    assert_true(aborts(set_attr_on, src));
    assert_true(aborts(add_child_to, r));
    assert_true(aborts(set_attr_on, r));
    assert_true(aborts(append_to, r));
    xml_stanza_unref(r);
    /* Frozen for good, even with one reference left. */
    assert_int_equal(src->refs, 1);
    assert_true(xml_stanza_is_shared(src));
    assert_true(aborts(add_child_to, src));
    /* The way to change it: a copy, which is writable and frozen no more. */
    xml_stanza_t *c = xml_stanza_copy(src);
    assert_false(xml_stanza_is_shared(c));
    assert_false(aborts(set_attr_on, c));
    xml_stanza_unref(c);
    xml_stanza_unref(src);
}

static void test_copy_independent(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    xml_stanza_t *r = xml_stanza_readdress(src, "room@muc/romeo", "juliet@example.com");
    char *r_bytes = pieces_of(r, NULL);
    xml_stanza_t *c = xml_stanza_copy(r);
    assert_false(xml_stanza_is_shared(c));
    /* A plain tree: its own nodes, with proper parent links. */
    assert_null(xml_dump_check(c->root));
    assert_ptr_not_equal(c->root->first, src->root->first);
    char *c_bytes = bytes_of(c);
    assert_string_equal(c_bytes, r_bytes);
    /* Changed: the copy only. */
    xml_node_set_attr(c, c->root, NULL, "to", "other@example.com");
    xml_node_add_element(c, xml_node_child(c->root, XMLS_NS_CONTENT, "body"), "urn:x", "mark");
    xml_stanza_t *delay = xml_stanza_parse("<delay xmlns='urn:xmpp:delay'/>", 31);
    xml_stanza_append_copy(c, delay->root);
    xml_stanza_unref(delay);
    char *r_again = pieces_of(r, NULL);
    assert_string_equal(r_again, r_bytes);
    assert_null(xml_node_first_element(xml_node_child(src->root, XMLS_NS_CONTENT, "body")));
    assert_string_equal(xml_stanza_to(r), "juliet@example.com");
    /* And the copy goes on living after the shared tree is gone. */
    xml_stanza_unref(r);
    xml_stanza_unref(src);
    xml_stanza_changed(c);
    char *c_after = bytes_of(c);
    assert_non_null(strstr(c_after, "to=\"other@example.com\""));
    assert_non_null(strstr(c_after, "<mark xmlns=\"urn:x\"/></body>"));
    assert_non_null(strstr(c_after, "<delay xmlns=\"urn:xmpp:delay\"/></message>"));
    core_free(r_bytes);
    core_free(c_bytes);
    core_free(r_again);
    core_free(c_after);
    xml_stanza_unref(c);
}

static void test_refs(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    xml_stanza_t *r = xml_stanza_readdress(src, "a@b/c", "d@e");
    assert_int_equal(src->refs, 2);
    /* The source's owner lets go first: the readdressed stanza keeps it alive. */
    xml_stanza_unref(src);
    char *b = pieces_of(r, NULL);
    assert_non_null(strstr(b, "<body>Art thou &amp; &lt;not&gt; Romeo?</body>"));
    /* Readdressed again (as a presence kept per session and then broadcast). */
    xml_stanza_t *r2 = xml_stanza_readdress(r, "x@y/z", NULL);
    assert_int_equal(r->refs, 2);
    xml_stanza_unref(r);
    assert_string_equal(xml_stanza_from(r2), "x@y/z");
    assert_null(xml_stanza_to(r2));
    assert_string_equal(xml_stanza_id(r2), "m1");
    xml_stanza_t *c = xml_stanza_from_node(r2->root);
    char *b2 = pieces_of(r2, NULL), *bc = bytes_of(c);
    assert_string_equal(b2, bc);
    core_free(b);
    core_free(b2);
    core_free(bc);
    xml_stanza_unref(c);
    xml_stanza_unref(r2);
}

static void test_readdress_id(void **state)
{
    (void)state;
    xml_stanza_t *src = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(src, src->root, NULL, "from", "juliet@example.com");
    xml_node_set_attr(src, src->root, NULL, "type", "headline");
    xml_node_add_element(src, src->root, "http://jabber.org/protocol/pubsub#event", "event");
    xml_stanza_t *r =
        xml_stanza_readdress_id(src, "juliet@example.com", "romeo@example.net/a", "pep7");
    char *got = pieces_of(r, NULL);
    assert_string_equal(got,
                        "<message from=\"juliet@example.com\" type=\"headline\" "
                        "to=\"romeo@example.net/a\" id=\"pep7\"><event "
                        "xmlns=\"http://jabber.org/protocol/pubsub#event\"/></message>");
    core_free(got);
    xml_stanza_unref(r);
    xml_stanza_unref(src);
}

static void test_envelope(void **state)
{
    (void)state;
    xml_stanza_t *src = parse_one(MSG);
    xml_stanza_t *r = xml_stanza_readdress(src, "room@muc/romeo", "juliet@example.com/balcony");
    xml_stanza_t *env = xml_envelope_new(XMLS_NS_CONTENT, "route", r);
    xml_node_set_attr(env, env->root, NULL, "to", "c2s.example.com");
    xml_node_set_attr(env, env->root, NULL, "sid", "s1");
    /* The same envelope around a full copy, the old way. */
    xml_stanza_t *want_in = copy_readdressed(src, "room@muc/romeo", "juliet@example.com/balcony");
    xml_stanza_t *want = xml_envelope_new(XMLS_NS_CONTENT, "route", want_in);
    xml_node_set_attr(want, want->root, NULL, "to", "c2s.example.com");
    xml_node_set_attr(want, want->root, NULL, "sid", "s1");
    size_t n;
    char *got = pieces_of(env, &n);
    assert_int_equal(n, 4); /* <route>, <message ...>, the shared content, </route> */
    char *b_want = bytes_of(want);
    assert_string_equal(got, b_want);
    char *b_got = bytes_of(env);
    assert_string_equal(b_got, b_want);
    xml_stanza_t *inner = xml_envelope_open(env);
    assert_ptr_equal(inner, r);
    xml_stanza_unref(inner);
    /* An envelope whose stanza is empty: three pieces. */
    xml_stanza_t *p = parse_one("<presence type=\"unavailable\"/>");
    xml_stanza_t *rp = xml_stanza_readdress(p, "a@b/c", "d@e");
    xml_stanza_t *envp = xml_envelope_new(XMLS_NS_CONTENT, "route", rp);
    char *gp = pieces_of(envp, &n);
    assert_int_equal(n, 3);
    assert_string_equal(gp,
                        "<route><presence type=\"unavailable\" from=\"a@b/c\" "
                        "to=\"d@e\"/></route>");
    core_free(gp);
    xml_stanza_unref(envp);
    xml_stanza_unref(rp);
    xml_stanza_unref(p);
    core_free(got);
    core_free(b_want);
    core_free(b_got);
    xml_stanza_unref(want);
    xml_stanza_unref(want_in);
    xml_stanza_unref(env);
    xml_stanza_unref(r);
    xml_stanza_unref(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape),
        cmocka_unit_test(test_bytes_parsed),
        cmocka_unit_test(test_bytes_not_cut),
        cmocka_unit_test(test_bytes_built),
        cmocka_unit_test(test_shared_content),
        cmocka_unit_test(test_frozen),
        cmocka_unit_test(test_copy_independent),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_readdress_id),
        cmocka_unit_test(test_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
