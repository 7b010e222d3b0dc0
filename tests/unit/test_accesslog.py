"""observe.accesslog: the SIEM access lines of the Tremolo kube-oidc-proxy, byte for byte."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Final

import pytest

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.observe.accesslog import AccessLog, AccessRecord, forwarded_chain
from tests.support.streams import GUARD_SECONDS, Counted, GatedStream

STAMP: Final = re.compile(r"^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}\]")


class MemoryStream(io.StringIO):
    """Where the lines go: kept in memory, flushes counted."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1
        super().flush()

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()


@pytest.fixture
def counted() -> Counted:
    return Counted()


@pytest.fixture
def stream() -> MemoryStream:
    return MemoryStream()


@pytest.fixture
def log(stream: MemoryStream) -> Iterator[AccessLog]:
    access = AccessLog(stream)
    yield access
    access.close()


def written(log: AccessLog, stream: MemoryStream) -> list[str]:
    log.close()
    return stream.lines()


def without_stamp(line: str) -> str:
    match = STAMP.match(line)
    assert match, line
    return line[match.end() :]


@pytest.mark.parametrize(
    ("user", "expected_inbound"),
    [
        pytest.param(UserInfo("a", groups=("g",)), "inbound:[a / g|system:authenticated /]", id="one-group"),
        pytest.param(
            UserInfo("mlbadmin1", groups=("system:masters", "k8s-admins")),
            "inbound:[mlbadmin1 / system:masters|k8s-admins|system:authenticated /]",
            id="two-groups",
        ),
        pytest.param(UserInfo("a"), "inbound:[a / system:authenticated /]", id="no-groups"),
        pytest.param(
            UserInfo("a", groups=("system:authenticated", "g")),
            "inbound:[a / system:authenticated|g /]",
            id="system-authenticated-not-repeated",
        ),
        pytest.param(
            UserInfo("a", groups=("g",), extra={"k": ("v1", "v2")}),
            "inbound:[a / g|system:authenticated / k=v1|v2]",
            id="one-extra",
        ),
        pytest.param(
            UserInfo("a", groups=("g",), extra={"authentication.kubernetes.io/credential-id": ("JTI=1",), "x": ("y",)}),
            "inbound:[a / g|system:authenticated / authentication.kubernetes.io/credential-id=JTI=1 x=y]",
            id="two-extras",
        ),
    ],
)
def test_a_success_line_has_the_exact_format(
    log: AccessLog, stream: MemoryStream, user: UserInfo, expected_inbound: str
) -> None:
    log.success("10.42.0.5", [b"10.42.1.3, 10.42.0.5"], b"/api/v1/namespaces/openunison/pods?limit=500", user)
    lines = written(log, stream)
    assert len(lines) == 1
    assert without_stamp(lines[0]) == (
        f" AuSuccess src:[10.42.0.5 / 10.42.1.3] URI:/api/v1/namespaces/openunison/pods?limit=500 {expected_inbound}"
    )


def test_the_seed_example_line_is_reproduced(log: AccessLog, stream: MemoryStream) -> None:
    user = UserInfo("mlbadmin1", groups=("system:masters",))
    log.success("10.42.0.5", [b"10.42.1.3"], b"/api/v1/namespaces/openunison/pods?limit=500", user)
    (line,) = written(log, stream)
    assert without_stamp(line) == (
        " AuSuccess src:[10.42.0.5 / 10.42.1.3] URI:/api/v1/namespaces/openunison/pods?limit=500 "
        "inbound:[mlbadmin1 / system:masters|system:authenticated /]"
    )


@pytest.mark.parametrize(
    ("xff", "expected_src"),
    [
        pytest.param([b"10.42.1.3"], "src:[10.42.0.5 / 10.42.1.3]", id="forwarded"),
        pytest.param([], "src:[10.42.0.5 / ]", id="no-forwarded-for"),
    ],
)
def test_a_failure_line_has_the_exact_format(
    log: AccessLog, stream: MemoryStream, xff: list[bytes], expected_src: str
) -> None:
    log.failure("10.42.0.5", xff, b"/api/v1/nodes")
    (line,) = written(log, stream)
    assert without_stamp(line) == f" AuFail {expected_src} URI:/api/v1/nodes"


def test_an_outbound_section_follows_when_impersonating(log: AccessLog, stream: MemoryStream) -> None:
    log.success(
        "10.0.0.1",
        [],
        b"/api",
        UserInfo("admin", groups=("ops",)),
        outbound=UserInfo("bob", uid="u-1", groups=("g1", "g2"), extra={"k": ("v",)}),
    )
    (line,) = written(log, stream)
    assert without_stamp(line) == (
        " AuSuccess src:[10.0.0.1 / ] URI:/api inbound:[admin / ops|system:authenticated /]"
        " outbound:[bob / g1|g2 / u-1 / k=v]"
    )


def test_the_timestamp_is_the_local_time_with_its_offset(log: AccessLog, stream: MemoryStream) -> None:
    before = time.time()
    log.failure("10.0.0.1", [], b"/")
    after = time.time()
    (line,) = written(log, stream)
    assert STAMP.match(line)
    stamp = datetime.strptime(line[1:25], "%Y-%m-%dT%H:%M:%S%z").timestamp()
    assert int(before) <= stamp <= after
    assert line[20:25] == time.strftime("%z", time.localtime(stamp))


# forwarded_chain: the Go proxy's TestXForwardedFor (T:pkg/proxy/logging/accesslog_test.go), plus repeats.
@pytest.mark.parametrize(
    ("xff", "remote", "expected"),
    [
        pytest.param([], "1.2.3.4", "", id="no x-forwarded-for"),
        pytest.param([b""], "1.2.3.4", "", id="empty x-forwarded-for"),
        pytest.param([b"1.2.3.4"], "1.2.3.4", "", id="x-forwarded-for is remoteaddr"),
        pytest.param([b"1.2.3.1"], "1.2.3.4", "1.2.3.1", id="x-forwarded-for with no remoteaddr"),
        pytest.param([b"1.2.3.1, 1.2.3.4"], "1.2.3.4", "1.2.3.1", id="x-forwarded-for with remoteaddr at the end"),
        pytest.param([b"1.2.3.4, 1.2.3.1"], "1.2.3.4", "1.2.3.1", id="x-forwarded-for with remoteaddr at the start"),
        pytest.param([b"3.3.3.3, 1.1.1.1,2.2.2.2"], "9.9.9.9", "3.3.3.3, 1.1.1.1, 2.2.2.2", id="order-kept"),
        pytest.param([b"1.1.1.1", b"2.2.2.2, 1.2.3.4"], "1.2.3.4", "1.1.1.1, 2.2.2.2", id="several-header-lines"),
        pytest.param([b" , ,1.1.1.1 , "], "1.2.3.4", "1.1.1.1", id="blank-entries"),
        pytest.param([b"1.2.3.40"], "1.2.3.4", "1.2.3.40", id="prefix-of-remote-kept"),
    ],
)
def test_the_forwarded_chain_drops_the_peer_and_keeps_the_order(xff: list[bytes], remote: str, expected: str) -> None:
    assert forwarded_chain(xff, remote) == expected


@pytest.mark.parametrize(
    ("username", "escaped"),
    [
        (
            "evil\nAuSuccess src:[1.1.1.1 / ] URI:/ inbound:[root / system:masters /]",
            "evil\\x0aAuSuccess src:\\x5b1.1.1.1 \\x2f \\x5d URI:/ inbound:\\x5broot \\x2f system:masters \\x2f\\x5d",
        ),
        ("cr\rlf\r\n", "cr\\x0dlf\\x0d\\x0a"),
        ("nul\x00", "nul\\x00"),
        ("del\x7f", "del\\x7f"),
    ],
)
def test_a_username_with_control_characters_stays_on_one_line(
    log: AccessLog, stream: MemoryStream, username: str, escaped: str
) -> None:
    log.success("10.0.0.1", [], b"/api", UserInfo(username, groups=("g\nh",)))
    log.close()
    text = stream.getvalue()
    assert text.count("\n") == 1
    assert text.endswith("\n")
    assert without_stamp(text[:-1]) == (
        f" AuSuccess src:[10.0.0.1 / ] URI:/api inbound:[{escaped} / g\\x0ah|system:authenticated /]"
    )


def test_field_delimiters_in_identities_cannot_forge_a_section(log: AccessLog, stream: MemoryStream) -> None:
    log.success("10.0.0.1", [], b"/api", UserInfo("a] URI:/x inbound:[root", groups=("g|system:masters",)))
    lines = written(log, stream)
    assert lines[0].endswith(
        " URI:/api inbound:[a\\x5d URI:/x inbound:\\x5broot / g\\x7csystem:masters|system:authenticated /]"
    )
    assert lines[0].count("inbound:[") == 1


def test_names_keep_their_spaces_but_cannot_fake_a_separator(log: AccessLog, stream: MemoryStream) -> None:
    # Active Directory groups have spaces and '=' (kept); a backslash is doubled; " /" would end the field
    user = UserInfo("CORP\\alice", groups=("CN=Domain Users,CN=Users,DC=corp", "Team A / Backend", ""))
    log.success("10.0.0.1", [], b"/api", user)
    (line,) = written(log, stream)
    assert line.endswith(
        " inbound:[CORP\\\\alice / CN=Domain Users,CN=Users,DC=corp|Team A \\x2f Backend|\\-|system:authenticated /]"
    )


def test_control_characters_in_the_uri_and_forwarded_for_are_escaped(log: AccessLog, stream: MemoryStream) -> None:
    log.failure("10.0.0.1", [b"1.1.1.1\r\nAuSuccess"], b"/api\n/x")
    lines = written(log, stream)
    assert len(lines) == 1
    assert "URI:/api\\x0a/x" in lines[0]


def test_close_writes_every_queued_line_in_order(stream: MemoryStream) -> None:
    log = AccessLog(stream)
    for n in range(2_000):
        log.failure("10.0.0.1", [], f"/item/{n}".encode())
    log.close()
    lines = stream.lines()
    assert [line.rsplit("URI:", 1)[1] for line in lines] == [f"/item/{n}" for n in range(2_000)]
    assert stream.flushes >= 1


def test_lines_are_written_and_flushed_without_waiting_for_close() -> None:
    stream = GatedStream()
    log = AccessLog(stream)
    try:
        log.failure("10.0.0.1", [], b"/soon")
        assert stream.flushed.wait(GUARD_SECONDS)
        assert "/soon" in stream.lines()[0]
    finally:
        log.close()


def test_a_stalled_stdout_costs_lines_not_memory_and_the_log_says_how_many(counted: Counted) -> None:
    stream = GatedStream(shut=True)
    log = AccessLog(stream, limit=100, on_dropped=counted)
    try:
        log.failure("10.0.0.1", [], b"/first")
        assert stream.entered.wait(GUARD_SECONDS)  # the writer is stuck in write(), as on a full pipe
        for n in range(150):
            log.failure("10.0.0.1", [], f"/stalled/{n}".encode())
        assert (log.queue.queued, log.queue.dropped, counted.total) == (100, 50, 50)
        stream.open()
        stream.wait_for(lambda lines: any("dropped" in line for line in lines))
        log.failure("10.0.0.1", [], b"/after")
    finally:
        stream.open()
        log.close()
    lines = stream.lines()
    assert len(lines) == 103
    assert [line.rsplit("URI:", 1)[1] for line in lines[:101]] == ["/first", *(f"/stalled/{n}" for n in range(100))]
    assert without_stamp(lines[101]) == " 50 access log lines dropped"
    assert lines[102].endswith(" URI:/after")


def test_in_json_the_dropped_lines_are_an_object_with_a_count(counted: Counted) -> None:
    stream = GatedStream(shut=True)
    log = AccessLog(stream, json=True, limit=3, on_dropped=counted)
    try:
        log.answered(AccessRecord(0.0, "10.0.0.1", uri=b"/first"))
        assert stream.entered.wait(GUARD_SECONDS)
        for n in range(5):
            log.answered(AccessRecord(0.0, "10.0.0.1", uri=f"/stalled/{n}".encode()))
        stream.open()
        stream.wait_for(lambda lines: any("dropped" in line for line in lines))
        log.answered(AccessRecord(0.0, "10.0.0.1", uri=b"/after"))
    finally:
        stream.open()
        log.close()
    entries = [json.loads(line) for line in stream.lines()]
    assert [e.get("uri", e.get("dropped")) for e in entries] == [
        "/first",
        "/stalled/0",
        "/stalled/1",
        "/stalled/2",
        2,
        "/after",
    ]
    assert set(entries[4]) == {"time", "dropped"}
    assert entries[4]["time"].endswith("Z")
    assert counted.total == 2


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("stdout went away")


def test_a_broken_stream_does_not_stop_the_writer_or_the_caller() -> None:
    log = AccessLog(BrokenStream())
    log.failure("10.0.0.1", [], b"/a")
    log.success("10.0.0.1", [], b"/b", UserInfo("a"))
    log.close(timeout=5)
    assert not log.queue.running


# ---------------------------------------------------------------------------------------------------- json


def test_json_objects_keep_crafted_text_as_data(stream: MemoryStream) -> None:
    access = AccessLog(stream, json=True)
    user = UserInfo("eve\ud800", groups=("g]|[",), extra={"k": ("v\n",)})
    access.answered(AccessRecord(0.0, "10.0.0.1", True, b"GET", b"/api?x=\x1b", 200, 0.5, [b"10.0.0.1, 1.2.3.4"], user))
    access.success("10.0.0.1", [], b"/ignored", user)  # the text line is not written in json format
    (line,) = written(access, stream)
    entry = json.loads(line)
    assert entry["time"] == "1970-01-01T00:00:00.000000Z"
    # a lone surrogate (a claim can hold one) is U+FFFD, as kube-apiserver decodes it: strict readers refuse it
    assert entry["user"] == {"username": "eve\ufffd", "uid": "", "groups": ["g]|[", "system:authenticated"],
                             "extra": {"k": ["v\n"]}}  # fmt: skip
    assert (entry["uri"], entry["forwardedFor"], entry["durationSeconds"]) == ("/api?x=\x1b", ["1.2.3.4"], 0.5)


def test_text_format_writes_no_json_objects(log: AccessLog, stream: MemoryStream) -> None:
    log.answered(AccessRecord(0.0, "10.0.0.1", True, b"GET", b"/api", 200))
    log.refused("10.0.0.1", 400, "bad framing")
    (line,) = written(log, stream)
    assert without_stamp(line) == " AuFail src:[10.0.0.1 / ] URI:-"
