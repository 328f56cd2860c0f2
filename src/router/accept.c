/* SPDX-License-Identifier: MIT */
/* The router's side of stream links: XEP-0114 handshake, then Parley's bind and watch extension. */
#include "router/internal.h"

#include "core/alloc.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

enum session_state {
    SESSION_WAIT_HEADER,
    SESSION_WAIT_HANDSHAKE,
    SESSION_READY,
};

struct router_session {
    link_t link;
    router_t *r;
    stream_t *s;
    const router_component_config_t *cfg;
    char *domain; /* prepared; owned */
    char id[33]; /* stream id */
    char peer[64]; /* "ip:port", for status */
    enum session_state state;
    bool stalled; /* over the backlog mark, waiting to drain */
    router_session_t *next;
    router_session_t *prev;
};

static router_session_t *from_link(link_t *l)
{
    return (router_session_t *)((char *)l - offsetof(router_session_t, link));
}

static int link_deliver(link_t *l, xml_stanza_t *st)
{
    router_session_t *rs = from_link(l);
    if (rs->s == NULL)
        return -EPIPE;
    /* A stream that is closing takes nothing more: the router bounces it instead. */
    return stream_send(rs->s, st);
}

static void link_close(link_t *l, core_stream_err_t why)
{
    router_session_t *rs = from_link(l);
    if (rs->s != NULL)
        stream_error(rs->s, why, NULL);
    /* Unbind at once: nothing more may be routed to or accepted from this link. */
    router_link_gone(rs->r, l);
}

static size_t link_backlog(link_t *l)
{
    router_session_t *rs = from_link(l);
    if (rs->s == NULL)
        return 0;
    size_t n = stream_backlog(rs->s);
    /*
     * The router is about to pause the senders: tell it when we have caught up, and give up
     * on a component that stops reading altogether, so it cannot hold them forever.
     */
    if (n > LINK_BACKLOG_HIGH && !rs->stalled) {
        rs->stalled = true;
        stream_want_drain(rs->s);
        stream_set_deadline(rs->s, rs->r->cfg->stall_timeout_ms, CORE_STREAM_ERR_POLICY_VIOLATION);
    }
    return n;
}

static void link_pause(link_t *l, bool paused)
{
    router_session_t *rs = from_link(l);
    if (rs->s != NULL)
        stream_pause_reading(rs->s, paused);
}

static const link_ops_t session_link_ops = {
    .deliver = link_deliver,
    .close = link_close,
    .backlog = link_backlog,
    .pause = link_pause,
};

const router_component_config_t *router_component_find(router_t *r, const char *domain)
{
    size_t pos = 0;
    const router_component_config_t *c;
    while ((c = core_cfg_next(r->all_cfg, "component", &pos)) != NULL) {
        char *p = router_prep_domain(r, c->name);
        bool same = p != NULL && strcmp(p, domain) == 0;
        core_free(p);
        if (same)
            return c;
    }
    return NULL;
}

static void on_open(stream_t *s, xml_stanza_t *hdr)
{
    router_session_t *rs = s->ud;
    router_t *r = rs->r;
    if (rs->state != SESSION_WAIT_HEADER) {
        stream_error(s, CORE_STREAM_ERR_INVALID_XML, "unexpected stream restart");
        return;
    }
    const char *to = xml_node_attr(hdr->root, "to");
    char *dom = to != NULL ? router_prep_domain(r, to) : NULL;
    const router_component_config_t *cfg = dom != NULL ? router_component_find(r, dom) : NULL;
    if (cfg == NULL) {
        stream_send_header(s, NULL, NULL, NULL, NULL);
        stream_error(s, CORE_STREAM_ERR_HOST_UNKNOWN, NULL);
        core_log(r->log, CORE_LOG_INFO, stream_conn_id(s), "component for unknown domain %s",
                 to ? to : "(none)");
        core_free(dom);
        return;
    }
    rs->cfg = cfg;
    rs->domain = dom;
    unsigned char rnd[16];
    RAND_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(rs->id + 2 * i, 3, "%02x", rnd[i]);
    rs->state = SESSION_WAIT_HANDSHAKE;
    stream_send_header(s, dom, NULL, rs->id, NULL);
}

static bool handshake_ok(router_session_t *rs, const xml_node_t *hs)
{
    size_t len;
    const char *text = xml_node_text(hs, &len);
    if (len != 40)
        return false;
    char want[41];
    char got[40];
    link_handshake_digest(rs->id, rs->cfg->secret, want);
    for (size_t i = 0; i < 40; i++)
        got[i] = (char)tolower((unsigned char)text[i]);
    bool ok = CRYPTO_memcmp(want, got, 40) == 0;
    OPENSSL_cleanse(want, sizeof(want));
    return ok;
}

static const char *tls_name(int version)
{
    switch (version) {
    case NET_TLS_VERSION_1_3:
        return "TLS 1.3";
    case NET_TLS_VERSION_1_2:
        return "TLS 1.2";
    default:
        return "plain TCP";
    }
}

static void on_handshake(router_session_t *rs, xml_stanza_t *st)
{
    stream_t *s = rs->s;
    router_t *r = rs->r;
    if (!xml_node_is(st->root, XMLS_NS_CONTENT, "handshake")) {
        stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, "handshake expected");
        return;
    }
    if (!handshake_ok(rs, st->root)) {
        core_log(r->log, CORE_LOG_INFO, stream_conn_id(s), "wrong handshake for %s", rs->domain);
        stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, NULL);
        return;
    }
    int err = router_bind(r, &rs->link, rs->domain, false, false, rs->cfg);
    if (err < 0) {
        /* One link per domain; the one already connected keeps it (docs/link-protocol.md). */
        stream_error(s, err == -EEXIST ? CORE_STREAM_ERR_CONFLICT : CORE_STREAM_ERR_NOT_AUTHORIZED,
                     NULL);
        router_link_gone(r, &rs->link);
        return;
    }
    router_link_t *rl = rs->link.hub_data;
    rl->stream = true;
    int v = rs->s->conn != NULL ? net_conn_tls_version(rs->s->conn) : -ENOTCONN;
    rl->tls_version = v > 0 ? v : 0;
    snprintf(rl->peer, sizeof rl->peer, "%s", rs->peer);
    rs->state = SESSION_READY;
    stream_set_deadline(s, 0, CORE_STREAM_ERR_NONE);
    xml_stanza_t *ok = xml_stanza_new(XMLS_NS_CONTENT, "handshake");
    stream_send(s, ok);
    xml_stanza_unref(ok);
    core_log(r->log, CORE_LOG_INFO, stream_conn_id(s), "component %s authenticated (%s)",
             rs->domain, tls_name(rl->tls_version));
}

/* Parley's link extension: <bind/> and <unbind/> in urn:parley:link:0. */
static void on_link_control(router_session_t *rs, xml_stanza_t *st)
{
    const char *name = xml_node_attr(st->root, "name");
    const char *dflt = xml_node_attr(st->root, "default");
    bool want_default = dflt != NULL && strcmp(dflt, "true") == 0;
    bool is_bind = strcmp(st->root->name, "bind") == 0;
    int err = 0;
    if (is_bind && (name != NULL || want_default))
        err = router_bind(rs->r, &rs->link, name, want_default && name == NULL, false, rs->cfg);
    else if (!is_bind && name != NULL)
        router_unbind(rs->r, &rs->link, name);
    else
        err = -EINVAL;
    xml_stanza_t *ans = xml_stanza_new(LINK_NS, st->root->name);
    if (name != NULL)
        xml_node_set_attr(ans, ans->root, NULL, "name", name);
    if (want_default)
        xml_node_set_attr(ans, ans->root, NULL, "default", "true");
    xml_node_set_attr(ans, ans->root, NULL, "result", err == 0 ? "ok" : "error");
    if (err < 0) {
        core_stanza_err_t cond = err == -EEXIST ? CORE_STANZA_ERR_CONFLICT
            : err == -EPERM                     ? CORE_STANZA_ERR_NOT_ALLOWED
                                                : CORE_STANZA_ERR_BAD_REQUEST;
        xml_node_add_element(ans, ans->root, CORE_NS_STANZA_ERRORS, core_stanza_err_name(cond));
    }
    stream_send(rs->s, ans);
    xml_stanza_unref(ans);
}

/* <watch name='…'/> or <watch all='true'/>: notices of other links' bindings from now on. */
static void on_watch(router_session_t *rs, xml_stanza_t *st)
{
    const char *name = xml_node_attr(st->root, "name");
    const char *all = xml_node_attr(st->root, "all");
    bool want_all = all != NULL && strcmp(all, "true") == 0;
    int err = name != NULL || want_all
        ? router_watch(rs->r, &rs->link, name, want_all && name == NULL)
        : -EINVAL;
    xml_stanza_t *ans = xml_stanza_new(LINK_NS, "watch");
    if (name != NULL)
        xml_node_set_attr(ans, ans->root, NULL, "name", name);
    if (want_all)
        xml_node_set_attr(ans, ans->root, NULL, "all", "true");
    xml_node_set_attr(ans, ans->root, NULL, "result", err == 0 ? "ok" : "error");
    if (err < 0)
        xml_node_add_element(ans, ans->root, CORE_NS_STANZA_ERRORS,
                             core_stanza_err_name(CORE_STANZA_ERR_BAD_REQUEST));
    stream_send(rs->s, ans);
    xml_stanza_unref(ans);
}

/*
 * <status/> from a control component: the router's state, on that link. Any other link's
 * <status/> is an unknown element like any other (router_input closes the stream).
 */
static void on_status(router_session_t *rs)
{
    xml_stanza_t *ans = router_status_stanza(rs->r);
    stream_send(rs->s, ans);
    xml_stanza_unref(ans);
    core_log(rs->r->log, CORE_LOG_INFO, rs->link.id, "status sent to %s", rs->domain);
}

static void on_element(stream_t *s, xml_stanza_t *st)
{
    router_session_t *rs = s->ud;
    switch (rs->state) {
    case SESSION_WAIT_HEADER:
        break;
    case SESSION_WAIT_HANDSHAKE:
        on_handshake(rs, st);
        break;
    case SESSION_READY:
        if (xml_node_is(st->root, LINK_NS, "bind") || xml_node_is(st->root, LINK_NS, "unbind"))
            on_link_control(rs, st);
        else if (xml_node_is(st->root, LINK_NS, "watch"))
            on_watch(rs, st);
        else if (xml_node_is(st->root, LINK_NS, "status") && rs->cfg->control)
            on_status(rs);
        else
            router_input(rs->r, &rs->link, st);
        break;
    }
}

static void on_gone(stream_t *s)
{
    router_session_t *rs = s->ud;
    router_t *r = rs->r;
    if (rs->state == SESSION_READY)
        core_log(r->log, CORE_LOG_INFO, rs->link.id, "component %s disconnected", rs->domain);
    router_link_gone(r, &rs->link);
    if (rs->prev != NULL)
        rs->prev->next = rs->next;
    else
        r->sessions = rs->next;
    if (rs->next != NULL)
        rs->next->prev = rs->prev;
    core_free(rs->domain);
    core_free(rs);
}

/* A deadline: the handshake took too long, or the component stopped reading. */
static void on_deadline(stream_t *s, core_stream_err_t cond)
{
    router_session_t *rs = s->ud;
    if (rs->stalled)
        core_log(rs->r->log, CORE_LOG_WARN, stream_conn_id(s),
                 "%s has not read its output for too long: disconnecting it", rs->domain);
    /* Unbinds at once, so the senders it held resume without waiting for its socket. */
    link_close(&rs->link, cond);
}

static void on_drain(stream_t *s)
{
    router_session_t *rs = s->ud;
    rs->stalled = false;
    stream_set_deadline(s, 0, CORE_STREAM_ERR_NONE);
    router_link_drained(rs->r, &rs->link);
}

static const stream_ops_t session_stream_ops = {
    .on_open = on_open,
    .on_element = on_element,
    .on_gone = on_gone,
    .on_drain = on_drain,
    .on_deadline = on_deadline,
};

void router_accept(void *ud, net_conn_t *c)
{
    router_t *r = ud;
    core_log(r->log, CORE_LOG_INFO, c->id, "component connection from %s%s", c->peer,
             r->tls != NULL ? " (direct TLS)" : "");
    router_session_t *rs = core_calloc(1, sizeof(*rs));
    rs->r = r;
    rs->link.ops = &session_link_ops;
    rs->link.id = c->id;
    snprintf(rs->peer, sizeof rs->peer, "%s", c->peer);
    rs->next = r->sessions;
    if (r->sessions != NULL)
        r->sessions->prev = rs;
    r->sessions = rs;
    rs->s = stream_new(c, XMLS_NS_COMPONENT, &r->limits, &session_stream_ops, rs, r->log);
    /* The deadline covers the TLS handshake too: a peer that never finishes it is cut off. */
    stream_set_deadline(rs->s, r->cfg->handshake_timeout_ms, CORE_STREAM_ERR_CONNECTION_TIMEOUT);
    /*
     * XEP-0114 has no STARTTLS: with a certificate, TLS from the first byte, as XEP-0368 does
     * for clients. A failed handshake is logged by net (with OpenSSL's reason) and closes c.
     */
    if (r->tls != NULL && net_conn_start_tls(c, r->tls) < 0)
        stream_close(rs->s);
}

void router_sessions_shutdown(router_t *r)
{
    for (router_session_t *rs = r->sessions; rs != NULL; rs = rs->next) {
        router_link_gone(r, &rs->link);
        stream_error(rs->s, CORE_STREAM_ERR_SYSTEM_SHUTDOWN, NULL);
    }
}
