/* SPDX-License-Identifier: MIT */
/*
 * The pubsub engine (src/pubsub/): each XEP-0060 use case through pubsub_request_run with
 * real request elements, the events and stores it hands the caller, the access models, the
 * publish-options preconditions, the limits, and a node's stored form read back.
 */
#include "core/alloc.h"
#include "pubsub/pubsub.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#define OWNER "juliet@capulet.lit"
#define FRIEND "romeo@montague.lit"
#define STRANGER "benvolio@montague.lit"

/* What the callbacks saw. */
typedef struct seen {
    int saves;
    int removes;
    char last_saved[64];
    char events[16][2048]; /* serialised <event/>s */
    char only_to[16][128]; /* "" for everyone */
    int nevents;
    bool friend_has_presence; /* may_access answers this for FRIEND */
} seen_t;

static seen_t seen;

static bool is_owner(void *ud, const jid_t *jid)
{
    return jid->bare_len == strlen(OWNER) && memcmp(jid->full, OWNER, jid->bare_len) == 0;
}

static bool may_create(void *ud, const jid_t *jid, const char *node)
{
    return is_owner(ud, jid);
}

static bool may_access(void *ud, const pubsub_node_t *node, const jid_t *jid)
{
    return seen.friend_has_presence && jid->bare_len == strlen(FRIEND) &&
        memcmp(jid->full, FRIEND, jid->bare_len) == 0;
}

static void node_defaults(void *ud, const char *node, pubsub_config_t *cfg)
{
    if (strcmp(node, "private") == 0)
        cfg->access_model = PUBSUB_ACCESS_WHITELIST;
}

static void node_save(void *ud, const pubsub_node_t *node)
{
    seen.saves++;
    snprintf(seen.last_saved, sizeof seen.last_saved, "%s", node->id);
}

static void node_remove(void *ud, const pubsub_node_t *node)
{
    seen.removes++;
}

static void notify(void *ud, const pubsub_node_t *node, const pubsub_event_t *ev)
{
    assert_true(seen.nevents < 16);
    core_buf_t b = {0};
    xml_node_serialize(ev->event, &b);
    snprintf(seen.events[seen.nevents], sizeof seen.events[0], "%.*s", (int)b.len, b.data);
    snprintf(seen.only_to[seen.nevents], sizeof seen.only_to[0], "%s",
             ev->only_to != NULL ? ev->only_to : "");
    seen.nevents++;
    core_buf_release(&b);
}

static const pubsub_ops_t ops = {
    .is_owner = is_owner,
    .may_create = may_create,
    .may_access = may_access,
    .node_defaults = node_defaults,
    .node_save = node_save,
    .node_remove = node_remove,
    .notify = notify,
};

static const pubsub_limits_t limits = {
    .max_nodes = 4,
    .max_items = 20,
    .max_item_bytes = 512,
    .max_node_bytes = 2048,
    .max_total_bytes = 4096,
    .max_subs = 8,
};

static pubsub_service_t *service(void)
{
    memset(&seen, 0, sizeof seen);
    pubsub_config_t d;
    pubsub_config_pep_defaults(&d);
    pubsub_service_t *svc = pubsub_service_new(&limits, &d, &ops, NULL);
    pubsub_config_clear(&d);
    return svc;
}

static xml_stanza_t *parse(const char *text)
{
    static const char hdr[] = "<stream xmlns='jabber:client'>";
    xml_parser_t *p = xml_parser_new(NULL);
    xml_event_t ev;
    assert_int_equal(xml_parser_feed(p, hdr, strlen(hdr)), 0);
    assert_int_equal(xml_parser_feed(p, text, strlen(text)), 0);
    assert_int_equal(xml_parser_next(p, &ev), 0);
    xml_stanza_unref(ev.stanza);
    assert_int_equal(xml_parser_next(p, &ev), 0);
    assert_int_equal(ev.kind, XMLS_EV_ELEMENT);
    xml_parser_free(p);
    return ev.stanza;
}

/* The serialiser quotes attributes with '"': expectations are written with ' for reading. */
static const char *dq(const char *want)
{
    static char buf[4][4096];
    static int next;
    char *b = buf[next++ % 4];
    snprintf(b, sizeof buf[0], "%s", want);
    for (char *p = b; *p != '\0'; p++) {
        if (*p == '\'')
            *p = '"';
    }
    return b;
}

#define assert_xml(got, want) assert_string_equal((got), dq(want))
#define assert_has(got, want) assert_non_null(strstr((got), dq(want)))

typedef struct outcome {
    int rc;
    pubsub_error_t err;
    char result[4096]; /* the serialised result's children, "" when none */
} outcome_t;

/* Runs <pubsub xmlns=ns>body</pubsub> from `from`. */
static outcome_t run(pubsub_service_t *svc, const char *from, bool set, const char *ns,
                     const char *body)
{
    char text[4096];
    snprintf(text, sizeof text, "<iq type='%s'><pubsub xmlns='%s'>%s</pubsub></iq>",
             set ? "set" : "get", ns, body);
    xml_stanza_t *iq = parse(text);
    jid_t j;
    assert_int_equal(jid_parse(NULL, from, strlen(from), &j), 0);
    const pubsub_request_t req = {
        .from = &j, .set = set, .pubsub = xml_node_first_element(iq->root)};
    xml_stanza_t *reply = xml_stanza_new(XMLS_NS_CONTENT, "iq");
    outcome_t o = {0};
    o.rc = pubsub_request_run(svc, &req, reply, reply->root, &o.err);
    core_buf_t b = {0};
    for (const xml_node_t *n = xml_node_first_element(reply->root); n != NULL;
         n = xml_node_next_element(n))
        xml_node_serialize(n, &b);
    snprintf(o.result, sizeof o.result, "%.*s", (int)b.len, b.data != NULL ? b.data : "");
    core_buf_release(&b);
    xml_stanza_unref(reply);
    xml_stanza_unref(iq);
    jid_clear(&j);
    return o;
}

static outcome_t user(pubsub_service_t *svc, const char *from, bool set, const char *body)
{
    return run(svc, from, set, PUBSUB_NS, body);
}

static outcome_t owner(pubsub_service_t *svc, bool set, const char *body)
{
    return run(svc, OWNER "/balcony", set, PUBSUB_NS_OWNER, body);
}

static void expect_error(const outcome_t *o, core_stanza_err_t cond, const char *app)
{
    assert_true(o->rc < 0);
    assert_string_equal(core_stanza_err_name(o->err.cond), core_stanza_err_name(cond));
    if (app == NULL)
        assert_null(o->err.app);
    else
        assert_string_equal(o->err.app != NULL ? o->err.app : "(none)", app);
}

#define TUNE "<tune xmlns='http://jabber.org/protocol/tune'><artist>Finzi</artist></tune>"
#define PUBLISH(node, item) "<publish node='" node "'>" item "</publish>"

static void publish_autocreates_and_notifies(void **state)
{
    pubsub_service_t *svc = service();
    outcome_t o = user(svc, OWNER "/balcony", true, PUBLISH("tune", "<item>" TUNE "</item>"));
    assert_int_equal(o.rc, 0);
    pubsub_node_t *node = pubsub_node_find(svc, "tune");
    assert_non_null(node);
    assert_int_equal(node->nitems, 1);
    /* XEP-0060 §7.1.2: the generated id comes back in the result. */
    char want[512];
    snprintf(want, sizeof want,
             "<pubsub xmlns='" PUBSUB_NS "'><publish node='tune'><item id='%s'/></publish>"
             "</pubsub>",
             node->items[0].id);
    assert_xml(o.result, want);
    assert_true(strlen(node->items[0].id) >= 16);
    /* XEP-0163 §8: the PEP defaults, and the owner affiliation. */
    assert_int_equal(node->cfg.access_model, PUBSUB_ACCESS_PRESENCE);
    assert_int_equal(node->cfg.send_last, PUBSUB_SEND_LAST_ON_SUB_AND_PRESENCE);
    assert_int_equal(pubsub_node_aff(node, OWNER), PUBSUB_AFF_OWNER);
    assert_int_equal(seen.nevents, 1);
    snprintf(want, sizeof want,
             "<event xmlns='" PUBSUB_NS_EVENT "'><items node='tune'><item id='%s'>" TUNE
             "</item></items></event>",
             node->items[0].id);
    assert_xml(seen.events[0], want);
    assert_string_equal(seen.only_to[0], "");
    assert_true(seen.saves >= 1);
    assert_string_equal(seen.last_saved, "tune");
    pubsub_service_free(svc);
}

static void publish_same_id_replaces_and_max_items_evicts(void **state)
{
    pubsub_service_t *svc = service();
    const char *opts = "<publish-options><x xmlns='jabber:x:data' type='submit'>"
                       "<field var='FORM_TYPE' type='hidden'><value>" PUBSUB_FORM_PUBLISH_OPTIONS
                       "</value></field><field var='pubsub#max_items'><value>3</value></field>"
                       "</x></publish-options>";
    char body[1024];
    const char *ids[] = {"a", "b", "c", "b", "d"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(body, sizeof body,
                 "<publish node='n'><item id='%s'><x xmlns='urn:x'>%zu</x>"
                 "</item></publish>%s",
                 ids[i], i, opts);
        outcome_t o = user(svc, OWNER, true, body);
        assert_int_equal(o.rc, 0);
    }
    pubsub_node_t *node = pubsub_node_find(svc, "n");
    assert_int_equal(node->cfg.max_items, 3);
    /* "b" again replaced the first "b" and became the newest; "a" went when "d" came. */
    assert_int_equal(node->nitems, 3);
    assert_string_equal(node->items[0].id, "c");
    assert_string_equal(node->items[1].id, "b");
    assert_string_equal(node->items[2].id, "d");
    outcome_t o = user(svc, OWNER, false, "<items node='n'><item id='b'/><item id='zz'/></items>");
    assert_int_equal(o.rc, 0);
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS "'><items node='n'><item id='b'>"
               "<x xmlns='urn:x'>3</x></item></items></pubsub>");
    o = user(svc, OWNER, false, "<items node='n' max_items='2'/>");
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS "'><items node='n'><item id='b'>"
               "<x xmlns='urn:x'>3</x></item><item id='d'><x xmlns='urn:x'>4"
               "</x></item></items></pubsub>");
    o = user(svc, OWNER, false, "<items node='missing'/>");
    expect_error(&o, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    pubsub_service_free(svc);
}

static void publish_options_preconditions(void **state)
{
    pubsub_service_t *svc = service();
    const char *wl = "<publish-options><x xmlns='jabber:x:data' type='submit'>"
                     "<field var='FORM_TYPE' type='hidden'><value>" PUBSUB_FORM_PUBLISH_OPTIONS
                     "</value></field><field var='pubsub#access_model'><value>whitelist</value>"
                     "</field><field var='pubsub#persist_items'><value>1</value></field></x>"
                     "</publish-options>";
    char body[1024];
    /* XEP-0060 §7.1.5: the node does not exist: created with the options. */
    snprintf(body, sizeof body, PUBLISH("p", "<item id='1'>" TUNE "</item>") "%s", wl);
    assert_int_equal(user(svc, OWNER, true, body).rc, 0);
    assert_int_equal(pubsub_node_find(svc, "p")->cfg.access_model, PUBSUB_ACCESS_WHITELIST);
    /* Met: the publish goes through. */
    assert_int_equal(user(svc, OWNER, true, body).rc, 0);
    /* Not met: <conflict/> + <precondition-not-met/>, and nothing changes. */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("q", "<item>" TUNE "</item>")).rc, 0);
    int events = seen.nevents;
    snprintf(body, sizeof body, PUBLISH("q", "<item id='2'>" TUNE "</item>") "%s", wl);
    outcome_t o = user(svc, OWNER, true, body);
    expect_error(&o, CORE_STANZA_ERR_CONFLICT, "precondition-not-met");
    assert_int_equal(pubsub_node_find(svc, "q")->nitems, 1);
    assert_int_equal(seen.nevents, events);
    /* An unknown field cannot be met either. */
    o = user(svc, OWNER, true,
             PUBLISH("p", "<item>" TUNE "</item>") "<publish-options><x xmlns='jabber:x:data' "
                                                   "type='submit'><field var='pubsub#colour'>"
                                                   "<value>red</value></field></x>"
                                                   "</publish-options>");
    expect_error(&o, CORE_STANZA_ERR_CONFLICT, "precondition-not-met");
    /* max_items 'max' against a node that keeps one item: not met. */
    o = user(svc, OWNER, true,
             PUBLISH("q", "<item>" TUNE "</item>") "<publish-options><x xmlns='jabber:x:data' "
                                                   "type='submit'><field var='pubsub#max_items'>"
                                                   "<value>max</value></field></x>"
                                                   "</publish-options>");
    expect_error(&o, CORE_STANZA_ERR_CONFLICT, "precondition-not-met");
    /* The owner's node_defaults made "private" a whitelist node. */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("private", "<item>" TUNE "</item>")).rc, 0);
    assert_int_equal(pubsub_node_find(svc, "private")->cfg.access_model, PUBSUB_ACCESS_WHITELIST);
    pubsub_service_free(svc);
}

static void publish_rights_and_errors(void **state)
{
    pubsub_service_t *svc = service();
    outcome_t o = user(svc, FRIEND, true, PUBLISH("tune", "<item>" TUNE "</item>"));
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    assert_null(pubsub_node_find(svc, "tune"));
    assert_int_equal(user(svc, OWNER, true, PUBLISH("tune", "<item>" TUNE "</item>")).rc, 0);
    o = user(svc, FRIEND, true, PUBLISH("tune", "<item>" TUNE "</item>"));
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = user(svc, OWNER, true, "<publish/>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "nodeid-required");
    o = user(svc, OWNER, true, PUBLISH("tune", ""));
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "item-required");
    o = user(svc, OWNER, true, PUBLISH("tune", "<item/>"));
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "payload-required");
    o = user(svc, OWNER, true, PUBLISH("tune", "<item>" TUNE TUNE "</item>"));
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "invalid-payload");
    o = user(svc, OWNER, false, PUBLISH("tune", "<item>" TUNE "</item>"));
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    /* Over limits.max_item_bytes: <not-acceptable/> + <payload-too-big/>. */
    char big[1200] = "<publish node='big'><item><x xmlns='urn:x'>";
    size_t n = strlen(big);
    memset(big + n, 'a', 600);
    snprintf(big + n + 600, sizeof big - n - 600, "</x></item></publish>");
    o = user(svc, OWNER, true, big);
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, "payload-too-big");
    assert_null(pubsub_node_find(svc, "big"));
    /* limits.max_nodes (4). */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("n2", "<item>" TUNE "</item>")).rc, 0);
    assert_int_equal(user(svc, OWNER, true, PUBLISH("n3", "<item>" TUNE "</item>")).rc, 0);
    assert_int_equal(user(svc, OWNER, true, PUBLISH("n4", "<item>" TUNE "</item>")).rc, 0);
    o = user(svc, OWNER, true, PUBLISH("n5", "<item>" TUNE "</item>"));
    expect_error(&o, CORE_STANZA_ERR_POLICY_VIOLATION, NULL);
    o = user(svc, OWNER, true, "<frobnicate node='tune'/>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    pubsub_service_free(svc);
}

static void node_bytes_evict_oldest(void **state)
{
    pubsub_service_t *svc = service();
    char body[1024];
    char fill[401];
    memset(fill, 'z', 400);
    fill[400] = '\0';
    /* max_items 'max' (20), but 2048 bytes per node: about four of these fit. */
    for (int i = 0; i < 8; i++) {
        snprintf(body, sizeof body,
                 "<publish node='b'><item id='i%d'><x xmlns='urn:x'>%s</x>"
                 "</item></publish><publish-options><x xmlns='jabber:x:data'"
                 " type='submit'><field var='pubsub#max_items'><value>max"
                 "</value></field></x></publish-options>",
                 i, fill);
        assert_int_equal(user(svc, OWNER, true, body).rc, 0);
    }
    pubsub_node_t *node = pubsub_node_find(svc, "b");
    assert_true(node->bytes <= limits.max_node_bytes);
    assert_true(node->nitems >= 3 && node->nitems < 8);
    assert_string_equal(node->items[node->nitems - 1].id, "i7");
    assert_int_equal(pubsub_service_bytes(svc), node->bytes);
    pubsub_service_free(svc);
}

static void retract_with_notify(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("t", "<item id='x'>" TUNE "</item>")).rc, 0);
    int events = seen.nevents;
    outcome_t o = user(svc, FRIEND, true, "<retract node='t'><item id='x'/></retract>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = user(svc, OWNER, true, "<retract node='t'><item/></retract>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "item-required");
    o = user(svc, OWNER, true, "<retract node='t'><item id='nope'/></retract>");
    expect_error(&o, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    o = user(svc, OWNER, true, "<retract node='t' notify='true'><item id='x'/></retract>");
    assert_int_equal(o.rc, 0);
    assert_xml(o.result, "");
    assert_int_equal(pubsub_node_find(svc, "t")->nitems, 0);
    assert_int_equal(seen.nevents, events + 1);
    assert_xml(seen.events[events],
               "<event xmlns='" PUBSUB_NS_EVENT "'><items "
               "node='t'><retract id='x'/></items></event>");
    /* notify='false' retracts silently. */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("t", "<item id='y'>" TUNE "</item>")).rc, 0);
    events = seen.nevents;
    o = user(svc, OWNER, true, "<retract node='t' notify='0'><item id='y'/></retract>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(seen.nevents, events);
    pubsub_service_free(svc);
}

static void access_models(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("pres", "<item id='1'>" TUNE "</item>")).rc, 0);
    const char *get = "<items node='pres'/>";
    /* presence (the default): a contact without a subscription is refused. */
    outcome_t o = user(svc, FRIEND "/orchard", false, get);
    expect_error(&o, CORE_STANZA_ERR_NOT_AUTHORIZED, "presence-subscription-required");
    seen.friend_has_presence = true;
    o = user(svc, FRIEND "/orchard", false, get);
    assert_int_equal(o.rc, 0);
    assert_has(o.result, "<item id='1'>");
    o = user(svc, STRANGER, false, get);
    expect_error(&o, CORE_STANZA_ERR_NOT_AUTHORIZED, "presence-subscription-required");
    /* whitelist: only owners and members. */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("private", "<item id='1'>" TUNE "</item>")).rc,
                     0);
    o = user(svc, FRIEND, false, "<items node='private'/>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ALLOWED, "closed-node");
    o = owner(svc, true,
              "<affiliations node='private'><affiliation jid='" FRIEND
              "' affiliation='member'/></affiliations>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(user(svc, FRIEND, false, "<items node='private'/>").rc, 0);
    o = owner(svc, false, "<affiliations node='private'/>");
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS_OWNER "'><affiliations node='private'>"
               "<affiliation jid='" OWNER "' affiliation='owner'/><affiliation jid='" FRIEND
               "' affiliation='member'/></affiliations></pubsub>");
    /* An outcast is forbidden even from an open node. */
    o = owner(svc, true,
              "<affiliations node='private'><affiliation jid='" FRIEND
              "' affiliation='outcast'/></affiliations>");
    assert_int_equal(o.rc, 0);
    o = user(svc, FRIEND, false, "<items node='private'/>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    /* The requester's own affiliations. */
    o = user(svc, FRIEND, false, "<affiliations/>");
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS "'><affiliations><affiliation "
               "node='private' affiliation='outcast'/></affiliations>"
               "</pubsub>");
    pubsub_service_free(svc);
}

static void configure_forms(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("c", "<item id='1'>" TUNE "</item>")).rc, 0);
    assert_int_equal(user(svc, OWNER, true, PUBLISH("c", "<item id='2'>" TUNE "</item>")).rc, 0);
    outcome_t o = owner(svc, false, "<configure node='c'/>");
    assert_int_equal(o.rc, 0);
    assert_has(o.result, "<field var='FORM_TYPE' type='hidden'><value>" PUBSUB_FORM_NODE_CONFIG);
    assert_has(o.result, "<field var='pubsub#access_model' type='list-single'");
    assert_has(o.result, "<value>presence</value></field>");
    o = run(svc, FRIEND, false, PUBSUB_NS_OWNER, "<configure node='c'/>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = owner(svc, false, "<configure/>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "nodeid-required");
    /* A field the engine does not know is refused, and nothing changes. */
    o = owner(svc, true,
              "<configure node='c'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='pubsub#access_model'><value>open</value></field>"
              "<field var='pubsub#colour'><value>red</value></field></x></configure>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
    assert_int_equal(pubsub_node_find(svc, "c")->cfg.access_model, PUBSUB_ACCESS_PRESENCE);
    o = owner(svc, true,
              "<configure node='c'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='pubsub#access_model'><value>authorize</value></field></x>"
              "</configure>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, "unsupported-access-model");
    o = owner(svc, true,
              "<configure node='c'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='pubsub#max_items'><value>21</value></field></x>"
              "</configure>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
    /* A whole submission: the new values, notify_config sends the form. */
    o = owner(svc, true,
              "<configure node='c'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='FORM_TYPE' type='hidden'><value>" PUBSUB_FORM_NODE_CONFIG
              "</value></field>"
              "<field var='pubsub#access_model'><value>roster</value></field>"
              "<field var='pubsub#roster_groups_allowed'><value>Friends</value>"
              "<value>Family</value></field>"
              "<field var='pubsub#max_items'><value>5</value></field>"
              "<field var='pubsub#notify_config'><value>true</value></field>"
              "<field var='pubsub#title'><value>My tunes</value></field>"
              "</x></configure>");
    assert_int_equal(o.rc, 0);
    pubsub_node_t *node = pubsub_node_find(svc, "c");
    assert_int_equal(node->cfg.access_model, PUBSUB_ACCESS_ROSTER);
    assert_int_equal(node->cfg.ngroups, 2);
    assert_string_equal(node->cfg.groups[1], "Family");
    assert_string_equal(node->cfg.title, "My tunes");
    assert_has(seen.events[seen.nevents - 1], "<configuration node='c'><x ");
    /* Fewer items allowed: the oldest go. */
    o = owner(svc, true,
              "<configure node='c'><x xmlns='jabber:x:data' type='submit'>"
              "<field var='pubsub#max_items'><value>1</value></field></x></configure>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(node->nitems, 1);
    assert_string_equal(node->items[0].id, "2");
    /* 'roster' asks may_access, like 'presence'. */
    o = user(svc, FRIEND, false, "<items node='c'/>");
    expect_error(&o, CORE_STANZA_ERR_NOT_AUTHORIZED, "not-in-roster-group");
    o = owner(svc, false, "<default/>");
    assert_int_equal(o.rc, 0);
    assert_has(o.result, "<default><x xmlns='jabber:x:data' type='form'>");
    pubsub_service_free(svc);
}

static void create_delete_purge(void **state)
{
    pubsub_service_t *svc = service();
    outcome_t o = user(svc, OWNER, true,
                       "<create node='d'/><configure><x xmlns='jabber:x:data' "
                       "type='submit'><field var='pubsub#access_model'><value>"
                       "open</value></field></x></configure>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(pubsub_node_find(svc, "d")->cfg.access_model, PUBSUB_ACCESS_OPEN);
    o = user(svc, OWNER, true, "<create node='d'/>");
    expect_error(&o, CORE_STANZA_ERR_CONFLICT, NULL);
    o = user(svc, FRIEND, true, "<create node='e'/>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = user(svc, OWNER, true, "<create/>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, "nodeid-required");
    /* open: anyone may read. */
    assert_int_equal(user(svc, OWNER, true, PUBLISH("d", "<item id='1'>" TUNE "</item>")).rc, 0);
    assert_int_equal(user(svc, STRANGER, false, "<items node='d'/>").rc, 0);
    int events = seen.nevents;
    o = owner(svc, true, "<purge node='d'/>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(pubsub_node_find(svc, "d")->nitems, 0);
    assert_xml(seen.events[events],
               "<event xmlns='" PUBSUB_NS_EVENT "'><purge node='d'/>"
               "</event>");
    o = run(svc, FRIEND, true, PUBSUB_NS_OWNER, "<delete node='d'/>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = owner(svc, true, "<delete node='d'/>");
    assert_int_equal(o.rc, 0);
    assert_null(pubsub_node_find(svc, "d"));
    assert_int_equal(seen.removes, 1);
    assert_xml(seen.events[events + 1],
               "<event xmlns='" PUBSUB_NS_EVENT "'><delete "
               "node='d'/></event>");
    o = owner(svc, true, "<delete node='d'/>");
    expect_error(&o, CORE_STANZA_ERR_ITEM_NOT_FOUND, NULL);
    o = owner(svc, true, "<subscriptions node='x'/>");
    expect_error(&o, CORE_STANZA_ERR_FEATURE_NOT_IMPLEMENTED, "unsupported");
    assert_string_equal(o.err.feature, "manage-subscriptions");
    pubsub_service_free(svc);
}

static void subscribe_gets_last_item(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("s", "<item id='1'>" TUNE "</item>")).rc, 0);
    outcome_t o = user(svc, FRIEND "/orchard", true, "<subscribe node='s' jid='" FRIEND "'/>");
    expect_error(&o, CORE_STANZA_ERR_NOT_AUTHORIZED, "presence-subscription-required");
    seen.friend_has_presence = true;
    o = user(svc, FRIEND "/orchard", true, "<subscribe node='s' jid='" OWNER "'/>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, "invalid-jid");
    int events = seen.nevents;
    o = user(svc, FRIEND "/orchard", true, "<subscribe node='s' jid='" FRIEND "/orchard'/>");
    assert_int_equal(o.rc, 0);
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS "'><subscription node='s' jid='" FRIEND
               "/orchard' subscription='subscribed'/></pubsub>");
    assert_int_equal(seen.nevents, events + 1);
    assert_string_equal(seen.only_to[events], FRIEND "/orchard");
    pubsub_node_t *node = pubsub_node_find(svc, "s");
    assert_int_equal(node->nsubs, 1);
    o = user(svc, FRIEND, false, "<subscriptions/>");
    assert_xml(o.result,
               "<pubsub xmlns='" PUBSUB_NS "'><subscriptions><subscription "
               "node='s' jid='" FRIEND "/orchard' subscription='subscribed'/>"
               "</subscriptions></pubsub>");
    o = user(svc, FRIEND, true, "<unsubscribe node='s' jid='" FRIEND "'/>");
    expect_error(&o, CORE_STANZA_ERR_UNEXPECTED_REQUEST, "not-subscribed");
    o = user(svc, STRANGER, true, "<unsubscribe node='s' jid='" FRIEND "/orchard'/>");
    expect_error(&o, CORE_STANZA_ERR_FORBIDDEN, NULL);
    o = user(svc, FRIEND, true, "<unsubscribe node='s' jid='" FRIEND "/orchard'/>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(node->nsubs, 0);
    /* The last item for a newly available resource: only with on_sub_and_presence. */
    xml_stanza_t *ev = pubsub_node_last_event(node, true);
    assert_non_null(ev);
    xml_stanza_unref(ev);
    node->cfg.send_last = PUBSUB_SEND_LAST_ON_SUB;
    assert_null(pubsub_node_last_event(node, true));
    pubsub_service_free(svc);
}

static void stored_form_round_trip(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(
        user(svc, OWNER, true,
             "<publish node='r'><item id='one'><x xmlns='urn:x' a='&lt;&amp;'>1 &amp; 2</x>"
             "</item></publish><publish-options><x xmlns='jabber:x:data' type='submit'><field "
             "var='pubsub#max_items'><value>max</value></field><field var='pubsub#access_model'>"
             "<value>roster</value></field><field var='pubsub#roster_groups_allowed'><value>"
             "Friends</value></field></x></publish-options>")
            .rc,
        0);
    assert_int_equal(
        user(svc, OWNER, true, PUBLISH("r", "<item id='two'><y xmlns='urn:y'/></item>")).rc, 0);
    assert_int_equal(owner(svc, true,
                           "<affiliations node='r'><affiliation jid='" FRIEND
                           "' affiliation='publisher'/></affiliations>")
                         .rc,
                     0);
    core_buf_t b = {0};
    pubsub_node_encode(pubsub_node_find(svc, "r"), &b);
    pubsub_service_t *again = service();
    pubsub_node_t *node = NULL;
    assert_int_equal(pubsub_node_load(again, b.data, b.len, &node), 0);
    assert_int_equal(seen.saves, 0); /* loading stores nothing */
    assert_string_equal(node->id, "r");
    assert_true(node->cfg.max_items_max);
    assert_int_equal(node->cfg.access_model, PUBSUB_ACCESS_ROSTER);
    assert_int_equal(node->cfg.ngroups, 1);
    assert_string_equal(node->cfg.groups[0], "Friends");
    assert_int_equal(node->nitems, 2);
    assert_string_equal(node->items[0].id, "one");
    assert_string_equal(node->items[1].id, "two");
    assert_string_equal(node->items[0].publisher, OWNER);
    assert_true(node->items[0].published_ms > 1700000000000);
    assert_int_equal(node->items[1].published_ms,
                     pubsub_node_find(svc, "r")->items[1].published_ms);
    core_buf_t p = {0};
    xml_node_serialize(node->items[0].payload->root, &p);
    core_buf_append(&p, "", 1);
    assert_xml(p.data, "<x xmlns='urn:x' a='&lt;&amp;'>1 &amp; 2</x>");
    core_buf_release(&p);
    assert_int_equal(pubsub_node_aff(node, FRIEND), PUBSUB_AFF_PUBLISHER);
    assert_int_equal(pubsub_node_aff(node, OWNER), PUBSUB_AFF_OWNER);
    assert_int_equal(pubsub_service_bytes(again), pubsub_service_bytes(svc));
    assert_int_equal(pubsub_node_load(again, b.data, b.len, NULL), -EEXIST);
    assert_int_equal(pubsub_node_load(again, "<node", 5, NULL), -EBADMSG);
    assert_int_equal(pubsub_node_load(again, "<other/>", 8, NULL), -EBADMSG);
    core_buf_release(&b);
    /* persist_items false: the items stay out of the stored form. */
    node->cfg.persist_items = false;
    pubsub_node_encode(node, &b);
    core_buf_append(&b, "", 1);
    assert_null(strstr(b.data, "<item"));
    assert_has(b.data, "persist_items='0'");
    core_buf_release(&b);
    pubsub_service_free(again);
    pubsub_service_free(svc);
}

static void disco_answers(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("pres", "<item id='1'>" TUNE "</item>")).rc, 0);
    assert_int_equal(user(svc, OWNER, true, PUBLISH("private", "<item id='1'>" TUNE "</item>")).rc,
                     0);
    jid_t j;
    assert_int_equal(jid_parse(NULL, FRIEND, strlen(FRIEND), &j), 0);
    seen.friend_has_presence = true;
    xml_stanza_t *st = xml_stanza_new("http://jabber.org/protocol/disco#items", "query");
    assert_int_equal(pubsub_disco_items(svc, OWNER, NULL, &j, st, st->root), 0);
    core_buf_t b = {0};
    xml_node_serialize(st->root, &b);
    core_buf_append(&b, "", 1);
    /* XEP-0163 §9.2: only the nodes the requester may see. */
    assert_xml(b.data,
               "<query xmlns='http://jabber.org/protocol/disco#items'><item "
               "jid='" OWNER "' node='pres'/></query>");
    core_buf_release(&b);
    xml_stanza_unref(st);
    st = xml_stanza_new("http://jabber.org/protocol/disco#info", "query");
    assert_int_equal(pubsub_disco_node_info(svc, "private", &j, st, st->root), -ENOENT);
    assert_int_equal(pubsub_disco_node_info(svc, "pres", &j, st, st->root), 0);
    xml_node_serialize(st->root, &b);
    core_buf_append(&b, "", 1);
    assert_has(b.data, "<identity category='pubsub' type='leaf'/>");
    core_buf_release(&b);
    xml_stanza_unref(st);
    jid_clear(&j);
    pubsub_service_free(svc);
}

/*
 * XEP-0060 §8.9.2: the same JID twice is bad-request and changes nothing; an <affiliation/>
 * without 'affiliation' leaves that JID's as it is; and where owners are only what the
 * affiliations say (no ops->is_owner, as in a pubsub component), the only owner may not make
 * itself something else, unless the same request names another owner.
 */
static void affiliation_changes_checked(void **state)
{
    pubsub_service_t *svc = service();
    assert_int_equal(user(svc, OWNER, true, PUBLISH("n", "<item id='1'>" TUNE "</item>")).rc, 0);
    pubsub_node_t *node = pubsub_node_find(svc, "n");
    outcome_t o = owner(svc, true,
                        "<affiliations node='n'><affiliation jid='" FRIEND
                        "' affiliation='member'/><affiliation jid='" FRIEND
                        "' affiliation='outcast'/></affiliations>");
    expect_error(&o, CORE_STANZA_ERR_BAD_REQUEST, NULL);
    assert_int_equal(pubsub_node_aff(node, FRIEND), PUBSUB_AFF_NONE);
    o = owner(svc, true,
              "<affiliations node='n'><affiliation jid='" FRIEND
              "' affiliation='publisher'/><affiliation jid='" STRANGER "'/></affiliations>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(pubsub_node_aff(node, FRIEND), PUBSUB_AFF_PUBLISHER);
    assert_int_equal(pubsub_node_aff(node, STRANGER), PUBSUB_AFF_NONE);
    pubsub_service_free(svc);

    static const pubsub_ops_t by_affiliation = {.node_save = node_save, .notify = notify};
    pubsub_config_t d;
    pubsub_config_generic_defaults(&d);
    svc = pubsub_service_new(&limits, &d, &by_affiliation, NULL);
    pubsub_config_clear(&d);
    jid_t j;
    assert_int_equal(jid_parse(NULL, OWNER, strlen(OWNER), &j), 0);
    assert_int_equal(pubsub_node_create(svc, "n", NULL, &j, &node), 0);
    jid_clear(&j);
    o = owner(svc, true,
              "<affiliations node='n'><affiliation jid='" OWNER
              "' affiliation='none'/></affiliations>");
    expect_error(&o, CORE_STANZA_ERR_NOT_ACCEPTABLE, NULL);
    assert_int_equal(pubsub_node_aff(node, OWNER), PUBSUB_AFF_OWNER);
    o = owner(svc, true,
              "<affiliations node='n'><affiliation jid='" OWNER
              "' affiliation='publisher'/><affiliation jid='" FRIEND
              "' affiliation='owner'/></affiliations>");
    assert_int_equal(o.rc, 0);
    assert_int_equal(pubsub_node_aff(node, OWNER), PUBSUB_AFF_PUBLISHER);
    assert_int_equal(pubsub_node_aff(node, FRIEND), PUBSUB_AFF_OWNER);
    pubsub_service_free(svc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(publish_autocreates_and_notifies),
        cmocka_unit_test(publish_same_id_replaces_and_max_items_evicts),
        cmocka_unit_test(publish_options_preconditions),
        cmocka_unit_test(publish_rights_and_errors),
        cmocka_unit_test(node_bytes_evict_oldest),
        cmocka_unit_test(retract_with_notify),
        cmocka_unit_test(access_models),
        cmocka_unit_test(configure_forms),
        cmocka_unit_test(create_delete_purge),
        cmocka_unit_test(subscribe_gets_last_item),
        cmocka_unit_test(stored_form_round_trip),
        cmocka_unit_test(disco_answers),
        cmocka_unit_test(affiliation_changes_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
