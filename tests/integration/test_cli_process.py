"""The installed command as a user runs it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.certs import CertFiles, issue
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.process import start_process
from tests.support.upstream import RecordingUpstream

COMMAND = Path(sys.executable).parent / "kube-oidc-proxy"
VALID_OIDC = ["--oidc-issuer-url=https://issuer.example", "--oidc-client-id=kube"]


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def isolated_env(tmp_path: Path) -> dict[str, str]:
    """No in-cluster env and no kubeconfig, whatever machine the tests run on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBERNETES_", "KUBECONFIG"))}
    home = tmp_path / "home"
    home.mkdir()
    env["HOME"] = str(home)
    return env


def kop(env: dict[str, str], *args: str, module: bool = False) -> Result:
    argv = [sys.executable, "-m", "kube_oidc_proxy", *args] if module else [str(COMMAND), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def certs(tmp_path: Path) -> CertFiles:
    directory = tmp_path / "certs"
    directory.mkdir()
    return issue(trustme.CA(), directory, "serving")


def serving_flags(certs: CertFiles) -> list[str]:
    return [f"--tls-cert-file={certs.cert}", f"--tls-private-key-file={certs.key}"]


def assert_one_line_error(result: Result, code: int) -> str:
    assert result.code == code, result
    assert "Traceback" not in result.err
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    assert line.startswith("kube-oidc-proxy: error: "), line
    return line


# ---------------------------------------------------------------------------------------------------- usage: exit 2


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--no-such-flag"], id="unknown-flag"),
        pytest.param(["--oidc-issuer=https://issuer.example"], id="prefix-of-a-flag"),
        pytest.param(["--disable-impersonation"], id="go-feature-not-implemented"),
        pytest.param(["--secure-port=https"], id="bad-number"),
        pytest.param(["--flush-interval=5"], id="duration-without-unit"),
        pytest.param(["--extra-user-headers=k1"], id="extra-header-without-value"),
        pytest.param(["--oidc-required-claim=hd"], id="required-claim-without-value"),
        pytest.param(["--insecure-skip-tls-verify=maybe"], id="bad-boolean"),
    ],
)
def test_a_usage_error_exits_2_with_one_line_on_stderr(isolated_env: dict[str, str], args: list[str]) -> None:
    result = kop(isolated_env, *VALID_OIDC, *args)
    assert_one_line_error(result, 2)
    assert result.out == ""


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        pytest.param([], ["--oidc-issuer-url", "--oidc-client-id", "--tls-cert-file"], id="nothing-given"),
        pytest.param(
            [
                "--oidc-issuer-url=http://issuer.example",
                "--oidc-client-id=kube",
                "--tls-cert-file=a",
                "--tls-private-key-file=b",
            ],
            ["https"],
            id="http-issuer",
        ),
        pytest.param(
            [*VALID_OIDC, "--tls-cert-file=a", "--tls-private-key-file=b", "--secure-port=8080"],
            ["--readiness-probe-port", "8080"],
            id="port-clash",
        ),
        pytest.param(
            [*VALID_OIDC, "--tls-cert-file=a", "--tls-private-key-file=b", "--tls-sni-cert-key=only-a-cert"],
            ["--tls-sni-cert-key"],
            id="bad-sni-cert-key",
        ),
        pytest.param(
            [
                *VALID_OIDC,
                "--tls-cert-file=a",
                "--tls-private-key-file=b",
                "--extra-user-headers=OriginalUser.jetstack.io-user=root",
            ],
            ["--extra-user-headers", "'originaluser.jetstack.io-user' is reserved"],
            id="forged-originaluser-extra",
        ),
    ],
)
def test_an_invalid_config_exits_2_with_one_line_naming_every_problem(
    isolated_env: dict[str, str], args: list[str], needles: list[str]
) -> None:
    line = assert_one_line_error(kop(isolated_env, *args), 2)
    for needle in needles:
        assert needle in line


# ---------------------------------------------------------------------------------------------------- runtime: exit 1


def test_an_unreadable_tls_certificate_exits_1_naming_the_file(isolated_env: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "tls.crt"
    result = kop(
        isolated_env, *VALID_OIDC, f"--tls-cert-file={missing}", f"--tls-private-key-file={tmp_path / 'tls.key'}"
    )
    line = assert_one_line_error(result, 1)
    assert str(missing) in line


def test_a_certificate_file_that_is_not_a_certificate_exits_1_naming_it(
    isolated_env: dict[str, str], certs: CertFiles, tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.crt"
    bogus.write_text("hello, I am not a certificate\n")
    result = kop(isolated_env, *VALID_OIDC, f"--tls-cert-file={bogus}", f"--tls-private-key-file={certs.key}")
    line = assert_one_line_error(result, 1)
    assert str(bogus) in line


def test_a_key_that_does_not_match_the_certificate_exits_1(isolated_env: dict[str, str], tmp_path: Path) -> None:
    ca = trustme.CA()
    one, two = issue(ca, tmp_path, "one"), issue(ca, tmp_path, "two")
    result = kop(isolated_env, *VALID_OIDC, f"--tls-cert-file={one.cert}", f"--tls-private-key-file={two.key}")
    assert_one_line_error(result, 1)


def test_a_kubeconfig_that_does_not_exist_exits_1_naming_it(
    isolated_env: dict[str, str], certs: CertFiles, tmp_path: Path
) -> None:
    missing = tmp_path / "missing-kubeconfig"
    result = kop(isolated_env, *VALID_OIDC, *serving_flags(certs), f"--kubeconfig={missing}")
    line = assert_one_line_error(result, 1)
    assert str(missing) in line


def test_outside_a_cluster_without_connection_flags_exits_1_saying_what_to_do(
    isolated_env: dict[str, str], certs: CertFiles
) -> None:
    line = assert_one_line_error(kop(isolated_env, *VALID_OIDC, *serving_flags(certs)), 1)
    assert "KUBERNETES_SERVICE_HOST" in line
    assert "--kubeconfig" in line


def test_an_unreadable_oidc_ca_file_exits_1_naming_it(
    isolated_env: dict[str, str], certs: CertFiles, tmp_path: Path
) -> None:
    missing = tmp_path / "idp-ca.crt"
    result = kop(
        isolated_env,
        *VALID_OIDC,
        *serving_flags(certs),
        "--server=https://127.0.0.1:1",
        "--token=t",
        f"--oidc-ca-file={missing}",
    )
    line = assert_one_line_error(result, 1)
    assert str(missing) in line


def test_warnings_for_compatibility_flags_come_before_a_runtime_error(
    isolated_env: dict[str, str], certs: CertFiles, tmp_path: Path
) -> None:
    result = kop(
        isolated_env,
        *VALID_OIDC,
        *serving_flags(certs),
        "--logtostderr",
        "--cert-dir=/var/run/kubernetes",
        f"--kubeconfig={tmp_path / 'missing'}",
    )
    assert result.code == 1
    assert "Traceback" not in result.err
    lines = result.err_lines
    assert len(lines) == 3, result.err
    assert lines[0].startswith("kube-oidc-proxy: warning: --logtostderr")
    assert lines[1].startswith("kube-oidc-proxy: warning: --cert-dir")
    assert lines[2].startswith("kube-oidc-proxy: error: ")


# ---------------------------------------------------------------------------------------------------- success: exit 0


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_version_exits_0_with_one_line_on_stdout(isolated_env: dict[str, str], module: bool) -> None:
    result = kop(isolated_env, "--version", module=module)
    assert result.code == 0, result
    assert result.err == ""
    assert len(result.out.splitlines()) == 1
    assert result.out.startswith("kube-oidc-proxy ")
    for lib in ("httptools", "uvloop", "joserfc", "cryptography"):
        assert lib in result.out


def test_help_exits_0_and_lists_the_go_proxys_flags(isolated_env: dict[str, str]) -> None:
    result = kop(isolated_env, "--help")
    assert result.code == 0, result
    for flag in ("--oidc-issuer-url", "--oidc-client-id", "--readiness-probe-port", "--tls-cert-file", "--kubeconfig"):
        assert flag in result.out
    assert "--cert-dir" not in result.out  # compatibility-only flags stay out of the help


# ---------------------------------------------------------------------------------------------------- the Go lines

# What RafPe's chart renders (chart/kube-oidc-proxy/templates/deployment.yaml, v1.4.0), with its own flags.
RAFPE_ARGS = [
    "--readiness-require-all-issuers",
    "--subject-access-review-timeout=5s",
    "--trusted-proxies=127.0.0.0/8",
    "--extra-user-header-client-ip",
    "--allow-reserved-groups=",
]


async def test_a_rafpe_command_line_starts_and_says_what_each_of_its_flags_became(
    tmp_path: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> None:
    proc = start_process(str(tmp_path), issuer, upstream, server_certs, *RAFPE_ARGS)
    try:
        proc.wait_ready()
        forwarded = [("x-forwarded-for", "203.0.113.7")]  # from 127.0.0.1, a --trusted-proxies peer
        response = await get(proc.port, proc.ca_file, "/api/v1/pods", headers=forwarded, token=issuer.token())
        assert response.status == 200
        assert upstream.requests[-1].one("impersonate-extra-remote-client-ip") == "203.0.113.7"
    finally:
        proc.kill()
    warnings = [line for line in proc.stderr().splitlines() if line.startswith("kube-oidc-proxy: warning: ")]
    assert warnings == [
        "kube-oidc-proxy: warning: --trusted-proxies is taken as --trusted-proxy-cidrs, its name here "
        "(see docs/migrating.md); rename it",
        "kube-oidc-proxy: warning: --allow-reserved-groups= has no effect: it asks for nothing "
        "(the Go proxy's default)",
    ]


@pytest.mark.parametrize(
    ("args", "pointer"),
    [
        pytest.param(
            ["--allow-reserved-groups=system:monitoring"],
            "--oidc-allow-system-identities",
            id="allow-reserved-groups",
        ),
        pytest.param(
            ["--oidc-tls-client-cert-file=/etc/oidc/client-tls/tls.crt"],
            "cannot present a client certificate",
            id="oidc-client-certificate",
        ),
    ],
)
def test_a_rafpe_flag_for_what_this_proxy_does_not_do_exits_2_pointing_to_the_equivalent(
    isolated_env: dict[str, str], certs: CertFiles, args: list[str], pointer: str
) -> None:
    result = kop(isolated_env, *VALID_OIDC, *serving_flags(certs), *RAFPE_ARGS, *args)
    line = assert_one_line_error(result, 2)
    assert f"{args[0]} is not supported: " in line
    assert pointer in line
    assert "docs/migrating.md#rafpe" in line
    assert "unrecognized" not in result.err
