"""observe.metrics: refusals are counted by a fixed set of categories chosen where they happen (never a claim)."""

from __future__ import annotations

import json
import math
import platform
import re
from pathlib import Path
from typing import Any, Final

import pytest

from kube_oidc_proxy import __version__, buildinfo
from kube_oidc_proxy.authn.cel import CLAIMS, Compiler
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.model import Failure, Rejected, ValidationRule
from kube_oidc_proxy.observe.metrics import Metrics
from tests.unit.authn.fakes import NOW, spec
from tests.unit.authn.test_claims import claims_with

REFUSALS: Final = [
    pytest.param({"exp": NOW - 1}, {}, Failure.EXPIRED, id="expired"),
    pytest.param({"nbf": NOW + 3600}, {}, Failure.NOT_YET_VALID, id="nbf"),
    pytest.param({"iss": "https://evil.example"}, {}, Failure.WRONG_ISSUER, id="issuer"),
    pytest.param({"aud": "other"}, {}, Failure.WRONG_AUDIENCE, id="audience"),
    pytest.param({"exp": "soon"}, {}, Failure.BAD_CLAIMS, id="exp-not-a-number"),
    pytest.param({"sub": "system:admin"}, {}, Failure.SYSTEM_IDENTITY, id="system-username"),
    pytest.param({"groups": ["system:masters"]}, {}, Failure.SYSTEM_IDENTITY, id="system-group"),
    pytest.param({"groups": [" system:masters"]}, {}, Failure.BAD_CLAIMS, id="group-go-would-trim"),
    pytest.param({"groups": [1]}, {}, Failure.BAD_CLAIMS, id="groups-not-strings"),
    pytest.param({"sub": None}, {}, Failure.MISSING_USERNAME, id="no-username"),
    pytest.param({}, {"required_claims": (("hd", "acme"),)}, Failure.REQUIRED_CLAIM, id="required-claim"),
]


@pytest.mark.parametrize(("overrides", "spec_overrides", "failure"), REFUSALS)
def test_each_refusal_names_its_category_where_it_is_decided(
    overrides: dict[str, Any], spec_overrides: dict[str, Any], failure: Failure
) -> None:
    result = user_from_claims(claims_with(**overrides), spec(**spec_overrides), NOW)
    assert isinstance(result, Rejected)
    assert result.failure is failure
    metrics = Metrics()
    metrics.authenticated(result.failure)
    sample = metrics.registry.get_sample_value
    assert sample("kube_oidc_proxy_authentications_total", {"result": "failure", "reason": failure.value}) == 1


def test_words_in_a_reason_never_choose_the_category() -> None:
    # an admin's rule message that reads like another failure is still a claim rule
    program = Compiler().compile("claims.sub != 'alice'", CLAIMS, boolean=True)
    rule = ValidationRule(program, "token has expired; wrong issuer")
    result = user_from_claims(claims_with(), spec(claim_rules=(rule,)), NOW)
    assert isinstance(result, Rejected) and "token has expired" in result.reason
    assert result.failure is Failure.CLAIM_RULE


def test_request_counts_and_latency_are_kept_per_verb_and_code() -> None:
    metrics = Metrics()
    metrics.request_done("get", 200, "HTTP/1.1", 0.0, long_running=False)
    metrics.request_done("get", 200, "HTTP/1.1", 0.0, long_running=False)
    metrics.request_done("watch", 200, "HTTP/2", 0.0, long_running=True)
    sample = metrics.registry.get_sample_value
    assert sample("kube_oidc_proxy_http_requests_total", {"verb": "get", "code": "200", "protocol": "HTTP/1.1"}) == 2
    assert sample("kube_oidc_proxy_http_requests_total", {"verb": "watch", "code": "200", "protocol": "HTTP/2"}) == 1
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


def test_an_issuer_without_keys_is_infinitely_old_and_not_loaded_until_a_fetch_succeeds() -> None:
    metrics = Metrics()
    fetched = metrics.jwks_fetch_counter("https://idp.example")
    sample = metrics.registry.get_sample_value
    labels = {"issuer": "https://idp.example"}

    def state() -> tuple[float | None, float | None]:
        return sample("kube_oidc_proxy_jwks_age_seconds", labels), sample("kube_oidc_proxy_jwks_keys_loaded", labels)

    assert state() == (math.inf, 0)  # not "0 s old": an alert on the age fires for a wrong issuer URL
    fetched(False)
    assert state() == (math.inf, 0)
    fetched(True)
    assert state() == (0, 1)
    fetched(False)  # a later failure keeps the keys in use, and lets them age
    assert state() == (0, 1)


def test_build_info_names_the_version_the_commit_and_python(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(buildinfo.COMMIT_ENV, "4ee8034")
    buildinfo.commit.cache_clear()
    try:
        labels = {"version": __version__, "commit": "4ee8034", "python": platform.python_version()}
        assert Metrics().registry.get_sample_value("kube_oidc_proxy_build_info", labels) == 1
    finally:
        buildinfo.commit.cache_clear()


def test_no_counter_or_histogram_has_a_created_series() -> None:
    metrics = Metrics()
    metrics.request_done("get", 200, "HTTP/1.1", 0.0, long_running=False)
    assert b"_created" not in metrics.exposition()
