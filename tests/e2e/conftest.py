"""Session fixtures for the end-to-end suite: a real cluster, a real IdP, the real proxy.

Without Go on the machine the suite is skipped with a loud message; with ``CI=true`` it must run, so a
missing toolchain fails instead of passing silently.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.cluster import build
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.kube import Kubectl

ROTATE_EVERY_SECONDS = 3.0


# Starting the cluster (and Keycloak) is part of the first test's setup; a cold build happens before
# pytest (make cluster), but give a cache miss room anyway.
E2E_TIMEOUT_SECONDS = 1800


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_SECONDS))
    missing = build.missing_tools()
    if not missing:
        return
    if os.environ.get("CI", "").lower() == "true":
        raise pytest.UsageError(f"CI=true but the end-to-end suite cannot run: missing {', '.join(missing)}")
    message = f"END-TO-END SUITE SKIPPED: missing {', '.join(missing)}"
    print(f"\n{'!' * len(message)}\n{message}\n{'!' * len(message)}")
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=message))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="kop-e2e-"))
    c = Cluster(workdir, build.ensure())
    try:
        c.start()
        yield c
    finally:
        c.stop()
        if os.environ.get("KOP_E2E_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def proxy(cluster: Cluster) -> Iterator[Proxy]:
    p = Proxy(cluster)
    p.start(rotate_every=ROTATE_EVERY_SECONDS)
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="session")
def alice(cluster: Cluster, proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
    return Kubectl.through(proxy, token, tmp_path_factory.mktemp("alice"))


@pytest.fixture(scope="session")
def bob(cluster: Cluster, proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    token = id_token(cluster.issuer, cluster.ca_file, "bob", "bob-password")
    return Kubectl.through(proxy, token, tmp_path_factory.mktemp("bob"))
