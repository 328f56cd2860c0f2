/* SPDX-License-Identifier: MIT */
/* XEP-0280: copies of a user's messages, sent and received, for its carbons-enabled sessions. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <string.h>

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_HINTS "urn:xmpp:hints"
#define NS_SID "urn:xmpp:sid:0"
#define NS_RECEIPTS "urn:xmpp:receipts"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_MARKERS "urn:xmpp:chat-markers:0"
#define NS_MUC_USER "http://jabber.org/protocol/muc#user"
#define NS_CONFERENCE "jabber:x:conference"

/*
 * §6.1: an error is eligible when it answers an eligible message. Errors carry the id of
 * what they answer (RFC 6120 §8.3.1), so the last eligible messages of a user (id and the
 * other party) are remembered, while the user has a carbons-enabled session; older ones
 * fall out of the ring.
 */
#define TRACK_MAX 32
#define TRACK_ID_MAX 128

typedef struct tracked {
    char *id; /* owned; NULL: unused */
    char *peer; /* the other party's bare JID, owned */
} tracked_t;

/* A user's slot. */
typedef struct carbons_user {
    tracked_t ring[TRACK_MAX];
    unsigned next;
} carbons_user_t;

/* A session's slot holds this marker while it has carbons enabled (§4, §5). */
static char enabled_mark;

static bool enabled(const sm_mod_t *mod, const sm_sess_t *s)
{
    return s->slots[mod->index] == &enabled_mark && s->started && s->available;
}

static bool any_enabled(const sm_mod_t *mod, const sm_user_t *u, const sm_sess_t *except)
{
    for (const sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s != except && enabled(mod, s))
            return true;
    }
    return false;
}

/* ---- the errors' ring ---- */

static void track(const sm_mod_t *mod, sm_user_t *u, const sm_pkt_t *pkt, const jid_t *peer)
{
    const char *id = xml_stanza_id(pkt->st);
    if (id == NULL || id[0] == '\0' || strlen(id) > TRACK_ID_MAX)
        return;
    carbons_user_t *cu = u->slots[mod->index];
    if (cu == NULL)
        cu = u->slots[mod->index] = core_calloc(1, sizeof(*cu));
    tracked_t *t = &cu->ring[cu->next];
    cu->next = (cu->next + 1) % TRACK_MAX;
    core_free(t->id);
    core_free(t->peer);
    t->id = core_strdup(id);
    t->peer = core_strndup(peer->full, peer->bare_len);
}

static bool tracked(const sm_mod_t *mod, const sm_user_t *u, const sm_pkt_t *pkt, const jid_t *peer)
{
    const carbons_user_t *cu = u->slots[mod->index];
    const char *id = xml_stanza_id(pkt->st);
    if (cu == NULL || id == NULL)
        return false;
    for (size_t i = 0; i < TRACK_MAX; i++) {
        const tracked_t *t = &cu->ring[i];
        if (t->id != NULL && strcmp(t->id, id) == 0 && strlen(t->peer) == peer->bare_len &&
            memcmp(t->peer, peer->full, peer->bare_len) == 0)
            return true;
    }
    return false;
}

/* ---- which messages (§6.1, §9, XEP-0334 §4.3) ---- */

typedef struct traits {
    bool no_copy; /* <private/> (§8), XEP-0334 <no-copy/>, or a carbon itself */
    bool body;
    bool im_payload; /* receipts (XEP-0184), chat states (XEP-0085), markers (XEP-0333) */
    bool muc_x; /* <x xmlns='muc#user'/>: from or for a MUC */
    bool invite; /* XEP-0249, or a XEP-0045 mediated invitation */
} traits_t;

static void traits_read(const xml_stanza_t *st, traits_t *t)
{
    *t = (traits_t){0};
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        const char *ns = n->ns;
        if (ns == XMLS_NS_CONTENT) {
            t->body |= strcmp(n->name, "body") == 0;
        } else if (ns == NULL) {
            continue;
        } else if (strcmp(ns, NS_CARBONS) == 0) {
            /* <private/>, and a <sent/> or <received/>: a carbon is never carboned again. */
            t->no_copy = true;
        } else if (strcmp(ns, NS_HINTS) == 0 && strcmp(n->name, "no-copy") == 0) {
            t->no_copy = true;
        } else if (strcmp(ns, NS_RECEIPTS) == 0 || strcmp(ns, NS_CHATSTATES) == 0 ||
                   strcmp(ns, NS_MARKERS) == 0) {
            t->im_payload = true;
        } else if (strcmp(ns, NS_CONFERENCE) == 0 && strcmp(n->name, "x") == 0) {
            t->invite = true;
        } else if (strcmp(ns, NS_MUC_USER) == 0 && strcmp(n->name, "x") == 0) {
            t->muc_x = true;
            t->invite |= xml_node_child(n, NS_MUC_USER, "invite") != NULL;
        }
    }
}

/*
 * §6.1: no <private/> (§9; nor XEP-0334's <no-copy/>, which asks for no copies "for example
 * through Message Carbons"), and: chat; normal with a body; an IM payload; an error
 * answering an eligible message; an invitation. Never groupchat, and never a private
 * message a MUC participant sent (from a full JID with the MUC's <x/>): the room already
 * gives it to every joined client.
 */
static bool eligible(const sm_mod_t *mod, const sm_user_t *u, const sm_pkt_t *pkt,
                     const jid_t *peer, bool inbound)
{
    traits_t t;
    traits_read(pkt->st, &t);
    if (t.no_copy)
        return false;
    switch (pkt->type) {
    case XMLS_TYPE_GROUPCHAT:
        return false;
    case XMLS_TYPE_ERROR:
        return tracked(mod, u, pkt, peer);
    default:
        break;
    }
    if (t.invite)
        return true;
    if (t.muc_x && inbound && jid_has_resource(&pkt->from))
        return false;
    if (pkt->type == XMLS_TYPE_CHAT || (pkt->type == XMLS_TYPE_NORMAL && t.body))
        return true;
    return t.im_payload;
}

/* ---- the copies (§7, §8, XEP-0297) ---- */

/*
 * <message from=bare to=s type=...><WHICH xmlns=carbons><forwarded xmlns=forward:0>
 * [the original, unchanged]</forwarded></WHICH></message>, with the XEP-0359 id of the
 * sender's archive in a sent copy (XEP-0313 §5.1.3).
 */
static xml_stanza_t *carbon_new(const sm_user_t *u, const sm_pkt_t *pkt, const char *which)
{
    xml_stanza_t *c = xml_stanza_new(XMLS_NS_CONTENT, "message");
    char *bare = core_strndup(u->jid.full, u->jid.bare_len);
    xml_node_set_attr(c, c->root, NULL, "from", bare);
    const char *type = xml_stanza_type(pkt->st);
    if (type != NULL)
        xml_node_set_attr(c, c->root, NULL, "type", type);
    xml_node_t *w = xml_node_add_element(c, c->root, NS_CARBONS, which);
    xml_node_t *f = xml_node_add_element(c, w, NS_FORWARD, "forwarded");
    xml_node_t *m = xml_node_add_copy(c, f, pkt->st->root);
    if (pkt->stanza_id != NULL && strcmp(which, "sent") == 0) {
        xml_node_t *sid = xml_node_add_element(c, m, NS_SID, "stanza-id");
        xml_node_set_attr(c, sid, NULL, "by", bare);
        xml_node_set_attr(c, sid, NULL, "id", pkt->stanza_id);
    }
    core_free(bare);
    return c;
}

static bool among(const sm_sess_t *s, sm_sess_t *const *to, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (to[i] == s)
            return true;
    }
    return false;
}

/*
 * Hands a copy to each enabled session of u but those in skip[0..n) and the one whose full
 * JID is `sender` (NULL: none). Sent straight to the sessions: a carbon goes through no
 * chain, so it is neither archived nor carboned again.
 */
static void fan_out(sm_t *sm, const sm_mod_t *mod, sm_user_t *u, const sm_pkt_t *pkt,
                    const char *which, sm_sess_t *const *skip, size_t n, const jid_t *sender)
{
    xml_stanza_t *tmpl = NULL;
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (!enabled(mod, s) || among(s, skip, n) || (sender != NULL && jid_equal(&s->jid, sender)))
            continue;
        if (tmpl == NULL)
            tmpl = carbon_new(u, pkt, which);
        /* Shared, not copied: the forwarded message is serialised once for all sessions. */
        xml_stanza_t *c = xml_stanza_readdress(tmpl, xml_stanza_from(tmpl), s->jid.full);
        sm_sess_send(sm, s, c);
        xml_stanza_unref(c);
    }
    xml_stanza_unref(tmpl);
}

/*
 * §8: what a session sends goes, as a <sent/> copy, to the user's other enabled sessions
 * (whether the sender enabled carbons or not). A message to the user's own account is left
 * to the received copies of its delivery.
 */
static xml_handler_result_t on_sent(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const sm_mod_t *mod = data;
    sm_user_t *u = pkt->user;
    if (pkt->to.full == NULL || jid_bare_equal(&pkt->to, &u->jid) ||
        !any_enabled(mod, u, pkt->sess))
        return XMLS_PASS;
    if (!eligible(mod, u, pkt, &pkt->to, false))
        return XMLS_PASS;
    if (pkt->type != XMLS_TYPE_ERROR)
        track(mod, u, pkt, &pkt->to);
    sm_sess_t *sender = pkt->sess;
    fan_out(sm, mod, u, pkt, "sent", &sender, 1, NULL);
    return XMLS_PASS;
}

/*
 * §7: a message delivered to sessions to[0..n) goes, as a <received/> copy, to the user's
 * other enabled sessions. The sending session, when the user wrote to itself, has it already.
 */
static void on_delivered(sm_t *sm, void *data, const sm_pkt_t *pkt, sm_sess_t *const *to, size_t n)
{
    const sm_mod_t *mod = data;
    sm_user_t *u = pkt->user;
    if (pkt->kind != XMLS_KIND_MESSAGE || !any_enabled(mod, u, NULL))
        return;
    if (!eligible(mod, u, pkt, &pkt->from, true))
        return;
    if (pkt->type != XMLS_TYPE_ERROR)
        track(mod, u, pkt, &pkt->from);
    fan_out(sm, mod, u, pkt, "received", to, n, &pkt->from);
}

/* ---- enable and disable (§4, §5) ---- */

static xml_handler_result_t on_toggle(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const sm_mod_t *mod = data;
    if (!sm_pkt_to_home(sm, pkt))
        return XMLS_PASS;
    const char *name = pkt->payload->name;
    /* §10.1: enabling or disabling again is no error. */
    if (strcmp(name, "enable") == 0) {
        pkt->sess->slots[mod->index] = &enabled_mark;
    } else if (strcmp(name, "disable") == 0) {
        pkt->sess->slots[mod->index] = NULL;
    } else {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_BAD_REQUEST);
        return XMLS_HANDLED;
    }
    xml_stanza_t *r = sm_iq_result(pkt->st);
    sm_route(sm, r);
    xml_stanza_unref(r);
    return XMLS_HANDLED;
}

/* §4.1, §5.1: from anyone but a local session (those are taken on IN_SESS): not-allowed. */
static xml_handler_result_t on_foreign(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_NOT_ALLOWED);
    return XMLS_HANDLED;
}

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    const sm_mod_t *mod = data;
    if (sess != NULL) {
        sess->slots[mod->index] = NULL; /* only a marker */
        return;
    }
    carbons_user_t *cu = u->slots[mod->index];
    if (cu == NULL)
        return;
    for (size_t i = 0; i < TRACK_MAX; i++) {
        core_free(cu->ring[i].id);
        core_free(cu->ring[i].peer);
    }
    core_free(cu);
    u->slots[mod->index] = NULL;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    mod->data = mod;
    const xml_match_t toggle = {
        .kind = XMLS_KIND_IQ, .types = XMLS_TYPE_SET, .payload_ns = NS_CARBONS};
    const xml_match_t msg = {.kind = XMLS_KIND_MESSAGE};
    int rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &toggle, on_toggle, mod);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_SERVER, &toggle, on_foreign, mod);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &msg, on_sent, mod);
    return rc;
}

/* §3: announced by the server. */
static const char *const features[] = {NS_CARBONS, NULL};

const sm_module_t sm_module_carbons = {
    .name = "carbons",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
    .on_delivered = on_delivered,
    .free_slot = free_slot,
};
