/* SPDX-License-Identifier: MIT */
/* The storage layer: one suite run against both backends, and the asynchronous front. */
#include "core/alloc.h"
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

typedef struct fixture {
    char dir[64];
    char path[128];
    storage_config_t cfg;
} fixture_t;

static int setup_backend(void **state, storage_backend_kind_t kind)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/parley-storage-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/%s", f->dir,
             kind == STORAGE_BACKEND_SQLITE ? "parley.db" : "files");
    f->cfg = (storage_config_t){.backend = kind, .path = f->path, .sync = STORAGE_SYNC_NONE};
    *state = f;
    return 0;
}

static int setup_sqlite(void **state)
{
    return setup_backend(state, STORAGE_BACKEND_SQLITE);
}

static int setup_files(void **state)
{
    return setup_backend(state, STORAGE_BACKEND_FILES);
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static storage_db_t *open_db(fixture_t *f)
{
    storage_db_t *db = NULL;
    assert_int_equal(storage_db_open(&f->cfg, &db), 0);
    return db;
}

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
