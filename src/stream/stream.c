/* SPDX-License-Identifier: MIT */
/* The XMPP stream: parser events to the owner, stream errors and orderly closes. */
#include "stream/stream.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <string.h>

/* How long a closing stream waits for the peer to read what is still queued. */
#define CLOSE_FLUSH_MS 5000

static void on_deadline(uv_timer_t *t);
static void close_flushing(stream_t *s);
static void on_conn_read(net_conn_t *c, const char *data, size_t len);
static void on_conn_close(net_conn_t *c, int status);

static void on_conn_drain(net_conn_t *c);

/* A quiet stream keeps no expat state: most client streams are idle most of the time. */
static void on_conn_quiet(net_conn_t *c)
{
    stream_t *s = c->ud;
    if (s != NULL && s->parser != NULL)
        xml_parser_idle(s->parser);
}

static const net_conn_ops_t stream_conn_ops = {
    .on_read = on_conn_read,
    .on_close = on_conn_close,
    .on_drain = on_conn_drain,
    .on_quiet = on_conn_quiet,
};

stream_t *stream_new(net_conn_t *c, const char *content_ns, const xml_limits_t *limits,
                     const stream_ops_t *ops, void *ud, const core_log_t *log)
{
    stream_t *s = core_calloc(1, sizeof(*s));
    s->conn = c;
    s->parser = xml_parser_new(limits);
    s->ops = ops;
    s->ud = ud;
    s->log = log;
    s->content_ns = content_ns;
    uv_timer_init(c->ctx->loop, &s->timer);
    s->timer.data = s;
    c->ops = &stream_conn_ops;
    c->ud = s;
    net_conn_read_start(c);
    return s;
}

uint64_t stream_conn_id(const stream_t *s)
{
    return s->conn != NULL ? s->conn->id : 0;
}

static int write_pieces(stream_t *s, const core_span_t *v, size_t n)
{
    if (s->conn == NULL)
        return -EPIPE;
    int err = net_conn_writev(s->conn, v, n);
    /*
     * The peer does not read what we send: rather than queue without bound, the stream
     * ends. RFC 6120 §4.9.3.14 <policy-violation/> ("some local service policy"): the
     * output limit is our policy, while <resource-constraint/> (§4.9.3.17) would blame the
     * server's own resources, which are fine. The error goes out past the limit, so a peer
     * that reads again within the close's flush deadline learns why.
     */
    if (err == -ENOBUFS)
        stream_error(s, CORE_STREAM_ERR_POLICY_VIOLATION, "output queue over its limit");
    return err;
}

static int write_bytes(stream_t *s, const char *data, size_t len)
{
    core_span_t v = {data, len};
    return write_pieces(s, &v, 1);
}

/* Our last words on a stream (its error and end) go out even past the output limit. */
static void write_last(stream_t *s, const char *data, size_t len)
{
    if (s->conn != NULL)
        net_conn_write_last(s->conn, data, len);
}

static void append_attr(core_buf_t *b, const char *name, const char *value)
{
    if (value == NULL)
        return;
    core_buf_append_str(b, " ");
    core_buf_append_str(b, name);
    core_buf_append_str(b, "='");
    xml_escape(b, value, strlen(value), true);
    core_buf_append_str(b, "'");
}

static void header_bytes(stream_t *s, core_buf_t *b, const char *from, const char *to,
                         const char *id, const char *version)
{
    core_buf_append_str(b, "<?xml version='1.0'?><stream:stream xmlns='");
    core_buf_append_str(b, s->content_ns);
    core_buf_append_str(b, "' xmlns:stream='" XMLS_NS_STREAMS "'");
    append_attr(b, "from", from);
    append_attr(b, "to", to);
    append_attr(b, "id", id);
    append_attr(b, "version", version);
    core_buf_append_str(b, ">");
}

int stream_send_header(stream_t *s, const char *from, const char *to, const char *id,
                       const char *version)
{
    core_buf_t b = {0};
    header_bytes(s, &b, from, to, id, version);
    int err = write_bytes(s, b.data, b.len);
    core_buf_release(&b);
    if (err == 0)
        s->header_sent = true;
    return err;
}

int stream_send(stream_t *s, xml_stanza_t *st)
{
    if (s->closing || s->conn == NULL)
        return -EPIPE;
    /* In pieces: a readdressed stanza's shared content is written from its one buffer. */
    core_span_t v[XMLS_PIECES_MAX];
    size_t n = xml_stanza_pieces(st, v);
    return write_pieces(s, v, n);
}

void stream_error(stream_t *s, core_stream_err_t cond, const char *text)
{
    stream_error_app(s, cond, NULL, text);
}

void stream_error_app(stream_t *s, core_stream_err_t cond, xml_stanza_t *app, const char *text)
{
    if (s->closing || s->conn == NULL)
        return;
    core_log(s->log, CORE_LOG_INFO, s->conn->id, "stream error <%s/>%s%s",
             core_stream_err_name(cond), text ? ": " : "", text ? text : "");
    /* Closing from here on: a write that fails below cannot come back here. */
    s->closing = true;
    s->error_sent = true;
    core_buf_t b = {0};
    if (!s->header_sent)
        header_bytes(s, &b, NULL, NULL, NULL, "1.0");
    s->header_sent = true;
    core_buf_append_str(&b, "<stream:error><");
    core_buf_append_str(&b, core_stream_err_name(cond));
    core_buf_append_str(&b, " xmlns='" CORE_NS_STREAM_ERRORS "'/>");
    if (app != NULL) {
        size_t len;
        const char *bytes = xml_stanza_bytes(app, &len);
        core_buf_append(&b, bytes, len);
    }
    if (text != NULL) {
        core_buf_append_str(&b, "<text xmlns='" CORE_NS_STREAM_ERRORS "'>");
        xml_escape(&b, text, strlen(text), false);
        core_buf_append_str(&b, "</text>");
    }
    core_buf_append_str(&b, "</stream:error></stream:stream>");
    write_last(s, b.data, b.len);
    core_buf_release(&b);
    close_flushing(s);
}

void stream_restart(stream_t *s, bool keep_unparsed)
{
    xml_parser_restart(s->parser, keep_unparsed);
    s->header_sent = false;
}

void stream_close(stream_t *s)
{
    if (s->closing || s->conn == NULL)
        return;
    s->closing = true;
    if (s->header_sent)
        write_last(s, "</stream:stream>", 16);
    close_flushing(s);
}

static void on_deadline(uv_timer_t *t)
{
    stream_t *s = t->data;
    if (s->closing) {
        /* The peer did not take our last words in time: stop waiting for it. */
        if (s->conn != NULL)
            net_conn_close(s->conn, false);
        return;
    }
    if (s->ops->on_deadline != NULL)
        s->ops->on_deadline(s, s->deadline_err);
    else
        stream_error(s, s->deadline_err, NULL);
}

/* Closes after what is queued is written, but not waiting longer than CLOSE_FLUSH_MS. */
static void close_flushing(stream_t *s)
{
    if (s->conn == NULL)
        return;
    net_conn_close(s->conn, true);
    if (s->conn != NULL && !s->gone)
        uv_timer_start(&s->timer, on_deadline, CLOSE_FLUSH_MS, 0);
}

void stream_set_deadline(stream_t *s, uint64_t ms, core_stream_err_t cond)
{
    uv_timer_stop(&s->timer);
    if (ms == 0 || s->gone || s->closing)
        return;
    s->deadline_err = cond;
    uv_timer_start(&s->timer, on_deadline, ms, 0);
}

/* RFC 6120 §4.8: the root must be <stream:stream> in the streams namespace, with the
 * expected content namespace as its default. */
static bool check_header(stream_t *s, xml_stanza_t *hdr)
{
    if (!xml_node_is(hdr->root, XMLS_NS_STREAMS, "stream")) {
        stream_error(s, CORE_STREAM_ERR_INVALID_NAMESPACE, NULL);
        return false;
    }
    const char *prefix = xml_parser_stream_prefix(s->parser);
    if (prefix == NULL || strcmp(prefix, "stream") != 0) {
        stream_error(s, CORE_STREAM_ERR_BAD_NAMESPACE_PREFIX, NULL);
        return false;
    }
    const char *ns = xml_parser_stream_ns(s->parser);
    if (ns == NULL || strcmp(ns, s->content_ns) != 0) {
        stream_error(s, CORE_STREAM_ERR_INVALID_NAMESPACE, NULL);
        return false;
    }
    return true;
}

/* Hands parsed events to the owner until input runs out, or the owner closes or pauses. */
static void process(stream_t *s)
{
    net_conn_t *c = s->conn;
    xml_event_t ev;
    int err = 0;
    /* The owner may close the stream on any event: stop at once when it does. */
    while (!s->closing && !s->paused && s->conn != NULL &&
           (err = xml_parser_next(s->parser, &ev)) == 0) {
        switch (ev.kind) {
        case XMLS_EV_STREAM_OPEN:
            if (check_header(s, ev.stanza))
                s->ops->on_open(s, ev.stanza);
            break;
        case XMLS_EV_ELEMENT:
            s->ops->on_element(s, ev.stanza);
            break;
        case XMLS_EV_STREAM_CLOSE:
            core_log(s->log, CORE_LOG_DEBUG, c->id, "peer closed the stream");
            s->peer_closed = true;
            stream_close(s);
            break;
        }
        xml_stanza_unref(ev.stanza);
    }
    if (err == -EPROTO && !s->closing) {
        const char *detail = NULL;
        core_stream_err_t cond = xml_parser_error(s->parser, &detail);
        stream_error(s, cond, NULL);
        if (detail != NULL)
            core_log(s->log, CORE_LOG_INFO, c->id, "parse error: %s", detail);
    }
}

static void on_conn_read(net_conn_t *c, const char *data, size_t len)
{
    stream_t *s = c->ud;
    if (s->closing)
        return;
    if (xml_parser_feed(s->parser, data, len) < 0)
        return;
    process(s);
}

void stream_pause_reading(stream_t *s, bool paused)
{
    if (s->conn == NULL || s->paused == paused)
        return;
    s->paused = paused;
    if (paused) {
        net_conn_read_stop(s->conn);
        return;
    }
    /* Events already read wait in the parser: hand them over before reading more. */
    process(s);
    if (!s->paused && s->conn != NULL && !s->closing)
        net_conn_read_start(s->conn);
}

static void on_conn_drain(net_conn_t *c)
{
    stream_t *s = c->ud;
    if (s->ops->on_drain != NULL)
        s->ops->on_drain(s);
}

size_t stream_backlog(const stream_t *s)
{
    return s->conn != NULL ? net_conn_queued(s->conn) : 0;
}

void stream_want_drain(stream_t *s)
{
    if (s->conn != NULL)
        net_conn_want_drain(s->conn);
}

static void on_timer_closed(uv_handle_t *h)
{
    stream_t *s = h->data;
    xml_parser_free(s->parser);
    core_free(s);
}

static void on_conn_close(net_conn_t *c, int status)
{
    stream_t *s = c->ud;
    if (status < 0)
        core_log(s->log, CORE_LOG_INFO, c->id, "connection lost: %s", uv_strerror(status));
    else if (!s->closing)
        core_log(s->log, CORE_LOG_INFO, c->id, "peer disconnected without closing the stream");
    s->conn = NULL;
    s->gone = true;
    s->closing = true;
    uv_timer_stop(&s->timer);
    s->ops->on_gone(s);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
