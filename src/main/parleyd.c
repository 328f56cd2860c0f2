/* SPDX-License-Identifier: MIT */
/* parleyd: runs the router and the components, together or one per process. */
#include "core/alloc.h"
#include "core/config.h"
#include "core/log.h"
#include "net/net.h"
#include "net/tls.h"
#include "router/router.h"
#include "schema.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define DEFAULT_CONFIG "/etc/parley/parley.conf"
#define SHUTDOWN_GRACE_MS 3000

/* The process: its loop and what runs in it. */
typedef struct parleyd {
    uv_loop_t loop;
    core_log_t log;
    core_cfg_t cfg;
    net_ctx_t net;
    router_t *router;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_timer_t grace;
    bool stopping;
} parleyd_t;

/* The commands: which components a process runs. */
typedef struct command {
    const char *name;
    bool router;
    const char *help;
} command_t;

static const command_t commands[] = {
    {"all", true, "the router and every in-process component in one process"},
    {"router", true, "the router alone; components connect to it over XEP-0114"},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parleyd [--config FILE] [--check-config] COMMAND\n\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -t, --check-config  check the configuration and exit\n"
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

static void stop(parleyd_t *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    core_log(&d->log, CORE_LOG_INFO, 0, "shutting down");
    if (d->router != NULL)
        router_stop(d->router);
    uv_close((uv_handle_t *)&d->sigint, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_timer_start(&d->grace, on_grace_over, SHUTDOWN_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&d->grace);
}

static void on_signal(uv_signal_t *h, int signum)
{
    stop(h->data);
}

static int run(parleyd_t *d, const command_t *cmd)
{
    int err = 0;
    uv_loop_init(&d->loop);
    net_ctx_init(&d->net, &d->loop, &d->log);
    uv_signal_init(&d->loop, &d->sigint);
    uv_signal_init(&d->loop, &d->sigterm);
    uv_timer_init(&d->loop, &d->grace);
    d->sigint.data = d;
    d->sigterm.data = d;
    d->grace.data = d;
    uv_signal_start(&d->sigint, on_signal, SIGINT);
    uv_signal_start(&d->sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    if (cmd->router) {
        err = router_new(&d->net, &d->log, &d->cfg, &d->router);
        if (err == 0)
            err = router_start(d->router);
    }
    if (err < 0)
        stop(d);
    else
        core_log(&d->log, CORE_LOG_INFO, 0, "parleyd %s started", cmd->name);

    uv_run(&d->loop, UV_RUN_DEFAULT);

    /* Everything that kept the loop alive is closed; close the rest and let it settle. */
    if (!uv_is_closing((uv_handle_t *)&d->grace))
        uv_close((uv_handle_t *)&d->grace, NULL);
    net_ctx_close(&d->net);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    if (d->router != NULL)
        router_free(d->router);
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
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* Before anything touches OpenSSL: its memory is then counted with ours. */
    net_tls_init();
    const char *config_path = DEFAULT_CONFIG;
    bool check_only = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            config_path = optarg;
            break;
        case 't':
            check_only = true;
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

    static parleyd_t d; /* one per process, reached only through pointers */
    d.log = (core_log_t){.level = CORE_LOG_INFO, .component = cmd ? cmd->name : "parleyd"};
    char err[512];
    if (core_cfg_load(&d.cfg, config_path, parley_schema, parley_schema_len, err, sizeof(err)) <
        0) {
        fprintf(stderr, "parleyd: %s\n", err);
        return 1;
    }
    const log_config_t *lc = core_cfg_get(&d.cfg, "log");
    d.log.level = (core_log_level_t)lc->level;
    if (check_only) {
        printf("%s: configuration OK\n", config_path);
        core_cfg_free(&d.cfg);
        return 0;
    }
    int rc = run(&d, cmd);
    core_cfg_free(&d.cfg);
    return rc == 0 ? 0 : 1;
}
