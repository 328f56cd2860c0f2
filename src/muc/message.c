/* SPDX-License-Identifier: MIT */
/* Messages: groupchat fan-out with stanza-ids, private messages, the subject, the history. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <stdio.h>
#include <string.h>

/* ---- fan-out ---- */

typedef struct fanout {
    muc_t *muc;
    xml_stanza_t *base;
} fanout_t;

static void fanout_one(void *ud, const char *key, void *v)
{
    fanout_t *f = ud;
    muc_occupant_send(v, f->base);
}

/* Sends base (addressed from the room or an occupant, no 'to') to every session of every
 * occupant. */
static void fanout(muc_room_t *room, xml_stanza_t *base)
{
    fanout_t f = {.muc = room->muc, .base = base};
    core_map_each(&room->by_nick, fanout_one, &f);
}

void muc_message_room_status(muc_room_t *room, const int *codes, size_t ncodes)
{
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(m, m->root, NULL, "from", room->jid);
    xml_node_set_attr(m, m->root, NULL, "type", "groupchat");
    char id[33];
    muc_id_new(room->muc, id);
    xml_node_set_attr(m, m->root, NULL, "id", id);
    xml_node_t *x = xml_node_add_element(m, m->root, MUC_NS_USER, "x");
    for (size_t i = 0; i < ncodes; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", codes[i]);
        xml_node_t *s = xml_node_add_element(m, x, MUC_NS_USER, "status");
        xml_node_set_attr(m, s, NULL, "code", buf);
    }
    fanout(room, m);
    xml_stanza_unref(m);
}

/* ---- what a joining occupant gets ---- */

static void add_delay(xml_stanza_t *st, const char *from, int64_t stamp)
{
    char ts[21];
    muc_time_format(stamp, ts);
    xml_node_t *d = xml_node_add_element(st, st->root, MUC_NS_DELAY, "delay");
    xml_node_set_attr(st, d, NULL, "from", from);
    xml_node_set_attr(st, d, NULL, "stamp", ts);
}

void muc_message_history_send(muc_room_t *room, const char *to, const muc_hist_request_t *req)
{
    const muc_history_t *h = &room->history;
    size_t i = muc_history_select(h, req, room->cfg.history_length, muc_now());
    for (; i < h->len; i++) {
        const muc_hist_entry_t *e = muc_history_at(h, i);
        /* XEP-0203 stamp from the room (§7.2.15); each joiner's copy is its own. */
        xml_stanza_t *c = xml_stanza_copy(e->st);
        xml_stanza_set_root_attr(c, "to", to);
        add_delay(c, room->jid, e->stamp);
        muc_send(room->muc, c);
        xml_stanza_unref(c);
    }
}

static xml_stanza_t *subject_message(muc_room_t *room)
{
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    if (room->subject_nick != NULL) {
        size_t rl = strlen(room->jid), nl = strlen(room->subject_nick);
        char *from = core_malloc(rl + nl + 2);
        memcpy(from, room->jid, rl);
        from[rl] = '/';
        memcpy(from + rl + 1, room->subject_nick, nl + 1);
        xml_node_set_attr(m, m->root, NULL, "from", from);
        core_free(from);
    } else {
        xml_node_set_attr(m, m->root, NULL, "from", room->jid);
    }
    xml_node_set_attr(m, m->root, NULL, "type", "groupchat");
    char id[33];
    muc_id_new(room->muc, id);
    xml_node_set_attr(m, m->root, NULL, "id", id);
    xml_node_t *s = xml_node_add_element(m, m->root, XMLS_NS_CONTENT, "subject");
    if (room->subject != NULL && room->subject[0] != '\0')
        xml_node_add_text(m, s, room->subject, strlen(room->subject));
    /* §7.2.16: stamped when it was set (or cleared); a room that never had one is not. */
    if (room->subject != NULL)
        add_delay(m, room->jid, room->subject_stamp);
    return m;
}

void muc_message_subject_send(muc_room_t *room, const char *to)
{
    xml_stanza_t *m = subject_message(room);
    xml_node_set_attr(m, m->root, NULL, "to", to);
    muc_send(room->muc, m);
    xml_stanza_unref(m);
}

/* ---- groupchat ---- */

/* XEP-0359 §3: a stanza-id by the room that the sender wrote is a forgery: removed. */
static void strip_stanza_ids(xml_stanza_t *st, const char *by)
{
    xml_node_t *n = xml_node_first_element(st->root);
    while (n != NULL) {
        xml_node_t *next = xml_node_next_element(n);
        const char *b = xml_node_attr(n, "by");
        if (xml_node_is(n, MUC_NS_SID, "stanza-id") && b != NULL && strcmp(b, by) == 0)
            xml_node_unlink(st, n);
        n = next;
    }
}

/* XEP-0359 §3: the room's own id, by the room JID. */
static void add_stanza_id(xml_stanza_t *st, const char *id, const char *by)
{
    xml_node_t *sid = xml_node_add_element(st, st->root, MUC_NS_SID, "stanza-id");
    xml_node_set_attr(st, sid, NULL, "id", id);
    xml_node_set_attr(st, sid, NULL, "by", by);
}

/* §8.1: who may change the subject. */
static bool may_set_subject(const muc_occupant_t *o)
{
    return o->role == MUC_ROLE_MODERATOR ||
        (o->room->cfg.change_subject && o->role >= MUC_ROLE_PARTICIPANT);
}

static void set_subject(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const xml_node_t *s)
{
    size_t len;
    const char *text = xml_node_text(s, &len);
    if (len > MUC_SUBJECT_MAX) {
        char *rj = room->jid;
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, rj);
        return;
    }
    core_free(room->subject);
    core_free(room->subject_nick);
    room->subject = core_strndup(text, len);
    room->subject_nick = core_strdup(o->nick);
    room->subject_stamp = muc_now();
    room->dirty = true;
    muc_room_save(room);
    /* The change goes out as the occupant sent it (§8.1), from its occupant JID. */
    xml_stanza_t *base = xml_stanza_copy(st);
    strip_stanza_ids(base, room->jid);
    char *from = muc_occupant_jid(o);
    xml_node_set_attr(base, base->root, NULL, "from", from);
    xml_node_set_attr(base, base->root, NULL, "to", NULL);
    core_free(from);
    /* XEP-0313 §6.1.2: subject changes are archived too, and then carry their archive id. */
    char aid[STORAGE_ARCHIVE_ID_LEN + 1];
    if (muc_mam_archive(room, o, base, aid))
        add_stanza_id(base, aid, room->jid);
    fanout(room, base);
    xml_stanza_unref(base);
}

static void groupchat(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st)
{
    muc_t *muc = room->muc;
    if (o == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room->jid); /* §7.4 */
        return;
    }
    if (o->role < MUC_ROLE_PARTICIPANT) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_FORBIDDEN, NULL, room->jid); /* §7.4 visitor */
        return;
    }
    const xml_node_t *subject = xml_node_child(st->root, XMLS_NS_CONTENT, "subject");
    const xml_node_t *body = xml_node_child(st->root, XMLS_NS_CONTENT, "body");
    if (subject != NULL && body == NULL) {
        if (!may_set_subject(o))
            muc_reply_error(muc, st, CORE_STANZA_ERR_FORBIDDEN, NULL, room->jid); /* §8.1 */
        else
            set_subject(room, o, st, subject);
        return;
    }
    xml_stanza_t *base = xml_stanza_copy(st);
    strip_stanza_ids(base, room->jid);
    char *from = muc_occupant_jid(o);
    xml_node_set_attr(base, base->root, NULL, "from", from);
    xml_node_set_attr(base, base->root, NULL, "to", NULL);
    core_free(from);
    char id[33];
    if (xml_stanza_id(st) == NULL) { /* §7.4: one id for every reflection */
        muc_id_new(muc, id);
        xml_node_set_attr(base, base->root, NULL, "id", id);
    }
    /*
     * XEP-0359 §3: the room's own id. In a room that archives it is the archive id (XEP-0313
     * §3.5), made before the fan-out; what the archive does not keep (chat states) then gets
     * none, since an id by the archive names an entry in it. Elsewhere a random one.
     */
    char aid[STORAGE_ARCHIVE_ID_LEN + 1];
    if (muc_mam_archive(room, o, base, aid)) {
        add_stanza_id(base, aid, room->jid);
    } else if (!muc_mam_enabled(room)) {
        muc_id_new(muc, id);
        add_stanza_id(base, id, room->jid);
    }
    /* Only what people said is history; chat states and the like are not (§7.2.15). */
    if (body != NULL)
        muc_history_add(&room->history, base, muc_now(), (size_t)room->cfg.history_length);
    fanout(room, base);
    xml_stanza_unref(base);
}

/* ---- private messages (§7.5) ---- */

static bool may_pm(const muc_occupant_t *o)
{
    switch (o->room->cfg.allowpm) {
    case MUC_PM_ANYONE:
        return true;
    case MUC_PM_PARTICIPANTS:
        return o->role >= MUC_ROLE_PARTICIPANT;
    case MUC_PM_MODERATORS:
        return o->role == MUC_ROLE_MODERATOR;
    default:
        return false;
    }
}

static void private_message(muc_room_t *room, muc_occupant_t *o, xml_stanza_t *st, const jid_t *to)
{
    muc_t *muc = room->muc;
    const char *type = xml_stanza_type(st);
    if (o == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room->jid);
        return;
    }
    if (type != NULL && strcmp(type, "groupchat") == 0) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
        return;
    }
    muc_occupant_t *target = muc_occupant_by_nick(room, to->full + to->bare_len + 1, to->res_len);
    if (target == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, room->jid);
        return;
    }
    if (!may_pm(o)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_FORBIDDEN, NULL, room->jid);
        return;
    }
    xml_stanza_t *c = xml_stanza_copy(st);
    char *from = muc_occupant_jid(o);
    xml_node_set_attr(c, c->root, NULL, "from", from);
    xml_node_set_attr(c, c->root, NULL, "to", NULL);
    core_free(from);
    /* §7.5: the marker that lets carbons (XEP-0280) tell a private message for what it is. */
    if (xml_node_child(c->root, MUC_NS_USER, "x") == NULL)
        xml_node_add_element(c, c->root, MUC_NS_USER, "x");
    /* §7.2.9: private messages to every session of a multi-session nick, as RECOMMENDED. */
    muc_occupant_send(target, c);
    xml_stanza_unref(c);
}

void muc_message_input(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to)
{
    const char *type = xml_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0) {
        if (jid_has_node(to))
            muc_occupant_ghost(muc, st, from, to);
        return;
    }
    if (!jid_has_node(to)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, NULL);
        return;
    }
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    muc_occupant_t *o = room != NULL ? muc_occupant_by_jid(room, from->full) : NULL;
    if (room == NULL || (room->locked && o == NULL)) {
        char *rj = core_strndup(to->full, to->bare_len);
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, rj); /* §17.1 */
        core_free(rj);
        return;
    }
    size_t len;
    xml_stanza_bytes(st, &len);
    if (len > muc->cfg->max_message_size) {
        /* Our size policy, not a malformed request (RFC 6120 §8.3.3.12; XEP-0045 §7.4). */
        muc_reply_error(muc, st, CORE_STANZA_ERR_POLICY_VIOLATION, NULL, room->jid);
        return;
    }
    if (jid_has_resource(to))
        private_message(room, o, st, to);
    else if (type != NULL && strcmp(type, "groupchat") == 0)
        groupchat(room, o, st);
    else
        muc_invite_input(room, o, st, from); /* invitations, voice requests: invite.c */
}
