/* SPDX-License-Identifier: MIT */
/*
 * Entity capabilities (src/sm/mod_caps.c) with a stand-in router that records the sm's
 * disco#info queries: the table of followed JIDs, once full, makes room by forgetting the
 * JID whose presence is the oldest, so that stale entries (contacts whose unavailable never
 * came) cannot stop the server from following anyone new.
 */
#include "sm_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define NS_CAPS "http://jabber.org/protocol/caps"
#define JIDS_MAX 65536 /* CAPS_JIDS_MAX */

extern const sm_module_t sm_module_caps;

static int setup(void **state)
{
    sm_fixture_t *f = sm_fixture_new(true);
    sm_fixture_module(f, &sm_module_caps);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    sm_fixture_free(*state);
    return 0;
}

/* The presence of the entity full (at another server: the queries go to the router). */
static void presence_of(sm_fixture_t *f, const char *full, const char *ver)
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
static bool asked(sm_fixture_t *f, const char *full)
{
    sm_fixture_flush(f);
    for (size_t i = 0; i < f->nout; i++) {
        const char *to = xml_stanza_to(f->out[i]);
        if (to != NULL && strcmp(to, full) == 0)
            return true;
    }
    return false;
}

static void test_full_table_forgets_the_oldest(void **state)
{
    sm_fixture_t *f = *state;
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
