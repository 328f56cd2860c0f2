/* SPDX-License-Identifier: MIT */
/* A publish-subscribe engine (XEP-0060): nodes, items and the rules of each use case. */
#ifndef PARLEY_PUBSUB_H
#define PARLEY_PUBSUB_H

#include "core/buf.h"
#include "core/xmpp_error.h"
#include "jid/jid.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The engine knows XEP-0060 and nothing of the server around it: no sessions, rosters,
 * links or storage. One pubsub_service_t is one pubsub service: in the sm, one per account
 * (PEP, XEP-0163: the account's bare JID is the service); in a pubsub component, one for the
 * component. The caller
 *
 *  - answers what only it can know through pubsub_ops_t: whether a JID owns the service, may
 *    create nodes, passes a "presence" or "roster" access model;
 *  - stores nodes: ops->node_save hands it a node that changed (pubsub_node_encode makes its
 *    bytes) and ops->node_remove one that is gone; it gives stored nodes back with
 *    pubsub_node_load before any request that may touch them (at once, or lazily: a request
 *    for a node that is not loaded sees no such node);
 *  - delivers events: ops->notify hands it each event (<event/> of XEP-0060 §7.1.2, §7.2.2.1,
 *    §8.2.5, §8.4.2, §8.5.2) and it picks the recipients (explicit subscriptions are in
 *    node->subs; implicit ones, such as PEP's presence-based ones, are the caller's), and sends
 *    the last item (pubsub_node_last_event) when its rules say so;
 *  - turns IQs into requests (pubsub_request_run) and the results or errors into IQs.
 *
 * Everything runs on the caller's thread, synchronously. Callbacks run inside the call that
 * caused them and must not free the service or the node; they may read the node.
 */

#define PUBSUB_NS "http://jabber.org/protocol/pubsub"
#define PUBSUB_NS_OWNER "http://jabber.org/protocol/pubsub#owner"
#define PUBSUB_NS_EVENT "http://jabber.org/protocol/pubsub#event"
#define PUBSUB_NS_ERRORS "http://jabber.org/protocol/pubsub#errors"
#define PUBSUB_NS_DATA "jabber:x:data"
#define PUBSUB_FORM_NODE_CONFIG "http://jabber.org/protocol/pubsub#node_config"
#define PUBSUB_FORM_PUBLISH_OPTIONS "http://jabber.org/protocol/pubsub#publish-options"
#define PUBSUB_FORM_META_DATA "http://jabber.org/protocol/pubsub#meta-data"

/* XEP-0060 §4.5. "authorize" is not supported (no pending subscriptions). */
typedef enum pubsub_access {
    PUBSUB_ACCESS_OPEN = 0,
    PUBSUB_ACCESS_PRESENCE,
    PUBSUB_ACCESS_ROSTER,
    PUBSUB_ACCESS_WHITELIST,
} pubsub_access_t;

/* pubsub#send_last_published_item (XEP-0060 §16.4.4). */
typedef enum pubsub_send_last {
    PUBSUB_SEND_LAST_NEVER = 0,
    PUBSUB_SEND_LAST_ON_SUB,
    PUBSUB_SEND_LAST_ON_SUB_AND_PRESENCE,
} pubsub_send_last_t;

/* pubsub#publish_model. */
typedef enum pubsub_publish_model {
    PUBSUB_PUBLISH_PUBLISHERS = 0, /* owners and publishers */
    PUBSUB_PUBLISH_SUBSCRIBERS, /* also subscribers */
    PUBSUB_PUBLISH_OPEN, /* anyone */
} pubsub_publish_model_t;

/* XEP-0060 §4.1. Ordered: a higher one has every right of a lower one (outcast has none). */
typedef enum pubsub_aff {
    PUBSUB_AFF_OUTCAST = 0,
    PUBSUB_AFF_NONE,
    PUBSUB_AFF_MEMBER,
    PUBSUB_AFF_PUBLISHER,
    PUBSUB_AFF_OWNER,
} pubsub_aff_t;

/*
 * A node's configuration (XEP-0060 §16.4.4, the pubsub#node_config fields the engine
 * supports). Strings and the group list are owned; pubsub_config_copy / _clear manage them.
 */
typedef struct pubsub_config {
    char *title; /* pubsub#title; NULL: none */
    char *type; /* pubsub#type, the payload's namespace; NULL: none */
    pubsub_access_t access_model;
    char **groups; /* pubsub#roster_groups_allowed (the "roster" model) */
    size_t ngroups;
    pubsub_publish_model_t publish_model;
    bool persist_items; /* false: items live in memory only (not in pubsub_node_encode) */
    bool max_items_max; /* pubsub#max_items 'max': as many as the service allows */
    unsigned max_items; /* otherwise 1..limits.max_items */
    pubsub_send_last_t send_last;
    bool deliver_notifications;
    bool deliver_payloads;
    bool notify_config;
    bool notify_delete;
    bool notify_retract;
    bool presence_based_delivery;
    bool notification_normal; /* pubsub#notification_type 'normal'; false: 'headline' */
} pubsub_config_t;

/* Bounds a service puts on what its users can make it hold (all >= 1). */
typedef struct pubsub_limits {
    size_t max_nodes;
    unsigned max_items; /* per node; what 'max' means */
    size_t max_item_bytes; /* one payload, serialised: more is <payload-too-big/> */
    size_t max_node_bytes; /* all payloads of a node: the oldest go first beyond it */
    size_t max_total_bytes; /* all payloads of the service: more is <policy-violation/> */
    size_t max_subs; /* explicit subscriptions and affiliations per node */
} pubsub_limits_t;

typedef struct pubsub_item {
    char *id;
    xml_stanza_t *payload; /* root: a private copy of the payload element; NULL: none */
    char *publisher; /* the publisher's bare JID, kept for retraction rights; NULL: unknown */
    size_t bytes; /* the payload's serialised size */
    int64_t published_ms; /* when, in ms since the epoch (for XEP-0203 stamps); 0: not known */
} pubsub_item_t;

typedef struct pubsub_entity {
    char *jid; /* a bare JID (affiliations) or the JID as subscribed (subscriptions) */
    pubsub_aff_t aff; /* affiliations only */
} pubsub_entity_t;

/* Read the fields; change them only through the functions below. */
typedef struct pubsub_node {
    char *id;
    pubsub_config_t cfg;
    pubsub_item_t *items; /* oldest first: index nitems-1 is the last published */
    size_t nitems;
    size_t bytes; /* the sum of the items' bytes */
    pubsub_entity_t *affs; /* explicit affiliations (bare JIDs), other than 'none' */
    size_t naffs;
    pubsub_entity_t *subs; /* explicit subscriptions, state 'subscribed' */
    size_t nsubs;
    char *creator; /* bare JID; NULL: unknown */
    int64_t created; /* seconds since the epoch */
} pubsub_node_t;

typedef enum pubsub_event_kind {
    PUBSUB_EV_ITEMS = 0, /* an item was published: <items><item/></items> */
    PUBSUB_EV_RETRACT, /* an item was retracted: <items><retract/></items> */
    PUBSUB_EV_PURGE, /* <purge/> */
    PUBSUB_EV_DELETE, /* <delete/>: the node is still there during the call, gone after */
    PUBSUB_EV_CONFIG, /* <configuration/> */
} pubsub_event_kind_t;

typedef struct pubsub_event {
    pubsub_event_kind_t kind;
    const xml_node_t *event; /* the <event/> element, valid during the call */
    const char *item_id; /* ITEMS and RETRACT: the item; else NULL */
    const jid_t *actor; /* who caused it (the requester), or NULL */
    /* Not NULL: the event is for this JID only (the last item for a new subscription,
     * XEP-0060 §6.1.7); NULL: for everyone entitled to the node's events. */
    const char *only_to;
} pubsub_event_t;

typedef struct pubsub_service pubsub_service_t;

typedef struct pubsub_ops {
    /* jid owns every node of the service (PEP: it is the account). NULL: only the node's
     * affiliations count. */
    bool (*is_owner)(void *ud, const jid_t *jid);
    /* jid may create node (and so have it created by a publish). NULL: anyone may. */
    bool (*may_create)(void *ud, const jid_t *jid, const char *node);
    /*
     * The node's model is PUBSUB_ACCESS_PRESENCE or _ROSTER and jid is not an owner, member or
     * outcast: may it see the node (retrieve, subscribe, be notified)? Presence: it has a
     * subscription to the owner's presence ("from" or "both"); roster: also in one of
     * node->cfg.groups. NULL: never.
     */
    bool (*may_access)(void *ud, const pubsub_node_t *node, const jid_t *jid);
    /* A node is being created: cfg holds the service defaults, to change for this node id
     * (XEP-0402 wants its node private). Publish options and create forms apply after. NULL:
     * the defaults. */
    void (*node_defaults)(void *ud, const char *node, pubsub_config_t *cfg);
    /* node was created or changed in what pubsub_node_encode writes: store it. */
    void (*node_save)(void *ud, const pubsub_node_t *node);
    /* node is being deleted (it is freed when this returns): forget it. */
    void (*node_remove)(void *ud, const pubsub_node_t *node);
    /* An event for node's recipients (see pubsub_event_t). */
    void (*notify)(void *ud, const pubsub_node_t *node, const pubsub_event_t *ev);
} pubsub_ops_t;

/* ---- the service ---- */

/*
 * A service with no nodes. limits, defaults (copied) and ops (borrowed: must outlive the
 * service) as above; ud is passed to every callback.
 */
pubsub_service_t *pubsub_service_new(const pubsub_limits_t *limits, const pubsub_config_t *defaults,
                                     const pubsub_ops_t *ops, void *ud);
/* Frees the service and its nodes; no callback runs. NULL is ignored. */
void pubsub_service_free(pubsub_service_t *svc);
const pubsub_limits_t *pubsub_service_limits(const pubsub_service_t *svc);
/* The nodes in creation order (count in *n); borrowed, valid until the next change. */
pubsub_node_t *const *pubsub_service_nodes(const pubsub_service_t *svc, size_t *n);
/* The sum of the items' bytes over all nodes. */
size_t pubsub_service_bytes(const pubsub_service_t *svc);

/* ---- configurations ---- */

/* PEP's defaults (XEP-0163 §8): presence access, on_sub_and_presence, one persistent item. */
void pubsub_config_pep_defaults(pubsub_config_t *cfg);
/* XEP-0060's generic defaults: open access, never send the last item, persistent. */
void pubsub_config_generic_defaults(pubsub_config_t *cfg);
/* The configuration a new node id gets: the service's defaults after ops->node_defaults
 * (out is overwritten; clear it later). */
void pubsub_service_defaults(const pubsub_service_t *svc, const char *node, pubsub_config_t *out);
void pubsub_config_copy(pubsub_config_t *dst, const pubsub_config_t *src);
void pubsub_config_clear(pubsub_config_t *cfg);
/* The effective item count limit of a node under svc. */
unsigned pubsub_config_max_items(const pubsub_service_t *svc, const pubsub_config_t *cfg);
const char *pubsub_access_name(pubsub_access_t a);
/* Parses an XML Schema boolean as XEP-0004 and XEP-0060 use them ("1", "true", "0", "false").
 * Returns 0, or -EINVAL (out untouched). */
int pubsub_bool_parse(const char *s, bool *out);

/* ---- nodes, items and the operations, without permission checks ---- */

/*
 * These are the use cases' effects for a caller that has decided the actor may (XEP-0402's
 * compatibility layer, tests); pubsub_request_run checks rights and then calls them. Each
 * stores through ops->node_save and notifies through ops->notify as the use case says.
 * actor (may be NULL) only goes into events and records.
 */

pubsub_node_t *pubsub_node_find(const pubsub_service_t *svc, const char *id);
/*
 * Creates node id with cfg (NULL: the defaults, after ops->node_defaults), owned by creator's
 * bare JID (may be NULL). Returns 0 and *out (may be NULL), -EEXIST, -EINVAL (an empty id) or
 * -ENOSPC (limits.max_nodes).
 */
int pubsub_node_create(pubsub_service_t *svc, const char *id, const pubsub_config_t *cfg,
                       const jid_t *creator, pubsub_node_t **out);
/* Replaces the configuration (copied); items beyond the new max_items go, oldest first
 * (XEP-0060 §7.1.3.6); notify_config sends a <configuration/> event. Returns 0. */
int pubsub_node_configure(pubsub_service_t *svc, pubsub_node_t *node, const pubsub_config_t *cfg,
                          const jid_t *actor);
/* Deletes the node (XEP-0060 §8.4): a <delete/> event first if notify_delete, then
 * ops->node_remove, then it is freed. */
void pubsub_node_delete(pubsub_service_t *svc, pubsub_node_t *node, const jid_t *actor);
/* Removes every item (XEP-0060 §8.5); a <purge/> event if notify_retract. */
void pubsub_node_purge(pubsub_service_t *svc, pubsub_node_t *node, const jid_t *actor);

const pubsub_item_t *pubsub_item_find(const pubsub_node_t *node, const char *id);
/*
 * Publishes payload (copied; NULL: none) as item id (NULL: a new unique id) with publisher
 * (the actor's bare JID is recorded; may be NULL). An item with the same id is replaced and
 * becomes the newest (XEP-0060 §7.1.2); beyond max_items or limits.max_node_bytes the oldest
 * go (§7.1.2.4, "retract-oldest", without notifications). Sends the <items/> event when
 * deliver_notifications. *out_id (may be NULL) receives the item's id, borrowed from the
 * node. Returns 0, -EMSGSIZE (payload over limits.max_item_bytes) or -ENOSPC (the service's
 * total over limits.max_total_bytes).
 */
int pubsub_item_publish(pubsub_service_t *svc, pubsub_node_t *node, const char *id,
                        const xml_node_t *payload, const jid_t *publisher, const char **out_id);
/* Retracts item id (XEP-0060 §7.2): a <retract/> event when notify. Returns 0 or -ENOENT. */
int pubsub_item_retract(pubsub_service_t *svc, pubsub_node_t *node, const char *id, bool notify,
                        const jid_t *actor);

/* The explicit affiliation of a bare JID (PUBSUB_AFF_NONE when none). */
pubsub_aff_t pubsub_node_aff(const pubsub_node_t *node, const char *bare);
/* What jid may do on node: ops->is_owner makes it an owner, else its explicit affiliation. */
pubsub_aff_t pubsub_node_aff_of(const pubsub_service_t *svc, const pubsub_node_t *node,
                                const jid_t *jid);

/* ---- answering requests ---- */

/* A refusal: the stanza error, with XEP-0060's application condition (NULL: none) and, for
 * <unsupported/>, the feature. */
typedef struct pubsub_error {
    core_stanza_err_t cond;
    const char *app; /* in PUBSUB_NS_ERRORS, e.g. "precondition-not-met" */
    const char *feature;
} pubsub_error_t;

/*
 * May jid see node (retrieve items, subscribe, get its events)? Owners always may; outcasts
 * never; then the access model (XEP-0060 §4.5, §6.5.1): open yes, presence and roster ask
 * ops->may_access, whitelist wants an affiliation of member or more. Returns true, or false
 * with *err (may be NULL) the refusal XEP-0060 §6.5.7 gives for the model.
 */
bool pubsub_node_may_see(const pubsub_service_t *svc, const pubsub_node_t *node, const jid_t *jid,
                         pubsub_error_t *err);

typedef struct pubsub_request {
    const jid_t *from; /* the requester, prepared */
    bool set; /* the IQ's type is set (else get) */
    const xml_node_t *pubsub; /* the <pubsub/> element, in PUBSUB_NS or PUBSUB_NS_OWNER */
} pubsub_request_t;

/*
 * Runs one pubsub IQ. On success returns 0 and appends what the result carries (a <pubsub/>
 * element, if the use case returns one) under parent in reply (an unshared stanza, the
 * caller's IQ result). On refusal returns a negative code (-EINVAL, -ENOENT, -EACCES, -EEXIST,
 * -ENOTSUP, -EMSGSIZE, -ENOSPC) and fills *err; reply is then untouched. Events and storage go
 * through ops during the call: a caller that wants the result sent before the events holds
 * what ops->notify hands it until this returns.
 *
 * PUBSUB_NS: publish (with publish-options, XEP-0060 §7.1.5: a precondition the node does not
 * meet, or an unknown field, is <conflict/> + <precondition-not-met/>; a node that does not
 * exist is auto-created with them), retract, items (max_items, item ids), create (with
 * configure), subscribe, unsubscribe, subscriptions, affiliations. PUBSUB_NS_OWNER: configure
 * (get and set, XEP-0004 forms of pubsub#node_config), default, delete, purge, affiliations
 * (get and set). Anything else is <feature-not-implemented/> with <unsupported/>.
 */
int pubsub_request_run(pubsub_service_t *svc, const pubsub_request_t *req, xml_stanza_t *reply,
                       xml_node_t *parent, pubsub_error_t *err);

/*
 * Adds e's condition to an error reply made by xml_stanza_error_reply or
 * xml_stanza_make_error (its <error/> child), as XEP-0060 §7.1.3 shows.
 */
void pubsub_error_add(xml_stanza_t *reply, const pubsub_error_t *e);

/*
 * The event carrying node's last published item for a new subscriber or a newly available
 * resource (XEP-0060 §6.1.7, XEP-0163 §4.3.4): a new stanza (one reference) whose root is an
 * <event/>, or NULL when the node has no item or its send_last_published_item does not allow
 * it (on_presence: the trigger is presence, which needs on_sub_and_presence).
 */
xml_stanza_t *pubsub_node_last_event(const pubsub_node_t *node, bool on_presence);

/* ---- service discovery (XEP-0060 §5) ---- */

/*
 * disco#items of the service (node NULL: the nodes jid may see, as <item jid='service'
 * node='id'/>) or of a node (its items, <item jid='service' name='item id'/>), appended under
 * query. Returns 0, or -ENOENT when the node does not exist or jid may not see it.
 */
int pubsub_disco_items(const pubsub_service_t *svc, const char *service_jid, const char *node,
                       const jid_t *jid, xml_stanza_t *st, xml_node_t *query);
/* disco#info of a node: identity pubsub/leaf, the pubsub feature and the
 * pubsub#meta-data form (§5.4). Returns 0 or -ENOENT as above. */
int pubsub_disco_node_info(const pubsub_service_t *svc, const char *node, const jid_t *jid,
                           xml_stanza_t *st, xml_node_t *query);

/* ---- storage ---- */

/* Appends node's stored form to out: its configuration, affiliations, subscriptions and,
 * when persist_items, its items. */
void pubsub_node_encode(const pubsub_node_t *node, core_buf_t *out);
/*
 * Adds a node from what pubsub_node_encode wrote (no callback runs). Items beyond today's
 * limits are dropped, oldest first. Returns 0 and *out (may be NULL), -EBADMSG when the bytes
 * do not parse, -EEXIST when the service has a node of that id, -ENOSPC (limits.max_nodes).
 */
int pubsub_node_load(pubsub_service_t *svc, const char *data, size_t len, pubsub_node_t **out);

#endif
