/* SPDX-License-Identifier: MIT */
/* The RFC 6121 §3 subscription state machine: pure, so every row of its tables is tested. */
#ifndef PARLEY_SM_SUBSCRIPTION_H
#define PARLEY_SM_SUBSCRIPTION_H

#include "storage/storage.h"

#include <stdbool.h>

/* What the user's server knows about one contact (RFC 6121 Appendix A.1). */
typedef struct sm_sub_state {
    bool in_roster; /* the user has a roster item for the contact */
    storage_sub_t sub; /* none/to/from/both (with in_roster) */
    bool pending_out; /* ask='subscribe': the user asked the contact, no answer yet */
    bool pending_in; /* the contact asked the user, not yet answered (kept without an item) */
    bool approved; /* §3.4 pre-approval (with in_roster) */
} sm_sub_state_t;

typedef enum sm_sub_event {
    /* the user (one of its sessions) sends to the contact */
    SM_SUB_OUT_SUBSCRIBE,
    SM_SUB_OUT_SUBSCRIBED,
    SM_SUB_OUT_UNSUBSCRIBE,
    SM_SUB_OUT_UNSUBSCRIBED,
    /* the contact sends to the user */
    SM_SUB_IN_SUBSCRIBE,
    SM_SUB_IN_SUBSCRIBED,
    SM_SUB_IN_UNSUBSCRIBE,
    SM_SUB_IN_UNSUBSCRIBED,
} sm_sub_event_t;

typedef struct sm_sub_outcome {
    sm_sub_state_t next;
    bool roster_changed; /* the item changed: store it and push it (§2.1.6) */
    bool pending_in_changed; /* pending_in flipped: keep or forget the stored request */
    /* OUT_*: route the stanza to the contact (stamped with the user's bare JID).
     * IN_*: deliver it to the user's available resources. */
    bool route;
    bool auto_reply_subscribed; /* IN_SUBSCRIBE answered for the user (§3.1.3, §3.4) */
    bool send_available; /* the contact now gets the user's presence (§3.1.5, §3.4) */
    bool send_unavailable; /* the contact no longer does: it gets unavailable (§3.2.2) */
} sm_sub_outcome_t;

/* The outcome of ev in state cur (Appendix A.2 and A.3, with §3.4 pre-approval). */
void sm_sub_apply(const sm_sub_state_t *cur, sm_sub_event_t ev, sm_sub_outcome_t *out);

/* The contact may see the user's presence / the user sees the contact's. */
bool sm_sub_has_from(storage_sub_t s);
bool sm_sub_has_to(storage_sub_t s);

#endif
