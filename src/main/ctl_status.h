/* SPDX-License-Identifier: MIT */
/* parleyctl status: the router's routes and each component's counts, from a running server. */
#ifndef PARLEY_MAIN_CTL_STATUS_H
#define PARLEY_MAIN_CTL_STATUS_H

#include "core/config.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * Connects to the router of cfg (borrowed) as its first control component (XEP-0114), asks
 * the router for its <status/> and each bound component for its counts, and prints them:
 * a table, or JSON with json. Every wait ends within timeout_ms (the components' answers get
 * their own timeout_ms; a component that does not answer is listed as such). Returns the exit
 * status: 0, or 1 after a message on stderr (no control component, router unreachable,
 * handshake refused, no status from the router).
 */
int ctl_status_run(const core_cfg_t *cfg, uint64_t timeout_ms, bool json);

#endif
