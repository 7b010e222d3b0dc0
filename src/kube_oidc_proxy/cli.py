"""Command line: the Go kube-oidc-proxy's flags, names and defaults, parsed the way pflag parses them.

- ``--flag=value`` and ``--flag value``; booleans as ``--flag`` or ``--flag=true|false``.
- String slices (``--oidc-signing-algs``) split on commas and accumulate when repeated.
- ``--oidc-required-claim`` and ``--tls-sni-cert-key`` repeat; ``--extra-user-headers`` is ``k=v,k2=v2``
  and repeated keys accumulate.
- Flags of the Go proxy that change nothing here (klog's, ``--cert-dir``, HTTP/2 tuning) are accepted
  with a warning, so an existing Deployment's arguments keep working.
- Every flag of the other Go lines (RafPe's fork) is known too: ours under the same or another name, or
  refused with what to use instead. A flag no line has gets the nearest known name in its error.

Exit codes: 0 done, 1 runtime failure, 2 bad usage. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Sequence
from typing import Any, Final, NoReturn

from kube_oidc_proxy import __version__
from kube_oidc_proxy.config import (
    DEFAULT_MAX_CLIENT_CONNECTIONS,
    DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
    DEFAULT_MAX_REQUESTS_INFLIGHT,
    AuditBatchConfig,
    AuditConfig,
    AuditTruncateConfig,
    ClientConfig,
    Config,
    LoginConfig,
    OIDCConfig,
    ProxyConfig,
    ServingConfig,
    SNICertKey,
)
from kube_oidc_proxy.durations import parse_duration
from kube_oidc_proxy.errors import ConfigError, StartupError

PROG: Final = "kube-oidc-proxy"

# Connection flags that, like the Go proxy, switch from the in-cluster config to kubeconfig rules.
_CONNECTION_FLAGS: Final = (
    "kubeconfig", "server", "certificate_authority", "client_certificate", "client_key", "token",
    "context", "cluster", "user", "tls_server_name", "insecure_skip_tls_verify",
)  # fmt: skip

# Go proxy flags accepted for compatibility that have no effect here (with why, for the warning).
_IGNORED_VALUE_FLAGS: Final = {
    "--cert-dir": "no self-signed certificate is generated; give --tls-cert-file",
    "--namespace": "the proxy does not use a default namespace",
    "--vmodule": "use -v",
    "--log-flush-frequency": "logs are written as they happen",
    "--log-dir": "logs go to stdout/stderr",
    "--log-file": "logs go to stdout/stderr",
    "--log-file-max-size": "logs go to stdout/stderr",
    "--stderrthreshold": "logs go to stdout/stderr",
    "--log-backtrace-at": "not applicable",
    # kubectl's flags, registered by Tremolo's and RafPe's client library: Go used them only when the
    # kubeconfig's user had "as:" set.
    "--as-uid": "the proxy's own connection to kube-apiserver does not impersonate",
    "--as-user-extra": "the proxy's own connection to kube-apiserver does not impersonate",
}
_IGNORED_BOOL_FLAGS: Final = {
    "--permit-port-sharing": "--workers shares the port already",
    "--permit-address-sharing": "not needed",
    "--disable-compression": "bodies are passed through unchanged",
    "--logtostderr": "logs go to stdout/stderr",
    "--alsologtostderr": "logs go to stdout/stderr",
    "--skip-headers": "not applicable",
    "--skip-log-headers": "not applicable",
    "--add-dir-header": "not applicable",
}

# Flags of the Go lines that name a feature this proxy does not have, or has only in another form. A value
# that asks for nothing (empty, or false: the Go default) is accepted with a warning; any other is refused
# (exit 2) with what to use instead, rather than starting a proxy that silently does something else.
_REFUSED_VALUE_FLAGS: Final = {
    # RafPe: a list of system: groups tokens may carry. Here system: names are allowed only all together,
    # usernames included, so the list cannot be taken over as it is.
    "--allow-reserved-groups": "system: groups are allowed here only all at once, usernames included "
    "(--oidc-allow-system-identities); to allow just these, use that flag with an --authentication-config "
    "whose userValidationRules refuse the others (docs/migrating.md#rafpe)",
    # RafPe: a client certificate presented to the issuers (mutual TLS).
    "--oidc-tls-client-cert-file": "the proxy cannot present a client certificate to OIDC issuers; the "
    "issuer's discovery and keys must be readable without one (docs/migrating.md#rafpe)",
    "--oidc-tls-client-key-file": "the proxy cannot present a client certificate to OIDC issuers; the "
    "issuer's discovery and keys must be readable without one (docs/migrating.md#rafpe)",
    # RafPe (k8s.io/apiserver 0.36): kube-apiserver's serving flag, the key exchange groups to offer.
    "--tls-curve-preferences": "the key exchange groups cannot be chosen here, OpenSSL's defaults are used; "
    "remove the flag (docs/migrating.md#rafpe)",
}
_REFUSED_BOOL_FLAGS: Final = {
    # jetstack (k8s.io/apiserver 0.18) registered it and refused it; Kubernetes removed the feature in 1.19.
    "--audit-dynamic-configuration": "dynamic audit configuration was removed from Kubernetes and the Go "
    "proxy refused it too; configure a webhook with --audit-webhook-config-file",
}

# Flags of the Go lines that are ours under another name, with the same meaning: accepted, with a warning.
_RENAMED_FLAGS: Final = {
    "--trusted-proxies": "--trusted-proxy-cidrs",  # RafPe
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        unrecognized = "unrecognized arguments: "
        if message.startswith(unrecognized):
            hints = _closest_flags(message[len(unrecognized) :], list(self._option_string_actions))
            message += f" ({'; '.join(hints)})" if hints else ""
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def _closest_flags(arguments: str, known: list[str]) -> list[str]:
    """For each unknown flag in argparse's list of unrecognized arguments, the known flag it most likely
    meant: the one it begins (flag prefixes are not accepted, as in pflag), else the nearest spelling."""
    hints = []
    for flag in re.findall(r"(?:^|\s)(--?[^\s=]+)", arguments):
        longer = [name for name in known if name.startswith(flag) and name.startswith("--")]
        match = longer if len(longer) == 1 else difflib.get_close_matches(flag, known, n=1, cutoff=0.75)
        if match:
            hints.append(f"{flag}: did you mean {match[0]}?")
    return hints


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}")


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _timeout(text: str) -> float:
    """kubectl's --request-timeout: a Go duration, or a whole number of seconds (clientcmd.ParseTimeout)."""
    if text.strip().isdigit():
        return float(text.strip())
    return _duration(text)


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None


class _SliceAction(argparse.Action):
    """pflag StringSlice: comma-separated, accumulating across repeats."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        current = list(getattr(ns, self.dest) or [])
        if not getattr(ns, f"_{self.dest}_set", False):
            current = []  # the first use replaces the default
            setattr(ns, f"_{self.dest}_set", True)
        current += [v.strip() for v in str(values).split(",") if v.strip()]
        setattr(ns, self.dest, current)


class _KeyValueAction(argparse.Action):
    """Repeatable ``key=value`` (pflag MapStringStringNoSplit): the value may contain commas."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        key, sep, value = str(values).partition("=")
        if not sep:
            parser.error(f"{opt}: expected key=value, got {values!r}")
        current = list(getattr(ns, self.dest) or [])
        current.append((key.strip(), value))
        setattr(ns, self.dest, current)


class _KeyValueListAction(argparse.Action):
    """``k=v,k2=v2`` pairs, repeats accumulate (the Go proxy's stringToStringSlice)."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        current = list(getattr(ns, self.dest) or [])
        for pair in str(values).split(","):
            if not pair.strip():
                continue
            key, sep, value = pair.partition("=")
            if not sep or not key.strip():
                parser.error(f"{opt}: {pair!r} must be formatted as key=value")
            current.append((key.strip(), value.strip()))
        setattr(ns, self.dest, current)


class _IgnoredAction(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        long_name = self.option_strings[-1]  # "-n" is reported with --namespace's reason
        why = {**_IGNORED_VALUE_FLAGS, **_IGNORED_BOOL_FLAGS}.get(long_name, "")
        ns.ignored_flags = [*getattr(ns, "ignored_flags", []), f"{opt} has no effect: {why}"]


class _RefusedAction(argparse.Action):
    """A Go flag for something this proxy does not do: refused unless its value asks for nothing."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        name = self.option_strings[-1]
        why = {**_REFUSED_VALUE_FLAGS, **_REFUSED_BOOL_FLAGS}[name]
        asks = values is True if name in _REFUSED_BOOL_FLAGS else bool(str(values).strip())
        if asks:
            given = opt if values is True else f"{opt}={values}"
            ns.refused_flags = [*getattr(ns, "refused_flags", []), f"{given} is not supported: {why}"]
        else:
            notice = f"{opt}={str(values).lower()} has no effect: it asks for nothing (the Go proxy's default)"
            ns.ignored_flags = [*getattr(ns, "ignored_flags", []), notice]


class _RenamedAction(_SliceAction):
    """A Go flag that is one of ours under another name: its values go to ours, with a warning."""

    def __call__(self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, opt: Any = None) -> None:
        super().__call__(parser, ns, values, opt)
        ours = _RENAMED_FLAGS[self.option_strings[-1]]
        notice = f"{opt} is taken as {ours}, its name here (see docs/migrating.md); rename it"
        ns.ignored_flags = [*getattr(ns, "ignored_flags", []), notice]


def _flag_bool(group: Any, *names: str, help: str) -> None:
    group.add_argument(*names, nargs="?", const=True, default=False, type=_bool, metavar="true|false", help=help)


def _add_client_flags(p: argparse.ArgumentParser) -> None:
    client = p.add_argument_group("Client (the proxy's own connection to kube-apiserver)")
    client.add_argument("--kubeconfig", default="", help="Kubeconfig file (default: in-cluster config).")
    client.add_argument("-s", "--server", default="", help="kube-apiserver URL.")
    client.add_argument("--certificate-authority", default="", help="CA file for kube-apiserver.")
    client.add_argument("--client-certificate", default="", help="Client certificate file.")
    client.add_argument("--client-key", default="", help="Client key file.")
    client.add_argument("--token", default="", help="Bearer token for kube-apiserver.")
    client.add_argument("--context", default="", help="Kubeconfig context.")
    client.add_argument("--cluster", default="", help="Kubeconfig cluster.")
    client.add_argument("--user", default="", help="Kubeconfig user.")
    client.add_argument("--tls-server-name", default="", help="Server name for kube-apiserver's certificate.")
    _flag_bool(client, "--insecure-skip-tls-verify", help="Do not verify kube-apiserver's certificate (unsafe).")
    client.add_argument(
        "--request-timeout",
        type=_timeout,
        default=0.0,
        help="Time to wait for kube-apiserver's response headers; 0 (default) waits forever.",
    )
    client.add_argument(
        "--kube-client-qps",
        type=float,
        default=0.0,
        help="Rate of the proxy's own API calls (reviews), per second; 0: 50.",
    )
    client.add_argument("--kube-client-burst", type=int, default=0, help="Burst of the proxy's own API calls; 0: 100.")


def _add_login_flags(p: argparse.ArgumentParser) -> None:
    login = p.add_argument_group("Browser login (docs/login.md)")
    login.add_argument(
        "--login-client-id",
        default="",
        help="Turns on browser login at /login: the OIDC client id the proxy signs users in with (tokens' aud "
        "must be accepted by the issuer's configuration).",
    )
    login.add_argument(
        "--login-client-secret-file",
        default="",
        metavar="FILE",
        help="File holding that client's secret (default: none, a public client using PKCE alone).",
    )
    login.add_argument(
        "--login-redirect-url",
        default="",
        metavar="URL",
        help="The callback URL registered at the IdP, https://HOST/login/callback (default: built from the "
        "request's Host).",
    )
    login.add_argument(
        "--login-scopes",
        action=_SliceAction,
        default=[],
        metavar="SCOPES",
        help="Scopes to ask for, comma-separated (default: openid,email,profile,groups minus those the issuer "
        "does not list, plus offline_access when listed).",
    )


def _add_audit_flags(p: argparse.ArgumentParser) -> None:
    """kube-apiserver's audit flags (k8s.io/apiserver pkg/server/options/audit.go), names and defaults."""
    audit = p.add_argument_group("Audit")
    audit.add_argument("--audit-policy-file", default="", help="Audit policy (audit.k8s.io/v1 Policy); none: no audit.")
    audit.add_argument("--audit-log-path", default="", help="Audit log file; '-' for stdout.")
    audit.add_argument("--audit-log-maxage", type=int, default=0, help="Days to keep rotated audit logs.")
    audit.add_argument("--audit-log-maxbackup", type=int, default=0, help="Rotated audit logs to keep.")
    audit.add_argument("--audit-log-maxsize", type=int, default=0, help="Megabytes before the audit log rotates.")
    audit.add_argument("--audit-log-format", default="json", help="json (default) or legacy.")
    audit.add_argument("--audit-log-mode", default="blocking", help="blocking (default), blocking-strict or batch.")
    _flag_bool(audit, "--audit-log-compress", help="Gzip rotated audit logs.")
    audit.add_argument("--audit-log-version", default="audit.k8s.io/v1", help="Only audit.k8s.io/v1.")
    audit.add_argument("--audit-webhook-config-file", default="", help="Kubeconfig of the audit webhook.")
    audit.add_argument("--audit-webhook-mode", default="batch", help="batch (default), blocking or blocking-strict.")
    audit.add_argument("--audit-webhook-initial-backoff", type=_duration, default=10.0, help="First retry wait.")
    audit.add_argument(
        "--audit-webhook-batch-initial-backoff",
        dest="audit_webhook_initial_backoff",
        type=_duration,
        help=argparse.SUPPRESS,
    )  # deprecated alias, as in kube-apiserver
    audit.add_argument("--audit-webhook-version", default="audit.k8s.io/v1", help="Only audit.k8s.io/v1.")
    for backend, defaults in (
        ("log", (10_000, 1, 0.0, False, 10.0, 15)),
        ("webhook", (10_000, 400, 30.0, True, 10.0, 15)),
    ):
        buffer_size, max_size, max_wait, throttle, qps, burst = defaults
        prefix = f"--audit-{backend}-batch"
        audit.add_argument(
            f"{prefix}-buffer-size", type=int, default=buffer_size, help=f"Events buffered ({buffer_size})."
        )
        audit.add_argument(f"{prefix}-max-size", type=int, default=max_size, help=f"Events per batch ({max_size}).")
        audit.add_argument(
            f"{prefix}-max-wait", type=_duration, default=max_wait, help="Longest wait for a full batch."
        )
        _flag_bool(audit, f"{prefix}-throttle-enable", help="Throttle batches.")
        audit.set_defaults(**{f"audit_{backend}_batch_throttle_enable": throttle})
        audit.add_argument(f"{prefix}-throttle-qps", type=float, default=qps, help="Batches per second.")
        audit.add_argument(f"{prefix}-throttle-burst", type=int, default=burst, help="Throttle burst.")
        truncate = f"--audit-{backend}-truncate"
        _flag_bool(audit, f"{truncate}-enabled", help="Strip request/response objects from oversized events.")
        audit.add_argument(
            f"{truncate}-max-batch-size", type=int, default=10 * 1024 * 1024, help="Bytes per batch (10 MiB)."
        )
        audit.add_argument(
            f"{truncate}-max-event-size", type=int, default=100 * 1024, help="Bytes per event (100 KiB)."
        )


def _add_diagnostic_log_flags(group: Any) -> None:
    """The diagnostic log on stderr, under component-base's flag names (klog's -v, --logging-format)."""
    group.add_argument("-v", "--v", dest="verbosity", type=int, default=0, help="Log verbosity (0-10).")
    group.add_argument(
        "--logging-format",
        default="text",
        help="Diagnostic log on stderr, as Kubernetes components: text (klog's lines, UTC; default) or json "
        "(component-base's JSON). Not the access log (--log-format).",
    )


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="OIDC authenticating, impersonating reverse proxy for kube-apiserver.",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    app = p.add_argument_group("Kube-OIDC-Proxy")
    app.add_argument(
        "-P",
        "--readiness-probe-port",
        type=_port,
        default=8080,
        help="Port of the plain-HTTP /ready and /healthz endpoints, 0 to disable (default 8080).",
    )
    app.add_argument(
        "--flush-interval",
        type=_duration,
        default=0.05,
        help="Accepted for compatibility: every chunk is flushed to the client at once.",
    )
    _flag_bool(app, "--extra-user-header-client-ip", help="Add the client's IP as the user extra 'remote-client-ip'.")
    app.add_argument(
        "--extra-user-headers",
        action=_KeyValueListAction,
        default=[],
        metavar="k=v,k2=v2",
        help="Static user extras added to every request; repeated keys accumulate.",
    )
    app.add_argument(
        "--trusted-proxy-cidrs",
        action=_SliceAction,
        default=[],
        metavar="cidr,cidr",
        help="Load balancers and ingresses whose X-Forwarded-For and X-Real-IP are believed (default: none, "
        "the TCP peer is the client).",
    )
    app.add_argument(
        "--max-client-connections",
        type=int,
        default=DEFAULT_MAX_CLIENT_CONNECTIONS,
        help=f"Client connections one process serves at once; beyond it a new connection's request is "
        f"answered 503 (default {DEFAULT_MAX_CLIENT_CONNECTIONS}).",
    )
    app.add_argument(
        "--max-requests-inflight",
        type=int,
        default=DEFAULT_MAX_REQUESTS_INFLIGHT,
        help=f"Read requests (GET, HEAD) one process works on at once, not counting watches, followed logs and "
        f"upgrades; beyond it a request is answered 429 with Retry-After (default "
        f"{DEFAULT_MAX_REQUESTS_INFLIGHT}, 0: no limit).",
    )
    app.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
        help=f"The same for all other methods (default {DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT}, 0: no limit).",
    )
    app.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Worker processes sharing the port (SO_REUSEPORT), for multi-core (default 1).",
    )
    _flag_bool(
        app,
        "--token-passthrough",
        help="Tokens that are not id tokens of the issuer are checked with TokenReview and, if valid, "
        "forwarded as they are, without impersonation.",
    )
    app.add_argument(
        "--token-passthrough-audiences",
        action=_SliceAction,
        default=[],
        metavar="AUDIENCES",
        help="Audiences for the TokenReview of passed-through tokens (default: the API server's).",
    )
    _flag_bool(
        app,
        "--disable-impersonation",
        help="Forward authenticated requests with the caller's own token and no impersonation.",
    )
    app.add_argument(
        "--shutdown-grace-period",
        type=_duration,
        default=20.0,
        help="After SIGTERM, how long in-flight requests and exec/port-forward streams may "
        "continue before they are cut (default 20s).",
    )
    app.add_argument(
        "--shutdown-delay-duration",
        type=_duration,
        default=0.0,
        help="After SIGTERM, how long to keep serving normally while /ready answers 503, so load balancers "
        "stop sending new connections before the listener closes (kube-apiserver's flag; default 0s).",
    )

    oidc = p.add_argument_group("OIDC")
    oidc.add_argument(
        "--authentication-config",
        default="",
        metavar="FILE",
        help="kube-apiserver's AuthenticationConfiguration file (several issuers, CEL mappings); re-read when it "
        "changes. Not with the --oidc-* flags below.",
    )
    oidc.add_argument("--oidc-issuer-url", default="", help="Issuer URL (https); tokens' iss must equal it.")
    oidc.add_argument("--oidc-client-id", default="", help="Client id that tokens' aud must contain.")
    oidc.add_argument("--oidc-ca-file", default="", help="CA bundle for the issuer's TLS (default: system roots).")
    oidc.add_argument("--oidc-username-claim", default=None, help="Claim used as the username (default sub).")
    oidc.add_argument("--oidc-username-prefix", default="", help="Prefix for usernames; '' or '-' for none.")
    oidc.add_argument("--oidc-groups-claim", default="", help="Claim holding the user's groups.")
    oidc.add_argument("--oidc-groups-prefix", default="", help="Prefix for every group; '' or '-' for none.")
    oidc.add_argument(
        "--oidc-signing-algs",
        action=_SliceAction,
        default=["RS256"],
        metavar="ALGS",
        help="Accepted signing algorithms, comma-separated (default RS256).",
    )
    oidc.add_argument(
        "--oidc-required-claim",
        action=_KeyValueAction,
        default=[],
        metavar="key=value",
        help="A claim that must be present with this value; repeatable.",
    )
    _flag_bool(
        oidc,
        "--oidc-allow-system-identities",
        help="Accept usernames and groups starting with 'system:' from tokens (refused by default).",
    )

    _add_login_flags(p)

    serving = p.add_argument_group("Secure Serving")
    serving.add_argument("--bind-address", default="0.0.0.0", help="Address to serve on (default 0.0.0.0).")  # noqa: S104
    serving.add_argument("--secure-port", type=_port, default=6443, help="HTTPS port (default 6443).")
    serving.add_argument("--tls-cert-file", default="", help="Serving certificate (PEM, chain allowed).")
    serving.add_argument("--tls-private-key-file", default="", help="Serving private key (PEM).")
    serving.add_argument(
        "--tls-sni-cert-key",
        action="append",
        default=[],
        metavar="cert,key[:domains]",
        help="Extra certificate for SNI, optionally for the listed domains; repeatable.",
    )
    serving.add_argument(
        "--tls-min-version", default="VersionTLS12", help="Minimum TLS version: VersionTLS12 (default) or VersionTLS13."
    )
    serving.add_argument(
        "--tls-cipher-suites",
        action=_SliceAction,
        default=[],
        metavar="SUITES",
        help="TLS 1.2 cipher suites by Go name, comma-separated (default: OpenSSL's).",
    )
    serving.add_argument(
        "--http2-max-streams-per-connection",
        type=int,
        default=0,
        metavar="N",
        help="Concurrent streams an HTTP/2 client connection may open; 0 means kube-apiserver's default, 100.",
    )
    _flag_bool(serving, "--disable-http2-serving", help="Serve HTTP/1.1 only (ALPN offers no h2).")

    _add_client_flags(p)
    _add_audit_flags(p)

    misc = p.add_argument_group("Misc")
    _add_diagnostic_log_flags(misc)
    misc.add_argument(
        "--log-format",
        default="text",
        help="Access log on stdout: text (AuSuccess/AuFail lines, default) or json (one object per request).",
    )
    misc.add_argument(
        "--metrics-bind-address",
        default="",
        metavar="HOST:PORT",
        help="Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. :9090); empty (default) for none.",
    )
    misc.add_argument("--version", action="store_true", help="Print version information and exit.")

    compat = p.add_argument_group("Accepted for compatibility with the Go proxy (no effect)")
    for flag in _IGNORED_VALUE_FLAGS:
        names = ("-n", flag) if flag == "--namespace" else (flag,)
        compat.add_argument(*names, action=_IgnoredAction, dest="ignored", help=argparse.SUPPRESS)
    for flag in _IGNORED_BOOL_FLAGS:
        compat.add_argument(flag, action=_IgnoredAction, dest="ignored", nargs="?", help=argparse.SUPPRESS)
    return _add_other_go_lines_flags(p, app, compat)


def _add_other_go_lines_flags(p: argparse.ArgumentParser, app: Any, compat: Any) -> argparse.ArgumentParser:
    """RafPe's flags for what this proxy does too, under the same names; the Go lines' flags that are refused
    or renamed here (docs/migrating.md#flags-of-each-go-line)."""
    app.add_argument(
        "--subject-access-review-timeout",
        type=_duration,
        default=10.0,
        help="How long all the SubjectAccessReviews of one kubectl --as request may take together; then 503 "
        "(default 10s).",
    )
    _flag_bool(
        app,
        "--readiness-require-all-issuers",
        help="/ready only once every issuer has signing keys (default: once any one has).",
    )
    for flag in _REFUSED_VALUE_FLAGS:
        compat.add_argument(flag, action=_RefusedAction, dest="refused", help=argparse.SUPPRESS)
    for flag in _REFUSED_BOOL_FLAGS:
        compat.add_argument(
            flag, action=_RefusedAction, dest="refused", nargs="?", const=True, type=_bool, help=argparse.SUPPRESS
        )
    for flag, ours in _RENAMED_FLAGS.items():
        dest = ours[2:].replace("-", "_")
        compat.add_argument(flag, action=_RenamedAction, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return p


def _sni(value: str) -> SNICertKey:
    files, _, domains = value.partition(":")
    cert, sep, key = files.partition(",")
    if not sep or not cert or not key:
        raise ConfigError(f"--tls-sni-cert-key: expected cert,key[:domain,...], got {value!r}")
    return SNICertKey(cert, key, tuple(d.strip() for d in domains.split(",") if d.strip()))


def _extras(pairs: list[tuple[str, str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # kube-apiserver lower-cases extra keys that arrive in header names: behind the Go proxy "Team" was
    # always read as "team", so that is the key, and it is what logs and audit events show.
    merged: dict[str, list[str]] = {}
    for key, value in pairs:
        merged.setdefault(key.lower(), []).append(value)
    return tuple((k, tuple(v)) for k, v in merged.items())


# The flags an AuthenticationConfiguration file replaces (kube-apiserver refuses both together).
_LEGACY_OIDC_FLAGS: Final = (
    "oidc_issuer_url", "oidc_client_id", "oidc_ca_file", "oidc_username_claim", "oidc_username_prefix",
    "oidc_groups_claim", "oidc_groups_prefix", "oidc_required_claim",
)  # fmt: skip


def _legacy_oidc_flags_set(ns: argparse.Namespace) -> list[str]:
    names = [name for name in _LEGACY_OIDC_FLAGS if getattr(ns, name) not in (None, "", [])]
    if getattr(ns, "_oidc_signing_algs_set", False):
        names.append("oidc_signing_algs")
    return ["--" + name.replace("_", "-") for name in names]


def config_from_args(ns: argparse.Namespace) -> Config:
    if refused := getattr(ns, "refused_flags", []):
        raise ConfigError("; ".join(refused))
    explicit = any(bool(getattr(ns, name)) for name in _CONNECTION_FLAGS)
    if ns.authentication_config and (legacy := _legacy_oidc_flags_set(ns)):
        raise ConfigError(
            f"--authentication-config cannot be combined with {', '.join(legacy)}: "
            "the file configures the issuers (as in kube-apiserver)"
        )
    return Config(
        oidc=OIDCConfig(
            issuer_url=ns.oidc_issuer_url,
            client_id=ns.oidc_client_id,
            ca_file=ns.oidc_ca_file,
            authentication_config=ns.authentication_config,
            username_claim="sub" if ns.oidc_username_claim is None else ns.oidc_username_claim,
            username_prefix=ns.oidc_username_prefix,
            groups_claim=ns.oidc_groups_claim,
            groups_prefix=ns.oidc_groups_prefix,
            signing_algs=tuple(ns.oidc_signing_algs),
            required_claims=tuple(ns.oidc_required_claim),
            allow_system_identities=ns.oidc_allow_system_identities,
        ),
        serving=ServingConfig(
            bind_address=ns.bind_address,
            secure_port=ns.secure_port,
            tls_cert_file=ns.tls_cert_file,
            tls_private_key_file=ns.tls_private_key_file,
            sni_cert_keys=tuple(_sni(v) for v in ns.tls_sni_cert_key),
            tls_min_version=ns.tls_min_version,
            tls_cipher_suites=tuple(ns.tls_cipher_suites),
            http2=not ns.disable_http2_serving,
            http2_max_streams=ns.http2_max_streams_per_connection,
        ),
        proxy=ProxyConfig(
            readiness_probe_port=ns.readiness_probe_port or None,
            flush_interval=ns.flush_interval,
            extra_user_header_client_ip=ns.extra_user_header_client_ip,
            extra_user_headers=_extras(ns.extra_user_headers),
            workers=ns.workers,
            shutdown_grace=ns.shutdown_grace_period,
            shutdown_delay=ns.shutdown_delay_duration,
            token_passthrough=ns.token_passthrough,
            token_passthrough_audiences=tuple(ns.token_passthrough_audiences),
            disable_impersonation=ns.disable_impersonation,
            metrics_bind_address=ns.metrics_bind_address,
            log_format=ns.log_format,
            trusted_proxy_cidrs=tuple(ns.trusted_proxy_cidrs),
            max_client_connections=ns.max_client_connections,
            max_requests_inflight=ns.max_requests_inflight,
            max_mutating_requests_inflight=ns.max_mutating_requests_inflight,
            subject_access_review_timeout=ns.subject_access_review_timeout,
            readiness_require_all_issuers=ns.readiness_require_all_issuers,
        ),
        client=ClientConfig(
            kubeconfig=ns.kubeconfig,
            server=ns.server,
            certificate_authority=ns.certificate_authority,
            client_certificate=ns.client_certificate,
            client_key=ns.client_key,
            token=ns.token,
            context=ns.context,
            cluster=ns.cluster,
            user=ns.user,
            tls_server_name=ns.tls_server_name,
            insecure_skip_tls_verify=ns.insecure_skip_tls_verify,
            request_timeout=ns.request_timeout,
            qps=ns.kube_client_qps,
            burst=ns.kube_client_burst,
            explicit=explicit,
        ),
        audit=_audit_config(ns),
        login=LoginConfig(
            client_id=ns.login_client_id,
            client_secret_file=ns.login_client_secret_file,
            redirect_url=ns.login_redirect_url,
            scopes=tuple(ns.login_scopes),
        ),
        verbosity=ns.verbosity,
        logging_format=ns.logging_format,
    )


_BATCH_FIELDS = ("buffer_size", "max_size", "max_wait", "throttle_enable", "throttle_qps", "throttle_burst")


def _audit_config(ns: argparse.Namespace) -> AuditConfig:
    def batch(backend: str) -> AuditBatchConfig:
        values = {name: getattr(ns, f"audit_{backend}_batch_{name}") for name in _BATCH_FIELDS}
        return AuditBatchConfig(**values)

    def truncate(backend: str) -> AuditTruncateConfig:
        return AuditTruncateConfig(
            getattr(ns, f"audit_{backend}_truncate_enabled"),
            getattr(ns, f"audit_{backend}_truncate_max_batch_size"),
            getattr(ns, f"audit_{backend}_truncate_max_event_size"),
        )

    for flag in ("audit_log_version", "audit_webhook_version"):
        if getattr(ns, flag) != "audit.k8s.io/v1":
            raise ConfigError(f"--{flag.replace('_', '-')}: only audit.k8s.io/v1 is supported")
    return AuditConfig(
        policy_file=ns.audit_policy_file,
        log_path=ns.audit_log_path,
        log_max_age=ns.audit_log_maxage,
        log_max_backup=ns.audit_log_maxbackup,
        log_max_size=ns.audit_log_maxsize,
        log_format=ns.audit_log_format,
        log_mode=ns.audit_log_mode,
        log_compress=ns.audit_log_compress,
        log_batch=batch("log"),
        log_truncate=truncate("log"),
        webhook_config_file=ns.audit_webhook_config_file,
        webhook_mode=ns.audit_webhook_mode,
        webhook_initial_backoff=ns.audit_webhook_initial_backoff,
        webhook_batch=batch("webhook"),
        webhook_truncate=truncate("webhook"),
    )


def version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - only for --version

    from kube_oidc_proxy.buildinfo import commit  # noqa: PLC0415 - only for --version

    libs = []
    for lib in ("httptools", "uvloop", "joserfc", "cryptography", "PyYAML"):
        try:
            libs.append(f"{lib} {version(lib)}")
        except PackageNotFoundError:
            libs.append(f"{lib} (not installed)")
    return f"{PROG} {__version__} (commit {commit()}; Python {sys.version.split()[0]}; {', '.join(libs)})"


def parse(argv: Sequence[str]) -> tuple[Config, list[str]] | None:
    """Parse and validate; None when --version was handled. Raises ConfigError for invalid settings."""
    ns = build_parser().parse_args(argv)
    if ns.version:
        print(version_text())
        return None
    config = config_from_args(ns)
    errors = config.validate()
    if errors:
        raise ConfigError("; ".join(errors))
    return config, list(getattr(ns, "ignored_flags", []))


def main(argv: Sequence[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["credential"]:  # the kubectl exec credential plugin, a command of its own
        from kube_oidc_proxy.credential.cli import main as credential  # noqa: PLC0415 - the proxy's start stays lean

        return credential(args[1:])
    try:
        parsed = parse(args)
        if parsed is None:
            return 0
        config, warnings = parsed
        for warning in warnings:
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
        from kube_oidc_proxy.server.supervisor import run  # noqa: PLC0415 - keeps --help and errors fast

        return run(config)
    except ConfigError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except StartupError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
