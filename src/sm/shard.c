/* SPDX-License-Identifier: MIT */
/* One sm among several shards of a domain: which users are its own, and what a new member
 * list means for the sessions it has (docs/link-protocol.md, "Shards"). */
#include "sm/internal.h"

#include "core/alloc.h"

#include <string.h>

const char *sm_link_name(const sm_t *sm)
{
    return sm->cfg->name != NULL ? sm->cfg->name : sm->cfg->domain;
}

bool sm_shard_is_self(const sm_t *sm, const jid_t *jid)
{
    const char *n = sm->cfg->name;
    return n != NULL && !jid_has_node(jid) && !jid_has_resource(jid) &&
        strlen(n) == jid->domain_len && memcmp(jid_domain_ptr(jid), n, jid->domain_len) == 0;
}

bool sm_shard_mine(const sm_t *sm, const jid_t *jid)
{
    /* No list (not sharded, or the router has not sent one yet): every user is ours. */
    if (sm->cfg->name == NULL || sm->nshards == 0)
        return true;
    long k =
        link_shard_pick((const char *const *)sm->shards, sm->nshards, jid->full, jid->bare_len);
    return k >= 0 && strcmp(sm->shards[k], sm->cfg->name) == 0;
}

typedef struct moved {
    sm_t *sm;
    char **keys; /* of the sessions of users that are no longer ours, copies */
    size_t n;
} moved_t;

static void collect_moved(void *ud, const char *key, void *v)
{
    moved_t *m = ud;
    sm_sess_t *s = v;
    if (!sm_shard_mine(m->sm, &s->user->jid))
        m->keys[m->n++] = core_strdup(s->key);
}

/*
 * The sessions of users another shard owns now end: their c2s closes them with <reset/>
 * (RFC 6120 §4.9.3.16), and the client's next login lands on the new owner. Not
 * <see-other-host/>: the client is to come back to the same host and c2s, only its session
 * moves behind them.
 */
static void end_moved(sm_t *sm)
{
    moved_t m = {.sm = sm};
    m.keys = core_calloc(sm->sessions.count + 1, sizeof(char *));
    core_map_each(&sm->sessions, collect_moved, &m);
    if (m.n > 0)
        core_log(sm->log, CORE_LOG_INFO, 0, "shards changed: ending %zu sessions of moved users",
                 m.n);
    /* By key, not by pointer: ending one session must not leave us holding another freed. */
    for (size_t i = 0; i < m.n; i++) {
        sm_sess_t *s = core_map_get(&sm->sessions, m.keys[i], strlen(m.keys[i]));
        if (s != NULL) {
            sm_user_t *u = s->user;
            u->busy++;
            sm_session_kick(sm, s, "reset");
            u->busy--;
            sm_user_release(sm, u);
        }
        core_free(m.keys[i]);
    }
    core_free(m.keys);
}

void sm_shard_update(sm_t *sm, const char *name, const char *const *members, size_t n)
{
    if (sm->cfg->name == NULL || strcmp(name, sm->cfg->domain) != 0)
        return;
    sm_shard_free(sm);
    sm->shards = core_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        sm->shards[i] = core_strdup(members[i]);
    sm->nshards = n;
    core_log(sm->log, CORE_LOG_INFO, 0, "%s has %zu shards now", name, n);
    end_moved(sm);
}

void sm_shard_free(sm_t *sm)
{
    for (size_t i = 0; i < sm->nshards; i++)
        core_free(sm->shards[i]);
    core_free(sm->shards);
    sm->shards = NULL;
    sm->nshards = 0;
}
