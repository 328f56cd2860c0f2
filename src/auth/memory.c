/* SPDX-License-Identifier: MIT */
/* The in-memory auth source: a small list of users, answered from the loop, never inline. */
#include "auth/auth.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <openssl/crypto.h>

typedef struct mem_user {
    struct mem_user *next;
    char *user; /* owned */
    size_t user_len;
    char *domain; /* owned */
    size_t domain_len;
    auth_creds_t creds;
} mem_user_t;

struct auth_request {
    struct auth_request *next;
    char *user; /* owned */
    size_t user_len;
    char *domain; /* owned */
    size_t domain_len;
    auth_lookup_cb cb; /* a lookup */
    auth_status_cb status_cb; /* a create, of creds */
    auth_creds_t creds;
    void *arg;
    bool cancelled; /* cancelled requests wait in the queue until the idle callback frees them */
};

typedef struct mem_source {
    auth_source_t base;
    uv_idle_t idle; /* runs while requests wait */
    mem_user_t *users;
    auth_request_t *head, *tail; /* requests in arrival order */
    bool closing;
} mem_source_t;

static mem_source_t *mem_of(auth_source_t *src)
{
    return (mem_source_t *)((char *)src - offsetof(mem_source_t, base));
}

static bool same(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static mem_user_t *find_user(mem_source_t *m, const char *user, size_t user_len, const char *domain,
                             size_t domain_len, mem_user_t ***link)
{
    mem_user_t **p = &m->users;
    for (; *p != NULL; p = &(*p)->next) {
        if (same((*p)->user, (*p)->user_len, user, user_len) &&
            same((*p)->domain, (*p)->domain_len, domain, domain_len))
            break;
    }
    if (link != NULL)
        *link = p;
    return *p;
}

static void request_free(auth_request_t *r)
{
    auth_creds_clear(&r->creds);
    core_free(r->user);
    core_free(r->domain);
    core_free(r);
}

/* Answers one create: the user is added, or it exists (-EEXIST). */
static void answer_create(mem_source_t *m, auth_request_t *r, int status)
{
    if (status == 0 && find_user(m, r->user, r->user_len, r->domain, r->domain_len, NULL) != NULL)
        status = -EEXIST;
    if (status == 0)
        status =
            auth_memory_set(&m->base, r->user, r->user_len, r->domain, r->domain_len, &r->creds);
    r->status_cb(r->arg, status);
}

/* Answers one request: the user's credentials, or -ENOENT. */
static void answer(mem_source_t *m, auth_request_t *r, int status)
{
    if (r->status_cb != NULL) {
        answer_create(m, r, status);
        return;
    }
    mem_user_t *u = NULL;
    if (status == 0)
        u = find_user(m, r->user, r->user_len, r->domain, r->domain_len, NULL);
    if (status == 0 && u == NULL)
        status = -ENOENT;
    r->cb(r->arg, status, u != NULL ? &u->creds : NULL);
}

/*
 * Takes the whole queue first, so a callback that looks up again queues for the next round
 * and a callback that cancels a later request just marks it.
 */
static void on_idle(uv_idle_t *idle)
{
    mem_source_t *m = idle->data;
    auth_request_t *batch = m->head;

    m->head = m->tail = NULL;
    uv_idle_stop(&m->idle);
    while (batch != NULL) {
        auth_request_t *r = batch;
        /* A callback may free the source: the rest of the batch then learns it is gone. */
        if (!r->cancelled)
            answer(m, r, m->closing ? -ECANCELED : 0);
        batch = r->next;
        request_free(r);
    }
    if (m->head != NULL && !m->closing)
        uv_idle_start(&m->idle, on_idle);
}

/* A new request for user@domain, queued to be answered from the idle callback. */
static auth_request_t *enqueue(mem_source_t *m, const char *user, size_t user_len,
                               const char *domain, size_t domain_len, void *arg)
{
    assert(!m->closing);
    auth_request_t *r = core_calloc(1, sizeof(*r));

    r->user = core_strndup(user, user_len);
    r->user_len = user_len;
    r->domain = core_strndup(domain, domain_len);
    r->domain_len = domain_len;
    r->arg = arg;
    if (m->tail != NULL)
        m->tail->next = r;
    else
        m->head = r;
    m->tail = r;
    uv_idle_start(&m->idle, on_idle);
    return r;
}

static int mem_lookup(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                      size_t domain_len, auth_lookup_cb cb, void *arg, auth_request_t **req)
{
    auth_request_t *r = enqueue(mem_of(src), user, user_len, domain, domain_len, arg);
    r->cb = cb;
    *req = r;
    return 0;
}

static int mem_create(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                      size_t domain_len, const auth_creds_t *creds, auth_status_cb cb, void *arg,
                      auth_request_t **req)
{
    if (user_len == 0 || domain_len == 0)
        return -EINVAL;
    auth_request_t *r = enqueue(mem_of(src), user, user_len, domain, domain_len, arg);
    r->status_cb = cb;
    r->creds = *creds;
    *req = r;
    return 0;
}

static void mem_cancel(auth_source_t *src, auth_request_t *req)
{
    (void)src;
    req->cancelled = true;
}

static void users_free(mem_user_t *u)
{
    while (u != NULL) {
        mem_user_t *next = u->next;
        auth_creds_clear(&u->creds);
        core_free(u->user);
        core_free(u->domain);
        core_free(u);
        u = next;
    }
}

/* The handle is closed: requests still waiting learn the source is gone, then it is freed. */
static void on_close(uv_handle_t *h)
{
    mem_source_t *m = h->data;
    auth_request_t *r = m->head;
    while (r != NULL) {
        auth_request_t *next = r->next;
        if (!r->cancelled)
            answer(m, r, -ECANCELED);
        request_free(r);
        r = next;
    }
    users_free(m->users);
    core_free(m);
}

static void mem_free(auth_source_t *src)
{
    mem_source_t *m = mem_of(src);
    m->closing = true;
    uv_close((uv_handle_t *)&m->idle, on_close);
}

static const auth_source_ops_t mem_ops = {
    .name = "memory",
    .lookup = mem_lookup,
    .create = mem_create,
    .cancel = mem_cancel,
    .free = mem_free,
};

auth_source_t *auth_memory_new(uv_loop_t *loop)
{
    mem_source_t *m = core_calloc(1, sizeof(*m));
    m->base.ops = &mem_ops;
    uv_idle_init(loop, &m->idle);
    m->idle.data = m;
    return &m->base;
}

int auth_memory_set(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                    size_t domain_len, const auth_creds_t *creds)
{
    mem_source_t *m = mem_of(src);
    if (user_len == 0 || domain_len == 0)
        return -EINVAL;
    mem_user_t *u = find_user(m, user, user_len, domain, domain_len, NULL);
    if (u == NULL) {
        u = core_calloc(1, sizeof(*u));
        u->user = core_strndup(user, user_len);
        u->user_len = user_len;
        u->domain = core_strndup(domain, domain_len);
        u->domain_len = domain_len;
        u->next = m->users;
        m->users = u;
    }
    u->creds = *creds;
    return 0;
}

int auth_memory_remove(auth_source_t *src, const char *user, size_t user_len, const char *domain,
                       size_t domain_len)
{
    mem_source_t *m = mem_of(src);
    mem_user_t **link = NULL;
    mem_user_t *u = find_user(m, user, user_len, domain, domain_len, &link);
    if (u == NULL)
        return -ENOENT;
    *link = u->next;
    u->next = NULL;
    users_free(u);
    return 0;
}
