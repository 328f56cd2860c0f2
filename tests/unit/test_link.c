/* SPDX-License-Identifier: MIT */
/* Both kinds of link behind one interface: an in-process component and a component over
 * TCP (XEP-0114 + bind extension) talk through a real router in one loop. */
#include "link/link.h"
#include "router_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

typedef struct comp {
    const char *name;
    link_endpoint_t *ep;
    int up;
    int down;
    int received;
    xml_stanza_t *last;
    struct world *w;
} comp_t;

typedef struct world {
    uv_loop_t loop;
    core_log_t log;
    net_ctx_t net;
    core_cfg_t cfg;
    router_t *r;
    comp_t inproc;
    comp_t remote;
    comp_t bad;
    uv_timer_t guard;
    int step;
    xml_stanza_t *sent;
} world_t;

static void finish(world_t *w)
{
    link_endpoint_close(w->inproc.ep);
    link_endpoint_close(w->remote.ep);
    if (w->bad.ep != NULL)
        link_endpoint_close(w->bad.ep);
    w->inproc.ep = w->remote.ep = w->bad.ep = NULL;
    router_stop(w->r);
    uv_close((uv_handle_t *)&w->guard, NULL);
}

static void maybe_start(world_t *w)
{
    if (w->step != 0 || !w->inproc.up || !w->remote.up)
        return;
    w->step = 1;
    /* In process → over TCP, with an extension the router does not know. */
    w->sent = fixture_parse("<message from='inproc.test' to='user@remote.test/r' id='m1'>"
                            "<body>é ✓ 𝄞 &amp; &lt;</body><ext xmlns='urn:example:x' a='1'>"
                            "<deep b='2'>t</deep></ext></message>");
    assert_int_equal(link_endpoint_send(w->inproc.ep, w->sent), 0);
}

static void on_up(void *ud)
{
    comp_t *c = ud;
    c->up++;
    maybe_start(c->w);
}

static void on_down(void *ud)
{
    ((comp_t *)ud)->down++;
}

static void on_stanza(void *ud, xml_stanza_t *st)
{
    comp_t *c = ud;
    world_t *w = c->w;
    c->received++;
    xml_stanza_unref(c->last);
    c->last = xml_stanza_ref(st);
    if (c == &w->remote && w->step == 1) {
        /* Arrived over TCP: same meaning, extension intact. */
        assert_string_equal(xml_stanza_id(st), "m1");
        const xml_node_t *ext = xml_node_child(st->root, "urn:example:x", "ext");
        assert_non_null(ext);
        assert_string_equal(xml_node_attr(ext, "a"), "1");
        size_t len;
        const xml_node_t *deep = xml_node_child(ext, "urn:example:x", "deep");
        assert_non_null(deep);
        assert_string_equal(xml_node_text(deep, &len), "t");
        const xml_node_t *body = xml_node_child(st->root, XMLS_NS_CONTENT, "body");
        assert_string_equal(xml_node_text(body, &len), "é ✓ 𝄞 & <");
        w->step = 2;
        /* Answer from a name bound through the extension. */
        xml_stanza_t *reply =
            fixture_parse("<message from='extra.test' to='inproc.test' id='m2'/>");
        assert_int_equal(link_endpoint_send(w->remote.ep, reply), 0);
        xml_stanza_unref(reply);
    } else if (c == &w->inproc && w->step == 2) {
        assert_string_equal(xml_stanza_id(st), "m2");
        assert_string_equal(xml_stanza_from(st), "extra.test");
        w->step = 3;
        /* Over TCP → nowhere: the bounce comes back to the in-process side. */
        xml_stanza_t *lost = fixture_parse("<iq from='remote.test' to='n.example' id='q' "
                                           "type='get'><query xmlns='jabber:iq:version'/></iq>");
        assert_int_equal(link_endpoint_send(w->remote.ep, lost), 0);
        xml_stanza_unref(lost);
    } else if (c == &w->remote && w->step == 3) {
        assert_string_equal(xml_stanza_type(st), "error");
        assert_string_equal(xml_stanza_id(st), "q");
        w->step = 4;
        finish(w);
    }
}

static const link_endpoint_ops_t comp_ops = {
    .on_up = on_up,
    .on_stanza = on_stanza,
    .on_down = on_down,
};

static void on_guard(uv_timer_t *t)
{
    world_t *w = t->data;
    fail_msg("timed out at step %d (inproc up %d, remote up %d)", w->step, w->inproc.up,
             w->remote.up);
}

static void walk_cb(uv_handle_t *h, void *arg)
{
    fprintf(stderr, "open handle: %s active=%d closing=%d\n", uv_handle_type_name(h->type),
            uv_is_active(h), uv_is_closing(h));
}

static void test_both_kinds(void **state)
{
    world_t *w = calloc(1, sizeof(*w));
    uv_loop_init(&w->loop);
    w->log = (core_log_t){.level = CORE_LOG_WARN, .component = "test"};
    net_ctx_init(&w->net, &w->loop, &w->log);
    fixture_config(&w->cfg,
                   "[router]\nlisten = 127.0.0.1:0\n"
                   "[component \"remote.test\"]\nsecret = \"sécret\"\n"
                   "bind = extra.test\n"
                   "[component \"bad.test\"]\nsecret = right\n");
    assert_int_equal(router_new(&w->net, &w->log, &w->cfg, &w->r), 0);
    assert_int_equal(router_start(w->r), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", router_port(w->r));

    w->inproc = (comp_t){.name = "inproc.test", .w = w};
    w->remote = (comp_t){.name = "remote.test", .w = w};
    w->bad = (comp_t){.name = "bad.test", .w = w};
    link_options_t io = {.name = "inproc.test"};
    w->inproc.ep =
        link_inproc_open(&w->loop, router_hub(w->r), &io, &comp_ops, &w->inproc, &w->log);
    assert_non_null(w->inproc.ep);
    const char *extra[] = {"extra.test"};
    link_options_t ro = {.name = "remote.test",
                         .extra_names = extra,
                         .n_extra = 1,
                         .router_addr = addr,
                         .secret = "sécret"};
    w->remote.ep = link_stream_open(&w->net, &ro, &comp_ops, &w->remote, &w->log);
    /* A component with the wrong secret never comes up (and keeps retrying). */
    link_options_t bo = {.name = "bad.test", .router_addr = addr, .secret = "wrong"};
    w->bad.ep = link_stream_open(&w->net, &bo, &comp_ops, &w->bad, &w->log);

    uv_timer_init(&w->loop, &w->guard);
    w->guard.data = w;
    uv_timer_start(&w->guard, on_guard, 10000, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(w->step, 4);
    assert_int_equal(w->bad.up, 0);
    assert_int_equal(w->inproc.up, 1);
    assert_int_equal(w->remote.up, 1);

    net_ctx_close(&w->net);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    router_free(w->r);
    uv_walk(&w->loop, walk_cb, NULL);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    xml_stanza_unref(w->sent);
    xml_stanza_unref(w->inproc.last);
    xml_stanza_unref(w->remote.last);
    core_cfg_free(&w->cfg);
    free(w);
}

static void test_inproc_by_reference(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    core_log_t log = {.level = CORE_LOG_ERROR, .component = "test"};
    net_ctx_t net;
    net_ctx_init(&net, &loop, &log);
    core_cfg_t cfg;
    fixture_config(&cfg, "");
    router_t *r;
    assert_int_equal(router_new(&net, &log, &cfg, &r), 0);
    world_t w = {0};
    comp_t a = {.name = "a.test", .w = &w};
    comp_t b = {.name = "b.test", .w = &w};
    link_options_t ao = {.name = "a.test"};
    link_options_t bo = {.name = "b.test"};
    a.ep = link_inproc_open(&loop, router_hub(r), &ao, &comp_ops, &a, &log);
    b.ep = link_inproc_open(&loop, router_hub(r), &bo, &comp_ops, &b, &log);
    /* A second in-process link for a bound name is refused. */
    comp_t dup = {.name = "a.test", .w = &w};
    assert_null(link_inproc_open(&loop, router_hub(r), &ao, &comp_ops, &dup, &log));
    /* Not up until the loop has run: nothing is delivered inside the caller's call. */
    xml_stanza_t *st = fixture_parse("<presence from='a.test' to='b.test'/>");
    assert_int_equal(link_endpoint_send(a.ep, st), -ENOTCONN);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_true(link_endpoint_up(a.ep));
    assert_int_equal(link_endpoint_send(a.ep, st), 0);
    assert_int_equal(b.received, 0);
    for (int i = 0; i < 4 && b.received == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(b.received, 1);
    assert_ptr_equal(b.last, st);
    xml_stanza_unref(st);
    link_endpoint_close(a.ep);
    link_endpoint_close(b.ep);
    net_ctx_close(&net);
    uv_run(&loop, UV_RUN_DEFAULT);
    router_free(r);
    assert_int_equal(uv_loop_close(&loop), 0);
    xml_stanza_unref(b.last);
    core_cfg_free(&cfg);
}

/* ---- watching names, on both kinds ---- */

typedef struct watcher {
    link_endpoint_t *ep;
    int up;
    int stanzas;
    char events[8][40]; /* "+name" bound, "-name" unbound */
    int nevents;
    struct watch_world *w;
} watcher_t;

typedef struct watch_world {
    uv_loop_t loop;
    core_log_t log;
    net_ctx_t net;
    core_cfg_t cfg;
    router_t *r;
    watcher_t inproc; /* in process, watches remote.test */
    watcher_t remote; /* over TCP, watches every name */
    watcher_t late; /* in process, bound once remote watches */
    uv_timer_t guard;
    int step;
} watch_world_t;

static void watch_advance(watch_world_t *w);

static void w_on_up(void *ud)
{
    watcher_t *c = ud;
    c->up++;
    watch_advance(c->w);
}

static void w_on_stanza(void *ud, xml_stanza_t *st)
{
    watcher_t *c = ud;
    c->stanzas++;
    watch_advance(c->w);
}

static void w_on_name(void *ud, const char *name, bool bound)
{
    watcher_t *c = ud;
    assert_true(c->nevents < 8);
    snprintf(c->events[c->nevents++], sizeof(c->events[0]), "%c%s", bound ? '+' : '-', name);
    watch_advance(c->w);
}

static const link_endpoint_ops_t watcher_ops = {
    .on_up = w_on_up,
    .on_stanza = w_on_stanza,
    .on_name = w_on_name,
};

static void watch_advance(watch_world_t *w)
{
    switch (w->step) {
    case 0: /* both up, and the in-process watcher saw remote.test bound by its handshake */
        if (!w->inproc.up || !w->remote.up || w->inproc.nevents < 1)
            return;
        assert_string_equal(w->inproc.events[0], "+remote.test");
        w->step = 1;
        /* Once this arrives, the router has read remote's <watch/>, which came before it. */
        xml_stanza_t *st = fixture_parse("<message from='remote.test' to='inproc.test'/>");
        assert_int_equal(link_endpoint_send(w->remote.ep, st), 0);
        xml_stanza_unref(st);
        return;
    case 1:
        if (w->inproc.stanzas < 1)
            return;
        w->step = 2;
        link_options_t lo = {.name = "late.test"};
        w->late.ep =
            link_inproc_open(&w->loop, router_hub(w->r), &lo, &watcher_ops, &w->late, &w->log);
        assert_non_null(w->late.ep);
        return;
    case 2: /* remote watches every name: it hears late.test bound, then unbound */
        if (w->remote.nevents < 1)
            return;
        assert_string_equal(w->remote.events[0], "+late.test");
        w->step = 3;
        link_endpoint_close(w->late.ep);
        w->late.ep = NULL;
        return;
    case 3:
        if (w->remote.nevents < 2)
            return;
        assert_string_equal(w->remote.events[1], "-late.test");
        w->step = 4;
        /* The stream link goes: its name is unbound for the in-process watcher. */
        link_endpoint_close(w->remote.ep);
        w->remote.ep = NULL;
        return;
    case 4:
        if (w->inproc.nevents < 2)
            return;
        assert_string_equal(w->inproc.events[1], "-remote.test");
        w->step = 5;
        link_endpoint_close(w->inproc.ep);
        w->inproc.ep = NULL;
        router_stop(w->r);
        uv_close((uv_handle_t *)&w->guard, NULL);
        return;
    default:
        return;
    }
}

static void on_watch_guard(uv_timer_t *t)
{
    watch_world_t *w = t->data;
    fail_msg("timed out at step %d", w->step);
}

static void test_watch_both_kinds(void **state)
{
    watch_world_t *w = calloc(1, sizeof(*w));
    uv_loop_init(&w->loop);
    w->log = (core_log_t){.level = CORE_LOG_WARN, .component = "test"};
    net_ctx_init(&w->net, &w->loop, &w->log);
    fixture_config(&w->cfg,
                   "[router]\nlisten = 127.0.0.1:0\n"
                   "[component \"remote.test\"]\nsecret = s\n");
    assert_int_equal(router_new(&w->net, &w->log, &w->cfg, &w->r), 0);
    assert_int_equal(router_start(w->r), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", router_port(w->r));
    w->inproc.w = w->remote.w = w->late.w = w;
    const char *watched[] = {"remote.test"};
    link_options_t io = {.name = "inproc.test", .watch = watched, .n_watch = 1};
    w->inproc.ep =
        link_inproc_open(&w->loop, router_hub(w->r), &io, &watcher_ops, &w->inproc, &w->log);
    assert_non_null(w->inproc.ep);
    link_options_t ro = {
        .name = "remote.test", .router_addr = addr, .secret = "s", .watch_all = true};
    w->remote.ep = link_stream_open(&w->net, &ro, &watcher_ops, &w->remote, &w->log);
    uv_timer_init(&w->loop, &w->guard);
    w->guard.data = w;
    uv_timer_start(&w->guard, on_watch_guard, 10000, 0);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(w->step, 5);
    /* Notices reach on_name only, never on_stanza; nobody heard its own name. */
    assert_int_equal(w->inproc.nevents, 2);
    assert_int_equal(w->remote.nevents, 2);
    assert_int_equal(w->late.nevents, 0);
    assert_int_equal(w->inproc.stanzas, 1);
    assert_int_equal(w->remote.stanzas, 0);
    net_ctx_close(&w->net);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    router_free(w->r);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    core_cfg_free(&w->cfg);
    free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inproc_by_reference),
        cmocka_unit_test(test_both_kinds),
        cmocka_unit_test(test_watch_both_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
