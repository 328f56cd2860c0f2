/* SPDX-License-Identifier: MIT */
/* Routing: the table of bound names, the checks on 'from', and bounces. */
#include "router/internal.h"

#include "core/alloc.h"
#include "net/tls.h"
#include "xml/dispatch.h"

#include <errno.h>
#include <string.h>
#include <time.h>

static void hub_input(void *ctx, link_t *l, xml_stanza_t *st)
{
    router_input(ctx, l, st);
}

static int hub_bind(void *ctx, link_t *l, const char *name, bool default_route, bool trusted)
{
    return router_bind(ctx, l, name, default_route, trusted, NULL);
}

static void hub_unbind(void *ctx, link_t *l, const char *name)
{
    router_unbind(ctx, l, name);
}

static int hub_watch(void *ctx, link_t *l, const char *name, bool all)
{
    return router_watch(ctx, l, name, all);
}

static void hub_gone(void *ctx, link_t *l)
{
    router_link_gone(ctx, l);
}

static void hub_drained(void *ctx, link_t *l)
{
    router_link_drained(ctx, l);
}

char *router_prep_domain(router_t *r, const char *name)
{
    const char *dom;
    size_t len;
    if (jid_domain(r->jids, name, strlen(name), &dom, &len) < 0)
        return NULL;
    /* A name to bind is a bare domain: no node, no resource. */
    if (strchr(name, '@') != NULL || strchr(name, '/') != NULL)
        return NULL;
    return core_strndup(dom, len);
}

static router_route_t *route_get(router_t *r, const char *name, size_t len)
{
    return core_map_get(&r->routes, name, len);
}

/*
 * The route for the domain of the JID s, or NULL for none; -EINVAL if that domain is not
 * valid. The domain as written is tried first: a name in the table is prepared already, so a
 * hit needs no preparation, which is what nearly every stanza between our own components is.
 */
static int route_of(router_t *r, const char *s, router_route_t **rt)
{
    size_t len = strlen(s);
    const char *dom;
    size_t dlen;
    if (jid_domain_raw(s, len, &dom, &dlen) == 0 && (*rt = route_get(r, dom, dlen)) != NULL)
        return 0;
    if (jid_domain(r->jids, s, len, &dom, &dlen) < 0)
        return -EINVAL;
    *rt = route_get(r, dom, dlen);
    return 0;
}

static router_route_t *route_make(router_t *r, const char *prepared)
{
    size_t len = strlen(prepared);
    router_route_t *rt = route_get(r, prepared, len);
    if (rt == NULL) {
        rt = core_calloc(1, sizeof(*rt));
        rt->name = core_strdup(prepared);
        core_map_put(&r->routes, prepared, len, rt);
    }
    return rt;
}

static int mark_ours(router_t *r, const char *name)
{
    char *p = router_prep_domain(r, name);
    if (p == NULL) {
        core_log(r->log, CORE_LOG_ERROR, 0, "not a valid domain in the configuration: %s", name);
        return -EINVAL;
    }
    route_make(r, p)->ours = true;
    core_free(p);
    return 0;
}

/*
 * [router] certificate: the component port speaks TLS from the first byte. XEP-0114 has no
 * STARTTLS, so it is direct TLS or nothing; in-process links are not affected.
 */
static int tls_context(router_t *r)
{
    if (r->cfg->certificate == NULL)
        return 0;
    char err[256];
    net_tls_server_opts_t o = {.cert_file = r->cfg->certificate, .key_file = r->cfg->key};
    if (net_tls_ctx_new_server(&o, &r->tls, err, sizeof(err)) < 0) {
        core_log(r->log, CORE_LOG_ERROR, 0, "router TLS: %s", err);
        return -EINVAL;
    }
    return 0;
}

/* A configured name several links may bind (docs/link-protocol.md, "Shards"). */
static void mark_shared(router_t *r, const char *name)
{
    char *p = router_prep_domain(r, name);
    router_route_t *rt = route_make(r, p);
    core_free(p);
    if (rt->shared)
        return;
    rt->shared = true;
    r->shared = core_realloc(r->shared, (r->nshared + 1) * sizeof(*r->shared));
    r->shared[r->nshared++] = rt;
}

int router_new(net_ctx_t *net, const core_log_t *log, const core_cfg_t *cfg, router_t **out)
{
    router_t *r = core_calloc(1, sizeof(*r));
    r->net = net;
    r->log = log;
    r->all_cfg = cfg;
    r->cfg = core_cfg_get(cfg, "router");
    r->jids = jid_cache_new(4096);
    core_map_init(&r->routes);
    r->limits = xml_limits_default;
    r->limits.max_stanza_bytes = r->cfg->max_stanza_size;
    r->hub = (link_hub_t){
        .ctx = r,
        .input = hub_input,
        .bind = hub_bind,
        .unbind = hub_unbind,
        .watch = hub_watch,
        .gone = hub_gone,
        .drained = hub_drained,
    };
    size_t pos = 0;
    const router_component_config_t *c;
    int err = 0;
    while (err == 0 && (c = core_cfg_next(cfg, "component", &pos)) != NULL) {
        err = mark_ours(r, c->name);
        if (err == 0 && c->shared)
            mark_shared(r, c->name);
        for (size_t i = 0; err == 0 && i < c->bind.count; i++)
            err = mark_ours(r, c->bind.items[i]);
    }
    if (err == 0)
        err = tls_context(r);
    if (err < 0) {
        router_free(r);
        return err;
    }
    *out = r;
    return 0;
}

int router_start(router_t *r)
{
    int err = net_listen(r->net, r->cfg->listen, router_accept, r, &r->listener);
    if (err < 0) {
        core_log(r->log, CORE_LOG_ERROR, 0, "cannot listen on %s: %s", r->cfg->listen,
                 uv_strerror(err));
        return err;
    }
    core_log(r->log, CORE_LOG_INFO, 0, "listening on %s for components (port %d%s)", r->cfg->listen,
             net_listener_port(r->listener), r->tls != NULL ? ", TLS" : "");
    return 0;
}

int router_port(const router_t *r)
{
    return r->listener ? net_listener_port(r->listener) : -1;
}

const link_hub_t *router_hub(router_t *r)
{
    return &r->hub;
}

void router_get_stats(const router_t *r, router_stats_t *out)
{
    *out = r->stats;
}

void router_stop(router_t *r)
{
    r->stopping = true;
    if (r->listener != NULL) {
        net_listener_close(r->listener);
        r->listener = NULL;
    }
    router_sessions_shutdown(r);
}

static void free_route(void *ud, const char *key, void *v)
{
    router_route_t *rt = v;
    core_free(rt->members);
    core_free(rt->sent);
    core_free(rt->name);
    core_free(rt);
}

void router_free(router_t *r)
{
    r->stopping = true; /* the links that go now tell no one */
    while (r->links != NULL)
        router_link_gone(r, r->links->link);
    core_map_each(&r->routes, free_route, NULL);
    core_map_free(&r->routes);
    router_shards_free(r);
    jid_cache_free(r->jids);
    net_tls_ctx_free(r->tls);
    core_free(r);
}

/* ---- links and names ---- */

static router_link_t *link_record(router_t *r, link_t *l, const router_component_config_t *cfg)
{
    router_link_t *rl = l->hub_data;
    if (rl == NULL) {
        rl = core_calloc(1, sizeof(*rl));
        rl->link = l;
        rl->cfg = cfg;
        rl->since = (int64_t)time(NULL);
        rl->next = r->links;
        r->links = rl;
        l->hub_data = rl;
        if (l->id == 0)
            l->id = ++r->next_link_id;
        r->stats.links++;
    }
    return rl;
}

static bool watches(const router_link_t *rl, const char *prepared)
{
    if (rl->watch_all)
        return true;
    for (size_t i = 0; i < rl->nwatch; i++) {
        if (strcmp(rl->watch[i], prepared) == 0)
            return true;
    }
    return false;
}

/*
 * Tells every link that watches the prepared name, except the one that holds it (src), that
 * it is bound or unbound now (docs/link-protocol.md). Through deliver, like a stanza, so it
 * comes after everything routed to the watcher before. Only bindings: what a name going away
 * means is the watcher's business. Not while the router stops: every link goes then, and
 * the components reconnect to the next router.
 */
static void notify(router_t *r, link_t *src, const char *name, bool bound)
{
    if (r->stopping)
        return;
    xml_stanza_t *st = NULL;
    for (router_link_t *rl = r->links; rl != NULL; rl = rl->next) {
        if (rl->link == src || !watches(rl, name))
            continue;
        if (st == NULL) {
            st = xml_stanza_new(LINK_NS, bound ? "bound" : "unbound");
            xml_node_set_attr(st, st->root, NULL, "name", name);
        }
        if (rl->link->ops->deliver(rl->link, st) < 0)
            core_log(r->log, CORE_LOG_WARN, rl->link->id, "%s missed that %s was %s",
                     rl->link->name ? rl->link->name : "a watcher", name,
                     bound ? "bound" : "unbound");
    }
    xml_stanza_unref(st);
}

int router_watch(router_t *r, link_t *l, const char *name, bool all)
{
    router_link_t *rl = link_record(r, l, NULL);
    if (all) {
        rl->watch_all = true;
        return 0;
    }
    char *p = name != NULL ? router_prep_domain(r, name) : NULL;
    if (p == NULL)
        return -EINVAL;
    for (size_t i = 0; i < rl->nwatch; i++) {
        if (strcmp(rl->watch[i], p) == 0) {
            core_free(p); /* watched already */
            return 0;
        }
    }
    rl->watch = core_realloc(rl->watch, (rl->nwatch + 1) * sizeof(char *));
    rl->watch[rl->nwatch++] = p;
    core_log(r->log, CORE_LOG_DEBUG, l->id, "%s watches %s", l->name ? l->name : "link", p);
    return 0;
}

static bool may_bind(const router_link_t *rl, router_t *r, const char *prepared)
{
    const router_component_config_t *c = rl->cfg;
    if (c == NULL)
        return true;
    char *p = router_prep_domain(r, c->name);
    bool ok = p != NULL && strcmp(p, prepared) == 0;
    core_free(p);
    for (size_t i = 0; !ok && i < c->bind.count; i++) {
        p = router_prep_domain(r, c->bind.items[i]);
        ok = p != NULL && strcmp(p, prepared) == 0;
        core_free(p);
    }
    return ok;
}

static void add_name(router_link_t *rl, char *prepared)
{
    rl->names = core_realloc(rl->names, (rl->nnames + 1) * sizeof(char *));
    rl->names[rl->nnames++] = prepared;
}

/*
 * A shared name (docs/link-protocol.md, "Shards"): one more shard, never a conflict.
 * Watchers hear <bound/> when the first shard binds it and <unbound/> when the last goes.
 * Takes p.
 */
static int bind_shared(router_t *r, router_link_t *rl, router_route_t *rt, char *p)
{
    link_t *l = rl->link;
    if (!router_shard_add(rt, l)) {
        core_free(p);
        return 0;
    }
    add_name(rl, p);
    if (l->name == NULL)
        l->name = rt->name;
    core_log(r->log, CORE_LOG_INFO, l->id, "bound %s as shard %zu", rt->name, rt->nmembers);
    if (rt->nmembers == 1)
        notify(r, l, rt->name, true);
    router_shards_changed(r);
    return 0;
}

int router_bind(router_t *r, link_t *l, const char *name, bool default_route, bool trusted,
                const router_component_config_t *cfg)
{
    router_link_t *rl = link_record(r, l, cfg);
    if (default_route) {
        if (!trusted && (rl->cfg == NULL || !rl->cfg->default_route))
            return -EPERM;
        if (r->default_link != NULL && r->default_link != l)
            return -EEXIST;
        r->default_link = l;
        rl->default_route = true;
        core_log(r->log, CORE_LOG_INFO, l->id, "%s holds the default route", l->name);
        return 0;
    }
    char *p = router_prep_domain(r, name);
    if (p == NULL)
        return -EINVAL;
    if (!trusted && !may_bind(rl, r, p)) {
        core_free(p);
        return -EPERM;
    }
    router_route_t *rt = route_make(r, p);
    if (rt->shared)
        return bind_shared(r, rl, rt, p);
    if (rt->link != NULL) {
        core_free(p);
        return rt->link == l ? 0 : -EEXIST;
    }
    rt->link = l;
    if (trusted)
        rt->ours = true;
    rl->names = core_realloc(rl->names, (rl->nnames + 1) * sizeof(char *));
    rl->names[rl->nnames++] = p;
    if (l->name == NULL)
        l->name = rt->name;
    core_log(r->log, CORE_LOG_INFO, l->id, "bound %s", rt->name);
    notify(r, l, rt->name, true);
    /* A shard's own name makes it one that stanzas may go to. */
    router_shards_changed(r);
    return 0;
}

static void drop_route(router_t *r, router_link_t *rl, size_t i)
{
    char *name = rl->names[i];
    size_t len = strlen(name);
    router_route_t *rt = route_get(r, name, len);
    bool last = true; /* the name is unbound now: watchers hear of it */
    if (rt != NULL && rt->shared) {
        router_shard_remove(rt, rl->link);
        last = rt->nmembers == 0;
    } else if (rt != NULL && rt->link == rl->link) {
        rt->link = NULL;
        if (!rt->ours) {
            core_map_del(&r->routes, name, len);
            free_route(NULL, NULL, rt);
        }
    }
    core_log(r->log, CORE_LOG_INFO, rl->link->id, "unbound %s", name);
    if (last)
        notify(r, rl->link, name, false);
    core_free(name);
    rl->names[i] = rl->names[--rl->nnames];
    router_shards_changed(r);
}

void router_unbind(router_t *r, link_t *l, const char *name)
{
    router_link_t *rl = l->hub_data;
    char *p = rl ? router_prep_domain(r, name) : NULL;
    if (p == NULL)
        return;
    for (size_t i = 0; i < rl->nnames; i++) {
        if (strcmp(rl->names[i], p) == 0) {
            drop_route(r, rl, i);
            break;
        }
    }
    core_free(p);
}

/* ---- flow control ---- */

/* Pauses src until dest drains (once per pair: a link waits on each destination once). */
static void throttle(router_t *r, router_link_t *src, router_link_t *dest)
{
    for (size_t i = 0; i < dest->nwaiters; i++) {
        if (dest->waiters[i] == src->link)
            return;
    }
    dest->waiters = core_realloc(dest->waiters, (dest->nwaiters + 1) * sizeof(link_t *));
    dest->waiters[dest->nwaiters++] = src->link;
    core_log(r->log, CORE_LOG_DEBUG, src->link->id, "%s paused until %s catches up",
             src->link->name ? src->link->name : "link",
             dest->link->name ? dest->link->name : "link");
    if (src->blocked_on++ == 0)
        src->link->ops->pause(src->link, true);
}

void router_link_drained(router_t *r, link_t *l)
{
    router_link_t *rl = l->hub_data;
    if (rl == NULL)
        return;
    link_t **waiters = rl->waiters;
    size_t n = rl->nwaiters;
    rl->waiters = NULL;
    rl->nwaiters = 0;
    for (size_t i = 0; i < n; i++) {
        router_link_t *w = waiters[i]->hub_data;
        if (w != NULL && w->blocked_on > 0 && --w->blocked_on == 0)
            w->link->ops->pause(w->link, false);
    }
    core_free(waiters);
}

/* A link that goes away no longer waits for anyone, and nobody waits for it. */
static void forget_waits(router_t *r, router_link_t *gone)
{
    router_link_drained(r, gone->link);
    for (router_link_t *rl = r->links; rl != NULL; rl = rl->next) {
        for (size_t i = 0; i < rl->nwaiters; i++) {
            if (rl->waiters[i] == gone->link) {
                rl->waiters[i] = rl->waiters[--rl->nwaiters];
                break;
            }
        }
    }
}

void router_link_gone(router_t *r, link_t *l)
{
    router_link_t *rl = l->hub_data;
    if (rl == NULL)
        return;
    forget_waits(r, rl);
    if (l->name != NULL && rl->nnames > 0)
        l->name = NULL; /* it pointed into a route that may go away now */
    while (rl->nnames > 0)
        drop_route(r, rl, rl->nnames - 1);
    if (r->default_link == l)
        r->default_link = NULL;
    for (router_link_t **pp = &r->links; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == rl) {
            *pp = rl->next;
            break;
        }
    }
    core_free(rl->names);
    for (size_t i = 0; i < rl->nwatch; i++)
        core_free(rl->watch[i]);
    core_free(rl->watch);
    core_free(rl);
    l->hub_data = NULL;
    r->stats.links--;
}

/* ---- routing ---- */

/*
 * Answers a stanza that cannot be delivered (RFC 6120 §8.3): the same stanza back to its
 * sender, addresses swapped, type 'error', with the condition. Errors are never answered.
 */
static void bounce(router_t *r, link_t *l, xml_stanza_t *st, core_stanza_err_t cond)
{
    xml_stanza_t *b = xml_stanza_error_reply(st, cond);
    if (b == NULL) {
        r->stats.dropped++;
        core_log(r->log, CORE_LOG_DEBUG, l->id, "undeliverable error stanza to %s dropped",
                 xml_stanza_to(st));
        return;
    }
    const char *to = xml_stanza_to(st);
    r->stats.bounced++;
    core_log(r->log, CORE_LOG_DEBUG, l->id, "bounced a stanza to %s: %s", to ? to : "(none)",
             core_stanza_err_name(cond));
    /* If the sender cannot take its bounce either, there is no one left to tell. */
    if (l->ops->deliver(l, b) < 0)
        r->stats.dropped++;
    else if (l->hub_data != NULL)
        ((router_link_t *)l->hub_data)->out++;
    xml_stanza_unref(b);
}

static bool routable(const xml_stanza_t *st)
{
    return xml_stanza_kind(st) != XMLS_KIND_OTHER ||
        xml_node_is(st->root, XMLS_NS_CONTENT, "route");
}

void router_input(router_t *r, link_t *l, xml_stanza_t *st)
{
    if (!routable(st)) {
        l->ops->close(l, CORE_STREAM_ERR_UNSUPPORTED_STANZA_TYPE);
        return;
    }
    const char *to = xml_stanza_to(st);
    const char *from = xml_stanza_from(st);
    if (to == NULL || from == NULL) {
        l->ops->close(l, CORE_STREAM_ERR_IMPROPER_ADDRESSING);
        return;
    }
    router_route_t *rt;
    /* RFC 6120 §4.9.3.9: a link may only send from the names it has bound. */
    if (route_of(r, from, &rt) < 0 || rt == NULL || !router_route_held_by(rt, l)) {
        core_log(r->log, CORE_LOG_INFO, l->id, "%s sent from a name it does not own",
                 l->name ? l->name : "link");
        l->ops->close(l, CORE_STREAM_ERR_INVALID_FROM);
        return;
    }
    router_link_t *src = l->hub_data;
    src->in++;
    if (route_of(r, to, &rt) < 0) {
        bounce(r, l, st, CORE_STANZA_ERR_JID_MALFORMED);
        return;
    }
    link_t *dest = rt == NULL ? NULL : rt->shared ? router_shard_dest(r, rt, to, from) : rt->link;
    if (dest == NULL && (rt == NULL || !rt->ours))
        dest = r->default_link;
    if (dest == NULL) {
        bounce(r, l, st,
               rt != NULL ? CORE_STANZA_ERR_SERVICE_UNAVAILABLE
                          : CORE_STANZA_ERR_REMOTE_SERVER_NOT_FOUND);
        return;
    }
    if (dest->ops->deliver(dest, st) < 0) {
        bounce(r, l, st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    }
    r->stats.routed++;
    ((router_link_t *)dest->hub_data)->out++;
    /* A fast sender must not bury a slower receiver: stop reading the sender meanwhile. */
    if (dest->ops->backlog != NULL && l->ops->pause != NULL && dest != l &&
        dest->ops->backlog(dest) > LINK_BACKLOG_HIGH)
        throttle(r, src, dest->hub_data);
}
