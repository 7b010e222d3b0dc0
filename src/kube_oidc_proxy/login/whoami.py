"""What the proxy will tell kube-apiserver about the user who signed in: exactly the ``Impersonate-*``
values an API request with this id_token gets (``impersonation.identity_headers``, after the authenticator's
claim mappings and prefixes), so the page is ``kubectl auth whoami`` before the first kubectl command.

``system:authenticated`` is added as the proxy adds it; ``--extra-user-headers`` are merged in, and with
``--extra-user-header-client-ip`` the address this page was asked from stands for kubectl's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.impersonation import REMOTE_CLIENT_IP_EXTRA, identity_headers


@dataclass(frozen=True, slots=True)
class Whoami:
    username: str
    uid: str
    groups: tuple[str, ...]
    extra: tuple[tuple[str, tuple[str, ...]], ...]  # sorted by key


def whoami(user: UserInfo, static_extra: Mapping[str, tuple[str, ...]], client_ip: str | None = None) -> Whoami:
    """Raises ``impersonation.UnforwardableIdentity`` for an identity the proxy would refuse to forward."""
    headers = identity_headers(user, static_extra)
    groups = tuple(value.decode() for name, value in headers if name == b"impersonate-group")
    extra: dict[str, list[str]] = {}
    for extras in (user.extra, static_extra):
        for key, values in extras.items():
            extra.setdefault(key, []).extend(values)
    if client_ip is not None:
        extra.setdefault(REMOTE_CLIENT_IP_EXTRA, []).append(client_ip)
    return Whoami(user.username, user.uid, groups, tuple((k, tuple(v)) for k, v in sorted(extra.items())))
