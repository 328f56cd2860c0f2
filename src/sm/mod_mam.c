/* SPDX-License-Identifier: MIT */
/* XEP-0313 user archives: 1:1 messages both ways, with XEP-0359 stanza ids and XEP-0441 prefs. */
#include "sm/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_HINTS "urn:xmpp:hints"
/* The storage document of a user's preferences (one key). */
#define PREFS_KIND "mamprefs"
#define PREFS_KEY "prefs"

/* Entries and bytes that may wait for the store (storage_archive_writer, group commit);
 * beyond, messages are delivered but not archived (logged). A few seconds of the busiest load
 * measured here (bench/README.md). */
#define SM_MAM_PENDING_MAX 262144u
#define SM_MAM_PENDING_BYTES (64u * 1024u * 1024u)

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Queues the message st for u's archive, with the other party with (prepared), and writes
 * its new id into id. False when it cannot be archived now (the store is behind, or the sm
 * is stopping): the message goes on without an id.
 */
static bool queue_entry(sm_mam_t *m, sm_user_t *u, const jid_t *with, xml_stanza_t *st,
                        char id[STORAGE_ARCHIVE_ID_LEN + 1])
{
    if (m->sm->stopping)
        return false;
    size_t len;
    /* The bytes a stanza was parsed from are kept with it: usually nothing is serialised. */
    const char *bytes = xml_stanza_bytes(st, &len);
    return storage_archive_writer_add(m->writer, u->node, with->full, bytes, len, id) == 0;
}

/* ---- which messages are archived ---- */

/* Payloads that make a message worth keeping without a <body/> (end-to-end encryption). */
static const struct {
    const char *ns, *name;
} kept_payloads[] = {
    {"eu.siacs.conversations.axolotl", "encrypted"}, /* OMEMO (XEP-0384 0.3) */
    {"urn:xmpp:omemo:2", "encrypted"}, /* OMEMO (XEP-0384 0.8) */
    {"urn:xmpp:openpgp:0", "openpgp"}, /* XEP-0373 */
    {"jabber:x:encrypted", "x"}, /* XEP-0027 */
};

/*
 * XEP-0313 §6.1.1: 'normal' and 'chat' messages (the handlers take only those) with a
 * <body/>; also encrypted ones and those with a XEP-0334 <store/> hint. Not chat states and
 * other notifications alone, nor messages with <no-store/> or <no-permanent-store/>.
 */
static bool archivable(const xml_stanza_t *st)
{
    bool keep = false;
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, NS_HINTS, "no-store") || xml_node_is(n, NS_HINTS, "no-permanent-store"))
            return false;
        if (keep)
            continue;
        keep = xml_node_is(n, XMLS_NS_CONTENT, "body") || xml_node_is(n, NS_HINTS, "store");
        for (size_t i = 0; !keep && i < sizeof(kept_payloads) / sizeof(kept_payloads[0]); i++)
            keep = xml_node_is(n, kept_payloads[i].ns, kept_payloads[i].name);
    }
    return keep;
}

static bool listed(const sm_mam_pref_jid_t *list, size_t n, const jid_t *target)
{
    /* XEP-0441 §2.3.1: a listed bare JID matches every resource of it. */
    for (size_t i = 0; i < n; i++) {
        size_t len = list[i].full ? target->full_len : target->bare_len;
        if (list[i].len == len && memcmp(list[i].jid, target->full, len) == 0)
            return true;
    }
    return false;
}

static bool in_roster(sm_user_t *u, const jid_t *target)
{
    char *bare = core_strndup(target->full, target->bare_len);
    bool found = sm_roster_find(u, bare) != NULL;
    core_free(bare);
    return found;
}

/* XEP-0441: does u archive messages with target (the 'to' of what it sends, the 'from' of
 * what it receives, §2.3.2 and §2.3.3)? */
static bool wanted(const sm_mam_t *m, sm_user_t *u, const jid_t *target)
{
    const sm_mam_user_t *mu = u->slots[m->slot];
    sm_mam_default_t def = (sm_mam_default_t)m->sm->cfg->archive_default;
    if (mu != NULL && mu->has_prefs) {
        if (listed(mu->prefs.never, mu->prefs.nnever, target))
            return false;
        if (listed(mu->prefs.always, mu->prefs.nalways, target))
            return true;
        def = mu->prefs.def;
    }
    switch (def) {
    case SM_MAM_DEFAULT_ALWAYS:
        return true;
    case SM_MAM_DEFAULT_ROSTER:
        return in_roster(u, target); /* §2.3.1: by the bare JID */
    default:
        return false;
    }
}

/* A <stanza-id/> that claims to be by u's archive (by= its bare JID). */
static bool claims_us(sm_t *sm, const xml_node_t *n, const jid_t *bare)
{
    if (!xml_node_is(n, SM_NS_SID, "stanza-id"))
        return false;
    const char *by = xml_node_attr(n, "by");
    if (by == NULL)
        return false;
    size_t len = strlen(by);
    if (len == bare->bare_len && memcmp(by, bare->full, len) == 0)
        return true;
    /* Written another way (XEP-0359 §3 rule 7: addresses compare normalised). */
    jid_t j;
    if (jid_parse(sm->jids, by, len, &j) < 0)
        return false;
    bool same = !jid_has_resource(&j) && jid_bare_equal(&j, bare);
    jid_clear(&j);
    return same;
}

/*
 * XEP-0359 §3 rule 2: a stanza-id by our address that we did not set is removed, whether or
 * not the message is archived, so that clients can trust the ones they see (§6).
 */
static void strip_claims(sm_t *sm, sm_pkt_t *pkt, const jid_t *bare)
{
    const xml_node_t *n = xml_node_first_element(pkt->st->root);
    while (n != NULL && !claims_us(sm, n, bare))
        n = xml_node_next_element(n);
    if (n == NULL)
        return;
    xml_stanza_t *st = sm_pkt_writable(pkt);
    xml_node_t *c = xml_node_first_element(st->root);
    while (c != NULL) {
        xml_node_t *next = xml_node_next_element(c);
        if (claims_us(sm, c, bare))
            xml_node_unlink(st, c);
        c = next;
    }
}

/* ---- archiving both directions ---- */

/* IN_SESS: what a session sends goes into its user's archive (XEP-0313 §3, outgoing). */
static xml_handler_result_t on_sent(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_mam_t *m = data;
    sm_user_t *u = pkt->user;
    /* To the user's own account it is archived once, as received (TO_USER, §6.1.1). */
    if (pkt->to.full == NULL || jid_bare_equal(&pkt->to, &u->jid))
        return XMLS_PASS;
    strip_claims(sm, pkt, &u->jid);
    if (!archivable(pkt->st) || !wanted(m, u, &pkt->to))
        return XMLS_PASS;
    char id[STORAGE_ARCHIVE_ID_LEN + 1];
    /* §3.5: the id goes to the user's own sessions (the sent carbon), not to the contact. */
    if (queue_entry(m, u, &pkt->to, pkt->st, id))
        pkt->stanza_id = core_strdup(id);
    return XMLS_PASS;
}

/* RFC 6121 §8.5.3.2.1: a message other than chat for a resource that is not there is
 * refused; it does not belong in the archive (XEP-0313 §6.1). */
static bool refused(const sm_pkt_t *pkt)
{
    if (!jid_has_resource(&pkt->to) || pkt->type == XMLS_TYPE_CHAT)
        return false;
    const sm_sess_t *s = sm_session_by_resource(pkt->user, pkt->to.full);
    return s == NULL || !s->started;
}

/* TO_USER: what the user receives goes into its archive, and reaches it with the id (§3.5). */
static xml_handler_result_t on_received(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_mam_t *m = data;
    sm_user_t *u = pkt->user;
    strip_claims(sm, pkt, &u->jid);
    if (!(pkt->type & (XMLS_TYPE_NORMAL | XMLS_TYPE_CHAT)) || !archivable(pkt->st) ||
        refused(pkt) || !wanted(m, u, &pkt->from))
        return XMLS_PASS;
    char id[STORAGE_ARCHIVE_ID_LEN + 1];
    /* Kept as it came (its bytes are usually known), without the id added below. */
    if (!queue_entry(m, u, &pkt->from, pkt->st, id))
        return XMLS_PASS;
    /* Built apart and appended with xml_stanza_append_copy: the copy keeps the message's
     * bytes and the id is written into them, so the message is not serialised again. */
    xml_stanza_t *sid = xml_stanza_new(SM_NS_SID, "stanza-id");
    char *bare = core_strndup(u->jid.full, u->jid.bare_len);
    xml_node_set_attr(sid, sid->root, NULL, "by", bare);
    xml_node_set_attr(sid, sid->root, NULL, "id", id);
    core_free(bare);
    xml_stanza_append_copy(sm_pkt_writable(pkt), sid->root);
    xml_stanza_unref(sid);
    return XMLS_PASS;
}

/* ---- preferences (XEP-0441, in the urn:xmpp:mam:2 namespace) ---- */

static const char *const default_names[] = {"always", "never", "roster", NULL};

static void prefs_clear(sm_mam_prefs_t *p)
{
    for (size_t i = 0; i < p->nalways; i++)
        core_free(p->always[i].jid);
    for (size_t i = 0; i < p->nnever; i++)
        core_free(p->never[i].jid);
    core_free(p->always);
    core_free(p->never);
    memset(p, 0, sizeof(*p));
}

static int cmp_pref(const void *a, const void *b)
{
    return strcmp(((const sm_mam_pref_jid_t *)a)->jid, ((const sm_mam_pref_jid_t *)b)->jid);
}

/* Reads the <jid/> children of list (may be NULL) into *out, sorted, without duplicates. */
static int parse_list(sm_t *sm, const xml_node_t *list, sm_mam_pref_jid_t **out, size_t *n)
{
    size_t count = 0;
    for (const xml_node_t *j = xml_node_first_element(list); list != NULL && j != NULL;
         j = xml_node_next_element(j))
        count++;
    if (count > SM_MAM_PREFS_JIDS_MAX)
        return -E2BIG;
    *out = core_calloc(count + 1, sizeof(**out));
    *n = 0;
    for (const xml_node_t *j = xml_node_first_element(list); list != NULL && j != NULL;
         j = xml_node_next_element(j)) {
        size_t len;
        const char *text = xml_node_text(j, &len);
        jid_t jid;
        if (!xml_node_is(j, MAM_NS, "jid") || jid_parse(sm->jids, text, len, &jid) < 0)
            return -EINVAL;
        (*out)[*n] = (sm_mam_pref_jid_t){
            .jid = core_strdup(jid.full), .len = jid.full_len, .full = jid_has_resource(&jid)};
        (*n)++;
        jid_clear(&jid);
    }
    qsort(*out, *n, sizeof(**out), cmp_pref);
    size_t w = 0;
    for (size_t i = 0; i < *n; i++) {
        if (w > 0 && strcmp((*out)[w - 1].jid, (*out)[i].jid) == 0)
            core_free((*out)[i].jid);
        else
            (*out)[w++] = (*out)[i];
    }
    *n = w;
    return 0;
}

/* A JID in both lists is never archived: <never/> wins, and leaves <always/>. */
static void drop_overlap(sm_mam_prefs_t *p)
{
    size_t w = 0;
    for (size_t i = 0; i < p->nalways; i++) {
        if (bsearch(&p->always[i], p->never, p->nnever, sizeof(*p->never), cmp_pref) != NULL)
            core_free(p->always[i].jid);
        else
            p->always[w++] = p->always[i];
    }
    p->nalways = w;
}

/* <prefs/> into *out: 0, -EINVAL (malformed) or -E2BIG (a list is too long). */
static int prefs_parse(sm_t *sm, const xml_node_t *node, sm_mam_prefs_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *def = xml_node_attr(node, "default");
    int d = -1;
    for (int i = 0; def != NULL && default_names[i] != NULL; i++) {
        if (strcmp(def, default_names[i]) == 0)
            d = i;
    }
    if (d < 0)
        return -EINVAL; /* XEP-0441 §2.1.1: it MUST be one of the three */
    out->def = (sm_mam_default_t)d;
    int rc = parse_list(sm, xml_node_child(node, MAM_NS, "always"), &out->always, &out->nalways);
    if (rc == 0)
        rc = parse_list(sm, xml_node_child(node, MAM_NS, "never"), &out->never, &out->nnever);
    if (rc < 0) {
        prefs_clear(out);
        return rc;
    }
    drop_overlap(out);
    return 0;
}

static void add_list(xml_stanza_t *st, xml_node_t *prefs, const char *name,
                     const sm_mam_pref_jid_t *l, size_t n)
{
    xml_node_t *list = xml_node_add_element(st, prefs, MAM_NS, name);
    for (size_t i = 0; i < n; i++) {
        xml_node_t *j = xml_node_add_element(st, list, MAM_NS, "jid");
        xml_node_add_text(st, j, l[i].jid, l[i].len);
    }
}

/* §2.1: <prefs default=...><always/><never/></prefs>, both lists always present. */
static void prefs_xml(xml_stanza_t *st, xml_node_t *parent, const sm_mam_prefs_t *p)
{
    xml_node_t *n = parent != NULL ? xml_node_add_element(st, parent, MAM_NS, "prefs") : st->root;
    xml_node_set_attr(st, n, NULL, "default", default_names[p->def]);
    add_list(st, n, "always", p->always, p->nalways);
    add_list(st, n, "never", p->never, p->nnever);
}

/* The preferences in force for u: its own, or [sm] archive_default with empty lists. */
static const sm_mam_prefs_t *prefs_of(const sm_mam_t *m, const sm_user_t *u,
                                      sm_mam_prefs_t *defaults)
{
    const sm_mam_user_t *mu = u->slots[m->slot];
    if (mu != NULL && mu->has_prefs)
        return &mu->prefs;
    *defaults = (sm_mam_prefs_t){.def = (sm_mam_default_t)m->sm->cfg->archive_default};
    return defaults;
}

static void prefs_reply(sm_mam_t *m, sm_user_t *u, xml_stanza_t *reply)
{
    sm_mam_prefs_t defaults;
    prefs_xml(reply, reply->root, prefs_of(m, u, &defaults));
    sm_route(m->sm, reply);
}

static void prefs_get(sm_mam_t *m, sm_pkt_t *pkt)
{
    xml_stanza_t *r = sm_iq_result(pkt->st);
    prefs_reply(m, pkt->user, r);
    xml_stanza_unref(r);
}

typedef struct prefs_op {
    sm_mam_t *m;
    sm_user_t *u;
    xml_stanza_t *reply; /* the result, without its payload yet */
} prefs_op_t;

static void on_prefs_stored(void *arg, int status)
{
    prefs_op_t *op = arg;
    sm_user_t *u = op->u;
    /* Held until the end: the answer goes to the session's full JID, and if that session is
     * gone, routing it would release (and free) the user under us. */
    if (status < 0 && status != -ENOENT) {
        core_log(op->m->sm->log, CORE_LOG_WARN, 0, "%s: archive preferences not stored: %s",
                 u->jid.full, strerror(-status));
        xml_stanza_make_error(op->reply, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR, NULL, false);
        sm_route(op->m->sm, op->reply);
    } else if (!op->m->sm->stopping) {
        /* XEP-0441 §2.1: the preferences as applied. */
        prefs_reply(op->m, u, op->reply);
    }
    xml_stanza_unref(op->reply);
    core_free(op);
    u->busy--;
    sm_user_release(u->sm, u);
}

static void prefs_set(sm_mam_t *m, sm_pkt_t *pkt)
{
    sm_t *sm = m->sm;
    sm_user_t *u = pkt->user;
    sm_mam_prefs_t p;
    int rc = prefs_parse(sm, pkt->payload, &p);
    if (rc < 0) {
        sm_reply_error(sm, pkt->st,
                       rc == -E2BIG ? CORE_STANZA_ERR_POLICY_VIOLATION
                                    : CORE_STANZA_ERR_BAD_REQUEST);
        return;
    }
    xml_stanza_t *doc = xml_stanza_new(MAM_NS, "prefs");
    prefs_xml(doc, NULL, &p);
    size_t len;
    const char *bytes = xml_stanza_bytes(doc, &len);
    prefs_op_t *op = core_malloc(sizeof(*op));
    *op = (prefs_op_t){.m = m, .u = u, .reply = sm_iq_result(pkt->st)};
    u->busy++;
    rc =
        storage_doc_put(sm->store, u->node, PREFS_KIND, PREFS_KEY, bytes, len, on_prefs_stored, op);
    xml_stanza_unref(doc);
    if (rc < 0) {
        u->busy--;
        xml_stanza_unref(op->reply);
        core_free(op);
        prefs_clear(&p);
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    /* In force at once: the next message sees them, while the store writes them. */
    sm_mam_user_t *mu = sm_mam_user_get(m, u);
    prefs_clear(&mu->prefs);
    mu->prefs = p;
    mu->has_prefs = true;
}

static void on_user_load(sm_t *sm, void *data, sm_user_t *u, const storage_docs_t *docs)
{
    sm_mam_t *m = data;
    for (size_t i = 0; i < docs->keys.count; i++) {
        if (strcmp(docs->keys.items[i].data, PREFS_KEY) != 0)
            continue;
        const storage_blob_t *v = &docs->values.items[i];
        xml_stanza_t *st = xml_stanza_parse(v->data, v->len);
        sm_mam_prefs_t p;
        if (st == NULL || !xml_node_is(st->root, MAM_NS, "prefs") ||
            prefs_parse(sm, st->root, &p) < 0) {
            core_log(sm->log, CORE_LOG_WARN, 0, "%s: stored archive preferences do not parse",
                     u->jid.full);
        } else {
            sm_mam_user_t *mu = sm_mam_user_get(m, u);
            prefs_clear(&mu->prefs);
            mu->prefs = p;
            mu->has_prefs = true;
        }
        xml_stanza_unref(st);
    }
}

/* ---- the IQs ---- */

/* From one of the user's sessions, to its own bare JID or to no one (XEP-0313 §3.3.1). */
static xml_handler_result_t on_own_iq(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    sm_mam_t *m = data;
    if (pkt->to.full != NULL &&
        (jid_has_resource(&pkt->to) || !jid_bare_equal(&pkt->to, &pkt->user->jid)))
        return XMLS_PASS; /* another archive (a room's, a contact's): routed on */
    const char *name = pkt->payload->name;
    bool get = pkt->type == XMLS_TYPE_GET;
    if (strcmp(name, "query") == 0 && get)
        sm_mam_query_form(m, pkt);
    else if (strcmp(name, "query") == 0)
        sm_mam_query_run(m, pkt);
    else if (strcmp(name, "metadata") == 0 && get)
        sm_mam_metadata_get(m, pkt);
    else if (strcmp(name, "prefs") == 0 && get)
        prefs_get(m, pkt);
    else if (strcmp(name, "prefs") == 0)
        prefs_set(m, pkt);
    else
        sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_SERVICE_UNAVAILABLE);
    return XMLS_HANDLED;
}

/* §8.1: someone else's archive (another user, a contact elsewhere): forbidden. */
static xml_handler_result_t on_other_iq(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to))
        return XMLS_PASS; /* for that resource */
    sm_reply_error(sm, pkt->st, CORE_STANZA_ERR_FORBIDDEN);
    return XMLS_HANDLED;
}

/* ---- retention ([sm] archive_expiry), applied once per user load at its first login ---- */

static void on_expired(void *arg, int status)
{
    sm_user_t *u = arg;
    u->busy--;
    if (status < 0 && status != -ENOENT)
        core_log(u->sm->log, CORE_LOG_WARN, 0, "%s: old archived messages not removed: %s",
                 u->jid.full, strerror(-status));
    sm_user_release(u->sm, u);
}

static void expire(sm_mam_t *m, sm_user_t *u)
{
    int64_t days = m->sm->cfg->archive_expiry_days;
    sm_mam_user_t *mu = sm_mam_user_get(m, u);
    if (days < 0 || mu->expired)
        return;
    mu->expired = true;
    /* XEP-0313 §3.2: the oldest go first, so no gaps open in the archive. */
    int64_t before = now_us() - days * 86400 * 1000000;
    u->busy++;
    if (storage_archive_expire(m->sm->store, u->node, before, on_expired, u) < 0)
        u->busy--;
}

static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    sm_mam_t *m = data;
    if (ev == SM_EV_SESS_START)
        expire(m, sess->user);
    else if (ev == SM_EV_STOP)
        storage_archive_writer_stop(m->writer); /* before the store closes */
}

/* ---- the module ---- */

sm_mam_user_t *sm_mam_user_get(sm_mam_t *m, sm_user_t *u)
{
    if (u->slots[m->slot] == NULL)
        u->slots[m->slot] = core_calloc(1, sizeof(sm_mam_user_t));
    return u->slots[m->slot];
}

static void free_slot(sm_t *sm, void *data, sm_user_t *u, sm_sess_t *sess)
{
    sm_mam_t *m = data;
    if (sess != NULL || u->slots[m->slot] == NULL)
        return;
    sm_mam_user_t *mu = u->slots[m->slot];
    prefs_clear(&mu->prefs);
    core_free(mu);
    u->slots[m->slot] = NULL;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    sm_mam_t *m = core_calloc(1, sizeof(*m));
    m->sm = sm;
    m->slot = mod->index;
    m->writer = storage_archive_writer_new(sm->store, sm->loop, sm->log, "mam", SM_MAM_PENDING_MAX,
                                           SM_MAM_PENDING_BYTES);
    mod->data = m;
    const unsigned kinds = XMLS_TYPE_NORMAL | XMLS_TYPE_CHAT;
    const xml_match_t msg = {.kind = XMLS_KIND_MESSAGE, .types = kinds};
    /* Every message to the user, for XEP-0359 §3 rule 2 (the handler picks what it keeps). */
    const xml_match_t any_msg = {.kind = XMLS_KIND_MESSAGE};
    const xml_match_t iq = {
        .kind = XMLS_KIND_IQ, .types = XMLS_TYPE_GET | XMLS_TYPE_SET, .payload_ns = MAM_NS};
    int rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &msg, on_sent, m);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &any_msg, on_received, m);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_IN_SESS, &iq, on_own_iq, m);
    if (rc == 0)
        rc = sm_handler_add(sm, SM_CHAIN_TO_USER, &iq, on_other_iq, m);
    return rc;
}

static void fini(sm_t *sm, sm_mod_t *mod)
{
    sm_mam_t *m = mod->data;
    storage_archive_writer_free(m->writer);
    core_free(m);
    mod->data = NULL;
}

/* XEP-0313 §7: on the archiving JIDs, the accounts; XEP-0359 §5: the ids they add. */
static const char *const account_features[] = {MAM_NS, MAM_NS_EXTENDED, SM_NS_SID, NULL};

const sm_module_t sm_module_mam = {
    .name = "mam",
    .api = SM_MODULE_API,
    .account_features = account_features,
    .init = init,
    .fini = fini,
    .on_event = on_event,
    .user_kind = PREFS_KIND,
    .on_user_load = on_user_load,
    .free_slot = free_slot,
};
