# SPDX-License-Identifier: MIT
"""What the server keeps for a user: vCards (XEP-0054) with their avatars (XEP-0153), private
XML storage (XEP-0049) and last activity (XEP-0012), each with its errors, across a restart on
both storage backends, and switched off."""

import base64
import hashlib
import time

import pytest

import im
from harness import canon, dump
from im import DOMAIN, NS_DISCO_INFO, NS_STANZAS, error_of, match, q, skip_prosody, subscribe

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's sm modules")]

A, B, C = f"alice@{DOMAIN}", f"bob@{DOMAIN}", f"carol@{DOMAIN}"
NS_VCARD = "vcard-temp"
NS_VCARD_UPDATE = "vcard-temp:x:update"
NS_PRIVATE = "jabber:iq:private"
NS_LAST = "jabber:iq:last"

# A tiny PNG (1x1, transparent) as an avatar.
AVATAR = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")

VCARD = (f"<vCard xmlns='{NS_VCARD}'><FN>Alice Liddell</FN><N><FAMILY>Liddell</FAMILY>"
         "<GIVEN>Alice</GIVEN></N><NICKNAME>alice</NICKNAME>"
         f"<PHOTO><TYPE>image/png</TYPE><BINVAL>{base64.b64encode(AVATAR).decode()}</BINVAL>"
         "</PHOTO><X-PARLEY-UNKNOWN kind='kept'>unknown children are kept</X-PARLEY-UNKNOWN>"
         "<x xmlns='urn:example:ext'><deep a='1'>ext</deep></x></vCard>")


def child(el, ns, name):
    found = el.find(q(ns, name))
    assert found is not None, f"no {{{ns}}}{name} in {dump(el)}"
    return found


def only_child(el, ns, name):
    kids = list(el)
    assert len(kids) == 1 and kids[0].tag == q(ns, name), dump(el)
    return kids[0]


def expect_error(res, etype, cond, frm=None):
    assert res.get("type") == "error", dump(res)
    assert error_of(res) == (etype, cond), dump(res)
    if frm is not None:
        assert res.get("from") == frm, dump(res)


def features(client, to):
    res = client.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=to)
    assert res.get("type") == "result", dump(res)
    return {f.get("var") for f in child(res, NS_DISCO_INFO, "query")
            if f.tag == q(NS_DISCO_INFO, "feature")}


def parse(text):
    import xml.etree.ElementTree as ET
    return ET.fromstring(text)


# ---------------------------------------------------------------------------
# vCards (XEP-0054) and their avatars (XEP-0153)


def vcard_set(client, card=VCARD, to=None):
    return client.iq("set", card, to=to)


def vcard_get(client, to=None):
    return client.iq("get", f"<vCard xmlns='{NS_VCARD}'/>", to=to)


def test_vcard_disco(clients):
    """XEP-0054 §4: vcard-temp on the server and on accounts."""
    a = clients("alice")
    assert NS_VCARD in features(a, DOMAIN)
    assert NS_VCARD in features(a, A)


def test_vcard_own_empty_then_set_and_get(clients):
    """§3.1: no vCard yet gives an empty <vCard/>; §3.2: a set (no 'to') is answered with an
    empty result; the get then returns what was set, unknown children included."""
    a = clients("alice")
    res = vcard_get(a)
    assert res.get("type") == "result" and res.get("to") == a.jid, dump(res)
    card = only_child(res, NS_VCARD, "vCard")
    assert len(card) == 0 and not (card.text or "").strip(), dump(res)
    res = vcard_set(a)
    assert res.get("type") == "result" and len(res) == 0, dump(res)
    for to in (None, A):
        res = vcard_get(a, to=to)
        assert res.get("type") == "result", dump(res)
        got = only_child(res, NS_VCARD, "vCard")
        assert canon(got) == canon(parse(VCARD)), dump(res)


def test_vcard_with_slixmpp(clients):
    """The same through slixmpp's xep_0054: publish, then read back from another account."""
    a = clients("alice")
    b = clients("bob")
    a.xmpp.register_plugin("xep_0054")
    b.xmpp.register_plugin("xep_0054")
    v = a.xmpp["xep_0054"].make_vcard()
    v["FN"] = "Alice Liddell"
    v["NICKNAME"] = "alice"
    v["BDAY"] = "1852-05-04"
    a.pool.run(a.xmpp["xep_0054"].publish_vcard(v), 5.0)
    got = b.pool.run(b.xmpp["xep_0054"].get_vcard(A, cached=False), 5.0)
    assert got["from"] == A
    card = got["vcard_temp"]
    # slixmpp reads NICKNAME as a list (RFC 2426: comma-separated nicknames).
    assert (card["FN"], card["NICKNAME"], card["BDAY"]) == ("Alice Liddell", ["alice"],
                                                             "1852-05-04"), card


def test_vcard_of_another_user(clients):
    """§3.3: anyone reads a user's vCard from the bare JID, answered by the server; a user
    with no vCard and a user that does not exist answer the same service-unavailable."""
    a = clients("alice", available=True)
    b = clients("bob")
    assert vcard_set(a).get("type") == "result"
    res = vcard_get(b, to=A)
    assert res.get("type") == "result" and res.get("from") == A and res.get("to") == b.jid, \
        dump(res)
    assert canon(only_child(res, NS_VCARD, "vCard")) == canon(parse(VCARD)), dump(res)
    # Answered by the server: alice's client never saw the request.
    a.expect_silence(0.3, match("iq", where=lambda el: el.find(q(NS_VCARD, "vCard")) is not None))
    for to in (C, f"nobody@{DOMAIN}"):
        expect_error(vcard_get(b, to=to), "cancel", "service-unavailable", frm=to)


def test_vcard_set_for_another_user_is_forbidden(clients):
    """§3.2: a set to another user's JID is refused (forbidden) and changes nothing."""
    a = clients("alice")
    b = clients("bob")
    assert vcard_set(a).get("type") == "result"
    res = vcard_set(b, f"<vCard xmlns='{NS_VCARD}'><FN>Not Alice</FN></vCard>", to=A)
    expect_error(res, "auth", "forbidden", frm=A)
    assert canon(only_child(vcard_get(a), NS_VCARD, "vCard")) == canon(parse(VCARD))


def test_vcard_to_full_jid_goes_to_the_resource(clients):
    """RFC 6120 §10.5.4: a vCard request for a full JID is the resource's to answer."""
    a = clients("alice", available=True)
    b = clients("bob")
    b.send_raw(f"<iq type='get' id='vc-full' to='{a.jid}'><vCard xmlns='{NS_VCARD}'/></iq>")
    got = a.recv(match("iq", id="vc-full"))
    assert got.get("type") == "get" and got.get("from") == b.jid, dump(got)


def test_vcard_size_limit(make_im):
    """[sm] vcard_max_size: a larger vCard is refused with policy-violation (without the
    vCard echoed back), the stored one stays; one just within the limit is taken."""
    srv = make_im(sm_extra={"vcard_max_size": "2K"})
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        assert vcard_set(a).get("type") == "result"
        big = f"<vCard xmlns='{NS_VCARD}'><DESC>{'x' * 3000}</DESC></vCard>"
        res = vcard_set(a, big)
        expect_error(res, "modify", "policy-violation")
        assert res.find(q(NS_VCARD, "vCard")) is None, dump(res)
        assert canon(only_child(vcard_get(a), NS_VCARD, "vCard")) == canon(parse(VCARD))
        fits = f"<vCard xmlns='{NS_VCARD}'><DESC>{'y' * 1900}</DESC></vCard>"
        assert vcard_set(a, fits).get("type") == "result"
        got = only_child(vcard_get(a), NS_VCARD, "vCard")
        assert child(got, NS_VCARD, "DESC").text == "y" * 1900
    finally:
        pool.close()


def test_vcard_default_limit_takes_a_large_avatar(clients):
    """The default limit (128K) takes a 90 KB photo."""
    a = clients("alice")
    data = base64.b64encode(bytes(range(256)) * 270).decode()
    card = f"<vCard xmlns='{NS_VCARD}'><PHOTO><TYPE>image/png</TYPE><BINVAL>{data}</BINVAL>" \
           "</PHOTO></vCard>"
    assert vcard_set(a, card).get("type") == "result"
    got = only_child(vcard_get(a), NS_VCARD, "vCard")
    assert child(child(got, NS_VCARD, "PHOTO"), NS_VCARD, "BINVAL").text == data


def test_avatar_roundtrip_and_presence_update(clients):
    """XEP-0153: the server stores the PHOTO as given (slixmpp's xep_0153 publishes it) and
    passes <x xmlns='vcard-temp:x:update'/> in presence to a contact untouched; the contact
    gets the vCard from the bare JID and the photo's SHA-1 is the hash it was told."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    subscribe(b, a)
    a.xmpp.register_plugin("xep_0153")
    a.pool.run(a.xmpp["xep_0153"].set_avatar(avatar=AVATAR, mtype="image/png"), 5.0)
    digest = hashlib.sha1(AVATAR).hexdigest()
    # The plugin's own presence after publishing carries the hash.
    got = b.recv(match("presence", frm=a.jid, where=lambda el: el.find(
        f"{q(NS_VCARD_UPDATE, 'x')}/{q(NS_VCARD_UPDATE, 'photo')}") is not None), timeout=5.0)
    photo = got.find(f"{q(NS_VCARD_UPDATE, 'x')}/{q(NS_VCARD_UPDATE, 'photo')}")
    assert photo.text == digest, dump(got)
    # Exact bytes through the server: an update element with an unknown attribute and child.
    a.presence(inner=f"<x xmlns='{NS_VCARD_UPDATE}' extra='1'><photo>{digest}</photo>"
                     "<other xmlns='urn:example:o'>kept</other></x>")
    got = b.recv(match("presence", frm=a.jid, where=lambda el: el.find(
        f"{q(NS_VCARD_UPDATE, 'x')}/{{urn:example:o}}other") is not None))
    x = got.find(q(NS_VCARD_UPDATE, "x"))
    assert canon(x) == canon(parse(
        f"<x xmlns='{NS_VCARD_UPDATE}' extra='1'><photo>{digest}</photo>"
        "<other xmlns='urn:example:o'>kept</other></x>")), dump(got)
    res = vcard_get(b, to=A)
    photo = child(only_child(res, NS_VCARD, "vCard"), NS_VCARD, "PHOTO")
    assert child(photo, NS_VCARD, "TYPE").text == "image/png", dump(res)
    binval = base64.b64decode(child(photo, NS_VCARD, "BINVAL").text)
    assert binval == AVATAR and hashlib.sha1(binval).hexdigest() == digest


# ---------------------------------------------------------------------------
# Private XML storage (XEP-0049)


def private_iq(client, itype, inner, to=None):
    return client.iq(itype, f"<query xmlns='{NS_PRIVATE}'>{inner}</query>", to=to)


def private_query(res):
    assert res.get("type") == "result", dump(res)
    return only_child(res, NS_PRIVATE, "query")


def test_private_set_get_with_slixmpp(clients):
    """§2.3: store and retrieve with slixmpp's xep_0049; another client of the same user
    reads it too."""
    from slixmpp.xmlstream import ElementBase

    class Prefs(ElementBase):
        namespace = "urn:example:prefs"
        name = "prefs"
        plugin_attrib = "prefs"
        interfaces = {"nick"}
        sub_interfaces = interfaces

    a = clients("alice", resource="one")
    a2 = clients("alice", resource="two")
    for c in (a, a2):
        c.xmpp.register_plugin("xep_0049")
        c.xmpp["xep_0049"].register(Prefs)
    data = Prefs()
    data["nick"] = "Alice"
    a.pool.run(a.xmpp["xep_0049"].store(data), 5.0)
    got = a2.pool.run(a2.xmpp["xep_0049"].retrieve("prefs"), 5.0)
    assert got["private"]["prefs"]["nick"] == "Alice", dump(got.xml)


def test_private_several_children_and_replace(clients):
    """§2.3: one set may hold several namespaces (each kept on its own) and several elements
    of one namespace (returned together); a later set of a namespace replaces it."""
    a = clients("alice")
    res = private_iq(a, "set", "<one xmlns='urn:example:a'>1</one>"
                     "<two xmlns='urn:example:b'><deep x='y'/></two>"
                     "<three xmlns='urn:example:a'>3</three>")
    assert res.get("type") == "result" and len(res) == 0, dump(res)
    got = private_query(private_iq(a, "get", "<one xmlns='urn:example:a'/>"))
    assert [canon(c) for c in got] == [
        canon(parse("<one xmlns='urn:example:a'>1</one>")),
        canon(parse("<three xmlns='urn:example:a'>3</three>"))], dump(got)
    got = private_query(private_iq(a, "get", "<two xmlns='urn:example:b'/>"))
    assert [canon(c) for c in got] == [
        canon(parse("<two xmlns='urn:example:b'><deep x='y'/></two>"))], dump(got)
    assert private_iq(a, "set", "<one xmlns='urn:example:a'>new</one>").get("type") == "result"
    got = private_query(private_iq(a, "get", "<one xmlns='urn:example:a'/>"))
    assert [canon(c) for c in got] == [canon(parse("<one xmlns='urn:example:a'>new</one>"))]
    got = private_query(private_iq(a, "get", "<two xmlns='urn:example:b'/>"))
    assert len(got) == 1, dump(got)


def test_private_get_nothing_stored(clients):
    """A namespace with nothing stored comes back as the empty element asked for."""
    a = clients("alice")
    got = private_query(private_iq(a, "get", "<storage xmlns='storage:rosternotes'/>"))
    assert [canon(c) for c in got] == [canon(parse("<storage xmlns='storage:rosternotes'/>"))]


@pytest.mark.parametrize("inner", [
    "<data>no namespace of its own: jabber:iq:private</data>",
    "<data xmlns='jabber:client'/>",
    "<x xmlns='jabber:x:data'/>",
    "<query xmlns='http://jabber.org/protocol/muc'/>",
    f"<vCard xmlns='{NS_VCARD}'><FN>Hamlet</FN></vCard>",
    "<ok xmlns='urn:example:ok'/><data xmlns='jabber:iq:roster'/>",
    "",
])
@pytest.mark.parametrize("itype", ["get", "set"])
def test_private_reserved_or_missing_namespace(clients, itype, inner):
    """§2.3 and §3: a reserved namespace ('jabber:*', 'http://jabber.org/*', 'vcard-temp') and
    a query without a child are Not Acceptable (type modify); nothing is stored."""
    a = clients("alice")
    expect_error(private_iq(a, itype, inner), "modify", "not-acceptable")
    got = private_query(private_iq(a, "get", "<ok xmlns='urn:example:ok'/>"))
    assert [canon(c) for c in got] == [canon(parse("<ok xmlns='urn:example:ok'/>"))]


def test_private_get_two_namespaces_is_bad_request(clients):
    """§2.3: a get asks for one namespace."""
    a = clients("alice")
    res = private_iq(a, "get", "<a xmlns='urn:example:a'/><b xmlns='urn:example:b'/>")
    expect_error(res, "modify", "bad-request")


@pytest.mark.parametrize("itype", ["get", "set"])
def test_private_of_another_user_is_forbidden(clients, itype):
    """§2.3, §3, §4: another user's private data is Forbidden (type cancel, as the XEP's
    example); the data is neither read nor changed."""
    a = clients("alice")
    b = clients("bob")
    assert private_iq(a, "set", "<p xmlns='urn:example:p'>mine</p>").get("type") == "result"
    res = private_iq(b, itype, "<p xmlns='urn:example:p'>{}</p>".format(
        "" if itype == "get" else "theirs"), to=A)
    expect_error(res, "cancel", "forbidden", frm=A)
    assert res.find(f"{q(NS_PRIVATE, 'query')}/{{urn:example:p}}p") is not None, dump(res)
    got = private_query(private_iq(a, "get", "<p xmlns='urn:example:p'/>"))
    assert [c.text for c in got] == ["mine"], dump(got)


def test_private_disco(clients):
    a = clients("alice")
    assert NS_PRIVATE in features(a, A)


# ---------------------------------------------------------------------------
# Last activity (XEP-0012)


def last_of(res):
    assert res.get("type") == "result", dump(res)
    query = only_child(res, NS_LAST, "query")
    return int(query.get("seconds")), query.text or ""


def last_get(client, to=None):
    return client.iq("get", f"<query xmlns='{NS_LAST}'/>", to=to)


def test_last_disco(clients):
    """§6: jabber:iq:last on the server (uptime) and on accounts."""
    a = clients("alice")
    assert NS_LAST in features(a, DOMAIN)
    assert NS_LAST in features(a, A)


def test_last_server_uptime(clients):
    """§5: the server answers its uptime in seconds, with no text."""
    a = clients("alice")
    secs, text = last_of(last_get(a, DOMAIN))
    assert 0 <= secs < 120 and text == "", (secs, text)
    time.sleep(1.1)
    later, _ = last_of(last_get(a, DOMAIN))
    assert later >= secs + 1, (secs, later)


def test_last_offline_contact(clients):
    """§3: a subscribed contact learns how long ago the user's last session ended and the
    status of its last unavailable presence; slixmpp's xep_0012 reads the same."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    subscribe(b, a)
    a.presence(type="unavailable", status="Heading Home")
    b.recv(match("presence", type="unavailable", frm=a.jid))
    a.disconnect()
    time.sleep(1.1)
    secs, text = last_of(last_get(b, A))
    assert 1 <= secs < 30 and text == "Heading Home", (secs, text)
    b.xmpp.register_plugin("xep_0012")
    got = b.pool.run(b.xmpp["xep_0012"].get_last_activity(A), 5.0)
    assert got["last_activity"]["status"] == "Heading Home"
    assert int(got["last_activity"]["seconds"]) >= 1


def test_last_session_that_vanished_has_no_status(clients):
    """§3: a session that ends without unavailable presence leaves an empty status; only the
    last session's end counts."""
    a1 = clients("alice", resource="one", available=True)
    a2 = clients("alice", resource="two", available=True)
    b = clients("bob", available=True)
    subscribe(b, a1)
    a1.presence(type="unavailable", status="first gone")
    a1.disconnect()
    # alice is still online through a2: 0 seconds, no text (§3).
    assert last_of(last_get(b, A)) == (0, "")
    a2.kill()
    b.recv(match("presence", type="unavailable", frm=a2.jid))
    secs, text = last_of(last_get(b, A))
    assert secs < 30 and text == "", (secs, text)


def test_last_online_and_self(clients):
    """§3: a user with a connected resource has been active 0 seconds; the user may ask about
    itself (to its bare JID or with no 'to')."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    subscribe(b, a)
    assert last_of(last_get(b, A)) == (0, "")
    assert last_of(last_get(a)) == (0, "")
    assert last_of(last_get(a, A)) == (0, "")


def test_last_forbidden_without_subscription(clients):
    """§3, §4, §8: without a subscription to the user's presence, forbidden (type auth), for
    the bare JID and for a full JID (not delivered to the resource), online or not."""
    a = clients("alice", available=True)
    c = clients("carol")
    for to in (A, a.jid, f"{A}/nowhere"):
        expect_error(last_get(c, to), "auth", "forbidden", frm=to)
    a.expect_silence(0.3, match("iq", where=lambda el: el.find(q(NS_LAST, "query")) is not None))
    a.disconnect()
    expect_error(last_get(c, A), "auth", "forbidden", frm=A)


def test_last_full_jid_goes_to_the_resource(clients):
    """§4: for a subscriber, a query to a full JID is the client's to answer."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    subscribe(b, a)
    b.send_raw(f"<iq type='get' id='last-full' to='{a.jid}'><query xmlns='{NS_LAST}'/></iq>")
    got = a.recv(match("iq", id="last-full"))
    assert got.get("type") == "get" and got.get("from") == b.jid, dump(got)
    # slixmpp (without xep_0012) answers it itself; its answer comes back from the resource.
    res = b.recv(match("iq", id="last-full"))
    assert res.get("from") == a.jid and res.get("type") in ("result", "error"), dump(res)


def test_last_never_recorded(make_im):
    """A subscriber asks about a user who is offline but whose logout was never recorded
    (the module was off then): item-not-found."""
    srv = make_im(sm_disable=["last"])
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        subscribe(b, a)
        a.disconnect()
    finally:
        pool.close()
    srv.opts["sm_disable"] = ()
    srv.write_config()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        b = pool.client("bob")
        expect_error(last_get(b, A), "cancel", "item-not-found", frm=A)
    finally:
        pool.close()


# ---------------------------------------------------------------------------
# Across a restart, on both backends


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_pim_survives_restart(make_im, storage):
    """vCard, private data and last activity are in the store: a restart keeps them."""
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        subscribe(b, a)
        assert vcard_set(a).get("type") == "result"
        assert private_iq(a, "set", "<p xmlns='urn:example:p'>kept</p>").get("type") == "result"
        a.presence(type="unavailable", status="before the restart")
        a.disconnect()
        b.recv(match("presence", type="unavailable", frm=a.jid))
        b.disconnect()
    finally:
        pool.close()
    time.sleep(0.3)
    srv.restart()
    pool = im.IMPool(srv)
    try:
        b = pool.client("bob")
        assert canon(only_child(vcard_get(b, A), NS_VCARD, "vCard")) == canon(parse(VCARD))
        secs, text = last_of(last_get(b, A))
        assert text == "before the restart" and secs >= 0, (secs, text)
        a = pool.client("alice")
        got = private_query(private_iq(a, "get", "<p xmlns='urn:example:p'/>"))
        assert [c.text for c in got] == ["kept"], dump(got)
    finally:
        pool.close()


# ---------------------------------------------------------------------------
# Switched off


@pytest.mark.parametrize("module,ns,payload", [
    ("vcard", NS_VCARD, f"<vCard xmlns='{NS_VCARD}'/>"),
    ("private", NS_PRIVATE, f"<query xmlns='{NS_PRIVATE}'><p xmlns='urn:example:p'/></query>"),
    ("last", NS_LAST, f"<query xmlns='{NS_LAST}'/>"),
])
def test_module_disabled(make_im, module, ns, payload):
    """[sm] disable = NAME: its feature leaves disco, its IQs get service-unavailable."""
    srv = make_im(sm_disable=[module])
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        assert ns not in features(a, DOMAIN) and ns not in features(a, A)
        for itype in ("get", "set"):
            for to in (None, A, DOMAIN):
                res = a.iq(itype, payload, to=to)
                expect_error(res, "cancel", "service-unavailable")
        # The others still work.
        others = {"vcard": NS_LAST, "private": NS_VCARD, "last": NS_VCARD}
        assert others[module] in features(a, A)
    finally:
        pool.close()
