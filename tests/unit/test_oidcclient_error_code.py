"""A token endpoint's refusal carries its OAuth error code, so a caller can tell a dead refresh token
(``invalid_grant``) from a provider that is merely unwell."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.oidcclient import ProviderError, parse_token_response

ENDPOINT = "https://issuer.example/token"


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (400, b'{"error": "invalid_grant", "error_description": "Token is not active"}', "invalid_grant",
         "POST https://issuer.example/token: HTTP 400: invalid_grant (Token is not active)"),
        (401, b'{"error": "invalid_client"}', "invalid_client", "HTTP 401: invalid_client"),
        (400, b'{"error": 7}', None, "HTTP 400: no error code"),
        (503, b"<html>down</html>", None, "HTTP 503, not a JSON object"),
        (200, b'{"access_token": "x"}', None, "the answer has no id_token"),
    ],
)  # fmt: skip
def test_refusals_carry_the_error_code(status: int, body: bytes, error: str | None, message: str) -> None:
    with pytest.raises(ProviderError) as caught:
        parse_token_response(ENDPOINT, status, body)
    assert caught.value.error == error
    assert message in str(caught.value)
