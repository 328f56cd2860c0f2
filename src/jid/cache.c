/* SPDX-License-Identifier: MIT */
/* A bounded cache from raw JID parts to their preparations, with least-recently-used eviction. */
#include "jid/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/*
 * Chained hash table plus an LRU list. A chain never grows past CHAIN_MAX entries, so even
 * inputs built to collide in one bucket cost at most CHAIN_MAX comparisons per lookup.
 */
#define CHAIN_MAX 8
#define ENTRIES_MIN 1
#define ENTRIES_MAX ((size_t)1 << 22)

struct cache_entry {
    struct cache_entry *chain; /* next in the same bucket */
    struct cache_entry *newer; /* LRU list neighbours */
    struct cache_entry *older;
    uint64_t hash;
    uint16_t key_len; /* <= JID_CACHE_KEY_MAX */
    uint16_t val_len; /* <= JID_PART_MAX */
    uint8_t part;
    bool valid;
    char data[]; /* key bytes, then the value and a NUL */
};

struct jid_cache {
    struct cache_entry **buckets;
    size_t mask;
    size_t count;
    size_t max;
    struct cache_entry *newest;
    struct cache_entry *oldest;
    uint64_t seed;
    uint64_t hits;
    uint64_t misses;
    char scratch[JID_PART_MAX + 1];
};

/* FNV-1a (64-bit), with a per-cache seed so bucket positions are not predictable. */
static uint64_t hash_key(uint64_t seed, enum jid_part part, const char *in, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u ^ seed;
    h = (h ^ (uint8_t)part) * 0x100000001b3u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)in[i]) * 0x100000001b3u;
    return h;
}

static size_t bucket_of(const jid_cache_t *c, uint64_t h)
{
    return (size_t)(h ^ (h >> 29)) & c->mask;
}

static void lru_unlink(jid_cache_t *c, struct cache_entry *e)
{
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push_newest(jid_cache_t *c, struct cache_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest != NULL)
        c->newest->newer = e;
    c->newest = e;
    if (c->oldest == NULL)
        c->oldest = e;
}

static void entry_remove(jid_cache_t *c, struct cache_entry *e)
{
    struct cache_entry **pp = &c->buckets[bucket_of(c, e->hash)];
    while (*pp != e) {
        assert(*pp != NULL);
        pp = &(*pp)->chain;
    }
    *pp = e->chain;
    lru_unlink(c, e);
    c->count--;
    core_free(e);
}

jid_cache_t *jid_cache_new(size_t max_entries)
{
    jid_cache_t *c = core_calloc(1, sizeof(*c));
    if (max_entries < ENTRIES_MIN)
        max_entries = ENTRIES_MIN;
    if (max_entries > ENTRIES_MAX)
        max_entries = ENTRIES_MAX;
    size_t nbuckets = 1;
    while (nbuckets < max_entries)
        nbuckets <<= 1;
    c->buckets = core_calloc(nbuckets, sizeof(*c->buckets));
    c->mask = nbuckets - 1;
    c->max = max_entries;
    /* The seed only spreads keys; a weak one (no entropy yet) is still correct. */
    if (getrandom(&c->seed, sizeof(c->seed), GRND_NONBLOCK) != (ssize_t)sizeof(c->seed))
        c->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)c;
    return c;
}

void jid_cache_free(jid_cache_t *c)
{
    if (c == NULL)
        return;
    struct cache_entry *e = c->newest;
    while (e != NULL) {
        struct cache_entry *next = e->older;
        core_free(e);
        e = next;
    }
    core_free(c->buckets);
    core_free(c);
}

void jid_cache_stats(const jid_cache_t *c, uint64_t *hits, uint64_t *misses)
{
    if (hits != NULL)
        *hits = c->hits;
    if (misses != NULL)
        *misses = c->misses;
}

bool jid_cache_get(jid_cache_t *c, enum jid_part part, const char *in, size_t len, const char **out,
                   size_t *out_len, int *rc)
{
    if (len <= JID_CACHE_KEY_MAX) {
        uint64_t h = hash_key(c->seed, part, in, len);
        for (struct cache_entry *e = c->buckets[bucket_of(c, h)]; e != NULL; e = e->chain) {
            if (e->hash != h || e->part != part || e->key_len != len ||
                memcmp(e->data, in, len) != 0)
                continue;
            c->hits++;
            lru_unlink(c, e);
            lru_push_newest(c, e);
            if (!e->valid) {
                *rc = -EINVAL;
                return true;
            }
            *out = e->data + e->key_len;
            *out_len = e->val_len;
            *rc = 0;
            return true;
        }
    }
    c->misses++;
    return false;
}

const char *jid_cache_put(jid_cache_t *c, enum jid_part part, const char *in, size_t len,
                          const char *out, size_t out_len)
{
    if (len > JID_CACHE_KEY_MAX)
        return NULL;
    assert(out == NULL || out_len <= JID_PART_MAX);

    uint64_t h = hash_key(c->seed, part, in, len);
    size_t b = bucket_of(c, h);
    size_t depth = 0;
    struct cache_entry *last = NULL;
    for (struct cache_entry *e = c->buckets[b]; e != NULL; e = e->chain) {
        depth++;
        last = e;
    }
    if (depth >= CHAIN_MAX)
        entry_remove(c, last);
    else if (c->count >= c->max)
        entry_remove(c, c->oldest);

    size_t vlen = out != NULL ? out_len : 0;
    struct cache_entry *e = core_malloc(sizeof(*e) + len + vlen + 1);
    e->hash = h;
    e->key_len = (uint16_t)len;
    e->val_len = (uint16_t)vlen;
    e->part = (uint8_t)part;
    e->valid = out != NULL;
    memcpy(e->data, in, len);
    if (vlen != 0)
        memcpy(e->data + len, out, vlen);
    e->data[len + vlen] = '\0';
    /* Read the bucket head only now: the eviction above may have changed it. */
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    lru_push_newest(c, e);
    c->count++;
    return e->valid ? e->data + len : NULL;
}

char *jid_cache_scratch(jid_cache_t *c)
{
    return c->scratch;
}

size_t jid_cache_count(const jid_cache_t *c)
{
    return c->count;
}

size_t jid_cache_bucket(const jid_cache_t *c, enum jid_part part, const char *in, size_t len)
{
    return bucket_of(c, hash_key(c->seed, part, in, len));
}
