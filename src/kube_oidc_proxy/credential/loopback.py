"""The loopback redirect receiver (RFC 8252 §7.3): a one-shot HTTP server on 127.0.0.1 that the browser
reaches at ``/callback`` with the authorization code, once the user has signed in.

It takes the first ``GET /callback`` and nothing after it; other paths (a browser's favicon request) get a
404 and do not end the wait. The callback's ``state`` must be this login's (``judge``): a page on the web
can make the browser open a loopback URL, but it cannot know the state. The browser's tab is answered only
once the login has finished (``answer``), so it shows the real outcome. Requests are bounded in size and
time, and no page carries the code or the state back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
from types import TracebackType
from typing import Final
from urllib.parse import parse_qs, urlsplit

from kube_oidc_proxy.credential.errors import CredentialError, UsageError

CALLBACK_PATH: Final = "/callback"
MAX_HEAD_BYTES: Final = 16 * 1024  # a code and a state are far shorter; browsers add cookies and headers
READ_TIMEOUT_SECONDS: Final = 10.0
MAX_ERROR_TEXT: Final = 300
LOOPBACK_HOSTS: Final = ("127.0.0.1", "::1", "localhost")

Query = dict[str, list[str]]


def parse_listen_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:0``, ``localhost:8000`` or ``[::1]:0``: a loopback host and a port (0: any free one)."""
    host, sep, port_text = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen-address {text!r} is not HOST:PORT")
    if host not in LOOPBACK_HOSTS:
        raise UsageError(
            f"--listen-address {text!r}: the redirect must come back to loopback: 127.0.0.1, [::1] or localhost"
        )
    return host, int(port_text)


def redirect_uri(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}{CALLBACK_PATH}"


def judge(query: Query, expected_state: str) -> str:
    """The authorization code of a callback; ``CredentialError`` when it is not this login's, or a refusal."""
    for name in ("code", "state", "error", "error_description"):
        if len(query.get(name, ())) > 1:
            raise CredentialError(f"the browser came back with {name} twice: refused; run the command again")
    state = _one(query, "state")
    if not state:
        raise CredentialError("the browser came back without a state: refused; run the command again")
    if not hmac.compare_digest(state.encode(), expected_state.encode()):
        raise CredentialError(
            "the browser came back with a state that does not belong to this login (a stale or forged redirect): "
            "refused; run the command again"
        )
    error = _one(query, "error")
    if error:
        description = _one(query, "error_description")
        detail = f"{_printable(error)}" + (f" ({_printable(description)})" if description else "")
        raise CredentialError(f"the identity provider refused the login: {detail}")
    code = _one(query, "code")
    if not code:
        raise CredentialError("the browser came back without an authorization code: refused; run the command again")
    return code


def _one(query: Query, name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""


def _printable(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return cleaned[:MAX_ERROR_TEXT] + ("…" if len(cleaned) > MAX_ERROR_TEXT else "")


def response(status: int, title: str, message: str) -> bytes:
    """A small, self-contained page: no script, no style, nothing fetched (CSP ``default-src 'none'``)."""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    ).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
              431: "Request Header Fields Too Large"}.get(status, "Error")  # fmt: skip
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Content-Security-Policy: default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
        "Referrer-Policy: no-referrer\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode() + body


def parse_request_head(head: bytes) -> tuple[str, str, Query]:
    """Method, path and query of a request head (only the request line matters here)."""
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("not an HTTP request line")
    target = urlsplit(parts[1])
    return parts[0], target.path, parse_qs(target.query, keep_blank_values=True)


class Loopback:
    """``async with Loopback(host, port) as receiver``: listening from entry, closed on exit."""

    def __init__(self, host: str, port: int) -> None:
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._arrived: asyncio.Future[tuple[Query, asyncio.StreamWriter]] | None = None
        self._pending: asyncio.StreamWriter | None = None  # the browser waiting for the outcome
        self.redirect_uri = ""

    async def __aenter__(self) -> Loopback:
        self._arrived = asyncio.get_running_loop().create_future()
        # "localhost" would bind one socket per address, each on its own free port: bind IPv4 only and keep
        # the name in the redirect URI (some issuers register http://localhost:* only)
        bind = "127.0.0.1" if self._host == "localhost" else self._host
        try:
            self._server = await asyncio.start_server(self._serve, bind, self._port, limit=MAX_HEAD_BYTES)
        except OSError as exc:
            raise CredentialError(
                f"cannot listen on {self._host}:{self._port} for the browser: {exc.strerror}"
            ) from None
        port = self._server.sockets[0].getsockname()[1]
        self.redirect_uri = redirect_uri(self._host, port)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pending is not None:
            await self.answer(False, "the login did not finish; see the terminal")
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def code(self, state: str, timeout: float) -> str:
        """Wait for the browser; the authorization code of this login, or ``CredentialError``."""
        assert self._arrived is not None
        try:
            query, writer = await asyncio.wait_for(asyncio.shield(self._arrived), timeout)
        except TimeoutError:
            raise CredentialError(
                f"no answer from the browser within {timeout / 60:g} minutes: the login was abandoned; "
                "run the command again"
            ) from None
        if self._server is not None:
            self._server.close()  # one callback per login: nothing more is accepted
        self._pending = writer
        try:
            return judge(query, state)
        except CredentialError as exc:
            await self.answer(False, str(exc))
            raise

    async def answer(self, ok: bool, message: str) -> None:
        """Tell the browser's tab how the login ended."""
        writer, self._pending = self._pending, None
        if writer is None:
            return
        if ok:
            page = response(200, "Logged in", message)
        else:
            page = response(400, "Login failed", f"{message}. Return to the terminal.")
        await _send(writer, page)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_SECONDS)
            method, path, query = parse_request_head(head)
        except asyncio.LimitOverrunError:
            await _send(writer, response(431, "Request too large", "This request is larger than a login callback."))
            return
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError, ValueError):
            await _send(writer, response(400, "Bad request", "This is not a request the login expects."))
            return
        if path != CALLBACK_PATH:
            await _send(writer, response(404, "Not found", "Only the login callback is served here."))
        elif method != "GET":
            await _send(writer, response(405, "Method not allowed", "The login callback is a GET."))
        elif self._arrived is None or self._arrived.done():
            await _send(writer, response(409, "Already answered", "This login has already received its callback."))
        else:
            self._arrived.set_result((query, writer))  # answered later, with the outcome


async def _send(writer: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        writer.write(data)
        await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
