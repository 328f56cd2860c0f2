/* SPDX-License-Identifier: MIT */
/* XEP-0402 bookmarks on PEP, and XEP-0048 bookmarks in private XML (XEP-0049) mapped onto them. */
#include "sm/internal.h"

#include "core/alloc.h"
#include "sm/pep.h"

#include <errno.h>
#include <string.h>

#define NS_BM2 "urn:xmpp:bookmarks:1"
#define NS_BM1 "storage:bookmarks"
#define NS_PRIVATE "jabber:iq:private"

/*
 * The XEP-0402 node is the one store: a XEP-0048 client's private XML get is answered from
 * its items, and its set is turned into publications and retractions there (XEP-0402 §5.3,
 * "#compat"), so both kinds of client see one list, and PEP clients hear of legacy changes.
 * Mapping (XEP-0402 §5.1): the conference's 'jid' is the item id; 'name', 'autojoin', <nick/>
 * and <password/> keep their meaning. A XEP-0402 <extensions/> element, which a legacy client
 * cannot carry, is kept from the item it replaces. <url/> bookmarks have no XEP-0402 form and
 * are not kept.
 */

/* XEP-0402 §3: whoever creates the node first, it is private and keeps every bookmark. */
static void bm2_defaults(pubsub_config_t *cfg)
{
    pubsub_config_pep_defaults(cfg);
    cfg->access_model = PUBSUB_ACCESS_WHITELIST;
    cfg->persist_items = true;
    cfg->max_items_max = true;
    cfg->send_last = PUBSUB_SEND_LAST_NEVER;
}

static bool is_true(const char *v)
{
    bool b = false;
    return v != NULL && pubsub_bool_parse(v, &b) == 0 && b;
}

static void child_text(xml_stanza_t *st, xml_node_t *parent, const char *ns, const xml_node_t *src,
                       const char *src_ns, const char *name)
{
    const xml_node_t *c = xml_node_child(src, src_ns, name);
    if (c == NULL)
        return;
    size_t len;
    const char *t = xml_node_text(c, &len);
    xml_node_add_text(st, xml_node_add_element(st, parent, ns, name), t, len);
}

/* ---- XEP-0402 items as a XEP-0048 <storage/> ---- */

static void legacy_conference(xml_stanza_t *r, xml_node_t *storage, const pubsub_item_t *it)
{
    const xml_node_t *p = it->payload != NULL ? it->payload->root : NULL;
    if (p == NULL || !xml_node_is(p, NS_BM2, "conference"))
        return;
    xml_node_t *c = xml_node_add_element(r, storage, NS_BM1, "conference");
    xml_node_set_attr(r, c, NULL, "jid", it->id);
    const char *name = xml_node_attr(p, "name");
    if (name != NULL)
        xml_node_set_attr(r, c, NULL, "name", name);
    if (is_true(xml_node_attr(p, "autojoin")))
        xml_node_set_attr(r, c, NULL, "autojoin", "true");
    child_text(r, c, NS_BM1, p, NS_BM2, "nick");
    child_text(r, c, NS_BM1, p, NS_BM2, "password");
}

static void legacy_get(sm_t *sm, const xml_stanza_t *req, const pubsub_node_t *node)
{
    xml_stanza_t *r = sm_iq_result(req);
    xml_node_t *q = xml_node_add_element(r, r->root, NS_PRIVATE, "query");
    xml_node_t *storage = xml_node_add_element(r, q, NS_BM1, "storage");
    for (size_t i = 0; node != NULL && i < node->nitems; i++)
        legacy_conference(r, storage, &node->items[i]);
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* ---- a XEP-0048 <storage/> as XEP-0402 items ---- */

/* The XEP-0402 payload for a legacy conference, keeping old's <extensions/>. */
static xml_stanza_t *bm2_payload(const xml_node_t *conf, const pubsub_item_t *old)
{
    xml_stanza_t *p = xml_stanza_new(NS_BM2, "conference");
    const char *name = xml_node_attr(conf, "name");
    if (name != NULL && name[0] != '\0')
        xml_node_set_attr(p, p->root, NULL, "name", name);
    if (is_true(xml_node_attr(conf, "autojoin")))
        xml_node_set_attr(p, p->root, NULL, "autojoin", "true");
    child_text(p, p->root, NS_BM2, conf, NS_BM1, "nick");
    child_text(p, p->root, NS_BM2, conf, NS_BM1, "password");
    const xml_node_t *ext = old != NULL && old->payload != NULL
        ? xml_node_child(old->payload->root, NS_BM2, "extensions")
        : NULL;
    if (ext != NULL)
        xml_node_add_copy(p, p->root, ext);
    return p;
}

static bool same_text(const xml_node_t *a, const char *a_ns, const xml_node_t *b, const char *b_ns,
                      const char *name)
{
    const xml_node_t *x = xml_node_child(a, a_ns, name), *y = xml_node_child(b, b_ns, name);
    if (x == NULL || y == NULL)
        return x == y;
    size_t xl, yl;
    const char *xt = xml_node_text(x, &xl), *yt = xml_node_text(y, &yl);
    return xl == yl && memcmp(xt, yt, xl) == 0;
}

/* The legacy conference says what the item says (XEP-0402 §5.3.2: unchanged items are not
 * published again): name, autojoin as a boolean, nick, password. */
static bool same_bookmark(const xml_node_t *conf, const pubsub_item_t *old)
{
    const xml_node_t *p = old != NULL && old->payload != NULL ? old->payload->root : NULL;
    if (p == NULL || !xml_node_is(p, NS_BM2, "conference"))
        return false;
    const char *a = xml_node_attr(conf, "name"), *b = xml_node_attr(p, "name");
    if (a != NULL && a[0] == '\0')
        a = NULL;
    if ((a == NULL) != (b == NULL) || (a != NULL && strcmp(a, b) != 0))
        return false;
    return is_true(xml_node_attr(conf, "autojoin")) == is_true(xml_node_attr(p, "autojoin")) &&
        same_text(conf, NS_BM1, p, NS_BM2, "nick") &&
        same_text(conf, NS_BM1, p, NS_BM2, "password");
}

/*
 * The item ids (prepared room JIDs) of the legacy list, in order, or -EINVAL when a
 * conference has no usable 'jid' (the whole set is refused: nothing would be half-done).
 */
static int legacy_ids(sm_t *sm, const xml_node_t *storage, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    for (const xml_node_t *c = xml_node_first_element(storage); c != NULL;
         c = xml_node_next_element(c)) {
        if (!xml_node_is(c, NS_BM1, "conference"))
            continue;
        const char *s = xml_node_attr(c, "jid");
        jid_t j;
        if (s == NULL || jid_parse(sm->jids, s, strlen(s), &j) < 0) {
            for (size_t i = 0; i < *n; i++)
                core_free((*out)[i]);
            core_free(*out);
            *out = NULL;
            *n = 0;
            return -EINVAL;
        }
        *out = core_realloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = core_strdup(j.full);
        jid_clear(&j);
    }
    return 0;
}

static bool listed(char **ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ids[i], id) == 0)
            return true;
    }
    return false;
}

/* XEP-0402 §5.3.2: changed and new bookmarks are published, missing ones retracted with
 * notifications, unchanged ones left alone. */
static void legacy_apply(sm_t *sm, sm_user_t *u, pubsub_service_t *svc, pubsub_node_t *node,
                         const xml_node_t *storage, char **ids)
{
    size_t k = 0;
    for (const xml_node_t *c = xml_node_first_element(storage); c != NULL;
         c = xml_node_next_element(c)) {
        if (!xml_node_is(c, NS_BM1, "conference"))
            continue;
        const char *id = ids[k++];
        const pubsub_item_t *old = pubsub_item_find(node, id);
        if (same_bookmark(c, old))
            continue;
        xml_stanza_t *p = bm2_payload(c, old);
        if (pubsub_item_publish(svc, node, id, p->root, &u->jid, NULL) < 0)
            core_log(sm->log, CORE_LOG_INFO, 0, "%s: bookmark %s not kept (limits)", u->jid.full,
                     id);
        xml_stanza_unref(p);
    }
    /* Retraction changes the item list: the ids to go are taken first. */
    size_t ngone = 0;
    char **gone = core_calloc(node->nitems + 1, sizeof(*gone));
    for (size_t i = 0; i < node->nitems; i++) {
        if (!listed(ids, k, node->items[i].id))
            gone[ngone++] = core_strdup(node->items[i].id);
    }
    for (size_t i = 0; i < ngone; i++) {
        pubsub_item_retract(svc, node, gone[i], true, &u->jid);
        core_free(gone[i]);
    }
    core_free(gone);
}

/* Creates the node with XEP-0402's configuration; 0, or the engine's error (limits). */
static int node_make(pubsub_service_t *svc, sm_user_t *u, pubsub_node_t **node)
{
    pubsub_config_t cfg;
    bm2_defaults(&cfg);
    int rc = pubsub_node_create(svc, NS_BM2, &cfg, &u->jid, node);
    pubsub_config_clear(&cfg);
    return rc;
}

static void legacy_set(sm_t *sm, sm_user_t *u, xml_stanza_t *req, pubsub_service_t *svc,
                       pubsub_node_t *node, const xml_node_t *storage)
{
    char **ids;
    size_t n;
    if (legacy_ids(sm, storage, &ids, &n) < 0) {
        sm_reply_error(sm, req, CORE_STANZA_ERR_NOT_ACCEPTABLE);
        return;
    }
    if (node == NULL && node_make(svc, u, &node) < 0) {
        /* The account's node limit. */
        sm_reply_error(sm, req, CORE_STANZA_ERR_POLICY_VIOLATION);
    } else {
        legacy_apply(sm, u, svc, node, storage, ids);
        xml_stanza_t *r = sm_iq_result(req);
        sm_route(sm, r);
        xml_stanza_unref(r);
    }
    for (size_t i = 0; i < n; i++)
        core_free(ids[i]);
    core_free(ids);
}

/* ---- the private XML requests ---- */

/* The request's <storage xmlns='storage:bookmarks'/> when that is all it holds. */
static const xml_node_t *bookmarks_only(const xml_node_t *query)
{
    const xml_node_t *storage = NULL;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL;
         n = xml_node_next_element(n)) {
        if (!xml_node_is(n, NS_BM1, "storage") || storage != NULL)
            return NULL;
        storage = n;
    }
    return storage;
}

/*
 * Answers a legacy request from the XEP-0402 node (st: its <query/> holds only storage:bookmarks).
 * XEP-0411 §5: a node others may read is neither filled from nor read as private XML: then
 * the request is the private storage module's, and false is returned.
 */
static bool answer(sm_t *sm, sm_user_t *u, xml_stanza_t *st)
{
    pubsub_service_t *svc = sm_pep_begin(sm, u);
    pubsub_node_t *node = svc != NULL ? pubsub_node_find(svc, NS_BM2) : NULL;
    bool ours = svc != NULL && (node == NULL || node->cfg.access_model == PUBSUB_ACCESS_WHITELIST);
    if (ours && xml_stanza_type_bit(st) == XMLS_TYPE_GET)
        legacy_get(sm, st, node);
    else if (ours)
        legacy_set(sm, u, st, svc, node, bookmarks_only(xml_node_first_element(st->root)));
    sm_pep_commit(sm, u);
    return ours;
}

/* ---- bookmarks kept in private XML before this module was on ---- */

/* mod_private's documents: one per namespace, <query xmlns='jabber:iq:private'>…</query>. */
#define KIND_PRIVATE "private"

typedef struct migrate_ctx {
    sm_user_t *u;
    xml_stanza_t *st; /* the legacy get that waits */
} migrate_ctx_t;

/* Fills a missing node from the stored private XML (XEP-0411 §4: a copy, made once). */
static void migrate(sm_t *sm, sm_user_t *u, const char *data, size_t len)
{
    xml_stanza_t *doc = xml_stanza_parse(data, len);
    const xml_node_t *storage = doc != NULL && xml_node_is(doc->root, NS_PRIVATE, "query")
        ? xml_node_child(doc->root, NS_BM1, "storage")
        : NULL;
    pubsub_service_t *svc = storage != NULL ? sm_pep_begin(sm, u) : NULL;
    char **ids = NULL;
    size_t n = 0;
    pubsub_node_t *node = NULL;
    if (svc != NULL && pubsub_node_find(svc, NS_BM2) == NULL &&
        legacy_ids(sm, storage, &ids, &n) == 0 && n > 0 && node_make(svc, u, &node) == 0) {
        legacy_apply(sm, u, svc, node, storage, ids);
        core_log(sm->log, CORE_LOG_INFO, 0, "%s: %zu private XML bookmarks moved to PEP",
                 u->jid.full, n);
    }
    for (size_t i = 0; i < n; i++)
        core_free(ids[i]);
    core_free(ids);
    if (svc != NULL)
        sm_pep_commit(sm, u);
    xml_stanza_unref(doc);
}

static void on_private_read(void *arg, int status, const char *data, size_t len)
{
    migrate_ctx_t *c = arg;
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    /* The user stays held until the end: the answer goes to the session's full JID, and if
     * that session is gone, routing it would release (and free) the user under us. */
    if (u->state == SM_USER_READY) {
        if (status == 0)
            migrate(sm, u, data, len);
        else if (status != -ENOENT)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: private XML bookmarks not read: %s",
                     u->jid.full, strerror(-status));
        if (!answer(sm, u, c->st)) {
            /* Not ours after all: on to the private storage module, as IN_SESS would. */
            xml_stanza_t *to_user = xml_stanza_copy(c->st);
            char *bare = core_strndup(u->jid.full, u->jid.bare_len);
            xml_node_set_attr(to_user, to_user->root, NULL, "to", bare);
            core_free(bare);
            sm_deliver_to_user(sm, u, to_user);
            xml_stanza_unref(to_user);
        }
    }
    xml_stanza_unref(c->st);
    core_free(c);
    u->busy--;
    sm_user_release(sm, u);
}

/* The first legacy get of a user whose node does not exist looks for older private XML
 * bookmarks first; true when the request now waits for that read. */
static bool migrate_first(sm_t *sm, sm_mod_t *mod, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    if (pkt->type != XMLS_TYPE_GET || u->slots[mod->index] != NULL)
        return false;
    u->slots[mod->index] = mod; /* looked once per stay in memory */
    pubsub_service_t *svc = sm_pep_begin(sm, u);
    bool missing = svc != NULL && pubsub_node_find(svc, NS_BM2) == NULL;
    sm_pep_commit(sm, u);
    if (!missing)
        return false;
    migrate_ctx_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    u->busy++;
    if (storage_doc_get(sm->store, u->node, KIND_PRIVATE, NS_BM1, on_private_read, c) < 0) {
        u->busy--;
        xml_stanza_unref(c->st);
        core_free(c);
        return false;
    }
    return true;
}

/*
 * jabber:iq:private from one of the user's sessions, for its own account, holding only
 * storage:bookmarks: answered from the XEP-0402 node. Everything else goes on to the private
 * storage module (on TO_USER).
 */
static xml_handler_result_t on_private(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (pkt->to.full != NULL &&
        (jid_has_resource(&pkt->to) || !jid_bare_equal(&pkt->to, &pkt->user->jid)))
        return XMLS_PASS;
    if (bookmarks_only(pkt->payload) == NULL)
        return XMLS_PASS;
    if (migrate_first(sm, data, pkt))
        return XMLS_HANDLED;
    return answer(sm, pkt->user, pkt->st) ? XMLS_HANDLED : XMLS_PASS;
}

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    const sm_mod_t *mod = data;
    if (sess == NULL)
        u->slots[mod->index] = NULL; /* a mark, nothing to free */
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    if (!sm_pep_enabled(sm)) {
        core_log(sm->log, CORE_LOG_ERROR, 0,
                 "module bookmarks needs module pep: disable both, or neither");
        return -EINVAL;
    }
    pubsub_config_t cfg;
    bm2_defaults(&cfg);
    int rc = sm_pep_node_defaults(sm, NS_BM2, &cfg);
    pubsub_config_clear(&cfg);
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                           .payload_ns = NS_PRIVATE,
                           .payload_name = "query"};
    mod->data = mod;
    return rc < 0 ? rc : sm_handler_add(sm, SM_CHAIN_IN_SESS, &m, on_private, mod);
}

/* XEP-0402 §5.3: private XML and PEP bookmarks are one. */
static const char *const account_features[] = {NS_BM2 "#compat", NULL};

const sm_module_t sm_module_bookmarks = {
    .name = "bookmarks",
    .api = SM_MODULE_API,
    .account_features = account_features,
    .init = init,
    .free_slot = free_slot,
};
