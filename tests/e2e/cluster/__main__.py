"""The local cluster for humans (and ``make demo``): a real kube-apiserver, Keycloak and the proxy.

    .venv/bin/python -m tests.e2e.cluster [--kubeconfig-dir demo]

Builds (or reuses) the binaries, starts everything on loopback, writes ``demo/kubeconfig`` with fresh id
tokens for two users (alice: developers, may exec; bob: viewers, may only read pods), prints commands to
try, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import tempfile
import threading
from pathlib import Path

import yaml

from tests.e2e.cluster import build
from tests.e2e.cluster.cluster import NAMESPACE, Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig-dir", default="demo", help="where to write kubeconfig (default: demo)")
    opts = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kop-demo-"))
    cluster = Cluster(workdir, build.ensure())
    proxy = Proxy(cluster)
    try:
        cluster.start()
        proxy.start(rotate_every=300)
        out = Path(opts.kubeconfig_dir)
        out.mkdir(parents=True, exist_ok=True)
        users = {name: id_token(cluster.issuer, cluster.ca_file, name, f"{name}-password") for name in ("alice", "bob")}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "demo", "cluster": {"server": proxy.url, "certificate-authority": str(cluster.ca_file)}}
            ],
            "users": [{"name": name, "user": {"token": token}} for name, token in users.items()],
            "contexts": [
                {"name": name, "context": {"cluster": "demo", "user": name, "namespace": NAMESPACE}} for name in users
            ],
            "current-context": "alice",
        }
        kubeconfig = out / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        print(
            f"""
kube-oidc-proxy is serving on {proxy.url}, in front of kube-apiserver {cluster.server},
with Keycloak ({cluster.issuer}) as the OIDC provider. Tokens are valid for 15 minutes.

Try:
  kubectl --kubeconfig {kubeconfig} get pods                       # alice (developers)
  kubectl --kubeconfig {kubeconfig} exec -it web -- sh -c 'echo hello from $(pwd)'
  kubectl --kubeconfig {kubeconfig} --context bob delete pod web   # bob (viewers): Forbidden

The proxy's access log: {proxy.process.log_path if proxy.process else ""}
Press Ctrl-C to stop.""",
            flush=True,
        )
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
        return 0
    finally:
        proxy.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
