"""The image's recipe without a container engine: deploy/image/install.sh (which the Dockerfile's build stage
runs) installs into a temporary directory from the hash-locked requirements, and the result is what the
image ships. The Dockerfile itself is checked for the properties a cluster admin relies on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "image" / "Dockerfile"
PREFIX_IN_IMAGE = "/opt/kube-oidc-proxy"


def locked_versions() -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==([^\s;\\]+)", (ROOT / "requirements.lock").read_text(), re.M)
    return {name.lower().replace("_", "-"): version for name, version in pins}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    prefix = tmp_path_factory.mktemp("image") / "kube-oidc-proxy"
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "image" / "install.sh"), str(prefix)],
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin", "HOME": str(prefix.parent)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return prefix


def _installed_metadata(installed: Path, lines: str) -> list[str]:
    """What the installed venv's importlib.metadata (as ``m``) says: one word per line of ``lines``."""
    program = f"import importlib.metadata as m; print('\\n'.join({lines}))"
    return subprocess.run(
        [str(installed / "bin" / "python"), "-c", program], capture_output=True, text=True, check=True
    ).stdout.split()


def test_the_command_runs_with_the_locked_libraries(installed: Path) -> None:
    version = subprocess.run(
        [str(installed / "bin" / "kube-oidc-proxy"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    locked = locked_versions()
    for lib in ("httptools", "uvloop", "joserfc", "cryptography", "pyyaml"):
        assert re.search(rf"{lib} {re.escape(locked[lib])}\b", version, re.I), (lib, version)


def test_version_names_the_commit_the_image_was_built_from_or_says_unknown(installed: Path) -> None:
    command = str(installed / "bin" / "kube-oidc-proxy")

    def version(commit: str) -> str:
        env = {"PATH": "/usr/bin:/bin", "KUBE_OIDC_PROXY_COMMIT": commit}
        return subprocess.run([command, "--version"], env=env, capture_output=True, text=True, check=True).stdout

    commit = "4ee8034abcdef0123456789abcdef0123456789a"
    assert f"(commit {commit}; Python " in version(commit)
    # an installed copy is not a checkout: without the build argument nobody knows
    assert "(commit unknown; Python " in version("")


def test_the_installed_proxy_carries_its_license_and_notice(installed: Path) -> None:
    files = _installed_metadata(installed, "str(f) for f in m.files('kube-oidc-proxy')")
    names = {Path(f).name for f in files if ".dist-info/" in f}
    assert {"LICENSE", "NOTICE"} <= names, sorted(names)


def test_the_dockerfile_records_the_commit_ci_builds() -> None:
    final = re.split(r"^FROM ", DOCKERFILE.read_text(), flags=re.M)[-1]
    assert re.search(r'^ARG COMMIT=""$', final, re.M)
    assert re.search(r'^ENV KUBE_OIDC_PROXY_COMMIT="\$\{COMMIT\}"$', final, re.M)
    assert 'org.opencontainers.image.revision="${COMMIT}"' in final
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    build = next(s for s in workflow["jobs"]["build"]["steps"] if s.get("uses", "").startswith("docker/build-push"))
    assert "COMMIT=${{ github.sha }}" in build["with"]["build-args"].splitlines()


def test_the_venv_holds_exactly_the_lock_and_the_proxy(installed: Path) -> None:
    listing = _installed_metadata(installed, "f'{d.name}=={d.version}' for d in m.distributions()")
    present = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1] for line in listing}
    locked = locked_versions()
    source_version = re.search(r'__version__ = "(.+)"', (ROOT / "src/kube_oidc_proxy/__init__.py").read_text())
    assert source_version and present.pop("kube-oidc-proxy") == source_version[1]
    assert present == locked  # no pip, no setuptools, nothing unlocked


def test_the_image_runs_as_non_root_the_installed_command_and_ships_no_compiler() -> None:
    text = DOCKERFILE.read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    build, final = stages[0], stages[-1]
    assert f"install.sh {PREFIX_IN_IMAGE}" in build
    assert f"COPY --from=build {PREFIX_IN_IMAGE} {PREFIX_IN_IMAGE}" in final
    user = re.search(r"^USER (\d+):(\d+)$", final, re.M)
    assert user and int(user[1]) != 0 and int(user[2]) != 0
    entrypoint = re.search(r'^ENTRYPOINT \["(.+)"\]$', final, re.M)
    assert entrypoint and entrypoint[1] == f"{PREFIX_IN_IMAGE}/bin/kube-oidc-proxy"
    # manifests written for the Go image run `command: [/usr/bin/kube-oidc-proxy]` or `[kube-oidc-proxy]`
    assert f"ln -s {PREFIX_IN_IMAGE}/bin/kube-oidc-proxy /usr/bin/kube-oidc-proxy" in final
    assert "apt-get upgrade" in final  # security fixes of the base image at every (daily) build
    for stage in stages:
        assert not re.search(r"\b(gcc|g\+\+|build-essential|python3-dev|make)\b", stage)
    exposed = re.search(r"^EXPOSE (.+)$", final, re.M)
    assert exposed and set(exposed[1].split()) == {"8443", "8080", "9090"}


def test_the_build_context_holds_what_the_recipe_copies() -> None:
    recipe = (ROOT / "deploy" / "image" / "install.sh").read_text()
    used = set(re.findall(r'"\$src/([^"]+)"', recipe)) | {"deploy/image/"}
    allowed = {line[1:] for line in (ROOT / ".dockerignore").read_text().splitlines() if line.startswith("!")}
    for path in used:
        assert path in allowed or path.rstrip("/") + "/" in allowed, path
        assert (ROOT / path).exists(), path
