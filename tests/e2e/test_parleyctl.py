# SPDX-License-Identifier: MIT
"""parleyctl: accounts created, listed, changed and removed; passwords never stored."""
import os
import subprocess

import pytest


def ctl(parleyd_bin, conf, *args, password=None):
    binary = os.path.join(os.path.dirname(str(parleyd_bin)), "parleyctl")
    return subprocess.run([binary, "--config", str(conf), *args], input=password, text=True,
                          capture_output=True, timeout=30)


@pytest.mark.parametrize("backend", ["sqlite", "files"])
def test_account_lifecycle(parleyd_bin, tmp_path, backend):
    path = "data.db" if backend == "sqlite" else "data"
    conf = tmp_path / "parley.conf"
    conf.write_text(f"[storage]\nbackend = {backend}\npath = {path}\n")
    r = ctl(parleyd_bin, conf, "adduser", "juliet@localhost", password="wherefore-art-thou\n")
    assert r.returncode == 0, r.stderr
    r = ctl(parleyd_bin, conf, "adduser", "juliet@localhost", password="again\n")
    assert r.returncode == 1 and "already exists" in r.stderr
    assert ctl(parleyd_bin, conf, "adduser", "romeo@localhost", password="x\n").returncode == 0
    r = ctl(parleyd_bin, conf, "users")
    assert r.returncode == 0 and r.stdout.split() == ["juliet", "romeo"], r.stdout
    # The store holds SCRAM keys, never the password.
    stored = b""
    root = tmp_path / path
    for p in ([root] if root.is_file() else [q for q in root.rglob("*") if q.is_file()]):
        stored += p.read_bytes()
    assert b"wherefore-art-thou" not in stored
    assert b"scram-sha-256" in stored
    assert ctl(parleyd_bin, conf, "passwd", "juliet@localhost", password="new\n").returncode == 0
    r = ctl(parleyd_bin, conf, "passwd", "nobody@localhost", password="x\n")
    assert r.returncode == 1 and "no such account" in r.stderr
    assert ctl(parleyd_bin, conf, "deluser", "juliet@localhost").returncode == 0
    assert ctl(parleyd_bin, conf, "users").stdout.split() == ["romeo"]
    # No password: refused, nothing created.
    r = ctl(parleyd_bin, conf, "adduser", "mercutio@localhost", password="")
    assert r.returncode == 1
    assert ctl(parleyd_bin, conf, "users").stdout.split() == ["romeo"]
    r = ctl(parleyd_bin, conf, "adduser", "not-a-jid", password="x\n")
    assert r.returncode == 1 and "not an account JID" in r.stderr
