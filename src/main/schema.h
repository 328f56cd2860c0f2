/* SPDX-License-Identifier: MIT */
/* The configuration schema shared by parleyd and parleyctl: one file for every process. */
#ifndef PARLEY_MAIN_SCHEMA_H
#define PARLEY_MAIN_SCHEMA_H

#include "core/config.h"

/* [log] */
typedef struct log_config {
    int level; /* index in the order of core_log_level_t */
} log_config_t;

extern const core_cfg_section_t *const parley_schema[];
extern const size_t parley_schema_len;

#endif
