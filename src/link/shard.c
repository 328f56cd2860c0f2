/* SPDX-License-Identifier: MIT */
/* Which shard owns a user: rendezvous hashing that the router and every sm compute alike. */
#include "link/link.h"

#include <openssl/evp.h>
#include <string.h>

uint64_t link_shard_weight(const char *instance, const char *bare, size_t len)
{
    /*
     * docs/link-protocol.md "Shards": the first 8 bytes, big-endian, of SHA-256(instance
     * name, one NUL byte, prepared bare JID). A fixed function, so every process (and the
     * tests, in Python) computes the same owner without asking anyone.
     */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    EVP_DigestUpdate(ctx, instance, strlen(instance) + 1);
    EVP_DigestUpdate(ctx, bare, len);
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    uint64_t w = 0;
    for (int i = 0; i < 8; i++)
        w = (w << 8) | md[i];
    return w;
}

long link_shard_pick(const char *const *names, size_t n, const char *bare, size_t len)
{
    long best = -1;
    uint64_t best_w = 0;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL)
            continue;
        uint64_t w = link_shard_weight(names[i], bare, len);
        /* Highest weight wins; a tie (not seen in practice) goes to the smaller name. */
        if (best < 0 || w > best_w || (w == best_w && strcmp(names[i], names[best]) < 0)) {
            best = (long)i;
            best_w = w;
        }
    }
    return best;
}
