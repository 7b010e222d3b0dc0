"""upgrade.switch_problem: a 101 is relayed only if it switches to what the request asked for (pure)."""

from __future__ import annotations

from typing import Final

import pytest

from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.upgrade import switch_problem, websocket_accept

KEY: Final = b"dGhlIHNhbXBsZSBub25jZQ=="
TOKEN_PROTOCOL: Final = b"base64url.bearer.authorization.k8s.io.dG9rZW4"
SPDY: Final[Headers] = [(b"connection", b"Upgrade"), (b"upgrade", b"SPDY/3.1")]
WEBSOCKET: Final[Headers] = [
    (b"connection", b"Upgrade"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-key", KEY),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-protocol", b"v5.channel.k8s.io, v4.channel.k8s.io"),
]
WEBSOCKET_WITH_TOKEN: Final[Headers] = [
    *WEBSOCKET[:-1],
    (b"sec-websocket-protocol", b"v5.channel.k8s.io, " + TOKEN_PROTOCOL),
]
ACCEPT: Final = (b"Sec-WebSocket-Accept", b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")  # RFC 6455 §1.3's own example


def test_the_accept_key_is_rfc_6455_s_example() -> None:
    assert websocket_accept(KEY) == ACCEPT[1]


ACCEPTED: Final[list[object]] = [
    pytest.param(SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1")], id="spdy-as-kube-apiserver-answers"),
    pytest.param(SPDY, [(b"connection", b"upgrade"), (b"upgrade", b"spdy/3.1")], id="spdy-case-differs"),
    pytest.param(SPDY, [(b"Connection", b"keep-alive, Upgrade"), (b"Upgrade", b"SPDY/3.1")], id="connection-list"),
    pytest.param(
        SPDY,
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1"), (b"X-Stream-Protocol-Version", b"v4.channel.k8s.io")],
        id="spdy-with-the-chosen-stream-protocol",
    ),
    pytest.param(
        WEBSOCKET,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            ACCEPT,
            (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io"),
        ],
        id="websocket-v5",
    ),
    pytest.param(WEBSOCKET, [(b"Connection", b"Upgrade"), (b"Upgrade", b"WebSocket"), ACCEPT], id="ws-no-subprotocol"),
    pytest.param(
        WEBSOCKET,
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), ACCEPT, (b"Sec-WebSocket-Protocol", b"")],
        id="ws-empty-subprotocol-as-go-x-net-writes-it",
    ),
    pytest.param(
        WEBSOCKET_WITH_TOKEN,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            ACCEPT,
            (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io"),
        ],
        id="ws-passthrough-offer-with-the-token",
    ),
]


@pytest.mark.parametrize(("request_headers", "response_headers"), ACCEPTED)
def test_a_101_that_switches_to_what_was_asked_is_accepted(request_headers: Headers, response_headers: Headers) -> None:
    assert switch_problem(request_headers, response_headers) is None


REFUSED: Final[list[object]] = [
    pytest.param(SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"h2c")], "'h2c'", id="another-protocol"),
    pytest.param(SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], "'websocket'", id="the-other-one"),
    pytest.param(SPDY, [(b"Connection", b"Upgrade")], "switched to 'none'", id="no-upgrade-header"),
    pytest.param(SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"")], "switched to 'none'", id="empty-upgrade"),
    pytest.param(
        SPDY,
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1"), (b"Upgrade", b"h2c")],
        "'SPDY/3.1, h2c'",
        id="two-upgrade-headers",
    ),
    pytest.param(
        SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3.1, h2c")], "'SPDY/3.1, h2c'", id="two-protocols"
    ),
    pytest.param(SPDY, [(b"Connection", b"Upgrade"), (b"Upgrade", b"SPDY/3")], "'SPDY/3'", id="another-version"),
    pytest.param(SPDY, [(b"Upgrade", b"SPDY/3.1")], "Connection", id="no-connection-upgrade"),
    pytest.param(SPDY, [(b"Connection", b"close"), (b"Upgrade", b"SPDY/3.1")], "Connection", id="connection-close"),
    pytest.param([(b"connection", b"Upgrade")], SPDY, "no single protocol", id="nothing-asked"),
    pytest.param(
        WEBSOCKET, [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")], "Sec-WebSocket-Accept", id="ws-no-accept"
    ),
    pytest.param(
        WEBSOCKET,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            (b"Sec-WebSocket-Accept", websocket_accept(b"other")),
        ],
        "Sec-WebSocket-Accept",
        id="ws-accept-for-another-key",
    ),
    pytest.param(
        WEBSOCKET,
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), ACCEPT, ACCEPT],
        "Sec-WebSocket-Accept",
        id="ws-two-accepts",
    ),
    pytest.param(
        [h for h in WEBSOCKET if h[0] != b"sec-websocket-key"],
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), ACCEPT],
        "Sec-WebSocket-Accept",
        id="ws-no-key-asked",
    ),
    pytest.param(
        WEBSOCKET,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            ACCEPT,
            (b"Sec-WebSocket-Protocol", b"binary.k8s.io"),
        ],
        "subprotocol",
        id="ws-subprotocol-not-offered",
    ),
    pytest.param(
        WEBSOCKET,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            ACCEPT,
            (b"Sec-WebSocket-Protocol", b"v5.channel.k8s.io, v4.channel.k8s.io"),
        ],
        "subprotocol",
        id="ws-two-subprotocols",
    ),
    pytest.param(
        WEBSOCKET,
        [
            (b"Connection", b"Upgrade"),
            (b"Upgrade", b"websocket"),
            ACCEPT,
            (b"Sec-WebSocket-Protocol", b"V5.channel.k8s.io"),
        ],
        "subprotocol",
        id="ws-subprotocol-case-differs",
    ),
    pytest.param(
        WEBSOCKET_WITH_TOKEN,
        [(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"), ACCEPT, (b"Sec-WebSocket-Protocol", TOKEN_PROTOCOL)],
        "subprotocol",
        id="ws-the-bearer-token-echoed",
    ),
]


@pytest.mark.parametrize(("request_headers", "response_headers", "reason"), REFUSED)
def test_a_101_that_switches_to_anything_else_is_refused(
    request_headers: Headers, response_headers: Headers, reason: str
) -> None:
    problem = switch_problem(request_headers, response_headers)
    assert problem is not None
    assert reason in problem
