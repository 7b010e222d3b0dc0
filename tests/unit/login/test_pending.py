"""login.pending: one use, ten minutes, a bounded table that refuses new logins when full."""

from __future__ import annotations

from kube_oidc_proxy.login.pending import LIFETIME_SECONDS, PendingLogin, PendingLogins

T0 = 1_000.0


def login(expires_at: float = T0 + LIFETIME_SECONDS, issuer: str = "https://issuer.example") -> PendingLogin:
    return PendingLogin("nonce", "verifier", issuer, "https://proxy/login/callback", b"h" * 32, expires_at)


def test_a_state_gives_its_login_once() -> None:
    table = PendingLogins()
    assert table.add("s", login(), T0)
    assert table.pop("s", T0 + 1) == login()
    assert table.pop("s", T0 + 2) is None
    assert len(table) == 0


def test_an_unknown_state_gives_nothing() -> None:
    table = PendingLogins()
    table.add("s", login(), T0)
    assert table.pop("t", T0) is None
    assert len(table) == 1


def test_a_login_lives_until_its_expiry_and_not_a_moment_longer() -> None:
    table = PendingLogins()
    table.add("a", login(), T0)
    table.add("b", login(), T0)
    assert table.pop("a", T0 + LIFETIME_SECONDS - 0.001) is not None
    assert table.pop("b", T0 + LIFETIME_SECONDS) is None


def test_expired_logins_are_dropped_as_new_ones_come() -> None:
    table = PendingLogins()
    for n in range(100):
        table.add(f"old{n}", login(T0 + 10), T0)
    table.add("new", login(T0 + 700), T0 + 11)
    assert len(table) == 1


def test_a_full_table_refuses_new_logins_and_keeps_the_ones_in_progress() -> None:
    table = PendingLogins(limit=3)
    assert all(table.add(f"s{n}", login(), T0) for n in range(3))
    assert not table.add("s3", login(), T0 + 1)
    assert len(table) == 3
    assert table.pop("s0", T0 + 2) is not None
    assert table.add("s3", login(), T0 + 3), "a finished login frees its place"


def test_a_full_table_takes_new_logins_once_the_old_ones_expire() -> None:
    table = PendingLogins(limit=2)
    table.add("a", login(T0 + 5), T0)
    table.add("b", login(T0 + 5), T0)
    assert not table.add("c", login(), T0 + 4)
    assert table.add("c", login(), T0 + 5)
    assert len(table) == 1
