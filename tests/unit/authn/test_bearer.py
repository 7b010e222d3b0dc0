"""bearer.find_credential: Authorization: Bearer, or the WebSocket token subprotocol (kube-apiserver's rules)."""

from __future__ import annotations

import base64

import pytest

from kube_oidc_proxy.authn.bearer import WS_TOKEN_PREFIX, CredentialError, find_credential
from kube_oidc_proxy.http1.headers import Headers

TOKEN = b"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"


def ws_protocol(token: bytes) -> bytes:
    return WS_TOKEN_PREFIX + base64.urlsafe_b64encode(token).rstrip(b"=")


@pytest.mark.parametrize(
    "value",
    [
        b"Bearer " + TOKEN,
        b"bearer " + TOKEN,
        b"BEARER " + TOKEN,
        b"BeArEr " + TOKEN,
        b"  Bearer " + TOKEN + b"  ",
        b"Bearer " + TOKEN + b" ",
    ],
)
def test_a_bearer_token_is_found_whatever_the_case_of_the_scheme(value: bytes) -> None:
    credential = find_credential([(b"authorization", value)], websocket=False)
    assert credential.token == TOKEN
    assert credential.remaining_ws_protocols is None


@pytest.mark.parametrize("websocket", [False, True])
def test_a_request_without_credential_has_no_token(websocket: bool) -> None:
    credential = find_credential([(b"accept", b"application/json")], websocket=websocket)
    assert credential.token is None
    assert credential.remaining_ws_protocols is None


def test_a_websocket_request_without_a_token_protocol_has_no_token() -> None:
    headers: Headers = [(b"sec-websocket-protocol", b"v5.channel.k8s.io, v4.channel.k8s.io")]
    assert find_credential(headers, websocket=True).token is None


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")], id="two-headers"),
        pytest.param([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer a")], id="two-equal-headers"),
        pytest.param([(b"authorization", b"Basic YWxpY2U6c2VjcmV0")], id="basic"),
        pytest.param([(b"authorization", b"Token " + TOKEN)], id="token-scheme"),
        pytest.param([(b"authorization", b"Bearer" + TOKEN)], id="no-space"),
        pytest.param([(b"authorization", b"Bearer")], id="scheme-only"),
        pytest.param([(b"authorization", b"Bearer ")], id="scheme-and-space"),
        pytest.param([(b"authorization", b"")], id="empty-value"),
        pytest.param([(b"authorization", b"Bearer a b")], id="inner-space"),
        pytest.param([(b"authorization", b"Bearer " + TOKEN + b" extra")], id="trailing-word"),
        pytest.param([(b"authorization", TOKEN)], id="token-without-scheme"),
    ],
)
@pytest.mark.parametrize("websocket", [False, True])
def test_a_malformed_authorization_header_is_an_error(headers: Headers, websocket: bool) -> None:
    with pytest.raises(CredentialError):
        find_credential(headers, websocket=websocket)


@pytest.mark.parametrize(
    ("values", "remaining"),
    [
        pytest.param([ws_protocol(TOKEN) + b", v5.channel.k8s.io"], [b"v5.channel.k8s.io"], id="token-first"),
        pytest.param([b"v5.channel.k8s.io, " + ws_protocol(TOKEN)], [b"v5.channel.k8s.io"], id="token-last"),
        pytest.param(
            [b"v5.channel.k8s.io," + ws_protocol(TOKEN) + b",v4.channel.k8s.io"],
            [b"v5.channel.k8s.io", b"v4.channel.k8s.io"],
            id="token-between",
        ),
    ],
)
def test_the_websocket_token_subprotocol_is_accepted_and_the_others_returned(
    values: list[bytes], remaining: list[bytes]
) -> None:
    headers: Headers = [(b"sec-websocket-protocol", v) for v in values]
    credential = find_credential(headers, websocket=True)
    assert credential.token == TOKEN
    assert credential.remaining_ws_protocols == remaining


def test_kubernetes_own_subprotocols_with_slashes_are_accepted() -> None:
    # kubectl port-forward over WebSocket: SPDY tunnelled in WebSocket, a protocol name with a "/" in it
    headers: Headers = [(b"sec-websocket-protocol", b"SPDY/3.1+portforward.k8s.io, " + ws_protocol(TOKEN))]
    credential = find_credential(headers, websocket=True)
    assert credential.token == TOKEN
    assert credential.remaining_ws_protocols == [b"SPDY/3.1+portforward.k8s.io"]


def test_a_token_subprotocol_is_ignored_on_a_request_that_is_not_a_websocket() -> None:
    headers: Headers = [(b"sec-websocket-protocol", ws_protocol(TOKEN) + b", v5.channel.k8s.io")]
    credential = find_credential(headers, websocket=False)
    assert credential.token is None
    assert credential.remaining_ws_protocols is None


def test_on_a_non_websocket_request_the_header_token_wins_over_a_subprotocol() -> None:
    headers: Headers = [
        (b"authorization", b"Bearer header-token"),
        (b"sec-websocket-protocol", ws_protocol(TOKEN) + b", v5.channel.k8s.io"),
    ]
    assert find_credential(headers, websocket=False).token == b"header-token"


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([ws_protocol(b"a") + b", " + ws_protocol(b"b") + b", v5.channel.k8s.io"], id="two-tokens"),
        pytest.param([ws_protocol(b"a") + b", v5.channel.k8s.io", ws_protocol(b"a")], id="same-token-twice"),
        pytest.param([ws_protocol(TOKEN)], id="no-other-protocol"),
        pytest.param([ws_protocol(TOKEN) + b", , "], id="only-empty-others"),
        pytest.param([WS_TOKEN_PREFIX + b"!!!!, v5.channel.k8s.io"], id="bad-base64"),
        pytest.param([WS_TOKEN_PREFIX + b"YWJj+/, v5.channel.k8s.io"], id="standard-base64-alphabet"),
        pytest.param([WS_TOKEN_PREFIX + b"YWI=, v5.channel.k8s.io"], id="padded-base64"),
        pytest.param([WS_TOKEN_PREFIX + b"A, v5.channel.k8s.io"], id="impossible-length"),
        pytest.param([ws_protocol(b"\xff\xfe\xfd") + b", v5.channel.k8s.io"], id="not-utf8"),
        pytest.param([ws_protocol(b"\xc3\x28") + b", v5.channel.k8s.io"], id="invalid-utf8-sequence"),
        pytest.param([WS_TOKEN_PREFIX + b", v5.channel.k8s.io"], id="empty-token"),
        # kube-apiserver reads only the first line (Go's Header.Get)
        pytest.param([ws_protocol(TOKEN), b"v5.channel.k8s.io, v4.channel.k8s.io"], id="separate-header-lines"),
        pytest.param([b"v5.channel.k8s.io", ws_protocol(TOKEN)], id="token-in-a-second-line"),
        # Go's strings.TrimSpace removes Unicode spaces: kube-apiserver would read these as a token we did not
        pytest.param([b"\xc2\xa0" + ws_protocol(TOKEN) + b", v5.channel.k8s.io"], id="behind-nbsp"),
        pytest.param([b"\xc2\x85" + ws_protocol(TOKEN) + b", v5.channel.k8s.io"], id="behind-nel"),
        pytest.param([ws_protocol(TOKEN) + b"\xe3\x80\x80, v5.channel.k8s.io"], id="before-ideographic-space"),
        pytest.param([b"v5.channel.k8s.io, \xc2\xa0" + ws_protocol(b"other")], id="hidden-second-token"),
        pytest.param([b"v5.channel.k8s.io, x y"], id="space-inside-an-element"),
        pytest.param([b"v5.channel.k8s.io, x\xffy"], id="a-byte-beyond-ascii"),
    ],
)
def test_a_malformed_websocket_token_subprotocol_is_an_error(values: list[bytes]) -> None:
    headers: Headers = [(b"sec-websocket-protocol", v) for v in values]
    with pytest.raises(CredentialError):
        find_credential(headers, websocket=True)


def test_an_authorization_header_and_a_token_subprotocol_together_are_an_error() -> None:
    headers: Headers = [
        (b"authorization", b"Bearer " + TOKEN),
        (b"sec-websocket-protocol", ws_protocol(TOKEN) + b", v5.channel.k8s.io"),
    ]
    with pytest.raises(CredentialError):
        find_credential(headers, websocket=True)


def test_a_websocket_request_may_use_the_authorization_header() -> None:
    headers: Headers = [(b"authorization", b"Bearer " + TOKEN), (b"sec-websocket-protocol", b"v5.channel.k8s.io")]
    credential = find_credential(headers, websocket=True)
    assert credential.token == TOKEN
    assert credential.remaining_ws_protocols is None


def test_a_utf8_token_in_the_subprotocol_is_decoded_byte_for_byte() -> None:
    token = "tökén-with-ünicode".encode()
    headers: Headers = [(b"sec-websocket-protocol", ws_protocol(token) + b", v5.channel.k8s.io")]
    assert find_credential(headers, websocket=True).token == token


def test_a_credential_error_does_not_echo_the_token() -> None:
    headers: Headers = [(b"authorization", b"Basic " + TOKEN)]
    with pytest.raises(CredentialError) as caught:
        find_credential(headers, websocket=False)
    assert TOKEN.decode() not in str(caught.value)
