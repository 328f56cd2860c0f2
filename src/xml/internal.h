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
} xml_stanza_box_t;

static inline xml_stanza_box_t *xml_stanza_box(xml_stanza_t *st)
{
    return (xml_stanza_box_t *)st;
}

/* A stanza with one reference, no root and an arena whose first block is first_block bytes. */
xml_stanza_t *xml_stanza_alloc(size_t first_block);

/* Drops the cached bytes (freeing them if they were serialised). */
void xml_stanza_drop_bytes(xml_stanza_t *st);

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
