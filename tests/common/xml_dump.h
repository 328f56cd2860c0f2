/* SPDX-License-Identifier: MIT */
/* Test helpers: a canonical text form of a stanza tree and its structural invariants. */
#ifndef PARLEY_TEST_XML_DUMP_H
#define PARLEY_TEST_XML_DUMP_H

#include "core/buf.h"
#include "xml/xml.h"

#include <string.h>

/*
 * The first broken invariant of the tree under n, or NULL: text nodes are non-empty and
 * NUL-terminated at their length, never adjacent; parent and last links are right;
 * attribute values are NUL-terminated at their length.
 */
static inline const char *xml_dump_check(const xml_node_t *n)
{
    if (n->name == NULL)
        return n->text_len > 0 && strlen(n->text) == n->text_len ? NULL : "bad text node";
    for (unsigned i = 0; i < n->nattrs; i++) {
        if (strlen(n->attrs[i].value) != n->attrs[i].value_len)
            return "attribute length differs from its NUL";
    }
    const xml_node_t *prev = NULL;
    for (const xml_node_t *c = n->first; c != NULL; c = c->next) {
        if (c->parent != n)
            return "bad parent link";
        if (prev != NULL && prev->name == NULL && c->name == NULL)
            return "adjacent text nodes";
        const char *why = xml_dump_check(c);
        if (why != NULL)
            return why;
        prev = c;
    }
    return n->last == prev ? NULL : "bad last link";
}

/* Appends a canonical form of n: namespaces explicit, "#C" for the content sentinel. */
static inline void xml_dump_node(const xml_node_t *n, core_buf_t *b)
{
    if (n->name == NULL) {
        core_buf_append_str(b, "\"");
        core_buf_append(b, n->text, n->text_len);
        core_buf_append_str(b, "\"");
        return;
    }
    core_buf_append_str(b, "<{");
    core_buf_append_str(b, n->ns == XMLS_NS_CONTENT ? "#C" : n->ns ? n->ns : "");
    core_buf_append_str(b, "}");
    core_buf_append_str(b, n->name);
    for (unsigned i = 0; i < n->nattrs; i++) {
        core_buf_append_str(b, " {");
        core_buf_append_str(b, n->attrs[i].ns ? n->attrs[i].ns : "");
        core_buf_append_str(b, "}");
        core_buf_append_str(b, n->attrs[i].name);
        core_buf_append_str(b, "='");
        core_buf_append(b, n->attrs[i].value, n->attrs[i].value_len);
        core_buf_append_str(b, "'");
    }
    core_buf_append_str(b, ">");
    for (const xml_node_t *c = n->first; c != NULL; c = c->next)
        xml_dump_node(c, b);
    core_buf_append_str(b, "</>");
}

#endif
