/* SPDX-License-Identifier: MIT */
/* Routing and delivery: what the sm does with each stanza (RFC 6120 §10, RFC 6121 §8.5). */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

bool sm_is_local(const sm_t *sm, const jid_t *jid)
{
    return strlen(sm->cfg->domain) == jid->domain_len &&
        memcmp(jid_domain_ptr(jid), sm->cfg->domain, jid->domain_len) == 0;
}

void sm_sess_send(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st)
{
    xml_stanza_t *env = xml_envelope_new(XMLS_NS_CONTENT, "route", st);
    xml_node_set_attr(env, env->root, NULL, "to", sess->c2s);
    /* A shard's own name: its c2s learns which shard holds the session. */
    xml_node_set_attr(env, env->root, NULL, "from", sm_link_name(sm));
    xml_node_set_attr(env, env->root, NULL, "sid", sess->sid);
    int rc = sm->link != NULL ? link_endpoint_send(sm->link, env) : -ENOTCONN;
    if (rc < 0)
        core_log(sm->log, CORE_LOG_WARN, 0, "cannot deliver to %s: %s", sess->jid.full,
                 strerror(-rc));
    else
        sm_kept_routed(sm, sess, st); /* until its client acknowledges it (XEP-0198) */
    xml_stanza_unref(env);
}

/* RFC 6120 §10.3.3: what the server answers for an account comes from its bare JID. */
static void from_account(xml_stanza_t *reply, const char *from)
{
    const char *slash = strchr(from, '/');
    char *bare = core_strndup(from, slash != NULL ? (size_t)(slash - from) : strlen(from));
    xml_node_set_attr(reply, reply->root, NULL, "from", bare);
    core_free(bare);
}

void sm_reply_error(sm_t *sm, xml_stanza_t *st, core_stanza_err_t cond)
{
    xml_stanza_t *e = xml_stanza_error_reply(st, cond);
    if (e == NULL)
        return;
    if (xml_stanza_to(st) == NULL && xml_stanza_from(st) != NULL)
        from_account(e, xml_stanza_from(st));
    if (xml_stanza_to(e) != NULL)
        sm_route(sm, e);
    xml_stanza_unref(e);
}

xml_stanza_t *sm_iq_result(const xml_stanza_t *st)
{
    xml_stanza_t *r = xml_stanza_iq_result(st);
    /* What xml_stanza_iq_result leaves out: an answer for the account itself (no 'to'). */
    if (xml_stanza_to(st) == NULL && xml_stanza_from(st) != NULL)
        from_account(r, xml_stanza_from(st));
    return r;
}

/*
 * Fills the packet's parsed parts; false (and an error answered) if an address is bad. known
 * (borrowed, may be NULL) is a prepared JID the stanza's from is likely to be: the session's,
 * which its c2s stamps on everything it relays. A from equal to it needs no preparation.
 */
static bool pkt_init(sm_t *sm, sm_pkt_t *pkt, xml_stanza_t *st, const jid_t *known)
{
    memset(pkt, 0, sizeof(*pkt));
    pkt->st = st;
    pkt->kind = xml_stanza_kind(st);
    pkt->type = xml_stanza_type_bit(st);
    if (pkt->kind == XMLS_KIND_IQ)
        pkt->payload = xml_node_first_element(st->root);
    const char *from = xml_stanza_from(st);
    const char *to = xml_stanza_to(st);
    if (from == NULL)
        return false;
    if (known != NULL && strcmp(from, known->full) == 0)
        jid_copy(&pkt->from, known);
    else if (jid_parse(sm->jids, from, strlen(from), &pkt->from) < 0)
        return false;
    if (to != NULL && jid_parse(sm->jids, to, strlen(to), &pkt->to) < 0) {
        sm_reply_error(sm, st, CORE_STANZA_ERR_JID_MALFORMED);
        jid_clear(&pkt->from);
        return false;
    }
    return true;
}

static void pkt_clear(sm_pkt_t *pkt)
{
    jid_clear(&pkt->from);
    jid_clear(&pkt->to);
    xml_stanza_unref(pkt->owned);
    pkt->owned = NULL;
    core_free(pkt->stanza_id);
    pkt->stanza_id = NULL;
}

void sm_pkt_set_stanza(sm_pkt_t *pkt, xml_stanza_t *st)
{
    xml_stanza_t *old = pkt->owned;
    pkt->owned = st;
    pkt->st = st;
    if (pkt->kind == XMLS_KIND_IQ)
        pkt->payload = xml_node_first_element(st->root);
    xml_stanza_unref(old);
}

xml_stanza_t *sm_pkt_writable(sm_pkt_t *pkt)
{
    if (pkt->owned == NULL || xml_stanza_is_shared(pkt->owned))
        sm_pkt_set_stanza(pkt, xml_stanza_copy(pkt->st));
    return pkt->st;
}

bool sm_pkt_to_home(const sm_t *sm, const sm_pkt_t *pkt)
{
    const jid_t *to = &pkt->to;
    if (to->full == NULL)
        return true;
    if (jid_has_resource(to))
        return false;
    return jid_has_node(to) ? jid_bare_equal(to, &pkt->user->jid) : sm_is_local(sm, to);
}

static bool answerable_iq(const sm_pkt_t *pkt)
{
    return pkt->kind == XMLS_KIND_IQ && (pkt->type & (XMLS_TYPE_GET | XMLS_TYPE_SET));
}

/* RFC 6120 §10.3: addressed to the domain itself. */
static void to_server(sm_t *sm, sm_pkt_t *pkt)
{
    if (pkt->kind == XMLS_KIND_IQ && (pkt->type & (XMLS_TYPE_RESULT | XMLS_TYPE_ERROR)) &&
        sm_iq_input(sm, pkt))
        return; /* the answer to an IQ the sm sent */
    if (sm_chain_run(sm, SM_CHAIN_TO_SERVER, pkt) == XMLS_PASS && answerable_iq(pkt))
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
}

static void deliver_to_user(sm_t *sm, sm_user_t *u, sm_pkt_t *pkt);

/* Keeps st for a user whose data is loading (bounded: resource-constraint beyond). */
static void queue_while_loading(sm_t *sm, sm_user_t *u, xml_stanza_t *st, bool returned)
{
    if (u->nqueue == SM_USER_QUEUE_MAX) {
        sm_reply_error(sm, st, CORE_STANZA_ERR_RESOURCE_CONSTRAINT);
        return;
    }
    u->queue = core_realloc(u->queue, (u->nqueue + 1) * sizeof(*u->queue));
    u->queue[u->nqueue++] = (sm_queued_t){.st = xml_stanza_ref(st), .returned = returned};
}

/* The local user a parsed stanza is for: delivered now, or queued while the user loads. */
static void to_local_user(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = sm_user_get(sm, &pkt->to, false);
    if (u == NULL)
        return;
    if (u->state == SM_USER_LOADING) {
        queue_while_loading(sm, u, pkt->st, false);
        return;
    }
    /* Held across the delivery: what it sends may come back to this same user. */
    u->busy++;
    /*
     * The addressee's chain: the sender's session is not its business, nor the id of the
     * message in the sender's archive (it would end up in the addressee's received carbons).
     */
    sm_sess_t *sess = pkt->sess;
    char *stanza_id = pkt->stanza_id;
    pkt->sess = NULL;
    pkt->stanza_id = NULL;
    deliver_to_user(sm, u, pkt);
    pkt->sess = sess;
    pkt->stanza_id = stanza_id;
    u->busy--;
    sm_user_release(sm, u);
}

/*
 * The FROM_USER chain for a stanza leaving a local user's account for another address;
 * true when a handler stopped it.
 */
static bool from_user_stopped(sm_t *sm, sm_pkt_t *pkt)
{
    if (sm->nhandlers[SM_CHAIN_FROM_USER] == 0 || !jid_has_node(&pkt->from) ||
        !sm_is_local(sm, &pkt->from) || jid_bare_equal(&pkt->from, &pkt->to))
        return false;
    sm_user_t *u = sm_user_find(sm, pkt->from.full, pkt->from.bare_len);
    if (u == NULL || u->state != SM_USER_READY)
        return false;
    sm_user_t *prev = pkt->user;
    pkt->user = u;
    u->busy++;
    bool stopped = sm_chain_run(sm, SM_CHAIN_FROM_USER, pkt) == XMLS_HANDLED;
    /*
     * Not released here: the user was only found, so whoever brought it into memory releases
     * it at the top of its callback (a storage callback that has let go of it already may be
     * sending this very stanza, and still uses the user after).
     */
    u->busy--;
    pkt->user = prev;
    return stopped;
}

/* Sends a parsed stanza on by its 'to' (which it has). */
static void route_pkt(sm_t *sm, sm_pkt_t *pkt)
{
    if (from_user_stopped(sm, pkt))
        return;
    bool self = sm_shard_is_self(sm, &pkt->to);
    /* A user of the domain that another shard owns goes there through the router. */
    bool elsewhere = jid_has_node(&pkt->to) && sm_is_local(sm, &pkt->to) && !pkt->via_router &&
        !sm_shard_mine(sm, &pkt->to);
    if ((!sm_is_local(sm, &pkt->to) && !self) || elsewhere) {
        int rc = sm->link != NULL ? link_endpoint_send(sm->link, pkt->st) : -ENOTCONN;
        if (rc < 0)
            core_log(sm->log, CORE_LOG_WARN, 0, "cannot route to %s: %s", pkt->to.full,
                     strerror(-rc));
    } else if (!jid_has_node(&pkt->to)) {
        to_server(sm, pkt);
    } else {
        to_local_user(sm, pkt);
    }
}

static void route_stanza(sm_t *sm, xml_stanza_t *st, bool via_router)
{
    sm_pkt_t pkt;
    if (xml_stanza_to(st) == NULL) {
        sm_reply_error(sm, st, CORE_STANZA_ERR_JID_MALFORMED);
        return;
    }
    if (!pkt_init(sm, &pkt, st, NULL))
        return;
    pkt.via_router = via_router;
    route_pkt(sm, &pkt);
    pkt_clear(&pkt);
}

void sm_route(sm_t *sm, xml_stanza_t *st)
{
    route_stanza(sm, st, false);
}

void sm_deliver_input(sm_t *sm, xml_stanza_t *st)
{
    if (xml_stanza_kind(st) == XMLS_KIND_OTHER) {
        core_log(sm->log, CORE_LOG_DEBUG, 0, "dropped a <%s/> from the router", st->root->name);
        return;
    }
    route_stanza(sm, st, true);
}

size_t sm_bare_targets(sm_user_t *u, sm_sess_t **out, size_t max)
{
    int best = -1;
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s->available && s->priority >= 0 && s->priority > best)
            best = s->priority;
    }
    size_t n = 0;
    for (sm_sess_t *s = u->sessions; s != NULL && best >= 0; s = s->next) {
        if (s->available && s->priority == best) {
            if (n < max)
                out[n] = s;
            n++;
        }
    }
    return n;
}

#define TARGETS_MAX 64

/* RFC 6121 §8.5.2.1 and §8.5.3.2.1: a message for a bare JID, or a chat message for a full
 * JID that is not online. */
static void message_to_bare(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    sm_sess_t *targets[TARGETS_MAX];
    size_t n = 0;
    switch (pkt->type) {
    case XMLS_TYPE_ERROR:
        return;
    case XMLS_TYPE_GROUPCHAT:
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    case XMLS_TYPE_HEADLINE:
        /* Every available resource with a non-negative priority, or nobody. */
        for (sm_sess_t *s = u->sessions; s != NULL && n < TARGETS_MAX; s = s->next) {
            if (s->available && s->priority >= 0)
                targets[n++] = s;
        }
        for (size_t i = 0; i < n; i++)
            sm_sess_send(sm, targets[i], pkt->st);
        sm_delivered_fire(sm, pkt, targets, n);
        return;
    default:
        break;
    }
    n = sm_bare_targets(u, targets, TARGETS_MAX);
    if (n > TARGETS_MAX)
        n = TARGETS_MAX;
    for (size_t i = 0; i < n; i++)
        sm_sess_send(sm, targets[i], pkt->st);
    sm_delivered_fire(sm, pkt, targets, n);
    if (n == 0 && sm_chain_run(sm, SM_CHAIN_UNDELIVERED, pkt) == XMLS_PASS)
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
}

/* What no module took: the core rules of RFC 6121 §8.5.2 and §8.5.3. */
static void deliver_default(sm_t *sm, sm_pkt_t *pkt)
{
    sm_sess_t *sess =
        jid_has_resource(&pkt->to) ? sm_session_by_resource(pkt->user, pkt->to.full) : NULL;
    if (sess != NULL && !sess->started)
        sess = NULL;
    switch (pkt->kind) {
    case XMLS_KIND_IQ:
        /* To a bare JID the server answers for the user; to a resource, the resource does. */
        if (sess != NULL)
            sm_sess_send(sm, sess, pkt->st);
        else if (answerable_iq(pkt))
            sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    case XMLS_KIND_MESSAGE:
        if (sess != NULL) {
            sm_sess_send(sm, sess, pkt->st);
            sm_delivered_fire(sm, pkt, &sess, 1);
        } else if (!jid_has_resource(&pkt->to) || pkt->type == XMLS_TYPE_CHAT)
            message_to_bare(sm, pkt);
        else
            /* §8.5.3.2.1: only chat falls back to the bare JID; the rest is answered. */
            sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        return;
    case XMLS_KIND_PRESENCE:
        if (sess != NULL) {
            sm_sess_send(sm, sess, pkt->st);
        } else if (!jid_has_resource(&pkt->to)) {
            for (sm_sess_t *s = pkt->user->sessions; s != NULL; s = s->next) {
                if (s->available)
                    sm_sess_send(sm, s, pkt->st);
            }
        }
        return;
    default:
        return;
    }
}

static void deliver_to_user(sm_t *sm, sm_user_t *u, sm_pkt_t *pkt)
{
    sm_user_t *prev = pkt->user;
    pkt->user = u;
    if (u->state != SM_USER_READY) {
        /* RFC 6121 §8.5.1: no such user. Presence is ignored; errors never answered. */
        if (pkt->kind == XMLS_KIND_MESSAGE || answerable_iq(pkt))
            sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    } else if (sm_chain_run(sm, SM_CHAIN_TO_USER, pkt) == XMLS_PASS) {
        deliver_default(sm, pkt);
    }
    pkt->user = prev;
}

void sm_deliver_to_user(sm_t *sm, sm_user_t *u, xml_stanza_t *st)
{
    sm_pkt_t pkt;
    if (!pkt_init(sm, &pkt, st, NULL))
        return;
    deliver_to_user(sm, u, &pkt);
    pkt_clear(&pkt);
}

void sm_deliver_from_session(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st)
{
    sm_pkt_t pkt;
    if (!pkt_init(sm, &pkt, st, &sess->jid))
        return;
    pkt.sess = sess;
    pkt.user = sess->user;
    if (sm_chain_run(sm, SM_CHAIN_IN_SESS, &pkt) == XMLS_HANDLED) {
        pkt_clear(&pkt);
        return;
    }
    if (pkt.to.full != NULL) {
        pkt.user = NULL;
        route_pkt(sm, &pkt);
    } else if (pkt.kind != XMLS_KIND_PRESENCE) {
        /* RFC 6120 §10.3.3: no 'to' means the user's own bare JID, handled for the user. */
        xml_stanza_t *c = xml_stanza_copy(pkt.st);
        char *bare = core_strndup(sess->jid.full, sess->jid.bare_len);
        xml_node_set_attr(c, c->root, NULL, "to", bare);
        core_free(bare);
        sm_deliver_to_user(sm, sess->user, c);
        xml_stanza_unref(c);
    }
    pkt_clear(&pkt);
}

/* ---- stanzas a c2s hands back (XEP-0198, docs/link-protocol.md) ---- */

void sm_delay_add(sm_t *sm, xml_stanza_t *st, const char *stamp, const char *text)
{
    char now[40];
    if (stamp == NULL) {
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        size_t n = strftime(now, sizeof now, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(now + n, sizeof now - n, ".%03ldZ", ts.tv_nsec / 1000000);
        stamp = now;
    }
    xml_node_t *d = xml_node_add_element(st, st->root, SM_NS_DELAY, "delay");
    xml_node_set_attr(st, d, NULL, "from", sm->cfg->domain);
    xml_node_set_attr(st, d, NULL, "stamp", stamp);
    if (text != NULL)
        xml_node_add_text(st, d, text, strlen(text));
}

bool sm_delay_ours(const sm_t *sm, const xml_stanza_t *st)
{
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        const char *from = xml_node_attr(n, "from");
        if (xml_node_is(n, SM_NS_DELAY, "delay") && from != NULL &&
            strcmp(from, sm->cfg->domain) == 0)
            return true;
    }
    return false;
}

/*
 * RFC 6121 §8.5.2.1: a message to the bare JID went to every available resource of the
 * highest priority (a headline to every one of non-negative priority). When the session
 * that hands it back was one of those, the others that are still there have it already:
 * delivering it again would duplicate it.
 */
static bool delivered_elsewhere(const sm_pkt_t *pkt, const char *sid)
{
    int prio = sm_user_gone_priority(pkt->user, sid);
    if (jid_has_resource(&pkt->to) || prio < 0)
        return false;
    for (const sm_sess_t *s = pkt->user->sessions; s != NULL; s = s->next) {
        if (s->started && s->available &&
            (pkt->type == XMLS_TYPE_HEADLINE ? s->priority >= 0 : s->priority == prio))
            return true;
    }
    return false;
}

void sm_deliver_returned_to(sm_t *sm, sm_user_t *u, xml_stanza_t *st, const char *sid)
{
    sm_pkt_t pkt;
    if (!pkt_init(sm, &pkt, st, NULL))
        return;
    pkt.user = u;
    u->busy++;
    if (u->state != SM_USER_READY) {
        /* RFC 6121 §8.5.1: the account is gone meanwhile. */
        if (pkt.kind == XMLS_KIND_MESSAGE || answerable_iq(&pkt))
            sm_reply_error(sm, st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    } else if (pkt.kind == XMLS_KIND_MESSAGE && delivered_elsewhere(&pkt, sid)) {
        core_log(sm->log, CORE_LOG_DEBUG, 0, "%s: a returned message reached another resource",
                 u->jid.full);
    } else {
        deliver_default(sm, &pkt);
    }
    u->busy--;
    pkt_clear(&pkt);
    sm_user_release(sm, u);
}

void sm_deliver_returned(sm_t *sm, xml_stanza_t *st, const char *stamp, const char *sid)
{
    xml_stanza_kind_t kind = xml_stanza_kind(st);
    unsigned type = xml_stanza_type_bit(st);
    const char *to = xml_stanza_to(st);
    jid_t j;
    /* Presence and IQ results or errors for a resource that is gone: ignored (§8.5.3.2). */
    bool wanted = (kind == XMLS_KIND_MESSAGE && type != XMLS_TYPE_ERROR) ||
        (kind == XMLS_KIND_IQ && (type & (XMLS_TYPE_GET | XMLS_TYPE_SET)) != 0);
    if (!wanted || to == NULL || jid_parse(sm->jids, to, strlen(to), &j) < 0) {
        core_log(sm->log, CORE_LOG_DEBUG, 0, "dropped a returned <%s/>", st->root->name);
        return;
    }
    bool ours = jid_has_node(&j) && sm_is_local(sm, &j);
    /*
     * A message from the account's own bare JID to one of its resources was made by the sm
     * for that one session (a carbon, XEP-0280 §7 and §8; later an archive result or a PEP
     * notification): the other resources have their own copy or did not ask for one (a client
     * without carbons must not get them, §2), so it is not delivered again, nor kept offline.
     */
    const char *from = xml_stanza_from(st);
    if (ours && kind == XMLS_KIND_MESSAGE && from != NULL && strlen(from) == j.bare_len &&
        memcmp(from, j.full, j.bare_len) == 0) {
        core_log(sm->log, CORE_LOG_DEBUG, 0, "%s: a returned message of the sm's own dropped",
                 from);
        jid_clear(&j);
        return;
    }
    sm_user_t *u = ours ? sm_user_get(sm, &j, false) : NULL;
    jid_clear(&j);
    if (u == NULL)
        return;
    /* XEP-0198 §4: stamped with the original delivery time, unless stamped here before. */
    xml_stanza_t *own = xml_stanza_ref(st);
    if (kind == XMLS_KIND_MESSAGE && !sm_delay_ours(sm, st)) {
        xml_stanza_unref(own);
        own = xml_stanza_copy(st);
        sm_delay_add(sm, own, stamp, NULL);
    }
    if (u->state == SM_USER_LOADING)
        queue_while_loading(sm, u, own, true);
    else
        sm_deliver_returned_to(sm, u, own, sid);
    xml_stanza_unref(own);
}
