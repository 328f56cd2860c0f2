/* SPDX-License-Identifier: MIT */
/* The sqlite backend's message archive: each owner's entries stored in chunks (schema 7). */
#include "storage/backend_sqlite.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A chunk is one row of archive_chunk: consecutive entries of one owner, written once (by an
 * append, or by migration 7) and rewritten only when expiry cuts through it. Its bounds keep
 * a row to a few overflow pages and a rewrite cheap.
 */
#define CHUNK_ENTRIES_MAX 256
#define CHUNK_DATA_MAX (256 * 1024)

/*
 * meta, the chunk's entries in key order: a format byte (META_FORMAT), then per entry
 *   varint  key minus the previous entry's (the first: minus the chunk's first_key, so 0)
 *   8 bytes nonce, little-endian (0 for an entry that keeps an old id)
 *   varint  length of the other party's bare JID, then its bytes
 *   varint  r: r >> 1 is 0 for no resource, else the resource's length + 1 (its bytes
 *           follow); r & 1 is set when the entry keeps an id from before schema 6
 *           (archive_old_id has it, by key)
 *   varint  length of the entry's stanza in data (the entries' stanzas, concatenated)
 */
#define META_FORMAT 1

enum arc_stmt {
    AS_LAST,
    AS_INSERT,
    AS_FWD,
    AS_FWD_META,
    AS_BWD_META,
    AS_HOLDER,
    AS_META,
    AS_DATA,
    AS_REWRITE,
    AS_EXPIRE,
    AS_CLEAR,
    AS_USER_DELETE,
    AS_OLD_KEY,
    AS_OLD_ID,
    AS_OLD_INSERT,
    AS_OLD_EXPIRE,
    AS_OLD_CLEAR,
    AS_OLD_USER_DELETE,
    AS_KEY_MAX,
    AS_KEY_BUMP,
    AS_ROOM_ID,
    AS_ROOM_INSERT,
    AS_ROOM_DELETE,
    AS_COUNT
};

static_assert(AS_COUNT <= STORAGE_SQLITE_ARCHIVE_STMTS, "room for the archive statements");

static const char *const arc_sql[AS_COUNT] = {
    [AS_LAST] = "SELECT last_key FROM archive_chunk WHERE owner = ?1 ORDER BY last_key DESC"
                " LIMIT 1",
    [AS_INSERT] = "INSERT INTO archive_chunk (owner, first_key, last_key, count, meta, data)"
                  " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* The chunks from the one holding ?2 on (chunks of an owner never overlap). */
    [AS_FWD] = "SELECT rowid, first_key, last_key, count FROM archive_chunk"
               " WHERE owner = ?1 AND last_key >= ?2 ORDER BY last_key",
    /* The same with meta, for scans that decode every chunk (no lookup by rowid each). */
    [AS_FWD_META] = "SELECT rowid, first_key, last_key, count, meta FROM archive_chunk"
                    " WHERE owner = ?1 AND last_key >= ?2 ORDER BY last_key",
    [AS_BWD_META] = "SELECT rowid, first_key, last_key, count, meta FROM archive_chunk"
                    " WHERE owner = ?1 AND last_key <= ?2 ORDER BY last_key DESC",
    /* The chunk holding key ?2, if first_key <= ?2. */
    [AS_HOLDER] = "SELECT rowid, first_key, last_key, count FROM archive_chunk"
                  " WHERE owner = ?1 AND last_key >= ?2 ORDER BY last_key LIMIT 1",
    [AS_META] = "SELECT meta FROM archive_chunk WHERE rowid = ?1",
    [AS_DATA] = "SELECT data FROM archive_chunk WHERE rowid = ?1",
    [AS_REWRITE] = "UPDATE archive_chunk SET first_key = ?2, count = ?3, meta = ?4, data = ?5"
                   " WHERE rowid = ?1",
    [AS_EXPIRE] = "DELETE FROM archive_chunk WHERE owner = ?1 AND last_key < ?2",
    [AS_CLEAR] = "DELETE FROM archive_chunk WHERE owner = ?1",
    [AS_USER_DELETE] =
        "DELETE FROM archive_chunk WHERE owner = (SELECT id FROM users WHERE name = ?1)",
    [AS_OLD_KEY] = "SELECT key FROM archive_old_id WHERE owner = ?1 AND old_id = ?2",
    [AS_OLD_ID] = "SELECT old_id FROM archive_old_id WHERE owner = ?1 AND key = ?2",
    [AS_OLD_INSERT] = "INSERT INTO archive_old_id (owner, key, old_id) VALUES (?1, ?2, ?3)",
    [AS_OLD_EXPIRE] = "DELETE FROM archive_old_id WHERE owner = ?1 AND key < ?2",
    [AS_OLD_CLEAR] = "DELETE FROM archive_old_id WHERE owner = ?1",
    [AS_OLD_USER_DELETE] =
        "DELETE FROM archive_old_id WHERE owner = (SELECT id FROM users WHERE name = ?1)",
    [AS_KEY_MAX] = "SELECT key_max FROM archive_state",
    [AS_KEY_BUMP] = "UPDATE archive_state SET key_max = ?1 WHERE key_max < ?1",
    [AS_ROOM_ID] = "SELECT id FROM archive_rooms WHERE jid = ?1",
    [AS_ROOM_INSERT] = "INSERT INTO archive_rooms (jid) VALUES (?1)",
    [AS_ROOM_DELETE] = "DELETE FROM archive_rooms WHERE id = ?1",
};

typedef storage_sqlite_db_t sqlite_db_t;

static sqlite_db_t *from_db(storage_db_t *db)
{
    return (sqlite_db_t *)db;
}

static sqlite3_stmt *astmt(sqlite_db_t *d, enum arc_stmt id)
{
    return storage_sqlite_stmt_get(d, &d->archive_stmts[id], arc_sql[id]);
}

/* The statement with ?1 bound to the owner id (NULL if it cannot prepare). */
static sqlite3_stmt *astmt_owner(sqlite_db_t *d, enum arc_stmt id, sqlite3_int64 owner)
{
    sqlite3_stmt *s = astmt(d, id);
    if (s != NULL)
        sqlite3_bind_int64(s, 1, owner);
    return s;
}

static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Runs a statement bound by the caller; NULL s is the preparation's error. */
static int run(sqlite_db_t *d, sqlite3_stmt *s)
{
    return s != NULL ? storage_sqlite_stmt_run(s) : storage_sqlite_err_prep(d);
}

/* Steps a one-row lookup: 0 with *out from column 0, -ENOMSG without a row. Resets it. */
static int lookup_int(sqlite_db_t *d, sqlite3_stmt *s, sqlite3_int64 *out)
{
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(s, 0);
    stmt_done(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOMSG : storage_sqlite_err_map(rc);
}

/*
 * An archive's owner id: users.id (> 0) for a user, -archive_rooms.id (< 0) for a service
 * entity's archive; 0 is nobody's (a room with no archive yet: every query finds nothing).
 * Inside a transaction. With create, a room gets its row; without, a missing room is 0.
 */
static int archive_owner(sqlite_db_t *d, const char *owner, bool create, sqlite3_int64 *id)
{
    if (strchr(owner, '@') == NULL)
        return storage_sqlite_user_id(d, owner, id);
    *id = 0;
    sqlite3_stmt *s = astmt(d, AS_ROOM_ID);
    if (s != NULL)
        sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
    sqlite3_int64 room = 0;
    int rc = lookup_int(d, s, &room);
    if (rc == 0)
        *id = -room;
    if (rc != -ENOMSG || !create)
        return rc == -ENOMSG ? 0 : rc;
    s = astmt(d, AS_ROOM_INSERT);
    if (s != NULL)
        sqlite3_bind_text(s, 1, owner, -1, SQLITE_STATIC);
    rc = run(d, s);
    if (rc == 0)
        *id = -sqlite3_last_insert_rowid(d->h);
    return rc;
}

/* ---- chunk encoding ---- */

static void varint_put(core_buf_t *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v != 0)
            tmp[n] |= 0x80;
        n++;
    } while (v != 0);
    core_buf_append(b, tmp, n);
}

/* Reads a varint at *p (below end); false when it runs past end or beyond 64 bits. */
static bool varint_get(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char c = *(*p)++;
        r |= (uint64_t)(c & 0x7f) << shift;
        if ((c & 0x80) == 0) {
            *v = r;
            return true;
        }
    }
    return false;
}

/* A chunk being built: entries in key order, then one row. */
typedef struct chunk_builder {
    core_buf_t meta;
    core_buf_t data;
    int64_t first_key;
    int64_t last_key;
    size_t count;
} chunk_builder_t;

/* One entry as the builder takes it (all borrowed). */
typedef struct chunk_entry {
    int64_t key;
    uint64_t nonce;
    const char *bare;
    size_t bare_len;
    const char *res; /* NULL: none */
    size_t res_len;
    bool old; /* keeps an old id (archive_old_id) */
    const void *data;
    size_t len;
} chunk_entry_t;

/* Whether e must start a new chunk (the current one is at its bounds). */
static bool builder_full(const chunk_builder_t *b, size_t len)
{
    return b->count > 0 && (b->count >= CHUNK_ENTRIES_MAX || b->data.len + len > CHUNK_DATA_MAX);
}

/* Adds e, whose key is above the chunk's last. */
static void builder_add(chunk_builder_t *b, const chunk_entry_t *e)
{
    if (b->count == 0) {
        b->meta.len = 0;
        b->data.len = 0;
        core_buf_append(&b->meta, &(unsigned char){META_FORMAT}, 1);
        b->first_key = e->key;
        b->last_key = e->key;
    }
    varint_put(&b->meta, (uint64_t)(e->key - b->last_key));
    unsigned char nonce[8];
    for (int i = 0; i < 8; i++)
        nonce[i] = (unsigned char)(e->nonce >> (8 * i));
    core_buf_append(&b->meta, nonce, sizeof(nonce));
    varint_put(&b->meta, e->bare_len);
    core_buf_append(&b->meta, e->bare, e->bare_len);
    uint64_t r = e->res != NULL ? ((uint64_t)e->res_len + 1) << 1 : 0;
    varint_put(&b->meta, r | (e->old ? 1 : 0));
    if (e->res != NULL)
        core_buf_append(&b->meta, e->res, e->res_len);
    varint_put(&b->meta, e->len);
    core_buf_append(&b->data, e->data, e->len);
    b->last_key = e->key;
    b->count++;
}

/* Writes the chunk as a new row of owner's archive and empties the builder. */
static int builder_flush(sqlite_db_t *d, sqlite3_int64 owner, chunk_builder_t *b)
{
    if (b->count == 0)
        return 0;
    sqlite3_stmt *s = astmt_owner(d, AS_INSERT, owner);
    if (s != NULL) {
        sqlite3_bind_int64(s, 2, b->first_key);
        sqlite3_bind_int64(s, 3, b->last_key);
        sqlite3_bind_int64(s, 4, (sqlite3_int64)b->count);
        sqlite3_bind_blob64(s, 5, b->meta.data, b->meta.len, SQLITE_STATIC);
        sqlite3_bind_blob64(s, 6, b->data.data != NULL ? b->data.data : "", b->data.len,
                            SQLITE_STATIC);
    }
    b->count = 0;
    return run(d, s);
}

static void builder_release(chunk_builder_t *b)
{
    core_buf_release(&b->meta);
    core_buf_release(&b->data);
}

/* One decoded entry of a chunk (pointing into the chunk's copy of meta). */
typedef struct chunk_item {
    int64_t key;
    uint64_t nonce;
    const char *bare;
    size_t bare_len;
    const char *res; /* NULL: none */
    size_t res_len;
    bool old;
    size_t off; /* its stanza in data */
    size_t len;
} chunk_item_t;

/* A decoded chunk: its row and entries (the arrays are reused from chunk to chunk). */
typedef struct chunk {
    sqlite3_int64 rowid;
    int64_t first_key;
    int64_t last_key;
    size_t count;
    core_buf_t meta; /* a copy: sqlite's bytes last only until the next step */
    chunk_item_t *items;
    size_t cap;
} chunk_t;

/* Decodes c->meta into c->items; -EBADMSG when it does not parse or disagrees with the row. */
static int chunk_decode(chunk_t *c)
{
    const unsigned char *p = (const unsigned char *)c->meta.data;
    const unsigned char *end = p + c->meta.len;
    if (c->count == 0 || c->count > CHUNK_ENTRIES_MAX || c->meta.len == 0 || *p++ != META_FORMAT)
        return -EBADMSG;
    if (c->cap < c->count) {
        c->items = core_realloc(c->items, c->count * sizeof(*c->items));
        c->cap = c->count;
    }
    int64_t key = c->first_key;
    size_t off = 0;
    for (size_t i = 0; i < c->count; i++) {
        chunk_item_t *it = &c->items[i];
        uint64_t delta, bare, r, len;
        if (!varint_get(&p, end, &delta) || delta > (uint64_t)(INT64_MAX - key) ||
            (i > 0 && delta == 0) || end - p < 8)
            return -EBADMSG;
        it->key = key = key + (int64_t)delta;
        it->nonce = 0;
        for (int j = 0; j < 8; j++)
            it->nonce |= (uint64_t)*p++ << (8 * j);
        if (!varint_get(&p, end, &bare) || bare > (uint64_t)(end - p))
            return -EBADMSG;
        it->bare = (const char *)p;
        it->bare_len = (size_t)bare;
        p += bare;
        if (!varint_get(&p, end, &r) || (r >> 1) > (uint64_t)(end - p) + 1)
            return -EBADMSG;
        it->old = (r & 1) != 0;
        it->res = (r >> 1) != 0 ? (const char *)p : NULL;
        it->res_len = (r >> 1) != 0 ? (size_t)(r >> 1) - 1 : 0;
        p += it->res_len;
        if (!varint_get(&p, end, &len) || len > SIZE_MAX - off)
            return -EBADMSG;
        it->off = off;
        it->len = (size_t)len;
        off += (size_t)len;
    }
    return p == end && key == c->last_key ? 0 : -EBADMSG;
}

/* Reads and decodes the meta of the chunk c->rowid (whose bounds and count c has). */
static int chunk_load(sqlite_db_t *d, chunk_t *c)
{
    sqlite3_stmt *s = astmt(d, AS_META);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_int64(s, 1, c->rowid);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        c->meta.len = 0;
        core_buf_append(&c->meta, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0));
    }
    stmt_done(s);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? -EBADMSG : storage_sqlite_err_map(rc);
    return chunk_decode(c);
}

/* Takes the bounds of the chunk at the statement's current row (rowid, first, last, count). */
static void chunk_from_row(chunk_t *c, sqlite3_stmt *s)
{
    c->rowid = sqlite3_column_int64(s, 0);
    c->first_key = sqlite3_column_int64(s, 1);
    c->last_key = sqlite3_column_int64(s, 2);
    sqlite3_int64 n = sqlite3_column_int64(s, 3);
    c->count = n > 0 ? (size_t)n : 0;
}

/* Decodes the meta of the statement's current row (column 4), taken with chunk_from_row. */
static int chunk_from_row_meta(chunk_t *c, sqlite3_stmt *s)
{
    chunk_from_row(c, s);
    c->meta.len = 0;
    core_buf_append(&c->meta, sqlite3_column_blob(s, 4), (size_t)sqlite3_column_bytes(s, 4));
    return chunk_decode(c);
}

static void chunk_release(chunk_t *c)
{
    core_buf_release(&c->meta);
    core_free(c->items);
}

/*
 * The chunk of owner's archive holding key: 0 with *c loaded and *idx the entry's index,
 * or -ENOMSG when the archive has no entry with that key.
 */
static int chunk_find(sqlite_db_t *d, sqlite3_int64 owner, int64_t key, chunk_t *c, size_t *idx)
{
    sqlite3_stmt *s = astmt_owner(d, AS_HOLDER, owner);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_int64(s, 2, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        chunk_from_row(c, s);
    stmt_done(s);
    if (rc != SQLITE_ROW)
        return rc == SQLITE_DONE ? -ENOMSG : storage_sqlite_err_map(rc);
    if (c->first_key > key)
        return -ENOMSG;
    rc = chunk_load(d, c);
    if (rc < 0)
        return rc;
    size_t lo = 0, hi = c->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->items[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == c->count || c->items[lo].key != key)
        return -ENOMSG;
    *idx = lo;
    return 0;
}

/* ---- append ---- */

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

/*
 * Appends one owner's entries of the batch (order[0..n), in batch order) as chunks. An archive
 * only grows by key (storage.h): an entry whose key is not above the archive's last is
 * -EEXIST, found with one lookup of the owner's last chunk, not one per entry.
 */
static int append_owner(sqlite_db_t *d, sqlite3_int64 owner, const batch_ref_t *order, size_t n,
                        int *status, chunk_builder_t *b)
{
    sqlite3_int64 last = -1;
    int rc = lookup_int(d, astmt_owner(d, AS_LAST, owner), &last);
    if (rc < 0 && rc != -ENOMSG)
        return rc;
    b->count = 0;
    for (size_t i = 0; i < n; i++) {
        const storage_archive_entry_t *e = order[i].e;
        if (e->key <= last) {
            status[order[i].index] = -EEXIST;
            continue;
        }
        if (builder_full(b, e->len)) {
            rc = builder_flush(d, owner, b);
            if (rc < 0)
                return rc;
        }
        size_t bare = storage_jid_bare_len(e->with);
        const char *res = e->with[bare] == '/' ? e->with + bare + 1 : NULL;
        builder_add(b,
                    &(chunk_entry_t){.key = e->key,
                                     .nonce = e->nonce,
                                     .bare = e->with,
                                     .bare_len = bare,
                                     .res = res,
                                     .res_len = res != NULL ? strlen(res) : 0,
                                     .data = e->data != NULL ? e->data : "",
                                     .len = e->len});
        last = e->key;
    }
    return builder_flush(d, owner, b);
}

int storage_sqlite_archive_append(storage_db_t *db, const storage_archive_entry_t *entries,
                                  size_t n, int *status)
{
    sqlite_db_t *d = from_db(db);
    /*
     * Owner by owner (one lookup each, and each owner's run of entries becomes one row, or a
     * few when it is long), in one transaction for the whole batch: a commit (with sync =
     * full, its fsync) costs far more than an insert, and the sm sends what it archived
     * while the previous batch was written at once.
     */
    batch_ref_t *order = core_malloc(n * sizeof(*order));
    int64_t key_max = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = (batch_ref_t){.e = &entries[i], .index = i};
        key_max = entries[i].key > key_max ? entries[i].key : key_max;
    }
    qsort(order, n, sizeof(*order), batch_ref_cmp);
    chunk_builder_t b = {0};
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        goto out;
    for (size_t i = 0, j; rc == 0 && i < n; i = j) {
        for (j = i + 1; j < n && strcmp(order[j].e->owner, order[i].e->owner) == 0; j++)
            ;
        sqlite3_int64 owner = 0;
        rc = archive_owner(d, order[i].e->owner, true, &owner);
        if (rc == -ENOENT) {
            for (size_t k = i; k < j; k++)
                status[order[k].index] = -ENOENT;
            rc = 0;
        } else if (rc == 0) {
            rc = append_owner(d, owner, order + i, j - i, status, &b);
        }
    }
    if (rc == 0) {
        sqlite3_stmt *s = astmt(d, AS_KEY_BUMP);
        if (s != NULL)
            sqlite3_bind_int64(s, 1, key_max);
        rc = run(d, s);
    }
    rc = storage_sqlite_tx_end(d, rc);
out:
    builder_release(&b);
    core_free(order);
    return rc;
}

int storage_sqlite_archive_key_max(storage_db_t *db, int64_t *out)
{
    sqlite_db_t *d = from_db(db);
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    sqlite3_int64 v = 0;
    rc = lookup_int(d, astmt(d, AS_KEY_MAX), &v);
    *out = rc == 0 ? v : 0;
    return storage_sqlite_tx_end(d, rc == -ENOMSG ? 0 : rc);
}

/* ---- query ---- */

/* One archive query: its filters, decoded once, and the scratch its scans share. */
typedef struct arc_query {
    sqlite_db_t *d;
    const storage_archive_query_t *q;
    sqlite3_int64 owner;
    const char *bare; /* the 'with' filter (NULL: none): bare part, and resource if full */
    size_t bare_len;
    const char *res;
    size_t res_len;
    int64_t start; /* the time range, inclusive (0 and INT64_MAX without one) */
    int64_t end;
    int64_t lo; /* the after_id entry's key */
    int64_t hi; /* the before_id entry's key */
    int64_t *keys; /* the keys of q->ids found, sorted and distinct (nkeys of them) */
    size_t nkeys;
    chunk_t chunk;
} arc_query_t;

/* Where each item of a page has its stanza: the chunk and the bytes in its data. */
typedef struct page_ref {
    sqlite3_int64 rowid;
    size_t off;
    size_t len;
} page_ref_t;

static bool key_listed(const arc_query_t *a, int64_t key)
{
    size_t lo = 0, hi = a->nkeys;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->nkeys && a->keys[lo] == key;
}

/* Whether the entry passes the query's filters ('with', start/end, ids). */
static bool item_matches(const arc_query_t *a, const chunk_item_t *it)
{
    if (it->key < a->start || it->key > a->end)
        return false;
    if (a->bare != NULL) {
        /* XEP-0313 §4.1.1: a bare JID matches its resources, a full JID only itself. */
        if (it->bare_len != a->bare_len || memcmp(it->bare, a->bare, a->bare_len) != 0)
            return false;
        if (a->res != NULL &&
            (it->res == NULL || it->res_len != a->res_len ||
             memcmp(it->res, a->res, a->res_len) != 0))
            return false;
    }
    return a->q->nids == 0 || key_listed(a, it->key);
}

/*
 * The key of the owner's entry id; -ENOMSG when there is none (XEP-0313 §4.1.3). An id
 * storage_archive_id_format made is decoded: the chunk holding its key is found through the
 * index, and the entry's nonce must be the id's. Any other id can only be an old one (an
 * entry migrated from schema 4).
 */
static int archive_key(arc_query_t *a, const char *id, int64_t *key)
{
    int64_t k;
    uint64_t nonce;
    if (storage_archive_id_parse(id, &k, &nonce) == 0) {
        size_t i = 0;
        int rc = chunk_find(a->d, a->owner, k, &a->chunk, &i);
        if (rc == 0 && !a->chunk.items[i].old && a->chunk.items[i].nonce == nonce) {
            *key = k;
            return 0;
        }
        if (rc < 0 && rc != -ENOMSG)
            return rc;
    }
    sqlite3_stmt *s = astmt_owner(a->d, AS_OLD_KEY, a->owner);
    if (s != NULL)
        sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_int64 v = 0;
    int rc = lookup_int(a->d, s, &v);
    if (rc == 0)
        *key = v;
    return rc;
}

static int key_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The keys of the query's ids, distinct; unknown ids are left out (urn:xmpp:mam:2#extended). */
static int archive_ids(arc_query_t *a)
{
    const storage_archive_query_t *q = a->q;
    a->keys = core_malloc(q->nids * sizeof(*a->keys));
    for (size_t i = 0; i < q->nids; i++) {
        int rc = archive_key(a, q->ids[i], &a->keys[a->nkeys]);
        if (rc == 0)
            a->nkeys++;
        else if (rc != -ENOMSG)
            return rc;
    }
    qsort(a->keys, a->nkeys, sizeof(*a->keys), key_cmp);
    size_t w = 0;
    for (size_t i = 0; i < a->nkeys; i++)
        if (w == 0 || a->keys[w - 1] != a->keys[i])
            a->keys[w++] = a->keys[i];
    a->nkeys = w;
    return 0;
}

/*
 * Counts the matches in the query's range (*total) and those at or below split (*below; split
 * < start counts none). A chunk wholly inside the range and on one side of split counts by
 * its row's count when no filter looks at entries ('with', ids); any other chunk (the edges,
 * or all of them with a filter) is decoded, which reads its meta but never its data.
 */
static int archive_count(arc_query_t *a, int64_t split, size_t *total, size_t *below)
{
    int64_t from = a->start, to = a->end;
    if (a->q->nids > 0) {
        from = a->keys[0] > from ? a->keys[0] : from;
        to = a->keys[a->nkeys - 1] < to ? a->keys[a->nkeys - 1] : to;
    }
    *total = *below = 0;
    if (from > to)
        return 0;
    bool by_rows = a->bare == NULL && a->q->nids == 0;
    sqlite3_stmt *s = astmt_owner(a->d, by_rows ? AS_FWD : AS_FWD_META, a->owner);
    if (s == NULL)
        return storage_sqlite_err_prep(a->d);
    sqlite3_bind_int64(s, 2, from);
    chunk_t *c = &a->chunk;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        chunk_from_row(c, s);
        if (c->first_key > to)
            break;
        bool inside = c->first_key >= from && c->last_key <= to;
        bool one_side = c->last_key <= split || c->first_key > split;
        if (by_rows && inside && one_side) {
            *total += c->count;
            *below += c->last_key <= split ? c->count : 0;
            continue;
        }
        rc = by_rows ? chunk_load(a->d, c) : chunk_from_row_meta(c, s);
        if (rc < 0)
            break;
        for (size_t i = 0; i < c->count; i++) {
            if (item_matches(a, &c->items[i])) {
                (*total)++;
                *below += c->items[i].key <= split ? 1 : 0;
            }
        }
    }
    stmt_done(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    return rc < 0 ? rc : storage_sqlite_err_map(rc);
}

/* Fills out's next item from a chunk's entry (the data comes later: page_data). */
static int page_take(arc_query_t *a, const chunk_item_t *it, storage_archive_result_t *out,
                     page_ref_t *refs)
{
    storage_archive_item_t *r = &out->items[out->count];
    if (it->old) {
        sqlite3_stmt *s = astmt_owner(a->d, AS_OLD_ID, a->owner);
        if (s == NULL)
            return storage_sqlite_err_prep(a->d);
        sqlite3_bind_int64(s, 2, it->key);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW)
            r->id = core_strndup((const char *)sqlite3_column_blob(s, 0),
                                 (size_t)sqlite3_column_bytes(s, 0));
        stmt_done(s);
        if (rc != SQLITE_ROW)
            return rc == SQLITE_DONE ? -EBADMSG : storage_sqlite_err_map(rc);
    } else {
        r->id = core_malloc(STORAGE_ARCHIVE_ID_LEN + 1);
        storage_archive_id_format(it->key, it->nonce, r->id);
    }
    r->stamp_us = it->key;
    size_t n = it->bare_len + (it->res != NULL ? 1 + it->res_len : 0);
    r->with = core_malloc(n + 1);
    memcpy(r->with, it->bare, it->bare_len);
    if (it->res != NULL) {
        r->with[it->bare_len] = '/';
        memcpy(r->with + it->bare_len + 1, it->res, it->res_len);
    }
    r->with[n] = '\0';
    refs[out->count] = (page_ref_t){.rowid = a->chunk.rowid, .off = it->off, .len = it->len};
    out->count++;
    return 0;
}

/* The last key of the chunk holding key or the first above it; -ENOMSG when there is none. */
static int holder_last(sqlite_db_t *d, sqlite3_int64 owner, int64_t key, int64_t *last)
{
    sqlite3_stmt *s = astmt_owner(d, AS_HOLDER, owner);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_int64(s, 2, key);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        *last = sqlite3_column_int64(s, 2);
    stmt_done(s);
    if (rc == SQLITE_ROW)
        return 0;
    return rc == SQLITE_DONE ? -ENOMSG : storage_sqlite_err_map(rc);
}

/*
 * Collects up to limit matches with keys in [from, to] into out->items, from the oldest
 * (forward) or the newest (backward, items then newest first). Chunks come through the
 * (owner, last_key) index in that order; backward starts at the chunk holding 'to'.
 */
static int page_scan(arc_query_t *a, int64_t from, int64_t to, bool backward, size_t limit,
                     storage_archive_result_t *out, page_ref_t *refs)
{
    chunk_t *c = &a->chunk;
    int64_t top = INT64_MAX;
    if (backward) {
        int rc = holder_last(a->d, a->owner, to, &top);
        if (rc < 0 && rc != -ENOMSG)
            return rc;
    }
    sqlite3_stmt *s = astmt_owner(a->d, backward ? AS_BWD_META : AS_FWD_META, a->owner);
    if (s == NULL)
        return storage_sqlite_err_prep(a->d);
    sqlite3_bind_int64(s, 2, backward ? top : from);
    int rc = SQLITE_DONE;
    while (out->count < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        chunk_from_row(c, s);
        if (backward ? c->last_key < from : c->first_key > to)
            break;
        rc = chunk_from_row_meta(c, s);
        for (size_t k = 0; rc == 0 && k < c->count && out->count < limit; k++) {
            const chunk_item_t *it = &c->items[backward ? c->count - 1 - k : k];
            if (it->key >= from && it->key <= to && item_matches(a, it))
                rc = page_take(a, it, out, refs);
        }
        if (rc < 0)
            break;
    }
    stmt_done(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return 0;
    return rc < 0 ? rc : storage_sqlite_err_map(rc);
}

/* Reads the page's stanzas: each chunk's data once, for the items it holds. */
static int page_data(arc_query_t *a, storage_archive_result_t *out, const page_ref_t *refs)
{
    sqlite3_stmt *s = NULL;
    const unsigned char *data = NULL;
    size_t len = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < out->count; i++) {
        if (i == 0 || refs[i].rowid != refs[i - 1].rowid) {
            s = astmt(a->d, AS_DATA); /* resets the previous chunk's row */
            if (s == NULL)
                return storage_sqlite_err_prep(a->d);
            sqlite3_bind_int64(s, 1, refs[i].rowid);
            rc = sqlite3_step(s);
            if (rc != SQLITE_ROW) {
                rc = rc == SQLITE_DONE ? -EBADMSG : storage_sqlite_err_map(rc);
                break;
            }
            rc = 0;
            data = sqlite3_column_blob(s, 0);
            len = (size_t)sqlite3_column_bytes(s, 0);
        }
        if (refs[i].off > len || refs[i].len > len - refs[i].off) {
            rc = -EBADMSG;
            break;
        }
        storage_blob_t *b = &out->items[i].data;
        b->data =
            core_strndup(refs[i].len > 0 ? (const char *)data + refs[i].off : "", refs[i].len);
        b->len = refs[i].len;
    }
    if (s != NULL)
        stmt_done(s);
    return rc;
}

static void item_clear(storage_archive_item_t *it)
{
    core_free(it->id);
    core_free(it->with);
    storage_blob_clear(&it->data);
}

/*
 * Counts the matches (total) and those before the page (first_index), and reads one match
 * more than the page (to learn whether it was cut: 'complete'). All in one read transaction,
 * so they agree.
 */
static int archive_page(arc_query_t *a, storage_archive_result_t *out)
{
    const storage_archive_query_t *q = a->q;
    if (q->nids > 0 && a->nkeys == 0) {
        out->complete = true; /* none of the ids is here: nothing matches */
        return 0;
    }
    /* Forward, first_index counts the matches up to after_id; backward, those below before_id. */
    int64_t split = -1;
    if (!q->from_end && q->after_id != NULL)
        split = a->lo;
    else if (q->from_end && q->before_id != NULL)
        split = a->hi - 1;
    size_t below = 0;
    int rc = archive_count(a, split, &out->total, &below);
    if (rc < 0)
        return rc;
    int64_t from = a->start, to = a->end;
    if (q->after_id != NULL)
        from = a->lo == INT64_MAX ? to + 1 : (a->lo + 1 > from ? a->lo + 1 : from);
    if (q->before_id != NULL && a->hi - 1 < to)
        to = a->hi - 1;
    size_t limit = q->max + 1;
    out->items = core_calloc(limit, sizeof(*out->items));
    page_ref_t *refs = core_malloc(limit * sizeof(*refs));
    if (from <= to && from >= 0)
        rc = page_scan(a, from, to, q->from_end, limit, out, refs);
    if (rc == 0)
        rc = page_data(a, out, refs);
    core_free(refs);
    if (rc < 0)
        return rc;
    out->complete = out->count <= q->max;
    if (!out->complete)
        item_clear(&out->items[--out->count]);
    if (!q->from_end) {
        out->first_index = q->after_id != NULL ? below : 0;
        return 0;
    }
    for (size_t i = 0, j = out->count; i + 1 < j; i++, j--) {
        storage_archive_item_t t = out->items[i];
        out->items[i] = out->items[j - 1];
        out->items[j - 1] = t;
    }
    /* The page ends right before before_id (or at the newest match). */
    out->first_index = (q->before_id != NULL ? below : out->total) - out->count;
    return 0;
}

int storage_sqlite_archive_query(storage_db_t *db, const char *owner,
                                 const storage_archive_query_t *q, storage_archive_result_t *out)
{
    sqlite_db_t *d = from_db(db);
    arc_query_t a = {.d = d,
                     .q = q,
                     .start = q->has_start ? q->start_us : 0,
                     .end = q->has_end ? q->end_us : INT64_MAX};
    if (q->with != NULL) {
        a.bare = q->with;
        a.bare_len = storage_jid_bare_len(q->with);
        if (q->with[a.bare_len] == '/') {
            a.res = q->with + a.bare_len + 1;
            a.res_len = strlen(a.res);
        }
    }
    int rc = storage_sqlite_tx_begin(d, false);
    if (rc < 0)
        return rc;
    rc = archive_owner(d, owner, false, &a.owner);
    if (rc == 0 && q->after_id != NULL)
        rc = archive_key(&a, q->after_id, &a.lo);
    if (rc == 0 && q->before_id != NULL)
        rc = archive_key(&a, q->before_id, &a.hi);
    if (rc == 0 && q->nids > 0)
        rc = archive_ids(&a);
    if (rc == 0)
        rc = archive_page(&a, out);
    core_free(a.keys);
    chunk_release(&a.chunk);
    return storage_sqlite_tx_end(d, rc);
}

/* ---- expiry and deletion ---- */

/* Rewrites the chunk holding before_us without its entries below it (expiry cuts through). */
static int expire_cut(sqlite_db_t *d, sqlite3_int64 owner, int64_t before_us)
{
    chunk_t c = {0};
    chunk_builder_t b = {0};
    sqlite3_stmt *s = astmt_owner(d, AS_HOLDER, owner);
    if (s == NULL)
        return storage_sqlite_err_prep(d);
    sqlite3_bind_int64(s, 2, before_us);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        chunk_from_row(&c, s);
    stmt_done(s);
    if (rc != SQLITE_ROW || c.first_key >= before_us)
        return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : storage_sqlite_err_map(rc);
    rc = chunk_load(d, &c);
    s = astmt(d, AS_DATA);
    if (rc == 0 && s == NULL)
        rc = storage_sqlite_err_prep(d);
    if (rc < 0)
        goto out;
    sqlite3_bind_int64(s, 1, c.rowid);
    rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        rc = rc == SQLITE_DONE ? -EBADMSG : storage_sqlite_err_map(rc);
        goto out;
    }
    const char *data = sqlite3_column_blob(s, 0);
    size_t len = (size_t)sqlite3_column_bytes(s, 0);
    rc = 0;
    for (size_t i = 0; i < c.count; i++) {
        const chunk_item_t *it = &c.items[i];
        if (it->off > len || it->len > len - it->off) {
            rc = -EBADMSG;
            goto out;
        }
        if (it->key >= before_us)
            builder_add(&b,
                        &(chunk_entry_t){.key = it->key,
                                         .nonce = it->nonce,
                                         .bare = it->bare,
                                         .bare_len = it->bare_len,
                                         .res = it->res,
                                         .res_len = it->res_len,
                                         .old = it->old,
                                         .data = data + it->off,
                                         .len = it->len});
    }
    stmt_done(s);
    /* The last entry is at or above before_us, so the chunk keeps at least that one. */
    s = astmt_owner(d, AS_REWRITE, c.rowid);
    if (s != NULL) {
        sqlite3_bind_int64(s, 2, b.first_key);
        sqlite3_bind_int64(s, 3, (sqlite3_int64)b.count);
        sqlite3_bind_blob64(s, 4, b.meta.data, b.meta.len, SQLITE_STATIC);
        sqlite3_bind_blob64(s, 5, b.data.data != NULL ? b.data.data : "", b.data.len,
                            SQLITE_STATIC);
    }
    rc = run(d, s);
out:
    if (s != NULL)
        stmt_done(s);
    builder_release(&b);
    chunk_release(&c);
    return rc;
}

/* Removes the owner's entries below before_us: whole chunks, then the one cut through. */
static int expire_below(sqlite_db_t *d, sqlite3_int64 owner, int64_t before_us)
{
    sqlite3_stmt *s = astmt_owner(d, AS_EXPIRE, owner);
    if (s != NULL)
        sqlite3_bind_int64(s, 2, before_us);
    int rc = run(d, s);
    if (rc == 0)
        rc = expire_cut(d, owner, before_us);
    if (rc == 0) {
        s = astmt_owner(d, AS_OLD_EXPIRE, owner);
        if (s != NULL)
            sqlite3_bind_int64(s, 2, before_us);
        rc = run(d, s);
    }
    return rc;
}

int storage_sqlite_archive_expire(storage_db_t *db, const char *owner, int64_t before_us)
{
    sqlite_db_t *d = from_db(db);
    sqlite3_int64 id = 0;
    int rc = storage_sqlite_tx_begin(d, true);
    if (rc < 0)
        return rc;
    rc = archive_owner(d, owner, false, &id);
    if (rc < 0 || id == 0)
        goto out;
    if (before_us != INT64_MAX) {
        rc = expire_below(d, id, before_us);
        goto out;
    }
    /* INT64_MAX means everything, also an entry stamped INT64_MAX. */
    rc = run(d, astmt_owner(d, AS_CLEAR, id));
    if (rc == 0)
        rc = run(d, astmt_owner(d, AS_OLD_CLEAR, id));
    if (rc == 0 && id < 0) /* a room's archive is gone with its entries */
        rc = run(d, astmt_owner(d, AS_ROOM_DELETE, -id));
out:
    return storage_sqlite_tx_end(d, rc);
}

int storage_sqlite_archive_user_delete(sqlite_db_t *d, const char *user)
{
    sqlite3_stmt *s = astmt(d, AS_USER_DELETE);
    if (s != NULL)
        sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
    int rc = run(d, s);
    if (rc == 0) {
        s = astmt(d, AS_OLD_USER_DELETE);
        if (s != NULL)
            sqlite3_bind_text(s, 1, user, -1, SQLITE_STATIC);
        rc = run(d, s);
    }
    return rc;
}

/* ---- migrations ---- */

/* The largest gap between an old entry's stamp and the counter in its id (a burst of ids). */
#define MIGRATE_SKEW_US (60 * 1000000LL)

/* Copies one old row (user_id, archive_id, stamp, with_bare, with_full, data) as key. */
static int migrate_row(sqlite3_stmt *ins, sqlite3_stmt *old, sqlite3_int64 key,
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
    return storage_sqlite_stmt_run(ins);
}

/*
 * Migration 6's data: each user's old entries in their order (seq), with keys that keep it.
 * An old id the sm made (a counter from the clock and a random number, the same text
 * storage_archive_id_format makes) decodes to its key and nonce, and stays an id found by
 * decoding, when its counter is above the previous entry's key and close to its stamp.
 * Any other entry gets the key max(stamp, previous + 1) and keeps its id in old_id.
 */
int storage_sqlite_archive_migrate_v6(sqlite_db_t *d)
{
    sqlite3_stmt *old = NULL, *ins = NULL;
    int rc = storage_sqlite_err_map(
        sqlite3_prepare_v2(d->h,
                           "SELECT user_id, archive_id, stamp, with_bare, with_full,"
                           " data FROM archive_v4 ORDER BY user_id, seq",
                           -1, &old, NULL));
    if (rc == 0)
        rc = storage_sqlite_err_map(sqlite3_prepare_v2(
            d->h,
            "INSERT INTO archive (owner, key, nonce, with_bare, with_res, data, old_id)"
            " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            -1, &ins, NULL));
    sqlite3_int64 user = 0, prev = -1, key_max = 0;
    int step = SQLITE_DONE;
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
        rc = migrate_row(ins, old, k, decodes ? &nonce : NULL);
        prev = k;
        key_max = k > key_max ? k : key_max;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = storage_sqlite_err_map(step);
    sqlite3_finalize(old);
    sqlite3_finalize(ins);
    char sql[96];
    snprintf(sql, sizeof(sql), "UPDATE archive_state SET key_max = %lld", (long long)key_max);
    if (rc == 0)
        rc = storage_sqlite_exec(d, sql);
    if (rc == 0)
        rc = storage_sqlite_exec(d,
                                 "DROP TABLE archive_v4;"
                                 "CREATE INDEX archive_key ON archive(owner, key, with_bare);"
                                 "CREATE UNIQUE INDEX archive_old_id ON archive(owner, old_id)"
                                 " WHERE old_id IS NOT NULL;");
    return rc;
}

/* Copies one schema-6 row (owner, key, nonce, with_bare, with_res, data, old_id) into b. */
static int migrate_v7_row(sqlite_db_t *d, sqlite3_stmt *old, chunk_builder_t *b)
{
    sqlite3_int64 owner = sqlite3_column_int64(old, 0);
    bool has_old = sqlite3_column_type(old, 6) != SQLITE_NULL;
    chunk_entry_t e = {
        .key = sqlite3_column_int64(old, 1),
        .nonce = (uint64_t)sqlite3_column_int64(old, 2),
        .bare = (const char *)sqlite3_column_blob(old, 3),
        .bare_len = (size_t)sqlite3_column_bytes(old, 3),
        .old = has_old,
        .data = sqlite3_column_blob(old, 5),
        .len = (size_t)sqlite3_column_bytes(old, 5),
    };
    if (sqlite3_column_type(old, 4) != SQLITE_NULL) {
        e.res = (const char *)sqlite3_column_blob(old, 4);
        e.res_len = (size_t)sqlite3_column_bytes(old, 4);
        e.res = e.res != NULL ? e.res : "";
    }
    e.bare = e.bare != NULL ? e.bare : "";
    e.data = e.data != NULL ? e.data : "";
    if (builder_full(b, e.len)) {
        int rc = builder_flush(d, owner, b);
        if (rc < 0)
            return rc;
    }
    builder_add(b, &e);
    if (!has_old)
        return 0;
    sqlite3_stmt *s = astmt_owner(d, AS_OLD_INSERT, owner);
    if (s != NULL) {
        sqlite3_bind_int64(s, 2, e.key);
        sqlite3_bind_value(s, 3, sqlite3_column_value(old, 6));
    }
    return run(d, s);
}

/*
 * Migration 7's data: each owner's schema-6 rows, in key order, become chunks as an append
 * would have made them (bounded the same way), and an old id moves to archive_old_id. Keys,
 * nonces and so ids stay as they were.
 */
int storage_sqlite_archive_migrate_v7(sqlite_db_t *d)
{
    sqlite3_stmt *old = NULL;
    chunk_builder_t b = {0};
    int rc = storage_sqlite_err_map(
        sqlite3_prepare_v2(d->h,
                           "SELECT owner, key, nonce, with_bare, with_res, data, old_id"
                           " FROM archive ORDER BY owner, key",
                           -1, &old, NULL));
    sqlite3_int64 owner = 0;
    int64_t prev = -1;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(old)) == SQLITE_ROW) {
        if (b.count > 0 && sqlite3_column_int64(old, 0) != owner) {
            rc = builder_flush(d, owner, &b);
            prev = -1;
        }
        owner = sqlite3_column_int64(old, 0);
        /* Schema 6 refused a key twice (archive_key); a repeat is a damaged database. */
        if (rc == 0 && sqlite3_column_int64(old, 1) <= prev)
            rc = -EBADMSG;
        prev = sqlite3_column_int64(old, 1);
        if (rc == 0)
            rc = migrate_v7_row(d, old, &b);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = storage_sqlite_err_map(step);
    if (rc == 0)
        rc = builder_flush(d, owner, &b);
    sqlite3_finalize(old);
    builder_release(&b);
    if (rc == 0)
        rc = storage_sqlite_exec(d,
                                 "DROP TABLE archive;"
                                 "CREATE UNIQUE INDEX archive_chunk_owner"
                                 " ON archive_chunk(owner, last_key);"
                                 "CREATE UNIQUE INDEX archive_old_id_owner"
                                 " ON archive_old_id(owner, old_id);");
    return rc;
}
