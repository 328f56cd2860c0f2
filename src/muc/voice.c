/* SPDX-License-Identifier: MIT */
/* Voice requests (XEP-0045 §7.13) and their approval by a moderator (§8.6), as muc#request forms.
 */
#include "muc/internal.h"

#include "core/alloc.h"

#include <string.h>

#define MUC_NS_REQUEST "http://jabber.org/protocol/muc#request"

typedef struct ask_ctx {
    muc_occupant_t *who;
} ask_ctx_t;

/* §8.6: the approval form, sent to each moderator from the room. */
static void ask_one(void *ud, const char *key, void *v)
{
    ask_ctx_t *c = ud;
    muc_occupant_t *mod = v;
    if (mod->role != MUC_ROLE_MODERATOR)
        return;
    muc_room_t *room = mod->room;
    xml_node_t *x;
    xml_stanza_t *m = muc_form_message(room, "Voice request",
                                       "To grant voice to this person, set \"Grant voice to "
                                       "this person?\" and submit the form.",
                                       &x);
    muc_form_field(m, x, "FORM_TYPE", "hidden", NULL, MUC_NS_REQUEST);
    muc_form_field(m, x, "muc#role", "list-single", "Requested role", "participant");
    /* Moderators see real JIDs in any room (§7.2.4). */
    muc_form_field(m, x, "muc#jid", "jid-single", "User ID", c->who->jid.full);
    muc_form_field(m, x, "muc#roomnick", "text-single", "Room Nickname", c->who->nick);
    muc_form_field(m, x, "muc#request_allow", "boolean", "Grant voice to this person?", "false");
    muc_occupant_send(mod, m);
    xml_stanza_unref(m);
}

/* §7.13: a visitor asks; the moderators are asked. */
static void request(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const xml_node_t *x)
{
    size_t len;
    const char *role = muc_form_value(x, "muc#role", &len);
    if (o == NULL) {
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room->jid); /* §7.4 */
        return;
    }
    if (role == NULL || len != strlen("participant") || memcmp(role, "participant", len) != 0) {
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
        return;
    }
    /* Only a visitor lacks voice; anyone else's request asks for nothing. */
    if (o->role != MUC_ROLE_VISITOR)
        return;
    /* Every request is a message to every moderator: one per interval, so that a visitor
     * cannot flood them ([muc] voice_request_interval). */
    uint64_t now = uv_now(room->muc->loop);
    uint64_t every = room->muc->cfg->voice_request_interval;
    if (o->voice_asked_ms != 0 && now - o->voice_asked_ms < every) {
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT, NULL, room->jid);
        return;
    }
    o->voice_asked_ms = now != 0 ? now : 1;
    core_log(room->muc->log, CORE_LOG_DEBUG, 0, "%s: %s asks for voice", room->jid, o->nick);
    ask_ctx_t c = {.who = o};
    core_map_each(&room->by_nick, ask_one, &c);
}

/* §8.6: a moderator submits the approval form. */
static void approve(muc_room_t *room, xml_stanza_t *st, const jid_t *from, const xml_node_t *x)
{
    muc_t *muc = room->muc;
    size_t alen, nlen;
    const char *allow = muc_form_value(x, "muc#request_allow", &alen);
    const char *nick = muc_form_value(x, "muc#roomnick", &nlen);
    bool yes = false;
    if (allow == NULL || muc_form_bool(allow, alen, &yes) < 0 || nick == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
        return;
    }
    if (!yes)
        return; /* not approved: nothing happens */
    muc_actor_t actor;
    muc_admin_actor(room, from, &actor);
    muc_occupant_t *o = muc_occupant_by_nick(room, nick, nlen);
    if (o == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, room->jid); /* gone */
        return;
    }
    core_stanza_err_t why;
    if (o->role != MUC_ROLE_VISITOR)
        return; /* voiced meanwhile */
    if (!muc_rules_role_change(actor.affil, actor.role, muc_occupant_affil(o), o->role,
                               MUC_ROLE_PARTICIPANT, jid_bare_equal(&o->jid, from), &why)) {
        muc_reply_error(muc, st, why, NULL, room->jid);
        return;
    }
    core_log(muc->log, CORE_LOG_INFO, 0, "%s: %s granted voice to %s", room->jid, from->full,
             o->nick);
    if (!muc_admin_role_apply(o, MUC_ROLE_PARTICIPANT, NULL, NULL))
        muc_room_save(room); /* a voice kept across visits is the room's state (§5.1) */
}

bool muc_voice_input(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *from)
{
    const xml_node_t *x = xml_node_child(st->root, MUC_NS_DATA, "x");
    if (x == NULL || !muc_form_is(x, MUC_NS_REQUEST))
        return false;
    const char *type = xml_node_attr(x, "type");
    if (type == NULL || strcmp(type, "submit") != 0)
        return true; /* a cancelled approval form: nothing to do */
    /* The approval carries the requester's nick; the request only the role (§7.13, §8.6). */
    size_t len;
    if (muc_form_value(x, "muc#request_allow", &len) != NULL)
        approve(room, st, from, x);
    else
        request(room, o, st, x);
    return true;
}
