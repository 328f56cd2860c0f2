/* SPDX-License-Identifier: MIT */
/* Handlers registered by what a stanza is: kind, type and payload namespace. */
#ifndef PARLEY_XML_DISPATCH_H
#define PARLEY_XML_DISPATCH_H

#include "xml/xml.h"

/* Stanza types as bits, so one registration can take several. */
typedef enum xml_stanza_type {
    XMLS_TYPE_NONE = 0,
    /* iq */
    XMLS_TYPE_GET = 1u << 0,
    XMLS_TYPE_SET = 1u << 1,
    XMLS_TYPE_RESULT = 1u << 2,
    /* message; a message with no type is "normal" (RFC 6121 §5.2.2) */
    XMLS_TYPE_NORMAL = 1u << 3,
    XMLS_TYPE_CHAT = 1u << 4,
    XMLS_TYPE_GROUPCHAT = 1u << 5,
    XMLS_TYPE_HEADLINE = 1u << 6,
    /* presence; a presence with no type is "available" */
    XMLS_TYPE_AVAILABLE = 1u << 7,
    XMLS_TYPE_UNAVAILABLE = 1u << 8,
    XMLS_TYPE_SUBSCRIBE = 1u << 9,
    XMLS_TYPE_SUBSCRIBED = 1u << 10,
    XMLS_TYPE_UNSUBSCRIBE = 1u << 11,
    XMLS_TYPE_UNSUBSCRIBED = 1u << 12,
    XMLS_TYPE_PROBE = 1u << 13,
    /* all three kinds */
    XMLS_TYPE_ERROR = 1u << 14,
    /* a type attribute the kind does not define */
    XMLS_TYPE_INVALID = 1u << 15,
} xml_stanza_type_t;

/* The stanza's type as one bit (XMLS_TYPE_NONE for XMLS_KIND_OTHER). */
xml_stanza_type_t xml_stanza_type_bit(const xml_stanza_t *st);

typedef enum xml_handler_result {
    XMLS_PASS = 0, /* not mine: try the next handler */
    XMLS_HANDLED = 1, /* done; the handler took what it needed (its own references) */
} xml_handler_result_t;

/*
 * A handler. st is borrowed for the call (take a reference to keep it); payload is the
 * matched payload element (for iq: the first child element), or NULL when the registration
 * named no payload.
 */
typedef xml_handler_result_t (*xml_handler_fn)(void *ud, xml_stanza_t *st,
                                               const xml_node_t *payload);

typedef struct xml_match {
    xml_stanza_kind_t kind; /* XMLS_KIND_MESSAGE, _PRESENCE or _IQ */
    unsigned types; /* mask of xml_stanza_type_t; 0 means any */
    const char *payload_ns; /* NULL: any stanza of the kind and type */
    const char *payload_name; /* NULL: any element in payload_ns */
} xml_match_t;

typedef struct xml_dispatch xml_dispatch_t;

xml_dispatch_t *xml_dispatch_new(void);
void xml_dispatch_free(xml_dispatch_t *d);

/*
 * Registers fn for stanzas matching m (copied; strings must outlive d). Returns 0, or
 * -EEXIST if an iq get/set payload {ns}name is already claimed by another handler: an iq has
 * exactly one owner.
 */
int xml_dispatch_add(xml_dispatch_t *d, const xml_match_t *m, xml_handler_fn fn, void *ud);

/*
 * Offers st to matching handlers, most specific first (payload ns and name, then ns only,
 * then none), in registration order among equals, until one returns XMLS_HANDLED.
 * For iq the payload is the first child element; for message and presence any child element
 * may match. Returns XMLS_HANDLED or XMLS_PASS (nobody took it: an iq get/set then deserves
 * service-unavailable, which is the caller's to send).
 */
xml_handler_result_t xml_dispatch_run(const xml_dispatch_t *d, xml_stanza_t *st);

/* Calls fn for every distinct payload namespace registered (for disco#info features). */
void xml_dispatch_each_ns(const xml_dispatch_t *d, void (*fn)(void *ud, const char *ns), void *ud);

#endif
