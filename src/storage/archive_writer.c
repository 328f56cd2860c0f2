/* SPDX-License-Identifier: MIT */
/* Writing archive entries by group commit: keys, ids, and few large batches to the store. */
#include "storage/storage.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <openssl/rand.h>
#include <string.h>
#include <time.h>

/*
 * Group commit: entries wait until ARCHIVE_BATCH_FULL of them are there or the oldest has
 * waited ARCHIVE_BATCH_WAIT_MS, and go to the store as one batch when it has no batch of this
 * writer in hand; otherwise they wait and go together when it answers. A transaction's cost
 * is mostly the pages it dirties, so a batch of 20 entries costs about twice the CPU per
 * entry of one of 1000, and seven times the bytes written (docs/storage.md).
 */
#define ARCHIVE_BATCH_FULL 1024u
#define ARCHIVE_BATCH_WAIT_MS 10u

/* One waiting entry: offsets of NUL-terminated strings in w->buf. */
typedef struct waiting {
    size_t owner, with, data;
    size_t data_len;
    int64_t key;
    uint64_t nonce;
} waiting_t;

struct storage_archive_writer {
    storage_t *store;
    uv_loop_t *loop;
    const core_log_t *log;
    char *what; /* names the writer in the log */
    size_t max_entries, max_bytes;
    core_buf_t buf;
    waiting_t *waiting;
    size_t nwaiting, cap;
    uint64_t first_ms; /* when the oldest waiting entry came (the loop's clock) */
    uv_timer_t *timer; /* sends the batch once the oldest has waited long enough; NULL: none */
    unsigned inflight; /* batches the store has not answered yet */
    bool failing; /* logged once until writing works again */
    bool stopped;
    int64_t last_key;
    unsigned char rnd[256];
    size_t rnd_pos;
};

storage_archive_writer_t *storage_archive_writer_new(storage_t *st, uv_loop_t *loop,
                                                     const core_log_t *log, const char *what,
                                                     size_t max_entries, size_t max_bytes)
{
    storage_archive_writer_t *w = core_calloc(1, sizeof(*w));
    w->store = st;
    w->loop = loop;
    w->log = log;
    w->what = core_strdup(what);
    w->max_entries = max_entries;
    w->max_bytes = max_bytes;
    w->rnd_pos = sizeof(w->rnd);
    /* Keys start above every key the store holds (a clock that went back since). */
    w->last_key = st != NULL ? storage_archive_key_max(st) : 0;
    return w;
}

static void note_failure(storage_archive_writer_t *w, const char *why, int err)
{
    if (w->failing)
        return;
    w->failing = true;
    core_log(w->log, CORE_LOG_WARN, 0, "%s: %s%s%s; messages are still delivered", w->what, why,
             err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
}

/* ---- keys and ids (XEP-0359 §2.1: unique and stable; XEP-0313 §3: unpredictable) ---- */

static uint64_t random64(storage_archive_writer_t *w)
{
    if (w->rnd_pos + sizeof(uint64_t) > sizeof(w->rnd)) {
        /* The key alone keeps ids unique; only their unpredictability would suffer. */
        if (RAND_bytes(w->rnd, (int)sizeof(w->rnd)) != 1)
            core_log(w->log, CORE_LOG_WARN, 0, "%s: no random bytes for archive ids", w->what);
        w->rnd_pos = 0;
    }
    uint64_t v;
    memcpy(&v, w->rnd + w->rnd_pos, sizeof(v));
    w->rnd_pos += sizeof(v);
    return v;
}

/*
 * The entry's key and stamp: the clock in microseconds, or one more than the last key, so
 * keys grow strictly in this writer (archive order is the order of archiving) and never fall
 * to what the store held when it was opened.
 */
static int64_t next_key(storage_archive_writer_t *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t k = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (k <= w->last_key)
        k = w->last_key + 1;
    w->last_key = k;
    return k;
}

/* ---- the batch ---- */

static void on_timer_closed(uv_handle_t *h)
{
    core_free(h);
}

static void timer_drop(storage_archive_writer_t *w)
{
    if (w->timer != NULL) {
        uv_close((uv_handle_t *)w->timer, on_timer_closed);
        w->timer = NULL;
    }
}

static void schedule(storage_archive_writer_t *w);

static void on_appended(void *arg, int status)
{
    storage_archive_writer_t *w = arg;
    w->inflight--;
    if (status < 0) {
        note_failure(w, "the store refused a batch of archived messages", status);
    } else if (w->failing && w->inflight == 0) {
        w->failing = false;
        core_log(w->log, CORE_LOG_INFO, 0, "%s: archiving works again", w->what);
    }
    /* What waited while the store wrote goes now if it is enough or old enough. */
    if (w->inflight == 0)
        schedule(w);
}

void storage_archive_writer_flush(storage_archive_writer_t *w)
{
    timer_drop(w);
    if (w->nwaiting == 0 || w->store == NULL)
        return;
    storage_archive_entry_t *e = core_malloc(w->nwaiting * sizeof(*e));
    for (size_t i = 0; i < w->nwaiting; i++) {
        const waiting_t *p = &w->waiting[i];
        e[i] = (storage_archive_entry_t){.owner = w->buf.data + p->owner,
                                         .key = p->key,
                                         .nonce = p->nonce,
                                         .with = w->buf.data + p->with,
                                         .data = w->buf.data + p->data,
                                         .len = p->data_len};
    }
    int rc = storage_archive_append(w->store, e, w->nwaiting, on_appended, w);
    if (rc < 0)
        note_failure(w, "cannot archive messages", rc);
    else
        w->inflight++;
    core_free(e);
    w->nwaiting = 0;
    core_buf_consume(&w->buf, w->buf.len);
    /* A burst's buffer is not kept for the quiet times after it. */
    if (w->buf.cap > 1024u * 1024u)
        core_buf_release(&w->buf);
}

static void on_timer(uv_timer_t *h)
{
    storage_archive_writer_t *w = h->data;
    timer_drop(w);
    if (w->inflight == 0)
        storage_archive_writer_flush(w);
}

/*
 * With no batch in hand: sends the waiting entries if there are enough or the oldest has
 * waited long enough, else makes sure a timer sends them when it has.
 */
static void schedule(storage_archive_writer_t *w)
{
    if (w->nwaiting == 0 || w->stopped)
        return;
    uint64_t waited = uv_now(w->loop) - w->first_ms;
    if (w->nwaiting >= ARCHIVE_BATCH_FULL || waited >= ARCHIVE_BATCH_WAIT_MS) {
        storage_archive_writer_flush(w);
        return;
    }
    if (w->timer != NULL)
        return;
    w->timer = core_malloc(sizeof(*w->timer));
    uv_timer_init(w->loop, w->timer);
    w->timer->data = w;
    uv_timer_start(w->timer, on_timer, ARCHIVE_BATCH_WAIT_MS - waited, 0);
}

static size_t put_str(storage_archive_writer_t *w, const char *s, size_t len)
{
    size_t off = w->buf.len;
    core_buf_append(&w->buf, s, len);
    core_buf_append(&w->buf, "", 1);
    return off;
}

int storage_archive_writer_add(storage_archive_writer_t *w, const char *owner, const char *with,
                               const char *data, size_t len, char id[STORAGE_ARCHIVE_ID_LEN + 1])
{
    if (w->stopped || w->store == NULL)
        return -ESHUTDOWN;
    if (w->nwaiting >= w->max_entries || w->buf.len >= w->max_bytes) {
        note_failure(w, "the store is behind, messages are not archived", 0);
        return -ENOBUFS;
    }
    if (w->nwaiting == w->cap) {
        w->cap = w->cap != 0 ? w->cap * 2 : 16;
        w->waiting = core_realloc(w->waiting, w->cap * sizeof(*w->waiting));
    }
    waiting_t *p = &w->waiting[w->nwaiting++];
    p->key = next_key(w);
    p->nonce = random64(w);
    p->owner = put_str(w, owner, strlen(owner));
    p->with = put_str(w, with, strlen(with));
    p->data = put_str(w, data, len);
    p->data_len = len;
    storage_archive_id_format(p->key, p->nonce, id);
    if (w->nwaiting == 1)
        w->first_ms = uv_now(w->loop);
    if (w->inflight == 0)
        schedule(w);
    return 0;
}

void storage_archive_writer_stop(storage_archive_writer_t *w)
{
    storage_archive_writer_flush(w);
    w->stopped = true;
}

void storage_archive_writer_free(storage_archive_writer_t *w)
{
    if (w == NULL)
        return;
    timer_drop(w);
    if (w->nwaiting > 0)
        core_log(w->log, CORE_LOG_WARN, 0, "%s: %zu messages not archived at shutdown", w->what,
                 w->nwaiting);
    core_buf_release(&w->buf);
    core_free(w->waiting);
    core_free(w->what);
    core_free(w);
}
