# SPDX-License-Identifier: MIT
"""Processes killed with SIGKILL while users are online (issues 6 and 7), and a router restart.

The router tells the sm when a c2s's name is unbound and a c2s when its sm's name is
(docs/link-protocol.md, "watching names"): the sm ends the sessions of a dead c2s at once, so
contacts, directed-presence recipients and MUC rooms see them leave with nothing sent to
them; a c2s closes its clients with <system-shutdown/> when its sm dies. Each wait for that
is bounded by GONE_WITHIN seconds from the kill, and nothing is sent to the dead sessions
meanwhile, so the old way (learning it when something for them bounced) cannot pass.
"""

import asyncio
import time

import pytest

import harness
import im
from harness import dump
from im import NS_STREAM, match, q, subscribe_both
from muc_util import codes, enter, instant_room, item, room_jid

pytestmark = pytest.mark.slixmpp

GONE_WITHIN = 2.0


def online(pool, user, c2s2=False):
    """Logged in (on the second c2s process with c2s2), roster fetched, available."""
    c = pool.client(user, c2s2=c2s2)
    c.roster_get()
    c.available()
    return c


def sm_online(pool, user, c2s2=False, timeout=10.0):
    """As online, with stream management (XEP-0198, resumption asked for) through slixmpp's
    xep_0198 plugin."""
    c = im.IMClient(pool, user, pool.server.users[user], None, None, False)
    c.c2s2 = c2s2
    c.xmpp.register_plugin("xep_0198")
    enabled = pool.loop.create_future()
    c.xmpp.add_event_handler("sm_enabled", lambda _: enabled.done() or enabled.set_result(1))
    pool.clients.append(c)
    c.start(timeout)
    pool.run(asyncio.shield(enabled), timeout)
    c.roster_get()
    c.available()
    return c


def unavailable(frm):
    return match("presence", frm=frm, type="unavailable")


def left_by(dead):
    """Seconds left until GONE_WITHIN after dead (a time.monotonic()); at least a little."""
    return max(0.05, dead + GONE_WITHIN - time.monotonic())


def occupants(client, room):
    res = client.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=room)
    form = {f.get("var"): f for f in res.iter() if f.tag.endswith("field")}
    return [v.text for v in form["muc#roominfo_occupants"]]


def test_c2s_killed(make_im):
    """kill -9 of the second c2s process with bob and carol on it, both in a room with alice
    (on the first c2s), bob her contact, carol with directed presence to her and stream
    management on: within GONE_WITHIN alice gets bob's and carol's unavailable presence (RFC
    6121 §4.6.3) and the room's unavailable for both (role none). The stream-managed session
    ends like the other (the sm knows nothing of XEP-0198; no other c2s could resume it), so
    a message to carol meanwhile is stored offline. Then bob logs in again on the first c2s
    and rejoins, and carol gets her message there. Both topologies: the sm in `parleyd all`
    or in its own process."""
    srv = make_im(muc=True, c2s2=True)
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        c = sm_online(pool, "carol", c2s2=True)
        subscribe_both(a, b)
        c.presence(to=a.jid, status="directed")
        a.recv(match("presence", type="", frm=c.jid))
        r = room_jid("crash")
        instant_room(a, r, "a")
        enter(b, r, "b")
        enter(c, r, "c")
        a.drain(settle=0.3)
        b_jid, c_jid = b.jid, c.jid
        dead = srv.kill_proc("parleyd-c2s2")
        b.disconnected = c.disconnected = True
        for pred in (unavailable(b_jid), unavailable(c_jid)):
            el = a.recv(pred, timeout=left_by(dead))
            assert el.get("to") in (a.jid, a.bare), dump(el)
        for nick in ("b", "c"):
            el = a.recv(unavailable(f"{r}/{nick}"), timeout=left_by(dead))
            assert item(el)["role"] == "none" and 110 not in codes(el), dump(el)
        took = time.monotonic() - dead
        assert took <= GONE_WITHIN, f"took {took:.2f}s"
        assert occupants(a, r) == ["1"]
        a.message(c.bare, "while you were away", id="away")
        a.drain()
        b2 = online(pool, "bob")
        a.recv(match("presence", type="", frm=b2.jid))
        enter(b2, r, "b")
        el = a.recv(match("presence", type="", frm=f"{r}/b"))
        assert item(el)["role"] == "participant", dump(el)
        assert occupants(a, r) == ["2"]
        c2 = pool.client("carol")
        c2.roster_get()
        c2.presence()
        el = c2.recv(match("message", id="away"))
        assert el.find(q("urn:xmpp:delay", "delay")) is not None, dump(el)
    finally:
        pool.close()


def test_sm_killed(make_im, im_topology):
    """kill -9 of `parleyd sm`: the clients of both c2s processes get <system-shutdown/>
    (RFC 6120 §4.9.3.22) within GONE_WITHIN; with the sm started again they log in, see each
    other's presence and exchange a message."""
    if im_topology != "split":
        pytest.skip("the test starts and kills the processes itself: split topology only"
                    if im_topology == "processes" else "the sm runs in the same process as the c2s")
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        subscribe_both(a, b)
        dead = srv.kill_proc("parleyd-sm")
        for x in (a, b):
            err = x.recv(lambda el: el.tag == q(NS_STREAM, "error"), timeout=left_by(dead))
            assert harness.stream_error_condition(err) == "system-shutdown", dump(err)
        took = time.monotonic() - dead
        assert took <= GONE_WITHIN, f"took {took:.2f}s"
        srv.start_sm()
        a2 = online(pool, "alice")
        b2 = online(pool, "bob", c2s2=True)
        a2.recv(match("presence", type="", frm=b2.jid))
        a2.message(b2.jid, "back again", id="back")
        el = b2.recv(match("message", id="back"))
        assert el.get("from") == a2.jid, dump(el)
    finally:
        pool.close()


def test_router_restart(make_im, im_topology):
    """`parleyd router` restarted while alice (first c2s) and bob (second) are online: every
    process links again, the sessions go on (a message gets through), and the watches were
    sent again: bob's c2s killed afterwards, alice sees him leave within GONE_WITHIN."""
    if im_topology != "split":
        pytest.skip("the test starts and kills the processes itself: split topology only"
                    if im_topology == "processes" else "the router runs in the same process as everything else")
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        subscribe_both(a, b)
        srv.restart_router()
        a.message(b.jid, "after the restart", id="after")
        el = b.recv(match("message", id="after"), timeout=10)
        assert el.get("from") == a.jid, dump(el)
        a.expect_silence(0.2, unavailable(b.jid))
        b_jid = b.jid
        dead = srv.kill_proc("parleyd-c2s2")
        b.disconnected = True
        a.recv(unavailable(b_jid), timeout=left_by(dead))
    finally:
        pool.close()
