/* SPDX-License-Identifier: MIT */
/* XEP-0163: every account is a pubsub service (the pubsub engine), with presence-based delivery. */
#include "sm/internal.h"

#include "core/alloc.h"
#include "sm/pep.h"
#include "sm/subscription.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/*
 * Storage: one document of kind "pep" per node, keyed by the node id, holding the node's
 * configuration, affiliations, subscriptions and (with persist_items) its items, as
 * pubsub_node_encode writes them. A node's parts change together (a publish adds an item and
 * evicts the oldest; a purge empties it), so one document per node makes each change one
 * atomic write and never leaves a half-changed node behind. The documents are read with the
 * user (user_kind), so that disco, access checks and last items never wait for the disk; the
 * limits below bound what that read can cost.
 */
#define KIND_PEP "pep"

/* What one account may keep (XEP-0060 §7.1.3.4 and §7.1.2.4 let a service bound these). */
#define PEP_NODES_MAX 128
#define PEP_ITEMS_MAX 1000 /* what pubsub#max_items 'max' means */
#define PEP_ITEM_BYTES_MAX (128u * 1024u) /* one payload (an avatar's data fits) */
#define PEP_NODE_BYTES_MAX (1024u * 1024u)
#define PEP_TOTAL_BYTES_MAX (4u * 1024u * 1024u)
#define PEP_SUBS_MAX 256 /* explicit subscriptions and affiliations per node */
#define PEP_NODE_ID_MAX 256
/* Contacts' resources whose available presence reached the account, remembered for
 * notifications (XEP-0163 §4.3); beyond it a resource gets no notifications. */
#define PEP_CONTACTS_MAX 4096

/* A contact's resource whose presence the account has (XEP-0163 §4.3.1). */
typedef struct pep_contact {
    jid_t jid;
    bool primed; /* its last items were sent since its initial presence (§4.3.4) */
} pep_contact_t;

/* A notification to send once the request's answer is out. */
typedef struct pep_held {
    xml_stanza_t *tmpl; /* the message without 'to' (a reference) */
    char *to;
} pep_held_t;

typedef struct pep_user {
    struct pep_mod *pm;
    sm_user_t *u;
    pubsub_service_t *svc;
    pep_contact_t *contacts;
    size_t ncontacts;
    char **dirty; /* node ids to write */
    size_t ndirty;
    struct pep_held *held; /* notifications held until the IQ result is out */
    size_t nheld;
    unsigned holding;
} pep_user_t;

/* The users that remember a contact's resource, for its caps becoming known. */
typedef struct pep_watch {
    sm_user_t **users;
    size_t n;
} pep_watch_t;

typedef struct pep_default {
    const char *node;
    pubsub_config_t cfg;
} pep_default_t;

typedef struct pep_mod {
    sm_t *sm;
    sm_mod_t *mod;
    core_map_t watchers; /* full JID -> pep_watch_t */
    pep_default_t *defaults;
    size_t ndefaults;
} pep_mod_t;

/* A session's slot is this module's pep_mod_t once its last items were sent (XEP-0163
 * §4.3.4), else NULL. */

extern const sm_module_t sm_module_pep;

static pep_mod_t *pep_mod(const sm_t *sm)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        if (sm->mods[i].def == &sm_module_pep)
            return sm->mods[i].data;
    }
    return NULL;
}

static char *bare_of(const jid_t *j)
{
    return core_strndup(j->full, j->bare_len);
}

/* "NODE+notify": the XEP-0163 §4.3.2 filter a client's caps carry. */
static bool wants(sm_t *sm, const char *full, const pubsub_node_t *node)
{
    size_t n = strlen(node->id);
    char stack[PEP_NODE_ID_MAX + 16];
    char *f = n + 8 <= sizeof stack ? stack : core_malloc(n + 8);
    memcpy(f, node->id, n);
    memcpy(f + n, "+notify", 8);
    bool yes = sm_caps_has_feature(sm, full, f);
    if (f != stack)
        core_free(f);
    return yes;
}

/* ---- sending notifications ---- */

/* Hands a notification (with its 'to') to its recipient: an own session, or routed. */
static void deliver(pep_user_t *pu, xml_stanza_t *m)
{
    sm_t *sm = pu->pm->sm;
    const char *to = xml_stanza_to(m);
    size_t bl = pu->u->jid.bare_len;
    if (strncmp(to, pu->u->jid.full, bl) == 0 && to[bl] == '/') {
        sm_sess_t *s = sm_session_by_resource(pu->u, to);
        if (s != NULL && s->started)
            sm_sess_send(sm, s, m);
        return;
    }
    sm_route(sm, m);
}

/* XEP-0163 §4.3.1: the message carrying an event, from the account's bare JID; each
 * recipient gets it readdressed, with its own 'to' and id. */
static xml_stanza_t *message_of(pep_user_t *pu, const pubsub_node_t *node, const xml_node_t *event)
{
    char *bare = bare_of(&pu->u->jid);
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(m, m->root, NULL, "from", bare);
    xml_node_set_attr(m, m->root, NULL, "type",
                      node->cfg.notification_normal ? "normal" : "headline");
    xml_node_add_copy(m, m->root, event);
    core_free(bare);
    return m;
}

/* XEP-0060 §6.1.7: a last item sent later is stamped (XEP-0203) with when it was published. */
static void stamp_last(sm_t *sm, xml_stanza_t *tmpl, const pubsub_item_t *it)
{
    if (it == NULL || it->published_ms <= 0)
        return;
    time_t secs = (time_t)(it->published_ms / 1000);
    struct tm tm;
    char stamp[48];
    gmtime_r(&secs, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03dZ", (int)(it->published_ms % 1000));
    sm_delay_add(sm, tmpl, stamp, NULL);
}

static void send_to(pep_user_t *pu, xml_stanza_t *tmpl, const char *to)
{
    char id[40];
    snprintf(id, sizeof id, "pep%" PRIu64, ++pu->pm->sm->next_id);
    /* Shared, not copied: the event is serialised once for every recipient (tmpl is read-only
     * from here on). */
    xml_stanza_t *m = xml_stanza_readdress_id(tmpl, xml_stanza_from(tmpl), to, id);
    deliver(pu, m);
    xml_stanza_unref(m);
}

/* Sends tmpl to `to`, or notes it for flush: held notifications are built one at a time then,
 * so a fan-out never holds a copy per recipient. */
static void emit(pep_user_t *pu, xml_stanza_t *tmpl, const char *to)
{
    if (pu->holding == 0) {
        send_to(pu, tmpl, to);
        return;
    }
    pu->held = core_realloc(pu->held, (pu->nheld + 1) * sizeof(*pu->held));
    pu->held[pu->nheld++] = (pep_held_t){.tmpl = xml_stanza_ref(tmpl), .to = core_strdup(to)};
}

static bool has_bare(char **list, size_t n, const jid_t *j)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(list[i]) == j->bare_len && memcmp(list[i], j->full, j->bare_len) == 0)
            return true;
    }
    return false;
}

/* Explicit subscribers (XEP-0060 §6.1) that presence did not already serve. */
static void notify_subscribers(pep_user_t *pu, const pubsub_node_t *node, xml_stanza_t *tmpl,
                               char **served, size_t nserved)
{
    for (size_t i = 0; i < node->nsubs; i++) {
        jid_t j;
        const char *s = node->subs[i].jid;
        if (jid_parse(pu->pm->sm->jids, s, strlen(s), &j) < 0)
            continue;
        if (!jid_bare_equal(&j, &pu->u->jid) && !has_bare(served, nserved, &j) &&
            pubsub_node_may_see(pu->svc, node, &j, NULL))
            emit(pu, tmpl, j.full);
        jid_clear(&j);
    }
}

/*
 * XEP-0163 §4.3: the account's available resources and the contacts' resources that may see
 * the node, each only if its caps ask for NODE+notify (§4.3.2); then explicit subscribers.
 */
static void on_notify(void *ud, const pubsub_node_t *node, const pubsub_event_t *ev)
{
    pep_user_t *pu = ud;
    sm_t *sm = pu->pm->sm;
    xml_stanza_t *tmpl = message_of(pu, node, ev->event);
    if (ev->only_to != NULL) {
        /* The last item for a new subscriber (the only event for one JID). */
        stamp_last(sm, tmpl, ev->item_id != NULL ? pubsub_item_find(node, ev->item_id) : NULL);
        emit(pu, tmpl, ev->only_to);
        xml_stanza_unref(tmpl);
        return;
    }
    for (sm_sess_t *s = pu->u->sessions; s != NULL; s = s->next) {
        if (s->available && wants(sm, s->jid.full, node))
            emit(pu, tmpl, s->jid.full);
    }
    char **served = NULL;
    size_t nserved = 0;
    for (size_t i = 0; i < pu->ncontacts; i++) {
        const jid_t *j = &pu->contacts[i].jid;
        if (!pubsub_node_may_see(pu->svc, node, j, NULL) || !wants(sm, j->full, node))
            continue;
        emit(pu, tmpl, j->full);
        if (!has_bare(served, nserved, j)) {
            served = core_realloc(served, (nserved + 1) * sizeof(*served));
            served[nserved++] = bare_of(j);
        }
    }
    notify_subscribers(pu, node, tmpl, served, nserved);
    for (size_t i = 0; i < nserved; i++)
        core_free(served[i]);
    core_free(served);
    xml_stanza_unref(tmpl);
}

/* XEP-0163 §4.3.4: the last item of every node to resource `to` that it wants and may see. */
static void send_last(pep_user_t *pu, const jid_t *to)
{
    if (pu->svc == NULL)
        return;
    size_t n;
    pubsub_node_t *const *nodes = pubsub_service_nodes(pu->svc, &n);
    for (size_t i = 0; i < n; i++) {
        if (!pubsub_node_may_see(pu->svc, nodes[i], to, NULL) ||
            !wants(pu->pm->sm, to->full, nodes[i]))
            continue;
        xml_stanza_t *ev = pubsub_node_last_event(nodes[i], true);
        if (ev == NULL)
            continue;
        xml_stanza_t *tmpl = message_of(pu, nodes[i], ev->root);
        stamp_last(pu->pm->sm, tmpl, &nodes[i]->items[nodes[i]->nitems - 1]);
        emit(pu, tmpl, to->full);
        xml_stanza_unref(tmpl);
        xml_stanza_unref(ev);
    }
}

/* ---- storage ---- */

typedef struct write_ctx {
    sm_user_t *u;
    char *node;
} write_ctx_t;

static void on_written(void *arg, int status)
{
    write_ctx_t *w = arg;
    sm_user_t *u = w->u;
    u->busy--;
    if (status < 0 && status != -ENOENT)
        core_log(u->sm->log, CORE_LOG_WARN, 0, "%s: PEP node %s not written: %s", u->jid.full,
                 w->node, strerror(-status));
    core_free(w->node);
    core_free(w);
    sm_user_release(u->sm, u);
}

/* Writes node id's document (or deletes it: node NULL). */
static void write_node(pep_user_t *pu, const char *id, const pubsub_node_t *node)
{
    sm_t *sm = pu->pm->sm;
    write_ctx_t *w = core_malloc(sizeof(*w));
    w->u = pu->u;
    w->node = core_strdup(id);
    pu->u->busy++;
    int rc;
    if (node != NULL) {
        core_buf_t b = {0};
        pubsub_node_encode(node, &b);
        rc = storage_doc_put(sm->store, pu->u->node, KIND_PEP, id, b.data, b.len, on_written, w);
        core_buf_release(&b);
    } else {
        rc = storage_doc_delete(sm->store, pu->u->node, KIND_PEP, id, on_written, w);
    }
    if (rc < 0) {
        pu->u->busy--;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: PEP node %s not written: %s", pu->u->jid.full, id,
                 strerror(-rc));
        core_free(w->node);
        core_free(w);
    }
}

static void dirty_drop(pep_user_t *pu, const char *id)
{
    for (size_t i = 0; i < pu->ndirty; i++) {
        if (strcmp(pu->dirty[i], id) == 0) {
            core_free(pu->dirty[i]);
            pu->dirty[i] = pu->dirty[--pu->ndirty];
            return;
        }
    }
}

/* Changes are written once per request, however many the engine reported. */
static void on_save(void *ud, const pubsub_node_t *node)
{
    pep_user_t *pu = ud;
    for (size_t i = 0; i < pu->ndirty; i++) {
        if (strcmp(pu->dirty[i], node->id) == 0)
            return;
    }
    pu->dirty = core_realloc(pu->dirty, (pu->ndirty + 1) * sizeof(*pu->dirty));
    pu->dirty[pu->ndirty++] = core_strdup(node->id);
}

static void on_remove(void *ud, const pubsub_node_t *node)
{
    pep_user_t *pu = ud;
    dirty_drop(pu, node->id);
    write_node(pu, node->id, NULL);
}

/* Writes what changed, then sends what was held. */
static void flush(pep_user_t *pu)
{
    for (size_t i = 0; i < pu->ndirty; i++) {
        const pubsub_node_t *node = pubsub_node_find(pu->svc, pu->dirty[i]);
        if (node != NULL)
            write_node(pu, node->id, node);
        core_free(pu->dirty[i]);
    }
    pu->ndirty = 0;
    pep_held_t *held = pu->held;
    size_t n = pu->nheld;
    pu->held = NULL;
    pu->nheld = 0;
    for (size_t i = 0; i < n; i++) {
        send_to(pu, held[i].tmpl, held[i].to);
        xml_stanza_unref(held[i].tmpl);
        core_free(held[i].to);
    }
    core_free(held);
}

/* ---- the engine's questions ---- */

static bool is_owner(void *ud, const jid_t *jid)
{
    pep_user_t *pu = ud;
    return jid_bare_equal(jid, &pu->u->jid);
}

/* XEP-0163 §3: one publisher per node, the account; node ids must fit a storage key. */
static bool may_create(void *ud, const jid_t *jid, const char *node)
{
    return is_owner(ud, jid) && strlen(node) <= PEP_NODE_ID_MAX;
}

/* XEP-0060 §4.5: presence (a subscription from the owner) and roster (also in a group). */
static bool may_access(void *ud, const pubsub_node_t *node, const jid_t *jid)
{
    pep_user_t *pu = ud;
    char *bare = bare_of(jid);
    const storage_roster_item_t *it = sm_roster_find(pu->u, bare);
    core_free(bare);
    if (it == NULL ||
        (it->subscription != STORAGE_SUB_FROM && it->subscription != STORAGE_SUB_BOTH))
        return false;
    if (node->cfg.access_model != PUBSUB_ACCESS_ROSTER)
        return true;
    for (size_t g = 0; g < it->group_count; g++) {
        for (size_t k = 0; k < node->cfg.ngroups; k++) {
            if (strcmp(it->groups[g], node->cfg.groups[k]) == 0)
                return true;
        }
    }
    return false;
}

static void node_defaults(void *ud, const char *node, pubsub_config_t *cfg)
{
    pep_user_t *pu = ud;
    for (size_t i = 0; i < pu->pm->ndefaults; i++) {
        if (strcmp(pu->pm->defaults[i].node, node) == 0) {
            pubsub_config_clear(cfg);
            pubsub_config_copy(cfg, &pu->pm->defaults[i].cfg);
            return;
        }
    }
}

static const pubsub_ops_t engine_ops = {
    .is_owner = is_owner,
    .may_create = may_create,
    .may_access = may_access,
    .node_defaults = node_defaults,
    .node_save = on_save,
    .node_remove = on_remove,
    .notify = on_notify,
};

static const pubsub_limits_t limits = {
    .max_nodes = PEP_NODES_MAX,
    .max_items = PEP_ITEMS_MAX,
    .max_item_bytes = PEP_ITEM_BYTES_MAX,
    .max_node_bytes = PEP_NODE_BYTES_MAX,
    .max_total_bytes = PEP_TOTAL_BYTES_MAX,
    .max_subs = PEP_SUBS_MAX,
};

/* The user's PEP state, made on first use. */
static pep_user_t *pep_user(pep_mod_t *pm, sm_user_t *u)
{
    pep_user_t *pu = u->slots[pm->mod->index];
    if (pu != NULL)
        return pu;
    pu = core_calloc(1, sizeof(*pu));
    pu->pm = pm;
    pu->u = u;
    pubsub_config_t d;
    pubsub_config_pep_defaults(&d);
    pu->svc = pubsub_service_new(&limits, &d, &engine_ops, pu);
    pubsub_config_clear(&d);
    u->slots[pm->mod->index] = pu;
    return pu;
}

static void on_user_load(sm_t *sm, void *data, sm_user_t *u, const storage_docs_t *docs)
{
    if (docs->keys.count == 0)
        return;
    pep_user_t *pu = pep_user(data, u);
    for (size_t i = 0; i < docs->values.count; i++) {
        int rc =
            pubsub_node_load(pu->svc, docs->values.items[i].data, docs->values.items[i].len, NULL);
        if (rc < 0)
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: PEP node %s not loaded: %s", u->jid.full,
                     docs->keys.items[i].data, strerror(-rc));
    }
}

/* ---- contacts' presence (XEP-0163 §4.3) ---- */

static pep_watch_t *watch_get(pep_mod_t *pm, const jid_t *j)
{
    return core_map_get(&pm->watchers, j->full, j->full_len);
}

static void watch_add(pep_mod_t *pm, const jid_t *j, sm_user_t *u)
{
    pep_watch_t *w = watch_get(pm, j);
    if (w == NULL) {
        w = core_calloc(1, sizeof(*w));
        core_map_put(&pm->watchers, j->full, j->full_len, w);
    }
    w->users = core_realloc(w->users, (w->n + 1) * sizeof(*w->users));
    w->users[w->n++] = u;
}

static void watch_del(pep_mod_t *pm, const jid_t *j, sm_user_t *u)
{
    pep_watch_t *w = watch_get(pm, j);
    for (size_t i = 0; w != NULL && i < w->n; i++) {
        if (w->users[i] == u) {
            w->users[i] = w->users[--w->n];
            break;
        }
    }
    if (w != NULL && w->n == 0) {
        core_map_del(&pm->watchers, j->full, j->full_len);
        core_free(w->users);
        core_free(w);
    }
}

static pep_contact_t *contact_find(pep_user_t *pu, const jid_t *j)
{
    for (size_t i = 0; i < pu->ncontacts; i++) {
        if (jid_equal(&pu->contacts[i].jid, j))
            return &pu->contacts[i];
    }
    return NULL;
}

static void contact_drop(pep_user_t *pu, pep_contact_t *c)
{
    watch_del(pu->pm, &c->jid, pu->u);
    jid_clear(&c->jid);
    *c = pu->contacts[--pu->ncontacts];
}

/* A JID in u's roster whose presence u receives (RFC 6121 §3: subscription 'to' or 'both'). */
static bool presence_from_contact(sm_user_t *u, const jid_t *j)
{
    char *bare = bare_of(j);
    const storage_roster_item_t *it = sm_roster_find(u, bare);
    core_free(bare);
    return it != NULL && sm_sub_has_to(it->subscription);
}

/*
 * Presence for the account's bare JID from a contact's resource (its broadcast or probe
 * answer): remembered, and on the initial one the last items go to it (§4.3.4; later
 * available presence does not send them again). Presence for one of the account's resources
 * (a chat room's occupants) is not a contact sharing presence with the account. Nor is a
 * stranger's directed presence (XEP-0163 discourages it for implicit subscriptions): anyone
 * may send it, from any number of resources, which would take the room of real contacts.
 */
static xml_handler_result_t on_presence_in(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    pep_mod_t *pm = data;
    if (jid_has_resource(&pkt->to) || !jid_has_resource(&pkt->from) ||
        jid_bare_equal(&pkt->from, &pkt->user->jid))
        return XMLS_PASS;
    pep_user_t *pu = pep_user(pm, pkt->user);
    pep_contact_t *c = contact_find(pu, &pkt->from);
    if (pkt->type == XMLS_TYPE_UNAVAILABLE || pkt->type == XMLS_TYPE_ERROR) {
        if (c != NULL)
            contact_drop(pu, c);
        return XMLS_PASS;
    }
    if (pkt->type != XMLS_TYPE_AVAILABLE || c != NULL || pu->ncontacts >= PEP_CONTACTS_MAX ||
        !presence_from_contact(pkt->user, &pkt->from))
        return XMLS_PASS;
    pu->contacts = core_realloc(pu->contacts, (pu->ncontacts + 1) * sizeof(*pu->contacts));
    c = &pu->contacts[pu->ncontacts++];
    jid_copy(&c->jid, &pkt->from);
    c->primed = false;
    watch_add(pm, &c->jid, pu->u);
    /* Caps not known yet: they come later, through on_caps_known. */
    size_t before = pu->nheld;
    pu->holding++;
    send_last(pu, &c->jid);
    c->primed = pu->nheld > before;
    pu->holding--;
    flush(pu);
    return XMLS_PASS;
}

/*
 * The account approved a subscription (RFC 6121 §3.1.5): the contact's resources that the
 * account knows get the last items they want now (XEP-0060 §6.1.7 for the implicit
 * subscription, XEP-0163 §4.3.4).
 */
static xml_handler_result_t on_subscribed_out(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    pep_mod_t *pm = data;
    pep_user_t *pu = pkt->user->slots[pm->mod->index];
    if (pu == NULL || pkt->to.full == NULL)
        return XMLS_PASS;
    pu->holding++;
    for (size_t i = 0; i < pu->ncontacts; i++) {
        if (jid_bare_equal(&pu->contacts[i].jid, &pkt->to)) {
            send_last(pu, &pu->contacts[i].jid);
            pu->contacts[i].primed = true;
        }
    }
    pu->holding--;
    flush(pu);
    return XMLS_PASS;
}

/* A resource's caps became known (mod_caps): its last items, once per availability. */
static void on_caps_known(sm_t *sm, void *data, const char *full)
{
    pep_mod_t *pm = data;
    jid_t j;
    if (jid_parse(sm->jids, full, strlen(full), &j) < 0)
        return;
    sm_user_t *own =
        jid_has_node(&j) && sm_is_local(sm, &j) ? sm_user_find(sm, j.full, j.bare_len) : NULL;
    sm_sess_t *s = own != NULL ? sm_session_by_resource(own, j.full) : NULL;
    if (s != NULL && s->available && s->slots[pm->mod->index] == NULL) {
        pep_user_t *pu = pep_user(pm, own);
        size_t before = pu->nheld;
        pu->holding++;
        send_last(pu, &j);
        if (pu->nheld > before)
            s->slots[pm->mod->index] = pm;
        pu->holding--;
        flush(pu);
    }
    /* A copy: what is sent may change the watchers. */
    pep_watch_t *w = watch_get(pm, &j);
    size_t n = w != NULL ? w->n : 0;
    sm_user_t **users = n > 0 ? core_malloc(n * sizeof(*users)) : NULL;
    if (n > 0)
        memcpy(users, w->users, n * sizeof(*users));
    for (size_t i = 0; i < n; i++) {
        pep_user_t *pu = sm_user_find(sm, users[i]->jid.full, users[i]->jid.full_len) == users[i]
            ? users[i]->slots[pm->mod->index]
            : NULL;
        pep_contact_t *c = pu != NULL ? contact_find(pu, &j) : NULL;
        if (c == NULL || c->primed)
            continue;
        size_t before = pu->nheld;
        pu->holding++;
        send_last(pu, &c->jid);
        c->primed = pu->nheld > before;
        pu->holding--;
        flush(pu);
    }
    core_free(users);
    jid_clear(&j);
}

/*
 * The account's own resource sent initial presence: the last items it wants (§4.3.4), unless
 * its caps, learnt from that same presence, already had them sent (on_caps_known).
 */
static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    pep_mod_t *pm = data;
    if (ev != SM_EV_SESS_AVAILABLE || sess->slots[pm->mod->index] != NULL)
        return;
    pep_user_t *pu = pep_user(pm, sess->user);
    size_t before = pu->nheld;
    pu->holding++;
    send_last(pu, &sess->jid);
    if (pu->nheld > before)
        sess->slots[pm->mod->index] = pm;
    pu->holding--;
    flush(pu);
}

/* An own resource that goes unavailable gets the last items again when it comes back. */
static void on_presence(sm_t *sm, void *data, sm_sess_t *sess, const xml_stanza_t *st)
{
    pep_mod_t *pm = data;
    const char *type = xml_stanza_type(st);
    if (type != NULL && strcmp(type, "unavailable") == 0)
        sess->slots[pm->mod->index] = NULL;
}

/* ---- requests ---- */

static xml_handler_result_t on_pubsub(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    /* To a resource, its client answers (RFC 6121 §8.5.3.1). */
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS;
    pep_user_t *pu = pep_user(data, pkt->user);
    const pubsub_request_t req = {
        .from = &pkt->from, .set = pkt->type == XMLS_TYPE_SET, .pubsub = pkt->payload};
    xml_stanza_t *r = sm_iq_result(pkt->st);
    pubsub_error_t err;
    pu->holding++;
    int rc = pubsub_request_run(pu->svc, &req, r, r->root, &err);
    pu->holding--;
    if (rc == 0) {
        sm_route(sm, r);
    } else {
        xml_stanza_t *e = xml_stanza_error_reply(pkt->st, err.cond);
        if (e != NULL) {
            pubsub_error_add(e, &err);
            sm_route(sm, e);
            xml_stanza_unref(e);
        }
    }
    xml_stanza_unref(r);
    if (pu->holding == 0)
        flush(pu);
    return XMLS_HANDLED;
}

/* XEP-0030 on the account (XEP-0163 §9.2): its nodes, and each node's info and items. */
static bool disco_account(sm_t *sm, void *data, const sm_pkt_t *pkt, const char *node, bool items,
                          xml_stanza_t *r, xml_node_t *query)
{
    pep_mod_t *pm = data;
    pep_user_t *pu = pkt->user->slots[pm->mod->index];
    if (pu == NULL || (node == NULL && !items))
        return false;
    char *bare = bare_of(&pkt->user->jid);
    int rc = items ? pubsub_disco_items(pu->svc, bare, node, &pkt->from, r, query)
                   : pubsub_disco_node_info(pu->svc, node, &pkt->from, r, query);
    core_free(bare);
    return rc == 0;
}

/* ---- for modules built on PEP (sm/pep.h) ---- */

bool sm_pep_enabled(const sm_t *sm)
{
    return pep_mod(sm) != NULL;
}

pubsub_service_t *sm_pep_begin(sm_t *sm, sm_user_t *u)
{
    pep_mod_t *pm = pep_mod(sm);
    if (pm == NULL)
        return NULL;
    pep_user_t *pu = pep_user(pm, u);
    pu->holding++;
    return pu->svc;
}

void sm_pep_commit(sm_t *sm, sm_user_t *u)
{
    pep_mod_t *pm = pep_mod(sm);
    pep_user_t *pu = pm != NULL ? u->slots[pm->mod->index] : NULL;
    if (pu == NULL)
        return;
    if (pu->holding > 0)
        pu->holding--;
    if (pu->holding == 0)
        flush(pu);
}

int sm_pep_node_defaults(sm_t *sm, const char *node, const pubsub_config_t *cfg)
{
    pep_mod_t *pm = pep_mod(sm);
    if (pm == NULL)
        return -ENOENT;
    pm->defaults = core_realloc(pm->defaults, (pm->ndefaults + 1) * sizeof(*pm->defaults));
    pep_default_t *d = &pm->defaults[pm->ndefaults++];
    d->node = node;
    pubsub_config_copy(&d->cfg, cfg);
    return 0;
}

/* ---- the module ---- */

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    pep_mod_t *pm = data;
    if (sess != NULL) {
        sess->slots[pm->mod->index] = NULL;
        return;
    }
    pep_user_t *pu = u->slots[pm->mod->index];
    if (pu == NULL)
        return;
    while (pu->ncontacts > 0)
        contact_drop(pu, &pu->contacts[pu->ncontacts - 1]);
    core_free(pu->contacts);
    for (size_t i = 0; i < pu->ndirty; i++)
        core_free(pu->dirty[i]);
    core_free(pu->dirty);
    for (size_t i = 0; i < pu->nheld; i++) {
        xml_stanza_unref(pu->held[i].tmpl);
        core_free(pu->held[i].to);
    }
    core_free(pu->held);
    pubsub_service_free(pu->svc);
    core_free(pu);
    u->slots[pm->mod->index] = NULL;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    pep_mod_t *pm = core_calloc(1, sizeof(*pm));
    pm->sm = sm;
    pm->mod = mod;
    core_map_init(&pm->watchers);
    mod->data = pm;
    const xml_match_t ps = {.kind = XMLS_KIND_IQ,
                            .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                            .payload_ns = PUBSUB_NS,
                            .payload_name = "pubsub"};
    const xml_match_t owner = {.kind = XMLS_KIND_IQ,
                               .types = XMLS_TYPE_GET | XMLS_TYPE_SET,
                               .payload_ns = PUBSUB_NS_OWNER,
                               .payload_name = "pubsub"};
    const xml_match_t pres = {.kind = XMLS_KIND_PRESENCE};
    const xml_match_t subscribed = {.kind = XMLS_KIND_PRESENCE, .types = XMLS_TYPE_SUBSCRIBED};
    int rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &ps, on_pubsub, pm);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &owner, on_pubsub, pm);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &pres, on_presence_in, pm);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_FROM_USER, &subscribed, on_subscribed_out, pm);
    if (rc == 0)
        sm_caps_on_known(sm, on_caps_known, pm);
    return rc;
}

static void watch_free(void *ud, const char *key, void *v)
{
    pep_watch_t *w = v;
    core_free(w->users);
    core_free(w);
}

static void fini(sm_t *sm, sm_mod_t *mod)
{
    pep_mod_t *pm = mod->data;
    core_map_each(&pm->watchers, watch_free, NULL);
    core_map_free(&pm->watchers);
    for (size_t i = 0; i < pm->ndefaults; i++)
        pubsub_config_clear(&pm->defaults[i].cfg);
    core_free(pm->defaults);
    core_free(pm);
    mod->data = NULL;
}

#define PS "http://jabber.org/protocol/pubsub"

/* What the engine and this module do (XEP-0060 §10); access-presence is the default model. */
#define PEP_FEATURES                                                                               \
    PS, PS "#access-presence", PS "#auto-create", PS "#auto-subscribe", PS "#config-node",         \
        PS "#config-node-max", PS "#create-and-configure", PS "#create-nodes", PS "#delete-items", \
        PS "#delete-nodes", PS "#filtered-notifications", PS "#item-ids", PS "#last-published",    \
        PS "#member-affiliation", PS "#meta-data", PS "#modify-affiliations", PS "#multi-items",   \
        PS "#outcast-affiliation", PS "#persistent-items", PS "#presence-notifications",           \
        PS "#presence-subscribe", PS "#publish", PS "#publish-options",                            \
        PS "#publisher-affiliation", PS "#purge-nodes", PS "#retract-items",                       \
        PS "#retrieve-affiliations", PS "#retrieve-default", PS "#retrieve-items",                 \
        PS "#retrieve-subscriptions", PS "#subscribe"

static const char *const features[] = {PEP_FEATURES, NULL};
/* XEP-0060 §9: an account that is a virtual pubsub service says so. */
static const char *const account_features[] = {PEP_FEATURES, PS "#pubsub-on-a-jid", NULL};
static const char *const identities[] = {"pubsub/pep", NULL};

const sm_module_t sm_module_pep = {
    .name = "pep",
    .api = SM_MODULE_API,
    .features = features,
    .account_features = account_features,
    .identities = identities,
    .account_identities = identities,
    .init = init,
    .fini = fini,
    .on_event = on_event,
    .on_presence = on_presence,
    .user_kind = KIND_PEP,
    .on_user_load = on_user_load,
    .free_slot = free_slot,
    .disco_account = disco_account,
};
