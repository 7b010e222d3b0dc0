"""Drill: the OIDC issuer (the real Keycloak) goes down, turns slow or answers garbage, and rotates its
signing key, while steady client traffic flows through the proxy.

The proxy under drill reaches Keycloak through a fault-injecting relay (tests/support/faultproxy.py) and is
configured with the relay's issuer URL; tokens are fetched through the relay too, so their ``iss`` is the
same. What users must notice: nothing, for tokens signed with keys the proxy knows; a token with a key it
has not seen is refused with 401 quickly, and the log says why; readiness stays 200 while the last good
keys are held (docs/architecture.md, "Readiness"); key fetches stay at the documented rate (one refetch
per 10 s, docs/security.md); a key the IdP publishes is used without a restart.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from joserfc import jwt

from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import CLIENT_ID, id_token
from tests.e2e.cluster.proxy import Proxy, probe_status
from tests.e2e.drills.keycloak import KeycloakAdmin
from tests.e2e.drills.load import SteadyLoad
from tests.support.faultproxy import FaultProxy, Mode
from tests.support.issuer import Key, new_key

REFETCH_INTERVAL_SECONDS = 10.0  # docs/security.md: refetches for unknown kids, one per 10 s
UNKNOWN_KID_WAIT_SECONDS = 5.0  # a request waits this long for a refetch (authn/jwks.py)
HOLD_SECONDS = 30.0  # the slow IdP answers after 30 s
TOKEN_CACHE_SECONDS = 60.0  # a verified token is remembered this long at most (authn/cache.py)


@dataclass
class Drill:
    cluster: Cluster
    fault: FaultProxy
    proxy: Proxy
    issuer: str
    token: str
    metrics_port: int
    stranger: Key  # signs tokens with the relay's iss and a key the IdP never published

    def get(self, token: str) -> tuple[int, float]:
        """One request with this token: its status and how long the answer took."""
        context = ssl.create_default_context(cafile=str(self.cluster.ca_file))
        request = urllib.request.Request(
            f"{self.proxy.url}/api/v1/namespaces/e2e/pods", headers={"Authorization": f"Bearer {token}"}
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, context=context, timeout=60) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = int(error.code)
        return status, time.monotonic() - started

    def unknown_kid_token(self) -> str:
        now = int(time.time())
        claims: dict[str, object] = {"iss": self.issuer, "aud": CLIENT_ID, "sub": "stranger"}
        claims |= {"email": "alice@example.com", "email_verified": True, "iat": now, "exp": now + 600}
        header = {"alg": "RS256", "kid": "never-published", "typ": "JWT"}
        return jwt.encode(header, claims, self.stranger, algorithms=["RS256"])

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def log(self) -> str:
        assert self.proxy.process is not None
        return self.proxy.process.log_path.read_text(errors="replace")


def kid_of(token: str) -> str:
    header = token.split(".", 1)[0]
    return str(json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"])


@pytest.fixture(scope="module")
def drill(cluster: Cluster) -> Iterator[Drill]:
    assert cluster.ca is not None
    relay_tls = cluster.ca.serving("idp-fault-relay")
    fault = FaultProxy(cluster.keycloak_port, relay_tls.cert, relay_tls.key, cluster.ca_file, hold_seconds=HOLD_SECONDS)
    issuer = f"https://127.0.0.1:{fault.port}/realms/kube"
    token = id_token(issuer, cluster.ca_file, "alice", "alice-password")
    stranger = new_key("RS256", "never-published")
    proxy = Proxy(cluster)
    metrics_port = proxy.ports.take()
    try:
        # The later --oidc-issuer-url wins: the drill's proxy trusts the relay's issuer URL.
        proxy.start(f"--oidc-issuer-url={issuer}", f"--metrics-bind-address=127.0.0.1:{metrics_port}")
        yield Drill(cluster, fault, proxy, issuer, token, metrics_port, stranger)
    finally:
        proxy.stop()
        fault.close()


FAULTS: dict[str, tuple[Mode, float]] = {
    "down": ("refuse", 15.0),
    "slow": ("hold", HOLD_SECONDS + 5.0),
    "garbage-bytes": ("garbage_bytes", 15.0),
    "garbage-http": ("garbage_http", 15.0),
}


@pytest.mark.parametrize("fault_name", list(FAULTS))
def test_an_idp_fault_changes_nothing_for_known_keys_and_refuses_unknown_keys_quickly(
    drill: Drill, fault_name: str, figure: Callable[[str], None]
) -> None:
    mode, duration = FAULTS[fault_name]
    assert kid_of(drill.token) != "never-published"
    refused: list[float] = []
    ready: list[int] = []
    with SteadyLoad(drill.proxy.port, drill.cluster.ca_file, drill.token) as load:
        load.wait_for_successes(5)
        failed_fetches_before = drill.metric(
            'kube_oidc_proxy_jwks_fetches_total{issuer="' + drill.issuer + '",result="failure"}'
        )
        ok_before = load.ok
        drill.fault.mode = mode
        started = time.monotonic()
        try:
            while time.monotonic() - started < duration:
                status, took = drill.get(drill.unknown_kid_token())
                assert status == 401, f"a token with an unknown key got {status}"
                refused.append(took)
                ready.append(probe_status(drill.proxy.probe_port))
                time.sleep(0.5)  # a client retrying its refused token, twice a second
            fault_seconds = time.monotonic() - started
            fetches = drill.fault.accepted_since(started)
        finally:
            drill.fault.mode = "pass"
        ok_during = load.ok - ok_before
    assert load.failures == [], f"requests with known keys failed during the fault: {load.failures[:5]}"
    assert ok_during > 0
    # Refused quickly: at once when the IdP fails fast, after the bounded wait when it is slow.
    assert max(refused) < UNKNOWN_KID_WAIT_SECONDS + 3.0, f"slowest refusal {max(refused):.1f} s"
    assert set(ready) == {200}, "readiness must stay 200 while the last good keys are held"
    # Back off: the fault's refetches stay at the documented rate, however many unknown kids arrive.
    allowed = int(fault_seconds / REFETCH_INTERVAL_SECONDS) + 2
    assert fetches <= allowed, f"{fetches} key fetches in {fault_seconds:.0f} s (allowed {allowed})"
    assert 'no signing key matches kid "never-published"' in drill.log()
    failed_fetches = (
        drill.metric('kube_oidc_proxy_jwks_fetches_total{issuer="' + drill.issuer + '",result="failure"}')
        - failed_fetches_before
    )
    figure(
        f"{fault_name} for {fault_seconds:.0f} s: {ok_during} requests with known keys, 0 failed;"
        f" {len(refused)} unknown-key tokens refused (401) in at most {max(refused):.2f} s;"
        f" {fetches} key fetch connections (allowed {allowed}), {failed_fetches:.0f} failed fetches counted;"
        " readiness 200 throughout"
    )


def test_a_key_the_idp_publishes_is_used_without_restart_and_a_retired_key_stops_at_the_next_fetch(
    drill: Drill, figure: Callable[[str], None]
) -> None:
    admin = KeycloakAdmin(f"https://127.0.0.1:{drill.cluster.keycloak_port}", drill.cluster.ca_file)
    old_kid = admin.active_rs256_kid()
    assert kid_of(drill.token) == old_kid
    old_providers = admin.rs256_providers()
    new_provider = ""
    try:
        with SteadyLoad(drill.proxy.port, drill.cluster.ca_file, drill.token) as load:
            load.wait_for_successes(5)
            new_provider = admin.add_rs256_provider("drill-rotated", priority=1000)
            published = time.monotonic()
            new_token = id_token(drill.issuer, drill.cluster.ca_file, "alice", "alice-password")
            assert kid_of(new_token) != old_kid, "Keycloak did not sign with the new key"
            accepted_after = _first_accepted(drill, new_token, published, REFETCH_INTERVAL_SECONDS * 2 + 10)
        assert load.failures == [], f"requests with the old key failed during the rotation: {load.failures[:5]}"
        for provider in old_providers:
            admin.set_enabled(provider, False)  # the old key is retired: gone from the JWKS
        retired = time.monotonic()
        assert drill.get(drill.token)[0] == 200, "the proxy drops a key only when it fetches the key set again"
        # Any token with an unknown kid makes the proxy fetch (at most once per 10 s): then the old key is
        # gone, and a token verified with it is remembered at most TOKEN_CACHE_SECONDS after its verification.
        deadline = retired + REFETCH_INTERVAL_SECONDS + TOKEN_CACHE_SECONDS + 20
        while drill.get(drill.token)[0] == 200:
            assert time.monotonic() < deadline, "the retired key still verifies"
            drill.get(drill.unknown_kid_token())
            time.sleep(0.5)
        stopped_after = time.monotonic() - retired
        assert drill.get(new_token)[0] == 200
    finally:
        for provider in old_providers:
            admin.set_enabled(provider, True)
        if new_provider:
            admin.delete(new_provider)
    figure(
        f"new key accepted {accepted_after:.1f} s after Keycloak published it, no restart;"
        f" {load.ok} requests with the old key meanwhile, 0 failed; the retired key refused {stopped_after:.1f} s"
        " after retirement (next key fetch, then the token cache's 60 s)"
    )


def _first_accepted(drill: Drill, token: str, since: float, timeout: float) -> float:
    deadline = since + timeout
    while True:
        status, _ = drill.get(token)
        if status == 200:
            return time.monotonic() - since
        assert status == 401, f"a token with the new key got {status}"
        assert time.monotonic() < deadline, "the new key was not picked up"
        time.sleep(0.5)
