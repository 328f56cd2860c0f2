# SPDX-License-Identifier: MIT
"""Harness of the IM suite (test_im_*.py): a whole XMPP server and clients that log in to it.

- IMServer: Parley as `parleyd all` (one process) or "split" (`parleyd router`, `parleyd sm`,
  `parleyd c2s`), with its own folder, config, self-signed certificate, secrets and accounts.
- IMPool / IMClient: slixmpp's ClientXMPP (an independent client implementation) driven from
  synchronous test code; every incoming element is recorded, tests wait for one that matches.
- RawClient: a hand-written client over a socket + the ssl module, for SASL and stream
  details slixmpp hides (exact failures, retries on one stream, STARTTLS ordering).

A developer tool: PARLEY_E2E_SERVER=prosody runs the same tests against Prosody (Debian's
package; `scripts/install-deps.sh test` installs it without starting a system service), a
mature RFC 6120/6121 server, to check the tests themselves. Prosody then runs from a private
config in the test's folder (c2s on free loopback ports, STARTTLS required, internal_hashed
accounts made with `prosodyctl register`); the topology does not apply. Where Prosody departs
from the RFCs, the test follows the RFC and is marked xfail for prosody only, with the reason;
what Prosody lacks (offline limit, SCRAM-SHA-256, auth attempt limit) is skipped there.

Running (from the repository root; Debian's python3, python3-pytest, python3-slixmpp):

    PARLEYD=build/test/src/main/parleyd /usr/bin/python3 -m pytest -q tests/e2e/test_im_*.py \
        tests/e2e/test_cli_client.py                     # both topologies
    ... --im-topology split                              # only router + sm + c2s processes
    ... --im-topology processes                          # only `parleyd all --processes`
    PARLEY_E2E_SERVER=prosody /usr/bin/python3 -m pytest -q tests/e2e/test_im_*.py

Each test gets a fresh server in its own folder (pytest's tmp_path: config, certs/, data/,
secrets/, one *.stderr.log per process), with the accounts alice, bob and carol (random
passwords, in IMServer.users).

Everything is bounded in time: no call waits longer than the timeout it is given.
"""

import asyncio
import base64
import copy
import hashlib
import hmac
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import time
import xml.etree.ElementTree as ET
from collections import deque
from xml.sax.saxutils import escape, quoteattr

import pytest

import harness
from harness import HOST, dump, local, new_id, ns_of

SERVER_KIND = os.environ.get("PARLEY_E2E_SERVER", "parley").strip().lower() or "parley"
DOMAIN = "localhost"
C2S_NAME = "c2s-1.localhost"
C2S2_NAME = "c2s-2.localhost"  # the second c2s process of IMServer(c2s2=True)
MUC_DOMAIN = "conference.localhost"  # the muc component of IMServer(muc=True)
CONTROL_NAME = "parleyctl.localhost"  # the control component parleyctl status logs in as

NS_CLIENT = "jabber:client"
NS_STREAM = harness.NS_STREAM
NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_ROSTER = "jabber:iq:roster"
NS_VERSION = "jabber:iq:version"
NS_PING = "urn:xmpp:ping"
NS_TIME = "urn:xmpp:time"
NS_DELAY = "urn:xmpp:delay"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items"
NS_STANZAS = harness.NS_STANZAS_ERR
NS_STREAMS = harness.NS_STREAMS_ERR

START_TIMEOUT = 20.0
STOP_TIMEOUT = harness.STOP_TIMEOUT
DEFAULT_USERS = ("alice", "bob", "carol")
# The store of every IM server a test does not choose one for: PARLEY_E2E_STORAGE=files runs
# the whole suite on the plain-files backend (`make test` runs it on both).
DEFAULT_STORAGE = os.environ.get("PARLEY_E2E_STORAGE", "sqlite")


def q(ns, name):
    """An expanded (Clark) name: q(NS_CLIENT, 'message') -> '{jabber:client}message'."""
    return f"{{{ns}}}{name}"


def is_prosody():
    return SERVER_KIND == "prosody"


def xfail_prosody(reason):
    """Marks a test that follows the RFC where Prosody does not."""
    return pytest.mark.xfail(is_prosody(), reason=f"Prosody: {reason}", strict=True)


def skip_prosody(reason):
    """Skips a test of a Parley feature that Prosody has not (a limit, a mechanism)."""
    return pytest.mark.skipif(is_prosody(), reason=f"Prosody: {reason}")


# ---------------------------------------------------------------------------
# Processes


class Proc:
    """One daemon process: started with its stderr in a file, stopped by PID (SIGTERM)."""

    def __init__(self, name, argv, cwd, log_path, env=None, sanitized=True):
        self.name, self.argv, self.cwd, self.log_path = name, argv, cwd, log_path
        self.env = env
        # Parley's processes are checked strictly; the reference server (Prosody) only for
        # starting: it sometimes lingers for seconds after logging "Shutdown complete".
        self.sanitized = sanitized
        self.proc = None
        self.returncode = None
        self.killed = False
        self.died_early = False

    def start(self):
        with open(self.log_path, "ab") as err:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=self.cwd,
                env=self.env, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM by PID, a bounded wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is not None:
            if self.returncode is None:
                self.died_early = True
        else:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self.returncode = self.proc.returncode
        return self.returncode

    def log_text(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def problems(self):
        found = []
        who = f"{self.name} (pid {self.pid})"
        if not self.sanitized:
            return found
        if self.killed:
            found.append(f"{who} did not exit within {STOP_TIMEOUT}s of SIGTERM; it was killed")
        elif self.died_early:
            found.append(f"{who} exited by itself with {self.proc.returncode} during the test")
        elif self.returncode not in (None, 0):
            found.append(f"{who} exited with {self.returncode}, expected 0 after SIGTERM")
        marker = harness.sanitizer_report(self.log_text())
        if marker:
            found.append(f"sanitizer report in {who}'s stderr ({marker!r})")
        return found


def wait_ready(proc, ready, what, log_tails, timeout=START_TIMEOUT):
    """Polls ready() until it is true (bounded); fails at once if proc exits first, with the
    logs log_tails() gives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited with {proc.proc.returncode} before"
                                 f" {what}\n{log_tails()}")
        if ready():
            return
        time.sleep(0.02)
    raise AssertionError(f"{proc.name}: not {what} within {timeout}s\n{log_tails()}")


def make_cert(folder, newkey="rsa:2048"):
    """A self-signed certificate for localhost (as scripts/make-default-config.sh makes);
    newkey is openssl's -newkey ("ed25519": a signature without a separate hash)."""
    os.makedirs(folder, exist_ok=True)
    crt, key = os.path.join(folder, "localhost.crt"), os.path.join(folder, "localhost.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", newkey, "-nodes", "-days", "30",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,DNS:*.localhost",
         "-keyout", key, "-out", crt],
        check=True, capture_output=True, timeout=30)
    return crt, key


def make_ca(folder, name="ca"):
    """A small certificate authority for tests: folder/NAME.crt and NAME.key."""
    os.makedirs(folder, exist_ok=True)
    crt, key = os.path.join(folder, f"{name}.crt"), os.path.join(folder, f"{name}.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "30", "-subj", f"/CN=Parley test {name}",
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", key, "-out", crt],
        check=True, capture_output=True, timeout=30)
    return crt, key


def make_signed_cert(folder, ca, name, san):
    """A server certificate for name signed by ca (crt, key), with subjectAltName san
    (e.g. "DNS:router.localhost,IP:127.0.0.1"): folder/NAME.crt and NAME.key."""
    crt, key = os.path.join(folder, f"{name}.crt"), os.path.join(folder, f"{name}.key")
    csr, ext = os.path.join(folder, f"{name}.csr"), os.path.join(folder, f"{name}.ext")
    with open(ext, "w") as f:
        f.write(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n")
    subprocess.run(
        ["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-subj", f"/CN={name}", "-keyout", key, "-out", csr],
        check=True, capture_output=True, timeout=30)
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
         "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", crt],
        check=True, capture_output=True, timeout=30)
    return crt, key


class IMServer:
    """A whole IM server for the domain localhost: Parley (topology "all", "split" — one
    process per component, started by the test — or "processes": `parleyd all --processes`,
    whose supervisor starts them) or Prosody.

    users maps a user name to its password (created before start). opts: offline_max,
    max_auth_attempts, require_tls, storage ("sqlite" or "files"), log_level, registration
    (in-band, XEP-0077), registration_per_ip, sm_disable (a list of sm modules), c2s_extra
    (more [c2s] keys, e.g. {"ping_interval": "500ms"}), sm_extra (more [sm] keys, e.g.
    {"vcard_max_size": "2K"}), auth_delay (the failed-authentication delay: off unless a test
    sets it, so that tests of wrong passwords do not wait), components (names of more XEP-0114
    components the router takes, e.g. a stand-in for a remote server; the secret of each is
    component_secret(name)), muc (the multi-user chat component at conference.localhost: in
    `parleyd all`, or its own `parleyd muc` process in the split topology), muc_extra (more
    [muc] keys, e.g. {"max_occupants": "3"}), prosody_components (Prosody only: XEP-0114
    components it takes on router_port, name -> secret). kind "prosody" makes a Prosody server
    whatever PARLEY_E2E_SERVER says. router_tls: the router's component port speaks TLS
    with a certificate for router.localhost and 127.0.0.1 signed by a CA made here
    (certs/ca.crt; certs/other-ca.crt is a second CA that signed nothing of ours), and every
    component links with [router] tls = yes, verifying it against certs/ca.crt. router_extra:
    more (or other) [router] keys, e.g. {"server_name": "x.localhost"}.
    """

    def __init__(self, parleyd, workdir, topology, users=None, kind=None, **opts):
        self.kind = kind or ("prosody" if is_prosody() else "parley")
        self.parleyd = str(parleyd) if parleyd else None
        self.workdir = str(workdir)
        self.topology = topology if self.kind == "parley" else "prosody"
        self.users = dict(users if users is not None
                          else {u: f"{u}-{secrets.token_hex(6)}" for u in DEFAULT_USERS})
        self.opts = {"offline_max": 100, "max_auth_attempts": 3, "require_tls": True,
                     "storage": DEFAULT_STORAGE, "log_level": "debug", "registration": False,
                     "registration_per_ip": 3, "sm_disable": (), "c2s_extra": {},
                     "auth_delay": "0", "c2s2": False, "sm_extra": {}, "components": (),
                     "muc": False, "muc_extra": {}, "prosody_components": {},
                     "control": True, "router_tls": False, "router_extra": {}}
        self.opts.update(opts)
        self.procs = []
        self.all_procs = []  # every process started, for the final check
        self.port = self.tls_port = self.router_port = None
        os.makedirs(self.workdir, exist_ok=True)
        name = "prosody.cfg.lua" if self.kind == "prosody" else "parley.conf"
        self.conf_path = os.path.join(self.workdir, name)
        self.cert, self.key = make_cert(os.path.join(self.workdir, "certs"))
        if self.opts["router_tls"]:
            certs = os.path.join(self.workdir, "certs")
            ca = make_ca(certs, "ca")
            make_ca(certs, "other-ca")
            make_signed_cert(certs, ca, "router", "DNS:router.localhost,IP:127.0.0.1")
        os.makedirs(os.path.join(self.workdir, "data"), exist_ok=True)
        if self.kind == "parley":
            os.makedirs(os.path.join(self.workdir, "secrets"), exist_ok=True)
            for name in ("sm", "c2s", "c2s2", "muc", "parleyctl", *self.opts["components"]):
                with open(os.path.join(self.workdir, "secrets", name), "w") as f:
                    f.write(secrets.token_hex(16) + "\n")
        self._pick_ports()
        self.write_config()
        for user, password in self.users.items():
            self.adduser(user, password)

    # -- configuration ------------------------------------------------------

    def _pick_ports(self):
        self.port, self.tls_port, self.router_port = (harness.free_port() for _ in range(3))
        self.port2, self.tls_port2 = (harness.free_port() for _ in range(2))

    @property
    def conf2_path(self):
        """The config of the second c2s process (c2s2=True): another name and ports."""
        return os.path.join(self.workdir, "parley-c2s2.conf")

    def write_config(self):
        text = self._prosody_config() if self.kind == "prosody" else self._parley_config()
        with open(self.conf_path, "w", encoding="utf-8") as f:
            f.write(text)
        if self.kind == "parley" and self.opts["c2s2"]:
            with open(self.conf2_path, "w", encoding="utf-8") as f:
                f.write(self._parley_config(C2S2_NAME, self.port2, self.tls_port2))

    def _parley_config(self, c2s_name=C2S_NAME, port=None, tls_port=None):
        o = self.opts
        port = self.port if port is None else port
        tls_port = self.tls_port if tls_port is None else tls_port
        c2s2 = (f'[component "{C2S2_NAME}"]\nsecret_file = secrets/c2s2\n'
                if o["c2s2"] else "")
        storage_path = "data/parley.db" if o["storage"] == "sqlite" else "data/store"
        c2s2 += "".join(f'[component "{n}"]\nsecret_file = secrets/{n}\n'
                        for n in o["components"])
        if o["control"]:
            # `parleyctl status` asks the router and the components as this component.
            c2s2 += (f'[component "{CONTROL_NAME}"]\nsecret_file = secrets/parleyctl\n'
                     "control = yes\n")
        muc = ""
        if o["muc"]:
            c2s2 += f'[component "{MUC_DOMAIN}"]\nsecret_file = secrets/muc\n'
            muc = f"[muc]\nname = {MUC_DOMAIN}\n" + "".join(
                f"{k} = {v}\n" for k, v in o["muc_extra"].items())
        return f"""# Generated by tests/e2e/im.py
[log]
level = {o['log_level']}

[router]
{self._router_keys()}

[component "{DOMAIN}"]
secret_file = secrets/sm

[component "{C2S_NAME}"]
secret_file = secrets/c2s

{c2s2}
[c2s]
name = {c2s_name}
domain = {DOMAIN}
listen = {HOST}:{port}
listen_tls = {HOST}:{tls_port}
certificate = certs/localhost.crt
key = certs/localhost.key
require_tls = {'yes' if o['require_tls'] else 'no'}
max_auth_attempts = {o['max_auth_attempts']}
registration = {'yes' if o['registration'] else 'no'}
registration_per_ip = {o['registration_per_ip']}
auth_delay = {o['auth_delay']}
{''.join(f"{k} = {v}" + chr(10) for k, v in o['c2s_extra'].items())}
[sm]
domain = {DOMAIN}
offline_max = {o['offline_max']}
disable = {', '.join(o['sm_disable']) or '""'}
{''.join(f"{k} = {v}" + chr(10) for k, v in o['sm_extra'].items())}
{muc}
[storage]
backend = {o['storage']}
path = {storage_path}
"""

    def _router_keys(self):
        keys = {"listen": f"{HOST}:{self.router_port}"}
        if self.opts["router_tls"]:
            keys.update({"certificate": "certs/router.crt", "key": "certs/router.key",
                         "tls": "yes", "ca_file": "certs/ca.crt"})
        keys.update(self.opts["router_extra"])
        return "".join(f"{k} = {v}\n" for k, v in keys.items())

    def write_variant(self, name, **router_extra):
        """Writes a copy of the config with other [router] keys (e.g. ca_file, server_name,
        tls) to NAME in the work folder, for one process; returns its path."""
        saved = self.opts["router_extra"]
        self.opts["router_extra"] = {**saved, **router_extra}
        try:
            text = self._parley_config()
        finally:
            self.opts["router_extra"] = saved
        path = os.path.join(self.workdir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def _prosody_config(self):
        w = self.workdir
        components = "".join(f'Component "{name}"\ncomponent_secret = "{secret}"\n'
                             for name, secret in self.opts["prosody_components"].items())
        return f"""-- Generated by tests/e2e/im.py (PARLEY_E2E_SERVER=prosody)
run_as_root = true
pidfile = "{w}/prosody.pid"
data_path = "{w}/data"
log = {{ debug = "{w}/prosody.log" }}
interfaces = {{ "{HOST}" }}
c2s_ports = {{ {self.port} }}
c2s_direct_tls_ports = {{ {self.tls_port} }}
s2s_ports = {{ }}
component_ports = {{ {self.router_port if self.opts['prosody_components'] else ''} }}
component_interfaces = {{ "{HOST}" }}
http_ports = {{ }}
https_ports = {{ }}
c2s_require_encryption = {'true' if self.opts['require_tls'] else 'false'}
allow_unencrypted_plain_auth = false
authentication = "internal_hashed"
storage = "internal"
modules_enabled = {{ "roster", "saslauth", "tls", "disco", "ping", "version", "time", "offline",
                    "register" }}
allow_registration = {'true' if self.opts['registration'] else 'false'}
registration_whitelist = {{ }}
registration_throttle_max = {self.opts['registration_per_ip']}
registration_throttle_period = 600
modules_disabled = {{ "s2s" }}
VirtualHost "{DOMAIN}"
ssl = {{ certificate = "{self.cert}", key = "{self.key}" }}
{components}"""

    def _tool(self, name):
        return os.path.join(os.path.dirname(self.parleyd), name)

    def component_secret(self, name):
        """The secret of one of the extra components (opts components)."""
        with open(os.path.join(self.workdir, "secrets", name)) as f:
            return f.read().strip()

    def adduser(self, user, password):
        """Creates user@localhost with parleyctl (password on stdin) or prosodyctl."""
        if self.kind == "prosody":
            argv = ["prosodyctl", "--config", self.conf_path, "register", user, DOMAIN, password]
            r = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                               stdin=subprocess.DEVNULL)
        else:
            argv = [self._tool("parleyctl"), "--config", self.conf_path, "adduser",
                    f"{user}@{DOMAIN}"]
            r = subprocess.run(argv, input=password + "\n", capture_output=True, text=True,
                               timeout=30, cwd=self.workdir, env=harness.sanitizer_env())
        assert r.returncode == 0, f"{' '.join(argv[:5])} failed ({r.returncode}): {r.stderr}"
        if self.kind == "parley":
            assert harness.sanitizer_report(r.stderr) is None, r.stderr
        self.users[user] = password

    def jid(self, user):
        return f"{user}@{DOMAIN}"

    def client_address(self, c2s2=False, direct_tls=False):
        """(host, port) where a client connects: the first or the second c2s, STARTTLS or
        direct TLS. netns.HostSite answers the same for c2s processes on other hosts."""
        if c2s2:
            return HOST, self.tls_port2 if direct_tls else self.port2
        return HOST, self.tls_port if direct_tls else self.port

    def parleyctl(self, *args, timeout=30, conf=None):
        """Runs parleyctl --config CONF ARGS...; returns the CompletedProcess (text), after
        checking that it left no sanitizer report."""
        argv = [self._tool("parleyctl"), "--config", conf or self.conf_path, *args]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           cwd=self.workdir, env=harness.sanitizer_env(),
                           stdin=subprocess.DEVNULL)
        assert harness.sanitizer_report(r.stderr) is None, r.stderr
        return r

    # -- processes ------------------------------------------------------------

    def _proc(self, name, argv, sanitized=True):
        log = os.path.join(self.workdir, f"{name}.stderr.log")
        env = harness.sanitizer_env() if sanitized else None
        p = Proc(name, argv, self.workdir, log, env=env, sanitized=sanitized)
        self.procs.append(p)
        self.all_procs.append(p)
        return p.start()

    def _wait(self, proc, ready, what, timeout=START_TIMEOUT):
        wait_ready(proc, ready, what, self.log_tails, timeout)

    def _log_has(self, proc, text):
        return lambda: text in proc.log_text()

    def start(self):
        """Starts the processes and waits (bounded) until clients can log in."""
        for attempt in range(3):
            try:
                self._start_once()
                return self
            except AssertionError:
                failed = list(self.procs)
                text = "".join(p.log_text() for p in failed).lower()
                self.stop()
                if "in use" not in text or attempt == 2 or self.kind == "prosody":
                    raise
                # Someone took a port between our probe and the bind: not the server's fault.
                self.all_procs = [p for p in self.all_procs if p not in failed]
                self._pick_ports()
                self.write_config()
        return self

    def _start_once(self):
        self.procs = []
        up = lambda port: (lambda: harness.port_accepts(port))  # noqa: E731
        if self.kind == "prosody":
            p = self._proc("prosody", ["prosody", "--config", self.conf_path], sanitized=False)
            self._wait(p, up(self.port), f"accepting on {self.port}")
            self._wait(p, up(self.tls_port), f"accepting on {self.tls_port}")
            return
        conf = ["--config", self.conf_path]
        if self.topology == "processes":
            p = self._proc("parleyd-supervisor", [self.parleyd, *conf, "all", "--processes"])
            self._wait(p, up(self.port), f"accepting on the c2s port {self.port}")
            self._wait(p, up(self.tls_port), f"accepting on the c2s TLS port {self.tls_port}")
            # The children log to the supervisor's stderr: the sm (and the muc) must have
            # linked before clients come, or their first stanzas bounce.
            self._wait_soft(p, self._log_has(p, f"component {DOMAIN} authenticated"))
            if self.opts["muc"]:
                self._wait_soft(p, self._log_has(p, f"component {MUC_DOMAIN} authenticated"))
            self._start_c2s2(p)
            return
        if self.topology == "all":
            p = self._proc("parleyd-all", [self.parleyd, *conf, "all"])
            self._wait(p, up(self.port), f"accepting on the c2s port {self.port}")
            self._wait(p, up(self.tls_port), f"accepting on the c2s TLS port {self.tls_port}")
            self._start_c2s2(p)
            return
        router = self._proc("parleyd-router", [self.parleyd, *conf, "router"])
        self._wait(router, up(self.router_port), f"accepting on {self.router_port}")
        sm = self._proc("parleyd-sm", [self.parleyd, *conf, "sm"])
        # The router logs each component that completes its handshake; the sm must be up
        # before clients come, or their first stanzas bounce.
        self._wait_soft(sm, self._log_has(router, f"component {DOMAIN} authenticated"))
        c2s = self._proc("parleyd-c2s", [self.parleyd, *conf, "c2s"])
        self._wait(c2s, up(self.port), f"accepting on the c2s port {self.port}")
        self._wait(c2s, up(self.tls_port), f"accepting on the c2s TLS port {self.tls_port}")
        self._wait_soft(c2s, self._log_has(router, f"component {C2S_NAME} authenticated"))
        self._start_c2s2(router)
        self._start_muc(router)
        for p in (router, sm):
            if not p.alive():
                raise AssertionError(f"{p.name} exited early\n{self.log_tails()}")

    def _start_c2s2(self, router):
        """The second c2s process (c2s2=True), linked to the router of either topology."""
        if not self.opts["c2s2"]:
            return
        up = lambda port: (lambda: harness.port_accepts(port))  # noqa: E731
        c2s = self._proc("parleyd-c2s2", [self.parleyd, "--config", self.conf2_path, "c2s"])
        self._wait(c2s, up(self.port2), f"accepting on the second c2s port {self.port2}")
        self._wait_soft(c2s, self._log_has(router, f"component {C2S2_NAME} authenticated"))

    def _start_muc(self, router):
        """The muc component as its own process (split topology, muc=True)."""
        if not self.opts["muc"]:
            return
        before = router.log_text().count(f"component {MUC_DOMAIN} authenticated")
        muc = self._proc("parleyd-muc", [self.parleyd, "--config", self.conf_path, "muc"])
        self._wait_soft(muc, lambda: router.log_text().count(
            f"component {MUC_DOMAIN} authenticated") > before)

    def muc_proc(self):
        """The running `parleyd muc` process (split topology), or None."""
        return next((p for p in self.procs if p.name == "parleyd-muc"), None)

    def restart_muc(self, kill=False):
        """Split topology: stops the muc process (SIGTERM, or SIGKILL with kill=True, as a
        crash) and starts a new one; the router and the other processes stay."""
        p = self.muc_proc()
        assert p is not None, "no parleyd muc process (split topology with muc=True only)"
        if kill:
            p.proc.kill()
            p.proc.wait(timeout=STOP_TIMEOUT)
            p.returncode = 0  # killed on purpose: not a failure of the process
            p.sanitized = False
        else:
            p.stop()
        self.procs.remove(p)
        router = next(x for x in self.procs if x.name == "parleyd-router")
        self._start_muc(router)

    def child_pid(self, command):
        """processes topology: the pid of the supervisor's child running `parleyd COMMAND`
        now, from the supervisor's log ("started parleyd COMMAND, pid N", the last one)."""
        sup = self.proc_named("parleyd-supervisor")
        found = re.findall(rf"started parleyd {command}, pid (\d+)", sup.log_text())
        assert found, f"no parleyd {command} started\n{self.log_tails()}"
        return int(found[-1])

    def c2s_pid(self):
        """The pid of the process that runs the (first) c2s, in any topology."""
        if self.topology == "processes":
            return self.child_pid("c2s")
        return self.proc_named("parleyd-all" if self.topology == "all" else "parleyd-c2s").pid

    def c2s_log_path(self):
        """The log the (first) c2s writes to: its own process's, or the one it shares."""
        name = {"all": "parleyd-all", "processes": "parleyd-supervisor"}.get(self.topology,
                                                                            "parleyd-c2s")
        return self.proc_named(name).log_path

    def proc_named(self, name):
        """The running process called name (parleyd-router, -sm, -c2s, -c2s2, -muc)."""
        p = next((x for x in self.procs if x.name == name), None)
        assert p is not None, f"no running {name} process"
        return p

    def kill_proc(self, name):
        """Kills a process by its pid with SIGKILL, as a crash; it counts as ended on purpose.
        Returns the time.monotonic() at which it was dead."""
        p = self.proc_named(name)
        p.proc.kill()
        p.proc.wait(timeout=STOP_TIMEOUT)
        p.returncode, p.sanitized = 0, False  # killed on purpose: not a failure of the process
        self.procs.remove(p)
        return time.monotonic()

    def _authenticated(self, router, name):
        return router.log_text().count(f"component {name} authenticated")

    def start_sm(self):
        """Split topology: starts a `parleyd sm` again (after kill_proc("parleyd-sm")) and
        waits (bounded) until the router has it."""
        router = self.proc_named("parleyd-router")
        before = self._authenticated(router, DOMAIN)
        sm = self._proc("parleyd-sm", [self.parleyd, "--config", self.conf_path, "sm"])
        self._wait(sm, lambda: self._authenticated(router, DOMAIN) > before,
                   "linked to the router")

    def restart_router(self):
        """Split topology: stops the router (SIGTERM) and starts a new one on the same port;
        waits (bounded) until every other process has linked to it again."""
        old = self.proc_named("parleyd-router")
        names = {"parleyd-sm": DOMAIN, "parleyd-c2s": C2S_NAME, "parleyd-c2s2": C2S2_NAME,
                 "parleyd-muc": MUC_DOMAIN}
        # The new router appends to the same log: count what comes after.
        before = {names[p.name]: self._authenticated(old, names[p.name])
                  for p in self.procs if p.name in names}
        old.stop()
        self.procs.remove(old)
        router = self._proc("parleyd-router", [self.parleyd, "--config", self.conf_path,
                                               "router"])
        self._wait(router, lambda: all(self._authenticated(router, n) > k
                                       for n, k in before.items()),
                   f"rejoined by {', '.join(before)}")

    def _wait_soft(self, proc, ready, timeout=START_TIMEOUT):
        """Waits for a log line that says a link is up; goes on (bounded) if none comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.alive():
            if ready():
                return True
            time.sleep(0.02)
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited with {proc.proc.returncode} at start\n"
                                 f"{self.log_tails()}")
        return False

    def stop(self):
        """Stops every process by PID (SIGTERM: the muc first, so that its goodbyes reach the
        clients, then the c2s); problems() tells how they ended."""
        order = {"parleyd-muc": -1, "parleyd-c2s": 0, "parleyd-c2s2": 0, "parleyd-sm": 1,
                 "parleyd-router": 2}
        for p in sorted(self.procs, key=lambda p: order.get(p.name, 0)):
            p.stop()
        self.procs = []

    def restart(self):
        """Stops and starts again with the same config, ports and data (persistence tests)."""
        self.stop()
        bad = self.problems()
        assert not bad, "\n".join(bad) + "\n" + self.log_tails()
        return self.start()

    def problems(self):
        found = []
        for p in self.all_procs:
            found += p.problems()
        return found

    def logs(self):
        """(title, path) of every process's log, for failure reports."""
        seen, out = set(), []
        for p in self.all_procs:
            if p.log_path not in seen:
                seen.add(p.log_path)
                out.append((f"{p.name} stderr", p.log_path))
        if self.kind == "prosody":
            out.append(("prosody.log", os.path.join(self.workdir, "prosody.log")))
        return out

    def log_tails(self, lines=60):
        parts = []
        for title, path in self.logs():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f"--- {title} ({path}) ---\n{harness.tail(f.read(), lines)}")
            except OSError:
                pass
        return "\n".join(parts)


# ---------------------------------------------------------------------------
# Predicates over received elements


def match(kind=None, type=None, frm=None, to=None, id=None, child=None, where=None):
    """A predicate over a received element.

    kind: 'message', 'presence', 'iq' (jabber:client) or an expanded name; type: the type
    attribute ('' or 'available' means none); frm/to: exact JIDs, or a bare JID that also
    matches its full JIDs when it ends with '/*'; child: an expanded name that must be a
    child; where: any further predicate.
    """
    def jid_ok(value, want):
        if want is None:
            return True
        value = value or ""
        if want.endswith("/*"):
            return value.split("/", 1)[0] == want[:-2]
        return value == want

    def pred(el):
        if kind is not None:
            tag = kind if kind.startswith("{") else q(NS_CLIENT, kind)
            if el.tag != tag:
                return False
        if type is not None:
            t = el.get("type") or ""
            if (t or "available") != (type or "available"):
                return False
        if not jid_ok(el.get("from"), frm) or not jid_ok(el.get("to"), to):
            return False
        if id is not None and el.get("id") != id:
            return False
        if child is not None and el.find(child) is None:
            return False
        return where is None or where(el)
    return pred


def body_of(el):
    b = el.find(q(NS_CLIENT, "body"))
    return None if b is None else (b.text or "")


def error_of(el):
    """(type, condition) of a stanza's <error/>, or None."""
    e = harness.stanza_error(el)
    return None if e is None else e[:2]


def roster_items(el):
    """{jid: {'subscription','ask','name','groups'}} of a roster query in an iq."""
    query = el.find(q(NS_ROSTER, "query"))
    assert query is not None, f"no roster query in {dump(el)}"
    items = {}
    for it in query.findall(q(NS_ROSTER, "item")):
        items[it.get("jid")] = {
            "subscription": it.get("subscription", "none"),
            "ask": it.get("ask"),
            "name": it.get("name"),
            "groups": sorted(g.text or "" for g in it.findall(q(NS_ROSTER, "group"))),
        }
    return items


def roster_item_xml(jid, name=None, groups=(), subscription=None):
    attrs = f" jid={quoteattr(jid)}"
    if name is not None:
        attrs += f" name={quoteattr(name)}"
    if subscription is not None:
        attrs += f" subscription={quoteattr(subscription)}"
    inner = "".join(f"<group>{escape(g)}</group>" for g in groups)
    return f"<query xmlns='{NS_ROSTER}'><item{attrs}>{inner}</item></query>"


# ---------------------------------------------------------------------------
# slixmpp clients, driven from synchronous test code


class IMPool:
    """An asyncio loop and the slixmpp clients on it; every wait runs the loop (bounded)."""

    def __init__(self, server):
        self.server = server
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.clients = []

    def run(self, aw, timeout=5.0):
        return self.loop.run_until_complete(asyncio.wait_for(aw, timeout))

    def settle(self, seconds=0.2):
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def client(self, user, password=None, resource=None, mech=None, direct_tls=False,
               available=False, priority=None, timeout=10.0, channel_binding=False,
               tls_max=None, c2s2=False):
        """A logged-in client of user@localhost (resource: requested, or the server's).

        channel_binding: let slixmpp use SCRAM-*-PLUS. slixmpp 1.8 knows only tls-unique,
        which TLS 1.3 does not define (RFC 9266), and then sends the gs2 flag 'y', which a
        server offering -PLUS must refuse (RFC 5802 §6): off by default, see test_im_auth;
        with tls_max=ssl.TLSVersion.TLSv1_2 (the highest TLS version slixmpp offers) it works,
        see test_im_cbind.

        available: sends initial presence (with priority) and waits for its own presence
        to come back (RFC 6121 §4.2.2), so that the session is fully available.
        """
        c = IMClient(self, user, password if password is not None else self.server.users[user],
                     resource, mech, direct_tls, channel_binding, tls_max)
        c.c2s2 = c2s2
        self.clients.append(c)
        c.start(timeout)
        if available:
            c.available(priority=priority)
        return c

    def close(self):
        for c in self.clients:
            c.stop()
        try:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=2.0))
        finally:
            self.loop.close()
            asyncio.set_event_loop(None)


class IMClient:
    """A slixmpp ClientXMPP: STARTTLS (or direct TLS), SASL, bind; records what arrives.

    Every top-level element received (stanzas, stream errors) is deep-copied into a list
    before slixmpp's own handlers see it; recv() takes the first one matching a predicate and
    leaves the others for later calls.
    """

    def __init__(self, pool, user, password, resource, mech, direct_tls, channel_binding=False,
                 tls_max=None):
        from slixmpp import ClientXMPP

        self.pool = pool
        self.user = user
        self.bare = f"{user}@{DOMAIN}"
        self.direct_tls = direct_tls
        self.channel_binding = channel_binding
        jid = self.bare + (f"/{resource}" if resource else "")
        x = self.xmpp = ClientXMPP(jid, password, sasl_mech=mech)
        # The server's certificate is self-signed: not verified (loopback only).
        x.ssl_context.check_hostname = False
        x.ssl_context.verify_mode = ssl.CERT_NONE
        if tls_max is not None:
            x.ssl_context.maximum_version = tls_max
        # Subscription requests are the tests' business, not slixmpp's.
        x.roster.auto_authorize = None
        x.roster.auto_subscribe = False
        x.whitespace_keepalive = False
        if not channel_binding:
            mechs = x["feature_mechanisms"]
            creds = mechs.sasl_callback

            def no_cb(required, optional):
                values = creds(required, optional)
                if "channel_binding" in values:
                    values["channel_binding"] = None
                return values
            mechs.sasl_callback = no_cb
        self.pending = []
        self.wake = asyncio.Event()
        self.started = pool.loop.create_future()
        self.disconnected = False
        self.auth_failed = False
        x.add_filter("in", self._capture)
        x.add_event_handler("session_start", self._on_start)
        # slixmpp tries the next mechanism after a failure; give up only when none is left.
        x.add_event_handler("failed_all_auth", self._on_auth_fail)
        x.add_event_handler("disconnected", self._on_disconnect)
        x.add_event_handler("connection_failed", self._on_fail)
        x.add_event_handler("stream_error", self._on_fail)

    @property
    def jid(self):
        """The full JID the server bound."""
        return self.xmpp.boundjid.full

    def _capture(self, st):
        self.pending.append(copy.deepcopy(st.xml))
        self.wake.set()
        if not self.channel_binding and st.xml.tag == q(NS_STREAM, "features"):
            # A client without channel binding: it does not see the -PLUS mechanisms.
            mechs = st.xml.find(q(NS_SASL, "mechanisms"))
            for m in list(mechs) if mechs is not None else []:
                if (m.text or "").endswith("-PLUS"):
                    mechs.remove(m)
        return st

    def _on_start(self, _):
        if not self.started.done():
            self.started.set_result(True)

    def _on_auth_fail(self, _):
        self.auth_failed = True
        self._on_fail("authentication failed")

    def _on_disconnect(self, reason):
        self.disconnected = True
        self.wake.set()
        self._on_fail(f"disconnected ({reason})")

    def _on_fail(self, what):
        if not self.started.done():
            self.started.set_exception(AssertionError(
                f"client {self.bare}: no session: {what}"))

    def start(self, timeout=10.0):
        addr = self.pool.server.client_address(getattr(self, "c2s2", False), self.direct_tls)
        self.xmpp.connect(addr, use_ssl=self.direct_tls, force_starttls=not self.direct_tls)
        try:
            self.pool.run(asyncio.shield(self.started), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(f"client {self.bare}: no session within {timeout}s") from None

    def stop(self):
        x = self.xmpp
        x.cancel_connection_attempt()
        if x.transport is not None and not self.disconnected:
            try:
                self.pool.run(x.disconnect(wait=1.0), timeout=3.0)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - best effort at teardown
                x.abort()

    def disconnect(self, timeout=3.0):
        """Ends the session cleanly: unavailable presence is implied by </stream:stream>."""
        self.pool.run(self.xmpp.disconnect(wait=1.0), timeout)
        self.disconnected = True

    def kill(self):
        """Closes the TCP connection without </stream:stream> or TLS close, as a crash would."""
        t = self.xmpp.transport
        assert t is not None, "not connected"
        sock = t.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            except OSError:
                pass
        t.abort()
        self.disconnected = True
        self.pool.settle(0.05)

    # -- sending ---------------------------------------------------------------

    def send_raw(self, text):
        self.xmpp.send_raw(text)

    def presence(self, type=None, to=None, show=None, status=None, priority=None, id=None,
                 inner=""):
        a = ""
        for k, v in (("to", to), ("type", type), ("id", id)):
            if v is not None:
                a += f" {k}={quoteattr(v)}"
        body = ""
        if show is not None:
            body += f"<show>{escape(show)}</show>"
        if status is not None:
            body += f"<status>{escape(status)}</status>"
        if priority is not None:
            body += f"<priority>{int(priority)}</priority>"
        self.send_raw(f"<presence{a}>{body}{inner}</presence>")

    def available(self, priority=None, show=None, status=None, timeout=5.0):
        """Initial (or updated) presence; waits for the server's copy to our own JID."""
        self.presence(priority=priority, show=show, status=status)
        return self.recv(match("presence", type="", frm=self.jid), timeout)

    def message(self, to, body=None, type="chat", id=None, inner=""):
        id = id or new_id("m")
        a = f" to={quoteattr(to)} id={quoteattr(id)}"
        if type is not None:
            a += f" type={quoteattr(type)}"
        b = f"<body>{escape(body)}</body>" if body is not None else ""
        self.send_raw(f"<message{a}>{b}{inner}</message>")
        return id

    def iq(self, type, payload="", to=None, timeout=5.0, id=None):
        """Sends an iq and returns its answer (result or error) without raising."""
        id = id or new_id("iq")
        a = f" type={quoteattr(type)} id={quoteattr(id)}"
        if to is not None:
            a += f" to={quoteattr(to)}"
        self.send_raw(f"<iq{a}>{payload}</iq>")
        return self.recv(match("iq", id=id, where=lambda el: el.get("type") in
                               ("result", "error")), timeout)

    def roster_get(self, ver=None, timeout=5.0):
        v = "" if ver is None else f" ver={quoteattr(ver)}"
        res = self.iq("get", f"<query xmlns='{NS_ROSTER}'{v}/>", timeout=timeout)
        assert res.get("type") == "result", f"roster get failed: {dump(res)}"
        return res

    def roster_set(self, jid, name=None, groups=(), timeout=5.0):
        return self.iq("set", roster_item_xml(jid, name, groups), timeout=timeout)

    def roster_remove(self, jid, timeout=5.0):
        return self.iq("set", roster_item_xml(jid, subscription="remove"), timeout=timeout)

    # -- receiving -------------------------------------------------------------

    def recv(self, predicate=None, timeout=5.0):
        """The first recorded element that matches predicate (any if None), waiting at most
        timeout seconds; the elements that do not match stay recorded."""
        pred = predicate or (lambda el: True)

        async def wait():
            while True:
                for i, el in enumerate(self.pending):
                    if pred(el):
                        del self.pending[i]
                        return el
                if self.disconnected:
                    raise ConnectionError("disconnected")
                self.wake.clear()
                await self.wake.wait()

        try:
            return self.pool.run(wait(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"{self.jid or self.bare}: no matching element within {timeout}s; got meanwhile:"
                f" {[dump(e) for e in self.pending]}") from None
        except ConnectionError:
            raise AssertionError(
                f"{self.jid or self.bare}: disconnected while waiting; got:"
                f" {[dump(e) for e in self.pending]}") from None

    def recv_all(self, predicate, count, timeout=5.0):
        return [self.recv(predicate, timeout) for _ in range(count)]

    def expect_silence(self, timeout=0.5, predicate=None):
        """Fails if an element (matching predicate, if given) is or becomes recorded."""
        self.pool.settle(timeout)
        pred = predicate or (lambda el: True)
        got = [el for el in self.pending if pred(el)]
        assert not got, f"{self.jid}: expected nothing, got {[dump(e) for e in got]}"

    def drain(self, settle=0.0):
        """Forgets everything recorded so far (after letting the loop run settle seconds)."""
        if settle:
            self.pool.settle(settle)
        self.pending.clear()


# ---------------------------------------------------------------------------
# A raw client: exact SASL and stream handling


def scram_client_first(user, nonce):
    name = user.replace("=", "=3D").replace(",", "=2C")
    return f"n={name},r={nonce}"


class Scram:
    """The client side of SCRAM (RFC 5802).

    gs2 is the gs2 header: b"n,," (no channel binding), b"y,," or b"p=<type>,,"; cb_data is
    the channel-binding data sent after it in c= (RFC 5802 §6, -PLUS only). Both may be
    changed between first() and final() to send what a broken or hostile client would.
    nonce: fixed for the RFC test vectors, else random.
    """

    def __init__(self, user, password, hash_name, nonce=None, gs2=b"n,,", cb_data=b""):
        self.user, self.password, self.hash_name = user, password, hash_name
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = scram_client_first(user, self.nonce)
        self.gs2, self.cb_data = gs2, cb_data
        self.server_signature = None

    def first(self):
        return self.gs2 + self.first_bare.encode()

    def final(self, server_first, password=None):
        attrs = dict(kv.split("=", 1) for kv in server_first.decode().split(","))
        assert attrs["r"].startswith(self.nonce), f"server nonce does not extend ours: {attrs}"
        salt, iters = base64.b64decode(attrs["s"]), int(attrs["i"])
        pw = (self.password if password is None else password).encode()
        salted = hashlib.pbkdf2_hmac(self.hash_name, pw, salt, iters)
        client_key = hmac.new(salted, b"Client Key", self.hash_name).digest()
        stored_key = hashlib.new(self.hash_name, client_key).digest()
        cbind = base64.b64encode(self.gs2 + self.cb_data).decode()
        without_proof = "c=" + cbind + ",r=" + attrs["r"]
        auth_message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, self.hash_name).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", self.hash_name).digest()
        self.server_signature = hmac.new(server_key, auth_message, self.hash_name).digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final):
        attrs = dict(kv.split("=", 1) for kv in server_final.decode().split(","))
        return base64.b64decode(attrs.get("v", "")) == self.server_signature


class RawClient(harness.RawComponent):
    """A client stream written by hand: jabber:client, STARTTLS, SASL, bind."""

    def __init__(self, server, tls_port=False, timeout=5.0, name="raw-client"):
        super().__init__(server.tls_port if tls_port else server.port, timeout=timeout,
                         name=name)
        self.server = server
        self.direct_tls = tls_port
        self.tls = False
        self.features = None

    def connect(self):
        super().connect()
        if self.direct_tls:
            self._wrap()
        return self

    def _reset_parser(self):
        self.parser = ET.XMLPullParser(events=("start-ns", "start", "end"))
        self.depth = 0
        self.root = None
        self.header = None
        self.header_ns = {}
        self.events = deque()

    def _wrap(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock, server_hostname=DOMAIN)
        self.tls = True

    def open(self, to=DOMAIN):
        """Opens (or restarts) the stream; returns the <stream:features/> element."""
        self._reset_parser()
        self.send(f"<?xml version='1.0'?><stream:stream xmlns='{NS_CLIENT}' "
                  f"xmlns:stream='{NS_STREAM}' to={quoteattr(to)} version='1.0'>")
        kind, el = self.next_event()
        assert kind == "header", f"{self.name}: expected a stream header, got {kind}"
        self.features = self.recv()
        assert self.features.tag == q(NS_STREAM, "features"), dump(self.features)
        return self.features

    def starttls(self):
        """STARTTLS (RFC 6120 §5.4): <proceed/>, the TLS handshake, a new stream."""
        self.send(f"<starttls xmlns='{NS_TLS}'/>")
        el = self.recv()
        assert el.tag == q(NS_TLS, "proceed"), f"{self.name}: STARTTLS answered {dump(el)}"
        self._wrap()
        return self.open()

    def mechanisms(self, features=None):
        f = self.features if features is None else features
        m = f.find(q(NS_SASL, "mechanisms"))
        return [] if m is None else [x.text for x in m.findall(q(NS_SASL, "mechanism"))]

    def _sasl(self, name, data=None):
        text = "" if data is None else (base64.b64encode(data).decode() or "=")
        self.send(f"<{name} xmlns='{NS_SASL}'>{text}</{name}>")

    def _sasl_auth(self, mech, data):
        text = base64.b64encode(data).decode() or "="
        self.send(f"<auth xmlns='{NS_SASL}' mechanism={quoteattr(mech)}>{text}</auth>")

    def auth_plain(self, user, password):
        """PLAIN (RFC 4616); returns the <success/> or <failure/> element."""
        self._sasl_auth("PLAIN", b"\0" + user.encode() + b"\0" + password.encode())
        return self.recv()

    def auth_scram(self, user, password, hash_name="sha1", mech=None, gs2=b"n,,", cb_data=b""):
        """SCRAM-SHA-1 / SCRAM-SHA-256 (RFC 5802/7677); returns <success/> or <failure/>.

        mech (default: the one of hash_name), gs2 and cb_data: see Scram. On success, the
        server's signature (v=) must be right.
        """
        mech = mech or {"sha1": "SCRAM-SHA-1", "sha256": "SCRAM-SHA-256"}[hash_name]
        s = Scram(user, password, hash_name, gs2=gs2, cb_data=cb_data)
        self._sasl_auth(mech, s.first())
        el = self.recv()
        if el.tag != q(NS_SASL, "challenge"):
            return el
        self._sasl("response", s.final(base64.b64decode(el.text or "")))
        el = self.recv()
        if el.tag == q(NS_SASL, "success"):
            data = base64.b64decode(el.text or "")
            assert s.verify(data), f"{self.name}: wrong server signature in {data!r}"
        return el

    def bind(self, resource=None, id="bind-1"):
        """Binds (RFC 6120 §7); returns the answer (iq result or error)."""
        r = f"<resource>{escape(resource)}</resource>" if resource is not None else ""
        self.send(f"<iq type='set' id={quoteattr(id)}><bind xmlns='{NS_BIND}'>{r}</bind></iq>")
        return self.recv()

    def login(self, user, password=None, resource=None, mech="plain"):
        """STARTTLS (unless direct TLS), SASL, restart, bind; returns the bound full JID."""
        password = self.server.users[user] if password is None else password
        self.connect()
        self.open()
        if not self.tls:
            self.starttls()
        if mech == "plain":
            el = self.auth_plain(user, password)
        else:
            el = self.auth_scram(user, password, mech)
        assert el.tag == q(NS_SASL, "success"), f"{self.name}: SASL failed: {dump(el)}"
        self.open()
        res = self.bind(resource)
        assert res.get("type") == "result", f"{self.name}: bind failed: {dump(res)}"
        jid = res.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}")
        assert jid is not None, dump(res)
        self.jid = jid.text
        return self.jid

    def sasl_failure(self, el):
        """The condition of a <failure/>, or fails if el is not one."""
        assert el.tag == q(NS_SASL, "failure"), f"{self.name}: expected a SASL failure, " \
                                                f"got {dump(el)}"
        conds = [local(c.tag) for c in el if ns_of(c.tag) == NS_SASL and local(c.tag) != "text"]
        assert len(conds) == 1, dump(el)
        return conds[0]


# ---------------------------------------------------------------------------
# Roster pushes and subscriptions (RFC 6121 §2.1.6, §3)


def roster_push(jid=None):
    """A predicate: a roster push (iq set with a roster query), for jid if given."""
    def pred(el):
        if el.tag != q(NS_CLIENT, "iq") or el.get("type") != "set":
            return False
        query = el.find(q(NS_ROSTER, "query"))
        if query is None:
            return False
        items = query.findall(q(NS_ROSTER, "item"))
        return jid is None or any(it.get("jid") == jid for it in items)
    return pred


def push_item(client, el, jid):
    """The item of a roster push, after checking the push is one (RFC 6121 §2.1.6): from
    absent or the user's bare JID, exactly one item."""
    assert el.get("from") in (None, client.bare), f"roster push from {el.get('from')}: {dump(el)}"
    assert el.get("id"), f"roster push without id: {dump(el)}"
    items = roster_items(el)
    assert list(items) == [jid], f"expected one item for {jid}: {dump(el)}"
    return items[jid]


def expect_push(client, jid, subscription, ask=None, timeout=5.0, **more):
    """Waits for a roster push about jid and checks its subscription and ask (and more)."""
    el = client.recv(roster_push(jid), timeout)
    item = push_item(client, el, jid)
    assert (item["subscription"], item["ask"]) == (subscription, ask), \
        f"{client.jid}: push for {jid} is {item}, expected subscription={subscription}" \
        f" ask={ask}: {dump(el)}"
    for k, v in more.items():
        assert item[k] == v, f"{client.jid}: push for {jid}: {k}={item[k]!r}, expected {v!r}"
    return el


def subscribe(user, contact, timeout=5.0):
    """user subscribes to contact's presence and contact approves (both online, available,
    interested); returns when user has seen the contact's presence. Drains both."""
    user.presence(type="subscribe", to=contact.bare)
    contact.recv(match("presence", type="subscribe", frm=user.bare), timeout)
    contact.presence(type="subscribed", to=user.bare)
    user.recv(match("presence", type="subscribed", frm=contact.bare), timeout)
    user.recv(match("presence", type="", frm=contact.jid), timeout)
    user.drain(settle=0.1)
    contact.drain()


def subscribe_both(a, b):
    subscribe(a, b)
    subscribe(b, a)
