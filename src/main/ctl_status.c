/* SPDX-License-Identifier: MIT */
/* parleyctl status: asks the router and each component for their state, as a control component. */
#include "ctl_status.h"

#include "core/alloc.h"
#include "core/buf.h"
#include "link/link.h"
#include "router/router.h"
#include "xml/xml.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define NS_STREAMS "http://etherx.jabber.org/streams"
#define READ_CHUNK 16384

/* One blocking-style conversation with the router, every wait bounded by deadline. */
typedef struct ctl_conn {
    int fd;
    SSL_CTX *tls_ctx; /* [router] tls: the router's certificate is verified (owned) */
    SSL *tls; /* over fd once the TLS handshake is done (owned); NULL: plain TCP */
    xml_parser_t *parser;
    int64_t deadline; /* CLOCK_MONOTONIC, ms */
} ctl_conn_t;

/* A component asked for its counts: the name asked, and the answer once it came. */
typedef struct ctl_query {
    const char *name; /* borrowed from the router's answer */
    char id[24];
    xml_stanza_t *answer; /* owned; NULL: no answer (yet) */
} ctl_query_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for fd to be ready for events until the deadline: 0, -ETIMEDOUT or -errno. */
static int wait_fd(const ctl_conn_t *c, short events)
{
    for (;;) {
        int64_t left = c->deadline - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

/* Splits "host:port" or "[v6]:port" and connects, non-blocking, within the deadline. */
static int conn_open(ctl_conn_t *c, const char *addr)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof host)
        return -EINVAL;
    size_t hlen = (size_t)(colon - addr);
    const char *h = addr;
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
        return -EHOSTUNREACH;
    int err = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a != NULL; a = a->ai_next) {
        c->fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
            continue;
        err = connect(c->fd, a->ai_addr, a->ai_addrlen) == 0 || errno == EINPROGRESS ? 0 : -errno;
        if (err == 0)
            err = wait_fd(c, POLLOUT);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (err == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr != 0)
            err = -soerr;
        if (err == 0)
            break;
        close(c->fd);
        c->fd = -1;
    }
    freeaddrinfo(ai);
    return err;
}

/* What OpenSSL waits for after a call that did not complete: 0 and *events, or -EPROTO. */
static int tls_want(SSL *ssl, int ret, short *events)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *events = POLLIN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *events = POLLOUT;
        return 0;
    default:
        return -EPROTO;
    }
}

/*
 * Direct TLS to the router ([router] tls, docs/link-protocol.md "TLS"), verifying its
 * certificate against ca_file (or the system store) and server_name, as a component does.
 */
static int conn_tls(ctl_conn_t *c, const router_config_t *rc)
{
    char name[256];
    router_config_tls_name(rc, name, sizeof name);
    c->tls_ctx = SSL_CTX_new(TLS_client_method());
    if (c->tls_ctx == NULL)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(c->tls_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->tls_ctx, SSL_VERIFY_PEER, NULL);
    int ok = rc->ca_file != NULL ? SSL_CTX_load_verify_locations(c->tls_ctx, rc->ca_file, NULL)
                                 : SSL_CTX_set_default_verify_paths(c->tls_ctx);
    c->tls = ok == 1 ? SSL_new(c->tls_ctx) : NULL;
    if (c->tls == NULL || SSL_set_fd(c->tls, c->fd) != 1 || SSL_set1_host(c->tls, name) != 1)
        return -EPROTO;
    SSL_set_tlsext_host_name(c->tls, name);
    for (;;) {
        int ret = SSL_connect(c->tls);
        if (ret == 1)
            return 0;
        short events;
        if (tls_want(c->tls, ret, &events) < 0)
            return -EPROTO;
        int err = wait_fd(c, events);
        if (err < 0)
            return err;
    }
}

static int conn_write(ctl_conn_t *c, const char *data, size_t len)
{
    while (len > 0 && c->tls != NULL) {
        int n = SSL_write(c->tls, data, len > INT_MAX ? INT_MAX : (int)len);
        short events;
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (tls_want(c->tls, n, &events) < 0) {
            return -EPIPE;
        } else {
            int err = wait_fd(c, events);
            if (err < 0)
                return err;
        }
    }
    while (len > 0) {
        ssize_t n = send(c->fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            int err = wait_fd(c, POLLOUT);
            if (err < 0)
                return err;
        } else {
            return n < 0 ? -errno : -EPIPE;
        }
    }
    return 0;
}

static int conn_send(ctl_conn_t *c, xml_stanza_t *st)
{
    size_t len;
    const char *bytes = xml_stanza_bytes(st, &len);
    return conn_write(c, bytes, len);
}

/* The next stream event, reading as needed until the deadline: 0, -ETIMEDOUT, -EPIPE, -EPROTO. */
static int conn_next(ctl_conn_t *c, xml_event_t *ev)
{
    char buf[READ_CHUNK];
    for (;;) {
        int rc = xml_parser_next(c->parser, ev);
        if (rc != -EAGAIN)
            return rc;
        short events = POLLIN;
        ssize_t n;
        if (c->tls != NULL && SSL_pending(c->tls) > 0) {
            n = SSL_read(c->tls, buf, sizeof buf);
        } else {
            rc = wait_fd(c, events);
            if (rc < 0)
                return rc;
            n = c->tls != NULL ? SSL_read(c->tls, buf, sizeof buf)
                               : recv(c->fd, buf, sizeof buf, 0);
        }
        if (c->tls != NULL && n <= 0) {
            if (tls_want(c->tls, (int)n, &events) < 0)
                return -EPIPE;
            continue; /* a TLS record not complete yet, or a renegotiation step */
        }
        if (n == 0)
            return -EPIPE;
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (n > 0 && xml_parser_feed(c->parser, buf, (size_t)n) < 0)
            return -EPROTO;
    }
}

/* The next top-level element (a new reference), or an error; a stream end is -EPIPE. */
static int conn_element(ctl_conn_t *c, xml_stanza_t **out)
{
    xml_event_t ev;
    int rc = conn_next(c, &ev);
    if (rc < 0)
        return rc;
    if (ev.kind != XMLS_EV_ELEMENT) {
        xml_stanza_unref(ev.stanza);
        return -EPIPE;
    }
    *out = ev.stanza;
    return 0;
}

/* XEP-0114 §3: the header, the router's stream id, then the handshake digest. */
static int handshake(ctl_conn_t *c, const char *name, const char *secret)
{
    core_buf_t hdr = {0};
    core_buf_append_str(&hdr,
                        "<?xml version='1.0'?><stream:stream xmlns='" XMLS_NS_COMPONENT
                        "' xmlns:stream='" NS_STREAMS "' to='");
    xml_escape(&hdr, name, strlen(name), true);
    core_buf_append_str(&hdr, "'>");
    int rc = conn_write(c, hdr.data, hdr.len);
    core_buf_release(&hdr);
    xml_event_t ev;
    if (rc == 0)
        rc = conn_next(c, &ev);
    if (rc < 0)
        return rc;
    const char *id = ev.kind == XMLS_EV_STREAM_OPEN ? xml_node_attr(ev.stanza->root, "id") : NULL;
    char digest[41];
    if (id != NULL)
        link_handshake_digest(id, secret, digest);
    xml_stanza_unref(ev.stanza);
    if (id == NULL)
        return -EACCES; /* host-unknown: no header with an id */
    xml_stanza_t *hs = xml_stanza_new(XMLS_NS_CONTENT, "handshake");
    xml_node_add_text(hs, hs->root, digest, 40);
    rc = conn_send(c, hs);
    xml_stanza_unref(hs);
    xml_stanza_t *ans = NULL;
    if (rc == 0)
        rc = conn_element(c, &ans);
    if (rc == 0 && !xml_node_is(ans->root, XMLS_NS_CONTENT, "handshake"))
        rc = -EACCES; /* <stream:error><not-authorized/> */
    else if (rc == -EPIPE)
        rc = -EACCES;
    xml_stanza_unref(ans);
    return rc;
}

/* Sends <status/> to the router and waits for its answer (skipping anything else). */
static int router_status(ctl_conn_t *c, xml_stanza_t **out)
{
    xml_stanza_t *q = xml_stanza_new(LINK_NS, "status");
    int rc = conn_send(c, q);
    xml_stanza_unref(q);
    while (rc == 0) {
        xml_stanza_t *st = NULL;
        rc = conn_element(c, &st);
        if (rc == 0 && xml_node_is(st->root, LINK_NS, "status")) {
            *out = st;
            return 0;
        }
        xml_stanza_unref(st);
    }
    return rc;
}

/* The first bound name of every link but ours: whom to ask. */
static size_t queries_make(const xml_stanza_t *rs, const char *self, ctl_query_t **out)
{
    size_t n = 0;
    ctl_query_t *q = NULL;
    for (const xml_node_t *l = xml_node_first_element(rs->root); l != NULL;
         l = xml_node_next_element(l)) {
        const xml_node_t *name = xml_node_child(l, LINK_NS, "name");
        size_t len;
        const char *text = name != NULL ? xml_node_text(name, &len) : NULL;
        if (text == NULL || strcmp(text, self) == 0)
            continue;
        q = core_realloc(q, (n + 1) * sizeof(*q));
        q[n] = (ctl_query_t){.name = text};
        snprintf(q[n].id, sizeof q[n].id, "status-%zu", n);
        n++;
    }
    *out = q;
    return n;
}

/* Asks every component and collects the answers until all came or the deadline passed. */
static void components_ask(ctl_conn_t *c, const char *self, ctl_query_t *q, size_t n)
{
    size_t waiting = 0;
    for (size_t i = 0; i < n; i++) {
        xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
        xml_node_set_attr(iq, iq->root, NULL, "type", "get");
        xml_node_set_attr(iq, iq->root, NULL, "id", q[i].id);
        xml_node_set_attr(iq, iq->root, NULL, "from", self);
        xml_node_set_attr(iq, iq->root, NULL, "to", q[i].name);
        xml_node_add_element(iq, iq->root, LINK_NS_STATUS, "status");
        if (conn_send(c, iq) == 0)
            waiting++;
        xml_stanza_unref(iq);
    }
    while (waiting > 0) {
        xml_stanza_t *st = NULL;
        if (conn_element(c, &st) < 0)
            return;
        const char *id = xml_stanza_id(st);
        for (size_t i = 0; id != NULL && i < n; i++) {
            if (q[i].answer == NULL && strcmp(q[i].id, id) == 0) {
                q[i].answer = xml_stanza_ref(st);
                waiting--;
                break;
            }
        }
        xml_stanza_unref(st);
    }
}

static const char *attr_or(const xml_node_t *n, const char *name, const char *dflt)
{
    const char *v = xml_node_attr(n, name);
    return v != NULL ? v : dflt;
}

/* The KIND column: "stream", "stream+TLS1.3" for a link over TLS, "in-process". */
static const char *link_kind(const xml_node_t *l, char *buf, size_t cap)
{
    const char *tls = xml_node_attr(l, "tls");
    snprintf(buf, cap, "%s%s%s", attr_or(l, "kind", ""), tls != NULL ? "+TLS" : "",
             tls != NULL ? tls : "");
    return buf;
}

/* The error condition of an answer of type error, or NULL. */
static const char *answer_error(const xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    if (type == NULL || strcmp(type, "error") != 0)
        return NULL;
    const xml_node_t *e = xml_node_child(st->root, XMLS_NS_CONTENT, "error");
    const xml_node_t *cond = e != NULL ? xml_node_first_element(e) : NULL;
    return cond != NULL ? cond->name : "error";
}

static void print_text(const char *addr, const xml_stanza_t *rs, const ctl_query_t *q, size_t n)
{
    const xml_node_t *r = rs->root;
    printf("router %s: %s links, %s stanzas routed, %s bounced, %s dropped\n\n", addr,
           attr_or(r, "links", "?"), attr_or(r, "routed", "?"), attr_or(r, "bounced", "?"),
           attr_or(r, "dropped", "?"));
    printf("%-28s %5s %-13s %-22s %-20s %10s %10s\n", "ROUTE", "LINK", "KIND", "PEER", "SINCE",
           "IN", "OUT");
    char kind[32];
    for (const xml_node_t *l = xml_node_first_element(r); l != NULL; l = xml_node_next_element(l)) {
        bool any = false;
        for (const xml_node_t *nm = xml_node_first_element(l); nm != NULL;
             nm = xml_node_next_element(nm)) {
            size_t len;
            const char *text = xml_node_text(nm, &len);
            printf("%-28s %5s %-13s %-22s %-20s %10s %10s\n", text ? text : "",
                   attr_or(l, "id", ""), link_kind(l, kind, sizeof kind), attr_or(l, "peer", "-"),
                   attr_or(l, "since", ""), attr_or(l, "in", ""), attr_or(l, "out", ""));
            any = true;
        }
        const char *dflt = xml_node_attr(l, "default");
        if (dflt != NULL || !any)
            printf("%-28s %5s %-13s %-22s %-20s %10s %10s\n",
                   dflt != NULL ? "(default route)" : "(nothing bound)", attr_or(l, "id", ""),
                   link_kind(l, kind, sizeof kind), attr_or(l, "peer", "-"),
                   attr_or(l, "since", ""), attr_or(l, "in", ""), attr_or(l, "out", ""));
    }
    for (size_t i = 0; i < n; i++) {
        printf("\n%s", q[i].name);
        const char *err = q[i].answer != NULL ? answer_error(q[i].answer) : NULL;
        const xml_node_t *s = q[i].answer != NULL
            ? xml_node_child(q[i].answer->root, LINK_NS_STATUS, "status")
            : NULL;
        if (q[i].answer == NULL || (err == NULL && s == NULL)) {
            printf(": no answer\n");
            continue;
        }
        if (err != NULL) {
            printf(": %s\n", err);
            continue;
        }
        printf("\n");
        for (const xml_node_t *c = xml_node_first_element(s); c != NULL;
             c = xml_node_next_element(c))
            printf("  %-28s %s\n", attr_or(c, "name", "?"), attr_or(c, "value", "?"));
    }
}

/* A JSON string: the names come from the network, so everything is escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* A number attribute as a JSON number (0 when absent or not a number). */
static void json_num(const xml_node_t *n, const char *name)
{
    const char *v = xml_node_attr(n, name);
    char *end = NULL;
    uint64_t x = v != NULL ? strtoull(v, &end, 10) : 0;
    printf("%" PRIu64, end != NULL && *end == '\0' ? x : 0);
}

static void json_link(const xml_node_t *l)
{
    printf("{\"id\": ");
    json_num(l, "id");
    printf(", \"kind\": ");
    json_str(attr_or(l, "kind", ""));
    printf(", \"peer\": ");
    json_str(attr_or(l, "peer", ""));
    printf(", \"tls\": ");
    json_str(attr_or(l, "tls", ""));
    printf(", \"since\": ");
    json_str(attr_or(l, "since", ""));
    printf(", \"in\": ");
    json_num(l, "in");
    printf(", \"out\": ");
    json_num(l, "out");
    printf(", \"default\": %s, \"names\": [", xml_node_attr(l, "default") ? "true" : "false");
    const char *sep = "";
    for (const xml_node_t *nm = xml_node_first_element(l); nm != NULL;
         nm = xml_node_next_element(nm)) {
        size_t len;
        const char *text = xml_node_text(nm, &len);
        printf("%s", sep);
        json_str(text != NULL ? text : "");
        sep = ", ";
    }
    printf("]}");
}

static void print_json(const xml_stanza_t *rs, const ctl_query_t *q, size_t n)
{
    const xml_node_t *r = rs->root;
    printf("{\"router\": {\"links\": ");
    json_num(r, "links");
    printf(", \"routed\": ");
    json_num(r, "routed");
    printf(", \"bounced\": ");
    json_num(r, "bounced");
    printf(", \"dropped\": ");
    json_num(r, "dropped");
    printf("},\n \"links\": [");
    const char *sep = "";
    for (const xml_node_t *l = xml_node_first_element(r); l != NULL; l = xml_node_next_element(l)) {
        printf("%s\n  ", sep);
        json_link(l);
        sep = ",";
    }
    printf("],\n \"components\": {");
    for (size_t i = 0; i < n; i++) {
        printf("%s\n  ", i > 0 ? "," : "");
        json_str(q[i].name);
        const char *err = q[i].answer != NULL ? answer_error(q[i].answer) : NULL;
        const xml_node_t *s = q[i].answer != NULL
            ? xml_node_child(q[i].answer->root, LINK_NS_STATUS, "status")
            : NULL;
        if (err != NULL || s == NULL) {
            printf(": {\"error\": ");
            json_str(err != NULL ? err : "no answer");
            printf("}");
            continue;
        }
        printf(": {");
        const char *csep = "";
        for (const xml_node_t *c = xml_node_first_element(s); c != NULL;
             c = xml_node_next_element(c)) {
            printf("%s", csep);
            json_str(attr_or(c, "name", "?"));
            printf(": ");
            json_num(c, "value");
            csep = ", ";
        }
        printf("}");
    }
    printf("}}\n");
}

/* The first component the configuration lets ask for status, or NULL. */
static const router_component_config_t *control_component(const core_cfg_t *cfg)
{
    size_t pos = 0;
    const router_component_config_t *cc;
    while ((cc = core_cfg_next(cfg, "component", &pos)) != NULL) {
        if (cc->control)
            return cc;
    }
    return NULL;
}

int ctl_status_run(const core_cfg_t *cfg, uint64_t timeout_ms, bool json)
{
    const router_component_config_t *cc = control_component(cfg);
    if (cc == NULL) {
        fprintf(stderr,
                "parleyctl: no [component \"…\"] with control = yes in the configuration: "
                "nothing may ask the router for status\n");
        return 1;
    }
    char addr[300];
    router_config_address(core_cfg_get(cfg, "router"), addr, sizeof addr);
    ctl_conn_t c = {.fd = -1, .parser = xml_parser_new(NULL)};
    c.deadline = now_ms() + (int64_t)timeout_ms;
    xml_stanza_t *rs = NULL;
    ctl_query_t *q = NULL;
    size_t n = 0;
    int status = 1;
    const router_config_t *rcfg = core_cfg_get(cfg, "router");
    int rc = conn_open(&c, addr);
    if (rc < 0) {
        fprintf(stderr, "parleyctl: cannot reach the router at %s: %s\n", addr, strerror(-rc));
        goto out;
    }
    if (rcfg->tls && (rc = conn_tls(&c, rcfg)) < 0) {
        long v = c.tls != NULL ? SSL_get_verify_result(c.tls) : X509_V_OK;
        fprintf(stderr, "parleyctl: TLS with the router at %s failed: %s\n", addr,
                v != X509_V_OK ? X509_verify_cert_error_string(v) : strerror(-rc));
        goto out;
    }
    rc = handshake(&c, cc->name, cc->secret);
    if (rc < 0) {
        if (rc == -EACCES)
            fprintf(stderr,
                    "parleyctl: the router at %s refused the handshake for %s (wrong secret, or "
                    "no such component there)\n",
                    addr, cc->name);
        else
            fprintf(stderr, "parleyctl: handshake with the router at %s failed: %s\n", addr,
                    strerror(-rc));
        goto out;
    }
    rc = router_status(&c, &rs);
    if (rc < 0) {
        fprintf(stderr,
                "parleyctl: the router at %s sent no status (is %s control = yes there?): "
                "%s\n",
                addr, cc->name, strerror(-rc));
        goto out;
    }
    n = queries_make(rs, cc->name, &q);
    c.deadline = now_ms() + (int64_t)timeout_ms; /* the components get the whole timeout */
    components_ask(&c, cc->name, q, n);
    if (json)
        print_json(rs, q, n);
    else
        print_text(addr, rs, q, n);
    conn_write(&c, "</stream:stream>", strlen("</stream:stream>"));
    status = 0;
out:
    for (size_t i = 0; i < n; i++)
        xml_stanza_unref(q[i].answer);
    core_free(q);
    xml_stanza_unref(rs);
    xml_parser_free(c.parser);
    SSL_free(c.tls);
    SSL_CTX_free(c.tls_ctx);
    if (c.fd >= 0)
        close(c.fd);
    return status;
}
