/* SPDX-License-Identifier: MIT */
/* Shared names: several sm shards bind one domain; each user's stanzas go to one of them. */
#include "router/internal.h"

#include "core/alloc.h"
#include "core/buf.h"

#include <stdlib.h>
#include <string.h>

bool router_route_held_by(const router_route_t *rt, const link_t *l)
{
    if (rt->link == l)
        return true;
    for (size_t i = 0; rt->shared && i < rt->nmembers; i++) {
        if (rt->members[i] == l)
            return true;
    }
    return false;
}

bool router_shard_add(router_route_t *rt, link_t *l)
{
    if (router_route_held_by(rt, l))
        return false;
    rt->members = core_realloc(rt->members, (rt->nmembers + 1) * sizeof(link_t *));
    rt->members[rt->nmembers++] = l;
    return true;
}

void router_shard_remove(router_route_t *rt, link_t *l)
{
    for (size_t i = 0; i < rt->nmembers; i++) {
        if (rt->members[i] == l) {
            /* Kept in bind order: the list sent is sorted anyway, but logs read better. */
            memmove(&rt->members[i], &rt->members[i + 1],
                    (rt->nmembers - i - 1) * sizeof(link_t *));
            rt->nmembers--;
            return;
        }
    }
}

/*
 * A shard's instance name: the first name its link bound other than the shared one (each
 * sm binds its [sm] name, docs/link-protocol.md). NULL until it has bound one: until then it
 * gets nothing routed and is not in the list.
 */
static const char *instance_of(const router_route_t *rt, const link_t *l)
{
    const router_link_t *rl = l->hub_data;
    for (size_t i = 0; rl != NULL && i < rl->nnames; i++) {
        if (strcmp(rl->names[i], rt->name) != 0)
            return rl->names[i];
    }
    return NULL;
}

typedef struct shard_entry {
    const char *name;
    link_t *link;
} shard_entry_t;

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const shard_entry_t *)a)->name, ((const shard_entry_t *)b)->name);
}

/* The shards of rt that have an instance name, sorted by it; *n of them (new array). */
static shard_entry_t *sorted_shards(const router_route_t *rt, size_t *n)
{
    shard_entry_t *e = core_calloc(rt->nmembers + 1, sizeof(*e));
    size_t k = 0;
    for (size_t i = 0; i < rt->nmembers; i++) {
        const char *name = instance_of(rt, rt->members[i]);
        if (name != NULL)
            e[k++] = (shard_entry_t){.name = name, .link = rt->members[i]};
    }
    qsort(e, k, sizeof(*e), entry_cmp);
    *n = k;
    return e;
}

/* The prepared bare JID of s when it has a node in the domain rt names; false otherwise. */
static bool user_of(router_t *r, const router_route_t *rt, const char *s, jid_t *j)
{
    if (s == NULL || jid_parse(r->jids, s, strlen(s), j) < 0)
        return false;
    if (jid_has_node(j) && j->domain_len == strlen(rt->name) &&
        memcmp(jid_domain_ptr(j), rt->name, j->domain_len) == 0)
        return true;
    jid_clear(j);
    return false;
}

link_t *router_shard_dest(router_t *r, router_route_t *rt, const char *to, const char *from)
{
    size_t n;
    shard_entry_t *e = sorted_shards(rt, &n);
    link_t *dest = NULL;
    jid_t j;
    if (n == 0)
        goto out;
    /* The user it is for; a stanza to the bare name (a server-addressed iq) goes with its
     * sender's user, so that the answer to it comes from the same shard as the rest. */
    if (user_of(r, rt, to, &j) || user_of(r, rt, from, &j)) {
        const char **names = core_calloc(n, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            names[i] = e[i].name;
        long k = link_shard_pick(names, n, j.full, j.bare_len);
        core_free(names);
        jid_clear(&j);
        dest = e[k].link;
    } else {
        dest = e[0].link; /* nobody's: the first by instance name, the same every time */
    }
out:
    core_free(e);
    return dest;
}

/* Sends <shards name='rt'><shard name='…'/>…</shards> to every shard of rt. */
static void send_list(router_t *r, router_route_t *rt, const shard_entry_t *e, size_t n)
{
    xml_stanza_t *st = xml_stanza_new(LINK_NS, "shards");
    xml_node_set_attr(st, st->root, NULL, "name", rt->name);
    for (size_t i = 0; i < n; i++) {
        xml_node_t *c = xml_node_add_element(st, st->root, LINK_NS, "shard");
        xml_node_set_attr(st, c, NULL, "name", e[i].name);
    }
    for (size_t i = 0; i < rt->nmembers; i++) {
        link_t *l = rt->members[i];
        if (l->ops->deliver(l, st) < 0)
            core_log(r->log, CORE_LOG_WARN, l->id, "%s missed the shards of %s",
                     l->name ? l->name : "a shard", rt->name);
    }
    xml_stanza_unref(st);
}

void router_shards_changed(router_t *r)
{
    if (r->stopping)
        return;
    for (size_t s = 0; s < r->nshared; s++) {
        router_route_t *rt = r->shared[s];
        size_t n;
        shard_entry_t *e = sorted_shards(rt, &n);
        core_buf_t b = {0};
        for (size_t i = 0; i < n; i++) {
            core_buf_append_str(&b, e[i].name);
            core_buf_append_str(&b, " ");
        }
        core_buf_append(&b, "", 1);
        const char *now = b.data;
        if (strcmp(rt->sent != NULL ? rt->sent : "", now) != 0) {
            core_log(r->log, CORE_LOG_INFO, 0, "shards of %s: %s", rt->name,
                     n > 0 ? now : "(none)");
            core_free(rt->sent);
            rt->sent = core_strdup(now);
            send_list(r, rt, e, n);
        }
        core_buf_release(&b);
        core_free(e);
    }
}

void router_shards_free(router_t *r)
{
    core_free(r->shared);
    r->shared = NULL;
    r->nshared = 0;
}
