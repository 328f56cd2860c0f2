/* SPDX-License-Identifier: MIT */
/* The routing table and the routing rules, with fake links. */
#include "router/internal.h"
#include "router_fixture.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

typedef struct fake_link {
    link_t link;
    xml_stanza_t *got[16];
    int n;
    core_stream_err_t closed;
    bool refuse; /* a link that is closing */
    size_t backlog; /* bytes it pretends not to have written yet */
    int paused; /* pause(true) minus pause(false) */
} fake_link_t;

static int fake_deliver(link_t *l, xml_stanza_t *st)
{
    fake_link_t *f = (fake_link_t *)l;
    if (f->refuse)
        return -EPIPE;
    assert_true(f->n < 16);
    f->got[f->n++] = xml_stanza_ref(st);
    return 0;
}

static void fake_close(link_t *l, core_stream_err_t why)
{
    ((fake_link_t *)l)->closed = why;
}

static size_t fake_backlog(link_t *l)
{
    return ((fake_link_t *)l)->backlog;
}

static void fake_pause(link_t *l, bool paused)
{
    ((fake_link_t *)l)->paused += paused ? 1 : -1;
}

static const link_ops_t fake_ops = {
    .deliver = fake_deliver,
    .close = fake_close,
    .backlog = fake_backlog,
    .pause = fake_pause,
};

static void fake_init(fake_link_t *f)
{
    memset(f, 0, sizeof(*f));
    f->link.ops = &fake_ops;
}

static void fake_reset(fake_link_t *f)
{
    for (int i = 0; i < f->n; i++)
        xml_stanza_unref(f->got[i]);
    f->n = 0;
    f->closed = CORE_STREAM_ERR_NONE;
}

static void test_table(void **state)
{
    core_map_t t;
    core_map_init(&t);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "host%d.example", i);
        core_map_put(&t, key, (size_t)n, (void *)(intptr_t)(i + 1));
    }
    assert_int_equal(t.count, 1000);
    for (int i = 0; i < 1000; i++) {
        int n = snprintf(key, sizeof(key), "host%d.example", i);
        assert_int_equal((intptr_t)core_map_get(&t, key, (size_t)n), i + 1);
    }
    assert_null(core_map_get(&t, "host1000.example", 16));
    /* A prefix of a key is another key. */
    assert_null(core_map_get(&t, "host1.exampl", 12));
    assert_int_equal((intptr_t)core_map_del(&t, "host5.example", 13), 6);
    assert_null(core_map_get(&t, "host5.example", 13));
    assert_null(core_map_del(&t, "host5.example", 13));
    core_map_put(&t, "host6.example", 13, (void *)(intptr_t)77);
    assert_int_equal((intptr_t)core_map_get(&t, "host6.example", 13), 77);
    assert_int_equal(t.count, 999);
    core_map_free(&t);
}

typedef struct fixture {
    uv_loop_t loop;
    core_log_t log;
    net_ctx_t net;
    core_cfg_t cfg;
    router_t *r;
    fake_link_t a, b, d;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->log = (core_log_t){.level = CORE_LOG_ERROR, .component = "test"};
    net_ctx_init(&f->net, &f->loop, &f->log);
    fixture_config(&f->cfg,
                   "[component \"a.test\"]\nsecret = s\n"
                   "[component \"b.test\"]\nsecret = s\nbind = x.test\n"
                   "[component \"c.test\"]\nsecret = s\n");
    assert_int_equal(router_new(&f->net, &f->log, &f->cfg, &f->r), 0);
    fake_init(&f->a);
    fake_init(&f->b);
    fake_init(&f->d);
    const link_hub_t *hub = router_hub(f->r);
    assert_int_equal(hub->bind(hub->ctx, &f->a.link, "a.test", false, true), 0);
    assert_int_equal(hub->bind(hub->ctx, &f->b.link, "b.test", false, true), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    fake_reset(&f->a);
    fake_reset(&f->b);
    fake_reset(&f->d);
    router_free(f->r);
    net_ctx_close(&f->net);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    core_cfg_free(&f->cfg);
    free(f);
    return 0;
}

static void send_from_a(fixture_t *f, const char *xml)
{
    xml_stanza_t *st = fixture_parse(xml);
    const link_hub_t *hub = router_hub(f->r);
    hub->input(hub->ctx, &f->a.link, st);
    xml_stanza_unref(st);
}

/* The bounce's condition element name, checking the RFC 6120 §8.3 shape on the way. */
static const char *bounce_condition(xml_stanza_t *st, const char *to, const char *from,
                                    const char *errtype)
{
    assert_string_equal(xml_stanza_type(st), "error");
    assert_string_equal(xml_stanza_to(st), to);
    assert_string_equal(xml_stanza_from(st), from);
    xml_node_t *e = xml_node_child(st->root, XMLS_NS_CONTENT, "error");
    assert_non_null(e);
    assert_string_equal(xml_node_attr(e, "type"), errtype);
    xml_node_t *cond = xml_node_child(e, CORE_NS_STANZA_ERRORS, NULL);
    assert_non_null(cond);
    return cond->name;
}

static void test_routes_by_reference(void **state)
{
    fixture_t *f = *state;
    xml_stanza_t *st = fixture_parse("<message from='a.test' to='u@b.test/r'><body>hi</body>"
                                     "<x xmlns='urn:example:unknown' k='v'>z</x></message>");
    const link_hub_t *hub = router_hub(f->r);
    hub->input(hub->ctx, &f->a.link, st);
    assert_int_equal(f->b.n, 1);
    assert_ptr_equal(f->b.got[0], st); /* the same tree: nothing copied or re-serialised */
    xml_stanza_unref(st);
    assert_int_equal(f->a.n, 0);
}

static void test_routes_prepared_domain(void **state)
{
    fixture_t *f = *state;
    send_from_a(f, "<message from='A.Test' to='someone@B.TEST./res'/>");
    assert_int_equal(f->b.n, 1);
    send_from_a(f, "<iq from='a.test' to='x.test' type='get' id='1'/>");
    /* x.test is configured for b but not bound: ours, so service-unavailable. */
    assert_int_equal(f->b.n, 1);
    assert_int_equal(f->a.n, 1);
    assert_string_equal(bounce_condition(f->a.got[0], "a.test", "x.test", "cancel"),
                        "service-unavailable");
}

static void test_bounce_unknown_domain(void **state)
{
    fixture_t *f = *state;
    send_from_a(f,
                "<message from='u@a.test/r' to='v@nowhere.example' id='m1'><body>x</body>"
                "</message>");
    assert_int_equal(f->a.n, 1);
    xml_stanza_t *b = f->a.got[0];
    assert_string_equal(bounce_condition(b, "u@a.test/r", "v@nowhere.example", "cancel"),
                        "remote-server-not-found");
    assert_string_equal(xml_stanza_id(b), "m1");
    /* The original payload comes back too. */
    assert_non_null(xml_node_child(b->root, XMLS_NS_CONTENT, "body"));
}

static void test_bounce_when_link_refuses(void **state)
{
    fixture_t *f = *state;
    f->b.refuse = true;
    send_from_a(f, "<message from='a.test' to='b.test' id='late'/>");
    assert_int_equal(f->a.n, 1);
    assert_string_equal(bounce_condition(f->a.got[0], "a.test", "b.test", "cancel"),
                        "service-unavailable");
}

static void test_bounce_absent_component(void **state)
{
    fixture_t *f = *state;
    send_from_a(f, "<presence from='a.test' to='room@c.test/nick'/>");
    assert_int_equal(f->a.n, 1);
    assert_string_equal(bounce_condition(f->a.got[0], "a.test", "room@c.test/nick", "cancel"),
                        "service-unavailable");
}

static void test_error_never_bounced(void **state)
{
    fixture_t *f = *state;
    send_from_a(f, "<message from='a.test' to='nowhere.example' type='error'/>");
    assert_int_equal(f->a.n, 0);
    router_stats_t s;
    router_get_stats(f->r, &s);
    assert_int_equal(s.dropped, 1);
}

static void test_spoofed_from(void **state)
{
    fixture_t *f = *state;
    send_from_a(f, "<message from='b.test' to='b.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_INVALID_FROM);
    assert_int_equal(f->b.n, 0);
    fake_reset(&f->a);
    send_from_a(f, "<message from='nowhere.example' to='b.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_INVALID_FROM);
    fake_reset(&f->a);
    send_from_a(f, "<message from='@a.test' to='b.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_INVALID_FROM);
}

static void test_addressing(void **state)
{
    fixture_t *f = *state;
    send_from_a(f, "<message from='a.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_IMPROPER_ADDRESSING);
    fake_reset(&f->a);
    send_from_a(f, "<message to='b.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_IMPROPER_ADDRESSING);
    fake_reset(&f->a);
    send_from_a(f, "<message from='a.test' to='u@@b.test'/>");
    assert_int_equal(f->a.n, 1);
    assert_string_equal(bounce_condition(f->a.got[0], "a.test", "u@@b.test", "modify"),
                        "jid-malformed");
    fake_reset(&f->a);
    send_from_a(f, "<foo from='a.test' to='b.test'/>");
    assert_int_equal(f->a.closed, CORE_STREAM_ERR_UNSUPPORTED_STANZA_TYPE);
    assert_int_equal(f->b.n, 0);
}

static void test_route_envelope(void **state)
{
    fixture_t *f = *state;
    send_from_a(f,
                "<route from='a.test' to='b.test' sid='s1'><message from='u@a.test/r' "
                "to='v@elsewhere.example'/></route>");
    assert_int_equal(f->b.n, 1);
    assert_true(xml_node_is(f->b.got[0]->root, XMLS_NS_CONTENT, "route"));
    /* Undeliverable envelopes bounce like stanzas, so the sender learns the peer is gone. */
    send_from_a(f, "<route from='a.test' to='c.test' sid='s2'/>");
    assert_int_equal(f->a.n, 1);
    assert_string_equal(bounce_condition(f->a.got[0], "a.test", "c.test", "cancel"),
                        "service-unavailable");
}

static void test_default_route(void **state)
{
    fixture_t *f = *state;
    const link_hub_t *hub = router_hub(f->r);
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, NULL, true, true), 0);
    send_from_a(f, "<message from='a.test' to='juliet@remote.example'/>");
    assert_int_equal(f->d.n, 1);
    /* Our own absent component is not handed to s2s. */
    send_from_a(f, "<message from='a.test' to='c.test'/>");
    assert_int_equal(f->d.n, 1);
    assert_int_equal(f->a.n, 1);
    hub->gone(hub->ctx, &f->d.link);
    send_from_a(f, "<message from='a.test' to='juliet@remote.example'/>");
    assert_int_equal(f->a.n, 2);
}

static void test_bind_rules(void **state)
{
    fixture_t *f = *state;
    const link_hub_t *hub = router_hub(f->r);
    /* One link per name. */
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, "b.test", false, true), -EEXIST);
    assert_int_equal(hub->bind(hub->ctx, &f->b.link, "b.test", false, true), 0);
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, "not a domain", false, true), -EINVAL);
    /* A stream link may bind only what its [component] section lists. */
    const router_component_config_t *bc = router_component_find(f->r, "b.test");
    assert_non_null(bc);
    fake_link_t e;
    fake_init(&e);
    assert_int_equal(router_bind(f->r, &e.link, "x.test", false, false, bc), 0);
    assert_int_equal(router_bind(f->r, &e.link, "y.test", false, false, bc), -EPERM);
    assert_int_equal(router_bind(f->r, &e.link, NULL, true, false, bc), -EPERM);
    assert_int_equal(router_bind(f->r, &e.link, "b.test", false, false, bc), -EEXIST);
    send_from_a(f, "<message from='a.test' to='x.test'/>");
    assert_int_equal(e.n, 1);
    /* Gone: everything it bound bounces from then on. */
    hub->gone(hub->ctx, &e.link);
    hub->gone(hub->ctx, &f->b.link);
    send_from_a(f, "<message from='a.test' to='b.test'/>");
    send_from_a(f, "<message from='a.test' to='x.test'/>");
    assert_int_equal(e.n, 1);
    assert_int_equal(f->b.n, 0);
    assert_int_equal(f->a.n, 2);
    assert_string_equal(bounce_condition(f->a.got[1], "a.test", "x.test", "cancel"),
                        "service-unavailable");
    fake_reset(&e);
    /* A name bound by an in-process link stays ours after it leaves. */
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, "dyn.test", false, true), 0);
    hub->gone(hub->ctx, &f->d.link);
    send_from_a(f, "<message from='a.test' to='dyn.test'/>");
    assert_int_equal(f->a.n, 3);
    assert_string_equal(bounce_condition(f->a.got[2], "a.test", "dyn.test", "cancel"),
                        "service-unavailable");
}

static void test_flow_control(void **state)
{
    fixture_t *f = *state;
    const link_hub_t *hub = router_hub(f->r);
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, "d.test", false, true), 0);
    /* Below the mark nothing happens. */
    f->b.backlog = LINK_BACKLOG_HIGH;
    send_from_a(f, "<message from='a.test' to='b.test'/>");
    assert_int_equal(f->a.paused, 0);
    /* Above it the sender is paused, once however often it sends. */
    f->b.backlog = LINK_BACKLOG_HIGH + 1;
    send_from_a(f, "<message from='a.test' to='b.test'/>");
    send_from_a(f, "<message from='a.test' to='b.test'/>");
    assert_int_equal(f->a.paused, 1);
    /* Waiting on two receivers, it resumes when both have drained. */
    f->d.backlog = LINK_BACKLOG_HIGH + 1;
    send_from_a(f, "<message from='a.test' to='d.test'/>");
    assert_int_equal(f->a.paused, 1);
    hub->drained(hub->ctx, &f->b.link);
    assert_int_equal(f->a.paused, 1);
    hub->drained(hub->ctx, &f->d.link);
    assert_int_equal(f->a.paused, 0);
    /* A receiver that goes away releases its waiters too. */
    send_from_a(f, "<message from='a.test' to='d.test'/>");
    assert_int_equal(f->a.paused, 1);
    hub->gone(hub->ctx, &f->d.link);
    assert_int_equal(f->a.paused, 0);
    /* A paused sender that goes away is forgotten by the receiver it waited on. */
    send_from_a(f, "<message from='a.test' to='b.test'/>");
    assert_int_equal(f->a.paused, 1);
    hub->gone(hub->ctx, &f->a.link);
    hub->drained(hub->ctx, &f->b.link);
    assert_int_equal(f->a.paused, 1);
    assert_int_equal(f->b.n, 4);
}

/* The <bound/> or <unbound/> notice st must be, for name. */
static void assert_notice(xml_stanza_t *st, const char *what, const char *name)
{
    assert_true(xml_node_is(st->root, LINK_NS, what));
    assert_string_equal(xml_node_attr(st->root, "name"), name);
    assert_int_equal(st->root->nattrs, 1); /* nothing but the name: bindings only */
    assert_null(xml_node_first_element(st->root));
}

static void test_watch(void **state)
{
    fixture_t *f = *state;
    const link_hub_t *hub = router_hub(f->r);
    /* d watches b.test (as written: prepared like a bound name); a watches every name. */
    assert_int_equal(hub->watch(hub->ctx, &f->d.link, "B.Test.", false), 0);
    assert_int_equal(hub->watch(hub->ctx, &f->d.link, "b.test", false), 0); /* once is enough */
    assert_int_equal(hub->watch(hub->ctx, &f->a.link, NULL, true), 0);
    assert_int_equal(hub->watch(hub->ctx, &f->d.link, "not a domain", false), -EINVAL);
    assert_int_equal(hub->watch(hub->ctx, &f->d.link, NULL, false), -EINVAL);
    assert_int_equal(f->a.n + f->d.n, 0); /* no notice of the state when a watch begins */
    /* What b sent before it went reaches the watcher first: one order for both. */
    xml_stanza_t *st = fixture_parse("<route from='b.test' to='a.test' sid='s'/>");
    hub->input(hub->ctx, &f->b.link, st);
    xml_stanza_unref(st);
    hub->gone(hub->ctx, &f->b.link);
    assert_int_equal(f->a.n, 2);
    assert_true(xml_node_is(f->a.got[0]->root, XMLS_NS_CONTENT, "route"));
    assert_notice(f->a.got[1], "unbound", "b.test");
    assert_int_equal(f->d.n, 1);
    assert_notice(f->d.got[0], "unbound", "b.test");
    assert_int_equal(f->b.n, 0); /* a link hears nothing of its own names */
    /* Bound again (by another link): both hear it. */
    fake_link_t e;
    fake_init(&e);
    assert_int_equal(hub->bind(hub->ctx, &e.link, "b.test", false, true), 0);
    assert_int_equal(f->a.n, 3);
    assert_notice(f->a.got[2], "bound", "b.test");
    assert_int_equal(f->d.n, 2);
    assert_notice(f->d.got[1], "bound", "b.test");
    assert_int_equal(e.n, 0);
    /* A name d does not watch: only a hears it; unbinding by hand is told too. */
    assert_int_equal(hub->bind(hub->ctx, &e.link, "other.test", false, true), 0);
    hub->unbind(hub->ctx, &e.link, "other.test");
    assert_int_equal(f->a.n, 5);
    assert_notice(f->a.got[3], "bound", "other.test");
    assert_notice(f->a.got[4], "unbound", "other.test");
    assert_int_equal(f->d.n, 2);
    /* Its own names: a watcher of everything binds and unbinds one, and hears nothing. */
    assert_int_equal(hub->bind(hub->ctx, &f->a.link, "mine.test", false, true), 0);
    hub->unbind(hub->ctx, &f->a.link, "mine.test");
    assert_int_equal(f->a.n, 5);
    /* Nor the default route, which is not a name. */
    assert_int_equal(hub->bind(hub->ctx, &e.link, NULL, true, true), 0);
    assert_int_equal(f->a.n, 5);
    /* A watcher that cannot take the notice misses it; the others still get theirs. */
    f->d.refuse = true;
    hub->unbind(hub->ctx, &e.link, "b.test");
    assert_int_equal(f->d.n, 2);
    assert_int_equal(f->a.n, 6);
    assert_notice(f->a.got[5], "unbound", "b.test");
    f->d.refuse = false;
    /* A watcher that is gone is told nothing more, and its watches go with it. */
    hub->gone(hub->ctx, &f->d.link);
    assert_int_equal(hub->bind(hub->ctx, &e.link, "b.test", false, true), 0);
    assert_int_equal(f->d.n, 2);
    assert_int_equal(f->a.n, 7);
    /* The router stopping tells no one: every link goes, the components reconnect. */
    router_stop(f->r);
    hub->gone(hub->ctx, &e.link);
    assert_int_equal(f->a.n, 7);
    fake_reset(&e);
}

/* The child <link/> of a status element that bound name, or NULL. */
static const xml_node_t *status_link(const xml_stanza_t *st, const char *name)
{
    for (const xml_node_t *l = xml_node_first_element(st->root); l != NULL;
         l = xml_node_next_element(l)) {
        assert_true(xml_node_is(l, LINK_NS, "link"));
        for (const xml_node_t *n = xml_node_first_element(l); n != NULL;
             n = xml_node_next_element(n)) {
            size_t len;
            const char *text = xml_node_text(n, &len);
            if (text != NULL && strcmp(text, name) == 0)
                return l;
        }
    }
    return NULL;
}

static void test_status(void **state)
{
    fixture_t *f = *state;
    const link_hub_t *hub = router_hub(f->r);
    assert_int_equal(hub->bind(hub->ctx, &f->d.link, NULL, true, true), 0);
    send_from_a(f, "<message from='a.test' to='b.test' id='1'/>");
    send_from_a(f, "<message from='a.test' to='juliet@remote.example' id='2'/>");
    send_from_a(f, "<message from='a.test' to='c.test' id='3'/>"); /* ours, absent: bounced */
    xml_stanza_t *st = router_status_stanza(f->r);
    assert_true(xml_node_is(st->root, LINK_NS, "status"));
    assert_string_equal(xml_node_attr(st->root, "links"), "3");
    assert_string_equal(xml_node_attr(st->root, "routed"), "2");
    assert_string_equal(xml_node_attr(st->root, "bounced"), "1");
    assert_string_equal(xml_node_attr(st->root, "dropped"), "0");
    const xml_node_t *a = status_link(st, "a.test");
    const xml_node_t *b = status_link(st, "b.test");
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(xml_node_attr(a, "kind"), "in-process");
    assert_null(xml_node_attr(a, "peer"));
    assert_null(xml_node_attr(a, "default"));
    assert_string_equal(xml_node_attr(a, "in"), "3");
    assert_string_equal(xml_node_attr(a, "out"), "1"); /* its bounce */
    assert_string_equal(xml_node_attr(b, "in"), "0");
    assert_string_equal(xml_node_attr(b, "out"), "1");
    char id[24];
    snprintf(id, sizeof id, "%" PRIu64, f->b.link.id);
    assert_string_equal(xml_node_attr(b, "id"), id);
    /* XEP-0082 UTC: 2026-12-07T20:01:02Z */
    const char *since = xml_node_attr(b, "since");
    assert_non_null(since);
    assert_int_equal(strlen(since), 20);
    assert_int_equal(since[10], 'T');
    assert_int_equal(since[19], 'Z');
    /* The default route's link, oldest first: a, b, then d (which bound no name). */
    const xml_node_t *d =
        xml_node_next_element(xml_node_next_element(xml_node_first_element(st->root)));
    assert_non_null(d);
    assert_string_equal(xml_node_attr(d, "default"), "true");
    assert_null(xml_node_first_element(d));
    assert_string_equal(xml_node_attr(d, "in"), "0");
    assert_string_equal(xml_node_attr(d, "out"), "1");
    assert_null(xml_node_next_element(d));
    xml_stanza_unref(st);
}

static void test_config_control(void **state)
{
    core_cfg_t cfg;
    fixture_config(&cfg,
                   "[component \"ctl.test\"]\nsecret = s\ncontrol = yes\n"
                   "[component \"a.test\"]\nsecret = s\n");
    size_t pos = 0;
    const router_component_config_t *c = core_cfg_next(&cfg, "component", &pos);
    assert_string_equal(c->name, "ctl.test");
    assert_true(c->control);
    c = core_cfg_next(&cfg, "component", &pos);
    assert_string_equal(c->name, "a.test");
    assert_false(c->control); /* the default: no component may ask */
    core_cfg_free(&cfg);
    static const char bad[] = "[component \"ctl.test\"]\nsecret = s\ncontrol = maybe\n";
    char err[256];
    assert_int_equal(core_cfg_load_text(&cfg, "test.conf", bad, strlen(bad), fixture_schema, 2, err,
                                        sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "test.conf:3"));
}

/* [router] TLS keys: defaults, the name a component verifies, and the checks across keys. */
static void test_config_tls(void **state)
{
    core_cfg_t cfg;
    char name[256];
    fixture_config(&cfg, "[router]\nlisten = 127.0.0.1:5347\n");
    const router_config_t *rc = core_cfg_get(&cfg, "router");
    assert_false(rc->tls); /* plain TCP unless asked */
    assert_null(rc->ca_file);
    assert_null(rc->server_name);
    assert_null(rc->certificate);
    assert_null(rc->key);
    router_config_tls_name(rc, name, sizeof name);
    assert_string_equal(name, "127.0.0.1");
    core_cfg_free(&cfg);

    static const struct {
        const char *text;
        const char *name;
    } names[] = {
        {"[router]\nlisten = router.example.net:5347\ntls = yes\n", "router.example.net"},
        {"[router]\nlisten = *:5347\n", "127.0.0.1"}, /* a wildcard is reached on loopback */
        {"[router]\nlisten = [::]:5347\n", "::1"},
        {"[router]\nlisten = [2001:db8::1]:5347\n", "2001:db8::1"},
        {"[router]\nlisten = 10.0.0.1:5347\ntls = yes\nserver_name = router.example\n",
         "router.example"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fixture_config(&cfg, names[i].text);
        router_config_tls_name(core_cfg_get(&cfg, "router"), name, sizeof name);
        assert_string_equal(name, names[i].name);
        core_cfg_free(&cfg);
    }
    fixture_config(&cfg, "[router]\ntls = yes\nca_file = /dev/null\n");
    rc = core_cfg_get(&cfg, "router");
    assert_true(rc->tls);
    assert_string_equal(rc->ca_file, "/dev/null");
    core_cfg_free(&cfg);

    static const struct {
        const char *text;
        const char *err;
    } bad[] = {
        {"[router]\ncertificate = /dev/null\n", "both certificate and key"},
        {"[router]\nkey = /dev/null\n", "both certificate and key"},
        {"[router]\nserver_name = \"\"\n", "server_name is empty"},
        {"[router]\n\ntls = maybe\n", "test.conf:3"},
        {"[router]\nca_file = /nonexistent/ca.pem\n", "test.conf:2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        assert_int_equal(core_cfg_load_text(&cfg, "test.conf", bad[i].text, strlen(bad[i].text),
                                            fixture_schema, 2, err, sizeof(err)),
                         -EINVAL);
        if (strstr(err, bad[i].err) == NULL)
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].err);
    }
}

/* A certificate that does not load stops the router from being made (nothing starts). */
static void test_config_tls_bad_certificate(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    core_log_t log = {.level = CORE_LOG_ERROR, .component = "test"};
    net_ctx_t net;
    net_ctx_init(&net, &loop, &log);
    core_cfg_t cfg;
    fixture_config(&cfg, "[router]\ncertificate = /dev/null\nkey = /dev/null\n");
    router_t *r = NULL;
    assert_int_equal(router_new(&net, &log, &cfg, &r), -EINVAL);
    assert_null(r);
    net_ctx_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    core_cfg_free(&cfg);
}

/* The member list a shard got last: its <shards/> names, joined by spaces. */
static void assert_shards(fake_link_t *f, const char *want)
{
    assert_true(f->n > 0);
    xml_stanza_t *st = f->got[f->n - 1];
    assert_true(xml_node_is(st->root, LINK_NS, "shards"));
    assert_string_equal(xml_node_attr(st->root, "name"), "s.test");
    char got[128] = "";
    for (const xml_node_t *c = xml_node_first_element(st->root); c != NULL;
         c = xml_node_next_element(c)) {
        if (got[0] != '\0')
            strcat(got, " ");
        strcat(got, xml_node_attr(c, "name"));
    }
    assert_string_equal(got, want);
}

static void route_from(const link_hub_t *hub, fake_link_t *from, const char *xml)
{
    xml_stanza_t *st = fixture_parse(xml);
    hub->input(hub->ctx, &from->link, st);
    xml_stanza_unref(st);
}

/*
 * docs/link-protocol.md "Shards": two links bind the shared s.test, each with its own name;
 * a user's stanzas go to the shard the hash picks (the owners Python computes: bob and dave
 * on s1.test, alice and carol on s2.test), the bare name by its sender's user, or to the
 * first shard; the member list goes to the shards when it changes; a shard that goes takes
 * only its own name away from watchers.
 */
static void test_shared(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    core_log_t log = {.level = CORE_LOG_ERROR, .component = "test"};
    net_ctx_t net;
    net_ctx_init(&net, &loop, &log);
    core_cfg_t cfg;
    fixture_config(&cfg,
                   "[component \"s.test\"]\nsecret = s\nshared = yes\n"
                   "bind = s1.test, s2.test\n"
                   "[component \"a.test\"]\nsecret = s\n");
    router_t *r;
    assert_int_equal(router_new(&net, &log, &cfg, &r), 0);
    const link_hub_t *hub = router_hub(r);
    fake_link_t a, s1, s2;
    fake_init(&a);
    fake_init(&s1);
    fake_init(&s2);
    assert_int_equal(hub->bind(hub->ctx, &a.link, "a.test", false, true), 0);
    assert_int_equal(hub->watch(hub->ctx, &a.link, NULL, true), 0);
    /* Untrusted (stream) links, as the sm processes are: no conflict on the shared name. */
    const router_component_config_t *sc = router_component_find(r, "s.test");
    assert_non_null(sc);
    assert_int_equal(router_bind(r, &s1.link, "s.test", false, false, sc), 0);
    assert_int_equal(s1.n, 0); /* no instance name yet: no list */
    assert_int_equal(router_bind(r, &s1.link, "s1.test", false, false, sc), 0);
    assert_shards(&s1, "s1.test");
    assert_int_equal(router_bind(r, &s2.link, "s.test", false, false, sc), 0);
    assert_int_equal(router_bind(r, &s2.link, "s2.test", false, false, sc), 0);
    assert_shards(&s1, "s1.test s2.test");
    assert_shards(&s2, "s1.test s2.test");
    /* Watchers: s.test bound once (the first shard), then the instance names. */
    assert_int_equal(a.n, 3);
    assert_notice(a.got[0], "bound", "s.test");
    fake_reset(&a);
    fake_reset(&s1);
    fake_reset(&s2);
    /* By the user of 'to', full or bare, whatever its case. */
    route_from(hub, &a, "<message from='a.test' to='bob@s.test/x'/>");
    route_from(hub, &a, "<message from='a.test' to='alice@S.test'/>");
    route_from(hub, &a, "<route from='a.test' to='dave@s.test' sid='1'/>");
    route_from(hub, &a, "<message from='a.test' to='carol@s.test'/>");
    assert_int_equal(s1.n, 2);
    assert_int_equal(s2.n, 2);
    assert_string_equal(xml_stanza_to(s1.got[0]), "bob@s.test/x");
    assert_string_equal(xml_stanza_to(s1.got[1]), "dave@s.test");
    assert_string_equal(xml_stanza_to(s2.got[1]), "carol@s.test");
    fake_reset(&s1);
    fake_reset(&s2);
    /* The bare name: by the sender's user when it is one of s.test's, else the first. */
    route_from(hub, &s1, "<iq type='get' id='1' from='alice@s.test/r' to='s.test'/>");
    route_from(hub, &a, "<iq type='get' id='2' from='a.test' to='s.test'/>");
    assert_int_equal(s2.n, 1);
    assert_int_equal(s1.n, 1);
    assert_string_equal(xml_stanza_id(s1.got[0]), "2");
    /* Any shard may send from the shared name and its users. */
    assert_int_equal(s1.closed, CORE_STREAM_ERR_NONE);
    fake_reset(&s1);
    fake_reset(&s2);
    /* s2 goes: s1 owns everyone, watchers hear of s2.test only. */
    hub->gone(hub->ctx, &s2.link);
    assert_shards(&s1, "s1.test");
    assert_int_equal(a.n, 1);
    assert_notice(a.got[0], "unbound", "s2.test");
    route_from(hub, &a, "<message from='a.test' to='alice@s.test'/>");
    assert_string_equal(xml_stanza_to(s1.got[s1.n - 1]), "alice@s.test");
    /* The last shard goes: s.test is unbound, and bounces (ours: service-unavailable). */
    fake_reset(&a);
    hub->gone(hub->ctx, &s1.link);
    assert_int_equal(a.n, 2);
    assert_notice(a.got[0], "unbound", "s1.test");
    assert_notice(a.got[1], "unbound", "s.test");
    fake_reset(&a);
    route_from(hub, &a, "<message from='a.test' to='alice@s.test' id='b'/>");
    assert_int_equal(a.n, 1);
    assert_string_equal(bounce_condition(a.got[0], "a.test", "alice@s.test", "cancel"),
                        "service-unavailable");
    fake_reset(&a);
    fake_reset(&s1);
    fake_reset(&s2);
    router_free(r);
    net_ctx_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    core_cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test_setup_teardown(test_routes_by_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_prepared_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounce_unknown_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounce_absent_component, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounce_when_link_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_never_bounced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spoofed_from, setup, teardown),
        cmocka_unit_test_setup_teardown(test_addressing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_route_envelope, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_route, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bind_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow_control, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status, setup, teardown),
        cmocka_unit_test(test_config_control),
        cmocka_unit_test(test_config_tls),
        cmocka_unit_test(test_config_tls_bad_certificate),
        cmocka_unit_test(test_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
