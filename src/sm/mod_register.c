/* SPDX-License-Identifier: MIT */
/* XEP-0077 for a logged-in user: the registration on file, password change, account removal. */
#include "sm/internal.h"

#include "auth/auth.h"
#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

static const char instructions[] =
    "You are registered. To change your password, send your username and a new password; to cancel "
    "the registration, send remove.";

/*
 * A password change or an account removal in flight: one per user at a time, in the user's
 * slot, holding the user (busy) until it ends.
 */
typedef struct reg_op {
    sm_t *sm;
    unsigned slot;
    sm_user_t *u;
    xml_stanza_t *reply; /* the result: the request's addresses and id, none of its payload */
    uv_work_t work;
    char password[AUTH_PASSWORD_MAX + 1];
    size_t password_len;
    char creds[AUTH_CREDS_TEXT_MAX]; /* written by the worker */
    int rc; /* the worker's result */
} reg_op_t;

/* Sends reply (taken), as it is or turned into an error: with XEP-0086's legacy code beside
 * the condition (XEP-0077 §9), and without the request, which may hold a password (§3.3). */
static void answer(sm_t *sm, xml_stanza_t *reply, bool ok, core_stanza_err_t cond)
{
    if (!ok)
        xml_stanza_make_error(reply, cond, NULL, true);
    sm_route(sm, reply);
    xml_stanza_unref(reply);
}

static void refuse(sm_t *sm, sm_pkt_t *pkt, core_stanza_err_t cond)
{
    answer(sm, sm_iq_result(pkt->st), false, cond);
}

static reg_op_t *op_new(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    reg_op_t *op = core_calloc(1, sizeof(*op));
    op->sm = sm;
    op->slot = mod->index;
    op->u = pkt->user;
    op->reply = sm_iq_result(pkt->st);
    op->work.data = op;
    op->u->slots[op->slot] = op;
    op->u->busy++;
    return op;
}

static void op_end(reg_op_t *op)
{
    sm_user_t *u = op->u;
    u->slots[op->slot] = NULL;
    u->busy--;
    xml_stanza_unref(op->reply);
    OPENSSL_cleanse(op, sizeof(*op));
    core_free(op);
    sm_user_release(u->sm, u);
}

/* Answers the op's request (ok, or with cond) and ends it. */
static void op_finish(reg_op_t *op, bool ok, core_stanza_err_t cond)
{
    answer(op->sm, op->reply, ok, cond);
    op->reply = NULL;
    op_end(op);
}

/* XEP-0077 §3.1: for an entity already registered, <registered/> and what is on file. */
static void send_registered(sm_t *sm, sm_pkt_t *pkt)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, SM_NS_REGISTER, "query");
    xml_node_add_element(r, q, SM_NS_REGISTER, "registered");
    xml_node_t *in = xml_node_add_element(r, q, SM_NS_REGISTER, "instructions");
    xml_node_add_text(r, in, instructions, sizeof(instructions) - 1);
    xml_node_t *name = xml_node_add_element(r, q, SM_NS_REGISTER, "username");
    xml_node_add_text(r, name, pkt->user->node, strlen(pkt->user->node));
    /* The password is not on file (only SCRAM keys are): it stays empty, as §3.1 allows. */
    xml_node_add_element(r, q, SM_NS_REGISTER, "password");
    answer(sm, r, true, 0);
}

/* ---- password change (XEP-0077 §3.3) ---- */

static void on_creds_set(void *arg, int status)
{
    reg_op_t *op = arg;
    if (status == 0) {
        core_log(op->sm->log, CORE_LOG_INFO, 0, "%s changed its password", op->u->jid.full);
        op_finish(op, true, 0);
    } else if (status == -ENOENT) {
        op_finish(op, false, CORE_STANZA_ERR_UNEXPECTED_REQUEST); /* §3.3: not registered */
    } else {
        core_log(op->sm->log, CORE_LOG_WARN, 0, "%s: cannot store a new password: %s",
                 op->u->jid.full, strerror(-status));
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
}

static void hash_work(uv_work_t *w)
{
    reg_op_t *op = w->data;
    size_t n;
    op->rc = auth_creds_text_from_password(op->password, op->password_len, AUTH_ITER_DEFAULT,
                                           op->creds, &n);
    OPENSSL_cleanse(op->password, sizeof(op->password));
}

static void hash_done(uv_work_t *w, int status)
{
    reg_op_t *op = w->data;
    sm_t *sm = op->sm;
    /* Stopping: the store is closing and may be gone. */
    if (status < 0 || op->rc < 0 || sm->stopping) {
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    int rc = storage_creds_set(sm->store, op->u->node, op->creds, on_creds_set, op);
    OPENSSL_cleanse(op->creds, sizeof(op->creds));
    if (rc < 0)
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* The request names the user's own account: its localpart, or its bare JID. */
static bool names_user(sm_t *sm, const sm_user_t *u, const xml_node_t *username)
{
    size_t len = 0;
    const char *name = xml_node_text(username, &len);
    if (len == 0)
        return false;
    core_buf_t b = {0};
    core_buf_append(&b, name, len);
    if (memchr(name, '@', len) == NULL) {
        core_buf_append_str(&b, "@");
        core_buf_append_str(&b, sm->cfg->domain);
    }
    jid_t j;
    bool same = jid_parse(sm->jids, b.data, b.len, &j) == 0;
    core_buf_release(&b);
    if (same) {
        same = !jid_has_resource(&j) && jid_bare_equal(&j, &u->jid);
        jid_clear(&j);
    }
    return same;
}

static void change_password(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    const xml_node_t *user = xml_node_child(pkt->payload, SM_NS_REGISTER, "username");
    const xml_node_t *pw = xml_node_child(pkt->payload, SM_NS_REGISTER, "password");
    /* §3.3: incomplete, or not this account's (a user changes only its own password). */
    if (user == NULL || pw == NULL || !names_user(sm, pkt->user, user)) {
        refuse(sm, pkt, CORE_STANZA_ERR_BAD_REQUEST);
        return;
    }
    size_t len = 0;
    const char *text = xml_node_text(pw, &len);
    /* §3.3: an empty password never replaces the one there is; nor one SASLprep refuses. */
    if (auth_password_acceptable(text, len) < 0) {
        refuse(sm, pkt, CORE_STANZA_ERR_NOT_ACCEPTABLE);
        return;
    }
    reg_op_t *op = op_new(sm, mod, pkt);
    memcpy(op->password, text, len);
    op->password_len = len;
    if (uv_queue_work(sm->loop, &op->work, hash_work, hash_done) < 0)
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* ---- account removal (XEP-0077 §3.2) ---- */

static void presence_to(sm_t *sm, const char *from, const char *to, const char *type)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    xml_node_set_attr(p, p->root, NULL, "from", from);
    xml_node_set_attr(p, p->root, NULL, "to", to);
    xml_node_set_attr(p, p->root, NULL, "type", type);
    sm_route(sm, p);
    xml_stanza_unref(p);
}

/*
 * §3.2: the subscriptions in the removed account's roster are cancelled (RFC 6121 §3.2,
 * §3.3): unsubscribe where it had (or asked for) the contact's presence, unsubscribed where
 * the contact had its own, or asked for it.
 */
static void cancel_subscriptions(sm_t *sm, const sm_user_t *u, const storage_roster_t *roster,
                                 char **pending, size_t npending)
{
    char *bare = core_strndup(u->jid.full, u->jid.bare_len);
    for (size_t i = 0; i < roster->count; i++) {
        const storage_roster_item_t *it = &roster->items[i];
        if (it->subscription == STORAGE_SUB_TO || it->subscription == STORAGE_SUB_BOTH ||
            it->ask == STORAGE_ASK_SUBSCRIBE)
            presence_to(sm, bare, it->jid, "unsubscribe");
        if (it->subscription == STORAGE_SUB_FROM || it->subscription == STORAGE_SUB_BOTH)
            presence_to(sm, bare, it->jid, "unsubscribed");
    }
    for (size_t i = 0; i < npending; i++)
        presence_to(sm, bare, pending[i], "unsubscribed");
    core_free(bare);
}

/* The account is gone from the store: its sessions end, and the user is a missing one. */
static void account_gone(sm_t *sm, sm_user_t *u)
{
    /* §3.2: every session of the account gets the <not-authorized/> stream error. Each ends
     * as if its client had left: contacts get its unavailable presence. */
    while (u->sessions != NULL)
        sm_session_kick(sm, u->sessions, "not-authorized");
    /* From here on the account is answered as missing (RFC 6121 §8.5.1), so what the
     * contacts' servers send back to it goes nowhere. */
    storage_roster_t roster = u->roster;
    char **pending = u->pending_in;
    size_t npending = u->npending_in;
    u->roster = (storage_roster_t){0};
    u->pending_in = NULL;
    u->npending_in = 0;
    u->state = SM_USER_MISSING;
    storage_list_clear(&u->offline);
    u->offline_loaded = false;
    cancel_subscriptions(sm, u, &roster, pending, npending);
    storage_roster_clear(&roster);
    for (size_t i = 0; i < npending; i++)
        core_free(pending[i]);
    core_free(pending);
}

static void on_deleted(void *arg, int status)
{
    reg_op_t *op = arg;
    sm_t *sm = op->sm;
    /* -ENOENT: removed meanwhile (parleyctl deluser); gone all the same. */
    if (status < 0 && status != -ENOENT) {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot remove the account: %s", op->u->jid.full,
                 strerror(-status));
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    core_log(sm->log, CORE_LOG_INFO, 0, "%s removed its account", op->u->jid.full);
    /* The result goes first, while the session is there to take it (§3.2). */
    answer(sm, op->reply, true, 0);
    op->reply = NULL;
    account_gone(sm, op->u);
    op_end(op);
}

static void remove_account(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    /* §3.2: <remove/> must be the only child element of the query. */
    const xml_node_t *first = xml_node_first_element(pkt->payload);
    if (xml_node_next_element(first) != NULL) {
        refuse(sm, pkt, CORE_STANZA_ERR_BAD_REQUEST);
        return;
    }
    reg_op_t *op = op_new(sm, mod, pkt);
    if (storage_user_delete(sm->store, op->u->node, on_deleted, op) < 0)
        op_finish(op, false, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* ---- the handler ---- */

static xml_handler_result_t on_register(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const sm_mod_t *mod = data;
    if (!sm_pkt_to_home(sm, pkt))
        return XMLS_PASS; /* another service's registration (a gateway, say): routed on */
    if (pkt->type == XMLS_TYPE_GET) {
        send_registered(sm, pkt);
    } else if (pkt->user->slots[mod->index] != NULL) {
        refuse(sm, pkt, CORE_STANZA_ERR_RESOURCE_CONSTRAINT); /* one change at a time */
    } else if (xml_node_child(pkt->payload, SM_NS_REGISTER, "remove") != NULL) {
        remove_account(sm, mod, pkt);
    } else {
        change_password(sm, mod, pkt);
    }
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    mod->data = mod;
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                           .payload_ns = SM_NS_REGISTER,
                           .payload_name = "query"};
    return sm_handler_add(sm, SM_CHAIN_IN_SESS, &m, on_register, mod);
}

/* Logged-in users may always change their password and cancel their registration here,
 * whether or not c2s lets new accounts register (XEP-0077 §10). */
static const char *const features[] = {SM_NS_REGISTER, NULL};

const sm_module_t sm_module_register = {
    .name = "register",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
};
