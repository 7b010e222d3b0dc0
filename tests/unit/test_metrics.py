"""observe.metrics: refusal reasons become a small fixed set of label values (never a username or a claim)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kube_oidc_proxy.observe.metrics import KNOWN_REASONS, Metrics, reason_category


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("no bearer token", "no_token"),
        ("bearer token is not a JWT: not three base64url parts", "malformed"),
        ("Authorization is not a Bearer token", "malformed"),
        ("more than one Authorization header", "malformed"),
        ("bearer token subprotocol is not base64url of UTF-8", "malformed"),
        ("bearer token is not ASCII", "malformed"),
        ("token has expired", "expired"),
        ("token is not valid yet (nbf is in the future)", "not_yet_valid"),
        ("signing algorithm 'HS256' is not allowed", "bad_algorithm"),
        ("token signature is invalid", "bad_signature"),
        ("no signing key matches kid 'k9' and alg RS256", "unknown_key"),
        ("signing keys of https://issuer.example are not loaded yet (connection refused)", "keys_unavailable"),
        ("token issuer is not a trusted issuer", "wrong_issuer"),
        ("token issuer does not match the configured issuer", "wrong_issuer"),
        ("token audience does not include the client id", "wrong_audience"),
        ("username 'system:admin' is in the reserved system: namespace", "system_identity"),
        ("required claim 'hd' is missing or does not match", "required_claim"),
        ("username claim 'email' is missing, empty or not a string", "missing_username"),
        ("email_verified is not true for the email username claim", "unverified_email"),
        (
            "error evaluating claim validation expression: validation expression 'claims.iss != \"x\"' failed: "
            "wrong issuer or audience",
            "claim_rule",
        ),
        ("error evaluating user info validation rule: validation expression 'x' failed: no system: names", "user_rule"),
        (
            "error evaluating group claim expression: expression must return a string or a list of strings",
            "claim_mapping",
        ),
        ("empty username via CEL expression is not allowed", "claim_mapping"),
        ("uid claim 'oid' is missing or not a string", "claim_mapping"),
        ("token has no numeric exp claim", "bad_claims"),
        ("an identity claim contains control characters", "bad_claims"),
        ("groups claim 'groups' is not a string or a list of strings", "bad_claims"),
        # --token-passthrough: the TokenReview's verdict decides, not the OIDC one before it
        ("token issuer is not a trusted issuer; TokenReview: not authenticated", "token_review_rejected"),
        ("bearer token is not a JWT: x; TokenReview failed: HTTP 500", "token_review_error"),
    ],
)
def test_refusal_reasons_map_to_fixed_categories(reason: str, category: str) -> None:
    assert reason_category(reason) == category
    assert category in KNOWN_REASONS


def test_a_claim_value_in_a_reason_never_becomes_a_label() -> None:
    assert reason_category("token issuer 'https://evil.example/\"}' does not match") == "wrong_issuer"
    assert reason_category("anything else at all: alice@example.com") == "bad_claims"


def test_request_counts_and_latency_are_kept_per_verb_and_code() -> None:
    metrics = Metrics()
    metrics.request_done("get", 200, 0.0, long_running=False)
    metrics.request_done("get", 200, 0.0, long_running=False)
    metrics.request_done("watch", 200, 0.0, long_running=True)
    sample = metrics.registry.get_sample_value
    assert sample("kube_oidc_proxy_http_requests_total", {"verb": "get", "code": "200"}) == 2
    assert sample("kube_oidc_proxy_http_requests_total", {"verb": "watch", "code": "200"}) == 1
    assert sample("kube_oidc_proxy_http_request_duration_seconds_count", {"verb": "get"}) == 2
    assert not sample("kube_oidc_proxy_http_request_duration_seconds_count", {"verb": "watch"})  # long-running


ROOT = Path(__file__).resolve().parents[2]


def _exposed_names() -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        if family.name.startswith("kube_oidc_proxy_")
        for suffix in suffixes[family.type]
    }


def test_the_grafana_dashboard_only_queries_metrics_that_exist() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queried = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"kube_oidc_proxy_\w+", target["expr"])
    }
    assert queried and queried <= _exposed_names()


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    documented = set(re.findall(r"^\| `(kube_oidc_proxy_\w+)`", (ROOT / "docs" / "observability.md").read_text(), re.M))
    families = {name.removesuffix("_total").removesuffix("_bucket") for name in _exposed_names()}
    families = {name for name in families if not name.endswith(("_sum", "_count"))}
    assert {name.removesuffix("_total") for name in documented} == families
