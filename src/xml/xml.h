/* SPDX-License-Identifier: MIT */
/* Stanza trees, the incremental stream parser and the serialiser: XML as every stream sees it. */
#ifndef PARLEY_XML_H
#define PARLEY_XML_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/xmpp_error.h"

#include <stdbool.h>
#include <stddef.h>

#define XMLS_NS_STREAMS "http://etherx.jabber.org/streams"
#define XMLS_NS_CLIENT "jabber:client"
#define XMLS_NS_SERVER "jabber:server"
#define XMLS_NS_COMPONENT "jabber:component:accept"
#define XMLS_NS_XML "http://www.w3.org/XML/1998/namespace"

/*
 * The stream's content namespace (jabber:client, jabber:server or jabber:component:accept).
 * The parser gives this pointer, instead of the URI, to every element that is in the stream's
 * default namespace and whose parent is too (or is the stream root): a <message> is a
 * <message> whichever stream it arrived on. Compare by pointer. The serialiser writes no
 * xmlns for such an element when its parent is also in it, and xmlns='jabber:client' when it
 * sits inside an element of another namespace (as in a XEP-0297 <forwarded/>).
 */
extern const char xml_ns_content[];
#define XMLS_NS_CONTENT xml_ns_content

typedef struct xml_attr {
    const char *ns; /* NULL: no namespace (almost every attribute) */
    const char *name;
    const char *value; /* unescaped, NUL-terminated */
    size_t value_len;
} xml_attr_t;

typedef struct xml_node xml_node_t;

/* An element, or a text node (name == NULL). Everything lives in the owning stanza's arena. */
struct xml_node {
    xml_node_t *parent;
    xml_node_t *next; /* next sibling */
    xml_node_t *first; /* first child */
    xml_node_t *last; /* last child */
    const char *ns; /* element: XMLS_NS_CONTENT, a namespace URI, or NULL for none */
    const char *name; /* element: local name; NULL for a text node */
    const char *text; /* text node: unescaped characters, NUL-terminated */
    size_t text_len;
    xml_attr_t *attrs;
    unsigned nattrs;
    unsigned attrs_cap;
};

typedef enum xml_stanza_kind {
    XMLS_KIND_OTHER = 0, /* any other top-level element (stream features, handshake, route…) */
    XMLS_KIND_MESSAGE,
    XMLS_KIND_PRESENCE,
    XMLS_KIND_IQ,
} xml_stanza_kind_t;

/*
 * A stanza: one top-level element and everything under it, reference-counted.
 * A tree with more than one reference is shared and read-only: copy it to change it.
 * Counts are plain ints: a stanza stays on its loop thread.
 */
typedef struct xml_stanza {
    int refs;
    xml_node_t *root;
    core_arena_t arena; /* owns every node and string of the tree */
    /*
     * The serialised bytes (owned), written by xml_stanza_bytes() or kept from the input by
     * the parser when they mean the same on any stream; NULL when not known. Changing the
     * tree clears them.
     */
    char *bytes;
    size_t bytes_len;
    /*
     * An envelope's stanza held by reference (xml_envelope_new), or NULL. It is the
     * envelope's first child when serialised; in process it is never copied.
     */
    struct xml_stanza *inner;
} xml_stanza_t;

/* ---- building and changing trees ---- */

/* A new stanza (one reference) whose root element is {ns}name. ns as in xml_node.ns. */
xml_stanza_t *xml_stanza_new(const char *ns, const char *name);
/* Takes another reference; returns st. */
xml_stanza_t *xml_stanza_ref(xml_stanza_t *st);
/* Drops a reference; the last one frees the tree. NULL is ignored. */
void xml_stanza_unref(xml_stanza_t *st);
/* A deep copy (one reference), unshared and writable; it keeps the cached bytes. */
xml_stanza_t *xml_stanza_copy(const xml_stanza_t *st);
/*
 * A new stanza whose root is a deep copy of n (from any tree): used to take a stanza out of
 * an envelope. An element on the chain from n down that is in jabber:client, jabber:server
 * or jabber:component:accept becomes XMLS_NS_CONTENT, as if it had been parsed at top level.
 */
xml_stanza_t *xml_stanza_from_node(const xml_node_t *n);

/*
 * Fan-out (ARCHITECTURE.md: shared, not copied).
 *
 * A stanza like src but with its own 'from' and 'to' (either NULL: removed); every other
 * root attribute and all children are src's, shared, not copied: the result holds a
 * reference to src, and src must not be changed any more (it is frozen; writers copy with
 * xml_stanza_copy, which must then give a plain independent stanza). Its bytes are its own
 * start tag followed by src's serialised content, which is serialised once for all such
 * stanzas.
 *
 * A new reference. Readers see the tree as on a copy (root attributes in the order a copy
 * changed with xml_node_set_attr would have them), except that the root's children have
 * src's root (or the root src shares) as their parent. The result is read-only for good
 * (xml_stanza_is_shared). src may itself be readdressed; not an envelope.
 */
xml_stanza_t *xml_stanza_readdress(xml_stanza_t *src, const char *from, const char *to);
/* The same, with the root's 'id' set too (NULL: removed): PEP gives each notification its
 * own id. */
xml_stanza_t *xml_stanza_readdress_id(xml_stanza_t *src, const char *from, const char *to,
                                      const char *id);
/*
 * True when st may not be changed: another reference holds it, it was readdressed from
 * (frozen), or it is readdressed (shares another's tree). Copy it first (xml_stanza_copy).
 */
bool xml_stanza_is_shared(const xml_stanza_t *st);

/*
 * The functions below that change a tree require a stanza that is not shared (xml_stanza_is_shared
 * false; asserted) and clear its cached bytes. Strings are copied into the stanza's arena.
 */
xml_node_t *xml_node_add_element(xml_stanza_t *st, xml_node_t *parent, const char *ns,
                                 const char *name);
/* Appends text to parent (merged with a text node that is already last). */
void xml_node_add_text(xml_stanza_t *st, xml_node_t *parent, const char *text, size_t len);
/* Sets or replaces attribute {ns}name; value NULL removes it. */
void xml_node_set_attr(xml_stanza_t *st, xml_node_t *n, const char *ns, const char *name,
                       const char *value);
/* Appends a deep copy of src (from any tree) as the last child of parent; returns the copy. */
xml_node_t *xml_node_add_copy(xml_stanza_t *st, xml_node_t *parent, const xml_node_t *src);
/*
 * Sets the root's attribute name (no namespace) to value, as xml_node_set_attr does, but keeps
 * the cached bytes when it can (the root did not have the attribute and its bytes are
 * known): the attribute is written into them, so the stanza is not serialised again. c2s
 * stamps 'from' on every client stanza this way.
 */
void xml_stanza_set_root_attr(xml_stanza_t *st, const char *name, const char *value);
/*
 * Appends a deep copy of child (from any tree) as the root's last child, as
 * xml_node_add_copy does, but keeps the cached bytes when it can: the child's serialisation is
 * written into them before the root's end tag, so the stanza is not serialised again. The
 * archive stamps a stanza-id on every message this way. Not for envelopes.
 */
xml_node_t *xml_stanza_append_copy(xml_stanza_t *st, const xml_node_t *child);
/* Unlinks n (and its subtree) from its parent; its memory stays in the arena. */
void xml_node_unlink(xml_stanza_t *st, xml_node_t *n);
/* Marks the cached bytes stale after a change made through the struct fields directly. */
void xml_stanza_changed(xml_stanza_t *st);

/*
 * The error reply to st (RFC 6120 §8.3): a copy of it with 'to' and 'from' swapped, type
 * 'error' and an <error/> child carrying cond and its type. A new stanza (one reference), or
 * NULL when st is itself an error, which is never answered (§8.3.1).
 */
xml_stanza_t *xml_stanza_error_reply(const xml_stanza_t *st, core_stanza_err_t cond);
/* An empty iq result to st: its id, 'to' and 'from' swapped (a new stanza, unsent). */
xml_stanza_t *xml_stanza_iq_result(const xml_stanza_t *st);

/*
 * Makes st (unshared, e.g. a fresh result) an error with cond: type 'error' on the root and an
 * <error/> child with the condition and type (NULL: the condition's own, RFC 6120 §8.3.3).
 * legacy_code also writes XEP-0086's code attribute, for protocols that still ask for it
 * (XEP-0077 §9). Returns the <error/> element.
 */
xml_node_t *xml_stanza_make_error(xml_stanza_t *st, core_stanza_err_t cond, const char *type,
                                  bool legacy_code);

/*
 * Envelopes: an element (Parley's <route/>) that carries one stanza. In process the stanza
 * is held by reference, so wrapping and unwrapping never copy it; on a stream it is the
 * envelope's first child element, as docs/link-protocol.md specifies.
 *
 * xml_envelope_new makes {ns}name holding a new reference to inner (read-only from then on,
 * like any shared tree). Attributes are set on the envelope's root as usual; children added
 * to the root come after the carried stanza.
 */
xml_stanza_t *xml_envelope_new(const char *ns, const char *name, xml_stanza_t *inner);
/* The carried stanza's root element (inner's, or the first child element), or NULL. */
const xml_node_t *xml_envelope_child(const xml_stanza_t *env);
/*
 * The carried stanza as a new reference: the one held (no copy), or a stanza made from the
 * first child element of an envelope that arrived on a stream. NULL when there is none.
 */
xml_stanza_t *xml_envelope_open(const xml_stanza_t *env);

/* ---- reading trees ---- */

/* Value of the no-namespace attribute name, or NULL. */
const char *xml_node_attr(const xml_node_t *n, const char *name);
/* Value of attribute {ns}name, or NULL. */
const char *xml_node_attr_ns(const xml_node_t *n, const char *ns, const char *name);
/* True if n is an element {ns}name; ns NULL or name NULL match anything. */
bool xml_node_is(const xml_node_t *n, const char *ns, const char *name);
/* First child element matching as xml_node_is, or NULL. */
xml_node_t *xml_node_child(const xml_node_t *n, const char *ns, const char *name);
/* First child element / next sibling element, skipping text; NULL at the end. */
xml_node_t *xml_node_first_element(const xml_node_t *n);
xml_node_t *xml_node_next_element(const xml_node_t *n);
/* The text of an element whose content is text only; "" (len 0) otherwise. Borrowed. */
const char *xml_node_text(const xml_node_t *n, size_t *len);

xml_stanza_kind_t xml_stanza_kind(const xml_stanza_t *st);
/* Root attribute shorthands (borrowed, NULL when absent). */
const char *xml_stanza_to(const xml_stanza_t *st);
const char *xml_stanza_from(const xml_stanza_t *st);
const char *xml_stanza_type(const xml_stanza_t *st);
const char *xml_stanza_id(const xml_stanza_t *st);

/*
 * One element from bytes written by xml_stanza_bytes (a stored stanza or document), parsed as
 * at the top level of a jabber:client stream: a new stanza (one reference), or NULL when the
 * bytes do not start with a well-formed element. No size limit beyond len itself.
 */
xml_stanza_t *xml_stanza_parse(const char *data, size_t len);

/* ---- serialising ---- */

/*
 * Appends n as XML to out. Every text and attribute value is escaped. Namespaces are written
 * as default-namespace declarations where an element's namespace differs from its parent's;
 * namespaced attributes get generated prefixes declared on their element; the xml: prefix is
 * used as is. The root is written with no xmlns when it is XMLS_NS_CONTENT.
 */
void xml_node_serialize(const xml_node_t *n, core_buf_t *out);

/*
 * The stanza's bytes for writing at the top level of any stream (borrowed, valid until the
 * tree changes or is freed). Serialised once and cached; a stanza the parser read whose bytes
 * mean the same on any stream is never serialised at all. For a readdressed stanza or an
 * envelope this joins the pieces (a copy of the shared content): writers that can take
 * pieces use xml_stanza_pieces instead.
 */
const char *xml_stanza_bytes(xml_stanza_t *st, size_t *len);

/*
 * The stanza's bytes for writing at the top level of any stream, as pieces to write one after
 * the other without joining them (borrowed, valid as xml_stanza_bytes's): one for a stanza
 * serialised whole; a readdressed stanza's own start tag and the content it shares (the same
 * buffer for every stanza readdressed from one source); an envelope's start tag, its stanza's
 * pieces, then its end. Returns how many (1 to XMLS_PIECES_MAX).
 */
#define XMLS_PIECES_MAX 4
size_t xml_stanza_pieces(xml_stanza_t *st, core_span_t out[XMLS_PIECES_MAX]);
/* The length of the stanza's bytes (the sum of its pieces), without joining them. */
size_t xml_stanza_size(xml_stanza_t *st);

/* Appends s[0..len) to out, escaped for text (attr false) or an attribute value (attr true). */
void xml_escape(core_buf_t *out, const char *s, size_t len, bool attr);

/* ---- the incremental stream parser ---- */

typedef struct xml_limits {
    size_t max_stanza_bytes; /* one top-level element, and any header or token in between */
    unsigned max_depth; /* element nesting inside one top-level element */
    unsigned max_attrs; /* attributes on one element */
} xml_limits_t;

/* Finite defaults: 256 KiB, depth 64, 64 attributes. */
extern const xml_limits_t xml_limits_default;

typedef enum xml_event_kind {
    XMLS_EV_STREAM_OPEN = 1, /* the stream header arrived */
    XMLS_EV_ELEMENT, /* a complete top-level element */
    XMLS_EV_STREAM_CLOSE, /* </stream:stream> */
} xml_event_kind_t;

typedef struct xml_event {
    xml_event_kind_t kind;
    /*
     * STREAM_OPEN: the stream root element with its attributes and no children;
     * ELEMENT: the element. A new reference that the caller owns. NULL for STREAM_CLOSE.
     */
    xml_stanza_t *stanza;
} xml_event_t;

typedef struct xml_parser xml_parser_t;

/* A parser for one stream (namespace-aware expat, through core_malloc). limits NULL: defaults. */
xml_parser_t *xml_parser_new(const xml_limits_t *limits);
void xml_parser_free(xml_parser_t *p);

/*
 * Queues bytes (copied) for parsing. They may be split anywhere. Returns 0, or -EPROTO if
 * the parser has already failed.
 */
int xml_parser_feed(xml_parser_t *p, const char *data, size_t len);

/*
 * Parses queued bytes until the next event. Returns 0 and fills ev; -EAGAIN when it needs
 * more bytes; -EPROTO when the stream is broken (then xml_parser_error tells why, and every
 * later call returns -EPROTO). Events come one at a time, so the caller may act on one (a
 * stream restart, say) before the bytes after it are parsed. Never call it from inside
 * another parser callback: there are none; everything comes out through here.
 */
int xml_parser_next(xml_parser_t *p, xml_event_t *ev);

/*
 * Why the stream broke: not-well-formed (malformed XML, invalid UTF-8, text outside
 * elements), restricted-xml (DOCTYPE, entity declaration, processing instruction, comment),
 * policy-violation (a limit), unsupported-encoding (an XML declaration naming another
 * encoding), or none. detail, if not NULL, receives a short description for the log.
 */
core_stream_err_t xml_parser_error(const xml_parser_t *p, const char **detail);

/* The stream root's default namespace (the content namespace), or NULL before the header. */
const char *xml_parser_stream_ns(const xml_parser_t *p);
/* The prefix the stream root used ("stream" normally), or NULL for none / before the header. */
const char *xml_parser_stream_prefix(const xml_parser_t *p);

/*
 * Starts a new stream on the same connection (RFC 6120 §4.3.3 after STARTTLS and SASL).
 * keep_unparsed true keeps queued bytes not yet parsed, for the new stream; false drops them
 * (after STARTTLS's <proceed/>, plaintext that follows must be ignored).
 */
void xml_parser_restart(xml_parser_t *p, bool keep_unparsed);

/*
 * Frees expat's state while p sits between stanzas with nothing unparsed, and returns true
 * (also when it was freed already); false when it cannot now. The next bytes rebuild it
 * (from the stream root's name and namespace declarations), so an idle stream costs only
 * this struct. For connections that have been quiet for a while: a rebuild costs a few µs.
 */
bool xml_parser_idle(xml_parser_t *p);

/* Bytes queued but not yet parsed (for tests and for releasing memory when idle). */
size_t xml_parser_pending(const xml_parser_t *p);

#endif
