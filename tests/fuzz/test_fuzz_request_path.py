"""Fuzz target: hostile request bytes through the proxy's request path, without sockets.

Client bytes (real header lines mixed with generated ones: every spelling of the credential, identity,
origin and framing headers, ``Connection`` lists naming them, duplicate and odd framing, pipelined requests,
smuggled requests inside bodies, upgrades), cut at random points, go through ``RequestReader``; every
request head it yields goes through ``clientip``, ``audit_id_for`` and both ``Rewriter`` paths, and the bytes
the proxy would send are read back by h11 playing kube-apiserver. What must hold, whatever the client sent:

- the reader yields events or refuses with ``ClientProtocolError``, nothing else;
- impersonating, the only ``Impersonate-*`` headers are the verified user's, and no spelling of
  ``Authorization``, ``X-Remote-*`` or ``Audit-ID`` is the client's; passing through, ``Authorization`` and
  ``Impersonate-*`` are exactly the client's own, under their one lower-case spelling;
- ``X-Forwarded-For`` and ``X-Real-IP`` hold only IP addresses, as Go's ``net.ParseIP`` reads them;
- exactly one framing header, for exactly the body the reader delivered (or none without a body);
- kube-apiserver reads exactly as many requests as the reader yielded, with their methods, targets and
  bodies, and in each of them only the identity and credential the proxy decided.
"""

from __future__ import annotations

import itertools
import re
import socket
from dataclasses import dataclass, field
from typing import Final

import h11
from hypothesis import strategies as st

from kube_oidc_proxy.audit.event import audit_id_for
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.clientip import NO_TRUSTED_PROXIES, Origin, TrustedProxies, parse_networks
from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.events import Body, MessageEnd, RequestHead, Upgraded
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.http1.serialize import LAST_CHUNK, chunk, request_head
from kube_oidc_proxy.impersonation import Rewriter
from tests.fuzz.runner import fuzz

PEER: Final = "10.0.0.7"
UPSTREAM_HOST: Final = b"kube-apiserver.example:6443"
PROXY_CREDENTIAL: Final = b"Bearer proxy-service-account-token"
USER: Final = UserInfo("alice@example.com", uid="u-1", groups=("dev", "ops"), extra={"acme.com/team": ("blue",)})
STATIC_EXTRA: Final = {"scopes": ("openid", "groups")}
# What the proxy sends for USER, written out here rather than computed by the code under test.
USER_IDENTITY: Final = [
    (b"impersonate-user", b"alice@example.com"),
    (b"impersonate-uid", b"u-1"),
    (b"impersonate-group", b"dev"),
    (b"impersonate-group", b"ops"),
    (b"impersonate-group", b"system:authenticated"),
    (b"impersonate-extra-acme.com%2Fteam", b"blue"),
]
STATIC_IDENTITY: Final = [(b"impersonate-extra-scopes", b"openid"), (b"impersonate-extra-scopes", b"groups")]
WS_TOKEN_PREFIX: Final = b"base64url.bearer.authorization.k8s.io."
HOP_BY_HOP: Final = frozenset({b"keep-alive", b"proxy-connection", b"te", b"trailer", b"expect"})
PROXY_SET: Final = frozenset({b"host", b"x-forwarded-for", b"x-real-ip", b"content-length", b"transfer-encoding"})
REFUSAL_CODES: Final = frozenset({400, 405, 431, 501, 505})

# -- the client's bytes ---------------------------------------------------------------------------------------

# Headers that carry a credential, an identity or an origin: any client spelling of them is the attacker's.
IDENTITY_NAMES: Final = [
    "Authorization",
    "Proxy-Authorization",
    "Impersonate-User",
    "Impersonate-Group",
    "Impersonate-Uid",
    "Impersonate-Extra-Scopes",
    "Impersonate-Extra-acme.com%2Fteam",
    "Impersonate-Extra-",
    "Impersonate-Other",
    "X-Remote-User",
    "X-Remote-Group",
    "X-Remote-Extra-Scopes",
    "Audit-ID",
    "X-Forwarded-For",
    "X-Real-IP",
    "Sec-WebSocket-Protocol",
]
FRAMING_NAMES: Final = ["Host", "Content-Length", "Transfer-Encoding"]
FRAMING_ALIASES: Final = ["Content_Length", "Transfer_Encoding", "Content-Length_", "Host_"]  # not framing to llhttp
HOP_NAMES: Final = ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade", "Expect"]
OPTIONS: Final = ["close", "keep-alive", "Upgrade", "x-custom", "TE", "Keep-Alive", ""]
VALUES: Final = [
    b"Bearer forged-token",
    b"Basic YWRtaW46YWRtaW4=",
    b"system:admin",
    b"system:masters",
    b" system:masters",
    b"admin\t",
    b"0",
    b"5",
    b"007",
    b"chunked",
    b"gzip, chunked",
    b"identity",
    b"evil.example",
    b"close",
    b"Upgrade",
    b"websocket",
    b"SPDY/3.1",
    b"h2c",
    b"100-continue",
    b"trailers",
    WS_TOKEN_PREFIX + b"Zm9yZ2Vk, v4.channel.k8s.io",
    b"forged-audit-id",
    b"0e4e7bd8-4ef6-4bb4-9b8f-bd1e6e8b1c2a",
    b"",
    b"a,b",
    b"\x80\xff",
]
# Header value bytes llhttp accepts (visible ASCII, SP, HTAB, obs-text), and now and then one it refuses.
VALUE_BYTES: Final = bytes([9, *range(0x20, 0x7F), *range(0x80, 0x100)])
ORDINARY_LINES: Final = [
    b"Accept: application/json\r\n",
    b"User-Agent: kubectl/v1.33\r\n",
    b"X-Stream-Protocol-Version: v4.channel.k8s.io\r\n",
    b"X-Stream-Protocol-Version: v5.channel.k8s.io\r\n",
    b"Content-Type: application/json\r\n",
]
NOISE: Final = [b" folded\r\n", b"\n", b"\r", b"\x00", b":", b" ", b"X-A : v\r\n", b"\r\n", b"X-A: \x7f\r\n"]
SEPARATORS: Final = [b": ", b":", b":\t", b":  "]
METHODS: Final = [b"GET", b"POST", b"PUT", b"PATCH", b"DELETE", b"HEAD", b"OPTIONS"]
ODD_METHODS: Final = [b"CONNECT", b"PROPFIND", b"get", b"G\x00T"]
TARGETS: Final = [b"/", b"/api/v1/namespaces/default/pods?watch=1", b"/api/v1/secrets"]
ODD_TARGETS: Final = [b"*", b"http://evil/x", b"evil:443", b"/a b", b""]
PATH_CHARS: Final = "abcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/%?"
VERSIONS: Final = [b"HTTP/1.1"]
ODD_VERSIONS: Final = [b"HTTP/1.0", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1"]
SMUGGLED: Final = b"GET /api/v1/secrets HTTP/1.1\r\nHost: x\r\nImpersonate-User: system:admin\r\n\r\n"
ZONE_CHARS: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != ",")  # after the % of an IPv6 zone

# Strategies are built once, here: building one inside a draw costs more than the draw.
MASKS: Final = st.integers(min_value=0, max_value=2**40 - 1)
PERCENT: Final = st.integers(min_value=0, max_value=99)
PLACES: Final = st.integers(min_value=0, max_value=10**6)  # an index, modulo the length at hand


def spellings(names: list[str], *, underscores: bool = True) -> st.SearchStrategy[bytes]:
    """A name as any client could write it: each letter in either case, each ``-`` possibly ``_``."""

    def spell(name: str, flips: int, underscores: int) -> bytes:
        out = []
        for i, char in enumerate(name):
            if char == "-" and underscores >> i & 1:
                char = "_"
            elif flips >> i & 1:
                char = char.swapcase()
            out.append(char)
        return "".join(out).encode()

    return st.builds(spell, st.sampled_from(names), MASKS, MASKS if underscores else st.just(0))


def mostly(common: list[bytes], odd: list[bytes]) -> st.SearchStrategy[bytes]:
    """One of ``common``, or now and then one of ``odd``: a request that is refused early tests little."""
    return st.builds(lambda n, c, o: o if n >= 95 else c, PERCENT, st.sampled_from(common), st.sampled_from(odd))


# Addresses as a load balancer might pass them on, and as an attacker would forge them: IPv6 with a zone,
# ports, leading zeros, delimiters of the log format.
address_atoms = st.one_of(
    st.ip_addresses().map(lambda a: str(a).encode()),
    st.sampled_from([b"10.0.0.7", b"1.2.3.4", b"01.2.3.4", b"1.2.3.4:80", b"::1", b"[::1]", b"unknown"]),
    st.tuples(st.sampled_from([b"::1", b"fe80::1"]), st.text(ZONE_CHARS, min_size=1, max_size=8)).map(
        lambda t: t[0] + b"%" + t[1].encode()
    ),
)
address_lists = st.lists(address_atoms, min_size=1, max_size=3).map(b", ".join)
header_values = st.one_of(
    st.sampled_from(VALUES),
    address_lists,
    st.binary(max_size=12).map(lambda v: bytes(b for b in v if b in VALUE_BYTES)),
)
identity_names = spellings(IDENTITY_NAMES)
origin_names = spellings(["X-Forwarded-For", "X-Real-IP"], underscores=False)
connection_options = st.lists(st.one_of(st.sampled_from(OPTIONS).map(str.encode), spellings(HOP_NAMES)), max_size=3)
owned_names = spellings(IDENTITY_NAMES + FRAMING_NAMES)
connection_names = spellings(["Connection"])
hop_names = spellings(HOP_NAMES)
alias_names = spellings(FRAMING_ALIASES)
framing_names = spellings(FRAMING_NAMES)
ordinary_lines = st.sampled_from(ORDINARY_LINES)
values = st.sampled_from(VALUES)
separators = st.sampled_from(SEPARATORS)
noise = st.sampled_from(NOISE)
odd_values = st.binary(max_size=6)


@st.composite
def header_lines(draw: st.DrawFn) -> bytes:
    """One header line: mostly ones a parser accepts, so that requests get through to the rewriter."""
    kind = draw(PERCENT)
    if kind < 40:
        return draw(identity_names) + b": " + draw(header_values) + b"\r\n"
    if kind < 50:
        return draw(origin_names) + b": " + draw(address_lists) + b"\r\n"
    if kind < 70:
        return draw(ordinary_lines)
    if kind < 80:
        options = draw(connection_options)
        if draw(PERCENT) < 25:  # naming a header the proxy owns: refused
            options.append(draw(owned_names))
        return draw(connection_names) + b": " + b", ".join(options) + b"\r\n"
    if kind < 88:
        return draw(hop_names) + b": " + draw(values) + b"\r\n"
    if kind < 92:
        return draw(alias_names) + draw(separators) + draw(header_values) + b"\r\n"
    if kind < 94:
        return draw(framing_names) + draw(separators) + draw(header_values) + b"\r\n"
    if kind < 97:
        return draw(identity_names) + b": " + draw(odd_values) + b"\r\n"
    return draw(noise)


lines_of_a_head = st.lists(header_lines(), max_size=8)
trailer_lines = st.lists(header_lines(), max_size=2)
bodies = st.one_of(st.binary(max_size=40), st.just(SMUGGLED), st.binary(max_size=8).map(lambda b: b + SMUGGLED))
chunk_sizes = st.sampled_from([b"%x", b"%X", b"0%x"])
chunk_extensions = st.sampled_from([b"", b";ext=1", b";x"])
methods = mostly(METHODS, ODD_METHODS)
targets = st.one_of(mostly(TARGETS, ODD_TARGETS), st.text(PATH_CHARS, max_size=20).map(lambda p: b"/" + p.encode()))
versions = mostly(VERSIONS, ODD_VERSIONS)
hosts = st.builds(lambda n, odd: odd if n >= 95 else [b"Host"], PERCENT, st.lists(spellings(["Host"]), max_size=2))
body_kinds = st.sampled_from(
    ["none", "none", "none", "length", "length", "chunked", "chunked", "wrong-length", "upgrade"]
)
upgrade_protocols = st.sampled_from([b"websocket", b"SPDY/3.1", b"spdy/3.1", b"h2c"])
wrong_lengths = st.integers(min_value=0, max_value=50)


@st.composite
def chunked_bodies(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` in chunks of random sizes, with extensions, upper-case hex and trailer lines now and then."""
    cuts = sorted(p % (len(data) + 1) for p in draw(st.lists(PLACES, max_size=3)))
    out = []
    for a, b in itertools.pairwise([0, *cuts, len(data)]):
        if a != b:
            out.append(draw(chunk_sizes) % (b - a) + draw(chunk_extensions) + b"\r\n" + data[a:b] + b"\r\n")
    return b"".join(out) + b"0\r\n" + b"".join(draw(trailer_lines)) + b"\r\n"


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    request_line = draw(methods) + b" " + draw(targets) + b" " + draw(versions) + b"\r\n"
    lines = draw(lines_of_a_head)
    framing: list[bytes] = []
    kind = draw(body_kinds)
    data = draw(bodies) if kind != "none" else b""
    if kind == "length":
        framing = [b"Content-Length: %d\r\n" % len(data)]
    elif kind == "wrong-length":
        framing = [b"Content-Length: %d\r\n" % draw(wrong_lengths)]
    elif kind == "chunked":
        framing = [b"Transfer-Encoding: chunked\r\n"]
        data = draw(chunked_bodies(data))
    elif kind == "upgrade":
        framing = [b"Connection: Upgrade\r\n", b"Upgrade: " + draw(upgrade_protocols) + b"\r\n"]
    for line in [*(h + b": kube.example\r\n" for h in draw(hosts)), *framing]:
        lines.insert(draw(PLACES) % (len(lines) + 1), line)
    return request_line + b"".join(lines) + b"\r\n" + data


pipelined = st.lists(messages(), min_size=1, max_size=4)
corruption = st.binary(min_size=1, max_size=3)


@st.composite
def connections(draw: st.DrawFn) -> bytes:
    """One client connection's bytes: pipelined requests, sometimes with a few bytes corrupted after the first."""
    first, *more = draw(pipelined)
    rest = b"".join(more)
    if rest and draw(PERCENT) < 10:
        at = draw(PLACES) % (len(rest) + 1)
        rest = rest[:at] + draw(corruption) + rest[at:]
    return first + rest


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- what the proxy reads -------------------------------------------------------------------------------------


@dataclass
class Message:
    head: RequestHead
    pieces: list[bytes] = field(default_factory=list)  # Body events, as delivered
    complete: bool = False

    @property
    def body(self) -> bytes:
        return b"".join(self.pieces)


def read(pieces: list[bytes]) -> list[Message]:
    """Every request the reader yields; stops at a refusal (the connection is closed) or an upgrade."""
    reader = RequestReader()
    messages: list[Message] = []
    try:
        for piece in pieces:
            for event in reader.feed(piece):
                if isinstance(event, RequestHead):
                    messages.append(Message(event))
                elif isinstance(event, Body):
                    messages[-1].pieces.append(event.data)
                elif isinstance(event, MessageEnd):
                    messages[-1].complete = True
                else:
                    assert isinstance(event, Upgraded)
                    assert messages[-1].head.upgrade and messages[-1].complete
                    return messages
    except ClientProtocolError as exc:
        assert exc.code in REFUSAL_CODES, exc
        assert exc.message
    return messages


# -- properties of the headers the proxy sends ----------------------------------------------------------------


def spelled(name: bytes) -> bytes:
    """The name as any layer that ignores case and maps ``_`` to ``-`` reads it."""
    return name.lower().replace(b"_", b"-")


def go_parses_ip(text: bytes) -> bool:
    """Go's net.ParseIP, which kube-apiserver uses for these headers: dotted quad or IPv6, no zone, no port."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text.decode("ascii"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        return True
    return False


def check_origin(out: Headers, origin: Origin, trusted: bool) -> None:
    [forwarded_for] = [v for n, v in out if spelled(n) == b"x-forwarded-for"]
    entries = [e.strip() for e in forwarded_for.split(b",")]
    real_ip = [v for n, v in out if spelled(n) == b"x-real-ip"]
    assert entries[-1] == PEER.encode()
    assert all(go_parses_ip(e) for e in [*entries, *real_ip]), (entries, real_ip)
    assert len(real_ip) <= 1
    assert go_parses_ip(origin.client_ip.encode()), origin
    if not trusted:
        assert (entries, real_ip, origin.client_ip) == ([PEER.encode()], [], PEER)


def check_framing(message: Message, out: Headers) -> None:
    framing = [(spelled(n), v) for n, v in out if spelled(n) in (b"content-length", b"transfer-encoding")]
    if message.head.framing == "chunked":
        assert framing == [(b"transfer-encoding", b"chunked")]
    elif message.complete and message.body:
        assert framing == [(b"content-length", b"%d" % len(message.body))]
    elif message.complete:
        assert framing in ([], [(b"content-length", b"0")])
    else:  # the client has not sent all of it yet: the length it announced, which the reader will enforce
        assert len(framing) == 1


def check_hop_by_hop(head: RequestHead, out: Headers) -> None:
    connection = [v for n, v in out if n.lower() == b"connection"]
    upgrade = [v for n, v in out if n.lower() == b"upgrade"]
    if head.upgrade:
        assert connection == [b"Upgrade"]
        offered = [t.strip().lower() for v in upgrade for t in v.split(b",") if t.strip()]
        assert len(offered) == 1 and offered[0] in (b"websocket", b"spdy/3.1"), upgrade
    else:
        assert connection == upgrade == []
    assert not [n for n, _ in out if n.lower() in HOP_BY_HOP]


def check_websocket_token(out: Headers) -> None:
    for name, value in out:
        if spelled(name) == b"sec-websocket-protocol":
            assert not [p for p in value.split(b",") if p.strip().startswith(WS_TOKEN_PREFIX)]


def check_upstream(message: Message, out: Headers, identity: Headers) -> None:
    head = message.head
    assert sorted((n, v) for n, v in out if spelled(n).startswith(b"impersonate-")) == sorted(identity)
    for name, value in out:
        name = spelled(name)
        assert name not in (b"authorization", b"proxy-authorization", b"audit-id"), (name, value)
        assert not name.startswith(b"x-remote-"), (name, value)
    assert [v for n, v in out if spelled(n) == b"host"] == [UPSTREAM_HOST]
    # everything else is a header the client sent, as it sent it
    for header in out:
        name = spelled(header[0])
        if not (name in PROXY_SET or name.startswith(b"impersonate-") or name in (b"connection", b"upgrade")):
            assert name == b"sec-websocket-protocol" or header in head.headers, header


def check_passthrough(message: Message, out: Headers) -> None:
    head = message.head
    credentials = [(n, v) for n, v in out if spelled(n) == b"authorization" or spelled(n).startswith(b"impersonate-")]
    assert credentials == [(n, v) for n, v in head.headers if n == b"authorization" or n.startswith(b"impersonate-")]
    for name, value in out:
        name = spelled(name)
        assert name not in (b"proxy-authorization", b"audit-id"), (name, value)
        assert not name.startswith(b"x-remote-"), (name, value)
    assert [v for n, v in out if spelled(n) == b"host"] == [UPSTREAM_HOST]


# -- what kube-apiserver reads --------------------------------------------------------------------------------


@dataclass
class Seen:
    method: bytes
    target: bytes
    headers: Headers
    body: bytes = b""


def wire(message: Message, out: Headers) -> bytes:
    """What the proxy writes upstream for a request (server/exchange.py): the head, then the body re-chunked."""
    head = message.head
    data = [request_head(head.method, head.target, out)]
    if head.framing == "chunked":
        for piece in message.pieces:
            data += chunk(piece)
        data.append(LAST_CHUNK)
    elif head.framing != "none":
        data.append(message.body)
    return b"".join(data)


def apiserver_reads(data: bytes, *, upgrade: bool = False) -> list[Seen]:
    """h11 as kube-apiserver, answering each request so that the next one on the connection is read."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)  # Go's DefaultMaxHeaderBytes
    conn.receive_data(data)
    if not upgrade:
        conn.receive_data(b"")  # then the connection ends: a message cut short is an error, not NEED_DATA
    seen: list[Seen] = []
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            seen.append(Seen(event.method, event.target, list(event.headers)))
        elif isinstance(event, h11.Data):
            seen[-1].body += event.data
        elif isinstance(event, h11.EndOfMessage):
            if upgrade:
                continue
            conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return seen
        else:
            raise AssertionError(f"kube-apiserver did not expect {event!r}")


def identity_seen(seen: Seen) -> Headers:
    return sorted((n, v) for n, v in seen.headers if n.startswith(b"impersonate-"))


@fuzz(
    data=connections(),
    points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
    trusted=st.booleans(),
    client_ip_extra=st.booleans(),
)
def test_no_client_identity_reaches_kube_apiserver_and_each_request_arrives_once(
    data: bytes, points: list[int], trusted: bool, client_ip_extra: bool
) -> None:
    messages = read(cut(data, points))
    proxies = TrustedProxies(parse_networks([PEER])) if trusted else NO_TRUSTED_PROXIES
    rewriter = Rewriter(UPSTREAM_HOST, static_extra=STATIC_EXTRA, client_ip_extra=client_ip_extra)
    impersonating: list[bytes] = []  # the bytes on one pooled upstream connection, request after request
    passing_through: list[bytes] = []
    expected: list[tuple[bytes, bytes, bytes]] = []
    decided: list[tuple[Headers, bytes]] = []  # the identity and Audit-ID of each
    for message in messages:
        head = message.head
        origin = proxies.origin(head.headers, PEER)
        audit_id = audit_id_for(head.headers).encode()
        assert re.fullmatch(rb"[\x21-\x7e]{1,128}", audit_id), audit_id  # one visible token, safe in any header
        identity = [*USER_IDENTITY, *STATIC_IDENTITY]
        if client_ip_extra:
            identity.append((b"impersonate-extra-remote-client-ip", origin.client_ip.encode()))

        upstream = rewriter.upstream_headers(head, USER, origin)
        check_upstream(message, upstream, identity)
        passthrough = rewriter.passthrough_headers(head, origin)
        check_passthrough(message, passthrough)
        for out in (upstream, passthrough):
            check_origin(out, origin, trusted)
            check_framing(message, out)
            check_hop_by_hop(head, out)
        check_websocket_token(upstream)
        if not message.complete:
            continue  # the proxy drops an upstream connection whose request body never ended

        upstream_wire = wire(message, [*upstream, (b"audit-id", audit_id), (b"authorization", PROXY_CREDENTIAL)])
        passthrough_wire = wire(message, [*passthrough, (b"audit-id", audit_id)])
        if head.upgrade:  # on a connection of its own, which becomes the tunnel
            for sent, own_identity in ((upstream_wire, True), (passthrough_wire, False)):
                [handshake] = apiserver_reads(sent, upgrade=True)
                assert (handshake.method, handshake.target, handshake.body) == (head.method, head.target, b"")
                if own_identity:
                    assert identity_seen(handshake) == sorted((n.lower(), v) for n, v in identity)
            continue
        impersonating.append(upstream_wire)
        passing_through.append(passthrough_wire)
        expected.append((head.method, head.target, message.body))
        decided.append((sorted((n.lower(), v) for n, v in identity), audit_id))  # names as h11 (and Go) spell them

    seen = apiserver_reads(b"".join(impersonating))
    assert [(s.method, s.target, s.body) for s in seen] == expected
    for request, (identity, audit_id) in zip(seen, decided, strict=True):
        assert identity_seen(request) == identity
        assert [v for n, v in request.headers if n == b"authorization"] == [PROXY_CREDENTIAL]
        assert [v for n, v in request.headers if n == b"audit-id"] == [audit_id]
    seen = apiserver_reads(b"".join(passing_through))
    assert [(s.method, s.target, s.body) for s in seen] == expected
