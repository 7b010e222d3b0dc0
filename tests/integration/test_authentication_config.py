"""--authentication-config through the running proxy: several issuers at once, CEL mappings reaching
kube-apiserver as Impersonate-* headers, and a file that changes under the running proxy."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_oidc_proxy.config import Config, OIDCConfig
from kube_oidc_proxy.errors import StartupError
from kube_oidc_proxy.server.wiring import load
from tests.conftest import ProxyHandle, replace, start_proxy
from tests.integration.test_probe import probe
from tests.support.certs import CertFiles
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.keysource import refresh_after_change
from tests.support.upstream import RecordingUpstream

RELOAD_WAIT_SECONDS = 10.0  # the proxy polls the file every 2 s


def ca_pem(issuer: TestIssuer) -> str:
    return Path(issuer.ca_file).read_text()


def corporate(issuer: TestIssuer) -> dict[str, Any]:
    """Claims as they come, with prefixes; uid from sub."""
    return {
        "issuer": {"url": issuer.url, "audiences": ["kube"], "certificateAuthority": ca_pem(issuer)},
        "claimMappings": {
            "username": {"claim": "email", "prefix": "corp:"},
            "groups": {"claim": "groups", "prefix": "corp:"},
            "uid": {"claim": "sub"},
        },
    }


def partner(issuer: TestIssuer, prefix: str = "partner:") -> dict[str, Any]:
    """CEL everywhere, two audiences, a validation rule and an extra."""
    return {
        "issuer": {
            "url": issuer.url,
            "audiences": ["kube", "partner-cli"],
            "audienceMatchPolicy": "MatchAny",
            "certificateAuthority": ca_pem(issuer),
        },
        "claimValidationRules": [{"expression": "claims.?tier.orValue('') == 'gold'", "message": "gold tier only"}],
        "claimMappings": {
            "username": {"expression": f"'{prefix}' + claims.sub"},
            "groups": {"expression": "claims.groups.map(g, 'partner:' + g)"},
            "extra": [{"key": "example.com/tenant", "valueExpression": "claims.?tenant.orValue('')"}],
        },
        "userValidationRules": [
            {"expression": "!user.username.endsWith(':mallory')", "message": "mallory is barred"},
        ],
    }


def document(*jwt: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {"apiVersion": "apiserver.config.k8s.io/v1", "kind": "AuthenticationConfiguration", "jwt": list(jwt)}
    )


def write(path: Path, text: str) -> None:
    """Replace the file in one step, as the kubelet updates a mounted ConfigMap."""
    staging = path.with_suffix(".tmp")
    staging.write_text(text)
    os.replace(staging, path)


@pytest.fixture
def partner_issuer(server_certs: CertFiles) -> Iterator[TestIssuer]:
    issuer = TestIssuer(server_certs, path="/partner")
    yield issuer
    issuer.close()


@pytest.fixture
def config_file(tmp_path: Path, issuer: TestIssuer, partner_issuer: TestIssuer) -> Path:
    path = tmp_path / "authentication-config.yaml"
    write(path, document(corporate(issuer), partner(partner_issuer)))
    return path


def file_config(config: Config, path: Path) -> Config:
    # JSON access lines: they carry the refusal's reason (the SIEM text lines do not)
    return replace(
        config, oidc=OIDCConfig(authentication_config=str(path)), proxy=replace(config.proxy, log_format="json")
    )


@pytest.fixture
async def multi(
    config: Config, config_file: Path, issuer: TestIssuer, upstream: RecordingUpstream
) -> AsyncIterator[ProxyHandle]:
    handle = await start_proxy(file_config(config, config_file), issuer, upstream)
    yield handle
    await handle.running.stop(grace=1)
    handle.app.access_log.close()


async def whoami(handle: ProxyHandle, token: str) -> tuple[int, dict[str, Any]]:
    """The status, and the Impersonate-* headers kube-apiserver received (empty when nothing went out)."""
    before = len(handle.upstream.requests)
    response = await get(handle.port, handle.ca_file, "/api/v1/namespaces", token=token)
    sent = handle.upstream.requests[before:]
    if not sent:
        return response.status, {}
    request = sent[-1]
    extras = {h.lower(): request.all(h) for h, _ in request.headers if h.lower().startswith("impersonate-extra-")}
    return response.status, {
        "user": request.one("impersonate-user"),
        "uid": request.one("impersonate-uid"),
        "groups": request.all("impersonate-group"),
        **extras,
    }


async def test_two_issuers_at_once_each_with_its_own_mappings(
    multi: ProxyHandle, issuer: TestIssuer, partner_issuer: TestIssuer
) -> None:
    status, seen = await whoami(multi, issuer.token(sub="u-1", jti="t-1"))
    assert status == 200
    assert seen == {
        "user": "corp:alice@example.com",
        "uid": "u-1",
        "groups": ["corp:dev", "corp:ops", "system:authenticated"],
        "impersonate-extra-authentication.kubernetes.io%2fcredential-id": ["JTI=t-1"],
    }
    status, seen = await whoami(multi, partner_issuer.token(sub="bob", aud="partner-cli", tier="gold", tenant="acme"))
    assert status == 200
    assert seen == {
        "user": "partner:bob",
        "uid": None,
        "groups": ["partner:dev", "partner:ops", "system:authenticated"],
        "impersonate-extra-example.com%2ftenant": ["acme"],
    }


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param({"tier": "silver"}, "gold tier only", id="claim-validation-rule"),
        pytest.param({"tier": "gold", "sub": "mallory"}, "mallory is barred", id="user-validation-rule"),
        pytest.param({"tier": "gold", "aud": "someone-else"}, "audience", id="audience"),
        pytest.param({"tier": "gold", "groups": "not-a-list"}, "group claim expression", id="cel-evaluation-error"),
    ],
)
async def test_the_partners_rules_refuse_and_nothing_is_forwarded(
    multi: ProxyHandle, partner_issuer: TestIssuer, claims: dict[str, Any], reason: str
) -> None:
    status, seen = await whoami(multi, partner_issuer.token(**claims))
    assert (status, seen) == (401, {})
    line = await multi.access.wait_for("AuFail")
    assert reason in line


async def test_a_token_of_an_issuer_not_in_the_file_is_refused(multi: ProxyHandle, server_certs: CertFiles) -> None:
    stranger = TestIssuer(server_certs, path="/stranger")
    try:
        assert await whoami(multi, stranger.token()) == (401, {})
    finally:
        stranger.close()


async def test_an_added_issuer_is_used_after_the_file_changes_and_the_others_keep_their_keys(
    multi: ProxyHandle, config_file: Path, issuer: TestIssuer, partner_issuer: TestIssuer, server_certs: CertFiles
) -> None:
    third = TestIssuer(server_certs, path="/third")
    try:
        assert (await whoami(multi, third.token()))[0] == 401
        fetches = (issuer.jwks_fetches, partner_issuer.jwks_fetches)
        third_entry = corporate(third) | {"claimMappings": {"username": {"claim": "sub", "prefix": "third:"}}}
        write(config_file, document(corporate(issuer), partner(partner_issuer), third_entry))
        status, seen = await until_accepted(multi, third.token(sub="carol"))
        assert (status, seen["user"]) == (200, "third:carol")
        assert (await whoami(multi, issuer.token()))[0] == 200
        assert (issuer.jwks_fetches, partner_issuer.jwks_fetches) == fetches  # no refetch for unchanged issuers
    finally:
        third.close()


async def test_a_changed_mapping_applies_to_a_token_already_seen(
    multi: ProxyHandle, config_file: Path, issuer: TestIssuer, partner_issuer: TestIssuer
) -> None:
    token = partner_issuer.token(sub="bob", tier="gold")
    assert (await whoami(multi, token))[1]["user"] == "partner:bob"  # now in the verified-token cache
    write(config_file, document(corporate(issuer), partner(partner_issuer, prefix="ext:")))
    for _ in range(int(RELOAD_WAIT_SECONDS / 0.2)):
        if (await whoami(multi, token))[1]["user"] == "ext:bob":
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the new username prefix never applied to the cached token")


async def test_an_invalid_file_keeps_the_previous_configuration_and_says_why(
    multi: ProxyHandle,
    config_file: Path,
    issuer: TestIssuer,
    partner_issuer: TestIssuer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kop.authn")
    broken = corporate(issuer) | {"claimMappings": {"username": {"claim": "email"}}}  # prefix is required
    write(config_file, document(broken, partner(partner_issuer)))
    for _ in range(int(RELOAD_WAIT_SECONDS / 0.2)):
        if "keeping the previous configuration" in caplog.text:
            break
        await asyncio.sleep(0.2)
    assert "jwt[0].claimMappings.username.prefix: Required value" in caplog.text
    assert (await whoami(multi, issuer.token()))[1]["user"] == "corp:alice@example.com"
    assert caplog.text.count("keeping the previous configuration") == 1  # said once, not on every poll

    config_file.unlink()  # a missing file is kept at bay the same way
    await asyncio.sleep(3)
    assert "cannot read --authentication-config" in caplog.text
    assert (await whoami(multi, issuer.token()))[0] == 200


async def until_accepted(handle: ProxyHandle, token: str) -> tuple[int, dict[str, Any]]:
    for _ in range(int(RELOAD_WAIT_SECONDS / 0.2)):
        status, seen = await whoami(handle, token)
        if status == 200:
            return status, seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"the token was still refused after {RELOAD_WAIT_SECONDS} s")


async def test_reloads_are_counted_in_the_metrics(
    config: Config, config_file: Path, issuer: TestIssuer, partner_issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    cfg = file_config(config, config_file)
    cfg = replace(cfg, proxy=replace(cfg.proxy, metrics_bind_address="127.0.0.1:0"))
    handle = await start_proxy(cfg, issuer, upstream)
    try:
        write(config_file, document(corporate(issuer)))
        await asyncio.sleep(3)
        write(config_file, "jwt: [")
        await asyncio.sleep(3)
        metrics = handle.app.metrics
        assert metrics is not None
        text = metrics.exposition().decode()
        assert 'kube_oidc_proxy_authentication_config_reloads_total{result="success"} 1.0' in text
        assert 'kube_oidc_proxy_authentication_config_reloads_total{result="failure"} 1.0' in text
    finally:
        await handle.running.stop(grace=1)


def test_an_invalid_file_at_start_names_every_problem_with_its_field_path(
    config: Config, tmp_path: Path, issuer: TestIssuer
) -> None:
    path = tmp_path / "bad.yaml"
    entry = corporate(issuer)
    entry["issuer"]["url"] = "http://insecure.example"
    entry["claimMappings"]["extra"] = [{"key": "kubernetes.io/x", "valueExpression": "claims.sub"}]
    path.write_text(document(entry))
    with pytest.raises(StartupError) as refused:
        load(file_config(config, path))
    message = str(refused.value)
    assert str(path) in message
    assert 'jwt[0].issuer.url: Invalid value: "http://insecure.example": URL scheme must be https' in message
    assert "jwt[0].claimMappings.extra[0].key" in message
    assert "reserved for Kubernetes use" in message


def test_a_claim_mapping_to_the_proxys_own_record_of_who_asked_stops_the_start(
    config: Config, tmp_path: Path, issuer: TestIssuer
) -> None:
    # a verified identity must not carry originaluser.* extras: they say who used kubectl --as
    path = tmp_path / "forged.yaml"
    entry = corporate(issuer)
    entry["claimMappings"]["extra"] = [{"key": "originaluser.jetstack.io/user", "valueExpression": "'root'"}]
    path.write_text(document(entry))
    with pytest.raises(StartupError) as refused:
        load(file_config(config, path))
    assert (
        'jwt[0].claimMappings.extra[0].key: Invalid value: "originaluser.jetstack.io/user": '
        "originaluser.* keys are reserved for the proxy's record of who asked"
    ) in str(refused.value)


def test_a_file_that_cannot_be_read_stops_the_start(config: Config, tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="cannot read --authentication-config"):
        load(file_config(config, tmp_path / "missing.yaml"))


async def test_ready_while_one_issuer_has_keys_and_the_missing_one_is_listed(
    config: Config, config_file: Path, issuer: TestIssuer, partner_issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    partner_issuer.down = True
    handle = await start_proxy(file_config(config, config_file), issuer, upstream, wait_for_keys=False)
    try:
        for _ in range(500):
            if handle.app.key_sources[0].ready:
                break
            await asyncio.sleep(0.01)
        status, body = await probe(handle.running.probe_port, "/ready")
        assert status == 200
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert list(checks) == [f"issuer {partner_issuer.url}"]
        assert "no signing keys yet" in checks[f"issuer {partner_issuer.url}"]
        assert (await whoami(handle, issuer.token()))[0] == 200  # the corporate users are not locked out
        assert (await whoami(handle, partner_issuer.token(tier="gold")))[0] == 503  # keys not there yet

        issuer.down = True
        handle.app.key_sources[0].keys = None  # as if the corporate keys had never loaded either
        assert (await probe(handle.running.probe_port, "/ready"))[0] == 503
    finally:
        await handle.running.stop(grace=1)


async def test_with_readiness_require_all_issuers_ready_only_once_every_issuer_has_keys(
    config: Config, config_file: Path, issuer: TestIssuer, partner_issuer: TestIssuer, upstream: RecordingUpstream
) -> None:
    partner_issuer.down = True
    cfg = file_config(config, config_file)
    cfg = replace(cfg, proxy=replace(cfg.proxy, readiness_require_all_issuers=True))
    handle = await start_proxy(cfg, issuer, upstream, wait_for_keys=False)
    corporate_keys, partner_keys = handle.app.key_sources
    try:
        assert await refresh_after_change(corporate_keys)
        status, body = await probe(handle.running.probe_port, "/ready")
        assert status == 503  # one issuer would do by default (the test above)
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert list(checks) == [f"issuer {partner_issuer.url}"]

        partner_issuer.down = False
        assert await refresh_after_change(partner_keys)
        assert (await probe(handle.running.probe_port, "/ready"))[0] == 200
    finally:
        await handle.running.stop(grace=1)


async def test_with_token_passthrough_a_token_of_no_configured_issuer_goes_to_a_token_review(
    config: Config, config_file: Path, issuer: TestIssuer, upstream: RecordingUpstream, server_certs: CertFiles
) -> None:
    cfg = file_config(config, config_file)
    handle = await start_proxy(replace(cfg, proxy=replace(cfg.proxy, token_passthrough=True)), issuer, upstream)
    stranger = TestIssuer(server_certs, path="/stranger")
    try:
        foreign = stranger.token()
        upstream.token_reviews[foreign] = {"authenticated": True, "user": {"username": "stranger", "groups": []}}
        response = await get(handle.port, handle.ca_file, "/api/v1/namespaces", token=foreign)
        assert response.status == 200
        assert upstream.token_review_requests[-1]["token"] == foreign
        assert upstream.requests[-1].all("authorization") == [f"Bearer {foreign}"]  # passed through as it is
        # a token of a configured issuer never goes to TokenReview, even when its own checks fail
        reviews = len(upstream.token_review_requests)
        assert (await whoami(handle, issuer.token(aud="someone-else"))) == (401, {})
        assert len(upstream.token_review_requests) == reviews
    finally:
        stranger.close()
        await handle.running.stop(grace=1)


def test_a_startup_error_is_one_line_even_for_multi_line_texts(config: Config, tmp_path: Path) -> None:
    path = tmp_path / "duplicate-keys.yaml"
    path.write_text(document(corporate_like()) + "kind: AuthenticationConfiguration\n")
    with pytest.raises(StartupError) as refused:
        load(file_config(config, path))
    assert "already set in map" in str(refused.value)
    assert "\n" not in str(refused.value)


def corporate_like() -> dict[str, Any]:
    return {
        "issuer": {"url": "https://issuer.example", "audiences": ["k"]},
        "claimMappings": {"username": {"claim": "sub", "prefix": ""}},
    }
