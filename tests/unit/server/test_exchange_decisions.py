"""Table tests for the exchange's pure decisions: its phases, the relayed headers, HTTP/1.1 framing, retry
eligibility, audit stages and named pauses. No sockets, no loop."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.http1.events import Framing
from kube_oidc_proxy.server import auditstages
from kube_oidc_proxy.server.flow import FlowControl
from kube_oidc_proxy.server.phase import ENDINGS, TRANSITIONS, Event, InvalidTransition, Phase, advance
from kube_oidc_proxy.server.relayed import h2_request_headers, http1_framing, may_retry, relayed_head

# -- phases -------------------------------------------------------------------------------------------

LIVES = [
    ("a relayed response", [Event.FORWARD, Event.RESPONSE_HEAD, Event.RESPONSE_END], Phase.COMPLETE),
    ("a denial", [Event.ANSWER], Phase.COMPLETE),
    ("a failure before the head", [Event.FORWARD, Event.ANSWER], Phase.COMPLETE),
    ("a retried request", [Event.FORWARD, Event.RETRY, Event.RESPONSE_HEAD, Event.RESPONSE_END], Phase.COMPLETE),
    ("an upgrade", [Event.FORWARD, Event.RESPONSE_HEAD, Event.SWITCH], Phase.TUNNEL),
    ("kube-apiserver lost mid-body", [Event.FORWARD, Event.RESPONSE_HEAD, Event.CUT], Phase.BROKEN),
    ("a client that leaves while deciding", [Event.CLIENT_LOST], Phase.CLIENT_GONE),
    ("a client that leaves mid-body", [Event.FORWARD, Event.RESPONSE_HEAD, Event.CLIENT_LOST], Phase.CLIENT_GONE),
    ("a client that leaves after its answer", [Event.ANSWER, Event.CLIENT_LOST], Phase.COMPLETE),
]


@pytest.mark.parametrize(("events", "ending"), [(e, p) for _, e, p in LIVES], ids=[n for n, _, _ in LIVES])
def test_each_life_of_an_exchange_ends_where_expected(events: list[Event], ending: Phase) -> None:
    phase = Phase.DECIDING
    for event in events:
        phase = advance(phase, event)
    assert phase is ending
    assert phase.over


@pytest.mark.parametrize(
    ("phase", "event"),
    [
        (Phase.DECIDING, Event.RESPONSE_HEAD),  # nothing was sent
        (Phase.RESPONDING, Event.ANSWER),  # a Status after a head would corrupt the response
        (Phase.RESPONDING, Event.RETRY),  # a request is never sent again once answered
        (Phase.FORWARDING, Event.SWITCH),  # a tunnel only after its 101 went to the client
        (Phase.COMPLETE, Event.RESPONSE_HEAD),
        (Phase.TUNNEL, Event.RESPONSE_END),
    ],
)
def test_a_transition_the_table_lacks_is_refused(phase: Phase, event: Event) -> None:
    with pytest.raises(InvalidTransition):
        advance(phase, event)


def test_no_ending_leads_anywhere_but_to_itself() -> None:
    for (phase, _), after in TRANSITIONS.items():
        if phase in ENDINGS:
            assert after is phase


def test_a_status_can_be_sent_only_before_the_response_head() -> None:
    assert [p for p in Phase if not p.answered] == [Phase.DECIDING, Phase.FORWARDING]


# -- relayed headers ----------------------------------------------------------------------------------


def test_hop_by_hop_and_connection_named_headers_are_not_relayed() -> None:
    upstream = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"keep-alive, X-Secret"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Secret", b"1"),
        (b"Audit-Id", b"from-apiserver"),
    ]
    relayed = relayed_head(upstream, b"ours")
    assert relayed.headers == [(b"Content-Type", b"application/json"), (b"Audit-Id", b"from-apiserver")]
    assert not relayed.watch


@pytest.mark.parametrize(
    ("headers", "audit_ids", "watch"),
    [
        ([(b"Content-Type", b"application/json;stream=watch")], [b"ours"], True),
        ([(b"content-type", b"application/vnd.kubernetes.protobuf;stream=watch")], [b"ours"], True),
        ([(b"Content-Type", b"text/plain")], [b"ours"], False),
        ([(b"audit-id", b"theirs")], [b"theirs"], False),  # kube-apiserver's echo is kept, not doubled
    ],
)
def test_watches_are_recognised_and_one_audit_id_is_on_every_answer(
    headers: list[tuple[bytes, bytes]], audit_ids: list[bytes], watch: bool
) -> None:
    relayed = relayed_head(headers, b"ours")
    assert [v for n, v in relayed.headers if n.lower() == b"audit-id"] == audit_ids
    assert relayed.watch is watch


# -- HTTP/1.1 framing ---------------------------------------------------------------------------------

FRAMINGS: list[tuple[Framing, str, bool, bool, bool, bool, bool, list[tuple[bytes, bytes]]]] = [
    # upstream, client, keep-alive, request read, stopping -> chunked, keep-alive, added headers
    ("length", "1.1", True, True, False, False, True, []),
    ("chunked", "1.1", True, True, False, True, True, [(b"Transfer-Encoding", b"chunked")]),
    ("close", "1.1", True, True, False, True, True, [(b"Transfer-Encoding", b"chunked")]),
    ("chunked", "1.0", True, True, False, False, False, [(b"Connection", b"close")]),
    ("length", "1.1", True, False, False, False, False, [(b"Connection", b"close")]),  # body left unread
    ("length", "1.1", True, True, True, False, False, [(b"Connection", b"close")]),  # shutting down
    ("none", "1.1", False, True, False, False, False, [(b"Connection", b"close")]),
]


@pytest.mark.parametrize(("upstream", "client", "keep", "read", "stopping", "chunked", "kept", "added"), FRAMINGS)
def test_http1_framing(
    upstream: Framing,
    client: str,
    keep: bool,
    read: bool,
    stopping: bool,
    chunked: bool,
    kept: bool,
    added: list[tuple[bytes, bytes]],
) -> None:
    plan = http1_framing(upstream, client_version=client, keep_alive=keep, request_read=read, stopping=stopping)
    assert (plan.chunked, plan.keep_alive, plan.headers) == (chunked, kept, added)


# -- upstream HTTP/2 headers, retry -------------------------------------------------------------------


def test_an_h2_request_has_pseudo_headers_first_and_nothing_connection_specific() -> None:
    outbound = [(b"host", b"api:6443"), (b"impersonate-user", b"alice"), (b"connection", b"close"), (b"te", b"x")]
    headers = h2_request_headers(b"GET", b"/api/v1/pods?watch=1", b"api:6443", outbound)
    assert headers == [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"api:6443"),
        (b":path", b"/api/v1/pods?watch=1"),
        (b"impersonate-user", b"alice"),
    ]


@pytest.mark.parametrize(
    ("method", "framing", "reused", "received", "timed_out", "allowed"),
    [
        (b"GET", "none", True, False, False, True),
        (b"HEAD", "none", True, False, False, True),
        (b"POST", "none", True, False, False, False),  # may have changed something
        (b"GET", "length", True, False, False, False),  # its body is gone
        (b"GET", "none", False, False, False, False),  # a fresh connection failing is not a stale one
        (b"GET", "none", True, True, False, False),  # part of an answer came
        (b"GET", "none", True, False, True, False),  # --request-timeout is spent
    ],
)
def test_only_a_safe_bodiless_request_on_a_stale_connection_is_retried(
    method: bytes, framing: Framing, reused: bool, received: bool, timed_out: bool, allowed: bool
) -> None:
    assert may_retry(method, framing, reused=reused, received=received, timed_out=timed_out) is allowed


# -- audit stages -------------------------------------------------------------------------------------


def test_audit_stages_are_kube_apiservers() -> None:
    assert auditstages.denied(401) == ("ResponseStarted",)  # a failed authentication: one event
    assert auditstages.denied(403) == ("RequestReceived", "ResponseComplete")
    assert auditstages.response_head(200, long_running=False) == ()
    assert auditstages.response_head(200, long_running=True) == ("ResponseStarted",)
    assert auditstages.response_head(101, long_running=False) == ("ResponseStarted",)
    assert auditstages.response_status(200) == {"metadata": {}, "code": 200}
    assert auditstages.response_status(403, "no") == {
        "metadata": {},
        "code": 403,
        "status": "Failure",
        "message": "no",
        "reason": "Forbidden",
    }


# -- flow control -------------------------------------------------------------------------------------


def test_reading_resumes_only_when_no_reason_is_left() -> None:
    calls: list[str] = []
    flow = FlowControl(lambda: calls.append("pause"), lambda: calls.append("resume"))
    flow.pause("body")
    flow.pause("client-full")
    flow.resume("body")
    assert flow.paused and calls == ["pause"]
    flow.resume("pipeline")  # a reason never given resumes nothing
    assert flow.paused
    flow.resume("client-full")
    assert not flow.paused and calls == ["pause", "resume"]
