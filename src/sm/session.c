/* SPDX-License-Identifier: MIT */
/* Sessions: created and ended by the c2s's session control (docs/link-protocol.md). */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

static char *session_key(const char *c2s, const char *sid)
{
    size_t a = strlen(c2s), b = strlen(sid);
    char *k = core_malloc(a + b + 2);
    memcpy(k, c2s, a);
    k[a] = ' ';
    memcpy(k + a + 1, sid, b + 1);
    return k;
}

sm_sess_t *sm_session_find(sm_t *sm, const char *c2s, const char *sid)
{
    if (c2s == NULL || sid == NULL)
        return NULL;
    size_t a = strlen(c2s), b = strlen(sid);
    char local[256];
    char *k = a + b + 2 <= sizeof local ? local : core_malloc(a + b + 2);
    memcpy(k, c2s, a);
    k[a] = ' ';
    memcpy(k + a + 1, sid, b + 1);
    sm_sess_t *s = core_map_get(&sm->sessions, k, a + b + 1);
    if (k != local)
        core_free(k);
    return s;
}

sm_sess_t *sm_session_by_resource(sm_user_t *u, const char *full)
{
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (strcmp(s->jid.full, full) == 0)
            return s;
    }
    return NULL;
}

/* <route to=c2s from=domain sid=S><session action=A>[<cond/>]</session></route> */
static void control_send(sm_t *sm, const char *c2s, const char *sid, const char *action,
                         const char *cond)
{
    xml_stanza_t *env = xml_stanza_new(XMLS_NS_CONTENT, "route");
    xml_node_set_attr(env, env->root, NULL, "to", c2s);
    xml_node_set_attr(env, env->root, NULL, "from", sm_link_name(sm));
    xml_node_set_attr(env, env->root, NULL, "sid", sid);
    xml_node_t *s = xml_node_add_element(env, env->root, SM_NS_SESSION, "session");
    xml_node_set_attr(env, s, NULL, "action", action);
    if (cond != NULL) {
        bool stream = strcmp(action, "kick") == 0;
        xml_node_add_element(
            env, s, stream ? "urn:ietf:params:xml:ns:xmpp-streams" : CORE_NS_STANZA_ERRORS, cond);
    }
    if (sm->link == NULL || link_endpoint_send(sm->link, env) < 0)
        core_log(sm->log, CORE_LOG_WARN, 0, "session %s at %s: cannot send %s", sid, c2s, action);
    xml_stanza_unref(env);
}

/* Unlinks and frees a session; the user stays (the caller releases it). */
static void session_end(sm_t *sm, sm_sess_t *sess)
{
    sm_user_t *u = sess->user;
    if (sess->started)
        sm_event_fire(sm, SM_EV_SESS_END, sess);
    for (sm_sess_t **pp = &u->sessions; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == sess) {
            *pp = sess->next;
            break;
        }
    }
    core_map_del(&sm->sessions, sess->key, strlen(sess->key));
    core_log(sm->log, CORE_LOG_INFO, 0, "session %s ended", sess->jid.full);
    sm_slots_free(sm, u, sess);
    jid_clear(&sess->jid);
    xml_stanza_unref(sess->presence);
    sm_kept_clear(&sess->kept);
    for (size_t i = 0; i < sess->ndirected; i++)
        core_free(sess->directed[i]);
    core_free(sess->directed);
    core_free(sess->c2s);
    core_free(sess->sid);
    core_free(sess->key);
    core_free(sess);
}

static void session_started(sm_t *sm, sm_sess_t *sess)
{
    sess->started = true;
    sm_event_fire(sm, SM_EV_SESS_START, sess);
    control_send(sm, sess->c2s, sess->sid, "started", NULL);
    core_log(sm->log, CORE_LOG_INFO, 0, "session %s started (%s at %s)", sess->jid.full, sess->sid,
             sess->c2s);
}

void sm_session_user_ready(sm_t *sm, sm_user_t *u)
{
    sm_sess_t *s = u->sessions;
    while (s != NULL) {
        sm_sess_t *next = s->next;
        if (!s->started) {
            if (u->state == SM_USER_READY) {
                session_started(sm, s);
            } else {
                control_send(sm, s->c2s, s->sid, "failed", "not-authorized");
                session_end(sm, s);
            }
        }
        s = next;
    }
}

static void start(sm_t *sm, const char *c2s, const char *sid, const char *full)
{
    jid_t j;
    if (full == NULL || jid_parse(sm->jids, full, strlen(full), &j) < 0) {
        control_send(sm, c2s, sid, "failed", "jid-malformed");
        return;
    }
    if (!jid_has_node(&j) || !jid_has_resource(&j) || !sm_is_local(sm, &j)) {
        control_send(sm, c2s, sid, "failed", "not-allowed");
        jid_clear(&j);
        return;
    }
    if (!sm_shard_mine(sm, &j)) {
        /* The router's list and ours differ for a moment (a shard came or went): RFC 6120
         * §7.6.2.1, the client may try again, and the next try lands on the owner. */
        control_send(sm, c2s, sid, "failed", "resource-constraint");
        jid_clear(&j);
        return;
    }
    if (sm_session_find(sm, c2s, sid) != NULL) {
        control_send(sm, c2s, sid, "failed", "conflict");
        jid_clear(&j);
        return;
    }
    sm_user_t *u = sm_user_get(sm, &j, true);
    if (u == NULL) {
        control_send(sm, c2s, sid, "failed", "internal-server-error");
        jid_clear(&j);
        return;
    }
    /* RFC 6120 §7.7.2.2: the new session replaces the old one with the same resource. */
    sm_sess_t *old = sm_session_by_resource(u, j.full);
    if (old != NULL) {
        control_send(sm, old->c2s, old->sid, "replace", NULL);
        session_end(sm, old);
    }
    sm_sess_t *s = core_calloc(1, sizeof(*s));
    s->user = u;
    s->jid = j;
    s->c2s = core_strdup(c2s);
    s->sid = core_strdup(sid);
    s->key = session_key(c2s, sid);
    s->next = u->sessions;
    u->sessions = s;
    core_map_put(&sm->sessions, s->key, strlen(s->key), s);
    if (u->state != SM_USER_LOADING)
        sm_session_user_ready(sm, u);
    sm_user_release(sm, u); /* a missing account's user goes at once */
}

void sm_session_control(sm_t *sm, const char *c2s, const char *sid, const xml_node_t *ctl)
{
    const char *action = xml_node_attr(ctl, "action");
    if (action == NULL)
        return;
    if (strcmp(action, "start") == 0) {
        if (sm->stopping) {
            control_send(sm, c2s, sid, "failed", "resource-constraint");
            return;
        }
        start(sm, c2s, sid, xml_node_attr(ctl, "jid"));
    } else if (strcmp(action, "end") == 0) {
        sm_sess_t *s = sm_session_find(sm, c2s, sid);
        /* The c2s hands back what its client did not acknowledge: our copies go. */
        if (s != NULL)
            sm_session_lost(sm, s, false);
        /* Nothing more goes to this sid; the c2s may forget it (docs/link-protocol.md). */
        control_send(sm, c2s, sid, "ended", NULL);
    } else if (strcmp(action, "managed") == 0 || strcmp(action, "acked") == 0) {
        /* XEP-0198 at the c2s (docs/link-protocol.md): keep copies, or drop acknowledged ones. */
        sm_sess_t *s = sm_session_find(sm, c2s, sid);
        if (s == NULL || !s->started)
            return;
        if (action[0] == 'm') {
            sm_kept_start(sm, s, xml_node_attr(ctl, "max"));
            control_send(sm, c2s, sid, "managed", NULL);
        } else {
            sm_kept_acked(sm, s, xml_node_attr(ctl, "count"));
        }
    } else {
        core_log(sm->log, CORE_LOG_INFO, 0, "unknown session action '%s' from %s", action, c2s);
    }
}

void sm_session_lost(sm_t *sm, sm_sess_t *sess, bool dead)
{
    sm_user_t *u = sess->user;
    sm_kept_t kept = {0};
    char *sid = NULL;
    if (dead && sess->kept.len > 0) {
        sm_kept_take(sess, &kept);
        sid = core_strdup(sess->sid);
    }
    /* What its c2s hands back next (XEP-0198) is delivered knowing where it went. */
    if (sess->started)
        sm_user_note_gone(u, sess->sid, sess->available, sess->priority);
    session_end(sm, sess);
    /* A dead c2s hands back nothing: the copies take its place, after the session is gone. */
    if (sid != NULL) {
        u->busy++;
        sm_kept_replay(sm, &kept, sid);
        u->busy--;
        core_free(sid);
    }
    sm_user_release(sm, u);
}

typedef struct at_c2s {
    sm_t *sm;
    const char *name; /* prepared */
    char **keys; /* of the sessions there, copies */
    size_t n;
} at_c2s_t;

static void collect_at(void *ud, const char *key, void *v)
{
    at_c2s_t *a = ud;
    sm_sess_t *s = v;
    const char *dom;
    size_t len;
    /* The c2s wrote its name as configured; the router names it prepared. */
    if (jid_domain(a->sm->jids, s->c2s, strlen(s->c2s), &dom, &len) == 0 &&
        len == strlen(a->name) && memcmp(dom, a->name, len) == 0)
        a->keys[a->n++] = core_strdup(s->key);
}

void sm_session_c2s_gone(sm_t *sm, const char *name)
{
    at_c2s_t a = {.sm = sm, .name = name};
    a.keys = core_calloc(sm->sessions.count + 1, sizeof(char *));
    core_map_each(&sm->sessions, collect_at, &a);
    if (a.n > 0)
        core_log(sm->log, CORE_LOG_INFO, 0, "%s is gone: ending its %zu sessions", name, a.n);
    /* By key, not by pointer: ending one session must not leave us holding another freed. */
    for (size_t i = 0; i < a.n; i++) {
        sm_sess_t *s = core_map_get(&sm->sessions, a.keys[i], strlen(a.keys[i]));
        if (s != NULL)
            sm_session_lost(sm, s, true);
        core_free(a.keys[i]);
    }
    core_free(a.keys);
}

void sm_session_kick(sm_t *sm, sm_sess_t *sess, const char *cond)
{
    if (sess->started)
        control_send(sm, sess->c2s, sess->sid, "kick", cond);
    session_end(sm, sess);
}

static void collect(void *ud, const char *key, void *v)
{
    sm_sess_t ***p = ud;
    *(*p)++ = v;
}

void sm_session_end_all(sm_t *sm)
{
    size_t n = sm->sessions.count;
    sm_sess_t **all = core_calloc(n + 1, sizeof(*all));
    sm_sess_t **p = all;
    core_map_each(&sm->sessions, collect, &p);
    for (size_t i = 0; i < n; i++) {
        sm_user_t *u = all[i]->user;
        sm_session_kick(sm, all[i], "system-shutdown");
        sm_user_release(sm, u);
    }
    core_free(all);
}
