"""The diagnostic log (stderr, set up by server.lifecycle.setup_logging): one record is one line whatever a message
quotes, and a stalled stderr costs records, counted and reported in their place, not memory."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Final

import pytest

from kube_oidc_proxy.observe.diaglog import BoundedQueueHandler
from kube_oidc_proxy.server.lifecycle import setup_logging
from tests.support.streams import GUARD_SECONDS, Counted, GatedStream

RECORD: Final = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$"
)
LINE_BREAKS: Final = re.compile("[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
log = logging.getLogger("kop.test")


@pytest.fixture
def stream() -> GatedStream:
    return GatedStream()


@pytest.fixture
def diagnostics(stream: GatedStream) -> Iterator[BoundedQueueHandler]:
    root, kop = logging.getLogger(), logging.getLogger("kop")
    saved = (root.handlers[:], root.level, kop.level)
    handler = setup_logging(0, stream)
    yield handler
    stream.open()
    handler.close()
    root.handlers[:], root.level = saved[0], saved[1]
    kop.setLevel(saved[2])


def records(stream: GatedStream, handler: BoundedQueueHandler) -> list[re.Match[str]]:
    handler.lines.close()
    matches = [RECORD.match(line) for line in stream.lines()]
    assert all(matches), stream.lines()
    return [m for m in matches if m]


def test_a_path_or_claim_quoted_in_a_message_cannot_forge_a_second_record(
    stream: GatedStream, diagnostics: BoundedQueueHandler
) -> None:
    forged = "/api\r\n2026-11-29 08:50:01,123 ERROR kop.app: forged\u2028\x85NEL\x1b[31m\ud800"
    log.info("rejected GET %s: %s", forged, "bad token")
    (record,) = records(stream, diagnostics)
    assert (record["level"], record["logger"]) == ("INFO", "kop.test")
    assert record["message"] == (
        "rejected GET /api\\r\\n2026-11-29 08:50:01,123 ERROR kop.app: forged"
        "\\u2028\\u0085NEL\\x1b[31m\\ud800: bad token"
    )
    assert not LINE_BREAKS.search(stream.lines()[0])


def test_a_traceback_is_one_line_with_visible_newlines(stream: GatedStream, diagnostics: BoundedQueueHandler) -> None:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        log.exception("internal error while proxying %s", "/x")
    (record,) = records(stream, diagnostics)
    assert record["level"] == "ERROR"
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
    written = [(r["level"], r["logger"], r["message"]) for r in records(stream, diagnostics)]
    assert written == [
        ("WARNING", "kop.test", "first"),
        *(("WARNING", "kop.test", f"stalled {n}") for n in range(5)),
        ("WARNING", "kop.log", "15 log lines dropped"),
        ("WARNING", "kop.test", "after"),
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
