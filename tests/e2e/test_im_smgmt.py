# SPDX-License-Identifier: MIT
"""Stream management (XEP-0198) and dead-peer detection (XEP-0199) at c2s.

slixmpp (with its xep_0198 plugin) resumes after the test cuts its TCP connection; the raw
client checks the exact elements: <failed/> conditions, counting, handled-count-too-high.
Every config here uses short times (see docs/c2s.md), and every wait is bounded.
"""

import asyncio
import datetime
import time

import pytest

import im
from harness import HOST, dump, local
from im import DOMAIN, NS_DELAY, NS_STANZAS, body_of, match, q, subscribe

A, B = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
NS_SM = "urn:xmpp:sm:3"


# ---------------------------------------------------------------------------
# Helpers


@pytest.fixture
def make_pool(make_im):
    """Factory: make_pool(**c2s_keys) -> an IMPool on a server with those [c2s] keys."""
    pools = []

    def make(**c2s_extra):
        srv = make_im(c2s_extra=c2s_extra)
        pool = im.IMPool(srv)
        pools.append(pool)
        return pool

    yield make
    for p in pools:
        p.close()


def sm_client(pool, user, resource=None, plugins=("xep_0198",), timeout=10.0):
    """A slixmpp client with stream management (resumption asked for) and more plugins."""
    c = im.IMClient(pool, user, pool.server.users[user], resource, None, False)
    for p in plugins:
        c.xmpp.register_plugin(p)
    enabled = pool.loop.create_future()
    c.xmpp.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(1))
    pool.clients.append(c)
    c.start(timeout)
    if "xep_0198" in plugins:
        pool.run(asyncio.shield(enabled), timeout)
    return c


def online(c):
    """Roster requested (an interested resource) and initial presence sent."""
    c.roster_get()
    c.available()
    return c


def reconnect(c, timeout=10.0):
    """Connects c again after kill(); returns 'resumed' or 'new' (a fresh session)."""
    done = c.pool.loop.create_future()

    def settle(how):
        if not done.done():
            done.set_result(how)
    c.xmpp.add_event_handler("session_resumed", lambda _: settle("resumed"))
    c.xmpp.add_event_handler("session_start", lambda _: settle("new"))
    c.disconnected = False
    c.xmpp.connect((HOST, c.pool.server.port), use_ssl=False, force_starttls=True)
    return c.pool.run(asyncio.shield(done), timeout)


def sm_elements(c, name):
    return [el for el in c.pending if el.tag == q(NS_SM, name)]


def delay_of(el):
    return el.find(q(NS_DELAY, "delay"))


def authed_raw(srv, user, name="raw"):
    """A raw client after STARTTLS and SASL, before binding; returns (client, features)."""
    c = im.RawClient(srv, name=name)
    c.connect()
    c.open()
    c.starttls()
    el = c.auth_plain(user, srv.users[user])
    assert el.tag == q(im.NS_SASL, "success"), dump(el)
    return c, c.open()


def bound_raw(srv, user, resource="raw", name="raw"):
    """A raw client bound to user@localhost/resource."""
    c, _ = authed_raw(srv, user, name)
    res = c.bind(resource)
    assert res.get("type") == "result", dump(res)
    c.jid = f"{user}@{DOMAIN}/{resource}"
    return c


def until_closed(c, timeout=5.0):
    """Skips elements until the server closes the stream and the connection."""
    deadline = time.monotonic() + timeout
    while True:
        kind, el = c.next_event(max(0.0, deadline - time.monotonic()))
        if kind == "eof":
            return
        assert kind in ("element", "close"), kind


def sm_failed_condition(el):
    assert el.tag == q(NS_SM, "failed"), dump(el)
    conds = [local(x.tag) for x in el if x.tag.startswith(f"{{{NS_STANZAS}}}")]
    assert len(conds) == 1, dump(el)
    return conds[0]


def ping(c, id):
    c.send(f"<iq type='get' id='{id}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")


# ---------------------------------------------------------------------------
# Negotiation and counting (raw)


def test_sm_offered_after_sasl(make_im):
    """§2: <sm/> is a stream feature once authenticated (with bind), not before."""
    srv = make_im()
    c = im.RawClient(srv, name="raw")
    try:
        c.connect()
        c.open()
        f = c.starttls()
        assert f.find(q(NS_SM, "sm")) is None, dump(f)
        c.auth_plain("alice", srv.users["alice"])
        f = c.open()
        assert f.find(q(NS_SM, "sm")) is not None, dump(f)
        assert f.find(q(im.NS_BIND, "bind")) is not None, dump(f)
    finally:
        c.close()


def test_enable_before_bind_and_twice(make_im):
    """§3: <enable/> before binding gets <failed><unexpected-request/>; a second <enable/>
    gets the same and then a stream error."""
    srv = make_im()
    c, _ = authed_raw(srv, "alice")
    try:
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert sm_failed_condition(c.recv()) == "unexpected-request"
        assert c.bind("r1").get("type") == "result"
        c.send(f"<enable xmlns='{NS_SM}'/>")
        el = c.recv()
        assert el.tag == q(NS_SM, "enabled") and el.get("id") is None, dump(el)
        c.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        assert sm_failed_condition(c.recv()) == "unexpected-request"
        cond, _ = c.expect_stream_error()
        assert cond == "policy-violation"
    finally:
        c.close()


def test_enabled_resume_attributes(make_pool):
    """§5: <enabled resume='true'/> carries an id and max (the client's lower max wins)."""
    pool = make_pool(sm_resume_timeout="90s")
    c = bound_raw(pool.server, "alice")
    try:
        c.send(f"<enable xmlns='{NS_SM}' resume='true' max='30'/>")
        el = c.recv()
        assert el.tag == q(NS_SM, "enabled"), dump(el)
        assert el.get("resume") in ("true", "1") and el.get("max") == "30", dump(el)
        assert len(el.get("id") or "") >= 20, dump(el)
    finally:
        c.close()
    c = bound_raw(pool.server, "bob")
    try:
        c.send(f"<enable xmlns='{NS_SM}' resume='1'/>")
        el = c.recv()
        assert el.get("max") == "90", dump(el)
    finally:
        c.close()


def test_counting_and_acks(make_im):
    """§4: h counts the client's stanzas (not nonzas) after <enable/>; our <a/> answers
    <r/>; the client's acks are accepted up to what was sent."""
    srv = make_im()
    c = bound_raw(srv, "alice")
    try:
        ping(c, "before")  # before <enable/>: not counted
        assert c.recv().get("id") == "before"
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert c.recv().tag == q(NS_SM, "enabled")
        c.send(f"<r xmlns='{NS_SM}'/>")
        el = c.recv()
        assert el.tag == q(NS_SM, "a") and el.get("h") == "0", dump(el)
        for i in range(3):
            ping(c, f"p{i}")
        c.send(f"<r xmlns='{NS_SM}'/><a xmlns='{NS_SM}' h='0'/>")
        got = [c.recv() for _ in range(4)]
        # Our <a/> counts the three pings; their results may come before or after it (the
        # sm answers them on its own time, in the same process or not).
        acks = [g for g in got if g.tag == q(NS_SM, "a")]
        assert len(acks) == 1 and acks[0].get("h") == "3", [dump(g) for g in got]
        assert [g.get("id") for g in got if g.tag != q(NS_SM, "a")] == ["p0", "p1", "p2"], \
            [dump(g) for g in got]
        # Three results were sent: acknowledging them all is fine, and again.
        c.send(f"<a xmlns='{NS_SM}' h='3'/><a xmlns='{NS_SM}' h='3'/>")
        ping(c, "after")
        assert c.recv().get("id") == "after"
    finally:
        c.close()


def test_server_requests_acks(make_im):
    """§4: after a few stanzas the server asks <r/>; the answer clears its queue."""
    srv = make_im()
    c = bound_raw(srv, "alice")
    try:
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert c.recv().tag == q(NS_SM, "enabled")
        for i in range(5):
            ping(c, f"p{i}")
        got = [c.recv() for _ in range(6)]
        assert got[5].tag == q(NS_SM, "r"), [dump(g) for g in got]
        c.send(f"<a xmlns='{NS_SM}' h='5'/>")
        ping(c, "p5")
        assert c.recv().get("id") == "p5"
    finally:
        c.close()


@pytest.mark.parametrize("h", ["2", "4294967295"])
def test_handled_count_too_high(make_im, h):
    """§6: acknowledging more than was sent is <undefined-condition/> with
    <handled-count-too-high/>. h counts modulo 2^32, so 2^32-1 (one behind zero) is far
    ahead, not behind."""
    srv = make_im()
    c = bound_raw(srv, "alice")
    try:
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert c.recv().tag == q(NS_SM, "enabled")
        ping(c, "p1")
        assert c.recv().get("id") == "p1"
        c.send(f"<a xmlns='{NS_SM}' h='{h}'/>")
        cond, el = c.expect_stream_error()
        assert cond == "undefined-condition", dump(el)
        app = el.find(q(NS_SM, "handled-count-too-high"))
        assert app is not None, dump(el)
        assert (app.get("h"), app.get("send-count")) == (h, "1"), dump(el)
    finally:
        c.close()


def test_bad_h_is_bad_format(make_im):
    """§4: h is an xs:unsignedInt; 2^32 is not one."""
    srv = make_im()
    c = bound_raw(srv, "alice")
    try:
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert c.recv().tag == q(NS_SM, "enabled")
        c.send(f"<a xmlns='{NS_SM}' h='4294967296'/>")
        cond, _ = c.expect_stream_error()
        assert cond == "bad-format"
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Resumption


def test_resume_unknown_previd(make_im):
    """§5: an SM-ID the server does not know: <failed><item-not-found/>; binding still works
    on the same stream."""
    srv = make_im()
    c, _ = authed_raw(srv, "alice")
    try:
        c.send(f"<resume xmlns='{NS_SM}' previd='1-0011223344556677.bm90LWEtcmVhbC1pZA' h='0'/>")
        assert sm_failed_condition(c.recv()) == "item-not-found"
        c.send(f"<resume xmlns='{NS_SM}' previd='no dot at all' h='0'/>")
        assert sm_failed_condition(c.recv()) == "item-not-found"
        c.send(f"<resume xmlns='{NS_SM}' h='0'/>")
        assert sm_failed_condition(c.recv()) == "bad-request"
        assert c.bind("after-failed").get("type") == "result"
        ping(c, "p1")
        assert c.recv().get("id") == "p1"
    finally:
        c.close()


def test_resume_raw_exact(make_pool):
    """§5 with exact counters: what the client acknowledged in <resume h/> is not resent,
    the rest is, in order; <resumed h/> says what the server handled; the SM-ID is only
    the owner's, and it cannot be used twice at once."""
    pool = make_pool(sm_resume_timeout="10s")
    srv = pool.server
    b = online(pool.client("bob"))
    a = bound_raw(srv, "alice", "phone")
    try:
        a.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        enabled = a.recv()
        smid = enabled.get("id")
        ping(a, "p1")  # handled: 1
        assert a.recv().get("id") == "p1"  # sent: 1
        for i in range(3):
            b.message(a.jid, f"m{i}", id=f"m{i}")
        got = [a.recv() for _ in range(3)]  # sent: 4
        assert [g.get("id") for g in got] == ["m0", "m1", "m2"], [dump(g) for g in got]
        a.abort()
        # Sent while the connection is gone: kept for the session.
        b.message(a.jid, "m3", id="m3")
        pool.settle(0.3)

        # Another account may not take the session over.
        e, _ = authed_raw(srv, "bob", name="raw-bob")
        e.send(f"<resume xmlns='{NS_SM}' previd='{smid}' h='0'/>")
        assert sm_failed_condition(e.recv()) == "item-not-found"
        e.close()

        # The client got p1 and m0 (h=2): m1, m2 and m3 come again, in order.
        r, _ = authed_raw(srv, "alice", name="raw-resumed")
        r.send(f"<resume xmlns='{NS_SM}' previd='{smid}' h='2'/>")
        el = r.recv()
        assert el.tag == q(NS_SM, "resumed"), dump(el)
        assert (el.get("previd"), el.get("h")) == (smid, "1"), dump(el)
        got = []
        while len(got) < 3:
            x = r.recv()
            if x.tag != q(NS_SM, "r"):
                got.append(x)
        assert [g.get("id") for g in got] == ["m1", "m2", "m3"], [dump(g) for g in got]
        assert all(g.get("to") == f"{A}/phone" for g in got), [dump(g) for g in got]
        # The same session: the same full JID, the counters go on.
        ping(r, "p2")
        x = r.recv_until(lambda x: x.get("id") == "p2")
        assert x.get("to") == f"{A}/phone", dump(x)
        r.send(f"<r xmlns='{NS_SM}'/>")
        x = r.recv_until(lambda x: x.tag == q(NS_SM, "a"))
        assert x.get("h") == "2", dump(x)
        # A second resumption of the same id while this stream lives takes it over: the
        # live stream gets <conflict/> (§5).
        t, _ = authed_raw(srv, "alice", name="raw-takeover")
        t.send(f"<resume xmlns='{NS_SM}' previd='{smid}' h='6'/>")
        el = t.recv()
        assert el.tag == q(NS_SM, "resumed"), dump(el)
        skipped = []
        while True:
            kind, x = r.next_event(5)
            if kind == "element" and x.tag == q(im.NS_STREAM, "error"):
                break
            assert kind == "element", kind
            skipped.append(x)
        assert x.find(q(im.NS_STREAMS, "conflict")) is not None, dump(x)
        ping(t, "p3")
        assert t.recv_until(lambda x: x.get("id") == "p3").get("to") == f"{A}/phone"
        # Bob never saw alice go away.
        b.expect_silence(0.3, match("presence", type="unavailable"))
        t.close()
    finally:
        a.close()


def test_resume_after_cut(make_pool):
    """slixmpp's xep_0198: the test cuts the TCP connection, bob writes meanwhile, the
    client resumes: the same session and resource, the message arrives exactly once, and
    bob never sees alice go offline."""
    pool = make_pool(sm_resume_timeout="10s")
    a = online(sm_client(pool, "alice", resource="phone"))
    b = online(pool.client("bob"))
    subscribe(a, b)
    subscribe(b, a)
    full = a.jid
    b.message(full, "before the cut", id="before")
    assert body_of(a.recv(match("message", id="before"))) == "before the cut"
    a.kill()
    pool.settle(0.3)
    b.message(full, "while cut", id="cut-1")
    b.message(A, "while cut, to the bare JID", id="cut-2")
    pool.settle(0.2)
    a.drain()
    assert reconnect(a) == "resumed"
    assert a.jid == full
    got = a.recv(match("message", id="cut-1"))
    assert got.get("to") == full and body_of(got) == "while cut", dump(got)
    a.recv(match("message", id="cut-2"))
    # Exactly once: no copy now, none from offline storage later.
    a.expect_silence(0.5, match("message"))
    b.expect_silence(0.1, match("presence", type="unavailable", frm=full))
    # The session goes on: presence and messages both ways.
    a.message(B, "back", id="back")
    b.recv(match("message", id="back", frm=full))
    b.message(full, "again", id="again")
    a.recv(match("message", id="again"))
    a.disconnect()
    b.recv(match("presence", type="unavailable", frm=full))
    b.expect_silence(0.3, match("message", frm=full))


@pytest.mark.slow
def test_resume_timeout_goes_offline(make_pool):
    """§4: a session not resumed in time ends: contacts get unavailable presence, and what
    the client did not acknowledge goes to offline storage, with the time of the first
    delivery attempt (XEP-0203); the old SM-ID is then unknown."""
    pool = make_pool(sm_resume_timeout="600ms")
    a = online(sm_client(pool, "alice", resource="phone"))
    b = online(pool.client("bob"))
    subscribe(b, a)
    full = a.jid
    smid = a.xmpp["xep_0198"].sm_id
    a.kill()
    pool.settle(0.2)
    t0 = time.time()
    b.message(full, "kept for later", id="late-1")
    b.message(A, "kept too", id="late-2")
    # Not offline yet: held for the session.
    b.expect_silence(0.2, match("presence", type="unavailable", frm=full))
    b.recv(match("presence", type="unavailable", frm=full), timeout=5)
    assert time.time() - t0 < 4
    r, _ = authed_raw(pool.server, "alice", name="raw-late")
    r.send(f"<resume xmlns='{NS_SM}' previd='{smid}' h='0'/>")
    assert sm_failed_condition(r.recv()) == "item-not-found"
    r.close()
    a2 = pool.client("alice", resource="later")
    a2.available()
    got = [a2.recv(match("message", id=i)) for i in ("late-1", "late-2")]
    for g in got:
        d = delay_of(g)
        assert d is not None and d.get("from") == DOMAIN, dump(g)
        stamp = parse_stamp(d.get("stamp"))
        assert t0 - 2 <= stamp <= t0 + 2, (d.get("stamp"), t0)
    a2.expect_silence(0.5, match("message"))


@pytest.mark.slow
@pytest.mark.parametrize("prio", [0, 5])
def test_returned_bare_message_not_duplicated(make_pool, prio):
    """A message to the bare JID that the timed-out session did not acknowledge: another
    resource of the same priority had it already (RFC 6121 §8.5.2.1.1) and does not get it
    again; one of lower priority did not, and gets it now (with a delay), once."""
    pool = make_pool(sm_resume_timeout="600ms")
    a1 = sm_client(pool, "alice", resource="phone")
    a1.roster_get()
    a1.available(priority=prio)
    a2 = pool.client("alice", resource="desk")
    a2.roster_get()
    a2.available(priority=0)
    b = online(pool.client("bob"))
    a1.kill()
    pool.settle(0.2)
    a2.drain()
    b.message(A, "to the bare JID", id="bare-1")
    got = a2.recv(match("message", id="bare-1"))
    if prio == 0:
        assert delay_of(got) is None, dump(got)  # the first delivery, at once
    else:
        assert delay_of(got) is not None, dump(got)  # handed back after the timeout
    a2.expect_silence(1.5, match("message"))
    a3 = pool.client("alice", resource="later")
    a3.available()
    a3.expect_silence(0.5, match("message"))


def parse_stamp(text):
    """A XEP-0082 UTC DateTime as a POSIX time."""
    assert text.endswith("Z"), text
    base = text[:-1].split(".")[0]
    return datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def test_clean_close_is_not_resumable(make_pool):
    """§7: </stream:stream> ends the session at once, even with resumption on; what it
    did not acknowledge goes offline."""
    pool = make_pool(sm_resume_timeout="30s")
    srv = pool.server
    b = online(pool.client("bob"))
    a = bound_raw(srv, "alice", "desk")
    a.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    smid = a.recv().get("id")
    a.send("<presence/>")
    b.message(f"{A}/desk", "unacknowledged", id="u-1")
    a.recv_until(lambda x: x.get("id") == "u-1")
    a.send("</stream:stream>")
    until_closed(a)
    a.close()
    r, _ = authed_raw(srv, "alice", name="raw-again")
    r.send(f"<resume xmlns='{NS_SM}' previd='{smid}' h='0'/>")
    assert sm_failed_condition(r.recv()) == "item-not-found"
    assert r.bind("desk").get("type") == "result"
    r.send("<presence/>")
    got = r.recv_until(lambda x: x.get("id") == "u-1")
    assert delay_of(got) is not None, dump(got)
    r.close()


def test_unacked_overflow_goes_offline(make_pool):
    """sm_max_unacked: a client that never acknowledges is ended with <policy-violation/>
    once more wait; nothing is lost: the messages go to offline storage."""
    pool = make_pool(sm_max_unacked="5")
    srv = pool.server
    b = online(pool.client("bob"))
    a = bound_raw(srv, "alice", "slow")
    a.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    assert a.recv().tag == q(NS_SM, "enabled")
    for i in range(7):
        b.message(f"{A}/slow", f"n{i}", id=f"n{i}")
    got = []
    while True:
        kind, el = a.next_event(5)
        if kind != "element":
            break
        if el.tag == q(im.NS_STREAM, "error"):
            assert el.find(q(im.NS_STREAMS, "policy-violation")) is not None, dump(el)
            break
        if el.tag == q(im.NS_CLIENT, "message"):
            got.append(el.get("id"))
    assert got == [f"n{i}" for i in range(5)], got
    a.close()
    a2 = pool.client("alice", resource="later")
    a2.available()
    ids = [a2.recv(match("message", where=lambda el: el.get("id", "").startswith("n"))).get("id")
           for _ in range(7)]
    assert ids == [f"n{i}" for i in range(7)], ids
    a2.expect_silence(0.3, match("message"))


# ---------------------------------------------------------------------------
# Dead peers (XEP-0199, or <r/> with stream management)


def pause(c):
    """The client stops reading: it answers nothing from now on."""
    c.xmpp.transport.pause_reading()


@pytest.mark.slow
def test_dead_peer_detected(make_pool):
    """A client that stops answering is probed after ping_interval and cut off after
    ping_timeout: its contacts get unavailable presence. A live client is never cut off."""
    pool = make_pool(ping_interval="400ms", ping_timeout="800ms")
    a = online(pool.client("alice"))
    b = online(pool.client("bob"))
    subscribe(b, a)
    # bob answers the pings (slixmpp answers an unknown iq with an error): it stays.
    pool.settle(1.5)
    assert any(el.tag == q(im.NS_CLIENT, "iq") and el.find(q(im.NS_PING, "ping")) is not None
               for el in b.pending), [dump(e) for e in b.pending]
    full = a.jid
    pause(a)
    t0 = time.monotonic()
    b.recv(match("presence", type="unavailable", frm=full), timeout=6)
    took = time.monotonic() - t0
    # ping_interval + ping_timeout, plus two sweeps and slack for a loaded machine.
    assert took < 1.2 + 2.0, took
    b.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    assert not b.disconnected


@pytest.mark.slow
def test_dead_peer_with_sm_waits_for_resumption(make_pool):
    """With resumption, a dead peer's connection is cut but its session waits: its
    contacts see nothing until the resume time is over."""
    pool = make_pool(ping_interval="300ms", ping_timeout="700ms", sm_resume_timeout="2s")
    a = online(sm_client(pool, "alice"))
    b = online(pool.client("bob"))
    subscribe(b, a)
    full = a.jid
    pause(a)
    t0 = time.monotonic()
    b.expect_silence(1.2, match("presence", type="unavailable", frm=full))
    b.recv(match("presence", type="unavailable", frm=full), timeout=6)
    took = time.monotonic() - t0
    assert 1.5 < took < 1.0 + 2.0 + 2.5, took
