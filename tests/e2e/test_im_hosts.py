# SPDX-License-Identifier: MIT
"""Parley over several hosts (issue 7): network namespaces on a private bridge (netns.py),
the router on one, the c2s processes c2s-1 and c2s-2 on two others, the sm and the muc on
two more, each with its own configuration file; clients in the test's own namespace.

Users on different c2s hosts subscribe and see presence, exchange messages, share a room;
one goes offline and gets a message stored meanwhile on the other c2s host; the archive
(XEP-0313) answers; and a c2s host's process killed with SIGKILL is seen by a contact and a
room within GONE_WITHIN seconds (the router's watch, docs/link-protocol.md).

Needs root (skipped otherwise, with the reason); CI runs it as root.
"""

import os
import pathlib
import time
from xml.sax.saxutils import quoteattr

import pytest

import harness
import im
import netns
from harness import dump, new_id
from im import NS_DELAY, match, q, subscribe_both
from muc_util import codes, enter, groupchat, instant_room, item, room_jid

pytestmark = pytest.mark.slixmpp

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO / "build" / "test" / "src" / "main" / "parleyd"
GONE_WITHIN = 2.0  # seconds from a c2s's SIGKILL to its users' unavailable (issue 7)
NS_MAM = "urn:xmpp:mam:2"
NS_FWD = "urn:xmpp:forward:0"


@pytest.fixture
def site(request, tmp_path):
    """A started netns.HostSite on a fresh netns.Lan. At teardown (also after a failure) the
    processes are stopped by pid and must exit 0 with no sanitizer report, and every
    namespace and veth is removed (`ip netns list` checked)."""
    if im.is_prosody():
        pytest.skip("Parley's own processes on several hosts: not for PARLEY_E2E_SERVER=prosody")
    reason = netns.skip_reason()
    if reason:
        pytest.skip(reason)
    binary = pathlib.Path(os.environ.get("PARLEYD") or DEFAULT_BINARY).resolve()
    if not binary.is_file():
        pytest.fail(f"parleyd binary not found at {binary}: build it or set PARLEYD",
                    pytrace=False)
    logs = []
    request.node.stash[harness.EXTRA_LOGS] = logs
    lan = netns.Lan(netns.HostSite.HOSTS)
    srv = None
    failures = []
    try:
        lan.up()
        srv = netns.HostSite(binary, tmp_path, lan)
        try:
            srv.start()
        finally:
            logs[:] = srv.logs()
        yield srv
    finally:
        if srv is not None:
            srv.stop()
            failures += [f"{p}\n{srv.log_tails()}" for p in srv.problems()]
        try:
            lan.down()
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def online(pool, user, c2s2=False, resource=None):
    """Logged in on c2s-1 (c2s-2 with c2s2), roster fetched, available."""
    c = pool.client(user, c2s2=c2s2, resource=resource)
    c.roster_get()
    c.available()
    return c


def chat(frm, to, body):
    """frm sends a chat to to's bare JID; to gets it, from frm's full JID, addressed as
    sent (the bare JID: RFC 6121 §8.5.2.1.1), body intact."""
    mid = frm.message(to.bare, body, id=new_id("m"))
    el = to.recv(match("message", id=mid, type="chat"))
    assert (el.get("from"), el.get("to"), im.body_of(el)) == (frm.jid, to.bare, body), dump(el)
    return el


def mam_bodies(c, with_jid):
    """The bodies of c's archived messages with with_jid (XEP-0313 §4.1, one page that must
    be complete), oldest first."""
    qid = new_id("q")
    form = ("<x xmlns='jabber:x:data' type='submit'>"
            f"<field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>"
            f"<field var='with'><value>{with_jid}</value></field></x>")
    res = c.iq("set", f"<query xmlns='{NS_MAM}' queryid={quoteattr(qid)}>{form}</query>")
    assert res.get("type") == "result", dump(res)
    fin = res.find(q(NS_MAM, "fin"))
    assert fin is not None and fin.get("complete") == "true", dump(res)
    bodies = []
    for el in [e for e in c.pending if e.find(q(NS_MAM, "result")) is not None]:
        c.pending.remove(el)
        r = el.find(q(NS_MAM, "result"))
        assert r.get("queryid") == qid, dump(el)
        msg = r.find(f"{q(NS_FWD, 'forwarded')}/{q(im.NS_CLIENT, 'message')}")
        assert msg is not None, dump(el)
        bodies.append(im.body_of(msg))
    return bodies


def test_hosts_apart(site):
    """Each process is on its own host: the router saw every component come from that
    component's address, each c2s its clients from the root namespace's; no host has a
    route beyond the LAN."""
    lan = site.lan
    router = site.proc_named("parleyd-router@router").log_text()
    for host in ("sm", "muc", "c2s1", "c2s2"):
        assert f"component connection from {lan.addr[host]}:" in router, router
        assert lan.routes(host) == [f"{lan.net} dev eth0 proto kernel scope link src"
                                    f" {lan.addr[host]}"], lan.routes(host)
    pool = im.IMPool(site)
    try:
        online(pool, "alice")
        online(pool, "bob", c2s2=True)
    finally:
        pool.close()
    for host in ("c2s1", "c2s2"):
        log = site.proc_named(f"parleyd-c2s@{host}").log_text()
        assert f"client connected from {lan.root_addr}:" in log, log


def test_users_on_several_hosts(site):
    """The whole scenario of issue 7, each wait bounded (5 s unless said)."""
    pool = im.IMPool(site)
    try:
        # alice on c2s-1 (host c2s1), bob on c2s-2 (host c2s2): subscriptions both ways,
        # each sees the other's presence (subscribe() waits for it), messages both ways.
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        c = online(pool, "carol")
        subscribe_both(a, b)
        chat(a, b, "hello from host c2s1")
        chat(b, a, "hello back from host c2s2")

        # carol (c2s-1) makes a room on the muc host; bob (c2s-2) joins; they talk.
        r = room_jid("hosts")
        instant_room(c, r, "carol")
        enter(b, r, "bob")
        el = c.recv(match("presence", type="", frm=f"{r}/bob"))
        assert item(el)["role"] == "participant", dump(el)
        for sender, nick, body in ((c, "carol", "room hello"), (b, "bob", "room answer")):
            mid = groupchat(sender, r, body, id=new_id("g"))
            for x in (b, c):
                el = x.recv(match("message", id=mid, type="groupchat", frm=f"{r}/{nick}"))
                assert (el.get("to"), im.body_of(el)) == (x.jid, body), dump(el)

        # bob leaves; alice (and the room) see it; her message is stored, and bob gets it
        # on the other c2s host this time, stamped (XEP-0203).
        b_jid = b.jid
        b.disconnect()
        a.recv(match("presence", type="unavailable", frm=b_jid))
        c.recv(match("presence", type="unavailable", frm=f"{r}/bob"))
        a.message(b.bare, "while you were away", id="away")
        a.expect_silence(0.3, match("message", id="away", type="error"))
        b2 = pool.client("bob", resource="second")
        b2.roster_get()
        b2.presence()
        el = b2.recv(match("message", id="away"))
        assert (el.get("from"), im.body_of(el)) == (a.jid, "while you were away"), dump(el)
        assert el.find(q(NS_DELAY, "delay")) is not None, dump(el)
        a.recv(match("presence", type="", frm=b2.jid))

        # bob's archive (on the sm host) has the whole conversation with alice.
        assert mam_bodies(b2, a.bare) == ["hello from host c2s1", "hello back from host c2s2",
                                          "while you were away"]

        # bob again on c2s-2 too (a second resource) and in the room; the c2s-2 process
        # killed: alice sees that resource leave and the room sees bob leave, within
        # GONE_WITHIN of the kill, with nothing sent to bob meanwhile; the session of bob
        # on c2s-1 goes on.
        b3 = online(pool, "bob", c2s2=True, resource="third")
        a.recv(match("presence", type="", frm=b3.jid))
        enter(b3, r, "bob")
        c.recv(match("presence", type="", frm=f"{r}/bob"))
        a.drain(settle=0.2)
        c.drain()
        b3_jid = b3.jid
        dead = site.kill_proc("parleyd-c2s@c2s2")
        b3.disconnected = True

        def left():
            return max(0.05, dead + GONE_WITHIN - time.monotonic())

        a.recv(match("presence", type="unavailable", frm=b3_jid), timeout=left())
        el = c.recv(match("presence", type="unavailable", frm=f"{r}/bob"), timeout=left())
        assert item(el)["role"] == "none" and 110 not in codes(el), dump(el)
        took = time.monotonic() - dead
        assert took <= GONE_WITHIN, f"took {took:.2f}s"
        a.expect_silence(0.3, match("presence", type="unavailable", frm=b2.jid))
        chat(a, b2, "still here on c2s-1")
    finally:
        pool.close()
