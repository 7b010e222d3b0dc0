"""The verb matrix through the proxy against a real kube-apiserver: each verb by a user RBAC allows and
by one it denies (alice: developers; bob: viewers)."""

from __future__ import annotations

import json
import select
import time

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.kube import Kubectl


def test_get_and_list_pods(alice: Kubectl, bob: Kubectl) -> None:
    for user in (alice, bob):
        listed = user.run("get", "pods", "-o", "name", check=True)
        assert b"pod/web" in listed.stdout and b"pod/db" in listed.stdout
        got = user.run("get", "pod", "web", "-o", "json", check=True)
        assert json.loads(got.stdout)["status"]["phase"] == "Running"


def test_configmaps_are_denied_to_a_viewer(bob: Kubectl) -> None:
    denied = bob.run("get", "configmaps")
    assert denied.returncode != 0
    assert b'User "bob@example.com" cannot list resource "configmaps"' in denied.stderr


def test_auth_can_i_answers_for_the_oidc_user(alice: Kubectl, bob: Kubectl) -> None:
    assert alice.run("auth", "can-i", "create", "pods/exec").stdout.strip() == b"yes"
    assert bob.run("auth", "can-i", "create", "pods/exec").stdout.strip() == b"no"
    assert bob.run("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}").stdout == b"bob@example.com"


def test_a_5mb_apply_streams_through_and_the_api_servers_own_answer_comes_back(alice: Kubectl) -> None:
    # kube-apiserver accepts at most 3 MiB per request and 1 MiB of ConfigMap data, so a 5 MB ConfigMap
    # cannot exist: the whole 5 MB reaches the API server through the proxy, and its own 413 comes back.
    manifest = _configmap("too-big", 5 * 1024 * 1024)
    refused = alice.run("apply", "--server-side", "-f", "-", stdin=manifest)
    assert refused.returncode != 0
    assert b"Request entity too large: limit is 3145728" in refused.stderr


def test_apply_a_large_configmap_then_delete_it(alice: Kubectl, bob: Kubectl) -> None:
    size = 1000 * 1024  # just under the 1 MiB a ConfigMap may hold
    applied = alice.run("apply", "--server-side", "-f", "-", stdin=_configmap("big", size), check=True)
    assert b"serverside-applied" in applied.stdout
    blob = alice.run("get", "configmap", "big", "-o", "jsonpath={.data.blob}", check=True).stdout
    assert len(blob) == size
    denied = bob.run("delete", "configmap", "big")
    assert denied.returncode != 0 and b"Forbidden" in denied.stderr
    not_applied = bob.run("apply", "--server-side", "-f", "-", stdin=_configmap("bobs", 10))
    assert not_applied.returncode != 0 and b"Forbidden" in not_applied.stderr
    assert alice.run("delete", "configmap", "big", check=True).returncode == 0


def _configmap(name: str, size: int) -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"blob": "x" * size}}
    ).encode()


def test_watch_events_arrive_within_a_second(alice: Kubectl, cluster: Cluster) -> None:
    watcher = alice.popen("get", "configmaps", "--watch", "--output-watch-events", "-o", "name")
    try:
        time.sleep(2)  # the watch is open
        created = time.monotonic()
        cluster.api().apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched", "namespace": "e2e"}}
        )
        assert watcher.stdout is not None
        deadline = created + 10
        line = b""
        while time.monotonic() < deadline:
            ready, _, _ = select.select([watcher.stdout], [], [], 0.1)
            if ready:
                line = watcher.stdout.readline()
                if b"configmap/watched" in line:
                    break
        seen = time.monotonic() - created
        assert b"configmap/watched" in line
        assert seen < 1.0, f"event after {seen:.2f}s"
    finally:
        watcher.kill()
        alice.run("delete", "configmap", "watched")


def test_a_watch_is_denied_to_a_viewer(bob: Kubectl) -> None:
    denied = bob.run("get", "configmaps", "--watch", timeout=30)
    assert denied.returncode != 0
    assert b'cannot watch resource "configmaps"' in denied.stderr or b"cannot list" in denied.stderr


def test_logs_follow_streams_new_lines(alice: Kubectl, bob: Kubectl, cluster: Cluster) -> None:
    log = cluster.containers / "e2e" / "web" / "main" / "log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("first line\n")
    follower = alice.popen("logs", "-f", "web")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline() == b"first line\n"
        written = time.monotonic()
        with log.open("a") as f:
            f.write("second line\n")
        assert follower.stdout.readline() == b"second line\n"
        assert time.monotonic() - written < 2.0
    finally:
        follower.kill()
    denied = bob.run("logs", "web")
    assert denied.returncode != 0 and b"Forbidden" in denied.stderr
