/* SPDX-License-Identifier: MIT */
/* Persistent rooms in the store: loaded before the link opens, saved when they change. */
#include "muc/internal.h"
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <string.h>

#define KIND "room"

static void on_written(void *arg, int status)
{
    muc_t *muc = arg;
    if (status < 0 && status != -ENOENT)
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot write a room to the store: %s",
                 strerror(-status));
}

void muc_room_save(muc_room_t *room)
{
    muc_t *muc = room->muc;
    if (!room->dirty || room->locked)
        return;
    room->dirty = false;
    if (muc->store == NULL)
        return;
    int rc;
    if (room->cfg.persistent) {
        xml_stanza_t *doc = muc_roomstore_encode(room);
        size_t len;
        const char *bytes = xml_stanza_bytes(doc, &len);
        rc = storage_svc_put(muc->store, muc->cfg->name, KIND, room->node, bytes, len, on_written,
                             muc);
        xml_stanza_unref(doc);
    } else {
        /* A room made temporary leaves the store now; it goes from memory when empty. */
        rc = storage_svc_delete(muc->store, muc->cfg->name, KIND, room->node, on_written, muc);
    }
    if (rc < 0)
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot save room %s: %s", room->jid, strerror(-rc));
}

void muc_room_forget(muc_room_t *room)
{
    muc_t *muc = room->muc;
    /* A destroyed room's archive goes with it (XEP-0045 §10.9), persistent or not. */
    muc_mam_forget(room);
    if (muc->store == NULL || room->locked || !room->cfg.persistent)
        return;
    int rc = storage_svc_delete(muc->store, muc->cfg->name, KIND, room->node, on_written, muc);
    if (rc < 0)
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot remove room %s: %s", room->jid, strerror(-rc));
}

static void on_loaded(void *arg, int status, const storage_docs_t *docs)
{
    muc_t *muc = arg;
    size_t n = 0;
    if (status < 0) {
        core_log(muc->log, CORE_LOG_WARN, 0, "cannot read the rooms from the store: %s",
                 strerror(-status));
    }
    for (size_t i = 0; status == 0 && i < docs->keys.count; i++) {
        const storage_blob_t *k = &docs->keys.items[i];
        const storage_blob_t *v = &docs->values.items[i];
        xml_stanza_t *doc = xml_stanza_parse(v->data, v->len);
        jid_t j = {0};
        muc_room_t *room = NULL;
        /* The key must still be a room id as this service prepares one. */
        char *probe = core_malloc(k->len + 2 + strlen(muc->cfg->name));
        memcpy(probe, k->data, k->len);
        probe[k->len] = '@';
        strcpy(probe + k->len + 1, muc->cfg->name);
        bool ok = doc != NULL && jid_parse(muc->jids, probe, strlen(probe), &j) == 0 &&
            j.node_len == k->len && memcmp(j.full, k->data, k->len) == 0 &&
            muc_room_find(muc, k->data, k->len) == NULL;
        if (ok) {
            room = muc_room_create(muc, k->data, k->len, xml_node_attr(doc->root, "creator"));
            ok = muc_roomstore_decode(room, doc->root) == 0 && room->cfg.persistent;
            if (!ok)
                muc_room_destroy(room);
        }
        if (ok)
            n++;
        else
            core_log(muc->log, CORE_LOG_WARN, 0, "room %.*s in the store is unreadable: skipped",
                     (int)k->len, k->data);
        if (j.full != NULL)
            jid_clear(&j);
        core_free(probe);
        xml_stanza_unref(doc);
    }
    if (status == 0)
        core_log(muc->log, CORE_LOG_INFO, 0, "%zu persistent rooms loaded", n);
    muc_link_open(muc);
}

int muc_rooms_load(muc_t *muc)
{
    if (muc->store == NULL)
        return -ENOENT;
    return storage_svc_get_all(muc->store, muc->cfg->name, KIND, on_loaded, muc);
}
