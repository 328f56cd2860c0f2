/* SPDX-License-Identifier: MIT */
/* Owner use cases (XEP-0045 §10): creating instant and reserved rooms, configuring rooms. */
#include "muc/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

typedef struct occ_list {
    muc_occupant_t **v;
    size_t n;
} occ_list_t;

static void collect(void *ud, const char *key, void *v)
{
    occ_list_t *l = ud;
    l->v[l->n++] = v;
}

static occ_list_t occupants(const muc_room_t *room)
{
    occ_list_t l = {.v = core_calloc(room->noccupants + 1, sizeof(muc_occupant_t *))};
    core_map_each(&room->by_nick, collect, &l);
    return l;
}

static void send_form(muc_t *muc, xml_stanza_t *st, muc_room_t *room)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *q = xml_node_add_element(r, r->root, MUC_NS_OWNER, "query");
    size_t no, na;
    const char **owners = muc_room_affil_list(room, MUC_AFFIL_OWNER, &no);
    const char **admins = muc_room_affil_list(room, MUC_AFFIL_ADMIN, &na);
    muc_roomconfig_form(r, q, &room->cfg, muc->cfg, owners, no, admins, na);
    core_free(owners);
    core_free(admins);
    muc_send(muc, r);
    xml_stanza_unref(r);
}

/* The owner and admin lists a form gave replace the room's (§10.1.3, §10.5, §10.8). */
static int apply_lists(muc_room_t *room, const muc_form_jids_t *j)
{
    if (j->has_owners && j->nowners == 0)
        return -EPERM; /* §10.6: a room keeps at least one owner */
    static const muc_affil_t kinds[] = {MUC_AFFIL_OWNER, MUC_AFFIL_ADMIN};
    for (size_t k = 0; k < 2; k++) {
        bool has = k == 0 ? j->has_owners : j->has_admins;
        char **list = k == 0 ? j->owners : j->admins;
        size_t n = k == 0 ? j->nowners : j->nadmins;
        if (!has)
            continue;
        size_t cur;
        const char **old = muc_room_affil_list(room, kinds[k], &cur);
        for (size_t i = 0; i < cur; i++) {
            bool kept = false;
            for (size_t m = 0; m < n; m++)
                kept = kept || strcmp(old[i], list[m]) == 0;
            if (!kept)
                muc_room_affil_set(room, old[i], MUC_AFFIL_NONE, NULL);
        }
        core_free(old);
        for (size_t m = 0; m < n; m++)
            muc_room_affil_set(room, list[m], kinds[k], NULL);
    }
    return 0;
}

/* §10.2.1: what occupants are told of a change; §9.9: members-only removes the others. */
static void announce(muc_room_t *room, const muc_room_config_t *old)
{
    int codes[3];
    size_t n = 0;
    codes[n++] = 104;
    if (old->logging != room->cfg.logging)
        codes[n++] = room->cfg.logging ? 170 : 171;
    if (old->whois != room->cfg.whois)
        codes[n++] = room->cfg.whois == MUC_WHOIS_ANYONE ? 172 : 173;
    muc_message_room_status(room, codes, n);
    if (room->cfg.members_only && !old->members_only) {
        occ_list_t l = occupants(room);
        static const int gone[] = {322};
        bool destroyed = false;
        for (size_t i = 0; i < l.n && !destroyed; i++) {
            if (muc_occupant_affil(l.v[i]) < MUC_AFFIL_MEMBER)
                destroyed = muc_occupant_remove(l.v[i], gone, 1, NULL);
        }
        core_free(l.v);
    }
}

static void submit(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const xml_node_t *x)
{
    muc_room_config_t old;
    muc_room_config_copy(&old, &room->cfg);
    muc_form_jids_t jids = {0};
    const char *why;
    int rc = muc_roomconfig_apply(&room->cfg, x, muc->cfg, muc->jids, &jids, &why);
    if (rc == 0) {
        rc = apply_lists(room, &jids);
        if (rc < 0)
            why = "a room needs an owner";
    }
    muc_form_jids_clear(&jids);
    if (rc < 0) {
        core_log(muc->log, CORE_LOG_INFO, 0, "%s: configuration refused: %s", room->jid,
                 why ? why : "?");
        /* §10.1.3: options that break the service's policies are not-acceptable. */
        muc_reply_error(muc, st,
                        rc == -EPERM ? CORE_STANZA_ERR_NOT_ACCEPTABLE : CORE_STANZA_ERR_BAD_REQUEST,
                        NULL, NULL);
        muc_room_config_clear(&old);
        return;
    }
    bool was_locked = room->locked;
    room->locked = false;
    room->dirty = true;
    if (!room->cfg.moderated)
        muc_room_roles_clear(room); /* §5.1: roles are kept for moderated rooms only */
    muc_history_trim(&room->history, (size_t)room->cfg.history_length);
    muc_room_save(room);
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
    if (was_locked)
        core_log(muc->log, CORE_LOG_INFO, 0, "room %s is configured and open", room->jid);
    else
        announce(room, &old);
    muc_room_config_clear(&old);
    muc_room_gc(room); /* made temporary while empty */
}

/* §10.1.3: cancelling the first configuration destroys the room. */
static void cancel(muc_t *muc, xml_stanza_t *st, muc_room_t *room)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
    if (!room->locked)
        return;
    occ_list_t l = occupants(room);
    bool destroyed = false;
    for (size_t i = 0; i < l.n && !destroyed; i++)
        destroyed = muc_occupant_remove(l.v[i], NULL, 0, NULL);
    core_free(l.v);
    if (!destroyed)
        muc_room_destroy(room);
}

void muc_owner_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    const char *type = xml_stanza_type(st);
    if (muc_room_affil(room, from->full, from->bare_len) != MUC_AFFIL_OWNER) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_FORBIDDEN, NULL, room->jid); /* §10.2 */
        return;
    }
    const xml_node_t *q = xml_node_first_element(st->root);
    if (strcmp(type, "get") == 0) {
        send_form(muc, st, room);
        return;
    }
    const xml_node_t *x = xml_node_child(q, MUC_NS_DATA, "x");
    const char *xtype = x != NULL ? xml_node_attr(x, "type") : NULL;
    if (xtype != NULL && strcmp(xtype, "submit") == 0)
        submit(muc, st, room, x);
    else if (xtype != NULL && strcmp(xtype, "cancel") == 0)
        cancel(muc, st, room);
    else if (xml_node_child(q, MUC_NS_OWNER, "destroy") != NULL)
        muc_owner_destroy(muc, st, room, xml_node_child(q, MUC_NS_OWNER, "destroy"));
    else
        muc_reply_error(muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
}
