/* SPDX-License-Identifier: MIT */
/* The files backend's message archive: <path>/<user>/archive, appended to, read by scanning. */
#include "storage/internal.h"

#include "core/alloc.h"
#include "core/map.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * The archive file (docs/storage.md): a header line, then one record per entry, oldest
 * first: id, stamp, with, stanza, TAB-separated, the last two escaped. Unlike the other files
 * it is not replaced at every write: appends add whole lines at its end (O_APPEND, one
 * write(2) per batch, under the user's lock), which is what makes archiving every message
 * affordable. Readers take no lock, so they may see an append in progress: a last line without
 * its newline is ignored, by readers and writers alike. Nothing ever shortens the file in
 * place (a reader could be in the middle of it): expiry, and the repair of a line a crash cut
 * short, write a new file and rename it over the old one, as the other writers do.
 */
#define ARCHIVE_FILE "archive"
#define ARCHIVE_HEADER                                                                             \
    "parley archive 1\n"                                                                           \
    "# id<TAB>stamp (microseconds since the epoch)<TAB>with<TAB>escaped stanza, oldest first\n"

/* Reads and copies go by this much. */
#define CHUNK (64u * 1024u)
/* The longest record we accept: escaping makes a byte at most four. */
#define RECORD_MAX (4u * (STORAGE_VALUE_MAX + STORAGE_JID_MAX) + 256u)

/* ---- reading lines ---- */

/*
 * The file's complete lines in order from offset base (where a line starts), a chunk at a
 * time: an archive may be far bigger than what we want to hold in memory.
 */
typedef struct line_reader {
    int fd;
    char *buf;
    size_t cap;
    size_t start; /* buf[start..end) is read but not yet returned */
    size_t end;
    size_t scanned; /* buf[start..scanned) holds no newline */
    uint64_t base; /* the file offset of buf[0]; set it (and complete) to start elsewhere */
    uint64_t complete; /* the file offset just after the last line returned */
    bool eof;
} line_reader_t;

/*
 * The next line without its newline (and without a CR before it), and its file offset.
 * Returns 1, 0 at the end (an unterminated last line is left out), or an error.
 */
static int reader_next(line_reader_t *r, const char **line, size_t *len, uint64_t *off)
{
    for (;;) {
        char *nl =
            r->end > r->scanned ? memchr(r->buf + r->scanned, '\n', r->end - r->scanned) : NULL;
        if (nl != NULL) {
            size_t stop = (size_t)(nl - r->buf);
            *line = r->buf + r->start;
            *off = r->base + r->start;
            *len = stop - r->start;
            if (*len > 0 && (*line)[*len - 1] == '\r')
                (*len)--;
            r->start = r->scanned = stop + 1;
            r->complete = r->base + r->start;
            return 1;
        }
        r->scanned = r->end;
        if (r->eof)
            return 0;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->base += r->start;
            r->end -= r->start;
            r->scanned = r->end;
            r->start = 0;
        }
        if (r->cap - r->end < CHUNK / 2) {
            if (r->cap >= RECORD_MAX)
                return -EFBIG;
            r->cap = r->cap == 0 ? CHUNK : 2 * r->cap;
            r->buf = core_realloc(r->buf, r->cap);
        }
        ssize_t got = pread(r->fd, r->buf + r->end, r->cap - r->end, (off_t)(r->base + r->end));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
}

/* How many bytes the reader has read from the file (its size, once at the end). */
static uint64_t reader_size(const line_reader_t *r)
{
    return r->base + r->end;
}

static void reader_release(line_reader_t *r)
{
    core_free(r->buf);
    r->buf = NULL;
}

/*
 * The next record line (blank lines and '#' comments skipped, the header checked first).
 * Returns 1, 0 at the end, or an error (-EBADMSG, -EPROTONOSUPPORT for a newer format).
 */
static int reader_record(line_reader_t *r, bool *have_header, const char **line, size_t *len,
                         uint64_t *off)
{
    for (;;) {
        int rc = reader_next(r, line, len, off);
        if (rc <= 0)
            return rc;
        if (*len == 0 || (*line)[0] == '#')
            continue;
        if (*have_header)
            return 1;
        storage_text_reader_t t = {.p = *line, .end = *line + *len};
        rc = storage_text_header(&t, "archive");
        if (rc < 0)
            return rc;
        *have_header = true;
    }
}

/* ---- records ---- */

typedef struct record {
    const char *id;
    size_t id_len;
    int64_t stamp;
    const char *with; /* escaped */
    size_t with_len;
    const char *data; /* escaped */
    size_t data_len;
} record_t;

static bool id_valid(const char *s, size_t len)
{
    if (len == 0 || len > STORAGE_ARCHIVE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A decimal int64: an optional '-', then digits. */
static bool stamp_parse(const char *s, size_t len, int64_t *out)
{
    bool neg = len > 0 && s[0] == '-';
    uint64_t v;
    if (!storage_text_u64(s + neg, len - neg, &v))
        return false;
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return false;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return true;
}

static int record_parse(const char *line, size_t len, record_t *r)
{
    const char *cur = line, *end = line + len, *stamp;
    size_t stamp_len;
    if (!storage_text_next_field(&cur, end, &r->id, &r->id_len) ||
        !storage_text_next_field(&cur, end, &stamp, &stamp_len) ||
        !storage_text_next_field(&cur, end, &r->with, &r->with_len) ||
        !storage_text_next_field(&cur, end, &r->data, &r->data_len) || cur != NULL)
        return -EBADMSG;
    if (!id_valid(r->id, r->id_len) || !stamp_parse(stamp, stamp_len, &r->stamp) ||
        r->with_len == 0)
        return -EBADMSG;
    return 0;
}

/* The entry's id (storage_archive_id_format) and its key as the stamp. */
static void record_write(core_buf_t *b, const storage_archive_entry_t *e)
{
    char num[32], id[STORAGE_ARCHIVE_ID_LEN + 1];
    storage_archive_id_format(e->key, e->nonce, id);
    core_buf_append_str(b, id);
    snprintf(num, sizeof(num), "\t%" PRId64 "\t", e->key);
    core_buf_append_str(b, num);
    storage_files_escape(b, e->with, strlen(e->with));
    core_buf_append(b, "\t", 1);
    storage_files_escape(b, e->data != NULL ? e->data : "", e->len);
    core_buf_append(b, "\n", 1);
}

/* ---- rewriting ---- */

/* Copies the first len bytes of from to the end of to. */
static int copy_prefix(int from, int to, uint64_t len)
{
    char *buf = core_malloc(CHUNK);
    uint64_t off = 0;
    int rc = 0;
    while (rc == 0 && off < len) {
        size_t want = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
        ssize_t got = pread(from, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = got < 0 ? -errno : -EIO; /* the file only grows: it cannot end early */
        else
            rc = storage_files_write_all(to, buf, (size_t)got);
        off += got > 0 ? (uint64_t)got : 0;
    }
    core_free(buf);
    return rc;
}

/* Replaces the archive by its first len bytes (whole lines), without shortening it in place. */
static int archive_cut(const storage_files_db_t *f, int dir, int fd, uint64_t len)
{
    int tmp = storage_files_tmp_open(dir);
    if (tmp < 0)
        return tmp;
    return storage_files_tmp_commit(f, dir, tmp, ARCHIVE_FILE, copy_prefix(fd, tmp, len));
}

/* ---- appending ---- */

typedef struct pending {
    const char *key; /* the owner (when grouping), an id, or an id's key part (see dup_len) */
    size_t index; /* into the batch */
} pending_t;

/*
 * What makes two entries the same (storage.h: a key already there is -EEXIST): for an id
 * storage_archive_id_format made, its first half (the key); any other id (an old one) whole.
 */
#define KEY_DIGITS (STORAGE_ARCHIVE_ID_LEN / 2)
static size_t dup_len(const char *id, size_t len)
{
    char buf[STORAGE_ARCHIVE_ID_LEN + 1];
    int64_t key;
    uint64_t nonce;
    if (len != STORAGE_ARCHIVE_ID_LEN)
        return len;
    memcpy(buf, id, len);
    buf[len] = '\0';
    return storage_archive_id_parse(buf, &key, &nonce) == 0 ? KEY_DIGITS : len;
}

static int pending_cmp(const void *a, const void *b)
{
    const pending_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* Whether key is exactly id[0..len). */
static bool key_is(const char *key, const char *id, size_t len)
{
    return strncmp(key, id, len) == 0 && key[len] == '\0';
}

/* The index of the first of the sorted ids equal to id[0..len), or n. */
static size_t pending_find(const pending_t *ids, size_t n, const char *id, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strncmp(ids[mid].key, id, len);
        if (c == 0 && ids[mid].key[len] != '\0')
            c = 1; /* longer than id: after it */
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && key_is(ids[lo].key, id, len) ? lo : n;
}

/* Opens the archive for appending, creating it when missing (*created). */
static int archive_open_append(int dir, int *fd, bool *created)
{
    *created = false;
    *fd = openat(dir, ARCHIVE_FILE, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (*fd < 0 && errno == ENOENT) {
        *fd = openat(dir, ARCHIVE_FILE,
                     O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        *created = *fd >= 0;
    }
    return *fd < 0 ? -errno : 0;
}

/* ---- the ids each archive holds ---- */

/*
 * Refusing a duplicate id (storage.h) means knowing every id of the archive, and reading the
 * whole file at each append would make an append cost as much as the archive is big. So a
 * handle remembers, per user, a 64-bit hash of each id up to some offset of the file, and
 * reads only what was appended after it (by another handle). The file is only ever appended
 * to, or replaced by a rename, so what it remembers holds while the file is the same inode,
 * no shorter, and still has, where the last remembered record starts, the bytes it had. A
 * hash found there is only a hint: the file is then read in full, to tell a duplicate from
 * a collision.
 */
#define IDS_MAX (1u << 19) /* hashes kept over all users: 8 to 16 MiB of slots */
#define TAIL_MAX 64

typedef struct archive_ids {
    dev_t dev;
    ino_t ino;
    uint64_t end; /* the ids of the records before this offset are in slots */
    uint64_t tail_off; /* where the last of those records starts */
    size_t tail_len;
    char tail[TAIL_MAX]; /* its first bytes */
    uint64_t used; /* the cache's clock when it last served (for eviction) */
    uint64_t *slots; /* open addressing; 0 is empty */
    size_t cap; /* a power of two, or 0 */
    size_t count;
} archive_ids_t;

struct storage_files_ids {
    core_map_t users; /* encoded user name -> archive_ids_t */
    size_t count; /* hashes over all users */
    uint64_t clock;
    uint64_t seed;
};

static uint64_t id_hash(const storage_files_ids_t *c, const char *id, size_t len)
{
    uint64_t h = c->seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= 1099511628211ull;
    }
    /* FNV's low bits are weak for short keys: mix (splitmix64's finaliser) before masking. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h != 0 ? h : 1;
}

static bool ids_has(const archive_ids_t *k, uint64_t h)
{
    if (k->cap == 0)
        return false;
    for (size_t i = h & (k->cap - 1);; i = (i + 1) & (k->cap - 1)) {
        if (k->slots[i] == h)
            return true;
        if (k->slots[i] == 0)
            return false;
    }
}

/* Puts h in a table of cap slots (never full); false when it was there. */
static bool slots_put(uint64_t *slots, size_t cap, uint64_t h)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        if (slots[i] == h)
            return false;
        if (slots[i] == 0) {
            slots[i] = h;
            return true;
        }
    }
}

static void ids_add(storage_files_ids_t *c, archive_ids_t *k, uint64_t h)
{
    if (2 * (k->count + 1) > k->cap) {
        /* At most half full, so a probe ends soon. */
        size_t cap = k->cap == 0 ? 64 : 2 * k->cap;
        uint64_t *slots = core_calloc(cap, sizeof(*slots));
        for (size_t i = 0; i < k->cap; i++)
            if (k->slots[i] != 0)
                slots_put(slots, cap, k->slots[i]);
        core_free(k->slots);
        k->slots = slots;
        k->cap = cap;
    }
    if (slots_put(k->slots, k->cap, h)) {
        k->count++;
        c->count++;
    }
}

/* Forgets what k knew (the next append reads the file from its start). */
static void ids_reset(storage_files_ids_t *c, archive_ids_t *k)
{
    c->count -= k->count;
    core_free(k->slots);
    k->slots = NULL;
    k->cap = k->count = 0;
    k->end = 0;
}

static archive_ids_t *ids_get(storage_files_db_t *f, const char *enc)
{
    if (f->ids == NULL) {
        f->ids = core_calloc(1, sizeof(*f->ids));
        core_map_init(&f->ids->users);
        f->ids->seed = f->ids->users.seed;
    }
    archive_ids_t *k = core_map_get(&f->ids->users, enc, strlen(enc));
    if (k == NULL) {
        k = core_calloc(1, sizeof(*k));
        core_map_put(&f->ids->users, enc, strlen(enc), k);
    }
    k->used = ++f->ids->clock;
    return k;
}

/* Whether what k remembers still describes the archive open at fd. */
static bool ids_valid(const archive_ids_t *k, int fd)
{
    struct stat st;
    char buf[TAIL_MAX];
    if (k->end == 0 || fstat(fd, &st) < 0 || st.st_dev != k->dev || st.st_ino != k->ino ||
        (uint64_t)st.st_size < k->end)
        return false;
    ssize_t got = pread(fd, buf, k->tail_len, (off_t)k->tail_off);
    return got == (ssize_t)k->tail_len && memcmp(buf, k->tail, k->tail_len) == 0;
}

/* Records that k now covers the archive at fd up to end, its last record starting at tail. */
static void ids_cover(archive_ids_t *k, int fd, uint64_t end, uint64_t tail_off, const char *tail,
                      size_t tail_len)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        k->end = 0;
        return;
    }
    k->dev = st.st_dev;
    k->ino = st.st_ino;
    k->end = end;
    k->tail_off = tail_off;
    k->tail_len = tail_len < TAIL_MAX ? tail_len : TAIL_MAX;
    memcpy(k->tail, tail, k->tail_len);
}

typedef struct evict {
    uint64_t used;
    const char *enc;
} evict_t;

static void evict_collect(void *ud, const char *enc, void *v)
{
    evict_t **p = ud;
    **p = (evict_t){.used = ((archive_ids_t *)v)->used, .enc = enc};
    (*p)++;
}

static int evict_cmp(const void *a, const void *b)
{
    const evict_t *x = a, *y = b;
    return (x->used > y->used) - (x->used < y->used);
}

/* Keeps the cache under IDS_MAX hashes, forgetting the users least recently appended to. */
static void ids_trim(storage_files_db_t *f)
{
    storage_files_ids_t *c = f->ids;
    if (c == NULL || c->count <= IDS_MAX)
        return;
    evict_t *all = core_malloc(c->users.count * sizeof(*all)), *p = all;
    size_t n = c->users.count;
    core_map_each(&c->users, evict_collect, &p);
    qsort(all, n, sizeof(*all), evict_cmp);
    for (size_t i = 0; i < n && c->count > IDS_MAX / 4 * 3; i++)
        storage_files_archive_forget(f, all[i].enc);
    core_free(all);
}

void storage_files_archive_forget(storage_files_db_t *f, const char *enc)
{
    if (f->ids == NULL)
        return;
    archive_ids_t *k = core_map_del(&f->ids->users, enc, strlen(enc));
    if (k != NULL) {
        ids_reset(f->ids, k);
        core_free(k);
    }
}

static void ids_free_one(void *ud, const char *enc, void *v)
{
    archive_ids_t *k = v;
    core_free(k->slots);
    core_free(k);
}

void storage_files_archive_close(storage_files_db_t *f)
{
    if (f->ids == NULL)
        return;
    core_map_each(&f->ids->users, ids_free_one, NULL);
    core_map_free(&f->ids->users);
    core_free(f->ids);
    f->ids = NULL;
}

/* ---- appending ---- */

/* What a scan of the archive's ids found. */
typedef struct id_scan {
    uint64_t complete; /* just after the last complete line */
    uint64_t size; /* the bytes read: more than complete when the last line is cut short */
    uint64_t tail_off; /* where the last record starts (when have_tail) */
    char tail[TAIL_MAX];
    size_t tail_len;
    bool have_header;
} id_scan_t;

/*
 * Reads the archive's records from offset from (where one starts; 0: the whole file), marks
 * the pending entries whose ids it holds (-EEXIST; ids sorted) and, when k is not NULL, adds
 * every id read to k.
 */
static int archive_scan_ids(storage_files_ids_t *c, archive_ids_t *k, int fd, uint64_t from,
                            const pending_t *ids, size_t n, int *status, id_scan_t *out)
{
    line_reader_t r = {.fd = fd, .base = from, .complete = from};
    const char *line;
    size_t len;
    uint64_t off;
    int rc;
    while ((rc = reader_record(&r, &out->have_header, &line, &len, &off)) == 1) {
        /* Only the id matters here; queries check the rest of each line. */
        const char *tab = memchr(line, '\t', len);
        size_t id_len = tab != NULL ? (size_t)(tab - line) : 0;
        if (!id_valid(line, id_len)) {
            rc = -EBADMSG;
            break;
        }
        id_len = dup_len(line, id_len);
        for (size_t j = pending_find(ids, n, line, id_len);
             j < n && key_is(ids[j].key, line, id_len); j++)
            status[ids[j].index] = -EEXIST;
        if (k != NULL)
            ids_add(c, k, id_hash(c, line, id_len));
        out->tail_off = off;
        out->tail_len = len < TAIL_MAX ? len : TAIL_MAX;
        memcpy(out->tail, line, out->tail_len);
    }
    out->complete = r.complete;
    out->size = reader_size(&r);
    reader_release(&r);
    return rc;
}

/*
 * Marks the pending entries whose ids are already in the archive (-EEXIST), reading only
 * what k does not cover (and the whole file when k hints at a duplicate there).
 */
static int archive_find_dups(storage_files_db_t *f, archive_ids_t *k, int fd, const pending_t *ids,
                             size_t n, int *status, id_scan_t *scan)
{
    storage_files_ids_t *c = f->ids;
    uint64_t from = 0;
    if (ids_valid(k, fd)) {
        from = k->end;
        scan->have_header = true;
        scan->tail_off = k->tail_off;
        scan->tail_len = k->tail_len;
        memcpy(scan->tail, k->tail, k->tail_len);
    } else {
        ids_reset(c, k);
    }
    int rc = archive_scan_ids(c, k, fd, from, ids, n, status, scan);
    bool hint = false;
    for (size_t j = 0; rc == 0 && from > 0 && j < n; j++)
        hint |= status[ids[j].index] == 0 && ids_has(k, id_hash(c, ids[j].key, strlen(ids[j].key)));
    if (hint) {
        id_scan_t again = {0};
        rc = archive_scan_ids(c, NULL, fd, 0, ids, n, status, &again);
    }
    return rc;
}

/*
 * Opens the folder of an archive's owner: a user's (-ENOENT without the account), or a
 * service entity's (owner holds '@'; its name is encoded like a user's, and since a user
 * name never holds '@' the two cannot meet). With create, a missing service folder is made;
 * without, its absence is -ENOENT, which callers take as an empty archive.
 */
static int owner_open(storage_files_db_t *f, const char *owner, bool lock, bool create,
                      storage_files_user_t *u)
{
    bool service = strchr(owner, '@') != NULL;
    if (service && create) {
        char enc[STORAGE_FILES_NAME_MAX + 1];
        int rc = storage_files_name_encode(owner, enc);
        if (rc < 0)
            return rc;
        if (mkdirat(f->root, enc, 0700) == 0) {
            rc = storage_files_sync(f, f->root);
            if (rc < 0)
                return rc;
        } else if (errno != EEXIST) {
            return -errno;
        }
    }
    return storage_files_user_open(f, owner, lock, !service, u);
}

/* Appends one owner's entries (idx[0..k), in batch order) to its archive. */
static int append_user(storage_files_db_t *f, const storage_archive_entry_t *entries,
                       const pending_t *idx, size_t k, int *status)
{
    storage_files_user_t u;
    pending_t *ids = core_malloc(k * sizeof(*ids));
    char(*keys)[KEY_DIGITS + 1] = core_malloc(k * sizeof(*keys));
    core_buf_t b = {0};
    archive_ids_t *known = NULL;
    id_scan_t scan = {0};
    int fd = -1;
    bool created = false;
    int rc = owner_open(f, entries[idx[0].index].owner, true, true, &u);
    if (rc == -ENOENT) {
        for (size_t j = 0; j < k; j++)
            status[idx[j].index] = -ENOENT;
        rc = 0;
        goto out;
    }
    if (rc < 0)
        goto out;
    for (size_t j = 0; j < k; j++) {
        char id[STORAGE_ARCHIVE_ID_LEN + 1];
        storage_archive_id_format(entries[idx[j].index].key, 0, id);
        memcpy(keys[j], id, KEY_DIGITS);
        keys[j][KEY_DIGITS] = '\0';
        ids[j] = (pending_t){.key = keys[j], .index = idx[j].index};
    }
    qsort(ids, k, sizeof(*ids), pending_cmp);
    /* A second entry with a key is a duplicate of the first one of the batch. */
    for (size_t j = 1; j < k; j++)
        if (strcmp(ids[j].key, ids[j - 1].key) == 0)
            status[ids[j].index] = -EEXIST;
    known = ids_get(f, u.enc);
    rc = archive_open_append(u.dir, &fd, &created);
    if (rc == 0)
        rc = archive_find_dups(f, known, fd, ids, k, status, &scan);
    if (rc == 0 && scan.complete < scan.size) {
        /* A crash cut the last append short: drop that line before adding ours. */
        rc = archive_cut(f, u.dir, fd, scan.complete);
        close(fd);
        fd = -1;
        if (rc == 0)
            rc = archive_open_append(u.dir, &fd, &created);
        scan.size = scan.complete;
    }
    if (rc < 0)
        goto out;
    if (!scan.have_header)
        core_buf_append_str(&b, ARCHIVE_HEADER);
    size_t header_len = b.len, last = 0;
    for (size_t j = 0; j < k; j++) {
        if (status[idx[j].index] == 0) {
            last = b.len;
            record_write(&b, &entries[idx[j].index]);
            ids_add(f->ids, known, id_hash(f->ids, keys[j], KEY_DIGITS));
        }
    }
    if (b.len > header_len) {
        rc = storage_files_write_all(fd, b.data, b.len);
        if (rc == 0)
            rc = storage_files_sync(f, fd);
        if (rc == 0 && created)
            rc = storage_files_sync(f, u.dir);
        if (rc < 0)
            archive_cut(f, u.dir, fd, scan.size); /* best effort: leave no part of the batch */
        scan.tail_off = scan.size + last;
        scan.tail_len = b.len - last < TAIL_MAX ? b.len - last : TAIL_MAX;
        memcpy(scan.tail, b.data + last, scan.tail_len);
        scan.size += b.len;
    }
    if (rc == 0)
        ids_cover(known, fd, scan.size, scan.tail_off, scan.tail, scan.tail_len);
out:
    if (rc < 0 && known != NULL)
        ids_reset(f->ids, known);
    if (fd >= 0)
        close(fd);
    core_buf_release(&b);
    core_free(ids);
    core_free(keys);
    storage_files_user_close(&u);
    return rc;
}

int storage_files_archive_append(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                                 int *status)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    pending_t *order = core_malloc(n * sizeof(*order));
    for (size_t i = 0; i < n; i++)
        order[i] = (pending_t){.key = entries[i].owner, .index = i};
    qsort(order, n, sizeof(*order), pending_cmp);
    /*
     * Each user's entries go in one append, but a batch spanning users cannot be one atomic
     * write here: a user whose file fails gets the error in its entries' statuses, and the
     * call fails only when no user's entries were written.
     */
    int first_err = 0;
    bool any_ok = false;
    for (size_t g = 0; g < n;) {
        size_t k = 1;
        while (g + k < n && strcmp(order[g + k].key, order[g].key) == 0)
            k++;
        int rc = append_user(f, entries, order + g, k, status);
        if (rc < 0) {
            for (size_t j = 0; j < k; j++)
                status[order[g + j].index] = rc;
            if (first_err == 0)
                first_err = rc;
        } else {
            any_ok = true;
        }
        g += k;
    }
    core_free(order);
    ids_trim(f);
    return any_ok ? 0 : first_err;
}

/* ---- querying ---- */

/* Where a matching record's line is in the file. */
typedef struct span {
    uint64_t off;
    size_t len;
} span_t;

typedef struct scan {
    const storage_archive_query_t *q;
    pending_t *ids; /* q->ids, sorted (when q->nids > 0) */
    span_t *match; /* every record that passes the filters, in file order */
    size_t count;
    size_t cap;
    size_t after; /* matches up to and including after_id's record (SIZE_MAX: not seen) */
    size_t before; /* matches before before_id's record (SIZE_MAX: not seen) */
} scan_t;

/* 1 when the record passes the query's filters (with, start, end, ids), 0 if not, or an error. */
static int record_matches(const scan_t *s, const record_t *r)
{
    const storage_archive_query_t *q = s->q;
    if ((q->has_start && r->stamp < q->start_us) || (q->has_end && r->stamp > q->end_us))
        return 0;
    if (q->nids > 0 && pending_find(s->ids, q->nids, r->id, r->id_len) == q->nids)
        return 0;
    if (q->with == NULL)
        return 1;
    if (memchr(r->with, '\\', r->with_len) == NULL)
        return storage_archive_with_match(q->with, r->with, r->with_len);
    char *with;
    size_t len;
    if (storage_files_unescape(r->with, r->with_len, &with, &len) < 0)
        return -EBADMSG;
    int m = storage_archive_with_match(q->with, with, len);
    core_free(with);
    return m;
}

/* Reads the archive once, noting the matches and where after_id and before_id are. */
static int scan_file(int fd, scan_t *s)
{
    const storage_archive_query_t *q = s->q;
    line_reader_t r = {.fd = fd};
    const char *line;
    size_t len;
    uint64_t off;
    bool have_header = false;
    int rc;
    while ((rc = reader_record(&r, &have_header, &line, &len, &off)) == 1) {
        record_t rec;
        rc = record_parse(line, len, &rec);
        if (rc < 0)
            break;
        if (q->before_id != NULL && s->before == SIZE_MAX &&
            key_is(q->before_id, rec.id, rec.id_len))
            s->before = s->count;
        rc = record_matches(s, &rec);
        if (rc < 0)
            break;
        if (rc == 1) {
            if (s->count == s->cap) {
                s->cap = s->cap == 0 ? 64 : 2 * s->cap;
                s->match = core_realloc(s->match, s->cap * sizeof(*s->match));
            }
            s->match[s->count++] = (span_t){.off = off, .len = len};
        }
        if (q->after_id != NULL && s->after == SIZE_MAX && key_is(q->after_id, rec.id, rec.id_len))
            s->after = s->count;
    }
    reader_release(&r);
    return rc;
}

/* Fills item from a record, decoding its escaped fields. */
static int item_from_record(const record_t *r, storage_archive_item_t *it)
{
    it->id = core_strndup(r->id, r->id_len);
    it->stamp_us = r->stamp;
    if (storage_files_unescape(r->with, r->with_len, &it->with, NULL) < 0 ||
        storage_files_unescape(r->data, r->data_len, &it->data.data, &it->data.len) < 0)
        return -EBADMSG;
    return 0;
}

/* Reads the records of s->match[first..first + n) into out->items. */
static int read_page(int fd, const scan_t *s, size_t first, size_t n, storage_archive_result_t *out)
{
    const span_t *a = &s->match[first], *z = &s->match[first + n - 1];
    /* One read for the whole page: its records are close together in the file. */
    size_t total = (size_t)(z->off - a->off) + z->len;
    char *buf = core_malloc(total + 1);
    int rc = 0;
    for (size_t got = 0; rc == 0 && got < total;) {
        ssize_t k = pread(fd, buf + got, total - got, (off_t)(a->off + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            rc = k < 0 ? -errno : -EIO;
        else
            got += (size_t)k;
    }
    out->items = core_calloc(n, sizeof(*out->items));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const span_t *sp = &s->match[first + i];
        record_t rec;
        rc = record_parse(buf + (sp->off - a->off), sp->len, &rec);
        if (rc == 0)
            rc = item_from_record(&rec, &out->items[out->count++]);
    }
    core_free(buf);
    return rc;
}

/*
 * Chooses the page among the matches: after the after_id record, before the before_id one,
 * max of them from the start or the end of that window (storage.h).
 */
static int page_choose(int fd, const scan_t *s, storage_archive_result_t *out)
{
    const storage_archive_query_t *q = s->q;
    if ((q->after_id != NULL && s->after == SIZE_MAX) ||
        (q->before_id != NULL && s->before == SIZE_MAX))
        return -ENOMSG; /* XEP-0313 §4.1.3: the UID is not in the archive */
    size_t lo = q->after_id != NULL ? s->after : 0;
    size_t hi = q->before_id != NULL ? s->before : s->count;
    size_t avail = hi > lo ? hi - lo : 0;
    size_t take = avail < q->max ? avail : q->max;
    size_t first = q->from_end ? hi - take : lo;
    out->total = s->count;
    out->first_index = first;
    out->complete = avail <= q->max;
    return take > 0 ? read_page(fd, s, first, take, out) : 0;
}

int storage_files_archive_query(storage_db_t *db, const char *owner,
                                const storage_archive_query_t *q, storage_archive_result_t *out)
{
    storage_files_user_t u;
    scan_t s = {.q = q, .after = SIZE_MAX, .before = SIZE_MAX};
    int fd = -1;
    int rc = owner_open((storage_files_db_t *)db, owner, false, false, &u);
    if (rc == -ENOENT && strchr(owner, '@') != NULL) {
        rc = page_choose(-1, &s, out); /* a service's archive nothing was appended to yet */
        goto out;
    }
    if (rc < 0)
        goto out;
    if (q->nids > 0) {
        s.ids = core_malloc(q->nids * sizeof(*s.ids));
        for (size_t i = 0; i < q->nids; i++)
            s.ids[i] = (pending_t){.key = q->ids[i], .index = i};
        qsort(s.ids, q->nids, sizeof(*s.ids), pending_cmp);
    }
    fd = openat(u.dir, ARCHIVE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        rc = -errno;
        goto out;
    }
    /* No file: an empty archive (s stays empty). */
    if (fd >= 0)
        rc = scan_file(fd, &s);
    if (rc == 0)
        rc = page_choose(fd, &s, out);
out:
    if (fd >= 0)
        close(fd);
    core_free(s.ids);
    core_free(s.match);
    storage_files_user_close(&u);
    return rc;
}

/* ---- expiry ---- */

/*
 * Writes the archive without the records stamped before before_us to a new file, renamed
 * over it. Nothing is written when nothing expires: the first expired record starts the copy
 * (everything before it is copied as it is), then the kept lines follow.
 */
static int expire_file(const storage_files_db_t *f, int dir, int fd, int64_t before_us)
{
    line_reader_t r = {.fd = fd};
    core_buf_t b = {0};
    const char *line;
    size_t len;
    uint64_t off;
    bool have_header = false;
    int tmp = -1, rc;
    while ((rc = reader_record(&r, &have_header, &line, &len, &off)) == 1) {
        record_t rec;
        rc = record_parse(line, len, &rec);
        if (rc < 0)
            break;
        bool expired = before_us == INT64_MAX || rec.stamp < before_us;
        if (expired && tmp < 0) {
            tmp = storage_files_tmp_open(dir);
            if (tmp < 0) {
                rc = tmp;
                break;
            }
            rc = copy_prefix(fd, tmp, off);
            if (rc < 0)
                break;
        }
        if (expired || tmp < 0)
            continue;
        core_buf_append(&b, line, len);
        core_buf_append(&b, "\n", 1);
        if (b.len >= CHUNK) {
            rc = storage_files_write_all(tmp, b.data, b.len);
            if (rc < 0)
                break;
            core_buf_consume(&b, b.len);
        }
    }
    reader_release(&r);
    if (tmp >= 0) {
        if (rc == 0)
            rc = storage_files_write_all(tmp, b.data, b.len);
        rc = storage_files_tmp_commit(f, dir, tmp, ARCHIVE_FILE, rc);
    }
    core_buf_release(&b);
    return rc;
}

int storage_files_archive_expire(storage_db_t *db, const char *owner, int64_t before_us)
{
    storage_files_db_t *f = (storage_files_db_t *)db;
    storage_files_user_t u;
    int rc = owner_open(f, owner, true, false, &u);
    if (rc == -ENOENT && strchr(owner, '@') != NULL)
        return 0; /* a service's archive nothing was appended to */
    if (rc == 0) {
        /* A new file replaces this one: what the cache knew of it is of no use. */
        storage_files_archive_forget(f, u.enc);
        int fd = openat(u.dir, ARCHIVE_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) {
            rc = expire_file(f, u.dir, fd, before_us);
            close(fd);
        } else if (errno != ENOENT) {
            rc = -errno;
        }
    }
    storage_files_user_close(&u);
    return rc;
}
