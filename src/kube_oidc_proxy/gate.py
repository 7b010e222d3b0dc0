"""The decision for one request, before anything is forwarded: who is calling, and may it pass?

Order as kube-apiserver (and the Go proxy): credential -> authenticate -> only then look at the client's
own impersonation headers, so an unauthenticated caller learns nothing beyond 401.
``Admit`` carries the exact headers to send upstream (minus the proxy's own credential); ``Deny`` carries
the Status code and message for the client and a reason for the log. No sockets here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.bearer import CredentialError, find_credential
from kube_oidc_proxy.authn.model import Authenticated, NotMine, UserInfo
from kube_oidc_proxy.http1.events import RequestHead
from kube_oidc_proxy.http1.headers import Headers, get_one
from kube_oidc_proxy.impersonation import CredentialLeak, Rewriter, impersonation_requested

log = logging.getLogger("kop.gate")


@dataclass(frozen=True, slots=True)
class Admit:
    user: UserInfo
    headers: Headers


@dataclass(frozen=True, slots=True)
class Deny:
    code: int
    message: str
    reason: str


def is_websocket(head: RequestHead) -> bool:
    upgrade = get_one(head.headers, b"upgrade")
    return head.upgrade and upgrade is not None and upgrade.lower() == b"websocket"


class Gate:
    def __init__(self, authenticator: TokenAuthenticator, rewriter: Rewriter) -> None:
        self.authenticator = authenticator
        self.rewriter = rewriter

    async def decide(self, head: RequestHead, peer_ip: str) -> Admit | Deny:
        try:
            credential = find_credential(head.headers, websocket=is_websocket(head))
        except CredentialError as exc:
            return Deny(401, "Unauthorized", str(exc))
        token = credential.token
        if token is None:
            return Deny(401, "Unauthorized", "no bearer token")

        result = self.authenticator.lookup(token) or await self.authenticator.authenticate(token)
        if isinstance(result, NotMine):
            return Deny(401, "Unauthorized", result.reason)
        if not isinstance(result, Authenticated):
            return Deny(result.code, result.message, result.reason)

        requested = impersonation_requested(head.headers)
        if requested:
            names = ", ".join(sorted({n.decode("latin-1") for n in requested}))
            return Deny(
                403,
                "impersonation requests (kubectl --as) are not enabled on this kube-oidc-proxy",
                f"client sent impersonation headers: {names}",
            )
        try:
            headers = self.rewriter.upstream_headers(
                head.headers,
                result.user,
                peer_ip=peer_ip,
                upgrade=head.upgrade,
                chunked=head.framing == "chunked",
            )
        except CredentialLeak as exc:
            log.error("refusing a request: %s", exc)  # noqa: TRY400 - a named condition, no traceback needed
            return Deny(500, "internal error while preparing the request", str(exc))
        return Admit(result.user, headers)
