"""kubeclient.refusal_text: a review kube-apiserver refused is logged with what its Status says."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.server.kubeclient import ERROR_BODY_CHARS, refusal_text

# kube-apiserver v1.37.2's answer to a SubjectAccessReview from a ServiceAccount without the RBAC for it
FORBIDDEN = (
    b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"subjectaccessreviews.'
    b'authorization.k8s.io is forbidden: User \\"system:serviceaccount:kube-oidc-proxy:kube-oidc-proxy\\" cannot '
    b'create resource \\"subjectaccessreviews\\" in API group \\"authorization.k8s.io\\" at the cluster scope",'
    b'"reason":"Forbidden","details":{"group":"authorization.k8s.io","kind":"subjectaccessreviews"},"code":403}'
)


def test_a_status_gives_its_message_whole() -> None:
    assert refusal_text(FORBIDDEN) == (
        'subjectaccessreviews.authorization.k8s.io is forbidden: User "system:serviceaccount:kube-oidc-proxy:'
        'kube-oidc-proxy" cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at '
        "the cluster scope"
    )


@pytest.mark.parametrize(
    ("body", "text"),
    [
        pytest.param(b"<html>502 Bad Gateway</html>", "<html>502 Bad Gateway</html>", id="not-json"),
        pytest.param(b'{"kind":"Status"}', '{"kind":"Status"}', id="a-status-without-message"),
        pytest.param(b'{"message":""}', '{"message":""}', id="an-empty-message"),
        pytest.param(b'["a"]', '["a"]', id="not-an-object"),
        pytest.param(b"\xff\xfe", "\ufffd\ufffd", id="not-utf-8"),
        pytest.param(b'{"message":"a\\nb\\u001b[2J"}', "a\\nb\\x1b[2J", id="a-message-on-one-line"),
    ],
)
def test_anything_else_gives_the_start_of_the_body_on_one_line(body: bytes, text: str) -> None:
    assert refusal_text(body) == text


def test_a_long_body_or_message_is_bounded() -> None:
    assert len(refusal_text(b"x" * 1_000_000)) <= ERROR_BODY_CHARS + 30
    assert len(refusal_text(b'{"message":"' + b"y" * 100_000 + b'"}')) <= ERROR_BODY_CHARS + 30
