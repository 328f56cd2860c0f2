/* SPDX-License-Identifier: MIT */
/* IQs the sm sends in its own name: ids, the answers that come back for them, timeouts. */
#include "sm/internal.h"

#include "core/alloc.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct iq_req {
    struct iq_req *prev, *next; /* in sending order, which is deadline order */
    char id[32];
    char *to; /* the prepared JID it went to: only it may answer (owned) */
    uint64_t deadline; /* uv_now() milliseconds */
    bool sending; /* inside sm_iq_send: an answer now waits for the next turn of the loop */
    xml_stanza_t *early; /* such an answer (a reference), or NULL */
    sm_iq_cb cb;
    void *arg;
} iq_req_t;

typedef struct sm_iq {
    sm_t *sm;
    uv_timer_t timer; /* the head's deadline, or 0 when an early answer waits */
    bool stopping; /* sm_iq_stop runs: no new requests, the timer is closing */
    core_map_t reqs; /* id -> iq_req_t */
    iq_req_t *head, *tail;
    size_t nearly; /* requests holding an early answer */
} sm_iq_t;

static void unlink_req(sm_iq_t *q, iq_req_t *r)
{
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        q->head = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    else
        q->tail = r->prev;
    core_map_del(&q->reqs, r->id, strlen(r->id));
}

/* Takes r out and calls its callback with reply (may be NULL); frees r. */
static void finish(sm_iq_t *q, iq_req_t *r, const xml_stanza_t *reply)
{
    unlink_req(q, r);
    sm_iq_cb cb = r->cb;
    void *arg = r->arg;
    xml_stanza_t *early = r->early;
    if (early != NULL)
        q->nearly--;
    core_free(r->to);
    core_free(r);
    cb(q->sm, arg, reply != NULL ? reply : early);
    xml_stanza_unref(early);
}

static sm_iq_t *of_timer(uv_timer_t *t)
{
    return (sm_iq_t *)((char *)t - offsetof(sm_iq_t, timer));
}

/* The first request with an answer that came early, or NULL. */
static iq_req_t *early_one(const sm_iq_t *q)
{
    for (iq_req_t *r = q->nearly > 0 ? q->head : NULL; r != NULL; r = r->next) {
        if (r->early != NULL && !r->sending)
            return r;
    }
    return NULL;
}

static void on_timer(uv_timer_t *t);

static void arm(sm_iq_t *q)
{
    uint64_t now = uv_now(q->sm->loop);
    uint64_t wait = UINT64_MAX;
    if (early_one(q) != NULL)
        wait = 0;
    else if (q->head != NULL)
        wait = q->head->deadline > now ? q->head->deadline - now : 0;
    if (wait == UINT64_MAX)
        uv_timer_stop(&q->timer);
    else
        uv_timer_start(&q->timer, on_timer, wait, 0);
}

/* Answers that came early, then the requests whose time is up (oldest first). */
static void on_timer(uv_timer_t *t)
{
    sm_iq_t *q = of_timer(t);
    iq_req_t *r;
    while (!q->stopping && (r = early_one(q)) != NULL)
        finish(q, r, NULL);
    uint64_t now = uv_now(q->sm->loop);
    while (!q->stopping && q->head != NULL && q->head->deadline <= now && q->head->early == NULL)
        finish(q, q->head, NULL);
    if (!q->stopping)
        arm(q);
}

static sm_iq_t *tracker(sm_t *sm)
{
    if (sm->iq != NULL)
        return sm->iq;
    sm_iq_t *q = core_calloc(1, sizeof(*q));
    q->sm = sm;
    core_map_init(&q->reqs);
    uv_timer_init(sm->loop, &q->timer);
    sm->iq = q;
    return q;
}

int sm_iq_send(sm_t *sm, xml_stanza_t *st, sm_iq_cb cb, void *arg)
{
    const char *type = xml_stanza_type(st);
    const char *to = xml_stanza_to(st);
    if (xml_stanza_kind(st) != XMLS_KIND_IQ || type == NULL ||
        (strcmp(type, "get") != 0 && strcmp(type, "set") != 0) || to == NULL)
        return -EINVAL;
    if (sm->stopping || (sm->iq != NULL && sm->iq->stopping))
        return -ECANCELED;
    jid_t j;
    if (jid_parse(sm->jids, to, strlen(to), &j) < 0)
        return -EINVAL;
    sm_iq_t *q = tracker(sm);
    if (q->reqs.count >= SM_IQ_MAX) {
        jid_clear(&j);
        return -ENOBUFS;
    }
    iq_req_t *r = core_calloc(1, sizeof(*r));
    snprintf(r->id, sizeof(r->id), "sm-%" PRIu64, ++sm->next_id);
    r->to = core_strndup(j.full, j.full_len);
    jid_clear(&j);
    r->deadline =
        uv_now(sm->loop) + (sm->iq_timeout_ms != 0 ? sm->iq_timeout_ms : SM_IQ_TIMEOUT_MS);
    r->cb = cb;
    r->arg = arg;
    r->prev = q->tail;
    if (q->tail != NULL)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    core_map_put(&q->reqs, r->id, strlen(r->id), r);
    /* A shard asks from its own name: the answer must come back to it, not to whichever
     * shard the router would pick for the domain. */
    xml_node_set_attr(st, st->root, NULL, "from", sm_link_name(sm));
    xml_node_set_attr(st, st->root, NULL, "id", r->id);
    /* Routing may answer at once (an error made here); that answer waits in r->early. */
    r->sending = true;
    sm_route(sm, st);
    r->sending = false;
    arm(q);
    return 0;
}

bool sm_iq_input(sm_t *sm, const sm_pkt_t *pkt)
{
    const char *id = xml_stanza_id(pkt->st);
    sm_iq_t *q = sm->iq;
    if (q == NULL || q->stopping || id == NULL)
        return false;
    iq_req_t *r = core_map_get(&q->reqs, id, strlen(id));
    /* RFC 6120 §8.2.3: the answer comes from the entity asked; anyone else's is not one. */
    if (r == NULL || r->early != NULL || strcmp(r->to, pkt->from.full) != 0) {
        if (r != NULL)
            core_log(sm->log, CORE_LOG_DEBUG, 0, "iq %s: an answer from %s, asked %s", id,
                     pkt->from.full, r->to);
        return false;
    }
    if (r->sending) {
        r->early = xml_stanza_ref(pkt->st);
        q->nearly++;
        return true;
    }
    finish(q, r, pkt->st);
    return true;
}

static void on_closed(uv_handle_t *h)
{
    sm_iq_t *q = of_timer((uv_timer_t *)h);
    core_free(q);
}

void sm_iq_stop(sm_t *sm)
{
    sm_iq_t *q = sm->iq;
    if (q == NULL || q->stopping)
        return;
    q->stopping = true;
    while (q->head != NULL)
        finish(q, q->head, NULL);
    sm->iq = NULL;
    core_map_free(&q->reqs);
    /* Freed once the loop has closed the timer. */
    uv_close((uv_handle_t *)&q->timer, on_closed);
}
