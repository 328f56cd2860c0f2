# SPDX-License-Identifier: MIT
"""Personal eventing (XEP-0163) on every account, with the pubsub protocol of XEP-0060 and
publish options (XEP-0223): publish, auto-create, retrieval, retraction, preconditions, max
items, notifications filtered by entity capabilities (XEP-0115 "+notify") to the owner's
resources and to contacts, the last item at login and on subscription approval, access
models, node configuration, persistence across a restart on both storage backends, disco,
and the module switched off.

Clients are slixmpp's (xep_0030, xep_0115, xep_0060, xep_0163 for caps and for publishing
through the library) and raw stanzas where exact bytes matter.
"""

import subprocess
from xml.sax.saxutils import escape

import pytest

import harness
import im
from harness import dump
from im import (DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, error_of, match, q, skip_prosody,
                subscribe, subscribe_both)

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's PEP")]

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
PS = "http://jabber.org/protocol/pubsub"
PSO = PS + "#owner"
PSE = PS + "#event"
PSERR = PS + "#errors"
NS_DATA = "jabber:x:data"
TUNE = "http://jabber.org/protocol/tune"
MOOD = "http://jabber.org/protocol/mood"


def tune(artist):
    return f"<tune xmlns='{TUNE}'><artist>{escape(artist)}</artist></tune>"


def form(form_type, **fields):
    """A submitted data form; field names with '__' stand for 'pubsub#'."""
    out = f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>" \
          f"<value>{form_type}</value></field>"
    for k, v in fields.items():
        values = v if isinstance(v, (list, tuple)) else [v]
        out += f"<field var='pubsub#{k}'>" + "".join(f"<value>{x}</value>" for x in values) + \
            "</field>"
    return out + "</x>"


def publish_xml(node, payload, item_id=None, options=None):
    item = f"<item id='{item_id}'>" if item_id else "<item>"
    opts = f"<publish-options>{form(PS + '#publish-options', **options)}</publish-options>" \
        if options else ""
    return f"<pubsub xmlns='{PS}'><publish node='{node}'>{item}{payload}</item></publish>" \
           f"{opts}</pubsub>"


def publish(c, node, payload, item_id=None, options=None, to=None):
    return c.iq("set", publish_xml(node, payload, item_id, options), to=to)


def items(c, node, to=A, max_items=None, ids=()):
    m = f" max_items='{max_items}'" if max_items is not None else ""
    inner = "".join(f"<item id='{i}'/>" for i in ids)
    return c.iq("get", f"<pubsub xmlns='{PS}'><items node='{node}'{m}>{inner}</items></pubsub>",
                to=to)


def ok(res):
    assert res.get("type") == "result", dump(res)
    return res


def pubsub_error(res):
    """(condition, pubsub#errors condition or None) of an error answer."""
    assert res.get("type") == "error", dump(res)
    err = res.find(q(im.NS_CLIENT, "error"))
    app = [c.tag.split("}")[1] for c in err if c.tag.startswith("{" + PSERR + "}")]
    return error_of(res)[1], (app[0] if app else None)


def item_ids(res, ns=PS):
    its = res.find(q(ns, "pubsub")).find(q(ns, "items"))
    return [i.get("id") for i in its.findall(q(ns, "item"))]


def event_of(el):
    ev = el.find(q(PSE, "event"))
    assert ev is not None, dump(el)
    return ev


def notification(node, frm=A):
    """A predicate: a PEP notification for node from the account's bare JID."""
    def has_node(el):
        ev = el.find(q(PSE, "event"))
        return ev is not None and any(c.get("node") == node for c in ev)
    return match("message", frm=frm, where=has_node)


def pep_client(pool, user, resource=None, notify=(), available=True):
    """A slixmpp client with caps (XEP-0115) saying NODE+notify for each node in notify,
    sent in its initial presence; waits until the server has asked what its caps mean (the
    first client of a kind only: the server caches them)."""
    c = im.IMClient(pool, user, pool.server.users[user], resource, None, False)
    x = c.xmpp
    for p in ("xep_0030", "xep_0115", "xep_0060", "xep_0163"):
        x.register_plugin(p)
    pool.clients.append(c)
    c.start()
    for n in notify:
        x["xep_0163"].add_interest(n)
    pool.run(x["xep_0115"].update_caps(broadcast=False))
    c.roster_get()
    if available:
        x.send_presence()
        c.recv(match("presence", type="", frm=c.jid))
        settle_caps(c)
    return c


def settle_caps(c):
    """Gives the server time to learn c's caps: its disco#info query (if it asks), answered
    by slixmpp, then a moment for the answer to be processed."""
    try:
        c.recv(match("iq", type="get", child=q(NS_DISCO_INFO, "query")), timeout=1.0)
    except AssertionError:
        pass
    c.pool.settle(0.5)


@pytest.fixture
def pool(im_server):
    p = im.IMPool(im_server)
    yield p
    p.close()


# ---------------------------------------------------------------------------
# Discovery


def features(res):
    query = res.find(q(NS_DISCO_INFO, "query"))
    return ({f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))},
            {(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO,
                                                                            "identity"))})


WANTED = {PS, PS + "#publish", PS + "#publish-options", PS + "#auto-create",
          PS + "#retrieve-items", PS + "#retract-items", PS + "#delete-items",
          PS + "#delete-nodes", PS + "#purge-nodes", PS + "#config-node", PS + "#create-nodes",
          PS + "#access-presence", PS + "#filtered-notifications", PS + "#last-published",
          PS + "#persistent-items", PS + "#item-ids", PS + "#auto-subscribe",
          PS + "#presence-notifications", PS + "#config-node-max", PS + "#subscribe"}
NOT_OFFERED = {PS + "#access-authorize", PS + "#instant-nodes", PS + "#subscription-options",
               PS + "#manage-subscriptions", PS + "#rsm", PS + "#collections"}


def test_disco_account_and_server(pool):
    """XEP-0163 §9.1: the account has identity pubsub/pep and the pubsub features it
    implements; XEP-0223 §6: the server too; nothing that is not implemented."""
    a = pep_client(pool, "alice")
    feats, ids = features(ok(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=A)))
    assert ("account", "registered") in ids and ("pubsub", "pep") in ids, ids
    assert WANTED <= feats, WANTED - feats
    assert PS + "#pubsub-on-a-jid" in feats
    assert not (feats & NOT_OFFERED), feats & NOT_OFFERED
    feats, ids = features(ok(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)))
    assert ("server", "im") in ids and ("pubsub", "pep") in ids, ids
    assert WANTED <= feats, WANTED - feats


def test_disco_items_lists_visible_nodes(pool):
    """XEP-0163 §9.2: disco#items of the account lists only the nodes the asker may see;
    disco#info of a node is pubsub/leaf; disco#items of a node lists its item ids."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    ok(publish(a, TUNE, tune("Finzi"), item_id="t1"))
    ok(publish(a, "secret", "<x xmlns='urn:example:s'/>", item_id="s1",
               options={"access_model": "whitelist"}))
    res = ok(a.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=A))
    nodes = {i.get("node") for i in res.find(q(NS_DISCO_ITEMS, "query"))}
    assert nodes == {TUNE, "secret"}, dump(res)
    res = ok(b.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=A))
    got = [(i.get("jid"), i.get("node")) for i in res.find(q(NS_DISCO_ITEMS, "query"))]
    assert got == [(A, TUNE)], dump(res)
    res = ok(b.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='{TUNE}'/>", to=A))
    feats, ids = features(res)
    assert ids == {("pubsub", "leaf")} and PS in feats, dump(res)
    res = ok(b.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}' node='{TUNE}'/>", to=A))
    assert [i.get("name") for i in res.find(q(NS_DISCO_ITEMS, "query"))] == ["t1"], dump(res)
    res = b.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='secret'/>", to=A)
    assert error_of(res)[1] == "item-not-found", dump(res)


# ---------------------------------------------------------------------------
# Publishing and retrieving


def test_publish_autocreates_and_retrieves(pool):
    """XEP-0163 §3: publishing to a node that does not exist creates it; the result carries
    the generated item id (XEP-0060 §7.1.2); the items come back exactly."""
    a = pep_client(pool, "alice")
    res = ok(publish(a, TUNE, tune("Gerald Finzi & co")))
    item = res.find(q(PS, "pubsub")).find(q(PS, "publish")).find(q(PS, "item"))
    assert res.find(q(PS, "pubsub")).find(q(PS, "publish")).get("node") == TUNE, dump(res)
    new_id = item.get("id")
    assert new_id, dump(res)
    res = ok(items(a, TUNE))
    its = res.find(q(PS, "pubsub")).find(q(PS, "items"))
    assert its.get("node") == TUNE and [i.get("id") for i in its] == [new_id], dump(res)
    artist = its[0].find(q(TUNE, "tune")).find(q(TUNE, "artist"))
    assert artist.text == "Gerald Finzi & co", dump(res)
    # No 'to': the account's own bare JID (RFC 6120 §10.3.3).
    assert item_ids(ok(items(a, TUNE, to=None))) == [new_id]


def test_same_id_replaces_and_max_items(pool):
    """XEP-0060 §7.1.2: the same id replaces the item and makes it the newest; beyond
    pubsub#max_items the oldest goes (§7.1.2.4); max_items on retrieval gives the newest."""
    a = pep_client(pool, "alice")
    opts = {"max_items": "3"}
    for i in ("a", "b", "c", "b", "d"):
        ok(publish(a, "list", f"<v xmlns='urn:example:v'>{i}</v>", item_id=i, options=opts))
    assert item_ids(ok(items(a, "list"))) == ["c", "b", "d"]
    assert item_ids(ok(items(a, "list", max_items=2))) == ["b", "d"]
    assert item_ids(ok(items(a, "list", ids=("d", "zz", "c")))) == ["d", "c"]
    # The default node keeps one item (XEP-0163 §8 smart defaults).
    ok(publish(a, TUNE, tune("one"), item_id="1"))
    ok(publish(a, TUNE, tune("two"), item_id="2"))
    assert item_ids(ok(items(a, TUNE))) == ["2"]


def test_publish_options_precondition(pool):
    """XEP-0060 §7.1.5 / XEP-0223: options the node meets publish; options it does not are
    <conflict/> + <precondition-not-met/> and change nothing; on a new node they configure
    it."""
    a = pep_client(pool, "alice")
    ok(publish(a, TUNE, tune("x"), item_id="1"))  # presence access by default
    res = publish(a, TUNE, tune("y"), item_id="2", options={"access_model": "whitelist"})
    assert pubsub_error(res) == ("conflict", "precondition-not-met"), dump(res)
    assert error_of(res)[0] == "cancel", dump(res)
    assert item_ids(ok(items(a, TUNE))) == ["1"]
    ok(publish(a, TUNE, tune("y"), item_id="2", options={"access_model": "presence"}))
    res = publish(a, TUNE, tune("z"), options={"unknown_option": "1"})
    assert pubsub_error(res) == ("conflict", "precondition-not-met"), dump(res)
    priv = {"persist_items": "true", "access_model": "whitelist", "max_items": "max",
            "send_last_published_item": "never"}
    ok(publish(a, "private", "<p xmlns='urn:example:p'/>", item_id="p", options=priv))
    res = ok(a.iq("get", f"<pubsub xmlns='{PSO}'><configure node='private'/></pubsub>"))
    x = res.find(q(PSO, "pubsub")).find(q(PSO, "configure")).find(q(NS_DATA, "x"))
    values = {f.get("var"): f.find(q(NS_DATA, "value")).text for f in x
              if f.find(q(NS_DATA, "value")) is not None}
    assert values["pubsub#access_model"] == "whitelist", dump(res)
    assert values["pubsub#max_items"] == "max", dump(res)
    assert values["pubsub#send_last_published_item"] == "never", dump(res)
    ok(publish(a, "private", "<p xmlns='urn:example:p'/>", item_id="q", options=priv))


def test_publish_errors(pool):
    """XEP-0060 §7.1.3: someone else's service is forbidden; a request without a node or with
    two payloads is a bad request."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    res = publish(b, TUNE, tune("not mine"), to=A)
    assert pubsub_error(res) == ("forbidden", None), dump(res)
    res = a.iq("set", f"<pubsub xmlns='{PS}'><publish><item>{tune('x')}</item></publish>"
                      f"</pubsub>")
    assert pubsub_error(res) == ("bad-request", "nodeid-required"), dump(res)
    res = a.iq("set", f"<pubsub xmlns='{PS}'><publish node='n'><item>{tune('x')}{tune('y')}"
                      f"</item></publish></pubsub>")
    assert pubsub_error(res) == ("bad-request", "invalid-payload"), dump(res)
    res = a.iq("get", f"<pubsub xmlns='{PS}'><items node='nothing-here'/></pubsub>")
    assert pubsub_error(res) == ("item-not-found", None), dump(res)


def test_retract_notifies(pool):
    """XEP-0060 §7.2: retract removes the item; with notify the owner's resources that want
    the node get <retract/>; a missing item is item-not-found."""
    a = pep_client(pool, "alice", resource="one", notify=[TUNE])
    a2 = pep_client(pool, "alice", resource="two", notify=[TUNE])
    ok(publish(a, TUNE, tune("x"), item_id="gone"))
    a2.recv(notification(TUNE))
    a.drain(0.2)
    ok(a.iq("set", f"<pubsub xmlns='{PS}'><retract node='{TUNE}' notify='true'>"
                   f"<item id='gone'/></retract></pubsub>"))
    for c in (a, a2):
        ev = event_of(c.recv(notification(TUNE)))
        r = ev.find(q(PSE, "items")).find(q(PSE, "retract"))
        assert r is not None and r.get("id") == "gone", dump(ev)
    assert item_ids(ok(items(a, TUNE))) == []
    res = a.iq("set", f"<pubsub xmlns='{PS}'><retract node='{TUNE}'><item id='gone'/>"
                      f"</retract></pubsub>")
    assert pubsub_error(res) == ("item-not-found", None), dump(res)


# ---------------------------------------------------------------------------
# Notifications (XEP-0163 §4)


def test_notifications_follow_caps(pool):
    """§4.3: the owner's resources and contacts with a presence subscription get the event,
    from the account's bare JID, type headline, only if their caps say NODE+notify."""
    a = pep_client(pool, "alice", resource="desk", notify=[TUNE])
    a_quiet = pep_client(pool, "alice", resource="quiet", notify=[MOOD])
    b = pep_client(pool, "bob", notify=[TUNE])
    c = pep_client(pool, "carol", notify=[MOOD])
    subscribe_both(a, b)
    subscribe_both(a, c)
    for x in (a, a_quiet, b, c):
        x.drain(0.3)
    ok(publish(a, TUNE, tune("Finzi"), item_id="t"))
    for x in (a, b):
        m = x.recv(notification(TUNE))
        assert m.get("type") == "headline" and m.get("to") == x.jid, dump(m)
        it = event_of(m).find(q(PSE, "items")).find(q(PSE, "item"))
        assert it.get("id") == "t" and it.find(q(TUNE, "tune")) is not None, dump(m)
        assert m.find(q(im.NS_DELAY, "delay")) is None, dump(m)  # live: no stamp
    for x in (a_quiet, c):
        x.expect_silence(0.8, notification(TUNE))
    ok(publish(a, MOOD, f"<mood xmlns='{MOOD}'><happy/></mood>", item_id="m"))
    for x in (a_quiet, c):
        x.recv(notification(MOOD))
    for x in (a, b):
        x.expect_silence(0.5, notification(MOOD))


def test_no_notifications_without_subscription(pool):
    """§4.3: a contact without a presence subscription to the account gets nothing from a
    presence-access node, whatever its caps."""
    a = pep_client(pool, "alice", notify=[TUNE])
    c = pep_client(pool, "carol", notify=[TUNE])
    # carol shares her presence with alice (alice is subscribed to carol), not the reverse.
    subscribe(a, c)
    c.drain(0.3)
    ok(publish(a, TUNE, tune("private"), item_id="t"))
    a.recv(notification(TUNE))
    c.expect_silence(0.8, notification(TUNE))


def test_last_item_at_login(pool):
    """§4.3.4: a resource that becomes available with NODE+notify gets the last item, once
    (later presence does not repeat it): the owner's new resource and a contact's."""
    a = pep_client(pool, "alice", notify=[TUNE])
    b = pep_client(pool, "bob", notify=[TUNE])
    subscribe_both(a, b)
    ok(publish(a, TUNE, tune("first"), item_id="1"))
    ok(publish(a, TUNE, tune("last"), item_id="2"))
    b.disconnect()
    a2 = pep_client(pool, "alice", resource="later", notify=[TUNE])
    m = a2.recv(notification(TUNE))
    it = event_of(m).find(q(PSE, "items")).find(q(PSE, "item"))
    assert it.get("id") == "2", dump(m)
    # XEP-0060 §6.1.7: stamped with when it was published (XEP-0203).
    delay = m.find(q(im.NS_DELAY, "delay"))
    assert delay is not None and delay.get("stamp", "").endswith("Z"), dump(m)
    b2 = pep_client(pool, "bob", resource="again", notify=[TUNE])
    m = b2.recv(notification(TUNE))
    assert m.get("to") == b2.jid, dump(m)
    assert event_of(m).find(q(PSE, "items")).find(q(PSE, "item")).get("id") == "2", dump(m)
    b2.xmpp.send_presence(pstatus="still here")
    b2.expect_silence(0.8, notification(TUNE))
    a2.expect_silence(0.1, notification(TUNE))


def pep_client_fresh(pool, user, resource, notify):
    """A pep_client whose caps the server cannot know yet: it must ask (and does)."""
    c = pep_client(pool, user, resource=resource, notify=notify, available=False)
    c.xmpp.send_presence()
    c.recv(match("presence", type="", frm=c.jid))
    c.recv(match("iq", type="get", child=q(NS_DISCO_INFO, "query")), timeout=3.0)
    return c


def test_last_item_when_caps_become_known(pool):
    """§4.3.4 with caps the server had to ask about (XEP-0115 §5.4): the last item follows
    the verified answer, for the owner's new resource and for a contact's."""
    a = pep_client(pool, "alice", notify=[TUNE])
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    ok(publish(a, TUNE, tune("known later"), item_id="k"))
    a2 = pep_client_fresh(pool, "alice", "fresh", [TUNE, "urn:example:only-alice-fresh"])
    m = a2.recv(notification(TUNE))
    assert event_of(m).find(q(PSE, "items")).find(q(PSE, "item")).get("id") == "k", dump(m)
    b2 = pep_client_fresh(pool, "bob", "fresh", [TUNE, "urn:example:only-bob-fresh"])
    m = b2.recv(notification(TUNE))
    assert m.get("to") == b2.jid, dump(m)
    b2.expect_silence(0.5, notification(TUNE))
    b.expect_silence(0.1, notification(TUNE))


def test_last_item_on_subscription_approval(pool):
    """XEP-0060 §6.1.7 with XEP-0163's implicit subscriptions: when the account approves a
    contact's subscription, the contact's known resources that want the node get the last
    item."""
    a = pep_client(pool, "alice", notify=[TUNE])
    b = pep_client(pool, "bob", notify=[TUNE])
    ok(publish(a, TUNE, tune("before"), item_id="x"))
    subscribe(a, b)  # alice sees bob's presence: the server knows bob's resource
    b.drain(0.3)
    b.expect_silence(0.3, notification(TUNE))
    b.presence(type="subscribe", to=A)
    a.recv(match("presence", type="subscribe", frm=B))
    a.presence(type="subscribed", to=B)
    m = b.recv(notification(TUNE))
    assert event_of(m).find(q(PSE, "items")).find(q(PSE, "item")).get("id") == "x", dump(m)


def test_strangers_presence_does_not_crowd_out_contacts(make_im):
    """Only contacts whose presence the account receives (subscription 'to' or 'both') are
    remembered for notifications: anyone may send directed presence to the bare JID, and a
    stranger that did so from thousands of resources must not take the room (4096 resources
    per account) that a contact arriving later needs to hear of the account's events."""
    remote = "remote.example"
    srv = make_im(components=[remote])
    pool = im.IMPool(srv)
    comp = harness.RawComponent(srv.router_port, name="remote").login(
        remote, srv.component_secret(remote))
    try:
        a = pep_client(pool, "alice", notify=[TUNE])
        flood = "".join(f"<presence from='eve@{remote}/r{i}' to='{A}'/>" for i in range(4200))
        comp.send(flood + f"<message from='eve@{remote}/r0' to='{A}' id='end'><body>.</body>"
                          f"</message>")
        a.recv(match("message", id="end"), timeout=20.0)
        b = pep_client(pool, "bob", notify=[TUNE])
        subscribe_both(a, b)
        b.drain(0.3)
        ok(publish(a, TUNE, tune("heard"), item_id="t"))
        m = b.recv(notification(TUNE))
        assert m.get("to") == b.jid, dump(m)
    finally:
        comp.close()
        pool.close()


# ---------------------------------------------------------------------------
# Access models and configuration


def test_access_presence_refuses_non_contacts(pool):
    """XEP-0060 §6.5.7.6: presence access: a contact with a subscription may retrieve, anyone
    else gets <not-authorized/> + <presence-subscription-required/>."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    c = pep_client(pool, "carol")
    subscribe_both(a, b)
    ok(publish(a, TUNE, tune("x"), item_id="1"))
    assert item_ids(ok(items(b, TUNE))) == ["1"]
    res = items(c, TUNE)
    assert pubsub_error(res) == ("not-authorized", "presence-subscription-required"), dump(res)
    assert res.get("from") == A, dump(res)


def test_access_whitelist_open_roster(pool):
    """Whitelist: only the owner (<not-allowed/> + <closed-node/>); open: anyone; roster:
    contacts in the allowed groups (<not-in-roster-group/>), set by the owner's form."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    c = pep_client(pool, "carol")
    subscribe_both(a, b)
    ok(publish(a, "n", "<v xmlns='urn:example:v'/>", item_id="1",
               options={"access_model": "whitelist"}))
    assert pubsub_error(items(b, "n")) == ("not-allowed", "closed-node")
    cfg = form(PS + "#node_config", access_model="open")
    ok(a.iq("set", f"<pubsub xmlns='{PSO}'><configure node='n'>{cfg}</configure></pubsub>"))
    assert item_ids(ok(items(c, "n"))) == ["1"]
    cfg = form(PS + "#node_config", access_model="roster", roster_groups_allowed="Friends")
    ok(a.iq("set", f"<pubsub xmlns='{PSO}'><configure node='n'>{cfg}</configure></pubsub>"))
    assert pubsub_error(items(b, "n")) == ("not-authorized", "not-in-roster-group")
    res = a.roster_set(B, groups=["Friends"])
    assert res.get("type") == "result", dump(res)
    assert item_ids(ok(items(b, "n"))) == ["1"]
    # Only the owner configures.
    res = b.iq("get", f"<pubsub xmlns='{PSO}'><configure node='n'/></pubsub>", to=A)
    assert pubsub_error(res) == ("forbidden", None), dump(res)


def test_configure_with_slixmpp_and_delete(pool):
    """XEP-0060 §8.2 through slixmpp's xep_0060 (get and set the form), §8.5 purge and §8.4
    delete with their notifications to the owner's resources that want the node."""
    a = pep_client(pool, "alice", notify=["cfg"])
    ok(publish(a, "cfg", "<v xmlns='urn:example:v'/>", item_id="1"))
    a.recv(notification("cfg"))
    ps = a.xmpp["xep_0060"]
    got = a.pool.run(ps.get_node_config(A, "cfg"))
    f = got["pubsub_owner"]["configure"]["form"]
    assert f.get_values()["pubsub#max_items"] == "1"
    f.set_type("submit")
    f.field["pubsub#max_items"].set_value("5")
    f.field["pubsub#title"].set_value("Configured")
    a.pool.run(ps.set_node_config(A, "cfg", f))
    ok(publish(a, "cfg", "<v xmlns='urn:example:v'/>", item_id="2"))
    assert item_ids(ok(items(a, "cfg"))) == ["1", "2"]
    a.drain(0.3)
    ok(a.iq("set", f"<pubsub xmlns='{PSO}'><purge node='cfg'/></pubsub>"))
    ev = event_of(a.recv(notification("cfg")))
    assert ev.find(q(PSE, "purge")) is not None, ev
    assert item_ids(ok(items(a, "cfg"))) == []
    ok(a.iq("set", f"<pubsub xmlns='{PSO}'><delete node='cfg'/></pubsub>"))
    ev = event_of(a.recv(notification("cfg")))
    assert ev.find(q(PSE, "delete")) is not None, ev
    assert pubsub_error(items(a, "cfg")) == ("item-not-found", None)


def test_slixmpp_pep_publish_and_items(pool):
    """slixmpp's own xep_0163/xep_0060 calls work against the service."""
    a = pep_client(pool, "alice", notify=[TUNE])
    from slixmpp.xmlstream import ET as SET
    payload = SET.fromstring(tune("via slixmpp"))
    ps = a.xmpp["xep_0060"]
    res = a.pool.run(ps.publish(A, TUNE, id="sx", payload=payload))
    assert res["pubsub"]["publish"]["item"]["id"] == "sx"
    a.recv(notification(TUNE))
    got = a.pool.run(ps.get_items(A, TUNE))
    assert [i["id"] for i in got["pubsub"]["items"]] == ["sx"]


def test_slixmpp_xep0223_private_storage(pool):
    """XEP-0223 through slixmpp's xep_0223 (its own publish-options: persist_items, whitelist):
    stored, read back, private to a contact, and stored again (the options now met)."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    for p in ("xep_0223", "xep_0049", "xep_0048"):
        a.xmpp.register_plugin(p)
    from slixmpp.plugins.xep_0048 import Bookmarks
    bm = Bookmarks()
    bm.add_conference("theplay@conference.shakespeare.lit", "JC", name="The Play")
    a.pool.run(a.xmpp["xep_0223"].store(bm, node="storage:bookmarks", id="current"))
    got = a.pool.run(a.xmpp["xep_0223"].retrieve("storage:bookmarks"))
    its = list(got["pubsub"]["items"])
    assert [i["id"] for i in its] == ["current"]
    assert pubsub_error(items(b, "storage:bookmarks")) == ("not-allowed", "closed-node")
    a.pool.run(a.xmpp["xep_0223"].store(bm, node="storage:bookmarks", id="current"))


# ---------------------------------------------------------------------------
# Persistence and the module switched off


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_persistence_across_restart(make_im, storage):
    """Nodes, their configuration and persistent items survive a restart; items of a node
    with persist_items false do not (kept in memory only), the node itself does."""
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pep_client(pool, "alice")
        ok(publish(a, TUNE, tune("kept"), item_id="k",
                   options={"max_items": "4", "access_model": "open"}))
        ok(publish(a, TUNE, tune("kept too"), item_id="k2"))
        ok(publish(a, "volatile", "<v xmlns='urn:example:v'/>", item_id="v",
                   options={"persist_items": "false"}))
        assert item_ids(ok(items(a, "volatile"))) == ["v"]
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        c = pep_client(pool, "carol")  # open access: no subscription needed
        res = ok(items(c, TUNE))
        assert item_ids(res) == ["k", "k2"], dump(res)
        artist = res.find(q(PS, "pubsub")).find(q(PS, "items"))[1].find(q(TUNE, "tune"))[0]
        assert artist.text == "kept too", dump(res)
        a = pep_client(pool, "alice")
        assert item_ids(ok(items(a, "volatile"))) == []
        res = publish(a, TUNE, tune("x"), options={"max_items": "4", "access_model": "open"})
        ok(res)
    finally:
        pool.close()


def test_module_disabled(make_im):
    """[sm] disable = pep (with bookmarks, which needs it): no pubsub/pep identity or pubsub
    features, and pubsub IQs to the account are service-unavailable."""
    srv = make_im(sm_disable=("pep", "bookmarks"))
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        for to in (A, DOMAIN):
            feats, ids = features(ok(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=to)))
            assert ("pubsub", "pep") not in ids, ids
            assert not any(f.startswith(PS) for f in feats), feats
        res = publish(a, TUNE, tune("x"))
        assert error_of(res)[1] == "service-unavailable", dump(res)
        res = items(a, TUNE)
        assert error_of(res)[1] == "service-unavailable", dump(res)
    finally:
        pool.close()


def test_pep_off_needs_bookmarks_off(make_im):
    """bookmarks is built on pep: switching pep off alone is refused at startup, by name."""
    srv = make_im(start=False, sm_disable=("pep",))
    r = subprocess.run([srv.parleyd, "--config", srv.conf_path, "all"], cwd=srv.workdir,
                       capture_output=True, text=True, timeout=30, env=harness.sanitizer_env())
    assert r.returncode != 0, r.stderr
    assert "module bookmarks needs module pep" in r.stderr, r.stderr
    assert harness.sanitizer_report(r.stderr) is None, r.stderr
