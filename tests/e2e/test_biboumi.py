# SPDX-License-Identifier: MIT
"""A third-party XEP-0114 component from Debian, biboumi (an IRC gateway), on parleyd's router."""

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

import harness
from harness import EXTRA_LOGS, random_secret

BIBOUMI = shutil.which("biboumi") or "/usr/bin/biboumi"
DOMAIN = "irc.localhost"

pytestmark = [
    pytest.mark.thirdparty,
    pytest.mark.slixmpp,
    pytest.mark.skipif(not os.access(BIBOUMI, os.X_OK),
                       reason="biboumi is not installed (apt install biboumi)"),
]


class Biboumi:
    def __init__(self, workdir, port, secret):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.cfg = os.path.join(workdir, "biboumi.cfg")
        self.log = os.path.join(workdir, "biboumi.log")
        self.out = os.path.join(workdir, "biboumi.out")
        with open(self.cfg, "w", encoding="utf-8") as f:
            f.write("\n".join([
                f"hostname={DOMAIN}",
                f"password={secret}",
                "xmpp_server_ip=127.0.0.1",
                f"port={port}",
                f"db_name={os.path.join(workdir, 'biboumi.sqlite')}",
                f"log_file={self.log}",
                "log_level=0",
                "identd_port=0",
                f"policy_directory={workdir}",
                "realname_customization=true",
                "realname_from_jid=false",
                "admin=",
                "ca_file=",
                "outgoing_bind=",
            ]) + "\n")
        self.proc = None

    def start(self):
        with open(self.out, "ab") as out:
            self.proc = subprocess.Popen([BIBOUMI, self.cfg], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT, cwd=self.dir,
                                         start_new_session=True)

    def text(self):
        parts = []
        for p in (self.log, self.out):
            try:
                with open(p, encoding="utf-8", errors="replace") as f:
                    parts.append(f.read())
            except FileNotFoundError:
                pass
        return "\n".join(parts)

    def wait_text(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return True
            if self.proc.poll() is not None:
                return needle in self.text()
            time.sleep(0.05)
        return False

    def stop(self, timeout=5.0):
        """SIGTERM by PID, bounded wait, then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)


def disco_iq(comp):
    query = ET.Element(f"{{{harness.NS_DISCO_INFO}}}query")
    return comp.iq(DOMAIN, "get", payload=[query], frm="tester@a.test/e2e")


@pytest.fixture
def biboumi_setup(request, make_server, tmp_path):
    bib_secret = secrets.token_hex(16)  # biboumi's config has no quoting: keep it plain
    srv = make_server(components={"a.test": random_secret(), DOMAIN: bib_secret})
    bib = Biboumi(str(tmp_path / "biboumi"), srv.port, bib_secret)
    request.node.stash.setdefault(EXTRA_LOGS, []).extend(
        [("biboumi log", bib.log), ("biboumi stdout", bib.out)])
    bib.start()
    pool = harness.SlixPool(srv.port)
    yield srv, bib, pool
    pool.close()
    bib.stop()


def test_biboumi_handshake_and_disco(biboumi_setup):
    srv, bib, pool = biboumi_setup
    assert bib.wait_text("Authenticated with the XMPP server", 10.0), \
        f"biboumi did not authenticate with parleyd:\n{harness.tail(bib.text(), 30)}"
    assert bib.proc.poll() is None, "biboumi exited"
    assert srv.wait_log(lambda t: DOMAIN in t, timeout=2.0), "the router did not log biboumi's link"

    a = pool.component("a.test", srv.secret("a.test"))
    iq = disco_iq(a)
    answer = a.iq_send(iq, timeout=5.0)
    assert answer["type"] == "result", harness.dump(answer.xml)
    assert answer["from"].full == DOMAIN
    assert answer["to"].full == "tester@a.test/e2e"
    assert answer["id"] == iq["id"]
    query = answer.xml.find(f"{{{harness.NS_DISCO_INFO}}}query")
    assert query is not None, harness.dump(answer.xml)
    identities = [(i.get("category"), i.get("type"))
                  for i in query.findall(f"{{{harness.NS_DISCO_INFO}}}identity")]
    assert ("conference", "irc") in identities, harness.dump(answer.xml)
    features = {f.get("var") for f in query.findall(f"{{{harness.NS_DISCO_INFO}}}feature")}
    assert harness.NS_DISCO_INFO in features, harness.dump(answer.xml)

    # Once biboumi is gone, its domain is configured but not connected.
    bib.stop()
    assert bib.proc.returncode is not None
    deadline = time.monotonic() + 5.0
    while True:
        iq = disco_iq(a)
        try:
            answer = a.iq_send(iq, timeout=1.0)
            if answer["type"] == "error":
                break
        except asyncio.TimeoutError:
            pass  # went to the closing link before the router noticed
        assert time.monotonic() < deadline, "the router still routes to the stopped biboumi"
        time.sleep(0.1)
    assert harness.stanza_error(answer.xml)[:2] == ("cancel", "service-unavailable"), \
        harness.dump(answer.xml)
