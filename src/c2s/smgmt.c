/* SPDX-License-Identifier: MIT */
/* Stream management (XEP-0198): enabling, acks, and sessions that outlive their connection. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stddef.h>
#include <string.h>

/* §4 leaves the rate of <r/> to us: one once this many stanzas went out since the last. */
#define SM_REQUEST_EVERY 5
/* How long an ended session waits for the sm's ended (docs/link-protocol.md). */
#define SM_ENDING_MS 60000
/* Random bytes of an SM-ID after the sid: 144 bits, 24 characters of base64url. */
#define SM_ID_RANDOM 18

typedef enum sm_state {
    SM_ATTACHED = 0, /* owned by its connection */
    SM_DETACHED, /* the connection dropped: in c2s->sm_detached, waiting to be resumed */
    SM_ENDING, /* told end: in c2s->sm_ending until the sm's ended */
} sm_state_t;

struct c2s_smgmt {
    c2s_smq_t q;
    sm_state_t state;
    bool resume; /* resumption was enabled: id names the session */
    bool r_out; /* an <r/> is outstanding */
    unsigned since_r; /* stanzas written since the last <r/> */
    uint64_t max_ms; /* how long a dropped connection waits (§3 max) */
    char id[96]; /* the SM-ID, "<sid>.<random>"; "" without resumption */
    bool sm_keeps; /* the sm answered 'managed': it keeps copies of the messages it routes */
    size_t skip; /* messages CSI held at that answer: routed before it, not copied */
    uint32_t reported; /* the last count of acknowledged messages told to the sm */
    /* Without a connection (detached or ending), the c2s owns the record. */
    char sid[40];
    jid_t jid; /* the full JID while detached */
    uint64_t deadline; /* loop time */
    c2s_smgmt_t *next;
    c2s_smgmt_t *prev;
};

static_assert(sizeof(((c2s_smgmt_t *)0)->sid) == sizeof(((c2s_conn_t *)0)->sid),
              "a record keeps its connection's sid");

static void rearm(c2s_t *c2s);

/*
 * Queues st for the client's acknowledgement. A message the sm routed after its 'managed' is
 * counted: the sm keeps a copy of it until we report it acknowledged (docs/link-protocol.md).
 * The sm's messages reach the queue in the order it routed them (CSI holds messages in order).
 */
static void push(c2s_smgmt_t *m, xml_stanza_t *st, uint64_t at, bool sent)
{
    c2s_unacked_t *e = c2s_smq_push(&m->q, st, at, sent);
    if (!m->sm_keeps || xml_stanza_kind(st) != XMLS_KIND_MESSAGE)
        return;
    if (m->skip > 0)
        m->skip--;
    else
        e->counted = true;
}

/* Tells the sm how many of its messages the client acknowledged, if that changed. */
static void report(c2s_t *c2s, c2s_smgmt_t *m, const char *sid, const char *user)
{
    if (m->q.counted_acked == m->reported)
        return;
    char count[16];
    snprintf(count, sizeof(count), "%u", (unsigned)m->q.counted_acked);
    if (c2s_relay_control_attr(c2s, sid, user, "acked", "count", count) == 0)
        m->reported = m->q.counted_acked;
}

/* ---- the lists of records, kept sorted by deadline ---- */

static void list_remove(c2s_smlist_t *l, c2s_smgmt_t *m)
{
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        l->head = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    else
        l->tail = m->prev;
    m->next = m->prev = NULL;
}

/* Inserts from the tail: most records of one list have the same timeout, so this is O(1). */
static void list_insert(c2s_smlist_t *l, c2s_smgmt_t *m)
{
    c2s_smgmt_t *after = l->tail;
    while (after != NULL && after->deadline > m->deadline)
        after = after->prev;
    m->prev = after;
    m->next = after != NULL ? after->next : l->head;
    if (m->next != NULL)
        m->next->prev = m;
    else
        l->tail = m;
    if (after != NULL)
        after->next = m;
    else
        l->head = m;
}

static c2s_smlist_t *list_of(c2s_t *c2s, const c2s_smgmt_t *m)
{
    return m->state == SM_DETACHED ? &c2s->sm_detached : &c2s->sm_ending;
}

void c2s_smgmt_free(c2s_smgmt_t *m)
{
    if (m == NULL)
        return;
    c2s_smq_clear(&m->q);
    jid_clear(&m->jid);
    core_free(m);
}

/* Forgets a record without a connection. */
static void record_drop(c2s_t *c2s, c2s_smgmt_t *m)
{
    list_remove(list_of(c2s, m), m);
    if (core_map_get(&c2s->sm_records, m->sid, strlen(m->sid)) == m)
        core_map_del(&c2s->sm_records, m->sid, strlen(m->sid));
    c2s_smgmt_free(m);
}

/* ---- the end of a session ---- */

/* RFC 6121 §8.5.3.2: what the sm does something with for a resource that is gone. */
static bool returnable(const xml_stanza_t *st)
{
    const char *type = xml_stanza_type(st);
    switch (xml_stanza_kind(st)) {
    case XMLS_KIND_MESSAGE:
        return type == NULL || strcmp(type, "error") != 0;
    case XMLS_KIND_IQ:
        return type != NULL && (strcmp(type, "get") == 0 || strcmp(type, "set") == 0);
    default:
        return false;
    }
}

/*
 * Tells the sm end, hands back what the client did not acknowledge (oldest first, after end:
 * the link keeps the order), and keeps the sid until the sm's ended, so that a stanza it
 * routed meanwhile comes back too (docs/link-protocol.md). sid and jid may point into m.
 */
static void finish(c2s_t *c2s, c2s_smgmt_t *m, const char *sid, const char *jid)
{
    if (m->state == SM_DETACHED)
        list_remove(&c2s->sm_detached, m);
    int rc = c2s_relay_control_sid(c2s, sid, "end", jid);
    size_t returned = 0, lost = 0;
    while (m->q.len > 0) {
        uint64_t at = 0;
        xml_stanza_t *st = c2s_smq_shift(&m->q, &at);
        if (returnable(st)) {
            if (rc == 0 && c2s_relay_undelivered(c2s, sid, st, at) == 0)
                returned++;
            else
                lost++;
        }
        xml_stanza_unref(st);
    }
    c2s_smq_clear(&m->q);
    if (lost > 0)
        core_log(c2s->log, CORE_LOG_WARN, 0, "session %s: %zu unacknowledged stanzas lost", sid,
                 lost);
    else
        core_log(c2s->log, CORE_LOG_INFO, 0, "session %s ended: %zu stanzas handed back", sid,
                 returned);
    if (m->sid != sid)
        snprintf(m->sid, sizeof(m->sid), "%s", sid);
    jid_clear(&m->jid);
    m->state = SM_ENDING;
    if (rc < 0) {
        /* No end went out, so no ended will come. */
        if (core_map_get(&c2s->sm_records, m->sid, strlen(m->sid)) == m)
            core_map_del(&c2s->sm_records, m->sid, strlen(m->sid));
        c2s_smgmt_free(m);
        return;
    }
    core_map_put(&c2s->sm_records, m->sid, strlen(m->sid), m);
    m->deadline = uv_now(c2s->net->loop) + SM_ENDING_MS;
    list_insert(&c2s->sm_ending, m);
    rearm(c2s);
}

/* Ends the session of connection c now; the connection no longer owns it. */
static void end_attached(c2s_conn_t *c)
{
    c2s_smgmt_t *m = c->smgmt;
    c->smgmt = NULL;
    c->started = false;
    c2s_conn_unmap(c);
    finish(c->c2s, m, c->sid, c->jid.full);
}

static bool over(const c2s_t *c2s, const c2s_smgmt_t *m)
{
    return m->q.len > (size_t)c2s->cfg->sm_max_unacked ||
        m->q.bytes > c2s->cfg->sm_max_unacked_size;
}

/* ---- the timer of the records ---- */

static void on_timer(uv_timer_t *t)
{
    c2s_t *c2s = (c2s_t *)((char *)t - offsetof(c2s_t, sm_timer));
    uint64_t now = uv_now(c2s->net->loop);
    while (c2s->sm_detached.head != NULL && c2s->sm_detached.head->deadline <= now) {
        c2s_smgmt_t *m = c2s->sm_detached.head;
        core_log(c2s->log, CORE_LOG_INFO, 0, "session %s (%s) was not resumed within %llu ms",
                 m->sid, m->jid.full, (unsigned long long)m->max_ms);
        finish(c2s, m, m->sid, m->jid.full);
    }
    while (c2s->sm_ending.head != NULL && c2s->sm_ending.head->deadline <= now) {
        c2s_smgmt_t *m = c2s->sm_ending.head;
        core_log(c2s->log, CORE_LOG_WARN, 0, "session %s: the sm did not answer end", m->sid);
        record_drop(c2s, m);
    }
    rearm(c2s);
}

/* One timer for every record: armed for the earliest deadline of the two lists. */
static void rearm(c2s_t *c2s)
{
    if (c2s->timers_closed)
        return;
    const c2s_smgmt_t *a = c2s->sm_detached.head, *b = c2s->sm_ending.head;
    if (a == NULL && b == NULL) {
        uv_timer_stop(&c2s->sm_timer);
        return;
    }
    uint64_t at = a != NULL ? a->deadline : b->deadline;
    if (a != NULL && b != NULL && b->deadline < at)
        at = b->deadline;
    uint64_t now = uv_now(c2s->net->loop);
    uv_timer_start(&c2s->sm_timer, on_timer, at > now ? at - now : 0, 0);
}

/* ---- a connection's side ---- */

static void send_sm(c2s_conn_t *c, xml_stanza_t *st)
{
    if (c->s != NULL)
        stream_send(c->s, st);
    xml_stanza_unref(st);
}

/* §6: <failed/> with a stanza error condition. */
static void failed(c2s_conn_t *c, const char *cond)
{
    xml_stanza_t *f = xml_stanza_new(C2S_NS_SM, "failed");
    xml_node_add_element(f, f->root, C2S_NS_STANZAS, cond);
    send_sm(c, f);
}

static void set_u32(xml_stanza_t *st, xml_node_t *n, const char *name, uint64_t v)
{
    char buf[24];
    snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
    xml_node_set_attr(st, n, NULL, name, buf);
}

/* §6: the peer acknowledged more than it was sent. */
static void too_high(c2s_conn_t *c, uint32_t h, uint32_t sent)
{
    xml_stanza_t *app = xml_stanza_new(C2S_NS_SM, "handled-count-too-high");
    set_u32(app, app->root, "h", h);
    set_u32(app, app->root, "send-count", sent);
    char text[128];
    snprintf(text, sizeof(text), "You acknowledged %u stanzas, but I only sent you %u so far.",
             (unsigned)h, (unsigned)sent);
    stream_error_app(c->s, CORE_STREAM_ERR_UNDEFINED_CONDITION, app, text);
    xml_stanza_unref(app);
}

/* The SM-ID: the sid (which finds the session) and random bytes (which nobody can guess). */
static void make_id(const c2s_conn_t *c, c2s_smgmt_t *m)
{
    unsigned char rnd[SM_ID_RANDOM] = {0};
    RAND_bytes(rnd, sizeof(rnd));
    char b64[4 * ((SM_ID_RANDOM + 2) / 3) + 1];
    auth_b64_encode(rnd, sizeof(rnd), b64);
    for (char *p = b64; *p != '\0'; p++) {
        if (*p == '+')
            *p = '-';
        else if (*p == '/')
            *p = '_';
    }
    snprintf(m->id, sizeof(m->id), "%s.%s", c->sid, b64);
}

/* §3: <enable/> after binding, once. */
static void enable(c2s_conn_t *c, const xml_node_t *n)
{
    c2s_t *c2s = c->c2s;
    if (c->smgmt != NULL) {
        failed(c, "unexpected-request");
        stream_error(c->s, CORE_STREAM_ERR_POLICY_VIOLATION, "stream management enabled twice");
        return;
    }
    if (c->state != C2S_ST_ACTIVE) {
        failed(c, "unexpected-request");
        return;
    }
    c2s_smgmt_t *m = core_calloc(1, sizeof(*m));
    m->max_ms = c2s->cfg->sm_resume_timeout_ms;
    const char *resume = xml_node_attr(n, "resume");
    m->resume = resume != NULL && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
    /* The client's preferred maximum may shorten ours, never lengthen it. */
    uint32_t max = 0;
    if (c2s_smq_parse_h(xml_node_attr(n, "max"), &max) == 0 && max > 0 &&
        (uint64_t)max * 1000 < m->max_ms)
        m->max_ms = (uint64_t)max * 1000;
    xml_stanza_t *e = xml_stanza_new(C2S_NS_SM, "enabled");
    if (m->resume) {
        make_id(c, m);
        xml_node_set_attr(e, e->root, NULL, "id", m->id);
        xml_node_set_attr(e, e->root, NULL, "resume", "true");
        set_u32(e, e->root, "max", (m->max_ms + 999) / 1000);
    }
    c->smgmt = m;
    send_sm(c, e);
    /* The sm keeps copies of the messages from its answer on, for when we die. */
    char bound[24];
    snprintf(bound, sizeof(bound), "%lld", (long long)c2s->cfg->sm_max_unacked);
    c2s_relay_control_attr(c2s, c->sid, c->jid.full, "managed", "max", bound);
    core_log(c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "session %s: stream management on%s", c->sid,
             m->resume ? ", resumable" : "");
}

/* §4: the client's <a h/>. */
static void ack(c2s_conn_t *c, const xml_node_t *n)
{
    c2s_smgmt_t *m = c->smgmt;
    uint32_t h = 0;
    if (c2s_smq_parse_h(xml_node_attr(n, "h"), &h) < 0) {
        stream_error(c->s, CORE_STREAM_ERR_BAD_FORMAT, "<a/> needs an h (XEP-0198 §4)");
        return;
    }
    if (c2s_smq_ack(&m->q, h) < 0) {
        too_high(c, h, c2s_smq_sent(&m->q));
        return;
    }
    m->r_out = false;
    report(c->c2s, m, c->sid, c->jid.full);
}

/*
 * The session previd names, if the client's account may resume it: one still attached to
 * another connection (*old), or one waiting without a connection.
 */
static c2s_smgmt_t *find(c2s_conn_t *c, const char *previd, c2s_conn_t **old)
{
    c2s_t *c2s = c->c2s;
    const char *dot = strchr(previd, '.');
    char sid[sizeof(c->sid)];
    if (dot == NULL || (size_t)(dot - previd) >= sizeof(sid))
        return NULL;
    memcpy(sid, previd, (size_t)(dot - previd));
    sid[dot - previd] = '\0';
    c2s_conn_t *o = c2s_conn_by_sid(c2s, sid);
    c2s_smgmt_t *m = NULL;
    const jid_t *owner = NULL;
    if (o != NULL && o != c && o->smgmt != NULL && o->state == C2S_ST_ACTIVE) {
        m = o->smgmt;
        owner = &o->jid;
    } else {
        o = NULL;
        m = core_map_get(&c2s->sm_records, sid, strlen(sid));
        if (m != NULL && m->state != SM_DETACHED)
            m = NULL;
        owner = m != NULL ? &m->jid : NULL;
    }
    size_t len = strlen(previd);
    if (m == NULL || !m->resume || strlen(m->id) != len || CRYPTO_memcmp(m->id, previd, len) != 0)
        return NULL;
    /* §8: only the account that owns the session, authenticated, may resume it. */
    if (owner->bare_len != c->jid.bare_len || memcmp(owner->full, c->jid.full, owner->bare_len))
        return NULL;
    *old = o;
    return m;
}

/* What CSI held for connection c joins m's queue, not yet sent, and c's CSI state goes. */
static void adopt_held(c2s_conn_t *c, c2s_smgmt_t *m)
{
    size_t n = 0;
    xml_stanza_t **held = c2s_csi_take(c, &n);
    uint64_t now = uv_now(c->c2s->net->loop);
    for (size_t i = 0; i < n; i++) {
        push(m, held[i], now, false);
        xml_stanza_unref(held[i]);
    }
    core_free(held);
}

/* Moves session m (from connection old, or from its record) onto connection c. */
static void take_over(c2s_conn_t *c, c2s_smgmt_t *m, c2s_conn_t *old)
{
    c2s_t *c2s = c->c2s;
    char sid[sizeof(c->sid)];
    jid_t full;
    if (old != NULL) {
        /* XEP-0352 §5.2: the CSI state stays behind; what it held joins the queue. */
        adopt_held(old, m);
        snprintf(sid, sizeof(sid), "%s", old->sid);
        full = old->jid;
        old->jid = (jid_t){0};
        old->smgmt = NULL;
        old->started = false;
        c2s_conn_unmap(old);
        /* §5: the old stream, if the server still has it open, gets <conflict/>. */
        stream_error(old->s, CORE_STREAM_ERR_CONFLICT, "the session was resumed elsewhere");
    } else {
        snprintf(sid, sizeof(sid), "%s", m->sid);
        full = m->jid;
        m->jid = (jid_t){0};
        list_remove(&c2s->sm_detached, m);
        core_map_del(&c2s->sm_records, m->sid, strlen(m->sid));
        rearm(c2s);
    }
    c2s_conn_unmap(c);
    snprintf(c->sid, sizeof(c->sid), "%s", sid);
    c2s_conn_map(c);
    jid_clear(&c->jid);
    c->jid = full;
    m->state = SM_ATTACHED;
    m->r_out = false;
    m->since_r = 0;
    c->smgmt = m;
    c->started = true;
    c->state = C2S_ST_ACTIVE;
    stream_set_deadline(c->s, 0, CORE_STREAM_ERR_NONE);
}

/* §5: <resume previd h/> after SASL, before binding. */
static void resume(c2s_conn_t *c, const xml_node_t *n)
{
    const char *previd = xml_node_attr(n, "previd");
    uint32_t h = 0;
    if (previd == NULL || c2s_smq_parse_h(xml_node_attr(n, "h"), &h) < 0) {
        failed(c, "bad-request");
        return;
    }
    c2s_conn_t *old = NULL;
    c2s_smgmt_t *m = find(c, previd, &old);
    if (m == NULL) {
        /* Unknown, over, another account's, or another c2s instance's: the client may bind. */
        core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "%s: no session to resume",
                 c->jid.full);
        failed(c, "item-not-found");
        return;
    }
    /* §5: h counts as an <a/> would, checked before anything moves. */
    if (c2s_smq_ack(&m->q, h) < 0) {
        too_high(c, h, c2s_smq_sent(&m->q));
        return;
    }
    take_over(c, m, old);
    report(c->c2s, m, c->sid, c->jid.full);
    xml_stanza_t *r = xml_stanza_new(C2S_NS_SM, "resumed");
    xml_node_set_attr(r, r->root, NULL, "previd", m->id);
    set_u32(r, r->root, "h", m->q.handled);
    send_sm(c, r);
    /* §5: then everything still unacknowledged, in order. */
    for (size_t i = 0; i < m->q.len; i++)
        stream_send(c->s, c2s_smq_at(&m->q, i)->st);
    m->q.unsent = 0;
    core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "session %s resumed by %s, %zu resent",
             c->sid, c->jid.full, m->q.len);
    if (m->q.len > 0)
        c2s_smgmt_request(c);
}

bool c2s_smgmt_element(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *n = st->root;
    if (n->ns == NULL || strcmp(n->ns, C2S_NS_SM) != 0)
        return false;
    if (strcmp(n->name, "enable") == 0) {
        enable(c, n);
    } else if (strcmp(n->name, "resume") == 0) {
        if (c->state == C2S_ST_AUTHED)
            resume(c, n);
        else
            failed(c, "unexpected-request");
    } else if (strcmp(n->name, "r") == 0) {
        /* §4: answered at once; before <enable/> there is nothing to count. */
        if (c->smgmt != NULL) {
            xml_stanza_t *a = xml_stanza_new(C2S_NS_SM, "a");
            set_u32(a, a->root, "h", c->smgmt->q.handled);
            send_sm(c, a);
        }
    } else if (strcmp(n->name, "a") == 0) {
        if (c->smgmt != NULL)
            ack(c, n);
    } else {
        stream_error(c->s, CORE_STREAM_ERR_UNSUPPORTED_STANZA_TYPE, NULL);
    }
    return true;
}

void c2s_smgmt_received(c2s_conn_t *c)
{
    if (c->smgmt != NULL)
        c->smgmt->q.handled++;
}

bool c2s_smgmt_track(c2s_conn_t *c, xml_stanza_t *st)
{
    c2s_smgmt_t *m = c->smgmt;
    push(m, st, uv_now(c->c2s->net->loop), c->s != NULL);
    if (!over(c->c2s, m))
        return true;
    core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c),
             "session %s: %zu stanzas (%zu bytes) unacknowledged: ending it", c->sid, m->q.len,
             m->q.bytes);
    end_attached(c);
    if (c->s != NULL)
        stream_error(c->s, CORE_STREAM_ERR_POLICY_VIOLATION, "too many unacknowledged stanzas");
    return false;
}

void c2s_smgmt_request(c2s_conn_t *c)
{
    c2s_smgmt_t *m = c->smgmt;
    m->r_out = true;
    m->since_r = 0;
    send_sm(c, xml_stanza_new(C2S_NS_SM, "r"));
}

void c2s_smgmt_sent(c2s_conn_t *c)
{
    c2s_smgmt_t *m = c->smgmt;
    if (m != NULL && ++m->since_r >= SM_REQUEST_EVERY && !m->r_out)
        c2s_smgmt_request(c);
}

bool c2s_smgmt_waiting(const c2s_conn_t *c)
{
    const c2s_smgmt_t *m = c->smgmt;
    return m != NULL && m->q.len > m->q.unsent && !m->r_out;
}

/* §5: keeps the session without its connection until it is resumed or its time is over. */
static void detach(c2s_conn_t *c)
{
    c2s_t *c2s = c->c2s;
    c2s_smgmt_t *m = c->smgmt;
    c->smgmt = NULL;
    c->started = false;
    c2s_conn_unmap(c);
    m->state = SM_DETACHED;
    snprintf(m->sid, sizeof(m->sid), "%s", c->sid);
    m->jid = c->jid;
    c->jid = (jid_t){0};
    m->r_out = false;
    m->since_r = 0;
    m->deadline = uv_now(c2s->net->loop) + m->max_ms;
    core_map_put(&c2s->sm_records, m->sid, strlen(m->sid), m);
    list_insert(&c2s->sm_detached, m);
    rearm(c2s);
    core_log(c2s->log, CORE_LOG_INFO, 0, "session %s (%s) waits %llu ms to be resumed", m->sid,
             m->jid.full, (unsigned long long)m->max_ms);
}

void c2s_smgmt_gone(c2s_conn_t *c, bool resumable)
{
    adopt_held(c, c->smgmt);
    /* §7: a stream that was not closed cleanly is unfinished: the session waits. */
    if (resumable && c->smgmt->resume)
        detach(c);
    else
        end_attached(c);
}

/* Session control for a record: the sm's ended, or its decision to end the session. */
static void record_control(c2s_t *c2s, c2s_smgmt_t *m, const xml_node_t *s)
{
    const char *action = xml_node_attr(s, "action");
    if (action == NULL)
        return;
    if (strcmp(action, "ended") == 0) {
        if (m->state == SM_ENDING)
            record_drop(c2s, m);
    } else if (strcmp(action, "managed") == 0) {
        m->sm_keeps = m->state == SM_DETACHED; /* CSI's messages joined the queue at detach */
    } else if (m->state == SM_DETACHED &&
               (strcmp(action, "replace") == 0 || strcmp(action, "kick") == 0)) {
        /* A new login with the same full JID, or the account is gone: no resumption. */
        core_log(c2s->log, CORE_LOG_INFO, 0, "session %s (%s) ended by the sm (%s)", m->sid,
                 m->jid.full, action);
        finish(c2s, m, m->sid, m->jid.full);
    }
}

/* A stanza for a session without a connection: kept for a resumption, or sent back. */
static void record_stanza(c2s_t *c2s, c2s_smgmt_t *m, xml_stanza_t *st)
{
    uint64_t now = uv_now(c2s->net->loop);
    if (m->state == SM_ENDING) {
        /* Routed before the sm saw end: it goes back the same way. */
        if (returnable(st) && c2s_relay_undelivered(c2s, m->sid, st, now) < 0)
            core_log(c2s->log, CORE_LOG_WARN, 0, "session %s: a stanza for it was lost", m->sid);
        return;
    }
    push(m, st, now, false);
    if (over(c2s, m)) {
        core_log(c2s->log, CORE_LOG_INFO, 0, "session %s: %zu stanzas wait for it: ending it",
                 m->sid, m->q.len);
        finish(c2s, m, m->sid, m->jid.full);
    }
}

void c2s_smgmt_managed(c2s_conn_t *c)
{
    c2s_smgmt_t *m = c->smgmt;
    if (m == NULL || m->sm_keeps)
        return;
    m->sm_keeps = true;
    /* Messages CSI holds now were routed before the answer: the sm has no copy of them. */
    m->skip = c2s_csi_messages(c);
}

bool c2s_smgmt_hand_back(c2s_t *c2s, const char *sid, xml_stanza_t *st)
{
    c2s_smgmt_t *m = core_map_get(&c2s->sm_records, sid, strlen(sid));
    if (m == NULL || m->state != SM_ENDING)
        return false;
    record_stanza(c2s, m, st);
    return true;
}

bool c2s_smgmt_from_link(c2s_t *c2s, const char *sid, xml_stanza_t *env)
{
    c2s_smgmt_t *m = core_map_get(&c2s->sm_records, sid, strlen(sid));
    const xml_node_t *child = xml_envelope_child(env);
    if (m == NULL || child == NULL)
        return false;
    bool control = xml_node_is(child, C2S_NS_SESSION, "session");
    const char *type = xml_node_attr(env->root, "type");
    if (type != NULL && strcmp(type, "error") == 0) {
        /* Our envelope bounced: the sm is not there. */
        if (control && m->state == SM_ENDING)
            record_drop(c2s, m);
        else if (!control)
            core_log(c2s->log, CORE_LOG_WARN, 0, "session %s: a stanza handed back bounced", sid);
        return true;
    }
    if (control) {
        record_control(c2s, m, child);
        return true;
    }
    xml_stanza_t *st = xml_envelope_open(env);
    record_stanza(c2s, m, st);
    xml_stanza_unref(st);
    return true;
}

void c2s_smgmt_link_down(c2s_t *c2s)
{
    while (c2s->sm_ending.head != NULL)
        record_drop(c2s, c2s->sm_ending.head);
    rearm(c2s);
}

void c2s_smgmt_sm_gone(c2s_t *c2s)
{
    /* The sm that was to answer end is gone; the sessions waiting for a resumption were its. */
    while (c2s->sm_ending.head != NULL)
        record_drop(c2s, c2s->sm_ending.head);
    while (c2s->sm_detached.head != NULL) {
        c2s_smgmt_t *m = c2s->sm_detached.head;
        core_log(c2s->log, CORE_LOG_INFO, 0, "session %s (%s) ends: the sm is gone", m->sid,
                 m->jid.full);
        finish(c2s, m, m->sid, m->jid.full);
    }
    rearm(c2s);
}

void c2s_smgmt_stop(c2s_t *c2s)
{
    while (c2s->sm_detached.head != NULL) {
        c2s_smgmt_t *m = c2s->sm_detached.head;
        finish(c2s, m, m->sid, m->jid.full);
    }
    uv_timer_stop(&c2s->sm_timer);
}

void c2s_smgmt_free_all(c2s_t *c2s)
{
    while (c2s->sm_detached.head != NULL)
        record_drop(c2s, c2s->sm_detached.head);
    while (c2s->sm_ending.head != NULL)
        record_drop(c2s, c2s->sm_ending.head);
    core_map_free(&c2s->sm_records);
}
