/* SPDX-License-Identifier: MIT */
/* The room archive (XEP-0313 on rooms): what is kept, its ids (XEP-0359), the group commit. */
#include "muc/mam.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <errno.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define NS_HINTS "urn:xmpp:hints"

/*
 * Group commit, as the sm's archive does it: the entries of a loop iteration go to the store
 * at its end when no batch of ours is being written; otherwise they wait and go together when
 * the store answers. Beyond these bounds messages are delivered but not archived (logged).
 */
#define PENDING_MAX 65536u
#define PENDING_BYTES (32u * 1024u * 1024u)

/* One entry of the next batch: offsets of NUL-terminated strings in mm->buf. */
typedef struct pending {
    size_t owner, with, data;
    size_t data_len;
    int64_t key;
    uint64_t nonce;
} pending_t;

struct muc_mam {
    muc_t *muc;
    core_buf_t buf;
    pending_t *pending;
    size_t npending, cap;
    uv_check_t *check; /* sends the batch at the end of the iteration; NULL: none */
    unsigned inflight; /* batches the store has not answered yet */
    bool failing; /* logged once until archiving works again */
    int64_t last_key;
    unsigned char rnd[256];
    size_t rnd_pos;
    unsigned queries; /* queries in flight (mam_query.c) */
};

muc_mam_t *muc_mam_new(muc_t *muc)
{
    muc_mam_t *mm = core_calloc(1, sizeof(*mm));
    mm->muc = muc;
    mm->rnd_pos = sizeof(mm->rnd);
    /* Keys start above every key the store holds (a clock that went back since). */
    mm->last_key = muc->store != NULL ? storage_archive_key_max(muc->store) : 0;
    return mm;
}

static void on_check_closed(uv_handle_t *h)
{
    core_free(h);
}

void muc_mam_stop(muc_mam_t *mm)
{
    muc_mam_flush(mm);
    if (mm->check != NULL) {
        uv_close((uv_handle_t *)mm->check, on_check_closed);
        mm->check = NULL;
    }
}

void muc_mam_free(muc_mam_t *mm)
{
    if (mm == NULL)
        return;
    if (mm->check != NULL)
        uv_close((uv_handle_t *)mm->check, on_check_closed);
    core_buf_release(&mm->buf);
    core_free(mm->pending);
    core_free(mm);
}

unsigned *muc_mam_queries(muc_mam_t *mm)
{
    return &mm->queries;
}

bool muc_mam_enabled(const muc_room_t *room)
{
    return room->muc->store != NULL && room->cfg.archiving;
}

/* ---- what is kept ---- */

bool muc_mam_archivable(const xml_stanza_t *st)
{
    bool body = false, subject = false, store = false;
    for (const xml_node_t *n = xml_node_first_element(st->root); n != NULL;
         n = xml_node_next_element(n)) {
        if (xml_node_is(n, NS_HINTS, "no-store") || xml_node_is(n, NS_HINTS, "no-permanent-store"))
            return false;
        body = body || xml_node_is(n, XMLS_NS_CONTENT, "body");
        subject = subject || xml_node_is(n, XMLS_NS_CONTENT, "subject");
        store = store || xml_node_is(n, NS_HINTS, "store");
    }
    return body || subject || store;
}

/* Unlinks every child of parent that is {ns}name. */
static void unlink_all(xml_stanza_t *st, xml_node_t *parent, const char *ns, const char *name)
{
    xml_node_t *n = xml_node_first_element(parent);
    while (n != NULL) {
        xml_node_t *next = xml_node_next_element(n);
        if (xml_node_is(n, ns, name))
            xml_node_unlink(st, n);
        n = next;
    }
}

xml_stanza_t *muc_mam_entry_make(const xml_stanza_t *base, const char *real_jid, const char *affil,
                                 const char *role)
{
    xml_stanza_t *e = xml_stanza_copy(base);
    /* XEP-0313 §10.2: the room does not sanitise muc#user <x/>, so the archive must. */
    unlink_all(e, e->root, MUC_NS_USER, "x");
    xml_node_set_attr(e, e->root, NULL, "to", NULL);
    xml_node_t *x = xml_node_add_element(e, e->root, MUC_NS_USER, "x");
    xml_node_t *item = xml_node_add_element(e, x, MUC_NS_USER, "item");
    xml_node_set_attr(e, item, NULL, "affiliation", affil);
    xml_node_set_attr(e, item, NULL, "jid", real_jid);
    xml_node_set_attr(e, item, NULL, "role", role);
    return e;
}

void muc_mam_entry_add(xml_stanza_t *msg, xml_node_t *fwd, const xml_node_t *entry, bool sees_jids)
{
    xml_node_t *m = xml_node_add_copy(msg, fwd, entry);
    /* §6.1.2: the real JID only to those who may see it now; the rest get the message alone. */
    if (!sees_jids)
        unlink_all(msg, m, MUC_NS_USER, "x");
}

/* ---- keys and ids (XEP-0359 §2.1: unique and stable; XEP-0313 §3: unpredictable) ---- */

static void note_failure(muc_mam_t *mm, const char *what, int err)
{
    if (mm->failing)
        return;
    mm->failing = true;
    core_log(mm->muc->log, CORE_LOG_WARN, 0, "room archive: %s%s%s; messages are still delivered",
             what, err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
}

static uint64_t random64(muc_mam_t *mm)
{
    if (mm->rnd_pos + sizeof(uint64_t) > sizeof(mm->rnd)) {
        /* The key alone keeps ids unique; only their unpredictability would suffer. */
        if (RAND_bytes(mm->rnd, (int)sizeof(mm->rnd)) != 1)
            core_log(mm->muc->log, CORE_LOG_WARN, 0, "room archive: no random bytes for ids");
        mm->rnd_pos = 0;
    }
    uint64_t v;
    memcpy(&v, mm->rnd + mm->rnd_pos, sizeof(v));
    mm->rnd_pos += sizeof(v);
    return v;
}

/*
 * The entry's key and stamp: the clock in microseconds, or one more than the last key, so
 * keys grow strictly in this process (each room's archive is appended to by its muc only,
 * docs/storage.md) and never fall below what the store held when it was opened.
 */
static int64_t next_key(muc_mam_t *mm)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t k = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (k <= mm->last_key)
        k = mm->last_key + 1;
    mm->last_key = k;
    return k;
}

/* ---- the batch ---- */

static void on_appended(void *arg, int status)
{
    muc_mam_t *mm = arg;
    mm->inflight--;
    if (status < 0) {
        note_failure(mm, "the store refused a batch of room messages", status);
    } else if (mm->failing && mm->inflight == 0) {
        mm->failing = false;
        core_log(mm->muc->log, CORE_LOG_INFO, 0, "room archive: archiving works again");
    }
    /* What waited while the store wrote goes now, as one batch. */
    if (mm->inflight == 0 && !mm->muc->stopping)
        muc_mam_flush(mm);
}

void muc_mam_flush(muc_mam_t *mm)
{
    if (mm->npending == 0 || mm->muc->store == NULL)
        return;
    storage_archive_entry_t *e = core_malloc(mm->npending * sizeof(*e));
    for (size_t i = 0; i < mm->npending; i++) {
        const pending_t *p = &mm->pending[i];
        e[i] = (storage_archive_entry_t){.owner = mm->buf.data + p->owner,
                                         .key = p->key,
                                         .nonce = p->nonce,
                                         .with = mm->buf.data + p->with,
                                         .data = mm->buf.data + p->data,
                                         .len = p->data_len};
    }
    int rc = storage_archive_append(mm->muc->store, e, mm->npending, on_appended, mm);
    if (rc < 0)
        note_failure(mm, "cannot archive room messages", rc);
    else
        mm->inflight++;
    core_free(e);
    mm->npending = 0;
    core_buf_consume(&mm->buf, mm->buf.len);
    if (mm->buf.cap > 1024u * 1024u)
        core_buf_release(&mm->buf); /* a burst's buffer is not kept for the quiet after it */
}

static void on_check(uv_check_t *h)
{
    muc_mam_t *mm = h->data;
    mm->check = NULL;
    uv_close((uv_handle_t *)h, on_check_closed);
    if (mm->inflight == 0 && !mm->muc->stopping)
        muc_mam_flush(mm);
}

static size_t put_str(muc_mam_t *mm, const char *s, size_t len)
{
    size_t off = mm->buf.len;
    core_buf_append(&mm->buf, s, len);
    core_buf_append(&mm->buf, "", 1);
    return off;
}

bool muc_mam_archive(muc_room_t *room, const muc_occupant_t *o, const xml_stanza_t *base,
                     char id[STORAGE_ARCHIVE_ID_LEN + 1])
{
    muc_t *muc = room->muc;
    muc_mam_t *mm = muc->mam;
    if (!muc_mam_enabled(room) || muc->stopping || !muc_mam_archivable(base))
        return false;
    if (mm->npending >= PENDING_MAX || mm->buf.len >= PENDING_BYTES) {
        note_failure(mm, "the store is behind, room messages are not archived", 0);
        return false;
    }
    xml_stanza_t *e = muc_mam_entry_make(base, o->jid.full, muc_affil_name(muc_occupant_affil(o)),
                                         muc_role_name(o->role));
    size_t len;
    const char *bytes = xml_stanza_bytes(e, &len);
    int64_t key = next_key(mm);
    uint64_t nonce = random64(mm);
    storage_archive_id_format(key, nonce, id);
    if (mm->npending == mm->cap) {
        mm->cap = mm->cap != 0 ? mm->cap * 2 : 16;
        mm->pending = core_realloc(mm->pending, mm->cap * sizeof(*mm->pending));
    }
    pending_t *p = &mm->pending[mm->npending++];
    p->key = key;
    p->nonce = nonce;
    p->owner = put_str(mm, room->jid, strlen(room->jid));
    /* 'with' is the occupant JID: what a query's with filter names (§4.1.1, MUC archives). */
    const char *from = xml_stanza_from(base);
    p->with = put_str(mm, from, strlen(from));
    p->data = put_str(mm, bytes, len);
    p->data_len = len;
    xml_stanza_unref(e);
    if (mm->check == NULL && mm->inflight == 0) {
        uv_check_t *h = core_malloc(sizeof(*h));
        uv_check_init(muc->loop, h);
        h->data = mm;
        uv_check_start(h, on_check);
        mm->check = h;
    }
    return true;
}

/* ---- a room's archive goes ---- */

static void on_forgotten(void *arg, int status)
{
    muc_t *muc = arg;
    if (status < 0 && status != -ENOENT)
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot remove a room archive: %s", strerror(-status));
}

void muc_mam_forget(muc_room_t *room)
{
    muc_t *muc = room->muc;
    if (muc->store == NULL)
        return;
    /* What the room said last goes to the store first: the removal then takes it too. */
    muc_mam_flush(muc->mam);
    int rc = storage_archive_expire(muc->store, room->jid, INT64_MAX, on_forgotten, muc);
    if (rc < 0)
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot remove the archive of %s: %s", room->jid,
                 strerror(-rc));
}

void muc_mam_disco(xml_stanza_t *r, xml_node_t *q, const muc_room_t *room)
{
    if (!muc_mam_enabled(room))
        return;
    /* §7: the archiving JID advertises both; #extended: after-id, before-id, ids, flip, metadata.
     */
    static const char *const vars[] = {MUC_NS_MAM, MUC_NS_MAM_EXTENDED};
    for (size_t i = 0; i < 2; i++) {
        xml_node_t *f = xml_node_add_element(r, q, MUC_NS_DISCO_INFO, "feature");
        xml_node_set_attr(r, f, NULL, "var", vars[i]);
    }
}
