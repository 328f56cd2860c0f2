/* SPDX-License-Identifier: MIT */
/* The files backend's text formats: safe file names, escaped fields, line records. */
#include "storage/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hex[] = "0123456789ABCDEF";

/*
 * Bytes kept as they are in a file name. Everything else is %XX, which keeps names portable
 * (no case, no shell or Windows metacharacters, no Unicode normalisation by the filesystem)
 * and makes '/', NUL, "." and ".." impossible. A leading '.' is encoded too, so names of our
 * own (".tmp", ".deleted-...") never collide with an encoded one.
 */
static bool name_plain(unsigned char c, size_t pos)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
        (c == '.' && pos != 0);
}

int storage_files_name_encode(const char *s, char out[STORAGE_FILES_NAME_MAX + 1])
{
    size_t n = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (name_plain(c, i)) {
            if (n + 1 > STORAGE_FILES_NAME_MAX)
                return -ENAMETOOLONG;
            out[n++] = (char)c;
        } else {
            if (n + 3 > STORAGE_FILES_NAME_MAX)
                return -ENAMETOOLONG;
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n == 0)
        return -EINVAL;
    out[n] = '\0';
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int storage_files_name_decode(const char *enc, char **out)
{
    size_t len = strlen(enc);
    char *s = core_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (enc[i] != '%') {
            s[n++] = enc[i];
            continue;
        }
        if (i + 2 >= len)
            goto fail;
        int hi = hexval(enc[i + 1]);
        int lo = hexval(enc[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto fail;
        s[n++] = (char)(hi << 4 | lo);
        i += 2;
    }
    s[n] = '\0';
    /* Only the canonical spelling names a thing: "%61" is not "a". */
    char again[STORAGE_FILES_NAME_MAX + 1];
    if (storage_files_name_encode(s, again) < 0 || strcmp(again, enc) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    core_free(s);
    return -EINVAL;
}

/* ---- escaped fields ---- */

void storage_files_escape(core_buf_t *b, const char *s, size_t len)
{
    size_t run = 0; /* bytes at s[i - run .. i) still to copy as they are */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f && c != '\\') {
            run++;
            continue;
        }
        if (run > 0)
            core_buf_append(b, s + i - run, run);
        run = 0;
        char e[4] = {'\\', 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '\\':
            e[1] = '\\';
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\t':
            e[1] = 't';
            break;
        case '\r':
            e[1] = 'r';
            break;
        default:
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            n = 4;
        }
        core_buf_append(b, e, n);
    }
    if (run > 0)
        core_buf_append(b, s + len - run, run);
}

int storage_files_unescape(const char *s, size_t len, char **out, size_t *out_len)
{
    char *d = core_malloc(len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\t' || c == '\n')
            goto fail;
        if (c != '\\') {
            d[n++] = c;
            continue;
        }
        if (++i == len)
            goto fail;
        switch (s[i]) {
        case '\\':
            d[n++] = '\\';
            break;
        case 'n':
            d[n++] = '\n';
            break;
        case 't':
            d[n++] = '\t';
            break;
        case 'r':
            d[n++] = '\r';
            break;
        case 'x': {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                goto fail;
            d[n++] = (char)(hi << 4 | lo);
            i += 2;
            break;
        }
        default:
            goto fail;
        }
    }
    d[n] = '\0';
    *out = d;
    if (out_len != NULL)
        *out_len = n;
    return 0;
fail:
    core_free(d);
    return -EBADMSG;
}

/* ---- line records ---- */

bool storage_text_next_line(storage_text_reader_t *r, const char **line, size_t *len)
{
    while (r->p < r->end) {
        const char *start = r->p;
        const char *nl = memchr(start, '\n', (size_t)(r->end - start));
        const char *stop = nl != NULL ? nl : r->end;
        r->p = nl != NULL ? nl + 1 : r->end;
        r->lineno++;
        /* A CR before the newline comes from an editor: values escape their own CRs. */
        if (stop > start && stop[-1] == '\r')
            stop--;
        if (stop == start || start[0] == '#')
            continue;
        *line = start;
        *len = (size_t)(stop - start);
        return true;
    }
    return false;
}

bool storage_text_next_field(const char **cur, const char *end, const char **field, size_t *len)
{
    if (*cur == NULL || *cur > end)
        return false;
    const char *tab = memchr(*cur, '\t', (size_t)(end - *cur));
    const char *stop = tab != NULL ? tab : end;
    *field = *cur;
    *len = (size_t)(stop - *cur);
    *cur = tab != NULL ? tab + 1 : NULL;
    return true;
}

int storage_text_header(storage_text_reader_t *r, const char *kind)
{
    const char *line;
    size_t len;
    char want[64];
    int n = snprintf(want, sizeof(want), "parley %s ", kind);
    if (!storage_text_next_line(r, &line, &len))
        return -EBADMSG;
    if (len < (size_t)n || memcmp(line, want, (size_t)n) != 0)
        return -EBADMSG;
    /* Format 1 is the only one so far; a later number is a newer Parley's file. */
    if (len == (size_t)n + 1 && line[n] == '1')
        return 0;
    return -EPROTONOSUPPORT;
}

bool storage_text_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    *out = v;
    return true;
}
