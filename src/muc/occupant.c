/* SPDX-License-Identifier: MIT */
/* Occupants: entering (and creating) a room, presence changes, nick changes, leaving. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <openssl/crypto.h>
#include <string.h>

muc_occupant_t *muc_occupant_by_nick(const muc_room_t *room, const char *nick, size_t len)
{
    char fold[MUC_NICK_FOLD_MAX + 1];
    size_t flen;
    if (muc_nick_fold(nick, len, fold, &flen) < 0)
        return NULL;
    return core_map_get(&room->by_nick, fold, flen);
}

muc_occupant_t *muc_occupant_by_jid(const muc_room_t *room, const char *full)
{
    return core_map_get(&room->by_jid, full, strlen(full));
}

muc_affil_t muc_occupant_affil(const muc_occupant_t *o)
{
    return muc_room_affil(o->room, o->jid.full, o->jid.bare_len);
}

char *muc_occupant_jid(const muc_occupant_t *o)
{
    size_t rl = strlen(o->room->jid), nl = strlen(o->nick);
    char *s = core_malloc(rl + 1 + nl + 1);
    memcpy(s, o->room->jid, rl);
    s[rl] = '/';
    memcpy(s + rl + 1, o->nick, nl + 1);
    return s;
}

/*
 * What the room reflects of a client's presence: its children but the muc and muc#user
 * elements (§17.2.2: only the service generates muc#user data), no addresses.
 */
static xml_stanza_t *payload_of(const xml_stanza_t *st)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    for (const xml_node_t *c = st->root->first; c != NULL; c = c->next) {
        if (c->name == NULL || xml_node_is(c, MUC_NS, "x") || xml_node_is(c, MUC_NS_USER, "x"))
            continue;
        xml_node_add_copy(p, p->root, c);
    }
    return p;
}

static void occupant_free(muc_occupant_t *o)
{
    core_free(o->nick);
    core_free(o->fold);
    jid_clear(&o->jid);
    xml_stanza_unref(o->presence);
    core_free(o);
}

bool muc_occupant_remove(muc_occupant_t *o, const int *codes, size_t ncodes, const char *reason)
{
    muc_pres_opts_t opts = {
        .unavailable = true, .codes = codes, .ncodes = ncodes, .reason = reason};
    return muc_occupant_remove_with(o, &opts);
}

bool muc_occupant_remove_with(muc_occupant_t *o, const muc_pres_opts_t *opts)
{
    muc_room_t *room = o->room;
    muc_presence_broadcast(o, opts);
    core_map_del(&room->by_nick, o->fold, strlen(o->fold));
    core_map_del(&room->by_jid, o->jid.full, o->jid.full_len);
    room->noccupants--;
    core_log(room->muc->log, CORE_LOG_DEBUG, 0, "%s left %s", o->jid.full, room->jid);
    occupant_free(o);
    /* §10.1.3: an owner who leaves before configuring the room takes it with them. */
    return muc_room_gc(room);
}

/* ---- entering ---- */

/* §10.1.1, [muc] create: may this user create a room now? */
static bool may_create(muc_t *muc, const jid_t *from, core_stanza_err_t *err)
{
    *err = CORE_STANZA_ERR_NOT_ALLOWED;
    bool admin = muc_is_admin(muc, from->full, from->bare_len);
    if (!admin && muc->cfg->create == MUC_CREATE_ADMINS)
        return false;
    if (!admin && muc->cfg->create == MUC_CREATE_LOCAL) {
        bool local = false;
        for (size_t i = 0; i < muc->nlocal && !local; i++)
            local = strlen(muc->local_domains[i]) == from->domain_len &&
                memcmp(muc->local_domains[i], jid_domain_ptr(from), from->domain_len) == 0;
        if (!local || !jid_has_node(from))
            return false;
    }
    if (muc->nrooms >= (size_t)muc->cfg->max_rooms) {
        *err = CORE_STANZA_ERR_RESOURCE_CONSTRAINT;
        return false;
    }
    if (!admin) {
        char *bare = core_strndup(from->full, from->bare_len);
        size_t mine = muc_room_count_by(muc, bare);
        core_free(bare);
        if (mine >= (size_t)muc->cfg->max_rooms_per_user)
            return false;
    }
    return true;
}

static bool password_ok(const muc_room_t *room, const xml_node_t *x)
{
    const xml_node_t *pw = x != NULL ? xml_node_child(x, MUC_NS, "password") : NULL;
    size_t len = 0;
    const char *given = pw != NULL ? xml_node_text(pw, &len) : NULL;
    return given != NULL && strlen(room->cfg.password) == len &&
        CRYPTO_memcmp(given, room->cfg.password, len) == 0;
}

/* §7.2.10: full for others; admins and owners get a few more seats, as it asks. */
static bool room_full(const muc_room_t *room, muc_affil_t affil)
{
    int64_t max = room->muc->cfg->max_occupants;
    int64_t cap = room->cfg.maxusers < max ? room->cfg.maxusers : max;
    if (affil >= MUC_AFFIL_ADMIN)
        cap = max + 16;
    return (int64_t)room->noccupants >= cap;
}

/* §7.2.6-7.2.10: may this user enter the existing room under this nick? */
static bool may_enter(muc_room_t *room, muc_affil_t affil, const char *fold, size_t flen,
                      const xml_node_t *x, core_stanza_err_t *err)
{
    if (room->locked && affil != MUC_AFFIL_OWNER)
        *err = CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §7.2.11 */
    else if (affil == MUC_AFFIL_OUTCAST)
        *err = CORE_STANZA_ERR_FORBIDDEN; /* §7.2.8 */
    else if (room->cfg.members_only && affil < MUC_AFFIL_MEMBER)
        *err = CORE_STANZA_ERR_REGISTRATION_REQUIRED; /* §7.2.7 */
    else if (core_map_get(&room->by_nick, fold, flen) != NULL)
        *err = CORE_STANZA_ERR_CONFLICT; /* §7.2.9 */
    else if (room->cfg.password_protected && affil < MUC_AFFIL_ADMIN && !password_ok(room, x))
        *err = CORE_STANZA_ERR_NOT_AUTHORIZED; /* §7.2.6 */
    else if (room_full(room, affil))
        *err = CORE_STANZA_ERR_SERVICE_UNAVAILABLE; /* §7.2.10 */
    else
        return true;
    return false;
}

static const char *join_error_type(core_stanza_err_t e)
{
    return e == CORE_STANZA_ERR_SERVICE_UNAVAILABLE || e == CORE_STANZA_ERR_RESOURCE_CONSTRAINT
        ? "wait"
        : NULL;
}

/* The join's answer for the joiner: everyone's presence, its own, history, subject (§7.1). */
typedef struct roster_ctx {
    muc_occupant_t *to;
} roster_ctx_t;

static void roster_one(void *ud, const char *key, void *v)
{
    roster_ctx_t *c = ud;
    if (v != c->to)
        muc_presence_send_to(v, c->to);
}

static void join_finish(muc_occupant_t *o, const xml_stanza_t *st, const xml_node_t *x,
                        bool created, bool renamed)
{
    muc_room_t *room = o->room;
    roster_ctx_t rc = {.to = o};
    core_map_each(&room->by_nick, roster_one, &rc);
    int self_codes[4];
    size_t n = 0;
    if (room->cfg.whois == MUC_WHOIS_ANYONE)
        self_codes[n++] = 100; /* §7.2.4 */
    if (room->cfg.logging)
        self_codes[n++] = 170; /* §7.2.12 */
    if (created)
        self_codes[n++] = 201; /* §10.1.1 */
    if (renamed)
        self_codes[n++] = 210; /* §7.2.3 */
    muc_pres_opts_t opts = {
        .self_codes = self_codes, .nself_codes = n, .self_id = xml_stanza_id(st)};
    muc_presence_broadcast(o, &opts);
    muc_hist_request_t req;
    if (muc_history_request_parse(x != NULL ? xml_node_child(x, MUC_NS, "history") : NULL, &req) <
        0)
        muc_history_request_parse(NULL, &req); /* a malformed request gets the defaults */
    muc_message_history_send(room, o, &req);
    muc_message_subject_send(room, o);
}

static muc_occupant_t *occupant_add(muc_room_t *room, const jid_t *from, const char *nick,
                                    const char *fold, const xml_stanza_t *st, muc_affil_t affil)
{
    muc_occupant_t *o = core_calloc(1, sizeof(*o));
    o->room = room;
    o->nick = core_strdup(nick);
    o->fold = core_strdup(fold);
    jid_copy(&o->jid, from);
    o->role = muc_room_default_role(room, affil);
    o->presence = payload_of(st);
    core_map_put(&room->by_nick, fold, strlen(fold), o);
    core_map_put(&room->by_jid, o->jid.full, o->jid.full_len, o);
    room->noccupants++;
    return o;
}

static void join(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to, const char *nick,
                 const char *fold, size_t flen)
{
    const char *node = to->full;
    size_t nlen = to->node_len;
    const xml_node_t *x = xml_node_child(st->root, MUC_NS, "x");
    muc_room_t *room = muc_room_find(muc, node, nlen);
    bool created = false;
    core_stanza_err_t err;
    char *room_jid = core_strndup(to->full, to->bare_len);
    if (room == NULL) {
        if (!may_create(muc, from, &err)) {
            muc_reply_error(muc, st, err, join_error_type(err), room_jid);
            goto out;
        }
        char *bare = core_strndup(from->full, from->bare_len);
        room = muc_room_create(muc, node, nlen, bare);
        muc_room_affil_set(room, bare, MUC_AFFIL_OWNER, NULL);
        core_log(muc->log, CORE_LOG_INFO, 0, "%s created room %s", bare, room->jid);
        core_free(bare);
        created = true;
        /* A new room starts with an empty archive: whatever a room of that name left behind
         * (a temporary room of a muc that crashed) is not for this room's occupants. */
        muc_mam_forget(room);
    }
    muc_affil_t affil = muc_room_affil(room, from->full, from->bare_len);
    if (!may_enter(room, affil, fold, flen, x, &err)) {
        muc_reply_error(muc, st, err, join_error_type(err), room_jid);
        goto out;
    }
    if (muc_register_nick_taken(room, fold, from->full, from->bare_len)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_CONFLICT, NULL, room_jid); /* §7.12 */
        goto out;
    }
    /* §7.2.3 / 210: the nick as prepared differs from the one asked for. */
    const char *asked = strchr(xml_stanza_to(st), '/');
    bool renamed = asked == NULL || strcmp(asked + 1, nick) != 0;
    muc_occupant_t *o = occupant_add(room, from, nick, fold, st, affil);
    core_log(muc->log, CORE_LOG_DEBUG, 0, "%s entered %s as %s", from->full, room->jid, nick);
    join_finish(o, st, x, created, renamed);
out:
    core_free(room_jid);
}

/* ---- occupants' presence ---- */

static void change_nick(muc_occupant_t *o, xml_stanza_t *st, const char *nick, const char *fold)
{
    muc_room_t *room = o->room;
    static const int nick_code[] = {303};
    muc_pres_opts_t gone = {
        .unavailable = true, .role = &o->role, .codes = nick_code, .ncodes = 1, .new_nick = nick};
    muc_presence_broadcast(o, &gone);
    core_map_del(&room->by_nick, o->fold, strlen(o->fold));
    core_free(o->nick);
    core_free(o->fold);
    o->nick = core_strdup(nick);
    o->fold = core_strdup(fold);
    core_map_put(&room->by_nick, fold, strlen(fold), o);
    xml_stanza_unref(o->presence);
    o->presence = payload_of(st);
    const char *asked = strchr(xml_stanza_to(st), '/');
    static const int renamed[] = {210};
    bool r = asked == NULL || strcmp(asked + 1, nick) != 0;
    muc_pres_opts_t back = {
        .self_codes = renamed, .nself_codes = r ? 1 : 0, .self_id = xml_stanza_id(st)};
    muc_presence_broadcast(o, &back);
}

/* §7.2.1 note (v1.32): presence without <x/> from a non-occupant is a client out of sync. */
static void kick_stranger(muc_t *muc, const xml_stanza_t *st, const jid_t *to)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    xml_node_set_attr(p, p->root, NULL, "from", to->full);
    xml_node_set_attr(p, p->root, NULL, "to", xml_stanza_from(st));
    xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
    xml_node_t *x = xml_node_add_element(p, p->root, MUC_NS_USER, "x");
    xml_node_t *item = xml_node_add_element(p, x, MUC_NS_USER, "item");
    xml_node_set_attr(p, item, NULL, "affiliation", "none");
    xml_node_set_attr(p, item, NULL, "role", "none");
    xml_node_t *r = xml_node_add_element(p, item, MUC_NS_USER, "reason");
    static const char why[] = "You are not in the room.";
    xml_node_add_text(p, r, why, sizeof why - 1);
    static const char *const codes[] = {"110", "307", "333"};
    for (size_t i = 0; i < 3; i++) {
        xml_node_t *s = xml_node_add_element(p, x, MUC_NS_USER, "status");
        xml_node_set_attr(p, s, NULL, "code", codes[i]);
    }
    muc_send(muc, p);
    xml_stanza_unref(p);
}

/* Delivery errors that mean the occupant's client is gone (§17.3.3 "ghost users"). */
static bool is_gone_error(const xml_stanza_t *st)
{
    const xml_node_t *e = xml_node_child(st->root, XMLS_NS_CONTENT, "error");
    static const char *const gone[] = {"gone",
                                       "item-not-found",
                                       "recipient-unavailable",
                                       "redirect",
                                       "remote-server-not-found",
                                       "remote-server-timeout",
                                       "service-unavailable"};
    for (const xml_node_t *c = e != NULL ? xml_node_first_element(e) : NULL; c != NULL;
         c = xml_node_next_element(c)) {
        for (size_t i = 0; i < sizeof gone / sizeof gone[0]; i++) {
            if (xml_node_is(c, CORE_NS_STANZA_ERRORS, gone[i]))
                return true;
        }
    }
    return false;
}

void muc_occupant_ghost(muc_t *muc, const xml_stanza_t *st, const jid_t *from, const jid_t *to)
{
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    muc_occupant_t *o = room != NULL ? muc_occupant_by_jid(room, from->full) : NULL;
    if (o == NULL || !is_gone_error(st))
        return;
    static const int codes[] = {333}; /* XEP-0045 §9.1 */
    core_log(muc->log, CORE_LOG_INFO, 0, "%s left %s: its client is gone", from->full, room->jid);
    muc_occupant_remove(o, codes, 1, NULL);
}

void muc_occupant_presence(muc_t *muc, xml_stanza_t *st, const jid_t *from, const jid_t *to)
{
    const char *type = xml_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0) {
        muc_occupant_ghost(muc, st, from, to);
        return;
    }
    muc_room_t *room = muc_room_find(muc, to->full, to->node_len);
    muc_occupant_t *o = room != NULL ? muc_occupant_by_jid(room, from->full) : NULL;
    if (type != NULL && strcmp(type, "unavailable") == 0) {
        if (o != NULL) { /* §7.14; from role none it is silently ignored (§17.2.2) */
            xml_stanza_unref(o->presence);
            o->presence = payload_of(st);
            muc_occupant_remove(o, NULL, 0, NULL);
        }
        return;
    }
    if (type != NULL)
        return; /* probes and subscriptions are not joins (§17.2.2) */
    char *room_jid = core_strndup(to->full, to->bare_len);
    if (!jid_has_resource(to)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_JID_MALFORMED, NULL, room_jid); /* §7.2.1 */
        goto out;
    }
    const char *nick = to->full + to->bare_len + 1;
    char fold[MUC_NICK_FOLD_MAX + 1];
    size_t flen;
    if (!muc_nick_valid(nick, to->res_len) || muc_nick_fold(nick, to->res_len, fold, &flen) < 0) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL, room_jid); /* §15.1 */
        goto out;
    }
    if (o == NULL) {
        if (xml_node_child(st->root, MUC_NS, "x") == NULL)
            kick_stranger(muc, st, to);
        else
            join(muc, st, from, to, nick, fold, flen);
    } else if (strcmp(o->fold, fold) != 0 || strcmp(o->nick, nick) != 0) {
        muc_occupant_t *other = core_map_get(&room->by_nick, fold, flen);
        if ((other != NULL && other != o) ||
            muc_register_nick_taken(room, fold, from->full, from->bare_len))
            muc_reply_error(muc, st, CORE_STANZA_ERR_CONFLICT, NULL, room_jid); /* §7.6 */
        else
            change_nick(o, st, nick, fold);
    } else if (xml_node_child(st->root, MUC_NS, "x") != NULL) {
        /* §7.2.1: a join from an occupant is a client that lost track: send it all again. */
        xml_stanza_unref(o->presence);
        o->presence = payload_of(st);
        join_finish(o, st, xml_node_child(st->root, MUC_NS, "x"), false, false);
    } else {
        xml_stanza_unref(o->presence); /* §7.7: a change of availability */
        o->presence = payload_of(st);
        muc_pres_opts_t opts = {.self_id = xml_stanza_id(st)};
        muc_presence_broadcast(o, &opts);
    }
out:
    core_free(room_jid);
}
