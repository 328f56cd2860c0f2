/* SPDX-License-Identifier: MIT */
/*
 * IQs the sm sends in its own name (src/sm/iq.c): the answer from the JID asked reaches the
 * callback once, an answer from anyone else does not, an answer made while sending waits for
 * the next turn of the loop, a timeout and a stop answer NULL, and the loop closes clean.
 */
#include "sm_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

typedef struct answer {
    int calls;
    bool null;
    char type[16];
    bool in_send; /* the callback ran inside sm_iq_send */
} answer_t;

static bool sending;

static void on_answer(sm_t *sm, void *arg, const xml_stanza_t *reply)
{
    answer_t *a = arg;
    a->calls++;
    a->null = reply == NULL;
    a->in_send = sending;
    if (reply != NULL)
        snprintf(a->type, sizeof(a->type), "%s", xml_stanza_type(reply));
}

static int setup(void **state)
{
    *state = sm_fixture_new(false);
    return 0;
}

static int teardown(void **state)
{
    sm_fixture_free(*state);
    return 0;
}

static xml_stanza_t *query_to(const char *to)
{
    xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(iq, iq->root, NULL, "type", "get");
    xml_node_set_attr(iq, iq->root, NULL, "to", to);
    xml_node_add_element(iq, iq->root, SM_NS_DISCO_INFO, "query");
    return iq;
}

static int send_to(sm_fixture_t *f, const char *to, answer_t *a, char *id, size_t idlen)
{
    xml_stanza_t *iq = query_to(to);
    sending = true;
    int rc = sm_iq_send(&f->sm, iq, on_answer, a);
    sending = false;
    if (rc == 0) {
        assert_string_equal(xml_stanza_from(iq), "localhost");
        snprintf(id, idlen, "%s", xml_stanza_id(iq));
    }
    xml_stanza_unref(iq);
    return rc;
}

/* What the router would hand the sm: an answer addressed to the domain. */
static void deliver(sm_fixture_t *f, const char *type, const char *from, const char *id)
{
    xml_stanza_t *r = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(r, r->root, NULL, "type", type);
    xml_node_set_attr(r, r->root, NULL, "from", from);
    xml_node_set_attr(r, r->root, NULL, "to", "localhost");
    xml_node_set_attr(r, r->root, NULL, "id", id);
    sm_deliver_input(&f->sm, r);
    xml_stanza_unref(r);
}

static void test_answer_from_the_jid_asked(void **state)
{
    sm_fixture_t *f = *state;
    answer_t a = {0};
    char id[64];
    assert_int_equal(send_to(f, "Romeo@Montague.example/orchard", &a, id, sizeof id), 0);
    /* Someone else's answer with the same id, and an unknown id: not taken. */
    deliver(f, "result", "mallory@evil.example/x", id);
    deliver(f, "result", "romeo@montague.example/orchard", "sm-unknown");
    assert_int_equal(a.calls, 0);
    /* The JID asked, prepared as the router would pass it. */
    deliver(f, "result", "romeo@montague.example/orchard", id);
    assert_int_equal(a.calls, 1);
    assert_false(a.null);
    assert_string_equal(a.type, "result");
    /* Once only. */
    deliver(f, "error", "romeo@montague.example/orchard", id);
    assert_int_equal(a.calls, 1);
}

static void test_answer_made_while_sending_waits(void **state)
{
    sm_fixture_t *f = *state;
    answer_t a = {0};
    char id[64];
    /* To the domain itself: no module takes it, so the sm answers service-unavailable at
     * once, addressed back to the domain. */
    assert_int_equal(send_to(f, "localhost", &a, id, sizeof id), 0);
    assert_int_equal(a.calls, 0);
    uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(a.calls, 1);
    assert_false(a.in_send);
    assert_string_equal(a.type, "error");
}

static void test_timeout_answers_null(void **state)
{
    sm_fixture_t *f = *state;
    f->sm.iq_timeout_ms = 50;
    answer_t a = {0}, b = {0};
    char id[64], id2[64];
    assert_int_equal(send_to(f, "juliet@capulet.example/balcony", &a, id, sizeof id), 0);
    assert_int_equal(send_to(f, "nurse@capulet.example/chamber", &b, id2, sizeof id2), 0);
    deliver(f, "result", "nurse@capulet.example/chamber", id2);
    assert_int_equal(b.calls, 1);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* returns once nothing waits: the timer is stopped */
    assert_int_equal(a.calls, 1);
    assert_true(a.null);
    /* A late answer is nobody's. */
    deliver(f, "result", "juliet@capulet.example/balcony", id);
    assert_int_equal(a.calls, 1);
}

static void test_stop_answers_null_and_refuses(void **state)
{
    sm_fixture_t *f = *state;
    answer_t a = {0}, b = {0};
    char id[64];
    assert_int_equal(send_to(f, "juliet@capulet.example/balcony", &a, id, sizeof id), 0);
    sm_iq_stop(&f->sm);
    assert_int_equal(a.calls, 1);
    assert_true(a.null);
    f->sm.stopping = true;
    assert_int_equal(send_to(f, "juliet@capulet.example/balcony", &b, id, sizeof id), -ECANCELED);
    assert_int_equal(b.calls, 0);
}

static void test_refuses_what_is_not_a_request(void **state)
{
    sm_fixture_t *f = *state;
    answer_t a = {0};
    xml_stanza_t *iq = query_to("juliet@capulet.example");
    xml_node_set_attr(iq, iq->root, NULL, "type", "result");
    assert_int_equal(sm_iq_send(&f->sm, iq, on_answer, &a), -EINVAL);
    xml_node_set_attr(iq, iq->root, NULL, "type", "get");
    xml_node_set_attr(iq, iq->root, NULL, "to", NULL);
    assert_int_equal(sm_iq_send(&f->sm, iq, on_answer, &a), -EINVAL);
    xml_node_set_attr(iq, iq->root, NULL, "to", "a@b@c");
    assert_int_equal(sm_iq_send(&f->sm, iq, on_answer, &a), -EINVAL);
    xml_stanza_unref(iq);
    assert_int_equal(a.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_answer_from_the_jid_asked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_answer_made_while_sending_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_answers_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_answers_null_and_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_what_is_not_a_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
