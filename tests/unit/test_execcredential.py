"""Kubeconfig exec credential plugins: what the plugin is told, what it may answer, when it runs again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from kube_oidc_proxy.kube.credentials import BearerToken
from kube_oidc_proxy.kube.execcredential import ExecConfig, ExecCredential, ExecCredentialError
from tests.support.execplugin import V1, plugin


def config(script: Path, **extra: object) -> ExecConfig:
    section = {
        "apiVersion": V1,
        "command": str(script),
        "args": ["token", "-i", "prod"],
        "env": [{"name": "AWS_PROFILE", "value": "p"}],
    }
    return ExecConfig.from_kubeconfig({**section, **extra}, {"server": "https://kube.example"})


def test_the_plugin_is_run_with_its_args_env_and_exec_info(tmp_path: Path) -> None:
    cred = ExecCredential(config(plugin(tmp_path), provideClusterInfo=True))
    cred.run_now()
    assert cred.token() == "TOKEN-1"
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["AWS_PROFILE"] == "p"
    info = json.loads(env["KUBERNETES_EXEC_INFO"])
    assert info == {
        "apiVersion": V1,
        "kind": "ExecCredential",
        "spec": {"interactive": False, "cluster": {"server": "https://kube.example"}},
    }


async def test_an_expiring_token_is_refreshed_in_the_background(tmp_path: Path) -> None:
    cred = ExecCredential(config(plugin(tmp_path, expires_in=30)))  # inside the refresh margin
    cred.run_now()
    assert cred.token() == "TOKEN-1"  # still valid: served while the plugin runs again
    for _ in range(200):
        if cred.runs == 2:
            break
        await asyncio.sleep(0.02)
    assert cred.token() == "TOKEN-2"
    assert cred.runs == 2  # the new token is good for an hour: no further runs


async def test_a_token_without_expiry_is_rerun_only_after_a_401(tmp_path: Path) -> None:
    cred = ExecCredential(config(plugin(tmp_path, expires_in=None)))
    cred.run_now()
    bearer = BearerToken(exec_plugin=cred)
    assert bearer.authorization() == b"Bearer TOKEN-1"
    assert bearer.authorization() == b"Bearer TOKEN-1"
    assert cred.runs == 1
    bearer.unauthorized()
    for _ in range(200):
        if bearer.authorization() == b"Bearer TOKEN-2":
            break
        await asyncio.sleep(0.02)
    assert bearer.authorization() == b"Bearer TOKEN-2"


@pytest.mark.parametrize(
    ("body", "exit_code", "message"),
    [
        ("not json", 0, "did not print JSON"),
        (json.dumps({"apiVersion": V1, "kind": "Other"}), 0, "not print an ExecCredential"),
        (json.dumps({"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential"}), 0, "answered"),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": {}}), 0, "no token"),
        (
            json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": {"clientCertificateData": "x"}}),
            0,
            "client certificates are not supported",
        ),
        (json.dumps({"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "t"}}), 3, "exited 3"),
    ],
)
def test_bad_plugin_answers_are_clear_errors(tmp_path: Path, body: str, exit_code: int, message: str) -> None:
    cred = ExecCredential(config(plugin(tmp_path, body=body, exit_code=exit_code)))
    with pytest.raises(ExecCredentialError, match=message):
        cred.run_now()


def test_a_kubeconfig_exec_section_is_checked() -> None:
    with pytest.raises(ExecCredentialError, match="apiVersion"):
        ExecConfig.from_kubeconfig({"apiVersion": "client.authentication.k8s.io/v1alpha1", "command": "x"}, {})
    with pytest.raises(ExecCredentialError, match="no command"):
        ExecConfig.from_kubeconfig({"apiVersion": V1}, {})
