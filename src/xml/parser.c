/* SPDX-License-Identifier: MIT */
/* The incremental stream parser: expat, suspended after every event, building stanza trees. */
#include "xml/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const xml_limits_t xml_limits_default = {
    .max_stanza_bytes = 256 * 1024,
    .max_depth = 64,
    .max_attrs = 64,
};

/* Cannot occur in an XML name or (as a raw control character) in a namespace URI. */
#define NS_SEP '\x1F'

/* At most this much is handed to expat per call, which bounds the buffer it keeps. */
#define FEED_SLICE 4096

/*
 * Expat re-scans an incomplete token from its start each time it is given more bytes. Once
 * it holds more than this, we stop feeding it until our own scanner sees the token end
 * (see "careful mode" below), so a peer trickling a huge tag costs linear time, not quadratic.
 */
#define PARTIAL_TOKEN_MAX 1024

#define QUEUE_CAP 4

/* Where the token scanner is, between tokens (SCAN_TEXT) or inside markup. */
typedef enum scan_state {
    SCAN_TEXT, /* character data: any position is a token boundary */
    SCAN_REF, /* after '&' in text */
    SCAN_LT, /* after '<' */
    SCAN_TAG, /* in a start or end tag */
    SCAN_TAG_QUOTE, /* in a quoted attribute value */
    SCAN_PI, /* in <? ... ?> */
    SCAN_BANG, /* after "<!" */
    SCAN_BANG_DASH, /* after "<!-" */
    SCAN_CDATA_OPEN, /* matching "<![CDATA[" */
    SCAN_COMMENT, /* in <!-- ... --> */
    SCAN_CDATA, /* in <![CDATA[ ... ]]> */
    SCAN_DECL, /* in another <!...> declaration */
    SCAN_DECL_QUOTE, /* in a quoted literal of one */
} scan_state_t;

struct xml_parser {
    XML_Parser expat;
    xml_limits_t limits;

    /*
     * Our copy of the input: bytes [in_abs, in_abs + in.len) of the connection, counted from
     * its first byte. Offsets below are absolute in the same count.
     */
    core_buf_t in;
    uint64_t in_abs;
    uint64_t keep_abs; /* first byte still needed: after the last event or ignored space */
    uint64_t fed_abs; /* bytes before this were handed to expat */
    uint64_t expat_abs; /* offset of expat's byte index 0 (where this expat stream began) */
    uint64_t tok_end_abs; /* end of the last token expat reported */
    bool suspended; /* expat stopped itself after an event; resume before feeding */
    bool in_cdata;
    bool restarted; /* a restarted stream that has not been fed a byte of its own yet */

    /* Careful mode: feed expat only up to a position the scanner knows is between tokens. */
    bool careful;
    scan_state_t scan;
    char scan_quote;
    unsigned scan_count;
    uint64_t scan_abs;
    uint64_t safe_abs;

    /* Stream state */
    unsigned level; /* open elements, the stream root included */
    core_stream_err_t err;
    const char *detail;
    char *stream_ns;
    size_t stream_ns_len;
    char *stream_prefix;

    /*
     * What expat must be told again to be rebuilt between stanzas (xml_parser_idle): the
     * stream root as written and the namespaces it declared, in order (prefix NULL for the
     * default namespace).
     */
    char *root_qname;
    char **root_decls; /* prefix, uri, prefix, uri, ... (owned; a NULL prefix is default) */
    unsigned nroot_decls, root_decls_cap;
    bool priming; /* expat is reading our replay of the root, not the peer's bytes */

    /* The top-level element being built */
    xml_stanza_t *cur_st;
    xml_node_t *cur;
    uint64_t stanza_abs;
    bool bytes_ok;
    unsigned decls; /* namespace declarations on the element about to start */
    const char **prefixes; /* prefixes declared inside the current top-level element */
    unsigned nprefixes, prefixes_cap;
    core_buf_t text; /* character data not yet in a text node (expat splits it) */
    size_t arena_hint;

    xml_event_t queue[QUEUE_CAP];
    unsigned qhead, qlen;

    unsigned long parse_calls;
};

/* ---- errors and small helpers ---- */

static void fail(xml_parser_t *p, core_stream_err_t cond, const char *detail)
{
    if (p->err == CORE_STREAM_ERR_NONE) {
        p->err = cond;
        p->detail = detail;
    }
    if (p->expat != NULL)
        XML_StopParser(p->expat, XML_FALSE);
}

static void enqueue(xml_parser_t *p, xml_event_kind_t kind, xml_stanza_t *st)
{
    assert(p->qlen < QUEUE_CAP);
    xml_event_t *ev = &p->queue[(p->qhead + p->qlen) % QUEUE_CAP];
    ev->kind = kind;
    ev->stanza = st;
    p->qlen++;
}

static void queue_clear(xml_parser_t *p)
{
    while (p->qlen > 0) {
        xml_stanza_unref(p->queue[p->qhead].stanza);
        p->qhead = (p->qhead + 1) % QUEUE_CAP;
        p->qlen--;
    }
    p->qhead = 0;
}

/* Suspends expat after an event, so the caller sees events one at a time. */
static void suspend(xml_parser_t *p)
{
    XML_StopParser(p->expat, XML_TRUE);
}

/* Records where the token expat is reporting ends, and checks the size limit against it. */
static bool token_seen(xml_parser_t *p)
{
    if (p->priming)
        return true; /* our replay of the root, placed before the bytes being counted */
    uint64_t start = p->expat_abs + (uint64_t)XML_GetCurrentByteIndex(p->expat);
    uint64_t end = start + (uint64_t)XML_GetCurrentByteCount(p->expat);
    p->tok_end_abs = end;
    uint64_t origin = p->cur_st != NULL ? p->stanza_abs : p->keep_abs;
    if (end - origin > p->limits.max_stanza_bytes) {
        fail(p, CORE_STREAM_ERR_POLICY_VIOLATION, "stanza too large");
        return false;
    }
    return true;
}

static bool is_space(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\n' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

/* A name from expat: "local", "uri SEP local" or "uri SEP local SEP prefix". */
typedef struct qname {
    const char *uri; /* NULL: no namespace */
    size_t uri_len;
    const char *local;
    size_t local_len;
    const char *prefix; /* NULL: none */
} qname_t;

/* One pass over the name: names are short, and most attributes have no namespace. */
static void qname_split(const char *s, qname_t *q)
{
    const char *e = s;
    while (*e != '\0' && *e != NS_SEP)
        e++;
    if (*e == '\0') {
        q->uri = NULL;
        q->uri_len = 0;
        q->local = s;
        q->local_len = (size_t)(e - s);
        q->prefix = NULL;
        return;
    }
    q->uri = s;
    q->uri_len = (size_t)(e - s);
    q->local = ++e;
    while (*e != '\0' && *e != NS_SEP)
        e++;
    q->local_len = (size_t)(e - q->local);
    q->prefix = *e == NS_SEP ? e + 1 : NULL;
}

static bool same_str(const char *s, const char *p, size_t len)
{
    return strncmp(s, p, len) == 0 && s[len] == '\0';
}

/* ---- building the tree ---- */

static void text_flush(xml_parser_t *p)
{
    if (p->text.len == 0)
        return;
    xml_node_t *t = xml_node_alloc(p->cur_st);
    t->text = core_arena_strndup(&p->cur_st->arena, p->text.data, p->text.len);
    t->text_len = p->text.len;
    xml_node_link(p->cur, t);
    p->text.len = 0;
    if (p->text.cap > 16 * 1024)
        core_buf_release(&p->text);
}

/*
 * A prefix used inside a top-level element must be declared inside it, or its bytes would
 * mean something else on another stream (RFC 6120 §4.8.5: prefixes are the stream's own).
 */
static void prefix_used(xml_parser_t *p, const char *prefix)
{
    if (prefix == NULL || !p->bytes_ok || strcmp(prefix, "xml") == 0)
        return;
    for (unsigned i = p->nprefixes; i > 0; i--)
        if (strcmp(p->prefixes[i - 1], prefix) == 0)
            return;
    p->bytes_ok = false;
}

static const char *element_ns(xml_parser_t *p, const qname_t *q, const xml_node_t *parent)
{
    if (q->uri == NULL)
        return NULL;
    if (p->stream_ns != NULL && q->uri_len == p->stream_ns_len &&
        memcmp(q->uri, p->stream_ns, q->uri_len) == 0) {
        if (parent == NULL || parent->ns == XMLS_NS_CONTENT)
            return XMLS_NS_CONTENT;
        /*
         * In the stream's namespace under a foreign parent, with no declaration inside the
         * stanza (that case is caught in on_ns_start): the stream's default reached it
         * through a prefixed parent, and on another stream it would be another namespace.
         */
        p->bytes_ok = false;
    }
    if (parent != NULL && parent->ns != NULL && parent->ns != XMLS_NS_CONTENT &&
        same_str(parent->ns, q->uri, q->uri_len))
        return parent->ns;
    return core_arena_strndup(&p->cur_st->arena, q->uri, q->uri_len);
}

static void copy_attrs(xml_parser_t *p, xml_stanza_t *st, xml_node_t *n, const char **atts,
                       unsigned count)
{
    if (count == 0)
        return;
    n->attrs = core_arena_alloc(&st->arena, count * sizeof(*n->attrs));
    n->nattrs = n->attrs_cap = count;
    const char *prev_ns = NULL;
    for (unsigned i = 0; i < count; i++) {
        xml_attr_t *a = &n->attrs[i];
        qname_t q;
        qname_split(atts[2 * i], &q);
        if (q.uri == NULL) {
            a->ns = NULL;
        } else if (same_str(xml_ns_xml, q.uri, q.uri_len)) {
            a->ns = xml_ns_xml;
        } else if (prev_ns != NULL && same_str(prev_ns, q.uri, q.uri_len)) {
            a->ns = prev_ns;
        } else {
            a->ns = prev_ns = core_arena_strndup(&st->arena, q.uri, q.uri_len);
        }
        prefix_used(p, q.prefix);
        a->name = core_arena_strndup(&st->arena, q.local, q.local_len);
        const char *v = atts[2 * i + 1];
        a->value_len = strlen(v);
        a->value = core_arena_strndup(&st->arena, v, a->value_len);
    }
}

static void stream_open(xml_parser_t *p, const qname_t *q, const char **atts, unsigned count)
{
    if (p->priming)
        return;
    core_free(p->root_qname);
    size_t plen = q->prefix != NULL ? strlen(q->prefix) : 0;
    p->root_qname = core_malloc(plen + 1 + q->local_len + 1);
    char *w = p->root_qname;
    if (plen > 0) {
        memcpy(w, q->prefix, plen);
        w[plen] = ':';
        w += plen + 1;
    }
    memcpy(w, q->local, q->local_len);
    w[q->local_len] = '\0';
    xml_stanza_t *st = xml_stanza_alloc(512);
    xml_node_t *root = xml_node_alloc(st);
    root->ns = q->uri != NULL ? core_arena_strndup(&st->arena, q->uri, q->uri_len) : NULL;
    root->name = core_arena_strndup(&st->arena, q->local, q->local_len);
    st->root = root;
    /* copy_attrs only reads bytes_ok state; nothing about the header's bytes is kept */
    copy_attrs(p, st, root, atts, count);
    if (q->prefix != NULL)
        p->stream_prefix = core_strdup(q->prefix);
    p->bytes_ok = true;
    p->nprefixes = 0;
    enqueue(p, XMLS_EV_STREAM_OPEN, st);
    p->keep_abs = p->tok_end_abs;
    suspend(p);
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_parser_t *p = ud;
    if (p->err != CORE_STREAM_ERR_NONE)
        return;
    if (p->level == 1) {
        /* A top-level element starts: measure it from its own first byte. */
        p->stanza_abs = p->expat_abs + (uint64_t)XML_GetCurrentByteIndex(p->expat);
        size_t hint = p->arena_hint;
        p->cur_st = xml_stanza_alloc(hint);
        p->cur = NULL;
        if (p->stream_ns == NULL)
            p->bytes_ok = false; /* no content namespace to be relative to */
    }
    if (!token_seen(p))
        return;
    unsigned count = (unsigned)XML_GetSpecifiedAttributeCount(p->expat) / 2;
    /* Namespace declarations are attributes on the wire and count against the limit too. */
    if (count + p->decls > p->limits.max_attrs) {
        fail(p, CORE_STREAM_ERR_POLICY_VIOLATION, "too many attributes");
        return;
    }
    p->decls = 0;
    if (p->level > 0 && p->level > p->limits.max_depth) {
        fail(p, CORE_STREAM_ERR_POLICY_VIOLATION, "elements nested too deeply");
        return;
    }
    qname_t q;
    qname_split(name, &q);
    if (p->level == 0) {
        p->level = 1;
        stream_open(p, &q, atts, count);
        return;
    }
    text_flush(p);
    xml_stanza_t *st = p->cur_st;
    xml_node_t *n = xml_node_alloc(st);
    n->ns = element_ns(p, &q, p->cur);
    n->name = core_arena_strndup(&st->arena, q.local, q.local_len);
    prefix_used(p, q.prefix);
    copy_attrs(p, st, n, atts, count);
    if (p->cur != NULL)
        xml_node_link(p->cur, n);
    else
        st->root = n;
    p->cur = n;
    p->level++;
}

static void stanza_done(xml_parser_t *p, uint64_t end)
{
    xml_stanza_t *st = p->cur_st;
    size_t len = (size_t)(end - p->stanza_abs);
    if (p->bytes_ok) {
        /*
         * The input bytes mean the same on any stream: forward them as they came instead of
         * serialising the tree again.
         */
        st->bytes = core_arena_strndup(&st->arena, p->in.data + (p->stanza_abs - p->in_abs), len);
        st->bytes_len = len;
    }
    /* The next stanza's first arena block: big enough for one like this one. */
    size_t hint = len * 3 + 512;
    p->arena_hint = hint < 1024 ? 1024 : hint > 16384 ? 16384 : hint;
    enqueue(p, XMLS_EV_ELEMENT, st);
    p->cur_st = NULL;
    p->cur = NULL;
    p->bytes_ok = true;
    p->nprefixes = 0;
    p->keep_abs = end;
    suspend(p);
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xml_parser_t *p = ud;
    (void)name;
    if (p->err != CORE_STREAM_ERR_NONE)
        return;
    if (!token_seen(p))
        return;
    assert(p->level > 0);
    p->level--;
    if (p->level == 0) {
        enqueue(p, XMLS_EV_STREAM_CLOSE, NULL);
        p->keep_abs = p->tok_end_abs;
        suspend(p);
        return;
    }
    text_flush(p);
    if (p->level == 1) {
        stanza_done(p, p->tok_end_abs);
        return;
    }
    p->cur = p->cur->parent;
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xml_parser_t *p = ud;
    if (p->err != CORE_STREAM_ERR_NONE)
        return;
    if (!token_seen(p))
        return;
    if (p->level <= 1) {
        /* Between top-level elements only whitespace (keepalives) may appear. */
        if (!is_space(s, (size_t)len)) {
            fail(p, CORE_STREAM_ERR_NOT_WELL_FORMED, "text outside stanzas");
            return;
        }
        p->keep_abs = p->tok_end_abs;
        return;
    }
    core_buf_append(&p->text, s, (size_t)len);
}

static bool is_content_uri(const char *uri)
{
    return strncmp(uri, "jabber:", 7) == 0 &&
        (strcmp(uri, XMLS_NS_CLIENT) == 0 || strcmp(uri, XMLS_NS_SERVER) == 0 ||
         strcmp(uri, XMLS_NS_COMPONENT) == 0);
}

/* Bounded by the attribute limit, which the root's on_start checks right after these. */
static void root_decl_add(xml_parser_t *p, const char *prefix, const char *uri)
{
    if (p->nroot_decls + 2 > p->root_decls_cap) {
        p->root_decls_cap = p->root_decls_cap ? p->root_decls_cap * 2 : 4;
        p->root_decls = core_realloc(p->root_decls, p->root_decls_cap * sizeof(*p->root_decls));
    }
    p->root_decls[p->nroot_decls++] = prefix != NULL ? core_strdup(prefix) : NULL;
    p->root_decls[p->nroot_decls++] = core_strdup(uri != NULL ? uri : "");
}

static void root_decls_clear(xml_parser_t *p)
{
    for (unsigned i = 0; i < p->nroot_decls; i++)
        core_free(p->root_decls[i]);
    p->nroot_decls = 0;
    core_free(p->root_qname);
    p->root_qname = NULL;
}

static void XMLCALL on_ns_start(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xml_parser_t *p = ud;
    if (p->err != CORE_STREAM_ERR_NONE)
        return;
    p->decls++;
    if (p->level == 0) {
        if (p->priming)
            return;
        root_decl_add(p, prefix, uri);
        /* The stream root's default namespace is the content namespace. */
        if (prefix == NULL && uri != NULL && p->stream_ns == NULL) {
            p->stream_ns_len = strlen(uri);
            p->stream_ns = core_strndup(uri, p->stream_ns_len);
        }
        return;
    }
    /*
     * Inside a stanza, a declaration naming this stream's content namespace, or that of
     * another kind of stream, parses differently on a stream of the other kind (the content
     * sentinel, or not): serialise such stanzas rather than forward their bytes.
     */
    if (uri != NULL && p->bytes_ok &&
        (is_content_uri(uri) || p->stream_ns == NULL || strcmp(uri, p->stream_ns) == 0))
        p->bytes_ok = false;
    if (prefix != NULL) {
        if (p->nprefixes == p->prefixes_cap) {
            p->prefixes_cap = p->prefixes_cap ? p->prefixes_cap * 2 : 8;
            p->prefixes = core_realloc(p->prefixes, p->prefixes_cap * sizeof(*p->prefixes));
        }
        /* expat keeps prefix names for the parser's lifetime */
        p->prefixes[p->nprefixes++] = prefix;
    }
}

static void XMLCALL on_ns_end(void *ud, const XML_Char *prefix)
{
    xml_parser_t *p = ud;
    if (prefix != NULL && p->level >= 2 && p->nprefixes > 0)
        p->nprefixes--;
}

static void XMLCALL on_cdata_start(void *ud)
{
    xml_parser_t *p = ud;
    if (p->err == CORE_STREAM_ERR_NONE && token_seen(p))
        p->in_cdata = true;
}

static void XMLCALL on_cdata_end(void *ud)
{
    xml_parser_t *p = ud;
    if (p->err == CORE_STREAM_ERR_NONE && token_seen(p))
        p->in_cdata = false;
}

static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    xml_parser_t *p = ud;
    (void)version;
    (void)standalone;
    if (p->err != CORE_STREAM_ERR_NONE || !token_seen(p))
        return;
    /* RFC 6120 §11.6: UTF-8 only. */
    if (encoding != NULL && strcasecmp(encoding, "UTF-8") != 0)
        fail(p, CORE_STREAM_ERR_UNSUPPORTED_ENCODING, "encoding other than UTF-8");
}

/* RFC 6120 §11.1: no DTDs, entity declarations, processing instructions or comments. */
static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    fail(ud, CORE_STREAM_ERR_RESTRICTED_XML, "document type declaration");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    fail(ud, CORE_STREAM_ERR_RESTRICTED_XML, "entity declaration");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)target;
    (void)data;
    fail(ud, CORE_STREAM_ERR_RESTRICTED_XML, "processing instruction");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    fail(ud, CORE_STREAM_ERR_RESTRICTED_XML, "comment");
}

/* ---- expat setup ---- */

static const XML_Memory_Handling_Suite expat_memory = {
    .malloc_fcn = core_malloc,
    .realloc_fcn = core_realloc,
    .free_fcn = core_free,
};

/*
 * Expat 2.6 (and distributions' backports of its fix for CVE-2023-52425) may hold back a
 * complete token until more bytes arrive. A stanza must never wait for the next packet, and
 * careful mode bounds re-scanning here instead, so turn that off where it exists. The
 * Debian 12 expat 2.5.0 has no such deferral; the weak reference finds the call on any
 * build that has it, whatever its version number says.
 */
extern XML_Bool XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled)
    __attribute__((weak));

static void expat_no_deferral(XML_Parser x)
{
    if (XML_SetReparseDeferralEnabled != NULL)
        XML_SetReparseDeferralEnabled(x, XML_FALSE);
}

static void expat_start(xml_parser_t *p)
{
    static const XML_Char sep[] = {NS_SEP, '\0'};
    XML_Parser x = p->expat;
    /* A restart (after STARTTLS and SASL) reuses the parser: a reset keeps its memory and
     * its namespace processing, and clears the handlers, which are set again below. */
    if (x == NULL || XML_ParserReset(x, "UTF-8") != XML_TRUE) {
        if (x != NULL)
            XML_ParserFree(x);
        x = XML_ParserCreate_MM("UTF-8", &expat_memory, sep);
    }
    if (x == NULL)
        abort(); /* core_malloc does not fail, so this is a broken expat */
    XML_SetReturnNSTriplet(x, XML_TRUE);
    XML_SetUserData(x, p);
    XML_SetElementHandler(x, on_start, on_end);
    XML_SetCharacterDataHandler(x, on_text);
    XML_SetNamespaceDeclHandler(x, on_ns_start, on_ns_end);
    XML_SetCdataSectionHandler(x, on_cdata_start, on_cdata_end);
    XML_SetXmlDeclHandler(x, on_xml_decl);
    XML_SetStartDoctypeDeclHandler(x, on_doctype);
    XML_SetEntityDeclHandler(x, on_entity_decl);
    XML_SetProcessingInstructionHandler(x, on_pi);
    XML_SetCommentHandler(x, on_comment);
    expat_no_deferral(x);
    p->expat = x;
}

/* Forgets everything about the current stream except the input bytes and the error. */
static void stream_reset(xml_parser_t *p)
{
    queue_clear(p);
    xml_stanza_unref(p->cur_st);
    p->cur_st = NULL;
    p->cur = NULL;
    p->text.len = 0;
    core_free(p->stream_ns);
    p->stream_ns = NULL;
    p->stream_ns_len = 0;
    core_free(p->stream_prefix);
    p->stream_prefix = NULL;
    root_decls_clear(p);
    p->level = 0;
    p->decls = 0;
    p->nprefixes = 0;
    p->bytes_ok = true;
    p->suspended = false;
    p->in_cdata = false;
    p->careful = false;
}

xml_parser_t *xml_parser_new(const xml_limits_t *limits)
{
    xml_parser_t *p = core_calloc(1, sizeof(*p));
    p->limits = limits != NULL ? *limits : xml_limits_default;
    p->bytes_ok = true;
    p->arena_hint = 1024;
    expat_start(p);
    return p;
}

void xml_parser_free(xml_parser_t *p)
{
    if (p == NULL)
        return;
    stream_reset(p);
    if (p->expat != NULL)
        XML_ParserFree(p->expat);
    core_buf_release(&p->in);
    core_buf_release(&p->text);
    core_free(p->prefixes);
    core_free(p->root_decls);
    core_free(p);
}

void xml_parser_restart(xml_parser_t *p, bool keep_unparsed)
{
    stream_reset(p);
    uint64_t end = p->in_abs + p->in.len;
    if (!keep_unparsed) {
        core_buf_release(&p->in);
        p->in_abs = end;
        p->keep_abs = end;
    }
    p->fed_abs = p->keep_abs;
    p->expat_abs = p->keep_abs;
    p->tok_end_abs = p->keep_abs;
    p->restarted = true;
    expat_start(p);
}

/*
 * Whitespace after the old stream's last element (RFC 6120 §11.7 allows it between
 * elements) belongs to the old stream, not to the restarted one, where it would put the XML
 * declaration off the start of the entity. It may have been left unparsed (the owner paused
 * after the element) or arrive after the restart: skipped until the new stream's first byte.
 */
static void skip_restart_space(xml_parser_t *p)
{
    uint64_t end = p->in_abs + p->in.len;
    uint64_t at = p->fed_abs;
    while (at < end) {
        char ch = p->in.data[at - p->in_abs];
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
            p->restarted = false;
            break;
        }
        at++;
    }
    p->keep_abs = p->fed_abs = p->expat_abs = p->tok_end_abs = at;
}

int xml_parser_feed(xml_parser_t *p, const char *data, size_t len)
{
    if (p->err != CORE_STREAM_ERR_NONE)
        return -EPROTO;
    if (len == 0)
        return 0;
    /* Drop what no event needs any more, when that is cheap relative to what is kept. */
    size_t drop = (size_t)(p->keep_abs - p->in_abs);
    if (drop > 0 && (drop >= p->in.len / 2 || p->in.cap - p->in.len < len)) {
        core_buf_consume(&p->in, drop);
        p->in_abs = p->keep_abs;
    }
    core_buf_append(&p->in, data, len);
    return 0;
}

/* ---- the token scanner for careful mode ---- */

static void scan_enter(xml_parser_t *p, scan_state_t s, unsigned count)
{
    p->scan = s;
    p->scan_count = count;
}

/*
 * Advances the scanner over [scan_abs, end), recording in safe_abs the last position that
 * lies between tokens. It follows XML's lexical structure only (quotes in tags, comment,
 * PI and CDATA ends); expat still judges the bytes. On well-formed input it is exact, so
 * every event-ending '>' is found; on malformed input it may only delay expat's verdict.
 */
static void scan(xml_parser_t *p, uint64_t end)
{
    const char *base = p->in.data;
    size_t i = (size_t)(p->scan_abs - p->in_abs);
    size_t n = (size_t)(end - p->in_abs);
    static const char cdata_open[] = "[CDATA[";
    while (i < n) {
        char c = base[i];
        switch (p->scan) {
        case SCAN_TEXT:
            p->safe_abs = p->in_abs + i;
            if (c == '<')
                scan_enter(p, SCAN_LT, 0);
            else if (c == '&')
                scan_enter(p, SCAN_REF, 0);
            break;
        case SCAN_REF:
            if (c == ';')
                scan_enter(p, SCAN_TEXT, 0);
            else if (c == '<')
                scan_enter(p, SCAN_LT, 0);
            break;
        case SCAN_LT:
            if (c == '!') {
                scan_enter(p, SCAN_BANG, 0);
            } else if (c == '?') {
                scan_enter(p, SCAN_PI, 0);
            } else {
                scan_enter(p, SCAN_TAG, 0);
                continue; /* rescan c as part of the tag */
            }
            break;
        case SCAN_TAG:
            if (c == '>')
                scan_enter(p, SCAN_TEXT, 0);
            else if (c == '"' || c == '\'') {
                p->scan_quote = c;
                scan_enter(p, SCAN_TAG_QUOTE, 0);
            }
            break;
        case SCAN_TAG_QUOTE:
            if (c == p->scan_quote)
                scan_enter(p, SCAN_TAG, 0);
            break;
        case SCAN_PI:
            if (c == '>' && p->scan_count == 1)
                scan_enter(p, SCAN_TEXT, 0);
            else
                p->scan_count = c == '?';
            break;
        case SCAN_BANG:
            if (c == '-') {
                scan_enter(p, SCAN_BANG_DASH, 0);
            } else if (c == '[') {
                scan_enter(p, SCAN_CDATA_OPEN, 1);
            } else {
                scan_enter(p, SCAN_DECL, 0);
                continue;
            }
            break;
        case SCAN_BANG_DASH:
            if (c == '-') {
                scan_enter(p, SCAN_COMMENT, 0);
            } else {
                scan_enter(p, SCAN_DECL, 0);
                continue;
            }
            break;
        case SCAN_CDATA_OPEN:
            if (c != cdata_open[p->scan_count]) {
                scan_enter(p, SCAN_DECL, 0);
                continue;
            }
            if (++p->scan_count == sizeof(cdata_open) - 1)
                scan_enter(p, SCAN_CDATA, 0);
            break;
        case SCAN_COMMENT:
            if (c == '>' && p->scan_count >= 2)
                scan_enter(p, SCAN_TEXT, 0);
            else
                p->scan_count = c == '-' ? p->scan_count + 1 : 0;
            break;
        case SCAN_CDATA:
            if (c == '>' && p->scan_count >= 2)
                scan_enter(p, SCAN_TEXT, 0);
            else
                p->scan_count = c == ']' ? p->scan_count + 1 : 0;
            break;
        case SCAN_DECL:
            /* A DOCTYPE is refused once expat reaches its '[' or '>'. */
            if (c == '>' || c == '[')
                scan_enter(p, SCAN_TEXT, 0);
            else if (c == '"' || c == '\'') {
                p->scan_quote = c;
                scan_enter(p, SCAN_DECL_QUOTE, 0);
            }
            break;
        case SCAN_DECL_QUOTE:
            if (c == p->scan_quote)
                scan_enter(p, SCAN_DECL, 0);
            break;
        }
        i++;
    }
    if (p->scan == SCAN_TEXT)
        p->safe_abs = end;
    p->scan_abs = end;
}

/* ---- driving expat ---- */

/* How many bytes from fed_abs to hand expat now (0: none until more input arrives). */
static size_t next_chunk(xml_parser_t *p)
{
    uint64_t end = p->in_abs + p->in.len;
    size_t avail = (size_t)(end - p->fed_abs);
    if (p->careful) {
        scan(p, end);
        avail = p->safe_abs > p->fed_abs ? (size_t)(p->safe_abs - p->fed_abs) : 0;
    } else if (avail > FEED_SLICE) {
        /* Prefer to end the slice after a '>', so expat keeps no partial tag. */
        const char *s = p->in.data + (p->fed_abs - p->in_abs);
        const char *gt = memrchr(s + FEED_SLICE / 2, '>', FEED_SLICE / 2);
        avail = gt != NULL ? (size_t)(gt - s) + 1 : FEED_SLICE;
    }
    return avail > INT_MAX / 2 ? INT_MAX / 2 : avail;
}

static void after_parse(xml_parser_t *p, enum XML_Status status)
{
    p->parse_calls++;
    switch (status) {
    case XML_STATUS_ERROR:
        if (p->err == CORE_STREAM_ERR_NONE)
            fail(p, CORE_STREAM_ERR_NOT_WELL_FORMED, XML_ErrorString(XML_GetErrorCode(p->expat)));
        return;
    case XML_STATUS_SUSPENDED:
        p->suspended = true;
        return;
    case XML_STATUS_OK:
        break;
    }
    p->suspended = false;
    if (p->err != CORE_STREAM_ERR_NONE)
        return;
    /* Everything fed was tokenised except what expat holds as an incomplete token. */
    if (p->fed_abs - p->tok_end_abs <= PARTIAL_TOKEN_MAX) {
        p->careful = false;
    } else if (!p->careful) {
        p->careful = true;
        p->scan_abs = p->tok_end_abs;
        p->safe_abs = p->tok_end_abs;
        scan_enter(p, p->in_cdata ? SCAN_CDATA : SCAN_TEXT, 0);
    }
}

bool xml_parser_idle(xml_parser_t *p)
{
    uint64_t end = p->in_abs + p->in.len;
    if (p->expat == NULL)
        return true;
    /* Only between stanzas, with every byte parsed: then the root is all expat knows. */
    if (p->err != CORE_STREAM_ERR_NONE || p->level != 1 || p->root_qname == NULL ||
        p->cur_st != NULL || p->qlen > 0 || p->suspended || p->careful || p->in_cdata ||
        p->fed_abs != end || p->tok_end_abs != end || p->text.len > 0)
        return false;
    XML_ParserFree(p->expat);
    p->expat = NULL;
    core_buf_release(&p->in);
    p->in_abs = end;
    p->keep_abs = end;
    core_buf_release(&p->text); /* sized by the largest text seen: not worth keeping */
    core_free(p->prefixes); /* none is in use between stanzas */
    p->prefixes = NULL;
    p->prefixes_cap = 0;
    p->nprefixes = 0;
    return true;
}

/*
 * A new expat for a stream whose old one xml_parser_idle freed: it reads a replay of the
 * stream root (its name and namespace declarations, escaped by the serialiser's rules), so
 * the peer's next bytes parse in the same scope. The replay's bytes are placed just before
 * fed_abs in the byte count, so every offset after it is where it was.
 */
static void expat_rebuild(xml_parser_t *p)
{
    expat_start(p);
    core_buf_t h = {0};
    core_buf_append(&h, "<", 1);
    core_buf_append_str(&h, p->root_qname);
    for (unsigned i = 0; i + 1 < p->nroot_decls; i += 2) {
        core_buf_append_str(&h, p->root_decls[i] != NULL ? " xmlns:" : " xmlns");
        if (p->root_decls[i] != NULL)
            core_buf_append_str(&h, p->root_decls[i]);
        core_buf_append(&h, "=\"", 2); /* xml_escape quotes for "-quoted values */
        xml_escape(&h, p->root_decls[i + 1], strlen(p->root_decls[i + 1]), true);
        core_buf_append(&h, "\"", 1);
    }
    core_buf_append(&h, ">", 1);
    p->expat_abs = p->fed_abs - h.len;
    p->priming = true;
    p->level = 0;
    enum XML_Status st = XML_Parse(p->expat, h.data, (int)h.len, XML_FALSE);
    p->priming = false;
    core_buf_release(&h);
    p->tok_end_abs = p->fed_abs;
    p->decls = 0;
    /* The same names parsed once already; should the replay differ, end the stream rather
     * than parse the peer's bytes in another scope. */
    if (st != XML_STATUS_OK || p->level != 1)
        fail(p, CORE_STREAM_ERR_INTERNAL_SERVER_ERROR, "cannot rebuild the parser");
}

int xml_parser_next(xml_parser_t *p, xml_event_t *ev)
{
    for (;;) {
        if (p->qlen > 0) {
            *ev = p->queue[p->qhead];
            p->qhead = (p->qhead + 1) % QUEUE_CAP;
            p->qlen--;
            return 0;
        }
        if (p->err != CORE_STREAM_ERR_NONE)
            return -EPROTO;
        if (p->suspended) {
            after_parse(p, XML_ResumeParser(p->expat));
            continue;
        }
        if (p->restarted)
            skip_restart_space(p);
        size_t n = next_chunk(p);
        if (n > 0 && p->expat == NULL)
            expat_rebuild(p);
        if (n > 0) {
            const char *s = p->in.data + (p->fed_abs - p->in_abs);
            p->fed_abs += n;
            after_parse(p, XML_Parse(p->expat, s, (int)n, XML_FALSE));
            continue;
        }
        /* Nothing complete: bound what a peer can make us hold between events. */
        uint64_t end = p->in_abs + p->in.len;
        if (end - p->keep_abs > p->limits.max_stanza_bytes) {
            fail(p, CORE_STREAM_ERR_POLICY_VIOLATION, "incomplete element too large");
            continue;
        }
        if (p->keep_abs == end && p->in.data != NULL) {
            core_buf_release(&p->in); /* idle: hold no input buffer */
            p->in_abs = end;
        }
        return -EAGAIN;
    }
}

core_stream_err_t xml_parser_error(const xml_parser_t *p, const char **detail)
{
    if (detail != NULL)
        *detail = p->err != CORE_STREAM_ERR_NONE ? p->detail : NULL;
    return p->err;
}

const char *xml_parser_stream_ns(const xml_parser_t *p)
{
    return p->stream_ns;
}

const char *xml_parser_stream_prefix(const xml_parser_t *p)
{
    return p->stream_prefix;
}

size_t xml_parser_pending(const xml_parser_t *p)
{
    return (size_t)(p->in_abs + p->in.len - p->keep_abs);
}

unsigned long xml_parser_parse_calls(const xml_parser_t *p)
{
    return p->parse_calls;
}

xml_stanza_t *xml_stanza_parse(const char *data, size_t len)
{
    static const char open[] = "<stream xmlns='jabber:client'>";
    xml_limits_t lim = xml_limits_default;
    /* Stored elements were checked when they arrived; a document may be bigger than one. */
    if (len + 64 > lim.max_stanza_bytes)
        lim.max_stanza_bytes = len + 64;
    xml_parser_t *p = xml_parser_new(&lim);
    xml_stanza_t *st = NULL;
    xml_event_t ev = {0};
    xml_parser_feed(p, open, sizeof(open) - 1);
    xml_parser_feed(p, data, len);
    if (xml_parser_next(p, &ev) == 0) {
        bool opened = ev.kind == XMLS_EV_STREAM_OPEN;
        xml_stanza_unref(ev.stanza);
        if (opened && xml_parser_next(p, &ev) == 0) {
            if (ev.kind == XMLS_EV_ELEMENT)
                st = ev.stanza;
            else
                xml_stanza_unref(ev.stanza);
        }
    }
    xml_parser_free(p);
    return st;
}
