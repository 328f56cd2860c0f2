/* SPDX-License-Identifier: MIT */
/* The pubsub service: nodes and items, and what each use case does to them (XEP-0060). */
#include "pubsub/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

pubsub_service_t *pubsub_service_new(const pubsub_limits_t *limits, const pubsub_config_t *defaults,
                                     const pubsub_ops_t *ops, void *ud)
{
    pubsub_service_t *svc = core_calloc(1, sizeof(*svc));
    svc->limits = *limits;
    pubsub_config_copy(&svc->defaults, defaults);
    svc->ops = ops;
    svc->ud = ud;
    core_map_init(&svc->by_id);
    return svc;
}

static void item_clear(pubsub_item_t *it)
{
    core_free(it->id);
    core_free(it->publisher);
    xml_stanza_unref(it->payload);
    memset(it, 0, sizeof(*it));
}

static void entities_free(pubsub_entity_t *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_free(e[i].jid);
    core_free(e);
}

void pubsub_node_free(pubsub_node_t *node)
{
    if (node == NULL)
        return;
    for (size_t i = 0; i < node->nitems; i++)
        item_clear(&node->items[i]);
    core_free(node->items);
    entities_free(node->affs, node->naffs);
    entities_free(node->subs, node->nsubs);
    pubsub_config_clear(&node->cfg);
    core_free(node->creator);
    core_free(node->id);
    core_free(node);
}

void pubsub_service_free(pubsub_service_t *svc)
{
    if (svc == NULL)
        return;
    for (size_t i = 0; i < svc->nnodes; i++)
        pubsub_node_free(svc->nodes[i]);
    core_free(svc->nodes);
    core_map_free(&svc->by_id);
    pubsub_config_clear(&svc->defaults);
    core_free(svc);
}

const pubsub_limits_t *pubsub_service_limits(const pubsub_service_t *svc)
{
    return &svc->limits;
}

pubsub_node_t *const *pubsub_service_nodes(const pubsub_service_t *svc, size_t *n)
{
    *n = svc->nnodes;
    return svc->nodes;
}

size_t pubsub_service_bytes(const pubsub_service_t *svc)
{
    return svc->bytes;
}

void pubsub_service_defaults(const pubsub_service_t *svc, const char *node, pubsub_config_t *out)
{
    pubsub_config_copy(out, &svc->defaults);
    if (svc->ops->node_defaults != NULL)
        svc->ops->node_defaults(svc->ud, node, out);
}

pubsub_node_t *pubsub_node_find(const pubsub_service_t *svc, const char *id)
{
    return id != NULL ? core_map_get(&svc->by_id, id, strlen(id)) : NULL;
}

void pubsub_service_attach(pubsub_service_t *svc, pubsub_node_t *node)
{
    svc->nodes = core_realloc(svc->nodes, (svc->nnodes + 1) * sizeof(*svc->nodes));
    svc->nodes[svc->nnodes++] = node;
    core_map_put(&svc->by_id, node->id, strlen(node->id), node);
    svc->bytes += node->bytes;
}

static void service_detach(pubsub_service_t *svc, pubsub_node_t *node)
{
    for (size_t i = 0; i < svc->nnodes; i++) {
        if (svc->nodes[i] == node) {
            memmove(&svc->nodes[i], &svc->nodes[i + 1],
                    (svc->nnodes - i - 1) * sizeof(*svc->nodes));
            svc->nnodes--;
            break;
        }
    }
    core_map_del(&svc->by_id, node->id, strlen(node->id));
    svc->bytes -= node->bytes;
}

void pubsub_node_saved(pubsub_service_t *svc, const pubsub_node_t *node)
{
    if (svc->ops->node_save != NULL)
        svc->ops->node_save(svc->ud, node);
}

void pubsub_notify(pubsub_service_t *svc, const pubsub_node_t *node, pubsub_event_kind_t kind,
                   const xml_stanza_t *st, const char *item_id, const jid_t *actor,
                   const char *only_to)
{
    if (svc->ops->notify == NULL)
        return;
    const pubsub_event_t ev = {
        .kind = kind,
        .event = st->root,
        .item_id = item_id,
        .actor = actor,
        .only_to = only_to,
    };
    svc->ops->notify(svc->ud, node, &ev);
}

static char *bare_of(const jid_t *j)
{
    return j != NULL ? core_strndup(j->full, j->bare_len) : NULL;
}

/* ---- affiliations and subscriptions ---- */

static const char *const aff_names[] = {
    [PUBSUB_AFF_OUTCAST] = "outcast", [PUBSUB_AFF_NONE] = "none",
    [PUBSUB_AFF_MEMBER] = "member",   [PUBSUB_AFF_PUBLISHER] = "publisher",
    [PUBSUB_AFF_OWNER] = "owner",
};

const char *pubsub_aff_name(pubsub_aff_t a)
{
    return aff_names[a];
}

int pubsub_aff_parse(const char *s, pubsub_aff_t *out)
{
    for (size_t i = 0; s != NULL && i < sizeof(aff_names) / sizeof(aff_names[0]); i++) {
        if (strcmp(s, aff_names[i]) == 0) {
            *out = (pubsub_aff_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

static pubsub_entity_t *entity_find(pubsub_entity_t *e, size_t n, const char *jid)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].jid, jid) == 0)
            return &e[i];
    }
    return NULL;
}

pubsub_aff_t pubsub_node_aff(const pubsub_node_t *node, const char *bare)
{
    const pubsub_entity_t *e = entity_find(node->affs, node->naffs, bare);
    return e != NULL ? e->aff : PUBSUB_AFF_NONE;
}

pubsub_aff_t pubsub_node_aff_of(const pubsub_service_t *svc, const pubsub_node_t *node,
                                const jid_t *jid)
{
    if (svc->ops->is_owner != NULL && svc->ops->is_owner(svc->ud, jid))
        return PUBSUB_AFF_OWNER;
    char *bare = bare_of(jid);
    pubsub_aff_t a = pubsub_node_aff(node, bare);
    core_free(bare);
    return a;
}

static void entity_remove(pubsub_entity_t *e, size_t *n, pubsub_entity_t *which)
{
    size_t i = (size_t)(which - e);
    core_free(e[i].jid);
    memmove(&e[i], &e[i + 1], (*n - i - 1) * sizeof(*e));
    (*n)--;
}

int pubsub_node_set_aff(pubsub_service_t *svc, pubsub_node_t *node, const char *bare,
                        pubsub_aff_t aff)
{
    pubsub_entity_t *e = entity_find(node->affs, node->naffs, bare);
    if (aff == PUBSUB_AFF_NONE) {
        if (e != NULL)
            entity_remove(node->affs, &node->naffs, e);
        return 0;
    }
    if (e == NULL) {
        if (node->naffs >= svc->limits.max_subs)
            return -ENOSPC;
        node->affs = core_realloc(node->affs, (node->naffs + 1) * sizeof(*node->affs));
        e = &node->affs[node->naffs++];
        e->jid = core_strdup(bare);
    }
    e->aff = aff;
    return 0;
}

bool pubsub_node_subscribed(const pubsub_node_t *node, const char *jid)
{
    return entity_find(node->subs, node->nsubs, jid) != NULL;
}

int pubsub_node_sub_add(pubsub_service_t *svc, pubsub_node_t *node, const char *jid)
{
    if (pubsub_node_subscribed(node, jid))
        return 0;
    if (node->nsubs >= svc->limits.max_subs)
        return -ENOSPC;
    node->subs = core_realloc(node->subs, (node->nsubs + 1) * sizeof(*node->subs));
    node->subs[node->nsubs++] = (pubsub_entity_t){.jid = core_strdup(jid)};
    return 0;
}

int pubsub_node_sub_del(pubsub_node_t *node, const char *jid)
{
    pubsub_entity_t *e = entity_find(node->subs, node->nsubs, jid);
    if (e == NULL)
        return -ENOENT;
    entity_remove(node->subs, &node->nsubs, e);
    return 0;
}

/* ---- nodes ---- */

int pubsub_node_create(pubsub_service_t *svc, const char *id, const pubsub_config_t *cfg,
                       const jid_t *creator, pubsub_node_t **out)
{
    if (id == NULL || id[0] == '\0')
        return -EINVAL;
    if (pubsub_node_find(svc, id) != NULL)
        return -EEXIST;
    if (svc->nnodes >= svc->limits.max_nodes)
        return -ENOSPC;
    pubsub_node_t *node = core_calloc(1, sizeof(*node));
    node->id = core_strdup(id);
    if (cfg != NULL)
        pubsub_config_copy(&node->cfg, cfg);
    else
        pubsub_service_defaults(svc, id, &node->cfg);
    node->creator = bare_of(creator);
    node->created = (int64_t)time(NULL);
    if (node->creator != NULL)
        pubsub_node_set_aff(svc, node, node->creator, PUBSUB_AFF_OWNER);
    pubsub_service_attach(svc, node);
    pubsub_node_saved(svc, node);
    if (out != NULL)
        *out = node;
    return 0;
}

/* Removes items[i], keeping the order. */
static void remove_item(pubsub_service_t *svc, pubsub_node_t *node, size_t i)
{
    node->bytes -= node->items[i].bytes;
    if (svc != NULL)
        svc->bytes -= node->items[i].bytes;
    item_clear(&node->items[i]);
    memmove(&node->items[i], &node->items[i + 1], (node->nitems - i - 1) * sizeof(*node->items));
    node->nitems--;
}

void pubsub_node_append(pubsub_node_t *node, pubsub_item_t *item)
{
    node->items = core_realloc(node->items, (node->nitems + 1) * sizeof(*node->items));
    node->items[node->nitems++] = *item;
    node->bytes += item->bytes;
    memset(item, 0, sizeof(*item));
}

unsigned pubsub_config_max_items(const pubsub_service_t *svc, const pubsub_config_t *cfg)
{
    if (cfg->max_items_max || cfg->max_items > svc->limits.max_items)
        return svc->limits.max_items;
    return cfg->max_items > 0 ? cfg->max_items : 1;
}

void pubsub_node_trim(pubsub_service_t *svc, pubsub_node_t *node)
{
    unsigned max = pubsub_config_max_items(svc, &node->cfg);
    while (node->nitems > max || (node->nitems > 1 && node->bytes > svc->limits.max_node_bytes))
        remove_item(svc, node, 0);
}

int pubsub_node_configure(pubsub_service_t *svc, pubsub_node_t *node, const pubsub_config_t *cfg,
                          const jid_t *actor)
{
    pubsub_config_t old = node->cfg;
    pubsub_config_copy(&node->cfg, cfg);
    pubsub_config_clear(&old);
    pubsub_node_trim(svc, node);
    pubsub_node_saved(svc, node);
    if (node->cfg.notify_config) {
        /* XEP-0060 §8.2.5: the form with payloads, an empty element without. */
        xml_stanza_t *ev = xml_stanza_new(PUBSUB_NS_EVENT, "event");
        xml_node_t *c = xml_node_add_element(ev, ev->root, PUBSUB_NS_EVENT, "configuration");
        xml_node_set_attr(ev, c, NULL, "node", node->id);
        if (node->cfg.deliver_payloads)
            pubsub_config_form_add(svc, &node->cfg, "result", PUBSUB_FORM_NODE_CONFIG, ev, c);
        pubsub_notify(svc, node, PUBSUB_EV_CONFIG, ev, NULL, actor, NULL);
        xml_stanza_unref(ev);
    }
    return 0;
}

/* An event whose root <event/> has one child <name node='id'/>; returns the child. */
static xml_stanza_t *node_event(const pubsub_node_t *node, const char *name, xml_node_t **child)
{
    xml_stanza_t *ev = xml_stanza_new(PUBSUB_NS_EVENT, "event");
    *child = xml_node_add_element(ev, ev->root, PUBSUB_NS_EVENT, name);
    xml_node_set_attr(ev, *child, NULL, "node", node->id);
    return ev;
}

void pubsub_node_delete(pubsub_service_t *svc, pubsub_node_t *node, const jid_t *actor)
{
    if (node->cfg.notify_delete) {
        xml_node_t *c;
        xml_stanza_t *ev = node_event(node, "delete", &c);
        pubsub_notify(svc, node, PUBSUB_EV_DELETE, ev, NULL, actor, NULL);
        xml_stanza_unref(ev);
    }
    if (svc->ops->node_remove != NULL)
        svc->ops->node_remove(svc->ud, node);
    service_detach(svc, node);
    pubsub_node_free(node);
}

void pubsub_node_purge(pubsub_service_t *svc, pubsub_node_t *node, const jid_t *actor)
{
    bool had = node->nitems > 0;
    while (node->nitems > 0)
        remove_item(svc, node, node->nitems - 1);
    if (had && node->cfg.persist_items)
        pubsub_node_saved(svc, node);
    if (node->cfg.notify_retract) {
        /* XEP-0060 §8.5.2: one <purge/>, not a retraction per item. */
        xml_node_t *c;
        xml_stanza_t *ev = node_event(node, "purge", &c);
        pubsub_notify(svc, node, PUBSUB_EV_PURGE, ev, NULL, actor, NULL);
        xml_stanza_unref(ev);
    }
}

/* ---- items ---- */

static ssize_t item_index(const pubsub_node_t *node, const char *id)
{
    for (size_t i = 0; i < node->nitems; i++) {
        if (strcmp(node->items[i].id, id) == 0)
            return (ssize_t)i;
    }
    return -1;
}

const pubsub_item_t *pubsub_item_find(const pubsub_node_t *node, const char *id)
{
    ssize_t i = item_index(node, id);
    return i < 0 ? NULL : &node->items[i];
}

size_t pubsub_payload_bytes(const xml_node_t *payload)
{
    if (payload == NULL)
        return 0;
    core_buf_t b = {0};
    xml_node_serialize(payload, &b);
    size_t n = b.len;
    core_buf_release(&b);
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* XEP-0060 §7.1.1: an id unique in the node, made by the service. */
static char *new_item_id(pubsub_service_t *svc, const pubsub_node_t *node)
{
    char id[40];
    do {
        uint64_t r[2] = {0, 0};
        if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
            r[0] = (uint64_t)time(NULL);
            r[1] = 0;
        }
        snprintf(id, sizeof id, "%016" PRIx64 "%08" PRIx64, r[0],
                 (r[1] ^ ++svc->seq) & 0xffffffffu);
    } while (item_index(node, id) >= 0);
    return core_strdup(id);
}

/*
 * What the service's total would be after publishing bytes as item id (replaced at idx, or
 * -1) and evicting what the node's limits push out (oldest first).
 */
static size_t total_after(const pubsub_service_t *svc, const pubsub_node_t *node, ssize_t idx,
                          size_t bytes)
{
    unsigned max = pubsub_config_max_items(svc, &node->cfg);
    size_t n = node->nitems + 1, nb = node->bytes + bytes, freed = 0;
    if (idx >= 0) {
        n--;
        nb -= node->items[idx].bytes;
        freed += node->items[idx].bytes;
    }
    for (size_t i = 0; i < node->nitems && n > 1 && (n > max || nb > svc->limits.max_node_bytes);
         i++) {
        if ((ssize_t)i == idx)
            continue;
        nb -= node->items[i].bytes;
        freed += node->items[i].bytes;
        n--;
    }
    return svc->bytes + bytes - freed;
}

void pubsub_item_event_add(const pubsub_node_t *node, const pubsub_item_t *it, xml_stanza_t *st,
                           xml_node_t *parent)
{
    xml_node_t *items = xml_node_add_element(st, parent, PUBSUB_NS_EVENT, "items");
    xml_node_set_attr(st, items, NULL, "node", node->id);
    xml_node_t *item = xml_node_add_element(st, items, PUBSUB_NS_EVENT, "item");
    xml_node_set_attr(st, item, NULL, "id", it->id);
    if (node->cfg.deliver_payloads && it->payload != NULL)
        xml_node_add_copy(st, item, it->payload->root);
}

int pubsub_item_publish(pubsub_service_t *svc, pubsub_node_t *node, const char *id,
                        const xml_node_t *payload, const jid_t *publisher, const char **out_id)
{
    size_t bytes = pubsub_payload_bytes(payload);
    if (bytes > svc->limits.max_item_bytes)
        return -EMSGSIZE;
    ssize_t idx = id != NULL ? item_index(node, id) : -1;
    if (total_after(svc, node, idx, bytes) > svc->limits.max_total_bytes)
        return -ENOSPC;
    pubsub_item_t it = {
        .id = id != NULL ? core_strdup(id) : new_item_id(svc, node),
        .payload = payload != NULL ? xml_stanza_from_node(payload) : NULL,
        .publisher = bare_of(publisher),
        .bytes = bytes,
        .published_ms = now_ms(),
    };
    /* §7.1.2: the same id again replaces the item; it is now the last published. */
    if (idx >= 0)
        remove_item(svc, node, (size_t)idx);
    pubsub_node_append(node, &it);
    svc->bytes += bytes;
    pubsub_node_trim(svc, node);
    const pubsub_item_t *last = &node->items[node->nitems - 1];
    if (out_id != NULL)
        *out_id = last->id;
    if (node->cfg.persist_items)
        pubsub_node_saved(svc, node);
    if (node->cfg.deliver_notifications) {
        xml_stanza_t *ev = xml_stanza_new(PUBSUB_NS_EVENT, "event");
        pubsub_item_event_add(node, last, ev, ev->root);
        pubsub_notify(svc, node, PUBSUB_EV_ITEMS, ev, last->id, publisher, NULL);
        xml_stanza_unref(ev);
    }
    return 0;
}

int pubsub_item_retract(pubsub_service_t *svc, pubsub_node_t *node, const char *id, bool notify,
                        const jid_t *actor)
{
    ssize_t idx = item_index(node, id);
    if (idx < 0)
        return -ENOENT;
    char *kept = core_strdup(id);
    remove_item(svc, node, (size_t)idx);
    if (node->cfg.persist_items)
        pubsub_node_saved(svc, node);
    if (notify) {
        /* XEP-0060 §7.2.2.1: <items><retract id/></items>. */
        xml_node_t *items;
        xml_stanza_t *ev = node_event(node, "items", &items);
        xml_node_t *r = xml_node_add_element(ev, items, PUBSUB_NS_EVENT, "retract");
        xml_node_set_attr(ev, r, NULL, "id", kept);
        pubsub_notify(svc, node, PUBSUB_EV_RETRACT, ev, kept, actor, NULL);
        xml_stanza_unref(ev);
    }
    core_free(kept);
    return 0;
}

xml_stanza_t *pubsub_node_last_event(const pubsub_node_t *node, bool on_presence)
{
    pubsub_send_last_t s = node->cfg.send_last;
    if (node->nitems == 0 || s == PUBSUB_SEND_LAST_NEVER || !node->cfg.deliver_notifications ||
        (on_presence && s != PUBSUB_SEND_LAST_ON_SUB_AND_PRESENCE))
        return NULL;
    xml_stanza_t *ev = xml_stanza_new(PUBSUB_NS_EVENT, "event");
    pubsub_item_event_add(node, &node->items[node->nitems - 1], ev, ev->root);
    return ev;
}
