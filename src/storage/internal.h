/* SPDX-License-Identifier: MIT */
/* Declarations shared inside src/storage/: the backend vtable, validation, small helpers. */
#ifndef PARLEY_STORAGE_INTERNAL_H
#define PARLEY_STORAGE_INTERNAL_H

#include "storage/storage.h"

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a backend implements. The storage_db_* wrappers (storage.c) have already checked
 * every argument against the rules of storage.h, so a backend trusts them: names are valid
 * UTF-8 within their bounds, an item's groups are distinct and non-empty, limit >= 1.
 * Contract per operation as in storage.h. Each operation is atomic: it either happens
 * entirely or not at all, also when another handle (thread or process) works on the store.
 * Out-parameters come in zeroed; on an error the wrapper clears whatever a backend left in
 * them, so a backend may fail halfway through filling one.
 */
typedef struct storage_backend_ops {
    const char *name;
    void (*close)(storage_db_t *db);

    int (*user_create)(storage_db_t *db, const char *user, const char *creds);
    int (*user_exists)(storage_db_t *db, const char *user);
    int (*user_delete)(storage_db_t *db, const char *user);
    int (*user_list)(storage_db_t *db, storage_list_t *out);
    int (*creds_get)(storage_db_t *db, const char *user, char **out);
    int (*creds_set)(storage_db_t *db, const char *user, const char *creds);

    int (*roster_get)(storage_db_t *db, const char *user, storage_roster_t *out);
    int (*roster_item_get)(storage_db_t *db, const char *user, const char *jid,
                           storage_roster_item_t *out);
    int (*roster_put)(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                      char **version);
    int (*roster_delete)(storage_db_t *db, const char *user, const char *jid, char **version);

    int (*offline_push)(storage_db_t *db, const char *user, const char *data, size_t len,
                        size_t limit);
    int (*offline_get)(storage_db_t *db, const char *user, storage_list_t *out);
    int (*offline_delete)(storage_db_t *db, const char *user, size_t count);

    int (*doc_get)(storage_db_t *db, const char *user, const char *kind, const char *key,
                   storage_blob_t *out);
    int (*doc_put)(storage_db_t *db, const char *user, const char *kind, const char *key,
                   const char *data, size_t len);
    int (*doc_delete)(storage_db_t *db, const char *user, const char *kind, const char *key);
    int (*doc_list)(storage_db_t *db, const char *user, const char *kind, storage_list_t *out);

    /* Documents of a service; data is never NULL. get_all fills out->keys and out->values. */
    int (*svc_get)(storage_db_t *db, const char *service, const char *kind, const char *key,
                   storage_blob_t *out);
    int (*svc_put)(storage_db_t *db, const char *service, const char *kind, const char *key,
                   const char *data, size_t len);
    int (*svc_delete)(storage_db_t *db, const char *service, const char *kind, const char *key);
    int (*svc_get_all)(storage_db_t *db, const char *service, const char *kind,
                       storage_docs_t *out);

    /*
     * n >= 1 checked entries; status has n slots, all 0 on entry: the backend sets those of
     * entries it skips (-ENOENT, -EEXIST). On an error return the wrapper overwrites them all.
     * sqlite writes the batch in one transaction; files appends user by user, so there a
     * user's failure is in its entries' statuses and the call fails only if nothing was
     * written.
     */
    int (*archive_append)(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                          int *status);
    /* q checked; q->ids is used only when q->nids > 0. */
    int (*archive_query)(storage_db_t *db, const char *owner, const storage_archive_query_t *q,
                         storage_archive_result_t *out);
    int (*archive_expire)(storage_db_t *db, const char *owner, int64_t before_us);
    /* NULL: the backend keeps no mark (storage_db_archive_key_max answers 0). */
    int (*archive_key_max)(storage_db_t *db, int64_t *out);
} storage_backend_ops_t;

/* The head of every backend's handle (backends embed it as their first member). */
struct storage_db {
    const storage_backend_ops_t *ops;
    storage_sync_t sync;
};

/* Default for storage_config_t.busy_timeout_ms. */
#define STORAGE_BUSY_TIMEOUT_DEFAULT 5000u
/* Default for storage_config_t.queue_max. */
#define STORAGE_QUEUE_DEFAULT 65536u

/* The backends' constructors (cfg already checked: path not NULL). */
int storage_sqlite_open(const storage_config_t *cfg, storage_db_t **out);
int storage_files_open(const storage_config_t *cfg, storage_db_t **out);

/* The schema version the current code writes (the number of sqlite migrations). */
int storage_sqlite_schema_current(void);
/*
 * Opens a database but migrates it only up to version max_version (for the migration test:
 * it builds a database as an older Parley left it).
 */
int storage_sqlite_open_at(const storage_config_t *cfg, int max_version, storage_db_t **out);

/* ---- argument checks shared by both layers (storage.c) ---- */

bool storage_utf8_valid(const char *s, size_t len);
int storage_check_user(const char *user);
int storage_check_jid(const char *jid);
int storage_check_kind(const char *kind);
int storage_check_key(const char *key);
int storage_check_creds(const char *creds);
int storage_check_value(const char *data, size_t len);
int storage_check_service(const char *service);
/* A service, kind and key (key NULL: not checked) and a document of at most the svc limit. */
int storage_check_svc_doc(const char *service, const char *kind, const char *key);
int storage_check_svc_value(const char *data, size_t len);
int storage_check_item(const storage_roster_item_t *item);
int storage_check_archive_id(const char *id);
int storage_check_archive_owner(const char *owner);
int storage_check_archive_entry(const storage_archive_entry_t *e);
int storage_check_archive_query(const storage_archive_query_t *q);

/* ---- helpers for the backends ---- */

/* Microseconds since the epoch: the first roster version of a new account (docs/storage.md). */
uint64_t storage_now_us(void);
/* A new NUL-terminated decimal string. */
char *storage_u64_str(uint64_t v);
/* Appends a copy of data[0..len) to l. */
void storage_list_push(storage_list_t *l, const char *data, size_t len);
/* Sorts the blobs bytewise (shorter first on a common prefix). */
void storage_list_sort(storage_list_t *l);
/* Sorts roster items by JID, bytewise. */
void storage_roster_sort(storage_roster_t *r);
/*
 * The length of the bare part of a JID (up to its first '/', RFC 7622 §3.1: a localpart and
 * a domainpart never hold one), which is what a bare 'with' filter compares.
 */
size_t storage_jid_bare_len(const char *jid);
/* Whether an archive entry with the other party with matches the filter q->with (not NULL). */
bool storage_archive_with_match(const char *filter, const char *with, size_t with_len);
/* Overwrites and frees a secret string (credentials); NULL is fine. */
void storage_secret_free(char *s);

/* ---- the files backend's text formats (files_format.c; docs/storage.md) ---- */

/* The longest file name we create (NAME_MAX on Linux and the BSDs). */
#define STORAGE_FILES_NAME_MAX 255
/* Files bigger than this are refused (-EFBIG) rather than read into memory. */
#define STORAGE_FILES_SIZE_MAX (256u * 1024u * 1024u)

/*
 * Encodes a name (a user, a document key) as one safe file name: bytes outside [a-z0-9._-],
 * and a leading '.', become %XX (uppercase hex). Returns 0, -EINVAL for an empty name, or
 * -ENAMETOOLONG when the result would exceed STORAGE_FILES_NAME_MAX.
 */
int storage_files_name_encode(const char *s, char out[STORAGE_FILES_NAME_MAX + 1]);
/* The inverse, into a new string; -EINVAL unless enc is exactly what encode would produce. */
int storage_files_name_decode(const char *enc, char **out);

/*
 * Appends s[0..len) escaped for a tab-separated line: backslash, newline, tab and CR become
 * \\ \n \t \r, other control bytes \xHH; every other byte (UTF-8 included) stays as it is.
 */
void storage_files_escape(core_buf_t *b, const char *s, size_t len);
/* The inverse into a new NUL-terminated string; -EBADMSG on a bad escape or a raw tab. */
int storage_files_unescape(const char *s, size_t len, char **out, size_t *out_len);

/* Reads a text file line by line; lineno counts the lines consumed. */
typedef struct storage_text_reader {
    const char *p;
    const char *end;
    unsigned lineno;
} storage_text_reader_t;

/* The next line that is neither blank nor a '#' comment, without its newline (or CR LF). */
bool storage_text_next_line(storage_text_reader_t *r, const char **line, size_t *len);
/* Splits a line at tabs: call with *cur at the line's start until it returns false. */
bool storage_text_next_field(const char **cur, const char *end, const char **field, size_t *len);
/* Consumes the header line "parley <kind> 1": 0, -EBADMSG, or -EPROTONOSUPPORT (newer). */
int storage_text_header(storage_text_reader_t *r, const char *kind);
/* A decimal number with no sign or spaces. */
bool storage_text_u64(const char *s, size_t len, uint64_t *out);

/* ---- the files backend's shared parts (backend_files.c; files_archive.c) ---- */

/* What a handle remembers of the ids in each archive (files_archive.c). */
typedef struct storage_files_ids storage_files_ids_t;

typedef struct storage_files_db {
    storage_db_t base; /* first: the handle storage.c sees */
    int root; /* the root directory */
    unsigned deleted; /* numbers the trash names this handle makes */
    storage_files_ids_t *ids; /* NULL until the first append */
} storage_files_db_t;

/* An open user directory, locked or not. */
typedef struct storage_files_user {
    int dir;
    int lock; /* -1 when not locked */
    char enc[STORAGE_FILES_NAME_MAX + 1];
} storage_files_user_t;

/* The temporary file a writer builds before renaming it over the real one. */
#define STORAGE_FILES_TMP ".tmp"

/* fsync(fd) when the store syncs (sync = full). */
int storage_files_sync(const storage_files_db_t *f, int fd);
int storage_files_write_all(int fd, const char *p, size_t len);
/*
 * Replacing a file whole, under the user's lock: tmp_open creates dir/STORAGE_FILES_TMP and
 * returns its descriptor (or an error); tmp_commit takes it, and when rc is 0 syncs it,
 * renames it to name and syncs dir; otherwise (or when that fails) removes it. Returns rc or
 * the first error. replace does both around one buffer.
 */
int storage_files_tmp_open(int dir);
int storage_files_tmp_commit(const storage_files_db_t *f, int dir, int fd, const char *name,
                             int rc);
int storage_files_replace(const storage_files_db_t *f, int dir, const char *name, const char *data,
                          size_t len);
/* Removes dir/name; 0 if it was not there. */
int storage_files_remove(const storage_files_db_t *f, int dir, const char *name);
/*
 * Opens the user's directory. With lock, takes the user's lock and makes sure the directory
 * is still current. With must_exist, fails with -ENOENT unless the account exists. Close it
 * with storage_files_user_close (also after a failed open).
 */
int storage_files_user_open(storage_files_db_t *f, const char *user, bool lock, bool must_exist,
                            storage_files_user_t *u);
void storage_files_user_close(storage_files_user_t *u);

/* Reads a regular file into a new NUL-terminated buffer. -ENOENT when absent. */
int storage_files_read(int dir, const char *name, char **data, size_t *len);
/*
 * Appends to out the decoded names in dir/name that pass keep() (which may be NULL), then
 * sorts out. Names starting with '.' and names that are not canonical encodings are skipped.
 */
int storage_files_list_dir(int dir, const char *name, int (*keep)(int dir, const char *enc),
                           storage_list_t *out);

/* Documents of services (files_service.c). */
int storage_files_svc_get(storage_db_t *db, const char *service, const char *kind, const char *key,
                          storage_blob_t *out);
int storage_files_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                          const char *data, size_t len);
int storage_files_svc_delete(storage_db_t *db, const char *service, const char *kind,
                             const char *key);
int storage_files_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                              storage_docs_t *out);

/* The archive operations (files_archive.c). */
int storage_files_archive_append(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                                 int *status);
int storage_files_archive_query(storage_db_t *db, const char *user,
                                const storage_archive_query_t *q, storage_archive_result_t *out);
int storage_files_archive_expire(storage_db_t *db, const char *user, int64_t before_us);
/* Drops what the handle remembers of the archive of the user named enc (encoded). */
void storage_files_archive_forget(storage_files_db_t *f, const char *enc);
/* Frees all of it (when the handle closes). */
void storage_files_archive_close(storage_files_db_t *f);

#endif
