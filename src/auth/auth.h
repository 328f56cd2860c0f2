/* SPDX-License-Identifier: MIT */
/* Stored SCRAM credentials, password checks against them, and the auth source interface. */
#ifndef PARLEY_AUTH_H
#define PARLEY_AUTH_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/*
 * Credentials are never passwords. For each SCRAM hash we keep what RFC 5802 §3 lets a
 * server keep: the salt, the iteration count, StoredKey = H(HMAC(SaltedPassword, "Client
 * Key")) and ServerKey = HMAC(SaltedPassword, "Server Key"). The text form (one line, see
 * docs/auth.md) is what storage keeps:
 *
 *   scram-sha-1:<iter>:<b64 salt>:<b64 StoredKey>:<b64 ServerKey> scram-sha-256:...
 */

typedef enum auth_hash {
    AUTH_HASH_SHA1 = 0,
    AUTH_HASH_SHA256 = 1,
} auth_hash_t;

#define AUTH_HASH_COUNT 2

/* RFC 7677 §4 and RFC 5802 §5.1: at least 4096 iterations. */
#define AUTH_ITER_MIN 4096
#define AUTH_ITER_DEFAULT 4096
/* Bounds the work a stored (or PLAIN-checked) credential can ask of us. */
#define AUTH_ITER_MAX 1000000
/*
 * The salt we generate is 16 random bytes. Stored salts may be 12..64 bytes: 12 is what RFC
 * 5802's example and some other servers' exports use, still 96 random bits.
 */
#define AUTH_SALT_LEN 16
#define AUTH_SALT_MIN 12
#define AUTH_SALT_MAX 64
/* The largest digest we use (SHA-256). */
#define AUTH_KEY_MAX 32
/* A password longer than this (in bytes, before SASLprep) is refused. */
#define AUTH_PASSWORD_MAX 1023
/* Room for any SASLprep result of an accepted password, plus the NUL. */
#define AUTH_PREP_MAX (4 * AUTH_PASSWORD_MAX + 1)
/* Room for the text form of any credentials, plus the NUL. */
#define AUTH_CREDS_TEXT_MAX 512

/* One hash's SCRAM keys. */
typedef struct auth_scram {
    bool set; /* false: no credential for this hash */
    uint32_t iter;
    size_t salt_len;
    uint8_t salt[AUTH_SALT_MAX];
    uint8_t stored_key[AUTH_KEY_MAX]; /* auth_hash_len() bytes are used */
    uint8_t server_key[AUTH_KEY_MAX];
} auth_scram_t;

/* What the account's owner may do; it is not part of the text form (storage keeps it). */
typedef enum auth_account_state {
    AUTH_ACCOUNT_ACTIVE = 0,
    AUTH_ACCOUNT_DISABLED, /* SASL <account-disabled/> */
    AUTH_ACCOUNT_EXPIRED, /* SASL <credentials-expired/> */
} auth_account_state_t;

/* A user's credentials: plain data, safe to copy; clear with auth_creds_clear. */
typedef struct auth_creds {
    auth_scram_t scram[AUTH_HASH_COUNT];
    auth_account_state_t state;
} auth_creds_t;

/* The digest length (20 or 32) and the SASL name ("SCRAM-SHA-1", "SCRAM-SHA-256"). */
size_t auth_hash_len(auth_hash_t h);
const char *auth_hash_mech(auth_hash_t h);

/* H(data) and HMAC(key, data) into out (auth_hash_len(h) bytes). Return 0 or -EIO. */
int auth_hash(auth_hash_t h, const void *data, size_t len, uint8_t *out);
int auth_hmac(auth_hash_t h, const void *key, size_t key_len, const void *data, size_t len,
              uint8_t *out);

/*
 * SASLprep (RFC 4013) of in[0..len) into out (AUTH_PREP_MAX bytes), NUL-terminated, with
 * *out_len its length. stored: the string is being stored (a new password), so unassigned
 * code points are refused too (RFC 3454 §7); otherwise it is a query. Returns 0, or -EINVAL
 * when the input is not UTF-8, is empty or longer than AUTH_PASSWORD_MAX, contains NUL, a
 * prohibited character or breaks the bidi rule, or prepares to the empty string.
 */
int auth_saslprep(const char *in, size_t len, bool stored, char *out, size_t *out_len);

/*
 * Derives one hash's keys from a password (SASLprep'd here as a stored string) with the given
 * salt (AUTH_SALT_MIN..AUTH_SALT_MAX bytes) and iteration count (AUTH_ITER_MIN..
 * AUTH_ITER_MAX). This is PBKDF2: run it off the loop thread. Returns 0, -EINVAL (bad
 * password, salt or count) or -EIO (OpenSSL failed).
 */
int auth_scram_derive(auth_hash_t h, const char *password, size_t len, const uint8_t *salt,
                      size_t salt_len, uint32_t iter, auth_scram_t *out);

/*
 * New credentials for a password: both hashes, each with its own random AUTH_SALT_LEN-byte
 * salt and iter iterations. PBKDF2 twice: run it off the loop thread. Returns 0, -EINVAL or
 * -EIO; on failure *out is cleared.
 */
int auth_creds_from_password(const char *password, size_t len, uint32_t iter, auth_creds_t *out);

/*
 * The same, straight to the text form (what storage keeps) in out (AUTH_CREDS_TEXT_MAX bytes),
 * NUL-terminated, *out_len its length: what parleyctl and in-band password changes store.
 * PBKDF2 twice: run it off the loop thread. It carries key material: wipe it
 * (OPENSSL_cleanse) when done. Returns 0, -EINVAL or -EIO; on failure out holds nothing.
 */
int auth_creds_text_from_password(const char *password, size_t len, uint32_t iter, char *out,
                                  size_t *out_len);

/*
 * Whether password would be accepted for new credentials (SASLprep as a stored string, as
 * auth_creds_from_password does it), without hashing: cheap enough for the loop thread, so
 * a request can be refused before it costs PBKDF2. Returns 0 or -EINVAL.
 */
int auth_password_acceptable(const char *password, size_t len);

/*
 * Checks a password (PLAIN, RFC 4616) against the credentials: SASLprep as a query, then
 * SaltedPassword -> ClientKey -> StoredKey, compared in constant time. Uses SHA-256 when it is
 * set, else SHA-1. PBKDF2: run it off the loop thread; allocates nothing, so it may run on a
 * worker. Returns 0 when it matches, -EACCES when it does not (or no hash is set), -EINVAL
 * when the password fails SASLprep, -EIO when OpenSSL fails.
 */
int auth_creds_check_password(const auth_creds_t *c, const char *password, size_t len);

/*
 * The text form of c into out (AUTH_CREDS_TEXT_MAX bytes), NUL-terminated, *out_len its
 * length. It carries key material: wipe it (OPENSSL_cleanse) when done. Returns 0, or -EINVAL
 * when no hash is set or a field is out of range.
 */
int auth_creds_encode(const auth_creds_t *c, char *out, size_t *out_len);

/*
 * Parses the text form s[0..len) strictly: one to AUTH_HASH_COUNT space-separated entries,
 * each hash at most once, decimal iteration counts without leading zeros in range, canonical
 * base64, exact key lengths, nothing else. state is set to AUTH_ACCOUNT_ACTIVE. Returns 0 or
 * -EINVAL (then *out is cleared).
 */
int auth_creds_decode(const char *s, size_t len, auth_creds_t *out);

/* Wipes the key material. */
void auth_creds_clear(auth_creds_t *c);

/* The length of the base64 form of n bytes (RFC 4648 §4, padded), without a NUL. */
static inline size_t auth_b64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

/* Base64 of in[0..len) into out (auth_b64_len(len) + 1 bytes), NUL-terminated; the length. */
size_t auth_b64_encode(const void *in, size_t len, char *out);

/*
 * Strict base64 (RFC 4648 §4): the standard alphabet, padded to a multiple of 4, no
 * whitespace, no '=' but at the end, and canonical (unused bits zero, RFC 4648 §3.5), so each
 * byte string has exactly one accepted form. The empty string decodes to nothing. Decodes
 * in[0..len) into out (cap bytes), *out_len its length. Returns 0, -EINVAL (not base64 as
 * above) or -EMSGSIZE (the result would not fit). On failure out holds nothing readable.
 */
int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/*
 * Auth sources: where credentials come from (memory, storage, later LDAP...). Everything
 * runs on the loop thread of the source.
 */
typedef struct auth_source auth_source_t;
typedef struct auth_request auth_request_t;

/*
 * The answer to a lookup. status: 0 and creds (borrowed for the call; copy what you keep),
 * -ENOENT (no such user, creds NULL), -ECANCELED (the source is being freed), or another
 * negative code for a temporary failure (creds NULL). The request is gone once this returns.
 */
typedef void (*auth_lookup_cb)(void *arg, int status, const auth_creds_t *creds);

/*
 * The answer to a create. status: 0 (the account exists now), -EEXIST (it existed already),
 * -ECANCELED (the source is being freed) or another negative code for a failure. The request
 * is gone once this returns.
 */
typedef void (*auth_status_cb)(void *arg, int status);

typedef struct auth_source_ops {
    const char *name;
    /*
     * Looks up user (a prepared localpart) at domain (a prepared domain), both borrowed for the
     * call only. On success *req is set, and cb runs exactly once, always later from the loop
     * (never before lookup returns), unless the request is cancelled first. On failure
     * (negative return) cb never runs.
     */
    int (*lookup)(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                  size_t domain_len, auth_lookup_cb cb, void *arg, auth_request_t **req);
    /*
     * Optional (NULL: the source cannot create accounts). Creates user at domain (prepared
     * forms, borrowed for the call) holding a copy of creds (borrowed for the call), for
     * in-band registration (XEP-0077). The callback rules are lookup's: on success *req is
     * set and cb runs exactly once, later, from the loop, unless the request is cancelled
     * first; on failure cb never runs.
     */
    int (*create)(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                  size_t domain_len, const auth_creds_t *creds, auth_status_cb cb, void *arg,
                  auth_request_t **req);
    /* Cancels a request (lookup or create) whose callback has not run yet: it never will;
     * req is gone. A create that already reached the store may still take effect. */
    void (*cancel)(auth_source_t *src, auth_request_t *req);
    /* Frees the source; callbacks still pending run with -ECANCELED from the loop first. */
    void (*free)(auth_source_t *src);
} auth_source_ops_t;

struct auth_source {
    const auth_source_ops_t *ops;
};

static inline int auth_source_lookup(auth_source_t *src, const char *user, size_t user_len,
                                     const char *domain, size_t domain_len, auth_lookup_cb cb,
                                     void *arg, auth_request_t **req)
{
    return src->ops->lookup(src, user, user_len, domain, domain_len, cb, arg, req);
}

/* auth_source_ops_t.create, or -ENOTSUP when the source cannot create accounts. */
static inline int auth_source_create(auth_source_t *src, const char *user, size_t user_len,
                                     const char *domain, size_t domain_len,
                                     const auth_creds_t *creds, auth_status_cb cb, void *arg,
                                     auth_request_t **req)
{
    if (src->ops->create == NULL)
        return -ENOTSUP;
    return src->ops->create(src, user, user_len, domain, domain_len, creds, cb, arg, req);
}

static inline void auth_source_cancel(auth_source_t *src, auth_request_t *req)
{
    src->ops->cancel(src, req);
}

static inline void auth_source_free(auth_source_t *src)
{
    src->ops->free(src);
}

/*
 * An in-memory source, for tests and small sites: a list of users searched linearly. It
 * answers from a uv_idle handle on loop, so its callbacks never run inside lookup. After
 * auth_source_free, run the loop once more so its handle closes (then the memory is freed).
 */
auth_source_t *auth_memory_new(uv_loop_t *loop);

/*
 * Adds or replaces user@domain (prepared forms, copied) with a copy of creds. Returns 0 or
 * -EINVAL (empty user or domain). The source's create adds a user the same way, from the
 * loop, and answers -EEXIST for one it has.
 */
int auth_memory_set(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                    size_t domain_len, const auth_creds_t *creds);

/* Removes user@domain. Returns 0 or -ENOENT. */
int auth_memory_remove(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                       size_t domain_len);

#endif
