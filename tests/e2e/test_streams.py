"""exec, attach, cp and port-forward through the proxy: kubectl over WebSocket (its default, with no
silent fallback) and over SPDY, and the Python client over WebSocket."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.kube import Kubectl, no_fallback
from tests.support.ports import PortHolder

PROTOCOLS = [pytest.param(False, id="websocket"), pytest.param(True, id="spdy")]


@pytest.mark.parametrize("spdy", PROTOCOLS)
def test_exec_carries_stdin_stdout_and_the_exit_code(alice: Kubectl, spdy: bool) -> None:
    result = alice.run(
        "exec", "-i", "web", "-v=4", "--", "sh", "-c", "cat; echo to-stderr >&2; exit 3", stdin=b"hello\n", spdy=spdy
    )
    assert result.returncode == 3, result.stderr
    assert result.stdout == b"hello\n"
    assert b"to-stderr" in result.stderr
    if not spdy:
        no_fallback(result)


@pytest.mark.parametrize("spdy", PROTOCOLS)
def test_exec_is_denied_to_a_viewer(bob: Kubectl, spdy: bool) -> None:
    result = bob.run("exec", "web", "--", "true", spdy=spdy)
    assert result.returncode != 0
    assert b"Forbidden" in result.stderr or b"forbidden" in result.stderr


@pytest.mark.parametrize("spdy", PROTOCOLS)
def test_attach_sends_stdin_and_receives_output(alice: Kubectl, bob: Kubectl, spdy: bool) -> None:
    attached = alice.popen("attach", "-i", "db", "-v=4", spdy=spdy)
    assert attached.stdin is not None
    out, err = attached.communicate(b"ping through attach\n", timeout=30)
    assert b"attached to e2e/db/main" in out
    assert b"ping through attach" in out
    assert b"RemoteCommand fallback" not in err
    assert bob.run("attach", "-i", "db", stdin=b"x", spdy=spdy).returncode != 0


@pytest.mark.parametrize("spdy", PROTOCOLS)
def test_cp_round_trips_10mb_byte_exact(alice: Kubectl, tmp_path: Path, spdy: bool) -> None:
    payload = os.urandom(10 * 1024 * 1024)
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    name = f"payload-{'spdy' if spdy else 'ws'}.bin"
    alice.run("cp", str(source), f"web:{name}", "-c", "main", spdy=spdy, timeout=120, check=True)
    back = tmp_path / "back.bin"
    alice.run("cp", f"web:{name}", str(back), "-c", "main", spdy=spdy, timeout=120, check=True)
    assert hashlib.sha256(back.read_bytes()).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_cp_is_denied_to_a_viewer(bob: Kubectl, tmp_path: Path) -> None:
    source = tmp_path / "file.txt"
    source.write_text("x")
    denied = bob.run("cp", str(source), "web:file.txt", "-c", "main")
    assert denied.returncode != 0 and (b"Forbidden" in denied.stderr or b"forbidden" in denied.stderr)


@pytest.fixture(scope="module")
def echo_port() -> Iterator[int]:
    """A TCP echo server: the 'pod port' the fakelet forwards to."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed at the end of the module
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield port
    stop.set()
    server.close()


def _echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


@pytest.mark.parametrize("spdy", PROTOCOLS)
def test_port_forward_reaches_a_tcp_service(
    alice: Kubectl, bob: Kubectl, echo_port: int, spdy: bool, ports: PortHolder
) -> None:
    local = ports.take()
    forward = alice.popen("port-forward", "pod/web", f"{local}:{echo_port}", "-v=4", spdy=spdy)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", local), timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline or forward.poll() is not None:
                    raise
                time.sleep(0.1)
        with conn:
            message = os.urandom(256 * 1024)
            conn.sendall(message)
            received = b""
            while len(received) < len(message):
                received += conn.recv(65536)
            assert received == message
    finally:
        forward.terminate()
        _, err = forward.communicate(timeout=10)
    assert b"fallback to secondary dialer" not in err
    denied = bob.popen("port-forward", "pod/web", f"{ports.take()}:{echo_port}", spdy=spdy)
    _, err = denied.communicate(timeout=30)
    assert denied.returncode != 0 and (b"Forbidden" in err or b"forbidden" in err)


def _python_client(cluster: Cluster, kubectl: Kubectl) -> object:
    from kubernetes import client  # noqa: PLC0415

    configuration = client.Configuration()
    configuration.host = kubectl.kubeconfig.read_text().split("server: ")[1].split()[0]
    configuration.ssl_ca_cert = str(cluster.ca_file)
    configuration.api_key = {"authorization": f"Bearer {kubectl.token}"}
    return client.CoreV1Api(client.ApiClient(configuration))


def test_python_client_exec_over_websocket(cluster: Cluster, alice: Kubectl) -> None:
    from kubernetes.stream import stream  # noqa: PLC0415

    api = _python_client(cluster, alice)
    response = stream(
        api.connect_get_namespaced_pod_exec,  # type: ignore[attr-defined]
        "web", "e2e", container="main", command=["sh", "-c", "echo from-python; exit 4"],
        stdout=True, stderr=True, stdin=False, tty=False, _preload_content=False,
    )  # fmt: skip
    response.run_forever(timeout=30)
    assert response.returncode == 4
    assert "from-python" in response.read_stdout()


def test_python_client_port_forward_over_websocket(cluster: Cluster, alice: Kubectl, echo_port: int) -> None:
    from kubernetes.stream import portforward  # noqa: PLC0415

    api = _python_client(cluster, alice)
    forward = portforward(api.connect_get_namespaced_pod_portforward, "web", "e2e", ports=str(echo_port))  # type: ignore[attr-defined]
    sock = forward.socket(echo_port)
    sock.settimeout(10)
    sock.sendall(b"through python")
    assert sock.recv(100) == b"through python"
    sock.close()
    forward.close()
