"""A browser for the login pages, as far as the proxy can tell: it keeps the cookies it is given (and drops
one set again with ``Max-Age=0``), sends them back, and follows the proxy's redirect to the test issuer's
``/auth`` (a real HTTPS request), which signs the user in at once and redirects back to ``/login/callback``.
Over HTTP/1.1 (one connection per request) or HTTP/2 (one connection, a stream per request)."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.support.client import Client, Response
from tests.support.h2client import H2Client
from tests.support.issuer import TestIssuer

COOKIE = "__Host-kop-login-"  # each login's cookie: this and a hash of its state


@dataclass
class Browser:
    port: int
    ca_file: str
    issuer: TestIssuer
    protocol: str = "HTTP/1.1"  # or "HTTP/2"
    cookies: dict[str, str] = field(default_factory=dict)
    set_cookies: list[str] = field(default_factory=list)  # every Set-Cookie value received
    _h2: H2Client | None = None

    async def close(self) -> None:
        if self._h2 is not None:
            await self._h2.close()

    async def get(self, target: str, headers: list[tuple[str, str]] | None = None, method: str = "GET") -> Response:
        sent = list(headers or [])
        if self.cookies:
            sent.append(("cookie", "; ".join(f"{k}={v}" for k, v in self.cookies.items())))
        if self.protocol == "HTTP/2":
            if self._h2 is None:
                self._h2 = await H2Client.connect(self.port, self.ca_file)
            response = await self._h2.request(method, target, headers=sent)
        else:
            client = await Client.connect(self.port, self.ca_file)
            try:
                response = await client.request(method, target, headers=sent)
            finally:
                await client.close()
        for name, value in response.headers:
            if name == "set-cookie":
                self.set_cookies.append(value)
                pair, _, attributes = value.partition(";")
                key, _, val = pair.partition("=")
                if "Max-Age=0" in attributes.split("; "):
                    self.cookies.pop(key.strip(), None)
                else:
                    self.cookies[key.strip()] = val.strip()
        return response

    async def start(self, target: str = "/login") -> tuple[Response, str]:
        """``GET /login``; the redirect and the callback target the issuer sends the browser back to."""
        response = await self.get(target)
        assert response.status == 302, response.body
        location = response.header("location")
        assert location is not None
        return response, await follow(self.issuer, location)

    async def sign_in(self, target: str = "/login") -> Response:
        """The whole flow: /login, the issuer's /auth, the callback."""
        _, callback = await self.start(target)
        return await self.get(callback)


async def follow(issuer: TestIssuer, location: str) -> str:
    """GET the issuer's authorization URL (no redirect followed): the path and query of where it sends the
    browser back to, which must be the proxy's callback."""
    assert location.startswith(f"{issuer.url}/auth?"), location

    def fetch() -> str:
        url = urllib.parse.urlsplit(location)
        context = ssl.create_default_context(cafile=issuer.ca_file)
        conn = http.client.HTTPSConnection(url.hostname or "", url.port, context=context, timeout=10)
        try:
            conn.request("GET", f"{url.path}?{url.query}")
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 302, answer.status
            return answer.headers["Location"]
        finally:
            conn.close()

    back = urllib.parse.urlsplit(await asyncio.to_thread(fetch))
    assert back.path == "/login/callback", back
    return f"{back.path}?{back.query}"


def query_of(location: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def pre_blocks(page: bytes) -> list[str]:
    """The text of each ``<pre>`` on a page, unescaped."""
    import html  # noqa: PLC0415

    text = page.decode()
    blocks = []
    while "<pre" in text:
        text = text[text.index("<pre") :]
        text = text[text.index(">") + 1 :]
        end = text.index("</pre>")
        blocks.append(html.unescape(text[:end]))
        text = text[end:]
    return blocks


def kubeconfig_on(page: bytes) -> dict[str, Any]:
    """The first kubeconfig shown on a signed-in page, parsed."""
    document = yaml.safe_load(pre_blocks(page)[0])
    assert isinstance(document, dict)
    return document
