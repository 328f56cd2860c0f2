/* SPDX-License-Identifier: MIT */
/* Rooms: their lifecycle, their affiliations, and the roles and affiliations of XEP-0045 §5. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};
static const char *const affil_names[] = {"outcast", "none", "member", "admin", "owner"};

const char *muc_role_name(muc_role_t r)
{
    return (unsigned)r < 4 ? role_names[r] : "none";
}

const char *muc_affil_name(muc_affil_t a)
{
    return (unsigned)a < 5 ? affil_names[a] : "none";
}

int muc_role_parse(const char *s, muc_role_t *out)
{
    for (unsigned i = 0; s != NULL && i < 4; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (muc_role_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

int muc_affil_parse(const char *s, muc_affil_t *out)
{
    for (unsigned i = 0; s != NULL && i < 5; i++) {
        if (strcmp(s, affil_names[i]) == 0) {
            *out = (muc_affil_t)i;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- configuration values ---- */

void muc_room_config_defaults(muc_room_config_t *c, const muc_config_t *mc)
{
    memset(c, 0, sizeof(*c));
    c->name = core_strdup("");
    c->desc = core_strdup("");
    c->lang = core_strdup("");
    c->password = core_strdup("");
    c->persistent = mc->room_persistent;
    c->public_room = mc->room_public;
    c->whois = mc->room_whois == 1 ? MUC_WHOIS_ANYONE : MUC_WHOIS_MODERATORS;
    c->allowpm = (muc_allowpm_t)mc->room_allowpm;
    c->change_subject = mc->room_changesubject;
    c->maxusers = mc->room_maxusers;
    c->presence_broadcast = MUC_ROLES_ALL;
    c->get_member_list = MUC_ROLES_ALL;
    c->history_length = mc->history_default;
    c->archiving = mc->room_archiving == MUC_MAM_ALWAYS ||
        (mc->room_archiving == MUC_MAM_PUBLIC && c->public_room);
}

void muc_room_config_copy(muc_room_config_t *dst, const muc_room_config_t *src)
{
    *dst = *src;
    dst->name = core_strdup(src->name);
    dst->desc = core_strdup(src->desc);
    dst->lang = core_strdup(src->lang);
    dst->password = core_strdup(src->password);
}

void muc_room_config_clear(muc_room_config_t *c)
{
    core_free(c->name);
    core_free(c->desc);
    core_free(c->lang);
    core_free(c->password);
    memset(c, 0, sizeof(*c));
}

/* ---- rooms ---- */

muc_room_t *muc_room_find(muc_t *muc, const char *node, size_t len)
{
    return core_map_get(&muc->rooms, node, len);
}

muc_room_t *muc_room_create(muc_t *muc, const char *node, size_t len, const char *creator)
{
    muc_room_t *room = core_calloc(1, sizeof(*room));
    room->muc = muc;
    room->node = core_strndup(node, len);
    size_t jl = len + 1 + strlen(muc->cfg->name) + 1;
    room->jid = core_malloc(jl);
    memcpy(room->jid, node, len);
    room->jid[len] = '@';
    memcpy(room->jid + len + 1, muc->cfg->name, strlen(muc->cfg->name) + 1);
    muc_room_config_defaults(&room->cfg, muc->cfg);
    core_map_init(&room->affils);
    core_map_init(&room->by_nick);
    core_map_init(&room->by_jid);
    core_map_init(&room->role_memos);
    core_map_init(&room->reg_requests);
    room->creator = creator != NULL ? core_strdup(creator) : NULL;
    room->locked = true;
    core_map_put(&muc->rooms, node, len, room);
    muc->nrooms++;
    return room;
}

static void affil_free_cb(void *ud, const char *key, void *v)
{
    muc_affiliation_t *a = v;
    core_free(a->jid);
    core_free(a->reason);
    core_free(a->nick);
    core_free(a->nick_fold);
    core_free(a);
}

static void occupant_free_cb(void *ud, const char *key, void *v)
{
    muc_occupant_free(v);
}

void muc_room_destroy(muc_room_t *room)
{
    muc_t *muc = room->muc;
    if (core_map_del(&muc->rooms, room->node, strlen(room->node)) != NULL)
        muc->nrooms--;
    core_map_each(&room->by_nick, occupant_free_cb, NULL);
    core_map_free(&room->by_nick);
    core_map_free(&room->by_jid);
    core_map_each(&room->affils, affil_free_cb, NULL);
    core_map_free(&room->affils);
    muc_room_roles_clear(room);
    core_map_free(&room->role_memos);
    muc_regapprove_clear(room);
    core_map_free(&room->reg_requests);
    muc_room_config_clear(&room->cfg);
    muc_history_clear(&room->history);
    muc_invitations_clear(room);
    core_free(room->subject);
    core_free(room->subject_nick);
    core_free(room->creator);
    core_free(room->node);
    core_free(room->jid);
    core_free(room);
}

bool muc_room_gc(muc_room_t *room)
{
    if (room->noccupants > 0 || (room->cfg.persistent && !room->locked))
        return false;
    core_log(room->muc->log, CORE_LOG_INFO, 0, "room %s is empty and temporary: gone", room->jid);
    /* Nobody could reach its archive any more, and a new room of that name must not inherit it. */
    muc_mam_forget(room);
    muc_room_destroy(room);
    return true;
}

typedef struct count_ctx {
    const char *creator;
    size_t n;
} count_ctx_t;

static void count_cb(void *ud, const char *key, void *v)
{
    count_ctx_t *c = ud;
    const muc_room_t *room = v;
    if (room->creator != NULL && strcmp(room->creator, c->creator) == 0)
        c->n++;
}

size_t muc_room_count_by(const muc_t *muc, const char *creator)
{
    count_ctx_t c = {.creator = creator};
    core_map_each(&muc->rooms, count_cb, &c);
    return c.n;
}

/* ---- affiliations ---- */

muc_affil_t muc_room_affil(const muc_room_t *room, const char *bare, size_t len)
{
    const muc_affiliation_t *a = core_map_get(&room->affils, bare, len);
    if (a != NULL)
        return a->affil;
    /* §9.2: a ban of a domain bans its users ("<domain> (the domain itself matches, as does
     * any user@domain)"). */
    const char *at = memchr(bare, '@', len);
    if (at != NULL) {
        a = core_map_get(&room->affils, at + 1, len - (size_t)(at + 1 - bare));
        if (a != NULL && a->affil == MUC_AFFIL_OUTCAST)
            return MUC_AFFIL_OUTCAST;
    }
    /* Service admins own every room (XEP-0045 §5.2: a service may have such admins). */
    if (muc_is_admin(room->muc, bare, len))
        return MUC_AFFIL_OWNER;
    return MUC_AFFIL_NONE;
}

void muc_room_affil_set(muc_room_t *room, const char *bare, muc_affil_t affil, const char *reason)
{
    size_t len = strlen(bare);
    muc_affiliation_t *a = core_map_get(&room->affils, bare, len);
    room->dirty = true;
    /* §5.1: a role kept across visits was about the old affiliation. */
    if ((a != NULL ? a->affil : MUC_AFFIL_NONE) != affil)
        muc_room_role_forget(room, bare, len);
    /* §9.9: a request to register is moot once an admin gave an affiliation (or a ban). */
    if (affil != MUC_AFFIL_NONE)
        muc_regapprove_forget(room, bare, len);
    if (affil == MUC_AFFIL_NONE) {
        if (a != NULL) {
            core_map_del(&room->affils, bare, len);
            affil_free_cb(NULL, NULL, a);
            room->naffils--;
        }
        return;
    }
    if (a == NULL) {
        a = core_calloc(1, sizeof(*a));
        a->jid = core_strndup(bare, len);
        core_map_put(&room->affils, bare, len, a);
        room->naffils++;
    }
    a->affil = affil;
    core_free(a->reason);
    a->reason = reason != NULL ? core_strdup(reason) : NULL;
}

typedef struct each_ctx {
    void (*fn)(void *ud, muc_affiliation_t *a);
    void *ud;
} each_ctx_t;

static void each_cb(void *ud, const char *key, void *v)
{
    each_ctx_t *c = ud;
    c->fn(c->ud, v);
}

void muc_room_affil_each(const muc_room_t *room, void (*fn)(void *ud, muc_affiliation_t *a),
                         void *ud)
{
    each_ctx_t c = {.fn = fn, .ud = ud};
    core_map_each(&room->affils, each_cb, &c);
}

typedef struct list_ctx {
    muc_affil_t want;
    const char **v;
    size_t n;
} list_ctx_t;

static void list_cb(void *ud, muc_affiliation_t *a)
{
    list_ctx_t *c = ud;
    if (a->affil == c->want)
        c->v[c->n++] = a->jid;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

const char **muc_room_affil_list(const muc_room_t *room, muc_affil_t a, size_t *n)
{
    list_ctx_t c = {.want = a, .v = core_calloc(room->naffils + 1, sizeof(char *))};
    muc_room_affil_each(room, list_cb, &c);
    qsort(c.v, c.n, sizeof(char *), cmp_str); /* stable output for forms and tests */
    *n = c.n;
    return c.v;
}

muc_role_t muc_room_default_role(const muc_room_t *room, muc_affil_t a)
{
    switch (a) {
    case MUC_AFFIL_OWNER:
    case MUC_AFFIL_ADMIN:
        return MUC_ROLE_MODERATOR;
    case MUC_AFFIL_MEMBER:
        return MUC_ROLE_PARTICIPANT;
    case MUC_AFFIL_NONE:
        return room->cfg.moderated ? MUC_ROLE_VISITOR : MUC_ROLE_PARTICIPANT;
    default:
        return MUC_ROLE_NONE;
    }
}
