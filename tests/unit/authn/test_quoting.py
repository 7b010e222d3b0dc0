"""quoting: token values in a rejection reason are Go-quoted, printable, and bounded however hostile."""

from __future__ import annotations

from typing import Any

import pytest

from kube_oidc_proxy.authn.quoting import CLAIM_CHARS, LIST_ITEMS, VALUE_CHARS, claim, listed, message, quoted

TEN_KB = "A" * 10_240


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("https://issuer.example", '"https://issuer.example"', id="plain-text-as-is"),
        pytest.param("", '""', id="empty"),
        pytest.param("älice 名前", '"älice 名前"', id="printable-non-ascii-as-is"),
        pytest.param('say "hi" \\o/', '"say \\"hi\\" \\\\o/"', id="quote-and-backslash"),
        pytest.param("a\nINFO forged line", '"a\\nINFO forged line"', id="newline"),
        pytest.param("a\r\nb\tc", '"a\\r\\nb\\tc"', id="crlf-tab"),
        pytest.param("\x1b[31mred\x1b[0m", '"\\x1b[31mred\\x1b[0m"', id="ansi-colour"),
        pytest.param("\x1b]0;owned\x07", '"\\x1b]0;owned\\a"', id="ansi-window-title"),
        pytest.param("\x00\x7f", '"\\x00\\x7f"', id="nul-del"),
        pytest.param("\x85\u2028\u2029", '"\\u0085\\u2028\\u2029"', id="nel-and-line-separators"),
        pytest.param("abc\u202edcba", '"abc\\u202edcba"', id="bidi-override"),
        pytest.param("u\ud800", '"u\\ud800"', id="lone-surrogate"),
        pytest.param("\U000e0041", '"\\U000e0041"', id="astral-tag-character"),
    ],
)
def test_a_value_is_written_as_go_quotes_it(value: str, written: str) -> None:
    assert quoted(value) == written


def test_a_long_value_is_cut_and_says_how_long_it_was() -> None:
    text = quoted(TEN_KB)
    assert text == '"' + "A" * VALUE_CHARS + '"... (10240 characters)'


def test_a_long_value_of_escapes_is_cut_by_what_it_writes() -> None:
    text = quoted("\x1b" * 10_000)
    assert text.startswith('"\\x1b\\x1b') and text.endswith('"... (10000 characters)')
    assert len(text) <= VALUE_CHARS + 30
    assert "\x1b" not in text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param("kube", '"kube"', id="string"),
        pytest.param(["a", "b"], '["a" "b"]', id="list-as-go-writes-a-string-slice"),
        pytest.param([], "[]", id="empty-list"),
        pytest.param(None, "null", id="null"),
        pytest.param(True, "true", id="true"),
        pytest.param(False, "false", id="false"),
        pytest.param(42, "42", id="int"),
        pytest.param(1.5, "1.5", id="float"),
        pytest.param(float("inf"), "inf", id="infinity-from-a-huge-json-number"),
        pytest.param(10**60, "10000000000000000000... (61 digits)", id="huge-int"),
        pytest.param([["kube"]], '[["kube"]]', id="nested-list"),
        pytest.param([[["kube"]]], "[[[...1 item]]]", id="deeper-nesting-is-summarised"),
        pytest.param([[{"a": 1, "b": 2}]], "[[{...2 keys}]]", id="a-deep-object-is-summarised"),
        pytest.param({"k": "v", "n": 1}, '{"k":"v" "n":1}', id="object"),
        pytest.param({"a\n": "b"}, '{"a\\n":"b"}', id="object-key-escaped"),
        pytest.param([1, "x", None], '[1 "x" null]', id="mixed-list"),
    ],
)
def test_a_claim_is_written_as_its_json_type(value: Any, written: str) -> None:
    assert claim(value) == written


def test_a_long_list_shows_its_first_items_and_how_many_more() -> None:
    text = claim([f"aud-{n}" for n in range(10_000)])
    assert text.startswith('["aud-0" "aud-1"')
    assert text.endswith(f" ...{10_000 - LIST_ITEMS} more]")
    assert '"aud-10"' not in text


def test_a_claim_of_long_strings_is_bounded_as_a_whole() -> None:
    text = claim([TEN_KB] * 100 + [{"k": [TEN_KB] * 100}])
    assert len(text) <= CLAIM_CHARS + 30
    assert text.endswith(" characters)")


def test_configured_names_are_listed_like_a_claim() -> None:
    assert listed(("https://a.example", "https://b.example")) == '["https://a.example" "https://b.example"]'
    assert listed({"x": 1}) == '["x"]'


def test_a_message_is_escaped_and_bounded_but_not_quoted() -> None:
    assert message('no such key: "hd"') == 'no such key: "hd"'
    assert message("bad\nvalue \x1b[2J") == "bad\\nvalue \\x1b[2J"
    cut = message("x" * 10_000)
    assert cut.startswith("xxx") and cut.endswith("... (10000 characters)") and len(cut) < 400
