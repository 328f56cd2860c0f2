# SPDX-License-Identifier: MIT
"""Extensions the server does not know pass through untouched: messages, presence and iqs
with many children in unknown namespaces reach the recipient with the same elements,
attributes, text and order — between clients of one c2s, of two c2s processes, through
offline storage and through the message archive (XEP-0313)."""

import xml.etree.ElementTree as ET

import pytest

from harness import dump
from im import DOMAIN, NS_CLIENT, NS_DELAY, match, q, skip_prosody, subscribe_both

pytestmark = pytest.mark.slixmpp

B = f"bob@{DOMAIN}"
NS_MAM = "urn:xmpp:mam:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_SID = "urn:xmpp:sid:0"


def payload(count=40):
    """count children in unknown namespaces: nested, empty, with plain, namespaced and
    xml:lang attributes, escaped text, mixed content, and a repeated name in two namespaces."""
    parts = []
    for i in range(count):
        ns = f"urn:example:ext:{i % 7}"
        kind = i % 5
        if kind == 0:
            parts.append(f"<e{i} xmlns='{ns}' a='{i}' b='x &amp; &lt;y&gt; &quot;q&quot;'/>")
        elif kind == 1:
            parts.append(f"<e{i} xmlns='{ns}'><inner deep='1'><deeper>t{i} &amp; "
                         f"\u00e9\u4e2d</deeper></inner><inner deep='2'/></e{i}>")
        elif kind == 2:
            parts.append(f"<e{i} xmlns='{ns}' xmlns:p='urn:example:attr' p:flag='on' "
                         f"xml:lang='fr'>mixed <b>bold</b> tail{i}<c/>end</e{i}>")
        elif kind == 3:
            parts.append(f"<same xmlns='{ns}' n='{i}'/><same xmlns='urn:example:other' n='{i}'/>")
        else:
            parts.append(f"<e{i} xmlns='{ns}'>{'long text ' * 20}{i}</e{i}>")
    return "".join(parts)


def canon(el):
    """A comparable form of an element: name, attributes, text, children, tails."""
    return (el.tag, sorted(el.attrib.items()), el.text or "",
            [(canon(c), c.tail or "") for c in el])


def children(el, skip=()):
    """The element's children in order, in canon form, leaving out names in skip."""
    return [(canon(c), c.tail or "") for c in el if c.tag not in skip]


def expected(kind, inner, body=None):
    """The children a client sent, as the server must relay them."""
    b = f"<body>{body}</body>" if body is not None else ""
    el = ET.fromstring(f"<{kind} xmlns='{NS_CLIENT}'>{b}{inner}</{kind}>")
    return children(el)


def check_message(got, inner, body, skip=()):
    want = expected("message", inner, body)
    have = children(got, skip)
    assert have == want, f"children differ:\n{dump(got)}"


def test_message_same_c2s(clients):
    """A chat message with 40 unknown children, to a full and to a bare JID."""
    a = clients("alice", available=True)
    b = clients("bob", resource="desk", available=True)
    inner = payload()
    a.message(b.jid, "full", id="ext-full", inner=inner)
    got = b.recv(match("message", id="ext-full"))
    check_message(got, inner, "full", skip=(q(NS_SID, "stanza-id"),))
    a.message(B, "bare", id="ext-bare", type="normal", inner=inner)
    got = b.recv(match("message", id="ext-bare"))
    check_message(got, inner, "bare", skip=(q(NS_SID, "stanza-id"),))


def test_presence_and_iq_same_c2s(clients):
    """Broadcast and directed presence, and an iq to a full JID, keep their extensions."""
    a = clients("alice", available=True)
    b = clients("bob", resource="desk", available=True)
    subscribe_both(a, b)
    b.drain(0.2)
    inner = payload(12)
    a.presence(status="here", inner=inner)
    got = b.recv(match("presence", frm=a.jid, where=lambda el: el.find(
        q("urn:example:ext:0", "e0")) is not None))
    assert children(got) == expected("presence", f"<status>here</status>{inner}"), dump(got)
    a.presence(to=b.jid, id="ext-directed", inner=inner)
    got = b.recv(match("presence", id="ext-directed"))
    assert children(got) == expected("presence", inner), dump(got)
    a.send_raw(f"<iq type='set' id='ext-iq' to='{b.jid}'><query xmlns='urn:example:unknown-iq'>"
               f"{inner}</query></iq>")
    got = b.recv(match("iq", id="ext-iq"))
    assert got.get("type") == "set" and got.get("from") == a.jid, dump(got)
    want = ET.fromstring(f"<iq xmlns='{NS_CLIENT}'><query xmlns='urn:example:unknown-iq'>"
                         f"{inner}</query></iq>")
    assert children(got) == children(want), dump(got)


@skip_prosody("a second c2s process is Parley's")
def test_two_c2s_processes(make_im):
    """alice on one c2s process, bob on another: messages and presence arrive intact."""
    import im
    srv = make_im(c2s2=True)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", resource="far", available=True, c2s2=True)
        inner = payload()
        a.message(b.jid, "across", id="ext-across", inner=inner)
        got = b.recv(match("message", id="ext-across"))
        check_message(got, inner, "across", skip=(q(NS_SID, "stanza-id"),))
        b.message(a.jid, "back", id="ext-back", inner=inner)
        got = a.recv(match("message", id="ext-back"))
        check_message(got, inner, "back", skip=(q(NS_SID, "stanza-id"),))
        b.presence(to=a.jid, id="ext-p", inner=inner)
        got = a.recv(match("presence", id="ext-p"))
        assert children(got) == expected("presence", inner), dump(got)
    finally:
        pool.close()


def test_offline_storage(clients):
    """Kept offline and delivered at login with the same children (plus the server's delay)."""
    a = clients("alice", available=True)
    inner = payload()
    a.message(B, "later", id="ext-offline", inner=inner)
    a.iq("get", "<ping xmlns='urn:xmpp:ping'/>")  # the sm has handled the message by now
    b = clients("bob", available=True)
    got = b.recv(match("message", id="ext-offline"))
    assert got.find(q(NS_DELAY, "delay")) is not None, dump(got)
    check_message(got, inner, "later", skip=(q(NS_DELAY, "delay"), q(NS_SID, "stanza-id")))


@skip_prosody("the archive is configured for Parley only here")
def test_through_the_archive(clients):
    """A message in the archive (XEP-0313) comes back with the same children, both for the
    sender's archive and the recipient's."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    inner = payload()
    a.message(b.jid, "archived", id="ext-mam", inner=inner)
    b.recv(match("message", id="ext-mam"))
    for c in (a, b):
        res = c.iq("set", f"<query xmlns='{NS_MAM}' queryid='qx'/>")
        assert res.get("type") == "result", dump(res)
        found = []
        for el in list(c.pending):
            r = el.find(q(NS_MAM, "result"))
            if r is not None and r.get("queryid") == "qx":
                c.pending.remove(el)
                found.append(r)
        msgs = [r.find(f"{q(NS_FORWARD, 'forwarded')}/{q(NS_CLIENT, 'message')}") for r in found]
        msgs = [m for m in msgs if m is not None and m.get("id") == "ext-mam"]
        assert len(msgs) == 1, f"{c.jid}: archive results {[dump(r) for r in found]}"
        check_message(msgs[0], inner, "archived", skip=(q(NS_SID, "stanza-id"),))
