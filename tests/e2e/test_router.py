# SPDX-License-Identifier: MIT
"""Routing between XEP-0114 components: delivery both ways, payloads intact, bounces.

The components are slixmpp's ComponentXMPP (an independent implementation) where the test is
about routing, and the raw client where the exact bytes or the absence of an answer matter.
"""

import xml.etree.ElementTree as ET

import pytest

from harness import NS_ACCEPT, canon, dump, local, new_id, stanza, stanza_error

EXT_NS = "urn:example:parley:e2e"

# An extension the router cannot know: attributes (one namespaced), nesting, mixed content,
# characters that need escaping, non-ASCII text.
EXTENSION = (
    f"<ext xmlns='{EXT_NS}' xmlns:q='urn:example:q' kind='deep' q:flag='1' note='a &lt; b &amp; &quot;c&quot;'>"
    "<level1 n='1'>text <b>bold</b> tail &amp; more"
    "<level2 xmlns='urn:example:inner' empty=''><leaf/><leaf v='2'>\u00e9\u4e16\U0001f389</leaf></level2>"
    "</level1><q:other>x</q:other></ext>"
)


def ext_element():
    return ET.fromstring(EXTENSION)


def find_ext(el):
    return el.find(f"{{{EXT_NS}}}ext")


def ext_aware(*comps):
    """slixmpp writes a namespaced attribute only if it knows a prefix for its namespace."""
    for c in comps:
        c.xmpp.namespace_map["urn:example:q"] = "q"



# ---------------------------------------------------------------------------
# Delivery between two components


def test_message_both_ways(slix):
    a, b = slix("a.test"), slix("b.test")
    sent = a.message("bob@b.test/res", body="hello b \u00e9", id="m-ab")
    got = b.recv()
    assert local(got.xml.tag) == "message"
    assert got["id"] == "m-ab"
    assert got["to"].full == "bob@b.test/res"
    assert got["from"].full == sent["from"].full == "a.test"
    assert got["type"] == "chat"
    assert got["body"] == "hello b \u00e9"

    b.message("alice@a.test", body="hello a", id="m-ba", frm="bob@b.test/res", mtype="normal")
    got = a.recv()
    assert got["id"] == "m-ba"
    assert got["from"].full == "bob@b.test/res"
    assert got["to"].full == "alice@a.test"
    assert got["body"] == "hello a"


def test_presence_both_ways(slix):
    a, b = slix("a.test"), slix("b.test")
    a.presence("b.test", status="here", id="p1", frm="alice@a.test/x")
    got = b.recv()
    assert local(got.xml.tag) == "presence"
    assert (got["id"], got["from"].full, got["to"].full) == ("p1", "alice@a.test/x", "b.test")
    assert got["status"] == "here"

    b.presence("alice@a.test/x", ptype="unavailable", id="p2", frm="b.test")
    got = a.recv()
    assert local(got.xml.tag) == "presence"
    assert (got["id"], got["type"], got["from"].full) == ("p2", "unavailable", "b.test")


def test_iq_get_result_both_ways(slix):
    a, b = slix("a.test"), slix("b.test")
    ext_aware(a, b)
    a.echo_iq = b.echo_iq = True  # answer iq get/set with a result carrying the same payload

    for src, dst in ((a, b), (b, a)):
        iq = src.iq(dst.domain, "get", payload=[ext_element()], frm=f"u@{src.domain}/r")
        answer = src.iq_send(iq)
        assert answer["type"] == "result", dump(answer.xml)
        assert answer["id"] == iq["id"]
        assert answer["from"].full == dst.domain
        assert answer["to"].full == f"u@{src.domain}/r"
        ext = find_ext(answer.xml)
        assert ext is not None, dump(answer.xml)
        assert canon(ext) == canon(ext_element())
        # And the request reached the other side as sent.
        req = dst.recv(predicate=lambda st: st["id"] == iq["id"])
        assert req["type"] == "get"
        assert canon(find_ext(req.xml)) == canon(ext_element())


def test_unknown_extension_intact_in_message(slix):
    a, b = slix("a.test"), slix("b.test")
    ext_aware(a, b)
    a.message("b.test", body="with ext", id="m-ext", payload=[ext_element()])
    got = b.recv()
    ext = find_ext(got.xml)
    assert ext is not None, dump(got.xml)
    assert canon(ext) == canon(ext_element()), f"\nsent: {EXTENSION}\ngot:  {dump(ext)}"


def test_unknown_extension_intact_in_presence(slix):
    a, b = slix("a.test"), slix("b.test")
    ext_aware(a, b)
    a.presence("b.test", id="p-ext", payload=[ext_element()])
    got = b.recv()
    assert canon(find_ext(got.xml)) == canon(ext_element()), dump(got.xml)


def test_raw_bytes_extension_intact(raw):
    """The exact bytes a component wrote (prefixes, quoting, entities) keep their meaning."""
    a, b = raw("a.test"), raw("b.test")
    text = (
        "<message to='b.test' from='a.test' id='raw1' xml:lang='en'>"
        "<p:x xmlns:p='urn:example:p' p:attr='v&apos;1' plain=\"d&#x27;q\">"
        "<p:y>&#x1F600; &lt;&gt;&amp;</p:y><z xmlns='urn:example:z'><![CDATA[<not-xml>]]></z>"
        "</p:x></message>"
    )
    a.send(text)
    got = b.recv()
    sent = ET.fromstring(text.replace("<message ", f"<message xmlns='{NS_ACCEPT}' ", 1))
    assert got.tag == f"{{{NS_ACCEPT}}}message"
    assert canon(got) == canon(sent), f"\nsent: {text}\ngot:  {dump(got)}"


def test_many_messages_keep_order(slix):
    a, b = slix("a.test"), slix("b.test")
    ids = [f"seq-{i}" for i in range(100)]
    for i in ids:
        a.message("b.test", body=i, id=i)
    got = [b.recv()["id"] for _ in ids]
    assert got == ids


def test_three_components_fan_in(slix):
    a, b, c = slix("a.test"), slix("b.test"), slix("c.test")
    a.message("c.test", body="from a", id="fa")
    b.message("c.test", body="from b", id="fb")
    got = {c.recv()["id"] for _ in range(2)}
    assert got == {"fa", "fb"}
    c.message("a.test", id="ca")
    c.message("b.test", id="cb")
    assert a.recv()["id"] == "ca"
    assert b.recv()["id"] == "cb"


def test_routing_by_domain_of_full_jid(raw):
    """Routing uses the domain part of 'to', whatever the local part and resource."""
    a, b = raw("a.test"), raw("b.test")
    for to in ("b.test", "node@b.test", "node@b.test/res/with/slashes", "b.test/only-res"):
        a.send(stanza("message", to, "a.test", id=new_id(), body=to))
        got = b.recv()
        assert got.get("to") == to


# ---------------------------------------------------------------------------
# Bounces


def assert_bounce(err, original_to, original_from, original_id, condition, kind="message"):
    assert local(err.tag) == kind, dump(err)
    assert err.get("type") == "error", dump(err)
    assert err.get("id") == original_id, dump(err)
    # The error comes from where the stanza was going, to whoever sent it (RFC 6120 §8.3.1).
    assert err.get("from") == original_to, dump(err)
    assert err.get("to") == original_from, dump(err)
    e = stanza_error(err)
    assert e is not None, f"no <error/> child: {dump(err)}"
    etype, cond, _ = e
    assert (etype, cond) == ("cancel", condition), dump(err)


def test_unknown_domain_bounces_remote_server_not_found(raw):
    a = raw("a.test")
    a.send(stanza("message", "someone@nowhere.example/r", "alice@a.test/home", id="lost-1",
                  type="chat", body="anyone?"))
    err = a.recv()
    assert_bounce(err, "someone@nowhere.example/r", "alice@a.test/home", "lost-1",
                  "remote-server-not-found")


def test_unknown_domain_iq_bounces(raw):
    a = raw("a.test")
    a.send(stanza("iq", "nowhere.example", "a.test", id="iq-lost", type="get",
                  inner="<query xmlns='urn:example:q'/>"))
    err = a.recv()
    assert_bounce(err, "nowhere.example", "a.test", "iq-lost", "remote-server-not-found",
                  kind="iq")


def test_bounce_with_slixmpp(slix):
    a = slix("a.test")
    a.message("x@nowhere.example", body="?", id="sl-lost", frm="alice@a.test")
    err = a.recv()
    assert err["type"] == "error"
    assert err["id"] == "sl-lost"
    assert err["from"].full == "x@nowhere.example"
    assert err["to"].full == "alice@a.test"
    assert stanza_error(err.xml)[:2] == ("cancel", "remote-server-not-found"), dump(err.xml)


def test_configured_but_offline_component_service_unavailable(raw):
    a = raw("a.test")
    a.send(stanza("message", "user@d.test", "alice@a.test", id="off-1", body="hi"))
    assert_bounce(a.recv(), "user@d.test", "alice@a.test", "off-1", "service-unavailable")
    a.send(stanza("iq", "d.test", "a.test", id="off-2", type="get",
                  inner="<query xmlns='http://jabber.org/protocol/disco#info'/>"))
    assert_bounce(a.recv(), "d.test", "a.test", "off-2", "service-unavailable", kind="iq")


@pytest.mark.parametrize("dest", ["x@nowhere.example", "x@d.test"])
@pytest.mark.parametrize("kind", ["message", "iq", "presence"])
def test_error_stanzas_are_never_bounced(raw, dest, kind):
    """An error about an error would loop: it is dropped (RFC 6120 §8.3.1)."""
    a = raw("a.test")
    inner = "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>"
    a.send(stanza(kind, dest, "a.test", id="err-1", type="error", inner=inner))
    # A marker sent after it on the same link: its bounce must be the first thing back.
    a.send(stanza("message", dest, "a.test", id="marker", body="marker"))
    got = a.recv()
    assert got.get("id") == "marker", f"the error stanza came back: {dump(got)}"
    a.expect_silence(0.3)


def test_stanza_to_self_domain(raw):
    a = raw("a.test")
    a.send(stanza("message", "other@a.test", "a.test", id="self-1", body="loop"))
    got = a.recv()
    assert got.get("id") == "self-1" and got.get("type") != "error", dump(got)


def test_component_disconnect_then_service_unavailable(raw):
    a, b = raw("a.test"), raw("b.test")
    a.send(stanza("message", "b.test", "a.test", id="before"))
    assert b.recv().get("id") == "before"
    # b closes its stream properly; the router answers and closes the TCP connection.
    b.send("</stream:stream>")
    b.expect_closed()
    a.send(stanza("message", "bob@b.test", "a.test", id="after", body="still there?"))
    assert_bounce(a.recv(), "bob@b.test", "a.test", "after", "service-unavailable")


def test_slixmpp_component_disconnect_then_service_unavailable(slix):
    a, b = slix("a.test"), slix("b.test")
    a.message("b.test", id="before")
    assert b.recv()["id"] == "before"
    b.stop()
    a.message("bob@b.test", id="after", frm="alice@a.test")
    err = a.recv()
    assert (err["type"], err["id"], err["from"].full, err["to"].full) == (
        "error", "after", "bob@b.test", "alice@a.test")
    assert stanza_error(err.xml)[:2] == ("cancel", "service-unavailable"), dump(err.xml)


def test_component_reset_then_route_freed(raw, server):
    """A component that vanishes (TCP reset) loses its route: it can log in again, and
    stanzas sent while it is away bounce."""
    import time
    a, b = raw("a.test"), raw("b.test")
    b.abort()
    # Until the router notices, a new b.test is refused with conflict; it must notice soon.
    deadline = time.monotonic() + 5.0
    while True:
        b2 = raw("b.test", login=False)
        b2.open_stream("b.test")
        answer = b2.handshake(server.secret("b.test"))
        if local(answer.tag) == "handshake":
            break
        b2.close()
        assert time.monotonic() < deadline, f"route of the reset b.test never freed: {dump(answer)}"
        time.sleep(0.1)
    a.send(stanza("message", "b.test", "a.test", id="to-new-b"))
    assert b2.recv().get("id") == "to-new-b"
    b2.send("</stream:stream>")
    b2.expect_closed()
    a.send(stanza("message", "b.test", "a.test", id="to-no-b"))
    assert_bounce(a.recv(), "b.test", "a.test", "to-no-b", "service-unavailable")


def test_no_stanza_lost_when_destination_leaves(raw):
    """While b.test closes its stream, a.test keeps sending to it: every stanza is either
    delivered to b before its stream ends or bounced to a, none silently lost."""
    a, b = raw("a.test"), raw("b.test")
    ids = [f"race-{i}" for i in range(300)]
    a.send("".join(stanza("message", "b.test", "a.test", id=i) for i in ids[:100]))
    b.send("</stream:stream>")
    a.send("".join(stanza("message", "b.test", "a.test", id=i) for i in ids[100:]))
    delivered = []
    while True:
        kind, el = b.next_event()
        if kind in ("close", "eof"):
            break
        assert kind == "element" and local(el.tag) == "message", (kind, el)
        delivered.append(el.get("id"))
    b.expect_closed()
    bounced = []
    try:
        while len(delivered) + len(bounced) < len(ids):
            err = a.recv(3.0)
            assert stanza_error(err)[:2] == ("cancel", "service-unavailable"), dump(err)
            bounced.append(err.get("id"))
    except TimeoutError:
        pass
    lost = set(ids) - set(delivered) - set(bounced)
    assert not lost, (f"{len(lost)} stanzas neither delivered nor bounced "
                      f"(delivered {len(delivered)}, bounced {len(bounced)}): {sorted(lost)[:10]}")
    assert not set(delivered) & set(bounced), "a stanza was both delivered and bounced"
    assert delivered == [i for i in ids if i in set(delivered)], "delivery out of order"


def test_stanzas_sent_before_close_are_delivered(raw):
    """A component that sends stanzas and closes its stream in one go loses none of them."""
    a, b = raw("a.test"), raw("b.test")
    ids = [f"last-{i}" for i in range(100)]
    a.send("".join(stanza("message", "b.test", "a.test", id=i) for i in ids) + "</stream:stream>")
    a.expect_closed()
    assert [b.recv().get("id") for _ in ids] == ids


@pytest.mark.raw
@pytest.mark.slow
def test_slow_receiver_pauses_senders_then_is_dropped(make_server, raw):
    """A component that stops reading cannot make the router buffer without bound: the
    router stops reading its senders (flow control) and, after stall_timeout, disconnects
    it with policy-violation; the senders then carry on."""
    import threading
    srv = make_server(router_opts={"stall_timeout": "1s"})
    a, b, c = raw("a.test", srv=srv), raw("b.test", srv=srv), raw("c.test", srv=srv)
    body = "x" * 4000
    # More than the kernel's socket buffers can hide: b's backlog must stay high.
    flood = "".join(stanza("message", "b.test", "a.test", id=f"f{i}", body=body)
                    for i in range(4000))
    sender = threading.Thread(target=a.send, args=(flood,), daemon=True)
    sender.start()
    assert srv.wait_log(lambda t: "a.test paused until b.test catches up" in t, timeout=5), \
        srv.log_tail()
    assert srv.wait_log(lambda t: "stream error <policy-violation/>" in t, timeout=15), \
        srv.log_tail()
    # What a sent after b was dropped bounces back to a: read it so a keeps up.
    bounced = 0
    while sender.is_alive() or bounced == 0:
        try:
            el = a.recv(3.0)
        except TimeoutError:
            break
        assert stanza_error(el)[:2] == ("cancel", "service-unavailable"), dump(el)
        bounced += 1
    sender.join(10)
    assert not sender.is_alive(), "the router never read the rest of a's flood"
    assert bounced > 0
    # The hard output limit was never reached: flow control kept b's backlog small.
    assert "does not read its output" not in srv.log_text()
    a.send(stanza("message", "c.test", "a.test", id="after"))
    assert c.recv_until(lambda el: el.get("id") == "after").get("id") == "after"
    b.abort()
