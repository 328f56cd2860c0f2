# SPDX-License-Identifier: MIT
"""Message Carbons (XEP-0280): enable and disable per session, sent and received copies
(XEP-0297 wrapping, the original unchanged inside) to the user's other enabled sessions
only, which messages are eligible (§6.1: types, IM payloads, errors answering eligible
messages, MUC rules), <private/> and XEP-0334 <no-copy/>, carbons never carboned, the
module off."""

import copy

import pytest

import im
from harness import canon, dump
from im import DOMAIN, NS_CLIENT, NS_DISCO_INFO, error_of, match, q, skip_prosody

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's sm modules")]

A, B = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
NS_SID = "urn:xmpp:sid:0"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_HINTS = "urn:xmpp:hints"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_SM = "urn:xmpp:sm:3"
ERROR = ("<error type='cancel'><service-unavailable "
         "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")


def enable(c, to=None, what="enable"):
    res = c.iq("set", f"<{what} xmlns='{NS_CARBONS}'/>", to=to)
    assert res.get("type") == "result" and len(res) == 0, dump(res)
    return res


def is_carbon(el):
    return el.tag == q(NS_CLIENT, "message") and (
        el.find(q(NS_CARBONS, "sent")) is not None or
        el.find(q(NS_CARBONS, "received")) is not None)


def carbon_of(c, which, id, timeout=5.0):
    """Waits for a carbon of the message with this id at c; checks the wrapping (§7, §8,
    XEP-0297) and returns (wrapper, the forwarded message)."""
    def pred(el):
        if not is_carbon(el):
            return False
        inner = el.find(f"{q(NS_CARBONS, which)}/{q(NS_FORWARD, 'forwarded')}/"
                        f"{q(NS_CLIENT, 'message')}")
        return inner is not None and inner.get("id") == id
    el = c.recv(pred, timeout)
    assert el.get("from") == A and el.get("to") == c.jid, dump(el)
    assert [ch.tag for ch in el] == [q(NS_CARBONS, which)], dump(el)
    wrap = el[0]
    assert [ch.tag for ch in wrap] == [q(NS_FORWARD, "forwarded")], dump(el)
    fwd = wrap[0]
    assert [ch.tag for ch in fwd] == [q(NS_CLIENT, "message")], dump(el)
    return el, fwd[0]


def no_carbon(c, timeout=0.5):
    c.expect_silence(timeout, is_carbon)


@pytest.fixture
def trio(clients):
    """alice/one (priority 1) and alice/two (0) with carbons (two through slixmpp's
    xep_0280), alice/three (0) without; bob/b. All available, drained."""
    a1 = clients("alice", resource="one", available=True, priority=1)
    a2 = clients("alice", resource="two", available=True, priority=0)
    a3 = clients("alice", resource="three", available=True, priority=0)
    b = clients("bob", resource="b", available=True)
    enable(a1)
    a2.xmpp.register_plugin("xep_0280")
    a2.events = []
    a2.xmpp.add_event_handler("carbon_sent",
                              lambda m: a2.events.append(("sent", m["carbon_sent"]["id"])))
    a2.xmpp.add_event_handler("carbon_received",
                              lambda m: a2.events.append(("received", m["carbon_received"]["id"])))
    res = a2.pool.run(a2.xmpp["xep_0280"].enable(), 5.0)
    assert res["type"] == "result", res
    for c in (a1, a2, a3, b):
        c.drain(settle=0.1)
    return a1, a2, a3, b


def without(el, tag):
    """A copy of el without its children named tag."""
    c = copy.deepcopy(el)
    for child in c.findall(tag):
        c.remove(child)
    return c


def test_disco_feature(clients):
    a = clients("alice")
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
    feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
             .findall(q(NS_DISCO_INFO, "feature"))}
    assert NS_CARBONS in feats, feats


# ---------------------------------------------------------------------------
# Sent and received copies


def test_sent_carbons(trio):
    """§8: an eligible message a session sends goes as <sent/> to the other enabled
    sessions, not to the sender, not to a session without carbons; the original inside,
    unchanged (attributes and unknown extensions included); the message itself is
    delivered. A sender without carbons is copied too."""
    a1, a2, a3, b = trio
    a1.send_raw(f"<message to='{b.jid}' type='chat' id='s1' xml:lang='en' extra='kept'>"
                "<body>to bob &amp; more</body><thread>t-1</thread>"
                "<x xmlns='urn:example:e2e' a='1'><y>deep</y></x></message>")
    got = b.recv(match("message", id="s1"))
    wrapper, inner = carbon_of(a2, "sent", "s1")
    assert wrapper.get("type") == "chat", dump(wrapper)
    # Each side carries its own archive's id (XEP-0313 §5.1.3): the sender's in the carbon,
    # the recipient's on the delivered message; everything else is the same.
    sid = q(NS_SID, "stanza-id")
    assert [e.get("by") for e in inner.findall(sid)] == [A], dump(inner)
    assert [e.get("by") for e in got.findall(sid)] == [B], dump(got)
    assert canon(without(inner, sid)) == canon(without(got, sid)), f"{dump(inner)} != {dump(got)}"
    assert inner.get("from") == a1.jid and inner.get("to") == b.jid, dump(inner)
    assert inner.get("extra") == "kept", dump(inner)
    assert inner.find(q("urn:example:e2e", "x")).get("a") == "1", dump(inner)
    a2.pool.settle(0.1)
    assert ("sent", "s1") in a2.events, a2.events  # slixmpp accepts it (from our bare JID)
    no_carbon(a1)
    no_carbon(a3, 0.1)

    a3.message(B, "from the one without carbons", id="s2")
    b.recv(match("message", id="s2"))
    for c in (a1, a2):
        _, inner = carbon_of(c, "sent", "s2")
        assert inner.get("from") == a3.jid and inner.get("to") == B, dump(inner)
    no_carbon(a3)


def test_received_carbons(trio):
    """§7: a message delivered to one resource goes as <received/> to the other enabled
    ones; not to those that got the message, not to one without carbons."""
    a1, a2, a3, b = trio
    b.message(a1.jid, "to one", id="r1", inner="<x xmlns='urn:example:e2e'>kept</x>")
    got = a1.recv(match("message", id="r1"))
    wrapper, inner = carbon_of(a2, "received", "r1")
    assert wrapper.get("type") == "chat", dump(wrapper)
    assert canon(inner) == canon(got), f"{dump(inner)} != {dump(got)}"
    assert inner.get("from") == b.jid and inner.get("to") == a1.jid, dump(inner)
    a2.pool.settle(0.1)
    assert ("received", "r1") in a2.events, a2.events
    no_carbon(a1)
    no_carbon(a3, 0.1)
    # To the bare JID: delivered to the highest priority (one); two gets the copy.
    b.message(A, "to alice", id="r2", type="normal")
    a1.recv(match("message", id="r2"))
    wrapper, inner = carbon_of(a2, "received", "r2")
    assert wrapper.get("type") == "normal" and inner.get("to") == A, dump(wrapper)
    no_carbon(a3)
    a3.expect_silence(0.1, match("message", id="r2"))
    # A tie: both enabled sessions get the message, neither a copy.
    a2.available(priority=1)
    a1.drain(settle=0.1)
    a3.drain()
    b.message(A, "to both", id="r3")
    a1.recv(match("message", id="r3"))
    a2.recv(match("message", id="r3"))
    for c in (a1, a2, a3):
        no_carbon(c, 0.3)


def test_message_to_own_resource(trio):
    """A message to another of the user's resources: delivered once, no sent copy; the
    other enabled sessions get it as received, the sender does not."""
    a1, a2, a3, b = trio
    a3.message(a2.jid, "note to self", id="self-1")
    assert a2.recv(match("message", id="self-1")).get("from") == a3.jid
    _, inner = carbon_of(a1, "received", "self-1")
    assert inner.get("from") == a3.jid, dump(inner)
    no_carbon(a2)
    no_carbon(a3, 0.1)
    a1.expect_silence(0.1, is_carbon)


def test_private_and_no_copy(trio):
    """§9 and XEP-0334: <private/> (with or without <no-copy/>) and <no-copy/> keep a
    message from being copied, sent or received; the message itself is delivered as is."""
    a1, a2, a3, b = trio
    hints = {
        "both": f"<private xmlns='{NS_CARBONS}'/><no-copy xmlns='{NS_HINTS}'/>",
        "private": f"<private xmlns='{NS_CARBONS}'/>",
        "no-copy": f"<no-copy xmlns='{NS_HINTS}'/>",
    }
    for name, inner in hints.items():
        a1.message(b.jid, "private", id=f"p-out-{name}", inner=inner)
        got = b.recv(match("message", id=f"p-out-{name}"))
        if "private" in inner:
            assert got.find(q(NS_CARBONS, "private")) is not None, dump(got)
        b.message(a1.jid, "private", id=f"p-in-{name}", inner=inner)
        a1.recv(match("message", id=f"p-in-{name}"))
    for c in (a1, a2, a3):
        no_carbon(c, 0.3)


@pytest.mark.parametrize("mtype,inner,copied", [
    ("normal", "<body>normal with body</body>", True),
    ("normal", "<x xmlns='urn:example:e2e'/>", False),
    ("normal", "<active xmlns='http://jabber.org/protocol/chatstates'/>", True),
    ("normal", "<request xmlns='urn:xmpp:receipts'/>", True),
    ("normal", "<displayed xmlns='urn:xmpp:chat-markers:0' id='x'/>", True),
    ("chat", "", True),
    ("headline", "<body>news</body>", False),
    ("groupchat", "<body>room talk</body>", False),
    ("error", ERROR, False),
])
def test_which_messages(trio, mtype, inner, copied):
    """§6.1, both ways: chat; normal with a body; IM payloads (XEP-0085, -0184, -0333); not
    a headline with a body only, not groupchat, not an error that answers nothing copied."""
    a1, a2, a3, b = trio
    b.message(a1.jid, None, type=mtype, id="w-in", inner=inner)
    a1.recv(match("message", id="w-in"))
    a1.message(b.jid, None, type=mtype, id="w-out", inner=inner)
    b.recv(match("message", id="w-out"))
    if copied:
        carbon_of(a2, "received", "w-in")
        carbon_of(a2, "sent", "w-out")
    for c in (a1, a2, a3):
        no_carbon(c, 0.3)


def test_errors_answering_eligible_messages(trio):
    """§6.1: an error is copied when it answers an eligible message (same id, same peer),
    received or sent; another error is not."""
    a1, a2, a3, b = trio
    a1.message(b.jid, "will bounce", id="e1")
    b.recv(match("message", id="e1"))
    carbon_of(a2, "sent", "e1")
    b.message(a1.jid, None, type="error", id="e1", inner=ERROR)
    a1.recv(match("message", type="error", id="e1"))
    wrapper, inner = carbon_of(a2, "received", "e1")
    assert wrapper.get("type") == "error" and error_of(inner)[1] == "service-unavailable"
    # Not the id of anything copied.
    b.message(a1.jid, None, type="error", id="e-other", inner=ERROR)
    a1.recv(match("message", id="e-other"))
    # A sent error answering a received eligible message.
    b.message(a1.jid, "bounce me", id="e2")
    a1.recv(match("message", id="e2"))
    carbon_of(a2, "received", "e2")
    a1.message(b.jid, None, type="error", id="e2", inner=ERROR)
    b.recv(match("message", type="error", id="e2"))
    wrapper, _ = carbon_of(a2, "sent", "e2")
    assert wrapper.get("type") == "error", dump(wrapper)
    # The same id from someone else than the peer is no answer.
    c = a1.pool.client("carol", available=True)
    c.message(a1.jid, None, type="error", id="e2", inner=ERROR)
    a1.recv(match("message", id="e2", frm=c.jid))
    for x in (a1, a2, a3):
        no_carbon(x, 0.3)


def test_muc_rules(trio):
    """§6.1 MUC rules: a private message from a participant (full JID, the room's <x/>) is
    not copied; one to a participant is; invitations (XEP-0249, mediated) are."""
    a1, a2, a3, b = trio
    muc_x = f"<x xmlns='{NS_MUC_USER}'/>"
    b.message(a1.jid, "pm from a participant", id="m1", inner=muc_x)
    a1.recv(match("message", id="m1"))
    no_carbon(a2)
    a1.message(b.jid, "pm to a participant", id="m2", inner=muc_x)
    b.recv(match("message", id="m2"))
    carbon_of(a2, "sent", "m2")
    a1.message(B, None, type=None, id="m3",
               inner="<x xmlns='jabber:x:conference' jid='room@muc.example'/>")
    b.recv(match("message", id="m3"))
    carbon_of(a2, "sent", "m3")
    b.message(a1.jid, None, type=None, id="m4",
              inner=f"<x xmlns='{NS_MUC_USER}'><invite from='{B}'/></x>")
    a1.recv(match("message", id="m4"))
    carbon_of(a2, "received", "m4")
    for c in (a1, a2, a3):
        no_carbon(c, 0.3)


def test_carbons_are_never_carboned(trio):
    """A message holding a carbon (a forged one from another user, or one a client sends) is
    delivered but never copied."""
    a1, a2, a3, b = trio
    forged = (f"<received xmlns='{NS_CARBONS}'><forwarded xmlns='{NS_FORWARD}'>"
              f"<message xmlns='jabber:client' from='eve@{DOMAIN}/x' to='{a1.jid}' type='chat'>"
              "<body>forged</body></message></forwarded></received>")
    b.message(a1.jid, None, id="c1", inner=forged)
    a1.recv(match("message", id="c1"))
    a1.message(b.jid, None, id="c2", inner=forged.replace("received", "sent"))
    b.recv(match("message", id="c2"))
    for c in (a1, a2, a3):
        no_carbon(c, 0.5)


def raw_with_carbons(srv, resource):
    """A raw alice/resource with stream management (XEP-0198, no acks sent) and carbons on,
    available; it never acknowledges what it gets."""
    r = im.RawClient(srv, name=f"raw-{resource}")
    r.login("alice", resource=resource)
    r.send(f"<enable xmlns='{NS_SM}'/>")
    assert r.recv().tag == q(NS_SM, "enabled")
    r.send(f"<iq type='set' id='cb-1'><enable xmlns='{NS_CARBONS}'/></iq>")
    assert r.recv_until(lambda x: x.get("id") == "cb-1").get("type") == "result"
    r.send("<presence/>")
    return r


def close_unacked(r):
    """Ends r's stream cleanly without acknowledging anything: c2s hands back the rest."""
    r.send("</stream:stream>")
    try:
        while r.next_event(5.0)[0] != "eof":
            pass
    finally:
        r.close()


def test_returned_carbon_goes_nowhere(make_im):
    """A carbon is for the one session it was made for (§7, §8). Handed back by c2s (the
    session ended without acknowledging it, XEP-0198), it is neither delivered again to the
    other resources, where a client without carbons would get protocol it did not ask for
    (§2), nor kept offline for the next login."""
    srv = make_im()
    pool = im.IMPool(srv)
    try:
        plain = pool.client("alice", resource="plain", available=True)
        sender = pool.client("alice", resource="sender", available=True)
        b = pool.client("bob", resource="b", available=True)
        r = raw_with_carbons(srv, "desk")
        sender.message(b.jid, "copied to desk", id="rc1")
        b.recv(match("message", id="rc1"))
        r.recv_until(lambda x: x.find(q(NS_CARBONS, "sent")) is not None)
        close_unacked(r)
        for c in (plain, sender):
            c.expect_silence(1.0, is_carbon)
        # With no other resource available, it would go to offline storage.
        plain.disconnect()
        sender.disconnect()
        low = pool.client("alice", resource="low", available=True, priority=-1)
        r = raw_with_carbons(srv, "desk2")
        b.message(low.jid, "to the low one", id="rc2")
        low.recv(match("message", id="rc2"))
        r.recv_until(lambda x: x.find(q(NS_CARBONS, "received")) is not None)
        close_unacked(r)
        pool.settle(0.5)
        later = pool.client("alice", resource="later", available=True)
        later.expect_silence(1.0, match("message"))
        low.expect_silence(0.1, is_carbon)
    finally:
        pool.close()


# ---------------------------------------------------------------------------
# Enable and disable


def test_enable_disable(clients):
    """§4, §5: to the server, to the own bare JID or without 'to'; again is no error
    (§10.1); after disable no more copies; a session that is not available gets none; an
    enable for someone else is not the user's to send."""
    a1 = clients("alice", resource="one", available=True)
    a2 = clients("alice", resource="two", available=True)
    b = clients("bob", available=True)
    res = enable(a2, to=DOMAIN)
    assert res.get("from") == DOMAIN and res.get("to") == a2.jid, dump(res)
    res = enable(a2, to=A)
    assert res.get("from") == A, dump(res)
    enable(a2)
    b.message(a1.jid, "copied", id="x1")
    carbon_of(a2, "received", "x1")
    enable(a2, what="disable")
    enable(a2, what="disable", to=DOMAIN)
    b.message(a1.jid, "not copied", id="x2")
    a1.recv(match("message", id="x2"))
    no_carbon(a2)
    # Enabled but never available: no copies.
    a3 = clients("alice", resource="three")
    enable(a3)
    b.message(a1.jid, "not for three", id="x3")
    a1.recv(match("message", id="x3"))
    no_carbon(a3)
    # Not for another user's account, and not a get.
    res = a1.iq("set", f"<enable xmlns='{NS_CARBONS}'/>", to=B)
    assert error_of(res)[1] == "service-unavailable", dump(res)
    res = a1.iq("get", f"<enable xmlns='{NS_CARBONS}'/>")
    assert error_of(res)[1] == "service-unavailable", dump(res)
    res = a1.iq("set", f"<sent xmlns='{NS_CARBONS}'/>")
    assert error_of(res)[1] == "bad-request", dump(res)


def test_module_disabled(make_im):
    """[sm] disable = carbons: no feature, enable is service-unavailable, nothing copied."""
    srv = make_im(sm_disable=["carbons"])
    pool = im.IMPool(srv)
    try:
        a1 = pool.client("alice", resource="one", available=True)
        a2 = pool.client("alice", resource="two", available=True)
        b = pool.client("bob", available=True)
        res = a1.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN)
        feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
                 .findall(q(NS_DISCO_INFO, "feature"))}
        assert NS_CARBONS not in feats, feats
        for to in (None, DOMAIN):
            res = a2.iq("set", f"<enable xmlns='{NS_CARBONS}'/>", to=to)
            assert error_of(res) == ("cancel", "service-unavailable"), dump(res)
        b.message(a1.jid, "hi", id="d1")
        a1.recv(match("message", id="d1"))
        no_carbon(a2)
    finally:
        pool.close()
