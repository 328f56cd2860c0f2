/* SPDX-License-Identifier: MIT */
/* A user's roster in memory, written through to storage, with pushes once stored. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Index of jid in the sorted items, or where it would go (*found false). */
static size_t locate(const storage_roster_t *r, const char *jid, bool *found)
{
    size_t lo = 0, hi = r->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(r->items[mid].jid, jid);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

storage_roster_item_t *sm_roster_find(sm_user_t *u, const char *jid)
{
    bool found;
    size_t i = locate(&u->roster, jid, &found);
    return found ? &u->roster.items[i] : NULL;
}

void sm_roster_item_xml(xml_stanza_t *st, xml_node_t *parent, const storage_roster_item_t *it)
{
    xml_node_t *n = xml_node_add_element(st, parent, SM_NS_ROSTER, "item");
    xml_node_set_attr(st, n, NULL, "jid", it->jid);
    if (it->name != NULL)
        xml_node_set_attr(st, n, NULL, "name", it->name);
    xml_node_set_attr(st, n, NULL, "subscription", storage_sub_name(it->subscription));
    if (it->ask == STORAGE_ASK_SUBSCRIBE)
        xml_node_set_attr(st, n, NULL, "ask", "subscribe");
    if (it->approved)
        xml_node_set_attr(st, n, NULL, "approved", "true");
    for (size_t g = 0; g < it->group_count; g++) {
        xml_node_t *gn = xml_node_add_element(st, n, SM_NS_ROSTER, "group");
        xml_node_add_text(st, gn, it->groups[g], strlen(it->groups[g]));
    }
}

/* RFC 6121 §2.1.6: the item (or its removal) to every interested resource. */
static void push(sm_t *sm, sm_user_t *u, const storage_roster_item_t *it, const char *version,
                 bool removed)
{
    for (sm_sess_t *s = u->sessions; s != NULL; s = s->next) {
        if (!s->interested)
            continue;
        char id[32];
        snprintf(id, sizeof id, "push%" PRIu64, ++sm->next_id);
        xml_stanza_t *iq = xml_stanza_new(XMLS_NS_CONTENT, "iq");
        xml_node_set_attr(iq, iq->root, NULL, "type", "set");
        xml_node_set_attr(iq, iq->root, NULL, "id", id);
        xml_node_set_attr(iq, iq->root, NULL, "to", s->jid.full);
        xml_node_t *q = xml_node_add_element(iq, iq->root, SM_NS_ROSTER, "query");
        if (version != NULL)
            xml_node_set_attr(iq, q, NULL, "ver", version);
        sm_roster_item_xml(iq, q, it);
        if (removed)
            xml_node_set_attr(iq, q->last, NULL, "subscription", "remove");
        sm_sess_send(sm, s, iq);
        xml_stanza_unref(iq);
    }
}

typedef struct write_ctx {
    sm_user_t *u;
    storage_roster_item_t item; /* what to push: the item, or subscription 'remove' */
    bool removed;
} write_ctx_t;

static void on_written(void *arg, int status, const char *version)
{
    write_ctx_t *w = arg;
    sm_user_t *u = w->u;
    sm_t *sm = u->sm;
    u->busy--;
    if (status == 0) {
        core_free(u->roster.version);
        u->roster.version = core_strdup(version);
        push(sm, u, &w->item, version, w->removed);
    } else if (status != -ENOENT) {
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: roster write failed: %s", u->jid.full,
                 strerror(-status));
    }
    storage_roster_item_clear(&w->item);
    core_free(w);
    sm_user_release(sm, u);
}

void sm_roster_put(sm_t *sm, sm_user_t *u, const storage_roster_item_t *item)
{
    bool found;
    size_t i = locate(&u->roster, item->jid, &found);
    storage_roster_t *r = &u->roster;
    if (found) {
        storage_roster_item_t copy;
        storage_roster_item_copy(&copy, item);
        storage_roster_item_clear(&r->items[i]);
        r->items[i] = copy;
    } else {
        r->items = core_realloc(r->items, (r->count + 1) * sizeof(*r->items));
        memmove(&r->items[i + 1], &r->items[i], (r->count - i) * sizeof(*r->items));
        storage_roster_item_copy(&r->items[i], item);
        r->count++;
    }
    write_ctx_t *w = core_calloc(1, sizeof(*w));
    w->u = u;
    storage_roster_item_copy(&w->item, item);
    u->busy++;
    int rc = storage_roster_put(sm->store, u->node, item, on_written, w);
    if (rc < 0) {
        u->busy--;
        core_log(sm->log, CORE_LOG_WARN, 0, "%s: cannot store the roster item %s: %s", u->jid.full,
                 item->jid, strerror(-rc));
        storage_roster_item_clear(&w->item);
        core_free(w);
    }
}

void sm_roster_remove(sm_t *sm, sm_user_t *u, const char *jid)
{
    bool found;
    size_t i = locate(&u->roster, jid, &found);
    if (!found)
        return;
    storage_roster_t *r = &u->roster;
    storage_roster_item_clear(&r->items[i]);
    memmove(&r->items[i], &r->items[i + 1], (r->count - i - 1) * sizeof(*r->items));
    r->count--;
    write_ctx_t *w = core_calloc(1, sizeof(*w));
    w->u = u;
    w->item.jid = core_strdup(jid);
    w->removed = true;
    u->busy++;
    int rc = storage_roster_delete(sm->store, u->node, jid, on_written, w);
    if (rc < 0) {
        u->busy--;
        storage_roster_item_clear(&w->item);
        core_free(w);
    }
}
