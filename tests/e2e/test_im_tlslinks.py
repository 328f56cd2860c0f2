# SPDX-License-Identifier: MIT
"""TLS on the router's component links (issue 7): [router] certificate and key make the
component port speak TLS from the first byte (XEP-0114 has no STARTTLS); components link with
[router] tls = yes and verify the router's certificate (ca_file, server_name). Clients talk
across c2s -> router -> sm over those links; a component that cannot verify the router, or
that speaks plain TCP to it, never links, says why in its log, and keeps retrying."""

import json
import socket
import ssl
import time

import pytest

import harness
from harness import HOST, dump
from im import C2S_NAME, DOMAIN, IMPool, body_of, match

pytestmark = pytest.mark.slixmpp

A, B = (f"{u}@{DOMAIN}" for u in ("alice", "bob"))
WAIT = 10.0


def wait_for(pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"not {what} within {timeout}s")


def router_log(srv):
    name = {"all": "parleyd-all", "processes": "parleyd-supervisor"}.get(srv.topology,
                                                                        "parleyd-router")
    return srv.proc_named(name).log_text()


def tls_handshake(srv, cafile, server_name):
    """A raw TLS connection to the component port: (version, the peer certificate's SANs)."""
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection((HOST, srv.router_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=server_name) as tls:
            return tls.version(), tls.getpeercert().get("subjectAltName", ())


def talk(srv):
    """alice and bob log in and exchange a message (the sm answers roster and bind)."""
    pool = IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        a.roster_get()
        a.message(b.jid, "over TLS links", id="tls-1")
        got = b.recv(match("message", id="tls-1"))
        assert got.get("from") == a.jid and body_of(got) == "over TLS links", dump(got)
    finally:
        pool.close()


def test_clients_talk_over_tls_links(make_im, im_topology):
    """Every topology with a TLS router: clients log in and talk. Split and --processes: the
    router logs each component authenticated over TLS 1.3; `parleyd all` links in process (unaffected) but its port still speaks TLS
    with the CA-signed certificate, and plain bytes to it get no XMPP answer."""
    srv = make_im(router_tls=True)
    talk(srv)
    version, sans = tls_handshake(srv, f"{srv.workdir}/certs/ca.crt", "router.localhost")
    assert version in ("TLSv1.2", "TLSv1.3"), version
    assert ("DNS", "router.localhost") in sans and ("IP Address", "127.0.0.1") in sans, sans
    # Verified against 127.0.0.1 too, the default server_name of a component.
    assert tls_handshake(srv, f"{srv.workdir}/certs/ca.crt", HOST)[0] == version
    with socket.create_connection((HOST, srv.router_port), timeout=5) as s:
        s.sendall(harness.stream_header(DOMAIN).encode())
        s.settimeout(5)
        data = b""
        try:
            while chunk := s.recv(4096):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert b"<stream" not in data and b"handshake" not in data, data
    # parleyctl status reads the same [router] tls and ca_file, and verifies the router.
    r = srv.parleyctl("--timeout", "5", "--json", "status")
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    names = {n for link in json.loads(r.stdout)["links"] for n in link["names"]}
    assert {DOMAIN, C2S_NAME} <= names, r.stdout
    bad = srv.write_variant("parley-badca.conf", ca_file="certs/other-ca.crt")
    r = srv.parleyctl("--timeout", "5", "status", conf=bad)
    assert r.returncode == 1 and "TLS with the router" in r.stderr, r.stderr
    if im_topology == "all":
        return
    log = router_log(srv)
    for name in (DOMAIN, C2S_NAME):
        assert f"component {name} authenticated (TLS 1.3)" in log, harness.tail(log)


def restart_sm_with(srv, conf, name):
    """Split topology: replaces the sm process by one started with the config conf."""
    srv.kill_proc("parleyd-sm")
    return srv._proc(name, [srv.parleyd, "--config", conf, "sm"])


def assert_never_links(srv, sm, reason):
    """The sm process with a bad config retries (logging reason each time) and never links;
    meanwhile a client cannot get a session (the router has no sm to hand it to)."""
    router = srv.proc_named("parleyd-router")
    before = router.log_text().count(f"component {DOMAIN} authenticated")
    wait_for(lambda: sm.log_text().count(reason) >= 2, f"retried twice ({reason})")
    assert sm.log_text().count("reconnecting to") >= 2, harness.tail(sm.log_text())
    assert router.log_text().count(f"component {DOMAIN} authenticated") == before
    assert "link localhost: up" not in sm.log_text(), harness.tail(sm.log_text())
    pool = IMPool(srv)
    try:
        with pytest.raises(Exception):
            pool.client("alice", timeout=4.0)
    finally:
        pool.close()
    assert sm.alive()


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name", "plain"])
def test_component_that_cannot_link(make_im, im_topology, case):
    """Split topology: the sm restarted with a CA that did not sign the router's certificate,
    with a server_name the certificate does not carry, or with tls = no against the TLS
    router: it logs why on every attempt, retries with its backoff, never links, and clients
    cannot log in meanwhile. Started again with the right config, it links and clients talk."""
    if im_topology != "split":
        pytest.skip("one process per component only")
    srv = make_im(router_tls=True)
    variant = {"wrong_ca": {"ca_file": "certs/other-ca.crt"},
               "wrong_name": {"server_name": "other.localhost"},
               "plain": {"tls": "no"}}[case]
    reason = {"wrong_ca": "certificate verify failed: unable to get local issuer certificate",
              "wrong_name": "certificate verify failed: hostname mismatch",
              "plain": "closed the connection before its stream header"}[case]
    conf = srv.write_variant(f"parley-{case}.conf", **variant)
    sm = restart_sm_with(srv, conf, "parleyd-sm-bad")
    assert_never_links(srv, sm, reason)
    if case == "plain":
        log = srv.proc_named("parleyd-router").log_text()
        assert "wrong version number" in log or "http request" in log.lower() or \
            "TLS handshake" in log, harness.tail(log)
    sm.stop()
    srv.procs.remove(sm)
    srv.start_sm()
    talk(srv)


def test_tls_component_to_plain_router(make_im, im_topology):
    """Split topology, a plain router: an sm with tls = yes fails its TLS handshake (logged,
    with OpenSSL's reason), retries, and never links; it does not hang past the handshake."""
    if im_topology != "split":
        pytest.skip("one process per component only")
    srv = make_im()
    conf = srv.write_variant("parley-tls.conf", tls="yes", ca_file="certs/localhost.crt",
                             handshake_timeout="2s")
    sm = restart_sm_with(srv, conf, "parleyd-sm-tls")
    assert_never_links(srv, sm, "TLS handshake")
    sm.stop()
    srv.procs.remove(sm)
    srv.start_sm()
    talk(srv)
