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
    uint64_t auth_delay_ms; /* the first failed authentication's delay ... */
    uint64_t auth_delay_max_ms; /* ... doubled with each failure up to this */
    uint64_t auth_failure_window_ms; /* ... counting the failures of this long */
    int64_t max_connections_per_ip; /* open connections per IPv4 address or IPv6 /64 */
    uint64_t read_rate; /* bytes per second read from one connection ... */
    uint64_t read_burst; /* ... and at once */
    uint64_t max_output_queue; /* output a connection may have unread before it is closed */
    bool registration; /* in-band registration of new accounts (XEP-0077) */
    int64_t registration_per_ip; /* new accounts per source ... */
    uint64_t registration_interval_ms; /* ... in any interval this long */
    uint64_t sm_resume_timeout_ms; /* XEP-0198: how long a dropped session waits */
    int64_t sm_max_unacked; /* stanzas waiting for an acknowledgement ... */
    uint64_t sm_max_unacked_size; /* ... and their bytes */
    uint64_t ping_interval_ms; /* XEP-0199: quiet time before a probe ... */
    uint64_t ping_timeout_ms; /* ... and how long its answer may take */
    int64_t csi_max_held; /* XEP-0352: stanzas held for an inactive client */
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
