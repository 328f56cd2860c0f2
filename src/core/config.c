/* SPDX-License-Identifier: MIT */
/* The configuration file parser: sections and typed keys, every error naming file and line. */
#include "config.h"

#include "alloc.h"

#include <openssl/crypto.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* The file is written by the operator, but a typo (a log file given as --config) must not
 * make us read gigabytes, so both the file and each line are bounded. */
enum {
    CFG_FILE_MAX = 1024 * 1024,
    CFG_LINE_MAX = 4096,
    CFG_SECRET_MAX = 4096,
    CFG_MSG_MAX = 512,
};

#define KIB UINT64_C(1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)

/* The state of one load: where we are in the text and the section being filled. */
struct parse {
    core_cfg_t *cfg;
    const core_cfg_section_t *const *schema;
    size_t nschema;
    const char *name;
    char *err;
    size_t errlen;
    size_t cap; /* of cfg->items */
    bool open; /* cfg->items[cfg->count - 1] is the section being read */
    unsigned *seen; /* open section: line where each key was set, 0 if not yet */
};

__attribute__((format(printf, 3, 4))) static int fail(struct parse *p, unsigned line,
                                                      const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return -EINVAL;
    int n = line ? snprintf(p->err, p->errlen, "%s:%u: ", p->name, line)
                 : snprintf(p->err, p->errlen, "%s: ", p->name);
    if (n < 0 || (size_t)n >= p->errlen)
        return -EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static bool is_name_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.';
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *s, const char *end)
{
    while (s < end && is_blank(*s))
        s++;
    return s;
}

static void *field_of(void *data, const core_cfg_key_t *k)
{
    return (char *)data + k->offset;
}

static void list_clear(core_cfg_list_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        core_free(l->items[i]);
    core_free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* Frees what a key owns in data (strings and lists) and zeroes the field. */
static void field_clear(void *data, const core_cfg_key_t *k)
{
    if (k->type == CORE_CFG_STR) {
        char **s = field_of(data, k);
        core_free(*s);
        *s = NULL;
    } else if (k->type == CORE_CFG_LIST) {
        list_clear(field_of(data, k));
    }
}

static void item_clear(core_cfg_item_t *it)
{
    const core_cfg_section_t *sec = it->section;
    if (it->data != NULL) {
        for (size_t i = 0; i < sec->nkeys; i++)
            field_clear(it->data, &sec->keys[i]);
        if (sec->labelled)
            core_free(*(char **)((char *)it->data + sec->label_offset));
        core_free(it->data);
    }
    core_free(it->file);
}

/* Shows a size the way the file would write it, so a range can be copied into it. */
static void size_show(char *buf, size_t len, uint64_t v)
{
    if (v != 0 && v % GIB == 0)
        snprintf(buf, len, "%" PRIu64 "G", v / GIB);
    else if (v != 0 && v % MIB == 0)
        snprintf(buf, len, "%" PRIu64 "M", v / MIB);
    else if (v != 0 && v % KIB == 0)
        snprintf(buf, len, "%" PRIu64 "K", v / KIB);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static void msec_show(char *buf, size_t len, uint64_t v)
{
    if (v != 0 && v % 3600000 == 0)
        snprintf(buf, len, "%" PRIu64 "h", v / 3600000);
    else if (v != 0 && v % 60000 == 0)
        snprintf(buf, len, "%" PRIu64 "m", v / 60000);
    else if (v % 1000 == 0)
        snprintf(buf, len, "%" PRIu64 "s", v / 1000);
    else
        snprintf(buf, len, "%" PRIu64 "ms", v);
}

/* Reads the unsigned decimal at the start of s; returns the rest, or NULL on overflow. */
static const char *digits_read(const char *s, uint64_t *out)
{
    uint64_t n = 0;
    for (; isdigit((unsigned char)*s); s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (n > (UINT64_MAX - d) / 10)
            return NULL;
        n = n * 10 + d;
    }
    *out = n;
    return s;
}

/* Multiplier of a size suffix (case-insensitive); 0 if unknown. */
static uint64_t size_unit(const char *s)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1},     {"b", 1},     {"k", KIB}, {"kb", KIB}, {"kib", KIB}, {"m", MIB},
        {"mb", MIB}, {"mib", MIB}, {"g", GIB}, {"gb", GIB}, {"gib", GIB},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(s, units[i].name) == 0)
            return units[i].mult;
    return 0;
}

/* Milliseconds in a duration unit (case-insensitive); a bare number is seconds. 0 if unknown. */
static uint64_t msec_unit(const char *s)
{
    static const struct {
        const char *name;
        uint64_t mult;
    } units[] = {
        {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcasecmp(s, units[i].name) == 0)
            return units[i].mult;
    return 0;
}

/* A number with a unit, for size and msec. Returns 0, -EINVAL (syntax) or -ERANGE. */
static int scaled_parse(const char *v, uint64_t (*unit)(const char *), uint64_t *out)
{
    uint64_t n;
    if (!isdigit((unsigned char)v[0]))
        return -EINVAL;
    const char *s = digits_read(v, &n);
    if (s == NULL)
        return -ERANGE;
    while (is_blank(*s))
        s++;
    uint64_t mult = unit(s);
    if (mult == 0)
        return -EINVAL;
    if (n > UINT64_MAX / mult)
        return -ERANGE;
    *out = n * mult;
    return 0;
}

/* Whether an unsigned value lies in a key's [min, max], when the key has a range. */
static bool unsigned_in_range(const core_cfg_key_t *k, uint64_t v)
{
    if (k->max <= k->min)
        return true;
    if (k->max < 0)
        return false;
    if (k->min > 0 && v < (uint64_t)k->min)
        return false;
    return v <= (uint64_t)k->max;
}

static int list_parse(const char *v, core_cfg_list_t *out, char *msg, size_t msglen)
{
    const char *end = v + strlen(v);
    const char *s = skip_blanks(v, end);
    out->items = NULL;
    out->count = 0;
    if (s == end)
        return 0; /* "" is the empty list */
    size_t n = 1;
    for (const char *c = s; c < end; c++)
        n += *c == ',';
    out->items = core_calloc(n, sizeof *out->items);
    while (s <= end) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *stop = comma ? comma : end;
        const char *a = skip_blanks(s, stop);
        const char *b = stop;
        while (b > a && is_blank(b[-1]))
            b--;
        if (a == b) {
            list_clear(out);
            snprintf(msg, msglen, "has an empty item in its list (items are separated by ',')");
            return -EINVAL;
        }
        out->items[out->count++] = core_strndup(a, (size_t)(b - a));
        s = stop + 1;
    }
    return 0;
}

/* A string value; a relative path is joined to dir. Leading "./" are dropped on the way. */
static char *str_parse(const core_cfg_key_t *k, const char *dir, const char *v)
{
    if (!k->is_path || v[0] == '\0' || v[0] == '/')
        return core_strdup(v);
    while (v[0] == '.' && v[1] == '/')
        v += 2;
    if (strcmp(v, ".") == 0 || v[0] == '\0')
        return core_strdup(dir);
    size_t dl = strlen(dir), vl = strlen(v);
    bool slash = dl > 0 && dir[dl - 1] == '/';
    char *s = core_malloc(dl + vl + 2);
    memcpy(s, dir, dl);
    if (!slash)
        s[dl++] = '/';
    memcpy(s + dl, v, vl + 1);
    return s;
}

static int int_parse(const core_cfg_key_t *k, const char *v, int64_t *out, char *msg, size_t msglen)
{
    char *end;
    /* strtoll alone would also take leading blanks and a lone sign. */
    if (!(isdigit((unsigned char)v[0]) ||
          ((v[0] == '-' || v[0] == '+') && isdigit((unsigned char)v[1])))) {
        snprintf(msg, msglen, "expects an integer like 42, got '%.64s'", v);
        return -EINVAL;
    }
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (*end != '\0') {
        snprintf(msg, msglen, "expects an integer like 42, got '%.64s'", v);
        return -EINVAL;
    }
    if (errno == ERANGE) {
        snprintf(msg, msglen, "is out of range: must be between %" PRId64 " and %" PRId64,
                 INT64_MIN, INT64_MAX);
        return -EINVAL;
    }
    if (k->max > k->min && (n < k->min || n > k->max)) {
        snprintf(msg, msglen, "is out of range: must be between %" PRId64 " and %" PRId64, k->min,
                 k->max);
        return -EINVAL;
    }
    *out = (int64_t)n;
    return 0;
}

static int bool_parse(const char *v, bool *out, char *msg, size_t msglen)
{
    if (strcasecmp(v, "yes") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "on") == 0) {
        *out = true;
        return 0;
    }
    if (strcasecmp(v, "no") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "off") == 0) {
        *out = false;
        return 0;
    }
    snprintf(msg, msglen, "expects yes/no, true/false or on/off, got '%.64s'", v);
    return -EINVAL;
}

/* A size or a duration: the two differ only in units, words and how a bound is shown. */
static int scaled_value_parse(const core_cfg_key_t *k, const char *v, uint64_t *out, char *msg,
                              size_t msglen)
{
    bool size = k->type == CORE_CFG_SIZE;
    void (*show)(char *, size_t, uint64_t) = size ? size_show : msec_show;
    char lo[32], hi[32];
    uint64_t n = 0;
    int rc = scaled_parse(v, size ? size_unit : msec_unit, &n);
    if (rc == -EINVAL) {
        snprintf(msg, msglen, "expects %s, got '%.64s'",
                 size ? "a size like 64K (suffixes K, M, G)"
                      : "a duration like 250ms, 30s, 5m or 1h",
                 v);
        return rc;
    }
    if (rc == -ERANGE) {
        snprintf(msg, msglen, "is out of range: %s",
                 size ? "a size must fit in 64 bits" : "a duration must fit in 64 bits of ms");
        return -EINVAL;
    }
    if (!unsigned_in_range(k, n)) {
        show(lo, sizeof lo, k->min > 0 ? (uint64_t)k->min : 0);
        show(hi, sizeof hi, (uint64_t)k->max);
        snprintf(msg, msglen, "is out of range: must be between %s and %s", lo, hi);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

static int enum_parse(const core_cfg_key_t *k, const char *v, int *out, char *msg, size_t msglen)
{
    if (k->choices == NULL) {
        snprintf(msg, msglen, "is an enum without choices");
        return -EINVAL;
    }
    for (int i = 0; k->choices[i] != NULL; i++) {
        if (strcmp(v, k->choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    int n = snprintf(msg, msglen, "expects one of ");
    for (size_t i = 0; k->choices[i] != NULL && n >= 0 && (size_t)n < msglen; i++)
        n += snprintf(msg + n, msglen - (size_t)n, "%s%s", i ? ", " : "", k->choices[i]);
    if (n >= 0 && (size_t)n < msglen)
        snprintf(msg + n, msglen - (size_t)n, "; got '%.64s'", v);
    return -EINVAL;
}

/*
 * Parses the unquoted text v as key k's type and stores it in data, freeing what the field
 * held. On error leaves the field alone and writes a message to finish "key 'x' ...".
 */
static int value_parse(const core_cfg_key_t *k, const char *dir, const char *v, void *data,
                       char *msg, size_t msglen)
{
    void *f = field_of(data, k);
    switch (k->type) {
    case CORE_CFG_STR: {
        char *s = str_parse(k, dir, v);
        /* A file the server cannot read is reported here, at the key's own line. */
        if (k->must_exist && access(s, R_OK) != 0) {
            snprintf(msg, msglen, "names a file that cannot be read: %.200s: %s", s,
                     strerror(errno));
            core_free(s);
            return -EINVAL;
        }
        field_clear(data, k);
        *(char **)f = s;
        return 0;
    }
    case CORE_CFG_INT:
        return int_parse(k, v, f, msg, msglen);
    case CORE_CFG_BOOL:
        return bool_parse(v, f, msg, msglen);
    case CORE_CFG_SIZE:
    case CORE_CFG_MSEC:
        return scaled_value_parse(k, v, f, msg, msglen);
    case CORE_CFG_ENUM:
        return enum_parse(k, v, f, msg, msglen);
    case CORE_CFG_LIST: {
        core_cfg_list_t l;
        int rc = list_parse(v, &l, msg, msglen);
        if (rc < 0)
            return rc;
        field_clear(data, k);
        *(core_cfg_list_t *)f = l;
        return 0;
    }
    }
    snprintf(msg, msglen, "has an unknown type %d", (int)k->type);
    return -EINVAL;
}

/* Fills a fresh section struct with the schema's defaults. A bad default is our bug. */
static void defaults_apply(const core_cfg_section_t *sec, const char *dir, void *data)
{
    for (size_t i = 0; i < sec->nkeys; i++) {
        const core_cfg_key_t *k = &sec->keys[i];
        char msg[CFG_MSG_MAX];
        if (k->def == NULL)
            continue;
        if (value_parse(k, dir, k->def, data, msg, sizeof msg) < 0) {
            fprintf(stderr, "parley: bad default \"%s\" for [%s] %s: key '%s' %s\n", k->def,
                    sec->name, k->name, k->name, msg);
            abort();
        }
    }
}

/* Appends an item for sec with its defaults applied and returns it. */
static core_cfg_item_t *item_add(struct parse *p, const core_cfg_section_t *sec, unsigned line)
{
    core_cfg_t *cfg = p->cfg;
    if (cfg->count == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        cfg->items = core_realloc(cfg->items, p->cap * sizeof *cfg->items);
    }
    core_cfg_item_t *it = &cfg->items[cfg->count++];
    *it = (core_cfg_item_t){.section = sec, .line = line, .file = core_strdup(p->name)};
    it->data = core_calloc(1, sec->size);
    defaults_apply(sec, cfg->dir, it->data);
    return it;
}

static const char *item_label(const core_cfg_item_t *it)
{
    if (!it->section->labelled)
        return NULL;
    return *(char *const *)((const char *)it->data + it->section->label_offset);
}

static int check_run(struct parse *p, const core_cfg_item_t *it)
{
    const core_cfg_section_t *sec = it->section;
    if (sec->check == NULL)
        return 0;
    char msg[CFG_MSG_MAX] = "";
    int rc = sec->check(it->data, msg, sizeof msg);
    if (rc == 0)
        return 0;
    const char *label = item_label(it);
    if (label != NULL)
        fail(p, it->line, "[%s \"%s\"]: %s", sec->name, label, msg[0] ? msg : "is not valid");
    else
        fail(p, it->line, "[%s]: %s", sec->name, msg[0] ? msg : "is not valid");
    return rc < 0 ? rc : -EINVAL;
}

/* Ends the open section: every required key must have been set, then the section's check. */
static int section_close(struct parse *p)
{
    if (!p->open)
        return 0;
    p->open = false;
    core_cfg_item_t *it = &p->cfg->items[p->cfg->count - 1];
    const core_cfg_section_t *sec = it->section;
    unsigned *seen = p->seen;
    p->seen = NULL;
    for (size_t i = 0; i < sec->nkeys; i++) {
        if (sec->keys[i].required && seen[i] == 0) {
            core_free(seen);
            const char *label = item_label(it);
            if (label != NULL)
                return fail(p, it->line, "[%s \"%s\"] is missing required key '%s'", sec->name,
                            label, sec->keys[i].name);
            return fail(p, it->line, "[%s] is missing required key '%s'", sec->name,
                        sec->keys[i].name);
        }
    }
    core_free(seen);
    return check_run(p, it);
}

/*
 * Reads a quoted string starting at *s (on the opening quote) into out (at least
 * end - *s bytes). Moves *s past the closing quote.
 */
static int quoted_read(struct parse *p, unsigned line, const char **s, const char *end, char *out)
{
    const char *c = *s + 1;
    size_t n = 0;
    for (; c < end && *c != '"'; c++) {
        if (*c != '\\') {
            out[n++] = *c;
            continue;
        }
        if (++c == end)
            break;
        switch (*c) {
        case '"':
        case '\\':
            out[n++] = *c;
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 't':
            out[n++] = '\t';
            break;
        default:
            return fail(p, line, "unknown escape '\\%c' in quoted string (use \\\" \\\\ \\n \\t)",
                        isprint((unsigned char)*c) ? *c : '?');
        }
    }
    if (c >= end)
        return fail(p, line, "unterminated quoted string");
    out[n] = '\0';
    *s = c + 1;
    return 0;
}

static const core_cfg_section_t *section_find(const struct parse *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->nschema; i++)
        if (strlen(p->schema[i]->name) == len && memcmp(p->schema[i]->name, name, len) == 0)
            return p->schema[i];
    return NULL;
}

/* "[name]" or "[name "label"]", then nothing but a comment. */
static int header_parse(struct parse *p, unsigned line, const char *s, const char *end)
{
    char label[CFG_LINE_MAX + 1];
    bool has_label = false;
    s = skip_blanks(s + 1, end);
    const char *name = s;
    while (s < end && is_name_char(*s))
        s++;
    size_t nlen = (size_t)(s - name);
    if (nlen == 0)
        return fail(p, line, "expected a section name after '['");
    s = skip_blanks(s, end);
    if (s < end && *s == '"') {
        int rc = quoted_read(p, line, &s, end, label);
        if (rc < 0)
            return rc;
        has_label = true;
        s = skip_blanks(s, end);
    }
    if (s == end || *s != ']')
        return fail(p, line, "expected ']' to close the section header");
    s = skip_blanks(s + 1, end);
    if (s < end && *s != '#')
        return fail(p, line, "unexpected text after the section header");

    int rc = section_close(p);
    if (rc < 0)
        return rc;
    const core_cfg_section_t *sec = section_find(p, name, nlen);
    if (sec == NULL)
        return fail(p, line, "unknown section [%.*s]", (int)nlen, name);
    if (sec->labelled && !has_label)
        return fail(p, line, "section [%s] needs a label: [%s \"name\"]", sec->name, sec->name);
    if (!sec->labelled && has_label)
        return fail(p, line, "section [%s] takes no label", sec->name);
    if (has_label && label[0] == '\0')
        return fail(p, line, "section [%s] has an empty label", sec->name);
    for (size_t i = 0; i < p->cfg->count; i++) {
        const core_cfg_item_t *it = &p->cfg->items[i];
        if (it->section != sec)
            continue;
        if (!has_label)
            return fail(p, line, "duplicate section [%s] (first on line %u)", sec->name, it->line);
        if (strcmp(item_label(it), label) == 0)
            return fail(p, line, "duplicate section [%s \"%s\"] (first on line %u)", sec->name,
                        label, it->line);
    }
    core_cfg_item_t *it = item_add(p, sec, line);
    if (has_label)
        *(char **)((char *)it->data + sec->label_offset) = core_strdup(label);
    p->seen = core_calloc(sec->nkeys, sizeof *p->seen);
    p->open = true;
    return 0;
}

/* "key = value" with a bare or quoted value, then nothing but a comment. */
static int pair_parse(struct parse *p, unsigned line, const char *s, const char *end)
{
    char value[CFG_LINE_MAX + 1];
    char msg[CFG_MSG_MAX];
    const char *key = s;
    while (s < end && is_name_char(*s))
        s++;
    size_t klen = (size_t)(s - key);
    if (klen == 0)
        return fail(p, line, "expected 'key = value', a [section] or a # comment");
    s = skip_blanks(s, end);
    if (s == end || *s != '=')
        return fail(p, line, "expected '=' after '%.*s'", (int)klen, key);
    s = skip_blanks(s + 1, end);
    if (s < end && *s == '"') {
        int rc = quoted_read(p, line, &s, end, value);
        if (rc < 0)
            return rc;
        s = skip_blanks(s, end);
        if (s < end && *s != '#')
            return fail(p, line, "unexpected text after the quoted value of '%.*s'", (int)klen,
                        key);
    } else {
        const char *v = s;
        while (s < end && *s != '#')
            s++;
        while (s > v && is_blank(s[-1]))
            s--;
        if (s == v)
            return fail(p, line, "key '%.*s' has no value (write \"\" for an empty one)", (int)klen,
                        key);
        memcpy(value, v, (size_t)(s - v));
        value[s - v] = '\0';
    }

    if (!p->open)
        return fail(p, line, "key '%.*s' is outside any [section]", (int)klen, key);
    core_cfg_item_t *it = &p->cfg->items[p->cfg->count - 1];
    const core_cfg_section_t *sec = it->section;
    size_t i = 0;
    while (i < sec->nkeys &&
           !(strlen(sec->keys[i].name) == klen && memcmp(sec->keys[i].name, key, klen) == 0))
        i++;
    if (i == sec->nkeys)
        return fail(p, line, "unknown key '%.*s' in [%s]", (int)klen, key, sec->name);
    if (p->seen[i] != 0)
        return fail(p, line, "duplicate key '%s' (first set on line %u)", sec->keys[i].name,
                    p->seen[i]);
    p->seen[i] = line;
    if (value_parse(&sec->keys[i], p->cfg->dir, value, it->data, msg, sizeof msg) < 0)
        return fail(p, line, "key '%s' %s", sec->keys[i].name, msg);
    return 0;
}

static int line_parse(struct parse *p, unsigned line, const char *s, const char *end)
{
    if (memchr(s, '\0', (size_t)(end - s)) != NULL)
        return fail(p, line, "NUL byte in the file");
    s = skip_blanks(s, end);
    if (s == end || *s == '#')
        return 0;
    if (*s == '[')
        return header_parse(p, line, s, end);
    return pair_parse(p, line, s, end);
}

/* Unlabelled sections the file did not mention get their defaults, unless a key is required. */
static int absent_add(struct parse *p)
{
    for (size_t i = 0; i < p->nschema; i++) {
        const core_cfg_section_t *sec = p->schema[i];
        bool present = false;
        if (sec->labelled || sec->optional)
            continue;
        for (size_t j = 0; j < p->cfg->count && !present; j++)
            present = p->cfg->items[j].section == sec;
        if (present)
            continue;
        for (size_t k = 0; k < sec->nkeys; k++)
            if (sec->keys[k].required)
                return fail(p, 0, "missing section [%s] (it needs key '%s')", sec->name,
                            sec->keys[k].name);
        const core_cfg_item_t *it = item_add(p, sec, 0);
        int rc = check_run(p, it);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* The absolute folder of the file called name, for relative paths in it. */
static int dir_of(const char *name, char **out)
{
    const char *slash = strrchr(name, '/');
    const char *d = name;
    size_t dlen = slash ? (size_t)(slash - name) : 0;
    if (slash == name) {
        *out = core_strdup("/");
        return 0;
    }
    if (name[0] == '/') {
        *out = core_strndup(name, dlen);
        return 0;
    }
    /* Relative: anchor it to the current folder now, as the daemon may change folder later. */
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return -errno;
    while (dlen >= 2 && d[0] == '.' && d[1] == '/') {
        d += 2;
        dlen -= 2;
        while (dlen > 0 && d[0] == '/') {
            d++;
            dlen--;
        }
    }
    if (dlen == 0 || (dlen == 1 && d[0] == '.')) {
        *out = core_strdup(cwd);
        return 0;
    }
    size_t clen = strlen(cwd);
    bool root = clen == 1; /* cwd is "/" */
    char *s = core_malloc(clen + dlen + 2);
    memcpy(s, cwd, clen);
    if (!root)
        s[clen++] = '/';
    memcpy(s + clen, d, dlen);
    s[clen + dlen] = '\0';
    *out = s;
    return 0;
}

static size_t field_size(core_cfg_type_t type)
{
    switch (type) {
    case CORE_CFG_STR:
        return sizeof(char *);
    case CORE_CFG_INT:
        return sizeof(int64_t);
    case CORE_CFG_BOOL:
        return sizeof(bool);
    case CORE_CFG_SIZE:
    case CORE_CFG_MSEC:
        return sizeof(uint64_t);
    case CORE_CFG_ENUM:
        return sizeof(int);
    case CORE_CFG_LIST:
        return sizeof(core_cfg_list_t);
    }
    return SIZE_MAX;
}

/* The schema is our code, not input: a table that would write outside its struct aborts. */
static void schema_verify(const core_cfg_section_t *const *schema, size_t nschema)
{
    for (size_t i = 0; i < nschema; i++) {
        const core_cfg_section_t *sec = schema[i];
        bool ok = !sec->labelled || sec->label_offset + sizeof(char *) <= sec->size;
        for (size_t j = 0; j < i; j++)
            ok = ok && strcmp(schema[j]->name, sec->name) != 0;
        for (size_t k = 0; ok && k < sec->nkeys; k++) {
            const core_cfg_key_t *key = &sec->keys[k];
            size_t fs = field_size(key->type);
            ok = fs != SIZE_MAX && key->offset <= sec->size && fs <= sec->size - key->offset &&
                (key->type != CORE_CFG_ENUM || key->choices != NULL);
        }
        if (!ok) {
            fprintf(stderr, "parley: bad config schema for section [%s]\n", sec->name);
            abort();
        }
    }
}

int core_cfg_load_text(core_cfg_t *cfg, const char *name, const char *text, size_t len,
                       const core_cfg_section_t *const *schema, size_t nschema, char *err,
                       size_t errlen)
{
    struct parse p = {
        .cfg = cfg,
        .schema = schema,
        .nschema = nschema,
        .name = name,
        .err = err,
        .errlen = errlen,
    };
    int rc;
    schema_verify(schema, nschema);
    *cfg = (core_cfg_t){0};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > CFG_FILE_MAX) {
        fail(&p, 0, "too large (more than %d bytes)", CFG_FILE_MAX);
        rc = -EFBIG;
        goto fail;
    }
    rc = dir_of(name, &cfg->dir);
    if (rc < 0) {
        fail(&p, 0, "cannot find its folder: %s", strerror(-rc));
        goto fail;
    }
    cfg->path = core_strdup(name);

    const char *end = text + len;
    const char *s = text;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3; /* a UTF-8 byte order mark some editors write */
    for (unsigned line = 1; s < end; line++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl ? nl : end;
        const char *next = nl ? nl + 1 : end;
        if (eol > s && eol[-1] == '\r')
            eol--;
        if (eol - s > CFG_LINE_MAX) {
            rc = fail(&p, line, "line too long (more than %d bytes)", CFG_LINE_MAX);
            goto fail;
        }
        rc = line_parse(&p, line, s, eol);
        if (rc < 0)
            goto fail;
        s = next;
    }
    rc = section_close(&p);
    if (rc < 0)
        goto fail;
    rc = absent_add(&p);
    if (rc < 0)
        goto fail;
    return 0;

fail:
    core_free(p.seen);
    core_cfg_free(cfg);
    return rc;
}

/* Reads at most max bytes of path into a new buffer; -EFBIG if there is more. */
static int file_read(const char *path, size_t max, char **out, size_t *outlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* A small file (a secret) is read into one buffer, so no copy of it is left behind by
     * realloc; a big one grows as it comes. */
    size_t cap = max < 65536 ? max + 1 : 4096, len = 0;
    char *buf = core_malloc(cap);
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap > max) {
                rc = -EFBIG;
                goto fail;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            buf = core_realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = -EFBIG;
            goto fail;
        }
    }
    close(fd);
    *out = buf;
    *outlen = len;
    return 0;

fail:
    OPENSSL_cleanse(buf, cap);
    core_free(buf);
    close(fd);
    return rc;
}

int core_cfg_load(core_cfg_t *cfg, const char *path, const core_cfg_section_t *const *schema,
                  size_t nschema, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    *cfg = (core_cfg_t){0};
    int rc = file_read(path, CFG_FILE_MAX, &text, &len);
    if (rc == -EFBIG) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: too large (more than %d bytes)", path, CFG_FILE_MAX);
        return rc;
    }
    if (rc < 0) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-rc));
        return rc;
    }
    rc = core_cfg_load_text(cfg, path, text, len, schema, nschema, err, errlen);
    core_free(text);
    return rc;
}

void *core_cfg_get(const core_cfg_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->count; i++) {
        const core_cfg_item_t *it = &cfg->items[i];
        if (!it->section->labelled && strcmp(it->section->name, name) == 0)
            return it->data;
    }
    return NULL;
}

void *core_cfg_next(const core_cfg_t *cfg, const char *name, size_t *pos)
{
    for (size_t i = *pos; i < cfg->count; i++) {
        const core_cfg_item_t *it = &cfg->items[i];
        if (it->section->labelled && strcmp(it->section->name, name) == 0) {
            *pos = i + 1;
            return it->data;
        }
    }
    *pos = cfg->count;
    return NULL;
}

void core_cfg_free(core_cfg_t *cfg)
{
    for (size_t i = 0; i < cfg->count; i++)
        item_clear(&cfg->items[i]);
    core_free(cfg->items);
    core_free(cfg->path);
    core_free(cfg->dir);
    *cfg = (core_cfg_t){0};
}

int core_cfg_read_secret(const char *path, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = file_read(path, CFG_SECRET_MAX, &buf, &len);
    if (rc < 0)
        return rc;
    size_t keep = len;
    while (keep > 0 && isspace((unsigned char)buf[keep - 1]))
        keep--;
    if (keep == 0 || memchr(buf, '\0', keep) != NULL) {
        rc = -EINVAL;
    } else {
        *out = core_strndup(buf, keep);
    }
    OPENSSL_cleanse(buf, len);
    core_free(buf);
    return rc;
}
