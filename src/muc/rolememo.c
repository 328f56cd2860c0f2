/* SPDX-License-Identifier: MIT */
/* Roles kept across visits in moderated rooms: the voice a moderator gave or took (§5.1). */
#include "muc/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/*
 * XEP-0045 §5.1: "An implementation MAY persist roles across visits and SHOULD do so for
 * moderated rooms (since the distinction between visitor and participant is critical to the
 * functioning of a moderated room)". We keep, per bare JID, the voice a moderator gave to a
 * visitor or took from a participant when its affiliation would not give that role anyway;
 * the memo ends when the affiliation changes or the room stops being moderated.
 */

static void memo_free(muc_role_memo_t *m)
{
    core_free(m->jid);
    core_free(m);
}

/* May an affiliation's role be kept at all? Admins and owners are always moderators. */
static bool keepable(muc_affil_t affil, muc_role_t role)
{
    return (affil == MUC_AFFIL_NONE || affil == MUC_AFFIL_MEMBER) &&
        (role == MUC_ROLE_VISITOR || role == MUC_ROLE_PARTICIPANT);
}

muc_role_t muc_room_role_on_entry(const muc_room_t *room, const char *bare, size_t len,
                                  muc_affil_t affil)
{
    muc_role_t def = muc_room_default_role(room, affil);
    if (!room->cfg.moderated || !keepable(affil, def))
        return def;
    const muc_role_memo_t *m = core_map_get(&room->role_memos, bare, len);
    return m != NULL ? m->role : def;
}

typedef struct oldest_ctx {
    muc_role_memo_t *m;
} oldest_ctx_t;

static void oldest_one(void *ud, const char *key, void *v)
{
    oldest_ctx_t *c = ud;
    muc_role_memo_t *m = v;
    if (c->m == NULL || m->seq < c->m->seq)
        c->m = m;
}

/* Sets the memo of bare[0..len), dropping the oldest one when the room has its fill. */
static void memo_set(muc_room_t *room, const char *bare, size_t len, muc_role_t role)
{
    muc_role_memo_t *m = core_map_get(&room->role_memos, bare, len);
    if (m == NULL) {
        if (room->nrole_memos >= MUC_ROLE_MEMO_MAX) {
            oldest_ctx_t c = {0};
            core_map_each(&room->role_memos, oldest_one, &c); /* only when full: O(n) is fine */
            muc_room_role_forget(room, c.m->jid, strlen(c.m->jid));
        }
        m = core_calloc(1, sizeof(*m));
        m->jid = core_strndup(bare, len);
        core_map_put(&room->role_memos, bare, len, m);
        room->nrole_memos++;
    }
    m->role = role;
    m->seq = ++room->role_memo_seq;
}

void muc_room_role_note(muc_room_t *room, const char *bare, size_t len, muc_affil_t affil,
                        muc_role_t role)
{
    if (!room->cfg.moderated || !keepable(affil, role))
        return;
    if (role == muc_room_default_role(room, affil)) {
        /* The affiliation gives it anyway: nothing to remember, and an old memo is void. */
        muc_room_role_forget(room, bare, len);
        return;
    }
    memo_set(room, bare, len, role);
    room->dirty = true;
}

int muc_room_role_put(muc_room_t *room, const char *bare, muc_role_t role)
{
    if (role != MUC_ROLE_VISITOR && role != MUC_ROLE_PARTICIPANT)
        return -EINVAL;
    memo_set(room, bare, strlen(bare), role);
    return 0;
}

void muc_room_role_forget(muc_room_t *room, const char *bare, size_t len)
{
    muc_role_memo_t *m = core_map_del(&room->role_memos, bare, len);
    if (m == NULL)
        return;
    memo_free(m);
    room->nrole_memos--;
    room->dirty = true;
}

static void free_one(void *ud, const char *key, void *v)
{
    memo_free(v);
}

void muc_room_roles_clear(muc_room_t *room)
{
    if (room->nrole_memos == 0)
        return;
    core_map_each(&room->role_memos, free_one, NULL);
    core_map_free(&room->role_memos);
    core_map_init(&room->role_memos);
    room->nrole_memos = 0;
    room->dirty = true;
}

typedef struct list_ctx {
    const muc_role_memo_t **v;
    size_t n;
} list_ctx_t;

static void list_one(void *ud, const char *key, void *v)
{
    list_ctx_t *c = ud;
    c->v[c->n++] = v;
}

static int cmp_seq(const void *a, const void *b)
{
    const muc_role_memo_t *x = *(const muc_role_memo_t *const *)a;
    const muc_role_memo_t *y = *(const muc_role_memo_t *const *)b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

const muc_role_memo_t **muc_room_role_list(const muc_room_t *room, size_t *n)
{
    list_ctx_t c = {.v = core_calloc(room->nrole_memos + 1, sizeof(muc_role_memo_t *))};
    core_map_each(&room->role_memos, list_one, &c);
    qsort(c.v, c.n, sizeof(c.v[0]), cmp_seq);
    *n = c.n;
    return c.v;
}
