/* SPDX-License-Identifier: MIT */
/* The sm's counts for a control component's status query (docs/link-protocol.md, "Status"). */
#include "sm/internal.h"

typedef struct online {
    uint64_t users; /* with at least one session */
    uint64_t available; /* sessions that sent initial presence (RFC 6121 §4.2) */
} online_t;

static void count_user(void *ud, const char *key, void *v)
{
    online_t *o = ud;
    const sm_user_t *u = v;
    if (u->sessions != NULL)
        o->users++;
    for (const sm_sess_t *s = u->sessions; s != NULL; s = s->next)
        o->available += s->available;
}

static xml_handler_result_t on_status(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    /* Only the domain answers; to an account it is an IQ like any other (service-unavailable). */
    if (jid_has_node(&pkt->to))
        return XMLS_PASS;
    online_t o = {0};
    core_map_each(&sm->users, count_user, &o);
    uint64_t in = 0, out = 0;
    if (sm->link != NULL)
        link_endpoint_counts(sm->link, &in, &out);
    const link_status_count_t counts[] = {
        {"sessions", sm->sessions.count},
        {"sessions-available", o.available},
        {"users-online", o.users},
        {"users-loaded", sm->users.count},
        {"offline-stored", sm->stats.offline_stored},
        {"stanzas-in", in},
        {"stanzas-out", out},
    };
    xml_stanza_t *r =
        link_status_reply(sm->opener, pkt->st, counts, sizeof(counts) / sizeof(counts[0]));
    sm_route(sm, r);
    xml_stanza_unref(r);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET,
                           .payload_ns = LINK_NS_STATUS,
                           .payload_name = "status"};
    return sm_handler_add(sm, SM_CHAIN_TO_SERVER, &m, on_status, NULL);
}

/* No disco feature: the query is for Parley's own control components, not for clients. */
const sm_module_t sm_module_status = {
    .name = "status",
    .api = SM_MODULE_API,
    .init = init,
};
