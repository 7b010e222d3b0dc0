"""Browser login end to end: headless Chromium (Debian's, driven through chromium-driver) signs in at the
proxy's /login with the real Keycloak, downloads the kubeconfig, and the real kubectl uses it.

The kubeconfig holds no token: its user runs ``kube-oidc-proxy credential``. Its first run opens "the
browser" for a login of its own; here ``$BROWSER`` hands that URL to the same Chromium, which is still signed
in to Keycloak, so the plugin's loopback receives a code without a second password, as it happens on a
laptop. Screenshots of every page are saved under ``KOP_ARTIFACTS`` (default ``artifacts/`` in the
repository) as test artifacts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import pty
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.e2e.cluster.cluster import NAMESPACE, Cluster
from tests.e2e.cluster.idp import CLIENT_ID
from tests.e2e.cluster.processes import wait_until
from tests.e2e.cluster.proxy import Proxy

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("KOP_ARTIFACTS", ROOT / "artifacts")) / "browser-login"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGE_TIMEOUT_SECONDS = 30.0
# Who may use the cluster behind the refusing proxy: a validation rule on the token's claims.
RULE_MESSAGE = "only example.com accounts may use this cluster"


def _need_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {', '.join(missing)} is missing (apt-get install chromium chromium-driver)")
    pytest.skip(f"BROWSER LOGIN TESTS SKIPPED: {', '.join(missing)} missing (apt-get install chromium chromium-driver)")


def _spki_hash(pem: str) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: base64 SHA-256 of the public key."""
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def _served_certificate(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port))


@pytest.fixture(scope="module", autouse=True)
def _fresh_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)


@pytest.fixture(scope="module")
def login_proxy(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """Login on; its serving certificate file holds the chain up to the cluster's CA (as cert-manager's
    tls.crt does), so the page can put that CA into the kubeconfig it gives."""
    assert cluster.ca is not None
    pair = cluster.ca.serving("kube-oidc-proxy-login")
    chain = tmp_path_factory.mktemp("login-proxy") / "tls-chain.crt"
    chain.write_text(pair.cert.read_text() + cluster.ca_file.read_text())
    proxy = Proxy(cluster)
    proxy.start(f"--login-client-id={CLIENT_ID}", f"--tls-cert-file={chain}", f"--tls-private-key-file={pair.key}")
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="module")
def refusing_proxy(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """Login on, with an AuthenticationConfiguration whose rule refuses accounts outside example.com."""
    config = tmp_path_factory.mktemp("refusing") / "authentication.yaml"
    issuer = {"url": cluster.issuer, "audiences": [CLIENT_ID], "certificateAuthority": cluster.ca_file.read_text()}
    rule = {"expression": "claims.email.endsWith('@example.com')", "message": RULE_MESSAGE}
    jwt = {"issuer": issuer, "claimMappings": {"username": {"claim": "email", "prefix": ""}}}
    document = {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "AuthenticationConfiguration",
        "jwt": [{**jwt, "claimValidationRules": [rule]}],
    }
    config.write_text(yaml.safe_dump(document))
    proxy = Proxy(cluster)
    proxy.start(f"--login-client-id={CLIENT_ID}", authentication_config=config)
    try:
        yield proxy
    finally:
        proxy.stop()


def _chromium(profile: Path, downloads: Path, trusted_ports: tuple[int, ...]) -> WebDriver:
    """A fresh headless Chromium (no cookies) that trusts these ports' certificates by their keys."""
    _need_chromium()
    trusted = {_spki_hash(_served_certificate(port)) for port in trusted_ports}
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--window-size=1200,1400",
        f"--user-data-dir={profile}",  # the SPKI list is honoured only with a profile of our own
        f"--ignore-certificate-errors-spki-list={','.join(sorted(trusted))}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_SECONDS)
    downloads.mkdir(exist_ok=True)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    return driver


@pytest.fixture
def browser(cluster: Cluster, login_proxy: Proxy, tmp_path: Path) -> Iterator[WebDriver]:
    driver = _chromium(tmp_path / "profile", tmp_path / "downloads", (cluster.keycloak_port, login_proxy.port))
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver: WebDriver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def _sign_in_at_keycloak(driver: WebDriver, username: str, password: str) -> None:
    wait_until("Keycloak's login form", lambda: bool(driver.find_elements(By.ID, "username")), PAGE_TIMEOUT_SECONDS)
    driver.find_element(By.ID, "username").send_keys(username)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "kc-login").click()


def _text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def _downloaded(tmp_path: Path) -> Path:
    target = tmp_path / "downloads" / "kubeconfig"
    wait_until("the kubeconfig download", target.exists, PAGE_TIMEOUT_SECONDS)
    return target


class _PluginBrowser:
    """``$BROWSER`` for the credential plugin: a script that records the URL the plugin wants opened."""

    def __init__(self, directory: Path) -> None:
        self.urls = directory / "opened-urls"
        self.script = directory / "browser.sh"
        self.script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> {self.urls}\n')
        self.script.chmod(0o755)

    def first_url(self, kubectl: subprocess.Popen[bytes]) -> str:
        def opened() -> bool:
            if kubectl.poll() is not None:
                _, err = kubectl.communicate()
                raise AssertionError(
                    f"kubectl ended before its plugin opened a browser: {err.decode(errors='replace')}"
                )
            return self.urls.exists()

        wait_until("the plugin opening the browser", opened, PAGE_TIMEOUT_SECONDS)
        return self.urls.read_text().splitlines()[0]


@contextlib.contextmanager
def _kubectl_on_a_terminal(
    kubeconfig: Path, home: Path, browser_script: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """kubectl as a person runs it: stdin a terminal (so the exec plugin may be interactive), the plugin's
    command (kube-oidc-proxy, from this virtualenv) on PATH."""
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "HOME": str(home),
        "BROWSER": str(browser_script),
        "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "XDG_CACHE_HOME": str(home / ".cache"),
    }
    process = subprocess.Popen(
        ["kubectl", *args], stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    os.close(follower)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait()
        os.close(leader)  # the terminal stays open while kubectl runs


def _user(kubeconfig: dict[str, Any]) -> dict[str, Any]:
    users = kubeconfig["users"]
    assert len(users) == 1
    return dict(users[0]["user"])


def test_a_user_signs_in_with_a_browser_and_kubectl_works_with_the_downloaded_kubeconfig(
    cluster: Cluster, login_proxy: Proxy, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(f"{login_proxy.url}/login")
    _screenshot(browser, "01-keycloak-sign-in")
    _sign_in_at_keycloak(browser, "alice", "alice-password")
    wait_until("the signed-in page", lambda: "/login/callback" in browser.current_url, PAGE_TIMEOUT_SECONDS)
    _screenshot(browser, "02-signed-in")
    page = _text(browser)
    # what the proxy will send kube-apiserver: the username claim (email) and the prefixed groups
    assert "alice@example.com" in page
    assert "oidc:developers" in page
    assert "kube-oidc-proxy credential" in page

    browser.find_element(By.CSS_SELECTOR, 'a[href*="plugin=kube-oidc-proxy"]').click()
    kubeconfig_path = _downloaded(tmp_path)
    config = yaml.safe_load(kubeconfig_path.read_text())
    user = _user(config)
    assert "token" not in user
    assert user["exec"]["command"] == "kube-oidc-proxy"
    assert "credential" in user["exec"]["args"]
    assert config["clusters"][0]["cluster"]["server"] == login_proxy.url
    ca = base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).decode()
    assert ca.strip() == cluster.ca_file.read_text().strip()

    # The first kubectl runs the plugin, which opens "the browser": the same Chromium, still signed in.
    home = tmp_path / "home"
    home.mkdir()
    plugin_browser = _PluginBrowser(tmp_path)
    with _kubectl_on_a_terminal(
        kubeconfig_path, home, plugin_browser.script, "get", "pods", "-n", NAMESPACE
    ) as kubectl:
        browser.get(plugin_browser.first_url(kubectl))
        _screenshot(browser, "03-plugin-signed-in")
        try:
            out, err = kubectl.communicate(timeout=PAGE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"kubectl did not finish; the browser is at {browser.current_url}: {_text(browser)}"
            ) from None
    assert kubectl.returncode == 0, err.decode(errors="replace")
    assert b"web" in out

    # The next kubectl needs no browser: the plugin's cache (0600) serves it, as that user.
    with _kubectl_on_a_terminal(kubeconfig_path, home, plugin_browser.script, "auth", "whoami", "-o", "yaml") as whoami:
        out, err = whoami.communicate(timeout=PAGE_TIMEOUT_SECONDS)
    assert whoami.returncode == 0, err.decode(errors="replace")
    status = yaml.safe_load(out)["status"]["userInfo"]
    assert status["username"] == "alice@example.com"
    assert "oidc:developers" in status["groups"]
    assert len(plugin_browser.urls.read_text().splitlines()) == 1  # no second login
    cached = [p for p in (home / ".cache").rglob("*") if p.is_file()]
    assert cached
    assert all(p.stat().st_mode & 0o077 == 0 for p in cached)
    assert login_proxy.process is not None
    log = login_proxy.process.log_path.read_text(errors="replace")
    assert "code=" not in log


def test_a_user_the_proxy_refuses_sees_the_reason_on_the_page(
    cluster: Cluster, refusing_proxy: Proxy, tmp_path: Path
) -> None:
    driver = _chromium(tmp_path / "profile", tmp_path / "downloads", (cluster.keycloak_port, refusing_proxy.port))
    try:
        driver.get(f"{refusing_proxy.url}/login")
        _sign_in_at_keycloak(driver, "carol", "carol-password")
        wait_until("the refusal page", lambda: "/login/callback" in driver.current_url, PAGE_TIMEOUT_SECONDS)
        _screenshot(driver, "04-refused")
        page = _text(driver)
        assert RULE_MESSAGE in page
        assert "kube-oidc-proxy credential" not in page  # a refused user gets no kubeconfig
    finally:
        driver.quit()
    assert refusing_proxy.process is not None
    lines = [ln for ln in refusing_proxy.process.log_path.read_text(errors="replace").splitlines() if "AuFail" in ln]
    assert any("/login/callback" in ln for ln in lines)
