/* SPDX-License-Identifier: MIT */
/*
 * The RFC 6121 subscription state machine (src/sm/subscription.c): every defined state of
 * Appendix A against every subscription stanza, outbound (A.2) and inbound (A.3), plus the
 * pre-approval rules of §3.4. Each row is: state before, stanza, state after, whether the
 * stanza goes on (routed to the contact, or delivered to the user), and the server's own
 * answers.
 */
#include "sm/subscription.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

/* The nine states of RFC 6121 Appendix A.1, plus "not in the roster". */
typedef enum st {
    ABSENT, /* no roster item, nothing pending */
    NONE,
    NONE_PO, /* None + Pending Out */
    NONE_PI, /* None + Pending In (kept without a roster item too) */
    NONE_POPI, /* None + Pending Out/In */
    TO,
    TO_PI,
    FROM,
    FROM_PO,
    BOTH,
    ST_COUNT,
} st_t;

static const char *const st_names[] = {
    "absent", "None", "None+PO", "None+PI", "None+PO+PI", "To", "To+PI", "From", "From+PO", "Both",
};

static sm_sub_state_t make(st_t s)
{
    sm_sub_state_t r = {.in_roster = s != ABSENT};
    switch (s) {
    case ABSENT:
    case NONE:
        break;
    case NONE_PO:
        r.pending_out = true;
        break;
    case NONE_PI:
        r.pending_in = true;
        break;
    case NONE_POPI:
        r.pending_out = r.pending_in = true;
        break;
    case TO:
        r.sub = STORAGE_SUB_TO;
        break;
    case TO_PI:
        r.sub = STORAGE_SUB_TO;
        r.pending_in = true;
        break;
    case FROM:
        r.sub = STORAGE_SUB_FROM;
        break;
    case FROM_PO:
        r.sub = STORAGE_SUB_FROM;
        r.pending_out = true;
        break;
    case BOTH:
        r.sub = STORAGE_SUB_BOTH;
        break;
    case ST_COUNT:
        break;
    }
    return r;
}

/* The state a result is in; pending_in without a roster item counts as None + Pending In. */
static st_t classify(const sm_sub_state_t *s)
{
    if (!s->in_roster)
        return s->pending_in ? NONE_PI : ABSENT;
    for (int i = NONE; i < ST_COUNT; i++) {
        sm_sub_state_t c = make((st_t)i);
        if (c.sub == s->sub && c.pending_out == s->pending_out && c.pending_in == s->pending_in)
            return (st_t)i;
    }
    return ST_COUNT;
}

typedef struct row {
    st_t from;
    sm_sub_event_t ev;
    st_t to;
    bool goes_on; /* routed (outbound) or delivered (inbound) */
} row_t;

static void check(const row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sm_sub_state_t cur = make(rows[i].from);
        sm_sub_outcome_t o;
        sm_sub_apply(&cur, rows[i].ev, &o);
        st_t got = classify(&o.next);
        if (got != rows[i].to || o.route != rows[i].goes_on)
            fprintf(stderr, "row %zu: %s + event %d -> %s (route %d), want %s (route %d)\n", i,
                    st_names[rows[i].from], rows[i].ev, got < ST_COUNT ? st_names[got] : "?",
                    o.route, st_names[rows[i].to], rows[i].goes_on);
        assert_int_equal(got, rows[i].to);
        assert_int_equal(o.route, rows[i].goes_on);
        /* A roster push exactly when the item changed. */
        bool changed = cur.in_roster != o.next.in_roster || cur.sub != o.next.sub ||
            cur.pending_out != o.next.pending_out || cur.approved != o.next.approved;
        assert_int_equal(o.roster_changed, changed);
        assert_int_equal(o.pending_in_changed, cur.pending_in != o.next.pending_in);
    }
}

/* A.2.1: the user sends subscribe. Always routed (§3.1.2); the item exists afterwards. */
static void test_out_subscribe(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {ABSENT, SM_SUB_OUT_SUBSCRIBE, NONE_PO, true},
        {NONE, SM_SUB_OUT_SUBSCRIBE, NONE_PO, true},
        {NONE_PO, SM_SUB_OUT_SUBSCRIBE, NONE_PO, true},
        {NONE_PI, SM_SUB_OUT_SUBSCRIBE, NONE_POPI, true},
        {NONE_POPI, SM_SUB_OUT_SUBSCRIBE, NONE_POPI, true},
        {TO, SM_SUB_OUT_SUBSCRIBE, TO, true},
        {TO_PI, SM_SUB_OUT_SUBSCRIBE, TO_PI, true},
        {FROM, SM_SUB_OUT_SUBSCRIBE, FROM_PO, true},
        {FROM_PO, SM_SUB_OUT_SUBSCRIBE, FROM_PO, true},
        {BOTH, SM_SUB_OUT_SUBSCRIBE, BOTH, true},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
}

/* A.2.2: the user sends unsubscribe: it no longer wants the contact's presence. */
static void test_out_unsubscribe(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {NONE, SM_SUB_OUT_UNSUBSCRIBE, NONE, true},
        {NONE_PO, SM_SUB_OUT_UNSUBSCRIBE, NONE, true},
        {NONE_PI, SM_SUB_OUT_UNSUBSCRIBE, NONE_PI, true},
        {NONE_POPI, SM_SUB_OUT_UNSUBSCRIBE, NONE_PI, true},
        {TO, SM_SUB_OUT_UNSUBSCRIBE, NONE, true},
        {TO_PI, SM_SUB_OUT_UNSUBSCRIBE, NONE_PI, true},
        {FROM, SM_SUB_OUT_UNSUBSCRIBE, FROM, true},
        {FROM_PO, SM_SUB_OUT_UNSUBSCRIBE, FROM, true},
        {BOTH, SM_SUB_OUT_UNSUBSCRIBE, FROM, true},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
}

/* A.2.3: the user approves (subscribed). Without a request pending it is a pre-approval,
 * checked separately; with one, the contact gets a subscription from the user. */
static void test_out_subscribed(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {NONE_PI, SM_SUB_OUT_SUBSCRIBED, FROM, true},
        {NONE_POPI, SM_SUB_OUT_SUBSCRIBED, FROM_PO, true},
        {TO_PI, SM_SUB_OUT_SUBSCRIBED, BOTH, true},
        {FROM, SM_SUB_OUT_SUBSCRIBED, FROM, false},
        {FROM_PO, SM_SUB_OUT_SUBSCRIBED, FROM_PO, false},
        {BOTH, SM_SUB_OUT_SUBSCRIBED, BOTH, false},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
    /* The newly subscribed contact gets the user's presence (§3.1.5). */
    sm_sub_state_t cur = make(NONE_PI);
    sm_sub_outcome_t o;
    sm_sub_apply(&cur, SM_SUB_OUT_SUBSCRIBED, &o);
    assert_true(o.send_available);
}

/* A.2.4: the user cancels or denies (unsubscribed). */
static void test_out_unsubscribed(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {NONE, SM_SUB_OUT_UNSUBSCRIBED, NONE, false},
        {NONE_PO, SM_SUB_OUT_UNSUBSCRIBED, NONE_PO, false},
        {NONE_PI, SM_SUB_OUT_UNSUBSCRIBED, NONE, true},
        {NONE_POPI, SM_SUB_OUT_UNSUBSCRIBED, NONE_PO, true},
        {TO, SM_SUB_OUT_UNSUBSCRIBED, TO, false},
        {TO_PI, SM_SUB_OUT_UNSUBSCRIBED, TO, true},
        {FROM, SM_SUB_OUT_UNSUBSCRIBED, NONE, true},
        {FROM_PO, SM_SUB_OUT_UNSUBSCRIBED, NONE_PO, true},
        {BOTH, SM_SUB_OUT_UNSUBSCRIBED, TO, true},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
    /* Cancelling a subscription: the contact sees the user go unavailable (§3.2.2). */
    sm_sub_state_t cur = make(BOTH);
    sm_sub_outcome_t o;
    sm_sub_apply(&cur, SM_SUB_OUT_UNSUBSCRIBED, &o);
    assert_true(o.send_unavailable);
}

/* A.3.1: a contact asks to subscribe. Already subscribed: answered for the user. */
static void test_in_subscribe(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {ABSENT, SM_SUB_IN_SUBSCRIBE, NONE_PI, true},
        {NONE, SM_SUB_IN_SUBSCRIBE, NONE_PI, true},
        {NONE_PO, SM_SUB_IN_SUBSCRIBE, NONE_POPI, true},
        {NONE_PI, SM_SUB_IN_SUBSCRIBE, NONE_PI, false},
        {NONE_POPI, SM_SUB_IN_SUBSCRIBE, NONE_POPI, false},
        {TO, SM_SUB_IN_SUBSCRIBE, TO_PI, true},
        {TO_PI, SM_SUB_IN_SUBSCRIBE, TO_PI, false},
        {FROM, SM_SUB_IN_SUBSCRIBE, FROM, false},
        {FROM_PO, SM_SUB_IN_SUBSCRIBE, FROM_PO, false},
        {BOTH, SM_SUB_IN_SUBSCRIBE, BOTH, false},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
    static const st_t answered[] = {FROM, FROM_PO, BOTH};
    for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++) {
        sm_sub_state_t cur = make(answered[i]);
        sm_sub_outcome_t o;
        sm_sub_apply(&cur, SM_SUB_IN_SUBSCRIBE, &o);
        assert_true(o.auto_reply_subscribed);
    }
    /* §3.1.3: a request from someone not in the roster creates no roster item. */
    sm_sub_state_t cur = make(ABSENT);
    sm_sub_outcome_t o;
    sm_sub_apply(&cur, SM_SUB_IN_SUBSCRIBE, &o);
    assert_false(o.next.in_roster);
    assert_false(o.auto_reply_subscribed);
}

/* A.3.2: a contact unsubscribes from the user's presence. */
static void test_in_unsubscribe(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {NONE, SM_SUB_IN_UNSUBSCRIBE, NONE, false},
        {NONE_PO, SM_SUB_IN_UNSUBSCRIBE, NONE_PO, false},
        {NONE_PI, SM_SUB_IN_UNSUBSCRIBE, NONE, true},
        {NONE_POPI, SM_SUB_IN_UNSUBSCRIBE, NONE_PO, true},
        {TO, SM_SUB_IN_UNSUBSCRIBE, TO, false},
        {TO_PI, SM_SUB_IN_UNSUBSCRIBE, TO, true},
        {FROM, SM_SUB_IN_UNSUBSCRIBE, NONE, true},
        {FROM_PO, SM_SUB_IN_UNSUBSCRIBE, NONE_PO, true},
        {BOTH, SM_SUB_IN_UNSUBSCRIBE, TO, true},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
}

/* A.3.3: a contact approves the user's request; without one pending it is ignored. */
static void test_in_subscribed(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {ABSENT, SM_SUB_IN_SUBSCRIBED, ABSENT, false},
        {NONE, SM_SUB_IN_SUBSCRIBED, NONE, false},
        {NONE_PO, SM_SUB_IN_SUBSCRIBED, TO, true},
        {NONE_PI, SM_SUB_IN_SUBSCRIBED, NONE_PI, false},
        {NONE_POPI, SM_SUB_IN_SUBSCRIBED, TO_PI, true},
        {TO, SM_SUB_IN_SUBSCRIBED, TO, false},
        {TO_PI, SM_SUB_IN_SUBSCRIBED, TO_PI, false},
        {FROM, SM_SUB_IN_SUBSCRIBED, FROM, false},
        {FROM_PO, SM_SUB_IN_SUBSCRIBED, BOTH, true},
        {BOTH, SM_SUB_IN_SUBSCRIBED, BOTH, false},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
}

/* A.3.4: a contact denies the user's request or cancels the user's subscription. */
static void test_in_unsubscribed(void **state)
{
    (void)state;
    static const row_t rows[] = {
        {NONE, SM_SUB_IN_UNSUBSCRIBED, NONE, false},
        {NONE_PO, SM_SUB_IN_UNSUBSCRIBED, NONE, true},
        {NONE_PI, SM_SUB_IN_UNSUBSCRIBED, NONE_PI, false},
        {NONE_POPI, SM_SUB_IN_UNSUBSCRIBED, NONE_PI, true},
        {TO, SM_SUB_IN_UNSUBSCRIBED, NONE, true},
        {TO_PI, SM_SUB_IN_UNSUBSCRIBED, NONE_PI, true},
        {FROM, SM_SUB_IN_UNSUBSCRIBED, FROM, false},
        {FROM_PO, SM_SUB_IN_UNSUBSCRIBED, FROM, true},
        {BOTH, SM_SUB_IN_UNSUBSCRIBED, FROM, true},
    };
    check(rows, sizeof(rows) / sizeof(rows[0]));
}

/* §3.4: pre-approval, then the contact's request is approved by the server at once. */
static void test_preapproval(void **state)
{
    (void)state;
    sm_sub_outcome_t o;
    /* Not in the roster: subscribed creates the item, approved, and is not routed. */
    sm_sub_state_t cur = make(ABSENT);
    sm_sub_apply(&cur, SM_SUB_OUT_SUBSCRIBED, &o);
    assert_true(o.next.in_roster);
    assert_true(o.next.approved);
    assert_int_equal(o.next.sub, STORAGE_SUB_NONE);
    assert_false(o.route);
    assert_true(o.roster_changed);
    /* The contact then asks: From, approval used up, answered for the user, not delivered. */
    cur = o.next;
    sm_sub_apply(&cur, SM_SUB_IN_SUBSCRIBE, &o);
    assert_int_equal(o.next.sub, STORAGE_SUB_FROM);
    assert_false(o.next.approved);
    assert_true(o.auto_reply_subscribed);
    assert_false(o.route);
    assert_true(o.send_available);
    /* Pre-approving while subscribed to: To becomes To + approved; cancelling undoes it. */
    cur = make(TO);
    sm_sub_apply(&cur, SM_SUB_OUT_SUBSCRIBED, &o);
    assert_true(o.next.approved);
    cur = o.next;
    sm_sub_apply(&cur, SM_SUB_OUT_UNSUBSCRIBED, &o);
    assert_false(o.next.approved);
    assert_true(o.roster_changed);
    assert_false(o.route);
}

static void test_helpers(void **state)
{
    (void)state;
    assert_false(sm_sub_has_from(STORAGE_SUB_NONE));
    assert_false(sm_sub_has_from(STORAGE_SUB_TO));
    assert_true(sm_sub_has_from(STORAGE_SUB_FROM));
    assert_true(sm_sub_has_from(STORAGE_SUB_BOTH));
    assert_false(sm_sub_has_to(STORAGE_SUB_NONE));
    assert_true(sm_sub_has_to(STORAGE_SUB_TO));
    assert_false(sm_sub_has_to(STORAGE_SUB_FROM));
    assert_true(sm_sub_has_to(STORAGE_SUB_BOTH));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_subscribe),  cmocka_unit_test(test_out_unsubscribe),
        cmocka_unit_test(test_out_subscribed), cmocka_unit_test(test_out_unsubscribed),
        cmocka_unit_test(test_in_subscribe),   cmocka_unit_test(test_in_unsubscribe),
        cmocka_unit_test(test_in_subscribed),  cmocka_unit_test(test_in_unsubscribed),
        cmocka_unit_test(test_preapproval),    cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
