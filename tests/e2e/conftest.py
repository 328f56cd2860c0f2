# SPDX-License-Identifier: MIT
"""Fixtures of the end-to-end suite: parleyd servers per topology, raw and slixmpp components."""

import os
import pathlib
import signal

import pytest

import harness

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_BINARY = REPO / "build" / "test" / "src" / "main" / "parleyd"
TEST_TIMEOUT = 90  # seconds; a safety net, every wait in the suite has its own smaller bound

# Components every default server knows. d.test is configured but never connects.
DOMAINS = ("a.test", "b.test", "c.test", "d.test")
MAX_STANZA = 64 * 1024

SERVERS = pytest.StashKey[list]()
EXTRA_LOGS = harness.EXTRA_LOGS
random_secret = harness.random_secret


def pytest_configure(config):
    for line in (
        "slow: takes more than a second or two (timeouts, byte-by-byte streams)",
        "thirdparty: drives a third-party component daemon from Debian (biboumi)",
        "slixmpp: uses slixmpp's ComponentXMPP as the independent component",
        "raw: precise protocol checks with a hand-written socket client",
        "config: the command line and the config file",
    ):
        config.addinivalue_line("markers", line)


def pytest_collection_modifyitems(config, items):
    """Marks tests by the clients they use, so `-m raw` / `-m slixmpp` select them."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "raw" in names:
            item.add_marker(pytest.mark.raw)
        if "slix" in names:
            item.add_marker(pytest.mark.slixmpp)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A whole-test watchdog: SIGALRM interrupts a test that hangs despite its own bounds."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"test exceeded {TEST_TIMEOUT}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On failure, attach the tail of each server's stderr log (and other daemons' logs)."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for srv in item.stash.get(SERVERS, []):
        rep.sections.append((f"parleyd stderr ({srv.topology}, pid {srv.pid})", srv.log_tail()))
    for title, path in item.stash.get(EXTRA_LOGS, []):
        try:
            text = pathlib.Path(path).read_text(errors="replace")
        except OSError as e:
            text = f"(cannot read {path}: {e})"
        rep.sections.append((title, f"--- tail of {path} ---\n{harness.tail(text)}"))


@pytest.fixture(scope="session")
def parleyd_bin():
    path = pathlib.Path(os.environ.get("PARLEYD") or DEFAULT_BINARY).resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"parleyd binary not found at {path}: build it (make test builds"
                    " build/test) or set PARLEYD=/path/to/parleyd", pytrace=False)
    return path


TOPOLOGIES = ("router", "all")


def pytest_addoption(parser):
    parser.addoption("--topology", action="append", choices=TOPOLOGIES,
                     help="run only against `parleyd router` or `parleyd all` (default: both)")
    _im_addoption(parser)


def pytest_generate_tests(metafunc):
    """Every test that starts parleyd runs against `parleyd router` and `parleyd all`."""
    if "topology" in metafunc.fixturenames:
        chosen = metafunc.config.getoption("topology") or list(TOPOLOGIES)
        metafunc.parametrize("topology", chosen)
    _im_generate_tests(metafunc)


@pytest.fixture
def make_server(request, parleyd_bin, topology, tmp_path):
    """Factory: make_server(components=..., router_opts=...) starts one more parleyd.

    At teardown each server is stopped by PID and must exit 0 without a sanitizer report.
    """
    servers = []
    request.node.stash[SERVERS] = servers

    def make(components=None, secret_files=None, router_opts=None, extra_conf="", start=True):
        if components is None:
            components = {d: random_secret() for d in DOMAINS}
        opts = {"max_stanza_size": f"{MAX_STANZA // 1024}K", "handshake_timeout": "10s"}
        opts.update(router_opts or {})
        srv = harness.ParleyServer(parleyd_bin, tmp_path / f"srv{len(servers)}", topology,
                                   components=components, secret_files=secret_files,
                                   router_opts=opts, extra_conf=extra_conf)
        servers.append(srv)
        if start:
            srv.start()
        return srv

    yield make

    failures = []
    for srv in servers:
        srv.stop()
        for p in srv.problems():
            failures.append(f"{p}\n{srv.log_tail()}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def server(make_server):
    """A running parleyd with components a.test, b.test, c.test, d.test (random secrets)."""
    return make_server()


@pytest.fixture
def raw(server):
    """Factory: raw(domain) -> a RawComponent logged in as domain; raw(None) -> just a socket."""
    clients = []

    def make(domain=None, login=True, srv=None, timeout=5.0):
        s = srv or server
        c = harness.RawComponent(s.port, timeout=timeout, name=f"raw:{domain}")
        clients.append(c)
        if domain is not None and login:
            c.login(domain, s.secret(domain))
        else:
            c.connect()
        return c

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def slix(server):
    """Factory: slix(domain) -> a connected slixmpp component of the default server."""
    pool = harness.SlixPool(server.port)

    def make(domain, secret=None, timeout=5.0):
        return pool.component(domain, secret or server.secret(domain), timeout)

    make.pool = pool
    yield make
    pool.close()


# ---------------------------------------------------------------------------
# The IM suite (test_im_*.py, test_cli_client.py): a whole server and real clients; see im.py.

import shutil  # noqa: E402

import im  # noqa: E402

IM_TOPOLOGIES = ("all", "split", "processes")


def _im_addoption(parser):
    parser.addoption("--im-topology", action="append", choices=IM_TOPOLOGIES,
                     help="IM suite: run only against `parleyd all`, the split processes"
                          " (router, sm, c2s) or `parleyd all --processes`; default: all three")


def _im_generate_tests(metafunc):
    """Every IM test runs against every topology (once against Prosody, see im.py)."""
    if "im_topology" in metafunc.fixturenames:
        if im.is_prosody():
            chosen = ["prosody"]
        else:
            chosen = metafunc.config.getoption("im_topology") or list(IM_TOPOLOGIES)
        metafunc.parametrize("im_topology", chosen)


@pytest.fixture
def make_im(request, im_topology, tmp_path):
    """Factory: make_im(users=..., offline_max=..., max_auth_attempts=...) -> a started IMServer.

    At teardown its processes are stopped by PID and must exit 0 without a sanitizer report.
    """
    servers = []
    logs = []
    request.node.stash[EXTRA_LOGS] = logs
    if im.is_prosody():
        binary = None
        if not shutil.which("prosody"):
            pytest.fail("PARLEY_E2E_SERVER=prosody needs Prosody: scripts/install-deps.sh test",
                        pytrace=False)
    else:
        binary = pathlib.Path(os.environ.get("PARLEYD") or DEFAULT_BINARY).resolve()
        if not binary.is_file():
            pytest.fail(f"parleyd binary not found at {binary}: build it or set PARLEYD",
                        pytrace=False)

    def make(start=True, **opts):
        srv = im.IMServer(binary, tmp_path / f"im{len(servers)}", im_topology, **opts)
        servers.append(srv)
        try:
            if start:
                srv.start()
        finally:
            logs[:] = [entry for s in servers for entry in s.logs()]
        return srv

    yield make

    failures = []
    for srv in servers:
        srv.stop()
        logs[:] = [entry for s in servers for entry in s.logs()]
        for p in srv.problems():
            failures.append(f"{p}\n{srv.log_tails()}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


@pytest.fixture
def im_server(make_im):
    """A running IM server for localhost with the users alice, bob and carol."""
    return make_im()


@pytest.fixture
def clients(im_server):
    """Factory: clients('alice', resource=..., available=True) -> a logged-in IMClient."""
    pool = im.IMPool(im_server)
    yield pool.client
    pool.close()


@pytest.fixture
def raw_client(im_server):
    """Factory: raw_client(tls_port=False) -> a connected RawClient of the IM server."""
    made = []

    def make(tls_port=False, timeout=5.0, connect=True):
        c = im.RawClient(im_server, tls_port=tls_port, timeout=timeout,
                         name=f"raw-client-{len(made)}")
        made.append(c)
        return c.connect() if connect else c

    yield make
    for c in made:
        c.close()
