"""Request info, as table tests modelled on kube-apiserver's TestGetAPIRequestInfo."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.requestinfo import request_info

# method, url, verb, prefix, group, version, namespace, resource, subresource, name
RESOURCE_CASES = [
    ("GET", "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", ""),
    ("GET", "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other"),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", ""),
    ("HEAD", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    ("GET", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    ("HEAD", "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    ("GET", "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", ""),
    ("GET", "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", ""),
    ("GET", "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", ""),
    ("GET", "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", ""),
    ("PUT", "/api/v1/namespaces/other/pods/foo", "update", "api", "", "v1", "other", "pods", "", "foo"),
    ("PATCH", "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo"),
    ("POST", "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", ""),
    ("DELETE", "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo"),
    ("DELETE", "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", ""),
    ("GET", "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo"),
    ("PUT", "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other"),
    ("PUT", "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other"),
    ("POST", "/api/v1/namespaces/other/pods/foo/exec", "create", "api", "", "v1", "other", "pods", "exec", "foo"),
    ("GET", "/api/v1/namespaces/other/pods/foo/log", "get", "api", "", "v1", "other", "pods", "log", "foo"),
    (
        "GET",
        "/apis/apps/v1/namespaces/other/deployments/foo",
        "get",
        "apis",
        "apps",
        "v1",
        "other",
        "deployments",
        "",
        "foo",
    ),
    (
        "GET",
        "/apis/extensions/v1beta1/namespaces/other/extensions",
        "list",
        "apis",
        "extensions",
        "v1beta1",
        "other",
        "extensions",
        "",
        "",
    ),
    (
        "GET",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "list",
        "apis",
        "rbac.authorization.k8s.io",
        "v1",
        "",
        "clusterroles",
        "",
        "",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?fieldSelector=metadata.name%3Dfoo",
        "list",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?watch=true&fieldSelector=metadata.name=foo",
        "watch",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
    (
        "GET",
        "/api/v1/namespaces/other/pods?fieldSelector=metadata.name==foo,status.phase=Running",
        "list",
        "api",
        "",
        "v1",
        "other",
        "pods",
        "",
        "foo",
    ),
]


@pytest.mark.parametrize(
    ("method", "url", "verb", "prefix", "group", "version", "ns", "resource", "sub", "name"), RESOURCE_CASES
)
def test_resource_requests(
    method: str, url: str, verb: str, prefix: str, group: str, version: str, ns: str, resource: str, sub: str, name: str
) -> None:
    info = request_info(method, url)
    assert info.is_resource_request
    assert (info.verb, info.api_prefix, info.api_group, info.api_version) == (verb, prefix, group, version)
    assert (info.namespace, info.resource, info.subresource, info.name) == (ns, resource, sub, name)
    assert info.path == url.split("?", maxsplit=1)[0]


@pytest.mark.parametrize(
    ("method", "url", "verb"),
    [
        ("GET", "/", "get"),
        ("GET", "/healthz", "get"),
        ("GET", "/version", "get"),
        ("GET", "/api", "get"),
        ("GET", "/api/v1", "get"),
        ("GET", "/apis", "get"),
        ("GET", "/apis/apps", "get"),
        ("GET", "/apis/apps/v1", "get"),
        ("POST", "/other/path", "post"),
        ("GET", "/openapi/v3", "get"),
        ("GET", "/metrics", "get"),
    ],
)
def test_non_resource_requests_use_the_lowercased_method(method: str, url: str, verb: str) -> None:
    info = request_info(method, url)
    assert not info.is_resource_request
    assert info.verb == verb
