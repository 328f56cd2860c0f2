# SPDX-License-Identifier: MIT
"""Registration requests approved by a room admin (XEP-0045 §9.9, [muc] registration =
approval): the request kept pending (an empty iq result, §7.10), the muc#register approval form
to every admin and owner, allow / deny / cancel, answers that change nothing, the bound on
pending requests, and pending requests kept by a persistent room across a restart (both
backends); both topologies."""

import secrets

import pytest

import im
from harness import dump
from im import match, q
from muc_util import NS_DATA, error_cond, enter, join_error
from mucadmin_util import (NS_REGISTER, USERS4, admin_get, admin_set, bare, item_xml,
                           list_items, ok, pres, room_with, user_item)

pytestmark = pytest.mark.slixmpp

NS_REGISTER_FORM = "http://jabber.org/protocol/muc#register"
APPROVAL = {"registration": "approval", "registration_pending": 3}


def server(make_im, **kw):
    users = {u: f"{u}-{secrets.token_hex(6)}" for u in (*USERS4, "erin", "frank")}
    return make_im(muc=True, users=users, muc_extra=APPROVAL, **kw)


@pytest.fixture
def mc(make_im):
    pool = im.IMPool(server(make_im))

    def make(user, resource=None, available=True):
        return pool.client(user, resource=resource, available=available)

    yield make
    pool.close()


def register(c, room, nick, **fields):
    body = f"<field var='FORM_TYPE'><value>{NS_REGISTER_FORM}</value></field>"
    body += f"<field var='muc#register_roomnick'><value>{nick}</value></field>"
    for k, v in fields.items():
        body += f"<field var='muc#register_{k}'><value>{v}</value></field>"
    return c.iq("set", f"<query xmlns='{NS_REGISTER}'><x xmlns='{NS_DATA}' type='submit'>"
                       f"{body}</x></query>", to=room)


def answer(c, room, jid, allow, type="submit", id=None):
    c.send_raw(f"<message to='{room}' id='{id or secrets.token_hex(4)}'>"
               f"<x xmlns='{NS_DATA}' type='{type}'>"
               f"<field var='FORM_TYPE'><value>{NS_REGISTER_FORM}</value></field>"
               f"<field var='muc#jid'><value>{jid}</value></field>"
               f"<field var='muc#register_allow'><value>{allow}</value></field></x></message>")


def is_form(room):
    def pred(el):
        x = el.find(q(NS_DATA, "x"))
        return (el.tag == q(im.NS_CLIENT, "message") and el.get("from") == room
                and x is not None and x.get("type") == "form")
    return pred


def form_fields(el):
    """[(var, type, label, [values])] of the approval form, in order."""
    x = el.find(q(NS_DATA, "x"))
    return [(f.get("var"), f.get("type"), f.get("label"),
             [v.text for v in f.findall(q(NS_DATA, "value"))])
            for f in x.findall(q(NS_DATA, "field"))]


def members(c, room):
    return list_items(admin_get(c, room, affiliation="member"))


def test_request_pending_then_approved(mc):
    """§7.10 + §9.9 in a members-only room: the request gets an empty result and waits; the
    owner (in the room) and an admin (not in it: at her bare JID) get the §9.9 form with the
    request's fields; a member's answer, a cancel and an answer about nobody change nothing;
    the owner's allow makes a member with the reserved nick, who may then enter."""
    a, b, c, d = mc("alice"), mc("bob"), mc("carol"), mc("dave")
    r = room_with(a, [], "approve", {"muc#roomconfig_membersonly": "1"})
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="member"),
                 item_xml(jid=bare("carol"), affiliation="admin")))
    enter(b, r, "bob")
    for x in (a, b, c):
        x.drain(settle=0.2)
    res = ok(d.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=r))
    x = res.find(f"{q(NS_REGISTER, 'query')}/{q(NS_DATA, 'x')}")
    assert x is not None and x.get("type") == "form", dump(res)
    assert "approve" in x.find(q(NS_DATA, "instructions")).text, dump(res)
    res = ok(register(d, r, "Hag", first="Brunhilde", email="hag66@witchesonline"))
    assert len(res) == 0, f"an empty result (§7.10): {dump(res)}"
    want = [("FORM_TYPE", "hidden", None, [NS_REGISTER_FORM]),
            ("muc#register_first", "text-single", "Given Name", ["Brunhilde"]),
            ("muc#register_roomnick", "text-single", "Desired Nickname", ["Hag"]),
            ("muc#register_email", "text-single", "Email Address", ["hag66@witchesonline"]),
            ("muc#jid", "jid-single", "User ID", [bare("dave")]),
            ("muc#register_allow", "boolean", "Allow this person to register with the room?",
             ["0"])]
    for x, to in ((a, a.jid), (c, bare("carol"))):  # in the room: its session; else bare
        el = x.recv(is_form(r))
        assert el.get("to") == to and el.get("id"), dump(el)
        assert el.find(f"{q(NS_DATA, 'x')}/{q(NS_DATA, 'title')}").text == \
            "Registration request", dump(el)
        assert form_fields(el) == want, dump(el)
    b.expect_silence(0.3, is_form(r))
    assert members(a, r) == [{"affiliation": "member", "jid": bare("bob")}]
    assert join_error(d, r, "Hag")[1] == "registration-required"
    # A member's answer, a cancelled form, an answer about someone with no request: nothing.
    answer(b, r, bare("dave"), "1", id="by-member")
    answer(a, r, bare("dave"), "1", type="cancel", id="cancel")
    answer(a, r, bare("erin"), "1", id="nobody")
    for x in (a, b):
        x.expect_silence(0.5, match("message", frm=r))
    assert join_error(d, r, "Hag")[1] == "registration-required"
    answer(c, r, bare("dave"), "true")
    a.drain(settle=0.5)  # carol's answer and dave's entry come over different streams
    el = enter(d, r, "Hag")
    assert user_item(el)["affiliation"] == "member", dump(el)
    assert members(a, r) == [{"affiliation": "member", "jid": bare("bob")},
                             {"affiliation": "member", "jid": bare("dave"), "nick": "Hag"}]
    res = ok(d.iq("get", f"<query xmlns='{NS_REGISTER}'/>", to=r))
    assert res.find(f"{q(NS_REGISTER, 'query')}/{q(NS_REGISTER, 'username')}").text == "Hag"
    # Answered already: a second allow changes nothing.
    answer(a, r, bare("dave"), "1", id="again")
    a.expect_silence(0.3, match("message", id="again"))


def test_deny_replace_and_broadcast(mc):
    """An open room: a second request with the same nick asks nobody again, a new nick asks
    again; a deny drops the request; an allowed occupant's membership is broadcast (§7.10);
    an affiliation an admin gives meanwhile ends the request."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "deny")
    ok(register(b, r, "Bobby"))
    el = a.recv(is_form(r))
    ok(register(b, r, "Bobby"))
    a.expect_silence(0.3, is_form(r))
    ok(register(b, r, "Robert"))
    el = a.recv(is_form(r))
    assert ("muc#register_roomnick", "text-single", "Desired Nickname", ["Robert"]) in \
        form_fields(el)
    answer(a, r, bare("bob"), "0")
    for x in (a, b, c):
        x.expect_silence(0.5, pres(f"{r}/bob"))
    answer(a, r, bare("bob"), "1")
    b.expect_silence(0.3, pres(f"{r}/bob"))
    assert members(a, r) == []
    ok(register(b, r, "Robert"))
    a.recv(is_form(r))
    answer(a, r, bare("bob"), "1")
    for x, want in ((a, "member"), (c, "member"), (b, "member")):
        el = x.recv(pres(f"{r}/bob"))
        assert user_item(el)["affiliation"] == want, dump(el)
    assert members(a, r) == [{"affiliation": "member", "jid": bare("bob"), "nick": "Robert"}]
    # A ban while carol's request waits: the request goes with it.
    ok(register(c, r, "Crone"))
    a.recv(is_form(r))
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="outcast")))
    a.drain(settle=0.3)
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="none")))
    answer(a, r, bare("carol"), "1")
    a.expect_silence(0.3, match("message", frm=r))
    assert bare("carol") not in [i["jid"] for i in members(a, r)]


def test_limits_and_errors(mc):
    """[muc] registration_pending (3 here): a fourth request waits (resource-constraint), a
    renewed one does not count twice (a new nick asks again); a field longer than 1024 bytes is not-acceptable; an
    admin's answer without muc#jid is bad-request; outcasts may not ask."""
    a = mc("alice")
    r = room_with(a, [], "limits", {"muc#roomconfig_membersonly": "1"})
    for u in ("bob", "carol", "dave"):
        ok(register(mc(u), r, u))
        a.recv(is_form(r))
    ok(register(mc("bob", "second"), r, "bobby"))
    a.recv(is_form(r))  # a new nick: asked again, still one request
    e = mc("erin")
    res = register(e, r, "erin")
    assert error_cond(res)[:2] == ("wait", "resource-constraint"), dump(res)
    a.expect_silence(0.3, is_form(r))
    answer(a, r, bare("bob"), "0")
    a.drain(settle=0.3)
    assert error_cond(register(e, r, "erin", url="x" * 1025))[1] == "not-acceptable"
    ok(register(e, r, "erin", url="x" * 1024))
    a.recv(is_form(r))
    a.send_raw(f"<message to='{r}' id='bad'><x xmlns='{NS_DATA}' type='submit'>"
               f"<field var='FORM_TYPE'><value>{NS_REGISTER_FORM}</value></field>"
               f"<field var='muc#register_allow'><value>1</value></field></x></message>")
    el = a.recv(match("message", id="bad", type="error"))
    assert error_cond(el)[1] == "bad-request", dump(el)
    f = mc("frank")
    ok(admin_set(a, r, item_xml(jid=bare("frank"), affiliation="outcast")))
    assert error_cond(register(f, r, "frank"))[1] == "not-allowed"


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_pending_survives_restart(make_im, storage):
    """A persistent room keeps its pending requests in the store: after a restart the owner's
    allow (the form she got before) registers the user."""
    srv = server(make_im, storage=storage)
    pool = im.IMPool(srv)
    try:
        a, d = pool.client("alice", available=True), pool.client("dave", available=True)
        r = room_with(a, [], "kept", {"muc#roomconfig_membersonly": "1",
                                      "muc#roomconfig_persistentroom": "1"})
        ok(register(d, r, "Hag", last="Entwhistle"))
        a.recv(is_form(r))
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a, d = pool.client("alice", available=True), pool.client("dave", available=True)
        answer(a, r, bare("dave"), "1")
        el = enter(d, r, "Hag", timeout=10)
        assert user_item(el)["affiliation"] == "member", dump(el)
        assert {"affiliation": "member", "jid": bare("dave"), "nick": "Hag"} in members(a, r)
    finally:
        pool.close()
