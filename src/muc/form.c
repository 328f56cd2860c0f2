/* SPDX-License-Identifier: MIT */
/* Reading and writing the few XEP-0004 data forms of voice requests and room registration. */
#include "muc/internal.h"

#include <errno.h>
#include <string.h>

static const xml_node_t *field_of(const xml_node_t *x, const char *var)
{
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        const char *v = xml_node_attr(f, "var");
        if (xml_node_is(f, MUC_NS_DATA, "field") && v != NULL && strcmp(v, var) == 0)
            return f;
    }
    return NULL;
}

const char *muc_form_value(const xml_node_t *x, const char *var, size_t *len)
{
    const xml_node_t *f = x != NULL ? field_of(x, var) : NULL;
    const xml_node_t *v = f != NULL ? xml_node_child(f, MUC_NS_DATA, "value") : NULL;
    if (v == NULL)
        return NULL;
    return xml_node_text(v, len);
}

bool muc_form_is(const xml_node_t *x, const char *form_type)
{
    size_t len;
    const char *t = muc_form_value(x, "FORM_TYPE", &len);
    return t != NULL && strlen(form_type) == len && memcmp(t, form_type, len) == 0;
}

int muc_form_bool(const char *v, size_t len, bool *out)
{
    /* XEP-0004 §3.3 boolean: "0", "1", "false", "true". */
    if ((len == 1 && v[0] == '1') || (len == 4 && memcmp(v, "true", 4) == 0))
        *out = true;
    else if ((len == 1 && v[0] == '0') || (len == 5 && memcmp(v, "false", 5) == 0))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

xml_node_t *muc_form_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *type,
                           const char *label, const char *value)
{
    xml_node_t *f = xml_node_add_element(st, x, MUC_NS_DATA, "field");
    xml_node_set_attr(st, f, NULL, "var", var);
    if (type != NULL)
        xml_node_set_attr(st, f, NULL, "type", type);
    if (label != NULL)
        xml_node_set_attr(st, f, NULL, "label", label);
    if (value != NULL) {
        xml_node_t *v = xml_node_add_element(st, f, MUC_NS_DATA, "value");
        xml_node_add_text(st, v, value, strlen(value));
    }
    return f;
}

xml_stanza_t *muc_form_message(const muc_room_t *room, const char *title, const char *instructions,
                               xml_node_t **x)
{
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(m, m->root, NULL, "from", room->jid);
    char id[33];
    muc_id_new(room->muc, id);
    xml_node_set_attr(m, m->root, NULL, "id", id);
    *x = xml_node_add_element(m, m->root, MUC_NS_DATA, "x");
    xml_node_set_attr(m, *x, NULL, "type", "form");
    xml_node_t *t = xml_node_add_element(m, *x, MUC_NS_DATA, "title");
    xml_node_add_text(m, t, title, strlen(title));
    xml_node_t *in = xml_node_add_element(m, *x, MUC_NS_DATA, "instructions");
    xml_node_add_text(m, in, instructions, strlen(instructions));
    return m;
}
