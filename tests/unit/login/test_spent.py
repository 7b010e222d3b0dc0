"""login.spent: a state's callback is taken once; spent states are remembered as long as a cookie could carry
them, in a bounded set that refuses callbacks rather than forget a state early."""

from __future__ import annotations

from kube_oidc_proxy.login.pending import LIFETIME_SECONDS
from kube_oidc_proxy.login.spent import Spend, SpentStates

T0 = 1_000.0


def test_a_state_is_spent_once() -> None:
    spent = SpentStates()
    assert not spent.used("s", T0)
    assert spent.spend("s", T0) is Spend.FIRST
    assert spent.used("s", T0 + 1)
    assert spent.spend("s", T0 + 1) is Spend.USED
    assert spent.spend("t", T0 + 1) is Spend.FIRST
    assert len(spent) == 2


def test_a_spent_state_is_remembered_until_no_cookie_could_carry_it() -> None:
    spent = SpentStates()
    spent.spend("s", T0)
    assert spent.spend("s", T0 + LIFETIME_SECONDS - 0.001) is Spend.USED
    assert not spent.used("s", T0 + LIFETIME_SECONDS)
    assert len(spent) == 0


def test_expired_states_are_dropped_as_new_ones_come() -> None:
    spent = SpentStates()
    for n in range(100):
        spent.spend(f"old{n}", T0)
    spent.spend("new", T0 + LIFETIME_SECONDS)
    assert len(spent) == 1


def test_a_full_set_refuses_new_callbacks_and_forgets_no_state() -> None:
    spent = SpentStates(limit=3)
    assert [spent.spend(f"s{n}", T0 + n) for n in range(3)] == [Spend.FIRST] * 3
    assert spent.full(T0 + 3)
    assert spent.spend("s3", T0 + 3) is Spend.FULL
    assert spent.spend("s0", T0 + 3) is Spend.USED, "a spent state stays spent when the set is full"
    assert not spent.used("s3", T0 + 3), "a refused callback spends nothing"
    assert len(spent) == 3


def test_a_full_set_takes_callbacks_again_as_the_oldest_expire() -> None:
    spent = SpentStates(limit=2)
    spent.spend("a", T0)
    spent.spend("b", T0 + 5)
    assert spent.spend("c", T0 + LIFETIME_SECONDS - 1) is Spend.FULL
    assert not spent.full(T0 + LIFETIME_SECONDS)
    assert spent.spend("c", T0 + LIFETIME_SECONDS) is Spend.FIRST
    assert spent.used("b", T0 + LIFETIME_SECONDS) and not spent.used("a", T0 + LIFETIME_SECONDS)
