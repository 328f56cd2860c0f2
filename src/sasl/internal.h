/* SPDX-License-Identifier: MIT */
/* Declarations shared inside src/sasl/ (and by its unit test and fuzz target). */
#ifndef PARLEY_SASL_INTERNAL_H
#define PARLEY_SASL_INTERNAL_H

#include "sasl/sasl.h"

/* RFC 5802 §5.1 puts no bound on the client nonce; we do. */
#define SASL_CNONCE_MAX 256
/* Our nonce: 24 random bytes in base64, 32 printable characters without ','. */
#define SASL_SNONCE_RAW 24
#define SASL_SNONCE_LEN 32
#define SASL_MOCK_KEY_MAX 64

typedef enum sasl_state {
    SASL_ST_START, /* nothing received yet */
    SASL_ST_CHALLENGED, /* no initial response: we sent an empty challenge */
    SASL_ST_NEED_CREDS, /* waiting for sasl_server_set_creds */
    SASL_ST_HAVE_CREDS, /* credentials set, the next step uses them */
    SASL_ST_SENT_FIRST, /* SCRAM: server-first sent, waiting for client-final */
    SASL_ST_NEED_WORK, /* PLAIN: waiting for sasl_server_work */
    SASL_ST_WORKED, /* PLAIN: the password was checked */
    SASL_ST_DONE, /* SUCCESS or FAILURE was returned */
} sasl_state_t;

typedef struct sasl_server sasl_server_t;

/* One mechanism: its name and its steps. */
typedef struct sasl_mech {
    const char *name;
    bool scram; /* false: PLAIN */
    auth_hash_t hash; /* SCRAM only */
    bool plus; /* -PLUS: channel binding required */
} sasl_mech_t;

struct scram_state {
    char *first; /* owned copy of the client-first-message */
    size_t first_len;
    size_t bare_off; /* first[0..bare_off) is the gs2 header, the rest the bare message */
    char flag; /* gs2-cbind-flag: 'n', 'y' or 'p' */
    sasl_cb_type_t cb_type; /* when flag is 'p' */
    char cnonce[SASL_CNONCE_MAX];
    size_t cnonce_len;
    char snonce[SASL_SNONCE_LEN];
    size_t snonce_len; /* 0 until set (by the test hook, or at server-first) */
    char *server_first; /* owned */
    size_t server_first_len;
};

struct plain_state {
    char password[AUTH_PASSWORD_MAX]; /* as the client sent it; wiped once checked */
    size_t password_len;
    int verdict; /* auth_creds_check_password's answer, set by the work */
};

struct sasl_server {
    const sasl_mech_t *mech;
    sasl_state_t state;
    sasl_error_t error;
    const char *reason; /* static string */
    jid_t domain; /* prepared, no node or resource */
    jid_t user; /* valid when have_user */
    bool have_user;
    jid_t authzid; /* valid when have_authzid */
    bool have_authzid;
    sasl_cb_data_t cb[SASL_CB_COUNT];
    bool plus_offered;
    uint8_t mock_key[SASL_MOCK_KEY_MAX];
    size_t mock_key_len;
    auth_creds_t creds;
    bool fake; /* creds are made up (unknown user): the exchange must fail at the end */
    int lookup_status; /* a temporary lookup failure, else 0 */
    core_buf_t out;
    union {
        struct scram_state scram;
        struct plain_state plain;
    } u;
};

/* Records the failure (condition and log reason) and ends the session. */
sasl_result_t sasl_fail(sasl_server_t *s, sasl_error_t e, const char *reason);

/* Strict UTF-8 (RFC 3629) without NUL. */
bool sasl_utf8_valid(const char *p, size_t len);

/*
 * Sets the user from an authcid: it must be a valid localpart of the session's domain (no
 * '@' or '/'; nodeprep succeeds). Returns 0 or -EINVAL.
 */
int sasl_set_user(sasl_server_t *s, const char *authcid, size_t len);

/* Sets the authzid; it must prepare to the user's bare JID. Returns 0 or -EINVAL. */
int sasl_set_authzid(sasl_server_t *s, const char *authzid, size_t len);

/* Made-up credentials for the mechanism's hash (an unknown user), marking s fake. */
void sasl_fake_creds(sasl_server_t *s);

/* The mechanisms' steps, by state. */
sasl_result_t sasl_plain_step(sasl_server_t *s, const uint8_t *in, size_t len);
void sasl_plain_work(sasl_server_t *s);
void sasl_plain_clear(sasl_server_t *s);
sasl_result_t sasl_scram_step(sasl_server_t *s, const uint8_t *in, size_t len);
void sasl_scram_clear(sasl_server_t *s);

/*
 * Test hook: the server nonce to use instead of a random one (printable, no ',', at most
 * SASL_SNONCE_LEN characters), so a test can replay the RFC exchanges byte for byte. Call it
 * before the step that sends server-first.
 */
void sasl_server_set_nonce(sasl_server_t *s, const char *nonce, size_t len);

#endif
