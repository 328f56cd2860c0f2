/* SPDX-License-Identifier: MIT */
/* Stanza trees: building, copying, changing and reading them, all inside one arena per stanza. */
#include "xml/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/*
 * The sentinel's characters are only a fallback for code that prints it; its identity is its
 * address, which differs from every literal "jabber:client".
 */
const char xml_ns_content[] = "jabber:client";
const char xml_ns_xml[] = XMLS_NS_XML;

/* Enough for a reply or an error built by hand; parsed stanzas size their own first block. */
#define STANZA_FIRST_BLOCK 512

xml_stanza_t *xml_stanza_alloc(size_t first_block)
{
    core_arena_t a;
    core_arena_init(&a, first_block);
    xml_stanza_box_t *box = core_arena_alloc(&a, sizeof(*box));
    memset(box, 0, sizeof(*box));
    box->st.refs = 1;
    box->st.arena = a; /* from here on the arena lives inside the memory it owns */
    return &box->st;
}

void xml_stanza_drop_bytes(xml_stanza_t *st)
{
    xml_stanza_box_t *box = xml_stanza_box(st);
    if (box->bytes_heap)
        core_free(st->bytes);
    box->bytes_heap = false;
    st->bytes = NULL;
    st->bytes_len = 0;
    core_free(box->own);
    box->own = NULL;
    box->own_len = box->own_split = 0;
}

/* An element namespace stored for st: sentinels as they are, URIs copied or shared. */
static const char *ns_store(xml_stanza_t *st, const xml_node_t *parent, const char *ns)
{
    if (ns == NULL || ns == XMLS_NS_CONTENT || ns == xml_ns_xml)
        return ns;
    if (parent != NULL) {
        /* share the URI with the parent or the previous sibling when they have it */
        if (parent->ns != NULL && parent->ns != XMLS_NS_CONTENT && strcmp(parent->ns, ns) == 0)
            return parent->ns;
        const xml_node_t *prev = parent->last;
        if (prev != NULL && prev->ns != NULL && prev->ns != XMLS_NS_CONTENT &&
            strcmp(prev->ns, ns) == 0)
            return prev->ns;
    }
    if (strcmp(ns, XMLS_NS_XML) == 0)
        return xml_ns_xml;
    return core_arena_strndup(&st->arena, ns, strlen(ns));
}

static xml_node_t *element_new(xml_stanza_t *st, xml_node_t *parent, const char *ns,
                               const char *name)
{
    xml_node_t *n = xml_node_alloc(st);
    n->ns = ns_store(st, parent, ns);
    n->name = core_arena_strndup(&st->arena, name, strlen(name));
    if (parent != NULL)
        xml_node_link(parent, n);
    return n;
}

xml_stanza_t *xml_stanza_new(const char *ns, const char *name)
{
    xml_stanza_t *st = xml_stanza_alloc(STANZA_FIRST_BLOCK);
    st->root = element_new(st, NULL, ns, name);
    return st;
}

xml_stanza_t *xml_stanza_ref(xml_stanza_t *st)
{
    assert(st->refs > 0);
    st->refs++;
    return st;
}

void xml_stanza_unref(xml_stanza_t *st)
{
    if (st == NULL)
        return;
    assert(st->refs > 0);
    if (--st->refs > 0)
        return;
    xml_stanza_box_t *box = xml_stanza_box(st);
    xml_stanza_drop_bytes(st);
    core_free(box->content_heap);
    xml_stanza_unref(st->inner);
    xml_stanza_unref(box->base);
    /* The arena struct sits in its own first block: free through a copy. */
    core_arena_t a = st->arena;
    core_arena_free(&a);
}

bool xml_stanza_is_shared(const xml_stanza_t *st)
{
    const xml_stanza_box_t *box = (const xml_stanza_box_t *)st;
    return st->refs != 1 || box->frozen || box->base != NULL;
}

static void writable(xml_stanza_t *st)
{
    assert(!xml_stanza_is_shared(st));
    if (st->bytes != NULL)
        xml_stanza_drop_bytes(st);
}

void xml_stanza_changed(xml_stanza_t *st)
{
    writable(st);
}

/* ---- copying ---- */

static bool is_content_uri(const char *ns)
{
    return ns != NULL && ns != XMLS_NS_CONTENT &&
        (strcmp(ns, XMLS_NS_CLIENT) == 0 || strcmp(ns, XMLS_NS_SERVER) == 0 ||
         strcmp(ns, XMLS_NS_COMPONENT) == 0);
}

/*
 * Copies one node (not its children) under dparent (NULL: as a root). content_uri non-NULL
 * turns elements in that URI whose new parent is XMLS_NS_CONTENT (or which are the root) into
 * XMLS_NS_CONTENT, as the parser would have.
 */
static xml_node_t *copy_one(xml_stanza_t *st, xml_node_t *dparent, const xml_node_t *s,
                            const char *content_uri)
{
    xml_node_t *d = xml_node_alloc(st);
    if (s->name == NULL) {
        d->text = core_arena_strndup(&st->arena, s->text, s->text_len);
        d->text_len = s->text_len;
    } else {
        const char *ns = s->ns;
        if (content_uri != NULL && ns != NULL && ns != XMLS_NS_CONTENT &&
            (dparent == NULL || dparent->ns == XMLS_NS_CONTENT) && strcmp(ns, content_uri) == 0)
            ns = XMLS_NS_CONTENT;
        d->ns = ns_store(st, dparent, ns);
        d->name = core_arena_strndup(&st->arena, s->name, strlen(s->name));
        if (s->nattrs > 0) {
            d->attrs = core_arena_alloc(&st->arena, s->nattrs * sizeof(*d->attrs));
            d->nattrs = d->attrs_cap = s->nattrs;
            const char *prev_ns = NULL;
            for (unsigned i = 0; i < s->nattrs; i++) {
                const xml_attr_t *sa = &s->attrs[i];
                xml_attr_t *da = &d->attrs[i];
                if (sa->ns == NULL || sa->ns == xml_ns_xml)
                    da->ns = sa->ns;
                else if (prev_ns != NULL && strcmp(prev_ns, sa->ns) == 0)
                    da->ns = prev_ns;
                else
                    da->ns = prev_ns = ns_store(st, NULL, sa->ns);
                da->name = core_arena_strndup(&st->arena, sa->name, strlen(sa->name));
                da->value = core_arena_strndup(&st->arena, sa->value, sa->value_len);
                da->value_len = sa->value_len;
            }
        }
    }
    if (dparent != NULL)
        xml_node_link(dparent, d);
    return d;
}

/*
 * Copies src and its subtree under dparent, without recursion (trees can be deep). The walk
 * counts levels instead of comparing parents with src: a readdressed root's children have
 * another root as their parent.
 */
static xml_node_t *copy_tree(xml_stanza_t *st, xml_node_t *dparent, const xml_node_t *src,
                             const char *content_uri)
{
    xml_node_t *top = copy_one(st, dparent, src, content_uri);
    const xml_node_t *s = src->first;
    xml_node_t *d = top; /* the copy's parent of s */
    size_t level = 1;
    while (s != NULL) {
        xml_node_t *c = copy_one(st, d, s, content_uri);
        if (s->first != NULL) {
            s = s->first;
            d = c;
            level++;
            continue;
        }
        while (s->next == NULL && --level > 0) {
            s = s->parent;
            d = d->parent;
        }
        if (level == 0)
            break;
        s = s->next;
    }
    return top;
}

xml_stanza_t *xml_stanza_copy(const xml_stanza_t *st)
{
    const xml_stanza_box_t *box = (const xml_stanza_box_t *)st;
    xml_stanza_t *c =
        xml_stanza_alloc(st->bytes_len > 0 ? st->bytes_len * 2 + 256 : STANZA_FIRST_BLOCK);
    c->root = copy_tree(c, NULL, st->root, NULL);
    if (st->inner != NULL) {
        c->inner = xml_stanza_ref(st->inner);
    } else if (st->bytes != NULL) {
        /* The same tree means the same bytes: a copy that is then only added to (a delay, a
         * stanza-id) need not be serialised again (xml_stanza_append_copy). */
        c->bytes = core_malloc(st->bytes_len + 1);
        memcpy(c->bytes, st->bytes, st->bytes_len);
        c->bytes[st->bytes_len] = '\0';
        c->bytes_len = st->bytes_len;
        xml_stanza_box(c)->bytes_heap = true;
    } else if (box->base != NULL) {
        /* A readdressed stanza's bytes: its start tag, then the content it shares. */
        core_buf_t b = {0};
        xml_serialize_start(&b, st->root, XMLS_NS_CONTENT, false);
        if (st->root->first != NULL) {
            core_span_t content = xml_frozen_content(box->content_of);
            core_buf_append(&b, content.data, content.len);
        }
        c->bytes = core_buf_steal(&b, &c->bytes_len);
        xml_stanza_box(c)->bytes_heap = true;
    }
    return c;
}

xml_stanza_t *xml_stanza_from_node(const xml_node_t *n)
{
    xml_stanza_t *c = xml_stanza_alloc(STANZA_FIRST_BLOCK);
    c->root = copy_tree(c, NULL, n, is_content_uri(n->ns) ? n->ns : NULL);
    return c;
}

/* ---- changing ---- */

xml_node_t *xml_node_add_element(xml_stanza_t *st, xml_node_t *parent, const char *ns,
                                 const char *name)
{
    assert(parent != NULL && parent->name != NULL);
    writable(st);
    return element_new(st, parent, ns, name);
}

void xml_node_add_text(xml_stanza_t *st, xml_node_t *parent, const char *text, size_t len)
{
    assert(parent != NULL && parent->name != NULL);
    writable(st);
    if (len == 0)
        return;
    xml_node_t *last = parent->last;
    if (last != NULL && last->name == NULL) {
        char *merged = core_arena_alloc(&st->arena, last->text_len + len + 1);
        memcpy(merged, last->text, last->text_len);
        memcpy(merged + last->text_len, text, len);
        merged[last->text_len + len] = '\0';
        last->text = merged;
        last->text_len += len;
        return;
    }
    xml_node_t *t = xml_node_alloc(st);
    t->text = core_arena_strndup(&st->arena, text, len);
    t->text_len = len;
    xml_node_link(parent, t);
}

/* Names differ in their first byte far more often than not: skip the call then. */
static inline bool name_eq(const char *a, const char *b)
{
    return a[0] == b[0] && strcmp(a, b) == 0;
}

static bool attr_is(const xml_attr_t *a, const char *ns, const char *name)
{
    if (!name_eq(a->name, name))
        return false;
    if (ns == NULL || a->ns == NULL)
        return ns == a->ns;
    return a->ns == ns || strcmp(a->ns, ns) == 0;
}

void xml_node_set_attr(xml_stanza_t *st, xml_node_t *n, const char *ns, const char *name,
                       const char *value)
{
    assert(n != NULL && n->name != NULL);
    /* Namespace declarations are the serialiser's to write, never attributes. */
    assert(ns != NULL || name[0] != 'x' ||
           (strcmp(name, "xmlns") != 0 && strncmp(name, "xmlns:", 6) != 0));
    writable(st);
    unsigned i = 0;
    while (i < n->nattrs && !attr_is(&n->attrs[i], ns, name))
        i++;
    if (value == NULL) {
        if (i < n->nattrs) {
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->nattrs - i - 1) * sizeof(*n->attrs));
            n->nattrs--;
        }
        return;
    }
    size_t len = strlen(value);
    if (i == n->nattrs) {
        if (n->nattrs == n->attrs_cap) {
            unsigned cap = n->attrs_cap ? n->attrs_cap * 2 : 4;
            xml_attr_t *grown = core_arena_alloc(&st->arena, cap * sizeof(*grown));
            if (n->nattrs > 0)
                memcpy(grown, n->attrs, n->nattrs * sizeof(*grown));
            n->attrs = grown;
            n->attrs_cap = cap;
        }
        xml_attr_t *a = &n->attrs[n->nattrs++];
        a->ns = ns_store(st, NULL, ns);
        a->name = core_arena_strndup(&st->arena, name, strlen(name));
    }
    n->attrs[i].value = core_arena_strndup(&st->arena, value, len);
    n->attrs[i].value_len = len;
}

xml_node_t *xml_node_add_copy(xml_stanza_t *st, xml_node_t *parent, const xml_node_t *src)
{
    assert(parent != NULL && parent->name != NULL);
    writable(st);
    return copy_tree(st, parent, src, NULL);
}

void xml_node_unlink(xml_stanza_t *st, xml_node_t *n)
{
    writable(st);
    xml_node_t *parent = n->parent;
    if (parent == NULL)
        return;
    xml_node_t *prev = NULL;
    for (xml_node_t *c = parent->first; c != n; c = c->next) {
        assert(c != NULL);
        prev = c;
    }
    if (prev != NULL)
        prev->next = n->next;
    else
        parent->first = n->next;
    if (parent->last == n)
        parent->last = prev;
    n->parent = NULL;
    n->next = NULL;
}

/* ---- reading ---- */

const char *xml_node_attr(const xml_node_t *n, const char *name)
{
    for (unsigned i = 0; i < n->nattrs; i++)
        if (n->attrs[i].ns == NULL && name_eq(n->attrs[i].name, name))
            return n->attrs[i].value;
    return NULL;
}

const char *xml_node_attr_ns(const xml_node_t *n, const char *ns, const char *name)
{
    for (unsigned i = 0; i < n->nattrs; i++)
        if (attr_is(&n->attrs[i], ns, name))
            return n->attrs[i].value;
    return NULL;
}

bool xml_node_is(const xml_node_t *n, const char *ns, const char *name)
{
    if (n == NULL || n->name == NULL)
        return false;
    if (name != NULL && !name_eq(n->name, name))
        return false;
    return ns == NULL || xml_ns_same(n->ns, ns);
}

xml_node_t *xml_node_child(const xml_node_t *n, const char *ns, const char *name)
{
    for (xml_node_t *c = n->first; c != NULL; c = c->next)
        if (xml_node_is(c, ns, name))
            return c;
    return NULL;
}

xml_node_t *xml_node_first_element(const xml_node_t *n)
{
    xml_node_t *c = n->first;
    while (c != NULL && c->name == NULL)
        c = c->next;
    return c;
}

xml_node_t *xml_node_next_element(const xml_node_t *n)
{
    xml_node_t *c = n->next;
    while (c != NULL && c->name == NULL)
        c = c->next;
    return c;
}

const char *xml_node_text(const xml_node_t *n, size_t *len)
{
    /* Text-only means one text child: the parser and xml_node_add_text merge adjacent text. */
    const xml_node_t *c = n->first;
    if (c != NULL && c->next == NULL && c->name == NULL) {
        if (len != NULL)
            *len = c->text_len;
        return c->text;
    }
    if (len != NULL)
        *len = 0;
    return "";
}

xml_stanza_kind_t xml_stanza_kind(const xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    if (r == NULL || r->ns != XMLS_NS_CONTENT)
        return XMLS_KIND_OTHER;
    switch (r->name[0]) {
    case 'm':
        return strcmp(r->name, "message") == 0 ? XMLS_KIND_MESSAGE : XMLS_KIND_OTHER;
    case 'p':
        return strcmp(r->name, "presence") == 0 ? XMLS_KIND_PRESENCE : XMLS_KIND_OTHER;
    case 'i':
        return strcmp(r->name, "iq") == 0 ? XMLS_KIND_IQ : XMLS_KIND_OTHER;
    default:
        return XMLS_KIND_OTHER;
    }
}

const char *xml_stanza_to(const xml_stanza_t *st)
{
    return xml_node_attr(st->root, "to");
}

const char *xml_stanza_from(const xml_stanza_t *st)
{
    return xml_node_attr(st->root, "from");
}

const char *xml_stanza_type(const xml_stanza_t *st)
{
    return xml_node_attr(st->root, "type");
}

const char *xml_stanza_id(const xml_stanza_t *st)
{
    return xml_node_attr(st->root, "id");
}

xml_stanza_t *xml_stanza_error_reply(const xml_stanza_t *st, core_stanza_err_t cond)
{
    const char *type = xml_stanza_type(st);
    if (type != NULL && strcmp(type, "error") == 0)
        return NULL;
    xml_stanza_t *b = xml_stanza_copy(st);
    const char *to = xml_stanza_to(st);
    const char *from = xml_stanza_from(st);
    xml_node_set_attr(b, b->root, NULL, "to", from);
    xml_node_set_attr(b, b->root, NULL, "from", to);
    xml_stanza_make_error(b, cond, NULL, false);
    return b;
}

xml_node_t *xml_stanza_make_error(xml_stanza_t *st, core_stanza_err_t cond, const char *type,
                                  bool legacy_code)
{
    xml_node_set_attr(st, st->root, NULL, "type", "error");
    xml_node_t *e = xml_node_add_element(st, st->root, XMLS_NS_CONTENT, "error");
    if (legacy_code) {
        char code[16];
        snprintf(code, sizeof(code), "%d", core_stanza_err_code(cond));
        xml_node_set_attr(st, e, NULL, "code", code);
    }
    xml_node_set_attr(st, e, NULL, "type", type != NULL ? type : core_stanza_err_type(cond));
    xml_node_add_element(st, e, CORE_NS_STANZA_ERRORS, core_stanza_err_name(cond));
    return e;
}

xml_stanza_t *xml_envelope_new(const char *ns, const char *name, xml_stanza_t *inner)
{
    xml_stanza_t *env = xml_stanza_new(ns, name);
    env->inner = xml_stanza_ref(inner);
    return env;
}

const xml_node_t *xml_envelope_child(const xml_stanza_t *env)
{
    return env->inner != NULL ? env->inner->root : xml_node_first_element(env->root);
}

xml_stanza_t *xml_envelope_open(const xml_stanza_t *env)
{
    if (env->inner != NULL)
        return xml_stanza_ref(env->inner);
    const xml_node_t *child = xml_node_first_element(env->root);
    return child != NULL ? xml_stanza_from_node(child) : NULL;
}

void xml_stanza_set_root_attr(xml_stanza_t *st, const char *name, const char *value)
{
    xml_node_t *r = st->root;
    size_t nlen = strlen(r->name);
    bool splice = st->bytes != NULL && value != NULL && xml_node_attr(r, name) == NULL &&
        st->bytes_len > nlen + 1 && st->bytes[0] == '<' &&
        memcmp(st->bytes + 1, r->name, nlen) == 0 &&
        strchr(" \t\r\n/>", st->bytes[nlen + 1]) != NULL;
    core_buf_t b = {0};
    if (splice) {
        /* "<name" + " attr=\"value\"" + the rest as it was. */
        core_buf_reserve(&b, st->bytes_len + strlen(name) + strlen(value) + 16);
        core_buf_append(&b, st->bytes, nlen + 1);
        core_buf_append(&b, " ", 1);
        core_buf_append_str(&b, name);
        core_buf_append(&b, "=\"", 2);
        xml_escape(&b, value, strlen(value), true);
        core_buf_append(&b, "\"", 1);
        core_buf_append(&b, st->bytes + nlen + 1, st->bytes_len - nlen - 1);
    }
    xml_node_set_attr(st, r, NULL, name, value);
    if (splice) {
        st->bytes = core_buf_steal(&b, &st->bytes_len);
        xml_stanza_box(st)->bytes_heap = true;
    }
}

/* Where the root's content ends in its cached bytes: the offset of "</name>" (or of the "/>"
 * of an empty root, *empty set), or -1 when the bytes do not end as expected. */
static long root_end(const xml_stanza_t *st, bool *empty)
{
    const xml_node_t *r = st->root;
    size_t nlen = strlen(r->name), n = st->bytes_len;
    const char *b = st->bytes;
    *empty = r->first == NULL && n >= 2 && memcmp(b + n - 2, "/>", 2) == 0;
    if (*empty)
        return (long)(n - 2);
    if (n < nlen + 3 || memcmp(b + n - nlen - 3, "</", 2) != 0 ||
        memcmp(b + n - nlen - 1, r->name, nlen) != 0 || b[n - 1] != '>')
        return -1;
    return (long)(n - nlen - 3);
}

xml_node_t *xml_stanza_append_copy(xml_stanza_t *st, const xml_node_t *child)
{
    assert(!xml_stanza_is_shared(st) && st->inner == NULL);
    bool empty = false;
    long at = st->bytes != NULL ? root_end(st, &empty) : -1;
    core_buf_t b = {0};
    if (at >= 0) {
        const xml_node_t *r = st->root;
        core_buf_reserve(&b, st->bytes_len + 256);
        core_buf_append(&b, st->bytes, (size_t)at);
        if (empty)
            core_buf_append(&b, ">", 1);
        xml_node_serialize(child, &b);
        if (empty) {
            core_buf_append(&b, "</", 2);
            core_buf_append_str(&b, r->name);
            core_buf_append(&b, ">", 1);
        } else {
            core_buf_append(&b, st->bytes + at, st->bytes_len - (size_t)at);
        }
    }
    xml_node_t *copy = xml_node_add_copy(st, st->root, child);
    if (at >= 0) {
        st->bytes = core_buf_steal(&b, &st->bytes_len);
        xml_stanza_box(st)->bytes_heap = true;
    }
    return copy;
}

xml_stanza_t *xml_stanza_iq_result(const xml_stanza_t *st)
{
    xml_stanza_t *r = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(r, r->root, NULL, "type", "result");
    xml_node_set_attr(r, r->root, NULL, "id", xml_stanza_id(st));
    xml_node_set_attr(r, r->root, NULL, "from", xml_stanza_to(st));
    xml_node_set_attr(r, r->root, NULL, "to", xml_stanza_from(st));
    return r;
}
