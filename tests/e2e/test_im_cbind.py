# SPDX-License-Identifier: MIT
"""SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS: channel binding (RFC 5802 §6) with tls-unique
(RFC 5929 §3), tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929 §4), the types
announced with XEP-0440, and the exchanges a server must refuse.

Clients: slixmpp (tls-unique over TLS 1.2, the only type it knows); aiosasl, Debian's
independent SCRAM-PLUS implementation, for every type (with its own tls-unique and
tls-server-end-point code; the exporter value comes from pyOpenSSL); our raw client (im.Scram
over scram_client.TLSSocket, checked first against the RFC 5802 and RFC 7677 test vectors
and against aiosasl) for exact failures and for what broken or hostile clients send. See
README.md for the Debian clients that have no channel binding.
"""

import base64
import os
import ssl
import time
import types

import aiosasl
import aiosasl.scram
import pytest

import im
from harness import dump
from im import NS_SASL, q, skip_prosody
from scram_client import (NS_SASL_CB, TLS12, TLS13, TLS_EXPORTER, TLS_SERVER_END_POINT,
                          TLS_UNIQUE, PlusClient, TLSExporter, aiosasl_auth, mech_name,
                          run_apart, session_reused)

pytestmark = pytest.mark.raw

# What the client offers: the highest TLS version and the extended master secret (RFC 7627).
PROFILES = {"tls13": (TLS13, True), "tls12": (TLS12, True), "tls12-no-ems": (TLS12, False)}
VERSION_NAME = {TLS13: "TLSv1.3", TLS12: "TLSv1.2"}

# (server certificate, client profile) -> the types that apply (RFC 5929, RFC 9266): tls-unique
# only over TLS 1.2, and with tls-exporter over 1.2 only with the extended master secret;
# tls-server-end-point only for a certificate whose signature has one hash (not Ed25519).
APPLY = {
    ("rsa", "tls13"): [TLS_EXPORTER, TLS_SERVER_END_POINT],
    ("rsa", "tls12"): [TLS_UNIQUE, TLS_EXPORTER, TLS_SERVER_END_POINT],
    ("rsa", "tls12-no-ems"): [TLS_SERVER_END_POINT],
    ("ed25519", "tls13"): [TLS_EXPORTER],
    ("ed25519", "tls12"): [TLS_UNIQUE, TLS_EXPORTER],
    ("ed25519", "tls12-no-ems"): [],
}

PLUS_MECHS = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]
TLS_MECHS = ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
NOT_AUTHORIZED = "not-authorized"

needs_cb_types = skip_prosody("Prosody 0.12 has tls-unique only, and no XEP-0440")


@pytest.fixture
def plus(make_im):
    """Factory: plus(profile, srv=None, tls_port=False, secure=True, session=None) -> a
    PlusClient of srv (default: one server made for the test) whose stream is secured
    (STARTTLS, or direct TLS with tls_port; resuming session if given) unless secure=False
    (then only opened)."""
    made, default = [], []

    def make(profile="tls13", srv=None, tls_port=False, secure=True, session=None):
        if srv is None:
            if not default:
                default.append(make_im())
            srv = default[0]
        tls_max, ems = PROFILES[profile]
        c = PlusClient(srv, tls_port=tls_port, tls_max=tls_max, ems=ems, session=session,
                       name=f"plus-{profile}-{len(made)}")
        made.append(c)
        c.connect()
        if secure:
            c.secure()
            assert c.tls_version() == VERSION_NAME[tls_max], c.tls_version()
        else:
            c.open()
        return c

    yield make
    for c in made:
        c.close()


def server_with_cert(make_im, cert, **opts):
    """A started server whose certificate is RSA (as everywhere) or Ed25519."""
    srv = make_im(start=False, **opts)
    if cert != "rsa":
        im.make_cert(os.path.dirname(srv.cert), newkey=cert)
    return srv.start()


def c2s_log(srv):
    with open(srv.c2s_log_path(), encoding="utf-8", errors="replace") as f:
        return f.read()


def logged_auth(srv, mech, count=1, user="alice"):
    """Waits until c2s has logged user's authentication with exactly mech (count times)."""
    wait_logged(srv, f"{user}@localhost authenticated with {mech}\n", count)


def wait_logged(srv, text, count=1, timeout=3.0):
    """Waits (bounded) until c2s has logged text count times; Prosody's log is not read."""
    if srv.kind != "parley":
        return
    deadline = time.monotonic() + timeout
    while c2s_log(srv).count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"c2s did not log {text!r} {count} time(s) within {timeout}s"
                                 f"\n{srv.log_tails()}")
        time.sleep(0.02)


def check_cb_feature(features, types):
    """XEP-0440 §2 exactly: one <sasl-channel-binding/> holding one empty <channel-binding/>
    with only a type attribute per type that applies, and nothing else; none at all when no
    type applies."""
    found = features.findall(q(NS_SASL_CB, "sasl-channel-binding"))
    if not types:
        assert found == [], dump(features)
        return
    assert len(found) == 1, dump(features)
    cb = found[0]
    assert cb.attrib == {} and not (cb.text or "").strip(), dump(cb)
    got = [(c.tag, sorted(c.attrib.items()), len(c), (c.text or "").strip(),
            (c.tail or "").strip()) for c in cb]
    want = [(q(NS_SASL_CB, "channel-binding"), [("type", t)], 0, "", "") for t in types]
    assert sorted(got) == sorted(want), dump(cb)


def check_failure(c, el, condition=NOT_AUTHORIZED):
    """The exact <failure/> (RFC 6120 §6.5): only the condition, empty, no text."""
    assert el.tag == q(NS_SASL, "failure") and el.attrib == {}, dump(el)
    assert not (el.text or "").strip(), dump(el)
    assert [(k.tag, k.attrib, len(k), k.text) for k in el] == [(q(NS_SASL, condition), {}, 0,
                                                                  None)], dump(el)
    assert c.sasl_failure(el) == condition


def bind_works(c):
    c.open()
    res = c.bind("cb")
    assert res.get("type") == "result", dump(res)


def retry_works(c, cb_type, user="alice"):
    """RFC 6120 §6.4.5: after a <failure/> the client may try again on the same stream."""
    el = c.auth_plus(user, "sha256", cb_type)
    assert el.tag == q(NS_SASL, "success"), f"retry after the failure: {dump(el)}"
    bind_works(c)


# ---------------------------------------------------------------------------
# Our SCRAM client, before it tests the server: the RFC test vectors (no server needed)

VECTORS = {
    # RFC 5802 §5: SCRAM-SHA-1, user "user", password "pencil".
    "rfc5802": ("sha1", "fyko+d2lbbFgONRv9qkxdawL",
                b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
                b"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,"
                b"p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
                b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
    # RFC 7677 §3: SCRAM-SHA-256, the same user and password.
    "rfc7677": ("sha256", "rOprNGfwEbeRWgbNEkqO",
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
                b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
}


@pytest.mark.parametrize("vector", VECTORS)
def test_scram_client_rfc_vectors(vector):
    hash_name, nonce, server_first, client_final, server_final = VECTORS[vector]
    s = im.Scram("user", "pencil", hash_name, nonce=nonce)
    assert s.first() == b"n,,n=user,r=" + nonce.encode()
    assert s.final(server_first) == client_final
    assert s.verify(server_final)
    assert not s.verify(b"v=" + base64.b64encode(bytes(len(s.server_signature))))


class Recorder(aiosasl.SASLInterface):
    """A fake server for aiosasl: answers with a fixed server-first, records what it gets."""

    def __init__(self, server_first):
        super().__init__()
        self.server_first = server_first
        self.sent = []

    async def initiate(self, mechanism, payload=None):
        self.sent.append(payload)
        return aiosasl.SASLState.CHALLENGE, self.server_first

    async def respond(self, payload):
        self.sent.append(payload)
        raise aiosasl.SASLFailure(NOT_AUTHORIZED)

    async def abort(self):
        return aiosasl.SASLState.FAILURE, None


@pytest.mark.parametrize("with_cb", [False, True], ids=["n", "p=tls-exporter"])
@pytest.mark.parametrize("vector", VECTORS)
def test_scram_client_agrees_with_aiosasl(vector, with_cb, monkeypatch):
    """With the vectors' nonce and server-first, aiosasl and our client send the same
    messages, with channel binding too (for which the RFCs have no vectors)."""
    hash_name, nonce, server_first, client_final, _ = VECTORS[vector]
    raw_nonce = base64.b64decode(nonce)
    # aiosasl's nonce is the base64 of getrandbits(8 * nonce_length), little-endian.
    monkeypatch.setattr(aiosasl.scram._system_random, "getrandbits",
                        lambda bits: int.from_bytes(raw_nonce, "little"))
    data = bytes(range(32))

    def exporter(label, length):
        assert (label, length) == (b"EXPORTER-Channel-Binding", 32)  # RFC 9266 §2
        return data

    async def creds():
        return "user", "pencil"

    if with_cb:
        provider = TLSExporter(types.SimpleNamespace(export_keying_material=exporter))
        theirs = aiosasl.SCRAMPLUS(creds, provider, nonce_length=len(raw_nonce))
        ours = im.Scram("user", "pencil", hash_name, nonce=nonce, gs2=b"p=tls-exporter,,",
                        cb_data=data)
    else:
        theirs = aiosasl.SCRAM(creds, nonce_length=len(raw_nonce))
        ours = im.Scram("user", "pencil", hash_name, nonce=nonce)
    rec = Recorder(server_first)
    token = theirs.any_supported([mech_name(hash_name, with_cb)])
    with pytest.raises(aiosasl.SASLError):
        run_apart(theirs.authenticate(aiosasl.SASLStateMachine(rec), token))
    our_final = ours.final(server_first)
    assert rec.sent == [ours.first(), our_final]
    if with_cb:
        assert our_final.startswith(b"c=" + base64.b64encode(b"p=tls-exporter,," + data) + b",")
    else:
        assert our_final == client_final


# ---------------------------------------------------------------------------
# XEP-0440: which types the server announces, and -PLUS only over TLS


@needs_cb_types
@pytest.mark.parametrize("cert", ["rsa", "ed25519"])
def test_xep0440_announces_the_types_that_apply(make_im, plus, cert):
    """Over each TLS profile, on the STARTTLS and the direct TLS port: the feature lists
    exactly the types of APPLY, and -PLUS is offered exactly when one applies."""
    srv = server_with_cert(make_im, cert)
    for profile in PROFILES:
        for tls_port in (False, True):
            c = plus(profile, srv=srv, tls_port=tls_port)
            applies = APPLY[(cert, profile)]
            check_cb_feature(c.features, applies)
            assert c.mechanisms() == (PLUS_MECHS if applies else []) + TLS_MECHS, \
                (profile, tls_port, dump(c.features))
            # Each announced type can be computed by the client (none is undefined here).
            assert all(c.binding(t) for t in applies)


@needs_cb_types
def test_xep0440_feature_only_before_auth(plus):
    """After SASL the restarted stream offers binding, neither SASL nor channel binding."""
    c = plus("tls13")
    assert c.auth_plus("alice", "sha256", TLS_EXPORTER).tag == q(NS_SASL, "success")
    features = c.open()
    check_cb_feature(features, [])
    assert c.mechanisms(features) == []


@skip_prosody("a private Prosody requires TLS")
def test_plus_only_over_tls(make_im, plus):
    """In the clear (TLS optional): no -PLUS, no XEP-0440 feature, no PLAIN; asking for a
    -PLUS mechanism there is <invalid-mechanism/> (RFC 6120 §6.5.8). After STARTTLS on the
    same connection both appear."""
    srv = make_im(require_tls=False)
    c = plus(srv=srv, secure=False)
    check_cb_feature(c.features, [])
    assert c.mechanisms() == ["SCRAM-SHA-256", "SCRAM-SHA-1"], dump(c.features)
    c._sasl_auth("SCRAM-SHA-1-PLUS", b"p=tls-exporter,,n=alice,r=abcdefgh")
    check_failure(c, c.recv(), "invalid-mechanism")
    features = c.starttls()
    check_cb_feature(features, APPLY[("rsa", "tls13")])
    assert c.mechanisms() == PLUS_MECHS + TLS_MECHS
    retry_works(c, TLS_EXPORTER)


# ---------------------------------------------------------------------------
# Each type logs in: our client and aiosasl, both hashes


LOGINS = [
    pytest.param("tls13", TLS_EXPORTER, False, id="tls13-exporter"),
    pytest.param("tls13", TLS_EXPORTER, True, id="tls13-exporter-direct"),
    pytest.param("tls13", TLS_SERVER_END_POINT, False, id="tls13-server-end-point"),
    pytest.param("tls13", TLS_SERVER_END_POINT, True, id="tls13-server-end-point-direct"),
    pytest.param("tls12", TLS_UNIQUE, False, id="tls12-unique"),
    pytest.param("tls12", TLS_EXPORTER, False, id="tls12-exporter"),
    pytest.param("tls12", TLS_SERVER_END_POINT, False, id="tls12-server-end-point"),
    pytest.param("tls12-no-ems", TLS_SERVER_END_POINT, False, id="tls12-no-ems-server-end-point"),
]


@needs_cb_types
@pytest.mark.parametrize("profile,cb_type,tls_port", LOGINS)
def test_plus_login(plus, profile, cb_type, tls_port):
    """SCRAM-SHA-1-PLUS and SCRAM-SHA-256-PLUS with the type succeed for aiosasl and for our
    client (each checks the server's signature), c2s logs the -PLUS mechanism, and the
    session binds."""
    for n, (client, hash_name) in enumerate([(cl, h) for cl in ("ours", "aiosasl")
                                             for h in ("sha1", "sha256")]):
        c = plus(profile, tls_port=tls_port)
        assert cb_type in c.cb_types(), dump(c.features)
        mech = mech_name(hash_name, True)
        if client == "ours":
            el = c.auth_plus("alice", hash_name, cb_type)
        else:
            el = aiosasl_auth(c, "alice", mech, cb_type)
        assert el.tag == q(NS_SASL, "success"), f"{client}: {mech} with {cb_type}: {dump(el)}"
        logged_auth(c.server, mech, count=n // 2 + 1)
        bind_works(c)
    assert "authentication failed" not in c2s_log(c.server)


@needs_cb_types
@pytest.mark.parametrize("profile,cb_type", [
    pytest.param("tls13", TLS_EXPORTER, id="tls13-exporter"),
    pytest.param("tls13", TLS_SERVER_END_POINT, id="tls13-server-end-point"),
    pytest.param("tls12", TLS_UNIQUE, id="tls12-unique"),
    pytest.param("tls12", TLS_EXPORTER, id="tls12-exporter"),
])
def test_plus_login_resumed_session(plus, profile, cb_type):
    """A session resumed with the server's ticket binds as well. For tls-unique the first
    Finished of a resumed handshake is the server's (RFC 5929 §3.1): the client's own, right
    after a full handshake, is refused there."""
    first = plus(profile)
    session = first.tls_conn.get_session()
    first.close()
    c = plus(profile, srv=first.server, session=session)
    assert session_reused(c.tls_conn), "the server did not resume the session"
    check_cb_feature(c.features, APPLY[("rsa", profile)])
    if cb_type == TLS_UNIQUE:
        check_failure(c, c.auth_plus("alice", "sha256", cb_type, data=c.tls_conn.get_finished()))
        wait_logged(c.server, "authentication failed: channel binding mismatch")
    retry_works(c, cb_type)
    logged_auth(c.server, "SCRAM-SHA-256-PLUS")


@pytest.mark.slixmpp
@pytest.mark.parametrize("direct_tls", [False, True], ids=["starttls", "direct-tls"])
@pytest.mark.parametrize("mech", [None, "SCRAM-SHA-1-PLUS"], ids=["its-choice", "sha1-plus"])
def test_slixmpp_tls_unique_over_tls12(clients, im_server, mech, direct_tls):
    """slixmpp over TLS 1.2 chooses SCRAM-*-PLUS with tls-unique by itself (or as told),
    logs in at the first attempt, and checks the server's signature."""
    a = clients("alice", mech=mech, direct_tls=direct_tls, channel_binding=True,
                tls_max=ssl.TLSVersion.TLSv1_2, resource="cb")
    x = a.xmpp
    assert x.socket.version() == "TLSv1.2"
    chosen = x["feature_mechanisms"].mech
    # The strongest offered: Prosody keeps SCRAM-SHA-1 keys only.
    assert chosen.name == (mech or ("SCRAM-SHA-1-PLUS" if im.is_prosody() else
                                    "SCRAM-SHA-256-PLUS"))
    assert chosen.gs2_header == b"p=tls-unique,,"
    assert not [el for el in a.pending if el.tag == q(NS_SASL, "failure")]
    logged_auth(im_server, chosen.name)
    if im_server.kind == "parley":
        assert "authentication failed" not in c2s_log(im_server)
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=im.DOMAIN)
    assert res.get("type") == "result", dump(res)


# ---------------------------------------------------------------------------
# Refused: each with <not-authorized/>, the reason in c2s's log, and a retry that works


def flipped(data):
    return data[:-1] + bytes([data[-1] ^ 0x01])


MISMATCHES = [
    pytest.param("tls13", TLS_EXPORTER, "flipped", id="exporter-flipped-bit"),
    pytest.param("tls13", TLS_EXPORTER, "truncated", id="exporter-truncated"),
    pytest.param("tls13", TLS_EXPORTER, "empty", id="exporter-empty"),
    pytest.param("tls13", TLS_EXPORTER, "other-connection", id="exporter-other-connection"),
    pytest.param("tls13", TLS_EXPORTER, "other-type", id="exporter-with-end-point-data"),
    pytest.param("tls13", TLS_SERVER_END_POINT, "flipped", id="end-point-flipped-bit"),
    pytest.param("tls13", TLS_SERVER_END_POINT, "other-type", id="end-point-with-exporter-data"),
    pytest.param("tls12", TLS_UNIQUE, "flipped", id="unique-flipped-bit"),
    pytest.param("tls12", TLS_UNIQUE, "other-connection", id="unique-other-connection"),
    pytest.param("tls12", TLS_EXPORTER, "other-connection", id="tls12-exporter-other-connection"),
]


@needs_cb_types
@pytest.mark.parametrize("profile,cb_type,how", MISMATCHES)
def test_cb_mismatch_rejected(plus, profile, cb_type, how):
    """RFC 5802 §6: c= must carry this connection's binding data; any other bytes, among
    them another connection's (what a relaying attacker has), are refused."""
    c = plus(profile)
    good = c.binding(cb_type)
    if how == "flipped":
        data = flipped(good)
    elif how == "truncated":
        data = good[:-1]
    elif how == "empty":
        data = b""
    elif how == "other-connection":
        data = plus(profile, srv=c.server).binding(cb_type)
    else:
        other = TLS_SERVER_END_POINT if cb_type == TLS_EXPORTER else TLS_EXPORTER
        data = c.binding(other)
    assert data != good
    if data == b"":
        # The client sends no data; Scram puts the gs2 header alone in c=.
        el = c.auth_scram("alice", c.password("alice"), "sha256", mech="SCRAM-SHA-256-PLUS",
                          gs2=f"p={cb_type},,".encode(), cb_data=b"")
    else:
        el = c.auth_plus("alice", "sha256", cb_type, data=data)
    check_failure(c, el)
    wait_logged(c.server, "authentication failed: channel binding mismatch")
    retry_works(c, cb_type)


@needs_cb_types
def test_cb_header_mismatch_rejected(plus):
    """c= must start with the gs2 header of the client-first message (RFC 5802 §7: cbind-input
    = gs2-header [cbind-data]); the right data behind another header is refused."""
    c = plus("tls13")
    s = im.Scram("alice", c.password("alice"), "sha256", gs2=b"p=tls-exporter,,",
                 cb_data=c.binding(TLS_EXPORTER))
    c._sasl_auth("SCRAM-SHA-256-PLUS", s.first())
    challenge = c.recv()
    assert challenge.tag == q(NS_SASL, "challenge"), dump(challenge)
    s.gs2 = b"p=tls-server-end-point,,"
    c._sasl("response", s.final(base64.b64decode(challenge.text)))
    check_failure(c, c.recv())
    wait_logged(c.server, "authentication failed: channel binding mismatch")
    retry_works(c, TLS_EXPORTER)


@needs_cb_types
@pytest.mark.parametrize("client,hash_name", [("ours", "sha1"), ("aiosasl", "sha256")])
@pytest.mark.parametrize("profile", ["tls13", "tls12", "tls12-no-ems"])
def test_y_flag_while_plus_offered_rejected(plus, profile, client, hash_name):
    """RFC 5802 §6: 'y' says "I could bind, but the server cannot"; where we offered -PLUS,
    someone removed it on the way (a downgrade), so the attempt is refused."""
    c = plus(profile)
    assert c.mechanisms()[:2] == PLUS_MECHS, dump(c.features)
    mech = mech_name(hash_name, False)
    if client == "ours":
        el = c.auth_scram("alice", c.password("alice"), hash_name, gs2=b"y,,")
    else:
        el = aiosasl_auth(c, "alice", mech, after_plus=True)
    check_failure(c, el)
    wait_logged(c.server, "authentication failed: downgrade: 'y' while -PLUS was offered")
    retry_works(c, TLS_SERVER_END_POINT)


@needs_cb_types
@pytest.mark.parametrize("mech,gs2,reason", [
    pytest.param("SCRAM-SHA-256-PLUS", b"n,,", "-PLUS mechanism without channel binding",
                 id="plus-with-n"),
    pytest.param("SCRAM-SHA-1-PLUS", b"y,,", "-PLUS mechanism without channel binding",
                 id="plus-with-y"),
    pytest.param("SCRAM-SHA-256", b"p=tls-exporter,,",
                 "channel binding with a mechanism without -PLUS", id="p-without-plus"),
])
def test_gs2_flag_must_match_mechanism(plus, mech, gs2, reason):
    """RFC 5802 §6: -PLUS is exactly the mechanism with p=; the flag and the name must agree."""
    c = plus("tls13")
    hash_name = "sha1" if "SHA-1" in mech else "sha256"
    data = c.binding(TLS_EXPORTER) if gs2.startswith(b"p=") else b""
    el = c.auth_scram("alice", c.password("alice"), hash_name, mech=mech, gs2=gs2,
                      cb_data=data)
    check_failure(c, el)
    wait_logged(c.server, f"authentication failed: {reason}")
    retry_works(c, TLS_EXPORTER)


@needs_cb_types
@pytest.mark.parametrize("profile,cb_type,client", [
    pytest.param("tls13", TLS_UNIQUE, "ours", id="unique-over-tls13"),
    pytest.param("tls13", TLS_UNIQUE, "aiosasl", id="unique-over-tls13-aiosasl"),
    pytest.param("tls12-no-ems", TLS_UNIQUE, "ours", id="unique-without-ems"),
    pytest.param("tls12-no-ems", TLS_EXPORTER, "ours", id="exporter-without-ems"),
    pytest.param("tls13", "tls-not-a-type", "ours", id="unknown-type"),
])
def test_unavailable_type_rejected(plus, profile, cb_type, client):
    """p= with a type that does not apply to this connection (tls-unique is undefined for
    TLS 1.3, RFC 9266 §1; without the extended master secret neither tls-unique nor
    tls-exporter identifies the connection, RFC 7627 / RFC 9266 §2) or that we do not know:
    refused, whatever data comes with it. The naive client sends TLS 1.3's Finished."""
    c = plus(profile)
    assert cb_type not in c.cb_types(), dump(c.features)
    if client == "aiosasl":
        el = aiosasl_auth(c, "alice", "SCRAM-SHA-256-PLUS", cb_type)
    else:
        data = bytes(32) if cb_type not in (TLS_UNIQUE, TLS_EXPORTER) else c.binding(cb_type)
        el = c.auth_plus("alice", "sha256", cb_type, data=data)
    check_failure(c, el)
    wait_logged(c.server, "authentication failed: channel binding type not available")
    retry_works(c, TLS_SERVER_END_POINT if profile != "tls13" else TLS_EXPORTER)


@needs_cb_types
@pytest.mark.parametrize("where", ["in-the-clear", "tls12-no-ems-ed25519"])
def test_y_flag_accepted_without_plus(make_im, plus, where):
    """RFC 5802 §6: 'y' where the server offered no -PLUS is a client that would bind, talking
    to a server that cannot: accepted. Over TLS this happens only when no type applies: TLS
    1.2 without the extended master secret and a certificate without tls-server-end-point."""
    if where == "in-the-clear":
        srv = make_im(require_tls=False)
        c = plus(srv=srv, secure=False)
    else:
        srv = server_with_cert(make_im, "ed25519")
        c = plus("tls12-no-ems", srv=srv)
    check_cb_feature(c.features, [])
    assert not [m for m in c.mechanisms() if m.endswith("-PLUS")], dump(c.features)
    el = c.auth_scram("alice", c.password("alice"), "sha256", gs2=b"y,,")
    assert el.tag == q(NS_SASL, "success"), dump(el)
    logged_auth(srv, "SCRAM-SHA-256")
    bind_works(c)
