"""SIEM access lines, in the exact format of the Tremolo kube-oidc-proxy (and the seed post):

    [2021-11-25T01:05:17+0000] AuSuccess src:[10.42.0.5 / 10.4.1.3] URI:/api/v1/x inbound:[a / g|system:authenticated /]
    [2021-11-25T01:05:24+0000] AuFail src:[10.42.0.5 / 10.42.1.3] URI:/api/v1/nodes

``src`` is the TCP peer, then the X-Forwarded-For chain without the peer itself. ``inbound`` is
user / groups joined by ``|`` / extras, each as `` key=v1|v2``; with no extras the section ends in ``/]``
exactly as in the seed's example (the Go binary printed ``/ ]``). An ``outbound`` section
(user / groups / uid / extras) is added when ``--as`` impersonation is used.

With ``--log-format json`` the same facts, and what only the end of a request knows (status, duration), are
written as one JSON object per request when it is answered (an exec or port-forward: when the tunnel
opens; a watch: when it ends)::

    {"time":"2026-11-29T08:50:01.123456Z","result":"AuSuccess","sourceIP":"10.42.0.5",
     "forwardedFor":["10.4.1.3"],"method":"GET","uri":"/api/v1/x","status":200,"durationSeconds":0.0021,
     "user":{"username":"a","uid":"","groups":["g","system:authenticated"],"extra":{}},"auditID":"..."}

``result`` is the authentication's outcome; ``outbound`` is present when ``--as`` was used, ``reason`` when
the request was refused, ``auditID`` when known (ours when auditing, else kube-apiserver's ``Audit-Id``).

Lines go to a queue that a writer thread drains to stdout every 50 ms, so a slow log pipe never blocks the
event loop.
Control characters are escaped (a backslash, x and two hex digits) so one request is always one line;
in identity fields so are ``[``, ``]`` and ``|``, so a crafted username cannot forge another section of the line.
"""

from __future__ import annotations

import json
import queue
import re
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.rfc3339 import timestamp

_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f]")
# In identity fields also the characters that delimit fields, so a username cannot forge a section.
_UNSAFE_IN_FIELD: Final = re.compile(r"[\x00-\x1f\x7f\[\]|]")
_STOP: Final = object()
WRITE_INTERVAL_SECONDS: Final = 0.05  # lines reach stdout within this long


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def _clean(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


def _field(text: str) -> str:
    return _UNSAFE_IN_FIELD.sub(_escape, text)


def forwarded_entries(xff_values: Iterable[bytes], peer_ip: str) -> list[str]:
    """X-Forwarded-For entries, in order, without the peer's own address (the Go proxy's rule)."""
    entries = []
    for value in xff_values:
        for item in value.decode("latin-1").split(","):
            item = item.strip()
            if item and item != peer_ip:
                entries.append(item)
    return entries


def forwarded_chain(xff_values: Iterable[bytes], peer_ip: str) -> str:
    return ", ".join(forwarded_entries(xff_values, peer_ip))


def _with_authenticated(user: UserInfo) -> list[str]:
    groups = list(user.groups)
    if SYSTEM_AUTHENTICATED not in groups:
        groups.append(SYSTEM_AUTHENTICATED)
    return groups


def _identity(user: UserInfo) -> str:
    return f"{_field(user.username)} / {'|'.join(map(_field, _with_authenticated(user)))} /{_extras(user.extra)}"


def _extras(extra: Mapping[str, Iterable[str]]) -> str:
    return "".join(f" {_field(k)}={'|'.join(map(_field, vs))}" for k, vs in extra.items())


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

    def to_json(self) -> str:
        obj: dict[str, Any] = {
            "time": timestamp(self.received),
            "result": "AuSuccess" if self.admitted else "AuFail",
            "sourceIP": self.peer_ip,
            "forwardedFor": forwarded_entries(self.xff, self.peer_ip),
            "method": self.method.decode("latin-1"),
            "uri": self.uri.decode("latin-1"),
            "status": self.status,
            "durationSeconds": round(self.duration, 6),
        }
        if self.user is not None:
            obj["user"] = _user_object(self.user)
        if self.outbound is not None:
            obj["outbound"] = _user_object(self.outbound)
        if self.reason:
            obj["reason"] = self.reason
        if self.audit_id:
            obj["auditID"] = self.audit_id
        try:
            return orjson.dumps(obj).decode()
        except orjson.JSONEncodeError:  # a lone surrogate from a token's claims: the stdlib escapes it
            return json.dumps(obj, separators=(",", ":"))


def _user_object(user: UserInfo) -> dict[str, Any]:
    """As kube-apiserver sees the user: system:authenticated is added to every authenticated identity."""
    return {
        "username": user.username,
        "uid": user.uid,
        "groups": _with_authenticated(user),
        "extra": {k: list(v) for k, v in user.extra.items()},
    }


class TextStream(Protocol):
    def write(self, text: str, /) -> int: ...
    def flush(self) -> None: ...


class AccessLog:
    """``success``/``failure`` write the text lines (as soon as the request is authenticated, as the Go proxy
    did); ``answered`` writes the JSON object. Each is a no-op in the other format."""

    def __init__(self, stream: TextStream | None = None, *, json: bool = False) -> None:
        self.json = json
        self._stream = stream if stream is not None else sys.stdout
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._stamp_second = -1
        self._stamp = ""
        self._thread = threading.Thread(target=self._drain, name="access-log", daemon=True)
        self._thread.start()

    def _timestamp(self) -> str:
        now = int(time.time())
        if now != self._stamp_second:
            self._stamp_second = now
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))
        return self._stamp

    def success(
        self, peer_ip: str, xff: Iterable[bytes], uri: bytes, user: UserInfo, outbound: UserInfo | None = None
    ) -> None:
        if self.json:
            return
        line = (
            f"[{self._timestamp()}] AuSuccess src:[{peer_ip} / {forwarded_chain(xff, peer_ip)}] "
            f"URI:{uri.decode('latin-1')} inbound:[{_identity(user)}]"
        )
        if outbound is not None:
            groups = "|".join(map(_field, outbound.groups))
            extras = _extras(outbound.extra)
            line += f" outbound:[{_field(outbound.username)} / {groups} / {_field(outbound.uid)} /{extras}]"
        self._queue.put(_clean(line))

    def failure(self, peer_ip: str, xff: Iterable[bytes], uri: bytes) -> None:
        if self.json:
            return
        self._queue.put(
            _clean(
                f"[{self._timestamp()}] AuFail src:[{peer_ip} / {forwarded_chain(xff, peer_ip)}] "
                f"URI:{uri.decode('latin-1')}"
            )
        )

    def answered(self, record: AccessRecord) -> None:
        if self.json:
            self._queue.put(record)  # serialized by the writer thread, off the event loop

    def malformed(self, peer_ip: str, status: int, reason: str) -> None:
        """A request too broken to have a method or URI (bad framing, a header timeout)."""
        self.failure(peer_ip, [], b"-")
        self.answered(AccessRecord(time.time(), peer_ip, status=status, reason=reason))

    def _drain(self) -> None:
        # Poll rather than block on the queue: a writer woken for every line would contend for the GIL
        # with the event loop thousands of times a second (measured: ~10 µs per request).
        while True:
            self._stopping.wait(WRITE_INTERVAL_SECONDS)
            lines: list[str] = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._write(lines)
                    return
                lines.append(item.to_json() if isinstance(item, AccessRecord) else str(item))
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._stream.write("\n".join(lines) + "\n")
            self._stream.flush()
        except (OSError, ValueError):
            pass  # stdout went away (pipe closed); the proxy keeps serving

    def close(self, timeout: float = 5.0) -> None:
        """Write everything queued, then stop the writer."""
        self._queue.put(_STOP)
        self._stopping.set()
        self._thread.join(timeout)
