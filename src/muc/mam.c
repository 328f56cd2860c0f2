/* SPDX-License-Identifier: MIT */
/* The room archive (XEP-0313 on rooms): what is kept, written through a storage archive writer. */
#include "muc/mam.h"

#include "core/alloc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NS_HINTS "urn:xmpp:hints"

/* Entries and bytes that may wait for the store (storage_archive_writer's group commit);
 * beyond, messages are delivered but not archived (logged). */
#define PENDING_MAX 65536u
#define PENDING_BYTES (32u * 1024u * 1024u)

struct muc_mam {
    muc_t *muc;
    storage_archive_writer_t *writer;
    unsigned queries; /* queries in flight (mam_query.c) */
};

muc_mam_t *muc_mam_new(muc_t *muc)
{
    muc_mam_t *mm = core_calloc(1, sizeof(*mm));
    mm->muc = muc;
    mm->writer = storage_archive_writer_new(muc->store, muc->loop, muc->log, "room archive",
                                            PENDING_MAX, PENDING_BYTES);
    return mm;
}

void muc_mam_stop(muc_mam_t *mm)
{
    storage_archive_writer_stop(mm->writer);
}

void muc_mam_free(muc_mam_t *mm)
{
    if (mm == NULL)
        return;
    storage_archive_writer_free(mm->writer);
    core_free(mm);
}

void muc_mam_flush(muc_mam_t *mm)
{
    storage_archive_writer_flush(mm->writer);
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

bool muc_mam_archive(muc_room_t *room, const muc_occupant_t *o, const xml_stanza_t *base,
                     char id[STORAGE_ARCHIVE_ID_LEN + 1])
{
    muc_t *muc = room->muc;
    muc_mam_t *mm = muc->mam;
    if (!muc_mam_enabled(room) || muc->stopping || !muc_mam_archivable(base))
        return false;
    xml_stanza_t *e = muc_mam_entry_make(base, o->jid.full, muc_affil_name(muc_occupant_affil(o)),
                                         muc_role_name(o->role));
    size_t len;
    const char *bytes = xml_stanza_bytes(e, &len);
    /* 'with' is the occupant JID: what a query's with filter names (§4.1.1, MUC archives). */
    int rc =
        storage_archive_writer_add(mm->writer, room->jid, xml_stanza_from(base), bytes, len, id);
    xml_stanza_unref(e);
    return rc == 0;
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
