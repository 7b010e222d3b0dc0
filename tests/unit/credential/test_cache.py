"""The token cache: private modes, atomic replacement, one file per (issuer, client, scopes), and files
that other users could read (or wrote) are ignored."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from kube_oidc_proxy.credential import cache

ISSUER = "https://issuer.example/realms/kube"
SCOPES = ("openid", "offline_access")


def store(directory: Path, id_token: str = "id-1", refresh_token: str | None = "rt-1") -> Path:
    return cache.store_tokens(directory, ISSUER, "kube", SCOPES, id_token, refresh_token)


def test_store_then_load(tmp_path: Path) -> None:
    path = store(tmp_path / "c")
    assert path == cache.cache_path(tmp_path / "c", ISSUER, "kube", SCOPES)
    assert cache.load_tokens(tmp_path / "c", ISSUER, "kube", SCOPES) == cache.Entry("id-1", "rt-1")


def test_nothing_cached_is_none(tmp_path: Path) -> None:
    assert cache.load_tokens(tmp_path / "absent", ISSUER, "kube", SCOPES) is None


def test_the_directory_is_0700_and_the_file_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = store(tmp_path / "a" / "c")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_existing_directory_open_to_others_is_tightened(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    directory.mkdir()
    directory.chmod(0o755)
    store(directory)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_a_replacement_is_atomic_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = store(tmp_path, "id-1", "rt-1")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space"):
        store(tmp_path, "id-2", "rt-2")
    assert cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES) == cache.Entry("id-1", "rt-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]

    monkeypatch.undo()
    store(tmp_path, "id-2", "rt-2")
    assert cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES) == cache.Entry("id-2", "rt-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_file_others_may_read_is_ignored_with_a_reason(tmp_path: Path, mode: int) -> None:
    path = store(tmp_path)
    path.chmod(mode)
    with pytest.raises(cache.CacheIgnored) as caught:
        cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES)
    assert str(caught.value) == (
        f"ignoring the token cache {path}: its mode {mode:04o} lets other users read it "
        "(it must be 0600; a new login replaces it)"
    )


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    elsewhere = store(tmp_path / "elsewhere")
    link = cache.cache_path(tmp_path / "c", ISSUER, "kube", SCOPES)
    link.parent.mkdir(mode=0o700)
    link.symlink_to(elsewhere)
    with pytest.raises(cache.CacheIgnored, match="ignoring the token cache"):
        cache.load_tokens(tmp_path / "c", ISSUER, "kube", SCOPES)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"{", "not a JSON object"),
        (b"[]", "not a JSON object"),
        (json.dumps({"issuer": "https://other", "client_id": "kube", "scopes": list(SCOPES)}).encode(), "another"),
        (
            json.dumps({"issuer": ISSUER, "client_id": "kube", "scopes": list(SCOPES), "id_token": 1}).encode(),
            "not a string",
        ),
    ],
)
def test_a_damaged_file_is_ignored(tmp_path: Path, content: bytes, reason: str) -> None:
    path = store(tmp_path)
    path.write_bytes(content)
    with pytest.raises(cache.CacheIgnored, match=reason):
        cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES)


def test_forget(tmp_path: Path) -> None:
    store(tmp_path)
    cache.forget_tokens(tmp_path, ISSUER, "kube", SCOPES)
    assert cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES) is None
    cache.forget_tokens(tmp_path, ISSUER, "kube", SCOPES)  # twice is fine


def test_the_same_scopes_in_another_order_share_a_file_other_requests_do_not(tmp_path: Path) -> None:
    path = cache.cache_path(tmp_path, ISSUER, "kube", ["openid", "offline_access"])
    assert cache.cache_path(tmp_path, ISSUER, "kube", ["offline_access", "openid", "openid"]) == path
    assert cache.cache_path(tmp_path, ISSUER, "kube", ["offline_access"]) == path  # openid is always asked for
    others = {
        cache.cache_path(tmp_path, ISSUER, "kube", ["openid"]),
        cache.cache_path(tmp_path, ISSUER, "kube", []),  # the provider's defaults
        cache.cache_path(tmp_path, ISSUER, "other", SCOPES),
        cache.cache_path(tmp_path, ISSUER + "2", "kube", SCOPES),
    }
    assert path not in others
    assert len(others) == 4


def test_no_refresh_token_is_kept_as_none(tmp_path: Path) -> None:
    store(tmp_path, refresh_token=None)
    assert cache.load_tokens(tmp_path, ISSUER, "kube", SCOPES) == cache.Entry("id-1", None)


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"XDG_CACHE_HOME": "/x/cache", "HOME": "/home/a"}, "/x/cache/kube-oidc-proxy/credentials"),
        ({"HOME": "/home/a"}, "/home/a/.cache/kube-oidc-proxy/credentials"),
        ({"XDG_CACHE_HOME": "relative", "HOME": "/home/a"}, "/home/a/.cache/kube-oidc-proxy/credentials"),
    ],
)
def test_the_default_directory_follows_xdg(environ: dict[str, str], expected: str) -> None:
    assert cache.default_cache_dir(environ) == Path(expected)
