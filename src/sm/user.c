/* SPDX-License-Identifier: MIT */
/* Users in memory: loaded from storage on demand, released when nothing holds them. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* The storage kind of pending inbound subscription requests (key: the contact's bare JID). */
#define KIND_PENDING_IN "subin"

sm_user_t *sm_user_find(sm_t *sm, const char *bare, size_t len)
{
    return core_map_get(&sm->users, bare, len);
}

static void loaded(sm_t *sm, sm_user_t *u, sm_user_state_t state)
{
    u->state = state;
    sm_session_user_ready(sm, u);
    sm_queued_t *q = u->queue;
    size_t n = u->nqueue;
    u->queue = NULL;
    u->nqueue = 0;
    for (size_t i = 0; i < n; i++) {
        if (q[i].returned)
            sm_deliver_returned_to(sm, u, q[i].st, NULL);
        else
            sm_deliver_to_user(sm, u, q[i].st);
        xml_stanza_unref(q[i].st);
    }
    core_free(q);
}

static void on_loaded(void *arg, int status, const storage_user_data_t *data)
{
    sm_user_t *u = arg;
    sm_t *sm = u->sm;
    if (status == 0) {
        const storage_roster_t *roster = data->roster;
        u->roster.version = core_strdup(roster->version);
        u->roster.count = roster->count;
        u->roster.items = core_calloc(roster->count + 1, sizeof(*u->roster.items));
        for (size_t i = 0; i < roster->count; i++)
            storage_roster_item_copy(&u->roster.items[i], &roster->items[i]);
        const storage_list_t *keys = data->doc_keys;
        u->pending_in = core_calloc(keys->count + 1, sizeof(*u->pending_in));
        for (size_t i = 0; i < keys->count; i++)
            u->pending_in[i] = core_strndup(keys->items[i].data, keys->items[i].len);
        u->npending_in = keys->count;
        sm_user_loaded_fire(sm, u, data->docs, data->ndocs);
        if (u->offline_loaded) {
            const storage_list_t *off = data->offline;
            u->offline.items = core_calloc(off->count + 1, sizeof(*u->offline.items));
            for (size_t i = 0; i < off->count; i++) {
                u->offline.items[i].data = core_malloc(off->items[i].len + 1);
                memcpy(u->offline.items[i].data, off->items[i].data, off->items[i].len + 1);
                u->offline.items[i].len = off->items[i].len;
            }
            u->offline.count = off->count;
        }
    } else {
        u->offline_loaded = false;
        if (status != -ENOENT)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot load: %s", u->jid.full,
                     strerror(-status));
    }
    /* A store that fails is treated like a missing account: nothing is promised. */
    loaded(sm, u, status == 0 ? SM_USER_READY : SM_USER_MISSING);
    u->busy--; /* only now: what loaded() delivered may have come back to this user */
    sm_user_release(sm, u);
}

sm_user_t *sm_user_get(sm_t *sm, const jid_t *bare, bool for_session)
{
    sm_user_t *u = sm_user_find(sm, bare->full, bare->bare_len);
    if (u != NULL)
        return u;
    u = core_calloc(1, sizeof(*u));
    u->sm = sm;
    if (jid_parse(sm->jids, bare->full, bare->bare_len, &u->jid) < 0) {
        core_free(u);
        return NULL;
    }
    u->node = core_strndup(bare->full, bare->node_len);
    u->state = SM_USER_LOADING;
    core_map_put(&sm->users, u->jid.full, u->jid.full_len, u);
    u->busy++;
    u->offline_loaded = for_session;
    int rc = storage_user_load(sm->store, u->node, KIND_PENDING_IN, sm->user_kinds, for_session,
                               on_loaded, u);
    if (rc < 0) {
        u->busy--;
        u->offline_loaded = false;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot load: %s", u->jid.full, strerror(-rc));
        u->state = SM_USER_MISSING;
    }
    return u;
}

void sm_user_free(sm_t *sm, sm_user_t *u)
{
    while (u->sessions != NULL) {
        sm_sess_t *s = u->sessions;
        u->sessions = s->next;
        core_map_del(&sm->sessions, s->key, strlen(s->key));
        sm_slots_free(sm, u, s);
        jid_clear(&s->jid);
        xml_stanza_unref(s->presence);
        for (size_t i = 0; i < s->ndirected; i++)
            core_free(s->directed[i]);
        core_free(s->directed);
        core_free(s->c2s);
        core_free(s->sid);
        core_free(s->key);
        core_free(s);
    }
    sm_slots_free(sm, u, NULL);
    for (size_t i = 0; i < u->nqueue; i++)
        xml_stanza_unref(u->queue[i].st);
    core_free(u->queue);
    for (size_t i = 0; i < u->npending_in; i++)
        core_free(u->pending_in[i]);
    core_free(u->pending_in);
    storage_roster_clear(&u->roster);
    storage_list_clear(&u->offline);
    core_free(u->node);
    jid_clear(&u->jid);
    core_free(u);
}

void sm_user_release(sm_t *sm, sm_user_t *u)
{
    if (u == NULL || u->state == SM_USER_LOADING || u->sessions != NULL || u->busy != 0 ||
        u->nqueue != 0)
        return;
    core_map_del(&sm->users, u->jid.full, u->jid.full_len);
    sm_user_free(sm, u);
}

void sm_user_note_gone(sm_user_t *u, const char *sid, bool available, int priority)
{
    sm_gone_t *g = &u->gone[u->gone_next];
    if (strlen(sid) >= sizeof(g->sid))
        return;
    snprintf(g->sid, sizeof(g->sid), "%s", sid);
    g->priority = available && priority >= 0 ? priority : -1;
    u->gone_next = (u->gone_next + 1) % SM_GONE_MAX;
}

int sm_user_gone_priority(const sm_user_t *u, const char *sid)
{
    for (size_t i = 0; sid != NULL && i < SM_GONE_MAX; i++) {
        if (u->gone[i].sid[0] != '\0' && strcmp(u->gone[i].sid, sid) == 0)
            return u->gone[i].priority;
    }
    return -1;
}

bool sm_user_pending_in(const sm_user_t *u, const char *jid)
{
    for (size_t i = 0; i < u->npending_in; i++) {
        if (strcmp(u->pending_in[i], jid) == 0)
            return true;
    }
    return false;
}

/* A write whose answer only matters for the log; it holds the user until it is done. */
static void on_write_done(void *arg, int status)
{
    sm_user_t *u = arg;
    u->busy--;
    if (status < 0 && status != -ENOENT)
        core_log(u->sm->log, CORE_LOG_WARN, 0, "%s: storage write failed: %s", u->jid.full,
                 strerror(-status));
    sm_user_release(u->sm, u);
}

void sm_user_set_pending_in(sm_t *sm, sm_user_t *u, const char *jid, xml_stanza_t *request)
{
    if (!sm_user_pending_in(u, jid)) {
        if (u->npending_in >= SM_PENDING_IN_MAX) {
            core_log(sm->log, CORE_LOG_INFO, 0, "%s: too many pending requests, %s dropped",
                     u->jid.full, jid);
            return;
        }
        u->pending_in = core_realloc(u->pending_in, (u->npending_in + 1) * sizeof(char *));
        u->pending_in[u->npending_in++] = core_strdup(jid);
    }
    size_t len;
    const char *bytes = xml_stanza_bytes(request, &len);
    u->busy++;
    if (storage_doc_put(sm->store, u->node, KIND_PENDING_IN, jid, bytes, len, on_write_done, u) <
        0) {
        u->busy--;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot keep the request of %s", u->jid.full, jid);
    }
}

void sm_user_clear_pending_in(sm_t *sm, sm_user_t *u, const char *jid)
{
    for (size_t i = 0; i < u->npending_in; i++) {
        if (strcmp(u->pending_in[i], jid) != 0)
            continue;
        core_free(u->pending_in[i]);
        u->pending_in[i] = u->pending_in[--u->npending_in];
        u->busy++;
        if (storage_doc_delete(sm->store, u->node, KIND_PENDING_IN, jid, on_write_done, u) < 0)
            u->busy--;
        return;
    }
}

/* ---- presenting stored requests again (RFC 6121 §3.1.3: at the user's next login) ---- */

typedef struct replay {
    sm_user_t *u;
    char *full; /* the session to present it to */
} replay_t;

static void on_request_bytes(void *arg, int status, const char *data, size_t len)
{
    replay_t *r = arg;
    sm_user_t *u = r->u;
    sm_t *sm = u->sm;
    u->busy--;
    sm_sess_t *sess = sm_session_by_resource(u, r->full);
    if (status == 0 && sess != NULL && sess->available) {
        xml_stanza_t *st = xml_stanza_parse(data, len);
        if (st != NULL) {
            sm_sess_send(sm, sess, st);
            xml_stanza_unref(st);
        }
    }
    core_free(r->full);
    core_free(r);
    sm_user_release(sm, u);
}

void sm_user_replay_pending_in(sm_t *sm, sm_sess_t *sess)
{
    sm_user_t *u = sess->user;
    for (size_t i = 0; i < u->npending_in; i++) {
        replay_t *r = core_malloc(sizeof(*r));
        r->u = u;
        r->full = core_strdup(sess->jid.full);
        u->busy++;
        if (storage_doc_get(sm->store, u->node, KIND_PENDING_IN, u->pending_in[i], on_request_bytes,
                            r) < 0) {
            u->busy--;
            core_free(r->full);
            core_free(r);
        }
    }
}
