# SPDX-License-Identifier: MIT
"""MUC messages (XEP-0045 §7.4, §7.5, §8.1, §7.2.15-16): groupchat fan-out with one id and one
room stanza-id (XEP-0359), private messages, the subject, discussion history with its limits,
the message size limit; three clients, both topologies."""

import datetime
import time

import pytest

from harness import dump
from im import NS_CLIENT, match, q
from muc_util import (NS_DELAY, NS_MUC_USER, NS_SID, configure, enter, error_cond,  # noqa: F401
                      groupchat, instant_room, mclients, muc_server, room_jid, subject_of)

pytestmark = pytest.mark.slixmpp


def three(mclients, name, **config):
    a, b, c = mclients("alice"), mclients("bob"), mclients("carol")
    r = room_jid(name)
    instant_room(a, r, "a")
    if config:
        assert configure(a, r, config).get("type") == "result"
    enter(b, r, "b")
    enter(c, r, "c")
    for x in (a, b, c):
        x.drain(settle=0.2)
    return r, a, b, c


def sid_of(el, by):
    ids = [s for s in el.findall(q(NS_SID, "stanza-id")) if s.get("by") == by]
    assert len(ids) == 1, f"expected one stanza-id by {by}: {dump(el)}"
    return ids[0].get("id")


def test_groupchat_fanout(mclients):
    """§7.4: reflected to every occupant, sender included, from the occupant JID with the
    sender's id; one room stanza-id (by=room) for all; a forged one is dropped; extensions
    pass."""
    r, a, b, c = three(mclients, "fanout")
    forged = f"<stanza-id xmlns='{NS_SID}' id='forged' by='{r}'/><x xmlns='urn:example:e2e'>k</x>"
    groupchat(b, r, "Harpier cries <&>", id="hysf1v37", inner=forged)
    got = [x.recv(match("message", id="hysf1v37")) for x in (a, b, c)]
    ids = set()
    for x, el in zip((a, b, c), got):
        assert el.get("from") == f"{r}/b" and el.get("to") == x.jid, dump(el)
        assert el.get("type") == "groupchat", dump(el)
        assert el.find(q(NS_CLIENT, "body")).text == "Harpier cries <&>"
        assert el.find(q("urn:example:e2e", "x")).text == "k", dump(el)
        ids.add(sid_of(el, r))
    assert len(ids) == 1 and "forged" not in ids, ids
    for x in (a, b, c):
        x.expect_silence(0.2, match("message", id="hysf1v37"))


def test_groupchat_errors(mclients):
    """§7.4: a non-occupant gets not-acceptable; §17.1: no such room is item-not-found;
    §7.5: groupchat to an occupant is bad-request."""
    r, a, b, c = three(mclients, "errs")
    d = mclients("alice", resource="other")
    groupchat(d, r, "intruder", id="out-1")
    assert error_cond(d.recv(match("message", id="out-1", type="error"))) == \
        ("modify", "not-acceptable", r)
    groupchat(d, room_jid("nowhere"), "hello", id="out-2")
    assert error_cond(d.recv(match("message", id="out-2", type="error")))[1] == "item-not-found"
    b.message(f"{r}/c", "pm as groupchat", type="groupchat", id="gc-pm")
    assert error_cond(b.recv(match("message", id="gc-pm", type="error"))) == \
        ("modify", "bad-request", r)


def test_private_messages(mclients):
    """§7.5: from the sender's occupant JID to the recipient's real JID, with the muc#user
    marker; unknown nick item-not-found; a non-occupant not-acceptable; allowpm=none
    forbidden."""
    r, a, b, c = three(mclients, "pm")
    b.message(f"{r}/c", "psst", type="chat", id="pm-1")
    el = c.recv(match("message", id="pm-1"))
    assert el.get("from") == f"{r}/b" and el.get("to") == c.jid, dump(el)
    assert el.find(q(NS_MUC_USER, "x")) is not None, dump(el)
    a.expect_silence(0.2, match("message", id="pm-1"))
    b.message(f"{r}/nobody", "psst", type="chat", id="pm-2")
    assert error_cond(b.recv(match("message", id="pm-2", type="error"))) == \
        ("cancel", "item-not-found", r)
    d = mclients("carol", resource="outside")
    d.message(f"{r}/b", "psst", type="chat", id="pm-3")
    assert error_cond(d.recv(match("message", id="pm-3", type="error")))[1] == "not-acceptable"
    assert configure(a, r, {"muc#roomconfig_allowpm": "none"}).get("type") == "result"
    b.message(f"{r}/c", "psst", type="chat", id="pm-4")
    assert error_cond(b.recv(match("message", id="pm-4", type="error")))[1] == "forbidden"


def test_subject(mclients):
    """§8.1: a participant may not change it unless changesubject; a moderator may; all see
    it from the setter's occupant JID; a newcomer gets it after history, stamped (§7.2.16)."""
    r, a, b, c = three(mclients, "topic")
    b.send_raw(f"<message to='{r}' type='groupchat' id='s1'><subject>mine</subject></message>")
    assert error_cond(b.recv(match("message", id="s1", type="error")))[1] == "forbidden"
    a.send_raw(f"<message to='{r}' type='groupchat' id='s2'><subject>Spells</subject></message>")
    for x in (a, b, c):
        el = x.recv(match("message", id="s2"))
        assert el.get("from") == f"{r}/a" and \
            el.find(q(NS_CLIENT, "subject")).text == "Spells", dump(el)
    assert configure(a, r, {"muc#roomconfig_changesubject": "1"}).get("type") == "result"
    b.send_raw(f"<message to='{r}' type='groupchat' id='s3'><subject>Potions</subject></message>")
    assert c.recv(match("message", id="s3")).get("from") == f"{r}/b"
    groupchat(a, r, "said before", id="h-1")
    d = mclients("alice", resource="late")
    from muc_util import join
    join(d, r, "late")
    hist = d.recv(match("message", id="h-1"))
    subj = subject_of(d, r)
    assert subj.find(q(NS_CLIENT, "subject")).text == "Potions", dump(subj)
    assert subj.get("from") == f"{r}/b", dump(subj)
    delay = subj.find(q(NS_DELAY, "delay"))
    assert delay is not None and delay.get("from") == r, dump(subj)
    assert hist is not None


def history_ids(x, r, nick, **limits):
    from muc_util import join
    join(x, r, nick, history=limits or None)
    subject_of(x, r)
    got = []
    for el in list(x.pending):
        if el.tag == q(NS_CLIENT, "message") and el.find(q(NS_DELAY, "delay")) is not None \
                and el.find(q(NS_CLIENT, "body")) is not None:
            d = el.find(q(NS_DELAY, "delay"))
            assert d.get("from") == r and d.get("stamp", "").endswith("Z"), dump(el)
            assert el.get("to") == x.jid, dump(el)
            got.append(el.get("id"))
    x.drain()
    x.send_raw(f"<presence to='{r}/{nick}' type='unavailable'/>")
    x.recv(match("presence", frm=f"{r}/{nick}", type="unavailable"))
    return got


def test_history(mclients):
    """§7.2.15: history before the subject, stamped from the room; maxstanzas, maxchars,
    seconds and since select the newest whole messages; the room keeps historylength."""
    a = mclients("alice")
    r = room_jid("history")
    instant_room(a, r, "a")
    assert configure(a, r, {"muc#maxhistoryfetch": "4"}).get("type") == "result"
    for i in range(6):
        groupchat(a, r, f"line {i}", id=f"l{i}")
        a.recv(match("message", id=f"l{i}"))
    groupchat(a, r, None, id="state-only",
              inner="<active xmlns='http://jabber.org/protocol/chatstates'/>")
    a.recv(match("message", id="state-only"))
    b = mclients("bob")
    assert history_ids(b, r, "b1") == ["l2", "l3", "l4", "l5"]
    assert history_ids(b, r, "b2", maxstanzas=2) == ["l4", "l5"]
    assert history_ids(b, r, "b3", maxchars=0) == []
    assert history_ids(b, r, "b4", seconds=3600) == ["l2", "l3", "l4", "l5"]
    future = (datetime.datetime.utcnow() + datetime.timedelta(hours=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    assert history_ids(b, r, "b5", since=future) == []
    assert history_ids(b, r, "b6", since="1970-01-01T00:00:00Z") == ["l2", "l3", "l4", "l5"]
    time.sleep(0)  # the stamps are whole seconds


def test_message_size_limit(make_im):
    """[muc] max_message_size: a larger message is policy-violation (RFC 6120 §8.3.3.12)."""
    import im
    srv = make_im(muc=True, muc_extra={"max_message_size": "2K"})
    pool = im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        r = room_jid("small")
        instant_room(a, r, "a")
        groupchat(a, r, "x" * 4000, id="big")
        assert error_cond(a.recv(match("message", id="big", type="error"))) == \
            ("modify", "policy-violation", r)
        groupchat(a, r, "x" * 1000, id="fits")
        assert a.recv(match("message", id="fits", type="groupchat")) is not None
    finally:
        pool.close()
