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
        # as kube-apiserver reads the query: the first value, any but 0 and false
        (b"GET", b"/api/v1/pods?watch=yes", True),
        (b"GET", b"/api/v1/pods?watch", True),
        (b"GET", b"/api/v1/pods?watch=false&watch=true", False),
        (b"GET", b"/api/v1/pods?%77atch=true", True),
        (b"GET", b"/api/v1/pods?watch=true;x", False),
        (b"GET", b"/api/v1/%77atch/pods", True),
        (b"GET", b"/api/v1/namespaces/a/pods/web/log?follow", True),
        (b"GET", b"/api/v1/namespaces/a/pods/web/log?follow=false&follow=true", False),
        (b"GET", b"/api/v1/namespaces/a/pods/web%2Flog?follow=1", True),
        # a watch of one named object is kube-apiserver's "get", not a watch
        (b"GET", b"/api/v1/namespaces/a/pods/web?watch=true", False),
        # kube-apiserver also exempts these from its timeout; here they are not streams to end at a chunk
        (b"GET", b"/api/v1/namespaces/a/services/web/proxy/metrics", False),
        (b"GET", b"/api/v1/namespaces/a/pods/web/log", False),
    ],
)
def test_watches_and_followed_logs_are_long_running(method: bytes, target: bytes, expected: bool) -> None:
    assert is_long_running(method, target) is expected
