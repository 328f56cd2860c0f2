/* SPDX-License-Identifier: MIT */
/* The routing table's hash map: chained buckets, grown at load factor 1. */
#include "router/internal.h"

#include "core/alloc.h"

#include <stdint.h>
#include <string.h>

struct router_table_entry {
    router_table_entry_t *next;
    uint64_t hash;
    size_t len;
    void *value;
    char key[];
};

static uint64_t hash_key(const char *key, size_t len)
{
    /* FNV-1a: short domain names, no adversarial keys (only configured or bound names). */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)key[i];
        h *= 1099511628211ull;
    }
    return h;
}

void router_table_init(router_table_t *t)
{
    t->nbuckets = 16;
    t->buckets = core_calloc(t->nbuckets, sizeof(*t->buckets));
    t->count = 0;
}

static router_table_entry_t **find(const router_table_t *t, const char *key, size_t len, uint64_t h)
{
    router_table_entry_t **pp = &t->buckets[h & (t->nbuckets - 1)];
    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            return pp;
    }
    return pp;
}

void *router_table_get(const router_table_t *t, const char *key, size_t len)
{
    router_table_entry_t *e = *find(t, key, len, hash_key(key, len));
    return e ? e->value : NULL;
}

static void grow(router_table_t *t)
{
    size_t n = t->nbuckets * 2;
    router_table_entry_t **b = core_calloc(n, sizeof(*b));
    for (size_t i = 0; i < t->nbuckets; i++) {
        router_table_entry_t *e = t->buckets[i];
        while (e != NULL) {
            router_table_entry_t *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    core_free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

void router_table_put(router_table_t *t, const char *key, size_t len, void *value)
{
    uint64_t h = hash_key(key, len);
    router_table_entry_t **pp = find(t, key, len, h);
    if (*pp != NULL) {
        (*pp)->value = value;
        return;
    }
    router_table_entry_t *e = core_malloc(sizeof(*e) + len + 1);
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

void *router_table_del(router_table_t *t, const char *key, size_t len)
{
    router_table_entry_t **pp = find(t, key, len, hash_key(key, len));
    router_table_entry_t *e = *pp;
    if (e == NULL)
        return NULL;
    *pp = e->next;
    void *v = e->value;
    core_free(e);
    t->count--;
    return v;
}

void router_table_each(const router_table_t *t, void (*fn)(void *ud, const char *key, void *v),
                       void *ud)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (router_table_entry_t *e = t->buckets[i]; e != NULL; e = e->next)
            fn(ud, e->key, e->value);
    }
}

void router_table_free(router_table_t *t)
{
    for (size_t i = 0; i < t->nbuckets; i++) {
        router_table_entry_t *e = t->buckets[i];
        while (e != NULL) {
            router_table_entry_t *next = e->next;
            core_free(e);
            e = next;
        }
    }
    core_free(t->buckets);
    t->buckets = NULL;
    t->nbuckets = 0;
    t->count = 0;
}
