/* SPDX-License-Identifier: MIT */
/* parleyd all --processes: the components as supervised child processes of one command. */
#include "supervise.h"

#include "c2s/c2s.h"
#include "muc/muc.h"
#include "net/net.h"
#include "router/router.h"
#include "sm/sm.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

/* A child that exits before it has run this long on its first start failed to start. */
#define START_OK_MS 2000u
/* Restart backoff: doubles from MIN to MAX; back to MIN after a child has run STABLE_MS. */
#define BACKOFF_MIN_MS 250u
#define BACKOFF_MAX_MS 30000u
#define STABLE_MS 30000u
/* How long the router gets to accept connections before the others start anyway. */
#define ROUTER_WAIT_MS 10000u
#define ROUTER_PROBE_MS 50u
/* As in `parleyd all`: the muc's goodbyes (status 332) pass the c2s before it closes. */
#define MUC_DRAIN_MS 200u
/* Time children get to stop after SIGTERM before SIGKILL. */
#define STOP_GRACE_MS 5000u

enum child_kind { CHILD_ROUTER, CHILD_SM, CHILD_MUC, CHILD_C2S, CHILD_KINDS };

static const char *const child_names[CHILD_KINDS] = {"router", "sm", "muc", "c2s"};

enum stage {
    STAGE_ROUTER, /* the router is starting: the others wait until it accepts */
    STAGE_RUNNING,
    STAGE_STOP_MUC, /* the muc was told to stop; the rest follows after MUC_DRAIN_MS */
    STAGE_STOP_COMPONENTS, /* c2s, sm, muc told; the router goes when they are gone */
    STAGE_STOP_ROUTER,
};

typedef struct supervisor supervisor_t;

typedef struct child {
    supervisor_t *sv;
    enum child_kind kind;
    bool wanted; /* the configuration has it */
    char command[8]; /* its parleyd command */
    uv_process_t proc;
    uv_pipe_t in; /* its standard input: it stops when this closes (supervise_watch) */
    uv_timer_t restart;
    unsigned handles; /* of proc and in, not yet closed: no new spawn before both are */
    bool running;
    bool restarted; /* has been started again after an exit: its start worked once */
    uint64_t started_ms;
    uint64_t backoff_ms;
} child_t;

struct supervisor {
    uv_loop_t loop;
    const core_log_t *log;
    char config_path[PATH_MAX];
    char exe[PATH_MAX];
    struct sockaddr_storage router_addr;
    child_t children[CHILD_KINDS];
    uv_signal_t sigint, sigterm;
    uv_timer_t stage_timer;
    uv_tcp_t probe;
    uv_connect_t probe_req;
    bool probing;
    uint64_t router_wait_start;
    enum stage stage;
    int rc;
};

static void stop(supervisor_t *sv);
static void spawn_rest(supervisor_t *sv);

/* ---- one child ---- */

static void on_child_handle_closed(uv_handle_t *h)
{
    child_t *c = h->data;
    c->handles--;
}

static void close_child_handles(child_t *c)
{
    uv_close((uv_handle_t *)&c->proc, on_child_handle_closed);
    uv_close((uv_handle_t *)&c->in, on_child_handle_closed);
}

static void on_child_exit(uv_process_t *p, int64_t status, int signo);

static int spawn(child_t *c)
{
    supervisor_t *sv = c->sv;
    if (c->handles != 0)
        return -EBUSY; /* the last run's handles are still closing: the caller retries */
    char opt_config[] = "--config", opt_supervised[] = "--supervised";
    char *args[] = {sv->exe, opt_config, sv->config_path, opt_supervised, c->command, NULL};
    uv_pipe_init(&sv->loop, &c->in, 0);
    c->in.data = c;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&c->in},
        {.flags = UV_INHERIT_FD, .data.fd = 1},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t opt = {
        .exit_cb = on_child_exit,
        .file = sv->exe,
        .args = args,
        .stdio = stdio,
        .stdio_count = 3,
    };
    c->proc.data = c;
    int rc = uv_spawn(&sv->loop, &c->proc, &opt);
    c->handles = 2;
    if (rc < 0) {
        core_log(sv->log, CORE_LOG_ERROR, 0, "cannot start parleyd %s: %s", child_names[c->kind],
                 uv_strerror(rc));
        close_child_handles(c);
        return rc;
    }
    c->running = true;
    c->started_ms = uv_now(&sv->loop);
    core_log(sv->log, CORE_LOG_INFO, 0, "started parleyd %s, pid %d", child_names[c->kind],
             c->proc.pid);
    return 0;
}

static void on_restart(uv_timer_t *t)
{
    child_t *c = t->data;
    if (c->sv->stage > STAGE_RUNNING)
        return;
    if (spawn(c) == -EBUSY)
        uv_timer_start(&c->restart, on_restart, 10, 0);
    else if (!c->running)
        uv_timer_start(&c->restart, on_restart, c->backoff_ms, 0);
}

static bool others_running(const supervisor_t *sv)
{
    for (int k = CHILD_SM; k < CHILD_KINDS; k++) {
        if (sv->children[k].running)
            return true;
    }
    return false;
}

static void stop_router(supervisor_t *sv);

/* A child ended: the stop goes on, or it failed to start, or it is restarted later. */
static void on_child_exit(uv_process_t *p, int64_t status, int signo)
{
    child_t *c = p->data;
    supervisor_t *sv = c->sv;
    const char *name = child_names[c->kind];
    uint64_t ran = uv_now(&sv->loop) - c->started_ms;
    c->running = false;
    close_child_handles(c);
    if (sv->stage >= STAGE_STOP_MUC) {
        core_log(sv->log, CORE_LOG_INFO, 0, "parleyd %s stopped", name);
        if (sv->stage == STAGE_STOP_COMPONENTS && !others_running(sv))
            stop_router(sv);
        else if (sv->stage == STAGE_STOP_ROUTER && !sv->children[CHILD_ROUTER].running)
            uv_close((uv_handle_t *)&sv->stage_timer, NULL);
        return;
    }
    char why[64];
    if (signo != 0)
        snprintf(why, sizeof(why), "was killed by signal %d", signo);
    else
        snprintf(why, sizeof(why), "exited with status %lld", (long long)status);
    /* A start error (a port in use, a store it cannot open) is an exit status, not a crash. */
    if (!c->restarted && ran < START_OK_MS && signo == 0) {
        core_log(sv->log, CORE_LOG_ERROR, 0, "parleyd %s %s as it started: stopping", name, why);
        sv->rc = -ECHILD;
        stop(sv);
        return;
    }
    if (ran >= STABLE_MS)
        c->backoff_ms = BACKOFF_MIN_MS;
    core_log(sv->log, CORE_LOG_WARN, 0, "parleyd %s %s; restarting it in %llu ms", name, why,
             (unsigned long long)c->backoff_ms);
    uv_timer_start(&c->restart, on_restart, c->backoff_ms, 0);
    c->restarted = true;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void signal_child(child_t *c, int signo)
{
    if (c->running)
        uv_process_kill(&c->proc, signo);
}

/* ---- starting: the router first, the others once it accepts connections ---- */

static void probe_router(uv_timer_t *t);

static void on_probe_closed(uv_handle_t *h)
{
    supervisor_t *sv = h->data;
    sv->probing = false;
}

static void on_probe(uv_connect_t *req, int status)
{
    supervisor_t *sv = req->data;
    uv_close((uv_handle_t *)&sv->probe, on_probe_closed);
    if (sv->stage != STAGE_ROUTER)
        return;
    if (status == 0 || uv_now(&sv->loop) - sv->router_wait_start >= ROUTER_WAIT_MS)
        spawn_rest(sv);
    else
        uv_timer_start(&sv->stage_timer, probe_router, ROUTER_PROBE_MS, 0);
}

/* Tries a connection to the router's port (closed at once: the router logs nothing). */
static void probe_router(uv_timer_t *t)
{
    supervisor_t *sv = t->data;
    if (sv->stage != STAGE_ROUTER)
        return;
    if (sv->probing) {
        uv_timer_start(&sv->stage_timer, probe_router, ROUTER_PROBE_MS, 0);
        return;
    }
    uv_connect_t *req = &sv->probe_req;
    req->data = sv;
    uv_tcp_init(&sv->loop, &sv->probe);
    sv->probe.data = sv;
    sv->probing = true;
    int rc = uv_tcp_connect(req, &sv->probe, (const struct sockaddr *)&sv->router_addr, on_probe);
    if (rc < 0)
        on_probe(req, rc);
}

static void spawn_rest(supervisor_t *sv)
{
    sv->stage = STAGE_RUNNING;
    for (int k = CHILD_SM; k < CHILD_KINDS; k++) {
        child_t *c = &sv->children[k];
        if (c->wanted && spawn(c) < 0) {
            sv->rc = -ECHILD;
            stop(sv);
            return;
        }
    }
}

/* ---- stopping: the muc, then the c2s and the sm, then the router ---- */

static void on_stage_timer(uv_timer_t *t);

static void stop_router(supervisor_t *sv)
{
    sv->stage = STAGE_STOP_ROUTER;
    child_t *r = &sv->children[CHILD_ROUTER];
    if (!r->running) {
        uv_close((uv_handle_t *)&sv->stage_timer, NULL);
        return;
    }
    signal_child(r, SIGTERM);
    uv_timer_start(&sv->stage_timer, on_stage_timer, STOP_GRACE_MS, 0);
}

static void stop_components(supervisor_t *sv)
{
    sv->stage = STAGE_STOP_COMPONENTS;
    for (int k = CHILD_SM; k < CHILD_KINDS; k++)
        signal_child(&sv->children[k], SIGTERM);
    if (!others_running(sv))
        stop_router(sv);
    else
        uv_timer_start(&sv->stage_timer, on_stage_timer, STOP_GRACE_MS, 0);
}

/* A stage's time is up: the next stage, or SIGKILL (by pid) for who did not stop in time. */
static void on_stage_timer(uv_timer_t *t)
{
    supervisor_t *sv = t->data;
    switch (sv->stage) {
    case STAGE_STOP_MUC:
        stop_components(sv);
        break;
    case STAGE_STOP_COMPONENTS:
        for (int k = CHILD_SM; k < CHILD_KINDS; k++) {
            if (sv->children[k].running)
                core_log(sv->log, CORE_LOG_WARN, 0, "parleyd %s did not stop in time: killed",
                         child_names[k]);
            signal_child(&sv->children[k], SIGKILL);
        }
        break; /* their exits call stop_router */
    case STAGE_STOP_ROUTER:
        core_log(sv->log, CORE_LOG_WARN, 0, "parleyd router did not stop in time: killed");
        signal_child(&sv->children[CHILD_ROUTER], SIGKILL);
        break;
    default:
        break;
    }
}

static void stop(supervisor_t *sv)
{
    if (sv->stage >= STAGE_STOP_MUC)
        return;
    core_log(sv->log, CORE_LOG_INFO, 0, "stopping the children");
    uv_close((uv_handle_t *)&sv->sigint, NULL);
    uv_close((uv_handle_t *)&sv->sigterm, NULL);
    for (int k = 0; k < CHILD_KINDS; k++)
        uv_close((uv_handle_t *)&sv->children[k].restart, NULL);
    uv_timer_stop(&sv->stage_timer);
    sv->stage = STAGE_STOP_MUC;
    child_t *muc = &sv->children[CHILD_MUC];
    if (muc->running && (sv->children[CHILD_C2S].running || sv->children[CHILD_SM].running)) {
        signal_child(muc, SIGTERM);
        uv_timer_start(&sv->stage_timer, on_stage_timer, MUC_DRAIN_MS, 0);
    } else {
        stop_components(sv);
    }
}

static void on_signal(uv_signal_t *h, int signo)
{
    (void)signo;
    stop(h->data);
}

/* ---- the supervisor ---- */

/* Each child links to the router over XEP-0114: it needs the secret of its [component]. */
static int check_secrets(const core_cfg_t *cfg, const core_log_t *log)
{
    const char *names[3] = {NULL, NULL, NULL};
    const c2s_config_t *cc = core_cfg_get(cfg, "c2s");
    const muc_config_t *mc = core_cfg_get(cfg, "muc");
    const sm_config_t *smc = core_cfg_get(cfg, "sm");
    names[0] = smc != NULL ? smc->domain : NULL;
    names[1] = mc != NULL ? mc->name : NULL;
    names[2] = cc != NULL ? cc->name : NULL;
    int rc = 0;
    for (size_t i = 0; i < 3; i++) {
        if (names[i] == NULL)
            continue;
        const router_component_config_t *comp = router_config_component(cfg, names[i]);
        if (comp == NULL || comp->secret == NULL) {
            core_log(log, CORE_LOG_ERROR, 0,
                     "--processes: the configuration needs a [component \"%s\"] with a secret,"
                     " for the process that links to the router as %s",
                     names[i], names[i]);
            rc = -EINVAL;
        }
    }
    return rc;
}

/*
 * The children read the same file as the router: if it speaks TLS on the component port,
 * they must link with TLS, or none of them would ever link.
 */
static int check_link_tls(const core_cfg_t *cfg, const core_log_t *log)
{
    const router_config_t *rc = core_cfg_get(cfg, "router");
    if (rc->certificate == NULL || rc->tls)
        return 0;
    core_log(log, CORE_LOG_ERROR, 0,
             "--processes: [router] has a certificate, so its children need [router] tls = yes"
             " (and a ca_file that trusts it, unless the system store does)");
    return -EINVAL;
}

int supervise_run(const core_cfg_t *cfg, const char *config_path, const char *router_addr,
                  const core_log_t *log)
{
    static supervisor_t sv; /* one per process, reached only through pointers */
    memset(&sv, 0, sizeof(sv));
    sv.log = log;
    snprintf(sv.config_path, sizeof(sv.config_path), "%s", config_path);
    int rc = check_secrets(cfg, log);
    if (rc == 0)
        rc = check_link_tls(cfg, log);
    if (rc < 0)
        return rc;
    size_t len = sizeof(sv.exe);
    rc = uv_exepath(sv.exe, &len);
    if (rc == 0)
        rc = net_addr_parse(router_addr, &sv.router_addr);
    if (rc < 0) {
        core_log(log, CORE_LOG_ERROR, 0, "--processes: cannot find parleyd or the router: %s",
                 strerror(-rc));
        return rc;
    }
    uv_loop_init(&sv.loop);
    const char *sections[CHILD_KINDS] = {"router", "sm", "muc", "c2s"};
    for (int k = 0; k < CHILD_KINDS; k++) {
        child_t *c = &sv.children[k];
        c->sv = &sv;
        c->kind = (enum child_kind)k;
        snprintf(c->command, sizeof(c->command), "%s", child_names[k]);
        c->wanted = k == CHILD_ROUTER || core_cfg_get(cfg, sections[k]) != NULL;
        c->backoff_ms = BACKOFF_MIN_MS;
        uv_timer_init(&sv.loop, &c->restart);
        c->restart.data = c;
    }
    uv_signal_init(&sv.loop, &sv.sigint);
    uv_signal_init(&sv.loop, &sv.sigterm);
    uv_timer_init(&sv.loop, &sv.stage_timer);
    sv.sigint.data = sv.sigterm.data = sv.stage_timer.data = &sv;
    uv_signal_start(&sv.sigint, on_signal, SIGINT);
    uv_signal_start(&sv.sigterm, on_signal, SIGTERM);
    signal(SIGPIPE, SIG_IGN);

    sv.stage = STAGE_ROUTER;
    sv.router_wait_start = uv_now(&sv.loop);
    if (spawn(&sv.children[CHILD_ROUTER]) < 0) {
        sv.rc = -ECHILD;
        stop(&sv);
    } else {
        uv_timer_start(&sv.stage_timer, probe_router, ROUTER_PROBE_MS, 0);
    }
    uv_run(&sv.loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&sv.loop);
    if (rc != 0)
        core_log(log, CORE_LOG_ERROR, 0, "handles left open at exit: %s", uv_strerror(rc));
    core_log(log, CORE_LOG_INFO, 0, "stopped");
    return sv.rc;
}

/* ---- in a child: the supervisor's end of standard input ---- */

static void watch_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    supervise_watch_t *w = h->data;
    *buf = uv_buf_init(w->scratch, sizeof(w->scratch)); /* nothing is ever sent: dropped */
}

static void watch_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    supervise_watch_t *w = s->data;
    if (n >= 0)
        return;
    supervise_watch_close(w);
    w->on_eof(w->arg);
}

int supervise_watch_start(supervise_watch_t *w, uv_loop_t *loop, void (*on_eof)(void *arg),
                          void *arg)
{
    w->on_eof = on_eof;
    w->arg = arg;
    uv_pipe_init(loop, &w->pipe, 0);
    w->pipe.data = w;
    int rc = uv_pipe_open(&w->pipe, 0);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&w->pipe, watch_alloc, watch_read);
    w->open = true;
    if (rc < 0)
        supervise_watch_close(w);
    return rc;
}

void supervise_watch_close(supervise_watch_t *w)
{
    if (!w->open)
        return;
    w->open = false;
    uv_close((uv_handle_t *)&w->pipe, NULL);
}
