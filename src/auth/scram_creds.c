/* SPDX-License-Identifier: MIT */
/* SCRAM credentials (RFC 5802 §3): derivation from a password, PLAIN checks, the text form. */
#include "auth/auth.h"
#include "core/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stringprep.h>

/* The names of the text form, in the order entries are written. */
static const char *const hash_names[AUTH_HASH_COUNT] = {
    [AUTH_HASH_SHA1] = "scram-sha-1",
    [AUTH_HASH_SHA256] = "scram-sha-256",
};

static const char *const hash_mechs[AUTH_HASH_COUNT] = {
    [AUTH_HASH_SHA1] = "SCRAM-SHA-1",
    [AUTH_HASH_SHA256] = "SCRAM-SHA-256",
};

static const EVP_MD *hash_md(auth_hash_t h)
{
    return h == AUTH_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

size_t auth_hash_len(auth_hash_t h)
{
    return h == AUTH_HASH_SHA1 ? 20 : 32;
}

const char *auth_hash_mech(auth_hash_t h)
{
    return hash_mechs[h];
}

int auth_hash(auth_hash_t h, const void *data, size_t len, uint8_t *out)
{
    return EVP_Digest(data, len, out, NULL, hash_md(h), NULL) == 1 ? 0 : -EIO;
}

int auth_hmac(auth_hash_t h, const void *key, size_t key_len, const void *data, size_t len,
              uint8_t *out)
{
    if (key_len > INT32_MAX)
        return -EINVAL;
    return HMAC(hash_md(h), key, (int)key_len, data, len, out, NULL) != NULL ? 0 : -EIO;
}

int auth_saslprep(const char *in, size_t len, bool stored, char *out, size_t *out_len)
{
    Stringprep_profile_flags flags = stored ? STRINGPREP_NO_UNASSIGNED : 0;

    *out_len = 0;
    if (len == 0 || len > AUTH_PASSWORD_MAX || !core_utf8_valid(in, len))
        return -EINVAL;
    memcpy(out, in, len);
    out[len] = '\0';
    /* The buffer is four times the longest input: a result that does not fit is refused. */
    if (stringprep(out, AUTH_PREP_MAX, flags, stringprep_saslprep) != STRINGPREP_OK)
        goto fail;
    *out_len = strlen(out);
    if (*out_len == 0)
        goto fail;
    return 0;

fail:
    OPENSSL_cleanse(out, AUTH_PREP_MAX);
    *out_len = 0;
    return -EINVAL;
}

/* RFC 5802 §3: ClientKey, StoredKey and ServerKey from SaltedPassword. */
static int keys_from_salted(auth_hash_t h, const uint8_t *salted, uint8_t *stored, uint8_t *server)
{
    static const char client_label[] = "Client Key";
    static const char server_label[] = "Server Key";
    size_t hl = auth_hash_len(h);
    uint8_t client_key[AUTH_KEY_MAX];
    int rc = auth_hmac(h, salted, hl, client_label, sizeof(client_label) - 1, client_key);
    if (rc == 0)
        rc = auth_hash(h, client_key, hl, stored);
    if (rc == 0 && server != NULL)
        rc = auth_hmac(h, salted, hl, server_label, sizeof(server_label) - 1, server);
    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

/* SaltedPassword = Hi(Normalize(password), salt, i), Hi being PBKDF2 with HMAC-H. */
static int salted_password(auth_hash_t h, const char *prepped, size_t len, const uint8_t *salt,
                           size_t salt_len, uint32_t iter, uint8_t *out)
{
    if (len > INT32_MAX || salt_len > INT32_MAX || iter > INT32_MAX)
        return -EINVAL;
    return PKCS5_PBKDF2_HMAC(prepped, (int)len, salt, (int)salt_len, (int)iter, hash_md(h),
                             (int)auth_hash_len(h), out) == 1
        ? 0
        : -EIO;
}

static bool hash_valid(int h)
{
    return h == AUTH_HASH_SHA1 || h == AUTH_HASH_SHA256;
}

int auth_scram_derive(auth_hash_t h, const char *password, size_t len, const uint8_t *salt,
                      size_t salt_len, uint32_t iter, auth_scram_t *out)
{
    char prepped[AUTH_PREP_MAX];
    uint8_t salted[AUTH_KEY_MAX];
    size_t plen = 0;
    int rc = -EINVAL;

    memset(out, 0, sizeof(*out));
    if (!hash_valid((int)h) || salt_len < AUTH_SALT_MIN || salt_len > AUTH_SALT_MAX ||
        iter < AUTH_ITER_MIN || iter > AUTH_ITER_MAX)
        goto out;
    rc = auth_saslprep(password, len, true, prepped, &plen);
    if (rc == 0)
        rc = salted_password(h, prepped, plen, salt, salt_len, iter, salted);
    if (rc == 0)
        rc = keys_from_salted(h, salted, out->stored_key, out->server_key);
    if (rc == 0) {
        out->set = true;
        out->iter = iter;
        out->salt_len = salt_len;
        memcpy(out->salt, salt, salt_len);
    }

out:
    OPENSSL_cleanse(prepped, sizeof(prepped));
    OPENSSL_cleanse(salted, sizeof(salted));
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

int auth_creds_from_password(const char *password, size_t len, uint32_t iter, auth_creds_t *out)
{
    uint8_t salt[AUTH_SALT_LEN];
    int rc = 0;

    memset(out, 0, sizeof(*out));
    for (int h = 0; h < AUTH_HASH_COUNT && rc == 0; h++) {
        /* A salt per hash, so the two entries share nothing but the password. */
        if (RAND_bytes(salt, sizeof(salt)) != 1) {
            rc = -EIO;
            break;
        }
        rc = auth_scram_derive((auth_hash_t)h, password, len, salt, sizeof(salt), iter,
                               &out->scram[h]);
    }
    OPENSSL_cleanse(salt, sizeof(salt));
    if (rc != 0)
        auth_creds_clear(out);
    return rc;
}

int auth_creds_text_from_password(const char *password, size_t len, uint32_t iter, char *out,
                                  size_t *out_len)
{
    auth_creds_t c;
    int rc = auth_creds_from_password(password, len, iter, &c);
    *out_len = 0;
    if (rc == 0)
        rc = auth_creds_encode(&c, out, out_len);
    auth_creds_clear(&c);
    if (rc != 0)
        OPENSSL_cleanse(out, AUTH_CREDS_TEXT_MAX);
    return rc;
}

int auth_password_acceptable(const char *password, size_t len)
{
    char prepped[AUTH_PREP_MAX];
    size_t plen = 0;
    int rc = auth_saslprep(password, len, true, prepped, &plen);
    OPENSSL_cleanse(prepped, sizeof(prepped));
    return rc;
}

int auth_creds_check_password(const auth_creds_t *c, const char *password, size_t len)
{
    auth_hash_t h = c->scram[AUTH_HASH_SHA256].set ? AUTH_HASH_SHA256 : AUTH_HASH_SHA1;
    const auth_scram_t *k = &c->scram[h];
    char prepped[AUTH_PREP_MAX];
    uint8_t salted[AUTH_KEY_MAX], stored[AUTH_KEY_MAX];
    size_t plen = 0;
    int rc;

    if (!k->set)
        return -EACCES;
    rc = auth_saslprep(password, len, false, prepped, &plen);
    if (rc == 0)
        rc = salted_password(h, prepped, plen, k->salt, k->salt_len, k->iter, salted);
    if (rc == 0)
        rc = keys_from_salted(h, salted, stored, NULL);
    if (rc == 0 && CRYPTO_memcmp(stored, k->stored_key, auth_hash_len(h)) != 0)
        rc = -EACCES;
    OPENSSL_cleanse(prepped, sizeof(prepped));
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(stored, sizeof(stored));
    return rc;
}

void auth_creds_clear(auth_creds_t *c)
{
    /* Zeroes too, so a cleared entry reads as not set. */
    OPENSSL_cleanse(c, sizeof(*c));
}

static bool scram_valid(const auth_scram_t *k)
{
    return k->iter >= AUTH_ITER_MIN && k->iter <= AUTH_ITER_MAX && k->salt_len >= AUTH_SALT_MIN &&
        k->salt_len <= AUTH_SALT_MAX;
}

int auth_creds_encode(const auth_creds_t *c, char *out, size_t *out_len)
{
    size_t n = 0;

    *out_len = 0;
    out[0] = '\0';
    for (int h = 0; h < AUTH_HASH_COUNT; h++) {
        const auth_scram_t *k = &c->scram[h];
        size_t hl = auth_hash_len((auth_hash_t)h);
        if (!k->set)
            continue;
        if (!scram_valid(k))
            goto fail;
        /* Each entry is at most 14 + 1 + 7 + 1 + 88 + 1 + 44 + 1 + 44 bytes: it fits. */
        n += (size_t)snprintf(out + n, AUTH_CREDS_TEXT_MAX - n, "%s%s:%u:", n ? " " : "",
                              hash_names[h], (unsigned)k->iter);
        n += auth_b64_encode(k->salt, k->salt_len, out + n);
        out[n++] = ':';
        n += auth_b64_encode(k->stored_key, hl, out + n);
        out[n++] = ':';
        n += auth_b64_encode(k->server_key, hl, out + n);
    }
    if (n == 0)
        return -EINVAL;
    *out_len = n;
    return 0;

fail:
    OPENSSL_cleanse(out, AUTH_CREDS_TEXT_MAX);
    return -EINVAL;
}

/* A field of s[*pos..end) up to (not including) sep or the end; advances past sep. */
static bool take_field(const char *s, size_t end, size_t *pos, char sep, const char **f,
                       size_t *flen)
{
    const char *start = s + *pos;
    const char *hit = memchr(start, sep, end - *pos);
    size_t n = hit != NULL ? (size_t)(hit - start) : end - *pos;
    *f = start;
    *flen = n;
    *pos += n + (hit != NULL ? 1 : 0);
    return hit != NULL;
}

/* A decimal count: digits only, no leading zero, in AUTH_ITER_MIN..AUTH_ITER_MAX. */
static bool parse_iter(const char *f, size_t len, uint32_t *iter)
{
    uint64_t v = 0;
    if (len == 0 || len > 7 || f[0] == '0')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(f[i] - '0');
    }
    *iter = (uint32_t)v;
    return v >= AUTH_ITER_MIN && v <= AUTH_ITER_MAX;
}

/* One entry "name:iter:salt:stored:server" in s[0..len). */
static int decode_entry(const char *s, size_t len, auth_creds_t *c)
{
    const char *f;
    size_t flen, pos = 0, n;
    int h = -1;

    if (!take_field(s, len, &pos, ':', &f, &flen))
        return -EINVAL;
    for (int i = 0; i < AUTH_HASH_COUNT; i++) {
        if (strlen(hash_names[i]) == flen && memcmp(hash_names[i], f, flen) == 0)
            h = i;
    }
    if (h < 0 || c->scram[h].set)
        return -EINVAL;
    auth_scram_t *k = &c->scram[h];
    size_t hl = auth_hash_len((auth_hash_t)h);

    if (!take_field(s, len, &pos, ':', &f, &flen) || !parse_iter(f, flen, &k->iter))
        return -EINVAL;
    if (!take_field(s, len, &pos, ':', &f, &flen) ||
        auth_b64_decode(f, flen, k->salt, sizeof(k->salt), &k->salt_len) != 0 ||
        k->salt_len < AUTH_SALT_MIN)
        return -EINVAL;
    if (!take_field(s, len, &pos, ':', &f, &flen) ||
        auth_b64_decode(f, flen, k->stored_key, sizeof(k->stored_key), &n) != 0 || n != hl)
        return -EINVAL;
    /* The last field runs to the end of the entry: no further ':' is allowed. */
    if (take_field(s, len, &pos, ':', &f, &flen) ||
        auth_b64_decode(f, flen, k->server_key, sizeof(k->server_key), &n) != 0 || n != hl)
        return -EINVAL;
    k->set = true;
    return 0;
}

int auth_creds_decode(const char *s, size_t len, auth_creds_t *out)
{
    const char *entry;
    size_t elen, pos = 0;
    bool more = true;
    int rc = -EINVAL;

    memset(out, 0, sizeof(*out));
    out->state = AUTH_ACCOUNT_ACTIVE;
    if (len == 0 || len >= AUTH_CREDS_TEXT_MAX)
        goto fail;
    for (int count = 0; more; count++) {
        /* Entries are separated by exactly one space: no empty entry, none at either end. */
        more = take_field(s, len, &pos, ' ', &entry, &elen);
        if (count == AUTH_HASH_COUNT || elen == 0 || decode_entry(entry, elen, out) != 0)
            goto fail;
    }
    return 0;

fail:
    auth_creds_clear(out);
    return rc;
}
