/* SPDX-License-Identifier: MIT */
/* Every section any program of Parley reads, so either can check the whole file. */
#include "schema.h"

#include "c2s/c2s.h"
#include "muc/muc.h"
#include "router/router.h"
#include "sm/sm.h"
#include "storage/storage.h"

#include <stddef.h>

static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};

static const core_cfg_key_t log_keys[] = {
    {.name = "level",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(log_config_t, level),
     .def = "info",
     .choices = level_names,
     .help = "error, warn, info or debug"},
};

static const core_cfg_section_t log_section = {
    .name = "log",
    .size = sizeof(log_config_t),
    .keys = log_keys,
    .nkeys = sizeof(log_keys) / sizeof(log_keys[0]),
};

const core_cfg_section_t *const parley_schema[] = {
    &log_section,         &router_cfg_section, &router_component_cfg_section,
    &storage_cfg_section, &c2s_cfg_section,    &sm_cfg_section,
    &muc_cfg_section,
};

const size_t parley_schema_len = sizeof(parley_schema) / sizeof(parley_schema[0]);
