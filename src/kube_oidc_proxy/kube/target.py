"""Where kube-apiserver is and how we authenticate to it: kubeconfig rules or the in-cluster config.

Mirrors client-go: with no connection flag the in-cluster config (KUBERNETES_SERVICE_HOST/PORT and the
service-account files); otherwise kubeconfig loading rules (``--kubeconfig``, else ``$KUBECONFIG``, else
``~/.kube/config``) with the flags overriding what the file says. Reading files is all the IO here.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

from kube_oidc_proxy.config import ClientConfig
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.kube.execcredential import ExecConfig, ExecCredentialError

SERVICE_ACCOUNT_DIR: Final = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    scheme: str
    host: str
    port: int
    ca_pem: bytes | None = None  # None: system trust store
    insecure: bool = False
    tls_server_name: str = ""
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    token: str = ""
    token_file: str = ""
    request_timeout: float = 0.0
    exec_config: ExecConfig | None = None

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def server_hostname(self) -> str:
        return self.tls_server_name or self.host


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read {what} {str(path)!r}: {exc.strerror or exc}") from None


def _parse_server(server: str) -> tuple[str, str, int]:
    url = urlsplit(server)
    if url.scheme not in ("https", "http") or not url.hostname:
        raise StartupError(f"kube-apiserver URL {server!r} is not an http(s) URL")
    if url.path not in ("", "/"):
        raise StartupError(f"kube-apiserver URL {server!r} with a path prefix is not supported")
    return url.scheme, url.hostname, url.port or (443 if url.scheme == "https" else 80)


def in_cluster(client: ClientConfig, environ: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> UpstreamTarget:
    host = environ.get("KUBERNETES_SERVICE_HOST", "")
    port = environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise StartupError(
            "not running in a cluster (KUBERNETES_SERVICE_HOST/PORT are not set); "
            "give --kubeconfig or --server to say where kube-apiserver is"
        )
    if not port.isdigit():
        raise StartupError(f"KUBERNETES_SERVICE_PORT is not a port number: {port!r}")
    token_file = sa_dir / "token"
    _read(token_file, "service account token")
    return UpstreamTarget(
        scheme="https",
        host=host,
        port=int(port),
        ca_pem=_read(sa_dir / "ca.crt", "service account CA"),
        token_file=str(token_file),
        request_timeout=client.request_timeout,
    )


def _load_kubeconfig_files(paths: list[str]) -> tuple[dict[str, Any], dict[str, Path]]:
    """Merge kubeconfig files the way clientcmd does: the first file to define a name wins."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}, "current-context": ""}
    origin: dict[str, Path] = {}  # "clusters/<name>" -> directory for relative paths
    for path in paths:
        try:
            data = yaml.safe_load(_read(path, "kubeconfig")) or {}
        except yaml.YAMLError as exc:
            raise StartupError(f"kubeconfig {path!r} is not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise StartupError(f"kubeconfig {path!r} is not a mapping")
        base = Path(path).resolve().parent
        for section, inner in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in data.get(section) or []:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    name = entry["name"]
                    if name not in merged[section]:
                        merged[section][name] = entry.get(inner) or {}
                        origin[f"{section}/{name}"] = base
        if not merged["current-context"] and isinstance(data.get("current-context"), str):
            merged["current-context"] = data["current-context"]
    return merged, origin


def _kubeconfig_paths(client: ClientConfig, environ: Mapping[str, str]) -> list[str]:
    if client.kubeconfig:
        return [client.kubeconfig]
    if environ.get("KUBECONFIG"):
        return [p for p in environ["KUBECONFIG"].split(os.pathsep) if p and Path(p).exists()]
    default = Path(environ.get("HOME", "~")).expanduser() / ".kube" / "config"
    return [str(default)] if default.exists() else []


def _data_or_file(section: dict[str, Any], base: Path, key: str, what: str) -> bytes | None:
    data = section.get(f"{key}-data")
    if data:
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise StartupError(f"kubeconfig {key}-data is not valid base64") from None
    path = section.get(key)
    if path:
        return _read(base / path, what)
    return None


def from_kubeconfig(client: ClientConfig, environ: Mapping[str, str]) -> UpstreamTarget:
    merged, origin = _load_kubeconfig_files(_kubeconfig_paths(client, environ))
    context_name = client.context or merged["current-context"]
    context = merged["contexts"].get(context_name, {}) if context_name else {}
    if client.context and not context:
        raise StartupError(f"context {client.context!r} is not in the kubeconfig")
    cluster_name = client.cluster or context.get("cluster", "")
    user_name = client.user or context.get("user", "")
    cluster = merged["clusters"].get(cluster_name, {}) if cluster_name else {}
    user = merged["users"].get(user_name, {}) if user_name else {}
    if client.cluster and not cluster:
        raise StartupError(f"cluster {client.cluster!r} is not in the kubeconfig")
    if client.user and not user:
        raise StartupError(f"user {client.user!r} is not in the kubeconfig")
    cluster_base = origin.get(f"clusters/{cluster_name}", Path.cwd())
    user_base = origin.get(f"users/{user_name}", Path.cwd())

    for unsupported in ("auth-provider", "username", "password"):
        if user.get(unsupported) and not (client.token or client.client_certificate):
            raise StartupError(
                f"kubeconfig user {user_name!r} uses {unsupported!r}, which is not supported yet; "
                "use a token, tokenFile or client certificate"
            )
    if cluster.get("proxy-url"):
        raise StartupError("kubeconfig proxy-url is not supported")

    server = client.server or cluster.get("server", "")
    if not server:
        raise StartupError("no kube-apiserver address: set --server or a kubeconfig with a cluster server")
    scheme, host, port = _parse_server(server)

    insecure = client.insecure_skip_tls_verify or bool(cluster.get("insecure-skip-tls-verify"))
    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    if client.certificate_authority:
        ca = _read(client.certificate_authority, "certificate authority")
    else:
        ca = _data_or_file(cluster, cluster_base, "certificate-authority", "certificate authority")
    if client.client_certificate:
        cert = _read(client.client_certificate, "client certificate")
        key = _read(client.client_key, "client key")
    else:
        cert = _data_or_file(user, user_base, "client-certificate", "client certificate")
        key = _data_or_file(user, user_base, "client-key", "client key")
        if bool(cert) != bool(key):
            raise StartupError(f"kubeconfig user {user_name!r} needs both a client certificate and a key")

    exec_config = None
    if user.get("exec") and not (client.token or client.client_certificate or user.get("token")):
        try:
            exec_config = ExecConfig.from_kubeconfig(user["exec"], {"server": server})
        except ExecCredentialError as exc:
            raise StartupError(f"kubeconfig user {user_name!r}: {exc}") from None
    token = client.token or (user.get("token") or "")
    token_file = "" if client.token else str(user.get("tokenFile") or "")
    if token_file:
        token_file = str(user_base / token_file)
        _read(token_file, "token file")
    return UpstreamTarget(
        scheme=scheme,
        host=host,
        port=port,
        ca_pem=None if insecure else ca,
        insecure=insecure,
        tls_server_name=client.tls_server_name or str(cluster.get("tls-server-name") or ""),
        client_cert_pem=cert,
        client_key_pem=key,
        token=token,
        token_file=token_file,
        request_timeout=client.request_timeout,
        exec_config=exec_config,
    )


def _with_overrides(target: UpstreamTarget, client: ClientConfig) -> UpstreamTarget:
    """The in-cluster config with kubectl-style flags applied, as client-go's inClusterClientConfig does."""
    if client.server:
        scheme, host, port = _parse_server(client.server)
        target = replace(target, scheme=scheme, host=host, port=port)
    if client.certificate_authority:
        target = replace(target, ca_pem=_read(client.certificate_authority, "certificate authority"))
    if client.insecure_skip_tls_verify:
        target = replace(target, insecure=True, ca_pem=None)
    if client.tls_server_name:
        target = replace(target, tls_server_name=client.tls_server_name)
    if client.token:
        target = replace(target, token=client.token, token_file="")
    if client.client_certificate:
        target = replace(
            target,
            client_cert_pem=_read(client.client_certificate, "client certificate"),
            client_key_pem=_read(client.client_key, "client key"),
        )
    return target


def load_target(client: ClientConfig, environ: Mapping[str, str], sa_dir: Path = SERVICE_ACCOUNT_DIR) -> UpstreamTarget:
    if not client.explicit:
        return in_cluster(client, environ, sa_dir)
    in_a_pod = (
        bool(environ.get("KUBERNETES_SERVICE_HOST"))
        and bool(environ.get("KUBERNETES_SERVICE_PORT"))
        and (sa_dir / "token").exists()
    )
    if in_a_pod and not client.kubeconfig and not _kubeconfig_paths(client, environ):
        # No kubeconfig, but in a pod: client-go falls back to the in-cluster config with the flags applied.
        return _with_overrides(in_cluster(client, environ, sa_dir), client)
    return from_kubeconfig(client, environ)


@dataclass(frozen=True, slots=True)
class WebhookKubeconfig:
    """The server and credentials of a webhook kubeconfig (the audit webhook's --audit-webhook-config-file)."""

    url: str
    ca_pem: bytes | None
    insecure: bool
    client_cert_pem: bytes | None
    client_key_pem: bytes | None
    token: str


def webhook_kubeconfig(path: str) -> WebhookKubeconfig:
    merged, origin = _load_kubeconfig_files([path])
    context_name = merged["current-context"] or next(iter(merged["contexts"]), "")
    context = merged["contexts"].get(context_name, {})
    cluster_name = context.get("cluster") or next(iter(merged["clusters"]), "")
    user_name = context.get("user") or next(iter(merged["users"]), "")
    cluster = merged["clusters"].get(cluster_name, {})
    user = merged["users"].get(user_name, {})
    url = str(cluster.get("server") or "")
    if not url.startswith(("https://", "http://")):
        raise StartupError(f"webhook kubeconfig {path!r} has no http(s) server")
    base = origin.get(f"clusters/{cluster_name}", Path(path).parent)
    user_base = origin.get(f"users/{user_name}", Path(path).parent)
    return WebhookKubeconfig(
        url=url,
        ca_pem=_data_or_file(cluster, base, "certificate-authority", "certificate authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        client_cert_pem=_data_or_file(user, user_base, "client-certificate", "client certificate"),
        client_key_pem=_data_or_file(user, user_base, "client-key", "client key"),
        token=str(user.get("token") or ""),
    )
