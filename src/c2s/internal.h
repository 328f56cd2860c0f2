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
#define C2S_NS_REGISTER "jabber:iq:register"
#define C2S_NS_REGISTER_FEATURE "http://jabber.org/features/iq-register"

/* Sources the registration rate limit remembers at most (see docs/config.md). */
#define C2S_REG_SOURCES_MAX 4096
/* A rate-limit source: an IPv4 address (4 bytes) or an IPv6 /64 (8 bytes). */
#define C2S_RATE_KEY_MAX 8

typedef struct c2s_conn c2s_conn_t;
typedef struct c2s_rate_src c2s_rate_src_t;

/*
 * At most per events in any window of window_ms, for each source, remembering at most
 * max_sources sources (ratelimit.c). A source is forgotten once its last event is a window
 * old; when the map is full of live ones, the one idle longest is forgotten first.
 */
typedef struct c2s_ratelimit {
    core_map_t by_key; /* key -> c2s_rate_src_t, owned */
    c2s_rate_src_t *newest; /* sources by their last event */
    c2s_rate_src_t *oldest;
    size_t count;
    size_t max_sources;
    unsigned per;
    uint64_t window_ms;
} c2s_ratelimit_t;

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
    c2s_ratelimit_t reg_limit; /* in-band registrations per source (with registration on) */
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
    bool cb_known; /* cb[].len says which channel-binding types apply */
    bool cb_data; /* cb[].data is filled too */
    bool registered; /* an account was registered on this stream (XEP-0077 §3.1.1) */
    struct c2s_reg *reg; /* the registration in flight (register.c), owned, or NULL */
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
/* Finds which channel-binding types apply, once TLS is up. */
void c2s_cb_fill(c2s_conn_t *c);
/* Also computes their data (for a -PLUS mechanism); false before TLS is up. */
bool c2s_cb_data(c2s_conn_t *c);

/* sasl_glue.c */
void c2s_sasl_element(c2s_conn_t *c, xml_stanza_t *st);
void c2s_sasl_cancel(c2s_conn_t *c);

/* bind.c */
void c2s_iq_error(c2s_conn_t *c, const char *id, const char *type, const char *cond);
bool c2s_bind_session_iq(c2s_conn_t *c, xml_stanza_t *st);
bool c2s_bind_iq(c2s_conn_t *c, xml_stanza_t *st);
void c2s_bind_started(c2s_conn_t *c);
void c2s_bind_failed(c2s_conn_t *c, const xml_node_t *session);

/* register.c: in-band registration before authentication (XEP-0077). */
/* Adds <register/> to the features of a stream that may register. */
void c2s_register_feature(c2s_conn_t *c, xml_stanza_t *features);
/* Answers a jabber:iq:register get or set before authentication; false: not one. */
bool c2s_register_iq(c2s_conn_t *c, xml_stanza_t *st);
/* A bound client's new password on a stream without TLS: refused here (true). */
bool c2s_register_cleartext(c2s_conn_t *c, xml_stanza_t *st);
/* Frees (and wipes) the registration in flight, if any. */
void c2s_register_free(c2s_conn_t *c);

/* ratelimit.c */
void c2s_ratelimit_init(c2s_ratelimit_t *rl, unsigned per, uint64_t window_ms, size_t max_sources);
/*
 * Whether the source key[0..len) (1..C2S_RATE_KEY_MAX bytes) may have one more event at now
 * (milliseconds, never decreasing); with take, the event is counted when it may.
 */
bool c2s_ratelimit_check(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now,
                         bool take);
/* The sources remembered now (for tests). */
size_t c2s_ratelimit_sources(const c2s_ratelimit_t *rl);
/*
 * The source of a peer address into out (C2S_RATE_KEY_MAX bytes): an IPv4 address (also as
 * an IPv4-mapped IPv6 address) is itself, an IPv6 address its /64. Returns the key's length,
 * or 0 for another address family.
 */
size_t c2s_ratelimit_key(const struct sockaddr *sa, uint8_t *out);
/* Frees the state (safe on a zeroed limiter that was never initialised). */
void c2s_ratelimit_free(c2s_ratelimit_t *rl);

/* relay.c */
void c2s_relay_client(c2s_conn_t *c, xml_stanza_t *st);
void c2s_relay_from_link(c2s_t *c2s, xml_stanza_t *st);
int c2s_relay_control(c2s_conn_t *c, const char *action, const char *jid);

#endif
