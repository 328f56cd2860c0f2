/* SPDX-License-Identifier: MIT */
/* A hash map from byte-string keys to pointers: chained buckets, grown at load factor 1. */
#include "core/map.h"

#include "core/alloc.h"

#include <openssl/rand.h>

#include <stdint.h>
#include <string.h>

struct core_map_entry {
    core_map_entry_t *next;
    uint64_t hash;
    size_t len;
    void *value;
    char key[];
};

static uint64_t hash_key(const core_map_t *t, const char *key, size_t len)
{
    /*
     * FNV-1a from a per-map random start: keys are short names, some chosen by peers (user
     * JIDs), so the bucket a key lands in must not be predictable from outside.
     */
    uint64_t h = t->seed;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

void core_map_init(core_map_t *t)
{
    t->nbuckets = 16;
    t->buckets = core_calloc(t->nbuckets, sizeof(*t->buckets));
    t->count = 0;
    if (RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1)
        t->seed = (uint64_t)(uintptr_t)t;
    t->seed ^= 1469598103934665603ull;
}

static core_map_entry_t **find(const core_map_t *t, const char *key, size_t len, uint64_t h)
{
    core_map_entry_t **pp = &t->buckets[h & (t->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
    }
    return pp;
}

void *core_map_get(const core_map_t *t, const char *key, size_t len)
{
    core_map_entry_t *e = *find(t, key, len, hash_key(t, key, len));
    return e ? e->value : NULL;
}

static void grow(core_map_t *t)
{
    size_t n = t->nbuckets * 2;
    core_map_entry_t **b = core_calloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        core_map_entry_t *e = t->buckets[i];
        while (e != NULL) {
            core_map_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    core_free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void core_map_put(core_map_t *t, const char *key, size_t len, void *value)
{
    uint64_t h = hash_key(t, key, len);
    core_map_entry_t **pp = find(t, key, len, h);
    if (*pp != NULL) {
        (*pp)->value = value;
        return;
    }
    core_map_entry_t *e = core_malloc(sizeof(*e) + len + 1);
    e->next = NULL;
    e->hash = h;
    e->len = len;
    e->value = value;
    memcpy(e->key, key, len);
    e->key[len] = '\0';
    *pp = e;
    if (++t->count > t->nbuckets)
        grow(t);
}

void *core_map_del(core_map_t *t, const char *key, size_t len)
{
    core_map_entry_t **pp = find(t, key, len, hash_key(t, key, len));
    core_map_entry_t *e = *pp;
    if (e == NULL)
        return NULL;
    *pp = e->next;
    void *v = e->value;
    core_free(e);
    t->count--;
    return v;
}

void core_map_each(const core_map_t *t, void (*fn)(void *ud, const char *key, void *v), void *ud)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (core_map_entry_t *e = t->buckets[i]; e != NULL; e = e->next)
            fn(ud, e->key, e->value);
    }
}

void core_map_free(core_map_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        core_map_entry_t *e = t->buckets[i];
        while (e != NULL) {
            core_map_entry_t *next = e->next;
            core_free(e);
            e = next;
        }
    }
    core_free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}
