/* SPDX-License-Identifier: MIT */
/* The handler registry: stanzas offered to handlers by kind, type and payload namespace. */
#include "xml/dispatch.h"

#include "xml/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

typedef struct entry {
    xml_match_t m;
    xml_handler_fn fn;
    void *ud;
    unsigned rank; /* 2: payload ns and name, 1: ns only, 0: no payload */
} entry_t;

/* One list per stanza kind, each in registration order. */
typedef struct entry_list {
    entry_t *v;
    unsigned n, cap;
} entry_list_t;

struct xml_dispatch {
    entry_list_t kinds[3];
};

/* The index of kind's list, or -1 for kinds nobody registers for. */
static int kind_index(xml_stanza_kind_t kind)
{
    switch (kind) {
    case XMLS_KIND_MESSAGE:
        return 0;
    case XMLS_KIND_PRESENCE:
        return 1;
    case XMLS_KIND_IQ:
        return 2;
    default:
        return -1;
    }
}

typedef struct type_name {
    const char *name;
    xml_stanza_type_t bit;
} type_name_t;

static const type_name_t iq_types[] = {
    {"get", XMLS_TYPE_GET},
    {"set", XMLS_TYPE_SET},
    {"result", XMLS_TYPE_RESULT},
    {"error", XMLS_TYPE_ERROR},
};
static const type_name_t message_types[] = {
    {"normal", XMLS_TYPE_NORMAL},       {"chat", XMLS_TYPE_CHAT},
    {"groupchat", XMLS_TYPE_GROUPCHAT}, {"headline", XMLS_TYPE_HEADLINE},
    {"error", XMLS_TYPE_ERROR},
};
static const type_name_t presence_types[] = {
    {"unavailable", XMLS_TYPE_UNAVAILABLE},
    {"subscribe", XMLS_TYPE_SUBSCRIBE},
    {"subscribed", XMLS_TYPE_SUBSCRIBED},
    {"unsubscribe", XMLS_TYPE_UNSUBSCRIBE},
    {"unsubscribed", XMLS_TYPE_UNSUBSCRIBED},
    {"probe", XMLS_TYPE_PROBE},
    {"error", XMLS_TYPE_ERROR},
};

static xml_stanza_type_t lookup(const type_name_t *t, size_t n, const char *type,
                                xml_stanza_type_t absent)
{
    if (type == NULL)
        return absent;
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, type) == 0)
            return t[i].bit;
    return XMLS_TYPE_INVALID;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

xml_stanza_type_t xml_stanza_type_bit(const xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    switch (xml_stanza_kind(st)) {
    case XMLS_KIND_IQ:
        /* RFC 6120 §8.2.3: an iq has one of four types; none at all is no better. */
        return lookup(iq_types, COUNT(iq_types), type, XMLS_TYPE_INVALID);
    case XMLS_KIND_MESSAGE:
        /* RFC 6121 §5.2.2: no type means normal. */
        return lookup(message_types, COUNT(message_types), type, XMLS_TYPE_NORMAL);
    case XMLS_KIND_PRESENCE:
        /* RFC 6121 §4.7.1: no type means available. */
        return lookup(presence_types, COUNT(presence_types), type, XMLS_TYPE_AVAILABLE);
    default:
        return XMLS_TYPE_NONE;
    }
}

xml_dispatch_t *xml_dispatch_new(void)
{
    return core_calloc(1, sizeof(xml_dispatch_t));
}

void xml_dispatch_free(xml_dispatch_t *d)
{
    if (d == NULL)
        return;
    for (size_t k = 0; k < 3; k++)
        core_free(d->kinds[k].v);
    core_free(d);
}

static const unsigned iq_claim = XMLS_TYPE_GET | XMLS_TYPE_SET;

static bool claims_iq(const xml_match_t *m)
{
    return m->kind == XMLS_KIND_IQ && m->payload_ns != NULL &&
        (m->types == 0 || (m->types & iq_claim) != 0);
}

/* Two iq registrations overlap if some get or set payload would match both. */
static bool iq_overlap(const xml_match_t *a, const xml_match_t *b)
{
    unsigned ta = a->types ? a->types & iq_claim : iq_claim;
    unsigned tb = b->types ? b->types & iq_claim : iq_claim;
    if ((ta & tb) == 0 || !xml_ns_same(a->payload_ns, b->payload_ns))
        return false;
    return a->payload_name == NULL || b->payload_name == NULL ||
        strcmp(a->payload_name, b->payload_name) == 0;
}

int xml_dispatch_add(xml_dispatch_t *d, const xml_match_t *m, xml_handler_fn fn, void *ud)
{
    int k = kind_index(m->kind);
    if (k < 0 || fn == NULL)
        return -EINVAL;
    entry_list_t *l = &d->kinds[k];
    if (claims_iq(m)) {
        /* An iq get/set has exactly one owner (RFC 6120 §8.2.3), so claims must not overlap. */
        for (unsigned i = 0; i < l->n; i++)
            if (claims_iq(&l->v[i].m) && iq_overlap(&l->v[i].m, m))
                return -EEXIST;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 8;
        l->v = core_realloc(l->v, l->cap * sizeof(*l->v));
    }
    entry_t *e = &l->v[l->n++];
    e->m = *m;
    e->fn = fn;
    e->ud = ud;
    e->rank = m->payload_ns == NULL ? 0 : m->payload_name == NULL ? 1 : 2;
    return 0;
}

/* The payload e wants in st, or NULL if st has none; *ok false if e does not match. */
static const xml_node_t *match_payload(const entry_t *e, const xml_stanza_t *st,
                                       xml_stanza_kind_t kind, bool *ok)
{
    *ok = true;
    if (e->m.payload_ns == NULL)
        return NULL;
    if (kind == XMLS_KIND_IQ) {
        const xml_node_t *c = xml_node_first_element(st->root);
        *ok = xml_node_is(c, e->m.payload_ns, e->m.payload_name);
        return c;
    }
    const xml_node_t *c = xml_node_child(st->root, e->m.payload_ns, e->m.payload_name);
    *ok = c != NULL;
    return c;
}

xml_handler_result_t xml_dispatch_run(const xml_dispatch_t *d, xml_stanza_t *st)
{
    xml_stanza_kind_t kind = xml_stanza_kind(st);
    int k = kind_index(kind);
    if (k < 0)
        return XMLS_PASS;
    const entry_list_t *l = &d->kinds[k];
    unsigned bit = xml_stanza_type_bit(st);
    for (unsigned rank = 3; rank-- > 0;) {
        for (unsigned i = 0; i < l->n; i++) {
            const entry_t *e = &l->v[i];
            if (e->rank != rank || (e->m.types != 0 && (e->m.types & bit) == 0))
                continue;
            bool ok;
            const xml_node_t *payload = match_payload(e, st, kind, &ok);
            if (!ok)
                continue;
            if (e->fn(e->ud, st, payload) == XMLS_HANDLED)
                return XMLS_HANDLED;
        }
    }
    return XMLS_PASS;
}

void xml_dispatch_each_ns(const xml_dispatch_t *d, void (*fn)(void *ud, const char *ns), void *ud)
{
    for (size_t k = 0; k < 3; k++) {
        const entry_list_t *l = &d->kinds[k];
        for (unsigned i = 0; i < l->n; i++) {
            const char *ns = l->v[i].m.payload_ns;
            if (ns == NULL || ns == XMLS_NS_CONTENT)
                continue;
            bool seen = false;
            for (size_t k2 = 0; k2 <= k && !seen; k2++) {
                const entry_list_t *l2 = &d->kinds[k2];
                unsigned end = k2 == k ? i : l2->n;
                for (unsigned j = 0; j < end && !seen; j++)
                    seen = xml_ns_same(l2->v[j].m.payload_ns, ns);
            }
            if (!seen)
                fn(ud, ns);
        }
    }
}
