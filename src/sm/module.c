/* SPDX-License-Identifier: MIT */
/* Modules: the built-in list, switched off by config, their handler chains and features. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

static bool disabled(const sm_t *sm, const char *name)
{
    for (size_t i = 0; i < sm->cfg->disable.count; i++) {
        if (strcmp(sm->cfg->disable.items[i], name) == 0)
            return true;
    }
    return false;
}

static bool known(const char *name)
{
    for (size_t i = 0; i < sm_modules_builtin_count; i++) {
        if (strcmp(sm_modules_builtin[i]->name, name) == 0)
            return true;
    }
    return false;
}

int sm_modules_init(sm_t *sm)
{
    for (size_t i = 0; i < sm->cfg->disable.count; i++) {
        if (!known(sm->cfg->disable.items[i])) {
            core_log(sm->log, CORE_LOG_ERROR, 0, "[sm] disable: no module called '%s'",
                     sm->cfg->disable.items[i]);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < sm_modules_builtin_count; i++) {
        const sm_module_t *def = sm_modules_builtin[i];
        if (def->api != SM_MODULE_API) {
            core_log(sm->log, CORE_LOG_ERROR, 0, "module %s: interface %u, expected %u", def->name,
                     def->api, SM_MODULE_API);
            return -EINVAL;
        }
        if (disabled(sm, def->name))
            continue;
        if (sm->nmods == SM_MODULES_MAX)
            return -E2BIG;
        sm_mod_t *m = &sm->mods[sm->nmods];
        m->def = def;
        m->index = (unsigned)sm->nmods;
        sm->nmods++;
        if (def->user_kind != NULL) {
            size_t k = 0;
            while (sm->user_kinds[k] != NULL)
                k++;
            if (k == STORAGE_LOAD_KINDS_MAX)
                return -E2BIG;
            sm->user_kinds[k] = def->user_kind;
            sm->user_kind_mod[k] = m->index;
        }
        int rc = def->init != NULL ? def->init(sm, m) : 0;
        if (rc < 0) {
            core_log(sm->log, CORE_LOG_ERROR, 0, "module %s failed to start: %s", def->name,
                     strerror(-rc));
            sm->nmods--;
            return rc;
        }
    }
    return 0;
}

void sm_modules_fini(sm_t *sm)
{
    for (size_t i = sm->nmods; i-- > 0;) {
        if (sm->mods[i].def->fini != NULL)
            sm->mods[i].def->fini(sm, &sm->mods[i]);
    }
    sm->nmods = 0;
    memset(sm->user_kinds, 0, sizeof(sm->user_kinds));
    for (int c = 0; c < SM_CHAIN_COUNT; c++) {
        core_free(sm->handlers[c]);
        sm->handlers[c] = NULL;
        sm->nhandlers[c] = 0;
    }
}

static bool same_payload(const xml_match_t *a, const xml_match_t *b)
{
    return a->kind == b->kind && a->payload_ns != NULL && b->payload_ns != NULL &&
        strcmp(a->payload_ns, b->payload_ns) == 0 &&
        (a->payload_name == NULL || b->payload_name == NULL ||
         strcmp(a->payload_name, b->payload_name) == 0);
}

int sm_handler_add(sm_t *sm, sm_chain_t chain, const xml_match_t *m, sm_handler_fn fn, void *data)
{
    const unsigned getset = XMLS_TYPE_GET | XMLS_TYPE_SET;
    for (size_t i = 0; i < sm->nhandlers[chain]; i++) {
        const xml_match_t *o = &sm->handlers[chain][i].match;
        unsigned mt = m->types != 0 ? m->types : ~0u;
        unsigned ot = o->types != 0 ? o->types : ~0u;
        if (m->kind == XMLS_KIND_IQ && (mt & ot & getset) != 0 && same_payload(m, o))
            return -EEXIST;
    }
    sm_handler_t *h = core_realloc(sm->handlers[chain],
                                   (sm->nhandlers[chain] + 1) * sizeof(*sm->handlers[chain]));
    h[sm->nhandlers[chain]] = (sm_handler_t){.match = *m, .fn = fn, .data = data};
    sm->handlers[chain] = h;
    sm->nhandlers[chain]++;
    return 0;
}

/* Does a payload element match m? For iq only the first child counts (pkt->payload). */
static bool payload_matches(const sm_pkt_t *pkt, const xml_match_t *m)
{
    if (m->payload_ns == NULL)
        return true;
    if (pkt->kind == XMLS_KIND_IQ)
        return pkt->payload != NULL && xml_node_is(pkt->payload, m->payload_ns, m->payload_name);
    return xml_node_child(pkt->st->root, m->payload_ns, m->payload_name) != NULL;
}

xml_handler_result_t sm_chain_run(sm_t *sm, sm_chain_t chain, sm_pkt_t *pkt)
{
    for (size_t i = 0; i < sm->nhandlers[chain]; i++) {
        const sm_handler_t *h = &sm->handlers[chain][i];
        if (h->match.kind != pkt->kind || (h->match.types != 0 && !(h->match.types & pkt->type)))
            continue;
        if (!payload_matches(pkt, &h->match))
            continue;
        if (h->fn(sm, h->data, pkt) == XMLS_HANDLED)
            return XMLS_HANDLED;
    }
    return XMLS_PASS;
}

void sm_event_fire(sm_t *sm, sm_event_t ev, sm_sess_t *sess)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        if (sm->mods[i].def->on_event != NULL)
            sm->mods[i].def->on_event(sm, sm->mods[i].data, ev, sess);
    }
}

void sm_features_each(const sm_t *sm, bool account, void (*fn)(void *ud, const char *var), void *ud)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        const char *const *f =
            account ? sm->mods[i].def->account_features : sm->mods[i].def->features;
        for (; f != NULL && *f != NULL; f++)
            fn(ud, *f);
    }
}

void sm_identities_each(const sm_t *sm, bool account, void (*fn)(void *ud, const char *id),
                        void *ud)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        const char *const *f =
            account ? sm->mods[i].def->account_identities : sm->mods[i].def->identities;
        for (; f != NULL && *f != NULL; f++)
            fn(ud, *f);
    }
}

bool sm_disco_account_run(sm_t *sm, const sm_pkt_t *pkt, const char *node, bool items,
                          xml_stanza_t *r, xml_node_t *query)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        const sm_module_t *def = sm->mods[i].def;
        if (def->disco_account != NULL &&
            def->disco_account(sm, sm->mods[i].data, pkt, node, items, r, query) && node != NULL)
            return true;
    }
    return false;
}

void sm_delivered_fire(sm_t *sm, const sm_pkt_t *pkt, sm_sess_t *const *to, size_t n)
{
    for (size_t i = 0; i < sm->nmods && n > 0; i++) {
        if (sm->mods[i].def->on_delivered != NULL)
            sm->mods[i].def->on_delivered(sm, sm->mods[i].data, pkt, to, n);
    }
}

void sm_slots_free(sm_t *sm, sm_user_t *u, sm_sess_t *sess)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        if (sm->mods[i].def->free_slot != NULL)
            sm->mods[i].def->free_slot(sm, sm->mods[i].data, u, sess);
    }
}

void sm_user_loaded_fire(sm_t *sm, sm_user_t *u, const storage_docs_t *docs, size_t ndocs)
{
    for (size_t k = 0; k < ndocs && sm->user_kinds[k] != NULL; k++) {
        const sm_mod_t *m = &sm->mods[sm->user_kind_mod[k]];
        if (m->def->on_user_load != NULL)
            m->def->on_user_load(sm, m->data, u, &docs[k]);
    }
}

void sm_presence_fire(sm_t *sm, sm_sess_t *sess, const xml_stanza_t *st)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        if (sm->mods[i].def->on_presence != NULL)
            sm->mods[i].def->on_presence(sm, sm->mods[i].data, sess, st);
    }
}

typedef struct feature_ctx {
    xml_stanza_t *st;
    xml_node_t *query;
} feature_ctx_t;

static void add_feature(void *ud, const char *var)
{
    feature_ctx_t *f = ud;
    /* Two modules may share a feature (ping serves both chains): list it once. */
    for (xml_node_t *n = xml_node_first_element(f->query); n != NULL;
         n = xml_node_next_element(n)) {
        const char *v = xml_node_attr(n, "var");
        if (v != NULL && strcmp(v, var) == 0)
            return;
    }
    xml_node_t *n = xml_node_add_element(f->st, f->query, SM_NS_DISCO_INFO, "feature");
    xml_node_set_attr(f->st, n, NULL, "var", var);
}

/* A module's identity, "category/type". */
static void add_identity(void *ud, const char *cat_type)
{
    feature_ctx_t *f = ud;
    const char *slash = strchr(cat_type, '/');
    if (slash == NULL)
        return;
    char *cat = core_strndup(cat_type, (size_t)(slash - cat_type));
    xml_node_t *n = xml_node_add_element(f->st, f->query, SM_NS_DISCO_INFO, "identity");
    xml_node_set_attr(f->st, n, NULL, "category", cat);
    xml_node_set_attr(f->st, n, NULL, "type", slash + 1);
    core_free(cat);
}

void sm_info_fill(const sm_t *sm, bool account, xml_stanza_t *st, xml_node_t *query)
{
    xml_node_t *id = xml_node_add_element(st, query, SM_NS_DISCO_INFO, "identity");
    xml_node_set_attr(st, id, NULL, "category", account ? "account" : "server");
    xml_node_set_attr(st, id, NULL, "type", account ? "registered" : "im");
    if (!account)
        xml_node_set_attr(st, id, NULL, "name", "Parley");
    feature_ctx_t f = {.st = st, .query = query};
    sm_identities_each(sm, account, add_identity, &f);
    sm_features_each(sm, account, add_feature, &f);
}
