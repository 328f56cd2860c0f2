/* SPDX-License-Identifier: MIT */
/* Declarations shared inside src/jid/ (and by its unit test and fuzz target). */
#ifndef PARLEY_JID_INTERNAL_H
#define PARLEY_JID_INTERNAL_H

#include "jid/jid.h"

#include <stdbool.h>
#include <stddef.h>

/* The three parts of a JID, each with its own stringprep profile (RFC 6122 / RFC 3920). */
enum jid_part {
    JID_PART_NODE,
    JID_PART_DOMAIN,
    JID_PART_RESOURCE,
};

/* What the cheap ASCII check says about a raw part. */
enum jid_fast {
    JID_FAST_PREPARED, /* already in prepared form: use the input bytes as they are */
    JID_FAST_INVALID, /* certainly malformed, no library call needed to know it */
    JID_FAST_NEEDS_PREP, /* needs the stringprep/IDNA slow path */
};

/*
 * A raw part longer than this is rejected before preparation. Only code points that
 * stringprep maps to nothing could shrink a longer part below JID_PART_MAX, and bounding
 * the input bounds the work a peer can make us do.
 */
#define JID_RAW_MAX (4 * JID_PART_MAX)

/* Raw parts longer than this are prepared every time instead of being cached. */
#define JID_CACHE_KEY_MAX 256

/*
 * The ASCII fast path. For JID_FAST_PREPARED, *out_len is the length of the prepared part,
 * a prefix of in (a domain's trailing dot is dropped).
 */
enum jid_fast jid_part_check_fast(enum jid_part part, const char *in, size_t len, size_t *out_len);

/*
 * The slow path: prepares in[0..len) with libidn into out (JID_PART_MAX + 1 bytes,
 * NUL-terminated on success). Returns 0 or -EINVAL. Never touches a cache.
 */
int jid_part_prepare(enum jid_part part, const char *in, size_t len, char *out, size_t *out_len);

/*
 * Looks up the preparation of in[0..len) as the given part. On a hit returns true with
 * *rc = 0 and *out, *out_len at the cached prepared string (valid until the next put), or
 * *rc = -EINVAL for a cached failure. Counts a hit, or a miss (a preparation will follow).
 */
bool jid_cache_get(jid_cache_t *c, enum jid_part part, const char *in, size_t len, const char **out,
                   size_t *out_len, int *rc);

/*
 * Stores the result of preparing in[0..len): out[0..out_len), or a failure when out is NULL.
 * Returns the stored NUL-terminated copy of out, or NULL when nothing was stored (a failure,
 * or a key longer than JID_CACHE_KEY_MAX). May evict other entries.
 */
const char *jid_cache_put(jid_cache_t *c, enum jid_part part, const char *in, size_t len,
                          const char *out, size_t out_len);

/* A buffer of JID_PART_MAX + 1 bytes owned by the cache, for results that are not stored. */
char *jid_cache_scratch(jid_cache_t *c);

/* Entries held now, and the bucket a key falls in (for tests). */
size_t jid_cache_count(const jid_cache_t *c);
size_t jid_cache_bucket(const jid_cache_t *c, enum jid_part part, const char *in, size_t len);

#endif
