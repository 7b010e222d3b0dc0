"""Steady client traffic through the proxy during a drill: several clients, each on its own kept-open
connection, sending GETs in a loop and counting every answer that is not 200 (and every broken
connection) as a failure a user would have seen."""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PACE_SECONDS = 0.05  # between one client's requests: steady, without starving a 2-core machine


@dataclass
class SteadyLoad:
    port: int
    ca_file: Path
    token: str
    path: str = "/api/v1/namespaces/e2e/pods"
    clients: int = 3
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    connections: int = 0  # connections opened: more than ``clients`` means some were lost
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> SteadyLoad:
        for n in range(self.clients):
            thread = threading.Thread(target=self._client, name=f"steady-load-{n}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def wait_for_successes(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.ok < count:
            assert time.monotonic() < deadline, f"only {self.ok} requests succeeded; failures: {self.failures[:5]}"
            assert not self.failures, self.failures[:5]
            time.sleep(0.05)

    def _client(self) -> None:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        connection: http.client.HTTPSConnection | None = None
        while not self._stop.is_set():
            if connection is None:
                connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=60)
                with self._lock:
                    self.connections += 1
            try:
                connection.request("GET", self.path, headers={"Authorization": f"Bearer {self.token}"})
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = None
                continue
            with self._lock:
                if response.status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {response.status}: {body[:200]!r}")
            if response.will_close:
                connection.close()
                connection = None
            self._stop.wait(PACE_SECONDS)
        if connection is not None:
            connection.close()
