/* SPDX-License-Identifier: MIT */
/* Documents of services (MUC rooms, pubsub nodes): every case on both backends, and async. */
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
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#define MUC "conference.localhost"

#include "storage_fixture.h"

/* The document must hold exactly len bytes of want, followed by a NUL. */
static void expect_doc(storage_db_t *db, const char *service, const char *kind, const char *key,
                       const char *want, size_t len)
{
    char *data = NULL;
    size_t n = 12345;
    assert_int_equal(storage_db_svc_get(db, service, kind, key, &data, &n), 0);
    assert_non_null(data);
    assert_int_equal(n, len);
    if (len > 0)
        assert_memory_equal(data, want, len);
    assert_int_equal(data[len], '\0');
    core_free(data);
}

static void expect_missing(storage_db_t *db, const char *service, const char *kind, const char *key)
{
    char *data = (char *)"untouched";
    size_t n = 7;
    assert_int_equal(storage_db_svc_get(db, service, kind, key, &data, &n), -ENOENT);
    /* Out-parameters are filled only on success. */
    assert_string_equal(data, "untouched");
    assert_int_equal(n, 7);
}

/* get_all must give exactly these keys (in this order), each with the value "v:<key>". */
static void expect_all(storage_db_t *db, const char *service, const char *kind,
                       const char *const *keys, size_t count)
{
    storage_docs_t d = {0};
    assert_int_equal(storage_db_svc_get_all(db, service, kind, &d), 0);
    assert_int_equal(d.keys.count, count);
    assert_int_equal(d.values.count, count);
    for (size_t i = 0; i < count; i++) {
        char want[1100];
        int n = snprintf(want, sizeof(want), "v:%s", keys[i]);
        assert_string_equal(d.keys.items[i].data, keys[i]);
        assert_int_equal(d.keys.items[i].len, strlen(keys[i]));
        assert_int_equal(d.values.items[i].len, (size_t)n);
        assert_memory_equal(d.values.items[i].data, want, (size_t)n);
    }
    storage_docs_clear(&d);
}

static void put_v(storage_db_t *db, const char *service, const char *kind, const char *key)
{
    char v[1100];
    int n = snprintf(v, sizeof(v), "v:%s", key);
    assert_int_equal(storage_db_svc_put(db, service, kind, key, v, (size_t)n), 0);
}

/* put, get, replace, delete, get_all, and -ENOENT for what is not there. */
static void test_svc_basic(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    expect_missing(db, MUC, "room", "lobby");
    assert_int_equal(storage_db_svc_delete(db, MUC, "room", "lobby"), -ENOENT);
    storage_docs_t d = {0};
    assert_int_equal(storage_db_svc_get_all(db, MUC, "room", &d), 0);
    assert_int_equal(d.keys.count, 0);
    assert_int_equal(d.values.count, 0);
    storage_docs_clear(&d);

    assert_int_equal(storage_db_svc_put(db, MUC, "room", "lobby", "<room v='1'/>", 13), 0);
    expect_doc(db, MUC, "room", "lobby", "<room v='1'/>", 13);
    /* Replacing: a shorter value leaves nothing of the longer one behind. */
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "lobby", "<r/>", 4), 0);
    expect_doc(db, MUC, "room", "lobby", "<r/>", 4);
    /* Opaque bytes, NUL and newlines included; and an empty document (data may be NULL). */
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "bin", "a\0b\n\r\tc\xff", 8), 0);
    expect_doc(db, MUC, "room", "bin", "a\0b\n\r\tc\xff", 8);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "empty", NULL, 0), 0);
    expect_doc(db, MUC, "room", "empty", "", 0);

    /* get_all: keys sorted bytewise, whatever the order they were written in. */
    storage_db_svc_delete(db, MUC, "room", "bin");
    storage_db_svc_delete(db, MUC, "room", "empty");
    storage_db_svc_delete(db, MUC, "room", "lobby");
    const char *order[] = {"zeta", "Zeta", "alpha", "alpha2", "alph", "_x", "10", "9", "é"};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
        put_v(db, MUC, "room", order[i]);
    const char *sorted[] = {"10", "9", "Zeta", "_x", "alph", "alpha", "alpha2", "zeta", "é"};
    expect_all(db, MUC, "room", sorted, 9);

    assert_int_equal(storage_db_svc_delete(db, MUC, "room", "alpha"), 0);
    assert_int_equal(storage_db_svc_delete(db, MUC, "room", "alpha"), -ENOENT);
    expect_missing(db, MUC, "room", "alpha");
    const char *after[] = {"10", "9", "Zeta", "_x", "alph", "alpha2", "zeta", "é"};
    expect_all(db, MUC, "room", after, 8);
    /* Deleted and written again. */
    put_v(db, MUC, "room", "alpha");
    expect_all(db, MUC, "room", sorted, 9);
    storage_db_close(db);
}

/* Malformed arguments are -EINVAL, and the size limit holds exactly at its bound. */
static void test_svc_limits(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    char *data = NULL;
    size_t len = 0;
    storage_docs_t d = {0};
    assert_int_equal(storage_db_svc_put(db, NULL, "room", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, "", "room", "k", "x", 1), -EINVAL);
    /* RFC 7622 §3.2: a domainpart holds no '@' or '/'. */
    assert_int_equal(storage_db_svc_put(db, "a@" MUC, "room", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC "/r", "room", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, "bad\xc3(", "room", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "Room", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "", "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, NULL, "k", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", NULL, "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "\xed\xa0\x80", "x", 1), -EINVAL);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "k", NULL, 1), -EINVAL);
    assert_int_equal(storage_db_svc_get(db, MUC, "room", NULL, &data, &len), -EINVAL);
    assert_int_equal(storage_db_svc_get(db, "", "room", "k", &data, &len), -EINVAL);
    assert_int_equal(storage_db_svc_delete(db, MUC, "room", ""), -EINVAL);
    assert_int_equal(storage_db_svc_delete(db, MUC, "ROOM", "k"), -EINVAL);
    assert_int_equal(storage_db_svc_get_all(db, MUC, "no kind", &d), -EINVAL);
    assert_int_equal(storage_db_svc_get_all(db, "x/y", "room", &d), -EINVAL);

    /* Names at their bounds. */
    char name[STORAGE_SERVICE_MAX + 2];
    memset(name, 'k', sizeof(name));
    name[STORAGE_KEY_MAX + 1] = '\0';
    assert_int_equal(storage_db_svc_put(db, MUC, "room", name, "x", 1), -EINVAL);
    name[STORAGE_SERVICE_MAX + 1] = '\0';
    assert_int_equal(storage_db_svc_put(db, name, "room", "k", "x", 1), -EINVAL);
    char kind[STORAGE_KIND_MAX + 2];
    memset(kind, 'r', sizeof(kind));
    kind[STORAGE_KIND_MAX + 1] = '\0';
    assert_int_equal(storage_db_svc_put(db, MUC, kind, "k", "x", 1), -EINVAL);
    kind[STORAGE_KIND_MAX] = '\0';
    assert_int_equal(storage_db_svc_put(db, MUC, kind, "k", "x", 1), 0);
    expect_doc(db, MUC, kind, "k", "x", 1);
    /* A long name is fine for sqlite; the files backend needs it to fit a file name. */
    name[300] = '\0';
    int want = f->cfg.backend == STORAGE_BACKEND_FILES ? -ENAMETOOLONG : 0;
    assert_int_equal(storage_db_svc_put(db, name, "room", "k", "x", 1), want);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", name, "x", 1), want);
    name[STORAGE_FILES_NAME_MAX] = '\0';
    assert_int_equal(storage_db_svc_put(db, name, "room", name, "x", 1), 0);
    expect_doc(db, name, "room", name, "x", 1);

    /* The size limit: a document of exactly STORAGE_SVC_VALUE_MAX bytes fits, one more not. */
    char *big = malloc(STORAGE_SVC_VALUE_MAX + 1);
    for (size_t i = 0; i <= STORAGE_SVC_VALUE_MAX; i++)
        big[i] = (char)('a' + i % 23);
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "big", big, STORAGE_SVC_VALUE_MAX + 1),
                     -EINVAL);
    expect_missing(db, MUC, "room", "big");
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "big", big, STORAGE_SVC_VALUE_MAX), 0);
    expect_doc(db, MUC, "room", "big", big, STORAGE_SVC_VALUE_MAX);
    free(big);
    storage_db_close(db);
}

/* Two services and two kinds never see each other's documents, nor users' documents. */
static void test_svc_apart(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    const char *services[] = {MUC, "pubsub.localhost"};
    const char *kinds[] = {"room", "node"};
    for (size_t s = 0; s < 2; s++) {
        for (size_t k = 0; k < 2; k++) {
            char v[64];
            int n = snprintf(v, sizeof(v), "%s %s", services[s], kinds[k]);
            assert_int_equal(storage_db_svc_put(db, services[s], kinds[k], "same", v, (size_t)n),
                             0);
        }
    }
    put_v(db, MUC, "room", "only-muc-room");
    /* A user with the service's name and a document of the same kind and key. */
    assert_int_equal(storage_db_user_create(db, MUC, "c"), 0);
    assert_int_equal(storage_db_doc_put(db, MUC, "room", "same", "user's", 6), 0);

    for (size_t s = 0; s < 2; s++) {
        for (size_t k = 0; k < 2; k++) {
            char v[64];
            int n = snprintf(v, sizeof(v), "%s %s", services[s], kinds[k]);
            expect_doc(db, services[s], kinds[k], "same", v, (size_t)n);
        }
    }
    storage_docs_t d = {0};
    assert_int_equal(storage_db_svc_get_all(db, MUC, "room", &d), 0);
    assert_int_equal(d.keys.count, 2);
    assert_string_equal(d.keys.items[0].data, "only-muc-room");
    assert_string_equal(d.keys.items[1].data, "same");
    assert_string_equal(d.values.items[1].data, MUC " room");
    storage_docs_clear(&d);
    assert_int_equal(storage_db_svc_get_all(db, "pubsub.localhost", "room", &d), 0);
    assert_int_equal(d.keys.count, 1);
    storage_docs_clear(&d);
    expect_missing(db, "pubsub.localhost", "room", "only-muc-room");
    expect_missing(db, MUC, "node", "only-muc-room");

    /* Deleting in one place leaves the others. */
    assert_int_equal(storage_db_svc_delete(db, MUC, "node", "same"), 0);
    expect_missing(db, MUC, "node", "same");
    expect_doc(db, MUC, "room", "same", MUC " room", strlen(MUC " room"));
    expect_doc(db, "pubsub.localhost", "node", "same", "pubsub.localhost node",
               strlen("pubsub.localhost node"));

    /* Services' documents are not a user's: the account list and its deletion pass them by. */
    storage_list_t users = {0};
    assert_int_equal(storage_db_user_list(db, &users), 0);
    assert_int_equal(users.count, 1);
    assert_string_equal(users.items[0].data, MUC);
    storage_list_clear(&users);
    storage_blob_t b = {0};
    assert_int_equal(storage_db_doc_get(db, MUC, "room", "same", &b), 0);
    assert_string_equal(b.data, "user's");
    storage_blob_clear(&b);
    assert_int_equal(storage_db_user_delete(db, MUC), 0);
    expect_doc(db, MUC, "room", "same", MUC " room", strlen(MUC " room"));
    storage_db_close(db);
}

/* Names that must never become paths, hidden files or collisions on the files backend. */
static void test_svc_odd_names(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    const char *odd[] = {"..",          ".hidden",   ".lock", ".tmp",       ".services",
                         "back\\slash", "fußball",   "UPPER", "upper",      "per%cent",
                         "%2E",         "a b\tc\nd", "lock",  "x:y*?<>|\"", "🎉"};
    size_t n = sizeof(odd) / sizeof(odd[0]);
    for (size_t s = 0; s < n; s++) {
        for (size_t k = 0; k < n; k++) {
            char v[128];
            int len = snprintf(v, sizeof(v), "%zu/%zu", s, k);
            assert_int_equal(storage_db_svc_put(db, odd[s], "room", odd[k], v, (size_t)len), 0);
        }
    }
    storage_db_close(db);

    db = open_db(f);
    for (size_t s = 0; s < n; s++) {
        storage_docs_t d = {0};
        assert_int_equal(storage_db_svc_get_all(db, odd[s], "room", &d), 0);
        assert_int_equal(d.keys.count, n);
        for (size_t i = 1; i < d.keys.count; i++)
            assert_true(strcmp(d.keys.items[i - 1].data, d.keys.items[i].data) < 0);
        for (size_t i = 0; i < d.keys.count; i++) {
            size_t k = 0;
            while (k < n && strcmp(odd[k], d.keys.items[i].data) != 0)
                k++;
            assert_true(k < n);
            char v[128];
            snprintf(v, sizeof(v), "%zu/%zu", s, k);
            assert_string_equal(d.values.items[i].data, v);
        }
        storage_docs_clear(&d);
    }
    storage_list_t users = {0};
    assert_int_equal(storage_db_user_list(db, &users), 0);
    assert_int_equal(users.count, 0);
    storage_list_clear(&users);
    /* A user named like the services' folder is no collision either. */
    assert_int_equal(storage_db_user_create(db, ".services", "c"), 0);
    expect_doc(db, ".services", "room", "..", "4/0", 3);
    storage_db_close(db);

    if (f->cfg.backend == STORAGE_BACKEND_FILES) {
        /* The layout docs/storage.md describes. */
        char p[512];
        struct stat st;
        snprintf(p, sizeof(p), "%s/.services/%%2E./room/back%%5Cslash", f->path);
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_size, 3); /* "0/5": the service "..", the key "back\\slash" */
        snprintf(p, sizeof(p), "%s/.services/%%2Eservices/room/%%2Elock", f->path);
        assert_int_equal(stat(p, &st), 0);
        snprintf(p, sizeof(p), "%s/%%2Eservices/account", f->path);
        assert_int_equal(stat(p, &st), 0);
    }
}

/* Documents survive closing and reopening, and one handle sees another's writes. */
static void test_svc_persist(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = open_db(f);
    put_v(db, MUC, "room", "lobby");
    put_v(db, MUC, "room", "kitchen");
    assert_int_equal(storage_db_svc_put(db, MUC, "room", "gone", "x", 1), 0);
    assert_int_equal(storage_db_svc_delete(db, MUC, "room", "gone"), 0);
    storage_db_close(db);

    db = open_db(f);
    const char *keys[] = {"kitchen", "lobby"};
    expect_all(db, MUC, "room", keys, 2);
    expect_missing(db, MUC, "room", "gone");
    storage_db_t *other = open_db(f);
    assert_int_equal(storage_db_svc_put(other, MUC, "room", "lobby", "new", 3), 0);
    expect_doc(db, MUC, "room", "lobby", "new", 3);
    assert_int_equal(storage_db_svc_delete(db, MUC, "room", "kitchen"), 0);
    expect_missing(other, MUC, "room", "kitchen");
    storage_db_close(other);
    storage_db_close(db);
}

/* Writers on two handles in two threads, into one service and kind: nothing is lost. */
typedef struct writer {
    storage_config_t *cfg;
    int id;
    int failures;
} writer_t;

#define WRITES 150

static void writer_run(void *arg)
{
    writer_t *w = arg;
    storage_db_t *db = NULL;
    if (storage_db_open(w->cfg, &db) < 0) {
        w->failures = WRITES;
        return;
    }
    for (int i = 0; i < WRITES; i++) {
        char key[32], v[64];
        snprintf(key, sizeof(key), "w%d-%03d", w->id, i);
        int n = snprintf(v, sizeof(v), "v:%s", key);
        if (storage_db_svc_put(db, MUC, "room", key, v, (size_t)n) < 0)
            w->failures++;
        /* Everyone also rewrites one shared document. */
        if (storage_db_svc_put(db, MUC, "room", "shared", v, (size_t)n) < 0)
            w->failures++;
    }
    storage_db_close(db);
}

static void test_svc_concurrent(void **state)
{
    fixture_t *f = *state;
    storage_db_close(open_db(f)); /* create the store (and its schema) once */
    writer_t w[2] = {{.cfg = &f->cfg, .id = 0}, {.cfg = &f->cfg, .id = 1}};
    uv_thread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(uv_thread_create(&t[i], writer_run, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(uv_thread_join(&t[i]), 0);
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    storage_db_t *db = open_db(f);
    storage_docs_t d = {0};
    assert_int_equal(storage_db_svc_get_all(db, MUC, "room", &d), 0);
    assert_int_equal(d.keys.count, 2 * WRITES + 1);
    for (size_t i = 0; i < d.keys.count; i++) {
        char want[64];
        if (strcmp(d.keys.items[i].data, "shared") == 0) {
            assert_true(strcmp(d.values.items[i].data, "v:w0-149") == 0 ||
                        strcmp(d.values.items[i].data, "v:w1-149") == 0);
            continue;
        }
        snprintf(want, sizeof(want), "v:%s", d.keys.items[i].data);
        assert_string_equal(d.values.items[i].data, want);
    }
    storage_docs_clear(&d);
    storage_db_close(db);
}

/* A database left at migration 4 (before the archive of rooms and before this table). */
static void test_svc_migration(void **state)
{
    fixture_t *f = *state;
    storage_db_t *db = NULL;
    assert_int_equal(storage_sqlite_open_at(&f->cfg, 4, &db), 0);
    assert_int_equal(storage_db_user_create(db, "juliet", "creds"), 0);
    assert_int_equal(storage_db_doc_put(db, "juliet", "vcard", "v", "<vCard/>", 8), 0);
    /* The table is not there yet. */
    assert_true(storage_db_svc_put(db, MUC, "room", "lobby", "x", 1) < 0);
    storage_db_close(db);

    db = open_db(f);
    storage_blob_t b = {0};
    assert_int_equal(storage_db_doc_get(db, "juliet", "vcard", "v", &b), 0);
    assert_string_equal(b.data, "<vCard/>");
    storage_blob_clear(&b);
    put_v(db, MUC, "room", "lobby");
    const char *keys[] = {"lobby"};
    expect_all(db, MUC, "room", keys, 1);
    storage_db_close(db);

    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_open(f->path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT version FROM schema_version", -1, &s, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(s, 0), storage_sqlite_schema_current());
    sqlite3_finalize(s);
    /* (service, kind, key) is the primary key: a second row for it is refused. */
    assert_int_equal(sqlite3_exec(h,
                                  "INSERT INTO service_documents (service, kind, key, data)"
                                  " VALUES ('" MUC "', 'room', 'lobby', x'00')",
                                  NULL, NULL, NULL),
                     SQLITE_CONSTRAINT);
    sqlite3_close(h);
}

/* ---- the asynchronous front ---- */

typedef struct async_run {
    storage_t *st;
    int order[32];
    int n;
    int closed;
    uv_thread_t loop_thread;
    bool on_loop_thread;
} async_run_t;

typedef struct svc_step {
    async_run_t *run;
    int index;
    int status;
    char data[64]; /* get: the bytes; get_all: "key=value;..." */
    size_t len;
} svc_step_t;

static void step_done(svc_step_t *s, int status)
{
    uv_thread_t self = uv_thread_self();
    s->run->on_loop_thread &= uv_thread_equal(&self, &s->run->loop_thread) != 0;
    s->status = status;
    s->run->order[s->run->n++] = s->index;
}

static void on_status(void *arg, int status)
{
    step_done(arg, status);
}

static void on_bytes(void *arg, int status, const char *data, size_t len)
{
    svc_step_t *s = arg;
    step_done(s, status);
    if (status < 0) {
        assert_null(data);
        return;
    }
    assert_true(len < sizeof(s->data));
    assert_int_equal(data[len], '\0');
    memcpy(s->data, data, len);
    s->len = len;
}

static void on_docs(void *arg, int status, const storage_docs_t *d)
{
    svc_step_t *s = arg;
    step_done(s, status);
    if (status < 0) {
        assert_null(d);
        return;
    }
    assert_int_equal(d->keys.count, d->values.count);
    size_t n = 0;
    for (size_t i = 0; i < d->keys.count; i++)
        n += (size_t)snprintf(s->data + n, sizeof(s->data) - n, "%s=%s;", d->keys.items[i].data,
                              d->values.items[i].data);
    s->len = d->keys.count;
}

static void on_closed(void *arg)
{
    ((async_run_t *)arg)->closed = 1;
}

static void test_svc_async(void **state)
{
    fixture_t *f = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    async_run_t run = {.loop_thread = uv_thread_self(), .on_loop_thread = true};
    assert_int_equal(storage_open(&loop, &f->cfg, &run.st), 0);
    svc_step_t steps[12];
    for (int i = 0; i < 12; i++)
        steps[i] = (svc_step_t){.run = &run, .index = i, .status = 1};

    /* Inputs are copied at submission: every byte is overwritten right after. */
    char *service = strdup(MUC), *kind = strdup("room"), *key = strdup("lobby");
    char *data = strdup("<room name='Lobby'/>");
    assert_int_equal(
        storage_svc_put(run.st, service, kind, key, data, strlen(data), on_status, &steps[0]), 0);
    memset(service, 'x', strlen(service));
    memset(kind, 'x', strlen(kind));
    memset(key, 'x', strlen(key));
    memset(data, 'x', strlen(data));
    free(service);
    free(kind);
    free(key);
    free(data);
    assert_int_equal(storage_svc_put(run.st, MUC, "room", "attic", "a\0b", 3, on_status, &steps[1]),
                     0);
    assert_int_equal(storage_svc_put(run.st, MUC, "node", "n1", "<n/>", 4, on_status, &steps[2]),
                     0);
    assert_int_equal(storage_svc_get(run.st, MUC, "room", "lobby", on_bytes, &steps[3]), 0);
    assert_int_equal(storage_svc_get(run.st, MUC, "room", "nowhere", on_bytes, &steps[4]), 0);
    assert_int_equal(storage_svc_get_all(run.st, MUC, "room", on_docs, &steps[5]), 0);
    assert_int_equal(storage_svc_delete(run.st, MUC, "room", "lobby", on_status, &steps[6]), 0);
    assert_int_equal(storage_svc_delete(run.st, MUC, "room", "lobby", on_status, &steps[7]), 0);
    assert_int_equal(storage_svc_get_all(run.st, MUC, "room", on_docs, &steps[8]), 0);
    assert_int_equal(storage_svc_get_all(run.st, "other.localhost", "room", on_docs, &steps[9]), 0);
    assert_int_equal(storage_svc_get(run.st, MUC, "room", "attic", on_bytes, &steps[10]), 0);
    assert_int_equal(storage_svc_put(run.st, MUC, "room", "e", NULL, 0, on_status, &steps[11]), 0);

    /* Malformed arguments are refused at submission, and their callbacks never run. */
    assert_int_equal(storage_svc_put(run.st, MUC, "room", "k", "x", 1, NULL, NULL), -EINVAL);
    assert_int_equal(storage_svc_put(run.st, "a/b", "room", "k", "x", 1, on_status, NULL), -EINVAL);
    assert_int_equal(
        storage_svc_put(run.st, MUC, "room", "k", "x", STORAGE_SVC_VALUE_MAX + 1, on_status, NULL),
        -EINVAL);
    assert_int_equal(storage_svc_get(run.st, MUC, "Room", "k", on_bytes, NULL), -EINVAL);
    assert_int_equal(storage_svc_get(run.st, MUC, "room", NULL, on_bytes, NULL), -EINVAL);
    assert_int_equal(storage_svc_delete(run.st, "", "room", "k", on_status, NULL), -EINVAL);
    assert_int_equal(storage_svc_get_all(run.st, MUC, "room", NULL, NULL), -EINVAL);
    assert_int_equal(storage_svc_get_all(run.st, MUC, NULL, on_docs, NULL), -EINVAL);
    /* Nothing runs inside the submitting call. */
    assert_int_equal(run.n, 0);

    /* Closed with all of them in flight: they complete, in order, before the close. */
    storage_close(run.st, on_closed, &run);
    assert_int_equal(storage_svc_get(run.st, MUC, "room", "attic", on_bytes, NULL), -ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(run.closed, 1);
    assert_int_equal(run.n, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(run.order[i], i);
    assert_true(run.on_loop_thread);
    assert_int_equal(steps[0].status, 0);
    assert_int_equal(steps[1].status, 0);
    assert_int_equal(steps[2].status, 0);
    assert_int_equal(steps[3].status, 0);
    assert_string_equal(steps[3].data, "<room name='Lobby'/>");
    assert_int_equal(steps[3].len, 20);
    assert_int_equal(steps[4].status, -ENOENT);
    assert_int_equal(steps[5].status, 0);
    assert_int_equal(steps[5].len, 2);
    assert_string_equal(steps[5].data, "attic=a;lobby=<room name='Lobby'/>;");
    assert_int_equal(steps[6].status, 0);
    assert_int_equal(steps[7].status, -ENOENT);
    assert_int_equal(steps[8].status, 0);
    assert_string_equal(steps[8].data, "attic=a;");
    assert_int_equal(steps[9].status, 0);
    assert_int_equal(steps[9].len, 0);
    assert_int_equal(steps[10].status, 0);
    assert_int_equal(steps[10].len, 3);
    assert_memory_equal(steps[10].data, "a\0b", 3);
    assert_int_equal(steps[11].status, 0);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* And it was all written to the store. */
    storage_db_t *db = open_db(f);
    expect_doc(db, MUC, "room", "attic", "a\0b", 3);
    expect_doc(db, MUC, "room", "e", "", 0);
    expect_doc(db, MUC, "node", "n1", "<n/>", 4);
    expect_missing(db, MUC, "room", "lobby");
    storage_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_svc_basic, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_basic, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_limits, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_limits, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_apart, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_apart, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_odd_names, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_odd_names, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_persist, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_persist, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_concurrent, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_concurrent, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_async, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(test_svc_async, setup_files, teardown),
        cmocka_unit_test_setup_teardown(test_svc_migration, setup_sqlite, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
