/* SPDX-License-Identifier: MIT */
/* c2s end to end in one loop: a real router, an in-process sm stand-in, and scripted TCP/TLS
 * clients doing STARTTLS, SCRAM, bind and relay through route envelopes. */
#include "auth/auth.h"
#include "c2s/c2s.h"
#include "c2s/internal.h"
#include "core/alloc.h"
#include "net/tls.h"
#include "router/router.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

#define SESSION_NS "urn:parley:session:0"
#define MAX_SIDS 8

static char dir[64];
static char cert_pem[128], key_pem[128];

typedef struct client {
    struct world *w;
    net_conn_t *c;
    char *got; /* plaintext received, NUL-terminated */
    size_t len;
    bool connected;
    bool closed;
    bool direct_tls;
    char features[2048]; /* the features after SASL, as cl_bind saw them */
} client_t;

typedef struct world {
    uv_loop_t loop;
    core_log_t log;
    net_ctx_t net;
    core_cfg_t cfg;
    router_t *r;
    c2s_t *c2s;
    auth_source_t *auth;
    link_endpoint_t *sm;
    link_opener_t opener;
    net_tls_ctx_t *cli_tls;
    uv_timer_t tick;
    /* what the sm stand-in saw */
    int starts;
    int ends;
    char last_end_sid[64];
    char sids[MAX_SIDS][64]; /* bound sessions: sid and jid */
    char jids[MAX_SIDS][128];
    char last_from[128]; /* the from of the last relayed stanza */
    int undelivered; /* stanzas handed back (XEP-0198), after end */
    char undelivered_ids[8][32];
    int ends_before_undelivered; /* ends seen when the first one came */
} world_t;

/* ---- the sm stand-in ---- */

static void sm_send(world_t *w, const char *sid, xml_stanza_t *child_owner, xml_node_t *child)
{
    (void)child_owner;
    xml_stanza_t *env = xml_stanza_new(XMLS_NS_CONTENT, "route");
    xml_node_set_attr(env, env->root, NULL, "to", "c2s-1.localhost");
    xml_node_set_attr(env, env->root, NULL, "from", "localhost");
    xml_node_set_attr(env, env->root, NULL, "sid", sid);
    xml_node_add_copy(env, env->root, child);
    assert_int_equal(link_endpoint_send(w->sm, env), 0);
    xml_stanza_unref(env);
}

static void sm_control(world_t *w, const char *sid, const char *action)
{
    xml_stanza_t *tmp = xml_stanza_new(SESSION_NS, "session");
    xml_node_set_attr(tmp, tmp->root, NULL, "action", action);
    sm_send(w, sid, tmp, tmp->root);
    xml_stanza_unref(tmp);
}

static void sm_session(world_t *w, const char *sid, const xml_node_t *s)
{
    const char *action = xml_node_attr(s, "action");
    assert_non_null(action);
    if (strcmp(action, "start") == 0) {
        const char *jid = xml_node_attr(s, "jid");
        assert_non_null(jid);
        w->starts++;
        int free_slot = -1;
        for (int i = 0; i < MAX_SIDS; i++) {
            if (w->sids[i][0] != '\0' && strcmp(w->jids[i], jid) == 0) {
                /* The same full JID again: the old connection is replaced. */
                sm_control(w, w->sids[i], "replace");
                w->sids[i][0] = '\0';
            }
            if (w->sids[i][0] == '\0' && free_slot < 0)
                free_slot = i;
        }
        assert_true(free_slot >= 0);
        snprintf(w->sids[free_slot], sizeof(w->sids[0]), "%s", sid);
        snprintf(w->jids[free_slot], sizeof(w->jids[0]), "%s", jid);
        sm_control(w, sid, "started");
    } else if (strcmp(action, "end") == 0) {
        w->ends++;
        snprintf(w->last_end_sid, sizeof(w->last_end_sid), "%s", sid);
        for (int i = 0; i < MAX_SIDS; i++) {
            if (strcmp(w->sids[i], sid) == 0)
                w->sids[i][0] = '\0';
        }
        sm_control(w, sid, "ended");
    }
}

static void sm_on_stanza(void *ud, xml_stanza_t *st)
{
    world_t *w = ud;
    assert_true(xml_node_is(st->root, XMLS_NS_CONTENT, "route"));
    assert_string_equal(xml_node_attr(st->root, "from"), "c2s-1.localhost");
    const char *sid = xml_node_attr(st->root, "sid");
    assert_non_null(sid);
    const xml_node_t *child = xml_envelope_child(st);
    assert_non_null(child);
    if (xml_node_is(child, SESSION_NS, "session")) {
        sm_session(w, sid, child);
        return;
    }
    const char *type = xml_node_attr(st->root, "type");
    if (type != NULL && strcmp(type, "undelivered") == 0) {
        /* XEP-0198: handed back after end, with the time of the first delivery. */
        assert_non_null(xml_node_attr(st->root, "stamp"));
        if (w->undelivered == 0)
            w->ends_before_undelivered = w->ends;
        const char *id = xml_node_attr(child, "id");
        if (w->undelivered < 8)
            snprintf(w->undelivered_ids[w->undelivered], 32, "%s", id != NULL ? id : "");
        w->undelivered++;
        return;
    }
    /* A stanza: echo it back to the sender, from its addressee. */
    const char *from = xml_node_attr(child, "from");
    assert_non_null(from);
    snprintf(w->last_from, sizeof(w->last_from), "%s", from);
    /* In process the client's stanza rides in the envelope by reference, never copied. */
    assert_non_null(st->inner);
    xml_stanza_t *echo = xml_stanza_copy(st->inner);
    const char *to = xml_node_attr(child, "to");
    xml_node_set_attr(echo, echo->root, NULL, "from", to != NULL ? to : "localhost");
    xml_node_set_attr(echo, echo->root, NULL, "to", from);
    sm_send(w, sid, echo, echo->root);
    xml_stanza_unref(echo);
}

static void sm_on_up(void *ud)
{
    (void)ud;
}

static void sm_on_down(void *ud)
{
    (void)ud;
}

static const link_endpoint_ops_t sm_ops = {
    .on_up = sm_on_up,
    .on_stanza = sm_on_stanza,
    .on_down = sm_on_down,
};

static link_endpoint_t *open_inproc(void *ctx, const link_options_t *opt,
                                    const link_endpoint_ops_t *ops, void *ud)
{
    world_t *w = ctx;
    return link_inproc_open(&w->loop, router_hub(w->r), opt, ops, ud, &w->log);
}

/* ---- the scripted client ---- */

static void cl_read(net_conn_t *c, const char *data, size_t len)
{
    client_t *cl = c->ud;
    cl->got = core_realloc(cl->got, cl->len + len + 1);
    memcpy(cl->got + cl->len, data, len);
    cl->len += len;
    cl->got[cl->len] = '\0';
}

static void cl_close(net_conn_t *c, int status)
{
    (void)status;
    client_t *cl = c->ud;
    cl->closed = true;
    cl->c = NULL;
}

static void cl_send(client_t *cl, const char *text)
{
    assert_non_null(cl->c);
    assert_int_equal(net_conn_write(cl->c, text, strlen(text)), 0);
}

static void cl_header(client_t *cl)
{
    cl_send(cl,
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
            "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
            "version='1.0'>");
}

static void cl_connect(net_conn_t *c, int status)
{
    client_t *cl = c->ud;
    assert_int_equal(status, 0);
    cl->connected = true;
    if (cl->direct_tls)
        assert_int_equal(net_conn_start_tls(c, cl->w->cli_tls), 0);
    cl_header(cl);
    assert_int_equal(net_conn_read_start(c), 0);
}

static const net_conn_ops_t cl_ops = {
    .on_read = cl_read,
    .on_close = cl_close,
    .on_connect = cl_connect,
};

static void cl_clear(client_t *cl)
{
    cl->len = 0;
    if (cl->got != NULL)
        cl->got[0] = '\0';
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred holds, failing after 10 s. */
static void run_until(world_t *w, bool (*pred)(void *), void *arg, const char *what)
{
    uint64_t end = uv_now(&w->loop) + 10000;
    while (!pred(arg)) {
        if (uv_now(&w->loop) > end)
            fail_msg("timed out waiting for %s", what);
        uv_run(&w->loop, UV_RUN_ONCE);
    }
}

typedef struct expect {
    client_t *cl;
    const char *needle;
} expect_t;

static bool has_needle(void *arg)
{
    expect_t *e = arg;
    return (e->cl->got != NULL && strstr(e->cl->got, e->needle) != NULL) || e->cl->closed;
}

/* Waits for needle in what the client received; returns the text (valid until cl_clear). */
static const char *cl_expect(client_t *cl, const char *needle)
{
    expect_t e = {cl, needle};
    uint64_t end = uv_now(&cl->w->loop) + 10000;
    while (!has_needle(&e)) {
        if (uv_now(&cl->w->loop) > end)
            fail_msg("timed out waiting for %s; got: %s", needle, cl->got ? cl->got : "");
        uv_run(&cl->w->loop, UV_RUN_ONCE);
    }
    if (cl->got == NULL || strstr(cl->got, needle) == NULL)
        fail_msg("connection closed while waiting for %s; got: %s", needle, cl->got ? cl->got : "");
    return cl->got;
}

static bool is_closed(void *arg)
{
    return ((client_t *)arg)->closed;
}

static client_t *cl_new(world_t *w, bool tls)
{
    client_t *cl = core_calloc(1, sizeof(*cl));
    cl->w = w;
    cl->direct_tls = tls;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", c2s_port(w->c2s, tls));
    assert_int_equal(net_connect(&w->net, addr, &cl_ops, cl, &cl->c), 0);
    return cl;
}

static void cl_free(client_t *cl)
{
    if (cl->c != NULL) {
        net_conn_close(cl->c, false);
        run_until(cl->w, is_closed, cl, "client close");
    }
    core_free(cl->got);
    core_free(cl);
}

/* STARTTLS on a plain connection (RFC 6120 §5.4), up to the features of the TLS stream. */
static void cl_starttls(client_t *cl)
{
    const char *f = cl_expect(cl, "</features>");
    assert_non_null(strstr(f, "<starttls"));
    assert_non_null(strstr(f, "<required"));
    /* require_tls: nothing but STARTTLS is offered in the clear. */
    assert_null(strstr(f, "<mechanisms"));
    cl_clear(cl);
    cl_send(cl, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    cl_expect(cl, "<proceed");
    cl_clear(cl);
    assert_int_equal(net_conn_start_tls(cl->c, cl->w->cli_tls), 0);
    cl_header(cl);
    f = cl_expect(cl, "</features>");
    assert_null(strstr(f, "<starttls"));
    assert_non_null(strstr(f, ">SCRAM-SHA-256<"));
    assert_non_null(strstr(f, ">SCRAM-SHA-256-PLUS<"));
    assert_non_null(strstr(f, ">PLAIN<"));
    assert_non_null(strstr(f, "urn:xmpp:sasl-cb:0"));
    assert_non_null(strstr(f, "tls-exporter"));
    cl_clear(cl);
}

/* The text between <name ...> and </name> in s, base64-decoded into out. */
static size_t element_b64(const char *s, const char *name, uint8_t *out, size_t cap)
{
    char open[32], close[32];
    snprintf(open, sizeof(open), "<%s", name);
    snprintf(close, sizeof(close), "</%s>", name);
    const char *a = strstr(s, open);
    assert_non_null(a);
    a = strchr(a, '>');
    assert_non_null(a);
    a++;
    const char *b = strstr(a, close);
    assert_non_null(b);
    size_t len = 0;
    assert_int_equal(auth_b64_decode(a, (size_t)(b - a), out, cap, &len), 0);
    return len;
}

static void send_b64(client_t *cl, const char *open, const char *data, const char *close)
{
    size_t n = strlen(data);
    char *b64 = core_malloc(auth_b64_len(n) + 1);
    auth_b64_encode(data, n, b64);
    char *msg = core_malloc(strlen(open) + strlen(b64) + strlen(close) + 1);
    sprintf(msg, "%s%s%s", open, b64, close);
    cl_send(cl, msg);
    core_free(msg);
    core_free(b64);
}

/*
 * A SCRAM-SHA-256 client (RFC 5802 §3, RFC 7677) without channel binding. Returns true on
 * <success/>, false on <failure/> (the failure's text stays in cl->got).
 */
static bool cl_scram_mech(client_t *cl, const char *user, const char *password, bool plus)
{
    /* -PLUS binds to this TLS connection with tls-exporter (RFC 9266, RFC 5802 §6). */
    const char *gs2 = plus ? "p=tls-exporter,," : "n,,";
    uint8_t cbind[128];
    size_t cbind_len = strlen(gs2);
    memcpy(cbind, gs2, cbind_len);
    if (plus) {
        size_t n = 0;
        assert_int_equal(net_conn_tls_exporter(cl->c, cbind + cbind_len, 64, &n), 0);
        cbind_len += n;
    }
    char cbind_b64[200];
    auth_b64_encode(cbind, cbind_len, cbind_b64);
    char bare[128];
    snprintf(bare, sizeof(bare), "n=%s,r=fyko+d2lbbFgONRv9qkxdawL", user);
    char first[160];
    snprintf(first, sizeof(first), "%s%s", gs2, bare);
    send_b64(cl,
             plus ? "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                    "mechanism='SCRAM-SHA-256-PLUS'>"
                  : "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>",
             first, "</auth>");
    const char *got = cl_expect(cl, "</challenge>");
    uint8_t sf[512];
    size_t sf_len = element_b64(got, "challenge", sf, sizeof(sf) - 1);
    sf[sf_len] = '\0';
    cl_clear(cl);
    /* r=<nonce>,s=<salt>,i=<iter> */
    char nonce[128], salt_b64[128];
    unsigned iter = 0;
    assert_int_equal(sscanf((char *)sf, "r=%127[^,],s=%127[^,],i=%u", nonce, salt_b64, &iter), 3);
    uint8_t salt[64];
    size_t salt_len;
    assert_int_equal(auth_b64_decode(salt_b64, strlen(salt_b64), salt, sizeof(salt), &salt_len), 0);
    uint8_t salted[32], ckey[32], stored[32], sig[32], proof[32];
    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                                       (int)iter, EVP_sha256(), 32, salted),
                     1);
    assert_int_equal(auth_hmac(AUTH_HASH_SHA256, salted, 32, "Client Key", 10, ckey), 0);
    assert_int_equal(auth_hash(AUTH_HASH_SHA256, ckey, 32, stored), 0);
    char without_proof[400];
    snprintf(without_proof, sizeof(without_proof), "c=%s,r=%s", cbind_b64, nonce);
    char authmsg[1400];
    snprintf(authmsg, sizeof(authmsg), "%s,%s,%s", bare, (char *)sf, without_proof);
    assert_int_equal(auth_hmac(AUTH_HASH_SHA256, stored, 32, authmsg, strlen(authmsg), sig), 0);
    for (int i = 0; i < 32; i++)
        proof[i] = ckey[i] ^ sig[i];
    char proof_b64[64];
    auth_b64_encode(proof, 32, proof_b64);
    char final[600];
    snprintf(final, sizeof(final), "%s,p=%s", without_proof, proof_b64);
    send_b64(cl, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>", final, "</response>");
    /* Either element ends with ">" after its name's end: wait for whichever comes. */
    for (;;) {
        uv_run(&cl->w->loop, UV_RUN_ONCE);
        if (cl->got != NULL && strstr(cl->got, "<success") != NULL &&
            strstr(cl->got, "</success>") != NULL)
            return true;
        if (cl->got != NULL && strstr(cl->got, "</failure>") != NULL)
            return false;
        if (cl->closed)
            fail_msg("closed during SCRAM: %s", cl->got ? cl->got : "");
    }
}

static bool cl_scram(client_t *cl, const char *user, const char *password)
{
    return cl_scram_mech(cl, user, password, false);
}

/* After SASL success: restart, bind the resource, answer the legacy session. */
static void cl_bind(client_t *cl, const char *resource, const char *want_jid)
{
    cl_clear(cl);
    cl_header(cl);
    const char *f = cl_expect(cl, "</features>");
    assert_non_null(strstr(f, "<bind"));
    assert_non_null(strstr(f, "<optional"));
    snprintf(cl->features, sizeof(cl->features), "%s", f);
    cl_clear(cl);
    char iq[256];
    snprintf(iq, sizeof(iq),
             "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>%s</resource></bind></iq>",
             resource);
    cl_send(cl, iq);
    const char *r = cl_expect(cl, "</iq>");
    assert_non_null(strstr(r, "result"));
    char jid[160];
    snprintf(jid, sizeof(jid), "<jid>%s</jid>", want_jid);
    assert_non_null(strstr(r, jid));
    cl_clear(cl);
}

/* ---- the world ---- */

static void world_init(world_t *w, const char *extra)
{
    uv_loop_init(&w->loop);
    w->log = (core_log_t){.level = CORE_LOG_WARN, .component = "test"};
    net_ctx_init(&w->net, &w->loop, &w->log);
    char text[1024];
    /* Wrong passwords are slowed down by default; tests that do not look at that are not. */
    const char *delay = strstr(extra, "auth_delay") == NULL ? "auth_delay = 0\n" : "";
    snprintf(text, sizeof(text),
             "[router]\nlisten = 127.0.0.1:0\n"
             "[c2s]\nname = c2s-1.localhost\ndomain = localhost\nlisten = 127.0.0.1:0\n"
             "listen_tls = 127.0.0.1:0\ncertificate = %s\nkey = %s\n%s%s",
             cert_pem, key_pem, delay, extra);
    static const core_cfg_section_t *const schema[] = {&router_cfg_section, &c2s_cfg_section};
    char err[256];
    if (core_cfg_load_text(&w->cfg, "test.conf", text, strlen(text), schema, 2, err, sizeof(err)) !=
        0)
        fail_msg("config: %s", err);
    assert_int_equal(router_new(&w->net, &w->log, &w->cfg, &w->r), 0);
    link_options_t so = {.name = "localhost"};
    w->sm = link_inproc_open(&w->loop, router_hub(w->r), &so, &sm_ops, w, &w->log);
    assert_non_null(w->sm);
    w->auth = auth_memory_new(&w->loop);
    auth_creds_t creds;
    assert_int_equal(auth_creds_from_password("pencil", 6, AUTH_ITER_MIN, &creds), 0);
    assert_int_equal(auth_memory_set(w->auth, "romeo", 5, "localhost", 9, &creds), 0);
    auth_creds_clear(&creds);
    w->opener = (link_opener_t){.ctx = w, .open = open_inproc};
    assert_int_equal(c2s_new(&w->net, &w->log, &w->cfg, &w->opener, w->auth, &w->c2s), 0);
    assert_int_equal(c2s_start(w->c2s), 0);
    char e[256];
    net_tls_client_opts_t co = {.no_verify = true};
    assert_int_equal(net_tls_ctx_new_client(&co, &w->cli_tls, e, sizeof(e)), 0);
    uv_timer_init(&w->loop, &w->tick);
    uv_timer_start(&w->tick, on_tick, 20, 20);
}

static void world_finish(world_t *w)
{
    c2s_stop(w->c2s);
    link_endpoint_close(w->sm);
    router_stop(w->r);
    auth_source_free(w->auth);
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    net_ctx_close(&w->net);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    c2s_free(w->c2s);
    router_free(w->r);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    net_tls_ctx_free(w->cli_tls);
    core_cfg_free(&w->cfg);
}

static bool got_end(void *arg)
{
    return ((world_t *)arg)->ends > 0;
}

/* ---- the tests ---- */

static void test_starttls_scram_bind_relay(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *cl = cl_new(&w, false);
    cl_starttls(cl);
    assert_true(cl_scram(cl, "romeo", "pencil"));
    cl_bind(cl, "orchard", "romeo@localhost/orchard");
    assert_int_equal(w.starts, 1);

    /* RFC 3921 session, answered here. */
    cl_send(cl,
            "<iq type='set' id='s1'><session "
            "xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    const char *r = cl_expect(cl, "\"s1\"");
    assert_non_null(strstr(r, "result"));
    cl_clear(cl);

    /* To the sm in an envelope with from stamped, back out of one to the client. */
    cl_send(cl,
            "<message to='juliet@localhost' id='m1'><body>hi &amp; bye</body>"
            "<x xmlns='urn:example:x'/></message>");
    r = cl_expect(cl, "</message>");
    assert_string_equal(w.last_from, "romeo@localhost/orchard");
    assert_non_null(strstr(r, "juliet@localhost"));
    assert_non_null(strstr(r, "hi &amp; bye"));
    assert_non_null(strstr(r, "urn:example:x"));
    assert_null(strstr(r, "<route"));
    cl_clear(cl);

    /* The client vanishes without closing its stream: the sm hears end. */
    net_conn_close(cl->c, false);
    run_until(&w, got_end, &w, "end");
    assert_int_equal(w.ends, 1);
    cl_free(cl);
    world_finish(&w);
}

static void test_encryption_required(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *cl = cl_new(&w, false);
    cl_expect(cl, "</features>");
    cl_clear(cl);
    send_b64(cl, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>",
             "romeo\0pencil", "</auth>");
    const char *r = cl_expect(cl, "</failure>");
    assert_non_null(strstr(r, "<encryption-required"));
    cl_clear(cl);
    /* Stanzas before authentication are refused at stream level (RFC 6120 §6.4.1). */
    cl_send(cl, "<message to='juliet@localhost'/>");
    r = cl_expect(cl, "not-authorized");
    run_until(&w, is_closed, cl, "close");
    assert_int_equal(w.starts, 0);
    cl_free(cl);
    world_finish(&w);
}

static void test_wrong_password_then_retry(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    /* Direct TLS (XEP-0368) this time. */
    client_t *cl = cl_new(&w, true);
    const char *f = cl_expect(cl, "</features>");
    assert_non_null(strstr(f, ">SCRAM-SHA-256<"));
    assert_null(strstr(f, "<starttls"));
    cl_clear(cl);
    assert_false(cl_scram(cl, "romeo", "wrong"));
    assert_non_null(strstr(cl->got, "<not-authorized"));
    cl_clear(cl);
    /* An unknown user fails the same way. */
    assert_false(cl_scram(cl, "nobody", "pencil"));
    assert_non_null(strstr(cl->got, "<not-authorized"));
    cl_clear(cl);
    assert_true(cl_scram(cl, "romeo", "pencil"));
    cl_bind(cl, "balcony", "romeo@localhost/balcony");
    cl_free(cl);
    world_finish(&w);
}

static void test_too_many_failures(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "max_auth_attempts = 2\n");
    client_t *cl = cl_new(&w, true);
    cl_expect(cl, "</features>");
    cl_clear(cl);
    assert_false(cl_scram(cl, "romeo", "wrong"));
    assert_null(strstr(cl->got, "policy-violation"));
    cl_clear(cl);
    assert_false(cl_scram(cl, "romeo", "wrong2"));
    cl_expect(cl, "<policy-violation");
    run_until(&w, is_closed, cl, "close");
    cl_free(cl);
    world_finish(&w);
}

static void test_conflict_replaces(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    client_t *b = cl_new(&w, true);
    cl_expect(b, "</features>");
    cl_clear(b);
    assert_true(cl_scram(b, "romeo", "pencil"));
    cl_bind(b, "orchard", "romeo@localhost/orchard");
    /* The old stream got <conflict/> and was closed; the sm heard its end. */
    cl_expect(a, "<conflict");
    run_until(&w, is_closed, a, "close");
    run_until(&w, got_end, &w, "end");
    assert_int_equal(w.starts, 2);
    /* The new one still works. */
    cl_send(b, "<message to='juliet@localhost' id='m2'><body>still here</body></message>");
    cl_expect(b, "still here");
    cl_free(a);
    cl_free(b);
    world_finish(&w);
}

static void test_invalid_from_and_kick(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    /* Our own bare JID as from is fine (RFC 6120 §8.1.2.1) and is stamped to the full one. */
    cl_send(a, "<message from='romeo@localhost' to='juliet@localhost'><body>b</body></message>");
    cl_expect(a, "</message>");
    assert_string_equal(w.last_from, "romeo@localhost/orchard");
    cl_clear(a);
    /* Someone else's is a stream error, and the sm hears end. */
    cl_send(a, "<message from='juliet@localhost/x' to='nurse@localhost'/>");
    cl_expect(a, "<invalid-from");
    run_until(&w, is_closed, a, "close");
    run_until(&w, got_end, &w, "end");
    assert_int_equal(w.ends, 1);

    /* kick: the sm closes a session with the stream error it names. */
    client_t *b = cl_new(&w, true);
    cl_expect(b, "</features>");
    cl_clear(b);
    assert_true(cl_scram(b, "romeo", "pencil"));
    cl_bind(b, "balcony", "romeo@localhost/balcony");
    int slot = -1;
    for (int i = 0; i < MAX_SIDS; i++) {
        if (strcmp(w.jids[i], "romeo@localhost/balcony") == 0 && w.sids[i][0] != '\0')
            slot = i;
    }
    assert_true(slot >= 0);
    xml_stanza_t *k = xml_stanza_new(SESSION_NS, "session");
    xml_node_set_attr(k, k->root, NULL, "action", "kick");
    xml_node_add_element(k, k->root, "urn:ietf:params:xml:ns:xmpp-streams", "reset");
    sm_send(&w, w.sids[slot], k, k->root);
    xml_stanza_unref(k);
    cl_expect(b, "<reset");
    run_until(&w, is_closed, b, "close");
    cl_free(a);
    cl_free(b);
    world_finish(&w);
}

static void test_scram_plus(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *cl = cl_new(&w, false);
    cl_starttls(cl);
    if (!cl_scram_mech(cl, "romeo", "pencil", true))
        fail_msg("PLUS failed: %s", cl->got);
    cl_bind(cl, "orchard", "romeo@localhost/orchard");
    cl_free(cl);
    world_finish(&w);
}

static void test_auth_timeout(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "auth_timeout = 200ms\n");
    client_t *cl = cl_new(&w, false);
    cl_expect(cl, "</features>");
    cl_expect(cl, "<connection-timeout");
    run_until(&w, is_closed, cl, "close");
    assert_int_equal(w.starts, 0);
    cl_free(cl);
    world_finish(&w);
}

/* ---- failed authentications slow down ---- */

static void cl_plain(client_t *cl, const char *user, const char *password)
{
    char data[128];
    int n = snprintf(data, sizeof(data), "%c%s%c%s", 0, user, 0, password);
    char b64[200];
    auth_b64_encode(data, (size_t)n, b64);
    char msg[300];
    snprintf(msg, sizeof(msg),
             "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", b64);
    cl_send(cl, msg);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay ? strstr(hay, needle) : NULL; p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

typedef struct count_wait {
    client_t *cl;
    const char *needle;
    size_t n;
} count_wait_t;

static bool has_count(void *arg)
{
    count_wait_t *q = arg;
    return q->cl->closed || count_of(q->cl->got, q->needle) >= q->n;
}

/* Waits for the nth needle in what cl got; returns the ms it took from start. */
static uint64_t cl_wait_nth(client_t *cl, const char *needle, size_t n, uint64_t start)
{
    count_wait_t q = {cl, needle, n};
    run_until(cl->w, has_count, &q, needle);
    if (cl->closed)
        fail_msg("closed waiting for %s: %s", needle, cl->got ? cl->got : "");
    return uv_now(&cl->w->loop) - start;
}

static bool has_held(void *arg)
{
    return ((world_t *)arg)->c2s->held != NULL;
}

static void test_auth_delay(void **state)
{
    (void)state;
    world_t w = {0};
    /* 100, 200, 400, 400 ms: the delay doubles with each failure, up to the maximum. */
    world_init(&w, "auth_delay = 100ms\nauth_delay_max = 400ms\nmax_auth_attempts = 10\n");
    client_t *other = cl_new(&w, true);
    cl_expect(other, "</features>");
    assert_true(cl_scram(other, "romeo", "pencil"));
    cl_bind(other, "orchard", "romeo@localhost/orchard");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    uv_update_time(&w.loop);
    uint64_t t0 = uv_now(&w.loop);
    cl_plain(a, "romeo", "wrong");
    assert_true(cl_wait_nth(a, "</failure>", 1, t0) >= 100);
    uv_update_time(&w.loop);
    t0 = uv_now(&w.loop);
    cl_plain(a, "nobody", "wrong"); /* an unknown account counts the same */
    assert_true(cl_wait_nth(a, "</failure>", 2, t0) >= 200);
    /* Two attempts at once: the second waits, unread, until the first is answered. */
    uv_update_time(&w.loop);
    t0 = uv_now(&w.loop);
    cl_plain(a, "romeo", "wrong");
    cl_plain(a, "romeo", "wrong");
    /* Meanwhile everyone else is served. */
    cl_send(other, "<message to='juliet@localhost' id='m9'><body>served</body></message>");
    assert_true(cl_wait_nth(other, "served", 1, t0) < 300);
    assert_true(cl_wait_nth(a, "</failure>", 3, t0) >= 400);
    assert_true(cl_wait_nth(a, "</failure>", 4, t0) >= 800);
    assert_int_equal(count_of(a->got, "not-authorized"), 4);
    assert_null(strstr(a->got, "stream:error"));
    /* A right password from the same address waits for the last failure's delay too. */
    cl_clear(a);
    client_t *b = cl_new(&w, true);
    cl_expect(b, "</features>");
    cl_clear(b);
    uv_update_time(&w.loop);
    t0 = uv_now(&w.loop);
    cl_plain(a, "romeo", "wrong");
    /* The failure must be counted before the success is checked: both are hashed on the
     * worker pool, in either order. */
    run_until(&w, has_held, &w, "the failure held back");
    cl_plain(b, "romeo", "pencil");
    assert_true(cl_wait_nth(b, "<success", 1, t0) >= 400);
    assert_true(cl_wait_nth(a, "</failure>", 1, t0) >= 400);
    cl_free(other);
    cl_free(a);
    cl_free(b);
    world_finish(&w);
}

/* ---- in-band registration (XEP-0077) ---- */

typedef struct iq_wait {
    client_t *cl;
    char id[40]; /* id="..." as the serialiser writes it */
} iq_wait_t;

static bool has_iq_answer(void *arg)
{
    iq_wait_t *q = arg;
    const char *at = q->cl->got != NULL ? strstr(q->cl->got, q->id) : NULL;
    return q->cl->closed ||
        (at != NULL && (strstr(at, "\"/>") == at + strlen(q->id) - 1 || strstr(at, "</iq>")));
}

/* Sends text and waits for the iq answering id; returns what arrived (until cl_clear). */
static const char *cl_iq(client_t *cl, const char *id, const char *text)
{
    iq_wait_t q = {.cl = cl};
    snprintf(q.id, sizeof(q.id), "id=\"%s\"", id);
    cl_clear(cl);
    cl_send(cl, text);
    run_until(cl->w, has_iq_answer, &q, id);
    if (cl->closed)
        fail_msg("closed while waiting for iq %s: %s", id, cl->got ? cl->got : "");
    return cl->got;
}

static const char *cl_register(client_t *cl, const char *id, const char *user, const char *pw)
{
    char iq[320];
    snprintf(iq, sizeof(iq),
             "<iq type='set' id='%s'><query xmlns='jabber:iq:register'><username>%s</username>"
             "<password>%s</password></query></iq>",
             id, user, pw);
    return cl_iq(cl, id, iq);
}

static client_t *cl_tls_features(world_t *w, bool want_register)
{
    client_t *cl = cl_new(w, true);
    const char *f = cl_expect(cl, "</features>");
    if (want_register)
        assert_non_null(strstr(f, "<register xmlns=\"http://jabber.org/features/iq-register\"/>"));
    else
        assert_null(strstr(f, "iq-register"));
    cl_clear(cl);
    return cl;
}

static void test_registration_off(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "");
    client_t *cl = cl_tls_features(&w, false);
    /* XEP-0077 §3.1: a host without in-band registration answers <service-unavailable/>. */
    const char *r =
        cl_iq(cl, "g1", "<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>");
    assert_non_null(strstr(r, "<service-unavailable"));
    assert_non_null(strstr(r, "code=\"503\""));
    r = cl_register(cl, "s1", "juliet", "pencil");
    assert_non_null(strstr(r, "<service-unavailable"));
    /* The stream goes on: an account logs in. */
    cl_clear(cl);
    assert_true(cl_scram(cl, "romeo", "pencil"));
    cl_free(cl);
    world_finish(&w);
}

static void test_registration(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "registration = yes\nregistration_per_ip = 2\n");
    /* In the clear: not offered, and refused (STARTTLS first). */
    client_t *p = cl_new(&w, false);
    assert_null(strstr(cl_expect(p, "</features>"), "iq-register"));
    const char *r = cl_register(p, "p1", "juliet", "pencil");
    assert_non_null(strstr(r, "type=\"modify\""));
    assert_non_null(strstr(r, "<not-authorized"));

    client_t *a = cl_tls_features(&w, true);
    r = cl_iq(a, "g1", "<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>");
    assert_non_null(strstr(r, "type=\"result\""));
    assert_non_null(strstr(r, "<instructions>"));
    assert_non_null(strstr(r, "<username/>"));
    assert_non_null(strstr(r, "<password/>"));
    r = cl_register(a, "s1", "Juliet", "pencil");
    assert_non_null(strstr(r, "<iq type=\"result\" id=\"s1\"/>"));
    /* §3.1.1: one account per stream. */
    assert_non_null(strstr(cl_register(a, "s2", "nurse", "pencil"), "<not-acceptable"));
    /* The new account (nodeprep'd) authenticates on the same stream. */
    cl_clear(a);
    assert_true(cl_scram(a, "juliet", "pencil"));
    cl_bind(a, "balcony", "juliet@localhost/balcony");

    client_t *b = cl_tls_features(&w, true);
    r = cl_register(b, "c1", "romeo", "other");
    assert_non_null(strstr(r, "<conflict"));
    assert_non_null(strstr(r, "code=\"409\""));
    assert_null(strstr(r, "other")); /* the request (its password) is not echoed */
    assert_non_null(strstr(cl_register(b, "c2", "a@b", "pencil"), "<not-acceptable"));
    assert_non_null(strstr(cl_register(b, "c3", "tybalt", ""), "<not-acceptable"));
    r = cl_iq(b, "c4",
              "<iq type='set' id='c4'><query xmlns='jabber:iq:register'><remove/></query></iq>");
    assert_non_null(strstr(r, "<unexpected-request"));
    r = cl_iq(b, "c5",
              "<iq type='set' id='c5'><query xmlns='jabber:iq:register'><remove/>"
              "<username>romeo</username></query></iq>");
    assert_non_null(strstr(r, "<bad-request"));
    assert_non_null(strstr(cl_register(b, "c6", "mercutio", "pencil"), "type=\"result\""));

    /* Two from 127.0.0.1 in the window: the third is refused (refusals above did not count). */
    client_t *c = cl_tls_features(&w, true);
    r = cl_register(c, "l1", "tybalt", "pencil");
    assert_non_null(strstr(r, "<resource-constraint"));
    assert_non_null(strstr(r, "type=\"wait\""));
    cl_free(p);
    cl_free(a);
    cl_free(b);
    cl_free(c);
    world_finish(&w);
}

/* ---- stream management (XEP-0198) and keepalive (XEP-0199) ---- */

/* The sid the sm stand-in has for a bound JID. */
static const char *sid_of(world_t *w, const char *jid)
{
    for (int i = 0; i < MAX_SIDS; i++) {
        if (w->sids[i][0] != '\0' && strcmp(w->jids[i], jid) == 0)
            return w->sids[i];
    }
    fail_msg("no session for %s", jid);
    return NULL;
}

/* The sm stand-in delivers a message to session sid. */
static void sm_message(world_t *w, const char *sid, const char *id, const char *body)
{
    xml_stanza_t *m = xml_stanza_new(XMLS_NS_CONTENT, "message");
    xml_node_set_attr(m, m->root, NULL, "from", "juliet@localhost/balcony");
    xml_node_set_attr(m, m->root, NULL, "to", "romeo@localhost/orchard");
    xml_node_set_attr(m, m->root, NULL, "id", id);
    xml_node_t *b = xml_node_add_element(m, m->root, XMLS_NS_CONTENT, "body");
    xml_node_add_text(m, b, body, strlen(body));
    sm_send(w, sid, m, m->root);
    xml_stanza_unref(m);
}

static bool never(void *arg)
{
    (void)arg;
    return false;
}

/* Runs the loop for about ms. */
static void run_for(world_t *w, uint64_t ms)
{
    uint64_t end = uv_now(&w->loop) + ms;
    while (uv_now(&w->loop) < end && !never(NULL))
        uv_run(&w->loop, UV_RUN_ONCE);
}

/* The value of the first name="..." after needle in s, into out. */
static void attr_after(const char *s, const char *needle, const char *name, char *out, size_t cap)
{
    const char *at = strstr(s, needle);
    assert_non_null(at);
    char pat[64];
    snprintf(pat, sizeof(pat), " %s=\"", name);
    const char *v = strstr(at, pat);
    assert_non_null(v);
    v += strlen(pat);
    const char *e = strchr(v, '"');
    assert_non_null(e);
    assert_true((size_t)(e - v) < cap);
    memcpy(out, v, (size_t)(e - v));
    out[e - v] = '\0';
}

/* Authenticated, restarted, features read: ready to bind or resume. */
static client_t *cl_authed(world_t *w)
{
    client_t *cl = cl_new(w, true);
    cl_expect(cl, "</features>");
    cl_clear(cl);
    assert_true(cl_scram(cl, "romeo", "pencil"));
    cl_clear(cl);
    cl_header(cl);
    const char *f = cl_expect(cl, "</features>");
    assert_non_null(strstr(f, "<sm xmlns=\"urn:xmpp:sm:3\"/>"));
    cl_clear(cl);
    return cl;
}

static void cl_resume(client_t *cl, const char *id, unsigned h)
{
    char text[256];
    snprintf(text, sizeof(text), "<resume xmlns='urn:xmpp:sm:3' previd='%s' h='%u'/>", id, h);
    cl_send(cl, text);
}

static void test_sm_ack_resume_conflict(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "sm_resume_timeout = 5s\n");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    assert_non_null(strstr(a->features, "<sm xmlns=\"urn:xmpp:sm:3\"/>"));
    assert_non_null(strstr(a->features, "<csi xmlns=\"urn:xmpp:csi:0\"/>"));
    /* The client's max (seconds) lowers ours. */
    cl_send(a, "<enable xmlns='urn:xmpp:sm:3' resume='true' max='2'/>");
    const char *r = cl_expect(a, "max=\"2\"");
    char id[128];
    attr_after(r, "<enabled", "id", id, sizeof(id));
    assert_non_null(strstr(r, "resume=\"true\""));
    cl_clear(a);
    cl_send(a, "<message to='juliet@localhost' id='m1'><body>one</body></message>");
    cl_expect(a, "</message>");
    cl_clear(a);
    /* §4: one stanza handled; an <a/> answers at once. */
    cl_send(a, "<r xmlns='urn:xmpp:sm:3'/>");
    cl_expect(a, "<a xmlns=\"urn:xmpp:sm:3\" h=\"1\"/>");
    cl_send(a, "<a xmlns='urn:xmpp:sm:3' h='1'/>");
    const char *sid = sid_of(&w, "romeo@localhost/orchard");
    char sid_copy[64];
    snprintf(sid_copy, sizeof(sid_copy), "%s", sid);

    /* The connection drops: the session stays, stanzas for it are kept. */
    net_conn_close(a->c, false);
    run_until(&w, is_closed, a, "close");
    sm_message(&w, sid_copy, "m2", "while away");
    run_for(&w, 100);
    assert_int_equal(w.ends, 0);

    /* §5: resumed on a new connection: what was not acknowledged comes again, in order. */
    client_t *b = cl_authed(&w);
    cl_resume(b, id, 1);
    r = cl_expect(b, "while away");
    assert_non_null(strstr(r, "<resumed"));
    assert_non_null(strstr(r, "h=\"1\""));
    assert_null(strstr(r, "id=\"m1\""));
    cl_clear(b);
    cl_send(b, "<message to='juliet@localhost' id='m3'><body>three</body></message>");
    cl_expect(b, "three");
    assert_string_equal(w.last_from, "romeo@localhost/orchard");
    assert_int_equal(w.starts, 1);
    assert_int_equal(w.ends, 0);

    /* Resumed again while b is still up: b gets <conflict/>, the session goes on. */
    client_t *c = cl_authed(&w);
    cl_resume(c, id, 1);
    cl_expect(c, "three");
    cl_expect(b, "<conflict");
    run_until(&w, is_closed, b, "close");
    assert_int_equal(w.ends, 0);

    /* §6: acknowledging more than was sent (m2 and the echo of m3 after the acked echo). */
    cl_clear(c);
    cl_send(c, "<a xmlns='urn:xmpp:sm:3' h='9'/>");
    r = cl_expect(c, "</stream:error>");
    assert_non_null(strstr(r, "<undefined-condition"));
    assert_non_null(strstr(r,
                           "<handled-count-too-high xmlns=\"urn:xmpp:sm:3\" h=\"9\" "
                           "send-count=\"3\"/>"));
    run_until(&w, is_closed, c, "close");
    run_until(&w, got_end, &w, "end");
    /* The session ended: the unacknowledged went back to the sm, after end. */
    run_for(&w, 100);
    assert_int_equal(w.undelivered, 2);
    assert_int_equal(w.ends_before_undelivered, 1);
    assert_string_equal(w.undelivered_ids[0], "m2");
    assert_string_equal(w.undelivered_ids[1], "m3");

    /* Once over, the id resumes nothing; the client may still bind. */
    client_t *d = cl_authed(&w);
    cl_resume(d, id, 1);
    cl_expect(d, "<item-not-found");
    /* §3: and no stream management before binding. */
    cl_send(d, "<enable xmlns='urn:xmpp:sm:3'/>");
    cl_expect(d, "<unexpected-request");
    cl_send(d,
            "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
            "<resource>orchard</resource></bind></iq>");
    cl_expect(d, "<jid>romeo@localhost/orchard</jid>");
    cl_free(a);
    cl_free(b);
    cl_free(c);
    cl_free(d);
    world_finish(&w);
}

static void test_sm_timeout_and_clean_close(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "sm_resume_timeout = 300ms\n");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    cl_send(a, "<enable xmlns='urn:xmpp:sm:3' resume='1'/>");
    cl_expect(a, "max=\"1\"");
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", sid_of(&w, "romeo@localhost/orchard"));
    sm_message(&w, sid, "t1", "first");
    cl_expect(a, "first");
    net_conn_close(a->c, false);
    run_until(&w, is_closed, a, "close");
    sm_message(&w, sid, "t2", "second");
    /* Not resumed in time: end, then both back to the sm. */
    run_until(&w, got_end, &w, "end");
    run_for(&w, 100);
    assert_int_equal(w.undelivered, 2);
    assert_string_equal(w.undelivered_ids[0], "t1");
    assert_string_equal(w.undelivered_ids[1], "t2");

    /* §7: a clean close ends the session at once; what was acknowledged stays delivered. */
    client_t *b = cl_new(&w, true);
    cl_expect(b, "</features>");
    cl_clear(b);
    assert_true(cl_scram(b, "romeo", "pencil"));
    cl_bind(b, "orchard", "romeo@localhost/orchard");
    cl_send(b, "<enable xmlns='urn:xmpp:sm:3' resume='true'/>");
    cl_expect(b, "<enabled");
    snprintf(sid, sizeof(sid), "%s", sid_of(&w, "romeo@localhost/orchard"));
    sm_message(&w, sid, "c1", "acked");
    cl_expect(b, "acked");
    sm_message(&w, sid, "c2", "not acked");
    cl_expect(b, "not acked");
    cl_send(b, "<a xmlns='urn:xmpp:sm:3' h='1'/></stream:stream>");
    run_until(&w, is_closed, b, "close");
    run_for(&w, 100);
    assert_int_equal(w.ends, 2);
    assert_int_equal(w.undelivered, 3);
    assert_string_equal(w.undelivered_ids[2], "c2");
    cl_free(a);
    cl_free(b);
    world_finish(&w);
}

static void test_keepalive_ping(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "ping_interval = 200ms\nping_timeout = 200ms\n");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    /* XEP-0199 §4.1: the server pings a quiet client; an answer keeps it. */
    const char *r = cl_expect(a, "<ping xmlns=\"urn:xmpp:ping\"/>");
    assert_non_null(strstr(r, "to=\"romeo@localhost/orchard\""));
    char id[64];
    attr_after(r, "<iq", "id", id, sizeof(id));
    char pong[160];
    snprintf(pong, sizeof(pong), "<iq type='result' id='%s' to='localhost'/>", id);
    cl_clear(a);
    cl_send(a, pong);
    run_for(&w, 300);
    assert_false(a->closed);
    assert_int_equal(w.ends, 0);
    /* The answer stayed in c2s: the sm stand-in would have echoed it. */
    assert_null(strstr(a->got != NULL ? a->got : "", "type=\"result\""));
    /* A client that stops answering is cut off, and its session ends. */
    cl_expect(a, "<ping");
    run_until(&w, is_closed, a, "close");
    run_until(&w, got_end, &w, "end");
    cl_free(a);
    world_finish(&w);
}

/* ---- connections per source, and a client that stops reading ---- */

static const uint8_t localhost_key[4] = {127, 0, 0, 1};

static bool no_sources(void *arg)
{
    return c2s_srclimit_sources(&((world_t *)arg)->c2s->per_source) == 0;
}

static bool one_left(void *arg)
{
    return c2s_srclimit_count(&((world_t *)arg)->c2s->per_source, localhost_key, 4) == 1;
}

static void test_connections_per_source(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "max_connections_per_ip = 2\n");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    client_t *b = cl_new(&w, true);
    cl_expect(b, "</features>");
    assert_int_equal(c2s_srclimit_count(&w.c2s->per_source, localhost_key, 4), 2);
    /* One more: the stream error of RFC 6120 §13.12 on the STARTTLS port ... */
    client_t *c = cl_new(&w, false);
    const char *r = cl_expect(c, "</stream:error>");
    assert_non_null(strstr(r, "<policy-violation"));
    run_until(&w, is_closed, c, "close");
    /* ... and no TLS at all on the direct TLS port. */
    client_t *d = cl_new(&w, true);
    run_until(&w, is_closed, d, "close");
    assert_null(d->got != NULL ? strstr(d->got, "<stream") : NULL);
    /* The connections admitted go on; a close makes room. */
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    net_conn_close(b->c, false);
    run_until(&w, is_closed, b, "close");
    run_until(&w, one_left, &w, "the close seen by c2s");
    client_t *e = cl_new(&w, true);
    cl_expect(e, "</features>");
    cl_free(a);
    cl_free(b);
    cl_free(c);
    cl_free(d);
    cl_free(e);
    /* Every close is counted back: a source with no connection is not remembered. */
    run_until(&w, no_sources, &w, "sources forgotten");
    world_finish(&w);
}

static void test_slow_reader(void **state)
{
    (void)state;
    world_t w = {0};
    world_init(&w, "max_output_queue = 64K\nmax_stanza_size = 16K\n");
    client_t *a = cl_new(&w, true);
    cl_expect(a, "</features>");
    cl_clear(a);
    assert_true(cl_scram(a, "romeo", "pencil"));
    cl_bind(a, "orchard", "romeo@localhost/orchard");
    char sid[64];
    snprintf(sid, sizeof(sid), "%s", w.sids[0]);
    /* The client reads nothing more; the sm stand-in keeps sending to it. */
    net_conn_read_stop(a->c);
    static char body[8000];
    memset(body, 'q', sizeof(body) - 1);
    c2s_conn_t *c = c2s_conn_by_sid(w.c2s, sid);
    assert_non_null(c);
    int i = 0;
    for (; i < 4096 && !c->s->error_sent; i++) {
        sm_message(&w, sid, "q", body);
        uv_run(&w.loop, UV_RUN_NOWAIT);
    }
    assert_true(c->s->error_sent);
    /* Far less than was sent waits for it: the limit, and what the kernel holds. */
    assert_true(i > 8);
    assert_true(net_conn_queued(c->s->conn) < 70 * 1024);
    /* Reading again, it learns why, past its limit; then the stream closes, the session
     * ends. */
    net_conn_read_start(a->c);
    const char *r = cl_expect(a, "</stream:error>");
    assert_non_null(strstr(r, "<policy-violation"));
    run_until(&w, is_closed, a, "close");
    run_until(&w, got_end, &w, "end");
    cl_free(a);
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

static int make_cert(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/parley-c2s-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cert_pem, sizeof(cert_pem), "%s/cert.pem", dir);
    snprintf(key_pem, sizeof(key_pem), "%s/key.pem", dir);
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    X509_set_issuer_name(x, n);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    write_pem(cert_pem, NULL, x);
    write_pem(key_pem, key, NULL);
    X509_free(x);
    EVP_PKEY_free(key);
    return 0;
}

static int remove_cert(void **state)
{
    (void)state;
    unlink(cert_pem);
    unlink(key_pem);
    rmdir(dir);
    return 0;
}

int main(void)
{
    net_tls_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starttls_scram_bind_relay),
        cmocka_unit_test(test_encryption_required),
        cmocka_unit_test(test_wrong_password_then_retry),
        cmocka_unit_test(test_too_many_failures),
        cmocka_unit_test(test_conflict_replaces),
        cmocka_unit_test(test_invalid_from_and_kick),
        cmocka_unit_test(test_scram_plus),
        cmocka_unit_test(test_auth_timeout),
        cmocka_unit_test(test_auth_delay),
        cmocka_unit_test(test_connections_per_source),
        cmocka_unit_test(test_slow_reader),
        cmocka_unit_test(test_registration_off),
        cmocka_unit_test(test_registration),
        cmocka_unit_test(test_sm_ack_resume_conflict),
        cmocka_unit_test(test_sm_timeout_and_clean_close),
        cmocka_unit_test(test_keepalive_ping),
    };
    return cmocka_run_group_tests(tests, make_cert, remove_cert);
}
