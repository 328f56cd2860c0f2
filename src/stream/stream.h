/* SPDX-License-Identifier: MIT */
/* An XMPP stream over a connection: headers, top-level elements, stream errors, closing. */
#ifndef PARLEY_STREAM_H
#define PARLEY_STREAM_H

#include "core/log.h"
#include "core/xmpp_error.h"
#include "net/net.h"
#include "xml/xml.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct stream stream_t;

/* What the owner of a stream is told; all on the loop thread, never after on_gone. */
typedef struct stream_ops {
    /*
     * The peer's stream header arrived and is well-formed XMPP: the root is
     * {http://etherx.jabber.org/streams}stream with the prefix "stream" and the expected
     * content namespace (else the stream layer has already sent the stream error).
     * header is borrowed; its root carries the attributes (to, from, id, version, xml:lang).
     */
    void (*on_open)(stream_t *s, xml_stanza_t *header);
    /* A top-level element arrived; st is borrowed (take a reference to keep it). */
    void (*on_element)(stream_t *s, xml_stanza_t *st);
    /* The connection is gone; s is freed when this returns. */
    void (*on_gone)(stream_t *s);
    /* Optional: all output was written, after stream_want_drain. */
    void (*on_drain)(stream_t *s);
    /* Optional: a deadline passed (default without it: stream_error with its condition). */
    void (*on_deadline)(stream_t *s, core_stream_err_t cond);
} stream_ops_t;

struct stream {
    net_conn_t *conn; /* NULL once the connection is gone */
    xml_parser_t *parser; /* owned */
    const stream_ops_t *ops;
    void *ud; /* the owner's object */
    const core_log_t *log; /* borrowed */
    const char *content_ns; /* borrowed: the namespace both sides must use */
    uv_timer_t timer; /* deadline, see stream_set_deadline */
    core_stream_err_t deadline_err;
    bool header_sent;
    bool closing; /* we sent or are sending </stream:stream> */
    bool paused; /* stream_pause_reading: no reads, no events */
    bool gone;
    bool peer_closed; /* the peer sent </stream:stream> (a clean close, RFC 6120 §4.4) */
    bool error_sent; /* we sent a stream error */
};

/*
 * Wraps an established connection (takes it over: c->ops and c->ud are set here) and starts
 * reading. content_ns is e.g. XMLS_NS_COMPONENT. limits NULL: defaults.
 */
stream_t *stream_new(net_conn_t *c, const char *content_ns, const xml_limits_t *limits,
                     const stream_ops_t *ops, void *ud, const core_log_t *log);

/* The connection id, for the logs. */
uint64_t stream_conn_id(const stream_t *s);

/*
 * Writes our stream header (with an XML declaration). Attributes that are NULL are left
 * out; values are escaped. Returns 0 or a negative error.
 */
int stream_send_header(stream_t *s, const char *from, const char *to, const char *id,
                       const char *version);

/* Writes a top-level element (borrowed). Returns 0, -EPIPE when closing, -ENOBUFS (slow
 * peer: the stream is then closed with <policy-violation/>). */
int stream_send(stream_t *s, xml_stanza_t *st);

/*
 * Sends <stream:error> with the condition (and optional descriptive text) and
 * </stream:stream>, then closes the connection once that is written. Sends our header
 * first if it has not been sent (RFC 6120 §4.9.1.1). Logged at info. Idempotent.
 */
void stream_error(stream_t *s, core_stream_err_t cond, const char *text);

/*
 * The same with an application-specific condition element (RFC 6120 §4.9.4) after the
 * defined one: app (borrowed) is serialised as it is, e.g. XEP-0198's
 * <handled-count-too-high/>.
 */
void stream_error_app(stream_t *s, core_stream_err_t cond, xml_stanza_t *app, const char *text);

/*
 * Starts a new stream on the same connection (RFC 6120 §4.3.3: after STARTTLS and after SASL
 * success): a fresh parser state, and our next header is sent again. keep_unparsed false
 * drops bytes received but not yet parsed (plaintext after <starttls/>). Callable from
 * on_element; the next event comes from the new stream.
 */
void stream_restart(stream_t *s, bool keep_unparsed);

/* Sends </stream:stream> and closes once it is written. Idempotent. */
void stream_close(stream_t *s);

/*
 * Flow control. pause_reading stops reading and handing events to the owner (events already
 * parsed wait); resuming hands them over first. backlog: bytes written but not yet taken by
 * the kernel. want_drain: one on_drain call once the backlog is empty.
 */
void stream_pause_reading(stream_t *s, bool paused);
size_t stream_backlog(const stream_t *s);
void stream_want_drain(stream_t *s);

/*
 * Arms (ms > 0) or disarms (ms == 0) a deadline: when it passes, ops->on_deadline, or
 * stream_error(cond) without one. A closing stream has its own deadline for the flush.
 */
void stream_set_deadline(stream_t *s, uint64_t ms, core_stream_err_t cond);

#endif
