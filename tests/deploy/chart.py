"""The Helm chart (deploy/charts/kube-oidc-proxy) as the tests see it: rendered with the real helm, parsed,
and read the way the kubelet would (the container's command line with ``$(VAR)`` references expanded from
the Secret). Also renders the static manifests in deploy/manifests/:

    .venv/bin/python -m tests.deploy.chart      # rewrites deploy/manifests/kube-oidc-proxy.yaml
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from tests.deploy.tools import tool

ROOT: Final = Path(__file__).resolve().parents[2]
CHART: Final = ROOT / "deploy" / "charts" / "kube-oidc-proxy"
MANIFEST: Final = ROOT / "deploy" / "manifests" / "kube-oidc-proxy.yaml"
MANIFEST_VALUES: Final = ROOT / "deploy" / "manifests" / "values.yaml"
RELEASE: Final = "kube-oidc-proxy"
NAMESPACE: Final = "kube-oidc-proxy"
# helm built from the Go modules defaults to Kubernetes v1.20 (a release build sets its own version with
# ldflags), which the chart's kubeVersion refuses; naming one also keeps the output independent of the helm
# build.
KUBE_VERSION: Final = "1.32.0"

# The least a render needs: the proxy refuses to start without an issuer, so the chart refuses to render.
ISSUER_VALUES: Final[dict[str, Any]] = {"oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "kubernetes"}}

# Every feature on: what `helm lint` and the dry-run apply must accept, and what the flag tests read.
FULL_VALUES: Final[dict[str, Any]] = {
    "replicaCount": 3,
    "imagePullSecrets": [{"name": "registry"}],
    "service": {
        "type": "LoadBalancer",
        "annotations": {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"},
        "loadBalancerSourceRanges": ["10.0.0.0/8"],
    },
    "tls": {"certManager": True, "extraDnsNames": ["k8s.example.com"]},
    "oidc": {
        "clientId": "kubernetes",
        "issuerUrl": "https://issuer.example.com/realms/main",
        "usernameClaim": "email",
        "caPEM": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "usernamePrefix": "oidc:",
        "groupsClaim": "groups",
        "groupsPrefix": "oidc:",
        "signingAlgs": ["RS256", "ES256"],
        "requiredClaims": {"hd": "example.com", "tier": "gold"},
    },
    "tokenPassthrough": {"enabled": True, "audiences": ["https://kubernetes.default.svc", "sts"]},
    "extraImpersonationHeaders": {"clientIP": True, "headers": "Team=platform,env=prod,team=sre"},
    "workers": 4,
    "logFormat": "json",
    "verbosity": 2,
    "shutdownGracePeriod": "1m30s",
    "shutdownDelayDuration": "7.5s",
    "kubeClient": {"qps": 20, "burst": 40},
    "metrics": {
        "enabled": True,
        "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
        "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
    },
    "audit": {
        "enabled": True,
        "log": {"path": "/var/log/kube-oidc-proxy/audit.log", "maxAge": 7, "maxBackup": 3, "maxSize": 100},
        "webhook": {
            "enabled": True,
            "mode": "blocking",
            "batchMaxWait": "5s",
            "kubeconfig": yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "siem", "cluster": {"server": "https://siem.example.com/audit"}}],
                    "users": [{"name": "proxy", "user": {"token": "webhook-token"}}],
                    "contexts": [{"name": "siem", "context": {"cluster": "siem", "user": "proxy"}}],
                    "current-context": "siem",
                }
            ),
        },
    },
    "extraArgs": {"tls-min-version": "VersionTLS13", "request-timeout": "30s"},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "extraVolumes": [{"name": "extra", "configMap": {"name": "extra"}}],
    "extraVolumeMounts": [{"name": "extra", "mountPath": "/extra", "readOnly": True}],
    "ingress": {
        "enabled": True,
        "ingressClassName": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"},
        "hosts": [{"host": "k8s.example.com", "paths": ["/"]}],
        "tls": [{"secretName": "k8s-example-com", "hosts": ["k8s.example.com"]}],
    },
    "rollingUpdateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 2},
    "networkPolicy": {
        "enabled": True,
        "from": [{"ipBlock": {"cidr": "10.0.0.0/16"}}],
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
        "egress": [{"to": [{"ipBlock": {"cidr": "172.20.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]}],
    },
    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
    "initContainers": [{"name": "wait", "image": "busybox:1.36", "command": ["true"]}],
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "proxy", "effect": "NoSchedule"}],
    "podAntiAffinity": "hard",
    "priorityClassName": "system-cluster-critical",
    "podAnnotations": {"example.com/owner": "platform"},
    "podLabels": {"team": "platform"},
    "serviceAccount": {"annotations": {"example.com/role": "proxy"}, "tokenExpirationSeconds": 7200},
    "rbac": {"extraUserExtras": ["Scopes"]},
}

# Several issuers through an AuthenticationConfiguration (authenticationConfig) instead of the oidc values:
# CEL mappings, validation rules and user extras, which the ClusterRole must cover.
AUTHENTICATION_CONFIG: Final[dict[str, Any]] = {
    "apiVersion": "apiserver.config.k8s.io/v1",
    "kind": "AuthenticationConfiguration",
    "jwt": [
        {
            "issuer": {"url": "https://issuer.example.com/realms/main", "audiences": ["kubernetes"]},
            "claimMappings": {
                "username": {"claim": "email", "prefix": "oidc:"},
                "groups": {"claim": "groups", "prefix": "oidc:"},
            },
            "claimValidationRules": [{"claim": "hd", "requiredValue": "example.com"}],
        },
        {
            "issuer": {
                "url": "https://gitlab.example.com",
                "audiences": ["kubernetes", "https://gitlab.example.com"],
                "audienceMatchPolicy": "MatchAny",
            },
            "claimMappings": {
                "username": {"expression": "'gitlab:' + claims.sub"},
                "groups": {"expression": "['gitlab:' + claims.namespace_path]"},
                "extra": [{"key": "example.com/project", "valueExpression": "claims.project_path"}],
            },
        },
    ],
}
AUTHENTICATION_CONFIG_VALUES: Final[dict[str, Any]] = {
    "authenticationConfig": AUTHENTICATION_CONFIG,
    "extraImpersonationHeaders": {"clientIP": True},
    "metrics": {"enabled": True},
}

# A values file as a user of the Go chart (jetstack 0.3.x / Tremolo 0.3.2) has it, with the Go chart's
# null defaults, its map-typed extraVolumes default and audit configured through extraArgs.
GO_CHART_VALUES: Final = """\
replicaCount: 2
service:
  type: LoadBalancer
  port: 443
  annotations:
  loadBalancerIP: ""
  loadBalancerSourceRanges: []
tls:
  secretName:
  certManager: false
  selfSigned: true
  issuerName:
oidc:
  clientId: kubernetes
  issuerUrl: https://dex.example.com
  usernameClaim: email
  caPEM: |
    -----BEGIN CERTIFICATE-----
    MIIBgoCA
    -----END CERTIFICATE-----
  usernamePrefix: "oidc:"
  groupsClaim: groups
  groupsPrefix: "oidc:"
  signingAlgs:
    - RS256
  requiredClaims:
    hd: example.com
tokenPassthrough:
  enabled: true
  audiences: []
extraImpersonationHeaders:
  clientIP: true
  headers: key1=foo,key2=bar,key1=bar
extraArgs:
  audit-log-path: "-"
  audit-policy-file: /audit/audit.yaml
extraVolumeMounts:
  - name: audit
    mountPath: /audit
    readOnly: true
extraVolumes:
  - configMap:
      defaultMode: 420
      name: kube-oidc-proxy-policy
    name: audit
ingress:
  enabled: false
  annotations: {}
  hosts:
    - host: chart-example.local
      paths: []
  tls: []
podDisruptionBudget:
  enabled: true
  minAvailable: 1
resources: {}
initContainers: []
nodeSelector: {}
tolerations: []
affinity: {}
"""


class HelmError(AssertionError):
    pass


def helm() -> Path:
    return tool("helm")


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm()), *args], capture_output=True, text=True, timeout=120, check=False)


def merged(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` merged into ``base`` as Helm merges a later values file: maps key by key, the rest replaced."""
    result = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def with_issuer(values: Mapping[str, Any] | str | None) -> Mapping[str, Any] | str:
    """``values`` with ISSUER_VALUES' issuer and client where they give none and no AuthenticationConfiguration,
    so that a test of something else renders. Text (a user's values file) is taken as it is."""
    if isinstance(values, str):
        return values
    merged: dict[str, Any] = copy.deepcopy(dict(values or {}))
    if merged.get("authenticationConfig") or "authentication-config" in (merged.get("extraArgs") or {}):
        return merged
    oidc = merged.setdefault("oidc", {})
    if isinstance(oidc, dict):
        for key, value in ISSUER_VALUES["oidc"].items():
            oidc.setdefault(key, value)
    return merged


def values_args(values: Mapping[str, Any] | str | None, directory: Path) -> list[str]:
    if values is None:
        return []
    text = values if isinstance(values, str) else yaml.safe_dump(dict(values), sort_keys=False)
    path = directory / "values.yaml"
    path.write_text(text)
    return ["--values", str(path)]


def template_text(
    values: Mapping[str, Any] | str | None = None,
    *,
    values_file: Path | None = None,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    issuer: bool = True,
    chart: Path = CHART,
) -> str:
    """``helm template``'s output; a failed render raises HelmError with helm's message. ``issuer``: add
    ISSUER_VALUES where the values name no issuer (``with_issuer``)."""
    with tempfile.TemporaryDirectory(prefix="kop-chart-") as tmp:
        given = with_issuer(values) if issuer and values_file is None else values
        files = values_args(given, Path(tmp)) + (["--values", str(values_file)] if values_file else [])
        result = run_helm(
            "template", release, str(chart), "--namespace", namespace, "--kube-version", KUBE_VERSION, *files
        )
    if result.returncode != 0:
        raise HelmError(result.stderr.strip())
    return result.stdout


def lint(values: Mapping[str, Any] | str | None = None, *, issuer: bool = True) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="kop-chart-") as tmp:
        given = with_issuer(values) if issuer else values
        return run_helm("lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, *values_args(given, Path(tmp)))


# -- as `helm upgrade` renders: the serving certificate's Secret found in the cluster, and the NOTES -------

# The chart's one lookup of its TLS Secret (templates/_tls.tpl). `helm template` answers it with nothing; the
# copy below answers it from a file, which is all `helm upgrade` adds (tests/e2e/test_chart_install.py
# runs the real lookup).
TLS_LOOKUP: Final = 'lookup "v1" "Secret" .Release.Namespace (include "kube-oidc-proxy.tlsSecretName" .)'
NOTES_CONFIG_MAP: Final = "kop-test-notes"


@dataclass(frozen=True)
class Upgrade:
    rendered: Rendered
    notes: str


def render_upgrade(
    values: Mapping[str, Any] | None = None, *, existing_tls: Mapping[str, Any] | None = None
) -> Upgrade:
    """The chart rendered with ``existing_tls`` (a Secret, or None) as what its lookup finds, and its NOTES."""
    with tempfile.TemporaryDirectory(prefix="kop-chart-upgrade-") as tmp:
        copy_dir = Path(tmp) / CHART.name
        shutil.copytree(CHART, copy_dir)
        helpers = copy_dir / "templates" / "_tls.tpl"
        text = helpers.read_text()
        assert text.count(TLS_LOOKUP) == 1, f"the chart's lookup of its TLS Secret is not {TLS_LOOKUP!r}"
        helpers.write_text(text.replace(TLS_LOOKUP, '.Files.Get "existing-tls.json" | fromJson'))
        (copy_dir / "existing-tls.json").write_text(json.dumps(existing_tls or {}))
        # NOTES.txt as a define, rendered into a ConfigMap: `helm template` leaves NOTES out
        notes = copy_dir / "templates" / "NOTES.txt"
        (copy_dir / "templates" / "_kop_test_notes.tpl").write_text(
            '{{- define "kop-test.notes" -}}\n' + notes.read_text() + "\n{{- end -}}\n"
        )
        notes.unlink()
        (copy_dir / "templates" / "kop-test-notes.yaml").write_text(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {NOTES_CONFIG_MAP}\n"
            'data:\n  notes: {{ include "kop-test.notes" . | toJson }}\n'
        )
        rendered = Rendered.of(template_text(values, chart=copy_dir))
    [config_map] = [
        o for o in rendered.objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == NOTES_CONFIG_MAP
    ]
    objects = [o for o in rendered.objects if o is not config_map]
    return Upgrade(Rendered(objects), str(config_map["data"]["notes"]))


@dataclass(frozen=True)
class Rendered:
    """The objects of one render."""

    objects: list[dict[str, Any]]

    @classmethod
    def of(cls, text: str) -> Rendered:
        return cls([doc for doc in yaml.safe_load_all(text) if doc])

    def all(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str, name: str | None = None) -> dict[str, Any]:
        found = [o for o in self.all(kind) if name is None or o["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name or ''}, found {[o['metadata']['name'] for o in found]}"
        return found[0]

    def has(self, kind: str, name: str | None = None) -> bool:
        return any(name is None or o["metadata"]["name"] == name for o in self.all(kind))

    @property
    def pod(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        containers = self.pod["containers"]
        assert len(containers) == 1
        proxy: dict[str, Any] = containers[0]
        return proxy

    def secret_data(self, name: str) -> dict[str, str]:
        secret = self.one("Secret", name)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        return data | dict(secret.get("stringData") or {})

    def environment(self) -> dict[str, str]:
        """The container's environment as the kubelet builds it from the rendered Secrets and values."""
        env: dict[str, str] = {}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = expand(var["value"], env)
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                data = self.secret_data(ref["name"])
                assert ref["key"] in data, f"{var['name']}: the Secret {ref['name']} has no key {ref['key']}"
                env[var["name"]] = data[ref["key"]]
        return env

    def args(self) -> list[str]:
        """The proxy's command line as the kubelet runs it: ``$(VAR)`` replaced by the variable's value."""
        env = self.environment()
        return [expand(arg, env) for arg in self.container["args"]]

    def flag_values(self, name: str) -> list[str]:
        """The values of every ``--name=value`` on the command line, in order."""
        prefix = f"--{name}="
        return [arg[len(prefix) :] for arg in self.args() if arg.startswith(prefix)]

    def mounts(self) -> dict[str, dict[str, Any]]:
        """Mount path → the volume mounted there."""
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        return {
            m["mountPath"]: volumes[m["name"]] | {"readOnly": m.get("readOnly", False)}
            for m in self.container["volumeMounts"]
        }

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        by_name = {p["name"]: p["containerPort"] for p in self.container["ports"]}
        return int(by_name[name_or_number])


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' expansion of ``$(VAR)`` in args and env values: a defined variable is replaced, an
    undefined reference stays as it is, and ``$$`` is a literal ``$``."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, text)


def render(values: Mapping[str, Any] | str | None = None, **kwargs: Any) -> Rendered:
    return Rendered.of(template_text(values, **kwargs))


# -- the static manifests ------------------------------------------------------------------------------

MANIFEST_HEADER: Final = f"""\
# kube-oidc-proxy: plain Kubernetes manifests, for clusters where Helm is not used.
#
# Rendered from the Helm chart in deploy/charts/kube-oidc-proxy with deploy/manifests/values.yaml, and a
# Namespace added in front:
#
#   helm template {RELEASE} deploy/charts/kube-oidc-proxy --namespace {NAMESPACE} \\
#     --values deploy/manifests/values.yaml --kube-version {KUBE_VERSION}
#
# In this repository do not edit this file: change deploy/manifests/values.yaml (or the chart) and run
# `.venv/bin/python -m tests.deploy.chart`; tests/deploy/test_chart.py fails when this file is stale.
#
# To use it as it is:
#   1. In the Secret kube-oidc-proxy-config, set oidc.issuer-url and oidc.client-id to your OIDC provider's
#      issuer and client id (and the claims and prefixes below them to your needs). Changing these later
#      needs a `kubectl -n {NAMESPACE} rollout restart deployment/kube-oidc-proxy`.
#   2. Create the serving certificate's Secret, which this file does not contain. The certificate must be
#      valid for the name clients use, e.g. kube-oidc-proxy.{NAMESPACE}.svc or your load balancer's name:
#        kubectl apply -f kube-oidc-proxy.yaml   # (the Namespace first; the pods wait for the Secret)
#        kubectl -n {NAMESPACE} create secret tls kube-oidc-proxy-tls --cert=tls.crt --key=tls.key
#   3. The Service is a ClusterIP on port 443: expose it with a LoadBalancer Service or an Ingress that
#      passes TLS through (see the chart's README).
#   4. The ClusterRole grants what docs/impersonation.md describes for these values (kubectl --as; not
#      tokenreviews, which --token-passthrough needs: deploy/rbac.yaml has every rule); add
#      userextras/<key> entries for any extra keys you configure.
#   5. The image tag is the chart's appVersion: `main`, the newest build of the main branch. To run one
#      build everywhere, pin a commit's tag (sha-<first 7 hex of the commit>) or your own build
#      (docs/deploy.md, "The image").
"""


def manifests() -> str:
    namespace = yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    return f"{MANIFEST_HEADER}---\n{namespace}{template_text(values_file=MANIFEST_VALUES)}"


def main() -> int:
    MANIFEST.write_text(manifests())
    print(f"wrote {MANIFEST.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
