/* SPDX-License-Identifier: MIT */
/* Occupants and their sessions: entering (and creating) a room, presence, nicks, leaving. */
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

int muc_occupant_session(const muc_occupant_t *o, const char *full)
{
    for (size_t i = 0; i < o->nsessions; i++) {
        if (strcmp(o->sessions[i].jid.full, full) == 0)
            return (int)i;
    }
    return -1;
}

void muc_occupant_send(const muc_occupant_t *o, xml_stanza_t *src)
{
    for (size_t i = 0; i < o->nsessions; i++) {
        xml_stanza_t *c = muc_stanza_readdress(src, NULL, o->sessions[i].jid.full);
        muc_send(o->room->muc, c);
        xml_stanza_unref(c);
    }
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

void muc_occupant_free(muc_occupant_t *o)
{
    for (size_t i = 0; i < o->nsessions; i++) {
        jid_clear(&o->sessions[i].jid);
        xml_stanza_unref(o->sessions[i].presence);
    }
    core_free(o->sessions);
    core_free(o->nick);
    core_free(o->fold);
    jid_clear(&o->jid);
    xml_stanza_unref(o->presence);
    core_free(o);
}

static bool same_bytes(xml_stanza_t *a, xml_stanza_t *b)
{
    size_t al, bl;
    const char *ab = xml_stanza_bytes(a, &al);
    const char *bb = xml_stanza_bytes(b, &bl);
    return al == bl && memcmp(ab, bb, al) == 0;
}

/*
 * What the occupant shows others: the presence its sessions sent last (§7.7, from any of
 * them), and the real JID of its oldest session. True if either changed.
 */
static bool occupant_reshow(muc_occupant_t *o)
{
    size_t k = 0;
    for (size_t i = 1; i < o->nsessions; i++) {
        if (o->sessions[i].seq > o->sessions[k].seq)
            k = i;
    }
    xml_stanza_t *p = o->sessions[k].presence;
    bool changed = o->presence == NULL || (p != o->presence && !same_bytes(o->presence, p));
    xml_stanza_ref(p);
    xml_stanza_unref(o->presence);
    o->presence = p;
    if (strcmp(o->jid.full, o->sessions[0].jid.full) != 0) {
        jid_clear(&o->jid);
        jid_copy(&o->jid, &o->sessions[0].jid);
        changed = true;
    }
    return changed;
}

/* Session i sent st: its presence is the one shown now. */
static void session_presence_set(muc_occupant_t *o, size_t i, const xml_stanza_t *st)
{
    muc_session_t *s = &o->sessions[i];
    xml_stanza_unref(s->presence);
    s->presence = payload_of(st);
    s->seq = ++o->seq;
}

/* A new session of o (the array may move: no session pointer survives this). */
static void session_add(muc_occupant_t *o, const jid_t *from, const xml_stanza_t *st)
{
    o->sessions = core_realloc(o->sessions, (o->nsessions + 1) * sizeof(*o->sessions));
    muc_session_t *s = &o->sessions[o->nsessions++];
    memset(s, 0, sizeof(*s));
    jid_copy(&s->jid, from);
    core_map_put(&o->room->by_jid, s->jid.full, s->jid.full_len, o);
    session_presence_set(o, o->nsessions - 1, st);
}

/*
 * Session i of an occupant that has others goes alone (§7.14 for that client): only it hears
 * (unavailable, 110, codes); the room sees nothing unless what the occupant shows changed.
 * st: its unavailable presence, or NULL.
 */
static void session_leave(muc_occupant_t *o, size_t i, const xml_stanza_t *st, const int *codes,
                          size_t ncodes)
{
    muc_room_t *room = o->room;
    muc_session_t *s = &o->sessions[i];
    xml_stanza_t *last = st != NULL ? payload_of(st) : NULL;
    muc_pres_opts_t gone = {.unavailable = true,
                            .codes = codes,
                            .ncodes = ncodes,
                            .origin = s->jid.full,
                            .origin_only = true,
                            .presence = last};
    muc_presence_self(o, &gone);
    xml_stanza_unref(last);
    core_log(room->muc->log, CORE_LOG_DEBUG, 0, "%s left %s (%zu sessions of %s remain)",
             s->jid.full, room->jid, o->nsessions - 1, o->nick);
    core_map_del(&room->by_jid, s->jid.full, s->jid.full_len);
    jid_clear(&s->jid);
    xml_stanza_unref(s->presence);
    memmove(&o->sessions[i], &o->sessions[i + 1], (o->nsessions - i - 1) * sizeof(*s));
    o->nsessions--;
    if (occupant_reshow(o))
        muc_presence_broadcast(o, NULL);
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
    for (size_t i = 0; i < o->nsessions; i++)
        core_map_del(&room->by_jid, o->sessions[i].jid.full, o->sessions[i].jid.full_len);
    room->noccupants--;
    core_log(room->muc->log, CORE_LOG_DEBUG, 0, "%s left %s", o->jid.full, room->jid);
    muc_occupant_free(o);
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

/*
 * §7.2.6-7.2.10: may this user enter the existing room under this nick? same: the occupant
 * of the user's own bare JID that holds the nick, which it joins as one more session.
 */
static bool may_enter(muc_room_t *room, muc_affil_t affil, const char *fold, size_t flen,
                      const muc_occupant_t *same, const xml_node_t *x, core_stanza_err_t *err)
{
    if (room->locked && affil != MUC_AFFIL_OWNER)
        *err = CORE_STANZA_ERR_ITEM_NOT_FOUND; /* §7.2.11 */
    else if (affil == MUC_AFFIL_OUTCAST)
        *err = CORE_STANZA_ERR_FORBIDDEN; /* §7.2.8 */
    else if (room->cfg.members_only && affil < MUC_AFFIL_MEMBER)
        *err = CORE_STANZA_ERR_REGISTRATION_REQUIRED; /* §7.2.7 */
    else if (same == NULL && core_map_get(&room->by_nick, fold, flen) != NULL)
        *err = CORE_STANZA_ERR_CONFLICT; /* §7.2.9 */
    else if (same != NULL && same->nsessions >= MUC_SESSIONS_MAX)
        *err = CORE_STANZA_ERR_CONFLICT; /* §7.2.9 "SHOULD allow": as far as our bound goes */
    else if (room->cfg.password_protected && affil < MUC_AFFIL_ADMIN && !password_ok(room, x))
        *err = CORE_STANZA_ERR_NOT_AUTHORIZED; /* §7.2.6 */
    else if (same == NULL && room_full(room, affil))
        *err = CORE_STANZA_ERR_SERVICE_UNAVAILABLE; /* §7.2.10: sessions are not occupants */
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

/*
 * The join's answer for the joining session 'to': everyone's presence, its own, history,
 * subject (§7.1). The other occupants get o's presence as an update would send it (a second
 * session of an occupant enters under a nick that is already there).
 */
typedef struct roster_ctx {
    muc_occupant_t *o;
    const char *to;
} roster_ctx_t;

static void roster_one(void *ud, const char *key, void *v)
{
    roster_ctx_t *c = ud;
    if (v != c->o)
        muc_presence_send_to(v, c->o, c->to);
}

static void join_finish(muc_occupant_t *o, const char *to, const xml_stanza_t *st,
                        const xml_node_t *x, bool created, bool renamed)
{
    muc_room_t *room = o->room;
    roster_ctx_t rc = {.o = o, .to = to};
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
        .self_codes = self_codes, .nself_codes = n, .self_id = xml_stanza_id(st), .origin = to};
    muc_presence_broadcast(o, &opts);
    muc_hist_request_t req;
    if (muc_history_request_parse(x != NULL ? xml_node_child(x, MUC_NS, "history") : NULL, &req) <
        0)
        muc_history_request_parse(NULL, &req); /* a malformed request gets the defaults */
    muc_message_history_send(room, to, &req);
    muc_message_subject_send(room, to);
}

static muc_occupant_t *occupant_add(muc_room_t *room, const jid_t *from, const char *nick,
                                    const char *fold, const xml_stanza_t *st, muc_affil_t affil)
{
    muc_occupant_t *o = core_calloc(1, sizeof(*o));
    o->room = room;
    o->nick = core_strdup(nick);
    o->fold = core_strdup(fold);
    jid_copy(&o->jid, from);
    /* §5.1: in a moderated room the voice a moderator gave or took stays for the next visit. */
    o->role = muc_room_role_on_entry(room, from->full, from->bare_len, affil);
    core_map_put(&room->by_nick, fold, strlen(fold), o);
    session_add(o, from, st);
    occupant_reshow(o);
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
    /* §7.2.9: the nick held by the user's own bare JID is one more session, not a conflict. */
    muc_occupant_t *same = core_map_get(&room->by_nick, fold, flen);
    if (same != NULL && !jid_bare_equal(&same->jid, from))
        same = NULL;
    if (!may_enter(room, affil, fold, flen, same, x, &err)) {
        muc_reply_error(muc, st, err, join_error_type(err), room_jid);
        goto out;
    }
    if (muc_register_nick_taken(room, fold, from->full, from->bare_len)) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_CONFLICT, NULL, room_jid); /* §7.12 */
        goto out;
    }
    /* §7.2.3 / 210: the nick as prepared differs from the one asked for. */
    const char *asked = strchr(xml_stanza_to(st), '/');
    bool renamed = asked == NULL || strcmp(asked + 1, same != NULL ? same->nick : nick) != 0;
    muc_occupant_t *o = same;
    if (o != NULL) {
        session_add(o, from, st);
        occupant_reshow(o);
    } else {
        o = occupant_add(room, from, nick, fold, st, affil);
    }
    core_log(muc->log, CORE_LOG_DEBUG, 0, "%s entered %s as %s (%zu sessions)", from->full,
             room->jid, o->nick, o->nsessions);
    join_finish(o, from->full, st, x, created, renamed);
out:
    core_free(room_jid);
}

/* ---- occupants' presence ---- */

/* §7.6 by one session: the occupant, every session of it, goes to the new nick. */
static void change_nick(muc_occupant_t *o, size_t si, xml_stanza_t *st, const char *nick,
                        const char *fold)
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
    session_presence_set(o, si, st);
    occupant_reshow(o);
    const char *asked = strchr(xml_stanza_to(st), '/');
    static const int renamed[] = {210};
    bool r = asked == NULL || strcmp(asked + 1, nick) != 0;
    muc_pres_opts_t back = {.self_codes = renamed,
                            .nself_codes = r ? 1 : 0,
                            .self_id = xml_stanza_id(st),
                            .origin = o->sessions[si].jid.full};
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
    if (o->nsessions > 1)
        session_leave(o, (size_t)muc_occupant_session(o, from->full), NULL, codes, 1);
    else
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
    int si = o != NULL ? muc_occupant_session(o, from->full) : -1;
    if (type != NULL && strcmp(type, "unavailable") == 0) {
        if (o != NULL && o->nsessions > 1) {
            session_leave(o, (size_t)si, st, NULL, 0); /* the occupant stays */
        } else if (o != NULL) { /* §7.14; from role none it is silently ignored (§17.2.2) */
            session_presence_set(o, (size_t)si, st);
            occupant_reshow(o);
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
            change_nick(o, (size_t)si, st, nick, fold);
    } else if (xml_node_child(st->root, MUC_NS, "x") != NULL) {
        /* §7.2.1: a join from an occupant is a client that lost track: send it all again. */
        session_presence_set(o, (size_t)si, st);
        occupant_reshow(o);
        join_finish(o, from->full, st, xml_node_child(st->root, MUC_NS, "x"), false, false);
    } else {
        session_presence_set(o, (size_t)si, st); /* §7.7: a change of availability */
        occupant_reshow(o);
        muc_pres_opts_t opts = {.self_id = xml_stanza_id(st), .origin = from->full};
        muc_presence_broadcast(o, &opts);
    }
out:
    core_free(room_jid);
}
