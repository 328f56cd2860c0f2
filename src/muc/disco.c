/* SPDX-License-Identifier: MIT */
/* Service discovery (XEP-0030) of the service and its rooms (XEP-0045 §6), with XEP-0128 info. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void feature(xml_stanza_t *r, xml_node_t *q, const char *var)
{
    xml_node_t *f = xml_node_add_element(r, q, MUC_NS_DISCO_INFO, "feature");
    xml_node_set_attr(r, f, NULL, "var", var);
}

static void identity(xml_stanza_t *r, xml_node_t *q, const char *name)
{
    xml_node_t *id = xml_node_add_element(r, q, MUC_NS_DISCO_INFO, "identity");
    xml_node_set_attr(r, id, NULL, "category", "conference");
    xml_node_set_attr(r, id, NULL, "type", "text");
    if (name != NULL && name[0] != '\0')
        xml_node_set_attr(r, id, NULL, "name", name);
}

static void form_field(xml_stanza_t *r, xml_node_t *x, const char *var, const char *type,
                       const char *label, const char *value)
{
    xml_node_t *f = xml_node_add_element(r, x, MUC_NS_DATA, "field");
    xml_node_set_attr(r, f, NULL, "var", var);
    if (type != NULL)
        xml_node_set_attr(r, f, NULL, "type", type);
    if (label != NULL)
        xml_node_set_attr(r, f, NULL, "label", label);
    xml_node_t *v = xml_node_add_element(r, f, MUC_NS_DATA, "value");
    xml_node_add_text(r, v, value, strlen(value));
}

/* §6.4 / XEP-0128: the muc#roominfo form. */
static void roominfo(xml_stanza_t *r, xml_node_t *q, const muc_room_t *room)
{
    xml_node_t *x = xml_node_add_element(r, q, MUC_NS_DATA, "x");
    xml_node_set_attr(r, x, NULL, "type", "result");
    form_field(r, x, "FORM_TYPE", "hidden", NULL, MUC_NS_ROOMINFO);
    form_field(r, x, "muc#roominfo_description", NULL, "Description", room->cfg.desc);
    form_field(r, x, "muc#roominfo_subject", NULL, "Current Discussion Topic",
               room->subject != NULL ? room->subject : "");
    char n[32];
    snprintf(n, sizeof n, "%zu", room->noccupants);
    form_field(r, x, "muc#roominfo_occupants", NULL, "Number of occupants", n);
    form_field(r, x, "muc#roomconfig_changesubject", "boolean", "Subject can be modified",
               room->cfg.change_subject ? "1" : "0");
    if (room->cfg.lang[0] != '\0')
        form_field(r, x, "muc#roominfo_lang", NULL, "Language of discussion", room->cfg.lang);
    snprintf(n, sizeof n, "%lld", (long long)room->cfg.history_length);
    form_field(r, x, "muc#maxhistoryfetch", NULL,
               "Maximum Number of History Messages Returned by Room", n);
    form_field(r, x, "muc#roomconfig_allowinvites", "boolean", "Occupants may invite",
               room->cfg.allow_invites ? "1" : "0");
}

void muc_disco_info(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    (void)from;
    const xml_node_t *in = xml_node_first_element(st->root);
    const char *node = xml_node_attr(in, "node");
    if (node != NULL) {
        /* No nodes here; §17.3.4 muc#traffic: we discard nothing, so the room says so. */
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, NULL);
        return;
    }
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_DISCO_INFO, "query");
    if (room == NULL) {
        identity(r, q, "Chatrooms");
        feature(r, q, MUC_NS_DISCO_INFO);
        feature(r, q, MUC_NS_DISCO_ITEMS);
        feature(r, q, MUC_NS);
        feature(r, q, MUC_NS_STABLE_ID);
        feature(r, q, MUC_NS_UNIQUE);
        feature(r, q, MUC_NS_PING);
        muc_send(muc, r);
        xml_stanza_unref(r);
        return;
    }
    const muc_room_config_t *c = &room->cfg;
    identity(r, q, c->name[0] != '\0' ? c->name : room->node);
    feature(r, q, MUC_NS_DISCO_INFO);
    feature(r, q, MUC_NS_DISCO_ITEMS);
    feature(r, q, MUC_NS);
    feature(r, q, MUC_NS_STABLE_ID);
    feature(r, q, MUC_NS_SELF_PING);
    feature(r, q, MUC_NS_SID);
    muc_mam_disco(r, q, room);
    /* §6.4: the features that describe the room's privacy and security (§15.6.2). */
    feature(r, q, c->persistent ? "muc_persistent" : "muc_temporary");
    feature(r, q, c->public_room ? "muc_public" : "muc_hidden");
    feature(r, q, c->members_only ? "muc_membersonly" : "muc_open");
    feature(r, q, c->moderated ? "muc_moderated" : "muc_unmoderated");
    feature(r, q, c->whois == MUC_WHOIS_ANYONE ? "muc_nonanonymous" : "muc_semianonymous");
    feature(r, q, c->password_protected ? "muc_passwordprotected" : "muc_unsecured");
    roominfo(r, q, room);
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* ---- items ---- */

typedef struct item_vec {
    const char **jid;
    const char **name;
    size_t n;
} item_vec_t;

static void public_room(void *ud, const char *key, void *v)
{
    item_vec_t *iv = ud;
    const muc_room_t *room = v;
    if (!room->cfg.public_room || room->locked)
        return;
    iv->jid[iv->n] = room->jid;
    iv->name[iv->n] = room->cfg.name[0] != '\0' ? room->cfg.name : room->node;
    iv->n++;
}

static void occupant_item(void *ud, const char *key, void *v)
{
    item_vec_t *iv = ud;
    const muc_occupant_t *o = v;
    iv->jid[iv->n] = o->nick; /* the jid is built when the item is written */
    iv->name[iv->n] = o->nick;
    iv->n++;
}

/* Items sorted by jid, for a stable answer. */
static int cmp_item(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void muc_disco_items(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    const xml_node_t *in = xml_node_first_element(st->root);
    if (xml_node_attr(in, "node") != NULL) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL, NULL);
        return;
    }
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_DISCO_ITEMS, "query");
    size_t cap = room == NULL ? muc->nrooms : room->noccupants;
    item_vec_t iv = {.jid = core_calloc(cap + 1, sizeof(char *)),
                     .name = core_calloc(cap + 1, sizeof(char *))};
    if (room == NULL) {
        core_map_each(&muc->rooms, public_room, &iv); /* §6.3: public rooms only */
    } else if (room->cfg.whois == MUC_WHOIS_ANYONE ||
               (muc_occupant_by_jid(room, from->full) != NULL &&
                muc_occupant_by_jid(room, from->full)->role == MUC_ROLE_MODERATOR)) {
        /* §6.5: occupants only where their JIDs are no secret anyway to the asker. */
        core_map_each(&room->by_nick, occupant_item, &iv);
    }
    /* Sort both arrays together: pairs of (jid, name). */
    const char **pairs = core_calloc(2 * iv.n + 1, sizeof(char *));
    for (size_t i = 0; i < iv.n; i++) {
        pairs[2 * i] = iv.jid[i];
        pairs[2 * i + 1] = iv.name[i];
    }
    qsort(pairs, iv.n, 2 * sizeof(char *), cmp_item);
    for (size_t i = 0; i < iv.n; i++) {
        xml_node_t *it = xml_node_add_element(r, q, MUC_NS_DISCO_ITEMS, "item");
        if (room == NULL) {
            xml_node_set_attr(r, it, NULL, "jid", pairs[2 * i]);
        } else {
            size_t rl = strlen(room->jid), nl = strlen(pairs[2 * i]);
            char *j = core_malloc(rl + nl + 2);
            snprintf(j, rl + nl + 2, "%s/%s", room->jid, pairs[2 * i]);
            xml_node_set_attr(r, it, NULL, "jid", j);
            core_free(j);
        }
        xml_node_set_attr(r, it, NULL, "name", pairs[2 * i + 1]);
    }
    core_free(pairs);
    core_free(iv.jid);
    core_free(iv.name);
    muc_send(muc, r);
    xml_stanza_unref(r);
}
