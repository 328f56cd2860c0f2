# SPDX-License-Identifier: MIT
"""Message delivery (RFC 6121 §8.5): full and bare JIDs, priorities, message types, offline
storage with XEP-0203 stamps (XEP-0160), its per-user limit, and restarts."""

import datetime
import time

import pytest

import im
from harness import dump
from im import DOMAIN, NS_DELAY, body_of, error_of, match, q, skip_prosody

pytestmark = pytest.mark.slixmpp

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
TYPES = ("chat", "normal", "headline", "groupchat")


def msg(id):
    return match("message", id=id)


def delay_of(el):
    return el.find(q(NS_DELAY, "delay"))


def parse_stamp(text):
    """XEP-0082 DateTime in UTC: 2024-01-02T03:04:05Z or with fractions; returns a datetime."""
    assert text.endswith("Z"), f"stamp not in UTC: {text}"
    base = text[:-1].split(".")[0]
    return datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)


# ---------------------------------------------------------------------------
# Full and bare JIDs


@pytest.mark.parametrize("mtype", ["chat", "normal", "headline", "groupchat", None])
def test_full_jid_any_type(clients, mtype):
    """RFC 6121 §8.5.3.1: to a connected full JID, every type is delivered, as sent."""
    a = clients("alice", available=True)
    b = clients("bob", resource="desk", available=True)
    a.message(b.jid, "to the desk \u00e9 <&>", type=mtype, id="full-1",
              inner="<x xmlns='urn:example:e2e'>kept</x>")
    got = b.recv(msg("full-1"))
    assert got.get("from") == a.jid and got.get("to") == b.jid, dump(got)
    assert (got.get("type") or None) == mtype, dump(got)
    assert body_of(got) == "to the desk \u00e9 <&>"
    x = got.find(q("urn:example:e2e", "x"))
    assert x is not None and x.text == "kept", dump(got)


def test_bare_jid_one_resource(clients):
    """RFC 6121 §8.5.2.1.1: one available resource -> it gets the message; 'to' unchanged."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    a.message(B, "bare", id="bare-1")
    got = b.recv(msg("bare-1"))
    assert got.get("to") == B, f"the server must not rewrite 'to': {dump(got)}"
    assert got.get("from") == a.jid


@pytest.mark.parametrize("mtype", ["chat", "normal"])
def test_bare_jid_highest_priority_wins(clients, mtype):
    """RFC 6121 §8.5.2.1.1 (a): the 'most available' resource, here the highest priority."""
    a = clients("alice", available=True)
    hi = clients("bob", resource="hi", available=True, priority=5)
    lo = clients("bob", resource="lo", available=True, priority=1)
    a.message(B, "to the best", type=mtype, id="prio-1")
    assert hi.recv(msg("prio-1")).get("to") == B
    lo.expect_silence(0.7, msg("prio-1"))


def test_bare_jid_tie_goes_to_all(clients):
    a = clients("alice", available=True)
    b1 = clients("bob", resource="one", available=True, priority=2)
    b2 = clients("bob", resource="two", available=True, priority=2)
    b3 = clients("bob", resource="three", available=True, priority=0)
    a.message(B, "to both", id="tie-1")
    for b in (b1, b2):
        assert b.recv(msg("tie-1")).get("to") == B
    b3.expect_silence(0.7, msg("tie-1"))


def test_negative_priority_never_gets_bare_messages(clients):
    """RFC 6121 §8.5.2.1.1: never to a resource with negative priority; with only those, the
    message is handled as for no available resource (here: kept offline)."""
    a = clients("alice", available=True)
    neg = clients("bob", resource="neg", available=True, priority=-1)
    a.message(B, "not for negatives", type="chat", id="neg-1")
    neg.expect_silence(1.0, msg("neg-1"))
    # A full-JID message still reaches it (§8.5.3.1).
    a.message(neg.jid, "direct", id="neg-2")
    assert neg.recv(msg("neg-2")).get("to") == neg.jid
    # The first one waited offline: it comes with the next non-negative presence.
    pos = clients("bob", resource="pos")
    pos.presence(priority=0)
    got = pos.recv(msg("neg-1"))
    assert delay_of(got) is not None, dump(got)
    neg.expect_silence(0.3, msg("neg-1"))


def test_headline_to_bare_goes_to_all_non_negative(clients):
    """RFC 6121 §8.5.2.1.1: headline -> every resource with non-negative priority."""
    a = clients("alice", available=True)
    b1 = clients("bob", resource="one", available=True, priority=5)
    b2 = clients("bob", resource="two", available=True, priority=0)
    neg = clients("bob", resource="neg", available=True, priority=-3)
    a.message(B, "news", type="headline", id="head-1")
    for b in (b1, b2):
        assert b.recv(msg("head-1")).get("type") == "headline"
    neg.expect_silence(0.7, msg("head-1"))


def test_groupchat_to_bare_is_refused(clients):
    """RFC 6121 §8.5.2.1.1: groupchat to a bare JID is not delivered; the sender gets an
    error (service-unavailable)."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    a.message(B, "not a room", type="groupchat", id="gc-1")
    err = a.recv(match("message", type="error", id="gc-1"))
    assert error_of(err)[1] == "service-unavailable", dump(err)
    assert err.get("from") == B, dump(err)
    b.expect_silence(0.5, msg("gc-1"))


def test_error_message_to_bare_is_dropped(clients):
    """RFC 6121 §8.5.2.1.1: a message of type error to a bare JID is silently ignored."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    a.message(B, None, type="error", id="err-1",
              inner="<error type='cancel'><item-not-found "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
    b.expect_silence(0.7, msg("err-1"))
    a.expect_silence(0.1, msg("err-1"))


def test_error_message_to_full_jid_is_delivered(clients):
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    a.message(b.jid, None, type="error", id="err-2",
              inner="<error type='cancel'><item-not-found "
                    "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")
    got = b.recv(msg("err-2"))
    assert got.get("type") == "error" and error_of(got)[1] == "item-not-found", dump(got)


def test_three_way_conversation(clients):
    """Three users each send to the other two, by bare and by full JID; everything arrives
    once, with the sender's full JID."""
    users = {u: clients(u, available=True) for u in ("alice", "bob", "carol")}
    for s in users.values():
        for r in users.values():
            if r is not s:
                s.message(r.bare, f"{s.user}->{r.user} bare", id=f"{s.user}-{r.user}-b")
                s.message(r.jid, f"{s.user}->{r.user} full", id=f"{s.user}-{r.user}-f")
    for r in users.values():
        for s in users.values():
            if r is s:
                continue
            for kind in ("b", "f"):
                got = r.recv(msg(f"{s.user}-{r.user}-{kind}"))
                assert got.get("from") == s.jid, dump(got)
        r.expect_silence(0.2, match("message"))


def test_full_jid_of_offline_resource_chat(clients):
    """RFC 6121 §8.5.3.2.1: chat to a full JID whose resource is gone is handled as if sent
    to the bare JID: delivered to the available resource."""
    a = clients("alice", available=True)
    b = clients("bob", resource="here", available=True)
    a.message(f"{B}/gone", "chat to gone", type="chat", id="gone-chat")
    got = b.recv(msg("gone-chat"))
    assert got.get("to") in (f"{B}/gone", B), dump(got)


@pytest.mark.parametrize("mtype", [
    pytest.param("normal", marks=im.xfail_prosody(
        "delivers a normal message for a vanished full JID to another resource"
        " (RFC 6121 §8.5.3.2.1: ignore, or service-unavailable)")),
    "headline"])
def test_full_jid_of_offline_resource_not_chat(clients, mtype):
    """RFC 6121 §8.5.3.2.1: normal/headline to a full JID whose resource is gone are ignored
    or answered with service-unavailable, never delivered to another resource."""
    a = clients("alice", available=True)
    b = clients("bob", resource="here", available=True)
    a.message(f"{B}/gone", "x", type=mtype, id=f"gone-{mtype}")
    b.expect_silence(0.7, msg(f"gone-{mtype}"))
    for e in [e for e in a.pending if e.get("id") == f"gone-{mtype}"]:
        assert e.get("type") == "error" and error_of(e)[1] == "service-unavailable", dump(e)


# ---------------------------------------------------------------------------
# Unknown users


def test_message_to_unknown_user(clients):
    """RFC 6121 §8.5.1: to a nonexistent local account: ignored or service-unavailable;
    nothing else happens and the server goes on."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    for to in (f"nobody@{DOMAIN}", f"nobody@{DOMAIN}/res"):
        a.message(to, "anyone?", id="nobody-1")
        a.pool.settle(0.3)
        for e in [e for e in a.pending if e.get("id") == "nobody-1"]:
            assert e.get("type") == "error" and error_of(e)[1] == "service-unavailable", dump(e)
        a.drain()
    b.expect_silence(0.2, match("message"))
    a.message(B, "still works", id="after-nobody")
    assert b.recv(msg("after-nobody")).get("from") == a.jid


# ---------------------------------------------------------------------------
# Offline storage (XEP-0160) with delay stamps (XEP-0203)


@pytest.mark.parametrize("mtype", ["chat", "normal"])
def test_offline_delivered_with_delay(clients, mtype):
    a = clients("alice", available=True)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    a.message(B, f"while you were out ({mtype})", type=mtype, id="off-1")
    a.message(B, "second", type=mtype, id="off-2")
    a.expect_silence(0.5, match("message", type="error"))
    time.sleep(1.1)
    b = clients("bob")
    b.expect_silence(0.3, match("message"))  # not before initial presence
    b.presence()
    got1, got2 = b.recv(msg("off-1")), b.recv(msg("off-2"))
    for got in (got1, got2):
        assert got.get("from") == a.jid and got.get("to") == B, dump(got)
        assert (got.get("type") or "normal") == mtype, dump(got)
        d = delay_of(got)
        assert d is not None, f"no XEP-0203 delay: {dump(got)}"
        assert d.get("from") == DOMAIN, dump(got)
        stamp = parse_stamp(d.get("stamp"))
        now = datetime.datetime.now(datetime.timezone.utc)
        assert before - datetime.timedelta(seconds=1) <= stamp <= now, (stamp, before, now)
        assert (now - stamp).total_seconds() >= 1.0, "stamped at delivery, not at storage"
    assert body_of(got1) == f"while you were out ({mtype})" and body_of(got2) == "second"
    # Only once: a second session gets nothing more.
    b2 = clients("bob", resource="later")
    b2.presence()
    b2.expect_silence(0.7, match("message"))


def test_offline_order_kept(clients):
    a = clients("alice", available=True)
    for i in range(5):
        a.message(B, f"n{i}", id=f"ord-{i}")
    a.pool.settle(0.3)
    b = clients("bob")
    b.presence()
    got = [b.recv(match("message")) for _ in range(5)]
    assert [g.get("id") for g in got] == [f"ord-{i}" for i in range(5)], [dump(g) for g in got]


def test_offline_headline_and_groupchat_not_kept(clients):
    """RFC 6121 §8.5.2.2.1: headline (and error) to a user without available resources is
    ignored; groupchat gets service-unavailable. Neither is kept for later."""
    a = clients("alice", available=True)
    a.message(B, "news", type="headline", id="off-head")
    a.message(B, "room?", type="groupchat", id="off-gc")
    err = a.recv(match("message", type="error", id="off-gc"))
    assert error_of(err)[1] == "service-unavailable", dump(err)
    a.expect_silence(0.3, match("message", id="off-head"))
    b = clients("bob")
    b.presence()
    b.expect_silence(1.0, match("message"))


@pytest.mark.parametrize("storage", [
    "sqlite", pytest.param("files", marks=skip_prosody("Parley's storage backends"))])
def test_offline_survives_restart(make_im, storage):
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        a.message(B, "kept across a restart", id="restart-1")
        a.expect_silence(0.5, match("message", type="error"))
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        b = pool.client("bob")
        b.presence()
        got = b.recv(msg("restart-1"))
        assert body_of(got) == "kept across a restart" and delay_of(got) is not None, dump(got)
        assert got.get("from", "").startswith(A + "/"), dump(got)
    finally:
        pool.close()


@skip_prosody("mod_offline has no per-user limit")
def test_offline_limit(make_im):
    """XEP-0160: when the user's offline queue is full, the sender gets service-unavailable;
    the first messages are kept."""
    srv = make_im(offline_max=3)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        for i in range(5):
            a.message(B, f"q{i}", id=f"lim-{i}")
        for i in (3, 4):
            err = a.recv(match("message", type="error", id=f"lim-{i}"))
            assert error_of(err)[1] == "service-unavailable", dump(err)
        a.expect_silence(0.3, match("message", type="error", id="lim-0"))
        b = pool.client("bob")
        b.presence()
        got = [b.recv(match("message")) for _ in range(3)]
        assert [g.get("id") for g in got] == ["lim-0", "lim-1", "lim-2"]
        b.expect_silence(0.5, match("message"))
        # Emptied by the delivery: room again.
        b.disconnect()
        a.message(B, "again", id="lim-again")
        a.expect_silence(0.5, match("message", type="error"))
    finally:
        pool.close()
