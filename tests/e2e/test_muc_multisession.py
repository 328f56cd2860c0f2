# SPDX-License-Identifier: MIT
"""Multi-session nicks (XEP-0045 §7.2.9: two resources of one account under one nick get every
in-room message and private message, may all send, leave one by one silently, go together when
kicked or renamed) and roles kept across visits in moderated rooms (§5.1: voice given or taken
by a moderator, also across a restart of a persistent room); both topologies."""

import secrets
import time

import pytest

import im
from harness import dump
from im import NS_CLIENT, match, q
from muc_util import (NS_MUC_USER, NS_PING, codes, configure, enter, error_cond, instant_room,
                      item, join, join_error, room_jid, subject_of)
from mucadmin_util import admin_set, bare, item_xml, ok, user_item

pytestmark = pytest.mark.slixmpp

USERS = ("alice", "bob", "carol")


@pytest.fixture(params=["sqlite", pytest.param("files", marks=pytest.mark.slow)])
def storage(request):
    return request.param


@pytest.fixture
def server(make_im):
    return make_im(muc=True, users={u: f"{u}-{secrets.token_hex(6)}" for u in USERS})


@pytest.fixture
def mc(server):
    pool = im.IMPool(server)

    def make(user, resource=None):
        return pool.client(user, resource=resource, available=True)

    make.pool = pool
    yield make
    pool.close()


def pres(frm, type=None):
    """A presence from an occupant JID that is not an error (any type, or the one given)."""
    return lambda e: (e.tag == q(NS_CLIENT, "presence") and e.get("from") == frm and
                      e.get("type") != "error" and (type is None or e.get("type") == type))


def available(frm):
    return lambda e: pres(frm)(e) and e.get("type") is None


def msg(frm, body):
    return lambda e: (e.tag == q(NS_CLIENT, "message") and e.get("from") == frm and
                      e.findtext(q(NS_CLIENT, "body")) == body)


def stanza_id(el, by):
    ids = [s.get("id") for s in el.findall(q("urn:xmpp:sid:0", "stanza-id")) if s.get("by") == by]
    assert len(ids) == 1, dump(el)
    return ids[0]


def occupant_count(c, r):
    res = c.iq("get", "<query xmlns='http://jabber.org/protocol/disco#info'/>", to=r)
    form = {f.get("var"): f for f in res.iter() if f.tag.endswith("field")}
    return [v.text for v in form["muc#roominfo_occupants"]]


def second_session(a2, r, nick, others):
    """a2 joins r under nick that its account already holds: the roster (every other
    occupant), its own presence (110, no 201), the subject. Returns its self-presence."""
    el = join(a2, r, nick)
    assert 201 not in codes(el) and 110 in codes(el), dump(el)
    for o in others:
        a2.recv(available(f"{r}/{o}"))
    subject_of(a2, r)
    return el


def test_two_sessions_one_nick(mc):
    """Two resources of alice under nick 'a': a second join is a session, not a conflict; bob
    sees one presence update and one occupant; both sessions get every groupchat message and
    private message, both may send; ping answered for both; one leaving is silent to others."""
    a1, a2, b = mc("alice", "one"), mc("alice", "two"), mc("bob")
    r = room_jid("twins")
    instant_room(a1, r, "a")
    enter(b, r, "b")
    for c in (a1, a2, b):
        c.drain(settle=0.2)
    el = second_session(a2, r, "a", ["b"])
    assert user_item(el)["affiliation"] == "owner" and user_item(el)["role"] == "moderator"
    # Bob sees one presence update of 'a' (§7.7 form), not a join or a leave.
    upd = b.recv(available(f"{r}/a"))
    assert codes(upd) == [] and item(upd)["role"] == "moderator", dump(upd)
    b.expect_silence(0.3, pres(f"{r}/a"))
    # The first session hears its occupant's presence (110), without a reflected id or 201.
    el = a1.recv(available(f"{r}/a"))
    assert codes(el) == [110] and el.get("id") is None, dump(el)
    assert occupant_count(b, r) == ["2"]
    # Another account may not take the nick (§7.2.9).
    carol = mc("carol")
    assert join_error(carol, r, "a") == ("cancel", "conflict", r)
    # Every groupchat message goes to both sessions, one id and one stanza-id.
    b.send_raw(f"<message to='{r}' type='groupchat' id='g1'><body>to both</body></message>")
    e1, e2 = a1.recv(msg(f"{r}/b", "to both")), a2.recv(msg(f"{r}/b", "to both"))
    assert e1.get("id") == e2.get("id") == "g1", (dump(e1), dump(e2))
    assert e1.get("to") == a1.jid and e2.get("to") == a2.jid, (dump(e1), dump(e2))
    assert stanza_id(e1, r) == stanza_id(e2, r)
    b.recv(msg(f"{r}/b", "to both"))  # its own reflection
    # Both sessions may send; each message reaches bob once and both sessions as reflection.
    for sender, body in ((a1, "from one"), (a2, "from two")):
        sender.send_raw(f"<message to='{r}' type='groupchat'><body>{body}</body></message>")
        b.recv(msg(f"{r}/a", body))
        a1.recv(msg(f"{r}/a", body))
        a2.recv(msg(f"{r}/a", body))
    b.expect_silence(0.3, lambda e: e.tag == q(NS_CLIENT, "message"))
    # A private message to 'a' reaches both sessions (RECOMMENDED), with the muc#user marker.
    b.send_raw(f"<message to='{r}/a' type='chat' id='pm1'><body>psst</body></message>")
    for c in (a1, a2):
        el = c.recv(msg(f"{r}/b", "psst"))
        assert el.get("type") == "chat" and el.find(q(NS_MUC_USER, "x")) is not None, dump(el)
    # From either session, a private message comes to bob from 'a'.
    a2.send_raw(f"<message to='{r}/b' type='chat'><body>back</body></message>")
    b.recv(msg(f"{r}/a", "back"))
    # XEP-0410: a self-ping from either session is answered by the room.
    for c in (a1, a2):
        res = c.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/a")
        assert res.get("type") == "result" and res.get("from") == f"{r}/a", dump(res)
    for c in (a1, b):
        c.drain(settle=0.2)
    # The second session leaves: it alone gets its unavailable presence (110), nobody else hears.
    a2.send_raw(f"<presence to='{r}/a' type='unavailable'><status>bye</status></presence>")
    el = a2.recv(pres(f"{r}/a", "unavailable"))
    assert codes(el) == [110] and item(el)["role"] == "none", dump(el)
    assert el.findtext(q(NS_CLIENT, "status")) == "bye", dump(el)
    b.expect_silence(0.5, pres(f"{r}/a"))
    a1.expect_silence(0.1, pres(f"{r}/a"))
    assert occupant_count(b, r) == ["2"]
    # The one left still talks and hears; the one gone does not.
    b.send_raw(f"<message to='{r}' type='groupchat'><body>after</body></message>")
    a1.recv(msg(f"{r}/b", "after"))
    a2.expect_silence(0.3, msg(f"{r}/b", "after"))
    res = a2.iq("get", f"<ping xmlns='{NS_PING}'/>", to=f"{r}/a")
    assert error_cond(res)[:2] == ("cancel", "not-acceptable"), dump(res)
    # The last session leaving is the occupant leaving: bob hears it.
    a1.send_raw(f"<presence to='{r}/a' type='unavailable'/>")
    el = b.recv(pres(f"{r}/a", "unavailable"))
    assert codes(el) == [] and item(el)["role"] == "none", dump(el)


def test_presence_shown_is_the_newest(mc):
    """What others see of a multi-session occupant is the presence one of its sessions sent
    last; when that session leaves, the room shows the other one's again (an update)."""
    a1, a2, b = mc("alice", "one"), mc("alice", "two"), mc("bob")
    r = room_jid("shown")
    instant_room(a1, r, "a")
    enter(b, r, "b")
    b.drain(settle=0.2)
    a1.send_raw(f"<presence to='{r}/a'><show>away</show></presence>")
    el = b.recv(available(f"{r}/a"))
    assert el.findtext(q(NS_CLIENT, "show")) == "away", dump(el)
    second_session(a2, r, "a", ["b"])
    el = b.recv(available(f"{r}/a"))
    assert el.find(q(NS_CLIENT, "show")) is None, dump(el)
    b.drain(settle=0.2)
    # The session whose presence is shown leaves: bob sees alice's other presence again.
    a2.send_raw(f"<presence to='{r}/a' type='unavailable'/>")
    el = b.recv(pres(f"{r}/a"))
    assert el.get("type") is None and el.findtext(q(NS_CLIENT, "show")) == "away", dump(el)
    b.expect_silence(0.3, pres(f"{r}/a"))


def test_kick_and_nick_change_take_every_session(mc):
    """A nick change by one session moves both (303 to each, 210 to none); a kick removes
    both sessions (110 + 307 to each), others see one occupant go."""
    a, b1, b2 = mc("alice"), mc("bob", "one"), mc("bob", "two")
    r = room_jid("twokick")
    instant_room(a, r, "a")
    enter(b1, r, "b")
    second_session(b2, r, "b", ["a"])
    for c in (a, b1, b2):
        c.drain(settle=0.2)
    b1.send_raw(f"<presence to='{r}/bee' id='nc'/>")
    for c in (b1, b2):
        el = c.recv(pres(f"{r}/b", "unavailable"))
        assert codes(el) == [110, 303] and item(el)["nick"] == "bee", dump(el)
        el = c.recv(available(f"{r}/bee"))
        assert codes(el) == [110], dump(el)
        assert (el.get("id") == "nc") == (c is b1), dump(el)
    el = a.recv(pres(f"{r}/b", "unavailable"))
    assert codes(el) == [303], dump(el)
    a.recv(available(f"{r}/bee"))
    a.expect_silence(0.3, pres(f"{r}/bee"))
    ok(admin_set(a, r, item_xml(nick="bee", role="none", reason="out")))
    for c in (b1, b2):
        el = c.recv(pres(f"{r}/bee", "unavailable"))
        assert codes(el) == [110, 307], dump(el)
        assert user_item(el)["reason"] == "out" and user_item(el)["actor"] == "a", dump(el)
    el = a.recv(pres(f"{r}/bee", "unavailable"))
    assert codes(el) == [307], dump(el)
    a.expect_silence(0.3, pres(f"{r}/bee"))
    for c in (b1, b2):
        c.send_raw(f"<message to='{r}' type='groupchat' id='late'><body>x</body></message>")
        el = c.recv(match("message", id="late", type="error"))
        assert error_cond(el)[1] == "not-acceptable", dump(el)
    assert occupant_count(a, r) == ["1"]


def wait_log(server, text, timeout=5.0):
    """Waits (bounded) until a process of the server has logged text."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, path in server.logs():
            with open(path, encoding="utf-8", errors="replace") as f:
                if text in f.read():
                    return
        time.sleep(0.05)
    raise AssertionError(f"nobody logged {text!r} within {timeout}s")


def test_session_of_a_vanished_client(server, mc):
    """A session that ends without leaving (the sm's unavailable for it) takes only itself
    out; the other session stays, and nobody else hears of it."""
    a, b1, b2 = mc("alice"), mc("bob", "one"), mc("bob", "two")
    r = room_jid("vanish")
    instant_room(a, r, "a")
    enter(b1, r, "b")
    second_session(b2, r, "b", ["a"])
    for c in (a, b1):
        c.drain(settle=0.2)
    gone = b2.jid
    b2.kill()
    wait_log(server, f"{gone} left {r} (1 sessions of b remain)")
    a.expect_silence(0.3, pres(f"{r}/b"))
    b1.expect_silence(0.1, pres(f"{r}/b"))
    a.send_raw(f"<message to='{r}' type='groupchat'><body>still?</body></message>")
    b1.recv(msg(f"{r}/a", "still?"))


def moderated_room(a, r, extra=None):
    instant_room(a, r, "a")
    fields = {"muc#roomconfig_moderatedroom": "1"}
    fields.update(extra or {})
    ok(configure(a, r, fields))


def rejoin(c, r, nick):
    """Leaves and enters again; returns the new self-presence's muc#user item."""
    c.send_raw(f"<presence to='{r}/{nick}' type='unavailable'/>")
    c.recv(pres(f"{r}/{nick}", "unavailable"))
    c.drain()  # the role changes' own presences (110) before it are not the new join's
    return item(enter(c, r, nick))


def test_roles_kept_across_visits(mc):
    """§5.1 in a moderated room: a visitor given voice comes back as a participant, a member
    silenced comes back as a visitor; a change of affiliation or the room no longer moderated
    ends what was kept."""
    a, b, c = mc("alice"), mc("bob"), mc("carol")
    r = room_jid("keeproles")
    moderated_room(a, r)
    ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member")))
    assert item(enter(b, r, "b"))["role"] == "visitor"
    assert item(enter(c, r, "c"))["role"] == "participant"
    ok(admin_set(a, r, item_xml(nick="b", role="participant")))
    ok(admin_set(a, r, item_xml(nick="c", role="visitor")))
    assert rejoin(b, r, "b")["role"] == "participant"
    assert rejoin(c, r, "c")["role"] == "visitor"
    # Voice given back to the member: her affiliation gives it, nothing more is kept.
    ok(admin_set(a, r, item_xml(nick="c", role="participant")))
    assert rejoin(c, r, "c")["role"] == "participant"
    # An affiliation change ends the memo: bob made member and back is a visitor again.
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="member")))
    ok(admin_set(a, r, item_xml(jid=bare("bob"), affiliation="none")))
    assert rejoin(b, r, "b")["role"] == "visitor"
    # The room no longer moderated forgets them all.
    ok(admin_set(a, r, item_xml(nick="b", role="participant")))
    ok(configure(a, r, {"muc#roomconfig_moderatedroom": "0"}))
    ok(configure(a, r, {"muc#roomconfig_moderatedroom": "1"}))
    assert rejoin(b, r, "b")["role"] == "visitor"


def test_roles_survive_restart(make_im, storage):
    """Roles kept in a persistent moderated room come back after a restart, on both storage
    backends."""
    server = make_im(muc=True, storage=storage,
                     users={u: f"{u}-{secrets.token_hex(6)}" for u in USERS})
    r = room_jid("keptroles")
    pool = im.IMPool(server)
    try:
        a, b, c = (pool.client(u, available=True) for u in USERS)
        moderated_room(a, r, {"muc#roomconfig_persistentroom": "1"})
        ok(admin_set(a, r, item_xml(jid=bare("carol"), affiliation="member")))
        enter(b, r, "b")
        enter(c, r, "c")
        ok(admin_set(a, r, item_xml(nick="b", role="participant")))
        ok(admin_set(a, r, item_xml(nick="c", role="visitor")))
    finally:
        pool.close()
    server.restart()
    pool = im.IMPool(server)
    try:
        b, c = pool.client("bob", available=True), pool.client("carol", available=True)
        assert item(join(b, r, "b"))["role"] == "participant"
        assert item(join(c, r, "c"))["role"] == "visitor"
    finally:
        pool.close()
