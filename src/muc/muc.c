/* SPDX-License-Identifier: MIT */
/* The muc component: its [muc] keys, its link to the router, and where each stanza goes. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static const char *const create_policies[] = {"everyone", "local", "admins", NULL};
static const char *const whois_names[] = {"moderators", "anyone", NULL};
static const char *const allowpm_names[] = {"anyone", "participants", "moderators", "none", NULL};
/* The order of muc_mam_policy_t. */
static const char *const archiving_names[] = {"public", "always", "never", NULL};
static const char *const registration_names[] = {"open", "approval", "closed", NULL};

static const core_cfg_key_t muc_keys[] = {
    {.name = "name",
     .type = CORE_CFG_STR,
     .offset = offsetof(muc_config_t, name),
     .required = true,
     .help = "the service's domain, e.g. conference.localhost (its link name)"},
    {.name = "create",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(muc_config_t, create),
     .def = "local",
     .choices = create_policies,
     .help = "who may create rooms: everyone, local (users of local_domains) or admins"},
    {.name = "local_domains",
     .type = CORE_CFG_LIST,
     .offset = offsetof(muc_config_t, local_domains),
     .help = "the server's own domains, for create = local; empty: name without its first label"},
    {.name = "admins",
     .type = CORE_CFG_LIST,
     .offset = offsetof(muc_config_t, admins),
     .help = "service admins (bare JIDs): they may always create rooms and own every room"},
    {.name = "max_rooms",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, max_rooms),
     .def = "10000",
     .min = 1,
     .max = 10000000,
     .help = "rooms the service holds at once"},
    {.name = "max_rooms_per_user",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, max_rooms_per_user),
     .def = "100",
     .min = 1,
     .max = 10000000,
     .help = "rooms one user may have created that still exist (admins: no limit)"},
    {.name = "max_occupants",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, max_occupants),
     .def = "1000",
     .min = 1,
     .max = 100000,
     .help = "occupants of one room, whatever its maxusers"},
    {.name = "max_message_size",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(muc_config_t, max_message_size),
     .def = "64K",
     .min = 1024,
     .max = 16 * 1024 * 1024,
     .help = "the largest message (serialised) to a room or occupant; more is policy-violation"},
    {.name = "history_default",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, history_default),
     .def = "20",
     .min = 0,
     .max = MUC_HISTORY_CAP,
     .help = "messages of discussion history a new room keeps and sends on join"},
    {.name = "voice_request_interval",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(muc_config_t, voice_request_interval),
     .def = "5m",
     .min = 0,
     .max = 86400000,
     .help = "the least time between two voice requests of one occupant (0: no limit)"},
    {.name = "registration",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(muc_config_t, registration),
     .def = "open",
     .choices = registration_names,
     .help = "registration requests of non-members: open (at once; members-only rooms refuse), "
             "approval (a room admin approves, XEP-0045 9.9) or closed"},
    {.name = "registration_pending",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, registration_pending),
     .def = "100",
     .min = 1,
     .max = 10000,
     .help =
         "registration requests one room keeps waiting for approval; more: resource-constraint"},
    {.name = "history_max",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, history_max),
     .def = "100",
     .min = 0,
     .max = MUC_HISTORY_CAP,
     .help = "the most history a room owner may set"},
    {.name = "room_public",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(muc_config_t, room_public),
     .def = "yes",
     .help = "new rooms are listed in disco#items"},
    {.name = "room_persistent",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(muc_config_t, room_persistent),
     .def = "no",
     .help = "new rooms stay when the last occupant leaves"},
    {.name = "room_whois",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(muc_config_t, room_whois),
     .def = "moderators",
     .choices = whois_names,
     .help = "who sees real JIDs in new rooms: moderators (semi-anonymous) or anyone"},
    {.name = "room_maxusers",
     .type = CORE_CFG_INT,
     .offset = offsetof(muc_config_t, room_maxusers),
     .def = "200",
     .min = 1,
     .max = 100000,
     .help = "maxusers of new rooms (at most max_occupants)"},
    {.name = "room_changesubject",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(muc_config_t, room_changesubject),
     .def = "no",
     .help = "participants of new rooms may change the subject"},
    {.name = "room_allowpm",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(muc_config_t, room_allowpm),
     .def = "anyone",
     .choices = allowpm_names,
     .help = "who may send private messages in new rooms"},
    {.name = "room_archiving",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(muc_config_t, room_archiving),
     .def = "public",
     .choices = archiving_names,
     .help = "which new rooms keep an XEP-0313 archive: public (public rooms), always or never"},
};

static int muc_cfg_check(void *data, char *err, size_t errlen)
{
    muc_config_t *c = data;
    if (c->history_default > c->history_max) {
        snprintf(err, errlen, "history_default (%lld) is above history_max (%lld)",
                 (long long)c->history_default, (long long)c->history_max);
        return -EINVAL;
    }
    if (c->room_maxusers > c->max_occupants) {
        snprintf(err, errlen, "room_maxusers (%lld) is above max_occupants (%lld)",
                 (long long)c->room_maxusers, (long long)c->max_occupants);
        return -EINVAL;
    }
    for (size_t i = 0; i < c->admins.count; i++) {
        jid_t j;
        const char *a = c->admins.items[i];
        if (jid_parse(NULL, a, strlen(a), &j) < 0) {
            snprintf(err, errlen, "admins: '%s' is not a JID", a);
            return -EINVAL;
        }
        bool bare = !jid_has_resource(&j);
        jid_clear(&j);
        if (!bare) {
            snprintf(err, errlen, "admins: '%s' is not a bare JID", a);
            return -EINVAL;
        }
    }
    return 0;
}

const core_cfg_section_t muc_cfg_section = {
    .name = "muc",
    .optional = true,
    .size = sizeof(muc_config_t),
    .keys = muc_keys,
    .nkeys = sizeof(muc_keys) / sizeof(muc_keys[0]),
    .check = muc_cfg_check,
};

/* ---- helpers ---- */

int64_t muc_now(void)
{
    return (int64_t)time(NULL);
}

void muc_id_new(muc_t *muc, char out[33])
{
    unsigned char rnd[16];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        /* Unique is what matters; unguessable is lost only while OpenSSL fails. */
        uint64_t t = (uint64_t)uv_hrtime(), n = ++muc->seq;
        memcpy(rnd, &t, 8);
        memcpy(rnd + 8, &n, 8);
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}

bool muc_is_admin(const muc_t *muc, const char *bare, size_t len)
{
    for (size_t i = 0; i < muc->nadmins; i++) {
        if (strlen(muc->admins[i]) == len && memcmp(muc->admins[i], bare, len) == 0)
            return true;
    }
    return false;
}

int muc_send(muc_t *muc, xml_stanza_t *st)
{
    int rc = muc->link != NULL ? link_endpoint_send(muc->link, st) : -ENOTCONN;
    if (rc < 0)
        core_log(muc->log, CORE_LOG_DEBUG, 0, "cannot send to %s: %s",
                 xml_stanza_to(st) ? xml_stanza_to(st) : "(none)", strerror(-rc));
    return rc;
}

/*
 * Every fan-out goes through here: each recipient's stanza shares src's children and its
 * serialised content (xml_stanza_readdress), so N recipients cost N start tags, not N copies.
 * src is frozen from then on.
 */
xml_stanza_t *muc_stanza_readdress(xml_stanza_t *src, const char *from, const char *to)
{
    return xml_stanza_readdress(src, from != NULL ? from : xml_stanza_from(src),
                                to != NULL ? to : xml_stanza_to(src));
}

xml_stanza_t *muc_stanza_forward(const xml_stanza_t *src, const char *from, const char *to)
{
    xml_stanza_t *c = xml_stanza_copy(src);
    xml_stanza_set_root_attr(c, "from", from);
    xml_stanza_set_root_attr(c, "to", to);
    return c;
}

void muc_reply_error(muc_t *muc, const xml_stanza_t *st, core_stanza_err_t cond, const char *type,
                     const char *room_jid)
{
    xml_stanza_t *e = xml_stanza_error_reply(st, cond);
    if (e == NULL)
        return;
    xml_node_t *err = NULL;
    for (xml_node_t *n = xml_node_first_element(e->root); n != NULL; n = xml_node_next_element(n)) {
        if (xml_node_is(n, XMLS_NS_CONTENT, "error"))
            err = n;
    }
    if (err != NULL && type != NULL)
        xml_node_set_attr(e, err, NULL, "type", type);
    if (err != NULL && room_jid != NULL)
        xml_node_set_attr(e, err, NULL, "by", room_jid);
    if (xml_stanza_to(e) != NULL)
        muc_send(muc, e);
    xml_stanza_unref(e);
}

/* ---- lifecycle ---- */

static char **prepared_list(const core_cfg_list_t *l, size_t *n, jid_cache_t *cache)
{
    char **v = core_calloc(l->count ? l->count : 1, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; i < l->count; i++) {
        jid_t j;
        if (jid_parse(cache, l->items[i], strlen(l->items[i]), &j) < 0)
            continue; /* checked at load; a domain list entry may still fail here */
        v[k++] = core_strndup(j.full, j.bare_len);
        jid_clear(&j);
    }
    *n = k;
    return v;
}

int muc_new(uv_loop_t *loop, const core_log_t *log, const core_cfg_t *cfg,
            const link_opener_t *opener, storage_t *store, muc_t **out)
{
    const muc_config_t *c = core_cfg_get(cfg, "muc");
    if (c == NULL) {
        core_log(log, CORE_LOG_ERROR, 0, "the configuration has no [muc] section");
        return -EINVAL;
    }
    muc_t *muc = core_calloc(1, sizeof(*muc));
    muc->loop = loop;
    muc->log = log;
    muc->cfg = c;
    muc->opener = opener;
    muc->store = store;
    muc->jids = jid_cache_new(65536);
    muc->mam = muc_mam_new(muc);
    core_map_init(&muc->rooms);
    uv_timer_init(loop, &muc->closer);
    muc->closer.data = muc;
    muc->admins = prepared_list(&c->admins, &muc->nadmins, muc->jids);
    if (c->local_domains.count > 0) {
        muc->local_domains = prepared_list(&c->local_domains, &muc->nlocal, muc->jids);
    } else {
        /* conference.example.org serves the users of example.org */
        const char *dot = strchr(c->name, '.');
        muc->local_domains = core_calloc(1, sizeof(char *));
        if (dot != NULL && dot[1] != '\0') {
            muc->local_domains[0] = core_strdup(dot + 1);
            muc->nlocal = 1;
        }
    }
    *out = muc;
    return 0;
}

/* A stanza from the router: prepare its addresses once, then hand it to who handles it. */
static void on_stanza(void *ud, xml_stanza_t *st)
{
    muc_t *muc = ud;
    xml_stanza_kind_t kind = xml_stanza_kind(st);
    if (kind == XMLS_KIND_OTHER || muc->stopping)
        return;
    const char *f = xml_stanza_from(st);
    const char *t = xml_stanza_to(st);
    jid_t from = {0}, to = {0};
    if (f == NULL || t == NULL || jid_parse(muc->jids, f, strlen(f), &from) < 0) {
        core_log(muc->log, CORE_LOG_INFO, 0, "dropped a stanza without a valid from or to");
        goto out;
    }
    if (jid_parse(muc->jids, t, strlen(t), &to) < 0) {
        muc_reply_error(muc, st, CORE_STANZA_ERR_JID_MALFORMED, NULL, NULL);
        goto out;
    }
    switch (kind) {
    case XMLS_KIND_IQ:
        muc_iq_input(muc, st, &from, &to);
        break;
    case XMLS_KIND_MESSAGE:
        muc_message_input(muc, st, &from, &to);
        break;
    case XMLS_KIND_PRESENCE:
        if (jid_has_node(&to)) {
            muc_occupant_presence(muc, st, &from, &to);
        }
        break;
    default:
        break;
    }
out:
    jid_clear(&from);
    jid_clear(&to);
}

static void on_up(void *ud)
{
    muc_t *muc = ud;
    core_log(muc->log, CORE_LOG_INFO, 0, "serving %s", muc->cfg->name);
}

static void on_down(void *ud)
{
    muc_t *muc = ud;
    core_log(muc->log, CORE_LOG_WARN, 0, "lost the router link");
}

void muc_link_open(muc_t *muc)
{
    static const link_endpoint_ops_t ops = {
        .on_up = on_up,
        .on_stanza = on_stanza,
        .on_down = on_down,
    };
    if (muc->stopping || muc->link != NULL)
        return;
    link_options_t opt = {.name = muc->cfg->name};
    muc->link = muc->opener->open(muc->opener->ctx, &opt, &ops, muc);
    if (muc->link == NULL)
        core_log(muc->log, CORE_LOG_ERROR, 0, "cannot link %s to the router", muc->cfg->name);
}

int muc_start(muc_t *muc)
{
    /* Persistent rooms are read before anyone can reach them: no join finds them missing. */
    if (muc_rooms_load(muc) == 0)
        return 0;
    muc_link_open(muc);
    return muc->link != NULL ? 0 : -ENOTCONN;
}

static void close_link(uv_timer_t *t)
{
    muc_t *muc = t->data;
    if (muc->link != NULL) {
        link_endpoint_close(muc->link);
        muc->link = NULL;
    }
    uv_close((uv_handle_t *)&muc->closer, NULL);
}

typedef struct room_vec {
    muc_room_t **v;
    size_t n;
} room_vec_t;

static void collect_room(void *ud, const char *key, void *v)
{
    room_vec_t *rv = ud;
    rv->v[rv->n++] = v;
}

static room_vec_t rooms_snapshot(muc_t *muc)
{
    room_vec_t rv = {.v = core_calloc(muc->nrooms ? muc->nrooms : 1, sizeof(muc_room_t *))};
    core_map_each(&muc->rooms, collect_room, &rv);
    return rv;
}

typedef struct occ_vec {
    muc_occupant_t **v;
    size_t n;
} occ_vec_t;

static void collect_occ(void *ud, const char *key, void *v)
{
    occ_vec_t *ov = ud;
    ov->v[ov->n++] = v;
}

/* XEP-0045 §9.2: every occupant hears of the shutdown (332); persistent rooms stay. */
static void kick_all(muc_t *muc)
{
    static const int codes[] = {332};
    room_vec_t rv = rooms_snapshot(muc);
    for (size_t i = 0; i < rv.n; i++) {
        muc_room_t *room = rv.v[i];
        occ_vec_t ov = {
            .v = core_calloc(room->noccupants ? room->noccupants : 1, sizeof(muc_occupant_t *))};
        core_map_each(&room->by_nick, collect_occ, &ov);
        bool gone = false;
        for (size_t k = 0; k < ov.n && !gone; k++)
            gone = muc_occupant_remove(ov.v[k], codes, 1, NULL);
        core_free(ov.v);
    }
    core_free(rv.v);
}

void muc_stop(muc_t *muc)
{
    if (muc->stopping)
        return;
    kick_all(muc);
    /* What the rooms said last goes to the store before it closes. */
    muc_mam_stop(muc->mam);
    muc->stopping = true;
    /* The in-process link drops what is queued when it closes: let the loop hand it over. */
    uv_timer_start(&muc->closer, close_link, 50, 0);
}

static void room_free_cb(void *ud, const char *key, void *v)
{
    muc_room_destroy(v);
}

void muc_free(muc_t *muc)
{
    if (muc == NULL)
        return;
    if (muc->link != NULL)
        link_endpoint_close(muc->link);
    room_vec_t rv = rooms_snapshot(muc);
    for (size_t i = 0; i < rv.n; i++)
        room_free_cb(muc, NULL, rv.v[i]);
    core_free(rv.v);
    core_map_free(&muc->rooms);
    for (size_t i = 0; i < muc->nadmins; i++)
        core_free(muc->admins[i]);
    core_free(muc->admins);
    for (size_t i = 0; i < muc->nlocal; i++)
        core_free(muc->local_domains[i]);
    core_free(muc->local_domains);
    jid_cache_free(muc->jids);
    muc_mam_free(muc->mam);
    core_free(muc);
}
