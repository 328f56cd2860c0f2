# SPDX-License-Identifier: MIT
"""Hosts as Linux network namespaces for test_im_hosts.py (issue 7): a private LAN and a site
of Parley processes spread over it, one process per host, one configuration file per host.

- Lan: network namespaces "parley-<pid>-<host>" made by the test with `ip netns add`, each
  with loopback up and one veth (eth0) into a bridge that lives in a namespace of its own
  ("parley-<pid>-lan"); one more veth ("pl<pid>") from the root namespace into the bridge,
  so that the test's clients (slixmpp, in the test process) reach every host. Addresses come
  from 10.231.N.0/24 (private, RFC 1918, and N is chosen so that nothing on this machine
  routes it already); no namespace gets a default route, so nothing reaches the outside.
  down() removes every namespace and the root veth and checks that none is left; it runs
  in a finally, also when the test fails.
- HostSite: `parleyd router|sm|c2s|muc` started with `ip netns exec HOST parleyd ...`
  (ip execs parleyd, so the pid is parleyd's and the processes are stopped by pid as
  im.Proc does: SIGTERM, a bounded wait, SIGKILL; exit 0 and no sanitizer report expected).
  Each host has its folder (its config, its secret, its log); the c2s hosts read the user
  store the sm writes (it is on the one filesystem every namespace shares), since a c2s
  checks passwords against the stored SCRAM keys (docs/config.md, [storage]).

Needs root and iproute2's `ip`; skip_reason() says why not when either is missing.
"""

import ipaddress
import os
import secrets
import shutil
import subprocess
import time

import harness
import im
from im import C2S2_NAME, C2S_NAME, DOMAIN, MUC_DOMAIN

IP_TIMEOUT = 10  # seconds for one `ip` command
ROUTER_PORT = 5347
C2S_PORT, C2S_TLS_PORT = 5222, 5223


def skip_reason():
    """Why the multi-host test cannot run here (a message for pytest.skip), or None."""
    if os.geteuid() != 0:
        return "needs root: it creates network namespaces, veth pairs and a bridge"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip` (Debian: iproute2) to create network namespaces"
    return None


def ip(*args, check=True):
    """Runs `ip ARGS...` (bounded); returns the CompletedProcess, text."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


def pick_subnet(tag):
    """A 10.231.N.0/24 that no address or route of the root namespace touches yet (another
    run of this test, or anything else), starting from one derived from tag (the pid)."""
    used = ip("-4", "-o", "addr", "show").stdout + ip("-4", "route", "show").stdout
    taken = []
    for word in used.split():
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            pass
    for step in range(250):
        net = ipaddress.ip_network(f"10.231.{(tag + step) % 250 + 1}.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise AssertionError("no free 10.231.N.0/24 on this machine")


class Lan:
    """Hosts (network namespaces) on one bridge, reachable from the root namespace."""

    def __init__(self, hosts, tag=None):
        self.tag = os.getpid() if tag is None else tag
        self.prefix = f"parley-{self.tag}-"
        self.hub = self.prefix + "lan"  # the namespace holding the bridge
        self.root_if = f"pl{self.tag}"[:15]  # the root namespace's end of its veth
        self.hosts = list(hosts)
        self.net = None
        self.addr = {}  # host -> its address (str)
        self.root_addr = None
        self.made = []  # namespaces created, removed in reverse order

    def ns(self, host):
        return self.prefix + host

    def up(self):
        """Creates the namespaces, the bridge and the veths; addresses them. On a failure
        half-way, down() (which the caller runs in its finally) removes what was made."""
        self.net = pick_subnet(self.tag)
        hosts_ip = list(self.net.hosts())
        self.root_addr = str(hosts_ip[-1])
        self._netns_add(self.hub)
        ip("-n", self.hub, "link", "set", "lo", "up")
        # Without STP a bridge port forwards as soon as it is up; forward_delay 0 says so.
        ip("-n", self.hub, "link", "add", "br0", "type", "bridge", "forward_delay", "0")
        ip("-n", self.hub, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts):
            ns, port = self.ns(host), f"h{i}"
            self._netns_add(ns)
            ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            self._plug(port)
            self.addr[host] = str(hosts_ip[i])
            ip("-n", ns, "addr", "add", f"{self.addr[host]}/{self.net.prefixlen}", "dev",
               "eth0")
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "set", "eth0", "up")
        ip("link", "add", self.root_if, "type", "veth", "peer", "name", "root", "netns",
           self.hub)
        self._plug("root")
        ip("addr", "add", f"{self.root_addr}/{self.net.prefixlen}", "dev", self.root_if)
        ip("link", "set", self.root_if, "up")
        return self

    def _netns_add(self, ns):
        ip("netns", "add", ns)
        self.made.append(ns)

    def _plug(self, port):
        ip("-n", self.hub, "link", "set", port, "master", "br0")
        ip("-n", self.hub, "link", "set", port, "up")

    def exec_argv(self, host, argv):
        """argv run on host: `ip netns exec NS argv...` (ip execs it: same pid)."""
        return ["ip", "netns", "exec", self.ns(host), *argv]

    def routes(self, host):
        """The IPv4 routes of host, one a line (`ip -n NS -4 route`)."""
        return ip("-n", self.ns(host), "-4", "route", "show").stdout.strip().splitlines()

    def leftovers(self):
        """Namespaces and links of this Lan that still exist."""
        left = [n for n in ip("netns", "list").stdout.split() if n.startswith(self.prefix)]
        if ip("link", "show", self.root_if, check=False).returncode == 0:
            left.append(self.root_if)
        return left

    def down(self):
        """Removes everything up() made (the veths go with the namespaces that hold one end;
        the root one is removed first); raises if anything is left."""
        errors = []
        ip("link", "del", self.root_if, check=False)
        for ns in reversed(self.made):
            r = ip("netns", "del", ns, check=False)
            if r.returncode != 0:
                errors.append(f"ip netns del {ns}: {r.stderr.strip()}")
        self.made = []
        left = self.leftovers()
        if left or errors:
            raise AssertionError(f"left after teardown: {left} {errors}")


class HostSite:
    """A Parley site for localhost on a Lan: the router on host "router", the sm on "sm", the
    c2s processes c2s-1.localhost and c2s-2.localhost on "c2s1" and "c2s2", the muc on "muc".

    Quacks like im.IMServer where IMPool/IMClient and the tests need it: users,
    client_address(), jid(), adduser(), kill_proc(), problems(), logs(), log_tails().
    """

    HOSTS = ("router", "c2s1", "c2s2", "sm", "muc")

    def __init__(self, parleyd, workdir, lan, users=None, storage=im.DEFAULT_STORAGE):
        self.parleyd, self.workdir, self.lan = str(parleyd), str(workdir), lan
        self.storage = storage
        self.users = {}
        self.procs, self.all_procs = [], []
        self.secrets = {name: secrets.token_hex(16)
                        for name in (DOMAIN, C2S_NAME, C2S2_NAME, MUC_DOMAIN)}
        self.cert, self.key = im.make_cert(os.path.join(self.workdir, "certs"))
        for host in self.HOSTS:
            os.makedirs(self.folder(host), exist_ok=True)
            with open(self.conf(host), "w", encoding="utf-8") as f:
                f.write(self.config(host))
        os.makedirs(os.path.join(self.folder("sm"), "data"), exist_ok=True)
        os.makedirs(os.path.join(self.folder("muc"), "data"), exist_ok=True)
        for user in users or im.DEFAULT_USERS:
            self.adduser(user, f"{user}-{secrets.token_hex(6)}")

    # -- configuration: one file per host ---------------------------------------

    def folder(self, host):
        return os.path.join(self.workdir, host)

    def conf(self, host):
        return os.path.join(self.folder(host), "parley.conf")

    def _component(self, name):
        """A [component] section with the secret inline: each host's file has its own."""
        return f'[component "{name}"]\nsecret = "{self.secrets[name]}"\n'

    def _storage(self, root):
        """[storage] at the sm host's store; root: the path from the config's folder."""
        path = "data/parley.db" if self.storage == "sqlite" else "data/store"
        return f"[storage]\nbackend = {self.storage}\npath = {root}{path}\n"

    def config(self, host):
        """What the file of each host holds: every file says where the router is ([router]
        listen); the router's names every component; each component's names itself."""
        a = self.lan.addr
        text = (f"# Generated by tests/e2e/netns.py for host {host} ({a[host]})\n"
                f"[log]\nlevel = debug\n\n[router]\nlisten = {a['router']}:{ROUTER_PORT}\n\n")
        if host == "router":
            return text + "".join(self._component(n) for n in self.secrets)
        if host == "sm":
            return (text + self._component(DOMAIN) + f"[sm]\ndomain = {DOMAIN}\n"
                    + self._storage(""))
        if host == "muc":
            return (text + self._component(MUC_DOMAIN) + f"[muc]\nname = {MUC_DOMAIN}\n"
                    + "[storage]\nbackend = sqlite\npath = data/muc.db\n")
        name = C2S_NAME if host == "c2s1" else C2S2_NAME
        return (text + self._component(name)
                + f"[c2s]\nname = {name}\ndomain = {DOMAIN}\n"
                f"listen = {a[host]}:{C2S_PORT}\nlisten_tls = {a[host]}:{C2S_TLS_PORT}\n"
                "certificate = ../certs/localhost.crt\nkey = ../certs/localhost.key\n"
                "auth_delay = 0\n" + self._storage("../sm/"))

    def adduser(self, user, password):
        """user@localhost in the sm host's store (parleyctl, password on stdin)."""
        argv = [os.path.join(os.path.dirname(self.parleyd), "parleyctl"), "--config",
                self.conf("sm"), "adduser", f"{user}@{DOMAIN}"]
        r = subprocess.run(argv, input=password + "\n", capture_output=True, text=True,
                           timeout=30, cwd=self.folder("sm"), env=harness.sanitizer_env())
        assert r.returncode == 0, f"parleyctl adduser {user} failed: {r.stderr}"
        assert harness.sanitizer_report(r.stderr) is None, r.stderr
        self.users[user] = password

    def jid(self, user):
        return f"{user}@{DOMAIN}"

    def client_address(self, c2s2=False, direct_tls=False):
        """(address, port) of the c2s on host c2s2 (c2s2=True) or c2s1."""
        return self.lan.addr["c2s2" if c2s2 else "c2s1"], C2S_TLS_PORT if direct_tls \
            else C2S_PORT

    # -- processes ------------------------------------------------------------

    def _start(self, host, command):
        name = f"parleyd-{command}@{host}"
        argv = self.lan.exec_argv(host, [self.parleyd, "--config", self.conf(host), command])
        p = im.Proc(name, argv, self.folder(host), os.path.join(self.folder(host),
                    "stderr.log"), env=harness.sanitizer_env())
        self.procs.append(p)
        self.all_procs.append(p)
        return p.start()

    def _wait(self, proc, ready, what, timeout=im.START_TIMEOUT):
        im.wait_ready(proc, ready, what, self.log_tails, timeout)

    def start(self):
        """Router first, then the sm, the muc and both c2s, each waited for (bounded): the
        router must log the component's handshake, each c2s must accept (from the root
        namespace, across the bridge: what the clients will do)."""
        a = self.lan.addr
        router = self._start("router", "router")
        self._wait(router, lambda: harness.port_accepts(ROUTER_PORT, a["router"]),
                   f"accepting on {a['router']}:{ROUTER_PORT}")

        def linked(name):
            return lambda: f"component {name} authenticated" in router.log_text()

        for host, command, name in (("sm", "sm", DOMAIN), ("muc", "muc", MUC_DOMAIN),
                                    ("c2s1", "c2s", C2S_NAME), ("c2s2", "c2s", C2S2_NAME)):
            p = self._start(host, command)
            self._wait(p, linked(name), f"linked to the router as {name}")
            if command == "c2s":
                for port in (C2S_PORT, C2S_TLS_PORT):
                    self._wait(p, lambda: harness.port_accepts(port, a[host]),
                               f"accepting on {a[host]}:{port}")
        return self

    def proc_named(self, name):
        p = next((x for x in self.procs if x.name == name), None)
        assert p is not None, f"no running {name} process"
        return p

    def kill_proc(self, name):
        """SIGKILL by pid, as a crash (not a failure of the process); returns the
        time.monotonic() at which it was dead."""
        p = self.proc_named(name)
        p.proc.kill()
        p.proc.wait(timeout=im.STOP_TIMEOUT)
        p.returncode, p.sanitized = 0, False
        self.procs.remove(p)
        return time.monotonic()

    def stop(self):
        """SIGTERM by pid: the muc first (its goodbyes reach the clients), the c2s, the sm,
        the router last."""
        order = {"muc": 0, "c2s": 1, "sm": 2, "router": 3}
        for p in sorted(self.procs, key=lambda p: order[p.name.split("-")[1].split("@")[0]]):
            p.stop()
        self.procs = []

    def problems(self):
        return [x for p in self.all_procs for x in p.problems()]

    def logs(self):
        return [(f"{p.name} stderr", p.log_path) for p in self.all_procs]

    def log_tails(self, lines=60):
        parts = []
        for title, path in self.logs():
            try:
                with open(path, encoding="utf-8", errors="replace") as f:
                    parts.append(f"--- {title} ({path}) ---\n{harness.tail(f.read(), lines)}")
            except OSError:
                pass
        return "\n".join(parts)
