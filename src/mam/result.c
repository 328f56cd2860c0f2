/* SPDX-License-Identifier: MIT */
/* The elements of XEP-0313 answers: result messages (§4.2), <fin/> (§4.3), the form, metadata. */
#include "mam/mam.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NS_XDATA_VALIDATE "http://jabber.org/protocol/xdata-validate"

static xml_node_t *add_text(xml_stanza_t *st, xml_node_t *parent, const char *ns, const char *name,
                            const char *text)
{
    xml_node_t *n = xml_node_add_element(st, parent, ns, name);
    xml_node_add_text(st, n, text, strlen(text));
    return n;
}

int mam_result_new(const mam_results_t *r, const storage_archive_item_t *it, xml_stanza_t **out)
{
    xml_stanza_t *msg = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(msg, msg->root, NULL, "from", r->from);
    xml_node_set_attr(msg, msg->root, NULL, "to", r->to);
    xml_node_t *res = xml_node_add_element(msg, msg->root, MAM_NS, "result");
    if (r->queryid != NULL)
        xml_node_set_attr(msg, res, NULL, "queryid", r->queryid);
    xml_node_set_attr(msg, res, NULL, "id", it->id);
    /* XEP-0297 §3: the forwarded message with its XEP-0203 <delay/>, the archive's stamp. */
    xml_node_t *fwd = xml_node_add_element(msg, res, MAM_NS_FORWARD, "forwarded");
    xml_node_t *delay = xml_node_add_element(msg, fwd, MAM_NS_DELAY, "delay");
    char stamp[MAM_STAMP_SIZE];
    mam_stamp_format(it->stamp_us, stamp);
    xml_node_set_attr(msg, delay, NULL, "stamp", stamp);
    int rc = 0;
    xml_stanza_t *orig = xml_stanza_parse(it->data.data, it->data.len);
    if (orig == NULL)
        rc = -EBADMSG;
    else if (r->add != NULL)
        r->add(r->arg, msg, fwd, orig->root);
    else
        xml_node_add_copy(msg, fwd, orig->root);
    xml_stanza_unref(orig);
    *out = msg;
    return rc;
}

mam_page_t mam_page_of(const storage_archive_result_t *res)
{
    return (mam_page_t){.items = res->items,
                        .count = res->count,
                        .first_index = res->first_index,
                        .total = res->total,
                        .complete = res->complete};
}

void mam_fin_add(xml_stanza_t *reply, const mam_page_t *p)
{
    xml_node_t *fin = xml_node_add_element(reply, reply->root, MAM_NS, "fin");
    if (p->complete)
        xml_node_set_attr(reply, fin, NULL, "complete", "true");
    xml_node_t *set = xml_node_add_element(reply, fin, MAM_NS_RSM, "set");
    char num[32];
    if (p->count > 0) {
        xml_node_t *first = add_text(reply, set, MAM_NS_RSM, "first", p->items[0].id);
        snprintf(num, sizeof num, "%zu", p->first_index);
        xml_node_set_attr(reply, first, NULL, "index", num);
        add_text(reply, set, MAM_NS_RSM, "last", p->items[p->count - 1].id);
    }
    snprintf(num, sizeof num, "%zu", p->total);
    add_text(reply, set, MAM_NS_RSM, "count", num);
}

void mam_form_add(xml_stanza_t *reply)
{
    /* §4.1.5: the fields a query may use (none is required, §4.1). */
    static const char *const fields[][2] = {
        {"with", "jid-single"},       {"start", "text-single"},    {"end", "text-single"},
        {"before-id", "text-single"}, {"after-id", "text-single"}, {"ids", "list-multi"},
    };
    xml_node_t *q = xml_node_add_element(reply, reply->root, MAM_NS, "query");
    xml_node_t *x = xml_node_add_element(reply, q, MAM_NS_DATA, "x");
    xml_node_set_attr(reply, x, NULL, "type", "form");
    xml_node_t *f = xml_node_add_element(reply, x, MAM_NS_DATA, "field");
    xml_node_set_attr(reply, f, NULL, "type", "hidden");
    xml_node_set_attr(reply, f, NULL, "var", "FORM_TYPE");
    add_text(reply, f, MAM_NS_DATA, "value", MAM_NS);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        f = xml_node_add_element(reply, x, MAM_NS_DATA, "field");
        xml_node_set_attr(reply, f, NULL, "type", fields[i][1]);
        xml_node_set_attr(reply, f, NULL, "var", fields[i][0]);
    }
    /* §4.1.5: 'ids' takes any value (XEP-0122 <open/>): the list of ids is not given. */
    xml_node_t *v = xml_node_add_element(reply, f, NS_XDATA_VALIDATE, "validate");
    xml_node_set_attr(reply, v, NULL, "datatype", "xs:string");
    xml_node_add_element(reply, v, NS_XDATA_VALIDATE, "open");
}

void mam_metadata_add(xml_stanza_t *reply)
{
    xml_node_add_element(reply, reply->root, MAM_NS, "metadata");
}

void mam_metadata_bound_add(xml_stanza_t *reply, bool end, const storage_archive_result_t *res)
{
    if (res->count == 0)
        return;
    xml_node_t *md = xml_node_child(reply->root, MAM_NS, "metadata");
    xml_node_t *n = xml_node_add_element(reply, md, MAM_NS, end ? "end" : "start");
    char stamp[MAM_STAMP_SIZE];
    mam_stamp_format(res->items[0].stamp_us, stamp);
    xml_node_set_attr(reply, n, NULL, "id", res->items[0].id);
    xml_node_set_attr(reply, n, NULL, "timestamp", stamp);
}
