/* SPDX-License-Identifier: MIT */
/* The asynchronous front: a storage thread runs requests in order; results return by uv_async. */
#include "storage/internal.h"

#include "core/alloc.h"

#include <assert.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <string.h>

enum req_op {
    OP_USER_CREATE,
    OP_USER_EXISTS,
    OP_USER_DELETE,
    OP_USER_LIST,
    OP_CREDS_GET,
    OP_CREDS_SET,
    OP_ROSTER_GET,
    OP_ROSTER_ITEM_GET,
    OP_ROSTER_PUT,
    OP_ROSTER_DELETE,
    OP_OFFLINE_PUSH,
    OP_OFFLINE_GET,
    OP_OFFLINE_DELETE,
    OP_DOC_GET,
    OP_DOC_PUT,
    OP_DOC_DELETE,
    OP_DOC_LIST,
    OP_USER_LOAD,
    OP_ARCHIVE_APPEND,
    OP_ARCHIVE_QUERY,
    OP_ARCHIVE_EXPIRE,
    OP_SVC_GET,
    OP_SVC_PUT,
    OP_SVC_DELETE,
    OP_SVC_GET_ALL,
};

/*
 * One request: its own copies of the arguments, the callback, and the result. Owned by the
 * store from submission until after its callback returns; the storage thread has it only
 * between taking it from the input queue and putting it on the output queue.
 */
typedef struct storage_req {
    struct storage_req *next;
    enum req_op op;
    char *user; /* a user, or for OP_SVC_* the service */
    char *text; /* creds, jid or kind */
    char *key;
    char *data; /* an offline stanza or a document */
    size_t len;
    size_t num; /* offline limit or count */
    storage_roster_item_t item; /* roster put */
    int64_t stamp; /* archive expire */
    /*
     * Archive append: the batch (nentries), its strings copied into one block (pool). Archive
     * query: the query, its strings and ids in pool too.
     */
    storage_archive_entry_t *entries;
    size_t nentries;
    storage_archive_query_t query;
    const char **query_ids; /* owned: the array query.ids points to */
    char *pool;
    union {
        storage_status_cb status;
        storage_bytes_cb bytes;
        storage_version_cb version;
        storage_list_cb list;
        storage_roster_cb roster;
        storage_item_cb item;
        storage_user_load_cb load;
        storage_archive_cb archive;
        storage_docs_cb docs;
    } cb;
    void *arg;

    int status;
    storage_blob_t blob; /* creds (secret) or document */
    char *version;
    storage_list_t list;
    storage_list_t list2; /* user load: the offline queue */
    char **kinds; /* user load: the content kinds (owned, nkinds of them) */
    storage_docs_t *docs; /* user load: their documents, one per kind */
    storage_docs_t svc_docs; /* svc get_all */
    size_t nkinds;
    storage_roster_t roster;
    storage_roster_item_t out_item;
    storage_archive_result_t archive;
} storage_req_t;

typedef struct req_queue {
    storage_req_t *head;
    storage_req_t *tail;
} req_queue_t;

struct storage {
    uv_loop_t *loop;
    uv_async_t async; /* the storage thread's doorbell to the loop */
    uv_thread_t thread;
    storage_db_t *db; /* used only by the storage thread once it runs */

    uv_mutex_t lock; /* guards the fields down to thread_done */
    uv_cond_t wake; /* signalled when todo gets a request or stopping is set */
    req_queue_t todo;
    req_queue_t done;
    bool stopping;
    bool thread_done; /* the thread has answered everything and closed db */

    /* Loop thread only. */
    int64_t archive_key_max; /* read at open (storage_archive_key_max) */
    size_t queue_max;
    size_t outstanding; /* submitted, callback not yet run */
    bool closing;
    bool handle_closing;
    storage_close_cb close_cb;
    void *close_arg;
};

static void queue_push(req_queue_t *q, storage_req_t *rq)
{
    rq->next = NULL;
    if (q->tail != NULL)
        q->tail->next = rq;
    else
        q->head = rq;
    q->tail = rq;
}

static void req_free(storage_req_t *rq)
{
    core_free(rq->user);
    if (rq->op == OP_USER_CREATE || rq->op == OP_CREDS_SET)
        storage_secret_free(rq->text);
    else
        core_free(rq->text);
    core_free(rq->key);
    core_free(rq->data);
    storage_roster_item_clear(&rq->item);
    if (rq->op == OP_CREDS_GET && rq->blob.data != NULL)
        OPENSSL_cleanse(rq->blob.data, rq->blob.len);
    storage_blob_clear(&rq->blob);
    core_free(rq->version);
    storage_list_clear(&rq->list);
    storage_list_clear(&rq->list2);
    for (size_t i = 0; i < rq->nkinds; i++) {
        core_free(rq->kinds[i]);
        storage_docs_clear(&rq->docs[i]);
    }
    core_free(rq->kinds);
    core_free(rq->docs);
    storage_roster_clear(&rq->roster);
    storage_roster_item_clear(&rq->out_item);
    core_free(rq->entries);
    core_free(rq->query_ids);
    core_free(rq->pool);
    storage_archive_result_clear(&rq->archive);
    storage_docs_clear(&rq->svc_docs);
    core_free(rq);
}

/* ---- the storage thread ---- */

static void req_run(storage_db_t *db, storage_req_t *rq)
{
    char *creds = NULL;
    switch (rq->op) {
    case OP_USER_CREATE:
        rq->status = storage_db_user_create(db, rq->user, rq->text);
        break;
    case OP_USER_EXISTS:
        rq->status = storage_db_user_exists(db, rq->user);
        break;
    case OP_USER_DELETE:
        rq->status = storage_db_user_delete(db, rq->user);
        break;
    case OP_USER_LIST:
        rq->status = storage_db_user_list(db, &rq->list);
        break;
    case OP_CREDS_GET:
        rq->status = storage_db_creds_get(db, rq->user, &creds);
        if (rq->status == 0) {
            rq->blob.data = creds;
            rq->blob.len = strlen(creds);
        }
        break;
    case OP_CREDS_SET:
        rq->status = storage_db_creds_set(db, rq->user, rq->text);
        break;
    case OP_ROSTER_GET:
        rq->status = storage_db_roster_get(db, rq->user, &rq->roster);
        break;
    case OP_ROSTER_ITEM_GET:
        rq->status = storage_db_roster_item_get(db, rq->user, rq->text, &rq->out_item);
        break;
    case OP_ROSTER_PUT:
        rq->status = storage_db_roster_put(db, rq->user, &rq->item, &rq->version);
        break;
    case OP_ROSTER_DELETE:
        rq->status = storage_db_roster_delete(db, rq->user, rq->text, &rq->version);
        break;
    case OP_OFFLINE_PUSH:
        rq->status = storage_db_offline_push(db, rq->user, rq->data, rq->len, rq->num);
        break;
    case OP_OFFLINE_GET:
        rq->status = storage_db_offline_get(db, rq->user, &rq->list);
        break;
    case OP_OFFLINE_DELETE:
        rq->status = storage_db_offline_delete(db, rq->user, rq->num);
        break;
    case OP_DOC_GET:
        rq->status = storage_db_doc_get(db, rq->user, rq->text, rq->key, &rq->blob);
        break;
    case OP_DOC_PUT:
        rq->status = storage_db_doc_put(db, rq->user, rq->text, rq->key, rq->data, rq->len);
        break;
    case OP_DOC_DELETE:
        rq->status = storage_db_doc_delete(db, rq->user, rq->text, rq->key);
        break;
    case OP_DOC_LIST:
        rq->status = storage_db_doc_list(db, rq->user, rq->text, &rq->list);
        break;
    case OP_USER_LOAD:
        rq->status = storage_db_roster_get(db, rq->user, &rq->roster);
        if (rq->status == 0 && rq->text != NULL)
            rq->status = storage_db_doc_list(db, rq->user, rq->text, &rq->list);
        for (size_t i = 0; rq->status == 0 && i < rq->nkinds; i++)
            rq->status = storage_db_doc_get_all(db, rq->user, rq->kinds[i], &rq->docs[i]);
        if (rq->status == 0 && rq->num != 0)
            rq->status = storage_db_offline_get(db, rq->user, &rq->list2);
        break;
    case OP_ARCHIVE_APPEND:
        rq->status = storage_db_archive_append(db, rq->entries, rq->nentries, NULL);
        break;
    case OP_ARCHIVE_QUERY:
        rq->status = storage_db_archive_query(db, rq->user, &rq->query, &rq->archive);
        break;
    case OP_ARCHIVE_EXPIRE:
        rq->status = storage_db_archive_expire(db, rq->user, rq->stamp);
        break;
    case OP_SVC_GET:
        rq->status =
            storage_db_svc_get(db, rq->user, rq->text, rq->key, &rq->blob.data, &rq->blob.len);
        break;
    case OP_SVC_PUT:
        rq->status = storage_db_svc_put(db, rq->user, rq->text, rq->key, rq->data, rq->len);
        break;
    case OP_SVC_DELETE:
        rq->status = storage_db_svc_delete(db, rq->user, rq->text, rq->key);
        break;
    case OP_SVC_GET_ALL:
        rq->status = storage_db_svc_get_all(db, rq->user, rq->text, &rq->svc_docs);
        break;
    }
}

/* Takes requests one at a time, in order, until the queue is empty and stopping is set. */
static void storage_thread(void *arg)
{
    storage_t *st = arg;
    for (;;) {
        uv_mutex_lock(&st->lock);
        while (st->todo.head == NULL && !st->stopping)
            uv_cond_wait(&st->wake, &st->lock);
        storage_req_t *rq = st->todo.head;
        if (rq != NULL) {
            st->todo.head = rq->next;
            if (st->todo.head == NULL)
                st->todo.tail = NULL;
        }
        uv_mutex_unlock(&st->lock);
        if (rq == NULL)
            break;

        req_run(st->db, rq);

        uv_mutex_lock(&st->lock);
        queue_push(&st->done, rq);
        uv_mutex_unlock(&st->lock);
        uv_async_send(&st->async);
    }
    /* Closing the database may checkpoint the WAL: also no work for the loop. */
    storage_db_close(st->db);
    st->db = NULL;
    uv_mutex_lock(&st->lock);
    st->thread_done = true;
    uv_mutex_unlock(&st->lock);
    uv_async_send(&st->async);
}

/* ---- the loop thread ---- */

static void req_deliver(storage_req_t *rq)
{
    bool ok = rq->status == 0;
    switch (rq->op) {
    case OP_USER_CREATE:
    case OP_USER_EXISTS:
    case OP_USER_DELETE:
    case OP_CREDS_SET:
    case OP_OFFLINE_PUSH:
    case OP_OFFLINE_DELETE:
    case OP_DOC_PUT:
    case OP_DOC_DELETE:
    case OP_ARCHIVE_APPEND:
    case OP_ARCHIVE_EXPIRE:
    case OP_SVC_PUT:
    case OP_SVC_DELETE:
        rq->cb.status(rq->arg, rq->status);
        break;
    case OP_CREDS_GET:
    case OP_DOC_GET:
    case OP_SVC_GET:
        rq->cb.bytes(rq->arg, rq->status, ok ? rq->blob.data : NULL, ok ? rq->blob.len : 0);
        break;
    case OP_ROSTER_PUT:
    case OP_ROSTER_DELETE:
        rq->cb.version(rq->arg, rq->status, ok ? rq->version : NULL);
        break;
    case OP_USER_LIST:
    case OP_OFFLINE_GET:
    case OP_DOC_LIST:
        rq->cb.list(rq->arg, rq->status, ok ? &rq->list : NULL);
        break;
    case OP_ROSTER_GET:
        rq->cb.roster(rq->arg, rq->status, ok ? &rq->roster : NULL);
        break;
    case OP_ROSTER_ITEM_GET:
        rq->cb.item(rq->arg, rq->status, ok ? &rq->out_item : NULL);
        break;
    case OP_USER_LOAD: {
        storage_user_data_t d = {.roster = &rq->roster,
                                 .doc_keys = &rq->list,
                                 .offline = &rq->list2,
                                 .docs = rq->docs,
                                 .ndocs = rq->nkinds};
        rq->cb.load(rq->arg, rq->status, ok ? &d : NULL);
        break;
    }
    case OP_ARCHIVE_QUERY:
        rq->cb.archive(rq->arg, rq->status, ok ? &rq->archive : NULL);
        break;
    case OP_SVC_GET_ALL:
        rq->cb.docs(rq->arg, rq->status, ok ? &rq->svc_docs : NULL);
        break;
    }
}

static void on_closed(uv_handle_t *h)
{
    storage_t *st = h->data;
    storage_close_cb cb = st->close_cb;
    void *arg = st->close_arg;
    uv_cond_destroy(&st->wake);
    uv_mutex_destroy(&st->lock);
    core_free(st);
    if (cb != NULL)
        cb(arg);
}

static void on_async(uv_async_t *h)
{
    storage_t *st = h->data;
    uv_mutex_lock(&st->lock);
    storage_req_t *rq = st->done.head;
    st->done.head = st->done.tail = NULL;
    bool thread_done = st->thread_done;
    uv_mutex_unlock(&st->lock);

    /* The store is freed only in on_closed, so callbacks may call storage_close freely. */
    while (rq != NULL) {
        storage_req_t *next = rq->next;
        req_deliver(rq);
        req_free(rq);
        st->outstanding--;
        rq = next;
    }
    /* thread_done is set after the last result was queued, so all of them were delivered. */
    if (st->closing && thread_done && !st->handle_closing) {
        assert(st->outstanding == 0);
        uv_thread_join(&st->thread);
        st->handle_closing = true;
        uv_close((uv_handle_t *)&st->async, on_closed);
    }
}

int storage_open(uv_loop_t *loop, const storage_config_t *cfg, storage_t **out)
{
    storage_db_t *db = NULL;
    int64_t key_max = 0;
    int rc = storage_db_open(cfg, &db);
    if (rc < 0)
        return rc;
    rc = storage_db_archive_key_max(db, &key_max);
    if (rc < 0) {
        storage_db_close(db);
        return rc;
    }
    storage_t *st = core_calloc(1, sizeof(*st));
    st->loop = loop;
    st->archive_key_max = key_max;
    st->db = db;
    st->queue_max = cfg->queue_max != 0 ? cfg->queue_max : STORAGE_QUEUE_DEFAULT;
    rc = uv_mutex_init(&st->lock);
    if (rc < 0)
        goto fail_mutex;
    rc = uv_cond_init(&st->wake);
    if (rc < 0)
        goto fail_cond;
    rc = uv_async_init(loop, &st->async, on_async);
    if (rc < 0)
        goto fail_async;
    st->async.data = st;
    rc = uv_thread_create(&st->thread, storage_thread, st);
    if (rc < 0)
        goto fail_thread;
    *out = st;
    return 0;

fail_thread:
    /* The handle must be closed through the loop; on_closed frees st. */
    storage_db_close(db);
    st->handle_closing = true;
    uv_close((uv_handle_t *)&st->async, on_closed);
    return rc;
fail_async:
    uv_cond_destroy(&st->wake);
fail_cond:
    uv_mutex_destroy(&st->lock);
fail_mutex:
    core_free(st);
    storage_db_close(db);
    return rc;
}

void storage_close(storage_t *st, storage_close_cb cb, void *arg)
{
    assert(!st->closing);
    st->closing = true;
    st->close_cb = cb;
    st->close_arg = arg;
    uv_mutex_lock(&st->lock);
    st->stopping = true;
    uv_cond_signal(&st->wake);
    uv_mutex_unlock(&st->lock);
}

/* ---- submission ---- */

static storage_req_t *req_new(enum req_op op, const char *user, void *arg)
{
    storage_req_t *rq = core_calloc(1, sizeof(*rq));
    rq->op = op;
    rq->user = user != NULL ? core_strdup(user) : NULL;
    rq->arg = arg;
    return rq;
}

/* Queues rq for the storage thread, or frees it and fails. */
static int submit(storage_t *st, storage_req_t *rq)
{
    int rc = 0;
    if (st->closing)
        rc = -ECANCELED;
    else if (st->outstanding >= st->queue_max)
        rc = -ENOBUFS;
    if (rc < 0) {
        req_free(rq);
        return rc;
    }
    st->outstanding++;
    uv_mutex_lock(&st->lock);
    queue_push(&st->todo, rq);
    uv_cond_signal(&st->wake);
    uv_mutex_unlock(&st->lock);
    return 0;
}

static int submit_status(storage_t *st, storage_req_t *rq, storage_status_cb cb)
{
    rq->cb.status = cb;
    return submit(st, rq);
}

int storage_user_create(storage_t *st, const char *user, const char *creds, storage_status_cb cb,
                        void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_creds(creds) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_USER_CREATE, user, arg);
    rq->text = core_strdup(creds);
    return submit_status(st, rq, cb);
}

int storage_user_exists(storage_t *st, const char *user, storage_status_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    return submit_status(st, req_new(OP_USER_EXISTS, user, arg), cb);
}

int storage_user_delete(storage_t *st, const char *user, storage_status_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    return submit_status(st, req_new(OP_USER_DELETE, user, arg), cb);
}

int storage_user_list(storage_t *st, storage_list_cb cb, void *arg)
{
    if (cb == NULL)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_USER_LIST, NULL, arg);
    rq->cb.list = cb;
    return submit(st, rq);
}

int storage_creds_get(storage_t *st, const char *user, storage_bytes_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_CREDS_GET, user, arg);
    rq->cb.bytes = cb;
    return submit(st, rq);
}

int storage_creds_set(storage_t *st, const char *user, const char *creds, storage_status_cb cb,
                      void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_creds(creds) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_CREDS_SET, user, arg);
    rq->text = core_strdup(creds);
    return submit_status(st, rq, cb);
}

int storage_roster_get(storage_t *st, const char *user, storage_roster_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_ROSTER_GET, user, arg);
    rq->cb.roster = cb;
    return submit(st, rq);
}

int storage_roster_item_get(storage_t *st, const char *user, const char *jid, storage_item_cb cb,
                            void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_jid(jid) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_ROSTER_ITEM_GET, user, arg);
    rq->text = core_strdup(jid);
    rq->cb.item = cb;
    return submit(st, rq);
}

int storage_roster_put(storage_t *st, const char *user, const storage_roster_item_t *item,
                       storage_version_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_item(item) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_ROSTER_PUT, user, arg);
    storage_roster_item_copy(&rq->item, item);
    rq->cb.version = cb;
    return submit(st, rq);
}

int storage_roster_delete(storage_t *st, const char *user, const char *jid, storage_version_cb cb,
                          void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_jid(jid) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_ROSTER_DELETE, user, arg);
    rq->text = core_strdup(jid);
    rq->cb.version = cb;
    return submit(st, rq);
}

int storage_offline_push(storage_t *st, const char *user, const char *data, size_t len,
                         size_t limit, storage_status_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_value(data, len) < 0 ||
        limit == 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_OFFLINE_PUSH, user, arg);
    rq->data = core_strndup(data != NULL ? data : "", len);
    rq->len = len;
    rq->num = limit;
    return submit_status(st, rq, cb);
}

int storage_offline_get(storage_t *st, const char *user, storage_list_cb cb, void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_OFFLINE_GET, user, arg);
    rq->cb.list = cb;
    return submit(st, rq);
}

int storage_offline_delete(storage_t *st, const char *user, size_t count, storage_status_cb cb,
                           void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_OFFLINE_DELETE, user, arg);
    rq->num = count;
    return submit_status(st, rq, cb);
}

/* A request naming a document of a user or a service (key NULL for a listing). */
static storage_req_t *doc_req(enum req_op op, const char *user, const char *kind, const char *key,
                              void *arg)
{
    storage_req_t *rq = req_new(op, user, arg);
    rq->text = core_strdup(kind);
    rq->key = key != NULL ? core_strdup(key) : NULL;
    return rq;
}

static bool doc_args_ok(const char *user, const char *kind, const char *key)
{
    return storage_check_user(user) == 0 && storage_check_kind(kind) == 0 &&
        storage_check_key(key) == 0;
}

int storage_doc_get(storage_t *st, const char *user, const char *kind, const char *key,
                    storage_bytes_cb cb, void *arg)
{
    if (cb == NULL || !doc_args_ok(user, kind, key))
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_DOC_GET, user, kind, key, arg);
    rq->cb.bytes = cb;
    return submit(st, rq);
}

int storage_doc_put(storage_t *st, const char *user, const char *kind, const char *key,
                    const char *data, size_t len, storage_status_cb cb, void *arg)
{
    if (cb == NULL || !doc_args_ok(user, kind, key) || storage_check_value(data, len) < 0)
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_DOC_PUT, user, kind, key, arg);
    rq->data = core_strndup(data != NULL ? data : "", len);
    rq->len = len;
    return submit_status(st, rq, cb);
}

int storage_doc_delete(storage_t *st, const char *user, const char *kind, const char *key,
                       storage_status_cb cb, void *arg)
{
    if (cb == NULL || !doc_args_ok(user, kind, key))
        return -EINVAL;
    return submit_status(st, doc_req(OP_DOC_DELETE, user, kind, key, arg), cb);
}

int storage_doc_list(storage_t *st, const char *user, const char *kind, storage_list_cb cb,
                     void *arg)
{
    if (cb == NULL || storage_check_user(user) < 0 || storage_check_kind(kind) < 0)
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_DOC_LIST, user, kind, NULL, arg);
    rq->cb.list = cb;
    return submit(st, rq);
}

int storage_user_load(storage_t *st, const char *user, const char *doc_kind,
                      const char *const *content_kinds, bool with_offline, storage_user_load_cb cb,
                      void *arg)
{
    size_t nkinds = 0;
    for (; content_kinds != NULL && content_kinds[nkinds] != NULL; nkinds++) {
        if (nkinds == STORAGE_LOAD_KINDS_MAX || storage_check_kind(content_kinds[nkinds]) < 0)
            return -EINVAL;
    }
    if (cb == NULL || storage_check_user(user) < 0 ||
        (doc_kind != NULL && storage_check_kind(doc_kind) < 0))
        return -EINVAL;
    storage_req_t *rq = req_new(OP_USER_LOAD, user, arg);
    rq->text = doc_kind != NULL ? core_strdup(doc_kind) : NULL;
    if (nkinds > 0) {
        rq->kinds = core_calloc(nkinds, sizeof(*rq->kinds));
        rq->docs = core_calloc(nkinds, sizeof(*rq->docs));
        for (size_t i = 0; i < nkinds; i++)
            rq->kinds[i] = core_strdup(content_kinds[i]);
        rq->nkinds = nkinds;
    }
    rq->num = with_offline ? 1 : 0;
    rq->cb.load = cb;
    return submit(st, rq);
}

/* ---- documents of services ---- */

int storage_svc_put(storage_t *st, const char *service, const char *kind, const char *key,
                    const char *data, size_t len, storage_status_cb cb, void *arg)
{
    if (cb == NULL || key == NULL || storage_check_svc_doc(service, kind, key) < 0 ||
        storage_check_svc_value(data, len) < 0)
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_SVC_PUT, service, kind, key, arg);
    rq->data = core_strndup(data != NULL ? data : "", len);
    rq->len = len;
    return submit_status(st, rq, cb);
}

int storage_svc_get(storage_t *st, const char *service, const char *kind, const char *key,
                    storage_bytes_cb cb, void *arg)
{
    if (cb == NULL || key == NULL || storage_check_svc_doc(service, kind, key) < 0)
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_SVC_GET, service, kind, key, arg);
    rq->cb.bytes = cb;
    return submit(st, rq);
}

int storage_svc_delete(storage_t *st, const char *service, const char *kind, const char *key,
                       storage_status_cb cb, void *arg)
{
    if (cb == NULL || key == NULL || storage_check_svc_doc(service, kind, key) < 0)
        return -EINVAL;
    return submit_status(st, doc_req(OP_SVC_DELETE, service, kind, key, arg), cb);
}

int storage_svc_get_all(storage_t *st, const char *service, const char *kind, storage_docs_cb cb,
                        void *arg)
{
    if (cb == NULL || storage_check_svc_doc(service, kind, NULL) < 0)
        return -EINVAL;
    storage_req_t *rq = doc_req(OP_SVC_GET_ALL, service, kind, NULL, arg);
    rq->cb.docs = cb;
    return submit(st, rq);
}

/* ---- the archive ---- */

/* Copies s (with its NUL) to *p and returns the copy; NULL stays NULL. */
static const char *pool_put(char **p, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t n = strlen(s) + 1;
    memcpy(*p, s, n);
    const char *copy = *p;
    *p += n;
    return copy;
}

static size_t str_size(const char *s)
{
    return s != NULL ? strlen(s) + 1 : 0;
}

int storage_archive_append(storage_t *st, const storage_archive_entry_t *entries, size_t n,
                           storage_status_cb cb, void *arg)
{
    if (cb == NULL || (n > 0 && entries == NULL))
        return -EINVAL;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        const storage_archive_entry_t *e = &entries[i];
        if (storage_check_archive_entry(e) < 0)
            return -EINVAL;
        bytes += str_size(e->owner) + str_size(e->with) + e->len;
    }
    /* The whole batch in two allocations: the entries, and one block for their bytes. */
    storage_req_t *rq = req_new(OP_ARCHIVE_APPEND, NULL, arg);
    rq->entries = core_malloc((n > 0 ? n : 1) * sizeof(*rq->entries));
    rq->pool = core_malloc(bytes > 0 ? bytes : 1);
    rq->nentries = n;
    char *p = rq->pool;
    for (size_t i = 0; i < n; i++) {
        const storage_archive_entry_t *e = &entries[i];
        storage_archive_entry_t *c = &rq->entries[i];
        c->owner = pool_put(&p, e->owner);
        c->with = pool_put(&p, e->with);
        c->key = e->key;
        c->nonce = e->nonce;
        c->len = e->len;
        c->data = p;
        if (e->len > 0)
            memcpy(p, e->data, e->len);
        p += e->len;
    }
    return submit_status(st, rq, cb);
}

int storage_archive_query(storage_t *st, const char *owner, const storage_archive_query_t *q,
                          storage_archive_cb cb, void *arg)
{
    if (cb == NULL || storage_check_archive_owner(owner) < 0 || storage_check_archive_query(q) < 0)
        return -EINVAL;
    size_t bytes = str_size(q->with) + str_size(q->after_id) + str_size(q->before_id);
    for (size_t i = 0; i < q->nids; i++)
        bytes += str_size(q->ids[i]);
    storage_req_t *rq = req_new(OP_ARCHIVE_QUERY, owner, arg);
    rq->query = *q;
    rq->pool = core_malloc(bytes > 0 ? bytes : 1);
    char *p = rq->pool;
    rq->query.with = pool_put(&p, q->with);
    rq->query.after_id = pool_put(&p, q->after_id);
    rq->query.before_id = pool_put(&p, q->before_id);
    rq->query.ids = NULL;
    if (q->nids > 0) {
        rq->query_ids = core_malloc(q->nids * sizeof(*rq->query_ids));
        for (size_t i = 0; i < q->nids; i++)
            rq->query_ids[i] = pool_put(&p, q->ids[i]);
        rq->query.ids = rq->query_ids;
    }
    rq->cb.archive = cb;
    return submit(st, rq);
}

int storage_archive_expire(storage_t *st, const char *owner, int64_t before_us,
                           storage_status_cb cb, void *arg)
{
    if (cb == NULL || storage_check_archive_owner(owner) < 0)
        return -EINVAL;
    storage_req_t *rq = req_new(OP_ARCHIVE_EXPIRE, owner, arg);
    rq->stamp = before_us;
    return submit_status(st, rq, cb);
}

int64_t storage_archive_key_max(const storage_t *st)
{
    return st->archive_key_max;
}
