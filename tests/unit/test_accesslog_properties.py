"""Access lines under hostile values, as an attacker who controls a username, a group, an extra, the URI or
X-Forwarded-For would write them: every value comes back from the line, nothing splits it into two, and
nothing opens or closes a section. The SIEM lines are read back with the strict parser in
tests/support/siem.py, the JSON objects with json.loads."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kube_oidc_proxy.authn.model import SYSTEM_AUTHENTICATED, UserInfo
from kube_oidc_proxy.observe.accesslog import AccessRecord, failure_line, success_line
from tests.support.siem import Identity, NotASiemLine, bytes_from_json, parse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
STAMP: Final = "2026-11-29T08:50:01+0000"

# What breaks line-oriented formats: the format's own delimiters, every kind of line break, escapes that
# already look like ours, and pieces of a forged line.
TEXT_PIECES: Final = [
    " ", "/", " / ", " /", "|", "[", "]", "=", ",", ", ", "\\", "\\x5b", "\\u2028", "\\-", "-", ":",
    "\n", "\r", "\r\n", "\t", "\x0b", "\x0c", "\x1c", "\x00", "\x1b", "\x7f", "\x85", "\x9f", "\xa0",
    "\u2028", "\u2029", "\ud800", "\udc85", "\ufeff", "é", "漢",
    "] outbound:[root / system:masters / /]", " AuSuccess src:[", " inbound:[", "system:masters",
]  # fmt: skip
BYTE_PIECES: Final = [
    b" ", b",", b", ", b"[", b"]", b"|", b"/", b"\\", b"\\x85", b"\x85", b"\xc2\x85", b"\xe2\x80\xa8",
    b"\r", b"\n", b"\r\n", b"\x00", b"\x7f", b"\xff", b"\xed\xa0\x80", b"\xc3", b"%0a", b"1.2.3.4",
    b"] URI:/api/v1/secrets inbound:[admin / system:masters /]", b"\r\n[2026-11-29T08:50:01+0000] AuSuccess ",
]  # fmt: skip
# Splitters of line-oriented tools: Python's str.splitlines, JavaScript line terminators, Unicode NEL.
LINE_BREAKS: Final = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")

texts = st.lists(
    st.one_of(st.sampled_from(TEXT_PIECES), st.text(st.characters(exclude_categories=()), max_size=3)), max_size=5
).map("".join)
raw_bytes = st.lists(st.one_of(st.sampled_from(BYTE_PIECES), st.binary(max_size=3)), max_size=5).map(b"".join)
users = st.builds(
    UserInfo,
    username=texts,
    uid=texts,
    groups=st.lists(texts, max_size=4).map(tuple),
    extra=st.dictionaries(texts, st.lists(texts, max_size=3).map(tuple), max_size=3),
)


def forwarded(xff: Sequence[bytes], peer: str) -> list[bytes]:
    """The Go proxy's rule: every comma-separated entry, trimmed, that is not the peer itself."""
    entries = []
    for value in xff:
        for item in value.decode("utf-8", "surrogateescape").split(","):
            item = item.strip()
            if item and item != peer:
                entries.append(item.encode("utf-8", "surrogateescape"))
    return entries


def inbound(user: UserInfo) -> Identity:
    groups = [*user.groups, *([] if SYSTEM_AUTHENTICATED in user.groups else [SYSTEM_AUTHENTICATED])]
    return Identity(user.username, groups, {k: list(v) for k, v in user.extra.items()})


def outbound(user: UserInfo) -> Identity:
    return Identity(user.username, list(user.groups), {k: list(v) for k, v in user.extra.items()}, user.uid)


def assert_one_line(line: str) -> None:
    assert line.splitlines() == [line]
    assert not LINE_BREAKS.search(line)
    assert line.encode().splitlines() == [line.encode()]  # and it can be written: no lone surrogate left


@SETTINGS
@given(peer=texts, xff=st.lists(raw_bytes, max_size=3), uri=raw_bytes, user=users, target=st.none() | users)
def test_every_value_comes_back_from_a_success_line(
    peer: str, xff: list[bytes], uri: bytes, user: UserInfo, target: UserInfo | None
) -> None:
    line = success_line(STAMP, peer, xff, uri, user, outbound=target)
    assert_one_line(line)
    parsed = parse(line)
    assert (parsed.time, parsed.result, parsed.peer, parsed.uri) == (STAMP, "AuSuccess", peer, uri)
    assert parsed.forwarded == forwarded(xff, peer)
    assert parsed.inbound == inbound(user)
    assert parsed.outbound == (None if target is None else outbound(target))
    # no value opened or closed a section: the only brackets are the format's own
    assert parsed.sections == ["src", "inbound", *([] if target is None else ["outbound"])]
    assert line.count("[") == line.count("]") == len(parsed.sections) + 1


@SETTINGS
@given(peer=texts, xff=st.lists(raw_bytes, max_size=3), uri=raw_bytes)
def test_every_value_comes_back_from_a_failure_line(peer: str, xff: list[bytes], uri: bytes) -> None:
    line = failure_line(STAMP, peer, xff, uri)
    assert_one_line(line)
    parsed = parse(line)
    assert (parsed.result, parsed.peer, parsed.forwarded, parsed.uri) == ("AuFail", peer, forwarded(xff, peer), uri)
    assert parsed.sections == ["src"]
    assert line.count("[") == line.count("]") == 2


@SETTINGS
@given(
    peer=texts,
    xff=st.lists(raw_bytes, max_size=3),
    method=raw_bytes,
    uri=raw_bytes,
    user=st.none() | users,
    target=st.none() | users,
    reason=texts,
    audit_id=texts,
)
def test_every_value_comes_back_from_a_json_object(
    peer: str,
    xff: list[bytes],
    method: bytes,
    uri: bytes,
    user: UserInfo | None,
    target: UserInfo | None,
    reason: str,
    audit_id: str,
) -> None:
    record = AccessRecord(0.0, peer, True, method, uri, 200, 0.1, xff, user, target, audit_id, reason)
    line = record.to_json()
    assert_one_line(line)
    assert not re.search("[\x7f-\x9f\u2028\u2029]", line)  # escaped, as JSON allows, for JavaScript readers
    entry = json.loads(line)
    assert entry["sourceIP"] == valid(peer)
    assert [bytes_from_json(e) for e in entry["forwardedFor"]] == forwarded(xff, peer)
    assert (bytes_from_json(entry["method"]), bytes_from_json(entry["uri"])) == (method, uri)
    assert entry.get("reason", "") == valid(reason)
    assert entry.get("auditID", "") == valid(audit_id)
    if user is not None:
        expected = inbound(user)
        assert entry["user"] == valid(
            {"username": expected.username, "uid": user.uid, "groups": expected.groups, "extra": expected.extra}
        )
    if target is not None:
        assert entry["outbound"] == valid(
            {
                "username": target.username,
                "uid": target.uid,
                "groups": inbound(target).groups,  # kube-apiserver adds it to the target too
                "extra": outbound(target).extra,
            }
        )


def valid(value: Any) -> Any:
    """What a JSON line holds for a text value: a lone surrogate (only a token's claim can hold one) is U+FFFD."""
    if isinstance(value, str):
        return re.sub("[\ud800-\udfff]", "\ufffd", value)
    if isinstance(value, dict):
        return {valid(k): valid(v) for k, v in value.items()}
    if isinstance(value, list):
        return [valid(v) for v in value]
    return value


# The attacker's examples from the hardening issue, as a SIEM would read them.
FORGED_SOURCE = b"1.2.3.4] URI:/api/v1/secrets inbound:[admin / system:masters /]"


@pytest.mark.parametrize(
    ("xff", "uri", "user"),
    [
        pytest.param([FORGED_SOURCE], b"/api", UserInfo("eve"), id="x-forwarded-for closes src and forges inbound"),
        pytest.param(
            [b"1.1.1.1\r\n[2026-11-29T08:50:01+0000] AuSuccess src:[10.0.0.9 / ] URI:/x inbound:[root / g /]"],
            b"/api",
            UserInfo("eve"),
            id="x-forwarded-for with CRLF and a whole forged line",
        ),
        pytest.param([b"1.1.1.1 AuSuccess"], b"/api AuSuccess", UserInfo("eve"), id="space AuSuccess"),
        pytest.param([], b"/api", UserInfo("eve] outbound:[root / system:masters / /"), id="username forges outbound"),
        pytest.param([], b"/api", UserInfo("eve\u2028[x] AuSuccess"), id="username with U+2028"),
        pytest.param([b"1.1.1.1\xc2\x85AuSuccess"], b"/api\x85x", UserInfo("eve\x85"), id="C1 NEL as UTF-8 and byte"),
        pytest.param([], b"/api", UserInfo("eve", groups=("dev|system:masters",)), id="group forges a second group"),
        pytest.param([], b"/api", UserInfo("eve", extra={"k": ("v k2=root",)}), id="extra value forges an extra"),
    ],
)
def test_forged_lines_and_sections_stay_inside_their_field(xff: list[bytes], uri: bytes, user: UserInfo) -> None:
    line = success_line(STAMP, "10.0.0.1", xff, uri, user)
    assert_one_line(line)
    parsed = parse(line)
    assert parsed.sections == ["src", "inbound"]
    assert (parsed.forwarded, parsed.uri, parsed.inbound) == (forwarded(xff, "10.0.0.1"), uri, inbound(user))


@pytest.mark.parametrize(
    ("xff", "uri", "written"),
    [
        pytest.param(
            [FORGED_SOURCE],
            b"/api",
            "src:[10.0.0.1 / 1.2.3.4\\x5d\\x20URI:/api/v1/secrets\\x20inbound:\\x5badmin\\x20/\\x20system:masters"
            "\\x20/\\x5d] URI:/api inbound:[eve / system:authenticated /]",
            id="forged section",
        ),
        pytest.param(
            [b"1.1.1.1\xc2\x85", b"2.2.2.2\x85\\"],
            b"/a\xe2\x80\xa8b\xff c",
            "src:[10.0.0.1 / 1.1.1.1, 2.2.2.2\\x85\\\\] URI:/a\\u2028b\\xff\\x20c"
            " inbound:[eve / system:authenticated /]",
            id="NEL trimmed as whitespace, a lone 0x85 byte, U+2028, a backslash",
        ),
    ],
)
def test_what_a_siem_reads_for_forged_values(xff: list[bytes], uri: bytes, written: str) -> None:
    assert success_line(STAMP, "10.0.0.1", xff, uri, UserInfo("eve")) == f"[{STAMP}] AuSuccess {written}"


def test_the_parser_refuses_a_line_with_an_unescaped_delimiter_in_a_field() -> None:
    good = f"[{STAMP}] AuSuccess src:[10.0.0.1 / ] URI:/api inbound:[eve / g|system:authenticated / k=v]"
    parse(good)
    for forged in (good.replace("eve", "e]ve"), good.replace("k=v", "k=v=w x"), good.replace("eve", "e\x85ve")):
        with pytest.raises(NotASiemLine):
            parse(forged)
