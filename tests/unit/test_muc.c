/* SPDX-License-Identifier: MIT */
/*
 * The pure pieces of the muc component: nick rules, discussion history selection (XEP-0045
 * §7.2.15), XEP-0082 times, the muc#roomconfig form (parse and validate), and a room's
 * stored form read back (configuration, affiliations, subject).
 */
#include "core/alloc.h"
#include "muc/internal.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* ---- nicks ---- */

static void fold_eq(const char *a, const char *b)
{
    char fa[MUC_NICK_FOLD_MAX + 1], fb[MUC_NICK_FOLD_MAX + 1];
    size_t la, lb;
    assert_int_equal(muc_nick_fold(a, strlen(a), fa, &la), 0);
    assert_int_equal(muc_nick_fold(b, strlen(b), fb, &lb), 0);
    assert_string_equal(fa, fb);
}

static void test_nick_fold(void **state)
{
    (void)state;
    fold_eq("Kevin", "KEVIN");
    fold_eq("kevin", "Kevin");
    fold_eq("\xc3\x84rger", "\xc3\xa4RGER"); /* Ärger / äRGER */
    fold_eq("\xef\xbc\xab"
            "evin",
            "kevin"); /* fullwidth K */
    char f[MUC_NICK_FOLD_MAX + 1];
    size_t l;
    assert_int_equal(muc_nick_fold("third witch", 11, f, &l), 0);
    assert_string_equal(f, "third witch");
    assert_int_equal(muc_nick_fold("", 0, f, &l), -EINVAL);
    assert_int_equal(muc_nick_fold("\xff", 1, f, &l), -EINVAL);
}

static void test_nick_valid(void **state)
{
    (void)state;
    assert_true(muc_nick_valid("a b", 3));
    assert_true(muc_nick_valid("x", 1));
    assert_false(muc_nick_valid(" ", 1));
    assert_false(muc_nick_valid("   ", 3));
    assert_false(muc_nick_valid("\xe3\x80\x80", 3)); /* ideographic space */
    assert_false(muc_nick_valid(" \xc2\xa0", 3)); /* space, no-break space */
    assert_false(muc_nick_valid("", 0));
}

/* ---- time ---- */

static void test_time(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(muc_time_parse("1970-01-01T00:00:00Z", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(muc_time_parse("2002-10-13T23:58:37Z", &t), 0);
    assert_int_equal(t, 1034553517);
    assert_int_equal(muc_time_parse("2002-10-13T23:58:37.123Z", &t), 0);
    assert_int_equal(t, 1034553517);
    assert_int_equal(muc_time_parse("2002-10-14T01:58:37+02:00", &t), 0);
    assert_int_equal(t, 1034553517);
    assert_int_equal(muc_time_parse("2002-10-13T21:58:37-02:00", &t), 0);
    assert_int_equal(t, 1034553517);
    assert_int_equal(muc_time_parse("2002-10-13 23:58:37Z", &t), -EINVAL);
    assert_int_equal(muc_time_parse("2002-10-13T23:58:37", &t), -EINVAL);
    assert_int_equal(muc_time_parse("2002-13-13T23:58:37Z", &t), -EINVAL);
    assert_int_equal(muc_time_parse("2002-10-13T23:58:37.Z", &t), -EINVAL);
    char out[21];
    muc_time_format(1034553517, out);
    assert_string_equal(out, "2002-10-13T23:58:37Z");
}

/* ---- history ---- */

/* Ten messages "m0".."m9" of equal size, one every 10 seconds from t=1000. */
static void fill(muc_history_t *h, size_t keep)
{
    for (int i = 0; i < 10; i++) {
        xml_stanza_t *st = xml_stanza_new(XMLS_NS_CONTENT, "message");
        char id[8];
        snprintf(id, sizeof id, "m%d", i);
        xml_node_set_attr(st, st->root, NULL, "id", id);
        muc_history_add(h, st, 1000 + 10 * i, keep);
        xml_stanza_unref(st);
    }
}

static xml_stanza_t *parse(const char *s)
{
    return xml_stanza_parse(s, strlen(s));
}

static const char *id_at(const muc_history_t *h, size_t i)
{
    return xml_stanza_id(muc_history_at(h, i)->st);
}

static void test_history_select(void **state)
{
    (void)state;
    muc_history_t h = {0};
    fill(&h, 6);
    assert_int_equal(h.len, 6);
    assert_string_equal(id_at(&h, 0), "m4");
    assert_string_equal(id_at(&h, 5), "m9");
    muc_hist_request_t none = {-1, -1, -1, -1};
    int64_t now = 1100;
    assert_int_equal(muc_history_select(&h, &none, 20, now), 0); /* all six */
    assert_int_equal(muc_history_select(&h, &none, 2, now), 4); /* the room's own limit */
    assert_int_equal(muc_history_select(&h, &none, 0, now), 6); /* none */
    muc_hist_request_t r = none;
    r.maxstanzas = 3;
    assert_int_equal(muc_history_select(&h, &r, 20, now), 3);
    r = none;
    r.maxstanzas = 0;
    assert_int_equal(muc_history_select(&h, &r, 20, now), 6);
    r = none;
    r.seconds = 25; /* stamps 1080 and 1090 */
    assert_int_equal(muc_history_select(&h, &r, 20, now), 4);
    r = none;
    r.since = 1070; /* inclusive: 1070, 1080, 1090 */
    assert_int_equal(muc_history_select(&h, &r, 20, now), 3);
    size_t one = muc_history_at(&h, 0)->chars;
    assert_true(one > 10);
    r = none;
    r.maxchars = (int64_t)(2 * one); /* exactly two whole stanzas */
    assert_int_equal(muc_history_select(&h, &r, 20, now), 4);
    r.maxchars = (int64_t)(2 * one) - 1; /* never a cut stanza: one */
    assert_int_equal(muc_history_select(&h, &r, 20, now), 5);
    r = none;
    r.maxchars = 0;
    assert_int_equal(muc_history_select(&h, &r, 20, now), 6);
    /* Every limit at once: the smallest wins. */
    r = (muc_hist_request_t){
        .maxchars = (int64_t)(5 * one), .maxstanzas = 4, .seconds = 45, .since = 1050};
    assert_int_equal(muc_history_select(&h, &r, 3, now), 3);
    muc_history_trim(&h, 2);
    assert_int_equal(h.len, 2);
    assert_string_equal(id_at(&h, 0), "m8");
    muc_history_add(&h, muc_history_at(&h, 0)->st, 2000, 0); /* keep 0 empties it */
    assert_int_equal(h.len, 0);
    muc_history_clear(&h);
}

static void test_history_request_parse(void **state)
{
    (void)state;
    xml_stanza_t *st = parse("<history xmlns='http://jabber.org/protocol/muc' "
                             "maxchars='65000' maxstanzas='20' seconds='180' "
                             "since='1970-01-01T00:00:10Z'/>");
    assert_non_null(st);
    muc_hist_request_t r;
    assert_int_equal(muc_history_request_parse(st->root, &r), 0);
    assert_int_equal(r.maxchars, 65000);
    assert_int_equal(r.maxstanzas, 20);
    assert_int_equal(r.seconds, 180);
    assert_int_equal(r.since, 10);
    xml_stanza_unref(st);
    st = parse("<history maxstanzas='-1'/>");
    assert_int_equal(muc_history_request_parse(st->root, &r), -EINVAL);
    xml_stanza_unref(st);
    assert_int_equal(muc_history_request_parse(NULL, &r), 0);
    assert_int_equal(r.maxstanzas, -1);
}

/* ---- the configuration form ---- */

static muc_config_t service_config(void)
{
    return (muc_config_t){.name = "conference.localhost",
                          .max_rooms = 100,
                          .max_rooms_per_user = 10,
                          .max_occupants = 50,
                          .max_message_size = 65536,
                          .history_default = 20,
                          .history_max = 100,
                          .room_public = true,
                          .room_maxusers = 30};
}

static xml_stanza_t *form(const char *fields)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
                     "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>"
                     "http://jabber.org/protocol/muc#roomconfig</value></field>%s</x>",
                     fields);
    xml_stanza_t *st = xml_stanza_parse(buf, (size_t)n);
    assert_non_null(st);
    return st;
}

static int apply(muc_room_config_t *c, const char *fields, muc_form_jids_t *j)
{
    muc_config_t mc = service_config();
    jid_cache_t *cache = jid_cache_new(16);
    xml_stanza_t *st = form(fields);
    const char *why;
    int rc = muc_roomconfig_apply(c, st->root, &mc, cache, j, &why);
    xml_stanza_unref(st);
    jid_cache_free(cache);
    return rc;
}

static void test_roomconfig_apply(void **state)
{
    (void)state;
    muc_config_t mc = service_config();
    muc_room_config_t c;
    muc_room_config_defaults(&c, &mc);
    assert_int_equal(c.maxusers, 30);
    assert_int_equal(c.history_length, 20);
    muc_form_jids_t j = {0};
    assert_int_equal(
        apply(&c,
              "<field var='muc#roomconfig_roomname'><value>A Dark Cave</value></field>"
              "<field var='muc#roomconfig_persistentroom'><value>true</value></field>"
              "<field var='muc#roomconfig_whois'><value>anyone</value></field>"
              "<field var='muc#roomconfig_maxusers'><value>none</value></field>"
              "<field var='muc#roomconfig_allowpm'><value>moderators</value></field>"
              "<field var='muc#roomconfig_presencebroadcast'><value>moderator</value>"
              "<value>participant</value></field>"
              "<field var='muc#maxhistoryfetch'><value>50</value></field>"
              "<field var='x-unknown'><value>ignored</value></field>"
              "<field var='muc#roomconfig_roomowners'><value>Juliet@Capulet.lit</value>"
              "<value>romeo@montague.lit</value></field>",
              &j),
        0);
    assert_string_equal(c.name, "A Dark Cave");
    assert_true(c.persistent);
    assert_int_equal(c.whois, MUC_WHOIS_ANYONE);
    assert_int_equal(c.maxusers, 50); /* none: the service's maximum */
    assert_int_equal(c.allowpm, MUC_PM_MODERATORS);
    assert_int_equal(c.presence_broadcast,
                     MUC_ROLE_BIT(MUC_ROLE_MODERATOR) | MUC_ROLE_BIT(MUC_ROLE_PARTICIPANT));
    assert_int_equal(c.history_length, 50);
    assert_true(j.has_owners);
    assert_false(j.has_admins);
    assert_int_equal(j.nowners, 2);
    assert_string_equal(j.owners[0], "juliet@capulet.lit"); /* prepared */
    muc_form_jids_clear(&j);

    /* Failures leave the configuration as it was. */
    assert_int_equal(apply(&c,
                           "<field var='muc#roomconfig_roomname'><value>changed</value></field>"
                           "<field var='muc#roomconfig_membersonly'><value>yes</value></field>",
                           NULL),
                     -EINVAL);
    assert_string_equal(c.name, "A Dark Cave");
    assert_int_equal(
        apply(&c, "<field var='muc#roomconfig_maxusers'><value>51</value></field>", NULL), -EPERM);
    assert_int_equal(apply(&c, "<field var='muc#maxhistoryfetch'><value>101</value></field>", NULL),
                     -EPERM);
    assert_int_equal(
        apply(&c, "<field var='muc#roomconfig_whois'><value>none</value></field>", NULL), -EINVAL);
    assert_int_equal(
        apply(&c, "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>",
              NULL),
        -EPERM);
    assert_false(c.password_protected);
    assert_int_equal(
        apply(&c,
              "<field var='muc#roomconfig_passwordprotectedroom'><value>1</value></field>"
              "<field var='muc#roomconfig_roomsecret'><value>cauldronburn</value></field>",
              NULL),
        0);
    assert_true(c.password_protected);
    assert_string_equal(c.password, "cauldronburn");
    assert_int_equal(
        apply(&c, "<field var='muc#roomconfig_roomowners'><value>a@b/c</value></field>", &j),
        -EINVAL);
    assert_int_equal(j.nowners, 0);
    /* An empty submitted form (an instant room) changes nothing. */
    assert_int_equal(apply(&c, "", NULL), 0);
    assert_string_equal(c.name, "A Dark Cave");
    muc_room_config_clear(&c);
}

static void test_roomconfig_form_type(void **state)
{
    (void)state;
    muc_config_t mc = service_config();
    muc_room_config_t c;
    muc_room_config_defaults(&c, &mc);
    const char *why;
    xml_stanza_t *st = parse("<x xmlns='jabber:x:data' type='submit'><field var="
                             "'FORM_TYPE'><value>urn:other</value></field></x>");
    assert_non_null(st);
    assert_int_equal(muc_roomconfig_apply(&c, st->root, &mc, NULL, NULL, &why), -EINVAL);
    xml_stanza_unref(st);
    st = parse("<x xmlns='jabber:x:data' type='form'/>");
    assert_int_equal(muc_roomconfig_apply(&c, st->root, &mc, NULL, NULL, &why), -EINVAL);
    xml_stanza_unref(st);
    /* The form the service builds names every field with its current value. */
    xml_stanza_t *f = xml_stanza_new("http://jabber.org/protocol/muc#owner", "query");
    const char *owners[] = {"a@b"};
    muc_roomconfig_form(f, f->root, &c, &mc, owners, 1, NULL, 0);
    size_t len;
    const char *raw = xml_stanza_bytes(f, &len);
    char *bytes = core_strndup(raw, len); /* the bytes are not a string */
    assert_non_null(strstr(bytes, "muc#roomconfig_whois"));
    assert_non_null(strstr(bytes, "<value>moderators</value>"));
    assert_non_null(strstr(bytes, "muc#roomconfig_roomowners"));
    assert_non_null(strstr(bytes, "<value>a@b</value>"));
    core_free(bytes);
    xml_stanza_unref(f);
    muc_room_config_clear(&c);
}

/* ---- a room's stored form ---- */

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

static void test_roomstore_roundtrip(void **state)
{
    (void)state;
    muc_config_t mc = service_config();
    muc_t *m1 = service_new(&mc), *m2 = service_new(&mc);
    muc_room_t *a = muc_room_create(m1, "coven", 5, "crone@shakespeare.lit");
    a->locked = false;
    core_free(a->cfg.name);
    a->cfg.name = core_strdup("A \"Dark\" Cave <&>");
    core_free(a->cfg.password);
    a->cfg.password = core_strdup("cauldron");
    a->cfg.password_protected = a->cfg.persistent = a->cfg.members_only = true;
    a->cfg.whois = MUC_WHOIS_ANYONE;
    a->cfg.allowpm = MUC_PM_NONE;
    a->cfg.maxusers = 12;
    a->cfg.history_length = 7;
    a->cfg.presence_broadcast = MUC_ROLE_BIT(MUC_ROLE_MODERATOR);
    a->cfg.get_member_list = 0;
    muc_room_affil_set(a, "crone@shakespeare.lit", MUC_AFFIL_OWNER, NULL);
    muc_room_affil_set(a, "hag@shakespeare.lit", MUC_AFFIL_ADMIN, NULL);
    muc_room_affil_set(a, "troll@shakespeare.lit", MUC_AFFIL_OUTCAST, "trolling");
    a->subject = core_strdup("Fire Burn");
    a->subject_nick = core_strdup("secondwitch");
    a->subject_stamp = 1034553517;
    xml_stanza_t *doc = muc_roomstore_encode(a);
    size_t len;
    const char *bytes = xml_stanza_bytes(doc, &len);
    xml_stanza_t *back = xml_stanza_parse(bytes, len);
    assert_non_null(back);
    muc_room_t *b = muc_room_create(m2, "coven", 5, xml_node_attr(back->root, "creator"));
    assert_int_equal(muc_roomstore_decode(b, back->root), 0);
    assert_false(b->locked);
    assert_string_equal(b->creator, "crone@shakespeare.lit");
    assert_string_equal(b->cfg.name, "A \"Dark\" Cave <&>");
    assert_string_equal(b->cfg.password, "cauldron");
    assert_true(b->cfg.password_protected && b->cfg.persistent && b->cfg.members_only);
    assert_false(b->cfg.moderated);
    assert_int_equal(b->cfg.whois, MUC_WHOIS_ANYONE);
    assert_int_equal(b->cfg.allowpm, MUC_PM_NONE);
    assert_int_equal(b->cfg.maxusers, 12);
    assert_int_equal(b->cfg.history_length, 7);
    assert_int_equal(b->cfg.presence_broadcast, MUC_ROLE_BIT(MUC_ROLE_MODERATOR));
    assert_int_equal(b->cfg.get_member_list, 0);
    assert_int_equal(b->naffils, 3);
    assert_int_equal(muc_room_affil(b, "crone@shakespeare.lit", 21), MUC_AFFIL_OWNER);
    assert_int_equal(muc_room_affil(b, "hag@shakespeare.lit", 19), MUC_AFFIL_ADMIN);
    assert_int_equal(muc_room_affil(b, "troll@shakespeare.lit", 21), MUC_AFFIL_OUTCAST);
    assert_int_equal(muc_room_affil(b, "nobody@x", 8), MUC_AFFIL_NONE);
    assert_string_equal(b->subject, "Fire Burn");
    assert_string_equal(b->subject_nick, "secondwitch");
    assert_int_equal(b->subject_stamp, 1034553517);
    /* The same bytes again: nothing was lost or added. */
    xml_stanza_t *again = muc_roomstore_encode(b);
    size_t len2;
    const char *bytes2 = xml_stanza_bytes(again, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(bytes2, bytes, len);
    /* A saved limit above today's is lowered to it; garbage is refused. */
    xml_stanza_t *bad = parse("<room xmlns='urn:parley:muc:0'/>");
    muc_room_t *c = muc_room_create(m2, "other", 5, NULL);
    assert_int_equal(muc_roomstore_decode(c, bad->root), -EINVAL);
    xml_stanza_unref(bad);
    xml_stanza_unref(again);
    xml_stanza_unref(back);
    xml_stanza_unref(doc);
    muc_room_destroy(a);
    muc_room_destroy(b);
    muc_room_destroy(c);
    assert_int_equal(m1->nrooms, 0);
    service_free(m1);
    service_free(m2);
}

/* §5.1: roles kept across visits of a moderated room, their bound and their stored form. */
static void test_role_memos(void **state)
{
    (void)state;
    muc_config_t mc = service_config();
    muc_t *m1 = service_new(&mc), *m2 = service_new(&mc);
    muc_room_t *a = muc_room_create(m1, "coven", 5, NULL);
    a->locked = false;
    /* Not moderated: nothing is kept. */
    muc_room_role_note(a, "v@x", 3, MUC_AFFIL_NONE, MUC_ROLE_PARTICIPANT);
    assert_int_equal(a->nrole_memos, 0);
    a->cfg.moderated = true;
    a->cfg.persistent = true;
    assert_int_equal(muc_room_role_on_entry(a, "v@x", 3, MUC_AFFIL_NONE), MUC_ROLE_VISITOR);
    muc_room_role_note(a, "v@x", 3, MUC_AFFIL_NONE, MUC_ROLE_PARTICIPANT); /* voice given */
    muc_room_role_note(a, "m@x", 3, MUC_AFFIL_MEMBER, MUC_ROLE_VISITOR); /* voice taken */
    muc_room_role_note(a, "p@x", 3, MUC_AFFIL_MEMBER, MUC_ROLE_PARTICIPANT); /* its default */
    muc_room_role_note(a, "o@x", 3, MUC_AFFIL_NONE, MUC_ROLE_MODERATOR); /* not kept */
    muc_room_role_note(a, "h@x", 3, MUC_AFFIL_ADMIN, MUC_ROLE_PARTICIPANT); /* not kept */
    assert_int_equal(a->nrole_memos, 2);
    assert_int_equal(muc_room_role_on_entry(a, "v@x", 3, MUC_AFFIL_NONE), MUC_ROLE_PARTICIPANT);
    assert_int_equal(muc_room_role_on_entry(a, "m@x", 3, MUC_AFFIL_MEMBER), MUC_ROLE_VISITOR);
    assert_int_equal(muc_room_role_on_entry(a, "m@x", 3, MUC_AFFIL_ADMIN), MUC_ROLE_MODERATOR);
    /* The stored form keeps them, oldest first, and gives the same bytes back. */
    xml_stanza_t *doc = muc_roomstore_encode(a);
    size_t len;
    const char *bytes = xml_stanza_bytes(doc, &len);
    xml_stanza_t *back = xml_stanza_parse(bytes, len);
    assert_non_null(back);
    muc_room_t *b = muc_room_create(m2, "coven", 5, NULL);
    assert_int_equal(muc_roomstore_decode(b, back->root), 0);
    assert_int_equal(b->nrole_memos, 2);
    assert_int_equal(muc_room_role_on_entry(b, "v@x", 3, MUC_AFFIL_NONE), MUC_ROLE_PARTICIPANT);
    assert_int_equal(muc_room_role_on_entry(b, "m@x", 3, MUC_AFFIL_MEMBER), MUC_ROLE_VISITOR);
    xml_stanza_t *again = muc_roomstore_encode(b);
    size_t len2;
    const char *bytes2 = xml_stanza_bytes(again, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(bytes2, bytes, len);
    /* Voice given back to a visitor whose affiliation gives it ends the memo; so does a change
     * of affiliation. */
    muc_room_role_note(a, "v@x", 3, MUC_AFFIL_NONE, MUC_ROLE_VISITOR);
    assert_int_equal(a->nrole_memos, 1);
    muc_room_affil_set(a, "m@x", MUC_AFFIL_MEMBER, NULL);
    assert_int_equal(a->nrole_memos, 0);
    /* Bounded: the oldest goes first. */
    char jid[32];
    for (int i = 0; i <= MUC_ROLE_MEMO_MAX; i++) {
        int n = snprintf(jid, sizeof jid, "u%d@x", i);
        muc_room_role_note(a, jid, (size_t)n, MUC_AFFIL_NONE, MUC_ROLE_PARTICIPANT);
    }
    assert_int_equal(a->nrole_memos, MUC_ROLE_MEMO_MAX);
    assert_int_equal(muc_room_role_on_entry(a, "u0@x", 4, MUC_AFFIL_NONE), MUC_ROLE_VISITOR);
    assert_int_equal(muc_room_role_on_entry(a, "u1@x", 4, MUC_AFFIL_NONE), MUC_ROLE_PARTICIPANT);
    /* A room no longer moderated forgets them all. */
    muc_room_roles_clear(a);
    assert_int_equal(a->nrole_memos, 0);
    /* A stored memo of a role that is never kept is refused (the same room with a participant's
     * memo is fine, so it is the role that is refused). */
    static const char room_fmt[] =
        "<room xmlns='urn:parley:muc:0'><config name='' desc='' lang='' password='' "
        "persistent='1' public='1' membersonly='0' moderated='1' passwordprotected='0' "
        "changesubject='0' allowinvites='0' logging='0' whois='moderators' allowpm='anyone' "
        "maxusers='10' history='5' presencebroadcast='visitor' getmemberlist='visitor'/>"
        "<role jid='a@x' role='%s'/></room>";
    char text[1024];
    snprintf(text, sizeof text, room_fmt, "participant");
    xml_stanza_t *good = parse(text);
    muc_room_t *d = muc_room_create(m2, "fine", 4, NULL);
    assert_int_equal(muc_roomstore_decode(d, good->root), 0);
    assert_int_equal(muc_room_role_on_entry(d, "a@x", 3, MUC_AFFIL_NONE), MUC_ROLE_PARTICIPANT);
    xml_stanza_unref(good);
    muc_room_destroy(d);
    snprintf(text, sizeof text, room_fmt, "moderator");
    xml_stanza_t *bad = parse(text);
    muc_room_t *c = muc_room_create(m2, "other", 5, NULL);
    assert_int_equal(muc_roomstore_decode(c, bad->root), -EINVAL);
    xml_stanza_unref(bad);
    xml_stanza_unref(again);
    xml_stanza_unref(back);
    xml_stanza_unref(doc);
    muc_room_destroy(a);
    muc_room_destroy(b);
    muc_room_destroy(c);
    service_free(m1);
    service_free(m2);
}

/* §9.9: pending registration requests in the stored form (bounded, skipped once affiliated)
 * and the approval form built from one. */
static void test_reg_requests(void **state)
{
    (void)state;
    muc_config_t mc = service_config();
    mc.registration_pending = 2;
    muc_t *m1 = service_new(&mc), *m2 = service_new(&mc);
    xml_stanza_t *doc = parse("<room xmlns='urn:parley:muc:0'><config name='' desc='' lang='' "
                              "password='' persistent='1' public='1' membersonly='1' "
                              "moderated='0' passwordprotected='0' changesubject='0' "
                              "allowinvites='0' logging='0' whois='moderators' "
                              "allowpm='anyone' maxusers='30' history='20' "
                              "presencebroadcast='moderator' getmemberlist='moderator'/>"
                              "<affiliation jid='m@x' affiliation='member'/>"
                              "<request jid='m@x' nick='member'/>"
                              "<request jid='a@x' nick='Hag' first='Brunhilde' faqentry='w'/>"
                              "<request jid='b@x' nick='b'/><request jid='c@x' nick='c'/>"
                              "</room>");
    assert_non_null(doc);
    muc_room_t *a = muc_room_create(m1, "coven", 5, NULL);
    assert_int_equal(muc_roomstore_decode(a, doc->root), 0);
    assert_int_equal(a->nreg_requests, 2); /* m@x is a member, c@x beyond the bound */
    const muc_reg_request_t *req = core_map_get(&a->reg_requests, "a@x", 3);
    assert_non_null(req);
    assert_string_equal(req->nick, "Hag");
    assert_string_equal(req->fields[MUC_REG_FIELD_FIRST], "Brunhilde");
    assert_null(req->fields[MUC_REG_FIELD_LAST]);
    /* The stored form gives the same bytes back. */
    xml_stanza_t *enc = muc_roomstore_encode(a);
    size_t len;
    const char *bytes = xml_stanza_bytes(enc, &len);
    xml_stanza_t *back = xml_stanza_parse(bytes, len);
    muc_room_t *b = muc_room_create(m2, "coven", 5, NULL);
    assert_int_equal(muc_roomstore_decode(b, back->root), 0);
    xml_stanza_t *again = muc_roomstore_encode(b);
    size_t len2;
    const char *bytes2 = xml_stanza_bytes(again, &len2);
    assert_int_equal(len2, len);
    assert_memory_equal(bytes2, bytes, len);
    /* The approval form: FORM_TYPE, the fields given in §9.9's order, muc#jid, allow = 0. */
    xml_stanza_t *f = muc_regapprove_form(a, req);
    const xml_node_t *x = xml_node_child(f->root, MUC_NS_DATA, "x");
    assert_non_null(x);
    assert_string_equal(xml_node_attr(x, "type"), "form");
    static const char *const vars[] = {
        "FORM_TYPE", "muc#register_first", "muc#register_roomnick", "muc#register_faqentry",
        "muc#jid",   "muc#register_allow"};
    size_t i = 0;
    for (const xml_node_t *n = xml_node_first_element(x); n != NULL; n = xml_node_next_element(n)) {
        if (xml_node_is(n, MUC_NS_DATA, "field"))
            assert_string_equal(xml_node_attr(n, "var"), vars[i++]);
    }
    assert_int_equal(i, 6);
    size_t vl;
    const char *v = muc_form_value(x, "muc#jid", &vl);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "a@x", 3);
    v = muc_form_value(x, "muc#register_allow", &vl);
    assert_int_equal(vl, 1);
    assert_memory_equal(v, "0", 1);
    assert_string_equal(xml_node_attr(f->root, "from"), "coven@conference.localhost");
    assert_null(xml_node_attr(f->root, "to"));
    /* An affiliation given meanwhile ends the request. */
    muc_room_affil_set(a, "a@x", MUC_AFFIL_OUTCAST, NULL);
    assert_int_equal(a->nreg_requests, 1);
    xml_stanza_unref(f);
    xml_stanza_unref(again);
    xml_stanza_unref(back);
    xml_stanza_unref(enc);
    xml_stanza_unref(doc);
    muc_room_destroy(a);
    muc_room_destroy(b);
    service_free(m1);
    service_free(m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nick_fold),
        cmocka_unit_test(test_nick_valid),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_history_select),
        cmocka_unit_test(test_history_request_parse),
        cmocka_unit_test(test_roomconfig_apply),
        cmocka_unit_test(test_roomconfig_form_type),
        cmocka_unit_test(test_roomstore_roundtrip),
        cmocka_unit_test(test_role_memos),
        cmocka_unit_test(test_reg_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
