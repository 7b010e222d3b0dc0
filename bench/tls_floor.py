"""The memory floor of an idle TLS connection in this stack (CPython ssl / OpenSSL 3 / uvloop).

A server that does nothing but accept TLS connections and answer one request head, holding N of them
open (bench/loadgen watches mode), reports its RSS per connection. Whatever the proxy adds per idle watch
is on top of this.

    .venv/bin/python bench/tls_floor.py [N]
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import cast

import trustme
import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402

from bench.run import build, rss_mb  # noqa: E402


class Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


async def main(n: int) -> None:
    certs = issue(trustme.CA(), Path(tempfile.mkdtemp(prefix="kop-floor-")), "floor")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certs.cert, certs.key)
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, ssl=ctx)
    port = server.sockets[0].getsockname()[1]
    before = rss_mb(os.getpid())
    holder = await asyncio.create_subprocess_exec(
        str(build("loadgen")), "-mode", "watches", "-n", str(n), "-url", f"https://localhost:{port}/",
        "-ca", certs.ca, "-token", "x", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdin is not None
    print((await holder.stdout.readline()).decode().strip())
    await asyncio.sleep(1)
    after = rss_mb(os.getpid())
    print(f"{n} idle TLS connections: {after - before:.0f} MB, {(after - before) * 1024 / n:.1f} KB each")
    holder.stdin.write(b"\n")
    await holder.wait()


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000))
