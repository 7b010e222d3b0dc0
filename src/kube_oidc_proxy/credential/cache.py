"""The user's token cache: one JSON file per (issuer, client id, scopes) holding the last id_token and the
refresh token, so kubectl needs a browser only when the refresh token is gone.

A refresh token is a password in all but name: the directory is 0700, the file 0600 and written
atomically (a temporary file in the same directory, then ``os.replace``), so a crash or a second kubectl
never leaves half a file. A file other users may read, or that another user owns, is ignored (with a
warning): its tokens may have been seen, or planted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
MAX_FILE_BYTES: Final = 1024 * 1024  # id_tokens are large, but not this large
FORMAT_VERSION: Final = 1


class CacheIgnored(Exception):
    """The cache file exists but is not used; the message (a warning for the user) says why."""


@dataclass(frozen=True, slots=True)
class Entry:
    id_token: str
    refresh_token: str | None


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME`` (or ``~/.cache``), then ``kube-oidc-proxy/credentials``."""
    base = environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path(environ.get("HOME") or Path.home()) / ".cache"
    return root / "kube-oidc-proxy" / "credentials"


def key_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Scopes as they name a cache file: ``openid`` first, the others sorted and once each, so the same
    request spelled in another order finds the same tokens. No scopes (the provider's defaults) stay empty."""
    wanted = {s for s in scopes if s}
    if not wanted:
        return ()
    return ("openid", *sorted(wanted - {"openid"}))


def cache_path(cache_dir: Path, issuer: str, client_id: str, scopes: Sequence[str]) -> Path:
    """The file for these tokens: a hash of what they were asked for (no separator could be spoofed)."""
    key = json.dumps([issuer, client_id, list(key_scopes(scopes))])
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.json"


def store_tokens(  # noqa: PLR0917 - positional, as the demo calls it
    cache_dir: Path,
    issuer: str,
    client_id: str,
    scopes: Sequence[str],
    id_token: str,
    refresh_token: str | None,
) -> Path:
    """Write (or replace) the tokens of (issuer, client id, scopes); the path of the file."""
    _ensure_private_dir(cache_dir)
    path = cache_path(cache_dir, issuer, client_id, scopes)
    document = {
        "version": FORMAT_VERSION,
        "issuer": issuer,
        "client_id": client_id,
        "scopes": list(key_scopes(scopes)),
        "id_token": id_token,
        "refresh_token": refresh_token,
    }
    fd, temporary = tempfile.mkstemp(dir=cache_dir, prefix=".tmp-", suffix=".json")  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(document, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return path


def load_tokens(cache_dir: Path, issuer: str, client_id: str, scopes: Sequence[str]) -> Entry | None:
    """The cached tokens; None when there are none. ``CacheIgnored`` when a file exists but must not be used."""
    path = cache_path(cache_dir, issuer, client_id, scopes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CacheIgnored(f"ignoring the token cache {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        problem = _unsafe(info)
        if problem:
            raise CacheIgnored(f"ignoring the token cache {path}: {problem}")
        data = file.read(MAX_FILE_BYTES + 1)
    return _parse(path, data, issuer, client_id, scopes)


def forget_tokens(cache_dir: Path, issuer: str, client_id: str, scopes: Sequence[str]) -> None:
    """Remove the cached tokens (a refused refresh token is of no further use)."""
    with contextlib.suppress(FileNotFoundError):
        cache_path(cache_dir, issuer, client_id, scopes).unlink()


def _unsafe(info: os.stat_result) -> str:
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return f"owned by uid {info.st_uid}, not by this user"
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return f"its mode {mode:04o} lets other users read it (it must be {FILE_MODE:04o}; a new login replaces it)"
    return ""


def _parse(path: Path, data: bytes, issuer: str, client_id: str, scopes: Sequence[str]) -> Entry:
    if len(data) > MAX_FILE_BYTES:
        raise CacheIgnored(f"ignoring the token cache {path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise CacheIgnored(f"ignoring the token cache {path}: not a JSON object")
    expected = (issuer, client_id, list(key_scopes(scopes)))
    if (document.get("issuer"), document.get("client_id"), document.get("scopes")) != expected:
        raise CacheIgnored(f"ignoring the token cache {path}: it was written for another issuer, client or scopes")
    id_token = document.get("id_token")
    refresh_token = document.get("refresh_token")
    if not isinstance(id_token, str) or not (refresh_token is None or isinstance(refresh_token, str)):
        raise CacheIgnored(f"ignoring the token cache {path}: id_token or refresh_token is not a string")
    return Entry(id_token, refresh_token or None)


def _ensure_private_dir(directory: Path) -> None:
    """Create the directory 0700; tighten it when it exists with group or other bits set (ours only)."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = directory.stat()
    if stat.S_IMODE(info.st_mode) & 0o077 and (not hasattr(os, "getuid") or info.st_uid == os.getuid()):
        directory.chmod(DIR_MODE)
