"""kubectl and helm as the e2e cluster's admin, for the chart's tests against the real kube-apiserver
(tests/e2e/test_chart_apply.py, test_chart_install.py). cert-manager and the Prometheus operator are not
installed: ``stand_in_crds`` creates their CustomResourceDefinitions, minimal (any spec), so the chart's
Issuer, Certificate, ServiceMonitor and PrometheusRule are checked as far as their apiVersion and kind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import tool
from tests.e2e.cluster.cluster import Cluster

CRDS = [
    ("cert-manager.io", "Issuer", "issuers", "Namespaced"),
    ("cert-manager.io", "Certificate", "certificates", "Namespaced"),
    ("monitoring.coreos.com", "ServiceMonitor", "servicemonitors", "Namespaced"),
    ("monitoring.coreos.com", "PrometheusRule", "prometheusrules", "Namespaced"),
]


def crd(group: str, kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": scope,
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                            },
                        }
                    },
                }
            ],
        },
    }


class Admin:
    """kubectl and helm as the cluster's admin; helm keeps its cache and configuration under ``home``."""

    def __init__(self, cluster: Cluster, home: Path) -> None:
        self.home = home
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.admin_kubeconfig),
            "HOME": str(home),
            "HELM_CACHE_HOME": str(home / "helm-cache"),
            "HELM_CONFIG_HOME": str(home / "helm-config"),
            "HELM_DATA_HOME": str(home / "helm-data"),
        }

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["kubectl", *args], input=stdin, capture_output=True, text=True, env=self.env, timeout=120, check=False
        )

    def helm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(tool("helm")), *args], capture_output=True, text=True, env=self.env, timeout=300, check=False
        )

    def shell(self, command: str) -> subprocess.CompletedProcess[str]:
        """A command line as a user would paste it (the chart's NOTES), with this admin's kubeconfig."""
        return subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.home,
            timeout=120,
            check=False,
        )

    def dry_run_apply(self, manifests: str, *extra: str) -> subprocess.CompletedProcess[str]:
        path = self.home / "rendered.yaml"
        path.write_text(manifests)
        return self.run(
            "apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=chart-test",
            "-f", str(path), *extra,
        )  # fmt: skip

    def get(self, kind: str, name: str, namespace: str = "") -> dict[str, Any] | None:
        """The object as kube-apiserver holds it, or None when there is none."""
        scope = ["-n", namespace] if namespace else []
        result = self.run("get", kind, name, *scope, "-o", "yaml")
        if result.returncode != 0:
            assert "NotFound" in result.stderr, result.stderr
            return None
        found: dict[str, Any] = yaml.safe_load(result.stdout)
        return found

    def stand_in_crds(self) -> None:
        """The CRDs of cert-manager and the Prometheus operator (minimal), established. Kept for the session:
        two modules may need them, and a CRD being deleted cannot be created again until it is gone."""
        created = self.run("apply", "--server-side", "-f", "-", stdin=yaml.safe_dump_all([crd(*c) for c in CRDS]))
        assert created.returncode == 0, created.stderr
        names = [f"crd/{plural}.{group}" for group, _, plural, _ in CRDS]
        established = self.run("wait", "--for=condition=Established", "--timeout=60s", *names)
        assert established.returncode == 0, established.stderr
