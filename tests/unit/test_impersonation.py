"""impersonation: client-go's extra-key escaping, the identity headers, and the outbound header rewrite."""

from __future__ import annotations

import base64
from typing import Final
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.clientip import Origin, TrustedProxies, parse_networks
from kube_oidc_proxy.http1.events import Framing, RequestHead
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.impersonation import (
    IDENTITY_MEMO_BYTES,
    IDENTITY_MEMO_SIZE,
    CredentialLeak,
    Rewriter,
    UnforwardableIdentity,
    check_no_client_credentials,
    escape_extra_key,
    identity_headers,
)

# client-go transport/round_trippers.go legalHeaderKeyBytes (net/http's isTokenTable), typed out again here so the
# test does not share the implementation's table. headerKeyEscape keeps these bytes except '%', escapes the rest.
GO_LEGAL_HEADER_KEY_BYTES: Final = frozenset(
    b"%!#$&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUWVXYZ^_`abcdefghijklmnopqrstuvwxyz|~"
)


def go_header_key_escape(key: str) -> bytes:
    out = bytearray()
    for b in key.encode("utf-8"):
        if b < 127 and b in GO_LEGAL_HEADER_KEY_BYTES and b != ord("%"):
            out.append(b)
        else:
            out += f"%{b:02X}".encode()
    return bytes(out)


@pytest.mark.parametrize(
    ("key", "escaped"),
    [
        ("acme.com/project", b"acme.com%2Fproject"),
        ("authentication.kubernetes.io/credential-id", b"authentication.kubernetes.io%2Fcredential-id"),
        ("%", b"%25"),
        ("100%done", b"100%25done"),
        ("a b", b"a%20b"),
        ("é", b"%C3%A9"),
        ("日本", b"%E6%97%A5%E6%9C%AC"),
        ("😀", b"%F0%9F%98%80"),
        ("!#$&'*+-.^_`|~", b"!#$&'*+-.^_`|~"),
        ("remote-client-ip", b"remote-client-ip"),
        ("remote-client-ip", b"remote-client-ip"),
        ("scopes", b"scopes"),
        ("a:b", b"a%3Ab"),
        ('q"u', b"q%22u"),
        ("(),;<=>?@[\\]{}", b"%28%29%2C%3B%3C%3D%3E%3F%40%5B%5C%5D%7B%7D"),
        ("\x00\t\r\n\x7f", b"%00%09%0D%0A%7F"),
        ("", b""),
    ],
)
def test_extra_keys_are_escaped_like_client_go(key: str, escaped: bytes) -> None:
    assert escape_extra_key(key) == escaped
    assert go_header_key_escape(key) == escaped


def test_every_byte_but_upper_case_letters_is_escaped_exactly_as_client_go_header_key_escape_does() -> None:
    for code_point in [*range(0x100), 0x100, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF]:
        key = f"k{chr(code_point)}k"
        if "A" <= chr(code_point) <= "Z":
            assert escape_extra_key(key) == b"k%%%02Xk" % code_point
        else:
            assert escape_extra_key(key) == go_header_key_escape(key), hex(code_point)


def kube_apiserver_extra_key(header_name: bytes) -> str:
    """What kube-apiserver makes of an Impersonate-Extra- header name: lower-case, then url.PathUnescape."""
    return unquote(header_name.decode("ascii").lower()[len("impersonate-extra-") :], errors="strict")


@given(st.text(min_size=1))
def test_kube_apiserver_reads_back_every_key_exactly(key: str) -> None:
    try:
        key.encode()
    except UnicodeEncodeError:
        return  # not text: refused before it gets here (identity.value_problem)
    assert kube_apiserver_extra_key(b"impersonate-extra-" + escape_extra_key(key)) == key


def test_an_upper_case_key_survives_kube_apiserver_lower_casing_the_header_name() -> None:
    # client-go would send "Impersonate-Extra-Team" and kube-apiserver would read "team"
    assert kube_apiserver_extra_key(b"impersonate-extra-" + escape_extra_key("Team")) == "Team"


def test_escaped_keys_are_always_valid_header_name_characters() -> None:
    allowed = GO_LEGAL_HEADER_KEY_BYTES
    for code_point in range(0x100):
        assert set(escape_extra_key(chr(code_point))) <= allowed


# identity_headers ---------------------------------------------------------------------------------------------


def test_identity_headers_name_the_user_each_group_and_system_authenticated() -> None:
    assert identity_headers(UserInfo("alice", groups=("dev", "ops"))) == [
        (b"impersonate-user", b"alice"),
        (b"impersonate-group", b"dev"),
        (b"impersonate-group", b"ops"),
        (b"impersonate-group", b"system:authenticated"),
    ]


def test_a_user_without_groups_is_still_in_system_authenticated() -> None:
    assert identity_headers(UserInfo("alice")) == [
        (b"impersonate-user", b"alice"),
        (b"impersonate-group", b"system:authenticated"),
    ]


def test_system_authenticated_is_not_added_twice() -> None:
    headers = identity_headers(UserInfo("alice", groups=("system:authenticated", "dev")))
    assert headers.count((b"impersonate-group", b"system:authenticated")) == 1
    assert [v for n, v in headers if n == b"impersonate-group"] == [b"system:authenticated", b"dev"]


@pytest.mark.parametrize(("uid", "expected"), [("", []), ("1234-abcd", [b"1234-abcd"])])
def test_impersonate_uid_is_sent_only_when_the_user_has_a_uid(uid: str, expected: list[bytes]) -> None:
    headers = identity_headers(UserInfo("alice", uid=uid))
    assert [v for n, v in headers if n == b"impersonate-uid"] == expected


def test_each_extra_value_is_its_own_header_under_the_escaped_key() -> None:
    user = UserInfo("alice", extra={"acme.com/project": ("a", "b"), "scopes": ("s1",)})
    headers = identity_headers(user, {"remote-client-ip": ["10.0.0.1"]})
    assert [(n, v) for n, v in headers if n.startswith(b"impersonate-extra-")] == [
        (b"impersonate-extra-acme.com%2Fproject", b"a"),
        (b"impersonate-extra-acme.com%2Fproject", b"b"),
        (b"impersonate-extra-scopes", b"s1"),
        (b"impersonate-extra-remote-client-ip", b"10.0.0.1"),
    ]


def test_non_ascii_identity_values_are_sent_as_utf8() -> None:
    headers = identity_headers(UserInfo("jösé", groups=("grüppe",)))
    assert (b"impersonate-user", "jösé".encode()) in headers
    assert (b"impersonate-group", "grüppe".encode()) in headers


def test_exactly_one_impersonate_user_header() -> None:
    headers = identity_headers(UserInfo("alice", uid="u", groups=("g",), extra={"k": ("v",)}))
    assert [v for n, v in headers if n == b"impersonate-user"] == [b"alice"]


# Rewriter.upstream_headers ----------------------------------------------------------------------------------

PEER = "10.1.2.3"
ORIGIN: Final = Origin(PEER, client_ip=PEER)
USER = UserInfo("alice", groups=("dev",))
REWRITER = Rewriter(upstream_host=b"kubernetes.default.svc:443")


def ws_token(token: bytes = b"secret.jwt.token") -> bytes:
    return WS_TOKEN_PREFIX + base64.urlsafe_b64encode(token).rstrip(b"=")


def head_of(
    headers: Headers, *, upgrade: bool = False, framing: Framing = "none", content_length: int | None = None
) -> RequestHead:
    """A parsed request head, as the reader gives it (names already lower-case)."""
    return RequestHead(
        method=b"GET",
        target=b"/api",
        http_version="1.1",
        headers=headers,
        keep_alive=True,
        upgrade=upgrade,
        framing=framing,
        content_length=content_length,
        expect_continue=False,
        head_size=100,
    )


def rewrite(
    headers: Headers,
    *,
    rewriter: Rewriter = REWRITER,
    user: UserInfo = USER,
    upgrade: bool = False,
    chunked: bool = False,
    origin: Origin = ORIGIN,
) -> Headers:
    head = head_of(headers, upgrade=upgrade, framing="chunked" if chunked else "none")
    return rewriter.upstream_headers(head, user, origin)


def names(headers: Headers) -> list[bytes]:
    return [n for n, _ in headers]


def values(headers: Headers, name: bytes) -> list[bytes]:
    return [v for n, v in headers if n == name]


@pytest.mark.parametrize(
    "header",
    [
        (b"authorization", b"Bearer client-token"),
        (b"proxy-authorization", b"Basic YTpi"),
        (b"impersonate-user", b"admin"),
        (b"impersonate-group", b"system:masters"),
        (b"impersonate-uid", b"0"),
        (b"impersonate-extra-scopes", b"all"),
        (b"impersonate-extra-acme.com%2fproject", b"x"),
        (b"impersonate-anything-else", b"x"),
        (b"x-remote-user", b"admin"),
        (b"x-remote-group", b"system:masters"),
        (b"x-remote-uid", b"0"),
        (b"x-remote-extra-scopes", b"all"),
        (b"connection", b"keep-alive"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"te", b"trailers"),
        (b"trailer", b"x-checksum"),
        (b"transfer-encoding", b"chunked"),
        (b"upgrade", b"websocket"),
        (b"proxy-authenticate", b"Basic"),
        (b"expect", b"100-continue"),
    ],
    ids=lambda header: header[0].decode(),
)
def test_credential_identity_and_hop_by_hop_headers_from_the_client_are_removed(header: tuple[bytes, bytes]) -> None:
    out = rewrite([(b"accept", b"application/json"), header, (b"user-agent", b"kubectl")])
    assert header not in out
    if not header[0].startswith(b"impersonate-"):  # the proxy's own impersonation headers are checked below
        assert header[0] not in names(out)
    assert (b"accept", b"application/json") in out
    assert (b"user-agent", b"kubectl") in out
    # the only identity headers are ours
    assert values(out, b"impersonate-user") == [b"alice"]
    assert values(out, b"impersonate-group") == [b"dev", b"system:authenticated"]
    assert values(out, b"authorization") == []


def test_headers_named_in_connection_are_removed() -> None:
    out = rewrite(
        [
            (b"connection", b"close, X-Hop-One"),
            (b"connection", b"x-hop-two"),
            (b"x-hop-one", b"1"),
            (b"x-hop-two", b"2"),
            (b"x-end-to-end", b"3"),
        ]
    )
    assert b"x-hop-one" not in names(out)
    assert b"x-hop-two" not in names(out)
    assert b"connection" not in names(out)
    assert values(out, b"x-end-to-end") == [b"3"]


def test_the_host_header_is_replaced_by_the_upstream_host() -> None:
    out = rewrite([(b"host", b"proxy.example:8443"), (b"host", b"evil.example")])
    assert values(out, b"host") == [b"kubernetes.default.svc:443"]
    out = rewrite([])
    assert values(out, b"host") == [b"kubernetes.default.svc:443"]


def test_repeated_stream_protocol_headers_stay_separate_and_in_order() -> None:
    out = rewrite(
        [
            (b"x-stream-protocol-version", b"v5.channel.k8s.io"),
            (b"accept", b"*/*"),
            (b"x-stream-protocol-version", b"v4.channel.k8s.io"),
            (b"x-stream-protocol-version", b"v3.channel.k8s.io"),
        ]
    )
    assert values(out, b"x-stream-protocol-version") == [
        b"v5.channel.k8s.io",
        b"v4.channel.k8s.io",
        b"v3.channel.k8s.io",
    ]


def test_end_to_end_headers_keep_their_order_and_values() -> None:
    client: Headers = [
        (b"accept", b"application/json;as=Table;v=v1;g=meta.k8s.io"),
        (b"content-type", b"application/merge-patch+json"),
        (b"user-agent", b"kubectl/v1.33"),
        (b"x-custom", b"  spaced  "),
    ]
    out = rewrite(client)
    assert [h for h in out if h in client] == client


@pytest.mark.parametrize(
    ("framing", "content_length", "expected"),
    [
        pytest.param("length", 42, [(b"content-length", b"42")], id="length"),
        pytest.param("none", 0, [(b"content-length", b"0")], id="empty-with-length"),
        pytest.param("none", None, [], id="no-body"),
        pytest.param("chunked", None, [(b"transfer-encoding", b"chunked")], id="chunked"),
    ],
)
def test_the_framing_is_the_one_the_parser_read_whatever_the_client_wrote(
    framing: Framing, content_length: int | None, expected: Headers
) -> None:
    client: Headers = [
        (b"content-length", b"7"),
        (b"content_length", b"9"),
        (b"transfer-encoding", b"chunked"),
        (b"transfer_encoding", b"identity"),
    ]
    head = head_of(client, framing=framing, content_length=content_length)
    for out in (REWRITER.upstream_headers(head, USER, ORIGIN), REWRITER.passthrough_headers(head, ORIGIN)):
        framing_headers = [(n, v) for n, v in out if n.replace(b"_", b"-") in (b"content-length", b"transfer-encoding")]
        assert framing_headers == expected


PROXY_OWNED_SPELLINGS: Final = [
    (b"content_length", b"5"),
    (b"transfer_encoding", b"chunked"),
    (b"impersonate_user", b"system:admin"),
    (b"impersonate_group", b"system:masters"),
    (b"impersonate_extra_scopes", b"all"),
    (b"x_remote_user", b"system:admin"),
    (b"x_remote_group", b"system:masters"),
    (b"x_forwarded_for", b"1.2.3.4"),
    (b"x_real_ip", b"1.2.3.4"),
    (b"audit_id", b"forged"),
    (b"audit-id", b"forged"),
    (b"authorization", b"Bearer smuggled"),
    (b"host", b"evil.example"),
]


@pytest.mark.parametrize("header", PROXY_OWNED_SPELLINGS, ids=lambda header: header[0].decode())
def test_no_spelling_of_a_proxy_owned_header_is_forwarded(header: tuple[bytes, bytes]) -> None:
    head = head_of([(b"accept", b"*/*"), header])
    outs = [REWRITER.upstream_headers(head, USER, ORIGIN)]
    if header[0] != b"authorization":  # passthrough forwards the caller's own token, under its one spelling
        outs.append(REWRITER.passthrough_headers(head, ORIGIN))
    for out in outs:
        assert header not in out
        assert header[1] not in [v for _, v in out]


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        pytest.param([], b"10.1.2.3", id="none"),
        pytest.param([b"1.2.3.4"], b"1.2.3.4, 10.1.2.3", id="one"),
        pytest.param([b"1.1.1.1", b"2.2.2.2, 3.3.3.3"], b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.1.2.3", id="two-lines"),
    ],
)
def test_the_peer_ip_is_appended_to_x_forwarded_for_of_a_trusted_proxy(xff: list[bytes], expected: bytes) -> None:
    headers = [(b"x-forwarded-for", v) for v in xff]
    trusted = TrustedProxies(parse_networks(["10.0.0.0/8"]))
    out = rewrite(headers, origin=trusted.origin(headers, PEER))
    assert values(out, b"x-forwarded-for") == [expected]


@pytest.mark.parametrize(
    ("header", "forwarded_for", "client"),
    [
        pytest.param((b"x-real-ip", b"::1%x, 6.6.6.6"), PEER, PEER, id="real-ip-zone-holding-a-list"),
        pytest.param((b"x-real-ip", b"fe80::1%eth0"), PEER, PEER, id="real-ip-zone"),
        pytest.param(
            (b"x-forwarded-for", b"192.0.2.1, ::1%] AuSuccess"), f"192.0.2.1, {PEER}", "192.0.2.1", id="forwarded-zone"
        ),
    ],
)
def test_an_ipv6_address_with_a_zone_is_not_an_address_kube_apiserver_reads(
    header: tuple[bytes, bytes], forwarded_for: str, client: str
) -> None:
    # Python's ipaddress takes any text after the "%"; Go's net.ParseIP takes no zone at all
    rewriter = Rewriter(upstream_host=b"api:6443", client_ip_extra=True)
    out = rewrite(
        [header], rewriter=rewriter, origin=TrustedProxies(parse_networks(["10.0.0.0/8"])).origin([header], PEER)
    )
    assert values(out, b"x-forwarded-for") == [forwarded_for.encode()]
    assert values(out, b"x-real-ip") == []
    assert values(out, b"impersonate-extra-remote-client-ip") == [client.encode()]


def test_x_forwarded_for_and_x_real_ip_of_an_untrusted_peer_are_replaced_by_the_peer() -> None:
    out = rewrite([(b"x-forwarded-for", b"1.2.3.4"), (b"x-real-ip", b"1.2.3.4")])
    assert values(out, b"x-forwarded-for") == [PEER.encode()]
    assert values(out, b"x-real-ip") == []


@pytest.mark.parametrize(("chunked", "expected"), [(True, [b"chunked"]), (False, [])])
def test_transfer_encoding_chunked_is_added_only_when_asked(chunked: bool, expected: list[bytes]) -> None:
    out = rewrite([(b"transfer-encoding", b"gzip, chunked")], chunked=chunked)
    assert values(out, b"transfer-encoding") == expected


def test_an_upgrade_request_keeps_connection_upgrade_and_the_upgrade_header() -> None:
    client: Headers = [
        (b"connection", b"Upgrade"),
        (b"upgrade", b"SPDY/3.1"),
        (b"x-stream-protocol-version", b"v4.channel.k8s.io"),
    ]
    out = rewrite(client, upgrade=True)
    assert values(out, b"connection") == [b"Upgrade"]
    assert values(out, b"upgrade") == [b"SPDY/3.1"]
    assert values(out, b"x-stream-protocol-version") == [b"v4.channel.k8s.io"]
    plain = rewrite(client, upgrade=False)
    assert values(plain, b"connection") == []
    assert values(plain, b"upgrade") == []


def test_the_websocket_token_subprotocol_is_removed_and_the_others_kept() -> None:
    client: Headers = [
        (b"connection", b"Upgrade"),
        (b"upgrade", b"websocket"),
        (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
        (b"sec-websocket-version", b"13"),
        (b"sec-websocket-protocol", b"v5.channel.k8s.io, " + ws_token() + b", v4.channel.k8s.io"),
        (b"sec-websocket-protocol", b"channel.k8s.io"),
    ]
    out = rewrite(client, upgrade=True)
    assert values(out, b"sec-websocket-protocol") == [b"v5.channel.k8s.io, v4.channel.k8s.io", b"channel.k8s.io"]
    assert all(WS_TOKEN_PREFIX not in v for v in values(out, b"sec-websocket-protocol"))
    assert values(out, b"sec-websocket-key") == [b"dGhlIHNhbXBsZSBub25jZQ=="]
    assert values(out, b"sec-websocket-version") == [b"13"]
    assert values(out, b"upgrade") == [b"websocket"]


def test_a_protocol_header_holding_only_the_token_is_dropped() -> None:
    client: Headers = [(b"sec-websocket-protocol", ws_token()), (b"sec-websocket-protocol", b"v5.channel.k8s.io")]
    out = rewrite(client, upgrade=True)
    assert values(out, b"sec-websocket-protocol") == [b"v5.channel.k8s.io"]


def test_the_client_ip_extra_is_added_when_configured() -> None:
    out = rewrite([], rewriter=Rewriter(upstream_host=b"api:6443", client_ip_extra=True))
    assert values(out, b"impersonate-extra-remote-client-ip") == [PEER.encode()]
    assert values(rewrite([]), b"impersonate-extra-remote-client-ip") == []


def test_static_extras_are_added_to_every_request() -> None:
    rewriter = Rewriter(upstream_host=b"api:6443", static_extra={"acme.com/cluster": ("prod", "eu")})
    out = rewrite([], rewriter=rewriter, user=UserInfo("alice", extra={"scopes": ("read",)}))
    assert values(out, b"impersonate-extra-acme.com%2Fcluster") == [b"prod", b"eu"]
    assert values(out, b"impersonate-extra-scopes") == [b"read"]


def test_the_full_rewrite_of_a_typical_request() -> None:
    rewriter = Rewriter(upstream_host=b"10.96.0.1:443", client_ip_extra=True)
    headers: Headers = [
        (b"host", b"proxy.example"),
        (b"authorization", b"Bearer t"),
        (b"accept", b"application/json"),
        (b"impersonate-user", b"root"),
        (b"x-forwarded-for", b"192.0.2.1"),
    ]
    out = rewriter.upstream_headers(
        head_of(headers),
        UserInfo("alice", uid="u-1", groups=("dev",), extra={"authentication.kubernetes.io/credential-id": ("JTI=1",)}),
        TrustedProxies(parse_networks(["10.1.2.3"])).origin(headers, "10.1.2.3"),
    )
    assert out == [
        (b"accept", b"application/json"),
        (b"host", b"10.96.0.1:443"),
        (b"x-forwarded-for", b"192.0.2.1, 10.1.2.3"),
        (b"impersonate-user", b"alice"),
        (b"impersonate-uid", b"u-1"),
        (b"impersonate-group", b"dev"),
        (b"impersonate-group", b"system:authenticated"),
        (b"impersonate-extra-authentication.kubernetes.io%2Fcredential-id", b"JTI=1"),
        (b"impersonate-extra-remote-client-ip", b"192.0.2.1"),
    ]


@pytest.mark.parametrize(
    "name",
    [
        b"Authorization",
        b"PROXY-AUTHORIZATION",
        b"Impersonate-User",
        b"IMPERSONATE-GROUP",
        b"X-Remote-User",
        b"X-REMOTE-EXTRA-A",
    ],
)
def test_a_credential_header_that_was_not_lower_cased_is_never_forwarded(name: bytes) -> None:
    # The parser lower-cases names; if one ever slipped through, the request must fail rather than carry it.
    try:
        out = rewrite([(name, b"smuggled")])
    except CredentialLeak:
        return
    assert all(n.lower() != name.lower() or v != b"smuggled" for n, v in out)
    assert b"smuggled" not in [v for _, v in out]


# check_no_client_credentials -------------------------------------------------------------------------------


def _cases(name: bytes, value: bytes) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value), (name, value), (name.upper(), value)]


LEAKS: Final = [
    header
    for name, value in [
        (b"Authorization", b"Bearer x"),
        (b"Proxy-Authorization", b"Basic x"),
        (b"Impersonate-User", b"admin"),
        (b"Impersonate-Group", b"system:masters"),
        (b"Impersonate-Uid", b"0"),
        (b"Impersonate-Extra-Scopes", b"all"),
        (b"X-Remote-User", b"admin"),
        (b"X-Remote-Group", b"system:masters"),
        (b"X-Remote-Extra-Scopes", b"all"),
        (b"X-Remote-Uid", b"0"),
        (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io, " + ws_token()),
    ]
    for header in _cases(name, value)
]


@pytest.mark.parametrize("header", LEAKS, ids=lambda header: header[0].decode())
def test_check_no_client_credentials_refuses_every_kind_of_credential_header(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(CredentialLeak):
        check_no_client_credentials([(b"accept", b"*/*"), header])


def test_check_no_client_credentials_names_the_header_but_not_its_value() -> None:
    with pytest.raises(CredentialLeak) as caught:
        check_no_client_credentials([(b"Authorization", b"Bearer very-secret")])
    assert "Authorization" in str(caught.value)
    assert "very-secret" not in str(caught.value)


@pytest.mark.parametrize(
    "header",
    [
        (b"accept", b"*/*"),
        (b"sec-websocket-protocol", b"v5.channel.k8s.io, v4.channel.k8s.io"),
        (b"x-remotely", b"1"),
        (b"impersonated", b"1"),
        (b"x-authorization-hint", b"1"),
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"user-agent", b"Impersonate-User/1.0"),
    ],
)
def test_check_no_client_credentials_accepts_ordinary_headers(header: tuple[bytes, bytes]) -> None:
    check_no_client_credentials([header])


def test_a_verified_users_identity_headers_are_built_once_and_the_memo_is_bounded() -> None:
    rewriter = Rewriter(upstream_host=b"api:6443", static_extra={"team": ("sre",)})
    user = UserInfo("alice", groups=("dev",))
    first = rewriter.upstream_headers(head_of([]), user, ORIGIN)
    assert rewriter.upstream_headers(head_of([]), user, ORIGIN) == first
    assert values(first, b"impersonate-extra-team") == [b"sre"]
    # an equal user in another object (another token) gets the same headers, from its own check
    assert rewriter.upstream_headers(head_of([]), UserInfo("alice", groups=("dev",)), ORIGIN) == first
    for n in range(IDENTITY_MEMO_SIZE + 10):
        rewriter.upstream_headers(head_of([]), UserInfo(f"user-{n}"), ORIGIN)
    assert len(rewriter._identities.entries) <= IDENTITY_MEMO_SIZE


def test_the_identity_memo_holds_a_bounded_number_of_bytes_and_no_per_request_user() -> None:
    rewriter = Rewriter(upstream_host=b"api:6443")
    many_groups = tuple(f"group-{n:05}-{'x' * 16}" for n in range(5000))  # ~170 KB of headers each
    for n in range(200):  # 200 users (tokens) like that: 34 MB of headers if all were kept
        rewriter.upstream_headers(head_of([]), UserInfo(f"user-{n}", groups=many_groups), ORIGIN)
    held = sum(len(n) + len(v) for _, headers in rewriter._identities.entries.values() for n, v in headers)
    assert held <= IDENTITY_MEMO_BYTES
    # a kubectl --as target is a new object every request: never remembered
    rewriter._identities.entries.clear()
    for _ in range(10):
        target = UserInfo("bob", groups=many_groups)
        rewriter.upstream_headers(head_of([]), target, ORIGIN, remember=False)
    assert rewriter._identities.entries == {}


def test_an_identity_that_cannot_be_forwarded_is_refused_every_time() -> None:
    user = UserInfo(" system:admin")
    for _ in range(2):  # never remembered as checked
        with pytest.raises(UnforwardableIdentity):
            REWRITER.upstream_headers(head_of([]), user, ORIGIN)
