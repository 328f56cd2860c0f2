/* SPDX-License-Identifier: MIT */
/* Client load generator for bench/run-clients.sh: XMPP logins, 1:1 and room messages over TLS. */

/*
 * One thread, one libuv loop, many client connections. Each connection speaks XMPP as a client
 * does (RFC 6120, RFC 6121): stream open, STARTTLS, TLS over memory BIOs, stream restart, SASL
 * SCRAM-SHA-1 (RFC 5802, also with servers that offer SCRAM-SHA-256, so that every server does
 * the same work), stream restart, resource binding, roster get, initial presence. Each stream
 * has its own namespace-aware expat parser, reset at every stream restart.
 *
 * Modes:
 *   register  creates accounts by in-band registration (XEP-0077) over TLS: for servers that
 *             have no offline tool in our setup (ejabberd without a node name).
 *   login     L logins with concurrency C: each logs in as above, waits for the server's echo of
 *             its own initial presence (RFC 6121 §4.2.2) and the roster result, then closes the
 *             stream. Reports logins/s and the latency from connect to logged in.
 *   message   P sender/receiver pairs of logged-in users, each sender keeps W chat messages in
 *             flight to its receiver's bare JID. A message is delivered when the receiver has
 *             parsed it; its id carries a sequence number and the send time. Reports delivered
 *             messages/s and the delivery latency.
 *   idle      the memory a server holds per idle connection: after one warm-up login, the
 *             server's RSS; then K users log in (C at once) and stay, and once all are online
 *             and --settle-ms have passed in silence, the RSS again. Reports the difference
 *             per connection, then closes every stream.
 *   room      N occupants of one multi-user chat room (XEP-0045), S of them sending groupchat
 *             messages, W in flight each; every occupant counts what it receives. Reports
 *             delivered stanzas/s (messages times the occupants that got them) and the
 *             delivery latency (clientload_room.c).
 *
 * The server's CPU time (user + system, all threads) comes from /proc/PID/stat at the start and
 * end of the measured phase, so the CPU per login or message holds even if this program were the
 * bottleneck; our own CPU time is reported next to it. SCRAM's salted password is cached per
 * (salt, iteration count), as RFC 5802 §5.1 allows a client to: a warm-up round that logs in each
 * user once fills the cache, so that PBKDF2 on our side does not slow the measured logins.
 *
 * Output: one line "RESULT mode=... key=value ..." (see print_result()).
 * Exit status: 0 when complete without errors, 1 on the time limit or errors, 2 on failure.
 */

#include "clientload.h"

#include "core/alloc.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

static void cl_finish(clientload_t *cl);
static void msg_phase_check(clientload_t *cl);
static void setup_step(clientload_t *cl);

/* ---- measurements ---- */

/* CPU seconds (user + system, all threads) of a process from /proc/PID/stat, or -1. */
static double proc_cpu_seconds(long pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: the fields resume after the last ')'. */
    const char *p = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    /* After ")": state (field 3), ten more fields, then utime (14) and stime (15). */
    if (!p ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
            2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static double servers_cpu_seconds(const clientload_t *cl)
{
    double sum = 0;
    for (unsigned i = 0; i < cl->opt.npids; i++) {
        double s = proc_cpu_seconds(cl->opt.pids[i]);
        if (s < 0)
            return -1;
        sum += s;
    }
    return cl->opt.npids ? sum : -1;
}

static long proc_status_kb(long pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%ld/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            kb = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* The sum of the --server-pid processes' figures in s->server_rss_kb, or -1 if one is missing. */
static long rss_sum_kb(const clientload_t *cl, const cl_sample_t *s)
{
    long sum = 0;
    for (unsigned i = 0; i < cl->opt.npids; i++) {
        if (s->server_rss_kb[i] < 0)
            return -1;
        sum += s->server_rss_kb[i];
    }
    return cl->opt.npids ? sum : -1;
}

static double self_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Latencies in microseconds, in a log-linear histogram: exact below 1024 µs, then 512 buckets
 * per power of two (0.2 % resolution). */
static size_t hist_index(uint64_t v)
{
    if (v < CL_HIST_LINEAR)
        return (size_t)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - 9; /* v >> shift is in [512, 1023] */
    size_t i = CL_HIST_LINEAR + (size_t)(shift - 1) * CL_HIST_SUB + (size_t)((v >> shift) - 512);
    return i < CL_HIST_BUCKETS ? i : CL_HIST_BUCKETS - 1;
}

static double hist_value(size_t i)
{
    if (i < CL_HIST_LINEAR)
        return (double)i;
    size_t k = i - CL_HIST_LINEAR;
    unsigned shift = (unsigned)(k / CL_HIST_SUB) + 1;
    double lo = (double)((uint64_t)(k % CL_HIST_SUB + 512) << shift);
    return lo + (double)(UINT64_C(1) << shift) / 2;
}

void cl_hist_add(clientload_t *cl, uint64_t us)
{
    cl->hist[hist_index(us)]++;
    cl->hist_n++;
}

/* The p-quantile in milliseconds, or -1 without samples. */
static double hist_quantile(const clientload_t *cl, double p)
{
    if (cl->hist_n == 0)
        return -1;
    uint64_t want = (uint64_t)(p * (double)cl->hist_n + 0.999999);
    if (want < 1)
        want = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < CL_HIST_BUCKETS; i++) {
        seen += cl->hist[i];
        if (seen >= want)
            return hist_value(i) / 1000.0;
    }
    return hist_value(CL_HIST_BUCKETS - 1) / 1000.0;
}

static void sample_server(const clientload_t *cl, cl_sample_t *s)
{
    s->server_cpu = servers_cpu_seconds(cl);
    for (unsigned i = 0; i < cl->opt.npids; i++) {
        s->server_cpu_each[i] = proc_cpu_seconds(cl->opt.pids[i]);
        s->server_rss_kb[i] = proc_status_kb(cl->opt.pids[i], "VmRSS");
    }
}

/* The wall clock and our CPU time; with server, also the server's CPU time and RSS. */
static void sample_take(const clientload_t *cl, cl_sample_t *s, bool server)
{
    s->ns = uv_hrtime();
    s->self_cpu = self_cpu_seconds();
    if (server)
        sample_server(cl, s);
}

void cl_settle_begin(clientload_t *cl)
{
    sample_take(cl, &cl->end, false);
    cl->phase = PH_SETTLE;
    cl->settle_until = uv_hrtime() + (uint64_t)(cl->opt.settle_ms * 1e6);
}

/* ---- login and register modes ---- */

/*
 * --concurrency logins are in progress at once, from connect to logged in. A logged-in
 * connection then ends its stream and closes in the background, so that a server that is slow
 * to close (ejabberd answers </stream:stream> about 100 ms later) does not hold a login's place;
 * such connections come from a pool of free ones. A phase ends when every connection it opened
 * has closed, so that the server's teardown work falls inside the measurement.
 */

static void logins_begin(clientload_t *cl, enum cl_phase phase, uint64_t total);

static void logins_complete(clientload_t *cl)
{
    if (cl->phase == PH_WARMUP) {
        logins_begin(cl, PH_MEASURE, cl->opt.count);
        return;
    }
    cl_settle_begin(cl);
}

/* Whether the current phase wants another login: its count, and in the measured phase also
 * until --min-seconds have passed. */
static bool logins_want_more(const clientload_t *cl)
{
    if (cl->stopping || (cl->phase != PH_WARMUP && cl->phase != PH_MEASURE))
        return false;
    if (cl->ph_started < cl->ph_total)
        return true;
    return cl->phase == PH_MEASURE && cl->opt.mode == CL_MODE_LOGIN &&
        (double)(uv_hrtime() - cl->start.ns) < cl->opt.min_seconds * 1e9;
}

static void logins_start_more(clientload_t *cl)
{
    while (cl->in_progress < cl->opt.concurrency && cl->nspare > 0 && logins_want_more(cl)) {
        cl_conn_t *c = &cl->conns[cl->spare[--cl->nspare]];
        uint64_t n = cl->next_login++;
        unsigned user = cl->opt.mode == CL_MODE_REGISTER
            ? cl->opt.first + (unsigned)n
            : cl->opt.first + (unsigned)(n % cl->opt.users);
        cl->ph_started++;
        cl->in_progress++;
        cl_conn_open(c, user, n);
    }
}

static void logins_begin(clientload_t *cl, enum cl_phase phase, uint64_t total)
{
    cl->phase = phase;
    cl->ph_total = total;
    cl->ph_started = cl->ph_finished = 0;
    if (phase == PH_MEASURE) {
        memset(cl->hist, 0, sizeof(cl->hist));
        cl->hist_n = 0;
        cl->ok = 0;
        sample_take(cl, &cl->start, true);
    }
    logins_start_more(cl);
    if (cl->ph_started == 0)
        logins_complete(cl);
}

void cl_conn_online(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    cl->online++;
    c->step = STEP_ONLINE;
    if (cl->phase == PH_MEASURE) { /* idle mode's logins */
        cl->ok++;
        cl_hist_add(cl, (uv_hrtime() - c->t_start) / 1000);
    }
    setup_step(cl);
}

void cl_login_done(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    if (cl->opt.mode == CL_MODE_IDLE && cl->phase == PH_WARMUP) {
        cl_conn_end_stream(c); /* the warm-up login leaves before the baseline */
        return;
    }
    if (cl->opt.mode == CL_MODE_ROOM) {
        cl_room_join(c); /* online once in the room */
        return;
    }
    if (cl_mode_keeps_conns(cl->opt.mode)) {
        cl_conn_online(c);
        return;
    }
    if (c->counted)
        return;
    c->counted = true;
    cl->in_progress--;
    if (cl->phase == PH_MEASURE) {
        cl->ok++;
        if (cl->opt.mode == CL_MODE_LOGIN)
            cl_hist_add(cl, (uv_hrtime() - c->t_start) / 1000);
    }
    if (cl->opt.mode == CL_MODE_LOGIN)
        cl_conn_end_stream(c);
    logins_start_more(cl);
}

void cl_conn_closed(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    if (cl->opt.mode == CL_MODE_IDLE && cl->phase == PH_WARMUP) {
        /* The baseline comes after as quiet a time as the final reading. */
        cl->settle_until = uv_hrtime() + (uint64_t)(cl->opt.settle_ms * 1e6);
    } else if (!cl_mode_keeps_conns(cl->opt.mode)) {
        cl->spare[cl->nspare++] = c->index;
        if (!c->counted)
            cl->in_progress--; /* a login that failed */
        cl->ph_finished++;
        if (cl->phase == PH_WARMUP || cl->phase == PH_MEASURE) {
            logins_start_more(cl);
            if (cl->ph_finished == cl->ph_started)
                logins_complete(cl);
        }
    }
    if (cl->stopping && cl->open_conns == 0 && !uv_is_closing((uv_handle_t *)&cl->tick))
        uv_close((uv_handle_t *)&cl->tick, NULL);
}

/* ---- message mode ---- */

static void write_digits(char *at, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        at[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* The message template of sender s, --size bytes, with a fixed-width id to fill in. */
static int build_message(clientload_t *cl, cl_conn_t *s)
{
    char head[512];
    static const char tail[] = "</body></message>";
    unsigned to = cl->conns[s->index - cl->opt.pairs].user;
    int n = snprintf(head, sizeof(head), "<message to='%s%u@%s' type='chat' id='",
                     cl->opt.user_prefix, to, cl->opt.domain);
    size_t fixed = (size_t)n + CL_SEQ_DIGITS + 1 + CL_TS_DIGITS + strlen("'><body>") + strlen(tail);
    if (cl->opt.size < fixed + 1)
        return -EINVAL;
    s->msg = core_malloc(cl->opt.size);
    memcpy(s->msg, head, (size_t)n);
    s->msg_id_at = (size_t)n;
    memset(s->msg + n, '0', CL_SEQ_DIGITS + 1 + CL_TS_DIGITS);
    s->msg[n + CL_SEQ_DIGITS] = '.';
    size_t at = (size_t)n + CL_SEQ_DIGITS + 1 + CL_TS_DIGITS;
    memcpy(s->msg + at, "'><body>", 8);
    at += 8;
    static const char filler[] = "lorem ipsum dolor sit amet 0123456789 ";
    size_t body = cl->opt.size - at - strlen(tail);
    for (size_t i = 0; i < body; i++)
        s->msg[at + i] = filler[i % (sizeof(filler) - 1)];
    memcpy(s->msg + at + body, tail, strlen(tail));
    s->msg_len = cl->opt.size;
    return 0;
}

/* In the measured phase, a sender that has sent its share before --min-seconds have passed
 * gets another round. Extending as the last message of a round is queued means the receiver
 * never sees the old target reached unless the time was up when it was sent. */
static void sender_extend(cl_conn_t *s)
{
    clientload_t *cl = s->cl;
    if (s->sent < s->target || cl->phase != PH_MEASURE || cl->opt.count == 0)
        return;
    if ((double)(uv_hrtime() - cl->start.ns) < cl->opt.min_seconds * 1e9)
        s->target += cl->opt.count / cl->opt.pairs + 1;
}

/* Sends messages while the window, the target and the output buffer allow: one TLS record
 * per message, as a client sends them, written together. */
void cl_sender_pump(cl_conn_t *s)
{
    clientload_t *cl = s->cl;
    if (s->step != STEP_ONLINE || s->closing || s->dead || cl->stopping)
        return;
    const cl_conn_t *r = &cl->conns[s->index - cl->opt.pairs];
    uint64_t ts = uv_hrtime() / 1000;
    bool any = false;
    for (sender_extend(s); s->sent < s->target && s->sent - r->received < cl->opt.window;
         sender_extend(s)) {
        s->sent++;
        write_digits(s->msg + s->msg_id_at, s->sent, CL_SEQ_DIGITS);
        write_digits(s->msg + s->msg_id_at + CL_SEQ_DIGITS + 1, ts, CL_TS_DIGITS);
        cl_conn_send(s, s->msg, s->msg_len);
        any = true;
    }
    if (any)
        cl_conn_settle(s);
}

void cl_measure_begin(clientload_t *cl)
{
    memset(cl->hist, 0, sizeof(cl->hist));
    cl->hist_n = 0;
    sample_take(cl, &cl->start, true);
}

static void msg_phase_begin(clientload_t *cl, enum cl_phase phase, uint64_t total)
{
    cl->phase = phase;
    cl->receivers_done = 0;
    uint64_t base = total / cl->opt.pairs, extra = total % cl->opt.pairs;
    uint64_t received = 0;
    for (unsigned i = 0; i < cl->opt.pairs; i++) {
        cl_conn_t *r = &cl->conns[i], *s = &cl->conns[cl->opt.pairs + i];
        s->target = s->sent + base + (i < extra ? 1 : 0);
        r->done = r->received >= s->target;
        cl->receivers_done += r->done;
        received += r->received;
    }
    if (phase == PH_MEASURE) {
        cl->received_at_start = received;
        cl_measure_begin(cl);
    }
    for (unsigned i = 0; i < cl->opt.pairs; i++)
        cl_sender_pump(&cl->conns[cl->opt.pairs + i]);
    msg_phase_check(cl);
}

static void msg_phase_check(clientload_t *cl)
{
    if (cl->receivers_done < cl->opt.pairs || cl->stopping)
        return;
    if (cl->phase == PH_WARMUP) {
        msg_phase_begin(cl, PH_MEASURE, cl->opt.count);
    } else if (cl->phase == PH_MEASURE) {
        sample_take(cl, &cl->end, false);
        uint64_t got = 0;
        for (unsigned i = 0; i < cl->opt.pairs; i++)
            got += cl->conns[i].received;
        cl->ok = got - cl->received_at_start;
        cl_settle_begin(cl);
    }
}

void cl_input_done(cl_conn_t *c)
{
    clientload_t *cl = c->cl;
    if (cl->stopping)
        return;
    cl_conn_t *s = &cl->conns[cl->opt.pairs + c->index];
    if (!c->done && (cl->phase == PH_WARMUP || cl->phase == PH_MEASURE) &&
        c->received >= s->target) {
        c->done = true;
        cl->receivers_done++;
    }
    cl_sender_pump(s);
    msg_phase_check(cl);
}

/* ---- idle mode ---- */

/*
 * The warm-up login (connection 0, closed again) makes the server load what any first login
 * loads, so that the baseline holds it. The measured phase runs from the baseline until every
 * user is online; the final RSS reading comes --settle-ms later, with all of them idle.
 */

static void idle_warmup(clientload_t *cl)
{
    cl->phase = PH_WARMUP;
    cl_conn_open(&cl->conns[0], cl->opt.first, 0);
}

static void idle_begin(clientload_t *cl)
{
    cl->phase = PH_MEASURE;
    sample_take(cl, &cl->start, true);
    setup_step(cl);
}

/* ---- message and idle modes ---- */

/* The user of connection i: message mode has receivers first, then their senders; idle and
 * room modes take the users in turn. */
static unsigned setup_user(const clientload_t *cl, unsigned i)
{
    if (cl->opt.mode == CL_MODE_IDLE || cl->opt.mode == CL_MODE_ROOM)
        return cl->opt.first + i;
    return cl->opt.first + 2 * (i % cl->opt.pairs) + (i >= cl->opt.pairs ? 0 : 1);
}

/* Logs in every connection, at most --concurrency at once (room mode: logins and joins, the
 * room's creator alone first); then the mode's next phase. */
static void setup_step(clientload_t *cl)
{
    while (!cl->stopping && cl->setup_started < cl->nconns &&
           cl->setup_started - cl->online < cl->opt.concurrency &&
           (cl->opt.mode != CL_MODE_ROOM || cl_room_may_open(cl, cl->setup_started))) {
        unsigned i = cl->setup_started++;
        cl_conn_open(&cl->conns[i], setup_user(cl, i), 0);
    }
    if (cl->online < cl->nconns || cl->stopping)
        return;
    if (cl->opt.mode == CL_MODE_IDLE && cl->phase == PH_MEASURE)
        cl_settle_begin(cl);
    else if (cl->opt.mode == CL_MODE_MESSAGE && cl->phase == PH_SETUP)
        msg_phase_begin(cl, PH_WARMUP, (uint64_t)cl->opt.warmup * cl->opt.pairs);
    else if (cl->opt.mode == CL_MODE_ROOM && cl->phase == PH_SETUP)
        cl_room_start(cl);
}

/* ---- the whole run ---- */

void cl_abort(clientload_t *cl, const char *why)
{
    if (cl->failed)
        return;
    fprintf(stderr, "clientload: stopping: %s\n", why);
    cl->failed = true;
    cl_finish(cl);
}

/* Ends the run: no new logins; streams that are up end with </stream:stream>. */
static void cl_finish(clientload_t *cl)
{
    if (cl->stopping)
        return;
    cl->stopping = true;
    if (cl->phase != PH_SETTLE)
        cl->phase = PH_DONE;
    for (unsigned i = 0; i < cl->nconns; i++) {
        cl_conn_t *c = &cl->conns[i];
        if (!c->in_use || c->closing)
            continue;
        if (c->step == STEP_ONLINE) {
            cl_conn_end_stream(c);
            cl_conn_settle(c);
        } else if (c->step != STEP_CLOSING) {
            cl_conn_close(c);
        }
    }
    if (cl->open_conns == 0 && !uv_is_closing((uv_handle_t *)&cl->tick))
        uv_close((uv_handle_t *)&cl->tick, NULL);
}

static void print_rss_each(const clientload_t *cl, const char *key, const cl_sample_t *s)
{
    printf(" %s=", key);
    for (unsigned i = 0; i < cl->opt.npids; i++)
        printf("%s%ld", i ? "," : "", s->server_rss_kb[i]);
}

/* Idle mode: the server's RSS (all its processes) at the baseline and with every user online
 * and idle, the growth per connection, and each process's figures in --server-pid order. */
static void print_idle(const clientload_t *cl)
{
    long before = rss_sum_kb(cl, &cl->start), after = rss_sum_kb(cl, &cl->end);
    double per =
        before >= 0 && after >= 0 && cl->online ? (double)(after - before) / cl->online : -1.0;
    printf(" users=%u online=%u rss_before_kb=%ld rss_after_kb=%ld kb_per_conn=%.2f", cl->opt.users,
           cl->online, before, after, per);
    print_rss_each(cl, "rss_before_each_kb", &cl->start);
    print_rss_each(cl, "rss_after_each_kb", &cl->end);
}

static void print_result(const clientload_t *cl)
{
    static const char *const modes[] = {"register", "login", "message", "idle", "room"};
    double secs = (double)(cl->end.ns - cl->start.ns) / 1e9;
    double server = cl->start.server_cpu >= 0 && cl->end.server_cpu >= 0
        ? cl->end.server_cpu - cl->start.server_cpu
        : -1;
    long hwm = 0;
    for (unsigned i = 0; i < cl->opt.npids; i++)
        hwm += proc_status_kb(cl->opt.pids[i], "VmHWM");
    printf("RESULT mode=%s server=%s count=%" PRIu64 " seconds=%.4f rate=%.1f server_cpu=%.3f "
           "cpu_per_unit_us=%.1f lat_p50_ms=%.3f lat_p99_ms=%.3f loadgen_cpu=%.3f "
           "errors=%" PRIu64 " complete=%d",
           modes[cl->opt.mode], cl->opt.server_name, cl->ok, secs,
           secs > 0 ? (double)cl->ok / secs : 0.0, server,
           server >= 0 && cl->ok ? server * 1e6 / (double)cl->ok : -1.0, hist_quantile(cl, 0.5),
           hist_quantile(cl, 0.99), cl->end.self_cpu - cl->start.self_cpu, cl->errors,
           cl->timed_out ? 0 : 1);
    if (cl->opt.mode == CL_MODE_MESSAGE)
        printf(" pairs=%u window=%u size=%zu bounced=%" PRIu64 " out_of_order=%" PRIu64,
               cl->opt.pairs, cl->opt.window, cl->opt.size, cl->bounced, cl->out_of_order);
    else if (cl->opt.mode == CL_MODE_ROOM)
        cl_room_print(cl);
    else
        printf(" concurrency=%u close_timeouts=%" PRIu64, cl->opt.concurrency, cl->close_timeouts);
    if (cl->opt.mode == CL_MODE_REGISTER)
        printf(" existed=%" PRIu64, cl->existed);
    if (cl->opt.mode == CL_MODE_IDLE)
        print_idle(cl);
    /* Each process's share (--server-pid order), for sites that run components apart. */
    printf(" server_cpu_each=");
    for (unsigned i = 0; i < cl->opt.npids; i++) {
        double a = cl->start.server_cpu_each[i], b = cl->end.server_cpu_each[i];
        printf("%s%.3f", i ? "," : "", a >= 0 && b >= 0 ? b - a : -1.0);
    }
    printf(" mech=SCRAM-SHA-1 sha256_offered=%d pbkdf2=%" PRIu64 " tls=%s server_hwm_kb=%ld\n",
           cl->sha256_offered ? 1 : 0, cl->pbkdf2_runs, cl->tls_desc[0] ? cl->tls_desc : "none",
           hwm);
    fflush(stdout);
}

static void time_limit(clientload_t *cl)
{
    static const char *const names[] = {"setting up", "warming up", "measuring", "settling",
                                        "closing"};
    if (cl->phase == PH_MEASURE) {
        /* Report what finished in time: the result says complete=0. */
        sample_take(cl, &cl->end, true);
        if (cl->opt.mode == CL_MODE_MESSAGE) {
            uint64_t got = 0;
            for (unsigned i = 0; i < cl->opt.pairs; i++)
                got += cl->conns[i].received;
            cl->ok = got - cl->received_at_start;
        } else if (cl->opt.mode == CL_MODE_ROOM) {
            cl_room_tally(cl);
        }
        cl->timed_out = true;
        cl->phase = PH_DONE;
        print_result(cl);
        cl_finish(cl);
        return;
    }
    if (cl->phase == PH_DONE || cl->phase == PH_SETTLE) {
        for (unsigned i = 0; i < cl->nconns; i++)
            cl_conn_close(&cl->conns[i]);
        return;
    }
    fprintf(stderr, "clientload: time limit passed while %s (%" PRIu64 " errors, %u online)\n",
            names[cl->phase], cl->errors, cl->online);
    cl->timed_out = true;
    cl_abort(cl, "time limit");
}

static void on_tick(uv_timer_t *t)
{
    clientload_t *cl = t->data;
    uint64_t now = uv_hrtime();
    for (unsigned i = 0; i < cl->nconns; i++) {
        cl_conn_t *c = &cl->conns[i];
        if (c->in_use && !c->closing && c->step == STEP_CLOSING && now >= c->close_deadline) {
            if (!cl->stopping)
                cl->close_timeouts++;
            cl_conn_close(c);
        }
    }
    if (cl->opt.mode == CL_MODE_IDLE && cl->phase == PH_WARMUP && cl->settle_until &&
        now >= cl->settle_until && !cl->stopping)
        idle_begin(cl);
    if (cl->phase == PH_SETTLE && now >= cl->settle_until && !cl->stopping) {
        sample_server(cl, &cl->end);
        print_result(cl);
        cl_finish(cl);
        return;
    }
    if (now >= cl->deadline && !cl->timed_out)
        time_limit(cl);
}

/* ---- options ---- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parley-clientload MODE --port PORT --password-file FILE [options]\n"
            "MODE: register | login | message | idle | room\n"
            "  --host ADDR           server address, IPv4 (default 127.0.0.1)\n"
            "  --domain D            the XMPP domain (default localhost)\n"
            "  --user-prefix P       users are P<n>@D (default user)\n"
            "  --first N             the first user number (default 0)\n"
            "  --users K             login: users P<first>..P<first+K-1>, taken in turn;\n"
            "                        register: how many to create; idle: how many stay\n"
            "                        online, P<first> also logs in once before; room: the\n"
            "                        occupants (default 100)\n"
            "  --password-file F     the users' password, first line (or --password PW)\n"
            "  --count N             login: logins measured; message, room: messages\n"
            "                        measured, all pairs or senders (default 1000 / 100000\n"
            "                        / 1000)\n"
            "  --warmup M            login: logins before measuring (default K, each user\n"
            "                        once); message: messages per pair (default 200);\n"
            "                        room: messages per sender (default 20)\n"
            "  --concurrency C       logins at once (default 20)\n"
            "  --pairs P             message: sender/receiver pairs, users P<first+2i> ->\n"
            "                        P<first+2i+1> (default 10)\n"
            "  --window W            message: messages in flight per pair; room: per\n"
            "                        sender, until its echo (default 10)\n"
            "  --size BYTES          message, room: bytes per <message/> as sent (default\n"
            "                        200; room: at most 4000)\n"
            "  --room NAME           room: the room's local part (default bench)\n"
            "  --muc-domain D        room: the MUC service (default conference.localhost)\n"
            "  --senders S           room: occupants P<first>..P<first+S-1> send (default 4)\n"
            "  --max-lag L           room: senders wait while an occupant is L messages\n"
            "                        behind all sent (default 4 * S * W)\n"
            "  --min-seconds S       keep going past --count until the measured phase has\n"
            "                        lasted S seconds (default 0)\n"
            "  --timeout SECONDS     limit for the whole run (default 120)\n"
            "  --settle-ms MS        wait before the final server CPU reading (default 200);\n"
            "                        idle: before each RSS reading, all quiet (default 3000)\n"
            "  --close-timeout S     wait for the server to close a stream (default 5)\n"
            "  --server-pid PID[,PID...]  the server's processes (repeatable)\n"
            "  --server-name NAME    label for the RESULT line (default server)\n"
            "  --wait echo|roster    login: logged in at the presence echo (and roster\n"
            "                        result; default) or at the roster result alone\n"
            "  --max-errors N        login/register: give up after N failed logins (10)\n"
            "  --carbons             enable message carbons (XEP-0280) at each login\n");
}

static int add_pids(cl_options_t *o, const char *arg)
{
    char *end;
    for (const char *p = arg; *p;) {
        long pid = strtol(p, &end, 10);
        if (end == p || pid <= 0 || o->npids >= CL_MAX_PIDS)
            return -EINVAL;
        o->pids[o->npids++] = pid;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -EINVAL;
    }
    return 0;
}

static int parse_mode(cl_options_t *o, const char *m)
{
    if (strcmp(m, "register") == 0)
        o->mode = CL_MODE_REGISTER;
    else if (strcmp(m, "login") == 0)
        o->mode = CL_MODE_LOGIN;
    else if (strcmp(m, "message") == 0)
        o->mode = CL_MODE_MESSAGE;
    else if (strcmp(m, "idle") == 0)
        o->mode = CL_MODE_IDLE;
    else if (strcmp(m, "room") == 0)
        o->mode = CL_MODE_ROOM;
    else
        return -EINVAL;
    return 0;
}

static int parse_option(cl_options_t *o, int ch, const char *arg)
{
    switch (ch) {
    case 'H':
        o->host = arg;
        break;
    case 'p':
        o->port = atoi(arg);
        break;
    case 'd':
        o->domain = arg;
        break;
    case 'u':
        o->user_prefix = arg;
        break;
    case 'f':
        o->first = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'K':
        o->users = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'F':
        o->password_file = arg;
        break;
    case 'x':
        o->password = arg;
        break;
    case 'n':
        o->count = strtoull(arg, NULL, 10);
        break;
    case 'w':
        o->warmup = strtoll(arg, NULL, 10);
        break;
    case 'c':
        o->concurrency = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'k':
        o->pairs = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'W':
        o->window = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'b':
        o->size = strtoul(arg, NULL, 10);
        break;
    case 'm':
        o->min_seconds = strtod(arg, NULL);
        break;
    case 't':
        o->timeout = strtod(arg, NULL);
        break;
    case 's':
        o->settle_ms = strtod(arg, NULL);
        break;
    case 'C':
        o->close_timeout = strtod(arg, NULL);
        break;
    case 'P':
        return add_pids(o, arg);
    case 'N':
        o->server_name = arg;
        break;
    case 'E':
        o->max_errors = strtoull(arg, NULL, 10);
        break;
    case 'a':
        if (strcmp(arg, "echo") != 0 && strcmp(arg, "roster") != 0)
            return -EINVAL;
        o->wait_roster = strcmp(arg, "roster") == 0;
        break;
    case 'B':
        o->carbons = true;
        break;
    case 'r':
        o->room = arg;
        break;
    case 'M':
        o->muc_domain = arg;
        break;
    case 'S':
        o->senders = (unsigned)strtoul(arg, NULL, 10);
        break;
    case 'L':
        o->max_lag = strtoull(arg, NULL, 10);
        break;
    default:
        return -EINVAL;
    }
    return 0;
}

static bool name_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (const char *p = s; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' ||
              *p == '_'))
            return false;
    }
    return true;
}

static int parse_options(cl_options_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"domain", required_argument, NULL, 'd'},
        {"user-prefix", required_argument, NULL, 'u'},
        {"first", required_argument, NULL, 'f'},
        {"users", required_argument, NULL, 'K'},
        {"password-file", required_argument, NULL, 'F'},
        {"password", required_argument, NULL, 'x'},
        {"count", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"concurrency", required_argument, NULL, 'c'},
        {"pairs", required_argument, NULL, 'k'},
        {"window", required_argument, NULL, 'W'},
        {"size", required_argument, NULL, 'b'},
        {"min-seconds", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 't'},
        {"settle-ms", required_argument, NULL, 's'},
        {"close-timeout", required_argument, NULL, 'C'},
        {"server-pid", required_argument, NULL, 'P'},
        {"server-name", required_argument, NULL, 'N'},
        {"wait", required_argument, NULL, 'a'},
        {"max-errors", required_argument, NULL, 'E'},
        {"carbons", no_argument, NULL, 'B'},
        {"room", required_argument, NULL, 'r'},
        {"muc-domain", required_argument, NULL, 'M'},
        {"senders", required_argument, NULL, 'S'},
        {"max-lag", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (cl_options_t){
        .host = "127.0.0.1",
        .domain = "localhost",
        .user_prefix = "user",
        .users = 100,
        .warmup = -1,
        .concurrency = 20,
        .pairs = 10,
        .window = 10,
        .size = 200,
        .timeout = 120,
        .settle_ms = 200,
        .close_timeout = 5,
        .server_name = "server",
        .max_errors = 10,
        .room = "bench",
        .muc_domain = "conference.localhost",
        .senders = 4,
    };
    bool count_set = false, settle_set = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (ch == 'h') {
            usage(stdout);
            exit(0);
        }
        count_set |= ch == 'n';
        settle_set |= ch == 's';
        if (parse_option(o, ch, optarg) < 0)
            return -EINVAL;
    }
    if (optind + 1 != argc || parse_mode(o, argv[optind]) < 0)
        return -EINVAL;
    if (!count_set)
        o->count = o->mode == CL_MODE_MESSAGE ? 100000 : 1000;
    if (o->warmup < 0)
        o->warmup = o->mode == CL_MODE_MESSAGE ? 200
            : o->mode == CL_MODE_ROOM          ? 20
                                               : (int64_t)o->users;
    if (o->max_lag == 0)
        o->max_lag = 4 * (uint64_t)o->senders * o->window;
    if (o->mode == CL_MODE_ROOM &&
        (o->users > CL_MAX_CONNS || o->senders < 1 || o->senders > CL_ROOM_MAX_SENDERS ||
         o->senders > o->users || o->size > CL_TEXT_MAX - 96 || !name_ok(o->room, 64) ||
         !name_ok(o->muc_domain, 200) || o->max_lag < o->senders))
        return -EINVAL;
    if (!settle_set && o->mode == CL_MODE_IDLE)
        o->settle_ms = 3000;
    if (o->port <= 0 || o->port > 65535 || (!o->password_file && !o->password) ||
        !name_ok(o->domain, 200) || !name_ok(o->user_prefix, 32) || o->users < 1 ||
        (o->mode == CL_MODE_IDLE && o->users > CL_MAX_CONNS) || o->concurrency < 1 ||
        o->concurrency > CL_MAX_CONNS || o->pairs < 1 || o->pairs > CL_MAX_CONNS / 2 ||
        o->window < 1 || o->window > 100000 || o->size > CL_MAX_SIZE ||
        o->count > UINT64_C(1000000000) || o->warmup > 100000000 ||
        !(o->timeout > 0 && o->timeout <= 86400) ||
        !(o->min_seconds >= 0 && o->min_seconds < o->timeout) || o->settle_ms < 0 ||
        o->settle_ms > 300000 || o->close_timeout <= 0 || o->close_timeout > 60)
        return -EINVAL;
    return 0;
}

static int read_password(clientload_t *cl)
{
    size_t n;
    if (cl->opt.password) {
        n = strlen(cl->opt.password);
        if (n >= sizeof(cl->password))
            return -EINVAL;
        memcpy(cl->password, cl->opt.password, n);
    } else {
        FILE *f = fopen(cl->opt.password_file, "r");
        if (!f)
            return -errno;
        n = fread(cl->password, 1, sizeof(cl->password) - 1, f);
        fclose(f);
        char *nl = memchr(cl->password, '\n', n);
        if (nl)
            n = (size_t)(nl - cl->password);
        while (n && cl->password[n - 1] == '\r')
            n--;
    }
    cl->password[n] = '\0';
    cl->password_len = n;
    /* Printable ASCII without XML specials: it goes into the XEP-0077 form unescaped, and
     * needs no SASLprep mapping. */
    for (size_t i = 0; i < n; i++) {
        char ch = cl->password[i];
        if (ch < 0x21 || ch > 0x7e || ch == '<' || ch == '&' || ch == '\'' || ch == '"')
            return -EINVAL;
    }
    return n ? 0 : -EINVAL;
}

/* Raises the soft limit on descriptors to what conns connections need, if the hard one allows. */
static int fd_limit_raise(unsigned conns)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)conns + 64; /* the loop's own, stdio, the /proc reads */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -errno;
    if (rl.rlim_cur >= want)
        return 0;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want) {
        fprintf(stderr, "clientload: %u connections need %llu descriptors, the limit is %llu\n",
                conns, (unsigned long long)want, (unsigned long long)rl.rlim_cur);
        return -EMFILE;
    }
    return 0;
}

static int setup(clientload_t *cl)
{
    const cl_options_t *o = &cl->opt;
    if (uv_ip4_addr(o->host, o->port, &cl->addr) < 0) {
        fprintf(stderr, "clientload: bad address %s\n", o->host);
        return -EINVAL;
    }
    cl->tls = SSL_CTX_new(TLS_client_method());
    if (!cl->tls)
        return -ENOMEM;
    SSL_CTX_set_min_proto_version(cl->tls, TLS1_2_VERSION);
    /* The benchmark's certificate is self-signed and made for the run: nothing to verify. */
    SSL_CTX_set_verify(cl->tls, SSL_VERIFY_NONE, NULL);
    /* Every login makes a full handshake, as a client that connects for the first time. */
    SSL_CTX_set_session_cache_mode(cl->tls, SSL_SESS_CACHE_OFF);
    if (o->mode == CL_MODE_MESSAGE)
        cl->nconns = 2 * o->pairs;
    else if (o->mode == CL_MODE_IDLE || o->mode == CL_MODE_ROOM)
        cl->nconns = o->users;
    else /* logins in progress, and room for as many again four times over while closing */
        cl->nconns =
            o->concurrency * 5 + 100 < CL_MAX_CONNS ? o->concurrency * 5 + 100 : CL_MAX_CONNS;
    if (fd_limit_raise(cl->nconns) < 0)
        return -EMFILE;
    cl->conns = core_calloc(cl->nconns, sizeof(cl_conn_t));
    cl->spare = core_calloc(cl->nconns, sizeof(unsigned));
    for (unsigned i = 0; i < cl->nconns; i++) {
        cl->conns[i].cl = cl;
        cl->conns[i].index = i;
        cl->spare[cl->nspare++] = cl->nconns - 1 - i;
    }
    if (o->mode == CL_MODE_MESSAGE) {
        for (unsigned i = 0; i < o->pairs; i++) {
            cl->conns[i].user = o->first + 2 * i + 1;
            if (build_message(cl, &cl->conns[o->pairs + i]) < 0) {
                fprintf(stderr, "clientload: --size %zu is too small\n", o->size);
                return -EINVAL;
            }
        }
    }
    if (o->mode == CL_MODE_ROOM && cl_room_setup(cl) < 0) {
        fprintf(stderr, "clientload: --size %zu is too small for a room message\n", o->size);
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    /* Static: the histogram and the SCRAM cache are large, and untouched pages cost nothing. */
    static clientload_t storage;
    clientload_t *cl = &storage;
    if (parse_options(&cl->opt, argc, argv) < 0) {
        usage(stderr);
        return 2;
    }
    int rc = read_password(cl);
    if (rc < 0) {
        fprintf(stderr, "clientload: no usable password (printable ASCII without <&'\")\n");
        return 2;
    }
    if (setup(cl) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&cl->loop);
    uv_timer_init(&cl->loop, &cl->tick);
    cl->tick.data = cl;
    uv_timer_start(&cl->tick, on_tick, 20, 20);
    cl->t0 = uv_hrtime();
    cl->deadline = cl->t0 + (uint64_t)(cl->opt.timeout * 1e9);
    cl->start.server_cpu = cl->end.server_cpu = -1;
    switch (cl->opt.mode) {
    case CL_MODE_REGISTER:
        logins_begin(cl, PH_MEASURE, cl->opt.users);
        break;
    case CL_MODE_LOGIN:
        logins_begin(cl, PH_WARMUP, (uint64_t)cl->opt.warmup);
        break;
    case CL_MODE_MESSAGE:
        cl->phase = PH_SETUP;
        setup_step(cl);
        break;
    case CL_MODE_IDLE:
        idle_warmup(cl);
        break;
    case CL_MODE_ROOM:
        cl->phase = PH_SETUP;
        setup_step(cl);
        break;
    }
    uv_run(&cl->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&cl->loop);
    if (rc < 0)
        fprintf(stderr, "clientload: uv_loop_close: %s\n", uv_strerror(rc));
    for (unsigned i = 0; i < cl->nconns; i++)
        core_free(cl->conns[i].msg);
    cl_room_free(cl);
    core_free(cl->conns);
    core_free(cl->spare);
    SSL_CTX_free(cl->tls);
    OPENSSL_cleanse(cl->password, sizeof(cl->password));
    if (cl->failed)
        return 2;
    return cl->timed_out || cl->errors ? 1 : 0;
}
