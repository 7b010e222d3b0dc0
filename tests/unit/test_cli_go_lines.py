"""Every flag of every Go line (jetstack, Tremolo, RafPe) is known here: taken as ours, accepted with a
warning that says why it changes nothing, or refused (exit 2) with what to use instead. None is a bare
"unrecognized arguments". And a flag that really is unknown gets the nearest known name."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.model import Authenticated, Rejected
from kube_oidc_proxy.authz.checker import CHECK_TIMEOUT_SECONDS
from kube_oidc_proxy.cli import build_parser, parse
from kube_oidc_proxy.config import Config
from kube_oidc_proxy.errors import ConfigError
from tests.unit.test_cli import REQUIRED, argv_id, usage_error

# The flags each Go line registers, with a value of the flag's type. jetstack: v0.3.0 and master (its
# sources; k8s.io libraries 0.18). Tremolo: master d534f69b (1.0.x, k8s.io 0.35) and RafPe: v1.4.0 aec87ded
# (k8s.io 0.36), each the --help of the binary built from that commit, plus the deprecated (hidden)
# --audit-webhook-batch-initial-backoff.
COMMON = [
    ["--disable-impersonation"],
    ["--extra-user-header-client-ip"],
    ["--extra-user-headers=team=a"],
    ["--flush-interval=50ms"],
    ["-P", "8081"],
    ["--readiness-probe-port=8081"],
    ["--token-passthrough"],
    ["--token-passthrough-audiences=api"],
    ["--oidc-ca-file=/ca.pem"],
    ["--oidc-client-id=kube"],
    ["--oidc-groups-claim=groups"],
    ["--oidc-groups-prefix=oidc:"],
    ["--oidc-issuer-url=https://issuer.example"],
    ["--oidc-required-claim=hd=example.com"],
    ["--oidc-signing-algs=RS256"],
    ["--oidc-username-claim=email"],
    ["--oidc-username-prefix=-"],
    ["--bind-address=0.0.0.0"],
    ["--cert-dir=/var/run/kubernetes"],
    ["--http2-max-streams-per-connection=100"],
    ["--secure-port=8443"],
    ["--tls-cert-file=/t.crt"],
    ["--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
    ["--tls-min-version=VersionTLS12"],
    ["--tls-private-key-file=/t.key"],
    ["--tls-sni-cert-key=a.crt,a.key:a.example"],
    ["--audit-log-batch-buffer-size=10"],
    ["--audit-log-batch-max-size=1"],
    ["--audit-log-batch-max-wait=1s"],
    ["--audit-log-batch-throttle-burst=1"],
    ["--audit-log-batch-throttle-enable"],
    ["--audit-log-batch-throttle-qps=1"],
    ["--audit-log-format=json"],
    ["--audit-log-maxage=1"],
    ["--audit-log-maxbackup=1"],
    ["--audit-log-maxsize=1"],
    ["--audit-log-mode=batch"],
    ["--audit-log-path=-"],
    ["--audit-log-truncate-enabled"],
    ["--audit-log-truncate-max-batch-size=1"],
    ["--audit-log-truncate-max-event-size=1"],
    ["--audit-log-version=audit.k8s.io/v1"],
    ["--audit-policy-file=/p.yaml"],
    ["--audit-webhook-batch-buffer-size=1"],
    ["--audit-webhook-batch-initial-backoff=1s"],
    ["--audit-webhook-batch-max-size=1"],
    ["--audit-webhook-batch-max-wait=1s"],
    ["--audit-webhook-batch-throttle-burst=1"],
    ["--audit-webhook-batch-throttle-enable=false"],
    ["--audit-webhook-batch-throttle-qps=1"],
    ["--audit-webhook-config-file=/w.yaml"],
    ["--audit-webhook-initial-backoff=1s"],
    ["--audit-webhook-mode=batch"],
    ["--audit-webhook-truncate-enabled"],
    ["--audit-webhook-truncate-max-batch-size=1"],
    ["--audit-webhook-truncate-max-event-size=1"],
    ["--audit-webhook-version=audit.k8s.io/v1"],
    ["--certificate-authority=/ca.crt"],
    ["--client-certificate=/c.crt"],
    ["--client-key=/c.key"],
    ["--cluster=c"],
    ["--context=c"],
    ["--insecure-skip-tls-verify"],
    ["--kubeconfig=/k"],
    ["-n", "kube-system"],
    ["--namespace=kube-system"],
    ["--request-timeout=0"],
    ["-s", "https://kube.example"],
    ["--server=https://kube.example"],
    ["--tls-server-name=kubernetes"],
    ["--token=t"],
    ["--user=u"],
    ["--log-flush-frequency=5s"],
    ["-v", "2"],
    ["--v=2"],
    ["--vmodule=proxy=4"],
]
JETSTACK_ONLY = [  # klog v1's flags and the dynamic audit flag of k8s.io/apiserver 0.18
    ["--add-dir-header"],
    ["--alsologtostderr"],
    ["--log-backtrace-at=proxy.go:10"],
    ["--log-dir=/tmp"],
    ["--log-file=/tmp/log"],
    ["--log-file-max-size=1800"],
    ["--logtostderr"],
    ["--skip-headers"],
    ["--skip-log-headers"],
    ["--stderrthreshold=2"],
    ["--audit-dynamic-configuration=false"],
]
TREMOLO_ADDED = [
    ["--permit-address-sharing"],
    ["--permit-port-sharing"],
    ["--disable-http2-serving"],
    ["--audit-log-compress"],
    ["--as-uid=1000"],
    ["--as-user-extra=k=v"],
    ["--disable-compression"],
    ["--kube-client-qps=50"],
    ["--kube-client-burst=100"],
]
RAFPE_ADDED = [
    ["--allow-reserved-groups=system:monitoring"],
    ["--readiness-require-all-issuers"],
    ["--subject-access-review-timeout=5s"],
    ["--trusted-proxies=10.0.0.0/8"],
    ["--oidc-tls-client-cert-file=/c.crt"],
    ["--oidc-tls-client-key-file=/c.key"],
    ["--authentication-config=/a.yaml"],
    ["--tls-curve-preferences=29,23"],
]

EVERY_GO_FLAG = [
    *[pytest.param(argv, id=f"jetstack {' '.join(argv)}") for argv in COMMON + JETSTACK_ONLY],
    *[pytest.param(argv, id=f"tremolo {' '.join(argv)}") for argv in TREMOLO_ADDED],
    *[pytest.param(argv, id=f"rafpe {' '.join(argv)}") for argv in RAFPE_ADDED],
]


@pytest.mark.parametrize("argv", EVERY_GO_FLAG)
def test_every_flag_of_every_go_line_is_known(argv: list[str]) -> None:
    try:
        build_parser().parse_args(argv)
    except SystemExit:  # pragma: no cover - the failure says which flag
        pytest.fail(f"{argv} is not recognised")


@pytest.mark.parametrize("argv", EVERY_GO_FLAG)
def test_every_flag_of_every_go_line_starts_or_is_refused_with_the_reason(argv: list[str]) -> None:
    flag = argv[0].partition("=")[0]
    try:
        parse([*REQUIRED, *argv])
    except ConfigError as exc:  # refused: named, with what to do instead
        assert flag in str(exc) or "--authentication-config" in str(exc)


def warnings_of(*argv: str) -> tuple[Config, list[str]]:
    parsed = parse([*REQUIRED, *argv])
    assert parsed is not None
    return parsed


def baseline() -> Config:
    return warnings_of()[0]


# ---------------------------------------------------------------------------------------------------- RafPe


def test_trusted_proxies_is_taken_as_trusted_proxy_cidrs_with_a_warning_naming_it() -> None:
    cfg, warnings = warnings_of("--trusted-proxies=10.0.0.0/8,fd00::/8")
    assert cfg.proxy.trusted_proxy_cidrs == ("10.0.0.0/8", "fd00::/8")
    assert warnings == [
        "--trusted-proxies is taken as --trusted-proxy-cidrs, its name here (see docs/migrating.md); rename it"
    ]
    assert cfg == warnings_of("--trusted-proxy-cidrs=10.0.0.0/8,fd00::/8")[0]


def test_trusted_proxies_and_trusted_proxy_cidrs_add_up() -> None:
    cfg, _ = warnings_of("--trusted-proxy-cidrs=10.0.0.0/8", "--trusted-proxies", "192.168.0.0/16")
    assert cfg.proxy.trusted_proxy_cidrs == ("10.0.0.0/8", "192.168.0.0/16")


def test_trusted_proxies_that_are_not_networks_are_refused_under_our_name() -> None:
    with pytest.raises(ConfigError, match="--trusted-proxy-cidrs"):
        warnings_of("--trusted-proxies=not-a-cidr")


@pytest.mark.parametrize(
    "argv",
    [
        ["--allow-reserved-groups=system:monitoring"],
        ["--allow-reserved-groups", "system:monitoring,system:nodes"],
        ["--allow-reserved-groups=", "--allow-reserved-groups=system:monitoring"],
    ],
    ids=argv_id,
)
def test_allowing_some_reserved_groups_is_refused_with_the_equivalent(argv: list[str]) -> None:
    # Taking it as --oidc-allow-system-identities would let system:masters and system: usernames in.
    with pytest.raises(ConfigError) as refused:
        warnings_of(*argv)
    message = str(refused.value)
    assert message.startswith(f"--allow-reserved-groups={argv[-1].rpartition('=')[2]} is not supported: ")
    for pointer in ("--oidc-allow-system-identities", "userValidationRules", "docs/migrating.md#rafpe"):
        assert pointer in message


def test_an_empty_reserved_group_list_is_our_default_and_says_so() -> None:
    cfg, warnings = warnings_of("--allow-reserved-groups=")
    assert warnings == ["--allow-reserved-groups= has no effect: it asks for nothing (the Go proxy's default)"]
    assert cfg == baseline()
    assert cfg.oidc.allow_system_identities is False


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], False),
        (["--readiness-require-all-issuers"], True),
        (["--readiness-require-all-issuers=true"], True),
        (["--readiness-require-all-issuers=false"], False),
    ],
    ids=argv_id,
)
def test_readiness_require_all_issuers_is_a_flag_here_too(argv: list[str], expected: bool) -> None:
    cfg, warnings = warnings_of(*argv)
    assert cfg.proxy.readiness_require_all_issuers is expected
    assert warnings == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], CHECK_TIMEOUT_SECONDS),
        (["--subject-access-review-timeout=5s"], 5.0),
        (["--subject-access-review-timeout", "250ms"], 0.25),
    ],
    ids=argv_id,
)
def test_subject_access_review_timeout_is_a_flag_here_too(argv: list[str], expected: float) -> None:
    cfg, warnings = warnings_of(*argv)
    assert cfg.proxy.subject_access_review_timeout == expected
    assert warnings == []


@pytest.mark.parametrize("value", ["0s", "-1s"])
def test_subject_access_review_timeout_must_be_positive_as_in_rafpe(value: str) -> None:
    with pytest.raises(ConfigError, match="--subject-access-review-timeout must be greater than 0"):
        warnings_of(f"--subject-access-review-timeout={value}")


def test_subject_access_review_timeout_needs_a_unit(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid duration" in usage_error(capsys, "--subject-access-review-timeout=5")


def test_an_oidc_client_certificate_is_refused_naming_both_flags() -> None:
    with pytest.raises(ConfigError) as refused:
        warnings_of("--oidc-tls-client-cert-file=/etc/oidc/client-tls/tls.crt", "--oidc-tls-client-key-file=/k")
    message = str(refused.value)
    assert "--oidc-tls-client-cert-file=/etc/oidc/client-tls/tls.crt is not supported" in message
    assert "--oidc-tls-client-key-file=/k is not supported" in message
    assert "cannot present a client certificate to OIDC issuers" in message


@pytest.mark.parametrize(
    "flag", ["--oidc-tls-client-cert-file", "--oidc-tls-client-key-file", "--tls-curve-preferences"]
)
def test_an_empty_value_of_a_refused_flag_is_the_go_default_and_changes_nothing(flag: str) -> None:
    cfg, warnings = warnings_of(f"{flag}=")
    assert warnings == [f"{flag}= has no effect: it asks for nothing (the Go proxy's default)"]
    assert cfg == baseline()


def test_chosen_key_exchange_groups_are_refused_rather_than_ignored() -> None:
    with pytest.raises(ConfigError, match=r"--tls-curve-preferences=29 is not supported: .*OpenSSL's defaults"):
        warnings_of("--tls-curve-preferences=29")


# ---------------------------------------------------------------------------------------------------- Tremolo, jetstack


@pytest.mark.parametrize("argv", [["--as-uid=1000"], ["--as-user-extra", "team=a"]], ids=argv_id)
def test_kubectls_impersonation_flags_change_nothing_and_say_why(argv: list[str]) -> None:
    cfg, warnings = warnings_of(*argv)
    flag = argv[0].partition("=")[0]
    assert warnings == [f"{flag} has no effect: the proxy's own connection to kube-apiserver does not impersonate"]
    assert cfg == baseline()


@pytest.mark.parametrize("argv", [["--audit-dynamic-configuration"], ["--audit-dynamic-configuration=true"]])
def test_dynamic_audit_configuration_is_refused_as_jetstack_refused_it(argv: list[str]) -> None:
    with pytest.raises(ConfigError, match="--audit-webhook-config-file"):
        warnings_of(*argv)


def test_dynamic_audit_configuration_off_changes_nothing() -> None:
    cfg, warnings = warnings_of("--audit-dynamic-configuration=false")
    assert warnings == [
        "--audit-dynamic-configuration=false has no effect: it asks for nothing (the Go proxy's default)"
    ]
    assert cfg == baseline()


# ---------------------------------------------------------------------------------------------------- unknown flags


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--oidc-issuer=https://issuer.example"], "--oidc-issuer: did you mean --oidc-issuer-url?"),
        (["--oidc-client", "kube"], "--oidc-client: did you mean --oidc-client-id?"),
        (["--insecure"], "--insecure: did you mean --insecure-skip-tls-verify?"),
        (["--oidc-isuer-url=https://x"], "--oidc-isuer-url: did you mean --oidc-issuer-url?"),
        (["--readines-probe-port=1"], "--readines-probe-port: did you mean --readiness-probe-port?"),
        (["--trusted-proxy-cidr=10.0.0.0/8"], "--trusted-proxy-cidr: did you mean --trusted-proxy-cidrs?"),
    ],
    ids=argv_id,
)
def test_an_unknown_flag_is_answered_with_the_nearest_known_one(
    capsys: pytest.CaptureFixture[str], argv: list[str], hint: str
) -> None:
    err = usage_error(capsys, *argv)
    assert err.startswith(f"kube-oidc-proxy: error: unrecognized arguments: {' '.join(argv)} ")
    assert hint in err


def test_a_flag_like_no_other_gets_no_guess(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "--no-such-flag")
    assert err == "kube-oidc-proxy: error: unrecognized arguments: --no-such-flag (see --help)\n"


def test_several_unknown_flags_each_get_their_guess(capsys: pytest.CaptureFixture[str]) -> None:
    err = usage_error(capsys, "--secure=1", "--tls-cert", "a.crt")
    assert "--secure: did you mean --secure-port?" in err
    assert "--tls-cert: did you mean --tls-cert-file?" in err


# ---------------------------------------------------------------------------------------------------- the page

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"


def rafpe_reserved_groups_example() -> str:
    section = PAGE.read_text().partition("\n### RafPe")[2].partition("\n## ")[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)
    return str(block)


def test_the_pages_replacement_for_allow_reserved_groups_does_what_rafpe_did() -> None:
    """RafPe: a reserved username is always refused; a reserved group only if not listed (and not
    system:authenticated, which it always let through); groups are checked after their prefix."""
    [spec] = parse_authentication_config(yaml.safe_dump(yaml.safe_load(rafpe_reserved_groups_example()))).authenticators
    now = time.time()

    def login(sub: str, groups: list[str]) -> Authenticated | Rejected:
        claims = {"iss": spec.issuer_url, "aud": spec.audiences[0], "exp": now + 60, "sub": sub, "groups": groups}
        # the example is for a proxy run with --oidc-allow-system-identities
        return user_from_claims(claims, spec, now, allow_system_identities=True)

    assert isinstance(login("ann", ["sre", "system:monitoring"]), Authenticated)
    assert isinstance(login("ann", ["system:authenticated"]), Authenticated)
    assert isinstance(login("ann", ["sre", "system:masters"]), Rejected)
    assert isinstance(login("ann", ["system:serviceaccounts"]), Rejected)
    assert isinstance(login("system:admin", ["sre"]), Rejected)
    assert isinstance(login("system:serviceaccount:kube-system:default", []), Rejected)
