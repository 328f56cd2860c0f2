/* SPDX-License-Identifier: MIT */
/* XEP-0092: the server's software name and version (not its operating system). */
#include "sm/internal.h"

#include <string.h>

#define NS_VERSION "jabber:iq:version"

static xml_handler_result_t on_version(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, NS_VERSION, "query");
    xml_node_t *name = xml_node_add_element(r, q, NS_VERSION, "name");
    xml_node_add_text(r, name, "Parley", strlen("Parley"));
    xml_node_t *ver = xml_node_add_element(r, q, NS_VERSION, "version");
    xml_node_add_text(r, ver, PARLEY_VERSION, strlen(PARLEY_VERSION));
    sm_route(sm, r);
    xml_stanza_unref(r);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET,
                           .payload_ns = NS_VERSION,
                           .payload_name = "query"};
    return sm_handler_add(sm, SM_CHAIN_TO_SERVER, &m, on_version, NULL);
}

static const char *const features[] = {NS_VERSION, NULL};

const sm_module_t sm_module_version = {
    .name = "version",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
};
