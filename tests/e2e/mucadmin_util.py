# SPDX-License-Identifier: MIT
"""Helpers of the MUC moderation suite (test_muc_admin/owner/invite/register.py): muc#admin
items as raw XML, slixmpp's xep_0045 plugin on an IMClient, a room with several occupants.

Every wait is bounded by the timeout it is given (IMClient.recv, IMPool.run)."""

from xml.sax.saxutils import escape, quoteattr

import pytest

import im
from harness import dump
from im import NS_CLIENT, match, q
from muc_util import (NS_MUC_USER, codes, configure, enter, error_cond, instant_room,
                      room_jid)

NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
NS_REGISTER = "jabber:iq:register"
NS_REQUEST = "http://jabber.org/protocol/muc#request"
USERS4 = ("alice", "bob", "carol", "dave")


@pytest.fixture
def mserver4(make_im):
    """The muc server with four users (alice, bob, carol, dave)."""
    import secrets
    return make_im(muc=True, users={u: f"{u}-{secrets.token_hex(6)}" for u in USERS4})


@pytest.fixture
def mc(mserver4):
    """Factory: mc('alice', resource=None) -> a logged-in, available IMClient."""
    pool = im.IMPool(mserver4)

    def make(user, resource=None, available=True):
        return pool.client(user, resource=resource, available=available)

    make.pool = pool
    yield make
    pool.close()


def bare(user):
    return f"{user}@{im.DOMAIN}"


def plugin(c):
    """slixmpp's XEP-0045 plugin on the client (registered on first use)."""
    if "xep_0045" not in c.xmpp.plugin:
        c.xmpp.register_plugin("xep_0045")
    return c.xmpp.plugin["xep_0045"]


def plugin_call(c, coro, timeout=5.0):
    """Runs a plugin coroutine: its result, or ('error', type, condition) for an IqError."""
    from slixmpp.exceptions import IqError
    try:
        return c.pool.run(coro, timeout)
    except IqError as e:
        return ("error", e.etype, e.condition)


def item_xml(reason=None, **attrs):
    a = "".join(f" {k}={quoteattr(v)}" for k, v in attrs.items())
    if reason is None:
        return f"<item{a}/>"
    return f"<item{a}><reason>{escape(reason)}</reason></item>"


def admin_set(c, room, *items, timeout=5.0):
    """A muc#admin set with the given <item/>s (XML strings); returns the iq answer."""
    return c.iq("set", f"<query xmlns='{NS_MUC_ADMIN}'>{''.join(items)}</query>", to=room,
                timeout=timeout)


def admin_get(c, room, timeout=5.0, **attrs):
    return c.iq("get", f"<query xmlns='{NS_MUC_ADMIN}'>{item_xml(**attrs)}</query>", to=room,
                timeout=timeout)


def admin_error(c, room, *items):
    """(type, condition, by) of the error a muc#admin set must get."""
    res = admin_set(c, room, *items)
    assert res.get("type") == "error", f"expected an error: {dump(res)}"
    return error_cond(res)


def ok(res):
    assert res.get("type") == "result", dump(res)
    return res


def list_items(res):
    """The <item/>s of a muc#admin list answer, as attribute dicts (reason as 'reason')."""
    ok(res)
    out = []
    for it in res.find(q(NS_MUC_ADMIN, "query")).findall(q(NS_MUC_ADMIN, "item")):
        d = dict(it.attrib)
        r = it.find(q(NS_MUC_ADMIN, "reason"))
        if r is not None:
            d["reason"] = r.text or ""
        out.append(d)
    return out


def user_item(el):
    """The muc#user <item/> of a presence with its actor nick and reason folded in."""
    x = el.find(q(NS_MUC_USER, "x"))
    it = x.find(q(NS_MUC_USER, "item")) if x is not None else None
    if it is None:
        return {}
    d = dict(it.attrib)
    a = it.find(q(NS_MUC_USER, "actor"))
    if a is not None:
        d["actor"] = a.get("nick")
    r = it.find(q(NS_MUC_USER, "reason"))
    if r is not None:
        d["reason"] = r.text or ""
    return d


def pres(frm, type=None):
    return match("presence", frm=frm, type=type)


def gone(frm):
    return match("presence", frm=frm, type="unavailable")


def room_with(owner, others, name, config=None):
    """owner creates an instant room (then configures it), the others enter with their user
    name as nick; everyone's pending stanzas are dropped. Returns the room JID."""
    r = room_jid(name)
    instant_room(owner, r, owner.user)
    if config:
        ok(configure(owner, r, config))
    password = (config or {}).get("muc#roomconfig_roomsecret")
    for c in others:
        enter(c, r, c.user, password=password)
    for c in (owner, *others):
        c.drain(settle=0.2)
    return r


def body_msg(c, room, body, id=None):
    return c.message(room, body, type="groupchat", id=id)


def message_error(c, id):
    """(type, condition, by) of the error message answering message id."""
    el = c.recv(match("message", id=id, type="error"))
    return error_cond(el)


def only_codes(el):
    return codes(el)


__all__ = ["NS_CLIENT", "match", "q", "dump"]
