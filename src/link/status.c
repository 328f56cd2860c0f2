/* SPDX-License-Identifier: MIT */
/* A component's answer to a control component's status query (docs/link-protocol.md). */
#include "link/internal.h"

#include "jid/jid.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool link_status_is_query(const xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    if (xml_stanza_kind(st) != XMLS_KIND_IQ || type == NULL || strcmp(type, "get") != 0)
        return false;
    const xml_node_t *q = xml_node_first_element(st->root);
    return q != NULL && xml_node_is(q, LINK_NS_STATUS, "status");
}

/*
 * The domain of 'from' as written, compared as bytes with the configured names: the router
 * let the stanza through only if its link bound that domain (RFC 6120 §4.9.3.9), and a
 * control component sends from its configured name.
 */
static bool from_control(const link_opener_t *o, const xml_stanza_t *st)
{
    const char *from = xml_stanza_from(st);
    const char *dom;
    size_t len;
    if (from == NULL || jid_domain_raw(from, strlen(from), &dom, &len) < 0)
        return false;
    for (size_t i = 0; i < o->ncontrol; i++) {
        if (strlen(o->control[i]) == len && memcmp(o->control[i], dom, len) == 0)
            return true;
    }
    return false;
}

xml_stanza_t *link_status_reply(const link_opener_t *o, const xml_stanza_t *st,
                                const link_status_count_t *counts, size_t n)
{
    if (!from_control(o, st))
        return xml_stanza_error_reply(st, CORE_STANZA_ERR_FORBIDDEN);
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *s = xml_node_add_element(r, r->root, LINK_NS_STATUS, "status");
    for (size_t i = 0; i < n; i++) {
        char v[24];
        snprintf(v, sizeof v, "%" PRIu64, counts[i].value);
        xml_node_t *c = xml_node_add_element(r, s, LINK_NS_STATUS, "count");
        xml_node_set_attr(r, c, NULL, "name", counts[i].name);
        xml_node_set_attr(r, c, NULL, "value", v);
    }
    return r;
}
