/* SPDX-License-Identifier: MIT */
/* A bump allocator for data with one clear end (one stanza tree, one parse). */
#ifndef PARLEY_CORE_ARENA_H
#define PARLEY_CORE_ARENA_H

#include <stddef.h>

typedef struct core_arena_block core_arena_block_t;

typedef struct core_arena {
    core_arena_block_t *head; /* owned chain, newest first */
    char *pos;
    char *end;
    size_t next_size; /* size of the next block to allocate */
} core_arena_t;

/* An empty arena; the first block is allocated on first use. */
void core_arena_init(core_arena_t *a, size_t first_block);
/* Memory aligned for any type, valid until core_arena_free. Never NULL. */
void *core_arena_alloc(core_arena_t *a, size_t n);
/* A NUL-terminated copy of s[0..len) in the arena. */
char *core_arena_strndup(core_arena_t *a, const char *s, size_t len);
/* Frees every block. */
void core_arena_free(core_arena_t *a);

#endif
