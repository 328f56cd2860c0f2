# SPDX-License-Identifier: MIT
"""Bookmarks (XEP-0402) on PEP, and the "#compat" layer: a XEP-0048 client using private XML
(XEP-0049) reads and writes the same bookmarks, converted both ways, with notifications to
XEP-0402 clients for what a legacy write changed; the node's required configuration,
persistence across a restart on both backends, and the module switched off.

slixmpp 1.8 has no XEP-0402 plugin: those requests are raw stanzas; the legacy side uses
slixmpp's xep_0048 over xep_0049 as well as raw stanzas.
"""

import pytest

import im
from harness import dump
from im import DOMAIN, NS_DISCO_INFO, error_of, match, q, skip_prosody, subscribe_both
from test_im_pep import (PS, PSE, PSO, event_of, form, items, notification, ok, pep_client,
                         pubsub_error)

pytestmark = [pytest.mark.slixmpp, skip_prosody("Parley's bookmarks")]

A, B = f"alice@{DOMAIN}", f"bob@{DOMAIN}"
BM2 = "urn:xmpp:bookmarks:1"
BM1 = "storage:bookmarks"
PRIV = "jabber:iq:private"
EXT = "<extensions><state xmlns='urn:example:s' minimized='1'/></extensions>"
REQUIRED = {"persist_items": "true", "max_items": "max", "send_last_published_item": "never",
            "access_model": "whitelist"}


def conference2(name=None, autojoin=None, nick=None, password=None, extensions=""):
    a = ""
    if name is not None:
        a += f" name='{name}'"
    if autojoin is not None:
        a += f" autojoin='{autojoin}'"
    inner = (f"<nick>{nick}</nick>" if nick else "") + \
        (f"<password>{password}</password>" if password else "") + extensions
    return f"<conference xmlns='{BM2}'{a}>{inner}</conference>"


def add_bookmark(c, room, payload, options=REQUIRED):
    opts = f"<publish-options>{form(PS + '#publish-options', **options)}</publish-options>" \
        if options else ""
    return c.iq("set", f"<pubsub xmlns='{PS}'><publish node='{BM2}'><item id='{room}'>"
                       f"{payload}</item></publish>{opts}</pubsub>")


def legacy_get(c):
    res = ok(c.iq("get", f"<query xmlns='{PRIV}'><storage xmlns='{BM1}'/></query>"))
    storage = res.find(q(PRIV, "query")).find(q(BM1, "storage"))
    assert storage is not None, dump(res)
    return storage


def legacy_set(c, conferences):
    return c.iq("set", f"<query xmlns='{PRIV}'><storage xmlns='{BM1}'>{conferences}</storage>"
                       f"</query>")


def conference1(jid, name=None, autojoin=None, nick=None, password=None, extra=""):
    a = f" jid='{jid}'"
    if name is not None:
        a += f" name='{name}'"
    if autojoin is not None:
        a += f" autojoin='{autojoin}'"
    inner = (f"<nick>{nick}</nick>" if nick else "") + \
        (f"<password>{password}</password>" if password else "") + extra
    return f"<conference{a}>{inner}</conference>"


def legacy_conferences(storage):
    """{jid: (name, autojoin, nick, password)} of a XEP-0048 <storage/>."""
    out = {}
    for c in storage.findall(q(BM1, "conference")):
        nick = c.find(q(BM1, "nick"))
        pw = c.find(q(BM1, "password"))
        out[c.get("jid")] = (c.get("name"), c.get("autojoin"),
                             None if nick is None else nick.text,
                             None if pw is None else pw.text)
    return out


def pep_bookmarks(c):
    """{id: conference element} of the XEP-0402 node, in item order."""
    res = ok(items(c, BM2))
    its = res.find(q(PS, "pubsub")).find(q(PS, "items"))
    return {i.get("id"): i.find(q(BM2, "conference")) for i in its.findall(q(PS, "item"))}


@pytest.fixture
def pool(im_server):
    p = im.IMPool(im_server)
    yield p
    p.close()


def test_compat_feature_on_account(pool):
    """XEP-0402 §5.3: the account announces urn:xmpp:bookmarks:1#compat."""
    a = pool.client("alice")
    res = ok(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=A))
    feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))}
    assert BM2 + "#compat" in feats, feats


def test_node_gets_required_config(pool):
    """XEP-0402 §3: published without publish-options, the node is still private (whitelist),
    keeps every bookmark (max) and never sends the last one; a contact may not read it."""
    a = pep_client(pool, "alice")
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    ok(add_bookmark(a, "room@muc.example", conference2(name="R"), options=None))
    res = ok(a.iq("get", f"<pubsub xmlns='{PSO}'><configure node='{BM2}'/></pubsub>"))
    x = res.find(q(PSO, "pubsub")).find(q(PSO, "configure")).find(q("jabber:x:data", "x"))
    values = {f.get("var"): (f.find(q("jabber:x:data", "value")).text or "") for f in x
              if f.find(q("jabber:x:data", "value")) is not None}
    assert values["pubsub#access_model"] == "whitelist", values
    assert values["pubsub#max_items"] == "max", values
    assert values["pubsub#send_last_published_item"] == "never", values
    assert values["pubsub#persist_items"] == "true", values
    res = items(b, BM2, to=A)
    assert pubsub_error(res) == ("not-allowed", "closed-node"), dump(res)
    # And the XEP's publish-options are met by it.
    ok(add_bookmark(a, "other@muc.example", conference2(name="O")))


def test_pep_bookmarks_read_through_private_xml(pool):
    """XEP-0402 §5.3.1: what a XEP-0402 client published, a XEP-0048 client reads from private
    XML: jid from the item id, name, autojoin, nick, password; no extensions."""
    a = pep_client(pool, "alice")
    ok(add_bookmark(a, "council@conference.underhill.org",
                    conference2(name="Council of Oberon", autojoin="true", nick="Puck",
                                extensions=EXT)))
    ok(add_bookmark(a, "orchard@conference.shakespeare.lit",
                    conference2(name="The Orchard", autojoin="0", password="Gl0b3")))
    storage = legacy_get(a)
    assert legacy_conferences(storage) == {
        "council@conference.underhill.org": ("Council of Oberon", "true", "Puck", None),
        "orchard@conference.shakespeare.lit": ("The Orchard", None, None, "Gl0b3"),
    }, dump(storage)
    assert [c.get("jid") for c in storage] == ["council@conference.underhill.org",
                                               "orchard@conference.shakespeare.lit"]
    assert storage.find(".//{urn:example:s}state") is None, dump(storage)
    # With slixmpp's XEP-0048 plugin over XEP-0049.
    for p in ("xep_0049", "xep_0048"):
        a.xmpp.register_plugin(p)
    got = a.pool.run(a.xmpp["xep_0048"].get_bookmarks(method="xep_0049"))
    confs = {str(c["jid"]): c for c in got["private"]["bookmarks"]["conferences"]}
    assert confs["council@conference.underhill.org"]["nick"] == "Puck"
    assert confs["council@conference.underhill.org"]["autojoin"] is True
    assert confs["orchard@conference.shakespeare.lit"]["password"] == "Gl0b3"


def test_private_xml_write_becomes_pep_items(pool):
    """XEP-0402 §5.3.2: a legacy set becomes one item per conference, with notifications to
    resources that want urn:xmpp:bookmarks:1 — for new and changed bookmarks, a retraction for
    removed ones, nothing for unchanged ones; extensions of a changed item are kept."""
    watcher = pep_client(pool, "alice", resource="modern", notify=[BM2])
    legacy = pep_client(pool, "alice", resource="legacy")
    ok(add_bookmark(watcher, "keep@muc.example", conference2(name="Keep", autojoin="1", nick="k",
                                                             extensions=EXT)))
    watcher.recv(notification(BM2))
    watcher.drain(0.2)
    ok(legacy_set(legacy, conference1("keep@muc.example", name="Keep", autojoin="true", nick="k") +
                  conference1("new@muc.example", name="New", autojoin="1", nick="n",
                              password="pw")))
    m = watcher.recv(notification(BM2))
    item = event_of(m).find(q(PSE, "items")).find(q(PSE, "item"))
    assert item.get("id") == "new@muc.example", dump(m)
    c = item.find(q(BM2, "conference"))
    assert (c.get("name"), c.get("autojoin")) == ("New", "true"), dump(m)
    assert c.find(q(BM2, "nick")).text == "n" and c.find(q(BM2, "password")).text == "pw"
    watcher.expect_silence(0.5, notification(BM2))  # "keep" did not change
    bm = pep_bookmarks(watcher)
    assert list(bm) == ["keep@muc.example", "new@muc.example"], bm
    assert bm["keep@muc.example"].find(q(BM2, "extensions")).find("{urn:example:s}state") \
        is not None
    # Change one (its extensions stay), drop the other.
    ok(legacy_set(legacy, conference1("keep@muc.example", name="Renamed", nick="k")))
    got = {}
    for _ in range(2):
        ev = event_of(watcher.recv(notification(BM2))).find(q(PSE, "items"))
        for child in ev:
            got[child.tag.split("}")[1]] = (child.get("id"), child)
    assert got["retract"][0] == "new@muc.example", got
    assert got["item"][0] == "keep@muc.example", got
    changed = got["item"][1].find(q(BM2, "conference"))
    assert changed.get("name") == "Renamed", dump(changed)
    assert changed.get("autojoin") is None, dump(changed)
    ext = changed.find(q(BM2, "extensions"))
    assert ext is not None and ext.find("{urn:example:s}state") is not None, dump(changed)
    bm = pep_bookmarks(watcher)
    assert list(bm) == ["keep@muc.example"], bm


def test_slixmpp_legacy_set(pool):
    """slixmpp's XEP-0048 plugin storing through XEP-0049 fills the XEP-0402 node."""
    a = pep_client(pool, "alice")
    for p in ("xep_0049", "xep_0048"):
        a.xmpp.register_plugin(p)
    from slixmpp.plugins.xep_0048 import Bookmarks
    bm = Bookmarks()
    bm.add_conference("slix@muc.example", "nicky", name="Slix", autojoin=True)
    a.pool.run(a.xmpp["xep_0048"].set_bookmarks(bm, method="xep_0049"))
    got = pep_bookmarks(a)
    c = got["slix@muc.example"]
    assert c.get("name") == "Slix" and c.get("autojoin") == "true", dump(c)
    assert c.find(q(BM2, "nick")).text == "nicky", dump(c)
    # The node a legacy write made is private too (XEP-0411 §5), even to a contact.
    b = pep_client(pool, "bob")
    subscribe_both(a, b)
    res = items(b, BM2, to=A)
    assert pubsub_error(res) == ("not-allowed", "closed-node"), dump(res)


def test_legacy_errors_and_other_namespaces(pool):
    """A conference without a usable jid refuses the whole set (not-acceptable) and changes
    nothing; private XML of other namespaces is still the private storage module's."""
    a = pep_client(pool, "alice")
    ok(legacy_set(a, conference1("a@muc.example", name="A")))
    res = legacy_set(a, conference1("b@muc.example") + "<conference name='no jid'/>")
    assert error_of(res)[1] == "not-acceptable", dump(res)
    assert list(pep_bookmarks(a)) == ["a@muc.example"]
    ok(a.iq("set", f"<query xmlns='{PRIV}'><prefs xmlns='urn:example:prefs'>x</prefs></query>"))
    res = ok(a.iq("get", f"<query xmlns='{PRIV}'><prefs xmlns='urn:example:prefs'/></query>"))
    prefs = res.find(q(PRIV, "query")).find(q("urn:example:prefs", "prefs"))
    assert prefs is not None and prefs.text == "x", dump(res)


def test_open_node_is_not_converted(pool):
    """XEP-0411 §5: when the owner made the node readable by others, private XML is not
    mixed with it: legacy requests go to plain private storage."""
    a = pep_client(pool, "alice")
    ok(add_bookmark(a, "pub@muc.example", conference2(name="Public"), options=None))
    cfg = form(PS + "#node_config", access_model="presence")
    ok(a.iq("set", f"<pubsub xmlns='{PSO}'><configure node='{BM2}'>{cfg}</configure></pubsub>"))
    assert legacy_conferences(legacy_get(a)) == {}
    ok(legacy_set(a, conference1("priv@muc.example", name="Private")))
    assert list(pep_bookmarks(a)) == ["pub@muc.example"]
    assert list(legacy_conferences(legacy_get(a))) == ["priv@muc.example"]


@pytest.mark.parametrize("storage", ["sqlite", "files"])
def test_bookmarks_survive_restart(make_im, storage):
    srv = make_im(storage=storage)
    pool = im.IMPool(srv)
    try:
        a = pep_client(pool, "alice")
        ok(legacy_set(a, conference1("one@muc.example", name="One", autojoin="true")))
        ok(add_bookmark(a, "two@muc.example", conference2(name="Two", nick="t")))
    finally:
        pool.close()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pep_client(pool, "alice")
        assert legacy_conferences(legacy_get(a)) == {
            "one@muc.example": ("One", "true", None, None),
            "two@muc.example": ("Two", None, "t", None),
        }
        assert list(pep_bookmarks(a)) == ["one@muc.example", "two@muc.example"]
    finally:
        pool.close()


def test_module_disabled_then_enabled(make_im):
    """[sm] disable = bookmarks: no #compat feature; private XML bookmarks are plain private
    data again, and the XEP-0402 node is untouched by them. Switched on again, the first
    legacy read moves what private XML holds into the node (XEP-0411 §4)."""
    srv = make_im(sm_disable=("bookmarks",))
    pool = im.IMPool(srv)
    try:
        a = pep_client(pool, "alice")
        res = ok(a.iq("get", f"<query xmlns='{NS_DISCO_INFO}'/>", to=A))
        feats = {f.get("var") for f in res.find(q(NS_DISCO_INFO, "query"))}
        assert BM2 + "#compat" not in feats and PS + "#publish" in feats, feats
        ok(legacy_set(a, conference1("old@muc.example", name="Old", autojoin="1", nick="o")))
        assert list(legacy_conferences(legacy_get(a))) == ["old@muc.example"]
        assert pubsub_error(items(a, BM2)) == ("item-not-found", None)
    finally:
        pool.close()
    srv.opts["sm_disable"] = ()
    srv.write_config()
    srv.restart()
    pool = im.IMPool(srv)
    try:
        a = pep_client(pool, "alice")
        assert legacy_conferences(legacy_get(a)) == {"old@muc.example": ("Old", "true", "o", None)}
        c = pep_bookmarks(a)["old@muc.example"]
        assert c.get("name") == "Old" and c.get("autojoin") == "true", dump(c)
    finally:
        pool.close()


def test_legacy_get_from_a_session_that_leaves(make_im):
    """The first legacy read waits for the store (a look for older private XML bookmarks);
    the session that asked may be gone when it answers, and with it the last thing holding the
    user in memory: answering it must not free the user under the module (ASan checks at
    teardown). Last activity is off: its write at the end of the session would hold the user."""
    im_server = make_im(sm_disable=("last",))
    for i in range(5):
        r = im.RawClient(im_server, name=f"leaver-{i}")
        r.login("alice", resource=f"r{i}")
        r.send(f"<iq type='get' id='bm{i}'><query xmlns='{PRIV}'><storage xmlns='{BM1}'/>"
               f"</query></iq></stream:stream>")
        r.close()
    pool = im.IMPool(im_server)
    try:
        a = pep_client(pool, "alice")
        assert legacy_conferences(legacy_get(a)) == {}
    finally:
        pool.close()
