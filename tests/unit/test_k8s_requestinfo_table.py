"""kube-apiserver's own RequestInfoFactory tables (requestinfo_test.go), and the attacker's rows, through
``request_info``: every field a row states must be kube-apiserver's answer (``k8s_requestinfo_cases``; the
fuzz module checks the same rows against the oracle built from k8s.io/apiserver)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from kube_oidc_proxy.listoptions import label_selector_parses, query_bool
from kube_oidc_proxy.requestinfo import request_info, request_uri
from tests.unit.k8s_requestinfo_cases import ALL_CASES, REQUEST_URIS, UPSTREAM_CORRECTIONS, Case, expected


def _id(case: Case) -> str:
    return f"{case.source}: {case.name[:80]}"


@pytest.mark.parametrize("case", ALL_CASES, ids=_id)
def test_request_info_is_kube_apiservers(case: Case) -> None:
    info = request_info(case.method, case.url)
    stated = expected(case)
    assert {field: getattr(info, field) for field in stated} == stated


def test_the_table_has_every_row_of_the_go_tables() -> None:
    by_source: dict[str, int] = {}
    for case in ALL_CASES:
        by_source[case.source] = by_source.get(case.source, 0) + 1
    # 30 success and 6 error cases, 13, and 12 (requestinfo_test.go at k8s.io/apiserver v0.37.2)
    assert by_source["TestGetAPIRequestInfo"] == 36
    assert by_source["TestGetNonAPIRequestInfo"] == 13
    assert by_source["TestSelectorParsing"] == 12
    assert len(UPSTREAM_CORRECTIONS) == 3


@pytest.mark.parametrize(("target", "uri"), REQUEST_URIS)
def test_the_request_uri_is_the_one_kube_apiserver_audits(target: str, uri: str) -> None:
    assert request_uri(target.encode()) == uri


def test_the_path_is_decoded_as_kube_apiserver_matches_non_resource_urls() -> None:
    info = request_info("GET", "/healthz%2Fetcd")
    assert (info.is_resource_request, info.path) == (False, "/healthz/etcd")


def test_bytes_and_text_targets_read_alike() -> None:
    target = "/api/v1/namespaces/caf\u00e9/pods?fieldSelector=metadata.name%3Dweb"
    assert request_info(b"GET", target.encode()) == request_info("GET", target)
    assert request_info("GET", target).namespace == "caf\u00e9"


@pytest.mark.parametrize(
    ("value", "true"),
    [
        ("true", True),
        ("1", True),
        ("", True),
        ("yes", True),
        ("00", True),
        ("false ", True),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("fAlSe", False),
        ("fal\u017fe", False),  # Go's EqualFold: the long s folds to s
        ("FAL\u017fE", False),
        ("f\u0430lse", True),  # a Cyrillic a does not
    ],
)
def test_a_flag_is_read_as_kube_apiserver_reads_it(value: str, true: bool) -> None:
    assert query_bool(value) is true


# What labels.Parse accepts, asked of the oracle (a selector that fails to parse leaves the list unnamed).
LABEL_SELECTORS = [
    ("app=web", True),
    ("app==web", True),
    ("app!=web", True),
    ("app", True),
    ("!app", True),
    ("app in (a,b)", True),
    ("app notin ()", True),
    ("app in (a,,b)", True),
    ("app in (,)", True),
    ("app in (a", False),
    ("app in a", False),
    ("x.y/z=1", True),
    ("example.com/a", True),
    ("Example.com/a", False),
    ("/a", False),
    ("a/", False),
    ("a/b/c", False),
    ("-a", False),
    ("a" * 63, True),
    ("a" * 64, False),
    ("app=" + "v" * 63, True),
    ("app=" + "v" * 64, False),
    ("a>5", True),
    ("a<-1", False),
    ("a>x", False),
    ("a>", False),
    ("a>9223372036854775808", False),
    ("a=b=c", False),
    ("a=b,", False),
    (",a", False),
    ("a b", False),
    ("!a=b", False),
    ("!!a", False),
    ("in in (in)", True),
    ("notin notin (notin)", True),
    ("a=in", True),
    ("a=\u00e9", False),
    ("a=\x00junk", True),  # Go's lexer reads a NUL where a token starts as the end of the input
    ("a=b,\x00c", True),  # ... and after a symbol swallows it
    ("a !=b", True),
    ("a=b c", False),
]


@pytest.mark.parametrize(("selector", "parses"), LABEL_SELECTORS)
def test_alabel_selector_parses_exactly_when_kube_apiservers_does(selector: str, parses: bool) -> None:
    assert label_selector_parses(selector) is parses
    named = request_info(
        "GET", f"/api/v1/pods?fieldSelector=metadata.name%3Dprobe&labelSelector={quote(selector, safe='')}"
    )
    assert named.name == ("probe" if parses else "")
