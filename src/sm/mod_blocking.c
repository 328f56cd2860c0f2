/* SPDX-License-Identifier: MIT */
/* XEP-0191: the user's blocklist, its commands and pushes, and the stanzas it stops. */
#include "sm/internal.h"

#include "core/alloc.h"
#include "sm/subscription.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/*
 * The list is stored as one document (kind "blocking", key "list": the prepared JIDs, one a
 * line, sorted). One document makes every change one atomic write: a block of several items
 * and an unblock-all are stored whole or not at all, the stored list is always one the user
 * saw, and a write that failed is repaired by the next one. A document per JID would need a
 * write per item (an unblock-all, hundreds) and JIDs as keys, which the files backend cannot
 * hold beyond a file name's length. The cost, rewriting the list on each change, is bounded
 * by BLOCKING_MAX. A prepared JID never holds a line break (stringprep prohibits controls).
 */
#define KIND_BLOCKING "blocking"
#define DOC_KEY "list"
/* Items per user; more is <policy-violation/> (XEP-0191 §3.3: other stanza errors apply). */
#define BLOCKING_MAX 1000

/* A user's blocklist (the user's slot; NULL: empty). */
typedef struct blocklist {
    char **jids; /* prepared JIDs, sorted bytewise, owned */
    size_t count;
} blocklist_t;

/* A session's slot holds this marker once it asked for the list: it gets the pushes (§3.3). */
static char wants_pushes;

/* strcmp of a NUL-terminated a against b[0..blen). */
static int cmp_n(const char *a, const char *b, size_t blen)
{
    int c = strncmp(a, b, blen);
    if (c != 0)
        return c;
    return a[blen] != '\0' ? 1 : 0;
}

/* Index of s[0..len) in the list, or where it would go (*found false). */
static size_t locate(const blocklist_t *bl, const char *s, size_t len, bool *found)
{
    size_t lo = 0, hi = bl != NULL ? bl->count : 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_n(bl->jids[mid], s, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static bool has(const blocklist_t *bl, const char *s, size_t len)
{
    bool found;
    locate(bl, s, len, &found);
    return found;
}

/*
 * §5 (XEP-0016's order): an item user@domain/resource matches only that resource;
 * user@domain any of its resources; domain/resource only that; domain the domain itself and
 * everything at it. All lead to the same action, so one hit is enough.
 */
static bool matches(const blocklist_t *bl, const jid_t *j)
{
    if (bl == NULL || bl->count == 0)
        return false;
    if (has(bl, j->full, j->full_len))
        return true;
    if (jid_has_resource(j) && has(bl, j->full, j->bare_len))
        return true;
    return (jid_has_node(j) || jid_has_resource(j)) && has(bl, jid_domain_ptr(j), j->domain_len);
}

/* Inserts s (copied) unless present; true if it was added. */
static bool list_add(blocklist_t *bl, const char *s)
{
    bool found;
    size_t i = locate(bl, s, strlen(s), &found);
    if (found)
        return false;
    bl->jids = core_realloc(bl->jids, (bl->count + 1) * sizeof(*bl->jids));
    memmove(&bl->jids[i + 1], &bl->jids[i], (bl->count - i) * sizeof(*bl->jids));
    bl->jids[i] = core_strdup(s);
    bl->count++;
    return true;
}

static bool list_remove(blocklist_t *bl, const char *s)
{
    bool found;
    size_t i = locate(bl, s, strlen(s), &found);
    if (!found)
        return false;
    core_free(bl->jids[i]);
    memmove(&bl->jids[i], &bl->jids[i + 1], (bl->count - i - 1) * sizeof(*bl->jids));
    bl->count--;
    return true;
}

static void list_clear(blocklist_t *bl)
{
    for (size_t i = 0; i < bl->count; i++)
        core_free(bl->jids[i]);
    core_free(bl->jids);
    bl->jids = NULL;
    bl->count = 0;
}

static blocklist_t *list_of(const sm_mod_t *mod, sm_user_t *u)
{
    return u->slots[mod->index];
}

static blocklist_t *list_get(const sm_mod_t *mod, sm_user_t *u)
{
    if (u->slots[mod->index] == NULL)
        u->slots[mod->index] = core_calloc(1, sizeof(blocklist_t));
    return u->slots[mod->index];
}

/*
 * Never blocked: the user's own resources (§4: one resource never blocks another) and the
 * user's own server, which answers the user's requests and would otherwise cut the account
 * off from it.
 */
static bool exempt(const sm_t *sm, const sm_user_t *u, const jid_t *j)
{
    if (jid_bare_equal(j, &u->jid))
        return true;
    return !jid_has_node(j) && !jid_has_resource(j) && sm_is_local(sm, j);
}

/* ---- storage ---- */

static void on_user_load(sm_t *sm, void *data, sm_user_t *u, const storage_docs_t *docs)
{
    const sm_mod_t *mod = data;
    for (size_t i = 0; i < docs->keys.count; i++) {
        if (strcmp(docs->keys.items[i].data, DOC_KEY) != 0)
            continue;
        const char *p = docs->values.items[i].data;
        const char *end = p + docs->values.items[i].len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
            jid_t j;
            if (len > 0 && jid_parse(sm->jids, p, len, &j) == 0) {
                list_add(list_get(mod, u), j.full);
                jid_clear(&j);
            } else if (len > 0) {
                core_log(sm->log, CORE_LOG_WARN, 0, "%s: a stored blocklist item is not a JID",
                         u->jid.full);
            }
            p += len + 1;
        }
    }
}

typedef struct save_ctx {
    sm_user_t *u;
    const sm_mod_t *mod;
    xml_stanza_t *push; /* <iq type='set'> with the change, addressed per session */
} save_ctx_t;

/* §3.3, §3.4, §3.5: the change goes to every resource that asked for the blocklist. */
static void push(sm_t *sm, const sm_mod_t *mod, sm_user_t *u, xml_stanza_t *tmpl)
{
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (s->slots[mod->index] != &wants_pushes || !s->started)
            continue;
        char id[32];
        snprintf(id, sizeof id, "block%llu", (unsigned long long)++sm->next_id);
        xml_stanza_t *iq = xml_stanza_copy(tmpl);
        xml_node_set_attr(iq, iq->root, NULL, "id", id);
        xml_node_set_attr(iq, iq->root, NULL, "to", s->jid.full);
        sm_sess_send(sm, s, iq);
        xml_stanza_unref(iq);
    }
}

static void on_saved(void *arg, int status)
{
    save_ctx_t *c = arg;
    sm_user_t *u = c->u;
    sm_t *sm = u->sm;
    u->busy--;
    if (status == 0 || status == -ENOENT)
        push(sm, c->mod, u, c->push);
    else
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: blocklist write failed: %s", u->jid.full,
                 strerror(-status));
    xml_stanza_unref(c->push);
    core_free(c);
    sm_user_release(sm, u);
}

/* Writes the whole list; the push (taken) goes out once it is stored, as roster pushes do. */
static void save(sm_t *sm, const sm_mod_t *mod, sm_user_t *u, xml_stanza_t *push_iq)
{
    const blocklist_t *bl = list_of(mod, u);
    save_ctx_t *c = core_malloc(sizeof(*c));
    *c = (save_ctx_t){.u = u, .mod = mod, .push = push_iq};
    u->busy++;
    int rc;
    if (bl == NULL || bl->count == 0) {
        rc = storage_doc_delete(sm->store, u->node, KIND_BLOCKING, DOC_KEY, on_saved, c);
    } else {
        core_buf_t b = {0};
        for (size_t i = 0; i < bl->count; i++) {
            core_buf_append_str(&b, bl->jids[i]);
            core_buf_append(&b, "\n", 1);
        }
        rc =
            storage_doc_put(sm->store, u->node, KIND_BLOCKING, DOC_KEY, b.data, b.len, on_saved, c);
        core_buf_release(&b);
    }
    if (rc < 0) {
        u->busy--;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot store the blocklist: %s", u->jid.full,
                 strerror(-rc));
        xml_stanza_unref(c->push);
        core_free(c);
    }
}

/* ---- presence on block and unblock (§3.3, §3.4) ---- */

/* Unavailable, or the session's current presence, from s to `to`, through the FROM_USER
 * chain (so the list in force decides). */
static void send_presence(sm_t *sm, const sm_sess_t *s, const char *to, bool avail)
{
    xml_stanza_t *p;
    if (avail) {
        p = xml_stanza_copy(s->presence);
    } else {
        p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
        xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
    }
    xml_node_set_attr(p, p->root, NULL, "from", s->jid.full);
    xml_node_set_attr(p, p->root, NULL, "to", to);
    sm_route(sm, p);
    xml_stanza_unref(p);
}

static bool str_matches(sm_t *sm, const blocklist_t *bl, const char *s)
{
    jid_t j;
    if (jid_parse(sm->jids, s, strlen(s), &j) < 0)
        return false;
    bool m = matches(bl, &j);
    jid_clear(&j);
    return m;
}

/*
 * §3.3: newly blocked contacts that may see the user's presence (a subscription from the
 * user, RFC 6121 §4.2.2, or directed presence, §4.6) get unavailable from each available
 * resource. Called before the items join the list, which would stop these too.
 */
static void cut_presence(sm_t *sm, sm_user_t *u, const blocklist_t *added)
{
    for (size_t i = 0; i < u->roster.count; i++) {
        const storage_roster_item_t *it = &u->roster.items[i];
        if (!sm_sub_has_from(it->subscription) || !str_matches(sm, added, it->jid))
            continue;
        for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
            if (s->available)
                send_presence(sm, s, it->jid, false);
        }
    }
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        for (size_t i = 0; i < s->ndirected; i++) {
            if (str_matches(sm, added, s->directed[i]))
                send_presence(sm, s, s->directed[i], false);
        }
    }
    /*
     * A subscription request from a contact now blocked is forgotten: it would otherwise be
     * presented again at the next login (RFC 6121 §3.1.3), from someone the user refuses.
     */
    for (size_t i = u->npending_in; i-- > 0;) {
        if (str_matches(sm, added, u->pending_in[i])) {
            char *jid = core_strdup(u->pending_in[i]); /* clearing frees the list's copy */
            sm_user_clear_pending_in(sm, u, jid);
            core_free(jid);
        }
    }
}

/*
 * §3.4: unblocked contacts that may see the user's presence get the current presence of each
 * available resource. One still blocked by another item gets nothing: FROM_USER stops it.
 */
static void restore_presence(sm_t *sm, sm_user_t *u, const blocklist_t *removed)
{
    for (size_t i = 0; i < u->roster.count; i++) {
        const storage_roster_item_t *it = &u->roster.items[i];
        if (!sm_sub_has_from(it->subscription) || !str_matches(sm, removed, it->jid))
            continue;
        for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
            if (s->available && s->presence != NULL)
                send_presence(sm, s, it->jid, true);
        }
    }
}

/* ---- the commands (§3.2 - §3.5) ---- */

/* The <item jid=.../> of a block or unblock command, prepared, into out (sorted, unique). */
static bool read_items(sm_t *sm, const xml_node_t *cmd, blocklist_t *out, core_stanza_err_t *err)
{
    for (const xml_node_t *n = xml_node_first_element(cmd); n != NULL;
         n = xml_node_next_element(n)) {
        if (!xml_node_is(n, NS_BLOCKING, "item"))
            continue;
        const char *s = xml_node_attr(n, "jid");
        jid_t j;
        if (s == NULL) {
            *err = CORE_STANZA_ERR_BAD_REQUEST;
            return false;
        }
        if (jid_parse(sm->jids, s, strlen(s), &j) < 0) {
            *err = CORE_STANZA_ERR_JID_MALFORMED;
            return false;
        }
        list_add(out, j.full);
        jid_clear(&j);
        if (out->count > BLOCKING_MAX) {
            *err = CORE_STANZA_ERR_POLICY_VIOLATION;
            return false;
        }
    }
    return true;
}

/* <iq type='set'><NAME xmlns='urn:xmpp:blocking'><item jid=.../>...</NAME></iq>. */
static xml_stanza_t *push_new(const char *name, const blocklist_t *items)
{
    xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(iq, iq->root, NULL, "type", "set");
    xml_node_t *cmd = xml_node_add_element(iq, iq->root, NS_BLOCKING, name);
    for (size_t i = 0; i < items->count; i++) {
        xml_node_t *it = xml_node_add_element(iq, cmd, NS_BLOCKING, "item");
        xml_node_set_attr(iq, it, NULL, "jid", items->jids[i]);
    }
    return iq;
}

static void answer(sm_t *sm, sm_pkt_t *pkt)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* §3.2: the list; the session gets pushes from now on. */
static void cmd_get(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    const blocklist_t *bl = list_of(mod, pkt->user);
    pkt->sess->slots[mod->index] = &wants_pushes;
    xml_stanza_t *r = sm_iq_result(pkt->st);
    xml_node_t *q = xml_node_add_element(r, r->root, NS_BLOCKING, "blocklist");
    for (size_t i = 0; bl != NULL && i < bl->count; i++) {
        xml_node_t *it = xml_node_add_element(r, q, NS_BLOCKING, "item");
        xml_node_set_attr(r, it, NULL, "jid", bl->jids[i]);
    }
    sm_route(sm, r);
    xml_stanza_unref(r);
}

/* §3.3: at least one item (else bad-request); all of them or none. */
static void cmd_block(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    blocklist_t items = {0}, added = {0};
    core_stanza_err_t err = CORE_STANZA_ERR_BAD_REQUEST;
    if (!read_items(sm, pkt->payload, &items, &err) || items.count == 0) {
        sm_reply_error(sm, pkt->st, err);
        goto out;
    }
    const blocklist_t *bl = list_of(mod, u);
    for (size_t i = 0; i < items.count; i++) {
        if (!has(bl, items.jids[i], strlen(items.jids[i])))
            list_add(&added, items.jids[i]);
    }
    if ((bl != NULL ? bl->count : 0) + added.count > BLOCKING_MAX) {
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_POLICY_VIOLATION);
        goto out;
    }
    cut_presence(sm, u, &added);
    blocklist_t *mine = list_get(mod, u);
    for (size_t i = 0; i < added.count; i++)
        list_add(mine, added.jids[i]);
    answer(sm, pkt);
    save(sm, mod, u, push_new("block", &items));
out:
    list_clear(&items);
    list_clear(&added);
}

/* §3.4, §3.5: the items named, or with none the whole list. */
static void cmd_unblock(sm_t *sm, const sm_mod_t *mod, sm_pkt_t *pkt)
{
    sm_user_t *u = pkt->user;
    blocklist_t items = {0}, removed = {0};
    core_stanza_err_t err = CORE_STANZA_ERR_BAD_REQUEST;
    if (!read_items(sm, pkt->payload, &items, &err)) {
        sm_reply_error(sm, pkt->st, err);
        goto out;
    }
    blocklist_t *bl = list_get(mod, u);
    if (items.count == 0) {
        removed = *bl;
        *bl = (blocklist_t){0};
    } else {
        for (size_t i = 0; i < items.count; i++) {
            if (list_remove(bl, items.jids[i]))
                list_add(&removed, items.jids[i]);
        }
    }
    answer(sm, pkt);
    restore_presence(sm, u, &removed);
    save(sm, mod, u, push_new("unblock", &items));
out:
    list_clear(&items);
    list_clear(&removed);
}

/* The user's own sessions only: no 'to' (§3), or the user's bare JID, which means the same. */
static xml_handler_result_t on_command(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const sm_mod_t *mod = data;
    if (pkt->to.full != NULL &&
        (jid_has_resource(&pkt->to) || !jid_bare_equal(&pkt->to, &pkt->user->jid)))
        return XMLS_PASS;
    const char *name = pkt->payload->name;
    bool get = pkt->type == XMLS_TYPE_GET;
    if (get && strcmp(name, "blocklist") == 0)
        cmd_get(sm, mod, pkt);
    else if (!get && strcmp(name, "block") == 0)
        cmd_block(sm, mod, pkt);
    else if (!get && strcmp(name, "unblock") == 0)
        cmd_unblock(sm, mod, pkt);
    else
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_BAD_REQUEST);
    return XMLS_HANDLED;
}

/* ---- the stanzas the list stops ---- */

/*
 * §3.3: an outbound stanza to a blocked JID is not routed; its sender gets <not-acceptable/>
 * with <blocked xmlns='urn:xmpp:blocking:errors'/> (type 'cancel', as the XEP's example).
 * Handed to the session directly: routed, it would come from the blocked JID and be stopped.
 */
static void refuse(sm_t *sm, const sm_pkt_t *pkt)
{
    if (pkt->sess == NULL || pkt->type == XMLS_TYPE_ERROR)
        return;
    xml_stanza_t *e = xml_stanza_copy(pkt->st);
    xml_node_set_attr(e, e->root, NULL, "to", xml_stanza_from(pkt->st));
    xml_node_set_attr(e, e->root, NULL, "from", xml_stanza_to(pkt->st));
    xml_node_t *err = xml_stanza_make_error(e, CORE_STANZA_ERR_NOT_ACCEPTABLE, "cancel", false);
    xml_node_add_element(e, err, NS_BLOCKING_ERRORS, "blocked");
    sm_sess_send(sm, pkt->sess, e);
    xml_stanza_unref(e);
}

static bool blocked_to(sm_t *sm, const sm_mod_t *mod, const sm_pkt_t *pkt)
{
    return pkt->to.full != NULL && !exempt(sm, pkt->user, &pkt->to) &&
        matches(list_of(mod, pkt->user), &pkt->to);
}

/* What a session sends: stopped before the archive and carbons see it. */
static xml_handler_result_t on_outbound(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (!blocked_to(sm, data, pkt))
        return XMLS_PASS;
    core_log(sm->log, CORE_LOG_DEBUG, 0, "%s: <%s/> to blocked %s refused", pkt->from.full,
             pkt->st->root->name, pkt->to.full);
    refuse(sm, pkt);
    return XMLS_HANDLED;
}

/*
 * What the sm sends in the user's name (presence broadcasts, probes, probe answers):
 * dropped. Errors pass: they are the server's answers to what the blocked entity sent, the
 * service-unavailable of §3.3.
 */
static xml_handler_result_t on_from_user(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (pkt->type == XMLS_TYPE_ERROR || !blocked_to(sm, data, pkt))
        return XMLS_PASS;
    refuse(sm, pkt);
    return XMLS_HANDLED;
}

/*
 * §3.3, inbound from a blocked JID (for an offline user too: the list is loaded with the
 * user): presence dropped without an answer; messages answered service-unavailable; IQ get
 * and set answered service-unavailable, other IQs dropped. First in the chain, so neither
 * the archive nor offline storage sees them.
 */
static xml_handler_result_t on_inbound(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    const sm_mod_t *mod = data;
    if (exempt(sm, pkt->user, &pkt->from) || !matches(list_of(mod, pkt->user), &pkt->from))
        return XMLS_PASS;
    core_log(sm->log, CORE_LOG_DEBUG, 0, "%s: <%s/> from blocked %s stopped", pkt->user->jid.full,
             pkt->st->root->name, pkt->from.full);
    if (pkt->kind == XMLS_KIND_MESSAGE ||
        (pkt->kind == XMLS_KIND_IQ && (pkt->type & (XMLS_TYPE_GET | XMLS_TYPE_SET))))
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    return XMLS_HANDLED;
}

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    const sm_mod_t *mod = data;
    if (sess != NULL) {
        sess->slots[mod->index] = NULL; /* only a marker */
        return;
    }
    blocklist_t *bl = u->slots[mod->index];
    if (bl != NULL) {
        list_clear(bl);
        core_free(bl);
        u->slots[mod->index] = NULL;
    }
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    mod->data = mod;
    const xml_match_t cmd = {
        .kind = XMLS_KIND_IQ, .types = XMLS_TYPE_GET | XMLS_TYPE_SET, .payload_ns = NS_BLOCKING};
    int rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &cmd, on_command, mod);
    const xml_stanza_kind_t kinds[] = {XMLS_KIND_MESSAGE, XMLS_KIND_PRESENCE, XMLS_KIND_IQ};
    for (size_t i = 0; rc == 0 && i < sizeof kinds / sizeof kinds[0]; i++) {
        const xml_match_t m = {.kind = kinds[i]};
        rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &m, on_outbound, mod);
        if (rc == 0)
            rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_inbound, mod);
        if (rc == 0)
            rc = sm_handler_add(sm, SM_CHAIN_FROM_USER, &m, on_from_user, mod);
    }
    return rc;
}

/* §2: the server announces it (the user's server handles the commands). */
static const char *const features[] = {NS_BLOCKING, NULL};

const sm_module_t sm_module_blocking = {
    .name = "blocking",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
    .user_kind = KIND_BLOCKING,
    .on_user_load = on_user_load,
    .free_slot = free_slot,
};
