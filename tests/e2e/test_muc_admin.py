# SPDX-License-Identifier: MIT
"""MUC moderator and admin use cases (XEP-0045 §8, §9): kicks (307), voice in moderated rooms
and voice requests, bans of every resource of a bare JID (301), membership and members-only
removal (321, 322), the moderator list, role and affiliation lists, the errors of the §5
tables (forbidden, not-allowed, conflict, bad-request, item-not-found); three or four clients,
both topologies."""

import pytest

from harness import dump
from im import NS_CLIENT, match, q
from muc_util import NS_DATA, codes, configure, enter, error_cond, join, join_error
from mucadmin_util import (NS_REQUEST, admin_error, admin_get, admin_set, bare, body_msg,  # noqa
                           gone, item_xml, list_items, mc, message_error, mserver4, ok,
                           plugin, plugin_call, pres, room_with, user_item)

pytestmark = pytest.mark.slixmpp


def test_kick_307_with_actor_and_reason(mc):
    """§8.2 with slixmpp's set_role: the kicked occupant gets 110+307 with actor and reason,
    the others 307; it is out of the room."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "kick")
    res = plugin_call(a, plugin(a).set_role(r, "bob", "none", reason="Avaunt, you cullion!"))
    assert not (isinstance(res, tuple) and res[0] == "error"), res
    el = b.recv(gone(f"{r}/bob"))
    assert codes(el) == [110, 307], dump(el)
    assert user_item(el) == {"affiliation": "none", "role": "none", "actor": "alice",
                             "reason": "Avaunt, you cullion!"}, dump(el)
    el = c.recv(gone(f"{r}/bob"))
    assert codes(el) == [307], dump(el)
    assert user_item(el)["role"] == "none" and "jid" not in user_item(el), dump(el)
    el = a.recv(gone(f"{r}/bob"))
    assert codes(el) == [307] and user_item(el)["jid"].startswith("bob@"), dump(el)
    # Out of the room: a groupchat message is refused (§7.4).
    mid = body_msg(b, r, "still here?")
    assert message_error(b, mid)[1] == "not-acceptable"
    c.expect_silence(0.3, match("message", frm=f"{r}/bob"))


def test_role_change_errors(mc):
    """§8.2, §8.4, §9.6-§9.7: non-moderators are forbidden; a moderator may not kick or
    silence someone of higher affiliation, nor an admin or owner; kicking oneself is a
    conflict; an unknown nick is item-not-found; roles and affiliations do not mix."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "roles")
    assert admin_error(c, r, item_xml(nick="bob", role="none"))[:2] == ("auth", "forbidden")
    assert admin_error(a, r, item_xml(nick="alice", role="none"))[:2] == ("cancel", "conflict")
    assert admin_error(a, r, item_xml(nick="nobody", role="none"))[1] == "item-not-found"
    assert admin_error(a, r, item_xml(nick="bob", role="none", affiliation="member"))[:2] == \
        ("modify", "bad-request")
    assert admin_error(a, r, item_xml(nick="bob", role="boss"))[1] == "bad-request"
    assert admin_error(a, r, item_xml(role="none"))[1] == "bad-request"
    # carol becomes a moderator (an owner may grant it), bob a member.
    ok(admin_set(a, r, item_xml(nick="carol", role="moderator")))
    el = b.recv(pres(f"{r}/carol"))
    assert user_item(el) == {"affiliation": "none", "role": "moderator"}, dump(el)
    el = c.recv(pres(f"{r}/carol"))
    assert codes(el) == [110] and user_item(el)["role"] == "moderator", dump(el)
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="member")))
    el = c.recv(pres(f"{r}/bob"))
    assert user_item(el)["affiliation"] == "member", dump(el)
    # A moderator without affiliation: not over a member, nor an owner; no moderator grants.
    assert admin_error(c, r, item_xml(nick="bob", role="none"))[:2] == ("cancel", "not-allowed")
    assert admin_error(c, r, item_xml(nick="bob", role="visitor"))[1] == "not-allowed"
    assert admin_error(c, r, item_xml(nick="alice", role="none"))[1] == "not-allowed"
    assert admin_error(c, r, item_xml(nick="bob", role="moderator"))[1] == "forbidden"
    # Nobody takes an owner's voice, not even the owner.
    assert admin_error(a, r, item_xml(nick="alice", role="participant"))[1] == "not-allowed"
    # The owner takes carol's moderator status back (§9.7).
    ok(admin_set(a, r, item_xml(nick="carol", role="participant", reason="enough")))
    el = b.recv(pres(f"{r}/carol"))
    assert user_item(el) == {"affiliation": "none", "role": "participant",
                             "reason": "enough"}, dump(el)


def test_moderated_room_voice(mc):
    """§8.3-§8.5: visitors of a moderated room are silent until voiced; the voice list;
    revoking voice; a visitor may not read the list."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [], "moderated", {"muc#roomconfig_moderatedroom": "1"})
    el = enter(b, r, "bob")
    assert el.find(q("http://jabber.org/protocol/muc#user", "x")) is not None
    assert user_item(el)["role"] == "visitor", dump(el)
    enter(c, r, "carol")
    for x in (a, b, c):
        x.drain(settle=0.2)
    mid = body_msg(b, r, "may I speak?")
    assert message_error(b, mid)[:2] == ("auth", "forbidden")
    res = plugin_call(a, plugin(a).set_role(r, "bob", "participant", reason="A worthy witch"))
    assert not (isinstance(res, tuple) and res[0] == "error"), res
    for x, want in ((a, []), (c, []), (b, [110])):
        el = x.recv(pres(f"{r}/bob"))
        assert el.get("type") is None and codes(el) == want, dump(el)
        assert user_item(el)["role"] == "participant", dump(el)
        assert user_item(el)["reason"] == "A worthy witch", dump(el)
    mid = body_msg(b, r, "thank you")
    el = c.recv(match("message", frm=f"{r}/bob", type="groupchat"))
    assert el.find(q(NS_CLIENT, "body")).text == "thank you"
    items = list_items(admin_get(a, r, role="participant"))
    assert items == [{"affiliation": "none", "jid": b.jid, "nick": "bob",
                      "role": "participant"}], items
    assert plugin_call(a, plugin(a).get_roles_list(r, "visitor")) == ["carol"]
    assert error_cond(admin_get(c, r, role="participant"))[:2] == ("auth", "forbidden")
    ok(admin_set(a, r, item_xml(nick="bob", role="visitor")))
    el = c.recv(pres(f"{r}/bob"))
    assert user_item(el)["role"] == "visitor", dump(el)
    mid = body_msg(b, r, "again?")
    assert message_error(b, mid)[1] == "forbidden"


def test_voice_request_and_approval(mc):
    """§7.13, §8.6: a visitor's muc#request goes to the moderators as an approval form, once
    per interval; the approved form voices the visitor; a visitor may not approve."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [], "asking", {"muc#roomconfig_moderatedroom": "1"})
    enter(b, r, "bob")
    enter(c, r, "carol")
    for x in (a, b, c):
        x.drain(settle=0.2)
    plugin(b).request_voice(r, "participant")
    el = a.recv(match("message", frm=r, where=lambda e: e.find(q(NS_DATA, "x")) is not None))
    x = el.find(q(NS_DATA, "x"))
    assert x.get("type") == "form", dump(el)
    fields = {f.get("var"): (f.get("type"), [v.text for v in f.findall(q(NS_DATA, "value"))])
              for f in x.findall(q(NS_DATA, "field"))}
    assert fields == {"FORM_TYPE": ("hidden", [NS_REQUEST]),
                      "muc#role": ("list-single", ["participant"]),
                      "muc#jid": ("jid-single", [b.jid]),
                      "muc#roomnick": ("text-single", ["bob"]),
                      "muc#request_allow": ("boolean", ["false"])}, dump(el)
    c.expect_silence(0.3, match("message", frm=r))
    # Asking again at once is refused ([muc] voice_request_interval, 5 minutes by default), and
    # the moderators are not asked twice.
    b.send_raw(f"<message to='{r}' id='again'><x xmlns='{NS_DATA}' type='submit'>"
               f"<field var='FORM_TYPE'><value>{NS_REQUEST}</value></field>"
               "<field var='muc#role'><value>participant</value></field></x></message>")
    assert message_error(b, "again")[:2] == ("wait", "resource-constraint")
    a.expect_silence(0.3, match("message", frm=r,
                                where=lambda e: e.find(q(NS_DATA, "x")) is not None))
    approval = (f"<x xmlns='{NS_DATA}' type='submit'>"
                f"<field var='FORM_TYPE'><value>{NS_REQUEST}</value></field>"
                "<field var='muc#role'><value>participant</value></field>"
                f"<field var='muc#jid'><value>{b.jid}</value></field>"
                "<field var='muc#roomnick'><value>{nick}</value></field>"
                "<field var='muc#request_allow'><value>true</value></field></x>")
    # A visitor approving its own request: forbidden.
    c.send_raw(f"<message to='{r}' id='self-approve'>{approval.format(nick='carol')}</message>")
    assert message_error(c, "self-approve")[:2] == ("auth", "forbidden")
    a.send_raw(f"<message to='{r}' id='approve'>{approval.format(nick='bob')}</message>")
    for x, want in ((a, []), (c, []), (b, [110])):
        el = x.recv(pres(f"{r}/bob"))
        assert codes(el) == want and user_item(el)["role"] == "participant", dump(el)
    c.expect_silence(0.2, pres(f"{r}/carol"))


def test_ban_every_resource_of_a_bare_jid(mc):
    """§9.1, §9.2 with slixmpp's set_affiliation: a ban by bare JID removes each of its
    occupants (110+301 to each, 301 to the others, actor and reason), keeps them out, shows in
    the ban list with its reason; lifting it lets them in; banning oneself is a conflict."""
    a, b1, b2, c = mc("alice"), mc("bob", "one"), mc("bob", "two"), mc("carol")
    r = room_with(a, [c], "bans")
    enter(b1, r, "bob1")
    enter(b2, r, "bob2")
    for x in (a, b1, b2, c):
        x.drain(settle=0.2)
    res = plugin_call(a, plugin(a).set_affiliation(r, "outcast", jid=bare("bob"),
                                                   reason="Treason"))
    assert not (isinstance(res, tuple) and res[0] == "error"), res
    for client, nick in ((b1, "bob1"), (b2, "bob2")):
        el = client.recv(gone(f"{r}/{nick}"))
        assert codes(el) == [110, 301], dump(el)
        assert user_item(el) == {"affiliation": "outcast", "role": "none", "actor": "alice",
                                 "reason": "Treason"}, dump(el)
        el = c.recv(gone(f"{r}/{nick}"))
        assert codes(el) == [301] and user_item(el)["affiliation"] == "outcast", dump(el)
    assert join_error(b1, r, "again") == ("auth", "forbidden", r)
    items = list_items(admin_get(a, r, affiliation="outcast"))
    assert items == [{"affiliation": "outcast", "jid": bare("bob"), "reason": "Treason"}], items
    assert [str(j) for j in plugin_call(a, plugin(a).get_affiliation_list(r, "outcast"))] == \
        [bare("bob")]
    assert error_cond(admin_get(c, r, affiliation="outcast"))[1] == "forbidden"
    assert admin_error(a, r, item_xml(jid=bare("alice"), affiliation="outcast"))[1] == "conflict"
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="none")))
    assert list_items(admin_get(a, r, affiliation="outcast")) == []
    el = join(b1, r, "bob1")
    assert user_item(el)["affiliation"] == "none", dump(el)


def test_admin_privileges(mc):
    """§9, §10.3: an admin bans and edits members, grants and revokes moderator status of
    non-admins; not over owners (not-allowed), no admin or owner grants (forbidden); owner and
    admin lists stay the owners' in a semi-anonymous room."""
    a, b, c, d = mc("alice"), mc("bob"), mc("carol"), mc("dave")
    r = room_with(a, [b, c, d], "admins")
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="admin")))
    el = b.recv(pres(f"{r}/carol"))
    assert user_item(el) == {"affiliation": "admin", "role": "moderator"}, dump(el)
    el = c.recv(pres(f"{r}/carol"))
    assert codes(el) == [110] and user_item(el)["jid"] == c.jid, dump(el)
    assert admin_error(c, r, item_xml(jid=bare("alice"), affiliation="outcast"))[:2] == \
        ("cancel", "not-allowed")
    assert admin_error(c, r, item_xml(jid=bare("alice"), affiliation="member"))[1] == \
        "not-allowed"
    assert admin_error(c, r, item_xml(jid=bare("bob"), affiliation="admin"))[:2] == \
        ("auth", "forbidden")
    assert admin_error(c, r, item_xml(nick="alice", role="participant"))[1] == "not-allowed"
    assert error_cond(admin_get(c, r, affiliation="owner"))[1] == "forbidden"
    assert error_cond(admin_get(c, r, affiliation="admin"))[1] == "forbidden"
    assert error_cond(admin_get(b, r, affiliation="outcast"))[1] == "forbidden"
    # Members (by nick), moderators; a participant may not change affiliations.
    ok(admin_set(c, r, item_xml(nick="bob", affiliation="member")))
    el = a.recv(pres(f"{r}/bob"))
    assert user_item(el)["affiliation"] == "member" and user_item(el)["role"] == "participant"
    assert admin_error(b, r, item_xml(jid=bare("dave"), affiliation="member"))[1] == "forbidden"
    ok(admin_set(c, r, item_xml(nick="dave", role="moderator")))
    el = b.recv(pres(f"{r}/dave"))
    assert user_item(el)["role"] == "moderator", dump(el)
    assert list_items(admin_get(c, r, role="moderator")) == [
        {"affiliation": "owner", "jid": a.jid, "nick": "alice", "role": "moderator"},
        {"affiliation": "admin", "jid": c.jid, "nick": "carol", "role": "moderator"},
        {"affiliation": "none", "jid": d.jid, "nick": "dave", "role": "moderator"}]
    ok(admin_set(c, r, item_xml(nick="dave", role="participant")))
    el = b.recv(pres(f"{r}/dave"))
    assert user_item(el)["role"] == "participant", dump(el)
    # An owner takes the admin affiliation back: moderator status goes with it.
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="none")))
    el = b.recv(pres(f"{r}/carol"))
    assert user_item(el) == {"affiliation": "none", "role": "participant"}, dump(el)


def test_members_only_removals_321_322(mc):
    """§9.4: a member removed from a members-only room goes with 321 (only the unavailable
    presence, with actor); §9.9/§10.2: non-members go with 322 when a room becomes
    members-only; the member list; non-members may not enter."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "members")
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="member")))
    for x in (a, b, c):
        x.recv(pres(f"{r}/bob"))
    ok(configure(a, r, {"muc#roomconfig_membersonly": "1"}))
    el = c.recv(gone(f"{r}/carol"))
    assert codes(el) == [110, 322], dump(el)
    el = b.recv(gone(f"{r}/carol"))
    assert codes(el) == [322], dump(el)
    assert join_error(c, r, "carol") == ("auth", "registration-required", r)
    assert list_items(admin_get(a, r, affiliation="member")) == [
        {"affiliation": "member", "jid": bare("bob")}]
    b.drain(settle=0.2)
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="none", reason="bye")))
    el = b.recv(pres(f"{r}/bob"))
    assert el.get("type") == "unavailable", f"only the removal is sent (§9.4): {dump(el)}"
    assert codes(el) == [110, 321], dump(el)
    assert user_item(el) == {"affiliation": "none", "role": "none", "actor": "alice",
                             "reason": "bye"}, dump(el)
    el = a.recv(gone(f"{r}/bob"))
    assert codes(el) == [321], dump(el)


def test_delta_lists_all_or_nothing(mc):
    """§9.2: a request with one forbidden change changes nothing; a JID named twice is a
    bad request; a malformed JID is jid-malformed; users not in the room get affiliations."""
    a, b = mc("alice"), mc("bob")
    r = room_with(a, [b], "delta")
    assert admin_error(a, r, item_xml(jid=bare("carol"), affiliation="member"),
                       item_xml(jid=bare("alice"), affiliation="outcast"))[1] == "conflict"
    assert list_items(admin_get(a, r, affiliation="member")) == []
    assert admin_error(a, r, item_xml(jid=bare("carol"), affiliation="member"),
                       item_xml(jid=bare("carol"), affiliation="outcast"))[1] == "bad-request"
    assert admin_error(a, r, item_xml(jid="a@b@c", affiliation="member"))[1] == "jid-malformed"
    assert admin_error(a, r)[1] == "bad-request"
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member"),
                 item_xml(jid=f"{bare('dave')}/laptop", affiliation="member"),
                 item_xml(jid="mallory@evil.example", affiliation="outcast")))
    assert list_items(admin_get(a, r, affiliation="member")) == [
        {"affiliation": "member", "jid": bare("carol")},
        {"affiliation": "member", "jid": bare("dave")}]
    assert [i["jid"] for i in list_items(admin_get(a, r, affiliation="outcast"))] == \
        ["mallory@evil.example"]
    b.expect_silence(0.3, match("presence"))


def test_member_list_per_getmemberlist(mc):
    """§7.11: the member list for the roles muc#roomconfig_getmemberlist names."""
    a, b = mc("alice"), mc("bob")
    r = room_with(a, [b], "getlist", {"muc#roomconfig_getmemberlist": ["moderator"]})
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member")))
    assert error_cond(admin_get(b, r, affiliation="member"))[:2] == ("auth", "forbidden")
    ok(configure(a, r, {"muc#roomconfig_getmemberlist": ["moderator", "participant"]}))
    assert list_items(admin_get(b, r, affiliation="member")) == [
        {"affiliation": "member", "jid": bare("carol")}]
    assert error_cond(admin_get(b, r, affiliation="none"))[1] == "bad-request"


def test_domain_ban_and_ban_with_role_in_one_delta(mc):
    """§9.2: a ban of a domain bans its users (unless they have an affiliation of their own);
    a ban and a role change of the same user in one delta: the ban wins, nothing breaks."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "domains")
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member")))
    for x in (a, b, c):
        x.recv(pres(f"{r}/carol"))
    ok(admin_set(a, r, item_xml(jid="localhost", affiliation="outcast", reason="all of you")))
    el = b.recv(gone(f"{r}/bob"))
    assert codes(el) == [110, 301] and user_item(el)["affiliation"] == "outcast", dump(el)
    c.expect_silence(0.3, gone(f"{r}/carol"))
    a.expect_silence(0.1, gone(f"{r}/alice"))
    assert join_error(b, r, "bob") == ("auth", "forbidden", r)
    ok(admin_set(a, r, item_xml(jid="localhost", affiliation="none")))
    enter(b, r, "bob")
    for x in (a, b, c):
        x.drain(settle=0.2)
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="outcast"),
                 item_xml(nick="bob", role="visitor")))
    el = c.recv(gone(f"{r}/bob"))
    assert codes(el) == [301], dump(el)
    c.expect_silence(0.3, pres(f"{r}/bob"))
