/* SPDX-License-Identifier: MIT */
/* XEP-0199: the server answers pings to itself and, for its users, to their bare JIDs. */
#include "sm/internal.h"

#define NS_PING "urn:xmpp:ping"

static xml_handler_result_t on_ping(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    /* To a full JID the resource answers (the core delivers it). */
    if (pkt->to.full != NULL && jid_has_resource(&pkt->to))
        return XMLS_PASS;
    xml_stanza_t *r = sm_iq_result(pkt->st);
    sm_route(sm, r);
    xml_stanza_unref(r);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET,
                           .payload_ns = NS_PING,
                           .payload_name = "ping"};
    int rc = sm_handler_add(sm, SM_CHAIN_TO_SERVER, &m, on_ping, NULL);
    return rc < 0 ? rc : sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_ping, NULL);
}

static const char *const features[] = {NS_PING, NULL};

const sm_module_t sm_module_ping = {
    .name = "ping",
    .api = SM_MODULE_API,
    .features = features,
    .account_features = features,
    .init = init,
};
