/* SPDX-License-Identifier: MIT */
/* A node's stored form: one XML element with its configuration, affiliations and items. */
#include "pubsub/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * <node xmlns='urn:parley:pubsub:1' id='…' creator='…' created='…'>
 *   <config access_model='presence' max_items='1' …><group>…</group></config>
 *   <affiliation jid='…' affiliation='owner'/>
 *   <subscription jid='…'/>
 *   <item id='…' publisher='…' published='ms'>payload</item>  (oldest first; persist_items)
 * </node>
 * Attributes of <config/> are the pubsub#node_config field names without the prefix; one
 * that is missing keeps the service's default, so older documents stay readable.
 */
#define NS_STORE "urn:parley:pubsub:1"

static void set(xml_stanza_t *st, xml_node_t *n, const char *name, const char *value)
{
    if (value != NULL)
        xml_node_set_attr(st, n, NULL, name, value);
}

static void set_bool(xml_stanza_t *st, xml_node_t *n, const char *name, bool v)
{
    xml_node_set_attr(st, n, NULL, name, v ? "1" : "0");
}

static void config_encode(const pubsub_config_t *cfg, xml_stanza_t *st, xml_node_t *parent)
{
    xml_node_t *c = xml_node_add_element(st, parent, NS_STORE, "config");
    char max[24];
    snprintf(max, sizeof max, "%u", cfg->max_items);
    set(st, c, "title", cfg->title);
    set(st, c, "type", cfg->type);
    set(st, c, "access_model", pubsub_access_names[cfg->access_model]);
    set(st, c, "publish_model", pubsub_publish_names[cfg->publish_model]);
    set_bool(st, c, "persist_items", cfg->persist_items);
    set(st, c, "max_items", cfg->max_items_max ? "max" : max);
    set(st, c, "send_last_published_item", pubsub_send_last_names[cfg->send_last]);
    set_bool(st, c, "deliver_notifications", cfg->deliver_notifications);
    set_bool(st, c, "deliver_payloads", cfg->deliver_payloads);
    set_bool(st, c, "notify_config", cfg->notify_config);
    set_bool(st, c, "notify_delete", cfg->notify_delete);
    set_bool(st, c, "notify_retract", cfg->notify_retract);
    set_bool(st, c, "presence_based_delivery", cfg->presence_based_delivery);
    set(st, c, "notification_type", cfg->notification_normal ? "normal" : "headline");
    for (size_t i = 0; i < cfg->ngroups; i++) {
        xml_node_t *g = xml_node_add_element(st, c, NS_STORE, "group");
        xml_node_add_text(st, g, cfg->groups[i], strlen(cfg->groups[i]));
    }
}

void pubsub_node_encode(const pubsub_node_t *node, core_buf_t *out)
{
    xml_stanza_t *st = xml_stanza_new(NS_STORE, "node");
    xml_node_t *root = st->root;
    char created[24];
    snprintf(created, sizeof created, "%" PRId64, node->created);
    set(st, root, "id", node->id);
    set(st, root, "creator", node->creator);
    set(st, root, "created", created);
    config_encode(&node->cfg, st, root);
    for (size_t i = 0; i < node->naffs; i++) {
        xml_node_t *a = xml_node_add_element(st, root, NS_STORE, "affiliation");
        set(st, a, "jid", node->affs[i].jid);
        set(st, a, "affiliation", pubsub_aff_name(node->affs[i].aff));
    }
    for (size_t i = 0; i < node->nsubs; i++)
        set(st, xml_node_add_element(st, root, NS_STORE, "subscription"), "jid", node->subs[i].jid);
    for (size_t i = 0; node->cfg.persist_items && i < node->nitems; i++) {
        const pubsub_item_t *it = &node->items[i];
        xml_node_t *n = xml_node_add_element(st, root, NS_STORE, "item");
        char ms[24];
        snprintf(ms, sizeof ms, "%" PRId64, it->published_ms);
        set(st, n, "id", it->id);
        set(st, n, "publisher", it->publisher);
        set(st, n, "published", ms);
        if (it->payload != NULL)
            xml_node_add_copy(st, n, it->payload->root);
    }
    xml_node_serialize(st->root, out);
    xml_stanza_unref(st);
}

/* ---- reading ---- */

static void get_enum(const xml_node_t *c, const char *name, const char *const *names, size_t n,
                     int *out)
{
    const char *v = xml_node_attr(c, name);
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (strcmp(v, names[i]) == 0)
            *out = (int)i;
    }
}

static void get_bool(const xml_node_t *c, const char *name, bool *out)
{
    const char *v = xml_node_attr(c, name);
    if (v != NULL)
        pubsub_bool_parse(v, out);
}

static void get_string(const xml_node_t *c, const char *name, char **out)
{
    const char *v = xml_node_attr(c, name);
    if (v != NULL) {
        core_free(*out);
        *out = core_strdup(v);
    }
}

static void config_decode(const xml_node_t *c, pubsub_config_t *cfg)
{
    int e;
    get_string(c, "title", &cfg->title);
    get_string(c, "type", &cfg->type);
    e = (int)cfg->access_model;
    get_enum(c, "access_model", pubsub_access_names, PUBSUB_ACCESS_COUNT, &e);
    cfg->access_model = (pubsub_access_t)e;
    e = (int)cfg->publish_model;
    get_enum(c, "publish_model", pubsub_publish_names, PUBSUB_PUBLISH_COUNT, &e);
    cfg->publish_model = (pubsub_publish_model_t)e;
    e = (int)cfg->send_last;
    get_enum(c, "send_last_published_item", pubsub_send_last_names, PUBSUB_SEND_LAST_COUNT, &e);
    cfg->send_last = (pubsub_send_last_t)e;
    get_bool(c, "persist_items", &cfg->persist_items);
    get_bool(c, "deliver_notifications", &cfg->deliver_notifications);
    get_bool(c, "deliver_payloads", &cfg->deliver_payloads);
    get_bool(c, "notify_config", &cfg->notify_config);
    get_bool(c, "notify_delete", &cfg->notify_delete);
    get_bool(c, "notify_retract", &cfg->notify_retract);
    get_bool(c, "presence_based_delivery", &cfg->presence_based_delivery);
    const char *v = xml_node_attr(c, "notification_type");
    if (v != NULL)
        cfg->notification_normal = strcmp(v, "normal") == 0;
    v = xml_node_attr(c, "max_items");
    if (v != NULL && strcmp(v, "max") == 0) {
        cfg->max_items_max = true;
    } else if (v != NULL && strtoul(v, NULL, 10) > 0) {
        cfg->max_items_max = false;
        cfg->max_items = (unsigned)strtoul(v, NULL, 10);
    }
    bool first = true;
    for (const xml_node_t *g = xml_node_first_element(c); g != NULL; g = xml_node_next_element(g)) {
        size_t len;
        const char *t = xml_node_text(g, &len);
        if (!xml_node_is(g, NS_STORE, "group") || len == 0)
            continue;
        if (first) {
            /* The stored list replaces the defaults' one. */
            for (size_t i = 0; i < cfg->ngroups; i++)
                core_free(cfg->groups[i]);
            core_free(cfg->groups);
            cfg->groups = NULL;
            cfg->ngroups = 0;
            first = false;
        }
        cfg->groups = core_realloc(cfg->groups, (cfg->ngroups + 1) * sizeof(*cfg->groups));
        cfg->groups[cfg->ngroups++] = core_strndup(t, len);
    }
}

static void entity_decode(pubsub_service_t *svc, pubsub_node_t *node, const xml_node_t *n)
{
    const char *jid = xml_node_attr(n, "jid");
    pubsub_aff_t a;
    if (jid == NULL)
        return;
    if (xml_node_is(n, NS_STORE, "subscription"))
        pubsub_node_sub_add(svc, node, jid);
    else if (pubsub_aff_parse(xml_node_attr(n, "affiliation"), &a) == 0)
        pubsub_node_set_aff(svc, node, jid, a);
}

static void item_decode(pubsub_node_t *node, const xml_node_t *n)
{
    const char *id = xml_node_attr(n, "id");
    const char *publisher = xml_node_attr(n, "publisher");
    const char *published = xml_node_attr(n, "published");
    const xml_node_t *payload = xml_node_first_element(n);
    if (id == NULL || pubsub_item_find(node, id) != NULL)
        return;
    pubsub_item_t it = {
        .id = core_strdup(id),
        .payload = payload != NULL ? xml_stanza_from_node(payload) : NULL,
        .publisher = publisher != NULL ? core_strdup(publisher) : NULL,
        .bytes = pubsub_payload_bytes(payload),
        .published_ms = published != NULL ? strtoll(published, NULL, 10) : 0,
    };
    pubsub_node_append(node, &it);
}

int pubsub_node_load(pubsub_service_t *svc, const char *data, size_t len, pubsub_node_t **out)
{
    xml_stanza_t *st = xml_stanza_parse(data, len);
    const char *id = st != NULL ? xml_node_attr(st->root, "id") : NULL;
    int rc = 0;
    if (st == NULL || !xml_node_is(st->root, NS_STORE, "node") || id == NULL || id[0] == '\0')
        rc = -EBADMSG;
    else if (pubsub_node_find(svc, id) != NULL)
        rc = -EEXIST;
    else if (svc->nnodes >= svc->limits.max_nodes)
        rc = -ENOSPC;
    if (rc < 0) {
        xml_stanza_unref(st);
        return rc;
    }
    pubsub_node_t *node = core_calloc(1, sizeof(*node));
    node->id = core_strdup(id);
    pubsub_service_defaults(svc, id, &node->cfg);
    const char *creator = xml_node_attr(st->root, "creator");
    node->creator = creator != NULL ? core_strdup(creator) : NULL;
    const char *created = xml_node_attr(st->root, "created");
    node->created = created != NULL ? strtoll(created, NULL, 10) : 0;
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, NS_STORE, "config"))
            config_decode(n, &node->cfg);
        else if (xml_node_is(n, NS_STORE, "item"))
            item_decode(node, n);
        else
            entity_decode(svc, node, n);
    }
    xml_stanza_unref(st);
    pubsub_service_attach(svc, node);
    pubsub_node_trim(svc, node);
    if (out != NULL)
        *out = node;
    return 0;
}
