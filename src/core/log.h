/* SPDX-License-Identifier: MIT */
/* Logging with levels; every line names the component and the connection. */
#ifndef PARLEY_CORE_LOG_H
#define PARLEY_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum core_log_level {
    CORE_LOG_ERROR = 0,
    CORE_LOG_WARN = 1,
    CORE_LOG_INFO = 2,
    CORE_LOG_DEBUG = 3,
} core_log_level_t;

/* One logger per component context. Not thread-safe: use it from the loop thread. */
typedef struct core_log {
    core_log_level_t level;
    const char *component; /* borrowed; printed on every line */
    FILE *out; /* borrowed; stderr when NULL */
} core_log_t;

/* Parses "error", "warn", "info" or "debug". Returns 0 or -EINVAL. */
int core_log_level_parse(const char *name, core_log_level_t *out);
const char *core_log_level_name(core_log_level_t level);

static inline bool core_log_enabled(const core_log_t *log, core_log_level_t level)
{
    return level <= log->level;
}

/*
 * Writes one line: time, level, component, "[c<conn>]" when conn is not 0, then the
 * message. The level is checked before anything is formatted. Never pass secrets or, above
 * debug, whole stanzas.
 */
void core_log(const core_log_t *log, core_log_level_t level, uint64_t conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
