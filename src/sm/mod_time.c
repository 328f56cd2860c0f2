/* SPDX-License-Identifier: MIT */
/* XEP-0202: the server's time, in UTC (XEP-0082 profiles). */
#include "sm/internal.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#define NS_TIME "urn:xmpp:time"

static void add_text(xml_stanza_t *st, xml_node_t *parent, const char *name, const char *text)
{
    xml_node_t *n = xml_node_add_element(st, parent, NS_TIME, name);
    xml_node_add_text(st, n, text, strlen(text));
}

static xml_handler_result_t on_time(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    struct timespec now;
    struct tm tm;
    char utc[40];
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(utc, sizeof utc, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(utc + n, sizeof utc - n, ".%03ldZ", now.tv_nsec / 1000000);
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *t = xml_node_add_element(r, r->root, NS_TIME, "time");
    add_text(r, t, "tzo", "+00:00");
    add_text(r, t, "utc", utc);
    sm_route(sm, r);
    xml_stanza_unref(r);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET,
                           .payload_ns = NS_TIME,
                           .payload_name = "time"};
    return sm_handler_add(sm, SM_CHAIN_TO_SERVER, &m, on_time, NULL);
}

static const char *const features[] = {NS_TIME, NULL};

const sm_module_t sm_module_time = {
    .name = "time",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
};
