/* SPDX-License-Identifier: MIT */
/* Messages to the room itself: mediated invitations and their declines (XEP-0045 §7.8.2). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <stddef.h>
#include <string.h>

/* Invitations in one message: a bound on the messages one stanza makes the room send. */
#define INVITES_MAX 16
/* Pending invitations a room remembers for declines; the oldest are forgotten first. */
#define INVITATIONS_KEPT 64

/* An invitation the room sent: who may decline it, to whom the decline goes (bare JIDs). */
typedef struct muc_invitation {
    char *invitee;
    char *inviter;
} muc_invitation_t;

void muc_invitations_clear(muc_room_t *room)
{
    for (size_t i = 0; i < room->ninvitations; i++) {
        core_free(room->invitations[i].invitee);
        core_free(room->invitations[i].inviter);
    }
    core_free(room->invitations);
    room->invitations = NULL;
    room->ninvitations = 0;
}

static void invitation_forget(muc_room_t *room, size_t i)
{
    core_free(room->invitations[i].invitee);
    core_free(room->invitations[i].inviter);
    memmove(&room->invitations[i], &room->invitations[i + 1],
            (room->ninvitations - i - 1) * sizeof(*room->invitations));
    room->ninvitations--;
}

static void invitation_remember(muc_room_t *room, const char *invitee, size_t len,
                                const char *inviter)
{
    if (room->invitations == NULL)
        room->invitations = core_malloc(INVITATIONS_KEPT * sizeof(*room->invitations));
    if (room->ninvitations == INVITATIONS_KEPT)
        invitation_forget(room, 0);
    room->invitations[room->ninvitations++] =
        (muc_invitation_t){.invitee = core_strndup(invitee, len), .inviter = core_strdup(inviter)};
}

/* The pending invitation of invitee by inviter (bare JIDs), or -1. */
static ptrdiff_t invitation_find(const muc_room_t *room, const char *invitee, size_t ilen,
                                 const char *inviter, size_t rlen)
{
    for (size_t i = room->ninvitations; i-- > 0;) {
        const muc_invitation_t *v = &room->invitations[i];
        if (strlen(v->invitee) == ilen && memcmp(v->invitee, invitee, ilen) == 0 &&
            strlen(v->inviter) == rlen && memcmp(v->inviter, inviter, rlen) == 0)
            return (ptrdiff_t)i;
    }
    return -1;
}

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
        invitation_remember(room, to.full, to.bare_len, inviter);
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
    /* Only the answer to an invitation goes back, once: the room is no relay to anyone. */
    ptrdiff_t i = invitation_find(room, from->full, from->bare_len, to.full, to.bare_len);
    if (i < 0) {
        core_log(muc->log, CORE_LOG_DEBUG, 0,
                 "%s: decline from %s to %s without an invitation: "
                 "dropped",
                 room->jid, from->full, to.full);
        jid_clear(&to);
        return;
    }
    invitation_forget(room, (size_t)i);
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
    else if (!muc_voice_input(room, o, st, from) && !muc_regapprove_input(room, st, from))
        /* §17.1: a service may reject messages that are improperly typed. */
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
}
