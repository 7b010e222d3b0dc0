"""Tokens from the real OIDC provider (Keycloak) without a browser: the password grant (Keycloak's "direct
access grants"), as a CLI login helper would use it; with ``offline_access`` it also gives a refresh token
that outlives Keycloak's SSO session (the demo seeds the credential plugin's cache with one)."""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLIENT_ID = "kube-oidc-proxy"


@dataclass(frozen=True)
class PasswordGrant:
    id_token: str
    refresh_token: str | None


def password_grant(issuer: str, ca_file: Path, username: str, password: str, scope: str = "openid") -> PasswordGrant:
    body = urllib.parse.urlencode(
        {"grant_type": "password", "client_id": CLIENT_ID, "username": username, "password": password, "scope": scope}
    ).encode()
    request = urllib.request.Request(f"{issuer}/protocol/openid-connect/token", data=body, method="POST")
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(request, context=ctx, timeout=30) as response:
        answer = json.loads(response.read())
    return PasswordGrant(str(answer["id_token"]), answer.get("refresh_token"))


def id_token(issuer: str, ca_file: Path, username: str, password: str) -> str:
    return password_grant(issuer, ca_file, username, password).id_token
