/* SPDX-License-Identifier: MIT */
/* Load generator for bench/run.sh: pushes messages between XEP-0114 components through a router. */

/*
 * K sender components (a0.bench ...) each send messages to their receiver component
 * (b0.bench ...) through the router under test (XEP-0114 links on both sides), with at most
 * `window` stanzas in flight per pair. Arrivals are counted by the occurrences of "</message>" in
 * the receivers' byte streams, which is exact for our own traffic and far cheaper than parsing, so
 * that the load generator stays well below the router in CPU use. A warm-up phase runs first; the
 * measured phase reports throughput, our own CPU time, and the router's CPU time and peak RSS read
 * from /proc/PID. All memory is static: there are at most LG_MAX_PAIRS pairs with fixed buffers.
 *
 * Output: one line starting with "RESULT " of key=value fields (see print_result()).
 * Exit status: 0 when every stanza arrived, 1 when the time limit passed first, 2 on errors.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <uv.h>

enum {
    LG_MAX_PAIRS = 64,
    LG_MAX_DOMAIN = 128,
    LG_MIN_SIZE = 120,
    LG_MAX_SIZE = 65536,
    LG_OUT_BYTES = 128 * 1024,
    LG_IN_BYTES = 64 * 1024,
    LG_HEAD_BYTES = 8192,
    LG_LAST_BYTES = 256,
    LG_ID_DIGITS = 12,
};

static const char lg_end_tag[] = "</message>";
#define LG_END_LEN (sizeof(lg_end_tag) - 1)

enum lg_state {
    LG_CONNECTING,
    LG_HEADER, /* waiting for the router's stream header */
    LG_HANDSHAKE, /* sent <handshake/>, waiting for the empty reply (XEP-0114 §3) */
    LG_READY,
};

enum lg_phase {
    LG_PHASE_CONNECT,
    LG_PHASE_WARMUP,
    LG_PHASE_MEASURE,
    LG_PHASE_DONE,
};

struct loadgen;

struct lg_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct loadgen *lg;
    unsigned index;
    bool sender;
    bool write_pending;
    bool done; /* receiver: every message of the current phase arrived */
    enum lg_state state;
    char domain[LG_MAX_DOMAIN];
    /* Bytes before the handshake completes; the stream header is parsed from here. */
    char head[LG_HEAD_BYTES];
    size_t head_len;
    char in[LG_IN_BYTES];
    /* The last LG_END_LEN - 1 bytes read, to find an end tag split across two reads. */
    char carry[LG_END_LEN];
    size_t carry_len;
    uint64_t counted;
    /* The last bytes read, printed if the router closes the stream on us. */
    char last[LG_LAST_BYTES];
    size_t last_len;
    /* Sender only: the message template, its id position, and the output buffer. */
    char msg[LG_MAX_SIZE];
    size_t msg_len;
    size_t id_at;
    uint64_t sent;
    uint64_t target;
    char out[LG_OUT_BYTES];
};
typedef struct lg_conn lg_conn_t;

struct lg_options {
    const char *host;
    int port;
    const char *secret_file;
    unsigned pairs;
    uint64_t count;
    uint64_t warmup;
    size_t size;
    unsigned window;
    double timeout;
    double min_seconds;
    const char *sender_prefix;
    const char *receiver_prefix;
    const char *domain;
    long server_pid;
};
typedef struct lg_options lg_options_t;

struct lg_sample {
    uint64_t ns;
    double self_cpu;
    double server_cpu;
};
typedef struct lg_sample lg_sample_t;

struct loadgen {
    uv_loop_t loop;
    uv_timer_t timer;
    lg_options_t opt;
    char secret[1024];
    size_t secret_len;
    enum lg_phase phase;
    unsigned ready;
    unsigned receivers_done;
    bool failed;
    bool timed_out;
    bool closing;
    lg_sample_t start;
    lg_sample_t end;
    lg_conn_t senders[LG_MAX_PAIRS];
    lg_conn_t receivers[LG_MAX_PAIRS];
};
typedef struct loadgen loadgen_t;

static void lg_finish(loadgen_t *lg);
static void sender_pump(lg_conn_t *c);
static void phase_check(loadgen_t *lg);

static void lg_fail(loadgen_t *lg, const char *what, const lg_conn_t *c, int err)
{
    fprintf(stderr, "loadgen: %s", what);
    if (c)
        fprintf(stderr, " (%s)", c->domain);
    if (err)
        fprintf(stderr, ": %s", uv_strerror(err));
    fputc('\n', stderr);
    if (c && c->last_len)
        fprintf(stderr, "loadgen: last bytes from the router: %.*s\n", (int)c->last_len, c->last);
    lg->failed = true;
    lg_finish(lg);
}

/* CPU seconds (user + system) of a process from /proc/PID/stat, or -1 if unreadable. */
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
    /* The command name may contain spaces and parentheses: fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    /* After ")": state (field 3) and ten more fields, then utime (14) and stime (15). */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* A "Key:   123 kB" field of /proc/PID/status in kB, or -1. */
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

static double self_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
        (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void lg_sample_take(const loadgen_t *lg, lg_sample_t *s)
{
    s->ns = uv_hrtime();
    s->self_cpu = self_cpu_seconds();
    s->server_cpu = lg->opt.server_pid > 0 ? proc_cpu_seconds(lg->opt.server_pid) : -1;
}

/* Counts end tags in data, including one split between the previous read and this one. */
static void count_end_tags(lg_conn_t *c, const char *data, size_t len)
{
    uint64_t found = 0;
    if (c->carry_len) {
        /* Any match in carry + head of data must span the boundary: each part is too short. */
        char joint[2 * LG_END_LEN];
        size_t take = len < LG_END_LEN - 1 ? len : LG_END_LEN - 1;
        memcpy(joint, c->carry, c->carry_len);
        memcpy(joint + c->carry_len, data, take);
        if (memmem(joint, c->carry_len + take, lg_end_tag, LG_END_LEN))
            found++;
    }
    /* The tag has no border (no proper prefix is also a suffix), so matches never overlap. */
    const char *p = data, *end = data + len;
    while ((size_t)(end - p) >= LG_END_LEN) {
        const char *m = memmem(p, (size_t)(end - p), lg_end_tag, LG_END_LEN);
        if (!m)
            break;
        found++;
        p = m + LG_END_LEN;
    }
    /* Keep the last LG_END_LEN - 1 bytes of carry + data for the next read. */
    size_t keep = LG_END_LEN - 1;
    if (len >= keep) {
        memcpy(c->carry, end - keep, keep);
    } else {
        size_t old = c->carry_len + len > keep ? keep - len : c->carry_len;
        memmove(c->carry, c->carry + c->carry_len - old, old);
        memcpy(c->carry + old, data, len);
        len += old;
    }
    c->carry_len = len < keep ? len : keep;
    c->counted += found;
}

static void remember_last(lg_conn_t *c, const char *data, size_t len)
{
    if (len >= LG_LAST_BYTES) {
        memcpy(c->last, data + len - LG_LAST_BYTES, LG_LAST_BYTES);
        c->last_len = LG_LAST_BYTES;
        return;
    }
    size_t keep = c->last_len + len > LG_LAST_BYTES ? LG_LAST_BYTES - len : c->last_len;
    memmove(c->last, c->last + c->last_len - keep, keep);
    memcpy(c->last + keep, data, len);
    c->last_len = keep + len;
}

static void on_timeout(uv_timer_t *t)
{
    loadgen_t *lg = t->data;
    if (lg->phase == LG_PHASE_MEASURE) {
        /* Report what arrived in time: the result line says complete=0. */
        lg_sample_take(lg, &lg->end);
        lg->timed_out = true;
        lg->phase = LG_PHASE_DONE;
        lg_finish(lg);
        return;
    }
    fprintf(stderr, "loadgen: time limit passed while %s\n",
            lg->phase == LG_PHASE_CONNECT ? "connecting" : "warming up");
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        const lg_conn_t *s = &lg->senders[i], *r = &lg->receivers[i];
        fprintf(stderr,
                "loadgen: pair %u: %s state %d sent %" PRIu64 " bounced %" PRIu64
                ", %s state %d received %" PRIu64 "\n",
                i, s->domain, (int)s->state, s->sent, s->counted, r->domain, (int)r->state,
                r->counted);
        if (s->last_len)
            fprintf(stderr, "loadgen: last bytes to %s: %.*s\n", s->domain, (int)s->last_len,
                    s->last);
    }
    lg->timed_out = true;
    lg->failed = true;
    lg_finish(lg);
}

/* Starts a phase of `total` more messages, spread evenly over the pairs. */
static void phase_start(loadgen_t *lg, enum lg_phase phase, uint64_t total)
{
    lg->phase = phase;
    lg->receivers_done = 0;
    uint64_t base = total / lg->opt.pairs, extra = total % lg->opt.pairs;
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        lg_conn_t *s = &lg->senders[i];
        s->target = s->sent + base + (i < extra ? 1 : 0);
        lg->receivers[i].done = lg->receivers[i].counted >= s->target;
        if (lg->receivers[i].done)
            lg->receivers_done++;
    }
    uv_timer_start(&lg->timer, on_timeout, (uint64_t)(lg->opt.timeout * 1000.0), 0);
    if (phase == LG_PHASE_MEASURE)
        lg_sample_take(lg, &lg->start);
    for (unsigned i = 0; i < lg->opt.pairs; i++)
        sender_pump(&lg->senders[i]);
    /* An empty phase ends at once. */
    phase_check(lg);
}

static void phase_check(loadgen_t *lg)
{
    if (lg->receivers_done < lg->opt.pairs || lg->closing)
        return;
    if (lg->phase == LG_PHASE_WARMUP) {
        phase_start(lg, LG_PHASE_MEASURE, lg->opt.count);
        return;
    }
    if (lg->phase == LG_PHASE_MEASURE) {
        lg_sample_take(lg, &lg->end);
        lg->phase = LG_PHASE_DONE;
        lg_finish(lg);
    }
}

static void on_write(uv_write_t *req, int status)
{
    lg_conn_t *c = req->data;
    c->write_pending = false;
    if (status < 0) {
        if (!c->lg->closing)
            lg_fail(c->lg, "write failed", c, status);
        return;
    }
    sender_pump(c);
}

/* Writes buf[0..len): directly if the socket takes it all, else queued. */
static int conn_write(lg_conn_t *c, char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r == (int)len)
        return 0;
    if (r < 0 && r != UV_EAGAIN)
        return r;
    if (r > 0) {
        b.base += r;
        b.len -= (size_t)r;
    }
    c->write_req.data = c;
    r = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (r < 0)
        return r;
    c->write_pending = true;
    return 0;
}

static void write_id(char *at, uint64_t id)
{
    for (int i = LG_ID_DIGITS - 1; i >= 0; i--) {
        at[i] = (char)('0' + id % 10);
        id /= 10;
    }
}

/* In the measured phase, adds another round of messages to a sender that has sent all of its
 * target while the phase is shorter than --min-seconds. */
static void sender_extend(lg_conn_t *c)
{
    loadgen_t *lg = c->lg;
    if (c->sent < c->target || lg->phase != LG_PHASE_MEASURE || lg->opt.count == 0)
        return;
    if ((double)(uv_hrtime() - lg->start.ns) < lg->opt.min_seconds * 1e9)
        c->target += lg->opt.count / lg->opt.pairs + 1;
}

/* Sends as many messages as the window, the target and the socket allow. */
static void sender_pump(lg_conn_t *c)
{
    loadgen_t *lg = c->lg;
    const lg_conn_t *r = &lg->receivers[c->index];
    /* Extending right after the last message of a round is queued keeps the receiver from
     * seeing the old target reached: it is final only if the time was up when it was sent. */
    for (sender_extend(c); !c->write_pending && !lg->closing && c->sent < c->target;
         sender_extend(c)) {
        uint64_t inflight = c->sent - r->counted;
        if (inflight >= lg->opt.window)
            return;
        uint64_t n = lg->opt.window - inflight;
        if (n > c->target - c->sent)
            n = c->target - c->sent;
        if (n > LG_OUT_BYTES / c->msg_len)
            n = LG_OUT_BYTES / c->msg_len;
        size_t len = 0;
        for (uint64_t k = 0; k < n; k++) {
            memcpy(c->out + len, c->msg, c->msg_len);
            write_id(c->out + len + c->id_at, ++c->sent);
            len += c->msg_len;
        }
        int rc = conn_write(c, c->out, len);
        if (rc < 0) {
            lg_fail(lg, "write failed", c, rc);
            return;
        }
    }
}

static void on_ready(lg_conn_t *c)
{
    loadgen_t *lg = c->lg;
    c->state = LG_READY;
    if (++lg->ready == 2 * lg->opt.pairs)
        phase_start(lg, LG_PHASE_WARMUP, lg->opt.warmup * lg->opt.pairs);
}

/* Finds attr='value' or attr="value" inside [p, end); the name must follow whitespace. */
static int find_attr(const char *p, const char *end, const char *name, const char **val,
                     size_t *val_len)
{
    size_t nlen = strlen(name);
    for (; p + nlen + 2 < end; p++) {
        if ((*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') ||
            memcmp(p + 1, name, nlen) != 0 || p[1 + nlen] != '=')
            continue;
        char q = p[2 + nlen];
        if (q != '\'' && q != '"')
            continue;
        const char *v = p + 3 + nlen;
        const char *e = memchr(v, q, (size_t)(end - v));
        if (!e)
            return -EINVAL;
        *val = v;
        *val_len = (size_t)(e - v);
        return 0;
    }
    return -ENOENT;
}

static void send_handshake(lg_conn_t *c, const char *id, size_t id_len)
{
    loadgen_t *lg = c->lg;
    /* XEP-0114 §3: the handshake is the lower-case hex SHA-1 of stream id + shared secret. */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, id, id_len) != 1 ||
        EVP_DigestUpdate(ctx, lg->secret, lg->secret_len) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &md_len) != 1) {
        EVP_MD_CTX_free(ctx);
        lg_fail(lg, "SHA-1 failed", c, 0);
        return;
    }
    EVP_MD_CTX_free(ctx);
    static const char hex[] = "0123456789abcdef";
    int n = snprintf(c->out, LG_OUT_BYTES, "<handshake>");
    for (unsigned i = 0; i < md_len; i++) {
        c->out[n++] = hex[md[i] >> 4];
        c->out[n++] = hex[md[i] & 15];
    }
    n += snprintf(c->out + n, LG_OUT_BYTES - (size_t)n, "</handshake>");
    int rc = conn_write(c, c->out, (size_t)n);
    if (rc < 0)
        lg_fail(lg, "write failed", c, rc);
}

/* Parses head[0..head_len): the router's stream header, then its handshake reply. */
static void conn_read_head(lg_conn_t *c)
{
    const char *h = c->head, *end = c->head + c->head_len;
    if (memmem(h, c->head_len, "<stream:error", 13) || memmem(h, c->head_len, "</stream:", 9)) {
        lg_fail(c->lg, "the router refused the component", c, 0);
        return;
    }
    if (c->state == LG_HEADER) {
        const char *open = memmem(h, c->head_len, "<stream:stream", 14);
        const char *gt = open ? memchr(open, '>', (size_t)(end - open)) : NULL;
        if (!gt)
            return; /* need more */
        const char *id;
        size_t id_len;
        if (find_attr(open, gt, "id", &id, &id_len) < 0) {
            lg_fail(c->lg, "no id in the router's stream header", c, 0);
            return;
        }
        send_handshake(c, id, id_len);
        size_t used = (size_t)(gt + 1 - h);
        memmove(c->head, gt + 1, c->head_len - used);
        c->head_len -= used;
        c->state = LG_HANDSHAKE;
        h = c->head;
        end = h + c->head_len;
    }
    if (c->state == LG_HANDSHAKE && !c->lg->failed) {
        const char *hs = memmem(h, c->head_len, "<handshake", 10);
        if (!hs)
            return;
        /* Accept <handshake/> and <handshake></handshake>. */
        const char *gt = memchr(hs, '>', (size_t)(end - hs));
        if (!gt)
            return;
        if (gt[-1] != '/') {
            const char *close = memmem(gt, (size_t)(end - gt), "</handshake>", 12);
            if (!close)
                return;
            gt = close + 11;
        }
        size_t used = (size_t)(gt + 1 - h);
        size_t rest = c->head_len - used;
        c->head_len = 0;
        on_ready(c);
        if (rest)
            count_end_tags(c, gt + 1, rest);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    lg_conn_t *c = h->data;
    *buf = uv_buf_init(c->in, sizeof(c->in));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    lg_conn_t *c = stream->data;
    loadgen_t *lg = c->lg;
    if (nread < 0) {
        if (!lg->closing)
            lg_fail(lg, "the router closed the connection", c, nread == UV_EOF ? 0 : (int)nread);
        return;
    }
    if (nread == 0 || lg->closing)
        return;
    remember_last(c, buf->base, (size_t)nread);
    if (c->state != LG_READY) {
        if (c->head_len + (size_t)nread > sizeof(c->head)) {
            lg_fail(lg, "the router's stream header is too long", c, 0);
            return;
        }
        memcpy(c->head + c->head_len, buf->base, (size_t)nread);
        c->head_len += (size_t)nread;
        conn_read_head(c);
        if (c->state != LG_READY)
            return;
    } else {
        count_end_tags(c, buf->base, (size_t)nread);
    }
    /* A sender only receives bounces (e.g. service-unavailable): they are counted too. */
    if (c->sender)
        return;
    lg_conn_t *s = &lg->senders[c->index];
    if (lg->phase == LG_PHASE_WARMUP || lg->phase == LG_PHASE_MEASURE) {
        if (!c->done && c->counted >= s->target) {
            c->done = true;
            lg->receivers_done++;
        }
        sender_pump(s);
        phase_check(lg);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    lg_conn_t *c = req->data;
    loadgen_t *lg = c->lg;
    if (status < 0) {
        if (!lg->closing)
            lg_fail(lg, "connect failed", c, status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->state = LG_HEADER;
    int n = snprintf(c->out, LG_OUT_BYTES,
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' "
                     "xmlns:stream='http://etherx.jabber.org/streams' to='%s'>",
                     c->domain);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0)
        rc = conn_write(c, c->out, (size_t)n);
    if (rc < 0)
        lg_fail(lg, "stream open failed", c, rc);
}

static void lg_finish(loadgen_t *lg)
{
    if (lg->closing)
        return;
    lg->closing = true;
    if (!uv_is_closing((uv_handle_t *)&lg->timer))
        uv_close((uv_handle_t *)&lg->timer, NULL);
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        lg_conn_t *cs[2] = {&lg->senders[i], &lg->receivers[i]};
        for (int k = 0; k < 2; k++) {
            if (!uv_is_closing((uv_handle_t *)&cs[k]->tcp))
                uv_close((uv_handle_t *)&cs[k]->tcp, NULL);
        }
    }
}

static size_t append(char *dst, size_t at, const char *src)
{
    size_t n = strlen(src);
    memcpy(dst + at, src, n);
    return at + n;
}

/* Builds the message template of exactly `size` bytes, with a fixed-width id to patch. */
static int build_message(loadgen_t *lg, lg_conn_t *s)
{
    const lg_conn_t *r = &lg->receivers[s->index];
    static const char close[] = "</body></message>";
    /* Domains are shorter than 100 bytes (domain_ok), so the head fits in LG_MIN_SIZE * 2. */
    size_t n = append(s->msg, 0, "<message to='");
    n = append(s->msg, n, r->domain);
    n = append(s->msg, n, "' from='");
    n = append(s->msg, n, s->domain);
    n = append(s->msg, n, "' id='");
    s->id_at = n;
    memset(s->msg + n, '0', LG_ID_DIGITS);
    n = append(s->msg, n + LG_ID_DIGITS, "'><body>");
    if (lg->opt.size < n + strlen(close) + 1)
        return -EINVAL;
    /* Plain text that needs no escaping: words of letters and digits. */
    static const char filler[] = "lorem ipsum dolor sit amet 0123456789 ";
    size_t body = lg->opt.size - n - strlen(close);
    for (size_t i = 0; i < body; i++)
        s->msg[n + i] = filler[i % (sizeof(filler) - 1)];
    s->msg_len = append(s->msg, n + body, close);
    return 0;
}

static bool domain_ok(const char *d)
{
    if (!*d || strlen(d) >= 100)
        return false;
    for (const char *p = d; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
            return false;
    }
    return true;
}

static int read_secret(loadgen_t *lg)
{
    FILE *f = fopen(lg->opt.secret_file, "r");
    if (!f)
        return -errno;
    size_t n = fread(lg->secret, 1, sizeof(lg->secret) - 1, f);
    fclose(f);
    while (n && (lg->secret[n - 1] == '\n' || lg->secret[n - 1] == '\r'))
        n--;
    lg->secret_len = n;
    return n ? 0 : -EINVAL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: parley-loadgen --port PORT --secret-file FILE [options]\n"
            "  --host ADDR            router address, IPv4 (default 127.0.0.1)\n"
            "  --pairs K              sender/receiver component pairs (default 4, max %d)\n"
            "  --count N              messages in the measured phase, all pairs (default "
            "100000)\n"
            "  --warmup M             messages per pair before measuring (default 2000)\n"
            "  --size BYTES           bytes per message stanza (default 200, %d..%d)\n"
            "  --window W             messages in flight per pair (default 500)\n"
            "  --timeout SECONDS      limit per phase (default 60)\n"
            "  --min-seconds S        keep sending more (in steps of --count) until the\n"
            "                         measured phase has lasted S seconds (default 0)\n"
            "  --sender-prefix P      sender domains are P0.D, P1.D ... (default a)\n"
            "  --receiver-prefix P    receiver domains (default b)\n"
            "  --domain D             (default bench)\n"
            "  --server-pid PID       report this process's CPU time and peak RSS\n",
            LG_MAX_PAIRS, LG_MIN_SIZE, LG_MAX_SIZE);
}

static int parse_options(lg_options_t *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"secret-file", required_argument, NULL, 's'},
        {"pairs", required_argument, NULL, 'k'},
        {"count", required_argument, NULL, 'n'},
        {"warmup", required_argument, NULL, 'w'},
        {"size", required_argument, NULL, 'b'},
        {"window", required_argument, NULL, 'W'},
        {"timeout", required_argument, NULL, 't'},
        {"min-seconds", required_argument, NULL, 'm'},
        {"sender-prefix", required_argument, NULL, 'A'},
        {"receiver-prefix", required_argument, NULL, 'B'},
        {"domain", required_argument, NULL, 'D'},
        {"server-pid", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (lg_options_t){
        .host = "127.0.0.1",
        .pairs = 4,
        .count = 100000,
        .warmup = 2000,
        .size = 200,
        .window = 500,
        .timeout = 60,
        .sender_prefix = "a",
        .receiver_prefix = "b",
        .domain = "bench",
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            o->host = optarg;
            break;
        case 'p':
            o->port = atoi(optarg);
            break;
        case 's':
            o->secret_file = optarg;
            break;
        case 'k':
            o->pairs = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'n':
            o->count = strtoull(optarg, NULL, 10);
            break;
        case 'w':
            o->warmup = strtoull(optarg, NULL, 10);
            break;
        case 'b':
            o->size = strtoul(optarg, NULL, 10);
            break;
        case 'W':
            o->window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 't':
            o->timeout = strtod(optarg, NULL);
            break;
        case 'm':
            o->min_seconds = strtod(optarg, NULL);
            break;
        case 'A':
            o->sender_prefix = optarg;
            break;
        case 'B':
            o->receiver_prefix = optarg;
            break;
        case 'D':
            o->domain = optarg;
            break;
        case 'P':
            o->server_pid = strtol(optarg, NULL, 10);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || o->port <= 0 || o->port > 65535 || !o->secret_file || o->pairs < 1 ||
        o->pairs > LG_MAX_PAIRS || o->size < LG_MIN_SIZE || o->size > LG_MAX_SIZE ||
        o->window < 1 || o->window > 1000000 || o->count > UINT64_C(1000000000) ||
        o->warmup > UINT64_C(1000000000) || !(o->timeout > 0 && o->timeout <= 86400) ||
        !(o->min_seconds >= 0 && o->min_seconds < o->timeout))
        return -EINVAL;
    return 0;
}

static void print_result(const loadgen_t *lg)
{
    uint64_t got = 0, bounced = 0;
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        got += lg->receivers[i].counted;
        bounced += lg->senders[i].counted;
    }
    /* Only the measured phase: subtract what the warm-up delivered. */
    uint64_t warm = lg->opt.warmup * lg->opt.pairs;
    uint64_t stanzas = got > warm ? got - warm : 0;
    double secs = (double)(lg->end.ns - lg->start.ns) / 1e9;
    double self = lg->end.self_cpu - lg->start.self_cpu;
    double server = lg->start.server_cpu >= 0 && lg->end.server_cpu >= 0
        ? lg->end.server_cpu - lg->start.server_cpu
        : -1;
    long hwm = lg->opt.server_pid > 0 ? proc_status_kb(lg->opt.server_pid, "VmHWM") : -1;
    long rss = lg->opt.server_pid > 0 ? proc_status_kb(lg->opt.server_pid, "VmRSS") : -1;
    printf("RESULT stanzas=%" PRIu64 " seconds=%.4f rate=%.1f size=%zu pairs=%u window=%u "
           "loadgen_cpu=%.3f server_cpu=%.3f server_hwm_kb=%ld server_rss_kb=%ld "
           "bounced=%" PRIu64 " complete=%d\n",
           stanzas, secs, secs > 0 ? (double)stanzas / secs : 0.0, lg->opt.size, lg->opt.pairs,
           lg->opt.window, self, server, hwm, rss, bounced, lg->timed_out ? 0 : 1);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    /* Static storage: the buffers are large (about 25 MB at LG_MAX_PAIRS) and untouched
     * pages of unused pairs cost nothing. */
    static loadgen_t lg_storage;
    loadgen_t *lg = &lg_storage;
    int rc = parse_options(&lg->opt, argc, argv);
    if (rc < 0) {
        usage(stderr);
        return 2;
    }
    rc = read_secret(lg);
    if (rc < 0) {
        fprintf(stderr, "loadgen: cannot read the secret from %s: %s\n", lg->opt.secret_file,
                strerror(-rc));
        return 2;
    }
    struct sockaddr_in addr;
    rc = uv_ip4_addr(lg->opt.host, lg->opt.port, &addr);
    if (rc < 0) {
        fprintf(stderr, "loadgen: bad address %s\n", lg->opt.host);
        return 2;
    }
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        lg_conn_t *cs[2] = {&lg->receivers[i], &lg->senders[i]};
        for (int k = 0; k < 2; k++) {
            lg_conn_t *c = cs[k];
            c->lg = lg;
            c->index = i;
            c->sender = k == 1;
            snprintf(c->domain, sizeof(c->domain), "%s%u.%s",
                     c->sender ? lg->opt.sender_prefix : lg->opt.receiver_prefix, i,
                     lg->opt.domain);
            if (!domain_ok(c->domain)) {
                fprintf(stderr, "loadgen: bad domain %s (use a-z 0-9 . -)\n", c->domain);
                return 2;
            }
        }
        if (build_message(lg, &lg->senders[i]) < 0) {
            fprintf(stderr, "loadgen: --size %zu is too small for these domains\n", lg->opt.size);
            return 2;
        }
    }
    rc = uv_loop_init(&lg->loop);
    if (rc < 0) {
        fprintf(stderr, "loadgen: uv_loop_init: %s\n", uv_strerror(rc));
        return 2;
    }
    uv_timer_init(&lg->loop, &lg->timer);
    lg->timer.data = lg;
    lg->phase = LG_PHASE_CONNECT;
    for (unsigned i = 0; i < lg->opt.pairs; i++) {
        lg_conn_t *cs[2] = {&lg->receivers[i], &lg->senders[i]};
        for (int k = 0; k < 2; k++) {
            uv_tcp_init(&lg->loop, &cs[k]->tcp);
            cs[k]->tcp.data = cs[k];
            cs[k]->connect_req.data = cs[k];
        }
    }
    /* Receivers first, so that no message finds its route missing. */
    for (unsigned i = 0; i < lg->opt.pairs && rc == 0; i++)
        rc = uv_tcp_connect(&lg->receivers[i].connect_req, &lg->receivers[i].tcp,
                            (const struct sockaddr *)&addr, on_connect);
    for (unsigned i = 0; i < lg->opt.pairs && rc == 0; i++)
        rc = uv_tcp_connect(&lg->senders[i].connect_req, &lg->senders[i].tcp,
                            (const struct sockaddr *)&addr, on_connect);
    if (rc < 0) {
        fprintf(stderr, "loadgen: connect: %s\n", uv_strerror(rc));
        lg->failed = true;
        lg_finish(lg);
    } else {
        uv_timer_start(&lg->timer, on_timeout, (uint64_t)(lg->opt.timeout * 1000.0), 0);
    }
    uv_run(&lg->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&lg->loop);
    if (rc < 0)
        fprintf(stderr, "loadgen: uv_loop_close: %s\n", uv_strerror(rc));
    if (lg->failed)
        return 2;
    print_result(lg);
    return lg->timed_out ? 1 : 0;
}
