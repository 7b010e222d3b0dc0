"""The Helm chart, rendered by the real helm and read as the kubelet and the proxy would read it: every value
becomes the flag it documents (checked by the proxy's own command-line parser), the pod is locked down, the
RBAC is deploy/rbac.yaml's, a Go chart user's values still work, bad values fail with a message, and the
static manifests in deploy/manifests/ are a fresh render.

helm is built from the pinned Go modules (tests/deploy/tools.py). Without Go the module is skipped loudly;
with CI=true it fails instead.
"""

from __future__ import annotations

import copy
import datetime
import os
import shutil
from collections.abc import Iterator
from typing import Any

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
from tests.deploy import chart
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
    assert rendered.container["image"] == "ghcr.io/kube-oidc-proxy/kube-oidc-proxy-python:0.2.0"
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


def test_without_an_issuer_the_proxy_names_the_missing_flag(defaults: Rendered) -> None:
    # the Secret always has the keys, so the pod starts and the proxy says what is wrong
    with pytest.raises(ConfigError, match="--oidc-issuer-url is required"):
        parse(defaults.args())


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
    rendered = render({"disableImpersonation": True, "oidc": {"issuerUrl": "https://i.example", "clientId": "c"}})
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
    expected = reviewed_rules()
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


def reviewed_rules() -> list[dict[str, Any]]:
    documents = yaml.safe_load_all((chart.ROOT / "deploy" / "rbac.yaml").read_text())
    [role] = [d for d in documents if d and d["kind"] == "ClusterRole"]
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def test_cluster_role_is_deploy_rbac_yaml(defaults: Rendered) -> None:
    assert defaults.one("ClusterRole")["rules"] == reviewed_rules()
    binding = defaults.one("ClusterRoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": FULLNAME}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": FULLNAME, "namespace": "kube-oidc-proxy"}]
    assert defaults.pod["serviceAccountName"] == FULLNAME


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
    resources = next(r for r in go_user.one("ClusterRole")["rules"] if "userextras/remote-client-ip" in r["resources"])
    assert {"userextras/key1", "userextras/key2"} <= set(resources["resources"])


def test_go_chart_rolling_update_strategy_as_text() -> None:
    text = "type: RollingUpdate\nrollingUpdate:\n  maxSurge: 1\n  maxUnavailable: 0\n"
    strategy = render({"rollingUpdateStrategy": text}).one("Deployment")["spec"]["strategy"]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}


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
        opaque = ("securityContext", "podSecurityContext", "readinessProbe", "livenessProbe", "audit.log.volume")
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
