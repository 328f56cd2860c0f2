/* SPDX-License-Identifier: MIT */
/* c2s internals shared by its files: the component, one client connection, the helpers. */
#ifndef PARLEY_C2S_INTERNAL_H
#define PARLEY_C2S_INTERNAL_H

#include "c2s/c2s.h"
#include "core/map.h"
#include "jid/jid.h"
#include "net/tls.h"
#include "sasl/sasl.h"
#include "stream/stream.h"

#define C2S_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define C2S_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define C2S_NS_SESSION_LEGACY "urn:ietf:params:xml:ns:xmpp-session"
#define C2S_NS_SESSION "urn:parley:session:0"
#define C2S_NS_SASL_CB "urn:xmpp:sasl-cb:0"
#define C2S_NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"

typedef struct c2s_conn c2s_conn_t;

struct c2s {
    net_ctx_t *net;
    const core_log_t *log;
    const c2s_config_t *cfg;
    const link_opener_t *opener;
    auth_source_t *auth;
    jid_cache_t *jids;
    net_tls_ctx_t *tls; /* owned; NULL without a certificate */
    net_listener_t *listener;
    net_listener_t *listener_tls;
    link_endpoint_t *link;
    c2s_conn_t *conns; /* every client connection */
    core_map_t by_sid; /* sid -> connection */
    uint64_t next_sid;
    xml_limits_t limits;
    bool stopping;
};

typedef enum c2s_state {
    C2S_ST_OPEN = 0, /* waiting for the client's header */
    C2S_ST_NEGOTIATING, /* features sent: STARTTLS and SASL */
    C2S_ST_AUTHED, /* SASL done: bind */
    C2S_ST_BINDING, /* session start sent, waiting for the sm */
    C2S_ST_ACTIVE, /* bound: stanzas flow */
} c2s_state_t;

struct c2s_conn {
    c2s_t *c2s;
    stream_t *s; /* NULL once gone */
    c2s_conn_t *next;
    c2s_conn_t *prev;
    c2s_state_t state;
    bool tls; /* TLS is on (direct or after STARTTLS) */
    bool started; /* the sm was told start (so it must be told end) */
    bool auth_busy; /* a lookup or hash is in flight */
    bool gone; /* the stream is gone; free once auth_busy clears */
    int auth_failures;
    sasl_server_t *sasl;
    auth_request_t *auth_req;
    uv_work_t work;
    jid_t jid; /* the bare JID after SASL, the full JID after bind */
    char sid[40];
    char *bind_id; /* the id of the bind iq waiting for the sm */
    sasl_cb_data_t cb[SASL_CB_COUNT];
    bool cb_known;
};

/* listener.c: closes the link once stopping and every client is gone. */
void c2s_link_release(c2s_t *c2s);

/* conn.c */
void c2s_conn_accept(c2s_t *c2s, net_conn_t *nc, bool direct_tls);
c2s_conn_t *c2s_conn_by_sid(c2s_t *c2s, const char *sid);
void c2s_conn_send(c2s_conn_t *c, xml_stanza_t *st);
uint64_t c2s_conn_id(const c2s_conn_t *c);
/* An auth lookup or hash finished: frees a connection that went away meanwhile. */
void c2s_conn_work_done(c2s_conn_t *c);

/* features.c */
void c2s_features_send(c2s_conn_t *c);
void c2s_cb_fill(c2s_conn_t *c);

/* sasl_glue.c */
void c2s_sasl_element(c2s_conn_t *c, xml_stanza_t *st);
void c2s_sasl_cancel(c2s_conn_t *c);

/* bind.c */
void c2s_iq_error(c2s_conn_t *c, const char *id, const char *type, const char *cond);
bool c2s_bind_session_iq(c2s_conn_t *c, xml_stanza_t *st);
bool c2s_bind_iq(c2s_conn_t *c, xml_stanza_t *st);
void c2s_bind_started(c2s_conn_t *c);
void c2s_bind_failed(c2s_conn_t *c, const xml_node_t *session);

/* relay.c */
void c2s_relay_client(c2s_conn_t *c, xml_stanza_t *st);
void c2s_relay_from_link(c2s_t *c2s, xml_stanza_t *st);
int c2s_relay_control(c2s_conn_t *c, const char *action, const char *jid);

#endif
