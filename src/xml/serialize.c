/* SPDX-License-Identifier: MIT */
/* The serialiser: the only code in Parley that writes XML, escaping every value it writes. */
#include "xml/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

enum {
    ESC_TEXT = 1, /* must be escaped in character data */
    ESC_ATTR = 2, /* must be escaped in a "-quoted attribute value */
};

/*
 * '>' in text guards "]]>"; '\r' in text and '\t' '\n' '\r' in attribute values would not
 * survive the end-of-line and attribute-value normalisation of XML 1.0 §2.11 and §3.3.3.
 */
static const unsigned char esc_class[256] = {
    ['&'] = ESC_TEXT | ESC_ATTR,  ['<'] = ESC_TEXT | ESC_ATTR, ['>'] = ESC_TEXT,  ['"'] = ESC_ATTR,
    ['\r'] = ESC_TEXT | ESC_ATTR, ['\n'] = ESC_ATTR,           ['\t'] = ESC_ATTR,
};

static const char *esc_ref(unsigned char c, size_t *len)
{
    switch (c) {
    case '&':
        *len = 5;
        return "&amp;";
    case '<':
        *len = 4;
        return "&lt;";
    case '>':
        *len = 4;
        return "&gt;";
    case '"':
        *len = 6;
        return "&quot;";
    case '\r':
        *len = 5;
        return "&#13;";
    case '\n':
        *len = 5;
        return "&#10;";
    default: /* '\t' */
        *len = 4;
        return "&#9;";
    }
}

void xml_escape(core_buf_t *out, const char *s, size_t len, bool attr)
{
    const unsigned char mask = attr ? ESC_ATTR : ESC_TEXT;
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if ((esc_class[p[i]] & mask) == 0)
            continue;
        core_buf_append(out, s + run, i - run);
        size_t rlen;
        const char *ref = esc_ref(p[i], &rlen);
        core_buf_append(out, ref, rlen);
        run = i + 1;
    }
    core_buf_append(out, s + run, len - run);
}

static void put(core_buf_t *out, const char *s, size_t len)
{
    core_buf_append(out, s, len);
}

static void put_str(core_buf_t *out, const char *s)
{
    core_buf_append(out, s, strlen(s));
}

/*
 * The default namespace an element must be written in, given the one in effect around it
 * (ctx: XMLS_NS_CONTENT meaning "the stream's", a URI, or NULL for none). Sets *decl when
 * that differs from ctx, so an xmlns declaration is needed.
 */
static const char *default_ns(const char *ctx, const char *ns, bool *decl)
{
    const char *want = ns;
    if (ns == XMLS_NS_CONTENT && ctx != XMLS_NS_CONTENT)
        want = XMLS_NS_CLIENT; /* a stanza inside another namespace, as in XEP-0297 */
    *decl = !xml_ns_same(ctx, want);
    return *decl ? want : ctx;
}

static void put_prefix(core_buf_t *out, unsigned k)
{
    char tmp[16];
    size_t n = 0;
    tmp[n++] = 'n';
    tmp[n++] = 's';
    char digits[10];
    size_t d = 0;
    do {
        digits[d++] = (char)('0' + k % 10);
        k /= 10;
    } while (k > 0);
    while (d > 0)
        tmp[n++] = digits[--d];
    put(out, tmp, n);
}

/* Index of the first attribute of n in the same namespace as attribute i (itself if none). */
static unsigned first_with_ns(const xml_node_t *n, unsigned i)
{
    for (unsigned j = 0; j < i; j++)
        if (n->attrs[j].ns != NULL && strcmp(n->attrs[j].ns, n->attrs[i].ns) == 0)
            return j;
    return i;
}

static bool is_xml_ns(const char *ns)
{
    return ns == xml_ns_xml || strcmp(ns, XMLS_NS_XML) == 0;
}

/*
 * Namespaced attributes get prefixes ns<k>, k the index of the first attribute in that
 * namespace, declared on the element itself, so they cannot clash with anything around it.
 */
static void put_attrs(core_buf_t *out, const xml_node_t *n)
{
    for (unsigned i = 0; i < n->nattrs; i++) {
        const xml_attr_t *a = &n->attrs[i];
        if (a->ns == NULL || is_xml_ns(a->ns) || first_with_ns(n, i) != i)
            continue;
        put(out, " xmlns:", 7);
        put_prefix(out, i);
        put(out, "=\"", 2);
        xml_escape(out, a->ns, strlen(a->ns), true);
        put(out, "\"", 1);
    }
    for (unsigned i = 0; i < n->nattrs; i++) {
        const xml_attr_t *a = &n->attrs[i];
        put(out, " ", 1);
        if (a->ns != NULL) {
            if (is_xml_ns(a->ns)) {
                put(out, "xml", 3);
            } else {
                put_prefix(out, first_with_ns(n, i));
            }
            put(out, ":", 1);
        }
        put_str(out, a->name);
        put(out, "=\"", 2);
        xml_escape(out, a->value, a->value_len, true);
        put(out, "\"", 1);
    }
}

/* An element in the XML namespace, which may not be the default one (Namespaces §3). */
static bool xml_prefixed(const xml_node_t *n)
{
    return n->ns != NULL && n->ns != XMLS_NS_CONTENT && is_xml_ns(n->ns);
}

const char *xml_serialize_start(core_buf_t *out, const xml_node_t *n, const char *ctx, bool open)
{
    bool decl = false;
    const char *inner = ctx;
    put(out, "<", 1);
    if (xml_prefixed(n))
        put(out, "xml:", 4);
    else
        inner = default_ns(ctx, n->ns, &decl);
    put_str(out, n->name);
    if (decl) {
        put(out, " xmlns=\"", 8);
        if (inner != NULL)
            xml_escape(out, inner, strlen(inner), true);
        put(out, "\"", 1);
    }
    put_attrs(out, n);
    if (n->first == NULL && !open)
        put(out, "/>", 2);
    else
        put(out, ">", 1);
    return inner;
}

void xml_serialize_end(core_buf_t *out, const xml_node_t *n)
{
    put(out, "</", 2);
    if (xml_prefixed(n))
        put(out, "xml:", 4);
    put_str(out, n->name);
    put(out, ">", 1);
}

void xml_serialize_in(core_buf_t *out, const xml_node_t *n, const char *ctx0)
{
    if (n->name == NULL) {
        xml_escape(out, n->text, n->text_len, false);
        return;
    }
    /*
     * Iterative, with a stack of the default namespace in effect at each open element:
     * ctx[level - 1] is the one c is written in. The walk counts levels instead of comparing
     * parents with n: a readdressed root's children have another root as their parent.
     */
    const char *local[32];
    const char **ctx = local;
    size_t cap = sizeof(local) / sizeof(local[0]);
    ctx[0] = xml_serialize_start(out, n, ctx0, false);
    const xml_node_t *c = n->first;
    size_t level = 1;
    while (c != NULL) {
        if (c->name == NULL) {
            xml_escape(out, c->text, c->text_len, false);
        } else {
            const char *inner = xml_serialize_start(out, c, ctx[level - 1], false);
            if (c->first != NULL) {
                if (level == cap) {
                    cap *= 2;
                    if (ctx == local) {
                        ctx = core_malloc(cap * sizeof(*ctx));
                        memcpy(ctx, local, sizeof(local));
                    } else {
                        ctx = core_realloc(ctx, cap * sizeof(*ctx));
                    }
                }
                ctx[level++] = inner;
                c = c->first;
                continue;
            }
        }
        while (c->next == NULL && --level > 0) {
            c = c->parent;
            xml_serialize_end(out, c);
        }
        if (level == 0) {
            xml_serialize_end(out, n);
            break;
        }
        c = c->next;
    }
    if (ctx != local)
        core_free(ctx);
}

void xml_node_serialize(const xml_node_t *n, core_buf_t *out)
{
    xml_serialize_in(out, n, XMLS_NS_CONTENT);
}

/* The envelope's own bytes: <env attrs> (own_split bytes), then its own children and </env>.
 * The carried stanza goes between the two; it is at the top of the content namespace. */
static void envelope_own(xml_stanza_t *st)
{
    xml_stanza_box_t *box = xml_stanza_box(st);
    const xml_node_t *r = st->root;
    core_buf_t b = {0};
    const char *inner = xml_serialize_start(&b, r, XMLS_NS_CONTENT, true);
    box->own_split = b.len;
    for (const xml_node_t *c = r->first; c != NULL; c = c->next)
        xml_serialize_in(&b, c, inner);
    xml_serialize_end(&b, r);
    box->own = core_buf_steal(&b, &box->own_len);
}

size_t xml_stanza_pieces(xml_stanza_t *st, core_span_t out[XMLS_PIECES_MAX])
{
    xml_stanza_box_t *box = xml_stanza_box(st);
    if (st->bytes != NULL) {
        out[0] = (core_span_t){st->bytes, st->bytes_len};
        return 1;
    }
    if (box->base != NULL)
        return xml_readdressed_pieces(st, out);
    if (st->inner == NULL) {
        size_t len;
        const char *b = xml_stanza_bytes(st, &len);
        out[0] = (core_span_t){b, len};
        return 1;
    }
    if (box->own == NULL)
        envelope_own(st);
    size_t n = 0;
    out[n++] = (core_span_t){box->own, box->own_split};
    /* A stanza of two pieces at most (plain or readdressed); an envelope in an envelope, which
     * nothing sends, is written whole. */
    if (st->inner->inner == NULL) {
        core_span_t v[XMLS_PIECES_MAX];
        size_t k = xml_stanza_pieces(st->inner, v);
        assert(k <= 2);
        for (size_t i = 0; i < k; i++)
            out[n++] = v[i];
    } else {
        size_t len;
        const char *b = xml_stanza_bytes(st->inner, &len);
        out[n++] = (core_span_t){b, len};
    }
    out[n++] = (core_span_t){box->own + box->own_split, box->own_len - box->own_split};
    return n;
}

size_t xml_stanza_size(xml_stanza_t *st)
{
    core_span_t v[XMLS_PIECES_MAX];
    size_t n = xml_stanza_pieces(st, v), len = 0;
    for (size_t i = 0; i < n; i++)
        len += v[i].len;
    return len;
}

const char *xml_stanza_bytes(xml_stanza_t *st, size_t *len)
{
    if (st->bytes == NULL) {
        core_buf_t b = {0};
        if (st->inner != NULL || xml_stanza_box(st)->base != NULL) {
            core_span_t v[XMLS_PIECES_MAX];
            size_t n = xml_stanza_pieces(st, v), total = 0;
            for (size_t i = 0; i < n; i++)
                total += v[i].len;
            core_buf_reserve(&b, total + 1);
            for (size_t i = 0; i < n; i++)
                core_buf_append(&b, v[i].data, v[i].len);
        } else {
            xml_node_serialize(st->root, &b);
        }
        st->bytes = core_buf_steal(&b, &st->bytes_len);
        xml_stanza_box(st)->bytes_heap = true;
    }
    if (len != NULL)
        *len = st->bytes_len;
    return st->bytes;
}
