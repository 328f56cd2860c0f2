# SPDX-License-Identifier: MIT
"""MUC owner use cases (XEP-0045 §10.3-§10.9): granting and revoking owner and admin status,
the owner and admin lists, the last owner (conflict), destroying a room with an alternate
venue, a reason and a password; affiliations and reserved nicks kept across a restart; three
or four clients, both topologies."""

import pytest

import im
from harness import dump
from im import match, q
from muc_util import (NS_MUC_OWNER, NS_MUC_USER, codes, configure, error_cond,
                      instant_room, join, join_error, room_jid)
from mucadmin_util import (admin_error, admin_get, admin_set, bare, gone, item_xml,  # noqa
                           list_items, mc, mserver4, ok, plugin, plugin_call, pres, room_with,
                           user_item)

pytestmark = pytest.mark.slixmpp


def test_owners_grant_revoke_and_the_last_owner(mc):
    """§10.3-§10.5: owners make owners (presence: owner/moderator), take ownership away
    (admin), read the owner list; the last owner cannot go (conflict), a whole delta that
    keeps one owner can; non-owners may not touch or (semi-anonymous) read the list."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "owners")
    res = plugin_call(a, plugin(a).set_affiliation(r, "owner", jid=bare("bob")))
    assert not (isinstance(res, tuple) and res[0] == "error"), res
    el = c.recv(pres(f"{r}/bob"))
    assert user_item(el) == {"affiliation": "owner", "role": "moderator"}, dump(el)
    el = b.recv(pres(f"{r}/bob"))
    assert codes(el) == [110] and user_item(el)["affiliation"] == "owner", dump(el)
    assert list_items(admin_get(b, r, affiliation="owner")) == [
        {"affiliation": "owner", "jid": bare("alice")},
        {"affiliation": "owner", "jid": bare("bob")}]
    assert error_cond(admin_get(c, r, affiliation="owner"))[:2] == ("auth", "forbidden")
    assert admin_error(c, r, item_xml(jid=bare("carol"), affiliation="owner"))[1] == "forbidden"
    ok(admin_set(b, r, item_xml(jid=bare("alice"), affiliation="admin", reason="step aside")))
    el = c.recv(pres(f"{r}/alice"))
    assert user_item(el) == {"affiliation": "admin", "role": "moderator",
                             "reason": "step aside"}, dump(el)
    # alice, now an admin, may not read the owner list of a semi-anonymous room (§10.5).
    assert error_cond(admin_get(a, r, affiliation="owner"))[1] == "forbidden"
    assert admin_error(a, r, item_xml(jid=bare("bob"), affiliation="none"))[1] == "not-allowed"
    # bob is the only owner: he may not step down (§10.7), nor be removed in a list.
    assert admin_error(b, r, item_xml(jid=bare("bob"), affiliation="admin"))[:2] == \
        ("cancel", "conflict")
    # One delta: carol becomes owner and bob leaves the owner list: one owner is left.
    ok(admin_set(b, r, item_xml(jid=bare("carol"), affiliation="owner"),
                 item_xml(jid=bare("bob"), affiliation="member")))
    assert list_items(admin_get(c, r, affiliation="owner")) == [
        {"affiliation": "owner", "jid": bare("carol")}]
    el = a.recv(pres(f"{r}/bob"), timeout=5)
    el = a.recv(pres(f"{r}/bob"), timeout=5)  # the second one is the member change
    assert user_item(el)["affiliation"] == "member", dump(el)
    assert user_item(el)["role"] == "participant", dump(el)


def test_admin_list_delta(mc):
    """§10.6-§10.8: the admin list, changed by deltas; presence for those in the room; only
    owners change it."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "adminlist")
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="admin"),
                 item_xml(jid=bare("dave"), affiliation="admin")))
    el = c.recv(pres(f"{r}/bob"))
    assert user_item(el) == {"affiliation": "admin", "role": "moderator"}, dump(el)
    assert [str(j) for j in plugin_call(a, plugin(a).get_affiliation_list(r, "admin"))] == \
        [bare("bob"), bare("dave")]
    assert admin_error(b, r, item_xml(jid=bare("carol"), affiliation="admin"))[:2] == \
        ("auth", "forbidden")
    assert admin_error(b, r, item_xml(jid=bare("dave"), affiliation="none"))[1] == "not-allowed"
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="none")))
    el = c.recv(pres(f"{r}/bob"))
    assert user_item(el) == {"affiliation": "none", "role": "participant"}, dump(el)
    assert list_items(admin_get(a, r, affiliation="admin")) == [
        {"affiliation": "admin", "jid": bare("dave")}]


def test_nonanonymous_room_lists_for_occupants(mc):
    """§10.5, §10.8: in a non-anonymous room the service may give the owner and admin lists to
    occupants; outsiders who are no members still get forbidden."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b], "open-lists", {"muc#roomconfig_whois": "anyone"})
    assert list_items(admin_get(b, r, affiliation="owner")) == [
        {"affiliation": "owner", "jid": bare("alice")}]
    assert list_items(admin_get(b, r, affiliation="admin")) == []
    assert error_cond(admin_get(c, r, affiliation="owner"))[1] == "forbidden"


def test_destroy_with_venue_reason_password(mc):
    """§10.9 with slixmpp's destroy: each occupant gets one unavailable presence of its own
    with <destroy jid><reason/><password/></destroy>, nobody hears the others leave; the room
    is gone (persistent or not); only owners may destroy."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_with(a, [b, c], "doomed", {"muc#roomconfig_persistentroom": "1"})
    venue = room_jid("newplace")
    res = b.iq("set", f"<query xmlns='{NS_MUC_OWNER}'><destroy jid='{venue}'/></query>", to=r)
    assert error_cond(res)[:2] == ("auth", "forbidden"), dump(res)
    a.send_raw(f"<iq type='set' id='begone' to='{r}'><query xmlns='{NS_MUC_OWNER}'>"
               f"<destroy jid='{venue}'><reason>Macbeth doth come.</reason>"
               "<password>cauldronburn</password></destroy></query></iq>")
    for x, nick in ((a, "alice"), (b, "bob"), (c, "carol")):
        el = x.recv(gone(f"{r}/{nick}"))
        assert codes(el) == [110], dump(el)
        assert user_item(el) == {"affiliation": "none", "role": "none"}, dump(el)
        d = el.find(f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'destroy')}")
        assert d is not None and d.get("jid") == venue, dump(el)
        assert d.find(q(NS_MUC_USER, "reason")).text == "Macbeth doth come.", dump(el)
        assert d.find(q(NS_MUC_USER, "password")).text == "cauldronburn", dump(el)
    res = a.recv(match("iq", id="begone"))
    assert res.get("type") == "result" and res.get("from") == r, dump(res)
    for x in (a, b, c):
        x.expect_silence(0.3, match("presence", frm=f"{r}/*"))
    res = b.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=r)
    assert error_cond(res)[1] == "item-not-found", dump(res)
    el = join(b, r, "bob")
    assert codes(el) == [110, 201], f"a new room: {dump(el)}"


def test_destroy_with_slixmpp_and_malformed_venue(mc):
    """§10.9: slixmpp's destroy(); a malformed venue is jid-malformed and the room stays."""
    a, b = mc("alice"), mc("bob")
    r = room_with(a, [b], "plugin-destroy")
    res = a.iq("set", f"<query xmlns='{NS_MUC_OWNER}'><destroy jid='a@b@c'/></query>", to=r)
    assert error_cond(res)[1] == "jid-malformed", dump(res)
    res = plugin_call(a, plugin(a).destroy(r, reason="done"))
    assert not (isinstance(res, tuple) and res[0] == "error"), res
    el = b.recv(gone(f"{r}/bob"))
    d = el.find(f"{q(NS_MUC_USER, 'x')}/{q(NS_MUC_USER, 'destroy')}")
    assert d is not None and d.get("jid") is None, dump(el)
    assert d.find(q(NS_MUC_USER, "reason")).text == "done", dump(el)


def test_affiliations_survive_restart(mserver4):
    """Affiliation changes are saved: bans, admins, members and their reserved nicks come back
    after the whole server restarts."""
    pool = im.IMPool(mserver4)
    r = room_jid("remember")
    try:
        a = pool.client("alice", available=True)
        instant_room(a, r, "alice")
        ok(configure(a, r, {"muc#roomconfig_persistentroom": "1"}))
        ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="admin"),
                     item_xml(jid=bare("carol"), affiliation="member", nick="Witch"),
                     item_xml(jid=bare("dave"), affiliation="outcast", reason="Treason")))
    finally:
        pool.close()
    mserver4.restart()
    pool = im.IMPool(mserver4)
    try:
        b = pool.client("bob", available=True)
        el = join(b, r, "bob")
        assert user_item(el)["affiliation"] == "admin", dump(el)
        assert list_items(admin_get(b, r, affiliation="member")) == [
            {"affiliation": "member", "jid": bare("carol"), "nick": "Witch"}]
        assert list_items(admin_get(b, r, affiliation="outcast")) == [
            {"affiliation": "outcast", "jid": bare("dave"), "reason": "Treason"}]
        d = pool.client("dave", available=True)
        assert join_error(d, r, "dave") == ("auth", "forbidden", r)
        a = pool.client("alice", available=True)
        assert join_error(a, r, "WITCH") == ("cancel", "conflict", r), "carol's reserved nick"
    finally:
        pool.close()
