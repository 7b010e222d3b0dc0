"""login.hosts: the Host header becomes a URL only in a strict host[:port] syntax."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.login.hosts import parse_host


@pytest.mark.parametrize(
    ("value", "host"),
    [
        (b"kube.example.com", "kube.example.com"),
        (b"Kube.Example.COM:8443", "kube.example.com:8443"),
        (b"localhost", "localhost"),
        (b"127.0.0.1:6443", "127.0.0.1:6443"),
        (b"[::1]:443", "[::1]:443"),
        (b"[2001:DB8:0:0::1]", "[2001:db8::1]"),
        (b"a-b.c-d", "a-b.c-d"),
        (b"h:0443", "h:443"),
    ],
)
def test_a_host_and_port_is_accepted_in_a_canonical_form(value: bytes, host: str) -> None:
    assert parse_host(value) == host


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"evil.example/path",
        b"evil.example?x",
        b"evil.example#x",
        b"user@evil.example",
        b"user:pass@evil.example",
        b"evil.example:",
        b"evil.example:0",
        b"evil.example:65536",
        b"evil.example:443:443",
        b"evil.example:-1",
        b"evil example",
        b" evil.example",
        b"evil.example\r\nSet-Cookie: a=b",
        b"evil.example%2F",
        b"evil\\example",
        b"-evil.example",
        b"evil-.example",
        b"evil..example",
        b"kube.example.com.",  # valid DNS, but not a name a kubeconfig should carry
        b"_evil.example",
        b"[::1",
        b"::1",
        b"[::g]",
        b"[::1]x",
        b"\xc3\xa9vil.example",
        b"a" * 64 + b".example",
        b".".join([b"a" * 60] * 5),
    ],
)
def test_anything_else_is_refused(value: bytes | None) -> None:
    assert parse_host(value) is None
