/* SPDX-License-Identifier: MIT */
/* XEP-0012: when an account was last connected (and its last status), and the server's uptime. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_LAST "jabber:iq:last"
/*
 * One document per user: "<unix seconds>\n<status>", written when the user's last session
 * ends (XEP-0012 §3: the time since the user logged out, and the status of the last
 * unavailable presence).
 */
#define KIND_LAST "last"
#define KEY_LAST "last"

/* The module's data. Each user's slot holds the status of its latest unavailable presence
 * (owned), or NULL. */
typedef struct last_mod {
    const sm_mod_t *mod;
    uint64_t started_ns; /* uv_hrtime() when the sm started (§5: uptime) */
} last_mod_t;

/* Answers the request req with seconds and the status text (may be empty). */
static void reply_seconds(sm_t *sm, const xml_stanza_t *req, uint64_t seconds, const char *status,
                          size_t status_len)
{
    xml_stanza_t *r = sm_iq_result(req);
    xml_node_t *q = xml_node_add_element(r, r->root, NS_LAST, "query");
    char num[24];
    snprintf(num, sizeof(num), "%" PRIu64, seconds);
    xml_node_set_attr(r, q, NULL, "seconds", num);
    if (status_len > 0)
        xml_node_add_text(r, q, status, status_len);
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* §5: to the server, the time since it started, with no text. */
static xml_handler_result_t on_server(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const last_mod_t *lm = data;
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    reply_seconds(sm, pkt->st, (uv_hrtime() - lm->started_ns) / 1000000000u, NULL, 0);
    return XMLS_HANDLED;
}

/*
 * §3, §4 and §8: only the user and those allowed to see its presence (a subscription 'from'
 * or 'both') learn anything; anyone else would learn the user's network availability.
 */
static bool may_see(const sm_pkt_t *pkt)
{
    if (jid_bare_equal(&pkt->from, &pkt->user->jid))
        return true;
    char *bare = core_strndup(pkt->from.full, pkt->from.bare_len);
    const storage_roster_item_t *it = sm_roster_find(pkt->user, bare);
    core_free(bare);
    return it != NULL &&
        (it->subscription == STORAGE_SUB_FROM || it->subscription == STORAGE_SUB_BOTH);
}

typedef struct query_ctx {
    sm_user_t *u;
    xml_stanza_t *st; /* the request */
} query_ctx_t;

static void on_doc(void *arg, int status, const char *data, size_t len)
{
    query_ctx_t *c = arg;
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    u->busy--;
    char *end = NULL;
    unsigned long long then = status == 0 ? strtoull(data, &end, 10) : 0;
    if (status == 0 && end != NULL && end != data) {
        time_t now = time(NULL);
        uint64_t secs = now > 0 && (uint64_t)now > then ? (uint64_t)now - then : 0;
        const char *text = *end == '\n' ? end + 1 : end;
        reply_seconds(sm, c->st, secs, text, len - (size_t)(text - data));
    } else {
        /* Never logged out since this server keeps last activity: nothing to tell. */
        if (status != 0 && status != -ENOENT)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot read last activity: %s", u->jid.full,
                     strerror(-status));
        sm_reply_error(sm, c->st,
                       status == -ENOENT || status == 0 ? CORE_STANZA_ERR_ITEM_NOT_FOUND
                                                        : CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
    xml_stanza_unref(c->st);
    core_free(c);
    sm_user_release(sm, u);
}

static bool online(const sm_user_t *u)
{
    for (const sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s->started)
            return true;
    }
    return false;
}

static xml_handler_result_t on_user(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    /* §4 and §8: a full JID's resource answers for itself, but only to those who may see it. */
    if (!may_see(pkt)) {
        xml_stanza_t *e = xml_stanza_error_reply(pkt->st, CORE_STANZA_ERR_FORBIDDEN);
        sm_route(sm, e);
        xml_stanza_unref(e);
        return XMLS_HANDLED;
    }
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    /* §3: a user with a connected resource is active now. */
    if (online(u)) {
        reply_seconds(sm, pkt->st, 0, NULL, 0);
        return XMLS_HANDLED;
    }
    query_ctx_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    u->busy++;
    if (storage_doc_get(sm->store, u->node, KIND_LAST, KEY_LAST, on_doc, c) < 0) {
        u->busy--;
        xml_stanza_unref(c->st);
        core_free(c);
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
    return XMLS_HANDLED;
}

/* Remembers the status of the user's latest unavailable presence, for the record. */
static void on_presence(sm_t *sm, void *data, sm_sess_t *sess, const xml_stanza_t *st)
{
    const last_mod_t *lm = data;
    const char *type = xml_stanza_type(st);
    if (type == NULL || strcmp(type, "unavailable") != 0)
        return;
    sm_user_t *u = sess->user;
    const xml_node_t *s = xml_node_child(st->root, XMLS_NS_CONTENT, "status");
    size_t len = 0;
    const char *text = s != NULL ? xml_node_text(s, &len) : "";
    core_free(u->slots[lm->mod->index]);
    u->slots[lm->mod->index] = core_strndup(text, len);
}

static void on_written(void *arg, int status)
{
    sm_user_t *u = arg;
    u->busy--;
    if (status < 0 && status != -ENOENT)
        core_log(u->sm->log, CORE_LOG_WARN, 0, "%s: last activity not stored: %s", u->jid.full,
                 strerror(-status));
    sm_user_release(u->sm, u);
}

/* §3: when the user's last session ends, the time and the status are recorded. */
static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    const last_mod_t *lm = data;
    if (ev != SM_EV_SESS_END)
        return;
    sm_user_t *u = sess->user;
    for (const sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s != sess && s->started)
            return; /* another session goes on */
    }
    const char *status = u->slots[lm->mod->index] != NULL ? u->slots[lm->mod->index] : "";
    char *doc = core_malloc(32 + strlen(status));
    int n = snprintf(doc, 32 + strlen(status), "%lld\n%s", (long long)time(NULL), status);
    u->busy++;
    if (storage_doc_put(sm->store, u->node, KIND_LAST, KEY_LAST, doc, (size_t)n, on_written, u) <
        0) {
        u->busy--;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot store last activity", u->jid.full);
    }
    core_free(doc);
}

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    const last_mod_t *lm = data;
    if (sess == NULL) {
        core_free(u->slots[lm->mod->index]);
        u->slots[lm->mod->index] = NULL;
    }
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    last_mod_t *lm = core_calloc(1, sizeof(*lm));
    lm->mod = mod;
    lm->started_ns = uv_hrtime();
    mod->data = lm;
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET,
                           .payload_ns = NS_LAST,
                           .payload_name = "query"};
    int rc = sm_handler_add(sm, SM_CHAIN_TO_SERVER, &m, on_server, lm);
    return rc < 0 ? rc : sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_user, lm);
}

static void fini(sm_t *sm, sm_mod_t *mod)
{
    core_free(mod->data);
    mod->data = NULL;
}

static const char *const features[] = {NS_LAST, NULL};

const sm_module_t sm_module_last = {
    .name = "last",
    .api = SM_MODULE_API,
    .features = features,
    .account_features = features,
    .init = init,
    .fini = fini,
    .on_event = on_event,
    .free_slot = free_slot,
    .on_presence = on_presence,
};
