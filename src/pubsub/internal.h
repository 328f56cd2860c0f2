/* SPDX-License-Identifier: MIT */
/* pubsub internals shared by the engine's files: the service struct, forms, events. */
#ifndef PARLEY_PUBSUB_INTERNAL_H
#define PARLEY_PUBSUB_INTERNAL_H

#include "core/map.h"
#include "pubsub/pubsub.h"

struct pubsub_service {
    pubsub_limits_t limits;
    pubsub_config_t defaults;
    const pubsub_ops_t *ops;
    void *ud;
    pubsub_node_t **nodes; /* creation order */
    size_t nnodes;
    core_map_t by_id; /* node id -> pubsub_node_t */
    size_t bytes; /* all items of all nodes */
    uint64_t seq; /* for generated item ids */
};

/* service.c */
/* Adds a node built elsewhere (codec.c) to the service; it must not exist. */
void pubsub_service_attach(pubsub_service_t *svc, pubsub_node_t *node);
/* Frees a node detached from (or never in) a service. */
void pubsub_node_free(pubsub_node_t *node);
/* Appends an item (taking its strings and payload) as the newest; no limit checks. */
void pubsub_node_append(pubsub_node_t *node, pubsub_item_t *item);
/* Drops the oldest items beyond the node's limits (count and bytes), updating svc's total. */
void pubsub_node_trim(pubsub_service_t *svc, pubsub_node_t *node);
/* The payload's serialised size. */
size_t pubsub_payload_bytes(const xml_node_t *payload);
/* Tells ops the node changed (if it has node_save). */
void pubsub_node_saved(pubsub_service_t *svc, const pubsub_node_t *node);
/* Sets (or with PUBSUB_AFF_NONE removes) an explicit affiliation. Returns 0 or -ENOSPC. */
int pubsub_node_set_aff(pubsub_service_t *svc, pubsub_node_t *node, const char *bare,
                        pubsub_aff_t aff);
/* Explicit subscriptions (the JID as given). Returns 0, -ENOSPC; del: 0 or -ENOENT. */
int pubsub_node_sub_add(pubsub_service_t *svc, pubsub_node_t *node, const char *jid);
int pubsub_node_sub_del(pubsub_node_t *node, const char *jid);
bool pubsub_node_subscribed(const pubsub_node_t *node, const char *jid);
/* Builds the <event/> for a published item into st under parent. */
void pubsub_item_event_add(const pubsub_node_t *node, const pubsub_item_t *it, xml_stanza_t *st,
                           xml_node_t *parent);
/* Sends an event through ops->notify: root is the <event/> of st. */
void pubsub_notify(pubsub_service_t *svc, const pubsub_node_t *node, pubsub_event_kind_t kind,
                   const xml_stanza_t *st, const char *item_id, const jid_t *actor,
                   const char *only_to);
const char *pubsub_aff_name(pubsub_aff_t a);
/* 0 and *out, or -EINVAL for an unknown name. */
int pubsub_aff_parse(const char *s, pubsub_aff_t *out);

/* config.c */
/* The names of the enums' values, as forms and stored nodes write them. */
#define PUBSUB_ACCESS_COUNT 4
#define PUBSUB_SEND_LAST_COUNT 3
#define PUBSUB_PUBLISH_COUNT 3
extern const char *const pubsub_access_names[PUBSUB_ACCESS_COUNT];
extern const char *const pubsub_send_last_names[PUBSUB_SEND_LAST_COUNT];
extern const char *const pubsub_publish_names[PUBSUB_PUBLISH_COUNT];
/*
 * Appends a data form (XEP-0004) of type ("form" or "result") with FORM_TYPE form_type and
 * the node_config fields of cfg, under parent.
 */
void pubsub_config_form_add(const pubsub_service_t *svc, const pubsub_config_t *cfg,
                            const char *type, const char *form_type, xml_stanza_t *st,
                            xml_node_t *parent);
/*
 * Applies a submitted form's fields to cfg (XEP-0004 §3.3: fields not given keep their
 * value). form_type: the FORM_TYPE the form must have if it names one. Returns 0, or with *err
 * <not-acceptable/>: -ENOENT for a field the engine does not know, -EINVAL for a value it
 * cannot honour (or another FORM_TYPE).
 */
int pubsub_config_form_apply(const pubsub_service_t *svc, const xml_node_t *x,
                             const char *form_type, pubsub_config_t *cfg, pubsub_error_t *err);
/*
 * XEP-0060 §7.1.5: does cfg meet every precondition of the publish-options form x? Returns
 * true, or false for the first field that is not met or not known.
 */
bool pubsub_config_meets(const pubsub_service_t *svc, const pubsub_config_t *cfg,
                         const xml_node_t *x);
/* The form's FORM_TYPE value, or NULL. */
const char *pubsub_form_type(const xml_node_t *x);

#endif
