# SPDX-License-Identifier: MIT
"""MUC discovery and self-ping: disco#info/#items of the service and rooms (XEP-0045 §6, the
muc#roominfo form of XEP-0128), occupant JIDs (§6.7), unique room names (XEP-0307), and
XEP-0410 self-pings; both topologies."""

import pytest

from harness import dump
from im import MUC_DOMAIN, match, q
from muc_util import (NS_DATA, NS_MUC_UNIQUE, NS_PING, configure, enter,  # noqa: F401
                      error_cond, instant_room, join, mclients, muc_server, room_jid)

pytestmark = pytest.mark.slixmpp

INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"


def info(c, to):
    res = c.iq("get", f"<query xmlns='{INFO}'/>", to=to)
    assert res.get("type") == "result", dump(res)
    qn = res.find(q(INFO, "query"))
    feats = {f.get("var") for f in qn.findall(q(INFO, "feature"))}
    ids = [(i.get("category"), i.get("type"), i.get("name")) for i in qn.findall(q(INFO,
                                                                                    "identity"))]
    form = {}
    x = qn.find(q(NS_DATA, "x"))
    if x is not None:
        form = {f.get("var"): [v.text or "" for v in f.findall(q(NS_DATA, "value"))]
                for f in x.findall(q(NS_DATA, "field"))}
    return ids, feats, form


def items(c, to):
    res = c.iq("get", f"<query xmlns='{ITEMS}'/>", to=to)
    assert res.get("type") == "result", dump(res)
    return [(i.get("jid"), i.get("name")) for i in res.find(q(ITEMS, "query"))]


def test_service_and_rooms(mclients):
    """§6.1-6.3: the service's identity and features; its items are the public rooms only."""
    a = mclients("alice")
    ids, feats, _ = info(a, MUC_DOMAIN)
    assert ("conference", "text", "Chatrooms") in ids, ids
    assert {"http://jabber.org/protocol/muc", "http://jabber.org/protocol/muc#unique",
            "http://jabber.org/protocol/muc#stable_id"} <= feats, feats
    instant_room(a, room_jid("open"), "a")
    instant_room(a, room_jid("hidden"), "a")
    assert configure(a, room_jid("open"), {"muc#roomconfig_roomname": "Open Room"}).get(
        "type") == "result"
    assert configure(a, room_jid("hidden"), {"muc#roomconfig_publicroom": "0"}).get(
        "type") == "result"
    assert items(a, MUC_DOMAIN) == [(room_jid("open"), "Open Room")]


def test_room_info_and_items(mclients):
    """§6.4: identity, muc_* features, self-ping optimisation and the muc#roominfo form;
    §6.5: occupants listed only where JIDs are not secret from the asker."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("described")
    instant_room(a, r, "a")
    assert configure(a, r, {"muc#roomconfig_roomdesc": "For witches",
                            "muc#roomconfig_persistentroom": "1",
                            "muc#roomconfig_moderatedroom": "1"}).get("type") == "result"
    enter(b, r, "b")
    ids, feats, form = info(c, r)
    assert ids == [("conference", "text", "described")], ids
    assert {"muc_persistent", "muc_moderated", "muc_semianonymous", "muc_open",
            "muc_unsecured", "muc_public",
            "http://jabber.org/protocol/muc#self-ping-optimization"} <= feats, feats
    assert form["FORM_TYPE"] == ["http://jabber.org/protocol/muc#roominfo"], form
    assert form["muc#roominfo_description"] == ["For witches"], form
    assert form["muc#roominfo_occupants"] == ["2"], form
    assert items(b, r) == [], "semi-anonymous: no occupant list for a visitor"
    assert sorted(items(a, r)) == [(f"{r}/a", "a"), (f"{r}/b", "b")]
    # A visitor in a moderated room has no voice (§7.4): forbidden.
    b.message(r, "hello", type="groupchat", id="mute")
    assert error_cond(b.recv(match("message", id="mute", type="error")))[1] == "forbidden"


def test_occupant_iq_and_self_ping(mclients):
    """XEP-0410: a joined occupant's self-ping is answered by the room; a non-occupant's
    is not-acceptable; §6.7: disco of an occupant by a non-occupant is bad-request; an
    occupant's iq to another is forwarded from the occupant JID."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("pings")
    instant_room(a, r, "a")
    enter(b, r, "b")
    res = b.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/b")
    assert res.get("type") == "result" and res.get("from") == f"{r}/b", dump(res)
    res = c.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/b")
    assert error_cond(res) == ("cancel", "not-acceptable", r), dump(res)
    res = c.iq("get", f"<query xmlns='{INFO}'/>", to=f"{r}/a")
    assert error_cond(res)[1] == "bad-request", dump(res)
    b.send_raw(f"<iq type='get' id='fwd-1' to='{r}/a'><query xmlns='urn:example:q'/></iq>")
    fwd = a.recv(match("iq", id="fwd-1"))
    assert fwd.get("from") == f"{r}/b" and fwd.get("to") == a.jid, dump(fwd)
    a.send_raw(f"<iq type='result' id='fwd-1' to='{r}/b'/>")
    back = b.recv(match("iq", id="fwd-1", type="result"))
    assert back.get("from") == f"{r}/a", dump(back)


def test_unique_room_name(mclients):
    """XEP-0307: the service proposes a name no room has; a room can be created with it."""
    a = mclients("alice")
    res = a.iq("get", f"<unique xmlns='{NS_MUC_UNIQUE}'/>", to=MUC_DOMAIN)
    u = res.find(q(NS_MUC_UNIQUE, "unique"))
    assert res.get("type") == "result" and u is not None and u.text, dump(res)
    el = join(a, f"{u.text}@{MUC_DOMAIN}", "a")
    assert 201 in [int(s.get("code")) for s in el.iter() if s.tag.endswith("status")]
