/* SPDX-License-Identifier: MIT */
/* One client connection: stream headers, STARTTLS, and the state machine up to relay. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <openssl/rand.h>
#include <string.h>

static void on_open(stream_t *s, xml_stanza_t *header);
static void on_element(stream_t *s, xml_stanza_t *st);
static void on_gone(stream_t *s);

static const stream_ops_t c2s_stream_ops = {
    .on_open = on_open,
    .on_element = on_element,
    .on_gone = on_gone,
};

uint64_t c2s_conn_id(const c2s_conn_t *c)
{
    return c->s != NULL ? stream_conn_id(c->s) : 0;
}

void c2s_conn_accept(c2s_t *c2s, net_conn_t *nc, bool direct_tls)
{
    if (c2s->stopping) {
        net_conn_close(nc, false);
        return;
    }
    uint8_t key[C2S_RATE_KEY_MAX];
    size_t key_len = c2s_ratelimit_peer_key(nc, key);
    bool admitted = c2s_srclimit_take(&c2s->per_source, key, key_len);
    if (!admitted && direct_tls) {
        c2s_srclimit_refuse_tls(c2s, nc);
        return;
    }
    c2s_conn_t *c = core_calloc(1, sizeof(*c));
    c->c2s = c2s;
    memcpy(c->src_key, key, key_len);
    c->src_len = (uint8_t)key_len;
    c->src_counted = admitted;
    nc->out_limit = c2s->cfg->max_output_queue;
    net_conn_set_read_rate(nc, &c2s->read_rate);
    unsigned char rnd[8] = {0};
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(c->sid, sizeof(c->sid), "%llx-%02x%02x%02x%02x%02x%02x%02x%02x",
             (unsigned long long)++c2s->next_sid, rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5],
             rnd[6], rnd[7]);
    c->next = c2s->conns;
    if (c2s->conns != NULL)
        c2s->conns->prev = c;
    c2s->conns = c;
    c2s_conn_map(c);
    c->last_input = uv_now(c2s->net->loop);
    c->s = stream_new(nc, XMLS_NS_CLIENT, &c2s->limits, &c2s_stream_ops, c, c2s->log);
    stream_set_deadline(c->s, c2s->cfg->auth_timeout_ms, CORE_STREAM_ERR_CONNECTION_TIMEOUT);
    if (direct_tls) {
        /* XEP-0368: TLS from the first byte; the stream layer reads plaintext on top. */
        net_conn_start_tls(nc, c2s->tls);
        c->tls = true;
    }
    core_log(c2s->log, CORE_LOG_DEBUG, nc->id, "client connected from %s%s", nc->peer,
             direct_tls ? " (direct TLS)" : "");
    if (!admitted)
        c2s_srclimit_refuse(c);
}

c2s_conn_t *c2s_conn_by_sid(c2s_t *c2s, const char *sid)
{
    c2s_conn_t *c = core_map_get(&c2s->by_sid, sid, strlen(sid));
    return c != NULL && c->s != NULL ? c : NULL;
}

void c2s_conn_map(c2s_conn_t *c)
{
    core_map_put(&c->c2s->by_sid, c->sid, strlen(c->sid), c);
}

void c2s_conn_unmap(c2s_conn_t *c)
{
    /* The sid may have moved on to a connection that resumed the session. */
    core_map_t *m = &c->c2s->by_sid;
    if (core_map_get(m, c->sid, strlen(c->sid)) == c)
        core_map_del(m, c->sid, strlen(c->sid));
}

void c2s_conn_send(c2s_conn_t *c, xml_stanza_t *st)
{
    if (c->csi != NULL && c2s_csi_hold(c, st))
        return;
    c2s_conn_write(c, st);
}

void c2s_conn_write(c2s_conn_t *c, xml_stanza_t *st)
{
    /* XEP-0198 §4 counts stanzas only, not the nonzas around them. */
    bool tracked = c->smgmt != NULL && xml_stanza_kind(st) != XMLS_KIND_OTHER;
    if (tracked && !c2s_smgmt_track(c, st))
        return;
    /* Its session just ended (the queue overflowed): the rest goes back to the sm too. */
    if (c->smgmt == NULL && !c->started && c2s_smgmt_hand_back(c->c2s, c->sid, st))
        return;
    if (c->s == NULL)
        return;
    stream_send(c->s, st);
    if (tracked)
        c2s_smgmt_sent(c);
}

static void on_open(stream_t *s, xml_stanza_t *header)
{
    c2s_conn_t *c = s->ud;
    c2s_t *c2s = c->c2s;
    const char *to = xml_node_attr(header->root, "to");
    const char *version = xml_node_attr(header->root, "version");
    unsigned char rnd[12] = {0};
    char id[32];
    RAND_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    /* RFC 6120 §4.9.3.6: a stream to a domain we do not serve. */
    const char *dom = NULL;
    size_t dlen = 0;
    if (to == NULL || jid_domain(c2s->jids, to, strlen(to), &dom, &dlen) < 0 ||
        dlen != strlen(c2s->cfg->domain) || memcmp(dom, c2s->cfg->domain, dlen) != 0) {
        stream_send_header(s, c2s->cfg->domain, NULL, id, "1.0");
        stream_error(s, CORE_STREAM_ERR_HOST_UNKNOWN, NULL);
        return;
    }
    stream_send_header(s, c2s->cfg->domain, NULL, id, "1.0");
    /* RFC 6120 §4.7.5: we need stream features, which a pre-1.0 client does not know. */
    if (version == NULL || strncmp(version, "1.", 2) != 0) {
        stream_error(s, CORE_STREAM_ERR_UNSUPPORTED_VERSION, NULL);
        return;
    }
    if (c->state == C2S_ST_OPEN)
        c->state = C2S_ST_NEGOTIATING;
    c2s_features_send(c);
}

/* RFC 6120 §5.4.2: <starttls/> → <proceed/>, then TLS and a fresh stream. */
static void starttls(c2s_conn_t *c, xml_stanza_t *st)
{
    c2s_t *c2s = c->c2s;
    if (c->tls || c2s->tls == NULL || c->sasl != NULL || c->auth_busy) {
        xml_stanza_t *f = xml_stanza_new(C2S_NS_TLS, "failure");
        stream_send(c->s, f);
        xml_stanza_unref(f);
        stream_close(c->s);
        return;
    }
    (void)st;
    xml_stanza_t *p = xml_stanza_new(C2S_NS_TLS, "proceed");
    int rc = stream_send(c->s, p);
    xml_stanza_unref(p);
    if (rc < 0)
        return;
    /* <proceed/> is queued before TLS starts, so it goes out in plaintext (net/tls.h). */
    net_conn_t *nc = c->s->conn;
    if (net_conn_start_tls(nc, c2s->tls) < 0) {
        stream_error(c->s, CORE_STREAM_ERR_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    c->tls = true;
    /* STYLE §5: plaintext the client sent after <starttls/> is dropped. */
    stream_restart(c->s, false);
}

static void on_element(stream_t *s, xml_stanza_t *st)
{
    c2s_conn_t *c = s->ud;
    const xml_node_t *r = st->root;
    c2s_keepalive_input(c);
    switch (c->state) {
    case C2S_ST_OPEN:
        break;
    case C2S_ST_NEGOTIATING:
        if (xml_node_is(r, C2S_NS_TLS, "starttls")) {
            starttls(c, st);
            return;
        }
        if (r->ns != NULL && strcmp(r->ns, SASL_NS) == 0) {
            c2s_sasl_element(c, st);
            return;
        }
        /* XEP-0077 §3.1.1: registering an account comes before authenticating with it. */
        if (c2s_register_iq(c, st))
            return;
        /* RFC 6120 §6.4.1: nothing else before authentication. */
        stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, NULL);
        return;
    case C2S_ST_AUTHED:
    case C2S_ST_BINDING:
        /* XEP-0198 §5: a resumption takes the place of binding. */
        if (c2s_bind_iq(c, st) || c2s_smgmt_element(c, st) || c2s_csi_element(c, st))
            return;
        stream_error(s, CORE_STREAM_ERR_NOT_AUTHORIZED, NULL);
        return;
    case C2S_ST_ACTIVE:
        if (c2s_smgmt_element(c, st) || c2s_csi_element(c, st))
            return;
        if (xml_stanza_kind(st) != XMLS_KIND_OTHER)
            c2s_smgmt_received(c);
        if (c2s_keepalive_pong(c, st))
            return;
        if (!c->tls && c2s_register_cleartext(c, st))
            return;
        c2s_relay_client(c, st);
        return;
    }
}

static void conn_free(c2s_conn_t *c)
{
    c2s_t *c2s = c->c2s;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c2s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    c2s_conn_unmap(c);
    c2s_smgmt_free(c->smgmt);
    c2s_csi_free(c);
    sasl_server_free(c->sasl);
    c2s_register_free(c);
    jid_clear(&c->jid);
    core_free(c->bind_id);
    core_free(c->shard);
    core_free(c);
    c2s_link_release(c2s);
}

static void on_gone(stream_t *s)
{
    c2s_conn_t *c = s->ud;
    /* XEP-0198 §7: no </stream:stream> from the client and no stream error of ours leaves
     * the stream unfinished: its session may be resumed. */
    bool resumable = !s->peer_closed && !s->error_sent && !c->c2s->stopping;
    c->s = NULL;
    c->gone = true;
    if (c->started && c->smgmt != NULL) {
        c2s_smgmt_gone(c, resumable);
    } else if (c->started) {
        /* The sm ends the session whether the client closed cleanly or vanished. */
        c2s_relay_control(c, "end", c->jid.full);
    }
    c->started = false;
    if (c->src_counted)
        c2s_srclimit_release(&c->c2s->per_source, c->src_key, c->src_len);
    c->src_counted = false;
    c2s_csi_free(c);
    c2s_sasl_cancel(c);
    if (!c->auth_busy)
        conn_free(c);
}

void c2s_conn_work_done(c2s_conn_t *c)
{
    if (c->gone)
        conn_free(c);
}
