/* SPDX-License-Identifier: MIT */
/* parleyd all --processes: the components as supervised child processes of one command. */
#ifndef PARLEY_MAIN_SUPERVISE_H
#define PARLEY_MAIN_SUPERVISE_H

#include "core/config.h"
#include "core/log.h"

#include <stdbool.h>
#include <uv.h>

/*
 * Runs `parleyd router`, then `sm`, `muc` and `c2s` (those the configuration has) as child
 * processes with the same configuration file, restarts a child that dies with backoff, and
 * stops them in order on SIGINT/SIGTERM. router_addr is where the router listens for
 * components (as a component of this host reaches it). Everything is borrowed. Returns 0 after a
 * clean stop, or a negative errno when the children could not be started (logged).
 */
int supervise_run(const core_cfg_t *cfg, const char *config_path, const char *router_addr,
                  const core_log_t *log);

/*
 * In a child: calls on_eof(arg) once when the supervisor's end of standard input closes (it
 * exited, or was killed), so no child outlives its supervisor. The handle is closed by
 * supervise_watch_close (idempotent).
 */
typedef struct supervise_watch {
    uv_pipe_t pipe;
    void (*on_eof)(void *arg);
    void *arg;
    bool open;
    char scratch[64];
} supervise_watch_t;

int supervise_watch_start(supervise_watch_t *w, uv_loop_t *loop, void (*on_eof)(void *arg),
                          void *arg);
void supervise_watch_close(supervise_watch_t *w);

#endif
