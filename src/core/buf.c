/* SPDX-License-Identifier: MIT */
/* The growable byte buffer. */
#include "buf.h"

#include "alloc.h"

#include <string.h>

char *core_buf_reserve(core_buf_t *b, size_t n)
{
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        b->data = core_realloc(b->data, cap);
        b->cap = cap;
    }
    return b->data + b->len;
}

void core_buf_commit(core_buf_t *b, size_t n)
{
    b->len += n;
}

void core_buf_append(core_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    memcpy(core_buf_reserve(b, n), p, n);
    b->len += n;
}

void core_buf_append_str(core_buf_t *b, const char *s)
{
    core_buf_append(b, s, strlen(s));
}

void core_buf_consume(core_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void core_buf_release(core_buf_t *b)
{
    core_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *core_buf_steal(core_buf_t *b, size_t *len)
{
    char *d = b->data;
    *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return d;
}
