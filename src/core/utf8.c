/* SPDX-License-Identifier: MIT */
/* Strict UTF-8 decoding. */
#include "utf8.h"

bool core_utf8_next(const char *s, size_t len, size_t *i, uint32_t *cp)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = len - *i;
    uint32_t c = p[0];
    uint32_t min;
    size_t n;

    if (c < 0x80) {
        if (c == 0)
            return false;
        *cp = c;
        *i += 1;
        return true;
    }
    if ((c & 0xE0) == 0xC0) {
        n = 2;
        c &= 0x1F;
        min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3;
        c &= 0x0F;
        min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4;
        c &= 0x07;
        min = 0x10000;
    } else {
        return false;
    }
    if (left < n)
        return false;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return false;
        c = (c << 6) | (p[k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return false;
    *cp = c;
    *i += n;
    return true;
}

bool core_utf8_valid(const char *s, size_t len)
{
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        if (!core_utf8_next(s, len, &i, &cp))
            return false;
    }
    return true;
}
