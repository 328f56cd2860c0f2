/* SPDX-License-Identifier: MIT */
/* The logger. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int core_log_level_parse(const char *name, core_log_level_t *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (core_log_level_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *core_log_level_name(core_log_level_t level)
{
    return level_names[level];
}

void core_log(const core_log_t *log, core_log_level_t level, uint64_t conn, const char *fmt, ...)
{
    if (!core_log_enabled(log, level))
        return;
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    if (conn != 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s %s [c%llu] ",
                      ts.tv_nsec / 1000000, level_names[level], log->component,
                      (unsigned long long)conn);
    else
        n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ldZ %-5s %s ", ts.tv_nsec / 1000000,
                      level_names[level], log->component);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t total = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (total > sizeof(line) - 2)
        total = sizeof(line) - 2;
    /* Peer-supplied text may carry control characters; keep one event on one line. */
    for (size_t i = (size_t)n; i < total; i++) {
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    }
    line[total] = '\n';
    FILE *out = log->out ? log->out : stderr;
    fwrite(line, 1, total + 1, out);
    fflush(out);
}
