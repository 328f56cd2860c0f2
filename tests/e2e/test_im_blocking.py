# SPDX-License-Identifier: MIT
"""Blocking Command (XEP-0191): the list, block and unblock with pushes to the resources that
asked for it, JID matching (§5), what a blocked entity gets (presence, messages, IQs), what
the user may not send it, offline users, persistence across restarts, the module off."""

import pytest

import im
from harness import dump, local
from im import DOMAIN, NS_DISCO_INFO, error_of, match, q, skip_prosody, subscribe_both

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's sm modules")]

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
NS_BLOCKING = "urn:xmpp:blocking"
NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors"
NS_VERSION = "jabber:iq:version"


def items_xml(jids):
    return "".join(f"<item jid='{j}'/>" for j in jids)


def block(c, *jids, to=None):
    return c.iq("set", f"<block xmlns='{NS_BLOCKING}'>{items_xml(jids)}</block>", to=to)


def unblock(c, *jids):
    return c.iq("set", f"<unblock xmlns='{NS_BLOCKING}'>{items_xml(jids)}</unblock>")


def blocklist(c):
    """The list (raw iq get), as a list of JIDs in the order the server gave."""
    res = c.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")
    assert res.get("type") == "result", dump(res)
    bl = res.find(q(NS_BLOCKING, "blocklist"))
    assert bl is not None and len(res) == 1, dump(res)
    return [it.get("jid") for it in bl.findall(q(NS_BLOCKING, "item"))]


def ok(res):
    assert res.get("type") == "result" and len(res) == 0, dump(res)


def push_pred(cmd):
    return match("iq", type="set", child=q(NS_BLOCKING, cmd))


def expect_push(c, cmd, jids):
    """A block/unblock push (§3.3-§3.5) with exactly these items, to this resource."""
    el = c.recv(push_pred(cmd))
    assert el.get("to") == c.jid, dump(el)
    assert el.get("from") in (None, c.bare), dump(el)
    assert el.get("id"), dump(el)
    body = el.find(q(NS_BLOCKING, cmd))
    assert len(el) == 1, dump(el)
    assert sorted(it.get("jid") for it in body.findall(q(NS_BLOCKING, "item"))) == \
        sorted(jids), dump(el)
    assert all(local(x.tag) == "item" for x in body), dump(el)
    return el


def online(clients, user, resource=None, want_list=True):
    c = clients(user, resource=resource)
    c.roster_get()
    if want_list:
        blocklist(c)
    c.available()
    return c


def blocked_error(el):
    """Checks §3.3's error for an outbound stanza: not-acceptable + <blocked/>, type cancel."""
    assert el.get("type") == "error", dump(el)
    assert error_of(el) == ("cancel", "not-acceptable"), dump(el)
    err = el.find(q(im.NS_CLIENT, "error"))
    assert err.find(q(NS_BLOCKING_ERRORS, "blocked")) is not None, dump(el)


# ---------------------------------------------------------------------------
# Discovery and the list


def test_disco_feature(clients):
    """§2: the server announces urn:xmpp:blocking."""
    a = clients("alice")
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
    feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
             .findall(q(NS_DISCO_INFO, "feature"))}
    assert NS_BLOCKING in feats, feats


def test_list_block_unblock_with_pushes(clients):
    """§3.2-§3.5 with slixmpp's xep_0191 and raw: pushes go to the resources that asked for
    the list (the one that made the change included), not to the one that did not."""
    a1 = clients("alice", resource="one")
    a2 = clients("alice", resource="two")
    a3 = clients("alice", resource="three")
    a1.xmpp.register_plugin("xep_0191")
    got = a1.pool.run(a1.xmpp["xep_0191"].get_blocked(), 5.0)
    assert set(got["blocklist"]["items"]) == set(), got
    assert blocklist(a2) == []
    # Several items at once, in unprepared forms: the server prepares them.
    res = a1.pool.run(a1.xmpp["xep_0191"].block(
        ["BOB@LocalHost", "carol@localhost/Phone", "example.org", "example.net/bot"]), 5.0)
    assert res["type"] == "result"
    want = [B, "carol@localhost/Phone", "example.org", "example.net/bot"]
    for c in (a1, a2):
        expect_push(c, "block", want)
    a3.expect_silence(0.5, push_pred("block"))
    assert sorted(blocklist(a3)) == sorted(want)
    # Blocking again what is there: no error, the list unchanged.
    ok(block(a2, B))
    for c in (a1, a2, a3):  # a3 asked for the list meanwhile
        expect_push(c, "block", [B])
    assert sorted(blocklist(a1)) == sorted(want)
    # Unblock one item.
    ok(unblock(a2, "example.org"))
    for c in (a1, a2, a3):
        expect_push(c, "unblock", ["example.org"])
    assert sorted(blocklist(a1)) == sorted(set(want) - {"example.org"})
    # Unblock all: an empty <unblock/> in the push (§3.5).
    ok(unblock(a3))
    for c in (a1, a2, a3):
        expect_push(c, "unblock", [])
    assert blocklist(a1) == []


def test_command_to_own_bare_jid(clients):
    """The commands are the user's server's: to the user's bare JID as without 'to'."""
    a = clients("alice")
    ok(block(a, B, to=A))
    assert blocklist(a) == [B]


def test_command_errors(clients):
    """§3.3: a block without items is bad-request; a malformed JID jid-malformed; an item
    without jid bad-request; nothing is changed by a refused command."""
    a = clients("alice")
    res = a.iq("set", f"<block xmlns='{NS_BLOCKING}'/>")
    assert error_of(res)[1] == "bad-request", dump(res)
    res = a.iq("set", f"<block xmlns='{NS_BLOCKING}'><item/></block>")
    assert error_of(res)[1] == "bad-request", dump(res)
    res = a.iq("set", f"<block xmlns='{NS_BLOCKING}'>{items_xml([B])}<item jid='a@b@c'/>"
                      "</block>")
    assert error_of(res)[1] == "jid-malformed", dump(res)
    res = a.iq("set", f"<unblock xmlns='{NS_BLOCKING}'><item jid='@x'/></unblock>")
    assert error_of(res)[1] == "jid-malformed", dump(res)
    res = a.iq("get", f"<block xmlns='{NS_BLOCKING}'>{items_xml([B])}</block>")
    assert error_of(res)[1] == "bad-request", dump(res)
    res = a.iq("set", f"<blocklist xmlns='{NS_BLOCKING}'/>")
    assert error_of(res)[1] == "bad-request", dump(res)
    assert blocklist(a) == []
    # Another user's list is not ours to see.
    res = a.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>", to=B)
    assert error_of(res)[1] == "service-unavailable", dump(res)


def test_list_limit(clients):
    """The list holds at most 1000 items: one more is policy-violation, and nothing of
    that command is added."""
    a = clients("alice")
    for start in range(0, 1000, 250):
        ok(block(a, *(f"u{i}@spam.example" for i in range(start, start + 250))))
    assert len(blocklist(a)) == 1000
    res = block(a, "u0@spam.example", "one-more@spam.example")
    assert error_of(res)[1] == "policy-violation", dump(res)
    ok(block(a, "u1@spam.example"))  # already there: nothing is added
    bl = blocklist(a)
    assert len(bl) == 1000 and "one-more@spam.example" not in bl


# ---------------------------------------------------------------------------
# Presence


def test_block_sends_unavailable_then_no_presence(clients):
    """§3.3: a contact that may see the user's presence gets unavailable from each available
    resource, then nothing more; its presence no longer reaches the user (dropped, no
    error). §3.4: unblocking sends the current presence again."""
    a1 = online(clients, "alice", "one")
    b = online(clients, "bob")
    subscribe_both(a1, b)
    a2 = online(clients, "alice", "two")
    a2.presence(status="on two")
    b.recv(match("presence", type="", frm=a2.jid))
    a1.drain(settle=0.2)
    a2.drain()
    b.drain()

    ok(block(a1, B))
    for a in (a1, a2):
        got = b.recv(match("presence", type="unavailable", frm=a.jid))
        assert got.get("to") in (B, b.jid), dump(got)
    a1.presence(status="unseen")
    a2.presence(status="unseen too")
    b.expect_silence(0.7, match("presence", frm=f"{A}/*"))
    b.presence(status="blocked bob")
    for a in (a1, a2):
        a.expect_silence(0.3, match("presence", frm=b.jid))
    b.expect_silence(0.2, match("presence", type="error"))
    # A probe of bob's (on a new session's initial presence) learns nothing either.
    b2 = online(clients, "bob", "two")
    b2.expect_silence(0.5, match("presence", frm=f"{A}/*"))

    ok(unblock(a1, B))
    seen = {}
    for _ in range(2):
        got = b.recv(match("presence", frm=f"{A}/*"))
        seen[got.get("from")] = got
    assert set(seen) == {a1.jid, a2.jid}, seen
    assert seen[a1.jid].get("type") is None and seen[a2.jid].get("type") is None
    assert seen[a1.jid].findtext(q(im.NS_CLIENT, "status")) == "unseen"
    assert seen[a2.jid].findtext(q(im.NS_CLIENT, "status")) == "unseen too"
    b.presence(status="seen again")
    got = a1.recv(match("presence", frm=b.jid))
    assert got.findtext(q(im.NS_CLIENT, "status")) == "seen again", dump(got)


def test_block_ends_directed_presence(clients):
    """RFC 6121 §4.6 directed presence: a blocked recipient gets unavailable too."""
    a = online(clients, "alice")
    c = online(clients, "carol")
    a.presence(to=c.jid, status="just for you")
    c.recv(match("presence", type="", frm=a.jid))
    ok(block(a, C))
    got = c.recv(match("presence", type="unavailable", frm=a.jid))
    assert got.get("to") == c.jid, dump(got)


def test_subscription_request_from_blocked_is_dropped(clients):
    a = online(clients, "alice")
    b = online(clients, "bob")
    ok(block(a, B))
    b.presence(type="subscribe", to=A)
    a.expect_silence(0.7, match("presence", where=lambda el: el.get("from", "").startswith(B)))
    b.expect_silence(0.1, match("presence", type="error"))
    ok(unblock(a, B))
    # Nothing was kept for later either.
    a2 = online(clients, "alice", "later")
    a2.expect_silence(0.5, match("presence", type="subscribe"))


def test_pending_request_forgotten_when_blocked(clients):
    """A request waiting from before the block is not presented again at the next login."""
    a = online(clients, "alice")
    b = online(clients, "bob")
    b.presence(type="subscribe", to=A)
    a.recv(match("presence", type="subscribe", frm=B))
    ok(block(a, B))
    a2 = online(clients, "alice", "later")
    a2.expect_silence(0.7, match("presence", type="subscribe"))
    ok(unblock(a, B))
    a3 = online(clients, "alice", "later2")
    a3.expect_silence(0.5, match("presence", type="subscribe"))


# ---------------------------------------------------------------------------
# Messages and IQs


def test_inbound_message_and_iq_from_blocked(clients):
    """§3.3: a message from a blocked JID is answered service-unavailable and not delivered;
    an iq get/set too; an iq result or error, and a message error, are dropped silently."""
    a = online(clients, "alice")
    b = online(clients, "bob")
    ok(block(a, B))
    for to in (A, a.jid):
        b.message(to, "hello?", id=f"m-{to}")
        err = b.recv(match("message", type="error", id=f"m-{to}"))
        assert error_of(err) == ("cancel", "service-unavailable"), dump(err)
        assert err.get("from") == to, dump(err)
    b.send_raw(f"<iq type='get' id='v1' to='{a.jid}'><query xmlns='{NS_VERSION}'/></iq>")
    err = b.recv(match("iq", id="v1"))
    assert err.get("type") == "error" and error_of(err)[1] == "service-unavailable", dump(err)
    b.send_raw(f"<iq type='result' id='r1' to='{a.jid}'/>")
    b.message(a.jid, None, type="error", id="e1",
              inner="<error type='cancel'><item-not-found "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
    b.expect_silence(0.5, match(where=lambda el: el.get("id") in ("r1", "e1")))
    a.expect_silence(0.2, match(where=lambda el: el.get("from", "").startswith(B)))
    # Carol is not blocked.
    c = online(clients, "carol")
    c.message(a.jid, "hi", id="c1")
    assert a.recv(match("message", id="c1")).get("from") == c.jid


def test_outbound_to_blocked_is_refused(clients):
    """§3.3: the user's stanzas to a blocked JID are not routed; not-acceptable with
    <blocked xmlns='urn:xmpp:blocking:errors'/>, the original kept (XEP's example)."""
    a = online(clients, "alice")
    b = online(clients, "bob")
    ok(block(a, B))
    a.message(B, "Can you hear me now?", id="out-1", inner="<x xmlns='urn:example:e'/>")
    err = a.recv(match("message", id="out-1"))
    blocked_error(err)
    assert err.get("from") == B and err.get("to") == a.jid, dump(err)
    assert err.findtext(q(im.NS_CLIENT, "body")) == "Can you hear me now?", dump(err)
    a.message(b.jid, "full", id="out-2")
    blocked_error(a.recv(match("message", id="out-2")))
    res = a.iq("get", f"<query xmlns='{NS_VERSION}'/>", to=b.jid)
    blocked_error(res)
    a.presence(to=b.jid, id="out-3")
    blocked_error(a.recv(match("presence", id="out-3")))
    b.expect_silence(0.5, match(frm=f"{A}/*"))


def test_jid_matching(clients):
    """§5: a full-JID item blocks that resource only; a domain item everyone at it, but not
    the user's own resources or the user's server."""
    a = online(clients, "alice")
    c1 = online(clients, "carol", "phone")
    c2 = online(clients, "carol", "desk")
    ok(block(a, f"{C}/phone"))
    c1.message(a.jid, "from the phone", id="p1")
    assert error_of(c1.recv(match("message", type="error", id="p1")))[1] == \
        "service-unavailable"
    c2.message(a.jid, "from the desk", id="d1")
    assert a.recv(match("message", id="d1")).get("from") == c2.jid
    a.message(c1.jid, "to the phone", id="p2")
    blocked_error(a.recv(match("message", id="p2")))
    a.message(c2.jid, "to the desk", id="d2")
    c2.recv(match("message", id="d2"))

    ok(block(a, DOMAIN))
    c2.message(a.jid, "blocked by domain", id="d3")
    assert error_of(c2.recv(match("message", type="error", id="d3")))[1] == \
        "service-unavailable"
    a.message(c2.jid, "to the desk", id="d4")
    blocked_error(a.recv(match("message", id="d4")))
    # The user's server still answers, and one resource still reaches another.
    res = a.iq("get", f"<ping xmlns='{im.NS_PING}'/>", to=DOMAIN)
    assert res.get("type") == "result", dump(res)
    a2 = online(clients, "alice", "second")
    a2.message(a.jid, "self", id="self-1")
    assert a.recv(match("message", id="self-1")).get("from") == a2.jid


# ---------------------------------------------------------------------------
# Offline users, persistence


def test_blocked_sender_not_stored_offline(clients):
    a = online(clients, "alice")
    ok(block(a, B))
    a.disconnect()
    b = online(clients, "bob")
    c = online(clients, "carol")
    b.message(A, "while you are out", id="off-b")
    err = b.recv(match("message", type="error", id="off-b"))
    assert error_of(err)[1] == "service-unavailable", dump(err)
    c.message(A, "kept for you", id="off-c")
    c.expect_silence(0.5, match("message", type="error"))
    a2 = clients("alice", resource="back")
    a2.presence()
    assert a2.recv(match("message", id="off-c")).get("from") == c.jid
    a2.expect_silence(0.7, match("message", id="off-b"))


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_list_survives_restart(make_im, storage):
    """The list is stored: after a restart it is there, and applies to a user who is not
    logged in (it is loaded with the user)."""
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        ok(block(a, B, "example.org/x", "spam.example"))
        ok(block(a, C))
        ok(unblock(a, C))
        assert sorted(blocklist(a)) == sorted([B, "example.org/x", "spam.example"])
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        b = pool.client("bob", available=True)
        b.message(A, "after the restart", id="r1")
        err = b.recv(match("message", type="error", id="r1"))
        assert error_of(err)[1] == "service-unavailable", dump(err)
        a = pool.client("alice")
        assert sorted(blocklist(a)) == sorted([B, "example.org/x", "spam.example"])
        ok(unblock(a))
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        assert blocklist(a) == []
    finally:
        pool.close()


def test_module_disabled(make_im):
    """[sm] disable = blocking: no feature, the commands are service-unavailable, nothing
    is blocked."""
    srv = make_im(sm_disable=["blocking"])
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
        feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
                 .findall(q(NS_DISCO_INFO, "feature"))}
        assert NS_BLOCKING not in feats, feats
        res = a.iq("get", f"<blocklist xmlns='{NS_BLOCKING}'/>")
        assert error_of(res) == ("cancel", "service-unavailable"), dump(res)
        res = block(a, B)
        assert error_of(res) == ("cancel", "service-unavailable"), dump(res)
        b.message(a.jid, "not blocked", id="nb")
        a.recv(match("message", id="nb"))
    finally:
        pool.close()
