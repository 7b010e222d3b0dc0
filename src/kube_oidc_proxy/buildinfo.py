"""What this build is, for ``kube_oidc_proxy_build_info``: the version, the git commit it was built from, the
Python that runs it.

The commit comes from ``KOP_GIT_COMMIT`` (set where the image is built); without it, ``unknown``.
"""

from __future__ import annotations

import os
import platform
from typing import Final

from kube_oidc_proxy import __version__

COMMIT_ENV: Final = "KOP_GIT_COMMIT"
UNKNOWN: Final = "unknown"


def version() -> str:
    return __version__


def commit() -> str:
    return os.environ.get(COMMIT_ENV, "").strip() or UNKNOWN


def python() -> str:
    return platform.python_version()
