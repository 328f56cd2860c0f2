/* SPDX-License-Identifier: MIT */
/*
 * The shared XEP-0313 query reader (src/mam/query.c) and its stamps (src/mam/stamp.c): every
 * form field, XEP-0059 paging both ways, each error and malformed values, with exact results.
 */
#include "core/alloc.h"
#include "mam/mam.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define RSM "<set xmlns='http://jabber.org/protocol/rsm'>"
#define FORM(fields)                                                                               \
    "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:2"          \
    "</value></field>" fields "</x>"

/* 2010-06-07T00:00:00Z */
#define T0 1275868800000000LL

static const mam_query_limits_t lim = {.page_default = 50, .page_max = 250};

static jid_cache_t *jids;

static int setup(void **state)
{
    (void)state;
    jids = jid_cache_new(16);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jid_cache_free(jids);
    return 0;
}

/* Parses <query xmlns='urn:xmpp:mam:2' queryid='f27'>inner</query> into q (cleared first). */
static int parse_with(const mam_query_limits_t *l, const char *inner, mam_query_t *q,
                      core_stanza_err_t *cond)
{
    char buf[8192];
    int n =
        snprintf(buf, sizeof buf, "<query xmlns='urn:xmpp:mam:2' queryid='f27'>%s</query>", inner);
    assert_true(n > 0 && (size_t)n < sizeof buf);
    xml_stanza_t *st = xml_stanza_parse(buf, (size_t)n);
    assert_non_null(st);
    memset(q, 0, sizeof(*q));
    *cond = CORE_STANZA_ERR_UNDEFINED_CONDITION;
    int rc = mam_query_parse(q, l, jids, st->root, cond);
    xml_stanza_unref(st);
    return rc;
}

static int parse(const char *inner, mam_query_t *q, core_stanza_err_t *cond)
{
    return parse_with(&lim, inner, q, cond);
}

/* The query is refused with exactly cond. */
static void refused(const char *inner, core_stanza_err_t want)
{
    mam_query_t q;
    core_stanza_err_t cond;
    int rc = parse(inner, &q, &cond);
    if (rc != -EINVAL || cond != want)
        print_error("query %s: rc %d cond %d, want -EINVAL cond %d\n", inner, rc, (int)cond,
                    (int)want);
    assert_int_equal(rc, -EINVAL);
    assert_int_equal(cond, want);
    mam_query_clear(&q);
}

/* The query is accepted; q holds it (the caller clears it). */
static void accepted(const char *inner, mam_query_t *q)
{
    core_stanza_err_t cond;
    int rc = parse(inner, q, &cond);
    if (rc != 0)
        print_error("query %s: rc %d cond %d\n", inner, rc, (int)cond);
    assert_int_equal(rc, 0);
}

static void test_empty_query(void **state)
{
    (void)state;
    mam_query_t q;
    accepted("", &q);
    assert_string_equal(q.queryid, "f27");
    assert_false(q.flip);
    assert_null(q.with);
    assert_false(q.has_start);
    assert_false(q.has_end);
    assert_null(q.after_id);
    assert_null(q.before_id);
    assert_null(q.rsm_after);
    assert_null(q.rsm_before);
    assert_false(q.from_end);
    assert_int_equal(q.max, 50);
    assert_null(q.ids);
    assert_int_equal(q.nids, 0);
    mam_query_clear(&q);

    /* No queryid; unknown children of the query are let be. */
    xml_stanza_t *st = xml_stanza_parse("<query xmlns='urn:xmpp:mam:2'><other xmlns='x:y'/>"
                                        "<x xmlns='other:ns'/></query>",
                                        strlen("<query xmlns='urn:xmpp:mam:2'><other xmlns="
                                               "'x:y'/><x xmlns='other:ns'/></query>"));
    assert_non_null(st);
    memset(&q, 0, sizeof q);
    core_stanza_err_t cond;
    assert_int_equal(mam_query_parse(&q, &lim, jids, st->root, &cond), 0);
    assert_null(q.queryid);
    mam_query_clear(&q);
    xml_stanza_unref(st);
}

static void test_fields(void **state)
{
    (void)state;
    mam_query_t q;
    accepted(FORM("<field var='with'><value>Juliet@Capulet.LIT/Balcony</value></field>"
                  "<field var='start'><value>2010-06-07T00:00:00Z</value></field>"
                  "<field var='end'><value>2010-06-07T02:30:00.25+02:00</value></field>"
                  "<field var='after-id'><value>09af3-cc343-b409f</value></field>"
                  "<field var='before-id'><value>28482_98726</value></field>"
                  "<field var='ids' type='list-multi'><value>c</value><value>a</value>"
                  "<value>b</value><value>a</value></field>"),
             &q);
    assert_string_equal(q.with, "juliet@capulet.lit/Balcony"); /* prepared */
    assert_true(q.has_start);
    assert_int_equal(q.start_us, T0);
    assert_true(q.has_end);
    assert_int_equal(q.end_us, T0 + 30 * 60 * 1000000LL + 250000);
    assert_string_equal(q.after_id, "09af3-cc343-b409f");
    assert_string_equal(q.before_id, "28482_98726");
    /* The form's cursors are not RSM's and do not page backwards (§9). */
    assert_null(q.rsm_after);
    assert_null(q.rsm_before);
    assert_false(q.from_end);
    /* ids: sorted, without repeats */
    assert_int_equal(q.nids, 3);
    assert_string_equal(q.ids[0], "a");
    assert_string_equal(q.ids[1], "b");
    assert_string_equal(q.ids[2], "c");
    mam_query_clear(&q);

    /* A field without a value, or with an empty one, is absent; so is an empty 'ids'. */
    accepted(FORM("<field var='with'/><field var='start'><value/></field>"
                  "<field var='after-id'><value></value></field><field var='ids'/>"),
             &q);
    assert_null(q.with);
    assert_false(q.has_start);
    assert_null(q.after_id);
    assert_int_equal(q.nids, 0);
    mam_query_clear(&q);

    /* A bare JID and a domain are JIDs too (§4.1.1); no 'type' on the form is 'submit'. */
    accepted("<x xmlns='jabber:x:data'><field var='FORM_TYPE'><value>urn:xmpp:mam:2</value>"
             "</field><field var='with'><value>Capulet.lit</value></field></x>",
             &q);
    assert_string_equal(q.with, "capulet.lit");
    mam_query_clear(&q);

    /* Elements of other namespaces inside the form and the field are let be. */
    accepted(FORM("<other xmlns='x:y'/><field var='with'><desc xmlns='x:y'>d</desc>"
                  "<value>a@b</value></field>"),
             &q);
    assert_string_equal(q.with, "a@b");
    mam_query_clear(&q);
}

static void test_rsm_forward(void **state)
{
    (void)state;
    mam_query_t q;
    accepted(RSM "<max>10</max><after>09af3-cc343-b409f</after></set>", &q);
    assert_int_equal(q.max, 10);
    assert_string_equal(q.rsm_after, "09af3-cc343-b409f");
    assert_null(q.rsm_before);
    assert_false(q.from_end);
    assert_null(q.after_id);
    mam_query_clear(&q);

    /* The last <after/> given is the cursor. */
    accepted(RSM "<after>one</after><after>two</after></set>", &q);
    assert_string_equal(q.rsm_after, "two");
    mam_query_clear(&q);

    /* With the form's after-id: both kept, each archive decides (§9). */
    accepted(FORM("<field var='after-id'><value>x1</value></field>") RSM "<after>x2</after>"
                                                                         "</set>",
             &q);
    assert_string_equal(q.after_id, "x1");
    assert_string_equal(q.rsm_after, "x2");
    mam_query_clear(&q);
}

static void test_rsm_backward(void **state)
{
    (void)state;
    mam_query_t q;
    accepted(RSM "<max>3</max><before>28482-98726</before></set>", &q);
    assert_int_equal(q.max, 3);
    assert_string_equal(q.rsm_before, "28482-98726");
    assert_true(q.from_end);
    assert_null(q.rsm_after);
    mam_query_clear(&q);

    /* XEP-0059 §2.5: an empty <before/> is the last page. */
    accepted(RSM "<before/></set><flip-page/>", &q);
    assert_null(q.rsm_before);
    assert_true(q.from_end);
    assert_true(q.flip); /* §4.3.4 */
    mam_query_clear(&q);

    /* An empty <before/> after one with an id: the last page, no cursor. */
    accepted(RSM "<before>abc</before><before/></set>", &q);
    assert_null(q.rsm_before);
    assert_true(q.from_end);
    mam_query_clear(&q);

    /* mam_query_filters: the filters, no cursor. */
    accepted(FORM("<field var='with'><value>a@b</value></field><field var='start'><value>"
                  "2010-06-07T00:00:00Z</value></field><field var='end'><value>"
                  "2010-06-07T00:00:01Z</value></field><field var='before-id'><value>b1"
                  "</value></field><field var='ids'><value>i2</value><value>i1</value>"
                  "</field>") RSM "<max>7</max><before>b2</before></set>",
             &q);
    storage_archive_query_t s = mam_query_filters(&q);
    assert_ptr_equal(s.with, q.with);
    assert_true(s.has_start);
    assert_int_equal(s.start_us, T0);
    assert_true(s.has_end);
    assert_int_equal(s.end_us, T0 + 1000000);
    assert_null(s.after_id);
    assert_null(s.before_id);
    assert_int_equal(s.nids, 2);
    assert_string_equal(s.ids[0], "i1");
    assert_string_equal(s.ids[1], "i2");
    assert_int_equal(s.max, 7);
    assert_true(s.from_end);
    mam_query_clear(&q);
}

static void test_max(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t max;
    } good[] = {
        {"0", 0},      {"7", 7},
        {" 7\n", 7}, /* xs:int: white space collapses */
        {"250", 250},  {"251", 250}, /* beyond the page: cut (XEP-0059 §2.1) */
        {"00012", 12}, {"99999999999999999999999999999999", 250}, /* no overflow */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, RSM "<max>%s</max></set>", good[i].text);
        mam_query_t q;
        accepted(buf, &q);
        assert_int_equal(q.max, good[i].max);
        mam_query_clear(&q);
    }
    static const char *const bad[] = {"", " ", "-1", "+3", "1.5", "1e3", "7 7", "x", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, RSM "<max>%s</max></set>", bad[i]);
        refused(buf, CORE_STANZA_ERR_BAD_REQUEST);
    }
    /* The limits decide the default and the cut. */
    static const mam_query_limits_t small = {.page_default = 5, .page_max = 8};
    mam_query_t q;
    core_stanza_err_t cond;
    assert_int_equal(parse_with(&small, "", &q, &cond), 0);
    assert_int_equal(q.max, 5);
    mam_query_clear(&q);
    assert_int_equal(parse_with(&small, RSM "<max>9</max></set>", &q, &cond), 0);
    assert_int_equal(q.max, 8);
    mam_query_clear(&q);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *inner;
        core_stanza_err_t cond;
    } cases[] = {
        /* the form (§4.1, XEP-0004) */
        {"<x xmlns='jabber:x:data' type='submit'/>", CORE_STANZA_ERR_BAD_REQUEST},
        {"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1"
         "</value></field></x>",
         CORE_STANZA_ERR_BAD_REQUEST},
        {"<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'/></x>",
         CORE_STANZA_ERR_BAD_REQUEST},
        {"<x xmlns='jabber:x:data' type='form'><field var='FORM_TYPE'><value>urn:xmpp:mam:2"
         "</value></field></x>",
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field><value>x</value></field>"), CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("") FORM(""), CORE_STANZA_ERR_BAD_REQUEST}, /* a second form */
        {FORM("<field var='colour'><value>red</value></field>"),
         CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED}, /* §4.1.5 */
        {FORM("<field var='with'><value>a@b</value></field>"
              "<field var='with'><value>c@d</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='with'><value>a@b</value><value>c@d</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='with'><value>@capulet.lit</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='with'><value>a@b/</value></field>"), CORE_STANZA_ERR_BAD_REQUEST},
        /* ids that name no entry (§4.1.3) */
        {FORM("<field var='after-id'><value>has space</value></field>"),
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {FORM("<field var='before-id'><value>semi;colon</value></field>"),
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {FORM("<field var='after-id'><value>a</value><value>b</value></field>"),
         CORE_STANZA_ERR_BAD_REQUEST},
        {FORM("<field var='ids'><value>ok</value><value>n\xc3\xa9</value></field>"),
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {FORM("<field var='ids'><value>ok</value><value/></field>"),
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
        /* XEP-0059 */
        {RSM "<after/></set>", CORE_STANZA_ERR_BAD_REQUEST},
        {RSM "<after>bad!</after></set>", CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {RSM "<before>bad!</before></set>", CORE_STANZA_ERR_ITEM_NOT_FOUND},
        {RSM "<index>0</index></set>", CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED}, /* §2.6 */
        {RSM "<max>x</max></set>", CORE_STANZA_ERR_BAD_REQUEST},
        /* The first refusal in document order is the answer. */
        {FORM("<field var='colour'><value>red</value></field>"
              "<field var='after-id'><value>!</value></field>"),
         CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED},
        {RSM "<index>0</index></set>" FORM("<field var='after-id'><value>!</value></field>"),
         CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED},
        {FORM("<field var='after-id'><value>!</value></field>") RSM "<index>0</index></set>",
         CORE_STANZA_ERR_ITEM_NOT_FOUND},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(cases[i].inner, cases[i].cond);

    /* XEP-0442 pubsub archives: not here. */
    const char *s = "<query xmlns='urn:xmpp:mam:2' node='urn:xmpp:mucsub:nodes:messages'/>";
    xml_stanza_t *st = xml_stanza_parse(s, strlen(s));
    mam_query_t q = {0};
    core_stanza_err_t cond;
    assert_int_equal(mam_query_parse(&q, &lim, jids, st->root, &cond), -EINVAL);
    assert_int_equal(cond, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED);
    mam_query_clear(&q);
    xml_stanza_unref(st);
}

static void test_start_end(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "yesterday",
        "2010-06-07",
        "2010-06-07T00:00:00", /* no zone */
        "2010-06-07T00:00Z",
        "2010-06-07 00:00:00Z",
        "2010-02-30T00:00:00Z", /* no such day */
        "1900-02-29T00:00:00Z",
        "2010-13-01T00:00:00Z",
        "2010-00-01T00:00:00Z",
        "2010-06-00T00:00:00Z",
        "2010-06-07T24:00:00Z",
        "2010-06-07T00:60:00Z",
        "2010-06-07T00:00:60Z",
        "2010-06-07T00:00:00.Z",
        "2010-06-07T00:00:00+24:00",
        "2010-06-07T00:00:00+02:60",
        "2010-06-07T00:00:00+0200",
        "2010-06-07T00:00:00Zjunk",
        "2010-06-07T00:00:00+02:00:00",
        "10-06-07T00:00:00Z",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t us = 42;
        if (mam_stamp_parse(bad[i], &us) != -EINVAL)
            print_error("stamp %s parsed\n", bad[i]);
        assert_int_equal(mam_stamp_parse(bad[i], &us), -EINVAL);
        assert_int_equal(us, 42);
        char buf[256];
        snprintf(buf, sizeof buf, FORM("<field var='end'><value>%s</value></field>"), bad[i]);
        refused(buf, CORE_STANZA_ERR_BAD_REQUEST);
    }
    static const struct {
        const char *s;
        int64_t us;
    } good[] = {
        {"2010-06-07T00:00:00Z", T0},
        {"2010-06-07T00:00:00.5Z", T0 + 500000},
        {"2010-06-07T00:00:00.0000019Z", T0 + 1}, /* beyond microseconds: dropped */
        {"2010-06-07T02:00:00+02:00", T0},
        {"2010-06-06T18:30:00-05:30", T0},
        {"2000-02-29T00:00:00Z", 951782400000000LL}, /* a leap day */
        {"1970-01-01T00:00:00Z", 0},
        {"1969-12-31T23:59:59.999999Z", -1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t us = 0;
        assert_int_equal(mam_stamp_parse(good[i].s, &us), 0);
        assert_int_equal(us, good[i].us);
    }
    char out[MAM_STAMP_SIZE];
    mam_stamp_format(T0 + 1, out);
    assert_string_equal(out, "2010-06-07T00:00:00.000001Z");
    mam_stamp_format(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999999Z");
    mam_stamp_format(0, out);
    assert_string_equal(out, "1970-01-01T00:00:00.000000Z");
    /* What it writes reads back. */
    int64_t back;
    mam_stamp_format(951782400123456LL, out);
    assert_int_equal(mam_stamp_parse(out, &back), 0);
    assert_int_equal(back, 951782400123456LL);
}

static void test_id_limits(void **state)
{
    (void)state;
    char id[STORAGE_ARCHIVE_ID_MAX + 2];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_false(mam_id_valid(id)); /* one too long */
    id[STORAGE_ARCHIVE_ID_MAX] = '\0';
    assert_true(mam_id_valid(id));
    assert_true(mam_id_valid("AZaz09_-"));
    assert_false(mam_id_valid(""));
    assert_false(mam_id_valid("a.b"));
    assert_false(mam_id_valid("a/b"));

    char buf[512];
    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(buf, sizeof buf, RSM "<after>%s</after></set>", id);
    refused(buf, CORE_STANZA_ERR_ITEM_NOT_FOUND);

    /* 'ids': STORAGE_ARCHIVE_IDS_MAX at most; one more is policy-violation. */
    size_t cap = (STORAGE_ARCHIVE_IDS_MAX + 1) * 24 + 256;
    char *big = core_malloc(cap);
    for (int extra = 0; extra < 2; extra++) {
        size_t n = (size_t)snprintf(big, cap,
                                    "<query xmlns='urn:xmpp:mam:2'><x xmlns='jabber:x:data'>"
                                    "<field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>"
                                    "<field var='ids'>");
        for (int i = 0; i < STORAGE_ARCHIVE_IDS_MAX + extra; i++)
            n += (size_t)snprintf(big + n, cap - n, "<value>i%d</value>", i);
        n += (size_t)snprintf(big + n, cap - n, "</field></x></query>");
        xml_stanza_t *st = xml_stanza_parse(big, n);
        assert_non_null(st);
        mam_query_t q = {0};
        core_stanza_err_t cond = CORE_STANZA_ERR_UNDEFINED_CONDITION;
        int rc = mam_query_parse(&q, &lim, jids, st->root, &cond);
        if (extra == 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(q.nids, STORAGE_ARCHIVE_IDS_MAX);
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_int_equal(cond, CORE_STANZA_ERR_POLICY_VIOLATION);
        }
        mam_query_clear(&q);
        xml_stanza_unref(st);
    }
    core_free(big);
}

/* An archive whose ids are only "good-…". */
static bool good_only(const char *id)
{
    return strncmp(id, "good-", 5) == 0;
}

static void test_id_check_of_the_archive(void **state)
{
    (void)state;
    static const mam_query_limits_t own = {
        .page_default = 50, .page_max = 250, .id_valid = good_only};
    static const char *const inner[] = {
        FORM("<field var='after-id'><value>abc</value></field>"),
        FORM("<field var='before-id'><value>abc</value></field>"),
        FORM("<field var='ids'><value>good-1</value><value>abc</value></field>"),
        RSM "<after>abc</after></set>",
        RSM "<before>abc</before></set>",
    };
    for (size_t i = 0; i < sizeof inner / sizeof inner[0]; i++) {
        mam_query_t q;
        core_stanza_err_t cond;
        assert_int_equal(parse_with(&own, inner[i], &q, &cond), -EINVAL);
        assert_int_equal(cond, CORE_STANZA_ERR_ITEM_NOT_FOUND);
        mam_query_clear(&q);
    }
    mam_query_t q;
    core_stanza_err_t cond;
    assert_int_equal(parse_with(&own,
                                FORM("<field var='after-id'><value>good-a</value></field>"
                                     "<field var='ids'><value>good-b</value></field>") RSM
                                "<before>good-c</before></set>",
                                &q, &cond),
                     0);
    assert_string_equal(q.after_id, "good-a");
    assert_string_equal(q.ids[0], "good-b");
    assert_string_equal(q.rsm_before, "good-c");
    mam_query_clear(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_query),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_rsm_forward),
        cmocka_unit_test(test_rsm_backward),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_start_end),
        cmocka_unit_test(test_id_limits),
        cmocka_unit_test(test_id_check_of_the_archive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
