"""Go's ``net/url.Parse``, as far as kube-apiserver's issuer URL validation needs it: the same accepted
URLs and the same ``parse "<url>": <reason>`` errors."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

from kube_oidc_proxy.authn.fielderror import go_quote


class GoURLError(ValueError):
    """``url.Parse`` failed; the message is Go's ``parse "<url>": <reason>``."""


@dataclass(frozen=True, slots=True)
class GoURL:
    scheme: str  # lowercased, as Go does
    has_user: bool  # any "@" in the authority, even "https://@host"
    raw_query: str
    fragment: str


_HOST, _ZONE, _PATH, _USER, _FRAGMENT = range(5)
_HOST_SAFE: Final = frozenset(b"!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_SAFE: Final = frozenset("-._:~!$&'()*+,;=%@")
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")


def go_parse_url(raw: str) -> GoURL:
    """Go's ``url.Parse`` (net/url, with strict host colons for http and https: go.dev/issue/75223):
    the parts validateURL looks at, or GoURLError with Go's message. An invalid IP literal's reason is the
    proxy's own wording after ``invalid host: ``."""
    data = raw.encode("utf-8", "surrogateescape")
    before, _, fragment = data.partition(b"#")
    try:
        url = _parse(before)
    except GoURLError as exc:
        raise GoURLError(f"parse {go_quote(before)}: {exc}") from None
    if fragment:
        try:
            _unescape(fragment, _FRAGMENT)
        except GoURLError as exc:
            raise GoURLError(f"parse {go_quote(data)}: {exc}") from None
    return GoURL(url.scheme, url.has_user, url.raw_query, fragment.decode("utf-8", "surrogateescape"))


def _parse(raw: bytes) -> GoURL:
    if any(byte < 0x20 or byte == 0x7F for byte in raw):
        raise GoURLError("net/url: invalid control character in URL")
    if raw == b"*":
        return GoURL("", False, "", "")
    scheme, rest = _scheme(raw)
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        rest, query = rest[:-1], b""
    else:
        rest, _, query = rest.partition(b"?")
    raw_query = query.decode("utf-8", "surrogateescape")
    if not rest.startswith(b"/"):
        if scheme:
            return GoURL(scheme, False, raw_query, "")  # opaque: "https:host" passes
        if b":" in rest.partition(b"/")[0]:
            raise GoURLError("first path segment in URL cannot contain colon")
    has_user = False
    if (scheme or not rest.startswith(b"///")) and rest.startswith(b"//"):
        authority, slash, path = rest[2:].partition(b"/")
        rest = slash + path
        has_user = _parse_authority(scheme, authority)
    _unescape(rest, _PATH)
    return GoURL(scheme, has_user, raw_query, "")


def _scheme(raw: bytes) -> tuple[str, bytes]:
    for i, byte in enumerate(raw):
        char = chr(byte)
        if char.isascii() and char.isalpha():
            continue
        if char.isdigit() or char in "+-.":
            if i == 0:
                return "", raw
            continue
        if char == ":":
            if i == 0:
                raise GoURLError("missing protocol scheme")
            return raw[:i].decode("ascii").lower(), raw[i + 1 :]
        return "", raw
    return "", raw


def _parse_authority(scheme: str, authority: bytes) -> bool:
    """True if the authority has user information; raises for an invalid host or user information."""
    at = authority.rfind(b"@")
    _parse_host(scheme, authority[at + 1 :])
    if at < 0:
        return False
    userinfo = authority[:at]
    text = userinfo.decode("utf-8", "replace")
    if not all((char.isascii() and char.isalnum()) or char in _USERINFO_SAFE for char in text):
        raise GoURLError("net/url: invalid userinfo")
    for part in userinfo.split(b":", 1):
        _unescape(part, _USER)
    return True


def _parse_host(scheme: str, host: bytes) -> None:
    open_bracket = host.rfind(b"[")
    if open_bracket > 0:
        raise GoURLError("invalid IP-literal")
    if open_bracket == 0:
        close_bracket = host.rfind(b"]")
        if close_bracket < 0:
            raise GoURLError("missing ']' in host")
        colon_port = host[close_bracket + 1 :]
        if not _valid_optional_port(colon_port):
            raise GoURLError(f"invalid port {go_quote(colon_port)} after host")
        _unescape(colon_port, _HOST)
        hostname = host[1:close_bracket]
        zone = hostname.find(b"%25")
        if zone >= 0:
            literal = _unescape(hostname[:zone], _HOST) + _unescape(hostname[zone:], _ZONE)
        else:
            literal = _unescape(hostname, _HOST)
        _check_ipv6_literal(literal)
        return
    colon = host.find(b":")
    if colon >= 0:
        if scheme not in ("http", "https"):
            colon = host.rfind(b":")
        if not _valid_optional_port(host[colon:]):
            raise GoURLError(f"invalid port {go_quote(host[colon:])} after host")
    _unescape(host, _HOST)


def _check_ipv6_literal(literal: bytes) -> None:
    text = literal.decode("utf-8", "replace")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise GoURLError(f"invalid host: ParseAddr({go_quote(literal)}): not an IP address") from None
    if address.version == 4:
        raise GoURLError("invalid IP-literal")


def _valid_optional_port(port: bytes) -> bool:
    return not port or (port[:1] == b":" and all(0x30 <= byte <= 0x39 for byte in port[1:]))


def _unescape(text: bytes, mode: int) -> bytes:
    """Go's ``unescape``: checks every %-escape (and a host's characters) and decodes them."""
    out = bytearray()
    i = 0
    while i < len(text):
        byte = text[i]
        if byte == 0x25:  # %
            escape = text[i : i + 3]
            if len(escape) < 3 or escape[1] not in _HEX or escape[2] not in _HEX:
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            value = int(escape[1:], 16)
            if mode == _HOST and value < 0x80 and escape != b"%25":
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            if mode == _ZONE and escape != b"%25" and value != 0x20 and not _host_safe(value):
                raise GoURLError(f"invalid URL escape {go_quote(escape)}")
            out.append(value)
            i += 3
            continue
        if mode in (_HOST, _ZONE) and byte < 0x80 and not _host_safe(byte):
            raise GoURLError(f"invalid character {go_quote(bytes([byte]))} in host name")
        out.append(byte)
        i += 1
    return bytes(out)


def _host_safe(byte: int) -> bool:
    return (chr(byte).isascii() and chr(byte).isalnum()) or byte in _HOST_SAFE
