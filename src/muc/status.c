/* SPDX-License-Identifier: MIT */
/* The muc's counts for a control component's status query (docs/link-protocol.md, "Status"). */
#include "muc/internal.h"

typedef struct room_counts {
    uint64_t occupants;
    uint64_t persistent;
    uint64_t locked;
} room_counts_t;

static void count_room(void *ud, const char *key, void *v)
{
    room_counts_t *c = ud;
    const muc_room_t *room = v;
    c->occupants += room->noccupants;
    c->persistent += room->cfg.persistent;
    c->locked += room->locked;
}

void muc_status_answer(muc_t *muc, const xml_stanza_t *st)
{
    room_counts_t c = {0};
    core_map_each(&muc->rooms, count_room, &c);
    uint64_t in = 0, out = 0;
    if (muc->link != NULL)
        link_endpoint_counts(muc->link, &in, &out);
    const link_status_count_t counts[] = {
        {"rooms", muc->nrooms},     {"rooms-persistent", c.persistent},
        {"rooms-locked", c.locked}, {"occupants", c.occupants},
        {"stanzas-in", in},         {"stanzas-out", out},
    };
    xml_stanza_t *r =
        link_status_reply(muc->opener, st, counts, sizeof(counts) / sizeof(counts[0]));
    muc_send(muc, r);
    xml_stanza_unref(r);
}
