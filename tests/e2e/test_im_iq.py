# SPDX-License-Identifier: MIT
"""IQs answered by the server and on behalf of accounts: disco (XEP-0030), ping (XEP-0199),
version (XEP-0092), time (XEP-0202), unknown namespaces, unknown accounts (RFC 6120 §8,
RFC 6121 §8.5)."""

import datetime

import pytest

import im
from harness import dump
from im import (DOMAIN, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_TIME, NS_VERSION,
                error_of, match, q)

pytestmark = pytest.mark.slixmpp

A, B = f"alice@{DOMAIN}", f"bob@{DOMAIN}"


def result(res, client, frm):
    """Checks a result answers the request: type, to (the requester), from (the target)."""
    assert res.get("type") == "result", dump(res)
    assert res.get("to") == client.jid, dump(res)
    assert res.get("from") in ((frm,) if frm else (None, client.bare, DOMAIN)), dump(res)
    return res


def features_of(res):
    query = res.find(q(NS_DISCO_INFO, "query"))
    assert query is not None, dump(res)
    return {f.get("var") for f in query.findall(q(NS_DISCO_INFO, "feature"))}, \
        [(i.get("category"), i.get("type")) for i in query.findall(q(NS_DISCO_INFO, "identity"))]


def test_disco_info_server(clients):
    a = clients("alice")
    res = result(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=DOMAIN), a, DOMAIN)
    feats, idents = features_of(res)
    assert ("server", "im") in idents, idents
    for ns in (NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_TIME):
        assert ns in feats, (ns, feats)


def test_disco_items_server(clients):
    a = clients("alice")
    res = result(a.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=DOMAIN), a, DOMAIN)
    query = res.find(q(NS_DISCO_ITEMS, "query"))
    assert query is not None, dump(res)
    for item in query.findall(q(NS_DISCO_ITEMS, "item")):
        assert item.get("jid"), dump(res)


def test_disco_info_own_account(clients):
    """XEP-0030 §3.1 / RFC 6121: the server answers for an account's bare JID: identity
    account/registered for its owner."""
    a = clients("alice")
    res = result(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=A), a, A)
    feats, idents = features_of(res)
    assert ("account", "registered") in idents, idents


def test_disco_info_other_account(clients):
    """Another user's account: an answer from the bare JID (identity, or an error such as
    service-unavailable/forbidden when no subscription lets it be seen); never a timeout."""
    a = clients("alice")
    res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=B)
    assert res.get("from") == B, dump(res)
    if res.get("type") == "result":
        feats, idents = features_of(res)
        assert ("account", "registered") in idents, idents
    else:
        assert error_of(res)[1] in ("service-unavailable", "forbidden", "subscription-required"),\
            dump(res)


def test_disco_items_own_account(clients):
    a = clients("alice")
    res = result(a.iq("get", f"<query xmlns='{NS_DISCO_ITEMS}'/>", to=A), a, A)
    assert res.find(q(NS_DISCO_ITEMS, "query")) is not None, dump(res)


def test_ping_server(clients):
    """XEP-0199 §4.2: an empty result."""
    a = clients("alice")
    res = result(a.iq("get", f"<ping xmlns='{NS_PING}'/>", to=DOMAIN), a, DOMAIN)
    assert len(res) == 0, dump(res)


def test_ping_without_to(clients):
    """RFC 6120 §10.3.3: an iq without 'to' is handled by the server for the account."""
    a = clients("alice")
    res = a.iq("get", f"<ping xmlns='{NS_PING}'/>")
    assert res.get("type") == "result" and len(res) == 0, dump(res)


def test_version(clients):
    """XEP-0092: name and version of the server."""
    a = clients("alice")
    res = result(a.iq("get", f"<query xmlns='{NS_VERSION}'/>", to=DOMAIN), a, DOMAIN)
    query = res.find(q(NS_VERSION, "query"))
    name, version = query.find(q(NS_VERSION, "name")), query.find(q(NS_VERSION, "version"))
    assert name is not None and (name.text or "").strip(), dump(res)
    assert version is not None and (version.text or "").strip(), dump(res)
    if not im.is_prosody():
        assert "parley" in name.text.lower(), dump(res)


def test_time(clients):
    """XEP-0202: tzo and utc (XEP-0082), close to ours."""
    a = clients("alice")
    res = result(a.iq("get", f"<time xmlns='{NS_TIME}'/>", to=DOMAIN), a, DOMAIN)
    t = res.find(q(NS_TIME, "time"))
    tzo, utc = t.find(q(NS_TIME, "tzo")), t.find(q(NS_TIME, "utc"))
    assert tzo is not None and utc is not None, dump(res)
    assert tzo.text in ("Z", "+00:00", "-00:00") or len(tzo.text) == 6, dump(res)
    assert utc.text.endswith("Z"), dump(res)
    when = datetime.datetime.strptime(utc.text[:19], "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - when).total_seconds()) < 5, (utc.text, now)


@pytest.mark.parametrize("itype", ["get", "set"])
def test_unknown_iq_to_server(clients, itype):
    """RFC 6120 §8.4: an iq the server does not understand -> service-unavailable."""
    a = clients("alice")
    res = a.iq(itype, "<query xmlns='urn:example:not-a-protocol'/>", to=DOMAIN)
    assert res.get("type") == "error", dump(res)
    assert error_of(res) == ("cancel", "service-unavailable"), dump(res)
    assert res.get("from") == DOMAIN and res.get("to") == a.jid, dump(res)


def test_unknown_iq_to_own_bare_jid(clients):
    a = clients("alice")
    res = a.iq("get", "<query xmlns='urn:example:not-a-protocol'/>", to=A)
    assert error_of(res) == ("cancel", "service-unavailable"), dump(res)


def test_iq_to_nonexistent_user(clients):
    """RFC 6121 §8.5.1: an iq to an account that does not exist -> service-unavailable."""
    a = clients("alice")
    for to in (f"nobody@{DOMAIN}", f"nobody@{DOMAIN}/res"):
        res = a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=to)
        assert res.get("type") == "error", dump(res)
        assert error_of(res)[1] == "service-unavailable", dump(res)
        assert res.get("from") == to, dump(res)


def test_iq_to_full_jid_of_other_user(clients):
    """RFC 6121 §8.5.3.1: an iq to a connected full JID is delivered; the answer comes back."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    a.send_raw(f"<iq type='get' id='v-1' to='{b.jid}'><query xmlns='{NS_VERSION}'/></iq>")
    got = b.recv(match("iq", id="v-1"))
    assert got.get("from") == a.jid and got.get("type") == "get", dump(got)
    # slixmpp answers what it does not implement with an error; it reaches alice as sent.
    res = a.recv(match("iq", id="v-1"))
    assert res.get("from") == b.jid and res.get("type") in ("result", "error"), dump(res)


def test_iq_to_offline_full_jid(clients):
    """RFC 6121 §8.5.3.2.2: an iq to a full JID with no such session -> service-unavailable."""
    a = clients("alice")
    res = a.iq("get", f"<query xmlns='{NS_VERSION}'/>", to=f"{B}/nowhere")
    assert error_of(res)[1] == "service-unavailable", dump(res)


def test_iq_result_without_request_is_dropped(clients):
    """RFC 6120 §8.2.3: a stray result or error is not answered (no error loops)."""
    a = clients("alice")
    a.send_raw(f"<iq type='result' id='stray' to='{DOMAIN}'/>")
    a.send_raw(f"<iq type='error' id='stray2' to='{DOMAIN}'><error type='cancel'>"
               "<bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
    a.expect_silence(0.7, match("iq", where=lambda el: el.get("id") in ("stray", "stray2")))
    res = a.iq("get", f"<ping xmlns='{NS_PING}'/>", to=DOMAIN)
    assert res.get("type") == "result"
