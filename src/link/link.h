/* SPDX-License-Identifier: MIT */
/* Links between components and the router: one interface, in-process or over a stream. */
#ifndef PARLEY_LINK_H
#define PARLEY_LINK_H

#include "core/log.h"
#include "core/xmpp_error.h"
#include "net/net.h"
#include "net/tls.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The link protocol extension namespace (docs/link-protocol.md). */
#define LINK_NS "urn:parley:link:0"
/* A component's status query and answer (docs/link-protocol.md, "Status"). */
#define LINK_NS_STATUS "urn:parley:status"

/*
 * Flow control: when a link's backlog passes this many bytes, the router pauses the links
 * that feed it; the link calls hub->drained once its backlog is empty again.
 */
#define LINK_BACKLOG_HIGH (1024u * 1024u)

/* ---- the router's side: one link_t per connected component ---- */

typedef struct link link_t;

typedef struct link_ops {
    /*
     * Hands a stanza to the component. st is borrowed; the link keeps what it needs (a
     * reference in process, the bytes on a stream). Returns 0, or a negative error when the
     * link can no longer take it (closing, or its queue is full): the router then bounces
     * the stanza, so nothing is lost silently.
     */
    int (*deliver)(link_t *l, xml_stanza_t *st);
    /* Ends the link (a stream error on streams). The router is told through hub->gone. */
    void (*close)(link_t *l, core_stream_err_t why);
    /*
     * Flow control (optional, both or neither). backlog: bytes accepted by deliver but not
     * yet taken by the component. pause: stop (true) or restart (false) taking stanzas from
     * the component. A link whose backlog the router found too high calls hub->drained once
     * it has caught up.
     */
    size_t (*backlog)(link_t *l);
    void (*pause)(link_t *l, bool paused);
} link_ops_t;

struct link {
    const link_ops_t *ops;
    uint64_t id; /* for the logs */
    const char *name; /* the first bound name, for the logs (borrowed) */
    void *hub_data; /* the router's record of this link */
};

/* The router as a link sees it (implemented by src/router). */
typedef struct link_hub {
    void *ctx;
    /* A stanza from the component; st borrowed. */
    void (*input)(void *ctx, link_t *l, xml_stanza_t *st);
    /*
     * Binds a name, or claims the default route (name NULL, default_route true). trusted:
     * an in-process link, configured by the process itself. Returns 0, -EPERM (not allowed
     * for this link) or -EEXIST (another link holds it).
     */
    int (*bind)(void *ctx, link_t *l, const char *name, bool default_route, bool trusted);
    void (*unbind)(void *ctx, link_t *l, const char *name);
    /*
     * From now on, tells l (through ops->deliver, as a <bound/> or <unbound/> element in
     * LINK_NS) when another link binds or unbinds name, or any name with all true. Lasts as
     * long as the link. Returns 0 or -EINVAL (name is not a domain).
     */
    int (*watch)(void *ctx, link_t *l, const char *name, bool all);
    /* The link is gone: everything it bound is unbound. */
    void (*gone)(void *ctx, link_t *l);
    /* The link's backlog has drained: links paused on its account may send again. */
    void (*drained)(void *ctx, link_t *l);
} link_hub_t;

/* ---- the component's side: the same for both kinds ---- */

typedef struct link_endpoint link_endpoint_t;

typedef struct link_endpoint_ops {
    /* The link is up and every name is bound: the component may send. */
    void (*on_up)(void *ud);
    /* A stanza for the component; st is borrowed (take a reference to keep it). */
    void (*on_stanza)(void *ud, xml_stanza_t *st);
    /* The link is down (a stream endpoint then reconnects by itself, with backoff). */
    void (*on_down)(void *ud);
    /*
     * Optional: a watched name (link_options_t watch, watch_all) was bound (true) or unbound
     * (false) by another link. name is borrowed. Runs only while the link is up.
     */
    void (*on_name)(void *ud, const char *name, bool bound);
    /*
     * Optional: the router's member list of a shared name this link bound (<shards/>,
     * docs/link-protocol.md "Shards"): the instance names of its shards, sorted. Borrowed
     * for the call. Runs only while the link is up.
     */
    void (*on_shards)(void *ud, const char *name, const char *const *members, size_t n);
} link_endpoint_ops_t;

typedef struct link_options {
    const char *name; /* the component's domain (the XEP-0114 stream 'to') */
    const char *const *extra_names; /* more names to bind (Parley's extension) */
    size_t n_extra;
    bool default_route; /* claim the default route */
    const char *const *watch; /* names to watch (docs/link-protocol.md), each time it is up */
    size_t n_watch;
    bool watch_all; /* watch every name */
    /* stream links only */
    const char *router_addr; /* "127.0.0.1:5347" */
    const char *secret;
    uint64_t reconnect_min_ms; /* 0: 100 ms */
    uint64_t reconnect_max_ms; /* 0: 10 s */
    const xml_limits_t *limits; /* NULL: defaults */
    /*
     * Direct TLS to the router (XEP-0114 has no STARTTLS): a client context (borrowed; must
     * outlive the endpoint) and the name its certificate must carry (copied). NULL: plain TCP.
     */
    net_tls_ctx_t *tls;
    const char *tls_name;
    /* The TLS and XEP-0114 handshakes must be done within this; 0: 10 s. */
    uint64_t handshake_timeout_ms;
} link_options_t;

/*
 * An in-process link to the router behind hub: stanzas pass as trees, by reference, and are
 * delivered from the loop (never from inside the sender's call), in order. The names are
 * bound at once; on_up runs from the loop. Strings in opt are copied.
 */
link_endpoint_t *link_inproc_open(uv_loop_t *loop, const link_hub_t *hub, const link_options_t *opt,
                                  const link_endpoint_ops_t *ops, void *ud, const core_log_t *log);

/*
 * A stream link: connects to opt->router_addr over TCP, speaks XEP-0114 and binds the extra
 * names; reconnects with exponential backoff when the connection is lost. Strings in opt are
 * copied.
 */
link_endpoint_t *link_stream_open(net_ctx_t *net, const link_options_t *opt,
                                  const link_endpoint_ops_t *ops, void *ud, const core_log_t *log);

/*
 * How a component gets its link without knowing which kind it is: parleyd passes an opener
 * that calls link_inproc_open (parleyd all) or link_stream_open with the router's address
 * and the component's secret from the configuration (parleyd COMPONENT). Returns NULL if
 * the link cannot be opened (logged).
 */
typedef struct link_opener {
    void *ctx;
    link_endpoint_t *(*open)(void *ctx, const link_options_t *opt, const link_endpoint_ops_t *ops,
                             void *ud);
    /*
     * The names of the control components ([component "…"] with control = yes): the only
     * senders a component answers a status query from (borrowed; the configuration's).
     */
    const char *const *control;
    size_t ncontrol;
} link_opener_t;

/*
 * Sends a stanza to the router. st is borrowed. Returns 0, -ENOTCONN while the link is down
 * (the caller decides: bounce, queue or drop), or -ENOBUFS when the link's queue is full.
 */
int link_endpoint_send(link_endpoint_t *e, xml_stanza_t *st);

/* True while the link is up. */
bool link_endpoint_up(const link_endpoint_t *e);

/* Stanzas the component took from the link (in) and handed to it (out) since it opened. */
void link_endpoint_counts(const link_endpoint_t *e, uint64_t *in, uint64_t *out);

/* Closes the link and frees the endpoint; no callback runs after this. */
void link_endpoint_close(link_endpoint_t *e);

/* ---- status (docs/link-protocol.md, "Status") ---- */

/* One figure of a component's status answer. */
typedef struct link_status_count {
    const char *name;
    uint64_t value;
} link_status_count_t;

/* True if st is an <iq type='get'> whose payload is <status xmlns='urn:parley:status'/>. */
bool link_status_is_query(const xml_stanza_t *st);

/*
 * The answer to the status query st (borrowed): the counts as <count name value/> children
 * of <status/> when st comes from a name in o->control (the router guarantees that a link
 * sends only from names it bound), else the <forbidden/> error (RFC 6120 §8.3.3.5) and no
 * counts. A new reference.
 */
xml_stanza_t *link_status_reply(const link_opener_t *o, const xml_stanza_t *st,
                                const link_status_count_t *counts, size_t n);

/* ---- shards (docs/link-protocol.md, "Shards") ---- */

/*
 * The rendezvous weight of the shard named instance (its unique bound name) for the
 * prepared bare JID bare[0..len): the first 8 bytes, big-endian, of
 * SHA-256(instance || 0x00 || bare).
 */
uint64_t link_shard_weight(const char *instance, const char *bare, size_t len);
/*
 * The index in names[0..n) of the shard that owns bare (highest weight; a tie goes to the
 * smaller name); NULL entries are skipped. -1 when there is none.
 */
long link_shard_pick(const char *const *names, size_t n, const char *bare, size_t len);

/* ---- shared helpers ---- */

/* Lowercase hex SHA-1 of id + secret (XEP-0114 §3). out gets 41 bytes. */
void link_handshake_digest(const char *id, const char *secret, char out[41]);

#endif
