/* SPDX-License-Identifier: MIT */
/* XEP-0030 for the server and for accounts, built from what the enabled modules register. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <string.h>

static void info_reply(sm_t *sm, sm_pkt_t *pkt, bool account, const char *node)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, SM_NS_DISCO_INFO, "query");
    /* XEP-0115 §6.2: the answer for the caps node names it. */
    if (node != NULL)
        xml_node_set_attr(r, q, NULL, "node", node);
    sm_info_fill(sm, account, r, q);
    if (account)
        sm_disco_account_run(sm, pkt, NULL, false, r, q);
    sm_route(sm, r);
    xml_stanza_unref(r);
}

static void items_reply(sm_t *sm, sm_pkt_t *pkt, bool account)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, SM_NS_DISCO_ITEMS, "query");
    if (account)
        sm_disco_account_run(sm, pkt, NULL, true, r, q);
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* A query naming a node of an account: the module serving it answers (XEP-0030 §3.2). */
static void account_node(sm_t *sm, sm_pkt_t *pkt, const char *node, bool items)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    const char *ns = items ? SM_NS_DISCO_ITEMS : SM_NS_DISCO_INFO;
    xml_node_t *q = xml_node_add_element(r, r->root, ns, "query");
    xml_node_set_attr(r, q, NULL, "node", node);
    if (sm_disco_account_run(sm, pkt, node, items, r, q))
        sm_route(sm, r);
    else
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_ITEM_NOT_FOUND);
    xml_stanza_unref(r);
}

/* The server has no nodes: a query naming one gets item-not-found (XEP-0030 §3.1). */
static bool has_node(sm_t *sm, sm_pkt_t *pkt)
{
    if (xml_node_attr(pkt->payload, "node") == NULL)
        return false;
    sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_ITEM_NOT_FOUND);
    return true;
}

static xml_handler_result_t server_info(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    /* XEP-0115 §6.2: the node of the server's own caps is the server itself. */
    const char *node = xml_node_attr(pkt->payload, "node");
    const char *caps = node != NULL ? sm_caps_server_node(sm) : NULL;
    if (caps != NULL && strcmp(node, caps) == 0)
        info_reply(sm, pkt, false, caps);
    else if (!has_node(sm, pkt))
        info_reply(sm, pkt, false, NULL);
    return XMLS_HANDLED;
}

static xml_handler_result_t server_items(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    if (!has_node(sm, pkt))
        items_reply(sm, pkt, false);
    return XMLS_HANDLED;
}

/*
 * An account's bare JID: answered for the user (RFC 6121 §8.5.2.1.3... IQs to a bare JID) to
 * the user and to contacts who may see its presence; others learn nothing (XEP-0030 §3.1
 * says a server may hide an account from those not subscribed).
 */
static bool may_see(sm_pkt_t *pkt)
{
    if (jid_bare_equal(&pkt->from, &pkt->user->jid))
        return true;
    char *bare = core_strndup(pkt->from.full, pkt->from.bare_len);
    storage_roster_item_t *it = sm_roster_find(pkt->user, bare);
    core_free(bare);
    return it != NULL &&
        (it->subscription == STORAGE_SUB_FROM || it->subscription == STORAGE_SUB_BOTH);
}

static xml_handler_result_t account_query(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    if (!may_see(pkt)) {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        return XMLS_HANDLED;
    }
    bool items = xml_node_is(pkt->payload, SM_NS_DISCO_ITEMS, "query");
    const char *node = xml_node_attr(pkt->payload, "node");
    if (node != NULL)
        account_node(sm, pkt, node, items);
    else if (items)
        items_reply(sm, pkt, true);
    else
        info_reply(sm, pkt, true, NULL);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t info = {.kind = XMLS_KIND_IQ,
                              .types = XMLS_TYPE_GET,
                              .payload_ns = SM_NS_DISCO_INFO,
                              .payload_name = "query"};
    const xml_match_t items = {.kind = XMLS_KIND_IQ,
                               .types = XMLS_TYPE_GET,
                               .payload_ns = SM_NS_DISCO_ITEMS,
                               .payload_name = "query"};
    int rc = sm_handler_add(sm, SM_CHAIN_TO_SERVER, &info, server_info, NULL);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_SERVER, &items, server_items, NULL);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &info, account_query, NULL);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &items, account_query, NULL);
    return rc;
}

static const char *const features[] = {SM_NS_DISCO_INFO, SM_NS_DISCO_ITEMS, NULL};

const sm_module_t sm_module_disco = {
    .name = "disco",
    .api = SM_MODULE_API,
    .features = features,
    .account_features = features,
    .init = init,
};
