"""observe.linequeue: a stalled stream costs lines, never memory; the log says how many and where."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kube_oidc_proxy.observe.linequeue import Dropped, LineQueue
from tests.support.streams import Counted, GatedStream


def dropped_line(gap: Dropped) -> str:
    return f"-- {gap.count} dropped"


@pytest.fixture
def stream() -> GatedStream:
    return GatedStream(shut=True)


@pytest.fixture
def counted() -> Counted:
    return Counted()


def make_queue(stream: GatedStream, counted: Counted, *, limit: int, chunk_lines: int = 1024) -> LineQueue:
    return LineQueue(
        stream, render=str, dropped_line=dropped_line, limit=limit, name="test-log", on_dropped=counted,
        chunk_lines=chunk_lines,
    )  # fmt: skip


@pytest.fixture
def closing() -> Iterator[list[LineQueue]]:
    queues: list[LineQueue] = []
    yield queues
    for queue in queues:
        queue.close()


def stall(queue: LineQueue, stream: GatedStream) -> None:
    """The writer takes the line "first" and is then stuck in write(), as on a stdout nobody reads."""
    queue.put("first")
    assert stream.entered.wait(10)


def test_beyond_the_bound_lines_are_dropped_counted_and_reported_in_their_place(
    stream: GatedStream, counted: Counted, closing: list[LineQueue]
) -> None:
    queue = make_queue(stream, counted, limit=10)
    closing.append(queue)
    stall(queue, stream)
    for n in range(25):
        queue.put(f"stalled {n}")
    assert (queue.queued, queue.dropped, counted.total) == (10, 15, 15)
    stream.open()
    stream.wait_for(lambda lines: "-- 15 dropped" in lines)
    queue.put("after")
    queue.close()
    assert stream.lines() == ["first", *(f"stalled {n}" for n in range(10)), "-- 15 dropped", "after"]


def test_the_gap_is_reported_before_the_first_line_that_finds_room(
    stream: GatedStream, counted: Counted, closing: list[LineQueue]
) -> None:
    queue = make_queue(stream, counted, limit=8, chunk_lines=2)
    closing.append(queue)
    stall(queue, stream)
    for n in range(12):
        queue.put(f"stalled {n}")
    assert (queue.queued, queue.dropped) == (8, 4)
    # Two writes go through ("first", then stalled 0-1); the writer is stuck again holding stalled 2-3,
    # with 4 lines still queued: the next line finds room while the gap is not reported yet.
    stream.allow(2)
    stream.wait_for(lambda lines: "stalled 1" in lines)
    queue.put("after")
    assert queue.queued == 6  # the 4 queued, the marker for the gap, "after"
    stream.open()
    queue.close()
    assert stream.lines() == ["first", *(f"stalled {n}" for n in range(8)), "-- 4 dropped", "after"]
    assert counted.total == 4


def test_the_queue_never_holds_more_than_its_bound(
    stream: GatedStream, counted: Counted, closing: list[LineQueue]
) -> None:
    queue = make_queue(stream, counted, limit=3, chunk_lines=1)
    closing.append(queue)
    stall(queue, stream)
    for n in range(100):
        queue.put(str(n))
        assert queue.queued <= 3
    assert queue.dropped == counted.total == 97
    stream.open()


def test_lines_a_closed_stream_refused_are_counted_and_reported_once_it_works_again(
    counted: Counted, closing: list[LineQueue]
) -> None:
    stream = GatedStream(shut=True)
    stream.refuse = 1
    queue = make_queue(stream, counted, limit=10)
    closing.append(queue)
    queue.put("lost")
    assert stream.entered.wait(10)  # the writer holds "lost"; the stream will refuse it
    queue.put("after")
    stream.open()
    queue.close()
    assert stream.lines() == ["-- 1 dropped", "after"]
    assert counted.total == 1


def test_a_line_that_cannot_be_rendered_is_reported_and_the_writer_goes_on(
    counted: Counted, closing: list[LineQueue]
) -> None:
    stream = GatedStream()

    def render(item: object) -> str:
        if item == "bad":
            raise ValueError("cannot render")
        return str(item)

    queue = LineQueue(stream, render=render, dropped_line=dropped_line, limit=10, name="t", on_dropped=counted)
    closing.append(queue)
    for item in ("a", "bad", "b"):
        queue.put(item)
    queue.close()
    assert stream.lines() == ["a", "-- 1 dropped", "b"]
    assert counted.total == 1
