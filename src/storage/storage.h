/* SPDX-License-Identifier: MIT */
/* Persistent data (accounts, rosters, offline messages, documents, services'): one interface. */
#ifndef PARLEY_STORAGE_H
#define PARLEY_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/config.h"
#include "core/log.h"

/*
 * Two layers share the data types below:
 *
 *  - storage_db_t, synchronous: every call blocks on disk. For the admin tool (parleyctl) and
 *    for the storage thread of the asynchronous front. Never call it on an event loop thread.
 *  - storage_t, asynchronous: opened on a libuv loop; each call queues a request and returns
 *    at once, and its callback runs later on the loop thread (see "Asynchronous front").
 *
 * Several handles, in one process or in several (parleyd and parleyctl), may use one store
 * at the same time: each operation is atomic and isolated from the others.
 *
 * Every function returns 0 or a negative errno code. Common ones:
 *   -ENOENT        the user (or the item, document, credential) does not exist. Per-user data
 *                  exists only while the account does: on a missing account, every per-user
 *                  operation returns -ENOENT.
 *   -EEXIST        storage_*_user_create: the account already exists.
 *   -EINVAL        a malformed argument (see "Names" below).
 *   -ENOSPC        offline push: the user's queue is full (or the disk is).
 *   -ENAMETOOLONG  files backend: a name does not fit in a file name once encoded.
 *   -EBADMSG       stored data could not be parsed (a hand-edited file with a mistake).
 *   -EPROTONOSUPPORT  the store was written by a newer Parley (unknown schema or format).
 *   -EBUSY         another process held the store locked for longer than the busy timeout.
 *   -EIO and other errno codes: the environment failed (disk, permissions).
 *
 * Names. A user name is a prepared JID localpart: 1..STORAGE_USER_MAX bytes of UTF-8, no
 * '@' or '/'. A roster JID is a prepared bare JID, 1..STORAGE_JID_MAX bytes of UTF-8. A
 * document kind is 1..STORAGE_KIND_MAX bytes of [a-z0-9_-] (chosen by code: "vcard",
 * "private"); a document key is 1..STORAGE_KEY_MAX bytes of UTF-8 (e.g. a namespace).
 * Strings passed in are NUL-terminated; opaque values are (pointer, length) and may hold any
 * bytes, NUL included.
 */

#define STORAGE_USER_MAX 1023
#define STORAGE_JID_MAX 3071
#define STORAGE_KIND_MAX 32
#define STORAGE_KEY_MAX 1023
/* Roster item names and group names. */
#define STORAGE_TEXT_MAX 1023
#define STORAGE_GROUPS_MAX 256
/* Credentials, offline stanzas and documents. */
#define STORAGE_VALUE_MAX (16u * 1024u * 1024u)

typedef enum storage_backend_kind {
    STORAGE_BACKEND_SQLITE = 0,
    STORAGE_BACKEND_FILES = 1,
} storage_backend_kind_t;

/* Whether an acknowledged write must survive a power cut (fsync) or only a crash. */
typedef enum storage_sync {
    STORAGE_SYNC_FULL = 0, /* the default */
    STORAGE_SYNC_NONE = 1, /* for tests and throw-away stores: no fsync */
} storage_sync_t;

typedef struct storage_config {
    storage_backend_kind_t backend;
    /* sqlite: the database file (created if missing). files: the root directory (created if
     * missing, but not its parents). Borrowed for the call to open. */
    const char *path;
    storage_sync_t sync;
    /* sqlite: how long to wait for another process's lock before -EBUSY. 0: 5000 ms. */
    unsigned busy_timeout_ms;
    /* Asynchronous front: requests queued and not yet answered. 0: 65536. */
    size_t queue_max;
} storage_config_t;

/* Parses "sqlite" or "files". Returns 0 or -EINVAL. */
int storage_backend_parse(const char *name, storage_backend_kind_t *out);
const char *storage_backend_name(storage_backend_kind_t kind);

/* [storage] in the configuration file (docs/config.md). */
typedef struct storage_settings {
    int backend; /* 0 sqlite, 1 files */
    char *path;
} storage_settings_t;

extern const core_cfg_section_t storage_cfg_section;
/* The open parameters for the configured store (out borrows s->path). */
void storage_settings_apply(const storage_settings_t *s, storage_config_t *out);

/* ---- data types ---- */

/* An owned byte string; data[len] is always a NUL (not counted) so text can be used as is. */
typedef struct storage_blob {
    char *data;
    size_t len;
} storage_blob_t;

/* An owned array of blobs: user names, document keys, offline stanzas. */
typedef struct storage_list {
    storage_blob_t *items;
    size_t count;
} storage_list_t;

/* RFC 6121 §2.1.2.5: the subscription state of a roster item. */
typedef enum storage_sub {
    STORAGE_SUB_NONE = 0,
    STORAGE_SUB_TO = 1,
    STORAGE_SUB_FROM = 2,
    STORAGE_SUB_BOTH = 3,
} storage_sub_t;

/* RFC 6121 §2.1.2.2: a subscription request is pending (ask='subscribe'). */
typedef enum storage_ask {
    STORAGE_ASK_NONE = 0,
    STORAGE_ASK_SUBSCRIBE = 1,
} storage_ask_t;

typedef struct storage_roster_item {
    char *jid; /* bare JID, the item's key */
    char *name; /* NULL: no name */
    storage_sub_t subscription;
    storage_ask_t ask;
    bool approved; /* RFC 6121 §3.4: subscription pre-approval */
    char **groups; /* group_count distinct strings, kept in the given order */
    size_t group_count;
} storage_roster_item_t;

/* A whole roster: items sorted by JID (bytewise), and its XEP-0237 version. */
typedef struct storage_roster {
    char *version; /* decimal; changes (grows) on every change to the roster */
    storage_roster_item_t *items;
    size_t count;
} storage_roster_t;

/* Every document of one kind: keys sorted bytewise, values[i] the data of keys[i]. */
typedef struct storage_docs {
    storage_list_t keys;
    storage_list_t values;
} storage_docs_t;

/* Each frees what the object owns and zeroes it; safe on a zeroed object. */
void storage_blob_clear(storage_blob_t *b);
void storage_list_clear(storage_list_t *l);
void storage_docs_clear(storage_docs_t *d);
void storage_roster_item_clear(storage_roster_item_t *item);
void storage_roster_clear(storage_roster_t *r);
/* A deep copy of src into dst (clear dst later). */
void storage_roster_item_copy(storage_roster_item_t *dst, const storage_roster_item_t *src);

/* "none", "to", "from", "both" and back. Parse returns 0 or -EINVAL. */
const char *storage_sub_name(storage_sub_t sub);
int storage_sub_parse(const char *s, size_t len, storage_sub_t *out);

/* ---- synchronous layer ---- */

typedef struct storage_db storage_db_t;

/*
 * Opens (and creates, and for sqlite migrates to the current schema) a store. Blocks.
 * Returns 0 and *out, or an error (nothing is left open).
 */
int storage_db_open(const storage_config_t *cfg, storage_db_t **out);
void storage_db_close(storage_db_t *db);

/*
 * Out-parameters are filled only on success and are then owned by the caller, who frees
 * them with the matching *_clear (or core_free for a char *). All inputs are borrowed.
 */

/* Creates an account holding creds (the auth layer's credential line). -EEXIST if present. */
int storage_db_user_create(storage_db_t *db, const char *user, const char *creds);
/* 0 if the account exists, else -ENOENT. */
int storage_db_user_exists(storage_db_t *db, const char *user);
/* Removes the account and every kind of data of the user, in one step. */
int storage_db_user_delete(storage_db_t *db, const char *user);
/* All account names, sorted bytewise. */
int storage_db_user_list(storage_db_t *db, storage_list_t *out);
int storage_db_creds_get(storage_db_t *db, const char *user, char **out);
int storage_db_creds_set(storage_db_t *db, const char *user, const char *creds);

/* The whole roster (no items and a version when the user has none). */
int storage_db_roster_get(storage_db_t *db, const char *user, storage_roster_t *out);
/* One item; -ENOENT when the user has no item for jid. */
int storage_db_roster_item_get(storage_db_t *db, const char *user, const char *jid,
                               storage_roster_item_t *out);
/*
 * Adds or replaces the item with item->jid. Bumps the version; version (may be NULL)
 * receives the new one. -EINVAL for an empty or duplicate group.
 */
int storage_db_roster_put(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                          char **version);
/* Removes the item; -ENOENT when there is none. Bumps the version like put. */
int storage_db_roster_delete(storage_db_t *db, const char *user, const char *jid, char **version);

/*
 * Appends a stanza (opaque bytes) to the user's offline queue, unless it already holds limit
 * (>= 1) of them: then -ENOSPC. The limit is the caller's policy, so it is an argument.
 */
int storage_db_offline_push(storage_db_t *db, const char *user, const char *data, size_t len,
                            size_t limit);
/* The queue, oldest first. */
int storage_db_offline_get(storage_db_t *db, const char *user, storage_list_t *out);
/*
 * Removes the count oldest stanzas (all of them if there are fewer). After delivering what
 * storage_*_offline_get returned, pass its count: stanzas pushed in the meantime stay.
 */
int storage_db_offline_delete(storage_db_t *db, const char *user, size_t count);

int storage_db_doc_get(storage_db_t *db, const char *user, const char *kind, const char *key,
                       storage_blob_t *out);
/* Creates or replaces. */
int storage_db_doc_put(storage_db_t *db, const char *user, const char *kind, const char *key,
                       const char *data, size_t len);
int storage_db_doc_delete(storage_db_t *db, const char *user, const char *kind, const char *key);
/* The keys of one kind, sorted bytewise. */
int storage_db_doc_list(storage_db_t *db, const char *user, const char *kind, storage_list_t *out);
/* Every document of one kind with its data (one isolated read). */
int storage_db_doc_get_all(storage_db_t *db, const char *user, const char *kind,
                           storage_docs_t *out);

/* ---- documents of a service ---- */

/*
 * A service (a component's domain, e.g. "conference.localhost") owns documents by kind
 * ("room", later "node") and key (e.g. the room's localpart); the data is opaque bytes. They
 * belong to no account: deleting a user never touches them, and a service needs no creating.
 * The service is a prepared domainpart (RFC 7622 §3.2): 1..STORAGE_SERVICE_MAX bytes of UTF-8,
 * no '@' or '/'. Kind and key follow the rules of user documents (see "Names" above). A
 * document holds at most STORAGE_SVC_VALUE_MAX bytes (a room with ten thousand affiliations
 * of a hundred bytes each is a quarter of it); a larger one is -EINVAL, as for user documents.
 * The files backend needs the service and the key to fit in a file name once encoded
 * (-ENAMETOOLONG otherwise); sqlite takes any valid name.
 */
#define STORAGE_SERVICE_MAX 1023
#define STORAGE_SVC_VALUE_MAX (4u * 1024u * 1024u)

/* Creates or replaces the document. data may be NULL when len is 0. */
int storage_db_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                       const char *data, size_t len);
/*
 * The document: *data gets a new buffer of *len bytes followed by a NUL (not counted), owned
 * by the caller (core_free). -ENOENT if there is none.
 */
int storage_db_svc_get(storage_db_t *db, const char *service, const char *kind, const char *key,
                       char **data, size_t *len);
/* Removes the document; -ENOENT if there is none. */
int storage_db_svc_delete(storage_db_t *db, const char *service, const char *kind, const char *key);
/*
 * Every document of the service of one kind with its data, keys sorted bytewise (none: 0 and
 * an empty out). sqlite reads them in one transaction; the files backend file by file, so a
 * document written meanwhile may be seen old or new, each one whole.
 */
int storage_db_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                           storage_docs_t *out);

/* ---- the message archive (XEP-0313) ---- */

/*
 * An archive has an owner: a local user name (no '@': the account must exist, and its
 * archive goes when the account goes), or the bare JID of a service entity holding an
 * archive of its own, which contains '@' (a MUC room, "room@conference.example"): such an
 * archive exists implicitly (empty until something is appended) and is removed with
 * storage_*_archive_expire(..., INT64_MAX). Owner names are checked like user names and
 * JIDs; a JID owner must be bare (no '/').
 *
 * Each entry has a key, a 64-bit number unique in its archive that also is its time stamp
 * (microseconds since the epoch): the archive is ordered by key, and the appender gives
 * strictly increasing keys (the sm: the clock in microseconds, bumped by one on a collision
 * and never below storage_*_archive_key_max, see docs/storage.md), so key order is append
 * order. The entry's XEP-0359 id is made from its key and a random nonce by
 * storage_archive_id_format; the store finds an entry from its id by decoding it, with no
 * index on the text. Entries a Parley before schema 6 archived keep the ids they had (up to
 * STORAGE_ARCHIVE_ID_MAX bytes of [A-Za-z0-9_-]), and queries still find them by those.
 */
#define STORAGE_ARCHIVE_ID_MAX 64
/* The ids storage_archive_id_format makes: 13 base32hex digits of the key, 13 of the nonce. */
#define STORAGE_ARCHIVE_ID_LEN 26
/* Entries one query returns at most (XEP-0059 max beyond it is cut to this). */
#define STORAGE_ARCHIVE_PAGE_MAX 1000
/* Ids one query may name (urn:xmpp:mam:2#extended 'ids'). */
#define STORAGE_ARCHIVE_IDS_MAX 1000

/* One entry to append (all borrowed). */
typedef struct storage_archive_entry {
    const char *owner; /* whose archive: a user name or a service's bare JID (see above) */
    int64_t key; /* >= 0: the order and the stamp; see storage_db_archive_append */
    uint64_t nonce; /* random: the part of the id that cannot be guessed (XEP-0313 §3) */
    const char *with; /* the other party: a full or bare JID, prepared */
    const char *data; /* the stanza's bytes */
    size_t len;
} storage_archive_entry_t;

/* One entry read back (owned by the result that holds it). */
typedef struct storage_archive_item {
    char *id; /* storage_archive_id_format's, or the old id of an entry from before schema 6 */
    int64_t stamp_us; /* the key */
    char *with;
    storage_blob_t data;
} storage_archive_item_t;

/*
 * What to read. Filters combine (AND); ids, when given, select those entries only (in
 * archive order; unknown ids are left out) and after_id/before_id/max still apply.
 * Paging is by position in the archive (key order, which is append order).
 */
typedef struct storage_archive_query {
    const char *with; /* NULL: anyone. A bare JID matches every resource of it; a full JID
                         only itself; a domain only the domain (XEP-0313 §4.1.1) */
    bool has_start; /* start_us applies: entries stamped at or after it */
    int64_t start_us;
    bool has_end; /* end_us applies: entries stamped at or before it */
    int64_t end_us;
    const char *after_id; /* NULL, or only entries after this one; -ENOMSG if unknown */
    const char *before_id; /* NULL, or only entries before this one; -ENOMSG if unknown */
    const char *const *ids; /* NULL, or nids ids */
    size_t nids;
    size_t max; /* 1..STORAGE_ARCHIVE_PAGE_MAX entries; 0 is allowed: only the count */
    /*
     * false: the first max matching entries (from the oldest, or after after_id).
     * true: the last max (the newest, or those just before before_id) — the page a
     * XEP-0059 <before/> asks for. Either way the items come oldest first.
     */
    bool from_end;
} storage_archive_query_t;

typedef struct storage_archive_result {
    storage_archive_item_t *items; /* oldest first */
    size_t count;
    /* No matching entry lies beyond this page in the direction of paging (XEP-0313 'complete'). */
    bool complete;
    size_t total; /* matching entries, ignoring after_id, before_id and max (XEP-0059 count) */
    size_t first_index; /* the position of items[0] among those (XEP-0059 first@index) */
} storage_archive_result_t;

void storage_archive_result_clear(storage_archive_result_t *r);

/* The id of the entry (key, nonce): STORAGE_ARCHIVE_ID_LEN characters and a NUL. */
void storage_archive_id_format(int64_t key, uint64_t nonce, char out[STORAGE_ARCHIVE_ID_LEN + 1]);
/* The key and nonce of an id format made; -ENOMSG for any other text (not one of ours). */
int storage_archive_id_parse(const char *id, int64_t *key, uint64_t *nonce);

/*
 * Appends entries to their owners' archives in one transaction (an owner user that does not
 * exist is skipped: its entry's status is -ENOENT). status[i] (if status is not NULL)
 * receives each entry's result. Returns 0 when the batch was written, or an error when
 * nothing was. An archive only grows by key: on sqlite an entry whose key is not above the
 * largest key its archive holds (or an earlier entry of its owner in the batch) is skipped
 * with -EEXIST; the files backend refuses only a key already there (docs/storage.md).
 * Appenders give increasing keys (storage_archive_writer), so neither happens in use.
 */
int storage_db_archive_append(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                              int *status);
/* A query of owner's archive (-ENOENT for a user that does not exist; a JID owner's archive
 * with nothing in it is empty). after_id/before_id not in it: -ENOMSG. */
int storage_db_archive_query(storage_db_t *db, const char *owner, const storage_archive_query_t *q,
                             storage_archive_result_t *out);
/* Removes the owner's entries stamped before before_us (retention); all: INT64_MAX. */
int storage_db_archive_expire(storage_db_t *db, const char *owner, int64_t before_us);
/*
 * The largest key ever appended to any archive of the store (0 if none; expiry does not
 * lower it): an appender starting up makes its keys greater, so a clock that went back
 * since the last run cannot give an archive a key out of order. The files backend keeps no
 * such mark and answers 0 (its archives are in file order, see docs/storage.md).
 */
int storage_db_archive_key_max(storage_db_t *db, int64_t *out);

/* ---- asynchronous front ---- */

/*
 * A store opened on a libuv loop. One dedicated thread executes its requests one at a time,
 * in submission order, on its own storage_db_t; results come back through uv_async_send.
 *
 * Every submitting call below copies its inputs (they are borrowed only during the call) and
 * returns 0 or an error. On error the callback never runs. On success it runs exactly once,
 * on the loop thread, never inside the submitting call; callbacks run in submission order.
 * Submission fails with -EINVAL for malformed arguments (the same checks as the synchronous
 * layer), -ENOBUFS when queue_max requests are waiting, -ECANCELED once storage_close has been
 * called. Per-request errors (-ENOENT, -ENOSPC, ...) arrive as the callback's status.
 *
 * Results handed to a callback are borrowed: valid until the callback returns, then freed by
 * the store. Copy what you keep. When status < 0 the result pointers are NULL.
 */
typedef struct storage storage_t;

typedef void (*storage_status_cb)(void *arg, int status);
/* creds_get, doc_get and svc_get: len bytes at data, followed by a NUL. */
typedef void (*storage_bytes_cb)(void *arg, int status, const char *data, size_t len);
/* roster_put and roster_delete: the new roster version. */
typedef void (*storage_version_cb)(void *arg, int status, const char *version);
typedef void (*storage_list_cb)(void *arg, int status, const storage_list_t *list);
typedef void (*storage_roster_cb)(void *arg, int status, const storage_roster_t *roster);
typedef void (*storage_item_cb)(void *arg, int status, const storage_roster_item_t *item);
typedef void (*storage_close_cb)(void *arg);
/* storage_user_load: what a session manager needs to bring a user into memory. */
typedef struct storage_user_data {
    const storage_roster_t *roster;
    const storage_list_t *doc_keys; /* the keys of the kind asked for (empty if none asked) */
    const storage_list_t *offline; /* the offline queue, oldest first (empty if not asked) */
    /*
     * The documents of each kind in content_kinds, in that order: docs[i] holds kind i's
     * keys (sorted bytewise) and, at the same index, their data.
     */
    const storage_docs_t *docs;
    size_t ndocs;
} storage_user_data_t;
typedef void (*storage_user_load_cb)(void *arg, int status, const storage_user_data_t *data);

/*
 * Opens the store (blocking: call it at startup) and starts its thread. The store holds a
 * uv_async_t on loop until it is closed.
 */
int storage_open(uv_loop_t *loop, const storage_config_t *cfg, storage_t **out);
/*
 * Stops taking requests, lets the thread finish the queued ones (their callbacks run as
 * usual), joins the thread, closes the store and its handle, frees st, then calls cb (may be
 * NULL) on the loop thread. Call once, on the loop thread; it may be called from a callback.
 */
void storage_close(storage_t *st, storage_close_cb cb, void *arg);

int storage_user_create(storage_t *st, const char *user, const char *creds, storage_status_cb cb,
                        void *arg);
int storage_user_exists(storage_t *st, const char *user, storage_status_cb cb, void *arg);
int storage_user_delete(storage_t *st, const char *user, storage_status_cb cb, void *arg);
int storage_user_list(storage_t *st, storage_list_cb cb, void *arg);
int storage_creds_get(storage_t *st, const char *user, storage_bytes_cb cb, void *arg);
int storage_creds_set(storage_t *st, const char *user, const char *creds, storage_status_cb cb,
                      void *arg);

int storage_roster_get(storage_t *st, const char *user, storage_roster_cb cb, void *arg);
int storage_roster_item_get(storage_t *st, const char *user, const char *jid, storage_item_cb cb,
                            void *arg);
int storage_roster_put(storage_t *st, const char *user, const storage_roster_item_t *item,
                       storage_version_cb cb, void *arg);
int storage_roster_delete(storage_t *st, const char *user, const char *jid, storage_version_cb cb,
                          void *arg);

int storage_offline_push(storage_t *st, const char *user, const char *data, size_t len,
                         size_t limit, storage_status_cb cb, void *arg);
int storage_offline_get(storage_t *st, const char *user, storage_list_cb cb, void *arg);
int storage_offline_delete(storage_t *st, const char *user, size_t count, storage_status_cb cb,
                           void *arg);

int storage_doc_get(storage_t *st, const char *user, const char *kind, const char *key,
                    storage_bytes_cb cb, void *arg);
int storage_doc_put(storage_t *st, const char *user, const char *kind, const char *key,
                    const char *data, size_t len, storage_status_cb cb, void *arg);
int storage_doc_delete(storage_t *st, const char *user, const char *kind, const char *key,
                       storage_status_cb cb, void *arg);
int storage_doc_list(storage_t *st, const char *user, const char *kind, storage_list_cb cb,
                     void *arg);
/*
 * The archive (see above). append copies the batch; cb gets 0 when it was written (entries
 * of missing users are skipped) or the error when nothing was. Callers batch: the sm sends
 * what was archived while its previous batch was being written as one request (group
 * commit), so a busy server writes few large transactions, not one per message.
 */
typedef void (*storage_archive_cb)(void *arg, int status, const storage_archive_result_t *res);
int storage_archive_append(storage_t *st, const storage_archive_entry_t *entries, size_t n,
                           storage_status_cb cb, void *arg);
int storage_archive_query(storage_t *st, const char *owner, const storage_archive_query_t *q,
                          storage_archive_cb cb, void *arg);
int storage_archive_expire(storage_t *st, const char *owner, int64_t before_us,
                           storage_status_cb cb, void *arg);
/* storage_db_archive_key_max as read when the store was opened (no request: loop thread). */
int64_t storage_archive_key_max(const storage_t *st);

/*
 * Writing archives by group commit (archive_writer.c), for the sm's and the muc's archives:
 * a writer makes each entry's key (the clock in microseconds, strictly increasing, above
 * storage_archive_key_max) and id, and sends waiting entries as one storage_archive_append
 * once 1024 wait or the oldest has waited 10 ms, when none of its batches is in hand (else
 * when the store answers). what names it in the log; beyond max_entries or max_bytes waiting,
 * entries are refused. Loop thread only.
 */
typedef struct storage_archive_writer storage_archive_writer_t;
storage_archive_writer_t *storage_archive_writer_new(storage_t *st, uv_loop_t *loop,
                                                     const core_log_t *log, const char *what,
                                                     size_t max_entries, size_t max_bytes);
/*
 * Queues an entry of owner's archive (everything copied) and writes its id. Returns 0,
 * -ENOBUFS when too much waits (the store is behind; logged once until writing works again)
 * or -ESHUTDOWN after storage_archive_writer_stop (or without a store).
 */
int storage_archive_writer_add(storage_archive_writer_t *w, const char *owner, const char *with,
                               const char *data, size_t len, char id[STORAGE_ARCHIVE_ID_LEN + 1]);
/* Sends what waits now: a query sent after it sees everything archived before. */
void storage_archive_writer_flush(storage_archive_writer_t *w);
/* Sends what waits and takes no more entries (the store is about to close). */
void storage_archive_writer_stop(storage_archive_writer_t *w);
/* Frees the writer once its batches are answered (what still waits is logged and lost). */
void storage_archive_writer_free(storage_archive_writer_t *w);

/*
 * Documents of a service (see "documents of a service" above). get's callback gets the bytes
 * followed by a NUL; get_all's the documents, keys sorted bytewise.
 */
typedef void (*storage_docs_cb)(void *arg, int status, const storage_docs_t *docs);
int storage_svc_put(storage_t *st, const char *service, const char *kind, const char *key,
                    const char *data, size_t len, storage_status_cb cb, void *arg);
int storage_svc_get(storage_t *st, const char *service, const char *kind, const char *key,
                    storage_bytes_cb cb, void *arg);
int storage_svc_delete(storage_t *st, const char *service, const char *kind, const char *key,
                       storage_status_cb cb, void *arg);
int storage_svc_get_all(storage_t *st, const char *service, const char *kind, storage_docs_cb cb,
                        void *arg);

/*
 * The roster, the keys of documents of doc_kind (NULL: none), every document (with its data)
 * of each kind in content_kinds (NULL-terminated; NULL: none; at most STORAGE_LOAD_KINDS_MAX)
 * and, with with_offline, the offline queue, in one request: one trip to the storage thread
 * where a login would otherwise need several. The first step that fails gives the status
 * (-ENOENT: no account).
 */
#define STORAGE_LOAD_KINDS_MAX 16
int storage_user_load(storage_t *st, const char *user, const char *doc_kind,
                      const char *const *content_kinds, bool with_offline, storage_user_load_cb cb,
                      void *arg);

#endif
