/* SPDX-License-Identifier: MIT */
/* Tests of the handler registry: type bits, ordering, payload matching, iq ownership. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "xml/dispatch.h"

#include <errno.h>
#include <string.h>

/* Every call appends the handler's tag to a log; handlers pass unless told to take it. */
typedef struct tag {
    char name;
    bool take;
    char *log;
    const xml_node_t *payload;
} tag_t;

static xml_handler_result_t handler(void *ud, xml_stanza_t *st, const xml_node_t *payload)
{
    tag_t *t = ud;
    assert_non_null(st);
    size_t n = strlen(t->log);
    t->log[n] = t->name;
    t->log[n + 1] = '\0';
    t->payload = payload;
    return t->take ? XMLS_HANDLED : XMLS_PASS;
}

static xml_stanza_t *stanza(const char *name, const char *type)
{
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, name);
    if (type != NULL)
        xml_node_set_attr(st, st->root, NULL, "type", type);
    return st;
}

static void test_type_bits(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *type;
        xml_stanza_type_t bit;
    } cases[] = {
        {"iq", "get", XMLS_TYPE_GET},
        {"iq", "set", XMLS_TYPE_SET},
        {"iq", "result", XMLS_TYPE_RESULT},
        {"iq", "error", XMLS_TYPE_ERROR},
        {"iq", NULL, XMLS_TYPE_INVALID},
        {"iq", "chat", XMLS_TYPE_INVALID},
        {"message", NULL, XMLS_TYPE_NORMAL},
        {"message", "normal", XMLS_TYPE_NORMAL},
        {"message", "chat", XMLS_TYPE_CHAT},
        {"message", "groupchat", XMLS_TYPE_GROUPCHAT},
        {"message", "headline", XMLS_TYPE_HEADLINE},
        {"message", "error", XMLS_TYPE_ERROR},
        {"message", "get", XMLS_TYPE_INVALID},
        {"message", "", XMLS_TYPE_INVALID},
        {"presence", NULL, XMLS_TYPE_AVAILABLE},
        {"presence", "available", XMLS_TYPE_INVALID},
        {"presence", "unavailable", XMLS_TYPE_UNAVAILABLE},
        {"presence", "subscribe", XMLS_TYPE_SUBSCRIBE},
        {"presence", "subscribed", XMLS_TYPE_SUBSCRIBED},
        {"presence", "unsubscribe", XMLS_TYPE_UNSUBSCRIBE},
        {"presence", "unsubscribed", XMLS_TYPE_UNSUBSCRIBED},
        {"presence", "probe", XMLS_TYPE_PROBE},
        {"presence", "error", XMLS_TYPE_ERROR},
        {"presence", "Probe", XMLS_TYPE_INVALID},
        {"handshake", "get", XMLS_TYPE_NONE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        xml_stanza_t *st = stanza(cases[i].name, cases[i].type);
        assert_int_equal(xml_stanza_type_bit(st), cases[i].bit);
        xml_stanza_unref(st);
    }
    /* A message in another namespace is no message. */
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CLIENT, "message");
    assert_int_equal(xml_stanza_type_bit(st), XMLS_TYPE_NONE);
    xml_stanza_unref(st);
}

/* Most specific first; registration order among equals; stop at the first HANDLED. */
static void test_order(void **state)
{
    (void)state;
    char log[64] = "";
    tag_t a = {'a', false, log, NULL}, b = {'b', false, log, NULL}, c = {'c', false, log, NULL},
          d = {'d', false, log, NULL}, e = {'e', false, log, NULL}, f = {'f', false, log, NULL};
    xml_dispatch_t *disp = xml_dispatch_new();
    xml_match_t any = {.kind = XMLS_KIND_MESSAGE};
    xml_match_t ns = {.kind = XMLS_KIND_MESSAGE, .payload_ns = "urn:x"};
    xml_match_t full = {.kind = XMLS_KIND_MESSAGE, .payload_ns = "urn:x", .payload_name = "x"};
    xml_match_t other = {.kind = XMLS_KIND_MESSAGE, .payload_ns = "urn:y"};
    assert_int_equal(xml_dispatch_add(disp, &any, handler, &a), 0);
    assert_int_equal(xml_dispatch_add(disp, &ns, handler, &b), 0);
    assert_int_equal(xml_dispatch_add(disp, &full, handler, &c), 0);
    assert_int_equal(xml_dispatch_add(disp, &any, handler, &d), 0);
    assert_int_equal(xml_dispatch_add(disp, &full, handler, &e), 0);
    assert_int_equal(xml_dispatch_add(disp, &other, handler, &f), 0);

    xml_stanza_t *st = stanza("message", "chat");
    xml_node_add_element(st, st->root, XMLS_NS_CONTENT, "body");
    xml_node_t *x = xml_node_add_element(st, st->root, "urn:x", "x");
    assert_int_equal(xml_dispatch_run(disp, st), XMLS_PASS);
    assert_string_equal(log, "cebad");
    assert_ptr_equal(c.payload, x);
    assert_ptr_equal(b.payload, x);
    assert_null(a.payload);

    log[0] = '\0';
    e.take = true;
    assert_int_equal(xml_dispatch_run(disp, st), XMLS_HANDLED);
    assert_string_equal(log, "ce");

    /* Other kinds are not offered to message handlers. */
    log[0] = '\0';
    xml_stanza_t *pres = stanza("presence", NULL);
    xml_node_add_element(pres, pres->root, "urn:x", "x");
    assert_int_equal(xml_dispatch_run(disp, pres), XMLS_PASS);
    assert_string_equal(log, "");
    xml_stanza_unref(pres);
    xml_stanza_t *other_kind = xml_stanza_new("urn:x", "message");
    assert_int_equal(xml_dispatch_run(disp, other_kind), XMLS_PASS);
    assert_string_equal(log, "");
    xml_stanza_unref(other_kind);

    /* Any child may carry a message's payload, not only the first. */
    log[0] = '\0';
    xml_stanza_t *m2 = stanza("message", NULL);
    xml_node_add_text(m2, m2->root, "text", 4);
    xml_node_add_element(m2, m2->root, "urn:z", "z");
    xml_node_t *y = xml_node_add_element(m2, m2->root, "urn:y", "anything");
    assert_int_equal(xml_dispatch_run(disp, m2), XMLS_PASS);
    assert_string_equal(log, "fad");
    assert_ptr_equal(f.payload, y);
    xml_stanza_unref(m2);

    xml_stanza_unref(st);
    xml_dispatch_free(disp);
    xml_dispatch_free(NULL);
}

static void test_type_masks(void **state)
{
    (void)state;
    char log[64] = "";
    tag_t a = {'a', false, log, NULL}, b = {'b', false, log, NULL}, c = {'c', false, log, NULL};
    xml_dispatch_t *disp = xml_dispatch_new();
    xml_match_t sub = {.kind = XMLS_KIND_PRESENCE,
                       .types = XMLS_TYPE_SUBSCRIBE | XMLS_TYPE_UNSUBSCRIBE};
    xml_match_t avail = {.kind = XMLS_KIND_PRESENCE, .types = XMLS_TYPE_AVAILABLE};
    xml_match_t all = {.kind = XMLS_KIND_PRESENCE};
    assert_int_equal(xml_dispatch_add(disp, &sub, handler, &a), 0);
    assert_int_equal(xml_dispatch_add(disp, &avail, handler, &b), 0);
    assert_int_equal(xml_dispatch_add(disp, &all, handler, &c), 0);
    static const struct {
        const char *type;
        const char *want;
    } cases[] = {
        {"subscribe", "ac"}, {"unsubscribe", "ac"}, {"subscribed", "c"},
        {NULL, "bc"},        {"bogus", "c"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        log[0] = '\0';
        xml_stanza_t *st = stanza("presence", cases[i].type);
        assert_int_equal(xml_dispatch_run(disp, st), XMLS_PASS);
        assert_string_equal(log, cases[i].want);
        xml_stanza_unref(st);
    }
    xml_dispatch_free(disp);
}

static void test_iq(void **state)
{
    (void)state;
    char log[64] = "";
    tag_t a = {'a', true, log, NULL}, b = {'b', true, log, NULL}, c = {'c', true, log, NULL};
    xml_dispatch_t *disp = xml_dispatch_new();
    xml_match_t ping = {.kind = XMLS_KIND_IQ,
                        .types = XMLS_TYPE_GET,
                        .payload_ns = "urn:xmpp:ping",
                        .payload_name = "ping"};
    assert_int_equal(xml_dispatch_add(disp, &ping, handler, &a), 0);
    /* the same payload again, or a claim that covers it, belongs to someone already */
    assert_int_equal(xml_dispatch_add(disp, &ping, handler, &b), -EEXIST);
    xml_match_t ping_any = {.kind = XMLS_KIND_IQ, .payload_ns = "urn:xmpp:ping"};
    assert_int_equal(xml_dispatch_add(disp, &ping_any, handler, &b), -EEXIST);
    xml_match_t ping_getset = {.kind = XMLS_KIND_IQ,
                               .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                               .payload_ns = "urn:xmpp:ping",
                               .payload_name = "ping"};
    assert_int_equal(xml_dispatch_add(disp, &ping_getset, handler, &b), -EEXIST);
    /* a set of the same payload, another name, results and errors are free */
    xml_match_t ping_set = ping;
    ping_set.types = XMLS_TYPE_SET;
    assert_int_equal(xml_dispatch_add(disp, &ping_set, handler, &b), 0);
    xml_match_t other = ping;
    other.payload_name = "pong";
    assert_int_equal(xml_dispatch_add(disp, &other, handler, &b), 0);
    xml_match_t results = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_RESULT | XMLS_TYPE_ERROR,
                           .payload_ns = "urn:xmpp:ping"};
    assert_int_equal(xml_dispatch_add(disp, &results, handler, &c), 0);
    assert_int_equal(xml_dispatch_add(disp, &results, handler, &c), 0);
    /* nor is a handler for every iq */
    xml_match_t every = {.kind = XMLS_KIND_IQ};
    assert_int_equal(xml_dispatch_add(disp, &every, handler, &c), 0);
    /* bad registrations */
    xml_match_t bad = {.kind = XMLS_KIND_OTHER};
    assert_int_equal(xml_dispatch_add(disp, &bad, handler, &c), -EINVAL);

    xml_stanza_t *st = stanza("iq", "get");
    xml_node_t *p = xml_node_add_element(st, st->root, "urn:xmpp:ping", "ping");
    assert_int_equal(xml_dispatch_run(disp, st), XMLS_HANDLED);
    assert_string_equal(log, "a");
    assert_ptr_equal(a.payload, p);
    xml_stanza_unref(st);

    /* For an iq only the first child element is the payload. */
    log[0] = '\0';
    c.take = false;
    st = stanza("iq", "get");
    xml_node_add_element(st, st->root, "urn:other", "q");
    xml_node_add_element(st, st->root, "urn:xmpp:ping", "ping");
    assert_int_equal(xml_dispatch_run(disp, st), XMLS_PASS);
    assert_string_equal(log, "c");
    assert_null(c.payload);
    xml_stanza_unref(st);

    /* An iq with no payload at all. */
    log[0] = '\0';
    st = stanza("iq", "result");
    assert_int_equal(xml_dispatch_run(disp, st), XMLS_PASS);
    assert_string_equal(log, "c");
    xml_stanza_unref(st);
    xml_dispatch_free(disp);
}

static void collect(void *ud, const char *ns)
{
    core_buf_t *b = ud;
    core_buf_append_str(b, ns);
    core_buf_append_str(b, " ");
}

static void test_each_ns(void **state)
{
    (void)state;
    char log[8] = "";
    tag_t a = {'a', false, log, NULL};
    xml_dispatch_t *disp = xml_dispatch_new();
    xml_match_t m[] = {
        {.kind = XMLS_KIND_IQ, .types = XMLS_TYPE_GET, .payload_ns = "urn:a", .payload_name = "a"},
        {.kind = XMLS_KIND_IQ, .types = XMLS_TYPE_SET, .payload_ns = "urn:a", .payload_name = "a"},
        {.kind = XMLS_KIND_MESSAGE, .payload_ns = "urn:b"},
        {.kind = XMLS_KIND_PRESENCE, .payload_ns = "urn:a"},
        {.kind = XMLS_KIND_PRESENCE},
        {.kind = XMLS_KIND_IQ, .types = XMLS_TYPE_GET, .payload_ns = "urn:c", .payload_name = "c"},
    };
    for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
        assert_int_equal(xml_dispatch_add(disp, &m[i], handler, &a), 0);
    core_buf_t b = {0};
    xml_dispatch_each_ns(disp, collect, &b);
    core_buf_append(&b, "", 1);
    /* each once, whatever the order */
    assert_int_equal(strlen(b.data), strlen("urn:a urn:b urn:c "));
    assert_non_null(strstr(b.data, "urn:a "));
    assert_non_null(strstr(b.data, "urn:b "));
    assert_non_null(strstr(b.data, "urn:c "));
    core_buf_release(&b);
    xml_dispatch_free(disp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_bits),  cmocka_unit_test(test_order),
        cmocka_unit_test(test_type_masks), cmocka_unit_test(test_iq),
        cmocka_unit_test(test_each_ns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
