"""Typed settings, one frozen dataclass per flag group, each with ``validate() -> list[str]``.

Validation does no IO and never exits: ``Config.validate`` collects every problem (and the rules that span
groups) so the user sees them all at once. Files are read later, when the app starts (``app.load``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from kube_oidc_proxy.authn.model import SUPPORTED_SIGNING_ALGS, ClaimMapping, JWTAuthenticatorSpec
from kube_oidc_proxy.clientip import parse_networks
from kube_oidc_proxy.identity import extra_problem, reserved_extra_key
from kube_oidc_proxy.login.hosts import parse_host
from kube_oidc_proxy.tlsnames import TLS_VERSIONS, unknown_cipher_suites

MAX_WORKERS: Final = 64
# Client connections one process serves at once. An idle one costs ~33 KB (docs/benchmarks.md), so this is
# ~650 MB at most; with HTTP/1.1 every watch is a connection, and 10,000 watches per process are measured.
DEFAULT_MAX_CLIENT_CONNECTIONS: Final = 20_000
DEFAULT_MAX_REQUESTS_INFLIGHT: Final = 400  # kube-apiserver's defaults
DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT: Final = 200
LOG_FORMATS: Final = ("text", "json")


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``, as Go's net.SplitHostPort."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port or :port, got {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"an IPv6 address needs brackets ([::1]:9090), got {address!r}")
    return host, int(port)


def _flag_prefix(prefix: str) -> str:
    # kube-apiserver documents "-" as "no prefix" for --oidc-*-prefix; the Go proxy passed "" for that.
    return "" if prefix == "-" else prefix


@dataclass(frozen=True, slots=True)
class OIDCConfig:
    authentication_config: str = ""  # an AuthenticationConfiguration file instead of the flags below
    issuer_url: str = ""
    client_id: str = ""
    ca_file: str = ""
    username_claim: str = "sub"
    username_prefix: str = ""
    groups_claim: str = ""
    groups_prefix: str = ""
    signing_algs: tuple[str, ...] = ("RS256",)
    required_claims: tuple[tuple[str, str], ...] = ()
    allow_system_identities: bool = False

    def validate(self) -> list[str]:
        if self.authentication_config:
            return []  # the file is read and validated at start (app.load), and again when it changes
        errors: list[str] = []
        if not self.issuer_url:
            errors.append("--oidc-issuer-url is required (or --authentication-config)")
        else:
            url = urlsplit(self.issuer_url)
            if url.scheme != "https" or not url.hostname:
                errors.append(f"--oidc-issuer-url must be an https URL, got {self.issuer_url!r}")
            elif url.username or url.password or url.query or url.fragment:
                errors.append("--oidc-issuer-url must not contain user info, a query or a fragment")
        if not self.client_id:
            errors.append("--oidc-client-id is required")
        if not self.username_claim:
            errors.append("--oidc-username-claim must not be empty")
        if not self.signing_algs:
            errors.append("--oidc-signing-algs must name at least one algorithm")
        for alg in self.signing_algs:
            if alg not in SUPPORTED_SIGNING_ALGS:
                errors.append(
                    f"--oidc-signing-algs: {alg!r} is not supported "
                    f"(supported: {', '.join(sorted(SUPPORTED_SIGNING_ALGS))})"
                )
        for key, _ in self.required_claims:
            if not key:
                errors.append("--oidc-required-claim needs key=value with a non-empty key")
        return errors

    def to_spec(self, ca_pem: bytes | None) -> JWTAuthenticatorSpec:
        """The internal authenticator model, as kube-apiserver translates its legacy flags."""
        return JWTAuthenticatorSpec(
            issuer_url=self.issuer_url,
            audiences=(self.client_id,),
            username=ClaimMapping(self.username_claim, _flag_prefix(self.username_prefix)),
            groups=ClaimMapping(self.groups_claim, _flag_prefix(self.groups_prefix)) if self.groups_claim else None,
            required_claims=self.required_claims,
            signing_algs=frozenset(self.signing_algs),
            ca_pem=ca_pem,
        )


@dataclass(frozen=True, slots=True)
class SNICertKey:
    cert_file: str
    key_file: str
    domains: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServingConfig:
    bind_address: str = "0.0.0.0"  # noqa: S104 - the Go proxy's default: it serves the cluster's users
    secure_port: int = 6443
    tls_cert_file: str = ""
    tls_private_key_file: str = ""
    sni_cert_keys: tuple[SNICertKey, ...] = ()
    tls_min_version: str = "VersionTLS12"
    tls_cipher_suites: tuple[str, ...] = ()
    http2: bool = True  # offer h2 in ALPN (--disable-http2-serving turns it off)
    http2_max_streams: int = 0  # --http2-max-streams-per-connection; 0: kube-apiserver's default, 100

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.http2_max_streams < 0:
            errors.append(f"--http2-max-streams-per-connection must be 0 or more, got {self.http2_max_streams}")
        if not 1 <= self.secure_port <= 65535:
            errors.append(f"--secure-port must be between 1 and 65535, got {self.secure_port}")
        if not self.tls_cert_file or not self.tls_private_key_file:
            errors.append("--tls-cert-file and --tls-private-key-file are required (the proxy only serves HTTPS)")
        if self.tls_min_version not in TLS_VERSIONS:
            errors.append(f"--tls-min-version: {self.tls_min_version!r} is not one of {', '.join(TLS_VERSIONS)}")
        for name in unknown_cipher_suites(self.tls_cipher_suites):
            errors.append(f"--tls-cipher-suites: unknown or unsupported cipher suite {name!r}")
        return errors


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    readiness_probe_port: int | None = 8080  # None: no probe listener
    flush_interval: float = 0.05  # accepted for compatibility; every chunk is flushed at once
    extra_user_header_client_ip: bool = False
    extra_user_headers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    workers: int = 1
    shutdown_grace: float = 20.0  # in-flight requests and streams get this long after SIGTERM
    shutdown_delay: float = 0.0  # before that: serving normally, /ready 503, so load balancers move away
    token_passthrough: bool = False
    token_passthrough_audiences: tuple[str, ...] = ()
    disable_impersonation: bool = False
    metrics_bind_address: str = ""  # host:port of the /metrics listener; empty: no metrics
    log_format: str = "text"
    trusted_proxy_cidrs: tuple[str, ...] = ()  # peers whose X-Forwarded-For / X-Real-IP are believed
    max_client_connections: int = DEFAULT_MAX_CLIENT_CONNECTIONS
    max_requests_inflight: int = DEFAULT_MAX_REQUESTS_INFLIGHT  # 0: no limit
    max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT
    subject_access_review_timeout: float = 10.0  # one request's SubjectAccessReviews together (authz.checker's)
    readiness_require_all_issuers: bool = False  # else ready while at least one issuer has keys

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.log_format not in LOG_FORMATS:
            errors.append(f"--log-format must be text or json, got {self.log_format!r}")
        if self.metrics_bind_address:
            try:
                split_host_port(self.metrics_bind_address)
            except ValueError as exc:
                errors.append(f"--metrics-bind-address: {exc}")
        if self.shutdown_grace < 0:
            errors.append("--shutdown-grace-period must not be negative")
        if self.shutdown_delay < 0:
            errors.append("--shutdown-delay-duration must not be negative")
        if self.subject_access_review_timeout <= 0:
            timeout = self.subject_access_review_timeout
            errors.append(f"--subject-access-review-timeout must be greater than 0, got {timeout:g}s")
        if self.readiness_probe_port is not None and not 0 <= self.readiness_probe_port <= 65535:
            errors.append(f"--readiness-probe-port must be between 0 and 65535, got {self.readiness_probe_port}")
        if not 1 <= self.workers <= MAX_WORKERS:
            errors.append(f"--workers must be between 1 and {MAX_WORKERS}, got {self.workers}")
        for key, values in self.extra_user_headers:
            if not key:
                errors.append("--extra-user-headers needs key=value pairs with non-empty keys")
                continue
            problem = extra_problem({key: values})
            if problem is not None:
                errors.append(f"--extra-user-headers: {problem} (kube-apiserver would read it differently)")
            elif reserved_extra_key(key):
                errors.append(
                    f"--extra-user-headers: the key {key!r} is reserved: originaluser.* extras are the proxy's "
                    "record of who used kubectl --as"
                )
        try:
            parse_networks(self.trusted_proxy_cidrs)
        except ValueError as exc:
            errors.append(f"--trusted-proxy-cidrs: {exc}")
        if self.max_client_connections < 1:
            errors.append(f"--max-client-connections must be at least 1, got {self.max_client_connections}")
        for flag, value in (
            ("--max-requests-inflight", self.max_requests_inflight),
            ("--max-mutating-requests-inflight", self.max_mutating_requests_inflight),
        ):
            if value < 0:
                errors.append(f"{flag} must not be negative (0: no limit), got {value}")
        if self.disable_impersonation and (self.extra_user_headers or self.extra_user_header_client_ip):
            errors.append(
                "--extra-user-headers and --extra-user-header-client-ip need impersonation; "
                "they cannot be used with --disable-impersonation"
            )
        return errors


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where kube-apiserver is and how the proxy authenticates to it (kubectl's flags)."""

    kubeconfig: str = ""
    server: str = ""
    certificate_authority: str = ""
    client_certificate: str = ""
    client_key: str = ""
    token: str = ""
    context: str = ""
    cluster: str = ""
    user: str = ""
    tls_server_name: str = ""
    insecure_skip_tls_verify: bool = False
    request_timeout: float = 0.0  # 0: no timeout
    qps: float = 0.0  # the proxy's own API calls (reviews); 0: the default below
    burst: int = 0
    # Any connection flag given: use kubeconfig loading rules instead of the in-cluster config.
    explicit: bool = False

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.server:
            url = urlsplit(self.server)
            if url.scheme not in ("https", "http") or not url.hostname:
                errors.append(f"--server must be an https URL, got {self.server!r}")
        if bool(self.client_certificate) != bool(self.client_key):
            errors.append("--client-certificate and --client-key must be given together")
        if self.request_timeout < 0:
            errors.append("--request-timeout must not be negative")
        if self.qps < 0 or self.burst < 0:
            errors.append("--kube-client-qps and --kube-client-burst must not be negative")
        return errors


LOGIN_CALLBACK_PATH: Final = "/login/callback"
# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_CHARS: Final = frozenset(chr(c) for c in range(0x21, 0x7F) if c not in (0x22, 0x5C))


@dataclass(frozen=True, slots=True)
class LoginConfig:
    """Browser login on the proxy's port (``--login-*``): on when a client id is given."""

    client_id: str = ""
    client_secret_file: str = ""  # read at start; none: a public client (PKCE alone)
    redirect_url: str = ""  # "": https://<the request's Host>/login/callback
    scopes: tuple[str, ...] = ()  # (): the default scopes the issuer lists

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)

    def validate(self) -> list[str]:
        if not self.client_id:
            if self.client_secret_file or self.redirect_url or self.scopes:
                return ["--login-client-secret-file, --login-redirect-url and --login-scopes need --login-client-id"]
            return []
        errors: list[str] = []
        if not self.client_id.isprintable():
            errors.append("--login-client-id must be printable text")
        if self.redirect_url:
            url = urlsplit(self.redirect_url)
            if (
                url.scheme != "https"
                or parse_host(url.netloc.encode()) is None
                or url.path != LOGIN_CALLBACK_PATH
                or url.query
                or url.fragment
            ):
                errors.append(
                    f"--login-redirect-url must be an https URL of this proxy with the path {LOGIN_CALLBACK_PATH} "
                    f"(no user info, query or fragment), got {self.redirect_url!r}"
                )
        if self.scopes and "openid" not in self.scopes:
            errors.append("--login-scopes must include openid (the id_token is what the proxy verifies)")
        for scope in self.scopes:
            if not set(scope) <= _SCOPE_CHARS:
                errors.append(f"--login-scopes: {scope!r} is not a scope name")
        return errors


AUDIT_MODES: Final = ("batch", "blocking", "blocking-strict")


@dataclass(frozen=True, slots=True)
class AuditBatchConfig:
    buffer_size: int = 10_000
    max_size: int = 1
    max_wait: float = 0.0
    throttle_enable: bool = False
    throttle_qps: float = 0.0
    throttle_burst: int = 0


@dataclass(frozen=True, slots=True)
class AuditTruncateConfig:
    """kube-apiserver's --audit-*-truncate-* flags: an event above max_event_size loses its request and
    response objects (and is dropped if still too large); webhook batches stay under max_batch_size."""

    enabled: bool = False
    max_batch_size: int = 10 * 1024 * 1024
    max_event_size: int = 100 * 1024


@dataclass(frozen=True, slots=True)
class AuditConfig:
    """kube-apiserver's --audit-* flags, with its defaults."""

    policy_file: str = ""
    log_path: str = ""
    log_max_age: int = 0
    log_max_backup: int = 0
    log_max_size: int = 0
    log_format: str = "json"
    log_mode: str = "blocking"
    log_compress: bool = False
    log_batch: AuditBatchConfig = field(default_factory=AuditBatchConfig)
    log_truncate: AuditTruncateConfig = field(default_factory=AuditTruncateConfig)
    webhook_config_file: str = ""
    webhook_mode: str = "batch"
    webhook_initial_backoff: float = 10.0
    webhook_batch: AuditBatchConfig = field(default_factory=lambda: AuditBatchConfig(10_000, 400, 30.0, True, 10.0, 15))
    webhook_truncate: AuditTruncateConfig = field(default_factory=AuditTruncateConfig)

    def validate(self) -> list[str]:
        errors: list[str] = []
        if self.log_format not in ("json", "legacy"):
            errors.append(f"--audit-log-format must be json or legacy, got {self.log_format!r}")
        for flag, mode in (("--audit-log-mode", self.log_mode), ("--audit-webhook-mode", self.webhook_mode)):
            if mode not in AUDIT_MODES:
                errors.append(f"{flag} must be one of {', '.join(AUDIT_MODES)}, got {mode!r}")
        if (self.log_path or self.webhook_config_file) and not self.policy_file:
            errors.append("--audit-log-path and --audit-webhook-config-file need --audit-policy-file")
        for name, batch in (("log", self.log_batch), ("webhook", self.webhook_batch)):
            if batch.buffer_size < 1 or batch.max_size < 1:
                errors.append(f"--audit-{name}-batch-buffer-size and -max-size must be positive")
        for name, truncate in (("log", self.log_truncate), ("webhook", self.webhook_truncate)):
            if truncate.enabled and not 0 < truncate.max_event_size <= truncate.max_batch_size:
                errors.append(f"--audit-{name}-truncate-max-event-size must be positive and at most -max-batch-size")
        return errors


@dataclass(frozen=True, slots=True)
class Config:
    oidc: OIDCConfig = field(default_factory=OIDCConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    client: ClientConfig = field(default_factory=ClientConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    login: LoginConfig = field(default_factory=LoginConfig)
    verbosity: int = 0
    logging_format: str = "text"  # the diagnostic log on stderr (--logging-format); log_format is the access log

    def validate(self) -> list[str]:
        errors = self.oidc.validate() + self.serving.validate() + self.proxy.validate() + self.client.validate()
        errors += self.audit.validate() + self.login.validate()
        if self.logging_format not in LOG_FORMATS:
            errors.append(f"--logging-format must be text or json, got {self.logging_format!r}")
        if self.proxy.readiness_probe_port == self.serving.secure_port:
            errors.append(f"--secure-port and --readiness-probe-port must differ (both are {self.serving.secure_port})")
        if self.proxy.metrics_bind_address and not self.proxy.validate():
            port = split_host_port(self.proxy.metrics_bind_address)[1]
            if port and port in (self.serving.secure_port, self.proxy.readiness_probe_port):
                errors.append(f"--metrics-bind-address needs a port of its own ({port} is taken)")
        return errors
