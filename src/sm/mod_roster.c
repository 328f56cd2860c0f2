/* SPDX-License-Identifier: MIT */
/* RFC 6121 §2: roster get, set and remove, with versioning (XEP-0237) and pushes. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <string.h>

static void reply_error(sm_t *sm, sm_pkt_t *pkt, core_stanza_err_t cond)
{
    sm_reply_error(sm, pkt->st, cond);
}

static void roster_get(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    pkt->sess->interested = true;
    xml_stanza_t *r = sm_iq_result(pkt->st);
    const char *ver = xml_node_attr(pkt->payload, "ver");
    /* XEP-0237 §3: the client's version is current: an empty result, pushes follow. */
    if (ver == NULL || u->roster.version == NULL || strcmp(ver, u->roster.version) != 0) {
        xml_node_t *q = xml_node_add_element(r, r->root, SM_NS_ROSTER, "query");
        if (u->roster.version != NULL)
            xml_node_set_attr(r, q, NULL, "ver", u->roster.version);
        for (size_t i = 0; i < u->roster.count; i++)
            sm_roster_item_xml(r, q, &u->roster.items[i]);
    }
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* A contact we no longer list is told so (RFC 6121 §2.5.2). */
static void send_sub(sm_t *sm, sm_user_t *u, const char *contact, const char *type)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    xml_node_set_attr(p, p->root, NULL, "type", type);
    xml_node_set_attr(p, p->root, NULL, "to", contact);
    char *bare = core_strndup(u->jid.full, u->jid.bare_len);
    xml_node_set_attr(p, p->root, NULL, "from", bare);
    core_free(bare);
    sm_route(sm, p);
    xml_stanza_unref(p);
}

static void roster_remove(sm_t *sm, sm_pkt_t *pkt, const char *jid)
{
    sm_user_t *u = pkt->user;
    storage_roster_item_t *it = sm_roster_find(u, jid);
    if (it == NULL) {
        reply_error(sm, pkt, CORE_STANZA_ERR_ITEM_NOT_FOUND);
        return;
    }
    bool to = it->subscription == STORAGE_SUB_TO || it->subscription == STORAGE_SUB_BOTH ||
        it->ask == STORAGE_ASK_SUBSCRIBE;
    bool from = it->subscription == STORAGE_SUB_FROM || it->subscription == STORAGE_SUB_BOTH;
    xml_stanza_t *r = sm_iq_result(pkt->st);
    sm_route(sm, r);
    xml_stanza_unref(r);
    char *contact = core_strdup(jid);
    sm_roster_remove(sm, u, contact);
    if (to)
        send_sub(sm, u, contact, "unsubscribe");
    if (from) {
        send_sub(sm, u, contact, "unsubscribed");
        /* §3.2.2: a cancelled subscriber stops seeing the user: unavailable from each
         * resource that is available. */
        for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
            if (!s->available)
                continue;
            xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
            xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
            xml_node_set_attr(p, p->root, NULL, "from", s->jid.full);
            xml_node_set_attr(p, p->root, NULL, "to", contact);
            sm_route(sm, p);
            xml_stanza_unref(p);
        }
    }
    sm_user_clear_pending_in(sm, u, contact);
    core_free(contact);
}

/* Reads the groups of an <item/> into out; false and *err when they are not acceptable. */
static bool read_groups(const xml_node_t *item, storage_roster_item_t *out, core_stanza_err_t *err)
{
    for (const xml_node_t *g = xml_node_first_element(item); g != NULL;
         g = xml_node_next_element(g)) {
        if (!xml_node_is(g, SM_NS_ROSTER, "group"))
            continue;
        size_t len;
        const char *name = xml_node_text(g, &len);
        /* RFC 6121 §2.3.3: empty or over-long group names are not acceptable. */
        *err = CORE_STANZA_ERR_NOT_ACCEPTABLE;
        if (len == 0 || len > STORAGE_TEXT_MAX || out->group_count == STORAGE_GROUPS_MAX)
            return false;
        for (size_t i = 0; i < out->group_count; i++) {
            /* RFC 6121 §2.3.3: the same group twice is a bad request. */
            *err = CORE_STANZA_ERR_BAD_REQUEST;
            if (strcmp(out->groups[i], name) == 0)
                return false;
        }
        out->groups = core_realloc(out->groups, (out->group_count + 1) * sizeof(char *));
        out->groups[out->group_count++] = core_strndup(name, len);
    }
    return true;
}

static void roster_set(sm_t *sm, sm_pkt_t *pkt)
{
    const xml_node_t *item = xml_node_child(pkt->payload, SM_NS_ROSTER, "item");
    /* RFC 6121 §2.3.3: exactly one item. */
    if (item == NULL || xml_node_next_element(item) != NULL) {
        reply_error(sm, pkt, CORE_STANZA_ERR_BAD_REQUEST);
        return;
    }
    const char *jid = xml_node_attr(item, "jid");
    jid_t j;
    if (jid == NULL || jid_parse(sm->jids, jid, strlen(jid), &j) < 0) {
        reply_error(sm, pkt, CORE_STANZA_ERR_JID_MALFORMED);
        return;
    }
    char *bare = core_strndup(j.full, j.bare_len);
    jid_clear(&j);
    const char *sub = xml_node_attr(item, "subscription");
    if (sub != NULL && strcmp(sub, "remove") == 0) {
        roster_remove(sm, pkt, bare);
        core_free(bare);
        return;
    }
    /* The client cannot set subscription or ask (RFC 6121 §2.1.2.5, §2.3.2): ignored. */
    storage_roster_item_t next = {0};
    storage_roster_item_t *cur = sm_roster_find(pkt->user, bare);
    if (cur == NULL && pkt->user->roster.count >= SM_ROSTER_MAX) {
        reply_error(sm, pkt, CORE_STANZA_ERR_POLICY_VIOLATION);
        core_free(bare);
        return;
    }
    if (cur != NULL) {
        next.subscription = cur->subscription;
        next.ask = cur->ask;
        next.approved = cur->approved;
    }
    next.jid = bare;
    const char *name = xml_node_attr(item, "name");
    core_stanza_err_t err = CORE_STANZA_ERR_NOT_ACCEPTABLE;
    bool ok = name == NULL || strlen(name) <= STORAGE_TEXT_MAX;
    if (ok && name != NULL && name[0] != '\0')
        next.name = core_strdup(name);
    if (ok)
        ok = read_groups(item, &next, &err);
    if (!ok) {
        reply_error(sm, pkt, err);
    } else {
        xml_stanza_t *r = sm_iq_result(pkt->st);
        sm_route(sm, r);
        xml_stanza_unref(r);
        sm_roster_put(sm, pkt->user, &next);
    }
    storage_roster_item_clear(&next);
}

/* Only the user's own sessions manage the roster: 'to' absent or the user's bare JID. */
static xml_handler_result_t on_roster(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (pkt->to.full != NULL &&
        (jid_has_resource(&pkt->to) || !jid_bare_equal(&pkt->to, &pkt->user->jid)))
        return XMLS_PASS;
    if (pkt->type == XMLS_TYPE_GET)
        roster_get(sm, pkt);
    else
        roster_set(sm, pkt);
    return XMLS_HANDLED;
}

/* Roster queries from anyone else (RFC 6121 §2.1.5: only the user's server sends pushes). */
static xml_handler_result_t on_foreign(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                           .payload_ns = SM_NS_ROSTER,
                           .payload_name = "query"};
    int rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &m, on_roster, NULL);
    return rc < 0 ? rc : sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_foreign, NULL);
}

/* XEP-0237 is announced as a stream feature by c2s; disco lists nothing for it. */
const sm_module_t sm_module_roster = {
    .name = "roster",
    .api = SM_MODULE_API,
    .init = init,
};
