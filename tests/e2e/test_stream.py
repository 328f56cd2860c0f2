# SPDX-License-Identifier: MIT
"""The XEP-0114 stream itself, byte by byte: handshake, stream errors, hostile input.

Stream errors follow RFC 6120 §4.9: the server sends <stream:error/> with one condition,
closes the stream and then the TCP connection. Other components must not notice.
"""

import re
import socket
import time

import pytest

from harness import (NS_ACCEPT, NS_STREAM, RawComponent, dump, new_id,
                     stanza, stream_error_condition, stream_header)


def assert_link_works(src, dst, note=""):
    """src sends a message to dst's domain; dst must get exactly that one next."""
    mid = new_id("alive")
    src_domain = src.name.split(":", 1)[1]
    dst_domain = dst.name.split(":", 1)[1]
    src.send(stanza("message", dst_domain, src_domain, id=mid, body="still alive " + note))
    got = dst.recv()
    assert got.get("id") == mid, f"{dst.name} got something else first: {dump(got)}"


# ---------------------------------------------------------------------------
# Handshake


def test_handshake_succeeds(raw, server):
    c = raw("a.test", login=False)
    hdr = c.open_stream("a.test")
    assert hdr.tag == f"{{{NS_STREAM}}}stream"
    assert c.header_ns.get("") == NS_ACCEPT, c.header_ns
    assert hdr.get("from") == "a.test"
    sid = hdr.get("id")
    assert sid, "stream header without id"
    answer = c.handshake(server.secret("a.test"))
    assert answer.tag == f"{{{NS_ACCEPT}}}handshake", dump(answer)
    assert not (answer.text or "").strip() and len(answer) == 0, "handshake reply must be empty"


def test_stream_ids_differ(raw):
    ids = set()
    for _ in range(5):
        c = raw(None)
        ids.add(c.open_stream("a.test").get("id"))
        c.close()
    assert len(ids) == 5, f"stream ids repeat: {ids}"


def test_wrong_secret_not_authorized(raw, server):
    c = raw(None)
    c.open_stream("a.test")
    c.send_handshake(server.secret("a.test") + "x")
    cond, _ = c.expect_stream_error()
    assert cond == "not-authorized"
    # The failed attempt does not hold the domain.
    raw("a.test")


def test_handshake_for_another_stream_id_is_refused(raw, server):
    """A digest computed for someone else's stream id (a replay) is refused."""
    first = raw(None)
    other_id = first.open_stream("a.test").get("id")
    c = raw(None)
    c.open_stream("a.test")
    c.send_handshake(server.secret("a.test"), stream_id=other_id)
    cond, _ = c.expect_stream_error()
    assert cond == "not-authorized"


def test_uppercase_or_garbage_digest_refused(raw, server):
    c = raw(None)
    c.open_stream("a.test")
    c.send("<handshake>not-a-digest</handshake>")
    cond, _ = c.expect_stream_error()
    assert cond == "not-authorized"


def test_unknown_component_domain_host_unknown(raw):
    c = raw(None)
    c.send(stream_header("unknown.test"))
    cond, _ = c.expect_stream_error()
    assert cond == "host-unknown"


def test_wrong_stream_namespace_invalid_namespace(raw):
    """XEP-0114 §3: an unsupported stream namespace gets <invalid-namespace/>."""
    c = raw(None)
    c.send(stream_header("a.test", ns="jabber:client"))
    cond, _ = c.expect_stream_error()
    assert cond == "invalid-namespace"


def test_stanza_before_handshake_not_authorized(raw, server):
    b = raw("b.test")
    c = raw(None)
    c.open_stream("a.test")
    c.send(stanza("message", "b.test", "a.test", id="too-early", body="x"))
    cond, _ = c.expect_stream_error()
    assert cond == "not-authorized"
    other = raw("c.test")
    assert_link_works(other, b)  # and the early stanza was never delivered


# ---------------------------------------------------------------------------
# from addresses


@pytest.mark.parametrize("spoof", ["someoneelse.example", "b.test", "user@b.test/r",
                                   "sub.a.test", "a.test.evil", "user@d.test"])
def test_spoofed_from_invalid_from(raw, spoof):
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send(stanza("message", "b.test", spoof, id="spoof", body="trust me"))
    cond, _ = a.expect_stream_error()
    assert cond == "invalid-from"
    assert_link_works(c, b)  # the spoofed stanza was not delivered before c's
    # The link was dropped, so a.test is free again and works.
    a2 = raw("a.test")
    assert_link_works(a2, b)


@pytest.mark.parametrize("frm", ["a.test", "user@a.test", "user@a.test/any/resource", "a.test/r"])
def test_allowed_from_addresses(raw, frm):
    """XEP-0114 §3: any user at the component's own domain is fine."""
    a, b = raw("a.test"), raw("b.test")
    a.send(stanza("message", "b.test", frm, id="ok-from"))
    got = b.recv()
    assert (got.get("id"), got.get("from")) == ("ok-from", frm)


@pytest.mark.parametrize("text", [
    "<message from='a.test' id='no-to'><body>x</body></message>",
    "<message to='b.test' id='no-from'><body>x</body></message>",
    "<iq type='get' id='no-addr'><query xmlns='urn:example:q'/></iq>",
])
def test_missing_address_improper_addressing(raw, text):
    """XEP-0114 §3: every stanza from a component has 'from' and 'to' (RFC 6120
    §4.9.3.10: improper-addressing)."""
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send(text)
    cond, _ = a.expect_stream_error()
    assert cond == "improper-addressing"
    assert_link_works(c, b)


def test_unknown_top_level_element_unsupported_stanza_type(raw):
    """RFC 6120 §4.9.3.22: a first-level element that is not a stanza."""
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send("<foo xmlns='jabber:component:accept' to='b.test' from='a.test'/>")
    cond, _ = a.expect_stream_error()
    assert cond == "unsupported-stanza-type"
    assert_link_works(c, b)


# ---------------------------------------------------------------------------
# Conflicts


def test_second_connection_conflict_first_stays(raw, server):
    a, b = raw("a.test"), raw("b.test")
    second = raw(None)
    second.open_stream("a.test")
    # The router may refuse at once (the name is taken) or only after a valid handshake.
    try:
        second.events.appendleft(second.next_event(0.5))
    except TimeoutError:
        second.send_handshake(server.secret("a.test"))
    cond, _ = second.expect_stream_error()
    assert cond == "conflict"
    assert_link_works(b, a, "first a.test")
    assert_link_works(a, b, "first a.test")


# ---------------------------------------------------------------------------
# Malformed and restricted XML


MALFORMED = {
    "mismatched-tag": b"<message to='b.test' from='a.test'><body>x</bogus></message>",
    "unquoted-attr": b"<message to=b.test from='a.test'/>",
    "duplicate-attr": b"<message to='b.test' to='c.test' from='a.test'/>",
    "undefined-entity": b"<message to='b.test' from='a.test'><body>&nope;</body></message>",
    "bad-utf8": b"<message to='b.test' from='a.test'><body>\xff\xfe</body></message>",
    "control-char": b"<message to='b.test' from='a.test'><body>\x01</body></message>",
    "unbound-prefix": b"<message to='b.test' from='a.test'><x:y/></message>",
    "lone-lt": b"<message to='b.test' from='a.test'><</message>",
    "two-roots-close": b"</message>",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_xml_not_well_formed(raw, case):
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send(MALFORMED[case])
    cond, _ = a.expect_stream_error()
    assert cond == "not-well-formed"
    assert_link_works(b, c)
    assert_link_works(c, b)


@pytest.mark.slixmpp
def test_malformed_xml_others_keep_working_slixmpp(raw, server):
    """The same with slixmpp components watching: they neither notice nor get anything."""
    import harness
    pool = harness.SlixPool(server.port)
    try:
        sb = pool.component("b.test", server.secret("b.test"))
        sc = pool.component("c.test", server.secret("c.test"))
        a = raw("a.test")
        a.send(MALFORMED["mismatched-tag"])
        cond, _ = a.expect_stream_error()
        assert cond == "not-well-formed"
        sb.message("c.test", id="after-malformed")
        assert sc.recv()["id"] == "after-malformed"
        sb.expect_silence(0.2)
    finally:
        pool.close()


def test_garbage_instead_of_stream_header(raw):
    c = raw(None)
    c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    cond, _ = c.expect_stream_error()
    assert cond == "not-well-formed"


RESTRICTED_AFTER_LOGIN = {
    "comment-between-stanzas": b"<!-- a comment -->",
    "comment-in-stanza": b"<message to='b.test' from='a.test'><!-- c --><body>x</body></message>",
    "processing-instruction": b"<?some-pi data?>",
    "pi-in-stanza": b"<message to='b.test' from='a.test'><?pi x?></message>",
}

RESTRICTED_BEFORE_HEADER = {
    "doctype": ("<?xml version='1.0'?><!DOCTYPE stream:stream>"),
    "internal-subset": ("<?xml version='1.0'?><!DOCTYPE stream:stream "
                        "[<!ENTITY big 'bigger'>]>"),
    "comment-before-header": "<?xml version='1.0'?><!-- hello -->",
}


@pytest.mark.parametrize("case", sorted(RESTRICTED_AFTER_LOGIN))
def test_restricted_xml_in_stream(raw, case):
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send(RESTRICTED_AFTER_LOGIN[case])
    cond, _ = a.expect_stream_error()
    assert cond == "restricted-xml"
    assert_link_works(c, b)  # nothing of a's stanza was delivered


@pytest.mark.parametrize("case", sorted(RESTRICTED_BEFORE_HEADER))
def test_restricted_xml_before_header(raw, case):
    c = raw(None)
    c.send(RESTRICTED_BEFORE_HEADER[case] + stream_header("a.test", decl=False))
    cond, _ = c.expect_stream_error()
    assert cond == "restricted-xml"


def test_entity_expansion_bomb_refused(raw):
    """A billion-laughs DTD never gets expanded: the DTD itself is refused."""
    dtd = "<!DOCTYPE stream:stream [<!ENTITY a 'aaaaaaaaaa'>" + "".join(
        f"<!ENTITY {chr(98 + i)} '" + f"&{chr(97 + i)};" * 10 + "'>" for i in range(8)) + "]>"
    c = raw(None)
    c.send("<?xml version='1.0'?>" + dtd + stream_header("a.test", decl=False)
           + "<handshake>&i;</handshake>")
    cond, _ = c.expect_stream_error()
    assert cond == "restricted-xml"


# ---------------------------------------------------------------------------
# Size limit (the suite's servers use max_stanza_size = 64K)


def test_stanza_under_limit_delivered(raw):
    a, b = raw("a.test"), raw("b.test")
    body = "y" * (40 * 1024)
    a.send(stanza("message", "b.test", "a.test", id="big-ok", body=body))
    got = b.recv()
    assert got.get("id") == "big-ok"
    assert got.find(f"{{{NS_ACCEPT}}}body").text == body


def test_oversized_unterminated_stanza_policy_violation(raw):
    """The limit holds while the stanza is still arriving: no need to wait for its end."""
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    a.send("<message to='b.test' from='a.test' id='huge'><body>" + "z" * (100 * 1024))
    cond, _ = a.expect_stream_error()
    assert cond == "policy-violation"
    assert_link_works(c, b)


def test_oversized_complete_stanza_policy_violation(raw):
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    try:
        a.send(stanza("message", "b.test", "a.test", id="huge", body="z" * (100 * 1024)))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the router may close before it has read everything
    cond, _ = a.expect_stream_error()
    assert cond == "policy-violation"
    assert_link_works(c, b)


def test_deep_nesting_refused_or_delivered(raw):
    """Very deep nesting within the size limit must not crash the router: the stanza is
    delivered intact, or the sender's stream ends with policy-violation."""
    a, b = raw("a.test"), raw("b.test")
    depth = 5000
    a.send("<message to='b.test' from='a.test' id='deep'>" + "<d>" * depth + "</d>" * depth
           + "</message>")
    try:
        a.events.appendleft(a.next_event(1.0))
    except TimeoutError:
        got = b.recv()
        assert got.get("id") == "deep"
    else:
        cond, _ = a.expect_stream_error()
        assert cond == "policy-violation"
    c = raw("c.test")
    assert_link_works(c, b)


# ---------------------------------------------------------------------------
# Incremental parsing


@pytest.mark.slow
def test_stanza_split_byte_by_byte(raw):
    a, b = raw("a.test"), raw("b.test")
    text = stanza("message", "b.test", "a.test", id="drip",
                  body="h\u00e9llo \u4e16\u754c \U0001f389 & <done>")
    data = text.encode("utf-8")
    for i in range(len(data)):
        a.send(data[i:i + 1])
        time.sleep(0.002)
    got = b.recv()
    assert got.get("id") == "drip"
    assert got.find(f"{{{NS_ACCEPT}}}body").text == "h\u00e9llo \u4e16\u754c \U0001f389 & <done>"


def test_many_stanzas_in_one_write(raw):
    a, b = raw("a.test"), raw("b.test")
    ids = [f"burst-{i}" for i in range(50)]
    a.send("".join(stanza("message", "b.test", "a.test", id=i) for i in ids))
    assert [b.recv().get("id") for _ in ids] == ids


def test_whitespace_between_stanzas(raw):
    a, b = raw("a.test"), raw("b.test")
    a.send(" \n\t ")
    a.send(stanza("message", "b.test", "a.test", id="after-ws") + "\n  ")
    assert b.recv().get("id") == "after-ws"
    a.expect_silence(0.2)


# ---------------------------------------------------------------------------
# Peers that go away


def link_id(server, domain):
    """The connection id ([cN] in the log) under which the router last logged domain."""
    found = re.findall(r"\[c(\d+)\][^\n]*" + re.escape(domain), server.log_text())
    return found[-1] if found else None


@pytest.mark.parametrize("how", ["fin", "rst"])
def test_peer_vanishes_mid_stanza(raw, server, how):
    a, b, c = raw("a.test"), raw("b.test"), raw("c.test")
    cid = link_id(server, "a.test")
    assert cid is not None, "the router did not log a.test's connection"
    before = server.log_size()
    a.send("<message to='b.test' from='a.test' id='half'><body>only half of th")
    time.sleep(0.1)
    if how == "rst":
        a.abort()
    else:
        a.close()
    logged = server.wait_log(lambda t: f"[c{cid}]" in t, offset=before, timeout=3.0)
    assert logged is not None, f"the router logged nothing about [c{cid}] (a.test) vanishing"
    assert_link_works(c, b)  # the half stanza was not delivered; b and c still work
    assert_link_works(b, c)
    # The route of a.test was freed: it can log in again.
    a2 = raw("a.test")
    assert_link_works(a2, b)


def test_connect_and_leave_silently(raw, server):
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        s.close()
    b, c = raw("b.test"), raw("c.test")
    assert_link_works(b, c)


@pytest.mark.slow
def test_handshake_timeout_closes_idle_connection(make_server):
    srv = make_server(router_opts={"handshake_timeout": "1s"})
    silent = RawComponent(srv.port, name="raw:silent").connect()
    opened = RawComponent(srv.port, name="raw:opened").connect()
    try:
        opened.open_stream("a.test")
        t0 = time.monotonic()
        for c in (silent, opened):
            kind, el = c.next_event(4.0)
            if kind == "header":
                kind, el = c.next_event(4.0)
            if kind == "element":
                # A stream error is welcome, not required; if sent, RFC 6120 §4.9.3.4 names it.
                assert el.tag == f"{{{NS_STREAM}}}error", dump(el)
                assert stream_error_condition(el) == "connection-timeout", dump(el)
                c.expect_closed(2.0)
            else:
                assert kind in ("close", "eof"), kind
        assert time.monotonic() - t0 < 4.0
    finally:
        silent.close()
        opened.close()


def test_shutdown_with_connected_components(make_server):
    """SIGTERM with live links: streams are closed, exit code 0, no leaks (checked at teardown)."""
    srv = make_server()
    a = RawComponent(srv.port, name="raw:a.test").login("a.test", srv.secret("a.test"))
    b = RawComponent(srv.port, name="raw:b.test").login("b.test", srv.secret("b.test"))
    a.send(stanza("message", "b.test", "a.test", id="last"))
    assert b.recv().get("id") == "last"
    half = RawComponent(srv.port, name="raw:half").connect()
    half.send(stream_header("c.test") + "<message to='b.test' from='c.test'><bo")
    try:
        assert srv.stop() == 0, srv.log_tail()
        for c in (a, b):
            kind, el = c.next_event(3.0)
            if kind == "element":
                # RFC 6120 §4.9.3.17: a stream error on shutdown is <system-shutdown/>.
                assert el.tag == f"{{{NS_STREAM}}}error", dump(el)
                assert stream_error_condition(el) == "system-shutdown", dump(el)
                kind, el = c.next_event(3.0)
            assert kind in ("close", "eof"), (kind, el)
    finally:
        for c in (a, b, half):
            c.close()
