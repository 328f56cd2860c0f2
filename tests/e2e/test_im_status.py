# SPDX-License-Identifier: MIT
"""`parleyctl status` (Parley issue 7): the router's routes and links, and each component's
counts, asked through the router as a control component ([component] control = yes), in
every topology; a client asking for the counts gets <forbidden/>; no control component, a
wrong secret or no router is exit 1 with a message."""

import json
import os
import re
import secrets

import pytest

from harness import dump
from im import C2S_NAME, CONTROL_NAME, DOMAIN, MUC_DOMAIN, NS_STANZAS, q, skip_prosody
import muc_util
from muc_util import instant_room

pytestmark = [pytest.mark.slixmpp,
              skip_prosody("parleyctl status asks Parley's own router and components")]

NS_STATUS = "urn:parley:status"


def status_json(srv, *extra):
    r = srv.parleyctl("--timeout", "5", "--json", "status", *extra)
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr}"
    return json.loads(r.stdout)


def links_by_name(st):
    return {name: link for link in st["links"] for name in link["names"]}


def test_status_routes_and_counts(make_im):
    """Two users online and a room with one occupant: the router lists every component's
    route, the sm counts 2 sessions, the muc 1 room with 1 occupant; a second call shows
    the stanza counters grown."""
    srv = make_im(muc=True)
    pool = muc_util.im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        pool.client("bob", available=True)
        instant_room(a, muc_util.room_jid("ops"), "al")

        st = status_json(srv)
        names = links_by_name(st)
        for name in (DOMAIN, C2S_NAME, MUC_DOMAIN, CONTROL_NAME):
            assert name in names, f"no route for {name}: {st['links']}"
        kind = "in-process" if srv.topology == "all" else "stream"
        for name in (DOMAIN, C2S_NAME, MUC_DOMAIN):
            link = names[name]
            assert link["kind"] == kind, link
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", link["since"]), link
            assert link["in"] > 0 and link["out"] > 0, link
            assert (link["peer"] != "") == (kind == "stream"), link
        ctl = names[CONTROL_NAME]
        assert ctl["kind"] == "stream" and ctl["peer"].startswith("127.0.0.1:"), ctl
        assert st["router"]["links"] == len(st["links"]), st["router"]
        assert st["router"]["routed"] > 0, st["router"]

        comps = st["components"]
        assert set(comps) == {DOMAIN, C2S_NAME, MUC_DOMAIN}, comps
        sm = comps[DOMAIN]
        assert sm["sessions"] == 2 and sm["users-online"] == 2, sm
        assert sm["sessions-available"] == 2, sm
        assert sm["stanzas-in"] > 0 and sm["stanzas-out"] > 0, sm
        c2s = comps[C2S_NAME]
        assert c2s["connections"] == 2 and c2s["bound"] == 2, c2s
        assert c2s["authenticated"] == 2 and c2s["tls"] == 2, c2s
        muc = comps[MUC_DOMAIN]
        assert muc["rooms"] == 1 and muc["occupants"] == 1, muc
        assert muc["rooms-persistent"] == 0 and muc["rooms-locked"] == 0, muc

        # Traffic between the calls (and the first call's own queries) makes the counters grow.
        a.message(f"bob@{DOMAIN}", "hi", id="between")
        st2 = status_json(srv)
        assert st2["router"]["routed"] > st["router"]["routed"], (st["router"], st2["router"])
        sm2 = st2["components"][DOMAIN]
        assert sm2["stanzas-in"] > sm["stanzas-in"], (sm, sm2)
        assert sm2["stanzas-out"] > sm["stanzas-out"], (sm, sm2)
        assert links_by_name(st2)[DOMAIN]["in"] > names[DOMAIN]["in"]

        # The table: routes, then each component's counts.
        r = srv.parleyctl("--timeout", "5", "status")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0].startswith("router 127.0.0.1:"), r.stdout
        for name in (DOMAIN, C2S_NAME, MUC_DOMAIN, CONTROL_NAME):
            assert any(line.split()[:1] == [name] for line in lines), r.stdout
        assert re.search(rf"^{re.escape(DOMAIN)}\n(  .*\n)*  sessions +2\n", r.stdout, re.M), \
            r.stdout
        assert re.search(rf"^{re.escape(MUC_DOMAIN)}\n(  .*\n)*  occupants +1\n", r.stdout,
                         re.M), r.stdout
    finally:
        pool.close()


def test_client_gets_forbidden(make_im):
    """A user asking the sm, the c2s or the muc for their counts gets <forbidden/>, no counts."""
    srv = make_im(muc=True)
    pool = muc_util.im.IMPool(srv)
    try:
        a = pool.client("alice", available=True)
        for to in (DOMAIN, C2S_NAME, MUC_DOMAIN):
            res = a.iq("get", f"<status xmlns='{NS_STATUS}'/>", to=to)
            assert res.get("type") == "error", dump(res)
            err = res.find(q("jabber:client", "error"))
            assert err is not None and err.get("type") == "auth", dump(res)
            assert err.find(q(NS_STANZAS, "forbidden")) is not None, dump(res)
            assert res.find(f".//{q(NS_STATUS, 'count')}") is None, dump(res)
    finally:
        pool.close()


def test_no_control_component(make_im):
    srv = make_im(control=False)
    r = srv.parleyctl("--timeout", "2", "status")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "control = yes" in r.stderr, r.stderr
    assert r.stdout == ""


def test_wrong_secret(make_im):
    """The config parleyctl reads has another secret than the router's: exit 1, clear message."""
    srv = make_im()
    with open(srv.conf_path, encoding="utf-8") as f:
        text = f.read()
    other = os.path.join(srv.workdir, "secrets", "parleyctl-wrong")
    with open(other, "w", encoding="utf-8") as f:
        f.write(secrets.token_hex(16) + "\n")
    wrong = os.path.join(srv.workdir, "parley-wrong.conf")
    with open(wrong, "w", encoding="utf-8") as f:
        f.write(text.replace("secret_file = secrets/parleyctl\n",
                             "secret_file = secrets/parleyctl-wrong\n"))
    r = srv.parleyctl("--timeout", "3", "status", conf=wrong)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "refused the handshake" in r.stderr and CONTROL_NAME in r.stderr, r.stderr


def test_router_unreachable(make_im):
    srv = make_im(start=False)
    r = srv.parleyctl("--timeout", "2", "status")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert "cannot reach the router" in r.stderr, r.stderr
