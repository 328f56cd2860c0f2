/* SPDX-License-Identifier: MIT */
/* sm internals: users, sessions, the module interface and the helpers modules use. */
#ifndef PARLEY_SM_INTERNAL_H
#define PARLEY_SM_INTERNAL_H

#include "core/map.h"
#include "jid/jid.h"
#include "sm/sm.h"
#include "xml/dispatch.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>

#define SM_NS_SESSION "urn:parley:session:0"
#define SM_NS_ROSTER "jabber:iq:roster"
#define SM_NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define SM_NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define SM_NS_DELAY "urn:xmpp:delay"
#define SM_NS_REGISTER "jabber:iq:register"

/* The module interface's version; a module built for another one is refused at startup. */
#define SM_MODULE_API 1
/* Per-user and per-session slots: one per module. */
#define SM_MODULES_MAX 32
/* Stanzas held for a user whose data is still loading. */
#define SM_USER_QUEUE_MAX 256
/* What a peer can make one user cost (RFC 6121 §2.3.3 lets a server limit rosters). */
#define SM_ROSTER_MAX 10000 /* roster items; more is <policy-violation/> */
#define SM_PENDING_IN_MAX 1000 /* subscription requests waiting; more are dropped */
#define SM_DIRECTED_MAX 256 /* directed-presence recipients remembered per session */

typedef struct sm_user sm_user_t;
typedef struct sm_sess sm_sess_t;
typedef struct sm_mod sm_mod_t;

/* A message routed to a stream-managed session, kept until its c2s says it was acknowledged. */
typedef struct sm_kept_entry {
    xml_stanza_t *st; /* a reference */
    uint32_t seq; /* the session's message count when it was routed (mod 2^32) */
    int64_t ms; /* wall-clock time (ms since the epoch) it was routed: the delay stamp */
} sm_kept_entry_t;

/*
 * The copies of XEP-0198 (kept.c, docs/link-protocol.md "Acknowledged messages"): a ring of
 * the messages routed to the session since its c2s's 'managed' that the client has not
 * acknowledged yet, oldest first.
 */
typedef struct sm_kept {
    sm_kept_entry_t *v; /* a ring of cap entries starting at head; owned */
    size_t head;
    size_t len;
    size_t cap;
    size_t max; /* the c2s's bound (its sm_max_unacked) */
    uint32_t next_seq; /* messages routed since 'managed' */
    uint64_t dropped; /* copies dropped past max (lost if the c2s dies) */
} sm_kept_t;

/* ---- sessions and users ---- */

struct sm_sess {
    sm_user_t *user;
    sm_sess_t *next; /* the user's next session */
    jid_t jid; /* full JID */
    char *c2s; /* the link name of the c2s that holds it (owned) */
    char *sid; /* its id there (owned) */
    char *key; /* "c2s sid", the key in sm->sessions (owned) */
    bool started; /* 'started' was sent: the c2s knows the session */
    bool available; /* initial presence sent, not yet unavailable (RFC 6121 §4.2) */
    bool interested; /* asked for the roster: gets roster pushes (RFC 6121 §2.1.6) */
    int priority; /* of the last available presence, -128..127 */
    xml_stanza_t *presence; /* the last available presence broadcast (a reference), or NULL */
    bool managed; /* the client enabled XEP-0198: messages routed to it are kept */
    sm_kept_t kept; /* the copies while managed */
    char **directed; /* JIDs sent directed available presence (RFC 6121 §4.6), owned */
    size_t ndirected;
    void *slots[SM_MODULES_MAX];
};

typedef enum sm_user_state {
    SM_USER_LOADING = 0, /* roster and pending requests are being read */
    SM_USER_READY,
    SM_USER_MISSING, /* no such account */
} sm_user_state_t;

typedef struct sm_queued {
    xml_stanza_t *st; /* a reference */
    bool returned; /* handed back by a c2s (XEP-0198): only delivered again */
} sm_queued_t;

/* Sessions of a user that ended lately, remembered for what their c2s hands back. */
#define SM_GONE_MAX 4

typedef struct sm_gone {
    char sid[64]; /* its id at its c2s; "" when unused */
    int priority; /* of its last available presence; -1 when it was not available */
} sm_gone_t;

struct sm_user {
    sm_t *sm;
    jid_t jid; /* bare */
    char *node; /* the localpart, the storage user name (owned) */
    sm_user_state_t state;
    storage_roster_t roster; /* items sorted by JID, as storage gives them */
    char **pending_in; /* contacts whose subscription request waits (RFC 6121 §3.1.3), owned */
    size_t npending_in;
    sm_sess_t *sessions;
    unsigned busy; /* storage requests in flight that will touch this user */
    sm_queued_t *queue; /* stanzas for the user that arrived while loading */
    size_t nqueue;
    /*
     * The offline queue as read with the user for a session start (one storage trip per
     * login), for the offline module; stale once a message was stored since.
     */
    storage_list_t offline;
    bool offline_loaded;
    sm_gone_t gone[SM_GONE_MAX]; /* a ring, the next to reuse at gone_next */
    unsigned gone_next;
    void *slots[SM_MODULES_MAX];
};

/* ---- what handlers see ---- */

typedef struct sm_pkt {
    xml_stanza_t *st; /* borrowed */
    xml_stanza_kind_t kind;
    xml_stanza_type_t type; /* one bit */
    const xml_node_t *payload; /* iq: the first child element; else NULL */
    jid_t from; /* prepared */
    jid_t to; /* prepared; full == NULL when the stanza had no 'to' */
    sm_sess_t *sess; /* the local session that sent it, or NULL */
    sm_user_t *user; /* IN_SESS, FROM_USER: the sender; TO_USER: the addressee; else NULL */
    /*
     * A module that changes the stanza replaces st with sm_pkt_set_stanza; the packet then
     * holds that reference (here) until it is cleared, and later handlers and the core's
     * delivery see the new one.
     */
    xml_stanza_t *owned;
    /* It came from the router, which chose this shard for it: handled here whatever our
     * member list says, so that two shards that disagree for a moment never loop it. */
    bool via_router;
    /*
     * IN_SESS: the XEP-0359 id under which the sender's own archive keeps this message (set
     * by the archive module, owned by the packet), for the sent carbon (XEP-0313 §5.1.3);
     * NULL when it is not archived, and while a local addressee's chain runs.
     */
    char *stanza_id;
} sm_pkt_t;

/* Replaces pkt->st with st, a reference the packet takes over. */
void sm_pkt_set_stanza(sm_pkt_t *pkt, xml_stanza_t *st);
/* Makes pkt->st writable (an unshared copy, once) and returns it. */
xml_stanza_t *sm_pkt_writable(sm_pkt_t *pkt);

/*
 * The chains a stanza passes through, in module order, until a handler returns
 * XMLS_HANDLED. What no handler takes gets the core's default treatment.
 */
typedef enum sm_chain {
    SM_CHAIN_IN_SESS = 0, /* sent by a local session, before it is routed on */
    SM_CHAIN_TO_SERVER, /* addressed to the domain itself */
    SM_CHAIN_TO_USER, /* addressed to an existing local user (bare or full JID) */
    SM_CHAIN_UNDELIVERED, /* a message for a user with no session to take it (offline) */
    /*
     * Leaving a local user's account for another address: what its sessions send (after
     * IN_SESS) and what the sm sends in its name (presence broadcasts, probe answers,
     * errors). HANDLED stops it (XEP-0191 blocking).
     */
    SM_CHAIN_FROM_USER,
    SM_CHAIN_COUNT
} sm_chain_t;

/* Events modules may follow (sm_module.on_event). */
typedef enum sm_event {
    SM_EV_SESS_START = 0, /* a session was created (before 'started' is sent) */
    SM_EV_SESS_AVAILABLE, /* a session sent its initial presence */
    SM_EV_SESS_END, /* a session is ending (it is still in the user's list) */
    /* The sm is stopping: every session has ended, the store is closed right after (sess is
     * NULL). The last chance to hand the store what waits. */
    SM_EV_STOP,
} sm_event_t;

typedef xml_handler_result_t (*sm_handler_fn)(sm_t *sm, void *data, sm_pkt_t *pkt);

/*
 * A module: one file, one const descriptor (see modules.c, generated from meson.build's
 * list). init registers handlers with sm_handler_add and may set mod->data.
 */
typedef struct sm_module {
    const char *name;
    unsigned api; /* SM_MODULE_API */
    const char *const *features; /* the server's disco#info features (NULL-terminated) */
    const char *const *account_features; /* an account's disco#info features */
    int (*init)(sm_t *sm, sm_mod_t *mod);
    void (*fini)(sm_t *sm, sm_mod_t *mod);
    void (*on_event)(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess);
    /*
     * A storage document kind read with every user (all its documents, with their data, in
     * the user's one load request), handed to on_user_load before the user is READY.
     */
    const char *user_kind;
    void (*on_user_load)(sm_t *sm, void *data, sm_user_t *u, const storage_docs_t *docs);
    /*
     * A message for pkt->user was handed to the sessions to[0..n) (n >= 1) by the delivery
     * rules (RFC 6121 §8.5). For what follows delivery: received carbons (XEP-0280).
     */
    void (*on_delivered)(sm_t *sm, void *data, const sm_pkt_t *pkt, sm_sess_t *const *to, size_t n);
    /* Frees the module's slot of a user (sess NULL) or of a session that is being freed. */
    void (*free_slot)(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess);
    /*
     * A session's presence broadcast (RFC 6121 §4.2 to §4.5: available or unavailable, no
     * 'to'), once the presence module has sent it on; also the unavailable presence the sm
     * makes for a session that ends while available. st (borrowed) carries the session's
     * full JID as 'from'. For what follows presence: caps (XEP-0115), last activity.
     */
    void (*on_presence)(sm_t *sm, void *data, sm_sess_t *sess, const xml_stanza_t *st);
    /* XEP-0030 identities the module adds, "category/type" each (NULL-terminated): to the
     * server's disco#info and to an account's (PEP's pubsub/pep, XEP-0163 §9.1). */
    const char *const *identities;
    const char *const *account_identities;
    /*
     * XEP-0030 queries to an account's bare JID that mod_disco lets through (pkt->user the
     * account; items: disco#items, else disco#info). node NULL: adds what the module has to
     * the account's own answer (disco#items: its items); returns nothing of interest. A node:
     * answers for it (filling query) and returns true if the module serves it; a node that no
     * module serves is item-not-found.
     */
    bool (*disco_account)(sm_t *sm, void *data, const sm_pkt_t *pkt, const char *node, bool items,
                          xml_stanza_t *r, xml_node_t *query);
} sm_module_t;

struct sm_mod {
    const sm_module_t *def;
    unsigned index; /* the module's slot in users and sessions */
    void *data;
};

typedef struct sm_handler {
    xml_match_t match;
    sm_handler_fn fn;
    void *data;
} sm_handler_t;

/* modules.c (generated): every module built in, in chain order. */
extern const sm_module_t *const sm_modules_builtin[];
extern const size_t sm_modules_builtin_count;

struct sm {
    uv_loop_t *loop;
    const core_log_t *log;
    const sm_config_t *cfg;
    const link_opener_t *opener;
    storage_t *store;
    jid_cache_t *jids;
    link_endpoint_t *link;
    core_map_t users; /* bare JID -> sm_user_t */
    core_map_t sessions; /* "c2s sid" -> sm_sess_t */
    sm_mod_t mods[SM_MODULES_MAX];
    size_t nmods;
    sm_handler_t *handlers[SM_CHAIN_COUNT];
    size_t nhandlers[SM_CHAIN_COUNT];
    uint64_t next_id; /* for ids of stanzas the sm makes */
    const char *user_kinds[SM_MODULES_MAX + 1]; /* the modules' user_kind, NULL-terminated */
    size_t user_kind_mod[SM_MODULES_MAX]; /* the module index of each */
    struct sm_iq *iq; /* IQs the sm sent and waits for (iq.c), NULL until the first */
    uint64_t iq_timeout_ms; /* how long they wait; 0: SM_IQ_TIMEOUT_MS (tests wait less) */
    struct {
        uint64_t offline_stored; /* messages the offline module stored since start */
    } stats; /* for the status module */
    char **shards; /* the shards of the domain, from the router (shard.c), owned */
    size_t nshards;
    bool stopping;
};

/* module.c */
int sm_modules_init(sm_t *sm);
void sm_modules_fini(sm_t *sm);
/* Registers fn on chain for stanzas matching m (strings must outlive the sm). An iq get/set
 * payload may have one handler per chain: -EEXIST otherwise. */
int sm_handler_add(sm_t *sm, sm_chain_t chain, const xml_match_t *m, sm_handler_fn fn, void *data);
xml_handler_result_t sm_chain_run(sm_t *sm, sm_chain_t chain, sm_pkt_t *pkt);
void sm_event_fire(sm_t *sm, sm_event_t ev, sm_sess_t *sess);
void sm_delivered_fire(sm_t *sm, const sm_pkt_t *pkt, sm_sess_t *const *to, size_t n);
/* Lets each module free its slot of u (sess NULL) or of sess. */
void sm_slots_free(sm_t *sm, sm_user_t *u, sm_sess_t *sess);
/* The user's load answered: each module with a user_kind gets its documents. */
void sm_user_loaded_fire(sm_t *sm, sm_user_t *u, const storage_docs_t *docs, size_t ndocs);
/* A session's presence broadcast: each module's on_presence (st borrowed). */
void sm_presence_fire(sm_t *sm, sm_sess_t *sess, const xml_stanza_t *st);
/* Calls fn for each feature of the enabled modules (account: an account's, else the
 * server's). */
void sm_features_each(const sm_t *sm, bool account, void (*fn)(void *ud, const char *var),
                      void *ud);
/*
 * Appends to query (a disco#info <query/> of the unshared st) the identity and the features
 * (each once) of the server or of an account (XEP-0030 §3.1): what disco answers, and what
 * the server's caps hash covers (XEP-0115 §5.1).
 */
void sm_info_fill(const sm_t *sm, bool account, xml_stanza_t *st, xml_node_t *query);

/* Calls fn for each identity ("category/type") of the enabled modules (account: an
 * account's, else the server's). */
void sm_identities_each(const sm_t *sm, bool account, void (*fn)(void *ud, const char *id),
                        void *ud);
/* Offers an account's disco query to each module's disco_account (see there); true when
 * node is not NULL and a module answered for it. */
bool sm_disco_account_run(sm_t *sm, const sm_pkt_t *pkt, const char *node, bool items,
                          xml_stanza_t *r, xml_node_t *query);

/* mod_caps.c: entity capabilities (XEP-0115) of the JIDs whose presence the sm has seen. */
/* True when full_jid's current caps are known and list feature (e.g.
 * "urn:xmpp:bookmarks:1+notify"); false when they do not, are not known yet, or the caps module is
 * off. */
bool sm_caps_has_feature(sm_t *sm, const char *full_jid, const char *feature);
/*
 * Registers fn, called with ud whenever a full JID's features become known: its presence
 * named caps that were known already, or the answer to the sm's disco#info query verified
 * (XEP-0115 §5.4); again when they change. full_jid is borrowed for the call. For modules
 * that act on a contact's interests (PEP +notify, XEP-0163 §4.3). Call from init; nothing
 * happens when the caps module is off. At most 8 listeners.
 */
void sm_caps_on_known(sm_t *sm, void (*fn)(sm_t *sm, void *ud, const char *full_jid), void *ud);
/* The server's own caps node, "<node>#<ver>" (XEP-0115 §6.2), which disco#info answers as if
 * there were no node; NULL when the caps module is off. Borrowed: valid while the sm runs. */
const char *sm_caps_server_node(sm_t *sm);

/* iq.c: IQs the sm sends in its own name (from the domain), and their answers. */
#define SM_IQ_TIMEOUT_MS 30000 /* an answer that takes longer is a timeout */
#define SM_IQ_MAX 4096 /* requests waiting for an answer at once */
/*
 * The answer to an IQ: the result or error (borrowed for the call; from the JID it was sent
 * to), or NULL after SM_IQ_TIMEOUT_MS or when the sm stops.
 */
typedef void (*sm_iq_cb)(sm_t *sm, void *arg, const xml_stanza_t *reply);
/*
 * Sends st, an <iq type='get'|'set'/> with a 'to' (borrowed; unshared: its 'from' becomes the
 * domain and its 'id' one chosen here), and calls cb once with the answer. Returns 0, or
 * -EINVAL (not such an iq, or a bad 'to'), -ENOBUFS (SM_IQ_MAX waiting), -ECANCELED (the sm
 * is stopping); then cb never runs. cb never runs inside this call, even when the answer is
 * made at once (an error from this sm): it then runs on the next turn of the loop.
 */
int sm_iq_send(sm_t *sm, xml_stanza_t *st, sm_iq_cb cb, void *arg);
/* An iq result or error for the domain: true when it answers a request of sm_iq_send (whose
 * callback then got it), false when it is not one (wrong id, or not from the JID asked). */
bool sm_iq_input(sm_t *sm, const sm_pkt_t *pkt);
/* Answers every waiting request with NULL and releases the timer (sm_stop, sm_free). */
void sm_iq_stop(sm_t *sm);

/* user.c */
/* The user in memory, or NULL. */
sm_user_t *sm_user_find(sm_t *sm, const char *bare, size_t len);
/* The user, loading it if needed (state LOADING until its data arrives); for_session also
 * reads its offline queue, which a session will want. */
sm_user_t *sm_user_get(sm_t *sm, const jid_t *bare, bool for_session);
/* Frees the user if nothing holds it any more; call only from the top of a callback. */
void sm_user_release(sm_t *sm, sm_user_t *u);
void sm_user_free(sm_t *sm, sm_user_t *u);
bool sm_user_pending_in(const sm_user_t *u, const char *jid);
/* Keeps (with the request's bytes) or forgets a pending inbound subscription request. */
void sm_user_set_pending_in(sm_t *sm, sm_user_t *u, const char *jid, xml_stanza_t *request);
void sm_user_clear_pending_in(sm_t *sm, sm_user_t *u, const char *jid);
/* Presents the stored pending requests to a session that just became available. */
void sm_user_replay_pending_in(sm_t *sm, sm_sess_t *sess);

/* roster.c */
/* The roster item for a bare JID, or NULL. */
storage_roster_item_t *sm_roster_find(sm_user_t *u, const char *jid);
/* Stores item in memory and in storage, then pushes it (RFC 6121 §2.1.6) once stored. */
void sm_roster_put(sm_t *sm, sm_user_t *u, const storage_roster_item_t *item);
/* Removes the item, then pushes subscription='remove'. */
void sm_roster_remove(sm_t *sm, sm_user_t *u, const char *jid);
/* Appends <item/> for it under parent (RFC 6121 §2.1.2). */
void sm_roster_item_xml(xml_stanza_t *st, xml_node_t *parent, const storage_roster_item_t *it);

/* session.c */
void sm_session_control(sm_t *sm, const char *c2s, const char *sid, const xml_node_t *ctl);
/* A user's data is loaded (or found missing): answer the sessions waiting on it. */
void sm_session_user_ready(sm_t *sm, sm_user_t *u);
sm_sess_t *sm_session_find(sm_t *sm, const char *c2s, const char *sid);
sm_sess_t *sm_session_by_resource(sm_user_t *u, const char *full);
/*
 * Ends a session as the sm's decision: its c2s is told kick with the stream error cond (if
 * the session had started), then it ends as if the client had left (unavailable presence).
 * The user stays (the caller releases it).
 */
void sm_session_kick(sm_t *sm, sm_sess_t *sess, const char *cond);
/* Ends every session (stop). */
void sm_session_end_all(sm_t *sm);
/*
 * Ends a session as its 'end' would, with unavailable presence to contacts and
 * directed-presence recipients, and no answer. dead: its c2s is gone (its name unbound, or an
 * envelope to it bounced), so the copies of the messages its client did not acknowledge are
 * delivered again as returned stanzas (kept.c); else the c2s hands them back itself and the
 * copies are dropped. Releases the user.
 */
void sm_session_lost(sm_t *sm, sm_sess_t *sess, bool dead);
/* Ends every session at the c2s whose link name (prepared) was unbound, as sm_session_lost. */
void sm_session_c2s_gone(sm_t *sm, const char *name);

/* kept.c: copies of messages for stream-managed sessions until their client acknowledges them. */
/* c2s's 'managed' (max: its bound, NULL: the default): copies are kept from now on. */
void sm_kept_start(sm_t *sm, sm_sess_t *sess, const char *max);
/* Keeps a copy of st (borrowed) if the session is managed and st a message. */
void sm_kept_routed(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st);
/* c2s's 'acked': the client acknowledged the first count messages since 'managed'. */
void sm_kept_acked(sm_t *sm, sm_sess_t *sess, const char *count);
/* Takes the copies out of the session (the caller owns *out: sm_kept_replay or _clear). */
void sm_kept_take(sm_sess_t *sess, sm_kept_t *out);
/* Delivers each copy again, oldest first, as a stanza session sid handed back; clears k. */
void sm_kept_replay(sm_t *sm, sm_kept_t *k, const char *sid);
void sm_kept_clear(sm_kept_t *k);

/* deliver.c */
/* A stanza from the router (not an envelope). */
void sm_deliver_input(sm_t *sm, xml_stanza_t *st);
/* A stanza from a local session (its 'from' is the session's full JID). */
void sm_deliver_from_session(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st);
/* Sends st on: to a local user or the server (processed here), or to the router. */
void sm_route(sm_t *sm, xml_stanza_t *st);
/* Processes a stanza addressed to a user that is READY or MISSING. */
void sm_deliver_to_user(sm_t *sm, sm_user_t *u, xml_stanza_t *st);
/*
 * A stanza a c2s handed back (type='undelivered', docs/link-protocol.md): its session is gone,
 * so it is delivered again as to a resource that is not there (RFC 6121 §8.5.3.2), without
 * the TO_USER chain, which it went through already. stamp: when delivery was first tried
 * (XEP-0082), for the XEP-0203 delay of a message; NULL: now.
 */
void sm_deliver_returned(sm_t *sm, xml_stanza_t *st, const char *stamp, const char *sid);
/* The same for a user that is READY or MISSING (a returned stanza that waited for it); sid
 * names the session it was for (NULL: not known). */
void sm_deliver_returned_to(sm_t *sm, sm_user_t *u, xml_stanza_t *st, const char *sid);
/* Remembers that the user's session sid (borrowed) ended, with its availability. */
void sm_user_note_gone(sm_user_t *u, const char *sid, bool available, int priority);
/* The priority a session that ended lately had when it was available; -1: not available
 * then, or not remembered. */
int sm_user_gone_priority(const sm_user_t *u, const char *sid);
/* Adds a XEP-0203 <delay from='domain'/> to st (unshared); stamp NULL: now; text may be NULL. */
void sm_delay_add(sm_t *sm, xml_stanza_t *st, const char *stamp, const char *text);
/* True when st already carries a delay from this server. */
bool sm_delay_ours(const sm_t *sm, const xml_stanza_t *st);
/* Hands st to one session's client, in an envelope to its c2s. */
void sm_sess_send(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st);
/* Answers st with an error (nothing for errors). */
void sm_reply_error(sm_t *sm, xml_stanza_t *st, core_stanza_err_t cond);
/* A new <iq type='result'/> answering st: xml_stanza_iq_result's, from the account's bare JID
 * when st had no 'to' (RFC 6120 §10.3.3). */
xml_stanza_t *sm_iq_result(const xml_stanza_t *st);
/* RFC 6121 §8.5.2.1: the sessions a bare-JID message goes to (priority rules); returns the
 * count, writing at most max into out. */
size_t sm_bare_targets(sm_user_t *u, sm_sess_t **out, size_t max);
/*
 * An IN_SESS request meant for the user's home server rather than for someone else: no 'to'
 * (RFC 6120 §10.3.3), the user's own bare JID, or the domain (carbons toggles, XEP-0077).
 */
bool sm_pkt_to_home(const sm_t *sm, const sm_pkt_t *pkt);
/* True if jid's domain is served here. */
bool sm_is_local(const sm_t *sm, const jid_t *jid);

/* shard.c: one sm among several shards of the domain (docs/link-protocol.md, "Shards") */
/* The name the sm sends from: its [sm] name when it is a shard, else the domain. */
const char *sm_link_name(const sm_t *sm);
/* True when jid is this shard's own name (no node, no resource). */
bool sm_shard_is_self(const sm_t *sm, const jid_t *jid);
/* True when this sm owns the user of jid (its bare JID): not sharded, no member list yet,
 * or the rendezvous choice over the router's list is this shard. */
bool sm_shard_mine(const sm_t *sm, const jid_t *jid);
/* The router's member list of name (borrowed): kept, and the sessions of users that are no
 * longer ours end with <reset/>. */
void sm_shard_update(sm_t *sm, const char *name, const char *const *members, size_t n);
void sm_shard_free(sm_t *sm);

#endif
