"""The decision for one request, before anything is forwarded: who is calling, and may it pass?

Order as kube-apiserver (and the Go proxy): credential -> authenticate -> only then look at the client's
own impersonation headers, so an unauthenticated caller learns nothing beyond 401.

- An id token of a trusted issuer: the caller is impersonated; with ``Impersonate-*`` headers
  (``kubectl --as``) each requested value is first checked with a SubjectAccessReview about the caller,
  and the target is impersonated instead, the caller recorded in ``originaluser.jetstack.io-*`` extras.
- Any other token, with ``--token-passthrough``: TokenReview; if it authenticates, the request goes with
  the caller's own token and headers, no impersonation, on connections that carry no credential of the
  proxy's. Likewise every request with ``--disable-impersonation``.

``Impersonate`` and ``PassThrough`` carry the exact headers to send upstream; which of the two it is decides
which connections carry the request (``server.upstreams``: the proxy's credential, or none of it).
``Deny`` carries the Status code and message for the client and a reason for the log. No sockets here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.bearer import CredentialError, find_credential
from kube_oidc_proxy.authn.model import Authenticated, Failure, NotMine, UserInfo
from kube_oidc_proxy.authn.passthrough import Passthrough
from kube_oidc_proxy.authz.checker import ImpersonationChecker, ReviewError
from kube_oidc_proxy.authz.requested import BadImpersonation, requested_impersonation
from kube_oidc_proxy.authz.review import target_user
from kube_oidc_proxy.clientip import Origin
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.headers import Headers, get_one
from kube_oidc_proxy.impersonation import CredentialLeak, Rewriter, UnforwardableIdentity
from kube_oidc_proxy.observe.metrics import Metrics

log = logging.getLogger("kop.gate")


@dataclass(frozen=True, slots=True)
class Impersonate:
    """Forward as the proxy (its credential), with ``headers`` naming the identity the proxy verified."""

    user: UserInfo  # who is calling (the access log's "inbound")
    headers: Headers
    outbound: UserInfo | None = None  # who the request goes out as, when the caller used --as


@dataclass(frozen=True, slots=True)
class PassThrough:
    """Forward with the caller's own credential in ``headers``, for kube-apiserver to judge it, and any
    ``Impersonate-*`` headers with it, as the caller (token passthrough, --disable-impersonation)."""

    user: UserInfo  # who kube-apiserver will see (the TokenReview's answer, or the verified id token)
    headers: Headers
    outbound: UserInfo | None = None  # whom the caller asks kube-apiserver to impersonate, for the record


Admit = Impersonate | PassThrough


@dataclass(frozen=True, slots=True)
class Deny:
    code: int
    message: str
    reason: str
    user: UserInfo | None = None  # the caller, when it was authenticated (for the audit event)
    failure: Failure | None = None  # why the credential was refused, when it was (for the metrics)

    def __post_init__(self) -> None:
        # exactly one of the two: a refused credential has no user, an authenticated caller no failure
        assert (self.user is None) != (self.failure is None), self


def is_websocket(head: RequestHead) -> bool:
    upgrade = get_one(head.headers, b"upgrade")
    return head.upgrade and upgrade is not None and upgrade.lower() == b"websocket"


class Gate:
    def __init__(
        self,
        authenticator: TokenAuthenticator,
        rewriter: Rewriter,
        *,
        checker: ImpersonationChecker | None = None,
        passthrough: Passthrough | None = None,
        disable_impersonation: bool = False,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics
        self.authenticator = authenticator
        self.rewriter = rewriter
        self.checker = checker
        self.passthrough = passthrough
        self.disable_impersonation = disable_impersonation

    async def decide(self, head: RequestHead, origin: Origin) -> Admit | Deny:
        try:
            credential = find_credential(head.headers, websocket=is_websocket(head))
        except CredentialError as exc:
            return Deny(401, "Unauthorized", str(exc), failure=Failure.MALFORMED)
        token = credential.token
        if token is None:
            return Deny(401, "Unauthorized", "no bearer token", failure=Failure.NO_TOKEN)

        cached = self.authenticator.lookup(token)
        if self.metrics is not None:
            self.metrics.token_cache_lookup(cached is not None)
        result = cached or await self.authenticator.authenticate(token)
        if isinstance(result, NotMine):
            if self.passthrough is None:
                return Deny(401, "Unauthorized", result.reason, failure=result.failure)
            reviewed = await self.passthrough.authenticate(token, origin.client_ip)
            if not isinstance(reviewed, Authenticated):
                reason = f"{result.reason}; {reviewed.reason}"
                return Deny(reviewed.code, reviewed.message, reason, failure=reviewed.failure)
            return self._as_caller(head, reviewed.user, origin)
        if not isinstance(result, Authenticated):
            return Deny(result.code, result.message, result.reason, failure=result.failure)
        if self.disable_impersonation:
            return self._as_caller(head, result.user, origin)

        caller = result.user
        try:
            requested = requested_impersonation(head.headers)
        except BadImpersonation as exc:
            return Deny(400, str(exc), f"bad impersonation headers: {exc}", caller)
        target = None
        if requested is not None:
            if self.checker is None:
                return Deny(403, "impersonation (kubectl --as) is not enabled", "no impersonation checker", caller)
            try:
                denied = await self.checker.first_denied(caller, requested)
            except ReviewError as exc:
                return Deny(
                    503, "cannot check the impersonation right now", f"SubjectAccessReview failed: {exc}", caller
                )
            if denied is not None:
                message = denied.forbidden_message(caller.username)
                return Deny(403, message, message, caller)
            target = target_user(requested, result.user)
        try:
            # a --as target is made for this request alone: nothing to remember it by
            headers = self.rewriter.upstream_headers(head, target or result.user, origin, remember=target is None)
        except UnforwardableIdentity as exc:
            return Deny(
                401, "Unauthorized: the identity cannot be forwarded to kube-apiserver as it is", str(exc), caller
            )
        except CredentialLeak as exc:
            log.error("refusing a request: %s", exc)  # noqa: TRY400 - a named condition, no traceback needed
            return Deny(500, "internal error while preparing the request", str(exc), caller)
        return Impersonate(result.user, headers, outbound=target)

    def _as_caller(self, head: RequestHead, user: UserInfo, origin: Origin) -> PassThrough | Deny:
        """Forward with the caller's own credential (passthrough, --disable-impersonation). Its
        ``Impersonate-*`` headers go too, for kube-apiserver to judge with that credential; read here only
        for the proxy's own record, and a set kube-apiserver would refuse is refused here first."""
        try:
            requested = requested_impersonation(head.headers)
        except BadImpersonation as exc:
            return Deny(400, str(exc), f"bad impersonation headers: {exc}", user)
        outbound = None
        if requested is not None:
            outbound = UserInfo(requested.user, requested.uid, requested.groups, requested.extra)
        return PassThrough(user, self.rewriter.passthrough_headers(head, origin), outbound)
