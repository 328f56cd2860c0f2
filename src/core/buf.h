/* SPDX-License-Identifier: MIT */
/* A growable byte buffer, for building output (serialised XML, log lines). */
#ifndef PARLEY_CORE_BUF_H
#define PARLEY_CORE_BUF_H

#include <stddef.h>

/* A view of bytes someone else owns (borrowed): one piece of a message written in parts. */
typedef struct core_span {
    const char *data;
    size_t len;
} core_span_t;

typedef struct core_buf {
    char *data; /* owned; NULL until the first append */
    size_t len;
    size_t cap;
} core_buf_t;

/* Appends n bytes, growing as needed. */
void core_buf_append(core_buf_t *b, const void *p, size_t n);
void core_buf_append_str(core_buf_t *b, const char *s);
/* Ensures room for n more bytes and returns where they go; commit them with core_buf_commit. */
char *core_buf_reserve(core_buf_t *b, size_t n);
void core_buf_commit(core_buf_t *b, size_t n);
/* Drops the first n bytes, keeping the rest. */
void core_buf_consume(core_buf_t *b, size_t n);
/* Empties the buffer; frees its memory too, so an idle owner holds nothing. */
void core_buf_release(core_buf_t *b);
/* Hands the bytes to the caller (who frees them with core_free) and empties the buffer. */
char *core_buf_steal(core_buf_t *b, size_t *len);

#endif
