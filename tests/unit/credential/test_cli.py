"""The plugin's command line: usage errors are one line on stderr and exit 2, before anything is fetched."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import trustme

from kube_oidc_proxy import cli as proxy_cli
from kube_oidc_proxy.credential import cli
from kube_oidc_proxy.credential.errors import UsageError
from kube_oidc_proxy.credential.obtain import Settings

REQUIRED = ["--issuer-url=https://issuer.example", "--client-id=kube"]


@pytest.fixture(autouse=True)
def no_exec_info(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_EXEC_INFO", raising=False)


def settings(*args: str, environ: dict[str, str] | None = None) -> Settings:
    ns = cli.build_parser().parse_args([*REQUIRED, *args])
    return cli.settings_from_args(ns, environ or {"HOME": "/home/a"}, interactive=False)


def exit_with(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = proxy_cli.main(["credential", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required: --issuer-url, --client-id (see --help)"),
        (["--client-id=kube"], "the following arguments are required: --issuer-url (see --help)"),
        ([*REQUIRED, "--unknown"], "unrecognized arguments: --unknown"),
        ([*REQUIRED, "--issuer-ca-file=a", "--issuer-ca-data=b"], "not allowed with argument"),
        (["--issuer-url=http://issuer.example", "--client-id=kube"], "is not an https URL"),
        (["--issuer-url=https://issuer.example", "--client-id="], "--client-id is empty"),
        ([*REQUIRED, "--issuer-ca-data=%%%"], "--issuer-ca-data is not base64"),
        ([*REQUIRED, f"--issuer-ca-data={base64.b64encode(b'junk').decode()}"], "holds no valid PEM certificate"),
        ([*REQUIRED, "--issuer-ca-file=/nonexistent/ca.pem"], "--issuer-ca-file /nonexistent/ca.pem: No such file"),
        ([*REQUIRED, "--client-secret-file=/nonexistent/secret"], "--client-secret-file /nonexistent/secret: No such"),
        ([*REQUIRED, "--listen-address=0.0.0.0:8000"], "must come back to loopback"),
        ([*REQUIRED, "--scopes=openid email"], "scopes are separated by commas"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    code, err = exit_with(capsys, argv)
    assert code == 2
    assert err.startswith("kube-oidc-proxy credential: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_an_exec_info_it_cannot_answer_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBERNETES_EXEC_INFO", '{"apiVersion": "client.authentication.k8s.io/v1alpha1"}')
    code, err = exit_with(capsys, REQUIRED)
    assert code == 2
    assert "KUBERNETES_EXEC_INFO asks for apiVersion 'client.authentication.k8s.io/v1alpha1'" in err


def test_help_is_the_plugins(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        proxy_cli.main(["credential", "--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: kube-oidc-proxy credential")
    assert "--no-browser" in out


def test_an_empty_client_secret_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    with pytest.raises(UsageError, match="is empty"):
        settings(f"--client-secret-file={secret}")
    secret.write_text("s3cret\n")
    assert settings(f"--client-secret-file={secret}").client.client_secret == "s3cret"


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        ("", ()),  # the provider's defaults, from discovery
        ("openid", ("openid",)),
        ("email,openid,email", ("openid", "email")),
        (" groups , offline_access ", ("openid", "groups", "offline_access")),
    ],
)
def test_scopes_always_include_openid(scopes: str, expected: tuple[str, ...]) -> None:
    assert settings(f"--scopes={scopes}").scopes == expected


def test_defaults(tmp_path: Path) -> None:
    s = settings(environ={"HOME": "/home/a", "XDG_CACHE_HOME": str(tmp_path)})
    assert s.cache_dir == tmp_path / "kube-oidc-proxy" / "credentials"
    assert s.listen == ("127.0.0.1", 0)
    assert s.open_browser
    assert s.client.client_secret is None
    assert not settings("--no-browser").open_browser


def test_the_issuer_ca_from_a_file_or_inline(tmp_path: Path) -> None:
    pem = trustme.CA().cert_pem.bytes()
    (tmp_path / "ca.pem").write_bytes(pem)
    from_file = settings(f"--issuer-ca-file={tmp_path / 'ca.pem'}").ssl_context
    inline = settings(f"--issuer-ca-data={base64.b64encode(pem).decode()}").ssl_context
    assert len(from_file.get_ca_certs()) == len(inline.get_ca_certs()) == 1
