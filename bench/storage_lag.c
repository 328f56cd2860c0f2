/* SPDX-License-Identifier: MIT */
/*
 * parley-storage-lag: how late the event loop runs while storage works hard. A 1 ms timer
 * records how late each tick fires while a bounded workload (offline pushes and reads,
 * roster writes and reads, documents) goes through the asynchronous front (--mode async, what
 * Parley does) or through the synchronous calls on the loop thread (--mode blocking, what
 * Parley must never do), on either backend. Prints one RESULT line; never passes or fails.
 */
#include "core/alloc.h"
#include "storage/storage.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define SAMPLES_MAX 1000000

typedef struct run {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t limit;
    storage_t *st; /* async mode */
    storage_db_t *db; /* blocking mode */
    unsigned users;
    unsigned long ops; /* to do */
    unsigned long issued;
    unsigned long done;
    unsigned inflight;
    unsigned inflight_max;
    uint64_t next_due_ns; /* when the next tick is due, from start_ns */
    uint64_t *lag_us;
    size_t nlag;
    uint64_t start_ns;
    uint64_t end_ns;
    int errors;
    bool timed_out;
} run_t;

static const char stanza[] =
    "<message from='romeo@localhost/orchard' to='juliet@localhost' type='chat' id='a1b2c3'>"
    "<body>But soft, what light through yonder window breaks? It is the east.</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/></message>";

static void user_name(unsigned long i, unsigned users, char out[32])
{
    snprintf(out, 32, "user%lu", i % users);
}

static void issue(run_t *r);

/* Everything answered: stop the timers and let the store go, so that the loop ends. */
static void all_done(run_t *r)
{
    uv_timer_stop(&r->tick);
    uv_timer_stop(&r->limit);
    r->end_ns = uv_hrtime();
    if (r->st != NULL) {
        storage_close(r->st, NULL, NULL);
        r->st = NULL;
    }
}

static void finished(run_t *r, int status)
{
    if (status < 0 && status != -ENOENT && status != -ENOSPC)
        r->errors++;
    r->done++;
    r->inflight--;
    if (r->done == r->ops)
        all_done(r);
    else
        issue(r);
}

static void on_status(void *arg, int status)
{
    finished(arg, status);
}

static void on_list(void *arg, int status, const storage_list_t *l)
{
    finished(arg, status);
}

static void on_roster(void *arg, int status, const storage_roster_t *ro)
{
    finished(arg, status);
}

static void on_version(void *arg, int status, const char *v)
{
    finished(arg, status);
}

/* Operation i of the mix: push, push, read, roster put, roster get, doc put, push, delete. */
static int op_async(run_t *r, unsigned long i)
{
    char user[32], jid[48];
    user_name(i, r->users, user);
    snprintf(jid, sizeof jid, "contact%lu@localhost", i % 50);
    storage_roster_item_t item = {.jid = jid, .subscription = STORAGE_SUB_BOTH};
    switch (i % 8) {
    case 0:
    case 1:
    case 6:
        return storage_offline_push(r->st, user, stanza, sizeof(stanza) - 1, 1000, on_status, r);
    case 2:
        return storage_offline_get(r->st, user, on_list, r);
    case 3:
        return storage_roster_put(r->st, user, &item, on_version, r);
    case 4:
        return storage_roster_get(r->st, user, on_roster, r);
    case 5:
        return storage_doc_put(r->st, user, "vcard", "vcard-temp", stanza, sizeof(stanza) - 1,
                               on_status, r);
    default:
        return storage_offline_delete(r->st, user, 3, on_status, r);
    }
}

static int op_blocking(run_t *r, unsigned long i)
{
    char user[32], jid[48];
    user_name(i, r->users, user);
    snprintf(jid, sizeof jid, "contact%lu@localhost", i % 50);
    storage_roster_item_t item = {.jid = jid, .subscription = STORAGE_SUB_BOTH};
    storage_list_t l = {0};
    storage_roster_t ro = {0};
    char *version = NULL;
    int rc;
    switch (i % 8) {
    case 0:
    case 1:
    case 6:
        return storage_db_offline_push(r->db, user, stanza, sizeof(stanza) - 1, 1000);
    case 2:
        rc = storage_db_offline_get(r->db, user, &l);
        storage_list_clear(&l);
        return rc;
    case 3:
        rc = storage_db_roster_put(r->db, user, &item, &version);
        core_free(version);
        return rc;
    case 4:
        rc = storage_db_roster_get(r->db, user, &ro);
        storage_roster_clear(&ro);
        return rc;
    case 5:
        return storage_db_doc_put(r->db, user, "vcard", "vcard-temp", stanza, sizeof(stanza) - 1);
    default:
        return storage_db_offline_delete(r->db, user, 3);
    }
}

static void issue(run_t *r)
{
    while (r->st != NULL && r->inflight < r->inflight_max && r->issued < r->ops) {
        if (op_async(r, r->issued) < 0) {
            r->errors++;
            r->done++;
        } else {
            r->inflight++;
        }
        r->issued++;
    }
}

static void on_tick(uv_timer_t *t)
{
    run_t *r = t->data;
    /* How late this tick is against when it was due (1 ms after the previous one). */
    uint64_t ns = uv_hrtime() - r->start_ns;
    if (r->nlag < SAMPLES_MAX)
        r->lag_us[r->nlag++] = ns > r->next_due_ns ? (ns - r->next_due_ns) / 1000 : 0;
    r->next_due_ns = ns + 1000000ull;
    if (r->db != NULL) {
        /* The naive server: a share of the work done right here, on the loop thread. */
        for (unsigned k = 0; k < r->inflight_max && r->done < r->ops; k++, r->done++)
            if (op_blocking(r, r->done) < 0)
                r->errors++;
        if (r->done == r->ops)
            all_done(r);
    }
}

static void on_limit(uv_timer_t *t)
{
    run_t *r = t->data;
    r->timed_out = true;
    r->ops = r->done + r->inflight; /* what is in flight still finishes */
    if (r->inflight == 0)
        all_done(r);
    else
        uv_timer_stop(&r->tick);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    return n == 0 ? 0 : v[(size_t)((double)(n - 1) * p)];
}

static void usage(void)
{
    fprintf(stderr,
            "usage: parley-storage-lag --path P [--backend sqlite|files] "
            "[--mode async|blocking] [--ops N] [--users U] [--sync full|none] "
            "[--inflight Q] [--timeout S]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"backend", required_argument, NULL, 'b'},
        {"path", required_argument, NULL, 'p'},
        {"mode", required_argument, NULL, 'm'},
        {"ops", required_argument, NULL, 'n'},
        {"users", required_argument, NULL, 'u'},
        {"sync", required_argument, NULL, 's'},
        {"inflight", required_argument, NULL, 'q'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    storage_config_t cfg = {.backend = STORAGE_BACKEND_SQLITE};
    const char *mode = "async";
    run_t r = {.users = 200, .ops = 50000, .inflight_max = 1000};
    unsigned timeout_s = 60;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (storage_backend_parse(optarg, &cfg.backend) < 0) {
                usage();
                return 2;
            }
            break;
        case 'p':
            cfg.path = optarg;
            break;
        case 'm':
            mode = optarg;
            break;
        case 'n':
            r.ops = strtoul(optarg, NULL, 10);
            break;
        case 'u':
            r.users = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            cfg.sync = strcmp(optarg, "none") == 0 ? STORAGE_SYNC_NONE : STORAGE_SYNC_FULL;
            break;
        case 'q':
            r.inflight_max = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            timeout_s = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    bool blocking = strcmp(mode, "blocking") == 0;
    if (cfg.path == NULL || r.users == 0 || r.ops == 0 || r.inflight_max == 0 ||
        (!blocking && strcmp(mode, "async") != 0)) {
        usage();
        return 2;
    }
    /* In blocking mode, --inflight is the operations done per 1 ms tick. */
    if (blocking && r.inflight_max > 100)
        r.inflight_max = 4;
    storage_db_t *setup;
    int rc = storage_db_open(&cfg, &setup);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", cfg.path, strerror(-rc));
        return 1;
    }
    for (unsigned i = 0; i < r.users; i++) {
        char user[32];
        user_name(i, r.users, user);
        storage_db_user_create(setup, user, "creds");
    }
    storage_db_close(setup);

    uv_loop_init(&r.loop);
    r.lag_us = core_calloc(SAMPLES_MAX, sizeof(*r.lag_us));
    if (blocking)
        rc = storage_db_open(&cfg, &r.db);
    else
        rc = storage_open(&r.loop, &cfg, &r.st);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", cfg.path, strerror(-rc));
        return 1;
    }
    uv_timer_init(&r.loop, &r.tick);
    uv_timer_init(&r.loop, &r.limit);
    r.tick.data = r.limit.data = &r;
    r.start_ns = uv_hrtime();
    r.next_due_ns = 1000000ull;
    uv_timer_start(&r.tick, on_tick, 1, 1);
    uv_timer_start(&r.limit, on_limit, (uint64_t)timeout_s * 1000, 0);
    issue(&r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    double secs = (double)(r.end_ns - r.start_ns) / 1e9;
    if (r.db != NULL)
        storage_db_close(r.db);
    uv_close((uv_handle_t *)&r.tick, NULL);
    uv_close((uv_handle_t *)&r.limit, NULL);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    uv_loop_close(&r.loop);
    qsort(r.lag_us, r.nlag, sizeof(*r.lag_us), cmp_u64);
    printf("RESULT backend=%s sync=%s mode=%s ops=%lu seconds=%.2f ops_per_s=%.0f "
           "lag_p50_us=%llu lag_p99_us=%llu lag_max_us=%llu ticks=%zu errors=%d complete=%d\n",
           storage_backend_name(cfg.backend), cfg.sync == STORAGE_SYNC_NONE ? "none" : "full", mode,
           r.done, secs, (double)r.done / secs, (unsigned long long)pct(r.lag_us, r.nlag, 0.5),
           (unsigned long long)pct(r.lag_us, r.nlag, 0.99),
           (unsigned long long)pct(r.lag_us, r.nlag, 1.0), r.nlag, r.errors, !r.timed_out);
    core_free(r.lag_us);
    return 0;
}
