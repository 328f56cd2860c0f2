# SPDX-License-Identifier: MIT
"""Several sm processes share one domain (issue 7, docs/link-protocol.md "Shards").

`[component "localhost"] shared = yes`: the router lets two `parleyd sm` processes (sm-1 and
sm-2, each with its own `[sm] name`) bind localhost at once, and sends each stanza for a user
to the shard chosen by rendezvous hashing of the user's bare JID (SHA-256, computed here in
Python the same way). One c2s, one shared sqlite store file (so that the c2s authenticates
every user), the muc in its own process.

Users on different shards subscribe, see presence and exchange messages; one gets a message
stored offline on its own shard; both share a room. A shard killed: its users get
<system-shutdown/>, the other shard's do not; they log in again (landing on the remaining
shard); the shard back: its users' sessions on the other shard end with <reset/> and their
next login lands on it again.

Split topology only (shards are separate processes); in `parleyd all` a single sm with a
`name` and a shared domain must work as before (test_one_shard_in_process).
"""

import hashlib
import os
import pathlib
import time

import pytest

import harness
import im
from harness import dump
from im import NS_DELAY, NS_STREAM, match, q, subscribe_both
from muc_util import enter, instant_room, room_jid

pytestmark = pytest.mark.slixmpp

DEFAULT_BINARY = pathlib.Path(__file__).resolve().parents[2] / "build/test/src/main/parleyd"
SHARDS = ("sm-1.localhost", "sm-2.localhost")
GONE_WITHIN = 2.0


def weight(shard, bare):
    """The rendezvous weight of docs/link-protocol.md: SHA-256(shard NUL bare)[:8]."""
    return int.from_bytes(hashlib.sha256(shard.encode() + b"\0" + bare.encode()).digest()[:8],
                          "big")


def owner(user, shards=SHARDS):
    bare = f"{user}@{im.DOMAIN}"
    return max(sorted(shards), key=lambda s: weight(s, bare))


# Two users of each shard (asserted, so a change of the hash cannot hide here).
ONE = ("alice", "carol")
TWO = ("dave", "grace")
assert all(owner(u) == SHARDS[0] for u in ONE) and all(owner(u) == SHARDS[1] for u in TWO)


class ShardServer(im.IMServer):
    """IMServer whose domain is served by the two shards (split topology), or by one sm with
    a shard name in `parleyd all`."""

    def _parley_config(self, *args, **kw):
        text = super()._parley_config(*args, **kw)
        head = f'[component "{im.DOMAIN}"]\nsecret_file = secrets/sm\n'
        assert head in text
        return text.replace(head, head + f"shared = yes\nbind = {', '.join(SHARDS)}\n")

    def shard_conf(self, i):
        return os.path.join(self.workdir, f"parley-sm{i + 1}.conf")

    def write_config(self):
        super().write_config()
        with open(self.conf_path, encoding="utf-8") as f:
            text = f.read()
        for i, name in enumerate(SHARDS):
            with open(self.shard_conf(i), "w", encoding="utf-8") as f:
                f.write(text.replace("[sm]\n", f"[sm]\nname = {name}\n"))
        if self.topology == "all":
            # One sm, with a shard name: the shared domain with a single shard.
            with open(self.conf_path, "w", encoding="utf-8") as f:
                f.write(text.replace("[sm]\n", f"[sm]\nname = {SHARDS[0]}\n"))

    def _shard_bound(self, router, i):
        return router.log_text().count(f"bound {SHARDS[i]}")

    def start_shard(self, i, router=None):
        router = router or self.proc_named("parleyd-router")
        before = self._shard_bound(router, i)
        p = self._proc(f"parleyd-sm{i + 1}", [self.parleyd, "--config", self.shard_conf(i), "sm"])
        self._wait(p, lambda: self._shard_bound(router, i) > before, f"bound {SHARDS[i]}")
        return p

    def _start_once(self):
        if self.topology != "split":
            return super()._start_once()
        self.procs = []
        up = lambda port: (lambda: harness.port_accepts(port))  # noqa: E731
        router = self._proc("parleyd-router", [self.parleyd, "--config", self.conf_path,
                                               "router"])
        self._wait(router, up(self.router_port), f"accepting on {self.router_port}")
        for i in range(len(SHARDS)):
            self.start_shard(i, router)
        c2s = self._proc("parleyd-c2s", [self.parleyd, "--config", self.conf_path, "c2s"])
        self._wait(c2s, up(self.port), f"accepting on the c2s port {self.port}")
        self._wait_soft(c2s, self._log_has(router, f"component {im.C2S_NAME} authenticated"))
        self._start_muc(router)

    def stop(self):
        order = {"parleyd-muc": -1, "parleyd-c2s": 0, "parleyd-sm1": 1, "parleyd-sm2": 1,
                 "parleyd-router": 2}
        for p in sorted(self.procs, key=lambda p: order.get(p.name, 0)):
            p.stop()
        self.procs = []

    def sessions_on(self, i):
        """The full JIDs whose sessions shard i started (its log)."""
        p = next(x for x in self.all_procs if x.name == f"parleyd-sm{i + 1}")
        return p.log_text()


@pytest.fixture
def shards(request, im_topology, tmp_path):
    """Factory: shards(**opts) -> a started ShardServer; stopped (and checked) at teardown."""
    if im.is_prosody():
        pytest.skip("Parley's sm shards: not for PARLEY_E2E_SERVER=prosody")
    if im_topology == "processes":
        pytest.skip("the supervisor starts one sm")
    binary = pathlib.Path(os.environ.get("PARLEYD") or DEFAULT_BINARY).resolve()
    made = []
    logs = []
    request.node.stash[harness.EXTRA_LOGS] = logs
    users = {u: f"{u}-pw" for u in ONE + TWO}

    def make(**opts):
        srv = ShardServer(binary, tmp_path / f"sh{len(made)}", im_topology, users=dict(users),
                          **opts)
        made.append(srv)
        try:
            srv.start()
        finally:
            logs[:] = [e for s in made for e in s.logs()]
        return srv

    yield make
    failures = []
    for srv in made:
        srv.stop()
        failures += srv.problems()
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


def online(pool, user):
    c = pool.client(user)
    c.roster_get()
    c.available()
    return c


def stream_error(c, timeout):
    err = c.recv(lambda el: el.tag == q(NS_STREAM, "error"), timeout=timeout)
    c.disconnected = True
    return harness.stream_error_condition(err)


def split_only(im_topology):
    if im_topology != "split":
        pytest.skip("two sm shards are two processes")


def test_users_on_two_shards(shards, im_topology):
    """alice (sm-1) and dave (sm-2): each session starts on its owner's shard only; they
    subscribe, see each other's presence and exchange messages; a message to grace (sm-2)
    while she is offline is stored and delivered with its delay when she logs in; alice and
    dave share a room."""
    split_only(im_topology)
    srv = shards(muc=True)
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        d = online(pool, "dave")
        assert f"session {a.jid} started" in srv.sessions_on(0)
        assert f"session {a.jid} started" not in srv.sessions_on(1)
        assert f"session {d.jid} started" in srv.sessions_on(1)
        assert f"session {d.jid} started" not in srv.sessions_on(0)
        subscribe_both(a, d)
        d.presence(status="away a bit", show="away")
        el = a.recv(match("presence", type="", frm=d.jid))
        assert el.findtext(q(im.NS_CLIENT, "status")) == "away a bit", dump(el)
        a.message(d.bare, "to the other shard", id="m1")
        el = d.recv(match("message", id="m1"))
        assert el.get("from") == a.jid and im.body_of(el) == "to the other shard", dump(el)
        d.message(a.jid, "and back", id="m2")
        el = a.recv(match("message", id="m2"))
        assert el.get("from") == d.jid, dump(el)
        # Offline, on grace's own shard.
        a.message(f"grace@{im.DOMAIN}", "while you were out", id="off")
        a.expect_silence(0.3, match("message", id="off", type="error"))
        g = pool.client("grace")
        g.available()
        el = g.recv(match("message", id="off"))
        assert el.get("from") == a.jid and el.find(q(NS_DELAY, "delay")) is not None, dump(el)
        assert f"session {g.jid} started" in srv.sessions_on(1)
        # A room on the muc, with occupants of both shards.
        r = room_jid("shards")
        instant_room(a, r, "a")
        enter(d, r, "d")
        a.drain(settle=0.2)
        d.drain()
        a.send_raw(f"<message to='{r}' type='groupchat' id='g1'><body>hi all</body></message>")
        for c in (a, d):
            el = c.recv(match("message", id="g1", frm=f"{r}/a"))
            assert im.body_of(el) == "hi all", dump(el)
    finally:
        pool.close()


def test_shard_killed_and_back(shards, im_topology):
    """kill -9 of sm-1: alice and carol (its users) get <system-shutdown/> within
    GONE_WITHIN; dave (sm-2) gets nothing and stays. alice logs in again: the router now
    sends her to sm-2, the only shard, and she reaches dave. sm-1 back: sm-2 ends alice's
    session with <reset/> (RFC 6120 §4.9.3.16), dave's stays; her next login is on sm-1."""
    split_only(im_topology)
    srv = shards()
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        c = online(pool, "carol")
        d = online(pool, "dave")
        subscribe_both(a, d)
        dead = srv.kill_proc("parleyd-sm1")
        for x in (a, c):
            left = max(0.05, dead + GONE_WITHIN - time.monotonic())
            assert stream_error(x, left) == "system-shutdown"
        d.expect_silence(0.3, lambda el: el.tag == q(NS_STREAM, "error"))
        # alice again: on sm-2 now (the shared store has her account and roster).
        log_before = srv.sessions_on(1).count("started")
        a2 = online(pool, "alice")
        assert srv.sessions_on(1).count(f"session {a2.jid} started") == 1
        assert srv.sessions_on(1).count("started") == log_before + 1
        a2.message(d.jid, "from the other shard", id="m3")
        el = d.recv(match("message", id="m3"))
        assert el.get("from") == a2.jid, dump(el)
        # sm-1 back: alice moves back to it, dave stays where he is.
        srv.start_shard(0)
        assert stream_error(a2, 5.0) == "reset"
        d.expect_silence(0.3, lambda el: el.tag == q(NS_STREAM, "error"))
        a3 = online(pool, "alice")
        assert f"session {a3.jid} started" in srv.sessions_on(0)
        d.message(a3.jid, "welcome back", id="m4")
        el = a3.recv(match("message", id="m4"))
        assert el.get("from") == d.jid, dump(el)
    finally:
        pool.close()


def test_one_shard_in_process(shards, im_topology):
    """`parleyd all` with a shared domain and one sm that has a shard name: it owns every
    user, and messages and presence flow as without shards."""
    if im_topology != "all":
        pytest.skip("the in-process case")
    srv = shards()
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        d = online(pool, "dave")
        subscribe_both(a, d)
        a.message(d.jid, "one shard", id="m5")
        el = d.recv(match("message", id="m5"))
        assert el.get("from") == a.jid, dump(el)
    finally:
        pool.close()
