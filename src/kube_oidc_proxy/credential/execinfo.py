"""The ExecCredential protocol, plugin side (the proxy's own use of plugins is ``kube.execcredential``).

kubectl describes the call in ``KUBERNETES_EXEC_INFO`` (an ExecCredential whose ``spec.interactive`` says
whether the plugin may talk to the user) and reads an ExecCredential of the same apiVersion on stdout.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from kube_oidc_proxy.credential.errors import UsageError

V1: Final = "client.authentication.k8s.io/v1"
V1BETA1: Final = "client.authentication.k8s.io/v1beta1"
SUPPORTED: Final = (V1, V1BETA1)
ENV: Final = "KUBERNETES_EXEC_INFO"


@dataclass(frozen=True, slots=True)
class ExecInfo:
    api_version: str
    interactive: bool


def parse_exec_info(text: str | None, *, default_interactive: bool) -> ExecInfo:
    """What kubectl asked for. Without the variable (the command run by hand): v1, and interactive when a
    terminal is attached (``default_interactive``). A present variable without ``spec.interactive`` means
    not interactive: the plugin must not wait for a person nobody promised."""
    if text is None or not text.strip():
        return ExecInfo(V1, default_interactive)
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise UsageError(f"{ENV} is not JSON") from None
    if not isinstance(document, dict):
        raise UsageError(f"{ENV} is not a JSON object")
    api_version = document.get("apiVersion")
    if api_version not in SUPPORTED:
        raise UsageError(
            f"{ENV} asks for apiVersion {api_version!r}; this plugin speaks {' and '.join(SUPPORTED)} "
            "(set the kubeconfig's exec apiVersion to one of them)"
        )
    spec = document.get("spec")
    interactive = spec.get("interactive") if isinstance(spec, dict) else None
    return ExecInfo(str(api_version), interactive is True)


def credential_json(api_version: str, token: str, expiration: str) -> str:
    """The answer on stdout: the token and the RFC 3339 time from which kubectl must run the plugin again."""
    return json.dumps(
        {
            "apiVersion": api_version,
            "kind": "ExecCredential",
            "status": {"token": token, "expirationTimestamp": expiration},
        }
    )
