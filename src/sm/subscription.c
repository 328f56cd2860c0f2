/* SPDX-License-Identifier: MIT */
/* RFC 6121 §3 and Appendix A: the subscription state machine (tables in test_subscription.c). */
#include "sm/subscription.h"

bool sm_sub_has_from(storage_sub_t s)
{
    return s == STORAGE_SUB_FROM || s == STORAGE_SUB_BOTH;
}

bool sm_sub_has_to(storage_sub_t s)
{
    return s == STORAGE_SUB_TO || s == STORAGE_SUB_BOTH;
}

static storage_sub_t with(storage_sub_t s, bool to, bool from)
{
    return (storage_sub_t)((to ? STORAGE_SUB_TO : 0) | (from ? STORAGE_SUB_FROM : 0));
}

void sm_sub_apply(const sm_sub_state_t *cur, sm_sub_event_t ev, sm_sub_outcome_t *o)
{
    *o = (sm_sub_outcome_t){.next = *cur};
    sm_sub_state_t *n = &o->next;
    bool to = cur->in_roster && sm_sub_has_to(cur->sub);
    bool from = cur->in_roster && sm_sub_has_from(cur->sub);
    switch (ev) {
    case SM_SUB_OUT_SUBSCRIBE: /* §3.1.2, A.2.1: always routed; the item is created */
        o->route = true;
        if (!n->in_roster) {
            n->in_roster = true;
            n->sub = STORAGE_SUB_NONE;
        }
        if (!to)
            n->pending_out = true;
        break;
    case SM_SUB_OUT_SUBSCRIBED: /* §3.1.5, A.2.3; without a request, §3.4 pre-approval */
        if (cur->pending_in) {
            n->pending_in = false;
            o->pending_in_changed = true;
            if (!n->in_roster) {
                n->in_roster = true;
                n->sub = STORAGE_SUB_NONE;
            }
            n->sub = with(n->sub, to, true);
            n->approved = false;
            o->route = true;
            o->send_available = true;
        } else if (!from && !cur->approved) {
            if (!n->in_roster) {
                n->in_roster = true;
                n->sub = STORAGE_SUB_NONE;
            }
            n->approved = true;
        }
        break;
    case SM_SUB_OUT_UNSUBSCRIBE: /* §3.3.2, A.2.2 */
        o->route = true;
        if (n->in_roster) {
            n->sub = with(n->sub, false, from);
            n->pending_out = false;
        }
        break;
    case SM_SUB_OUT_UNSUBSCRIBED: /* §3.2.2, A.2.4: denies a request, cancels a subscription */
        if (cur->pending_in) {
            n->pending_in = false;
            o->pending_in_changed = true;
            o->route = true;
        }
        if (from) {
            n->sub = with(n->sub, to, false);
            o->route = true;
            o->send_unavailable = true;
        }
        if (n->in_roster)
            n->approved = false;
        break;
    case SM_SUB_IN_SUBSCRIBE: /* §3.1.3, A.3.1: no item is created for a stranger */
        if (from) {
            o->auto_reply_subscribed = true;
        } else if (cur->in_roster && cur->approved) {
            n->sub = with(n->sub, to, true);
            n->approved = false;
            o->auto_reply_subscribed = true;
            o->send_available = true;
        } else if (!cur->pending_in) {
            n->pending_in = true;
            o->pending_in_changed = true;
            o->route = true;
        }
        break;
    case SM_SUB_IN_SUBSCRIBED: /* §3.1.6, A.3.3: only an answer to our request counts */
        if (cur->in_roster && cur->pending_out) {
            n->sub = with(n->sub, true, from);
            n->pending_out = false;
            o->route = true;
        }
        break;
    case SM_SUB_IN_UNSUBSCRIBE: /* §3.3.3, A.3.2 */
        if (cur->pending_in) {
            n->pending_in = false;
            o->pending_in_changed = true;
            o->route = true;
        }
        if (from) {
            n->sub = with(n->sub, to, false);
            o->route = true;
        }
        break;
    case SM_SUB_IN_UNSUBSCRIBED: /* §3.2.3, A.3.4 */
        if (to || (cur->in_roster && cur->pending_out)) {
            n->sub = with(n->sub, false, from);
            n->pending_out = false;
            o->route = true;
        }
        break;
    }
    o->roster_changed = n->in_roster != cur->in_roster || n->sub != cur->sub ||
        n->pending_out != cur->pending_out || n->approved != cur->approved;
}
