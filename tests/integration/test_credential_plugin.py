"""The exec credential plugin as kubectl runs it: a subprocess with KUBERNETES_EXEC_INFO, against the test
issuer. The "browser" is a small script ($BROWSER) that follows the login's redirects the way a browser
does, back to the plugin's loopback receiver, and records the page the user would see."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import kube_oidc_proxy
from kube_oidc_proxy.credential import cache, expiry
from tests.support.issuer import Grant, TestIssuer

CLIENT_ID = "kubectl-login"
SCOPES = ("openid", "email", "offline_access")
V1 = "client.authentication.k8s.io/v1"
V1BETA1 = "client.authentication.k8s.io/v1beta1"
SRC = str(Path(kube_oidc_proxy.__file__).resolve().parents[1])

BROWSER = """#!{python}
import json, os, pathlib, ssl, sys, urllib.error, urllib.parse, urllib.request
url = sys.argv[1]
if os.environ.get("FAKE_BROWSER_FORGE_STATE"):
    # what a hostile page can do: send the browser straight to the loopback with a state of its choosing
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    url = query["redirect_uri"] + "?" + urllib.parse.urlencode({{"code": "forged", "state": "chosen-by-attacker"}})
context = ssl.create_default_context(cafile={ca!r})
try:
    with urllib.request.urlopen(url, context=context, timeout=30) as response:
        status, page = response.status, response.read().decode()
except urllib.error.HTTPError as error:
    status, page = error.code, error.read().decode()
with open({log!r}, "a") as log:
    log.write(json.dumps({{"opened": sys.argv[1], "status": status, "page": page}}) + "\\n")
"""


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def credential(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.out)
        return document

    @property
    def token(self) -> str:
        return str(self.credential["status"]["token"])


class Plugin:
    def __init__(self, issuer: TestIssuer, tmp_path: Path) -> None:
        self.issuer = issuer
        self.cache_dir = tmp_path / "cache" / "credentials"
        self.browser_log = tmp_path / "browser.log"
        browser = tmp_path / "browser.py"
        browser.write_text(BROWSER.format(python=sys.executable, ca=issuer.ca_file, log=str(self.browser_log)))
        browser.chmod(browser.stat().st_mode | stat.S_IEXEC)
        home = tmp_path / "home"
        home.mkdir()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KUBERNETES_", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER", "XDG_"))
        }
        self.env |= {"PYTHONPATH": SRC, "HOME": str(home), "BROWSER": str(browser)}

    def argv(self, *extra: str) -> list[str]:
        return [
            sys.executable, "-m", "kube_oidc_proxy", "credential",
            f"--issuer-url={self.issuer.url}", f"--client-id={CLIENT_ID}", f"--scopes={','.join(SCOPES)}",
            f"--issuer-ca-file={self.issuer.ca_file}", f"--cache-dir={self.cache_dir}", *extra,
        ]  # fmt: skip

    def environment(self, interactive: bool, api_version: str, **extra: str) -> dict[str, str]:
        info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": interactive}}
        return {**self.env, "KUBERNETES_EXEC_INFO": json.dumps(info), **extra}

    def run(self, *extra: str, interactive: bool = True, api_version: str = V1, **env: str) -> Run:
        done = subprocess.run(
            self.argv(*extra),
            env=self.environment(interactive, api_version, **env),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return Run(done.returncode, done.stdout, done.stderr)

    def pages(self) -> list[dict[str, Any]]:
        """What the browser was sent to and the page it ended on, one per opening."""
        if not self.browser_log.exists():
            return []
        return [json.loads(line) for line in self.browser_log.read_text().splitlines()]

    @property
    def cache_file(self) -> Path:
        return cache.cache_path(self.cache_dir, self.issuer.url, CLIENT_ID, SCOPES)

    def cached(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.cache_file.read_text())
        return document

    def seed(self, id_token: str, refresh_token: str | None) -> Path:
        return cache.store_tokens(self.cache_dir, self.issuer.url, CLIENT_ID, SCOPES, id_token, refresh_token)

    def expired_token(self) -> str:
        now = int(time.time())
        return self.issuer.token(aud=CLIENT_ID, iat=now - 700, exp=now - 100)

    def known_refresh_token(self, value: str) -> None:
        """A refresh token the issuer will honour (as if issued by an earlier login)."""
        self.issuer.token_endpoint.refresh_tokens[value] = Grant(CLIENT_ID, "", "", "", {})


@pytest.fixture
def plugin(issuer: TestIssuer, tmp_path: Path) -> Plugin:
    return Plugin(issuer, tmp_path)


def grants(issuer: TestIssuer) -> list[str]:
    return [form.get("grant_type", "") for form in issuer.token_endpoint.requests]


def no_secrets_in(text: str, *secrets: str | None) -> None:
    for secret in secrets:
        if secret:
            assert secret not in text


def test_first_login_runs_the_browser_flow_and_prints_a_v1_exec_credential(plugin: Plugin, issuer: TestIssuer) -> None:
    run = plugin.run()

    assert run.code == 0, run.err
    credential = run.credential
    assert credential["apiVersion"] == V1
    assert credential["kind"] == "ExecCredential"
    claims = expiry.claims(run.token)
    assert claims["sub"] == "alice"
    assert claims["aud"] == CLIENT_ID
    # a 600 s token: kubectl asks again a minute before it dies
    assert credential["status"]["expirationTimestamp"] == expiry.rfc3339(claims["exp"] - 60)

    (authorization,) = issuer.token_endpoint.authorizations
    assert authorization["code_challenge_method"] == "S256"
    assert authorization["scope"] == "openid email offline_access"
    assert claims["nonce"] == authorization["nonce"]
    assert urllib.parse.urlsplit(authorization["redirect_uri"]).netloc.startswith("127.0.0.1:")
    assert urllib.parse.urlsplit(authorization["redirect_uri"]).path == "/callback"
    assert grants(issuer) == ["authorization_code"]
    assert issuer.token_endpoint.requests[0]["code_verifier"]

    (page,) = plugin.pages()
    assert page["status"] == 200
    assert "You can close this tab" in page["page"]
    assert "opening a browser to log in" in run.err
    no_secrets_in(run.err + page["page"], run.token, plugin.cached()["refresh_token"])


def test_the_cache_is_private_a_directory_0700_and_a_file_0600(plugin: Plugin) -> None:
    assert plugin.run().code == 0

    assert stat.S_IMODE(plugin.cache_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(plugin.cache_file.stat().st_mode) == 0o600
    assert [p.name for p in plugin.cache_dir.iterdir()] == [plugin.cache_file.name]  # no temporary left over


def test_the_second_run_is_served_from_the_cache(plugin: Plugin, issuer: TestIssuer) -> None:
    first = plugin.run()
    assert first.code == 0, first.err
    requests, authorizations = len(issuer.token_endpoint.requests), len(issuer.token_endpoint.authorizations)

    second = plugin.run(interactive=False)

    assert second.code == 0, second.err
    assert second.token == first.token
    assert second.err == ""
    assert len(issuer.token_endpoint.requests) == requests
    assert len(issuer.token_endpoint.authorizations) == authorizations
    assert len(plugin.pages()) == 1


def test_v1beta1_is_answered_in_v1beta1(plugin: Plugin) -> None:
    run = plugin.run(api_version=V1BETA1)

    assert run.code == 0, run.err
    assert run.credential["apiVersion"] == V1BETA1


def test_an_expired_token_is_refreshed_once_and_the_rotated_refresh_token_is_cached(
    plugin: Plugin, issuer: TestIssuer
) -> None:
    plugin.known_refresh_token("refresh-1")
    expired = plugin.expired_token()
    plugin.seed(expired, "refresh-1")

    run = plugin.run(interactive=False)

    assert run.code == 0, run.err
    assert run.token != expired
    assert expiry.claims(run.token)["exp"] > time.time()
    assert grants(issuer) == ["refresh_token"]
    assert issuer.token_endpoint.requests[0]["refresh_token"] == "refresh-1"
    cached = plugin.cached()
    assert cached["id_token"] == run.token
    assert cached["refresh_token"] not in (None, "refresh-1")
    assert cached["refresh_token"] in issuer.token_endpoint.refresh_tokens  # the rotated one, good for next time
    assert plugin.pages() == []
    no_secrets_in(run.err, run.token, "refresh-1", cached["refresh_token"])


def test_a_refused_refresh_without_a_terminal_fails_and_says_how_to_log_in(plugin: Plugin, issuer: TestIssuer) -> None:
    plugin.seed(plugin.expired_token(), "revoked-refresh-token")

    run = plugin.run(interactive=False)

    assert run.code == 1
    assert run.out == ""
    assert "refused the cached refresh token" in run.err
    assert "invalid_grant" in run.err
    assert "run kubectl from a terminal" in run.err
    assert "Traceback" not in run.err
    no_secrets_in(run.err, "revoked-refresh-token")
    assert not plugin.cache_file.exists()  # forgotten: it will never work again
    assert grants(issuer) == ["refresh_token"]
    assert plugin.pages() == []


def test_a_refused_refresh_in_a_terminal_logs_in_with_the_browser_again(plugin: Plugin, issuer: TestIssuer) -> None:
    plugin.seed(plugin.expired_token(), "revoked-refresh-token")

    run = plugin.run(interactive=True)

    assert run.code == 0, run.err
    assert "refused the cached refresh token" in run.err
    assert grants(issuer) == ["refresh_token", "authorization_code"]
    assert len(plugin.pages()) == 1
    assert plugin.cached()["id_token"] == run.token


def test_an_issuer_outage_during_refresh_keeps_the_refresh_token(plugin: Plugin, issuer: TestIssuer) -> None:
    plugin.known_refresh_token("refresh-1")
    plugin.seed(plugin.expired_token(), "refresh-1")
    issuer.token_endpoint.down = True

    run = plugin.run(interactive=True)

    assert run.code == 1
    assert "could not refresh the token (the refresh token is kept for the next try)" in run.err
    assert "HTTP 503" in run.err
    assert plugin.cached()["refresh_token"] == "refresh-1"
    assert plugin.pages() == []  # the browser would not help: the token endpoint is down


def test_a_token_with_another_logins_nonce_is_refused(plugin: Plugin, issuer: TestIssuer) -> None:
    issuer.token_endpoint.id_token_claims = {"nonce": "from-another-login"}

    run = plugin.run()

    assert run.code == 1
    assert "the id_token's nonce is not this login's" in run.err
    assert run.out == ""
    assert not plugin.cache_file.exists()
    (page,) = plugin.pages()
    assert page["status"] == 400
    assert "Login failed" in page["page"]


def test_a_callback_with_a_state_of_someone_elses_choosing_is_refused(plugin: Plugin, issuer: TestIssuer) -> None:
    run = plugin.run(FAKE_BROWSER_FORGE_STATE="1")

    assert run.code == 1
    assert "a state that does not belong to this login" in run.err
    assert issuer.token_endpoint.requests == []  # the forged code was never sent anywhere
    (page,) = plugin.pages()
    assert page["status"] == 400
    assert "does not belong to this login" in page["page"]


def test_the_providers_refusal_is_shown(plugin: Plugin, issuer: TestIssuer) -> None:
    issuer.auth_error = "access_denied"

    run = plugin.run()

    assert run.code == 1
    assert "the identity provider refused the login: access_denied (refused by the test issuer)" in run.err
    assert issuer.token_endpoint.requests == []


def test_no_browser_prints_the_url_and_waits_for_the_callback(plugin: Plugin, issuer: TestIssuer) -> None:
    process = subprocess.Popen(
        plugin.argv("--no-browser"),
        env=plugin.environment(True, V1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if line.startswith("https://"):
                break
        assert "to log in, open this URL in a browser on this machine" in "".join(lines)
        url = lines[-1].strip()
        assert url.startswith(f"{issuer.url}/auth?")
        context = ssl.create_default_context(cafile=issuer.ca_file)
        with urllib.request.urlopen(url, context=context, timeout=30) as response:
            assert "You can close this tab" in response.read().decode()
        out, _ = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0
    assert json.loads(out)["status"]["token"]
    assert plugin.pages() == []  # $BROWSER was not started


def test_a_cache_file_other_users_may_read_is_ignored(plugin: Plugin, issuer: TestIssuer) -> None:
    plugin.seed(issuer.token(aud=CLIENT_ID), "refresh-1")
    plugin.cache_file.chmod(0o644)

    refused = plugin.run(interactive=False)

    assert refused.code == 1
    assert (
        f"warning: ignoring the token cache {plugin.cache_file}: its mode 0644 lets other users read it" in refused.err
    )
    assert "run kubectl from a terminal" in refused.err
    assert issuer.token_endpoint.requests == []

    again = plugin.run(interactive=True)  # a new login replaces the file, private again
    assert again.code == 0, again.err
    assert stat.S_IMODE(plugin.cache_file.stat().st_mode) == 0o600


def test_no_cache_and_no_terminal_fails_without_opening_a_browser(plugin: Plugin, issuer: TestIssuer) -> None:
    run = plugin.run(interactive=False)

    assert run.code == 1
    assert run.err.strip() == (
        f"kube-oidc-proxy credential: error: no valid token for {issuer.url} (client {CLIENT_ID}) and no usable "
        "refresh token; logging in needs a browser, which this non-interactive run may not open: run kubectl "
        "from a terminal (e.g. kubectl auth whoami) to log in"
    )
    assert plugin.pages() == []
    assert issuer.token_endpoint.requests == []
