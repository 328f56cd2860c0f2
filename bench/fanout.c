/* SPDX-License-Identifier: MIT */
/*
 * parley-fanout: what it costs to fan one message out to many recipients, the old way (a full
 * copy per recipient, readdressed and serialised again) against the new one (a readdressed
 * stanza sharing the payload, written in pieces), through the code a stanza goes through in
 * process: the parsed message, the sm's readdressing and route envelope, the c2s opening
 * it, and the bytes queued for the connection (or, for a component in its own process, the
 * envelope's bytes for the stream link). Prints RESULT lines; never passes or fails.
 */
#include "core/alloc.h"
#include "core/buf.h"
#include "xml/xml.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RECIPIENTS_MAX 100000

typedef enum way {
    WAY_OLD, /* copy + set from/to, serialised per recipient */
    WAY_NEW, /* xml_stanza_readdress, written in pieces */
    WAY_NEW_JOINED, /* xml_stanza_readdress, written through xml_stanza_bytes (joined) */
} way_t;

static const char *const way_names[] = {"old", "new", "new-joined"};

typedef enum path {
    PATH_C2S, /* sm → envelope → (in-process link) → c2s opens it → connection's queue */
    PATH_LINK, /* sm → envelope → its bytes on the stream link (sm in its own process) */
} path_t;

static const char *const path_names[] = {"c2s", "link"};

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The groupchat message as an occupant's c2s hands it on: parsed once from the stream. */
static xml_stanza_t *source_new(size_t payload)
{
    static const char hdr[] = "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const char words[] = "Wherefore art thou Romeo? Deny thy father & refuse thy name. ";
    core_buf_t b = {0};
    core_buf_append_str(&b, "<message to='room@muc.localhost' type='groupchat' id='m1'><body>");
    for (size_t i = 0; i < payload; i++)
        xml_escape(&b, &words[i % (sizeof(words) - 1)], 1, false);
    core_buf_append_str(&b, "</body></message>");
    xml_parser_t *p = xml_parser_new(NULL);
    xml_event_t ev;
    xml_parser_feed(p, hdr, sizeof(hdr) - 1);
    xml_parser_feed(p, b.data, b.len);
    core_buf_release(&b);
    xml_stanza_t *st = NULL;
    if (xml_parser_next(p, &ev) == 0) {
        xml_stanza_unref(ev.stanza);
        if (xml_parser_next(p, &ev) == 0)
            st = ev.stanza;
    }
    xml_parser_free(p);
    if (st != NULL) /* c2s stamps the sender's full JID (RFC 6120 §8.1.2.1) */
        xml_stanza_set_root_attr(st, "from", "romeo@localhost/orchard");
    return st;
}

/* One recipient's stanza and the envelope the sm routes it in (sm_sess_send). */
static xml_stanza_t *envelope_for(xml_stanza_t *src, way_t way, const char *to)
{
    xml_stanza_t *st;
    if (way == WAY_OLD) {
        st = xml_stanza_copy(src);
        xml_node_set_attr(st, st->root, NULL, "from", "room@muc.localhost/romeo");
        xml_node_set_attr(st, st->root, NULL, "to", to);
    } else {
        st = xml_stanza_readdress(src, "room@muc.localhost/romeo", to);
    }
    xml_stanza_t *env = xml_envelope_new(XMLS_NS_CONTENT, "route", st);
    xml_stanza_unref(st);
    xml_node_set_attr(env, env->root, NULL, "to", "c2s.localhost");
    xml_node_set_attr(env, env->root, NULL, "from", "localhost");
    xml_node_set_attr(env, env->root, NULL, "sid", "0123456789abcdef");
    return env;
}

/* Queues st's bytes as stream_send does (pieces) or as a writer of joined bytes would. */
static void queue_bytes(core_buf_t *q, xml_stanza_t *st, way_t way)
{
    if (way == WAY_NEW) {
        core_span_t v[XMLS_PIECES_MAX];
        size_t n = xml_stanza_pieces(st, v);
        for (size_t i = 0; i < n; i++)
            core_buf_append(q, v[i].data, v[i].len);
    } else {
        size_t len;
        const char *b = xml_stanza_bytes(st, &len);
        core_buf_append(q, b, len);
    }
}

/* One recipient end to end; what it keeps alive (the envelope) goes to *keep. */
static void deliver_one(xml_stanza_t *src, way_t way, path_t path, const char *to, core_buf_t *q,
                        xml_stanza_t **keep)
{
    xml_stanza_t *env = envelope_for(src, way, to);
    if (path == PATH_C2S) {
        xml_stanza_t *out = xml_envelope_open(env);
        queue_bytes(q, out, way);
        xml_stanza_unref(out);
    } else {
        queue_bytes(q, env, way);
    }
    *keep = env;
}

typedef struct result {
    double ns_median; /* per recipient */
    double ns_min;
    double live_bytes; /* per recipient: allocated by the fan-out and alive at its end (the
                        * stanzas and envelopes; not the queues, whose buffers are reused) */
    double queue_bytes; /* per recipient: the bytes queued for it */
} result_t;

static void run(size_t payload, way_t way, path_t path, unsigned n, unsigned rounds, result_t *res)
{
    char(*to)[48] = malloc((size_t)n * sizeof(*to));
    xml_stanza_t **keep = malloc((size_t)n * sizeof(*keep));
    core_buf_t *q = calloc(n, sizeof(*q));
    double *per = malloc((size_t)rounds * sizeof(*per));
    for (unsigned i = 0; i < n; i++)
        snprintf(to[i], sizeof(to[i]), "occupant%u@localhost/res", i);
    for (unsigned r = 0; r <= rounds; r++) {
        /* A fresh message each round: its content is cut once per fan-out, as in the server. */
        xml_stanza_t *src = source_new(payload);
        size_t before = core_alloc_bytes();
        double t0 = now_ns();
        for (unsigned i = 0; i < n; i++)
            deliver_one(src, way, path, to[i], &q[i], &keep[i]);
        double t1 = now_ns();
        size_t live = core_alloc_bytes() - before;
        size_t queued = 0;
        for (unsigned i = 0; i < n; i++)
            queued += q[i].len;
        double t2 = now_ns();
        for (unsigned i = 0; i < n; i++)
            xml_stanza_unref(keep[i]);
        xml_stanza_unref(src);
        double t3 = now_ns();
        /* The queues keep their buffers, as a connection's would: only round 0 grows them. */
        for (unsigned i = 0; i < n; i++)
            q[i].len = 0;
        if (r == 0)
            continue; /* warm-up */
        per[r - 1] = ((t1 - t0) + (t3 - t2)) / n;
        res->live_bytes = (double)live / n;
        res->queue_bytes = (double)queued / n;
    }
    qsort(per, rounds, sizeof(*per), cmp_double);
    res->ns_median = per[rounds / 2];
    res->ns_min = per[0];
    for (unsigned i = 0; i < n; i++)
        core_buf_release(&q[i]);
    free(per);
    free(q);
    free(keep);
    free(to);
}

static void usage(void)
{
    fprintf(stderr, "usage: parley-fanout [--recipients N] [--rounds N] [--payload BYTES]...\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"recipients", required_argument, NULL, 'n'},
        {"rounds", required_argument, NULL, 'r'},
        {"payload", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    unsigned n = 1000, rounds = 20;
    size_t payloads[8] = {0};
    size_t npayloads = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            n = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'r':
            rounds = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            if (npayloads < sizeof(payloads) / sizeof(payloads[0]))
                payloads[npayloads++] = strtoul(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (n == 0 || n > RECIPIENTS_MAX || rounds == 0) {
        usage();
        return 2;
    }
    if (npayloads == 0) {
        payloads[npayloads++] = 200;
        payloads[npayloads++] = 4096;
    }
    printf("# %u recipients, median of %u rounds; ns and bytes per recipient\n", n, rounds);
    for (size_t k = 0; k < npayloads; k++) {
        xml_stanza_t *src = source_new(payloads[k]);
        if (src == NULL) {
            fprintf(stderr, "cannot build the message\n");
            return 1;
        }
        xml_stanza_unref(src);
        for (int path = PATH_C2S; path <= PATH_LINK; path++) {
            double old_ns = 0;
            for (int way = WAY_OLD; way <= WAY_NEW_JOINED; way++) {
                result_t res = {0};
                run(payloads[k], (way_t)way, (path_t)path, n, rounds, &res);
                if (way == WAY_OLD)
                    old_ns = res.ns_median;
                printf("RESULT payload=%zu path=%s way=%s ns=%.0f ns_min=%.0f speedup=%.2f "
                       "live_bytes=%.0f queued_bytes=%.0f\n",
                       payloads[k], path_names[path], way_names[way], res.ns_median, res.ns_min,
                       old_ns / res.ns_median, res.live_bytes, res.queue_bytes);
            }
        }
    }
    return 0;
}
