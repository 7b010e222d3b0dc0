"""The kubeconfig the login page offers: its user runs an exec credential plugin, so it holds no token, no
secret and nothing of the user who signed in (anyone may download it).

Two variants: ``kube-oidc-proxy credential`` (this project's plugin) and int128/kubelogin
(``kubectl oidc-login get-token``), the plugin many users already have. ``certificate-authority-data`` is the
proxy's own CA when it is known (a self-signed root at the end of the serving chain); without it kubectl uses
the system roots. The issuer's CA (``--oidc-ca-file``, or an authentication-config ``certificateAuthority``)
goes to the plugin, which talks to the issuer itself.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from typing import Any

import yaml


class Plugin(enum.Enum):
    KUBE_OIDC_PROXY = "kube-oidc-proxy"
    KUBELOGIN = "kubelogin"


@dataclass(frozen=True, slots=True)
class KubeconfigParams:
    host: str  # host[:port] as the browser reached the proxy (hosts.parse_host)
    issuer: str
    client_id: str
    scopes: tuple[str, ...]
    proxy_ca_pem: bytes | None = None
    issuer_ca_pem: bytes | None = None


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode("ascii")


def exec_section(params: KubeconfigParams, plugin: Plugin) -> dict[str, Any]:
    if plugin is Plugin.KUBE_OIDC_PROXY:
        command = "kube-oidc-proxy"
        args = [
            "credential",
            f"--issuer-url={params.issuer}",
            f"--client-id={params.client_id}",
            f"--scopes={','.join(params.scopes)}",
        ]
        if params.issuer_ca_pem:
            args.append(f"--issuer-ca-data={_b64(params.issuer_ca_pem)}")
    else:
        command = "kubectl"
        args = ["oidc-login", "get-token", f"--oidc-issuer-url={params.issuer}", f"--oidc-client-id={params.client_id}"]
        args += [f"--oidc-extra-scope={scope}" for scope in params.scopes if scope != "openid"]
        if params.issuer_ca_pem:
            args.append(f"--certificate-authority-data={_b64(params.issuer_ca_pem)}")
    return {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": command,
        "args": args,
        "interactiveMode": "IfAvailable",
        "provideClusterInfo": False,
    }


def render(params: KubeconfigParams, plugin: Plugin) -> str:
    """The kubeconfig as YAML (``yaml.safe_dump``: values are quoted as needed, never interpreted)."""
    name = params.host
    user = f"oidc@{params.host}"
    cluster: dict[str, Any] = {"server": f"https://{params.host}"}
    if params.proxy_ca_pem:
        cluster["certificate-authority-data"] = _b64(params.proxy_ca_pem)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user, "user": {"exec": exec_section(params, plugin)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1_000_000)
