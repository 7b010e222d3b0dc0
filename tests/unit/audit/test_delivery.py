"""Audit delivery: blocking mode's group commit and batch mode's buffer, with an in-memory sink."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kube_oidc_proxy.audit.auditor import AuditFailed, Auditor, Mode
from kube_oidc_proxy.audit.backends import Batcher, BatchSettings, LogFile, SinkError, Webhook, WebhookTarget
from kube_oidc_proxy.audit.event import AuditRecord, user_info
from kube_oidc_proxy.audit.groupcommit import FailureHandler, GroupCommit
from kube_oidc_proxy.audit.policy import Decision, parse_policy
from kube_oidc_proxy.authn.model import UserInfo


class MemorySink:
    name = "memory"

    def __init__(self, *, fail: bool = False, delay: float = 0.0) -> None:
        self.writes: list[list[bytes]] = []
        self.flushes = 0
        self.fail = fail
        self.delay = delay
        self.lock = threading.Lock()
        self.started = threading.Event()  # a write has begun

    def write(self, events: list[bytes]) -> None:
        self.started.set()
        time.sleep(self.delay)
        if self.fail:
            raise OSError(28, "No space left on device")
        with self.lock:
            self.writes.append(list(events))

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        pass

    @property
    def lines(self) -> list[bytes]:
        with self.lock:
            return [line for write in self.writes for line in write]


Failures = list[tuple[str, int]]


def recorder() -> tuple[Failures, FailureHandler]:
    failures: Failures = []
    return failures, lambda backend, error, count: failures.append((backend, count))


async def test_events_of_one_loop_turn_share_one_write_and_each_waits_for_it() -> None:
    sink = MemorySink()
    failures, on_failure = recorder()
    group = GroupCommit(sink, on_failure, in_thread=False)
    written = [group.add(f"e{i}\n".encode()) for i in range(5)]
    assert sink.writes == []  # nothing is written before the turn ends ...
    assert all(not w.done() for w in written)  # ... and nobody has been let through
    assert await asyncio.gather(*written) == [True] * 5
    assert sink.writes == [[b"e0\n", b"e1\n", b"e2\n", b"e3\n", b"e4\n"]] and sink.flushes == 1
    later = group.add(b"e5\n")
    assert await later and len(sink.writes) == 2
    assert failures == []


@pytest.mark.parametrize("in_thread", [False, True])
async def test_a_failed_write_lets_requests_go_on_and_is_counted(in_thread: bool) -> None:
    failures, on_failure = recorder()
    group = GroupCommit(MemorySink(fail=True), on_failure, in_thread=in_thread)
    assert list(await asyncio.gather(group.add(b"a\n"), group.add(b"b\n"))) == [False, False]
    assert failures == [("memory", 2)]


def _auditor(sink: MemorySink, mode: Mode) -> Auditor:
    auditor = Auditor(parse_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n"), [])
    auditor.add_output(sink, format="json", mode=mode, batch=BatchSettings())
    return auditor


def _record() -> AuditRecord:
    return AuditRecord(Decision("Metadata"), "id", "/api", "get", user_info(UserInfo("alice")), ["127.0.0.1"], "", 0.0)


async def test_blocking_strict_fails_the_request_when_request_received_is_lost() -> None:
    auditor = _auditor(MemorySink(fail=True), "blocking-strict")
    wait = auditor.emit(_record(), "RequestReceived")
    assert wait is not None
    with pytest.raises(AuditFailed):
        await wait
    later = auditor.emit(_record(), "ResponseComplete")  # later stages are only counted, as in kube-apiserver
    assert later is not None and await later is False
    assert auditor.failed == {"memory": 2}


async def test_blocking_lets_the_request_go_on_when_the_write_fails() -> None:
    auditor = _auditor(MemorySink(fail=True), "blocking")
    wait = auditor.emit(_record(), "RequestReceived")
    assert wait is not None and await wait is False
    assert auditor.failed == {"memory": 1}


def _batcher(sink: MemorySink, settings: BatchSettings) -> tuple[Batcher, list[str], Failures]:
    dropped: list[str] = []
    failures, on_failure = recorder()
    return Batcher(sink, settings, dropped.append, on_failure), dropped, failures


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_batches_hold_at_most_max_size_events_and_the_caller_never_waits() -> None:
    sink = MemorySink(delay=0.05)
    batcher, dropped, _ = _batcher(sink, BatchSettings(buffer_size=100, max_size=3, max_wait=0.0))
    started = time.monotonic()
    for i in range(10):
        batcher.add(f"e{i}\n".encode())
    assert time.monotonic() - started < 0.05
    wait_until(lambda: len(sink.lines) == 10)
    batcher.close()
    assert sink.lines == [f"e{i}\n".encode() for i in range(10)]  # in order
    assert max(len(w) for w in sink.writes) <= 3 and dropped == []


def test_a_small_batch_waits_up_to_max_wait_for_more() -> None:
    sink = MemorySink()
    batcher, _, _ = _batcher(sink, BatchSettings(buffer_size=100, max_size=10, max_wait=0.5))
    batcher.add(b"first\n")
    time.sleep(0.2)
    assert sink.writes == []  # not full, not old enough
    batcher.add(b"second\n")
    wait_until(lambda: sink.writes != [])
    batcher.close()
    assert sink.writes == [[b"first\n", b"second\n"]]


def test_a_full_buffer_drops_and_counts() -> None:
    sink = MemorySink(delay=0.5)
    batcher, dropped, _ = _batcher(sink, BatchSettings(buffer_size=2, max_size=1, max_wait=0.0))
    batcher.add(b"taken\n")
    assert sink.started.wait(5)  # the thread took it and is writing it, slowly
    for i in range(5):
        batcher.add(f"e{i}\n".encode())
    assert dropped == ["memory"] * 3
    batcher.close()
    assert sink.lines == [b"taken\n", b"e0\n", b"e1\n"]


def test_the_thread_outlives_a_failing_sink_and_close_sends_the_rest() -> None:
    sink = MemorySink(fail=True)
    batcher, _, failures = _batcher(sink, BatchSettings(buffer_size=100, max_size=5, max_wait=0.0))
    batcher.add(b"lost\n")
    wait_until(lambda: failures != [])
    sink.fail = False
    batcher.add(b"kept\n")
    batcher.close()
    assert failures == [("memory", 1)]
    assert sink.lines == [b"kept\n"]


async def test_an_oversized_event_loses_its_objects_and_one_still_too_large_is_dropped() -> None:
    sink = MemorySink()
    auditor = Auditor(parse_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Request}]\n"), [])
    auditor.add_output(sink, format="json", mode="blocking", batch=BatchSettings(), max_event_size=1000)
    big = _record()
    big.decision = Decision("Request")
    big.request_body = bytearray(b'{"data":"' + b"x" * 5000 + b'"}')
    huge = _record()
    huge.request_uri = "/api?" + "y" * 5000
    for record in (big, huge):
        wait = auditor.emit(record, "ResponseComplete")
        if wait is not None:
            await wait
    (line,) = sink.lines
    event = json.loads(line)
    assert "requestObject" not in event and event["annotations"] == {"audit.k8s.io/truncated": "true"}
    assert auditor.dropped == {"memory": 1}


def test_webhook_batches_are_split_at_the_byte_limit() -> None:
    bodies: list[bytes] = []

    class Recording(Webhook):
        def _post(self, body: bytes) -> int:
            bodies.append(body)
            return 200

    hook = Recording(WebhookTarget("http://sink.invalid/", None), max_batch_bytes=250)
    hook.write([json.dumps({"n": i, "pad": "p" * 80}).encode() + b"\n" for i in range(5)])
    lists = [json.loads(body) for body in bodies]
    assert [[item["n"] for item in body["items"]] for body in lists] == [[0, 1], [2, 3], [4]]
    assert all(body["kind"] == "EventList" for body in lists)


def test_a_webhook_that_gives_up_names_its_url_without_secrets_and_the_last_error() -> None:
    class Refused(Webhook):
        def _post(self, body: bytes) -> int:
            raise ConnectionRefusedError(111, "Connection refused")

    hook = Refused(WebhookTarget("https://audit:s3cret@sink.example:8443/events?key=hunter2", None), initial_backoff=0)
    with pytest.raises(SinkError) as failure:
        hook.write([b'{"kind":"Event"}\n'])
    assert str(failure.value) == (
        "POST https://sink.example:8443/events: 5 attempts failed, the last with "
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )


def _log_auditor(path: Path, mode: Mode) -> Auditor:
    auditor = Auditor(parse_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n"), [])
    auditor.add_output(LogFile(str(path)), format="json", mode=mode, batch=BatchSettings())
    return auditor


def _stages(path: Path) -> list[tuple[str, str]]:
    return [(e["auditID"], e["stage"]) for e in map(json.loads, path.read_bytes().splitlines())]


async def test_blocking_log_writes_a_loop_turns_events_in_one_write_and_waits_only_for_request_received(
    tmp_path: Path,
) -> None:
    path = tmp_path / "audit.log"
    auditor = _log_auditor(path, "blocking")
    first, second = _record(), _record()
    second.audit_id = "id-2"
    received = auditor.emit(first, "RequestReceived")
    assert isinstance(received, asyncio.Future) and not received.done()  # the request waits ...
    assert auditor.emit(second, "RequestReceived") is received  # ... for the write it shares with others
    assert auditor.emit(first, "ResponseComplete") is None  # a later stage is written, not waited for
    assert path.read_bytes() == b""  # nothing before the loop turn ends
    assert await received is True
    assert _stages(path) == [("id", "RequestReceived"), ("id-2", "RequestReceived"), ("id", "ResponseComplete")]
    assert auditor.emit(second, "ResponseComplete") is None
    auditor.close()  # what is queued is written on close, without another loop turn
    assert _stages(path)[-1] == ("id-2", "ResponseComplete")


async def test_blocking_strict_log_fails_the_request_when_request_received_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    auditor = _log_auditor(path, "blocking-strict")
    log = auditor.outputs[0].sink
    assert isinstance(log, LogFile)
    log._file.close()  # every write fails from now on
    wait = auditor.emit(_record(), "RequestReceived")
    assert wait is not None
    with pytest.raises(AuditFailed):
        await wait
    assert auditor.emit(_record(), "ResponseComplete") is None  # later stages are only counted
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert auditor.failed == {"log": 2}
