/* SPDX-License-Identifier: MIT */
/* The heap wrapper: counts bytes and aborts on exhaustion. */
#include "alloc.h"

#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The one process-wide counter in Parley. It is a statistic, not state: nothing decides
 * anything by it, and it is atomic because the libuv worker pool allocates too.
 */
static atomic_size_t bytes_in_use;

static void *checked(void *p, size_t n)
{
    if (p == NULL && n != 0) {
        fprintf(stderr, "parley: out of memory allocating %zu bytes\n", n);
        abort();
    }
    if (p != NULL)
        atomic_fetch_add_explicit(&bytes_in_use, malloc_usable_size(p), memory_order_relaxed);
    return p;
}

void *core_malloc(size_t n)
{
    return checked(malloc(n ? n : 1), n ? n : 1);
}

void *core_calloc(size_t count, size_t size)
{
    return checked(calloc(count ? count : 1, size ? size : 1), 1);
}

void *core_realloc(void *p, size_t n)
{
    if (p == NULL)
        return core_malloc(n);
    size_t old = malloc_usable_size(p);
    void *q = realloc(p, n ? n : 1);
    if (q == NULL) {
        fprintf(stderr, "parley: out of memory reallocating %zu bytes\n", n);
        abort();
    }
    atomic_fetch_sub_explicit(&bytes_in_use, old, memory_order_relaxed);
    atomic_fetch_add_explicit(&bytes_in_use, malloc_usable_size(q), memory_order_relaxed);
    return q;
}

void core_free(void *p)
{
    if (p == NULL)
        return;
    atomic_fetch_sub_explicit(&bytes_in_use, malloc_usable_size(p), memory_order_relaxed);
    free(p);
}

char *core_strndup(const char *s, size_t len)
{
    char *d = core_malloc(len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *core_strdup(const char *s)
{
    return core_strndup(s, strlen(s));
}

void core_alloc_trim(void)
{
    malloc_trim(0);
}

size_t core_alloc_bytes(void)
{
    return atomic_load_explicit(&bytes_in_use, memory_order_relaxed);
}
