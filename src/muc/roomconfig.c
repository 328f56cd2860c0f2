/* SPDX-License-Identifier: MIT */
/* Room configuration: the muc#roomconfig form (XEP-0004) and the muc#owner use cases (§10). */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_MAX 1024 /* bytes of a room name, description, language or password */

static const char *const role_vals[] = {"moderator", "participant", "visitor"};
static const muc_role_t role_of[] = {MUC_ROLE_MODERATOR, MUC_ROLE_PARTICIPANT, MUC_ROLE_VISITOR};
static const char *const pm_vals[] = {"anyone", "participants", "moderators", "none"};

/* ---- building the form ---- */

static xml_node_t *field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *type,
                         const char *label)
{
    xml_node_t *f = xml_node_add_element(st, x, MUC_NS_DATA, "field");
    if (var != NULL)
        xml_node_set_attr(st, f, NULL, "var", var);
    xml_node_set_attr(st, f, NULL, "type", type);
    if (label != NULL)
        xml_node_set_attr(st, f, NULL, "label", label);
    return f;
}

static void value(xml_stanza_t *st, xml_node_t *f, const char *v)
{
    xml_node_t *n = xml_node_add_element(st, f, MUC_NS_DATA, "value");
    xml_node_add_text(st, n, v, strlen(v));
}

static void option(xml_stanza_t *st, xml_node_t *f, const char *label, const char *v)
{
    xml_node_t *o = xml_node_add_element(st, f, MUC_NS_DATA, "option");
    xml_node_set_attr(st, o, NULL, "label", label);
    value(st, o, v);
}

static void text_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label,
                       const char *v, const char *type)
{
    value(st, field(st, x, var, type, label), v);
}

static void bool_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label, bool v)
{
    value(st, field(st, x, var, "boolean", label), v ? "1" : "0");
}

static void roles_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label,
                        unsigned set)
{
    xml_node_t *f = field(st, x, var, "list-multi", label);
    for (size_t i = 0; i < 3; i++) {
        if (set & MUC_ROLE_BIT(role_of[i]))
            value(st, f, role_vals[i]);
    }
    option(st, f, "Moderator", "moderator");
    option(st, f, "Participant", "participant");
    option(st, f, "Visitor", "visitor");
}

static void jids_field(xml_stanza_t *st, xml_node_t *x, const char *var, const char *label,
                       const char *const *jids, size_t n)
{
    xml_node_t *f = field(st, x, var, "jid-multi", label);
    for (size_t i = 0; i < n; i++)
        value(st, f, jids[i]);
}

void muc_roomconfig_form(xml_stanza_t *st, xml_node_t *parent, const muc_room_config_t *c,
                         const muc_config_t *mc, const char *const *owners, size_t nowners,
                         const char *const *admins, size_t nadmins)
{
    xml_node_t *x = xml_node_add_element(st, parent, MUC_NS_DATA, "x");
    xml_node_set_attr(st, x, NULL, "type", "form");
    xml_node_t *t = xml_node_add_element(st, x, MUC_NS_DATA, "title");
    xml_node_add_text(st, t, "Room configuration", 18);
    text_field(st, x, "FORM_TYPE", NULL, MUC_NS_ROOMCONFIG, "hidden");
    text_field(st, x, "muc#roomconfig_roomname", "Natural-Language Room Name", c->name,
               "text-single");
    text_field(st, x, "muc#roomconfig_roomdesc", "Short Description of Room", c->desc,
               "text-single");
    text_field(st, x, "muc#roomconfig_lang", "Natural Language for Room Discussions", c->lang,
               "text-single");
    bool_field(st, x, "muc#roomconfig_persistentroom", "Make Room Persistent?", c->persistent);
    bool_field(st, x, "muc#roomconfig_publicroom", "Make Room Publicly Searchable?",
               c->public_room);
    bool_field(st, x, "muc#roomconfig_membersonly", "Make Room Members-Only?", c->members_only);
    bool_field(st, x, "muc#roomconfig_moderatedroom", "Make Room Moderated?", c->moderated);
    bool_field(st, x, "muc#roomconfig_passwordprotectedroom", "Password Required to Enter?",
               c->password_protected);
    text_field(st, x, "muc#roomconfig_roomsecret", "Password", c->password, "text-private");
    xml_node_t *f =
        field(st, x, "muc#roomconfig_whois", "list-single", "Who May Discover Real JIDs?");
    value(st, f, c->whois == MUC_WHOIS_ANYONE ? "anyone" : "moderators");
    option(st, f, "Moderators Only", "moderators");
    option(st, f, "Anyone", "anyone");
    char n[32];
    f = field(st, x, "muc#roomconfig_maxusers", "list-single", "Maximum Number of Occupants");
    snprintf(n, sizeof n, "%lld", (long long)c->maxusers);
    value(st, f, n);
    static const int64_t steps[] = {10, 20, 30, 50, 100, 200, 500, 1000, 10000, 100000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0] && steps[i] <= mc->max_occupants; i++) {
        snprintf(n, sizeof n, "%lld", (long long)steps[i]);
        option(st, f, n, n);
    }
    bool_field(st, x, "muc#roomconfig_changesubject", "Allow Occupants to Change Subject?",
               c->change_subject);
    bool_field(st, x, "muc#roomconfig_allowinvites", "Allow Members to Invite Others?",
               c->allow_invites);
    f = field(st, x, "muc#roomconfig_allowpm", "list-single", "Who Can Send Private Messages?");
    value(st, f, pm_vals[c->allowpm]);
    option(st, f, "Anyone", "anyone");
    option(st, f, "Anyone with Voice", "participants");
    option(st, f, "Moderators Only", "moderators");
    option(st, f, "Nobody", "none");
    roles_field(st, x, "muc#roomconfig_presencebroadcast",
                "Roles for which Presence is Broadcasted", c->presence_broadcast);
    roles_field(st, x, "muc#roomconfig_getmemberlist",
                "Roles and Affiliations that May Retrieve Member List", c->get_member_list);
    bool_field(st, x, "muc#roomconfig_enablelogging", "Enable Public Logging?", c->logging);
    bool_field(st, x, "muc#roomconfig_enablearchiving", "Archive Messages (XEP-0313)?",
               c->archiving);
    snprintf(n, sizeof n, "%lld", (long long)c->history_length);
    text_field(st, x, "muc#maxhistoryfetch", "Maximum Number of History Messages Returned by Room",
               n, "text-single");
    jids_field(st, x, "muc#roomconfig_roomadmins", "Room Admins", admins, nadmins);
    jids_field(st, x, "muc#roomconfig_roomowners", "Room Owners", owners, nowners);
}

/* ---- reading a submitted form ---- */

void muc_form_jids_clear(muc_form_jids_t *j)
{
    for (size_t i = 0; i < j->nowners; i++)
        core_free(j->owners[i]);
    for (size_t i = 0; i < j->nadmins; i++)
        core_free(j->admins[i]);
    core_free(j->owners);
    core_free(j->admins);
    memset(j, 0, sizeof(*j));
}

/* The first <value/> of a field, or NULL. */
static const char *first_value(const xml_node_t *f, size_t *len)
{
    const xml_node_t *v = xml_node_child(f, MUC_NS_DATA, "value");
    if (v == NULL) {
        *len = 0;
        return NULL;
    }
    return xml_node_text(v, len);
}

/* XEP-0004 §3.3 boolean: 0, 1, false, true. */
static int parse_bool(const xml_node_t *f, bool *out)
{
    size_t len;
    const char *v = first_value(f, &len);
    if (v != NULL && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0))
        *out = true;
    else if (v != NULL && (strcmp(v, "0") == 0 || strcmp(v, "false") == 0))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

static int parse_text(const xml_node_t *f, char **out)
{
    size_t len;
    const char *v = first_value(f, &len);
    if (v == NULL)
        v = "";
    if (len > TEXT_MAX)
        return -EPERM;
    core_free(*out);
    *out = core_strndup(v, len);
    return 0;
}

static int parse_int(const xml_node_t *f, int64_t min, int64_t max, const char *none, int64_t *out)
{
    size_t len;
    const char *v = first_value(f, &len);
    if (v == NULL)
        return -EINVAL;
    if (none != NULL && strcmp(v, none) == 0) {
        *out = max;
        return 0;
    }
    char *end;
    long long x = strtoll(v, &end, 10);
    if (len == 0 || *end != '\0' || v[0] == '+' || v[0] == ' ')
        return -EINVAL;
    if (x < min || x > max)
        return -EPERM;
    *out = x;
    return 0;
}

static int parse_choice(const xml_node_t *f, const char *const *choices, size_t n, int *out)
{
    size_t len;
    const char *v = first_value(f, &len);
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_roles(const xml_node_t *f, unsigned *out)
{
    unsigned set = 0;
    for (const xml_node_t *v = xml_node_first_element(f); v != NULL; v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MUC_NS_DATA, "value"))
            continue;
        size_t len;
        const char *t = xml_node_text(v, &len);
        bool found = strcmp(t, "none") == 0; /* some clients write "none" for no role */
        for (size_t k = 0; k < 3; k++) {
            if (strcmp(t, role_vals[k]) == 0) {
                set |= MUC_ROLE_BIT(role_of[k]);
                found = true;
            }
        }
        if (!found)
            return -EINVAL;
    }
    *out = set;
    return 0;
}

static int parse_jids(const xml_node_t *f, jid_cache_t *cache, char ***out, size_t *n)
{
    size_t count = 0;
    for (const xml_node_t *v = xml_node_first_element(f); v != NULL; v = xml_node_next_element(v))
        count += xml_node_is(v, MUC_NS_DATA, "value");
    if (count > 1000)
        return -EPERM;
    char **list = core_calloc(count + 1, sizeof(char *));
    size_t k = 0;
    for (const xml_node_t *v = xml_node_first_element(f); v != NULL; v = xml_node_next_element(v)) {
        if (!xml_node_is(v, MUC_NS_DATA, "value"))
            continue;
        size_t len;
        const char *t = xml_node_text(v, &len);
        jid_t j;
        if (len == 0)
            continue;
        if (jid_parse(cache, t, len, &j) < 0 || jid_has_resource(&j)) {
            if (j.full != NULL)
                jid_clear(&j);
            for (size_t i = 0; i < k; i++)
                core_free(list[i]);
            core_free(list);
            return -EINVAL;
        }
        list[k++] = core_strndup(j.full, j.bare_len);
        jid_clear(&j);
    }
    *out = list;
    *n = k;
    return 0;
}

/* One field into c (or jids). Returns 0, -EINVAL (malformed), -EPERM (refused). */
static int apply_field(muc_room_config_t *c, const xml_node_t *f, const char *var,
                       const muc_config_t *mc, jid_cache_t *cache, muc_form_jids_t *jids)
{
    int i = 0;
    int rc = 0;
    if (strcmp(var, "muc#roomconfig_roomname") == 0)
        return parse_text(f, &c->name);
    if (strcmp(var, "muc#roomconfig_roomdesc") == 0)
        return parse_text(f, &c->desc);
    if (strcmp(var, "muc#roomconfig_lang") == 0)
        return parse_text(f, &c->lang);
    if (strcmp(var, "muc#roomconfig_roomsecret") == 0)
        return parse_text(f, &c->password);
    if (strcmp(var, "muc#roomconfig_persistentroom") == 0)
        return parse_bool(f, &c->persistent);
    if (strcmp(var, "muc#roomconfig_publicroom") == 0)
        return parse_bool(f, &c->public_room);
    if (strcmp(var, "muc#roomconfig_membersonly") == 0)
        return parse_bool(f, &c->members_only);
    if (strcmp(var, "muc#roomconfig_moderatedroom") == 0)
        return parse_bool(f, &c->moderated);
    if (strcmp(var, "muc#roomconfig_passwordprotectedroom") == 0)
        return parse_bool(f, &c->password_protected);
    if (strcmp(var, "muc#roomconfig_changesubject") == 0)
        return parse_bool(f, &c->change_subject);
    if (strcmp(var, "muc#roomconfig_allowinvites") == 0)
        return parse_bool(f, &c->allow_invites);
    if (strcmp(var, "muc#roomconfig_enablelogging") == 0)
        return parse_bool(f, &c->logging);
    /* Registered nowhere (neither XEP-0045 §15.5.3 nor XEP-0313): Prosody's name for it. */
    if (strcmp(var, "muc#roomconfig_enablearchiving") == 0)
        return parse_bool(f, &c->archiving);
    if (strcmp(var, "muc#roomconfig_whois") == 0) {
        static const char *const w[] = {"moderators", "anyone"};
        rc = parse_choice(f, w, 2, &i);
        c->whois = rc == 0 ? (muc_whois_t)i : c->whois;
        return rc;
    }
    if (strcmp(var, "muc#roomconfig_allowpm") == 0) {
        rc = parse_choice(f, pm_vals, 4, &i);
        c->allowpm = rc == 0 ? (muc_allowpm_t)i : c->allowpm;
        return rc;
    }
    if (strcmp(var, "muc#roomconfig_maxusers") == 0)
        return parse_int(f, 1, mc->max_occupants, "none", &c->maxusers);
    if (strcmp(var, "muc#maxhistoryfetch") == 0 || strcmp(var, "muc#roomconfig_historylength") == 0)
        return parse_int(f, 0, mc->history_max, NULL, &c->history_length);
    if (strcmp(var, "muc#roomconfig_presencebroadcast") == 0)
        return parse_roles(f, &c->presence_broadcast);
    if (strcmp(var, "muc#roomconfig_getmemberlist") == 0)
        return parse_roles(f, &c->get_member_list);
    if (jids != NULL && strcmp(var, "muc#roomconfig_roomowners") == 0 && !jids->has_owners) {
        jids->has_owners = true;
        return parse_jids(f, cache, &jids->owners, &jids->nowners);
    }
    if (jids != NULL && strcmp(var, "muc#roomconfig_roomadmins") == 0 && !jids->has_admins) {
        jids->has_admins = true;
        return parse_jids(f, cache, &jids->admins, &jids->nadmins);
    }
    return 0; /* XEP-0004 §3.2: fields the service does not know are ignored */
}

int muc_roomconfig_apply(muc_room_config_t *c, const xml_node_t *x, const muc_config_t *mc,
                         jid_cache_t *cache, muc_form_jids_t *jids, const char **why)
{
    const char *type = xml_node_attr(x, "type");
    *why = NULL;
    if (!xml_node_is(x, MUC_NS_DATA, "x") || type == NULL || strcmp(type, "submit") != 0) {
        *why = "not a submitted form";
        return -EINVAL;
    }
    muc_room_config_t n;
    muc_room_config_copy(&n, c);
    int rc = 0;
    bool archiving_given = false;
    for (const xml_node_t *f = xml_node_first_element(x); f != NULL && rc == 0;
         f = xml_node_next_element(f)) {
        const char *var = xml_node_attr(f, "var");
        if (!xml_node_is(f, MUC_NS_DATA, "field") || var == NULL)
            continue;
        if (strcmp(var, "FORM_TYPE") == 0) {
            size_t len;
            const char *v = first_value(f, &len);
            if (v == NULL || strcmp(v, MUC_NS_ROOMCONFIG) != 0) {
                *why = "FORM_TYPE is not muc#roomconfig";
                rc = -EINVAL;
            }
            continue;
        }
        archiving_given = archiving_given || strcmp(var, "muc#roomconfig_enablearchiving") == 0;
        rc = apply_field(&n, f, var, mc, cache, jids);
        if (rc < 0)
            *why = var;
    }
    /* [muc] room_archiving = public: a form that makes the room public or hidden without
     * saying otherwise takes the archive along (the default follows publicroom). */
    if (!archiving_given && mc->room_archiving == MUC_MAM_PUBLIC && n.public_room != c->public_room)
        n.archiving = n.public_room;
    /* §10.1.3: "the password for a password-protected room is blank" is unacceptable. */
    if (rc == 0 && n.password_protected && n.password[0] == '\0') {
        *why = "a password-protected room needs a password";
        rc = -EPERM;
    }
    if (rc < 0) {
        muc_room_config_clear(&n);
        if (jids != NULL)
            muc_form_jids_clear(jids);
        return rc;
    }
    muc_room_config_clear(c);
    *c = n;
    return 0;
}
