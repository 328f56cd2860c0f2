/* SPDX-License-Identifier: MIT */
/* Stream links: a component's XEP-0114 connection to the router, with reconnection. */
#include "link/internal.h"

#include "core/alloc.h"
#include "stream/stream.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

enum slink_state {
    SLINK_DOWN,
    SLINK_CONNECTING,
    SLINK_WAIT_HEADER,
    SLINK_WAIT_HANDSHAKE,
    SLINK_BINDING,
    SLINK_UP,
};

typedef struct slink {
    link_endpoint_t base;
    net_ctx_t *net;
    const core_log_t *log;
    const link_endpoint_ops_t *ops;
    void *ud;
    char *name;
    char *secret;
    char *addr;
    char **extra;
    size_t n_extra;
    bool default_route;
    char **watch;
    size_t n_watch;
    bool watch_all;
    xml_limits_t limits;
    bool has_limits;
    uint64_t min_ms;
    uint64_t max_ms;
    uint64_t backoff_ms;
    uint64_t handshake_ms;
    net_tls_ctx_t *tls; /* borrowed; NULL: plain TCP */
    char *tls_name; /* the name the router's certificate must carry */
    uv_timer_t retry;
    net_conn_t *conn; /* while connecting */
    stream_t *s; /* once connected */
    enum slink_state state;
    size_t binds_pending;
    bool closing; /* link_endpoint_close was called */
    bool timer_closed; /* the retry timer's handle is closed */
} slink_t;

static void start_connect(slink_t *sl);

static void maybe_free(slink_t *sl)
{
    if (!sl->closing || !sl->timer_closed || sl->conn != NULL || sl->s != NULL)
        return;
    for (size_t i = 0; i < sl->n_extra; i++)
        core_free(sl->extra[i]);
    core_free(sl->extra);
    for (size_t i = 0; i < sl->n_watch; i++)
        core_free(sl->watch[i]);
    core_free(sl->watch);
    core_free(sl->name);
    if (sl->secret != NULL) {
        OPENSSL_cleanse(sl->secret, strlen(sl->secret));
        core_free(sl->secret);
    }
    core_free(sl->addr);
    core_free(sl->tls_name);
    core_free(sl);
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

static void schedule_retry(slink_t *sl)
{
    sl->state = SLINK_DOWN;
    if (sl->closing)
        return;
    core_log(sl->log, CORE_LOG_INFO, 0, "link %s: reconnecting to %s in %llu ms", sl->name,
             sl->addr, (unsigned long long)sl->backoff_ms);
    uv_timer_start(&sl->retry, on_retry, sl->backoff_ms, 0);
    sl->backoff_ms = sl->backoff_ms * 2 > sl->max_ms ? sl->max_ms : sl->backoff_ms * 2;
}

static void send_element(slink_t *sl, xml_stanza_t *st)
{
    stream_send(sl->s, st);
    xml_stanza_unref(st);
}

static void send_bind(slink_t *sl, const char *name, bool dflt)
{
    xml_stanza_t *st = xml_stanza_new(LINK_NS, "bind");
    if (name != NULL)
        xml_node_set_attr(st, st->root, NULL, "name", name);
    if (dflt)
        xml_node_set_attr(st, st->root, NULL, "default", "true");
    sl->binds_pending++;
    send_element(sl, st);
}

/*
 * Not waited for: the router takes elements in order, so the watch holds for everything after
 * it, and waiting would hold back the stanzas routed to the link meanwhile.
 */
static void send_watch(slink_t *sl, const char *name)
{
    xml_stanza_t *st = xml_stanza_new(LINK_NS, "watch");
    if (name != NULL)
        xml_node_set_attr(st, st->root, NULL, "name", name);
    else
        xml_node_set_attr(st, st->root, NULL, "all", "true");
    send_element(sl, st);
}

static void on_watch_answer(slink_t *sl, xml_stanza_t *st)
{
    const char *result = xml_node_attr(st->root, "result");
    if (result != NULL && strcmp(result, "ok") == 0)
        return;
    const char *name = xml_node_attr(st->root, "name");
    const xml_node_t *cond = xml_node_first_element(st->root);
    core_log(sl->log, CORE_LOG_ERROR, stream_conn_id(sl->s),
             "link %s: the router refused to watch %s: %s", sl->name, name ? name : "every name",
             cond ? cond->name : "no reason");
}

static void become_up(slink_t *sl)
{
    sl->state = SLINK_UP;
    sl->backoff_ms = sl->min_ms;
    stream_set_deadline(sl->s, 0, CORE_STREAM_ERR_NONE);
    core_log(sl->log, CORE_LOG_INFO, stream_conn_id(sl->s), "link %s: up%s", sl->name,
             sl->tls != NULL ? " (TLS, certificate verified)" : "");
    if (sl->ops->on_up != NULL)
        sl->ops->on_up(sl->ud);
}

static void on_open(stream_t *s, xml_stanza_t *hdr)
{
    slink_t *sl = s->ud;
    const char *id = xml_node_attr(hdr->root, "id");
    if (sl->state != SLINK_WAIT_HEADER || id == NULL) {
        stream_error(s, CORE_STREAM_ERR_INVALID_XML, "expected a stream header with an id");
        return;
    }
    char digest[41];
    link_handshake_digest(id, sl->secret, digest);
    xml_stanza_t *hs = xml_stanza_new(XMLS_NS_CONTENT, "handshake");
    xml_node_add_text(hs, hs->root, digest, 40);
    sl->state = SLINK_WAIT_HANDSHAKE;
    send_element(sl, hs);
}

static void on_bind_answer(slink_t *sl, xml_stanza_t *st)
{
    const char *result = xml_node_attr(st->root, "result");
    const char *name = xml_node_attr(st->root, "name");
    if (result == NULL || strcmp(result, "ok") != 0) {
        const xml_node_t *cond = xml_node_first_element(st->root);
        core_log(sl->log, CORE_LOG_ERROR, stream_conn_id(sl->s),
                 "link %s: the router refused to bind %s: %s", sl->name,
                 name ? name : "the default route", cond ? cond->name : "no reason");
        stream_close(sl->s);
        return;
    }
    if (sl->binds_pending > 0 && --sl->binds_pending == 0 && sl->state == SLINK_BINDING)
        become_up(sl);
}

static void on_element(stream_t *s, xml_stanza_t *st)
{
    slink_t *sl = s->ud;
    const xml_node_t *root = st->root;
    if (xml_node_is(root, XMLS_NS_STREAMS, "error")) {
        const xml_node_t *cond = xml_node_first_element(root);
        core_log(sl->log, CORE_LOG_WARN, stream_conn_id(s), "link %s: router sent <%s/>", sl->name,
                 cond ? cond->name : "?");
        return;
    }
    switch (sl->state) {
    case SLINK_WAIT_HANDSHAKE:
        if (!xml_node_is(root, XMLS_NS_CONTENT, "handshake")) {
            stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, NULL);
            return;
        }
        sl->state = SLINK_BINDING;
        sl->binds_pending = 0;
        for (size_t i = 0; i < sl->n_extra; i++)
            send_bind(sl, sl->extra[i], false);
        if (sl->default_route)
            send_bind(sl, NULL, true);
        /* Again on every connection: a new router knows nothing of the old one's watches. */
        for (size_t i = 0; i < sl->n_watch; i++)
            send_watch(sl, sl->watch[i]);
        if (sl->watch_all)
            send_watch(sl, NULL);
        if (sl->binds_pending == 0)
            become_up(sl);
        return;
    case SLINK_BINDING:
    case SLINK_UP:
        if (xml_node_is(root, LINK_NS, "bind")) {
            on_bind_answer(sl, st);
            return;
        }
        if (xml_node_is(root, LINK_NS, "watch")) {
            on_watch_answer(sl, st);
            return;
        }
        /* The member list of a shared name comes as soon as it is bound, before the answer
         * to the bind of the shard's own name: taken while binding too. */
        if (xml_node_is(root, LINK_NS, "shards")) {
            link_notice_take(sl->ops, sl->ud, st);
            return;
        }
        if (sl->state == SLINK_UP && !link_notice_take(sl->ops, sl->ud, st)) {
            sl->base.stanzas_in++;
            sl->ops->on_stanza(sl->ud, st);
        }
        return;
    default:
        stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, NULL);
        return;
    }
}

static void on_gone(stream_t *s)
{
    slink_t *sl = s->ud;
    bool was_up = sl->state == SLINK_UP;
    /*
     * With TLS, net has logged why the handshake failed. Without it, a router that closes
     * before its header most likely wants TLS (it then logs "wrong version number").
     */
    if (sl->state == SLINK_WAIT_HEADER && sl->tls == NULL && !sl->closing)
        core_log(sl->log, CORE_LOG_WARN, stream_conn_id(s),
                 "link %s: %s closed the connection before its stream header"
                 " (does the router want TLS? [router] tls)",
                 sl->name, sl->addr);
    sl->s = NULL;
    if (was_up && !sl->closing && sl->ops->on_down != NULL)
        sl->ops->on_down(sl->ud);
    schedule_retry(sl);
    maybe_free(sl);
}

/* The router did not complete TLS, the header and the handshake in time: try again later. */
static void on_deadline(stream_t *s, core_stream_err_t cond)
{
    slink_t *sl = s->ud;
    core_log(sl->log, CORE_LOG_WARN, stream_conn_id(s),
             "link %s: no handshake with %s within %llu ms", sl->name, sl->addr,
             (unsigned long long)sl->handshake_ms);
    sl->state = SLINK_DOWN; /* logged: on_gone need not guess why */
    stream_error(s, cond, NULL);
}

static const stream_ops_t slink_stream_ops = {
    .on_open = on_open,
    .on_element = on_element,
    .on_gone = on_gone,
    .on_deadline = on_deadline,
};

static void on_connect(net_conn_t *c, int status)
{
    slink_t *sl = c->ud;
    sl->conn = NULL;
    if (status < 0 || sl->closing) {
        if (status < 0)
            core_log(sl->log, CORE_LOG_WARN, 0, "link %s: cannot connect to %s: %s", sl->name,
                     sl->addr, uv_strerror(status));
        else
            net_conn_close(c, false);
        schedule_retry(sl);
        maybe_free(sl);
        return;
    }
    sl->s = stream_new(c, XMLS_NS_COMPONENT, sl->has_limits ? &sl->limits : NULL, &slink_stream_ops,
                       sl, sl->log);
    sl->state = SLINK_WAIT_HEADER;
    stream_set_deadline(sl->s, sl->handshake_ms, CORE_STREAM_ERR_CONNECTION_TIMEOUT);
    /*
     * Direct TLS, verifying the router's certificate and name (net/tls.h: SSL_VERIFY_PEER and
     * SSL_set1_host). Our header is held until the handshake completes, then sent encrypted.
     */
    if (sl->tls != NULL && net_conn_start_tls_host(c, sl->tls, sl->tls_name) < 0) {
        core_log(sl->log, CORE_LOG_ERROR, stream_conn_id(sl->s),
                 "link %s: cannot start TLS to %s (no name to verify?)", sl->name, sl->addr);
        stream_close(sl->s);
        return;
    }
    stream_send_header(sl->s, NULL, sl->name, NULL, NULL);
}

static void on_unexpected_close(net_conn_t *c, int status)
{
    /* Only a connecting connection can end here, and on_connect has handled it. */
}

static const net_conn_ops_t slink_conn_ops = {
    .on_read = NULL,
    .on_close = on_unexpected_close,
    .on_connect = on_connect,
};

static void start_connect(slink_t *sl)
{
    if (sl->closing)
        return;
    sl->state = SLINK_CONNECTING;
    int err = net_connect(sl->net, sl->addr, &slink_conn_ops, sl, &sl->conn);
    if (err < 0) {
        sl->conn = NULL;
        core_log(sl->log, CORE_LOG_WARN, 0, "link %s: cannot connect to %s: %s", sl->name, sl->addr,
                 uv_strerror(err));
        schedule_retry(sl);
    }
}

static int ep_send(link_endpoint_t *e, xml_stanza_t *st)
{
    slink_t *sl = (slink_t *)e;
    if (sl->state != SLINK_UP || sl->s == NULL)
        return -ENOTCONN;
    return stream_send(sl->s, st);
}

static bool ep_up(const link_endpoint_t *e)
{
    return ((const slink_t *)e)->state == SLINK_UP;
}

static void on_timer_closed(uv_handle_t *h)
{
    slink_t *sl = h->data;
    sl->timer_closed = true;
    maybe_free(sl);
}

static void ep_close(link_endpoint_t *e)
{
    slink_t *sl = (slink_t *)e;
    sl->closing = true;
    uv_timer_stop(&sl->retry);
    uv_close((uv_handle_t *)&sl->retry, on_timer_closed);
    if (sl->s != NULL)
        stream_close(sl->s);
    else if (sl->conn != NULL)
        net_conn_close(sl->conn, false);
}

static const link_endpoint_vtable_t slink_vtable = {
    .send = ep_send,
    .up = ep_up,
    .close = ep_close,
};

link_endpoint_t *link_stream_open(net_ctx_t *net, const link_options_t *opt,
                                  const link_endpoint_ops_t *ops, void *ud, const core_log_t *log)
{
    slink_t *sl = core_calloc(1, sizeof(*sl));
    sl->base.vt = &slink_vtable;
    sl->net = net;
    sl->log = log;
    sl->ops = ops;
    sl->ud = ud;
    sl->name = core_strdup(opt->name);
    sl->secret = core_strdup(opt->secret ? opt->secret : "");
    sl->addr = core_strdup(opt->router_addr);
    sl->n_extra = opt->n_extra;
    sl->extra = core_calloc(opt->n_extra ? opt->n_extra : 1, sizeof(char *));
    for (size_t i = 0; i < opt->n_extra; i++)
        sl->extra[i] = core_strdup(opt->extra_names[i]);
    sl->default_route = opt->default_route;
    sl->n_watch = opt->n_watch;
    sl->watch = core_calloc(opt->n_watch ? opt->n_watch : 1, sizeof(char *));
    for (size_t i = 0; i < opt->n_watch; i++)
        sl->watch[i] = core_strdup(opt->watch[i]);
    sl->watch_all = opt->watch_all;
    if (opt->limits != NULL) {
        sl->limits = *opt->limits;
        sl->has_limits = true;
    }
    sl->min_ms = opt->reconnect_min_ms ? opt->reconnect_min_ms : 100;
    sl->max_ms = opt->reconnect_max_ms ? opt->reconnect_max_ms : 10000;
    sl->backoff_ms = sl->min_ms;
    sl->handshake_ms = opt->handshake_timeout_ms ? opt->handshake_timeout_ms : 10000;
    sl->tls = opt->tls;
    sl->tls_name = opt->tls_name != NULL ? core_strdup(opt->tls_name) : NULL;
    uv_timer_init(net->loop, &sl->retry);
    sl->retry.data = sl;
    start_connect(sl);
    return &sl->base;
}
