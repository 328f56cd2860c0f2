/* SPDX-License-Identifier: MIT */
/* An auth source over the storage layer: credentials are the account's stored SCRAM line. */
#include "auth/auth.h"
#include "auth/storage_source.h"

#include "core/alloc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

/*
 * Storage requests cannot be withdrawn, so a cancelled lookup stays allocated until its
 * answer arrives and is then dropped. The source counts what is in flight so that freeing
 * it can wait for the last answer.
 */
struct auth_request {
    struct storage_src *src;
    auth_lookup_cb cb; /* a lookup */
    auth_status_cb status_cb; /* a create */
    void *arg;
    bool cancelled;
};

typedef struct storage_src {
    auth_source_t base;
    storage_t *st; /* borrowed */
    size_t in_flight;
    bool freed;
} storage_src_t;

static void maybe_free(storage_src_t *s)
{
    if (s->freed && s->in_flight == 0)
        core_free(s);
}

/*
 * An answer arrived: true when nobody waits for it any more (cancelled, or the source was
 * freed: then the caller hears -ECANCELED), in which case req is freed here.
 */
static bool answer_dropped(auth_request_t *req)
{
    storage_src_t *s = req->src;
    s->in_flight--;
    if (!req->cancelled && !s->freed)
        return false;
    if (!req->cancelled && req->cb != NULL)
        req->cb(req->arg, -ECANCELED, NULL);
    else if (!req->cancelled && req->status_cb != NULL)
        req->status_cb(req->arg, -ECANCELED);
    core_free(req);
    maybe_free(s);
    return true;
}

static void on_creds(void *arg, int status, const char *data, size_t len)
{
    auth_request_t *req = arg;
    if (answer_dropped(req))
        return;
    auth_creds_t creds;
    if (status == 0 && auth_creds_decode(data, len, &creds) == 0) {
        req->cb(req->arg, 0, &creds);
        auth_creds_clear(&creds);
    } else {
        /* A stored line that does not decode is a damaged account, not a missing one. */
        req->cb(req->arg, status == -ENOENT ? -ENOENT : status < 0 ? status : -EIO, NULL);
    }
    core_free(req);
}

static void on_created(void *arg, int status)
{
    auth_request_t *req = arg;
    if (answer_dropped(req))
        return;
    req->status_cb(req->arg, status);
    core_free(req);
}

/* Sends req (taken) to the store: a lookup of user (line NULL), or a new account with line. */
static int submit(storage_src_t *s, const char *user, size_t user_len, const char *line,
                  auth_request_t *req, auth_request_t **out)
{
    char *u = core_strndup(user, user_len);
    req->src = s;
    int err = line == NULL ? storage_creds_get(s->st, u, on_creds, req)
                           : storage_user_create(s->st, u, line, on_created, req);
    core_free(u);
    if (err < 0) {
        core_free(req);
        return err;
    }
    s->in_flight++;
    *out = req;
    return 0;
}

static int src_lookup(auth_source_t *base, const char *user, size_t user_len, const char *domain,
                      size_t domain_len, auth_lookup_cb cb, void *arg, auth_request_t **out)
{
    auth_request_t *req = core_calloc(1, sizeof(*req));
    req->cb = cb;
    req->arg = arg;
    return submit((storage_src_t *)base, user, user_len, NULL, req, out);
}

static int src_create(auth_source_t *base, const char *user, size_t user_len, const char *domain,
                      size_t domain_len, const auth_creds_t *creds, auth_status_cb cb, void *arg,
                      auth_request_t **out)
{
    char line[AUTH_CREDS_TEXT_MAX];
    size_t n;
    int err = auth_creds_encode(creds, line, &n);
    if (err < 0)
        return err;
    auth_request_t *req = core_calloc(1, sizeof(*req));
    req->status_cb = cb;
    req->arg = arg;
    err = submit((storage_src_t *)base, user, user_len, line, req, out);
    OPENSSL_cleanse(line, sizeof(line));
    return err;
}

static void src_cancel(auth_source_t *base, auth_request_t *req)
{
    req->cancelled = true;
}

static void src_free(auth_source_t *base)
{
    storage_src_t *s = (storage_src_t *)base;
    s->freed = true;
    maybe_free(s);
}

static const auth_source_ops_t storage_src_ops = {
    .name = "storage",
    .lookup = src_lookup,
    .create = src_create,
    .cancel = src_cancel,
    .free = src_free,
};

auth_source_t *auth_storage_new(storage_t *st)
{
    storage_src_t *s = core_calloc(1, sizeof(*s));
    s->base.ops = &storage_src_ops;
    s->st = st;
    return &s->base;
}
