/* SPDX-License-Identifier: MIT */
/* The router's configuration keys: [router] and [component "domain"]. */
#include "router/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const core_cfg_key_t router_keys[] = {
    {.name = "listen",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_config_t, listen),
     .def = "127.0.0.1:5347",
     .help = "address:port where components connect (XEP-0114); loopback by default"},
    {.name = "max_stanza_size",
     .type = CORE_CFG_SIZE,
     .offset = offsetof(router_config_t, max_stanza_size),
     .def = "1M",
     .min = 1024,
     .max = 64 * 1024 * 1024,
     .help = "largest top-level element a component may send; more is <policy-violation/>"},
    {.name = "handshake_timeout",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(router_config_t, handshake_timeout_ms),
     .def = "10s",
     .min = 100,
     .max = 3600 * 1000,
     .help = "time a component has to complete the handshake"},
    {.name = "stall_timeout",
     .type = CORE_CFG_MSEC,
     .offset = offsetof(router_config_t, stall_timeout_ms),
     .def = "30s",
     .min = 100,
     .max = 3600 * 1000,
     .help = "a component that leaves more than 1 MiB unread this long is disconnected"},
    {.name = "certificate",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_config_t, certificate),
     .is_path = true,
     .must_exist = true,
     .help = "router: TLS certificate chain (PEM); the component port then speaks direct TLS"},
    {.name = "key",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_config_t, key),
     .is_path = true,
     .must_exist = true,
     .help = "router: the certificate's private key (PEM, unencrypted)"},
    {.name = "tls",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(router_config_t, tls),
     .def = "no",
     .help = "component: link to the router over direct TLS, verifying its certificate"},
    {.name = "ca_file",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_config_t, ca_file),
     .is_path = true,
     .must_exist = true,
     .help = "component: trust anchors (PEM) for the router's certificate; default the system's"},
    {.name = "server_name",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_config_t, server_name),
     .help = "component: the name the router's certificate must carry; default the listen host"},
};

static int router_check(void *data, char *err, size_t errlen)
{
    router_config_t *rc = data;
    if ((rc->certificate == NULL) != (rc->key == NULL)) {
        snprintf(err, errlen, "[router] needs both certificate and key, or neither");
        return -EINVAL;
    }
    if (rc->server_name != NULL && rc->server_name[0] == '\0') {
        snprintf(err, errlen, "[router] server_name is empty");
        return -EINVAL;
    }
    return 0;
}

const core_cfg_section_t router_cfg_section = {
    .name = "router",
    .size = sizeof(router_config_t),
    .keys = router_keys,
    .nkeys = sizeof(router_keys) / sizeof(router_keys[0]),
    .check = router_check,
};

const router_component_config_t *router_config_component(const core_cfg_t *cfg, const char *name)
{
    size_t pos = 0;
    const router_component_config_t *c;
    while ((c = core_cfg_next(cfg, "component", &pos)) != NULL) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

void router_config_address(const router_config_t *rc, char *out, size_t cap)
{
    const char *listen = rc->listen;
    const char *colon = strrchr(listen, ':');
    const char *port = colon != NULL ? colon + 1 : listen;
    size_t hlen = colon != NULL ? (size_t)(colon - listen) : 0;
    if (hlen == 0 || (hlen == 1 && listen[0] == '*') || strncmp(listen, "0.0.0.0", hlen) == 0)
        snprintf(out, cap, "127.0.0.1:%s", port);
    else if (strncmp(listen, "[::]", hlen) == 0)
        snprintf(out, cap, "[::1]:%s", port);
    else
        snprintf(out, cap, "%s", listen);
}

void router_config_tls_name(const router_config_t *rc, char *out, size_t cap)
{
    if (rc->server_name != NULL) {
        snprintf(out, cap, "%s", rc->server_name);
        return;
    }
    char addr[300];
    router_config_address(rc, addr, sizeof addr);
    const char *colon = strrchr(addr, ':');
    size_t hlen = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
    const char *host = addr;
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    snprintf(out, cap, "%.*s", (int)hlen, host);
}

static int component_check(void *data, char *err, size_t errlen)
{
    router_component_config_t *c = data;
    if ((c->secret == NULL) == (c->secret_file == NULL)) {
        snprintf(err, errlen, "[component \"%s\"] needs exactly one of secret, secret_file",
                 c->name);
        return -EINVAL;
    }
    if (c->secret_file != NULL) {
        int rc = core_cfg_read_secret(c->secret_file, &c->secret);
        if (rc < 0) {
            snprintf(err, errlen, "secret_file %s: %s", c->secret_file, strerror(-rc));
            return -EINVAL;
        }
    }
    if (c->secret[0] == '\0') {
        snprintf(err, errlen, "[component \"%s\"]: the secret is empty", c->name);
        return -EINVAL;
    }
    return 0;
}

static const core_cfg_key_t component_keys[] = {
    {.name = "secret",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_component_config_t, secret),
     .help = "the shared secret of the XEP-0114 handshake"},
    {.name = "secret_file",
     .type = CORE_CFG_STR,
     .offset = offsetof(router_component_config_t, secret_file),
     .is_path = true,
     .must_exist = true,
     .help = "a file holding the secret (instead of secret)"},
    {.name = "bind",
     .type = CORE_CFG_LIST,
     .offset = offsetof(router_component_config_t, bind),
     .help = "more names this component may bind (Parley's link extension)"},
    {.name = "default_route",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(router_component_config_t, default_route),
     .def = "no",
     .help = "the component may claim the default route (s2s)"},
    {.name = "control",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(router_component_config_t, control),
     .def = "no",
     .help = "the component may ask the router and the components for their status (parleyctl)"},
    {.name = "shared",
     .type = CORE_CFG_BOOL,
     .offset = offsetof(router_component_config_t, shared),
     .def = "no",
     .help = "several sm shards bind this name at once; each user goes to one by a hash"},
};

const core_cfg_section_t router_component_cfg_section = {
    .name = "component",
    .labelled = true,
    .size = sizeof(router_component_config_t),
    .label_offset = offsetof(router_component_config_t, name),
    .keys = component_keys,
    .nkeys = sizeof(component_keys) / sizeof(component_keys[0]),
    .check = component_check,
};
