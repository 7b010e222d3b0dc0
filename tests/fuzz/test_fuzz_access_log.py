"""Fuzz targets: the access log as the proxy writes it, through ``AccessLog`` into a stream the test reads.

A request's values an attacker controls (URI, X-Forwarded-For, and through a token or ``kubectl --as`` the
username, groups, uid and extras, the refusal reason) are full of what breaks line-oriented logs: every line
break a splitter knows, the SIEM format's delimiters, lone surrogates, bytes that are not UTF-8. Sequences of
records go through ``success``/``failure``/``malformed`` (text) and ``answered`` (JSON), then ``close``:

- each record is exactly one line under ``str.splitlines()``, in the order written;
- a text line parses with the SIEM parser of the tests (``tests/support/siem.py``) and gives back its result,
  peer, URI, forwarded chain and user;
- a JSON line is ``AccessRecord.to_json()`` of its record, parses with ``json.loads`` and gives back the
  values (a lone surrogate, which no JSON reader can take, as U+FFFD).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from hypothesis import strategies as st

from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.observe.accesslog import AccessLog, AccessRecord
from tests.fuzz.runner import fuzz
from tests.support.siem import bytes_from_json, parse

TEXT_PIECES: Final = [
    "\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\x7f",
    "\ud800", "\udcff", " ", " / ", "|", "[", "]", "=", ",", "\\", "\\x0a", "-", "\\-",
    "] AuSuccess src:[10.0.0.1 / ] URI:/ inbound:[root / system:masters /]", "system:masters",
]  # fmt: skip
BYTE_PIECES: Final = [
    b"\r\n", b"\n", b"\x85", b"\xc2\x85", b"\xe2\x80\xa8", b"\xff", b"\xed\xa0\x80", b"\\", b" ", b",", b"[", b"]",
    b"1.2.3.4", b"::1", b"\r\n[2026-01-01T00:00:00+0000] AuSuccess src:[10.0.0.9 / ] URI:/x inbound:[root / g /]",
]  # fmt: skip

texts = st.lists(st.one_of(st.sampled_from(TEXT_PIECES), st.text(max_size=3)), max_size=4).map("".join)
raw = st.lists(st.one_of(st.sampled_from(BYTE_PIECES), st.binary(max_size=3)), max_size=4).map(b"".join)
users = st.builds(
    UserInfo,
    username=texts,
    uid=texts,
    groups=st.lists(texts, max_size=2).map(tuple),
    extra=st.dictionaries(texts, st.lists(texts, max_size=2).map(tuple), max_size=2),
)


class Collected:
    """The stream the writer thread writes to; read only after ``AccessLog.close`` joined that thread."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, text: str, /) -> int:
        self.written.append(text)
        return len(text)

    def flush(self) -> None:
        pass

    @property
    def lines(self) -> list[str]:
        return "".join(self.written).splitlines()


@dataclass(frozen=True)
class TextRecord:
    peer: str
    xff: list[bytes]
    uri: bytes
    user: UserInfo | None  # None: refused (AuFail)
    outbound: UserInfo | None
    malformed: bool  # AccessLog.malformed: too broken to have a URI


text_records = st.builds(
    TextRecord, texts, st.lists(raw, max_size=2), raw, st.none() | users, st.none() | users, st.booleans()
)


def forwarded(xff: list[bytes], peer: str) -> list[bytes]:
    """The documented rule: every comma-separated entry, trimmed, that is not the peer itself."""
    entries = [e.strip() for v in xff for e in v.decode("utf-8", "surrogateescape").split(",")]
    return [e.encode("utf-8", "surrogateescape") for e in entries if e and e != peer]


@fuzz(records=st.lists(text_records, min_size=1, max_size=4))
def test_each_siem_record_is_one_line_that_gives_back_its_values(records: list[TextRecord]) -> None:
    stream = Collected()
    log = AccessLog(stream)
    for r in records:
        if r.malformed:
            log.refused(r.peer, 400, "bad request")
        elif r.user is None:
            log.failure(r.peer, r.xff, r.uri)
        else:
            log.success(r.peer, r.xff, r.uri, r.user, r.outbound)
    log.close()
    lines = stream.lines
    assert len(lines) == len(records), lines
    for r, line in zip(records, lines, strict=True):
        read = parse(line)
        assert read.peer == r.peer
        if r.malformed:
            assert (read.result, read.uri, read.forwarded) == ("AuFail", b"-", [])
            continue
        assert (read.uri, read.forwarded) == (r.uri, forwarded(r.xff, r.peer))
        if r.user is None:
            assert (read.result, read.inbound) == ("AuFail", None)
            continue
        assert read.result == "AuSuccess" and read.inbound is not None
        assert (read.inbound.username, read.inbound.groups[: len(r.user.groups)]) == (r.user.username, [*r.user.groups])
        assert read.inbound.extra == {k: list(v) for k, v in r.user.extra.items()}
        if r.outbound is None:
            assert read.outbound is None
        else:
            assert read.outbound is not None
            assert (read.outbound.username, read.outbound.uid) == (r.outbound.username, r.outbound.uid)
            assert read.outbound.groups == list(r.outbound.groups)


def as_json_reads(value: Any) -> Any:
    """A text value as a JSON line holds it: a lone surrogate (only a token's claim can hold one) is U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {as_json_reads(k): as_json_reads(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json_reads(v) for v in value]
    return value


def user_object(user: UserInfo) -> dict[str, Any]:
    groups = [*user.groups, *([] if SYSTEM_AUTHENTICATED in user.groups else [SYSTEM_AUTHENTICATED])]
    expected: dict[str, Any] = as_json_reads(
        {"username": user.username, "uid": user.uid, "groups": groups, "extra": dict(user.extra)}
    )
    return expected


json_records = st.builds(
    AccessRecord,
    received=st.floats(min_value=0, max_value=4e9),
    peer_ip=texts,
    admitted=st.booleans(),
    method=raw,
    uri=raw,
    status=st.integers(min_value=0, max_value=599),
    duration=st.floats(min_value=0, max_value=1e6),
    xff=st.lists(raw, max_size=2),
    user=st.none() | users,
    outbound=st.none() | users,
    audit_id=texts,
    reason=texts,
)


@fuzz(records=st.lists(json_records, min_size=1, max_size=4))
def test_each_json_record_is_one_line_that_gives_back_its_values(records: list[AccessRecord]) -> None:
    stream = Collected()
    log = AccessLog(stream, json=True)
    for record in records:
        log.answered(record)
    log.close()
    lines = stream.lines
    assert len(lines) == len(records), lines
    for r, line in zip(records, lines, strict=True):
        assert line == r.to_json()
        entry = json.loads(line)
        assert entry["result"] == ("AuSuccess" if r.admitted else "AuFail")
        assert (entry["sourceIP"], entry["status"]) == (as_json_reads(r.peer_ip), r.status)
        assert (bytes_from_json(entry["method"]), bytes_from_json(entry["uri"])) == (r.method, r.uri)
        assert [bytes_from_json(e) for e in entry["forwardedFor"]] == forwarded(r.xff, r.peer_ip)
        assert entry.get("reason", "") == as_json_reads(r.reason)
        assert entry.get("auditID", "") == as_json_reads(r.audit_id)
        assert entry.get("user") == (None if r.user is None else user_object(r.user))
        assert entry.get("outbound") == (None if r.outbound is None else user_object(r.outbound))
