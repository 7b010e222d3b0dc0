"""The diagnostic log (stderr, set up by server.lifecycle.setup_logging): klog's lines in UTC, or component-base's
JSON with --logging-format=json; one record is one line whatever a message quotes, and a stalled stderr costs
records, counted and reported in their place, not memory."""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Final

import pytest

from kube_oidc_proxy.observe.diagformat import json_record, text_line
from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.server.lifecycle import setup_logging
from tests.support.streams import GUARD_SECONDS, Counted, GatedStream

# klog's header: Lmmdd hh:mm:ss.uuuuuu pid file:line]
RECORD: Final = re.compile(
    r"^(?P<level>[IWEF])(?P<month>\d\d)(?P<day>\d\d) (?P<time>\d\d:\d\d:\d\d\.\d{6}) +(?P<pid>\d+) "
    r"(?P<file>[\w.]+):(?P<line>\d+)\] (?P<message>.*)$"
)
LINE_BREAKS: Final = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
log = logging.getLogger("kop.test")


@pytest.fixture
def stream() -> GatedStream:
    return GatedStream()


def _installed(stream: GatedStream, logging_format: str, verbosity: int = 0) -> Iterator[BoundedQueueHandler]:
    root, kop = logging.getLogger(), logging.getLogger("kop")
    saved = (root.handlers[:], root.level, kop.level)
    handler = setup_logging(verbosity, stream, logging_format=logging_format)
    yield handler
    stream.open()
    handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    kop.setLevel(saved[2])


@pytest.fixture
def diagnostics(stream: GatedStream) -> Iterator[BoundedQueueHandler]:
    yield from _installed(stream, "text")


@pytest.fixture
def json_diagnostics(stream: GatedStream) -> Iterator[BoundedQueueHandler]:
    yield from _installed(stream, "json", verbosity=4)


def records(stream: GatedStream, handler: BoundedQueueHandler) -> list[re.Match[str]]:
    handler.lines.close()
    matches = [RECORD.match(line) for line in stream.lines()]
    assert all(matches), stream.lines()
    return [m for m in matches if m]


def objects(stream: GatedStream, handler: BoundedQueueHandler) -> list[dict[str, Any]]:
    handler.lines.close()
    return [json.loads(line) for line in stream.lines()]


def here() -> int:
    """The line number of the caller's line."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return frame.f_back.f_lineno


def test_a_path_or_claim_quoted_in_a_message_cannot_forge_a_second_record(
    stream: GatedStream, diagnostics: BoundedQueueHandler
) -> None:
    forged = "/api\r\nE1129 08:50:01.123456       1 app.py:1] forged\u2028\x85NEL\x1b[31m\ud800"
    log.info("rejected GET %s: %s", forged, "bad token")
    (record,) = records(stream, diagnostics)
    assert (record["level"], record["file"]) == ("I", "test_diaglog.py")
    assert record["message"] == (
        "rejected GET /api\\r\\nE1129 08:50:01.123456       1 app.py:1] forged"
        "\\u2028\\u0085NEL\\x1b[31m\\ud800: bad token"
    )
    assert not LINE_BREAKS.search(stream.lines()[0])


def test_a_traceback_is_one_line_with_visible_newlines(stream: GatedStream, diagnostics: BoundedQueueHandler) -> None:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        log.exception("internal error while proxying %s", "/x")
    (record,) = records(stream, diagnostics)
    assert record["level"] == "E"
    message = record["message"]
    assert message.startswith("internal error while proxying /x\\nTraceback (most recent call last):\\n")
    assert message.endswith("ValueError: first line\\nsecond line")


def test_a_stalled_stderr_costs_records_and_the_log_says_how_many_before_newer_ones(
    stream: GatedStream, diagnostics: BoundedQueueHandler
) -> None:
    counted = Counted()
    diagnostics.lines.limit = 5
    diagnostics.lines.on_dropped = counted
    stream.shut()
    log.warning("first")
    assert stream.entered.wait(GUARD_SECONDS)  # the writer is stuck in write()
    for n in range(20):
        log.warning("stalled %d", n)
    assert (diagnostics.lines.queued, diagnostics.lines.dropped, counted.total) == (5, 15, 15)
    stream.open()
    stream.wait_for(lambda lines: any("dropped" in line for line in lines))
    log.warning("after")
    written = [(r["level"], r["file"], r["message"]) for r in records(stream, diagnostics)]
    assert written == [
        ("W", "test_diaglog.py", "first"),
        *(("W", "test_diaglog.py", f"stalled {n}") for n in range(5)),
        ("W", "diaglog.py", "15 log lines dropped"),
        ("W", "test_diaglog.py", "after"),
    ]


def test_arguments_are_read_when_logging_not_when_writing(
    stream: GatedStream, diagnostics: BoundedQueueHandler
) -> None:
    stream.shut()
    log.warning("first")
    assert stream.entered.wait(GUARD_SECONDS)
    changing = ["before"]
    log.warning("value %s", changing)
    changing[0] = "after"
    stream.open()
    assert [r["message"] for r in records(stream, diagnostics)] == ["first", "value ['before']"]


# ---------------------------------------------------------------------------------------------------- klog's text


def _record(level: int, created: float, message: str = "message") -> logging.LogRecord:
    record = logging.LogRecord("kop.jwks", level, "/app/kube_oidc_proxy/authn/jwks.py", 196, message, None, None)
    record.created, record.process = created, 12345
    return record


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """A local time zone 14 hours from UTC, as a node's may be."""
    saved = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    yield
    if saved is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = saved
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_a_text_line_is_klogs_header_in_utc_whatever_the_local_zone() -> None:
    created = datetime(2026, 12, 5, 18, 49, 40, 304123, tzinfo=UTC).timestamp()
    assert text_line(_record(logging.WARNING, created)) == "W1205 18:49:40.304123   12345 jwks.py:196] message"
    # the day and the letter change with the UTC date and the level, not with the local zone
    late = datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC).timestamp()
    letters = {level: text_line(_record(level, late))[:5] for level in (10, 20, 30, 40, 50)}
    assert letters == {10: "I1231", 20: "I1231", 30: "W1231", 40: "E1231", 50: "E1231"}


def test_a_logged_line_names_the_file_and_line_that_logged_it_and_this_process(
    stream: GatedStream, diagnostics: BoundedQueueHandler
) -> None:
    before = datetime.now(UTC)
    line = here() + 1
    log.warning("keys of %s not loaded", "https://idp.example")
    (record,) = records(stream, diagnostics)
    assert (record["level"], record["file"], int(record["line"])) == ("W", "test_diaglog.py", line)
    assert int(record["pid"]) == os.getpid()
    stamp = datetime.strptime(f"{before.year}{record['month']}{record['day']} {record['time']}", "%Y%m%d %H:%M:%S.%f")
    assert abs(stamp.replace(tzinfo=UTC) - before).total_seconds() < 60
    assert record["message"] == "keys of https://idp.example not loaded"


# ------------------------------------------------------------------------------------------------ component-base's JSON


def test_a_json_record_has_component_bases_keys_in_zaps_order(
    stream: GatedStream, json_diagnostics: BoundedQueueHandler
) -> None:
    before = time.time()
    line = here() + 1
    log.info("serving on %s", ":6443")
    (obj,) = objects(stream, json_diagnostics)
    assert list(obj) == ["ts", "logger", "caller", "msg", "v"]
    assert obj["logger"] == "kop.test"
    assert obj["caller"] == f"unit/test_diaglog.py:{line}"  # zap's short caller: the directory and the file
    assert (obj["msg"], obj["v"]) == ("serving on :6443", 0)
    assert before * 1000 <= obj["ts"] <= time.time() * 1000  # milliseconds since the epoch, as component-base


def test_json_says_errors_by_the_absence_of_v_and_carries_the_traceback_as_err(
    stream: GatedStream, json_diagnostics: BoundedQueueHandler
) -> None:
    log.debug("a detail")
    log.info("a fact")
    log.warning("a warning")
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        log.exception("internal error while proxying %s", "/x")
    debug, info, warning, error = objects(stream, json_diagnostics)
    assert (debug["v"], info["v"], warning["v"]) == (4, 0, 0)  # no warning level in component-base's JSON
    assert "v" not in error and "err" not in info
    assert error["msg"] == "internal error while proxying /x"
    assert error["err"].startswith("Traceback (most recent call last):\n")
    assert error["err"].endswith("ValueError: first line\nsecond line")
    assert list(error)[-1] == "err"


def test_a_path_or_claim_quoted_in_json_stays_in_its_string_on_one_line(
    stream: GatedStream, json_diagnostics: BoundedQueueHandler
) -> None:
    forged = '/api\r\n{"ts":1,"msg":"forged"}\u2028\x85NEL\x1b[31m\x7f"\\'
    log.info("rejected GET %s", forged)
    log.info("lone %s", "\ud800")
    json_diagnostics.lines.close()
    lines = stream.lines()
    assert len(lines) == 2 and lines[0].isascii()  # every control and separator escaped
    assert not any(LINE_BREAKS.search(line) for line in lines)
    quoted, lone = (json.loads(line) for line in lines)
    assert quoted["msg"] == f"rejected GET {forged}"
    assert lone["msg"] == "lone \ufffd"  # as Go reads it: strict JSON readers refuse a lone surrogate


def test_json_lines_report_dropped_records_as_json_too(
    stream: GatedStream, json_diagnostics: BoundedQueueHandler
) -> None:
    json_diagnostics.lines.limit = 1
    stream.shut()
    log.warning("first")
    assert stream.entered.wait(GUARD_SECONDS)
    for n in range(4):
        log.warning("stalled %d", n)
    stream.open()
    stream.wait_for(lambda lines: any("dropped" in line for line in lines))
    messages = [(o["logger"], o["msg"]) for o in objects(stream, json_diagnostics)]
    assert messages == [("kop.test", "first"), ("kop.test", "stalled 0"), ("kop.log", "3 log lines dropped")]


def test_an_error_without_a_traceback_has_neither_v_nor_err() -> None:
    obj = json.loads(json_record(_record(logging.ERROR, 1.5, "m")))
    assert obj == {"ts": 1500.0, "logger": "kop.jwks", "caller": "authn/jwks.py:196", "msg": "m"}
