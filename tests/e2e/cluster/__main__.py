"""The local cluster for humans (and ``make demo``): a real kube-apiserver, Keycloak and the proxy.

    .venv/bin/python -m tests.e2e.cluster [--kubeconfig-dir demo]

Builds (or reuses) the binaries, starts everything on loopback with browser login on, and writes
``demo/kubeconfig`` for two users (alice: developers, may exec; bob: viewers, may only read pods). Its users
run the proxy's own credential plugin, whose cache the demo seeds with a password grant asking for
``offline_access``: the plugin trades that refresh token for fresh id_tokens when the 15-minute ones expire,
so the kubeconfig keeps working for as long as the demo runs, without a browser. The pod ``web`` answers
``port-forward`` on its port (a small HTTP server on loopback, where the fakelet connects). Prints what to
try, and stops everything on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import yaml

from kube_oidc_proxy.credential.cache import store_tokens
from tests.e2e.cluster import build
from tests.e2e.cluster.cluster import NAMESPACE, Cluster
from tests.e2e.cluster.idp import CLIENT_ID, password_grant
from tests.e2e.cluster.proxy import Proxy

USERS = ("alice", "bob")
SCOPES = ("openid", "offline_access")


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello from the web pod, through kubectl port-forward and kube-oidc-proxy\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _web_server() -> http.server.ThreadingHTTPServer:
    """What ``kubectl port-forward web`` reaches: the fakelet forwards to 127.0.0.1:<the pod's port>."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _plugin_user(cluster: Cluster, cache_dir: Path) -> dict[str, Any]:
    command = Path(sys.prefix) / "bin" / "kube-oidc-proxy"
    return {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": str(command),
            "args": [
                "credential",
                f"--issuer-url={cluster.issuer}",
                f"--client-id={CLIENT_ID}",
                f"--scopes={','.join(SCOPES)}",
                f"--issuer-ca-file={cluster.ca_file}",
                f"--cache-dir={cache_dir}",
            ],
            "interactiveMode": "IfAvailable",
            "provideClusterInfo": False,
        }
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig-dir", default="demo", help="where to write kubeconfig (default: demo)")
    opts = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kop-demo-"))
    cluster = Cluster(workdir, build.ensure())
    proxy = Proxy(cluster)
    web = _web_server()
    try:
        cluster.start()
        proxy.start(f"--login-client-id={CLIENT_ID}", rotate_every=300)
        out = Path(opts.kubeconfig_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        users = {}
        for name in USERS:
            grant = password_grant(cluster.issuer, cluster.ca_file, name, f"{name}-password", " ".join(SCOPES))
            cache_dir = out / "credentials" / name
            store_tokens(cache_dir, cluster.issuer, CLIENT_ID, SCOPES, grant.id_token, grant.refresh_token)
            users[name] = _plugin_user(cluster, cache_dir)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "demo", "cluster": {"server": proxy.url, "certificate-authority": str(cluster.ca_file)}}
            ],
            "users": [{"name": name, "user": user} for name, user in users.items()],
            "contexts": [
                {"name": name, "context": {"cluster": "demo", "user": name, "namespace": NAMESPACE}} for name in users
            ],
            "current-context": "alice",
        }
        kubeconfig = out / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        relative = Path(opts.kubeconfig_dir) / "kubeconfig"
        web_port = web.server_address[1]
        print(
            f"""
kube-oidc-proxy is serving on {proxy.url}, in front of kube-apiserver {cluster.server},
with Keycloak ({cluster.issuer}) as the OIDC provider.

Log in with a browser (alice / alice-password, bob / bob-password; the certificates come from the
demo's own CA, {cluster.ca_file}, so the browser warns first):
  {proxy.url}/login

Or use {relative}: its users run the proxy's credential plugin, which refreshes their 15-minute
tokens by itself (a refresh token from Keycloak, cached in {out / "credentials"}), so these keep
working as long as the demo runs:
  kubectl --kubeconfig {relative} get pods                       # alice (developers)
  kubectl --kubeconfig {relative} auth whoami
  kubectl --kubeconfig {relative} exec -it web -- sh -c 'echo hello from $(pwd)'
  kubectl --kubeconfig {relative} port-forward pod/web 8080:{web_port}   # then: curl localhost:8080
  kubectl --kubeconfig {relative} --context bob delete pod web   # bob (viewers): Forbidden

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
        web.shutdown()
        proxy.stop()
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
