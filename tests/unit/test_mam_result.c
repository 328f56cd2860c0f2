/* SPDX-License-Identifier: MIT */
/* The shared XEP-0313 answers (src/mam/result.c): result messages, <fin/>, the form, metadata. */
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

#define T0 1275868800000000LL /* 2010-06-07T00:00:00Z */

/* Literals are char arrays in C: the item only borrows them. */
static storage_archive_item_t item(char *id, int64_t us, char *data)
{
    return (storage_archive_item_t){
        .id = id, .stamp_us = us, .data = {.data = data, .len = strlen(data)}};
}

static xml_stanza_t *iq_result(void)
{
    const char *s = "<iq type='set' id='q1' from='a@b/c' to='a@b'/>";
    xml_stanza_t *iq = xml_stanza_parse(s, strlen(s));
    assert_non_null(iq);
    xml_stanza_t *r = xml_stanza_iq_result(iq);
    xml_stanza_unref(iq);
    return r;
}

static int added;

/* A reader who sees only the body. */
static void body_only(void *arg, xml_stanza_t *msg, xml_node_t *fwd, const xml_node_t *entry)
{
    assert_ptr_equal(arg, &added);
    added++;
    xml_node_t *m = xml_node_add_element(msg, fwd, XMLS_NS_CONTENT, "message");
    xml_node_add_copy(msg, m, xml_node_child(entry, XMLS_NS_CONTENT, "body"));
}

static void test_result(void **state)
{
    (void)state;
    storage_archive_item_t it =
        item("id-1", T0 + 7,
             "<message xmlns='jabber:client' to='r@x' from='j@x/p' type='chat'><body>hi</body>"
             "<thread>t</thread></message>");
    const mam_results_t r = {.from = "j@x", .to = "j@x/p", .queryid = "f27"};
    xml_stanza_t *msg = NULL;
    assert_int_equal(mam_result_new(&r, &it, &msg), 0);
    const xml_node_t *root = msg->root;
    assert_true(xml_node_is(root, XMLS_NS_CONTENT, "message"));
    assert_string_equal(xml_stanza_from(msg), "j@x");
    assert_string_equal(xml_stanza_to(msg), "j@x/p");
    assert_null(xml_stanza_type(msg));
    const xml_node_t *res = xml_node_first_element(root);
    assert_true(xml_node_is(res, MAM_NS, "result"));
    assert_null(xml_node_next_element(res));
    assert_string_equal(xml_node_attr(res, "queryid"), "f27");
    assert_string_equal(xml_node_attr(res, "id"), "id-1");
    const xml_node_t *fwd = xml_node_first_element(res);
    assert_true(xml_node_is(fwd, MAM_NS_FORWARD, "forwarded"));
    const xml_node_t *delay = xml_node_first_element(fwd);
    assert_true(xml_node_is(delay, MAM_NS_DELAY, "delay"));
    assert_string_equal(xml_node_attr(delay, "stamp"), "2010-06-07T00:00:00.000007Z");
    const xml_node_t *m = xml_node_next_element(delay);
    assert_true(xml_node_is(m, XMLS_NS_CONTENT, "message"));
    assert_string_equal(xml_node_attr(m, "to"), "r@x");
    assert_string_equal(xml_node_text(xml_node_child(m, XMLS_NS_CONTENT, "body"), NULL), "hi");
    assert_non_null(xml_node_child(m, XMLS_NS_CONTENT, "thread"));
    assert_null(xml_node_next_element(m));
    xml_stanza_unref(msg);

    /* No queryid: none on <result/>; the archive's own copy of the entry. */
    const mam_results_t r2 = {.from = "room@c", .to = "j@x/p", .add = body_only, .arg = &added};
    added = 0;
    assert_int_equal(mam_result_new(&r2, &it, &msg), 0);
    assert_int_equal(added, 1);
    res = xml_node_first_element(msg->root);
    assert_null(xml_node_attr(res, "queryid"));
    m = xml_node_next_element(xml_node_first_element(xml_node_first_element(res)));
    assert_true(xml_node_is(m, XMLS_NS_CONTENT, "message"));
    assert_null(xml_node_attr(m, "to"));
    assert_non_null(xml_node_child(m, XMLS_NS_CONTENT, "body"));
    assert_null(xml_node_child(m, XMLS_NS_CONTENT, "thread"));
    xml_stanza_unref(msg);

    /* Stored bytes that do not parse: the result, with its id and stamp and no message. */
    storage_archive_item_t broken = item("id-2", T0, "<message><body>");
    added = 0;
    assert_int_equal(mam_result_new(&r2, &broken, &msg), -EBADMSG);
    assert_int_equal(added, 0);
    res = xml_node_first_element(msg->root);
    assert_string_equal(xml_node_attr(res, "id"), "id-2");
    fwd = xml_node_first_element(res);
    delay = xml_node_first_element(fwd);
    assert_true(xml_node_is(delay, MAM_NS_DELAY, "delay"));
    assert_null(xml_node_next_element(delay));
    xml_stanza_unref(msg);
}

static void test_fin(void **state)
{
    (void)state;
    storage_archive_item_t items[3] = {item("a", T0, ""), item("b", T0 + 1, ""),
                                       item("c", T0 + 2, "")};
    storage_archive_result_t res = {
        .items = items, .count = 3, .complete = true, .total = 9, .first_index = 6};
    xml_stanza_t *r = iq_result();
    mam_page_t p = mam_page_of(&res);
    mam_fin_add(r, &p);
    const xml_node_t *fin = xml_node_first_element(r->root);
    assert_true(xml_node_is(fin, MAM_NS, "fin"));
    assert_string_equal(xml_node_attr(fin, "complete"), "true");
    assert_null(xml_node_attr(fin, "stable"));
    const xml_node_t *set = xml_node_first_element(fin);
    assert_true(xml_node_is(set, MAM_NS_RSM, "set"));
    const xml_node_t *first = xml_node_first_element(set);
    assert_true(xml_node_is(first, MAM_NS_RSM, "first"));
    assert_string_equal(xml_node_text(first, NULL), "a");
    assert_string_equal(xml_node_attr(first, "index"), "6");
    const xml_node_t *last = xml_node_next_element(first);
    assert_true(xml_node_is(last, MAM_NS_RSM, "last"));
    assert_string_equal(xml_node_text(last, NULL), "c");
    const xml_node_t *count = xml_node_next_element(last);
    assert_true(xml_node_is(count, MAM_NS_RSM, "count"));
    assert_string_equal(xml_node_text(count, NULL), "9");
    assert_null(xml_node_next_element(count));
    xml_stanza_unref(r);

    /* An empty page: only the count, and not complete unless said so. */
    mam_page_t empty = {.total = 4};
    r = iq_result();
    mam_fin_add(r, &empty);
    fin = xml_node_first_element(r->root);
    assert_null(xml_node_attr(fin, "complete"));
    set = xml_node_first_element(fin);
    count = xml_node_first_element(set);
    assert_true(xml_node_is(count, MAM_NS_RSM, "count"));
    assert_string_equal(xml_node_text(count, NULL), "4");
    assert_null(xml_node_next_element(count));
    xml_stanza_unref(r);
}

static void test_form(void **state)
{
    (void)state;
    static const char *const want[][2] = {
        {"FORM_TYPE", "hidden"}, {"with", "jid-single"},       {"start", "text-single"},
        {"end", "text-single"},  {"before-id", "text-single"}, {"after-id", "text-single"},
        {"ids", "list-multi"},
    };
    xml_stanza_t *r = iq_result();
    mam_form_add(r);
    assert_string_equal(xml_stanza_type(r), "result");
    const xml_node_t *q = xml_node_first_element(r->root);
    assert_true(xml_node_is(q, MAM_NS, "query"));
    const xml_node_t *x = xml_node_first_element(q);
    assert_true(xml_node_is(x, MAM_NS_DATA, "x"));
    assert_string_equal(xml_node_attr(x, "type"), "form");
    const xml_node_t *f = xml_node_first_element(x);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++, f = xml_node_next_element(f)) {
        assert_true(xml_node_is(f, MAM_NS_DATA, "field"));
        assert_string_equal(xml_node_attr(f, "var"), want[i][0]);
        assert_string_equal(xml_node_attr(f, "type"), want[i][1]);
    }
    assert_null(f);
    const xml_node_t *ft = xml_node_first_element(x);
    assert_string_equal(xml_node_text(xml_node_child(ft, MAM_NS_DATA, "value"), NULL), MAM_NS);
    const xml_node_t *ids = xml_node_child(x, NULL, NULL);
    while (xml_node_next_element(ids) != NULL)
        ids = xml_node_next_element(ids);
    const xml_node_t *v =
        xml_node_child(ids, "http://jabber.org/protocol/xdata-validate", "validate");
    assert_non_null(v);
    assert_string_equal(xml_node_attr(v, "datatype"), "xs:string");
    assert_non_null(xml_node_child(v, "http://jabber.org/protocol/xdata-validate", "open"));
    xml_stanza_unref(r);
}

static void test_metadata(void **state)
{
    (void)state;
    storage_archive_item_t first = item("first-id", T0, "");
    storage_archive_item_t last = item("last-id", T0 + 1500000, "");
    storage_archive_result_t a = {.items = &first, .count = 1, .total = 2};
    storage_archive_result_t b = {.items = &last, .count = 1, .total = 2};
    xml_stanza_t *r = iq_result();
    mam_metadata_add(r);
    mam_metadata_bound_add(r, false, &a);
    mam_metadata_bound_add(r, true, &b);
    const xml_node_t *md = xml_node_first_element(r->root);
    assert_true(xml_node_is(md, MAM_NS, "metadata"));
    const xml_node_t *s = xml_node_first_element(md);
    assert_true(xml_node_is(s, MAM_NS, "start"));
    assert_string_equal(xml_node_attr(s, "id"), "first-id");
    assert_string_equal(xml_node_attr(s, "timestamp"), "2010-06-07T00:00:00.000000Z");
    const xml_node_t *e = xml_node_next_element(s);
    assert_true(xml_node_is(e, MAM_NS, "end"));
    assert_string_equal(xml_node_attr(e, "id"), "last-id");
    assert_string_equal(xml_node_attr(e, "timestamp"), "2010-06-07T00:00:01.500000Z");
    assert_null(xml_node_next_element(e));
    xml_stanza_unref(r);

    /* §5: an empty archive has an empty <metadata/>. */
    storage_archive_result_t none = {0};
    r = iq_result();
    mam_metadata_add(r);
    mam_metadata_bound_add(r, false, &none);
    md = xml_node_first_element(r->root);
    assert_true(xml_node_is(md, MAM_NS, "metadata"));
    assert_null(xml_node_first_element(md));
    xml_stanza_unref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result),
        cmocka_unit_test(test_fin),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
