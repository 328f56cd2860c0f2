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
#define C2S_NS_SM "urn:xmpp:sm:3"
#define C2S_NS_CSI "urn:xmpp:csi:0"
#define C2S_NS_PING "urn:xmpp:ping"

/* Sources the registration rate limit remembers at most (see docs/config.md). */
#define C2S_REG_SOURCES_MAX 4096
/* A rate-limit source: an IPv4 address (4 bytes) or an IPv6 /64 (8 bytes). */
#define C2S_RATE_KEY_MAX 8
/* Sources, and accounts, whose failed authentications are remembered at most (authdelay.c). */
#define C2S_AUTH_KEYS_MAX 4096

typedef struct c2s_conn c2s_conn_t;
typedef struct c2s_rate_src c2s_rate_src_t;
typedef struct c2s_smgmt c2s_smgmt_t;
typedef struct c2s_csi c2s_csi_t;

/* A stanza sent (or to send) to the client, waiting for its XEP-0198 acknowledgement. */
typedef struct c2s_unacked {
    xml_stanza_t *st; /* a reference */
    uint64_t at; /* loop time (ms) it was queued: when delivery was first tried */
    bool counted; /* a message the sm keeps a copy of (its 'managed'): acks are reported */
} c2s_unacked_t;

/*
 * XEP-0198 §4 counters and the unacknowledged queue (smq.c). Counters run modulo 2^32. The
 * queue holds the stanzas after 'acked', oldest first; its last 'unsent' ones were queued
 * while no connection was there (they go out at a resumption).
 */
typedef struct c2s_smq {
    c2s_unacked_t *v; /* a ring of cap entries starting at head; owned */
    size_t head;
    size_t len;
    size_t cap;
    size_t unsent;
    size_t bytes; /* serialised bytes of the queued stanzas */
    uint32_t acked; /* the client's last h */
    uint32_t handled; /* our h: stanzas received from the client since <enable/> */
    uint32_t counted_acked; /* counted entries the client acknowledged (mod 2^32) */
} c2s_smq_t;

/* A list of sessions (stream management records), oldest deadline first. */
typedef struct c2s_smlist {
    c2s_smgmt_t *head;
    c2s_smgmt_t *tail;
} c2s_smlist_t;

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

/* Open connections per source (srclimit.c): key -> count, only sources that have some. */
typedef struct c2s_srclimit {
    core_map_t by_key;
    unsigned max;
} c2s_srclimit_t;

/* A SASL answer held back by the failed-authentication delay (authdelay.c). */
typedef struct c2s_hold {
    c2s_conn_t *conn;
    struct c2s_hold *prev; /* in c2s->held, by due time, earliest first */
    struct c2s_hold *next;
    uint64_t due; /* loop time, ms */
    sasl_error_t err; /* the failure to send, or SASL_ERR_NONE for a success */
    const uint8_t *out; /* a success's additional data, owned by conn->sasl */
    size_t out_len;
} c2s_hold_t;

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
    core_map_t sm_records; /* sid -> c2s_smgmt_t of sessions without a connection (smgmt.c) */
    c2s_smlist_t sm_detached; /* waiting to be resumed, by deadline */
    c2s_smlist_t sm_ending; /* told end, waiting for the sm's ended, by deadline */
    uv_timer_t sm_timer; /* the first deadline of those two lists */
    uv_timer_t ping_timer; /* the keepalive sweep (keepalive.c) */
    uint64_t next_ping_id;
    bool timers_closed;
    c2s_srclimit_t per_source; /* open connections per source */
    net_rate_t read_rate; /* every client connection's read budget */
    c2s_ratelimit_t auth_fail_src; /* failed authentications per source (authdelay.c) */
    c2s_ratelimit_t auth_fail_acct; /* ... and per account */
    c2s_hold_t *held; /* SASL answers waiting for their time, earliest first (authdelay.c) */
    c2s_hold_t *held_last; /* ... and the latest */
    uv_timer_t hold_timer; /* the first of them */
    uint8_t mock_key[32]; /* SCRAM's salts for unknown users (RFC 5802 §5.1), random */
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
    char *shard; /* the name the sm answered 'started' from: which shard holds it (owned) */
    sasl_cb_data_t cb[SASL_CB_COUNT];
    bool cb_known; /* cb[].len says which channel-binding types apply */
    bool cb_data; /* cb[].data is filled too */
    bool registered; /* an account was registered on this stream (XEP-0077 §3.1.1) */
    struct c2s_reg *reg; /* the registration in flight (register.c), owned, or NULL */
    c2s_smgmt_t *smgmt; /* XEP-0198 once enabled (owned), or NULL */
    c2s_csi_t *csi; /* XEP-0352 while inactive (owned), or NULL */
    uint64_t last_input; /* loop time (ms) of the last element from the client */
    uint64_t probe_at; /* loop time of the keepalive probe not yet answered; 0: none */
    c2s_hold_t *hold; /* the SASL answer held back (authdelay.c), owned by c2s->held, or NULL */
    uint8_t src_key[C2S_RATE_KEY_MAX]; /* the source address, for the limits that count it */
    uint8_t src_len;
    bool src_counted; /* counted in c2s->per_source */
};

/* XEP-0352: what is held for an inactive client, oldest first (csi.c). */
struct c2s_csi {
    xml_stanza_t **held; /* references, owned */
    size_t n;
    size_t cap;
};

/* listener.c: closes the link once stopping and every client is gone. */
void c2s_link_release(c2s_t *c2s);

/* conn.c */
void c2s_conn_accept(c2s_t *c2s, net_conn_t *nc, bool direct_tls);
c2s_conn_t *c2s_conn_by_sid(c2s_t *c2s, const char *sid);
/* Sends st (borrowed) to the client: held while it is inactive and st can wait (XEP-0352). */
void c2s_conn_send(c2s_conn_t *c, xml_stanza_t *st);
/*
 * Writes st (borrowed) now, past CSI. A stanza is counted and kept for its XEP-0198
 * acknowledgement; without a stream any more (it just went) it is only kept.
 */
void c2s_conn_write(c2s_conn_t *c, xml_stanza_t *st);
/* Makes c the one found by its sid, or stops that (only if the entry is c's). */
void c2s_conn_map(c2s_conn_t *c);
void c2s_conn_unmap(c2s_conn_t *c);
uint64_t c2s_conn_id(const c2s_conn_t *c);
/* An auth lookup or hash finished: frees a connection that went away meanwhile. */
void c2s_conn_work_done(c2s_conn_t *c);

/* status.c: answers st if it is a status query to the c2s's name (then true). st borrowed. */
bool c2s_status_input(c2s_t *c2s, xml_stanza_t *st);

/* features.c */
void c2s_features_send(c2s_conn_t *c);
/* Finds which channel-binding types apply, once TLS is up. */
void c2s_cb_fill(c2s_conn_t *c);
/* Also computes their data (for a -PLUS mechanism); false before TLS is up. */
bool c2s_cb_data(c2s_conn_t *c);

/* sasl_glue.c */
void c2s_sasl_element(c2s_conn_t *c, xml_stanza_t *st);
void c2s_sasl_cancel(c2s_conn_t *c);
/* The delay of a held answer is over: sends it and reads the stream again. */
void c2s_sasl_release(c2s_conn_t *c, const c2s_hold_t *h);

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
/*
 * Records an event for the source even when it has per events in the window already (the
 * oldest is then forgotten), and returns how many it has in the window now (1..per).
 */
unsigned c2s_ratelimit_note(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now);
/* The source's events in the window at now, and the time of its last one in *last. */
unsigned c2s_ratelimit_count(c2s_ratelimit_t *rl, const uint8_t *key, size_t len, uint64_t now,
                             uint64_t *last);
/* Forgets the source's events. */
void c2s_ratelimit_forget(c2s_ratelimit_t *rl, const uint8_t *key, size_t len);
/* The source of a connection's peer (c2s_ratelimit_key); another family is the key {0}. */
size_t c2s_ratelimit_peer_key(net_conn_t *nc, uint8_t *out);
/* Frees the state (safe on a zeroed limiter that was never initialised). */
void c2s_ratelimit_free(c2s_ratelimit_t *rl);

/* srclimit.c: open connections per source, at most max each. */
void c2s_srclimit_init(c2s_srclimit_t *l, unsigned max);
/* Counts one more connection from the source, or returns false (and counts nothing). */
bool c2s_srclimit_take(c2s_srclimit_t *l, const uint8_t *key, size_t len);
/* One connection from the source closed (it was taken). */
void c2s_srclimit_release(c2s_srclimit_t *l, const uint8_t *key, size_t len);
unsigned c2s_srclimit_count(const c2s_srclimit_t *l, const uint8_t *key, size_t len);
/* A new connection over its source's limit, on the STARTTLS port: closed with a stream error. */
void c2s_srclimit_refuse(c2s_conn_t *c);
/* The same on the direct TLS port: closed before TLS. */
void c2s_srclimit_refuse_tls(c2s_t *c2s, net_conn_t *nc);
/* Sources with connections now (for tests). */
size_t c2s_srclimit_sources(const c2s_srclimit_t *l);
void c2s_srclimit_free(c2s_srclimit_t *l);

/* authdelay.c: the failed-authentication delay. */
/* The delay after n failures in the window: base doubled n-1 times, at most max; 0 for 0. */
uint64_t c2s_authdelay_ms(uint64_t base_ms, uint64_t max_ms, unsigned n);
/* The failures worth counting: the first n whose delay reaches max (at most 32). */
unsigned c2s_authdelay_slots(uint64_t base_ms, uint64_t max_ms);
void c2s_authdelay_init(c2s_t *c2s);
/* Closes the timer (c2s_stop); held answers go with their connections. */
void c2s_authdelay_stop(c2s_t *c2s);
void c2s_authdelay_free(c2s_t *c2s);
/* A failed attempt from c's source for account (NULL: not known yet): counted; returns how
 * long its <failure/> waits. */
uint64_t c2s_authdelay_failed(c2s_conn_t *c, const jid_t *account);
/* How long a success for account from c's source waits for the failures before it. */
uint64_t c2s_authdelay_pending(c2s_conn_t *c, const jid_t *account);
/* account authenticated: its failures are forgotten (the source's are not). */
void c2s_authdelay_succeeded(c2s_conn_t *c, const jid_t *account);
/* Holds c's SASL answer for ms (the stream reads nothing meanwhile); then c2s_sasl_release. */
void c2s_authdelay_hold(c2s_conn_t *c, uint64_t ms, sasl_error_t err, const uint8_t *out,
                        size_t out_len);
/* c goes away: its held answer is dropped. */
void c2s_authdelay_cancel(c2s_conn_t *c);

/* relay.c */
void c2s_relay_client(c2s_conn_t *c, xml_stanza_t *st);
void c2s_relay_from_link(c2s_t *c2s, xml_stanza_t *st);
/*
 * The router says the name of our sm (name, prepared) was bound or unbound. Unbound: every
 * session there is gone with it, so each bound client gets <system-shutdown/>.
 */
void c2s_relay_sm_name(c2s_t *c2s, const char *name, bool bound);
int c2s_relay_control(c2s_conn_t *c, const char *action, const char *jid);
/* Session control for a session by its sid (jid may be NULL). Returns 0 or an error (logged). */
int c2s_relay_control_sid(c2s_t *c2s, const char *sid, const char *action, const char *jid);
/* The same with one attribute name='value' on <session/> instead of jid; user (a JID of
 * the session's account) addresses the envelope to the user's sm shard. */
int c2s_relay_control_attr(c2s_t *c2s, const char *sid, const char *user, const char *action,
                           const char *name, const char *value);
/*
 * Hands st (borrowed) back to the sm in an envelope of type undelivered, stamped with the
 * loop time at (ms) it was first queued (docs/link-protocol.md). Returns 0 or an error.
 */
int c2s_relay_undelivered(c2s_t *c2s, const char *sid, xml_stanza_t *st, uint64_t at);

/* smq.c: XEP-0198 counters and the unacknowledged queue, without I/O. */
/* Appends st (takes a reference) queued at loop time at; sent: it was written to the client. */
c2s_unacked_t *c2s_smq_push(c2s_smq_t *q, xml_stanza_t *st, uint64_t at, bool sent);
/* The stanzas written so far, modulo 2^32 (what the client can have handled). */
uint32_t c2s_smq_sent(const c2s_smq_t *q);
/*
 * The client handled h stanzas (§4): drops those from the queue. Returns 0, or -ERANGE when h
 * acknowledges more than was written (then nothing changes: §6, handled-count-too-high).
 */
int c2s_smq_ack(c2s_smq_t *q, uint32_t h);
/* The i-th queued entry, oldest first (i < len). Borrowed. */
c2s_unacked_t *c2s_smq_at(const c2s_smq_t *q, size_t i);
/* Removes the oldest entry; returns its stanza (the caller takes the reference) and time. */
xml_stanza_t *c2s_smq_shift(c2s_smq_t *q, uint64_t *at);
/* Drops every entry and the queue's memory; the counters stay. */
void c2s_smq_clear(c2s_smq_t *q);
/* Parses an h attribute: an xs:unsignedInt (decimal digits, at most 2^32-1). 0 or -EINVAL. */
int c2s_smq_parse_h(const char *s, uint32_t *out);

/* smgmt.c: stream management (XEP-0198) and sessions that wait to be resumed. */
/* An element in urn:xmpp:sm:3 after authentication: handled, true; anything else false. */
bool c2s_smgmt_element(c2s_conn_t *c, xml_stanza_t *st);
/* A stanza arrived from the client: counted for our h once enabled. */
void c2s_smgmt_received(c2s_conn_t *c);
/* Keeps stanza st (borrowed) for its acknowledgement. false: that ended the session (its
 * queue overflowed, the stanza was handed back to the sm): do not write it. */
bool c2s_smgmt_track(c2s_conn_t *c, xml_stanza_t *st);
/* After a tracked stanza was written: asks for an acknowledgement now and then. */
void c2s_smgmt_sent(c2s_conn_t *c);
/* Sends <r/> (an acknowledgement request, also the keepalive probe). */
void c2s_smgmt_request(c2s_conn_t *c);
/* True when stanzas wait for an acknowledgement and no <r/> is outstanding. */
bool c2s_smgmt_waiting(const c2s_conn_t *c);
/*
 * The connection of a session with stream management is gone (c->s is NULL): with
 * resumable (no clean close, no stream error of ours) and resumption enabled it waits to be
 * resumed; otherwise the session ends (the sm is told end and gets the unacknowledged back).
 */
void c2s_smgmt_gone(c2s_conn_t *c, bool resumable);
/* A stanza or control envelope (borrowed) for a session without a connection: false if sid
 * names none. */
bool c2s_smgmt_from_link(c2s_t *c2s, const char *sid, xml_stanza_t *env);
/* A stanza (borrowed) for session sid that ended a moment ago, while the connection still
 * writes (what CSI held when the queue overflowed): handed back, true; false if sid names
 * no session that ended. */
bool c2s_smgmt_hand_back(c2s_t *c2s, const char *sid, xml_stanza_t *st);
/* The sm's 'managed' for connection c's session: it keeps copies of the messages from now. */
void c2s_smgmt_managed(c2s_conn_t *c);
/* The link is down: sessions waiting for ended will not hear it. */
void c2s_smgmt_link_down(c2s_t *c2s);
/* The sm's name was unbound: sessions waiting to be resumed end (what they held goes to
 * whichever sm comes next, or bounces), and those waiting for ended stop waiting. */
void c2s_smgmt_sm_gone(c2s_t *c2s);
/* Stopping: every session waiting to be resumed ends; the timer closes. */
void c2s_smgmt_stop(c2s_t *c2s);
/* Frees what is left (c2s_free) and a connection's state (conn_free). */
void c2s_smgmt_free_all(c2s_t *c2s);
void c2s_smgmt_free(c2s_smgmt_t *m);

/* csi.c: client state indication (XEP-0352). */
typedef enum c2s_csi_class {
    C2S_CSI_URGENT = 0, /* goes out at once, after what is held */
    C2S_CSI_HOLD, /* held in order */
    C2S_CSI_LATEST, /* held, replacing one held from the same sender (presence) */
} c2s_csi_class_t;
/* What an inactive client's stanza st is; own is the client's JID (its bare part counts). */
c2s_csi_class_t c2s_csi_classify(const xml_stanza_t *st, const jid_t *own);
/* Holds st (takes a reference) as cls says: LATEST first drops one held from the same from. */
void c2s_csi_add(c2s_csi_t *q, xml_stanza_t *st, c2s_csi_class_t cls);
/* Drops everything held and the memory. */
void c2s_csi_clear(c2s_csi_t *q);
/* <active/> or <inactive/>: handled, true; anything else false. */
bool c2s_csi_element(c2s_conn_t *c, xml_stanza_t *st);
/* Holds st (borrowed) for an inactive client and returns true; false: send it now (an urgent
 * one first sends everything held). */
bool c2s_csi_hold(c2s_conn_t *c, xml_stanza_t *st);
/* Writes everything held, oldest first. */
void c2s_csi_flush(c2s_conn_t *c);
/* Ends c's CSI state; returns what it held (owned array of references, oldest first). */
xml_stanza_t **c2s_csi_take(c2s_conn_t *c, size_t *n);
/* How many messages CSI holds for c now. */
size_t c2s_csi_messages(const c2s_conn_t *c);
void c2s_csi_free(c2s_conn_t *c);

/* keepalive.c: dead-peer detection (XEP-0199, or XEP-0198 <r/>). */
/* Starts the sweep over the connections (c2s_start); c2s_stop closes its timer. */
void c2s_keepalive_start(c2s_t *c2s);
/* The sweep period for the configured durations (ms). */
uint64_t c2s_keepalive_period(uint64_t interval_ms, uint64_t timeout_ms);
/* An element arrived from the client: it is alive. */
void c2s_keepalive_input(c2s_conn_t *c);
/* The answer to our ping (an iq result or error with its id): consumed, true. */
bool c2s_keepalive_pong(c2s_conn_t *c, xml_stanza_t *st);

#endif
