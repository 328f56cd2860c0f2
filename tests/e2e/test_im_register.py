# SPDX-License-Identifier: MIT
"""In-band registration (XEP-0077): new accounts before authentication when [c2s] registration
is on (off by default, limited per source address), and for a logged-in user, always, the
registration on file, password changes and account removal.

slixmpp's xep_0077 plugin shows that an independent client registers, changes its password
and cancels its account; the raw client checks the exact elements slixmpp hides.
"""
import subprocess

import pytest

import harness
import im
from harness import dump, local, ns_of
from im import DOMAIN, NS_DISCO_INFO, NS_SASL, NS_STREAM, match, q, roster_items, roster_push

NS_REGISTER = "jabber:iq:register"
NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register"

pytestmark = im.skip_prosody("Parley's registration settings and limits")


def register_query(inner=""):
    return f"<query xmlns='{NS_REGISTER}'>{inner}</query>"


def fields(user=None, password=None):
    out = ""
    if user is not None:
        out += f"<username>{user}</username>"
    if password is not None:
        out += f"<password>{password}</password>"
    return register_query(out)


def ask(c, type, payload, to=None):
    """Sends an iq on a raw stream and returns its answer."""
    id = harness.new_id("reg")
    attrs = f" to='{to}'" if to else ""
    c.send(f"<iq type='{type}' id='{id}'{attrs}>{payload}</iq>")
    return c.recv_until(match("iq", id=id))


def error(el):
    """(type, condition, legacy code) of an iq error; fails if el is not one."""
    assert el.get("type") == "error", f"expected an error: {dump(el)}"
    e = el.find(q(im.NS_CLIENT, "error"))
    conds = [local(c.tag) for c in e if ns_of(c.tag) == im.NS_STANZAS and local(c.tag) != "text"]
    assert len(conds) == 1, dump(el)
    return e.get("type"), conds[0], e.get("code")


def secured(raw_client):
    """A raw client after STARTTLS, and the features of the secured stream."""
    c = raw_client()
    c.open()
    return c, c.starttls()


def has_feature(features):
    return features.find(q(NS_REGISTER_FEATURE, "register")) is not None


def users(srv):
    r = subprocess.run([srv._tool("parleyctl"), "--config", srv.conf_path, "users"],
                       capture_output=True, text=True, timeout=30, cwd=srv.workdir,
                       env=harness.sanitizer_env())
    assert r.returncode == 0 and harness.sanitizer_report(r.stderr) is None, r.stderr
    return r.stdout.split()


def sasl_ok(srv, user, password):
    """Whether user/password authenticates (SCRAM-SHA-256) on a fresh stream."""
    c = im.RawClient(srv, name=f"check-{user}")
    try:
        c.connect()
        c.open()
        c.starttls()
        el = c.auth_scram(user, password, "sha256")
        return el.tag == q(NS_SASL, "success")
    finally:
        c.close()


def slix_register(pool, user, password, timeout=10.0):
    """slixmpp registers user in band (on the <register/> feature), then logs in with it on
    the same stream. Returns (client, None), or (None, condition) when registration failed."""
    from slixmpp.exceptions import IqError

    c = im.IMClient(pool, user, password, None, None, False)
    c.xmpp.register_plugin("xep_0077")
    # slixmpp 1.8 holds every stanza but bind back until a session starts, the registration
    # iq too (its own register example cannot work so); let it through.
    c.xmpp._always_send_everything = True
    outcome = {}

    async def on_register(form):
        outcome["form"] = form
        resp = c.xmpp.Iq()
        resp["type"] = "set"
        resp["register"]["username"] = user
        resp["register"]["password"] = password
        try:
            await resp.send(timeout=5)
        except IqError as e:
            outcome["error"] = e.iq["error"]["condition"]
            c.xmpp.disconnect()

    c.xmpp.add_event_handler("register", on_register)
    pool.clients.append(c)
    try:
        c.start(timeout)
    except AssertionError:
        assert "error" in outcome, f"{user}: no session, and registration did not fail"
        return None, outcome["error"]
    assert "form" in outcome, f"{user}: logged in without registering (no <register/>?)"
    return c, None


# ---------------------------------------------------------------------------
# Registration off (the default)


def test_registration_off(im_server, raw_client):
    """No <register/> feature; XEP-0077 §3.1: a host without in-band registration answers
    <service-unavailable/>, to the get and to the set."""
    c, features = secured(raw_client)
    assert not has_feature(features), dump(features)
    for type, payload in (("get", register_query()), ("set", fields("dave", "secret"))):
        assert error(ask(c, type, payload)) == ("cancel", "service-unavailable", "503")
    assert "dave" not in users(im_server)
    # The stream goes on: an account logs in.
    assert c.auth_plain("alice", im_server.users["alice"]).tag == q(NS_SASL, "success")


# ---------------------------------------------------------------------------
# Registration on


def test_register_slixmpp_then_login(make_im):
    """slixmpp registers dave, logs in on the same stream; a second registration of the
    name gets <conflict/>; dave logs in again later."""
    srv = make_im(registration=True)
    pool = im.IMPool(srv)
    try:
        d, err = slix_register(pool, "dave", "dave-password")
        assert err is None
        assert d.jid.startswith(f"dave@{DOMAIN}/")
        res = d.iq("get", "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
        assert res.get("type") == "result", dump(res)
        assert "dave" in users(srv)
        _, err = slix_register(pool, "dave", "another-password")
        assert err == "conflict"
        assert sasl_ok(srv, "dave", "dave-password")
        assert not sasl_ok(srv, "dave", "another-password")
        d2 = pool.client("dave", password="dave-password", resource="second")
        assert d2.jid == f"dave@{DOMAIN}/second"
    finally:
        pool.close()


def test_register_raw(make_im):
    """The exact elements: features per stage, the form, each refusal, the result, then SASL
    with the new account on the same stream."""
    srv = make_im(registration=True)
    c = im.RawClient(srv)
    try:
        c.connect()
        # RFC 6120 §5.3.1: with TLS required only STARTTLS is offered in the clear, and a
        # registration there is refused (XEP-0077 §11, with §3.3's condition).
        features = c.open()
        assert [x.tag for x in features] == [q(im.NS_TLS, "starttls")], dump(features)
        assert error(ask(c, "set", fields("erin", "secret"))) == ("modify", "not-authorized", "401")
        features = c.starttls()
        assert has_feature(features) and c.mechanisms(), dump(features)
        form = ask(c, "get", register_query()).find(q(NS_REGISTER, "query"))
        assert [local(x.tag) for x in form] == ["instructions", "username", "password"], dump(form)
        assert (form.find(q(NS_REGISTER, "instructions")).text or "").strip()
        # XEP-0077 §3.1: missing or empty fields, a name nodeprep refuses.
        for payload in (fields("erin"), fields(password="secret"), fields("erin", ""),
                        fields("erin", "<x/>"), fields("bad user", "secret"),
                        fields("erin@elsewhere", "secret")):
            assert error(ask(c, "set", payload)) == ("modify", "not-acceptable", "406"), payload
        # §3.2: removing before authentication; <remove/> beside anything else.
        assert error(ask(c, "set", register_query("<remove/>")))[1] == "unexpected-request"
        assert error(ask(c, "set", register_query("<remove/><username>x</username>")))[:2] == \
            ("modify", "bad-request")
        res = ask(c, "set", fields("Erin", "erin-secret"))
        assert res.get("type") == "result" and len(res) == 0, dump(res)
        # §3.1.1: one account per stream before authenticating.
        assert error(ask(c, "set", fields("frank", "secret")))[1] == "not-acceptable"
        # The new account (nodeprep'd) authenticates here and binds.
        assert c.auth_scram("erin", "erin-secret", "sha256").tag == q(NS_SASL, "success")
        c.open()
        assert c.bind("raw").get("type") == "result"
    finally:
        c.close()
    assert users(srv) == ["alice", "bob", "carol", "erin"]
    c = im.RawClient(srv, name="conflict")
    try:
        c.connect()
        c.open()
        c.starttls()
        res = ask(c, "set", fields("alice", "not-alices"), to=DOMAIN)
        assert error(res) == ("cancel", "conflict", "409")
        assert b"not-alices" not in bytes(c.received), "the password was echoed"
    finally:
        c.close()
    assert sasl_ok(srv, "alice", srv.users["alice"])


def test_register_rate_limit(make_im):
    """registration_per_ip from 127.0.0.1: the next registration is refused with
    <resource-constraint/> (wait); names taken or refused do not count."""
    srv = make_im(registration=True, registration_per_ip=2)

    def register(user):
        c = im.RawClient(srv, name=f"reg-{user}")
        try:
            c.connect()
            c.open()
            c.starttls()
            return ask(c, "set", fields(user, f"{user}-secret"))
        finally:
            c.close()

    assert error(register("alice"))[1] == "conflict"
    assert register("gina").get("type") == "result"
    assert register("hank").get("type") == "result"
    assert error(register("ivan")) == ("wait", "resource-constraint", "500")
    assert error(register("alice"))[1] == "resource-constraint"
    assert users(srv) == ["alice", "bob", "carol", "gina", "hank"]
    assert sasl_ok(srv, "hank", "hank-secret")
    assert not sasl_ok(srv, "ivan", "ivan-secret")


# ---------------------------------------------------------------------------
# A logged-in user (with registration off: always available)


def test_registered_and_disco(im_server, raw_client):
    """§3.1: <registered/> and the username for an authenticated entity; disco#info of the
    server lists jabber:iq:register (password change and removal are there for everyone)."""
    c = raw_client(connect=False)
    c.login("alice", resource="raw")
    query = ask(c, "get", register_query()).find(q(NS_REGISTER, "query"))
    assert query.find(q(NS_REGISTER, "registered")) is not None, dump(query)
    assert query.findtext(q(NS_REGISTER, "username")) == "alice"
    info = ask(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
    feats = [f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))]
    assert NS_REGISTER in feats, dump(info)


def test_register_module_disabled(make_im):
    """[sm] disable = register: no feature in disco, and the iq is <service-unavailable/>."""
    srv = make_im(sm_disable=("register",))
    c = im.RawClient(srv)
    try:
        c.login("alice", resource="raw")
        info = ask(c, "get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
        assert NS_REGISTER not in [f.get("var") for f in info.iter(q(NS_DISCO_INFO, "feature"))]
        assert error(ask(c, "get", register_query()))[1] == "service-unavailable"
    finally:
        c.close()


def test_password_change(im_server, clients, raw_client):
    """slixmpp changes alice's password (§3.3): the new one logs in, the old one no longer;
    another user's name is <bad-request/>, an empty password <not-acceptable/> and keeps the
    one there is."""
    a = clients("alice")
    old = im_server.users["alice"]
    a.xmpp.register_plugin("xep_0077")
    a.pool.run(a.xmpp["xep_0077"].change_password("alice-new-secret"), timeout=10)
    assert sasl_ok(im_server, "alice", "alice-new-secret")
    assert not sasl_ok(im_server, "alice", old)
    c = raw_client(connect=False)
    c.login("alice", password="alice-new-secret", resource="raw")
    res = ask(c, "set", fields("bob", "taken-over"))
    assert error(res)[:2] == ("modify", "bad-request")
    assert b"taken-over" not in bytes(c.received), "the password was echoed"
    assert error(ask(c, "set", fields("alice", ""))) == ("modify", "not-acceptable", "406")
    assert error(ask(c, "set", fields("alice")))[1] == "bad-request"
    # The bare JID names the account too, and 'to' may be the server.
    res = ask(c, "set", fields(f"alice@{DOMAIN}", "third-secret"), to=DOMAIN)
    assert res.get("type") == "result", dump(res)
    assert sasl_ok(im_server, "alice", "third-secret")
    assert sasl_ok(im_server, "bob", im_server.users["bob"])


def test_password_change_refused_without_tls(make_im):
    """§3.3: on a stream without TLS (require_tls = no) a new password is not accepted."""
    srv = make_im(require_tls=False)
    c = im.RawClient(srv)
    try:
        c.connect()
        c.open()
        assert c.auth_scram("alice", srv.users["alice"], "sha256").tag == q(NS_SASL, "success")
        c.open()
        assert c.bind("plain").get("type") == "result"
        assert error(ask(c, "set", fields("alice", "in-the-clear"))) == \
            ("modify", "not-authorized", "401")
    finally:
        c.close()
    assert sasl_ok(srv, "alice", srv.users["alice"])


def test_account_removal(im_server, clients, raw_client):
    """§3.2: <remove/> is answered, then every session of the account gets the
    <not-authorized/> stream error; contacts see it leave and its subscriptions cancelled;
    the account and its data are gone."""
    a2 = clients("alice", resource="phone", available=True)
    b = clients("bob", available=True)
    a2.roster_get()
    b.roster_get()
    im.subscribe_both(a2, b)
    a1 = raw_client(connect=False)
    a1.login("alice", resource="raw")
    res = ask(a1, "set", register_query("<remove/>"))
    assert res.get("type") == "result" and len(res) == 0, dump(res)
    cond, _ = a1.expect_stream_error()
    assert cond == "not-authorized"
    # The other session is closed the same way.
    err = a2.recv(lambda el: el.tag == q(NS_STREAM, "error"), timeout=5)
    assert harness.stream_error_condition(err) == "not-authorized", dump(err)
    # Bob sees alice leave, then his subscriptions with her end (RFC 6121 §3.2, §3.3).
    b.recv(match("presence", type="unavailable", frm=f"alice@{DOMAIN}/phone"))
    b.recv(match("presence", type="unsubscribed", frm=f"alice@{DOMAIN}"))
    for _ in range(2):
        item = roster_items(b.recv(roster_push(f"alice@{DOMAIN}")))[f"alice@{DOMAIN}"]
        if item["subscription"] == "none":
            break
    assert item["subscription"] == "none", item
    # Gone: not listed, cannot log in, nothing for her is accepted.
    assert "alice" not in users(im_server)
    assert not sasl_ok(im_server, "alice", im_server.users["alice"])
    b.message(f"alice@{DOMAIN}", "still there?", id="gone")
    assert im.error_of(b.recv(match("message", type="error", id="gone")))[1] == \
        "service-unavailable"
    # A new alice starts with nothing of the old one's.
    im_server.adduser("alice", "new-alice")
    na = clients("alice", password="new-alice")
    assert roster_items(na.roster_get()) == {}


@pytest.mark.slixmpp
def test_account_removal_slixmpp(im_server, clients):
    """slixmpp's cancel_registration: the result, then the stream closes."""
    c = clients("carol")
    c.xmpp.register_plugin("xep_0077")
    c.pool.run(c.xmpp["xep_0077"].cancel_registration(), timeout=10)
    err = c.recv(lambda el: el.tag == q(NS_STREAM, "error"), timeout=5)
    assert harness.stream_error_condition(err) == "not-authorized", dump(err)
    assert "carol" not in users(im_server)
