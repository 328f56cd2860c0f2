/* SPDX-License-Identifier: MIT */
/* Declarations shared by the files of src/router only. */
#ifndef PARLEY_ROUTER_INTERNAL_H
#define PARLEY_ROUTER_INTERNAL_H

#include "core/map.h"
#include "jid/jid.h"
#include "router/router.h"
#include "net/tls.h"
#include "stream/stream.h"

#include <stddef.h>
#include <stdint.h>

/* ---- router.c ---- */

/* A name the router knows: configured (ours) and/or bound by a link. */
typedef struct router_route {
    char *name; /* prepared domain */
    link_t *link; /* NULL: not bound now */
    bool ours; /* configured: bounce service-unavailable, not remote-server-not-found */
    bool shared; /* configured shared: bound by the links in members, not by link */
    link_t **members; /* shared: the links that bound it, in bind order */
    size_t nmembers;
    char *sent; /* shared: the member list last sent to them ("a b"), owned, or NULL */
} router_route_t;

/* The router's record of one link: what it bound, what it may bind. */
typedef struct router_link {
    link_t *link;
    char **names; /* bound, prepared */
    size_t nnames;
    bool default_route;
    const router_component_config_t *cfg; /* NULL for trusted in-process links */
    link_t **waiters; /* links paused until this one drains */
    size_t nwaiters;
    unsigned blocked_on; /* how many links this one waits for (paused while > 0) */
    char **watch; /* names it watches, prepared (docs/link-protocol.md) */
    size_t nwatch;
    bool watch_all; /* it watches every name */
    bool stream; /* an XEP-0114 stream (else in-process) */
    int tls_version; /* stream over TLS: NET_TLS_VERSION_*; else 0 */
    char peer[64]; /* stream: the component's "ip:port" */
    int64_t since; /* when it attached: Unix time, seconds */
    uint64_t in; /* stanzas it sent that the router routed or bounced */
    uint64_t out; /* stanzas the router handed it: routed to it, or its bounces */
    struct router_link *next;
} router_link_t;

typedef struct router_session router_session_t;

struct router {
    net_ctx_t *net;
    const core_log_t *log;
    const router_config_t *cfg;
    const core_cfg_t *all_cfg;
    jid_cache_t *jids;
    core_map_t routes; /* prepared name → router_route_t */
    link_t *default_link;
    router_link_t *links; /* every attached link */
    router_session_t *sessions; /* XEP-0114 streams, for shutdown */
    net_listener_t *listener;
    net_tls_ctx_t *tls; /* owned; NULL: the component port is plain TCP */
    xml_limits_t limits;
    link_hub_t hub;
    router_stats_t stats;
    router_route_t **shared; /* the configured shared names (shard.c) */
    size_t nshared;
    uint64_t next_link_id;
    bool stopping;
};

/* Prepares a domain into a new string; NULL if it is not a valid domain. */
char *router_prep_domain(router_t *r, const char *name);

void router_input(router_t *r, link_t *l, xml_stanza_t *st);
int router_bind(router_t *r, link_t *l, const char *name, bool default_route, bool trusted,
                const router_component_config_t *cfg);
void router_unbind(router_t *r, link_t *l, const char *name);
/* From now on l hears when another link binds or unbinds name (every name if all). 0 or
 * -EINVAL (not a domain). */
int router_watch(router_t *r, link_t *l, const char *name, bool all);
void router_link_gone(router_t *r, link_t *l);
/* l's backlog is empty again: resume the links paused on its account. */
void router_link_drained(router_t *r, link_t *l);

/* ---- shard.c: names several links bind at once (docs/link-protocol.md, "Shards") ---- */

/* True when l holds rt: bound it, or is one of its shards. */
bool router_route_held_by(const router_route_t *rt, const link_t *l);
/* Adds l to the shards of rt (shared); false if it is one already. */
bool router_shard_add(router_route_t *rt, link_t *l);
/* Removes l from the shards of rt. */
void router_shard_remove(router_route_t *rt, link_t *l);
/*
 * The shard of the shared rt that gets a stanza to 'to' from 'from': rendezvous hashing of
 * the bare JID of 'to', or of 'from' when 'to' is the bare name and 'from' one of its users,
 * else the first shard by instance name. NULL when no shard has an instance name yet.
 */
link_t *router_shard_dest(router_t *r, router_route_t *rt, const char *to, const char *from);
/* Sends each shared name's shards its member list where it changed (<shards/>). */
void router_shards_changed(router_t *r);
void router_shards_free(router_t *r);

/* ---- status.c ---- */

/* The router's <status/> (docs/link-protocol.md, "Status"): its links and totals. New. */
xml_stanza_t *router_status_stanza(router_t *r);

/* ---- accept.c: the XEP-0114 side of stream links ---- */

void router_accept(void *ud, net_conn_t *c);
void router_sessions_shutdown(router_t *r);
/* The component config for a prepared domain, or NULL. */
const router_component_config_t *router_component_find(router_t *r, const char *domain);

#endif
