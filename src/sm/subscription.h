#include "storage/storage.h"
#include <stdbool.h>
typedef struct sm_sub_state {
    bool in_roster;
    storage_sub_t sub;
    bool pending_out;
    bool pending_in;
    bool approved;
} sm_sub_state_t;
typedef enum sm_sub_event {
    SM_SUB_OUT_SUBSCRIBE,
    SM_SUB_OUT_SUBSCRIBED,
    SM_SUB_OUT_UNSUBSCRIBE,
    SM_SUB_OUT_UNSUBSCRIBED,
    SM_SUB_IN_SUBSCRIBE,
    SM_SUB_IN_SUBSCRIBED,
    SM_SUB_IN_UNSUBSCRIBE,
    SM_SUB_IN_UNSUBSCRIBED
} sm_sub_event_t;
typedef struct sm_sub_outcome {
    sm_sub_state_t next;
    bool roster_changed;
    bool pending_in_changed;
    bool route;
    bool auto_reply_subscribed;
    bool send_available;
    bool send_unavailable;
} sm_sub_outcome_t;
void sm_sub_apply(const sm_sub_state_t *cur, sm_sub_event_t ev, sm_sub_outcome_t *out);
bool sm_sub_has_from(storage_sub_t s);
bool sm_sub_has_to(storage_sub_t s);
