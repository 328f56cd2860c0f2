/* SPDX-License-Identifier: MIT */
/* In-band registration (XEP-0077) before authentication: the form, and new accounts. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

static const char instructions[] = "Choose a username and password for use with this service.";

/*
 * One registration in flight on a connection (c->reg): it waits for the check that the name
 * is free, then for PBKDF2 on a worker thread, then for the account to be created.
 */
struct c2s_reg {
    char *id; /* the iq's id (owned), or NULL */
    char *user; /* the prepared localpart (owned) */
    size_t user_len;
    char password[AUTH_PASSWORD_MAX + 1];
    size_t password_len;
    auth_creds_t creds; /* written by the worker */
    int rc; /* the worker's result */
};

/* What a registration set carries (XEP-0077 §3.1), read once. */
typedef struct reg_fields {
    const xml_node_t *username;
    const xml_node_t *password;
    bool remove;
    bool bad; /* a field twice, or <remove/> beside others: bad-request */
} reg_fields_t;

/* An iq result, with an empty jabber:iq:register query when query is not NULL. */
static xml_stanza_t *result_new(const char *id, xml_node_t **query)
{
    xml_stanza_t *r = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(r, r->root, NULL, "type", "result");
    if (id != NULL)
        xml_node_set_attr(r, r->root, NULL, "id", id);
    if (query != NULL)
        *query = xml_node_add_element(r, r->root, C2S_NS_REGISTER, "query");
    return r;
}

/*
 * An iq error (RFC 6120 §8.3) with XEP-0086's legacy code beside the condition, as XEP-0077
 * §9 asks of servers. The request is not copied into it: it holds a password (§3.3). type
 * NULL: the condition's own.
 */
static void reply_error(c2s_conn_t *c, const char *id, core_stanza_err_t cond, const char *type)
{
    xml_stanza_t *e = result_new(id, NULL);
    xml_stanza_make_error(e, cond, type, true);
    c2s_conn_send(c, e);
    xml_stanza_unref(e);
}

/* Registration is on, and the auth source can create accounts. */
static bool enabled(const c2s_t *c2s)
{
    return c2s->cfg->registration && c2s->auth->ops->create != NULL;
}

void c2s_register_feature(c2s_conn_t *c, xml_stanza_t *features)
{
    /* XEP-0077 §8, offered beside SASL; §11: only where the stream is encrypted. */
    if (enabled(c->c2s) && c->tls)
        xml_node_add_element(features, features->root, C2S_NS_REGISTER_FEATURE, "register");
}

void c2s_register_free(c2s_conn_t *c)
{
    struct c2s_reg *reg = c->reg;
    if (reg == NULL)
        return;
    OPENSSL_cleanse(reg->password, sizeof(reg->password));
    auth_creds_clear(&reg->creds);
    core_free(reg->id);
    core_free(reg->user);
    core_free(reg);
    c->reg = NULL;
}

/* A lookup or create answered: false when the connection went away meanwhile (then freed). */
static bool answered(c2s_conn_t *c)
{
    c->auth_req = NULL;
    c->auth_busy = false;
    if (!c->gone)
        return true;
    c2s_conn_work_done(c);
    return false;
}

/* The registration in flight ends with an error. */
static void fail(c2s_conn_t *c, core_stanza_err_t cond)
{
    reply_error(c, c->reg->id, cond, NULL);
    c2s_register_free(c);
}

static void on_created(void *arg, int status)
{
    c2s_conn_t *c = arg;
    if (!answered(c))
        return;
    if (status == -EEXIST) {
        fail(c, CORE_STANZA_ERR_CONFLICT); /* taken meanwhile (XEP-0077 §3.1) */
        return;
    }
    if (status < 0) {
        core_log(c->c2s->log, CORE_LOG_WARN, c2s_conn_id(c), "cannot create account %s: %s",
                 c->reg->user, strerror(-status));
        fail(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "registered %s@%s from %s", c->reg->user,
             c->c2s->cfg->domain, c->s->conn != NULL ? c->s->conn->peer : "?");
    c->registered = true;
    xml_stanza_t *r = result_new(c->reg->id, NULL);
    c2s_conn_send(c, r);
    xml_stanza_unref(r);
    c2s_register_free(c);
}

static void hash_work(uv_work_t *w)
{
    c2s_conn_t *c = w->data;
    struct c2s_reg *reg = c->reg;
    reg->rc =
        auth_creds_from_password(reg->password, reg->password_len, AUTH_ITER_DEFAULT, &reg->creds);
    OPENSSL_cleanse(reg->password, sizeof(reg->password));
}

static void hash_done(uv_work_t *w, int status)
{
    c2s_conn_t *c = w->data;
    c2s_t *c2s = c->c2s;
    struct c2s_reg *reg = c->reg;
    if (!answered(c))
        return;
    /* Stopping: the auth source may be gone already. */
    if (status < 0 || reg->rc < 0 || c2s->stopping) {
        fail(c,
             reg->rc == -EINVAL ? CORE_STANZA_ERR_NOT_ACCEPTABLE
                                : CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return;
    }
    c->auth_busy = true;
    const char *dom = c2s->cfg->domain;
    int rc = auth_source_create(c2s->auth, reg->user, reg->user_len, dom, strlen(dom), &reg->creds,
                                on_created, c, &c->auth_req);
    auth_creds_clear(&reg->creds);
    if (rc < 0) {
        c->auth_busy = false;
        fail(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
}

/*
 * Whether the peer's source may register one more account now (take: and counts it). If not,
 * the registration ends with <resource-constraint/>: XEP-0077 leaves rate limits to policy,
 * and RFC 6120 §8.3.3.18's condition (type wait) tells the client to try again later.
 */
static bool within_limit(c2s_conn_t *c, bool take)
{
    c2s_t *c2s = c->c2s;
    uint64_t now = uv_now(c2s->net->loop);
    if (c2s_ratelimit_check(&c2s->reg_limit, c->src_key, c->src_len, now, take))
        return true;
    core_log(c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "registration from %s refused: rate limit",
             c->s->conn != NULL ? c->s->conn->peer : "?");
    fail(c, CORE_STANZA_ERR_RESOURCE_CONSTRAINT);
    return false;
}

/* The name is free: the source's registration is counted, and the password hashed. */
static void admit(c2s_conn_t *c)
{
    c2s_t *c2s = c->c2s;
    if (!within_limit(c, true))
        return;
    c->auth_busy = true;
    c->work.data = c;
    if (uv_queue_work(c2s->net->loop, &c->work, hash_work, hash_done) < 0) {
        c->auth_busy = false;
        fail(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
}

static void on_lookup(void *arg, int status, const auth_creds_t *creds)
{
    c2s_conn_t *c = arg;
    (void)creds;
    if (!answered(c))
        return;
    if (status == 0) {
        fail(c, CORE_STANZA_ERR_CONFLICT); /* XEP-0077 §3.1: the username is in use */
    } else if (status != -ENOENT) {
        core_log(c->c2s->log, CORE_LOG_WARN, c2s_conn_id(c), "registration: lookup failed: %s",
                 strerror(-status));
        fail(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    } else {
        admit(c);
    }
}

/* The prepared localpart of a requested username, which must be a localpart of our domain. */
static int prepare_user(c2s_conn_t *c, const xml_node_t *n, jid_t *out)
{
    size_t len = 0;
    const char *name = xml_node_text(n, &len);
    if (len == 0 || len > JID_PART_MAX || memchr(name, '@', len) != NULL ||
        memchr(name, '/', len) != NULL)
        return -EINVAL;
    core_buf_t b = {0};
    core_buf_append(&b, name, len);
    core_buf_append_str(&b, "@");
    core_buf_append_str(&b, c->c2s->cfg->domain);
    int rc = jid_parse(c->c2s->jids, b.data, b.len, out);
    core_buf_release(&b);
    if (rc == 0 && (!jid_has_node(out) || jid_has_resource(out))) {
        jid_clear(out);
        rc = -EINVAL;
    }
    return rc;
}

static void read_fields(const xml_node_t *q, reg_fields_t *f)
{
    unsigned others = 0;
    *f = (reg_fields_t){0};
    for (const xml_node_t *n = xml_node_first_element(q); n != NULL; n = xml_node_next_element(n)) {
        const xml_node_t **slot = NULL;
        if (xml_node_is(n, C2S_NS_REGISTER, "username"))
            slot = &f->username;
        else if (xml_node_is(n, C2S_NS_REGISTER, "password"))
            slot = &f->password;
        else if (!xml_node_is(n, C2S_NS_REGISTER, "remove"))
            others++;
        else if (f->remove)
            f->bad = true;
        else
            f->remove = true;
        if (slot != NULL) {
            f->bad |= *slot != NULL;
            *slot = n;
        }
    }
    /* XEP-0077 §3.2: <remove/> must be the only child. */
    if (f->remove && (others > 0 || f->username != NULL || f->password != NULL))
        f->bad = true;
}

/* The checks of XEP-0077 §3.1 that need nothing but the request: true and *cond to refuse. */
static bool refused(c2s_conn_t *c, const reg_fields_t *f, core_stanza_err_t *cond)
{
    size_t plen = 0;
    *cond = CORE_STANZA_ERR_BAD_REQUEST;
    if (f->bad)
        return true;
    /* §3.1.1 allows one registration per stream, before authentication: one at a time. */
    *cond = CORE_STANZA_ERR_UNEXPECTED_REQUEST;
    if (c->auth_busy || c->sasl != NULL || c->reg != NULL)
        return true;
    /* §3.2: removing a registration before authentication names nobody. */
    if (f->remove)
        return true;
    /* §3.1: a second account on the same stream; a field of the form missing; an empty
     * password (or one SASLprep refuses). */
    *cond = CORE_STANZA_ERR_NOT_ACCEPTABLE;
    if (c->registered || f->username == NULL || f->password == NULL)
        return true;
    const char *pw = xml_node_text(f->password, &plen);
    return auth_password_acceptable(pw, plen) < 0;
}

static void reg_set(c2s_conn_t *c, const char *id, const xml_node_t *q)
{
    c2s_t *c2s = c->c2s;
    reg_fields_t f;
    core_stanza_err_t cond;
    jid_t j = {0};
    read_fields(q, &f);
    bool no = refused(c, &f, &cond);
    if (!no && prepare_user(c, f.username, &j) < 0) {
        no = true; /* not a localpart of ours (nodeprep, RFC 7622 §3.3) */
        cond = CORE_STANZA_ERR_NOT_ACCEPTABLE;
    }
    if (no) {
        reply_error(c, id, cond, NULL);
        return;
    }
    struct c2s_reg *reg = core_calloc(1, sizeof(*reg));
    c->reg = reg;
    reg->id = id != NULL ? core_strdup(id) : NULL;
    reg->user = core_strndup(j.full, j.node_len);
    reg->user_len = j.node_len;
    jid_clear(&j);
    const char *pw = xml_node_text(f.password, &reg->password_len);
    memcpy(reg->password, pw, reg->password_len);
    /* Refused before it costs a lookup; counted only once the name is known to be free. */
    if (!within_limit(c, false))
        return;
    const char *dom = c2s->cfg->domain;
    c->auth_busy = true;
    int rc = auth_source_lookup(c2s->auth, reg->user, reg->user_len, dom, strlen(dom), on_lookup, c,
                                &c->auth_req);
    if (rc < 0) {
        c->auth_busy = false;
        fail(c, CORE_STANZA_ERR_INTERNAL_SERVER_ERROR);
    }
}

static void send_form(c2s_conn_t *c, const char *id)
{
    xml_node_t *q;
    xml_stanza_t *r = result_new(id, &q);
    xml_node_t *in = xml_node_add_element(r, q, C2S_NS_REGISTER, "instructions");
    xml_node_add_text(r, in, instructions, sizeof(instructions) - 1);
    xml_node_add_element(r, q, C2S_NS_REGISTER, "username");
    xml_node_add_element(r, q, C2S_NS_REGISTER, "password");
    c2s_conn_send(c, r);
    xml_stanza_unref(r);
}

/* An iq for the server itself: no 'to', or our domain (RFC 6120 §10.3). */
static bool to_server(c2s_conn_t *c, const xml_stanza_t *st)
{
    const char *to = xml_stanza_to(st);
    if (to == NULL)
        return true;
    jid_t j;
    if (jid_parse(c->c2s->jids, to, strlen(to), &j) < 0)
        return false;
    const char *dom = c->c2s->cfg->domain;
    bool ok = !jid_has_node(&j) && !jid_has_resource(&j) && j.domain_len == strlen(dom) &&
        memcmp(jid_domain_ptr(&j), dom, j.domain_len) == 0;
    jid_clear(&j);
    return ok;
}

/* The jabber:iq:register query of an iq get or set (get: *get true), or NULL. */
static const xml_node_t *register_query(const xml_stanza_t *st, bool *get)
{
    const char *type = xml_stanza_type(st);
    const xml_node_t *q = xml_node_first_element(st->root);
    if (!xml_node_is(st->root, XMLS_NS_CONTENT, "iq") || type == NULL ||
        !xml_node_is(q, C2S_NS_REGISTER, "query"))
        return NULL;
    *get = strcmp(type, "get") == 0;
    return *get || strcmp(type, "set") == 0 ? q : NULL;
}

bool c2s_register_iq(c2s_conn_t *c, xml_stanza_t *st)
{
    bool get = false;
    const xml_node_t *q = register_query(st, &get);
    if (q == NULL || !to_server(c, st))
        return false;
    const char *id = xml_stanza_id(st);
    if (!enabled(c->c2s)) {
        /* XEP-0077 §3.1: a host without in-band registration answers <service-unavailable/>. */
        reply_error(c, id, CORE_STANZA_ERR_SERVICE_UNAVAILABLE, NULL);
    } else if (!c->tls) {
        /* §11: not over a stream that is not encrypted; §3.3 names <not-authorized/> for a
         * channel not safe enough, with type modify: STARTTLS, then ask again. */
        reply_error(c, id, CORE_STANZA_ERR_NOT_AUTHORIZED, "modify");
    } else if (get) {
        send_form(c, id);
    } else {
        reg_set(c, id, q);
    }
    return true;
}

bool c2s_register_cleartext(c2s_conn_t *c, xml_stanza_t *st)
{
    bool get = true;
    const xml_node_t *q = register_query(st, &get);
    if (q == NULL || get || xml_node_child(q, C2S_NS_REGISTER, "password") == NULL)
        return false;
    /* XEP-0077 §3.3: a password change may be refused on a stream that is not encrypted, with
     * <not-authorized/>. Only c2s knows the stream, so the new password stops here. */
    reply_error(c, xml_stanza_id(st), CORE_STANZA_ERR_NOT_AUTHORIZED, "modify");
    return true;
}
