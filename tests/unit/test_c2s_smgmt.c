/* SPDX-License-Identifier: MIT */
/* XEP-0198 counters (wrap-around at 2^32, h too high) and XEP-0352 holding and coalescing. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static xml_stanza_t *stanza(const char *kind, const char *from, const char *type, const char *id)
{
    xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, kind);
    xml_node_set_attr(st, st->root, NULL, "from", from);
    xml_node_set_attr(st, st->root, NULL, "to", "romeo@localhost/orchard");
    if (type != NULL)
        xml_node_set_attr(st, st->root, NULL, "type", type);
    if (id != NULL)
        xml_node_set_attr(st, st->root, NULL, "id", id);
    return st;
}

static xml_stanza_t *message_with(const char *id, const char *ns, const char *name)
{
    xml_stanza_t *st = stanza("message", "juliet@localhost/balcony", "chat", id);
    xml_node_add_element(st, st->root, ns, name);
    return st;
}

/* ---- XEP-0198 §4 counters ---- */

static void push_n(c2s_smq_t *q, xml_stanza_t *st, unsigned n, bool sent)
{
    for (unsigned i = 0; i < n; i++)
        c2s_smq_push(q, st, 1000 + i, sent);
}

static void test_counts_and_acks(void **state)
{
    (void)state;
    c2s_smq_t q = {0};
    xml_stanza_t *st = stanza("message", "juliet@localhost/balcony", "chat", "m1");
    assert_int_equal(c2s_smq_sent(&q), 0);
    push_n(&q, st, 20, true);
    assert_int_equal(c2s_smq_sent(&q), 20);
    assert_int_equal(q.len, 20);
    assert_true(q.bytes > 20 * 10);
    /* An ack drops what it acknowledges, oldest first; the same h again changes nothing. */
    assert_int_equal(c2s_smq_ack(&q, 7), 0);
    assert_int_equal(q.len, 13);
    assert_int_equal(c2s_smq_at(&q, 0)->at, 1007);
    assert_int_equal(c2s_smq_ack(&q, 7), 0);
    assert_int_equal(q.len, 13);
    /* §6: more than was sent is refused, and nothing changes. */
    assert_int_equal(c2s_smq_ack(&q, 21), -ERANGE);
    assert_int_equal(q.len, 13);
    assert_int_equal(q.acked, 7);
    /* An h behind the last one reads as far ahead (modulo 2^32): too high as well. */
    assert_int_equal(c2s_smq_ack(&q, 6), -ERANGE);
    assert_int_equal(c2s_smq_ack(&q, 20), 0);
    assert_int_equal(q.len, 0);
    assert_int_equal(q.bytes, 0);
    xml_stanza_unref(st);
    c2s_smq_clear(&q);
}

static void test_wraps_at_2_32(void **state)
{
    (void)state;
    c2s_smq_t q = {0};
    xml_stanza_t *st = stanza("presence", "juliet@localhost/balcony", NULL, NULL);
    /* As after 2^32 - 3 stanzas acknowledged: the counter is about to wrap. */
    q.acked = UINT32_MAX - 2;
    q.handled = UINT32_MAX;
    push_n(&q, st, 5, true);
    /* §4: h goes from 2^32-1 back to zero, not to 2^32. */
    assert_int_equal(c2s_smq_sent(&q), 2);
    assert_int_equal(c2s_smq_ack(&q, UINT32_MAX), 0);
    assert_int_equal(q.len, 3);
    assert_int_equal(c2s_smq_ack(&q, 1), 0);
    assert_int_equal(q.len, 1);
    assert_int_equal(c2s_smq_ack(&q, 3), -ERANGE);
    assert_int_equal(c2s_smq_ack(&q, 2), 0);
    assert_int_equal(q.len, 0);
    q.handled++;
    assert_int_equal(q.handled, 0);
    xml_stanza_unref(st);
    c2s_smq_clear(&q);
}

static void test_unsent_cannot_be_acked(void **state)
{
    (void)state;
    c2s_smq_t q = {0};
    xml_stanza_t *st = stanza("message", "juliet@localhost/balcony", "chat", "m1");
    push_n(&q, st, 3, true);
    /* Queued while the client was away: not sent, so not acknowledgeable (until resent). */
    push_n(&q, st, 2, false);
    assert_int_equal(q.unsent, 2);
    assert_int_equal(c2s_smq_sent(&q), 3);
    assert_int_equal(c2s_smq_ack(&q, 4), -ERANGE);
    assert_int_equal(c2s_smq_ack(&q, 2), 0);
    assert_int_equal(q.len, 3);
    assert_int_equal(q.unsent, 2);
    uint64_t at = 0;
    xml_stanza_unref(c2s_smq_shift(&q, &at));
    assert_int_equal(at, 1002);
    xml_stanza_unref(c2s_smq_shift(&q, &at));
    assert_int_equal(q.unsent, 1);
    xml_stanza_unref(st);
    c2s_smq_clear(&q);
}

static void test_ring_grows_in_order(void **state)
{
    (void)state;
    c2s_smq_t q = {0};
    xml_stanza_t *st = stanza("message", "juliet@localhost/balcony", "chat", "m1");
    uint32_t h = 0;
    uint64_t t = 0;
    /* Pushes and acks interleaved, so the ring wraps and grows while it holds entries. */
    for (unsigned round = 0; round < 50; round++) {
        for (unsigned i = 0; i < 7; i++)
            c2s_smq_push(&q, st, t++, true);
        h += 5;
        assert_int_equal(c2s_smq_ack(&q, h), 0);
    }
    assert_int_equal(q.len, 100);
    for (size_t i = 0; i < q.len; i++)
        assert_int_equal(c2s_smq_at(&q, i)->at, 250 + i);
    xml_stanza_unref(st);
    c2s_smq_clear(&q);
    assert_null(q.v);
}

static void test_parse_h(void **state)
{
    (void)state;
    uint32_t h = 7;
    assert_int_equal(c2s_smq_parse_h("0", &h), 0);
    assert_int_equal(h, 0);
    assert_int_equal(c2s_smq_parse_h("4294967295", &h), 0);
    assert_int_equal(h, UINT32_MAX);
    assert_int_equal(c2s_smq_parse_h("4294967296", &h), -EINVAL);
    assert_int_equal(c2s_smq_parse_h("99999999999", &h), -EINVAL);
    assert_int_equal(c2s_smq_parse_h("-1", &h), -EINVAL);
    assert_int_equal(c2s_smq_parse_h("1x", &h), -EINVAL);
    assert_int_equal(c2s_smq_parse_h("", &h), -EINVAL);
    assert_int_equal(c2s_smq_parse_h(NULL, &h), -EINVAL);
}

/* ---- XEP-0352 ---- */

static void own_jid(jid_t *j)
{
    static const char full[] = "romeo@localhost/orchard";
    *j = (jid_t){.full = core_strdup(full),
                 .full_len = strlen(full),
                 .node_len = 5,
                 .domain_off = 6,
                 .domain_len = 9,
                 .bare_len = 15,
                 .res_len = 7};
}

static void test_csi_classify(void **state)
{
    (void)state;
    jid_t own;
    own_jid(&own);
    struct {
        xml_stanza_t *st;
        c2s_csi_class_t want;
    } cases[] = {
        {stanza("presence", "juliet@localhost/balcony", NULL, NULL), C2S_CSI_LATEST},
        {stanza("presence", "juliet@localhost/balcony", "unavailable", NULL), C2S_CSI_LATEST},
        {stanza("presence", "juliet@localhost", "subscribe", NULL), C2S_CSI_URGENT},
        {stanza("presence", "juliet@localhost/balcony", "error", NULL), C2S_CSI_URGENT},
        /* The user's own presence (RFC 6121 §4.2.2) and its other resources'. */
        {stanza("presence", "romeo@localhost/orchard", NULL, NULL), C2S_CSI_URGENT},
        {stanza("presence", "romeo@localhost/garden", NULL, NULL), C2S_CSI_URGENT},
        {stanza("presence", "romeo@localhostx/x", NULL, NULL), C2S_CSI_LATEST},
        {stanza("iq", "juliet@localhost/balcony", "get", "q1"), C2S_CSI_URGENT},
        {stanza("iq", "localhost", "result", "q2"), C2S_CSI_URGENT},
        {message_with("c1", "http://jabber.org/protocol/chatstates", "composing"), C2S_CSI_HOLD},
        {message_with("r1", "urn:xmpp:receipts", "received"), C2S_CSI_HOLD},
        {message_with("k1", "urn:xmpp:chat-markers:0", "displayed"), C2S_CSI_HOLD},
        {message_with("t1", XMLS_NS_CONTENT, "thread"), C2S_CSI_HOLD},
        {message_with("b1", XMLS_NS_CONTENT, "body"), C2S_CSI_URGENT},
        {message_with("s1", XMLS_NS_CONTENT, "subject"), C2S_CSI_URGENT},
        {message_with("x1", "urn:example:unknown", "x"), C2S_CSI_URGENT},
        {stanza("message", "juliet@localhost/balcony", "error", "e1"), C2S_CSI_URGENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (c2s_csi_classify(cases[i].st, &own) != cases[i].want)
            fail_msg("case %zu (%s): got %d, want %d", i, xml_stanza_bytes(cases[i].st, NULL),
                     (int)c2s_csi_classify(cases[i].st, &own), (int)cases[i].want);
        xml_stanza_unref(cases[i].st);
    }
    /* A chat state with a body is a message: urgent. */
    xml_stanza_t *m = message_with("c2", "http://jabber.org/protocol/chatstates", "active");
    xml_node_add_element(m, m->root, XMLS_NS_CONTENT, "body");
    assert_int_equal(c2s_csi_classify(m, &own), C2S_CSI_URGENT);
    xml_stanza_unref(m);
    jid_clear(&own);
}

static const char *from_of(const c2s_csi_t *q, size_t i)
{
    return xml_stanza_from(q->held[i]);
}

static void test_csi_coalesces_presence_per_sender(void **state)
{
    (void)state;
    c2s_csi_t q = {0};
    xml_stanza_t *p1 = stanza("presence", "juliet@localhost/balcony", NULL, "p1");
    xml_stanza_t *p2 = stanza("presence", "nurse@localhost/kitchen", NULL, "p2");
    xml_stanza_t *c1 = message_with("c1", "http://jabber.org/protocol/chatstates", "composing");
    xml_stanza_t *p3 = stanza("presence", "juliet@localhost/balcony", "unavailable", "p3");
    xml_stanza_t *p4 = stanza("presence", "juliet@localhost/tomb", NULL, "p4");
    xml_stanza_t *c2 = message_with("c2", "http://jabber.org/protocol/chatstates", "paused");
    c2s_csi_add(&q, p1, C2S_CSI_LATEST);
    c2s_csi_add(&q, p2, C2S_CSI_LATEST);
    c2s_csi_add(&q, c1, C2S_CSI_HOLD);
    /* A newer presence from the same full JID replaces the older one and goes last. */
    c2s_csi_add(&q, p3, C2S_CSI_LATEST);
    /* Another resource of the same contact is another sender. */
    c2s_csi_add(&q, p4, C2S_CSI_LATEST);
    /* Messages from that sender are not presence: both chat states stay, in order. */
    c2s_csi_add(&q, c2, C2S_CSI_HOLD);
    assert_int_equal(q.n, 5);
    const char *want[] = {"p2", "c1", "p3", "p4", "c2"};
    for (size_t i = 0; i < q.n; i++)
        assert_string_equal(xml_stanza_id(q.held[i]), want[i]);
    assert_string_equal(from_of(&q, 2), "juliet@localhost/balcony");
    /* The held queue keeps its own references. */
    assert_int_equal(p3->refs, 2);
    assert_int_equal(p1->refs, 1);
    xml_stanza_t *all[] = {p1, p2, c1, p3, p4, c2};
    for (size_t i = 0; i < 6; i++)
        xml_stanza_unref(all[i]);
    c2s_csi_clear(&q);
    assert_int_equal(q.n, 0);
    assert_null(q.held);
}

/* ---- XEP-0199 keepalive ---- */

static void test_keepalive_period(void **state)
{
    (void)state;
    /* A quarter of the shorter duration, within 50 ms and 5 s (docs/c2s.md). */
    assert_int_equal(c2s_keepalive_period(120000, 30000), 5000);
    assert_int_equal(c2s_keepalive_period(400, 800), 100);
    assert_int_equal(c2s_keepalive_period(8000, 2000), 500);
    assert_int_equal(c2s_keepalive_period(100, 100), 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_acks),
        cmocka_unit_test(test_wraps_at_2_32),
        cmocka_unit_test(test_unsent_cannot_be_acked),
        cmocka_unit_test(test_ring_grows_in_order),
        cmocka_unit_test(test_parse_h),
        cmocka_unit_test(test_csi_classify),
        cmocka_unit_test(test_csi_coalesces_presence_per_sender),
        cmocka_unit_test(test_keepalive_period),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
