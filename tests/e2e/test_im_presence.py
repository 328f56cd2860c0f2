# SPDX-License-Identifier: MIT
"""Presence subscriptions (RFC 6121 §3) and presence exchange (§4), with two and three clients.

Roster pushes are checked item by item: subscription and ask attributes after each step.
"""

import pytest

from harness import dump
from im import (DOMAIN, NS_CLIENT, expect_push, match, q, roster_items, roster_push,
                subscribe, subscribe_both, xfail_prosody)

pytestmark = pytest.mark.slixmpp

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))


def online(clients, user, resource=None, priority=None):
    """Logged in, roster requested (an interested resource), initial presence sent."""
    c = clients(user, resource=resource)
    c.roster_get()
    c.available(priority=priority)
    return c


def show_of(el):
    s = el.find(q(NS_CLIENT, "show"))
    return None if s is None else s.text


def status_of(el):
    s = el.find(q(NS_CLIENT, "status"))
    return None if s is None else s.text


# ---------------------------------------------------------------------------
# Subscription handshake


def test_subscribe_and_approve(clients):
    """RFC 6121 §3.1: the request, the pushes with ask='subscribe', the approval, presence."""
    a, b = online(clients, "alice"), online(clients, "bob")

    a.presence(type="subscribe", to=B, id="sub-1")
    # §3.1.2: the user's server pushes the item: subscription none, ask subscribe.
    expect_push(a, B, "none", "subscribe")
    # §3.1.3: the contact gets the request, stamped with the user's bare JID.
    req = b.recv(match("presence", type="subscribe"))
    assert req.get("from") == A, dump(req)
    assert req.get("to") in (B, b.jid), dump(req)

    b.presence(type="subscribed", to=A, id="sub-ok")
    # §3.1.5: the contact's server pushes subscription 'from' and sends the contact's presence.
    expect_push(b, A, "from", None)
    ok = a.recv(match("presence", type="subscribed"))
    assert ok.get("from") == B, dump(ok)
    # §3.1.6: the user's roster: subscription 'to', no ask.
    expect_push(a, B, "to", None)
    pres = a.recv(match("presence", type="", frm=b.jid))
    assert pres.get("to") in (a.jid, A), dump(pres)

    # Presence now flows from bob to alice, not from alice to bob.
    b.presence(show="away", status="lunch")
    got = a.recv(match("presence", type="", frm=b.jid))
    assert (show_of(got), status_of(got)) == ("away", "lunch"), dump(got)
    a.presence(show="dnd")
    b.expect_silence(0.7, match("presence", frm=a.jid))

    # The rosters, fetched again, say the same.
    assert roster_items(a.roster_get())[B]["subscription"] == "to"
    assert roster_items(b.roster_get())[A]["subscription"] == "from"


def test_mutual_subscription(clients):
    """Both directions: subscription 'both' on both sides, presence flows both ways."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe(a, b)
    b.presence(type="subscribe", to=A)
    expect_push(b, A, "from", "subscribe")
    a.recv(match("presence", type="subscribe", frm=B))
    a.presence(type="subscribed", to=B)
    expect_push(a, B, "both", None)
    b.recv(match("presence", type="subscribed", frm=A))
    expect_push(b, A, "both", None)
    b.recv(match("presence", type="", frm=a.jid))
    a.presence(status="both ways")
    got = b.recv(match("presence", type="", frm=a.jid))
    assert status_of(got) == "both ways"


@xfail_prosody("does not send unavailable presence from the contact's resources to the user"
               " on an inbound unsubscribe (RFC 6121 §3.3.3)")
def test_unsubscribe(clients):
    """RFC 6121 §3.3: the user unsubscribes: pushes on both sides, unavailable from the
    contact's resources to the user."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe_both(a, b)
    a.presence(type="unsubscribe", to=B)
    expect_push(a, B, "from", None)
    got = b.recv(match("presence", type="unsubscribe"))
    assert got.get("from") == A, dump(got)
    expect_push(b, A, "to", None)
    a.recv(match("presence", type="unavailable", frm=b.jid))
    # Bob's presence no longer reaches alice; alice's still reaches bob.
    b.presence(status="unseen")
    a.expect_silence(0.7, match("presence", frm=b.jid))
    a.presence(status="seen")
    assert status_of(b.recv(match("presence", type="", frm=a.jid))) == "seen"


def test_cancel_subscription(clients):
    """RFC 6121 §3.2: the contact cancels with 'unsubscribed': pushes on both sides,
    unavailable from the contact's resources to the user."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe(a, b)  # alice sees bob
    b.presence(type="unsubscribed", to=A)
    expect_push(b, A, "none", None)
    got = a.recv(match("presence", type="unsubscribed"))
    assert got.get("from") == B, dump(got)
    expect_push(a, B, "none", None)
    a.recv(match("presence", type="unavailable", frm=b.jid))
    b.presence(status="gone for you")
    a.expect_silence(0.7, match("presence", frm=b.jid))


def test_deny_request(clients):
    """RFC 6121 §3.1.4: the contact refuses with 'unsubscribed': the user's ask goes away."""
    a, b = online(clients, "alice"), online(clients, "bob")
    a.presence(type="subscribe", to=B)
    expect_push(a, B, "none", "subscribe")
    b.recv(match("presence", type="subscribe", frm=A))
    b.presence(type="unsubscribed", to=A)
    a.recv(match("presence", type="unsubscribed", frm=B))
    expect_push(a, B, "none", None)
    b.presence(status="private")
    a.expect_silence(0.7, match("presence", frm=b.jid))


@xfail_prosody("0.12 has no subscription pre-approval (optional in RFC 6121 §3.4): the push"
               " has no approved='true'")
def test_preapproval(clients):
    """RFC 6121 §3.4: the contact pre-approves; the later request is approved by the server
    without reaching the contact."""
    a, b = online(clients, "alice"), online(clients, "bob")
    b.presence(type="subscribed", to=A)
    push = expect_push(b, A, "none", None)
    item = push.find(f"{q('jabber:iq:roster', 'query')}/{q('jabber:iq:roster', 'item')}")
    assert item.get("approved") == "true", dump(push)
    a.expect_silence(0.5, match("presence", type="subscribed"))

    a.presence(type="subscribe", to=B)
    a.recv(match("presence", type="subscribed", frm=B))
    a.recv(match("presence", type="", frm=b.jid))
    last = a.recv(roster_push(B))
    while roster_items(last)[B]["subscription"] != "to":
        last = a.recv(roster_push(B))
    assert roster_items(last)[B]["ask"] is None, dump(last)
    expect_push(b, A, "from", None)
    b.expect_silence(0.5, match("presence", type="subscribe"))


def test_pending_request_presented_at_each_login(clients):
    """RFC 6121 §3.1.3: a request for an offline contact is delivered when the contact comes
    online, and again at the next login while it is unanswered."""
    a = online(clients, "alice")
    a.presence(type="subscribe", to=B)
    expect_push(a, B, "none", "subscribe")
    a.pool.settle(0.3)
    for round in range(2):
        b = clients("bob", resource=f"r{round}")
        b.roster_get()
        b.presence()
        got = b.recv(match("presence", type="subscribe"))
        assert got.get("from") == A, dump(got)
        b.disconnect()
    # Answered at last: alice is subscribed.
    b = online(clients, "bob", resource="r2")
    b.drain(settle=0.3)
    b.presence(type="subscribed", to=A)
    expect_push(a, B, "to", None)


def test_subscription_survives_restart(make_im):
    import im
    srv = make_im()
    pool = im.IMPool(srv)
    try:
        a, b = online(pool.client, "alice"), online(pool.client, "bob")
        subscribe_both(a, b)
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        items = roster_items(a.roster_get())
        assert items[B]["subscription"] == "both", items
        b = pool.client("bob", available=True)
        a.available()
        a.recv(match("presence", type="", frm=b.jid))
    finally:
        pool.close()


# ---------------------------------------------------------------------------
# Presence exchange


def test_fanout_to_contacts_and_own_resources(clients):
    """RFC 6121 §4.4.2: an update goes to the contacts and to the user's other resources;
    not to someone without a subscription."""
    a1 = online(clients, "alice", resource="a1")
    b = online(clients, "bob")
    subscribe_both(a1, b)
    a2 = online(clients, "alice", resource="a2")
    c = online(clients, "carol")
    for who in (a1, a2, b, c):
        who.drain(settle=0.1)

    a1.presence(show="dnd", status="in a meeting", priority=3)
    for who in (b, a2):
        got = who.recv(match("presence", type="", frm=a1.jid))
        assert (show_of(got), status_of(got)) == ("dnd", "in a meeting"), dump(got)
        p = got.find(q(NS_CLIENT, "priority"))
        assert p is not None and p.text == "3", dump(got)
    c.expect_silence(0.7, match("presence", frm=a1.jid))


def test_initial_presence_reaches_own_other_resources(clients):
    """RFC 6121 §4.2.2: initial presence goes to the user's other available resources."""
    a1 = online(clients, "alice", resource="a1")
    a2 = clients("alice", resource="a2")
    a2.presence(status="second")
    got = a1.recv(match("presence", type="", frm=a2.jid))
    assert status_of(got) == "second"
    # And a2 learns about a1 (the server probes the user's own resources, §4.2.2).
    a2.recv(match("presence", type="", frm=a1.jid))


def test_probe_on_login_sees_online_contact(clients):
    """RFC 6121 §4.3: at initial presence the server probes the contacts; an online contact's
    presence is delivered to the new session."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe_both(a, b)
    b.presence(show="chat", status="here")
    a.disconnect()
    a2 = clients("alice", resource="again")
    a2.presence()
    got = a2.recv(match("presence", type="", frm=b.jid))
    assert (show_of(got), status_of(got)) == ("chat", "here"), dump(got)
    # And bob sees alice come back.
    b.recv(match("presence", type="", frm=a2.jid))


def test_no_presence_before_initial_presence(clients):
    """RFC 6121 §4.2: a resource that has not sent initial presence gets no broadcasts."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe_both(a, b)
    a2 = clients("alice", resource="quiet")
    b.presence(status="update")
    a.recv(match("presence", type="", frm=b.jid))
    a2.expect_silence(0.7, match("presence", frm=b.jid))


def test_directed_presence_and_unavailable_on_logout(clients):
    """RFC 6121 §4.6: directed presence reaches a non-contact; when the sender goes offline
    the server sends it unavailable presence."""
    a = online(clients, "alice")
    c = online(clients, "carol")
    a.presence(to=c.jid, status="just for you")
    got = c.recv(match("presence", type="", frm=a.jid))
    assert status_of(got) == "just for you" and got.get("to") == c.jid, dump(got)
    a.disconnect()
    got = c.recv(match("presence", type="unavailable", frm=a.jid))
    assert got.get("to") in (c.jid, C), dump(got)


def test_unavailable_on_clean_logout(clients):
    """RFC 6121 §4.5.2: the stream closes without unavailable presence: the server sends it."""
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe_both(a, b)
    bjid = b.jid
    b.disconnect()
    a.recv(match("presence", type="unavailable", frm=bjid))


def test_explicit_unavailable(clients):
    a, b = online(clients, "alice"), online(clients, "bob")
    subscribe_both(a, b)
    b.presence(type="unavailable", status="bye")
    got = a.recv(match("presence", type="unavailable", frm=b.jid))
    assert status_of(got) == "bye", dump(got)


def test_killed_client_contacts_get_unavailable(clients):
    """A client whose TCP connection drops without </stream:stream>: contacts (and the other
    party of a directed presence) learn that it is unavailable."""
    a, b = online(clients, "alice"), online(clients, "bob")
    c = online(clients, "carol")
    subscribe_both(a, b)
    b.presence(to=c.jid)
    c.recv(match("presence", type="", frm=b.jid))
    bjid = b.jid
    b.kill()
    a.recv(match("presence", type="unavailable", frm=bjid), timeout=10)
    c.recv(match("presence", type="unavailable", frm=bjid), timeout=10)
    # The server is still fine: a new session of bob logs in and alice sees it.
    b2 = online(clients, "bob", resource="back")
    a.recv(match("presence", type="", frm=b2.jid))


def test_presence_to_unknown_user_is_ignored(clients):
    """RFC 6121 §8.5.1: presence to a nonexistent local account is silently ignored."""
    a = online(clients, "alice")
    a.presence(to=f"nobody@{DOMAIN}", status="hello?")
    a.presence(type="subscribe", to=f"nobody@{DOMAIN}", id="sub-nobody")
    a.expect_silence(0.7, match("presence", type="error"))
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    assert res.get("type") == "result", dump(res)
