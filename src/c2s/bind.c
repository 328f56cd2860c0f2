/* SPDX-License-Identifier: MIT */
/* Resource binding (RFC 6120 §7): the sm is told start, and the iq is answered on started. */
#include "c2s/internal.h"

#include "core/alloc.h"

#include <openssl/rand.h>
#include <string.h>

/* An iq error answering req (RFC 6120 §8.3), with the condition in the stanzas namespace. */
void c2s_iq_error(c2s_conn_t *c, const char *id, const char *type, const char *cond)
{
    xml_stanza_t *e = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(e, e->root, NULL, "type", "error");
    if (id != NULL)
        xml_node_set_attr(e, e->root, NULL, "id", id);
    xml_node_t *err = xml_node_add_element(e, e->root, XMLS_NS_CONTENT, "error");
    xml_node_set_attr(e, err, NULL, "type", type);
    xml_node_add_element(e, err, C2S_NS_STANZAS, cond);
    c2s_conn_send(c, e);
    xml_stanza_unref(e);
}

static void iq_result(c2s_conn_t *c, const char *id, xml_stanza_t **out)
{
    xml_stanza_t *r = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    xml_node_set_attr(r, r->root, NULL, "type", "result");
    if (id != NULL)
        xml_node_set_attr(r, r->root, NULL, "id", id);
    if (out != NULL) {
        *out = r;
        return;
    }
    c2s_conn_send(c, r);
    xml_stanza_unref(r);
}

/* RFC 3921 §3: the legacy session iq, kept as a no-op (RFC 6121 Appendix E). */
bool c2s_bind_session_iq(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    const char *type = xml_node_attr(r, "type");
    if (!xml_node_is(r, XMLS_NS_CONTENT, "iq") || type == NULL || strcmp(type, "set") != 0 ||
        xml_node_child(r, C2S_NS_SESSION_LEGACY, "session") == NULL)
        return false;
    const char *to = xml_node_attr(r, "to");
    if (to != NULL && strcmp(to, c->c2s->cfg->domain) != 0)
        return false;
    iq_result(c, xml_stanza_id(st), NULL);
    return true;
}

/* The full JID for the requested resource, or a generated one (RFC 6120 §7.6). */
static int make_full_jid(c2s_conn_t *c, const xml_node_t *bind, jid_t *out)
{
    char res[64];
    const char *want = NULL;
    size_t want_len = 0;
    const xml_node_t *rn = xml_node_child(bind, C2S_NS_BIND, "resource");
    if (rn != NULL)
        want = xml_node_text(rn, &want_len);
    if (want == NULL || want_len == 0) {
        unsigned char rnd[8] = {0};
        RAND_bytes(rnd, sizeof(rnd));
        for (size_t i = 0; i < sizeof(rnd); i++)
            snprintf(res + 2 * i, 3, "%02x", rnd[i]);
        want = res;
        want_len = 2 * sizeof(rnd);
    }
    core_buf_t b = {0};
    core_buf_append(&b, c->jid.full, c->jid.bare_len);
    core_buf_append_str(&b, "/");
    core_buf_append(&b, want, want_len);
    int rc = jid_parse(c->c2s->jids, b.data, b.len, out);
    core_buf_release(&b);
    return rc;
}

bool c2s_bind_iq(c2s_conn_t *c, xml_stanza_t *st)
{
    const xml_node_t *r = st->root;
    const char *type = xml_node_attr(r, "type");
    const xml_node_t *bind = xml_node_child(r, C2S_NS_BIND, "bind");
    if (!xml_node_is(r, XMLS_NS_CONTENT, "iq") || type == NULL || strcmp(type, "set") != 0 ||
        bind == NULL)
        return false;
    const char *id = xml_stanza_id(st);
    if (c->state != C2S_ST_AUTHED) {
        /* One resource per stream, bound once (RFC 6120 §7.7.2.1 lets us refuse more). */
        c2s_iq_error(c, id, "cancel", "not-allowed");
        return true;
    }
    jid_t full;
    if (make_full_jid(c, bind, &full) < 0) {
        c2s_iq_error(c, id, "modify", "bad-request");
        return true;
    }
    jid_clear(&c->jid);
    c->jid = full;
    core_free(c->bind_id);
    c->bind_id = id != NULL ? core_strdup(id) : NULL;
    c->state = C2S_ST_BINDING;
    c->started = true;
    if (c2s_relay_control(c, "start", c->jid.full) < 0)
        c2s_bind_failed(c, NULL);
    return true;
}

void c2s_bind_started(c2s_conn_t *c)
{
    if (c->state != C2S_ST_BINDING)
        return;
    c->state = C2S_ST_ACTIVE;
    stream_set_deadline(c->s, 0, CORE_STREAM_ERR_NONE);
    core_log(c->c2s->log, CORE_LOG_INFO, c2s_conn_id(c), "session %s bound %s", c->sid,
             c->jid.full);
    xml_stanza_t *res;
    iq_result(c, c->bind_id, &res);
    xml_node_t *b = xml_node_add_element(res, res->root, C2S_NS_BIND, "bind");
    xml_node_t *j = xml_node_add_element(res, b, C2S_NS_BIND, "jid");
    xml_node_add_text(res, j, c->jid.full, c->jid.full_len);
    c2s_conn_send(c, res);
    xml_stanza_unref(res);
    core_free(c->bind_id);
    c->bind_id = NULL;
}

void c2s_bind_failed(c2s_conn_t *c, const xml_node_t *session)
{
    if (c->state != C2S_ST_BINDING)
        return;
    c->started = false;
    const xml_node_t *cond = session != NULL ? xml_node_first_element(session) : NULL;
    const char *name = cond != NULL ? cond->name : "internal-server-error";
    const char *type = strcmp(name, "resource-constraint") == 0 ? "wait" : "cancel";
    if (strcmp(name, "conflict") == 0 || strcmp(name, "not-allowed") == 0)
        type = "cancel";
    c2s_iq_error(c, c->bind_id, type, name);
    core_free(c->bind_id);
    c->bind_id = NULL;
    /* Back to the bare JID: the client may try another resource. */
    jid_t bare;
    if (jid_parse(c->c2s->jids, c->jid.full, c->jid.bare_len, &bare) == 0) {
        jid_clear(&c->jid);
        c->jid = bare;
    }
    c->state = C2S_ST_AUTHED;
}
