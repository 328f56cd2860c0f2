# SPDX-License-Identifier: MIT
"""Soak: thousands of client connections that break off anywhere, then a check of what is left.

Each connection picks a way to go wrong at random (seeded; the seed is printed): a bare TCP
connect, half a stream header, half a ClientHello (STARTTLS or direct TLS), a handshake left
after the server's first flight, half an <auth/>, a SCRAM exchange left after the challenge, a
wrong password, half a stanza after login, a whole message then a reset; and it ends with a
FIN, a reset (SO_LINGER 0) or a half close. Some connections behave: they log in, leave a
message for an offline account and close their stream cleanly. Then:

- every server process is still running;
- the c2s process holds as many descriptors as before the soak (no leaked connection);
- (release build) its RSS is back near the baseline measured after a warm-up;
- every message acknowledged by a clean close (and those stored before the soak) is delivered
  to the offline account exactly once, none that was never sent;
- at the end the processes exit 0 on SIGTERM without a sanitizer report (the ASan build
  checks for leaks there).

Bounded: SOAK_CONNECTIONS connections (default 3000) or SOAK_SECONDS seconds (default 150),
whichever comes first, SOAK_WORKERS at once (default 12), on 127.0.0.1 only. Run by
`make soak` (both topologies, the ASan build and the release build) and by CI.
"""

import base64
import os
import pathlib
import random
import secrets
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "e2e"))

import im  # noqa: E402
from harness import dump  # noqa: E402
from im import DOMAIN, NS_SASL, NS_TLS, q  # noqa: E402

CONNECTIONS = int(os.environ.get("SOAK_CONNECTIONS", "3000"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "150"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "12"))
SEED = int(os.environ.get("SOAK_SEED", str(secrets.randbits(32))))
USERS = [f"soak{i}" for i in range(16)]
KEEPER = "keeper"  # never logs in until the end: every message for it is stored offline
BEFORE = 30  # messages stored for the keeper before the soak
REPO = pathlib.Path(__file__).resolve().parents[2]


def binaries():
    """(name, path, sanitized) of each build to soak: PARLEYD (ASan), PARLEYD_RELEASE."""
    out = []
    asan = os.environ.get("PARLEYD") or REPO / "build" / "test" / "src" / "main" / "parleyd"
    rel = os.environ.get("PARLEYD_RELEASE") or REPO / "build" / "release" / "src" / "main" / \
        "parleyd"
    for name, path, sanitized in (("asan", asan, True), ("release", rel, False)):
        if pathlib.Path(path).is_file():
            out.append((name, pathlib.Path(path).resolve(), sanitized))
    return out


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def client_hello():
    """The bytes of a real TLS ClientHello (Python's ssl over memory BIOs)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=DOMAIN)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class Soak:
    """The connections' behaviours and what they leave behind (thread-safe tallies)."""

    def __init__(self, server, seed):
        self.server = server
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.expected = set()  # bodies acknowledged by a clean close
        self.maybe = set()  # bodies sent whole before a reset: stored or not
        self.counts = {}
        self.errors = []
        self.hello = client_hello()
        self.serial = 0

    def next_id(self):
        with self.lock:
            self.serial += 1
            return self.serial

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    # -- how a connection ends ------------------------------------------------

    @staticmethod
    def cut(c, how):
        sock = c.sock
        if sock is None:
            return
        try:
            if how == "rst":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            elif how == "half":
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(0.2)
                try:
                    while sock.recv(65536):
                        pass
                except (OSError, ssl.SSLError):
                    pass
        except OSError:
            pass
        c.close()

    # -- behaviours -------------------------------------------------------------

    def raw(self, tls_port=False):
        return im.RawClient(self.server, tls_port=tls_port, timeout=10.0,
                            name=f"soak-{self.next_id()}")

    def run_one(self, rng):
        kind = rng.choice(("tcp", "header", "tls_half", "tls_half_direct", "tls_flight",
                           "auth_half", "sasl_challenge", "sasl_wrong", "stanza_half",
                           "message_reset", "clean", "clean", "clean"))
        how = rng.choice(("fin", "rst", "half"))
        c = self.raw(tls_port=(kind == "tls_half_direct"))
        try:
            getattr(self, "do_" + kind)(c, rng)
            self.count(kind)
        except (OSError, ssl.SSLError, TimeoutError, AssertionError, im.harness.StreamClosed) \
                as e:
            with self.lock:
                self.errors.append(f"{kind}/{how}: {type(e).__name__}: {e}")
        finally:
            if kind != "clean":
                self.cut(c, how)
            else:
                c.close()

    def do_tcp(self, c, rng):
        im.harness.RawComponent.connect(c)

    def do_header(self, c, rng):
        im.harness.RawComponent.connect(c)
        hdr = (f"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
               f"xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>")
        c.send(hdr[: rng.randrange(1, len(hdr))])

    def _plain_to_starttls(self, c):
        c.connect()
        c.open()
        c.send(f"<starttls xmlns='{NS_TLS}'/>")
        el = c.recv()
        assert el.tag == q(NS_TLS, "proceed"), dump(el)

    def do_tls_half(self, c, rng):
        self._plain_to_starttls(c)
        c.send(self.hello[: rng.randrange(1, len(self.hello))])

    def do_tls_half_direct(self, c, rng):
        im.harness.RawComponent.connect(c)  # the direct TLS port, not wrapped
        c.send(self.hello[: rng.randrange(1, len(self.hello))])

    def do_tls_flight(self, c, rng):
        self._plain_to_starttls(c)
        c.send(self.hello)
        c.sock.settimeout(5.0)
        assert c.sock.recv(1), "no ServerHello"

    def _tls(self, c):
        c.connect()
        c.open()
        if not c.tls:
            c.starttls()

    def do_auth_half(self, c, rng):
        self._tls(c)
        s = im.Scram(rng.choice(USERS), "x", "sha1")
        text = (f"<auth xmlns='{NS_SASL}' mechanism='SCRAM-SHA-1'>"
                f"{base64.b64encode(s.first()).decode()}</auth>")
        c.send(text[: rng.randrange(1, len(text))])

    def do_sasl_challenge(self, c, rng):
        self._tls(c)
        user = rng.choice(USERS)
        s = im.Scram(user, self.server.users[user], "sha256")
        c._sasl_auth("SCRAM-SHA-256", s.first())
        el = c.recv()
        assert el.tag == q(NS_SASL, "challenge"), dump(el)

    def do_sasl_wrong(self, c, rng):
        self._tls(c)
        el = c.auth_scram(rng.choice(USERS), "wrong-" + secrets.token_hex(4))
        assert c.sasl_failure(el) == "not-authorized"

    def _login(self, c, rng):
        user = rng.choice(USERS)
        c.login(user, resource=f"r{rng.randrange(1000)}",
                mech=rng.choice(("plain", "sha1", "sha256")))

    def _message(self, body):
        return (f"<message to='{KEEPER}@{DOMAIN}' type='chat' id='{body}'>"
                f"<body>{body}</body></message>")

    def do_stanza_half(self, c, rng):
        self._login(c, rng)
        text = self._message(f"half-{self.next_id()}")
        # Never the whole element: the server must not store a message it never got.
        c.send(text[: rng.randrange(1, text.index("</message>"))])

    def do_message_reset(self, c, rng):
        self._login(c, rng)
        body = f"reset-{self.next_id()}"
        with self.lock:
            self.maybe.add(body)
        c.send(self._message(body))

    def do_clean(self, c, rng):
        self._login(c, rng)
        bodies = [f"clean-{self.next_id()}" for _ in range(rng.randrange(1, 3))]
        c.send("".join(self._message(b) for b in bodies) + "</stream:stream>")
        # The server's </stream:stream> comes after it handled everything before ours.
        while True:
            kind, el = c.next_event(10.0)
            if kind in ("close", "eof"):
                break
        with self.lock:
            self.expected.update(bodies)


def leave_messages(server, bodies):
    """Logs in as soak0 and leaves the bodies for the keeper, then closes cleanly."""
    c = im.RawClient(server, timeout=10.0, name="soak-before")
    c.login(USERS[0])
    c.send("".join(f"<message to='{KEEPER}@{DOMAIN}' type='chat'><body>{b}</body></message>"
                   for b in bodies) + "</stream:stream>")
    while c.next_event(10.0)[0] not in ("close", "eof"):
        pass
    c.close()


def keeper_inbox(server, timeout=30.0):
    """Logs the keeper in and returns the bodies of the offline messages it gets."""
    c = im.RawClient(server, timeout=10.0, name="keeper")
    c.login(KEEPER)
    c.send("<presence/>")
    bodies = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < 2.0:
        try:
            el = c.recv(0.5)
        except TimeoutError:
            continue
        quiet_since = time.monotonic()
        if el.tag == q(im.NS_CLIENT, "message"):
            b = el.find(q(im.NS_CLIENT, "body"))
            bodies.append(b.text if b is not None else None)
    c.send("</stream:stream>")
    c.close()
    return bodies


def c2s_pid(server):
    names = ("parleyd-c2s", "parleyd-all")
    return next(p.pid for p in server.procs if p.name in names)


def settle(pid, base_fds, timeout=15.0):
    """Waits (bounded) until the c2s holds no more descriptors than at base_fds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and fds(pid) > base_fds:
        time.sleep(0.2)
    return fds(pid)


def run_round(soak, seed, count, seconds):
    started = time.monotonic()
    rng = random.Random(seed)
    seeds = [rng.randrange(2**32) for _ in range(count)]

    def one(s):
        if time.monotonic() - started < seconds:
            soak.run_one(random.Random(s))

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(one, seeds))
    return time.monotonic() - started


BUILDS = binaries()


@pytest.mark.parametrize("build", BUILDS, ids=[b[0] for b in BUILDS])
@pytest.mark.parametrize("topology", ["all", "split"])
def test_soak(build, topology, tmp_path):
    name, binary, sanitized = build
    users = {u: f"{u}-{secrets.token_hex(6)}" for u in [*USERS, KEEPER]}
    # Every client comes from 127.0.0.1: the limits per source are raised, and failed
    # authentications (a tenth of the connections) cost a few milliseconds, not seconds.
    extra = {"max_connections_per_ip": 10000, "auth_delay_max": "20ms"}
    server = im.IMServer(binary, tmp_path / "srv", topology, users=users, offline_max=100000,
                         log_level="warn", max_auth_attempts=3, auth_delay="5ms",
                         c2s_extra=extra)
    print(f"soak: seed {SEED}, {name} build, topology {topology}")
    server.start()
    try:
        before = [f"before-{i}" for i in range(BEFORE)]
        leave_messages(server, before)
        pid = c2s_pid(server)

        soak = Soak(server, SEED)
        # Warm-up: the heap, OpenSSL and SQLite reach their working size.
        run_round(soak, SEED ^ 1, 200, SECONDS)
        base_fds = settle(pid, fds(pid))
        time.sleep(2.0)  # quiet: the connections' buffers and the heap's free pages go back
        base_rss = rss_kib(pid)
        soak.counts, soak.errors = {}, []

        took = run_round(soak, SEED, CONNECTIONS, SECONDS)
        done = sum(soak.counts.values())
        print(f"soak: {done} connections in {took:.1f} s, {len(soak.errors)} failed on the"
              f" client's side: {sorted(soak.counts.items())}")

        for p in server.procs:
            assert p.alive(), f"{p.name} died during the soak\n{server.log_tails()}"
        left = settle(pid, base_fds)
        assert left <= base_fds, f"c2s holds {left} descriptors, {base_fds} before the soak"

        rss = rss_kib(pid)
        deadline = time.monotonic() + 10.0
        bound = base_rss + max(base_rss // 4, 4096)
        while not sanitized and rss > bound and time.monotonic() < deadline:
            time.sleep(0.5)
            rss = rss_kib(pid)
        print(f"soak: c2s RSS {base_rss} KiB after the warm-up, {rss} KiB after the soak")
        if not sanitized:  # ASan's quarantine and shadow memory say nothing about ours
            assert rss <= bound, f"c2s RSS {rss} KiB, {base_rss} KiB after the warm-up"

        # Failures of the soak's own clients are expected only where the server is right to
        # refuse (none here): report a few, fail if they are more than a handful.
        assert len(soak.errors) <= done // 100, "\n".join(soak.errors[:20])

        got = keeper_inbox(server)
        want = set(before) | soak.expected
        missing = want - set(got)
        assert not missing, f"{len(missing)} stored messages lost, e.g. {sorted(missing)[:5]}"
        dups = {b for b in got if got.count(b) > 1}
        assert not dups, f"delivered twice: {sorted(dups)[:5]}"
        strays = set(got) - want - soak.maybe
        assert not strays, f"delivered but never sent whole: {sorted(strays)[:5]}"
        print(f"soak: {len(want)} stored messages delivered, {len(set(got) & soak.maybe)} of "
              f"{len(soak.maybe)} sent before a reset")
    finally:
        server.stop()
    bad = server.problems()
    assert not bad, "\n".join(bad) + "\n" + server.log_tails()
