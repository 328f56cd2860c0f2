/* SPDX-License-Identifier: MIT */
/* Failed authentications slow down: a delay that doubles with the failures of an account and
 * of a source address, and one timer that sends the SASL answers held back meanwhile. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

/* An account's failures are counted under 8 bytes of the SHA-256 of its bare JID. */
#define ACCOUNT_KEY_LEN 8
/* Enough doublings for any configurable delay to reach its maximum. */
#define SLOTS_MAX 32

/*
 * The schedule. Failure n (1-based) of a source or an account within auth_failure_window
 * waits base * 2^(n-1), at most max; the higher of the two counts decides. Every answer
 * about that source or account waits until the last failure's delay has passed, a success
 * included: an attacker who gave up on a held failure and asked again on a new connection
 * would otherwise learn at once that a guess was wrong. So an account under attack logs in
 * late (at most max), never not at all.
 *
 * A success forgets the account's failures (whoever knew the password ended them), not the
 * source's: a source that fails against many accounts and logs into one of its own keeps
 * its count, which only the window wears down. An unknown account counts like a wrong
 * password (SASL fails both the same way, and both are counted under the name tried), so
 * the delays tell no one which accounts exist.
 *
 * Memory: at most C2S_AUTH_KEYS_MAX sources and as many accounts, each forgotten a window
 * after its last failure, the idlest first when the map is full.
 */
uint64_t c2s_authdelay_ms(uint64_t base_ms, uint64_t max_ms, unsigned n)
{
    if (n == 0 || base_ms == 0)
        return 0;
    uint64_t d = base_ms;
    for (unsigned i = 1; i < n && d < max_ms; i++)
        d *= 2;
    return d < max_ms ? d : max_ms;
}

unsigned c2s_authdelay_slots(uint64_t base_ms, uint64_t max_ms)
{
    unsigned n = 1;
    while (n < SLOTS_MAX && c2s_authdelay_ms(base_ms, max_ms, n) < max_ms)
        n++;
    return n;
}

static void on_hold_timer(uv_timer_t *t);

void c2s_authdelay_init(c2s_t *c2s)
{
    const c2s_config_t *cfg = c2s->cfg;
    unsigned slots = c2s_authdelay_slots(cfg->auth_delay_ms, cfg->auth_delay_max_ms);
    c2s_ratelimit_init(&c2s->auth_fail_src, slots, cfg->auth_failure_window_ms, C2S_AUTH_KEYS_MAX);
    c2s_ratelimit_init(&c2s->auth_fail_acct, slots, cfg->auth_failure_window_ms, C2S_AUTH_KEYS_MAX);
    uv_timer_init(c2s->net->loop, &c2s->hold_timer);
    /* Running only while an answer is held: then it is what the loop waits for. */
    c2s->hold_timer.data = c2s;
}

void c2s_authdelay_stop(c2s_t *c2s)
{
    if (!uv_is_closing((uv_handle_t *)&c2s->hold_timer))
        uv_close((uv_handle_t *)&c2s->hold_timer, NULL);
}

void c2s_authdelay_free(c2s_t *c2s)
{
    c2s_ratelimit_free(&c2s->auth_fail_src);
    c2s_ratelimit_free(&c2s->auth_fail_acct);
}

static void account_key(const jid_t *account, uint8_t *key)
{
    uint8_t md[32];
    auth_hash(AUTH_HASH_SHA256, account->full, account->bare_len, md);
    memcpy(key, md, ACCOUNT_KEY_LEN);
}

uint64_t c2s_authdelay_failed(c2s_conn_t *c, const jid_t *account)
{
    c2s_t *c2s = c->c2s;
    if (c2s->cfg->auth_delay_ms == 0)
        return 0;
    uint64_t now = uv_now(c2s->net->loop);
    unsigned n = c2s_ratelimit_note(&c2s->auth_fail_src, c->src_key, c->src_len, now);
    if (account != NULL) {
        uint8_t key[ACCOUNT_KEY_LEN];
        account_key(account, key);
        unsigned m = c2s_ratelimit_note(&c2s->auth_fail_acct, key, sizeof(key), now);
        n = m > n ? m : n;
    }
    return c2s_authdelay_ms(c2s->cfg->auth_delay_ms, c2s->cfg->auth_delay_max_ms, n);
}

/* When the last failure counted under key has waited its delay (0: none counted). */
static uint64_t not_before(c2s_t *c2s, c2s_ratelimit_t *rl, const uint8_t *key, size_t len,
                           uint64_t now)
{
    uint64_t last = 0;
    unsigned n = c2s_ratelimit_count(rl, key, len, now, &last);
    if (n == 0)
        return 0;
    return last + c2s_authdelay_ms(c2s->cfg->auth_delay_ms, c2s->cfg->auth_delay_max_ms, n);
}

uint64_t c2s_authdelay_pending(c2s_conn_t *c, const jid_t *account)
{
    c2s_t *c2s = c->c2s;
    if (c2s->cfg->auth_delay_ms == 0)
        return 0;
    uint64_t now = uv_now(c2s->net->loop);
    uint64_t t = not_before(c2s, &c2s->auth_fail_src, c->src_key, c->src_len, now);
    if (account != NULL) {
        uint8_t key[ACCOUNT_KEY_LEN];
        account_key(account, key);
        uint64_t a = not_before(c2s, &c2s->auth_fail_acct, key, sizeof(key), now);
        t = a > t ? a : t;
    }
    return t > now ? t - now : 0;
}

void c2s_authdelay_succeeded(c2s_conn_t *c, const jid_t *account)
{
    uint8_t key[ACCOUNT_KEY_LEN];
    account_key(account, key);
    c2s_ratelimit_forget(&c->c2s->auth_fail_acct, key, sizeof(key));
}

/* Runs the timer for the earliest answer held (the list's first), or stops it. */
static void arm(c2s_t *c2s)
{
    if (c2s->stopping)
        return;
    if (c2s->held == NULL) {
        uv_timer_stop(&c2s->hold_timer);
        return;
    }
    uint64_t now = uv_now(c2s->net->loop);
    uint64_t due = c2s->held->due;
    uv_timer_start(&c2s->hold_timer, on_hold_timer, due > now ? due - now : 0, 0);
}

/*
 * Keeps the list sorted by due time. A new answer is usually due last (the delays of a
 * source or an account only grow while failures come), so the walk starts at the end.
 */
static void insert_hold(c2s_t *c2s, c2s_hold_t *h)
{
    c2s_hold_t *after = c2s->held_last;
    while (after != NULL && after->due > h->due)
        after = after->prev;
    h->prev = after;
    h->next = after != NULL ? after->next : c2s->held;
    if (h->next != NULL)
        h->next->prev = h;
    else
        c2s->held_last = h;
    if (after != NULL)
        after->next = h;
    else
        c2s->held = h;
}

static void unlink_hold(c2s_t *c2s, c2s_hold_t *h)
{
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        c2s->held = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    else
        c2s->held_last = h->prev;
    h->prev = h->next = NULL;
    h->conn->hold = NULL;
}

/*
 * RFC 6120 §6.4.5: the client may retry only after our <failure/>. Until the answer goes
 * out the stream reads nothing, so what the client sends meanwhile waits, in order, and is
 * handled after the answer: a protocol error would punish clients that pipeline.
 */
void c2s_authdelay_hold(c2s_conn_t *c, uint64_t ms, sasl_error_t err, const uint8_t *out,
                        size_t out_len)
{
    c2s_t *c2s = c->c2s;
    assert(c->hold == NULL);
    c2s_hold_t *h = core_calloc(1, sizeof(*h));
    h->conn = c;
    h->due = uv_now(c2s->net->loop) + ms;
    h->err = err;
    h->out = out;
    h->out_len = out_len;
    insert_hold(c2s, h);
    c->hold = h;
    stream_pause_reading(c->s, true);
    core_log(c2s->log, CORE_LOG_DEBUG, c2s_conn_id(c), "SASL %s held for %llu ms",
             err == SASL_ERR_NONE ? "success" : "failure", (unsigned long long)ms);
    arm(c2s);
}

void c2s_authdelay_cancel(c2s_conn_t *c)
{
    c2s_hold_t *h = c->hold;
    if (h == NULL)
        return;
    unlink_hold(c->c2s, h);
    core_free(h);
    arm(c->c2s);
}

static void on_hold_timer(uv_timer_t *t)
{
    c2s_t *c2s = t->data;
    uint64_t now = uv_now(c2s->net->loop);
    /*
     * One at a time from the front: answering may close a connection (the attempt limit) or
     * hold a new answer for it, and either changes the list; the next is looked up afresh.
     */
    while (c2s->held != NULL && c2s->held->due <= now && !c2s->stopping) {
        c2s_hold_t *h = c2s->held;
        c2s_conn_t *c = h->conn;
        unlink_hold(c2s, h);
        c2s_sasl_release(c, h);
        core_free(h);
    }
    arm(c2s);
}
