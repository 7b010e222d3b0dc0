"""authenticator.TokenAuthenticator: route by issuer, verify, cache successes only."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authn.authenticator import TokenAuthenticator
from kube_oidc_proxy.authn.cache import TokenCache
from kube_oidc_proxy.authn.jwks import KeySource
from kube_oidc_proxy.authn.model import Authenticated, JWTAuthenticatorSpec, NotMine, Rejected
from kube_oidc_proxy.authn.oidc import JWTAuthenticator
from kube_oidc_proxy.authn.token import ParsedToken
from tests.unit.authn.conftest import Keyring
from tests.unit.authn.fakes import ISSUER, NOW, FakeIssuer, b64url, base_claims, segment, sign, spec

GOOGLE = "https://accounts.google.com"


class CountingAuthenticator(JWTAuthenticator):
    """Records every token it is asked to verify."""

    def __init__(self, spec: JWTAuthenticatorSpec, keys: KeySource) -> None:
        super().__init__(spec, keys, clock=lambda: NOW)
        self.verified: list[bytes] = []

    async def verify(self, token: ParsedToken) -> Authenticated | Rejected:
        self.verified.append(token.raw)
        return await super().verify(token)


async def make_source(issuer: FakeIssuer, keyring: Keyring) -> KeySource:
    issuer.publish(keyring.rsa1, keyring.ec256)
    source = issuer.key_source()
    assert await source.refresh()
    return source


@pytest.fixture
async def main(keyring: Keyring) -> CountingAuthenticator:
    return CountingAuthenticator(
        spec(signing_algs=frozenset({"RS256", "ES256"})), await make_source(FakeIssuer(), keyring)
    )


@pytest.fixture
async def google(keyring: Keyring) -> CountingAuthenticator:
    return CountingAuthenticator(spec(issuer_url=GOOGLE), await make_source(FakeIssuer(GOOGLE), keyring))


@pytest.fixture
def tokens(main: CountingAuthenticator, google: CountingAuthenticator) -> TokenAuthenticator:
    return TokenAuthenticator([main, google], TokenCache(), clock=lambda: NOW)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(b"not-a-jwt", id="opaque"),
        pytest.param(b"sha256~0123456789abcdef", id="openshift-style"),
        pytest.param(b"abcdef.0123456789abcdef", id="bootstrap-token"),
        pytest.param(b"a.b.c.d.e", id="jwe"),
        pytest.param(b"..", id="dots"),
        pytest.param(b".".join((b64url(b"{}"), segment({"iss": ISSUER}), b"")), id="unsigned"),
        pytest.param(b".".join((segment({"typ": "JWT"}), segment({"iss": ISSUER}), b"c2ln")), id="no-alg"),
    ],
)
async def test_a_token_that_is_not_a_jwt_is_not_mine(
    tokens: TokenAuthenticator, main: CountingAuthenticator, token: bytes
) -> None:
    result = await tokens.authenticate(token)
    assert isinstance(result, NotMine)
    assert main.verified == []


@pytest.mark.parametrize(
    "iss",
    [
        pytest.param("https://other.example", id="foreign"),
        pytest.param(ISSUER + "/", id="trailing-slash"),
        pytest.param(None, id="missing"),
        pytest.param(7, id="number"),
        pytest.param([ISSUER], id="list"),
    ],
)
async def test_a_jwt_from_an_untrusted_issuer_is_not_mine(
    keyring: Keyring, tokens: TokenAuthenticator, main: CountingAuthenticator, iss: object
) -> None:
    claims = base_claims(iss=iss)
    if iss is None:
        del claims["iss"]
    result = await tokens.authenticate(sign(keyring.rsa1, claims, "RS256"))
    assert isinstance(result, NotMine)
    assert main.verified == []
    assert len(tokens.cache) == 0


async def test_each_token_goes_to_the_authenticator_of_its_issuer(
    keyring: Keyring, tokens: TokenAuthenticator, main: CountingAuthenticator, google: CountingAuthenticator
) -> None:
    ours = sign(keyring.rsa1, base_claims(), "RS256")
    googles = sign(keyring.rsa1, base_claims(iss="accounts.google.com", sub="gina"), "RS256")
    first = await tokens.authenticate(ours)
    second = await tokens.authenticate(googles)
    assert isinstance(first, Authenticated)
    assert isinstance(second, Authenticated)
    assert (first.user.username, first.issuer) == ("alice", ISSUER)
    assert (second.user.username, second.issuer) == ("gina", GOOGLE)
    assert main.verified == [ours]
    assert google.verified == [googles]
    assert {a.spec.issuer_url for a in tokens.authenticators} == {ISSUER, GOOGLE}


async def test_a_successful_token_is_then_served_from_the_cache(
    keyring: Keyring, tokens: TokenAuthenticator, main: CountingAuthenticator
) -> None:
    token = sign(keyring.rsa1, base_claims(), "RS256")
    assert tokens.lookup(token) is None
    result = await tokens.authenticate(token)
    assert isinstance(result, Authenticated)
    assert tokens.lookup(token) == result
    assert tokens.lookup(token) == result
    assert main.verified == [token]
    assert tokens.lookup(token + b"x") is None


async def test_a_cached_token_expires_from_the_cache_with_its_exp(
    keyring: Keyring, main: CountingAuthenticator
) -> None:
    now = [NOW]
    tokens = TokenAuthenticator([main], TokenCache(max_ttl=3600), clock=lambda: now[0])
    token = sign(keyring.rsa1, base_claims(exp=int(NOW) + 30), "RS256")
    assert isinstance(await tokens.authenticate(token), Authenticated)
    now[0] = NOW + 29
    assert tokens.lookup(token) is not None
    now[0] = NOW + 30
    assert tokens.lookup(token) is None


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"exp": int(NOW) - 1}, id="expired"),
        pytest.param({"aud": "other"}, id="wrong-audience"),
        pytest.param({"sub": "system:admin"}, id="system-user"),
    ],
)
async def test_a_rejected_token_is_not_cached(
    keyring: Keyring, tokens: TokenAuthenticator, main: CountingAuthenticator, overrides: dict[str, object]
) -> None:
    token = sign(keyring.rsa1, base_claims(**overrides), "RS256")
    assert isinstance(await tokens.authenticate(token), Rejected)
    assert tokens.lookup(token) is None
    assert len(tokens.cache) == 0
    assert isinstance(await tokens.authenticate(token), Rejected)
    assert main.verified == [token, token]


async def test_a_token_with_a_bad_signature_is_not_cached(
    keyring: Keyring, tokens: TokenAuthenticator, main: CountingAuthenticator
) -> None:
    token = sign(keyring.rsa2, base_claims(), "RS256", kid="rsa-1")
    assert isinstance(await tokens.authenticate(token), Rejected)
    assert tokens.lookup(token) is None
    assert len(tokens.cache) == 0


async def test_the_cache_holds_no_token_bytes(keyring: Keyring, tokens: TokenAuthenticator) -> None:
    token = sign(keyring.rsa1, base_claims(jti="id-1"), "RS256")
    assert isinstance(await tokens.authenticate(token), Authenticated)
    assert len(tokens.cache) == 1
    for stored_key, value in tokens.cache._cache._entries.items():
        assert stored_key != token
        for part in token.split(b"."):
            assert part not in stored_key
            assert part.decode() not in repr(value)
