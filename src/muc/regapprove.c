/* SPDX-License-Identifier: MIT */
/* Registration requests kept for a room admin's approval (XEP-0045 §9.9), as muc#register forms.
 */
#include "muc/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MUC_NS_REGISTER_FORM "http://jabber.org/protocol/muc#register"

/* The muc#register fields besides the nick (§15.5.1), as §9.9's example orders them, with the
 * attribute that stores each. */
static const struct {
    const char *var;
    const char *type;
    const char *label;
    const char *attr;
} reg_fields[MUC_REG_NFIELDS] = {
    [MUC_REG_FIELD_FIRST] = {"muc#register_first", "text-single", "Given Name", "first"},
    [MUC_REG_FIELD_LAST] = {"muc#register_last", "text-single", "Family Name", "last"},
    [MUC_REG_FIELD_URL] = {"muc#register_url", "text-single", "User URL", "url"},
    [MUC_REG_FIELD_EMAIL] = {"muc#register_email", "text-single", "Email Address", "email"},
    [MUC_REG_FIELD_FAQENTRY] = {"muc#register_faqentry", "text-multi", "FAQ Entry", "faqentry"},
};

static void request_free(muc_reg_request_t *req)
{
    core_free(req->jid);
    core_free(req->nick);
    for (size_t i = 0; i < MUC_REG_NFIELDS; i++)
        core_free(req->fields[i]);
    core_free(req);
}

xml_stanza_t *muc_regapprove_form(const muc_room_t *room, const muc_reg_request_t *req)
{
    xml_node_t *x;
    xml_stanza_t *m = muc_form_message(
        room, "Registration request",
        "To approve this registration request, set \"Allow this person to register with the "
        "room?\" and submit the form. To deny it, submit the form with it unset. To skip it, "
        "cancel.",
        &x);
    muc_form_field(m, x, "FORM_TYPE", "hidden", NULL, MUC_NS_REGISTER_FORM);
    /* §9.9's order: first, last, roomnick, url, email, faqentry; only those the user gave. */
    for (size_t i = 0; i < MUC_REG_NFIELDS; i++) {
        if (i == MUC_REG_FIELD_URL)
            muc_form_field(m, x, "muc#register_roomnick", "text-single", "Desired Nickname",
                           req->nick);
        if (req->fields[i] != NULL)
            muc_form_field(m, x, reg_fields[i].var, reg_fields[i].type, reg_fields[i].label,
                           req->fields[i]);
    }
    /* §9.9 lets a service supplement the form: who asks, as §8.6's approval form names the
     * requester, and so which request an answer is about. */
    muc_form_field(m, x, "muc#jid", "jid-single", "User ID", req->jid);
    muc_form_field(m, x, "muc#register_allow", "boolean",
                   "Allow this person to register with the room?", "0");
    return m;
}

typedef struct ask_ctx {
    xml_stanza_t *form;
    const char *bare;
    size_t len;
    bool in_room;
} ask_ctx_t;

static void ask_occupant(void *ud, const char *key, void *v)
{
    ask_ctx_t *c = ud;
    const muc_occupant_t *o = v;
    if (o->jid.bare_len == c->len && memcmp(o->jid.full, c->bare, c->len) == 0) {
        muc_occupant_send(o, c->form);
        c->in_room = true;
    }
}

/* The form to one admin or owner: to its sessions in the room, else to its bare JID (§9.9's
 * example sends it to a full JID; without one in the room the server routes a bare JID). */
static void ask_one(const muc_room_t *room, xml_stanza_t *form, const char *bare)
{
    ask_ctx_t c = {.form = form, .bare = bare, .len = strlen(bare)};
    core_map_each(&room->by_nick, ask_occupant, &c);
    if (!c.in_room) {
        xml_stanza_t *m = muc_stanza_readdress(form, NULL, bare);
        muc_send(room->muc, m);
        xml_stanza_unref(m);
    }
}

typedef struct admins_ctx {
    const muc_room_t *room;
    xml_stanza_t *form;
} admins_ctx_t;

static void ask_affiliated(void *ud, muc_affiliation_t *a)
{
    admins_ctx_t *c = ud;
    if (a->affil >= MUC_AFFIL_ADMIN)
        ask_one(c->room, c->form, a->jid);
}

/* §9.9: "send a <message/> stanza to the room admin(s)": admins and owners of the room, and
 * the service admins, who own every room. */
static void ask_admins(const muc_room_t *room, const muc_reg_request_t *req)
{
    xml_stanza_t *form = muc_regapprove_form(room, req);
    admins_ctx_t c = {.room = room, .form = form};
    muc_room_affil_each(room, ask_affiliated, &c);
    const muc_t *muc = room->muc;
    for (size_t i = 0; i < muc->nadmins; i++) {
        if (core_map_get(&room->affils, muc->admins[i], strlen(muc->admins[i])) == NULL)
            ask_one(room, form, muc->admins[i]);
    }
    xml_stanza_unref(form);
}

/* A request from stored or submitted parts; fields: MUC_REG_NFIELDS values or NULLs. */
static muc_reg_request_t *request_put(muc_room_t *room, const char *bare, const char *nick,
                                      const char *const *fields, const size_t *lens)
{
    size_t len = strlen(bare);
    muc_reg_request_t *req = core_map_get(&room->reg_requests, bare, len);
    if (req == NULL) {
        req = core_calloc(1, sizeof(*req));
        req->jid = core_strndup(bare, len);
        core_map_put(&room->reg_requests, bare, len, req);
        room->nreg_requests++;
    }
    core_free(req->nick);
    req->nick = core_strdup(nick);
    for (size_t i = 0; i < MUC_REG_NFIELDS; i++) {
        core_free(req->fields[i]);
        req->fields[i] = fields[i] != NULL ? core_strndup(fields[i], lens[i]) : NULL;
    }
    room->dirty = true;
    return req;
}

int muc_regapprove_request(muc_room_t *room, const char *bare, const char *nick,
                           const xml_node_t *x)
{
    const char *fields[MUC_REG_NFIELDS];
    size_t lens[MUC_REG_NFIELDS];
    for (size_t i = 0; i < MUC_REG_NFIELDS; i++) {
        /* A text-multi answer keeps its first line: the form shows it, the store keeps it. */
        fields[i] = muc_form_value(x, reg_fields[i].var, &lens[i]);
        if (fields[i] != NULL && (lens[i] > MUC_REG_FIELD_MAX || memchr(fields[i], 0, lens[i])))
            return -EINVAL;
    }
    size_t len = strlen(bare);
    muc_reg_request_t *old = core_map_get(&room->reg_requests, bare, len);
    if (old == NULL && room->nreg_requests >= (size_t)room->muc->cfg->registration_pending)
        return -ENOSPC;
    bool ask = old == NULL || strcmp(old->nick, nick) != 0;
    muc_reg_request_t *req = request_put(room, bare, nick, fields, lens);
    muc_room_save(room);
    core_log(room->muc->log, CORE_LOG_INFO, 0, "%s: %s asks to register as %s", room->jid, bare,
             nick);
    if (ask)
        ask_admins(room, req);
    return 0;
}

void muc_regapprove_forget(muc_room_t *room, const char *bare, size_t len)
{
    muc_reg_request_t *req = core_map_del(&room->reg_requests, bare, len);
    if (req == NULL)
        return;
    request_free(req);
    room->nreg_requests--;
    room->dirty = true;
}

static void free_cb(void *ud, const char *key, void *v)
{
    request_free(v);
}

void muc_regapprove_clear(muc_room_t *room)
{
    core_map_each(&room->reg_requests, free_cb, NULL);
    core_map_free(&room->reg_requests);
    core_map_init(&room->reg_requests);
    room->nreg_requests = 0;
}

/* An admin allowed the request: registered as a direct registration would be, unless the user
 * was banned or the nick was taken meanwhile (the admin then hears <conflict/>). */
static void allow(muc_room_t *room, xml_stanza_t *st, muc_reg_request_t *req)
{
    char *bare = core_strdup(req->jid);
    char *nick = core_strdup(req->nick);
    size_t len = strlen(bare);
    muc_regapprove_forget(room, bare, len);
    char fold[MUC_NICK_FOLD_MAX + 1];
    size_t flen;
    if (muc_room_affil(room, bare, len) == MUC_AFFIL_OUTCAST) {
        muc_room_save(room);
    } else if (muc_nick_fold(nick, strlen(nick), fold, &flen) < 0 ||
               !muc_register_nick_free(room, fold, bare, len)) {
        muc_room_save(room);
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_CONFLICT, NULL, room->jid);
    } else {
        muc_register_apply(room, bare, nick);
    }
    core_free(bare);
    core_free(nick);
}

static void answer(muc_room_t *room, xml_stanza_t *st, const jid_t *from, const xml_node_t *x)
{
    size_t alen, jlen;
    const char *allow_v = muc_form_value(x, "muc#register_allow", &alen);
    const char *jid = muc_form_value(x, "muc#jid", &jlen);
    bool yes = false;
    if (allow_v == NULL || muc_form_bool(allow_v, alen, &yes) < 0 || jid == NULL) {
        muc_reply_error(room->muc, st, CORE_STANZA_ERR_BAD_REQUEST, NULL, room->jid);
        return;
    }
    /* The JID as the room sent it: the key of the request (none: answered already). */
    muc_reg_request_t *req = core_map_get(&room->reg_requests, jid, jlen);
    if (req == NULL)
        return;
    core_log(room->muc->log, CORE_LOG_INFO, 0, "%s: %.*s %s the registration of %s as %s",
             room->jid, (int)from->bare_len, from->full, yes ? "allowed" : "denied", req->jid,
             req->nick);
    if (yes) {
        allow(room, st, req);
    } else {
        muc_regapprove_forget(room, jid, jlen);
        muc_room_save(room);
    }
}

bool muc_regapprove_input(muc_room_t *room, xml_stanza_t *st, const jid_t *from)
{
    const xml_node_t *x = xml_node_child(st->root, MUC_NS_DATA, "x");
    if (x == NULL || !muc_form_is(x, MUC_NS_REGISTER_FORM))
        return false;
    const char *type = xml_node_attr(x, "type");
    /* A cancelled form skips the request: it stays pending (§9.9 "To skip this request"). */
    if (type == NULL || strcmp(type, "submit") != 0)
        return true;
    /* Only the room's admins and owners answer; anyone else's answer changes nothing, and
     * XEP-0045 names no error for it. */
    if (muc_room_affil(room, from->full, from->bare_len) < MUC_AFFIL_ADMIN)
        return true;
    answer(room, st, from, x);
    return true;
}

/* ---- in the room document ---- */

static int cmp_request(const void *a, const void *b)
{
    return strcmp((*(const muc_reg_request_t *const *)a)->jid,
                  (*(const muc_reg_request_t *const *)b)->jid);
}

typedef struct collect_ctx {
    const muc_reg_request_t **v;
    size_t n;
} collect_ctx_t;

static void collect(void *ud, const char *key, void *v)
{
    collect_ctx_t *c = ud;
    c->v[c->n++] = v;
}

void muc_regapprove_encode(const muc_room_t *room, xml_stanza_t *doc, const char *ns)
{
    collect_ctx_t c = {.v = core_calloc(room->nreg_requests + 1, sizeof(c.v[0]))};
    core_map_each(&room->reg_requests, collect, &c);
    qsort(c.v, c.n, sizeof(c.v[0]), cmp_request);
    for (size_t i = 0; i < c.n; i++) {
        xml_node_t *n = xml_node_add_element(doc, doc->root, ns, "request");
        xml_node_set_attr(doc, n, NULL, "jid", c.v[i]->jid);
        xml_node_set_attr(doc, n, NULL, "nick", c.v[i]->nick);
        for (size_t f = 0; f < MUC_REG_NFIELDS; f++) {
            if (c.v[i]->fields[f] != NULL)
                xml_node_set_attr(doc, n, NULL, reg_fields[f].attr, c.v[i]->fields[f]);
        }
    }
    core_free(c.v);
}

int muc_regapprove_decode(muc_room_t *room, const xml_node_t *n)
{
    const char *jid = xml_node_attr(n, "jid");
    const char *nick = xml_node_attr(n, "nick");
    if (jid == NULL || nick == NULL)
        return -EINVAL;
    /* A bound lowered since it was saved, or a membership given meanwhile: skipped. */
    if (room->nreg_requests >= (size_t)room->muc->cfg->registration_pending ||
        muc_room_affil(room, jid, strlen(jid)) != MUC_AFFIL_NONE)
        return 0;
    char *prepared = NULL;
    char fold[MUC_NICK_FOLD_MAX + 1];
    if (muc_register_nick_prep(room->muc, nick, strlen(nick), &prepared, fold) < 0)
        return -EINVAL;
    const char *fields[MUC_REG_NFIELDS];
    size_t lens[MUC_REG_NFIELDS];
    for (size_t i = 0; i < MUC_REG_NFIELDS; i++) {
        fields[i] = xml_node_attr(n, reg_fields[i].attr);
        lens[i] = fields[i] != NULL ? strlen(fields[i]) : 0;
    }
    request_put(room, jid, prepared, fields, lens);
    core_free(prepared);
    return 0;
}
