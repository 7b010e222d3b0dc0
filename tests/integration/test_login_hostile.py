"""Browser login against a hostile browser, a hostile or broken IdP, and floods: every refusal is a page with
the security headers and an AuFail line, the only redirect is to the issuer's authorization endpoint with our
redirect_uri, nothing reaches kube-apiserver, and no code, state, nonce, verifier or token is ever logged."""

from __future__ import annotations

import html
import json
import logging
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from kube_oidc_proxy.config import Config
from kube_oidc_proxy.login.cookies import name_for
from kube_oidc_proxy.login.handler import LoginPages
from kube_oidc_proxy.login.pending import LIFETIME_SECONDS
from kube_oidc_proxy.login.spent import SpentStates
from tests.conftest import ProxyHandle, replace, start_proxy
from tests.integration.test_login import SECURITY_HEADERS, with_login
from tests.support.browser import Browser, follow, query_of
from tests.support.client import Client, Response
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream
from tests.support.waiting import until

REDIRECT_URI = "https://localhost/login/callback"
NOT_VALID = "<h1>This sign-in link is not valid</h1>"


class Watched(Browser):
    """A browser that checks every response the proxy gives it: security headers, cookie attributes (set with
    the redirect to the issuer, cleared by a callback), and no redirect anywhere but the issuer's authorization
    endpoint with our redirect_uri."""

    async def get(self, target: str, headers: list[tuple[str, str]] | None = None, method: str = "GET") -> Response:
        response = await super().get(target, headers, method)
        check_response(response, self.issuer)
        return response


def check_response(response: Response, issuer: TestIssuer, redirect_uri: str = REDIRECT_URI) -> None:
    got = {name: value for name, value in response.headers if name in SECURITY_HEADERS}
    assert got == SECURITY_HEADERS, response.headers
    for name, value in response.headers:
        if name == "set-cookie":
            cookie, _, attributes = value.partition("; ")
            assert cookie.startswith("__Host-kop-login-"), value
            if response.status == 302:
                assert attributes == "Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600", value
                state = query_of(cast(str, response.header("location")))["state"]
                assert cookie.startswith(f"{name_for(state)}="), "the cookie is named after its state"
            else:
                assert attributes == "Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0", value
                assert cookie.endswith("="), "a cleared cookie keeps nothing"
        if name == "location":
            assert value.startswith(f"{issuer.url}/auth?"), value
            assert query_of(value)["redirect_uri"] == redirect_uri, value
    assert (response.status == 302) == (response.header("location") is not None)


@pytest.fixture
async def handle(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, caplog: pytest.LogCaptureFixture
) -> AsyncIterator[ProxyHandle]:
    caplog.set_level(logging.DEBUG)
    # JSON access lines carry each refusal's reason; text lines are checked in their own test
    proxied = await start_proxy(
        with_login(replace(config, proxy=replace(config.proxy, log_format="json"))), issuer, upstream
    )
    yield proxied
    await proxied.running.stop(grace=1)
    proxied.app.access_log.close()
    assert upstream.requests == [], "nothing of a login ever reaches kube-apiserver"


def watched(handle: ProxyHandle, protocol: str = "HTTP/1.1") -> Watched:
    return Watched(handle.port, handle.ca_file, handle.issuer, protocol=protocol)


def pages_of(handle: ProxyHandle) -> LoginPages:
    return cast(LoginPages, handle.app.proxy.login)


def refused_lines(handle: ProxyHandle) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in handle.access.lines]
    return [line for line in lines if line.get("reason", "").startswith("browser login: ")]


async def refusals(handle: ProxyHandle, count: int) -> list[dict[str, Any]]:
    """The JSON access lines of refusals, once ``count`` are written; none holds the query."""
    await until(lambda: len(refused_lines(handle)) >= count, f"{count} refusals in the access log")
    refused = refused_lines(handle)
    for line in refused:
        assert "?" not in line["uri"], "the query (codes, states) is never logged"
    return refused


def text_of(response: Response) -> str:
    return response.body.decode()


# -- the state --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/2"])
async def test_a_replayed_callback_is_refused_even_in_the_same_browser(handle: ProxyHandle, protocol: str) -> None:
    browser = watched(handle, protocol)
    _, callback = await browser.start()
    [sealed] = browser.cookies.items()
    assert (await browser.get(callback)).status == 200
    assert browser.cookies == {}, "the callback cleared the cookie"
    replay = await browser.get(callback)
    assert replay.status == 400
    assert NOT_VALID in text_of(replay)
    # a browser that kept the cookie (or someone who copied it): the state is spent
    browser.cookies = dict([sealed])
    replay = await browser.get(callback)
    assert replay.status == 400 and NOT_VALID in text_of(replay)
    assert browser.cookies == {}, "cleared again"
    lines = await refusals(handle, 2)
    assert [line["reason"] for line in lines] == ["browser login: the state was used already"] * 2
    assert (lines[0]["uri"], lines[0]["status"]) == ("/login/callback", 400)
    assert len(handle.issuer.token_endpoint.requests) == 1, "no replayed code went to the IdP"
    await browser.close()


async def test_a_callback_without_a_state_or_with_an_unknown_one_is_refused(handle: ProxyHandle) -> None:
    browser = watched(handle)
    assert (await browser.get("/login/callback?code=abc")).status == 400
    assert (await browser.get("/login/callback?code=abc&state=")).status == 400
    assert (await browser.get("/login/callback?code=abc&state=made-up")).status == 400
    reasons = [line["reason"] for line in await refusals(handle, 3)]
    assert reasons == ["browser login: the callback has no state"] * 2 + [
        "browser login: no login cookie for the state"
    ]
    assert handle.issuer.token_endpoint.requests == [], "no code went to the IdP"


async def test_another_browsers_state_is_refused_without_this_logins_cookie(handle: ProxyHandle) -> None:
    victim, attacker = watched(handle), watched(handle)
    _, callback = await victim.start()
    [(name, _)] = victim.cookies.items()
    await attacker.get("/login/style.css")  # no cookie of its own
    assert (await attacker.get(callback)).status == 400
    await attacker.start()  # a cookie of its own now, for another login
    assert (await attacker.get(callback)).status == 400
    # its own login's cookie under the victim's name: sealed for another state
    [(_, own)] = attacker.cookies.items()
    attacker.cookies = {name: own}
    page = await attacker.get(callback)
    assert page.status == 400 and NOT_VALID in text_of(page)
    assert attacker.cookies == {}, "the cookie it sent is cleared"
    attacker.cookies = {name: "A" * 400}
    assert (await attacker.get(callback)).status == 400
    reasons = [line["reason"] for line in await refusals(handle, 4)]
    assert (
        reasons
        == ["browser login: no login cookie for the state"] * 2
        + ["browser login: the login cookie is expired, altered, or sealed for another state or key"] * 2
    )
    assert handle.issuer.token_endpoint.requests == [], "no code went to the IdP"
    # the attempts spent nothing: the browser that started the login still finishes it
    assert (await victim.get(callback)).status == 200


async def test_a_state_expires_with_its_cookie(handle: ProxyHandle) -> None:
    browser = watched(handle)
    pages = pages_of(handle)
    _, callback = await browser.start()
    real_clock = pages.clock
    pages.clock = lambda: real_clock() + LIFETIME_SECONDS + 1  # a browser that kept the cookie past Max-Age
    page = await browser.get(callback)
    pages.clock = real_clock
    assert page.status == 400 and NOT_VALID in text_of(page)
    assert browser.cookies == {}
    [line] = await refusals(handle, 1)
    assert line["reason"] == "browser login: the login cookie is expired, altered, or sealed for another state or key"
    assert handle.issuer.token_endpoint.requests == []


# -- the IdP's answers ------------------------------------------------------------------------------------


async def test_a_token_with_the_wrong_nonce_is_refused(handle: ProxyHandle) -> None:
    handle.issuer.token_endpoint.id_token_claims = {"nonce": "someone-elses"}
    page = await watched(handle).sign_in()
    assert page.status == 403
    assert "<h1>Access refused</h1>" in text_of(page)
    assert '<p class="reason" id="reason">the token&#39;s nonce does not match this sign-in</p>' in text_of(page)
    [line] = await refusals(handle, 1)
    assert line["reason"] == "browser login: refused: the token's nonce does not match this sign-in"


async def test_a_token_without_a_nonce_is_refused(handle: ProxyHandle) -> None:
    handle.issuer.token_endpoint.id_token_claims = {"nonce": None}
    assert (await watched(handle).sign_in()).status == 403


async def test_a_token_for_another_audience_is_refused_with_the_authenticators_reason(handle: ProxyHandle) -> None:
    handle.issuer.token_endpoint.id_token_claims = {"aud": "another-client"}
    page = await watched(handle).sign_in()
    assert page.status == 403
    why = 'token audience does not include the client id: the token\'s aud is "another-client", expected "kube"'
    assert why in html.unescape(text_of(page))  # the page escapes the token's text
    [line] = await refusals(handle, 1)
    assert line["reason"] == f"browser login: refused: {why}"


async def test_a_used_code_with_a_fresh_state_is_refused_by_the_idp_and_the_page_says_so(handle: ProxyHandle) -> None:
    browser = watched(handle)
    _, first = await browser.start()
    assert (await browser.get(first)).status == 200
    _, second = await browser.start()
    reused = f"/login/callback?code={query_of(first)['code']}&state={query_of(second)['state']}"
    page = await browser.get(reused)
    assert page.status == 502
    assert "<h1>Sign-in failed</h1>" in text_of(page)
    assert "The identity provider did not give a token:" in text_of(page)
    assert "invalid_grant (code not valid)" in text_of(page)
    [line] = await refusals(handle, 1)
    assert line["reason"].endswith("HTTP 400: invalid_grant (code not valid)")


async def test_the_idps_error_is_shown_escaped_once_the_state_is_ours(handle: ProxyHandle) -> None:
    handle.issuer.auth_error = "access_denied"
    page = await watched(handle).sign_in()
    assert page.status == 403
    assert "The identity provider did not sign you in:" in text_of(page)
    assert "access_denied: refused by the test issuer" in text_of(page)
    [line] = await refusals(handle, 1)
    assert line["reason"] == "browser login: the identity provider answered access_denied: refused by the test issuer"


async def test_a_forged_error_is_not_shown_and_a_hostile_one_is_escaped_and_bounded(handle: ProxyHandle) -> None:
    browser = watched(handle)
    forged = await browser.get("/login/callback?error=Your+account+is+locked.+Call+555-0100&state=made-up")
    assert forged.status == 400 and "locked" not in text_of(forged)
    _, callback = await browser.start()
    hostile = "<script>alert(1)</script>\r\nSet-Cookie: x=y" + "A" * 5000
    state = query_of(callback)["state"]
    query = urllib.parse.urlencode({"state": state, "error": "access_denied", "error_description": hostile})
    page = await browser.get(f"/login/callback?{query}")
    assert page.status == 403
    assert "<script>" not in text_of(page) and "&lt;script&gt;alert(1)&lt;/script&gt;??Set-Cookie: x=y" in text_of(page)
    assert "A" * 300 not in text_of(page) and "…" in text_of(page)
    lines = await refusals(handle, 2)
    assert "\n" not in lines[1]["reason"] and len(lines[1]["reason"]) < 400


async def test_an_outage_at_the_token_endpoint_is_a_502_page(handle: ProxyHandle) -> None:
    handle.issuer.token_endpoint.down = True
    page = await watched(handle).sign_in()
    assert page.status == 502
    assert "HTTP 503: temporarily_unavailable" in text_of(page)


async def test_an_issuer_not_reached_yet_is_a_503_page(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    issuer.down = True
    proxied = await start_proxy(with_login(config), issuer, upstream, wait_for_keys=False)
    try:
        page = await watched(proxied).get("/login")
        assert page.status == 503 and page.header("retry-after") == "30"
        assert "<h1>Identity provider unavailable</h1>" in text_of(page)
        assert f"The proxy has not reached {issuer.url} yet." in text_of(page)
        kubeconfig = await watched(proxied).get("/login/kubeconfig")
        assert kubeconfig.status == 503
        line = await proxied.access.wait_for("AuFail")
        assert line.endswith("URI:/login")
        assert issuer.token_endpoint.authorizations == []
    finally:
        await proxied.running.stop(grace=1)
        proxied.app.access_log.close()


async def test_an_issuer_that_drops_out_of_discovery_mid_login_is_a_page_not_a_crash(handle: ProxyHandle) -> None:
    browser = watched(handle)
    _, callback = await browser.start()
    [source] = handle.app.key_sources
    source.discovery = {"issuer": handle.issuer.url}  # no endpoints any more
    page = await browser.get(callback)
    assert page.status == 502 and "<h1>Identity provider unusable</h1>" in text_of(page)


# -- parameters, paths, methods, hosts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "redirect=https://evil.example/",
        "next=//evil.example",
        "return_to=https://evil.example/x",
        "redirect_uri=https://evil.example/login/callback",
        "redirect_url=//evil.example&continue=https://evil.example&url=https://evil.example",
        "next=%0D%0ALocation:%20https://evil.example",
        "x=%0D%0ASet-Cookie:%20a=b",
    ],
)
async def test_no_redirect_like_parameter_is_honoured(handle: ProxyHandle, query: str) -> None:
    browser = watched(handle)
    started = await browser.get(f"/login?{query}")
    assert started.status == 302  # checked by Watched: the issuer's endpoint, our redirect_uri
    callback = await follow(handle.issuer, cast(str, started.header("location")))
    page = await browser.get(f"{callback}&{query}")
    assert page.status == 200 and page.header("location") is None
    assert "evil.example" not in text_of(page)
    state = query_of(callback)["state"]
    assert [v for n, v in page.headers if n == "set-cookie"] == [
        f"{name_for(state)}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"
    ], "no cookie but the clearing of this login's"


@pytest.mark.parametrize(
    "target",
    ["/login//evil.example", "/login/", "/login/callback/", "/login/../api", "/login/style.css/x", "/login/index.html"],
)
async def test_any_other_path_under_login_is_a_404_page(handle: ProxyHandle, target: str) -> None:
    page = await watched(handle).get(target)
    assert page.status == 404 and "<h1>Not found</h1>" in text_of(page)


async def test_crlf_and_repeated_parameters_are_refused_not_reflected(handle: ProxyHandle) -> None:
    browser = watched(handle)
    injected = await browser.get("/login?issuer=%0D%0ASet-Cookie:%20a=b")
    assert injected.status == 400 and "Set-Cookie" not in text_of(injected)
    assert (await browser.get("/login/callback?state=a&state=b")).status == 400
    assert (await browser.get("/login/kubeconfig?plugin=evil")).status == 400
    assert (await browser.get("/login?" + "&".join(f"p{n}=1" for n in range(40)))).status == 400


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
async def test_methods_other_than_get_and_head_are_405(handle: ProxyHandle, method: str) -> None:
    page = await watched(handle).get("/login", method=method)
    assert page.status == 405 and page.header("allow") == "GET, HEAD"


@pytest.mark.parametrize(
    "host",
    [
        b"evil.example/path",
        b"user@evil.example",
        b"evil.example:99999",
        b"evil.example:443:443",
        b"[::1",
        b"evil example",
        b"evil.example%2F",
        b"",
        b"-evil.example",
    ],
)
async def test_an_evil_host_header_is_a_400(handle: ProxyHandle, host: bytes) -> None:
    client = await Client.connect(handle.port, handle.ca_file)
    try:
        await client.send_raw(b"GET /login HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        response = await client.read_raw_response()
    finally:
        await client.close()
    assert response.status == 400, response.body
    assert response.header("location") is None


async def test_with_a_configured_redirect_url_the_host_header_does_not_choose_it(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    configured = "https://kube.example.com:8443/login/callback"
    proxied = await start_proxy(with_login(config, redirect_url=configured), issuer, upstream)
    try:
        client = await Client.connect(proxied.port, proxied.ca_file)
        try:
            await client.send_raw(b"GET /login HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            response = await client.read_raw_response()
        finally:
            await client.close()
        check_response(response, issuer, redirect_uri=configured)
        assert response.status == 302
    finally:
        await proxied.running.stop(grace=1)
        proxied.app.access_log.close()


# -- floods -----------------------------------------------------------------------------------------------


async def test_past_its_burst_one_address_gets_429_with_retry_after(handle: ProxyHandle) -> None:
    client = await Client.connect(handle.port, handle.ca_file)
    statuses = []
    try:
        for _ in range(40):
            response = await client.request("GET", "/login/style.css")
            check_response(response, handle.issuer)
            statuses.append(response.status)
            if response.status == 429:
                assert response.header("retry-after") == "1"
                assert "<h1>Too many requests</h1>" in text_of(response)
                break
    finally:
        await client.close()
    assert statuses[:30] == [200] * 30 and statuses[-1] == 429
    lines = await refusals(handle, 1)
    assert (lines[0]["reason"], lines[0]["status"]) == ("browser login: rate limited", 429)
    # the API is not limited by it
    token = handle.issuer.token()
    assert (
        await Browser(handle.port, handle.ca_file, handle.issuer).get("/api", [("authorization", f"Bearer {token}")])
    ).status == 200
    handle.upstream.requests.clear()


async def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_bucket(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    config = with_login(replace(config, proxy=replace(config.proxy, trusted_proxy_cidrs=("127.0.0.1/32",))))
    proxied = await start_proxy(config, issuer, upstream)
    try:
        pages_of(proxied).limiter.burst = 2
        browser = watched(proxied)
        statuses = [
            (await browser.get("/login/style.css", [("x-forwarded-for", address)])).status
            for address in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2")
        ]
        assert statuses == [200, 200, 429, 200]
        line = await proxied.access.wait_for("AuFail")
        assert "198.51.100.1" in line
    finally:
        await proxied.running.stop(grace=1)
        proxied.app.access_log.close()


async def test_past_the_spent_state_bound_logins_get_a_503_page_until_the_oldest_expire(handle: ProxyHandle) -> None:
    pages = pages_of(handle)
    pages.spent = SpentStates(limit=3)
    browser = watched(handle)
    started = [(await browser.start())[1] for _ in range(4)]
    assert len(browser.cookies) == 4, "one cookie per login: tabs do not undo each other"
    for callback in started[:3]:
        assert (await browser.get(callback)).status == 200
    full = await browser.get("/login")
    assert full.status == 503 and full.header("retry-after") == "60"
    assert "<h1>Too many sign-ins</h1>" in text_of(full)
    late = await browser.get(started[3])
    assert late.status == 503 and "<h1>Too many sign-ins</h1>" in text_of(late)
    assert len(handle.issuer.token_endpoint.requests) == 3, "the refused callback's code was not exchanged"
    assert len(pages.spent) == 3
    # the spent states are forgotten once no cookie could carry them
    real_clock = pages.clock
    pages.clock = lambda: real_clock() + LIFETIME_SECONDS
    try:
        assert (await browser.sign_in()).status == 200
    finally:
        pages.clock = real_clock
    lines = await refusals(handle, 2)
    assert [line["reason"] for line in lines] == ["browser login: too many logins in progress"] * 2


# -- what is logged ---------------------------------------------------------------------------------------


async def test_nothing_logged_holds_a_code_state_nonce_verifier_cookie_or_token(
    handle: ProxyHandle, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = handle.issuer
    minted: list[str] = []
    mint = issuer.mint

    def recording_mint(*args: Any, **kwargs: Any) -> str:
        token = mint(*args, **kwargs)
        minted.append(token)
        return token

    issuer.mint = recording_mint  # type: ignore[method-assign]
    browser = watched(handle)
    assert (await browser.sign_in()).status == 200
    _, callback = await browser.start()
    assert (await browser.get(callback)).status == 200
    assert (await browser.get(callback)).status == 400  # replayed
    issuer.token_endpoint.id_token_claims = {"nonce": "wrong"}
    assert (await browser.sign_in()).status == 403
    issuer.token_endpoint.id_token_claims = {}
    issuer.token_endpoint.down = True
    assert (await browser.sign_in()).status == 502
    await refusals(handle, 3)

    sealed = [value.split(";")[0].partition("=")[2] for value in browser.set_cookies]
    secrets = [*minted, *(value for value in sealed if value)]
    for asked in issuer.token_endpoint.authorizations:
        secrets += [asked["state"], asked["nonce"], asked["code_challenge"]]
    for form in issuer.token_endpoint.requests:
        secrets += [form["code"], form["code_verifier"]]
    secrets += list(issuer.token_endpoint.refresh_tokens)
    assert len(minted) == 3 and all(len(s) >= 16 for s in secrets)
    logged = "\n".join(handle.access.lines) + "\n" + caplog.text
    assert "browser login: alice signed in with" in caplog.text
    for secret in secrets:
        assert secret not in logged


async def test_every_refusal_is_an_aufail_line_with_the_path_alone(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    proxied = await start_proxy(with_login(config), issuer, upstream)
    try:
        browser = Browser(proxied.port, proxied.ca_file, issuer)
        refused = [
            await browser.get("/login/callback?code=secret-code&state=secret-state"),
            await browser.get("/login/nothing?state=secret-state"),
            await browser.get("/login?issuer=https%3A%2F%2Fevil.example"),
            await browser.get("/login", method="DELETE"),
        ]
        assert [r.status for r in refused] == [400, 404, 400, 405]
        ok = await browser.get("/login")
        assert ok.status == 302
        await until(lambda: sum("AuFail" in line for line in proxied.access.lines) >= 4, "four AuFail lines")
        lines = [line for line in proxied.access.lines if "AuFail" in line]
        assert [line.split("URI:")[1] for line in lines] == ["/login/callback", "/login/nothing", "/login", "/login"]
        assert not [line for line in proxied.access.lines if "secret" in line]
    finally:
        await proxied.running.stop(grace=1)
        proxied.app.access_log.close()
