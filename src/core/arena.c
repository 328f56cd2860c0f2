/* SPDX-License-Identifier: MIT */
/* The bump allocator. */
#include "arena.h"

#include "alloc.h"

#include <stdalign.h>
#include <stdint.h>
#include <string.h>

struct core_arena_block {
    core_arena_block_t *next;
    alignas(max_align_t) char data[];
};

void core_arena_init(core_arena_t *a, size_t first_block)
{
    a->head = NULL;
    a->pos = NULL;
    a->end = NULL;
    a->next_size = first_block ? first_block : 512;
}

void *core_arena_alloc(core_arena_t *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    n = (n + align - 1) & ~(align - 1);
    if (a->pos == NULL || (size_t)(a->end - a->pos) < n) {
        size_t size = a->next_size;
        while (size < n)
            size *= 2;
        core_arena_block_t *b = core_malloc(sizeof(*b) + size);
        b->next = a->head;
        a->head = b;
        a->pos = b->data;
        a->end = b->data + size;
        if (a->next_size < 64 * 1024)
            a->next_size *= 2;
    }
    void *p = a->pos;
    a->pos += n;
    return p;
}

char *core_arena_strndup(core_arena_t *a, const char *s, size_t len)
{
    char *d = core_arena_alloc(a, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

void core_arena_free(core_arena_t *a)
{
    core_arena_block_t *b = a->head;
    while (b != NULL) {
        core_arena_block_t *next = b->next;
        core_free(b);
        b = next;
    }
    a->head = NULL;
    a->pos = NULL;
    a->end = NULL;
}
