"""Audit policy matching, as table tests modelled on kube-apiserver's policy checker tests."""

from __future__ import annotations

import re

import pytest

from kube_oidc_proxy.audit.policy import Decision, GroupResources, Policy, PolicyError, Rule, parse_policy
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.requestinfo import request_info

TIM = UserInfo("tim@k8s.io", groups=("humans", "developers"))

REQUESTS = {
    "namespaced": ("GET", "/api/v1/namespaces/default/pods/busybox"),
    "cluster": ("GET", "/api/v1/nodes/mynode"),
    "nonResource": ("GET", "/logs/kubelet.log"),
    "subresource": ("GET", "/api/v1/namespaces/default/pods/busybox/log"),
    "list": ("GET", "/api/v1/namespaces/default/pods"),
    "apps": ("PATCH", "/apis/apps/v1/namespaces/kube-system/deployments/coredns"),
    "secret": ("DELETE", "/api/v1/namespaces/default/secrets/api-token"),
}

RULES = {
    "default": Rule("Metadata"),
    "create": Rule("RequestResponse", verbs=("create",)),
    "tims": Rule("Metadata", users=("tim@k8s.io",), verbs=("get",)),
    "humans": Rule("Metadata", user_groups=("humans",), verbs=("get",)),
    "serviceAccounts": Rule("Request", user_groups=("system:serviceaccounts",)),
    "getPods": Rule("RequestResponse", verbs=("get",), resources=(GroupResources("", ("pods",)),)),
    "getPodLogs": Rule("Request", verbs=("get",), resources=(GroupResources("", ("pods/log",)),)),
    "getPodWildcardMatching": Rule("Request", verbs=("get",), resources=(GroupResources("", ("*",)),)),
    "getPodResourceWildcardMatching": Rule("Request", verbs=("get",), resources=(GroupResources("", ("*/log",)),)),
    "getPodSubResourceWildcardMatching": Rule("Request", verbs=("get",), resources=(GroupResources("", ("pods/*",)),)),
    "getClusterRoles": Rule(
        "Request", verbs=("get",), resources=(GroupResources("rbac.authorization.k8s.io", ("clusterroles",)),)
    ),
    "getLogs": Rule("RequestResponse", verbs=("get",), non_resource_urls=("/logs*",)),
    "getMetrics": Rule("Request", verbs=("get",), non_resource_urls=("/metrics",)),
    "clusterScope": Rule("RequestResponse", namespaces=("",)),
    "allNamespaces": Rule("Metadata", namespaces=("default", "kube-system")),
    "appsGroup": Rule("Metadata", resources=(GroupResources("apps", ()),)),
    "namedSecret": Rule("Metadata", resources=(GroupResources("", ("secrets",), ("api-token",)),)),
}


@pytest.mark.parametrize(
    ("request_name", "rule_name", "matches"),
    [
        ("namespaced", "default", True),
        ("namespaced", "create", False),
        ("namespaced", "tims", True),
        ("namespaced", "humans", True),
        ("namespaced", "serviceAccounts", False),
        ("namespaced", "getPods", True),
        ("namespaced", "getClusterRoles", False),
        ("namespaced", "getLogs", False),
        ("namespaced", "getMetrics", False),
        ("namespaced", "clusterScope", False),
        ("namespaced", "allNamespaces", True),
        ("namespaced", "getPodWildcardMatching", True),
        ("cluster", "default", True),
        ("cluster", "getPods", False),
        ("cluster", "clusterScope", True),
        ("cluster", "allNamespaces", False),
        ("nonResource", "default", True),
        ("nonResource", "getLogs", True),
        ("nonResource", "getMetrics", False),
        ("nonResource", "getPods", False),
        ("nonResource", "clusterScope", False),
        ("subresource", "getPodLogs", True),
        ("subresource", "getPods", False),
        ("subresource", "getPodWildcardMatching", True),
        ("subresource", "getPodResourceWildcardMatching", True),
        ("subresource", "getPodSubResourceWildcardMatching", True),
        ("namespaced", "getPodResourceWildcardMatching", False),
        ("namespaced", "getPodSubResourceWildcardMatching", True),  # kube-apiserver's "resource/*" matches it too
        ("list", "getPods", False),  # verb list, not get
        ("apps", "appsGroup", True),
        ("namespaced", "appsGroup", False),
        ("secret", "namedSecret", True),
        ("namespaced", "namedSecret", False),
    ],
)
def test_rule_matching(request_name: str, rule_name: str, matches: bool) -> None:
    method, url = REQUESTS[request_name]
    assert RULES[rule_name].matches(TIM, request_info(method, url)) is matches


def test_rules_on_users_never_match_an_unauthenticated_request() -> None:
    info = request_info("GET", "/api/v1/pods")
    assert not RULES["tims"].matches(None, info)
    assert not RULES["humans"].matches(None, info)
    assert RULES["default"].matches(None, info)


def test_the_first_matching_rule_decides_and_omit_stages_merge() -> None:
    policy = Policy(
        rules=(
            Rule("None", users=("system:kube-proxy",)),
            Rule("Request", verbs=("get",), omit_stages=frozenset({"ResponseStarted"})),
            Rule("RequestResponse"),
        ),
        omit_stages=frozenset({"RequestReceived"}),
    )
    info = request_info("GET", "/api/v1/pods/x")
    assert policy.decide(UserInfo("system:kube-proxy"), info) == Decision("None")
    assert policy.decide(TIM, info) == Decision("Request", frozenset({"RequestReceived", "ResponseStarted"}))
    assert policy.decide(TIM, request_info("POST", "/api/v1/pods")).level == "RequestResponse"
    assert Policy(rules=(Rule("Metadata", verbs=("create",)),)).decide(TIM, info) == Decision("None")


def test_a_policy_file_parses_like_kube_apiservers() -> None:
    policy = parse_policy(
        """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
omitManagedFields: true
rules:
  - level: None
    nonResourceURLs: ["/healthz*", "/version"]
  - level: RequestResponse
    resources:
      - group: ""
        resources: ["pods/exec"]
    omitManagedFields: false
  - level: Metadata
"""
    )
    assert policy.decide(TIM, request_info("GET", "/healthz/etcd")).level == "None"
    exec_decision = policy.decide(TIM, request_info("POST", "/api/v1/namespaces/a/pods/p/exec"))
    assert exec_decision == Decision("RequestResponse", frozenset({"RequestReceived"}), False)
    assert policy.decide(TIM, request_info("GET", "/api/v1/pods")) == Decision(
        "Metadata", frozenset({"RequestReceived"}), True
    )


HEAD = "apiVersion: audit.k8s.io/v1\nkind: Policy\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind: Other", "kind: Policy"),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []", "at least one rule"),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Loud}]", "rules[0].level"),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, omitStages: [Sometime]}]", "unknown stage"),
        (HEAD + "rules: [{level: None, nonResourceURLs: ['/x'], namespaces: [a]}]", "both regular resources and"),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['x']}]",
            "must start with /",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/a*b']}]",
            "may only end in *",
        ),
        (HEAD + "rules: [{level: None, resources: [{resources: ['*'], resourceNames: [a]}]}]", "resourceNames cannot"),
        ("apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, users: alice}]", "list of strings"),
        ("{", "not valid YAML"),
    ],
)
def test_invalid_policies_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=re.escape(message)):
        parse_policy(text)
