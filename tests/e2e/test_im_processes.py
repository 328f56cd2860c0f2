# SPDX-License-Identifier: MIT
"""`parleyd all --processes` (issue 7): the supervisor and its children.

The supervisor starts `parleyd router`, then the sm, the muc and the c2s with the same
configuration, restarts a child that dies (backoff from 250 ms), and stops them in order on
SIGTERM; a child stops when the supervisor's end of its standard input closes, so none
outlives a supervisor killed with SIGKILL. The whole IM and MUC suites also run against this
topology (`--im-topology processes`); these tests cover what only it has.
"""

import os
import re
import socket
import subprocess
import time

import pytest

import harness
import im
from harness import dump
from im import DOMAIN, NS_STREAM, match, q, subscribe_both

pytestmark = pytest.mark.slixmpp

GONE_WITHIN = 2.0
BACK_WITHIN = 15.0  # a restart: backoff, an ASan build's start, the link handshake


def only_processes(im_topology):
    if im_topology != "processes":
        pytest.skip("the supervisor exists only in `parleyd all --processes`")


def online(pool, user, c2s2=False):
    c = pool.client(user, c2s2=c2s2)
    c.roster_get()
    c.available()
    return c


def gone(pid):
    """The process is no more (or a zombie waiting for its parent's wait)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.startswith("State:") and "Z" in line.split()[1] for line in f)
    except FileNotFoundError:
        return True


def wait_until(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {timeout}s")


def restarted(srv, command, old_pid, authenticated=None):
    """Waits (bounded) until the supervisor runs a new `parleyd COMMAND` and, when given,
    the router has logged that many authentications of that component name."""
    sup = srv.proc_named("parleyd-supervisor")
    wait_until(lambda: re.search(rf"parleyd {command} was killed by signal 9; restarting it in"
                                 r" \d+ ms", sup.log_text()), GONE_WITHIN, f"{command} noted")
    wait_until(lambda: srv.child_pid(command) != old_pid, BACK_WITHIN, f"{command} restarted")
    if authenticated is not None:
        name, count = authenticated
        wait_until(lambda: sup.log_text().count(f"component {name} authenticated") >= count,
                   BACK_WITHIN, f"{name} linked again")
    return srv.child_pid(command)


def test_children_restarted(make_im, im_topology):
    """kill -9 of the sm, then the c2s, then the router, each by pid: the supervisor starts
    it again and service comes back; while the sm is away clients get <system-shutdown/>,
    when a c2s dies its users' contacts see them leave."""
    only_processes(im_topology)
    srv = make_im(c2s2=True)
    sup = srv.proc_named("parleyd-supervisor")
    pool = im.IMPool(srv)
    try:
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        subscribe_both(a, b)

        sm = srv.child_pid("sm")
        links = sup.log_text().count(f"component {DOMAIN} authenticated")
        os.kill(sm, 9)
        dead = time.monotonic()
        for x in (a, b):
            err = x.recv(lambda el: el.tag == q(NS_STREAM, "error"),
                         timeout=max(0.05, dead + GONE_WITHIN - time.monotonic()))
            assert harness.stream_error_condition(err) == "system-shutdown", dump(err)
        restarted(srv, "sm", sm, (DOMAIN, links + 1))
        a = online(pool, "alice")
        b = online(pool, "bob", c2s2=True)
        a.recv(match("presence", type="", frm=b.jid))
        a.message(b.jid, "after the sm", id="m1")
        assert b.recv(match("message", id="m1")).get("from") == a.jid

        c2s = srv.c2s_pid()
        a_jid = a.jid
        os.kill(c2s, 9)
        a.disconnected = True
        b.recv(match("presence", type="unavailable", frm=a_jid), timeout=GONE_WITHIN)
        restarted(srv, "c2s", c2s)
        wait_until(lambda: harness.port_accepts(srv.port), BACK_WITHIN, "c2s accepting")
        a = online(pool, "alice")
        b.recv(match("presence", type="", frm=a.jid))

        router = srv.child_pid("router")
        os.kill(router, 9)
        restarted(srv, "router", router, (DOMAIN, links + 2))
        # The sessions go on: every component links again to the new router.
        deadline = time.monotonic() + BACK_WITHIN
        while True:
            a.message(b.jid, "after the router", id="m2")
            try:
                el = b.recv(match("message", id="m2"), timeout=1.0)
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
        assert el.get("from") == a.jid, dump(el)
    finally:
        pool.close()


def test_sigterm_stops_every_child(make_im, im_topology):
    """SIGTERM to the supervisor: it stops the children (muc first, router last), each
    stops cleanly, and it exits with 0."""
    only_processes(im_topology)
    srv = make_im(muc=True)
    sup = srv.proc_named("parleyd-supervisor")
    pids = {c: srv.child_pid(c) for c in ("router", "sm", "muc", "c2s")}
    assert sup.stop() == 0, sup.log_text()[-3000:]
    for command, pid in pids.items():
        assert gone(pid), f"parleyd {command} (pid {pid}) still running"
    text = sup.log_text()
    order = [text.index(f"parleyd {c} stopped") for c in ("muc", "c2s", "router")]
    assert order == sorted(order), text[-3000:]
    assert "killed" not in text.split("stopping the children", 1)[1], text[-3000:]


def test_supervisor_killed(make_im, im_topology):
    """SIGKILL to the supervisor: every child sees its standard input close and stops."""
    only_processes(im_topology)
    srv = make_im()
    pids = {c: srv.child_pid(c) for c in ("router", "sm", "c2s")}
    srv.kill_proc("parleyd-supervisor")
    for command, pid in pids.items():
        wait_until(lambda: gone(pid), 10.0, f"parleyd {command} (pid {pid}) gone")


def run_supervisor(srv, timeout=30):
    return subprocess.run([srv.parleyd, "--config", srv.conf_path, "all", "--processes"],
                          cwd=srv.workdir, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout, env=harness.sanitizer_env())


def test_needs_component_secrets(make_im, im_topology):
    """Every child links to the router over XEP-0114: a configuration without the sm's
    [component] section is refused at once, naming it, and nothing starts."""
    only_processes(im_topology)
    srv = make_im(start=False)
    srv.write_config()
    with open(srv.conf_path) as f:
        text = f.read()
    cut = re.sub(rf'\[component "{DOMAIN}"\][^\[]*', "", text)
    assert cut != text
    with open(srv.conf_path, "w") as f:
        f.write(cut)
    r = run_supervisor(srv)
    assert r.returncode == 1, r.stderr
    assert f'[component "{DOMAIN}"] with a secret' in r.stderr, r.stderr
    assert "started parleyd" not in r.stderr, r.stderr


def test_child_failing_to_start(make_im, im_topology):
    """A child that cannot start (its client port is taken) stops everything: exit 1, with
    the reason in the log, instead of restarting it forever."""
    only_processes(im_topology)
    srv = make_im(start=False)
    srv.write_config()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", srv.port))
        s.listen()
        r = run_supervisor(srv)
    assert r.returncode == 1, r.stderr
    assert "parleyd c2s exited with status 1 as it started: stopping" in r.stderr, r.stderr
    assert "parleyd router stopped" in r.stderr, r.stderr
