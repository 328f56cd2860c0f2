/* SPDX-License-Identifier: MIT */
/* TLS on net connections: real loopback TCP in one loop, certificates made at test time. */
#include "core/alloc.h"
#include "net/internal.h"
#include "net/tls.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_ENDS 64
#define BIG_LEN (1536u * 1024)
#define ONE_BYTE_WRITES 1000

/* Where the certificates made in main() live for the run. */
static char dir[64];
static char cert_pem[128], key_pem[128]; /* parley.test, P-256, signed with SHA-256 */
static char sni_cert_pem[128], sni_key_pem[128]; /* other.test, P-384, signed with SHA-384 */
static char junk_pem[128]; /* not PEM at all */

/* A fixture shaped like the start of a real stream, with multi-byte UTF-8. */
static const char fixture[] =
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
    "xmlns:stream='http://etherx.jabber.org/streams' to='parley.test' version='1.0'>"
    "<message to='a@parley.test' id='m1'><body>é ✓ 𝄞 &amp; &lt;</body></message>";

/* ---- the world: one loop, one listener, ends that record what they saw ---- */

typedef struct world world_t;

typedef struct end {
    world_t *w;
    net_conn_t *c;
    bool server;
    core_buf_t got; /* plaintext received */
    int ready; /* on_tls_ready calls */
    int closed; /* on_close calls */
    int status; /* of on_close */
    int step; /* the scenario's own progress */
} end_t;

typedef void (*hook_fn)(end_t *e);

struct world {
    uv_loop_t loop;
    core_log_t log;
    FILE *logf;
    char *logbuf;
    size_t loglen;
    net_ctx_t net;
    net_listener_t *l;
    char addr[64];
    net_tls_ctx_t *srv_tls; /* owned */
    net_tls_ctx_t *cli_tls; /* owned */
    bool srv_direct; /* XEP-0368: TLS right after accept */
    bool cli_direct; /* ... and right after connect */
    void *user; /* the scenario's own state */
    const char *cli_host;
    end_t *ends[MAX_ENDS];
    size_t nends;
    end_t *srv; /* the first accepted connection */
    end_t *cli; /* the first client */
    hook_fn on_accept, on_connect, on_read, on_ready;
    uv_timer_t guard;
    bool timed_out;
};

static void end_read(net_conn_t *c, const char *data, size_t len)
{
    end_t *e = c->ud;
    core_buf_append(&e->got, data, len);
    if (e->w->on_read != NULL)
        e->w->on_read(e);
}

static void end_close(net_conn_t *c, int status)
{
    end_t *e = c->ud;
    e->closed++;
    e->status = status;
    e->c = NULL;
}

static void end_ready(net_conn_t *c)
{
    end_t *e = c->ud;
    e->ready++;
    if (e->w->on_ready != NULL)
        e->w->on_ready(e);
}

static void end_connected(net_conn_t *c, int status)
{
    end_t *e = c->ud;
    assert_int_equal(status, 0);
    if (e->w->cli_direct)
        assert_int_equal(net_conn_start_tls_host(c, e->w->cli_tls, e->w->cli_host), 0);
    if (e->w->on_connect != NULL)
        e->w->on_connect(e);
    if (e->c != NULL && !c->closing)
        assert_int_equal(net_conn_read_start(c), 0);
}

static const net_conn_ops_t end_ops = {
    .on_read = end_read,
    .on_close = end_close,
    .on_connect = end_connected,
    .on_tls_ready = end_ready,
};

static end_t *end_new(world_t *w, bool server)
{
    assert_true(w->nends < MAX_ENDS);
    end_t *e = core_calloc(1, sizeof(*e));
    e->w = w;
    e->server = server;
    w->ends[w->nends++] = e;
    if (server && w->srv == NULL)
        w->srv = e;
    if (!server && w->cli == NULL)
        w->cli = e;
    return e;
}

static void on_accept(void *ud, net_conn_t *c)
{
    world_t *w = ud;
    end_t *e = end_new(w, true);
    e->c = c;
    c->ops = &end_ops;
    c->ud = e;
    if (w->srv_direct)
        assert_int_equal(net_conn_start_tls(c, w->srv_tls), 0);
    if (w->on_accept != NULL)
        w->on_accept(e);
    assert_int_equal(net_conn_read_start(c), 0);
}

static end_t *client_new(world_t *w, const char *addr)
{
    end_t *e = end_new(w, false);
    assert_int_equal(net_connect(&w->net, addr, &end_ops, e, &e->c), 0);
    return e;
}

static void on_guard(uv_timer_t *t)
{
    world_t *w = t->data;
    w->timed_out = true;
    uv_stop(&w->loop);
}

static void world_init(world_t *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->logf = open_memstream(&w->logbuf, &w->loglen);
    assert_non_null(w->logf);
    w->log = (core_log_t){.level = CORE_LOG_DEBUG, .component = "test", .out = w->logf};
    net_ctx_init(&w->net, &w->loop, &w->log);
    assert_int_equal(net_listen(&w->net, "127.0.0.1:0", on_accept, w, &w->l), 0);
    snprintf(w->addr, sizeof(w->addr), "127.0.0.1:%d", net_listener_port(w->l));
    uv_timer_init(&w->loop, &w->guard);
    w->guard.data = w;
    uv_timer_start(&w->guard, on_guard, 30 * 1000, 0);
    w->cli_host = "parley.test";
}

/* The log so far, NUL-terminated. */
static const char *world_log(world_t *w)
{
    fflush(w->logf);
    return w->logbuf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void run_until(world_t *w, bool (*done)(world_t *w))
{
    while (!done(w)) {
        if (w->timed_out) {
            fprintf(stderr, "log:\n%s\n", world_log(w));
            fail_msg("timed out");
        }
        uv_run(&w->loop, UV_RUN_ONCE);
    }
}

static bool all_closed(world_t *w)
{
    for (size_t i = 0; i < w->nends; i++)
        if (w->ends[i]->closed == 0)
            return false;
    return true;
}

static bool both_ready(world_t *w)
{
    return w->srv != NULL && w->cli != NULL && w->srv->ready == 1 && w->cli->ready == 1;
}

static bool both_closed(world_t *w)
{
    return w->srv != NULL && w->cli != NULL && w->srv->closed == 1 && w->cli->closed == 1;
}

/* Closes what is still open, and checks that nothing is left on the loop. */
static void world_finish(world_t *w)
{
    for (size_t i = 0; i < w->nends; i++)
        if (w->ends[i]->c != NULL)
            net_conn_close(w->ends[i]->c, false);
    run_until(w, all_closed);
    for (size_t i = 0; i < w->nends; i++) {
        assert_int_equal(w->ends[i]->closed, 1);
        core_buf_release(&w->ends[i]->got);
        core_free(w->ends[i]);
    }
    net_listener_close(w->l);
    net_ctx_close(&w->net);
    uv_close((uv_handle_t *)&w->guard, NULL);
    while (uv_run(&w->loop, UV_RUN_DEFAULT) != 0) {
    }
    assert_int_equal(uv_loop_close(&w->loop), 0);
    net_tls_ctx_free(w->srv_tls);
    net_tls_ctx_free(w->cli_tls);
    fclose(w->logf);
    free(w->logbuf);
}

static net_tls_ctx_t *server_ctx(void)
{
    net_tls_cert_t sni = {.name = "Other.Test", .cert_file = sni_cert_pem, .key_file = sni_key_pem};
    net_tls_server_opts_t o = {.cert_file = cert_pem, .key_file = key_pem, .sni = &sni, .nsni = 1};
    net_tls_ctx_t *t = NULL;
    char err[512] = "";
    int rc = net_tls_ctx_new_server(&o, &t, err, sizeof(err));
    if (rc != 0)
        fail_msg("server context: %s", err);
    return t;
}

static net_tls_ctx_t *client_ctx(const char *ca_file)
{
    net_tls_client_opts_t o = {.ca_file = ca_file};
    net_tls_ctx_t *t = NULL;
    char err[512] = "";
    int rc = net_tls_ctx_new_client(&o, &t, err, sizeof(err));
    if (rc != 0)
        fail_msg("client context: %s", err);
    return t;
}

static void direct_tls(world_t *w)
{
    world_init(w);
    w->srv_tls = server_ctx();
    w->cli_tls = client_ctx(cert_pem);
    w->srv_direct = true;
    w->cli_direct = true;
}

static unsigned char pattern(size_t i)
{
    return (unsigned char)(i * 7 + (i >> 9));
}

static void assert_pattern(const char *p, size_t len, size_t from)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)p[i] != pattern(from + i))
            fail_msg("byte %zu is %u, expected %u", from + i, (unsigned char)p[i],
                     pattern(from + i));
}

static char *pattern_new(size_t len)
{
    char *p = core_malloc(len);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)pattern(i);
    return p;
}

/* ---- handshake and data both ways ---- */

static void data_on_connect(end_t *e)
{
    /* Written before the handshake completes: held, then sent encrypted, in order. */
    unsigned char cb[NET_TLS_CB_MAX];
    size_t len;
    assert_int_equal(net_conn_tls_version(e->c), -ENOTCONN);
    assert_int_equal(net_conn_tls_unique(e->c, cb, sizeof(cb), &len), -ENOTCONN);
    assert_false(net_conn_tls_ready(e->c));
    for (const char *p = "early"; *p != '\0'; p++)
        assert_int_equal(net_conn_write(e->c, p, 1), 0);
    assert_int_equal(net_conn_start_tls(e->c, e->w->cli_tls), -EALREADY);
}

static void data_on_ready(end_t *e)
{
    if (e->server)
        return;
    for (size_t i = 0; i < ONE_BYTE_WRITES; i++) {
        char b = (char)pattern(i);
        assert_int_equal(net_conn_write(e->c, &b, 1), 0);
    }
    char *big = pattern_new(BIG_LEN);
    assert_int_equal(net_conn_write(e->c, big, BIG_LEN), 0);
    core_free(big);
}

static void data_on_read(end_t *e)
{
    if (!e->server || e->step != 0 || e->got.len < 5 + ONE_BYTE_WRITES + BIG_LEN)
        return;
    assert_int_equal(e->got.len, 5 + ONE_BYTE_WRITES + BIG_LEN);
    assert_memory_equal(e->got.data, "early", 5);
    assert_pattern(e->got.data + 5, ONE_BYTE_WRITES, 0);
    assert_pattern(e->got.data + 5 + ONE_BYTE_WRITES, BIG_LEN, 0);
    e->step = 1;
    char *big = pattern_new(BIG_LEN);
    assert_int_equal(net_conn_write(e->c, big, BIG_LEN), 0);
    core_free(big);
}

static bool client_got_big(world_t *w)
{
    return w->cli->got.len >= BIG_LEN;
}

static void test_data_both_ways(void **state)
{
    world_t w;
    direct_tls(&w);
    w.on_connect = data_on_connect;
    w.on_ready = data_on_ready;
    w.on_read = data_on_read;
    client_new(&w, w.addr);
    run_until(&w, client_got_big);
    assert_int_equal(w.cli->got.len, BIG_LEN);
    assert_pattern(w.cli->got.data, BIG_LEN, 0);
    assert_int_equal(w.srv->ready, 1);
    assert_int_equal(w.cli->ready, 1);
    assert_int_equal(net_conn_tls_version(w.srv->c), NET_TLS_VERSION_1_3);
    assert_int_equal(net_conn_tls_version(w.cli->c), NET_TLS_VERSION_1_3);
    assert_true(net_conn_tls_ready(w.srv->c));
    /* A flushing close sends close_notify: the peer sees a clean end, both sides status 0. */
    net_conn_close(w.cli->c, true);
    run_until(&w, both_closed);
    assert_int_equal(w.srv->status, 0);
    assert_int_equal(w.cli->status, 0);
    assert_non_null(strstr(world_log(&w), "peer sent TLS close_notify"));
    world_finish(&w);
}

/* ---- one byte stream, written split at every offset ---- */

static void split_on_ready(end_t *e)
{
    if (e->server)
        return;
    size_t n = sizeof(fixture) - 1;
    for (size_t k = 0; k <= n; k++) {
        assert_int_equal(net_conn_write(e->c, fixture, k), 0);
        assert_int_equal(net_conn_write(e->c, fixture + k, n - k), 0);
    }
}

static bool server_got_splits(world_t *w)
{
    return w->srv != NULL && w->srv->got.len >= (sizeof(fixture) - 1) * sizeof(fixture);
}

static void test_split_every_offset(void **state)
{
    world_t w;
    direct_tls(&w);
    w.on_ready = split_on_ready;
    client_new(&w, w.addr);
    run_until(&w, server_got_splits);
    size_t n = sizeof(fixture) - 1;
    assert_int_equal(w.srv->got.len, n * (n + 1));
    for (size_t k = 0; k <= n; k++)
        assert_memory_equal(w.srv->got.data + k * n, fixture, n);
    world_finish(&w);
}

/* ---- ciphertext delivered one byte at a time, both ways ---- */

typedef struct hop {
    struct relay *r;
    net_conn_t *c;
    bool up;
    core_buf_t inbox; /* read from c, for the other hop */
    int closed;
} hop_t;

typedef struct relay {
    world_t *w;
    net_listener_t *l;
    char addr[64];
    hop_t in; /* from the client */
    hop_t out; /* to the server */
    uv_idle_t idle;
    size_t moved;
    bool corrupt_next; /* flip the last bit of the next client chunk */
} relay_t;

static void relay_tick(uv_idle_t *h)
{
    relay_t *r = h->data;
    hop_t *hops[2] = {&r->in, &r->out};
    bool more = false;
    for (int i = 0; i < 2; i++) {
        hop_t *from = hops[i];
        hop_t *to = hops[1 - i];
        if (from->inbox.len > 0 && to->up && to->c != NULL) {
            assert_int_equal(net_conn_write(to->c, from->inbox.data, 1), 0);
            core_buf_consume(&from->inbox, 1);
            r->moved++;
        }
        /* A hang-up is passed on once what came before it has been. */
        if (from->closed && from->inbox.len == 0 && to->c != NULL && !to->c->closing)
            net_conn_close(to->c, true);
        more = more || from->inbox.len > 0;
    }
    if (!more)
        uv_idle_stop(h);
}

static void hop_read(net_conn_t *c, const char *data, size_t len)
{
    hop_t *h = c->ud;
    core_buf_append(&h->inbox, data, len);
    if (h == &h->r->in && h->r->corrupt_next) {
        h->r->corrupt_next = false;
        h->inbox.data[h->inbox.len - 1] ^= 1;
    }
    uv_idle_start(&h->r->idle, relay_tick);
}

static void hop_close(net_conn_t *c, int status)
{
    hop_t *h = c->ud;
    h->c = NULL;
    h->closed++;
    uv_idle_start(&h->r->idle, relay_tick);
}

static void hop_connected(net_conn_t *c, int status)
{
    hop_t *h = c->ud;
    assert_int_equal(status, 0);
    h->up = true;
    assert_int_equal(net_conn_read_start(c), 0);
    uv_idle_start(&h->r->idle, relay_tick);
}

static const net_conn_ops_t hop_ops = {
    .on_read = hop_read,
    .on_close = hop_close,
    .on_connect = hop_connected,
};

static void relay_accept(void *ud, net_conn_t *c)
{
    relay_t *r = ud;
    r->in.c = c;
    r->in.up = true;
    c->ops = &hop_ops;
    c->ud = &r->in;
    assert_int_equal(net_connect(&r->w->net, r->w->addr, &hop_ops, &r->out, &r->out.c), 0);
    assert_int_equal(net_conn_read_start(c), 0);
}

static void trickle_on_ready(end_t *e)
{
    assert_int_equal(net_conn_write(e->c, fixture, sizeof(fixture) - 1), 0);
}

static bool both_got_fixture(world_t *w)
{
    return w->srv != NULL && w->cli != NULL && w->srv->got.len >= sizeof(fixture) - 1 &&
        w->cli->got.len >= sizeof(fixture) - 1;
}

static bool hops_closed(relay_t *r)
{
    return r->in.closed == 1 && r->out.closed == 1;
}

static bool relay_done(world_t *w)
{
    return hops_closed(w->user);
}

/* Puts a relay between a client and the world's server; the client goes through r->addr. */
static void relay_start(world_t *w, relay_t *r)
{
    *r = (relay_t){.w = w, .in = {.r = r}, .out = {.r = r}};
    assert_int_equal(net_listen(&w->net, "127.0.0.1:0", relay_accept, r, &r->l), 0);
    snprintf(r->addr, sizeof(r->addr), "127.0.0.1:%d", net_listener_port(r->l));
    uv_idle_init(&w->loop, &r->idle);
    r->idle.data = r;
}

static void relay_stop(world_t *w, relay_t *r)
{
    if (r->in.c != NULL)
        net_conn_close(r->in.c, false);
    if (r->out.c != NULL)
        net_conn_close(r->out.c, false);
    w->user = r;
    run_until(w, relay_done);
    uv_close((uv_handle_t *)&r->idle, NULL);
    net_listener_close(r->l);
    core_buf_release(&r->in.inbox);
    core_buf_release(&r->out.inbox);
}

static void test_trickle_byte_by_byte(void **state)
{
    world_t w;
    relay_t r;
    direct_tls(&w);
    relay_start(&w, &r);
    w.on_ready = trickle_on_ready;
    client_new(&w, r.addr);
    run_until(&w, both_got_fixture);
    assert_int_equal(w.srv->got.len, sizeof(fixture) - 1);
    assert_int_equal(w.cli->got.len, sizeof(fixture) - 1);
    assert_memory_equal(w.srv->got.data, fixture, sizeof(fixture) - 1);
    assert_memory_equal(w.cli->got.data, fixture, sizeof(fixture) - 1);
    /* A handshake and two records: well over a thousand one-byte deliveries. */
    assert_true(r.moved > 1000);
    relay_stop(&w, &r);
    world_finish(&w);
}

/* ---- a read that must write: the alert for a record that fails to decrypt ---- */

static void test_corrupt_record_alerted(void **state)
{
    world_t w;
    relay_t r;
    direct_tls(&w);
    relay_start(&w, &r);
    client_new(&w, r.addr);
    run_until(&w, both_ready);
    /* The server's SSL_read writes a bad_record_mac alert (RFC 8446 §5.2) and nothing else
     * writes after it: only draining after SSL_read gets it to the client, which then fails
     * instead of seeing a bare end of stream. */
    r.corrupt_next = true;
    assert_int_equal(net_conn_write(w.cli->c, "ping", 4), 0);
    run_until(&w, both_closed);
    assert_int_equal(w.srv->got.len, 0);
    assert_int_equal(w.srv->status, UV_EPROTO);
    assert_int_equal(w.cli->status, UV_EPROTO);
    const char *log = world_log(&w);
    assert_int_equal(count(log, "TLS read failed"), 2);
    assert_non_null(strstr(log, "bad record mac"));
    relay_stop(&w, &r);
    world_finish(&w);
}

/* ---- STARTTLS: plaintext first, then both sides switch ---- */

static void starttls_on_connect(end_t *e)
{
    assert_int_equal(net_conn_write(e->c, "<starttls/>", 11), 0);
}

static void starttls_on_read(end_t *e)
{
    world_t *w = e->w;
    if (e->server && e->step == 0 && e->got.len >= 11) {
        assert_int_equal(e->got.len, 11);
        assert_memory_equal(e->got.data, "<starttls/>", 11);
        e->step = 1;
        /* RFC 6120 §5.4.2.3: <proceed/> goes out in plaintext, then TLS; what is written
         * after the switch waits for the handshake. Buffered plaintext is dropped. */
        assert_int_equal(net_conn_write(e->c, "<proceed/>", 10), 0);
        assert_int_equal(net_conn_start_tls(e->c, w->srv_tls), 0);
        assert_int_equal(net_conn_write(e->c, "from server", 11), 0);
        e->got.len = 0;
    } else if (!e->server && e->step == 0 && e->got.len >= 10) {
        assert_int_equal(e->got.len, 10);
        assert_memory_equal(e->got.data, "<proceed/>", 10);
        e->step = 1;
        e->got.len = 0;
        /* A verifying context with no default name refuses to start without one. */
        assert_int_equal(net_conn_start_tls(e->c, w->cli_tls), -EINVAL);
        assert_int_equal(net_conn_start_tls_host(e->c, w->cli_tls, "parley.test"), 0);
    }
}

static void starttls_on_ready(end_t *e)
{
    if (!e->server)
        assert_int_equal(net_conn_write(e->c, "from client", 11), 0);
}

static bool starttls_done(world_t *w)
{
    return w->srv != NULL && w->cli != NULL && w->srv->got.len >= 11 && w->cli->got.len >= 11;
}

static void test_starttls(void **state)
{
    world_t w;
    world_init(&w);
    w.srv_tls = server_ctx();
    w.cli_tls = client_ctx(cert_pem);
    w.on_connect = starttls_on_connect;
    w.on_read = starttls_on_read;
    w.on_ready = starttls_on_ready;
    client_new(&w, w.addr);
    run_until(&w, starttls_done);
    assert_int_equal(w.srv->got.len, 11);
    assert_memory_equal(w.srv->got.data, "from client", 11);
    assert_int_equal(w.cli->got.len, 11);
    assert_memory_equal(w.cli->got.data, "from server", 11);
    assert_int_equal(w.srv->ready, 1);
    assert_int_equal(w.cli->ready, 1);
    world_finish(&w);
}

/* ---- post-handshake messages: a TLS 1.3 KeyUpdate asking for one back ---- */

static int key_updates_seen;

static void count_key_updates(int write_p, int version, int content_type, const void *buf,
                              size_t len, SSL *ssl, void *arg)
{
    const unsigned char *p = buf;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_KEY_UPDATE)
        key_updates_seen++;
}

static void key_update_on_read(end_t *e)
{
    if (e->server && e->got.len == 4)
        assert_int_equal(net_conn_write(e->c, "pong", 4), 0);
}

static bool key_update_answered(world_t *w)
{
    return w->cli->got.len == 4 && key_updates_seen == 1;
}

static void test_key_update_answered(void **state)
{
    world_t w;
    direct_tls(&w);
    SSL_CTX_set_msg_callback(net_tls_ctx_ssl(w.cli_tls), count_key_updates);
    client_new(&w, w.addr);
    run_until(&w, both_ready);
    key_updates_seen = 0;
    w.on_read = key_update_on_read;
    /* RFC 8446 §4.6.3: update_requested makes the server update its keys too, before its
     * next record (OpenSSL sends it with the next write). */
    assert_int_equal(SSL_key_update(net_tls_conn_ssl(w.cli->c), SSL_KEY_UPDATE_REQUESTED), 1);
    assert_int_equal(net_conn_write(w.cli->c, "ping", 4), 0);
    run_until(&w, key_update_answered);
    assert_memory_equal(w.srv->got.data, "ping", 4);
    assert_memory_equal(w.cli->got.data, "pong", 4);
    world_finish(&w);
}

/* ---- refusals ---- */

static void test_tls11_refused(void **state)
{
    world_t w;
    direct_tls(&w);
    net_tls_ctx_free(w.cli_tls);
    net_tls_client_opts_t o = {.no_verify = true};
    char err[256];
    assert_int_equal(net_tls_ctx_new_client(&o, &w.cli_tls, err, sizeof(err)), 0);
    /* Step around our own policy to play an old client that only speaks TLS 1.1. */
    SSL_CTX *x = net_tls_ctx_ssl(w.cli_tls);
    SSL_CTX_set_security_level(x, 0);
    assert_int_equal(SSL_CTX_set_min_proto_version(x, TLS1_1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(x, TLS1_1_VERSION), 1);
    client_new(&w, w.addr);
    run_until(&w, both_closed);
    assert_int_equal(w.srv->ready, 0);
    assert_int_equal(w.cli->ready, 0);
    assert_int_equal(w.srv->status, UV_EPROTO);
    assert_int_equal(w.cli->status, UV_EPROTO);
    const char *log = world_log(&w);
    assert_non_null(strstr(log, "unsupported protocol"));
    /* One line per failure, on each side. */
    assert_int_equal(count(log, "TLS handshake failed"), 2);
    world_finish(&w);
}

static void test_wrong_host_refused(void **state)
{
    world_t w;
    direct_tls(&w);
    w.cli_host = "wrong.test";
    client_new(&w, w.addr);
    run_until(&w, both_closed);
    assert_int_equal(w.cli->ready, 0);
    assert_int_equal(w.srv->ready, 0);
    assert_int_equal(w.cli->status, UV_EPROTO);
    assert_int_equal(w.srv->status, UV_EPROTO);
    assert_non_null(strstr(world_log(&w), "certificate verify failed: hostname mismatch"));
    world_finish(&w);
}

static void test_unknown_issuer_refused(void **state)
{
    world_t w;
    direct_tls(&w);
    /* Trusting only the other certificate: parley.test's is signed by nobody we know. */
    net_tls_ctx_free(w.cli_tls);
    w.cli_tls = client_ctx(sni_cert_pem);
    client_new(&w, w.addr);
    run_until(&w, both_closed);
    assert_int_equal(w.cli->ready, 0);
    assert_int_equal(w.cli->status, UV_EPROTO);
    assert_non_null(strstr(world_log(&w), "certificate verify failed"));
    world_finish(&w);
}

/* What a peer that does not speak TLS sends, and whether it hangs up afterwards. */
typedef struct garbage {
    const char *name;
    const char *bytes;
    size_t len;
    bool hang_up;
    int status; /* expected on the server's side */
    const char *log;
} garbage_t;

static void garbage_on_connect(end_t *e)
{
    const garbage_t *g = e->w->user;
    assert_int_equal(net_conn_write(e->c, g->bytes, g->len), 0);
    if (g->hang_up)
        net_conn_close(e->c, true);
}

static bool server_closed(world_t *w)
{
    return w->srv != NULL && w->srv->closed == 1;
}

static void test_garbage_peer_closed(void **state)
{
    char noise[4096];
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)(pattern(i) ^ (i * 131));
    static const char hello_start[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    garbage_t cases[] = {
        {"a plaintext stream", fixture, sizeof(fixture) - 1, false, UV_EPROTO,
         "TLS handshake failed"},
        {"HTTP", "GET / HTTP/1.1\r\nHost: parley.test\r\n\r\n", 37, false, UV_EPROTO,
         "TLS handshake failed"},
        {"noise", noise, sizeof(noise), false, UV_EPROTO, "TLS handshake failed"},
        {"half a ClientHello", hello_start, sizeof(hello_start) - 1, true, UV_ECONNRESET,
         "closed the connection during the TLS handshake"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        world_t w;
        direct_tls(&w);
        w.cli_direct = false;
        w.user = &cases[i];
        w.on_connect = garbage_on_connect;
        client_new(&w, w.addr);
        run_until(&w, server_closed);
        if (w.srv->status != cases[i].status)
            fail_msg("%s: status %d, expected %d", cases[i].name, w.srv->status, cases[i].status);
        assert_int_equal(w.srv->ready, 0);
        assert_int_equal(count(world_log(&w), cases[i].log), 1);
        world_finish(&w);
    }
}

/* ---- configuration errors ---- */

static int try_server(const char *cert, const char *key, const net_tls_cert_t *sni, char *err,
                      size_t errlen)
{
    net_tls_server_opts_t o = {
        .cert_file = cert, .key_file = key, .sni = sni, .nsni = sni != NULL ? 1 : 0};
    net_tls_ctx_t *t = NULL;
    err[0] = '\0';
    int rc = net_tls_ctx_new_server(&o, &t, err, errlen);
    net_tls_ctx_free(t);
    return rc;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (strstr(hay, needle) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

static void test_config_errors(void **state)
{
    char err[512];
    assert_int_equal(try_server("/nonexistent-parley/cert.pem", key_pem, NULL, err, sizeof(err)),
                     -ENOENT);
    assert_contains(err, "certificate file '/nonexistent-parley/cert.pem'");
    assert_contains(err, "No such file or directory");

    assert_int_equal(try_server(cert_pem, "/nonexistent-parley/key.pem", NULL, err, sizeof(err)),
                     -ENOENT);
    assert_contains(err, "key file '/nonexistent-parley/key.pem'");

    assert_int_equal(try_server(junk_pem, key_pem, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, junk_pem);
    assert_contains(err, "no start line"); /* OpenSSL's reason */

    assert_int_equal(try_server(cert_pem, sni_key_pem, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, sni_key_pem);
    assert_contains(err, "mismatch");

    assert_int_equal(try_server(NULL, key_pem, NULL, err, sizeof(err)), -EINVAL);
    assert_contains(err, "no certificate file");

    net_tls_cert_t sni = {.name = "other.test",
                          .cert_file = "/nonexistent-parley/other.pem",
                          .key_file = sni_key_pem};
    assert_int_equal(try_server(cert_pem, key_pem, &sni, err, sizeof(err)), -ENOENT);
    assert_contains(err, "/nonexistent-parley/other.pem");

    net_tls_client_opts_t co = {.ca_file = "/nonexistent-parley/ca.pem"};
    net_tls_ctx_t *t = NULL;
    assert_int_equal(net_tls_ctx_new_client(&co, &t, err, sizeof(err)), -ENOENT);
    assert_null(t);
    assert_contains(err, "CA file '/nonexistent-parley/ca.pem'");

    /* The good files work, and the system store loads. */
    assert_int_equal(try_server(cert_pem, key_pem, NULL, err, sizeof(err)), 0);
    co = (net_tls_client_opts_t){.host = "example.org"};
    assert_int_equal(net_tls_ctx_new_client(&co, &t, err, sizeof(err)), 0);
    net_tls_ctx_free(t);
}

/* ---- channel binding ---- */

static void digest_of(const char *pem, const char *md_name, unsigned char *out, unsigned *len)
{
    FILE *f = fopen(pem, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    EVP_MD *md = EVP_MD_fetch(NULL, md_name, NULL);
    assert_int_equal(X509_digest(x, md, out, len), 1);
    EVP_MD_free(md);
    X509_free(x);
}

typedef int (*cb_fn)(const net_conn_t *c, unsigned char *out, size_t cap, size_t *len);

/* Gets one binding from both ends, checks they are equal, and returns its length. */
static size_t same_on_both_ends(world_t *w, cb_fn fn, unsigned char *out)
{
    unsigned char a[NET_TLS_CB_MAX], b[NET_TLS_CB_MAX];
    size_t alen = 0, blen = 0;
    assert_int_equal(fn(w->srv->c, a, sizeof(a), &alen), 0);
    assert_int_equal(fn(w->cli->c, b, sizeof(b), &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    static const unsigned char zero[NET_TLS_CB_MAX];
    assert_memory_not_equal(a, zero, alen);
    memcpy(out, a, alen);
    return alen;
}

static void test_channel_binding_tls13(void **state)
{
    world_t w;
    direct_tls(&w);
    client_new(&w, w.addr);
    run_until(&w, both_ready);
    assert_int_equal(net_conn_tls_version(w.srv->c), NET_TLS_VERSION_1_3);
    unsigned char v[NET_TLS_CB_MAX], small[16];
    size_t len;
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_exporter, v), 32);
    assert_int_equal(net_conn_tls_exporter(w.cli->c, small, sizeof(small), &len), -ENOSPC);
    /* RFC 9266 §1: tls-unique is not defined for TLS 1.3. */
    assert_int_equal(net_conn_tls_unique(w.srv->c, v, sizeof(v), &len), -ENOTSUP);
    assert_int_equal(net_conn_tls_unique(w.cli->c, v, sizeof(v), &len), -ENOTSUP);
    /* ECDSA with SHA-256: the end point is the certificate's SHA-256. */
    unsigned char want[EVP_MAX_MD_SIZE];
    unsigned wlen;
    digest_of(cert_pem, "SHA256", want, &wlen);
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_server_end_point, v), wlen);
    assert_memory_equal(v, want, wlen);
    world_finish(&w);
}

static void test_sni_and_server_end_point(void **state)
{
    world_t w;
    direct_tls(&w);
    /* Verifying other.test against its own certificate proves the server chose it. */
    net_tls_ctx_free(w.cli_tls);
    w.cli_tls = client_ctx(sni_cert_pem);
    w.cli_host = "other.test";
    client_new(&w, w.addr);
    run_until(&w, both_ready);
    /* Signed with SHA-384, so RFC 5929 §4.1 hashes it with SHA-384. */
    unsigned char v[NET_TLS_CB_MAX], want[EVP_MAX_MD_SIZE];
    unsigned wlen;
    digest_of(sni_cert_pem, "SHA384", want, &wlen);
    assert_int_equal(wlen, 48);
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_server_end_point, v), 48);
    assert_memory_equal(v, want, 48);
    world_finish(&w);
}

static void test_channel_binding_tls12(void **state)
{
    world_t w;
    direct_tls(&w);
    assert_int_equal(SSL_CTX_set_max_proto_version(net_tls_ctx_ssl(w.cli_tls), TLS1_2_VERSION), 1);
    client_new(&w, w.addr);
    run_until(&w, both_ready);
    assert_int_equal(net_conn_tls_version(w.srv->c), NET_TLS_VERSION_1_2);
    assert_int_equal(net_conn_tls_version(w.cli->c), NET_TLS_VERSION_1_2);
    unsigned char u[NET_TLS_CB_MAX], x[NET_TLS_CB_MAX], small[4];
    size_t len;
    /* The client's Finished: 12 bytes of verify_data (RFC 5246 §7.4.9). */
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_unique, u), 12);
    assert_int_equal(net_conn_tls_unique(w.srv->c, small, sizeof(small), &len), -ENOSPC);
    /* With the extended master secret, tls-exporter is defined over TLS 1.2 too. */
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_exporter, x), 32);
    assert_int_equal(same_on_both_ends(&w, net_conn_tls_server_end_point, x), 32);
    world_finish(&w);
}

/* ---- what an idle TLS connection holds ---- */

#define IDLE_CONNS 16
#define IDLE_DATA (64u * 1024)

static void idle_on_ready(end_t *e)
{
    if (e->server)
        return;
    char *p = pattern_new(IDLE_DATA);
    assert_int_equal(net_conn_write(e->c, p, IDLE_DATA), 0);
    core_free(p);
}

static void idle_on_read(end_t *e)
{
    if (!e->server || e->step != 0 || e->got.len < IDLE_DATA)
        return;
    e->step = 1;
    assert_int_equal(net_conn_write(e->c, e->got.data, e->got.len), 0);
}

static bool idle_exchanged(world_t *w)
{
    size_t done = 0;
    for (size_t i = 0; i < w->nends; i++) {
        end_t *e = w->ends[i];
        if (!e->server && e->closed == 0 && e->got.len == IDLE_DATA)
            done++;
    }
    return done == IDLE_CONNS;
}

static bool idle_flushed(world_t *w)
{
    for (size_t i = 0; i < w->nends; i++) {
        net_conn_t *c = w->ends[i]->c;
        if (c != NULL && (c->out.len > 0 || c->in_flight > 0 || c->pending))
            return false;
    }
    return true;
}

static bool idle_trimmed(world_t *w)
{
    return w->net.ntrim == 0;
}

static void drop_spares(net_ctx_t *ctx)
{
    while (ctx->nspare > 0)
        core_buf_release(&ctx->spare[--ctx->nspare]);
}

static void test_idle_memory(void **state)
{
    world_t w;
    direct_tls(&w);
    w.on_ready = idle_on_ready;
    w.on_read = idle_on_read;
    drop_spares(&w.net);
    w.net.trim_ms = 5; /* quiet connections give their buffers back after 5 to 10 ms */
    size_t base = core_alloc_bytes();
    for (size_t i = 0; i < IDLE_CONNS; i++)
        client_new(&w, w.addr);
    run_until(&w, idle_exchanged);
    run_until(&w, idle_flushed);
    size_t busy = core_alloc_bytes();
    run_until(&w, idle_trimmed);
    /* Quiet connections keep nothing they needed only while busy. */
    assert_true(core_alloc_bytes() < busy);
    size_t ends = 0;
    for (size_t i = 0; i < w.nends; i++) {
        assert_pattern(w.ends[i]->got.data, IDLE_DATA, 0);
        core_buf_release(&w.ends[i]->got);
        ends += sizeof(end_t);
    }
    drop_spares(&w.net);
    size_t per_pair = (core_alloc_bytes() - base - ends) / IDLE_CONNS;
    print_message("idle TLS connection pair after a 64 KiB exchange each way: %zu bytes "
                  "(client + server, TCP and TLS state; net_conn_t alone is %zu)\n",
                  per_pair, sizeof(net_conn_t));
    /* About 33 KiB on OpenSSL 3.0 (its SSL object alone is 7.6 KiB). One record buffer kept
     * (16.5 KiB) or one grown memory BIO (up to 87 KiB) would break this. */
    assert_true(per_pair < 40 * 1024);
    world_finish(&w);
}

/* ---- certificates made at test time ---- */

static void write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (key != NULL)
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    if (cert != NULL)
        assert_int_equal(PEM_write_X509(f, cert), 1);
    assert_int_equal(fclose(f), 0);
}

static void make_cert(const char *name, const char *curve, const char *md_name, long serial,
                      const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    assert_non_null(key);
    X509 *x = X509_new();
    assert_int_equal(X509_set_version(x, X509_VERSION_3), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)name, -1, -1, 0);
    assert_int_equal(X509_set_issuer_name(x, n), 1);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    char san[128];
    snprintf(san, sizeof(san), "DNS:%s", name);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    EVP_MD *md = EVP_MD_fetch(NULL, md_name, NULL);
    assert_true(X509_sign(x, key, md) > 0);
    EVP_MD_free(md);
    write_pem(cert_path, NULL, x);
    write_pem(key_path, key, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
}

static int make_certs(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/parley-tls-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert_pem, sizeof(cert_pem), "%s/cert.pem", dir);
    snprintf(key_pem, sizeof(key_pem), "%s/key.pem", dir);
    snprintf(sni_cert_pem, sizeof(sni_cert_pem), "%s/other-cert.pem", dir);
    snprintf(sni_key_pem, sizeof(sni_key_pem), "%s/other-key.pem", dir);
    snprintf(junk_pem, sizeof(junk_pem), "%s/junk.pem", dir);
    make_cert("parley.test", "P-256", "SHA256", 1, cert_pem, key_pem);
    make_cert("other.test", "P-384", "SHA384", 2, sni_cert_pem, sni_key_pem);
    FILE *f = fopen(junk_pem, "w");
    assert_non_null(f);
    fputs("this is not a certificate\n", f);
    fclose(f);
    return 0;
}

static int remove_certs(void **state)
{
    const char *files[] = {cert_pem, key_pem, sni_cert_pem, sni_key_pem, junk_pem};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        unlink(files[i]);
    rmdir(dir);
    return 0;
}

int main(void)
{
    /* Before anything touches OpenSSL, so that its bytes are counted too. */
    if (net_tls_init() != 0) {
        fprintf(stderr, "net_tls_init failed: OpenSSL allocated before main\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_data_both_ways),
        cmocka_unit_test(test_split_every_offset),
        cmocka_unit_test(test_trickle_byte_by_byte),
        cmocka_unit_test(test_corrupt_record_alerted),
        cmocka_unit_test(test_starttls),
        cmocka_unit_test(test_key_update_answered),
        cmocka_unit_test(test_tls11_refused),
        cmocka_unit_test(test_wrong_host_refused),
        cmocka_unit_test(test_unknown_issuer_refused),
        cmocka_unit_test(test_garbage_peer_closed),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_channel_binding_tls13),
        cmocka_unit_test(test_sni_and_server_end_point),
        cmocka_unit_test(test_channel_binding_tls12),
        cmocka_unit_test(test_idle_memory),
    };
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
