# SPDX-License-Identifier: MIT
"""Fault tests (issue 7): no message acknowledged by the server is lost when a process dies.

alice (first c2s, raw client with stream management) sends N messages to bob and checks that
her server acknowledged them all (XEP-0198 <a h='N'/>). bob (second c2s, raw client with
stream management) receives them and acknowledges none, or some. Then the second c2s is
killed with SIGKILL: the sm, which kept a copy of every message it routed to bob's session
until bob's c2s reported it acknowledged (docs/link-protocol.md, "Acknowledged messages"),
stores the unacknowledged ones offline, and bob, logged in again on the first c2s, gets each
exactly once, in order. The normal end (resumption time over) must still give each once:
then the c2s hands them back and the sm drops its copies.
"""

import time

import pytest

import harness
import im
from harness import dump
from im import DOMAIN, NS_DELAY, body_of, match, q

pytestmark = pytest.mark.slixmpp

NS_SM = "urn:xmpp:sm:3"
N = 50
A, B = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))


class SmRaw(im.RawClient):
    """A raw client with stream management that counts the stanzas it received (XEP-0198 §4)
    and acknowledges only when told to."""

    def __init__(self, server, c2s2=False, name="raw"):
        super().__init__(server, name=name)
        if c2s2:
            self.port = server.port2
        self.h = 0  # stanzas received since <enabled/>
        self.sm_seen = []  # <r/> and the like, left unanswered
        self.stanzas = []  # (h after it, element) of every stanza received

    def start(self, user, resource):
        self.login(user, resource=resource)
        self.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
        el = self.recv()
        assert el.tag == q(NS_SM, "enabled"), dump(el)
        return self

    def next_stanza(self, timeout=5.0):
        """The next stanza (message, presence, iq), counted; <r/> are left unanswered."""
        deadline = time.monotonic() + timeout
        while True:
            el = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if el.tag.startswith(f"{{{NS_SM}}}"):
                self.sm_seen.append(el)
                continue
            self.h += 1
            self.stanzas.append((self.h, el))
            return el

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            el = self.next_stanza(max(0.01, deadline - time.monotonic()))
            if pred(el):
                return el

    def ack(self, h):
        self.send(f"<a xmlns='{NS_SM}' h='{h}'/>")

    def server_h(self, timeout=5.0):
        """Sends <r/> and returns the h of the server's <a/> (stanzas it took from us)."""
        self.send(f"<r xmlns='{NS_SM}'/>")
        deadline = time.monotonic() + timeout
        while True:
            el = self.recv(timeout=max(0.01, deadline - time.monotonic()))
            if el.tag == q(NS_SM, "a"):
                return int(el.get("h"))
            if el.tag != q(NS_SM, "r"):
                self.h += 1
                self.stanzas.append((self.h, el))


def bob_online(srv, name="bob"):
    """bob on the second c2s with stream management, available (his presence came back)."""
    b = SmRaw(srv, c2s2=True, name=name).start("bob", "phone")
    b.send("<presence/>")
    b.wait_for(match("presence", frm=b.jid))
    return b


def alice_sends(srv, n=N):
    """alice on the first c2s sends n chat messages to bob's bare JID and checks that her server
    acknowledged every one (<a h='n'/>: she sent nothing else since <enable/>)."""
    a = SmRaw(srv, name="alice").start("alice", "desk")
    for i in range(n):
        a.send(f"<message to='{B}' type='chat' id='m{i}'><body>m{i}</body></message>")
    assert a.server_h() == n
    return a


def bob_gets_all(b, n=N, first=0):
    """bob receives messages m{first}..m{n-1} live; returns his h after each, by index."""
    after = {}
    for i in range(first, n):
        el = b.wait_for(match("message", frm=A + "/*"))
        assert el.get("id") == f"m{i}", dump(el)
        after[i] = b.h
    return after


def bob_again(pool, want, settle=1.0):
    """bob logs in again on the first c2s, sends presence and must get exactly the messages
    whose ids are in want, in that order, each with a delay, and nothing more."""
    c = pool.client("bob")
    c.available()
    for mid in want:
        el = c.recv(match("message", frm=A + "/*"), timeout=10)
        assert el.get("id") == mid, f"expected {mid}: {dump(el)}"
        assert body_of(el) == mid, dump(el)
        assert el.find(q(NS_DELAY, "delay")) is not None, dump(el)
    c.expect_silence(settle, match("message", frm=A + "/*"))
    return c


def sync_with_sm(b, id="sync"):
    """A ping to the domain: its result comes back after the sm processed all bob's c2s sent
    before it (one link, in order), the acked report included."""
    b.send(f"<iq type='get' id='{id}' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
    b.wait_for(match("iq", id=id))


def test_c2s_killed_nothing_acked(make_im):
    """bob acknowledges nothing of N messages alice's server acknowledged; his c2s dies
    (SIGKILL): all N reach him exactly once, in order, from offline storage."""
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        b = bob_online(srv)
        alice_sends(srv)
        bob_gets_all(b)
        srv.kill_proc("parleyd-c2s2")
        b.close()
        bob_again(pool, [f"m{i}" for i in range(N)])
    finally:
        pool.close()


def test_c2s_killed_some_acked(make_im):
    """bob acknowledges the first 20 (his <a h/> up to the 20th message) before his c2s dies:
    he gets only the other 30 afterwards, once each, in order."""
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        b = bob_online(srv)
        alice_sends(srv)
        after = bob_gets_all(b)
        b.ack(after[19])
        sync_with_sm(b)
        srv.kill_proc("parleyd-c2s2")
        b.close()
        bob_again(pool, [f"m{i}" for i in range(20, N)])
    finally:
        pool.close()


def test_resume_timeout_once(make_im):
    """The normal end: bob's connection drops (TCP reset) with nothing acknowledged, and his
    session ends when its resumption time is over; his c2s hands the N messages back and the
    sm drops its copies: each reaches him once. Then his c2s is killed: nothing more comes."""
    srv = make_im(c2s2=True, c2s_extra={"sm_resume_timeout": "500ms"})
    pool = im.IMPool(srv)
    try:
        b = bob_online(srv)
        alice_sends(srv)
        bob_gets_all(b)
        b.abort()
        time.sleep(1.5)  # the resumption time, and the hand-back
        c = bob_again(pool, [f"m{i}" for i in range(N)])
        srv.kill_proc("parleyd-c2s2")
        c.expect_silence(1.0, match("message", frm=A + "/*"))
    finally:
        pool.close()


LINKED = (DOMAIN, im.C2S_NAME, im.C2S2_NAME)


def router_kill(srv):
    """SIGKILL to `parleyd router`; returns how often each link had authenticated to it."""
    old = srv.proc_named("parleyd-router")
    before = {n: srv._authenticated(old, n) for n in LINKED}
    srv.kill_proc("parleyd-router")
    return before


def router_start(srv, before):
    """A new router on the same port (it appends to the same log); waits (bounded) until
    every other process has linked to it again."""
    router = srv._proc("parleyd-router", [srv.parleyd, "--config", srv.conf_path, "router"])
    srv._wait(router, lambda: all(srv._authenticated(router, n) > k for n, k in before.items()),
              "rejoined")


def received_ids(b, settle=1.0):
    """The ids of the messages from alice that bob gets until settle seconds of silence."""
    ids = []
    while True:
        try:
            el = b.next_stanza(timeout=settle)
        except (TimeoutError, harness.StreamClosed):
            return ids
        if el.tag == q(im.NS_CLIENT, "message") and (el.get("from") or "").startswith(A):
            ids.append(el.get("id"))


def test_router_killed_during_traffic(make_im, im_topology):
    """SIGKILL of `parleyd router` while alice sends: 25 messages acknowledged before the kill,
    25 after it (the link is down: each is answered resource-constraint, none is counted as
    delivered in silence), then a new router. Nothing reaches bob twice; every message alice
    got no error for reaches him, except what was in flight between processes at the kill —
    lost by design (docs/link-protocol.md): counted and reported."""
    if im_topology != "split":
        pytest.skip("the router runs in the same process as the c2s")
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        b = bob_online(srv)
        a = SmRaw(srv, name="alice").start("alice", "desk")
        for i in range(25):
            a.send(f"<message to='{B}' type='chat' id='m{i}'><body>m{i}</body></message>")
        assert a.server_h() == 25
        before = router_kill(srv)
        time.sleep(0.3)  # the c2s notices its link is gone
        for i in range(25, N):
            a.send(f"<message to='{B}' type='chat' id='m{i}'><body>m{i}</body></message>")
        assert a.server_h() == N
        def refused(el):
            if el.tag != q(im.NS_CLIENT, "message") or el.get("type") != "error":
                return False
            assert el.find(f"{{{im.NS_CLIENT}}}error/{{{im.NS_STANZAS}}}"
                           "resource-constraint") is not None, dump(el)
            return True
        errors = {el.get("id") for _, el in a.stanzas if refused(el)}
        deadline = time.monotonic() + 5
        while len(errors) < N - 25 and time.monotonic() < deadline:
            el = a.next_stanza(timeout=max(0.01, deadline - time.monotonic()))
            if refused(el):
                errors.add(el.get("id"))
        assert errors == {f"m{i}" for i in range(25, N)}, sorted(errors)
        router_start(srv, before)
        got = received_ids(b)
        assert len(got) == len(set(got)), f"duplicates: {got}"
        assert not (set(got) & errors), f"delivered and answered with an error: {got}, {errors}"
        lost = sorted(set(f"m{i}" for i in range(N)) - set(got) - errors)
        print(f"router killed: {len(got)} delivered, {len(errors)} refused, {len(lost)} lost: "
              f"{lost}")
        if lost:
            pytest.xfail(f"{len(lost)} acknowledged messages in flight lost with the router "
                         "(by design, docs/link-protocol.md)")
    finally:
        pool.close()


def test_sm_killed_during_traffic(make_im, im_topology):
    """SIGKILL of `parleyd sm` right after alice's server acknowledged N messages to bob (who
    acknowledges none): both c2s close their clients (<system-shutdown/>), the sm is started
    again, and bob logs in. What bob saw before the kill plus what offline storage gives him
    afterwards is counted; nothing may come twice from storage. Lost by design
    (docs/link-protocol.md): what was in the sm's memory (not yet stored) and in flight."""
    if im_topology != "split":
        pytest.skip("the sm runs in the same process as the c2s")
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        b = bob_online(srv)
        alice_sends(srv)
        srv.kill_proc("parleyd-sm")
        seen = received_ids(b, settle=1.0)
        b.close()
        srv.start_sm()
        c = pool.client("bob")
        c.available()
        later = []
        while True:
            try:
                el = c.recv(match("message", frm=A + "/*"), timeout=2.0)
            except AssertionError:
                break
            later.append(el.get("id"))
        assert len(later) == len(set(later)), f"duplicates from storage: {later}"
        lost = sorted(set(f"m{i}" for i in range(N)) - set(seen) - set(later))
        print(f"sm killed: {len(seen)} seen live, {len(later)} from storage, "
              f"{len(set(seen) & set(later))} both, {len(lost)} lost")
        if lost:
            pytest.xfail(f"{len(lost)} acknowledged messages lost with the sm (by design, "
                         "docs/link-protocol.md)")
    finally:
        pool.close()
