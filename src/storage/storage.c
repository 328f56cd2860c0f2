/* SPDX-License-Identifier: MIT */
/* The synchronous layer: argument checks, dispatch to a backend, the data types' helpers. */
#include "storage/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int storage_backend_parse(const char *name, storage_backend_kind_t *out)
{
    if (strcmp(name, "sqlite") == 0)
        *out = STORAGE_BACKEND_SQLITE;
    else if (strcmp(name, "files") == 0)
        *out = STORAGE_BACKEND_FILES;
    else
        return -EINVAL;
    return 0;
}

const char *storage_backend_name(storage_backend_kind_t kind)
{
    return kind == STORAGE_BACKEND_FILES ? "files" : "sqlite";
}

/* ---- data types ---- */

void storage_blob_clear(storage_blob_t *b)
{
    core_free(b->data);
    b->data = NULL;
    b->len = 0;
}

void storage_list_clear(storage_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        core_free(l->items[i].data);
    core_free(l->items);
    l->items = NULL;
    l->count = 0;
}

void storage_docs_clear(storage_docs_t *d)
{
    storage_list_clear(&d->keys);
    storage_list_clear(&d->values);
}

void storage_list_push(storage_list_t *l, const char *data, size_t len)
{
    /* Grow by doubling: the capacity is the next power of two at or above count. */
    size_t n = l->count;
    if (n == 0 || (n & (n - 1)) == 0)
        l->items = core_realloc(l->items, (n == 0 ? 1 : 2 * n) * sizeof(*l->items));
    l->items[n].data = core_strndup(data, len);
    l->items[n].len = len;
    l->count = n + 1;
}

static int blob_cmp(const void *a, const void *b)
{
    const storage_blob_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->data, y->data, n);
    if (c != 0)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

void storage_list_sort(storage_list_t *l)
{
    if (l->count > 1)
        qsort(l->items, l->count, sizeof(*l->items), blob_cmp);
}

void storage_roster_item_clear(storage_roster_item_t *item)
{
    core_free(item->jid);
    core_free(item->name);
    for (size_t i = 0; i < item->group_count; i++)
        core_free(item->groups[i]);
    core_free(item->groups);
    memset(item, 0, sizeof(*item));
}

void storage_roster_clear(storage_roster_t *r)
{
    for (size_t i = 0; i < r->count; i++)
        storage_roster_item_clear(&r->items[i]);
    core_free(r->items);
    core_free(r->version);
    memset(r, 0, sizeof(*r));
}

void storage_archive_result_clear(storage_archive_result_t *r)
{
    for (size_t i = 0; i < r->count; i++) {
        core_free(r->items[i].id);
        core_free(r->items[i].with);
        storage_blob_clear(&r->items[i].data);
    }
    core_free(r->items);
    memset(r, 0, sizeof(*r));
}

void storage_roster_item_copy(storage_roster_item_t *dst, const storage_roster_item_t *src)
{
    dst->jid = core_strdup(src->jid);
    dst->name = src->name != NULL ? core_strdup(src->name) : NULL;
    dst->subscription = src->subscription;
    dst->ask = src->ask;
    dst->approved = src->approved;
    dst->group_count = src->group_count;
    dst->groups = NULL;
    if (src->group_count > 0) {
        dst->groups = core_malloc(src->group_count * sizeof(char *));
        for (size_t i = 0; i < src->group_count; i++)
            dst->groups[i] = core_strdup(src->groups[i]);
    }
}

static int item_cmp(const void *a, const void *b)
{
    const storage_roster_item_t *x = a, *y = b;
    return strcmp(x->jid, y->jid);
}

void storage_roster_sort(storage_roster_t *r)
{
    if (r->count > 1)
        qsort(r->items, r->count, sizeof(*r->items), item_cmp);
}

static const char *const sub_names[] = {"none", "to", "from", "both"};

const char *storage_sub_name(storage_sub_t sub)
{
    return (unsigned)sub < 4 ? sub_names[sub] : "none";
}

int storage_sub_parse(const char *s, size_t len, storage_sub_t *out)
{
    for (unsigned i = 0; i < 4; i++) {
        if (strlen(sub_names[i]) == len && memcmp(s, sub_names[i], len) == 0) {
            *out = (storage_sub_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- helpers ---- */

uint64_t storage_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

char *storage_u64_str(uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    return core_strndup(tmp, (size_t)n);
}

size_t storage_jid_bare_len(const char *jid)
{
    return strcspn(jid, "/");
}

bool storage_archive_with_match(const char *filter, const char *with, size_t with_len)
{
    size_t flen = strlen(filter);
    /* XEP-0313 §4.1.1: a full JID matches only itself; a bare JID (or a domain) matches
     * every resource of it. */
    size_t n = with_len;
    if (filter[storage_jid_bare_len(filter)] != '/') {
        const char *slash = memchr(with, '/', with_len);
        if (slash != NULL)
            n = (size_t)(slash - with);
    }
    return n == flen && memcmp(filter, with, n) == 0;
}

void storage_secret_free(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    core_free(s);
}

/* ---- argument checks ---- */

/* Well-formed UTF-8 (RFC 3629): no overlongs, no surrogates, nothing above U+10FFFF. */
bool storage_utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        i += n + 1;
    }
    return true;
}

static int check_text(const char *s, size_t max)
{
    if (s == NULL)
        return -EINVAL;
    size_t len = strnlen(s, max + 1);
    if (len == 0 || len > max || !storage_utf8_valid(s, len))
        return -EINVAL;
    return 0;
}

int storage_check_user(const char *user)
{
    int r = check_text(user, STORAGE_USER_MAX);
    if (r < 0)
        return r;
    /* RFC 7622 §3.3.1: a localpart never holds '@' or '/'. */
    if (strpbrk(user, "@/") != NULL)
        return -EINVAL;
    return 0;
}

int storage_check_jid(const char *jid)
{
    return check_text(jid, STORAGE_JID_MAX);
}

int storage_check_kind(const char *kind)
{
    if (kind == NULL)
        return -EINVAL;
    size_t len = strnlen(kind, STORAGE_KIND_MAX + 1);
    if (len == 0 || len > STORAGE_KIND_MAX)
        return -EINVAL;
    if (strspn(kind, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len)
        return -EINVAL;
    return 0;
}

int storage_check_key(const char *key)
{
    return check_text(key, STORAGE_KEY_MAX);
}

int storage_check_creds(const char *creds)
{
    if (creds == NULL || strnlen(creds, STORAGE_VALUE_MAX + 1) > STORAGE_VALUE_MAX)
        return -EINVAL;
    return 0;
}

int storage_check_value(const char *data, size_t len)
{
    if ((data == NULL && len != 0) || len > STORAGE_VALUE_MAX)
        return -EINVAL;
    return 0;
}

int storage_check_service(const char *service)
{
    int r = check_text(service, STORAGE_SERVICE_MAX);
    if (r < 0)
        return r;
    /* RFC 7622 §3.2: a domainpart never holds '@' or '/' (they delimit the other parts). */
    if (strpbrk(service, "@/") != NULL)
        return -EINVAL;
    return 0;
}

int storage_check_svc_doc(const char *service, const char *kind, const char *key)
{
    if (storage_check_service(service) < 0 || storage_check_kind(kind) < 0 ||
        (key != NULL && storage_check_key(key) < 0))
        return -EINVAL;
    return 0;
}

int storage_check_svc_value(const char *data, size_t len)
{
    if ((data == NULL && len != 0) || len > STORAGE_SVC_VALUE_MAX)
        return -EINVAL;
    return 0;
}

int storage_check_item(const storage_roster_item_t *item)
{
    if (item == NULL || storage_check_jid(item->jid) < 0)
        return -EINVAL;
    if (item->name != NULL) {
        size_t len = strnlen(item->name, STORAGE_TEXT_MAX + 1);
        if (len > STORAGE_TEXT_MAX || !storage_utf8_valid(item->name, len))
            return -EINVAL;
    }
    if ((unsigned)item->subscription > STORAGE_SUB_BOTH ||
        (unsigned)item->ask > STORAGE_ASK_SUBSCRIBE)
        return -EINVAL;
    if (item->group_count > STORAGE_GROUPS_MAX || (item->group_count > 0 && item->groups == NULL))
        return -EINVAL;
    /* RFC 6121 §2.1.2.2: groups are non-empty and appear once each. */
    for (size_t i = 0; i < item->group_count; i++) {
        if (check_text(item->groups[i], STORAGE_TEXT_MAX) < 0)
            return -EINVAL;
        for (size_t k = 0; k < i; k++)
            if (strcmp(item->groups[i], item->groups[k]) == 0)
                return -EINVAL;
    }
    return 0;
}

int storage_check_archive_id(const char *id)
{
    if (id == NULL)
        return -EINVAL;
    size_t len = strnlen(id, STORAGE_ARCHIVE_ID_MAX + 1);
    if (len == 0 || len > STORAGE_ARCHIVE_ID_MAX)
        return -EINVAL;
    if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != len)
        return -EINVAL;
    return 0;
}

int storage_check_archive_owner(const char *owner)
{
    if (owner == NULL)
        return -EINVAL;
    if (strchr(owner, '@') == NULL)
        return storage_check_user(owner);
    /* A service entity's archive is its bare JID's (XEP-0313 §3.2: a MUC room's). */
    if (storage_check_jid(owner) < 0 || strchr(owner, '/') != NULL)
        return -EINVAL;
    return 0;
}

int storage_check_archive_entry(const storage_archive_entry_t *e)
{
    if (storage_check_archive_owner(e->owner) < 0 || e->key < 0 || storage_check_jid(e->with) < 0 ||
        storage_check_value(e->data, e->len) < 0)
        return -EINVAL;
    return 0;
}

/* ---- archive ids ---- */

/* base32hex (RFC 4648 §7), lower case: the text sorts as the number does. */
static const char b32_digits[] = "0123456789abcdefghijklmnopqrstuv";
#define B32_DIGITS 13 /* 65 bits: one 64-bit number */

static void b32_put(char *out, uint64_t v)
{
    for (int i = B32_DIGITS - 1; i >= 0; i--) {
        out[i] = b32_digits[v & 31];
        v >>= 5;
    }
}

static bool b32_get(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    /* The first digit holds the top 5 of 65 bits: above 'f' the number needs 65 bits. */
    if (!((s[0] >= '0' && s[0] <= '9') || (s[0] >= 'a' && s[0] <= 'f')))
        return false;
    for (int i = 0; i < B32_DIGITS; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'v')
            d = (unsigned)(c - 'a') + 10;
        else
            return false;
        v = (v << 5) | d;
    }
    *out = v;
    return true;
}

void storage_archive_id_format(int64_t key, uint64_t nonce, char out[STORAGE_ARCHIVE_ID_LEN + 1])
{
    b32_put(out, (uint64_t)key);
    b32_put(out + B32_DIGITS, nonce);
    out[STORAGE_ARCHIVE_ID_LEN] = '\0';
}

int storage_archive_id_parse(const char *id, int64_t *key, uint64_t *nonce)
{
    uint64_t k, n;
    /* Only the one spelling format makes: an id names one entry, or none. */
    if (strnlen(id, STORAGE_ARCHIVE_ID_LEN + 1) != STORAGE_ARCHIVE_ID_LEN || !b32_get(id, &k) ||
        !b32_get(id + B32_DIGITS, &n) || k > (uint64_t)INT64_MAX)
        return -ENOMSG;
    *key = (int64_t)k;
    *nonce = n;
    return 0;
}

int storage_check_archive_query(const storage_archive_query_t *q)
{
    if (q == NULL || (q->with != NULL && storage_check_jid(q->with) < 0))
        return -EINVAL;
    if ((q->after_id != NULL && storage_check_archive_id(q->after_id) < 0) ||
        (q->before_id != NULL && storage_check_archive_id(q->before_id) < 0))
        return -EINVAL;
    if (q->max > STORAGE_ARCHIVE_PAGE_MAX || q->nids > STORAGE_ARCHIVE_IDS_MAX ||
        (q->nids > 0 && q->ids == NULL))
        return -EINVAL;
    for (size_t i = 0; i < q->nids; i++)
        if (storage_check_archive_id(q->ids[i]) < 0)
            return -EINVAL;
    return 0;
}

/* ---- the synchronous layer ---- */

int storage_db_open(const storage_config_t *cfg, storage_db_t **out)
{
    if (cfg == NULL || cfg->path == NULL || cfg->path[0] == '\0')
        return -EINVAL;
    if ((unsigned)cfg->sync > STORAGE_SYNC_NONE)
        return -EINVAL;
    switch (cfg->backend) {
    case STORAGE_BACKEND_SQLITE:
        return storage_sqlite_open(cfg, out);
    case STORAGE_BACKEND_FILES:
        return storage_files_open(cfg, out);
    }
    return -EINVAL;
}

void storage_db_close(storage_db_t *db)
{
    if (db != NULL)
        db->ops->close(db);
}

int storage_db_user_create(storage_db_t *db, const char *user, const char *creds)
{
    if (storage_check_user(user) < 0 || storage_check_creds(creds) < 0)
        return -EINVAL;
    return db->ops->user_create(db, user, creds);
}

int storage_db_user_exists(storage_db_t *db, const char *user)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    return db->ops->user_exists(db, user);
}

int storage_db_user_delete(storage_db_t *db, const char *user)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    return db->ops->user_delete(db, user);
}

int storage_db_user_list(storage_db_t *db, storage_list_t *out)
{
    storage_list_t l = {0};
    int r = db->ops->user_list(db, &l);
    if (r < 0) {
        storage_list_clear(&l);
        return r;
    }
    *out = l;
    return 0;
}

int storage_db_creds_get(storage_db_t *db, const char *user, char **out)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    char *c = NULL;
    int r = db->ops->creds_get(db, user, &c);
    if (r < 0) {
        storage_secret_free(c);
        return r;
    }
    *out = c;
    return 0;
}

int storage_db_creds_set(storage_db_t *db, const char *user, const char *creds)
{
    if (storage_check_user(user) < 0 || storage_check_creds(creds) < 0)
        return -EINVAL;
    return db->ops->creds_set(db, user, creds);
}

int storage_db_roster_get(storage_db_t *db, const char *user, storage_roster_t *out)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    storage_roster_t r = {0};
    int rc = db->ops->roster_get(db, user, &r);
    if (rc < 0) {
        storage_roster_clear(&r);
        return rc;
    }
    *out = r;
    return 0;
}

int storage_db_roster_item_get(storage_db_t *db, const char *user, const char *jid,
                               storage_roster_item_t *out)
{
    if (storage_check_user(user) < 0 || storage_check_jid(jid) < 0)
        return -EINVAL;
    storage_roster_item_t it = {0};
    int r = db->ops->roster_item_get(db, user, jid, &it);
    if (r < 0) {
        storage_roster_item_clear(&it);
        return r;
    }
    *out = it;
    return 0;
}

int storage_db_roster_put(storage_db_t *db, const char *user, const storage_roster_item_t *item,
                          char **version)
{
    if (storage_check_user(user) < 0 || storage_check_item(item) < 0)
        return -EINVAL;
    char *v = NULL;
    int r = db->ops->roster_put(db, user, item, &v);
    if (r == 0 && version != NULL)
        *version = v;
    else
        core_free(v);
    return r;
}

int storage_db_roster_delete(storage_db_t *db, const char *user, const char *jid, char **version)
{
    if (storage_check_user(user) < 0 || storage_check_jid(jid) < 0)
        return -EINVAL;
    char *v = NULL;
    int r = db->ops->roster_delete(db, user, jid, &v);
    if (r == 0 && version != NULL)
        *version = v;
    else
        core_free(v);
    return r;
}

int storage_db_offline_push(storage_db_t *db, const char *user, const char *data, size_t len,
                            size_t limit)
{
    if (storage_check_user(user) < 0 || storage_check_value(data, len) < 0 || limit == 0)
        return -EINVAL;
    return db->ops->offline_push(db, user, data != NULL ? data : "", len, limit);
}

int storage_db_offline_get(storage_db_t *db, const char *user, storage_list_t *out)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    storage_list_t l = {0};
    int r = db->ops->offline_get(db, user, &l);
    if (r < 0) {
        storage_list_clear(&l);
        return r;
    }
    *out = l;
    return 0;
}

int storage_db_offline_delete(storage_db_t *db, const char *user, size_t count)
{
    if (storage_check_user(user) < 0)
        return -EINVAL;
    return db->ops->offline_delete(db, user, count);
}

static int check_doc(const char *user, const char *kind, const char *key)
{
    if (storage_check_user(user) < 0 || storage_check_kind(kind) < 0 ||
        (key != NULL && storage_check_key(key) < 0))
        return -EINVAL;
    return 0;
}

int storage_db_doc_get(storage_db_t *db, const char *user, const char *kind, const char *key,
                       storage_blob_t *out)
{
    if (key == NULL || check_doc(user, kind, key) < 0)
        return -EINVAL;
    storage_blob_t b = {0};
    int r = db->ops->doc_get(db, user, kind, key, &b);
    if (r < 0) {
        storage_blob_clear(&b);
        return r;
    }
    *out = b;
    return 0;
}

int storage_db_doc_put(storage_db_t *db, const char *user, const char *kind, const char *key,
                       const char *data, size_t len)
{
    if (key == NULL || check_doc(user, kind, key) < 0 || storage_check_value(data, len) < 0)
        return -EINVAL;
    return db->ops->doc_put(db, user, kind, key, data != NULL ? data : "", len);
}

int storage_db_doc_delete(storage_db_t *db, const char *user, const char *kind, const char *key)
{
    if (key == NULL || check_doc(user, kind, key) < 0)
        return -EINVAL;
    return db->ops->doc_delete(db, user, kind, key);
}

int storage_db_doc_list(storage_db_t *db, const char *user, const char *kind, storage_list_t *out)
{
    if (check_doc(user, kind, NULL) < 0)
        return -EINVAL;
    storage_list_t l = {0};
    int r = db->ops->doc_list(db, user, kind, &l);
    if (r < 0) {
        storage_list_clear(&l);
        return r;
    }
    *out = l;
    return 0;
}

int storage_db_doc_get_all(storage_db_t *db, const char *user, const char *kind,
                           storage_docs_t *out)
{
    storage_docs_t d = {0};
    int r = storage_db_doc_list(db, user, kind, &d.keys);
    if (r < 0)
        return r;
    size_t kept = 0;
    for (size_t i = 0; i < d.keys.count; i++) {
        storage_blob_t b = {0};
        r = db->ops->doc_get(db, user, kind, d.keys.items[i].data, &b);
        if (r == -ENOENT) {
            /* Removed since the listing: left out, as if listed a moment later. */
            core_free(d.keys.items[i].data);
            continue;
        }
        if (r < 0) {
            storage_blob_clear(&b);
            for (size_t j = i; j < d.keys.count; j++)
                core_free(d.keys.items[j].data);
            d.keys.count = kept;
            storage_docs_clear(&d);
            return r;
        }
        d.keys.items[kept++] = d.keys.items[i];
        storage_list_push(&d.values, b.data, b.len);
        storage_blob_clear(&b);
    }
    d.keys.count = kept;
    *out = d;
    return 0;
}

/* ---- documents of a service ---- */

int storage_db_svc_put(storage_db_t *db, const char *service, const char *kind, const char *key,
                       const char *data, size_t len)
{
    if (key == NULL || storage_check_svc_doc(service, kind, key) < 0 ||
        storage_check_svc_value(data, len) < 0)
        return -EINVAL;
    return db->ops->svc_put(db, service, kind, key, data != NULL ? data : "", len);
}

int storage_db_svc_get(storage_db_t *db, const char *service, const char *kind, const char *key,
                       char **data, size_t *len)
{
    if (key == NULL || storage_check_svc_doc(service, kind, key) < 0)
        return -EINVAL;
    storage_blob_t b = {0};
    int r = db->ops->svc_get(db, service, kind, key, &b);
    if (r < 0) {
        storage_blob_clear(&b);
        return r;
    }
    *data = b.data;
    *len = b.len;
    return 0;
}

int storage_db_svc_delete(storage_db_t *db, const char *service, const char *kind, const char *key)
{
    if (key == NULL || storage_check_svc_doc(service, kind, key) < 0)
        return -EINVAL;
    return db->ops->svc_delete(db, service, kind, key);
}

int storage_db_svc_get_all(storage_db_t *db, const char *service, const char *kind,
                           storage_docs_t *out)
{
    if (storage_check_svc_doc(service, kind, NULL) < 0)
        return -EINVAL;
    storage_docs_t d = {0};
    int r = db->ops->svc_get_all(db, service, kind, &d);
    if (r < 0) {
        storage_docs_clear(&d);
        return r;
    }
    *out = d;
    return 0;
}

/* ---- the message archive ---- */

int storage_db_archive_append(storage_db_t *db, const storage_archive_entry_t *entries, size_t n,
                              int *status)
{
    if (n > 0 && entries == NULL)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (storage_check_archive_entry(&entries[i]) < 0)
            return -EINVAL;
    if (n == 0)
        return 0;
    int *st = status != NULL ? status : core_malloc(n * sizeof(*st));
    memset(st, 0, n * sizeof(*st));
    int r = db->ops->archive_append(db, entries, n, st);
    if (r < 0)
        for (size_t i = 0; i < n; i++)
            st[i] = r;
    if (st != status)
        core_free(st);
    return r;
}

int storage_db_archive_query(storage_db_t *db, const char *owner, const storage_archive_query_t *q,
                             storage_archive_result_t *out)
{
    if (storage_check_archive_owner(owner) < 0 || storage_check_archive_query(q) < 0)
        return -EINVAL;
    storage_archive_result_t res = {0};
    int r = db->ops->archive_query(db, owner, q, &res);
    if (r < 0) {
        storage_archive_result_clear(&res);
        return r;
    }
    *out = res;
    return 0;
}

int storage_db_archive_expire(storage_db_t *db, const char *owner, int64_t before_us)
{
    if (storage_check_archive_owner(owner) < 0)
        return -EINVAL;
    return db->ops->archive_expire(db, owner, before_us);
}

int storage_db_archive_key_max(storage_db_t *db, int64_t *out)
{
    *out = 0;
    return db->ops->archive_key_max != NULL ? db->ops->archive_key_max(db, out) : 0;
}
