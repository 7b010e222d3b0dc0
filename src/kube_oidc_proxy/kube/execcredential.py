"""Kubeconfig ``exec`` credential plugins (client.authentication.k8s.io), as EKS users run
``aws eks get-token``: the plugin prints an ExecCredential whose token is used until its
``expirationTimestamp``, then the plugin runs again (early, so no request waits); a 401 from
kube-apiserver runs it again at once.

The first run happens at startup (so a broken plugin is a startup error); later runs are asynchronous, so
the event loop never waits for a subprocess. Plugins that return client certificates are not supported.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

log = logging.getLogger("kop.credentials")

API_VERSIONS: Final = ("client.authentication.k8s.io/v1", "client.authentication.k8s.io/v1beta1")
RUN_TIMEOUT_SECONDS: Final = 60.0
REFRESH_BEFORE_SECONDS: Final = 60.0  # run the plugin this long before the token expires


class ExecCredentialError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ExecConfig:
    command: str
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    api_version: str = "client.authentication.k8s.io/v1"
    cluster: Mapping[str, Any] | None = None  # sent to the plugin when provideClusterInfo is set

    @classmethod
    def from_kubeconfig(cls, section: Mapping[str, Any], cluster: Mapping[str, Any]) -> ExecConfig:
        api_version = str(section.get("apiVersion", ""))
        if api_version not in API_VERSIONS:
            raise ExecCredentialError(f"exec plugin apiVersion {api_version!r} is not one of {', '.join(API_VERSIONS)}")
        command = section.get("command")
        if not isinstance(command, str) or not command:
            raise ExecCredentialError("exec plugin has no command")
        env = tuple((str(e["name"]), str(e["value"])) for e in section.get("env") or () if "name" in e)
        info = dict(cluster) if section.get("provideClusterInfo") else None
        return cls(command, tuple(str(a) for a in section.get("args") or ()), env, api_version, info)

    def environment(self) -> dict[str, str]:
        spec: dict[str, Any] = {"interactive": False}
        if self.cluster is not None:
            spec["cluster"] = self.cluster
        exec_info = {"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec}
        return {**os.environ, **dict(self.env), "KUBERNETES_EXEC_INFO": json.dumps(exec_info)}

    def parse(self, output: bytes) -> tuple[str, float | None]:
        """The token and its expiry (unix time, None: no expiry) from the plugin's output."""
        try:
            credential = json.loads(output)
        except json.JSONDecodeError as exc:
            raise ExecCredentialError("exec plugin did not print JSON") from exc
        if not isinstance(credential, dict) or credential.get("kind") != "ExecCredential":
            raise ExecCredentialError("exec plugin did not print an ExecCredential")
        if credential.get("apiVersion") != self.api_version:
            raise ExecCredentialError(
                f"exec plugin answered {credential.get('apiVersion')!r}, not {self.api_version!r}"
            )
        status = credential.get("status") or {}
        token = status.get("token")
        if not isinstance(token, str) or not token:
            if status.get("clientCertificateData"):
                raise ExecCredentialError("exec plugins that return client certificates are not supported")
            raise ExecCredentialError("exec plugin returned no token")
        expiry = status.get("expirationTimestamp")
        if not expiry:
            return token, None
        try:
            when = datetime.datetime.fromisoformat(str(expiry).replace("Z", "+00:00"))
        except ValueError as exc:
            raise ExecCredentialError(f"exec plugin's expirationTimestamp {expiry!r} is not RFC 3339") from exc
        return token, when.timestamp()


class ExecCredential:
    def __init__(self, config: ExecConfig) -> None:
        self.config = config
        self._token = ""
        self._expires: float | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self.runs = 0

    def run_now(self) -> None:
        """Run the plugin synchronously (at startup)."""
        try:
            done = subprocess.run(  # noqa: S603 - the command is the kubeconfig's, as for kubectl
                [self.config.command, *self.config.args],
                env=self.config.environment(),
                capture_output=True,
                timeout=RUN_TIMEOUT_SECONDS,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ExecCredentialError(f"exec plugin {self.config.command!r} failed: {exc}") from exc
        self._accept(done.returncode, done.stdout, done.stderr)

    async def refresh(self) -> None:
        try:
            process = await asyncio.create_subprocess_exec(
                self.config.command,
                *self.config.args,
                env=self.config.environment(),
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            stdout, stderr = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
            self._accept(process.returncode or 0, stdout, stderr)
        except (OSError, TimeoutError, ExecCredentialError) as exc:
            log.warning("exec credential plugin failed, keeping the last token: %s", exc)

    def _accept(self, returncode: int, stdout: bytes, stderr: bytes) -> None:
        if returncode != 0:
            raise ExecCredentialError(
                f"exec plugin {self.config.command!r} exited {returncode}: {stderr.decode(errors='replace')[:300]}"
            )
        self._token, self._expires = self.config.parse(stdout)
        self.runs += 1

    def token(self) -> str:
        """The current token; starts a refresh in the background when it is about to expire."""
        if self._expires is not None and time.time() > self._expires - REFRESH_BEFORE_SECONDS:
            self.schedule_refresh()
        return self._token

    def schedule_refresh(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            try:
                self._refreshing = asyncio.get_running_loop().create_task(self.refresh())
            except RuntimeError:
                self.run_now()  # no event loop (startup): run it here
