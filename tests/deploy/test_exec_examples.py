"""The kubeconfig exec examples people copy (the chart's NOTES, docs/, the READMEs) use the exec credential
API `client.authentication.k8s.io/v1`, and with it the `interactiveMode` that v1 requires: without it
kubectl refuses the user ("interactiveMode must be specified for oidc to use exec authentication plugin").
The NOTES command is run through the real kubectl, which must write a user that kubectl accepts."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest
import yaml

ROOT: Final = Path(__file__).resolve().parents[2]
NOTES: Final = ROOT / "deploy" / "charts" / "kube-oidc-proxy" / "templates" / "NOTES.txt"
PAGES: Final = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    ROOT / "deploy/charts/kube-oidc-proxy/README.md",
]
V1: Final = "client.authentication.k8s.io/v1"


def notes_exec_command() -> list[str]:
    """The NOTES' `kubectl config set-credentials ... --exec-...` command, its template values filled in."""
    text = NOTES.read_text()
    start = text.index("kubectl config set-credentials oidc --exec-")
    end = text.index(")", start)
    command = re.sub(r"\{\{[^}]*\}\}", "https://issuer.example.com", text[start:end]).replace("\\\n", " ")
    return shlex.split(command)


def test_no_example_uses_the_beta_exec_api() -> None:
    for page in [*PAGES, NOTES]:
        assert "client.authentication.k8s.io/v1beta1" not in page.read_text(), page


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_v1_exec_block_in_the_docs_says_its_interactive_mode(page: Path) -> None:
    lines = page.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() == f"apiVersion: {V1}":
            indent = len(line) - len(line.lstrip())
            block = []
            for following in lines[number + 1 :]:
                if following.strip() and len(following) - len(following.lstrip()) < indent:
                    break
                block.append(following.strip())
            assert any(entry.startswith("interactiveMode: ") for entry in block), (page.name, number + 1)


def test_the_notes_command_makes_a_user_kubectl_accepts(tmp_path: Path) -> None:
    command = notes_exec_command()
    assert f"--exec-api-version={V1}" in command
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true but kubectl is missing")
        pytest.skip("KUBECTL MISSING: the NOTES' exec command is not run")
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "kubeconfig")}
    subprocess.run([kubectl, *command[1:]], env=env, capture_output=True, text=True, check=True)
    config = yaml.safe_load((tmp_path / "kubeconfig").read_text())
    (user,) = config["users"]
    exec_config = user["user"]["exec"]
    assert exec_config["apiVersion"] == V1
    assert exec_config["interactiveMode"] == "IfAvailable"
    assert exec_config["args"][:2] == ["oidc-login", "get-token"]
