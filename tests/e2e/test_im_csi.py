# SPDX-License-Identifier: MIT
"""Client state indication (XEP-0352) at c2s: what an inactive client's stream holds
(presence coalesced per sender, chat states in order), what flushes it (<active/>, an
urgent stanza, the csi_max_held bound), and what stream management does with it."""

import pytest

import im
from harness import dump
from im import DOMAIN, NS_CLIENT, body_of, match, q, subscribe
from test_im_smgmt import online, reconnect, sm_client

pytestmark = pytest.mark.slixmpp

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
NS_CHATSTATES = "http://jabber.org/protocol/chatstates"


@pytest.fixture
def make_pool(make_im):
    pools = []

    def make(**c2s_extra):
        pool = im.IMPool(make_im(c2s_extra=c2s_extra))
        pools.append(pool)
        return pool

    yield make
    for p in pools:
        p.close()


def status_of(el):
    s = el.find(q(NS_CLIENT, "status"))
    return None if s is None else s.text


def csi_client(pool, user, sm=False):
    c = sm_client(pool, user, plugins=("xep_0198", "xep_0352") if sm else ("xep_0352",))
    assert c.xmpp["xep_0352"].enabled, "<csi/> was not offered"
    return online(c)


def inactive(c):
    c.drain()
    c.xmpp["xep_0352"].send_inactive()
    c.pool.settle(0.1)


def chat_state(sender, to, state, id):
    sender.message(to, None, id=id, inner=f"<{state} xmlns='{NS_CHATSTATES}'/>")


def stanzas(c, n, timeout=5.0):
    return [c.recv(lambda el: el.tag in (q(NS_CLIENT, "presence"), q(NS_CLIENT, "message")),
                   timeout) for _ in range(n)]


def test_hold_coalesce_and_flush_on_message(make_pool):
    """While inactive: contacts' presence is held, only the latest per full JID, and chat
    states are held in order; a message with a body sends everything held first, then
    itself."""
    pool = make_pool()
    a = csi_client(pool, "alice")
    b, c = online(pool.client("bob")), online(pool.client("carol"))
    subscribe(a, b)
    subscribe(a, c)
    inactive(a)
    for s in ("s1", "s2", "s3"):
        b.presence(status=s)
    # Different clients: settled in between, so that the order at the server is known.
    pool.settle(0.2)
    c.presence(status="c1")
    pool.settle(0.2)
    chat_state(b, a.jid, "composing", "cs-1")
    a.expect_silence(0.6)
    b.message(a.jid, "wake up", id="body-1")
    got = stanzas(a, 4)
    kinds = [(el.tag, el.get("from"), status_of(el), el.get("id")) for el in got]
    pres = q(NS_CLIENT, "presence")
    msg = q(NS_CLIENT, "message")
    assert kinds == [(pres, b.jid, "s3", None), (pres, c.jid, "c1", None),
                     (msg, b.jid, None, "cs-1"), (msg, b.jid, None, "body-1")], \
        [dump(el) for el in got]
    assert got[2].find(q(NS_CHATSTATES, "composing")) is not None, dump(got[2])
    assert body_of(got[3]) == "wake up"
    a.expect_silence(0.3, match("presence"))
    # Still inactive: holding goes on.
    b.presence(status="s4")
    a.expect_silence(0.5)


def test_flush_on_active(make_pool):
    """§5.1: <active/> sends what was held before anything else; then stanzas pass."""
    pool = make_pool()
    a = csi_client(pool, "alice")
    b = online(pool.client("bob"))
    subscribe(a, b)
    inactive(a)
    b.presence(status="away 1", show="away")
    b.presence(status="away 2", show="away")
    a.expect_silence(0.5)
    a.xmpp["xep_0352"].send_active()
    got = a.recv(match("presence", frm=b.jid))
    assert status_of(got) == "away 2", dump(got)
    a.expect_silence(0.3, match("presence", frm=b.jid))
    b.presence(status="back")
    assert status_of(a.recv(match("presence", frm=b.jid))) == "back"


def test_urgent_stanzas_pass(make_pool):
    """Subscription requests, IQs and the user's own presence are not held; each first
    sends what is held."""
    pool = make_pool()
    a = csi_client(pool, "alice")
    b, c = online(pool.client("bob")), online(pool.client("carol"))
    subscribe(a, b)
    inactive(a)
    b.presence(status="held")
    a.expect_silence(0.4)
    c.presence(type="subscribe", to=A)
    got = stanzas(a, 2)
    assert (got[0].get("from"), status_of(got[0])) == (b.jid, "held"), dump(got[0])
    assert (got[1].get("from"), got[1].get("type")) == (C, "subscribe"), dump(got[1])
    # An iq goes through at once (slixmpp answers it).
    res = b.iq("get", "<query xmlns='jabber:iq:version'/>", to=a.jid)
    assert res.get("type") in ("result", "error"), dump(res)
    # Another resource of alice's comes online: its presence is hers, so urgent.
    a2 = pool.client("alice", resource="other")
    a2.available()
    a.recv(match("presence", frm=a2.jid), timeout=3)


def test_max_held(make_pool):
    """csi_max_held: once that many are held, they all go out, and holding starts again."""
    pool = make_pool(csi_max_held="3")
    a = csi_client(pool, "alice")
    b = online(pool.client("bob"))
    inactive(a)
    for i in range(2):
        chat_state(b, a.jid, "composing", f"cs-{i}")
    a.expect_silence(0.5)
    chat_state(b, a.jid, "paused", "cs-2")
    got = [a.recv(match("message")).get("id") for _ in range(3)]
    assert got == ["cs-0", "cs-1", "cs-2"], got
    chat_state(b, a.jid, "composing", "cs-3")
    a.expect_silence(0.5)


def test_held_survives_resumption(make_pool):
    """What was held when the connection dropped joins the unacknowledged queue and comes
    after the resumption; the resumed stream is active (§5.2)."""
    pool = make_pool(sm_resume_timeout="10s")
    a = csi_client(pool, "alice", sm=True)
    b = online(pool.client("bob"))
    subscribe(a, b)
    inactive(a)
    b.presence(status="while inactive")
    chat_state(b, a.jid, "composing", "cs-held")
    a.expect_silence(0.4)
    a.kill()
    pool.settle(0.2)
    a.drain()
    assert reconnect(a) == "resumed"
    got = a.recv(match("presence", frm=b.jid))
    assert status_of(got) == "while inactive", dump(got)
    a.recv(match("message", id="cs-held"))
    # Active now: presence passes at once.
    b.presence(status="live")
    assert status_of(a.recv(match("presence", frm=b.jid), timeout=3)) == "live"
