# SPDX-License-Identifier: MIT
"""Roster management (RFC 6121 §2): get, set, remove, names and groups, pushes to every
interested resource, versioning (§2.6, XEP-0237), errors, persistence."""

import pytest

import im
from harness import dump
from im import (DOMAIN, NS_CLIENT, NS_ROSTER, error_of, expect_push, match, q, roster_items,
                roster_push)

pytestmark = pytest.mark.slixmpp

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))


def query_of(el):
    return el.find(q(NS_ROSTER, "query"))


def test_empty_roster(clients):
    a = clients("alice")
    res = a.roster_get()
    assert res.get("type") == "result"
    assert res.get("to") == a.jid, dump(res)
    assert roster_items(res) == {}, dump(res)


def test_set_with_name_and_groups_pushed_to_interested_resources(clients):
    """RFC 6121 §2.3: a set is answered with a result and pushed to every interested resource
    (one that has requested the roster), including the one that made the change."""
    a1, a2 = clients("alice", resource="a1"), clients("alice", resource="a2")
    a1.roster_get()
    a2.roster_get()
    res = a1.roster_set(B, name="Bob \u00e9", groups=["Friends", "Work"])
    assert (res.get("type"), len(res)) == ("result", 0), dump(res)
    for who in (a1, a2):
        expect_push(who, B, "none", None, name="Bob \u00e9", groups=["Friends", "Work"])
    items = roster_items(a2.roster_get())
    assert items == {B: {"subscription": "none", "ask": None, "name": "Bob \u00e9",
                         "groups": ["Friends", "Work"]}}, items


def test_update_item(clients):
    a = clients("alice")
    a.roster_get()
    a.roster_set(C, name="Carol", groups=["A"])
    expect_push(a, C, "none", None, name="Carol", groups=["A"])
    res = a.roster_set(C, name="Caroline", groups=["B", "C"])
    assert res.get("type") == "result", dump(res)
    expect_push(a, C, "none", None, name="Caroline", groups=["B", "C"])
    res = a.roster_set(C)  # no name, no group: both go away
    assert res.get("type") == "result", dump(res)
    expect_push(a, C, "none", None, name=None, groups=[])
    assert roster_items(a.roster_get())[C] == {"subscription": "none", "ask": None,
                                               "name": None, "groups": []}


def test_remove_item(clients):
    """RFC 6121 §2.5: subscription='remove' deletes the item; pushed as 'remove'."""
    a1, a2 = clients("alice", resource="a1"), clients("alice", resource="a2")
    a1.roster_get()
    a2.roster_get()
    a1.roster_set(B, name="Bob")
    for who in (a1, a2):
        expect_push(who, B, "none", None)
    res = a1.roster_remove(B)
    assert res.get("type") == "result", dump(res)
    for who in (a1, a2):
        expect_push(who, B, "remove", None)
    assert roster_items(a1.roster_get()) == {}


def test_remove_unknown_item_is_item_not_found(clients):
    """RFC 6121 §2.5.3: removing an item that is not in the roster -> <item-not-found/>
    (the RFC's example has type 'modify', RFC 6120 §8.3.3.7 'cancel': either)."""
    a = clients("alice")
    res = a.roster_remove(f"nobody@{DOMAIN}")
    assert res.get("type") == "error", dump(res)
    assert error_of(res)[1] == "item-not-found", dump(res)


def test_remove_cancels_subscriptions(clients):
    """RFC 6121 §2.5.2: removing a contact with a subscription sends unsubscribe and
    unsubscribed; the contact's roster follows."""
    a, b = clients("alice"), clients("bob")
    for c in (a, b):
        c.roster_get()
        c.available()
    im.subscribe_both(a, b)
    a.roster_remove(B)
    expect_push(a, B, "remove", None)
    got = {b.recv(match("presence", frm=A, where=lambda el: el.get("type") in
                        ("unsubscribe", "unsubscribed"))).get("type") for _ in range(2)}
    assert got == {"unsubscribe", "unsubscribed"}, got
    last = b.recv(roster_push(A))
    while roster_items(last)[A]["subscription"] != "none":
        last = b.recv(roster_push(A))
    b.recv(match("presence", type="unavailable", frm=a.jid))


def test_set_with_two_items_is_bad_request(clients):
    """RFC 6121 §2.3.3: a roster set must contain exactly one item."""
    a = clients("alice")
    two = (f"<query xmlns='{NS_ROSTER}'><item jid='{B}'/><item jid='{C}'/></query>")
    res = a.iq("set", two)
    assert error_of(res) == ("modify", "bad-request"), dump(res)
    assert roster_items(a.roster_get()) == {}


def test_push_not_sent_before_roster_requested(clients):
    """RFC 6121 §2.1.6: pushes go to interested resources; one that never asked for the roster
    is not interested."""
    a1, a2 = clients("alice", resource="a1"), clients("alice", resource="a2")
    a1.roster_get()
    a1.roster_set(B, name="Bob")
    expect_push(a1, B, "none", None)
    a2.expect_silence(0.7, roster_push())


def test_roster_get_to_other_user_is_refused(clients):
    """A client cannot read another user's roster (RFC 6121 §2.1.3: the roster of the user
    the stream is for): forbidden, or service-unavailable as for any iq to a bare JID."""
    a = clients("alice")
    b = clients("bob")
    b.roster_get()
    b.roster_set(C, name="secret")
    res = a.iq("get", f"<query xmlns='{NS_ROSTER}'/>", to=B)
    assert res.get("type") == "error", dump(res)
    assert error_of(res)[1] in ("forbidden", "service-unavailable", "not-allowed"), dump(res)
    assert query_of(res) is None or C not in roster_items(res), dump(res)


# ---------------------------------------------------------------------------
# Versioning (RFC 6121 §2.6, XEP-0237)


@im.xfail_prosody("gives the empty roster ver='1' and the roster after the first change"
                  " ver='1' too; a changed roster needs a new version (RFC 6121 §2.6.1)")
def test_versioning(clients):
    """ver in every answer; an unchanged roster -> an empty result; pushes carry the new ver;
    an old ver after a change -> the roster (or pushes) again."""
    a = clients("alice")
    full = a.roster_get(ver="")
    v0 = query_of(full).get("ver")
    assert v0 is not None, dump(full)
    a.roster_set(B, name="Bob")
    push = a.recv(roster_push(B))
    v1 = query_of(push).get("ver")
    assert v1 and v1 != v0, dump(push)

    same = a.roster_get(ver=v1)
    assert same.get("type") == "result" and len(same) == 0, \
        f"unchanged roster: expected an empty result, got {dump(same)}"

    old = a.roster_get(ver=v0)
    query = query_of(old)
    if query is not None:
        assert query.get("ver") == v1, dump(old)
        assert B in roster_items(old), dump(old)
    else:
        # §2.6.3: or an empty result followed by pushes for the changes.
        push = a.recv(roster_push(B))
        assert query_of(push).get("ver") == v1, dump(push)


def test_version_feature_advertised(raw_client, im_server):
    """RFC 6121 §2.6.1: a server that supports versioning says so in the stream features."""
    c = raw_client()
    c.open()
    c.starttls()
    c.auth_plain("alice", im_server.users["alice"])
    features = c.open()
    assert features.find(q("urn:xmpp:features:rosterver", "ver")) is not None, dump(features)


# ---------------------------------------------------------------------------
# Persistence


@pytest.mark.parametrize("storage", [
    "sqlite", pytest.param("files", marks=im.skip_prosody("Parley's storage backends"))])
def test_roster_survives_restart(make_im, storage):
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        a.roster_get()
        a.roster_set(B, name="Bob", groups=["G1"])
        expect_push(a, B, "none", None)
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        assert roster_items(a.roster_get())[B] == {"subscription": "none", "ask": None,
                                                   "name": "Bob", "groups": ["G1"]}
    finally:
        pool.close()


def test_roster_push_from_is_own_bare_or_absent(clients):
    """A client must ignore pushes from anyone else (RFC 6121 §2.1.6), so the server's pushes
    carry no from or the user's bare JID; checked on the raw element."""
    a = clients("alice")
    a.roster_get()
    a.roster_set(B)
    el = a.recv(roster_push(B))
    assert el.get("from") in (None, A), dump(el)
    assert el.tag == q(NS_CLIENT, "iq") and el.get("to") in (a.jid, None), dump(el)
