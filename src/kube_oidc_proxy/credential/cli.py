"""``kube-oidc-proxy credential``: the command line of the exec credential plugin.

Exit codes: 0 the ExecCredential is on stdout; 1 no credential (the reason on stderr); 2 bad arguments or
KUBERNETES_EXEC_INFO; 130 interrupted. kubectl shows stderr to the user, so every message there says what
happened and, where it can, what to do; none carries a token.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import os
import ssl
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NoReturn
from urllib.parse import urlsplit

from kube_oidc_proxy import oidcclient
from kube_oidc_proxy.credential import cache, execinfo, expiry
from kube_oidc_proxy.credential.errors import CredentialError, UsageError
from kube_oidc_proxy.credential.loopback import parse_listen_address
from kube_oidc_proxy.credential.obtain import Settings, obtain

PROG: Final = "kube-oidc-proxy credential"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="A kubectl exec credential plugin: prints a client.authentication.k8s.io ExecCredential "
        "holding an id_token from the OIDC provider (cached, refreshed, or from a browser login).",
        allow_abbrev=False,
    )
    parser.add_argument("--issuer-url", required=True, help="the OIDC issuer (https), as the proxy trusts it")
    parser.add_argument("--client-id", required=True, help="the OIDC client the login uses")
    parser.add_argument("--client-secret-file", type=Path, help="the client's secret (public clients: omit; PKCE)")
    parser.add_argument(
        "--scopes",
        default="",
        help="comma-separated scopes (openid is always added); default: openid,email,profile,groups minus what "
        "the provider does not list, plus offline_access when it does",
    )
    ca = parser.add_mutually_exclusive_group()
    ca.add_argument("--issuer-ca-file", type=Path, help="PEM CA bundle for the issuer (default: the system's)")
    ca.add_argument("--issuer-ca-data", help="the same, base64-encoded inline")
    parser.add_argument("--no-browser", action="store_true", help="print the login URL instead of opening a browser")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where tokens are cached (default: $XDG_CACHE_HOME or ~/.cache, then kube-oidc-proxy/credentials)",
    )
    parser.add_argument(
        "--listen-address",
        default="127.0.0.1:0",
        help="loopback address for the browser's redirect, /callback on it (default 127.0.0.1:0, a free port)",
    )
    return parser


def settings_from_args(ns: argparse.Namespace, environ: Mapping[str, str], *, interactive: bool) -> Settings:
    issuer = str(ns.issuer_url)
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(f"--issuer-url {issuer!r} is not an https URL")
    if not ns.client_id:
        raise UsageError("--client-id is empty")
    return Settings(
        issuer=issuer,
        client=oidcclient.Client(ns.client_id, _secret(ns.client_secret_file)),
        scopes=_scopes(ns.scopes),
        ssl_context=_ssl_context(ns.issuer_ca_file, ns.issuer_ca_data),
        cache_dir=ns.cache_dir or cache.default_cache_dir(environ),
        listen=parse_listen_address(ns.listen_address),
        open_browser=not ns.no_browser,
        interactive=interactive,
    )


def _scopes(text: str) -> tuple[str, ...]:
    scopes = [s.strip() for s in text.split(",") if s.strip()]
    if any(" " in s for s in scopes):
        raise UsageError(f"--scopes {text!r}: scopes are separated by commas and hold no spaces")
    if not scopes:
        return ()
    return ("openid", *dict.fromkeys(s for s in scopes if s != "openid"))


def _secret(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--client-secret-file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not secret:
        raise UsageError(f"--client-secret-file {path} is empty")
    return secret


def _ssl_context(ca_file: Path | None, ca_data: str | None) -> ssl.SSLContext:
    if ca_file is not None:
        try:
            pem = ca_file.read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise UsageError(f"--issuer-ca-file {ca_file}: {exc.strerror}") from None
        what = f"--issuer-ca-file {ca_file}"
    elif ca_data is not None:
        try:
            pem = base64.b64decode(ca_data, validate=True).decode("ascii", "replace")
        except (binascii.Error, ValueError):
            raise UsageError("--issuer-ca-data is not base64") from None
        what = "--issuer-ca-data"
    else:
        return ssl.create_default_context()
    try:
        return ssl.create_default_context(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise UsageError(f"{what} holds no valid PEM certificate: {exc}") from None


def say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str]) -> int:
    ns = build_parser().parse_args(argv)
    try:
        info = execinfo.parse_exec_info(os.environ.get(execinfo.ENV), default_interactive=_has_terminal())
        settings = settings_from_args(ns, os.environ, interactive=info.interactive)
    except UsageError as exc:
        say(f"error: {exc}")
        return 2
    try:
        token = asyncio.run(obtain(settings, say))
        payload = expiry.claims(token)
    except CredentialError as exc:
        say(f"error: {exc}")
        return 1
    except expiry.TokenFormatError as exc:
        say(f"error: the identity provider's answer is unusable: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    expiration = expiry.rfc3339(expiry.renew_at(payload, time.time()))
    print(execinfo.credential_json(info.api_version, token, expiration), flush=True)
    return 0


def _has_terminal() -> bool:
    try:
        return os.isatty(0)
    except OSError:
        return False
