"""Building the parts from ``Config``: certificates, upstream target, authenticators, gate, auditor, proxy.

``load`` does the reading and checking that can fail (files, certificates, kubeconfig) and raises
``StartupError`` with one clear sentence; what it returns, an ``App``, is built but not started
(``lifecycle.start`` does that).
"""

from __future__ import annotations

import logging
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kube_oidc_proxy.audit.auditor import Auditor, Format, Mode
from kube_oidc_proxy.audit.backends import BatchSettings, LogFile, Sink, Webhook, WebhookTarget
from kube_oidc_proxy.audit.policy import PolicyError, parse_policy
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.passthrough import Passthrough
from kube_oidc_proxy.authz.checker import ImpersonationChecker
from kube_oidc_proxy.clientip import TrustedProxies, parse_networks
from kube_oidc_proxy.config import AuditBatchConfig, AuditConfig, Config, LoginConfig, OIDCConfig
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.gate import Gate
from kube_oidc_proxy.impersonation import Rewriter
from kube_oidc_proxy.kube.credentials import BearerToken
from kube_oidc_proxy.kube.execcredential import ExecCredential, ExecCredentialError
from kube_oidc_proxy.kube.target import UpstreamTarget, load_target, webhook_kubeconfig
from kube_oidc_proxy.login.handler import LoginIssuer, LoginPages, LoginSettings
from kube_oidc_proxy.login.proxyca import self_signed_root
from kube_oidc_proxy.login.sealed import derive_key
from kube_oidc_proxy.observe.accesslog import AccessLog
from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.observe.metrics import Metrics
from kube_oidc_proxy.oidcclient import Client
from kube_oidc_proxy.server.authentication import Authentication
from kube_oidc_proxy.server.inflight import InflightLimit, idle_connections
from kube_oidc_proxy.server.kubeclient import KubeClient
from kube_oidc_proxy.server.proxy import ProxyServer
from kube_oidc_proxy.server.tls import ServingTLS, client_context
from kube_oidc_proxy.server.upstreams import AsCaller, AsProxy

log = logging.getLogger("kop.app")

# The proxy's own API calls (SubjectAccessReview, TokenReview). client-go's 5/10 throttled --as users of
# the Go proxy (Tremolo issue #65); reviews are cached, so this is a ceiling, not a pace.
DEFAULT_CLIENT_QPS: Final = 50.0
DEFAULT_CLIENT_BURST: Final = 100


def _count_dropped_log_lines(access_log: AccessLog, metrics: Metrics) -> None:
    """Count dropped access lines, and diagnostic ones when ``lifecycle.setup_logging`` installed their queue."""
    access_log.queue.on_dropped = metrics.log_lines_dropped_counter("access")
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BoundedQueueHandler):
            handler.lines.on_dropped = metrics.log_lines_dropped_counter("diagnostic")


@dataclass
class App:
    config: Config
    tls: ServingTLS
    target: UpstreamTarget
    proxy: ProxyServer
    authentication: Authentication
    access_log: AccessLog
    client: KubeClient
    metrics: Metrics | None = None

    @property
    def key_sources(self) -> list[KeySource]:
        return self.authentication.key_sources


def _authentication(config: OIDCConfig, metrics: Metrics | None) -> Authentication:
    allow_system = config.allow_system_identities
    if config.authentication_config:
        return Authentication.from_file(
            config.authentication_config, allow_system_identities=allow_system, metrics=metrics
        )
    spec = config.to_spec(_read_oidc_ca(config.ca_file))
    return Authentication([spec], allow_system_identities=allow_system, metrics=metrics)


def _read_oidc_ca(path: str) -> bytes | None:
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise StartupError(f"cannot read --oidc-ca-file {path!r}: {exc.strerror}") from None


class _LoginIssuers:
    """The issuers browser login offers: those the authenticator trusts now (an --authentication-config reload
    may change them between two requests), each with a TLS context for its token endpoint."""

    def __init__(self, authentication: Authentication) -> None:
        self._authentication = authentication
        self._contexts: dict[bytes | None, ssl.SSLContext] = {}  # by CA bundle: built once, not per request

    def __call__(self) -> list[LoginIssuer]:
        issuers = []
        for authenticator in self._authentication.token_authenticator.authenticators:
            spec = authenticator.spec
            context = self._contexts.get(spec.ca_pem)
            if context is None:
                context = client_context(spec.ca_pem, what=f"the OIDC issuer {spec.issuer_url}")
                self._contexts[spec.ca_pem] = context
            issuers.append(LoginIssuer(spec.issuer_url, authenticator.keys.discovery, spec.ca_pem, context))
        return issuers


class _ProxyCA:
    """The CA a kubeconfig names for the proxy (``proxyca``), read again after the serving certificate changed."""

    def __init__(self, tls: ServingTLS, cert_file: str) -> None:
        self._tls = tls
        self._cert_file = cert_file
        self._seen = -1  # the reload count the PEM was read at
        self._pem: bytes | None = None

    def __call__(self) -> bytes | None:
        if self._tls.reloads != self._seen:
            self._seen = self._tls.reloads
            try:
                self._pem = self_signed_root(Path(self._cert_file).read_bytes())
            except OSError as exc:
                log.warning("cannot read %s for the login kubeconfig's CA: %s", self._cert_file, exc.strerror)
        return self._pem


class _SealKey:
    """The key that seals pending logins into cookies (``login.sealed``), derived from the serving private key
    (``--tls-private-key-file``): every worker loads the same file and every replica mounts the same Secret,
    so all derive the same key. Derived again after the serving certificates were reloaded: a new serving
    key is a new sealing key, and a login begun before the rotation is refused once ("sign in again");
    workers and replicas that reload at different moments disagree for that moment too."""

    def __init__(self, tls: ServingTLS, key_file: str) -> None:
        self._tls = tls
        self._key_file = key_file
        self._seen = tls.reloads
        try:
            self._key = derive_key(Path(key_file).read_bytes())
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise StartupError(f"cannot derive the browser login's key from {key_file!r}: {why}") from None

    def __call__(self) -> bytes:
        if self._tls.reloads != self._seen:
            self._seen = self._tls.reloads
            try:
                self._key = derive_key(Path(self._key_file).read_bytes())
            except (OSError, ValueError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                log.warning("cannot read %s for the browser login's key, keeping the last one: %s", self._key_file, why)
        return self._key


def _read_login_secret(path: str) -> str | None:
    if not path:
        return None
    try:
        secret = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not text"
        raise StartupError(f"cannot read --login-client-secret-file {path!r}: {why}") from None
    if not secret:
        raise StartupError(f"--login-client-secret-file {path!r} is empty")
    return secret


def _login_pages(
    config: Config, authentication: Authentication, tls: ServingTLS, access_log: AccessLog, metrics: Metrics | None
) -> LoginPages | None:
    login: LoginConfig = config.login
    if not login.enabled:
        return None
    client = Client(login.client_id, _read_login_secret(login.client_secret_file))
    specs = [a.spec for a in authentication.token_authenticator.authenticators]
    if not any(login.client_id in spec.audiences for spec in specs):
        log.warning(
            "--login-client-id %s is not an audience of any issuer the proxy trusts: tokens from browser login "
            "will be refused (add it to --oidc-client-id's issuer audiences or the authentication config)",
            login.client_id,
        )
    settings = LoginSettings(
        client,
        redirect_url=login.redirect_url,
        scopes=login.scopes,
        static_extra=dict(config.proxy.extra_user_headers),
        client_ip_extra=config.proxy.extra_user_header_client_ip,
    )
    return LoginPages(
        settings,
        _LoginIssuers(authentication),
        authentication.token_authenticator,
        access_log,
        seal_key=_SealKey(tls, config.serving.tls_private_key_file),
        proxy_ca=_ProxyCA(tls, config.serving.tls_cert_file),
        on_login=metrics.login if metrics is not None else None,
    )


def _exec_plugin(target: UpstreamTarget) -> ExecCredential | None:
    if target.exec_config is None:
        return None
    plugin = ExecCredential(target.exec_config)
    try:
        plugin.run_now()
    except ExecCredentialError as exc:
        raise StartupError(str(exc)) from None
    return plugin


def _mode(flag: str) -> Mode:
    return "batch" if flag == "batch" else "blocking-strict" if flag == "blocking-strict" else "blocking"


def _auditor(config: AuditConfig) -> Auditor | None:
    if not config.policy_file:
        return None
    try:
        policy = parse_policy(Path(config.policy_file).read_text())
    except OSError as exc:
        raise StartupError(f"cannot read --audit-policy-file {config.policy_file!r}: {exc.strerror}") from None
    except PolicyError as exc:
        raise StartupError(f"--audit-policy-file {config.policy_file!r}: {exc}") from None
    auditor = Auditor(policy, [])

    def settings(batch: AuditBatchConfig) -> BatchSettings:
        throttle = batch.throttle_qps if batch.throttle_enable else 0.0
        return BatchSettings(batch.buffer_size, batch.max_size, batch.max_wait, throttle, batch.throttle_burst)

    if config.log_path:
        try:
            sink: Sink = LogFile(
                config.log_path,
                max_size_mb=config.log_max_size,
                max_backups=config.log_max_backup,
                max_age_days=config.log_max_age,
                compress=config.log_compress,
            )
        except OSError as exc:
            raise StartupError(f"cannot open --audit-log-path {config.log_path!r}: {exc.strerror}") from None
        log_format: Format = "legacy" if config.log_format == "legacy" else "json"
        auditor.add_output(
            sink,
            format=log_format,
            mode=_mode(config.log_mode),
            batch=settings(config.log_batch),
            max_event_size=config.log_truncate.max_event_size if config.log_truncate.enabled else 0,
        )
    if config.webhook_config_file:
        hook = webhook_kubeconfig(config.webhook_config_file)
        context = client_context(
            hook.ca_pem,
            insecure=hook.insecure,
            client_cert_pem=hook.client_cert_pem,
            client_key_pem=hook.client_key_pem,
            what="the audit webhook",
        )
        target = WebhookTarget(hook.url, context, hook.token)
        truncate = config.webhook_truncate
        webhook = Webhook(
            target,
            initial_backoff=config.webhook_initial_backoff,
            max_batch_bytes=truncate.max_batch_size if truncate.enabled else 0,
        )
        auditor.add_output(
            webhook,
            format="json",
            mode=_mode(config.webhook_mode),
            batch=settings(config.webhook_batch),
            max_event_size=truncate.max_event_size if truncate.enabled else 0,
        )
    return auditor


def load(config: Config, access_log: AccessLog | None = None, *, with_metrics: bool = True) -> App:
    """Read files and build the parts; every failure is a StartupError naming what is wrong.

    ``with_metrics=False`` is for the parent of ``--workers``, which checks the configuration but must not
    create metric files of its own."""
    metrics = Metrics() if config.proxy.metrics_bind_address and with_metrics else None
    tls = ServingTLS(config.serving)
    target = load_target(config.client, os.environ)
    authentication = _authentication(config.oidc, metrics)
    rewriter = Rewriter(
        upstream_host=target.authority.encode(),
        static_extra=dict(config.proxy.extra_user_headers),
        client_ip_extra=config.proxy.extra_user_header_client_ip,
    )
    access_log = access_log or AccessLog(json=config.proxy.log_format == "json")
    if metrics is not None:
        _count_dropped_log_lines(access_log, metrics)
    max_reads, max_mutating = config.proxy.max_requests_inflight, config.proxy.max_mutating_requests_inflight
    max_idle = idle_connections(max_reads, max_mutating)
    as_proxy = AsProxy(target, BearerToken(target.token, target.token_file, exec_plugin=_exec_plugin(target)), max_idle)
    client = KubeClient(
        as_proxy,
        qps=config.client.qps or DEFAULT_CLIENT_QPS,
        burst=config.client.burst or DEFAULT_CLIENT_BURST,
        metrics=metrics,
    )
    gate = Gate(
        authentication.token_authenticator,
        rewriter,
        checker=ImpersonationChecker(
            client,
            timeout=config.proxy.subject_access_review_timeout,
            on_reviews=metrics.reviews_counter("subjectaccessreviews") if metrics else None,
        ),
        passthrough=Passthrough(
            client,
            config.proxy.token_passthrough_audiences,
            on_reviews=metrics.reviews_counter("tokenreviews") if metrics else None,
        )
        if config.proxy.token_passthrough
        else None,
        disable_impersonation=config.proxy.disable_impersonation,
        metrics=metrics,
    )
    auditor = _auditor(config.audit)
    if auditor is not None and metrics is not None:
        auditor.on_dropped = metrics.audit_dropped_counter()
        auditor.on_failed = metrics.audit_failed_counter()
    proxy = ProxyServer(
        gate=gate,
        as_proxy=as_proxy,
        as_caller=AsCaller(target, max_idle),
        access_log=access_log,
        request_timeout=target.request_timeout,
        auditor=auditor,
        metrics=metrics,
        trusted_proxies=TrustedProxies(parse_networks(config.proxy.trusted_proxy_cidrs)),
        max_connections=config.proxy.max_client_connections,
        inflight=InflightLimit(max_reads, max_mutating),
        http2_max_streams=config.serving.http2_max_streams,
        login=_login_pages(config, authentication, tls, access_log, metrics),
    )
    return App(config, tls, target, proxy, authentication, access_log, client, metrics)
