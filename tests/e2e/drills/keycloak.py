"""Keycloak's admin REST API, as the master realm's bootstrap administrator (cluster.py): the signing-key
providers of the ``kube`` realm, to rotate the IdP's key during a drill."""

from __future__ import annotations

import json
import ssl
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.cluster.cluster import KEYCLOAK_ADMIN

KEY_PROVIDER = "org.keycloak.keys.KeyProvider"


class KeycloakAdmin:
    def __init__(self, keycloak_url: str, ca_file: Path, realm: str = "kube") -> None:
        self._base = f"{keycloak_url}/admin/realms/{realm}"
        self._token_url = f"{keycloak_url}/realms/master/protocol/openid-connect/token"
        self._context = ssl.create_default_context(cafile=str(ca_file))

    def _admin_token(self) -> str:
        """A fresh one for each call: the master realm's tokens last a minute, a drill longer."""
        username, password = KEYCLOAK_ADMIN
        body = urllib.parse.urlencode(
            {"grant_type": "password", "client_id": "admin-cli", "username": username, "password": password}
        ).encode()
        return str(self._call("POST", self._token_url, body, "application/x-www-form-urlencoded")["access_token"])

    def _call(
        self, method: str, url: str, body: bytes | None = None, content_type: str = "application/json", token: str = ""
    ) -> Any:
        request = urllib.request.Request(url, data=body, method=method)
        if body is not None:
            request.add_header("Content-Type", content_type)
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        with urllib.request.urlopen(request, context=self._context, timeout=30) as response:
            data = response.read()
            location = response.headers.get("Location", "")
        return json.loads(data) if data else {"location": location}

    def api(self, method: str, path: str, obj: Any = None) -> Any:
        body = None if obj is None else json.dumps(obj).encode()
        return self._call(method, self._base + path, body, token=self._admin_token())

    def active_rs256_kid(self) -> str:
        keys = self.api("GET", "/keys")["keys"]
        active = [k for k in keys if k.get("algorithm") == "RS256" and k.get("status") == "ACTIVE"]
        return str(max(active, key=lambda k: k.get("providerPriority", 0))["kid"])

    def rs256_providers(self) -> list[dict[str, Any]]:
        providers = self.api("GET", f"/components?type={KEY_PROVIDER}")
        return [p for p in providers if p.get("providerId") == "rsa-generated"]

    def add_rs256_provider(self, name: str, priority: int) -> str:
        realm_id = self.api("GET", "")["id"]
        created = self.api(
            "POST",
            "/components",
            {
                "name": name,
                "providerId": "rsa-generated",
                "providerType": KEY_PROVIDER,
                "parentId": realm_id,
                "config": {
                    "priority": [str(priority)],
                    "enabled": ["true"],
                    "active": ["true"],
                    "algorithm": ["RS256"],
                    "keySize": ["2048"],
                },
            },
        )
        return str(created["location"]).rsplit("/", 1)[1]

    def set_enabled(self, provider: dict[str, Any], enabled: bool) -> None:
        changed = {**provider, "config": {**provider["config"], "enabled": ["true" if enabled else "false"]}}
        self.api("PUT", f"/components/{provider['id']}", changed)

    def delete(self, provider_id: str) -> None:
        self.api("DELETE", f"/components/{provider_id}")
