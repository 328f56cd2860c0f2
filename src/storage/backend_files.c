/* SPDX-License-Identifier: MIT */
/* The files backend: a directory per user holding plain text files (docs/storage.md). */
#include "storage/internal.h"

#include "core/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Consistency rules, which every function below keeps:
 *  - A user exists iff <root>/<enc>/account exists. The account file is written last when a
 *    user is created, and the whole directory is renamed away (atomically) to delete one.
 *  - Every file is replaced whole: written to a temporary file, synced, renamed over the old
 *    one, and the directory synced. A reader sees the old or the new file, never a mix, so
 *    readers take no lock. The one exception, the archive, only grows by whole lines, and its
 *    readers ignore an unfinished last line (files_archive.c).
 *  - Writers hold an exclusive flock on <root>/<enc>/lock for the whole read-modify-write.
 *    The lock file is never replaced, so every handle (thread or process) locks the same
 *    inode. After taking it a writer checks that the directory it locked is still the one at
 *    <root>/<enc> (a delete may have renamed it away meanwhile).
 */

#define TRASH_PREFIX ".deleted-"
/* Deep enough for <user>/docs/<kind>/<key>; deeper trees are not ours to remove. */
#define TREE_DEPTH 4
/* Retries when a concurrent create or delete moves a directory under us. */
#define RACE_RETRIES 16

static storage_files_db_t *from_db(storage_db_t *db)
{
    return (storage_files_db_t *)db;
}

int storage_files_sync(const storage_files_db_t *f, int fd)
{
    if (f->base.sync == STORAGE_SYNC_FULL && fsync(fd) < 0)
        return -errno;
    return 0;
}

/* ---- whole files ---- */

/* See internal.h. */
int storage_files_read(int dir, const char *name, char **data, size_t *len)
{
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    struct stat st;
    char *buf = NULL;
    int rc = 0;
    if (fstat(fd, &st) < 0) {
        rc = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = -EBADMSG;
        goto out;
    }
    if ((uint64_t)st.st_size > STORAGE_FILES_SIZE_MAX) {
        rc = -EFBIG;
        goto out;
    }
    /* The file is never modified in place, so its size is its size; read to EOF anyway. */
    size_t cap = (size_t)st.st_size + 1, n = 0;
    buf = core_malloc(cap);
    for (;;) {
        if (n + 1 == cap) {
            if (cap > STORAGE_FILES_SIZE_MAX) {
                rc = -EFBIG;
                goto out;
            }
            cap *= 2;
            buf = core_realloc(buf, cap);
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = -errno;
            goto out;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    buf = NULL;
out:
    core_free(buf);
    close(fd);
    return rc;
}

int storage_files_write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int storage_files_tmp_open(int dir)
{
    int fd =
        openat(dir, STORAGE_FILES_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    return fd < 0 ? -errno : fd;
}

int storage_files_tmp_commit(const storage_files_db_t *f, int dir, int fd, const char *name, int rc)
{
    if (rc == 0)
        rc = storage_files_sync(f, fd);
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && renameat(dir, STORAGE_FILES_TMP, dir, name) < 0)
        rc = -errno;
    if (rc < 0) {
        unlinkat(dir, STORAGE_FILES_TMP, 0);
        return rc;
    }
    return storage_files_sync(f, dir);
}

int storage_files_replace(const storage_files_db_t *f, int dir, const char *name, const char *data,
                          size_t len)
{
    int fd = storage_files_tmp_open(dir);
    if (fd < 0)
        return fd;
    return storage_files_tmp_commit(f, dir, fd, name, storage_files_write_all(fd, data, len));
}

/* Removes dir/name; 0 if it was not there. */
int storage_files_remove(const storage_files_db_t *f, int dir, const char *name)
{
    if (unlinkat(dir, name, 0) < 0)
        return errno == ENOENT ? 0 : -errno;
    return storage_files_sync(f, dir);
}

/* Removes parent/name and everything under it, never following symbolic links. */
static int remove_tree(int parent, const char *name, int depth)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno != ENOTDIR && errno != ELOOP)
            return -errno;
        return unlinkat(parent, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (S_ISDIR(st.st_mode) && depth > 0)
            remove_tree(fd, e->d_name, depth - 1);
        else
            unlinkat(fd, e->d_name, 0);
    }
    closedir(d);
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return -errno;
    return 0;
}

/* ---- user directories and the lock ---- */

void storage_files_user_close(storage_files_user_t *u)
{
    if (u->lock >= 0)
        close(u->lock); /* releases the flock */
    if (u->dir >= 0)
        close(u->dir);
    u->lock = -1;
    u->dir = -1;
}

static int account_present(int dir)
{
    struct stat st;
    if (fstatat(dir, "account", &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    return S_ISREG(st.st_mode) ? 0 : -ENOENT;
}

/* Whether dir is still the directory named enc under root. */
static bool still_there(const storage_files_db_t *f, const storage_files_user_t *u)
{
    struct stat a, b;
    if (fstatat(f->root, u->enc, &a, AT_SYMLINK_NOFOLLOW) < 0 || fstat(u->dir, &b) < 0)
        return false;
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Opens the user's directory. With lock, takes the user's lock and makes sure the directory
 * is still current. With must_exist, fails with -ENOENT unless the account exists.
 */
int storage_files_user_open(storage_files_db_t *f, const char *user, bool lock, bool must_exist,
                            storage_files_user_t *u)
{
    u->dir = -1;
    u->lock = -1;
    int rc = storage_files_name_encode(user, u->enc);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < RACE_RETRIES; attempt++) {
        u->dir = openat(f->root, u->enc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (u->dir < 0)
            return errno == ENOTDIR || errno == ELOOP ? -ENOENT : -errno;
        if (lock) {
            u->lock = openat(u->dir, "lock", O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
            if (u->lock < 0) {
                rc = -errno;
                goto fail;
            }
            while ((rc = flock(u->lock, LOCK_EX)) < 0 && errno == EINTR)
                ;
            if (rc < 0) {
                rc = -errno;
                goto fail;
            }
            if (!still_there(f, u)) {
                /* Deleted (and maybe created again) while we waited: look again. */
                storage_files_user_close(u);
                continue;
            }
        }
        if (must_exist && (rc = account_present(u->dir)) < 0)
            goto fail;
        return 0;
    }
    return -EAGAIN;
fail:
    storage_files_user_close(u);
    return rc;
}

/* ---- the account file ---- */

typedef struct account {
    uint64_t created; /* the roster version while there is no roster file */
    char *creds;
} account_t;

static void account_clear(account_t *a)
{
    storage_secret_free(a->creds);
    a->creds = NULL;
}

static int account_parse(const char *data, size_t len, account_t *a)
{
    storage_text_reader_t r = {.p = data, .end = data + len};
    const char *line, *field;
    size_t llen, flen;
    bool have_created = false;
    int rc = storage_text_header(&r, "account");
    if (rc < 0)
        return rc;
    while (storage_text_next_line(&r, &line, &llen)) {
        const char *cur = line, *end = line + llen;
        storage_text_next_field(&cur, end, &field, &flen);
        const char *val;
        size_t vlen;
        if (!storage_text_next_field(&cur, end, &val, &vlen) || cur != NULL)
            return -EBADMSG;
        if (flen == 7 && memcmp(field, "created", 7) == 0) {
            if (have_created || !storage_text_u64(val, vlen, &a->created))
                return -EBADMSG;
            have_created = true;
        } else if (flen == 11 && memcmp(field, "credentials", 11) == 0) {
            if (a->creds != NULL || storage_files_unescape(val, vlen, &a->creds, NULL) < 0)
                return -EBADMSG;
        } else {
            return -EBADMSG;
        }
    }
    return have_created && a->creds != NULL ? 0 : -EBADMSG;
}

static int account_read(int dir, account_t *a)
{
    char *data = NULL;
    size_t len = 0;
    int rc = storage_files_read(dir, "account", &data, &len);
    if (rc < 0)
        return rc;
    rc = account_parse(data, len, a);
    OPENSSL_cleanse(data, len);
    core_free(data);
    if (rc < 0)
        account_clear(a);
    return rc;
}

static int account_write(const storage_files_db_t *f, int dir, uint64_t created, const char *creds)
{
    core_buf_t b = {0};
    char num[32];
    core_buf_append_str(&b, "parley account 1\ncreated\t");
    snprintf(num, sizeof(num), "%llu\n", (unsigned long long)created);
    core_buf_append_str(&b, num);
    core_buf_append_str(&b, "credentials\t");
    storage_files_escape(&b, creds, strlen(creds));
    core_buf_append(&b, "\n", 1);
    int rc = storage_files_replace(f, dir, "account", b.data, b.len);
    OPENSSL_cleanse(b.data, b.len);
    core_buf_release(&b);
    return rc;
}

/* ---- accounts ---- */

static int fi_user_create(storage_db_t *db, const char *user, const char *creds)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int rc = storage_files_name_encode(user, enc);
    if (rc < 0)
        return rc;
    for (int attempt = 0; attempt < RACE_RETRIES; attempt++) {
        if (mkdirat(f->root, enc, 0700) == 0) {
            rc = storage_files_sync(f, f->root);
            if (rc < 0)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
        rc = storage_files_user_open(f, user, true, false, &u);
        if (rc == -ENOENT)
            continue; /* a delete renamed it between our mkdir and open */
        if (rc < 0)
            return rc;
        rc = account_present(u.dir);
        if (rc == 0) {
            rc = -EEXIST;
        } else if (rc == -ENOENT) {
            /* Leftovers of an interrupted create or of hand editing: start clean. */
            rc = storage_files_remove(f, u.dir, "roster");
            if (rc == 0)
                rc = storage_files_remove(f, u.dir, "offline");
            if (rc == 0)
                rc = storage_files_remove(f, u.dir, "archive");
            if (rc == 0)
                rc = remove_tree(u.dir, "docs", TREE_DEPTH);
            if (rc == 0)
                rc = account_write(f, u.dir, storage_now_us(), creds);
        }
        storage_files_user_close(&u);
        return rc;
    }
    return -EAGAIN;
}

static int fi_user_exists(storage_db_t *db, const char *user)
{
    storage_files_user_t u;
    int rc = storage_files_user_open(from_db(db), user, false, true, &u);
    storage_files_user_close(&u);
    return rc;
}

static int fi_user_delete(storage_db_t *db, const char *user)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char trash[64];
    int rc = storage_files_user_open(f, user, true, true, &u);
    if (rc < 0)
        return rc;
    /* One rename makes the user and all its data vanish at once; the removal of the files
     * that follows is invisible (and redone at the next open if we crash). */
    snprintf(trash, sizeof(trash), TRASH_PREFIX "%ld-%u-%llu", (long)getpid(), f->deleted++,
             (unsigned long long)storage_now_us());
    if (renameat(f->root, u.enc, f->root, trash) < 0)
        rc = -errno;
    else
        rc = storage_files_sync(f, f->root);
    storage_files_archive_forget(f, u.enc);
    storage_files_user_close(&u);
    if (rc == 0)
        remove_tree(f->root, trash, TREE_DEPTH);
    return rc;
}

/* See internal.h. */
int storage_files_list_dir(int dir, const char *name, int (*keep)(int dir, const char *enc),
                           storage_list_t *out)
{
    int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *dec;
        /* Our own files start with '.'; names that are not canonical encodings are not ours. */
        if (e->d_name[0] == '.' || storage_files_name_decode(e->d_name, &dec) < 0)
            continue;
        if (keep == NULL || keep(fd, e->d_name) == 0)
            storage_list_push(out, dec, strlen(dec));
        core_free(dec);
    }
    closedir(d);
    storage_list_sort(out);
    return 0;
}

static int is_user_dir(int root, const char *enc)
{
    int dir = openat(root, enc, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return -ENOENT;
    int rc = account_present(dir);
    close(dir);
    return rc;
}

static int fi_user_list(storage_db_t *db, storage_list_t *out)
{
    return storage_files_list_dir(from_db(db)->root, ".", is_user_dir, out);
}

static int fi_creds_get(storage_db_t *db, const char *user, char **out)
{
    storage_files_user_t u;
    account_t a = {0};
    int rc = storage_files_user_open(from_db(db), user, false, true, &u);
    if (rc == 0)
        rc = account_read(u.dir, &a);
    storage_files_user_close(&u);
    if (rc == 0)
        *out = a.creds;
    return rc;
}

static int fi_creds_set(storage_db_t *db, const char *user, const char *creds)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    account_t a = {0};
    int rc = storage_files_user_open(f, user, true, true, &u);
    if (rc == 0)
        rc = account_read(u.dir, &a);
    if (rc == 0)
        rc = account_write(f, u.dir, a.created, creds);
    account_clear(&a);
    storage_files_user_close(&u);
    return rc;
}

/* ---- the roster file ---- */

/* Parses "key=value" fields after the JID of an item line. */
static int item_field(storage_roster_item_t *it, const char *f, size_t len)
{
    const char *eq = memchr(f, '=', len);
    if (eq == NULL)
        return -EBADMSG;
    size_t klen = (size_t)(eq - f), vlen = len - klen - 1;
    const char *v = eq + 1;
    if (klen == 12 && memcmp(f, "subscription", 12) == 0)
        return storage_sub_parse(v, vlen, &it->subscription) < 0 ? -EBADMSG : 0;
    if (klen == 3 && memcmp(f, "ask", 3) == 0) {
        if (vlen == 4 && memcmp(v, "none", 4) == 0)
            it->ask = STORAGE_ASK_NONE;
        else if (vlen == 9 && memcmp(v, "subscribe", 9) == 0)
            it->ask = STORAGE_ASK_SUBSCRIBE;
        else
            return -EBADMSG;
        return 0;
    }
    if (klen == 8 && memcmp(f, "approved", 8) == 0) {
        if (vlen == 3 && memcmp(v, "yes", 3) == 0)
            it->approved = true;
        else if (vlen == 2 && memcmp(v, "no", 2) == 0)
            it->approved = false;
        else
            return -EBADMSG;
        return 0;
    }
    if (klen == 4 && memcmp(f, "name", 4) == 0) {
        if (it->name != NULL)
            return -EBADMSG;
        return storage_files_unescape(v, vlen, &it->name, NULL);
    }
    if (klen == 5 && memcmp(f, "group", 5) == 0) {
        if (it->group_count == STORAGE_GROUPS_MAX)
            return -EBADMSG;
        it->groups = core_realloc(it->groups, (it->group_count + 1) * sizeof(char *));
        return storage_files_unescape(v, vlen, &it->groups[it->group_count++], NULL);
    }
    return -EBADMSG;
}

/* Parses one "item" line's fields (cur is after "item\t") into a new item of r. */
static int item_parse(storage_roster_t *r, size_t *cap, const char *cur, const char *end)
{
    const char *f;
    size_t flen;
    if (r->count == *cap) {
        *cap = *cap == 0 ? 8 : 2 * *cap;
        r->items = core_realloc(r->items, *cap * sizeof(*r->items));
    }
    storage_roster_item_t *it = &r->items[r->count++];
    memset(it, 0, sizeof(*it));
    if (!storage_text_next_field(&cur, end, &f, &flen) ||
        storage_files_unescape(f, flen, &it->jid, NULL) < 0)
        return -EBADMSG;
    while (storage_text_next_field(&cur, end, &f, &flen))
        if (item_field(it, f, flen) < 0)
            return -EBADMSG;
    /* A hand-edited file must still hold what the API would accept. */
    return storage_check_item(it) < 0 ? -EBADMSG : 0;
}

static int roster_parse(const char *data, size_t len, storage_roster_t *r, uint64_t *version)
{
    storage_text_reader_t rd = {.p = data, .end = data + len};
    const char *line, *f;
    size_t llen, flen, cap = 0;
    bool have_version = false;
    int rc = storage_text_header(&rd, "roster");
    if (rc < 0)
        return rc;
    while (storage_text_next_line(&rd, &line, &llen)) {
        const char *cur = line, *end = line + llen;
        storage_text_next_field(&cur, end, &f, &flen);
        if (flen == 4 && memcmp(f, "item", 4) == 0 && cur != NULL) {
            rc = item_parse(r, &cap, cur, end);
            if (rc < 0)
                return rc;
        } else if (flen == 7 && memcmp(f, "version", 7) == 0 && cur != NULL && !have_version) {
            if (!storage_text_next_field(&cur, end, &f, &flen) || cur != NULL ||
                !storage_text_u64(f, flen, version))
                return -EBADMSG;
            have_version = true;
        } else {
            return -EBADMSG;
        }
    }
    if (!have_version)
        return -EBADMSG;
    storage_roster_sort(r);
    for (size_t i = 1; i < r->count; i++)
        if (strcmp(r->items[i - 1].jid, r->items[i].jid) == 0)
            return -EBADMSG;
    return 0;
}

static void roster_serialise(core_buf_t *b, const storage_roster_t *r, uint64_t version)
{
    char num[32];
    core_buf_append_str(b,
                        "parley roster 1\n"
                        "# item<TAB>jid<TAB>key=value... (docs/storage.md)\n"
                        "version\t");
    snprintf(num, sizeof(num), "%llu\n", (unsigned long long)version);
    core_buf_append_str(b, num);
    for (size_t i = 0; i < r->count; i++) {
        const storage_roster_item_t *it = &r->items[i];
        core_buf_append_str(b, "item\t");
        storage_files_escape(b, it->jid, strlen(it->jid));
        core_buf_append_str(b, "\tsubscription=");
        core_buf_append_str(b, storage_sub_name(it->subscription));
        core_buf_append_str(b, it->ask == STORAGE_ASK_SUBSCRIBE ? "\task=subscribe" : "\task=none");
        core_buf_append_str(b, it->approved ? "\tapproved=yes" : "\tapproved=no");
        if (it->name != NULL) {
            core_buf_append_str(b, "\tname=");
            storage_files_escape(b, it->name, strlen(it->name));
        }
        for (size_t g = 0; g < it->group_count; g++) {
            core_buf_append_str(b, "\tgroup=");
            storage_files_escape(b, it->groups[g], strlen(it->groups[g]));
        }
        core_buf_append(b, "\n", 1);
    }
}

/* Loads the roster of an existing user; with no roster file it is empty at the account's
 * creation version. */
static int roster_load(int dir, storage_roster_t *r, uint64_t *version)
{
    char *data = NULL;
    size_t len = 0;
    int rc = storage_files_read(dir, "roster", &data, &len);
    if (rc == -ENOENT) {
        account_t a = {0};
        rc = account_read(dir, &a);
        *version = a.created;
        account_clear(&a);
        return rc;
    }
    if (rc < 0)
        return rc;
    rc = roster_parse(data, len, r, version);
    core_free(data);
    return rc;
}

static int roster_store(const storage_files_db_t *f, int dir, const storage_roster_t *r,
                        uint64_t version)
{
    core_buf_t b = {0};
    roster_serialise(&b, r, version);
    int rc = storage_files_replace(f, dir, "roster", b.data, b.len);
    core_buf_release(&b);
    return rc;
}

/* ---- roster ---- */

static int fi_roster_get(storage_db_t *db, const char *user, storage_roster_t *out)
{
    storage_files_user_t u;
    uint64_t version = 0;
    int rc = storage_files_user_open(from_db(db), user, false, true, &u);
    if (rc == 0)
        rc = roster_load(u.dir, out, &version);
    if (rc == 0)
        out->version = storage_u64_str(version);
    storage_files_user_close(&u);
    return rc;
}

static int fi_roster_item_get(storage_db_t *db, const char *user, const char *jid,
                              storage_roster_item_t *out)
{
    storage_roster_t r = {0};
    int rc = fi_roster_get(db, user, &r);
    if (rc < 0)
        goto out;
    rc = -ENOENT;
    for (size_t i = 0; i < r.count; i++) {
        if (strcmp(r.items[i].jid, jid) == 0) {
            /* Move the item out of the roster instead of copying it. */
            *out = r.items[i];
            r.items[i] = r.items[--r.count];
            rc = 0;
            break;
        }
    }
out:
    storage_roster_clear(&r);
    return rc;
}

/* Replaces (item != NULL) or removes the item jid, under the lock, and bumps the version. */
static int roster_change(storage_db_t *db, const char *user, const char *jid,
                         const storage_roster_item_t *item, char **version)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    storage_roster_t r = {0};
    uint64_t v = 0;
    int rc = storage_files_user_open(f, user, true, true, &u);
    if (rc == 0)
        rc = roster_load(u.dir, &r, &v);
    if (rc < 0)
        goto out;
    size_t i = 0;
    while (i < r.count && strcmp(r.items[i].jid, jid) != 0)
        i++;
    if (item == NULL && i == r.count) {
        rc = -ENOENT;
        goto out;
    }
    if (i < r.count)
        storage_roster_item_clear(&r.items[i]);
    if (item == NULL) {
        r.items[i] = r.items[--r.count];
    } else {
        if (i == r.count)
            r.items = core_realloc(r.items, ++r.count * sizeof(*r.items));
        storage_roster_item_copy(&r.items[i], item);
    }
    storage_roster_sort(&r);
    rc = roster_store(f, u.dir, &r, v + 1);
    if (rc == 0)
        *version = storage_u64_str(v + 1);
out:
    storage_roster_clear(&r);
    storage_files_user_close(&u);
    return rc;
}

static int fi_roster_put(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                         char **version)
{
    return roster_change(db, user, item->jid, item, version);
}

static int fi_roster_delete(storage_db_t *db, const char *user, const char *jid, char **version)
{
    return roster_change(db, user, jid, NULL, version);
}

/* ---- offline messages ---- */

#define OFFLINE_HEADER "parley offline 1\n# message<TAB>escaped stanza, oldest first\n"

/* Parses the queue into out (or, when out is NULL, only checks and counts it). */
static int offline_parse(const char *data, size_t len, storage_list_t *out, size_t *count)
{
    storage_text_reader_t rd = {.p = data, .end = data + len};
    const char *line, *f, *v;
    size_t llen, flen, vlen;
    int rc = storage_text_header(&rd, "offline");
    if (rc < 0)
        return rc;
    *count = 0;
    while (storage_text_next_line(&rd, &line, &llen)) {
        const char *cur = line, *end = line + llen;
        storage_text_next_field(&cur, end, &f, &flen);
        if (flen != 7 || memcmp(f, "message", 7) != 0 ||
            !storage_text_next_field(&cur, end, &v, &vlen) || cur != NULL)
            return -EBADMSG;
        char *msg;
        size_t mlen;
        if (storage_files_unescape(v, vlen, &msg, &mlen) < 0)
            return -EBADMSG;
        if (out != NULL)
            storage_list_push(out, msg, mlen);
        core_free(msg);
        (*count)++;
    }
    return 0;
}

static int fi_offline_push(storage_db_t *db, const char *user, const char *data, size_t len,
                           size_t limit)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char *old = NULL;
    size_t old_len = 0, count = 0;
    core_buf_t b = {0};
    int rc = storage_files_user_open(f, user, true, true, &u);
    if (rc < 0)
        return rc;
    rc = storage_files_read(u.dir, "offline", &old, &old_len);
    if (rc == 0) {
        rc = offline_parse(old, old_len, NULL, &count);
        if (rc < 0)
            goto out;
        if (count >= limit) {
            rc = -ENOSPC;
            goto out;
        }
        /* Keep the file as it is (comments included) and append one record. */
        core_buf_append(&b, old, old_len);
        if (old_len > 0 && old[old_len - 1] != '\n')
            core_buf_append(&b, "\n", 1);
    } else if (rc == -ENOENT) {
        core_buf_append_str(&b, OFFLINE_HEADER);
    } else {
        goto out;
    }
    core_buf_append_str(&b, "message\t");
    storage_files_escape(&b, data, len);
    core_buf_append(&b, "\n", 1);
    rc = storage_files_replace(f, u.dir, "offline", b.data, b.len);
out:
    core_buf_release(&b);
    core_free(old);
    storage_files_user_close(&u);
    return rc;
}

static int fi_offline_get(storage_db_t *db, const char *user, storage_list_t *out)
{
    storage_files_user_t u;
    char *data = NULL;
    size_t len = 0, count;
    int rc = storage_files_user_open(from_db(db), user, false, true, &u);
    if (rc == 0)
        rc = storage_files_read(u.dir, "offline", &data, &len);
    if (rc == 0)
        rc = offline_parse(data, len, out, &count);
    else if (rc == -ENOENT && u.dir >= 0)
        rc = 0; /* the account exists and has no queue */
    core_free(data);
    storage_files_user_close(&u);
    return rc;
}

static int fi_offline_delete(storage_db_t *db, const char *user, size_t count)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    storage_list_t l = {0};
    char *data = NULL;
    size_t len = 0, n;
    core_buf_t b = {0};
    int rc = storage_files_user_open(f, user, true, true, &u);
    if (rc < 0)
        return rc;
    rc = storage_files_read(u.dir, "offline", &data, &len);
    if (rc == -ENOENT) {
        rc = 0;
        goto out;
    }
    if (rc == 0)
        rc = offline_parse(data, len, &l, &n);
    if (rc < 0 || count == 0)
        goto out;
    if (count >= n) {
        rc = storage_files_remove(f, u.dir, "offline");
        goto out;
    }
    core_buf_append_str(&b, OFFLINE_HEADER);
    for (size_t i = count; i < n; i++) {
        core_buf_append_str(&b, "message\t");
        storage_files_escape(&b, l.items[i].data, l.items[i].len);
        core_buf_append(&b, "\n", 1);
    }
    rc = storage_files_replace(f, u.dir, "offline", b.data, b.len);
out:
    core_buf_release(&b);
    storage_list_clear(&l);
    core_free(data);
    storage_files_user_close(&u);
    return rc;
}

/* ---- documents ---- */

/* Opens docs/<kind> of an open user directory, creating it when create is set. */
static int kind_open(const storage_files_db_t *f, int dir, const char *kind, bool create, int *out)
{
    if (create) {
        if (mkdirat(dir, "docs", 0700) == 0) {
            int rc = storage_files_sync(f, dir);
            if (rc < 0)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
    }
    int docs = openat(dir, "docs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (docs < 0)
        return errno == ENOTDIR ? -ENOENT : -errno;
    int rc = 0;
    if (create) {
        if (mkdirat(docs, kind, 0700) == 0)
            rc = storage_files_sync(f, docs);
        else if (errno != EEXIST)
            rc = -errno;
    }
    if (rc == 0) {
        *out = openat(docs, kind, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (*out < 0)
            rc = errno == ENOTDIR ? -ENOENT : -errno;
    }
    close(docs);
    return rc;
}

static int fi_doc_get(storage_db_t *db, const char *user, const char *kind, const char *key,
                      storage_blob_t *out)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = storage_files_user_open(f, user, false, true, &u);
    else
        return rc;
    if (rc == 0)
        rc = kind_open(f, u.dir, kind, false, &kd);
    if (rc == 0)
        rc = storage_files_read(kd, enc, &out->data, &out->len);
    if (kd >= 0)
        close(kd);
    storage_files_user_close(&u);
    return rc;
}

static int fi_doc_put(storage_db_t *db, const char *user, const char *kind, const char *key,
                      const char *data, size_t len)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = storage_files_user_open(f, user, true, true, &u);
    else
        return rc;
    if (rc == 0)
        rc = kind_open(f, u.dir, kind, true, &kd);
    if (rc == 0)
        rc = storage_files_replace(f, kd, enc, data, len);
    if (kd >= 0)
        close(kd);
    storage_files_user_close(&u);
    return rc;
}

static int fi_doc_delete(storage_db_t *db, const char *user, const char *kind, const char *key)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    char enc[STORAGE_FILES_NAME_MAX + 1];
    int kd = -1;
    int rc = storage_files_name_encode(key, enc);
    if (rc == 0)
        rc = storage_files_user_open(f, user, true, true, &u);
    else
        return rc;
    if (rc == 0)
        rc = kind_open(f, u.dir, kind, false, &kd);
    if (rc == 0 && unlinkat(kd, enc, 0) < 0)
        rc = -errno;
    else if (rc == 0)
        rc = storage_files_sync(f, kd);
    if (kd >= 0)
        close(kd);
    storage_files_user_close(&u);
    return rc;
}

static int fi_doc_list(storage_db_t *db, const char *user, const char *kind, storage_list_t *out)
{
    storage_files_db_t *f = from_db(db);
    storage_files_user_t u;
    int kd = -1;
    int rc = storage_files_user_open(f, user, false, true, &u);
    if (rc == 0) {
        rc = kind_open(f, u.dir, kind, false, &kd);
        if (rc == 0)
            rc = storage_files_list_dir(kd, ".", NULL, out);
        else if (rc == -ENOENT)
            rc = 0; /* no document of this kind yet */
    }
    if (kd >= 0)
        close(kd);
    storage_files_user_close(&u);
    return rc;
}

/* ---- open and close ---- */

static void fi_close(storage_db_t *db)
{
    storage_files_db_t *f = from_db(db);
    storage_files_archive_close(f);
    close(f->root);
    core_free(f);
}

static const storage_backend_ops_t files_ops = {
    .name = "files",
    .close = fi_close,
    .user_create = fi_user_create,
    .user_exists = fi_user_exists,
    .user_delete = fi_user_delete,
    .user_list = fi_user_list,
    .creds_get = fi_creds_get,
    .creds_set = fi_creds_set,
    .roster_get = fi_roster_get,
    .roster_item_get = fi_roster_item_get,
    .roster_put = fi_roster_put,
    .roster_delete = fi_roster_delete,
    .offline_push = fi_offline_push,
    .offline_get = fi_offline_get,
    .offline_delete = fi_offline_delete,
    .doc_get = fi_doc_get,
    .doc_put = fi_doc_put,
    .doc_delete = fi_doc_delete,
    .doc_list = fi_doc_list,
    .svc_get = storage_files_svc_get,
    .svc_put = storage_files_svc_put,
    .svc_delete = storage_files_svc_delete,
    .svc_get_all = storage_files_svc_get_all,
    .archive_append = storage_files_archive_append,
    .archive_query = storage_files_archive_query,
    .archive_expire = storage_files_archive_expire,
};

/* Finishes deletes that a crash interrupted: their directories are already invisible. */
static void remove_trash(int root)
{
    int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, TRASH_PREFIX, strlen(TRASH_PREFIX)) == 0)
            remove_tree(root, e->d_name, TREE_DEPTH);
    closedir(d);
}

int storage_files_open(const storage_config_t *cfg, storage_db_t **out)
{
    if (mkdir(cfg->path, 0700) < 0 && errno != EEXIST)
        return -errno;
    int root = open(cfg->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0)
        return -errno;
    storage_files_db_t *f = core_calloc(1, sizeof(*f));
    f->base.ops = &files_ops;
    f->base.sync = cfg->sync;
    f->root = root;
    remove_trash(root);
    *out = &f->base;
    return 0;
}
