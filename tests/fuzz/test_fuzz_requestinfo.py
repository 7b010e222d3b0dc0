"""Fuzz target: request info, differentially, against kube-apiserver's own code.

The oracle (``tests/e2e/cluster/k8s/requestinfo``, built by ``make cluster``) is k8s.io/apiserver's
RequestInfoFactory behind Go's HTTP request parser, at the versions the end-to-end cluster runs. Hostile
request targets (%-encoded ``/`` and ``.``, ``..``, empty segments, bad escapes, bytes that are not UTF-8,
repeated and oddly spelled ``watch``, ``follow`` and selector parameters, selectors at the edge of their
grammar, ``;`` and ``+`` in the query, the verb in the path) go to both. What must hold:

- what Go's HTTP server refuses (400 before any handler) the proxy's request reader refuses too;
- for every target Go accepts, ``request_info`` gives kube-apiserver's answer in every field audit and
  metrics use (resource request or not, path, verb, API prefix, group and version, namespace, resource,
  subresource, name, field and label selectors), and ``request_uri`` the requestURI of its audit events;
- ``is_long_running`` is exactly kube-apiserver's watch verb or a followed pod log, and never a request
  kube-apiserver does not itself treat as long-running.

Without the oracle (no Go to build it) the module is skipped, loudly; with ``CI=true`` it fails instead.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import urllib.parse
from typing import Any, Final

import pytest
from hypothesis import strategies as st

from kube_oidc_proxy.errors import ClientProtocolError
from kube_oidc_proxy.http1.request import RequestReader
from kube_oidc_proxy.requestinfo import is_long_running, request_info, request_uri
from tests.e2e.cluster import build
from tests.fuzz.runner import fuzz
from tests.unit.k8s_requestinfo_cases import ALL_CASES, REQUEST_URIS, expected

# The oracle's JSON names for RequestInfo's fields.
FIELDS: Final = {
    "isResourceRequest": "is_resource_request",
    "path": "path",
    "verb": "verb",
    "apiPrefix": "api_prefix",
    "apiGroup": "api_group",
    "apiVersion": "api_version",
    "namespace": "namespace",
    "resource": "resource",
    "subresource": "subresource",
    "name": "name",
    "fieldSelector": "field_selector",
    "labelSelector": "label_selector",
}


class Oracle:
    """One oracle process for the session: a line asked, a line answered."""

    def __init__(self, binary: str) -> None:
        self.process = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def ask(self, method: bytes, target: bytes) -> dict[str, Any]:
        assert b"\n" not in target and b"\r" not in target, "one request per line"
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        stdin.write(method + b" " + target + b"\n")
        stdin.flush()
        answer: dict[str, Any] = json.loads(stdout.readline())
        return answer

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=10)


@functools.cache
def oracle() -> Oracle:
    binary = build.requestinfo_oracle_path()
    if not binary.exists():
        try:
            binary = build.requestinfo_oracle()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            message = f"REQUEST-INFO ORACLE MISSING ({exc}): run make cluster"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(f"CI=true but the request-info oracle cannot run: {message}", pytrace=False)
            print(f"\n{'!' * len(message)}\n{message}\n{'!' * len(message)}")
            pytest.skip(message)
    return Oracle(str(binary))


@pytest.fixture(scope="module", autouse=True)
def _oracle_running() -> Any:
    oracle()  # skips or fails the module here, not inside a Hypothesis run
    yield
    if oracle.cache_info().currsize:
        oracle().close()
        oracle.cache_clear()


def reader_refuses(method: bytes, target: bytes) -> bool:
    try:
        RequestReader().feed(method + b" " + target + b" HTTP/1.1\r\nHost: proxy\r\n\r\n")
    except ClientProtocolError:
        return True
    return False


def assert_agrees(method: bytes, target: bytes, go: dict[str, Any]) -> None:
    ours = request_info(method, target)
    theirs = {name: go[key] for key, name in FIELDS.items()}
    assert ours._asdict() == theirs, (method, target)
    assert request_uri(target) == go["requestURI"], (method, target)
    streams = method == b"GET" and (
        go["verb"] == "watch"
        or (go["resource"], go["subresource"], go["verb"], go["follow"]) == ("pods", "log", "get", True)
    )
    assert is_long_running(method, target) is streams, (method, target)
    assert not streams or go["longRunning"]


# -- the ported table, against the oracle: the data itself is kube-apiserver's answer ---------------------


def test_every_row_of_the_ported_table_is_kube_apiservers_answer() -> None:
    for case in ALL_CASES:
        go = oracle().ask(case.method.encode(), case.url.encode())
        if not case.url:  # only Go's own test builds a request without a target; its server refuses one
            assert go["refused"]
            continue
        assert not go.get("refused"), case
        stated = expected(case)
        assert {name: go[key] for key, name in FIELDS.items() if name in stated} == stated, case
    for target, uri in REQUEST_URIS:
        assert oracle().ask(b"GET", target.encode())["requestURI"] == uri


# -- hostile targets ----------------------------------------------------------------------------------------

METHODS: Final = [b"GET", b"GET", b"GET", b"GET", b"GET", b"HEAD", b"POST", b"PUT", b"PATCH", b"DELETE", b"OPTIONS"]
SEGMENTS: Final = [
    "api",
    "apis",
    "v1",
    "apps",
    "rbac.authorization.k8s.io",
    "namespaces",
    "default",
    "kube-system",
    "pods",
    "secrets",
    "roles",
    "web",
    "status",
    "finalize",
    "watch",
    "proxy",
    "log",
    "exec",
    "scale",
    "",
    ".",
    "..",
    "API",
    "Watch",
    "healthz",
    "*",
]
# Spellings that are one thing to a reader of the raw target and another to one that decodes it first.
ENCODED: Final = [
    "%2F",
    "%2f",
    "roles%2Fname",
    "%2e",
    "%2E%2e",
    "%61pi",
    "%77atch",
    "%6Eamespaces",
    "%00",
    "%20",
    "%3F",
    "%23",
    "%25",
    "%C3%A9",
    "%C5%BF",
    "%FF",
    "%ED%A0%80",
    "%E2%82",
    "%F0%9F%98%80",
    "%zz",
    "%",
    "%2",
    "%%",
    "+",
    "#",
    '"',
    "<>",
    "{|}",
    "\\",
    "^`",
    "!'()*",
    "[]",
    "@:;=&$,",
    "\x7f",
    "\x01",
    "\t",
]
# Raw bytes: the proxy's reader refuses them; Go reads them, and request_info must too.
RAW: Final = [b"\xc3\xa9", b"\xff", b"\xe2\x82", b"\xc5\xbf"]

QUERY_KEYS: Final = [
    "watch",
    "watch",
    "fieldSelector",
    "fieldSelector",
    "fieldSelector",
    "labelSelector",
    "labelSelector",
    "labelSelector",
    "follow",
    "follow",
    "limit",
    "timeoutSeconds",
    "resourceVersion",
    "WATCH",
    "%77atch",
    "watch+",
    "wat%63h",
    "watch%00",
    "",
    "x",
]
FLAG_VALUES: Final = [
    "true",
    "false",
    "0",
    "1",
    "",
    "TRUE",
    "False",
    "fAlSe",
    "t",
    "yes",
    "no",
    "fal\u017fe",
    "FAL\u017fE",
    "fal se",
    "false ",
    "00",
    "%zz",
]
INTEGER_VALUES: Final = [
    "5",
    "+5",
    "-1",
    "0x10",
    "1_000",
    " 5",
    "",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
]
NAMES: Final = [
    "foo",
    "web",
    "db",
    "a",
    "b",
    "",
    ".",
    "..",
    "a/b",
    "a%b",
    "a.b",
    "é",
    "\udcff",
    "a\\,b",
    "a\\=b",
    "a\\\\b",
    "a\\x",
    "\\",
]
FIELDS_IN_SELECTORS: Final = [
    "metadata.name",
    "metadata.name",
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "metadata.name ",
    " metadata.name",
    "",
]
FIELD_OPERATORS: Final = ["=", "=", "==", "==", "!=", "===", "=!", "!==", ""]
LABEL_PIECES: Final = [
    "a",
    "app",
    "in",
    "notin",
    "(",
    ")",
    ",",
    "!",
    "=",
    "==",
    "!=",
    ">",
    "<",
    " ",
    "\t",
    "1",
    "-1",
    "x.y/z",
    "example.com/a",
    "Example.com/a",
    "/a",
    "a/",
    "a/b/c",
    "A_b-c.d",
    "-a",
    "a-",
    "\x00",
    "é",
    "a" * 64,
    "9223372036854775808",
]
LABEL_KEYS: Final = ["app", "a", "x.y/z", "example.com/a", "Example.com/a", "in", "-a", "a" * 64, "a/b/c", "/a", "é"]
LABEL_VALUES: Final = ["web", "", "a-b", "-a", "a_", "in", "5", "-1", "+5", "a" * 63, "a" * 64, "é", "\x00"]
PRINTABLE: Final = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "?/%")


def _encode_for_query(text: str, draw: st.DrawFn) -> str:
    """Put ``text`` in a query: what would split or end it is %-escaped; a space is ``+`` or ``%20``; any
    other character may be escaped too."""
    out = []
    for c in text:
        if c == " ":
            out.append(draw(st.sampled_from(["+", "%20"])))
        elif c in "&%+#;" or not c.isascii() or not c.isprintable() or draw(st.integers(0, 9)) == 0:
            out.append(urllib.parse.quote(c.encode("utf-8", "surrogateescape"), safe=""))
        else:
            out.append(c)
    return "".join(out)


@st.composite
def segments(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 5))
    if kind <= 1:
        return draw(st.sampled_from(SEGMENTS)).encode()
    if kind == 2:
        return draw(st.sampled_from(ENCODED)).encode("latin-1")
    if kind == 3:
        return draw(st.text(PRINTABLE, max_size=6)).encode()
    if kind == 4:  # a segment with some of its characters %-encoded
        word = draw(st.sampled_from(SEGMENTS))
        return "".join(f"%{ord(c):02X}" if draw(st.booleans()) else c for c in word).encode()
    return draw(st.sampled_from(SEGMENTS)).encode() + draw(
        st.sampled_from([*[e.encode("latin-1") for e in ENCODED], *RAW])
    )


@st.composite
def field_selectors(draw: st.DrawFn) -> str:
    terms = draw(
        st.lists(
            st.tuples(st.sampled_from(FIELDS_IN_SELECTORS), st.sampled_from(FIELD_OPERATORS), st.sampled_from(NAMES)),
            max_size=3,
        )
    )
    return ",".join(f + op + v for f, op, v in terms)


@st.composite
def label_requirements(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(LABEL_KEYS))
    form = draw(st.integers(0, 4))
    if form == 0:
        return draw(st.sampled_from(["", "!"])) + key
    if form == 1:
        op = draw(st.sampled_from(["=", "==", "!=", ">", "<"]))
        return key + draw(st.sampled_from(["", " "])) + op + draw(st.sampled_from(LABEL_VALUES))
    if form == 2:
        values = draw(st.lists(st.sampled_from(LABEL_VALUES), max_size=3))
        return key + draw(st.sampled_from([" in ", " notin ", " in", "in "])) + "(" + ",".join(values) + ")"
    return "".join(draw(st.lists(st.sampled_from(LABEL_PIECES), max_size=6)))


@st.composite
def label_selectors(draw: st.DrawFn) -> str:
    return draw(st.sampled_from([",", ", ", " ,"])).join(draw(st.lists(label_requirements(), max_size=3)))


@st.composite
def query_values(draw: st.DrawFn, key: str) -> str:
    if key.lower().startswith(("watch", "%77", "wat", "follow")):
        text = draw(st.sampled_from(FLAG_VALUES))
    elif key == "fieldSelector":
        text = draw(field_selectors())
    elif key == "labelSelector":
        text = draw(label_selectors())
    elif key in ("limit", "timeoutSeconds"):
        text = draw(st.sampled_from(INTEGER_VALUES))
    else:
        text = draw(st.text(PRINTABLE, max_size=4))
    if "%" in text and all(c.isascii() and c.isprintable() and c not in " &#;+" for c in text) and draw(st.booleans()):
        return text  # as it is, a bad escape included
    return _encode_for_query(text, draw)


@st.composite
def queries(draw: st.DrawFn) -> bytes:
    pairs = []
    for _ in range(draw(st.integers(0, 5))):
        key = draw(st.sampled_from(QUERY_KEYS))
        form = draw(st.integers(0, 9))
        if form == 0:
            pairs.append(key)  # no "="
        elif form == 1:
            pairs.append("")  # "&&"
        else:
            pair = key + "=" + draw(query_values(key))
            pairs.append(pair + ";x" if form == 2 else pair)
    if not pairs and draw(st.booleans()):
        return b""
    return draw(st.sampled_from([b"?", b"?", b"?", b"??", b"?#"])) + "&".join(pairs).encode("latin-1")


@st.composite
def resource_paths(draw: st.DrawFn) -> list[bytes]:
    """A path as clients write them, ``/api/v1/...`` or ``/apis/<group>/<version>/...``, then made hostile:
    segments swapped for odd spellings, joined by ``%2F``, doubled, emptied, or ``..`` put between them."""
    segs = (
        [b"api", b"v1"]
        if draw(st.booleans())
        else [b"apis", draw(st.sampled_from([b"apps", b"rbac.authorization.k8s.io"])), b"v1"]
    )
    shape = draw(st.integers(0, 19))
    if shape == 0:  # the verb in the path, and nothing after it
        return [*segs, draw(st.sampled_from([b"watch", b"proxy"]))]
    if shape == 1:
        segs.append(draw(st.sampled_from([b"watch", b"proxy"])))
    if shape in (2, 3):  # a pod's log (followed or not: see queries)
        segs += [b"namespaces", b"default", b"pods", b"web", b"log"]
    else:
        if draw(st.booleans()):
            segs += [b"namespaces", draw(st.sampled_from([b"default", b"kube-system", b""]))]
        segs.append(draw(st.sampled_from([b"pods", b"secrets", b"roles", b"namespaces", b"status", b"deployments"])))
        for extra in (b"web", b"log", b"x"):
            if not draw(st.booleans()):
                break
            segs.append(draw(st.sampled_from([extra, b"status", b"log", b"exec", b"scale", b"finalize"])))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(segs) - 1))
        how = draw(st.integers(0, 3))
        if how == 0:
            segs[at] = draw(segments())
        elif how == 1 and at + 1 < len(segs):
            segs[at : at + 2] = [segs[at] + draw(st.sampled_from([b"%2F", b"%2f"])) + segs[at + 1]]
        elif how == 2:
            segs.insert(at, draw(st.sampled_from([b"", b"..", b"%2e%2e", b".", b"%2E"])))
        else:
            segs[at] = b"".join(b"%%%02X" % c if draw(st.booleans()) else bytes([c]) for c in segs[at])
    return segs


@st.composite
def targets(draw: st.DrawFn) -> bytes:
    segs = draw(st.lists(segments(), max_size=8)) if draw(st.integers(0, 4)) == 0 else draw(resource_paths())
    path = b"/" + b"/".join(segs)
    if draw(st.integers(0, 4)) == 0:
        path = draw(st.sampled_from([b"/", b"//", b"/./"])) + path.lstrip(b"/")
    if draw(st.integers(0, 4)) == 0:
        path += b"/"
    return path + draw(queries())


@fuzz(method=st.sampled_from(METHODS), target=targets())
def test_request_info_is_kube_apiservers_for_any_target(method: bytes, target: bytes) -> None:
    go = oracle().ask(method, target)
    if go.get("refused"):
        assert reader_refuses(method, target), (method, target, go["refused"])
        return
    assert_agrees(method, target, go)


LABEL_CHARACTERS: Final = "ab1.-_/()!=<>, \tinot\x00é"
INTEGER_CHARACTERS: Final = "+-0123456789_ x"


@st.composite
def list_queries(draw: st.DrawFn) -> bytes:
    """One list or watch query, dense in what decides whether kube-apiserver's list options decode: a
    selector on metadata.name, the label selector's grammar, the integer options, the watch flag."""
    pairs = [("fieldSelector", draw(st.one_of(st.just("metadata.name=probe"), field_selectors())))]
    pairs.append(("labelSelector", draw(st.one_of(label_selectors(), st.text(LABEL_CHARACTERS, max_size=12)))))
    for option in ("limit", "timeoutSeconds"):
        if draw(st.booleans()):
            pairs.append(
                (option, draw(st.one_of(st.sampled_from(INTEGER_VALUES), st.text(INTEGER_CHARACTERS, max_size=21))))
            )
    if draw(st.booleans()):
        pairs.append(("watch", draw(st.one_of(st.sampled_from(FLAG_VALUES), st.text(max_size=6)))))
    pairs = draw(st.permutations(pairs))
    return "&".join(key + "=" + _encode_for_query(value, draw) for key, value in pairs).encode("ascii")


@fuzz(query=list_queries())
def test_list_options_decode_as_kube_apiservers(query: bytes) -> None:
    target = b"/api/v1/namespaces/default/pods?" + query
    assert_agrees(b"GET", target, oracle().ask(b"GET", target))
