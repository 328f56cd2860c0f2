/* SPDX-License-Identifier: MIT */
/* XEP-0115: the server's own caps, and the verified features of the entities the sm sees. */
#include "sm/internal.h"

#include "core/alloc.h"
#include "sm/subscription.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define NS_CAPS "http://jabber.org/protocol/caps"
#define NS_XDATA "jabber:x:data"
/* §4: a URI naming the software (its caps node; the disco node is "<node>#<ver>"). */
#define CAPS_NODE "urn:parley:server"
#define CAPS_CACHE_MAX 1024 /* verified verification strings kept (least recently used goes) */
#define CAPS_JIDS_MAX 65536 /* full JIDs whose caps are followed */
#define CAPS_PENDING_MAX 256 /* disco#info queries out at once */
#define CAPS_TRIES_MAX 3 /* entities asked about one ver that fails before giving up */
#define CAPS_ITEMS_MAX 1024 /* identities, features, fields and values of one answer */
#define CAPS_LISTENERS_MAX 8

/* A verified set of features (sorted, distinct), shared by the JIDs that have it. */
typedef struct capset {
    unsigned refs;
    size_t n;
    char **features;
} capset_t;

/* A verified verification string, in least-recently-used order. */
typedef struct cache_ent {
    struct cache_ent *prev, *next;
    char *key; /* "<hash> <ver>" */
    capset_t *set; /* a reference */
} cache_ent_t;

/* A full JID whose presence named caps, in the order of its last presence. */
typedef struct jid_ent {
    struct jid_ent *prev, *next;
    char *jid;
    char *key; /* "<hash> <ver>" of its last caps */
    char *node; /* "<node>#<ver>", the disco node to ask it */
    capset_t *set; /* its features once known (a reference), else NULL */
    bool asking; /* a query for its own features (a hash we do not have) is out */
} jid_ent_t;

typedef struct caps_mod caps_mod_t;

/* A disco#info query out to one entity about one ver. */
typedef struct pend {
    caps_mod_t *cm;
    char *key;
    char *asked; /* the full JID asked */
    unsigned tries;
    bool per_jid; /* §5.4 step 2: the answer is that JID's alone, not cached */
    bool orphan; /* the JID asked went away: its answer, if any, is dropped */
} pend_t;

typedef struct listener {
    void (*fn)(sm_t *sm, void *ud, const char *full_jid);
    void *ud;
} listener_t;

struct caps_mod {
    core_map_t cache; /* key -> cache_ent_t */
    cache_ent_t *newest, *oldest;
    core_map_t jids; /* full JID -> jid_ent_t */
    jid_ent_t *latest, *stalest; /* by last presence: the stalest makes room when it is full */
    core_map_t pending; /* key -> pend_t (not per_jid ones) */
    size_t nper_jid; /* per_jid queries out: they count against CAPS_PENDING_MAX too */
    listener_t listeners[CAPS_LISTENERS_MAX];
    size_t nlisteners;
    char *server_node; /* CAPS_NODE#ver, made at first use (after every module started) */
};

extern const sm_module_t sm_module_caps;

static caps_mod_t *caps_of(sm_t *sm)
{
    for (size_t i = 0; i < sm->nmods; i++) {
        if (sm->mods[i].def == &sm_module_caps)
            return sm->mods[i].data;
    }
    return NULL;
}

/* ---- feature sets and the cache ---- */

static capset_t *set_ref(capset_t *s)
{
    if (s != NULL)
        s->refs++;
    return s;
}

static void set_unref(capset_t *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    for (size_t i = 0; i < s->n; i++)
        core_free(s->features[i]);
    core_free(s->features);
    core_free(s);
}

static void lru_unlink(caps_mod_t *cm, cache_ent_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        cm->newest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        cm->oldest = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(caps_mod_t *cm, cache_ent_t *e)
{
    e->next = cm->newest;
    if (cm->newest != NULL)
        cm->newest->prev = e;
    cm->newest = e;
    if (cm->oldest == NULL)
        cm->oldest = e;
}

static capset_t *cache_get(caps_mod_t *cm, const char *key)
{
    cache_ent_t *e = core_map_get(&cm->cache, key, strlen(key));
    if (e == NULL)
        return NULL;
    lru_unlink(cm, e);
    lru_push(cm, e);
    return e->set;
}

static void cache_drop(caps_mod_t *cm, cache_ent_t *e)
{
    lru_unlink(cm, e);
    core_map_del(&cm->cache, e->key, strlen(e->key));
    set_unref(e->set);
    core_free(e->key);
    core_free(e);
}

/* §5.4: a verified ver is cached for every JID that names it. */
static void cache_put(caps_mod_t *cm, const char *key, capset_t *set)
{
    cache_ent_t *e = core_map_get(&cm->cache, key, strlen(key));
    if (e != NULL)
        cache_drop(cm, e);
    e = core_calloc(1, sizeof(*e));
    e->key = core_strdup(key);
    e->set = set_ref(set);
    core_map_put(&cm->cache, e->key, strlen(e->key), e);
    lru_push(cm, e);
    if (cm->cache.count > CAPS_CACHE_MAX)
        cache_drop(cm, cm->oldest);
}

/* ---- the verification string (§5.1) ---- */

typedef struct ident {
    const char *category, *type, *lang, *name;
} ident_t;

typedef struct form {
    const char *form_type;
    const xml_node_t *x;
} form_t;

static int strp_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* §5.1 step 2: by category, then type, then xml:lang, then name ("i;octet" each). */
static int ident_cmp(const void *a, const void *b)
{
    const ident_t *x = a, *y = b;
    int c = strcmp(x->category, y->category);
    if (c == 0)
        c = strcmp(x->type, y->type);
    if (c == 0)
        c = strcmp(x->lang, y->lang);
    return c != 0 ? c : strcmp(x->name, y->name);
}

static int form_cmp(const void *a, const void *b)
{
    return strcmp(((const form_t *)a)->form_type, ((const form_t *)b)->form_type);
}

static const char *or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static void append(core_buf_t *s, const char *text)
{
    core_buf_append_str(s, text);
    core_buf_append(s, "<", 1);
}

/*
 * §5.4 step 3.6: a form's FORM_TYPE, or NULL when the form does not count (no FORM_TYPE
 * field, or one not hidden). -EBADMSG in *rc when its values differ (step 3.5).
 */
static const char *form_type_of(const xml_node_t *x, int *rc)
{
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        const char *var = xml_node_attr(f, "var");
        if (!xml_node_is(f, NS_XDATA, "field") || var == NULL || strcmp(var, "FORM_TYPE") != 0)
            continue;
        const char *type = xml_node_attr(f, "type");
        if (type == NULL || strcmp(type, "hidden") != 0)
            return NULL;
        const char *first = NULL;
        for (const xml_node_t *v = xml_node_child(f, NS_XDATA, "value"); v != NULL;
             v = xml_node_next_element(v)) {
            if (!xml_node_is(v, NS_XDATA, "value"))
                continue;
            size_t len;
            const char *text = xml_node_text(v, &len);
            if (first != NULL && strcmp(first, text) != 0)
                *rc = -EBADMSG;
            if (first == NULL)
                first = text;
        }
        return first != NULL ? first : "";
    }
    return NULL;
}

/* §5.1 step 7: one form's fields (but FORM_TYPE), by var, each with its values sorted. */
static int form_append(const xml_node_t *x, core_buf_t *s, size_t *items)
{
    const xml_node_t *fields[CAPS_ITEMS_MAX];
    size_t nf = 0;
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        const char *var = xml_node_attr(f, "var");
        if (!xml_node_is(f, NS_XDATA, "field") || var == NULL || strcmp(var, "FORM_TYPE") == 0)
            continue;
        if (++*items > CAPS_ITEMS_MAX)
            return -E2BIG;
        fields[nf++] = f;
    }
    /* Sorted by var: a small insertion sort keeps the nodes (qsort would need a wrapper). */
    for (size_t i = 1; i < nf; i++) {
        for (size_t j = i; j > 0 &&
             strcmp(xml_node_attr(fields[j - 1], "var"), xml_node_attr(fields[j], "var")) > 0;
             j--) {
            const xml_node_t *t = fields[j];
            fields[j] = fields[j - 1];
            fields[j - 1] = t;
        }
    }
    const char *values[CAPS_ITEMS_MAX];
    for (size_t i = 0; i < nf; i++) {
        append(s, xml_node_attr(fields[i], "var"));
        size_t nv = 0;
        for (const xml_node_t *v = xml_node_child(fields[i], NS_XDATA, "value"); v != NULL;
             v = xml_node_next_element(v)) {
            if (!xml_node_is(v, NS_XDATA, "value"))
                continue;
            if (++*items > CAPS_ITEMS_MAX)
                return -E2BIG;
            size_t len;
            values[nv++] = xml_node_text(v, &len);
        }
        qsort(values, nv, sizeof(*values), strp_cmp);
        for (size_t k = 0; k < nv; k++)
            append(s, values[k]);
    }
    return 0;
}

/* The forms that count (§5.4 step 3.6), sorted by FORM_TYPE; -EBADMSG for duplicates. */
static int forms_append(const xml_node_t *query, core_buf_t *s, size_t *items)
{
    form_t forms[64];
    size_t n = 0;
    int rc = 0;
    for (const xml_node_t *x = xml_node_child(query, NS_XDATA, "x"); x != NULL;
         x = xml_node_next_element(x)) {
        if (!xml_node_is(x, NS_XDATA, "x"))
            continue;
        const char *ft = form_type_of(x, &rc);
        if (rc < 0)
            return rc;
        if (ft == NULL)
            continue;
        if (n == sizeof(forms) / sizeof(forms[0]))
            return -E2BIG;
        forms[n++] = (form_t){.form_type = ft, .x = x};
    }
    qsort(forms, n, sizeof(*forms), form_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(forms[i - 1].form_type, forms[i].form_type) == 0)
            return -EBADMSG; /* §5.4 step 3.5 */
        append(s, forms[i].form_type);
        rc = form_append(forms[i].x, s, items);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * S of §5.1 for a disco#info <query/>, and its features (sorted, distinct) in *feats (nfeats;
 * owned by the caller, strings borrowed from query). -EBADMSG: ill-formed (§5.4 steps
 * 3.3 to 3.5); -E2BIG: more than we take.
 */
static int verification_input(const xml_node_t *query, core_buf_t *s, const char ***feats,
                              size_t *nfeats)
{
    size_t ni = 0, nf = 0, items = 0;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL;
         n = xml_node_next_element(n)) {
        ni += xml_node_is(n, SM_NS_DISCO_INFO, "identity");
        nf += xml_node_is(n, SM_NS_DISCO_INFO, "feature");
    }
    if (ni + nf > CAPS_ITEMS_MAX)
        return -E2BIG;
    ident_t *ids = core_calloc(ni + 1, sizeof(*ids));
    const char **fs = core_calloc(nf + 1, sizeof(*fs));
    size_t i = 0, f = 0;
    int rc = 0;
    for (const xml_node_t *n = xml_node_first_element(query); n != NULL && rc == 0;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, SM_NS_DISCO_INFO, "identity")) {
            ids[i] = (ident_t){.category = xml_node_attr(n, "category"),
                               .type = xml_node_attr(n, "type"),
                               .lang = or_empty(xml_node_attr_ns(n, XMLS_NS_XML, "lang")),
                               .name = or_empty(xml_node_attr(n, "name"))};
            /* XEP-0030 §3.1: category and type are required. */
            if (ids[i].category == NULL || ids[i].type == NULL)
                rc = -EBADMSG;
            i++;
        } else if (xml_node_is(n, SM_NS_DISCO_INFO, "feature")) {
            fs[f] = xml_node_attr(n, "var");
            if (fs[f++] == NULL)
                rc = -EBADMSG;
        }
    }
    if (rc == 0) {
        qsort(ids, ni, sizeof(*ids), ident_cmp);
        qsort(fs, nf, sizeof(*fs), strp_cmp);
    }
    for (i = 0; i < ni && rc == 0; i++) {
        if (i > 0 && ident_cmp(&ids[i - 1], &ids[i]) == 0)
            rc = -EBADMSG; /* §5.4 step 3.3 */
        core_buf_append_str(s, ids[i].category);
        core_buf_append(s, "/", 1);
        core_buf_append_str(s, ids[i].type);
        core_buf_append(s, "/", 1);
        core_buf_append_str(s, ids[i].lang);
        core_buf_append(s, "/", 1);
        append(s, ids[i].name);
    }
    for (f = 0; f < nf && rc == 0; f++) {
        if (f > 0 && strcmp(fs[f - 1], fs[f]) == 0)
            rc = -EBADMSG; /* §5.4 step 3.4 */
        append(s, fs[f]);
    }
    if (rc == 0)
        rc = forms_append(query, s, &items);
    core_free(ids);
    if (rc < 0) {
        core_free(fs);
        return rc;
    }
    *feats = fs;
    *nfeats = nf;
    return 0;
}

/* §9.1: the hashes we verify (names from the IANA registry); SHA-1 is mandatory. */
static const EVP_MD *digest_of(const char *hash)
{
    static const struct {
        const char *name;
        const EVP_MD *(*md)(void);
    } known[] = {
        {"sha-1", EVP_sha1},     {"sha-224", EVP_sha224}, {"sha-256", EVP_sha256},
        {"sha-384", EVP_sha384}, {"sha-512", EVP_sha512},
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(known[i].name, hash) == 0)
            return known[i].md();
    }
    return NULL;
}

/* §5.1 steps 8-9: base64 of the hash of S, into out (at least 100 bytes). */
static int ver_hash(const EVP_MD *md, const core_buf_t *s, char *out)
{
    unsigned char dg[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(s->data != NULL ? s->data : "", s->len, dg, &len, md, NULL) != 1)
        return -EIO;
    EVP_EncodeBlock((unsigned char *)out, dg, (int)len);
    return 0;
}

/*
 * The features of query if it hashes to ver with hash (§5.4 step 3), a new set; NULL when it
 * does not or is ill-formed. md NULL (a hash we do not have): not checked (§5.4 step 2).
 */
static capset_t *verify(const xml_node_t *query, const EVP_MD *md, const char *ver)
{
    core_buf_t s = {0};
    const char **fs = NULL;
    size_t nf = 0;
    char mine[128];
    capset_t *set = NULL;
    if (verification_input(query, &s, &fs, &nf) < 0)
        goto out;
    if (md != NULL && (ver_hash(md, &s, mine) < 0 || strcmp(mine, ver) != 0))
        goto out;
    set = core_calloc(1, sizeof(*set));
    set->refs = 1;
    set->n = nf;
    set->features = core_calloc(nf + 1, sizeof(char *));
    for (size_t i = 0; i < nf; i++)
        set->features[i] = core_strdup(fs[i]);
out:
    core_free(fs);
    core_buf_release(&s);
    return set;
}

/* ---- JIDs and queries ---- */

static void notify(sm_t *sm, caps_mod_t *cm, const char *jid)
{
    char *copy = core_strdup(jid); /* a listener may change what the entry holds */
    for (size_t i = 0; i < cm->nlisteners; i++)
        cm->listeners[i].fn(sm, cm->listeners[i].ud, copy);
    core_free(copy);
}

static void on_info(sm_t *sm, void *arg, const xml_stanza_t *reply);

static int ask(sm_t *sm, pend_t *p, const char *node)
{
    xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(iq, iq->root, NULL, "type", "get");
    xml_node_set_attr(iq, iq->root, NULL, "to", p->asked);
    xml_node_t *q = xml_node_add_element(iq, iq->root, SM_NS_DISCO_INFO, "query");
    /* §6.2: the node is the caps node and the ver, as the entity gave them. */
    xml_node_set_attr(iq, q, NULL, "node", node);
    int rc = sm_iq_send(sm, iq, on_info, p);
    xml_stanza_unref(iq);
    if (rc < 0)
        core_log(sm->log, CORE_LOG_DEBUG, 0, "caps: cannot ask %s: %s", p->asked, strerror(-rc));
    return rc;
}

static void pend_free(caps_mod_t *cm, pend_t *p)
{
    if (p->per_jid)
        cm->nper_jid--;
    else if (!p->orphan)
        core_map_del(&cm->pending, p->key, strlen(p->key));
    core_free(p->key);
    core_free(p->asked);
    core_free(p);
}

static pend_t *pend_new(caps_mod_t *cm, const jid_ent_t *e, bool per_jid)
{
    pend_t *p = core_calloc(1, sizeof(*p));
    p->cm = cm;
    p->key = core_strdup(e->key);
    p->asked = core_strdup(e->jid);
    p->per_jid = per_jid;
    if (per_jid)
        cm->nper_jid++;
    else
        core_map_put(&cm->pending, p->key, strlen(p->key), p);
    return p;
}

typedef struct collect_ctx {
    const char *key;
    const char *skip; /* a JID not to pick, or NULL */
    jid_ent_t **out;
    size_t n, max;
} collect_ctx_t;

/* The JIDs that named key and do not know their features yet. */
static void collect(void *ud, const char *k, void *v)
{
    collect_ctx_t *c = ud;
    jid_ent_t *e = v;
    if (c->n < c->max && e->set == NULL && e->key != NULL && strcmp(e->key, c->key) == 0 &&
        (c->skip == NULL || strcmp(e->jid, c->skip) != 0))
        c->out[c->n++] = e;
}

/* §5.4 step 3.8: a verified ver is cached and holds for every JID that named it. */
static void known(sm_t *sm, caps_mod_t *cm, const char *key, capset_t *set)
{
    cache_put(cm, key, set);
    size_t max = cm->jids.count;
    collect_ctx_t c = {.key = key, .out = core_calloc(max + 1, sizeof(jid_ent_t *)), .max = max};
    core_map_each(&cm->jids, collect, &c);
    char **jids = core_calloc(c.n + 1, sizeof(char *));
    for (size_t i = 0; i < c.n; i++) {
        c.out[i]->set = set_ref(set);
        jids[i] = core_strdup(c.out[i]->jid);
    }
    core_free(c.out);
    for (size_t i = 0; i < c.n; i++) {
        notify(sm, cm, jids[i]);
        core_free(jids[i]);
    }
    core_free(jids);
}

/* §5.4 step 3.9: not cached; another entity that names the same ver may be asked. */
static void failed(sm_t *sm, caps_mod_t *cm, pend_t *p)
{
    jid_ent_t *next = NULL;
    collect_ctx_t c = {.key = p->key, .skip = p->asked, .out = &next, .max = 1};
    if (++p->tries < CAPS_TRIES_MAX)
        core_map_each(&cm->jids, collect, &c);
    if (next == NULL) {
        pend_free(cm, p);
        return;
    }
    core_free(p->asked);
    p->asked = core_strdup(next->jid);
    if (ask(sm, p, next->node) < 0)
        pend_free(cm, p);
}

static void jid_unlink(caps_mod_t *cm, jid_ent_t *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        cm->latest = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        cm->stalest = e->prev;
    e->prev = e->next = NULL;
}

/* A JID whose presence is gone; if the query about its ver was out to it, another JID that
 * names the same ver is asked at once instead of after SM_IQ_TIMEOUT_MS. */
static void forget(sm_t *sm, caps_mod_t *cm, const char *jid)
{
    jid_ent_t *e = core_map_del(&cm->jids, jid, strlen(jid));
    if (e == NULL)
        return;
    jid_unlink(cm, e);
    pend_t *p = e->key != NULL ? core_map_get(&cm->pending, e->key, strlen(e->key)) : NULL;
    if (p != NULL && strcmp(p->asked, jid) == 0) {
        core_map_del(&cm->pending, p->key, strlen(p->key));
        p->orphan = true;
        jid_ent_t *next = NULL;
        collect_ctx_t c = {.key = e->key, .out = &next, .max = 1};
        core_map_each(&cm->jids, collect, &c);
        if (next != NULL) {
            pend_t *q = pend_new(cm, next, false);
            if (ask(sm, q, next->node) < 0)
                pend_free(cm, q);
        }
    }
    set_unref(e->set);
    core_free(e->jid);
    core_free(e->key);
    core_free(e->node);
    core_free(e);
}

static void on_info(sm_t *sm, void *arg, const xml_stanza_t *reply)
{
    pend_t *p = arg;
    caps_mod_t *cm = p->cm;
    if (p->orphan) {
        pend_free(cm, p);
        return;
    }
    const char *type = reply != NULL ? xml_stanza_type(reply) : NULL;
    const xml_node_t *query = type != NULL && strcmp(type, "result") == 0
        ? xml_node_child(reply->root, SM_NS_DISCO_INFO, "query")
        : NULL;
    const char *space = strchr(p->key, ' ');
    const EVP_MD *md = NULL;
    char hash[16] = "";
    size_t hl = (size_t)(space - p->key);
    if (!p->per_jid && hl < sizeof(hash)) {
        memcpy(hash, p->key, hl);
        md = digest_of(hash);
    }
    capset_t *set =
        query != NULL && (md != NULL || p->per_jid) ? verify(query, md, space + 1) : NULL;
    core_log(sm->log, CORE_LOG_DEBUG, 0, "caps: %s for %s: %s", p->asked, p->key,
             set != NULL         ? "verified"
                 : reply == NULL ? "no answer"
                                 : "not verified");
    if (p->per_jid) {
        jid_ent_t *e = core_map_get(&cm->jids, p->asked, strlen(p->asked));
        bool still = e != NULL && e->asking && strcmp(e->key, p->key) == 0;
        if (still) {
            e->asking = false;
            e->set = set_ref(set);
        }
        pend_free(cm, p);
        if (still && set != NULL)
            notify(sm, cm, e->jid);
    } else if (set != NULL) {
        char *key = core_strdup(p->key);
        pend_free(cm, p);
        known(sm, cm, key, set);
        core_free(key);
    } else {
        failed(sm, cm, p);
    }
    set_unref(set);
}

/*
 * The entry for jid, now the latest. When the table is full the stalest entry goes: an
 * unavailable presence that never came (a contact's server that went away) must not leave
 * the table full for good, with nobody new followed, local sessions included.
 */
static jid_ent_t *entry(sm_t *sm, caps_mod_t *cm, const char *jid)
{
    jid_ent_t *e = core_map_get(&cm->jids, jid, strlen(jid));
    if (e != NULL) {
        jid_unlink(cm, e);
    } else {
        if (cm->jids.count >= CAPS_JIDS_MAX)
            forget(sm, cm, cm->stalest->jid);
        e = core_calloc(1, sizeof(*e));
        e->jid = core_strdup(jid);
        core_map_put(&cm->jids, e->jid, strlen(e->jid), e);
    }
    e->next = cm->latest;
    if (cm->latest != NULL)
        cm->latest->prev = e;
    cm->latest = e;
    if (cm->stalest == NULL)
        cm->stalest = e;
    return e;
}

/* Caps in presence from jid (§4, §5.4): known at once, or asked about. */
static void seen(sm_t *sm, caps_mod_t *cm, const char *jid, const xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    if (type != NULL) {
        if (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)
            forget(sm, cm, jid);
        return;
    }
    /* Without <c/> the caps stay as they were (a client may leave them out, §8.4). */
    const xml_node_t *c = xml_node_child(st->root, NS_CAPS, "c");
    const char *hash = c != NULL ? xml_node_attr(c, "hash") : NULL;
    const char *node = c != NULL ? xml_node_attr(c, "node") : NULL;
    const char *ver = c != NULL ? xml_node_attr(c, "ver") : NULL;
    /* §5.4 step 1, §13: no hash is the legacy format, which cannot be verified: ignored. */
    if (hash == NULL || node == NULL || ver == NULL || strchr(hash, ' ') != NULL)
        return;
    size_t hl = strlen(hash), vl = strlen(ver), nl = strlen(node);
    char *key = core_malloc(hl + vl + 2);
    memcpy(key, hash, hl);
    key[hl] = ' ';
    memcpy(key + hl + 1, ver, vl + 1);
    jid_ent_t *e = entry(sm, cm, jid);
    if (e->key != NULL && strcmp(e->key, key) == 0 &&
        (e->set != NULL || e->asking || core_map_get(&cm->pending, key, strlen(key)) != NULL)) {
        core_free(key);
        return; /* the same caps again: known, or being asked about */
    }
    core_free(e->key);
    e->key = key;
    core_free(e->node);
    e->node = core_malloc(nl + vl + 2);
    memcpy(e->node, node, nl);
    e->node[nl] = '#';
    memcpy(e->node + nl + 1, ver, vl + 1);
    set_unref(e->set);
    e->set = NULL;
    e->asking = false;
    bool ours = digest_of(hash) != NULL;
    capset_t *set = ours ? cache_get(cm, key) : NULL;
    if (set != NULL) {
        e->set = set_ref(set);
        notify(sm, cm, jid);
        return;
    }
    if (ours && core_map_get(&cm->pending, key, strlen(key)) != NULL)
        return; /* another entity is being asked about the same ver */
    /* Per-JID queries too: a contact naming a hash we lack from many resources would
     * otherwise take every IQ slot the sm has (SM_IQ_MAX) for SM_IQ_TIMEOUT_MS. */
    if (cm->pending.count + cm->nper_jid >= CAPS_PENDING_MAX)
        return;
    pend_t *p = pend_new(cm, e, !ours);
    e->asking = !ours;
    if (ask(sm, p, e->node) < 0) {
        e->asking = false;
        pend_free(cm, p);
    }
}

/* ---- hooks ---- */

/* A local session's presence: its own caps. */
static void on_presence(sm_t *sm, void *data, sm_sess_t *sess, const xml_stanza_t *st)
{
    seen(sm, data, sess->jid.full, st);
}

/* A JID in u's roster whose presence u receives (RFC 6121 §3: subscription 'to' or 'both'). */
static bool followed(sm_user_t *u, const jid_t *j)
{
    char *bare = core_strndup(j->full, j->bare_len);
    const storage_roster_item_t *it = sm_roster_find(u, bare);
    core_free(bare);
    return it != NULL && sm_sub_has_to(it->subscription);
}

/*
 * Presence from elsewhere for a user's bare JID: a contact's broadcast or probe answer
 * (local sessions are followed through on_presence). Only from contacts the user receives
 * presence from: anyone may send directed presence, and following every JID that does would
 * let a stranger fill the table (CAPS_JIDS_MAX, shared by all users) and the queries out.
 * Presence for a full JID (a chat room's occupants) is left alone: asking every occupant
 * would be the "disco flood" §1.1 warns of.
 */
static xml_handler_result_t on_contact(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    if (jid_has_resource(&pkt->to) || !jid_has_resource(&pkt->from) ||
        (jid_has_node(&pkt->from) && sm_is_local(sm, &pkt->from)))
        return XMLS_PASS;
    /* Unavailable always passes: what was followed is forgotten. */
    if (pkt->type == XMLS_TYPE_AVAILABLE && !followed(pkt->user, &pkt->from))
        return XMLS_PASS;
    seen(sm, data, pkt->from.full, pkt->st);
    return XMLS_PASS;
}

static void on_event(sm_t *sm, void *data, sm_event_t ev, sm_sess_t *sess)
{
    if (ev == SM_EV_SESS_END)
        forget(sm, data, sess->jid.full);
}

bool sm_caps_has_feature(sm_t *sm, const char *full_jid, const char *feature)
{
    caps_mod_t *cm = caps_of(sm);
    const jid_ent_t *e = cm != NULL ? core_map_get(&cm->jids, full_jid, strlen(full_jid)) : NULL;
    if (e == NULL || e->set == NULL)
        return false;
    return bsearch(&feature, e->set->features, e->set->n, sizeof(char *), strp_cmp) != NULL;
}

void sm_caps_on_known(sm_t *sm, void (*fn)(sm_t *sm, void *ud, const char *full_jid), void *ud)
{
    caps_mod_t *cm = caps_of(sm);
    if (cm == NULL || cm->nlisteners == CAPS_LISTENERS_MAX)
        return;
    cm->listeners[cm->nlisteners++] = (listener_t){.fn = fn, .ud = ud};
}

const char *sm_caps_server_node(sm_t *sm)
{
    caps_mod_t *cm = caps_of(sm);
    if (cm == NULL)
        return NULL;
    if (cm->server_node == NULL) {
        xml_stanza_t *st = xml_stanza_new(SM_NS_DISCO_INFO, "query");
        sm_info_fill(sm, false, st, st->root);
        core_buf_t s = {0};
        const char **fs = NULL;
        size_t nf;
        char ver[128];
        if (verification_input(st->root, &s, &fs, &nf) == 0 && ver_hash(EVP_sha1(), &s, ver) == 0) {
            size_t len = strlen(CAPS_NODE) + 1 + strlen(ver) + 1;
            cm->server_node = core_malloc(len);
            memcpy(cm->server_node, CAPS_NODE "#", strlen(CAPS_NODE) + 1);
            memcpy(cm->server_node + strlen(CAPS_NODE) + 1, ver, strlen(ver) + 1);
        }
        core_free(fs);
        core_buf_release(&s);
        xml_stanza_unref(st);
    }
    return cm->server_node;
}

static int init(sm_t *sm, sm_mod_t *mod)
{
    caps_mod_t *cm = core_calloc(1, sizeof(*cm));
    core_map_init(&cm->cache);
    core_map_init(&cm->jids);
    core_map_init(&cm->pending);
    mod->data = cm;
    const xml_match_t m = {.kind = XMLS_KIND_PRESENCE,
                           .types = XMLS_TYPE_AVAILABLE | XMLS_TYPE_UNAVAILABLE};
    return sm_handler_add(sm, SM_CHAIN_TO_USER, &m, on_contact, cm);
}

static void free_jid(void *ud, const char *key, void *v)
{
    jid_ent_t *e = v;
    set_unref(e->set);
    core_free(e->jid);
    core_free(e->key);
    core_free(e->node);
    core_free(e);
}

static void fini(sm_t *sm, sm_mod_t *mod)
{
    caps_mod_t *cm = mod->data;
    while (cm->oldest != NULL)
        cache_drop(cm, cm->oldest);
    core_map_free(&cm->cache);
    core_map_each(&cm->jids, free_jid, NULL);
    core_map_free(&cm->jids);
    /* Every query was answered (with NULL at the latest when the sm stopped). */
    core_map_free(&cm->pending);
    core_free(cm->server_node);
    core_free(cm);
    mod->data = NULL;
}

/* §7: the server processes caps (for PEP's notifications, XEP-0163). */
static const char *const features[] = {NS_CAPS, NULL};

const sm_module_t sm_module_caps = {
    .name = "caps",
    .api = SM_MODULE_API,
    .features = features,
    .init = init,
    .fini = fini,
    .on_event = on_event,
    .on_presence = on_presence,
};
