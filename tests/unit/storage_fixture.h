/* SPDX-License-Identifier: MIT */
/* A store in a fresh temporary folder for unit tests, on either backend. */
#ifndef PARLEY_TEST_STORAGE_FIXTURE_H
#define PARLEY_TEST_STORAGE_FIXTURE_H

#include "storage/storage.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

typedef struct fixture {
    char dir[64];
    char path[128];
    storage_config_t cfg;
} fixture_t;

static inline int setup_backend(void **state, storage_backend_kind_t kind)
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

static inline int setup_sqlite(void **state)
{
    return setup_backend(state, STORAGE_BACKEND_SQLITE);
}

static inline int setup_files(void **state)
{
    return setup_backend(state, STORAGE_BACKEND_FILES);
}

static inline int teardown(void **state)
{
    fixture_t *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static inline storage_db_t *open_db(fixture_t *f)
{
    storage_db_t *db = NULL;
    assert_int_equal(storage_db_open(&f->cfg, &db), 0);
    return db;
}

#endif
