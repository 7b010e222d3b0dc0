"""A value that cannot be encoded: a lone surrogate, which JSON's ``\\ud800`` escape puts in a signed claim.

No UTF-8 can carry it, so every place that writes a claim (a header, an audit event, a log line, the CEL
engine) could fail on it. Each token here is properly signed by the issuer the proxy trusts, as an IdP that
copies user input into claims would sign it. What a user notices: an identity that holds one is refused
with a 401 Status, an AuFail line and an audit event; a claim that is not an identity is read as
kube-apiserver reads it (Go's JSON decoder gives U+FFFD); never a 500, never a traceback, and the proxy
keeps serving. The same for a number of 5000 digits, more than Python converts to an int (a ValueError,
and a 500, before): read as Go overflows it, so refused wherever a number is read, and kept where not.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from kube_oidc_proxy.config import AuditConfig, Config, OIDCConfig
from tests.conftest import ProxyHandle, start_proxy
from tests.integration.test_authentication_config import ca_pem, document, write
from tests.support.client import get
from tests.support.issuer import TestIssuer
from tests.support.upstream import RecordingUpstream

LONE = "\ud800"
POLICY = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n  - level: Metadata\n"


def signed(issuer: TestIssuer, **claims: Any) -> str:
    # json.dumps writes a lone surrogate as the escape \ud800: valid JSON, and what the IdP signs
    return issuer.mint_raw(json.dumps(issuer.claims(**claims)).encode())


def signed_with_a_huge_number(issuer: TestIssuer, **claims: Any) -> str:
    """A claim of 5000 digits: more than Python converts to an int, far beyond a double (an exception: a 500)."""
    payload = json.dumps(issuer.claims(**claims))[:-1] + ', "n": ' + "9" * 5000 + "}"
    return issuer.mint_raw(payload.encode())


def audited(config: Config, tmp_path: Path) -> Config:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    return replace(
        config,
        audit=AuditConfig(policy_file=str(policy), log_path=str(tmp_path / "audit.log")),
        proxy=replace(config.proxy, log_format="json", metrics_bind_address="127.0.0.1:0"),
    )


def audit_events(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]


async def stopped(handle: ProxyHandle) -> None:
    await handle.running.stop(grace=1)
    handle.app.access_log.close()  # every access line written


def forwarded_header(upstream: RecordingUpstream, name: str) -> list[str]:
    """The values kube-apiserver received, as text (the recorder keeps header bytes as latin-1)."""
    return [v.encode("latin-1").decode("utf-8") for v in upstream.requests[-1].all(name)]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == []


async def test_with_the_oidc_flags_an_identity_is_refused_and_other_claims_are_read_as_go_reads_them(
    config: Config, issuer: TestIssuer, upstream: RecordingUpstream, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    issuer.add_key("RS256", "unknown" + LONE, publish=False)
    issuer.add_key("RS256", "published" + LONE)  # in the JWKS as "published\ud800", before the proxy reads it
    required = replace(config, oidc=replace(config.oidc, required_claims=(("tenant", "acme"),)))
    handle = await start_proxy(audited(required, tmp_path), issuer, upstream)
    refused = {
        "username": signed(issuer, tenant="acme", sub="alice" + LONE),
        "group": signed(issuer, tenant="acme", groups=["dev" + LONE]),
        "required-claim": signed(issuer, tenant="acme" + LONE),
        "unknown-kid": issuer.mint(issuer.claims(tenant="acme"), kid="unknown" + LONE),
    }
    accepted = {
        "name": signed(issuer, tenant="acme", name=LONE),
        "nonce": signed(issuer, tenant="acme", nonce="n" + LONE),
        "custom-key": signed(issuer, tenant="acme", **{"claim" + LONE: "v"}),
        "typ-header": issuer.mint(issuer.claims(tenant="acme"), typ=LONE),
        "published-kid": issuer.mint(issuer.claims(tenant="acme"), kid="published" + LONE),
        "huge-number": signed_with_a_huge_number(issuer, tenant="acme"),  # a claim nothing reads, as in Go
    }
    try:
        for name, token in refused.items():
            response = await get(handle.port, handle.ca_file, f"/api/v1/namespaces/{name}", token=token)
            assert (response.status, response.json()["kind"]) == (401, "Status"), name
        for name, token in accepted.items():
            response = await get(handle.port, handle.ca_file, f"/api/v1/namespaces/{name}", token=token)
            assert response.status == 200, name
            assert forwarded_header(handle.upstream, "impersonate-user") == ["alice"]
    finally:
        await stopped(handle)

    assert [r.target.rsplit("/", 1)[1] for r in handle.upstream.requests] == list(accepted)
    lines = [json.loads(line) for line in handle.access.lines]
    assert {line["uri"].rsplit("/", 1)[1] for line in lines if line["result"] == "AuFail"} == set(refused)
    audited_401 = [e for e in audit_events(tmp_path) if e.get("responseStatus", {}).get("code") == 401]
    assert {e["requestURI"].rsplit("/", 1)[1] for e in audited_401} == set(refused)
    no_tracebacks(caplog)


@pytest.fixture
def cel_config(config: Config, issuer: TestIssuer, tmp_path: Path) -> Config:
    jwt = {
        "issuer": {"url": issuer.url, "audiences": ["kube"], "certificateAuthority": ca_pem(issuer)},
        "claimValidationRules": [{"expression": "claims.?name.orValue('') != 'mallory'", "message": "no mallory"}],
        "claimMappings": {
            "username": {"expression": "'oidc:' + claims.sub"},
            "groups": {"claim": "groups", "prefix": ""},
            "uid": {"claim": "uid"},
            "extra": [{"key": "example.com/tenant", "valueExpression": "claims.?tenant.orValue('')"}],
        },
        "userValidationRules": [{"expression": "!user.username.endsWith('mallory')", "message": "no mallory"}],
    }
    path = tmp_path / "authentication-config.yaml"
    write(path, document(jwt))
    return audited(replace(config, oidc=OIDCConfig(authentication_config=str(path))), tmp_path)


async def test_with_cel_mappings_expressions_see_u_fffd_as_kube_apiserver_s_do(
    cel_config: Config,
    issuer: TestIssuer,
    upstream: RecordingUpstream,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = await start_proxy(cel_config, issuer, upstream)
    try:
        cases: dict[str, tuple[str, int]] = {
            # kube-apiserver's CEL sees "alice\ufffd": so does the proxy's, and that is who is forwarded
            "username": (signed(issuer, uid="u1", sub="alice" + LONE), 200),
            "extra": (signed(issuer, uid="u1", tenant="t" + LONE), 200),
            "rule-claim": (signed(issuer, uid="u1", name="n" + LONE), 200),
            "unused-claim": (signed(issuer, uid="u1", unused=["x", LONE]), 200),
            # taken from the claim itself, not by an expression: an identity that cannot be forwarded as it is
            "uid": (signed(issuer, uid="u" + LONE), 401),
            "group": (signed(issuer, uid="u1", groups=[LONE]), 401),
            # Go's decoder cannot make a double of it for CEL, and refuses the token
            "huge-number": (signed_with_a_huge_number(issuer, uid="u1"), 401),
        }
        seen: dict[str, tuple[int, list[str], list[str]]] = {}
        for name, (token, _) in cases.items():
            before = len(upstream.requests)
            response = await get(handle.port, handle.ca_file, f"/api/v1/namespaces/{name}", token=token)
            sent = len(upstream.requests) > before
            seen[name] = (
                response.status,
                forwarded_header(upstream, "impersonate-user") if sent else [],
                forwarded_header(upstream, "impersonate-extra-example.com%2ftenant") if sent else [],
            )
        assert (await get(handle.port, handle.ca_file, "/api", token=issuer.token(uid="u1"))).status == 200
    finally:
        await stopped(handle)
    assert seen == {
        "username": (200, ["oidc:alice\ufffd"], []),
        "extra": (200, ["oidc:alice"], ["t\ufffd"]),
        "rule-claim": (200, ["oidc:alice"], []),
        "unused-claim": (200, ["oidc:alice"], []),
        "uid": (401, [], []),
        "group": (401, [], []),
        "huge-number": (401, [], []),
    }
    failures = [json.loads(line) for line in handle.access.lines if '"AuFail"' in line]
    assert [(f["uri"].rsplit("/", 1)[1], f["reason"].split(":")[0]) for f in failures] == [
        ("uid", 'mapped uid "u\\ud800" is not valid Unicode text'),
        ("group", 'mapped group "\\ud800" is not valid Unicode text'),
        ("huge-number", "claims cannot be read as CEL values"),
    ]
    audited_401 = [e for e in audit_events(tmp_path) if e.get("responseStatus", {}).get("code") == 401]
    assert len(audited_401) == 3
    no_tracebacks(caplog)
