# SPDX-License-Identifier: MIT
"""MUC invitations (XEP-0045 §7.8): mediated invitations through the room (password added,
members-only rooms make the invitee a member, who may invite), declines passed back, errors;
direct invitations (XEP-0249) pass from client to client untouched; both topologies."""

import pytest

from harness import dump
from im import match, q
from muc_util import NS_MUC_USER, configure, enter, join_error
from mucadmin_util import (admin_get, bare, list_items, mc, message_error, mserver4, ok,  # noqa
                           plugin, room_with)

pytestmark = pytest.mark.slixmpp

NS_CONFERENCE = "jabber:x:conference"


def invitation(c, room):
    return c.recv(match("message", frm=room,
                        where=lambda e: e.find(f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'invite')}")
                        is not None))


def test_mediated_invitation_with_password(mc):
    """§7.8.2 with slixmpp's invite(): the room sends it from itself, names the inviter, keeps
    the reason and id, adds the password; the invitee enters with it."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [c], "secret", {"muc#roomconfig_passwordprotectedroom": "1",
                                     "muc#roomconfig_roomsecret": "cauldronburn"})
    plugin(c).invite(r, bare("bob"), reason="Hey Bob, this is the place!")
    el = invitation(b, r)
    assert el.get("to") in (bare("bob"), b.jid), dump(el)
    x = el.find(q(NS_MUC_USER, "x"))
    inv = x.find(q(NS_MUC_USER, "invite"))
    assert inv.get("from") == bare("carol") and inv.get("to") is None, dump(el)
    assert inv.find(q(NS_MUC_USER, "reason")).text == "Hey Bob, this is the place!", dump(el)
    assert x.find(q(NS_MUC_USER, "password")).text == "cauldronburn", dump(el)
    c.send_raw(f"<message to='{r}' id='inv-2'><x xmlns='{NS_MUC_USER}'>"
               f"<invite to='{bare('bob')}'/></x></message>")
    el = invitation(b, r)
    assert el.get("id") == "inv-2", dump(el)
    assert join_error(b, r, "bob", password="wrong")[1] == "not-authorized"
    enter(b, r, "bob", password="cauldronburn")
    # An open room never adds invitees to the member list (§9.5).
    assert list_items(admin_get(a, r, affiliation="member")) == []


def test_members_only_invitations(mc):
    """§9.5: in a members-only room an admin's invitation makes the invitee a member, who can
    enter; a mere member may not invite (forbidden) until allowinvites opens it, and then the
    invitee becomes a member too."""
    a, b, c, d = mc("alice"), mc("bob"), mc("carol"), mc("dave")
    r = room_with(a, [], "club", {"muc#roomconfig_membersonly": "1"})
    assert join_error(b, r, "bob")[1] == "registration-required"
    a.send_raw(f"<message to='{r}' id='inv-b'><x xmlns='{NS_MUC_USER}'>"
               f"<invite to='{bare('bob')}'><reason>join us</reason></invite></x></message>")
    invitation(b, r)
    assert list_items(admin_get(a, r, affiliation="member")) == [
        {"affiliation": "member", "jid": bare("bob")}]
    enter(b, r, "bob")
    b.drain(settle=0.2)
    b.send_raw(f"<message to='{r}' id='inv-c'><x xmlns='{NS_MUC_USER}'>"
               f"<invite to='{bare('carol')}'/></x></message>")
    assert message_error(b, "inv-c")[:2] == ("auth", "forbidden")
    c.expect_silence(0.3, match("message", frm=r))
    ok(configure(a, r, {"muc#roomconfig_allowinvites": "1"}))
    b.send_raw(f"<message to='{r}' id='inv-c2'><x xmlns='{NS_MUC_USER}'>"
               f"<invite to='{bare('carol')}'/></x></message>")
    invitation(c, r)
    enter(c, r, "carol")
    # An outsider may not invite (§7.8.2: invitations come from occupants).
    d.send_raw(f"<message to='{r}' id='inv-d'><x xmlns='{NS_MUC_USER}'>"
               f"<invite to='{bare('dave')}'/></x></message>")
    assert message_error(d, "inv-d")[1] == "not-acceptable"


def test_decline_goes_back_to_the_inviter(mc):
    """§7.8.2 with slixmpp's decline(): the room tells the inviter, naming the invitee."""
    a, b = mc("alice"), mc("bob")
    r = room_with(a, [], "declined")
    plugin(a).invite(r, bare("bob"))
    invitation(b, r)
    plugin(b).decline(r, bare("alice"), reason="Sorry, too busy.")
    el = a.recv(match("message", frm=r, where=lambda e: e.find(
        f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'decline')}") is not None))
    d = el.find(f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'decline')}")
    assert d.get("from") == bare("bob") and d.get("to") is None, dump(el)
    assert d.find(q(NS_MUC_USER, "reason")).text == "Sorry, too busy.", dump(el)


def test_decline_without_invitation_goes_nowhere(mc):
    """The room passes a decline only to someone who invited its sender, once: it is no relay
    that sends messages from itself to anyone a stranger names."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [], "norelay")
    is_decline = lambda e: e.find(  # noqa: E731
        f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'decline')}") is not None
    decline = (f"<message to='{r}' id='{{}}'><x xmlns='{NS_MUC_USER}'>"
               f"<decline to='{bare('alice')}'><reason>spam</reason></decline></x></message>")
    c.send_raw(decline.format("stranger"))
    a.expect_silence(0.5, match("message", frm=r, where=is_decline))
    plugin(a).invite(r, bare("bob"))
    invitation(b, r)
    b.send_raw(decline.format("first"))
    a.recv(match("message", frm=r, id="first", where=is_decline))
    b.send_raw(decline.format("again"))
    a.expect_silence(0.5, match("message", frm=r, where=is_decline))


def test_invitation_errors(mc):
    """A malformed invitee is jid-malformed; a message to the room that is neither an
    invitation nor a voice request is bad-request (§17.1)."""
    a = mc("alice")
    r = room_with(a, [], "errors")
    a.send_raw(f"<message to='{r}' id='bad-jid'><x xmlns='{NS_MUC_USER}'>"
               "<invite to='a@b@c'/></x></message>")
    assert message_error(a, "bad-jid")[:2] == ("modify", "jid-malformed")
    a.send_raw(f"<message to='{r}' id='plain'><body>hello room</body></message>")
    assert message_error(a, "plain")[1] == "bad-request"


def test_direct_invitation_passes_untouched(mc):
    """XEP-0249: a direct invitation is addressed to the invitee, not the room: it reaches the
    invitee exactly as sent, and the invitee enters with its password."""
    a, b = mc("alice"), mc("bob")
    r = room_with(a, [], "direct", {"muc#roomconfig_passwordprotectedroom": "1",
                                    "muc#roomconfig_roomsecret": "s3cret"})
    a.send_raw(f"<message to='{bare('bob')}' id='direct-1'>"
               f"<x xmlns='{NS_CONFERENCE}' jid='{r}' password='s3cret' reason='Come in'"
               " continue='true' thread='e0ffe42b28561960c6b12b944a092794b9683a38'/>"
               "</message>")
    el = b.recv(match("message", id="direct-1"))
    assert el.get("from") == a.jid, dump(el)
    x = el.find(q(NS_CONFERENCE, "x"))
    assert x is not None and dict(x.attrib) == {
        "jid": r, "password": "s3cret", "reason": "Come in", "continue": "true",
        "thread": "e0ffe42b28561960c6b12b944a092794b9683a38"}, dump(el)
    enter(b, r, "bob", password=x.get("password"))
