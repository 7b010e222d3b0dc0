"""The examples in docs/authentication-config.md are valid files, and mean what the page says."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube_oidc_proxy.authn.authconfig import parse_authentication_config
from kube_oidc_proxy.authn.claims import user_from_claims
from kube_oidc_proxy.authn.model import Authenticated, JWTAuthenticatorSpec, Rejected

PAGE = Path(__file__).resolve().parents[2] / "docs" / "authentication-config.md"
HEADER = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n"


def examples() -> dict[str, str]:
    """Each YAML block under its section heading, completed into a whole document when it is one entry."""
    found: dict[str, str] = {}
    heading = ""
    for section in re.split(r"^(###? .+)$", PAGE.read_text(), flags=re.MULTILINE):
        if section.startswith("#"):
            heading = section.lstrip("# ").strip()
            continue
        for block in re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL):
            found[heading] = block if block.startswith("apiVersion") else HEADER + block
    return found


EXAMPLES = examples()


def spec(heading: str) -> JWTAuthenticatorSpec:
    text = EXAMPLES[heading].replace("...the partner IdP's CA...\n", "")
    document = yaml.safe_load(text)
    document["jwt"][0]["issuer"].pop("certificateAuthority", None)  # the page elides the PEM
    [parsed] = parse_authentication_config(yaml.safe_dump(document)).authenticators
    return parsed


def login(spec: JWTAuthenticatorSpec, **claims: Any) -> Authenticated | Rejected:
    now = time.time()
    audience = spec.audiences[0]
    return user_from_claims({"iss": spec.issuer_url, "aud": audience, "exp": now + 60, **claims}, spec, now)


def test_the_page_has_the_examples_it_promises() -> None:
    assert set(EXAMPLES) >= {
        "A corporate IdP with group prefixes",
        "GitHub Actions deploying to the cluster",
        "A second issuer for a partner",
        "From the `--oidc-*` flags",
    }


@pytest.mark.parametrize("heading", sorted(EXAMPLES))
def test_every_example_is_a_valid_file(heading: str) -> None:
    assert spec(heading).issuer_url.startswith("https://")


def test_the_corporate_example_prefixes_and_refuses_unverified_or_foreign_mail() -> None:
    corp = spec("A corporate IdP with group prefixes")
    ok = login(corp, sub="u1", email="ann@example.com", email_verified=True, groups=["sre"])
    assert isinstance(ok, Authenticated)
    assert (ok.user.username, ok.user.groups, ok.user.uid) == ("corp:ann@example.com", ("corp:sre",), "u1")
    unverified = login(corp, sub="u1", email="ann@example.com", email_verified=False)
    assert isinstance(unverified, Rejected)
    assert "not verified" in unverified.reason
    assert isinstance(login(corp, sub="u1", email="x@evil.com", email_verified=True), Rejected)


def test_the_github_example_lets_one_orgs_main_branch_in() -> None:
    github = spec("GitHub Actions deploying to the cluster")
    claims = {"repository": "example-org/app", "repository_owner": "example-org", "run_id": "42"}
    ok = login(github, ref="refs/heads/main", **claims)
    assert isinstance(ok, Authenticated)
    assert ok.user.username == "github:example-org/app"
    assert ok.user.groups == ("github:example-org",)
    assert ok.user.extra["example.com/workflow-run"] == ("42",)
    assert isinstance(login(github, ref="refs/heads/feature", **claims), Rejected)


def test_the_partner_example_keeps_partners_out_of_admin() -> None:
    partner = spec("A second issuer for a partner")
    ok = login(partner, sub="p1", roles=["k8s-dev", "mail"])
    assert isinstance(ok, Authenticated)
    assert (ok.user.username, ok.user.groups) == ("partner:p1", ("partner:k8s-dev",))
    assert isinstance(login(partner, sub="p1", roles=["k8s-admin"]), Rejected)
    assert isinstance(login(partner, sub="p2"), Authenticated)  # no roles claim: no groups


def test_the_flags_translation_example_means_the_flags() -> None:
    translated = spec("From the `--oidc-*` flags")
    assert translated.required_claims == (("hd", "example.com"),)
    ok = login(translated, email="ann@example.com", groups=["dev"], hd="example.com")
    assert isinstance(ok, Authenticated)
    assert (ok.user.username, ok.user.groups) == ("ann@example.com", ("oidc:dev",))
