/* SPDX-License-Identifier: MIT */
/* The client connection component: TCP/TLS, SASL, resource binding, relay to the sm. */
#ifndef PARLEY_C2S_H
#define PARLEY_C2S_H

#include "auth/auth.h"
#include "core/config.h"
#include "core/log.h"
#include "link/link.h"
#include "net/net.h"

#include <stdbool.h>
#include <stdint.h>

/* [c2s] */
typedef struct c2s_config {
    char *name; /* this instance's link name, e.g. c2s-1.localhost */
    char *domain; /* the domain whose users connect here */
    char *listen; /* STARTTLS listener; "" disables */
    char *listen_tls; /* direct TLS listener (XEP-0368); "" disables */
    char *certificate;
    char *key;
    bool require_tls;
    uint64_t max_stanza_size;
    uint64_t auth_timeout_ms;
    int64_t max_auth_attempts;
    bool registration; /* in-band registration of new accounts (XEP-0077) */
    int64_t registration_per_ip; /* new accounts per source ... */
    uint64_t registration_interval_ms; /* ... in any interval this long */
} c2s_config_t;

extern const core_cfg_section_t c2s_cfg_section;

typedef struct c2s c2s_t;

/*
 * Builds a c2s from cfg's [c2s] section (borrowed; must outlive the c2s), loading its TLS
 * certificate now. net, log, opener and auth are borrowed and must outlive the c2s. Returns
 * 0 and *out, -EINVAL (no [c2s] section, or a certificate problem: logged) or another error.
 */
int c2s_new(net_ctx_t *net, const core_log_t *log, const core_cfg_t *cfg,
            const link_opener_t *opener, auth_source_t *auth, c2s_t **out);

/* Opens the link to the router and starts listening. Returns 0 or a negative error (logged). */
int c2s_start(c2s_t *c2s);

/* The port of the STARTTLS (tls false) or direct TLS listener, or -1 (for port 0 in tests). */
int c2s_port(const c2s_t *c2s, bool tls);

/* Stops listening, closes every client with <system-shutdown/> and closes the link. */
void c2s_stop(c2s_t *c2s);

/* Frees the c2s; call after c2s_stop once the loop has run the closes. */
void c2s_free(c2s_t *c2s);

#endif
