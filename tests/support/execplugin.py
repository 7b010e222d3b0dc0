"""A kubeconfig exec credential plugin for tests: a script that counts its runs and answers like
``aws eks get-token``."""

from __future__ import annotations

import datetime
import json
import stat
import sys
from pathlib import Path

V1 = "client.authentication.k8s.io/v1"


def plugin(tmp_path: Path, *, expires_in: float | None = 3600, body: str | None = None, exit_code: int = 0) -> Path:
    """A plugin script that counts its runs and answers like `aws eks get-token` (only the first answer
    expires in ``expires_in``; later ones in an hour)."""
    expiry = ""
    if expires_in is not None:
        when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=expires_in)
        expiry = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    answer = body or json.dumps(
        {"apiVersion": V1, "kind": "ExecCredential", "status": {"token": "TOKEN-{n}", "expirationTimestamp": expiry}}
    )
    script = tmp_path / "plugin.py"
    script.write_text(
        f"""#!{sys.executable}
import json, os, pathlib, sys
runs = pathlib.Path({str(tmp_path / "runs")!r})
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
pathlib.Path({str(tmp_path / "env.json")!r}).write_text(json.dumps(dict(os.environ)))
answer = {answer!r}.replace("{{n}}", str(n))
if n > 1 and {bool(expiry)!r}:
    answer = answer.replace({expiry!r}, {later!r})
print(answer)
sys.exit({exit_code})
"""
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script
