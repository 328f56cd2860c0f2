/* SPDX-License-Identifier: MIT */
/* XEP-0049: XML a user keeps on the server, one document per namespace, for itself only. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

#define NS_PRIVATE "jabber:iq:private"
/*
 * One document per namespace (the key): <query xmlns='jabber:iq:private'/> holding the
 * elements of that namespace from the last set that had any (§2.3: a set may hold several
 * elements of one namespace, and a get returns them all).
 */
#define KIND_PRIVATE "private"
#define PRIVATE_KEYS_MAX 256 /* namespaces one user may keep */
#define PRIVATE_DOC_MAX (1024u * 1024u) /* bytes kept for one namespace */

/* §2.3: namespaces beginning with 'jabber:' or 'http://jabber.org/', and 'vcard-temp'. */
static bool reserved(const char *ns)
{
    return ns == NULL || ns == XMLS_NS_CONTENT || ns[0] == '\0' || strncmp(ns, "jabber:", 7) == 0 ||
        strncmp(ns, "http://jabber.org/", 18) == 0 || strcmp(ns, "vcard-temp") == 0;
}

/* An error answer to req with cond of the given type (the XEP's examples say which). */
static void refuse(sm_t *sm, const xml_stanza_t *req, core_stanza_err_t cond, const char *type)
{
    xml_stanza_t *e = xml_stanza_copy(req);
    xml_node_set_attr(e, e->root, NULL, "to", xml_stanza_from(req));
    xml_node_set_attr(e, e->root, NULL, "from", xml_stanza_to(req));
    xml_stanza_make_error(e, cond, type, false);
    sm_route(sm, e);
    xml_stanza_unref(e);
}

/* ---- get ---- */

typedef struct get_ctx {
    sm_user_t *u;
    xml_stanza_t *st; /* the request */
} get_ctx_t;

static void on_got(void *arg, int status, const char *data, size_t len)
{
    get_ctx_t *c = arg;
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    u->busy--;
    xml_stanza_t *doc = status == 0 ? xml_stanza_parse(data, len) : NULL;
    if (status == 0 && (doc == NULL || !xml_node_is(doc->root, NS_PRIVATE, "query")))
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: a stored private document does not parse",
                 u->jid.full);
    if (status == 0 || status == -ENOENT) {
        /* Nothing kept: the element asked for comes back as it was asked, empty. */
        const xml_node_t *q = doc != NULL && xml_node_is(doc->root, NS_PRIVATE, "query")
            ? doc->root
            : xml_node_first_element(c->st->root);
        xml_stanza_t *r = sm_iq_result(c->st);
        xml_node_add_copy(r, r->root, q);
        sm_route(sm, r);
        xml_stanza_unref(r);
    } else {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot read private data: %s", u->jid.full,
                 strerror(-status));
        sm_reply_error(sm, c->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
    xml_stanza_unref(doc);
    xml_stanza_unref(c->st);
    core_free(c);
    sm_user_release(sm, u);
}

static void private_get(sm_t *sm, sm_pkt_t *pkt, const char *ns)
{
    /* §2.3: a get asks for one namespace. */
    for (const xml_node_t *n = xml_node_first_element(pkt->payload); n != NULL;
         n = xml_node_next_element(n)) {
        if (strcmp(n->ns, ns) != 0) {
            sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_BAD_REQUEST);
            return;
        }
    }
    sm_user_t *u = pkt->user;
    get_ctx_t *c = core_malloc(sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    u->busy++;
    if (storage_doc_get(sm->store, u->node, KIND_PRIVATE, ns, on_got, c) < 0) {
        u->busy--;
        xml_stanza_unref(c->st);
        core_free(c);
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
}

/* ---- set ---- */

typedef struct set_ctx {
    sm_user_t *u;
    xml_stanza_t *st; /* the request */
    const char **ns; /* the namespaces it sets (borrowed from st) */
    xml_stanza_t **docs; /* what to store for each */
    size_t n;
    size_t waiting; /* writes not yet answered */
    bool failed;
} set_ctx_t;

static void set_free(set_ctx_t *c)
{
    sm_user_t *u = c->u;
    for (size_t i = 0; i < c->n; i++)
        xml_stanza_unref(c->docs[i]);
    core_free(c->docs);
    core_free(c->ns);
    xml_stanza_unref(c->st);
    core_free(c);
    u->busy--;
    sm_user_release(u->sm, u);
}

static void on_put(void *arg, int status)
{
    set_ctx_t *c = arg;
    sm_t *sm = c->u->sm;
    if (status < 0) {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot store private data: %s", c->u->jid.full,
                 strerror(-status));
        c->failed = true;
    }
    if (--c->waiting > 0)
        return;
    if (c->failed) {
        sm_reply_error(sm, c->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    } else {
        xml_stanza_t *r = sm_iq_result(c->st);
        sm_route(sm, r);
        xml_stanza_unref(r);
    }
    set_free(c);
}

static void write_all(set_ctx_t *c)
{
    sm_t *sm = c->u->sm;
    c->waiting = 1; /* held while submitting, so no answer finishes early */
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        const char *bytes = xml_stanza_bytes(c->docs[i], &len);
        c->waiting++;
        if (storage_doc_put(sm->store, c->u->node, KIND_PRIVATE, c->ns[i], bytes, len, on_put, c) <
            0) {
            c->waiting--;
            c->failed = true;
        }
    }
    on_put(c, 0);
}

/* Writes only if the namespaces kept, with the new ones, stay within PRIVATE_KEYS_MAX. */
static void on_listed(void *arg, int status, const storage_list_t *keys)
{
    set_ctx_t *c = arg;
    sm_t *sm = c->u->sm;
    if (status < 0 && status != -ENOENT) {
        sm_reply_error(sm, c->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        set_free(c);
        return;
    }
    size_t total = status == 0 ? keys->count : 0;
    for (size_t i = 0; i < c->n; i++) {
        bool known = false;
        for (size_t k = 0; status == 0 && k < keys->count && !known; k++)
            known = strcmp(keys->items[k].data, c->ns[i]) == 0;
        total += known ? 0 : 1;
    }
    if (total > PRIVATE_KEYS_MAX) {
        refuse(sm, c->st, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
        set_free(c);
        return;
    }
    write_all(c);
}

/* The namespaces of the set and, for each, the document to keep; false if over a limit. */
static bool group(set_ctx_t *c, const xml_node_t *query)
{
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL;
         n = xml_node_next_element(n)) {
        size_t i = 0;
        while (i < c->n && strcmp(c->ns[i], n->ns) != 0)
            i++;
        if (i == c->n) {
            if (c->n == PRIVATE_KEYS_MAX)
                return false;
            c->ns = core_realloc(c->ns, (c->n + 1) * sizeof(*c->ns));
            c->docs = core_realloc(c->docs, (c->n + 1) * sizeof(*c->docs));
            c->ns[i] = n->ns;
            c->docs[i] = xml_stanza_new(NS_PRIVATE, "query");
            c->n++;
        }
        xml_node_add_copy(c->docs[i], c->docs[i]->root, n);
    }
    for (size_t i = 0; i < c->n; i++) {
        size_t len;
        xml_stanza_bytes(c->docs[i], &len);
        if (len > PRIVATE_DOC_MAX)
            return false;
    }
    return true;
}

static void private_set(sm_t *sm, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    set_ctx_t *c = core_calloc(1, sizeof(*c));
    c->u = u;
    c->st = xml_stanza_ref(pkt->st);
    u->busy++;
    if (!group(c, pkt->payload)) {
        /* Our limits: RFC 6120 §8.3.3.12, a local service policy. */
        refuse(sm, pkt->st, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
        set_free(c);
        return;
    }
    if (storage_doc_list(sm->store, u->node, KIND_PRIVATE, on_listed, c) < 0) {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        set_free(c);
    }
}

/* ---- the handler ---- */

static xml_handler_result_t on_private(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    /* To a full JID the resource answers (the core delivers it). */
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    /* §2.3, §4: only the user's own resources; Forbidden (type cancel, as the XEP shows). */
    if (!jid_bare_equal(&pkt->from, &pkt->user->jid)) {
        refuse(sm, pkt->st, CORE_STANZA_ERR_FORBIDDEN, "cancel");
        return XMLS_HANDLED;
    }
    /* §2.3: at least one child, each in its own namespace that is not reserved (else Not
     * Acceptable, also for a get without a child: what the XEP's example shows). */
    const xml_node_t *first = xml_node_first_element(pkt->payload);
    bool acceptable = first != NULL;
    for (const xml_node_t *n = first; n != NULL && acceptable; n = xml_node_next_element(n))
        acceptable = !reserved(n->ns) && strlen(n->ns) <= STORAGE_KEY_MAX;
    if (!acceptable) {
        refuse(sm, pkt->st, CORE_STANZA_ERR_NOT_ACCEPTABLE, "modify");
        return XMLS_HANDLED;
    }
    if (pkt->type == XMLS_TYPE_GET)
        private_get(sm, pkt, first->ns);
    else
        private_set(sm, pkt);
    return XMLS_HANDLED;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    /*
     * On TO_USER, where an iq without 'to' arrives after IN_SESS: a module before it on
     * IN_SESS may take some namespaces (XEP-0402 §5.3: bookmarks kept in PEP).
     */
    const xml_match_t m = {.kind = XMLS_KIND_IQ,
                           .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                           .payload_ns = NS_PRIVATE,
                           .payload_name = "query"};
    return sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_private, NULL);
}

/* The XEP defines no feature; servers list its namespace for an account, which serves it. */
static const char *const account_features[] = {NS_PRIVATE, NULL};

const sm_module_t sm_module_private = {
    .name = "private",
    .api = SM_MODULE_API,
    .account_features = account_features,
    .init = init,
};
