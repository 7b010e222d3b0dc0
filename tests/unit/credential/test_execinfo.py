"""KUBERNETES_EXEC_INFO in, ExecCredential out, in the apiVersion kubectl asked for."""

from __future__ import annotations

import json

import pytest

from kube_oidc_proxy.credential.errors import UsageError
from kube_oidc_proxy.credential.execinfo import V1, V1BETA1, ExecInfo, credential_json, parse_exec_info


def info(api_version: str, **spec: object) -> str:
    return json.dumps({"apiVersion": api_version, "kind": "ExecCredential", "spec": spec})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (info(V1, interactive=True), ExecInfo(V1, True)),
        (info(V1, interactive=False), ExecInfo(V1, False)),
        (info(V1BETA1, interactive=True), ExecInfo(V1BETA1, True)),
        (info(V1), ExecInfo(V1, False)),  # no promise of a person: not interactive
        (info(V1, interactive="true"), ExecInfo(V1, False)),
        (json.dumps({"apiVersion": V1, "spec": None}), ExecInfo(V1, False)),
    ],
)
def test_the_api_version_and_interactive_come_from_kubectl(text: str, expected: ExecInfo) -> None:
    assert parse_exec_info(text, default_interactive=True) == expected


@pytest.mark.parametrize("text", [None, "", "  "])
@pytest.mark.parametrize("terminal", [True, False])
def test_run_by_hand_is_v1_and_interactive_when_a_terminal_is_attached(text: str | None, terminal: bool) -> None:
    assert parse_exec_info(text, default_interactive=terminal) == ExecInfo(V1, terminal)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "KUBERNETES_EXEC_INFO is not JSON"),
        ("[]", "KUBERNETES_EXEC_INFO is not a JSON object"),
        (info("client.authentication.k8s.io/v1alpha1"), "asks for apiVersion 'client.authentication.k8s.io/v1alpha1'"),
        (json.dumps({"kind": "ExecCredential"}), "asks for apiVersion None"),
    ],
)
def test_what_kubectl_cannot_have_meant_is_a_usage_error(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_exec_info(text, default_interactive=True)


@pytest.mark.parametrize("api_version", [V1, V1BETA1])
def test_the_credential_is_an_exec_credential_of_the_asked_api_version(api_version: str) -> None:
    document = json.loads(credential_json(api_version, "the-token", "2024-05-01T12:00:00Z"))
    assert document == {
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": {"token": "the-token", "expirationTimestamp": "2024-05-01T12:00:00Z"},
    }
