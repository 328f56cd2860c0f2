/* SPDX-License-Identifier: MIT */
/* Client state indication (XEP-0352): what can wait is held while the client is inactive. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <string.h>

/*
 * Payloads that do not make a message urgent (XEP-0352 §3.2 suggests chat states; receipts
 * and markers are the same kind of bookkeeping), with what travels with them.
 */
static const char *const quiet_ns[] = {
    "http://jabber.org/protocol/chatstates", /* XEP-0085 */
    "urn:xmpp:receipts", /* XEP-0184 */
    "urn:xmpp:chat-markers:0", /* XEP-0333 */
    "urn:xmpp:delay", /* XEP-0203 */
    "urn:xmpp:sid:0", /* XEP-0359 */
    "urn:xmpp:hints", /* XEP-0334 */
};

static bool quiet(const char *ns)
{
    for (size_t i = 0; ns != NULL && i < sizeof(quiet_ns) / sizeof(quiet_ns[0]); i++) {
        if (strcmp(ns, quiet_ns[i]) == 0)
            return true;
    }
    return false;
}

/* From the client's own account (its bare JID or one of its resources). */
static bool own_account(const char *from, const jid_t *own)
{
    return own->full != NULL && strncmp(from, own->full, own->bare_len) == 0 &&
        (from[own->bare_len] == '\0' || from[own->bare_len] == '/');
}

c2s_csi_class_t c2s_csi_classify(const xml_stanza_t *st, const jid_t *own)
{
    const char *type = xml_stanza_type(st);
    const char *from = xml_stanza_from(st);
    switch (xml_stanza_kind(st)) {
    case XMLS_KIND_PRESENCE:
        /* Subscription requests and errors want the user; so does its own presence. */
        if (type != NULL && strcmp(type, "unavailable") != 0)
            return C2S_CSI_URGENT;
        if (from == NULL || own_account(from, own))
            return C2S_CSI_URGENT;
        return C2S_CSI_LATEST;
    case XMLS_KIND_MESSAGE:
        if (type != NULL && strcmp(type, "error") == 0)
            return C2S_CSI_URGENT;
        for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
             n = xml_node_next_element(n)) {
            /* A body, a subject, anything unknown is for the user; a thread goes along. */
            bool ok = n->ns == XMLS_NS_CONTENT ? strcmp(n->name, "thread") == 0 : quiet(n->ns);
            if (!ok)
                return C2S_CSI_URGENT;
        }
        return C2S_CSI_HOLD;
    default:
        return C2S_CSI_URGENT;
    }
}

void c2s_csi_add(c2s_csi_t *q, xml_stanza_t *st, c2s_csi_class_t cls)
{
    const char *from = xml_stanza_from(st);
    for (size_t i = 0; cls == C2S_CSI_LATEST && from != NULL && i < q->n; i++) {
        const char *f = xml_stanza_from(q->held[i]);
        if (xml_stanza_kind(q->held[i]) == XMLS_KIND_PRESENCE && f != NULL &&
            strcmp(f, from) == 0) {
            /* Only the latest presence of a sender matters; it takes the place at the end. */
            xml_stanza_unref(q->held[i]);
            memmove(&q->held[i], &q->held[i + 1], (q->n - i - 1) * sizeof(q->held[0]));
            q->n--;
            break;
        }
    }
    if (q->n == q->cap) {
        q->cap = q->cap != 0 ? q->cap * 2 : 8;
        q->held = core_realloc(q->held, q->cap * sizeof(q->held[0]));
    }
    q->held[q->n++] = xml_stanza_ref(st);
}

void c2s_csi_clear(c2s_csi_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        xml_stanza_unref(q->held[i]);
    core_free(q->held);
    *q = (c2s_csi_t){0};
}

xml_stanza_t **c2s_csi_take(c2s_conn_t *c, size_t *n)
{
    *n = 0;
    if (c->csi == NULL)
        return NULL;
    xml_stanza_t **held = c->csi->held;
    *n = c->csi->n;
    core_free(c->csi);
    c->csi = NULL;
    return held;
}

size_t c2s_csi_messages(const c2s_conn_t *c)
{
    size_t n = 0;
    for (size_t i = 0; c->csi != NULL && i < c->csi->n; i++)
        n += xml_stanza_kind(c->csi->held[i]) == XMLS_KIND_MESSAGE;
    return n;
}

void c2s_csi_flush(c2s_conn_t *c)
{
    if (c->csi == NULL || c->csi->n == 0)
        return;
    /* Taken out first: writing may end the session, never this loop's array. */
    c2s_csi_t q = *c->csi;
    *c->csi = (c2s_csi_t){0};
    for (size_t i = 0; i < q.n; i++)
        c2s_conn_write(c, q.held[i]);
    c2s_csi_clear(&q);
}

void c2s_csi_free(c2s_conn_t *c)
{
    if (c->csi == NULL)
        return;
    c2s_csi_clear(c->csi);
    core_free(c->csi);
    c->csi = NULL;
}

bool c2s_csi_element(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *n = st->root;
    if (n->ns == NULL || strcmp(n->ns, C2S_NS_CSI) != 0)
        return false;
    if (strcmp(n->name, "inactive") == 0) {
        if (c->csi == NULL)
            c->csi = core_calloc(1, sizeof(*c->csi));
    } else if (strcmp(n->name, "active") == 0) {
        /* §5.1: what was held goes out before the client's next element is processed. */
        c2s_csi_flush(c);
        c2s_csi_free(c);
    }
    return true;
}

bool c2s_csi_hold(c2s_conn_t *c, xml_stanza_t *st)
{
    c2s_csi_class_t cls = c2s_csi_classify(st, &c->jid);
    if (cls == C2S_CSI_URGENT) {
        c2s_csi_flush(c);
        return false;
    }
    c2s_csi_add(c->csi, st, cls);
    if (c->csi->n >= (size_t)c->c2s->cfg->csi_max_held)
        c2s_csi_flush(c);
    return true;
}
