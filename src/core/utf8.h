/* SPDX-License-Identifier: MIT */
/* Strict UTF-8 decoding (RFC 3629), for the parsers that check text before preparing it. */
#ifndef PARLEY_CORE_UTF8_H
#define PARLEY_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Decodes the code point at s[*i] (of len bytes) into *cp and advances *i. Returns false,
 * leaving *i alone, for anything RFC 3629 forbids (overlong forms, surrogates, values over
 * U+10FFFF, truncated sequences) and for NUL, which no XMPP text may hold.
 */
bool core_utf8_next(const char *s, size_t len, size_t *i, uint32_t *cp);

/* True if all of s[0..len) decodes with core_utf8_next. */
bool core_utf8_valid(const char *s, size_t len);

#endif
