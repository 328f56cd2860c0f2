# SPDX-License-Identifier: MIT
"""MUC entering and leaving (XEP-0045 §7.2, §7.6, §7.14, §10.1): room creation (instant and
reserved), the locked room, presence broadcast with its status codes, join errors, nick rules,
nick changes, leaving, temporary rooms vanishing; with three clients, in both topologies."""

import asyncio

import pytest

from harness import dump
from im import MUC_DOMAIN, NS_CLIENT, match, q
from muc_util import (NS_DATA, NS_MUC_OWNER, NS_MUC_USER, codes, configure, enter,  # noqa: F401
                      error_cond, instant_room, item, join, join_error, mclients, muc_server,
                      room_jid, send_join, subject_of)

pytestmark = pytest.mark.slixmpp


def pres(frm, type=None):
    return match("presence", frm=frm, type=type)


def test_instant_room_locked_then_open(mclients):
    """§10.1.1: 201 + owner/moderator; locked (item-not-found) until the instant form;
    §7.2.3: the roster first, then self-presence (110, id reflected), then the subject."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("coven")
    el = join(a, r, "first")
    assert codes(el) == [110, 201], dump(el)
    assert item(el)["affiliation"] == "owner" and item(el)["role"] == "moderator", dump(el)
    subject_of(a, r)
    assert join_error(b, r, "second") == ("cancel", "item-not-found", r)
    res = a.iq("set", f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' type='submit'/>"
                      "</query>", to=r)
    assert res.get("type") == "result" and res.get("from") == r, dump(res)
    b.drain()
    send_join_id = "bob-join-1"
    from muc_util import send_join as sj
    sj(b, r, "second", id=send_join_id)
    first = b.recv(pres(f"{r}/first"))
    assert item(first) == {"affiliation": "owner", "role": "moderator"}, \
        f"semi-anonymous: no jid for a participant: {dump(first)}"
    me = b.recv(pres(f"{r}/second"))
    assert me.get("id") == send_join_id and codes(me) == [110], dump(me)
    assert item(me)["role"] == "participant" and item(me)["affiliation"] == "none", dump(me)
    subj = subject_of(b, r)
    assert (subj.find(q(NS_CLIENT, "subject")).text or "") == "", dump(subj)
    # The owner (a moderator) sees bob's real JID; carol will not.
    seen = a.recv(pres(f"{r}/second"))
    assert item(seen).get("jid") == b.jid and codes(seen) == [], dump(seen)
    enter(c, r, "third")
    got = b.recv(pres(f"{r}/third"))
    assert "jid" not in item(got) and codes(got) == [], dump(got)
    assert a.recv(pres(f"{r}/third")) is not None


def test_reserved_room_form_nonanonymous(mclients):
    """§10.1.3: the form, then a submitted configuration; 100 for a non-anonymous room, jids
    for all; disco shows the configuration."""
    a, b = mclients("alice"), mclients("bob")
    r = room_jid("reserved")
    join(a, r, "owner")
    subject_of(a, r)
    form = a.iq("get", f"<query xmlns='{NS_MUC_OWNER}'/>", to=r)
    assert form.get("type") == "result", dump(form)
    x = form.find(f"{q(NS_MUC_OWNER, 'query')}/{q(NS_DATA, 'x')}")
    fields = {f.get("var"): [v.text or "" for v in f.findall(q(NS_DATA, "value"))]
              for f in x.findall(q(NS_DATA, "field"))}
    for var in ("muc#roomconfig_roomname", "muc#roomconfig_roomdesc",
                "muc#roomconfig_persistentroom", "muc#roomconfig_publicroom",
                "muc#roomconfig_membersonly", "muc#roomconfig_moderatedroom",
                "muc#roomconfig_passwordprotectedroom", "muc#roomconfig_roomsecret",
                "muc#roomconfig_whois", "muc#roomconfig_maxusers",
                "muc#roomconfig_changesubject", "muc#roomconfig_allowinvites",
                "muc#roomconfig_allowpm", "muc#roomconfig_getmemberlist",
                "muc#roomconfig_presencebroadcast", "muc#maxhistoryfetch",
                "muc#roomconfig_enablelogging", "muc#roomconfig_roomowners"):
        assert var in fields, f"{var} missing from {sorted(fields)}"
    assert fields["FORM_TYPE"] == ["http://jabber.org/protocol/muc#roomconfig"]
    assert fields["muc#roomconfig_whois"] == ["moderators"]
    assert fields["muc#roomconfig_roomowners"] == [a.bare], fields
    assert join_error(b, r, "early") == ("cancel", "item-not-found", r)
    res = configure(a, r, {"muc#roomconfig_roomname": "A Dark Cave",
                           "muc#roomconfig_whois": "anyone",
                           "muc#roomconfig_enablelogging": "1"})
    assert res.get("type") == "result", dump(res)
    el = join(b, r, "guest")
    assert codes(el) == [100, 110, 170], dump(el)
    assert item(el).get("jid") == b.jid, dump(el)
    info = b.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=r)
    qn = info.find(q("http://jabber.org/protocol/disco#info", "query"))
    ident = qn.find(q("http://jabber.org/protocol/disco#info", "identity"))
    assert ident.get("name") == "A Dark Cave", dump(info)
    feats = {f.get("var") for f in qn.findall(q("http://jabber.org/protocol/disco#info",
                                                 "feature"))}
    assert {"muc_nonanonymous", "muc_temporary", "muc_public", "muc_open",
            "muc_unmoderated", "muc_unsecured"} <= feats, feats


def test_config_errors(mclients):
    """§10.1.3: a password-protected room without a password is not-acceptable; a malformed
    value is bad-request; only the owner may configure (forbidden)."""
    a, b = mclients("alice"), mclients("bob")
    r = room_jid("strict")
    instant_room(a, r, "own")
    res = configure(a, r, {"muc#roomconfig_passwordprotectedroom": "1"})
    assert error_cond(res)[:2] == ("modify", "not-acceptable"), dump(res)
    res = configure(a, r, {"muc#roomconfig_maxusers": "lots"})
    assert error_cond(res)[:2] == ("modify", "bad-request"), dump(res)
    enter(b, r, "b")
    res = configure(b, r, {"muc#roomconfig_roomname": "mine"})
    assert error_cond(res)[:2] == ("auth", "forbidden"), dump(res)


def test_join_errors(mclients):
    """§7.2.6-7.2.10: not-authorized (password), registration-required (members-only),
    service-unavailable (full), each from the occupant JID with by=room."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("locked")
    instant_room(a, r, "own")
    assert configure(a, r, {"muc#roomconfig_passwordprotectedroom": "1",
                            "muc#roomconfig_roomsecret": "cauldronburn",
                            "muc#roomconfig_maxusers": "2"}).get("type") == "result"
    assert join_error(b, r, "b") == ("auth", "not-authorized", r)
    assert join_error(b, r, "b", password="wrong") == ("auth", "not-authorized", r)
    enter(b, r, "b", password="cauldronburn")
    assert join_error(c, r, "c", password="cauldronburn") == ("wait", "service-unavailable", r)
    m = room_jid("members")
    instant_room(a, m, "own")
    assert configure(a, m, {"muc#roomconfig_membersonly": "1"}).get("type") == "result"
    assert join_error(c, m, "c") == ("auth", "registration-required", m)


def test_nick_rules(mclients):
    """Nicks are Resourceprep'd (210 when that changed them) and unique without regard to
    case (§7.2.9 conflict); blank nicks are not-acceptable (§15.1); no nick is jid-malformed."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("nicks")
    instant_room(a, r, "Kevin")
    assert join_error(b, r, "kevin") == ("cancel", "conflict", r)
    assert join_error(b, r, "KEVIN") == ("cancel", "conflict", r)
    assert join_error(b, r, " ") == ("modify", "not-acceptable", r)
    # Fullwidth letters: Resourceprep (NFKC) makes them ASCII, which the client is told (210).
    b.send_raw(f"<presence to='{r}/\uff22\uff4f\uff42' id='fw'><x xmlns='"
               "http://jabber.org/protocol/muc'/></presence>")
    el = b.recv(pres(f"{r}/Bob"))
    assert codes(el) == [110, 210], dump(el)
    c.send_raw(f"<presence to='{r}' id='nonick'><x xmlns='http://jabber.org/protocol/muc'/>"
               "</presence>")
    err = c.recv(match("presence", frm=r, type="error"))
    assert error_cond(err) == ("modify", "jid-malformed", r), dump(err)


def test_nick_change(mclients):
    """§7.6: unavailable from the old nick with 303 and the new nick (110 for the occupant),
    then presence from the new nick; a taken nick is conflict."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("renames")
    instant_room(a, r, "a")
    enter(b, r, "b")
    enter(c, r, "c")
    for x in (a, b, c):
        x.drain(settle=0.2)
    b.send_raw(f"<presence to='{r}/c' id='taken'/>")
    err = b.recv(match("presence", frm=f"{r}/c", type="error"))
    assert error_cond(err) == ("cancel", "conflict", r), dump(err)
    b.send_raw(f"<presence to='{r}/bee' id='rename'/>")
    old = b.recv(pres(f"{r}/b", type="unavailable"))
    assert codes(old) == [110, 303] and item(old)["nick"] == "bee", dump(old)
    new = b.recv(pres(f"{r}/bee"))
    assert codes(new) == [110] and new.get("id") == "rename", dump(new)
    for x in (a, c):
        old = x.recv(pres(f"{r}/b", type="unavailable"))
        assert codes(old) == [303] and item(old)["nick"] == "bee", dump(old)
        assert codes(x.recv(pres(f"{r}/bee"))) == []
    # The new nick is the one the room knows: a message comes from it.
    b.message(r, "renamed", type="groupchat", id="after-rename")
    assert c.recv(match("message", id="after-rename")).get("from") == f"{r}/bee"


def test_leave_and_temporary_room_goes(mclients):
    """§7.14: unavailable with 110 and role none to the leaver, role none to the others; the
    last one out takes a temporary room with it (a new join creates it again: 201)."""
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid("brief")
    instant_room(a, r, "a")
    enter(b, r, "b")
    enter(c, r, "c")
    a.drain(settle=0.2)
    c.drain()
    b.send_raw(f"<presence to='{r}/b' type='unavailable'><status>gone</status></presence>")
    me = b.recv(pres(f"{r}/b", type="unavailable"))
    assert codes(me) == [110] and item(me)["role"] == "none", dump(me)
    for x in (a, c):
        el = x.recv(pres(f"{r}/b", type="unavailable"))
        assert item(el)["role"] == "none" and codes(el) == [], dump(el)
        assert el.find(q(NS_CLIENT, "status")).text == "gone", dump(el)
    for x, n in ((a, "a"), (c, "c")):
        x.send_raw(f"<presence to='{r}/{n}' type='unavailable'/>")
        x.recv(pres(f"{r}/{n}", type="unavailable"))
    info = b.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=r)
    assert error_cond(info)[1] == "item-not-found", dump(info)
    assert codes(join(b, r, "again")) == [110, 201]


def test_gc1_presence_from_stranger_is_kicked(mclients):
    """§7.2.1 (v1.32): presence without <x/> from a non-occupant gets 110, 307 and 333."""
    a, b = mclients("alice"), mclients("bob")
    r = room_jid("sync")
    instant_room(a, r, "a")
    b.send_raw(f"<presence to='{r}/b'/>")
    el = b.recv(pres(f"{r}/b", type="unavailable"))
    assert codes(el) == [110, 307, 333], dump(el)
    a.expect_silence(0.3, pres(f"{r}/b"))


def test_slixmpp_plugin_join_and_chat(mclients):
    """slixmpp's own XEP-0045 plugin joins (waiting for presence and subject) and chats."""
    a, b = mclients("alice"), mclients("bob")
    r = room_jid("plugin")
    instant_room(a, r, "a")
    b.xmpp.register_plugin("xep_0045")
    muc = b.xmpp.plugin["xep_0045"]
    pres_el, subject, occupants, history = b.pool.run(
        muc.join_muc_wait(r, "plugged", timeout=5), timeout=8)
    assert pres_el["from"] == f"{r}/plugged"
    assert [p["from"].resource for p in occupants] == ["a"] or \
        "a" in [p["from"].resource for p in occupants]
    assert muc.get_roster(r) is not None
    b.xmpp.send_message(mto=r, mbody="from the plugin", mtype="groupchat")
    got = a.recv(match("message", frm=f"{r}/plugged", type="groupchat"))
    assert got.find(q(NS_CLIENT, "body")).text == "from the plugin"
    muc.leave_muc(r, "plugged")
    assert codes(a.recv(pres(f"{r}/plugged", type="unavailable"))) == []


def test_service_limits(make_im):
    """[muc] create = admins: not-allowed (§10.1.1); max_rooms_per_user; max_occupants."""
    import im
    srv = make_im(muc=True, muc_extra={"create": "admins", "admins": "alice@localhost",
                                       "max_occupants": "2", "room_maxusers": "2"})
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        c = pool.client("carol", available=True)
        assert join_error(b, room_jid("bobs"), "b") == ("cancel", "not-allowed",
                                                         room_jid("bobs"))
        r = room_jid("small")
        instant_room(a, r, "a")
        enter(b, r, "b")
        assert join_error(c, r, "c") == ("wait", "service-unavailable", r)
    finally:
        pool.close()


def test_rooms_per_user(make_im):
    import im
    srv = make_im(muc=True, muc_extra={"max_rooms_per_user": "1"})
    pool = im.IMPool(srv)
    try:
        b = pool.client("bob", available=True)
        instant_room(b, room_jid("one"), "b")
        assert join_error(b, room_jid("two"), "b") == ("cancel", "not-allowed",
                                                        room_jid("two"))
    finally:
        pool.close()
