/* SPDX-License-Identifier: MIT */
/* The c2s's counts for a control component's status query (docs/link-protocol.md, "Status"). */
#include "c2s/internal.h"

#include <string.h>

bool c2s_status_input(c2s_t *c2s, xml_stanza_t *st)
{
    if (!link_status_is_query(st))
        return false;
    const char *to = xml_stanza_to(st);
    if (to == NULL || strcmp(to, c2s->cfg->name) != 0)
        return false; /* to a session's JID: nothing we answer for */
    uint64_t conns = 0, authed = 0, bound = 0, tls = 0, smgmt = 0;
    for (const c2s_conn_t *c = c2s->conns; c != NULL; c = c->next) {
        conns++;
        authed += c->state >= C2S_ST_AUTHED;
        bound += c->state == C2S_ST_ACTIVE;
        tls += c->tls;
        smgmt += c->smgmt != NULL;
    }
    uint64_t in = 0, out = 0;
    if (c2s->link != NULL)
        link_endpoint_counts(c2s->link, &in, &out);
    const link_status_count_t counts[] = {
        {"connections", conns},
        {"authenticated", authed},
        {"bound", bound},
        {"tls", tls},
        {"stream-management", smgmt},
        /* XEP-0198 sessions without a connection: waiting to be resumed, or ending. */
        {"stream-management-waiting", c2s->sm_records.count},
        {"stanzas-in", in},
        {"stanzas-out", out},
    };
    xml_stanza_t *r =
        link_status_reply(c2s->opener, st, counts, sizeof(counts) / sizeof(counts[0]));
    if (r != NULL && c2s->link != NULL)
        link_endpoint_send(c2s->link, r);
    xml_stanza_unref(r);
    return true;
}
