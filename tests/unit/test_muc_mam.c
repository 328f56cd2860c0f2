/* SPDX-License-Identifier: MIT */
/*
 * The pure pieces of the room archive (XEP-0313 on rooms): what is archived, the stored entry
 * and what a reader gets of it, query parsing (cursors, ids, limits), stamps, who may read,
 * and the archiving default of new rooms and of rooms made hidden.
 */
#include "core/alloc.h"
#include "muc/mam.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static xml_stanza_t *parse(const char *s)
{
    xml_stanza_t *st = xml_stanza_parse(s, strlen(s));
    assert_non_null(st);
    return st;
}

static bool archivable(const char *s)
{
    xml_stanza_t *st = parse(s);
    bool r = muc_mam_archivable(st);
    xml_stanza_unref(st);
    return r;
}

static void test_archivable(void **state)
{
    (void)state;
    assert_true(archivable("<message type='groupchat'><body>hi</body></message>"));
    assert_true(archivable("<message type='groupchat'><subject>topic</subject></message>"));
    assert_true(archivable("<message type='groupchat'><subject/></message>")); /* cleared */
    assert_true(archivable("<message><store xmlns='urn:xmpp:hints'/></message>"));
    assert_false(archivable("<message type='groupchat'>"
                            "<active xmlns='http://jabber.org/protocol/chatstates'/></message>"));
    assert_false(archivable("<message><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>"));
    assert_false(archivable("<message><no-permanent-store xmlns='urn:xmpp:hints'/>"
                            "<body>x</body></message>"));
}

static void test_entry(void **state)
{
    (void)state;
    xml_stanza_t *base = parse("<message from='r@c/nick' type='groupchat' id='m1'><body>b</body>"
                               "<x xmlns='http://jabber.org/protocol/muc#user'>"
                               "<item jid='forged@evil/x'/></x></message>");
    xml_stanza_t *e = muc_mam_entry_make(base, "real@host/res", "member", "participant");
    const xml_node_t *x = xml_node_child(e->root, MUC_NS_USER, "x");
    assert_non_null(x);
    assert_null(xml_node_next_element(x)); /* the forged one is gone, ours is last */
    const xml_node_t *it = xml_node_child(x, MUC_NS_USER, "item");
    assert_string_equal(xml_node_attr(it, "jid"), "real@host/res");
    assert_string_equal(xml_node_attr(it, "affiliation"), "member");
    assert_string_equal(xml_node_attr(it, "role"), "participant");
    assert_string_equal(xml_node_attr(e->root, "id"), "m1");
    assert_null(xml_node_attr(e->root, "to"));
    /* Through the store and back: a reader who may not see JIDs gets no <x/>. */
    size_t len;
    const char *bytes = xml_stanza_bytes(e, &len);
    xml_stanza_t *back = xml_stanza_parse(bytes, len);
    assert_non_null(back);
    for (int sees = 0; sees < 2; sees++) {
        xml_stanza_t *msg = xml_stanza_new(XMLS_NS_CONTENT, "message");
        xml_node_t *fwd = xml_node_add_element(msg, msg->root, MUC_NS_FORWARD, "forwarded");
        muc_mam_entry_add(msg, fwd, back->root, sees == 1);
        const xml_node_t *m = xml_node_child(fwd, XMLS_NS_CONTENT, "message");
        assert_non_null(m);
        assert_non_null(xml_node_child(m, XMLS_NS_CONTENT, "body"));
        const xml_node_t *mx = xml_node_child(m, MUC_NS_USER, "x");
        if (sees)
            assert_string_equal(xml_node_attr(xml_node_child(mx, MUC_NS_USER, "item"), "jid"),
                                "real@host/res");
        else
            assert_null(mx);
        xml_stanza_unref(msg);
    }
    xml_stanza_unref(back);
    xml_stanza_unref(e);
    xml_stanza_unref(base);
}

/* ---- query parsing ---- */

static char id_a[STORAGE_ARCHIVE_ID_LEN + 1], id_b[STORAGE_ARCHIVE_ID_LEN + 1];

static int parse_query(const char *inner, muc_mam_query_t *q, jid_cache_t *cache)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "<query xmlns='urn:xmpp:mam:2' queryid='f27'>%s</query>", inner);
    xml_stanza_t *st = parse(buf);
    memset(q, 0, sizeof(*q));
    int e = muc_mam_query_parse(q, cache, st->root);
    xml_stanza_unref(st);
    return e;
}

#define FORM(fields)                                                                               \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2"          \
    "</value></field>" fields "</x>"

static void test_query_parse(void **state)
{
    (void)state;
    jid_cache_t *cache = jid_cache_new(16);
    storage_archive_id_format(1000, 7, id_a);
    storage_archive_id_format(2000, 9, id_b);
    muc_mam_query_t q;
    char buf[2048];

    assert_int_equal(parse_query("", &q, cache), MUC_MAM_OK);
    assert_string_equal(q.queryid, "f27");
    assert_int_equal(q.q.max, MUC_MAM_PAGE_DEFAULT);
    assert_false(q.q.from_end);
    muc_mam_query_clear(&q);

    /* with, start; <max/> beyond the page is cut; an empty <before/> is the last page */
    assert_int_equal(
        parse_query(FORM("<field var='with'><value>Room@conference.localhost/Nick"
                         "</value></field><field var='start'><value>"
                         "2010-06-07T00:00:00.5Z</value></field>") "<set "
                                                                   "xmlns='http://jabber.org/"
                                                                   "protocol/rsm'><max>9999</max>"
                                                                   "<before/></set><flip-page/>",
                    &q, cache),
        MUC_MAM_OK);
    assert_string_equal(q.q.with, "room@conference.localhost/Nick");
    assert_true(q.q.has_start);
    assert_int_equal(q.q.start_us, 1275868800500000LL);
    assert_int_equal(q.q.max, MUC_MAM_PAGE_MAX);
    assert_true(q.q.from_end);
    assert_null(q.q.before_id);
    assert_true(q.flip);
    muc_mam_query_clear(&q);

    /* the form's after-id and RSM's <after/>: the later bounds, the other must exist */
    snprintf(
        buf, sizeof buf,
        FORM("<field var='after-id'><value>%s</value></field>") "<set "
                                                                "xmlns='http://jabber.org/protocol/"
                                                                "rsm'><after>%s</after></set>",
        id_b, id_a);
    assert_int_equal(parse_query(buf, &q, cache), MUC_MAM_OK);
    assert_string_equal(q.q.after_id, id_b);
    assert_int_equal(q.ncheck, 1);
    assert_string_equal(q.check[0], id_a);
    muc_mam_query_clear(&q);
    /* before: the earlier bounds */
    snprintf(
        buf, sizeof buf,
        FORM(
            "<field var='before-id'><value>%s</value></field>") "<set "
                                                                "xmlns='http://jabber.org/protocol/"
                                                                "rsm'><before>%s</before></set>",
        id_b, id_a);
    assert_int_equal(parse_query(buf, &q, cache), MUC_MAM_OK);
    assert_string_equal(q.q.before_id, id_a);
    assert_true(q.q.from_end);
    assert_string_equal(q.check[0], id_b);
    muc_mam_query_clear(&q);

    /* ids: distinct, all to be checked */
    snprintf(buf, sizeof buf,
             FORM("<field var='ids'><value>%s</value><value>%s</value><value>%s</value>"
                  "</field>"),
             id_b, id_a, id_b);
    assert_int_equal(parse_query(buf, &q, cache), MUC_MAM_OK);
    assert_int_equal(q.q.nids, 2);
    assert_int_equal(q.ncheck, 2);
    muc_mam_query_clear(&q);

    /* errors */
    static const struct {
        const char *inner;
        int err;
    } bad[] = {
        {"<x xmlns='jabber:x:data' type='submit'/>", CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='start'><value>yesterday</value></field>"), CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='after-id'><value>not-ours</value></field>"),
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {FORM("<field var='colour'><value>red</value></field>"),
         CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED},
        {FORM("<field var='with'><value>a@b</value></field>"
              "<field var='with'><value>c@d</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {"<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>",
         CORE_STANZA_ERR_BAD_REQUEST},
        {"<set xmlns='http://jabber.org/protocol/rsm'><after/></set>", CORE_STANZA_ERR_BAD_REQUEST},
        {"<set xmlns='http://jabber.org/protocol/rsm'><index>3</index></set>",
         CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse_query(bad[i].inner, &q, cache), bad[i].err);
        muc_mam_query_clear(&q);
    }
    jid_cache_free(cache);
}

static void test_stamps(void **state)
{
    (void)state;
    char out[32];
    muc_mam_stamp_format(1275868800000001LL, out);
    assert_string_equal(out, "2010-06-07T00:00:00.000001Z");
    int64_t us;
    assert_int_equal(muc_mam_stamp_parse(out, &us), 0);
    assert_int_equal(us, 1275868800000001LL);
    assert_int_equal(muc_mam_stamp_parse("2010-06-07T02:00:00.25+02:00", &us), 0);
    assert_int_equal(us, 1275868800250000LL);
    assert_int_equal(muc_mam_stamp_parse("2010-06-07", &us), -EINVAL);
}

/* ---- who may read, and the default ---- */

static muc_config_t service_config(int policy)
{
    return (muc_config_t){.name = "conference.localhost",
                          .max_occupants = 50,
                          .history_max = 100,
                          .room_public = true,
                          .room_maxusers = 30,
                          .room_archiving = policy};
}

static muc_t *service_new(muc_config_t *mc)
{
    muc_t *m = core_calloc(1, sizeof(*m));
    m->cfg = mc;
    m->jids = jid_cache_new(16);
    core_map_init(&m->rooms);
    static const core_log_t quiet = {.level = CORE_LOG_ERROR};
    m->log = &quiet;
    return m;
}

static void service_free(muc_t *m)
{
    core_map_free(&m->rooms);
    jid_cache_free(m->jids);
    core_free(m);
}

static bool may(const muc_room_t *room, const char *who, bool *sees)
{
    jid_t j;
    assert_int_equal(jid_parse(room->muc->jids, who, strlen(who), &j), 0);
    bool r = muc_mam_may_read(room, &j, sees);
    jid_clear(&j);
    return r;
}

static void test_may_read(void **state)
{
    (void)state;
    muc_config_t mc = service_config(MUC_MAM_PUBLIC);
    muc_t *m = service_new(&mc);
    muc_room_t *room = muc_room_create(m, "coven", 5, NULL);
    room->locked = false;
    muc_room_affil_set(room, "owner@x", MUC_AFFIL_OWNER, NULL);
    muc_room_affil_set(room, "member@x", MUC_AFFIL_MEMBER, NULL);
    muc_room_affil_set(room, "bad@x", MUC_AFFIL_OUTCAST, NULL);
    bool sees;
    assert_true(may(room, "stranger@x/r", &sees)); /* §6.1.2: an open room */
    assert_false(sees); /* semi-anonymous */
    assert_false(may(room, "bad@x/r", &sees)); /* outcasts never */
    assert_true(may(room, "owner@x/r", &sees));
    assert_true(sees);
    room->cfg.members_only = true;
    assert_false(may(room, "stranger@x/r", &sees));
    assert_true(may(room, "member@x/r", &sees));
    assert_false(sees);
    room->cfg.members_only = false;
    room->cfg.password_protected = true;
    assert_false(may(room, "stranger@x/r", &sees)); /* not an occupant: no password given */
    assert_true(may(room, "member@x/r", &sees));
    room->cfg.password_protected = false;
    room->cfg.whois = MUC_WHOIS_ANYONE;
    assert_true(may(room, "stranger@x/r", &sees));
    assert_true(sees);
    muc_room_destroy(room);
    service_free(m);
}

static void test_default_and_form(void **state)
{
    (void)state;
    static const struct {
        int policy;
        bool public_room, want;
    } cases[] = {
        {MUC_MAM_PUBLIC, true, true},
        {MUC_MAM_PUBLIC, false, false},
        {MUC_MAM_ALWAYS, false, true},
        {MUC_MAM_NEVER, true, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        muc_config_t mc = service_config(cases[i].policy);
        mc.room_public = cases[i].public_room;
        muc_room_config_t c;
        muc_room_config_defaults(&c, &mc);
        assert_int_equal(c.archiving, cases[i].want);
        muc_room_config_clear(&c);
    }
    /* Under "public", a form that hides the room without a word on archiving stops it; one
     * that says so keeps it. */
    muc_config_t mc = service_config(MUC_MAM_PUBLIC);
    static const char *const forms[] = {
        "<field var='muc#roomconfig_publicroom'><value>0</value></field>",
        "<field var='muc#roomconfig_publicroom'><value>0</value></field>"
        "<field var='muc#roomconfig_enablearchiving'><value>1</value></field>",
    };
    for (size_t i = 0; i < 2; i++) {
        char buf[1024];
        int n = snprintf(buf, sizeof buf,
                         "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
                         "http://jabber.org/protocol/muc#roomconfig</value></field>%s</x>",
                         forms[i]);
        xml_stanza_t *x = xml_stanza_parse(buf, (size_t)n);
        muc_room_config_t c;
        muc_room_config_defaults(&c, &mc);
        assert_true(c.archiving);
        const char *why;
        assert_int_equal(muc_roomconfig_apply(&c, x->root, &mc, NULL, NULL, &why), 0);
        assert_false(c.public_room);
        assert_int_equal(c.archiving, i == 1);
        muc_room_config_clear(&c);
        xml_stanza_unref(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archivable),  cmocka_unit_test(test_entry),
        cmocka_unit_test(test_query_parse), cmocka_unit_test(test_stamps),
        cmocka_unit_test(test_may_read),    cmocka_unit_test(test_default_and_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
