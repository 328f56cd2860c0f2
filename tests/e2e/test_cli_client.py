# SPDX-License-Identifier: MIT
"""A Debian command-line client (go-sendxmpp) sends a message to a logged-in slixmpp user."""

import shutil
import subprocess

import pytest

from im import DOMAIN, body_of, match

pytestmark = pytest.mark.thirdparty

GO_SENDXMPP = shutil.which("go-sendxmpp")


@pytest.mark.skipif(GO_SENDXMPP is None,
                    reason="go-sendxmpp is not installed (scripts/install-deps.sh test)")
@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
def test_go_sendxmpp_message(clients, im_server, tmp_path, direct_tls):
    bob = clients("bob", resource="reader", available=True)
    port = im_server.tls_port if direct_tls else im_server.port
    text = "hello from go-sendxmpp \u00e9"
    argv = [GO_SENDXMPP, "-u", f"alice@{DOMAIN}", "-p", im_server.users["alice"],
            "-j", f"127.0.0.1:{port}", "-n", "--timeout", "10", "-r", "cli"]
    if direct_tls:
        argv.append("-t")
    argv.append(f"bob@{DOMAIN}")
    # The rc file go-sendxmpp would read lives in HOME: a private, empty one.
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    r = subprocess.run(argv, input=text + "\n", capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 0, f"go-sendxmpp failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    got = bob.recv(match("message", frm=f"alice@{DOMAIN}/*"), timeout=10)
    assert body_of(got).strip() == text, got
    assert got.get("to") == f"bob@{DOMAIN}"
