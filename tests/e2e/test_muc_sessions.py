# SPDX-License-Identifier: MIT
"""MUC occupants whose sessions end without leaving (RFC 6121 §4.6.3: the sm sends unavailable
for them), the muc process stopped (332, XEP-0045 §9.2) or killed and started again, and
persistent rooms across restarts; both topologies where they apply."""

import pytest

import im
from harness import dump
from im import match
from muc_util import (NS_PING, codes, configure, enter, error_cond, instant_room,  # noqa: F401
                      item, join, room_jid, subject_of)

pytestmark = pytest.mark.slixmpp


def unavailable(frm):
    return match("presence", frm=frm, type="unavailable")


@pytest.fixture
def server(make_im):
    return make_im(muc=True)


def test_session_end_leaves_room(server):
    """A client that vanishes (TCP reset) or closes its stream without leaving: the sm sends
    unavailable to the occupant JID (directed presence), the room removes the occupant."""
    pool = im.IMPool(server)
    try:
        a, b, c = (pool.client(u, available=True) for u in ("alice", "bob", "carol"))
        r = room_jid("ghosts")
        instant_room(a, r, "a")
        enter(b, r, "b")
        enter(c, r, "c")
        a.drain(settle=0.2)
        c.kill()
        el = a.recv(unavailable(f"{r}/c"), timeout=10)
        assert item(el)["role"] == "none", dump(el)
        b.disconnect()
        el = a.recv(unavailable(f"{r}/b"), timeout=10)
        assert item(el)["role"] == "none", dump(el)
        res = a.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=r)
        form = {f.get("var"): f for f in res.iter() if f.tag.endswith("field")}
        occupants = [v.text for v in form["muc#roominfo_occupants"]]
        assert occupants == ["1"], dump(res)
    finally:
        pool.close()


def test_persistent_room_survives_restart(server):
    """Configuration and affiliations of a persistent room come back after a restart of the
    whole server; a temporary room does not."""
    pool = im.IMPool(server)
    try:
        a = pool.client("alice", available=True)
        r = room_jid("keep")
        instant_room(a, r, "a")
        assert configure(a, r, {"muc#roomconfig_persistentroom": "1",
                                "muc#roomconfig_roomname": "Kept",
                                "muc#roomconfig_whois": "anyone",
                                "muc#roomconfig_roomadmins": ["bob@localhost"]}).get(
            "type") == "result"
        instant_room(a, room_jid("gone"), "a")
        a.send_raw(f"<message to='{r}' type='groupchat' id='t'><subject>Kept topic</subject>"
                   "</message>")
        a.recv(match("message", id="t"))
    finally:
        pool.close()
    server.restart()
    pool = im.IMPool(server)
    try:
        b = pool.client("bob", available=True)
        el = join(b, r, "b")
        assert codes(el) == [100, 110], dump(el)
        assert item(el)["affiliation"] == "admin" and item(el)["role"] == "moderator", dump(el)
        subj = subject_of(b, r)
        assert subj.find(im.q(im.NS_CLIENT, "subject")).text == "Kept topic", dump(subj)
        res = b.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>",
                   to=room_jid("gone"))
        assert error_cond(res)[1] == "item-not-found", dump(res)
    finally:
        pool.close()


def test_muc_process_restart(make_im, im_topology):
    """Split topology: `parleyd muc` stopped tells each occupant 110+332; a self-ping after
    the restart is not-acceptable, so clients rejoin; killed (no 332), the same after."""
    if im_topology != "split":
        pytest.skip("the test starts and kills the processes itself: split topology only"
                    if im_topology == "processes" else "the muc runs in the same process as everything else")
    srv = make_im(muc=True)
    pool = im.IMPool(srv)
    try:
        a, b = pool.client("alice", available=True), pool.client("bob", available=True)
        r = room_jid("restart")
        instant_room(a, r, "a")
        assert configure(a, r, {"muc#roomconfig_persistentroom": "1"}).get(
            "type") == "result"
        enter(b, r, "b")
        a.drain(settle=0.2)
        b.drain()
        srv.restart_muc()
        for x, n in ((a, "a"), (b, "b")):
            el = x.recv(unavailable(f"{r}/{n}"), timeout=10)
            assert codes(el) == [110, 332] and item(el)["role"] == "none", dump(el)
        res = b.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/b", timeout=10)
        assert error_cond(res)[1] == "not-acceptable", dump(res)
        el = enter(b, r, "b")
        assert item(el)["affiliation"] == "none", dump(el)
        srv.restart_muc(kill=True)
        b.expect_silence(0.3, unavailable(f"{r}/b"))
        res = b.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/b", timeout=10)
        assert error_cond(res)[1] == "not-acceptable", dump(res)
        el = join(a, r, "a")
        assert item(el)["affiliation"] == "owner", "the persistent room kept its owner"
    finally:
        pool.close()


def test_server_stop_tells_occupants(server):
    """The whole server stopped: every occupant gets 110+332 (XEP-0045 §9.2) before its
    connection closes, in `parleyd all` too (the muc stops before the c2s)."""
    pool = im.IMPool(server)
    try:
        a, b = pool.client("alice", available=True), pool.client("bob", available=True)
        r = room_jid("closing")
        instant_room(a, r, "a")
        enter(b, r, "b")
        a.drain(settle=0.2)
        b.drain()
        server.stop()
        for x, n in ((a, "a"), (b, "b")):
            el = x.recv(unavailable(f"{r}/{n}"), timeout=10)
            assert codes(el) == [110, 332] and item(el)["role"] == "none", dump(el)
    finally:
        pool.close()


def test_c2s_process_killed(make_im):
    """A c2s process killed with its clients: the sm learns it from the router (the c2s's
    name unbound; before that, only when something for them bounced, as the room's next
    message here would), ends their sessions and sends unavailable to the occupant JIDs; the
    room removes them. test_im_crash.py checks the time it takes."""
    srv = make_im(muc=True, c2s2=True)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        c = pool.client("carol", available=True, c2s2=True)
        r = room_jid("crash")
        instant_room(a, r, "a")
        enter(c, r, "c")
        a.drain(settle=0.2)
        p = next(x for x in srv.procs if x.name == "parleyd-c2s2")
        p.proc.kill()
        p.proc.wait(timeout=10)
        p.returncode, p.sanitized = 0, False  # killed on purpose
        c.disconnected = True
        a.message(r, "anyone there?", type="groupchat", id="probe")
        a.recv(match("message", id="probe"))
        el = a.recv(unavailable(f"{r}/c"), timeout=10)
        assert item(el)["role"] == "none", dump(el)
    finally:
        pool.close()
