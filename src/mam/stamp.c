/* SPDX-License-Identifier: MIT */
/* XEP-0082 DateTime with microseconds: archive stamps out (<delay/>, metadata) and in (start, end).
 */
#include "mam/mam.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

void mam_stamp_format(int64_t us, char out[MAM_STAMP_SIZE])
{
    time_t sec = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        sec--;
    }
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(out, MAM_STAMP_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, MAM_STAMP_SIZE - n, ".%06ldZ", frac);
}

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

static bool valid_date(int y, int mo, int d)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[mo - 1] + (mo == 2 && leap ? 1 : 0);
}

/* The optional fraction after the seconds, as microseconds (digits beyond six dropped). */
static int fraction(const char **p, int64_t *out)
{
    int64_t frac = 0;
    if (**p == '.') {
        (*p)++;
        int n = 0;
        for (; **p >= '0' && **p <= '9'; (*p)++, n++) {
            if (n < 6)
                frac = frac * 10 + (**p - '0');
        }
        if (n == 0)
            return -EINVAL;
        for (; n < 6; n++)
            frac *= 10;
    }
    *out = frac;
    return 0;
}

/* The TZD (Z or ±hh:mm) as seconds east of UTC, ending the text. */
static int zone(const char *p, int64_t *out)
{
    int sign = 0, tzh = 0, tzm = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '+' ? 1 : -1;
        p++;
        if (!digits(&p, 2, &tzh) || !expect(&p, ':') || !digits(&p, 2, &tzm) || tzh > 23 ||
            tzm > 59)
            return -EINVAL;
    } else {
        return -EINVAL;
    }
    if (*p != '\0')
        return -EINVAL;
    *out = (int64_t)sign * (tzh * 3600 + tzm * 60);
    return 0;
}

int mam_stamp_parse(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (!digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
        !digits(&p, 2, &d) || !expect(&p, 'T') || !digits(&p, 2, &h) || !expect(&p, ':') ||
        !digits(&p, 2, &mi) || !expect(&p, ':') || !digits(&p, 2, &sec))
        return -EINVAL;
    if (!valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    int64_t frac, east;
    if (fraction(&p, &frac) < 0 || zone(p, &east) < 0)
        return -EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = sec};
    *us = ((int64_t)timegm(&tm) - east) * 1000000 + frac;
    return 0;
}
