/* SPDX-License-Identifier: MIT */
/* The endpoint vtable shared by the two kinds of link. */
#ifndef PARLEY_LINK_INTERNAL_H
#define PARLEY_LINK_INTERNAL_H

#include "link/link.h"

typedef struct link_endpoint_vtable {
    int (*send)(link_endpoint_t *e, xml_stanza_t *st);
    bool (*up)(const link_endpoint_t *e);
    void (*close)(link_endpoint_t *e);
} link_endpoint_vtable_t;

/* The first member of each kind's endpoint struct. */
struct link_endpoint {
    const link_endpoint_vtable_t *vt;
    uint64_t stanzas_in; /* handed to ops->on_stanza */
    uint64_t stanzas_out; /* taken by send */
};

/*
 * If st is a router's <bound/> or <unbound/> notice (docs/link-protocol.md), hands it to
 * ops->on_name (when there is one), or a <shards/> list to ops->on_shards, and returns true;
 * else false. st is borrowed.
 */
bool link_notice_take(const link_endpoint_ops_t *ops, void *ud, const xml_stanza_t *st);

#endif
