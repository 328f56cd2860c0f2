# SPDX-License-Identifier: MIT
"""Accounts managed with parleyctl while the server runs: new accounts log in at once, a
changed password takes effect, and deleting an account removes its roster and its offline
messages with it (a new account of the same name starts empty)."""
import os
import sqlite3
import subprocess
import time

import pytest

import harness
import im
from harness import dump
from im import DOMAIN, match, roster_items, skip_prosody

pytestmark = skip_prosody("parleyctl is Parley's tool")


def ctl(srv, *args, password=None):
    argv = [srv._tool("parleyctl"), "--config", srv.conf_path, *args]
    r = subprocess.run(argv, input=password, capture_output=True, text=True, timeout=30,
                       cwd=srv.workdir, env=harness.sanitizer_env())
    assert harness.sanitizer_report(r.stderr) is None, r.stderr
    return r


def test_adduser_and_passwd_while_running(im_server, clients, raw_client):
    im_server.adduser("dave", "first-password")
    d = clients("dave", available=True)
    assert d.jid.startswith(f"dave@{DOMAIN}/")
    r = ctl(im_server, "passwd", f"dave@{DOMAIN}", password="second-password\n")
    assert r.returncode == 0, r.stderr
    c = raw_client()
    c.open()
    c.starttls()
    assert c.sasl_failure(c.auth_scram("dave", "first-password", "sha256")) == "not-authorized"
    el = c.auth_scram("dave", "second-password", "sha256")
    assert el.tag == im.q(im.NS_SASL, "success"), dump(el)


def stored(srv, user):
    """What the store holds for user: (roster items, offline messages), read directly."""
    if srv.opts["storage"] == "sqlite":
        db = sqlite3.connect(os.path.join(srv.workdir, "data", "parley.db"), timeout=5)
        try:
            def count(table):
                return db.execute(f"SELECT count(*) FROM {table} t JOIN users u ON "
                                  "u.id = t.user_id WHERE u.name = ?", (user,)).fetchone()[0]
            return count("roster_items"), count("offline_messages")
        finally:
            db.close()
    folder = os.path.join(srv.workdir, "data", "store", user)

    def lines(name, tag):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            return 0
        with open(path, encoding="utf-8") as f:
            return sum(1 for line in f if line.startswith(tag + "\t"))
    return lines("roster", "item"), lines("offline", "message")


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_deluser_removes_roster_and_offline(make_im, storage):
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        b.roster_get()
        b.roster_set(f"carol@{DOMAIN}", name="Carol", groups=["Friends"])
        b.disconnect()
        time.sleep(0.5)  # the sm ends bob's session: what follows is for an offline bob
        a.message(f"bob@{DOMAIN}", "for the old bob", id="old-bob")
        a.expect_silence(0.5, match("message", type="error"))
        assert stored(srv, "bob") == (1, 1)
        r = ctl(srv, "deluser", f"bob@{DOMAIN}")
        assert r.returncode == 0, r.stderr
        assert "bob" not in ctl(srv, "users").stdout.split()
        assert stored(srv, "bob") == (0, 0)
        # Gone: a message for bob is now for nobody.
        a.message(f"bob@{DOMAIN}", "anyone?", id="no-bob")
        err = a.recv(match("message", type="error", id="no-bob"))
        assert im.error_of(err)[1] == "service-unavailable", dump(err)
        # A new bob starts with nothing of the old one's.
        srv.adduser("bob", "new-bob")
        nb = pool.client("bob")
        assert roster_items(nb.roster_get()) == {}
        nb.presence()
        nb.expect_silence(1.0, match("message", id="old-bob"))
    finally:
        pool.close()
