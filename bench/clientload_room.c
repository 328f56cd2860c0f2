/* SPDX-License-Identifier: MIT */
/* The client load generator's room mode: N occupants in one XEP-0045 room, S of them sending. */

/*
 * Connection 0 creates the room: it joins alone, and if the room answers with status 201 (a new
 * room, locked until configured, XEP-0045 §7.2.10 and §10.1.1) it accepts the default
 * configuration as an instant room (§10.1.2). Then the others join, at most --concurrency logins
 * and joins in progress at once; a join is done when the occupant's own presence with status
 * 110 comes back (§7.2.2). Every join asks for no history (§7.2.14, maxstanzas='0'), and
 * nothing is sent to the room before everyone is in, so no history reaches the count.
 *
 * Then connections 0 .. --senders - 1 send groupchat messages (§7.4) to the room. A message is
 * a sender's "in flight" until the room reflects it back to its sender; each sender keeps at
 * most --window in flight. The body (and the id) starts with a fixed-width header
 * "<sender>.<seq>.<send time in µs>": every occupant that receives a message records the
 * latency from its send time, and checks that each sender's messages arrive in order. A bound
 * on the lag keeps the server's queues finite whatever the reflection order: a sender waits
 * while some occupant is more than --max-lag messages behind everything sent.
 *
 * A phase (warm-up, then the measured one) ends when every occupant has received every message
 * of the phase. Deliveries are counted per occupant: one message to N occupants is N delivered
 * stanzas, the sender's own echo included.
 */

#include "clientload.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define NS_MUC "http://jabber.org/protocol/muc"
#define NS_MUC_OWNER "http://jabber.org/protocol/muc#owner"

static void phase_check(clientload_t *cl);

static void write_digits(char *at, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        at[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* Reads exactly n decimal digits; false if one is not a digit. */
static bool read_digits(const char *p, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v;
    return true;
}

/* Sender s's message template, --size bytes, with the header at two places: the id (which a
 * room SHOULD reflect, §7.4) and the body (which it must). */
static int build_template(clientload_t *cl, cl_conn_t *s)
{
    static const char mid[] = "'><body>";
    static const char tail[] = "</body></message>";
    char head[512];
    int n = snprintf(head, sizeof(head), "<message to='%s@%s' type='groupchat' id='", cl->opt.room,
                     cl->opt.muc_domain);
    if (n < 0 || (size_t)n >= sizeof(head))
        return -EINVAL;
    size_t at_body = (size_t)n + CL_ROOM_HDR_LEN + strlen(mid);
    size_t fixed = at_body + CL_ROOM_HDR_LEN + strlen(tail);
    if (cl->opt.size < fixed + 1)
        return -EINVAL;
    s->msg = core_malloc(cl->opt.size);
    memcpy(s->msg, head, (size_t)n);
    s->msg_id_at = (size_t)n;
    memcpy(s->msg + n + CL_ROOM_HDR_LEN, mid, strlen(mid));
    static const char filler[] = " lorem ipsum dolor sit amet 0123456789";
    size_t body = cl->opt.size - fixed;
    for (size_t i = 0; i < body; i++)
        s->msg[at_body + CL_ROOM_HDR_LEN + i] = filler[i % (sizeof(filler) - 1)];
    memcpy(s->msg + cl->opt.size - strlen(tail), tail, strlen(tail));
    s->msg_len = cl->opt.size;
    return 0;
}

int cl_room_setup(clientload_t *cl)
{
    for (unsigned i = 0; i < cl->nconns; i++)
        cl->conns[i].room_seq = core_calloc(cl->opt.senders, sizeof(uint64_t));
    for (unsigned i = 0; i < cl->opt.senders; i++) {
        if (build_template(cl, &cl->conns[i]) < 0)
            return -EINVAL;
    }
    cl->room_at_min = cl->nconns;
    return 0;
}

void cl_room_free(clientload_t *cl)
{
    for (unsigned i = 0; i < cl->nconns; i++) {
        core_free(cl->conns[i].room_seq);
        cl->conns[i].room_seq = NULL;
    }
}

bool cl_room_may_open(const clientload_t *cl, unsigned i)
{
    return i == 0 || cl->room_ready;
}

/* ---- joining ---- */

/* The occupant JID of c: room@service/nick, the nick being the user's name. */
static int occupant_jid(const cl_conn_t *c, char *out, size_t cap)
{
    const cl_options_t *o = &c->cl->opt;
    int n = snprintf(out, cap, "%s@%s/%s%u", o->room, o->muc_domain, o->user_prefix, c->user);
    return n > 0 && (size_t)n < cap ? n : -EINVAL;
}

void cl_room_join(cl_conn_t *c)
{
    char jid[CL_JID_MAX], buf[CL_JID_MAX + 160];
    if (occupant_jid(c, jid, sizeof(jid)) < 0) {
        cl_conn_fail(c, "the occupant JID is too long");
        return;
    }
    /* §7.2.1 (join with the muc namespace) and §7.2.14 (no discussion history). */
    int n = snprintf(buf, sizeof(buf),
                     "<presence to='%s'><x xmlns='" NS_MUC "'><history maxstanzas='0'/></x>"
                     "</presence>",
                     jid);
    cl_conn_send(c, buf, (size_t)n);
    c->step = STEP_JOINING;
}

/* The creator is in and the room is open: the others may join. */
static void room_open(cl_conn_t *c)
{
    c->cl->room_ready = true;
    cl_conn_online(c);
}

void cl_room_presence(cl_conn_t *c)
{
    char jid[CL_JID_MAX];
    if (occupant_jid(c, jid, sizeof(jid)) < 0 || strcasecmp(c->st_from, jid) != 0)
        return; /* another occupant's presence, or our own session's */
    if (strcmp(c->st_type, "error") == 0) {
        cl_conn_fail(c, "the room refused the join: <%s/>", c->err_cond[0] ? c->err_cond : "?");
        return;
    }
    if (!c->st_self || c->st_type[0])
        return;
    if (c->index != 0 || c->cl->room_ready) {
        cl_conn_online(c);
        return;
    }
    if (!c->st_created) {
        room_open(c); /* the room existed, or the service needs no configuration */
        return;
    }
    /* §10.1.2: an empty submitted form accepts the default configuration and unlocks the room. */
    char buf[CL_JID_MAX + 200];
    int n = snprintf(buf, sizeof(buf),
                     "<iq type='set' id='cfg' to='%s@%s'><query xmlns='" NS_MUC_OWNER "'>"
                     "<x xmlns='jabber:x:data' type='submit'/></query></iq>",
                     c->cl->opt.room, c->cl->opt.muc_domain);
    cl_conn_send(c, buf, (size_t)n);
}

void cl_room_configured(cl_conn_t *c, bool result)
{
    if (!result) {
        cl_conn_fail(c, "the room refused the instant configuration: <%s/>",
                     c->err_cond[0] ? c->err_cond : "?");
        return;
    }
    c->cl->room_created = true;
    room_open(c);
}

/* ---- sending ---- */

/* The fewest messages any occupant has received, kept with the number of occupants that have
 * that many: a scan only when the last of them moves on, so once per message at most. */
static void min_rescan(clientload_t *cl)
{
    uint64_t min = UINT64_MAX;
    unsigned at = 0;
    for (unsigned i = 0; i < cl->nconns; i++) {
        uint64_t r = cl->conns[i].received;
        if (r < min) {
            min = r;
            at = 1;
        } else if (r == min) {
            at++;
        }
    }
    cl->room_min = min;
    cl->room_at_min = at;
    cl->room_min_moved = true;
}

/* In the measured phase, a sender that has sent its share before --min-seconds have passed
 * gets another round, added as its last message is queued (see sender_extend in clientload.c). */
static void sender_extend(cl_conn_t *s)
{
    clientload_t *cl = s->cl;
    if (s->sent < s->target || cl->phase != PH_MEASURE || cl->opt.count == 0)
        return;
    if ((double)(uv_hrtime() - cl->start.ns) < cl->opt.min_seconds * 1e9) {
        uint64_t more = cl->opt.count / cl->opt.senders + 1;
        s->target += more;
        cl->room_target += more;
    }
}

void cl_room_pump(cl_conn_t *s)
{
    clientload_t *cl = s->cl;
    if (s->index >= cl->opt.senders || s->step != STEP_ONLINE || s->closing || s->dead ||
        cl->stopping || (cl->phase != PH_WARMUP && cl->phase != PH_MEASURE))
        return;
    uint64_t ts = uv_hrtime() / 1000;
    bool any = false;
    for (sender_extend(s); s->sent < s->target && s->sent - s->echoed < cl->opt.window;
         sender_extend(s)) {
        if (cl->room_sent - cl->room_min >= cl->opt.max_lag) {
            cl->room_lag_waits++;
            break;
        }
        s->sent++;
        cl->room_sent++;
        char *hdr = s->msg + s->msg_id_at;
        write_digits(hdr, s->index, CL_ROOM_IDX_DIGITS);
        hdr[CL_ROOM_IDX_DIGITS] = '.';
        write_digits(hdr + CL_ROOM_IDX_DIGITS + 1, s->sent, CL_SEQ_DIGITS);
        hdr[CL_ROOM_IDX_DIGITS + 1 + CL_SEQ_DIGITS] = '.';
        write_digits(hdr + CL_ROOM_IDX_DIGITS + 1 + CL_SEQ_DIGITS + 1, ts, CL_TS_DIGITS);
        /* The body's copy of the header follows the id's: "'><body>" lies between. */
        memcpy(hdr + CL_ROOM_HDR_LEN + 8, hdr, CL_ROOM_HDR_LEN);
        cl_conn_send(s, s->msg, s->msg_len);
        any = true;
    }
    if (any)
        cl_conn_settle(s);
}

/* ---- receiving ---- */

void cl_room_message(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    uint64_t sender, seq, ts;
    const char *h = c->text;
    if (c->text_over || c->text_len < CL_ROOM_HDR_LEN || h[CL_ROOM_IDX_DIGITS] != '.' ||
        h[CL_ROOM_IDX_DIGITS + 1 + CL_SEQ_DIGITS] != '.' ||
        !read_digits(h, CL_ROOM_IDX_DIGITS, &sender) ||
        !read_digits(h + CL_ROOM_IDX_DIGITS + 1, CL_SEQ_DIGITS, &seq) ||
        !read_digits(h + CL_ROOM_IDX_DIGITS + 1 + CL_SEQ_DIGITS + 1, CL_TS_DIGITS, &ts) ||
        sender >= cl->opt.senders)
        return; /* not one of ours: the subject, a service message */
    if (c->room_seq[sender] + 1 != seq)
        cl->out_of_order++;
    c->room_seq[sender] = seq;
    if (sender == c->index)
        c->echoed++;
    uint64_t had = c->received++;
    cl->room_delivered++;
    if (had == cl->room_min && --cl->room_at_min == 0)
        min_rescan(cl);
    if (cl->phase == PH_MEASURE) {
        uint64_t now = uv_hrtime() / 1000;
        cl_hist_add(cl, now > ts ? now - ts : 0);
    }
}

void cl_room_input_done(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    if (cl->stopping || (cl->phase != PH_WARMUP && cl->phase != PH_MEASURE))
        return;
    if (cl->room_min_moved) {
        cl->room_min_moved = false;
        for (unsigned i = 0; i < cl->opt.senders; i++)
            cl_room_pump(&cl->conns[i]);
    } else {
        cl_room_pump(c);
    }
    phase_check(cl);
}

/* ---- phases ---- */

/* Each sender's target grows by its share of total messages. */
static void phase_begin(clientload_t *cl, enum cl_phase phase, uint64_t total)
{
    cl->phase = phase;
    uint64_t base = total / cl->opt.senders, extra = total % cl->opt.senders;
    cl->room_target = 0;
    for (unsigned i = 0; i < cl->opt.senders; i++) {
        cl_conn_t *s = &cl->conns[i];
        s->target = s->sent + base + (i < extra ? 1 : 0);
        cl->room_target += s->target;
    }
    if (phase == PH_MEASURE) {
        uint64_t echoed = 0;
        for (unsigned i = 0; i < cl->opt.senders; i++)
            echoed += cl->conns[i].echoed;
        cl->room_delivered_at_start = cl->room_delivered;
        cl->room_echoed_at_start = echoed;
        cl_measure_begin(cl);
    }
    for (unsigned i = 0; i < cl->opt.senders; i++)
        cl_room_pump(&cl->conns[i]);
    phase_check(cl);
}

void cl_room_tally(clientload_t *cl)
{
    uint64_t echoed = 0;
    for (unsigned i = 0; i < cl->opt.senders; i++)
        echoed += cl->conns[i].echoed;
    cl->ok = cl->room_delivered - cl->room_delivered_at_start;
    cl->room_messages = echoed - cl->room_echoed_at_start;
}

/* Every occupant has every message of the phase: no occupant can hold more than the targets. */
static void phase_check(clientload_t *cl)
{
    if (cl->stopping || cl->room_delivered < cl->room_target * cl->nconns)
        return;
    if (cl->phase == PH_WARMUP) {
        phase_begin(cl, PH_MEASURE, cl->opt.count);
    } else if (cl->phase == PH_MEASURE) {
        cl_settle_begin(cl);
        cl_room_tally(cl);
    }
}

void cl_room_start(clientload_t *cl)
{
    cl->room_join_ns = uv_hrtime();
    phase_begin(cl, PH_WARMUP, (uint64_t)cl->opt.warmup * cl->opt.senders);
}

void cl_room_print(const clientload_t *cl)
{
    double secs = (double)(cl->end.ns - cl->start.ns) / 1e9;
    double join = cl->room_join_ns > cl->t0 ? (double)(cl->room_join_ns - cl->t0) / 1e9 : -1;
    printf(" occupants=%u senders=%u window=%u size=%zu messages=%" PRIu64 " msg_rate=%.1f"
           " out_of_order=%" PRIu64 " max_lag=%" PRIu64 " lag_waits=%" PRIu64 " join_seconds=%.2f"
           " room_created=%d",
           cl->nconns, cl->opt.senders, cl->opt.window, cl->opt.size, cl->room_messages,
           secs > 0 ? (double)cl->room_messages / secs : 0.0, cl->out_of_order, cl->opt.max_lag,
           cl->room_lag_waits, join, cl->room_created ? 1 : 0);
}
