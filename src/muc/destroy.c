/* SPDX-License-Identifier: MIT */
/* An owner destroys a room, naming an alternate venue, a reason and its password (§10.9). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <string.h>

typedef struct destroy_ctx {
    muc_room_t *room;
    const char *venue; /* prepared, or NULL */
    const xml_node_t *destroy; /* the owner's <destroy/> */
} destroy_ctx_t;

static void add_text_child(xml_stanza_t *p, xml_node_t *parent, const xml_node_t *from,
                           const char *name)
{
    const xml_node_t *c = xml_node_child(from, MUC_NS_OWNER, name);
    if (c == NULL)
        return;
    size_t len;
    const char *text = xml_node_text(c, &len);
    xml_node_t *n = xml_node_add_element(p, parent, MUC_NS_USER, name);
    xml_node_add_text(p, n, text, len);
}

/*
 * §10.9: "sending only one presence stanza of type unavailable to each occupant" — its own,
 * with <destroy/> (the venue, the reason, the venue's password) and 110: it is about itself.
 */
static void tell_one(void *ud, const char *key, void *v)
{
    destroy_ctx_t *c = ud;
    muc_occupant_t *o = v;
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    char *from = muc_occupant_jid(o);
    xml_node_set_attr(p, p->root, NULL, "from", from);
    core_free(from);
    xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
    xml_node_t *x = xml_node_add_element(p, p->root, MUC_NS_USER, "x");
    xml_node_t *item = xml_node_add_element(p, x, MUC_NS_USER, "item");
    xml_node_set_attr(p, item, NULL, "affiliation", "none");
    xml_node_set_attr(p, item, NULL, "role", "none");
    xml_node_t *d = xml_node_add_element(p, x, MUC_NS_USER, "destroy");
    if (c->venue != NULL)
        xml_node_set_attr(p, d, NULL, "jid", c->venue);
    add_text_child(p, d, c->destroy, "reason");
    add_text_child(p, d, c->destroy, "password");
    xml_node_t *s = xml_node_add_element(p, x, MUC_NS_USER, "status");
    xml_node_set_attr(p, s, NULL, "code", "110");
    muc_occupant_send(o, p); /* one for each session of a multi-session nick */
    xml_stanza_unref(p);
}

void muc_owner_destroy(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const xml_node_t *destroy)
{
    const char *venue = xml_node_attr(destroy, "jid");
    jid_t vj = {0};
    if (venue != NULL && jid_parse(muc->jids, venue, strlen(venue), &vj) < 0) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_JID_MALFORMED, NULL, room->jid);
        return;
    }
    destroy_ctx_t c = {.room = room, .venue = venue != NULL ? vj.full : NULL, .destroy = destroy};
    core_map_each(&room->by_nick, tell_one, &c);
    core_log(muc->log, CORE_LOG_INFO, 0, "room %s destroyed by %s%s%s", room->jid,
             xml_stanza_from(st), venue != NULL ? ", moved to " : "", venue != NULL ? vj.full : "");
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
    /* Persistent or not, the room goes (§10.9), occupants with it, and from the store. */
    muc_room_forget(room);
    muc_room_destroy(room);
    if (venue != NULL)
        jid_clear(&vj);
}
