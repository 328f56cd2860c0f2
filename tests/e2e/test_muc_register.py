# SPDX-License-Identifier: MIT
"""Registering with a room (XEP-0045 §7.10, jabber:iq:register with the muc#register form) and
reserved nicks (§7.12 x-roomuser-item, §9.3 nicks given by admins): membership on
registration, the nick kept for its owner (conflict for others, whatever the case), who may
register; both topologies."""

import pytest

from harness import dump
from im import match, q
from muc_util import NS_DATA, codes, enter, error_cond, join_error
from mucadmin_util import (NS_REGISTER, admin_get, admin_set, bare, item_xml, list_items,  # noqa
                           mc, mserver4, ok, pres, room_with, user_item)

pytestmark = pytest.mark.slixmpp

NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_REGISTER_FORM = "http://jabber.org/protocol/muc#register"


def register(c, room, nick, form_type=NS_REGISTER_FORM):
    fields = ""
    if form_type is not None:
        fields += f"<field var='FORM_TYPE'><value>{form_type}</value></field>"
    if nick is not None:
        fields += f"<field var='muc#register_roomnick'><value>{nick}</value></field>"
    return c.iq("set", f"<query xmlns='{NS_REGISTER}'><x xmlns='{NS_DATA}' type='submit'>"
                       f"{fields}</x></query>", to=room)


def reserved_nick(c, room):
    res = ok(c.iq("get", f"<query xmlns='{NS_DISCO_INFO}' node='x-roomuser-item'/>", to=room))
    query = res.find(q(NS_DISCO_INFO, "query"))
    assert query.get("node") == "x-roomuser-item", dump(res)
    ids = query.findall(q(NS_DISCO_INFO, "identity"))
    if not ids:
        return None
    assert ids[0].get("category") == "conference" and ids[0].get("type") == "text", dump(res)
    return ids[0].get("name")


def test_register_reserves_nick_and_makes_member(mc):
    """§7.10: the form, the submission (result; the occupant's presence shows member), then
    <registered/> with the nick; §7.12: the nick through disco, conflict for anyone else,
    in any case, on entering, changing nick or registering."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "club")
    res = ok(b.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=r))
    x = res.find(f"{q(NS_REGISTER, 'query')}/{q(NS_DATA, 'x')}")
    assert x is not None and x.get("type") == "form", dump(res)
    fields = {f.get("var"): f for f in x.findall(q(NS_DATA, "field"))}
    assert fields["FORM_TYPE"].find(q(NS_DATA, "value")).text == NS_REGISTER_FORM
    assert fields["muc#register_roomnick"].find(q(NS_DATA, "required")) is not None, dump(res)
    assert reserved_nick(b, r) is None
    ok(register(b, r, "Thirdwitch"))
    for x_, want in ((a, []), (c, []), (b, [110])):
        el = x_.recv(pres(f"{r}/bob"))
        assert codes(el) == want and user_item(el)["affiliation"] == "member", dump(el)
    res = ok(b.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=r))
    query = res.find(q(NS_REGISTER, "query"))
    assert query.find(q(NS_REGISTER, "registered")) is not None, dump(res)
    assert query.find(q(NS_REGISTER, "username")).text == "Thirdwitch", dump(res)
    assert reserved_nick(b, r) == "Thirdwitch"
    assert reserved_nick(c, r) is None
    assert list_items(admin_get(a, r, affiliation="member")) == [
        {"affiliation": "member", "jid": bare("bob"), "nick": "Thirdwitch"}]
    assert error_cond(register(c, r, "THIRDWITCH"))[:2] == ("cancel", "conflict")
    assert error_cond(register(c, r, "bob"))[1] == "conflict", "in use by bob now"
    c.send_raw(f"<presence to='{r}/thirdwitch' id='nick-change'/>")
    el = c.recv(match("presence", id="nick-change", type="error"))
    assert error_cond(el)[1] == "conflict", dump(el)
    d = mc("dave")
    assert join_error(d, r, "ThirdWitch") == ("cancel", "conflict", r)
    # bob himself may use it, from another client too.
    b2 = mc("bob", "other")
    el = enter(b2, r, "thirdwitch")
    assert user_item(el)["affiliation"] == "member", dump(el)


def test_register_errors_and_rules(mc):
    """§7.10: no form is bad-request, a wrong FORM_TYPE too; outcasts may not register
    (not-allowed), nor outsiders of a members-only room; an admin gives a nick with
    membership (§9.3); unregistering (XEP-0077 <remove/>) ends membership."""
    a, b, c, d = mc("alice"), mc("bob"), mc("carol"), mc("dave")
    r = room_with(a, [b], "rules")
    res = b.iq("set", f"<query xmlns='{NS_REGISTER}'/>", to=r)
    assert error_cond(res)[:2] == ("modify", "bad-request"), dump(res)
    assert error_cond(register(b, r, "x", form_type="urn:other"))[1] == "bad-request"
    assert error_cond(register(b, r, None))[1] == "bad-request"
    ok(admin_set(a, r, item_xml(jid=bare("dave"), affiliation="outcast")))
    res = d.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=r)
    assert error_cond(res)[:2] == ("cancel", "not-allowed"), dump(res)
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member", nick="Hecate")))
    assert reserved_nick(c, r) == "Hecate"
    assert error_cond(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="member",
                                               nick="hecate")))[1] == "conflict"
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member", nick="")))
    assert reserved_nick(c, r) is None
    ok(register(b, r, "Bobby"))
    b.drain(settle=0.2)
    ok(b.iq("set", f"<query xmlns='{NS_REGISTER}'><remove/></query>", to=r))
    el = b.recv(pres(f"{r}/bob"))
    assert user_item(el)["affiliation"] == "none", dump(el)
    assert reserved_nick(b, r) is None
    res = b.iq("set", f"<query xmlns='{NS_REGISTER}'><remove/></query>", to=r)
    assert error_cond(res)[1] == "item-not-found", dump(res)
    # A members-only room: outsiders may not register themselves in.
    m = room_with(a, [], "closed", {"muc#roomconfig_membersonly": "1"})
    res = d.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=m)
    assert error_cond(res)[1] == "not-allowed", dump(res)
    assert error_cond(register(d, m, "dave"))[1] == "not-allowed"
    res = d.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=f"nothere@{m.split('@')[1]}")
    assert error_cond(res)[1] == "item-not-found", dump(res)
