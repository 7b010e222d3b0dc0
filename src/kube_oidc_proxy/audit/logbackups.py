"""The rotated backups of an audit log file: named, compressed and pruned as lumberjack (kube-apiserver's
log rotation) does, with the slow part in one background thread, never on the event loop.

Rotating is a rename and an open, cheap enough for the writer's path (``LogFile.write``, on the event loop
in blocking mode). Everything that reads a whole backup (gzip) or scans the directory (pruning) runs in a
pass of ``BackupKeeper``'s thread:

- One pass at a time. A rotation while a pass runs queues one more pass; further requests fold into that
  one, as lumberjack's channel of one does. Folding loses nothing: a pass looks at the directory and
  handles every backup it finds, so a backup renamed while an earlier pass was compressing is compressed
  by the next, in the order they were rotated. The queue is bounded (one pass) whatever the rotation rate.
- A pass is lumberjack's ``millRunOnce``: backups are ``<name>-<UTC time>.<ext>`` (``.gz`` when
  compressed), dated by the time in their name; beyond the newest ``max_backups`` they are removed (a
  backup whose plain and compressed files both exist, mid-compression, counts once), then those older than
  ``max_age``, then what is left uncompressed is compressed, oldest first.
- A compressed file is written under a temporary name and renamed when complete, so a ``.gz`` is never
  half-written (a pass cut by a crash is redone by the next); then the plain file is removed.
- The thread runs at a lower CPU priority, so on a busy core the event loop wins; ``close`` waits for the
  running pass and the queued one.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

log = logging.getLogger("kop.audit")

TIME_FORMAT: Final = "%Y-%m-%dT%H-%M-%S.%f"  # lumberjack's "2006-01-02T15-04-05.000", milliseconds
COMPRESSED_SUFFIX: Final = ".gz"
PARTIAL_SUFFIX: Final = ".partial"  # a .gz being written; never matches a backup's name
GZIP_LEVEL: Final = 6  # Go's gzip.DefaultCompression, lumberjack's level (Python's default 9 is ~2x slower)
COPY_CHUNK_BYTES: Final = 1024 * 1024  # few GIL hand-overs: zlib and file IO release it for a whole chunk
BACKGROUND_NICENESS: Final = 10  # CPU weight ~10% of the event loop's when both want the same core

Compressor = Callable[[Path, Path], None]


def backup_path(log_path: str, now: datetime.datetime) -> str:
    """Where a full ``log_path`` is renamed at ``now``: ``<name>-<UTC time>.<ext>``. A name already taken
    (two rotations within a millisecond) moves on by a millisecond instead of replacing a backup."""
    base, ext = os.path.splitext(log_path)
    moment = now.astimezone(datetime.UTC)
    while True:
        path = f"{base}-{moment.strftime(TIME_FORMAT)[:-3]}{ext}"
        if not os.path.exists(path) and not os.path.exists(path + COMPRESSED_SUFFIX):
            return path
        moment += datetime.timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    rotated_at: float  # unix time, from the name
    compressed: bool

    @property
    def plain_name(self) -> str:
        """The name without ``.gz``: a backup's plain and compressed files share it."""
        return self.path.name.removesuffix(COMPRESSED_SUFFIX) if self.compressed else self.path.name


@dataclass(frozen=True, slots=True)
class Plan:
    remove: list[Path]
    compress: list[Path]  # oldest first


def find_backups(log_path: str) -> list[Backup]:
    """The backups of ``log_path`` in its directory, newest first; other files are not ours."""
    directory = Path(log_path).parent
    base, ext = os.path.splitext(Path(log_path).name)
    prefix = base + "-"
    found: list[Backup] = []
    for entry in directory.iterdir():
        name = entry.name
        compressed = name.endswith(ext + COMPRESSED_SUFFIX)
        suffix = ext + COMPRESSED_SUFFIX if compressed else ext
        if not name.startswith(prefix) or not name.endswith(suffix) or len(name) <= len(prefix) + len(suffix):
            continue
        stamp = name[len(prefix) : len(name) - len(suffix)]
        try:
            rotated = datetime.datetime.strptime(stamp, TIME_FORMAT).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue  # not a time lumberjack wrote: someone else's file
        found.append(Backup(entry, rotated.timestamp(), compressed))
    found.sort(key=lambda b: b.rotated_at, reverse=True)
    return found


def plan(backups: list[Backup], *, now: float, max_backups: int, max_age_seconds: float, compress: bool) -> Plan:
    """lumberjack's decisions over ``backups`` (newest first); 0 means no limit."""
    remove: list[Path] = []
    kept = backups
    if max_backups > 0:
        counted: set[str] = set()
        kept = []
        for backup in backups:
            counted.add(backup.plain_name)
            if len(counted) > max_backups:
                remove.append(backup.path)
            else:
                kept.append(backup)
    if max_age_seconds > 0:
        remove += [b.path for b in kept if b.rotated_at < now - max_age_seconds]
        kept = [b for b in kept if b.rotated_at >= now - max_age_seconds]
    to_compress = [b.path for b in reversed(kept) if not b.compressed] if compress else []
    return Plan(remove, to_compress)


def gzip_file(source: Path, target: Path) -> None:
    """``source`` compressed into ``target``, which appears only when complete."""
    partial = target.with_name(target.name + PARTIAL_SUFFIX)
    try:
        with source.open("rb") as src, gzip.open(partial, "wb", compresslevel=GZIP_LEVEL) as dst:
            shutil.copyfileobj(src, dst, COPY_CHUNK_BYTES)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class BackupKeeper:
    """Compresses and prunes the backups of one log file, one pass at a time, in a background thread."""

    def __init__(
        self,
        log_path: str,
        *,
        max_backups: int = 0,
        max_age_days: int = 0,
        compress: bool = False,
        compressor: Compressor = gzip_file,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log_path = log_path
        self._max_backups = max_backups
        self._max_age_seconds = max_age_days * 86400.0
        self._compress = compress
        self._compressor = compressor
        self._clock = clock
        self._changed = threading.Condition()
        self._queued = False  # a pass is wanted after the running one (at most one: requests fold)
        self._running = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self.passes = 0  # completed, for tests and the curious

    @property
    def has_work(self) -> bool:
        """False when no flag asks for anything: rotation then needs no pass at all."""
        return bool(self._max_backups or self._max_age_seconds or self._compress)

    @property
    def closing(self) -> bool:
        return self._closing

    def request(self) -> None:
        """Ask for a pass (after a rotation); returns at once."""
        if not self.has_work:
            return
        with self._changed:
            if self._closing:
                return
            self._queued = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-log-backups", daemon=True)
                self._thread.start()
            self._changed.notify_all()  # the thread and any wait_idle callers

    def close(self) -> None:
        """Finish the running pass and the queued one, then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()  # the thread and any wait_idle callers
            thread = self._thread
        if thread is not None:
            thread.join()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no pass runs or waits; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(lambda: not (self._queued or self._running), timeout)

    def _run(self) -> None:
        _lower_own_priority()
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queued or self._closing)
                if not self._queued:
                    return  # closing, nothing left to do
                self._queued, self._running = False, True
            try:
                self.run_pass()
            except Exception as exc:  # a full disk or a vanished directory must not end the thread
                log.error(  # noqa: TRY400 - an OSError names itself; no traceback needed
                    "audit log %s: compressing or removing rotated files failed: %s: %s",
                    self.log_path,
                    type(exc).__name__,
                    exc,
                )
            finally:
                with self._changed:
                    self._running = False
                    self.passes += 1
                    self._changed.notify_all()

    def run_pass(self) -> None:
        """One pass, in the calling thread: remove what the limits exclude, compress the rest."""
        decided = plan(
            find_backups(self.log_path),
            now=self._clock(),
            max_backups=self._max_backups,
            max_age_seconds=self._max_age_seconds,
            compress=self._compress,
        )
        for path in decided.remove:
            path.unlink(missing_ok=True)
        for path in decided.compress:
            self._compressor(path, path.with_name(path.name + COMPRESSED_SUFFIX))
            path.unlink(missing_ok=True)


def _lower_own_priority() -> None:
    """On Linux a thread has its own nice value (``setpriority`` on its thread id); elsewhere, no-op."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS))
