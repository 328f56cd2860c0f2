/* SPDX-License-Identifier: MIT */
/* RFC 6121 §3 and §4: subscriptions, presence broadcast, probes and directed presence. */
#include "sm/internal.h"

#include "core/alloc.h"
#include "sm/subscription.h"

#include <stdlib.h>
#include <string.h>

static char *bare_of(const jid_t *j)
{
    return core_strndup(j->full, j->bare_len);
}

/*
 * st with new addresses (either may be NULL to remove it): shared, not copied (its payload is
 * serialised once for a whole broadcast), and read-only like st from then on.
 */
static xml_stanza_t *readdress(xml_stanza_t *st, const char *from, const char *to)
{
    return xml_stanza_readdress(st, from, to);
}

static xml_stanza_t *presence_new(const char *type, const char *from, const char *to)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    if (type != NULL)
        xml_node_set_attr(p, p->root, NULL, "type", type);
    xml_node_set_attr(p, p->root, NULL, "from", from);
    xml_node_set_attr(p, p->root, NULL, "to", to);
    return p;
}

static void route_new(sm_t *sm, const char *type, const char *from, const char *to)
{
    xml_stanza_t *p = presence_new(type, from, to);
    sm_route(sm, p);
    xml_stanza_unref(p);
}

static int priority_of(const xml_stanza_t *st)
{
    const xml_node_t *n = xml_node_child(st->root, XMLS_NS_CONTENT, "priority");
    if (n == NULL)
        return 0;
    size_t len;
    const char *t = xml_node_text(n, &len);
    long v = strtol(t, NULL, 10);
    return v < -128 ? -128 : v > 127 ? 127 : (int)v;
}

static bool directed_has(const sm_sess_t *s, const char *jid, size_t *at)
{
    for (size_t i = 0; i < s->ndirected; i++) {
        if (strcmp(s->directed[i], jid) == 0) {
            if (at != NULL)
                *at = i;
            return true;
        }
    }
    return false;
}

static void directed_drop(sm_sess_t *s, const char *jid)
{
    size_t i;
    if (!directed_has(s, jid, &i))
        return;
    core_free(s->directed[i]);
    s->directed[i] = s->directed[--s->ndirected];
}

/*
 * RFC 6121 §4.2.2, §4.4.2, §4.5.2: presence from sess (st, no 'to') to every contact with a
 * subscription from the user, to the user's available resources (sess itself included), and,
 * for unavailable, to everyone it sent directed presence.
 */
static void broadcast(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st, bool unavailable, bool echo)
{
    sm_user_t *u = sess->user;
    for (size_t i = 0; i < u->roster.count; i++) {
        const storage_roster_item_t *it = &u->roster.items[i];
        if (!sm_sub_has_from(it->subscription))
            continue;
        if (unavailable)
            directed_drop(sess, it->jid);
        xml_stanza_t *c = readdress(st, sess->jid.full, it->jid);
        sm_route(sm, c);
        xml_stanza_unref(c);
    }
    if (unavailable) {
        for (size_t i = 0; i < sess->ndirected; i++) {
            xml_stanza_t *c = readdress(st, sess->jid.full, sess->directed[i]);
            sm_route(sm, c);
            xml_stanza_unref(c);
            core_free(sess->directed[i]);
        }
        sess->ndirected = 0;
    }
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if ((s->available && s != sess) || (s == sess && echo)) {
            xml_stanza_t *c = readdress(st, sess->jid.full, s->jid.full);
            sm_sess_send(sm, s, c);
            xml_stanza_unref(c);
        }
    }
}

/* Initial presence: probes to the contacts we see (§4.3.1), the other resources' presence. */
static void initial(sm_t *sm, sm_sess_t *sess)
{
    sm_user_t *u = sess->user;
    char *bare = bare_of(&u->jid);
    for (size_t i = 0; i < u->roster.count; i++) {
        const storage_roster_item_t *it = &u->roster.items[i];
        if (sm_sub_has_to(it->subscription))
            route_new(sm, "probe", bare, it->jid);
    }
    core_free(bare);
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s != sess && s->available && s->presence != NULL) {
            xml_stanza_t *c = readdress(s->presence, s->jid.full, sess->jid.full);
            sm_sess_send(sm, sess, c);
            xml_stanza_unref(c);
        }
    }
    sm_user_replay_pending_in(sm, sess);
}

static void available(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st)
{
    bool first = !sess->available;
    sess->available = true;
    sess->priority = priority_of(st);
    xml_stanza_unref(sess->presence);
    sess->presence = readdress(st, sess->jid.full, NULL);
    broadcast(sm, sess, sess->presence, false, true);
    sm_presence_fire(sm, sess, sess->presence);
    if (first) {
        initial(sm, sess);
        sm_event_fire(sm, SM_EV_SESS_AVAILABLE, sess);
    }
}

static void unavailable(sm_t *sm, sm_sess_t *sess, xml_stanza_t *st, bool echo)
{
    if (!sess->available && sess->ndirected == 0)
        return;
    xml_stanza_t *c = readdress(st, sess->jid.full, NULL);
    sess->available = false;
    xml_stanza_unref(sess->presence);
    sess->presence = NULL;
    broadcast(sm, sess, c, true, echo);
    sm_presence_fire(sm, sess, c);
    xml_stanza_unref(c);
}

/* RFC 6121 §4.6: directed presence, remembered so that unavailable follows it. */
static void directed(sm_t *sm, sm_pkt_t *pkt)
{
    sm_sess_t *sess = pkt->sess;
    char *to = core_strndup(pkt->to.full, pkt->to.full_len);
    if (pkt->type == XMLS_TYPE_UNAVAILABLE) {
        directed_drop(sess, to);
    } else if (sess->available && !directed_has(sess, to, NULL)) {
        char *bare = bare_of(&pkt->to);
        storage_roster_item_t *it = sm_roster_find(sess->user, bare);
        core_free(bare);
        /* Beyond the cap the presence still goes; only its unavailable will not follow. */
        if ((it == NULL || !sm_sub_has_from(it->subscription)) &&
            sess->ndirected < SM_DIRECTED_MAX) {
            sess->directed =
                core_realloc(sess->directed, (sess->ndirected + 1) * sizeof(*sess->directed));
            sess->directed[sess->ndirected++] = core_strdup(to);
        }
    }
    core_free(to);
    sm_route(sm, pkt->st);
}

/* ---- subscriptions ---- */

static sm_sub_state_t state_of(sm_user_t *u, const char *contact)
{
    const storage_roster_item_t *it = sm_roster_find(u, contact);
    sm_sub_state_t s = {.pending_in = sm_user_pending_in(u, contact)};
    if (it != NULL) {
        s.in_roster = true;
        s.sub = it->subscription;
        s.pending_out = it->ask == STORAGE_ASK_SUBSCRIBE;
        s.approved = it->approved;
    }
    return s;
}

/* Writes the outcome's roster and pending-request changes. */
static void apply(sm_t *sm, sm_user_t *u, const char *contact, const sm_sub_outcome_t *o,
                  xml_stanza_t *request)
{
    if (o->roster_changed && o->next.in_roster) {
        storage_roster_item_t item = {0};
        const storage_roster_item_t *cur = sm_roster_find(u, contact);
        if (cur != NULL)
            storage_roster_item_copy(&item, cur);
        else
            item.jid = core_strdup(contact);
        item.subscription = o->next.sub;
        item.ask = o->next.pending_out ? STORAGE_ASK_SUBSCRIBE : STORAGE_ASK_NONE;
        item.approved = o->next.approved;
        sm_roster_put(sm, u, &item);
        storage_roster_item_clear(&item);
    }
    if (o->pending_in_changed) {
        if (o->next.pending_in)
            sm_user_set_pending_in(sm, u, contact, request);
        else
            sm_user_clear_pending_in(sm, u, contact);
    }
}

/* Presence from every available resource of u to contact (the current one, or unavailable). */
static void presence_to_contact(sm_t *sm, sm_user_t *u, const char *contact, bool avail)
{
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (!s->available)
            continue;
        if (avail) {
            xml_stanza_t *c = readdress(s->presence, s->jid.full, contact);
            sm_route(sm, c);
            xml_stanza_unref(c);
        } else {
            route_new(sm, "unavailable", s->jid.full, contact);
        }
    }
}

static sm_sub_event_t event_of(xml_stanza_type_t type, bool inbound)
{
    switch (type) {
    case XMLS_TYPE_SUBSCRIBE:
        return inbound ? SM_SUB_IN_SUBSCRIBE : SM_SUB_OUT_SUBSCRIBE;
    case XMLS_TYPE_SUBSCRIBED:
        return inbound ? SM_SUB_IN_SUBSCRIBED : SM_SUB_OUT_SUBSCRIBED;
    case XMLS_TYPE_UNSUBSCRIBE:
        return inbound ? SM_SUB_IN_UNSUBSCRIBE : SM_SUB_OUT_UNSUBSCRIBE;
    default:
        return inbound ? SM_SUB_IN_UNSUBSCRIBED : SM_SUB_OUT_UNSUBSCRIBED;
    }
}

/* §3.1.2, §3.1.5, §3.2.2, §3.3.2: the user sends a subscription stanza to a contact. */
static void outbound(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    char *contact = bare_of(&pkt->to);
    char *bare = bare_of(&u->jid);
    sm_sub_state_t cur = state_of(u, contact);
    sm_sub_outcome_t o;
    sm_sub_apply(&cur, event_of(pkt->type, false), &o);
    if (!cur.in_roster && o.next.in_roster && u->roster.count >= SM_ROSTER_MAX) {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_POLICY_VIOLATION);
        core_free(bare);
        core_free(contact);
        return;
    }
    apply(sm, u, contact, &o, pkt->st);
    if (o.route) {
        /* Stamped with the user's bare JID and sent to the contact's bare JID. */
        xml_stanza_t *c = readdress(pkt->st, bare, contact);
        sm_route(sm, c);
        xml_stanza_unref(c);
    }
    if (o.send_available)
        presence_to_contact(sm, u, contact, true);
    if (o.send_unavailable)
        presence_to_contact(sm, u, contact, false);
    core_free(bare);
    core_free(contact);
}

/* §3.1.3, §3.1.6, §3.2.3, §3.3.3: a contact's subscription stanza for the user. */
static void inbound(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    char *contact = bare_of(&pkt->from);
    char *bare = bare_of(&u->jid);
    sm_sub_state_t cur = state_of(u, contact);
    sm_sub_outcome_t o;
    sm_sub_apply(&cur, event_of(pkt->type, true), &o);
    xml_stanza_t *req = readdress(pkt->st, contact, bare);
    apply(sm, u, contact, &o, req);
    if (o.auto_reply_subscribed)
        route_new(sm, "subscribed", bare, contact);
    if (o.send_available)
        presence_to_contact(sm, u, contact, true); /* a pre-approved request */
    if (o.route) {
        for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
            if (s->available)
                sm_sess_send(sm, s, req);
        }
    }
    /* §3.3.3: the contact no longer wants the user's presence: it gets unavailable. */
    if (pkt->type == XMLS_TYPE_UNSUBSCRIBE && sm_sub_has_from(cur.sub) &&
        !sm_sub_has_from(o.next.sub))
        presence_to_contact(sm, u, contact, false);
    xml_stanza_unref(req);
    core_free(bare);
    core_free(contact);
}

/* §4.3.2: a probe is answered with the user's presence if the prober may see it. */
static void probe(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    char *contact = bare_of(&pkt->from);
    const storage_roster_item_t *it = sm_roster_find(u, contact);
    bool self = jid_bare_equal(&pkt->from, &u->jid);
    if (!self && (it == NULL || !sm_sub_has_from(it->subscription))) {
        core_free(contact);
        return; /* not entitled: nothing is revealed */
    }
    const char *to = pkt->from.full;
    bool any = false;
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (!s->available || s->presence == NULL)
            continue;
        xml_stanza_t *c = readdress(s->presence, s->jid.full, to);
        sm_route(sm, c);
        xml_stanza_unref(c);
        any = true;
    }
    if (!any) {
        char *bare = bare_of(&u->jid);
        route_new(sm, "unavailable", bare, to);
        core_free(bare);
    }
    core_free(contact);
}

/* Presence a session sends. */
static xml_handler_result_t on_out(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const unsigned subs =
        XMLS_TYPE_SUBSCRIBE | XMLS_TYPE_SUBSCRIBED | XMLS_TYPE_UNSUBSCRIBE | XMLS_TYPE_UNSUBSCRIBED;
    if (pkt->type & subs) {
        if (pkt->to.full == NULL || jid_bare_equal(&pkt->to, &pkt->user->jid))
            return XMLS_HANDLED; /* no contact to subscribe to: ignored */
        outbound(sm, pkt);
        return XMLS_HANDLED;
    }
    if (pkt->type != XMLS_TYPE_AVAILABLE && pkt->type != XMLS_TYPE_UNAVAILABLE)
        return XMLS_PASS; /* probes and errors are routed as they are */
    if (pkt->to.full != NULL) {
        directed(sm, pkt);
    } else if (pkt->type == XMLS_TYPE_AVAILABLE) {
        available(sm, pkt->sess, pkt->st);
    } else {
        unavailable(sm, pkt->sess, pkt->st, true);
    }
    return XMLS_HANDLED;
}

/* Presence for a local user. */
static xml_handler_result_t on_in(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const unsigned subs =
        XMLS_TYPE_SUBSCRIBE | XMLS_TYPE_SUBSCRIBED | XMLS_TYPE_UNSUBSCRIBE | XMLS_TYPE_UNSUBSCRIBED;
    if (pkt->type & subs) {
        if (!jid_bare_equal(&pkt->from, &pkt->user->jid))
            inbound(sm, pkt);
        return XMLS_HANDLED;
    }
    if (pkt->type == XMLS_TYPE_PROBE) {
        probe(sm, pkt);
        return XMLS_HANDLED;
    }
    return XMLS_PASS; /* available, unavailable, error: delivered by the core rules */
}

static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    if (ev != SM_EV_SESS_END)
        return;
    /* §4.5.2: a session that ends without saying so is unavailable all the same. */
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
    unavailable(sm, sess, p, false);
    xml_stanza_unref(p);
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_PRESENCE};
    int rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &m, on_out, NULL);
    return rc < 0 ? rc : sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_in, NULL);
}

const sm_module_t sm_module_presence = {
    .name = "presence",
    .api = SM_MODULE_API,
    .init = init,
    .on_event = on_event,
};
