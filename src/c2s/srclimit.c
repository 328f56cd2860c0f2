/* SPDX-License-Identifier: MIT */
/* Open client connections per source address, capped (RFC 6120 §13.12), counted in a map. */
#include "c2s/internal.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The map holds a source only while it has connections, so it never has more entries than
 * there are open connections (each far smaller than the connection it counts). The count
 * rides in the value pointer: a source costs one map entry and nothing else.
 */

void c2s_srclimit_init(c2s_srclimit_t *l, unsigned max)
{
    assert(max > 0);
    l->max = max;
    core_map_init(&l->by_key);
}

unsigned c2s_srclimit_count(const c2s_srclimit_t *l, const uint8_t *key, size_t len)
{
    return (unsigned)(uintptr_t)core_map_get(&l->by_key, (const char *)key, len);
}

bool c2s_srclimit_take(c2s_srclimit_t *l, const uint8_t *key, size_t len)
{
    unsigned n = c2s_srclimit_count(l, key, len);
    if (n >= l->max)
        return false;
    core_map_put(&l->by_key, (const char *)key, len, (void *)(uintptr_t)(n + 1));
    return true;
}

void c2s_srclimit_release(c2s_srclimit_t *l, const uint8_t *key, size_t len)
{
    unsigned n = c2s_srclimit_count(l, key, len);
    assert(n > 0);
    if (n == 1)
        core_map_del(&l->by_key, (const char *)key, len);
    else
        core_map_put(&l->by_key, (const char *)key, len, (void *)(uintptr_t)(n - 1));
}

size_t c2s_srclimit_sources(const c2s_srclimit_t *l)
{
    return l->by_key.count;
}

void c2s_srclimit_free(c2s_srclimit_t *l)
{
    if (l->by_key.buckets != NULL)
        core_map_free(&l->by_key);
}

/*
 * RFC 6120 §13.12 asks servers to limit connections per address and not to let one over the
 * limit proceed. On the STARTTLS port it gets our header and <policy-violation/> at once
 * (§4.9.3.14: a local service policy, here the configured count; not <resource-constraint/>
 * of §4.9.3.17, since the server is not short of anything), then the stream closes.
 */
void c2s_srclimit_refuse(c2s_conn_t *c)
{
    char text[96];
    snprintf(text, sizeof(text), "more than %u connections from one address",
             c->c2s->per_source.max);
    stream_error(c->s, CORE_STREAM_ERR_POLICY_VIOLATION, text);
}

/*
 * XEP-0368: on the direct TLS port nothing can be said before a TLS handshake, and making one
 * for a connection we refuse would spend on it what the limit is there to save. It is closed
 * at once.
 */
void c2s_srclimit_refuse_tls(c2s_t *c2s, net_conn_t *nc)
{
    core_log(c2s->log, CORE_LOG_INFO, nc->id,
             "%s: more than %u connections from one address: closed before TLS", nc->peer,
             c2s->per_source.max);
    net_conn_close(nc, false);
}
