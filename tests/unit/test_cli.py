"""The command line: the Go kube-oidc-proxy's flag names, defaults and pflag parsing rules."""

from __future__ import annotations

import argparse
import re
from importlib.metadata import version
from operator import attrgetter
from typing import Any

import pytest

from kube_oidc_proxy.cli import build_parser, config_from_args, parse
from kube_oidc_proxy.config import Config, SNICertKey
from kube_oidc_proxy.errors import ConfigError

# The least a valid command line needs (files are not read while parsing).
REQUIRED = [
    "--oidc-issuer-url=https://issuer.example",
    "--oidc-client-id=kube",
    "--tls-cert-file=/certs/tls.crt",
    "--tls-private-key-file=/certs/tls.key",
]


def namespace(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def config(*argv: str) -> Config:
    return config_from_args(namespace(*argv))


def value(cfg: Config, path: str) -> Any:
    return attrgetter(path)(cfg)


def argv_id(v: object) -> str | None:
    """Readable test ids for parametrized command lines."""
    return " ".join(v) if isinstance(v, list) else None


def usage_error(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Parse argv expecting a usage error; return what was printed to stderr."""
    with pytest.raises(SystemExit) as exc:
        namespace(*argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("path", "default"),
    [
        ("proxy.readiness_probe_port", 8080),
        ("proxy.flush_interval", 0.05),
        ("proxy.extra_user_header_client_ip", False),
        ("proxy.extra_user_headers", ()),
        ("proxy.workers", 1),
        ("proxy.shutdown_grace", 20.0),
        ("proxy.shutdown_delay", 0.0),  # kube-apiserver's default: a plain SIGTERM stops at once
        ("proxy.metrics_bind_address", ""),  # metrics are off unless asked for
        ("proxy.log_format", "text"),  # the Go proxy's AuSuccess/AuFail lines
        ("logging_format", "text"),  # the diagnostic log: klog's lines
        ("audit.log_truncate.enabled", False),  # kube-apiserver's truncate defaults
        ("audit.log_truncate.max_batch_size", 10 * 1024 * 1024),
        ("audit.webhook_truncate.max_event_size", 100 * 1024),
        ("oidc.issuer_url", ""),
        ("oidc.client_id", ""),
        ("oidc.ca_file", ""),
        ("oidc.username_claim", "sub"),
        ("oidc.username_prefix", ""),
        ("oidc.groups_claim", ""),
        ("oidc.groups_prefix", ""),
        ("oidc.signing_algs", ("RS256",)),
        ("oidc.required_claims", ()),
        ("oidc.allow_system_identities", False),
        ("serving.bind_address", "0.0.0.0"),  # all interfaces, as the Go proxy
        ("serving.secure_port", 6443),
        ("serving.tls_cert_file", ""),
        ("serving.tls_private_key_file", ""),
        ("serving.sni_cert_keys", ()),
        ("serving.tls_min_version", "VersionTLS12"),
        ("serving.tls_cipher_suites", ()),
        ("client.kubeconfig", ""),
        ("client.server", ""),
        ("client.certificate_authority", ""),
        ("client.client_certificate", ""),
        ("client.client_key", ""),
        ("client.token", ""),
        ("client.context", ""),
        ("client.cluster", ""),
        ("client.user", ""),
        ("client.tls_server_name", ""),
        ("client.insecure_skip_tls_verify", False),
        ("client.request_timeout", 0.0),
        ("client.explicit", False),
        ("verbosity", 0),
    ],
)
def test_an_empty_command_line_gives_the_go_proxy_defaults(path: str, default: object) -> None:
    assert value(config(), path) == default


# ---------------------------------------------------------------------------------------------------- value forms

STRING_FLAGS = [
    ("--oidc-issuer-url", "oidc.issuer_url"),
    ("--oidc-client-id", "oidc.client_id"),
    ("--oidc-ca-file", "oidc.ca_file"),
    ("--oidc-username-claim", "oidc.username_claim"),
    ("--oidc-username-prefix", "oidc.username_prefix"),
    ("--oidc-groups-claim", "oidc.groups_claim"),
    ("--oidc-groups-prefix", "oidc.groups_prefix"),
    ("--bind-address", "serving.bind_address"),
    ("--tls-cert-file", "serving.tls_cert_file"),
    ("--tls-private-key-file", "serving.tls_private_key_file"),
    ("--tls-min-version", "serving.tls_min_version"),
    ("--kubeconfig", "client.kubeconfig"),
    ("--server", "client.server"),
    ("-s", "client.server"),
    ("--certificate-authority", "client.certificate_authority"),
    ("--client-certificate", "client.client_certificate"),
    ("--client-key", "client.client_key"),
    ("--token", "client.token"),
    ("--context", "client.context"),
    ("--cluster", "client.cluster"),
    ("--user", "client.user"),
    ("--tls-server-name", "client.tls_server_name"),
    ("--metrics-bind-address", "proxy.metrics_bind_address"),
    ("--log-format", "proxy.log_format"),
    ("--logging-format", "logging_format"),
]


@pytest.mark.parametrize(("flag", "path"), STRING_FLAGS)
@pytest.mark.parametrize("form", ["equals", "separate"])
def test_a_string_flag_takes_its_value_after_an_equals_sign_or_as_the_next_argument(
    flag: str, path: str, form: str
) -> None:
    argv = [f"{flag}=some-value"] if form == "equals" else [flag, "some-value"]
    assert value(config(*argv), path) == "some-value"


def test_a_string_value_may_itself_contain_an_equals_sign_and_start_with_a_dash() -> None:
    assert config("--oidc-username-prefix=oidc:a=b").oidc.username_prefix == "oidc:a=b"
    assert config("--oidc-groups-prefix=-").oidc.groups_prefix == "-"


INT_FLAGS = [
    ("--readiness-probe-port", "proxy.readiness_probe_port"),
    ("-P", "proxy.readiness_probe_port"),
    ("--secure-port", "serving.secure_port"),
    ("--workers", "proxy.workers"),
    ("--v", "verbosity"),
    ("-v", "verbosity"),
]


@pytest.mark.parametrize(("flag", "path"), INT_FLAGS)
@pytest.mark.parametrize("form", ["equals", "separate"])
def test_a_number_flag_takes_its_value_after_an_equals_sign_or_as_the_next_argument(
    flag: str, path: str, form: str
) -> None:
    argv = [f"{flag}=9"] if form == "equals" else [flag, "9"]
    assert value(config(*argv), path) == 9


@pytest.mark.parametrize("argv", [["-v4"], ["-v=4"], ["-v", "4"], ["--v=4"], ["--v", "4"]], ids=argv_id)
def test_verbosity_is_given_with_v_in_every_pflag_spelling(argv: list[str]) -> None:
    assert config(*argv).verbosity == 4


@pytest.mark.parametrize(
    "argv", [["-P9090"], ["-P=9090"], ["-P", "9090"], ["--readiness-probe-port=9090"]], ids=argv_id
)
def test_the_readiness_port_has_the_short_form_p(argv: list[str]) -> None:
    assert config(*argv).proxy.readiness_probe_port == 9090


@pytest.mark.parametrize("argv", [["--readiness-probe-port=0"], ["-P", "0"]], ids=argv_id)
def test_readiness_port_zero_disables_the_probe_listener(argv: list[str]) -> None:
    assert config(*argv).proxy.readiness_probe_port is None


@pytest.mark.parametrize(
    ("argv", "port"),
    [(["--secure-port", "8443"], 8443), (["--secure-port=443"], 443), ([], 6443)],
    ids=argv_id,
)
def test_the_secure_port_is_taken_from_its_flag(argv: list[str], port: int) -> None:
    assert config(*argv).serving.secure_port == port


@pytest.mark.parametrize(
    "argv", [["--secure-port=https"], ["-P", "eighty"], ["--workers=two"], ["-v", "high"]], ids=argv_id
)
def test_a_number_flag_with_a_non_number_is_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    usage_error(capsys, *argv)


BOOL_FLAGS = [
    ("--extra-user-header-client-ip", "proxy.extra_user_header_client_ip"),
    ("--oidc-allow-system-identities", "oidc.allow_system_identities"),
    ("--insecure-skip-tls-verify", "client.insecure_skip_tls_verify"),
]


@pytest.mark.parametrize(("flag", "path"), BOOL_FLAGS)
@pytest.mark.parametrize(
    ("suffix", "expected"),
    [
        ("", True),
        ("=true", True),
        ("=false", False),
        ("=True", True),
        ("=FALSE", False),
        ("=1", True),
        ("=0", False),
        ("=t", True),
        ("=F", False),
    ],
)
def test_a_boolean_flag_is_set_bare_or_with_an_explicit_value(
    flag: str, path: str, suffix: str, expected: bool
) -> None:
    assert value(config(f"{flag}{suffix}"), path) is expected


@pytest.mark.parametrize(("flag", "path"), BOOL_FLAGS)
def test_a_bare_boolean_flag_does_not_swallow_the_next_flag(flag: str, path: str) -> None:
    cfg = config(flag, "--oidc-client-id", "kube")
    assert value(cfg, path) is True
    assert cfg.oidc.client_id == "kube"


@pytest.mark.parametrize(("flag", "path"), BOOL_FLAGS)
def test_a_boolean_flag_with_a_value_that_is_not_a_boolean_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], flag: str, path: str
) -> None:
    assert flag in usage_error(capsys, f"{flag}=yes")


# ---------------------------------------------------------------------------------------------------- slices


@pytest.mark.parametrize(
    ("argv", "algs"),
    [
        (["--oidc-signing-algs", "ES256"], ("ES256",)),
        (["--oidc-signing-algs=ES256,PS384"], ("ES256", "PS384")),
        (["--oidc-signing-algs", "RS256, ES512"], ("RS256", "ES512")),
        (["--oidc-signing-algs=ES256", "--oidc-signing-algs", "RS256,PS512"], ("ES256", "RS256", "PS512")),
        (["--oidc-signing-algs=PS256", "--oidc-signing-algs=ES384"], ("PS256", "ES384")),
    ],
    ids=argv_id,
)
def test_signing_algs_are_comma_separated_accumulate_when_repeated_and_replace_the_default(
    argv: list[str], algs: tuple[str, ...]
) -> None:
    assert config(*argv).oidc.signing_algs == algs


def test_cipher_suites_are_comma_separated_and_accumulate_when_repeated() -> None:
    cfg = config(
        "--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_AES_128_GCM_SHA256",
        "--tls-cipher-suites",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
    )
    assert cfg.serving.tls_cipher_suites == (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
    )


def test_a_parser_used_twice_does_not_carry_slice_values_over() -> None:
    parser = build_parser()
    first = config_from_args(parser.parse_args(["--oidc-signing-algs=ES256"]))
    second = config_from_args(parser.parse_args([]))
    third = config_from_args(parser.parse_args(["--oidc-signing-algs=PS256"]))
    assert first.oidc.signing_algs == ("ES256",)
    assert second.oidc.signing_algs == ("RS256",)
    assert third.oidc.signing_algs == ("PS256",)


# ---------------------------------------------------------------------------------------------------- key=value flags


@pytest.mark.parametrize(
    ("argv", "claims"),
    [
        (["--oidc-required-claim", "hd=example.com"], (("hd", "example.com"),)),
        (["--oidc-required-claim=hd=example.com"], (("hd", "example.com"),)),
        (["--oidc-required-claim", "groups=a,b"], (("groups", "a,b"),)),
        (["--oidc-required-claim=expr=a=b,c=d"], (("expr", "a=b,c=d"),)),
        (["--oidc-required-claim=empty="], (("empty", ""),)),
        (
            ["--oidc-required-claim", "hd=example.com", "--oidc-required-claim=tier=gold"],
            (("hd", "example.com"), ("tier", "gold")),
        ),
    ],
    ids=argv_id,
)
def test_a_required_claim_is_repeatable_and_its_value_may_hold_commas_and_equals_signs(
    argv: list[str], claims: tuple[tuple[str, str], ...]
) -> None:
    assert config(*argv).oidc.required_claims == claims


def test_a_required_claim_without_an_equals_sign_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--oidc-required-claim" in usage_error(capsys, "--oidc-required-claim", "hd")


@pytest.mark.parametrize(
    ("argv", "extras"),
    [
        (  # the Go proxy's e2e headers case
            ["--extra-user-headers", "k1=foo,k2=foo,k1=bar"],
            (("k1", ("foo", "bar")), ("k2", ("foo",))),
        ),
        (["--extra-user-headers=key=value"], (("key", ("value",)),)),
        (
            ["--extra-user-headers=a=1", "--extra-user-headers", "b=2,a=3"],
            (("a", ("1", "3")), ("b", ("2",))),
        ),
        (["--extra-user-headers="], ()),
    ],
    ids=argv_id,
)
def test_extra_user_headers_are_key_value_pairs_whose_repeated_keys_accumulate(
    argv: list[str], extras: tuple[tuple[str, tuple[str, ...]], ...]
) -> None:
    assert config(*argv).proxy.extra_user_headers == extras


@pytest.mark.parametrize("bad", ["key1", "k1=foo,key3", "=value"])
def test_an_extra_user_header_pair_without_a_key_and_an_equals_sign_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    err = usage_error(capsys, "--extra-user-headers", bad)
    assert "--extra-user-headers" in err
    assert "key=value" in err


@pytest.mark.parametrize(
    ("argv", "sni"),
    [
        (["--tls-sni-cert-key", "a.crt,a.key"], (SNICertKey("a.crt", "a.key", ()),)),
        (["--tls-sni-cert-key=a.crt,a.key:a.com,b.com"], (SNICertKey("a.crt", "a.key", ("a.com", "b.com")),)),
        (["--tls-sni-cert-key=w.crt,w.key:*.example.com"], (SNICertKey("w.crt", "w.key", ("*.example.com",)),)),
        (
            ["--tls-sni-cert-key=a.crt,a.key", "--tls-sni-cert-key", "b.crt,b.key:b.com"],
            (SNICertKey("a.crt", "a.key", ()), SNICertKey("b.crt", "b.key", ("b.com",))),
        ),
    ],
    ids=argv_id,
)
def test_an_sni_cert_key_is_cert_comma_key_with_optional_domains_and_repeats(
    argv: list[str], sni: tuple[SNICertKey, ...]
) -> None:
    assert config(*argv).serving.sni_cert_keys == sni


@pytest.mark.parametrize("bad", ["only-a-cert.crt", ",a.key", "a.crt,", "a.crt:a.com"])
def test_an_sni_cert_key_without_both_files_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError, match="--tls-sni-cert-key"):
        config("--tls-sni-cert-key", bad)


# ---------------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("argv", "path", "seconds"),
    [
        (["--flush-interval=1s"], "proxy.flush_interval", 1.0),
        (["--flush-interval", "0"], "proxy.flush_interval", 0.0),
        (["--flush-interval=-1ms"], "proxy.flush_interval", -0.001),  # Go: negative means flush every write
        (["--shutdown-grace-period", "1m30s"], "proxy.shutdown_grace", 90.0),
        (["--shutdown-delay-duration=5s"], "proxy.shutdown_delay", 5.0),
        (["--request-timeout=500ms"], "client.request_timeout", 0.5),
        (["--request-timeout", "2m"], "client.request_timeout", 120.0),
    ],
    ids=argv_id,
)
def test_a_duration_flag_takes_a_go_duration(argv: list[str], path: str, seconds: float) -> None:
    assert value(config(*argv), path) == pytest.approx(seconds)


def test_request_timeout_also_takes_whole_seconds_like_kubectl() -> None:
    # client-go's clientcmd.ParseTimeout: "a single integer in seconds, or an integer followed by a unit".
    assert config("--request-timeout=30").client.request_timeout == 30.0


@pytest.mark.parametrize(
    "argv", [["--flush-interval=5"], ["--shutdown-grace-period", "soon"], ["--flush-interval=1x"]], ids=argv_id
)
def test_a_duration_without_a_unit_is_a_usage_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "invalid duration" in usage_error(capsys, *argv)


# ---------------------------------------------------------------------------------------------------- --version


def test_version_prints_one_line_with_the_library_versions_and_returns_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert parse(["--version"]) is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("kube-oidc-proxy ")
    for lib in ("httptools", "uvloop", "joserfc", "cryptography"):
        assert f"{lib} {version(lib)}" in out
    assert re.search(r"\(commit ([0-9a-f]{7,64}|unknown); Python ", out), out


def test_version_is_handled_before_validation_like_the_go_proxy(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse(["--version", "--oidc-issuer-url=http://not-https"]) is None
    assert "kube-oidc-proxy" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    "argv",
    [
        ["--oidc-issuer=https://issuer.example"],
        ["--oidc-client", "kube"],
        ["--secure=7443"],
        ["--tls-cert", "a.crt"],
        ["--readiness", "1"],
        ["--vers"],
        ["--insecure"],
    ],
    ids=argv_id,
)
def test_a_prefix_of_a_flag_name_is_not_accepted(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert "unrecognized arguments" in usage_error(capsys, *argv)


@pytest.mark.parametrize(
    "argv",
    # --as and --cache-dir: kubectl flags that the Go proxy does not register either.
    [["--no-such-flag"], ["--oidc-issuer-url"], ["--as=someone"], ["--cache-dir=/tmp"]],
    ids=argv_id,
)
def test_an_unknown_flag_or_a_missing_value_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    err = usage_error(capsys, *argv)
    assert err.startswith("kube-oidc-proxy: error: ")
    assert "usage:" not in err


# ---------------------------------------------------------------------------------------------------- compatibility


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--cert-dir", "/var/run/kubernetes"], ("--cert-dir",)),
        (["--logtostderr"], ("--logtostderr",)),
        (["--logtostderr=false"], ("--logtostderr",)),
        (["--alsologtostderr"], ("--alsologtostderr",)),
        (["--vmodule", "proxy=4"], ("--vmodule",)),
        (["-n", "kube-system"], ("-n", "--namespace")),
        (["--namespace=kube-system"], ("--namespace",)),
        (["--permit-port-sharing=true"], ("--permit-port-sharing",)),
        (["--permit-address-sharing"], ("--permit-address-sharing",)),
        (["--disable-compression"], ("--disable-compression",)),
        (["--log-dir=/tmp"], ("--log-dir",)),
        (["--log-file", "/tmp/x.log"], ("--log-file",)),
        (["--log-file-max-size=1800"], ("--log-file-max-size",)),
        (["--stderrthreshold=2"], ("--stderrthreshold",)),
        (["--log-backtrace-at=proxy.go:10"], ("--log-backtrace-at",)),
        (["--log-flush-frequency=5s"], ("--log-flush-frequency",)),
        (["--skip-headers"], ("--skip-headers",)),
        (["--skip-log-headers"], ("--skip-log-headers",)),
        (["--add-dir-header"], ("--add-dir-header",)),
    ],
    ids=argv_id,
)
def test_a_go_only_flag_is_accepted_and_reported_as_an_ignored_warning_that_says_why(
    argv: list[str], names: tuple[str, ...]
) -> None:
    parsed = parse([*REQUIRED, *argv])
    assert parsed is not None
    cfg, warnings = parsed
    assert len(warnings) == 1, warnings
    assert any(name in warnings[0] for name in names), warnings
    _, sep, why = warnings[0].partition("has no effect:")
    assert sep, warnings
    assert why.strip(), f"the warning does not say why: {warnings[0]!r}"
    baseline = parse(REQUIRED)
    assert baseline is not None
    assert cfg == baseline[0]  # it changes nothing


def test_several_compatibility_flags_each_give_a_warning() -> None:
    parsed = parse([*REQUIRED, "--cert-dir", "x", "--logtostderr", "--vmodule", "x=1", "--disable-compression"])
    assert parsed is not None
    assert len(parsed[1]) == 4


@pytest.mark.parametrize(
    ("argv", "http2", "streams"),
    [
        ([], True, 0),
        (["--disable-http2-serving"], False, 0),
        (["--disable-http2-serving=false"], True, 0),
        (["--http2-max-streams-per-connection", "250"], True, 250),
    ],
    ids=argv_id,
)
def test_the_http2_serving_flags_take_effect_without_warnings(argv: list[str], http2: bool, streams: int) -> None:
    parsed = parse([*REQUIRED, *argv])
    assert parsed is not None
    cfg, warnings = parsed
    assert warnings == []
    assert (cfg.serving.http2, cfg.serving.http2_max_streams) == (http2, streams)


def test_a_negative_stream_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="--http2-max-streams-per-connection"):
        parse([*REQUIRED, "--http2-max-streams-per-connection", "-1"])


def test_a_clean_command_line_gives_no_warnings() -> None:
    parsed = parse(REQUIRED)
    assert parsed is not None
    assert parsed[1] == []


# ---------------------------------------------------------------------------------------------------- client selection


@pytest.mark.parametrize(
    "argv",
    [
        ["--kubeconfig", "/etc/kube/config"],
        ["--server", "https://kube.example"],
        ["-s", "https://kube.example"],
        ["--certificate-authority", "/ca.crt"],
        ["--client-certificate", "/c.crt"],
        ["--client-key", "/c.key"],
        ["--token", "secret"],
        ["--context", "prod"],
        ["--cluster", "prod"],
        ["--user", "proxy"],
        ["--tls-server-name", "kubernetes.default"],
        ["--insecure-skip-tls-verify"],
    ],
    ids=argv_id,
)
def test_a_connection_flag_switches_from_the_in_cluster_config_to_kubeconfig_rules(argv: list[str]) -> None:
    assert config(*argv).client.explicit is True


def test_request_timeout_alone_keeps_the_in_cluster_config() -> None:
    cfg = config("--request-timeout=10s")
    assert cfg.client.explicit is False
    assert cfg.client.request_timeout == 10.0


def test_other_flags_keep_the_in_cluster_config() -> None:
    assert config(*REQUIRED, "--insecure-skip-tls-verify=false", "-v", "2").client.explicit is False


# ---------------------------------------------------------------------------------------------------- parse()


def test_parse_returns_the_validated_config_built_from_every_flag() -> None:
    parsed = parse(
        [
            *REQUIRED,
            "--oidc-username-claim=email",
            "--oidc-groups-claim",
            "groups",
            "--oidc-signing-algs=ES256",
            "--secure-port=7443",
            "-P",
            "7080",
            "--workers=4",
            "--server=https://kube.example:6443",
            "--token=t",
            "--v=3",
        ]
    )
    assert parsed is not None
    cfg, warnings = parsed
    assert warnings == []
    assert cfg.oidc.issuer_url == "https://issuer.example"
    assert cfg.oidc.username_claim == "email"
    assert cfg.oidc.groups_claim == "groups"
    assert cfg.oidc.signing_algs == ("ES256",)
    assert cfg.serving.secure_port == 7443
    assert cfg.proxy.readiness_probe_port == 7080
    assert cfg.proxy.workers == 4
    assert cfg.client.server == "https://kube.example:6443"
    assert cfg.client.explicit is True
    assert cfg.verbosity == 3


def test_parse_raises_one_config_error_naming_every_problem() -> None:
    with pytest.raises(ConfigError) as exc:
        parse(["--oidc-issuer-url=http://issuer.example", "--oidc-signing-algs=HS256", "--workers=0"])
    message = str(exc.value)
    assert "\n" not in message
    for needle in ("--oidc-issuer-url", "--oidc-client-id", "HS256", "--tls-cert-file", "--workers"):
        assert needle in message


# ---------------------------------------------------------------------------------------------------- audit flags

AUDIT_DEFAULTS = [  # kube-apiserver's defaults (k8s.io/apiserver pkg/server/options/audit.go)
    ("audit.policy_file", ""),
    ("audit.log_path", ""),
    ("audit.log_format", "json"),
    ("audit.log_mode", "blocking"),
    ("audit.log_batch.buffer_size", 10_000),
    ("audit.log_batch.max_size", 1),
    ("audit.log_batch.throttle_enable", False),
    ("audit.webhook_mode", "batch"),
    ("audit.webhook_initial_backoff", 10.0),
    ("audit.webhook_batch.max_size", 400),
    ("audit.webhook_batch.max_wait", 30.0),
    ("audit.webhook_batch.throttle_enable", True),
    ("audit.webhook_batch.throttle_qps", 10.0),
    ("audit.webhook_batch.throttle_burst", 15),
    ("audit.webhook_truncate.enabled", False),
    ("audit.webhook_truncate.max_batch_size", 10 * 1024 * 1024),
]


@pytest.mark.parametrize(("path", "default"), AUDIT_DEFAULTS)
def test_audit_flags_default_as_in_kube_apiserver(path: str, default: object) -> None:
    assert value(config(), path) == default


@pytest.mark.parametrize(
    ("arg", "path", "expected"),
    [
        ("--audit-policy-file=/etc/audit/policy.yaml", "audit.policy_file", "/etc/audit/policy.yaml"),
        ("--audit-log-path=-", "audit.log_path", "-"),
        ("--audit-log-maxage=7", "audit.log_max_age", 7),
        ("--audit-log-maxbackup=3", "audit.log_max_backup", 3),
        ("--audit-log-maxsize=100", "audit.log_max_size", 100),
        ("--audit-log-format=legacy", "audit.log_format", "legacy"),
        ("--audit-log-mode=batch", "audit.log_mode", "batch"),
        ("--audit-log-compress", "audit.log_compress", True),
        ("--audit-log-batch-max-wait=5s", "audit.log_batch.max_wait", 5.0),
        ("--audit-log-batch-throttle-enable", "audit.log_batch.throttle_enable", True),
        ("--audit-log-truncate-enabled", "audit.log_truncate.enabled", True),
        ("--audit-log-truncate-max-event-size=2048", "audit.log_truncate.max_event_size", 2048),
        ("--audit-webhook-config-file=/etc/audit/hook", "audit.webhook_config_file", "/etc/audit/hook"),
        ("--audit-webhook-mode=blocking-strict", "audit.webhook_mode", "blocking-strict"),
        ("--audit-webhook-initial-backoff=1s", "audit.webhook_initial_backoff", 1.0),
        ("--audit-webhook-batch-initial-backoff=2s", "audit.webhook_initial_backoff", 2.0),  # deprecated alias
        ("--audit-webhook-batch-buffer-size=50", "audit.webhook_batch.buffer_size", 50),
        ("--audit-webhook-batch-throttle-enable=false", "audit.webhook_batch.throttle_enable", False),
        ("--audit-webhook-truncate-max-batch-size=4096", "audit.webhook_truncate.max_batch_size", 4096),
    ],
)
def test_audit_flags_take_kube_apiservers_names(arg: str, path: str, expected: object) -> None:
    assert value(config(arg), path) == expected


def test_only_audit_k8s_io_v1_events_are_written() -> None:
    assert value(config("--audit-log-version=audit.k8s.io/v1"), "audit.log_path") == ""
    with pytest.raises(ConfigError, match=r"only audit\.k8s\.io/v1 is supported"):
        config("--audit-webhook-version=audit.k8s.io/v1beta1")


# ------------------------------------------------------------------------------------ --authentication-config

TLS = ["--tls-cert-file=/certs/tls.crt", "--tls-private-key-file=/certs/tls.key"]


def test_the_authentication_config_file_replaces_the_issuer_flags() -> None:
    parsed = parse(["--authentication-config=/etc/kop/auth.yaml", *TLS])
    assert parsed is not None
    cfg = parsed[0]
    assert cfg.oidc.authentication_config == "/etc/kop/auth.yaml"
    assert cfg.validate() == []


def test_the_file_still_takes_our_own_system_identities_flag() -> None:
    parsed = parse(["--authentication-config=/etc/kop/auth.yaml", "--oidc-allow-system-identities", *TLS])
    assert parsed is not None
    assert parsed[0].oidc.allow_system_identities


@pytest.mark.parametrize(
    "flag",
    [
        "--oidc-issuer-url=https://issuer.example",
        "--oidc-client-id=kube",
        "--oidc-ca-file=/ca.pem",
        "--oidc-username-claim=sub",  # even the default value: it was set
        "--oidc-username-prefix=-",
        "--oidc-groups-claim=groups",
        "--oidc-groups-prefix=oidc:",
        "--oidc-signing-algs=RS256",
        "--oidc-required-claim=hd=example.com",
    ],
)
def test_the_file_and_any_issuer_flag_are_refused_together(flag: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse(["--authentication-config=/etc/kop/auth.yaml", flag, *TLS])
    assert f"--authentication-config cannot be combined with {flag.partition('=')[0]}" in str(refused.value)


def test_without_the_file_the_issuer_flags_are_required_and_say_so() -> None:
    with pytest.raises(ConfigError) as refused:
        parse(TLS)
    assert "--oidc-issuer-url is required (or --authentication-config)" in str(refused.value)


# ---------------------------------------------------------------------------------------------------- log formats


def test_the_diagnostic_and_the_access_log_formats_are_two_flags() -> None:
    parsed = parse([*REQUIRED, "--logging-format=json"])
    assert parsed is not None
    cfg, warnings = parsed
    assert (cfg.logging_format, cfg.proxy.log_format, warnings) == ("json", "text", [])
    parsed = parse([*REQUIRED, "--log-format=json"])
    assert parsed is not None
    assert (parsed[0].logging_format, parsed[0].proxy.log_format) == ("text", "json")


def test_a_logging_format_component_base_does_not_have_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"--logging-format must be text or json, got 'yaml'"):
        parse([*REQUIRED, "--logging-format=yaml"])
