/* SPDX-License-Identifier: MIT */
/* Relay between a bound client and the sm: route envelopes and session control both ways. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/*
 * <route to='user@domain' from='our name' sid='S'/>, carrying inner (NULL: none yet): the
 * envelope of docs/link-protocol.md. Addressed to the bare JID of user (a JID, full or
 * bare), so that a router with several sm shards picks the user's (docs/link-protocol.md,
 * "Shards"); to the domain when user is NULL.
 */
static xml_stanza_t *envelope_new(c2s_t *c2s, const char *sid, xml_stanza_t *inner,
                                  const char *user)
{
    xml_stanza_t *env = inner != NULL ? xml_envelope_new(XMLS_NS_CONTENT, "route", inner)
                                      : xml_stanza_new(XMLS_NS_CONTENT, "route");
    const char *slash = user != NULL ? strchr(user, '/') : NULL;
    if (user == NULL || strchr(user, '@') == NULL) {
        xml_node_set_attr(env, env->root, NULL, "to", c2s->cfg->domain);
    } else if (slash == NULL) {
        xml_node_set_attr(env, env->root, NULL, "to", user);
    } else {
        char *bare = core_strndup(user, (size_t)(slash - user));
        xml_node_set_attr(env, env->root, NULL, "to", bare);
        core_free(bare);
    }
    xml_node_set_attr(env, env->root, NULL, "from", c2s->cfg->name);
    xml_node_set_attr(env, env->root, NULL, "sid", sid);
    return env;
}

static int link_send(c2s_t *c2s, xml_stanza_t *env)
{
    if (c2s->link == NULL)
        return -ENOTCONN;
    return link_endpoint_send(c2s->link, env);
}

int c2s_relay_control_sid(c2s_t *c2s, const char *sid, const char *action, const char *jid)
{
    return c2s_relay_control_attr(c2s, sid, jid, action, "jid", jid);
}

int c2s_relay_control_attr(c2s_t *c2s, const char *sid, const char *user, const char *action,
                           const char *name, const char *value)
{
    xml_stanza_t *env = envelope_new(c2s, sid, NULL, user);
    xml_node_t *s = xml_node_add_element(env, env->root, C2S_NS_SESSION, "session");
    xml_node_set_attr(env, s, NULL, "action", action);
    if (value != NULL)
        xml_node_set_attr(env, s, NULL, name, value);
    int rc = link_send(c2s, env);
    xml_stanza_unref(env);
    if (rc < 0)
        core_log(c2s->log, CORE_LOG_WARN, 0, "session %s: cannot send %s: %s", sid, action,
                 strerror(-rc));
    return rc;
}

int c2s_relay_control(c2s_conn_t *c, const char *action, const char *jid)
{
    return c2s_relay_control_sid(c->c2s, c->sid, action, jid);
}

int c2s_relay_undelivered(c2s_t *c2s, const char *sid, xml_stanza_t *st, uint64_t at)
{
    /* The loop's clock is monotonic; the stamp is wall-clock time (XEP-0082, UTC). */
    uint64_t ago = uv_now(c2s->net->loop) - at;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - (int64_t)ago;
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char stamp[40];
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03dZ", (int)(ms % 1000));
    /* What was routed to the session is for its user. */
    xml_stanza_t *env = envelope_new(c2s, sid, st, xml_stanza_to(st));
    xml_node_set_attr(env, env->root, NULL, "type", "undelivered");
    xml_node_set_attr(env, env->root, NULL, "stamp", stamp);
    int rc = link_send(c2s, env);
    xml_stanza_unref(env);
    return rc;
}

/* RFC 6120 §8.1.2.1: a client's from, if any, must be its own JID (full, or bare). */
static bool from_ok(c2s_conn_t *c, const char *from)
{
    if (from == NULL)
        return true;
    jid_t j;
    if (jid_parse(c->c2s->jids, from, strlen(from), &j) < 0)
        return false;
    bool ok = jid_equal(&j, &c->jid) || (!jid_has_resource(&j) && jid_bare_equal(&j, &c->jid));
    jid_clear(&j);
    return ok;
}

void c2s_relay_client(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    if (c2s_bind_session_iq(c, st) || c2s_bind_iq(c, st))
        return;
    if (r->ns != XMLS_NS_CONTENT ||
        (strcmp(r->name, "message") != 0 && strcmp(r->name, "presence") != 0 &&
         strcmp(r->name, "iq") != 0)) {
        stream_error(c->s, CORE_STREAM_ERR_UNSUPPORTED_STANZA_TYPE, NULL);
        return;
    }
    if (!from_ok(c, xml_stanza_from(st))) {
        stream_error(c->s, CORE_STREAM_ERR_INVALID_FROM, NULL);
        return;
    }
    /* RFC 6120 §8.1.2.1: stamped with the full JID. Ours alone: changed in place. */
    const char *from = xml_stanza_from(st);
    xml_stanza_t *own = st;
    if (from == NULL || strcmp(from, c->jid.full) != 0) {
        if (xml_stanza_is_shared(st))
            own = xml_stanza_copy(st);
        xml_stanza_set_root_attr(own, "from", c->jid.full);
    }
    if (own == st)
        xml_stanza_ref(own);
    xml_stanza_t *env = envelope_new(c->c2s, c->sid, own, c->jid.full);
    int rc = link_send(c->c2s, env);
    xml_stanza_unref(env);
    if (rc < 0) {
        core_log(c->c2s->log, CORE_LOG_WARN, c2s_conn_id(c), "cannot relay: %s", strerror(-rc));
        const char *type = xml_stanza_type(st);
        bool answerable =
            type == NULL || (strcmp(type, "error") != 0 && strcmp(type, "result") != 0);
        if (strcmp(r->name, "iq") == 0 && answerable) {
            c2s_iq_error(c, xml_stanza_id(st), "wait", "resource-constraint");
        } else if (strcmp(r->name, "message") == 0) {
            /*
             * XEP-0198 counted it handled: without an error the client would take it as
             * delivered. RFC 6120 §8.3.3.18 resource-constraint (wait): it may send it again.
             */
            xml_stanza_t *e = xml_stanza_error_reply(own, CORE_STANZA_ERR_RESOURCE_CONSTRAINT);
            if (e != NULL)
                c2s_conn_send(c, e);
            xml_stanza_unref(e);
        }
    }
    xml_stanza_unref(own);
}

static core_stream_err_t stream_err_by_name(const char *name)
{
    for (int e = CORE_STREAM_ERR_BAD_FORMAT; e <= CORE_STREAM_ERR_UNSUPPORTED_VERSION; e++) {
        if (strcmp(core_stream_err_name((core_stream_err_t)e), name) == 0)
            return (core_stream_err_t)e;
    }
    return CORE_STREAM_ERR_UNDEFINED_CONDITION;
}

static void control(c2s_conn_t *c, const xml_node_t *s)
{
    const char *action = xml_node_attr(s, "action");
    if (action == NULL)
        return;
    if (strcmp(action, "started") == 0) {
        c2s_bind_started(c);
    } else if (strcmp(action, "failed") == 0) {
        c2s_bind_failed(c, s);
    } else if (strcmp(action, "managed") == 0) {
        c2s_smgmt_managed(c);
    } else if (strcmp(action, "replace") == 0) {
        /* RFC 6120 §4.9.3.3: another connection bound the same full JID. */
        stream_error(c->s, CORE_STREAM_ERR_CONFLICT, "replaced by a new connection");
    } else if (strcmp(action, "kick") == 0) {
        const xml_node_t *cond = xml_node_first_element(s);
        stream_error(
            c->s, cond != NULL ? stream_err_by_name(cond->name) : CORE_STREAM_ERR_POLICY_VIOLATION,
            NULL);
    }
}

void c2s_relay_from_link(c2s_t *c2s, xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    const char *sid = xml_node_attr(r, "sid");
    if (!xml_node_is(r, XMLS_NS_CONTENT, "route") || sid == NULL) {
        core_log(c2s->log, CORE_LOG_DEBUG, 0, "dropped a stanza that is not an envelope");
        return;
    }
    c2s_conn_t *c = c2s_conn_by_sid(c2s, sid);
    const xml_node_t *child = xml_envelope_child(st);
    /* XEP-0198: a session may be waiting for its client, or ending, without a connection. */
    if (c == NULL && c2s_smgmt_from_link(c2s, sid, st))
        return;
    if (c == NULL || child == NULL) {
        core_log(c2s->log, CORE_LOG_DEBUG, 0, "envelope for unknown session %s dropped", sid);
        return;
    }
    const char *type = xml_node_attr(r, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        /* Our envelope bounced: the sm is not there. A pending bind fails. */
        if (xml_node_is(child, C2S_NS_SESSION, "session"))
            c2s_bind_failed(c, NULL);
        return;
    }
    if (xml_node_is(child, C2S_NS_SESSION, "session")) {
        const char *action = xml_node_attr(child, "action");
        const char *from = xml_node_attr(r, "from");
        if (action != NULL && strcmp(action, "started") == 0 && from != NULL) {
            core_free(c->shard);
            c->shard = core_strdup(from);
        }
        control(c, child);
        return;
    }
    if (c->state != C2S_ST_ACTIVE && c->state != C2S_ST_BINDING)
        return;
    xml_stanza_t *out = xml_envelope_open(st);
    c2s_conn_send(c, out);
    xml_stanza_unref(out);
}

/*
 * One sm shard is gone (docs/link-protocol.md, "Shards"): the sessions it held are gone
 * with it, as when the one sm goes (below); those of the other shards are not touched.
 */
static void shard_gone(c2s_t *c2s, const char *name)
{
    size_t n = 0;
    for (c2s_conn_t *c = c2s->conns; c != NULL; c = c->next) {
        if (c->s != NULL && c->started && !c->s->closing && c->shard != NULL &&
            strcasecmp(c->shard, name) == 0) {
            stream_error(c->s, CORE_STREAM_ERR_SYSTEM_SHUTDOWN, "the session manager is gone");
            n++;
        }
    }
    if (n > 0)
        core_log(c2s->log, CORE_LOG_WARN, 0, "sm shard %s is gone: closed %zu sessions", name, n);
}

void c2s_relay_sm_name(c2s_t *c2s, const char *name, bool bound)
{
    if (c2s->stopping)
        return; /* stopping: every client has its <system-shutdown/> already */
    if (strcmp(name, c2s->cfg->domain) != 0) {
        if (!bound)
            shard_gone(c2s, name);
        return;
    }
    if (bound) {
        core_log(c2s->log, CORE_LOG_INFO, 0, "the sm of %s is there: clients may bind", name);
        return;
    }
    /*
     * The sm process stopped or died, and every session it had with it: a client that went
     * on would talk to no one, and to a new sm that knows nothing of it. RFC 6120 §4.9.3.22:
     * <system-shutdown/>; the client logs in again (binding fails until the sm is back).
     */
    size_t n = 0;
    for (c2s_conn_t *c = c2s->conns; c != NULL; c = c->next) {
        if (c->s != NULL && c->started && !c->s->closing) {
            stream_error(c->s, CORE_STREAM_ERR_SYSTEM_SHUTDOWN, "the session manager is gone");
            n++;
        }
    }
    core_log(c2s->log, CORE_LOG_WARN, 0, "the sm of %s is gone: closed %zu sessions", name, n);
    c2s_smgmt_sm_gone(c2s);
}
