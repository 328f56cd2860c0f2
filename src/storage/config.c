/* SPDX-License-Identifier: MIT */
/* The [storage] configuration section. */
#include "storage/storage.h"

#include <stddef.h>

static const char *const backend_names[] = {"sqlite", "files", NULL};

static const core_cfg_key_t storage_keys[] = {
    {.name = "backend",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(storage_settings_t, backend),
     .def = "sqlite",
     .choices = backend_names,
     .help = "sqlite (embedded, the default) or files (plain text files, one per user and kind)"},
    {.name = "path",
     .type = CORE_CFG_STR,
     .offset = offsetof(storage_settings_t, path),
     .def = "data/parley.db",
     .is_path = true,
     .help = "sqlite: the database file; files: the root folder (relative to this file)"},
};

const core_cfg_section_t storage_cfg_section = {
    .name = "storage",
    .size = sizeof(storage_settings_t),
    .keys = storage_keys,
    .nkeys = sizeof(storage_keys) / sizeof(storage_keys[0]),
};

void storage_settings_apply(const storage_settings_t *s, storage_config_t *out)
{
    *out = (storage_config_t){
        .backend = s->backend == 1 ? STORAGE_BACKEND_FILES : STORAGE_BACKEND_SQLITE,
        .path = s->path,
    };
}
