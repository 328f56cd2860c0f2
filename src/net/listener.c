/* SPDX-License-Identifier: MIT */
/* TCP listeners and address parsing. */
#include "net/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct net_listener {
    uv_tcp_t tcp;
    net_ctx_t *ctx;
    net_accept_fn fn;
    void *ud;
};

int net_addr_parse(const char *addr, struct sockaddr_storage *out)
{
    char host[128];
    const char *colon;
    const char *h;
    size_t hlen;
    memset(out, 0, sizeof(*out));
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -EINVAL;
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -EINVAL;
        h = addr;
        hlen = (size_t)(colon - addr);
    }
    if (hlen >= sizeof(host))
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
        return -EINVAL;
    if (hlen == 0 || strcmp(host, "*") == 0) {
        if (uv_ip6_addr("::", (int)port, (struct sockaddr_in6 *)out) != 0)
            return -EINVAL;
        return 0;
    }
    if (addr[0] == '[')
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out) == 0 ? 0 : -EINVAL;
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) == 0 ? 0 : -EINVAL;
}

static void on_connection(uv_stream_t *server, int status)
{
    net_listener_t *l = server->data;
    if (status < 0) {
        core_log(l->ctx->log, CORE_LOG_WARN, 0, "accept failed: %s", uv_strerror(status));
        return;
    }
    net_conn_t *c = net_conn_alloc(l->ctx);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        c->notified = true;
        net_conn_close(c, false);
        return;
    }
    net_conn_accepted(c);
    l->fn(l->ud, c);
}

int net_listen(net_ctx_t *ctx, const char *addr, net_accept_fn fn, void *ud, net_listener_t **out)
{
    struct sockaddr_storage ss;
    int err = net_addr_parse(addr, &ss);
    if (err < 0)
        return err;
    net_listener_t *l = core_calloc(1, sizeof(*l));
    l->ctx = ctx;
    l->fn = fn;
    l->ud = ud;
    uv_tcp_init(ctx->loop, &l->tcp);
    l->tcp.data = l;
    err = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, 0);
    if (err == 0)
        err = uv_listen((uv_stream_t *)&l->tcp, 511, on_connection);
    if (err < 0) {
        net_listener_close(l);
        return err;
    }
    *out = l;
    return 0;
}

int net_listener_port(const net_listener_t *l)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
}

static void on_listener_closed(uv_handle_t *h)
{
    core_free(h->data);
}

void net_listener_close(net_listener_t *l)
{
    uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
}
