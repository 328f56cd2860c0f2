/* SPDX-License-Identifier: MIT */
/* Node configurations: defaults, and the pubsub#node_config forms of XEP-0060 §8.2 (XEP-0004). */
#include "pubsub/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pubsub_config_generic_defaults(pubsub_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->access_model = PUBSUB_ACCESS_OPEN;
    cfg->publish_model = PUBSUB_PUBLISH_PUBLISHERS;
    cfg->persist_items = true;
    cfg->max_items = 10;
    cfg->send_last = PUBSUB_SEND_LAST_NEVER;
    cfg->deliver_notifications = true;
    cfg->deliver_payloads = true;
    cfg->notify_delete = true;
    cfg->notify_retract = true;
}

void pubsub_config_pep_defaults(pubsub_config_t *cfg)
{
    /* XEP-0163 §8: presence access, payloads delivered, the last item on presence. */
    pubsub_config_generic_defaults(cfg);
    cfg->access_model = PUBSUB_ACCESS_PRESENCE;
    cfg->max_items = 1;
    cfg->send_last = PUBSUB_SEND_LAST_ON_SUB_AND_PRESENCE;
}

static char **strings_copy(char *const *s, size_t n)
{
    char **c = core_calloc(n + 1, sizeof(*c));
    for (size_t i = 0; i < n; i++)
        c[i] = core_strdup(s[i]);
    return c;
}

static void strings_free(char **s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        core_free(s[i]);
    core_free(s);
}

void pubsub_config_copy(pubsub_config_t *dst, const pubsub_config_t *src)
{
    *dst = *src;
    dst->title = src->title != NULL ? core_strdup(src->title) : NULL;
    dst->type = src->type != NULL ? core_strdup(src->type) : NULL;
    dst->groups = src->ngroups > 0 ? strings_copy(src->groups, src->ngroups) : NULL;
}

void pubsub_config_clear(pubsub_config_t *cfg)
{
    core_free(cfg->title);
    core_free(cfg->type);
    strings_free(cfg->groups, cfg->ngroups);
    memset(cfg, 0, sizeof(*cfg));
}

const char *const pubsub_access_names[PUBSUB_ACCESS_COUNT] = {
    [PUBSUB_ACCESS_OPEN] = "open",
    [PUBSUB_ACCESS_PRESENCE] = "presence",
    [PUBSUB_ACCESS_ROSTER] = "roster",
    [PUBSUB_ACCESS_WHITELIST] = "whitelist",
};
const char *const pubsub_send_last_names[PUBSUB_SEND_LAST_COUNT] = {
    [PUBSUB_SEND_LAST_NEVER] = "never",
    [PUBSUB_SEND_LAST_ON_SUB] = "on_sub",
    [PUBSUB_SEND_LAST_ON_SUB_AND_PRESENCE] = "on_sub_and_presence",
};
const char *const pubsub_publish_names[PUBSUB_PUBLISH_COUNT] = {
    [PUBSUB_PUBLISH_PUBLISHERS] = "publishers",
    [PUBSUB_PUBLISH_SUBSCRIBERS] = "subscribers",
    [PUBSUB_PUBLISH_OPEN] = "open",
};
static const char *const notification_names[] = {"headline", "normal"};

#define NAMES_COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *pubsub_access_name(pubsub_access_t a)
{
    return pubsub_access_names[a];
}

static int name_index(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], s) == 0)
            return (int)i;
    }
    return -1;
}

int pubsub_bool_parse(const char *s, bool *out)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
        *out = true;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
        *out = false;
    else
        return -EINVAL;
    return 0;
}

/* ---- writing forms ---- */

static xml_node_t *field_add(xml_stanza_t *st, xml_node_t *x, const char *var, const char *type,
                             const char *label)
{
    xml_node_t *f = xml_node_add_element(st, x, PUBSUB_NS_DATA, "field");
    xml_node_set_attr(st, f, NULL, "var", var);
    if (type != NULL)
        xml_node_set_attr(st, f, NULL, "type", type);
    if (label != NULL)
        xml_node_set_attr(st, f, NULL, "label", label);
    return f;
}

static void value_add(xml_stanza_t *st, xml_node_t *f, const char *text)
{
    xml_node_t *v = xml_node_add_element(st, f, PUBSUB_NS_DATA, "value");
    xml_node_add_text(st, v, text, strlen(text));
}

static void text_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label,
                       const char *value)
{
    xml_node_t *f = field_add(st, x, var, "text-single", label);
    if (value != NULL)
        value_add(st, f, value);
}

static void bool_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label,
                       bool value)
{
    value_add(st, field_add(st, x, var, "boolean", label), value ? "true" : "false");
}

/* A list-single field offering names[0..n) (a form) with value names[cur]. */
static void list_field(xml_stanza_t *st, xml_node_t *x, bool options, const char *var,
                       const char *label, const char *const *names, size_t n, size_t cur)
{
    xml_node_t *f = field_add(st, x, var, "list-single", label);
    for (size_t i = 0; options && i < n; i++) {
        xml_node_t *o = xml_node_add_element(st, f, PUBSUB_NS_DATA, "option");
        value_add(st, o, names[i]);
    }
    value_add(st, f, names[cur]);
}

void pubsub_config_form_add(const pubsub_service_t *svc, const pubsub_config_t *cfg,
                            const char *type, const char *form_type, xml_stanza_t *st,
                            xml_node_t *parent)
{
    bool form = strcmp(type, "form") == 0;
    xml_node_t *x = xml_node_add_element(st, parent, PUBSUB_NS_DATA, "x");
    xml_node_set_attr(st, x, NULL, "type", type);
    value_add(st, field_add(st, x, "FORM_TYPE", "hidden", NULL), form_type);
    text_field(st, x, "pubsub#title", "A friendly name for the node", cfg->title);
    text_field(st, x, "pubsub#type", "The payload's namespace", cfg->type);
    bool_field(st, x, "pubsub#deliver_notifications", "Whether to deliver event notifications",
               cfg->deliver_notifications);
    bool_field(st, x, "pubsub#deliver_payloads",
               "Whether to deliver payloads with event notifications", cfg->deliver_payloads);
    bool_field(st, x, "pubsub#notify_config",
               "Notify subscribers when the node configuration changes", cfg->notify_config);
    bool_field(st, x, "pubsub#notify_delete", "Notify subscribers when the node is deleted",
               cfg->notify_delete);
    bool_field(st, x, "pubsub#notify_retract",
               "Notify subscribers when items are removed from the node", cfg->notify_retract);
    bool_field(st, x, "pubsub#persist_items", "Persist items to storage", cfg->persist_items);
    char max[24];
    if (cfg->max_items_max)
        snprintf(max, sizeof max, "max");
    else
        snprintf(max, sizeof max, "%u", pubsub_config_max_items(svc, cfg));
    text_field(st, x, "pubsub#max_items",
               "Max # of items to persist. `max` for no specific limit other than a server "
               "imposed maximum.",
               max);
    list_field(st, x, form, "pubsub#access_model", "Specify the subscriber model",
               pubsub_access_names, NAMES_COUNT(pubsub_access_names), cfg->access_model);
    xml_node_t *g = field_add(st, x, "pubsub#roster_groups_allowed", "list-multi",
                              "Roster groups allowed to subscribe");
    for (size_t i = 0; i < cfg->ngroups; i++)
        value_add(st, g, cfg->groups[i]);
    list_field(st, x, form, "pubsub#publish_model", "Specify the publisher model",
               pubsub_publish_names, NAMES_COUNT(pubsub_publish_names), cfg->publish_model);
    list_field(st, x, form, "pubsub#send_last_published_item",
               "When to send the last published item", pubsub_send_last_names,
               NAMES_COUNT(pubsub_send_last_names), cfg->send_last);
    bool_field(st, x, "pubsub#presence_based_delivery",
               "Deliver event notifications only to available users", cfg->presence_based_delivery);
    list_field(st, x, form, "pubsub#notification_type",
               "Specify the delivery style for event notifications", notification_names,
               NAMES_COUNT(notification_names), cfg->notification_normal ? 1 : 0);
}

/* ---- reading forms ---- */

const char *pubsub_form_type(const xml_node_t *x)
{
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        const char *var = xml_node_attr(f, "var");
        if (xml_node_is(f, PUBSUB_NS_DATA, "field") && var != NULL &&
            strcmp(var, "FORM_TYPE") == 0) {
            const xml_node_t *v = xml_node_child(f, PUBSUB_NS_DATA, "value");
            size_t len;
            return v != NULL ? xml_node_text(v, &len) : "";
        }
    }
    return NULL;
}

/* The field's first value ("" when it has none). */
static const char *field_value(const xml_node_t *f)
{
    const xml_node_t *v = xml_node_child(f, PUBSUB_NS_DATA, "value");
    size_t len;
    return v != NULL ? xml_node_text(v, &len) : "";
}

static int not_acceptable(pubsub_error_t *err, const char *app)
{
    *err = (pubsub_error_t){.cond = CORE_STANZA_ERR_NOT_ACCEPTABLE, .app = app};
    return -EINVAL;
}

static bool *bool_member(pubsub_config_t *cfg, const char *var)
{
    static const struct {
        const char *var;
        size_t off;
    } bools[] = {
        {"pubsub#deliver_notifications", offsetof(pubsub_config_t, deliver_notifications)},
        {"pubsub#deliver_payloads", offsetof(pubsub_config_t, deliver_payloads)},
        {"pubsub#notify_config", offsetof(pubsub_config_t, notify_config)},
        {"pubsub#notify_delete", offsetof(pubsub_config_t, notify_delete)},
        {"pubsub#notify_retract", offsetof(pubsub_config_t, notify_retract)},
        {"pubsub#persist_items", offsetof(pubsub_config_t, persist_items)},
        {"pubsub#presence_based_delivery", offsetof(pubsub_config_t, presence_based_delivery)},
    };
    for (size_t i = 0; i < NAMES_COUNT(bools); i++) {
        if (strcmp(bools[i].var, var) == 0)
            return (bool *)((char *)cfg + bools[i].off);
    }
    return NULL;
}

static int max_items_apply(const pubsub_service_t *svc, const char *v, pubsub_config_t *cfg,
                           pubsub_error_t *err)
{
    if (strcmp(v, "max") == 0) {
        cfg->max_items_max = true;
        return 0;
    }
    char *end;
    unsigned long n = strtoul(v, &end, 10);
    /* A count the service will not keep is refused rather than silently lowered. */
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || n == 0 || n > svc->limits.max_items)
        return not_acceptable(err, NULL);
    cfg->max_items_max = false;
    cfg->max_items = (unsigned)n;
    return 0;
}

static void groups_apply(const xml_node_t *f, pubsub_config_t *cfg)
{
    strings_free(cfg->groups, cfg->ngroups);
    cfg->groups = NULL;
    cfg->ngroups = 0;
    for (const xml_node_t *v = xml_node_first_element(f); v != NULL; v = xml_node_next_element(v)) {
        size_t len;
        const char *t = xml_node_text(v, &len);
        if (!xml_node_is(v, PUBSUB_NS_DATA, "value") || len == 0)
            continue;
        cfg->groups = core_realloc(cfg->groups, (cfg->ngroups + 1) * sizeof(*cfg->groups));
        cfg->groups[cfg->ngroups++] = core_strndup(t, len);
    }
}

static void string_apply(char **member, const char *v)
{
    core_free(*member);
    *member = v[0] != '\0' ? core_strdup(v) : NULL;
}

/* Applies one field; -EINVAL with *err for an unknown field or a value it cannot take. */
static int field_apply(const pubsub_service_t *svc, const xml_node_t *f, pubsub_config_t *cfg,
                       pubsub_error_t *err)
{
    const char *var = xml_node_attr(f, "var");
    const char *v = field_value(f);
    bool *b;
    int i;
    if (var == NULL) {
        not_acceptable(err, NULL);
        return -ENOENT;
    }
    if ((b = bool_member(cfg, var)) != NULL)
        return pubsub_bool_parse(v, b) == 0 ? 0 : not_acceptable(err, NULL);
    if (strcmp(var, "pubsub#title") == 0) {
        string_apply(&cfg->title, v);
    } else if (strcmp(var, "pubsub#type") == 0) {
        string_apply(&cfg->type, v);
    } else if (strcmp(var, "pubsub#max_items") == 0) {
        return max_items_apply(svc, v, cfg, err);
    } else if (strcmp(var, "pubsub#access_model") == 0) {
        /* XEP-0060 §8.1.2: a model the service lacks (authorize) has its own condition. */
        if ((i = name_index(pubsub_access_names, NAMES_COUNT(pubsub_access_names), v)) < 0)
            return not_acceptable(err, "unsupported-access-model");
        cfg->access_model = (pubsub_access_t)i;
    } else if (strcmp(var, "pubsub#roster_groups_allowed") == 0) {
        groups_apply(f, cfg);
    } else if (strcmp(var, "pubsub#publish_model") == 0) {
        if ((i = name_index(pubsub_publish_names, NAMES_COUNT(pubsub_publish_names), v)) < 0)
            return not_acceptable(err, NULL);
        cfg->publish_model = (pubsub_publish_model_t)i;
    } else if (strcmp(var, "pubsub#send_last_published_item") == 0) {
        if ((i = name_index(pubsub_send_last_names, NAMES_COUNT(pubsub_send_last_names), v)) < 0)
            return not_acceptable(err, NULL);
        cfg->send_last = (pubsub_send_last_t)i;
    } else if (strcmp(var, "pubsub#notification_type") == 0) {
        if ((i = name_index(notification_names, NAMES_COUNT(notification_names), v)) < 0)
            return not_acceptable(err, NULL);
        cfg->notification_normal = i == 1;
    } else {
        not_acceptable(err, NULL);
        return -ENOENT; /* not a field the engine knows */
    }
    return 0;
}

static bool is_form_type(const xml_node_t *f)
{
    const char *var = xml_node_attr(f, "var");
    return var != NULL && strcmp(var, "FORM_TYPE") == 0;
}

int pubsub_config_form_apply(const pubsub_service_t *svc, const xml_node_t *x,
                             const char *form_type, pubsub_config_t *cfg, pubsub_error_t *err)
{
    const char *ft = pubsub_form_type(x);
    if (ft != NULL && strcmp(ft, form_type) != 0)
        return not_acceptable(err, NULL);
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        if (!xml_node_is(f, PUBSUB_NS_DATA, "field") || is_form_type(f))
            continue;
        int rc = field_apply(svc, f, cfg, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool has_string(char *const *s, size_t n, const char *v)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s[i], v) == 0)
            return true;
    }
    return false;
}

/* The same configuration as far as a client can tell (groups as sets, max_items as counts). */
static bool config_equal(const pubsub_service_t *svc, const pubsub_config_t *a,
                         const pubsub_config_t *b)
{
    if (!same_string(a->title, b->title) || !same_string(a->type, b->type) ||
        a->access_model != b->access_model || a->publish_model != b->publish_model ||
        a->persist_items != b->persist_items || a->send_last != b->send_last ||
        a->deliver_notifications != b->deliver_notifications ||
        a->deliver_payloads != b->deliver_payloads || a->notify_config != b->notify_config ||
        a->notify_delete != b->notify_delete || a->notify_retract != b->notify_retract ||
        a->presence_based_delivery != b->presence_based_delivery ||
        a->notification_normal != b->notification_normal ||
        pubsub_config_max_items(svc, a) != pubsub_config_max_items(svc, b))
        return false;
    for (size_t i = 0; i < a->ngroups; i++) {
        if (!has_string(b->groups, b->ngroups, a->groups[i]))
            return false;
    }
    for (size_t i = 0; i < b->ngroups; i++) {
        if (!has_string(a->groups, a->ngroups, b->groups[i]))
            return false;
    }
    return true;
}

bool pubsub_config_meets(const pubsub_service_t *svc, const pubsub_config_t *cfg,
                         const xml_node_t *x)
{
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL; f = xml_node_next_element(f)) {
        if (!xml_node_is(f, PUBSUB_NS_DATA, "field") || is_form_type(f))
            continue;
        /* The field applied alone must leave the node's configuration as it is. */
        pubsub_config_t tmp;
        pubsub_error_t err;
        pubsub_config_copy(&tmp, cfg);
        bool met = field_apply(svc, f, &tmp, &err) == 0 && config_equal(svc, &tmp, cfg);
        pubsub_config_clear(&tmp);
        if (!met)
            return false;
    }
    return true;
}
