/* SPDX-License-Identifier: MIT */
/* An sm without parleyd for unit tests: a loop, a config, and a stand-in router that records. */
#ifndef PARLEY_TEST_SM_FIXTURE_H
#define PARLEY_TEST_SM_FIXTURE_H

#include "core/alloc.h"
#include "sm/internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define SM_FIXTURE_OUT_MAX 64

typedef struct sm_fixture {
    uv_loop_t loop;
    core_log_t log;
    sm_config_t cfg;
    sm_t sm;
    link_hub_t hub;
    xml_stanza_t *out[SM_FIXTURE_OUT_MAX]; /* what the sm sent to the router (references) */
    size_t nout;
} sm_fixture_t;

static inline void sm_fixture_hub_input(void *ctx, link_t *l, xml_stanza_t *st)
{
    sm_fixture_t *f = ctx;
    assert_true(f->nout < SM_FIXTURE_OUT_MAX);
    f->out[f->nout++] = xml_stanza_ref(st);
}

static inline int sm_fixture_hub_bind(void *ctx, link_t *l, const char *name, bool def,
                                      bool trusted)
{
    return 0;
}

static inline void sm_fixture_hub_unbind(void *ctx, link_t *l, const char *name)
{
}

static inline void sm_fixture_hub_gone(void *ctx, link_t *l)
{
}

static inline void sm_fixture_on_stanza(void *ud, xml_stanza_t *st)
{
}

/* Runs the loop a few turns: queued links and deferred callbacks have run after it. */
static inline void sm_fixture_flush(sm_fixture_t *f)
{
    for (int i = 0; i < 8; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* Forgets what the sm sent so far. */
static inline void sm_fixture_out_clear(sm_fixture_t *f)
{
    for (size_t i = 0; i < f->nout; i++)
        xml_stanza_unref(f->out[i]);
    f->nout = 0;
}

/*
 * A new fixture for the domain localhost, with no modules. with_link: the sm's link goes to
 * the recording router (f->out); without, the sm has no link.
 */
static inline sm_fixture_t *sm_fixture_new(bool with_link)
{
    sm_fixture_t *f = core_calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->log = (core_log_t){.level = CORE_LOG_ERROR, .component = "test"};
    f->cfg.domain = "localhost";
    f->sm.loop = &f->loop;
    f->sm.log = &f->log;
    f->sm.cfg = &f->cfg;
    f->sm.jids = jid_cache_new(1024);
    core_map_init(&f->sm.users);
    core_map_init(&f->sm.sessions);
    if (with_link) {
        f->hub = (link_hub_t){.ctx = f,
                              .input = sm_fixture_hub_input,
                              .bind = sm_fixture_hub_bind,
                              .unbind = sm_fixture_hub_unbind,
                              .gone = sm_fixture_hub_gone};
        static const link_endpoint_ops_t ops = {.on_stanza = sm_fixture_on_stanza};
        link_options_t opt = {.name = "localhost"};
        f->sm.link = link_inproc_open(&f->loop, &f->hub, &opt, &ops, f, &f->log);
        assert_non_null(f->sm.link);
        sm_fixture_flush(f);
    }
    return f;
}

/* Starts def as the sm's next module (init run); returns it. */
static inline sm_mod_t *sm_fixture_module(sm_fixture_t *f, const sm_module_t *def)
{
    sm_mod_t *m = &f->sm.mods[f->sm.nmods];
    *m = (sm_mod_t){.def = def, .index = (unsigned)f->sm.nmods};
    f->sm.nmods++;
    assert_int_equal(def->init(&f->sm, m), 0);
    return m;
}

static inline void sm_fixture_user_free(void *ud, const char *key, void *v)
{
    sm_user_free(ud, v);
}

/* Frees users, modules, the link and the loop (which must close clean), then f. */
static inline void sm_fixture_free(sm_fixture_t *f)
{
    sm_fixture_out_clear(f);
    sm_iq_stop(&f->sm);
    if (f->sm.link != NULL)
        link_endpoint_close(f->sm.link);
    core_map_each(&f->sm.users, sm_fixture_user_free, &f->sm);
    core_map_free(&f->sm.users);
    core_map_free(&f->sm.sessions);
    sm_modules_fini(&f->sm);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    jid_cache_free(f->sm.jids);
    core_free(f);
}

#endif
