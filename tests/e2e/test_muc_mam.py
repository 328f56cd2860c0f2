# SPDX-License-Identifier: MIT
"""The room archive (XEP-0313 on a MUC room): the archive id is the room's live stanza-id
(XEP-0359), what is and is not archived, queries on the room's bare JID with RSM paging both
ways, filters, real JIDs only to those who may see them, access (members-only: forbidden to
others), the room's disco features, archiving off, the archive across a restart and gone with
a temporary room; slixmpp's xep_0313; both topologies, both storage backends."""

from xml.sax.saxutils import escape, quoteattr

import pytest

import im
from harness import dump, new_id
from im import NS_CLIENT, match, q
from muc_util import (NS_DATA, NS_DELAY, NS_MUC_USER, NS_SID, configure, enter,  # noqa: F401
                      error_cond, groupchat, instant_room, room_jid, subject_of)

pytestmark = pytest.mark.slixmpp

NS_MAM = "urn:xmpp:mam:2"
NS_MAM_EXT = "urn:xmpp:mam:2#extended"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DISCO = "http://jabber.org/protocol/disco#info"
USERS = ("alice", "bob", "carol", "dave")


@pytest.fixture
def server(make_im):
    return make_im(muc=True, users={u: f"{u}-pw-{new_id('p')}" for u in USERS})


@pytest.fixture
def pool(server):
    p = im.IMPool(server)
    yield p
    p.close()


def client(pool, user, resource=None):
    return pool.client(user, resource=resource, available=True)


def rsm_xml(max=None, after=None, before=None):
    out = f"<set xmlns='{NS_RSM}'>"
    if max is not None:
        out += f"<max>{max}</max>"
    if after is not None:
        out += f"<after>{escape(after)}</after>"
    if before is not None:
        out += f"<before>{escape(before)}</before>" if before else "<before/>"
    return out + "</set>"


def form_xml(fields):
    out = [f"<x xmlns='{NS_DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>"
           f"<value>{NS_MAM}</value></field>"]
    for var, v in fields.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        out.append(f"<field var={quoteattr(var)}>" +
                   "".join(f"<value>{escape(x)}</value>" for x in vals) + "</field>")
    return "".join(out) + "</x>"


class Page:
    def __init__(self, iq, results):
        self.iq, self.results = iq, results
        self.fin = iq.find(q(NS_MAM, "fin"))
        rsm = self.fin.find(q(NS_RSM, "set")) if self.fin is not None else None

        def text(name):
            el = rsm.find(q(NS_RSM, name)) if rsm is not None else None
            return None if el is None else el.text
        self.first, self.last = text("first"), text("last")
        self.count = None if text("count") is None else int(text("count"))
        first = rsm.find(q(NS_RSM, "first")) if rsm is not None else None
        self.first_index = None if first is None else int(first.get("index"))
        self.complete = self.fin is not None and self.fin.get("complete") in ("true", "1")

    @property
    def ok(self):
        return self.iq.get("type") == "result"

    def ids(self):
        return [m.find(q(NS_MAM, "result")).get("id") for m in self.results]

    def inner(self):
        """The forwarded messages."""
        return [m.find(q(NS_MAM, "result")).find(q(NS_FWD, "forwarded")).find(
            q(NS_CLIENT, "message")) for m in self.results]

    def bodies(self):
        return [(m.findtext(q(NS_CLIENT, "body"))) for m in self.inner()]


def query(c, room, fields=None, rsm=None, extra="", timeout=5.0):
    """Queries the room's archive with a raw iq; the results come before the iq result."""
    qid = new_id("q")
    x = form_xml(fields) if fields is not None else ""
    res = c.iq("set", f"<query xmlns='{NS_MAM}' queryid={quoteattr(qid)}>{x}{rsm or ''}"
                      f"{extra}</query>", to=room, timeout=timeout)

    def got(el):
        r = el.find(q(NS_MAM, "result"))
        return el.tag == q(NS_CLIENT, "message") and r is not None and r.get("queryid") == qid
    results = [el for el in c.pending if got(el)]
    c.pending[:] = [el for el in c.pending if not got(el)]
    for m in results:
        # §4.2 on a room: from the room's bare JID, to the requester only.
        assert m.get("from") == room and m.get("to") == c.jid, dump(m)
    return Page(res, results)


def sid_of(el, by):
    ids = [s.get("id") for s in el.findall(q(NS_SID, "stanza-id")) if s.get("by") == by]
    assert len(ids) == 1, f"expected one stanza-id by {by}: {dump(el)}"
    return ids[0]


def say(sender, readers, room, body, inner=""):
    """sender says body in room; returns the stanza-id every reader saw (one for all)."""
    mid = groupchat(sender, room, body, id=new_id("gc"), inner=inner)
    ids = {sid_of(r.recv(match("message", id=mid)), room) for r in readers}
    assert len(ids) == 1, ids
    return ids.pop()


def features(c, room):
    res = c.iq("get", f"<query xmlns='{NS_DISCO}'/>", to=room)
    assert res.get("type") == "result", dump(res)
    return {f.get("var") for f in res.iter(q(NS_DISCO, "feature"))}


def room3(pool, name, **config):
    a, b, c = client(pool, "alice"), client(pool, "bob"), client(pool, "carol")
    r = room_jid(name)
    instant_room(a, r, "a")
    if config:
        assert configure(a, r, config).get("type") == "result"
    enter(b, r, "b")
    enter(c, r, "c")
    for x in (a, b, c):
        x.drain(settle=0.2)
    return r, a, b, c


def test_ids_content_and_disco(pool):
    """A public room archives by default: disco#info lists mam:2, #extended and sid:0; the
    archive id is the live stanza-id; the forwarded message is from the occupant JID without
    'to', with its id and a delay; a subject change is archived, a chat state is not (and gets
    no stanza-id by the room); private messages are not archived."""
    r, a, b, c = room3(pool, "arch")
    assert {NS_MAM, NS_MAM_EXT, NS_SID} <= features(b, r)
    live = [say(b, (a, b, c), r, "one"), say(c, (a, b, c), r, "two <&>")]
    a.send_raw(f"<message to='{r}' type='groupchat' id='subj1'><subject>Topic</subject>"
               "</message>")
    live.append(sid_of(b.recv(match("message", id="subj1")), r))
    cs = groupchat(b, r, None, id="cs1",
                   inner="<active xmlns='http://jabber.org/protocol/chatstates'/>")
    el = c.recv(match("message", id=cs))
    assert [s for s in el.findall(q(NS_SID, "stanza-id")) if s.get("by") == r] == [], dump(el)
    b.message(f"{r}/c", "private", type="chat", id="pm1")
    c.recv(match("message", id="pm1"))
    page = query(b, r)
    assert page.ok and page.complete, dump(page.iq)
    assert page.ids() == live, (page.ids(), live)
    assert page.count == 3 and page.first == live[0] and page.last == live[2]
    msgs = page.inner()
    assert [m.get("from") for m in msgs] == [f"{r}/b", f"{r}/c", f"{r}/a"], dump(page.results[0])
    for m in msgs:
        assert m.get("to") is None and m.get("type") == "groupchat", dump(m)
    assert page.bodies()[:2] == ["one", "two <&>"]
    assert msgs[2].findtext(q(NS_CLIENT, "subject")) == "Topic"
    for res in page.results:
        fwd = res.find(q(NS_MAM, "result")).find(q(NS_FWD, "forwarded"))
        assert fwd.find(q(NS_DELAY, "delay")).get("stamp", "").endswith("Z"), dump(res)


def test_paging_both_ways(pool):
    """XEP-0059 over more than one page, forwards with <after/> and backwards from an empty
    <before/> with <before/>, with count, first@index and complete; flip-page."""
    r, a, b, c = room3(pool, "pages")
    ids = [say(b if i % 2 else c, (a,), r, f"p{i}") for i in range(7)]
    p1 = query(a, r, rsm=rsm_xml(max=3))
    assert p1.ids() == ids[0:3] and (p1.first_index, p1.count, p1.complete) == (0, 7, False)
    p2 = query(a, r, rsm=rsm_xml(max=3, after=p1.last))
    assert p2.ids() == ids[3:6] and (p2.first_index, p2.count, p2.complete) == (3, 7, False)
    p3 = query(a, r, rsm=rsm_xml(max=3, after=p2.last))
    assert p3.ids() == ids[6:] and (p3.first_index, p3.count, p3.complete) == (6, 7, True)
    b1 = query(a, r, rsm=rsm_xml(max=3, before=""))
    assert b1.ids() == ids[4:7] and (b1.first_index, b1.complete) == (4, False), dump(b1.iq)
    b2 = query(a, r, rsm=rsm_xml(max=3, before=b1.first))
    assert b2.ids() == ids[1:4] and (b2.first_index, b2.complete) == (1, False)
    b3 = query(a, r, rsm=rsm_xml(max=3, before=b2.first))
    assert b3.ids() == ids[0:1] and (b3.first_index, b3.complete) == (0, True)
    fl = query(a, r, rsm=rsm_xml(max=3, before=""), extra=f"<flip-page xmlns='{NS_MAM}'/>")
    assert fl.ids() == list(reversed(ids[4:7])) and fl.first == ids[4] and fl.last == ids[6]


def test_filters_and_errors(pool):
    """with = an occupant JID, start/end, ids, after-id/before-id (#extended); unknown ids
    item-not-found; the form; metadata; an unknown field feature-not-implemented."""
    r, a, b, c = room3(pool, "filters")
    ids = [say(b if i % 2 else c, (a,), r, f"f{i}") for i in range(6)]
    by_b = query(a, r, fields={"with": f"{r}/b"})
    assert by_b.ids() == ids[1::2] and by_b.count == 3, dump(by_b.iq)
    assert query(a, r, fields={"ids": [ids[4], ids[1]]}).ids() == [ids[1], ids[4]]
    assert query(a, r, fields={"after-id": ids[1], "before-id": ids[4]}).ids() == ids[2:4]
    page = query(a, r, fields={"after-id": ids[0]}, rsm=rsm_xml(max=2, after=ids[2]))
    assert page.ids() == ids[3:5], page.ids()
    assert query(a, r, fields={"start": "2000-01-01T00:00:00Z"}).ids() == ids
    assert query(a, r, fields={"end": "2000-01-01T00:00:00Z"}).ids() == []
    unknown = "0" * 26
    for fields in ({"ids": [ids[0], unknown]}, {"after-id": unknown}, {"before-id": "nope"}):
        page = query(a, r, fields=fields)
        assert error_cond(page.iq)[1] == "item-not-found", (fields, dump(page.iq))
    # The tighter of after-id and <after/> bounds the page; the other must exist too.
    page = query(a, r, fields={"after-id": unknown}, rsm=rsm_xml(after=ids[2]))
    assert error_cond(page.iq)[1] == "item-not-found", dump(page.iq)
    assert error_cond(query(a, r, fields={"colour": "red"}).iq)[1] == "feature-not-implemented"
    res = a.iq("get", f"<query xmlns='{NS_MAM}'/>", to=r)
    vars_ = {f.get("var") for f in res.iter(q(NS_DATA, "field"))}
    assert vars_ == {"FORM_TYPE", "with", "start", "end", "before-id", "after-id", "ids"}, \
        dump(res)
    md = a.iq("get", f"<metadata xmlns='{NS_MAM}'/>", to=r)
    meta = md.find(q(NS_MAM, "metadata"))
    assert meta.find(q(NS_MAM, "start")).get("id") == ids[0], dump(md)
    assert meta.find(q(NS_MAM, "end")).get("id") == ids[-1], dump(md)


def test_real_jids_only_to_those_who_may_see_them(pool):
    """§6.1.2: in a semi-anonymous room a participant gets the messages without the muc#user
    <x/>; the owner (a moderator) gets <item jid/> with the real JID; a forged <x/> of the
    sender is never archived."""
    r, a, b, c = room3(pool, "semianon")
    forged = f"<x xmlns='{NS_MUC_USER}'><item jid='evil@localhost/x'/></x>"
    say(b, (a,), r, "who am I", inner=forged)
    seen_by_c = query(c, r).inner()
    assert len(seen_by_c) == 1 and seen_by_c[0].find(q(NS_MUC_USER, "x")) is None, \
        dump(seen_by_c[0])
    seen_by_a = query(a, r).inner()
    xs = seen_by_a[0].findall(q(NS_MUC_USER, "x"))
    assert len(xs) == 1, dump(seen_by_a[0])
    it = xs[0].find(q(NS_MUC_USER, "item"))
    assert it.get("jid") == b.jid and it.get("role") == "participant", dump(seen_by_a[0])


def test_access(pool):
    """Open room: anyone may read, occupant or not. Members-only: a non-member gets forbidden,
    a member (here an admin) may read without being in the room."""
    r, a, b, c = room3(pool, "open")
    say(b, (a,), r, "open words")
    d = client(pool, "dave")
    assert query(d, r).bodies() == ["open words"]
    r2 = room_jid("closed")
    instant_room(a, r2, "a")
    assert configure(a, r2, {"muc#roomconfig_membersonly": "1",
                             "muc#roomconfig_roomadmins": [f"bob@{im.DOMAIN}"]}).get(
        "type") == "result"
    a.drain(settle=0.2)
    say(a, (a,), r2, "members only")
    page = query(d, r2)
    assert error_cond(page.iq) == ("auth", "forbidden", r2), dump(page.iq)
    assert page.results == []
    assert query(b, r2).bodies() == ["members only"]


def test_archiving_off(make_im):
    """muc#roomconfig_enablearchiving = 0: no mam features, queries feature-not-implemented,
    the live stanza-id still there; [muc] room_archiving = never: new rooms do not archive;
    a hidden room does not archive under the default policy."""
    srv = make_im(muc=True, muc_extra={"room_archiving": "never"})
    p = im.IMPool(srv)
    try:
        a, b = client(p, "alice"), client(p, "bob")
        r = room_jid("quiet")
        instant_room(a, r, "a")
        enter(b, r, "b")
        a.drain(settle=0.2)
        assert NS_MAM not in features(b, r) and NS_MAM_EXT not in features(b, r)
        assert NS_SID in features(b, r)
        sid = say(b, (a,), r, "not kept")
        assert sid
        page = query(b, r)
        assert error_cond(page.iq) == ("cancel", "feature-not-implemented", r), dump(page.iq)
        res = a.iq("get", f"<query xmlns='http://jabber.org/protocol/muc#owner'/>", to=r)
        fields = {f.get("var"): f.findtext(q(NS_DATA, "value")) for f in
                  res.iter(q(NS_DATA, "field"))}
        assert fields.get("muc#roomconfig_enablearchiving") == "0", dump(res)
        assert configure(a, r, {"muc#roomconfig_enablearchiving": "1"}).get("type") == "result"
        a.drain(settle=0.2)
        assert NS_MAM in features(b, r)
        kept = say(b, (a,), r, "kept")
        assert query(b, r).ids() == [kept]
    finally:
        p.close()


def test_hidden_room_default_and_switch_off(pool):
    """[muc] room_archiving = public (the default): a room made hidden stops archiving with
    it; an owner turns archiving off in a public room."""
    r, a, b, c = room3(pool, "hidden", **{"muc#roomconfig_publicroom": "0"})
    assert NS_MAM not in features(a, r)
    assert error_cond(query(a, r).iq)[1] == "feature-not-implemented"
    r2, a, b, c = room3(pool, "switch")
    say(b, (a,), r2, "before")
    assert configure(a, r2, {"muc#roomconfig_enablearchiving": "0"}).get("type") == "result"
    a.drain(settle=0.2)
    assert NS_MAM not in features(a, r2)
    assert error_cond(query(b, r2).iq)[1] == "feature-not-implemented"


def test_slixmpp_retrieve(pool):
    """slixmpp's xep_0313 queries the room (to= the room's bare JID) and pages forwards."""
    r, a, b, c = room3(pool, "slix")
    ids = [say(b, (a,), r, f"s{i}") for i in range(5)]
    a.xmpp.register_plugin("xep_0313")
    iq = a.pool.run(a.xmpp["xep_0313"].retrieve(jid=r, with_jid=f"{r}/b", rsm={"max": 10}), 5.0)
    results = iq["mam"]["results"]
    assert [m["mam_result"]["id"] for m in results] == ids, iq
    assert results[0]["mam_result"]["forwarded"]["stanza"]["body"] == "s0"

    async def walk():
        got = []
        async for m in a.xmpp["xep_0313"].iterate(jid=r, rsm={"max": 2}):
            got.append(m["mam_result"]["id"])
        return got
    assert a.pool.run(walk(), 10.0) == ids


def test_archive_survives_restart_and_goes_with_temporary_room(server):
    """A persistent room's archive (and ids) come back after a restart; a temporary room's
    archive goes when the room does: a new room of that name starts empty."""
    p = im.IMPool(server)
    try:
        a = client(p, "alice")
        r = room_jid("kept")
        instant_room(a, r, "a")
        assert configure(a, r, {"muc#roomconfig_persistentroom": "1"}).get("type") == "result"
        a.drain(settle=0.2)
        ids = [say(a, (a,), r, f"k{i}") for i in range(3)]
        t = room_jid("temp")
        instant_room(a, t, "a")
        say(a, (a,), t, "gone soon")
        a.send_raw(f"<presence to='{t}/a' type='unavailable'/>")
        a.recv(match("presence", frm=f"{t}/a", type="unavailable"))
    finally:
        p.close()
    server.restart()
    p = im.IMPool(server)
    try:
        b = client(p, "bob")
        page = query(b, r)
        assert page.ids() == ids and page.bodies() == ["k0", "k1", "k2"], dump(page.iq)
        enter(b, r, "b")
        b.drain(settle=0.2)
        new = say(b, (b,), r, "after restart")
        assert query(b, r).ids() == ids + [new]
        t = room_jid("temp")
        instant_room(b, t, "b")
        b.drain(settle=0.2)
        page = query(b, t)
        assert page.ok and page.ids() == [] and page.count == 0, dump(page.iq)
    finally:
        p.close()


def test_new_room_does_not_inherit_a_crashed_rooms_archive(server, im_topology):
    """Split topology: `parleyd muc` killed with a temporary room that archived; the room is
    gone after the restart, and a new room of that name starts with an empty archive."""
    if im_topology != "split":
        pytest.skip("the test starts and kills the processes itself: split topology only"
                    if im_topology == "processes" else "the muc runs in the same process as everything else")
    p = im.IMPool(server)
    try:
        a = client(p, "alice")
        t = room_jid("crashed")
        instant_room(a, t, "a")
        a.drain(settle=0.2)
        say(a, (a,), t, "left behind")
        assert query(a, t).bodies() == ["left behind"]
        server.restart_muc(kill=True)
        b = client(p, "bob")
        instant_room(b, t, "b")
        b.drain(settle=0.2)
        page = query(b, t)
        assert page.ok and page.ids() == [] and page.count == 0, dump(page.iq)
    finally:
        p.close()
