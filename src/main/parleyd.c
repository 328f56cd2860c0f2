/* SPDX-License-Identifier: MIT */
/* parleyd: runs the router and the components, together or one per process. */
#include "auth/storage_source.h"
#include "c2s/c2s.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "link/link.h"
#include "muc/muc.h"
#include "net/net.h"
#include "net/tls.h"
#include "router/router.h"
#include "schema.h"
#include "sm/sm.h"
#include "storage/storage.h"
#include "supervise.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DEFAULT_CONFIG "/etc/parley/parley.conf"
#define SHUTDOWN_GRACE_MS 3000
/* parleyd all: time the muc's goodbyes get to reach clients before the c2s closes them. */
#define MUC_DRAIN_MS 200

/* The process: its loop and what runs in it. */
typedef struct parleyd {
    uv_loop_t loop;
    core_log_t log;
    core_log_t log_router;
    core_log_t log_c2s;
    core_log_t log_sm;
    core_log_t log_muc;
    core_cfg_t cfg;
    net_ctx_t net;
    router_t *router;
    c2s_t *c2s;
    sm_t *sm;
    muc_t *muc;
    storage_t *store;
    auth_source_t *auth;
    link_opener_t opener;
    const char **control; /* the control components' names (the config's strings), owned */
    char router_addr[300]; /* where components of this process find the router (streams) */
    net_tls_ctx_t *link_tls; /* owned: [router] tls = yes, for stream links; else NULL */
    char link_tls_name[256]; /* the name the router's certificate must carry */
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t grace;
    uv_timer_t muc_drain;
    supervise_watch_t supervisor; /* --supervised: stop when the supervisor goes */
    bool supervised;
    bool stopping;
} parleyd_t;

/* The commands: which components a process runs. */
typedef struct command {
    const char *name;
    bool router;
    bool c2s; /* all: only if the configuration has [c2s] */
    bool sm;
    bool muc; /* all: only if the configuration has [muc] */
    const char *help;
} command_t;

static const command_t commands[] = {
    {"all", true, true, true, true, "the router and every configured component in one process"},
    {"router", true, false, false, false,
     "the router alone; components connect to it over XEP-0114"},
    {"c2s", false, true, false, false,
     "client connections ([c2s]), linked to the router over XEP-0114"},
    {"sm", false, false, true, false,
     "the session manager ([sm]), linked to the router over XEP-0114"},
    {"muc", false, false, false, true,
     "multi-user chat ([muc]), linked to the router over XEP-0114"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parleyd [--config FILE] [--check-config] COMMAND\n\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -t, --check-config  check the configuration and exit\n"
            "  -p, --processes     all: run each component as a supervised child process\n"
            "  -h, --help          this text\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

static void on_grace_over(uv_timer_t *t)
{
    parleyd_t *d = t->data;
    core_log(&d->log, CORE_LOG_WARN, 0, "peers did not close in time: closing connections");
    net_ctx_close_all(&d->net);
}

/* Stops everything but the muc, which muc_stop has already told to go. */
static void stop_rest(parleyd_t *d)
{
    if (d->c2s != NULL)
        c2s_stop(d->c2s);
    if (d->sm != NULL)
        sm_stop(d->sm);
    if (d->auth != NULL) {
        auth_source_free(d->auth);
        d->auth = NULL;
    }
    if (d->store != NULL) {
        storage_close(d->store, NULL, NULL);
        d->store = NULL;
    }
    if (d->router != NULL)
        router_stop(d->router);
    uv_timer_start(&d->grace, on_grace_over, SHUTDOWN_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&d->grace);
}

static void on_muc_told(uv_timer_t *t)
{
    stop_rest(t->data);
}

static void stop(parleyd_t *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    core_log(&d->log, CORE_LOG_INFO, 0, "shutting down");
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    supervise_watch_close(&d->supervisor);
    if (d->muc == NULL) {
        stop_rest(d);
        return;
    }
    /*
     * The muc tells its occupants first (status 332). Where the sm and c2s run in this
     * process, their unavailable presences still have to pass through them to the clients,
     * so the rest stops a moment later rather than closing those connections first.
     */
    muc_stop(d->muc);
    if (d->c2s == NULL && d->sm == NULL)
        stop_rest(d);
    else
        uv_timer_start(&d->muc_drain, on_muc_told, MUC_DRAIN_MS, 0);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop(h->data);
}

/* The supervisor (parleyd all --processes) is gone: a child does not outlive it. */
static void on_supervisor_gone(void *arg)
{
    parleyd_t *d = arg;
    core_log(&d->log, CORE_LOG_WARN, 0, "the supervisor is gone: stopping");
    stop(d);
}

/* ---- links: in process to our own router, or over XEP-0114 to the configured one ---- */

static const core_log_t *log_for(parleyd_t *d, const char *name)
{
    const c2s_config_t *cc = core_cfg_get(&d->cfg, "c2s");
    const muc_config_t *mc = core_cfg_get(&d->cfg, "muc");
    if (cc != NULL && cc->name != NULL && strcmp(name, cc->name) == 0)
        return &d->log_c2s;
    if (mc != NULL && mc->name != NULL && strcmp(name, mc->name) == 0)
        return &d->log_muc;
    return &d->log_sm;
}

static link_endpoint_t *open_inproc(void *ctx, const link_options_t *opt,
                                    const link_endpoint_ops_t *ops, void *ud)
{
    parleyd_t *d = ctx;
    return link_inproc_open(&d->loop, router_hub(d->router), opt, ops, ud, log_for(d, opt->name));
}

static link_endpoint_t *open_stream(void *ctx, const link_options_t *opt,
                                    const link_endpoint_ops_t *ops, void *ud)
{
    parleyd_t *d = ctx;
    const router_component_config_t *cc = router_config_component(&d->cfg, opt->name);
    if (cc == NULL || cc->secret == NULL) {
        core_log(log_for(d, opt->name), CORE_LOG_ERROR, 0,
                 "no [component \"%s\"] with a secret: cannot link to the router", opt->name);
        return NULL;
    }
    link_options_t o = *opt;
    o.router_addr = d->router_addr;
    o.secret = cc->secret;
    o.tls = d->link_tls;
    o.tls_name = d->link_tls_name;
    o.handshake_timeout_ms =
        ((const router_config_t *)core_cfg_get(&d->cfg, "router"))->handshake_timeout_ms;
    return link_stream_open(&d->net, &o, ops, ud, log_for(d, opt->name));
}

/*
 * [router] tls = yes: one client context for this process's stream links, built now (the CA
 * file is read at startup, never on the loop), verifying the router's chain and name.
 */
static int link_tls_context(parleyd_t *d)
{
    const router_config_t *rc = core_cfg_get(&d->cfg, "router");
    if (!rc->tls)
        return 0;
    router_config_tls_name(rc, d->link_tls_name, sizeof d->link_tls_name);
    char err[256];
    net_tls_client_opts_t o = {.ca_file = rc->ca_file, .host = d->link_tls_name};
    if (net_tls_ctx_new_client(&o, &d->link_tls, err, sizeof(err)) < 0) {
        core_log(&d->log, CORE_LOG_ERROR, 0, "[router] tls: %s", err);
        return -EINVAL;
    }
    core_log(&d->log, CORE_LOG_INFO, 0, "links to the router use TLS, verifying the name %s",
             d->link_tls_name);
    return 0;
}

/* The router's address as a component of this host reaches it: a wildcard becomes loopback. */
static void router_address(parleyd_t *d)
{
    router_config_address(core_cfg_get(&d->cfg, "router"), d->router_addr, sizeof d->router_addr);
}

static int open_store(parleyd_t *d)
{
    if (d->store != NULL)
        return 0;
    storage_config_t sc;
    storage_settings_apply(core_cfg_get(&d->cfg, "storage"), &sc);
    int rc = storage_open(&d->loop, &sc, &d->store);
    if (rc < 0)
        core_log(&d->log, CORE_LOG_ERROR, 0, "cannot open the store %s: %s", sc.path,
                 strerror(-rc));
    return rc;
}

/* The components that may ask ours for their status ([component] control = yes). */
static void control_names(parleyd_t *d)
{
    const router_component_config_t *cc;
    size_t pos = 0;
    size_t n = 0;
    while ((cc = core_cfg_next(&d->cfg, "component", &pos)) != NULL) {
        if (cc->control) {
            d->control = core_realloc(d->control, (n + 1) * sizeof(char *));
            d->control[n++] = cc->name;
        }
    }
    d->opener.control = d->control;
    d->opener.ncontrol = n;
}

/* Starts the components the command runs; in `all`, those the configuration has. */
static int components_start(parleyd_t *d, const command_t *cmd)
{
    bool all = cmd->router;
    bool run_sm = cmd->sm && (!all || core_cfg_get(&d->cfg, "sm") != NULL);
    bool run_c2s = cmd->c2s && (!all || core_cfg_get(&d->cfg, "c2s") != NULL);
    bool run_muc = cmd->muc && (!all || core_cfg_get(&d->cfg, "muc") != NULL);
    d->opener.ctx = d;
    d->opener.open = all ? open_inproc : open_stream;
    control_names(d);
    router_address(d);
    int rc = 0;
    /* parleyd all links in process: [router] tls concerns only separate components. */
    if (!all && (run_sm || run_c2s || run_muc))
        rc = link_tls_context(d);
    if (rc == 0 && (run_sm || run_c2s || run_muc))
        rc = open_store(d);
    if (rc == 0 && run_sm) {
        rc = sm_new(&d->loop, &d->log_sm, &d->cfg, &d->opener, d->store, &d->sm);
        if (rc == 0)
            rc = sm_start(d->sm);
    }
    if (rc == 0 && run_muc) {
        rc = muc_new(&d->loop, &d->log_muc, &d->cfg, &d->opener, d->store, &d->muc);
        if (rc == 0)
            rc = muc_start(d->muc);
    }
    if (rc == 0 && run_c2s) {
        d->auth = auth_storage_new(d->store);
        rc = c2s_new(&d->net, &d->log_c2s, &d->cfg, &d->opener, d->auth, &d->c2s);
        if (rc == 0)
            rc = c2s_start(d->c2s);
    }
    return rc;
}

static int run(parleyd_t *d, const command_t *cmd)
{
    int err = 0;
    uv_loop_init(&d->loop);
    net_ctx_init(&d->net, &d->loop, &d->log);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_timer_init(&d->loop, &d->grace);
    uv_timer_init(&d->loop, &d->muc_drain);
    d->sigint.data = d;
    d->sigterm.data = d;
    d->grace.data = d;
    d->muc_drain.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);
    if (d->supervised && supervise_watch_start(&d->supervisor, &d->loop, on_supervisor_gone, d) < 0)
        core_log(&d->log, CORE_LOG_WARN, 0, "--supervised: standard input is not a pipe");

    if (cmd->router) {
        err = router_new(&d->net, &d->log_router, &d->cfg, &d->router);
        if (err == 0)
            err = router_start(d->router);
    }
    if (err == 0)
        err = components_start(d, cmd);
    if (err < 0)
        stop(d);
    else
        core_log(&d->log, CORE_LOG_INFO, 0, "parleyd %s started", cmd->name);

    uv_run(&d->loop, UV_RUN_DEFAULT);

    /* Everything that kept the loop alive is closed; close the rest and let it settle. */
    if (!uv_is_closing((uv_handle_t *)&d->grace))
        uv_close((uv_handle_t *)&d->grace, NULL);
    uv_close((uv_handle_t *)&d->muc_drain, NULL);
    net_ctx_close(&d->net);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    c2s_free(d->c2s);
    sm_free(d->sm);
    muc_free(d->muc);
    if (d->router != NULL)
        router_free(d->router);
    net_tls_ctx_free(d->link_tls); /* after the links that used it */
    core_free(d->control);
    int rc = uv_loop_close(&d->loop);
    if (rc != 0) {
        core_log(&d->log, CORE_LOG_ERROR, 0, "handles left open at exit: %s", uv_strerror(rc));
        if (err == 0)
            err = rc;
    }
    core_log(&d->log, CORE_LOG_INFO, 0, "stopped");
    return err;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 't'},
        {"processes", no_argument, NULL, 'p'},    {"supervised", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    /* Before anything touches OpenSSL: its memory is then counted with ours. */
    net_tls_init();
    const char *config_path = DEFAULT_CONFIG;
    bool check_only = false;
    bool processes = false;
    bool supervised = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:tph", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'p':
            processes = true;
            break;
        case 'S':
            supervised = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const command_t *cmd = NULL;
    if (optind < argc) {
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
            if (strcmp(argv[optind], commands[i].name) == 0)
                cmd = &commands[i];
        }
        if (cmd == NULL || optind + 1 != argc) {
            fprintf(stderr, "parleyd: unknown command: %s\n", argv[optind]);
            usage(stderr);
            return 2;
        }
    } else if (!check_only) {
        usage(stderr);
        return 2;
    }
    if (processes && (cmd == NULL || strcmp(cmd->name, "all") != 0)) {
        fprintf(stderr, "parleyd: --processes goes with the command all\n");
        return 2;
    }

    static parleyd_t d; /* one per process, reached only through pointers */
    d.log = (core_log_t){.level = CORE_LOG_INFO,
                         .component = processes ? "supervisor"
                             : cmd              ? cmd->name
                                                : "parleyd"};
    d.log_router = (core_log_t){.level = CORE_LOG_INFO, .component = "router"};
    d.log_c2s = (core_log_t){.level = CORE_LOG_INFO, .component = "c2s"};
    d.log_sm = (core_log_t){.level = CORE_LOG_INFO, .component = "sm"};
    d.log_muc = (core_log_t){.level = CORE_LOG_INFO, .component = "muc"};
    char err[512];
    if (core_cfg_load(&d.cfg, config_path, parley_schema, parley_schema_len, err, sizeof(err)) <
        0) {
        fprintf(stderr, "parleyd: %s\n", err);
        return 1;
    }
    const log_config_t *lc = core_cfg_get(&d.cfg, "log");
    d.log.level = (core_log_level_t)lc->level;
    d.log_router.level = d.log_c2s.level = d.log_sm.level = d.log_muc.level = d.log.level;
    if (check_only) {
        printf("%s: configuration OK\n", config_path);
        core_cfg_free(&d.cfg);
        return 0;
    }
    int rc;
    if (processes) {
        router_address(&d);
        rc = supervise_run(&d.cfg, config_path, d.router_addr, &d.log);
    } else {
        d.supervised = supervised;
        rc = run(&d, cmd);
    }
    core_cfg_free(&d.cfg);
    return rc == 0 ? 0 : 1;
}
