"""The versions of everything the end-to-end cluster is built from, in one place."""

from __future__ import annotations

KUBERNETES = "1.37.2"  # k8s.io/kubernetes; the staging modules are v0.37.2 (k8s/go.mod)
ETCD = "3.7.0"  # the version k8s.io/kubernetes v1.37.2 itself requires
CRI_STREAMING = "0.37.2"  # the fakelet's streaming server (fakelet/go.mod)
KEYCLOAK = "26.7.3"  # org.keycloak:keycloak-quarkus-dist, from Maven Central
