"""login.text: outside text made one bounded, printable line."""

from __future__ import annotations

from kube_oidc_proxy.login.text import MAX_TEXT, one_line


def test_controls_and_line_breaks_become_question_marks() -> None:
    assert one_line("a\r\nb\x00c\td\u2028e") == "a??b?c?d?e"


def test_long_text_is_cut_with_an_ellipsis() -> None:
    assert one_line("x" * MAX_TEXT) == "x" * MAX_TEXT
    assert one_line("x" * (MAX_TEXT + 1)) == "x" * MAX_TEXT + "…"
    assert one_line("x" * 10_000_000, 5) == "xxxxx…"


def test_printable_text_is_kept() -> None:
    assert one_line("gold tier only: café <b>") == "gold tier only: café <b>"
