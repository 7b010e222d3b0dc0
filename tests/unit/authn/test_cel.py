"""The CEL wrapper: kube-apiserver's environment and value conventions, errors as exceptions."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from kube_oidc_proxy.authn.cel import CLAIMS, USER, Binding, CelCompileError, CelEvaluationError, Compiler, escaped

COMPILER = Compiler()


def evaluate(expression: str, claims: dict[str, Any]) -> Any:
    return COMPILER.compile(expression, CLAIMS).evaluate(Binding(CLAIMS, claims))


@pytest.mark.parametrize(
    ("expression", "claims", "result"),
    [
        ("'oidc:' + claims.sub", {"sub": "ann"}, "oidc:ann"),
        ("claims.?hd.orValue('none')", {}, "none"),  # optional types
        ("claims.?a.?b.orValue(1) == 1", {"a": {}}, True),
        ("claims.email.lowerAscii()", {"email": "Ann@Example.COM"}, "ann@example.com"),  # strings extension
        ("claims.groups.map(g, 'x:' + g)", {"groups": ["a", "b"]}, ["x:a", "x:b"]),
        ("claims.groups.join(',')", {"groups": ["a", "b"]}, "a,b"),
        ("sets.contains(claims.aud, ['k8s'])", {"aud": ["k8s", "other"]}, True),
        ("sets.equivalent(claims.aud, ['b', 'a'])", {"aud": ["a", "b"]}, True),
        ("sets.equivalent(claims.aud, ['a'])", {"aud": ["a", "b"]}, False),
        ("sets.intersects(claims.aud, ['x', 'b'])", {"aud": ["a", "b"]}, True),
        ("claims.levels.isSorted()", {"levels": [1, 2, 2]}, True),
        ("claims.levels.max()", {"levels": [1, 3, 2]}, 3.0),
        ("claims.groups.indexOf('b')", {"groups": ["a", "b", "b"]}, 1),  # list and string overloads side by side
        ("claims.groups.lastIndexOf('b')", {"groups": ["a", "b", "b"]}, 2),
        ("claims.email.indexOf('@')", {"email": "ann@example.com"}, 3),
        ("claims.exp > 1700000000", {"exp": 1800000000}, True),  # JSON numbers are doubles
        ("int(claims.n) + 1", {"n": 41}, 42),
        ("claims.foo__dot__bar", {"foo.bar": "v"}, "v"),  # kube-apiserver's escaping
        ("claims['foo.bar']", {"foo.bar": "v"}, "v"),
        ("claims.a__dash__b__slash__c", {"a-b/c": 1}, 1.0),
        ("claims.nested.x__dot__y", {"nested": {"x.y": "deep"}}, "deep"),
        ("claims.__namespace__", {"namespace": "ns"}, "ns"),
    ],
)
def test_expressions_evaluate_as_in_kube_apiserver(expression: str, claims: dict[str, Any], result: Any) -> None:
    assert evaluate(expression, claims) == result


@pytest.mark.parametrize(
    ("expression", "claims"),
    [
        ("claims.missing", {}),
        ("claims.n + 1", {"n": 1}),  # a double plus an int has no overload, as in kube-apiserver
        ("claims.s.x", {"s": "text"}),
        ("claims.l[3]", {"l": []}),
        ("claims.l.min()", {"l": []}),
    ],
)
def test_evaluation_failures_raise(expression: str, claims: dict[str, Any]) -> None:
    with pytest.raises(CelEvaluationError):
        evaluate(expression, claims)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 + 'a'", "no matching overload"),
        ("claims.", "compilation failed"),
        ("url('https://x').getHost()", "undeclared reference to 'url'"),  # a Kubernetes library we lack
        ("other.sub", "undeclared reference to 'other.sub'"),
    ],
)
def test_what_does_not_compile_is_refused_at_load(expression: str, message: str) -> None:
    with pytest.raises(CelCompileError, match=message):
        COMPILER.compile(expression, CLAIMS)


def test_validation_rules_must_be_of_type_bool() -> None:
    assert COMPILER.compile("claims.x == 'y'", CLAIMS, boolean=True).result_type == "BOOL"
    with pytest.raises(CelCompileError, match="must evaluate to bool"):
        COMPILER.compile("claims.admin", CLAIMS, boolean=True)  # dyn is not bool, as kube-apiserver says


def test_user_rules_see_the_user_not_the_claims() -> None:
    program = COMPILER.compile("user.username.startsWith('x') && 'g' in user.groups", USER, boolean=True)
    user = Binding(USER, {"username": "xena", "uid": "", "groups": ["g"], "extra": {}})
    assert program.evaluate(user) is True
    with pytest.raises(CelCompileError):
        COMPILER.compile("claims.sub == ''", USER, boolean=True)


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("plain", "plain"),
        ("a.b", "a__dot__b"),
        ("a-b", "a__dash__b"),
        ("a/b", "a__slash__b"),
        ("a__b", "a__underscores__b"),
        ("in", "__in__"),
        ("has space", None),
        ("1leading", None),
    ],
)
def test_escaped_names(name: str, alias: str | None) -> None:
    assert escaped(name) == alias


def test_an_escaped_selection_reads_the_unescaped_key_as_kube_apiserver_does() -> None:
    claims = {"a.b": "escaped", "a__dot__b": "literal"}
    assert evaluate("claims.a__dot__b", claims) == "escaped"
    assert evaluate("claims['a__dot__b']", claims) == "literal"
    assert evaluate("claims.size()", claims) == 2  # no alias keys are added to the map


@pytest.mark.parametrize(
    ("expression", "claims", "result"),
    [
        ("claims.sub", {"sub": "ann\ud800"}, "ann\ufffd"),
        ("claims.name.size()", {"name": "\udc00x"}, 2),
        ("claims.groups", {"groups": ["ok", "\ud800\udfff"]}, ["ok", "\ufffd\ufffd"]),
        ("claims['k\ufffd']", {"k\ud800": "v"}, "v"),
        ("claims.sub", {"sub": "ann", "unused": {"deep": ["\ud800"]}}, "ann"),
    ],
)
def test_a_lone_surrogate_is_read_as_u_fffd_as_kube_apiserver_decodes_it(
    expression: str, claims: dict[str, Any], result: Any
) -> None:
    # JSON's "\ud800" escape: Go's decoder gives U+FFFD; the engine (C++) could not take the Python string at all
    assert evaluate(expression, claims) == result


def test_a_user_rule_sees_u_fffd_for_a_lone_surrogate() -> None:
    program = COMPILER.compile("user.username.endsWith('\ufffd')", USER, boolean=True)
    assert program.evaluate(Binding(USER, {"username": "eve\ud800", "uid": "", "groups": [], "extra": {}})) is True


def test_one_binding_serves_every_program_of_a_token() -> None:
    binding = Binding(CLAIMS, {"sub": "ann", "n": 1})
    first = COMPILER.compile("claims.sub", CLAIMS)
    second = COMPILER.compile("claims.n == 1", CLAIMS)
    assert (first.evaluate(binding), second.evaluate(binding), first.evaluate(binding)) == ("ann", True, "ann")


def test_the_engine_is_loaded_only_when_expressions_are_compiled() -> None:
    # cel-cpp costs ~16 MB of RSS: a proxy run with the --oidc-* flags never loads it
    script = (
        "import sys; import kube_oidc_proxy.server.supervisor, kube_oidc_proxy.cli; "
        "assert 'cel_expr_python.cel' not in sys.modules; "
        "from kube_oidc_proxy.authn.cel import Compiler; Compiler(); "
        "assert 'cel_expr_python.cel' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
