"""An HTTP/2 header block read as a request head: the HTTP/1.1 rules, refusals with their Status codes."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.errors import ClientProtocolError, HeadersTooLarge, MethodNotAllowed
from kube_oidc_proxy.http1.headers import Headers
from kube_oidc_proxy.http1.request import DEFAULT_MAX_HEADERS
from kube_oidc_proxy.server.h2_request import UPGRADE_OVER_H2, request_head


def block(method: bytes = b"GET", path: bytes = b"/api", *extra: tuple[bytes, bytes]) -> Headers:
    fields: Headers = [(b":method", method), (b":scheme", b"https"), (b":authority", b"kube.example"), (b":path", path)]
    return fields + list(extra)


# (what, header block, ended, method, target, framing, content_length, expect_continue)
ACCEPTED = [
    ("a GET", block(), True, b"GET", b"/api", "none", None, False),
    ("a body of known length", block(b"POST", b"/x", (b"content-length", b"5")), False, b"POST", b"/x", "length", 5,
     False),
    ("a body of unknown length", block(b"POST", b"/x"), False, b"POST", b"/x", "chunked", None, False),
    ("an empty body announced", block(b"POST", b"/x", (b"content-length", b"0")), False, b"POST", b"/x", "none",
     None, False),
    ("Expect with a body", block(b"PUT", b"/x", (b"expect", b"100-Continue")), False, b"PUT", b"/x", "chunked",
     None, True),
    ("Expect without one", block(b"PUT", b"/x", (b"expect", b"100-continue")), True, b"PUT", b"/x", "none", None,
     False),
    ("OPTIONS *", block(b"OPTIONS", b"*"), True, b"OPTIONS", b"*", "none", None, False),
    ("a bad escape in the query only", block(b"GET", b"/api?a=%zz"), True, b"GET", b"/api?a=%zz", "none", None,
     False),
    ("logs, not an upgrade", block(b"GET", b"/api/v1/namespaces/d/pods/x/log"), True, b"GET",
     b"/api/v1/namespaces/d/pods/x/log", "none", None, False),
    ("exec of something that is not a pod", block(b"POST", b"/api/v1/namespaces/d/services/x/exec"), True, b"POST",
     b"/api/v1/namespaces/d/services/x/exec", "none", None, False),
    ("a tab inside a value", block(b"GET", b"/api", (b"x-a", b"a\tb")), True, b"GET", b"/api", "none", None, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "ended", "method", "target", "framing", "length", "expect"),
    [case[1:] for case in ACCEPTED],
    ids=[case[0] for case in ACCEPTED],
)
def test_accepted_heads(
    fields: Headers,
    ended: bool,
    method: bytes,
    target: bytes,
    framing: str,
    length: int | None,
    expect: bool,
) -> None:
    head = request_head(fields, ended=ended)
    assert (head.method, head.target, head.framing, head.content_length, head.expect_continue) == (
        method,
        target,
        framing,
        length,
        expect,
    )
    assert head.http_version == "2"
    assert head.keep_alive and not head.upgrade
    assert not any(name.startswith(b":") for name, _ in head.headers)
    assert head.head_size == sum(len(n) + len(v) + 4 for n, v in fields)


def test_host_is_filled_in_from_authority_as_go_does() -> None:
    head = request_head(block(b"GET", b"/api", (b"x-a", b"1")), ended=True)
    assert head.headers == [(b"x-a", b"1"), (b"host", b"kube.example")]
    agreeing = request_head(block(b"GET", b"/api", (b"host", b"kube.example")), ended=True)
    assert [v for n, v in agreeing.headers if n == b"host"] == [b"kube.example"]


def test_as_many_fields_as_http1_allows_are_accepted() -> None:
    fields = block(b"GET", b"/api", *[(b"x-h-%d" % i, b"v") for i in range(DEFAULT_MAX_HEADERS)])
    assert len(request_head(fields, ended=True).headers) == DEFAULT_MAX_HEADERS + 1  # and Host


EXEC = b"/api/v1/namespaces/default/pods/x/exec?command=ls"

# (what, header block, the status it is refused with, a part of the message)
REFUSED = [
    ("a name that is not a token", block(b"GET", b"/api", (b"a(b", b"1")), 400, "invalid header name"),
    ("a name with a quote", block(b"GET", b"/api", (b'a"b', b"1")), 400, "invalid header name"),
    ("a control byte in a value", block(b"GET", b"/api", (b"x-a", b"a\x01b")), 400, "control byte"),
    ("DEL in a value", block(b"GET", b"/api", (b"x-a", b"a\x7f")), 400, "control byte"),
    ("too many fields", block(b"GET", b"/api", *[(b"x-h-%d" % i, b"v") for i in range(DEFAULT_MAX_HEADERS + 1)]),
     431, "header fields"),
    ("Host disagrees with :authority", block(b"GET", b"/api", (b"host", b"evil.example")), 400, "Host"),
    ("two Hosts", block(b"GET", b"/api", (b"host", b"kube.example"), (b"host", b"kube.example")), 400, "Host"),
    ("CONNECT", [(b":method", b"CONNECT"), (b":authority", b"kube.example:443")], 405, "CONNECT"),
    ("an absolute-form target", block(b"GET", b"https://kube.example/api"), 400, "origin-form"),
    ("a bad escape in the path", block(b"GET", b"/api/%zz"), 400, "invalid URL escape"),
    ("a truncated escape", block(b"GET", b"/api/%4"), 400, "invalid URL escape"),
    ("exec", block(b"POST", EXEC), 400, "HTTP/1.1"),
    ("exec with GET (websocket clients)", block(b"GET", EXEC), 400, "HTTP/1.1"),
    ("attach", block(b"POST", b"/api/v1/namespaces/default/pods/x/attach?stdin=true"), 400, "HTTP/1.1"),
    ("port-forward", block(b"POST", b"/api/v1/namespaces/default/pods/x/portforward"), 400, "HTTP/1.1"),
    ("exec spelled with an escape", block(b"POST", b"/api/v1/namespaces/default/pods/x/%65xec"), 400, "HTTP/1.1"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "code", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_refused_heads(fields: Headers, code: int, message: str) -> None:
    with pytest.raises(ClientProtocolError) as refused:
        request_head(fields, ended=True)
    assert refused.value.code == code
    assert message in refused.value.message


def test_refusals_are_typed_by_their_status() -> None:
    with pytest.raises(HeadersTooLarge):
        request_head(block(b"GET", b"/", *[(b"x", b"v")] * (DEFAULT_MAX_HEADERS + 1)), ended=True)
    with pytest.raises(MethodNotAllowed):
        request_head([(b":method", b"CONNECT"), (b":authority", b"a:1")], ended=True)
    with pytest.raises(ClientProtocolError) as upgrade:
        request_head(block(b"POST", EXEC), ended=True)
    assert upgrade.value.message == UPGRADE_OVER_H2
