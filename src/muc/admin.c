/* SPDX-License-Identifier: MIT */
/* muc#admin requests: kicks, voice, bans, membership, moderators, admins and owners (§8-§10). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

/* Items in one muc#admin set: a bound on the work one request can ask for. */
#define ADMIN_ITEMS_MAX 1024

/* ---- who asks ---- */

typedef struct actor_scan {
    const jid_t *from;
    muc_actor_t *out;
} actor_scan_t;

static bool same_bare(const jid_t *j, const char *bare, size_t len)
{
    return j->bare_len == len && memcmp(j->full, bare, len) == 0;
}

static void actor_one(void *ud, const char *key, void *v)
{
    actor_scan_t *s = ud;
    muc_occupant_t *o = v;
    if (!same_bare(&o->jid, s->from->full, s->from->bare_len))
        return;
    if (o->role > s->out->role)
        s->out->role = o->role;
    if (s->out->occ == NULL || muc_occupant_session(o, s->from->full) >= 0)
        s->out->occ = o;
}

void muc_admin_actor(const muc_room_t *room, const jid_t *from, muc_actor_t *out)
{
    out->affil = muc_room_affil(room, from->full, from->bare_len);
    out->role = MUC_ROLE_NONE;
    out->occ = NULL;
    actor_scan_t s = {.from = from, .out = out};
    core_map_each(&room->by_nick, actor_one, &s); /* by_jid has an occupant once per session */
    /* §5.1.2: admins and owners are moderators, in the room or about to be. */
    if (out->affil >= MUC_AFFIL_ADMIN)
        out->role = MUC_ROLE_MODERATOR;
}

/* ---- applying changes ---- */

typedef struct occ_vec {
    muc_occupant_t **v;
    size_t n;
    const char *bare;
    size_t blen;
} occ_vec_t;

static void collect_bare(void *ud, const char *key, void *v)
{
    occ_vec_t *l = ud;
    muc_occupant_t *o = v;
    /* §9.2: an affiliation of a domain (no '@') is every user of that domain's too. */
    bool domain = memchr(l->bare, '@', l->blen) == NULL && o->jid.domain_len == l->blen &&
        memcmp(jid_domain_ptr(&o->jid), l->bare, l->blen) == 0;
    if (domain || same_bare(&o->jid, l->bare, l->blen))
        l->v[l->n++] = o;
}

/* The occupants of a bare JID, in a new array (a JID may be in a room from several clients). */
static occ_vec_t occupants_of(const muc_room_t *room, const char *bare)
{
    occ_vec_t l = {.v = core_calloc(room->noccupants + 1, sizeof(muc_occupant_t *)),
                   .bare = bare,
                   .blen = strlen(bare)};
    core_map_each(&room->by_nick, collect_bare, &l);
    return l;
}

bool muc_admin_role_apply(muc_occupant_t *o, muc_role_t r, const char *reason, const char *actor)
{
    if (r == MUC_ROLE_NONE) {
        /* §8.2: the kicked occupant and the others get unavailable presence with 307. */
        static const int kicked[] = {307};
        muc_pres_opts_t opts = {
            .unavailable = true, .codes = kicked, .ncodes = 1, .reason = reason, .actor = actor};
        return muc_occupant_remove_with(o, &opts);
    }
    /* §5.1: in a moderated room a voice given or taken is kept for the next visit. */
    muc_room_role_note(o->room, o->jid.full, o->jid.bare_len, muc_occupant_affil(o), r);
    if (o->role == r)
        return false;
    o->role = r;
    /* §8.3-§8.4, §9.6-§9.7: everyone sees the new role. */
    muc_pres_opts_t opts = {.reason = reason};
    muc_presence_broadcast(o, &opts);
    return false;
}

/* The role an occupant has after its affiliation changed from old to a (§5.1.3 note). */
static muc_role_t role_after(const muc_occupant_t *o, muc_affil_t old, muc_affil_t a)
{
    muc_role_t def = muc_room_default_role(o->room, a);
    /* The role gained with an affiliation is stable; the one lost is ours to choose: the
     * new affiliation's default. */
    if (a > old && o->role > def)
        return o->role;
    return def;
}

bool muc_admin_affil_apply(muc_room_t *room, const char *bare, muc_affil_t a, const char *reason,
                           const char *actor, const char *inviter)
{
    muc_affil_t old = muc_room_affil(room, bare, strlen(bare));
    muc_room_affil_set(room, bare, a, reason);
    if (a == MUC_AFFIL_OUTCAST)
        muc_register_nick_set(room, bare, NULL); /* §9.1: an outcast's nick is free again */
    occ_vec_t l = occupants_of(room, bare);
    bool gone = false;
    for (size_t i = 0; i < l.n && !gone; i++) {
        muc_occupant_t *o = l.v[i];
        /* A user of a banned domain with an affiliation of its own is not banned. */
        if (!same_bare(&o->jid, bare, strlen(bare)) && muc_occupant_affil(o) != MUC_AFFIL_OUTCAST)
            continue;
        if (a == MUC_AFFIL_OUTCAST || (room->cfg.members_only && a < MUC_AFFIL_MEMBER)) {
            /* §9.1: banned (301); §9.4: no longer a member of a members-only room (321),
             * with no presence of the new affiliation before (§9.4 "SHOULD only send"). */
            static const int banned[] = {301}, removed[] = {321};
            muc_pres_opts_t opts = {.unavailable = true,
                                    .codes = a == MUC_AFFIL_OUTCAST ? banned : removed,
                                    .ncodes = 1,
                                    .reason = reason,
                                    .actor = actor};
            gone = muc_occupant_remove_with(o, &opts);
        } else {
            o->role = role_after(o, old, a);
            muc_pres_opts_t opts = {.reason = reason};
            muc_presence_broadcast(o, &opts);
        }
    }
    /* §9.5: "SHOULD send an invitation to any user who has been added to the member list of a
     * members-only room if the user is not currently affiliated". */
    if (!gone && l.n == 0 && inviter != NULL && room->cfg.members_only && a == MUC_AFFIL_MEMBER &&
        old < MUC_AFFIL_MEMBER)
        muc_invite_send(room, bare, inviter, NULL, NULL);
    core_free(l.v);
    return gone;
}

/* ---- muc#admin set: a delta of roles or affiliations (§8.5, §9.2, §9.5, §9.8, §10.5, §10.8) */

typedef struct change {
    bool is_role;
    muc_role_t role;
    muc_affil_t affil;
    muc_occupant_t *occ; /* a role's target, while checking */
    char *occ_nick; /* its nick (owned): found again when applied, earlier items may remove it */
    char *bare; /* an affiliation's target (owned) */
    char *nick; /* a nick to reserve with the affiliation (owned): NULL unchanged, "" none */
    char *reason; /* owned, or NULL */
} change_t;

static void changes_free(change_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        core_free(v[i].bare);
        core_free(v[i].occ_nick);
        core_free(v[i].nick);
        core_free(v[i].reason);
    }
    core_free(v);
}

static bool parse_affil_target(muc_room_t *room, const xml_node_t *el, change_t *ch,
                               core_stanza_err_t *err)
{
    muc_t *muc = room->muc;
    const char *jid = xml_node_attr(el, "jid");
    const char *nick = xml_node_attr(el, "nick");
    if (jid != NULL) {
        jid_t j;
        if (jid_parse(muc->jids, jid, strlen(jid), &j) < 0) {
            *err = CORE_STANZA_ERR_JID_MALFORMED;
            return false;
        }
        /* §10.3: "a request that identifies a user by its full JID ... the bare JID". */
        ch->bare = core_strndup(j.full, j.bare_len);
        jid_clear(&j);
        if (nick != NULL && nick[0] == '\0') {
            ch->nick = core_strdup(""); /* §9.5: an empty nick unsets the reserved one */
        } else if (nick != NULL) {
            char fold[MUC_NICK_FOLD_MAX + 1];
            if (muc_register_nick_prep(muc, nick, strlen(nick), &ch->nick, fold) < 0) {
                *err = CORE_STANZA_ERR_NOT_ACCEPTABLE;
                return false;
            }
        }
        return true;
    }
    muc_occupant_t *o = nick != NULL ? muc_occupant_by_nick(room, nick, strlen(nick)) : NULL;
    if (o == NULL) {
        *err = nick != NULL ? CORE_STANZA_ERR_ITEM_NOT_FOUND : CORE_STANZA_ERR_BAD_REQUEST;
        return false;
    }
    ch->bare = core_strndup(o->jid.full, o->jid.bare_len);
    return true;
}

static bool parse_item(muc_room_t *room, const xml_node_t *el, change_t *ch, core_stanza_err_t *err)
{
    const char *role = xml_node_attr(el, "role");
    const char *affil = xml_node_attr(el, "affiliation");
    const xml_node_t *r = xml_node_child(el, MUC_NS_ADMIN, "reason");
    if (r != NULL) {
        size_t len;
        const char *text = xml_node_text(r, &len);
        ch->reason = core_strndup(text, len);
    }
    *err = CORE_STANZA_ERR_BAD_REQUEST;
    /* §8.5, §9.2: an item changes a role (by nick) or an affiliation (by JID), not both. */
    if ((role == NULL) == (affil == NULL))
        return false;
    if (role != NULL) {
        const char *nick = xml_node_attr(el, "nick");
        ch->is_role = true;
        if (muc_role_parse(role, &ch->role) < 0 || nick == NULL)
            return false;
        ch->occ = muc_occupant_by_nick(room, nick, strlen(nick));
        if (ch->occ == NULL) {
            *err = CORE_STANZA_ERR_ITEM_NOT_FOUND;
            return false;
        }
        ch->occ_nick = core_strdup(ch->occ->nick);
        return true;
    }
    if (muc_affil_parse(affil, &ch->affil) < 0)
        return false;
    return parse_affil_target(room, el, ch, err);
}

/* The affiliation stored for a bare JID (service admins own rooms without being stored). */
static muc_affil_t stored_affil(const muc_room_t *room, const char *bare)
{
    const muc_affiliation_t *a = core_map_get(&room->affils, bare, strlen(bare));
    return a != NULL ? a->affil : MUC_AFFIL_NONE;
}

static bool duplicate(const change_t *v, size_t i)
{
    for (size_t k = 0; k < i; k++) {
        if (v[k].is_role != v[i].is_role)
            continue;
        if (v[i].is_role ? v[k].occ == v[i].occ : strcmp(v[k].bare, v[i].bare) == 0)
            return true;
    }
    return false;
}

static bool nick_taken(const muc_room_t *room, const change_t *c)
{
    char fold[MUC_NICK_FOLD_MAX + 1];
    size_t flen;
    if (c->nick == NULL || c->nick[0] == '\0' ||
        muc_nick_fold(c->nick, strlen(c->nick), fold, &flen) < 0)
        return false;
    return muc_register_nick_taken(room, fold, c->bare, strlen(c->bare));
}

/* Every change allowed, or none is made (§9.2: "SHOULD NOT apply any of the requested changes"). */
static bool check_all(const muc_room_t *room, const jid_t *from, const muc_actor_t *actor,
                      const change_t *v, size_t n, core_stanza_err_t *why)
{
    size_t no;
    core_free(muc_room_affil_list(room, MUC_AFFIL_OWNER, &no));
    bool owner_removed = false;
    for (size_t i = 0; i < n; i++) {
        const change_t *c = &v[i];
        if (duplicate(v, i)) {
            *why = CORE_STANZA_ERR_BAD_REQUEST; /* one change per target, or which one wins? */
            return false;
        }
        if (c->is_role) {
            bool self = jid_bare_equal(&c->occ->jid, from);
            if (!muc_rules_role_change(actor->affil, actor->role, muc_occupant_affil(c->occ),
                                       c->occ->role, c->role, self, why))
                return false;
            continue;
        }
        bool self = same_bare(from, c->bare, strlen(c->bare));
        muc_affil_t old = muc_room_affil(room, c->bare, strlen(c->bare));
        if (!muc_rules_affil_change(actor->affil, old, c->affil, self, why))
            return false;
        if (nick_taken(room, c)) {
            *why = CORE_STANZA_ERR_CONFLICT; /* §7.10: a nick is reserved for one user */
            return false;
        }
        muc_affil_t kept = stored_affil(room, c->bare);
        if (kept == MUC_AFFIL_OWNER && c->affil != MUC_AFFIL_OWNER) {
            no--;
            owner_removed = true;
        } else if (kept != MUC_AFFIL_OWNER && c->affil == MUC_AFFIL_OWNER) {
            no++;
        }
    }
    /* §10.7: "MUST NOT allow an owner to revoke his or her own owner status if there are no
     * other owners ... conflict"; nor anyone else to take the last owner away. */
    if (owner_removed && no == 0) {
        *why = CORE_STANZA_ERR_CONFLICT;
        return false;
    }
    return true;
}

static bool apply_one(muc_room_t *room, const change_t *c, const char *actor, const char *by)
{
    muc_t *muc = room->muc;
    if (c->is_role) {
        /* A ban earlier in the same request may have taken the occupant out. */
        muc_occupant_t *o = muc_occupant_by_nick(room, c->occ_nick, strlen(c->occ_nick));
        if (o == NULL)
            return false;
        core_log(muc->log, CORE_LOG_INFO, 0, "%s: %s made %s %s", room->jid, by, o->nick,
                 muc_role_name(c->role));
        return muc_admin_role_apply(o, c->role, c->reason, actor);
    }
    core_log(muc->log, CORE_LOG_INFO, 0, "%s: %s made %s %s", room->jid, by, c->bare,
             muc_affil_name(c->affil));
    bool gone = muc_admin_affil_apply(room, c->bare, c->affil, c->reason, actor, by);
    /* §9.3: "if a nick is provided, that nick becomes the user's default nick in the room". */
    if (!gone && c->nick != NULL && c->affil >= MUC_AFFIL_MEMBER)
        muc_register_nick_set(room, c->bare, c->nick);
    return gone;
}

static void change_set(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from,
                       const muc_actor_t *actor, const xml_node_t *q)
{
    size_t n = 0;
    for (const xml_node_t *el = xml_node_child(q, MUC_NS_ADMIN, "item"); el != NULL;
         el = xml_node_next_element(el))
        n += xml_node_is(el, MUC_NS_ADMIN, "item");
    core_stanza_err_t why = CORE_STANZA_ERR_BAD_REQUEST;
    change_t *v = core_calloc(n + 1, sizeof(change_t));
    size_t parsed = 0;
    bool ok = n > 0 && n <= ADMIN_ITEMS_MAX;
    for (const xml_node_t *el = xml_node_child(q, MUC_NS_ADMIN, "item"); ok && el != NULL;
         el = xml_node_next_element(el)) {
        if (xml_node_is(el, MUC_NS_ADMIN, "item"))
            ok = parse_item(room, el, &v[parsed++], &why);
    }
    if (ok)
        ok = check_all(room, from, actor, v, n, &why);
    if (!ok) {
        core_log(muc->log, CORE_LOG_INFO, 0, "%s: muc#admin change by %s refused: %s", room->jid,
                 from->full, core_stanza_err_name(why));
        muc_reply_error(muc, st, why, NULL, room->jid);
        changes_free(v, parsed);
        return;
    }
    /* §8.2: the moderator hears of success before the others hear of the change. */
    xml_stanza_t *r = xml_stanza_iq_result(st);
    muc_send(muc, r);
    xml_stanza_unref(r);
    char *actor_nick = actor->occ != NULL ? core_strdup(actor->occ->nick) : NULL;
    char *inviter = core_strndup(from->full, from->bare_len);
    bool gone = false;
    for (size_t i = 0; i < n && !gone; i++)
        gone = apply_one(room, &v[i], actor_nick, inviter);
    if (!gone)
        muc_room_save(room); /* affiliations and reserved nicks are the room's state */
    core_free(actor_nick);
    core_free(inviter);
    changes_free(v, n);
}

/* ---- muc#admin get: the lists ---- */

typedef struct role_list {
    muc_occupant_t **v;
    size_t n;
    muc_role_t want;
} role_list_t;

static void collect_role(void *ud, const char *key, void *v)
{
    role_list_t *l = ud;
    muc_occupant_t *o = v;
    if (o->role == l->want)
        l->v[l->n++] = o;
}

static int cmp_nick(const void *a, const void *b)
{
    return strcmp((*(muc_occupant_t *const *)a)->nick, (*(muc_occupant_t *const *)b)->nick);
}

static void role_items(xml_stanza_t *r, xml_node_t *q, const muc_room_t *room, muc_role_t want)
{
    role_list_t l = {.v = core_calloc(room->noccupants + 1, sizeof(muc_occupant_t *)),
                     .want = want};
    core_map_each(&room->by_nick, collect_role, &l);
    qsort(l.v, l.n, sizeof(l.v[0]), cmp_nick); /* stable answers for clients and tests */
    for (size_t i = 0; i < l.n; i++) {
        xml_node_t *it = xml_node_add_element(r, q, MUC_NS_ADMIN, "item");
        /* §8.5: nick and role MUST, affiliation and jid SHOULD (moderators see JIDs). */
        xml_node_set_attr(r, it, NULL, "affiliation", muc_affil_name(muc_occupant_affil(l.v[i])));
        xml_node_set_attr(r, it, NULL, "jid", l.v[i]->jid.full);
        xml_node_set_attr(r, it, NULL, "nick", l.v[i]->nick);
        xml_node_set_attr(r, it, NULL, "role", muc_role_name(want));
    }
    core_free(l.v);
}

static void affil_items(xml_stanza_t *r, xml_node_t *q, const muc_room_t *room, muc_affil_t want)
{
    size_t n;
    const char **jids = muc_room_affil_list(room, want, &n);
    for (size_t i = 0; i < n; i++) {
        const muc_affiliation_t *a = core_map_get(&room->affils, jids[i], strlen(jids[i]));
        xml_node_t *it = xml_node_add_element(r, q, MUC_NS_ADMIN, "item");
        /* §9.2, §9.5: affiliation and jid; the reserved nick of a member (§9.5). */
        xml_node_set_attr(r, it, NULL, "affiliation", muc_affil_name(want));
        xml_node_set_attr(r, it, NULL, "jid", jids[i]);
        if (a->nick != NULL)
            xml_node_set_attr(r, it, NULL, "nick", a->nick);
        if (a->reason != NULL && a->reason[0] != '\0') {
            xml_node_t *re = xml_node_add_element(r, it, MUC_NS_ADMIN, "reason");
            xml_node_add_text(r, re, a->reason, strlen(a->reason));
        }
    }
    core_free(jids);
}

static void list_get(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const muc_actor_t *actor,
                     const xml_node_t *q)
{
    const xml_node_t *item = xml_node_child(q, MUC_NS_ADMIN, "item");
    const char *role = item != NULL ? xml_node_attr(item, "role") : NULL;
    const char *affil = item != NULL ? xml_node_attr(item, "affiliation") : NULL;
    muc_role_t want_role = MUC_ROLE_NONE;
    muc_affil_t want_affil = MUC_AFFIL_NONE;
    core_stanza_err_t why = CORE_STANZA_ERR_BAD_REQUEST;
    bool ok = (role == NULL) != (affil == NULL);
    if (ok && role != NULL) {
        ok = muc_role_parse(role, &want_role) == 0 && want_role != MUC_ROLE_NONE &&
            muc_rules_role_list(actor->affil, actor->role, &why);
    } else if (ok) {
        /* getmemberlist is about the role held in the room, not the one an admin would have. */
        muc_role_t seen = actor->occ != NULL ? actor->occ->role : MUC_ROLE_NONE;
        ok = muc_affil_parse(affil, &want_affil) == 0 &&
            muc_rules_affil_list(want_affil, actor->affil, seen, &room->cfg, &why);
    }
    if (!ok) {
        muc_reply_error(muc, st, why, NULL, room->jid);
        return;
    }
    xml_stanza_t *r = xml_stanza_iq_result(st);
    xml_node_t *rq = xml_node_add_element(r, r->root, MUC_NS_ADMIN, "query");
    if (role != NULL)
        role_items(r, rq, room, want_role);
    else
        affil_items(r, rq, room, want_affil);
    muc_send(muc, r);
    xml_stanza_unref(r);
}

void muc_admin_iq(muc_t *muc, xml_stanza_t *st, muc_room_t *room, const jid_t *from)
{
    const char *type = xml_stanza_type(st);
    const xml_node_t *q = xml_node_first_element(st->root);
    muc_actor_t actor;
    muc_admin_actor(room, from, &actor);
    if (strcmp(type, "get") == 0)
        list_get(muc, st, room, &actor, q);
    else
        change_set(muc, st, room, from, &actor, q);
}
