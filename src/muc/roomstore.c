/* SPDX-License-Identifier: MIT */
/* A room as stored: its configuration, affiliations and subject as one element, and back. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_STORE "urn:parley:muc:0"

static const char *const whois_names[] = {"moderators", "anyone"};
static const char *const pm_names[] = {"anyone", "participants", "moderators", "none"};

static void set_bool(xml_stanza_t *st, xml_node_t *n, const char *name, bool v)
{
    xml_node_set_attr(st, n, NULL, name, v ? "1" : "0");
}

static void set_int(xml_stanza_t *st, xml_node_t *n, const char *name, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    xml_node_set_attr(st, n, NULL, name, buf);
}

static void set_roles(xml_stanza_t *st, xml_node_t *n, const char *name, unsigned set)
{
    char buf[64] = "";
    for (muc_role_t r = MUC_ROLE_VISITOR; r <= MUC_ROLE_MODERATOR; r++) {
        if (set & MUC_ROLE_BIT(r)) {
            if (buf[0] != '\0')
                strcat(buf, " ");
            strcat(buf, muc_role_name(r));
        }
    }
    xml_node_set_attr(st, n, NULL, name, buf);
}

typedef struct enc_ctx {
    const muc_affiliation_t **v;
    size_t n;
} enc_ctx_t;

static void collect_affil(void *ud, muc_affiliation_t *a)
{
    enc_ctx_t *c = ud;
    c->v[c->n++] = a;
}

static int cmp_affil(const void *a, const void *b)
{
    return strcmp((*(const muc_affiliation_t *const *)a)->jid,
                  (*(const muc_affiliation_t *const *)b)->jid);
}

/* Affiliations sorted by JID: the same room always gives the same bytes. */
static void encode_affils(xml_stanza_t *st, const muc_room_t *room)
{
    enc_ctx_t c = {.v = core_calloc(room->naffils + 1, sizeof(muc_affiliation_t *))};
    muc_room_affil_each(room, collect_affil, &c);
    qsort(c.v, c.n, sizeof(c.v[0]), cmp_affil);
    for (size_t i = 0; i < c.n; i++) {
        xml_node_t *n = xml_node_add_element(st, st->root, NS_STORE, "affiliation");
        xml_node_set_attr(st, n, NULL, "jid", c.v[i]->jid);
        xml_node_set_attr(st, n, NULL, "affiliation", muc_affil_name(c.v[i]->affil));
        if (c.v[i]->reason != NULL)
            xml_node_set_attr(st, n, NULL, "reason", c.v[i]->reason);
        if (c.v[i]->nick != NULL)
            xml_node_set_attr(st, n, NULL, "nick", c.v[i]->nick);
    }
    core_free(c.v);
}

xml_stanza_t *muc_roomstore_encode(const muc_room_t *room)
{
    const muc_room_config_t *c = &room->cfg;
    xml_stanza_t *st = xml_stanza_new(NS_STORE, "room");
    xml_node_set_attr(st, st->root, NULL, "node", room->node);
    if (room->creator != NULL)
        xml_node_set_attr(st, st->root, NULL, "creator", room->creator);
    xml_node_t *n = xml_node_add_element(st, st->root, NS_STORE, "config");
    xml_node_set_attr(st, n, NULL, "name", c->name);
    xml_node_set_attr(st, n, NULL, "desc", c->desc);
    xml_node_set_attr(st, n, NULL, "lang", c->lang);
    xml_node_set_attr(st, n, NULL, "password", c->password);
    set_bool(st, n, "persistent", c->persistent);
    set_bool(st, n, "public", c->public_room);
    set_bool(st, n, "membersonly", c->members_only);
    set_bool(st, n, "moderated", c->moderated);
    set_bool(st, n, "passwordprotected", c->password_protected);
    set_bool(st, n, "changesubject", c->change_subject);
    set_bool(st, n, "allowinvites", c->allow_invites);
    set_bool(st, n, "logging", c->logging);
    set_bool(st, n, "archiving", c->archiving);
    xml_node_set_attr(st, n, NULL, "whois", whois_names[c->whois]);
    xml_node_set_attr(st, n, NULL, "allowpm", pm_names[c->allowpm]);
    set_int(st, n, "maxusers", c->maxusers);
    set_int(st, n, "history", c->history_length);
    set_roles(st, n, "presencebroadcast", c->presence_broadcast);
    set_roles(st, n, "getmemberlist", c->get_member_list);
    encode_affils(st, room);
    /* Roles kept across visits (§5.1), oldest first, so the same ones drop first after a
     * restart. After the affiliations: setting an affiliation forgets a role. */
    size_t nr;
    const muc_role_memo_t **roles = muc_room_role_list(room, &nr);
    for (size_t i = 0; i < nr; i++) {
        xml_node_t *r = xml_node_add_element(st, st->root, NS_STORE, "role");
        xml_node_set_attr(st, r, NULL, "jid", roles[i]->jid);
        xml_node_set_attr(st, r, NULL, "role", muc_role_name(roles[i]->role));
    }
    core_free(roles);
    /* Registration requests waiting for approval (§9.9), after the affiliations too. */
    muc_regapprove_encode(room, st, NS_STORE);
    if (room->subject != NULL) {
        xml_node_t *s = xml_node_add_element(st, st->root, NS_STORE, "subject");
        if (room->subject_nick != NULL)
            xml_node_set_attr(st, s, NULL, "nick", room->subject_nick);
        set_int(st, s, "stamp", room->subject_stamp);
        xml_node_add_text(st, s, room->subject, strlen(room->subject));
    }
    return st;
}

/* ---- decoding ---- */

static int get_bool(const xml_node_t *n, const char *name, bool *out)
{
    const char *v = xml_node_attr(n, name);
    if (v == NULL || (strcmp(v, "0") != 0 && strcmp(v, "1") != 0))
        return -EINVAL;
    *out = v[0] == '1';
    return 0;
}

static int get_int(const xml_node_t *n, const char *name, int64_t min, int64_t max, int64_t *out)
{
    const char *v = xml_node_attr(n, name);
    char *end;
    if (v == NULL || v[0] == '\0')
        return -EINVAL;
    long long x = strtoll(v, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    /* A limit lowered since the room was saved applies to it now. */
    *out = x < min ? min : x > max ? max : x;
    return 0;
}

static int get_choice(const xml_node_t *n, const char *name, const char *const *v, int nv, int *out)
{
    const char *s = xml_node_attr(n, name);
    for (int i = 0; s != NULL && i < nv; i++) {
        if (strcmp(s, v[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return -EINVAL;
}

static int get_roles(const xml_node_t *n, const char *name, unsigned *out)
{
    const char *s = xml_node_attr(n, name);
    if (s == NULL)
        return -EINVAL;
    unsigned set = 0;
    for (muc_role_t r = MUC_ROLE_VISITOR; r <= MUC_ROLE_MODERATOR; r++) {
        const char *rn = muc_role_name(r);
        const char *p = strstr(s, rn);
        size_t l = strlen(rn);
        if (p != NULL && (p == s || p[-1] == ' ') && (p[l] == '\0' || p[l] == ' '))
            set |= MUC_ROLE_BIT(r);
    }
    *out = set;
    return 0;
}

static int get_text(const xml_node_t *n, const char *name, char **out)
{
    const char *v = xml_node_attr(n, name);
    if (v == NULL)
        return -EINVAL;
    core_free(*out);
    *out = core_strdup(v);
    return 0;
}

static int decode_config(muc_room_config_t *c, const xml_node_t *n, const muc_config_t *mc)
{
    int whois = 0, pm = 0;
    int rc = 0;
    rc |= get_text(n, "name", &c->name);
    rc |= get_text(n, "desc", &c->desc);
    rc |= get_text(n, "lang", &c->lang);
    rc |= get_text(n, "password", &c->password);
    rc |= get_bool(n, "persistent", &c->persistent);
    rc |= get_bool(n, "public", &c->public_room);
    rc |= get_bool(n, "membersonly", &c->members_only);
    rc |= get_bool(n, "moderated", &c->moderated);
    rc |= get_bool(n, "passwordprotected", &c->password_protected);
    rc |= get_bool(n, "changesubject", &c->change_subject);
    rc |= get_bool(n, "allowinvites", &c->allow_invites);
    rc |= get_bool(n, "logging", &c->logging);
    /* Rooms saved before the archive existed get [muc] room_archiving's default. */
    if (xml_node_attr(n, "archiving") != NULL)
        rc |= get_bool(n, "archiving", &c->archiving);
    else
        c->archiving = mc->room_archiving == MUC_MAM_ALWAYS ||
            (mc->room_archiving == MUC_MAM_PUBLIC && c->public_room);
    rc |= get_choice(n, "whois", whois_names, 2, &whois);
    rc |= get_choice(n, "allowpm", pm_names, 4, &pm);
    rc |= get_int(n, "maxusers", 1, mc->max_occupants, &c->maxusers);
    rc |= get_int(n, "history", 0, mc->history_max, &c->history_length);
    rc |= get_roles(n, "presencebroadcast", &c->presence_broadcast);
    rc |= get_roles(n, "getmemberlist", &c->get_member_list);
    c->whois = (muc_whois_t)whois;
    c->allowpm = (muc_allowpm_t)pm;
    return rc != 0 ? -EINVAL : 0;
}

int muc_roomstore_decode(muc_room_t *room, const xml_node_t *el)
{
    if (!xml_node_is(el, NS_STORE, "room"))
        return -EINVAL;
    const xml_node_t *cfg = xml_node_child(el, NS_STORE, "config");
    if (cfg == NULL || decode_config(&room->cfg, cfg, room->muc->cfg) < 0)
        return -EINVAL;
    for (const xml_node_t *n = xml_node_first_element(el); n != NULL;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, NS_STORE, "affiliation")) {
            const char *jid = xml_node_attr(n, "jid");
            muc_affil_t a;
            if (jid == NULL || muc_affil_parse(xml_node_attr(n, "affiliation"), &a) < 0)
                return -EINVAL;
            muc_room_affil_set(room, jid, a, xml_node_attr(n, "reason"));
            if (muc_register_nick_set(room, jid, xml_node_attr(n, "nick")) < 0)
                return -EINVAL;
        } else if (xml_node_is(n, NS_STORE, "role")) {
            const char *jid = xml_node_attr(n, "jid");
            muc_role_t r;
            if (jid == NULL || muc_role_parse(xml_node_attr(n, "role"), &r) < 0 ||
                muc_room_role_put(room, jid, r) < 0)
                return -EINVAL;
        } else if (xml_node_is(n, NS_STORE, "request")) {
            if (muc_regapprove_decode(room, n) < 0)
                return -EINVAL;
        } else if (xml_node_is(n, NS_STORE, "subject")) {
            size_t len;
            const char *text = xml_node_text(n, &len);
            const char *nick = xml_node_attr(n, "nick");
            if (get_int(n, "stamp", 0, INT64_MAX, &room->subject_stamp) < 0)
                return -EINVAL;
            core_free(room->subject);
            core_free(room->subject_nick);
            room->subject = core_strndup(text, len);
            room->subject_nick = nick != NULL ? core_strdup(nick) : NULL;
        }
    }
    room->locked = false;
    room->dirty = false;
    return 0;
}
