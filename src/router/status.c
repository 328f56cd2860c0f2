/* SPDX-License-Identifier: MIT */
/* The router's <status/> for a control link: every link, what it bound, and the counters. */
#include "router/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void set_u64(xml_stanza_t *st, xml_node_t *n, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    xml_node_set_attr(st, n, NULL, name, buf);
}

/* XEP-0082 DateTime, UTC, whole seconds. */
static void set_time(xml_stanza_t *st, xml_node_t *n, const char *name, int64_t secs)
{
    time_t t = (time_t)secs;
    struct tm tm;
    char buf[32];
    gmtime_r(&t, &tm);
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    xml_node_set_attr(st, n, NULL, name, buf);
}

static void add_link(router_t *r, xml_stanza_t *st, const router_link_t *rl)
{
    xml_node_t *n = xml_node_add_element(st, st->root, LINK_NS, "link");
    set_u64(st, n, "id", rl->link->id);
    xml_node_set_attr(st, n, NULL, "kind", rl->stream ? "stream" : "in-process");
    if (rl->stream)
        xml_node_set_attr(st, n, NULL, "peer", rl->peer);
    if (rl->tls_version == NET_TLS_VERSION_1_3 || rl->tls_version == NET_TLS_VERSION_1_2)
        xml_node_set_attr(st, n, NULL, "tls",
                          rl->tls_version == NET_TLS_VERSION_1_3 ? "1.3" : "1.2");
    set_time(st, n, "since", rl->since);
    set_u64(st, n, "in", rl->in);
    set_u64(st, n, "out", rl->out);
    if (r->default_link == rl->link)
        xml_node_set_attr(st, n, NULL, "default", "true");
    for (size_t i = 0; i < rl->nnames; i++) {
        xml_node_t *name = xml_node_add_element(st, n, LINK_NS, "name");
        xml_node_add_text(st, name, rl->names[i], strlen(rl->names[i]));
    }
}

xml_stanza_t *router_status_stanza(router_t *r)
{
    xml_stanza_t *st = xml_stanza_new(LINK_NS, "status");
    set_u64(st, st->root, "links", r->stats.links);
    set_u64(st, st->root, "routed", r->stats.routed);
    set_u64(st, st->root, "bounced", r->stats.bounced);
    set_u64(st, st->root, "dropped", r->stats.dropped);
    /* Oldest first: the list is newest first, and there are a handful of links. */
    size_t n = 0;
    for (const router_link_t *rl = r->links; rl != NULL; rl = rl->next)
        n++;
    for (size_t k = n; k > 0; k--) {
        const router_link_t *rl = r->links;
        for (size_t i = 1; i < k; i++)
            rl = rl->next;
        add_link(r, st, rl);
    }
    return st;
}
