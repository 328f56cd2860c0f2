# SPDX-License-Identifier: MIT
"""Entity capabilities (XEP-0115): the server's own caps node, and the caps of clients that
the server learns by asking them (a disco#info query from the domain), verifies and caches.

What the sm learns is used by other modules (PEP's +notify); here it shows in what the server
does: whom it asks, and when it does not ask again."""

import base64
import hashlib
import time

import pytest

import im
import harness
from harness import dump, local
from im import DOMAIN, NS_DISCO_INFO, error_of, match, q, skip_prosody

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's caps module")]

NS_CAPS = "http://jabber.org/protocol/caps"
NS_XDATA = "jabber:x:data"
SERVER_NODE = "urn:parley:server"

# XEP-0115 §5.2 and §5.3: the disco#info answers of the examples, and their verification
# strings.
EXODUS = ("http://code.google.com/p/exodus", "QgayPKawpkPSDYmwT/WM94uAlu0=",
          "<identity category='client' name='Exodus 0.9.1' type='pc'/>"
          "<feature var='http://jabber.org/protocol/caps'/>"
          "<feature var='http://jabber.org/protocol/disco#info'/>"
          "<feature var='http://jabber.org/protocol/disco#items'/>"
          "<feature var='http://jabber.org/protocol/muc'/>")
PSI = ("http://psi-im.org", "q07IKJEyjvHSyhy//CH0CxmKi8w=",
       "<identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>"
       "<identity xml:lang='el' category='client' name='\u03a8 0.11' type='pc'/>"
       "<feature var='http://jabber.org/protocol/caps'/>"
       "<feature var='http://jabber.org/protocol/disco#info'/>"
       "<feature var='http://jabber.org/protocol/disco#items'/>"
       "<feature var='http://jabber.org/protocol/muc'/>"
       f"<x xmlns='{NS_XDATA}' type='result'>"
       "<field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>"
       "<field var='ip_version' type='text-multi'><value>ipv4</value><value>ipv6</value></field>"
       "<field var='os'><value>Mac</value></field>"
       "<field var='os_version'><value>10.5.1</value></field>"
       "<field var='software'><value>Psi</value></field>"
       "<field var='software_version'><value>0.11</value></field>"
       "</x>")


def ver_of(identities, features, forms=(), hash_name="sha1"):
    """§5.1, written from the XEP for these tests: identities as (category, type, lang, name),
    features as strings, forms as (FORM_TYPE, {var: [values]})."""
    s = ""
    for cat, typ, lang, name in sorted(identities):
        s += f"{cat}/{typ}/{lang or ''}/{name or ''}<"
    for f in sorted(features):
        s += f + "<"
    for form_type, fields in sorted(forms):
        s += form_type + "<"
        for var in sorted(fields):
            s += var + "<" + "".join(v + "<" for v in sorted(fields[var]))
    return base64.b64encode(hashlib.new(hash_name, s.encode()).digest()).decode()


def test_ver_of_matches_the_xep_examples():
    """The tests' own §5.1 against §5.2 and §5.3 (so that a failure below is the server's)."""
    assert ver_of([("client", "pc", "", "Exodus 0.9.1")], [
        "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"]) == EXODUS[1]
    assert ver_of([("client", "pc", "en", "Psi 0.11"), ("client", "pc", "el", "\u03a8 0.11")], [
        "http://jabber.org/protocol/caps", "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items", "http://jabber.org/protocol/muc"],
        [("urn:xmpp:dataforms:softwareinfo", {
            "ip_version": ["ipv4", "ipv6"], "os": ["Mac"], "os_version": ["10.5.1"],
            "software": ["Psi"], "software_version": ["0.11"]})]) == PSI[1]


def info_of(res):
    query = res.find(q(NS_DISCO_INFO, "query"))
    assert query is not None, dump(res)
    idents = [(i.get("category"), i.get("type"), i.get("{http://www.w3.org/XML/1998/namespace}lang")
               or "", i.get("name") or "") for i in query.findall(q(NS_DISCO_INFO, "identity"))]
    feats = [f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))]
    return query, idents, feats


# ---------------------------------------------------------------------------
# The server's own caps (§6.2)


def test_server_caps_node(clients):
    """The server lists the caps feature (§7) and answers disco#info for its caps node,
    '<node>#<ver>', with ver computed by §5.1 over what it answers without a node, and the
    node in the answer (§6.2); another ver is item-not-found."""
    a = clients("alice")
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
    _, idents, feats = info_of(res)
    assert NS_CAPS in feats, feats
    assert len(set(feats)) == len(feats), feats
    node = f"{SERVER_NODE}#{ver_of(idents, feats)}"
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='{node}'/>", to=DOMAIN)
    assert res.get("type") == "result" and res.get("from") == DOMAIN, dump(res)
    query, idents2, feats2 = info_of(res)
    assert query.get("node") == node, dump(res)
    assert (sorted(idents2), sorted(feats2)) == (sorted(idents), sorted(feats)), dump(res)
    wrong = f"{SERVER_NODE}#{ver_of(idents, feats + ['urn:example:extra'])}"
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='{wrong}'/>", to=DOMAIN)
    assert error_of(res) == ("cancel", "item-not-found"), dump(res)


# ---------------------------------------------------------------------------
# Clients' caps: raw clients, to answer the server's queries by hand


def is_query(el, node=None):
    """A disco#info query from the server (the sm asks in the domain's name)."""
    if el.tag != q(im.NS_CLIENT, "iq") or el.get("type") != "get" or el.get("from") != DOMAIN:
        return False
    query = el.find(q(NS_DISCO_INFO, "query"))
    return query is not None and (node is None or query.get("node") == node)


def raw_login(raw_client, user, resource):
    r = raw_client(connect=False)
    r.login(user, resource=resource)
    return r


def send_caps(r, node, ver, hash_name="sha-1"):
    h = f" hash='{hash_name}'" if hash_name is not None else ""
    r.send(f"<presence><c xmlns='{NS_CAPS}'{h} node='{node}' ver='{ver}'/></presence>")


def expect_query(r, node, timeout=3.0):
    """The server's query for node (skipping the rest); checks its addresses."""
    el = r.recv_until(lambda el: is_query(el, node), timeout=timeout)
    assert el.get("to") == r.jid and el.get("id"), dump(el)
    return el


def expect_no_query(r, timeout=1.0):
    try:
        el = r.recv_until(is_query, timeout=timeout)
    except TimeoutError:
        return
    raise AssertionError(f"{r.name}: the server asked again: {dump(el)}")


def answer(r, query_el, inner, frm=None):
    node = query_el.find(q(NS_DISCO_INFO, "query")).get("node")
    f = f" from='{frm}'" if frm else ""
    r.send(f"<iq type='result' id='{query_el.get('id')}' to='{DOMAIN}'{f}>"
           f"<query xmlns='{NS_DISCO_INFO}' node='{node}'>{inner}</query></iq>")


@pytest.mark.parametrize("example", [EXODUS, PSI], ids=["simple", "forms"])
def test_verified_ver_is_not_asked_again(raw_client, example):
    """§5.4: the first entity naming an unknown ver is asked (to its full JID, node
    '<node>#<ver>'); its answer hashes to the ver (§5.2, §5.3 with a XEP-0128 form and
    xml:lang), so the next entities naming it are not asked, nor is the first again."""
    node, ver, inner = example
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, node, ver)
    answer(r1, expect_query(r1, f"{node}#{ver}"), inner)
    expect_no_query(r1, 0.5)
    r2 = raw_login(raw_client, "bob", "two")
    send_caps(r2, node, ver)
    expect_no_query(r2)
    send_caps(r1, node, ver)
    expect_no_query(r1, 0.5)


def test_forged_ver_is_not_cached(raw_client):
    """§5.4 step 3.9: an answer that does not hash to the ver is not cached: the same ver is
    asked about again, of the next entity and of the same one at its next presence."""
    node, forged = "urn:example:forger", ver_of([("client", "pc", "", "")], ["urn:example:a"])
    inner = "<identity category='client' type='pc'/><feature var='urn:example:b'/>"
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, node, forged)
    answer(r1, expect_query(r1, f"{node}#{forged}"), inner)
    send_caps(r1, node, forged)
    answer(r1, expect_query(r1, f"{node}#{forged}"), inner)
    r2 = raw_login(raw_client, "bob", "two")
    send_caps(r2, node, forged)
    # This one tells the truth: verified and cached from now on.
    answer(r2, expect_query(r2, f"{node}#{forged}"),
           "<identity category='client' type='pc'/><feature var='urn:example:a'/>")
    r3 = raw_login(raw_client, "carol", "three")
    send_caps(r3, node, forged)
    expect_no_query(r3)


@pytest.mark.parametrize("bad", ["duplicate-feature", "duplicate-identity", "form-type-twice"])
def test_ill_formed_answer_is_not_cached(raw_client, bad):
    """§5.4 steps 3.3-3.5: duplicated identities, features or FORM_TYPEs make the answer
    ill-formed even when the ver is their hash: not cached."""
    ident = "<identity category='client' type='pc'/>"
    feat = "<feature var='urn:example:a'/>"
    form = (f"<x xmlns='{NS_XDATA}' type='result'><field var='FORM_TYPE' type='hidden'>"
            "<value>urn:example:form</value></field><field var='f'><value>v</value></field></x>")
    if bad == "duplicate-feature":
        inner, ver = ident + feat + feat, ver_of([("client", "pc", "", "")],
                                                 ["urn:example:a", "urn:example:a"])
    elif bad == "duplicate-identity":
        inner, ver = ident + ident + feat, ver_of([("client", "pc", "", "")] * 2,
                                                  ["urn:example:a"])
    else:
        inner = ident + feat + form + form
        ver = ver_of([("client", "pc", "", "")], ["urn:example:a"],
                     [("urn:example:form", {"f": ["v"]})] * 2)
    node = "urn:example:ill"
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, node, ver)
    answer(r1, expect_query(r1, f"{node}#{ver}"), inner)
    r2 = raw_login(raw_client, "bob", "two")
    send_caps(r2, node, ver)
    expect_query(r2, f"{node}#{ver}")


def test_answer_from_another_entity_is_not_taken(raw_client):
    """RFC 6120 §8.2.3: only the entity asked answers; a result with the query's id from
    someone else is not taken for it."""
    node, ver, inner = EXODUS
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, node, ver)
    query = expect_query(r1, f"{node}#{ver}")
    intruder = raw_login(raw_client, "bob", "two")
    answer(intruder, query, inner)
    # The one asked answers wrongly: nothing is verified.
    answer(r1, query, "<identity category='client' type='pc'/>")
    r3 = raw_login(raw_client, "carol", "three")
    send_caps(r3, node, ver)
    expect_query(r3, f"{node}#{ver}")


def test_unsupported_hash_is_per_jid(raw_client):
    """§5.4 step 2: a hash the server does not verify (md5) is asked about, but the answer
    is not cached for others."""
    node, ver = "urn:example:md5", base64.b64encode(hashlib.md5(b"x").digest()).decode()
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, node, ver, hash_name="md5")
    answer(r1, expect_query(r1, f"{node}#{ver}"), "<identity category='client' type='pc'/>")
    send_caps(r1, node, ver, hash_name="md5")
    expect_no_query(r1, 0.5)
    r2 = raw_login(raw_client, "bob", "two")
    send_caps(r2, node, ver, hash_name="md5")
    expect_query(r2, f"{node}#{ver}")


def test_legacy_caps_are_ignored(raw_client):
    """§13: without 'hash' the ver cannot be verified: the server does not ask."""
    r1 = raw_login(raw_client, "alice", "one")
    send_caps(r1, "urn:example:legacy", "1.0", hash_name=None)
    expect_no_query(r1)


def test_asked_entity_leaving_passes_the_question_on(raw_client):
    """When the entity asked goes offline without answering, the next one that names the
    same ver is asked at once (not after the query's timeout)."""
    node, ver, inner = EXODUS
    r1 = raw_login(raw_client, "alice", "one")
    r2 = raw_login(raw_client, "bob", "two")
    send_caps(r1, node, ver)
    expect_query(r1, f"{node}#{ver}")
    send_caps(r2, node, ver)
    expect_no_query(r2, 0.5)  # being asked of alice already
    r1.close()
    answer(r2, expect_query(r2, f"{node}#{ver}"), inner)
    r3 = raw_login(raw_client, "carol", "three")
    send_caps(r3, node, ver)
    expect_no_query(r3)


# ---------------------------------------------------------------------------
# Contacts on another server (a component stands in for it)

REMOTE = "remote.example"
A = f"alice@{DOMAIN}"


def remote_server(srv):
    comp = harness.RawComponent(srv.router_port, name="remote")
    return comp.login(REMOTE, srv.component_secret(REMOTE))


def caps_presence(frm, node, ver, hash_name="sha-1"):
    return (f"<presence from='{frm}' to='{A}'><c xmlns='{NS_CAPS}' hash='{hash_name}' "
            f"node='{node}' ver='{ver}'/></presence>")


def remote_queries(comp, timeout):
    """The server's disco#info queries that reach the remote server within timeout."""
    got, deadline = [], time.monotonic() + timeout
    while True:
        try:
            el = comp.recv(max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            return got
        if (local(el.tag) == "iq" and el.get("type") == "get" and el.get("from") == DOMAIN and
                el.find(q(NS_DISCO_INFO, "query")) is not None):
            got.append(el)


def remote_contact(a, comp, contact):
    """alice subscribes to contact (at the remote server), which approves."""
    a.roster_get()
    a.presence(type="subscribe", to=contact)
    comp.recv_until(lambda el: local(el.tag) == "presence" and el.get("type") == "subscribe")
    comp.send(f"<presence type='subscribed' from='{contact}' to='{A}'/>")
    a.recv(lambda el: local(el.tag) == "iq" and el.find(
        f"{q(im.NS_ROSTER, 'query')}/{q(im.NS_ROSTER, 'item')}[@subscription='to']") is not None)


def test_caps_of_strangers_are_not_followed(make_im):
    """Only the caps of contacts whose presence the user receives are followed: presence
    with caps from anyone else (directed presence to the bare JID) does not make the server
    ask, nor take room among the JIDs it follows."""
    srv = make_im(components=[REMOTE])
    pool = im.IMPool(srv)
    comp = remote_server(srv)
    try:
        a = pool.client("alice", available=True)
        node, ver, inner = EXODUS
        comp.send(caps_presence(f"eve@{REMOTE}/x", node, ver))
        a.recv(match("presence", frm=f"eve@{REMOTE}/x"))
        assert remote_queries(comp, 1.0) == []
        remote_contact(a, comp, f"romeo@{REMOTE}")
        comp.send(caps_presence(f"romeo@{REMOTE}/orchard", node, ver))
        got = remote_queries(comp, 3.0)
        assert [el.get("to") for el in got] == [f"romeo@{REMOTE}/orchard"], \
            [dump(el) for el in got]
    finally:
        comp.close()
        pool.close()


def test_queries_for_unverifiable_hashes_are_bounded(make_im):
    """A hash the server cannot verify is asked about per JID (§5.4 step 2); those queries
    count against the same limit as the others (256 out at once), so that a contact naming
    one from many resources cannot take every slot the sm has for its own IQs."""
    srv = make_im(components=[REMOTE])
    pool = im.IMPool(srv)
    comp = remote_server(srv)
    try:
        a = pool.client("alice", available=True)
        remote_contact(a, comp, f"romeo@{REMOTE}")
        for i in range(300):
            comp.send(caps_presence(f"romeo@{REMOTE}/r{i}", "urn:example:md5", "eA==", "md5"))
        got = remote_queries(comp, 4.0)
        assert len(got) == 256, len(got)
    finally:
        comp.close()
        pool.close()


# ---------------------------------------------------------------------------
# slixmpp's xep_0115


def caps_client(pool_client, user, resource):
    c = pool_client(user, resource=resource)
    c.xmpp.register_plugin("xep_0115")
    c.pool.run(c.xmpp["xep_0115"].update_caps(broadcast=False), 5.0)
    c.xmpp.send_presence()
    c.recv(match("presence", frm=c.jid))
    return c


def test_slixmpp_caps_asked_once(clients):
    """A slixmpp client with xep_0115 is asked (disco#info from the domain to its full JID,
    node '<its node>#<its ver>') and answers by itself; a second one with the same software
    is not asked."""
    a = caps_client(clients, "alice", "one")
    ver = a.pool.run(a.xmpp["xep_0115"].get_verstring(a.jid), 5.0)
    node = f"{a.xmpp['xep_0115'].caps_node}#{ver}"
    got = a.recv(lambda el: is_query(el, node), timeout=5.0)
    assert got.get("to") == a.jid, dump(got)
    b = caps_client(clients, "bob", "two")
    b.expect_silence(1.0, is_query)
    a.expect_silence(0.2, is_query)


def test_caps_disabled(make_im):
    """[sm] disable = caps: no feature, no caps node, nobody asked."""
    srv = make_im(sm_disable=["caps"])
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
        _, idents, feats = info_of(res)
        assert NS_CAPS not in feats, feats
        node = f"{SERVER_NODE}#{ver_of(idents, feats)}"
        res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='{node}'/>", to=DOMAIN)
        assert error_of(res) == ("cancel", "item-not-found"), dump(res)
        a.presence(inner=f"<c xmlns='{NS_CAPS}' hash='sha-1' node='{EXODUS[0]}' "
                         f"ver='{EXODUS[1]}'/>")
        a.expect_silence(1.0, is_query)
    finally:
        pool.close()
