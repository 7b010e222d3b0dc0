"""Hypothesis on a time budget: a fuzz target runs batch after batch, each with its own seed, until its share
of the budget is spent.

Hypothesis counts examples, not seconds, so ``Campaign.run`` wraps the property in ``@given`` once per batch
of ``BATCH_EXAMPLES`` examples, with an explicit seed and no example database (nothing is written to the
repository), and stops starting batches when the time is up: a target overshoots its share by at most one
batch. A failure is shrunk and reported by Hypothesis as usual (the falsifying example), with a note naming
the batch's seed: ``FUZZ_SEED=<seed> FUZZ_SECONDS=0 pytest <target>`` runs exactly that batch again.

The seeds are 0, 1, 2, ... unless ``FUZZ_SECONDS`` or ``FUZZ_SEED`` is given (``conftest.py``), so the short
run inside ``make test`` always starts with the same examples; ``make fuzz`` draws a fresh random seed.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.strategies import SearchStrategy

# Large enough that Hypothesis's per-run setup is noise, small enough that the last batch of a slow target
# (a few ms per example) ends soon after the budget.
BATCH_EXAMPLES: Final = 100

Property = Callable[..., None]


@dataclass
class Outcome:
    """What one target did, for the summary at the end of the session."""

    name: str
    examples: int = 0
    batches: int = 0
    seconds: float = 0.0
    failed_seed: int | None = None


@dataclass
class Campaign:
    """One target's run: its share of the budget and its first seed."""

    outcome: Outcome
    seconds: float
    first_seed: int

    def run(self, prop: Property, strategies: dict[str, SearchStrategy[Any]]) -> None:
        outcome = self.outcome
        started = time.monotonic()

        def counted(*args: Any, **kwargs: Any) -> None:
            outcome.examples += 1
            prop(*args, **kwargs)

        # Hypothesis reads the parameters it fills in from the signature; and reports the property's name.
        counted.__signature__ = inspect.signature(prop)  # type: ignore[attr-defined]
        counted.__name__ = counted.__qualname__ = prop.__name__
        batch_settings = settings(
            max_examples=BATCH_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=False,
            phases=(Phase.generate, Phase.target, Phase.shrink, Phase.explain),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
            report_multiple_bugs=False,
            print_blob=False,
        )
        batch_seed = self.first_seed
        while True:
            test = batch_settings(seed(batch_seed)(given(**strategies)(counted)))
            try:
                test()
            except BaseException as exc:
                outcome.failed_seed = batch_seed
                exc.add_note(
                    f"failed in the batch with seed {batch_seed}, which "
                    f"FUZZ_SEED={batch_seed} FUZZ_SECONDS=0 pytest '{outcome.name}' runs again"
                )
                raise
            finally:
                outcome.batches += 1
                outcome.seconds = time.monotonic() - started
            if outcome.seconds >= self.seconds:
                return
            batch_seed += 1


def fuzz(**strategies: SearchStrategy[Any]) -> Callable[[Property], Callable[[Campaign], None]]:
    """Make ``prop`` a fuzz target: a pytest test that runs it under ``strategies`` for its share of the budget
    (the ``fuzz_campaign`` fixture in ``conftest.py``)."""

    def decorate(prop: Property) -> Callable[[Campaign], None]:
        def target(fuzz_campaign: Campaign) -> None:
            fuzz_campaign.run(prop, strategies)

        target.__name__ = prop.__name__
        target.__qualname__ = prop.__qualname__
        target.__doc__ = prop.__doc__
        target.__module__ = prop.__module__
        return target

    return decorate
