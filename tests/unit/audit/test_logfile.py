"""The audit log file's rotation: the writer only renames; compression and pruning happen in the background
thread, one pass at a time, with lumberjack's rules for which backups stay."""

from __future__ import annotations

import asyncio
import datetime
import gzip
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from kube_oidc_proxy.audit.auditor import Auditor
from kube_oidc_proxy.audit.backends import BatchSettings, LogFile
from kube_oidc_proxy.audit.event import AuditRecord, user_info
from kube_oidc_proxy.audit.logbackups import Backup, BackupKeeper, backup_path, find_backups, gzip_file, plan
from kube_oidc_proxy.audit.policy import Decision, parse_policy
from kube_oidc_proxy.authn.model import UserInfo

MIB = 1024 * 1024
DAY = 86400.0
NOW = datetime.datetime(2026, 3, 10, 12, 0, 0, tzinfo=datetime.UTC)


class HeldCompressor:
    """Compresses only once the test releases it; tells when it has started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.finished = threading.Event()
        self.threads: list[str] = []

    def __call__(self, source: Path, target: Path) -> None:
        self.threads.append(threading.current_thread().name)
        self.started.set()
        self.release.wait(10)  # bounded: a test that forgets to release fails instead of hanging
        gzip_file(source, target)
        self.finished.set()


def fill(log: LogFile, size: int, tag: bytes = b"x") -> bytes:
    line = tag * 1023 + b"\n"
    data = line * (size // len(line))
    log.write([data])
    log.flush()
    return data


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_write_that_rotates_returns_while_the_old_file_is_still_being_compressed(tmp_path: Path) -> None:
    compressor = HeldCompressor()
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True, compressor=compressor)
    first = fill(log, MIB)
    log.write([b"second\n"])  # over the limit: rename, reopen, and back to the caller
    log.flush()
    assert compressor.started.wait(5)  # the compression has begun, elsewhere, and is held ...
    assert compressor.threads == ["audit-log-backups"]
    (backup,) = [p for p in tmp_path.iterdir() if p.name != "audit.log"]
    assert backup.name.endswith(".log") and backup.read_bytes() == first  # ... so nothing is compressed yet
    log.write([b"third\n"])  # the writer goes on meanwhile
    log.flush()
    assert (tmp_path / "audit.log").read_bytes() == b"second\nthird\n"
    compressor.release.set()
    assert log.backups.wait_idle(5)
    assert names(tmp_path) == sorted(["audit.log", backup.name + ".gz"])
    with gzip.open(tmp_path / (backup.name + ".gz")) as f:
        assert f.read() == first
    log.close()


async def test_a_blocking_mode_request_waits_for_its_event_but_not_for_the_compression(tmp_path: Path) -> None:
    compressor = HeldCompressor()
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True, compressor=compressor)
    fill(log, MIB)  # full: the next event rotates it
    auditor = Auditor(parse_policy("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Metadata}]\n"), [])
    auditor.add_output(log, format="json", mode="blocking", batch=BatchSettings())
    record = AuditRecord(Decision("Metadata"), "id-1", "/api", "get", user_info(UserInfo("a")), ["127.0.0.1"], "", 0.0)
    written = auditor.emit(record, "RequestReceived")
    assert written is not None
    assert await asyncio.wait_for(written, 5) is True  # written to the new file, on the loop ...
    assert not compressor.finished.is_set()  # ... while the old one waits to be compressed
    assert b'"auditID":"id-1"' in (tmp_path / "audit.log").read_bytes()
    assert compressor.started.wait(5)
    assert compressor.threads == ["audit-log-backups"]
    compressor.release.set()
    await asyncio.to_thread(auditor.close)
    assert [p.name.endswith(".log.gz") for p in tmp_path.iterdir() if p.name != "audit.log"] == [True]


def test_rotations_during_a_compression_queue_one_more_pass_that_compresses_them_all(tmp_path: Path) -> None:
    compressor = HeldCompressor()
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True, compressor=compressor)
    contents = []
    for i in range(5):  # five rotations; the first pass is held while the other four happen
        contents.append(fill(log, MIB, tag=b"%d" % i))
        if i == 1:
            assert compressor.started.wait(5)
    compressor.release.set()
    assert log.backups.wait_idle(10)
    assert log.backups.passes == 2  # the held pass and one queued: the other requests folded into it
    backups = sorted(p for p in tmp_path.iterdir() if p.name != "audit.log")
    assert [p.suffix for p in backups] == [".gz"] * 4
    assert [gzip.decompress(p.read_bytes()) for p in backups] == contents[:4]  # in rotation order, none lost
    log.close()


def test_close_waits_for_a_running_compression(tmp_path: Path) -> None:
    compressor = HeldCompressor()
    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True, compressor=compressor)
    fill(log, MIB)
    fill(log, MIB)
    assert compressor.started.wait(5)
    closer = threading.Thread(target=log.close)
    closer.start()
    wait_until(lambda: log.backups.closing)
    assert closer.is_alive()  # held by the compression
    compressor.release.set()
    closer.join(5)
    assert not closer.is_alive()
    assert [p.name.endswith(".log.gz") for p in tmp_path.iterdir() if p.name != "audit.log"] == [True]


def test_a_failed_pass_is_logged_and_the_next_rotation_tries_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = True

    def compressor(source: Path, target: Path) -> None:
        if failing:
            raise OSError(28, "No space left on device")
        gzip_file(source, target)

    log = LogFile(str(tmp_path / "audit.log"), max_size_mb=1, compress=True, compressor=compressor)
    fill(log, MIB)
    fill(log, MIB)
    assert log.backups.wait_idle(5)
    assert "compressing or removing rotated files failed: OSError: [Errno 28] No space left on device" in caplog.text
    failing = False
    fill(log, MIB)
    assert log.backups.wait_idle(5)
    log.close()
    assert sorted(p.suffix for p in tmp_path.iterdir() if p.name != "audit.log") == [".gz", ".gz"]


def test_two_rotations_within_a_millisecond_keep_both_backups(tmp_path: Path) -> None:
    path = str(tmp_path / "audit.log")
    first = backup_path(path, NOW)
    Path(first).write_text("first")
    second = backup_path(path, NOW)
    assert first.endswith("audit-2026-03-10T12-00-00.000.log")
    assert second.endswith("audit-2026-03-10T12-00-00.001.log")


def _backup(tmp_path: Path, days_ago: float, *, compressed: bool = False) -> Path:
    name = f"audit-{(NOW - datetime.timedelta(days=days_ago)).strftime('%Y-%m-%dT%H-%M-%S.%f')[:-3]}.log"
    path = tmp_path / (name + ".gz" if compressed else name)
    path.write_bytes(gzip.compress(b"old\n") if compressed else b"old\n")
    return path


def _keeper(tmp_path: Path, *, max_backups: int = 0, max_age_days: int = 0, compress: bool = False) -> BackupKeeper:
    return BackupKeeper(
        str(tmp_path / "audit.log"),
        max_backups=max_backups,
        max_age_days=max_age_days,
        compress=compress,
        clock=NOW.timestamp,
    )


def test_max_backups_counts_compressed_backups_and_one_mid_compression_once(tmp_path: Path) -> None:
    (tmp_path / "audit.log").write_bytes(b"live\n")
    newest = _backup(tmp_path, 1)  # not compressed yet
    mid = _backup(tmp_path, 2)  # compressed, but its plain file is still there (a pass was cut short)
    mid_gz = _backup(tmp_path, 2, compressed=True)
    third = _backup(tmp_path, 3, compressed=True)
    oldest = _backup(tmp_path, 4, compressed=True)
    (tmp_path / "audit-notes.log").write_text("not a backup: no time in its name")
    _keeper(tmp_path, max_backups=3, compress=True).run_pass()
    assert names(tmp_path) == sorted(["audit.log", "audit-notes.log", newest.name + ".gz", mid_gz.name, third.name])
    assert not mid.exists() and not oldest.exists()


def test_max_age_removes_backups_older_than_the_time_in_their_name(tmp_path: Path) -> None:
    young, young_gz = _backup(tmp_path, 6.9), _backup(tmp_path, 5, compressed=True)
    _backup(tmp_path, 7.1)
    _backup(tmp_path, 30, compressed=True)
    _keeper(tmp_path, max_age_days=7).run_pass()
    assert names(tmp_path) == sorted([young.name, young_gz.name])  # not compressed: not asked to


@pytest.mark.parametrize(
    ("limits", "removed", "compressed"),
    [
        pytest.param({}, [], [], id="no-limits-nothing-happens"),
        pytest.param({"compress": True}, [], ["d3", "d1"], id="compress-oldest-first"),
        pytest.param({"max_backups": 2}, ["d3", "d4gz"], [], id="keep-the-newest"),
        pytest.param({"max_backups": 2, "compress": True}, ["d3", "d4gz"], ["d1"], id="removed-not-compressed"),
        pytest.param({"max_age_days": 2}, ["d3", "d4gz"], [], id="older-than-max-age"),
        pytest.param({"max_backups": 3, "max_age_days": 2}, ["d4gz", "d3"], [], id="count-then-age"),
    ],
)
def test_which_backups_a_pass_removes_and_compresses(
    limits: dict[str, int], removed: list[str], compressed: list[str]
) -> None:
    backups = {
        "d1": Backup(Path("a-1.log"), NOW.timestamp() - 1 * DAY, compressed=False),
        "d2gz": Backup(Path("a-2.log.gz"), NOW.timestamp() - 2 * DAY + 60, compressed=True),
        "d3": Backup(Path("a-3.log"), NOW.timestamp() - 3 * DAY, compressed=False),
        "d4gz": Backup(Path("a-4.log.gz"), NOW.timestamp() - 4 * DAY, compressed=True),
    }
    by_path = {b.path: key for key, b in backups.items()}
    decided = plan(
        list(backups.values()),
        now=NOW.timestamp(),
        max_backups=int(limits.get("max_backups", 0)),
        max_age_seconds=limits.get("max_age_days", 0) * DAY,
        compress=bool(limits.get("compress", False)),
    )
    assert [by_path[p] for p in decided.remove] == removed
    assert [by_path[p] for p in decided.compress] == compressed


def test_backups_are_found_by_the_time_in_their_name_newest_first(tmp_path: Path) -> None:
    old = _backup(tmp_path, 3, compressed=True)
    new = _backup(tmp_path, 1)
    (tmp_path / "audit-2026-03-10T12-00-00.000.log.gz.partial").write_bytes(b"")  # a compression under way
    (tmp_path / "other-2026-03-10T12-00-00.000.log").write_bytes(b"")
    assert [b.path.name for b in find_backups(str(tmp_path / "audit.log"))] == [new.name, old.name]


def test_maxsize_zero_rotates_at_100_mb_as_kube_apiserver_does(tmp_path: Path) -> None:
    # kube-apiserver hands --audit-log-maxsize to lumberjack, which reads 0 as 100 MB
    path = tmp_path / "audit.log"
    path.write_bytes(b"x" * (100 * 1024 * 1024 - 10))  # an audit log just under 100 MB from an earlier run
    log = LogFile(str(path), max_size_mb=0)
    log.write([b"12345678\n"])  # 9 bytes: the file is now one byte short of 100 MB
    assert [p.name for p in tmp_path.iterdir()] == ["audit.log"]
    log.write([b"an event that does not fit\n"])
    log.close()
    assert len(list(tmp_path.iterdir())) == 2
    assert path.read_bytes() == b"an event that does not fit\n"
