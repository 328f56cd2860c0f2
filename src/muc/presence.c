/* SPDX-License-Identifier: MIT */
/* Occupant presence as the room reflects it: muc#user items, status codes, and who sees what. */
#include "muc/internal.h"

#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CODES_MAX 16

bool muc_presence_sees_jids(const muc_occupant_t *viewer)
{
    /* §7.2.3 non-anonymous: everyone; §7.2.4 semi-anonymous: moderators only. */
    return viewer->room->cfg.whois == MUC_WHOIS_ANYONE || viewer->role == MUC_ROLE_MODERATOR;
}

static int cmp_int(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static size_t add_codes(int *v, size_t n, const int *codes, size_t ncodes)
{
    for (size_t i = 0; i < ncodes && n < CODES_MAX; i++) {
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || v[k] == codes[i];
        if (!dup)
            v[n++] = codes[i];
    }
    return n;
}

/*
 * One variant of o's presence: with the real JID jid (NULL: none), for o itself (self) or
 * the others; origin: the copy for the session whose stanza this answers (self_id, self
 * codes).
 */
static xml_stanza_t *build(muc_occupant_t *o, const muc_pres_opts_t *opts, const char *jid,
                           bool self, bool origin)
{
    xml_stanza_t *p = xml_stanza_new(XMLS_NS_CONTENT, "presence");
    char *from = muc_occupant_jid(o);
    xml_node_set_attr(p, p->root, NULL, "from", from);
    core_free(from);
    if (opts != NULL && opts->unavailable)
        xml_node_set_attr(p, p->root, NULL, "type", "unavailable");
    if (self && origin && opts != NULL && opts->self_id != NULL)
        xml_node_set_attr(p, p->root, NULL, "id", opts->self_id);
    const xml_stanza_t *shown =
        opts != NULL && opts->presence != NULL ? opts->presence : o->presence;
    if (shown != NULL) {
        for (xml_node_t *c = shown->root->first; c != NULL; c = c->next) {
            if (c->name != NULL)
                xml_node_add_copy(p, p->root, c);
        }
    }
    xml_node_t *x = xml_node_add_element(p, p->root, MUC_NS_USER, "x");
    xml_node_t *item = xml_node_add_element(p, x, MUC_NS_USER, "item");
    muc_affil_t affil = opts != NULL && opts->affil != NULL ? *opts->affil : muc_occupant_affil(o);
    muc_role_t role = opts != NULL && opts->role != NULL ? *opts->role : o->role;
    if (opts != NULL && opts->unavailable && opts->role == NULL)
        role = MUC_ROLE_NONE; /* §7.14: "the 'role' attribute MUST be set to ... none" */
    xml_node_set_attr(p, item, NULL, "affiliation", muc_affil_name(affil));
    xml_node_set_attr(p, item, NULL, "role", muc_role_name(role));
    if (jid != NULL)
        xml_node_set_attr(p, item, NULL, "jid", jid);
    if (opts != NULL && opts->new_nick != NULL)
        xml_node_set_attr(p, item, NULL, "nick", opts->new_nick);
    if (opts != NULL && opts->actor != NULL) {
        xml_node_t *a = xml_node_add_element(p, item, MUC_NS_USER, "actor");
        xml_node_set_attr(p, a, NULL, "nick", opts->actor);
    }
    if (opts != NULL && opts->reason != NULL) {
        xml_node_t *r = xml_node_add_element(p, item, MUC_NS_USER, "reason");
        xml_node_add_text(p, r, opts->reason, strlen(opts->reason));
    }
    int codes[CODES_MAX];
    size_t n = 0;
    if (opts != NULL)
        n = add_codes(codes, n, opts->codes, opts->ncodes);
    if (self) {
        static const int self_code[] = {110};
        n = add_codes(codes, n, self_code, 1);
        if (opts != NULL && origin)
            n = add_codes(codes, n, opts->self_codes, opts->nself_codes);
    }
    qsort(codes, n, sizeof(int), cmp_int);
    for (size_t i = 0; i < n; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", codes[i]);
        xml_node_t *s = xml_node_add_element(p, x, MUC_NS_USER, "status");
        xml_node_set_attr(p, s, NULL, "code", buf);
    }
    return p;
}

static void send_variant(muc_t *muc, xml_stanza_t *v, const char *to)
{
    xml_stanza_t *c = muc_stanza_readdress(v, NULL, to);
    muc_send(muc, c);
    xml_stanza_unref(c);
}

typedef struct bcast {
    muc_occupant_t *o;
    const muc_pres_opts_t *opts;
    xml_stanza_t *variant[2]; /* [with_jid] for the others, built on first use */
    bool others; /* o's role is broadcast */
} bcast_t;

static void bcast_one(void *ud, const char *key, void *v)
{
    bcast_t *b = ud;
    muc_occupant_t *r = v;
    if (r == b->o || !b->others)
        return;
    bool with_jid = muc_presence_sees_jids(r);
    if (b->variant[with_jid] == NULL)
        b->variant[with_jid] = build(b->o, b->opts, with_jid ? b->o->jid.full : NULL, false, false);
    muc_occupant_send(r, b->variant[with_jid]);
}

void muc_presence_self(muc_occupant_t *o, const muc_pres_opts_t *opts)
{
    const char *origin = opts != NULL ? opts->origin : NULL;
    bool sees = muc_presence_sees_jids(o);
    for (size_t i = 0; i < o->nsessions; i++) {
        const jid_t *j = &o->sessions[i].jid;
        bool is_origin = origin == NULL || strcmp(origin, j->full) == 0;
        if (!is_origin && opts != NULL && opts->origin_only)
            continue;
        /* Each session sees its own real JID in its own presence. */
        xml_stanza_t *p = build(o, opts, sees ? j->full : NULL, true, is_origin);
        send_variant(o->room->muc, p, j->full);
        xml_stanza_unref(p);
    }
}

void muc_presence_broadcast(muc_occupant_t *o, const muc_pres_opts_t *opts)
{
    muc_room_t *room = o->room;
    bcast_t b = {
        .o = o,
        .opts = opts,
        .others = (room->cfg.presence_broadcast & MUC_ROLE_BIT(o->role)) != 0,
    };
    core_map_each(&room->by_nick, bcast_one, &b);
    /* The occupant's own copies come last: after a join they end the room roster (§7.2.3). */
    muc_presence_self(o, opts);
    xml_stanza_unref(b.variant[0]);
    xml_stanza_unref(b.variant[1]);
}

void muc_presence_send_to(muc_occupant_t *o, const muc_occupant_t *viewer, const char *to)
{
    if ((o->room->cfg.presence_broadcast & MUC_ROLE_BIT(o->role)) == 0)
        return;
    xml_stanza_t *p =
        build(o, NULL, muc_presence_sees_jids(viewer) ? o->jid.full : NULL, false, false);
    send_variant(o->room->muc, p, to);
    xml_stanza_unref(p);
}
