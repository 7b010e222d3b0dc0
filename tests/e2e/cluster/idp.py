"""Id tokens from the real OIDC provider (Keycloak), without a browser: the password grant
(Keycloak's "direct access grants"), as a CLI login helper would use it."""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from pathlib import Path

CLIENT_ID = "kube-oidc-proxy"


def id_token(issuer: str, ca_file: Path, username: str, password: str) -> str:
    body = urllib.parse.urlencode(
        {
            "grant_type": "password",
            "client_id": CLIENT_ID,
            "username": username,
            "password": password,
            "scope": "openid",
        }
    ).encode()
    request = urllib.request.Request(f"{issuer}/protocol/openid-connect/token", data=body, method="POST")
    ctx = ssl.create_default_context(cafile=str(ca_file))
    with urllib.request.urlopen(request, context=ctx, timeout=30) as response:
        return str(json.loads(response.read())["id_token"])
