/* SPDX-License-Identifier: MIT */
/* The one heap wrapper: every allocation in Parley goes through it. */
#ifndef PARLEY_CORE_ALLOC_H
#define PARLEY_CORE_ALLOC_H

#include <stddef.h>

/*
 * These never return NULL: on failure they log and abort, so callers do not check.
 * What a peer can make us allocate is bounded elsewhere (stanza and queue limits).
 * They count the bytes in use, readable with core_alloc_bytes().
 */
void *core_malloc(size_t n);
void *core_calloc(size_t count, size_t size);
void *core_realloc(void *p, size_t n);
void core_free(void *p);

/* A new NUL-terminated copy of s[0..len). */
char *core_strndup(const char *s, size_t len);
char *core_strdup(const char *s);

/* Bytes currently allocated through this wrapper by the whole process. */
size_t core_alloc_bytes(void);

/*
 * Hands free heap pages back to the system. Freed memory otherwise stays in the process
 * (and in its RSS) for the allocator to reuse; worth it after many connections went quiet
 * and gave their buffers back. Walks the heap: call it now and then, not per event.
 */
void core_alloc_trim(void);

#endif
