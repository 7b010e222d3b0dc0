"""The chart's output against a real kube-apiserver: `kubectl apply --server-side --dry-run=server` with strict
field validation, so every object must be one the API server would store (no unknown fields, valid values,
admission). cert-manager's and the Prometheus operator's CRDs are stand-ins (tests/e2e/admin.py). Also runs
the `helm test` pod's check against the real proxy. tests/e2e/test_chart_install.py installs the chart with
helm and runs the proxy with its ServiceAccount."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy import chart
from tests.e2e.admin import Admin
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.proxy import Proxy

# Not the harness's own kube-oidc-proxy namespace, release or ClusterRole: nothing here touches them.
NAMESPACE = "kop-chart"
RELEASE = "kop-chart"


@pytest.fixture(scope="module")
def admin(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Admin:
    kubectl = Admin(cluster, tmp_path_factory.mktemp("chart-apply"))
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    created = kubectl.run("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump(namespace))
    assert created.returncode == 0, created.stderr
    kubectl.stand_in_crds()
    return kubectl


def applied(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The objects kubectl reports as applied, as kind/name (its output is `kind.group/name ... (server dry run)`)."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert all(line.endswith("serverside-applied (server dry run)") for line in lines), result.stdout
    return sorted(line.split()[0] for line in lines)


def expected(objects: list[dict[str, Any]]) -> list[str]:
    def name(obj: dict[str, Any]) -> str:
        group = obj["apiVersion"].rpartition("/")[0]
        kind = obj["kind"].lower() + (f".{group}" if group else "")
        return f"{kind}/{obj['metadata']['name']}"

    return sorted(name(o) for o in objects)


@pytest.mark.parametrize(
    "values",
    [None, chart.FULL_VALUES, chart.GO_CHART_VALUES, chart.AUTHENTICATION_CONFIG_VALUES],
    ids=["defaults", "full", "go-chart", "authentication-config"],
)
def test_kube_apiserver_accepts_every_rendered_object(admin: Admin, values: dict[str, Any] | str | None) -> None:
    text = chart.template_text(values, release=RELEASE, namespace=NAMESPACE)
    objects = chart.Rendered.of(text).objects
    kinds = {o["kind"] for o in objects}
    if values is chart.FULL_VALUES:
        optional = {"Issuer", "Certificate", "ServiceMonitor", "PrometheusRule", "Ingress", "PodDisruptionBudget"}
        assert optional | {"NetworkPolicy", "ConfigMap"} <= kinds
    if values is chart.AUTHENTICATION_CONFIG_VALUES:
        assert "ConfigMap" in kinds  # the AuthenticationConfiguration, mounted by the Deployment
    result = admin.dry_run_apply(text)
    assert applied(result) == expected(objects)


def test_kube_apiserver_accepts_the_static_manifests(admin: Admin) -> None:
    # They target the kube-oidc-proxy namespace, where the harness applied deploy/rbac.yaml's objects with
    # the same names: --force-conflicts lets this dry run take over their fields (nothing is changed).
    text = chart.MANIFEST.read_text()
    result = admin.dry_run_apply(text, "--force-conflicts")
    assert applied(result) == expected(chart.Rendered.of(text).objects)


def test_kube_apiserver_refuses_what_the_chart_must_not_produce(admin: Admin) -> None:
    # the dry run is not a rubber stamp: an unknown field in the pod spec is refused
    rendered = chart.render(release=RELEASE, namespace=NAMESPACE)
    deployment = rendered.one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFilesystem"] = True
    result = admin.dry_run_apply(yaml.safe_dump(deployment))
    assert result.returncode != 0
    assert ".readOnlyRootFilesystem: field not declared in schema" in result.stderr


def helm_test_check() -> list[str]:
    """The `helm test` pod's command, without the in-image interpreter and URL: [-c, script]."""
    [pod] = chart.render().all("Pod")
    _python, flag, script, _url = pod["spec"]["containers"][0]["command"]
    return [flag, script]


def test_helm_test_check_passes_against_the_proxy(proxy: Proxy) -> None:
    result = subprocess.run(
        [sys.executable, *helm_test_check(), proxy.url + "/api"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: ")


def test_helm_test_check_fails_against_something_else(cluster: Cluster) -> None:
    # kube-apiserver itself answers an anonymous request with 403, not the proxy's 401
    result = subprocess.run(
        [sys.executable, *helm_test_check(), cluster.server + "/api"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "expected a 401 Status" in result.stdout
