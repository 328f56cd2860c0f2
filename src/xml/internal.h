/* SPDX-License-Identifier: MIT */
/* Declarations shared by the files of src/xml only: stanza allocation and tree plumbing. */
#ifndef PARLEY_XML_INTERNAL_H
#define PARLEY_XML_INTERNAL_H

#include "xml/xml.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* An interned copy of XMLS_NS_XML that attributes point at instead of copying the URI. */
extern const char xml_ns_xml[];

/*
 * The stanza as allocated: the public struct plus what only src/xml needs. The box is the
 * first allocation of its own arena, so a small parsed stanza costs one malloc in all.
 */
typedef struct xml_stanza_box {
    xml_stanza_t st;
    bool bytes_heap; /* st.bytes came from core_malloc (serialised), not from the arena */
    /* Readdressed from (xml_stanza_readdress): its tree never changes again. */
    bool frozen;
    /*
     * A readdressed stanza: the stanza it was made from (a reference), whose root's children
     * and attributes it shares; NULL for every other stanza. content_of is the one at the end
     * of that chain, whose bytes the content comes from (borrowed: the chain holds it).
     */
    xml_stanza_t *base;
    xml_stanza_t *content_of;
    /*
     * Bytes of this stanza's own, built on demand (owned): a readdressed stanza's start tag,
     * or an envelope's start tag (own_split bytes) followed by its children and end tag.
     */
    char *own;
    size_t own_len;
    size_t own_split;
    /*
     * A frozen stanza's content: what follows the root's start tag in its bytes (children
     * and end tag), computed once for all the stanzas readdressed from it. It points into
     * st.bytes, or into content_heap (owned) when those bytes could not be cut there.
     */
    const char *content;
    size_t content_len;
    char *content_heap;
} xml_stanza_box_t;

static inline xml_stanza_box_t *xml_stanza_box(xml_stanza_t *st)
{
    return (xml_stanza_box_t *)st;
}

/* A stanza with one reference, no root and an arena whose first block is first_block bytes. */
xml_stanza_t *xml_stanza_alloc(size_t first_block);

/* Drops the cached bytes (freeing them if they were serialised) and the own bytes. */
void xml_stanza_drop_bytes(xml_stanza_t *st);

/*
 * The serialiser's parts for readdressed stanzas and envelopes (serialize.c).
 * xml_serialize_start appends n's start tag, written as if n had children (">", not "/>")
 * when open is true, in the default namespace ctx (XMLS_NS_CONTENT at the top of a stream);
 * it returns the default namespace in effect inside n. xml_serialize_in appends n and its
 * subtree in ctx; xml_serialize_end appends n's end tag.
 */
const char *xml_serialize_start(core_buf_t *out, const xml_node_t *n, const char *ctx, bool open);
void xml_serialize_in(core_buf_t *out, const xml_node_t *n, const char *ctx);
void xml_serialize_end(core_buf_t *out, const xml_node_t *n);

/* The pieces of a readdressed stanza (readdress.c): its start tag, then its source's content
 * (none when the root is empty). */
size_t xml_readdressed_pieces(xml_stanza_t *st, core_span_t out[XMLS_PIECES_MAX]);
/* A frozen stanza's content (its root has children): computed at the first call, then kept. */
core_span_t xml_frozen_content(xml_stanza_t *st);

/* A zeroed node in st's arena, not linked anywhere. */
static inline xml_node_t *xml_node_alloc(xml_stanza_t *st)
{
    xml_node_t *n = core_arena_alloc(&st->arena, sizeof(*n));
    memset(n, 0, sizeof(*n));
    return n;
}

/* Links n as the last child of parent. */
static inline void xml_node_link(xml_node_t *parent, xml_node_t *n)
{
    n->parent = parent;
    n->next = NULL;
    if (parent->last != NULL)
        parent->last->next = n;
    else
        parent->first = n;
    parent->last = n;
}

/*
 * Namespace equality as the tree means it: XMLS_NS_CONTENT equals only itself (compare by
 * pointer), NULL (no namespace) only NULL, and URIs by their characters.
 */
static inline bool xml_ns_same(const char *a, const char *b)
{
    if (a == b)
        return true;
    if (a == NULL || b == NULL || a == XMLS_NS_CONTENT || b == XMLS_NS_CONTENT)
        return false;
    return strcmp(a, b) == 0;
}

/* How many times the parser has called XML_Parse or XML_ResumeParser (for tests). */
unsigned long xml_parser_parse_calls(const xml_parser_t *p);

#endif
