"""The loopback receiver: the callback's state decides; other requests neither end nor confuse the wait."""

from __future__ import annotations

import asyncio

import pytest

from kube_oidc_proxy.credential.errors import CredentialError, UsageError
from kube_oidc_proxy.credential.loopback import (
    MAX_HEAD_BYTES,
    Loopback,
    judge,
    parse_listen_address,
    parse_request_head,
    redirect_uri,
)

STATE = "the-state"


def test_the_code_of_a_callback_with_this_logins_state() -> None:
    assert judge({"code": ["c"], "state": [STATE]}, STATE) == "c"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"code": ["c"]}, "without a state"),
        ({"code": ["c"], "state": ["other"]}, "a state that does not belong to this login"),
        ({"code": ["c"], "state": [STATE, STATE]}, "state twice"),
        ({"code": ["c", "d"], "state": [STATE]}, "code twice"),
        ({"state": [STATE]}, "without an authorization code"),
        ({"state": [STATE], "code": [""]}, "without an authorization code"),
        ({"state": [STATE], "error": ["access_denied"]}, "refused the login: access_denied$"),
        (
            {"state": [STATE], "error": ["access_denied"], "error_description": ["no\nway"]},
            r"refused the login: access_denied \(no\?way\)",
        ),
        # a forged error is not believed: the state is checked first
        ({"state": ["other"], "error": ["access_denied"]}, "does not belong to this login"),
    ],
)
def test_callbacks_that_are_refused(query: dict[str, list[str]], message: str) -> None:
    with pytest.raises(CredentialError, match=message):
        judge(query, STATE)


@pytest.mark.parametrize(
    ("text", "expected", "uri"),
    [
        ("127.0.0.1:0", ("127.0.0.1", 0), "http://127.0.0.1:0/callback"),
        ("localhost:8000", ("localhost", 8000), "http://localhost:8000/callback"),
        ("[::1]:18000", ("::1", 18000), "http://[::1]:18000/callback"),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int], uri: str) -> None:
    assert parse_listen_address(text) == expected
    assert redirect_uri(*expected) == uri


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("127.0.0.1", "is not HOST:PORT"),
        ("127.0.0.1:http", "is not HOST:PORT"),
        ("127.0.0.1:70000", "is not HOST:PORT"),
        ("0.0.0.0:0", "must come back to loopback"),
        ("192.0.2.1:8000", "must come back to loopback"),
    ],
)
def test_listen_addresses_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_listen_address(text)


def test_request_heads() -> None:
    assert parse_request_head(b"GET /callback?code=a&state=b&x= HTTP/1.1\r\nHost: h\r\n\r\n") == (
        "GET",
        "/callback",
        {"code": ["a"], "state": ["b"], "x": [""]},
    )
    with pytest.raises(ValueError, match="request line"):
        parse_request_head(b"\x16\x03\x01 hello\r\n\r\n")


async def get(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def port_of(receiver: Loopback) -> int:
    return int(receiver.redirect_uri.rsplit(":", 1)[1].split("/")[0])


async def test_the_browser_is_answered_with_the_outcome_after_the_login() -> None:
    async with Loopback("127.0.0.1", 0) as receiver:
        port = port_of(receiver)
        favicon = await get(port, b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n")
        assert favicon.startswith(b"HTTP/1.1 404 ")
        browser = asyncio.create_task(get(port, f"GET /callback?code=c&state={STATE} HTTP/1.1\r\n\r\n".encode()))
        assert await receiver.code(STATE, timeout=10) == "c"
        assert not browser.done()  # the tab waits for the real outcome
        await receiver.answer(True, "You can close this tab")
        page = await browser
    assert page.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Security-Policy: default-src 'none'" in page
    assert b"Cache-Control: no-store" in page
    assert page.endswith(b"<p>You can close this tab</p></body></html>")


async def test_a_refused_callback_is_shown_in_the_browser_escaped() -> None:
    async with Loopback("127.0.0.1", 0) as receiver:
        query = "state=the-state&error=%3Cscript%3E"
        browser = asyncio.create_task(get(port_of(receiver), f"GET /callback?{query} HTTP/1.1\r\n\r\n".encode()))
        with pytest.raises(CredentialError, match="refused the login: <script>"):
            await receiver.code(STATE, timeout=10)
        page = await browser
    assert page.startswith(b"HTTP/1.1 400 ")
    assert b"&lt;script&gt;" in page
    assert b"<script>" not in page


async def test_an_oversized_request_is_refused_and_the_wait_goes_on() -> None:
    async with Loopback("127.0.0.1", 0) as receiver:
        port = port_of(receiver)
        huge = b"GET /callback?code=" + b"a" * (MAX_HEAD_BYTES + 1) + b" HTTP/1.1\r\n\r\n"
        assert (await get(port, huge)).startswith(b"HTTP/1.1 431 ")
        assert (await get(port, b"POST /callback HTTP/1.1\r\n\r\n")).startswith(b"HTTP/1.1 405 ")
        browser = asyncio.create_task(get(port, f"GET /callback?code=c&state={STATE} HTTP/1.1\r\n\r\n".encode()))
        assert await receiver.code(STATE, timeout=10) == "c"
    assert (await browser).startswith(b"HTTP/1.1 400 ")  # left unanswered: told the login did not finish


async def test_localhost_listens_on_one_ipv4_port_named_in_the_redirect() -> None:
    async with Loopback("localhost", 0) as receiver:
        assert receiver.redirect_uri.startswith("http://localhost:")
        browser = asyncio.create_task(
            get(port_of(receiver), f"GET /callback?code=c&state={STATE} HTTP/1.1\r\n\r\n".encode())
        )
        assert await receiver.code(STATE, timeout=10) == "c"
        await receiver.answer(True, "done")
        assert (await browser).startswith(b"HTTP/1.1 200 ")


async def test_no_callback_in_time_is_a_clear_error() -> None:
    async with Loopback("127.0.0.1", 0) as receiver:
        with pytest.raises(CredentialError, match=r"no answer from the browser within 0\.001 minutes"):
            await receiver.code(STATE, timeout=0.06)


async def test_a_busy_port_is_a_clear_error() -> None:
    async with Loopback("127.0.0.1", 0) as first:
        with pytest.raises(CredentialError, match=f"cannot listen on 127.0.0.1:{port_of(first)} for the browser"):
            async with Loopback("127.0.0.1", port_of(first)):
                pass
