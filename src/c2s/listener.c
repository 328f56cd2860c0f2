/* SPDX-License-Identifier: MIT */
/* The c2s component: its [c2s] keys, TLS context, listeners and link to the router. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

static const core_cfg_key_t c2s_keys[] = {
    {.name = "name",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, name),
     .required = true,
     .help = "this c2s instance's link name, e.g. c2s-1.localhost (route envelopes)"},
    {.name = "domain",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, domain),
     .required = true,
     .help = "the domain whose users connect here"},
    {.name = "listen",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, listen),
     .def = "*:5222",
     .help = "address:port for clients with STARTTLS; empty to disable"},
    {.name = "listen_tls",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, listen_tls),
     .def = "*:5223",
     .help = "address:port for clients with direct TLS (XEP-0368); empty to disable"},
    {.name = "certificate",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, certificate),
     .is_path = true,
     .must_exist = true,
     .help = "the TLS certificate chain (PEM)"},
    {.name = "key",
     .type = CORE_CFG_STR,
     .offset = offsetof(c2s_config_t, key),
     .is_path = true,
     .must_exist = true,
     .help = "the TLS private key (PEM, unencrypted)"},
    {.name = "require_tls",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(c2s_config_t, require_tls),
     .def = "yes",
     .help = "clients must use TLS before authenticating"},
    {.name = "max_stanza_size",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(c2s_config_t, max_stanza_size),
     .def = "256K",
     /* RFC 6120 §13.12: a deployed server's limit is never below 10000 bytes. */
     .min = 10000,
     .max = 64 * 1024 * 1024,
     .help = "largest stanza a client may send; more is <policy-violation/>"},
    {.name = "auth_timeout",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, auth_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600 * 1000,
     .help = "time a client has to authenticate and bind"},
    {.name = "max_auth_attempts",
     .type = CORE_CFG_INT,
     .offset = offsetof(c2s_config_t, max_auth_attempts),
     .def = "3",
     .min = 1,
     .max = 100,
     .help = "failed SASL attempts before the stream is closed with <policy-violation/>"},
    {.name = "auth_delay",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, auth_delay_ms),
     .def = "1s",
     .min = 0,
     .max = 60 * 1000,
     .help = "delay of the SASL failure after a first failed authentication (0: none)"},
    {.name = "auth_delay_max",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, auth_delay_max_ms),
     .def = "15s",
     .min = 0,
     .max = 600 * 1000,
     .help = "the delay doubles with each failure of an account or a source up to this"},
    {.name = "auth_failure_window",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, auth_failure_window_ms),
     .def = "10m",
     .min = 1000,
     .max = 24 * 3600 * 1000LL,
     .help = "how long a failed authentication counts towards the delay"},
    {.name = "max_connections_per_ip",
     .type = CORE_CFG_INT,
     .offset = offsetof(c2s_config_t, max_connections_per_ip),
     .def = "100",
     .min = 1,
     .max = 1000000,
     .help = "open client connections from one IPv4 address or IPv6 /64"},
    {.name = "read_rate",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(c2s_config_t, read_rate),
     .def = "256K",
     .min = 1024,
     .max = 1024 * 1024 * 1024,
     .help = "bytes per second read from one client connection (more waits)"},
    {.name = "read_burst",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(c2s_config_t, read_burst),
     .def = "512K",
     .min = 1024,
     .max = 1024 * 1024 * 1024,
     .help = "bytes read from one client connection at once, beyond its read_rate"},
    {.name = "max_output_queue",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(c2s_config_t, max_output_queue),
     .def = "4M",
     .min = 16 * 1024,
     .max = 1024 * 1024 * 1024,
     .help = "output a client may leave unread; more closes it with <policy-violation/>"},
    {.name = "registration",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(c2s_config_t, registration),
     .def = "no",
     .help = "in-band registration of new accounts (XEP-0077), over TLS only"},
    {.name = "registration_per_ip",
     .type = CORE_CFG_INT,
     .offset = offsetof(c2s_config_t, registration_per_ip),
     .def = "3",
     .min = 1,
     .max = 100,
     .help = "new accounts one IPv4 address or IPv6 /64 may register per registration_interval"},
    {.name = "registration_interval",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, registration_interval_ms),
     .def = "10m",
     .min = 1000,
     .max = 7 * 24 * 3600 * 1000LL,
     .help = "the window of the registration rate limit"},
    {.name = "sm_resume_timeout",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, sm_resume_timeout_ms),
     .def = "300s",
     .min = 100,
     .max = 24 * 3600 * 1000LL,
     .help = "how long a dropped session with XEP-0198 resumption waits to be resumed"},
    {.name = "sm_max_unacked",
     .type = CORE_CFG_INT,
     .offset = offsetof(c2s_config_t, sm_max_unacked),
     .def = "1000",
     .min = 1,
     .max = 100000,
     .help = "stanzas sent to a client that may wait for its XEP-0198 acknowledgement"},
    {.name = "sm_max_unacked_size",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(c2s_config_t, sm_max_unacked_size),
     .def = "2M",
     .min = 1024,
     .max = 256 * 1024 * 1024,
     .help = "bytes of those stanzas; more ends the session"},
    {.name = "ping_interval",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, ping_interval_ms),
     .def = "120s",
     .min = 100,
     .max = 3600 * 1000,
     .help = "quiet time after which a bound client is probed (XEP-0199 ping, or <r/>)"},
    {.name = "ping_timeout",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(c2s_config_t, ping_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 600 * 1000,
     .help = "time a probed client has to answer before its connection is closed"},
    {.name = "csi_max_held",
     .type = CORE_CFG_INT,
     .offset = offsetof(c2s_config_t, csi_max_held),
     .def = "100",
     .min = 1,
     .max = 10000,
     .help = "stanzas held for an inactive client (XEP-0352) before they are all sent"},
};

static int c2s_check(void *data, char *err, size_t errlen)
{
    c2s_config_t *c = data;
    if ((c->certificate == NULL) != (c->key == NULL)) {
        snprintf(err, errlen, "[c2s] needs both certificate and key, or neither");
        return -EINVAL;
    }
    if (c->certificate == NULL && (c->require_tls || (c->listen_tls && c->listen_tls[0]))) {
        snprintf(err, errlen, "[c2s] require_tls and listen_tls need a certificate and key");
        return -EINVAL;
    }
    /* XEP-0077 §11: registration sends a password, so it is offered over TLS only. */
    if (c->registration && c->certificate == NULL) {
        snprintf(err, errlen, "[c2s] registration needs a certificate and key (TLS only)");
        return -EINVAL;
    }
    if (c->auth_delay_max_ms < c->auth_delay_ms) {
        snprintf(err, errlen, "[c2s] auth_delay_max must be at least auth_delay");
        return -EINVAL;
    }
    /* Any stanza the sm may send must fit in the queue, or it would close the client. */
    if (c->max_output_queue < c->max_stanza_size) {
        snprintf(err, errlen, "[c2s] max_output_queue must be at least max_stanza_size");
        return -EINVAL;
    }
    return 0;
}

const core_cfg_section_t c2s_cfg_section = {
    .name = "c2s",
    .optional = true,
    .size = sizeof(c2s_config_t),
    .keys = c2s_keys,
    .nkeys = sizeof(c2s_keys) / sizeof(c2s_keys[0]),
    .check = c2s_check,
};

int c2s_new(net_ctx_t *net, const core_log_t *log, const core_cfg_t *cfg,
            const link_opener_t *opener, auth_source_t *auth, c2s_t **out)
{
    const c2s_config_t *cc = core_cfg_get(cfg, "c2s");
    if (cc == NULL || cc->name == NULL || cc->domain == NULL) {
        core_log(log, CORE_LOG_ERROR, 0, "no [c2s] section with name and domain");
        return -EINVAL;
    }
    c2s_t *c2s = core_calloc(1, sizeof(*c2s));
    c2s->net = net;
    c2s->log = log;
    c2s->cfg = cc;
    c2s->opener = opener;
    c2s->auth = auth;
    c2s->limits = xml_limits_default;
    c2s->limits.max_stanza_bytes = cc->max_stanza_size;
    if (cc->certificate != NULL) {
        char err[256];
        net_tls_server_opts_t o = {.cert_file = cc->certificate, .key_file = cc->key};
        int rc = net_tls_ctx_new_server(&o, &c2s->tls, err, sizeof(err));
        if (rc < 0) {
            core_log(log, CORE_LOG_ERROR, 0, "c2s TLS: %s", err);
            core_free(c2s);
            return -EINVAL;
        }
    }
    c2s->jids = jid_cache_new(4096);
    core_map_init(&c2s->by_sid);
    core_map_init(&c2s->sm_records);
    /* One timer each for every session and connection; neither keeps the loop alive. */
    uv_timer_init(net->loop, &c2s->sm_timer);
    uv_timer_init(net->loop, &c2s->ping_timer);
    uv_unref((uv_handle_t *)&c2s->sm_timer);
    uv_unref((uv_handle_t *)&c2s->ping_timer);
    if (cc->registration)
        c2s_ratelimit_init(&c2s->reg_limit, (unsigned)cc->registration_per_ip,
                           cc->registration_interval_ms, C2S_REG_SOURCES_MAX);
    c2s_srclimit_init(&c2s->per_source, (unsigned)cc->max_connections_per_ip);
    c2s->read_rate = (net_rate_t){.bytes_per_sec = cc->read_rate, .burst = cc->read_burst};
    c2s_authdelay_init(c2s);
    RAND_bytes(c2s->mock_key, sizeof(c2s->mock_key));
    *out = c2s;
    return 0;
}

static void on_link_up(void *ud)
{
    c2s_t *c2s = ud;
    core_log(c2s->log, CORE_LOG_INFO, 0, "link to the router is up as %s", c2s->cfg->name);
}

static void on_link_down(void *ud)
{
    c2s_t *c2s = ud;
    core_log(c2s->log, CORE_LOG_WARN, 0, "link to the router is down");
    c2s_smgmt_link_down(c2s);
}

static void on_link_stanza(void *ud, xml_stanza_t *st)
{
    if (!c2s_status_input(ud, st))
        c2s_relay_from_link(ud, st);
}

static void on_link_name(void *ud, const char *name, bool bound)
{
    c2s_relay_sm_name(ud, name, bound);
}

static const link_endpoint_ops_t c2s_link_ops = {
    .on_up = on_link_up,
    .on_stanza = on_link_stanza,
    .on_down = on_link_down,
    .on_name = on_link_name,
};

static void on_accept_plain(void *ud, net_conn_t *nc)
{
    c2s_conn_accept(ud, nc, false);
}

static void on_accept_tls(void *ud, net_conn_t *nc)
{
    c2s_conn_accept(ud, nc, true);
}

static int listen_on(c2s_t *c2s, const char *addr, net_accept_fn fn, net_listener_t **out)
{
    if (addr == NULL || addr[0] == '\0')
        return 0;
    int rc = net_listen(c2s->net, addr, fn, c2s, out);
    if (rc < 0)
        core_log(c2s->log, CORE_LOG_ERROR, 0, "c2s cannot listen on %s: %s", addr, uv_strerror(rc));
    return rc;
}

int c2s_start(c2s_t *c2s)
{
    /*
     * Told when our sm goes away (docs/link-protocol.md), not when a client's stanza bounces;
     * every name, since with shards each sm that holds sessions here has its own.
     */
    link_options_t o = {.name = c2s->cfg->name, .watch_all = true};
    c2s->link = c2s->opener->open(c2s->opener->ctx, &o, &c2s_link_ops, c2s);
    if (c2s->link == NULL)
        return -ENOTCONN;
    c2s_keepalive_start(c2s);
    int rc = listen_on(c2s, c2s->cfg->listen, on_accept_plain, &c2s->listener);
    if (rc == 0 && c2s->tls != NULL)
        rc = listen_on(c2s, c2s->cfg->listen_tls, on_accept_tls, &c2s->listener_tls);
    return rc;
}

int c2s_port(const c2s_t *c2s, bool tls)
{
    const net_listener_t *l = tls ? c2s->listener_tls : c2s->listener;
    return l != NULL ? net_listener_port(l) : -1;
}

void c2s_stop(c2s_t *c2s)
{
    c2s->stopping = true;
    if (c2s->listener != NULL)
        net_listener_close(c2s->listener);
    if (c2s->listener_tls != NULL)
        net_listener_close(c2s->listener_tls);
    c2s->listener = c2s->listener_tls = NULL;
    for (c2s_conn_t *c = c2s->conns; c != NULL; c = c->next) {
        if (c->s != NULL)
            stream_error(c->s, CORE_STREAM_ERR_SYSTEM_SHUTDOWN, NULL);
    }
    /* Sessions waiting to be resumed end now; the sm gets what they held. */
    c2s_smgmt_stop(c2s);
    c2s_authdelay_stop(c2s);
    if (!c2s->timers_closed) {
        c2s->timers_closed = true;
        uv_close((uv_handle_t *)&c2s->sm_timer, NULL);
        uv_close((uv_handle_t *)&c2s->ping_timer, NULL);
    }
    /* The link stays until the last client is gone, so that the sm hears every end. */
    c2s_link_release(c2s);
}

void c2s_link_release(c2s_t *c2s)
{
    if (c2s->stopping && c2s->conns == NULL && c2s->link != NULL) {
        link_endpoint_close(c2s->link);
        c2s->link = NULL;
    }
}

void c2s_free(c2s_t *c2s)
{
    if (c2s == NULL)
        return;
    if (c2s->link != NULL)
        link_endpoint_close(c2s->link);
    net_tls_ctx_free(c2s->tls);
    jid_cache_free(c2s->jids);
    core_map_free(&c2s->by_sid);
    c2s_smgmt_free_all(c2s);
    c2s_ratelimit_free(&c2s->reg_limit);
    c2s_srclimit_free(&c2s->per_source);
    c2s_authdelay_free(c2s);
    OPENSSL_cleanse(c2s->mock_key, sizeof(c2s->mock_key));
    core_free(c2s);
}
