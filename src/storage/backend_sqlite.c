/* SPDX-License-Identifier: MIT */
/* The sqlite backend: WAL, a versioned schema migrated at open, cached prepared statements. */
#include "storage/internal.h"

#include "core/alloc.h"

#include <errno.h>
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
     * deleting an account deletes its archive rows explicitly. archive_migrate_v6 copies the
     * old rows and makes the indexes: old_id keeps an id that does not decode to its row (a
     * partial index finds those).
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
    ST_ARCHIVE_INSERT,
    ST_ARCHIVE_NONCE,
    ST_ARCHIVE_OLD_ID,
    ST_ARCHIVE_EXPIRE,
    ST_ARCHIVE_CLEAR,
    ST_ARCHIVE_USER_DELETE,
    ST_ARCHIVE_KEY_MAX,
    ST_ARCHIVE_KEY_BUMP,
    ST_ROOM_ID,
    ST_ROOM_INSERT,
    ST_ROOM_DELETE,
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
    /* archive_key is not unique (it carries with_bare): a key already there is looked for. */
    [ST_ARCHIVE_INSERT] = "INSERT INTO archive (owner, key, nonce, with_bare, with_res, data)"
                          " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS"
                          " (SELECT 1 FROM archive WHERE owner = ?1 AND key = ?2)",
    [ST_ARCHIVE_NONCE] = "SELECT nonce FROM archive WHERE owner = ?1 AND key = ?2"
                         " AND old_id IS NULL",
    [ST_ARCHIVE_OLD_ID] = "SELECT key FROM archive WHERE owner = ?1 AND old_id = ?2",
    [ST_ARCHIVE_EXPIRE] = "DELETE FROM archive WHERE owner = ?1 AND key < ?2",
    [ST_ARCHIVE_CLEAR] = "DELETE FROM archive WHERE owner = ?1",
    [ST_ARCHIVE_USER_DELETE] =
        "DELETE FROM archive WHERE owner = (SELECT id FROM users WHERE name = ?1)",
    [ST_ARCHIVE_KEY_MAX] = "SELECT key_max FROM archive_state",
    [ST_ARCHIVE_KEY_BUMP] = "UPDATE archive_state SET key_max = ?1 WHERE key_max < ?1",
    [ST_ROOM_ID] = "SELECT id FROM archive_rooms WHERE jid = ?1",
    [ST_ROOM_INSERT] = "INSERT INTO archive_rooms (jid) VALUES (?1)",
    [ST_ROOM_DELETE] = "DELETE FROM archive_rooms WHERE id = ?1",
};

/*
 * Archive queries combine optional filters, so their statements are built from these bits
 * (the statement's "shape") and cached per shape; only a query naming ids gets a statement
 * of its own. Parameters: ?1 owner id, ?2 bare JID, ?3 resource, ?4 start, ?5 end, ?6 the
 * after_id entry's key, ?7 the before_id entry's key, ?8 the row limit, ?9... the ids' keys.
 */
enum archive_shape {
    AQ_BARE = 1 << 0, /* with_bare = ?2 */
    AQ_FULL = 1 << 1, /* with_res = ?3 (with AQ_BARE, so the with index applies) */
    AQ_START = 1 << 2, /* key >= ?4 (the key is the stamp) */
    AQ_END = 1 << 3, /* key <= ?5 */
    AQ_AFTER = 1 << 4, /* key > ?6 */
    AQ_UPTO = 1 << 5, /* key <= ?6 */
    AQ_BEFORE = 1 << 6, /* key < ?7 */
    AQ_ROWS = 1 << 7, /* the entries (LIMIT ?8) rather than their count */
    AQ_DESC = 1 << 8, /* newest first */
    AQ_SHAPES = 1 << 9
};

typedef struct sqlite_db {
    storage_db_t base; /* first: the handle storage.c sees */
    sqlite3 *h;
    sqlite3_stmt *stmts[ST_COUNT]; /* prepared on first use, kept until close */
    sqlite3_stmt *archive_stmts[AQ_SHAPES]; /* the same, per archive query shape */
} sqlite_db_t;

static sqlite_db_t *from_db(storage_db_t *db)
{
    return (sqlite_db_t *)db;
}

static int map_err(int rc)
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

/* The cached statement, prepared on first use; NULL when it cannot be (see prep_err). */
static sqlite3_stmt *stmt(sqlite_db_t *d, enum stmt_id id)
{
    if (d->stmts[id] == NULL) {
        int rc = sqlite3_prepare_v3(d->h, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                    &d->stmts[id], NULL);
        if (rc != SQLITE_OK)
            return NULL;
    }
    /*
     * Ready to bind: a statement that last ran to SQLITE_DONE without a reset would refuse
     * new bindings (SQLITE_MISUSE) and re-run with the old ones, which point at freed memory.
     */
    sqlite3_reset(d->stmts[id]);
    sqlite3_clear_bindings(d->stmts[id]);
    return d->stmts[id];
}

/*
 * Resets every statement and drops its bindings (they point at the caller's strings). A
 * statement left mid-result would keep its read transaction open.
 */
static void reset_all(sqlite_db_t *d)
{
    for (int i = 0; i < ST_COUNT; i++) {
        if (d->stmts[i] != NULL) {
            sqlite3_reset(d->stmts[i]);
            sqlite3_clear_bindings(d->stmts[i]);
        }
    }
    for (int i = 0; i < AQ_SHAPES; i++) {
        if (d->archive_stmts[i] != NULL) {
            sqlite3_reset(d->archive_stmts[i]);
            sqlite3_clear_bindings(d->archive_stmts[i]);
        }
    }
}

/* Runs a statement that returns no rows (or whose rows are not wanted) to completion. */
static int run(sqlite_db_t *d, sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    while (rc == SQLITE_ROW)
        rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : map_err(rc);
}

static int run_id(sqlite_db_t *d, enum stmt_id id)
{
    sqlite3_stmt *s = stmt(d, id);
    return s != NULL ? run(d, s) : map_err(sqlite3_errcode(d->h));
}

static int tx_begin(sqlite_db_t *d, bool write)
{
    return run_id(d, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

/* Ends the transaction: commits when rc is 0, else rolls back. Returns rc or the commit's. */
static int tx_end(sqlite_db_t *d, int rc)
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

static int prep_err(sqlite_db_t *d)
{
    int rc = map_err(sqlite3_errcode(d->h));
    return rc < 0 ? rc : -EIO;
}

/* The row id of user; -ENOENT when there is no such account. Inside a transaction. */
static int user_id(sqlite_db_t *d, const char *user, sqlite3_int64 *id)
{
    sqlite3_stmt *s = stmt_text(d, ST_USER_ID, user);
    if (s == NULL)
        return prep_err(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOENT : map_err(rc);
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
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_USER_INSERT, user);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, creds, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)storage_now_us());
    rc = run(d, s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -EEXIST;
out:
    return tx_end(d, rc);
}

static int sq_user_exists(storage_db_t *db, const char *user)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 id;
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &id);
    return tx_end(d, rc);
}

static int sq_user_delete(storage_db_t *db, const char *user)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    /* The archive first (its owner column has no foreign key: it also holds rooms); then
     * the foreign keys cascade to every other per-user table, in this transaction. */
    sqlite3_stmt *s = stmt_text(d, ST_ARCHIVE_USER_DELETE, user);
    rc = s != NULL ? run(d, s) : prep_err(d);
    if (rc == 0) {
        s = stmt_text(d, ST_USER_DELETE, user);
        rc = s != NULL ? run(d, s) : prep_err(d);
    }
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    return tx_end(d, rc);
}

/* Runs a query bound by bind() and appends its first column of every row to out. */
static int collect(sqlite_db_t *d, sqlite3_stmt *s, storage_list_t *out)
{
    if (s == NULL)
        return prep_err(d);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const void *p = sqlite3_column_blob(s, 0);
        size_t n = (size_t)sqlite3_column_bytes(s, 0);
        storage_list_push(out, p != NULL ? p : "", n);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : map_err(rc);
}

static int sq_user_list(storage_db_t *db, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = collect(d, stmt(d, ST_USER_LIST), out);
    return tx_end(d, rc);
}

static int sq_creds_get(storage_db_t *db, const char *user, char **out)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_CREDS_GET, user);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *out = col_dup(s, 0, NULL);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
    }
out:
    return tx_end(d, rc);
}

static int sq_creds_set(storage_db_t *db, const char *user, const char *creds)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt_text(d, ST_CREDS_SET, user);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, creds, -1, SQLITE_STATIC);
    rc = run(d, s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
out:
    return tx_end(d, rc);
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
        return prep_err(d);
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
    return rc == SQLITE_DONE ? -ENOENT : map_err(rc);
}

/* Attaches the rows of ST_ROSTER_GROUPS (sorted by jid like the items) to their items. */
static int roster_attach_groups(sqlite_db_t *d, sqlite3_int64 uid, storage_roster_t *r)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_GROUPS, uid);
    if (s == NULL)
        return prep_err(d);
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
    return rc == SQLITE_DONE ? 0 : map_err(rc);
}

static int sq_roster_get(storage_db_t *db, const char *user, storage_roster_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = roster_version(d, user, &uid, &out->version);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_ITEMS, uid);
    if (s == NULL) {
        rc = prep_err(d);
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
    rc = rc == SQLITE_DONE ? 0 : map_err(rc);
    sqlite3_reset(s);
    if (rc == 0)
        rc = roster_attach_groups(d, uid, out);
out:
    return tx_end(d, rc);
}

static int sq_roster_item_get(storage_db_t *db, const char *user, const char *jid,
                              storage_roster_item_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_ITEM, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
        goto out;
    }
    rc = item_from_row(s, out);
    sqlite3_reset(s);
    if (rc < 0)
        goto out;
    s = stmt_uid(d, ST_ROSTER_ITEM_GROUPS, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        item_add_group(out, s, 0);
    rc = rc == SQLITE_DONE ? 0 : map_err(rc);
out:
    return tx_end(d, rc);
}

/* Increments the roster version; *version receives the new one. Inside the transaction. */
static int roster_bump(sqlite_db_t *d, sqlite3_int64 uid, char **version)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_BUMP, uid);
    if (s == NULL)
        return prep_err(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *version = storage_u64_str((uint64_t)sqlite3_column_int64(s, 0));
        rc = sqlite3_step(s);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc == SQLITE_DONE ? 0 : map_err(rc);
}

static int roster_write_item(sqlite_db_t *d, sqlite3_int64 uid, const storage_roster_item_t *item)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_UPSERT, uid);
    if (s == NULL)
        return prep_err(d);
    sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
    if (item->name != NULL)
        sqlite3_bind_text(s, 3, item->name, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_text(s, 4, storage_sub_name(item->subscription), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, item->ask == STORAGE_ASK_SUBSCRIBE ? "subscribe" : "none", -1,
                      SQLITE_STATIC);
    sqlite3_bind_int(s, 6, item->approved ? 1 : 0);
    int rc = run(d, s);
    if (rc < 0)
        return rc;
    s = stmt_uid(d, ST_ROSTER_GROUPS_CLEAR, uid);
    if (s == NULL)
        return prep_err(d);
    sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
    rc = run(d, s);
    for (size_t i = 0; rc == 0 && i < item->group_count; i++) {
        s = stmt_uid(d, ST_ROSTER_GROUP_ADD, uid);
        if (s == NULL)
            return prep_err(d);
        sqlite3_bind_text(s, 2, item->jid, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)i);
        sqlite3_bind_text(s, 4, item->groups[i], -1, SQLITE_STATIC);
        rc = run(d, s);
    }
    return rc;
}

static int sq_roster_put(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                         char **version)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc == 0)
        rc = roster_write_item(d, uid, item);
    if (rc == 0)
        rc = roster_bump(d, uid, version);
    return tx_end(d, rc);
}

static int sq_roster_delete(storage_db_t *db, const char *user, const char *jid, char **version)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_ROSTER_DELETE, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_text(s, 2, jid, -1, SQLITE_STATIC);
    rc = run(d, s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    if (rc == 0)
        rc = roster_bump(d, uid, version);
out:
    return tx_end(d, rc);
}

/* ---- offline messages ---- */

static int sq_offline_push(storage_db_t *db, const char *user, const char *data, size_t len,
                           size_t limit)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_OFFLINE_COUNT, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    rc = sqlite3_step(s);
    sqlite3_int64 n = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW) {
        rc = map_err(rc);
        goto out;
    }
    if ((uint64_t)n >= (uint64_t)limit) {
        rc = -ENOSPC;
        goto out;
    }
    s = stmt_uid(d, ST_OFFLINE_INSERT, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 2, data, len, SQLITE_STATIC);
    rc = run(d, s);
out:
    return tx_end(d, rc);
}

static int sq_offline_get(storage_db_t *db, const char *user, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc == 0)
        rc = collect(d, stmt_uid(d, ST_OFFLINE_GET, uid), out);
    return tx_end(d, rc);
}

static int sq_offline_delete(storage_db_t *db, const char *user, size_t count)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = stmt_uid(d, ST_OFFLINE_DELETE, uid);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_int64(s, 2, count > INT64_MAX ? INT64_MAX : (sqlite3_int64)count);
    rc = run(d, s);
out:
    return tx_end(d, rc);
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
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_GET, uid, kind, key);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->data = col_dup(s, 0, &out->len);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
    }
out:
    return tx_end(d, rc);
}

static int sq_doc_put(storage_db_t *db, const char *user, const char *kind, const char *key,
                      const char *data, size_t len)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_PUT, uid, kind, key);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 4, data, len, SQLITE_STATIC);
    rc = run(d, s);
out:
    return tx_end(d, rc);
}

static int sq_doc_delete(storage_db_t *db, const char *user, const char *kind, const char *key)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc < 0)
        goto out;
    sqlite3_stmt *s = doc_stmt(d, ST_DOC_DELETE, uid, kind, key);
    rc = s != NULL ? run(d, s) : prep_err(d);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
out:
    return tx_end(d, rc);
}

static int sq_doc_list(storage_db_t *db, const char *user, const char *kind, storage_list_t *out)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 uid = 0;
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = user_id(d, user, &uid);
    if (rc == 0)
        rc = collect(d, doc_stmt(d, ST_DOC_LIST, uid, kind, NULL), out);
    return tx_end(d, rc);
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
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_GET, service, kind, key);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        out->data = col_dup(s, 0, &out->len);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? -ENOENT : map_err(rc);
    }
out:
    return tx_end(d, rc);
}

static int sq_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                      const char *data, size_t len)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_PUT, service, kind, key);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    sqlite3_bind_blob64(s, 4, data, len, SQLITE_STATIC);
    rc = run(d, s);
out:
    return tx_end(d, rc);
}

static int sq_svc_delete(storage_db_t *db, const char *service, const char *kind, const char *key)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_DELETE, service, kind, key);
    rc = s != NULL ? run(d, s) : prep_err(d);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        rc = -ENOENT;
    return tx_end(d, rc);
}

static int sq_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                          storage_docs_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = svc_stmt(d, ST_SVC_ALL, service, kind, NULL);
    if (s == NULL) {
        rc = prep_err(d);
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
    rc = rc == SQLITE_DONE ? 0 : map_err(rc);
out:
    return tx_end(d, rc);
}

/* ---- the message archive ---- */

/*
 * An archive's owner id: users.id (> 0) for a user, -archive_rooms.id (< 0) for a service
 * entity's archive; 0 is nobody's (a room with no archive yet: every query finds nothing).
 * Inside a transaction. With create, a room gets its row; without, a missing room is 0.
 */
static int archive_owner(sqlite_db_t *d, const char *owner, bool create, sqlite3_int64 *id)
{
    if (strchr(owner, '@') == NULL)
        return user_id(d, owner, id);
    *id = 0;
    sqlite3_stmt *s = stmt_text(d, ST_ROOM_ID, owner);
    if (s == NULL)
        return prep_err(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *id = -sqlite3_column_int64(s, 0);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return map_err(rc);
    if (*id != 0 || !create)
        return 0;
    s = stmt_text(d, ST_ROOM_INSERT, owner);
    rc = s != NULL ? run(d, s) : prep_err(d);
    if (rc == 0)
        *id = -sqlite3_last_insert_rowid(d->h);
    return rc;
}

/* Orders a batch by owner, keeping each owner's entries in batch order. */
typedef struct batch_ref {
    const storage_archive_entry_t *e;
    size_t index;
} batch_ref_t;

static int batch_ref_cmp(const void *a, const void *b)
{
    const batch_ref_t *x = a, *y = b;
    int c = strcmp(x->e->owner, y->e->owner);
    return c != 0 ? c : (x->index > y->index) - (x->index < y->index);
}

/* Inserts one entry; status gets -EEXIST when the owner already has its key. */
static int archive_insert(sqlite_db_t *d, sqlite3_int64 owner, const storage_archive_entry_t *e,
                          int *status)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ARCHIVE_INSERT, owner);
    if (s == NULL)
        return prep_err(d);
    size_t bare = storage_jid_bare_len(e->with);
    sqlite3_bind_int64(s, 2, e->key);
    sqlite3_bind_int64(s, 3, (sqlite3_int64)e->nonce);
    sqlite3_bind_text(s, 4, e->with, (int)bare, SQLITE_STATIC);
    if (e->with[bare] == '/')
        sqlite3_bind_text(s, 5, e->with + bare + 1, -1, SQLITE_STATIC);
    sqlite3_bind_blob64(s, 6, e->data != NULL ? e->data : "", e->len, SQLITE_STATIC);
    int rc = run(d, s);
    if (rc == 0 && sqlite3_changes(d->h) == 0)
        *status = -EEXIST;
    return rc;
}

/* Raises archive_state.key_max to key (storage_db_archive_key_max). */
static int archive_key_bump(sqlite_db_t *d, int64_t key)
{
    sqlite3_stmt *s = stmt_uid(d, ST_ARCHIVE_KEY_BUMP, key);
    return s != NULL ? run(d, s) : prep_err(d);
}

static int sq_archive_append(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                             int *status)
{
    sqlite_db_t *d = from_db(db);
    /*
     * Owner by owner (one lookup each, and each owner's rows go in side by side at the end
     * of its key range), and one transaction for the whole batch: a commit (with sync =
     * full, its fsync) costs far more than an insert, and the sm sends what one loop
     * iteration archived at once.
     */
    batch_ref_t *order = core_malloc(n * sizeof(*order));
    int64_t key_max = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = (batch_ref_t){.e = &entries[i], .index = i};
        key_max = entries[i].key > key_max ? entries[i].key : key_max;
    }
    qsort(order, n, sizeof(*order), batch_ref_cmp);
    int rc = tx_begin(d, true);
    if (rc < 0)
        goto out;
    sqlite3_int64 owner = 0;
    bool missing = false;
    for (size_t i = 0; i < n; i++) {
        const storage_archive_entry_t *e = order[i].e;
        if (i == 0 || strcmp(e->owner, order[i - 1].e->owner) != 0) {
            rc = archive_owner(d, e->owner, true, &owner);
            if (rc < 0 && rc != -ENOENT)
                break;
            missing = rc == -ENOENT;
            rc = 0;
        }
        if (missing) {
            status[order[i].index] = -ENOENT;
            continue;
        }
        rc = archive_insert(d, owner, e, &status[order[i].index]);
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = archive_key_bump(d, key_max);
    rc = tx_end(d, rc);
out:
    core_free(order);
    return rc;
}

static int sq_archive_key_max(storage_db_t *db, int64_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_stmt *s = stmt(d, ST_ARCHIVE_KEY_MAX);
    if (s == NULL) {
        rc = prep_err(d);
    } else {
        rc = sqlite3_step(s);
        *out = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_err(rc);
    }
    return tx_end(d, rc);
}

/* The statement for an archive query of this shape (new, and *owned set, when ids apply). */
static sqlite3_stmt *archive_stmt(sqlite_db_t *d, unsigned shape, size_t nids, bool *owned)
{
    *owned = nids > 0;
    if (nids == 0 && d->archive_stmts[shape] != NULL) {
        sqlite3_stmt *s = d->archive_stmts[shape];
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
        return s;
    }
    core_buf_t b = {0};
    core_buf_append_str(&b,
                        shape & AQ_ROWS ? "SELECT key, nonce, old_id, with_bare, with_res, data"
                                        : "SELECT count(*)");
    core_buf_append_str(&b, " FROM archive WHERE owner = ?1");
    if (shape & (AQ_BARE | AQ_FULL))
        core_buf_append_str(&b, " AND with_bare = ?2");
    if (shape & AQ_FULL)
        core_buf_append_str(&b, " AND with_res = ?3");
    if (shape & AQ_START)
        core_buf_append_str(&b, " AND key >= ?4");
    if (shape & AQ_END)
        core_buf_append_str(&b, " AND key <= ?5");
    if (shape & AQ_AFTER)
        core_buf_append_str(&b, " AND key > ?6");
    if (shape & AQ_UPTO)
        core_buf_append_str(&b, " AND key <= ?6");
    if (shape & AQ_BEFORE)
        core_buf_append_str(&b, " AND key < ?7");
    if (nids > 0) {
        char num[32];
        core_buf_append_str(&b, " AND key IN (");
        for (size_t i = 0; i < nids; i++) {
            snprintf(num, sizeof(num), "%s?%zu", i > 0 ? ", " : "", i + 9);
            core_buf_append_str(&b, num);
        }
        core_buf_append_str(&b, ")");
    }
    if (shape & AQ_ROWS)
        core_buf_append_str(
            &b, shape & AQ_DESC ? " ORDER BY key DESC LIMIT ?8" : " ORDER BY key LIMIT ?8");
    sqlite3_stmt *s = NULL;
    sqlite3_prepare_v3(d->h, b.data, (int)b.len, *owned ? 0 : SQLITE_PREPARE_PERSISTENT, &s, NULL);
    core_buf_release(&b);
    if (!*owned)
        d->archive_stmts[shape] = s;
    return s;
}

/* One archive query's fixed inputs: the filters every statement of it binds. */
typedef struct archive_ctx {
    sqlite_db_t *d;
    const storage_archive_query_t *q;
    unsigned filters; /* AQ_BARE, AQ_FULL, AQ_START, AQ_END */
    sqlite3_int64 owner;
    sqlite3_int64 lo; /* the after_id entry's key */
    sqlite3_int64 hi; /* the before_id entry's key */
    sqlite3_int64 *keys; /* the keys of q->ids found (nkeys of them) */
    size_t nkeys;
} archive_ctx_t;

/* The statement of shape (plus the query's filters), bound; NULL if it cannot prepare. */
static sqlite3_stmt *archive_bind(const archive_ctx_t *c, unsigned shape, sqlite3_int64 limit,
                                  bool *owned)
{
    const storage_archive_query_t *q = c->q;
    shape |= c->filters;
    sqlite3_stmt *s = archive_stmt(c->d, shape, c->nkeys, owned);
    if (s == NULL)
        return NULL;
    sqlite3_bind_int64(s, 1, c->owner);
    if (shape & (AQ_BARE | AQ_FULL))
        sqlite3_bind_text(s, 2, q->with, (int)storage_jid_bare_len(q->with), SQLITE_STATIC);
    if (shape & AQ_FULL)
        sqlite3_bind_text(s, 3, q->with + storage_jid_bare_len(q->with) + 1, -1, SQLITE_STATIC);
    if (shape & AQ_START)
        sqlite3_bind_int64(s, 4, q->start_us);
    if (shape & AQ_END)
        sqlite3_bind_int64(s, 5, q->end_us);
    if (shape & (AQ_AFTER | AQ_UPTO))
        sqlite3_bind_int64(s, 6, c->lo);
    if (shape & AQ_BEFORE)
        sqlite3_bind_int64(s, 7, c->hi);
    if (shape & AQ_ROWS)
        sqlite3_bind_int64(s, 8, limit);
    for (size_t i = 0; i < c->nkeys; i++)
        sqlite3_bind_int64(s, (int)(i + 9), c->keys[i]);
    return s;
}

static void archive_done(sqlite3_stmt *s, bool owned)
{
    if (owned) {
        sqlite3_finalize(s);
    } else {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

/* The number of entries matching the query's filters and shape. */
static int archive_count(const archive_ctx_t *c, unsigned shape, size_t *out)
{
    bool owned;
    sqlite3_stmt *s = archive_bind(c, shape, 0, &owned);
    if (s == NULL)
        return prep_err(c->d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = (size_t)sqlite3_column_int64(s, 0);
    archive_done(s, owned);
    if (rc == SQLITE_ROW)
        return 0;
    rc = map_err(rc);
    return rc < 0 ? rc : -EIO; /* a count always has its row */
}

/* Fills an item from a row of the AQ_ROWS columns. */
static void archive_item(sqlite3_stmt *s, storage_archive_item_t *it)
{
    sqlite3_int64 key = sqlite3_column_int64(s, 0);
    if (sqlite3_column_type(s, 2) != SQLITE_NULL) {
        it->id = col_dup(s, 2, NULL); /* an entry from before schema 6 keeps its id */
    } else {
        it->id = core_malloc(STORAGE_ARCHIVE_ID_LEN + 1);
        storage_archive_id_format(key, (uint64_t)sqlite3_column_int64(s, 1), it->id);
    }
    it->stamp_us = key;
    if (sqlite3_column_type(s, 4) == SQLITE_NULL) {
        it->with = col_dup(s, 3, NULL);
    } else {
        core_buf_t b = {0};
        core_buf_append(&b, sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3));
        core_buf_append(&b, "/", 1);
        core_buf_append(&b, sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4));
        it->with = core_strndup(b.data, b.len);
        core_buf_release(&b);
    }
    it->data.data = col_dup(s, 5, &it->data.len);
}

/* Appends up to limit rows of the shape to out->items (in the statement's order). */
static int archive_rows(const archive_ctx_t *c, unsigned shape, size_t limit,
                        storage_archive_result_t *out)
{
    bool owned;
    sqlite3_stmt *s = archive_bind(c, shape | AQ_ROWS, (sqlite3_int64)limit, &owned);
    if (s == NULL)
        return prep_err(c->d);
    out->items = core_calloc(limit, sizeof(*out->items)); /* limit is max + 1 >= 1 */
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW)
        archive_item(s, &out->items[out->count++]);
    archive_done(s, owned);
    return rc == SQLITE_DONE ? 0 : map_err(rc);
}

/* Runs a lookup bound by the caller; 0 and *out from its first column, or -ENOMSG. */
static int lookup_int(sqlite_db_t *d, sqlite3_stmt *s, sqlite3_int64 *out)
{
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    bool null = rc == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_NULL;
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc == SQLITE_ROW)
        return null ? -ENOMSG : 0;
    return rc == SQLITE_DONE ? -ENOMSG : map_err(rc);
}

/*
 * The key of the owner's entry id; -ENOMSG when there is none (XEP-0313 §4.1.3). An id
 * format made is decoded: its key is a point lookup, and its nonce must be the entry's. Any
 * other id can only be an old one (an entry migrated from schema 4).
 */
static int archive_key(sqlite_db_t *d, sqlite3_int64 owner, const char *id, sqlite3_int64 *key)
{
    int64_t k;
    uint64_t nonce;
    if (storage_archive_id_parse(id, &k, &nonce) == 0) {
        sqlite3_stmt *s = stmt_uid(d, ST_ARCHIVE_NONCE, owner);
        if (s == NULL)
            return prep_err(d);
        sqlite3_bind_int64(s, 2, k);
        sqlite3_int64 stored = 0;
        int rc = lookup_int(d, s, &stored);
        if (rc == 0 && (uint64_t)stored == nonce) {
            *key = k;
            return 0;
        }
        if (rc != 0 && rc != -ENOMSG)
            return rc;
    }
    sqlite3_stmt *s = stmt_uid(d, ST_ARCHIVE_OLD_ID, owner);
    if (s == NULL)
        return prep_err(d);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    return lookup_int(d, s, key);
}

static int key_cmp(const void *a, const void *b)
{
    sqlite3_int64 x = *(const sqlite3_int64 *)a, y = *(const sqlite3_int64 *)b;
    return (x > y) - (x < y);
}

/* The keys of the query's ids, distinct; unknown ids are left out (urn:xmpp:mam:2#extended). */
static int archive_ids(archive_ctx_t *c)
{
    const storage_archive_query_t *q = c->q;
    c->keys = core_malloc(q->nids * sizeof(*c->keys));
    for (size_t i = 0; i < q->nids; i++) {
        int rc = archive_key(c->d, c->owner, q->ids[i], &c->keys[c->nkeys]);
        if (rc == 0)
            c->nkeys++;
        else if (rc != -ENOMSG)
            return rc;
    }
    qsort(c->keys, c->nkeys, sizeof(*c->keys), key_cmp);
    size_t w = 0;
    for (size_t i = 0; i < c->nkeys; i++)
        if (w == 0 || c->keys[w - 1] != c->keys[i])
            c->keys[w++] = c->keys[i];
    c->nkeys = w;
    return 0;
}

/*
 * Counts the matches (total), reads one row more than the page (to learn whether it was
 * cut: 'complete'), and counts the matches before the page (first_index). All in one read
 * transaction, so the three agree.
 */
static int archive_page(archive_ctx_t *c, storage_archive_result_t *out)
{
    const storage_archive_query_t *q = c->q;
    unsigned bounds = (q->after_id != NULL ? AQ_AFTER : 0) | (q->before_id != NULL ? AQ_BEFORE : 0);
    if (q->nids > 0 && c->nkeys == 0) {
        out->complete = true; /* none of the ids is here: nothing matches */
        return 0;
    }
    int rc = archive_count(c, 0, &out->total);
    if (rc == 0)
        rc = archive_rows(c, bounds | (q->from_end ? AQ_DESC : 0), q->max + 1, out);
    if (rc < 0)
        return rc;
    out->complete = out->count <= q->max;
    if (!out->complete) {
        storage_archive_item_t *extra = &out->items[--out->count];
        core_free(extra->id);
        core_free(extra->with);
        storage_blob_clear(&extra->data);
    }
    if (!q->from_end) {
        /* The page starts right after after_id: every match up to it comes before. */
        out->first_index = 0;
        if (q->after_id != NULL)
            rc = archive_count(c, AQ_UPTO, &out->first_index);
        return rc;
    }
    for (size_t i = 0, j = out->count; i + 1 < j; i++, j--) {
        storage_archive_item_t t = out->items[i];
        out->items[i] = out->items[j - 1];
        out->items[j - 1] = t;
    }
    /* The page ends right before before_id (or at the newest match). */
    size_t below = out->total;
    if (q->before_id != NULL)
        rc = archive_count(c, AQ_BEFORE, &below);
    out->first_index = below - out->count;
    return rc;
}

static int sq_archive_query(storage_db_t *db, const char *owner, const storage_archive_query_t *q,
                            storage_archive_result_t *out)
{
    sqlite_db_t *d = from_db(db);
    archive_ctx_t c = {.d = d, .q = q};
    if (q->with != NULL)
        c.filters |= q->with[storage_jid_bare_len(q->with)] == '/' ? AQ_FULL : AQ_BARE;
    c.filters |= (q->has_start ? AQ_START : 0) | (q->has_end ? AQ_END : 0);
    int rc = tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = archive_owner(d, owner, false, &c.owner);
    if (rc == 0 && q->after_id != NULL)
        rc = archive_key(d, c.owner, q->after_id, &c.lo);
    if (rc == 0 && q->before_id != NULL)
        rc = archive_key(d, c.owner, q->before_id, &c.hi);
    if (rc == 0 && q->nids > 0)
        rc = archive_ids(&c);
    if (rc == 0)
        rc = archive_page(&c, out);
    core_free(c.keys);
    return tx_end(d, rc);
}

static int sq_archive_expire(storage_db_t *db, const char *owner, int64_t before_us)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 id = 0;
    int rc = tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = archive_owner(d, owner, false, &id);
    if (rc < 0 || id == 0)
        goto out;
    /* INT64_MAX means everything, also an entry stamped INT64_MAX. */
    sqlite3_stmt *s =
        stmt_uid(d, before_us == INT64_MAX ? ST_ARCHIVE_CLEAR : ST_ARCHIVE_EXPIRE, id);
    if (s == NULL) {
        rc = prep_err(d);
        goto out;
    }
    if (before_us != INT64_MAX)
        sqlite3_bind_int64(s, 2, before_us);
    rc = run(d, s);
    if (rc == 0 && id < 0 && before_us == INT64_MAX) {
        /* A room's archive is gone with its entries. */
        s = stmt_uid(d, ST_ROOM_DELETE, -id);
        rc = s != NULL ? run(d, s) : prep_err(d);
    }
out:
    return tx_end(d, rc);
}

/* ---- open, migrate, close ---- */

static void sq_close(storage_db_t *db)
{
    sqlite_db_t *d = from_db(db);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(d->stmts[i]);
    for (int i = 0; i < AQ_SHAPES; i++)
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
    .archive_append = sq_archive_append,
    .archive_query = sq_archive_query,
    .archive_expire = sq_archive_expire,
    .archive_key_max = sq_archive_key_max,
};

int storage_sqlite_schema_current(void)
{
    return MIGRATION_COUNT;
}

static int exec(sqlite_db_t *d, const char *sql)
{
    return map_err(sqlite3_exec(d->h, sql, NULL, NULL, NULL));
}

/* Reads schema_version (0 for a new database, which gets its row). In the transaction. */
static int schema_version(sqlite_db_t *d, int *version)
{
    sqlite3_stmt *s = NULL;
    int rc = exec(d, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
    if (rc < 0)
        return rc;
    rc = sqlite3_prepare_v2(d->h, "SELECT version FROM schema_version", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return map_err(rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        sqlite3_int64 v = sqlite3_column_int64(s, 0);
        *version = v < 0 || v > INT32_MAX ? INT32_MAX : (int)v;
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        *version = 0;
        rc = exec(d, "INSERT INTO schema_version (version) VALUES (0)");
    } else {
        rc = map_err(rc);
    }
    sqlite3_finalize(s);
    return rc;
}

/* The largest gap between an old entry's stamp and the counter in its id (a burst of ids). */
#define MIGRATE_SKEW_US (60 * 1000000LL)

/* Copies one old row (user_id, archive_id, stamp, with_bare, with_full, data) as key. */
static int migrate_row(sqlite_db_t *d, sqlite3_stmt *ins, sqlite3_stmt *old, sqlite3_int64 key,
                       const uint64_t *nonce)
{
    sqlite3_bind_int64(ins, 1, sqlite3_column_int64(old, 0));
    sqlite3_bind_int64(ins, 2, key);
    if (nonce != NULL)
        sqlite3_bind_int64(ins, 3, (sqlite3_int64)*nonce);
    else
        sqlite3_bind_value(ins, 7, sqlite3_column_value(old, 1));
    sqlite3_bind_value(ins, 4, sqlite3_column_value(old, 3));
    const char *full = (const char *)sqlite3_column_text(old, 4);
    const char *slash = full != NULL ? strchr(full, '/') : NULL;
    if (slash != NULL)
        sqlite3_bind_text(ins, 5, slash + 1, -1, SQLITE_TRANSIENT);
    sqlite3_bind_value(ins, 6, sqlite3_column_value(old, 5));
    return run(d, ins);
}

/*
 * Migration 6's data: each user's old entries in their order (seq), with keys that keep it.
 * An old id the sm made (a counter from the clock and a random number, the same text
 * storage_archive_id_format makes) decodes to its key and nonce, and stays an id found by
 * decoding, when its counter is above the previous entry's key and close to its stamp.
 * Any other entry gets the key max(stamp, previous + 1) and keeps its id in old_id.
 */
static int archive_migrate_v6(sqlite_db_t *d)
{
    sqlite3_stmt *old = NULL, *ins = NULL;
    int rc = map_err(sqlite3_prepare_v2(d->h,
                                        "SELECT user_id, archive_id, stamp, with_bare, with_full,"
                                        " data FROM archive_v4 ORDER BY user_id, seq",
                                        -1, &old, NULL));
    if (rc == 0)
        rc = map_err(sqlite3_prepare_v2(
            d->h,
            "INSERT INTO archive (owner, key, nonce, with_bare, with_res, data, old_id)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            -1, &ins, NULL));
    sqlite3_int64 user = 0, prev = -1, key_max = 0;
    int step;
    while (rc == 0 && (step = sqlite3_step(old)) == SQLITE_ROW) {
        if (sqlite3_column_int64(old, 0) != user) {
            user = sqlite3_column_int64(old, 0);
            prev = -1;
        }
        sqlite3_int64 stamp = sqlite3_column_int64(old, 2);
        const char *id = (const char *)sqlite3_column_text(old, 1);
        int64_t k;
        uint64_t nonce;
        bool decodes = id != NULL && storage_archive_id_parse(id, &k, &nonce) == 0 && k > prev &&
            k >= stamp && k - stamp <= MIGRATE_SKEW_US;
        if (!decodes)
            k = stamp > prev ? (stamp > 0 ? stamp : 0) : prev + 1;
        if (k <= prev)
            k = prev + 1;
        rc = migrate_row(d, ins, old, k, decodes ? &nonce : NULL);
        prev = k;
        key_max = k > key_max ? k : key_max;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = map_err(step);
    sqlite3_finalize(old);
    sqlite3_finalize(ins);
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE archive_state SET key_max = %lld", (long long)key_max);
    if (rc == 0)
        rc = exec(d, sql);
    if (rc == 0)
        rc = exec(d,
                  "DROP TABLE archive_v4;"
                  "CREATE INDEX archive_key ON archive(owner, key, with_bare);"
                  "CREATE UNIQUE INDEX archive_old_id ON archive(owner, old_id)"
                  " WHERE old_id IS NOT NULL;");
    return rc;
}

/*
 * Brings the schema to target in one transaction. The write lock is taken first, so two
 * processes opening an old database at once migrate it once.
 */
static int migrate(sqlite_db_t *d, int target)
{
    int version = 0;
    int rc = exec(d, "BEGIN IMMEDIATE");
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
        rc = exec(d, migrations[i]);
        if (rc == 0 && i + 1 == 6)
            rc = archive_migrate_v6(d);
        if (rc < 0)
            goto fail;
    }
    if (target > version) {
        char sql[64];
        snprintf(sql, sizeof(sql), "UPDATE schema_version SET version = %d", target);
        rc = exec(d, sql);
        if (rc < 0)
            goto fail;
    }
    return exec(d, "COMMIT");
fail:
    exec(d, "ROLLBACK");
    return rc;
}

/* Sets journal_mode=WAL; the pragma answers with the mode actually in force. */
static int set_wal(sqlite_db_t *d)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(d->h, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return map_err(rc);
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        const char *mode = (const char *)sqlite3_column_text(s, 0);
        rc = mode != NULL && strcmp(mode, "wal") == 0 ? 0 : -ENOTSUP;
    } else {
        rc = map_err(rc);
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
        rc = map_err(rc);
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
    rc = exec(d,
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
