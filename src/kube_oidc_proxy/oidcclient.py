"""The relying-party side of OIDC, shared by browser login (``login/``) and the exec credential plugin
(``credential/``): provider metadata, PKCE, the authorization URL, and the token endpoint's two grants.

Pure except ``exchange_code`` and ``refresh``, which POST to the token endpoint. Nothing here logs, and no
error message carries a code, a secret or a token: callers put these messages on pages and in logs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

from kube_oidc_proxy.httpclient import FetchError, post_form

# Asked for when the provider lists them (or lists no scopes at all); "openid" always.
DEFAULT_SCOPES: Final = ("openid", "email", "profile", "groups")
OFFLINE_ACCESS: Final = "offline_access"
TOKEN_TIMEOUT_SECONDS: Final = 30.0
MAX_TOKEN_RESPONSE_BYTES: Final = 1024 * 1024
MAX_ERROR_TEXT: Final = 300  # of an IdP's error_description shown on a page or stderr


class ProviderError(Exception):
    """The provider could not be used or refused: the message is safe to show and to log. ``error`` is the
    OAuth error code of a refusal (``invalid_grant``: the refresh token is no longer good), None otherwise."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    scopes_supported: tuple[str, ...] | None  # None: the provider does not say
    pkce_methods: tuple[str, ...] | None


def provider_metadata(discovery: Any) -> ProviderMetadata:
    """The endpoints a login needs, from a discovery document; ``ProviderError`` when one is missing."""
    if not isinstance(discovery, dict):
        raise ProviderError("the discovery document is not a JSON object")
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint"):
        value = discovery.get(name)
        if not isinstance(value, str) or urlsplit(value).scheme != "https":
            raise ProviderError(f"the discovery document has no https {name}")
        endpoints[name] = value
    return ProviderMetadata(
        issuer=str(discovery.get("issuer", "")),
        authorization_endpoint=endpoints["authorization_endpoint"],
        token_endpoint=endpoints["token_endpoint"],
        scopes_supported=_strings(discovery.get("scopes_supported")),
        pkce_methods=_strings(discovery.get("code_challenge_methods_supported")),
    )


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list):
        return None
    return tuple(v for v in value if isinstance(v, str))


def default_scopes(supported: tuple[str, ...] | None) -> tuple[str, ...]:
    """``openid,email,profile,groups`` minus what the provider does not list, plus ``offline_access``
    when it does list it (a refresh token that outlives the browser session)."""
    if supported is None:
        return DEFAULT_SCOPES
    wanted: list[str] = [s for s in DEFAULT_SCOPES if s == "openid" or s in supported]
    if OFFLINE_ACCESS in supported:
        wanted.append(OFFLINE_ACCESS)
    return tuple(wanted)


def random_token() -> str:
    """A fresh unguessable value (state, nonce, session): 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Pkce:
    verifier: str
    challenge: str


def new_pkce() -> Pkce:
    """RFC 7636 with S256: 43 characters of verifier, its SHA-256 as the challenge."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return Pkce(verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii"))


def authorization_url(
    provider: ProviderMetadata,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: tuple[str, ...],
    state: str,
    nonce: str,
    pkce: Pkce,
) -> str:
    """Where the browser goes to sign in: the provider's endpoint with the authorization-code request
    (its own query, if any, kept)."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
        },
        quote_via=quote,
    )
    separator = "&" if urlsplit(provider.authorization_endpoint).query else "?"
    return f"{provider.authorization_endpoint}{separator}{query}"


@dataclass(frozen=True, slots=True)
class Tokens:
    id_token: str
    refresh_token: str | None
    expires_in: int | None


@dataclass(frozen=True, slots=True)
class Client:
    client_id: str
    client_secret: str | None = None  # None: a public client, PKCE alone


async def exchange_code(
    provider: ProviderMetadata,
    client: Client,
    ssl_context: ssl.SSLContext,
    *,
    code: str,
    redirect_uri: str,
    verifier: str,
) -> Tokens:
    """The authorization code for tokens (RFC 6749 §4.1.3 with the PKCE verifier)."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier}
    return await _token_request(provider, client, ssl_context, form)


async def refresh(
    provider: ProviderMetadata, client: Client, ssl_context: ssl.SSLContext, refresh_token: str
) -> Tokens:
    """A refresh token for a new id_token (RFC 6749 §6; OIDC Core §12.2)."""
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await _token_request(provider, client, ssl_context, form)


async def _token_request(
    provider: ProviderMetadata, client: Client, ssl_context: ssl.SSLContext, form: dict[str, str]
) -> Tokens:
    headers: list[tuple[bytes, bytes]] = []
    if client.client_secret is None:
        form = {**form, "client_id": client.client_id}
    else:  # client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded first
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}"
        headers.append((b"Authorization", b"Basic " + base64.b64encode(pair.encode())))
    try:
        response = await post_form(
            provider.token_endpoint,
            urlencode(form).encode(),
            ssl_context,
            headers=headers,
            timeout=TOKEN_TIMEOUT_SECONDS,
            max_bytes=MAX_TOKEN_RESPONSE_BYTES,
        )
    except FetchError as exc:
        raise ProviderError(f"the token endpoint did not answer: {exc}") from None
    return parse_token_response(provider.token_endpoint, response.status, response.body)


def parse_token_response(endpoint: str, status: int, body: bytes) -> Tokens:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ProviderError(f"POST {endpoint}: HTTP {status}, not a JSON object")
    if status != 200 or "error" in document:
        error = _short(document.get("error"), "no error code")
        description = _short(document.get("error_description"), "")
        message = f"POST {endpoint}: HTTP {status}: {error}" + (f" ({description})" if description else "")
        raise ProviderError(message, error if isinstance(document.get("error"), str) else None)
    id_token = document.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise ProviderError(f"POST {endpoint}: the answer has no id_token (is 'openid' among the scopes?)")
    refresh_token = document.get("refresh_token")
    expires_in = document.get("expires_in")
    return Tokens(
        id_token=id_token,
        refresh_token=refresh_token if isinstance(refresh_token, str) and refresh_token else None,
        expires_in=expires_in if isinstance(expires_in, int) and not isinstance(expires_in, bool) else None,
    )


def _short(value: Any, default: str) -> str:
    """An IdP's error text, one printable line and bounded: it is shown on pages and written to logs."""
    if not isinstance(value, str):
        return default
    text = "".join(c if c.isprintable() else "?" for c in value)
    return text[:MAX_ERROR_TEXT] + ("…" if len(text) > MAX_ERROR_TEXT else "")
