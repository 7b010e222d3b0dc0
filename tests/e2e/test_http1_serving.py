"""The suite runs against proxies serving HTTP/2 (the default, which kubectl and client-go then use for
ordinary requests). This module runs a representative set of the same tests again, unchanged, against
proxies started with ``--disable-http2-serving``, where every client speaks HTTP/1.1: get, list, create
and delete, a large apply, watch, logs -f, exec, attach, cp, port-forward, --as, token passthrough, audit,
curl and client-go informers.

The tests are the other modules' functions bound here under the same names: pytest runs them with this
module's fixtures (alice, bob and proxy through an HTTP/1.1-only proxy), and every ``Proxy`` started while
they run (the audit and passthrough tests start their own) serves HTTP/1.1 only. The tests of
``test_http2.py`` check the protocol the proxy serves, so here they check that no HTTP/2 was spoken.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e import test_http2, test_identity, test_observability, test_streams, test_verbs
from tests.e2e.cluster import proxy as proxies
from tests.e2e.cluster.cluster import Cluster
from tests.e2e.cluster.idp import id_token
from tests.e2e.cluster.proxy import Proxy
from tests.e2e.conftest import ROTATE_EVERY_SECONDS
from tests.e2e.kube import Kubectl


@pytest.fixture(scope="module", autouse=True)
def http1_only() -> Iterator[None]:
    """Proxies started by this module's tests get --disable-http2-serving."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(proxies, "SERVE_HTTP2", False)
        yield


@pytest.fixture(scope="module")
def proxy(http1_only: None, cluster: Cluster) -> Iterator[Proxy]:
    p = Proxy(cluster)
    p.start(rotate_every=ROTATE_EVERY_SECONDS)
    assert not p.http2
    try:
        yield p
    finally:
        p.stop()


@pytest.fixture(scope="module")
def alice(cluster: Cluster, proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    token = id_token(cluster.issuer, cluster.ca_file, "alice", "alice-password")
    return Kubectl.through(proxy, token, tmp_path_factory.mktemp("alice-http1"))


@pytest.fixture(scope="module")
def bob(cluster: Cluster, proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    token = id_token(cluster.issuer, cluster.ca_file, "bob", "bob-password")
    return Kubectl.through(proxy, token, tmp_path_factory.mktemp("bob-http1"))


# fixtures of the modules the tests come from
echo_port = test_streams.echo_port
sink = test_observability.sink
informers = test_http2.informers
watch_everything = test_http2.watch_everything

# get, list, create, delete, a 5 MB request body, watch, logs -f
test_get_and_list_pods = test_verbs.test_get_and_list_pods
test_configmaps_are_denied_to_a_viewer = test_verbs.test_configmaps_are_denied_to_a_viewer
test_a_5mb_apply_streams_through_and_the_api_servers_own_answer_comes_back = (
    test_verbs.test_a_5mb_apply_streams_through_and_the_api_servers_own_answer_comes_back
)
test_apply_a_large_configmap_then_delete_it = test_verbs.test_apply_a_large_configmap_then_delete_it
test_watch_events_arrive_within_a_second = test_verbs.test_watch_events_arrive_within_a_second
test_logs_follow_streams_new_lines = test_verbs.test_logs_follow_streams_new_lines

# exec, attach, cp, port-forward: over WebSocket and SPDY
test_exec_carries_stdin_stdout_and_the_exit_code = test_streams.test_exec_carries_stdin_stdout_and_the_exit_code
test_attach_sends_stdin_and_receives_output = test_streams.test_attach_sends_stdin_and_receives_output
test_cp_round_trips_10mb_byte_exact = test_streams.test_cp_round_trips_10mb_byte_exact
test_port_forward_reaches_a_tcp_service = test_streams.test_port_forward_reaches_a_tcp_service

# --as, the access log, audit
test_kubectl_as_is_checked_with_subject_access_reviews = (
    test_identity.test_kubectl_as_is_checked_with_subject_access_reviews
)
test_as_uid_and_the_original_user_reach_the_api_server = (
    test_identity.test_as_uid_and_the_original_user_reach_the_api_server
)
test_access_lines_name_the_user = test_identity.test_access_lines_name_the_user
test_kubectl_traffic_reaches_the_audit_webhook_with_kube_apiservers_audit_id = (
    test_observability.test_kubectl_traffic_reaches_the_audit_webhook_with_kube_apiservers_audit_id
)

# the HTTP/2 tests, which here see HTTP/1.1: kubectl, exec, curl --http2, passthrough, informers
test_kubectl_negotiates_http2_when_the_proxy_offers_it = (
    test_http2.test_kubectl_negotiates_http2_when_the_proxy_offers_it
)
test_exec_upgrades_over_http1_beside_http2_requests = test_http2.test_exec_upgrades_over_http1_beside_http2_requests
test_curl_with_http2_enabled = test_http2.test_curl_with_http2_enabled
test_a_passed_through_token_works_for_kubectl = test_http2.test_a_passed_through_token_works_for_kubectl
test_informers_watch_over_one_client_connection_with_http2_and_one_upstream_either_way = (
    test_http2.test_informers_watch_over_one_client_connection_with_http2_and_one_upstream_either_way
)
