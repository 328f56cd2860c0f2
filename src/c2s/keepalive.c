/* SPDX-License-Identifier: MIT */
/* Dead-peer detection: quiet bound clients are probed (XEP-0199 ping, or XEP-0198 <r/>). */
#include "c2s/internal.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* Our ping ids; the answers (XEP-0199 §4.1) stay here. */
#define PING_ID_PREFIX "c2s-ping-"

uint64_t c2s_keepalive_period(uint64_t interval_ms, uint64_t timeout_ms)
{
    uint64_t p = (interval_ms < timeout_ms ? interval_ms : timeout_ms) / 4;
    return p < 50 ? 50 : p > 5000 ? 5000 : p;
}

void c2s_keepalive_input(c2s_conn_t *c)
{
    c->last_input = uv_now(c->c2s->net->loop);
    c->probe_at = 0;
}

/* A probe the client must answer: <r/> with stream management (§4), else a ping. */
static void probe(c2s_conn_t *c)
{
    c2s_t *c2s = c->c2s;
    if (c->smgmt != NULL) {
        c2s_smgmt_request(c);
        return;
    }
    char id[40];
    snprintf(id, sizeof(id), PING_ID_PREFIX "%llx", (unsigned long long)++c2s->next_ping_id);
    xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(iq, iq->root, NULL, "type", "get");
    xml_node_set_attr(iq, iq->root, NULL, "id", id);
    xml_node_set_attr(iq, iq->root, NULL, "from", c2s->cfg->domain);
    xml_node_set_attr(iq, iq->root, NULL, "to", c->jid.full);
    xml_node_add_element(iq, iq->root, C2S_NS_PING, "ping");
    /* Past CSI: a probe must not flush what an inactive client's stream holds. */
    c2s_conn_write(c, iq);
    xml_stanza_unref(iq);
}

/*
 * One timer for every connection: a bound client quiet for ping_interval is probed; one that
 * has not answered within ping_timeout is cut off (its session ends, or waits to be resumed).
 * Stanzas waiting for an acknowledgement get an <r/> here too.
 */
static void sweep(uv_timer_t *t)
{
    c2s_t *c2s = (c2s_t *)((char *)t - offsetof(c2s_t, ping_timer));
    uint64_t now = uv_now(c2s->net->loop);
    const c2s_config_t *cfg = c2s->cfg;
    for (c2s_conn_t *c = c2s->conns; c != NULL; c = c->next) {
        if (c->s == NULL || c->s->closing || c->state != C2S_ST_ACTIVE)
            continue;
        if (c->probe_at != 0) {
            if (now - c->probe_at >= cfg->ping_timeout_ms) {
                core_log(c2s->log, CORE_LOG_INFO, c2s_conn_id(c),
                         "%s did not answer within %llu ms: closing", c->jid.full,
                         (unsigned long long)cfg->ping_timeout_ms);
                /* No stream error: the peer is gone, and the session may be resumed. */
                net_conn_close(c->s->conn, false);
            }
            continue;
        }
        if (now - c->last_input >= cfg->ping_interval_ms) {
            c->probe_at = now;
            probe(c);
        } else if (c2s_smgmt_waiting(c)) {
            c2s_smgmt_request(c);
        }
    }
}

void c2s_keepalive_start(c2s_t *c2s)
{
    uint64_t p = c2s_keepalive_period(c2s->cfg->ping_interval_ms, c2s->cfg->ping_timeout_ms);
    uv_timer_start(&c2s->ping_timer, sweep, p, p);
}

bool c2s_keepalive_pong(c2s_conn_t *c, xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    const char *id = xml_stanza_id(st);
    const char *to = xml_stanza_to(st);
    if (xml_stanza_kind(st) != XMLS_KIND_IQ || type == NULL || id == NULL ||
        (strcmp(type, "result") != 0 && strcmp(type, "error") != 0) ||
        strncmp(id, PING_ID_PREFIX, strlen(PING_ID_PREFIX)) != 0)
        return false;
    return to == NULL || strcmp(to, c->c2s->cfg->domain) == 0;
}
