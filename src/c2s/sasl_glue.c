/* SPDX-License-Identifier: MIT */
/* SASL negotiation (RFC 6120 §6) over src/sasl: base64 on the wire, lookups, hashing off-loop. */
#include "c2s/internal.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

static void run_step(c2s_conn_t *c, const uint8_t *in, size_t len);

/*
 * RFC 6120 §6.4: one exchange at a time. While a lookup or hash is in flight, or an answer
 * is held back (authdelay.c), the stream reads nothing: what the client sends meanwhile
 * waits, in order, for our answer.
 */
static void read_later(c2s_conn_t *c)
{
    if (c->s != NULL)
        stream_pause_reading(c->s, true);
}

static void read_again(c2s_conn_t *c)
{
    if (c->s != NULL && !c->auth_busy && c->hold == NULL)
        stream_pause_reading(c->s, false);
}

static void send_sasl(c2s_conn_t *c, const char *name, const uint8_t *data, size_t len, bool b64)
{
    xml_stanza_t *st = xml_stanza_new(SASL_NS, name);
    if (b64) {
        core_buf_t b = {0};
        sasl_b64_encode(data, len, &b);
        xml_node_add_text(st, st->root, b.data, b.len);
        core_buf_release(&b);
    }
    c2s_conn_send(c, st);
    xml_stanza_unref(st);
}

static void send_failure(c2s_conn_t *c, sasl_error_t e)
{
    xml_stanza_t *st = xml_stanza_new(SASL_NS, "failure");
    xml_node_add_element(st, st->root, SASL_NS, sasl_error_name(e));
    c2s_conn_send(c, st);
    xml_stanza_unref(st);
}

/* A failed attempt's answer: RFC 6120 §6.4.5 lets the client retry, up to our limit. */
static void answer_failure(c2s_conn_t *c, sasl_error_t e)
{
    send_failure(c, e);
    if (e != SASL_ERR_ABORTED && ++c->auth_failures >= c->c2s->cfg->max_auth_attempts &&
        c->s != NULL)
        stream_error(c->s, CORE_STREAM_ERR_POLICY_VIOLATION, "too many failed authentications");
}

/*
 * Whether a failure answers a guess: credentials were checked (a wrong password, an unknown
 * account, which SASL does not tell apart, or what only the right password reveals). The
 * others test nothing: the client's own <abort/>, a mechanism, an encoding or an authzid we
 * refuse before any check, and our own trouble (storage, the worker pool).
 */
static bool guessed(sasl_error_t e)
{
    switch (e) {
    case SASL_ERR_ABORTED:
    case SASL_ERR_INCORRECT_ENCODING:
    case SASL_ERR_INVALID_AUTHZID:
    case SASL_ERR_INVALID_MECHANISM:
    case SASL_ERR_MALFORMED_REQUEST:
    case SASL_ERR_TEMPORARY_AUTH_FAILURE:
        return false;
    default:
        return true;
    }
}

/* Failures that answer a guess slow down (authdelay.c). */
static void attempt_failed(c2s_conn_t *c, sasl_error_t e)
{
    uint64_t ms = 0;
    if (guessed(e))
        ms = c2s_authdelay_failed(c, c->sasl != NULL ? sasl_server_jid(c->sasl) : NULL);
    sasl_server_free(c->sasl);
    c->sasl = NULL;
    if (ms > 0 && c->s != NULL)
        c2s_authdelay_hold(c, ms, e, NULL, 0);
    else
        answer_failure(c, e);
}

static void answer_success(c2s_conn_t *c, const uint8_t *out, size_t len)
{
    c2s_authdelay_succeeded(c, sasl_server_jid(c->sasl));
    jid_clear(&c->jid);
    jid_copy(&c->jid, sasl_server_jid(c->sasl));
    core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "%s authenticated with %s", c->jid.full,
             sasl_server_mech(c->sasl));
    /* RFC 6120 §6.3.10: additional data with success, else an empty element. */
    send_sasl(c, "success", out, len, len > 0);
    sasl_server_free(c->sasl);
    c->sasl = NULL;
    c->state = C2S_ST_AUTHED;
    /* RFC 6120 §6.4.6: the client restarts the stream; our parser starts afresh too. */
    stream_restart(c->s, true);
}

/* A success waits for the failures of its source and account (authdelay.c). */
static void succeeded(c2s_conn_t *c, const uint8_t *out, size_t len)
{
    uint64_t ms = c2s_authdelay_pending(c, sasl_server_jid(c->sasl));
    if (ms > 0)
        c2s_authdelay_hold(c, ms, SASL_ERR_NONE, out, len);
    else
        answer_success(c, out, len);
}

void c2s_sasl_release(c2s_conn_t *c, const c2s_hold_t *h)
{
    if (c->s == NULL || c->s->closing)
        return;
    if (h->err == SASL_ERR_NONE)
        answer_success(c, h->out, h->out_len);
    else
        answer_failure(c, h->err);
    /* What the client sent meanwhile is handled now, in order. */
    read_again(c);
}

static void on_creds(void *arg, int status, const auth_creds_t *creds)
{
    c2s_conn_t *c = arg;
    c->auth_req = NULL;
    c->auth_busy = false;
    if (c->gone) {
        c2s_conn_work_done(c);
        return;
    }
    if (sasl_server_set_creds(c->sasl, status, creds) == 0)
        run_step(c, NULL, 0);
    read_again(c);
}

static void work_cb(uv_work_t *w)
{
    c2s_conn_t *c = w->data;
    sasl_server_work(c->sasl);
}

static void after_work_cb(uv_work_t *w, int status)
{
    c2s_conn_t *c = w->data;
    c->auth_busy = false;
    if (c->gone) {
        c2s_conn_work_done(c);
        return;
    }
    if (status < 0)
        attempt_failed(c, SASL_ERR_TEMPORARY_AUTH_FAILURE);
    else
        run_step(c, NULL, 0);
    read_again(c);
}

static void run_step(c2s_conn_t *c, const uint8_t *in, size_t len)
{
    const uint8_t *out = NULL;
    size_t out_len = 0;
    sasl_result_t r = sasl_server_step(c->sasl, in, len, &out, &out_len);
    switch (r) {
    case SASL_CONTINUE:
        send_sasl(c, "challenge", out, out_len, true);
        return;
    case SASL_NEED_CREDS: {
        const jid_t *j = sasl_server_jid(c->sasl);
        c->auth_busy = true;
        int rc = auth_source_lookup(c->c2s->auth, j->full, j->node_len, jid_domain_ptr(j),
                                    j->domain_len, on_creds, c, &c->auth_req);
        if (rc < 0) {
            c->auth_busy = false;
            sasl_server_set_creds(c->sasl, rc, NULL);
            run_step(c, NULL, 0);
        } else {
            read_later(c);
        }
        return;
    }
    case SASL_NEED_WORK:
        c->auth_busy = true;
        c->work.data = c;
        if (uv_queue_work(c->c2s->net->loop, &c->work, work_cb, after_work_cb) < 0) {
            c->auth_busy = false;
            attempt_failed(c, SASL_ERR_TEMPORARY_AUTH_FAILURE);
        } else {
            read_later(c);
        }
        return;
    case SASL_SUCCESS:
        succeeded(c, out, out_len);
        return;
    case SASL_FAILURE:
        core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "authentication failed: %s",
                 sasl_server_reason(c->sasl));
        attempt_failed(c, sasl_server_error(c->sasl));
        return;
    }
}

/* Decodes the element's base64 text and steps; "" is no data, "=" an empty message. */
static void step_with(c2s_conn_t *c, const xml_node_t *n)
{
    size_t tlen = 0;
    const char *text = xml_node_text(n, &tlen);
    uint8_t *buf = core_malloc(SASL_MSG_MAX);
    size_t len = 0;
    int rc = text != NULL && tlen > 0 ? sasl_b64_decode(text, tlen, buf, SASL_MSG_MAX, &len) : 0;
    if (rc < 0)
        attempt_failed(c, rc == -EINVAL ? SASL_ERR_INCORRECT_ENCODING : SASL_ERR_MALFORMED_REQUEST);
    else
        run_step(c, len > 0 ? buf : NULL, len);
    OPENSSL_cleanse(buf, SASL_MSG_MAX);
    core_free(buf);
}

static bool offered(c2s_conn_t *c, const char *mech)
{
    c2s_cb_fill(c);
    const char *mechs[SASL_MECH_COUNT];
    size_t n =
        sasl_mechs_offer(c->tls, c->cb_known ? sasl_cb_mask(c->cb) : 0, mechs, SASL_MECH_COUNT);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(mechs[i], mech) == 0)
            return true;
    }
    return false;
}

static void start_auth(c2s_conn_t *c, const xml_node_t *n)
{
    c2s_t *c2s = c->c2s;
    const char *mech = xml_node_attr(n, "mechanism");
    sasl_server_free(c->sasl);
    c->sasl = NULL;
    /* RFC 6120 §5.3.1 / §6.4.1: with TLS required, or PLAIN in the clear, nothing goes. */
    if (!c->tls && (c2s->cfg->require_tls || (mech != NULL && strcmp(mech, "PLAIN") == 0))) {
        send_failure(c, SASL_ERR_ENCRYPTION_REQUIRED);
        return;
    }
    if (mech == NULL || !offered(c, mech)) {
        attempt_failed(c, SASL_ERR_INVALID_MECHANISM);
        return;
    }
    bool plus_offered = c->cb_known && sasl_cb_mask(c->cb) != 0;
    size_t mlen = strlen(mech);
    /* Only a -PLUS mechanism reads the binding data (RFC 5802 §6); the others need to know
     * only whether it was offered, for the downgrade check. */
    bool plus = mlen > 5 && strcmp(mech + mlen - 5, "-PLUS") == 0;
    sasl_params_t p = {
        .domain = c2s->cfg->domain,
        .domain_len = strlen(c2s->cfg->domain),
        .cb = plus && c2s_cb_data(c) ? c->cb : NULL,
        .plus_offered = plus_offered,
        /* The same salt for an unknown name every time: a salt tells nobody who exists. */
        .mock_key = c2s->mock_key,
        .mock_key_len = sizeof(c2s->mock_key),
    };
    if (sasl_server_new(mech, mlen, &p, &c->sasl) < 0) {
        attempt_failed(c, SASL_ERR_INVALID_MECHANISM);
        return;
    }
    step_with(c, n);
}

void c2s_sasl_element(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *n = st->root;
    if (c->auth_busy) {
        /* RFC 6120 §6.4: one exchange at a time; the client must wait for our answer. */
        stream_error(c->s, CORE_STREAM_ERR_POLICY_VIOLATION, "SASL message while busy");
        return;
    }
    if (xml_node_is(n, SASL_NS, "auth")) {
        start_auth(c, n);
    } else if (xml_node_is(n, SASL_NS, "response") && c->sasl != NULL) {
        step_with(c, n);
    } else if (xml_node_is(n, SASL_NS, "abort")) {
        attempt_failed(c, SASL_ERR_ABORTED);
    } else {
        send_failure(c, SASL_ERR_MALFORMED_REQUEST);
    }
}

void c2s_sasl_cancel(c2s_conn_t *c)
{
    c2s_authdelay_cancel(c);
    if (c->auth_req != NULL) {
        auth_source_cancel(c->c2s->auth, c->auth_req);
        c->auth_req = NULL;
        c->auth_busy = false;
    }
}
