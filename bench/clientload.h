/* SPDX-License-Identifier: MIT */
/* The client load generator's shared types: connections, options, the run (bench only). */
#ifndef PARLEY_BENCH_CLIENTLOAD_H
#define PARLEY_BENCH_CLIENTLOAD_H

#include "core/buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <expat.h>
#include <openssl/ssl.h>
#include <uv.h>

enum {
    CL_MAX_CONNS = 20000,
    CL_MAX_PIDS = 16,
    CL_READ_BYTES = 65536,
    CL_TEXT_MAX = 4096,
    CL_SMALL = 128,
    CL_JID_MAX = 320,
    CL_LAST_BYTES = 300,
    CL_SHA1_LEN = 20,
    CL_SALT_MAX = 64,
    CL_CACHE_SLOTS = 16384,
    CL_CACHE_PROBES = 32,
    CL_HIST_LINEAR = 1024,
    CL_HIST_SUB = 512,
    CL_HIST_BUCKETS = CL_HIST_LINEAR + 54 * CL_HIST_SUB,
    CL_SEQ_DIGITS = 12,
    CL_TS_DIGITS = 16,
    CL_MAX_SIZE = 65536,
    CL_ERRORS_SHOWN = 3,
    CL_ROOM_MAX_SENDERS = 64,
    CL_ROOM_IDX_DIGITS = 5,
    /* A room message's header, in its body and its id: "<sender>.<seq>.<send time in µs>". */
    CL_ROOM_HDR_LEN = CL_ROOM_IDX_DIGITS + 1 + CL_SEQ_DIGITS + 1 + CL_TS_DIGITS,
};

enum cl_mode { CL_MODE_REGISTER, CL_MODE_LOGIN, CL_MODE_MESSAGE, CL_MODE_IDLE, CL_MODE_ROOM };

/* Message, idle and room modes log every connection in once and keep it: one failure ends the
 * run. */
static inline bool cl_mode_keeps_conns(enum cl_mode m)
{
    return m == CL_MODE_MESSAGE || m == CL_MODE_IDLE || m == CL_MODE_ROOM;
}

/* Where a connection is in its login. */
enum cl_step {
    STEP_CONNECTING,
    STEP_FEATURES_PLAIN, /* waiting for the first <stream:features/> */
    STEP_STARTTLS, /* sent <starttls/>, waiting for <proceed/> */
    STEP_TLS, /* TLS handshake */
    STEP_FEATURES_TLS, /* restarted over TLS, waiting for features */
    STEP_REGISTER, /* register mode: sent the XEP-0077 set */
    STEP_SASL, /* sent <auth/>, waiting for the server-first challenge */
    STEP_SASL_FINAL, /* sent the client-final response, waiting for <success/> */
    STEP_FEATURES_AUTH, /* restarted after SASL, waiting for features */
    STEP_BIND,
    STEP_SESSION, /* only for a server that requires RFC 3921 sessions */
    STEP_ROSTER, /* sent roster get and initial presence */
    STEP_JOINING, /* room mode: sent the join (and the room's creator its configuration) */
    STEP_ONLINE, /* message, idle and room modes: logged in (and in the room), staying */
    STEP_CLOSING, /* sent </stream:stream>, waiting for the server to close */
};

/* What the parser was stopped for; done once XML_Parse has returned. */
enum cl_action { ACT_NONE, ACT_STARTTLS, ACT_RESTART };

/* The depth-1 elements we act on (and depth-2 ones in features). */
enum cl_el {
    EL_OTHER,
    EL_FEATURES,
    EL_PROCEED,
    EL_TLS_FAILURE,
    EL_CHALLENGE,
    EL_SUCCESS,
    EL_SASL_FAILURE,
    EL_IQ,
    EL_MESSAGE,
    EL_PRESENCE,
    EL_STREAM_ERROR,
    EL_MECHANISMS,
    EL_SESSION,
    EL_BIND,
};

enum cl_phase { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_SETTLE, PH_DONE };

struct clientload;

struct cl_conn {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_write_t wreq;
    struct clientload *cl;
    unsigned index;
    bool in_use;
    bool closing;
    bool dead;
    bool in_parse;
    bool write_pending;
    bool tls_on;
    bool handshake_done;
    bool logged_in;
    bool counted; /* login/register: already counted as a success */
    enum cl_step step;
    enum cl_action action;
    unsigned user;
    uint64_t login_no;
    uint64_t t_start;
    uint64_t close_deadline;
    SSL *ssl;
    BIO *rbio;
    BIO *wbio;
    XML_Parser xp;
    unsigned depth;
    core_buf_t out; /* bytes to write next */
    core_buf_t wq; /* bytes handed to uv_write */
    /* The depth-1 element being parsed, and the depth-2 element inside it. */
    enum cl_el el;
    enum cl_el el2;
    char st_type[16];
    char st_id[CL_SMALL];
    char st_from[CL_JID_MAX];
    bool st_conflict;
    /* Room mode: the muc#user status codes of the presence being parsed (XEP-0045 §15.6). */
    bool st_self, st_created;
    bool cap_on;
    unsigned cap_depth;
    char text[CL_TEXT_MAX];
    size_t text_len;
    bool text_over;
    char err_cond[64];
    /* Stream features. */
    bool f_starttls, f_scram_sha1, f_bind, f_session, f_session_optional, f_register;
    /* SASL SCRAM-SHA-1. */
    char cnonce[40];
    char cfirst_bare[CL_SMALL * 2];
    unsigned char server_sig[CL_SHA1_LEN];
    bool sig_verified;
    char jid[CL_JID_MAX];
    bool got_roster, got_echo;
    /* Message mode: sender counts, receiver counts, the message template. */
    uint64_t sent, target, received;
    bool done;
    uint64_t msg_ts;
    uint64_t msg_seq;
    bool msg_error;
    char *msg;
    size_t msg_len;
    size_t msg_id_at;
    /* Room mode: messages of its own that came back (senders), and each sender's last sequence
     * number seen (--senders entries). */
    uint64_t echoed;
    uint64_t *room_seq;
    bool body_on; /* room mode: capturing the <body/> of a message */
    /* The last plaintext bytes from the server, shown on errors. */
    char last[CL_LAST_BYTES];
    size_t last_len;
};
typedef struct cl_conn cl_conn_t;

struct cl_options {
    enum cl_mode mode;
    const char *host;
    int port;
    const char *domain;
    const char *user_prefix;
    unsigned first;
    unsigned users;
    const char *password_file;
    const char *password;
    uint64_t count;
    int64_t warmup; /* -1: the default of the mode */
    unsigned concurrency;
    unsigned pairs;
    unsigned window;
    size_t size;
    double min_seconds;
    double timeout;
    double settle_ms;
    double close_timeout;
    long pids[CL_MAX_PIDS];
    unsigned npids;
    const char *server_name;
    bool wait_roster;
    bool carbons; /* enable message carbons (XEP-0280) at login */
    uint64_t max_errors;
    /* Room mode. */
    const char *room; /* the room's local part */
    const char *muc_domain;
    unsigned senders;
    uint64_t max_lag;
};
typedef struct cl_options cl_options_t;

struct cl_sample {
    uint64_t ns;
    double self_cpu;
    double server_cpu;
    double server_cpu_each[CL_MAX_PIDS]; /* CPU seconds of each --server-pid; -1 if unreadable */
    long server_rss_kb[CL_MAX_PIDS]; /* VmRSS of each --server-pid; -1 if unreadable */
};
typedef struct cl_sample cl_sample_t;

struct cl_cache_entry {
    unsigned char salt[CL_SALT_MAX];
    unsigned salt_len; /* 0: free */
    unsigned iter;
    unsigned char salted[CL_SHA1_LEN];
};

struct clientload {
    uv_loop_t loop;
    uv_timer_t tick;
    cl_options_t opt;
    char password[256];
    size_t password_len;
    SSL_CTX *tls;
    struct sockaddr_in addr;
    cl_conn_t *conns;
    unsigned nconns;
    unsigned open_conns;
    /* Login and register modes: the indexes of free connections, and the logins in progress. */
    unsigned *spare;
    unsigned nspare;
    unsigned in_progress;
    enum cl_phase phase;
    /* Login and register modes: the current phase's logins. */
    uint64_t ph_total, ph_started, ph_finished;
    uint64_t next_login;
    /* Message and idle modes: connections opened and logged in. */
    unsigned setup_started;
    unsigned online;
    /* Message mode. */
    unsigned receivers_done;
    uint64_t received_at_start;
    uint64_t deadline;
    uint64_t settle_until;
    bool stopping;
    bool failed;
    bool timed_out;
    uint64_t ok; /* logins (or registrations) that succeeded in the measured phase */
    uint64_t errors;
    uint64_t existed;
    uint64_t bounced;
    uint64_t out_of_order;
    uint64_t close_timeouts;
    uint64_t pbkdf2_runs;
    /* Room mode: see clientload_room.c. */
    bool room_ready;
    bool room_created; /* the room was new (status 201) and its creator configured it */
    uint64_t room_target; /* sum of the senders' targets: every occupant gets them all */
    uint64_t room_sent; /* sum of the senders' sent */
    uint64_t room_delivered; /* messages received, all occupants */
    uint64_t room_delivered_at_start;
    uint64_t room_echoed_at_start;
    uint64_t room_messages; /* the measured phase's messages, by their senders' echoes */
    uint64_t room_min; /* the fewest messages any occupant has received */
    unsigned room_at_min; /* occupants with room_min messages */
    bool room_min_moved;
    uint64_t room_lag_waits;
    uint64_t t0; /* when the run began */
    uint64_t room_join_ns; /* when every occupant had joined */
    cl_sample_t start;
    cl_sample_t end;
    char tls_desc[96];
    bool sha256_offered;
    char rbuf[CL_READ_BYTES];
    char pbuf[CL_READ_BYTES];
    uint64_t hist[CL_HIST_BUCKETS];
    uint64_t hist_n;
    struct cl_cache_entry cache[CL_CACHE_SLOTS];
};
typedef struct clientload clientload_t;

/* clientload_conn.c: one client connection (TCP, TLS, XML stream, SASL, the login steps). */

/* Starts a login (or registration) of user number `user` on c, which must be free. */
void cl_conn_open(cl_conn_t *c, unsigned user, uint64_t login_no);
/* Queues plaintext: through TLS once it runs. cl_conn_settle() writes it out. */
void cl_conn_send(cl_conn_t *c, const char *p, size_t n);
/* Ends every entry point into a connection: closes a failed one, else flushes its output. */
void cl_conn_settle(cl_conn_t *c);
/* Sends </stream:stream>; the connection closes when the server closes (or after a while). */
void cl_conn_end_stream(cl_conn_t *c);
/* Closes at once; cl_conn_closed() runs when the handle is closed. */
void cl_conn_close(cl_conn_t *c);
/* Marks c failed (closed at the next cl_conn_settle), counts and reports the error. */
void cl_conn_fail(cl_conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* clientload.c: the run, called by the connections. */

/* A login or registration succeeded (message and idle modes: the user is online). */
void cl_login_done(cl_conn_t *c);
/* c's handle has closed and its resources are freed; c may be reused. */
void cl_conn_closed(cl_conn_t *c);
/* Message mode: c (a receiver) has processed a read; refill its sender's window. */
void cl_input_done(cl_conn_t *c);
/* Message, idle and room modes: c is logged in (room mode: and in the room) to stay. */
void cl_conn_online(cl_conn_t *c);
/* The measured phase begins: the histogram is cleared, the first sample taken. */
void cl_measure_begin(clientload_t *cl);
/* The measured phase is over: the final server reading comes --settle-ms later. */
void cl_settle_begin(clientload_t *cl);
/* Message mode: sends what the window allows on sender s. */
void cl_sender_pump(cl_conn_t *s);
/* Records a latency sample of the measured phase, in microseconds. */
void cl_hist_add(clientload_t *cl, uint64_t us);
/* Stops the run as failed. */
void cl_abort(clientload_t *cl, const char *why);

/* clientload_room.c: room mode, one multi-user chat room (XEP-0045) and its occupants. */

/* Builds the senders' message templates; -EINVAL if --size cannot hold one. */
int cl_room_setup(clientload_t *cl);
/* Frees what cl_room_setup() and the connections' room state hold. */
void cl_room_free(clientload_t *cl);
/* Whether connection i may start its login: the creator first, the others once the room is up. */
bool cl_room_may_open(const clientload_t *cl, unsigned i);
/* Every occupant is in the room: the warm-up begins. */
void cl_room_start(clientload_t *cl);
/* c has logged in: it joins the room (XEP-0045 §7.2), without history. */
void cl_room_join(cl_conn_t *c);
/* A presence arrived on c while it joins. */
void cl_room_presence(cl_conn_t *c);
/* The answer to the creator's instant-room configuration (XEP-0045 §10.1.2). */
void cl_room_configured(cl_conn_t *c, bool result);
/* A groupchat message with its body in c->text arrived on c. */
void cl_room_message(cl_conn_t *c);
/* c has processed a read: refill the senders' windows, end the phase when all is delivered. */
void cl_room_input_done(cl_conn_t *c);
/* Sends what the window and the lag bound allow on sender s. */
void cl_room_pump(cl_conn_t *s);
/* Counts the measured phase's deliveries and messages into cl->ok and cl->room_messages. */
void cl_room_tally(clientload_t *cl);
/* Appends the room's fields to the RESULT line. */
void cl_room_print(const clientload_t *cl);

#endif
