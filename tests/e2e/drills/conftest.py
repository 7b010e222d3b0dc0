"""Fault drills: a real component fails, or a client misbehaves, in the middle of real traffic through the
proxy (the real kube-apiserver, the real IdP, real kubectl and client traffic). Each drill asserts what users
would notice and records the figure it observed (time to recover, requests lost or sent twice), printed in
a "drill figures" section at the end of the run (``make drills``).

The drills share the end-to-end suite's cluster (tests/e2e/conftest.py); a drill that breaks a component
leaves it as it found it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

FIGURES: list[str] = []


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one observed figure of this drill, e.g. ``figure("recovered in 2.1 s, 0 requests lost")``."""

    def record(text: str) -> None:
        FIGURES.append(f"{request.node.name}: {text}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("drill figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
