# SPDX-License-Identifier: MIT
"""Client streams: STARTTLS, SASL (PLAIN, SCRAM-SHA-1, SCRAM-SHA-256), retries and their limit,
direct TLS (XEP-0368), resource binding, resource conflicts, the legacy session.

RFC 6120 §5 (TLS), §6 (SASL), §7 (binding); the raw client shows the exact elements, slixmpp
shows that an independent client logs in.
"""

import pytest

import im
from harness import dump, local, stream_error_condition
from im import (DOMAIN, NS_BIND, NS_CLIENT, NS_SASL, NS_SESSION, NS_STREAM, NS_TLS, match, q,
                skip_prosody, xfail_prosody)

pytestmark = pytest.mark.raw


def children(el):
    return [c.tag for c in el]


# ---------------------------------------------------------------------------
# Before TLS


def test_stream_header_and_features_before_tls(raw_client):
    """RFC 6120 §4.7 header; §5.3.1: with TLS mandatory, only <starttls><required/></starttls>."""
    c = raw_client()
    features = c.open()
    hdr = c.header
    assert hdr.tag == q(NS_STREAM, "stream")
    assert hdr.get("from") == DOMAIN
    assert hdr.get("version") == "1.0"
    assert hdr.get("id"), "the stream header has no id"
    assert children(features) == [q(NS_TLS, "starttls")], dump(features)
    starttls = features.find(q(NS_TLS, "starttls"))
    assert children(starttls) == [q(NS_TLS, "required")], dump(features)


@pytest.mark.parametrize("mech", ["PLAIN", "SCRAM-SHA-1"])
def test_auth_without_tls_refused(raw_client, im_server, mech):
    """RFC 6120 §6.5.4: <auth/> in the clear while TLS is required -> <encryption-required/>."""
    c = raw_client()
    c.open()
    if mech == "PLAIN":
        el = c.auth_plain("alice", im_server.users["alice"])
    else:
        el = c.auth_scram("alice", im_server.users["alice"], "sha1")
    assert c.sasl_failure(el) == "encryption-required"
    # And the stream can still be secured; then the same account logs in.
    c.starttls()
    assert c.auth_plain("alice", im_server.users["alice"]).tag == q(NS_SASL, "success")


@xfail_prosody("answers a stanza sent before authentication with a stanza error, not the"
               " <not-authorized/> stream error of RFC 6120 §4.9.3.12")
def test_stanza_before_auth_is_not_authorized(raw_client):
    """RFC 6120 §4.9.3.12: a stanza before authentication -> <not-authorized/> stream error."""
    c = raw_client()
    c.open()
    c.starttls()
    c.send(f"<message to='bob@{DOMAIN}' type='chat' id='early'><body>x</body></message>")
    cond, _ = c.expect_stream_error()
    assert cond == "not-authorized"


# ---------------------------------------------------------------------------
# SASL


def test_mechanisms_after_tls(raw_client):
    c = raw_client()
    c.open()
    features = c.starttls()
    assert features.find(q(NS_TLS, "starttls")) is None, dump(features)
    mechs = c.mechanisms()
    assert "PLAIN" in mechs and "SCRAM-SHA-1" in mechs, mechs
    if not im.is_prosody():
        assert "SCRAM-SHA-256" in mechs, mechs


@pytest.mark.parametrize("mech", [
    "plain", "sha1",
    pytest.param("sha256", marks=skip_prosody("internal_hashed keeps SCRAM-SHA-1 keys only")),
])
def test_login_raw(raw_client, im_server, mech):
    """Each mechanism authenticates (the server's SCRAM signature checked) and binds."""
    c = raw_client(connect=False)
    jid = c.login("alice", mech=mech, resource="raw")
    assert jid == f"alice@{DOMAIN}/raw"
    # After authentication the features offer binding (RFC 6120 §7.2), not SASL again.
    assert c.features.find(q(NS_BIND, "bind")) is not None, dump(c.features)
    assert c.features.find(q(NS_SASL, "mechanisms")) is None, dump(c.features)


@pytest.mark.slixmpp
@pytest.mark.parametrize("mech", [
    None, "PLAIN", "SCRAM-SHA-1",
    pytest.param("SCRAM-SHA-256",
                 marks=skip_prosody("internal_hashed keeps SCRAM-SHA-1 keys only")),
])
def test_login_slixmpp(clients, mech):
    """slixmpp logs in with the mechanism it picks (None) or the one forced (no channel
    binding: see IMPool.client)."""
    a = clients("alice", mech=mech, resource="slix")
    assert a.jid == f"alice@{DOMAIN}/slix"
    res = a.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    assert res.get("type") == "result", dump(res)


@pytest.mark.parametrize("mech", ["plain", "sha1"])
def test_wrong_password_then_retry(raw_client, im_server, mech):
    """RFC 6120 §6.4.5: <not-authorized/>, and the client may retry on the same stream."""
    c = raw_client()
    c.open()
    c.starttls()
    if mech == "plain":
        el = c.auth_plain("alice", "not-the-password")
    else:
        el = c.auth_scram("alice", "not-the-password", "sha1")
    assert c.sasl_failure(el) == "not-authorized"
    if mech == "plain":
        el = c.auth_plain("alice", im_server.users["alice"])
    else:
        el = c.auth_scram("alice", im_server.users["alice"], "sha1")
    assert el.tag == q(NS_SASL, "success"), dump(el)
    c.open()
    res = c.bind("retry")
    assert res.get("type") == "result", dump(res)


def test_unknown_user_not_authorized(raw_client):
    """An unknown account fails exactly as a wrong password does (no account enumeration)."""
    c = raw_client()
    c.open()
    c.starttls()
    assert c.sasl_failure(c.auth_plain("nobody", "whatever")) == "not-authorized"
    assert c.sasl_failure(c.auth_scram("nobody", "whatever", "sha1")) == "not-authorized"


def test_unknown_mechanism(raw_client):
    """RFC 6120 §6.5.8: a mechanism not offered -> <invalid-mechanism/>."""
    c = raw_client()
    c.open()
    c.starttls()
    c.send(f"<auth xmlns='{NS_SASL}' mechanism='X-NOT-A-MECH'>=</auth>")
    assert c.sasl_failure(c.recv()) == "invalid-mechanism"


@skip_prosody("no limit on SASL attempts without a community module")
def test_auth_attempts_limit(make_im):
    """RFC 6120 §6.4.5: retries up to a limit, then a stream error (<policy-violation/>)."""
    srv = make_im(max_auth_attempts=3)
    # Two failures, then success: under the limit.
    c = im.RawClient(srv, name="under-limit")
    try:
        c.connect()
        c.open()
        c.starttls()
        for _ in range(2):
            assert c.sasl_failure(c.auth_plain("alice", "wrong")) == "not-authorized"
        assert c.auth_plain("alice", srv.users["alice"]).tag == q(NS_SASL, "success")
    finally:
        c.close()
    # Three failures: the third is the last one allowed on this stream.
    c = im.RawClient(srv, name="over-limit")
    try:
        c.connect()
        c.open()
        c.starttls()
        for _ in range(2):
            assert c.sasl_failure(c.auth_plain("alice", "wrong")) == "not-authorized"
        c._sasl_auth("PLAIN", b"\0alice\0wrong")
        kind, el = c.next_event()
        if kind == "element" and el.tag == q(NS_SASL, "failure"):
            kind, el = c.next_event()  # the failure of the last attempt may come first
        assert kind == "element" and el.tag == q(NS_STREAM, "error"), (kind, el)
        assert stream_error_condition(el) == "policy-violation", dump(el)
        c.expect_closed()
    finally:
        c.close()


# ---------------------------------------------------------------------------
# Direct TLS (XEP-0368)


def test_direct_tls_raw(raw_client, im_server):
    """XEP-0368: TLS from the first byte; no STARTTLS offered; SASL and bind as usual."""
    c = raw_client(tls_port=True)
    features = c.open()
    assert features.find(q(NS_TLS, "starttls")) is None, dump(features)
    assert "PLAIN" in c.mechanisms(), dump(features)
    el = c.auth_scram("bob", im_server.users["bob"], "sha1")
    assert el.tag == q(NS_SASL, "success"), dump(el)
    c.open()
    res = c.bind("direct")
    assert res.get("type") == "result", dump(res)
    assert res.find(f"{q(NS_BIND, 'bind')}/{q(NS_BIND, 'jid')}").text == f"bob@{DOMAIN}/direct"


@pytest.mark.slixmpp
def test_direct_tls_slixmpp_talks_to_starttls_client(clients):
    a = clients("alice", direct_tls=True, available=True, resource="tls")
    b = clients("bob", available=True, resource="starttls")
    b.message(a.jid, "over direct TLS", id="dt-1")
    got = a.recv(match("message", id="dt-1"))
    assert got.get("from") == b.jid and im.body_of(got) == "over direct TLS"


# ---------------------------------------------------------------------------
# Resource binding (RFC 6120 §7)


def test_bind_client_resource(raw_client):
    c = raw_client(connect=False)
    assert c.login("alice", resource="balcony") == f"alice@{DOMAIN}/balcony"


def test_bind_server_generated(raw_client):
    """RFC 6120 §7.6.2.1: no resource requested -> the server makes a unique one."""
    c1, c2 = raw_client(connect=False), raw_client(connect=False)
    j1, j2 = c1.login("alice"), c2.login("alice")
    for j in (j1, j2):
        bare, _, res = j.partition("/")
        assert bare == f"alice@{DOMAIN}" and res, j
    assert j1 != j2


def test_bind_iq_before_bind_answers_only_bind(raw_client, im_server):
    """The result of the bind carries the id of the request (RFC 6120 §7.6.1)."""
    c = raw_client()
    c.open()
    c.starttls()
    assert c.auth_plain("carol", im_server.users["carol"]).tag == q(NS_SASL, "success")
    c.open()
    res = c.bind("x", id="my-bind-id")
    assert res.tag == q(NS_CLIENT, "iq")
    assert (res.get("type"), res.get("id")) == ("result", "my-bind-id"), dump(res)


@pytest.mark.slixmpp
def test_resource_conflict_old_stream_gets_conflict(raw_client, clients, im_server):
    """RFC 6120 §7.7.2.2: the new session takes the resource; the old stream ends with
    <conflict/>; stanzas to that full JID reach the new session."""
    old = raw_client(connect=False)
    assert old.login("alice", resource="same") == f"alice@{DOMAIN}/same"
    new = raw_client(connect=False)
    assert new.login("alice", resource="same") == f"alice@{DOMAIN}/same"
    cond, _ = old.expect_stream_error()
    assert cond == "conflict"
    bob = clients("bob", available=True)
    bob.message(f"alice@{DOMAIN}/same", "to the new one", id="after-conflict")
    got = new.recv_until(lambda el: local(el.tag) == "message")
    assert got.get("id") == "after-conflict" and got.get("from") == bob.jid, dump(got)


def test_legacy_session_answered(raw_client, im_server):
    """RFC 3921 §3 session establishment, still sent by old clients: an empty result."""
    c = raw_client(connect=False)
    c.login("bob", resource="old")
    c.send(f"<iq type='set' id='sess-1'><session xmlns='{NS_SESSION}'/></iq>")
    res = c.recv()
    assert res.tag == q(NS_CLIENT, "iq"), dump(res)
    assert (res.get("type"), res.get("id")) == ("result", "sess-1"), dump(res)
    assert len(res) == 0, dump(res)


def test_session_feature_is_optional(raw_client, im_server):
    """After SASL: <bind/> and, if <session/> is offered, it is marked <optional/>
    (RFC 6121 Appendix E; draft-cridland-xmpp-session)."""
    c = raw_client()
    c.open()
    c.starttls()
    assert c.auth_plain("bob", im_server.users["bob"]).tag == q(NS_SASL, "success")
    features = c.open()
    assert features.find(q(NS_BIND, "bind")) is not None, dump(features)
    sess = features.find(q(NS_SESSION, "session"))
    if sess is not None:
        assert sess.find(q(NS_SESSION, "optional")) is not None, dump(features)
