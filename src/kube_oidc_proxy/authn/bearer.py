"""Where a request's credential is: ``Authorization: Bearer``, or the WebSocket token subprotocol.

Browsers cannot set headers on a WebSocket, so Kubernetes accepts the token as a subprotocol
``base64url.bearer.authorization.k8s.io.<base64url(token)>`` (k8s.io/apiserver
pkg/authentication/request/websocket). We accept it under the same rules and return the remaining
subprotocols, because the token must not be forwarded.

kube-apiserver reads only the first ``Sec-WebSocket-Protocol`` line and trims each element with Go's
``strings.TrimSpace``, which also removes Unicode spaces (NBSP, NEL, ...): an element we read as "not a
token" it could read as one. So on a WebSocket request the subprotocols must be one line whose elements
are visible ASCII (Kubernetes' own, like ``SPDY/3.1+portforward.k8s.io``, are not strict RFC 6455 tokens),
or the request is refused: there is then one reading of the credential.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Final

from kube_oidc_proxy.authn.token import MalformedToken, b64url_decode
from kube_oidc_proxy.http1.headers import Headers, comma_tokens, get_all

WS_TOKEN_PREFIX: Final = b"base64url.bearer.authorization.k8s.io."
# What an element may hold once its ASCII spaces are trimmed: nothing Go's TrimSpace could trim further.
VISIBLE_ASCII: Final = frozenset(range(0x21, 0x7F))


@dataclass(frozen=True, slots=True)
class Credential:
    token: bytes | None  # None: the request carries no credential
    remaining_ws_protocols: list[bytes] | None = None  # set when the token came from the subprotocol


class CredentialError(ValueError):
    """The request carries a credential, but not in a form we accept."""


def _from_authorization(values: list[bytes]) -> bytes | None:
    if not values:
        return None
    if len(values) > 1:
        raise CredentialError("more than one Authorization header")
    scheme, _, token = values[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        raise CredentialError("Authorization is not a Bearer token")
    if not token or b" " in token or b"\t" in token:  # like kube-apiserver: exactly "Bearer <token>"
        raise CredentialError("malformed Bearer token")
    return token


def _from_websocket_protocol(headers: Headers) -> tuple[bytes, list[bytes]] | None:
    lines = get_all(headers, b"sec-websocket-protocol")
    if len(lines) > 1:
        raise CredentialError("more than one Sec-WebSocket-Protocol header")
    protocols = comma_tokens(lines)
    if any(not VISIBLE_ASCII.issuperset(p) for p in protocols):
        raise CredentialError("a Sec-WebSocket-Protocol element is not visible ASCII")
    tokens = [p for p in protocols if p.startswith(WS_TOKEN_PREFIX)]
    if not tokens:
        return None
    if len(tokens) > 1:
        raise CredentialError("more than one bearer token subprotocol")
    rest = [p for p in protocols if not p.startswith(WS_TOKEN_PREFIX)]
    if not rest:
        raise CredentialError("the bearer token subprotocol needs another subprotocol beside it")
    try:
        token = b64url_decode(tokens[0][len(WS_TOKEN_PREFIX) :])
        token.decode("utf-8")
    except (MalformedToken, binascii.Error, UnicodeDecodeError) as exc:
        raise CredentialError("bearer token subprotocol is not base64url of UTF-8") from exc
    if not token:
        raise CredentialError("empty bearer token subprotocol")
    return token, rest


def find_credential(headers: Headers, *, websocket: bool) -> Credential:
    """The bearer token of a request; raises ``CredentialError`` for ambiguous or malformed ones."""
    header_token = _from_authorization(get_all(headers, b"authorization"))
    ws = _from_websocket_protocol(headers) if websocket else None
    if ws is None:
        return Credential(header_token)
    if header_token is not None:
        raise CredentialError("both an Authorization header and a bearer token subprotocol")
    return Credential(ws[0], ws[1])
