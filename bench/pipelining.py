"""Memory of the proxy while one client pipelines requests and never reads an answer.

The proxy runs as the real command (one worker, TLS) in front of the recording kube-apiserver stand-in.
One client writes N small pipelined GETs on one TLS connection from a thread, as fast as the socket takes
them, and reads nothing, twice: requests kube-apiserver answers (a 4 KiB body each), and requests without
a token, which the proxy answers itself (a 401 Status: nothing upstream to slow it down). The proxy's
resident memory is sampled every second, with how many requests the client got written and the proxy
forwarded. Then the client reads every answer; each run ends when all N have come back, in order.

Baseline in the same run: the proxy's memory after serving the same N requests to a client that reads as
it goes. Before the bound, the unread answers piled up in the proxy's write buffer (linear in N).

    .venv/bin/python bench/pipelining.py                    # 60,000 requests, 10 s stalled
    .venv/bin/python bench/pipelining.py --requests 200000 --seconds 20
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

import trustme

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.certs import issue  # noqa: E402
from tests.support.issuer import TestIssuer  # noqa: E402
from tests.support.process import ProxyProcess, start_process  # noqa: E402
from tests.support.upstream import RecordingUpstream  # noqa: E402

from bench.run import rss_mb, say  # noqa: E402

BODY = 4096


def connect(proxy: ProxyProcess) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=proxy.ca_file)
    return context.wrap_socket(socket.create_connection(("127.0.0.1", proxy.port)), server_hostname="localhost")


def request(token: str) -> bytes:
    """With a token, kube-apiserver answers; without one (``""``), the proxy answers 401 itself."""
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    return f"GET /big/{BODY} HTTP/1.1\r\nHost: proxy\r\n{authorization}\r\n".encode()


def read_answers(tls: ssl.SSLSocket, count: int) -> None:
    """Read ``count`` Content-Length framed responses."""
    buffered = b""
    for _ in range(count):
        while b"\r\n\r\n" not in buffered:
            buffered += tls.recv(1 << 20)
        head, _, buffered = buffered.partition(b"\r\n\r\n")
        assert head.startswith((b"HTTP/1.1 200 ", b"HTTP/1.1 401 ")), head[:80]
        length = int(head.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(buffered) < length:
            buffered += tls.recv(1 << 20)
        buffered = buffered[length:]


def served_while_reading(proxy: ProxyProcess, token: str, count: int) -> float:
    """The baseline: the same requests, pipelined in batches of 100 that are read before the next."""
    with connect(proxy) as tls:
        one = request(token)
        for start in range(0, count, 100):
            batch = min(100, count - start)
            tls.sendall(one * batch)
            read_answers(tls, batch)
    return rss_mb(proxy.proc.pid)


def stalled(proxy: ProxyProcess, upstream: RecordingUpstream, token: str, count: int, seconds: float) -> None:
    tls = connect(proxy)
    sent = [0]
    one = request(token)

    def write_all() -> None:
        for start in range(0, count, 1000):
            tls.sendall(one * min(1000, count - start))
            sent[0] = min(count, start + 1000)

    before = len(upstream.requests)
    writer = threading.Thread(target=write_all, daemon=True)
    writer.start()
    samples = []
    for second in range(1, int(seconds) + 1):
        time.sleep(1)
        rss = rss_mb(proxy.proc.pid)
        samples.append(rss)
        forwarded = len(upstream.requests) - before
        say(
            f"  t={second:>2}s  proxy RSS {rss:6.1f} MB   written by the client {sent[0]:>6}   forwarded {forwarded:>6}"
        )
    half = samples[len(samples) // 2 :]
    say(f"  growth over the second half: {(half[-1] - half[0]) / max(1, len(half) - 1):+.2f} MB/s")
    started = time.monotonic()
    read_answers(tls, count)  # the socket now buffers the rest for the writer, which finishes
    writer.join()
    say(f"  then read all {count} answers in order in {time.monotonic() - started:.1f} s")
    tls.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        certs = issue(trustme.CA(), Path(tmp), "server")
        issuer, upstream = TestIssuer(certs), RecordingUpstream(certs)
        proxy = start_process(tmp, issuer, upstream, certs)
        try:
            proxy.wait_ready()
            token = issuer.token()
            idle = rss_mb(proxy.proc.pid)
            say(f"proxy idle: {idle:.1f} MB")
            baseline = served_while_reading(proxy, token, args.requests)
            say(f"baseline: {args.requests} requests to a client reading its answers: proxy RSS {baseline:.1f} MB")
            for what, credential in (("kube-apiserver answers", token), ("the proxy answers 401", "")):
                upstream.requests.clear()
                say(f"stalled, {what}: {args.requests} requests pipelined, no answer read for {args.seconds:.0f} s")
                stalled(proxy, upstream, credential, args.requests, args.seconds)
                final = rss_mb(proxy.proc.pid)
                say(f"proxy RSS after: {final:.1f} MB, {final / baseline:.2f}x the baseline")
        finally:
            proxy.stop()
            upstream.close()
            issuer.close()


if __name__ == "__main__":
    main()
