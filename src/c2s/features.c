/* SPDX-License-Identifier: MIT */
/* Stream features (RFC 6120 §4.3.2) for each stage: STARTTLS, SASL (and registration), bind. */
#include "c2s/internal.h"

#include <string.h>

typedef int (*cb_get_fn)(const net_conn_t *, unsigned char *, size_t, size_t *);

static const cb_get_fn cb_get[SASL_CB_COUNT] = {
    [SASL_CB_TLS_UNIQUE] = net_conn_tls_unique,
    [SASL_CB_TLS_EXPORTER] = net_conn_tls_exporter,
    [SASL_CB_TLS_SERVER_END_POINT] = net_conn_tls_server_end_point,
};

/* Which types apply is all the features and the mechanism list need; the data itself waits
 * for a -PLUS mechanism (c2s_cb_data), since computing it costs a key derivation. */
void c2s_cb_fill(c2s_conn_t *c)
{
    if (c->cb_known || c->s == NULL || c->s->conn == NULL || !net_conn_tls_ready(c->s->conn))
        return;
    for (int t = 0; t < SASL_CB_COUNT; t++) {
        size_t len = 0;
        if (cb_get[t](c->s->conn, NULL, 0, &len) < 0)
            len = 0;
        c->cb[t].len = len;
    }
    c->cb_known = true;
}

bool c2s_cb_data(c2s_conn_t *c)
{
    c2s_cb_fill(c);
    if (!c->cb_known)
        return false;
    if (c->cb_data)
        return true;
    for (int t = 0; t < SASL_CB_COUNT; t++) {
        size_t len = 0;
        if (c->cb[t].len > 0 &&
            cb_get[t](c->s->conn, c->cb[t].data, sizeof(c->cb[t].data), &len) < 0)
            len = 0;
        c->cb[t].len = len;
    }
    c->cb_data = true;
    return true;
}

static void add_text_child(xml_stanza_t *st, xml_node_t *parent, const char *ns, const char *name,
                           const char *text)
{
    xml_node_t *n = xml_node_add_element(st, parent, ns, name);
    xml_node_add_text(st, n, text, strlen(text));
}

static void add_sasl(c2s_conn_t *c, xml_stanza_t *f)
{
    c2s_cb_fill(c);
    unsigned mask = c->cb_known ? sasl_cb_mask(c->cb) : 0;
    const char *mechs[SASL_MECH_COUNT];
    size_t n = sasl_mechs_offer(c->tls, mask, mechs, SASL_MECH_COUNT);
    xml_node_t *m = xml_node_add_element(f, f->root, SASL_NS, "mechanisms");
    for (size_t i = 0; i < n; i++)
        add_text_child(f, m, SASL_NS, "mechanism", mechs[i]);
    if (mask == 0)
        return;
    /* XEP-0440: which channel-binding types a -PLUS client may use here. */
    xml_node_t *cb = xml_node_add_element(f, f->root, C2S_NS_SASL_CB, "sasl-channel-binding");
    for (int t = 0; t < SASL_CB_COUNT; t++) {
        if ((mask & (1u << t)) == 0)
            continue;
        xml_node_t *e = xml_node_add_element(f, cb, C2S_NS_SASL_CB, "channel-binding");
        xml_node_set_attr(f, e, NULL, "type", sasl_cb_name((sasl_cb_type_t)t));
    }
}

void c2s_features_send(c2s_conn_t *c)
{
    c2s_t *c2s = c->c2s;
    xml_stanza_t *f = xml_stanza_new(XMLS_NS_STREAMS, "features");
    if (c->state == C2S_ST_NEGOTIATING) {
        if (!c->tls && c2s->tls != NULL) {
            xml_node_t *t = xml_node_add_element(f, f->root, C2S_NS_TLS, "starttls");
            if (c2s->cfg->require_tls)
                xml_node_add_element(f, t, C2S_NS_TLS, "required");
        }
        /* RFC 6120 §5.3.1: while TLS is mandatory, offer nothing else before it. */
        if (c->tls || !c2s->cfg->require_tls)
            add_sasl(c, f);
        c2s_register_feature(c, f);
    } else {
        xml_node_add_element(f, f->root, C2S_NS_BIND, "bind");
        /* RFC 3921 §3 session establishment, kept for old clients; a no-op (RFC 6121 App. E). */
        xml_node_t *sess = xml_node_add_element(f, f->root, C2S_NS_SESSION_LEGACY, "session");
        xml_node_add_element(f, sess, C2S_NS_SESSION_LEGACY, "optional");
        /* XEP-0237: the sm versions rosters. */
        xml_node_add_element(f, f->root, "urn:xmpp:features:rosterver", "ver");
        /* XEP-0198 §2 (enabled after binding, or resumed instead of it) and XEP-0352 §4.1. */
        xml_node_add_element(f, f->root, C2S_NS_SM, "sm");
        xml_node_add_element(f, f->root, C2S_NS_CSI, "csi");
    }
    stream_send(c->s, f);
    xml_stanza_unref(f);
}
