/* SPDX-License-Identifier: MIT */
/* Messages to the room itself: mediated invitations and their declines (XEP-0045 §7.8.2). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <string.h>

/* Invitations in one message: a bound on the messages one stanza makes the room send. */
#define INVITES_MAX 16

static void add_reason(xml_stanza_t *m, xml_node_t *parent, const char *reason, size_t len)
{
    xml_node_t *r = xml_node_add_element(m, parent, MUC_NS_USER, "reason");
    xml_node_add_text(m, r, reason, len);
}

static xml_stanza_t *room_message(muc_room_t *room, const char *to, const char *id)
{
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(m, m->root, NULL, "from", room->jid);
    xml_node_set_attr(m, m->root, NULL, "to", to);
    char fresh[33];
    if (id == NULL) {
        muc_id_new(room->muc, fresh);
        id = fresh;
    }
    xml_node_set_attr(m, m->root, NULL, "id", id);
    return m;
}

void muc_invite_send(muc_room_t *room, const char *to, const char *from, const char *reason,
                     const char *id)
{
    xml_stanza_t *m = room_message(room, to, id);
    xml_node_t *x = xml_node_add_element(m, m->root, MUC_NS_USER, "x");
    xml_node_t *inv = xml_node_add_element(m, x, MUC_NS_USER, "invite");
    xml_node_set_attr(m, inv, NULL, "from", from);
    if (reason != NULL)
        add_reason(m, inv, reason, strlen(reason));
    /* §7.8.2: "the room SHOULD add the password if the room is password-protected". */
    if (room->cfg.password_protected && room->cfg.password[0] != '\0') {
        xml_node_t *pw = xml_node_add_element(m, x, MUC_NS_USER, "password");
        xml_node_add_text(m, pw, room->cfg.password, strlen(room->cfg.password));
    }
    muc_send(room->muc, m);
    xml_stanza_unref(m);
}

/* The 'to' of an <invite/> or <decline/>, prepared (cleared by the caller). */
static bool target_of(muc_t *muc, const xml_node_t *el, jid_t *out)
{
    const char *to = xml_node_attr(el, "to");
    return to != NULL && jid_parse(muc->jids, to, strlen(to), out) == 0;
}

static char *reason_of(const xml_node_t *el)
{
    const xml_node_t *r = xml_node_child(el, MUC_NS_USER, "reason");
    size_t len;
    const char *text = r != NULL ? xml_node_text(r, &len) : NULL;
    return text != NULL ? core_strndup(text, len) : NULL;
}

static void invite(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *from,
                   const xml_node_t *x)
{
    muc_t *muc = room->muc;
    muc_actor_t actor;
    muc_admin_actor(room, from, &actor);
    core_stanza_err_t why;
    muc_role_t role = o != NULL ? o->role : MUC_ROLE_NONE;
    if (!muc_rules_invite(actor.affil, role, &room->cfg, &why)) {
        muc_reply_error(muc, st, why, NULL, room->jid);
        return;
    }
    size_t n = 0;
    bool ok = true;
    for (const xml_node_t *el = xml_node_child(x, MUC_NS_USER, "invite"); el != NULL && ok;
         el = xml_node_next_element(el)) {
        jid_t to;
        if (!xml_node_is(el, MUC_NS_USER, "invite"))
            continue;
        ok = target_of(muc, el, &to) && ++n <= INVITES_MAX;
        if (ok)
            jid_clear(&to);
    }
    if (!ok) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_JID_MALFORMED, NULL, room->jid);
        return;
    }
    char *inviter = core_strndup(from->full, from->bare_len);
    const char *actor_nick = o != NULL ? o->nick : NULL;
    for (const xml_node_t *el = xml_node_child(x, MUC_NS_USER, "invite"); el != NULL;
         el = xml_node_next_element(el)) {
        jid_t to;
        if (!xml_node_is(el, MUC_NS_USER, "invite") || !target_of(muc, el, &to))
            continue;
        /* §9.5: in a members-only room an allowed invitation makes the invitee a member, so
         * that it can enter (never from an outcast: that is a ban to lift first). */
        char *bare = core_strndup(to.full, to.bare_len);
        if (room->cfg.members_only && muc_room_affil(room, to.full, to.bare_len) == MUC_AFFIL_NONE)
            muc_admin_affil_apply(room, bare, MUC_AFFIL_MEMBER, NULL, actor_nick, NULL);
        core_free(bare);
        char *reason = reason_of(el);
        muc_invite_send(room, to.full, inviter, reason, xml_stanza_id(st));
        core_log(muc->log, CORE_LOG_DEBUG, 0, "%s: %s invited %s", room->jid, inviter, to.full);
        core_free(reason);
        jid_clear(&to);
    }
    core_free(inviter);
    muc_room_save(room); /* new members of a members-only room */
}

/* §7.8.2: the invitee's "no", passed to the inviter from the room, naming the invitee. */
static void decline(muc_room_t *room, xml_stanza_t *st, const jid_t *from, const xml_node_t *el)
{
    muc_t *muc = room->muc;
    jid_t to;
    if (!target_of(muc, el, &to)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_JID_MALFORMED, NULL, room->jid);
        return;
    }
    xml_stanza_t *m = room_message(room, to.full, xml_stanza_id(st));
    xml_node_t *x = xml_node_add_element(m, m->root, MUC_NS_USER, "x");
    xml_node_t *d = xml_node_add_element(m, x, MUC_NS_USER, "decline");
    char *bare = core_strndup(from->full, from->bare_len);
    xml_node_set_attr(m, d, NULL, "from", bare);
    core_free(bare);
    char *reason = reason_of(el);
    if (reason != NULL)
        add_reason(m, d, reason, strlen(reason));
    core_free(reason);
    muc_send(muc, m);
    xml_stanza_unref(m);
    jid_clear(&to);
}

void muc_invite_input(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *from)
{
    const xml_node_t *x = xml_node_child(st->root, MUC_NS_USER, "x");
    const xml_node_t *d = x != NULL ? xml_node_child(x, MUC_NS_USER, "decline") : NULL;
    if (x != NULL && xml_node_child(x, MUC_NS_USER, "invite") != NULL)
        invite(room, o, st, from, x);
    else if (d != NULL)
        decline(room, st, from, d);
    else if (!muc_voice_input(room, o, st, from))
        /* §17.1: a service may reject messages that are improperly typed. */
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
}
