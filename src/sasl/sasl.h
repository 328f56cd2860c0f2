/* SPDX-License-Identifier: MIT */
/* Server-side SASL for c2s (RFC 6120 §6): PLAIN and SCRAM(-PLUS) as steps that never block. */
#ifndef PARLEY_SASL_H
#define PARLEY_SASL_H

#include "auth/auth.h"
#include "core/buf.h"
#include "jid/jid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SASL_NS "urn:ietf:params:xml:ns:xmpp-sasl"

/* The longest client message (decoded) any mechanism accepts; longer ones are malformed. */
#define SASL_MSG_MAX 16384

/*
 * What a step asks of the caller.
 *
 * SASL_CONTINUE: send out (possibly empty) base64-encoded in a <challenge/>; the next
 *   <response/> is the next step's input.
 * SASL_NEED_CREDS: the mechanism knows who is authenticating (sasl_server_jid()). Look up
 *   that user's credentials (asynchronously, e.g. auth_source_lookup), hand the answer to
 *   sasl_server_set_creds, then step again with no input.
 * SASL_NEED_WORK: call sasl_server_work (it hashes a password: run it on a worker thread,
 *   e.g. uv_queue_work; nothing else may touch the session meanwhile), then step again from
 *   the loop with no input.
 * SASL_SUCCESS: send <success/>, with out as additional data when out_len > 0 (RFC 6120
 *   §6.3.10; SCRAM's server-final message). sasl_server_jid() is the authenticated user.
 * SASL_FAILURE: send <failure/> with sasl_error_name(sasl_server_error()).
 */
typedef enum sasl_result {
    SASL_CONTINUE = 0,
    SASL_NEED_CREDS,
    SASL_NEED_WORK,
    SASL_SUCCESS,
    SASL_FAILURE,
} sasl_result_t;

/* The <failure/> conditions of RFC 6120 §6.5. */
typedef enum sasl_error {
    SASL_ERR_NONE = 0,
    SASL_ERR_ABORTED,
    SASL_ERR_ACCOUNT_DISABLED,
    SASL_ERR_CREDENTIALS_EXPIRED,
    SASL_ERR_ENCRYPTION_REQUIRED,
    SASL_ERR_INCORRECT_ENCODING,
    SASL_ERR_INVALID_AUTHZID,
    SASL_ERR_INVALID_MECHANISM,
    SASL_ERR_MALFORMED_REQUEST,
    SASL_ERR_MECHANISM_TOO_WEAK,
    SASL_ERR_NOT_AUTHORIZED,
    SASL_ERR_TEMPORARY_AUTH_FAILURE,
} sasl_error_t;

/* The condition's element name, e.g. "not-authorized"; "" for SASL_ERR_NONE. */
const char *sasl_error_name(sasl_error_t e);

/* Channel-binding types (RFC 5929, RFC 9266), named as in the gs2 header's "p=". */
typedef enum sasl_cb_type {
    SASL_CB_TLS_UNIQUE = 0,
    SASL_CB_TLS_EXPORTER,
    SASL_CB_TLS_SERVER_END_POINT,
} sasl_cb_type_t;

#define SASL_CB_COUNT 3
#define SASL_CB_DATA_MAX 64

/* "tls-unique", "tls-exporter", "tls-server-end-point" (also for XEP-0440). */
const char *sasl_cb_name(sasl_cb_type_t t);

/* One type's channel-binding data on this connection. */
typedef struct sasl_cb_data {
    size_t len; /* 0: this type is not available */
    uint8_t data[SASL_CB_DATA_MAX];
} sasl_cb_data_t;

/* Bit (1u << type) set for each type with data. */
unsigned sasl_cb_mask(const sasl_cb_data_t cb[SASL_CB_COUNT]);

/* What a connection can offer, for sasl_server_new. Everything is copied; nothing kept. */
typedef struct sasl_params {
    /* The stream's domain (the 'to' of the client's stream header); users are its accounts. */
    const char *domain;
    size_t domain_len;
    /* SASL_CB_COUNT entries, or NULL when the connection has no channel binding (no TLS). */
    const sasl_cb_data_t *cb;
    /* We advertised a -PLUS mechanism: a client saying 'y' is then being downgraded. */
    bool plus_offered;
    /*
     * Optional server secret (up to 64 bytes) for unknown users: SCRAM then answers with a
     * salt derived from it and the user name, the same every time, so the salt does not tell
     * who has an account (RFC 5802 §5.1). Without it the fake salt is random per attempt.
     */
    const uint8_t *mock_key;
    size_t mock_key_len;
} sasl_params_t;

/* The mechanisms we implement, strongest first. */
#define SASL_MECH_COUNT 5

/*
 * The mechanisms to offer, strongest first, into out (cap entries; SASL_MECH_COUNT is
 * enough): the -PLUS variants when cb_mask has a type, the SCRAMs always, PLAIN only when
 * tls (RFC 6120 §6.4.1; the caller may offer fewer). Returns the count written.
 */
size_t sasl_mechs_offer(bool tls, unsigned cb_mask, const char **out, size_t cap);

typedef struct sasl_server sasl_server_t;

/*
 * A server session for the mechanism the client chose (mech[0..mech_len), as in <auth
 * mechanism='...'/>). The caller checks first that it offered that mechanism (and answers
 * <encryption-required/> for PLAIN without TLS itself). Returns 0 and *out, -ENOENT for an
 * unknown mechanism or a -PLUS one without channel-binding data (<invalid-mechanism/>), or
 * -EINVAL when params->domain is not a valid domain or the mock key is too long.
 */
int sasl_server_new(const char *mech, size_t mech_len, const sasl_params_t *params,
                    sasl_server_t **out);

/* Wipes and frees the session. NULL is fine. */
void sasl_server_free(sasl_server_t *s);

/*
 * Feeds one client message: the initial response of <auth/>, then each <response/>, already
 * base64-decoded (sasl_b64_decode); in may be NULL when len is 0 (no data, or "="). After
 * NEED_CREDS / NEED_WORK, step with no input. *out, *out_len: what to send (owned by s, valid
 * until the next call on s). A message while NEED_CREDS or NEED_WORK is pending, or after
 * SUCCESS or FAILURE, fails with <malformed-request/>.
 */
sasl_result_t sasl_server_step(sasl_server_t *s, const uint8_t *in, size_t len, const uint8_t **out,
                               size_t *out_len);

/*
 * The answer to NEED_CREDS, with the arguments an auth_lookup_cb gets: status 0 and creds
 * (copied), -ENOENT (unknown user: the exchange goes on with fake credentials and fails with
 * <not-authorized/> at the end, like a wrong password), or another negative code (the next
 * step fails with <temporary-auth-failure/>). Returns 0, or -EINVAL when s is not waiting for
 * credentials (the session failed meanwhile: drop the answer).
 */
int sasl_server_set_creds(sasl_server_t *s, int status, const auth_creds_t *creds);

/* Does the work NEED_WORK asked for; any thread, allocates nothing. A no-op otherwise. */
void sasl_server_work(sasl_server_t *s);

/* The mechanism's name, e.g. "SCRAM-SHA-256-PLUS". */
const char *sasl_server_mech(const sasl_server_t *s);

/* After FAILURE: the condition, and a short reason for the log (never secret data). */
sasl_error_t sasl_server_error(const sasl_server_t *s);
const char *sasl_server_reason(const sasl_server_t *s);

/*
 * The user's bare JID (localpart = prepared authcid, domain = params->domain prepared), known
 * from NEED_CREDS on; NULL before. Borrowed from s. Look credentials up with its localpart
 * and domain.
 */
const jid_t *sasl_server_jid(const sasl_server_t *s);

/*
 * The authorization identity the client gave, prepared; NULL when it gave none. A session
 * only gets past the client's first message when it is the user's own bare JID (RFC 6120
 * §6.3.8: we let nobody act for another), else it fails with <invalid-authzid/>.
 */
const jid_t *sasl_server_authzid(const sasl_server_t *s);

/*
 * Base64 on the wire (RFC 6120 §6.4.2). Decoding is strict (auth_b64_decode: canonical, no
 * whitespace) and "=" is the empty response. Returns 0, -EINVAL (<incorrect-encoding/>) or
 * -EMSGSIZE (more than cap bytes: <malformed-request/>). The result may be a password: wipe
 * it with OPENSSL_cleanse.
 */
int sasl_b64_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* Appends the base64 of in[0..len) to out; "=" for no bytes. */
void sasl_b64_encode(const uint8_t *in, size_t len, core_buf_t *out);

#endif
