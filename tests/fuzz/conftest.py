"""The fuzz budget: ``FUZZ_SECONDS`` in total (default: a short run, for ``make test``), shared equally by the
fuzz targets collected in this session; a summary line per target at the end.

- ``FUZZ_SECONDS=N``: N seconds in all, with a fresh random first seed (``make fuzz`` sets 600).
- ``FUZZ_SEED=S``: seeds S, S+1, ... (to run again the batch a failure names).
- neither: ``SHORT_RUN_SECONDS`` with seeds 0, 1, 2, ...: every run starts with the same examples, and
  how far it gets depends only on the machine's speed; nothing here asserts anything about time.
"""

from __future__ import annotations

import os
import secrets
from typing import Final

import pytest

from tests.fuzz.runner import Campaign, Outcome

SHORT_RUN_SECONDS: Final = 24.0
# pytest-timeout's default (60 s) is for ordinary tests; a target gets its share, plus room for a slow
# machine and for Hypothesis to shrink a failure.
TIMEOUT_SLACK_SECONDS: Final = 120.0

_SHARE = pytest.StashKey[float]()
_FIRST_SEED = pytest.StashKey[int]()
_OUTCOMES = pytest.StashKey[list[Outcome]]()


def _env_number(name: str) -> float | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise pytest.UsageError(f"{name} must be a number, not {text!r}") from None


@pytest.hookimpl(trylast=True)  # after -k and -m deselected what will not run
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    targets = [item for item in items if "fuzz_campaign" in getattr(item, "fixturenames", ())]
    if not targets:
        return
    total = _env_number("FUZZ_SECONDS")
    first_seed = _env_number("FUZZ_SEED")
    config.stash[_SHARE] = (SHORT_RUN_SECONDS if total is None else max(total, 0.0)) / len(targets)
    if first_seed is not None:
        config.stash[_FIRST_SEED] = int(first_seed)
    else:
        config.stash[_FIRST_SEED] = 0 if total is None else secrets.randbits(32)
    config.stash[_OUTCOMES] = []
    for item in targets:
        item.add_marker(pytest.mark.timeout(config.stash[_SHARE] + TIMEOUT_SLACK_SECONDS), append=False)


@pytest.fixture
def fuzz_campaign(request: pytest.FixtureRequest) -> Campaign:
    config = request.config
    outcome = Outcome(request.node.nodeid)
    config.stash[_OUTCOMES].append(outcome)
    return Campaign(outcome, seconds=config.stash[_SHARE], first_seed=config.stash[_FIRST_SEED])


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    outcomes = config.stash.get(_OUTCOMES, [])
    if not outcomes:
        return
    share = config.stash[_SHARE]
    terminalreporter.section("fuzz")
    terminalreporter.write_line(
        f"{len(outcomes)} targets, {share:.1f} s each, first seed {config.stash[_FIRST_SEED]} "
        "(FUZZ_SECONDS=N for N seconds in all)"
    )
    for o in outcomes:
        verdict = "no failure" if o.failed_seed is None else f"FAILED in the batch with seed {o.failed_seed}"
        terminalreporter.write_line(f"{o.name}: {o.examples} examples in {o.seconds:.1f} s, {verdict}")
    total = sum(o.examples for o in outcomes)
    failed = sum(o.failed_seed is not None for o in outcomes)
    terminalreporter.write_line(f"fuzz: {total} examples, {failed} failed target{'' if failed == 1 else 's'}")
