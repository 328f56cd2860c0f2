/* SPDX-License-Identifier: MIT */
/* The sm component: its [sm] keys, its link to the router, and what arrives on it. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const archive_defaults[] = {"always", "never", "roster", NULL};

static const core_cfg_key_t sm_keys[] = {
    {.name = "domain",
     .type = CORE_CFG_STR,
     .offset = offsetof(sm_config_t, domain),
     .required = true,
     .help = "the domain whose users this session manager serves"},
    {.name = "name",
     .type = CORE_CFG_STR,
     .offset = offsetof(sm_config_t, name),
     .help = "this sm's own name when several shards serve the domain (listed in bind)"},
    {.name = "offline_max",
     .type = CORE_CFG_INT,
     .offset = offsetof(sm_config_t, offline_max),
     .def = "100",
     .min = 1,
     .max = 100000,
     .help = "messages kept for a user who is offline; more are bounced"},
    {.name = "vcard_max_size",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(sm_config_t, vcard_max_size),
     .def = "128K",
     .min = 1024,
     .max = 16 * 1024 * 1024,
     .help = "the largest vCard (XEP-0054) a user may store; more is <policy-violation/>"},
    {.name = "disable",
     .type = CORE_CFG_LIST,
     .offset = offsetof(sm_config_t, disable),
     .help = "modules switched off, by name (disco stays truthful)"},
    {.name = "archive_default",
     .type = CORE_CFG_ENUM,
     .offset = offsetof(sm_config_t, archive_default),
     .def = "always",
     .choices = archive_defaults,
     .help = "which messages a user's archive keeps until the user sets preferences"},
    {.name = "archive_expiry",
     .type = CORE_CFG_STR,
     .offset = offsetof(sm_config_t, archive_expiry),
     .def = "365d",
     .help = "how long archived messages are kept: a number of days (365d) or forever"},
};

/* archive_expiry: "forever", or 1..36500 days written N or Nd. */
static int sm_cfg_check(void *data, char *err, size_t errlen)
{
    sm_config_t *c = data;
    const char *s = c->archive_expiry;
    if (strcmp(s, "forever") == 0) {
        c->archive_expiry_days = -1;
        return 0;
    }
    char *end;
    long long days = strtoll(s, &end, 10);
    bool number = s[0] >= '0' && s[0] <= '9' && (*end == '\0' || strcmp(end, "d") == 0);
    if (number && days >= 1 && days <= 36500) {
        c->archive_expiry_days = days;
        return 0;
    }
    snprintf(err, errlen, "archive_expiry: '%s' is neither forever nor 1 to 36500 days (365d)", s);
    return -EINVAL;
}

const core_cfg_section_t sm_cfg_section = {
    .name = "sm",
    .optional = true,
    .size = sizeof(sm_config_t),
    .keys = sm_keys,
    .nkeys = sizeof(sm_keys) / sizeof(sm_keys[0]),
    .check = sm_cfg_check,
};

int sm_new(uv_loop_t *loop, const core_log_t *log, const core_cfg_t *cfg,
           const link_opener_t *opener, storage_t *store, sm_t **out)
{
    const sm_config_t *c = core_cfg_get(cfg, "sm");
    if (c == NULL) {
        core_log(log, CORE_LOG_ERROR, 0, "the configuration has no [sm] section");
        return -EINVAL;
    }
    sm_t *sm = core_calloc(1, sizeof(*sm));
    sm->loop = loop;
    sm->log = log;
    sm->cfg = c;
    sm->opener = opener;
    sm->store = store;
    sm->jids = jid_cache_new(65536);
    core_map_init(&sm->users);
    core_map_init(&sm->sessions);
    int rc = sm_modules_init(sm);
    if (rc < 0) {
        sm_free(sm);
        return rc;
    }
    *out = sm;
    return 0;
}

/* A route envelope from a c2s: session control, or a client's stanza. */
static void envelope_input(sm_t *sm, xml_stanza_t *env)
{
    const xml_node_t *r = env->root;
    const char *c2s = xml_node_attr(r, "from");
    const char *sid = xml_node_attr(r, "sid");
    const xml_node_t *child = xml_envelope_child(env);
    if (c2s == NULL || sid == NULL || child == NULL) {
        core_log(sm->log, CORE_LOG_INFO, 0, "dropped a malformed envelope from %s",
                 c2s ? c2s : "(none)");
        return;
    }
    const char *type = xml_node_attr(r, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        /*
         * Our envelope bounced: that c2s is gone, and with it the session. Usually its
         * <unbound/> came first (on_name) and the session is gone already.
         */
        sm_sess_t *sess = sm_session_find(sm, c2s, sid);
        if (sess == NULL)
            sess = sm_session_find(sm, xml_node_attr(r, "to"), sid);
        if (sess != NULL)
            sm_session_lost(sm, sess, true);
        return;
    }
    if (xml_node_is(child, SM_NS_SESSION, "session")) {
        sm_session_control(sm, c2s, sid, child);
        return;
    }
    if (type != NULL && strcmp(type, "undelivered") == 0) {
        /* XEP-0198: a session that ended left it unacknowledged; it came after 'end'. */
        xml_stanza_t *st = xml_envelope_open(env);
        sm_deliver_returned(sm, st, xml_node_attr(r, "stamp"), sid);
        xml_stanza_unref(st);
        return;
    }
    sm_sess_t *sess = sm_session_find(sm, c2s, sid);
    if (sess == NULL || !sess->started) {
        core_log(sm->log, CORE_LOG_DEBUG, 0, "stanza for unknown session %s of %s dropped", sid,
                 c2s);
        return;
    }
    xml_stanza_t *st = xml_envelope_open(env);
    sm_user_t *u = sess->user;
    u->busy++;
    sm_deliver_from_session(sm, sess, st);
    u->busy--;
    xml_stanza_unref(st);
    sm_user_release(sm, u);
}

static void on_stanza(void *ud, xml_stanza_t *st)
{
    sm_t *sm = ud;
    if (xml_node_is(st->root, XMLS_NS_CONTENT, "route"))
        envelope_input(sm, st);
    else
        sm_deliver_input(sm, st);
}

static void on_up(void *ud)
{
    sm_t *sm = ud;
    core_log(sm->log, CORE_LOG_INFO, 0, "serving %s", sm->cfg->domain);
}

/*
 * A name bound or unbound at the router (we watch them all, docs/link-protocol.md): when it
 * is a c2s we have sessions at, that c2s is gone, and so are they, at once rather than when
 * something for them bounces.
 */
static void on_name(void *ud, const char *name, bool bound)
{
    sm_t *sm = ud;
    core_log(sm->log, CORE_LOG_DEBUG, 0, "%s %s at the router", name, bound ? "bound" : "unbound");
    if (!bound)
        sm_session_c2s_gone(sm, name);
}

static void on_shards(void *ud, const char *name, const char *const *members, size_t n)
{
    sm_shard_update(ud, name, members, n);
}

static void on_down(void *ud)
{
    sm_t *sm = ud;
    core_log(sm->log, CORE_LOG_WARN, 0, "lost the router link");
}

int sm_start(sm_t *sm)
{
    static const link_endpoint_ops_t ops = {
        .on_up = on_up,
        .on_stanza = on_stanza,
        .on_down = on_down,
        .on_name = on_name,
        .on_shards = on_shards,
    };
    /*
     * Every name, not each c2s's as its first session starts: a watch sent then could reach
     * the router after that c2s had gone already. Names come and go rarely.
     */
    link_options_t opt = {.name = sm->cfg->domain, .watch_all = true};
    /* A shard binds its own name too: the router tells the shards apart by it. */
    const char *own[] = {sm->cfg->name};
    if (sm->cfg->name != NULL) {
        opt.extra_names = own;
        opt.n_extra = 1;
    }
    sm->link = sm->opener->open(sm->opener->ctx, &opt, &ops, sm);
    return sm->link != NULL ? 0 : -ENOTCONN;
}

void sm_stop(sm_t *sm)
{
    if (sm->stopping)
        return;
    sm->stopping = true;
    sm_session_end_all(sm);
    sm_event_fire(sm, SM_EV_STOP, NULL);
    sm_iq_stop(sm);
    if (sm->link != NULL) {
        link_endpoint_close(sm->link);
        sm->link = NULL;
    }
}

static void user_free_cb(void *ud, const char *key, void *v)
{
    sm_user_free(ud, v);
}

void sm_free(sm_t *sm)
{
    if (sm == NULL)
        return;
    if (sm->link != NULL)
        link_endpoint_close(sm->link);
    sm_iq_stop(sm); /* its callbacks belong to modules */
    core_map_each(&sm->users, user_free_cb, sm);
    core_map_free(&sm->users);
    core_map_free(&sm->sessions);
    sm_modules_fini(sm);
    sm_shard_free(sm);
    jid_cache_free(sm->jids);
    core_free(sm);
}
