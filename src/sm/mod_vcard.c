/* SPDX-License-Identifier: MIT */
/* XEP-0054: each account's vCard, set by its owner and read by anyone; the avatars of XEP-0153. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

#define NS_VCARD "vcard-temp"
/*
 * One document per user: the <vCard/> element as the user sent it (every child kept, the
 * XEP-0153 PHOTO among them). The server does nothing more for avatars: XEP-0153's
 * <x xmlns='vcard-temp:x:update'/> in presence is the clients' business and passes untouched.
 */
#define KIND_VCARD "vcard"
#define KEY_VCARD "vcard-temp"

typedef struct vcard_req {
    sm_user_t *u;
    xml_stanza_t *st; /* the request */
    bool own; /* asked by the vCard's owner */
} vcard_req_t;

static vcard_req_t *req_new(sm_user_t *u, const sm_pkt_t *pkt, bool own)
{
    vcard_req_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    c->own = own;
    u->busy++;
    return c;
}

static void req_done(vcard_req_t *c)
{
    sm_user_t *u = c->u;
    u->busy--;
    xml_stanza_unref(c->st);
    core_free(c);
    sm_user_release(u->sm, u);
}

/* An error answer without the request's payload (a refused vCard can be large). */
static void reply_bare_error(sm_t *sm, const xml_stanza_t *req, core_stanza_err_t cond,
                             const char *text)
{
    xml_stanza_t *e = sm_iq_result(req);
    xml_node_t *err = xml_stanza_make_error(e, cond, NULL, false);
    if (text != NULL) {
        xml_node_t *t = xml_node_add_element(e, err, CORE_NS_STANZA_ERRORS, "text");
        xml_node_add_text(e, t, text, strlen(text));
    }
    sm_route(sm, e);
    xml_stanza_unref(e);
}

static void on_got(void *arg, int status, const char *data, size_t len)
{
    vcard_req_t *c = arg;
    sm_t *sm = c->u->sm;
    xml_stanza_t *card = status == 0 ? xml_stanza_parse(data, len) : NULL;
    if (card != NULL && xml_node_is(card->root, NS_VCARD, "vCard")) {
        xml_stanza_t *r = sm_iq_result(c->st);
        xml_node_add_copy(r, r->root, card->root);
        sm_route(sm, r);
        xml_stanza_unref(r);
    } else if (status == 0 || status == -ENOENT) {
        if (status == 0)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: the stored vCard does not parse",
                     c->u->jid.full);
        if (c->own) {
            /* §3.1: the owner gets an empty vCard when there is none. */
            xml_stanza_t *r = sm_iq_result(c->st);
            xml_node_add_element(r, r->root, NS_VCARD, "vCard");
            sm_route(sm, r);
            xml_stanza_unref(r);
        } else {
            /* §3.3: anyone else gets what a missing account gets (no harvesting). */
            sm_reply_error(sm, c->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
        }
    } else {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot read the vCard: %s", c->u->jid.full,
                 strerror(-status));
        sm_reply_error(sm, c->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
    xml_stanza_unref(card);
    req_done(c);
}

static void on_put(void *arg, int status)
{
    vcard_req_t *c = arg;
    sm_t *sm = c->u->sm;
    if (status == 0) {
        xml_stanza_t *r = sm_iq_result(c->st);
        sm_route(sm, r);
        xml_stanza_unref(r);
    } else {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot store the vCard: %s", c->u->jid.full,
                 strerror(-status));
        reply_bare_error(sm, c->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR, NULL);
    }
    req_done(c);
}

static void vcard_set(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    core_buf_t b = {0};
    xml_node_serialize(pkt->payload, &b);
    /*
     * The XEP names no limit or error for it: a limit of this server is RFC 6120 §8.3.3.12's
     * local service policy, as for Parley's other per-user limits.
     */
    if (b.len > sm->cfg->vcard_max_size) {
        reply_bare_error(sm, pkt->st, CORE_STANZA_ERR_POLICY_VIOLATION, "the vCard is too large");
        core_buf_release(&b);
        return;
    }
    vcard_req_t *c = req_new(u, pkt, true);
    if (storage_doc_put(sm->store, u->node, KIND_VCARD, KEY_VCARD, b.data, b.len, on_put, c) < 0) {
        reply_bare_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR, NULL);
        req_done(c);
    }
    core_buf_release(&b);
}

static xml_handler_result_t on_vcard(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    /* To a full JID the resource answers (the core delivers it). */
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    bool own = jid_bare_equal(&pkt->from, &u->jid);
    if (pkt->type == XMLS_TYPE_SET) {
        /* §3.2: only the owner sets its vCard; anyone else is refused. */
        if (own)
            vcard_set(sm, pkt);
        else
            reply_bare_error(sm, pkt->st, CORE_STANZA_ERR_FORBIDDEN, NULL);
        return XMLS_HANDLED;
    }
    /* §3.1, §3.3: the owner, and anyone else, read it from the bare JID. */
    vcard_req_t *c = req_new(u, pkt, own);
    if (storage_doc_get(sm->store, u->node, KIND_VCARD, KEY_VCARD, on_got, c) < 0) {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        req_done(c);
    }
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                           .payload_ns = NS_VCARD,
                           .payload_name = "vCard"};
    return sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_vcard, NULL);
}

/* §4: the server supports vcard-temp, and so does each account's bare JID. */
static const char *const features[] = {NS_VCARD, NULL};

const sm_module_t sm_module_vcard = {
    .name = "vcard",
    .api = SM_MODULE_API,
    .features = features,
    .account_features = features,
    .init = init,
};
