/* SPDX-License-Identifier: MIT */
/* Moderator, admin and owner requests that change roles, affiliations or the room's existence. */
#include "muc/internal.h"

/*
 * Kicks, bans, voice, the role and affiliation lists (XEP-0045 §8, §9) and room destruction
 * (§10.9) come next; until then they are refused as not implemented, which is what a client
 * expects of a service without them (RFC 6120 §8.3.3.3).
 */
void muc_admin_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    (void)from;
    muc_reply_error(muc, st, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, NULL, room->jid);
}

void muc_owner_destroy(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const xml_node_t *destroy)
{
    (void)destroy;
    muc_reply_error(muc, st, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, NULL, room->jid);
}
