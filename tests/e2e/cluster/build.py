"""Builds (or finds in the cache) everything the end-to-end cluster runs: kube-apiserver and etcd from the
official Go modules, the fakelet, and Keycloak from Maven Central; and the request-info oracle, which the
fuzz target asks how kube-apiserver reads a request (``k8s/requestinfo``, linked from the same modules).
Cached outside the repository under ``$KOP_E2E_CACHE`` (default ``~/.cache/kube-oidc-proxy/e2e``), keyed
by version and by the hash of the module files, so a warm cache makes this a no-op. It says what it does
and how long it took.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.cluster import versions

HERE = Path(__file__).resolve().parent
MAVEN = "https://repo.maven.apache.org/maven2"


def cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kube-oidc-proxy" / "e2e"
    return Path(os.environ.get("KOP_E2E_CACHE", default))


def say(message: str) -> None:
    print(f"[e2e] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Binaries:
    kube_apiserver: Path
    etcd: Path
    fakelet: Path
    keycloak: Path  # the distribution's home
    java_home: Path


def _digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


def _go(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    if shutil.which("go") is None:
        raise RuntimeError("Go is needed to build the end-to-end cluster (https://go.dev; Debian: golang)")
    subprocess.run(["go", *args], cwd=cwd, check=True, env={**os.environ, "CGO_ENABLED": "0", **(env or {})})


def kubernetes() -> tuple[Path, Path]:
    module = HERE / "k8s"
    out = cache_root() / f"k8s-v{versions.KUBERNETES}-{_digest(module / 'go.mod', module / 'go.sum')}"
    apiserver, etcd = out / "kube-apiserver", out / "etcd"
    if apiserver.exists() and etcd.exists():
        return apiserver, etcd
    out.mkdir(parents=True, exist_ok=True)
    minor = versions.KUBERNETES.split(".")[1]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion=v{versions.KUBERNETES}",
            "-X k8s.io/component-base/version.gitMajor=1",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    )
    started = time.monotonic()
    say(f"building kube-apiserver v{versions.KUBERNETES} from k8s.io/kubernetes (cold: ~10 minutes on 2 cores)")
    _go(
        ["build", "-trimpath", "-ldflags", ldflags, "-o", str(apiserver), "k8s.io/kubernetes/cmd/kube-apiserver"],
        module,
    )
    say(f"built kube-apiserver in {time.monotonic() - started:.0f}s ({apiserver.stat().st_size / 1e6:.0f} MB)")
    started = time.monotonic()
    say(f"building etcd v{versions.ETCD} from go.etcd.io/etcd/server/v3")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(etcd), "go.etcd.io/etcd/server/v3"], module)
    say(f"built etcd in {time.monotonic() - started:.0f}s ({etcd.stat().st_size / 1e6:.0f} MB)")
    return apiserver, etcd


def fakelet() -> Path:
    module = HERE / "fakelet"
    binary = cache_root() / f"fakelet-{_digest(module / 'go.mod', module / 'go.sum', module / 'main.go')}"
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    say(f"building the fakelet (k8s.io/cri-streaming v{versions.CRI_STREAMING})")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(binary), "."], module)
    say(f"built the fakelet in {time.monotonic() - started:.0f}s")
    return binary


def requestinfo_oracle_path() -> Path:
    """Where the request-info oracle is cached (it may not be built yet)."""
    module = HERE / "k8s"
    return (
        cache_root()
        / f"requestinfo-{_digest(module / 'go.mod', module / 'go.sum', module / 'requestinfo' / 'main.go')}"
    )


def requestinfo_oracle() -> Path:
    """kube-apiserver's own request reading as a program (``k8s/requestinfo/main.go``): built in the cluster's
    module, so it links exactly the k8s.io/apiserver that kube-apiserver is built from."""
    binary = requestinfo_oracle_path()
    if binary.exists():
        return binary
    binary.parent.mkdir(parents=True, exist_ok=True)
    partial = binary.with_name(binary.name + ".partial")
    started = time.monotonic()
    say(f"building the request-info oracle (k8s.io/apiserver v0.{versions.KUBERNETES.split('.', 1)[1]})")
    _go(["build", "-trimpath", "-ldflags", "-s -w", "-o", str(partial), "./requestinfo"], HERE / "k8s")
    partial.rename(binary)  # whole or not at all: a test may be looking for it
    say(f"built the request-info oracle in {time.monotonic() - started:.0f}s")
    return binary


def java_home() -> Path:
    """A JDK of version 21 or later (Keycloak 26 needs it)."""
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    candidates += sorted(Path("/usr/lib/jvm").glob("*"), reverse=True) if Path("/usr/lib/jvm").exists() else []
    for home in candidates:
        release = home / "release"
        if not release.exists():
            continue
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                major = int(line.split("=", 1)[1].strip('"').split(".")[0])
                if major >= 21:
                    return home
    raise RuntimeError("Keycloak needs a JDK 21 or later (set JAVA_HOME; Debian: openjdk-21-jdk or temurin)")


def keycloak(java: Path) -> Path:
    version = versions.KEYCLOAK
    realm = HERE / "realm.json"
    home = cache_root() / f"keycloak-{version}"
    stamp = home / f".built-{_digest(realm, Path(__file__))}"
    if stamp.exists():
        return home
    archive = cache_root() / f"keycloak-{version}.tar.gz"
    if not archive.exists():
        url = f"{MAVEN}/org/keycloak/keycloak-quarkus-dist/{version}/keycloak-quarkus-dist-{version}.tar.gz"
        started = time.monotonic()
        say(f"downloading Keycloak {version} from Maven Central")
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        with urllib.request.urlopen(url, timeout=300) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
        partial.rename(archive)
        say(f"downloaded Keycloak in {time.monotonic() - started:.0f}s ({archive.stat().st_size / 1e6:.0f} MB)")
    if home.exists():
        shutil.rmtree(home)
    with tarfile.open(archive) as tar:
        tar.extractall(cache_root(), filter="data")
    (home / "data" / "import").mkdir(parents=True, exist_ok=True)
    shutil.copy(realm, home / "data" / "import" / "kube-realm.json")
    started = time.monotonic()
    say("preparing Keycloak (kc.sh build: in-memory database, local cache; once per version)")
    subprocess.run(
        [str(home / "bin" / "kc.sh"), "build", "--db=dev-mem", "--cache=local", "--health-enabled=true"],
        check=True,
        env={**os.environ, "JAVA_HOME": str(java)},
        stdout=subprocess.DEVNULL,
    )
    stamp.touch()
    say(f"prepared Keycloak in {time.monotonic() - started:.0f}s")
    return home


def ensure() -> Binaries:
    apiserver, etcd = kubernetes()
    java = java_home()
    return Binaries(apiserver, etcd, fakelet(), keycloak(java), java)


def missing_tools() -> list[str]:
    """What this machine lacks to build and run the cluster (empty: nothing)."""
    missing = [
        f"{tool} (https://go.dev)" if tool == "go" else tool for tool in ("go", "kubectl") if shutil.which(tool) is None
    ]
    try:
        java_home()
    except RuntimeError:
        missing.append("a JDK 21 or later (for Keycloak)")
    return missing


def main() -> int:
    """Build before the tests run (``make cluster``): a cold build prints its progress here, not in pytest."""
    missing = missing_tools()
    if missing:
        if os.environ.get("CI", "").lower() == "true":
            say(f"CI=true but the end-to-end cluster cannot be built: missing {', '.join(missing)}")
            return 1
        say(f"missing {', '.join(missing)}: the end-to-end suite will be skipped")
        return 0
    started = time.monotonic()
    binaries = ensure()
    requestinfo_oracle()
    say(f"cluster binaries ready in {time.monotonic() - started:.0f}s: {binaries.kube_apiserver.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
