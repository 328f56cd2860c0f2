/* SPDX-License-Identifier: MIT */
/* Registering with a room (XEP-0045 §7.10) and the nicks it reserves (§7.12, §9.3). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

#define MUC_NS_REGISTER "jabber:iq:register"
#define MUC_NS_REGISTER_FORM "http://jabber.org/protocol/muc#register"
#define MUC_NODE_ROOMUSER "x-roomuser-item"

/* ---- reserved nicks ---- */

int muc_register_nick_prep(muc_t *muc, const char *nick, size_t len, char **out,
                           char fold[MUC_NICK_FOLD_MAX + 1])
{
    /* Resourceprep through the JID library: the nick as the resource of an occupant JID. */
    const char *svc = muc->cfg->name;
    size_t sl = strlen(svc);
    if (len == 0 || len > JID_PART_MAX)
        return -EINVAL;
    char *s = core_malloc(2 + sl + 1 + len + 1);
    memcpy(s, "x@", 2);
    memcpy(s + 2, svc, sl);
    s[2 + sl] = '/';
    memcpy(s + 3 + sl, nick, len);
    s[3 + sl + len] = '\0';
    jid_t j;
    int rc = jid_parse(muc->jids, s, 3 + sl + len, &j);
    core_free(s);
    if (rc < 0)
        return -EINVAL;
    const char *res = j.full + j.bare_len + 1;
    size_t flen;
    rc = -EINVAL;
    if (muc_nick_valid(res, j.res_len) && muc_nick_fold(res, j.res_len, fold, &flen) == 0) {
        *out = core_strndup(res, j.res_len);
        rc = 0;
    }
    jid_clear(&j);
    return rc;
}

int muc_register_nick_set(muc_room_t *room, const char *bare, const char *nick)
{
    muc_affiliation_t *a = core_map_get(&room->affils, bare, strlen(bare));
    bool none = nick == NULL || nick[0] == '\0';
    if (a == NULL)
        return none ? 0 : -ENOENT;
    char fold[MUC_NICK_FOLD_MAX + 1];
    size_t flen;
    if (!none && muc_nick_fold(nick, strlen(nick), fold, &flen) < 0)
        return -EINVAL;
    core_free(a->nick);
    core_free(a->nick_fold);
    a->nick = none ? NULL : core_strdup(nick);
    a->nick_fold = none ? NULL : core_strndup(fold, flen);
    room->dirty = true;
    return 0;
}

typedef struct taken_ctx {
    const char *fold;
    const char *bare;
    size_t len;
    bool taken;
} taken_ctx_t;

static void taken_one(void *ud, muc_affiliation_t *a)
{
    taken_ctx_t *c = ud;
    if (a->nick_fold != NULL && strcmp(a->nick_fold, c->fold) == 0 &&
        !(strlen(a->jid) == c->len && memcmp(a->jid, c->bare, c->len) == 0))
        c->taken = true;
}

bool muc_register_nick_taken(const muc_room_t *room, const char *fold, const char *bare, size_t len)
{
    taken_ctx_t c = {.fold = fold, .bare = bare, .len = len};
    muc_room_affil_each(room, taken_one, &c);
    return c.taken;
}

static const char *reserved_nick(const muc_room_t *room, const jid_t *from)
{
    const muc_affiliation_t *a = core_map_get(&room->affils, from->full, from->bare_len);
    return a != NULL ? a->nick : NULL;
}

void muc_register_nick_query(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_DISCO_INFO, "query");
    xml_node_set_attr(r, q, NULL, "node", MUC_NODE_ROOMUSER);
    /* §7.12: the nick as an identity's name; no nick, an empty query. */
    const char *nick = reserved_nick(room, from);
    if (nick != NULL) {
        xml_node_t *id = xml_node_add_element(r, q, MUC_NS_DISCO_INFO, "identity");
        xml_node_set_attr(r, id, NULL, "category", "conference");
        xml_node_set_attr(r, id, NULL, "name", nick);
        xml_node_set_attr(r, id, NULL, "type", "text");
    }
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* ---- jabber:iq:register ---- */

/* §7.10: who may register: never outcasts; members may always (to change their nick). Others
 * as [muc] registration says: at once (but not in a members-only room, where membership is
 * the admins' to give, §9.3), by an admin's approval (§9.9), or not at all. */
static bool may_register(const muc_room_t *room, muc_affil_t a)
{
    if (a == MUC_AFFIL_OUTCAST)
        return false;
    if (a >= MUC_AFFIL_MEMBER)
        return true;
    switch (room->muc->cfg->registration) {
    case MUC_REG_OPEN:
        return !room->cfg.members_only;
    case MUC_REG_APPROVAL:
        return true;
    default:
        return false;
    }
}

static void send_form(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_REGISTER, "query");
    muc_affil_t a = muc_room_affil(room, from->full, from->bare_len);
    if (a >= MUC_AFFIL_MEMBER) {
        /* XEP-0077 §3.1: already registered: <registered/> and the nick. */
        xml_node_add_element(r, q, MUC_NS_REGISTER, "registered");
        const char *nick = reserved_nick(room, from);
        if (nick != NULL) {
            xml_node_t *u = xml_node_add_element(r, q, MUC_NS_REGISTER, "username");
            xml_node_add_text(r, u, nick, strlen(nick));
        }
    } else {
        xml_node_t *x = xml_node_add_element(r, q, MUC_NS_DATA, "x");
        xml_node_set_attr(r, x, NULL, "type", "form");
        xml_node_t *t = xml_node_add_element(r, x, MUC_NS_DATA, "title");
        xml_node_add_text(r, t, room->jid, strlen(room->jid));
        xml_node_t *in = xml_node_add_element(r, x, MUC_NS_DATA, "instructions");
        static const char text[] = "Choose the nickname to reserve in this room.";
        static const char asked[] = "Choose the nickname to reserve in this room. The room's "
                                    "admins will be asked to approve your registration.";
        if (muc->cfg->registration == MUC_REG_APPROVAL)
            xml_node_add_text(r, in, asked, sizeof asked - 1);
        else
            xml_node_add_text(r, in, text, sizeof text - 1);
        muc_form_field(r, x, "FORM_TYPE", "hidden", NULL, MUC_NS_REGISTER_FORM);
        xml_node_t *f =
            muc_form_field(r, x, "muc#register_roomnick", "text-single", "Desired Nickname", NULL);
        xml_node_add_element(r, f, MUC_NS_DATA, "required");
    }
    muc_send(muc, r);
    xml_stanza_unref(r);
}

typedef struct nick_user {
    const char *fold;
    const char *bare;
    size_t len;
    bool other;
} nick_user_t;

static void nick_user_one(void *ud, const char *key, void *v)
{
    nick_user_t *c = ud;
    const muc_occupant_t *o = v;
    if (strcmp(o->fold, c->fold) == 0 &&
        !(o->jid.bare_len == c->len && memcmp(o->jid.full, c->bare, c->len) == 0))
        c->other = true;
}

/* §7.10: "If the desired room nickname is already reserved for that room ... conflict"; one
 * someone else is using now is not ours to give either. */
bool muc_register_nick_free(const muc_room_t *room, const char *fold, const char *bare, size_t len)
{
    if (muc_register_nick_taken(room, fold, bare, len))
        return false;
    nick_user_t c = {.fold = fold, .bare = bare, .len = len};
    core_map_each(&room->by_nick, nick_user_one, &c);
    return !c.other;
}

static void submit(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from,
                   const xml_node_t *x)
{
    size_t len;
    const char *nick = muc_form_value(x, "muc#register_roomnick", &len);
    if (!muc_form_is(x, MUC_NS_REGISTER_FORM) || nick == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
        return;
    }
    char *prepared = NULL;
    char fold[MUC_NICK_FOLD_MAX + 1];
    if (muc_register_nick_prep(muc, nick, len, &prepared, fold) < 0) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room->jid); /* §15.1 */
        return;
    }
    if (!muc_register_nick_free(room, fold, from->full, from->bare_len)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_CONFLICT, NULL, room->jid);
        core_free(prepared);
        return;
    }
    char *bare = core_strndup(from->full, from->bare_len);
    int rc = 0;
    if (muc_room_affil(room, bare, from->bare_len) >= MUC_AFFIL_MEMBER ||
        muc->cfg->registration != MUC_REG_APPROVAL)
        muc_register_apply(room, bare, prepared);
    else
        rc = muc_regapprove_request(room, bare, prepared, x); /* §9.9 */
    if (rc == -ENOSPC) /* a bound of ours, not the requester's fault: wait (RFC 6120 §8.3.3.18) */
        muc_reply_error(muc, st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT, "wait", room->jid);
    else if (rc < 0)
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room->jid);
    else {
        /* §7.10: "the room MUST inform the user that the registration request was
         * successfully received": the same empty result, approved yet or not. */
        xml_stanza_t *r = xml_stanza_iq_result(st);
        muc_send(muc, r);
        xml_stanza_unref(r);
    }
    core_free(bare);
    core_free(prepared);
}

void muc_register_apply(muc_room_t *room, const char *bare, const char *nick)
{
    size_t len = strlen(bare);
    /* §7.10: registering makes a member at once, and those in the room see it. */
    bool gone = false;
    if (muc_room_affil(room, bare, len) < MUC_AFFIL_MEMBER)
        gone = muc_admin_affil_apply(room, bare, MUC_AFFIL_MEMBER, NULL, NULL, NULL);
    if (!gone) {
        muc_register_nick_set(room, bare, nick);
        muc_room_save(room);
    }
    core_log(room->muc->log, CORE_LOG_INFO, 0, "%s: %s registered as %s", room->jid, bare, nick);
}

/* XEP-0077 §3.2: <remove/>: a member leaves the member list (and a members-only room, 321). */
static void unregister(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    muc_affil_t a = muc_room_affil(room, from->full, from->bare_len);
    if (a != MUC_AFFIL_MEMBER) {
        muc_reply_error(muc, st,
                        a == MUC_AFFIL_NONE ? CORE_STANZA_ERR_ITEM_NOT_FOUND
                                            : CORE_STANZA_ERR_NOT_ALLOWED,
                        NULL, room->jid);
        return;
    }
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
    char *bare = core_strndup(from->full, from->bare_len);
    if (!muc_admin_affil_apply(room, bare, MUC_AFFIL_NONE, NULL, NULL, NULL))
        muc_room_save(room);
    core_free(bare);
}

void muc_register_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    const xml_node_t *q = xml_node_first_element(st->root);
    const char *type = xml_stanza_type(st);
    bool set = strcmp(type, "set") == 0;
    if (set && xml_node_child(q, MUC_NS_REGISTER, "remove") != NULL) {
        unregister(muc, st, room, from);
        return;
    }
    if (!may_register(room, muc_room_affil(room, from->full, from->bare_len))) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ALLOWED, NULL, room->jid); /* §7.10 */
        return;
    }
    if (!set) {
        send_form(muc, st, room, from);
        return;
    }
    const xml_node_t *x = xml_node_child(q, MUC_NS_DATA, "x");
    const char *xtype = x != NULL ? xml_node_attr(x, "type") : NULL;
    if (xtype != NULL && strcmp(xtype, "cancel") == 0) {
        xml_stanza_t *r = xml_stanza_iq_result(st);
        muc_send(muc, r);
        xml_stanza_unref(r);
    } else if (xtype != NULL && strcmp(xtype, "submit") == 0) {
        submit(muc, st, room, from, x);
    } else {
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid); /* §7.10 */
    }
}
