/* SPDX-License-Identifier: MIT */
/* IQs to the service, to a room and to an occupant JID (forwarding, XEP-0410 self-ping). */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <string.h>

static bool is_type(const xml_stanza_t *st, const char *t)
{
    const char *type = xml_stanza_type(st);
    return type != NULL && strcmp(type, t) == 0;
}

static void reply_empty(muc_t *muc, const xml_stanza_t *st)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* XEP-0307: a room name nobody uses (and nobody will: it is random), to create a room. */
static void unique_name(muc_t *muc, const xml_stanza_t *st)
{
    char id[33];
    do
        muc_id_new(muc, id);
    while (muc_room_find(muc, id, strlen(id)) != NULL);
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *u = xml_node_add_element(r, r->root, MUC_NS_UNIQUE, "unique");
    xml_node_add_text(r, u, id, strlen(id));
    muc_send(muc, r);
    xml_stanza_unref(r);
}

static void service_iq(muc_t *muc, xml_stanza_t *st, const xml_node_t *q, const jid_t *from)
{
    bool get = is_type(st, "get");
    if (get && xml_node_is(q, MUC_NS_DISCO_INFO, "query"))
        muc_disco_info(muc, st, NULL, from);
    else if (get && xml_node_is(q, MUC_NS_DISCO_ITEMS, "query"))
        muc_disco_items(muc, st, NULL, from);
    else if (get && xml_node_is(q, MUC_NS_UNIQUE, "unique"))
        unique_name(muc, st);
    else if (get && xml_node_is(q, MUC_NS_PING, "ping"))
        reply_empty(muc, st);
    else if (get && xml_node_is(q, LINK_NS_STATUS, "status"))
        muc_status_answer(muc, st); /* status.c */
    else
        muc_reply_error(muc, st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, NULL);
}

static bool is_roomuser_node(const xml_node_t *q)
{
    const char *node = xml_node_attr(q, "node");
    return node != NULL && strcmp(node, "x-roomuser-item") == 0;
}

static void room_iq(muc_t *muc, xml_stanza_t *st, const xml_node_t *q, const jid_t *from,
                    const jid_t *to)
{
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    bool get = is_type(st, "get");
    bool owner =
        room != NULL && muc_room_affil(room, from->full, from->bare_len) == MUC_AFFIL_OWNER;
    if (room == NULL || (room->locked && !owner)) {
        char *rj = core_strndup(to->full, to->bare_len);
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, rj); /* §7.2.11 */
        core_free(rj);
    } else if (get && xml_node_is(q, MUC_NS_DISCO_INFO, "query") && is_roomuser_node(q)) {
        muc_register_nick_query(muc, st, room, from); /* §7.12, register.c */
    } else if (xml_node_is(q, "jabber:iq:register", "query")) {
        muc_register_iq(muc, st, room, from); /* §7.10, register.c */
    } else if (get && xml_node_is(q, MUC_NS_DISCO_INFO, "query")) {
        muc_disco_info(muc, st, room, from);
    } else if (get && xml_node_is(q, MUC_NS_DISCO_ITEMS, "query")) {
        muc_disco_items(muc, st, room, from);
    } else if (xml_node_is(q, MUC_NS_OWNER, "query")) {
        muc_owner_iq(muc, st, room, from);
    } else if (xml_node_is(q, MUC_NS_ADMIN, "query")) {
        muc_admin_iq(muc, st, room, from);
    } else if (get && xml_node_is(q, MUC_NS_PING, "ping")) {
        reply_empty(muc, st);
    } else if (xml_node_is(q, MUC_NS_MAM, NULL)) {
        muc_mam_iq(muc, st, room, from); /* XEP-0313 on the room's bare JID */
    } else {
        muc_reply_error(muc, st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE, NULL, room->jid);
    }
}

/* An occupant's answer to a request we forwarded goes back to the asker (§17.3 IQ). */
static void occupant_answer(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to)
{
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    if (room == NULL)
        return;
    muc_occupant_t *responder = muc_occupant_by_jid(room, from->full);
    muc_occupant_t *asker = muc_occupant_by_nick(room, to->full + to->bare_len + 1, to->res_len);
    if (responder == NULL || asker == NULL)
        return;
    char *f = muc_occupant_jid(responder);
    xml_stanza_t *c = muc_stanza_forward(st, f, NULL);
    core_free(f);
    /* Which session of a multi-session nick asked is not known here: each gets the answer,
     * and the others drop an answer to an id they did not send (RFC 6120 §8.2.3). */
    muc_occupant_send(asker, c);
    xml_stanza_unref(c);
}

static void occupant_iq(muc_t *muc, xml_stanza_t *st, const xml_node_t *q, const jid_t *from,
                        const jid_t *to)
{
    if (is_type(st, "result") || is_type(st, "error")) {
        occupant_answer(muc, st, from, to);
        return;
    }
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    char *rj = core_strndup(to->full, to->bare_len);
    muc_occupant_t *o = room != NULL ? muc_occupant_by_jid(room, from->full) : NULL;
    muc_occupant_t *target =
        room != NULL ? muc_occupant_by_nick(room, to->full + to->bare_len + 1, to->res_len) : NULL;
    if (o == NULL) {
        /* §6.7: disco from a non-occupant is bad-request; XEP-0410 §3: the rest not-acceptable. */
        bool disco =
            xml_node_is(q, MUC_NS_DISCO_INFO, NULL) || xml_node_is(q, MUC_NS_DISCO_ITEMS, NULL);
        muc_reply_error(muc, st,
                        disco ? CORE_STANZA_ERR_BAD_REQUEST : CORE_STANZA_ERR_NOT_ACCEPTABLE,
                        disco ? NULL : "cancel", rj); /* XEP-0410 §3.2's example: cancel */
    } else if (target == o && is_type(st, "get") && xml_node_is(q, MUC_NS_PING, "ping")) {
        reply_empty(muc, st); /* XEP-0410 §3.3: the service answers for a joined occupant */
    } else if (target == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, rj);
    } else {
        /* Forwarded without revealing either real JID (§17.3), to one session of the target
         * (XEP-0410 §3: "forwarded to any one of Juliet's joined clients"). */
        char *f = muc_occupant_jid(o);
        xml_stanza_t *c = muc_stanza_forward(st, f, target->jid.full);
        core_free(f);
        muc_send(muc, c);
        xml_stanza_unref(c);
    }
    core_free(rj);
}

void muc_iq_input(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to)
{
    bool request = is_type(st, "get") || is_type(st, "set");
    const xml_node_t *q = xml_node_first_element(st->root);
    if (jid_has_node(to) && jid_has_resource(to)) {
        occupant_iq(muc, st, q, from, to);
        return;
    }
    if (!request)
        return; /* answers to the service or a room: we ask nothing */
    if (q == NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, NULL);
        return;
    }
    if (!jid_has_node(to))
        service_iq(muc, st, q, from);
    else
        room_iq(muc, st, q, from, to);
}
