"""Go ``time.Duration`` strings, as the Go proxy's duration flags (--flush-interval, ...) take them."""

from __future__ import annotations

import pytest

from kube_oidc_proxy.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("-0", 0.0),
        ("50ms", 0.05),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        ("-1s", -1.0),
        ("+2s", 2.0),
        ("300us", 0.0003),
        ("10µs", 0.00001),  # the micro sign, as Go accepts
        ("10μs", 0.00001),  # and the Greek mu
        ("7ns", 7e-9),
        (".5s", 0.5),
        ("2h45m", 9900.0),
        ("1h0m0.25s", 3600.25),
    ],
)
def test_a_go_duration_string_is_parsed_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "1x", "", "ms", "1.5", "s1", "1h-1m", "--1s", "1 s", "one second"])
def test_a_string_that_go_would_reject_raises_value_error(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
