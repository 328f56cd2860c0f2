/* SPDX-License-Identifier: MIT */
/* Tests of stanza trees and the serialiser: building, changing, copying, round trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "xml/xml.h"

#include "../common/xml_dump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define STREAM_OPEN_FMT "<stream:stream xmlns='%s' xmlns:stream='http://etherx.jabber.org/streams'>"

/* ---- helpers ---- */

static char *dump(const xml_node_t *n)
{
    core_buf_t b = {0};
    xml_dump_node(n, &b);
    core_buf_append(&b, "", 1);
    size_t len;
    return core_buf_steal(&b, &len);
}

/* Parses one top-level element (len bytes) on a stream whose content namespace is ns. */
static xml_stanza_t *parse_one(const char *ns, const char *el, size_t len)
{
    char hdr[256];
    snprintf(hdr, sizeof(hdr), STREAM_OPEN_FMT, ns);
    xml_parser_t *p = xml_parser_new(NULL);
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    assert_int_equal(xml_parser_feed(p, el, len), 0);
    xml_event_t ev;
    assert_int_equal(xml_parser_next(p, &ev), 0);
    assert_int_equal(ev.kind, XMLS_EV_STREAM_OPEN);
    xml_stanza_unref(ev.stanza);
    int rc = xml_parser_next(p, &ev);
    if (rc != 0)
        fprintf(stderr, "cannot parse: %.*s (%s)\n", (int)len, el,
                core_stream_err_name(xml_parser_error(p, NULL)));
    assert_int_equal(rc, 0);
    assert_int_equal(ev.kind, XMLS_EV_ELEMENT);
    assert_int_equal(xml_parser_next(p, &ev), -EAGAIN);
    xml_parser_free(p);
    return ev.stanza;
}

static char *serialize(const xml_node_t *n)
{
    core_buf_t b = {0};
    xml_node_serialize(n, &b);
    core_buf_append(&b, "", 1);
    size_t len;
    return core_buf_steal(&b, &len);
}

/* ---- serialising ---- */

static void test_escaping(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(st, st->root, NULL, "to", "a&<>\"'\t\n\r b");
    xml_node_t *body = xml_node_add_element(st, st->root, XMLS_NS_CONTENT, "body");
    xml_node_add_text(st, body, "&<>\"'\t\n\r]]>", 11);
    char *s = serialize(st->root);
    assert_string_equal(s,
                        "<message to=\"a&amp;&lt;>&quot;'&#9;&#10;&#13; b\"><body>"
                        "&amp;&lt;&gt;\"'\t\n&#13;]]&gt;</body></message>");
    core_free(s);

    core_buf_t b = {0};
    xml_escape(&b, "x&y", 3, false);
    xml_escape(&b, "\"", 1, true);
    xml_escape(&b, "\"", 1, false);
    xml_escape(&b, "", 0, true);
    assert_int_equal(b.len, strlen("x&amp;y&quot;\""));
    assert_memory_equal(b.data, "x&amp;y&quot;\"", b.len);
    core_buf_release(&b);

    /* The escaped tree parses back to the same values. */
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    xml_stanza_t *back = parse_one(XMLS_NS_CLIENT, bytes, len);
    char *d1 = dump(st->root), *d2 = dump(back->root);
    assert_string_equal(d1, d2);
    core_free(d1);
    core_free(d2);
    xml_stanza_unref(back);
    xml_stanza_unref(st);
}

static void test_namespaces_out(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_t *x = xml_node_add_element(st, st->root, "urn:x", "x");
    xml_node_t *y = xml_node_add_element(st, x, "urn:x", "y");
    xml_node_add_element(st, y, NULL, "none");
    xml_node_t *fwd = xml_node_add_element(st, st->root, "urn:xmpp:forward:0", "forwarded");
    xml_node_t *inner = xml_node_add_element(st, fwd, XMLS_NS_CONTENT, "message");
    xml_node_add_element(st, inner, XMLS_NS_CONTENT, "body");
    xml_node_add_element(st, inner, XMLS_NS_CLIENT, "thread");
    xml_node_set_attr(st, x, "urn:a", "one", "1");
    xml_node_set_attr(st, x, XMLS_NS_XML, "lang", "en");
    xml_node_set_attr(st, x, "urn:b", "two", "2");
    xml_node_set_attr(st, x, "urn:a", "three", "3");
    xml_node_set_attr(st, x, NULL, "plain", "p");
    char *s = serialize(st->root);
    assert_string_equal(
        s,
        "<message><x xmlns=\"urn:x\" xmlns:ns0=\"urn:a\" xmlns:ns2=\"urn:b\" ns0:one=\"1\" "
        "xml:lang=\"en\" ns2:two=\"2\" ns0:three=\"3\" plain=\"p\"><y><none xmlns=\"\"/></y>"
        "</x><forwarded xmlns=\"urn:xmpp:forward:0\"><message xmlns=\"jabber:client\"><body/>"
        "<thread/></message></forwarded></message>");
    core_free(s);

    /* A root outside the content namespace says so; one in no namespace too. */
    xml_stanza_t *other = xml_stanza_new("urn:y", "y");
    s = serialize(other->root);
    assert_string_equal(s, "<y xmlns=\"urn:y\"/>");
    core_free(s);
    xml_stanza_unref(other);
    other = xml_stanza_new(NULL, "z");
    s = serialize(other->root);
    assert_string_equal(s, "<z xmlns=\"\"/>");
    core_free(s);
    xml_stanza_unref(other);
    xml_stanza_unref(st);
}

/* Elements deeper than the serialiser's first stack. */
static void test_deep(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "a");
    xml_node_t *n = st->root;
    for (int i = 0; i < 100; i++)
        n = xml_node_add_element(st, n, i % 2 ? "urn:odd" : XMLS_NS_CONTENT, "a");
    xml_node_add_text(st, n, "deep", 4);
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    core_buf_t want = {0};
    core_buf_append_str(&want, "<a>");
    /* content under content needs no declaration; after urn:odd it names jabber:client */
    for (int i = 0; i < 100; i++)
        core_buf_append_str(&want,
                            i == 0      ? "<a>"
                                : i % 2 ? "<a xmlns=\"urn:odd\">"
                                        : "<a xmlns=\"jabber:client\">");
    core_buf_append_str(&want, "deep");
    for (int i = 0; i < 101; i++)
        core_buf_append_str(&want, "</a>");
    assert_int_equal(len, want.len);
    assert_memory_equal(bytes, want.data, len);
    core_buf_release(&want);
    xml_stanza_unref(st);
}

/* ---- round trips: parse, serialise, parse again, same tree ---- */

static const char *const round_trips[] = {
    "<message to='a@b/c' from='d@e' type='chat' id='1' xml:lang='en'>"
    "<body>Hello &amp; &lt;world&gt; &#38; &#x26; &apos;&quot;</body></message>",
    "<message><unknown xmlns='urn:example:unknown' attr='v'><deep><deeper x='y'/></deep>"
    "</unknown></message>",
    "<iq type='set' id='x'><q:query xmlns:q='urn:q' q:attr='1' xmlns:r='urn:r' r:b='2'>"
    "<q:item r:c='3'/></q:query></iq>",
    "<message><p>mixed <b>bold</b> and <i>italic</i> text</p></message>",
    "<message><body><![CDATA[<xml> & stuff ]]]]><![CDATA[>]]></body></message>",
    "<message><body>\xF0\x9F\x98\x80 \xE6\x97\xA5\xE6\x9C\xAC \xC3\xA9 \xEF\xBF\xBD</body>"
    "<x a='\xF0\x90\x8D\x88'/></message>",
    "<message><body>cr&#13;lf&#10;tab&#9;</body><x a='&#13;&#10;&#9;' b='&lt;&amp;&gt;'/>"
    "</message>",
    "<message><forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'>"
    "<body>inner</body><x xmlns='jabber:server'/></message></forwarded></message>",
    "<message><a xmlns=''><b/></a><c xmlns='urn:c'><d xmlns=''/></c></message>",
    "<presence xmlns:s='http://etherx.jabber.org/streams'><s:error/></presence>",
    "<db:result xmlns:db='jabber:server:dialback' to='a' from='b'>key</db:result>",
    "<message><x xmlns='urn:x' xmlns:p='urn:x' p:a='1' a='2'/></message>",
    "<message xml:lang='de'><body xml:lang='en'>x</body></message>",
    "<message><x xmlns='jabber:server'/><y xmlns='jabber:component:accept'/></message>",
    "<message><x xmlns:c='jabber:client'><c:y/></x></message>",
};

static void round_trip(const char *ns, const char *el)
{
    xml_stanza_t *a = parse_one(ns, el, strlen(el));
    char *s = serialize(a->root);
    xml_stanza_t *b = parse_one(ns, s, strlen(s));
    char *da = dump(a->root), *db = dump(b->root);
    if (strcmp(da, db) != 0)
        fprintf(stderr, "in:  %s\nout: %s\n", el, s);
    assert_string_equal(da, db);
    /* Kept bytes, where the parser kept them, mean the same on a stream of another kind. */
    if (a->bytes != NULL) {
        const char *other = strcmp(ns, XMLS_NS_CLIENT) == 0 ? XMLS_NS_SERVER : XMLS_NS_CLIENT;
        xml_stanza_t *c = parse_one(other, a->bytes, a->bytes_len);
        char *dc = dump(c->root);
        assert_string_equal(da, dc);
        core_free(dc);
        xml_stanza_unref(c);
    }
    core_free(da);
    core_free(db);
    core_free(s);
    xml_stanza_unref(a);
    xml_stanza_unref(b);
}

static void test_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(round_trips) / sizeof(round_trips[0]); i++) {
        round_trip(XMLS_NS_CLIENT, round_trips[i]);
        round_trip(XMLS_NS_SERVER, round_trips[i]);
        round_trip(XMLS_NS_COMPONENT, round_trips[i]);
    }
}

/* Every character that needs escaping, everywhere it can appear. */
static void test_round_trip_all_specials(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "message");
    char all[160];
    size_t n = 0;
    all[n++] = '\t';
    all[n++] = '\n';
    all[n++] = '\r';
    for (int c = 0x20; c < 0x7F; c++)
        all[n++] = (char)c;
    memcpy(all + n, "\xC2\x80\xF4\x8F\xBF\xBD", 6); /* U+0080, U+10FFFD */
    n += 6;
    all[n] = '\0';
    xml_node_set_attr(st, st->root, NULL, "a", all);
    xml_node_set_attr(st, st->root, "urn:&\"<>", "b", all);
    xml_node_t *x = xml_node_add_element(st, st->root, "urn:'\"&<>", "x");
    xml_node_add_text(st, x, all, n);
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    xml_stanza_t *back = parse_one(XMLS_NS_CLIENT, bytes, len);
    char *d1 = dump(st->root), *d2 = dump(back->root);
    assert_string_equal(d1, d2);
    core_free(d1);
    core_free(d2);
    xml_stanza_unref(back);
    xml_stanza_unref(st);
}

/* ---- cached bytes ---- */

static void test_bytes_cache(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    assert_null(st->bytes);
    size_t len;
    const char *b1 = xml_stanza_bytes(st, &len);
    assert_int_equal(len, 11);
    assert_memory_equal(b1, "<presence/>", 11);
    assert_ptr_equal(xml_stanza_bytes(st, NULL), b1);
    xml_node_set_attr(st, st->root, NULL, "type", "unavailable");
    assert_null(st->bytes);
    const char *b2 = xml_stanza_bytes(st, &len);
    assert_int_equal(len, strlen("<presence type=\"unavailable\"/>"));
    assert_memory_equal(b2, "<presence type=\"unavailable\"/>", len);

    /* A shared tree still fills its cache. */
    xml_stanza_changed(st);
    assert_null(st->bytes);
    xml_stanza_ref(st);
    assert_int_equal(st->refs, 2);
    assert_non_null(xml_stanza_bytes(st, &len));
    xml_stanza_unref(st);
    assert_int_equal(st->refs, 1);

    /* Parsed bytes are dropped on change too. */
    const char *in = "<message id='1'><body>x</body></message>";
    xml_stanza_t *p = parse_one(XMLS_NS_CLIENT, in, strlen(in));
    assert_ptr_equal(xml_stanza_bytes(p, &len), p->bytes);
    assert_int_equal(len, strlen(in));
    xml_node_set_attr(p, p->root, NULL, "id", "2");
    const char *b3 = xml_stanza_bytes(p, &len);
    assert_int_equal(len, strlen("<message id=\"2\"><body>x</body></message>"));
    assert_memory_equal(b3, "<message id=\"2\"><body>x</body></message>", len);
    xml_stanza_unref(p);
    xml_stanza_unref(st);
}

/* ---- changing and copying ---- */

static void test_mutation(void **state)
{
    (void)state;
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_t *r = st->root;
    xml_node_set_attr(st, r, NULL, "type", "get");
    xml_node_set_attr(st, r, NULL, "id", "a");
    xml_node_set_attr(st, r, NULL, "to", "x");
    xml_node_set_attr(st, r, NULL, "from", "y");
    xml_node_set_attr(st, r, NULL, "extra", "z"); /* grows past the first capacity */
    xml_node_set_attr(st, r, NULL, "type", "result");
    assert_string_equal(xml_stanza_type(st), "result");
    assert_int_equal(r->nattrs, 5);
    xml_node_set_attr(st, r, NULL, "id", NULL);
    assert_null(xml_stanza_id(st));
    assert_int_equal(r->nattrs, 4);
    assert_string_equal(xml_stanza_to(st), "x");
    assert_string_equal(xml_stanza_from(st), "y");
    assert_string_equal(xml_node_attr(r, "extra"), "z");
    xml_node_set_attr(st, r, NULL, "missing", NULL);
    assert_int_equal(r->nattrs, 4);
    xml_node_set_attr(st, r, "urn:a", "to", "ns");
    assert_string_equal(xml_node_attr(r, "to"), "x");
    assert_string_equal(xml_node_attr_ns(r, "urn:a", "to"), "ns");
    assert_null(xml_node_attr_ns(r, "urn:b", "to"));
    assert_string_equal(xml_node_attr_ns(r, NULL, "to"), "x");

    xml_node_t *a = xml_node_add_element(st, r, "urn:q", "a");
    xml_node_add_text(st, r, "t1", 2);
    xml_node_add_text(st, r, "t2", 2);
    xml_node_t *b = xml_node_add_element(st, r, "urn:q", "b");
    xml_node_t *c = xml_node_add_element(st, r, NULL, "c");
    char *d = dump(r);
    assert_string_equal(d,
                        "<{#C}iq {}type='result' {}to='x' {}from='y' {}extra='z' "
                        "{urn:a}to='ns'><{urn:q}a></>\"t1t2\"<{urn:q}b></><{}c></></>");
    core_free(d);
    assert_ptr_equal(xml_node_first_element(r), a);
    assert_ptr_equal(xml_node_next_element(a), b);
    assert_ptr_equal(xml_node_child(r, "urn:q", "b"), b);
    assert_ptr_equal(xml_node_child(r, NULL, "c"), c);
    assert_ptr_equal(xml_node_child(r, "urn:q", NULL), a);
    assert_null(xml_node_child(r, "urn:z", NULL));
    assert_null(xml_node_child(r, XMLS_NS_CONTENT, "a"));
    assert_true(xml_node_is(c, NULL, NULL));
    assert_false(xml_node_is(r->first->next, NULL, NULL)); /* text */

    /* unlink middle, first, last */
    xml_node_unlink(st, b);
    xml_node_unlink(st, a);
    xml_node_unlink(st, c);
    d = dump(r);
    assert_string_equal(d,
                        "<{#C}iq {}type='result' {}to='x' {}from='y' {}extra='z' "
                        "{urn:a}to='ns'>\"t1t2\"</>");
    core_free(d);
    size_t len;
    assert_string_equal(xml_node_text(r, &len), "t1t2");
    assert_int_equal(len, 4);
    assert_null(b->parent);

    /* copy from another tree */
    xml_stanza_t *src = xml_stanza_new("urn:s", "s");
    xml_node_t *sc = xml_node_add_element(src, src->root, "urn:s", "child");
    xml_node_set_attr(src, sc, XMLS_NS_XML, "lang", "fr");
    xml_node_add_text(src, sc, "txt", 3);
    xml_node_t *copy = xml_node_add_copy(st, r, src->root);
    xml_stanza_unref(src); /* the copy owns its strings */
    d = dump(copy);
    assert_string_equal(d,
                        "<{urn:s}s><{urn:s}child {http://www.w3.org/XML/1998/namespace}"
                        "lang='fr'>\"txt\"</></>");
    core_free(d);
    assert_ptr_equal(copy->parent, r);
    assert_ptr_equal(r->last, copy);
    assert_string_equal(xml_node_text(r, &len), "");
    assert_int_equal(len, 0);
    xml_stanza_unref(st);
}

static void test_copy(void **state)
{
    (void)state;
    const char *in = "<message to='a' xml:lang='en'><body>x</body><x xmlns='urn:x' "
                     "xmlns:p='urn:p' p:q='1'>mixed<y/>text</x></message>";
    xml_stanza_t *st = parse_one(XMLS_NS_CLIENT, in, strlen(in));
    xml_stanza_ref(st); /* shared */
    xml_stanza_t *c = xml_stanza_copy(st);
    assert_int_equal(c->refs, 1);
    /* The same tree, so the same bytes: kept, until the copy changes. */
    assert_non_null(c->bytes);
    assert_int_equal(c->bytes_len, st->bytes_len);
    assert_memory_equal(c->bytes, st->bytes, st->bytes_len);
    char *d1 = dump(st->root), *d2 = dump(c->root);
    assert_string_equal(d1, d2);
    core_free(d2);
    xml_node_set_attr(c, c->root, NULL, "to", "b");
    xml_node_add_element(c, c->root, XMLS_NS_CONTENT, "more");
    d2 = dump(st->root);
    assert_string_equal(d1, d2); /* the original is untouched */
    core_free(d1);
    core_free(d2);
    assert_string_equal(xml_stanza_to(c), "b");
    xml_stanza_unref(st);
    xml_stanza_unref(st);
    xml_stanza_unref(c);
    xml_stanza_unref(NULL);
}

static void test_from_node(void **state)
{
    (void)state;
    const char *in = "<message><forwarded xmlns='urn:xmpp:forward:0'><message "
                     "xmlns='jabber:client' to='x'><body>hi</body><y xmlns='urn:y'>"
                     "<z xmlns='jabber:client'/></y></message></forwarded></message>";
    xml_stanza_t *st = parse_one(XMLS_NS_SERVER, in, strlen(in));
    xml_node_t *inner = xml_node_first_element(xml_node_first_element(st->root));
    assert_string_equal(inner->ns, XMLS_NS_CLIENT);
    xml_stanza_t *out = xml_stanza_from_node(inner);
    char *d = dump(out->root);
    assert_string_equal(d,
                        "<{#C}message {}to='x'><{#C}body>\"hi\"</><{urn:y}y>"
                        "<{jabber:client}z></></></>");
    core_free(d);
    assert_int_equal(xml_stanza_kind(out), XMLS_KIND_MESSAGE);
    char *s = serialize(out->root);
    assert_string_equal(s,
                        "<message to=\"x\"><body>hi</body><y xmlns=\"urn:y\">"
                        "<z xmlns=\"jabber:client\"/></y></message>");
    core_free(s);
    xml_stanza_unref(out);

    /* Something else comes out as it was. */
    xml_node_t *fwd = xml_node_first_element(st->root);
    out = xml_stanza_from_node(fwd);
    assert_string_equal(out->root->ns, "urn:xmpp:forward:0");
    assert_string_equal(xml_node_first_element(out->root)->ns, XMLS_NS_CLIENT);
    xml_stanza_unref(out);

    /* A content node stays content. */
    out = xml_stanza_from_node(st->root);
    assert_ptr_equal(out->root->ns, XMLS_NS_CONTENT);
    xml_stanza_unref(out);
    xml_stanza_unref(st);
}

static void test_kind(void **state)
{
    (void)state;
    static const struct {
        const char *ns;
        const char *name;
        xml_stanza_kind_t kind;
    } cases[] = {
        {XMLS_NS_CONTENT, "message", XMLS_KIND_MESSAGE},
        {XMLS_NS_CONTENT, "presence", XMLS_KIND_PRESENCE},
        {XMLS_NS_CONTENT, "iq", XMLS_KIND_IQ},
        {XMLS_NS_CONTENT, "handshake", XMLS_KIND_OTHER},
        {XMLS_NS_CONTENT, "mess", XMLS_KIND_OTHER},
        {XMLS_NS_CLIENT, "message", XMLS_KIND_OTHER},
        {"urn:x", "iq", XMLS_KIND_OTHER},
        {NULL, "presence", XMLS_KIND_OTHER},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        xml_stanza_t *st = xml_stanza_new(cases[i].ns, cases[i].name);
        assert_int_equal(xml_stanza_kind(st), cases[i].kind);
        assert_null(xml_stanza_to(st));
        assert_null(xml_stanza_from(st));
        assert_null(xml_stanza_type(st));
        assert_null(xml_stanza_id(st));
        xml_stanza_unref(st);
    }
}

/* An envelope holds its stanza by reference and serialises it as its first child. */
static void test_envelope(void **state)
{
    (void)state;
#define MSG                                                                                        \
    "<message to='juliet@localhost' type='chat'><body>a &amp; b</body>"                            \
    "<x xmlns='urn:example:ext' a='1'/></message>"
    static const char msg[] = MSG;
    xml_stanza_t *in = parse_one(XMLS_NS_CLIENT, msg, sizeof(msg) - 1);
    xml_stanza_t *env = xml_envelope_new(XMLS_NS_CONTENT, "route", in);
    assert_int_equal(in->refs, 2);
    xml_node_set_attr(env, env->root, NULL, "sid", "s1");
    xml_node_add_element(env, env->root, "urn:example:tail", "t");
    assert_ptr_equal(xml_envelope_child(env), in->root);
    xml_stanza_t *same = xml_envelope_open(env);
    assert_ptr_equal(same, in);
    xml_stanza_unref(same);
    size_t len;
    const char *bytes = xml_stanza_bytes(env, &len);
    /* The stanza's bytes are the ones it arrived as: not serialised again. */
    static const char want[] = "<route sid=\"s1\">" MSG "<t xmlns=\"urn:example:tail\"/></route>";
    char *got = core_strndup(bytes, len);
    assert_string_equal(got, want);
    core_free(got);
    /* The same envelope read back from a stream: the child is copied out of it. */
    xml_stanza_t *parsed = parse_one(XMLS_NS_COMPONENT, bytes, len);
    assert_null(parsed->inner);
    xml_stanza_t *out = xml_envelope_open(parsed);
    assert_non_null(out);
    assert_true(xml_node_is(out->root, XMLS_NS_CONTENT, "message"));
    assert_string_equal(xml_node_attr(out->root, "to"), "juliet@localhost");
    xml_stanza_unref(out);
    xml_stanza_unref(parsed);
    /* A copy of the envelope shares the stanza; the last reference frees it. */
    xml_stanza_t *copy = xml_stanza_copy(env);
    assert_ptr_equal(copy->inner, in);
    xml_stanza_unref(env);
    xml_stanza_unref(copy);
    assert_int_equal(in->refs, 1);
    xml_stanza_unref(in);
}

/* Stamping an attribute on the root keeps the bytes as they arrived, with it written in. */
static void test_set_root_attr(void **state)
{
    (void)state;
    static const char msg[] = "<message to='juliet@localhost'><body>hi</body></message>";
    xml_stanza_t *st = parse_one(XMLS_NS_CLIENT, msg, sizeof(msg) - 1);
    xml_stanza_set_root_attr(st, "from", "r&d@localhost/a");
    assert_string_equal(xml_stanza_from(st), "r&d@localhost/a");
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    char *got = core_strndup(bytes, len);
    assert_string_equal(got,
                        "<message from=\"r&amp;d@localhost/a\" "
                        "to='juliet@localhost'><body>hi</body></message>");
    core_free(got);
    /* Already there: replaced, and the stanza is serialised anew. */
    xml_stanza_set_root_attr(st, "from", "x@localhost");
    bytes = xml_stanza_bytes(st, &len);
    got = core_strndup(bytes, len);
    assert_string_equal(got,
                        "<message to=\"juliet@localhost\" "
                        "from=\"x@localhost\"><body>hi</body></message>");
    core_free(got);
    xml_stanza_unref(st);
}

/* The bytes append_copy splices must be what serialising the changed tree writes. */
static void check_append(const char *in, const char *expect)
{
    const char *sid = "<stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='x&lt;1'/>";
    xml_stanza_t *tmpl = parse_one(XMLS_NS_CLIENT, sid, strlen(sid));
    xml_stanza_t *st = parse_one(XMLS_NS_CLIENT, in, strlen(in));
    xml_stanza_t *c = xml_stanza_copy(st);
    xml_node_t *added = xml_stanza_append_copy(c, tmpl->root);
    assert_true(xml_node_is(added, "urn:xmpp:sid:0", "stanza-id"));
    assert_ptr_equal(added->parent, c->root);
    assert_non_null(c->bytes);
    char *got = core_strndup(c->bytes, c->bytes_len);
    assert_string_equal(got, expect);
    /* The spliced bytes parse back to the same tree. */
    xml_stanza_t *back = parse_one(XMLS_NS_CLIENT, c->bytes, c->bytes_len);
    char *d1 = dump(back->root), *d2 = dump(c->root);
    assert_string_equal(d1, d2);
    core_free(d1);
    core_free(d2);
    core_free(got);
    xml_stanza_unref(back);
    xml_stanza_unref(c);
    xml_stanza_unref(st);
    xml_stanza_unref(tmpl);
}

static void test_append_copy(void **state)
{
    (void)state;
    check_append("<message to='a'><body>hi</body></message>",
                 "<message to='a'><body>hi</body><stanza-id xmlns=\"urn:xmpp:sid:0\" "
                 "by=\"a@b\" id=\"x&lt;1\"/></message>");
    check_append("<message to='a'/>",
                 "<message to='a'><stanza-id xmlns=\"urn:xmpp:sid:0\" "
                 "by=\"a@b\" id=\"x&lt;1\"/></message>");
    /* No cached bytes: appended to the tree, serialised later. */
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_stanza_t *tmpl = xml_stanza_new("urn:x", "x");
    xml_stanza_append_copy(st, tmpl->root);
    size_t len;
    const char *b = xml_stanza_bytes(st, &len);
    char *got = core_strndup(b, len);
    assert_string_equal(got, "<message><x xmlns=\"urn:x\"/></message>");
    core_free(got);
    xml_stanza_unref(st);
    xml_stanza_unref(tmpl);
}

static void test_stanza_parse(void **state)
{
    (void)state;
    const char *in = "<message to='a'><body>x</body><x xmlns='urn:x'/></message>";
    xml_stanza_t *st = xml_stanza_parse(in, strlen(in));
    assert_non_null(st);
    assert_int_equal(xml_stanza_kind(st), XMLS_KIND_MESSAGE);
    assert_ptr_equal(st->root->ns, XMLS_NS_CONTENT);
    xml_stanza_unref(st);
    assert_null(xml_stanza_parse("<message>", 9));
    assert_null(xml_stanza_parse("", 0));
    /* A stored document may be bigger than a stanza off the network may be. */
    size_t n = xml_limits_default.max_stanza_bytes * 2;
    char *big = core_malloc(n + 64);
    size_t len = (size_t)snprintf(big, 64, "<doc xmlns='urn:d'>");
    memset(big + len, 'a', n);
    len += n;
    memcpy(big + len, "</doc>", 6);
    len += 6;
    st = xml_stanza_parse(big, len);
    assert_non_null(st);
    size_t tlen;
    xml_node_text(st->root, &tlen);
    assert_int_equal(tlen, n);
    xml_stanza_unref(st);
    core_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_namespaces_out),
        cmocka_unit_test(test_deep),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_round_trip_all_specials),
        cmocka_unit_test(test_bytes_cache),
        cmocka_unit_test(test_mutation),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_from_node),
        cmocka_unit_test(test_kind),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_set_root_attr),
        cmocka_unit_test(test_append_copy),
        cmocka_unit_test(test_stanza_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
