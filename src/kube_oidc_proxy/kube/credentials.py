"""The bearer token the proxy sends as itself, kept fresh when it lives in a file or comes from an exec plugin.

Projected service-account tokens are rotated by the kubelet (every ~hour) and TokenRequest-based setups
rewrite the file; so the file is re-read when it changes (checked every ``check_interval``), at least
every ``max_age`` (client-go's cachingFileTokenSource re-reads every minute), and right after
kube-apiserver answers 401 to a request that carried it (at most once per ``REFRESH_AFTER_401_SECONDS``:
a flood of 401s must not run an exec plugin back to back). If the file cannot be read, the last good
token stays in use.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Final

from kube_oidc_proxy.kube.execcredential import ExecCredential

log = logging.getLogger("kop.credentials")

CHECK_INTERVAL_SECONDS: Final = 5.0
MAX_AGE_SECONDS: Final = 60.0
REFRESH_AFTER_401_SECONDS: Final = 5.0


class BearerToken:
    def __init__(
        self,
        token: str = "",
        token_file: str = "",
        *,
        clock: Callable[[], float] = time.monotonic,
        check_interval: float = CHECK_INTERVAL_SECONDS,
        max_age: float = MAX_AGE_SECONDS,
        exec_plugin: ExecCredential | None = None,
    ) -> None:
        self._exec = exec_plugin
        self._file = token_file
        self._clock = clock
        self._check_interval = check_interval
        self._max_age = max_age
        self._header: bytes | None = f"Bearer {token}".encode() if token else None
        self._stamp: tuple[int, int, int] | None = None
        self._read_at = -float("inf")
        self._checked_at = -float("inf")
        self._refreshed_after_401 = -float("inf")
        self.reads = 0
        if token_file:
            self._reload(force=True)

    def authorization(self) -> bytes | None:
        """The ``Authorization`` header value to send now, or None without a token."""
        if self._exec is not None:
            token = self._exec.token()
            if self._header is None or self._header[7:] != token.encode():
                self._header = b"Bearer " + token.encode()
            return self._header
        if self._file:
            now = self._clock()
            stale = now - self._read_at >= self._max_age
            if stale or now - self._checked_at >= self._check_interval:
                self._reload(force=stale)
        return self._header

    def unauthorized(self) -> None:
        """kube-apiserver rejected our token: re-read the file (or run the plugin) before the next request."""
        now = self._clock()
        if now - self._refreshed_after_401 < REFRESH_AFTER_401_SECONDS:
            return
        self._refreshed_after_401 = now
        if self._exec is not None:
            self._exec.schedule_refresh()
        if self._file:
            self._checked_at = self._read_at = -float("inf")

    def _reload(self, *, force: bool) -> None:
        now = self._clock()
        self._checked_at = now
        try:
            st = os.stat(self._file)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if not force and stamp == self._stamp:
                return
            with open(self._file, "rb") as f:
                token = f.read().strip()
        except OSError as exc:
            log.warning("cannot read token file %s, keeping the last token: %s", self._file, exc)
            return
        if not token or any(c < 0x21 or c == 0x7F for c in token):
            log.warning("token file %s is empty or malformed, keeping the last token", self._file)
            return
        self._header = b"Bearer " + token
        self._stamp = stamp
        self._read_at = now
        self.reads += 1
