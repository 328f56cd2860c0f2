/* SPDX-License-Identifier: MIT */
/* The files backend's documents of services: <path>/.services/<service>/<kind>/<key>. */
#include "storage/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/*
 * Layout (docs/storage.md): one file per document, its bytes as they are, in a folder per
 * service and kind. The top folder starts with '.', which no encoded user name does (a
 * leading '.' is written %2E), so it can never be taken for an account, and listing the
 * users skips it. Service names and keys are encoded like user names; kinds are already
 * [a-z0-9_-]. Inside a kind's folder, '.lock' (taken by writers) and the temporary file
 * start with '.' too, so no key's file can be either.
 *
 * The folders are created on the first write and never removed, so the lock file a writer
 * takes always belongs to the live folder (the user folders need a check for this because
 * deleting an account renames its folder away). A write replaces its document's file whole
 * (temporary file, sync, rename, folder sync), so readers take no lock and see the old or
 * the new document.
 */

#define SERVICES_DIR ".services"
#define KIND_LOCK ".lock"

/*
 * Opens <root>/.services/<service>/<kind>. With create, makes whatever is missing, syncing
 * each parent so that a document synced later is not in a folder a power cut forgets.
 * -ENOENT when a part is missing and create is not set.
 */
static int kind_dir_open(const storage_files_db_t *f, const char *service, const char *kind,
                         bool create, int *out)
{
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int rc = storage_files_name_encode(service, enc);
    if (rc < 0)
        return rc;
    const char *parts[] = {SERVICES_DIR, enc, kind};
    int dir = f->root;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (create) {
            if (mkdirat(dir, parts[i], 0700) == 0)
                rc = storage_files_sync(f, dir);
            else if (errno != EEXIST)
                rc = -errno;
        }
        int next = -1;
        if (rc == 0) {
            next = openat(dir, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (next < 0)
                rc = errno == ENOTDIR ? -ENOENT : -errno;
        }
        if (dir != f->root)
            close(dir);
        if (rc < 0)
            return rc;
        dir = next;
    }
    *out = dir;
    return 0;
}

/* Takes the kind's writer lock: *lock gets the descriptor (closing it releases the lock). */
static int kind_lock(int kd, int *lock)
{
    int rc;
    *lock = openat(kd, KIND_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*lock < 0)
        return -errno;
    while ((rc = flock(*lock, LOCK_EX)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = -errno;
        close(*lock);
        *lock = -1;
    }
    return rc;
}

int storage_files_svc_get(storage_db_t *db, const char *service, const char *kind, const char *key,
                          storage_blob_t *out)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = kind_dir_open(f, service, kind, false, &kd);
    if (rc == 0)
        rc = storage_files_read(kd, enc, &out->data, &out->len);
    if (kd >= 0)
        close(kd);
    return rc;
}

int storage_files_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                          const char *data, size_t len)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1, lock = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = kind_dir_open(f, service, kind, true, &kd);
    /* The lock keeps two writers from sharing the one temporary file. */
    if (rc == 0)
        rc = kind_lock(kd, &lock);
    if (rc == 0)
        rc = storage_files_replace(f, kd, enc, data, len);
    if (lock >= 0)
        close(lock);
    if (kd >= 0)
        close(kd);
    return rc;
}

int storage_files_svc_delete(storage_db_t *db, const char *service, const char *kind,
                             const char *key)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1, lock = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = kind_dir_open(f, service, kind, false, &kd);
    if (rc == 0)
        rc = kind_lock(kd, &lock);
    if (rc == 0 && unlinkat(kd, enc, 0) < 0)
        rc = -errno;
    else if (rc == 0)
        rc = storage_files_sync(f, kd);
    if (lock >= 0)
        close(lock);
    if (kd >= 0)
        close(kd);
    return rc;
}

int storage_files_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                              storage_docs_t *out)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    storage_list_t keys = {0};
    int kd = -1;
    int rc = kind_dir_open(f, service, kind, false, &kd);
    if (rc == -ENOENT)
        return 0; /* nothing of this kind written yet */
    if (rc == 0)
        rc = storage_files_list_dir(kd, ".", NULL, &keys);
    for (size_t i = 0; rc == 0 && i < keys.count; i++) {
        char enc[STORAGE_FILES_NAME_MAX + 1];
        storage_blob_t b = {0};
        /* Listed names are canonical encodings, so they encode back to themselves. */
        rc = storage_files_name_encode(keys.items[i].data, enc);
        if (rc == 0)
            rc = storage_files_read(kd, enc, &b.data, &b.len);
        if (rc == -ENOENT) {
            rc = 0; /* removed since the listing: left out, as if listed a moment later */
            continue;
        }
        if (rc == 0) {
            storage_list_push(&out->keys, keys.items[i].data, keys.items[i].len);
            storage_list_push(&out->values, b.data, b.len);
        }
        storage_blob_clear(&b);
    }
    storage_list_clear(&keys);
    if (kd >= 0)
        close(kd);
    return rc;
}
