r"""Access lines: the SIEM text format of the Tremolo kube-oidc-proxy (the default), or JSON objects.

Text (``--log-format text``), written as soon as the request is authenticated, byte for byte the Go
proxy's lines for ordinary values::

    [2021-11-25T01:05:17+0000] AuSuccess src:[10.42.0.5 / 10.4.1.3] URI:/api/v1/x inbound:[a / g|system:authenticated /]
    [2021-11-25T01:05:24+0000] AuFail src:[10.42.0.5 / 10.42.1.3] URI:/api/v1/nodes

``src`` is the TCP peer, then the X-Forwarded-For chain without the peer itself. ``inbound`` is
user / groups joined by ``|`` / extras, each as `` key=v1|v2``; with no extras the section ends in ``/]``
exactly as in the seed's example (the Go binary printed ``/ ]``). An ``outbound`` section
(user / groups / uid / extras) is added when ``--as`` impersonation is used. The grammar::

    line     = "[" time "] " ("AuSuccess" | "AuFail") " src:[" peer " / " chain "] URI:" uri
               [" inbound:[" name " / " list " /" extras "]" [" outbound:[" name " / " list " / " name " /" extras "]"]]
    chain    = "" | address *(", " address)
    list     = "" | item *("|" item)                 groups, and the values of one extra
    extras   = *(" " key "=" list)

Every field is escaped so that a line always parses back into the values it was written from, and no
value can end its field, start another section or another line:

- everywhere: ``\\`` for a backslash (so escapes are reversible); ``\xNN`` for C0 controls, DEL, ``[`` and
  ``]``; ``\uNNNN`` for C1 controls (U+0080-U+009F, NEL among them), U+2028, U+2029 and lone surrogates.
  A line therefore holds nothing any line splitter breaks on, and ``[``/``]`` only delimit sections.
- URI and forwarded addresses are bytes: read as UTF-8, a byte that is not part of valid UTF-8 is
  ``\xNN`` (NN 80-ff). No character is ever written that way, so the two cannot be confused.
- peer, forwarded addresses and URI: a space is ``\x20`` (it ends the URI); addresses also escape ``,``.
- names (user, uid) and list items (groups): ``|`` is ``\x7c``, and a ``/`` after a space is ``\x2f``, so
  `` /`` only ever separates sections; other spaces stay (Active Directory group names have them).
- extras: a space is ``\x20`` in keys and values (it separates extras), ``|`` is ``\x7c``, and ``=`` is
  ``\x3d`` in keys (values keep it: ``credential-id=JTI=...``).
- an empty list item is ``\-``, so an empty list and a list of one empty string differ.

Ordinary values (IP addresses, percent-encoded URIs, user and group names without those characters) are
written unchanged. Lines with such characters are parsed by ``tests/support/siem.py``.

With ``--log-format json`` the same facts, and what only the end of a request knows (status, duration), are
written as one JSON object per request when it is answered (an exec or port-forward: when the tunnel
opens; a watch: when it ends)::

    {"time":"2026-11-29T08:50:01.123456Z","result":"AuSuccess","sourceIP":"10.42.0.5",
     "forwardedFor":["10.4.1.3"],"method":"GET","uri":"/api/v1/x","status":200,"durationSeconds":0.0021,"protocol":"HTTP/2",
     "user":{"username":"a","uid":"","groups":["g","system:authenticated"],"extra":{}},"auditID":"..."}

``result`` is the authentication's outcome; ``protocol`` is ``HTTP/1.1`` or ``HTTP/2``; ``outbound`` is
present when ``--as`` was used, ``reason`` when the request was refused, ``auditID`` when known (ours when
auditing, else kube-apiserver's ``Audit-Id``).
JSON escapes quotes and C0 controls; DEL, C1 controls and U+2028/2029 (which JavaScript-based readers
split on) are written as ``\uNNNN`` too, so an object is always one line. ``method``, ``uri`` and
``forwardedFor`` are bytes read as UTF-8 with the text format's two byte escapes: a byte that is not
UTF-8 is the four characters ``\xNN`` and a backslash is two, so no request can make the JSON invalid
UTF-8 and no value is ambiguous. A lone surrogate in a text field (a token's claim can hold one written
as ``\ud800``) becomes U+FFFD, as kube-apiserver's Go JSON decoder reads it: strict JSON readers refuse
lone surrogates, and one crafted claim must not make a line unreadable.

Lines go to a bounded queue that a writer thread drains (``linequeue.py``): a slow log pipe never blocks
the event loop, and a stalled one costs lines, counted and reported in the log, not memory.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.observe.linequeue import Dropped, LineQueue, TextStream
from kube_oidc_proxy.rfc3339 import timestamp

# A queued text line, or a JSON record before it is serialized, is ~350 bytes (tracemalloc, a typical
# request), so the queue holds at most ~35 MB: about 10 s of one worker's full rate. More would only
# delay the loss while costing a memory-limited pod its headroom.
ACCESS_LOG_QUEUE_LIMIT: Final = 100_000
SIEM_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%z"


def _escape_tables() -> tuple[dict[str, str], dict[str, str]]:
    """What each escaped character becomes: in text fields, and in fields read from bytes,
    where a lone surrogate U+DC80-U+DCFF is a byte that was not UTF-8 (``surrogateescape``)."""
    text = {chr(code): f"\\x{code:02x}" for code in range(0x80)}
    text |= {chr(code): f"\\u{code:04x}" for code in [*range(0x80, 0xA0), 0x2028, 0x2029, *range(0xD800, 0xE000)]}
    text["\\"] = "\\\\"
    from_bytes = dict(text)
    for byte in range(0x80, 0x100):
        from_bytes[chr(0xDC00 + byte)] = f"\\x{byte:02x}"
    return text, from_bytes


_TEXT_ESCAPES, _BYTE_ESCAPES = _escape_tables()
# Escaped in every field: C0, DEL, C1, U+2028/2029, lone surrogates, the backslash and the section brackets;
# each field's pattern adds its own delimiters.
_UNSAFE: Final = r"\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\\\[\]"
_NAME: Final = re.compile(f"[{_UNSAFE}|]")
_EXTRA_KEY: Final = re.compile(f"[{_UNSAFE}| =]")
_EXTRA_VALUE: Final = re.compile(f"[{_UNSAFE}| ]")
_ADDRESS: Final = re.compile(f"[{_UNSAFE} ,]")
_URI: Final = re.compile(f"[{_UNSAFE} ]")
# JSON: bytes as text (see the docstring), and what orjson leaves raw but some readers split lines on.
_BYTE_TEXT: Final = re.compile(r"[\\\udc80-\udcff]")
_JSON_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029]")
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
EMPTY_ITEM: Final = "\\-"


def _text(match: re.Match[str]) -> str:
    return _TEXT_ESCAPES[match[0]]


def _bytes(match: re.Match[str]) -> str:
    return _BYTE_ESCAPES[match[0]]


def _json_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match[0]):04x}"


def _name(value: str) -> str:
    # " /" separates sections; a plain str.replace is twice as fast as an alternative in the regex
    return _NAME.sub(_text, value).replace(" /", " \\x2f")


def _names(values: Iterable[str]) -> str:
    return "|".join([_name(v) if v else EMPTY_ITEM for v in values])


def _extra_values(values: Iterable[str]) -> str:
    return "|".join([_EXTRA_VALUE.sub(_text, v) if v else EMPTY_ITEM for v in values])


def _extras(extra: Mapping[str, Iterable[str]]) -> str:
    return "".join([f" {_EXTRA_KEY.sub(_text, k)}={_extra_values(vs)}" for k, vs in extra.items()])


def byte_text(raw: bytes) -> str:
    """Bytes from the request as text: UTF-8, with bytes that are not UTF-8 kept as lone surrogates
    (``surrogateescape``: nothing lost, nothing confused with a character); the writers escape them."""
    return raw.decode("utf-8", "surrogateescape")


def forwarded_entries(xff_values: Iterable[bytes], peer_ip: str) -> list[str]:
    """X-Forwarded-For entries, in order, without the peer's own address (the Go proxy's rule)."""
    entries = []
    for value in xff_values:
        for item in byte_text(value).split(","):
            item = item.strip()
            if item and item != peer_ip:
                entries.append(item)
    return entries


def forwarded_chain(xff_values: Iterable[bytes], peer_ip: str) -> str:
    """The chain as the text line writes it."""
    return ", ".join([_ADDRESS.sub(_bytes, e) for e in forwarded_entries(xff_values, peer_ip)])


def _source(peer_ip: str, xff: Sequence[bytes]) -> str:
    chain = forwarded_chain(xff, peer_ip) if xff else ""
    return f"src:[{_ADDRESS.sub(_text, peer_ip)} / {chain}] URI:"


def _uri(uri: bytes) -> str:
    return _URI.sub(_bytes, byte_text(uri))


def _with_authenticated(user: UserInfo) -> list[str]:
    groups = list(user.groups)
    if SYSTEM_AUTHENTICATED not in groups:
        groups.append(SYSTEM_AUTHENTICATED)
    return groups


def _inbound(user: UserInfo) -> str:
    return f" inbound:[{_name(user.username)} / {_names(_with_authenticated(user))} /{_extras(user.extra)}]"


def _outbound(user: UserInfo) -> str:
    return f" outbound:[{_name(user.username)} / {_names(user.groups)} / {_name(user.uid)} /{_extras(user.extra)}]"


def success_line(
    stamp: str, peer_ip: str, xff: Sequence[bytes], uri: bytes, user: UserInfo, *, outbound: UserInfo | None = None
) -> str:
    """The AuSuccess line (``stamp``: ``siem_time``), escaped as the module docstring says."""
    line = f"[{stamp}] AuSuccess {_source(peer_ip, xff)}{_uri(uri)}{_inbound(user)}"
    return line if outbound is None else line + _outbound(outbound)


def failure_line(stamp: str, peer_ip: str, xff: Sequence[bytes], uri: bytes) -> str:
    return f"[{stamp}] AuFail {_source(peer_ip, xff)}{_uri(uri)}"


def _json_bytes(text: str) -> str:
    if text.isascii() and "\\" not in text:  # isascii() is O(1): most URIs need no regex at all
        return text
    return _BYTE_TEXT.sub(_bytes, text)


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def json_line(obj: dict[str, Any]) -> str:
    """One JSON object on one line, valid UTF-8 for every reader, whatever its strings hold."""
    try:
        line = orjson.dumps(obj).decode()
    except orjson.JSONEncodeError:  # a lone surrogate, from a token's claims: U+FFFD, as Go decodes it
        line = orjson.dumps(_without_surrogates(obj)).decode()
    if line.isascii() and "\x7f" not in line:
        return line
    return _JSON_UNSAFE.sub(_json_char, line)


@dataclass(slots=True)
class AccessRecord:
    """One answered request, for the JSON format."""

    received: float  # wall-clock time the request head arrived
    peer_ip: str
    admitted: bool = False  # AuSuccess; a caller refused for --as is AuFail, with its user
    method: bytes = b"-"
    uri: bytes = b"-"
    status: int = 0
    duration: float = 0.0
    xff: list[bytes] = field(default_factory=list)
    user: UserInfo | None = None
    outbound: UserInfo | None = None
    audit_id: str = ""
    reason: str = ""
    protocol: str = ""  # "HTTP/1.1" or "HTTP/2"; empty for a connection refused before any request

    def to_json(self) -> str:
        obj: dict[str, Any] = {
            "time": timestamp(self.received),
            "result": "AuSuccess" if self.admitted else "AuFail",
            "sourceIP": self.peer_ip,
            "forwardedFor": [_json_bytes(e) for e in forwarded_entries(self.xff, self.peer_ip)],
            "method": _json_bytes(byte_text(self.method)),
            "uri": _json_bytes(byte_text(self.uri)),
            "status": self.status,
            "durationSeconds": round(self.duration, 6),
        }
        if self.protocol:
            obj["protocol"] = self.protocol
        if self.user is not None:
            obj["user"] = _user_object(self.user)
        if self.outbound is not None:
            obj["outbound"] = _user_object(self.outbound)
        if self.reason:
            obj["reason"] = self.reason
        if self.audit_id:
            obj["auditID"] = self.audit_id
        return json_line(obj)


def _user_object(user: UserInfo) -> dict[str, Any]:
    """As kube-apiserver sees the user: system:authenticated is added to every authenticated identity."""
    return {
        "username": user.username,
        "uid": user.uid,
        "groups": _with_authenticated(user),
        "extra": {k: list(v) for k, v in user.extra.items()},
    }


def siem_time(unix: float) -> str:
    return time.strftime(SIEM_TIME_FORMAT, time.localtime(int(unix)))


def _lines(count: int) -> str:
    return f"{count} access log line{'' if count == 1 else 's'} dropped"


def _dropped_text(gap: Dropped) -> str:
    return f"[{siem_time(gap.at)}] {_lines(gap.count)}"


def _dropped_json(gap: Dropped) -> str:
    return json_line({"time": timestamp(gap.at), "dropped": gap.count})


def _render(item: object) -> str:
    return item.to_json() if isinstance(item, AccessRecord) else str(item)


class AccessLog:
    """``success``/``failure`` write the text lines (as soon as the request is authenticated, as the Go proxy
    did); ``answered`` writes the JSON object. Each is a no-op in the other format. Called from the event
    loop; the lines are written by ``queue``'s thread."""

    def __init__(
        self,
        stream: TextStream | None = None,
        *,
        json: bool = False,
        limit: int = ACCESS_LOG_QUEUE_LIMIT,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self.json = json
        self.queue = LineQueue(
            stream if stream is not None else sys.stdout,
            render=_render,
            dropped_line=_dropped_json if json else _dropped_text,
            limit=limit,
            name="access-log",
            on_dropped=on_dropped,
        )
        self._stamp_second = -1
        self._stamp = ""

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = siem_time(now)
        return self._stamp

    def success(
        self, peer_ip: str, xff: Sequence[bytes], uri: bytes, user: UserInfo, outbound: UserInfo | None = None
    ) -> None:
        if not self.json:
            self.queue.put(success_line(self._timestamp(), peer_ip, xff, uri, user, outbound=outbound))

    def failure(self, peer_ip: str, xff: Sequence[bytes], uri: bytes) -> None:
        if not self.json:
            self.queue.put(failure_line(self._timestamp(), peer_ip, xff, uri))

    def answered(self, record: AccessRecord) -> None:
        if self.json:
            self.queue.put(record)  # serialized by the writer thread, off the event loop

    def refused(self, peer_ip: str, status: int, reason: str, uri: bytes = b"-") -> None:
        """A request refused before the proxy read it as one (bad framing, a header timeout, over the
        connection limit), often without a method or URI: an AuFail line, or a JSON object with its reason."""
        self.failure(peer_ip, [], uri)
        self.answered(AccessRecord(time.time(), peer_ip, uri=uri, status=status, reason=reason))

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued, then stop the writer."""
        self.queue.close(timeout)
