/* SPDX-License-Identifier: MIT */
/* The storage layer: one suite run against both backends, and the asynchronous front. */
#include "core/alloc.h"
#include "storage/internal.h"
#include "storage/storage.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "storage_fixture.h"

static void test_accounts(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_exists(db, "juliet"), -ENOENT);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds-1"), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds-2"), -EEXIST);
    /* Names that must never become paths or collide once encoded. */
    const char *odd[] = {"..", ".hidden", "back\\slash", "fußball", "UPPER", "per%cent"};
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        assert_int_equal(storage_db_user_create(db, odd[i], "c"), 0);
    /* A localpart never holds '/' or '@' (RFC 7622): refused, not encoded. */
    assert_int_equal(storage_db_user_create(db, "a/b", "c"), -EINVAL);
    assert_int_equal(storage_db_user_create(db, "a@b", "c"), -EINVAL);
    char *creds = NULL;
    assert_int_equal(storage_db_creds_get(db, "juliet", &creds), 0);
    assert_string_equal(creds, "creds-1");
    free(creds);
    assert_int_equal(storage_db_creds_set(db, "juliet", "creds-3"), 0);
    storage_list_t users = {0};
    assert_int_equal(storage_db_user_list(db, &users), 0);
    assert_int_equal(users.count, 7);
    storage_list_clear(&users);
    storage_db_close(db);

    /* It persists, and deleting a user removes everything of theirs. */
    db = open_db(f);
    assert_int_equal(storage_db_creds_get(db, "juliet", &creds), 0);
    assert_string_equal(creds, "creds-3");
    free(creds);
    assert_int_equal(storage_db_user_exists(db, "back\\slash"), 0);
    storage_roster_item_t item = {.jid = "romeo@montague.example",
                                  .subscription = STORAGE_SUB_BOTH};
    assert_int_equal(storage_db_roster_put(db, "juliet", &item, NULL), 0);
    assert_int_equal(storage_db_offline_push(db, "juliet", "<message/>", 10, 5), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "vcard", "current", "<vCard/>", 8), 0);
    assert_int_equal(storage_db_user_delete(db, "juliet"), 0);
    assert_int_equal(storage_db_user_exists(db, "juliet"), -ENOENT);
    assert_int_equal(storage_db_user_create(db, "juliet", "again"), 0);
    storage_roster_t roster = {0};
    assert_int_equal(storage_db_roster_get(db, "juliet", &roster), 0);
    assert_int_equal(roster.count, 0);
    storage_roster_clear(&roster);
    storage_list_t offline = {0};
    assert_int_equal(storage_db_offline_get(db, "juliet", &offline), 0);
    assert_int_equal(offline.count, 0);
    storage_list_clear(&offline);
    storage_blob_t doc = {0};
    assert_int_equal(storage_db_doc_get(db, "juliet", "vcard", "current", &doc), -ENOENT);
    storage_db_close(db);
}

/*
 * A lookup that finds nothing, then one that finds something, with the first name freed in
 * between (as the asynchronous front frees each request): the second must use its own name.
 * (It once re-ran with the first one's binding, a use after free under ASan.)
 */
static void test_lookup_after_miss(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds-1"), 0);
    char *missing = core_strdup("nobody");
    char *creds = NULL;
    assert_int_equal(storage_db_creds_get(db, missing, &creds), -ENOENT);
    assert_int_equal(storage_db_user_exists(db, missing), -ENOENT);
    core_free(missing);
    char *name = core_strdup("juliet");
    assert_int_equal(storage_db_creds_get(db, name, &creds), 0);
    assert_string_equal(creds, "creds-1");
    core_free(creds);
    assert_int_equal(storage_db_user_exists(db, name), 0);
    core_free(name);
    storage_db_close(db);
}

static void test_roster(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    char *groups[] = {"Friends", "Capulets"};
    storage_roster_item_t item = {.jid = "juliet@capulet.example",
                                  .name = "Juliet",
                                  .subscription = STORAGE_SUB_TO,
                                  .ask = STORAGE_ASK_SUBSCRIBE,
                                  .approved = true,
                                  .groups = groups,
                                  .group_count = 2};
    char *v1 = NULL, *v2 = NULL, *v3 = NULL;
    assert_int_equal(storage_db_roster_put(db, "romeo", &item, &v1), 0);
    storage_roster_item_t other = {.jid = "benvolio@montague.example"};
    assert_int_equal(storage_db_roster_put(db, "romeo", &other, &v2), 0);
    assert_true(strtoull(v2, NULL, 10) > strtoull(v1, NULL, 10));
    storage_db_close(db);

    db = open_db(f);
    storage_roster_t r = {0};
    assert_int_equal(storage_db_roster_get(db, "romeo", &r), 0);
    assert_int_equal(r.count, 2);
    assert_string_equal(r.version, v2);
    /* Sorted by JID. */
    assert_string_equal(r.items[0].jid, "benvolio@montague.example");
    const storage_roster_item_t *j = &r.items[1];
    assert_string_equal(j->name, "Juliet");
    assert_int_equal(j->subscription, STORAGE_SUB_TO);
    assert_int_equal(j->ask, STORAGE_ASK_SUBSCRIBE);
    assert_true(j->approved);
    assert_int_equal(j->group_count, 2);
    assert_string_equal(j->groups[0], "Friends");
    assert_string_equal(j->groups[1], "Capulets");
    assert_null(r.items[0].name);
    storage_roster_clear(&r);
    assert_int_equal(storage_db_roster_delete(db, "romeo", "juliet@capulet.example", &v3), 0);
    assert_true(strtoull(v3, NULL, 10) > strtoull(v2, NULL, 10));
    assert_int_equal(storage_db_roster_delete(db, "romeo", "juliet@capulet.example", NULL),
                     -ENOENT);
    storage_roster_item_t got = {0};
    assert_int_equal(storage_db_roster_item_get(db, "romeo", "benvolio@montague.example", &got), 0);
    assert_int_equal(got.subscription, STORAGE_SUB_NONE);
    storage_roster_item_clear(&got);
    free(v1);
    free(v2);
    free(v3);
    storage_db_close(db);
}

static void test_offline_and_docs(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    /* Any bytes survive: newlines, quotes, a NUL-free but binary-looking payload. */
    const char *msgs[] = {"<message id='1'>a\nb</message>", "<message id=\"2\">\r\n\t</message>",
                          "<message id='3'>é ✓ 𝄞</message>"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(storage_db_offline_push(db, "juliet", msgs[i], strlen(msgs[i]), 3), 0);
    assert_int_equal(storage_db_offline_push(db, "juliet", "<x/>", 4, 3), -ENOSPC);
    storage_list_t l = {0};
    assert_int_equal(storage_db_offline_get(db, "juliet", &l), 0);
    assert_int_equal(l.count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(l.items[i].len, strlen(msgs[i]));
        assert_memory_equal(l.items[i].data, msgs[i], l.items[i].len);
    }
    storage_list_clear(&l);
    /* Only what was read is removed. */
    assert_int_equal(storage_db_offline_delete(db, "juliet", 2), 0);
    assert_int_equal(storage_db_offline_get(db, "juliet", &l), 0);
    assert_int_equal(l.count, 1);
    assert_memory_equal(l.items[0].data, msgs[2], l.items[0].len);
    storage_list_clear(&l);

    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "storage:bookmarks", "<a/>", 4),
                     0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "jabber:x:../..", "<b/>", 4), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "storage:bookmarks", "<c/>", 4),
                     0);
    storage_blob_t b = {0};
    assert_int_equal(storage_db_doc_get(db, "juliet", "private", "storage:bookmarks", &b), 0);
    assert_int_equal(b.len, 4);
    assert_memory_equal(b.data, "<c/>", 4);
    storage_blob_clear(&b);
    assert_int_equal(storage_db_doc_list(db, "juliet", "private", &l), 0);
    assert_int_equal(l.count, 2);
    storage_list_clear(&l);
    assert_int_equal(storage_db_doc_delete(db, "juliet", "private", "jabber:x:../.."), 0);
    assert_int_equal(storage_db_doc_delete(db, "juliet", "private", "jabber:x:../.."), -ENOENT);
    storage_db_close(db);
}

static void test_two_handles(void **state)
{
    /* The admin tool and the server use one store at once, like two processes. */
    fixture_t *f = *state;
    storage_db_t *a = open_db(f);
    storage_db_t *b = open_db(f);
    assert_int_equal(storage_db_user_create(a, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_exists(b, "juliet"), 0);
    assert_int_equal(storage_db_offline_push(b, "juliet", "<m/>", 4, 10), 0);
    storage_list_t l = {0};
    assert_int_equal(storage_db_offline_get(a, "juliet", &l), 0);
    assert_int_equal(l.count, 1);
    storage_list_clear(&l);
    storage_db_close(a);
    storage_db_close(b);
}

/* ---- the message archive ---- */

/* The nonce the tests give the entry with key (any function will do). */
static uint64_t nonce_of(int64_t key)
{
    return (uint64_t)key * 0x9e3779b97f4a7c15ull + 1;
}

/* The id of the entry with key (a static buffer, eight in rotation). */
static const char *kid(int64_t key)
{
    static char bufs[8][STORAGE_ARCHIVE_ID_LEN + 1];
    static unsigned next;
    char *b = bufs[next++ % 8];
    storage_archive_id_format(key, nonce_of(key), b);
    return b;
}

/* An entry of a batch (all strings borrowed from the caller). */
static storage_archive_entry_t entry(const char *owner, int64_t key, const char *with,
                                     const char *data)
{
    return (storage_archive_entry_t){.owner = owner,
                                     .key = key,
                                     .nonce = nonce_of(key),
                                     .with = with,
                                     .data = data,
                                     .len = strlen(data)};
}

/*
 * Runs a query and checks the items it returned, in order, and its counts. An item whose id
 * is the one kid() gives its stamp shows as that stamp ("1000 2000"), any other as its id.
 */
static void expect_page(storage_db_t *db, const char *owner, const storage_archive_query_t *q,
                        const char *want, size_t total, size_t first_index, bool complete)
{
    storage_archive_result_t r = {0};
    assert_int_equal(storage_db_archive_query(db, owner, q, &r), 0);
    char got[1024] = "";
    size_t n = 0;
    for (size_t i = 0; i < r.count; i++) {
        const char *sep = i > 0 ? " " : "";
        if (strcmp(r.items[i].id, kid(r.items[i].stamp_us)) == 0)
            n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%lld", sep,
                                  (long long)r.items[i].stamp_us);
        else
            n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", sep, r.items[i].id);
    }
    assert_string_equal(got, want);
    assert_int_equal(r.total, total);
    assert_int_equal(r.first_index, first_index);
    assert_int_equal(r.complete, complete);
    storage_archive_result_clear(&r);
}

/* Ids decode to their key and nonce; any other text is -ENOMSG. */
static void test_archive_ids(void **state)
{
    (void)state;
    char id[STORAGE_ARCHIVE_ID_LEN + 1];
    int64_t key;
    uint64_t nonce;
    const int64_t keys[] = {0, 1, 1795483951443595, INT64_MAX};
    const uint64_t nonces[] = {0, 31, 0x8000000000000000ull, UINT64_MAX};
    for (size_t i = 0; i < 4; i++) {
        storage_archive_id_format(keys[i], nonces[i], id);
        assert_int_equal(strlen(id), STORAGE_ARCHIVE_ID_LEN);
        assert_int_equal(storage_archive_id_parse(id, &key, &nonce), 0);
        assert_int_equal(key, keys[i]);
        assert_true(nonce == nonces[i]);
    }
    /* base32hex, so the text sorts as the key does. */
    char a[STORAGE_ARCHIVE_ID_LEN + 1], b[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(1795483951443595, UINT64_MAX, a);
    storage_archive_id_format(1795483951443596, 0, b);
    assert_true(strcmp(a, b) < 0);
    assert_string_equal(b + 13, "0000000000000");
    storage_archive_id_format(1, 2, id);
    assert_string_equal(id, "00000000000010000000000002");
    const char *bad[] = {
        "",
        "a1",
        "0000000000001000000000000", /* 25 */
        "000000000000100000000000020", /* 27 */
        "0000000000001000000000000W", /* upper case: not the spelling format makes */
        "0000000000001000000000000w", /* beyond base32hex */
        "80000000000000000000000000", /* a key above INT64_MAX */
        "0000000000000g000000000000", /* a nonce of 65 bits */
        "000000000000-0000000000000",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(storage_archive_id_parse(bad[i], &key, &nonce), -ENOMSG);
}

static void test_archive(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    /* Any bytes: escapes, a NUL, a line break, a tab, a backslash, UTF-8. */
    static const char odd[] = "<message>a\n\tb\\c\0d\r é</message>";
    storage_archive_entry_t batch[] = {
        entry("juliet", 1000, "romeo@montague.example/garden", "<m1/>"),
        entry("romeo", 1000, "juliet@capulet.example/balcony", "<m1/>"),
        entry("nobody", 1000, "juliet@capulet.example", "<m/>"),
        entry("juliet", 2000, "nurse@capulet.example", "<m2/>"),
        entry("juliet", 1000, "nurse@capulet.example", "<dup/>"),
        entry("juliet", 3000, "capulet.example", "<m3/>"),
        entry("juliet", 4000, "romeo@montague.example/orchard", "<m4/>"),
        entry("juliet", 5000, "capulet.example/service", "<m5/>"),
        entry("juliet", 6000, "tybalt@capulet.example", ""),
    };
    batch[6].data = odd;
    batch[6].len = sizeof(odd) - 1;
    batch[4].nonce = 99; /* the key decides: another nonce is no other entry */
    int status[9];
    memset(status, 0x55, sizeof(status));
    assert_int_equal(storage_db_archive_append(db, batch, 9, status), 0);
    const int want[9] = {0, 0, -ENOENT, 0, -EEXIST, 0, 0, 0, 0};
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(status[i], want[i]);
    /* A key already stored is a duplicate too; the others of the batch are written. */
    storage_archive_entry_t again[] = {entry("juliet", 2000, "x@y", "<again/>"),
                                       entry("juliet", 7000, "nurse@capulet.example", "<m7/>")};
    assert_int_equal(storage_db_archive_append(db, again, 2, status), 0);
    assert_int_equal(status[0], -EEXIST);
    assert_int_equal(status[1], 0);
    assert_int_equal(storage_db_archive_append(db, again, 0, NULL), 0);

    storage_archive_query_t q = {.max = 100};
    expect_page(db, "juliet", &q, "1000 2000 3000 4000 5000 6000 7000", 7, 0, true);
    expect_page(db, "romeo", &q, "1000", 1, 0, true);
    /* XEP-0313 §4.1.1: a bare JID matches its resources, a full JID itself, a domain itself. */
    q.with = "romeo@montague.example";
    expect_page(db, "juliet", &q, "1000 4000", 2, 0, true);
    q.with = "romeo@montague.example/orchard";
    expect_page(db, "juliet", &q, "4000", 1, 0, true);
    q.with = "capulet.example";
    expect_page(db, "juliet", &q, "3000 5000", 2, 0, true);
    q.with = "capulet.example/service";
    expect_page(db, "juliet", &q, "5000", 1, 0, true);
    q.with = "montague.example";
    expect_page(db, "juliet", &q, "", 0, 0, true);
    /* Time stamps (the keys): start and end are inclusive. */
    q = (storage_archive_query_t){
        .max = 100, .has_start = true, .start_us = 2000, .has_end = true, .end_us = 4000};
    expect_page(db, "juliet", &q, "2000 3000 4000", 3, 0, true);
    q.with = "romeo@montague.example";
    expect_page(db, "juliet", &q, "4000", 1, 0, true);
    /* ids: in archive order, unknown ones left out (also a known key with another nonce),
     * other filters still apply. */
    char wrong_nonce[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(3000, 1, wrong_nonce);
    const char *ids[] = {kid(7000), kid(2000), "zz", kid(4000), wrong_nonce, kid(8000)};
    q = (storage_archive_query_t){.max = 100, .ids = ids, .nids = 6};
    expect_page(db, "juliet", &q, "2000 4000 7000", 3, 0, true);
    q.with = "nurse@capulet.example";
    expect_page(db, "juliet", &q, "2000 7000", 2, 0, true);
    q.max = 1;
    expect_page(db, "juliet", &q, "2000", 2, 0, false);
    const char *none[] = {"zz", wrong_nonce};
    q = (storage_archive_query_t){.max = 100, .ids = none, .nids = 2};
    expect_page(db, "juliet", &q, "", 0, 0, true);
    /* max 0: only the count. */
    q = (storage_archive_query_t){.max = 0};
    expect_page(db, "juliet", &q, "", 7, 0, false);
    q.from_end = true;
    expect_page(db, "juliet", &q, "", 7, 7, false);

    /* The items themselves. */
    storage_archive_result_t r = {0};
    const char *one[] = {kid(4000)};
    q = (storage_archive_query_t){.max = 10, .ids = one, .nids = 1};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.items[0].id, kid(4000));
    assert_int_equal(r.items[0].stamp_us, 4000);
    assert_string_equal(r.items[0].with, "romeo@montague.example/orchard");
    assert_int_equal(r.items[0].data.len, sizeof(odd) - 1);
    assert_memory_equal(r.items[0].data.data, odd, sizeof(odd) - 1);
    storage_archive_result_clear(&r);

    /* Unknown UIDs (XEP-0313 §4.1.3), missing users, malformed arguments. */
    q = (storage_archive_query_t){.max = 10, .after_id = "nope"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q = (storage_archive_query_t){.max = 10, .before_id = "nope"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q = (storage_archive_query_t){.max = 10, .after_id = wrong_nonce};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q = (storage_archive_query_t){.max = 10, .before_id = kid(2500)};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q = (storage_archive_query_t){.max = 10};
    assert_int_equal(storage_db_archive_query(db, "nobody", &q, &r), -ENOENT);
    assert_int_equal(storage_db_archive_expire(db, "nobody", 0), -ENOENT);
    q.max = STORAGE_ARCHIVE_PAGE_MAX + 1;
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -EINVAL);
    q = (storage_archive_query_t){.max = 10, .after_id = "a.b"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -EINVAL);
    q = (storage_archive_query_t){.max = 10, .nids = 1};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -EINVAL);
    q = (storage_archive_query_t){.max = 10, .ids = ids, .nids = STORAGE_ARCHIVE_IDS_MAX + 1};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -EINVAL);
    storage_archive_entry_t bad[] = {entry("juliet", 8000, "x@y", "<m/>"),
                                     entry("juliet", -1, "x@y", "<m/>")};
    assert_int_equal(storage_db_archive_append(db, bad, 2, NULL), -EINVAL);
    bad[1] = entry("room@muc.example/nick", 9000, "x@y", "<m/>");
    assert_int_equal(storage_db_archive_append(db, bad, 2, NULL), -EINVAL);
    bad[1] = entry("", 9000, "x@y", "<m/>");
    assert_int_equal(storage_db_archive_append(db, bad, 2, NULL), -EINVAL);
    bad[1] = entry("juliet", 9000, "x@y", "<m/>");
    assert_int_equal(storage_db_archive_append(db, bad, 2, NULL), 0);
    storage_db_close(db);

    /* It survives reopening; expiry removes by stamp, per user. */
    db = open_db(f);
    q = (storage_archive_query_t){.max = 100};
    expect_page(db, "juliet", &q, "1000 2000 3000 4000 5000 6000 7000 8000 9000", 9, 0, true);
    assert_int_equal(storage_db_archive_expire(db, "juliet", 3000), 0);
    expect_page(db, "juliet", &q, "3000 4000 5000 6000 7000 8000 9000", 7, 0, true);
    expect_page(db, "romeo", &q, "1000", 1, 0, true);
    q.after_id = kid(1000);
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q.after_id = NULL;
    assert_int_equal(storage_db_archive_expire(db, "juliet", 0), 0);
    expect_page(db, "juliet", &q, "3000 4000 5000 6000 7000 8000 9000", 7, 0, true);
    assert_int_equal(storage_db_archive_expire(db, "juliet", INT64_MAX), 0);
    expect_page(db, "juliet", &q, "", 0, 0, true);
    /* The store does not refuse an expired key (the sm never gives one twice). */
    assert_int_equal(storage_db_archive_append(db, batch, 1, status), 0);
    assert_int_equal(status[0], 0);
    expect_page(db, "juliet", &q, "1000", 1, 0, true);

    /* Deleting the account deletes its archive. */
    assert_int_equal(storage_db_user_delete(db, "romeo"), 0);
    assert_int_equal(storage_db_archive_query(db, "romeo", &q, &r), -ENOENT);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    expect_page(db, "romeo", &q, "", 0, 0, true);
    storage_db_close(db);
}

/*
 * Archives of service entities (a MUC room): no account, created by the first append, gone
 * with expire(INT64_MAX); the largest key stored (sqlite) survives it.
 */
static void test_archive_rooms(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    const char *room = "balcony@chat.capulet.example";
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    storage_archive_query_t q = {.max = 10};
    expect_page(db, room, &q, "", 0, 0, true);
    q.after_id = kid(1);
    storage_archive_result_t r = {0};
    assert_int_equal(storage_db_archive_query(db, room, &q, &r), -ENOMSG);
    assert_int_equal(storage_db_archive_expire(db, room, INT64_MAX), 0);
    storage_archive_entry_t batch[] = {
        entry(room, 10, "balcony@chat.capulet.example/Juliet", "<g1/>"),
        entry("juliet", 10, "romeo@montague.example", "<m1/>"),
        entry(room, 20, "balcony@chat.capulet.example/Romeo", "<g2/>"),
        entry("other@chat.capulet.example", 30, "x@y", "<g3/>"),
    };
    int status[4];
    assert_int_equal(storage_db_archive_append(db, batch, 4, status), 0);
    for (int i = 0; i < 4; i++)
        assert_int_equal(status[i], 0);
    q = (storage_archive_query_t){.max = 10};
    expect_page(db, room, &q, "10 20", 2, 0, true);
    expect_page(db, "juliet", &q, "10", 1, 0, true);
    expect_page(db, "other@chat.capulet.example", &q, "30", 1, 0, true);
    q.with = "balcony@chat.capulet.example/Romeo";
    expect_page(db, room, &q, "20", 1, 0, true);
    q = (storage_archive_query_t){.max = 10, .after_id = kid(10)};
    expect_page(db, room, &q, "20", 2, 1, true);
    /* A room is no account, and an account's deletion leaves the rooms alone. */
    storage_list_t users = {0};
    assert_int_equal(storage_db_user_list(db, &users), 0);
    assert_int_equal(users.count, 1);
    assert_string_equal(users.items[0].data, "juliet");
    storage_list_clear(&users);
    assert_int_equal(storage_db_user_exists(db, room), -EINVAL);
    assert_int_equal(storage_db_user_delete(db, "juliet"), 0);
    q = (storage_archive_query_t){.max = 10};
    expect_page(db, room, &q, "10 20", 2, 0, true);
    /* Expiry by stamp, then of everything. */
    assert_int_equal(storage_db_archive_expire(db, room, 15), 0);
    expect_page(db, room, &q, "20", 1, 0, true);
    assert_int_equal(storage_db_archive_expire(db, room, INT64_MAX), 0);
    expect_page(db, room, &q, "", 0, 0, true);
    expect_page(db, "other@chat.capulet.example", &q, "30", 1, 0, true);
    int64_t key_max = -1;
    assert_int_equal(storage_db_archive_key_max(db, &key_max), 0);
    assert_int_equal(key_max, f->cfg.backend == STORAGE_BACKEND_SQLITE ? 30 : 0);
    /* Appending again makes it anew. */
    assert_int_equal(storage_db_archive_append(db, batch, 1, status), 0);
    assert_int_equal(status[0], 0);
    expect_page(db, room, &q, "10", 1, 0, true);
    /* Malformed owners. */
    assert_int_equal(storage_db_archive_query(db, "room@chat/x", &q, &r), -EINVAL);
    assert_int_equal(storage_db_archive_expire(db, "a@b/c", 0), -EINVAL);
    storage_db_close(db);
}

/* Two handles (two processes, for the files backend) append to one archive. */
static void test_archive_two_handles(void **state)
{
    fixture_t *f = *state;
    storage_db_t *a = open_db(f);
    storage_db_t *b = open_db(f);
    assert_int_equal(storage_db_user_create(a, "juliet", "c"), 0);
    storage_archive_entry_t x = entry("juliet", 1, "romeo@montague.example", "<x/>");
    storage_archive_entry_t y = entry("juliet", 2, "romeo@montague.example", "<y/>");
    storage_archive_entry_t z = entry("juliet", 3, "romeo@montague.example", "<z/>");
    storage_archive_entry_t w = entry("juliet", 4, "romeo@montague.example", "<w/>");
    int st = 1;
    assert_int_equal(storage_db_archive_append(a, &x, 1, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(storage_db_archive_append(b, &y, 1, &st), 0);
    assert_int_equal(st, 0);
    /* Each sees what the other appended, and what it appended itself. */
    assert_int_equal(storage_db_archive_append(a, &y, 1, &st), 0);
    assert_int_equal(st, -EEXIST);
    assert_int_equal(storage_db_archive_append(a, &x, 1, &st), 0);
    assert_int_equal(st, -EEXIST);
    assert_int_equal(storage_db_archive_append(b, &x, 1, &st), 0);
    assert_int_equal(st, -EEXIST);
    storage_archive_query_t q = {.max = 10};
    expect_page(a, "juliet", &q, "1 2", 2, 0, true);
    /* An expiry by one handle: the other sees it, and still refuses the kept key. */
    assert_int_equal(storage_db_archive_expire(b, "juliet", 2), 0);
    assert_int_equal(storage_db_archive_append(a, &y, 1, &st), 0);
    assert_int_equal(st, -EEXIST);
    assert_int_equal(storage_db_archive_append(a, &w, 1, &st), 0);
    assert_int_equal(st, 0);
    expect_page(b, "juliet", &q, "2 4", 2, 0, true);
    /* The account deleted and made again by one handle: a new, empty archive for both. */
    assert_int_equal(storage_db_user_delete(b, "juliet"), 0);
    assert_int_equal(storage_db_user_create(b, "juliet", "c"), 0);
    assert_int_equal(storage_db_archive_append(b, &y, 1, &st), 0);
    assert_int_equal(storage_db_archive_append(a, &z, 1, &st), 0);
    assert_int_equal(st, 0);
    assert_int_equal(storage_db_archive_append(a, &y, 1, &st), 0);
    assert_int_equal(st, -EEXIST);
    expect_page(a, "juliet", &q, "2 3", 2, 0, true);
    storage_db_close(a);
    storage_db_close(b);
}

/* Pages through 25 entries (two contacts, alternating) forward and backward. */
static void test_archive_paging(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    storage_archive_entry_t batch[25];
    for (int i = 0; i < 25; i++)
        batch[i] =
            entry("juliet", 1000 + i,
                  i % 2 == 0 ? "romeo@montague.example/r" : "nurse@capulet.example", "<message/>");
    assert_int_equal(storage_db_archive_append(db, batch, 25, NULL), 0);

    /* Forward (XEP-0059 <after/>). */
    storage_archive_query_t q = {.max = 10};
    expect_page(db, "juliet", &q, "1000 1001 1002 1003 1004 1005 1006 1007 1008 1009", 25, 0,
                false);
    q.after_id = kid(1009);
    expect_page(db, "juliet", &q, "1010 1011 1012 1013 1014 1015 1016 1017 1018 1019", 25, 10,
                false);
    q.after_id = kid(1019);
    expect_page(db, "juliet", &q, "1020 1021 1022 1023 1024", 25, 20, true);
    q.after_id = kid(1024);
    expect_page(db, "juliet", &q, "", 25, 25, true);
    /* Exactly a page left: complete, since nothing lies beyond it. */
    q.after_id = kid(1014);
    expect_page(db, "juliet", &q, "1015 1016 1017 1018 1019 1020 1021 1022 1023 1024", 25, 15,
                true);

    /* Backward (XEP-0059 <before/>): the newest page first, items still oldest first. */
    q = (storage_archive_query_t){.max = 10, .from_end = true};
    expect_page(db, "juliet", &q, "1015 1016 1017 1018 1019 1020 1021 1022 1023 1024", 25, 15,
                false);
    q.before_id = kid(1015);
    expect_page(db, "juliet", &q, "1005 1006 1007 1008 1009 1010 1011 1012 1013 1014", 25, 5,
                false);
    q.before_id = kid(1005);
    expect_page(db, "juliet", &q, "1000 1001 1002 1003 1004", 25, 0, true);
    q.before_id = kid(1000);
    expect_page(db, "juliet", &q, "", 25, 0, true);

    /* Between two ids, both ways. */
    q = (storage_archive_query_t){.max = 3, .after_id = kid(1002), .before_id = kid(1008)};
    expect_page(db, "juliet", &q, "1003 1004 1005", 25, 3, false);
    q.from_end = true;
    expect_page(db, "juliet", &q, "1005 1006 1007", 25, 5, false);
    q.max = 5;
    expect_page(db, "juliet", &q, "1003 1004 1005 1006 1007", 25, 3, true);
    q.after_id = kid(1008);
    q.before_id = kid(1002);
    expect_page(db, "juliet", &q, "", 25, 2, true);

    /* With a filter: positions count only matches; the ids need not match it. */
    q = (storage_archive_query_t){.max = 5, .with = "romeo@montague.example"};
    expect_page(db, "juliet", &q, "1000 1002 1004 1006 1008", 13, 0, false);
    q.after_id = kid(1009);
    expect_page(db, "juliet", &q, "1010 1012 1014 1016 1018", 13, 5, false);
    q.after_id = kid(1018);
    expect_page(db, "juliet", &q, "1020 1022 1024", 13, 10, true);
    q = (storage_archive_query_t){.max = 5, .with = "romeo@montague.example", .from_end = true};
    expect_page(db, "juliet", &q, "1016 1018 1020 1022 1024", 13, 8, false);
    q.before_id = kid(1016);
    expect_page(db, "juliet", &q, "1006 1008 1010 1012 1014", 13, 3, false);
    q.before_id = kid(1006);
    expect_page(db, "juliet", &q, "1000 1002 1004", 13, 0, true);
    q = (storage_archive_query_t){.max = 4,
                                  .with = "nurse@capulet.example",
                                  .has_start = true,
                                  .start_us = 1004,
                                  .from_end = true,
                                  .before_id = kid(1020)};
    expect_page(db, "juliet", &q, "1013 1015 1017 1019", 10, 4, false);
    storage_db_close(db);
}

/*
 * The files backend's archive file: its format, an old id kept, an append cut short, a hand
 * edit gone wrong.
 */
static void test_archive_file(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/juliet/archive", f->path);
    /* An entry an older Parley archived, with an id of its own. */
    FILE *fp = fopen(path, "w");
    fputs("parley archive 1\nold-1\t3\tnurse@capulet.example\t<old/>\n", fp);
    fclose(fp);
    storage_archive_entry_t e[] = {entry("juliet", 5, "romeo@montague.example/g", "<a\tb/>"),
                                   entry("juliet", 7, "nurse@capulet.example", "<c/>")};
    assert_int_equal(storage_db_archive_append(db, e, 2, NULL), 0);
    fp = fopen(path, "r");
    assert_non_null(fp);
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, fp);
    text[n] = '\0';
    fclose(fp);
    char want[512];
    snprintf(want, sizeof(want),
             "\n%s\t5\tromeo@montague.example/g\t<a\\tb/>\n"
             "%s\t7\tnurse@capulet.example\t<c/>\n",
             kid(5), kid(7));
    assert_non_null(strstr(text, "parley archive 1\n"));
    assert_non_null(strstr(text, want));
    storage_archive_query_t q = {.max = 10};
    expect_page(db, "juliet", &q, "old-1 5 7", 3, 0, true);
    q.after_id = "old-1";
    expect_page(db, "juliet", &q, "5 7", 3, 1, true);
    q.after_id = NULL;

    /* A crash in the middle of an append leaves a line without its newline: ignored... */
    fp = fopen(path, "a");
    fprintf(fp, "%s\t9\tromeo@montague.example\t<cut", kid(9));
    fclose(fp);
    expect_page(db, "juliet", &q, "old-1 5 7", 3, 0, true);
    /* ...and dropped by the next append, which then adds whole lines. */
    storage_archive_entry_t e3[] = {entry("juliet", 9, "romeo@montague.example", "<m3/>")};
    assert_int_equal(storage_db_archive_append(db, e3, 1, NULL), 0);
    expect_page(db, "juliet", &q, "old-1 5 7 9", 4, 0, true);
    storage_archive_result_t r = {0};
    q.after_id = kid(7);
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.items[0].data.data, "<m3/>");
    storage_archive_result_clear(&r);
    q.after_id = NULL;

    /* A bad line makes the archive's operations fail until it is fixed. */
    fp = fopen(path, "a");
    fputs("# a comment is fine\n\nbad line\n", fp);
    fclose(fp);
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -EBADMSG);
    int status = 1;
    assert_int_equal(storage_db_archive_append(db, e3, 1, &status), -EBADMSG);
    assert_int_equal(status, -EBADMSG);
    assert_int_equal(storage_db_archive_expire(db, "juliet", 8), -EBADMSG);
    /* Another user's entries in the same batch are still written. */
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    storage_archive_entry_t two[] = {entry("juliet", 10, "x@y", "<m/>"),
                                     entry("romeo", 10, "x@y", "<m/>")};
    int st2[2];
    assert_int_equal(storage_db_archive_append(db, two, 2, st2), 0);
    assert_int_equal(st2[0], -EBADMSG);
    assert_int_equal(st2[1], 0);
    storage_db_close(db);
}

/*
 * A database with the migration-4 archive, holding ids the old sm made (the same text as
 * storage_archive_id_format's, with a counter from the clock) and others: migration 6 keeps
 * every entry in its order, and every old id still names its entry.
 */
static void test_archive_migration(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = NULL;
    assert_int_equal(storage_sqlite_open_at(&f->cfg, 4, &db), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    storage_db_close(db);
    char a[STORAGE_ARCHIVE_ID_LEN + 1], back[STORAGE_ARCHIVE_ID_LEN + 1],
        c[STORAGE_ARCHIVE_ID_LEN + 1], skew[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(1000005, 77, a); /* counter a little above its stamp */
    storage_archive_id_format(999999, 5, back); /* the clock went back: below the previous */
    storage_archive_id_format(2000000, 9, c);
    storage_archive_id_format(9000000000, 4, skew); /* far from its stamp */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO archive (user_id, archive_id, stamp, with_bare, with_full, data)"
             " VALUES"
             " (1, '%s', 1000000, 'romeo@montague.example', 'romeo@montague.example/g', '<1/>'),"
             " (2, '%s', 1000000, 'juliet@capulet.example', 'juliet@capulet.example', '<r/>'),"
             " (1, 'legacy-x', 1000010, 'nurse@capulet.example', 'nurse@capulet.example',"
             "  '<2/>'),"
             " (1, '%s', 999999, 'romeo@montague.example', 'romeo@montague.example', '<3/>'),"
             " (1, '%s', 2000000, 'nurse@capulet.example', 'nurse@capulet.example', '<4/>'),"
             " (1, '%s', 2000001, 'nurse@capulet.example', 'nurse@capulet.example', '<5/>')",
             a, a, back, c, skew);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    db = open_db(f);
    storage_archive_result_t r = {0};
    storage_archive_query_t q = {.max = 10};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 5);
    const char *ids[] = {a, "legacy-x", back, c, skew};
    const int64_t stamps[] = {1000005, 1000010, 1000011, 2000000, 2000001};
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(r.items[i].id, ids[i]);
        assert_int_equal(r.items[i].stamp_us, stamps[i]);
    }
    assert_string_equal(r.items[0].with, "romeo@montague.example/g");
    assert_string_equal(r.items[0].data.data, "<1/>");
    assert_string_equal(r.items[1].with, "nurse@capulet.example");
    storage_archive_result_clear(&r);
    /* Every old id is found, as a bound and in 'ids'. */
    for (size_t i = 0; i < 5; i++) {
        q = (storage_archive_query_t){.max = 10, .after_id = ids[i]};
        assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
        assert_int_equal(r.count, 4 - i);
        assert_int_equal(r.first_index, i + 1);
        storage_archive_result_clear(&r);
        q = (storage_archive_query_t){.max = 10, .before_id = ids[i], .from_end = true};
        assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
        assert_int_equal(r.count, i);
        storage_archive_result_clear(&r);
    }
    q = (storage_archive_query_t){.max = 10, .ids = ids + 1, .nids = 3};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 3);
    assert_string_equal(r.items[0].id, "legacy-x");
    assert_string_equal(r.items[2].id, c);
    storage_archive_result_clear(&r);
    q = (storage_archive_query_t){.max = 10, .with = "romeo@montague.example"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 2);
    storage_archive_result_clear(&r);
    /* The same old id in another user's archive is that user's entry. */
    q = (storage_archive_query_t){.max = 10, .ids = ids, .nids = 1};
    assert_int_equal(storage_db_archive_query(db, "romeo", &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_string_equal(r.items[0].data.data, "<r/>");
    storage_archive_result_clear(&r);
    /* New keys go above the old ones. */
    int64_t key_max = 0;
    assert_int_equal(storage_db_archive_key_max(db, &key_max), 0);
    assert_int_equal(key_max, 2000001);
    storage_archive_entry_t e = entry("juliet", 2000002, "romeo@montague.example", "<6/>");
    assert_int_equal(storage_db_archive_append(db, &e, 1, NULL), 0);
    q = (storage_archive_query_t){.max = 2, .from_end = true};
    char last[128];
    snprintf(last, sizeof(last), "%s 2000002", skew);
    expect_page(db, "juliet", &q, last, 6, 4, false);
    /* Expiry and the account's deletion take the old entries too. */
    assert_int_equal(storage_db_archive_expire(db, "juliet", 1000011), 0);
    q = (storage_archive_query_t){.max = 10, .after_id = "legacy-x"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    assert_int_equal(storage_db_user_delete(db, "romeo"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    q = (storage_archive_query_t){.max = 10};
    expect_page(db, "romeo", &q, "", 0, 0, true);
    storage_db_close(db);
}

/* ---- the sqlite archive in chunks (schema 7), checked against a model on both backends ---- */

/* The other party of the model archive's entry key. */
static const char *model_with(int64_t key)
{
    static const char *const w[] = {"romeo@montague.example/a", "nurse@capulet.example",
                                    "romeo@montague.example/b"};
    return w[key % 3];
}

/* XEP-0313 §4.1.1 as the model sees it: a bare JID matches its resources, a full one itself. */
static bool model_matches(const storage_archive_query_t *q, int64_t key)
{
    if ((q->has_start && key < q->start_us) || (q->has_end && key > q->end_us))
        return false;
    if (q->with == NULL)
        return true;
    const char *w = model_with(key);
    if (strchr(q->with, '/') != NULL)
        return strcmp(w, q->with) == 0;
    size_t n = strlen(q->with);
    return strncmp(w, q->with, n) == 0 && (w[n] == '\0' || w[n] == '/');
}

/*
 * Runs q (after/before given as keys, -1 for none) and checks every item, the count, the
 * index and 'complete' against what the model archive (keys[0..n), in order) gives.
 */
static void model_check(storage_db_t *db, const int64_t *keys, size_t n, storage_archive_query_t q,
                        int64_t after, int64_t before)
{
    char a[STORAGE_ARCHIVE_ID_LEN + 1], b[STORAGE_ARCHIVE_ID_LEN + 1];
    if (after >= 0) {
        storage_archive_id_format(after, nonce_of(after), a);
        q.after_id = a;
    }
    if (before >= 0) {
        storage_archive_id_format(before, nonce_of(before), b);
        q.before_id = b;
    }
    size_t total = 0, upto = 0, below = 0, ncand = 0;
    int64_t cand[256];
    for (size_t i = 0; i < n; i++) {
        if (!model_matches(&q, keys[i]))
            continue;
        total++;
        upto += after >= 0 && keys[i] <= after;
        below += before >= 0 && keys[i] < before;
        if ((after < 0 || keys[i] > after) && (before < 0 || keys[i] < before))
            cand[ncand++] = keys[i];
    }
    size_t count = ncand < q.max ? ncand : q.max;
    const int64_t *want = q.from_end ? cand + ncand - count : cand;
    size_t first = q.from_end ? (before >= 0 ? below : total) - count : (after >= 0 ? upto : 0);
    storage_archive_result_t r = {0};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, count);
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(r.items[i].stamp_us, want[i]);
        assert_string_equal(r.items[i].id, kid(want[i]));
        assert_string_equal(r.items[i].with, model_with(want[i]));
        char data[32];
        snprintf(data, sizeof(data), "<m%lld/>", (long long)want[i]);
        assert_int_equal(r.items[i].data.len, strlen(data));
        assert_string_equal(r.items[i].data.data, data);
    }
    assert_int_equal(r.total, total);
    assert_int_equal(r.first_index, first);
    assert_int_equal(r.complete, ncand <= q.max);
    storage_archive_result_clear(&r);
}

/*
 * Batches of different sizes (so chunks of 1 to 12 entries, with another owner's entries
 * between them): every page, both ways, with and without 'with', a time range and bounds in
 * the middle of chunks and on their edges, is what the model says.
 */
static void test_archive_chunk_paging(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    static const size_t sizes[] = {1, 7, 3, 12, 2, 9, 6};
    int64_t keys[40];
    char data[40][32];
    size_t n = 0;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        storage_archive_entry_t batch[2 * 12];
        size_t m = 0;
        for (size_t i = 0; i < sizes[s]; i++) {
            keys[n] = 100 + (int64_t)n;
            snprintf(data[n], sizeof(data[n]), "<m%lld/>", (long long)keys[n]);
            batch[m++] = entry("juliet", keys[n], model_with(keys[n]), data[n]);
            batch[m++] = entry("romeo", keys[n], "juliet@capulet.example", "<r/>");
            n++;
        }
        int status[2 * 12];
        assert_int_equal(storage_db_archive_append(db, batch, m, status), 0);
        for (size_t i = 0; i < m; i++)
            assert_int_equal(status[i], 0);
    }
    assert_int_equal(n, 40);
    static const char *const withs[] = {NULL, "romeo@montague.example", "romeo@montague.example/b",
                                        "nurse@capulet.example"};
    /* Chunk edges are at 100|101, 107|108, 110|111, 122|123, 124|125, 133|134. */
    static const int64_t bounds[] = {-1, 100, 101, 104, 107, 108, 122, 123, 130, 139};
    static const size_t maxes[] = {0, 1, 4, 9};
    for (size_t w = 0; w < 4; w++) {
        for (int range = 0; range < 2; range++) {
            storage_archive_query_t q = {.with = withs[w]};
            if (range) {
                q = (storage_archive_query_t){.with = withs[w],
                                              .has_start = true,
                                              .start_us = 105,
                                              .has_end = true,
                                              .end_us = 131};
            }
            for (size_t x = 0; x < 10; x++) {
                for (size_t y = 0; y < 10; y++) {
                    for (size_t m = 0; m < 4; m++) {
                        q.max = maxes[m];
                        q.from_end = false;
                        model_check(db, keys, n, q, bounds[x], bounds[y]);
                        q.from_end = true;
                        model_check(db, keys, n, q, bounds[x], bounds[y]);
                    }
                }
            }
        }
    }
    /* Ids in the middle of chunks and on their edges, with a filter. */
    static const int64_t id_keys[] = {104, 100, 122, 123, 133, 139, 140};
    char id_text[7][STORAGE_ARCHIVE_ID_LEN + 1]; /* not kid(): its buffers rotate */
    const char *ids[7];
    for (size_t i = 0; i < 7; i++) {
        storage_archive_id_format(id_keys[i], nonce_of(id_keys[i]), id_text[i]);
        ids[i] = id_text[i];
    }
    storage_archive_query_t q = {.max = 10, .ids = ids, .nids = 7};
    expect_page(db, "juliet", &q, "100 104 122 123 133 139", 6, 0, true);
    q.with = "romeo@montague.example";
    expect_page(db, "juliet", &q, "104 122 123", 3, 0, true);
    q = (storage_archive_query_t){
        .max = 2, .ids = ids, .nids = 7, .from_end = true, .before_id = kid(133)};
    expect_page(db, "juliet", &q, "122 123", 6, 2, false);
    storage_db_close(db);
}

/* The chunks of an owner's archive in the sqlite file: how many, the largest count and data. */
static void chunk_stats(fixture_t *f, const char *owner_sql, long long out[3])
{
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*), max(count), max(length(data)) FROM archive_chunk"
             " WHERE owner = (%s)",
             owner_sql);
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    for (int i = 0; i < 3; i++)
        out[i] = sqlite3_column_int64(s, i);
    sqlite3_finalize(s);
    sqlite3_close(h);
}

/*
 * One owner's long run in one batch: several chunks, bounded by entries and by bytes (sqlite),
 * read back whole and by id; expiry cutting through a chunk keeps the rest of it.
 */
static void test_archive_chunk_bounds(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    enum { N = 600, BIG = 2000 };
    storage_archive_entry_t *batch = calloc(N + 1, sizeof(*batch));
    char *bigs = malloc((size_t)(N - 300) * BIG);
    for (int i = 0; i < N; i++) {
        /* The first 300 small, the rest big: the 256-entry and the 256 KiB bounds both cut. */
        batch[i] = entry("juliet", 1000 + i, "romeo@montague.example/g", "<s/>");
        if (i >= 300) {
            char *p = bigs + (size_t)(i - 300) * BIG;
            memset(p, 'x', BIG);
            p[0] = (char)('a' + i % 26); /* each big stanza told apart by its first byte */
            batch[i].data = p;
            batch[i].len = BIG;
        }
    }
    batch[N] = entry("romeo", 5, "juliet@capulet.example", "<r/>");
    assert_int_equal(storage_db_archive_append(db, batch, N + 1, NULL), 0);
    if (f->cfg.backend == STORAGE_BACKEND_SQLITE) {
        long long st[3];
        chunk_stats(f, "SELECT id FROM users WHERE name = 'juliet'", st);
        /* 256 small; 44 small and 130 big (the 131st would pass 256 KiB); 131 big; 39 big. */
        assert_int_equal(st[0], 4);
        assert_int_equal(st[1], 256);
        assert_true(st[2] <= 256 * 1024);
    }
    storage_archive_query_t q = {.max = STORAGE_ARCHIVE_PAGE_MAX};
    storage_archive_result_t r = {0};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, N);
    assert_int_equal(r.total, N);
    assert_true(r.complete);
    for (int i = 0; i < N; i++) {
        assert_int_equal(r.items[i].stamp_us, 1000 + i);
        assert_int_equal(r.items[i].data.len, i < 300 ? 4 : BIG);
        if (i >= 300)
            assert_int_equal(r.items[i].data.data[0], 'a' + i % 26);
    }
    storage_archive_result_clear(&r);
    /* A middle entry by id, and a page across chunk edges from it both ways. */
    char id1400[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(1400, nonce_of(1400), id1400); /* kid()'s buffers rotate */
    const char *one[] = {id1400};
    q = (storage_archive_query_t){.max = 10, .ids = one, .nids = 1};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.items[0].data.data[0], 'a' + 400 % 26);
    storage_archive_result_clear(&r);
    q = (storage_archive_query_t){.max = 3, .after_id = kid(1254)};
    expect_page(db, "juliet", &q, "1255 1256 1257", N, 255, false);
    q = (storage_archive_query_t){.max = 3, .before_id = kid(1257), .from_end = true};
    expect_page(db, "juliet", &q, "1254 1255 1256", N, 254, false);

    /* Expiry through the middle of the first chunk, then of a later one. */
    assert_int_equal(storage_db_archive_expire(db, "juliet", 1100), 0);
    q = (storage_archive_query_t){.max = 2};
    expect_page(db, "juliet", &q, "1100 1101", N - 100, 0, false);
    q.after_id = kid(1099);
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    q.after_id = kid(1100);
    expect_page(db, "juliet", &q, "1101 1102", N - 100, 1, false);
    assert_int_equal(storage_db_archive_expire(db, "juliet", 1450), 0);
    q = (storage_archive_query_t){.max = 2, .from_end = true, .before_id = kid(1452)};
    expect_page(db, "juliet", &q, "1450 1451", N - 450, 0, true);
    q = (storage_archive_query_t){.max = 1, .ids = one, .nids = 1};
    expect_page(db, "juliet", &q, "", 0, 0, true);
    if (f->cfg.backend == STORAGE_BACKEND_SQLITE) {
        long long st[3];
        chunk_stats(f, "SELECT id FROM users WHERE name = 'juliet'", st);
        assert_int_equal(st[0], 2); /* the cut one (now 1450..1560) and 1561..1599 */
    }
    /* The other owner's archive is untouched; the archive still grows. */
    q = (storage_archive_query_t){.max = 10};
    expect_page(db, "romeo", &q, "5", 1, 0, true);
    storage_archive_entry_t more = entry("juliet", 2000, "nurse@capulet.example", "<n/>");
    assert_int_equal(storage_db_archive_append(db, &more, 1, NULL), 0);
    q = (storage_archive_query_t){.max = 1, .from_end = true};
    expect_page(db, "juliet", &q, "2000", N - 450 + 1, N - 450, false);
    free(batch);
    free(bigs);
    storage_db_close(db);
}

/* sqlite: an archive only grows by key; a key not above its last is refused (storage.h). */
static void test_archive_grows(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    storage_archive_entry_t a[] = {entry("juliet", 10, "x@y", "<10/>"),
                                   entry("juliet", 20, "x@y", "<20/>")};
    assert_int_equal(storage_db_archive_append(db, a, 2, NULL), 0);
    storage_archive_entry_t b[] = {
        entry("juliet", 15, "x@y", "<15/>"), entry("juliet", 30, "x@y", "<30/>"),
        entry("juliet", 25, "x@y", "<25/>"), entry("juliet", 30, "x@y", "<30b/>"),
        entry("juliet", 40, "x@y", "<40/>"),
    };
    int status[5];
    assert_int_equal(storage_db_archive_append(db, b, 5, status), 0);
    const int want[5] = {-EEXIST, 0, -EEXIST, -EEXIST, 0};
    for (int i = 0; i < 5; i++)
        assert_int_equal(status[i], want[i]);
    storage_archive_query_t q = {.max = 10};
    expect_page(db, "juliet", &q, "10 20 30 40", 4, 0, true);
    /* Expiry does not lower the mark of the archive it leaves entries in. */
    assert_int_equal(storage_db_archive_expire(db, "juliet", 35), 0);
    assert_int_equal(storage_db_archive_append(db, b + 1, 1, status), 0);
    assert_int_equal(status[0], -EEXIST);
    expect_page(db, "juliet", &q, "40", 1, 0, true);
    storage_db_close(db);
}

/*
 * A schema-6 database (rows per entry, an old id kept in old_id, a room's archive, a run
 * longer than a chunk): migration 7 keeps every entry, its id, its order and its data.
 */
static void test_archive_migration_v7(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = NULL;
    assert_int_equal(storage_sqlite_open_at(&f->cfg, 6, &db), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    storage_db_close(db);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "INSERT INTO archive_rooms (id, jid) VALUES (1, 'balcony@chat.capulet.example');"
             "INSERT INTO archive (owner, key, nonce, with_bare, with_res, data, old_id) VALUES"
             " (1, 10, %lld, 'romeo@montague.example', 'g', '<10/>', NULL),"
             " (1, 20, NULL, 'nurse@capulet.example', NULL, '<20/>', 'legacy-x'),"
             " (-1, 15, %lld, 'balcony@chat.capulet.example', 'Romeo', '<g/>', NULL),"
             " (1, 30, %lld, 'romeo@montague.example', NULL, '<30/>', NULL);"
             "WITH RECURSIVE k(x) AS (SELECT 1000 UNION ALL SELECT x + 1 FROM k WHERE x < 1599)"
             " INSERT INTO archive (owner, key, nonce, with_bare, with_res, data)"
             " SELECT 2, x, x * 7, 'juliet@capulet.example', NULL, '<r' || x || '/>' FROM k;"
             "UPDATE archive_state SET key_max = 1599;",
             (long long)nonce_of(10), (long long)nonce_of(15), (long long)nonce_of(30));
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);

    db = open_db(f);
    storage_archive_query_t q = {.max = 10};
    expect_page(db, "juliet", &q, "10 legacy-x 30", 3, 0, true);
    expect_page(db, "balcony@chat.capulet.example", &q, "15", 1, 0, true);
    storage_archive_result_t r = {0};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), 0);
    assert_string_equal(r.items[0].with, "romeo@montague.example/g");
    assert_string_equal(r.items[0].data.data, "<10/>");
    assert_string_equal(r.items[1].with, "nurse@capulet.example");
    assert_int_equal(r.items[1].stamp_us, 20);
    assert_string_equal(r.items[1].data.data, "<20/>");
    storage_archive_result_clear(&r);
    /* The old id as a bound and in 'ids'; a decodable id with the old entry's key is not it. */
    q.after_id = "legacy-x";
    expect_page(db, "juliet", &q, "30", 3, 2, true);
    const char *ids[] = {"legacy-x", kid(20), kid(30)};
    q = (storage_archive_query_t){.max = 10, .ids = ids, .nids = 3};
    expect_page(db, "juliet", &q, "legacy-x 30", 2, 0, true);
    q = (storage_archive_query_t){.max = 10, .with = "romeo@montague.example/g"};
    expect_page(db, "juliet", &q, "10", 1, 0, true);
    /* A long run became several chunks; a nonce from the row is kept. */
    char a[STORAGE_ARCHIVE_ID_LEN + 1], b[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(1298, 1298 * 7, a);
    storage_archive_id_format(1299, 1299 * 7, b);
    storage_archive_result_t rr = {0};
    const char *mid[] = {b};
    q = (storage_archive_query_t){.max = 2, .ids = mid, .nids = 1};
    assert_int_equal(storage_db_archive_query(db, "romeo", &q, &rr), 0);
    assert_int_equal(rr.count, 1);
    assert_string_equal(rr.items[0].data.data, "<r1299/>");
    storage_archive_result_clear(&rr);
    q = (storage_archive_query_t){.max = 2, .from_end = true, .before_id = a};
    assert_int_equal(storage_db_archive_query(db, "romeo", &q, &rr), 0);
    assert_int_equal(rr.count, 2);
    assert_int_equal(rr.items[0].stamp_us, 1296);
    assert_int_equal(rr.total, 600);
    assert_int_equal(rr.first_index, 296);
    storage_archive_result_clear(&rr);
    long long st[3];
    chunk_stats(f, "2", st);
    assert_int_equal(st[0], 3); /* 256 + 256 + 88 */
    int64_t key_max = 0;
    assert_int_equal(storage_db_archive_key_max(db, &key_max), 0);
    assert_int_equal(key_max, 1599);
    /* Expiry and the account's deletion take the old ids too. */
    assert_int_equal(storage_db_archive_expire(db, "juliet", 21), 0);
    q = (storage_archive_query_t){.max = 10, .after_id = "legacy-x"};
    assert_int_equal(storage_db_archive_query(db, "juliet", &q, &r), -ENOMSG);
    assert_int_equal(storage_db_user_delete(db, "romeo"), 0);
    assert_int_equal(storage_db_user_create(db, "romeo", "c"), 0);
    q = (storage_archive_query_t){.max = 10};
    expect_page(db, "romeo", &q, "", 0, 0, true);
    chunk_stats(f, "2", st);
    assert_int_equal(st[0], 0);
    storage_db_close(db);
}

/* An older database gains the tables of newer migrations, keeping its data. */
static void test_migration(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = NULL;
    int current = storage_sqlite_schema_current();
    assert_true(current >= 4);
    /* As Parley left it before the archive (migration 4) existed. */
    assert_int_equal(storage_sqlite_open_at(&f->cfg, 3, &db), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds"), 0);
    storage_roster_item_t item = {.jid = "romeo@montague.example",
                                  .subscription = STORAGE_SUB_BOTH};
    assert_int_equal(storage_db_roster_put(db, "juliet", &item, NULL), 0);
    assert_int_equal(storage_db_offline_push(db, "juliet", "<m/>", 4, 10), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "vcard", "v", "<vCard/>", 8), 0);
    storage_db_close(db);

    db = open_db(f);
    storage_roster_t roster = {0};
    assert_int_equal(storage_db_roster_get(db, "juliet", &roster), 0);
    assert_int_equal(roster.count, 1);
    storage_roster_clear(&roster);
    storage_list_t l = {0};
    assert_int_equal(storage_db_offline_get(db, "juliet", &l), 0);
    assert_int_equal(l.count, 1);
    storage_list_clear(&l);
    storage_blob_t b = {0};
    assert_int_equal(storage_db_doc_get(db, "juliet", "vcard", "v", &b), 0);
    storage_blob_clear(&b);
    storage_archive_entry_t e[] = {entry("juliet", 1, "romeo@montague.example", "<m/>")};
    assert_int_equal(storage_db_archive_append(db, e, 1, NULL), 0);
    storage_archive_query_t q = {.max = 10};
    expect_page(db, "juliet", &q, "1", 1, 0, true);
    /* The archive goes with the account, also in a migrated database. */
    assert_int_equal(storage_db_user_delete(db, "juliet"), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds"), 0);
    expect_page(db, "juliet", &q, "", 0, 0, true);
    storage_db_close(db);

    /* A database from a newer Parley is refused, not misread. */
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", current + 1);
    assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
    assert_int_equal(storage_db_open(&f->cfg, &db), -EPROTONOSUPPORT);
}

/* Every document of the kinds asked for, with their data (storage_user_load content_kinds). */
static void test_doc_get_all(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "z:ns", "<z/>", 4), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "a:ns", "<a/>", 4), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "vcard", "current", "<vCard/>", 8), 0);
    storage_docs_t d = {0};
    assert_int_equal(storage_db_doc_get_all(db, "juliet", "private", &d), 0);
    assert_int_equal(d.keys.count, 2);
    assert_int_equal(d.values.count, 2);
    assert_string_equal(d.keys.items[0].data, "a:ns");
    assert_string_equal(d.values.items[0].data, "<a/>");
    assert_string_equal(d.keys.items[1].data, "z:ns");
    assert_string_equal(d.values.items[1].data, "<z/>");
    storage_docs_clear(&d);
    assert_int_equal(storage_db_doc_get_all(db, "juliet", "none", &d), 0);
    assert_int_equal(d.keys.count, 0);
    storage_docs_clear(&d);
    assert_int_equal(storage_db_doc_get_all(db, "nobody", "private", &d), -ENOENT);
    assert_int_equal(storage_db_doc_get_all(db, "juliet", "BAD", &d), -EINVAL);
    storage_db_close(db);
}

/* ---- the asynchronous front ---- */

typedef struct async_run {
    storage_t *st;
    int order[64];
    int n;
    int closed;
    uv_thread_t loop_thread;
    bool on_loop_thread;
} async_run_t;

typedef struct step {
    async_run_t *run;
    int index;
} step_t;

static void on_status(void *arg, int status)
{
    step_t *s = arg;
    uv_thread_t self = uv_thread_self();
    s->run->on_loop_thread &= uv_thread_equal(&self, &s->run->loop_thread) != 0;
    assert_true(status == 0 || status == -ENOSPC);
    s->run->order[s->run->n++] = s->index;
}

static void on_version(void *arg, int status, const char *version)
{
    step_t *s = arg;
    assert_int_equal(status, 0);
    assert_non_null(version);
    s->run->order[s->run->n++] = s->index;
}

static void on_list(void *arg, int status, const storage_list_t *l)
{
    step_t *s = arg;
    assert_int_equal(status, 0);
    assert_int_equal(l->count, 20);
    s->run->order[s->run->n++] = s->index;
}

static void on_load(void *arg, int status, const storage_user_data_t *d)
{
    step_t *s = arg;
    assert_int_equal(status, 0);
    assert_int_equal(d->roster->count, 1);
    assert_string_equal(d->roster->items[0].jid, "romeo@localhost");
    assert_int_equal(d->doc_keys->count, 1);
    assert_string_equal(d->doc_keys->items[0].data, "nurse@localhost");
    assert_int_equal(d->offline->count, 20);
    assert_string_equal(d->offline->items[19].data, "<message id='20'/>");
    s->run->order[s->run->n++] = s->index;
}

static void on_load_missing(void *arg, int status, const storage_user_data_t *d)
{
    step_t *s = arg;
    assert_int_equal(status, -ENOENT);
    assert_null(d);
    s->run->order[s->run->n++] = s->index;
}

static void on_closed(void *arg)
{
    ((async_run_t *)arg)->closed = 1;
}

static void test_async_front(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    async_run_t run = {.loop_thread = uv_thread_self(), .on_loop_thread = true};
    assert_int_equal(storage_open(&loop, &f->cfg, &run.st), 0);
    step_t steps[40];
    for (int i = 0; i < 40; i++)
        steps[i] = (step_t){.run = &run, .index = i};
    assert_int_equal(storage_user_create(run.st, "juliet", "c", on_status, &steps[0]), 0);
    for (int i = 1; i < 21; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof(msg), "<message id='%d'/>", i);
        assert_int_equal(
            storage_offline_push(run.st, "juliet", msg, (size_t)n, 100, on_status, &steps[i]), 0);
    }
    assert_int_equal(storage_offline_get(run.st, "juliet", on_list, &steps[21]), 0);
    /* A user's roster, document keys and offline queue in one request. */
    storage_roster_item_t romeo = {.jid = "romeo@localhost", .subscription = STORAGE_SUB_BOTH};
    assert_int_equal(storage_roster_put(run.st, "juliet", &romeo, on_version, &steps[22]), 0);
    assert_int_equal(storage_doc_put(run.st, "juliet", "subin", "nurse@localhost", "x", 1,
                                     on_status, &steps[23]),
                     0);
    assert_int_equal(storage_user_load(run.st, "juliet", "subin", NULL, true, on_load, &steps[24]),
                     0);
    assert_int_equal(
        storage_user_load(run.st, "nobody", NULL, NULL, false, on_load_missing, &steps[25]), 0);
    assert_int_equal(storage_user_load(run.st, "juliet", "BAD KIND", NULL, false, on_load, NULL),
                     -EINVAL);
    /* Nothing runs inside the submitting call. */
    assert_int_equal(run.n, 0);
    /* Close with requests in flight: they still complete, in order, before the close. */
    storage_close(run.st, on_closed, &run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(run.closed, 1);
    assert_int_equal(run.n, 26);
    for (int i = 0; i < 26; i++)
        assert_int_equal(run.order[i], i);
    assert_true(run.on_loop_thread);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_load_kinds(void *arg, int status, const storage_user_data_t *d)
{
    step_t *s = arg;
    assert_int_equal(status, 0);
    assert_int_equal(d->roster->count, 0);
    assert_int_equal(d->doc_keys->count, 0);
    assert_int_equal(d->offline->count, 0);
    /* One entry per kind asked for, in that order, keys sorted, values beside them. */
    assert_int_equal(d->ndocs, 3);
    assert_int_equal(d->docs[0].keys.count, 2);
    assert_int_equal(d->docs[0].values.count, 2);
    assert_string_equal(d->docs[0].keys.items[0].data, "a:ns");
    assert_string_equal(d->docs[0].values.items[0].data, "<a/>");
    assert_string_equal(d->docs[0].keys.items[1].data, "z:ns");
    assert_int_equal(d->docs[0].values.items[1].len, 3);
    assert_memory_equal(d->docs[0].values.items[1].data, "z\0z", 3);
    assert_int_equal(d->docs[1].keys.count, 0);
    assert_int_equal(d->docs[1].values.count, 0);
    assert_int_equal(d->docs[2].keys.count, 1);
    assert_string_equal(d->docs[2].keys.items[0].data, "current");
    assert_string_equal(d->docs[2].values.items[0].data, "<vCard/>");
    s->run->order[s->run->n++] = s->index;
}

static void test_user_load_kinds(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    assert_int_equal(storage_db_user_create(db, "juliet", "c"), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "z:ns", "z\0z", 3), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "private", "a:ns", "<a/>", 4), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "vcard", "current", "<vCard/>", 8), 0);
    storage_db_close(db);

    uv_loop_t loop;
    uv_loop_init(&loop);
    async_run_t run = {.loop_thread = uv_thread_self(), .on_loop_thread = true};
    assert_int_equal(storage_open(&loop, &f->cfg, &run.st), 0);
    step_t steps[2] = {{.run = &run, .index = 0}, {.run = &run, .index = 1}};
    /* The kinds are copied: the caller's array may go away at once. */
    char **kinds = calloc(4, sizeof(char *));
    kinds[0] = strdup("private");
    kinds[1] = strdup("bookmarks");
    kinds[2] = strdup("vcard");
    assert_int_equal(storage_user_load(run.st, "juliet", NULL, (const char *const *)kinds, false,
                                       on_load_kinds, &steps[0]),
                     0);
    for (int i = 0; i < 3; i++)
        free(kinds[i]);
    free(kinds);
    const char *bad[] = {"vcard", "Not A Kind", NULL};
    assert_int_equal(storage_user_load(run.st, "juliet", NULL, bad, false, on_load_kinds, NULL),
                     -EINVAL);
    const char *many[STORAGE_LOAD_KINDS_MAX + 2];
    for (int i = 0; i <= STORAGE_LOAD_KINDS_MAX; i++)
        many[i] = "vcard";
    many[STORAGE_LOAD_KINDS_MAX + 1] = NULL;
    assert_int_equal(storage_user_load(run.st, "juliet", NULL, many, false, on_load_kinds, NULL),
                     -EINVAL);
    assert_int_equal(
        storage_user_load(run.st, "nobody", NULL, many + 1, false, on_load_missing, &steps[1]), 0);
    storage_close(run.st, on_closed, &run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(run.closed, 1);
    assert_int_equal(run.n, 2);
    assert_int_equal(uv_loop_close(&loop), 0);
}

typedef struct archive_step {
    async_run_t *run;
    int index;
    int status;
    char ids[256]; /* the items' ids, space-separated */
    size_t total;
    size_t first_index;
    bool complete;
    char data[64]; /* the first item's bytes */
} archive_step_t;

static void on_archive_status(void *arg, int status)
{
    archive_step_t *s = arg;
    s->status = status;
    s->run->order[s->run->n++] = s->index;
}

static void on_archive(void *arg, int status, const storage_archive_result_t *r)
{
    archive_step_t *s = arg;
    s->status = status;
    s->run->order[s->run->n++] = s->index;
    if (status < 0) {
        assert_null(r);
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < r->count; i++) {
        assert_string_equal(r->items[i].id, kid(r->items[i].stamp_us));
        n += (size_t)snprintf(s->ids + n, sizeof(s->ids) - n, "%s%lld", i > 0 ? " " : "",
                              (long long)r->items[i].stamp_us);
    }
    s->total = r->total;
    s->first_index = r->first_index;
    s->complete = r->complete;
    if (r->count > 0)
        snprintf(s->data, sizeof(s->data), "%s", r->items[0].data.data);
}

static void test_archive_async(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    async_run_t run = {.loop_thread = uv_thread_self(), .on_loop_thread = true};
    assert_int_equal(storage_open(&loop, &f->cfg, &run.st), 0);
    archive_step_t steps[8];
    memset(steps, 0, sizeof(steps));
    for (int i = 0; i < 8; i++)
        steps[i] = (archive_step_t){.run = &run, .index = i, .status = 1};
    assert_int_equal(storage_user_create(run.st, "juliet", "c", on_archive_status, &steps[0]), 0);

    /* The batch is copied at submission: every byte of it is overwritten right after. */
    storage_archive_entry_t *batch = calloc(12, sizeof(*batch));
    char(*text)[4][40] = calloc(12, sizeof(*text));
    for (int i = 0; i < 12; i++) {
        snprintf(text[i][0], 40, "%s", i == 11 ? "nobody" : "juliet");
        snprintf(text[i][2], 40, "%s",
                 i % 3 == 0 ? "romeo@montague.example/r" : "nurse@capulet.example");
        snprintf(text[i][3], 40, "<message n='%d'/>", i);
        batch[i] = entry(text[i][0], 100 * i, text[i][2], text[i][3]);
    }
    assert_int_equal(storage_archive_append(run.st, batch, 12, on_archive_status, &steps[1]), 0);
    memset(text, 'x', 12 * sizeof(*text));
    memset(batch, 0xff, 12 * sizeof(*batch));
    free(text);
    free(batch);

    /* So is the query, ids included. */
    storage_archive_query_t *q = calloc(1, sizeof(*q));
    char *with = strdup("romeo@montague.example");
    char *after = strdup(kid(0));
    char **ids = calloc(3, sizeof(char *));
    ids[0] = strdup(kid(900));
    ids[1] = strdup(kid(300));
    ids[2] = strdup(kid(600));
    *q = (storage_archive_query_t){
        .with = with, .after_id = after, .ids = (const char *const *)ids, .nids = 3, .max = 2};
    assert_int_equal(storage_archive_query(run.st, "juliet", q, on_archive, &steps[2]), 0);
    free(with);
    free(after);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
    free(ids);
    memset(q, 0, sizeof(*q));
    q->max = 100;
    q->from_end = true;
    assert_int_equal(storage_archive_query(run.st, "juliet", q, on_archive, &steps[3]), 0);
    assert_int_equal(storage_archive_expire(run.st, "juliet", 500, on_archive_status, &steps[4]),
                     0);
    assert_int_equal(storage_archive_query(run.st, "juliet", q, on_archive, &steps[5]), 0);
    q->after_id = "gone";
    assert_int_equal(storage_archive_query(run.st, "juliet", q, on_archive, &steps[6]), 0);
    assert_int_equal(storage_archive_expire(run.st, "nobody", 0, on_archive_status, &steps[7]), 0);
    /* Malformed arguments are refused at submission, and nothing runs. */
    q->after_id = "no way";
    assert_int_equal(storage_archive_query(run.st, "juliet", q, on_archive, NULL), -EINVAL);
    storage_archive_entry_t bad = entry("juliet", -1, "x@y", "<m/>");
    assert_int_equal(storage_archive_append(run.st, &bad, 1, on_archive_status, NULL), -EINVAL);
    assert_int_equal(storage_archive_expire(run.st, "a@b/c", 0, on_archive_status, NULL), -EINVAL);
    free(q);
    assert_int_equal(run.n, 0);

    storage_close(run.st, on_closed, &run);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(run.closed, 1);
    assert_int_equal(run.n, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(run.order[i], i);
    assert_int_equal(steps[0].status, 0);
    assert_int_equal(steps[1].status, 0); /* nobody's entry skipped, the rest written */
    assert_int_equal(steps[2].status, 0);
    assert_string_equal(steps[2].ids, "300 600");
    assert_int_equal(steps[2].total, 3);
    assert_int_equal(steps[2].first_index, 0);
    assert_false(steps[2].complete);
    assert_string_equal(steps[2].data, "<message n='3'/>");
    assert_string_equal(steps[3].ids, "0 100 200 300 400 500 600 700 800 900 1000");
    assert_int_equal(steps[3].total, 11);
    assert_true(steps[3].complete);
    assert_int_equal(steps[4].status, 0);
    assert_string_equal(steps[5].ids, "500 600 700 800 900 1000");
    assert_int_equal(steps[6].status, -ENOMSG);
    assert_int_equal(steps[7].status, -ENOENT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_accounts, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_accounts, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_after_miss, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_lookup_after_miss, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_roster, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_roster, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_offline_and_docs, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_offline_and_docs, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_async_front, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_async_front, setup_files, teardown),
        cmocka_unit_test(test_archive_ids),
        cmocka_unit_test_setup_teardown(test_archive, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_rooms, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_rooms, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_paging, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_paging, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_file, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_two_handles, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_two_handles, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_async, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_async, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_migration, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_migration, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_chunk_paging, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_chunk_paging, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_chunk_bounds, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_chunk_bounds, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_archive_grows, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_archive_migration_v7, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_doc_get_all, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_doc_get_all, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_user_load_kinds, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_user_load_kinds, setup_files, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
