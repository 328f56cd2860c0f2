/* SPDX-License-Identifier: MIT */
/* JIDs (RFC 7622 forms, prepared with stringprep's nodeprep/nameprep/resourceprep + IDNA). */
#ifndef PARLEY_JID_H
#define PARLEY_JID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7622 §3: each part is 1..1023 octets after preparation. */
#define JID_PART_MAX 1023

/*
 * A prepared JID: one owned string "node@domain/resource" with the parts located in it.
 * Two prepared JIDs are equal when their strings are equal as bytes.
 */
typedef struct jid {
    char *full; /* owned, NUL-terminated, prepared */
    size_t full_len;
    size_t node_len; /* 0: no node; the node is full[0..node_len) */
    size_t domain_off; /* the domain is full[domain_off..domain_off+domain_len) */
    size_t domain_len;
    size_t bare_len; /* the bare JID is full[0..bare_len) */
    size_t res_len; /* 0: no resource; it is full[bare_len+1..full_len) */
} jid_t;

/*
 * A cache of preparations (stringprep is slow next to a hash lookup). One per component
 * context, used from its loop thread only. Bounded: old entries are dropped.
 */
typedef struct jid_cache jid_cache_t;

jid_cache_t *jid_cache_new(size_t max_entries);
void jid_cache_free(jid_cache_t *c);
/* Lookups answered from the cache and preparations done, for tests and statistics. */
void jid_cache_stats(const jid_cache_t *c, uint64_t *hits, uint64_t *misses);

/*
 * Parses and prepares s[0..len) into out (which the caller later clears with jid_clear).
 * cache may be NULL. Returns 0, or -EINVAL when the JID is malformed (empty part, bad
 * characters for the profile, part too long, bidi rule, a domain that is not a valid IDN,
 * an IP literal that is not one…), which is jid-malformed on the wire.
 */
int jid_parse(jid_cache_t *cache, const char *s, size_t len, jid_t *out);
void jid_clear(jid_t *j);
/* A copy of src into dst (clear dst later). */
void jid_copy(jid_t *dst, const jid_t *src);

/*
 * Prepares only the domain of the JID s[0..len) (the routing key), without building a jid_t
 * and without preparing the node or resource (it only checks they are not empty). On
 * success *dom points at the prepared domain and *dlen is its length: either into s itself,
 * when it was already in prepared form (then it is NOT NUL-terminated: always use *dlen), or
 * into the cache, valid until the next call on it. cache must not be NULL. Returns 0 or
 * -EINVAL.
 */
int jid_domain(jid_cache_t *cache, const char *s, size_t len, const char **dom, size_t *dlen);

/*
 * The domain of the JID s[0..len) as written, unprepared (*dom points into s, not
 * NUL-terminated), after the same checks of the separators as jid_domain. For a lookup in a
 * table of prepared names: a hit is the prepared domain, a miss needs jid_domain. Returns 0 or
 * -EINVAL.
 */
int jid_domain_raw(const char *s, size_t len, const char **dom, size_t *dlen);

static inline const char *jid_domain_ptr(const jid_t *j)
{
    return j->full + j->domain_off;
}

static inline bool jid_has_node(const jid_t *j)
{
    return j->node_len != 0;
}

static inline bool jid_has_resource(const jid_t *j)
{
    return j->res_len != 0;
}

/*
 * A caseless key for a prepared part (RFC 3454 tables B.1 and B.2, then NFKC): two names that
 * differ only in case or compatibility form get the same key. For names that must not be
 * told apart by case, such as room nicks (XEP-0045 §7.2.9 leaves the rule to the service).
 * out gets the NUL-terminated key; outcap at least 4 * JID_PART_MAX + 1. Returns 0 or -EINVAL.
 */
int jid_fold(const char *in, size_t len, char *out, size_t outcap, size_t *out_len);

/* Prepared JIDs compared as bytes; the bare variant ignores resources. */
bool jid_equal(const jid_t *a, const jid_t *b);
bool jid_bare_equal(const jid_t *a, const jid_t *b);

#endif
