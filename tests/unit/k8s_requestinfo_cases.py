"""kube-apiserver's RequestInfoFactory test tables (k8s.io/apiserver v0.37.2,
pkg/endpoints/request/requestinfo_test.go: TestGetAPIRequestInfo, TestGetNonAPIRequestInfo,
TestSelectorParsing), as data; then the attacker's rows, whose answers are kube-apiserver's too.

The Kubernetes tables are Copyright 2016 The Kubernetes Authors, licensed under the Apache License 2.0
(http://www.apache.org/licenses/LICENSE-2.0); the rows are restated here as data, in source order, with the
values each Go case states. Not carried over: the ``expectedParts`` column (RequestInfo.Parts: audit and
metrics never read it, so the proxy does not compute it) and Go's error-message check of two selector cases
(NewRequestInfo logs that error and returns none; the rows keep their expected name and verb).

Each :class:`Case` lists only the fields its Go case states. Where Go states a value it never asserts and
the value is wrong, :data:`UPSTREAM_CORRECTIONS` gives kube-apiserver's real answer (three rows of
TestGetAPIRequestInfo say API prefix "api" for ``/apis/...`` URLs: the Go test does not compare the prefix).
``tests/fuzz/test_fuzz_requestinfo.py`` checks every row, corrections included, against the oracle built
from the same k8s.io/apiserver, so this data is kube-apiserver's answer, not our reading of it.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple


class Case(NamedTuple):
    source: str  # the Go test, or "attacker" for the rows added here
    name: str  # the Go case name (the URL where Go has none), or what the attacker tries
    method: str
    url: str
    expected: dict[str, Any]  # RequestInfo field -> value, only what the case states


def _api(method: str, url: str, *values: str) -> Case:
    """A TestGetAPIRequestInfo success row: verb, prefix, group, version, namespace, resource, subresource,
    name (and a resource request)."""
    keys = ("verb", "api_prefix", "api_group", "api_version", "namespace", "resource", "subresource", "name")
    return Case(
        "TestGetAPIRequestInfo", url, method, url, {"is_resource_request": True, **dict(zip(keys, values, strict=True))}
    )


GET, HEAD, POST, PUT, PATCH, DELETE = "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"

API_REQUEST_INFO: Final = [
    # resource paths
    _api(GET, "/api/v1/namespaces", "list", "api", "", "v1", "", "namespaces", "", ""),
    _api(GET, "/api/v1/namespaces/other", "get", "api", "", "v1", "other", "namespaces", "", "other"),
    _api(GET, "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", ""),
    _api(GET, "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    _api(HEAD, "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    _api(GET, "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    _api(HEAD, "/api/v1/pods", "list", "api", "", "v1", "", "pods", "", ""),
    _api(GET, "/api/v1/namespaces/other/pods/foo", "get", "api", "", "v1", "other", "pods", "", "foo"),
    _api(GET, "/api/v1/namespaces/other/pods", "list", "api", "", "v1", "other", "pods", "", ""),
    # special verbs
    _api(GET, "/api/v1/proxy/namespaces/other/pods/foo", "proxy", "api", "", "v1", "other", "pods", "", "foo"),
    _api(
        GET,
        "/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource",
        *("proxy", "api", "", "v1", "other", "pods", "", "foo"),
    ),
    _api(GET, "/api/v1/watch/pods", "watch", "api", "", "v1", "", "pods", "", ""),
    _api(GET, "/api/v1/pods?watch=true", "watch", "api", "", "v1", "", "pods", "", ""),
    _api(GET, "/api/v1/pods?watch=false", "list", "api", "", "v1", "", "pods", "", ""),
    _api(GET, "/api/v1/watch/namespaces/other/pods", "watch", "api", "", "v1", "other", "pods", "", ""),
    _api(GET, "/api/v1/namespaces/other/pods?watch=1", "watch", "api", "", "v1", "other", "pods", "", ""),
    _api(GET, "/api/v1/namespaces/other/pods?watch=0", "list", "api", "", "v1", "other", "pods", "", ""),
    # subresource identification
    _api(GET, "/api/v1/namespaces/other/pods/foo/status", "get", "api", "", "v1", "other", "pods", "status", "foo"),
    _api(
        GET, "/api/v1/namespaces/other/pods/foo/proxy/subpath", "get", "api", "", "v1", "other", "pods", "proxy", "foo"
    ),
    _api(
        PUT, "/api/v1/namespaces/other/finalize", "update", "api", "", "v1", "other", "namespaces", "finalize", "other"
    ),
    _api(PUT, "/api/v1/namespaces/other/status", "update", "api", "", "v1", "other", "namespaces", "status", "other"),
    # verb identification
    _api(PATCH, "/api/v1/namespaces/other/pods/foo", "patch", "api", "", "v1", "other", "pods", "", "foo"),
    _api(DELETE, "/api/v1/namespaces/other/pods/foo", "delete", "api", "", "v1", "other", "pods", "", "foo"),
    _api(POST, "/api/v1/namespaces/other/pods", "create", "api", "", "v1", "other", "pods", "", ""),
    # deletecollection verb identification
    _api(DELETE, "/api/v1/nodes", "deletecollection", "api", "", "v1", "", "nodes", "", ""),
    _api(DELETE, "/api/v1/namespaces", "deletecollection", "api", "", "v1", "", "namespaces", "", ""),
    _api(DELETE, "/api/v1/namespaces/other/pods", "deletecollection", "api", "", "v1", "other", "pods", "", ""),
    _api(
        DELETE,
        "/apis/extensions/v1/namespaces/other/pods",
        *("deletecollection", "api", "extensions", "v1", "other", "pods", "", ""),
    ),
    # api group identification
    _api(
        POST, "/apis/extensions/v1/namespaces/other/pods", "create", "api", "extensions", "v1", "other", "pods", "", ""
    ),
    # api version identification
    _api(
        POST,
        "/apis/extensions/v1beta3/namespaces/other/pods",
        *("create", "api", "extensions", "v1beta3", "other", "pods", "", ""),
    ),
] + [
    # the error cases: not resource requests (and no error)
    Case("TestGetAPIRequestInfo", name, GET, url, {"is_resource_request": False})
    for name, url in [
        ("no resource path", "/"),
        ("just apiversion", "/api/version/"),
        ("just prefix, group, version", "/apis/group/version/"),
        ("apiversion with no resource", "/api/version/"),
        ("bad prefix", "/badprefix/version/resource"),
        ("missing api group", "/apis/version/resource"),
    ]
]

# Go states "api" for these and never compares it; kube-apiserver answers "apis".
UPSTREAM_CORRECTIONS: Final = {
    (DELETE, "/apis/extensions/v1/namespaces/other/pods"): {"api_prefix": "apis"},
    (POST, "/apis/extensions/v1/namespaces/other/pods"): {"api_prefix": "apis"},
    (POST, "/apis/extensions/v1beta3/namespaces/other/pods"): {"api_prefix": "apis"},
}

NON_API_REQUEST_INFO: Final = [
    Case("TestGetNonAPIRequestInfo", name, GET, url, {"is_resource_request": resource})
    for name, url, resource in [
        ("simple groupless", "/api/version/resource", True),
        ("simple group", "/apis/group/version/resource/name/subresource", True),
        ("more steps", "/api/version/resource/name/subresource", True),
        ("group list", "/apis/batch/v1/job", True),
        ("group get", "/apis/batch/v1/job/foo", True),
        ("group subresource", "/apis/batch/v1/job/foo/scale", True),
        ("bad root", "/not-api/version/resource", False),
        ("group without enough steps", "/apis/extensions/v1beta1", False),
        ("group without enough steps 2", "/apis/extensions/v1beta1/", False),
        ("not enough steps", "/api/version", False),
        ("one step", "/api", False),
        ("zero step", "/", False),
        ("empty", "", False),
    ]
]


def _selectors(name: str, method: str, url: str, expected_name: str, verb: str, fields: str, labels: str) -> Case:
    expected = {"name": expected_name, "verb": verb, "field_selector": fields, "label_selector": labels}
    return Case("TestSelectorParsing", name, method, url, expected)


SELECTOR_PARSING: Final = [
    _selectors("no selector", GET, "/apis/group/version/resource", "", "list", "", ""),
    _selectors(
        "metadata.name selector",
        GET,
        "/apis/group/version/resource?fieldSelector=metadata.name=name1",
        *("name1", "list", "metadata.name=name1", ""),
    ),
    _selectors(
        "metadata.name selector with watch",
        GET,
        "/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1",
        *("name1", "watch", "metadata.name=name1", ""),
    ),
    _selectors(
        "random selector",
        GET,
        "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux",
        *("", "list", "foo=bar", "baz=qux"),
    ),
    _selectors(
        "invalid selector with metadata.name",
        GET,
        "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo",
        *("", "list", "metadata.name=name1,foo", ""),
    ),
    _selectors(
        "invalid selector with metadata.name with watch",
        GET,
        "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true",
        *("", "watch", "metadata.name=name1,foo", ""),
    ),
    _selectors(
        "invalid selector with metadata.name with watch false",
        GET,
        "/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false",
        *("", "list", "metadata.name=name1,foo", ""),
    ),
    _selectors(
        "selector on deletecollection is honored",
        DELETE,
        "/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux",
        *("", "deletecollection", "foo=bar", "baz=qux"),
    ),
    _selectors(
        "selector on repeated param matches parsed param",
        GET,
        "/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar"
        "&labelSelector=foo=bar&labelSelector=foo=baz",
        *("foo", "list", "metadata.name=foo", "foo=bar"),
    ),
    _selectors(
        "selector on other verb is ignored",
        GET,
        "/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar",
        *("name", "get", "", ""),
    ),
    _selectors(
        "selector on deprecated root type watch is not parsed",
        GET,
        "/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar",
        *("", "watch", "", ""),
    ),
    _selectors(
        "selector on deprecated root item watch is not parsed",
        GET,
        "/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar",
        *("name", "watch", "", ""),
    ),
]


def _attack(attack: str, method: str, url: str, **expected: Any) -> Case:
    return Case("attacker", attack, method, url, expected)


NS = "/api/v1/namespaces/default"
# What an attacker tries, and what kube-apiserver (the oracle) answers. A row states the fields the attack is
# about; the oracle test compares them all the same.
ATTACKER: Final = [
    # %2F is decoded before the path is split: the name is "admin", not a resource "roles/admin"
    _attack(
        "%2F between resource and name",
        GET,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles%2Fadmin",
        verb="get",
        resource="roles",
        name="admin",
    ),
    _attack(
        "%2F between secrets and a name",
        GET,
        f"{NS}/secrets%2Fdb-password",
        verb="get",
        resource="secrets",
        name="db-password",
    ),
    _attack(
        "%2F inside the namespace scope",
        GET,
        "/api/v1/namespaces%2Fkube-system%2Fsecrets",
        verb="list",
        namespace="kube-system",
        resource="secrets",
    ),
    _attack("%2f in lower case", DELETE, f"{NS}/secrets%2fdb", verb="delete", resource="secrets", name="db"),
    # the first of repeated parameters counts
    _attack("watch=false then watch=true", GET, f"{NS}/pods?watch=false&watch=true", verb="list"),
    _attack("watch=true then watch=false", GET, f"{NS}/pods?watch=true&watch=false", verb="watch"),
    # any value but 0 and false (any case) is a watch, the empty one too
    _attack("watch=TRUE", GET, f"{NS}/pods?watch=TRUE", verb="watch"),
    _attack("watch=1", GET, f"{NS}/pods?watch=1", verb="watch"),
    _attack("watch=t", GET, f"{NS}/pods?watch=t", verb="watch"),
    _attack("watch=yes", GET, f"{NS}/pods?watch=yes", verb="watch"),
    _attack("watch=", GET, f"{NS}/pods?watch=", verb="watch"),
    _attack("watch without a value", GET, f"{NS}/pods?watch", verb="watch"),
    _attack("watch=FALSE", GET, f"{NS}/pods?watch=FALSE", verb="list"),
    _attack("watch=00", GET, f"{NS}/pods?watch=00", verb="watch"),
    _attack("watch=false with a long s (EqualFold)", GET, f"{NS}/pods?watch=fal%C5%BFe", verb="list"),
    _attack(
        "watch=false with a long s, options that fail to decode (ToLower)",
        GET,
        f"{NS}/pods?watch=fal%C5%BFe&limit=x",
        verb="watch",
    ),
    _attack("an escaped parameter name", GET, f"{NS}/pods?%77atch=true", verb="watch"),
    _attack("a + in the parameter name is a space", GET, f"{NS}/pods?watch+=true", verb="list"),
    _attack("a pair with a ; is dropped", GET, f"{NS}/pods?watch=true;x", verb="list"),
    _attack("a pair with a bad escape is dropped", GET, f"{NS}/pods?watch=%zz&watch=true", verb="watch"),
    _attack("more than 10000 parameters are none", GET, f"{NS}/pods?watch=true" + "&" * 10000, verb="list"),
    # the object a list or watch is about
    _attack(
        "repeated fieldSelector: the first counts",
        GET,
        f"{NS}/secrets?fieldSelector=metadata.name%3Da&fieldSelector=metadata.name%3Db",
        verb="list",
        name="a",
        field_selector="metadata.name=a",
    ),
    _attack(
        "two metadata.name terms: the first in byte order counts",
        GET,
        f"{NS}/secrets?fieldSelector=metadata.name%3Db,metadata.name%3Da",
        verb="list",
        name="a",
    ),
    _attack("metadata.name==", GET, f"{NS}/secrets?fieldSelector=metadata.name==db", verb="list", name="db"),
    _attack("metadata.name===", GET, f"{NS}/secrets?fieldSelector=metadata.name===db", verb="list", name=""),
    _attack("metadata.name!=", GET, f"{NS}/secrets?fieldSelector=metadata.name!=db", verb="list", name=""),
    _attack("a space before the operator", GET, f"{NS}/secrets?fieldSelector=metadata.name+=db", verb="list", name=""),
    _attack("an escaped comma in the name", GET, f"{NS}/secrets?fieldSelector=metadata.name=a%5C,b", name="a,b"),
    _attack("a name of ..", GET, f"{NS}/secrets?fieldSelector=metadata.name=%2E%2E", verb="list", name=""),
    _attack("a name with /", GET, f"{NS}/secrets?fieldSelector=metadata.name=a%2Fb", verb="list", name=""),
    _attack(
        "a label selector that does not parse",
        GET,
        f"{NS}/secrets?fieldSelector=metadata.name=db&labelSelector=!!",
        name="",
    ),
    _attack("a limit that is not an int64", GET, f"{NS}/secrets?fieldSelector=metadata.name=db&limit=1_0", name=""),
    _attack(
        "a watch on one object",
        GET,
        f"{NS}/secrets?watch=1&fieldSelector=metadata.name=db&labelSelector=app+in+(a,b),!c&limit=5",
        verb="watch",
        name="db",
        label_selector="app in (a,b),!c",
    ),
    _attack(
        "DELETE without a name: the selector names nothing",
        DELETE,
        f"{NS}/pods?fieldSelector=metadata.name=web",
        verb="deletecollection",
        name="",
        field_selector="metadata.name=web",
    ),
    # dot segments and empty segments are not cleaned away
    _attack(
        "..",
        GET,
        f"{NS}/pods/../../kube-system/secrets",
        verb="get",
        namespace="default",
        resource="pods",
        name="..",
        subresource="..",
    ),
    _attack(
        "%2e%2e",
        GET,
        f"{NS}/pods/%2e%2e/%2E%2E/kube-system/secrets",
        verb="get",
        namespace="default",
        resource="pods",
        name="..",
        subresource="..",
        path=f"{NS}/pods/../../kube-system/secrets",
    ),
    _attack(
        "// after the version",
        GET,
        "/api/v1//namespaces/default/pods",
        verb="get",
        namespace="",
        resource="",
        name="namespaces",
        subresource="default",
    ),
    _attack("// before api", GET, "//api/v1/pods", verb="list", resource="pods"),
    _attack("a trailing /", GET, "/api/v1/pods/", verb="list", resource="pods", name=""),
    _attack("an empty namespace", GET, "/api/v1/namespaces//pods", verb="list", namespace="", resource="pods"),
    _attack("an escaped verb segment", GET, "/api/v1/%77atch/pods", verb="watch", resource="pods"),
    _attack("a # in the path is data", GET, f"{NS}/pods#x", verb="list", resource="pods#x"),
    _attack("a + in the path is a +", GET, "/api/v1/namespaces/a+b/pods", namespace="a+b"),
    _attack("API in capitals is not the API", GET, "/API/v1/pods", is_resource_request=False, verb="get"),
    # not ASCII
    _attack("UTF-8 in a namespace", GET, "/api/v1/namespaces/caf%C3%A9/pods", namespace="café"),
    _attack("a byte that is not UTF-8", GET, "/api/v1/namespaces/%FF/pods", namespace="\ufffd"),
    _attack(
        "a cut UTF-8 sequence: one U+FFFD per byte", GET, "/api/v1/namespaces/%E2%82/pods", namespace="\ufffd\ufffd"
    ),
    # the verb
    _attack("an unknown method on a resource has no verb", "OPTIONS", f"{NS}/pods", verb=""),
    _attack("the watch segment makes any method a watch", POST, "/api/v1/watch/pods", verb="watch"),
    _attack(
        "a watch on one object, in the path",
        GET,
        "/api/v1/watch/namespaces/default/pods/web",
        verb="watch",
        name="web",
    ),
    _attack(
        "a proxy has no subresource",
        GET,
        "/api/v1/proxy/namespaces/default/pods/web/status",
        verb="proxy",
        subresource="",
    ),
    _attack(
        "watch with nothing after it (kube-apiserver answers 500)",
        GET,
        "/api/v1/watch",
        is_resource_request=True,
        verb="get",
        resource="",
    ),
]

ALL_CASES: Final = [*API_REQUEST_INFO, *NON_API_REQUEST_INFO, *SELECTOR_PARSING, *ATTACKER]


def expected(case: Case) -> dict[str, Any]:
    """The fields a case states, with kube-apiserver's real answer where the Go table is wrong."""
    return {**case.expected, **UPSTREAM_CORRECTIONS.get((case.method, case.url), {})}


# requestURI as kube-apiserver's audit events record it (Go's URL.RequestURI()): the path as sent when Go
# would send it so, else Go's escaping of the decoded path (an escaped / is then lost); the query as sent.
REQUEST_URIS: Final = [
    ("/api/v1/namespaces/default/pods?watch=1", "/api/v1/namespaces/default/pods?watch=1"),
    (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles%2Fadmin",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles%2Fadmin",
    ),
    ('/api/v1/namespaces/a"b/pods', "/api/v1/namespaces/a%22b/pods"),
    ('/api/v1/namespaces/a"b%2Fc/pods', "/api/v1/namespaces/a%22b/c/pods"),
    ("/api/v1/namespaces/default/pods#x", "/api/v1/namespaces/default/pods%23x"),
    ("/api/v1/{|}/x?a={|}", "/api/v1/%7B%7C%7D/x?a={|}"),
    ("/api/v1/!'()*[]$&+,;=:@/x", "/api/v1/!'()*[]$&+,;=:@/x"),
    ("/a\\b%5C", "/a%5Cb%5C"),
    ("/api?", "/api?"),
    ("/api??x", "/api??x"),
]
