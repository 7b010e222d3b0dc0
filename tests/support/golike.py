"""TLS peers that end a stream the way Go's crypto/tls does (kube-apiserver, kubelet, kubectl): the last
bytes, a close_notify and a TCP FIN together, without waiting for the other side's close_notify.

A blocking socket and ``ssl.MemoryBIO`` give that exact order, which asyncio's own TLS close (it waits
for the peer) does not.

- ``SendAndCloseUpstream``: after the 101, ``stream_bytes(n)`` as fast as the proxy takes them, then the close.
- ``SlowSwitchUpstream``: the 101 only after a delay; it starts reading after another, then keeps every byte
  until the proxy closes.
- ``send_and_close``: a client that sends a request, later more bytes and the close together.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable

from tests.support.certs import CertFiles

SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n"


def stream_bytes(n: int) -> bytes:
    """n bytes that differ everywhere, so a lost or repeated piece shows."""
    return hashlib.shake_256(b"kube-oidc-proxy").digest(n)


class GoTls:
    """TLS over a blocking socket: full control over when each record and the FIN go out."""

    def __init__(self, sock: socket.socket, ctx: ssl.SSLContext, *, server_hostname: str | None = None) -> None:
        self.sock = sock
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        server_side = server_hostname is None
        self._tls = ctx.wrap_bio(self._incoming, self._outgoing, server_side, server_hostname)
        self._until_done(self._tls.do_handshake)

    def read_head(self) -> bytes:
        head = b""
        while b"\r\n\r\n" not in head:
            head += self._until_done(lambda: self._tls.read(65536))
        return head

    def send(self, data: bytes) -> None:
        for start in range(0, len(data), 256 * 1024):
            self._tls.write(data[start : start + 256 * 1024])
            self._flush()

    def recv(self) -> bytes:
        """Application bytes, or b"" once the peer has closed (with or without close_notify)."""
        try:
            return self._until_done(lambda: self._tls.read(65536))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            return b""

    def close_like_go(self) -> None:
        with contextlib.suppress(ssl.SSLWantReadError):
            self._tls.unwrap()  # queues close_notify; the peer's answer is not awaited
        self._flush()
        self.sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            while self.sock.recv(65536):  # until the proxy closes, so our close is a FIN, not a RST
                pass

    def _flush(self) -> None:
        self.sock.sendall(self._outgoing.read())

    def _until_done(self, step: Callable[[], object]) -> bytes:
        while True:
            try:
                result = step()
                self._flush()
                return result if isinstance(result, bytes) else b""
            except ssl.SSLWantReadError:
                self._flush()
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError("the peer closed") from None
                self._incoming.write(data)


class _Server:
    """Serves each connection's one request in a thread of its own."""

    def __init__(self, certs: CertFiles) -> None:
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ctx.load_cert_chain(certs.cert, certs.key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}"
        self.errors: list[BaseException] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock: socket.socket) -> None:
        sock.settimeout(30)
        try:
            tls = GoTls(sock, self._ctx)
            tls.read_head()
            self.answer(tls)
        except (OSError, ssl.SSLError) as exc:
            self.errors.append(exc)
        finally:
            sock.close()

    def answer(self, tls: GoTls) -> None:
        raise NotImplementedError


class SendAndCloseUpstream(_Server):
    def __init__(self, certs: CertFiles, size: int) -> None:
        self._payload = stream_bytes(size)
        super().__init__(certs)

    def answer(self, tls: GoTls) -> None:
        tls.send(SWITCHING + self._payload)
        tls.close_like_go()


class SlowSwitchUpstream(_Server):
    def __init__(self, certs: CertFiles, delay: float, read_after: float = 0.0) -> None:
        self._delay = delay
        self._read_after = read_after
        self.received = bytearray()
        self.done = threading.Event()
        super().__init__(certs)

    def answer(self, tls: GoTls) -> None:
        time.sleep(self._delay)
        tls.send(SWITCHING)
        time.sleep(self._read_after)
        while data := tls.recv():
            self.received += data
        self.done.set()


def send_and_close(port: int, ca_file: str, request: bytes, later: bytes, after: float) -> None:
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        tls = GoTls(sock, ctx, server_hostname="localhost")
        tls.send(request)
        time.sleep(after)
        tls.send(later)
        tls.close_like_go()
