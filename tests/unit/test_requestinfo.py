from __future__ import annotations

import pytest

from kube_oidc_proxy.requestinfo import is_long_running


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        (b"GET", b"/api/v1/pods?watch=true", True),
        (b"GET", b"/api/v1/namespaces/a/pods?resourceVersion=5&watch=1", True),
        (b"GET", b"/apis/apps/v1/deployments?watch=false", False),
        (b"GET", b"/api/v1/watch/namespaces/a/pods", True),
        (b"GET", b"/api/v1/namespaces/a/pods/web/log?follow=true&container=c", True),
        (b"GET", b"/api/v1/namespaces/a/pods/web/log?container=c", False),
        (b"GET", b"/api/v1/namespaces/a/configmaps?follow=true", False),
        (b"GET", b"/api/v1/pods?watchx=true", False),
        (b"GET", b"/api/v1/pods", False),
        (b"POST", b"/api/v1/pods?watch=true", False),
    ],
)
def test_watches_and_followed_logs_are_long_running(method: bytes, target: bytes, expected: bool) -> None:
    assert is_long_running(method, target) is expected
