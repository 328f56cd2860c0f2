/* SPDX-License-Identifier: MIT */
/* The per-source limits: registrations (N per sliding window), failed authentications
 * (counted, with the delay schedule), open connections per address; keys and bounds. */
#include "c2s/internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static const uint8_t a[] = {192, 0, 2, 1};
static const uint8_t b[] = {192, 0, 2, 2};

static bool take(c2s_ratelimit_t *rl, const uint8_t *key, uint64_t now)
{
    return c2s_ratelimit_check(rl, key, 4, now, true);
}

static void test_per_window(void **state)
{
    (void)state;
    c2s_ratelimit_t rl;
    c2s_ratelimit_init(&rl, 3, 600000, 16);
    assert_true(take(&rl, a, 1000));
    assert_true(take(&rl, a, 2000));
    assert_true(take(&rl, a, 3000));
    /* The fourth within the window is refused, and a refusal is not counted. */
    assert_false(take(&rl, a, 4000));
    assert_false(c2s_ratelimit_check(&rl, a, 4, 600999, false));
    /* Another source has its own count. */
    assert_true(take(&rl, b, 4000));
    /* A window after the first, one slot is free again: the window slides. */
    assert_true(c2s_ratelimit_check(&rl, a, 4, 601000, false));
    assert_true(take(&rl, a, 601000));
    assert_false(take(&rl, a, 601500));
    assert_true(take(&rl, a, 602000));
    c2s_ratelimit_free(&rl);
}

static void test_check_without_take(void **state)
{
    (void)state;
    c2s_ratelimit_t rl;
    c2s_ratelimit_init(&rl, 1, 1000, 16);
    for (int i = 0; i < 5; i++)
        assert_true(c2s_ratelimit_check(&rl, a, 4, 10, false));
    assert_int_equal(c2s_ratelimit_sources(&rl), 0);
    assert_true(take(&rl, a, 10));
    assert_false(take(&rl, a, 1009));
    assert_true(take(&rl, a, 1010));
    c2s_ratelimit_free(&rl);
}

static void test_expiry_and_bound(void **state)
{
    (void)state;
    c2s_ratelimit_t rl;
    c2s_ratelimit_init(&rl, 1, 1000, 4);
    uint8_t key[4] = {10, 0, 0, 0};
    for (uint8_t i = 0; i < 4; i++) {
        key[3] = i;
        assert_true(take(&rl, key, 100 + i));
    }
    assert_int_equal(c2s_ratelimit_sources(&rl), 4);
    /* Full of live sources: a new one pushes out the one idle longest (10.0.0.0). */
    key[3] = 9;
    assert_true(take(&rl, key, 200));
    assert_int_equal(c2s_ratelimit_sources(&rl), 4);
    key[3] = 0;
    assert_true(take(&rl, key, 300));
    key[3] = 3;
    assert_false(take(&rl, key, 300));
    /* A window after its last event a source is forgotten. */
    assert_true(c2s_ratelimit_check(&rl, key, 4, 5000, false));
    assert_int_equal(c2s_ratelimit_sources(&rl), 0);
    c2s_ratelimit_free(&rl);
}

static size_t key_of(const char *addr, uint8_t *out)
{
    struct sockaddr_storage ss = {0};
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, addr, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, addr, &in->sin_addr), 1);
    }
    return c2s_ratelimit_key((const struct sockaddr *)&ss, out);
}

static void test_sources(void **state)
{
    (void)state;
    uint8_t k1[C2S_RATE_KEY_MAX], k2[C2S_RATE_KEY_MAX];
    /* IPv4, and the same address seen by a dual-stack listener. */
    assert_int_equal(key_of("127.0.0.1", k1), 4);
    assert_int_equal(key_of("::ffff:127.0.0.1", k2), 4);
    assert_memory_equal(k1, k2, 4);
    /* An IPv6 /64 is one source; the next /64 is another. */
    assert_int_equal(key_of("2001:db8:1:2::1", k1), 8);
    assert_int_equal(key_of("2001:db8:1:2:ffff:ffff:ffff:ffff", k2), 8);
    assert_memory_equal(k1, k2, 8);
    assert_int_equal(key_of("2001:db8:1:3::1", k2), 8);
    assert_memory_not_equal(k1, k2, 8);
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_int_equal(c2s_ratelimit_key(&other, k1), 0);
    /* A /64 exhausts its count whichever of its addresses asks. */
    c2s_ratelimit_t rl;
    c2s_ratelimit_init(&rl, 1, 60000, 16);
    assert_int_equal(key_of("2001:db8::1", k1), 8);
    assert_int_equal(key_of("2001:db8::2", k2), 8);
    assert_true(c2s_ratelimit_check(&rl, k1, 8, 1, true));
    assert_false(c2s_ratelimit_check(&rl, k2, 8, 2, true));
    c2s_ratelimit_free(&rl);
}

static void test_note_and_count(void **state)
{
    (void)state;
    c2s_ratelimit_t rl;
    c2s_ratelimit_init(&rl, 3, 1000, 16);
    uint64_t last = 0;
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 0, &last), 0);
    assert_int_equal(c2s_ratelimit_note(&rl, a, 4, 10), 1);
    assert_int_equal(c2s_ratelimit_note(&rl, a, 4, 20), 2);
    assert_int_equal(c2s_ratelimit_note(&rl, a, 4, 30), 3);
    /* Past per, an event is still recorded: the count stays at per, the last time moves. */
    assert_int_equal(c2s_ratelimit_note(&rl, a, 4, 40), 3);
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 50, &last), 3);
    assert_int_equal(last, 40);
    /* Events a window old drop out one by one (10 went for 40; then 20, 30 and 40). */
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 1025, &last), 2);
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 1035, &last), 1);
    assert_int_equal(last, 40);
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 1040, &last), 0);
    assert_int_equal(c2s_ratelimit_sources(&rl), 0);
    /* Forgetting a source drops all it had. */
    c2s_ratelimit_note(&rl, a, 4, 2000);
    c2s_ratelimit_note(&rl, b, 4, 2000);
    c2s_ratelimit_forget(&rl, a, 4);
    assert_int_equal(c2s_ratelimit_count(&rl, a, 4, 2001, &last), 0);
    assert_int_equal(c2s_ratelimit_count(&rl, b, 4, 2001, &last), 1);
    c2s_ratelimit_free(&rl);
}

static void test_authdelay_schedule(void **state)
{
    (void)state;
    /* 1 s doubled per failure, at most 15 s: 0, 1, 2, 4, 8, 15, 15. */
    static const uint64_t want[] = {0, 1000, 2000, 4000, 8000, 15000, 15000, 15000};
    for (unsigned n = 0; n < sizeof(want) / sizeof(want[0]); n++)
        assert_int_equal(c2s_authdelay_ms(1000, 15000, n), want[n]);
    /* The fifth failure reaches the maximum: five are worth remembering. */
    assert_int_equal(c2s_authdelay_slots(1000, 15000), 5);
    assert_int_equal(c2s_authdelay_slots(1000, 1000), 1);
    assert_int_equal(c2s_authdelay_slots(1000, 1024000), 11);
    /* No delay configured: none, and one slot. */
    assert_int_equal(c2s_authdelay_ms(0, 15000, 9), 0);
    assert_int_equal(c2s_authdelay_slots(0, 0), 1);
    /* Many failures do not overflow: the doubling stops at the maximum. */
    assert_int_equal(c2s_authdelay_ms(60000, 600000, 4000000000u), 600000);
    assert_int_equal(c2s_authdelay_slots(1, 600000), 21);
}

static void test_srclimit(void **state)
{
    (void)state;
    c2s_srclimit_t l;
    c2s_srclimit_init(&l, 2);
    assert_true(c2s_srclimit_take(&l, a, 4));
    assert_true(c2s_srclimit_take(&l, a, 4));
    /* A third from the same address is refused, and not counted. */
    assert_false(c2s_srclimit_take(&l, a, 4));
    assert_int_equal(c2s_srclimit_count(&l, a, 4), 2);
    /* Another address has its own count. */
    assert_true(c2s_srclimit_take(&l, b, 4));
    assert_int_equal(c2s_srclimit_sources(&l), 2);
    /* A close makes room again; a source with none left is not remembered. */
    c2s_srclimit_release(&l, a, 4);
    assert_true(c2s_srclimit_take(&l, a, 4));
    c2s_srclimit_release(&l, b, 4);
    assert_int_equal(c2s_srclimit_sources(&l), 1);
    c2s_srclimit_release(&l, a, 4);
    c2s_srclimit_release(&l, a, 4);
    assert_int_equal(c2s_srclimit_sources(&l), 0);
    assert_int_equal(c2s_srclimit_count(&l, a, 4), 0);
    /* An IPv6 /64 is one source (the keys of test_sources). */
    uint8_t k1[C2S_RATE_KEY_MAX], k2[C2S_RATE_KEY_MAX];
    size_t n1 = key_of("2001:db8:5::1", k1), n2 = key_of("2001:db8:5::beef", k2);
    assert_true(c2s_srclimit_take(&l, k1, n1));
    assert_true(c2s_srclimit_take(&l, k2, n2));
    assert_false(c2s_srclimit_take(&l, k1, n1));
    c2s_srclimit_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_window),       cmocka_unit_test(test_check_without_take),
        cmocka_unit_test(test_expiry_and_bound), cmocka_unit_test(test_sources),
        cmocka_unit_test(test_note_and_count),   cmocka_unit_test(test_authdelay_schedule),
        cmocka_unit_test(test_srclimit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
