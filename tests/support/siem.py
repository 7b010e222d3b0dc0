"""A strict parser of the SIEM access lines, written from the grammar in ``observe/accesslog.py``'s docstring
(not from its code), as a SIEM's parser would be: it finds each section by its delimiters and refuses a
line in which a field holds a character the writer must have escaped.

    parse("[2026-11-29T08:50:01+0000] AuSuccess src:[10.0.0.1 / ] URI:/api inbound:[a / g /]")
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

# Characters a field never holds unescaped: C0, DEL, C1, the Unicode line and paragraph separators, lone
# surrogates, and the section brackets.
_NEVER_RAW: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\[\\]]")
_ESCAPE: Final = re.compile(r"(\\(?:\\|x[0-9a-f]{2}|u[0-9a-f]{4}))")
EMPTY_ITEM: Final = "\\-"
_LINE: Final = re.compile(
    r"\[(?P<time>[^\]]*)\] (?P<result>AuSuccess|AuFail) src:\[(?P<src>[^\]]*)\] URI:(?P<rest>.*)", re.S
)


class NotASiemLine(ValueError):
    pass


@dataclass(frozen=True)
class Identity:
    username: str
    groups: list[str]
    extra: dict[str, list[str]]
    uid: str | None = None  # the outbound section has one


@dataclass(frozen=True)
class SiemLine:
    time: str
    result: str
    peer: str
    forwarded: list[bytes]
    uri: bytes
    inbound: Identity | None = None
    outbound: Identity | None = None
    sections: list[str] = field(default_factory=list)


def _pieces(text: str, also_never_raw: str) -> list[str]:
    """``text`` split into raw runs (even places) and escapes (odd places); refuses what must be escaped."""
    pieces = _ESCAPE.split(text)
    for raw in pieces[::2]:
        bad = [c for c in raw if c in also_never_raw or c == "\\" or _NEVER_RAW.match(c)]
        if bad:
            raise NotASiemLine(f"unescaped {bad[0]!r} in {text!r}")
    return pieces


def unescape_text(text: str, also_never_raw: str = "") -> str:
    out = []
    for n, piece in enumerate(_pieces(text, also_never_raw)):
        if n % 2 == 0:
            out.append(piece)
        elif piece == "\\\\":
            out.append("\\")
        elif piece[1] == "x":
            code = int(piece[2:], 16)
            if code >= 0x80:
                raise NotASiemLine(f"a byte escape {piece!r} in a text field")
            out.append(chr(code))
        else:
            out.append(chr(int(piece[2:], 16)))
    return "".join(out)


def unescape_bytes(text: str, also_never_raw: str = "") -> bytes:
    """A field read from bytes (URI, forwarded addresses): ``\\xNN`` is the byte NN."""
    out = []
    for n, piece in enumerate(_pieces(text, also_never_raw)):
        if n % 2 == 0:
            out.append(piece.encode())
        elif piece == "\\\\":
            out.append(b"\\")
        elif piece[1] == "x":
            out.append(bytes([int(piece[2:], 16)]))
        else:
            char = chr(int(piece[2:], 16))
            if "\ud800" <= char <= "\udfff":
                raise NotASiemLine(f"a surrogate {piece!r} in a field read from bytes")
            out.append(char.encode())
    return b"".join(out)


def _list(text: str, also_never_raw: str) -> list[str]:
    if not text:
        return []
    return ["" if item == EMPTY_ITEM else unescape_text(item, also_never_raw) for item in text.split("|")]


def _cut(text: str, pos: int, separator: str) -> tuple[str, int]:
    """The field from ``pos`` to the next `` /`` (which only ever separates), and where ``separator`` ends."""
    end = text.find(" /", pos)
    if end < 0 or not text.startswith(separator, end):
        raise NotASiemLine(f"no {separator!r} after {text[pos:]!r}")
    return text[pos:end], end + len(separator)


def _identity(section: str, *, with_uid: bool) -> Identity:
    name, pos = _cut(section, 0, " / ")
    groups, pos = _cut(section, pos, " / " if with_uid else " /")
    uid = None
    if with_uid:
        uid_text, pos = _cut(section, pos, " /")
        uid = unescape_text(uid_text, "|")
    extras_text = section[pos:]
    extra: dict[str, list[str]] = {}
    if extras_text:
        if not extras_text.startswith(" "):
            raise NotASiemLine(f"extras must start with a space: {extras_text!r}")
        for item in extras_text[1:].split(" "):
            key, equals, values = item.partition("=")
            if not equals:
                raise NotASiemLine(f"an extra without '=': {item!r}")
            name_of_key = unescape_text(key, "|=")
            if name_of_key in extra:
                raise NotASiemLine(f"extra {name_of_key!r} twice")
            extra[name_of_key] = _list(values, "|")
    return Identity(unescape_text(name, "|"), _list(groups, "|"), extra, uid)


def _section(rest: str, label: str) -> tuple[str, str]:
    prefix = f" {label}:["
    if not rest.startswith(prefix):
        raise NotASiemLine(f"expected {prefix!r} at {rest!r}")
    end = rest.find("]", len(prefix))
    if end < 0:
        raise NotASiemLine(f"section {label} does not end")
    return rest[len(prefix) : end], rest[end + 1 :]


def parse(line: str) -> SiemLine:
    match = _LINE.fullmatch(line)
    if match is None:
        raise NotASiemLine(f"not a SIEM line: {line!r}")
    peer_text, slash, chain_text = match["src"].partition(" / ")
    if not slash:
        raise NotASiemLine(f"no ' / ' in src: {match['src']!r}")
    forwarded = [unescape_bytes(entry, " ,") for entry in chain_text.split(", ")] if chain_text else []
    rest = match["rest"]
    uri_text, _, rest = rest.partition(" ")
    rest = " " + rest if rest else ""
    inbound = outbound = None
    sections = ["src"]
    if match["result"] == "AuSuccess":
        inbound_text, rest = _section(rest, "inbound")
        inbound = _identity(inbound_text, with_uid=False)
        sections.append("inbound")
        if rest:
            outbound_text, rest = _section(rest, "outbound")
            outbound = _identity(outbound_text, with_uid=True)
            sections.append("outbound")
    if rest:
        raise NotASiemLine(f"unexpected text after the sections: {rest!r}")
    return SiemLine(
        time=match["time"],
        result=match["result"],
        peer=unescape_text(peer_text, " ,"),
        forwarded=forwarded,
        uri=unescape_bytes(uri_text, " "),
        inbound=inbound,
        outbound=outbound,
        sections=sections,
    )


_JSON_BYTE_ESCAPE: Final = re.compile(r"(\\(?:\\|x[89a-f][0-9a-f]))")


def bytes_from_json(text: str) -> bytes:
    """A byte field of a JSON access line (``uri``, ``method``, ``forwardedFor``) back to the bytes received:
    there ``\\xNN`` (NN 80-ff) is a byte that was not UTF-8 and ``\\\\`` a backslash; all else is UTF-8 text."""
    out = []
    for n, piece in enumerate(_JSON_BYTE_ESCAPE.split(text)):
        if n % 2 == 0:
            if "\\" in piece:
                raise NotASiemLine(f"a lone backslash in {text!r}")
            out.append(piece.encode())
        else:
            out.append(b"\\" if piece == "\\\\" else bytes([int(piece[2:], 16)]))
    return b"".join(out)
