/* SPDX-License-Identifier: MIT */
/* Readdressed stanzas: one payload with many addresses, shared and serialised once (fan-out). */
#include "xml/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <string.h>

/*
 * Where the root's content starts in st's bytes (just after its start tag), or 0 when those
 * bytes cannot be cut there: the root is written with a prefix, declares prefixes (which its
 * content may use, and which our start tag would not declare), or does not end with its plain
 * end tag. Our serialiser's bytes always pass; the parser's, as they came, mostly do.
 */
static size_t content_start(const xml_stanza_t *st)
{
    const char *b = st->bytes, *end = st->bytes + st->bytes_len;
    const char *name = st->root->name;
    size_t nlen = strlen(name);
    if (st->bytes_len < 2 * nlen + 5 || b[0] != '<' || memcmp(b + 1, name, nlen) != 0 ||
        memcmp(end - nlen - 1, name, nlen) != 0 || memcmp(end - nlen - 3, "</", 2) != 0 ||
        end[-1] != '>')
        return 0;
    const char *p = b + 1 + nlen;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
            p++;
        if (p == end || *p == '/')
            return 0; /* "/>": no content, although the tree has some */
        if (*p == '>')
            return (size_t)(p + 1 - b);
        const char *an = p;
        while (p < end && *p != '=' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
            p++;
        if (p - an > 6 && memcmp(an, "xmlns:", 6) == 0)
            return 0;
        while (p < end && *p != '\'' && *p != '"')
            p++;
        if (p == end)
            return 0;
        const char *close = memchr(p + 1, *p, (size_t)(end - p - 1));
        if (close == NULL)
            return 0;
        p = close + 1;
    }
}

core_span_t xml_frozen_content(xml_stanza_t *st)
{
    xml_stanza_box_t *box = xml_stanza_box(st);
    assert(box->frozen && st->root->first != NULL);
    if (box->content != NULL)
        return (core_span_t){box->content, box->content_len};
    size_t len;
    xml_stanza_bytes(st, &len);
    size_t at = content_start(st);
    if (at > 0) {
        box->content = st->bytes + at;
        box->content_len = len - at;
        return (core_span_t){box->content, box->content_len};
    }
    /* Serialised apart, in the default namespace the root's start tag sets. */
    core_buf_t b = {0};
    core_buf_t head = {0};
    const char *ctx = xml_serialize_start(&head, st->root, XMLS_NS_CONTENT, true);
    core_buf_release(&head);
    for (const xml_node_t *c = st->root->first; c != NULL; c = c->next)
        xml_serialize_in(&b, c, ctx);
    xml_serialize_end(&b, st->root);
    box->content_heap = core_buf_steal(&b, &box->content_len);
    box->content = box->content_heap;
    return (core_span_t){box->content, box->content_len};
}

size_t xml_readdressed_pieces(xml_stanza_t *st, core_span_t out[XMLS_PIECES_MAX])
{
    xml_stanza_box_t *box = xml_stanza_box(st);
    if (box->own == NULL) {
        core_buf_t b = {0};
        xml_serialize_start(&b, st->root, XMLS_NS_CONTENT, false);
        box->own = core_buf_steal(&b, &box->own_len);
        box->own_split = box->own_len;
    }
    out[0] = (core_span_t){box->own, box->own_len};
    if (st->root->first == NULL)
        return 1;
    out[1] = xml_frozen_content(box->content_of);
    return 2;
}

/* The readdressed stanza, with 'id' set too when set_id (id NULL: removed). */
static xml_stanza_t *readdress(xml_stanza_t *src, const char *from, const char *to, bool set_id,
                               const char *id)
{
    assert(src->inner == NULL && src->root != NULL && src->root->name != NULL);
    xml_stanza_box_t *sbox = xml_stanza_box(src);
    const xml_node_t *sr = src->root;
    /* One arena block holds it all: attributes that are added get their slots up front. */
    const char *const values[3] = {from, to, id};
    static const char *const names[3] = {"from", "to", "id"};
    unsigned cap = sr->nattrs;
    size_t strings = 0;
    for (int i = 0; i < (set_id ? 3 : 2); i++) {
        if (values[i] != NULL) {
            strings += strlen(values[i]) + 8;
            cap += xml_node_attr(sr, names[i]) == NULL;
        }
    }
    size_t need =
        sizeof(xml_stanza_box_t) + sizeof(xml_node_t) + cap * sizeof(xml_attr_t) + strings + 64;
    xml_stanza_t *st = xml_stanza_alloc(need);
    xml_node_t *r = xml_node_alloc(st);
    /* Names and the namespace stay in src's arena, which the reference below keeps. */
    r->ns = sr->ns;
    r->name = sr->name;
    if (cap > 0) {
        r->attrs = core_arena_alloc(&st->arena, cap * sizeof(*r->attrs));
        if (sr->nattrs > 0)
            memcpy(r->attrs, sr->attrs, sr->nattrs * sizeof(*r->attrs));
        r->nattrs = sr->nattrs;
        r->attrs_cap = cap;
    }
    st->root = r;
    /* The same changes, in the same order, as on a copy: the same attributes, the same bytes. */
    xml_node_set_attr(st, r, NULL, "from", from);
    xml_node_set_attr(st, r, NULL, "to", to);
    if (set_id)
        xml_node_set_attr(st, r, NULL, "id", id);
    /* From here on the children are src's: nothing may change this tree (writable asserts). */
    r->first = sr->first;
    r->last = sr->last;
    xml_stanza_box_t *box = xml_stanza_box(st);
    sbox->frozen = true;
    box->base = xml_stanza_ref(src);
    box->content_of = sbox->base != NULL ? sbox->content_of : src;
    xml_stanza_box(box->content_of)->frozen = true;
    return st;
}

xml_stanza_t *xml_stanza_readdress(xml_stanza_t *src, const char *from, const char *to)
{
    return readdress(src, from, to, false, NULL);
}

xml_stanza_t *xml_stanza_readdress_id(xml_stanza_t *src, const char *from, const char *to,
                                      const char *id)
{
    return readdress(src, from, to, true, id);
}
