/* SPDX-License-Identifier: MIT */
/*
 * Entity capabilities (src/sm/mod_caps.c) with a stand-in router that records the sm's
 * disco#info queries: the table of followed JIDs, once full, makes room by forgetting the
 * JID whose presence is the oldest, so that stale entries (contacts whose unavailable never
 * came) cannot stop the server from following anyone new.
 */
#include "core/alloc.h"
#include "sm/internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define NS_CAPS "http://jabber.org/protocol/caps"
#define JIDS_MAX 65536 /* CAPS_JIDS_MAX */
#define OUT_MAX 16

extern const sm_module_t sm_module_caps;

typedef struct fixture {
    uv_loop_t loop;
    core_log_t log;
    sm_config_t cfg;
    sm_t sm;
    link_hub_t hub;
    xml_stanza_t *out[OUT_MAX]; /* what the sm sent to the router (references) */
    size_t nout;
} fixture_t;

static void hub_input(void *ctx, link_t *l, xml_stanza_t *st)
{
    fixture_t *f = ctx;
    assert_true(f->nout < OUT_MAX);
    f->out[f->nout++] = xml_stanza_ref(st);
}

static int hub_bind(void *ctx, link_t *l, const char *name, bool def, bool trusted)
{
    return 0;
}

static void hub_unbind(void *ctx, link_t *l, const char *name)
{
}

static void hub_gone(void *ctx, link_t *l)
{
}

static void on_nothing(void *ud, xml_stanza_t *st)
{
}

static void flush(fixture_t *f)
{
    for (int i = 0; i < 8; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

static int setup(void **state)
{
    fixture_t *f = core_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->log = (core_log_t){.level = CORE_LOG_ERROR, .component = "test"};
    f->cfg.domain = "localhost";
    f->sm.loop = &f->loop;
    f->sm.log = &f->log;
    f->sm.cfg = &f->cfg;
    f->sm.jids = jid_cache_new(1024);
    core_map_init(&f->sm.users);
    core_map_init(&f->sm.sessions);
    f->hub = (link_hub_t){
        .ctx = f, .input = hub_input, .bind = hub_bind, .unbind = hub_unbind, .gone = hub_gone};
    static const link_endpoint_ops_t ops = {.on_stanza = on_nothing};
    link_options_t opt = {.name = "localhost"};
    f->sm.link = link_inproc_open(&f->loop, &f->hub, &opt, &ops, f, &f->log);
    assert_non_null(f->sm.link);
    flush(f);
    sm_mod_t *m = &f->sm.mods[f->sm.nmods++];
    *m = (sm_mod_t){.def = &sm_module_caps, .index = 0};
    assert_int_equal(m->def->init(&f->sm, m), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < f->nout; i++)
        xml_stanza_unref(f->out[i]);
    sm_iq_stop(&f->sm);
    link_endpoint_close(f->sm.link);
    sm_modules_fini(&f->sm);
    core_map_free(&f->sm.users);
    core_map_free(&f->sm.sessions);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    jid_cache_free(f->sm.jids);
    core_free(f);
    return 0;
}

/* The presence of the entity full (at another server: the queries go to the router). */
static void presence_of(fixture_t *f, const char *full, const char *ver)
{
    char text[256];
    snprintf(text, sizeof text,
             "<presence from='%s'><c xmlns='%s' hash='sha-1' node='urn:example' ver='%s'/>"
             "</presence>",
             full, NS_CAPS, ver);
    xml_stanza_t *st = xml_stanza_parse(text, strlen(text));
    sm_sess_t s = {0};
    assert_int_equal(jid_parse(f->sm.jids, full, strlen(full), &s.jid), 0);
    f->sm.mods[0].def->on_presence(&f->sm, f->sm.mods[0].data, &s, st);
    jid_clear(&s.jid);
    xml_stanza_unref(st);
}

/* Was a disco#info query sent to full? */
static bool asked(fixture_t *f, const char *full)
{
    flush(f);
    for (size_t i = 0; i < f->nout; i++) {
        const char *to = xml_stanza_to(f->out[i]);
        if (to != NULL && strcmp(to, full) == 0)
            return true;
    }
    return false;
}

static void test_full_table_forgets_the_oldest(void **state)
{
    fixture_t *f = *state;
    char full[64];
    /* The first names an unknown ver and is asked; the others naming it wait for that. */
    for (unsigned i = 0; i < JIDS_MAX; i++) {
        snprintf(full, sizeof full, "c%u@remote.example/r", i);
        presence_of(f, full, "AAAA");
        if (i == 0)
            assert_true(asked(f, full));
    }
    /* A newcomer with other caps is still followed, and so asked. */
    presence_of(f, "newcomer@remote.example/r", "BBBB");
    assert_true(asked(f, "newcomer@remote.example/r"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full_table_forgets_the_oldest, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
