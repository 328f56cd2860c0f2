# SPDX-License-Identifier: MIT
"""c2s limits (RFC 6120 §13.12) and the failed-authentication delay, end to end.

Each limit is configured small, hit by a raw client, and must end in the right RFC 6120
stream error and a clean close, while another client goes on being served: stanza size,
connections per source address, the deadline for TLS + authentication, the read rate (which
slows the client down instead of closing it), and the output queue of a client that stops
reading. The delay of failed authentications is measured: it grows per source and per account
and never blocks other clients. Sources other than 127.0.0.1 are other loopback addresses
(127.0.0.2, ...), which Linux routes to the server like any other client.
"""

import os
import socket
import ssl
import time

import pytest

import im
from harness import HOST, dump, new_id, stream_error_condition
from im import DOMAIN, NS_CLIENT, NS_SASL, NS_STREAM, q

pytestmark = [pytest.mark.raw, im.skip_prosody("Parley's [c2s] limits")]

NS_PING = im.NS_PING
SLACK = 1.5  # seconds a loaded machine may add to any expected time


class Client(im.RawClient):
    """A raw client from a chosen loopback source address, optionally with a tiny receive
    buffer (a client that stops reading fills it at once)."""

    def __init__(self, server, source=HOST, tls_port=False, rcvbuf=None, name="client",
                 timeout=5.0):
        super().__init__(server, tls_port=tls_port, timeout=timeout, name=name)
        self.source, self.rcvbuf = source, rcvbuf

    def connect(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if self.rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        s.bind((self.source, 0))
        s.settimeout(self.timeout)
        s.connect((self.host, self.port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        if self.direct_tls:
            self._wrap()
        return self

    def secure(self):
        """Connects, opens the stream and secures it (STARTTLS unless direct TLS)."""
        self.connect()
        self.open()
        if not self.tls:
            self.starttls()
        return self

    def timed_plain(self, user, password, timeout=10.0):
        """PLAIN; returns (seconds until the answer, the answer)."""
        t = time.monotonic()
        self._sasl_auth("PLAIN", b"\0" + user.encode() + b"\0" + password.encode())
        el = self.recv(timeout)
        return time.monotonic() - t, el

    def session(self, user, available=True):
        """After a successful SASL: restart, bind, and initial presence (drained)."""
        self.open()
        res = self.bind(new_id("r"))
        assert res.get("type") == "result", f"{self.name}: bind failed: {dump(res)}"
        self.jid = res.find(f"{q(im.NS_BIND, 'bind')}/{q(im.NS_BIND, 'jid')}").text
        if available:
            self.send("<presence/>")
            self.recv_until(lambda el: el.tag == q(NS_CLIENT, "presence")
                            and el.get("from") == self.jid)
        return self

    def drain(self):
        """Reads whatever has arrived, without waiting; fails on a stream error."""
        self.sock.setblocking(False)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    self.eof = True
                    break
                self._feed(data)
        except (ssl.SSLWantReadError, BlockingIOError):
            pass
        finally:
            self.sock.settimeout(self.timeout)
        while self.events:
            kind, el = self.events.popleft()
            assert kind == "element" and el.tag != q(NS_STREAM, "error"), \
                f"{self.name}: {kind} {dump(el) if el is not None else ''}"
        assert not self.eof, f"{self.name}: closed by the server"

    def ping(self, timeout=5.0):
        """An XEP-0199 ping of the server; returns the seconds its answer took."""
        id = new_id("ping")
        t = time.monotonic()
        self.send(f"<iq type='get' id='{id}' to='{DOMAIN}'><ping xmlns='{NS_PING}'/></iq>")
        el = self.recv_until(lambda el: el.get("id") == id, timeout)
        assert el.get("type") == "result", dump(el)
        return time.monotonic() - t


@pytest.fixture
def made():
    """Factory: made(server, source=..., tls_port=..., rcvbuf=...) -> a Client, closed at
    teardown."""
    clients = []

    def make(server, **kw):
        c = Client(server, name=kw.pop("name", f"client-{len(clients)}"), **kw)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def logged_in(made, srv, user, source=HOST, **kw):
    c = made(srv, source=source, name=kw.pop("name", f"{user}@{source}"), **kw).secure()
    el = c.auth_plain(user, srv.users[user])
    assert el.tag == q(NS_SASL, "success"), f"{user}: SASL failed: {dump(el)}"
    return c.session(user)


def assert_serves(a, b, text="still served"):
    """a's message reaches b: the server goes on serving them."""
    id = new_id("m")
    a.send(f"<message to='{b.jid}' id='{id}' type='chat'><body>{text}</body></message>")
    el = b.recv_until(lambda el: el.get("id") == id)
    assert el.findtext(q(NS_CLIENT, "body")) == text, dump(el)


def c2s_pid(srv):
    return srv.c2s_pid()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# ---------------------------------------------------------------------------
# The failed-authentication delay


def test_auth_delay_grows(make_im, made):
    """Each wrong password of a source and account waits twice as long as the one before, up
    to the maximum; a pipelined attempt waits, unread, for the answer before it; other
    clients are served meanwhile."""
    srv = make_im(max_auth_attempts=10, auth_delay="200ms",
                  c2s_extra={"auth_delay_max": "800ms", "auth_failure_window": "1m"})
    bob = logged_in(made, srv, "bob", source="127.0.0.9")
    c = made(srv, name="guesser").secure()
    took = []
    for want in (0.2, 0.4, 0.8):
        dt, el = c.timed_plain("alice", "wrong")
        assert c.sasl_failure(el) == "not-authorized"
        assert want - 0.02 <= dt <= want + SLACK, f"failure after {dt:.3f}s, expected {want}s"
        took.append(dt)
    assert took[0] < took[1] < took[2], took
    # Two attempts at once: the second is read only once the first is answered, and each
    # waits the maximum now. Meanwhile another client is served at once.
    t = time.monotonic()
    for _ in range(2):
        c._sasl_auth("PLAIN", b"\0alice\0wrong")
    assert bob.ping() < 0.6
    assert c.sasl_failure(c.recv(10)) == "not-authorized"
    assert c.sasl_failure(c.recv(10)) == "not-authorized"
    dt = time.monotonic() - t
    assert 1.6 - 0.04 <= dt <= 1.6 + SLACK, f"two pipelined failures took {dt:.3f}s"
    assert_serves(bob, bob)


def test_auth_delay_per_account_and_source(make_im, made):
    """The account's failures count from any source, the source's for any account; a success
    waits only for what a failure before it still has to wait (docs/config.md), and forgets
    the account's failures."""
    srv = make_im(max_auth_attempts=10, auth_delay="200ms",
                  c2s_extra={"auth_delay_max": "800ms", "auth_failure_window": "1m"})
    a = made(srv, name="a@.1").secure()
    for _ in range(3):
        assert a.sasl_failure(a.timed_plain("alice", "wrong")[1]) == "not-authorized"
    # alice from a new source: her account's count decides (the maximum).
    b = made(srv, source="127.0.0.2", name="b@.2").secure()
    dt, el = b.timed_plain("alice", "wrong")
    assert b.sasl_failure(el) == "not-authorized"
    assert dt >= 0.8 - 0.02, f"alice's 4th failure from a new source after {dt:.3f}s"
    # Another account from a third source: nothing to wait for.
    dt, el = made(srv, source="127.0.0.3", name="c@.3").secure().timed_plain(
        "bob", srv.users["bob"])
    assert el.tag == q(NS_SASL, "success") and dt < 0.6, (dt, dump(el))
    # The source 127.0.0.1 fails again (800 ms); carol from the same address meanwhile waits
    # for that failure's delay, no longer, and not at all once it is over.
    t = time.monotonic()
    a._sasl_auth("PLAIN", b"\0alice\0wrong")
    dt, el = made(srv, name="carol@.1").secure().timed_plain("carol", srv.users["carol"])
    since = time.monotonic() - t
    assert el.tag == q(NS_SASL, "success"), dump(el)
    assert 0.8 - 0.02 <= since <= 0.8 + SLACK, f"carol's success {since:.3f}s after the failure"
    assert a.sasl_failure(a.recv(5)) == "not-authorized"
    dt, el = made(srv, name="carol-again@.1").secure().timed_plain("carol", srv.users["carol"])
    assert el.tag == q(NS_SASL, "success") and dt < 0.6, (dt, dump(el))
    # alice logs in (waiting for her own account's last failure, long answered): her
    # failures are forgotten, so a new source's wrong password waits the first delay only.
    dt, el = b.timed_plain("alice", srv.users["alice"])
    assert el.tag == q(NS_SASL, "success") and dt < 0.6, (dt, dump(el))
    dt, el = made(srv, source="127.0.0.4", name="d@.4").secure().timed_plain("alice", "x")
    assert 0.2 - 0.02 <= dt <= 0.2 + SLACK, f"first failure after {dt:.3f}s"


# ---------------------------------------------------------------------------
# Stanza size


def test_stanza_size_limit(make_im, made):
    """RFC 6120 §13.12: a stanza over max_stanza_size is <policy-violation/>, and closes only
    that stream."""
    srv = make_im(c2s_extra={"max_stanza_size": "16K"})
    alice = logged_in(made, srv, "alice")
    bob = logged_in(made, srv, "bob", source="127.0.0.2")
    big = "x" * 12000
    alice.send(f"<message to='{bob.jid}' id='fits'><body>{big}</body></message>")
    el = bob.recv_until(lambda el: el.get("id") == "fits")
    assert len(el.findtext(q(NS_CLIENT, "body"))) == 12000
    alice.send(f"<message to='{bob.jid}' id='big'><body>{'y' * 20000}</body></message>")
    cond, el = alice.expect_stream_error()
    assert cond == "policy-violation", dump(el)
    bob.expect_silence(0.3)
    carol = logged_in(made, srv, "carol")
    assert_serves(carol, bob)
    assert_serves(bob, carol)


# ---------------------------------------------------------------------------
# Connections per source address


def test_connections_per_source(make_im, made):
    """RFC 6120 §13.12: at most max_connections_per_ip open connections from one address; one
    more gets <policy-violation/> (STARTTLS port) or is closed before TLS (direct TLS port).
    Other addresses, and the connections already open, are served."""
    srv = make_im(c2s_extra={"max_connections_per_ip": 3})
    alice = logged_in(made, srv, "alice")
    others = [made(srv, name=f"open-{i}").connect() for i in range(2)]
    for o in others:
        o.open()
    over = made(srv, name="over").connect()
    over.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
              f"xmlns:stream='{NS_STREAM}' to='{DOMAIN}' version='1.0'>")
    cond, el = over.expect_stream_error()
    assert cond == "policy-violation", dump(el)
    over_tls = made(srv, name="over-tls", tls_port=True)
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        over_tls.connect()
        over_tls.open()
    # Another address is not counted with this one.
    bob = logged_in(made, srv, "bob", source="127.0.0.2")
    assert_serves(alice, bob)
    assert_serves(bob, alice)
    # A connection that closes makes room again (the close is seen soon, not at once).
    others[0].close()
    deadline = time.monotonic() + 5
    while True:
        c = made(srv, name="again").connect()
        try:
            c.open()
            break
        except AssertionError:  # refused: the close was not seen yet
            assert time.monotonic() < deadline, "no room after a connection closed"
            time.sleep(0.1)
    assert_serves(alice, bob)


# ---------------------------------------------------------------------------
# The deadline for TLS and authentication


def test_auth_deadline(make_im, made):
    """RFC 6120 §4.9.3.4: a client that has not authenticated and bound within auth_timeout
    gets <connection-timeout/>; one that never finishes the TLS handshake is closed. Bound
    clients have no such deadline."""
    srv = make_im(c2s_extra={"auth_timeout": "1500ms"})
    alice = logged_in(made, srv, "alice")
    idle = made(srv, name="idle").connect()
    idle.open()
    after_tls = made(srv, name="after-tls").secure()
    authed = made(srv, name="authed").secure()
    assert authed.auth_plain("bob", srv.users["bob"]).tag == q(NS_SASL, "success")
    authed.open()  # the restarted stream, never bound
    s = socket.create_connection((HOST, srv.tls_port), timeout=5)
    try:
        t = time.monotonic()
        for c in (idle, after_tls, authed):
            cond, el = c.expect_stream_error(timeout=1.5 + 5)
            assert cond == "connection-timeout", f"{c.name}: {dump(el)}"
        # The TCP connection that never started TLS is closed too, by then.
        s.settimeout(max(0.5, 1.5 + 5 - (time.monotonic() - t)))
        assert s.recv(100) == b""
    finally:
        s.close()
    bob = logged_in(made, srv, "bob", source="127.0.0.2")
    assert_serves(alice, bob)


# ---------------------------------------------------------------------------
# The read rate


def test_read_rate_throttles(make_im, made):
    """read_rate / read_burst: a client that sends faster is read slower, never cut off, and
    nothing it sent is lost or reordered; other clients are served meanwhile."""
    srv = make_im(c2s_extra={"read_rate": "16K", "read_burst": "8K"})
    alice = logged_in(made, srv, "alice")
    bob = logged_in(made, srv, "bob", source="127.0.0.2")
    carol = logged_in(made, srv, "carol", source="127.0.0.3")
    body = "z" * 900
    n = 48  # about 48 KiB: (48 - 8) / 16 = 2.5 s at least
    t = time.monotonic()
    alice.send("".join(f"<message to='{bob.jid}' id='r{i}'><body>{body}</body></message>"
                       for i in range(n)))
    assert carol.ping() < 0.6, "another client waits for the throttled one"
    got = []
    while len(got) < n:
        el = bob.recv(10)
        if el.tag == q(NS_CLIENT, "message"):
            got.append(el.get("id"))
    dt = time.monotonic() - t
    assert got == [f"r{i}" for i in range(n)]
    assert 2.0 <= dt <= 2.5 + 8, f"{n} KiB at 16 KiB/s took {dt:.2f}s"
    assert alice.ping() < 1.0
    assert_serves(alice, carol)


# ---------------------------------------------------------------------------
# A client that stops reading


@pytest.fixture
def small_quarantine(monkeypatch):
    """ASan keeps freed memory in a quarantine (256 MB by default) that would hide whether
    the server's memory grows with what a client does not read."""
    opts = os.environ.get("ASAN_OPTIONS", "detect_leaks=1")
    monkeypatch.setenv("ASAN_OPTIONS", opts + ":quarantine_size_mb=2")


class LogWatch:
    """Looks for a line in the c2s process's log, reading only what was added since."""

    def __init__(self, srv):
        self.path = srv.c2s_log_path()
        self.offset = os.path.getsize(self.path)

    def seen(self, text):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            new = f.read()
        # Keep a line's start in case it was cut in the middle.
        cut = new.rfind(b"\n") + 1
        self.offset += cut
        return text.encode() in new


def expect_queue_then_error(slow):
    """A client closed for not reading reads again, within the close's flush deadline: what
    was queued, then <policy-violation/>, then the close."""
    cond = None
    t = time.monotonic()
    while cond is None and time.monotonic() - t < 4:
        kind, el = slow.next_event(4)
        if kind == "element" and el.tag == q(NS_STREAM, "error"):
            cond = stream_error_condition(el)
        elif kind == "eof":
            break
    assert cond == "policy-violation", f"the slow reader got {cond!r}, not <policy-violation/>"
    slow.expect_closed()


def test_slow_reader_closed(small_quarantine, make_im, made):
    """A client that stops reading while messages keep coming is closed once max_output_queue
    is unread, with <policy-violation/> (it reads it if it reads again in time), instead of
    the server's memory growing with what it is sent; the sender and others go on."""
    srv = make_im(c2s_extra={"max_output_queue": "64K", "max_stanza_size": "16K",
                             "read_rate": "8M", "read_burst": "256K"})
    pid = c2s_pid(srv)
    sender = logged_in(made, srv, "alice")
    slow = logged_in(made, srv, "bob", source="127.0.0.2", rcvbuf=4096)
    carol = logged_in(made, srv, "carol", source="127.0.0.3")
    log = LogWatch(srv)
    rss0 = rss_kib(pid)
    chunk = "".join(f"<message to='{slow.jid}' type='headline' id='h{i}'><body>{'w' * 8000}"
                    "</body></message>" for i in range(4))
    # Sent to bob, who reads none of it: the server must not keep it. What comes after he
    # is closed is dropped, or bounced to the sender, who reads.
    total = 32 * 1024 * 1024
    sent, closed_at = 0, None
    deadline = time.monotonic() + 40
    while sent < total:
        assert time.monotonic() < deadline, f"only {sent} bytes sent in 40 s"
        sender.send(chunk)
        sent += len(chunk)
        sender.drain()
        if closed_at is None and log.seen("output queue over its limit"):
            closed_at = sent
            expect_queue_then_error(slow)
            assert carol.ping() < 2.0
    grown = rss_kib(pid) - rss0
    assert closed_at is not None, f"the slow reader was not closed after {sent} bytes"
    assert grown * 1024 < total // 2, \
        f"RSS grew by {grown} KiB while {sent} bytes were sent (closed after {closed_at})"
    # The sender is answered after what it sent before (read at its read_rate) is through.
    assert sender.ping(timeout=10) < 8
    assert_serves(sender, carol)
    assert_serves(carol, sender)
