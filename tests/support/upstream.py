"""A recording stand-in for kube-apiserver, in its own thread and event loop, parsing with h11.

h11 is an independent HTTP/1.1 implementation, so everything the proxy sends is checked by a parser that
is not ours. Behaviour by path:

  /status/<code>      that status with a Status-like JSON body
  /big/<n>            n bytes with Content-Length
  /chunked/<n>        n chunks of "chunk-<i>\\n", chunked
  /watch, ?watch=true chunked application/json;stream=watch, events pushed with ``emit`` (also over
                      HTTP/2, which the proxy uses for watches when ALPN offers it)
  /echo-body          the request body back (Content-Length)
  /discard-body       count the request body without keeping it; answers {"bytes": n}
  /slow/<seconds>     headers only after a delay
  /drop               close without answering
  /drop-if-reused     close without answering if this connection already served a request
  /close-delimited    a body ended by closing the connection (no length, not chunked)
  /raw/<name>         the bytes in ``raw[name]``, then close
  upgrade requests    101 and then echo every byte back; ``x-test-refuse-upgrade: 1`` gets a 403 instead,
                      and /raw/<name> the bytes in ``raw[name]`` (a 101 of the test's making) before the echo
  POST .../subjectaccessreviews   {"status": {"allowed": sar_policy(spec)}} (or sar_status(spec) as the
                                  whole status, or sar_failure's status)
  POST .../tokenreviews           {"status": token_reviews.get(token, {"authenticated": false})}
                                  (both reviews: ``review_answer``'s bytes instead, when it is set)
  /api, /apis, /api/v1, /api/v1/namespaces/default/pods
                      just enough discovery and a PodList for ``kubectl get pods``
  anything else       200 {"kind": "Echo", "path": ...}
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import h11

from tests.support.certs import CertFiles

KUBE_STATIC: dict[str, dict[str, Any]] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["get", "list", "watch"],
                "shortNames": ["po"],
            }
        ],
    },
    "/api/v1/namespaces/default/pods": {
        "kind": "PodList",
        "apiVersion": "v1",
        "metadata": {"resourceVersion": "1"},
        "items": [
            {
                "metadata": {"name": "web-1", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]},
                "status": {"phase": "Running"},
            }
        ],
    },
}


@dataclass
class Recorded:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    http_version: str = "1.1"
    client_cert: str = ""  # the DNS name in the client certificate of the connection it came on, if any

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n == name.lower()]

    def one(self, name: str) -> str | None:
        values = self.all(name)
        return values[0] if values else None


def _client_cert(writer: asyncio.StreamWriter) -> str:
    sslobj = writer.get_extra_info("ssl_object")
    cert = sslobj.getpeercert() if sslobj is not None else None
    return next((name for kind, name in (cert or {}).get("subjectAltName", ()) if kind == "DNS"), "")


@dataclass
class _Watch:
    send: Callable[[bytes], None]
    end: Callable[[], None]
    is_open: Callable[[], bool]
    close: Callable[[], None]
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RecordingUpstream:
    def __init__(self, certs: CertFiles | None, *, client_ca: str | None = None, http2: bool = True) -> None:
        self.requests: list[Recorded] = []
        self.raw: dict[str, bytes] = {}
        self.connections = 0
        self.open_connections = 0  # connections the proxy holds open right now
        self.upgrades = 0
        self.watches_closed = 0
        self.discarded = 0
        self.h2_connections = 0
        self.sars: list[dict[str, Any]] = []  # the specs of SubjectAccessReviews received
        self.sar_policy: Callable[[dict[str, Any]], bool] = lambda spec: False
        self.sar_failure = 0  # answer reviews with this status instead
        self.sar_failure_body = b'{"kind":"Status"}'  # ... and this body
        self.review_answer: bytes | None = None  # answer every review with these bytes (hostile answers)
        self.sar_status: Callable[[dict[str, Any]], Any] | None = None  # the whole answer's status (hostile ones)
        self.token_reviews: dict[str, dict[str, Any]] = {}
        self.token_review_requests: list[dict[str, Any]] = []
        self._watches: list[_Watch] = []
        self.held = 0  # requests to /held/... waiting for release_held()
        self._release = asyncio.Event()  # set on the upstream's loop
        self._ssl: ssl.SSLContext | None = None
        if certs is not None:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._ssl.load_cert_chain(certs.cert, certs.key)
            self._ssl.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
            if client_ca:
                self._ssl.load_verify_locations(client_ca)
                self._ssl.verify_mode = ssl.CERT_OPTIONAL
        self.peer_certs: list[Any] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.port: int = self._server.sockets[0].getsockname()[1]
        scheme = "https" if self._ssl else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"

    async def _start(self) -> asyncio.Server:
        return await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self._ssl)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            for watch in self._watches:
                watch.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    # test controls ----------------------------------------------------------------------------------

    def emit(self, event: dict[str, Any]) -> None:
        """Send one watch event (a JSON line) to every open watch, as one chunk."""
        data = json.dumps(event).encode() + b"\n"

        def send() -> None:
            for watch in list(self._watches):
                if watch.is_open():
                    watch.send(data)

        self.loop.call_soon_threadsafe(send)

    def end_watches(self) -> None:
        def end() -> None:
            for watch in list(self._watches):
                if watch.is_open():
                    watch.end()
                watch.done.set()

        self.loop.call_soon_threadsafe(end)

    def release_held(self) -> None:
        """Answer every request to /held/... (and those that come later at once)."""
        self.loop.call_soon_threadsafe(self._release.set)

    @property
    def open_watches(self) -> int:
        return sum(1 for w in self._watches if w.is_open())

    # serving --------------------------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open_connections += 1
        try:
            await self._serve(reader, writer)
        finally:
            self.open_connections -= 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sslobj = writer.get_extra_info("ssl_object")
        if sslobj is not None:
            self.peer_certs.append(sslobj.getpeercert())
            if sslobj.selected_alpn_protocol() == "h2":
                await self._handle_h2(reader, writer)
                return
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=2 * 1024 * 1024)
        served = 0
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                if request.target == b"/drop-if-reused" and served:
                    return
                served += 1
                keep_going = await self._respond(conn, request, body, reader, writer)
                if not keep_going or conn.our_state is not h11.DONE:
                    return
                conn.start_next_cycle()
        except (h11.RemoteProtocolError, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                if not data and conn.their_state is h11.IDLE:
                    return None, b""
                continue
            if isinstance(event, h11.Request):
                request = event
                self.discarded = 0
            elif isinstance(event, h11.Data):
                if request is not None and request.target.startswith(b"/discard-body"):
                    self.discarded += len(event.data)
                else:
                    body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _respond(
        self,
        conn: h11.Connection,
        request: h11.Request,
        body: bytes,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        target = request.target.decode()
        headers = [(n.decode(), v.decode("latin-1")) for n, v in request.headers]
        version = request.http_version.decode()
        self.requests.append(Recorded(request.method.decode(), target, headers, body, version, _client_cert(writer)))
        path = target.split("?", 1)[0]

        def send(*events: Any) -> None:
            for event in events:
                data = conn.send(event)
                if data:
                    writer.write(data)

        def simple(status: int, payload: bytes, ctype: str = "application/json") -> None:
            send(
                h11.Response(
                    status_code=status, headers=[("content-type", ctype), ("content-length", str(len(payload)))]
                ),
                h11.Data(data=payload),
                h11.EndOfMessage(),
            )

        if conn.their_state is h11.MIGHT_SWITCH_PROTOCOL:  # type: ignore[attr-defined]
            if any(n == "x-test-refuse-upgrade" for n, _ in headers):
                simple(403, b'{"kind":"Status","code":403,"message":"upgrade refused"}')
                return False
            if path.startswith("/raw/"):  # the test's own answer (a 101 of its making), then echo as below
                writer.write(self.raw[path[5:]])
            else:
                send(h11.InformationalResponse(status_code=101, headers=self._switching(headers)))
                self.upgrades += 1
            tail, _ = conn.trailing_data
            if tail:
                writer.write(tail)
            while True:
                data = await reader.read(65536)
                if not data:
                    return False
                writer.write(data)
                await writer.drain()

        if path.endswith("reviews") and request.method == b"POST" and self.review_answer is not None:
            simple(201, self.review_answer)
        elif path.endswith("/subjectaccessreviews") and request.method == b"POST":
            if self.sar_failure:
                simple(self.sar_failure, self.sar_failure_body)
            else:
                spec = json.loads(body)["spec"]
                self.sars.append(spec)
                status = {"allowed": self.sar_policy(spec)} if self.sar_status is None else self.sar_status(spec)
                simple(201, json.dumps({"kind": "SubjectAccessReview", "status": status}).encode())
        elif path.endswith("/tokenreviews") and request.method == b"POST":
            spec = json.loads(body)["spec"]
            self.token_review_requests.append(spec)
            status = self.token_reviews.get(spec["token"], {"authenticated": False})
            simple(201, json.dumps({"kind": "TokenReview", "status": status}).encode())
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            simple(code, json.dumps({"kind": "Status", "code": code}).encode())
        elif path.startswith("/big/"):
            simple(200, b"x" * int(path.rsplit("/", 1)[1]), "application/octet-stream")
        elif path.startswith("/chunked/"):
            send(
                h11.Response(
                    status_code=200, headers=[("content-type", "text/plain"), ("transfer-encoding", "chunked")]
                )
            )
            for i in range(int(path.rsplit("/", 1)[1])):
                send(h11.Data(data=f"chunk-{i}\n".encode()))
                await writer.drain()
            send(h11.EndOfMessage())
        elif path == "/watch" or "watch=true" in target or "follow=true" in target:
            send(
                h11.Response(
                    status_code=200,
                    headers=[("content-type", "application/json;stream=watch"), ("transfer-encoding", "chunked")],
                )
            )
            watch = _Watch(
                send=lambda data: writer.write(conn.send(h11.Data(data=data)) or b""),
                end=lambda: writer.write(conn.send(h11.EndOfMessage()) or b""),
                is_open=lambda: not writer.is_closing(),
                close=writer.close,
            )
            self._watches.append(watch)
            closed = asyncio.ensure_future(reader.read(1))
            done = asyncio.ensure_future(watch.done.wait())
            await asyncio.wait([closed, done], return_when=asyncio.FIRST_COMPLETED)
            if not done.done():
                self.watches_closed += 1
                done.cancel()
                return False
            closed.cancel()
        elif path == "/discard-body":
            simple(200, json.dumps({"bytes": self.discarded}).encode())
        elif path == "/echo-body":
            simple(200, body, "application/octet-stream")
        elif path.startswith("/held/"):
            self.held += 1
            await self._release.wait()
            self.held -= 1
            simple(200, b'{"held":true}')
        elif path.startswith("/slow/"):
            await asyncio.sleep(float(path.rsplit("/", 1)[1]))
            simple(200, b'{"slow":true}')
        elif path == "/drop":
            return False
        elif path == "/close-delimited":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nuntil-close-body")
            await writer.drain()
            return False
        elif path.startswith("/raw/"):
            writer.write(self.raw[path[5:]])
            await writer.drain()
            return False
        elif path in KUBE_STATIC:
            simple(200, json.dumps(KUBE_STATIC[path]).encode())
        elif request.method == b"HEAD":
            send(h11.Response(status_code=200, headers=[("content-length", "1234")]), h11.EndOfMessage())
        else:
            simple(200, json.dumps({"kind": "Echo", "path": target}).encode())
        await writer.drain()
        return True

    @staticmethod
    def _switching(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The 101's headers, as kube-apiserver answers: the protocol asked for, the first stream protocol
        offered, and for WebSocket the accept key and the first subprotocol offered (RFC 6455 §4.2.2)."""
        upgrade = next(v for n, v in headers if n == "upgrade")
        answer = [("connection", "Upgrade"), ("upgrade", upgrade)]
        answer += [("x-stream-protocol-version", v) for n, v in headers if n == "x-stream-protocol-version"][:1]
        key = next((v for n, v in headers if n == "sec-websocket-key"), None)
        if upgrade.lower() == "websocket" and key is not None:
            accept = base64.b64encode(hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
            answer.append(("sec-websocket-accept", accept.decode()))
            offered = [p.strip() for n, v in headers if n == "sec-websocket-protocol" for p in v.split(",")]
            answer += [("sec-websocket-protocol", p) for p in offered if p][:1]
        return answer

    # HTTP/2 (what the proxy uses for watches), with the h2 library as an independent implementation ----------

    async def _handle_h2(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.h2_connections += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        heads: dict[int, list[tuple[bytes, bytes]]] = {}
        bodies: dict[int, bytearray] = {}
        watches: dict[int, _Watch] = {}
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        heads[event.stream_id] = list(event.headers)
                        bodies[event.stream_id] = bytearray()
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        self._respond_h2(conn, writer, event.stream_id, heads, bytes(bodies[event.stream_id]), watches)
                    elif isinstance(event, h2.events.StreamReset) and event.stream_id in watches:
                        self.watches_closed += 1
                        watches.pop(event.stream_id).done.set()
                writer.write(conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self.watches_closed += len([w for w in watches.values() if not w.done.is_set()])
            for watch in watches.values():
                watch.done.set()
            writer.close()

    def _respond_h2(
        self,
        conn: h2.connection.H2Connection,
        writer: asyncio.StreamWriter,
        stream_id: int,
        heads: dict[int, list[tuple[bytes, bytes]]],
        body: bytes,
        watches: dict[int, _Watch],
    ) -> None:
        pseudo = {n: v for n, v in heads[stream_id] if n.startswith(b":")}
        headers = [(n.decode(), v.decode("latin-1")) for n, v in heads[stream_id] if not n.startswith(b":")]
        headers.append(("host", pseudo[b":authority"].decode()))
        target = pseudo[b":path"].decode()
        self.requests.append(Recorded(pseudo[b":method"].decode(), target, headers, body, "2", _client_cert(writer)))
        path = target.split("?", 1)[0]

        def respond(status: int, payload: bytes, ctype: str = "application/json") -> None:
            conn.send_headers(stream_id, [(b":status", str(status).encode()), (b"content-type", ctype.encode())])
            conn.send_data(stream_id, payload, end_stream=True)

        if path == "/watch" or "watch=true" in target or "follow=true" in target:
            conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", b"application/json;stream=watch")])

            def send(data: bytes) -> None:
                conn.send_data(stream_id, data)
                writer.write(conn.data_to_send())

            def end() -> None:
                conn.end_stream(stream_id)
                writer.write(conn.data_to_send())

            watch = _Watch(
                send=send,
                end=end,
                is_open=lambda: stream_id in watches and not writer.is_closing(),
                close=writer.close,
            )
            watches[stream_id] = watch
            self._watches.append(watch)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            respond(code, json.dumps({"kind": "Status", "code": code}).encode())
        elif path in KUBE_STATIC:
            respond(200, json.dumps(KUBE_STATIC[path]).encode())
        else:
            respond(200, json.dumps({"kind": "Echo", "path": target}).encode())
