"""The GitHub workflows (for the public repository) are valid and do what docs/deploy.md promises: CI runs
.ci/run; the image is built for amd64 and arm64, scanned, given an SBOM, and rebuilt daily when needed."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import tool

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict[Any, Any]:
    # YAML 1.1 reads the key `on` as True; GitHub reads it as "on"
    doc: dict[Any, Any] = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    doc["on"] = doc.pop(True)
    return doc


def steps(doc: dict[Any, Any], job: str) -> list[dict[str, Any]]:
    return list(doc["jobs"][job]["steps"])


@pytest.mark.skipif(
    shutil.which("go") is None and os.environ.get("CI", "").lower() != "true",
    reason="WORKFLOW LINT SKIPPED: Go is needed to build actionlint",
)
def test_actionlint_finds_nothing() -> None:
    result = subprocess.run(
        [str(tool("actionlint")), "-color=false", *map(str, WORKFLOWS)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_projects_own_entry_point() -> None:
    runs = [step.get("run", "") for step in steps(load("ci.yml"), "test")]
    assert "bash .ci/run" in runs


def test_the_image_is_multi_arch_scanned_with_an_sbom_and_rebuilt_daily() -> None:
    image = load("image.yml")
    assert image["on"]["schedule"], "no daily rebuild"
    build = {step.get("uses", "").split("@")[0]: step for step in steps(image, "build")}
    pushed = build["docker/build-push-action"]["with"]
    assert set(pushed["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert pushed["file"] == "deploy/image/Dockerfile"
    assert pushed["sbom"] is True
    assert "aquasecurity/trivy-action" in build and "anchore/sbom-action" in build
    decide = "\n".join(step.get("run", "") for step in steps(image, "decide"))
    assert "org.opencontainers.image.base.digest" in decide  # a new base image triggers the rebuild
