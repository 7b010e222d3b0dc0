"""Browser login through the running proxy (``--login-client-id``), with the test issuer signing users in and
the recording upstream standing for kube-apiserver: the whole flow over HTTP/1.1 and HTTP/2, what the page
shows and offers, several issuers, and that login leaves the API's paths alone."""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import trustme
import yaml

from kube_oidc_proxy.config import Config, LoginConfig, OIDCConfig
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.login.cookies import name_for
from kube_oidc_proxy.login.handler import LoginPages
from kube_oidc_proxy.server.wiring import load
from tests.conftest import ProxyHandle, replace, start_proxy
from tests.integration.test_authentication_config import corporate, document, partner, write
from tests.integration.test_metrics import scrape, value
from tests.support.browser import COOKIE, Browser, kubeconfig_on, pre_blocks
from tests.support.certs import CertFiles, issue
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def with_login(config: Config, **login: Any) -> Config:
    return replace(config, login=LoginConfig(client_id=login.pop("client_id", "kube"), **login))


@pytest.fixture
async def login_proxy(config: Config, issuer: TestIssuer, upstream: RecordingUpstream) -> AsyncIterator[ProxyHandle]:
    handle = await start_proxy(with_login(config), issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
async def browser(request: pytest.FixtureRequest, login_proxy: ProxyHandle) -> AsyncIterator[Browser]:
    b = Browser(login_proxy.port, login_proxy.ca_file, login_proxy.issuer, protocol=request.param)
    yield b
    await b.close()


def assert_security_headers(headers: list[tuple[str, str]]) -> None:
    got = {name: value for name, value in headers if name in SECURITY_HEADERS}
    assert got == SECURITY_HEADERS


async def test_signing_in_shows_who_the_cluster_will_see_and_a_kubeconfig_that_runs_the_plugin(
    browser: Browser, login_proxy: ProxyHandle
) -> None:
    issuer = login_proxy.issuer
    started, callback = await browser.start()
    assert_security_headers(started.headers)
    asked = issuer.token_endpoint.authorizations[-1]
    assert asked["client_id"] == "kube"
    assert asked["redirect_uri"] == "https://localhost/login/callback"
    assert asked["response_type"] == "code" and asked["code_challenge_method"] == "S256"
    # what the test issuer lists of the defaults, but no offline grant: the page keeps no refresh token
    assert asked["scope"] == "openid email profile"
    assert len(asked["state"]) >= 43 and len(asked["nonce"]) >= 43 and asked["state"] != asked["nonce"]
    [cookie] = browser.set_cookies
    name = name_for(asked["state"])
    assert name.startswith(COOKIE) and cookie.startswith(f"{name}=")
    assert cookie.split(";", 1)[1] == " Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"

    page = await browser.get(callback)
    assert page.status == 200, page.body
    assert browser.set_cookies[-1] == f"{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    assert browser.cookies == {}, "the callback cleared the login's cookie"
    assert page.header("content-type") == "text/html; charset=utf-8"
    assert_security_headers(page.headers)
    text = page.body.decode()
    assert '<html lang="en">' in text and "<title>Signed in as alice · kube-oidc-proxy</title>" in text
    assert "<h1>Signed in as alice</h1>" in text
    assert '<dd id="username">alice</dd>' in text
    assert "<li>dev</li><li>ops</li><li>system:authenticated</li>" in text
    assert '<link rel="stylesheet" href="/login/style.css">' in text and "<script" not in text

    kubeconfig = kubeconfig_on(page.body)
    assert kubeconfig["clusters"] == [{"name": "localhost", "cluster": {"server": "https://localhost"}}]
    assert kubeconfig["current-context"] == "localhost"
    [user] = kubeconfig["users"]
    assert user["name"] == "oidc@localhost"
    ca_data = base64.b64encode(Path(issuer.ca_file).read_bytes()).decode()
    assert user["user"]["exec"] == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "kube-oidc-proxy",
        "args": [
            "credential",
            f"--issuer-url={issuer.url}",
            "--client-id=kube",
            "--scopes=openid,email,profile,offline_access",
            f"--issuer-ca-data={ca_data}",
        ],
        "interactiveMode": "IfAvailable",
        "provideClusterInfo": False,
    }
    kubelogin = yaml.safe_load(pre_blocks(page.body)[-1])
    assert kubelogin["users"][0]["user"]["exec"]["command"] == "kubectl"
    assert kubelogin["users"][0]["user"]["exec"]["args"] == [
        "oidc-login",
        "get-token",
        f"--oidc-issuer-url={issuer.url}",
        "--oidc-client-id=kube",
        "--oidc-extra-scope=email",
        "--oidc-extra-scope=profile",
        "--oidc-extra-scope=offline_access",
        f"--certificate-authority-data={ca_data}",
    ]
    assert "id_token" not in text and issuer.token_endpoint.requests[-1]["code"] not in text
    assert login_proxy.upstream.requests == [], "nothing reached kube-apiserver"


async def test_two_tabs_signing_in_at_once_do_not_undo_each_other(browser: Browser) -> None:
    _, first = await browser.start()
    _, second = await browser.start()
    assert len(browser.cookies) == 2, "a cookie per login"
    for callback in (second, first):
        page = await browser.get(callback)
        assert page.status == 200, page.body
    assert browser.cookies == {}


async def test_the_downloads_are_the_kubeconfigs_the_page_shows(browser: Browser, login_proxy: ProxyHandle) -> None:
    page = await browser.sign_in()
    quoted = urllib.parse.quote(login_proxy.issuer.url, safe="")
    for plugin, shown in (("kube-oidc-proxy", 0), ("kubelogin", -1)):
        link = f"/login/kubeconfig?issuer={quoted}&amp;plugin={plugin}"
        assert f'href="{link}"' in page.body.decode()
        download = await Browser(browser.port, browser.ca_file, browser.issuer).get(link.replace("&amp;", "&"))
        assert download.status == 200
        assert download.header("content-disposition") == 'attachment; filename="kubeconfig"'
        assert download.header("content-type") == "application/yaml; charset=utf-8"
        assert_security_headers(download.headers)
        assert download.body.decode() == pre_blocks(page.body)[shown]


async def test_the_stylesheet_is_served_and_a_head_request_gets_the_headers_alone(browser: Browser) -> None:
    style = await browser.get("/login/style.css")
    assert style.status == 200 and style.header("content-type") == "text/css; charset=utf-8"
    assert b"font-family" in style.body
    assert_security_headers(style.headers)
    head = await browser.get("/login/style.css", method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("content-length") == str(len(style.body))


async def test_api_paths_are_forwarded_exactly_as_before_with_login_on(
    browser: Browser, login_proxy: ProxyHandle
) -> None:
    token = login_proxy.issuer.token()
    for path in ("/api", "/apis", "/version", "/openapi/v2", "/api/v1/namespaces/login/pods", "/loginx"):
        response = await browser.get(path, headers=[("authorization", f"Bearer {token}")])
        assert response.status == 200, (path, response.body)
        assert login_proxy.upstream.requests[-1].target == path
        assert login_proxy.upstream.requests[-1].one("impersonate-user") == "alice"


async def test_with_login_off_a_login_path_is_forwarded_like_any_other(proxy: ProxyHandle) -> None:
    response = await get(proxy.port, proxy.ca_file, "/login?x=1", token=proxy.issuer.token())
    assert response.status == 200
    assert proxy.upstream.requests[-1].target == "/login?x=1"
    refused = await get(proxy.port, proxy.ca_file, "/login/callback")
    assert refused.status == 401, "no token: refused as any API request"


async def test_claim_mappings_and_extra_user_headers_are_what_the_page_shows(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    config = replace(
        with_login(config),
        oidc=replace(config.oidc, username_claim="email", username_prefix="oidc:", groups_prefix="corp:"),
        proxy=replace(config.proxy, extra_user_headers=(("site", ("eu",)),), extra_user_header_client_ip=True),
    )
    handle = await start_proxy(config, issuer, upstream)
    try:
        page = await Browser(handle.port, handle.ca_file, issuer).sign_in()
        text = page.body.decode()
        assert "<h1>Signed in as oidc:alice@example.com</h1>" in text
        assert "<li>corp:dev</li><li>corp:ops</li><li>system:authenticated</li>" in text
        assert "<li>remote-client-ip: 127.0.0.1</li><li>site: eu</li>" in text
        # and an API request with a token for the same claims is sent as exactly that
        response = await get(handle.port, handle.ca_file, "/api", token=issuer.token(aud="kube"))
        assert response.status == 200
        sent = upstream.requests[-1]
        assert sent.one("impersonate-user") == "oidc:alice@example.com"
        assert sent.all("impersonate-group") == ["corp:dev", "corp:ops", "system:authenticated"]
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()


@pytest.fixture
def partner_issuer(server_certs: CertFiles) -> Iterator[TestIssuer]:
    issuer = TestIssuer(server_certs, path="/partner")
    yield issuer
    issuer.close()


async def test_with_several_issuers_a_chooser_names_them_and_each_signs_in_with_its_own_mappings(
    config: Config, tmp_path: Path, issuer: TestIssuer, partner_issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    path = tmp_path / "authentication-config.yaml"
    write(path, document(corporate(issuer), partner(partner_issuer)))
    config = with_login(replace(config, oidc=OIDCConfig(authentication_config=str(path))))
    handle = await start_proxy(config, issuer, upstream)
    try:
        chooser = await Browser(handle.port, handle.ca_file, issuer).get("/login")
        assert chooser.status == 200
        text = chooser.body.decode()
        assert "<h1>Sign in</h1>" in text
        for url in (issuer.url, partner_issuer.url):
            assert f'<a href="/login?issuer={urllib.parse.quote(url, safe="")}">{url}</a>' in text
        page = await Browser(handle.port, handle.ca_file, issuer).sign_in(
            f"/login?issuer={urllib.parse.quote(issuer.url, safe='')}"
        )
        assert "<h1>Signed in as corp:alice@example.com</h1>" in page.body.decode()
        assert '<dd id="uid">alice</dd>' in page.body.decode()
        partner_issuer.login_claims = {"tier": "gold", "tenant": "acme"}
        page = await Browser(handle.port, handle.ca_file, partner_issuer).sign_in(
            f"/login?issuer={urllib.parse.quote(partner_issuer.url, safe='')}"
        )
        text = page.body.decode()
        assert "<h1>Signed in as partner:alice</h1>" in text
        assert "<li>example.com/tenant: acme</li>" in text
        partner_issuer.login_claims = {"tier": "silver"}
        refused = await Browser(handle.port, handle.ca_file, partner_issuer).sign_in(
            f"/login?issuer={urllib.parse.quote(partner_issuer.url, safe='')}"
        )
        assert refused.status == 403
        assert "<h1>Access refused</h1>" in refused.body.decode()
        assert "gold tier only" in refused.body.decode()
        unknown = await Browser(handle.port, handle.ca_file, issuer).get("/login?issuer=https%3A%2F%2Fevil.example")
        assert unknown.status == 400 and "<h1>Unknown identity provider</h1>" in unknown.body.decode()
        assert upstream.requests == []
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()


async def test_a_confidential_client_sends_its_secret_from_the_file(
    config: Config, tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret value\n")
    issuer.token_endpoint.client_secret = "s3cret value"
    handle = await start_proxy(with_login(config, client_secret_file=str(secret)), issuer, upstream)
    try:
        page = await Browser(handle.port, handle.ca_file, issuer).sign_in()
        assert page.status == 200, page.body
        assert "s3cret" not in page.body.decode()
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()


@pytest.mark.parametrize(("content", "problem"), [(None, "cannot read"), ("  \n", "is empty")])
def test_an_unreadable_or_empty_secret_file_stops_the_start(
    config: Config, tmp_path: Path, content: str | None, problem: str
) -> None:
    secret = tmp_path / "secret"
    if content is not None:
        secret.write_text(content)
    with pytest.raises(StartupError, match=problem) as raised:
        load(with_login(config, client_secret_file=str(secret)))
    assert "--login-client-secret-file" in str(raised.value)


def test_a_login_client_id_no_issuer_accepts_is_warned_about_at_start(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="kop.app"):
        load(with_login(config, client_id="browser"))
    assert "--login-client-id browser is not an audience of any issuer" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kop.app"):
        load(with_login(config))
    assert "--login-client-id" not in caplog.text


async def test_a_self_signed_root_ending_the_serving_chain_becomes_the_kubeconfig_ca(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, tmp_path: Path, ca: trustme.CA
) -> None:
    certs = issue(ca, tmp_path, "chain")
    with open(certs.cert, "ab") as chain:
        chain.write(ca.cert_pem.bytes())
    serving = replace(config.serving, tls_cert_file=certs.cert, tls_private_key_file=certs.key)
    config = with_login(replace(config, serving=serving))
    handle = await start_proxy(config, issuer, upstream)
    try:
        page = await Browser(handle.port, handle.ca_file, issuer).sign_in()
        cluster = kubeconfig_on(page.body)["clusters"][0]["cluster"]
        assert base64.b64decode(cluster["certificate-authority-data"]) == ca.cert_pem.bytes()
        assert "mv ~/Downloads/kubeconfig ~/.kube/localhost.yaml" in page.body.decode()
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()


async def test_logins_are_counted_by_result_and_login_pages_are_not_api_requests(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    metered = with_login(replace(config, proxy=replace(config.proxy, metrics_bind_address="127.0.0.1:0")))
    handle = await start_proxy(metered, issuer, upstream)
    try:
        browser = Browser(handle.port, handle.ca_file, issuer)
        assert (await browser.sign_in()).status == 200
        assert (await browser.get("/login/callback?state=made-up&code=x")).status == 400
        issuer.token_endpoint.id_token_claims = {"aud": "other"}
        assert (await browser.sign_in()).status == 403
        issuer.token_endpoint.down = True
        assert (await browser.sign_in()).status == 502
        issuer.token_endpoint.down = False
        _, callback = await browser.start()
        pages = cast(LoginPages, handle.app.proxy.login)
        pages.spent.limit = len(pages.spent)
        assert (await browser.get(callback)).status == 503
        samples = await scrape(handle.running.metrics_port)
        assert value(samples, "logins_total", result="success") == 1
        assert value(samples, "logins_total", result="bad_request") == 1
        assert value(samples, "logins_total", result="refused") == 1
        assert value(samples, "logins_total", result="provider_error") == 1
        assert value(samples, "logins_total", result="overloaded") == 1
        assert not [name for name, _ in samples if name == "kube_oidc_proxy_http_requests_total"]
    finally:
        await handle.running.stop(grace=1)
        handle.app.access_log.close()
