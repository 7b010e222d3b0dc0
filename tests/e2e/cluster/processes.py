"""Starting and stopping the cluster's processes, each with its log file, and waiting for them."""

from __future__ import annotations

import contextlib
import os
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path


class Process:
    def __init__(
        self, name: str, args: list[str], logs: Path, env: dict[str, str] | None = None, stop_timeout: float = 10
    ) -> None:
        self.name = name
        self.stop_timeout = stop_timeout
        self.log_path = logs / f"{name}.log"
        self._args = args
        self._env = {**os.environ, **(env or {})}
        self.popen = self._spawn("wb")

    def _spawn(self, mode: str) -> subprocess.Popen[bytes]:
        with self.log_path.open(mode) as log:
            return subprocess.Popen(
                self._args, stdout=log, stderr=subprocess.STDOUT, env=self._env, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self, sig: signal.Signals) -> bool:
        """Send ``sig`` to the process group and wait for it to end, with SIGKILL after ``stop_timeout``
        (as the kubelet does after a grace period); False if it took that SIGKILL."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
            return False
        return True

    def start_again(self) -> None:
        """The same command once more (after ``kill``), its output appended to the same log."""
        assert not self.alive(), f"{self.name} is still running"
        self.popen = self._spawn("ab")

    def stop(self) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(self.stop_timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


def wait_until(what: str, check: Callable[[], bool], timeout: float, process: Process | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and not process.alive():
            raise RuntimeError(f"{what}: {process.name} exited\n{process.log_tail()}")
        try:
            if check():
                return
        except (OSError, urllib.error.URLError, ssl.SSLError):
            pass
        time.sleep(0.1)
    tail = f"\n{process.log_tail()}" if process is not None else ""
    raise RuntimeError(f"{what}: not ready after {timeout:.0f}s{tail}")


def https_ok(url: str, ca_file: Path) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(url, context=ctx, timeout=2) as response:
        return bool(response.status == 200)
