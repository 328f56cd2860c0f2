/* SPDX-License-Identifier: MIT */
/* In-process links: stanza trees pass by reference, delivered in order from the loop. */
#include "link/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

/* A queue that fills faster than the loop drains it is a bug or a flood: refuse, don't grow. */
#define QUEUE_MAX 65536

typedef struct stanza_queue {
    xml_stanza_t **v;
    size_t head;
    size_t len;
    size_t cap;
} stanza_queue_t;

typedef struct inproc {
    link_endpoint_t base;
    link_t link; /* what the router sees */
    const link_hub_t *hub;
    const link_endpoint_ops_t *ops;
    void *ud;
    const core_log_t *log;
    uv_idle_t idle;
    stanza_queue_t to_router;
    stanza_queue_t to_component;
    char *name;
    bool announced; /* on_up has run */
    bool down; /* the router closed the link */
    bool down_told; /* hub->gone and on_down have run */
    bool paused; /* the router takes nothing from the component for now */
} inproc_t;

static int queue_push(stanza_queue_t *q, xml_stanza_t *st)
{
    if (q->len == QUEUE_MAX)
        return -ENOBUFS;
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        xml_stanza_t **v = core_malloc(cap * sizeof(*v));
        for (size_t i = 0; i < q->len; i++)
            v[i] = q->v[(q->head + i) % q->cap];
        core_free(q->v);
        q->v = v;
        q->cap = cap;
        q->head = 0;
    }
    q->v[(q->head + q->len) % q->cap] = xml_stanza_ref(st);
    q->len++;
    return 0;
}

static xml_stanza_t *queue_pop(stanza_queue_t *q)
{
    xml_stanza_t *st = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return st;
}

static void queue_clear(stanza_queue_t *q)
{
    while (q->len > 0)
        xml_stanza_unref(queue_pop(q));
    core_free(q->v);
    memset(q, 0, sizeof(*q));
}

static void on_idle(uv_idle_t *h);

static void wake(inproc_t *ip)
{
    uv_idle_start(&ip->idle, on_idle);
}

static void tell_down(inproc_t *ip)
{
    if (ip->down_told)
        return;
    ip->down_told = true;
    ip->hub->gone(ip->hub->ctx, &ip->link);
    queue_clear(&ip->to_router);
    queue_clear(&ip->to_component);
    if (ip->announced && ip->ops->on_down != NULL)
        ip->ops->on_down(ip->ud);
}

/* Runs once per loop iteration while there is work; takes only what was queued when it
 * started, so two components answering each other cannot starve the loop. */
static void on_idle(uv_idle_t *h)
{
    inproc_t *ip = h->data;
    if (ip->down) {
        tell_down(ip);
        uv_idle_stop(h);
        return;
    }
    if (!ip->announced) {
        ip->announced = true;
        if (ip->ops->on_up != NULL)
            ip->ops->on_up(ip->ud);
    }
    for (size_t n = ip->paused ? 0 : ip->to_router.len; n > 0 && !ip->down; n--) {
        xml_stanza_t *st = queue_pop(&ip->to_router);
        ip->hub->input(ip->hub->ctx, &ip->link, st);
        xml_stanza_unref(st);
    }
    for (size_t n = ip->to_component.len; n > 0 && !ip->down; n--) {
        xml_stanza_t *st = queue_pop(&ip->to_component);
        if (!link_notice_take(ip->ops, ip->ud, st)) {
            ip->base.stanzas_in++;
            ip->ops->on_stanza(ip->ud, st);
        }
        xml_stanza_unref(st);
    }
    if (ip->down)
        return; /* the next run tells everyone */
    if ((ip->paused || ip->to_router.len == 0) && ip->to_component.len == 0)
        uv_idle_stop(h);
}

static inproc_t *from_link(link_t *l)
{
    return (inproc_t *)((char *)l - offsetof(inproc_t, link));
}

static int link_deliver(link_t *l, xml_stanza_t *st)
{
    inproc_t *ip = from_link(l);
    if (ip->down)
        return -EPIPE;
    int err = queue_push(&ip->to_component, st);
    if (err < 0) {
        core_log(ip->log, CORE_LOG_WARN, l->id, "in-process queue to %s full", ip->name);
        return err;
    }
    wake(ip);
    return 0;
}

static void link_close(link_t *l, core_stream_err_t why)
{
    inproc_t *ip = from_link(l);
    core_log(ip->log, CORE_LOG_WARN, l->id, "router closed the link of %s: %s", ip->name,
             core_stream_err_name(why));
    ip->down = true;
    wake(ip);
}

/* The component's stanzas wait in its queue (which is bounded) while paused. */
static void link_pause(link_t *l, bool paused)
{
    inproc_t *ip = from_link(l);
    ip->paused = paused;
    if (!paused)
        wake(ip);
}

static const link_ops_t inproc_link_ops = {
    .deliver = link_deliver,
    .close = link_close,
    .pause = link_pause,
};

static int ep_send(link_endpoint_t *e, xml_stanza_t *st)
{
    inproc_t *ip = (inproc_t *)e;
    if (ip->down || !ip->announced)
        return -ENOTCONN;
    int err = queue_push(&ip->to_router, st);
    if (err == 0)
        wake(ip);
    return err;
}

static bool ep_up(const link_endpoint_t *e)
{
    const inproc_t *ip = (const inproc_t *)e;
    return ip->announced && !ip->down;
}

static void on_idle_closed(uv_handle_t *h)
{
    inproc_t *ip = h->data;
    core_free(ip->name);
    core_free(ip);
}

static void ep_close(link_endpoint_t *e)
{
    inproc_t *ip = (inproc_t *)e;
    ip->announced = false; /* no on_down: the component asked for this */
    tell_down(ip);
    uv_idle_stop(&ip->idle);
    uv_close((uv_handle_t *)&ip->idle, on_idle_closed);
}

static const link_endpoint_vtable_t inproc_vtable = {
    .send = ep_send,
    .up = ep_up,
    .close = ep_close,
};

link_endpoint_t *link_inproc_open(uv_loop_t *loop, const link_hub_t *hub, const link_options_t *opt,
                                  const link_endpoint_ops_t *ops, void *ud, const core_log_t *log)
{
    inproc_t *ip = core_calloc(1, sizeof(*ip));
    ip->base.vt = &inproc_vtable;
    ip->link.ops = &inproc_link_ops;
    ip->hub = hub;
    ip->ops = ops;
    ip->ud = ud;
    ip->log = log;
    ip->name = core_strdup(opt->name);
    ip->link.name = ip->name;
    uv_idle_init(loop, &ip->idle);
    ip->idle.data = ip;
    int err = hub->bind(hub->ctx, &ip->link, opt->name, false, true);
    for (size_t i = 0; err == 0 && i < opt->n_extra; i++)
        err = hub->bind(hub->ctx, &ip->link, opt->extra_names[i], false, true);
    if (err == 0 && opt->default_route)
        err = hub->bind(hub->ctx, &ip->link, NULL, true, true);
    /* Watched from the start: nothing bound or unbound from now on is missed. */
    for (size_t i = 0; err == 0 && i < opt->n_watch; i++)
        err = hub->watch(hub->ctx, &ip->link, opt->watch[i], false);
    if (err == 0 && opt->watch_all)
        err = hub->watch(hub->ctx, &ip->link, NULL, true);
    if (err < 0) {
        core_log(log, CORE_LOG_ERROR, 0, "in-process link %s: cannot bind or watch its names: %s",
                 opt->name, strerror(-err));
        ip->down_told = true;
        hub->gone(hub->ctx, &ip->link);
        uv_close((uv_handle_t *)&ip->idle, on_idle_closed);
        return NULL;
    }
    wake(ip);
    return &ip->base;
}
