from __future__ import annotations

from tests.conftest import PROXY_SA_TOKEN, ProxyHandle
from tests.support.client import get


async def test_a_valid_token_is_forwarded_with_impersonation(proxy: ProxyHandle) -> None:
    token = proxy.issuer.token()
    response = await get(proxy.port, proxy.ca_file, "/api/v1/namespaces/x/pods?limit=500", token=token)
    assert response.status == 200, response.body
    assert response.json()["path"] == "/api/v1/namespaces/x/pods?limit=500"
    seen = proxy.upstream.requests[-1]
    assert seen.one("authorization") == f"Bearer {PROXY_SA_TOKEN}"
    assert seen.one("impersonate-user") == "alice"
    assert seen.all("impersonate-group") == ["dev", "ops", "system:authenticated"]
    line = await proxy.access.wait_for("AuSuccess")
    assert "URI:/api/v1/namespaces/x/pods?limit=500 inbound:[alice / dev|ops|system:authenticated /]" in line
