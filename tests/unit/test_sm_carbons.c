/* SPDX-License-Identifier: MIT */
/*
 * Message carbons (src/sm/mod_carbons.c) inside the sm's delivery (deliver.c), with the
 * sessions' c2s behind a stand-in router: the XEP-0359 id of the sender's archive goes into
 * the sender's sent copies only, never into what the addressee's sessions get.
 */
#include "sm_fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_FORWARD "urn:xmpp:forward:0"
#define NS_SID "urn:xmpp:sid:0"

extern const sm_module_t sm_module_carbons;

/* What the archive does on IN_SESS (XEP-0313 §5.1.3): the id the sender's archive keeps. */
static xml_handler_result_t fake_archive(sm_t *sm, void *data, sm_pkt_t *pkt)
{
    pkt->stanza_id = core_strdup("ALICE-ARCHIVE-ID");
    return XMLS_PASS;
}

static sm_user_t *user_add(sm_fixture_t *f, const char *bare)
{
    sm_user_t *u = core_calloc(1, sizeof(*u));
    u->sm = &f->sm;
    assert_int_equal(jid_parse(f->sm.jids, bare, strlen(bare), &u->jid), 0);
    u->node = core_strndup(bare, u->jid.node_len);
    u->state = SM_USER_READY;
    core_map_put(&f->sm.users, u->jid.full, u->jid.full_len, u);
    return u;
}

/* A started, available session; carbons enabled through the module's own command. */
static sm_sess_t *sess_add(sm_fixture_t *f, sm_user_t *u, const char *res, bool carbons)
{
    sm_sess_t *s = core_calloc(1, sizeof(*s));
    char full[128];
    snprintf(full, sizeof full, "%s/%s", u->jid.full, res);
    assert_int_equal(jid_parse(f->sm.jids, full, strlen(full), &s->jid), 0);
    s->user = u;
    s->c2s = core_strdup("c2s");
    s->sid = core_strdup(full);
    size_t len = strlen(full) + 5;
    s->key = core_malloc(len);
    snprintf(s->key, len, "c2s %s", full);
    s->started = s->available = true;
    s->next = u->sessions;
    u->sessions = s;
    core_map_put(&f->sm.sessions, s->key, strlen(s->key), s);
    if (carbons) {
        char iq[160];
        snprintf(iq, sizeof iq, "<iq type='set' id='c' from='%s'><enable xmlns='%s'/></iq>", full,
                 NS_CARBONS);
        xml_stanza_t *st = xml_stanza_parse(iq, strlen(iq));
        sm_deliver_from_session(&f->sm, s, st);
        xml_stanza_unref(st);
    }
    return s;
}

/* The forwarded message of the carbon (which: "sent"/"received") sent to session sid. */
static const xml_node_t *carbon_to(sm_fixture_t *f, const char *sid, const char *which)
{
    for (size_t i = 0; i < f->nout; i++) {
        const char *s = xml_node_attr(f->out[i]->root, "sid");
        const xml_node_t *m = xml_envelope_child(f->out[i]);
        if (s == NULL || strcmp(s, sid) != 0 || m == NULL)
            continue;
        const xml_node_t *w = xml_node_child(m, NS_CARBONS, which);
        const xml_node_t *fw = w != NULL ? xml_node_child(w, NS_FORWARD, "forwarded") : NULL;
        if (fw != NULL)
            return xml_node_first_element(fw);
    }
    return NULL;
}

static int setup(void **state)
{
    sm_fixture_t *f = sm_fixture_new(true);
    const xml_match_t msg = {.kind = XMLS_KIND_MESSAGE};
    assert_int_equal(sm_handler_add(&f->sm, SM_CHAIN_IN_SESS, &msg, fake_archive, NULL), 0);
    sm_fixture_module(f, &sm_module_carbons);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    sm_fixture_free(*state);
    return 0;
}

static void test_archive_id_only_in_sent_copies(void **state)
{
    sm_fixture_t *f = *state;
    sm_user_t *alice = user_add(f, "alice@localhost");
    sm_user_t *bob = user_add(f, "bob@localhost");
    sm_sess_t *a1 = sess_add(f, alice, "one", false);
    sess_add(f, alice, "two", true);
    sess_add(f, bob, "one", false);
    sess_add(f, bob, "two", true);
    sm_fixture_flush(f);
    sm_fixture_out_clear(f);
    static const char m[] = "<message from='alice@localhost/one' to='bob@localhost/one' "
                            "type='chat' id='m1'><body>hi</body></message>";
    xml_stanza_t *st = xml_stanza_parse(m, sizeof m - 1);
    sm_deliver_from_session(&f->sm, a1, st);
    xml_stanza_unref(st);
    sm_fixture_flush(f);
    /* XEP-0313 §5.1.3: alice's other session learns the id of alice's archive. */
    const xml_node_t *sent = carbon_to(f, "alice@localhost/two", "sent");
    assert_non_null(sent);
    const xml_node_t *sid = xml_node_child(sent, NS_SID, "stanza-id");
    assert_non_null(sid);
    assert_string_equal(xml_node_attr(sid, "id"), "ALICE-ARCHIVE-ID");
    assert_string_equal(xml_node_attr(sid, "by"), "alice@localhost");
    /* bob's copy carries no id of alice's archive (nor one claiming to be bob's). */
    const xml_node_t *recv = carbon_to(f, "bob@localhost/two", "received");
    assert_non_null(recv);
    assert_null(xml_node_child(recv, NS_SID, "stanza-id"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_archive_id_only_in_sent_copies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
