"""celscan.selects_claim against kube-apiserver's hasSelectExp (validation.go): a field selection whose operand is
the identifier ``claims``, anywhere in the checked syntax tree."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.authn.cel import CLAIMS, Compiler
from kube_oidc_proxy.authn.celscan import selects_claim

COMPILER = Compiler()

SELECTS_EMAIL = [
    "claims.email",
    "has(claims.email)",
    "claims.?email",
    "claims.?email.orValue('')",
    "claims.email.trim()",
    "string(claims.email)",
    "['yay', string(claims.email), 'panda'].join(' ')",
    '["a"].map(i, i + claims.email)',
    '{claims.?email: "panda"}',
    '{"fancy": claims.?email}',
    "has(claims.email) ? claims.email : claims.sub",
    "claims . email",
    "claims\n  .email",
    "claims // a comment\n.email",
    "claims . ? email",
    # cel-go's checker rewrites the root-scoped .claims to claims
    ".claims.email",
    "'a' + .claims.email",
    # parentheses are not in the syntax tree
    "(claims).email",
    "((claims)).email",
    "((claims).email)",
    "has((claims).email)",
    # the match is by name: a comprehension variable called claims counts
    "[claims].map(claims, claims.email)",
    # strings end at their closing quote, raw ones too
    r"r'\d' + claims.email",
    r"'\'' + claims.email",
]

NOT_EMAIL = [
    'claims["email"]',
    'claims[?"email"]',
    "claims.email_",
    "claims.emails",
    "claims.email_verified",
    "claims.other.claims.email",
    "claims.x.email",
    "claims.?x.email",
    "claims.?x.?email",
    "'claims.email'",
    '"claims.email"',
    "'''claims.email'''",
    'r"claims.email"',
    "b'claims.email'",
    r"r'\d' + 'claims.email'",
    r"'\\' + 'claims.email'",
    "// claims.email\nclaims.sub",
    "[claims].map(c, c.email)",
    "claims",
    "claims.sub",
]


@pytest.mark.parametrize("expression", SELECTS_EMAIL)
def test_selects_email(expression: str) -> None:
    assert selects_claim(expression, "email")


@pytest.mark.parametrize("expression", NOT_EMAIL)
def test_does_not_select_email(expression: str) -> None:
    assert not selects_claim(expression, "email")


@pytest.mark.parametrize("expression", SELECTS_EMAIL + NOT_EMAIL)
def test_examples_compile(expression: str) -> None:
    # kube-apiserver only scans expressions that compiled: the examples must be ones it would scan
    COMPILER.compile(expression, CLAIMS)


@pytest.mark.parametrize(
    "expression",
    [
        "x.claims.email",  # a field of x
        "x.?claims.email",  # an optional field of x
        "x[0].claims.email",
        "f(claims).email",  # a call's result
        "claims.f(claims).email",
        "claims.email()",  # a receiver call, not a selection
    ],
)
def test_claims_that_is_not_the_variable(expression: str) -> None:
    # these need names cel-cpp does not know, so they are scanner-only examples
    assert not selects_claim(expression, "email")


def test_other_claims_and_variables() -> None:
    assert selects_claim("has(claims.email_verified) && claims.email_verified", "email_verified")
    assert not selects_claim("claims.email_verified_", "email_verified")
    assert selects_claim("user.username == ''", "username", variable="user")
    assert not selects_claim("claims.username == ''", "username", variable="user")
