/* SPDX-License-Identifier: MIT */
/* The router: moves stanzas between component links by the domain of 'to', nothing more. */
#ifndef PARLEY_ROUTER_H
#define PARLEY_ROUTER_H

#include "core/config.h"
#include "core/log.h"
#include "link/link.h"
#include "net/net.h"

#include <stdint.h>

/* [router] */
typedef struct router_config {
    char *listen; /* where XEP-0114 components connect */
    uint64_t max_stanza_size; /* bytes */
    uint64_t handshake_timeout_ms;
    uint64_t stall_timeout_ms; /* a link that does not read its backlog for this long is closed */
    /* The router's side: with both, the component port speaks TLS from the first byte. */
    char *certificate; /* PEM chain */
    char *key; /* PEM, unencrypted */
    /* A component's side (parleyd c2s, sm, muc): how it reaches a remote router. */
    bool tls; /* direct TLS to the router, verifying its certificate */
    char *ca_file; /* PEM trust anchors; NULL: the system store */
    char *server_name; /* the name the certificate must carry; NULL: the host of listen */
} router_config_t;

/* [component "domain"]: a component that may connect, and what it may bind. */
typedef struct router_component_config {
    char *name; /* the label: the component's domain */
    char *secret; /* inline, or read from secret_file by the loader */
    char *secret_file;
    core_cfg_list_t bind; /* more names it may bind (docs/link-protocol.md) */
    bool default_route; /* it may claim the default route */
    bool control; /* it may ask for status: the router's and the components' (parleyctl) */
    bool shared; /* several links may bind the name at once: shards (docs/link-protocol.md) */
} router_component_config_t;

extern const core_cfg_section_t router_cfg_section;

/*
 * Where a component on this host reaches the router configured by rc: [router] listen, with
 * a wildcard host (none, "*", 0.0.0.0, [::]) made loopback. Writes "host:port" to out.
 */
void router_config_address(const router_config_t *rc, char *out, size_t cap);
extern const core_cfg_section_t router_component_cfg_section;

/* The [component "name"] section of cfg (borrowed), matched as written; NULL if none. */
const router_component_config_t *router_config_component(const core_cfg_t *cfg, const char *name);

/*
 * The name a component verifies in the router's certificate: [router] server_name, else the
 * host part of the address router_config_address gives (brackets of an IPv6 literal removed).
 * Writes it to out.
 */
void router_config_tls_name(const router_config_t *rc, char *out, size_t cap);

typedef struct router router_t;

/* Counters, for status and tests. */
typedef struct router_stats {
    uint64_t routed; /* stanzas delivered to a link */
    uint64_t bounced; /* stanzas answered with an error by the router */
    uint64_t dropped; /* undeliverable error stanzas, dropped (never bounced) */
    uint64_t links; /* links connected now */
} router_stats_t;

/*
 * A router configured from cfg (borrowed; must outlive the router). Prepares every
 * configured domain; returns 0 and *out, or -EINVAL after logging which name is bad.
 */
int router_new(net_ctx_t *net, const core_log_t *log, const core_cfg_t *cfg, router_t **out);

/* Starts listening for components on [router] listen. Returns 0 or a negative libuv error. */
int router_start(router_t *r);
/* The port the component listener is bound to (for port 0 in tests), or -1. */
int router_port(const router_t *r);

/* The router as in-process links see it (valid while the router lives). */
const link_hub_t *router_hub(router_t *r);

/* Stops accepting and closes every stream link with <system-shutdown/>. */
void router_stop(router_t *r);
/* Frees the router; call after router_stop once the loop has run the closes. */
void router_free(router_t *r);

void router_get_stats(const router_t *r, router_stats_t *out);

#endif
