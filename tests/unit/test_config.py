"""Settings validation: every problem is found without IO, and all of them are reported at once."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from kube_oidc_proxy.config import ClientConfig, Config, OIDCConfig, ProxyConfig, ServingConfig, split_host_port

VALID = Config(
    oidc=OIDCConfig(issuer_url="https://issuer.example/realms/k8s", client_id="kube"),
    serving=ServingConfig(tls_cert_file="/certs/tls.crt", tls_private_key_file="/certs/tls.key"),
)


def with_oidc(**changes: Any) -> Config:
    return replace(VALID, oidc=replace(VALID.oidc, **changes))


def with_serving(**changes: Any) -> Config:
    return replace(VALID, serving=replace(VALID.serving, **changes))


def with_proxy(**changes: Any) -> Config:
    return replace(VALID, proxy=replace(VALID.proxy, **changes))


def with_client(**changes: Any) -> Config:
    return replace(VALID, client=replace(VALID.client, **changes))


def test_the_minimal_valid_config_has_no_errors() -> None:
    assert VALID.validate() == []


@pytest.mark.parametrize(
    ("cfg", "expected"),
    [
        pytest.param(with_oidc(issuer_url=""), "--oidc-issuer-url is required", id="issuer-missing"),
        pytest.param(with_oidc(issuer_url="http://issuer.example"), "must be an https URL", id="issuer-http"),
        pytest.param(with_oidc(issuer_url="issuer.example"), "must be an https URL", id="issuer-no-scheme"),
        pytest.param(with_oidc(issuer_url="https://"), "must be an https URL", id="issuer-no-host"),
        pytest.param(with_oidc(issuer_url="https://issuer.example/?a=b"), "query", id="issuer-query"),
        pytest.param(with_oidc(issuer_url="https://issuer.example/#frag"), "fragment", id="issuer-fragment"),
        pytest.param(with_oidc(issuer_url="https://user@issuer.example"), "user info", id="issuer-user"),
        pytest.param(with_oidc(issuer_url="https://user:pw@issuer.example"), "user info", id="issuer-userinfo"),
        pytest.param(with_oidc(client_id=""), "--oidc-client-id is required", id="client-id-missing"),
        pytest.param(with_oidc(signing_algs=("HS256",)), "'HS256' is not supported", id="alg-hs256"),
        pytest.param(with_oidc(signing_algs=("none",)), "'none' is not supported", id="alg-none"),
        pytest.param(with_oidc(signing_algs=("RS256", "rs384")), "'rs384' is not supported", id="alg-lowercase"),
        pytest.param(with_oidc(signing_algs=()), "at least one algorithm", id="alg-empty"),
        pytest.param(with_oidc(username_claim=""), "--oidc-username-claim must not be empty", id="username-claim"),
        pytest.param(with_oidc(required_claims=(("", "x"),)), "--oidc-required-claim", id="required-claim-no-key"),
        pytest.param(with_serving(tls_cert_file="", tls_private_key_file=""), "--tls-cert-file", id="tls-none"),
        pytest.param(with_serving(tls_cert_file=""), "--tls-cert-file and --tls-private-key-file", id="tls-no-cert"),
        pytest.param(with_serving(tls_private_key_file=""), "--tls-private-key-file", id="tls-no-key"),
        pytest.param(with_serving(tls_min_version="VersionTLS14"), "--tls-min-version", id="min-version-unknown"),
        pytest.param(with_serving(tls_min_version="1.2"), "'1.2' is not one of", id="min-version-openssl-name"),
        pytest.param(
            with_serving(tls_cipher_suites=("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_NOPE")),
            "unknown or unsupported cipher suite 'TLS_NOPE'",
            id="cipher-unknown",
        ),
        pytest.param(with_serving(secure_port=0), "--secure-port must be between 1 and 65535", id="secure-port-0"),
        pytest.param(with_serving(secure_port=65536), "--secure-port", id="secure-port-too-big"),
        pytest.param(with_proxy(readiness_probe_port=65536), "--readiness-probe-port", id="readiness-too-big"),
        pytest.param(with_proxy(workers=0), "--workers must be between 1 and 64, got 0", id="workers-0"),
        pytest.param(with_proxy(workers=65), "--workers must be between 1 and 64, got 65", id="workers-65"),
        pytest.param(with_proxy(shutdown_grace=-1.0), "--shutdown-grace-period", id="negative-grace"),
        pytest.param(with_proxy(shutdown_delay=-1.0), "--shutdown-delay-duration", id="negative-delay"),
        pytest.param(with_proxy(max_requests_inflight=-1), "--max-requests-inflight must not", id="negative-inflight"),
        pytest.param(
            with_proxy(max_mutating_requests_inflight=-1), "--max-mutating-requests-inflight", id="negative-mutating"
        ),
        pytest.param(with_proxy(log_format="logfmt"), "--log-format must be text or json", id="log-format"),
        pytest.param(with_proxy(metrics_bind_address="9090"), "--metrics-bind-address", id="metrics-no-colon"),
        pytest.param(with_proxy(metrics_bind_address=":http"), "--metrics-bind-address", id="metrics-named-port"),
        pytest.param(with_proxy(metrics_bind_address="::1:9090"), "needs brackets", id="metrics-bare-ipv6"),
        pytest.param(with_proxy(metrics_bind_address=":6443"), "needs a port of its own", id="metrics-secure-port"),
        pytest.param(with_proxy(metrics_bind_address=":8080"), "needs a port of its own", id="metrics-probe-port"),
        pytest.param(with_proxy(extra_user_headers=(("", ("v",)),)), "--extra-user-headers", id="extra-no-key"),
        pytest.param(
            with_proxy(extra_user_headers=(("originaluser.jetstack.io-groups", ("system:masters",)),)),
            "--extra-user-headers: the key 'originaluser.jetstack.io-groups' is reserved",
            id="extra-originaluser",
        ),
        pytest.param(
            with_proxy(extra_user_headers=(("originaluser.example/x", ("v",)),)),
            "is reserved: originaluser.* extras are the proxy's record",
            id="extra-originaluser-namespace",
        ),
        pytest.param(with_client(client_certificate="/c.crt"), "--client-key must be given", id="cert-no-key"),
        pytest.param(with_client(client_key="/c.key"), "--client-certificate and --client-key", id="key-no-cert"),
        pytest.param(with_client(server="ftp://kube.example"), "--server", id="server-scheme"),
        pytest.param(with_client(server="kube.example:6443"), "--server", id="server-no-scheme"),
        pytest.param(with_client(request_timeout=-1.0), "--request-timeout", id="negative-timeout"),
    ],
)
def test_an_invalid_setting_gives_exactly_one_error_naming_the_flag(cfg: Config, expected: str) -> None:
    errors = cfg.validate()
    assert len(errors) == 1, errors
    assert expected in errors[0]


@pytest.mark.parametrize("port", [8080, 9443])
def test_the_secure_port_must_differ_from_the_readiness_port_and_the_message_names_the_port_used(port: int) -> None:
    cfg = replace(with_serving(secure_port=port), proxy=replace(VALID.proxy, readiness_probe_port=port))
    errors = cfg.validate()
    assert len(errors) == 1, errors
    assert "--secure-port" in errors[0]
    assert "--readiness-probe-port" in errors[0]
    assert str(port) in errors[0]
    other = 8080 if port != 8080 else 9443
    assert str(other) not in errors[0]


def test_a_disabled_readiness_probe_does_not_clash_with_any_secure_port() -> None:
    assert replace(with_serving(secure_port=8080), proxy=ProxyConfig(readiness_probe_port=None)).validate() == []


@pytest.mark.parametrize(
    "cfg",
    [
        pytest.param(with_oidc(signing_algs=("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")), id="rsa-ecdsa"),
        pytest.param(with_oidc(signing_algs=("PS256", "PS384", "PS512")), id="rsa-pss"),
        pytest.param(with_oidc(issuer_url="https://issuer.example:8443/path/"), id="issuer-port-path"),
        pytest.param(with_oidc(username_prefix="-", groups_prefix="oidc:"), id="prefixes"),
        pytest.param(with_serving(tls_min_version="VersionTLS13"), id="tls13"),
        pytest.param(
            with_serving(tls_cipher_suites=("TLS_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")),
            id="ciphers",
        ),
        pytest.param(with_proxy(workers=64), id="workers-64"),
        pytest.param(with_proxy(workers=1), id="workers-1"),
        pytest.param(with_proxy(flush_interval=-1.0), id="negative-flush"),
        pytest.param(with_proxy(max_requests_inflight=0, max_mutating_requests_inflight=0), id="inflight-unlimited"),
        pytest.param(with_client(client_certificate="/c.crt", client_key="/c.key"), id="client-pair"),
        pytest.param(with_client(server="https://[fd00::1]:6443"), id="server-ipv6"),
        pytest.param(with_serving(secure_port=65535), id="secure-port-max"),
    ],
)
def test_a_valid_variation_has_no_errors(cfg: Config) -> None:
    assert cfg.validate() == []


def test_an_empty_config_reports_every_missing_required_setting() -> None:
    errors = Config().validate()
    assert len(errors) == 3, errors
    joined = " | ".join(errors)
    assert "--oidc-issuer-url is required" in joined
    assert "--oidc-client-id is required" in joined
    assert "--tls-cert-file and --tls-private-key-file are required" in joined


def test_errors_in_every_group_are_all_collected() -> None:
    cfg = Config(
        oidc=OIDCConfig(issuer_url="http://issuer.example", client_id="", signing_algs=("HS256", "none")),
        serving=ServingConfig(secure_port=8080, tls_min_version="SSLv3", tls_cipher_suites=("RC4",)),
        proxy=ProxyConfig(readiness_probe_port=8080, workers=65),
        client=ClientConfig(client_certificate="/c.crt"),
    )
    errors = cfg.validate()
    expected = [
        "--oidc-issuer-url must be an https URL",
        "--oidc-client-id is required",
        "'HS256' is not supported",
        "'none' is not supported",
        "--tls-cert-file and --tls-private-key-file are required",
        "--tls-min-version",
        "'RC4'",
        "--workers",
        "--client-certificate and --client-key",
        "--secure-port and --readiness-probe-port must differ",
    ]
    assert len(errors) == len(expected), errors
    for needle in expected:
        assert sum(needle in e for e in errors) == 1, (needle, errors)


def test_a_config_is_immutable() -> None:
    with pytest.raises(AttributeError):
        VALID.oidc.client_id = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("address", "expected"),
    [(":9090", ("", 9090)), ("127.0.0.1:9090", ("127.0.0.1", 9090)), ("[::1]:9090", ("::1", 9090)), (":0", ("", 0))],
)
def test_the_metrics_address_is_go_style_host_and_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address) == expected
    assert with_proxy(metrics_bind_address=address).validate() == []


@pytest.mark.parametrize(("flag", "prefix"), [("-", ""), ("", ""), ("oidc:", "oidc:")])
def test_a_dash_prefix_flag_means_no_prefix_as_kube_apiserver_documents(flag: str, prefix: str) -> None:
    oidc = OIDCConfig(issuer_url="https://issuer.example", client_id="kube", groups_claim="g")
    spec = replace(oidc, username_prefix=flag, groups_prefix=flag).to_spec(None)
    assert spec.username.prefix == prefix
    assert spec.groups is not None
    assert spec.groups.prefix == prefix
