"""The Helm chart, rendered by the real helm and read as the kubelet and the proxy would read it: every value
becomes the flag it documents (checked by the proxy's own command-line parser), the pod is locked down, the
RBAC is deploy/rbac.yaml's, a Go chart user's values still work, bad values fail with a message, and the
static manifests in deploy/manifests/ are a fresh render.

helm is built from the pinned Go modules (tests/deploy/tools.py). Without Go the module is skipped loudly;
with CI=true it fails instead.
"""

from __future__ import annotations

import base64
import copy
import datetime
import os
import shutil
from collections.abc import Iterator
from typing import Any, Final

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from kube_oidc_proxy.audit.policy import parse_policy
from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.model import UserInfo
from kube_oidc_proxy.cli import parse
from kube_oidc_proxy.config import Config
from kube_oidc_proxy.errors import ConfigError
from kube_oidc_proxy.requestinfo import request_info
from tests.deploy import certs, chart
from tests.deploy.chart import (
    AUTHENTICATION_CONFIG,
    AUTHENTICATION_CONFIG_VALUES,
    CHART,
    FULL_VALUES,
    GO_CHART_VALUES,
    HelmError,
    Rendered,
    render,
)
from tests.deploy.tools import cache_root

FULLNAME = "kube-oidc-proxy"
DEFAULT_REPOSITORY = "ghcr.io/kube-oidc-proxy/kube-oidc-proxy-python"
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
AUTHENTICATION_DIR = "/etc/kube-oidc-proxy/authentication"
AUTHENTICATION_FILE = f"{AUTHENTICATION_DIR}/authentication-config.yaml"


@pytest.fixture(scope="module", autouse=True)
def helm_available() -> None:
    cached = any(cache_root().glob("helm-*")) if cache_root().exists() else False
    if shutil.which("go") is not None or cached:
        chart.helm()
        return
    message = "CHART TESTS SKIPPED: Go is missing, so helm cannot be built (https://go.dev)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but the chart tests cannot run: {message}")
    print(f"\n{'!' * len(message)}\n{message}\n{'!' * len(message)}")
    pytest.skip(message)


@pytest.fixture(scope="module")
def defaults() -> Rendered:
    return render()


@pytest.fixture(scope="module")
def full() -> Rendered:
    return render(FULL_VALUES)


@pytest.fixture(scope="module")
def go_user() -> Rendered:
    return render(GO_CHART_VALUES)


@pytest.fixture(scope="module")
def authn() -> Rendered:
    return render(AUTHENTICATION_CONFIG_VALUES)


def proxy_config(rendered: Rendered) -> Config:
    """What the proxy makes of the pod's command line (its own parser and validation)."""
    parsed = parse(rendered.args())
    assert parsed is not None
    config, ignored = parsed
    assert ignored == [], f"the chart passes flags the proxy ignores: {ignored}"
    return config


def file_source(rendered: Rendered, path: str) -> tuple[dict[str, Any], str]:
    """The volume a file in the container comes from, and the file's name in that volume."""
    mounts = rendered.mounts()
    directory = max((m for m in mounts if path.startswith(m.rstrip("/") + "/")), key=len, default=None)
    assert directory is not None, f"{path} is on no volume"
    return mounts[directory], path[len(directory.rstrip("/")) + 1 :]


def item_key(volume: dict[str, Any], kind: str, file_name: str) -> str:
    """The Secret or ConfigMap key a mounted file holds."""
    source = volume[kind]
    for item in source.get("items") or []:
        if item["path"] == file_name:
            return str(item["key"])
    assert not source.get("items"), f"{file_name} is not among the mounted items {source['items']}"
    return file_name


def authentication_file(rendered: Rendered) -> str:
    """The AuthenticationConfiguration the proxy reads: the ConfigMap entry its --authentication-config is."""
    volume, name = file_source(rendered, proxy_config(rendered).oidc.authentication_config)
    config_map = rendered.one("ConfigMap", volume["configMap"]["name"])
    return str(config_map["data"][item_key(volume, "configMap", name)])


# -- helm lint -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        None,
        FULL_VALUES,
        GO_CHART_VALUES,
        AUTHENTICATION_CONFIG_VALUES,
        {"authenticationConfig": yaml.safe_dump(AUTHENTICATION_CONFIG)},
        {"oidc": {"issuerUrl": "https://i.example", "clientId": "c"}, "login": {"enabled": True, "clientId": "c"}},
    ],
    ids=["defaults", "full", "go-chart", "authentication-config", "authentication-config-text", "login"],
)
def test_helm_lint_passes(values: dict[str, Any] | str | None) -> None:
    result = chart.lint(values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


# -- what gets installed ---------------------------------------------------------------------------


def app_version() -> str:
    return str(yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"])


def test_defaults_install_the_proxy_and_nothing_optional(defaults: Rendered) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in defaults.objects)
    assert kinds == [
        ("ClusterRole", FULLNAME),
        ("ClusterRoleBinding", FULLNAME),
        ("Deployment", FULLNAME),
        ("Pod", f"{FULLNAME}-test-unauthenticated"),
        ("Secret", f"{FULLNAME}-config"),
        ("Secret", f"{FULLNAME}-tls"),
        ("Service", FULLNAME),
        ("ServiceAccount", FULLNAME),
    ]
    assert defaults.one("Deployment")["spec"]["replicas"] == 1
    assert defaults.container["image"] == "ghcr.io/kube-oidc-proxy/kube-oidc-proxy-python:main"  # what CI publishes


def test_every_namespaced_object_names_the_release_namespace() -> None:
    rendered = render(FULL_VALUES, namespace="auth")
    cluster_scoped = {"ClusterRole", "ClusterRoleBinding"}
    for obj in rendered.objects:
        expected = None if obj["kind"] in cluster_scoped else "auth"
        assert obj["metadata"].get("namespace") == expected, obj["kind"]
    binding = rendered.one("ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "auth"}]


def test_names_follow_the_release_and_overrides() -> None:
    assert render(release="auth").one("Deployment")["metadata"]["name"] == "auth-kube-oidc-proxy"
    overridden = render({"fullnameOverride": "oidc"})
    assert {o["metadata"]["name"] for o in overridden.all("Secret")} == {"oidc-config", "oidc-tls"}
    assert overridden.pod["serviceAccountName"] == "oidc"
    assert overridden.one("ClusterRoleBinding")["roleRef"]["name"] == "oidc"


def test_image_tag_and_pull_secrets() -> None:
    rendered = render({"image": {"tag": "0.2.0"}, "imagePullSecrets": [{"name": "registry"}]})
    assert rendered.container["image"] == f"{DEFAULT_REPOSITORY}:0.2.0"
    assert rendered.pod["imagePullSecrets"] == [{"name": "registry"}]


# -- the command line ------------------------------------------------------------------------------


def test_default_command_line(defaults: Rendered) -> None:
    args = defaults.args()
    assert "command" not in defaults.container, "the image's ENTRYPOINT is the proxy"
    for flag in ("--secure-port=8443", "--readiness-probe-port=8080", "--oidc-signing-algs=RS256"):
        assert flag in args
    for flag in ("--workers=1", "--log-format=text", "--v=0", "--shutdown-grace-period=20s"):
        assert flag in args
    for flag in ("--shutdown-delay-duration=5s",):  # endpoint removal happens while the proxy still serves
        assert flag in args
    assert not [a for a in args if a.startswith(("--metrics", "--audit", "--token-passthrough", "--extra-user"))]
    assert not [a for a in args if a.startswith(("--oidc-required-claim", "--oidc-ca-file", "--kube-client"))]


NO_ISSUER = "no issuer is configured"
WHAT_TO_SET = "set oidc.issuerUrl to your OIDC provider's issuer URL and oidc.clientId to the client"


@pytest.mark.parametrize(
    ("values", "missing"),
    [
        (None, "oidc.issuerUrl and oidc.clientId"),
        ({"oidc": {"issuerUrl": "https://issuer.example.com"}}, "oidc.clientId"),
        ({"oidc": {"clientId": "kubernetes", "issuerUrl": ""}}, "oidc.issuerUrl"),
        ({"authenticationConfig": {}}, "oidc.issuerUrl and oidc.clientId"),  # empty: the oidc values apply
    ],
    ids=["nothing", "no-client", "empty-issuer", "empty-authentication-config"],
)
def test_without_an_issuer_the_install_fails_saying_what_to_set(values: dict[str, Any] | None, missing: str) -> None:
    with pytest.raises(HelmError) as failure:
        chart.template_text(values, issuer=False)
    assert f"{NO_ISSUER} ({missing} not set)" in str(failure.value)
    assert WHAT_TO_SET in str(failure.value) and "or set authenticationConfig" in str(failure.value)
    # helm lint reports a template's fail() without failing (lint renders with whatever values it has)
    linted = chart.lint(values, issuer=False)
    assert f"Fail: {NO_ISSUER}" in linted.stdout + linted.stderr


def test_an_issuer_from_extra_args_or_an_authentication_config_is_enough() -> None:
    rendered = render(
        {"extraArgs": {"oidc-issuer-url": "https://issuer.example.com", "oidc-client-id": "kubernetes"}}, issuer=False
    )
    assert proxy_config(rendered).oidc.issuer_url == "https://issuer.example.com"
    assert proxy_config(render(AUTHENTICATION_CONFIG_VALUES, issuer=False)).oidc.authentication_config


def test_the_proxy_itself_refuses_to_start_without_an_issuer(defaults: Rendered) -> None:
    # what the render refusal saves: a pod that starts and exits with this, again and again
    args = [a for a in defaults.args() if not a.startswith(("--oidc-issuer-url", "--oidc-client-id"))]
    with pytest.raises(ConfigError, match="--oidc-issuer-url is required"):
        parse(args)


def test_every_value_becomes_its_flag(full: Rendered) -> None:
    config = proxy_config(full)
    oidc = config.oidc
    assert oidc.issuer_url == "https://issuer.example.com/realms/main"
    assert oidc.client_id == "kubernetes"
    assert (oidc.username_claim, oidc.username_prefix) == ("email", "oidc:")
    assert (oidc.groups_claim, oidc.groups_prefix) == ("groups", "oidc:")
    assert oidc.signing_algs == ("RS256", "ES256")
    assert oidc.required_claims == (("hd", "example.com"), ("tier", "gold"))
    proxy = config.proxy
    assert proxy.token_passthrough
    assert proxy.token_passthrough_audiences == ("https://kubernetes.default.svc", "sts")
    assert proxy.extra_user_header_client_ip
    # keys lower-cased, as kube-apiserver always read them, so "Team" and "team" are one key
    assert proxy.extra_user_headers == (("team", ("platform", "sre")), ("env", ("prod",)))
    assert proxy.workers == 4
    assert proxy.shutdown_grace == 90
    assert proxy.shutdown_delay == 7.5
    assert proxy.log_format == "json"
    assert proxy.metrics_bind_address == ":9090"
    assert config.verbosity == 2
    assert (config.client.qps, config.client.burst) == (20, 40)
    assert config.serving.tls_min_version == "VersionTLS13"  # extraArgs
    assert config.client.request_timeout == 30  # extraArgs
    assert config.serving.secure_port == 8443
    # no connection flag: the pod uses the in-cluster configuration with the projected token
    assert not config.client.explicit


def test_required_claims_are_one_flag_each_not_signing_algs(full: Rendered) -> None:
    # the Go chart rendered requiredClaims as --oidc-signing-algs=$(OIDC_REQUIRED_CLAIMS)
    assert full.flag_values("oidc-required-claim") == ["hd=example.com", "tier=gold"]
    assert full.flag_values("oidc-signing-algs") == ["RS256,ES256"]


def test_oidc_settings_come_from_the_config_secret(full: Rendered) -> None:
    # as in the Go chart: the Secret <fullname>-config with keys oidc.*, passed as --oidc-...=$(OIDC_...)
    raw = full.container["args"]
    assert "--oidc-issuer-url=$(OIDC_ISSUER_URL)" in raw
    assert "--oidc-client-id=$(OIDC_CLIENT_ID)" in raw
    data = full.secret_data(f"{FULLNAME}-config")
    assert data["oidc.issuer-url"] == "https://issuer.example.com/realms/main"
    assert data["oidc.client-id"] == "kubernetes"
    assert data["oidc.signing-algs"] == "RS256,ES256"
    assert data["oidc.ca-pem"] == FULL_VALUES["oidc"]["caPEM"]


def test_the_issuer_ca_is_a_file_from_the_config_secret(full: Rendered) -> None:
    ca_file = proxy_config(full).oidc.ca_file
    volume, name = file_source(full, ca_file)
    assert volume["secret"]["secretName"] == f"{FULLNAME}-config"
    assert item_key(volume, "secret", name) == "oidc.ca-pem"
    assert volume["readOnly"]


def test_extra_args_come_last_in_name_order_and_lists_repeat() -> None:
    rendered = render({"extraArgs": {"tls-sni-cert-key": ["/a.crt,/a.key", "/b.crt,/b.key"], "flush-interval": "1s"}})
    assert rendered.args()[-3:] == [
        "--flush-interval=1s",
        "--tls-sni-cert-key=/a.crt,/a.key",
        "--tls-sni-cert-key=/b.crt,/b.key",
    ]


def test_kube_client_rate_only_when_set(defaults: Rendered) -> None:
    assert not defaults.flag_values("kube-client-qps")
    rendered = render({"kubeClient": {"qps": 12.5}})
    assert rendered.flag_values("kube-client-qps") == ["12.5"]
    assert not rendered.flag_values("kube-client-burst")


def test_disable_impersonation() -> None:
    rendered = render({"disableImpersonation": True})
    assert proxy_config(rendered).proxy.disable_impersonation


def test_a_config_change_rolls_the_pods(defaults: Rendered) -> None:
    changed = render({"oidc": {"clientId": "another"}})
    annotation = "checksum/config"
    before = defaults.one("Deployment")["spec"]["template"]["metadata"]["annotations"][annotation]
    after = changed.one("Deployment")["spec"]["template"]["metadata"]["annotations"][annotation]
    assert before != after


# -- authenticationConfig --------------------------------------------------------------------------


def test_authentication_config_is_a_file_from_a_config_map(authn: Rendered) -> None:
    # the proxy's own parser: it refuses --authentication-config with any --oidc-* flag
    config = proxy_config(authn)
    assert config.oidc.authentication_config == AUTHENTICATION_FILE
    volume, name = file_source(authn, AUTHENTICATION_FILE)
    assert volume["configMap"] == {"name": f"{FULLNAME}-authentication"}
    assert item_key(volume, "configMap", name) == "authentication-config.yaml"
    assert volume["readOnly"]
    specs = parse_authentication_config(authentication_file(authn)).authenticators
    assert [s.issuer_url for s in specs] == ["https://issuer.example.com/realms/main", "https://gitlab.example.com"]
    assert [e.key for e in specs[1].extra] == ["example.com/project"]


def test_authentication_config_is_mounted_as_a_directory(authn: Rendered) -> None:
    # the kubelet updates a ConfigMap mounted as a directory (atomically), never one mounted with subPath:
    # the proxy re-reads the file, so an upgrade that changes it applies without a restart
    [mount] = [m for m in authn.container["volumeMounts"] if m["name"] == "authentication-config"]
    assert mount == {"name": "authentication-config", "mountPath": AUTHENTICATION_DIR, "readOnly": True}


def test_no_oidc_flags_env_or_config_secret_with_an_authentication_config(authn: Rendered) -> None:
    assert not [a for a in authn.args() if a.startswith("--oidc-")]
    assert not [a for a in authn.container["args"] if "$(" in a]
    assert "env" not in authn.container
    assert not authn.has("Secret", f"{FULLNAME}-config")
    assert "oidc-ca" not in {v["name"] for v in authn.pod["volumes"]}
    # the other values still become their flags
    config = proxy_config(authn)
    assert config.proxy.extra_user_header_client_ip
    assert config.proxy.metrics_bind_address == ":9090"


def test_a_change_to_the_authentication_config_does_not_roll_the_pods(authn: Rendered) -> None:
    values = copy.deepcopy(AUTHENTICATION_CONFIG_VALUES)
    values["authenticationConfig"]["jwt"][0]["issuer"]["audiences"] = ["kubernetes", "dashboard"]
    changed = render(values)
    assert authentication_file(changed) != authentication_file(authn)
    assert changed.one("Deployment")["spec"]["template"] == authn.one("Deployment")["spec"]["template"]


def test_authentication_config_as_a_map_or_text_gives_the_same_file() -> None:
    text = "# every issuer that may log in\n" + yaml.safe_dump(AUTHENTICATION_CONFIG, sort_keys=False)
    forms = {
        "map": AUTHENTICATION_CONFIG,
        "text": text,
        "content": {"content": text},  # the RafPe chart's authenticationConfig.content
    }
    rendered = {form: render({"authenticationConfig": value}) for form, value in forms.items()}
    files = {form: authentication_file(r) for form, r in rendered.items()}
    assert all(yaml.safe_load(f) == AUTHENTICATION_CONFIG for f in files.values())
    assert files["text"] == files["content"] == text, "text is kept as written, comments included"
    # and everything else is the same too
    for kind in ("Deployment", "ClusterRole"):
        assert rendered["map"].one(kind) == rendered["text"].one(kind) == rendered["content"].one(kind)


def test_an_empty_authentication_config_leaves_the_oidc_values() -> None:
    oidc = {"issuerUrl": "https://issuer.example.com", "clientId": "kubernetes"}
    for empty in ({}, "", None, {"content": ""}):
        rendered = render({"authenticationConfig": empty, "oidc": oidc})
        assert proxy_config(rendered).oidc.issuer_url == "https://issuer.example.com"
        assert not rendered.flag_values("authentication-config")
        assert not rendered.has("ConfigMap")


def test_authentication_config_and_the_oidc_flags_are_mutually_exclusive() -> None:
    values = {
        "authenticationConfig": AUTHENTICATION_CONFIG,
        "oidc": {"issuerUrl": "https://issuer.example.com", "clientId": "kubernetes"},
    }
    with pytest.raises(HelmError) as failure:
        chart.template_text(values)
    assert "authenticationConfig cannot be combined with oidc.issuerUrl, oidc.clientId" in str(failure.value)
    # as the proxy: the chart refuses what would make it exit
    with pytest.raises(ConfigError, match="cannot be combined with --oidc-issuer-url"):
        parse([f"--authentication-config={AUTHENTICATION_FILE}", "--oidc-issuer-url=https://issuer.example.com"])


def test_authentication_config_extra_keys_are_added_to_the_cluster_role(authn: Rendered) -> None:
    expected = reviewed_rules(without=PASSTHROUGH_RULES)
    extras = next(r for r in expected if any(res.startswith("userextras/") for res in r["resources"]))
    extras["resources"] += ["userextras/example.com/project"]
    assert authn.one("ClusterRole")["rules"] == expected


def test_your_own_authentication_config_file_through_extra_args() -> None:
    values = {
        "extraArgs": {"authentication-config": "/etc/authn/config.yaml"},
        "extraVolumes": [{"name": "authn", "secret": {"secretName": "authn"}}],
        "extraVolumeMounts": [{"name": "authn", "mountPath": "/etc/authn", "readOnly": True}],
    }
    rendered = render(values)
    assert proxy_config(rendered).oidc.authentication_config == "/etc/authn/config.yaml"
    assert not [a for a in rendered.args() if a.startswith("--oidc-")]
    assert not rendered.has("Secret", f"{FULLNAME}-config") and not rendered.has("ConfigMap")
    assert file_source(rendered, "/etc/authn/config.yaml")[0]["secret"] == {"secretName": "authn"}


# -- browser login ---------------------------------------------------------------------------------

LOGIN_DIR = "/etc/kube-oidc-proxy/login"
LOGIN_SECRET = "l0gin-s3cret-value"
LOGIN_OIDC = {"issuerUrl": "https://issuer.example.com/realms/main", "clientId": "kube-oidc-proxy"}
LOGIN_VALUES: dict[str, Any] = {
    "oidc": LOGIN_OIDC,
    "login": {
        "enabled": True,
        "clientId": "kube-oidc-proxy",
        "clientSecret": LOGIN_SECRET,
        "redirectUrl": "https://k8s.example.com/login/callback",
        "scopes": ["openid", "email", "groups", "offline_access"],
    },
}


def login_flags(rendered: Rendered) -> list[str]:
    return [a for a in rendered.args() if a.startswith("--login-")]


def test_login_off_renders_no_login_flag_secret_or_volume(defaults: Rendered) -> None:
    # off by default, and the other login values do nothing without enabled
    ignored = render({"login": {"clientId": "kube-oidc-proxy", "clientSecret": LOGIN_SECRET, "scopes": ["openid"]}})
    for rendered in (defaults, ignored):
        assert login_flags(rendered) == []
        assert not rendered.has("Secret", f"{FULLNAME}-login")
        assert LOGIN_DIR not in rendered.mounts()
        assert "checksum/login" not in rendered.one("Deployment")["spec"]["template"]["metadata"]["annotations"]


def test_login_on_renders_its_flags() -> None:
    rendered = render(LOGIN_VALUES)
    assert rendered.flag_values("login-client-id") == ["kube-oidc-proxy"]
    assert rendered.flag_values("login-redirect-url") == ["https://k8s.example.com/login/callback"]
    assert rendered.flag_values("login-scopes") == ["openid,email,groups,offline_access"]
    assert rendered.flag_values("login-client-secret-file") == [f"{LOGIN_DIR}/client-secret"]
    # the OIDC flags are unchanged: the login client's id_tokens are checked like any other
    assert rendered.flag_values("oidc-client-id") == ["kube-oidc-proxy"]


def test_login_defaults_leave_redirect_and_scopes_to_the_proxy() -> None:
    # a public client: PKCE alone, no secret file; the redirect URI from the Host, the scopes from discovery
    rendered = render({"oidc": LOGIN_OIDC, "login": {"enabled": True, "clientId": "kube-oidc-proxy"}})
    assert login_flags(rendered) == ["--login-client-id=kube-oidc-proxy"]
    assert not rendered.has("Secret", f"{FULLNAME}-login")
    assert LOGIN_DIR not in rendered.mounts()


def test_login_client_secret_is_a_mounted_file_never_an_argument_or_variable() -> None:
    rendered = render(LOGIN_VALUES)
    [path] = rendered.flag_values("login-client-secret-file")
    volume, name = file_source(rendered, path)
    assert volume["readOnly"]
    assert volume["secret"]["secretName"] == f"{FULLNAME}-login"
    assert rendered.secret_data(f"{FULLNAME}-login")[item_key(volume, "secret", name)] == LOGIN_SECRET
    container = rendered.container
    assert not [a for a in container["args"] if LOGIN_SECRET in a]
    assert not [a for a in rendered.args() if LOGIN_SECRET in a]
    assert LOGIN_SECRET not in rendered.environment().values()
    assert LOGIN_SECRET not in yaml.safe_dump(container.get("env", []))
    # nor anywhere in the Deployment (a checksum of the Secret is not the secret)
    assert LOGIN_SECRET not in yaml.safe_dump(rendered.one("Deployment"))
    assert LOGIN_SECRET not in yaml.safe_dump(rendered.secret_data(f"{FULLNAME}-config"))


def test_login_existing_secret_is_mounted_and_not_created() -> None:
    values = copy.deepcopy(LOGIN_VALUES)
    del values["login"]["clientSecret"]
    values["login"] |= {"existingSecret": "idp-client", "existingSecretKey": "secret"}
    rendered = render(values)
    assert not rendered.has("Secret", f"{FULLNAME}-login")
    [path] = rendered.flag_values("login-client-secret-file")
    volume, name = file_source(rendered, path)
    assert volume["secret"]["secretName"] == "idp-client"
    assert item_key(volume, "secret", name) == "secret"
    assert volume["readOnly"]


def test_a_login_secret_change_rolls_the_pods() -> None:
    changed = copy.deepcopy(LOGIN_VALUES)
    changed["login"]["clientSecret"] = "rotated"
    annotations = [
        render(v).one("Deployment")["spec"]["template"]["metadata"]["annotations"] for v in (LOGIN_VALUES, changed)
    ]
    assert annotations[0]["checksum/login"] != annotations[1]["checksum/login"]


def test_login_with_an_authentication_config() -> None:
    values = copy.deepcopy(AUTHENTICATION_CONFIG_VALUES) | {"login": {"enabled": True, "clientId": "kubernetes"}}
    rendered = render(values)
    assert rendered.flag_values("login-client-id") == ["kubernetes"]
    assert rendered.flag_values("authentication-config") == [AUTHENTICATION_FILE]
    assert not [a for a in rendered.args() if a.startswith("--oidc-")]


# -- metrics ---------------------------------------------------------------------------------------


def test_metrics_port_service_and_service_monitor(full: Rendered) -> None:
    assert full.flag_values("metrics-bind-address") == [":9090"]
    service = full.one("Service", f"{FULLNAME}-metrics")
    assert service["spec"]["type"] == "ClusterIP"
    [port] = service["spec"]["ports"]
    assert (port["name"], port["port"], full.port(port["targetPort"])) == ("metrics", 9090, 9090)
    # the main Service is a LoadBalancer here: the metrics must not be on it
    assert [p["name"] for p in full.one("Service", FULLNAME)["spec"]["ports"]] == ["https"]
    monitor = full.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    main_labels = full.one("Service", FULLNAME)["metadata"]["labels"]
    assert not selector.items() <= main_labels.items(), "the ServiceMonitor must select only the metrics Service"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http", "interval": "30s"}
    ]


def test_no_metrics_by_default(defaults: Rendered) -> None:
    assert not defaults.flag_values("metrics-bind-address")
    assert "metrics" not in {p["name"] for p in defaults.container["ports"]}
    assert not defaults.has("Service", f"{FULLNAME}-metrics")
    assert not defaults.has("ServiceMonitor")


# -- audit -----------------------------------------------------------------------------------------


def test_audit_policy_is_a_read_only_config_map_the_proxy_can_load(full: Rendered) -> None:
    config = proxy_config(full)
    volume, name = file_source(full, config.audit.policy_file)
    assert volume["readOnly"]
    config_map = full.one("ConfigMap", volume["configMap"]["name"])
    policy = parse_policy(config_map["data"][item_key(volume, "configMap", name)])
    alice = UserInfo("alice@example.com", groups=("oidc:developers",))
    get_pod = policy.decide(alice, request_info("GET", "/api/v1/namespaces/default/pods/web"))
    assert get_pod.level == "Metadata"
    assert "RequestReceived" in get_pod.omit_stages
    assert policy.decide(alice, request_info("GET", "/apis/apps/v1")).level == "None"
    assert policy.decide(alice, request_info("GET", "/api")).level == "None"


def test_audit_log_file_is_on_a_writable_volume(full: Rendered) -> None:
    audit = proxy_config(full).audit
    assert audit.log_path == "/var/log/kube-oidc-proxy/audit.log"
    assert (audit.log_max_age, audit.log_max_backup, audit.log_max_size) == (7, 3, 100)
    assert (audit.log_format, audit.log_mode) == ("json", "blocking")
    volume, _ = file_source(full, audit.log_path)
    assert volume["emptyDir"] == {} and not volume["readOnly"]


def test_audit_webhook_kubeconfig_is_a_mounted_secret(full: Rendered) -> None:
    audit = proxy_config(full).audit
    volume, name = file_source(full, audit.webhook_config_file)
    secret = full.secret_data(volume["secret"]["secretName"])
    kubeconfig = yaml.safe_load(secret[item_key(volume, "secret", name)])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == "https://siem.example.com/audit"
    assert audit.webhook_mode == "blocking"
    assert audit.webhook_batch.max_wait == 5
    assert audit.webhook_batch.max_size == 400


def test_audit_to_stdout_needs_no_volume() -> None:
    rendered = render({"audit": {"enabled": True}, "oidc": {"issuerUrl": "https://i.example", "clientId": "c"}})
    audit = proxy_config(rendered).audit
    assert audit.log_path == "-"
    assert not audit.webhook_config_file
    assert not rendered.flag_values("audit-log-maxsize")
    assert "audit-log" not in {v["name"] for v in rendered.pod["volumes"]}
    assert not rendered.has("Secret", f"{FULLNAME}-audit-webhook")


def test_no_audit_by_default(defaults: Rendered) -> None:
    assert not [a for a in defaults.args() if a.startswith("--audit")]
    assert not defaults.all("ConfigMap")


# -- the pod's security ----------------------------------------------------------------------------


def test_container_is_locked_down(defaults: Rendered) -> None:
    assert defaults.container["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert defaults.pod["securityContext"] == {"fsGroup": 65532}


def test_security_context_is_overridable() -> None:
    rendered = render({"securityContext": {"runAsUser": 1000, "runAsGroup": 1000}, "podSecurityContext": None})
    assert rendered.container["securityContext"]["runAsUser"] == 1000
    assert rendered.container["securityContext"]["readOnlyRootFilesystem"]
    assert "securityContext" not in rendered.pod


def test_tmp_is_the_writable_directory(defaults: Rendered) -> None:
    mounts = defaults.mounts()
    assert mounts["/tmp"]["emptyDir"] == {} and not mounts["/tmp"]["readOnly"]
    writable = [path for path, volume in mounts.items() if not volume["readOnly"]]
    assert writable == ["/tmp"]


def test_service_account_token_is_short_lived_and_projected(defaults: Rendered) -> None:
    assert defaults.pod["automountServiceAccountToken"] is False
    assert defaults.one("ServiceAccount")["automountServiceAccountToken"] is False
    volume = defaults.mounts()[SERVICE_ACCOUNT_DIR]
    assert volume["readOnly"]
    sources = volume["projected"]["sources"]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 3600}} in sources
    assert {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}} in sources
    namespace = {"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}
    assert {"downwardAPI": {"items": [namespace]}} in sources
    longer = render({"serviceAccount": {"tokenExpirationSeconds": 7200}}).mounts()[SERVICE_ACCOUNT_DIR]
    assert {"serviceAccountToken": {"path": "token", "expirationSeconds": 7200}} in longer["projected"]["sources"]


def test_probes(defaults: Rendered) -> None:
    readiness, liveness = defaults.container["readinessProbe"], defaults.container["livenessProbe"]
    assert readiness["httpGet"]["path"] == "/ready"
    assert liveness["httpGet"]["path"] == "/healthz"
    probe_port = int(defaults.flag_values("readiness-probe-port")[0])
    assert defaults.port(readiness["httpGet"]["port"]) == defaults.port(liveness["httpGet"]["port"]) == probe_port
    assert probe_port == 8080
    tuned = render({"readinessProbe": {"periodSeconds": 2}}).container["readinessProbe"]
    assert tuned["periodSeconds"] == 2 and tuned["httpGet"]["path"] == "/ready"


def test_termination_grace_outlasts_the_shutdown_delay_and_grace(defaults: Rendered, full: Rendered) -> None:
    # the kubelet's SIGKILL must come after the delay (still serving) and the drain (--shutdown-grace-period)
    assert defaults.pod["terminationGracePeriodSeconds"] == 35  # 5s + 20s + 10
    assert full.pod["terminationGracePeriodSeconds"] == 108  # 7.5s (rounded up) + 1m30s + 10
    assert render({"shutdownGracePeriod": "2.5s"}).pod["terminationGracePeriodSeconds"] == 18
    assert render({"shutdownDelayDuration": "0s"}).pod["terminationGracePeriodSeconds"] == 30
    assert render({"terminationGracePeriodSeconds": 300}).pod["terminationGracePeriodSeconds"] == 300


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, "preferredDuringSchedulingIgnoredDuringExecution"),
        ({"podAntiAffinity": "hard"}, "requiredDuringSchedulingIgnoredDuringExecution"),
        ({"podAntiAffinity": ""}, None),
    ],
)
def test_replicas_spread_over_nodes(values: dict[str, Any], expected: str | None) -> None:
    pod = render(values).pod
    if expected is None:
        assert "affinity" not in pod
        return
    [rule] = pod["affinity"]["podAntiAffinity"][expected]
    term = rule.get("podAffinityTerm", rule)
    assert term["topologyKey"] == "kubernetes.io/hostname"
    selector = render().one("Deployment")["spec"]["selector"]["matchLabels"]
    assert term["labelSelector"]["matchLabels"] == selector


def test_an_explicit_affinity_replaces_the_anti_affinity() -> None:
    affinity: dict[str, Any] = {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    }
    assert render({"affinity": affinity, "podAntiAffinity": "hard"}).pod["affinity"] == affinity


def test_pod_scheduling_and_metadata_values(full: Rendered) -> None:
    pod, template = full.pod, full.one("Deployment")["spec"]["template"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == FULL_VALUES["tolerations"]
    assert pod["initContainers"] == FULL_VALUES["initContainers"]
    assert template["metadata"]["labels"]["team"] == "platform"
    assert template["metadata"]["annotations"]["example.com/owner"] == "platform"
    assert full.one("Deployment")["spec"]["strategy"] == FULL_VALUES["rollingUpdateStrategy"]
    assert full.container["resources"] == FULL_VALUES["resources"]
    assert {"name": "TZ", "value": "UTC"} in full.container["env"]
    assert full.mounts()["/extra"]["configMap"] == {"name": "extra"}
    assert full.one("ServiceAccount")["metadata"]["annotations"] == {"example.com/role": "proxy"}
    pdb = full.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"] == full.one("Deployment")["spec"]["selector"]


# -- RBAC ------------------------------------------------------------------------------------------


def reviewed_rules(*, without: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """deploy/rbac.yaml's rules (every feature on), less the resources named in ``without`` (and any rule
    left with none)."""
    documents = yaml.safe_load_all((chart.ROOT / "deploy" / "rbac.yaml").read_text())
    [role] = [d for d in documents if d and d["kind"] == "ClusterRole"]
    rules = []
    for rule in role["rules"]:
        resources = [r for r in rule["resources"] if r not in without]
        if resources:
            rules.append(rule | {"resources": resources})
    return rules


# The rules each optional feature adds: none of them is granted while the feature is off.
PASSTHROUGH_RULES = ("tokenreviews",)
CLIENT_IP_RULES = ("userextras/remote-client-ip",)
KUBECTL_AS_RULES = (
    "serviceaccounts",
    "uids",
    "userextras/originaluser.jetstack.io-user",
    "userextras/originaluser.jetstack.io-groups",
    "userextras/originaluser.jetstack.io-uid",
    "userextras/originaluser.jetstack.io-extra",
    "subjectaccessreviews",
)
EVERY_FEATURE: Final[dict[str, Any]] = {
    "tokenPassthrough": {"enabled": True},
    "extraImpersonationHeaders": {"clientIP": True},
}


def granted(rendered: Rendered) -> set[str]:
    if not rendered.has("ClusterRole"):
        return set()
    return {res for rule in rendered.one("ClusterRole")["rules"] for res in rule["resources"]}


def test_with_every_feature_on_the_cluster_role_is_deploy_rbac_yaml() -> None:
    rendered = render(EVERY_FEATURE)
    assert rendered.one("ClusterRole")["rules"] == reviewed_rules()
    binding = rendered.one("ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "kube-oidc-proxy"}]
    assert rendered.pod["serviceAccountName"] == FULLNAME


def test_by_default_no_token_reviews_and_no_client_ip_extra(defaults: Rendered) -> None:
    assert defaults.one("ClusterRole")["rules"] == reviewed_rules(without=PASSTHROUGH_RULES + CLIENT_IP_RULES)


@pytest.mark.parametrize(
    ("values", "absent"),
    [
        ({"tokenPassthrough": {"enabled": False}}, PASSTHROUGH_RULES),
        ({"extraImpersonationHeaders": {"clientIP": False}}, CLIENT_IP_RULES),
        ({"rbac": {"kubectlAs": False}}, KUBECTL_AS_RULES),
    ],
    ids=["token-passthrough", "client-ip", "kubectl-as"],
)
def test_each_feature_off_takes_exactly_its_rules_away(values: dict[str, Any], absent: tuple[str, ...]) -> None:
    rendered = render(chart.merged(EVERY_FEATURE, values))
    assert rendered.one("ClusterRole")["rules"] == reviewed_rules(without=absent)


def test_with_impersonation_disabled_only_token_reviews_remain() -> None:
    passthrough = render({"disableImpersonation": True, "tokenPassthrough": {"enabled": True}})
    assert passthrough.one("ClusterRole")["rules"] == [
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
    ]
    # nothing to grant: no ClusterRole, no binding (the proxy's readiness reads /readyz, open to everyone)
    neither = render({"disableImpersonation": True})
    assert not neither.has("ClusterRole") and not neither.has("ClusterRoleBinding")
    assert neither.has("ServiceAccount")


def test_a_uid_mapping_keeps_uid_impersonation_without_kubectl_as() -> None:
    document = copy.deepcopy(AUTHENTICATION_CONFIG)
    document["jwt"][0]["claimMappings"]["uid"] = {"claim": "sub"}
    with_uid = render({"authenticationConfig": document, "rbac": {"kubectlAs": False}})
    assert "uids" in granted(with_uid)
    assert "uids" not in granted(render({"authenticationConfig": AUTHENTICATION_CONFIG, "rbac": {"kubectlAs": False}}))


@pytest.mark.parametrize(
    "values",
    [
        {},
        EVERY_FEATURE,
        {"tokenPassthrough": {"enabled": True}, "rbac": {"kubectlAs": False}},
        {"disableImpersonation": True},
        {"disableImpersonation": True, "tokenPassthrough": {"enabled": True}},
    ],
    ids=["defaults", "every-feature", "passthrough-without-as", "no-impersonation", "no-impersonation-passthrough"],
)
def test_the_rules_follow_the_flags_the_proxy_runs_with(values: dict[str, Any]) -> None:
    rendered = render(values)
    proxy = proxy_config(rendered).proxy
    rules = granted(rendered)
    assert ("tokenreviews" in rules) == proxy.token_passthrough
    assert ("userextras/remote-client-ip" in rules) == proxy.extra_user_header_client_ip
    assert ({"users", "groups"} <= rules) == (not proxy.disable_impersonation)
    assert not proxy.disable_impersonation or not [r for r in rules if r != "tokenreviews"]


def test_configured_extra_keys_are_added_to_the_cluster_role(full: Rendered) -> None:
    expected = reviewed_rules()
    extras = next(r for r in expected if any(res.startswith("userextras/") for res in r["resources"]))
    # the keys of extraImpersonationHeaders.headers ("Team=platform,env=prod,team=sre"), lower-cased as
    # kube-apiserver checks them, then rbac.extraUserExtras
    extras["resources"] += ["userextras/team", "userextras/env", "userextras/scopes"]
    assert full.one("ClusterRole")["rules"] == expected


def test_rbac_can_be_left_to_the_user() -> None:
    rendered = render({"rbac": {"create": False}, "serviceAccount": {"create": False, "name": "proxy"}})
    assert not rendered.has("ClusterRole") and not rendered.has("ClusterRoleBinding")
    assert not rendered.has("ServiceAccount")
    assert rendered.pod["serviceAccountName"] == "proxy"


# -- TLS -------------------------------------------------------------------------------------------


def test_self_signed_certificate_when_no_secret_is_named(defaults: Rendered) -> None:
    secret = defaults.one("Secret", f"{FULLNAME}-tls")
    assert secret["type"] == "kubernetes.io/tls"
    data = defaults.secret_data(f"{FULLNAME}-tls")
    cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
    ca = x509.load_pem_x509_certificate(data["ca.crt"].encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert f"{FULLNAME}.kube-oidc-proxy.svc" in names
    assert f"{FULLNAME}.kube-oidc-proxy.svc.cluster.local" in names
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=365)
    public_key = ca.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    assert cert.signature_hash_algorithm is not None
    public_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    assert data["tls.key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    volume = defaults.mounts()["/etc/oidc/tls"]
    assert volume["secret"]["secretName"] == f"{FULLNAME}-tls"
    # the CA's key stays in the Secret, for the next upgrade to sign with: the pod never gets it
    assert "ca.key" in data
    assert {item["key"] for item in volume["secret"]["items"]} == {"tls.crt", "tls.key"}
    config = parse([*defaults.args(), "--oidc-issuer-url=https://i.example", "--oidc-client-id=c"])
    assert config is not None
    for path, key in (
        (config[0].serving.tls_cert_file, "tls.crt"),
        (config[0].serving.tls_private_key_file, "tls.key"),
    ):
        mounted, name = file_source(defaults, path)
        assert mounted == volume and item_key(volume, "secret", name) == key


def test_a_named_secret_is_used_and_not_created() -> None:
    rendered = render({"tls": {"secretName": "my-tls"}})
    assert not rendered.has("Secret", f"{FULLNAME}-tls") and not rendered.has("Secret", "my-tls")
    assert rendered.mounts()["/etc/oidc/tls"]["secret"]["secretName"] == "my-tls"


def test_cert_manager_issues_into_the_mounted_secret(full: Rendered) -> None:
    certificate = full.one("Certificate")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    assert certificate["spec"]["secretName"] == full.mounts()["/etc/oidc/tls"]["secret"]["secretName"]
    assert f"{FULLNAME}.kube-oidc-proxy.svc" in certificate["spec"]["dnsNames"]
    assert "k8s.example.com" in certificate["spec"]["dnsNames"]
    issuer = full.one("Issuer")
    assert issuer["spec"] == {"selfSigned": {}}
    assert certificate["spec"]["issuerRef"]["name"] == issuer["metadata"]["name"]
    assert not full.has("Secret", f"{FULLNAME}-tls"), "cert-manager writes the Secret, not helm"


def test_cert_manager_with_your_issuer() -> None:
    values = {"tls": {"certManager": True, "selfSigned": False, "issuerName": "letsencrypt", "secretName": "x"}}
    rendered = render(values | {"tls": values["tls"] | {"issuerKind": "ClusterIssuer"}})
    assert not rendered.has("Issuer")
    certificate = rendered.one("Certificate")
    assert certificate["spec"]["issuerRef"] == {
        "group": "cert-manager.io",
        "kind": "ClusterIssuer",
        "name": "letsencrypt",
    }
    assert certificate["spec"]["secretName"] == "x"


# -- the self-signed certificate on `helm upgrade` -------------------------------------------------
# The chart's lookup of its Secret answered with one made here (chart.render_upgrade), as `helm upgrade`
# finds it in the cluster; tests/e2e/test_chart_install.py does the same through a real upgrade.

TLS_SECRET = f"{FULLNAME}-tls"
SERVICE_NAMES = [
    f"{FULLNAME}.kube-oidc-proxy.svc.cluster.local",
    f"{FULLNAME}.kube-oidc-proxy.svc",
    f"{FULLNAME}.kube-oidc-proxy",
    FULLNAME,
]


def upgrade_with(data: dict[str, str] | None, values: dict[str, Any] | None = None) -> tuple[dict[str, str], str]:
    """The TLS Secret's data after an upgrade that found ``data`` in the cluster (None: no Secret), and the NOTES."""
    existing = certs.secret(TLS_SECRET, "kube-oidc-proxy", data) if data is not None else None
    upgrade = chart.render_upgrade(values, existing_tls=existing)
    return dict(upgrade.rendered.one("Secret", TLS_SECRET)["data"]), upgrade.notes


def assert_fresh(data: dict[str, str], names: list[str] = SERVICE_NAMES) -> x509.Certificate:
    """A certificate of 365 days for ``names``, signed by the Secret's own ca.crt, whose key is there too."""
    cert, ca_cert = certs.load(data, "tls.crt"), certs.load(data, "ca.crt")
    assert certs.dns_names(cert) == names
    assert 364.9 < certs.days_left(cert) <= 365
    assert certs.signed_by(cert, ca_cert)
    assert "ca.key" in data
    return cert


def test_a_first_install_makes_a_ca_and_a_certificate_it_signs() -> None:
    data, notes = upgrade_with(None)
    assert_fresh(data)
    assert certs.days_left(certs.load(data, "ca.crt")) > 3649
    until = (datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=365)).date().isoformat()
    assert f"the certificate is valid until {until}" in notes
    assert "signed the certificate again" not in notes


def test_a_certificate_with_time_left_is_kept_as_it_is() -> None:
    authority = certs.ca()
    data = certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=100), authority)
    after, notes = upgrade_with(data)
    assert after == data
    assert certs.load(data, "tls.crt").not_valid_after_utc.date().isoformat() in notes
    assert "signed the certificate again" not in notes and "with the same CA" in notes


def test_under_30_days_left_it_is_signed_again_by_the_same_ca() -> None:
    authority = certs.ca()
    near = certs.serving(authority, SERVICE_NAMES, days_left=10)
    after, notes = upgrade_with(certs.secret_data(near, authority))
    assert_fresh(after)
    assert certs.signed_by(certs.load(after, "tls.crt"), authority.cert)
    assert certs.load(after, "ca.crt") == authority.cert, "clients keep trusting the same CA"
    assert after["tls.key"] != certs.secret_data(near)["tls.key"], "a new key"
    expiry = near.cert.not_valid_after_utc.date().isoformat()
    assert f"This upgrade signed the certificate again: it expires on {expiry}, in under 30 days." in notes
    assert "The CA is the same as before: clients need no change." in notes


def test_at_31_days_left_it_is_kept() -> None:
    authority = certs.ca()
    data = certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=31), authority)
    assert upgrade_with(data)[0] == data


def test_an_expired_or_unreadable_certificate_is_signed_again() -> None:
    authority = certs.ca()
    expired = certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=-3), authority)
    after, notes = upgrade_with(expired)
    assert_fresh(after)
    assert certs.load(after, "ca.crt") == authority.cert
    assert "in under 30 days" in notes
    garbage = expired | {"tls.crt": base64.b64encode(b"not a certificate").decode()}
    after, notes = upgrade_with(garbage)
    assert_fresh(after)
    assert "its expiry cannot be read" in notes


def test_the_go_charts_certificate_is_replaced_by_one_with_names_and_a_ca() -> None:
    # the Go chart's: self-signed, the Service's name only as the common name, no ca.crt
    go = certs.serving(None, [], days_left=300, common_name=SERVICE_NAMES[0])
    after, notes = upgrade_with(certs.secret_data(go))
    assert_fresh(after)
    assert "it is valid for none of the Service's names (no subjectAltName, as the Go chart's)" in notes
    assert "the Secret has no ca.crt for clients to trust" in notes
    assert "The CA is new: give clients this ca.crt" in notes
    assert "jsonpath='{.data.ca\\.crt}' | base64 -d > kube-oidc-proxy-ca.crt" in notes


def test_a_name_added_to_extra_dns_names_is_signed_in_by_the_same_ca() -> None:
    authority = certs.ca()
    data = certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=200), authority)
    after, notes = upgrade_with(data, {"tls": {"extraDnsNames": ["k8s.example.com"]}})
    assert_fresh(after, [*SERVICE_NAMES, "k8s.example.com"])
    assert certs.load(after, "ca.crt") == authority.cert
    assert "it is not valid for k8s.example.com;" not in notes and "it is not valid for k8s.example.com." in notes


def test_a_secret_without_the_ca_key_gets_a_new_ca_when_it_is_renewed() -> None:
    # chart 0.1.0 kept ca.crt but not the CA's key
    authority = certs.ca()
    leaf = certs.serving(authority, SERVICE_NAMES, days_left=100)
    kept = certs.secret_data(leaf, authority, with_ca_key=False)
    after, notes = upgrade_with(kept)
    assert after == kept
    assert "signs it again, with a new CA (the Secret has no ca.key)" in notes
    near = certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=5), authority, with_ca_key=False)
    after, notes = upgrade_with(near)
    assert_fresh(after)
    assert certs.load(after, "ca.crt") != authority.cert and "The CA is new" in notes


def test_a_ca_that_would_expire_before_the_new_certificate_is_replaced() -> None:
    authority = certs.ca(days_left=200)
    after, notes = upgrade_with(certs.secret_data(certs.serving(authority, SERVICE_NAMES, days_left=10), authority))
    assert_fresh(after)
    assert certs.load(after, "ca.crt") != authority.cert and "The CA is new" in notes


def test_helm_template_always_shows_a_new_certificate() -> None:
    # no cluster to look the Secret up in: what `helm template` and --dry-run show is not what an upgrade keeps
    first, second = (render().secret_data(TLS_SECRET)["tls.crt"] for _ in range(2))
    assert first != second


# -- service and ingress ---------------------------------------------------------------------------


def test_service_reaches_the_https_port(defaults: Rendered, full: Rendered) -> None:
    [port] = defaults.one("Service")["spec"]["ports"]
    assert (port["name"], port["port"], defaults.port(port["targetPort"])) == ("https", 443, 8443)
    service = full.one("Service", FULLNAME)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["loadBalancerSourceRanges"] == ["10.0.0.0/8"]
    assert service["metadata"]["annotations"] == {"service.beta.kubernetes.io/aws-load-balancer-internal": "true"}


def test_ingress_points_at_the_service_https_port(full: Rendered) -> None:
    ingress = full.one("Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [rule] = ingress["spec"]["rules"]
    assert rule["host"] == "k8s.example.com"
    [path] = rule["http"]["paths"]
    assert (path["path"], path["pathType"]) == ("/", "Prefix")
    backend = path["backend"]["service"]
    service = full.one("Service", backend["name"])
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
    assert backend["port"]["name"] == "https"
    assert ingress["spec"]["tls"] == [{"hosts": ["k8s.example.com"], "secretName": "k8s-example-com"}]


def test_ingress_paths_as_the_go_chart_wrote_them_or_as_objects() -> None:
    hosts = [
        {"host": "a.example", "paths": []},
        {"host": "b.example", "paths": ["/k8s", {"path": "/x", "pathType": "Exact"}]},
    ]
    rules = render({"ingress": {"enabled": True, "hosts": hosts}}).one("Ingress")["spec"]["rules"]
    paths = [[(p["path"], p["pathType"]) for p in r["http"]["paths"]] for r in rules]
    assert paths == [[("/", "Prefix")], [("/k8s", "Prefix"), ("/x", "Exact")]]


# -- helm test -------------------------------------------------------------------------------------


def test_helm_test_pod_expects_a_401_from_the_service(defaults: Rendered) -> None:
    pod = defaults.one("Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [container] = pod["spec"]["containers"]
    assert container["image"] == defaults.container["image"]
    python, flag, script, url = container["command"]
    assert (python, flag) == ("/opt/kube-oidc-proxy/bin/python", "-c")
    assert script.strip() == (CHART / "files" / "expect-401.py").read_text().strip()
    assert url == f"https://{FULLNAME}.kube-oidc-proxy.svc:443/api"
    assert not render({"test": {"enabled": False}}).has("Pod")


# -- a Go chart user's values ------------------------------------------------------------------------


def test_go_chart_values_give_the_same_flags(go_user: Rendered) -> None:
    config = proxy_config(go_user)
    assert (config.oidc.issuer_url, config.oidc.client_id) == ("https://dex.example.com", "kubernetes")
    assert (config.oidc.username_claim, config.oidc.username_prefix) == ("email", "oidc:")
    assert (config.oidc.groups_claim, config.oidc.groups_prefix) == ("groups", "oidc:")
    assert config.oidc.signing_algs == ("RS256",)
    assert config.oidc.required_claims == (("hd", "example.com"),)
    assert file_source(go_user, config.oidc.ca_file)[0]["secret"]["secretName"] == f"{FULLNAME}-config"
    assert config.proxy.token_passthrough and config.proxy.token_passthrough_audiences == ()
    assert config.proxy.extra_user_header_client_ip
    assert config.proxy.extra_user_headers == (("key1", ("foo", "bar")), ("key2", ("bar",)))
    assert (config.audit.policy_file, config.audit.log_path) == ("/audit/audit.yaml", "-")
    assert go_user.mounts()["/audit"]["configMap"]["name"] == "kube-oidc-proxy-policy"
    # the Go chart's Secret keys
    data = go_user.secret_data(f"{FULLNAME}-config")
    assert set(data) == {
        "oidc.issuer-url",
        "oidc.client-id",
        "oidc.username-claim",
        "oidc.username-prefix",
        "oidc.groups-claim",
        "oidc.groups-prefix",
        "oidc.signing-algs",
        "oidc.ca-pem",
    }


def test_go_chart_values_give_the_same_objects(go_user: Rendered) -> None:
    assert go_user.one("Deployment")["spec"]["replicas"] == 2
    assert go_user.one("Deployment")["spec"]["selector"]["matchLabels"] == {
        "app.kubernetes.io/name": "kube-oidc-proxy",
        "app.kubernetes.io/instance": "kube-oidc-proxy",
    }
    service = go_user.one("Service")
    assert service["spec"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [("https", 443)]
    assert go_user.has("Secret", f"{FULLNAME}-tls")  # tls.secretName: null, as the Go chart: self-signed
    assert go_user.one("PodDisruptionBudget")["spec"]["minAvailable"] == 1
    assert go_user.container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}  # its resources: {}
    resources = next(r for r in go_user.one("ClusterRole")["rules"] if "userextras/remote-client-ip" in r["resources"])
    assert {"userextras/key1", "userextras/key2"} <= set(resources["resources"])


def test_go_chart_rolling_update_strategy_as_text() -> None:
    text = "type: RollingUpdate\nrollingUpdate:\n  maxSurge: 1\n  maxUnavailable: 0\n"
    strategy = render({"rollingUpdateStrategy": text}).one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


# -- a Go proxy's image ------------------------------------------------------------------------------

GO_IMAGES = [
    ("quay.io/jetstack/kube-oidc-proxy", "jetstack, archived"),
    ("ghcr.io/tremolosecurity/kube-oidc-proxy", "Tremolo Security's fork"),
    ("docker.io/tremolosecurity/kube-oidc-proxy", "Tremolo Security's fork"),
    ("tremolosecurity/kube-oidc-proxy", "Tremolo Security's fork"),
    ("ghcr.io/RafPe/kube-oidc-proxy", "RafPe's fork"),
    ("harbor.example.com/quay-cache/jetstack/kube-oidc-proxy", "jetstack, archived"),  # a mirror
]


@pytest.mark.parametrize(("repository", "line"), GO_IMAGES, ids=[r for r, _ in GO_IMAGES])
def test_a_go_proxy_image_is_refused_naming_the_value_and_what_to_set(repository: str, line: str) -> None:
    with pytest.raises(HelmError) as failure:
        chart.template_text({"image": {"repository": repository, "tag": "v0.3.0"}})
    message = str(failure.value)
    assert f'image.repository "{repository}" is the Go kube-oidc-proxy ({line})' in message
    assert "--workers, --shutdown-grace-period, --log-format" in message
    assert "Remove image.repository and image.tag from your values to use the chart's image, " in message
    assert f"{DEFAULT_REPOSITORY}:{app_version()}" in message


def test_a_go_chart_values_file_with_its_image_is_refused_first() -> None:
    # as copied from the Go chart: its image section, and values that would render fine otherwise
    values = chart.GO_CHART_VALUES + "image:\n  repository: quay.io/jetstack/kube-oidc-proxy\n  tag: v0.3.0\n"
    with pytest.raises(HelmError) as failure:
        chart.template_text(values)
    assert 'image.repository "quay.io/jetstack/kube-oidc-proxy" is the Go kube-oidc-proxy' in str(failure.value)
    linted = chart.lint(values)
    assert 'Fail: image.repository "quay.io/jetstack/kube-oidc-proxy"' in linted.stdout + linted.stderr


@pytest.mark.parametrize(
    "repository",
    [
        DEFAULT_REPOSITORY,
        "registry.example.com/platform/kube-oidc-proxy-python",
        "registry.example.com/kube-oidc-proxy",
    ],
)
def test_other_images_are_taken(repository: str) -> None:
    assert render({"image": {"repository": repository}}).container["image"].startswith(f"{repository}:")


# -- a misspelt value --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 2}, "at '': additional properties 'replicas' not allowed"),
        (
            {"oidc": {"issuerURL": "https://issuer.example.com"}},
            "at '/oidc': additional properties 'issuerURL' not allowed",
        ),
        ({"tls": {"secretname": "mine"}}, "at '/tls': additional properties 'secretname' not allowed"),
        ({"tokenPassthrough": {"enable": True}}, "at '/tokenPassthrough': additional properties 'enable' not allowed"),
        ({"resources": {"request": {"cpu": "1"}}}, "at '/resources': additional properties 'request' not allowed"),
        ({"metrics": {"servicemonitor": {}}}, "at '/metrics': additional properties 'servicemonitor' not allowed"),
        ({"audit": {"log": {"maxage": 7}}}, "at '/audit/log': additional properties 'maxage' not allowed"),
        ({"ingress": {"hosts": [{"host": "a", "path": ["/"]}]}}, "at '/ingress/hosts/0': additional properties 'path'"),
        ({"networkPolicy": {"ingress": []}}, "at '/networkPolicy': additional properties 'ingress' not allowed"),
        ({"rbac": {"kubectlas": False}}, "at '/rbac': additional properties 'kubectlas' not allowed"),
    ],
    ids=["top", "oidc", "tls", "passthrough", "resources", "metrics", "audit-log", "ingress-host", "network", "rbac"],
)
def test_a_misspelt_value_fails_naming_it(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as failure:
        chart.template_text(values)
    assert message in str(failure.value)


def test_values_files_of_the_go_charts_still_pass_the_schema(go_user: Rendered) -> None:
    # the Go chart's, with null defaults (rendered by the go_user fixture), and the RafPe chart's own keys
    assert go_user.has("Deployment")
    rafpe = {
        "authenticationConfig": {"content": yaml.safe_dump(AUTHENTICATION_CONFIG)},
        "readinessRequireAllIssuers": False,
        "extraVolumeMounts": {},
        "extraVolumes": {},
        "service": {"annotations": None},
        "tls": {"secretName": None, "issuerName": None},
    }
    assert proxy_config(render(rafpe)).oidc.authentication_config == AUTHENTICATION_FILE


# -- PodDisruptionBudget, NetworkPolicy, PrometheusRule, resources -------------------------------------


def test_optional_objects_are_off_by_default(defaults: Rendered) -> None:
    for kind in ("PodDisruptionBudget", "NetworkPolicy", "PrometheusRule", "ServiceMonitor"):
        assert not defaults.has(kind), kind


def test_pod_disruption_budget_lets_unready_pods_go() -> None:
    rendered = render({"replicaCount": 3, "podDisruptionBudget": {"enabled": True, "maxUnavailable": 1}})
    pdb = rendered.one("PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["spec"]["selector"] == rendered.one("Deployment")["spec"]["selector"]


def test_a_budget_that_blocks_every_drain_is_warned_about_in_the_notes() -> None:
    blocking = chart.render_upgrade({"podDisruptionBudget": {"enabled": True, "minAvailable": 1}}).notes
    assert "WARNING: podDisruptionBudget.minAvailable (1) is not below replicaCount (1)" in blocking
    fine = chart.render_upgrade({"replicaCount": 2, "podDisruptionBudget": {"enabled": True}}).notes
    assert "WARNING" not in fine


def test_network_policy_lets_in_only_https_and_metrics(full: Rendered) -> None:
    policy = full.one("NetworkPolicy")
    spec = policy["spec"]
    selector = spec["podSelector"]
    assert selector["matchLabels"] == full.one("Deployment")["spec"]["selector"]["matchLabels"]
    assert selector["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "NotIn", "values": ["test"]}
    ], "not the helm test pod"
    https, metrics = spec["ingress"]
    assert [full.port(p["port"]) for p in https["ports"]] == [8443]
    test_pod = {"app.kubernetes.io/name": "kube-oidc-proxy", "app.kubernetes.io/instance": "kube-oidc-proxy"}
    assert https["from"] == [
        {"ipBlock": {"cidr": "10.0.0.0/16"}},
        {"podSelector": {"matchLabels": test_pod | {"app.kubernetes.io/component": "test"}}},
    ]
    assert [full.port(p["port"]) for p in metrics["ports"]] == [9090]
    assert metrics["from"] == FULL_VALUES["networkPolicy"]["metricsFrom"]
    # the probe port is the kubelet's, from the node: in no rule
    assert 8080 not in {full.port(p["port"]) for rule in spec["ingress"] for p in rule["ports"]}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    dns, *rules = spec["egress"]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert rules == FULL_VALUES["networkPolicy"]["egress"]


def test_network_policy_defaults_open_https_and_leave_egress_alone() -> None:
    spec = render({"networkPolicy": {"enabled": True}}).one("NetworkPolicy")["spec"]
    assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
    assert spec["ingress"] == [{"ports": [{"port": "https", "protocol": "TCP"}]}]
    with_metrics = render({"networkPolicy": {"enabled": True}, "metrics": {"enabled": True}}).one("NetworkPolicy")
    assert with_metrics["spec"]["ingress"][1]["from"] == [{"namespaceSelector": {}}]


def documented_alerts() -> dict[str, str]:
    """The alerts docs/observability.md recommends: name -> expression."""
    text = (chart.ROOT / "docs" / "observability.md").read_text()
    block = text.split("Alerts worth having:", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    return {alert["alert"]: alert["expr"] for alert in yaml.safe_load(block)}


def test_prometheus_rule_has_the_documented_alerts_for_this_release(full: Rendered) -> None:
    rule = full.one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    [group] = rule["spec"]["groups"]
    selector = 'namespace="kube-oidc-proxy",job="kube-oidc-proxy-metrics"'
    assert full.one("Service", "kube-oidc-proxy-metrics"), "the job the ServiceMonitor gives the series"
    rendered = {r["alert"]: r["expr"] for r in group["rules"]}
    unscoped = {
        name: expr.replace(f"{selector},", "").replace(f"{{{selector}}}", "") for name, expr in rendered.items()
    }
    assert unscoped == documented_alerts()
    for expr in rendered.values():
        assert expr.count("kube_oidc_proxy_") == expr.count(selector), f"a series without the selector: {expr}"
    for alert in group["rules"]:
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert (
            alert["annotations"]["summary"]
            and "kube-oidc-proxy in kube-oidc-proxy" in alert["annotations"]["description"]
        )


def test_prometheus_rule_selector_can_be_given() -> None:
    values = {"metrics": {"enabled": True, "prometheusRule": {"enabled": True, "selector": 'cluster="prod"'}}}
    [group] = render(values).one("PrometheusRule")["spec"]["groups"]
    assert all('{cluster="prod"' in r["expr"] for r in group["rules"])


def test_default_resources_are_the_benchmarks_figures(defaults: Rendered) -> None:
    assert defaults.container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }
    # the figures values.yaml cites are docs/benchmarks.md's
    comment = (CHART / "values.yaml").read_text().split("\nresources:", 1)[0].rsplit("\n\n", 1)[1]
    benchmarks = (chart.ROOT / "docs" / "benchmarks.md").read_text()
    for figure in ("9,339", "366 MB", "193 MB", "68 MB"):
        assert figure in comment and figure in benchmarks, figure
    assert "cpu" not in defaults.container["resources"]["limits"], "no CPU limit: it would throttle the event loop"
    assert "resources" not in render({"resources": None}).container


# -- invalid values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"logFormat": "yaml"}, "/logFormat"),
        ({"podAntiAffinity": "sometimes"}, "/podAntiAffinity"),
        ({"audit": {"log": {"mode": "async"}}}, "/audit/log/mode"),
        ({"audit": {"webhook": {"mode": "fast"}}}, "/audit/webhook/mode"),
        ({"audit": {"log": {"format": "xml"}}}, "/audit/log/format"),
        ({"workers": "4"}, "/workers"),
        ({"workers": 0}, "/workers"),
        ({"verbosity": 11}, "/verbosity"),
        ({"oidc": {"issuerUrl": "http://issuer.example.com"}}, "/oidc/issuerUrl"),
        ({"oidc": {"signingAlgs": ["HS256"]}}, "/oidc/signingAlgs"),
        ({"shutdownGracePeriod": "20"}, "/shutdownGracePeriod"),
        ({"shutdownDelayDuration": "5"}, "/shutdownDelayDuration"),
        ({"serviceAccount": {"tokenExpirationSeconds": 60}}, "/serviceAccount/tokenExpirationSeconds"),
        ({"service": {"type": "Ingress"}}, "/service/type"),
        ({"extraImpersonationHeaders": {"headers": "novalue"}}, "/extraImpersonationHeaders/headers"),
        ({"disableImpersonation": True, "extraImpersonationHeaders": {"clientIP": True}}, "disableImpersonation"),
        ({"metrics": {"serviceMonitor": {"enabled": True}}}, "metrics.enabled"),
        ({"metrics": {"enabled": True, "port": 8080}}, "metrics.port"),
        ({"metrics": {"prometheusRule": {"enabled": True}}}, "metrics.prometheusRule.enabled needs metrics.enabled"),
        (
            {"podDisruptionBudget": {"unhealthyPodEvictionPolicy": "Never"}},
            "/podDisruptionBudget/unhealthyPodEvictionPolicy",
        ),
        ({"audit": {"enabled": True, "webhook": {"enabled": True}}}, "audit.webhook.kubeconfig"),
        ({"audit": {"enabled": True, "log": {"enabled": False}}}, "audit.log.enabled or audit.webhook.enabled"),
        ({"audit": {"enabled": True, "log": {"path": "audit.log"}}}, "audit.log.path"),
        ({"terminationGracePeriodSeconds": 20}, "terminationGracePeriodSeconds"),
        ({"terminationGracePeriodSeconds": 25}, "shutdownDelayDuration (5s) + shutdownGracePeriod (20s)"),
        ({"tls": {"certManager": True, "selfSigned": False}}, "tls.issuerName"),
        ({"extraVolumes": {"audit": {"configMap": {"name": "x"}}}}, "extraVolumes must be a list"),
        ({"oidc": {"extraProviders": [{"issuerUrl": "https://other.example"}]}}, "oidc.extraProviders"),
        ({"oidc": {"apiAudiences": ["a"]}}, "oidc.apiAudiences"),
        ({"authenticationConfig": 5}, "/authenticationConfig"),
        ({"authenticationConfig": AUTHENTICATION_CONFIG, "oidc": {"caPEM": "x"}}, "combined with oidc.caPEM"),
        (
            {
                "authenticationConfig": AUTHENTICATION_CONFIG,
                "oidc": {"usernameClaim": "email", "requiredClaims": {"a": "b"}},
            },
            "combined with oidc.usernameClaim, oidc.requiredClaims",
        ),
        ({"authenticationConfig": AUTHENTICATION_CONFIG, "oidc": {"signingAlgs": ["ES256"]}}, "oidc.signingAlgs"),
        (
            {"authenticationConfig": AUTHENTICATION_CONFIG, "extraArgs": {"oidc-issuer-url": "https://i.example"}},
            "combined with extraArgs.oidc-issuer-url",
        ),
        (
            {"extraArgs": {"authentication-config": "/etc/authn/config.yaml"}, "oidc": {"clientId": "c"}},
            "extraArgs.authentication-config cannot be combined with oidc.clientId",
        ),
        (
            {"authenticationConfig": AUTHENTICATION_CONFIG, "extraArgs": {"authentication-config": "/a.yaml"}},
            "authenticationConfig and extraArgs.authentication-config",
        ),
        ({"authenticationConfig": {"jwt": []}}, "apiVersion: apiserver.config.k8s.io/v1"),
        ({"authenticationConfig": "- jwt"}, "authenticationConfig is not a YAML mapping"),
        ({"authenticationConfig": "jwt: [unclosed"}, "authenticationConfig is not a YAML mapping"),
        ({"authenticationConfig": {"content": "", "existingSecret": "authn"}}, "authenticationConfig.existingSecret"),
        ({"oidc": {"authenticationConfig": {"jwt": []}}}, "oidc.authenticationConfig (issuers in addition"),
        ({"readinessRequireAllIssuers": True}, "readinessRequireAllIssuers"),
        ({"login": {"enabled": True}}, "login.enabled needs login.clientId"),
        ({"login": {"enabled": True, "clientId": ""}}, "login.enabled needs login.clientId"),
        (
            {"login": {"enabled": True, "clientId": "c", "clientSecret": "s", "existingSecret": "x"}},
            "login.clientSecret and login.existingSecret",
        ),
        (
            {"login": {"enabled": True, "clientId": "c", "existingSecret": "x", "existingSecretKey": ""}},
            "login.existingSecretKey",
        ),
        ({"login": {"enabled": True, "clientId": "c", "scopes": ["email"]}}, "login.scopes must include openid"),
        (
            {"login": {"enabled": True, "clientId": "c"}, "extraArgs": {"login-scopes": "openid"}},
            "login.enabled cannot be combined with extraArgs.login-scopes",
        ),
        ({"login": {"enabled": True, "clientId": "c", "scopes": ["openid,email"]}}, "/login/scopes/0"),
        ({"login": {"enabled": True, "clientId": "c", "redirectUrl": "http://k8s.example.com"}}, "/login/redirectUrl"),
        ({"login": {"enabled": True, "clientId": "c", "secret": "s"}}, "/login"),
    ],
)
def test_invalid_values_fail_with_a_message_naming_them(values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmError) as failure:
        chart.template_text(values)
    assert message in str(failure.value)


# -- documentation and the static manifests --------------------------------------------------------


def leaf_keys(values: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in values.items():
        path = f"{prefix}{key}"
        opaque = (
            "securityContext",
            "podSecurityContext",
            "readinessProbe",
            "livenessProbe",
            "audit.log.volume",
            "resources",
        )
        if isinstance(value, dict) and value and path not in opaque:
            yield from leaf_keys(value, f"{path}.")
        else:
            yield path


def test_every_value_is_in_the_readme_table() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    readme = (CHART / "README.md").read_text()
    missing = [key for key in leaf_keys(values) if f"| `{key}` |" not in readme]
    assert not missing, f"values missing from the README's table: {missing}"


def test_static_manifests_are_a_fresh_render() -> None:
    committed = chart.MANIFEST.read_text()
    assert committed == chart.manifests(), (
        "deploy/manifests/kube-oidc-proxy.yaml is stale: run python -m tests.deploy.chart"
    )


def test_static_manifests_hold_no_keys_and_start_with_the_namespace() -> None:
    rendered = Rendered.of(chart.MANIFEST.read_text())
    assert rendered.objects[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-oidc-proxy"}}
    assert [s["metadata"]["name"] for s in rendered.all("Secret")] == [f"{FULLNAME}-config"]
    assert not rendered.has("Pod")
    assert rendered.mounts()["/etc/oidc/tls"]["secret"]["secretName"] == "kube-oidc-proxy-tls"
    config = proxy_config(rendered)
    assert (config.oidc.issuer_url, config.oidc.client_id) == ("https://issuer.example.com", "kubernetes")


def test_chart_metadata() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (meta["apiVersion"], meta["version"], meta["appVersion"]) == ("v2", "0.1.0", "main")
    assert meta["kubeVersion"] == ">=1.27.0-0"
