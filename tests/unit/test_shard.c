/* SPDX-License-Identifier: MIT */
/* The shard hash (link_shard_pick): the values tests/e2e/test_im_shards.py computes in Python. */
#include "link/link.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static long pick(const char *const *names, size_t n, const char *bare)
{
    return link_shard_pick(names, n, bare, strlen(bare));
}

/* hashlib.sha256(b"sm-1.localhost\0alice@localhost").digest()[:8], big-endian. */
static void test_weight_fixed(void **state)
{
    (void)state;
    const char *j = "alice@localhost";
    assert_true(link_shard_weight("sm-1.localhost", j, strlen(j)) == 0xa870253fec694abdULL);
}

/* The owners Python computes for two and three shards. */
static void test_pick_known(void **state)
{
    (void)state;
    const char *two[] = {"sm-1.localhost", "sm-2.localhost"};
    const char *three[] = {"sm-1.localhost", "sm-2.localhost", "sm-3.localhost"};
    static const struct {
        const char *jid;
        long of2, of3;
    } want[] = {
        {"alice@localhost", 0, 0}, {"bob@localhost", 0, 2},   {"carol@localhost", 0, 0},
        {"dave@localhost", 1, 1},  {"erin@localhost", 0, 0},  {"frank@localhost", 0, 0},
        {"grace@localhost", 1, 2}, {"heidi@localhost", 1, 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(pick(two, 2, want[i].jid), want[i].of2);
        assert_int_equal(pick(three, 3, want[i].jid), want[i].of3);
    }
    /* The order of the list does not matter, only the names. */
    const char *rev[] = {"sm-2.localhost", "sm-1.localhost"};
    assert_int_equal(pick(rev, 2, "dave@localhost"), 0);
    /* NULL entries are skipped; none at all is -1. */
    const char *holes[] = {NULL, "sm-2.localhost"};
    assert_int_equal(pick(holes, 2, "alice@localhost"), 1);
    const char *none[] = {NULL};
    assert_int_equal(pick(none, 1, "alice@localhost"), -1);
    assert_int_equal(pick(two, 0, "alice@localhost"), -1);
}

/*
 * Rendezvous hashing: adding a shard moves only the users the new one takes, and it takes
 * about its share; removing it puts each back where it was.
 */
static void test_pick_add_moves_only_to_new(void **state)
{
    (void)state;
    const char *names[] = {"sm-1.localhost", "sm-2.localhost", "sm-3.localhost", "sm-4.localhost"};
    size_t moved = 0;
    const size_t users = 2000;
    for (size_t i = 0; i < users; i++) {
        char jid[64];
        snprintf(jid, sizeof jid, "user%zu@localhost", i);
        long before = pick(names, 3, jid);
        long after = pick(names, 4, jid);
        assert_true(before >= 0 && before < 3);
        if (after != before) {
            assert_int_equal(after, 3);
            moved++;
        }
    }
    /* A quarter, give or take: between 20% and 30% of 2000. */
    assert_true(moved > users / 5 && moved < users * 3 / 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_fixed),
        cmocka_unit_test(test_pick_known),
        cmocka_unit_test(test_pick_add_moves_only_to_new),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
