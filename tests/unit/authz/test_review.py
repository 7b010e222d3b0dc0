"""Which SubjectAccessReviews an impersonation needs, how a denial reads, who goes out."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.authz.requested import ImpersonationRequest
from kube_oidc_proxy.authz.review import Attributes, allowed_by, review_body, reviews_for, target_user

ALICE = UserInfo("alice", uid="u-a", groups=("dev",), extra={"k": ("v",)})


def request(user: str = "bob", **kwargs: Any) -> ImpersonationRequest:
    return ImpersonationRequest(
        user=user, uid=kwargs.get("uid", ""), groups=kwargs.get("groups", ()), extra=kwargs.get("extra", {})
    )


def test_service_account_users_are_checked_as_namespaced_serviceaccounts() -> None:
    assert reviews_for(request("system:serviceaccount:ns:sa")) == [Attributes("serviceaccounts", "sa", namespace="ns")]
    # not a well-formed service-account name: an ordinary user
    assert reviews_for(request("system:serviceaccount:ns")) == [Attributes("users", "system:serviceaccount:ns")]


@pytest.mark.parametrize(
    "username",
    [
        "system:serviceaccount:e2e:Not_A_ServiceAccount",  # a name kube-apiserver's SplitUsername refuses
        "system:serviceaccount:E2E:web",
        "system:serviceaccount:e2e:web\u00a0",
        "system:serviceaccount:e2e:web:extra",
        "system:serviceaccount::web",
        "system:serviceaccount:e2e:",
        "system:serviceaccount:" + "n" * 64 + ":web",
        "system:serviceaccount:e2e:-web",
        "system:serviceaccount:e2e:web.",
    ],
)
def test_a_name_kube_apiserver_does_not_read_as_a_service_account_is_checked_and_sent_as_a_user(username: str) -> None:
    # the impersonate right on serviceaccounts (the edit role has it) must not buy a user with SA groups
    assert reviews_for(request(username)) == [Attributes("users", username)]
    assert target_user(request(username), UserInfo("alice")).groups == ()


def test_valid_service_account_names_follow_kube_apiservers_rules() -> None:
    for username, (namespace, name) in [
        ("system:serviceaccount:kube-system:coredns", ("kube-system", "coredns")),
        ("system:serviceaccount:a:web.v1-x", ("a", "web.v1-x")),
        ("system:serviceaccount:" + "n" * 63 + ":" + "s" * 253, ("n" * 63, "s" * 253)),
    ]:
        assert reviews_for(request(username)) == [Attributes("serviceaccounts", name, namespace=namespace)]


def test_uids_and_extras_are_in_the_authentication_group_in_kube_apiservers_order() -> None:
    # kube-apiserver's buildImpersonationRequests: user, groups, extras, uid; it stops at the first denial
    checks = reviews_for(request(uid="7", groups=("g",), extra={"scopes": ("a", "b")}))
    assert checks[1:] == [
        Attributes("groups", "g"),
        Attributes("userextras", "a", group="authentication.k8s.io", subresource="scopes"),
        Attributes("userextras", "b", group="authentication.k8s.io", subresource="scopes"),
        Attributes("uids", "7", group="authentication.k8s.io"),
    ]


def test_the_review_describes_the_caller_with_system_authenticated() -> None:
    spec = review_body(ALICE, Attributes("users", "bob"))["spec"]
    assert spec["user"] == "alice" and spec["uid"] == "u-a"
    assert spec["groups"] == ["dev", "system:authenticated"]
    assert spec["extra"] == {"k": ["v"]}
    assert spec["resourceAttributes"] == {
        "verb": "impersonate", "group": "", "resource": "users", "subresource": "", "name": "bob", "namespace": "",
    }  # fmt: skip


def test_denials_read_like_kube_apiservers() -> None:
    assert Attributes("userextras", "v", "authentication.k8s.io", "scopes").forbidden_message("alice") == (
        'userextras/scopes "v" is forbidden: User "alice" cannot impersonate resource "userextras/scopes" '
        'in API group "authentication.k8s.io" at the cluster scope'
    )


def test_the_target_carries_the_caller_in_originaluser_extras() -> None:
    target = target_user(request(groups=("ops",), uid="9", extra={"scopes": ("x",)}), ALICE)
    assert (target.username, target.uid, target.groups) == ("bob", "9", ("ops",))
    assert target.extra["scopes"] == ("x",)
    assert target.extra["originaluser.jetstack.io-user"] == ("alice",)
    assert target.extra["originaluser.jetstack.io-groups"] == ("dev",)
    assert target.extra["originaluser.jetstack.io-uid"] == ("u-a",)
    assert json.loads(target.extra["originaluser.jetstack.io-extra"][0]) == {"k": ["v"]}
    sa = target_user(request("system:serviceaccount:apps:web"), UserInfo("alice"))
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:apps")
    assert "originaluser.jetstack.io-groups" not in sa.extra


def test_only_the_proxy_writes_the_originaluser_extras() -> None:
    # requested.py refuses these keys; should one get this far, the caller's own words never become the record
    forged = {
        "originaluser.jetstack.io-groups": ("system:masters",),
        "OriginalUser.jetstack.io-user": ("root",),
        "originaluser.example/anything": ("x",),
        "scopes": ("view",),
    }
    target = target_user(request(extra=forged), UserInfo("alice"))  # a caller without groups, uid or extras
    assert dict(target.extra) == {"scopes": ("view",), "originaluser.jetstack.io-user": ("alice",)}


@pytest.mark.parametrize(
    ("answer", "allowed"),
    [
        ({"status": {"allowed": True}}, True),
        ({"status": {"allowed": True, "denied": False, "reason": "RBAC"}}, True),
        ({"status": {"allowed": True, "evaluationError": "a webhook failed"}}, True),  # kube-apiserver allows too
        ({"status": {"allowed": False}}, False),
        ({"status": {"allowed": "false"}}, False),  # truthy in Python: this was an allow
        ({"status": {"allowed": "true"}}, False),
        ({"status": {"allowed": 1}}, False),
        ({"status": {"allowed": [True]}}, False),
        ({"status": {"allowed": {"value": True}}}, False),
        ({"status": {"allowed": None}}, False),
        ({"status": {}}, False),
        ({"status": {"allowed": True, "denied": True}}, False),  # kube-apiserver's webhook authorizer: a denial
        ({"status": {"allowed": True, "denied": "false"}}, False),
        ({"status": {"allowed": True, "denied": None}}, False),
        ({"status": "allowed"}, False),
        ({"status": [{"allowed": True}]}, False),
        ({"status": None}, False),
        ({"allowed": True}, False),  # not where kube-apiserver writes it
        ({}, False),
        ([], False),
        (None, False),
    ],
)
def test_only_a_json_true_allows(answer: Any, allowed: bool) -> None:
    assert allowed_by(answer) is allowed
