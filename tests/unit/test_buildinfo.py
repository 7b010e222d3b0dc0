"""The commit --version reports: the one the image was built from, else the checkout's HEAD, else unknown."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube_oidc_proxy import buildinfo

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    buildinfo.commit.cache_clear()
    yield
    buildinfo.commit.cache_clear()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("4ee8034", "4ee8034", id="abbreviated"),
        pytest.param(
            "4EE8034ABCDEF0123456789ABCDEF0123456789A\n", "4ee8034abcdef0123456789abcdef0123456789a", id="full"
        ),
        pytest.param("", None, id="empty: an image built without the build argument"),
        pytest.param("4ee803", None, id="shorter than git abbreviates"),
        pytest.param("main", None, id="a branch is not a commit"),
        pytest.param("4ee8034; rm -rf /", None, id="not a name at all"),
        pytest.param(None, None, id="not set"),
    ],
)
def test_only_a_commit_name_is_taken(given: str | None, expected: str | None) -> None:
    assert buildinfo.parse_commit(given) == expected


def test_the_image_build_argument_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(buildinfo.COMMIT_ENV, "0123456789abcdef0123456789abcdef01234567")
    assert buildinfo.commit() == "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not run from a git checkout")
def test_in_a_checkout_it_is_head(monkeypatch: pytest.MonkeyPatch) -> None:
    if Path(buildinfo.__file__).resolve().parents[2] != ROOT:
        pytest.skip("kube_oidc_proxy is imported from an installed copy, not from this checkout")
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    monkeypatch.delenv(buildinfo.COMMIT_ENV, raising=False)
    monkeypatch.setenv("GIT_DIR", "/nonexistent")  # the caller's git settings do not point it elsewhere
    assert buildinfo.commit() == head.stdout.strip()


def test_without_git_or_a_checkout_it_is_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(buildinfo.COMMIT_ENV, raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert buildinfo.commit() == "unknown"
