"""The command-line tools the deployment tests run, built from the pinned Go modules in ``tools/``: helm
(lint and render the chart) and actionlint (check the GitHub workflows). Cached outside the repository
under ``$KOP_TOOLS_CACHE`` (default ``~/.cache/kube-oidc-proxy/tools``), keyed by the module files, so a
warm cache makes this a no-op. ``make tools`` builds them before the tests, saying what it does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Final, Literal

MODULE: Final = Path(__file__).resolve().parent / "tools"
PACKAGES: Final = {
    "helm": ("helm.sh/helm/v3/cmd/helm", "-X helm.sh/helm/v3/internal/version.version=v{version}"),
    "actionlint": ("github.com/rhysd/actionlint/cmd/actionlint", "-X main.version={version}"),
}
Tool = Literal["helm", "actionlint"]
TOOLS: Final[tuple[Tool, ...]] = ("helm", "actionlint")


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kube-oidc-proxy" / "tools"
    return Path(os.environ.get("KOP_TOOLS_CACHE", default))


def say(message: str) -> None:
    print(f"[tools] {message}", file=sys.stderr, flush=True)


def _version(package: str) -> str:
    module = package.split("/cmd/", maxsplit=1)[0]
    for line in (MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == module:
            return parts[1].lstrip("v")
    raise RuntimeError(f"{module} is not required in {MODULE / 'go.mod'}")


def tool(name: Tool) -> Path:
    """The tool's binary, built on first use."""
    digest = hashlib.sha256((MODULE / "go.mod").read_bytes() + (MODULE / "go.sum").read_bytes()).hexdigest()[:10]
    package, ldflags = PACKAGES[name]
    binary = cache_root() / f"{name}-{digest}"
    if binary.exists():
        return binary
    if shutil.which("go") is None:
        raise RuntimeError(f"Go is needed to build {name} for the deployment tests (https://go.dev)")
    binary.parent.mkdir(parents=True, exist_ok=True)
    version = _version(package)
    started = time.monotonic()
    say(f"building {name} v{version} from {package}")
    partial = binary.with_suffix(".partial")
    flags = f"-s -w {ldflags.format(version=version)}"
    subprocess.run(
        ["go", "build", "-trimpath", "-ldflags", flags, "-o", str(partial), package],
        cwd=MODULE,
        check=True,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    partial.rename(binary)
    say(f"built {name} in {time.monotonic() - started:.0f}s")
    return binary


def main() -> int:
    if shutil.which("go") is None:
        if os.environ.get("CI", "").lower() == "true":
            say("CI=true but Go is missing: the deployment tests cannot run")
            return 1
        say("Go is missing: the deployment tests will be skipped")
        return 0
    for name in TOOLS:
        tool(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
