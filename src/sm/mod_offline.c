/* SPDX-License-Identifier: MIT */
/* XEP-0160: messages for an offline user are kept, stamped (XEP-0203), and delivered later. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"

/* A message worth keeping: anything beyond chat states (XEP-0085 §5.6 says not to keep). */
static bool worth_keeping(const xml_stanza_t *st)
{
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        if (n->ns == NULL || strcmp(n->ns, NS_CHATSTATES) != 0)
            return true;
    }
    return false;
}

typedef struct push_ctx {
    sm_user_t *u;
    xml_stanza_t *st; /* the original, to bounce if it cannot be kept */
} push_ctx_t;

static void on_pushed(void *arg, int status)
{
    push_ctx_t *c = arg;
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    u->busy--;
    if (status < 0) {
        /* Full (XEP-0160 §3) or failed: the sender learns it was not delivered. */
        if (status != -ENOSPC)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot keep an offline message: %s",
                     u->jid.full, strerror(-status));
        sm_reply_error(sm, c->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    } else {
        sm->stats.offline_stored++;
    }
    xml_stanza_unref(c->st);
    core_free(c);
    sm_user_release(sm, u);
}

static xml_handler_result_t on_undelivered(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    if (!worth_keeping(pkt->st))
        return XMLS_HANDLED;
    /* What was read with the user no longer holds all of the queue. */
    storage_list_clear(&u->offline);
    u->offline_loaded = false;
    xml_stanza_t *kept = xml_stanza_copy(pkt->st);
    /* A message a session handed back (XEP-0198) keeps the stamp of its first delivery. */
    if (!sm_delay_ours(sm, kept))
        sm_delay_add(sm, kept, NULL, "Offline Storage");
    size_t len;
    const char *bytes = xml_stanza_bytes(kept, &len);
    push_ctx_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    u->busy++;
    int rc = storage_offline_push(sm->store, u->node, bytes, len, (size_t)sm->cfg->offline_max,
                                  on_pushed, c);
    xml_stanza_unref(kept);
    if (rc < 0) {
        u->busy--;
        xml_stanza_unref(c->st);
        core_free(c);
        return XMLS_PASS; /* the core bounces it */
    }
    return XMLS_HANDLED;
}

/* ---- delivery on the next available presence ---- */

typedef struct fetch_ctx {
    sm_user_t *u;
    unsigned slot;
    char *full; /* the session that asked */
} fetch_ctx_t;

static void fetch_done(fetch_ctx_t *c)
{
    sm_user_t *u = c->u;
    u->busy--;
    u->slots[c->slot] = NULL;
    core_free(c->full);
    core_free(c);
    sm_user_release(u->sm, u);
}

static void on_deleted(void *arg, int status)
{
    fetch_ctx_t *c = arg;
    if (status < 0 && status != -ENOENT)
        core_log(c->u->sm->log, CORE_LOG_WARN, 0, "%s: offline messages not removed: %s",
                 c->u->jid.full, strerror(-status));
    fetch_done(c);
}

/* Hands the queue to sess, then removes what was handed (newer ones stay). */
static void deliver_list(fetch_ctx_t *c, sm_sess_t *sess, const storage_list_t *list)
{
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    for (size_t i = 0; i < list->count; i++) {
        xml_stanza_t *st = xml_stanza_parse(list->items[i].data, list->items[i].len);
        if (st == NULL) {
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: an offline message does not parse",
                     u->jid.full);
            continue;
        }
        sm_sess_send(sm, sess, st);
        xml_stanza_unref(st);
    }
    if (storage_offline_delete(sm->store, u->node, list->count, on_deleted, c) < 0)
        fetch_done(c);
}

static void on_fetched(void *arg, int status, const storage_list_t *list)
{
    fetch_ctx_t *c = arg;
    sm_sess_t *sess = sm_session_by_resource(c->u, c->full);
    /* Delivered only to a session still there; otherwise they wait for the next one. */
    if (status < 0 || list->count == 0 || sess == NULL || !sess->available)
        fetch_done(c);
    else
        deliver_list(c, sess, list);
}

static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    const sm_mod_t *mod = data;
    /* XEP-0160 §5: on available presence with a non-negative priority, once at a time. */
    if (ev != SM_EV_SESS_AVAILABLE || sess->priority < 0 || sess->user->slots[mod->index] != NULL)
        return;
    sm_user_t *u = sess->user;
    fetch_ctx_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->slot = mod->index;
    c->full = core_strdup(sess->jid.full);
    u->busy++;
    u->slots[mod->index] = c;
    if (u->offline_loaded) {
        /* Read with the user at login and still complete: no second trip to the store. */
        storage_list_t list = u->offline;
        u->offline = (storage_list_t){0};
        u->offline_loaded = false;
        if (list.count == 0)
            fetch_done(c);
        else
            deliver_list(c, sess, &list);
        storage_list_clear(&list);
        return;
    }
    if (storage_offline_get(sm->store, u->node, on_fetched, c) < 0)
        fetch_done(c);
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    mod->data = mod;
    const xml_match_t m = {.kind = XMLS_KIND_MESSAGE, .types = XMLS_TYPE_NORMAL | XMLS_TYPE_CHAT};
    return sm_handler_add(sm, SM_CHAIN_UNDELIVERED, &m, on_undelivered, mod);
}

static const char *const features[] = {"msgoffline", NULL};

const sm_module_t sm_module_offline = {
    .name = "offline",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
    .on_event = on_event,
};
