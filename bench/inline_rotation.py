"""The proxy with audit log rotation as it was before compression moved off the event loop, for
bench/audit_rotation.py only: every pass over the rotated files (gzip, pruning) runs in the writer's
call, on the event loop in blocking mode, at Python's default gzip level 9 (the old ``_rotate``).

    python bench/inline_rotation.py <the proxy's flags>
"""

from __future__ import annotations

from kube_oidc_proxy.audit import logbackups
from kube_oidc_proxy.cli import main


def _inline(self: logbackups.BackupKeeper) -> None:
    if self.has_work:
        self.run_pass()


logbackups.BackupKeeper.request = _inline  # type: ignore[method-assign]
logbackups.GZIP_LEVEL = 9  # type: ignore[misc]

raise SystemExit(main())
