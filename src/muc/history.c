/* SPDX-License-Identifier: MIT */
/* Discussion history (XEP-0045 §7.2.15): a ring of the last messages and what a join gets. */
#include "muc/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const muc_hist_entry_t *muc_history_at(const muc_history_t *h, size_t i)
{
    return &h->v[(h->head + i) % h->cap];
}

static void drop_oldest(muc_history_t *h)
{
    xml_stanza_unref(h->v[h->head].st);
    h->v[h->head].st = NULL;
    h->head = (h->head + 1) % h->cap;
    h->len--;
}

void muc_history_trim(muc_history_t *h, size_t keep)
{
    while (h->len > keep)
        drop_oldest(h);
}

/* Characters (code points) of the serialised stanza, as §7.2.15 counts maxchars. */
static size_t chars_of(xml_stanza_t *st)
{
    size_t len, n = 0;
    const char *b = xml_stanza_bytes(st, &len);
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)b[i] & 0xC0) != 0x80;
    return n;
}

void muc_history_add(muc_history_t *h, xml_stanza_t *st, int64_t stamp, size_t keep)
{
    if (keep == 0) {
        muc_history_clear(h);
        return;
    }
    if (keep > MUC_HISTORY_CAP)
        keep = MUC_HISTORY_CAP;
    muc_history_trim(h, keep - 1);
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 8;
        if (cap > MUC_HISTORY_CAP)
            cap = MUC_HISTORY_CAP;
        muc_hist_entry_t *v = core_calloc(cap, sizeof(*v));
        for (size_t i = 0; i < h->len; i++)
            v[i] = *muc_history_at(h, i);
        core_free(h->v);
        h->v = v;
        h->cap = cap;
        h->head = 0;
    }
    muc_hist_entry_t *e = &h->v[(h->head + h->len) % h->cap];
    e->st = xml_stanza_ref(st);
    e->stamp = stamp;
    e->chars = chars_of(st);
    h->len++;
}

void muc_history_clear(muc_history_t *h)
{
    while (h->len > 0)
        drop_oldest(h);
    core_free(h->v);
    memset(h, 0, sizeof(*h));
}

/*
 * §7.2.15: "the smallest amount of traffic that meets any combination of the above
 * criteria", always whole stanzas and always the newest: walk back from the newest and stop
 * at the first entry any limit excludes.
 */
size_t muc_history_select(const muc_history_t *h, const muc_hist_request_t *req, int64_t room_max,
                          int64_t now)
{
    size_t start = h->len;
    int64_t chars = 0;
    int64_t count = 0;
    while (start > 0) {
        const muc_hist_entry_t *e = muc_history_at(h, start - 1);
        if (count >= room_max)
            break;
        if (req->maxstanzas >= 0 && count >= req->maxstanzas)
            break;
        if (req->seconds >= 0 && e->stamp < now - req->seconds)
            break;
        if (req->since >= 0 && e->stamp < req->since)
            break;
        if (req->maxchars >= 0 && chars + (int64_t)e->chars > req->maxchars)
            break;
        chars += (int64_t)e->chars;
        count++;
        start--;
    }
    return start;
}

static int attr_int(const xml_node_t *n, const char *name, int64_t *out)
{
    const char *v = xml_node_attr(n, name);
    *out = -1;
    if (v == NULL)
        return 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || x < 0)
        return -EINVAL;
    *out = x;
    return 0;
}

int muc_history_request_parse(const xml_node_t *history, muc_hist_request_t *out)
{
    out->maxchars = out->maxstanzas = out->seconds = out->since = -1;
    if (history == NULL)
        return 0;
    if (attr_int(history, "maxchars", &out->maxchars) < 0 ||
        attr_int(history, "maxstanzas", &out->maxstanzas) < 0 ||
        attr_int(history, "seconds", &out->seconds) < 0)
        return -EINVAL;
    const char *since = xml_node_attr(history, "since");
    if (since != NULL && muc_time_parse(since, &out->since) < 0)
        return -EINVAL;
    return 0;
}

static bool digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

static int num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* XEP-0082 §3.2 DateTime: CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD = Z or (+|-)hh:mm. */
int muc_time_parse(const char *s, int64_t *out)
{
    size_t len = strlen(s);
    if (len < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || s[10] != 'T' || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2))
        return -EINVAL;
    struct tm tm = {
        .tm_year = num(s, 4) - 1900,
        .tm_mon = num(s + 5, 2) - 1,
        .tm_mday = num(s + 8, 2),
        .tm_hour = num(s + 11, 2),
        .tm_min = num(s + 14, 2),
        .tm_sec = num(s + 17, 2),
    };
    if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
        tm.tm_sec > 60)
        return -EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        const char *d = p;
        while (*p >= '0' && *p <= '9')
            p++;
        if (p == d)
            return -EINVAL;
    }
    int64_t offset = 0;
    if (strcmp(p, "Z") == 0) {
        offset = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && digits(p + 1, 2) && p[3] == ':' &&
               digits(p + 4, 2)) {
        offset = (int64_t)num(p + 1, 2) * 3600 + (int64_t)num(p + 4, 2) * 60;
        if (p[0] == '-')
            offset = -offset;
    } else {
        return -EINVAL;
    }
    *out = (int64_t)timegm(&tm) - offset;
    return 0;
}

void muc_time_format(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
