/* SPDX-License-Identifier: MIT */
/* XEP-0060 requests: who may do what, each use case's errors, results and disco answers. */
#include "pubsub/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct req_ctx {
    pubsub_service_t *svc;
    const pubsub_request_t *req;
    xml_stanza_t *reply;
    xml_node_t *parent;
    pubsub_error_t *err;
} req_ctx_t;

static int fail(req_ctx_t *c, int rc, core_stanza_err_t cond, const char *app)
{
    *c->err = (pubsub_error_t){.cond = cond, .app = app};
    return rc;
}

/* XEP-0060 §7.1.3.2 and the like: <feature-not-implemented/> with <unsupported feature/>. */
static int unsupported(req_ctx_t *c, const char *feature)
{
    *c->err = (pubsub_error_t){
        .cond = CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, .app = "unsupported", .feature = feature};
    return -ENOTSUP;
}

void pubsub_error_add(xml_stanza_t *reply, const pubsub_error_t *e)
{
    if (e->app == NULL)
        return;
    xml_node_t *error = xml_node_child(reply->root, NULL, "error");
    if (error == NULL)
        return;
    xml_node_t *a = xml_node_add_element(reply, error, PUBSUB_NS_ERRORS, e->app);
    if (e->feature != NULL)
        xml_node_set_attr(reply, a, NULL, "feature", e->feature);
}

static char *bare_of(const jid_t *j)
{
    return core_strndup(j->full, j->bare_len);
}

bool pubsub_node_may_see(const pubsub_service_t *svc, const pubsub_node_t *node, const jid_t *jid,
                         pubsub_error_t *err)
{
    pubsub_aff_t aff = pubsub_node_aff_of(svc, node, jid);
    pubsub_error_t e = {0};
    bool ok = false;
    if (aff == PUBSUB_AFF_OWNER) {
        ok = true;
    } else if (aff == PUBSUB_AFF_OUTCAST) {
        e.cond = CORE_STANZA_ERR_FORBIDDEN; /* §6.5.9.10: blocked */
    } else {
        switch (node->cfg.access_model) {
        case PUBSUB_ACCESS_OPEN:
            ok = true;
            break;
        case PUBSUB_ACCESS_PRESENCE:
        case PUBSUB_ACCESS_ROSTER:
            ok = aff >= PUBSUB_AFF_MEMBER ||
                (svc->ops->may_access != NULL && svc->ops->may_access(svc->ud, node, jid));
            e.cond = CORE_STANZA_ERR_NOT_AUTHORIZED;
            e.app = node->cfg.access_model == PUBSUB_ACCESS_PRESENCE
                ? "presence-subscription-required"
                : "not-in-roster-group";
            break;
        case PUBSUB_ACCESS_WHITELIST:
            ok = aff >= PUBSUB_AFF_MEMBER;
            e.cond = CORE_STANZA_ERR_NOT_ALLOWED;
            e.app = "closed-node";
            break;
        }
    }
    if (!ok && err != NULL)
        *err = e;
    return ok;
}

static xml_node_t *result_pubsub(req_ctx_t *c, const char *ns)
{
    return xml_node_add_element(c->reply, c->parent, ns, "pubsub");
}

/* The node named by op's 'node': -ENOENT (item-not-found) or -EINVAL (nodeid-required). */
static int find_node(req_ctx_t *c, const xml_node_t *op, pubsub_node_t **out)
{
    const char *id = xml_node_attr(op, "node");
    if (id == NULL || id[0] == '\0')
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "nodeid-required");
    *out = pubsub_node_find(c->svc, id);
    if (*out == NULL)
        return fail(c, -ENOENT, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    return 0;
}

/* An owner-only request (XEP-0060 §8): the node, or forbidden / item-not-found. */
static int owned_node(req_ctx_t *c, const xml_node_t *op, pubsub_node_t **out)
{
    int rc = find_node(c, op, out);
    if (rc == 0 && pubsub_node_aff_of(c->svc, *out, c->req->from) != PUBSUB_AFF_OWNER)
        return fail(c, -EACCES, CORE_STANZA_ERR_FORBIDDEN, NULL);
    return rc;
}

static const xml_node_t *sibling(const xml_node_t *op, const char *name)
{
    return xml_node_child(op->parent, op->ns, name);
}

static const xml_node_t *data_form(const xml_node_t *n)
{
    return n != NULL ? xml_node_child(n, PUBSUB_NS_DATA, "x") : NULL;
}

/* ---- publish (XEP-0060 §7.1) ---- */

static bool may_publish(const pubsub_service_t *svc, const pubsub_node_t *node, const jid_t *jid)
{
    pubsub_aff_t aff = pubsub_node_aff_of(svc, node, jid);
    if (aff >= PUBSUB_AFF_PUBLISHER)
        return true;
    if (aff == PUBSUB_AFF_OUTCAST)
        return false;
    if (node->cfg.publish_model == PUBSUB_PUBLISH_OPEN)
        return true;
    if (node->cfg.publish_model != PUBSUB_PUBLISH_SUBSCRIBERS)
        return false;
    char *bare = bare_of(jid);
    bool sub = pubsub_node_subscribed(node, jid->full) || pubsub_node_subscribed(node, bare);
    core_free(bare);
    return sub;
}

/* The <item/> of a publish and its payload: at most one of each (§7.1.3.5, batches gone). */
static int publish_parse(req_ctx_t *c, const xml_node_t *op, const xml_node_t **item,
                         const xml_node_t **payload)
{
    *item = NULL;
    *payload = NULL;
    for (const xml_node_t *n = xml_node_first_element(op); n != NULL;
         n = xml_node_next_element(n)) {
        if (!xml_node_is(n, op->ns, "item"))
            continue;
        if (*item != NULL)
            return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "invalid-payload");
        *item = n;
    }
    if (*item == NULL)
        return 0;
    *payload = xml_node_first_element(*item);
    if (*payload != NULL && xml_node_next_element(*payload) != NULL)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "invalid-payload");
    const char *id = xml_node_attr(*item, "id");
    if (id != NULL && id[0] == '\0')
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    return 0;
}

/* §7.1.3.6: what the node's event type requires of the request. */
static int publish_fits(req_ctx_t *c, const pubsub_config_t *cfg, const xml_node_t *item,
                        const xml_node_t *payload)
{
    if (item == NULL && (cfg->persist_items || cfg->deliver_payloads))
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "item-required");
    if (item != NULL && payload == NULL && cfg->deliver_payloads)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "payload-required");
    return 0;
}

/* §7.1.5: auto-creates the node with the defaults and the publish options. */
static int publish_autocreate(req_ctx_t *c, const char *id, const xml_node_t *options,
                              const xml_node_t *item, const xml_node_t *payload,
                              pubsub_node_t **out)
{
    pubsub_service_t *svc = c->svc;
    if (svc->ops->may_create != NULL && !svc->ops->may_create(svc->ud, c->req->from, id))
        return fail(c, -EACCES, CORE_STANZA_ERR_FORBIDDEN, NULL);
    if (svc->nnodes >= svc->limits.max_nodes)
        return fail(c, -ENOSPC, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
    pubsub_config_t cfg;
    pubsub_service_defaults(svc, id, &cfg);
    int rc = 0;
    if (options != NULL) {
        rc = pubsub_config_form_apply(svc, options, PUBSUB_FORM_PUBLISH_OPTIONS, &cfg, c->err);
        if (rc == -ENOENT)
            rc = fail(c, -EINVAL, CORE_STANZA_ERR_CONFLICT, "precondition-not-met");
    }
    if (rc == 0)
        rc = publish_fits(c, &cfg, item, payload);
    if (rc == 0 && pubsub_node_create(svc, id, &cfg, c->req->from, out) < 0)
        rc = fail(c, -EINVAL, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR, NULL);
    pubsub_config_clear(&cfg);
    return rc;
}

static int do_publish(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_service_t *svc = c->svc;
    const char *id = xml_node_attr(op, "node");
    const xml_node_t *item, *payload;
    if (id == NULL || id[0] == '\0')
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "nodeid-required");
    int rc = publish_parse(c, op, &item, &payload);
    if (rc < 0)
        return rc;
    const xml_node_t *options = data_form(sibling(op, "publish-options"));
    const char *ft = options != NULL ? pubsub_form_type(options) : NULL;
    if (ft != NULL && strcmp(ft, PUBSUB_FORM_PUBLISH_OPTIONS) != 0)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    size_t bytes = pubsub_payload_bytes(payload);
    if (bytes > svc->limits.max_item_bytes)
        return fail(c, -EMSGSIZE, CORE_STANZA_ERR_NOT_ACCEPTABLE, "payload-too-big");
    pubsub_node_t *node = pubsub_node_find(svc, id);
    if (node == NULL) {
        if (svc->bytes + bytes > svc->limits.max_total_bytes)
            return fail(c, -ENOSPC, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
        rc = publish_autocreate(c, id, options, item, payload, &node);
    } else if (!may_publish(svc, node, c->req->from)) {
        rc = fail(c, -EACCES, CORE_STANZA_ERR_FORBIDDEN, NULL);
    } else if (options != NULL && !pubsub_config_meets(svc, &node->cfg, options)) {
        rc = fail(c, -EINVAL, CORE_STANZA_ERR_CONFLICT, "precondition-not-met");
    } else {
        rc = publish_fits(c, &node->cfg, item, payload);
    }
    if (rc < 0)
        return rc;
    const char *item_id = NULL;
    rc = pubsub_item_publish(svc, node, item != NULL ? xml_node_attr(item, "id") : NULL, payload,
                             c->req->from, &item_id);
    if (rc == -EMSGSIZE)
        return fail(c, rc, CORE_STANZA_ERR_NOT_ACCEPTABLE, "payload-too-big");
    if (rc < 0)
        return fail(c, rc, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
    xml_node_t *p =
        xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS), PUBSUB_NS, "publish");
    xml_node_set_attr(c->reply, p, NULL, "node", id);
    xml_node_t *it = xml_node_add_element(c->reply, p, PUBSUB_NS, "item");
    xml_node_set_attr(c->reply, it, NULL, "id", item_id);
    return 0;
}

/* ---- retract (§7.2) ---- */

static int do_retract(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    int rc = find_node(c, op, &node);
    if (rc < 0)
        return rc;
    const xml_node_t *item = xml_node_child(op, op->ns, "item");
    const char *id = item != NULL ? xml_node_attr(item, "id") : NULL;
    if (id == NULL || id[0] == '\0')
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "item-required");
    const pubsub_item_t *it = pubsub_item_find(node, id);
    pubsub_aff_t aff = pubsub_node_aff_of(c->svc, node, c->req->from);
    /* Owners retract anything; a publisher its own items (§7.2.3.1). */
    bool allowed = aff == PUBSUB_AFF_OWNER;
    if (!allowed && aff == PUBSUB_AFF_PUBLISHER && it != NULL && it->publisher != NULL) {
        char *bare = bare_of(c->req->from);
        allowed = strcmp(bare, it->publisher) == 0;
        core_free(bare);
    }
    if (!allowed)
        return fail(c, -EACCES, CORE_STANZA_ERR_FORBIDDEN, NULL);
    if (it == NULL)
        return fail(c, -ENOENT, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    /* §7.2.2.1: 'notify' asks for it; without the attribute the node's notify_retract. */
    bool notify = node->cfg.notify_retract;
    const char *n = xml_node_attr(op, "notify");
    if (n != NULL && pubsub_bool_parse(n, &notify) < 0)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    pubsub_item_retract(c->svc, node, id, notify, c->req->from);
    return 0;
}

/* ---- items (§6.5) ---- */

static void item_add(req_ctx_t *c, xml_node_t *items, const pubsub_item_t *it)
{
    xml_node_t *n = xml_node_add_element(c->reply, items, PUBSUB_NS, "item");
    xml_node_set_attr(c->reply, n, NULL, "id", it->id);
    if (it->payload != NULL)
        xml_node_add_copy(c->reply, n, it->payload->root);
}

static int do_items(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    int rc = find_node(c, op, &node);
    if (rc < 0)
        return rc;
    if (!pubsub_node_may_see(c->svc, node, c->req->from, c->err))
        return -EACCES;
    size_t max = node->nitems;
    const char *m = xml_node_attr(op, "max_items");
    if (m != NULL) {
        char *end;
        unsigned long v = strtoul(m, &end, 10);
        if (m[0] < '0' || m[0] > '9' || *end != '\0')
            return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
        if (v < max)
            max = v;
    }
    xml_node_t *items =
        xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS), PUBSUB_NS, "items");
    xml_node_set_attr(c->reply, items, NULL, "node", node->id);
    bool by_id = false;
    for (const xml_node_t *n = xml_node_first_element(op); n != NULL;
         n = xml_node_next_element(n)) {
        const char *id = xml_node_attr(n, "id");
        if (!xml_node_is(n, op->ns, "item") || id == NULL)
            continue;
        /* §6.5.8: the items asked for by id; those that do not exist are left out. */
        by_id = true;
        const pubsub_item_t *it = pubsub_item_find(node, id);
        if (it != NULL)
            item_add(c, items, it);
    }
    /* §6.5.7: max_items gives the most recent ones, still oldest first. */
    for (size_t i = node->nitems - max; !by_id && i < node->nitems; i++)
        item_add(c, items, &node->items[i]);
    return 0;
}

/* ---- create (§8.1) ---- */

static int do_create(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_service_t *svc = c->svc;
    const char *id = xml_node_attr(op, "node");
    /* Instant nodes are not offered (§8.1.1). */
    if (id == NULL || id[0] == '\0')
        return fail(c, -EINVAL, CORE_STANZA_ERR_NOT_ACCEPTABLE, "nodeid-required");
    if (svc->ops->may_create != NULL && !svc->ops->may_create(svc->ud, c->req->from, id))
        return fail(c, -EACCES, CORE_STANZA_ERR_FORBIDDEN, NULL);
    if (pubsub_node_find(svc, id) != NULL)
        return fail(c, -EEXIST, CORE_STANZA_ERR_CONFLICT, NULL);
    if (svc->nnodes >= svc->limits.max_nodes)
        return fail(c, -ENOSPC, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
    const xml_node_t *conf = sibling(op, "configure");
    if (conf != NULL && xml_node_attr(conf, "node") != NULL)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL); /* §8.1.3 */
    pubsub_config_t cfg;
    pubsub_service_defaults(svc, id, &cfg);
    int rc = 0;
    const xml_node_t *x = data_form(conf);
    if (x != NULL)
        rc = pubsub_config_form_apply(svc, x, PUBSUB_FORM_NODE_CONFIG, &cfg, c->err);
    if (rc == 0)
        rc = pubsub_node_create(svc, id, &cfg, c->req->from, NULL);
    pubsub_config_clear(&cfg);
    return rc < 0 ? -EINVAL : 0;
}

/* ---- subscriptions (§6.1, §6.2, §5.6) ---- */

/* The 'jid' of a subscription request, which must be the requester's own (§6.1.3.1). */
static int sub_jid(req_ctx_t *c, const xml_node_t *op, jid_t *out, core_stanza_err_t cond,
                   const char *app)
{
    const char *s = xml_node_attr(op, "jid");
    if (s == NULL || jid_parse(NULL, s, strlen(s), out) < 0)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, "invalid-jid");
    if (!jid_bare_equal(out, c->req->from)) {
        jid_clear(out);
        return fail(c, -EACCES, cond, app);
    }
    return 0;
}

static void subscription_add(req_ctx_t *c, xml_node_t *parent, const char *node, const char *jid,
                             const char *state)
{
    xml_node_t *s = xml_node_add_element(c->reply, parent, PUBSUB_NS, "subscription");
    xml_node_set_attr(c->reply, s, NULL, "node", node);
    xml_node_set_attr(c->reply, s, NULL, "jid", jid);
    xml_node_set_attr(c->reply, s, NULL, "subscription", state);
}

static int do_subscribe(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    jid_t j;
    int rc = find_node(c, op, &node);
    if (rc < 0)
        return rc;
    rc = sub_jid(c, op, &j, CORE_STANZA_ERR_BAD_REQUEST, "invalid-jid");
    if (rc < 0)
        return rc;
    if (!pubsub_node_may_see(c->svc, node, c->req->from, c->err))
        rc = -EACCES;
    else if (!pubsub_node_subscribed(node, j.full) && pubsub_node_sub_add(c->svc, node, j.full) < 0)
        rc = fail(c, -ENOSPC, CORE_STANZA_ERR_NOT_ALLOWED, "too-many-subscriptions");
    if (rc == 0) {
        pubsub_node_saved(c->svc, node);
        subscription_add(c, result_pubsub(c, PUBSUB_NS), node->id, j.full, "subscribed");
        /* §6.1.7: the last published item for the new subscriber. */
        xml_stanza_t *ev = pubsub_node_last_event(node, false);
        if (ev != NULL)
            pubsub_notify(c->svc, node, PUBSUB_EV_ITEMS, ev, node->items[node->nitems - 1].id,
                          c->req->from, j.full);
        xml_stanza_unref(ev);
    }
    jid_clear(&j);
    return rc;
}

static int do_unsubscribe(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    jid_t j;
    int rc = find_node(c, op, &node);
    if (rc < 0)
        return rc;
    /* §6.2.3.3: someone else's subscription is insufficient privileges. */
    rc = sub_jid(c, op, &j, CORE_STANZA_ERR_FORBIDDEN, NULL);
    if (rc < 0)
        return rc;
    if (pubsub_node_sub_del(node, j.full) < 0)
        rc = fail(c, -ENOENT, CORE_STANZA_ERR_UNEXPECTED_REQUEST, "not-subscribed");
    else
        pubsub_node_saved(c->svc, node);
    jid_clear(&j);
    return rc;
}

/* §5.6 and §5.7: the requester's own subscriptions or affiliations, on one node or all. */
static int do_entity_list(req_ctx_t *c, const xml_node_t *op, bool affiliations)
{
    const char *only = xml_node_attr(op, "node");
    pubsub_node_t *one = only != NULL ? pubsub_node_find(c->svc, only) : NULL;
    if (only != NULL && one == NULL)
        return fail(c, -ENOENT, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    xml_node_t *list = xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS), PUBSUB_NS,
                                            affiliations ? "affiliations" : "subscriptions");
    if (only != NULL)
        xml_node_set_attr(c->reply, list, NULL, "node", only);
    for (size_t i = 0; i < c->svc->nnodes; i++) {
        const pubsub_node_t *node = c->svc->nodes[i];
        if (one != NULL && node != one)
            continue;
        if (affiliations) {
            pubsub_aff_t a = pubsub_node_aff_of(c->svc, node, c->req->from);
            if (a == PUBSUB_AFF_NONE)
                continue;
            xml_node_t *e = xml_node_add_element(c->reply, list, PUBSUB_NS, "affiliation");
            xml_node_set_attr(c->reply, e, NULL, "node", node->id);
            xml_node_set_attr(c->reply, e, NULL, "affiliation", pubsub_aff_name(a));
            continue;
        }
        for (size_t k = 0; k < node->nsubs; k++) {
            jid_t j;
            if (jid_parse(NULL, node->subs[k].jid, strlen(node->subs[k].jid), &j) < 0)
                continue;
            if (jid_bare_equal(&j, c->req->from))
                subscription_add(c, list, node->id, j.full, "subscribed");
            jid_clear(&j);
        }
    }
    return 0;
}

/* ---- owner use cases (§8) ---- */

static int do_configure(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    int rc = owned_node(c, op, &node);
    if (rc < 0)
        return rc;
    if (!c->req->set) {
        xml_node_t *conf = xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS_OWNER),
                                                PUBSUB_NS_OWNER, "configure");
        xml_node_set_attr(c->reply, conf, NULL, "node", node->id);
        pubsub_config_form_add(c->svc, &node->cfg, "form", PUBSUB_FORM_NODE_CONFIG, c->reply, conf);
        return 0;
    }
    const xml_node_t *x = data_form(op);
    const char *type = x != NULL ? xml_node_attr(x, "type") : NULL;
    if (type != NULL && strcmp(type, "cancel") == 0)
        return 0; /* §8.2.4: the configuration stays */
    if (type == NULL || strcmp(type, "submit") != 0)
        return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    pubsub_config_t cfg;
    pubsub_config_copy(&cfg, &node->cfg);
    rc = pubsub_config_form_apply(c->svc, x, PUBSUB_FORM_NODE_CONFIG, &cfg, c->err);
    if (rc == 0)
        pubsub_node_configure(c->svc, node, &cfg, c->req->from);
    pubsub_config_clear(&cfg);
    return rc < 0 ? -EINVAL : 0;
}

static int do_default(req_ctx_t *c, const xml_node_t *op)
{
    xml_node_t *d = xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS_OWNER),
                                         PUBSUB_NS_OWNER, "default");
    pubsub_config_form_add(c->svc, &c->svc->defaults, "form", PUBSUB_FORM_NODE_CONFIG, c->reply, d);
    return 0;
}

static int do_delete(req_ctx_t *c, const xml_node_t *op, bool purge)
{
    pubsub_node_t *node;
    int rc = owned_node(c, op, &node);
    if (rc < 0)
        return rc;
    if (purge)
        pubsub_node_purge(c->svc, node, c->req->from);
    else
        pubsub_node_delete(c->svc, node, c->req->from);
    return 0;
}

static void changes_free(pubsub_entity_t *ch, size_t n)
{
    for (size_t i = 0; i < n; i++)
        core_free(ch[i].jid);
    core_free(ch);
}

/*
 * §8.9.2: the changes a request asks for (prepared bare JIDs, owned), all checked before any
 * is made: a JID named twice is bad-request; an element without 'affiliation' changes nothing
 * (its JID keeps what it has).
 */
static int affiliations_parse(req_ctx_t *c, const xml_node_t *op, pubsub_entity_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (const xml_node_t *e = xml_node_first_element(op); e != NULL;
         e = xml_node_next_element(e)) {
        const char *jid = xml_node_attr(e, "jid");
        const char *name = xml_node_attr(e, "affiliation");
        pubsub_aff_t a = PUBSUB_AFF_NONE;
        jid_t j;
        int rc = 0;
        if (!xml_node_is(e, PUBSUB_NS_OWNER, "affiliation") || jid == NULL ||
            (name != NULL && pubsub_aff_parse(name, &a) < 0) ||
            jid_parse(NULL, jid, strlen(jid), &j) < 0) {
            rc = fail(c, -EINVAL, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
        } else {
            bool named = false;
            for (size_t i = 0; i < *n && !named; i++)
                named = strcmp((*out)[i].jid, j.full) == 0;
            if (jid_has_resource(&j))
                rc = fail(c, -EINVAL, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
            else if (named)
                rc = fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
            else if (name != NULL) {
                *out = core_realloc(*out, (*n + 1) * sizeof(**out));
                (*out)[(*n)++] = (pubsub_entity_t){.jid = core_strdup(j.full), .aff = a};
            }
            jid_clear(&j);
        }
        if (rc < 0) {
            changes_free(*out, *n);
            *out = NULL;
            *n = 0;
            return rc;
        }
    }
    return 0;
}

/* The node's explicit owners once the changes are made. */
static size_t owners_after(const pubsub_node_t *node, const pubsub_entity_t *ch, size_t n)
{
    size_t owners = 0;
    for (size_t i = 0; i < node->naffs; i++)
        owners += node->affs[i].aff == PUBSUB_AFF_OWNER;
    for (size_t i = 0; i < n; i++) {
        bool was = pubsub_node_aff(node, ch[i].jid) == PUBSUB_AFF_OWNER;
        bool is = ch[i].aff == PUBSUB_AFF_OWNER;
        owners = owners + is - was;
    }
    return owners;
}

static int affiliations_set(req_ctx_t *c, const xml_node_t *op, pubsub_node_t *node)
{
    pubsub_entity_t *ch;
    size_t n;
    int rc = affiliations_parse(c, op, &ch, &n);
    if (rc < 0)
        return rc;
    /*
     * Counted as if each were new, so that no change can fail half-way. And §8.9.2: the only
     * owner may not become something else. Where ops->is_owner names an owner (PEP: the
     * account) the node always has one; otherwise its affiliations are all there is.
     */
    if (node->naffs + n > c->svc->limits.max_subs)
        rc = fail(c, -ENOSPC, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
    else if (c->svc->ops->is_owner == NULL && owners_after(node, ch, n) == 0)
        rc = fail(c, -EINVAL, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
    for (size_t i = 0; rc == 0 && i < n; i++)
        pubsub_node_set_aff(c->svc, node, ch[i].jid, ch[i].aff);
    if (rc == 0)
        pubsub_node_saved(c->svc, node);
    changes_free(ch, n);
    return rc;
}

static int do_affiliations(req_ctx_t *c, const xml_node_t *op)
{
    pubsub_node_t *node;
    int rc = owned_node(c, op, &node);
    if (rc < 0)
        return rc;
    if (c->req->set)
        return affiliations_set(c, op, node);
    xml_node_t *list = xml_node_add_element(c->reply, result_pubsub(c, PUBSUB_NS_OWNER),
                                            PUBSUB_NS_OWNER, "affiliations");
    xml_node_set_attr(c->reply, list, NULL, "node", node->id);
    for (size_t i = 0; i < node->naffs; i++) {
        xml_node_t *e = xml_node_add_element(c->reply, list, PUBSUB_NS_OWNER, "affiliation");
        xml_node_set_attr(c->reply, e, NULL, "jid", node->affs[i].jid);
        xml_node_set_attr(c->reply, e, NULL, "affiliation", pubsub_aff_name(node->affs[i].aff));
    }
    return 0;
}

/* ---- dispatch ---- */

static bool is(const xml_node_t *op, const char *name)
{
    return strcmp(op->name, name) == 0;
}

static int run_user(req_ctx_t *c, const xml_node_t *op)
{
    bool set = c->req->set;
    if (is(op, "publish") || is(op, "retract") || is(op, "create") || is(op, "subscribe") ||
        is(op, "unsubscribe")) {
        if (!set)
            return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
        if (is(op, "publish"))
            return do_publish(c, op);
        if (is(op, "retract"))
            return do_retract(c, op);
        if (is(op, "create"))
            return do_create(c, op);
        return is(op, "subscribe") ? do_subscribe(c, op) : do_unsubscribe(c, op);
    }
    if (is(op, "items") || is(op, "subscriptions") || is(op, "affiliations")) {
        if (set)
            return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
        if (is(op, "items"))
            return do_items(c, op);
        return do_entity_list(c, op, is(op, "affiliations"));
    }
    if (is(op, "options") || is(op, "default"))
        return unsupported(c, "subscription-options");
    return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
}

static int run_owner(req_ctx_t *c, const xml_node_t *op)
{
    bool set = c->req->set;
    if (is(op, "configure"))
        return do_configure(c, op);
    if (is(op, "affiliations"))
        return do_affiliations(c, op);
    if (is(op, "default"))
        return set ? fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL) : do_default(c, op);
    if (is(op, "delete") || is(op, "purge"))
        return !set ? fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL)
                    : do_delete(c, op, is(op, "purge"));
    if (is(op, "subscriptions"))
        return unsupported(c, "manage-subscriptions");
    return fail(c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
}

int pubsub_request_run(pubsub_service_t *svc, const pubsub_request_t *req, xml_stanza_t *reply,
                       xml_node_t *parent, pubsub_error_t *err)
{
    req_ctx_t c = {.svc = svc, .req = req, .reply = reply, .parent = parent, .err = err};
    const xml_node_t *op = xml_node_first_element(req->pubsub);
    bool owner = xml_node_is(req->pubsub, PUBSUB_NS_OWNER, "pubsub");
    if (!owner && !xml_node_is(req->pubsub, PUBSUB_NS, "pubsub"))
        return fail(&c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    if (op == NULL || !xml_node_is(op, req->pubsub->ns, NULL))
        return fail(&c, -EINVAL, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    return owner ? run_owner(&c, op) : run_user(&c, op);
}

/* ---- service discovery (§5) ---- */

int pubsub_disco_items(const pubsub_service_t *svc, const char *service_jid, const char *node,
                       const jid_t *jid, xml_stanza_t *st, xml_node_t *query)
{
    const char *ns = query->ns;
    if (node == NULL) {
        /* §5.2, XEP-0163 §9.2: only the nodes the requester may see. */
        for (size_t i = 0; i < svc->nnodes; i++) {
            const pubsub_node_t *n = svc->nodes[i];
            if (!pubsub_node_may_see(svc, n, jid, NULL))
                continue;
            xml_node_t *it = xml_node_add_element(st, query, ns, "item");
            xml_node_set_attr(st, it, NULL, "jid", service_jid);
            xml_node_set_attr(st, it, NULL, "node", n->id);
            if (n->cfg.title != NULL)
                xml_node_set_attr(st, it, NULL, "name", n->cfg.title);
        }
        return 0;
    }
    const pubsub_node_t *n = pubsub_node_find(svc, node);
    if (n == NULL || !pubsub_node_may_see(svc, n, jid, NULL))
        return -ENOENT;
    for (size_t i = 0; i < n->nitems; i++) {
        xml_node_t *it = xml_node_add_element(st, query, ns, "item");
        xml_node_set_attr(st, it, NULL, "jid", service_jid);
        xml_node_set_attr(st, it, NULL, "name", n->items[i].id);
    }
    return 0;
}

static void meta_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *value)
{
    xml_node_t *f = xml_node_add_element(st, x, PUBSUB_NS_DATA, "field");
    xml_node_set_attr(st, f, NULL, "var", var);
    if (value == NULL)
        return;
    xml_node_t *v = xml_node_add_element(st, f, PUBSUB_NS_DATA, "value");
    xml_node_add_text(st, v, value, strlen(value));
}

int pubsub_disco_node_info(const pubsub_service_t *svc, const char *node, const jid_t *jid,
                           xml_stanza_t *st, xml_node_t *query)
{
    const pubsub_node_t *n = pubsub_node_find(svc, node);
    if (n == NULL || !pubsub_node_may_see(svc, n, jid, NULL))
        return -ENOENT;
    const char *ns = query->ns;
    xml_node_t *id = xml_node_add_element(st, query, ns, "identity");
    xml_node_set_attr(st, id, NULL, "category", "pubsub");
    xml_node_set_attr(st, id, NULL, "type", "leaf");
    xml_node_t *f = xml_node_add_element(st, query, ns, "feature");
    xml_node_set_attr(st, f, NULL, "var", PUBSUB_NS);
    /* §5.4: the node's metadata. */
    xml_node_t *x = xml_node_add_element(st, query, PUBSUB_NS_DATA, "x");
    xml_node_set_attr(st, x, NULL, "type", "result");
    meta_field(st, x, "FORM_TYPE", PUBSUB_FORM_META_DATA);
    xml_node_set_attr(st, xml_node_child(x, PUBSUB_NS_DATA, "field"), NULL, "type", "hidden");
    meta_field(st, x, "pubsub#title", n->cfg.title);
    meta_field(st, x, "pubsub#type", n->cfg.type);
    meta_field(st, x, "pubsub#creator", n->creator);
    meta_field(st, x, "pubsub#access_model", pubsub_access_name(n->cfg.access_model));
    return 0;
}
