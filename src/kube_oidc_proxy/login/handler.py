"""The browser login's flow: one request in (``LoginRequest``), one complete response out (``LoginResponse``).

- ``GET /login``: the chosen issuer's authorization endpoint (302) with PKCE S256, a state and a nonce; the
  login (``pending``) goes to the browser sealed in a cookie of its own (``sealed``, ``cookies``), so no
  process keeps it and the callback may reach any worker or replica. Several issuers and none chosen: a
  chooser page. The only ``Location`` this module ever sends is that endpoint, with our redirect_uri.
- ``GET /login/callback``: the state first (missing, without this browser's cookie for it, sealed for another
  state or with another key, expired, or used already here (``spent``): a 400 page, and an IdP ``error`` is
  only believed after it), then the code at the token endpoint, then the id_token through the proxy's own
  ``TokenAuthenticator`` (the one API requests use), the nonce and the issuer; a page with what the proxy will
  send as ``Impersonate-*`` and the kubeconfig, or a page saying why not. Once the state's cookie was found,
  the answer clears it, whatever the outcome.
- ``GET /login/kubeconfig``: the kubeconfig alone, as an attachment (no session: it holds nothing personal).
- ``GET /login/style.css``: the stylesheet.

Codes, states, tokens and secrets are never logged and never put in a URL the proxy makes (the authorization
URL carries the state and the PKCE challenge, as it must). Every refusal gets an AuFail access line (the path
only) and a diagnostic line; a sign-in gets an info line naming the user and the issuer.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import quote

from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.model import Authenticated, Rejected
from kube_oidc_proxy.authn.token import MalformedToken, parse_compact
from kube_oidc_proxy.impersonation import UnforwardableIdentity
from kube_oidc_proxy.login import pages
from kube_oidc_proxy.login.cookies import clear_cookie, login_cookie, set_cookie
from kube_oidc_proxy.login.hosts import parse_host
from kube_oidc_proxy.login.kubeconfig import KubeconfigParams, Plugin, render
from kube_oidc_proxy.login.pending import LIFETIME_SECONDS, PendingLogin
from kube_oidc_proxy.login.ratelimit import RateLimiter
from kube_oidc_proxy.login.responses import CSS, YAML, LoginResponse, refusal, response
from kube_oidc_proxy.login.routes import ALLOWED_METHODS, BadQuery, LoginRequest, Parsed, Route, parse_target
from kube_oidc_proxy.login.sealed import MAX_TEXT, seal, unseal
from kube_oidc_proxy.login.spent import Spend, SpentStates
from kube_oidc_proxy.login.text import one_line
from kube_oidc_proxy.login.whoami import whoami
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.oidcclient import (
    OFFLINE_ACCESS,
    Client,
    ProviderError,
    ProviderMetadata,
    authorization_url,
    default_scopes,
    exchange_code,
    new_pkce,
    provider_metadata,
    random_token,
)

log = logging.getLogger("kop.login")

FULL_RETRY_AFTER: Final = b"60"  # the spent states are full: they expire within minutes
TOO_MANY: Final = "too many logins in progress"
_FILE_NAME_UNSAFE: Final = re.compile(r"[^A-Za-z0-9.-]")


@dataclass(frozen=True, slots=True)
class LoginIssuer:
    """An issuer as the login sees it, looked up per request (an authentication-config reload may change them)."""

    url: str
    discovery: Mapping[str, Any] | None  # KeySource.discovery: None until the issuer was reached
    ca_pem: bytes | None  # --oidc-ca-file or the config's certificateAuthority; None: system roots
    ssl_context: ssl.SSLContext  # for the token endpoint


@dataclass(frozen=True, slots=True)
class LoginSettings:
    client: Client
    redirect_url: str = ""  # "": https://<the request's Host>/login/callback
    scopes: tuple[str, ...] = ()  # (): oidcclient.default_scopes of the issuer's scopes_supported
    static_extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # --extra-user-headers
    client_ip_extra: bool = False  # --extra-user-header-client-ip


class LoginPages:
    def __init__(
        self,
        settings: LoginSettings,
        issuers: Callable[[], Sequence[LoginIssuer]],
        authenticator: TokenAuthenticator,
        access_log: AccessLog,
        *,
        seal_key: Callable[[], bytes],
        proxy_ca: Callable[[], bytes | None] = lambda: None,
        on_login: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._issuers = issuers
        self._authenticator = authenticator
        self._access_log = access_log
        self._seal_key = seal_key  # looked up per login: a certificate reload changes it
        self._proxy_ca = proxy_ca
        self._on_login = on_login  # counts callbacks by outcome (the logins metric)
        self.clock = clock
        self.spent = SpentStates()
        self.limiter = RateLimiter()

    async def handle(self, request: LoginRequest) -> LoginResponse:
        answer = await self._answer(request)
        if answer.refusal:
            path = request.target.partition(b"?")[0]
            self._access_log.refused(request.client_ip, answer.status, f"browser login: {answer.refusal}", path)
            log.info("browser login from %s refused (%d): %s", request.client_ip, answer.status, answer.refusal)
        return answer

    async def _answer(self, request: LoginRequest) -> LoginResponse:
        wait = self.limiter.take(request.client_ip, self.clock())
        if wait:
            body = pages.error(None, "Too many requests", "Too many login requests from your address.", again=False)
            return refusal(429, body, "rate limited", extra=[(b"Retry-After", b"%d" % wait)])
        if request.method not in ALLOWED_METHODS:
            body = pages.error(None, "Method not allowed", "The login pages answer GET only.", again=False)
            return refusal(405, body, "method not allowed", extra=[(b"Allow", b"GET, HEAD")])
        try:
            parsed = parse_target(request.target)
        except BadQuery as exc:
            return refusal(400, pages.error(None, "Bad request", f"The request cannot be read: {exc}."), str(exc))
        if parsed.route is Route.STYLE:
            return response(200, pages.stylesheet(), CSS)
        if parsed.route is Route.NOT_FOUND:
            return refusal(404, pages.error(None, "Not found", "There is no such page."), "no such page")
        host = parse_host(request.host)
        if host is None:
            body = pages.error(None, "Bad request", "The request's Host header is not a host name and port.")
            return refusal(400, body, "bad Host header")
        if parsed.route is Route.START:
            return self._start(request, parsed, host)
        if parsed.route is Route.KUBECONFIG:
            return self._kubeconfig(parsed, host)
        answer = await self._callback(request, parsed, host)
        if self._on_login is not None:
            self._on_login(_outcome(answer))
        return answer

    # -- choosing the issuer ------------------------------------------------------------------------

    def _choose(self, parsed: Parsed, host: str) -> LoginIssuer | LoginResponse | None:
        """The issuer the query names (or the only one); None when several exist and none is named."""
        issuers = {issuer.url: issuer for issuer in self._issuers()}
        if not issuers:
            body = pages.error(host, "Login unavailable", "No identity provider is configured.", again=False)
            return refusal(503, body, "no issuer is configured")
        wanted = parsed.query.get("issuer")
        if wanted is None:
            return next(iter(issuers.values())) if len(issuers) == 1 else None
        chosen = issuers.get(wanted)
        if chosen is None:
            body = pages.error(host, "Unknown identity provider", "This cluster does not accept that issuer.")
            return refusal(400, body, "unknown issuer")
        return chosen

    def _provider(self, issuer: LoginIssuer, host: str) -> ProviderMetadata | LoginResponse:
        if issuer.discovery is None:
            body = pages.error(
                host,
                "Identity provider unavailable",
                f"The proxy has not reached {issuer.url} yet. Try again in a minute.",
            )
            return refusal(503, body, f"issuer {issuer.url} not loaded yet", extra=[(b"Retry-After", b"30")])
        try:
            return provider_metadata(issuer.discovery)
        except ProviderError as exc:
            body = pages.error(host, "Identity provider unusable", f"{issuer.url} cannot be used to sign in.", str(exc))
            return refusal(502, body, f"issuer {issuer.url}: {exc}")

    def _scopes(self, provider: ProviderMetadata | None) -> tuple[str, ...]:
        if self.settings.scopes:
            return self.settings.scopes
        return default_scopes(provider.scopes_supported if provider is not None else None)

    def _page_scopes(self, provider: ProviderMetadata) -> tuple[str, ...]:
        """What the page's own sign-in asks for: the plugin's scopes without offline_access. The page keeps no
        refresh token, and an offline grant costs the user their IdP session at some providers (Keycloak signs
        the browser out of single sign-on), so the plugin's own first login would ask for the password again."""
        return tuple(s for s in self._scopes(provider) if s != OFFLINE_ACCESS)

    # -- the routes -----------------------------------------------------------------------------------

    def _start(self, request: LoginRequest, parsed: Parsed, host: str) -> LoginResponse:
        issuer = self._choose(parsed, host)
        if isinstance(issuer, LoginResponse):
            return issuer
        if issuer is None:
            return response(200, pages.chooser(host, [i.url for i in self._issuers()]))
        provider = self._provider(issuer, host)
        if isinstance(provider, LoginResponse):
            return provider
        now = self.clock()
        if self.spent.full(now):  # its callback would be refused: say so before the person signs in
            return _too_many(host)
        redirect_uri = self.settings.redirect_url or f"https://{host}/login/callback"
        state, nonce, pkce = random_token(), random_token(), new_pkce()
        pending = PendingLogin(state, nonce, pkce.verifier, issuer.url, redirect_uri, now + LIFETIME_SECONDS)
        sealed = seal(self._seal_key(), pending)
        if len(sealed) > MAX_TEXT:  # only an issuer URL of kilobytes makes it so long
            body = pages.error(host, "Identity provider unusable", f"{issuer.url} cannot be used to sign in.")
            return refusal(502, body, f"issuer {issuer.url}: the login does not fit in a cookie")
        location = authorization_url(
            provider,
            client_id=self.settings.client.client_id,
            redirect_uri=redirect_uri,
            scopes=self._page_scopes(provider),
            state=state,
            nonce=nonce,
            pkce=pkce,
        )
        if not (location.isascii() and location.isprintable()):  # a discovery document's URL, never a header's end
            body = pages.error(host, "Identity provider unusable", f"{issuer.url} cannot be used to sign in.")
            return refusal(502, body, f"issuer {issuer.url}: the authorization endpoint is not a plain URL")
        cookie = set_cookie(state, sealed)
        return response(302, b"", extra=[(b"Location", location.encode()), (b"Set-Cookie", cookie)])

    async def _callback(self, request: LoginRequest, parsed: Parsed, host: str) -> LoginResponse:
        state = parsed.query.get("state")
        if not state:
            return _bad_link(host, "the callback has no state")
        sealed = login_cookie(request.cookies, state)
        if sealed is None:  # another browser's state, a made-up one, or this browser's cookie was cleared
            used = self.spent.used(state, self.clock())
            return _bad_link(host, "the state was used already" if used else "no login cookie for the state")
        answer = await self._sealed_callback(request, parsed, host, state, sealed)
        return dataclasses.replace(answer, headers=[*answer.headers, (b"Set-Cookie", clear_cookie(state))])

    async def _sealed_callback(
        self, request: LoginRequest, parsed: Parsed, host: str, state: str, sealed: str
    ) -> LoginResponse:
        now = self.clock()
        login = unseal(self._seal_key(), sealed, state, now)
        if login is None:
            return _bad_link(host, "the login cookie is expired, altered, or sealed for another state or key")
        spent = self.spent.spend(state, now)  # one use, whatever happens next
        if spent is Spend.USED:
            return _bad_link(host, "the state was used already")
        if spent is Spend.FULL:
            return _too_many(host)
        query = parsed.query
        if "error" in query:  # the IdP's answer, believed only now that the state is ours
            error = one_line(query["error"])
            description = one_line(query.get("error_description", ""))
            detail = f"{error}: {description}" if description else error
            body = pages.error(host, "Sign-in failed", "The identity provider did not sign you in:", detail)
            return refusal(403, body, f"the identity provider answered {detail}")
        code = query.get("code")
        if not code:
            return _bad_link(host, "the callback has no code")
        issuer = {i.url: i for i in self._issuers()}.get(login.issuer)
        if issuer is None:
            body = pages.error(host, "Unknown identity provider", "This cluster no longer accepts that issuer.")
            return refusal(400, body, "the issuer is no longer configured")
        provider = self._provider(issuer, host)
        if isinstance(provider, LoginResponse):
            return provider
        try:
            tokens = await exchange_code(
                provider,
                self.settings.client,
                issuer.ssl_context,
                code=code,
                redirect_uri=login.redirect_uri,
                verifier=login.verifier,
            )
        except ProviderError as exc:
            detail = one_line(str(exc))
            body = pages.error(host, "Sign-in failed", "The identity provider did not give a token:", detail)
            return refusal(502, body, f"token endpoint: {detail}")
        return await self._verify(request, login, tokens.id_token, host)

    async def _verify(self, request: LoginRequest, login: PendingLogin, id_token: str, host: str) -> LoginResponse:
        result = await self._authenticator.authenticate(id_token.encode())
        if not isinstance(result, Authenticated):
            status = 503 if isinstance(result, Rejected) and result.code == 503 else 403
            return _refused(host, login.issuer, one_line(result.reason), status)
        if result.issuer != login.issuer:
            return _refused(host, login.issuer, "the token was issued by another issuer than the one chosen")
        try:
            nonce = parse_compact(id_token.encode()).claims.get("nonce")
        except MalformedToken:  # verified just now: cannot happen
            nonce = None
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), login.nonce.encode()):
            return _refused(host, login.issuer, "the token's nonce does not match this sign-in")
        settings = self.settings
        try:
            who = whoami(result.user, settings.static_extra, request.client_ip if settings.client_ip_extra else None)
        except UnforwardableIdentity as exc:
            return _refused(host, login.issuer, f"the identity cannot be forwarded to kube-apiserver: {exc}")
        log.info("browser login: %s signed in with %s", one_line(who.username), login.issuer)
        issuer = {i.url: i for i in self._issuers()}.get(login.issuer)
        params = self._params(host, login.issuer, issuer, None)
        links = {
            plugin: f"/login/kubeconfig?issuer={quote(login.issuer, safe='')}&plugin={plugin.value}"
            for plugin in Plugin
        }
        page = pages.SignedIn(
            host=host,
            issuer=login.issuer,
            who=who,
            kubeconfig=render(params, Plugin.KUBE_OIDC_PROXY),
            kubelogin=render(params, Plugin.KUBELOGIN),
            download_plugin=links[Plugin.KUBE_OIDC_PROXY],
            download_kubelogin=links[Plugin.KUBELOGIN],
            install_command=_install_command(host, links[Plugin.KUBE_OIDC_PROXY], private_ca=bool(params.proxy_ca_pem)),
        )
        return response(200, pages.signed_in(page))

    def _params(
        self, host: str, url: str, issuer: LoginIssuer | None, provider: ProviderMetadata | None
    ) -> KubeconfigParams:
        if provider is None and issuer is not None and issuer.discovery is not None:
            try:
                provider = provider_metadata(issuer.discovery)
            except ProviderError:
                provider = None
        return KubeconfigParams(
            host=host,
            issuer=url,
            client_id=self.settings.client.client_id,
            scopes=self._scopes(provider),
            proxy_ca_pem=self._proxy_ca(),
            issuer_ca_pem=issuer.ca_pem if issuer is not None else None,
        )

    def _kubeconfig(self, parsed: Parsed, host: str) -> LoginResponse:
        issuer = self._choose(parsed, host)
        if isinstance(issuer, LoginResponse):
            return issuer
        if issuer is None:
            body = pages.error(host, "Bad request", "Name the issuer: /login/kubeconfig?issuer=<issuer URL>.")
            return refusal(400, body, "no issuer named")
        try:
            plugin = Plugin(parsed.query.get("plugin", Plugin.KUBE_OIDC_PROXY.value))
        except ValueError:
            body = pages.error(host, "Bad request", "The plugin is kube-oidc-proxy or kubelogin.")
            return refusal(400, body, "unknown plugin")
        provider = None
        if not self.settings.scopes:  # the default scopes are those the issuer lists
            found = self._provider(issuer, host)
            if isinstance(found, LoginResponse):
                return found
            provider = found
        text = render(self._params(host, issuer.url, issuer, provider), plugin)
        disposition = (b"Content-Disposition", b'attachment; filename="kubeconfig"')
        return response(200, text.encode(), YAML, extra=[disposition])


def _bad_link(host: str, reason: str) -> LoginResponse:
    body = pages.error(
        host,
        "This sign-in link is not valid",
        "It was used already, has expired, or was started in another browser. Sign in again from the start.",
    )
    return refusal(400, body, reason)


def _too_many(host: str) -> LoginResponse:
    body = pages.error(host, "Too many sign-ins", "Too many sign-ins are in progress. Try again in a minute.")
    return refusal(503, body, TOO_MANY, extra=[(b"Retry-After", FULL_RETRY_AFTER)])


def _refused(host: str, issuer: str, reason: str, status: int = 403) -> LoginResponse:
    return refusal(status, pages.refused(host, issuer, reason), f"refused: {reason}")


def _outcome(answer: LoginResponse) -> str:
    """The logins metric's ``result`` for a callback's answer."""
    if not answer.refusal:
        return "success"
    if answer.refusal == TOO_MANY:
        return "overloaded"  # this process's spent states are full
    if answer.status in (502, 503) or answer.refusal.startswith("the identity provider"):
        return "provider_error"  # the IdP refused, failed or cannot be reached (its keys included)
    if answer.refusal.startswith("refused:"):
        return "refused"
    return "bad_request"


def _install_command(host: str, link: str, *, private_ca: bool) -> str:
    """Save the kubeconfig and use it. The proxy's CA is private when the kubeconfig names one: curl would not
    trust the proxy then, so the command starts from the downloaded file instead."""
    path = f"~/.kube/{_FILE_NAME_UNSAFE.sub('-', host)}.yaml"
    if private_ca:
        fetch = f"mkdir -p ~/.kube && mv ~/Downloads/kubeconfig {path}"
    else:
        fetch = f"mkdir -p ~/.kube && curl -fsS -o {path} 'https://{host}{link}'"
    return f"{fetch}\nexport KUBECONFIG={path}\nkubectl auth whoami"
