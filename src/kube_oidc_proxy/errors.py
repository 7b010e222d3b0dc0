"""Errors that end a request, split by who is at fault, each carrying the HTTP status it maps to.

Expected authentication outcomes are values (see ``authn.model``); these exceptions are for protocol
violations, upstream failures and configuration problems. Library exceptions are mapped to these at the
boundary where they happen, so the rest of the code only ever sees this vocabulary.
"""

from __future__ import annotations


class ProxyError(Exception):
    """A failure that is answered with a Kubernetes Status of ``code``.

    ``message`` is shown to the client; ``detail`` (optional) goes only to the log.
    """

    code = 500

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail or message


class ClientProtocolError(ProxyError):
    """The client sent something that is not acceptable HTTP/1.1: 400, connection closed."""

    code = 400


class HeadersTooLarge(ClientProtocolError):
    code = 431


class MethodNotAllowed(ClientProtocolError):
    code = 405


class NotImplementedCoding(ClientProtocolError):
    """A transfer coding other than chunked (Go's server answers 501 too)."""

    code = 501


class HTTPVersionNotSupported(ClientProtocolError):
    code = 505


class Unauthorized(ProxyError):
    code = 401


class Forbidden(ProxyError):
    code = 403


class UpstreamError(ProxyError):
    """kube-apiserver could not be reached or broke the exchange: 502."""

    code = 502


class UnaskedSwitch(UpstreamError):
    """kube-apiserver answered 101 but not with the protocol the request asked for: nothing is relayed."""

    def __init__(self, detail: str) -> None:
        super().__init__("kube-apiserver switched to a protocol that was not asked for", f"refused its 101: {detail}")


class UpstreamUnavailable(UpstreamError):
    """kube-apiserver refused the connection: 503."""

    code = 503


class UpstreamTimeout(UpstreamError):
    code = 504


class ConfigError(Exception):
    """Invalid settings; ``cli`` prints it as one line and exits 2."""


class StartupError(Exception):
    """A runtime failure while starting (unreadable file, bad certificate, port in use): exit 1."""


def describe(exc: BaseException) -> str:
    """``Type: message`` for logs and health checks; the type alone when there is no message (a bare
    ``TimeoutError()`` says nothing by itself)."""
    message = str(exc)
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
