/* SPDX-License-Identifier: MIT */
/* The endpoint interface and the XEP-0114 handshake digest. */
#include "link/internal.h"

#include "core/alloc.h"

#include <openssl/evp.h>
#include <string.h>

int link_endpoint_send(link_endpoint_t *e, xml_stanza_t *st)
{
    int rc = e->vt->send(e, st);
    if (rc == 0)
        e->stanzas_out++;
    return rc;
}

void link_endpoint_counts(const link_endpoint_t *e, uint64_t *in, uint64_t *out)
{
    *in = e->stanzas_in;
    *out = e->stanzas_out;
}

bool link_endpoint_up(const link_endpoint_t *e)
{
    return e->vt->up(e);
}

void link_endpoint_close(link_endpoint_t *e)
{
    e->vt->close(e);
}

/* <shards name='…'><shard name='…'/>…</shards>: hands the member list to ops->on_shards. */
static void shards_take(const link_endpoint_ops_t *ops, void *ud, const xml_node_t *r)
{
    const char *name = xml_node_attr(r, "name");
    if (name == NULL || ops->on_shards == NULL)
        return;
    size_t n = 0;
    for (const xml_node_t *c = xml_node_first_element(r); c != NULL; c = xml_node_next_element(c))
        n++;
    const char **members = core_calloc(n + 1, sizeof(char *));
    n = 0;
    for (const xml_node_t *c = xml_node_first_element(r); c != NULL; c = xml_node_next_element(c)) {
        const char *m = xml_node_attr(c, "name");
        if (xml_node_is(c, LINK_NS, "shard") && m != NULL)
            members[n++] = m;
    }
    ops->on_shards(ud, name, members, n);
    core_free(members);
}

bool link_notice_take(const link_endpoint_ops_t *ops, void *ud, const xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    if (xml_node_is(r, LINK_NS, "shards")) {
        shards_take(ops, ud, r);
        return true;
    }
    bool bound = xml_node_is(r, LINK_NS, "bound");
    if (!bound && !xml_node_is(r, LINK_NS, "unbound"))
        return false;
    const char *name = xml_node_attr(r, "name");
    if (name != NULL && ops->on_name != NULL)
        ops->on_name(ud, name, bound);
    return true;
}

void link_handshake_digest(const char *id, const char *secret, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha1(), NULL);
    EVP_DigestUpdate(ctx, id, strlen(id));
    EVP_DigestUpdate(ctx, secret, strlen(secret));
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < mdlen && i < 20; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}
