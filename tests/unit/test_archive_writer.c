/* SPDX-License-Identifier: MIT */
/* The archive writer: ids, keys in order, group commit by size or time, stop before close. */
#include "storage/storage.h"

#include "storage_fixture.h"

#include <errno.h>
#include <string.h>

/* A room owner: no account is needed for its archive. */
#define OWNER "room@conference.localhost"

typedef struct run {
    uv_loop_t loop;
    storage_t *st;
    size_t counted; /* the last query's total */
    bool answered;
    bool closed;
} run_t;

static void on_counted(void *arg, int status, const storage_archive_result_t *res)
{
    run_t *r = arg;
    assert_int_equal(status, 0);
    r->counted = res->total;
    r->answered = true;
}

/* How many entries the store holds for OWNER now (a request behind everything submitted). */
static size_t stored(run_t *r)
{
    storage_archive_query_t q = {.max = 0};
    r->answered = false;
    assert_int_equal(storage_archive_query(r->st, OWNER, &q, on_counted, r), 0);
    while (!r->answered)
        uv_run(&r->loop, UV_RUN_ONCE);
    return r->counted;
}

static void on_closed(void *arg)
{
    ((run_t *)arg)->closed = true;
}

static void add(storage_archive_writer_t *w, unsigned i, char id[STORAGE_ARCHIVE_ID_LEN + 1])
{
    char body[64];
    int n = snprintf(body, sizeof(body), "<message><body>%u</body></message>", i);
    assert_int_equal(storage_archive_writer_add(w, OWNER, OWNER "/nick", body, (size_t)n, id), 0);
}

static void writer_batches(void **state)
{
    fixture_t *f = *state;
    run_t r = {0};
    uv_loop_init(&r.loop);
    assert_int_equal(storage_open(&r.loop, &f->cfg, &r.st), 0);
    core_log_t log = {.level = CORE_LOG_ERROR, .component = "test"};
    storage_archive_writer_t *w =
        storage_archive_writer_new(r.st, &r.loop, &log, "test archive", 4096, 1u << 20);

    /* A few entries wait (up to 10 ms) for company: a query right after sees none yet. */
    char id[STORAGE_ARCHIVE_ID_LEN + 1], prev[STORAGE_ARCHIVE_ID_LEN + 1] = "";
    int64_t prev_key = 0;
    for (unsigned i = 0; i < 5; i++) {
        add(w, i, id);
        int64_t key;
        uint64_t nonce;
        assert_int_equal(storage_archive_id_parse(id, &key, &nonce), 0);
        assert_true(key > prev_key); /* strictly increasing: archive order */
        assert_string_not_equal(id, prev);
        prev_key = key;
        memcpy(prev, id, sizeof(id));
    }
    assert_int_equal(stored(&r), 0);
    /* ... and are written once the oldest has waited long enough, with no flush asked. */
    uint64_t until = uv_now(&r.loop) + 200;
    while (stored(&r) < 5 && uv_now(&r.loop) < until)
        uv_run(&r.loop, UV_RUN_ONCE);
    assert_int_equal(stored(&r), 5);

    /* A full batch (1024) goes at once, without waiting for the time. */
    for (unsigned i = 0; i < 1024; i++)
        add(w, 100 + i, id);
    assert_int_equal(stored(&r), 1029);

    /* A flush sends what waits at once (a query sees what was archived before it). */
    add(w, 9999, id);
    storage_archive_writer_flush(w);
    assert_int_equal(stored(&r), 1030);

    /* Stopped: what waits is sent, nothing more is taken, and no timer outlives the store. */
    add(w, 10000, id);
    storage_archive_writer_stop(w);
    assert_int_equal(storage_archive_writer_add(w, OWNER, OWNER, "<m/>", 4, id), -ESHUTDOWN);
    assert_int_equal(stored(&r), 1031);
    storage_close(r.st, on_closed, &r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_true(r.closed);
    storage_archive_writer_free(w);
    assert_int_equal(uv_loop_close(&r.loop), 0);
}

/* Too much waiting: refused with -ENOBUFS, and taken again once the store caught up. */
static void writer_bounded(void **state)
{
    fixture_t *f = *state;
    run_t r = {0};
    uv_loop_init(&r.loop);
    assert_int_equal(storage_open(&r.loop, &f->cfg, &r.st), 0);
    core_log_t log = {.level = CORE_LOG_ERROR, .component = "test"};
    storage_archive_writer_t *w =
        storage_archive_writer_new(r.st, &r.loop, &log, "test archive", 3, 1u << 20);
    char id[STORAGE_ARCHIVE_ID_LEN + 1];
    for (unsigned i = 0; i < 3; i++)
        add(w, i, id);
    assert_int_equal(storage_archive_writer_add(w, OWNER, OWNER, "<m/>", 4, id), -ENOBUFS);
    storage_archive_writer_flush(w);
    add(w, 3, id);
    storage_archive_writer_stop(w);
    assert_int_equal(stored(&r), 4);
    storage_close(r.st, on_closed, &r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    storage_archive_writer_free(w);
    assert_int_equal(uv_loop_close(&r.loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writer_batches, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(writer_batches, setup_files, teardown),
        cmocka_unit_test_setup_teardown(writer_bounded, setup_sqlite, teardown),
        cmocka_unit_test_setup_teardown(writer_bounded, setup_files, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
