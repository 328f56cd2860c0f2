/* SPDX-License-Identifier: MIT */
/* What the sqlite backend's files share (folder-private): the handle and statement helpers. */
#ifndef PARLEY_STORAGE_BACKEND_SQLITE_H
#define PARLEY_STORAGE_BACKEND_SQLITE_H

#include "storage/internal.h"

#include <sqlite3.h>
#include <stdbool.h>

/* Room for each file's cached statements (each checks its own count fits). */
#define STORAGE_SQLITE_STMTS 64
#define STORAGE_SQLITE_ARCHIVE_STMTS 32

typedef struct storage_sqlite_db {
    storage_db_t base; /* first: the handle storage.c sees */
    sqlite3 *h;
    sqlite3_stmt *stmts[STORAGE_SQLITE_STMTS]; /* backend_sqlite.c's, prepared on first use */
    sqlite3_stmt *archive_stmts[STORAGE_SQLITE_ARCHIVE_STMTS]; /* backend_sqlite_archive.c's */
} storage_sqlite_db_t;

/* An sqlite result code as a negative errno (0 for OK, ROW and DONE). */
int storage_sqlite_err_map(int rc);
/* The error of a statement that did not prepare (never 0). */
int storage_sqlite_err_prep(storage_sqlite_db_t *d);
/*
 * The statement cached in *slot, prepared from sql on first use, reset and with no bindings;
 * NULL when it cannot be prepared (see storage_sqlite_err_prep).
 */
sqlite3_stmt *storage_sqlite_stmt_get(storage_sqlite_db_t *d, sqlite3_stmt **slot, const char *sql);
/* Runs a statement to completion (rows ignored), then resets it. */
int storage_sqlite_stmt_run(sqlite3_stmt *s);
/* Runs SQL text (several statements) once. */
int storage_sqlite_exec(storage_sqlite_db_t *d, const char *sql);
/* BEGIN (or BEGIN IMMEDIATE for a writer). */
int storage_sqlite_tx_begin(storage_sqlite_db_t *d, bool write);
/* Resets every statement, then commits when rc is 0 or rolls back; returns rc or the commit's. */
int storage_sqlite_tx_end(storage_sqlite_db_t *d, int rc);
/* The row id of user; -ENOENT when there is no such account. Inside a transaction. */
int storage_sqlite_user_id(storage_sqlite_db_t *d, const char *user, sqlite3_int64 *id);

/*
 * The message archive (backend_sqlite_archive.c): the backend operations, and what the
 * rest of the backend calls inside its own transactions.
 */
int storage_sqlite_archive_append(storage_db_t *db, const storage_archive_entry_t *entries,
                                  size_t n, int *status);
int storage_sqlite_archive_query(storage_db_t *db, const char *owner,
                                 const storage_archive_query_t *q, storage_archive_result_t *out);
int storage_sqlite_archive_expire(storage_db_t *db, const char *owner, int64_t before_us);
int storage_sqlite_archive_key_max(storage_db_t *db, int64_t *out);
/* Deletes the archive of the account user (in the caller's write transaction). */
int storage_sqlite_archive_user_delete(storage_sqlite_db_t *d, const char *user);
/* Migration 6's and 7's data (docs/storage.md), run after their SQL in migrate's transaction. */
int storage_sqlite_archive_migrate_v6(storage_sqlite_db_t *d);
int storage_sqlite_archive_migrate_v7(storage_sqlite_db_t *d);

#endif
