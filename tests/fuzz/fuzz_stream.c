/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target for the XML stream parser. The first byte chooses a split size; the rest is a
 * stream. Oracles: feeding it in pieces gives the events of feeding it whole, every element
 * serialised and re-parsed is the same tree, and kept input bytes mean the same on a stream
 * of another kind.
 */
#include "core/alloc.h"
#include "xml/xml.h"

#include "../common/xml_dump.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits, so short inputs reach them too. */
static const xml_limits_t fuzz_limits = {
    .max_stanza_bytes = 4096,
    .max_depth = 16,
    .max_attrs = 16,
};

/* Re-parsing serialised output: escaping and generated prefixes make it larger. */
static const xml_limits_t loose_limits = {
    .max_stanza_bytes = 1 << 24,
    .max_depth = 64,
    .max_attrs = 1024,
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_stream: %s\n", what);
        abort();
    }
}

static char *dump(const xml_node_t *n)
{
    const char *fault = xml_dump_check(n);
    check(fault == NULL, fault ? fault : "");
    core_buf_t b = {0};
    xml_dump_node(n, &b);
    core_buf_append(&b, "", 1);
    size_t len;
    return core_buf_steal(&b, &len);
}

/* Parses one element inside a synthetic stream whose content namespace is ns. */
static char *reparse(const char *ns, const char *bytes, size_t len)
{
    core_buf_t s = {0};
    core_buf_append_str(&s, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'");
    if (ns != NULL) {
        core_buf_append_str(&s, " xmlns=\"");
        xml_escape(&s, ns, strlen(ns), true);
        core_buf_append_str(&s, "\"");
    }
    core_buf_append_str(&s, ">");
    core_buf_append(&s, bytes, len);
    xml_parser_t *p = xml_parser_new(&loose_limits);
    check(xml_parser_feed(p, s.data, s.len) == 0, "feed failed");
    core_buf_release(&s);
    xml_event_t ev;
    check(xml_parser_next(p, &ev) == 0 && ev.kind == XMLS_EV_STREAM_OPEN, "no stream open");
    xml_stanza_unref(ev.stanza);
    int rc = xml_parser_next(p, &ev);
    if (rc != 0) {
        const char *detail;
        core_stream_err_t e = xml_parser_error(p, &detail);
        fprintf(stderr, "re-parse failed (%s: %s): %.*s\n", core_stream_err_name(e),
                detail ? detail : "", (int)len, bytes);
    }
    check(rc == 0 && ev.kind == XMLS_EV_ELEMENT, "re-parse gave no element");
    char *d = dump(ev.stanza->root);
    xml_stanza_unref(ev.stanza);
    check(xml_parser_next(p, &ev) == -EAGAIN, "re-parse gave more");
    xml_parser_free(p);
    return d;
}

/* The round-trip oracles for one parsed element. */
static void check_element(xml_parser_t *p, xml_stanza_t *st, const char *tree)
{
    const char *ns = xml_parser_stream_ns(p);

    core_buf_t out = {0};
    xml_node_serialize(st->root, &out);
    char *again = reparse(ns, out.data, out.len);
    if (strcmp(tree, again) != 0)
        fprintf(stderr, "tree:  %s\nagain: %s\nxml:   %.*s\n", tree, again, (int)out.len, out.data);
    check(strcmp(tree, again) == 0, "serialise/parse round trip changed the tree");
    core_free(again);
    core_buf_release(&out);

    if (st->bytes != NULL) {
        const char *other =
            ns != NULL && strcmp(ns, XMLS_NS_CLIENT) == 0 ? XMLS_NS_SERVER : XMLS_NS_CLIENT;
        char *raw = reparse(other, st->bytes, st->bytes_len);
        if (strcmp(tree, raw) != 0)
            fprintf(stderr, "tree: %s\nraw:  %s\n", tree, raw);
        check(strcmp(tree, raw) == 0, "kept bytes mean something else on another stream");
        core_free(raw);
    }

    xml_stanza_t *copy = xml_stanza_copy(st);
    char *c = dump(copy->root);
    check(strcmp(tree, c) == 0, "copy differs");
    core_free(c);
    xml_stanza_unref(copy);
}

typedef struct run {
    core_buf_t events;
    core_stream_err_t err;
} run_t;

static void record(run_t *r, xml_parser_t *p, const xml_event_t *ev, bool oracles)
{
    switch (ev->kind) {
    case XMLS_EV_STREAM_OPEN: {
        char *d = dump(ev->stanza->root);
        core_buf_append_str(&r->events, "OPEN ");
        core_buf_append_str(&r->events, d);
        core_free(d);
        check(ev->stanza->root->first == NULL, "stream root with children");
        break;
    }
    case XMLS_EV_ELEMENT: {
        char *d = dump(ev->stanza->root);
        core_buf_append_str(&r->events, "EL ");
        core_buf_append_str(&r->events, d);
        if (ev->stanza->bytes != NULL) {
            core_buf_append_str(&r->events, " BYTES ");
            core_buf_append(&r->events, ev->stanza->bytes, ev->stanza->bytes_len);
        }
        if (oracles)
            check_element(p, ev->stanza, d);
        core_free(d);
        break;
    }
    case XMLS_EV_STREAM_CLOSE:
        core_buf_append_str(&r->events, "CLOSE");
        break;
    }
    core_buf_append(&r->events, "\n", 1);
}

/* Parses data fed step bytes at a time; a top-level <success/> restarts the stream. */
static void run(run_t *r, const uint8_t *data, size_t size, size_t step, bool oracles)
{
    xml_parser_t *p = xml_parser_new(&fuzz_limits);
    size_t off = 0;
    int rc = -EAGAIN;
    while (off < size && rc != -EPROTO) {
        size_t n = size - off < step ? size - off : step;
        rc = xml_parser_feed(p, (const char *)data + off, n);
        off += n;
        xml_event_t ev;
        while (rc != -EPROTO && (rc = xml_parser_next(p, &ev)) == 0) {
            record(r, p, &ev, oracles);
            bool restart =
                ev.kind == XMLS_EV_ELEMENT && strcmp(ev.stanza->root->name, "success") == 0;
            xml_stanza_unref(ev.stanza);
            if (restart)
                xml_parser_restart(p, true);
        }
    }
    r->err = xml_parser_error(p, NULL);
    check((rc == -EPROTO) == (r->err != CORE_STREAM_ERR_NONE), "error state mismatch");
    if (r->err == CORE_STREAM_ERR_NONE)
        check(xml_parser_pending(p) <= fuzz_limits.max_stanza_bytes, "too much pending");
    xml_parser_free(p);
    core_buf_append(&r->events, "", 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t step = data[0];
    data++;
    size--;
    if (step == 0 || step > size)
        step = size ? size : 1;

    run_t whole = {0}, split = {0};
    run(&whole, data, size, size ? size : 1, false);
    run(&split, data, size, step, true);

    if (whole.err == CORE_STREAM_ERR_NONE && split.err == CORE_STREAM_ERR_NONE) {
        check(strcmp(whole.events.data, split.events.data) == 0, "split changed the events");
    } else {
        /* One may stop earlier (a limit seen sooner), but never see different events. */
        size_t lw = strlen(whole.events.data), ls = strlen(split.events.data);
        const char *shorter = lw < ls ? whole.events.data : split.events.data;
        const char *longer = lw < ls ? split.events.data : whole.events.data;
        if (strncmp(shorter, longer, strlen(shorter)) != 0)
            fprintf(stderr, "whole:\n%s\nsplit:\n%s\n", whole.events.data, split.events.data);
        check(strncmp(shorter, longer, strlen(shorter)) == 0, "split changed the events");
        /*
         * A limit may be seen sooner in pieces; and expat may see an error in the last,
         * incomplete bytes sooner one way than the other (it does at a stream's first bytes,
         * where it looks for a byte order mark). Two different errors are a bug.
         */
        bool policy = whole.err == CORE_STREAM_ERR_POLICY_VIOLATION ||
            split.err == CORE_STREAM_ERR_POLICY_VIOLATION;
        bool both = whole.err != CORE_STREAM_ERR_NONE && split.err != CORE_STREAM_ERR_NONE;
        if (!policy && both) {
            if (whole.err != split.err)
                fprintf(stderr, "whole: %s, split: %s\n", core_stream_err_name(whole.err),
                        core_stream_err_name(split.err));
            check(whole.err == split.err, "split changed the error");
        }
    }
    core_buf_release(&whole.events);
    core_buf_release(&split.events);
    return 0;
}
