# SPDX-License-Identifier: MIT
"""Message archives (XEP-0313 urn:xmpp:mam:2 and #extended) with stanza ids (XEP-0359) and
paging (XEP-0059): both directions archived, ids on delivered messages, spoofed ids removed,
queries and their errors, preferences (XEP-0441), restarts on both backends, the module off."""

import datetime
import os
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import pytest

import harness
import im
from harness import canon, dump, new_id
from im import DOMAIN, NS_DELAY, NS_DISCO_INFO, body_of, error_of, match, q

pytestmark = [pytest.mark.slixmpp, im.skip_prosody("Parley's archive and its limits")]

A, B, C = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))
NS_MAM = "urn:xmpp:mam:2"
NS_MAM_EXT = "urn:xmpp:mam:2#extended"
NS_SID = "urn:xmpp:sid:0"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_FWD = "urn:xmpp:forward:0"
NS_DATA = "jabber:x:data"
NS_HINTS = "urn:xmpp:hints"
NS_CLIENT = im.NS_CLIENT
PAGE_DEFAULT, PAGE_MAX = 50, 250


# ---------------------------------------------------------------------------
# Helpers


def sids(el):
    """[(by, id)] of the <stanza-id/> children of a message."""
    return [(s.get("by"), s.get("id")) for s in el.findall(q(NS_SID, "stanza-id"))]


def form_xml(fields, form_type=NS_MAM):
    """A submitted data form: fields maps var -> value (str) or values (list)."""
    out = f"<x xmlns='{NS_DATA}' type='submit'>"
    if form_type is not None:
        out += (f"<field var='FORM_TYPE' type='hidden'><value>{escape(form_type)}</value>"
                f"</field>")
    for var, value in fields.items():
        values = value if isinstance(value, list) else [value]
        out += f"<field var={quoteattr(var)}>" + "".join(
            f"<value>{escape(v)}</value>" for v in values) + "</field>"
    return out + "</x>"


def rsm_xml(max=None, after=None, before=None, index=None):
    """An RSM <set/>; before='' asks for the last page (an empty <before/>)."""
    out = f"<set xmlns='{NS_RSM}'>"
    if max is not None:
        out += f"<max>{max}</max>"
    if after is not None:
        out += f"<after>{escape(after)}</after>"
    if before is not None:
        out += f"<before>{escape(before)}</before>" if before else "<before/>"
    if index is not None:
        out += f"<index>{index}</index>"
    return out + "</set>"


class Page:
    """The answer to a query: the iq, the result messages (in arrival order) and the fin."""

    def __init__(self, iq, results, queryid):
        self.iq, self.results, self.queryid = iq, results, queryid
        self.fin = iq.find(q(NS_MAM, "fin"))
        rsm = self.fin.find(q(NS_RSM, "set")) if self.fin is not None else None
        self.rsm = rsm

        def text(name):
            el = rsm.find(q(NS_RSM, name)) if rsm is not None else None
            return None if el is None else el.text

        self.first, self.last = text("first"), text("last")
        count = text("count")
        self.count = None if count is None else int(count)
        first = rsm.find(q(NS_RSM, "first")) if rsm is not None else None
        self.first_index = None if first is None else int(first.get("index"))
        self.complete = self.fin is not None and self.fin.get("complete") in ("true", "1")

    @property
    def ok(self):
        return self.iq.get("type") == "result"

    def error(self):
        return error_of(self.iq)[1]

    def items(self):
        """[(id, stamp, forwarded message)] checking each result's shape (§4.2)."""
        out = []
        for m in self.results:
            r = m.find(q(NS_MAM, "result"))
            fwd = r.find(q(NS_FWD, "forwarded"))
            assert fwd is not None, dump(m)
            delay = fwd.find(q(NS_DELAY, "delay"))
            assert delay is not None and delay.get("stamp", "").endswith("Z"), dump(m)
            msg = fwd.find(q(NS_CLIENT, "message"))
            assert msg is not None, f"forwarded message not in jabber:client: {dump(m)}"
            out.append((r.get("id"), delay.get("stamp"), msg))
        return out

    def ids(self):
        return [i for i, _, _ in self.items()]

    def bodies(self):
        return [body_of(m) for _, _, m in self.items()]


def is_result(queryid):
    def pred(el):
        r = el.find(q(NS_MAM, "result"))
        return el.tag == q(NS_CLIENT, "message") and r is not None and \
            r.get("queryid") == queryid
    return pred


def query(c, fields=None, rsm=None, to=None, extra="", form_type=NS_MAM, queryid=None,
          timeout=5.0):
    """Queries an archive (§4) with a raw iq; returns a Page. Results come before the iq."""
    qid = queryid or new_id("q")
    x = form_xml(fields, form_type) if fields is not None else ""
    payload = f"<query xmlns='{NS_MAM}' queryid={quoteattr(qid)}>{x}{rsm or ''}{extra}</query>"
    res = c.iq("set", payload, to=to, timeout=timeout)
    got = is_result(qid)
    results = [el for el in c.pending if got(el)]
    c.pending[:] = [el for el in c.pending if not got(el)]
    page = Page(res, results, qid)
    for m in results:
        assert m.get("to") == c.jid and m.get("from") in (None, c.bare), dump(m)
    return page


def archive(c, **kw):
    """The whole archive of c (one page, which must be complete)."""
    page = query(c, rsm=rsm_xml(max=PAGE_MAX), **kw)
    assert page.ok and page.complete, dump(page.iq)
    return page


def send(a, b, body, id=None, inner="", type="chat", to=None):
    """a sends a chat to b (a client, its bare JID by default); returns what b received."""
    mid = a.message(to or b.bare, body, type=type, id=id or new_id("m"), inner=inner)
    return b.recv(match("message", id=mid))


def set_prefs(c, default, always=(), never=()):
    payload = (f"<prefs xmlns='{NS_MAM}' default={quoteattr(default)}><always>"
               + "".join(f"<jid>{escape(j)}</jid>" for j in always) + "</always><never>"
               + "".join(f"<jid>{escape(j)}</jid>" for j in never) + "</never></prefs>")
    return c.iq("set", payload)


def prefs_of(res):
    """(default, [always], [never]) of a <prefs/> answer, checking both lists are there."""
    assert res.get("type") == "result", dump(res)
    p = res.find(q(NS_MAM, "prefs"))
    assert p is not None, dump(res)
    lists = []
    for name in ("always", "never"):
        el = p.find(q(NS_MAM, name))
        assert el is not None, f"XEP-0441 §2.1: <{name}/> must be present: {dump(res)}"
        lists.append([j.text for j in el.findall(q(NS_MAM, "jid"))])
    return p.get("default"), lists[0], lists[1]


def account_features(c):
    res = c.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=c.bare)
    assert res.get("type") == "result", dump(res)
    return {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))
            .findall(q(NS_DISCO_INFO, "feature"))}


def parse_stamp(text):
    """A result's XEP-0082 stamp (UTC, with fractions of a second) as a datetime."""
    assert text.endswith("Z"), text
    return datetime.datetime.strptime(text[:-1], "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc)


# ---------------------------------------------------------------------------
# Archiving and stanza ids


def test_disco_features(clients):
    """§7: the archive's features are on the account (its bare JID); #extended with it;
    XEP-0359 §5 urn:xmpp:sid:0 since the account follows its rules."""
    a = clients("alice")
    feats = account_features(a)
    for f in (NS_MAM, NS_MAM_EXT, NS_SID):
        assert f in feats, (f, feats)


def test_both_directions_archived_with_ids(clients):
    """§3: the message is in the sender's archive (outgoing) and the addressee's (incoming);
    the delivered message carries the addressee's stanza-id, and none by the sender (§3.5)."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    got = send(a, b, "hello bob", id="dir-1")
    assert got.get("from") == a.jid and body_of(got) == "hello bob", dump(got)
    ids = sids(got)
    assert len(ids) == 1 and ids[0][0] == B, f"expected one stanza-id by {B}: {dump(got)}"
    bob_id = ids[0][1]
    assert bob_id and len(bob_id) <= 64, bob_id
    reply = send(b, a, "hello alice", id="dir-2")
    assert [by for by, _ in sids(reply)] == [A], dump(reply)
    alice_in = sids(reply)[0][1]

    pa = archive(a)
    assert pa.bodies() == ["hello bob", "hello alice"], [dump(m) for m in pa.results]
    (out_id, _, out_msg), (in_id, _, in_msg) = pa.items()
    assert in_id == alice_in, (in_id, alice_in)
    assert out_id != in_id
    assert out_msg.get("to") == B and out_msg.get("from") == a.jid and \
        out_msg.get("id") == "dir-1", dump(out_msg)
    assert in_msg.get("from") == b.jid and in_msg.get("id") == "dir-2", dump(in_msg)
    assert pa.count == 2 and pa.first == out_id and pa.last == in_id and pa.first_index == 0

    pb = archive(b)
    assert pb.bodies() == ["hello bob", "hello alice"]
    assert pb.ids()[0] == bob_id, (pb.ids(), bob_id)
    # Ids are per archive (§6.2): alice's copy of her message has another id than bob's.
    assert bob_id not in pa.ids()


def test_slixmpp_retrieve_and_stanza_id(clients):
    """slixmpp's XEP-0313 and XEP-0359 plugins read the same archive and ids."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    for c in (a, b):
        c.xmpp.register_plugin("xep_0313")
        c.xmpp.register_plugin("xep_0359")
    got = send(a, b, "via slixmpp", id="slix-1")
    from slixmpp import Message
    msg = Message(xml=got)
    assert msg["stanza_id"]["by"] == B and msg["stanza_id"]["id"], dump(got)
    iq = b.pool.run(b.xmpp["xep_0313"].retrieve(jid=B, with_jid=a.xmpp.boundjid.bare,
                                                 rsm={"max": 10}), 5.0)
    results = iq["mam"]["results"]
    assert len(results) == 1, iq
    r = results[0]["mam_result"]
    assert r["id"] == msg["stanza_id"]["id"], (r["id"], msg["stanza_id"]["id"])
    assert r["forwarded"]["stanza"]["body"] == "via slixmpp"
    assert iq["mam_fin"]["rsm"]["count"] == "1"


def test_spoofed_stanza_id_removed(clients):
    """XEP-0359 §3 rule 2: a stanza-id claiming the addressee's archive is removed (however
    its JID is written); one by another entity stays; the server's own is the only one by
    the account (rule 4)."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    inner = (f"<stanza-id xmlns='{NS_SID}' by='{B}' id='forged-1'/>"
             f"<stanza-id xmlns='{NS_SID}' by='Bob@LOCALHOST' id='forged-2'/>"
             f"<stanza-id xmlns='{NS_SID}' by='room@muc.example' id='theirs'/>"
             f"<origin-id xmlns='{NS_SID}' id='origin-9'/>")
    got = send(a, b, "trust me", inner=inner)
    ids = sids(got)
    mine = [i for by, i in ids if by in (B, "Bob@LOCALHOST")]
    assert len(mine) == 1 and mine[0] not in ("forged-1", "forged-2"), dump(got)
    assert ("room@muc.example", "theirs") in ids, dump(got)
    assert got.find(q(NS_SID, "origin-id")).get("id") == "origin-9", dump(got)
    # The archived copy has no forged id either.
    (aid, _, m), = archive(b).items()
    assert aid == mine[0]
    assert not [i for by, i in sids(m) if i.startswith("forged")], dump(m)
    # A message that is not archived loses the forged id all the same.
    got = send(a, b, None, type="headline", to=b.jid, inner=inner)
    assert [by for by, _ in sids(got)] == ["room@muc.example"], dump(got)


def test_offline_message_carries_stanza_id(clients):
    """A message kept offline was archived first: it comes with the archive's id."""
    a = clients("alice", available=True)
    a.message(B, "while away", id="off-1")
    a.expect_silence(0.3, match("message", type="error"))
    b = clients("bob")
    b.presence()
    got = b.recv(match("message", id="off-1"))
    assert got.find(q(NS_DELAY, "delay")) is not None, dump(got)
    (by, sid), = sids(got)
    assert by == B
    assert archive(b).ids() == [sid]


def test_message_to_self_archived_once(clients):
    """§6.1.1: a stanza is stored in a given archive only once."""
    a = clients("alice", available=True)
    mid = a.message(A, "note to self")
    got = a.recv(match("message", id=mid))
    (by, sid), = sids(got)
    assert by == A
    page = archive(a)
    assert page.ids() == [sid] and page.count == 1


def test_what_is_archived(clients):
    """§6.1.1: normal and chat messages with a body (or a <store/> hint, XEP-0334); not chat
    states alone, headline, groupchat or error, nor <no-store/> / <no-permanent-store/>."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    cs = "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    cases = [  # (id, body, type, inner, archived)
        ("w-chat", "chat", "chat", cs, True),
        ("w-normal", "normal", None, "", True),
        ("w-state", None, "chat", cs, False),
        ("w-head", "news", "headline", "", False),
        ("w-gc", "room", "groupchat", "", False),
        ("w-err", None, "error", "<error type='cancel'><item-not-found "
                                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>", False),
        ("w-nostore", "secret", "chat", f"<no-store xmlns='{NS_HINTS}'/>", False),
        ("w-noperm", "secret", "chat", f"<no-permanent-store xmlns='{NS_HINTS}'/>", False),
        ("w-store", None, "chat", f"<store xmlns='{NS_HINTS}'/>", True),
        ("w-omemo", None, "chat", "<encrypted xmlns='eu.siacs.conversations.axolotl'>"
                                  "<payload>x</payload></encrypted>", True),
    ]
    for mid, body, mtype, inner, archived in cases:
        got = send(a, b, body, id=mid, type=mtype, inner=inner, to=b.jid)
        assert bool(sids(got)) == archived, (mid, dump(got))
    want = [mid for mid, _, _, _, archived in cases if archived]
    for c in (a, b):
        page = archive(c)
        assert [m.get("id") for _, _, m in page.items()] == want, (c.user, page.ids())


def test_unknown_extensions_come_back_intact(clients):
    """§3: the whole stanza is stored: unknown children, attributes, text and their order
    come back as sent (the sender's copy) and as received (the addressee's, without the id
    the server added on delivery)."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    inner = ("<thing xmlns='urn:example:thing' a='1' b='&lt;two&gt; &amp; &quot;q&quot;'>"
             "head<inner xmlns='urn:example:other' c='3'>text \u00e9<deep/></inner>"
             "<inner2>t2</inner2>tail</thing>"
             f"<origin-id xmlns='{NS_SID}' id='orig-1'/>"
             "<x xmlns='jabber:x:oob'><url>https://example.org/a?b=1&amp;c=2</url></x>"
             "<subject>s</subject>")
    sent = ET.fromstring(f"<message xmlns='{NS_CLIENT}' to='{B}' id='ext-1' type='chat' "
                         f"xml:lang='en'><body>hi</body>{inner}</message>")
    a.send_raw(ET.tostring(sent, encoding="unicode"))
    got = b.recv(match("message", id="ext-1"))
    want = [canon(c, top=False) for c in sent]
    assert [canon(c, top=False) for c in got][:-1] == want, dump(got)
    for c in (a, b):
        (_, _, m), = archive(c).items()
        assert [canon(x, top=False) for x in m] == want, (c.user, dump(m))
        for k in ("to", "id", "type", "{http://www.w3.org/XML/1998/namespace}lang"):
            assert m.get(k) == sent.get(k), (k, dump(m))
        assert m.get("from") == a.jid, dump(m)


# ---------------------------------------------------------------------------
# Queries: filters


def conversation(a, b, c, n=2):
    """a and b, a and c exchange n messages each way; returns nothing, drains."""
    for i in range(n):
        send(a, b, f"a->b {i}")
        send(b, a, f"b->a {i}")
        send(a, c, f"a->c {i}")
        send(c, a, f"c->a {i}")


def test_query_with(clients):
    """§4.1.1: 'with' a bare JID matches its resources; a full JID only itself."""
    a = clients("alice", available=True)
    b = clients("bob", resource="desk", available=True)
    c = clients("carol", available=True)
    conversation(a, b, c)
    page = query(a, {"with": B})
    assert page.ok and page.complete, dump(page.iq)
    assert page.bodies() == ["a->b 0", "b->a 0", "a->b 1", "b->a 1"]
    assert page.count == 4
    assert query(a, {"with": C}).bodies() == ["a->c 0", "c->a 0", "a->c 1", "c->a 1"]
    # Full JIDs: alice received from bob's full JID; she sent to his bare one.
    assert query(a, {"with": b.jid}).bodies() == ["b->a 0", "b->a 1"]
    assert query(a, {"with": f"{B}/elsewhere"}).bodies() == []
    # Written another way, prepared the same.
    assert query(a, {"with": "BOB@LocalHost"}).count == 4
    empty = query(a, {"with": f"nobody@{DOMAIN}"})
    assert empty.ok and empty.complete and empty.results == [] and empty.count == 0
    assert empty.first is None and empty.last is None, dump(empty.iq)


def test_query_start_end(clients):
    """§4.1.2: start and end include messages stamped at them; any XEP-0082 time zone."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    for i in range(5):
        send(a, b, f"t{i}")
        time.sleep(0.01)
    items = archive(a).items()
    stamps = [s for _, s, _ in items]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5, stamps
    page = query(a, {"start": stamps[1], "end": stamps[3]})
    assert page.bodies() == ["t1", "t2", "t3"] and page.count == 3 and page.complete
    assert query(a, {"start": stamps[4]}).bodies() == ["t4"]
    assert query(a, {"end": stamps[0]}).bodies() == ["t0"]
    # The same instant two hours east of UTC.
    t = parse_stamp(stamps[2]) + datetime.timedelta(hours=2)
    east = t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+02:00"
    assert query(a, {"start": east}).bodies() == ["t2", "t3", "t4"]
    # Whole seconds only, long before and long after.
    assert query(a, {"end": "2000-01-01T00:00:00Z"}).bodies() == []
    assert query(a, {"start": "2000-01-01T00:00:00Z", "with": B}).count == 5


def test_query_ids_and_bounds(clients):
    """#extended: ids, after-id, before-id (§4.1.3); unknown ones are item-not-found."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    for i in range(6):
        send(a, b, f"n{i}")
    ids = archive(a).ids()
    page = query(a, {"ids": [ids[4], ids[1]]})
    assert page.ids() == [ids[1], ids[4]] and page.count == 2 and page.complete
    assert query(a, {"after-id": ids[3]}).ids() == ids[4:]
    assert query(a, {"before-id": ids[2]}).ids() == ids[:2]
    page = query(a, {"after-id": ids[0], "before-id": ids[5]})
    assert page.ids() == ids[1:5] and page.count == 4, page.ids()
    # With RSM inside the range: the range still bounds the page.
    page = query(a, {"after-id": ids[0], "before-id": ids[5]}, rsm=rsm_xml(max=2))
    assert page.ids() == ids[1:3] and not page.complete and page.count == 4
    page = query(a, {"after-id": ids[0], "before-id": ids[5]}, rsm=rsm_xml(max=2, after=ids[2]))
    assert page.ids() == ids[3:5] and page.complete, page.ids()
    for fields in ({"ids": [ids[0], "no-such-id"]}, {"after-id": "no-such-id"},
                   {"before-id": "nope"}, {"ids": ["bad id!"]},
                   {"after-id": ids[0], "before-id": "missing"}):
        page = query(a, fields)
        assert page.error() == "item-not-found", (fields, dump(page.iq))
        assert page.results == []
    # An after-id that RSM paging overrides must exist all the same.
    page = query(a, {"after-id": "missing"}, rsm=rsm_xml(max=2, after=ids[1]))
    assert page.error() == "item-not-found", dump(page.iq)
    # bob's ids are not alice's.
    bob_ids = archive(b).ids()
    assert query(a, {"ids": [bob_ids[0]]}).error() == "item-not-found"


# ---------------------------------------------------------------------------
# Queries: paging (XEP-0059) and results


def seven(a, b):
    for i in range(7):
        send(a, b, f"p{i}")
    ids = archive(a).ids()
    assert len(ids) == 7
    return ids


def test_paging_forward(clients):
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    ids = seven(a, b)
    p1 = query(a, rsm=rsm_xml(max=3))
    assert p1.ids() == ids[0:3] and p1.first == ids[0] and p1.last == ids[2]
    assert (p1.first_index, p1.count, p1.complete) == (0, 7, False), dump(p1.iq)
    p2 = query(a, rsm=rsm_xml(max=3, after=p1.last))
    assert p2.ids() == ids[3:6] and (p2.first_index, p2.count, p2.complete) == (3, 7, False)
    p3 = query(a, rsm=rsm_xml(max=3, after=p2.last))
    assert p3.ids() == ids[6:] and (p3.first_index, p3.count, p3.complete) == (6, 7, True)
    assert p3.first == p3.last == ids[6]
    p4 = query(a, rsm=rsm_xml(max=3, after=p3.last))
    assert p4.ok and p4.results == [] and p4.complete and p4.count == 7
    assert p4.first is None and p4.last is None, dump(p4.iq)
    # Without <max/> the default page; max 0 is the count alone (XEP-0059 §2.7).
    assert query(a).ids() == ids
    p0 = query(a, rsm=rsm_xml(max=0))
    assert p0.ok and p0.results == [] and p0.count == 7 and p0.first is None, dump(p0.iq)
    assert not p0.complete, "§4.3.2: the page was cut by <max/>"


def test_paging_backward(clients):
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    ids = seven(a, b)
    # An empty <before/>: the last page (§4.3.3), still oldest first.
    p1 = query(a, rsm=rsm_xml(max=3, before=""))
    assert p1.ids() == ids[4:7] and (p1.first_index, p1.count, p1.complete) == (4, 7, False)
    p2 = query(a, rsm=rsm_xml(max=3, before=p1.first))
    assert p2.ids() == ids[1:4] and (p2.first_index, p2.count, p2.complete) == (1, 7, False)
    p3 = query(a, rsm=rsm_xml(max=3, before=p2.first))
    assert p3.ids() == ids[0:1] and (p3.first_index, p3.count, p3.complete) == (0, 7, True)
    # With a filter: the last page of bob's messages only.
    send(b, a, "from bob")
    page = query(a, {"with": B}, rsm=rsm_xml(max=2, before=""))
    assert page.bodies() == ["p6", "from bob"] and page.count == 8 and page.first_index == 6


def test_slixmpp_paging(clients):
    """slixmpp's XEP-0313 iterator pages with XEP-0059 (xep_0059's ResultIterator): forwards
    with <after/> until first@index + page = count. Backwards it starts from an empty
    <before/>, and stops after that first page, which ends at the count (slixmpp 1.8 applies
    its forward stop rule in both directions)."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    ids = seven(a, b)
    a.xmpp.register_plugin("xep_0313")

    async def walk(reverse):
        got = []
        async for m in a.xmpp["xep_0313"].iterate(jid=A, rsm={"max": 3}, reverse=reverse):
            got.append(m["mam_result"]["id"])
        return got

    assert a.pool.run(walk(False), 10.0) == ids
    assert a.pool.run(walk(True), 10.0) == list(reversed(ids[4:]))


def test_flip_page(clients):
    """§4.3.4: the page is sent newest first; what it holds, and first/last, do not change."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    ids = seven(a, b)
    page = query(a, rsm=rsm_xml(max=3, before=""), extra="<flip-page/>")
    assert page.ids() == list(reversed(ids[4:7])), page.ids()
    assert page.first == ids[4] and page.last == ids[6] and page.first_index == 4


def test_page_limit(clients):
    """§4.3.1: a <max/> beyond the server's limit is cut to it (250); paging goes on."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    n = PAGE_MAX + 10
    for i in range(n):
        a.message(B, f"bulk {i}", id=f"bulk-{i}")
    b.recv(match("message", id=f"bulk-{n - 1}"), timeout=20.0)
    p1 = query(a, rsm=rsm_xml(max=100000), timeout=20.0)
    assert len(p1.results) == PAGE_MAX and p1.count == n and not p1.complete, p1.count
    assert p1.bodies()[0] == "bulk 0" and p1.bodies()[-1] == f"bulk {PAGE_MAX - 1}"
    p2 = query(a, rsm=rsm_xml(max=100000, after=p1.last), timeout=20.0)
    assert len(p2.results) == 10 and p2.complete and p2.first_index == PAGE_MAX
    assert len(query(a, timeout=20.0).results) == PAGE_DEFAULT


def test_query_errors(clients):
    """Malformed queries get the XEP's errors, and no results."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    send(a, b, "one")
    cases = [
        (dict(fields={}, form_type="urn:xmpp:mam:1"), "bad-request"),  # §4.1 FORM_TYPE
        (dict(fields={"with": B}, form_type=None), "bad-request"),
        (dict(fields={"{urn:example}free-text-search": "x"}), "feature-not-implemented"),
        (dict(fields={"include-groupchat": "true"}), "feature-not-implemented"),
        (dict(fields={"start": "yesterday"}), "bad-request"),
        (dict(fields={"end": "2024-02-30T00:00:00Z"}), "bad-request"),
        (dict(fields={"with": "a@b@c"}), "bad-request"),
        # One form per query (§4.1): a second one is refused, not merged into the first.
        (dict(fields={"with": C, "after-id": "a1"}, extra=form_xml({"with": B, "after-id": "a2"})),
         "bad-request"),
        (dict(rsm=rsm_xml(max="ten")), "bad-request"),
        (dict(rsm=rsm_xml(max="-1")), "bad-request"),
        (dict(rsm=rsm_xml(index=2)), "feature-not-implemented"),  # XEP-0059 §2.6
        (dict(rsm=rsm_xml(after="no-such-id")), "item-not-found"),  # §4.3.2
        (dict(rsm=rsm_xml(before="no-such-id")), "item-not-found"),
    ]
    for kw, cond in cases:
        page = query(a, **kw)
        assert page.error() == cond, (kw, dump(page.iq))
        assert page.results == [], kw
        assert page.iq.get("from") in (None, A), dump(page.iq)


def test_other_archive_forbidden(clients):
    """§8.1: someone else's archive: forbidden, whoever asks."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    send(a, b, "private")
    page = query(a, to=B)
    assert page.error() == "forbidden" and page.iq.get("from") == B, dump(page.iq)
    assert page.results == []
    for payload in (f"<prefs xmlns='{NS_MAM}'/>", f"<metadata xmlns='{NS_MAM}'/>"):
        res = a.iq("get", payload, to=B)
        assert error_of(res)[1] == "forbidden", dump(res)
    # To one's own bare JID, as to no one.
    assert query(a, to=A).ids() == archive(a).ids()


def test_form_and_metadata(clients):
    """§4.1.5: the form lists the fields; §5: metadata of an empty, then a filled archive."""
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    res = a.iq("get", f"<query xmlns='{NS_MAM}'/>")
    assert res.get("type") == "result", dump(res)
    x = res.find(f"{q(NS_MAM, 'query')}/{q(NS_DATA, 'x')}")
    assert x is not None and x.get("type") == "form", dump(res)
    fields = {f.get("var"): f for f in x.findall(q(NS_DATA, "field"))}
    types = {v: f.get("type") for v, f in fields.items()}
    assert types == {"FORM_TYPE": "hidden", "with": "jid-single", "start": "text-single",
                     "end": "text-single", "before-id": "text-single",
                     "after-id": "text-single", "ids": "list-multi"}, types
    assert fields["FORM_TYPE"].find(q(NS_DATA, "value")).text == NS_MAM
    v = fields["ids"].find(q("http://jabber.org/protocol/xdata-validate", "validate"))
    assert v is not None and v.find(q("http://jabber.org/protocol/xdata-validate", "open")) \
        is not None, dump(res)
    for f in x.findall(q(NS_DATA, "field")):
        assert f.find(q(NS_DATA, "required")) is None, "§4.1: no field is required"

    res = a.iq("get", f"<metadata xmlns='{NS_MAM}'/>")
    md = res.find(q(NS_MAM, "metadata"))
    assert res.get("type") == "result" and md is not None and len(md) == 0, dump(res)
    for i in range(3):
        send(a, b, f"m{i}")
    items = archive(a).items()
    res = a.iq("get", f"<metadata xmlns='{NS_MAM}'/>")
    md = res.find(q(NS_MAM, "metadata"))
    start, end = md.find(q(NS_MAM, "start")), md.find(q(NS_MAM, "end"))
    assert (start.get("id"), start.get("timestamp")) == items[0][:2], dump(res)
    assert (end.get("id"), end.get("timestamp")) == items[2][:2], dump(res)


# ---------------------------------------------------------------------------
# Preferences (XEP-0441)


def test_prefs_default_and_set(clients):
    a = clients("alice", available=True)
    assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>")) == ("always", [], [])
    # A JID in both lists is never archived: the applied prefs say so.
    res = set_prefs(a, "roster", always=[B, "Carol@LOCALHOST", B], never=[C, "x@example.org/r"])
    assert prefs_of(res) == ("roster", [B], [C, "x@example.org/r"]), dump(res)
    assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>")) == \
        ("roster", [B], [C, "x@example.org/r"])
    for bad in ("<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>",
                "<prefs xmlns='urn:xmpp:mam:2'/>",
                "<prefs xmlns='urn:xmpp:mam:2' default='always'><always><jid>a@b@c</jid>"
                "</always></prefs>"):
        res = a.iq("set", bad)
        assert error_of(res)[1] == "bad-request", (bad, dump(res))
    res = set_prefs(a, "always", always=[f"u{i}@example.org" for i in range(1001)])
    assert error_of(res)[1] == "policy-violation", dump(res)
    # Refused sets changed nothing.
    assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>"))[0] == "roster"


def test_prefs_never_and_always(clients):
    a = clients("alice", available=True)
    b = clients("bob", available=True)
    c = clients("carol", available=True)
    set_prefs(a, "never", always=[C])
    got = send(a, b, "not kept by alice")
    # bob keeps everything: his copy is archived and carries his id.
    assert [by for by, _ in sids(got)] == [B], dump(got)
    got = send(b, a, "not kept by alice either")
    assert sids(got) == [], dump(got)
    send(a, c, "kept: carol is always")
    send(c, a, "kept too")
    assert archive(a).bodies() == ["kept: carol is always", "kept too"]
    assert archive(b).bodies() == ["not kept by alice", "not kept by alice either"]
    # never wins for a listed full JID too, and only for it.
    set_prefs(a, "always", never=[c.jid])
    send(c, a, "from carol's resource")
    send(a, c, "to carol's bare JID")
    assert archive(a).bodies()[2:] == ["to carol's bare JID"]


def test_prefs_roster(clients):
    """'roster': only contacts in the roster, by bare JID, either direction."""
    a = clients("alice", available=True)
    b = clients("bob", resource="r1", available=True)
    c = clients("carol", available=True)
    a.roster_get()
    assert a.roster_set(B).get("type") == "result"
    set_prefs(a, "roster")
    send(a, b, "to a contact", to=b.jid)
    send(b, a, "from a contact")
    send(a, c, "to a stranger")
    got = send(c, a, "from a stranger")
    assert sids(got) == []
    assert archive(a).bodies() == ["to a contact", "from a contact"]


def test_prefs_set_from_a_session_that_leaves(make_im):
    """The prefs set is answered once stored; the session that asked may be gone by then, and
    with it the last thing holding the user in memory: answering it must not free the user
    under the module (ASan checks at teardown). Last activity is off: its write at the end of
    the session would hold the user. The prefs were stored all the same."""
    srv = make_im(sm_disable=("last",))
    for i in range(5):
        r = im.RawClient(srv, name=f"leaver-{i}")
        r.login("alice", resource=f"r{i}")
        r.send(f"<iq type='set' id='p{i}'><prefs xmlns='{NS_MAM}' default='roster'><always/>"
               f"<never><jid>n{i}@example.org</jid></never></prefs></iq></stream:stream>")
        r.close()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice")
        assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>")) == \
            ("roster", [], ["n4@example.org"])
    finally:
        pool.close()


def test_archive_default_config(make_im):
    """[sm] archive_default = never: nothing is kept until a user says otherwise."""
    srv = make_im(sm_extra={"archive_default": "never"})
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        got = send(a, b, "off the record")
        assert sids(got) == [], dump(got)
        assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>")) == ("never", [], [])
        assert archive(a).results == [] and archive(b).results == []
        set_prefs(b, "always")
        got = send(a, b, "kept by bob")
        assert [by for by, _ in sids(got)] == [B]
        assert archive(b).bodies() == ["kept by bob"] and archive(a).results == []
    finally:
        pool.close()


def test_config_values(parleyd_bin, tmp_path):
    """archive_expiry: days or forever, never 0; archive_default: one of three."""
    for line, ok in (("archive_expiry = forever", True), ("archive_expiry = 30d", True),
                     ("archive_expiry = 30", True), ("archive_expiry = 0", False),
                     ("archive_expiry = 3w", False), ("archive_expiry = -5d", False),
                     ("archive_default = roster", True), ("archive_default = sometimes", False)):
        conf = tmp_path / "parley.conf"
        conf.write_text(f"[sm]\ndomain = {DOMAIN}\n{line}\n\n[storage]\npath = data.db\n")
        res = harness.run_parleyd(parleyd_bin, ["--config", str(conf), "--check-config", "sm"],
                                  tmp_path)
        assert (res.returncode == 0) == ok, (line, res.stderr)
        if not ok:
            assert "parley.conf:" in res.stderr, res.stderr
        assert harness.sanitizer_report(res.stderr) is None, res.stderr


# ---------------------------------------------------------------------------
# Persistence, deletion, the module off


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_archive_survives_restart(make_im, storage):
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        got = [send(a, b, f"r{i}") for i in range(3)]
        set_prefs(a, "always", never=[C])
        before_a, before_b = archive(a).items(), archive(b).items()
        assert [sids(g)[0][1] for g in got] == [i for i, _, _ in before_b]
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        c = pool.client("carol", available=True)
        for cl, before in ((a, before_a), (b, before_b)):
            after = archive(cl).items()
            assert [(i, s, canon(m)) for i, s, m in after] == \
                [(i, s, canon(m)) for i, s, m in before], cl.user
        assert prefs_of(a.iq("get", f"<prefs xmlns='{NS_MAM}'/>")) == ("always", [], [C])
        send(a, c, "not kept (prefs came back)")
        send(a, b, "kept after the restart")
        assert archive(a).bodies() == ["r0", "r1", "r2", "kept after the restart"]
        # New ids are new: none repeats one from before the restart.
        assert len(set(archive(b).ids())) == 4
    finally:
        pool.close()


def varint_get(buf, i):
    r, shift = 0, 0
    while True:
        c = buf[i]
        i += 1
        r |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return r, i


def varint_put(v):
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | 0x80 if v else b)
        if not v:
            return bytes(out)


def chunk_decode(first_key, meta):
    """A chunk's meta as docs/storage.md (schema 7) describes it: a format byte, then per
    entry the key's delta, the nonce, the bare JID, the resource (and old-id flag) and the
    stanza's length. Returns [key, rest of the entry's meta bytes, stanza length]."""
    assert meta[0] == 1
    i, key, out = 1, first_key, []
    while i < len(meta):
        delta, i = varint_get(meta, i)
        key += delta
        start = i + 8
        n, j = varint_get(meta, start)
        r, j = varint_get(meta, j + n)
        j += (r >> 1) - 1 if r >> 1 else 0
        length, j = varint_get(meta, j)
        out.append([key, meta[i:j], length])
        i = j
    return out


def chunk_encode(entries):
    meta, prev = bytearray([1]), entries[0][0]
    for key, rest, _ in entries:
        meta += varint_put(key - prev) + rest
        prev = key
    return bytes(meta)


def age_chunks(db, user, count, shift):
    """Moves the keys (the stamps) of the user's count oldest entries shift back: whole
    chunks by their bounds, the chunk the count ends in split in two."""
    owner = db.execute("SELECT id FROM users WHERE name = ?", (user,)).fetchone()[0]
    rows = db.execute(
        "SELECT rowid, first_key, last_key, count, meta, data FROM archive_chunk"
        " WHERE owner = ? ORDER BY last_key", (owner,)).fetchall()
    left = count
    # Keys only move down, below every other chunk's, so (owner, last_key) stays unique.
    for rowid, first, last, n, meta, data in rows:
        if left == 0:
            break
        if n <= left:
            db.execute("UPDATE archive_chunk SET first_key = ?, last_key = ? WHERE rowid = ?",
                       (first - shift, last - shift, rowid))
            left -= n
            continue
        entries = chunk_decode(first, meta)
        head, tail = entries[:left], entries[left:]
        cut = sum(e[2] for e in head)
        for e in head:
            e[0] -= shift
        db.execute("DELETE FROM archive_chunk WHERE rowid = ?", (rowid,))
        for part, blob in ((head, data[:cut]), (tail, data[cut:])):
            db.execute(
                "INSERT INTO archive_chunk (owner, first_key, last_key, count, meta, data)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (owner, part[0][0], part[-1][0], len(part), chunk_encode(part), blob))
        left = 0
    assert left == 0



def age_entries(srv, user, count, days):
    """Moves the stamps of the user's count oldest entries days back, in the store itself
    (the server stopped): the sqlite table (where the stamp is the key, so those entries' ids
    change too) or the files backend's archive file, as docs/storage.md describes them."""
    shift = days * 86400 * 1000000
    if srv.opts["storage"] == "sqlite":
        db = sqlite3.connect(os.path.join(srv.workdir, "data", "parley.db"), timeout=5)
        try:
            with db:
                age_chunks(db, user, count, shift)
        finally:
            db.close()
        return
    path = os.path.join(srv.workdir, "data", "store", user, "archive")
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    records = [i for i, line in enumerate(lines) if line and not line.startswith(("#", "parley "))]
    for i in records[:count]:
        fields = lines[i].split("\t")
        fields[1] = str(int(fields[1]) - shift)
        lines[i] = "\t".join(fields)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_archive_expiry(make_im, storage):
    """[sm] archive_expiry: entries older than that go at the user's next login, oldest first
    (§3.2: no gaps); younger ones, and other users' archives, stay until their turn."""
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        for i in range(3):
            send(a, b, f"e{i}")
        ids = archive(a).ids()
    finally:
        pool.close()
    srv.stop()
    assert not srv.problems(), srv.log_tails()
    age_entries(srv, "alice", 2, 10)
    age_entries(srv, "bob", 1, 10)
    srv.opts["sm_extra"] = {"archive_expiry": "7d"}
    srv.write_config()
    srv.start()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        page = archive(a)
        assert page.ids() == ids[2:] and page.bodies() == ["e2"], page.bodies()
        b = pool.client("bob", available=True)
        assert archive(b).bodies() == ["e1", "e2"]
    finally:
        pool.close()


def test_account_deletion_removes_archive(make_im):
    srv = make_im()
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        send(a, b, "soon gone")
        assert archive(b).count == 1
        b.disconnect()
        time.sleep(0.5)  # the sm lets bob go
        ctl = os.path.join(os.path.dirname(srv.parleyd), "parleyctl")
        r = subprocess.run([ctl, "--config", srv.conf_path, "deluser", B], capture_output=True,
                           text=True, timeout=30, cwd=srv.workdir,
                           env=harness.sanitizer_env())
        assert r.returncode == 0, r.stderr
        srv.adduser("bob", "new-bob")
        nb = pool.client("bob", available=True)
        page = archive(nb)
        assert page.results == [] and page.count == 0, dump(page.iq)
    finally:
        pool.close()


def test_module_disabled(make_im):
    """[sm] disable = mam: the features leave disco, the IQs are service-unavailable, nothing
    is archived and delivered messages carry no id."""
    srv = make_im(sm_disable=["mam"])
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        b = pool.client("bob", available=True)
        feats = account_features(a)
        for f in (NS_MAM, NS_MAM_EXT, NS_SID):
            assert f not in feats, (f, feats)
        got = send(a, b, "not archived")
        assert sids(got) == [], dump(got)
        page = query(a)
        assert page.error() == "service-unavailable" and page.results == [], dump(page.iq)
        for payload in (f"<query xmlns='{NS_MAM}'/>", f"<prefs xmlns='{NS_MAM}'/>",
                        f"<metadata xmlns='{NS_MAM}'/>"):
            res = a.iq("get", payload)
            assert error_of(res)[1] == "service-unavailable", dump(res)
        res = set_prefs(a, "never")
        assert error_of(res)[1] == "service-unavailable", dump(res)
    finally:
        pool.close()
