# SPDX-License-Identifier: MIT
"""SCRAM-*-PLUS clients for the channel-binding tests (test_im_cbind.py).

Python's ssl module gives only tls-unique (SSLSocket.get_channel_binding) and lacks the
exporter of RFC 9266 (SSL_export_keying_material), so these clients run TLS through
pyOpenSSL (Debian's python3-openssl), which has both, over the socket the raw client opened.

- TLSSocket: a pyOpenSSL client connection with the socket module's timeout behaviour, so
  that im.RawClient's reading and writing work unchanged over it.
- channel_binding(conn, type): the client's view of the binding data (RFC 5929, RFC 9266).
- PlusClient: im.RawClient over TLSSocket (TLS 1.2 or 1.3, with or without the extended
  master secret); its SCRAM is im.Scram, checked against the RFC test vectors.
- aiosasl_auth: the same exchanges done by aiosasl (Debian's python3-aiosasl), an
  independent SCRAM and SCRAM-PLUS implementation, with its own tls-unique and
  tls-server-end-point code; for tls-exporter, which aiosasl 0.5 lacks, TLSExporter gives
  it the exporter value.
"""

import asyncio
import base64
import hashlib
import select
import socket
import time

import aiosasl
import aiosasl.channel_binding
from cryptography.hazmat.primitives.serialization import Encoding
from OpenSSL import SSL
from OpenSSL._util import lib as openssl_lib

import im
from harness import dump, local
from im import DOMAIN, NS_SASL, q

NS_SASL_CB = "urn:xmpp:sasl-cb:0"
TLS_UNIQUE, TLS_EXPORTER, TLS_SERVER_END_POINT = "tls-unique", "tls-exporter", \
    "tls-server-end-point"
CB_TYPES = (TLS_UNIQUE, TLS_EXPORTER, TLS_SERVER_END_POINT)
TLS12, TLS13 = SSL.TLS1_2_VERSION, SSL.TLS1_3_VERSION

# RFC 9266 §2: the exporter's label and length, with no context value.
EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
EXPORTER_LEN = 32
# OpenSSL 3's SSL_OP_NO_EXTENDED_MASTER_SECRET (RFC 7627); pyOpenSSL 23 has no name for it.
OP_NO_EXTENDED_MASTER_SECRET = 0x1

MECH = {("sha1", False): "SCRAM-SHA-1", ("sha256", False): "SCRAM-SHA-256",
        ("sha1", True): "SCRAM-SHA-1-PLUS", ("sha256", True): "SCRAM-SHA-256-PLUS"}


def mech_name(hash_name, plus):
    return MECH[(hash_name, plus)]


class TLSSocket:
    """A TLS client connection (pyOpenSSL) that behaves like a socket with a timeout.

    recv() raises socket.timeout when nothing comes in time and returns b"" at the end of
    the stream; sendall() sends everything or raises. The certificate is not verified
    (self-signed, loopback only). session: a session (conn.get_session() of an earlier
    connection) to resume; without it, none is.
    """

    def __init__(self, sock, server_name=DOMAIN, max_version=None, ems=True, timeout=5.0,
                 session=None):
        ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
        ctx.set_verify(SSL.VERIFY_NONE, lambda *args: True)
        ctx.set_min_proto_version(TLS12)
        if max_version is not None:
            ctx.set_max_proto_version(max_version)
        if not ems:
            ctx.set_options(OP_NO_EXTENDED_MASTER_SECRET)
        self.sock = sock
        self.timeout = timeout
        sock.setblocking(False)
        self.conn = SSL.Connection(ctx, sock)
        self.conn.set_tlsext_host_name(server_name.encode())
        if session is not None:
            self.conn.set_session(session)
        self.conn.set_connect_state()
        self._io(self.conn.do_handshake)

    def _io(self, fn, *args):
        """Runs fn until it no longer wants to read or write, waiting at most the timeout."""
        deadline = time.monotonic() + (self.timeout if self.timeout is not None else 5.0)
        while True:
            try:
                return fn(*args)
            except SSL.WantReadError:
                wait = ([self.sock], [])
            except SSL.WantWriteError:
                wait = ([], [self.sock])
            left = deadline - time.monotonic()
            if left <= 0 or not any(select.select(*wait, [], left)[:2]):
                raise socket.timeout("TLS: nothing from the server in time")

    def settimeout(self, timeout):
        self.timeout = timeout

    def recv(self, n):
        try:
            return self._io(self.conn.recv, n)
        except (SSL.ZeroReturnError, SSL.SysCallError):
            return b""  # close_notify, or the TCP connection ended without one
        except SSL.Error as e:
            if "eof" in str(e).lower():
                return b""
            raise

    def sendall(self, data):
        view = memoryview(data)
        while view:
            n = self._io(self.conn.send, bytes(view[:16384]))
            view = view[n:]

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)

    def close(self):
        try:
            self.conn.shutdown()
        except SSL.Error:
            pass
        self.sock.close()


def session_reused(conn):
    """Whether the handshake resumed a session (pyOpenSSL 23 has no wrapper for this)."""
    return openssl_lib.SSL_session_reused(conn._ssl) == 1


def channel_binding(conn, cb_type):
    """The binding data of a client connection, as the client computes it (None: undefined).

    tls-unique (RFC 5929 §3.1): the first Finished message of the handshake, the client's in
    a full one and the server's in a resumed one; returned over TLS 1.3 too, where it is
    undefined, as a naive client would send it. tls-exporter (RFC 9266 §2).
    tls-server-end-point (RFC 5929 §4.1): the server certificate hashed with its signature's
    hash, SHA-256 for MD5 and SHA-1; undefined for a signature without a separate hash
    (Ed25519).
    """
    if cb_type == TLS_UNIQUE:
        return conn.get_peer_finished() if session_reused(conn) else conn.get_finished()
    if cb_type == TLS_EXPORTER:
        return conn.export_keying_material(EXPORTER_LABEL, EXPORTER_LEN)
    if cb_type == TLS_SERVER_END_POINT:
        cert = conn.get_peer_certificate().to_cryptography()
        h = cert.signature_hash_algorithm
        if h is None:
            return None
        name = "sha256" if h.name in ("md5", "sha1") else h.name
        return hashlib.new(name, cert.public_bytes(Encoding.DER)).digest()
    raise ValueError(cb_type)


class PlusClient(im.RawClient):
    """im.RawClient whose TLS is a TLSSocket: tls_max (TLS12, TLS13 or None for the highest),
    ems=False (no extended master secret, RFC 7627) and session (to resume) choose what the
    server sees."""

    def __init__(self, server, tls_port=False, timeout=5.0, name="plus-client", tls_max=None,
                 ems=True, session=None):
        super().__init__(server, tls_port=tls_port, timeout=timeout, name=name)
        self.tls_max, self.ems, self.session = tls_max, ems, session

    def _wrap(self):
        self.sock = TLSSocket(self.sock, DOMAIN, self.tls_max, self.ems, self.timeout,
                              self.session)
        self.tls = True

    @property
    def tls_conn(self):
        return self.sock.conn

    def tls_version(self):
        return self.tls_conn.get_protocol_version_name()

    def secure(self):
        """STARTTLS, or the stream on the direct TLS port; returns the features."""
        self.open()
        return self.features if self.direct_tls else self.starttls()

    def binding(self, cb_type):
        return channel_binding(self.tls_conn, cb_type)

    def cb_types(self, features=None):
        """The types of the XEP-0440 feature, in order (None when there is no such feature)."""
        f = self.features if features is None else features
        el = f.find(q(NS_SASL_CB, "sasl-channel-binding"))
        if el is None:
            return None
        return [c.get("type") for c in el]

    def auth_plus(self, user, hash_name, cb_type, data=None, password=None):
        """SCRAM-SHA-*-PLUS with p=cb_type and data (default: this connection's); returns
        <success/> (the server's signature checked) or <failure/>."""
        data = self.binding(cb_type) if data is None else data
        return self.auth_scram(user, self.password(user, password), hash_name,
                               mech=mech_name(hash_name, True),
                               gs2=f"p={cb_type},,".encode(), cb_data=data)

    def password(self, user, password=None):
        return self.server.users[user] if password is None else password


# ---------------------------------------------------------------------------
# aiosasl: an independent SCRAM(-PLUS) client over the raw client's stream


class TLSExporter(aiosasl.channel_binding.ChannelBindingProvider):
    """tls-exporter (RFC 9266) for aiosasl, which has providers for the other two types."""

    def __init__(self, conn):
        super().__init__()
        self._conn = conn

    @property
    def cb_name(self):
        return TLS_EXPORTER.encode()

    def extract_cb_data(self):
        return self._conn.export_keying_material(EXPORTER_LABEL, EXPORTER_LEN)


def aiosasl_provider(conn, cb_type):
    """aiosasl's own provider for tls-unique and tls-server-end-point, ours for tls-exporter."""
    if cb_type == TLS_UNIQUE:
        return aiosasl.channel_binding.TLSUnique(conn)
    if cb_type == TLS_SERVER_END_POINT:
        return aiosasl.channel_binding.TLSServerEndPoint(conn)
    return TLSExporter(conn)


class RawSASL(aiosasl.SASLInterface):
    """aiosasl's view of SASL (RFC 6120 §6.4) over a RawClient; keeps the last answer."""

    def __init__(self, client):
        super().__init__()
        self.client = client
        self.last = None

    def _answer(self):
        el = self.last = self.client.recv()
        data = base64.b64decode(el.text) if el.text else None
        kind = local(el.tag)
        if el.tag == q(NS_SASL, "challenge"):
            return aiosasl.SASLState.CHALLENGE, data
        if el.tag == q(NS_SASL, "success"):
            return aiosasl.SASLState.SUCCESS, data
        if el.tag == q(NS_SASL, "failure"):
            raise aiosasl.SASLFailure(self.client.sasl_failure(el), text=dump(el))
        raise AssertionError(f"unexpected answer to SASL ({kind}): {dump(el)}")

    async def initiate(self, mechanism, payload=None):
        self.client._sasl_auth(mechanism, payload or b"")
        return self._answer()

    async def respond(self, payload):
        self.client._sasl("response", payload)
        return self._answer()

    async def abort(self):
        self.client._sasl("abort")
        try:
            self._answer()
        except aiosasl.SASLFailure:
            pass
        return aiosasl.SASLState.FAILURE, None


def aiosasl_auth(client, user, mech, cb_type=None, after_plus=False, password=None):
    """Authenticates client with aiosasl's SCRAMPLUS (cb_type given) or SCRAM (after_plus:
    its 'y' flag, RFC 5802 §6), for exactly mechanism mech. Returns the server's last
    element: <success/> (aiosasl has checked the server's signature) or <failure/>."""
    password = client.password(user, password)

    async def creds():
        return user, password

    if cb_type is None:
        scram = aiosasl.SCRAM(creds, after_scram_plus=after_plus)
    else:
        scram = aiosasl.SCRAMPLUS(creds, aiosasl_provider(client.tls_conn, cb_type))
    token = scram.any_supported([mech])
    assert token is not None and token[0] == mech, f"aiosasl cannot do {mech}"
    intf = RawSASL(client)
    try:
        run_apart(scram.authenticate(aiosasl.SASLStateMachine(intf), token), client.timeout * 2)
    except aiosasl.SASLError:
        pass  # the <failure/> is in intf.last, for the test to look at
    return intf.last


def run_apart(aw, timeout=5.0):
    """Runs aw (bounded) on a loop of its own, leaving the thread's current loop (IMPool's)
    alone."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(asyncio.wait_for(aw, timeout))
    finally:
        loop.close()
