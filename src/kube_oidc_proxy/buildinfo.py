"""Which build this is: the version, the git commit it was built from (when known), the Python that runs it;
for ``--version`` and ``kube_oidc_proxy_build_info``.

The image records it at build time (deploy/image/Dockerfile: the ``COMMIT`` build argument becomes
``KUBE_OIDC_PROXY_COMMIT``; CI passes the pushed commit). Run from a source checkout (an editable install,
``python -m kube_oidc_proxy`` from the repository), it is the checkout's HEAD, asked of git. Otherwise, an
installed copy whose origin nobody wrote down: ``unknown``. Only ``--version`` (and anything else that asks)
pays for the lookup, once.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path
from typing import Final

from kube_oidc_proxy import __version__

COMMIT_ENV: Final = "KUBE_OIDC_PROXY_COMMIT"
UNKNOWN: Final = "unknown"
GIT_TIMEOUT_SECONDS: Final = 2.0  # git answers rev-parse in milliseconds; a hung one must not hang --version

# SHA-1 or SHA-256 object names, abbreviated to git's minimum of 7 or in full
_COMMIT: Final = re.compile(r"[0-9a-f]{7,64}")


def parse_commit(text: str | None) -> str | None:
    """A commit name as given (surrounding space removed), or None for anything that is not one."""
    if text is None:
        return None
    text = text.strip().lower()
    return text if _COMMIT.fullmatch(text) else None


@functools.cache
def commit() -> str:
    """The commit this program was built from, or ``unknown``."""
    return parse_commit(os.environ.get(COMMIT_ENV)) or _checkout_head() or UNKNOWN


def _checkout_head() -> str | None:
    # src/kube_oidc_proxy/buildinfo.py -> the repository root, only when this file lives in a checkout
    root = Path(__file__).resolve().parents[2]
    git = shutil.which("git")
    if git is None or not (root / ".git").exists() or not (root / "pyproject.toml").is_file():
        return None
    # GIT_DIR and friends from the caller's environment would name another repository
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments; the path is this file's own checkout
            [git, "-C", str(root), "rev-parse", "--verify", "--quiet", "HEAD"],
            capture_output=True,
            text=True,
            env=env,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):  # git that cannot run, or does not answer
        return None
    return parse_commit(result.stdout) if result.returncode == 0 else None


def version() -> str:
    return __version__


def python() -> str:
    return platform.python_version()
