/* SPDX-License-Identifier: MIT */
/* A hash map from byte-string keys (copied) to borrowed pointers. */
#ifndef PARLEY_CORE_MAP_H
#define PARLEY_CORE_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct core_map_entry core_map_entry_t;

typedef struct core_map {
    core_map_entry_t **buckets;
    size_t nbuckets;
    size_t count;
    uint64_t seed;
} core_map_t;

void core_map_init(core_map_t *t);
/* The value stored for key[0..len), or NULL. */
void *core_map_get(const core_map_t *t, const char *key, size_t len);
/* Stores value (replacing any); the key is copied. */
void core_map_put(core_map_t *t, const char *key, size_t len, void *value);
/* Removes key; returns its value or NULL. */
void *core_map_del(core_map_t *t, const char *key, size_t len);
/* Calls fn for each entry (the map must not change meanwhile). */
void core_map_each(const core_map_t *t, void (*fn)(void *ud, const char *key, void *v), void *ud);
/* Frees the entries (not the values). */
void core_map_free(core_map_t *t);

#endif
