"""Where kube-apiserver is and how the proxy authenticates to it: in-cluster config or kubeconfig rules."""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_oidc_proxy.config import ClientConfig
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.kube.target import UpstreamTarget, from_kubeconfig, in_cluster, load_target

CA_PEM = b"-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n"
CERT_PEM = b"-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n"
KEY_PEM = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------------------------------- in-cluster


@pytest.fixture
def sa_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("sa-token")
    (directory / "ca.crt").write_bytes(CA_PEM)
    (directory / "namespace").write_text("kube-oidc-proxy")
    return directory


def test_in_cluster_uses_the_service_env_and_the_service_account_files(sa_dir: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    target = in_cluster(ClientConfig(request_timeout=7.0), env, sa_dir)
    assert (target.scheme, target.host, target.port) == ("https", "10.96.0.1", 443)
    assert target.authority == "10.96.0.1"
    assert target.server_hostname == "10.96.0.1"
    assert target.ca_pem == CA_PEM
    assert target.token_file == str(sa_dir / "token")
    assert target.token == ""
    assert target.insecure is False
    assert target.client_cert_pem is None
    assert target.request_timeout == 7.0


@pytest.mark.parametrize(
    ("host", "port", "authority"),
    [
        ("10.96.0.1", "6443", "10.96.0.1:6443"),
        ("kubernetes.default.svc", "443", "kubernetes.default.svc"),
        ("fd00:10:96::1", "443", "[fd00:10:96::1]"),
        ("fd00:10:96::1", "6443", "[fd00:10:96::1]:6443"),
    ],
)
def test_in_cluster_authority_has_the_port_unless_default_and_brackets_an_ipv6_host(
    sa_dir: Path, host: str, port: str, authority: str
) -> None:
    target = in_cluster(ClientConfig(), {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}, sa_dir)
    assert target.host == host
    assert target.port == int(port)
    assert target.authority == authority


@pytest.mark.parametrize(
    "env",
    [{}, {"KUBERNETES_SERVICE_HOST": "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT": "443"}],
    ids=["none", "host-only", "port-only"],
)
def test_in_cluster_without_the_service_env_says_what_is_missing_and_what_to_do(
    sa_dir: Path, env: dict[str, str]
) -> None:
    with pytest.raises(StartupError) as exc:
        in_cluster(ClientConfig(), env, sa_dir)
    message = str(exc.value)
    assert "KUBERNETES_SERVICE_HOST" in message
    assert "--kubeconfig" in message


def test_in_cluster_with_a_port_that_is_not_a_number_is_a_startup_error(sa_dir: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "https"}
    with pytest.raises(StartupError, match="KUBERNETES_SERVICE_PORT"):
        in_cluster(ClientConfig(), env, sa_dir)


@pytest.mark.parametrize(("missing", "what"), [("token", "service account token"), ("ca.crt", "service account CA")])
def test_in_cluster_without_a_service_account_file_names_the_file(sa_dir: Path, missing: str, what: str) -> None:
    (sa_dir / missing).unlink()
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    with pytest.raises(StartupError) as exc:
        in_cluster(ClientConfig(), env, sa_dir)
    assert what in str(exc.value)
    assert str(sa_dir / missing) in str(exc.value)


def test_without_connection_flags_load_target_uses_the_in_cluster_config() -> None:
    with pytest.raises(StartupError, match="KUBERNETES_SERVICE_HOST"):
        load_target(ClientConfig(kubeconfig="/ignored", explicit=False), {})


def test_with_a_connection_flag_load_target_uses_kubeconfig_rules(tmp_path: Path) -> None:
    client = ClientConfig(server="https://kube.example:6443", token="t", explicit=True)
    target = load_target(client, {"HOME": str(tmp_path), "KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    assert (target.host, target.port, target.token) == ("kube.example", 6443, "t")


# ---------------------------------------------------------------------------------------------------- kubeconfig


def cluster(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "cluster": fields}


def user(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "user": fields}


def context(name: str, cluster_name: str, user_name: str) -> dict[str, Any]:
    return {"name": name, "context": {"cluster": cluster_name, "user": user_name}}


def write_kubeconfig(
    path: Path,
    *,
    clusters: Sequence[dict[str, Any]] = (),
    users: Sequence[dict[str, Any]] = (),
    contexts: Sequence[dict[str, Any]] = (),
    current: str | None = None,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": list(clusters),
        "users": list(users),
        "contexts": list(contexts),
    }
    if current is not None:
        doc["current-context"] = current
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def two_clusters(tmp_path: Path) -> Path:
    return write_kubeconfig(
        tmp_path / "kube" / "config",
        clusters=[
            cluster("a", server="https://a.example:6443", **{"certificate-authority-data": b64(b"ca-a")}),
            cluster("b", server="https://b.example", **{"certificate-authority-data": b64(b"ca-b")}),
        ],
        users=[user("ua", token="token-a"), user("ub", token="token-b")],
        contexts=[context("ctx-a", "a", "ua"), context("ctx-b", "b", "ub")],
        current="ctx-b",
    )


def load(path: Path, **flags: Any) -> UpstreamTarget:
    return from_kubeconfig(ClientConfig(kubeconfig=str(path), explicit=True, **flags), {})


def test_the_current_context_selects_the_cluster_and_user(two_clusters: Path) -> None:
    target = load(two_clusters)
    assert (target.scheme, target.host, target.port) == ("https", "b.example", 443)
    assert target.authority == "b.example"
    assert target.ca_pem == b"ca-b"
    assert target.token == "token-b"


def test_context_flag_overrides_the_current_context(two_clusters: Path) -> None:
    target = load(two_clusters, context="ctx-a")
    assert (target.host, target.port, target.authority) == ("a.example", 6443, "a.example:6443")
    assert target.ca_pem == b"ca-a"
    assert target.token == "token-a"


def test_cluster_flag_overrides_the_contexts_cluster_only(two_clusters: Path) -> None:
    target = load(two_clusters, cluster="a")
    assert target.host == "a.example"
    assert target.ca_pem == b"ca-a"
    assert target.token == "token-b"


def test_user_flag_overrides_the_contexts_user_only(two_clusters: Path) -> None:
    target = load(two_clusters, user="ua")
    assert target.host == "b.example"
    assert target.token == "token-a"


@pytest.mark.parametrize(
    ("flag", "name"), [("context", "nope-ctx"), ("cluster", "nope-cluster"), ("user", "nope-user")]
)
def test_an_unknown_context_cluster_or_user_is_a_startup_error_naming_it(
    two_clusters: Path, flag: str, name: str
) -> None:
    with pytest.raises(StartupError) as exc:
        load(two_clusters, **{flag: name})
    assert repr(name) in str(exc.value)
    assert flag in str(exc.value)


def test_certificate_authority_data_and_client_certificate_data_are_decoded(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example", **{"certificate-authority-data": b64(CA_PEM)})],
        users=[
            user("u", **{"client-certificate-data": b64(CERT_PEM), "client-key-data": b64(KEY_PEM)}),
        ],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    target = load(path)
    assert target.ca_pem == CA_PEM
    assert target.client_cert_pem == CERT_PEM
    assert target.client_key_pem == KEY_PEM
    assert target.token == ""
    assert target.token_file == ""


def test_relative_file_paths_are_resolved_against_the_kubeconfigs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    confdir = tmp_path / "conf"
    (confdir / "pki").mkdir(parents=True)
    (confdir / "pki" / "ca.crt").write_bytes(CA_PEM)
    (confdir / "pki" / "client.crt").write_bytes(CERT_PEM)
    (confdir / "pki" / "client.key").write_bytes(KEY_PEM)
    (confdir / "token").write_text("file-token\n")
    path = write_kubeconfig(
        confdir / "config",
        clusters=[cluster("c", server="https://kube.example", **{"certificate-authority": "pki/ca.crt"})],
        users=[
            user(
                "u",
                tokenFile="token",
                **{"client-certificate": "pki/client.crt", "client-key": "pki/client.key"},
            )
        ],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    target = load(path)
    assert target.ca_pem == CA_PEM
    assert target.client_cert_pem == CERT_PEM
    assert target.client_key_pem == KEY_PEM
    assert Path(target.token_file) == confdir / "token"


def test_absolute_file_paths_are_used_as_they_are(tmp_path: Path) -> None:
    ca = tmp_path / "somewhere" / "ca.crt"
    ca.parent.mkdir()
    ca.write_bytes(CA_PEM)
    path = write_kubeconfig(
        tmp_path / "conf" / "config",
        clusters=[cluster("c", server="https://kube.example", **{"certificate-authority": str(ca)})],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    assert load(path).ca_pem == CA_PEM


def test_a_missing_token_file_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example")],
        users=[user("u", tokenFile="missing-token")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    with pytest.raises(StartupError, match="missing-token"):
        load(path)


def test_a_token_flag_overrides_the_kubeconfigs_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token")
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example")],
        users=[user("u", tokenFile="token")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    target = load(path, token="flag-token")
    assert target.token == "flag-token"
    assert target.token_file == ""


def test_a_token_flag_overrides_the_kubeconfigs_token(two_clusters: Path) -> None:
    assert load(two_clusters, token="flag-token").token == "flag-token"


def test_a_server_flag_overrides_the_clusters_server_and_keeps_its_ca(two_clusters: Path) -> None:
    target = load(two_clusters, server="https://[fd00::1]:8443")
    assert (target.host, target.port, target.authority) == ("fd00::1", 8443, "[fd00::1]:8443")
    assert target.ca_pem == b"ca-b"


def test_certificate_flags_override_the_kubeconfig(two_clusters: Path, tmp_path: Path) -> None:
    for name, data in (("ca.crt", CA_PEM), ("c.crt", CERT_PEM), ("c.key", KEY_PEM)):
        (tmp_path / name).write_bytes(data)
    target = load(
        two_clusters,
        certificate_authority=str(tmp_path / "ca.crt"),
        client_certificate=str(tmp_path / "c.crt"),
        client_key=str(tmp_path / "c.key"),
    )
    assert target.ca_pem == CA_PEM
    assert target.client_cert_pem == CERT_PEM
    assert target.client_key_pem == KEY_PEM


@pytest.mark.parametrize("where", ["kubeconfig", "flag"])
def test_insecure_skip_tls_verify_drops_the_ca(tmp_path: Path, where: str) -> None:
    fields: dict[str, Any] = {"server": "https://kube.example", "certificate-authority-data": b64(CA_PEM)}
    if where == "kubeconfig":
        fields["insecure-skip-tls-verify"] = True
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", **fields)],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    target = load(path, insecure_skip_tls_verify=where == "flag")
    assert target.insecure is True
    assert target.ca_pem is None


def test_tls_server_name_comes_from_the_cluster_and_the_flag_overrides_it(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://10.0.0.1:6443", **{"tls-server-name": "kubernetes.default"})],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    from_file = load(path)
    assert from_file.server_hostname == "kubernetes.default"
    assert from_file.authority == "10.0.0.1:6443"
    assert load(path, tls_server_name="api.internal").server_hostname == "api.internal"


@pytest.mark.parametrize(
    ("fields", "what"),
    [
        ({"auth-provider": {"name": "oidc", "config": {}}}, "auth-provider"),
        ({"username": "admin", "password": "secret"}, "username"),
    ],
    ids=["auth-provider", "basic-auth"],
)
def test_a_user_with_a_credential_plugin_gives_a_clear_not_supported_yet_error(
    tmp_path: Path, fields: dict[str, Any], what: str
) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example")],
        users=[user("eks-admin", **fields)],
        contexts=[context("x", "c", "eks-admin")],
        current="x",
    )
    with pytest.raises(StartupError) as exc:
        load(path)
    message = str(exc.value)
    assert "not supported yet" in message
    assert repr(what) in message
    assert "'eks-admin'" in message


def test_a_plugin_user_is_fine_when_the_token_flag_replaces_its_credential(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example")],
        users=[user("u", exec={"command": "aws"})],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    assert load(path, token="flag-token").token == "flag-token"


def test_kubeconfig_env_with_two_files_merges_them_and_the_first_definition_wins(tmp_path: Path) -> None:
    (tmp_path / "second" / "pki").mkdir(parents=True)
    (tmp_path / "second" / "pki" / "ca.crt").write_bytes(b"second-ca")
    first = write_kubeconfig(
        tmp_path / "first" / "config",
        clusters=[cluster("shared", server="https://first.example")],
        users=[user("shared-user", token="first-token")],
        contexts=[context("shared-ctx", "shared", "shared-user")],
        current="shared-ctx",
    )
    second = write_kubeconfig(
        tmp_path / "second" / "config",
        clusters=[
            cluster("shared", server="https://second.example"),
            cluster("only-second", server="https://only-second.example", **{"certificate-authority": "pki/ca.crt"}),
        ],
        users=[user("shared-user", token="second-token"), user("second-user", token="second-user-token")],
        contexts=[
            context("shared-ctx", "only-second", "second-user"),
            context("second-ctx", "only-second", "second-user"),
        ],
        current="second-ctx",
    )
    env = {"KUBECONFIG": f"{first}{os.pathsep}{tmp_path / 'absent'}{os.pathsep}{second}"}

    merged = from_kubeconfig(ClientConfig(explicit=True), env)
    assert merged.host == "first.example"  # first file's current-context, cluster and user
    assert merged.token == "first-token"

    from_second = from_kubeconfig(ClientConfig(explicit=True, context="second-ctx"), env)
    assert from_second.host == "only-second.example"
    assert from_second.token == "second-user-token"
    assert from_second.ca_pem == b"second-ca"  # relative to the second file's directory


def test_the_home_kubeconfig_is_used_when_nothing_else_says(tmp_path: Path) -> None:
    write_kubeconfig(
        tmp_path / ".kube" / "config",
        clusters=[cluster("c", server="https://home.example")],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    assert from_kubeconfig(ClientConfig(explicit=True), {"HOME": str(tmp_path)}).host == "home.example"


def test_a_server_flag_works_without_any_kubeconfig(tmp_path: Path) -> None:
    target = from_kubeconfig(
        ClientConfig(server="http://127.0.0.1:8001", explicit=True, request_timeout=3.0), {"HOME": str(tmp_path)}
    )
    assert (target.scheme, target.host, target.port, target.authority) == ("http", "127.0.0.1", 8001, "127.0.0.1:8001")
    assert target.ca_pem is None
    assert target.request_timeout == 3.0


def test_no_server_anywhere_is_a_startup_error(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="--server"):
        from_kubeconfig(ClientConfig(token="t", explicit=True), {"HOME": str(tmp_path)})


@pytest.mark.parametrize("where", ["kubeconfig", "flag"])
def test_a_server_with_a_path_prefix_is_rejected(tmp_path: Path, where: str) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://rancher.example/k8s/clusters/c-1" if where == "kubeconfig" else "")],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    flags = {"server": "https://kube.example/prefix"} if where == "flag" else {}
    with pytest.raises(StartupError, match="path prefix"):
        load(path, **flags)


def test_a_server_with_only_a_trailing_slash_is_fine(two_clusters: Path) -> None:
    assert load(two_clusters, server="https://kube.example:6443/").authority == "kube.example:6443"


@pytest.mark.parametrize("server", ["ftp://kube.example", "kube.example:6443", "https://"])
def test_a_server_that_is_not_an_http_url_is_rejected(two_clusters: Path, server: str) -> None:
    with pytest.raises(StartupError, match="not an http"):
        load(two_clusters, server=server)


def test_a_kubeconfig_that_does_not_exist_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(StartupError) as exc:
        load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(exc.value)


def test_a_kubeconfig_that_is_not_a_mapping_is_a_startup_error(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("- just\n- a list\n")
    with pytest.raises(StartupError, match="not a mapping"):
        load(path)


def test_a_kubeconfig_that_is_not_yaml_is_a_startup_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "broken-config"
    path.write_text("clusters: [\n  {name: a\n")
    with pytest.raises(StartupError, match="broken-config"):
        load(path)


def test_certificate_data_that_is_not_base64_is_a_startup_error(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example", **{"certificate-authority-data": "not base64!"})],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    with pytest.raises(StartupError, match="certificate-authority-data"):
        load(path)


def test_a_client_certificate_without_a_key_is_a_startup_error(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example")],
        users=[user("u", **{"client-certificate-data": b64(CERT_PEM)})],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    with pytest.raises(StartupError, match="both a client certificate and a key"):
        load(path)


def test_a_proxy_url_is_refused_rather_than_ignored(tmp_path: Path) -> None:
    path = write_kubeconfig(
        tmp_path / "config",
        clusters=[cluster("c", server="https://kube.example", **{"proxy-url": "http://squid:3128"})],
        users=[user("u", token="t")],
        contexts=[context("x", "c", "u")],
        current="x",
    )
    with pytest.raises(StartupError, match="proxy-url"):
        load(path)
