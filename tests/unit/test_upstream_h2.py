"""Per-stream flow control: a slow client holds back only its own watch."""

from __future__ import annotations

from typing import Any

from kube_oidc_proxy.server.upstream_h2 import H2Stream


class FakeConnection:
    def __init__(self) -> None:
        self.acks: list[tuple[int, int]] = []
        self.forgotten: list[int] = []
        self.cancelled: list[int] = []

    def ack_stream(self, stream_id: int, length: int) -> None:
        self.acks.append((stream_id, length))

    def forget(self, stream_id: int) -> None:
        self.forgotten.append(stream_id)

    def cancel(self, stream_id: int) -> None:
        self.cancelled.append(stream_id)


def stream(conn: FakeConnection) -> H2Stream:
    fake: Any = conn
    return H2Stream(fake, 3, sink=fake)


def test_data_is_acknowledged_while_the_client_keeps_up() -> None:
    conn = FakeConnection()
    s = stream(conn)
    s.data(100)
    s.data(0)
    assert conn.acks == [(3, 100)]


def test_a_paused_client_holds_back_the_window_until_it_resumes() -> None:
    conn = FakeConnection()
    s = stream(conn)
    s.pause_reading()
    s.data(100)
    s.data(50)
    assert conn.acks == []
    s.resume_reading()
    assert conn.acks == [(3, 150)]
    s.resume_reading()
    assert conn.acks == [(3, 150)]


def test_closing_cancels_once_and_finishing_forgets() -> None:
    conn = FakeConnection()
    s = stream(conn)
    s.close()
    s.close()
    assert conn.cancelled == [3] and s.sink is None
    other = stream(conn)
    other.finished()
    assert conn.forgotten == [3] and conn.cancelled == [3]
