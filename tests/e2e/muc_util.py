# SPDX-License-Identifier: MIT
"""Helpers of the MUC suite (test_muc_*.py): joining rooms with raw stanzas, reading muc#user.

Every wait is bounded by the IMClient.recv timeout it is given.
"""

from xml.sax.saxutils import escape, quoteattr

import pytest

import im
from harness import dump, new_id
from im import MUC_DOMAIN, NS_CLIENT, match, q

NS_MUC = "http://jabber.org/protocol/muc"
NS_MUC_USER = "http://jabber.org/protocol/muc#user"
NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner"
NS_MUC_UNIQUE = "http://jabber.org/protocol/muc#unique"
NS_DATA = "jabber:x:data"
NS_SID = "urn:xmpp:sid:0"
NS_DELAY = "urn:xmpp:delay"
NS_PING = "urn:xmpp:ping"
NS_STANZAS = im.NS_STANZAS


def room_jid(name):
    return f"{name}@{MUC_DOMAIN}"


@pytest.fixture
def muc_server(make_im):
    """An IM server with the muc component (in `parleyd all`, or `parleyd muc` when split)."""
    return make_im(muc=True)


@pytest.fixture
def mclients(muc_server):
    """Factory: mclients('alice') -> a logged-in, available IMClient of the muc server."""
    pool = im.IMPool(muc_server)

    def make(user, resource=None, available=True):
        return pool.client(user, resource=resource, available=available)

    make.pool = pool
    yield make
    pool.close()


def muc_x(el):
    return el.find(q(NS_MUC_USER, "x"))


def codes(el):
    """The muc#user status codes of a presence or message, as a sorted list of ints."""
    x = muc_x(el)
    return sorted(int(s.get("code")) for s in x.findall(q(NS_MUC_USER, "status"))) \
        if x is not None else []


def item(el):
    """The muc#user <item/> attributes of a presence ({} if none)."""
    x = muc_x(el)
    it = x.find(q(NS_MUC_USER, "item")) if x is not None else None
    return dict(it.attrib) if it is not None else {}


def error_cond(el):
    """(type, condition, by) of a stanza error."""
    err = el.find(q(NS_CLIENT, "error"))
    assert err is not None, f"not an error: {dump(err if err is not None else el)}"
    conds = [c.tag.split("}")[1] for c in err if c.tag.startswith("{" + NS_STANZAS)]
    assert len(conds) == 1, dump(el)
    return err.get("type"), conds[0], err.get("by")


def presence_from(occupant, type=None):
    return match("presence", frm=occupant, type=type)


def send_join(c, room, nick, password=None, history=None, id=None, inner=""):
    """Sends a join presence (XEP-0045 §7.2) with <x xmlns=muc/>; returns its id."""
    id = id or new_id("join")
    x = ""
    if password is not None:
        x += f"<password>{escape(password)}</password>"
    if history is not None:
        attrs = "".join(f" {k}={quoteattr(str(v))}" for k, v in history.items())
        x += f"<history{attrs}/>"
    c.send_raw(f"<presence to={quoteattr(room + '/' + nick)} id={quoteattr(id)}>"
               f"<x xmlns='{NS_MUC}'>{x}</x>{inner}</presence>")
    return id


def join(c, room, nick, timeout=5.0, **kw):
    """Joins and waits for the self-presence (110); returns it. Fails on an error presence."""
    send_join(c, room, nick, **kw)
    el = c.recv(lambda e: e.tag == q(NS_CLIENT, "presence") and
                (e.get("from") or "").split("/")[0] == room and
                (e.get("type") == "error" or 110 in codes(e)), timeout)
    assert el.get("type") != "error", f"{c.jid}: join of {room} as {nick} failed: {dump(el)}"
    return el


def join_error(c, room, nick, timeout=5.0, **kw):
    """Tries to join; returns (type, condition, by) of the error presence it must get."""
    send_join(c, room, nick, **kw)
    el = c.recv(match("presence", frm=f"{room}/{nick}", type="error"), timeout)
    return error_cond(el)


def subject_of(c, room, timeout=5.0):
    """Waits for the subject message of a join (§7.2.16)."""
    return c.recv(lambda e: e.tag == q(NS_CLIENT, "message") and
                  (e.get("from") or "").split("/")[0] == room and
                  e.find(q(NS_CLIENT, "subject")) is not None and
                  e.find(q(NS_CLIENT, "body")) is None, timeout)


def instant_room(c, room, nick, timeout=5.0):
    """Creates an instant room (§10.1.2): join (201), then an empty submitted form."""
    self_pres = join(c, room, nick, timeout)
    assert 201 in codes(self_pres), f"room {room} already existed: {dump(self_pres)}"
    subject_of(c, room, timeout)
    res = c.iq("set", f"<query xmlns='{NS_MUC_OWNER}'><x xmlns='{NS_DATA}' type='submit'/>"
                      "</query>", to=room, timeout=timeout)
    assert res.get("type") == "result", dump(res)
    return self_pres


def enter(c, room, nick, timeout=5.0, **kw):
    """Joins an existing room and takes everything a join brings up to the subject."""
    el = join(c, room, nick, timeout, **kw)
    subject_of(c, room, timeout)
    return el


def form_xml(fields):
    """A submitted muc#roomconfig form: fields maps var -> value or list of values."""
    out = [f"<x xmlns='{NS_DATA}' type='submit'>",
           "<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value>"
           "</field>"]
    for var, v in fields.items():
        vals = v if isinstance(v, (list, tuple)) else [v]
        out.append(f"<field var={quoteattr(var)}>" +
                   "".join(f"<value>{escape(str(x))}</value>" for x in vals) + "</field>")
    out.append("</x>")
    return "".join(out)


def configure(c, room, fields, timeout=5.0):
    """Submits a configuration form; returns the iq answer."""
    return c.iq("set", f"<query xmlns='{NS_MUC_OWNER}'>{form_xml(fields)}</query>", to=room,
                timeout=timeout)


def groupchat(c, room, body, id=None, inner=""):
    return c.message(room, body, type="groupchat", id=id, inner=inner)
