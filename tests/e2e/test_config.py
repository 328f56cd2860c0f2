# SPDX-License-Identifier: MIT
"""The command line and the config file: --check-config, errors that name FILE:LINE,
and a server that does not start half-configured."""

import re
import time

import pytest

import harness

pytestmark = pytest.mark.config


def write_conf(path, text):
    path.write_text(text)
    return str(path)


def base_conf(port, secret="s3cret"):
    return (
        "[log]\n"                                  # 1
        "level = info\n"                           # 2
        "\n"                                       # 3
        "[router]\n"                               # 4
        f"listen = 127.0.0.1:{port}\n"             # 5
        "max_stanza_size = 64K\n"                  # 6
        "\n"                                       # 7
        '[component "a.test"]\n'                   # 8
        f'secret = "{secret}"\n'                   # 9
    )


def check(parleyd_bin, conf, topology, cwd):
    return harness.run_parleyd(parleyd_bin, ["--config", conf, "--check-config", topology], cwd)


def assert_clean_stderr(res):
    marker = harness.sanitizer_report(res.stderr)
    assert marker is None, f"sanitizer report ({marker}):\n{res.stderr}"


def test_check_config_accepts_valid_file(parleyd_bin, topology, tmp_path):
    port = harness.free_port()
    conf = write_conf(tmp_path / "parley.conf", base_conf(port))
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 0, res.stderr
    assert_clean_stderr(res)
    assert not harness.port_accepts(port), "--check-config must not start listening"


@pytest.mark.parametrize("section,line_text", [
    ("router", "colour = blue"),
    ("log", "verbosity = 3"),
    ("component", "secrte = typo"),
])
def test_check_config_unknown_key(parleyd_bin, topology, tmp_path, section, line_text):
    port = harness.free_port()
    lines = base_conf(port).splitlines()
    # Insert the unknown key as the last line of the chosen section.
    at = {"log": 2, "router": 6, "component": 9}[section]
    lines.insert(at, line_text)
    conf = write_conf(tmp_path / "parley.conf", "\n".join(lines) + "\n")
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, f"exit {res.returncode}\n{res.stderr}"
    assert f"{conf}:{at + 1}" in res.stderr, res.stderr
    assert_clean_stderr(res)


@pytest.mark.parametrize("key,value", [
    ("max_stanza_size", "lots"),
    ("handshake_timeout", "soon"),
    ("max_stanza_size", "-5K"),
])
def test_check_config_wrong_type(parleyd_bin, topology, tmp_path, key, value):
    port = harness.free_port()
    lines = base_conf(port).splitlines()
    lines.insert(6, f"{key} = {value}")
    if key == "max_stanza_size":
        del lines[5]  # the base line 6, so the key is not a duplicate
        line = 6
    else:
        line = 7
    conf = write_conf(tmp_path / "parley.conf", "\n".join(lines) + "\n")
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, f"exit {res.returncode}\n{res.stderr}"
    assert f"{conf}:{line}" in res.stderr, res.stderr


def test_check_config_unknown_section(parleyd_bin, topology, tmp_path):
    conf = write_conf(tmp_path / "parley.conf",
                      base_conf(harness.free_port()) + "\n[routre]\nlisten = 1\n")
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, res.stderr
    assert f"{conf}:11" in res.stderr, res.stderr


def test_check_config_duplicate_component(parleyd_bin, topology, tmp_path):
    conf = write_conf(tmp_path / "parley.conf",
                      base_conf(harness.free_port()) + '\n[component "a.test"]\nsecret = x\n')
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, res.stderr
    assert f"{conf}:11" in res.stderr, res.stderr


def test_check_config_component_without_secret(parleyd_bin, topology, tmp_path):
    conf = write_conf(tmp_path / "parley.conf",
                      base_conf(harness.free_port()) + '\n[component "b.test"]\n')
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, res.stderr
    assert re.search(re.escape(conf) + r":\d+", res.stderr), res.stderr


def missing_secret_conf(tmp_path, port):
    text = base_conf(port) + (
        "\n"                                       # 10
        '[component "b.test"]\n'                   # 11
        "secret_file = secrets/b-missing.txt\n"    # 12
    )
    return write_conf(tmp_path / "parley.conf", text), 12


def test_check_config_missing_secret_file(parleyd_bin, topology, tmp_path):
    conf, line = missing_secret_conf(tmp_path, harness.free_port())
    res = check(parleyd_bin, conf, topology, tmp_path)
    assert res.returncode == 1, res.stderr
    assert f"{conf}:{line}" in res.stderr, res.stderr
    assert "b-missing.txt" in res.stderr, res.stderr


def test_missing_secret_file_nothing_starts(parleyd_bin, topology, tmp_path):
    port = harness.free_port()
    conf, line = missing_secret_conf(tmp_path, port)
    t0 = time.monotonic()
    res = harness.run_parleyd(parleyd_bin, ["--config", conf, topology], tmp_path, timeout=10)
    assert res.returncode != 0, "parleyd started with a missing secret_file"
    assert time.monotonic() - t0 < 10
    assert f"{conf}:{line}" in res.stderr, res.stderr
    assert "b-missing.txt" in res.stderr, res.stderr
    assert "listening on" not in res.stderr, res.stderr
    assert not harness.port_accepts(port)
    assert_clean_stderr(res)


def test_unknown_key_nothing_starts(parleyd_bin, topology, tmp_path):
    port = harness.free_port()
    conf = write_conf(tmp_path / "parley.conf", base_conf(port) + "bogus = 1\n")
    res = harness.run_parleyd(parleyd_bin, ["--config", conf, topology], tmp_path, timeout=10)
    assert res.returncode != 0
    assert f"{conf}:10" in res.stderr, res.stderr
    assert not harness.port_accepts(port)


def test_secret_file_is_used(make_server, tmp_path):
    """secret_file (relative to the config file) holds the secret; the trailing newline of
    the file is not part of it."""
    import secrets as pysecrets
    srv = make_server(components={"a.test": "inline-secret"},
                      secret_files={"b.test": pysecrets.token_hex(12)})
    a = harness.RawComponent(srv.port, name="raw:a.test").login("a.test", "inline-secret")
    b = harness.RawComponent(srv.port, name="raw:b.test").login("b.test", srv.secret("b.test"))
    try:
        a.send(harness.stanza("message", "b.test", "a.test", id="sf"))
        assert b.recv().get("id") == "sf"
    finally:
        a.close()
        b.close()
