/* SPDX-License-Identifier: MIT */
/* Strict, canonical base64 over OpenSSL's block coder, for SASL data and stored keys. */
#include "auth/auth.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* Inputs above this are refused before any int conversion OpenSSL's API needs. */
#define B64_INPUT_MAX (1u << 28)

/* 48 input bytes are exactly 64 characters, so chunks re-encode without inner padding. */
#define CHUNK_BYTES 48
#define CHUNK_CHARS 64
/* Encoding goes in slices this big, so the int lengths OpenSSL takes never overflow. */
#define ENCODE_SLICE ((size_t)CHUNK_BYTES * 1024)

size_t auth_b64_encode(const void *in, size_t len, char *out)
{
    size_t done = 0, n = 0;
    while (done < len) {
        size_t take = len - done > ENCODE_SLICE ? ENCODE_SLICE : len - done;
        n += (size_t)EVP_EncodeBlock((unsigned char *)out + n, (const unsigned char *)in + done,
                                     (int)take);
        done += take;
    }
    out[n] = '\0';
    return n;
}

/*
 * True when out[0..n) encodes back to exactly in[0..len). This is what makes the decoder
 * strict: OpenSSL's block decoder skips surrounding whitespace and does not check the unused
 * bits, but only the one canonical text re-encodes to itself.
 */
static bool reencodes_to(const uint8_t *out, size_t n, const char *in, size_t len)
{
    char chunk[CHUNK_CHARS + 1];
    size_t pos = 0;
    bool same = true;

    for (size_t done = 0; done < n && same; done += CHUNK_BYTES) {
        size_t take = n - done > CHUNK_BYTES ? CHUNK_BYTES : n - done;
        size_t m = auth_b64_encode(out + done, take, chunk);
        same = m <= len - pos && memcmp(chunk, in + pos, m) == 0;
        pos += m;
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    return same && pos == len;
}

int auth_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    uint8_t tail[3];
    size_t pad, n, head;
    int rc = -EINVAL;

    *out_len = 0;
    if (len == 0)
        return 0;
    if (len % 4 != 0)
        return -EINVAL;
    if (len > B64_INPUT_MAX)
        return -EMSGSIZE;
    pad = in[len - 1] == '=' ? (in[len - 2] == '=' ? 2 : 1) : 0;
    n = len / 4 * 3 - pad;
    if (n > cap)
        return -EMSGSIZE;

    /*
     * The block decoder writes whole triples, padding included; the last quartet goes through
     * a small buffer so exactly n bytes land in out.
     */
    head = len - 4;
    if (head != 0 &&
        EVP_DecodeBlock(out, (const unsigned char *)in, (int)head) != (int)(head / 4 * 3))
        goto fail;
    if (EVP_DecodeBlock(tail, (const unsigned char *)in + head, 4) != 3)
        goto fail;
    memcpy(out + head / 4 * 3, tail, 3 - pad);
    if (!reencodes_to(out, n, in, len))
        goto fail;
    OPENSSL_cleanse(tail, sizeof(tail));
    *out_len = n;
    return 0;

fail:
    OPENSSL_cleanse(tail, sizeof(tail));
    OPENSSL_cleanse(out, n);
    return rc;
}
