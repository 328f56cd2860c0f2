/* SPDX-License-Identifier: MIT */
/* The sqlite backend: WAL, a versioned schema migrated at open, cached prepared statements. */
#include "storage/backend_sqlite.h"

#include "core/alloc.h"

#include <errno.h>
#include <assert.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The schema's history. Entry i takes a database from version i to i + 1; the version is in
 * the table schema_version. Never edit an entry once released: add one. Every per-user table
 * references users(id) ON DELETE CASCADE (with an index whose first column is user_id), so
 * deleting the users row removes all of a user's data in the same transaction.
 */
static const char *const migrations[] = {
    /* 1: accounts and rosters (RFC 6121 §2, XEP-0237 version per user). */
    "CREATE TABLE users ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  credentials TEXT NOT NULL,"
    "  roster_version INTEGER NOT NULL"
    ");"
    "CREATE TABLE roster_items ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  jid TEXT NOT NULL,"
    "  name TEXT,"
    "  subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),"
    "  ask TEXT NOT NULL CHECK (ask IN ('none', 'subscribe')),"
    "  approved INTEGER NOT NULL CHECK (approved IN (0, 1)),"
    "  PRIMARY KEY (user_id, jid)"
    ") WITHOUT ROWID;"
    "CREATE TABLE roster_groups ("
    "  user_id INTEGER NOT NULL,"
    "  jid TEXT NOT NULL,"
    "  pos INTEGER NOT NULL,"
    "  grp TEXT NOT NULL,"
    "  PRIMARY KEY (user_id, jid, grp),"
    "  FOREIGN KEY (user_id, jid) REFERENCES roster_items(user_id, jid) ON DELETE CASCADE"
    ") WITHOUT ROWID;",
    /* 2: offline messages (RFC 6121 §8.5.2.2.1), a FIFO per user. */
    "CREATE TABLE offline_messages ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  data BLOB NOT NULL"
    ");"
    "CREATE INDEX offline_messages_user ON offline_messages(user_id, id);",
    /* 3: per-user documents: (kind, key) -> bytes (vCard, private XML, ...). */
    "CREATE TABLE documents ("
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (user_id, kind, key)"
    ") WITHOUT ROWID;",
    /*
     * 4: the message archive (XEP-0313). seq (the rowid) orders a user's entries in append
     * order; with_bare is the other party's JID up to its '/', so a 'with' filter by bare JID
     * or domain is an index lookup (and a full JID adds with_full = ?). The ordered indexes
     * carry the stamp too, so counting matches with a start or end never reads the rows.
     */
    "CREATE TABLE archive ("
    "  seq INTEGER PRIMARY KEY,"
    "  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
    "  archive_id TEXT NOT NULL,"
    "  stamp INTEGER NOT NULL,"
    "  with_bare TEXT NOT NULL,"
    "  with_full TEXT NOT NULL,"
    "  data BLOB NOT NULL"
    ");"
    "CREATE INDEX archive_user_seq ON archive(user_id, seq, stamp);"
    "CREATE UNIQUE INDEX archive_user_id ON archive(user_id, archive_id);"
    "CREATE INDEX archive_user_with ON archive(user_id, with_bare, seq, stamp);",
    /*
     * 5: documents of a service (a MUC room, later a pubsub node), owned by no user. An
     * ordinary rowid table, unlike documents: a room's document may be megabytes, and
     * sqlite's withoutrowid.html (§4) keeps WITHOUT ROWID for rows well under a page. The
     * primary key's index orders a kind's keys for get_all.
     */
    "CREATE TABLE service_documents ("
    "  service TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  key TEXT NOT NULL,"
    "  data BLOB NOT NULL,"
    "  PRIMARY KEY (service, kind, key)"
    ");",
    /*
     * 6: the archive by (owner, key): the key is the entry's stamp made unique (docs/
     * storage.md), and its id is made from the key and a nonce and decoded back, so there
     * is no index on a text id. The rows go in rowid order (each append lands at the end of
     * the table, where a table keyed by (owner, key) would scatter them over every owner's
     * range, with a page split each time); the unique index (owner, key) orders each archive
     * and (owner, with_bare, key) serves the 'with' filter. owner is users.id, or minus
     * archive_rooms.id for a service entity's archive (a MUC room), so it has no foreign key:
     * deleting an account deletes its archive rows explicitly. storage_sqlite_archive_migrate_v6
     * copies the old rows and makes the indexes: old_id keeps an id that does not decode to its row
     * (a partial index finds those).
     */
    "CREATE TABLE archive_rooms ("
    "  id INTEGER PRIMARY KEY,"
    "  jid TEXT NOT NULL UNIQUE"
    ");"
    "CREATE TABLE archive_state (key_max INTEGER NOT NULL);"
    "INSERT INTO archive_state (key_max) VALUES (0);"
    "ALTER TABLE archive RENAME TO archive_v4;"
    "CREATE TABLE archive ("
    "  owner INTEGER NOT NULL,"
    "  key INTEGER NOT NULL,"
    "  nonce INTEGER,"
    "  with_bare TEXT NOT NULL,"
    "  with_res TEXT,"
    "  data BLOB NOT NULL,"
    "  old_id TEXT"
    ");",
    /*
     * 7: the archive in chunks (docs/storage.md "sqlite schema"): an owner's consecutive
     * entries of one appended batch are one row, so a batch costs a row and an index entry
     * per owner in it, not per entry. meta (keys, nonces, the other party, data lengths) comes
     * before data, so a scan that filters reads no stanza bytes. The migration-6 index
     * archive_old_id goes first: its name is the new table's. storage_sqlite_archive_migrate_v7
     * copies the old rows, drops the old table and makes the indexes.
     */
    "DROP INDEX archive_old_id;"
    "CREATE TABLE archive_chunk ("
    "  owner INTEGER NOT NULL,"
    "  first_key INTEGER NOT NULL,"
    "  last_key INTEGER NOT NULL,"
    "  count INTEGER NOT NULL,"
    "  meta BLOB NOT NULL,"
    "  data BLOB NOT NULL"
    ");"
    "CREATE TABLE archive_old_id ("
    "  owner INTEGER NOT NULL,"
    "  key INTEGER NOT NULL,"
    "  old_id TEXT NOT NULL,"
    "  PRIMARY KEY (owner, key)"
    ") WITHOUT ROWID;",
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum stmt_id {
    ST_BEGIN_READ,
    ST_BEGIN_WRITE,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_USER_ID,
    ST_USER_INSERT,
    ST_USER_DELETE,
    ST_USER_LIST,
    ST_CREDS_GET,
    ST_CREDS_SET,
    ST_ROSTER_VERSION,
    ST_ROSTER_BUMP,
    ST_ROSTER_ITEMS,
    ST_ROSTER_GROUPS,
    ST_ROSTER_ITEM,
    ST_ROSTER_ITEM_GROUPS,
    ST_ROSTER_UPSERT,
    ST_ROSTER_GROUPS_CLEAR,
    ST_ROSTER_GROUP_ADD,
    ST_ROSTER_DELETE,
    ST_OFFLINE_COUNT,
    ST_OFFLINE_INSERT,
    ST_OFFLINE_GET,
    ST_OFFLINE_DELETE,
    ST_DOC_GET,
    ST_DOC_PUT,
    ST_DOC_DELETE,
    ST_DOC_LIST,
    ST_SVC_GET,
    ST_SVC_PUT,
    ST_SVC_DELETE,
    ST_SVC_ALL,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN_READ] = "BEGIN",
    /* Writers take the write lock up front, so two writers never deadlock upgrading. */
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_USER_ID] = "SELECT id FROM users WHERE name = ?1",
    [ST_USER_INSERT] = "INSERT INTO users (name, credentials, roster_version) VALUES (?1, ?2, ?3)"
                       " ON CONFLICT (name) DO NOTHING",
    [ST_USER_DELETE] = "DELETE FROM users WHERE name = ?1",
    [ST_USER_LIST] = "SELECT name FROM users ORDER BY name",
    [ST_CREDS_GET] = "SELECT credentials FROM users WHERE name = ?1",
    [ST_CREDS_SET] = "UPDATE users SET credentials = ?2 WHERE name = ?1",
    [ST_ROSTER_VERSION] = "SELECT id, roster_version FROM users WHERE name = ?1",
    [ST_ROSTER_BUMP] = "UPDATE users SET roster_version = roster_version + 1 WHERE id = ?1"
                       " RETURNING roster_version",
    [ST_ROSTER_ITEMS] = "SELECT jid, name, subscription, ask, approved FROM roster_items"
                        " WHERE user_id = ?1 ORDER BY jid",
    [ST_ROSTER_GROUPS] = "SELECT jid, grp FROM roster_groups WHERE user_id = ?1 ORDER BY jid, pos",
    [ST_ROSTER_ITEM] = "SELECT jid, name, subscription, ask, approved FROM roster_items"
                       " WHERE user_id = ?1 AND jid = ?2",
    [ST_ROSTER_ITEM_GROUPS] = "SELECT grp FROM roster_groups WHERE user_id = ?1 AND jid = ?2"
                              " ORDER BY pos",
    [ST_ROSTER_UPSERT] =
        "INSERT INTO roster_items (user_id, jid, name, subscription, ask, approved)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (user_id, jid) DO UPDATE"
        " SET name = excluded.name, subscription = excluded.subscription,"
        " ask = excluded.ask, approved = excluded.approved",
    [ST_ROSTER_GROUPS_CLEAR] = "DELETE FROM roster_groups WHERE user_id = ?1 AND jid = ?2",
    [ST_ROSTER_GROUP_ADD] = "INSERT INTO roster_groups (user_id, jid, pos, grp)"
                            " VALUES (?1, ?2, ?3, ?4)",
    [ST_ROSTER_DELETE] = "DELETE FROM roster_items WHERE user_id = ?1 AND jid = ?2",
    [ST_OFFLINE_COUNT] = "SELECT count(*) FROM offline_messages WHERE user_id = ?1",
    [ST_OFFLINE_INSERT] = "INSERT INTO offline_messages (user_id, data) VALUES (?1, ?2)",
    [ST_OFFLINE_GET] = "SELECT data FROM offline_messages WHERE user_id = ?1 ORDER BY id",
    [ST_OFFLINE_DELETE] = "DELETE FROM offline_messages WHERE id IN (SELECT id FROM"
                          " offline_messages WHERE user_id = ?1 ORDER BY id LIMIT ?2)",
    [ST_DOC_GET] = "SELECT data FROM documents WHERE user_id = ?1 AND kind = ?2 AND key = ?3",
    [ST_DOC_PUT] = "INSERT INTO documents (user_id, kind, key, data) VALUES (?1, ?2, ?3, ?4)"
                   " ON CONFLICT (user_id, kind, key) DO UPDATE SET data = excluded.data",
    [ST_DOC_DELETE] = "DELETE FROM documents WHERE user_id = ?1 AND kind = ?2 AND key = ?3",
    [ST_DOC_LIST] = "SELECT key FROM documents WHERE user_id = ?1 AND kind = ?2 ORDER BY key",
    [ST_SVC_GET] = "SELECT data FROM service_documents WHERE service = ?1 AND kind = ?2"
                   " AND key = ?3",
    [ST_SVC_PUT] = "INSERT INTO service_documents (service, kind, key, data)"
                   " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (service, kind, key) DO UPDATE"
                   " SET data = excluded.data",
    [ST_SVC_DELETE] = "DELETE FROM service_documents WHERE service = ?1 AND kind = ?2"
                      " AND key = ?3",
    /* BINARY collation: keys come in memcmp order, which is bytewise (storage.h). */
    [ST_SVC_ALL] = "SELECT key, data FROM service_documents WHERE service = ?1 AND kind = ?2"
                   " ORDER BY key",
};

static_assert(ST_COUNT <= STORAGE_SQLITE_STMTS, "room for the statements");

typedef storage_sqlite_db_t sqlite_db_t;

static sqlite_db_t *from_db(storage_db_t *db)
{
    return (sqlite_db_t *)db;
}

int storage_sqlite_err_map(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return -EBADMSG;
    case SQLITE_TOOBIG:
        return -EMSGSIZE;
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

int storage_sqlite_err_prep(sqlite_db_t *d)
{
    int rc = storage_sqlite_err_map(sqlite3_errcode(d->h));
    return rc < 0 ? rc : -EIO;
}

sqlite3_stmt *storage_sqlite_stmt_get(sqlite_db_t *d, sqlite3_stmt **slot, const char *sql)
{
    if (*slot == NULL) {
        int rc = sqlite3_prepare_v3(d->h, sql, -1, SQLITE_PREPARE_PERSISTENT, slot, NULL);
        if (rc != SQLITE_OK)
            return NULL;
    }
    /*
     * Ready to bind: a statement that last ran to SQLITE_DONE without a reset would refuse
     * new bindings (SQLITE_MISUSE) and re-run with the old ones, which point at freed memory.
     */
    sqlite3_reset(*slot);
    sqlite3_clear_bindings(*slot);
    return *slot;
}

/* The cached statement, prepared on first use; NULL when it cannot be (see prep_err). */
static sqlite3_stmt *stmt(sqlite_db_t *d, enum stmt_id id)
{
    return storage_sqlite_stmt_get(d, &d->stmts[id], stmt_sql[id]);
}

static void reset_some(sqlite3_stmt *const *stmts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (stmts[i] != NULL) {
            sqlite3_reset(stmts[i]);
            sqlite3_clear_bindings(stmts[i]);
        }
    }
}

/*
 * Resets every statement and drops its bindings (they point at the caller's strings). A
 * statement left mid-result would keep its read transaction open.
 */
static void reset_all(sqlite_db_t *d)
{
    reset_some(d->stmts, STORAGE_SQLITE_STMTS);
    reset_some(d->archive_stmts, STORAGE_SQLITE_ARCHIVE_STMTS);
}

int storage_sqlite_stmt_run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
}

static int run_id(sqlite_db_t *d, enum stmt_id id)
{
    sqlite3_stmt *s = stmt(d, id);
    return s != NULL ? storage_sqlite_stmt_run(s) : storage_sqlite_err_prep(d);
}

int storage_sqlite_tx_begin(sqlite_db_t *d, bool write)
{
    return run_id(d, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

int storage_sqlite_tx_end(sqlite_db_t *d, int rc)
{
    reset_all(d);
    if (rc == 0) {
        rc = run_id(d, ST_COMMIT);
        if (rc == 0)
            return 0;
    }
    /* A failed COMMIT may have left the transaction open; a ROLLBACK then ends it. */
    if (!sqlite3_get_autocommit(d->h))
        run_id(d, ST_ROLLBACK);
    return rc;
}

/* The statement with its first parameter bound to the text s (NULL if it cannot prepare). */
static sqlite3_stmt *stmt_text(sqlite_db_t *d, enum stmt_id id, const char *s)
{
    sqlite3_stmt *st = stmt(d, id);
    if (st != NULL)
        sqlite3_bind_text(st, 1, s, -1, SQLITE_STATIC);
    return st;
}

static sqlite3_stmt *stmt_uid(sqlite_db_t *d, enum stmt_id id, sqlite3_int64 uid)
{
    sqlite3_stmt *st = stmt(d, id);
    if (st != NULL)
        sqlite3_bind_int64(st, 1, uid);
    return st;
}

int storage_sqlite_user_id(sqlite_db_t *d, const char *user, sqlite3_int64 *id)
{
    sqlite3_stmt *s = stmt_text(d, ST_USER_ID, user);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
}

/* A copy of a column's bytes, NUL-terminated (a NULL column gives an empty string). */
static char *col_dup(sqlite3_stmt *s, int col, size_t *len)
{
    const void *p = sqlite3_column_blob(s, col);
    size_t n = (size_t)sqlite3_column_bytes(s, col);
    if (len != NULL)
        *len = n;
    return core_strndup(p != NULL ? p : "", n);
}

/* ---- accounts ---- */

static int sq_user_create(storage_db_t *db, const char *user, const char *creds)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_USER_INSERT, user);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, creds, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)storage_now_us());
    rc = storage_sqlite_stmt_run(s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -EEXIST;
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_user_exists(storage_db_t *db, const char *user)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 id;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &id);
    return storage_sqlite_tx_end(d, rc);
}

static int sq_user_delete(storage_db_t *db, const char *user)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    /* The archive first (its owner column has no foreign key: it also holds rooms); then
     * the foreign keys cascade to every other per-user table, in this transaction. */
    rc = storage_sqlite_archive_user_delete(d, user);
    if (rc == 0) {
        sqlite3_stmt *s = stmt_text(d, ST_USER_DELETE, user);
        rc = s != NULL ? storage_sqlite_stmt_run(s) : storage_sqlite_err_prep(d);
    }
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    return storage_sqlite_tx_end(d, rc);
}

/* Runs a query bound by bind() and appends its first column of every row to out. */
static int collect(sqlite_db_t *d, sqlite3_stmt *s, storage_list_t *out)
{
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        storage_list_push(out, p != NULL ? p : "", n);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
}

static int sq_user_list(storage_db_t *db, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = collect(d, stmt(d, ST_USER_LIST), out);
    return storage_sqlite_tx_end(d, rc);
}

static int sq_creds_get(storage_db_t *db, const char *user, char **out)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_CREDS_GET, user);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = col_dup(s, 0, NULL);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
    }
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_creds_set(storage_db_t *db, const char *user, const char *creds)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_CREDS_SET, user);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, creds, -1, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
out:
    return storage_sqlite_tx_end(d, rc);
}

/* ---- roster ---- */

/* Fills item from a row of ST_ROSTER_ITEMS / ST_ROSTER_ITEM (groups not included). */
static int item_from_row(sqlite3_stmt *s, storage_roster_item_t *item)
{
    item->jid = col_dup(s, 0, NULL);
    if (sqlite3_column_type(s, 1) != SQLITE_NULL)
        item->name = col_dup(s, 1, NULL);
    const char *sub = (const char *)sqlite3_column_text(s, 2);
    if (sub == NULL || storage_sub_parse(sub, strlen(sub), &item->subscription) < 0)
        return -EBADMSG;
    const char *ask = (const char *)sqlite3_column_text(s, 3);
    item->ask =
        ask != NULL && strcmp(ask, "subscribe") == 0 ? STORAGE_ASK_SUBSCRIBE : STORAGE_ASK_NONE;
    item->approved = sqlite3_column_int(s, 4) != 0;
    return 0;
}

static void item_add_group(storage_roster_item_t *item, sqlite3_stmt *s, int col)
{
    item->groups = core_realloc(item->groups, (item->group_count + 1) * sizeof(char *));
    item->groups[item->group_count++] = col_dup(s, col, NULL);
}

/* The user's id and current roster version (as a new string). */
static int roster_version(sqlite_db_t *d, const char *user, sqlite3_int64 *uid, char **version)
{
    sqlite3_stmt *s = stmt_text(d, ST_ROSTER_VERSION, user);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *uid = sqlite3_column_int64(s, 0);
        if (version != NULL)
            *version = storage_u64_str((uint64_t)sqlite3_column_int64(s, 1));
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
}

/* Attaches the rows of ST_ROSTER_GROUPS (sorted by jid like the items) to their items. */
static int roster_attach_groups(sqlite_db_t *d, sqlite3_int64 uid, storage_roster_t *r)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_GROUPS, uid);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    size_t i = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *jid = (const char *)sqlite3_column_text(s, 0);
        while (i < r->count && jid != NULL && strcmp(r->items[i].jid, jid) < 0)
            i++;
        /* The foreign key guarantees an item; a miss would mean a damaged database. */
        if (i == r->count || jid == NULL || strcmp(r->items[i].jid, jid) != 0) {
            rc = SQLITE_CORRUPT;
            break;
        }
        item_add_group(&r->items[i], s, 1);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
}

static int sq_roster_get(storage_db_t *db, const char *user, storage_roster_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = roster_version(d, user, &uid, &out->version);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_ITEMS, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->count == cap) {
            cap = cap == 0 ? 8 : 2 * cap;
            out->items = core_realloc(out->items, cap * sizeof(*out->items));
        }
        storage_roster_item_t *it = &out->items[out->count++];
        memset(it, 0, sizeof(*it));
        if (item_from_row(s, it) < 0) {
            rc = SQLITE_CORRUPT;
            break;
        }
    }
    rc = rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
    sqlite3_reset(s);
    if (rc == 0)
        rc = roster_attach_groups(d, uid, out);
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_roster_item_get(storage_db_t *db, const char *user, const char *jid,
                              storage_roster_item_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_ITEM, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
        goto out;
    }
    rc = item_from_row(s, out);
    sqlite3_reset(s);
    if (rc < 0)
        goto out;
    s = stmt_uid(d, ST_ROSTER_ITEM_GROUPS, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        item_add_group(out, s, 0);
    rc = rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
out:
    return storage_sqlite_tx_end(d, rc);
}

/* Increments the roster version; *version receives the new one. Inside the transaction. */
static int roster_bump(sqlite_db_t *d, sqlite3_int64 uid, char **version)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_BUMP, uid);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = storage_u64_str((uint64_t)sqlite3_column_int64(s, 0));
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
}

static int roster_write_item(sqlite_db_t *d, sqlite3_int64 uid, const storage_roster_item_t *item)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_UPSERT, uid);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
    if (item->name != NULL)
        sqlite3_bind_text(s, 3, item->name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_text(s, 4, storage_sub_name(item->subscription), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, item->ask == STORAGE_ASK_SUBSCRIBE ? "subscribe" : "none", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int(s, 6, item->approved ? 1 : 0);
    int rc = storage_sqlite_stmt_run(s);
    if (rc < 0)
        return rc;
    s = stmt_uid(d, ST_ROSTER_GROUPS_CLEAR, uid);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
    for (size_t i = 0; rc == 0 && i < item->group_count; i++) {
        s = stmt_uid(d, ST_ROSTER_GROUP_ADD, uid);
        if (s == NULL)
            return storage_sqlite_err_prep(d);
        sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
        sqlite3_bind_text(s, 4, item->groups[i], -1, SQLITE_STATIC);
        rc = storage_sqlite_stmt_run(s);
    }
    return rc;
}

static int sq_roster_put(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                         char **version)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc == 0)
        rc = roster_write_item(d, uid, item);
    if (rc == 0)
        rc = roster_bump(d, uid, version);
    return storage_sqlite_tx_end(d, rc);
}

static int sq_roster_delete(storage_db_t *db, const char *user, const char *jid, char **version)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_DELETE, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    if (rc == 0)
        rc = roster_bump(d, uid, version);
out:
    return storage_sqlite_tx_end(d, rc);
}

/* ---- offline messages ---- */

static int sq_offline_push(storage_db_t *db, const char *user, const char *data, size_t len,
                           size_t limit)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_OFFLINE_COUNT, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    rc = sqlite3_step(s);
    sqlite3_int64 n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        rc = storage_sqlite_err_map(rc);
        goto out;
    }
    if ((uint64_t)n >= (uint64_t)limit) {
        rc = -ENOSPC;
        goto out;
    }
    s = stmt_uid(d, ST_OFFLINE_INSERT, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 2, data, len, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_offline_get(storage_db_t *db, const char *user, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc == 0)
        rc = collect(d, stmt_uid(d, ST_OFFLINE_GET, uid), out);
    return storage_sqlite_tx_end(d, rc);
}

static int sq_offline_delete(storage_db_t *db, const char *user, size_t count)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_OFFLINE_DELETE, uid);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_int64(s, 2, count > INT64_MAX ? INT64_MAX : (sqlite3_int64)count);
    rc = storage_sqlite_stmt_run(s);
out:
    return storage_sqlite_tx_end(d, rc);
}

/* ---- documents ---- */

/* The statement id bound to (user id, kind, key); key may be NULL (then not bound). */
static sqlite3_stmt *doc_stmt(sqlite_db_t *d, enum stmt_id id, sqlite3_int64 uid, const char *kind,
                              const char *key)
{
    sqlite3_stmt *s = stmt_uid(d, id, uid);
    if (s == NULL)
        return NULL;
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    if (key != NULL)
        sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
    return s;
}

static int sq_doc_get(storage_db_t *db, const char *user, const char *kind, const char *key,
                      storage_blob_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_GET, uid, kind, key);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->data = col_dup(s, 0, &out->len);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
    }
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_doc_put(storage_db_t *db, const char *user, const char *kind, const char *key,
                      const char *data, size_t len)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_PUT, uid, kind, key);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 4, data, len, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_doc_delete(storage_db_t *db, const char *user, const char *kind, const char *key)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_DELETE, uid, kind, key);
    rc = s != NULL ? storage_sqlite_stmt_run(s) : storage_sqlite_err_prep(d);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_doc_list(storage_db_t *db, const char *user, const char *kind, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = storage_sqlite_user_id(d, user, &uid);
    if (rc == 0)
        rc = collect(d, doc_stmt(d, ST_DOC_LIST, uid, kind, NULL), out);
    return storage_sqlite_tx_end(d, rc);
}

/* ---- documents of a service ---- */

/* The statement id bound to (service, kind, key); key may be NULL (then not bound). */
static sqlite3_stmt *svc_stmt(sqlite_db_t *d, enum stmt_id id, const char *service,
                              const char *kind, const char *key)
{
    sqlite3_stmt *s = stmt_text(d, id, service);
    if (s == NULL)
        return NULL;
    sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
    if (key != NULL)
        sqlite3_bind_text(s, 3, key, -1, SQLITE_STATIC);
    return s;
}

static int sq_svc_get(storage_db_t *db, const char *service, const char *kind, const char *key,
                      storage_blob_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_GET, service, kind, key);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->data = col_dup(s, 0, &out->len);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : storage_sqlite_err_map(rc);
    }
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                      const char *data, size_t len)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_PUT, service, kind, key);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 4, data, len, SQLITE_STATIC);
    rc = storage_sqlite_stmt_run(s);
out:
    return storage_sqlite_tx_end(d, rc);
}

static int sq_svc_delete(storage_db_t *db, const char *service, const char *kind, const char *key)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_DELETE, service, kind, key);
    rc = s != NULL ? storage_sqlite_stmt_run(s) : storage_sqlite_err_prep(d);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    return storage_sqlite_tx_end(d, rc);
}

static int sq_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                          storage_docs_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_ALL, service, kind, NULL);
    if (s == NULL) {
        rc = storage_sqlite_err_prep(d);
        goto out;
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *k = sqlite3_column_blob(s, 0);
        size_t klen = (size_t)sqlite3_column_bytes(s, 0);
        const void *v = sqlite3_column_blob(s, 1);
        size_t vlen = (size_t)sqlite3_column_bytes(s, 1);
        storage_list_push(&out->keys, k != NULL ? k : "", klen);
        storage_list_push(&out->values, v != NULL ? v : "", vlen);
    }
    rc = rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
out:
    return storage_sqlite_tx_end(d, rc);
}

/* ---- open, migrate, close ---- */

static void sq_close(storage_db_t *db)
{
    sqlite_db_t *d = from_db(db);
    for (int i = 0; i < STORAGE_SQLITE_STMTS; i++)
        sqlite3_finalize(d->stmts[i]);
    for (int i = 0; i < STORAGE_SQLITE_ARCHIVE_STMTS; i++)
        sqlite3_finalize(d->archive_stmts[i]);
    /* The last connection to close checkpoints the WAL into the database. */
    sqlite3_close(d->h);
    core_free(d);
}

static const storage_backend_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .user_create = sq_user_create,
    .user_exists = sq_user_exists,
    .user_delete = sq_user_delete,
    .user_list = sq_user_list,
    .creds_get = sq_creds_get,
    .creds_set = sq_creds_set,
    .roster_get = sq_roster_get,
    .roster_item_get = sq_roster_item_get,
    .roster_put = sq_roster_put,
    .roster_delete = sq_roster_delete,
    .offline_push = sq_offline_push,
    .offline_get = sq_offline_get,
    .offline_delete = sq_offline_delete,
    .doc_get = sq_doc_get,
    .doc_put = sq_doc_put,
    .doc_delete = sq_doc_delete,
    .doc_list = sq_doc_list,
    .svc_get = sq_svc_get,
    .svc_put = sq_svc_put,
    .svc_delete = sq_svc_delete,
    .svc_get_all = sq_svc_get_all,
    .archive_append = storage_sqlite_archive_append,
    .archive_query = storage_sqlite_archive_query,
    .archive_expire = storage_sqlite_archive_expire,
    .archive_key_max = storage_sqlite_archive_key_max,
};

int storage_sqlite_schema_current(void)
{
    return MIGRATION_COUNT;
}

int storage_sqlite_exec(sqlite_db_t *d, const char *sql)
{
    return storage_sqlite_err_map(sqlite3_exec(d->h, sql, NULL, NULL, NULL));
}

/* Reads schema_version (0 for a new database, which gets its row). In the transaction. */
static int schema_version(sqlite_db_t *d, int *version)
{
    sqlite3_stmt *s = NULL;
    int rc = storage_sqlite_exec(
        d, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    if (rc < 0)
        return rc;
    rc = sqlite3_prepare_v2(d->h, "SELECT version FROM schema_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return storage_sqlite_err_map(rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(s, 0);
        *version = v < 0 || v > INT32_MAX ? INT32_MAX : (int)v;
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        *version = 0;
        rc = storage_sqlite_exec(d, "INSERT INTO schema_version (version) VALUES (0)");
    } else {
        rc = storage_sqlite_err_map(rc);
    }
    sqlite3_finalize(s);
    return rc;
}

/*
 * Brings the schema to target in one transaction. The write lock is taken first, so two
 * processes opening an old database at once migrate it once.
 */
static int migrate(sqlite_db_t *d, int target)
{
    int version = 0;
    int rc = storage_sqlite_exec(d, "BEGIN IMMEDIATE");
    if (rc < 0)
        return rc;
    rc = schema_version(d, &version);
    if (rc < 0)
        goto fail;
    if (version > MIGRATION_COUNT) {
        rc = -EPROTONOSUPPORT;
        goto fail;
    }
    for (int i = version; i < target; i++) {
        rc = storage_sqlite_exec(d, migrations[i]);
        if (rc == 0 && i + 1 == 6)
            rc = storage_sqlite_archive_migrate_v6(d);
        if (rc == 0 && i + 1 == 7)
            rc = storage_sqlite_archive_migrate_v7(d);
        if (rc < 0)
            goto fail;
    }
    if (target > version) {
        char sql[64];
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", target);
        rc = storage_sqlite_exec(d, sql);
        if (rc < 0)
            goto fail;
    }
    return storage_sqlite_exec(d, "COMMIT");
fail:
    storage_sqlite_exec(d, "ROLLBACK");
    return rc;
}

/* Sets journal_mode=WAL; the pragma answers with the mode actually in force. */
static int set_wal(sqlite_db_t *d)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(d->h, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return storage_sqlite_err_map(rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        rc = mode != NULL && strcmp(mode, "wal") == 0 ? 0 : -ENOTSUP;
    } else {
        rc = storage_sqlite_err_map(rc);
        if (rc == 0)
            rc = -EIO;
    }
    sqlite3_finalize(s);
    return rc;
}

int storage_sqlite_open_at(const storage_config_t *cfg, int max_version, storage_db_t **out)
{
    int rc;
    sqlite_db_t *d = core_calloc(1, sizeof(*d));
    d->base.ops = &sqlite_ops;
    d->base.sync = cfg->sync;

    /* The database holds credentials: create it private (sqlite gives -wal and -shm the
     * database file's mode). */
    int fd = open(cfg->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = -errno;
        goto fail;
    }
    close(fd);

    rc = sqlite3_open_v2(cfg->path, &d->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = storage_sqlite_err_map(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(d->h, 1);
    sqlite3_busy_timeout(d->h,
                         cfg->busy_timeout_ms != 0 ? (int)cfg->busy_timeout_ms
                                                   : (int)STORAGE_BUSY_TIMEOUT_DEFAULT);
    rc = set_wal(d);
    if (rc < 0)
        goto fail;
    /* FULL syncs the WAL at each commit; OFF leaves it to the kernel (tests only). */
    rc = storage_sqlite_exec(d,
                             cfg->sync == STORAGE_SYNC_NONE
                                 ? "PRAGMA foreign_keys = ON; PRAGMA synchronous = OFF"
                                 : "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL");
    if (rc < 0)
        goto fail;
    rc = migrate(d, max_version);
    if (rc < 0)
        goto fail;
    *out = &d->base;
    return 0;
fail:
    if (rc == 0)
        rc = -EIO;
    sqlite3_close(d->h);
    core_free(d);
    return rc;
}

int storage_sqlite_open(const storage_config_t *cfg, storage_db_t **out)
{
    return storage_sqlite_open_at(cfg, MIGRATION_COUNT, out);
}
