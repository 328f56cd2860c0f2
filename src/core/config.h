/* SPDX-License-Identifier: MIT */
/* The configuration file: one parser, typed tables of keys, errors that name file and line. */
#ifndef PARLEY_CORE_CONFIG_H
#define PARLEY_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * File format (docs/config-format.md):
 *
 *   # a comment to the end of the line (outside quotes)
 *   [section]                  a section that may appear once
 *   [section "label"]          a labelled section that may appear many times (one per label)
 *   key = value                value: a bare word, or "a quoted string" with \" \\ \n escapes
 *
 * Types: str; int (decimal, optional sign); bool (yes/no/true/false/on/off); size (bytes, with
 * an optional K, M or G suffix meaning KiB, MiB, GiB); msec (a duration: 250ms, 30s, 5m, 1h;
 * a bare number is seconds); enum (one of the key's choices, stored as its index); list (words
 * separated by commas, each trimmed).
 *
 * Unknown sections and keys, duplicate keys, values of the wrong type or out of range, missing
 * required keys: each is an error naming the file and the line, and loading fails as a whole.
 */

typedef enum core_cfg_type {
    CORE_CFG_STR, /* char *  (owned by the core_cfg_t) */
    CORE_CFG_INT, /* int64_t */
    CORE_CFG_BOOL, /* bool */
    CORE_CFG_SIZE, /* uint64_t, bytes */
    CORE_CFG_MSEC, /* uint64_t, milliseconds */
    CORE_CFG_ENUM, /* int, index into choices */
    CORE_CFG_LIST, /* core_cfg_list_t */
} core_cfg_type_t;

typedef struct core_cfg_list {
    char **items; /* owned by the core_cfg_t */
    size_t count;
} core_cfg_list_t;

typedef struct core_cfg_key {
    const char *name;
    core_cfg_type_t type;
    size_t offset; /* of the field in the section's struct */
    const char *def; /* default, written as in the file; NULL: none (field stays zero/NULL) */
    bool required;
    int64_t min, max; /* int, size, msec: inclusive range, checked when max > min */
    const char *const *choices; /* enum: NULL-terminated */
    bool is_path; /* str: a relative value is resolved against the file's folder */
    bool must_exist; /* str: the resolved value names a file that can be read */
    const char *help; /* one line, for docs and --help-config */
} core_cfg_key_t;

typedef struct core_cfg_section {
    const char *name;
    bool labelled; /* [name "label"], any number of them, labels unique */
    /* Unlabelled only: when the file does not have it, there is no item (core_cfg_get gives
     * NULL) instead of one with the defaults. For components a process may not run. */
    bool optional;
    size_t size; /* of the section's struct */
    size_t label_offset; /* labelled: offset of a char * field that receives the label */
    const core_cfg_key_t *keys;
    size_t nkeys;
    /*
     * Optional check across keys, run after the section is read. Returns 0, or writes a
     * message to err and returns -EINVAL; the loader prefixes file and line.
     */
    int (*check)(void *data, char *err, size_t errlen);
} core_cfg_section_t;

/* One occurrence of a section in the file (or its defaults, when it is absent). */
typedef struct core_cfg_item {
    const core_cfg_section_t *section;
    void *data; /* owned: a struct of section->size bytes */
    char *file; /* owned */
    unsigned line; /* of the [section] header; 0 for defaults of an absent section */
} core_cfg_item_t;

typedef struct core_cfg {
    char *path; /* owned */
    char *dir; /* owned: folder of the file, for relative paths */
    core_cfg_item_t *items;
    size_t count;
} core_cfg_t;

/*
 * Reads path against the schema. On success fills cfg and returns 0: every unlabelled
 * section of the schema has exactly one item (defaults when absent from the file). On
 * failure returns a negative errno-style code, writes "file:line: message" to err, and
 * leaves cfg empty. (Optional sections that are absent have no item.)
 */
int core_cfg_load(core_cfg_t *cfg, const char *path, const core_cfg_section_t *const *schema,
                  size_t nschema, char *err, size_t errlen);

/* The same, from text in memory; name is used in messages and for relative paths. */
int core_cfg_load_text(core_cfg_t *cfg, const char *name, const char *text, size_t len,
                       const core_cfg_section_t *const *schema, size_t nschema, char *err,
                       size_t errlen);

/* The data of an unlabelled section (borrowed), or NULL if name is not in the schema or is an
 * optional section the file does not have. */
void *core_cfg_get(const core_cfg_t *cfg, const char *name);

/*
 * Iterates labelled sections of one name: start with *pos = 0; returns each item's data
 * (borrowed) in file order, then NULL.
 */
void *core_cfg_next(const core_cfg_t *cfg, const char *name, size_t *pos);

void core_cfg_free(core_cfg_t *cfg);

/* Reads a whole small file (a secret) into a new string without trailing newlines.
 * Returns 0, -ENOENT or another negative errno. */
int core_cfg_read_secret(const char *path, char **out);

#endif
