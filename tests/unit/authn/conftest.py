"""Signing keys for the authn unit tests, generated once per session (RSA generation is the slow part)."""

from __future__ import annotations

import time
import types
from dataclasses import dataclass

import pytest
from joserfc.jwk import ECKey, RSAKey

from kube_oidc_proxy.authn import jwks
from tests.support.issuer import new_key


@dataclass(frozen=True)
class Keyring:
    rsa1: RSAKey
    rsa2: RSAKey
    ec256: ECKey
    ec384: ECKey


def _rsa(kid: str) -> RSAKey:
    key = new_key("RS256", kid)
    assert isinstance(key, RSAKey)
    return key


def _ec(alg: str, kid: str) -> ECKey:
    key = new_key(alg, kid)
    assert isinstance(key, ECKey)
    return key


@pytest.fixture(scope="session")
def keyring() -> Keyring:
    return Keyring(rsa1=_rsa("rsa-1"), rsa2=_rsa("rsa-2"), ec256=_ec("ES256", "ec-256"), ec384=_ec("ES384", "ec-384"))


class ManualClock:
    """A monotonic clock that only moves when the test says so."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def monotonic(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """Replace the monotonic clock KeySource rate-limits refetches with (only inside the jwks module)."""
    clock = ManualClock()
    monkeypatch.setattr(jwks, "time", types.SimpleNamespace(monotonic=clock, time=time.time))
    return clock
