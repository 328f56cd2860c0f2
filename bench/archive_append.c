/* SPDX-License-Identifier: MIT */
/*
 * parley-archive-append: how many message-archive entries per second the synchronous layer
 * writes when they come in batches (what the sm sends once per loop iteration), on either
 * backend. Prints one RESULT line; never passes or fails.
 */
#include "storage/storage.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH_MAX 100000
#define USERS_MAX 100000

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: parley-archive-append --backend sqlite|files --path P [--sync full|none]"
            " [--batches N] [--batch N] [--size BYTES] [--users N]\n");
}

typedef struct params {
    unsigned batches;
    unsigned batch;
    unsigned size;
    unsigned users;
} params_t;

/* Appends the batches; fills per_batch (seconds each). */
static int run(storage_db_t *db, const params_t *p, char (*names)[32], double *per_batch)
{
    storage_archive_entry_t *e = calloc(p->batch, sizeof(*e));
    char *data = malloc(p->size);
    memset(data, 'x', p->size);
    int rc = 0;
    int64_t base = (int64_t)seconds(CLOCK_REALTIME) * 1000000;
    for (unsigned b = 0; rc == 0 && b < p->batches; b++) {
        for (unsigned i = 0; i < p->batch; i++) {
            /* Keys as the sm makes them: the clock in microseconds, increasing. */
            int64_t key = base + (int64_t)b * p->batch + i;
            e[i] = (storage_archive_entry_t){
                .owner = names[i % p->users],
                .key = key,
                .nonce = (uint64_t)key * 0x9e3779b97f4a7c15ull,
                .with = i % 2 != 0 ? "romeo@localhost/orchard" : "nurse@localhost",
                .data = data,
                .len = p->size,
            };
        }
        double t0 = seconds(CLOCK_MONOTONIC);
        rc = storage_db_archive_append(db, e, p->batch, NULL);
        per_batch[b] = seconds(CLOCK_MONOTONIC) - t0;
    }
    free(e);
    free(data);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"backend", required_argument, NULL, 'b'}, {"path", required_argument, NULL, 'p'},
        {"sync", required_argument, NULL, 's'},    {"batches", required_argument, NULL, 'n'},
        {"batch", required_argument, NULL, 'k'},   {"size", required_argument, NULL, 'z'},
        {"users", required_argument, NULL, 'u'},   {NULL, 0, NULL, 0},
    };
    storage_config_t cfg = {.backend = STORAGE_BACKEND_SQLITE};
    params_t p = {.batches = 20, .batch = 1000, .size = 300, .users = 1};
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
        case 's':
            cfg.sync = strcmp(optarg, "none") == 0 ? STORAGE_SYNC_NONE : STORAGE_SYNC_FULL;
            break;
        case 'n':
            p.batches = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            p.batch = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'z':
            p.size = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'u':
            p.users = (unsigned)strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (cfg.path == NULL || p.batches == 0 || p.batch == 0 || p.batch > BATCH_MAX || p.size == 0 ||
        p.users == 0 || p.users > USERS_MAX) {
        usage();
        return 2;
    }
    storage_db_t *db;
    int rc = storage_db_open(&cfg, &db);
    if (rc < 0) {
        fprintf(stderr, "cannot open %s: %s\n", cfg.path, strerror(-rc));
        return 1;
    }
    char(*names)[32] = calloc(p.users, sizeof(*names));
    for (unsigned u = 0; u < p.users; u++) {
        snprintf(names[u], sizeof(names[u]), "user%u", u);
        storage_db_user_create(db, names[u], "creds");
    }
    double *per_batch = calloc(p.batches, sizeof(*per_batch));
    double cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
    rc = run(db, &p, names, per_batch);
    double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;
    storage_db_close(db);
    if (rc < 0) {
        fprintf(stderr, "append: %s\n", strerror(-rc));
        return 1;
    }
    double total = 0;
    for (unsigned b = 0; b < p.batches; b++)
        total += per_batch[b];
    qsort(per_batch, p.batches, sizeof(*per_batch), cmp_double);
    double entries = (double)p.batches * p.batch;
    printf("RESULT backend=%s sync=%s batches=%u batch=%u size=%u users=%u entries_per_s=%.0f "
           "batch_p50_ms=%.2f batch_max_ms=%.2f cpu_us_per_entry=%.2f\n",
           storage_backend_name(cfg.backend), cfg.sync == STORAGE_SYNC_NONE ? "none" : "full",
           p.batches, p.batch, p.size, p.users, entries / total, per_batch[p.batches / 2] * 1e3,
           per_batch[p.batches - 1] * 1e3, cpu * 1e6 / entries);
    free(per_batch);
    free(names);
    return 0;
}
