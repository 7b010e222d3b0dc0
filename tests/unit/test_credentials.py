"""The proxy's own bearer token: static, or a file that the kubelet rotates, re-read on change, age and 401."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from kube_oidc_proxy.kube.credentials import REFRESH_AFTER_401_SECONDS, BearerToken

CHECK = 5.0
MAX_AGE = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("first-token")
    return path


def rotate(path: Path, token: str) -> None:
    """Replace the file the way a Secret volume or TokenRequest projection does: a new inode."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(token)
    os.replace(tmp, path)


def rewrite_in_place(path: Path, token: str) -> None:
    """Rewrite keeping inode, size and mtime: only a forced re-read can notice."""
    st = path.stat()
    path.write_text(token)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def file_token(path: Path, clock: Clock) -> BearerToken:
    return BearerToken(token_file=str(path), clock=clock, check_interval=CHECK, max_age=MAX_AGE)


def test_a_static_token_is_sent_as_a_bearer_header() -> None:
    creds = BearerToken("static-token")
    assert creds.authorization() == b"Bearer static-token"
    creds.unauthorized()
    assert creds.authorization() == b"Bearer static-token"
    assert creds.reads == 0


def test_without_a_token_no_authorization_is_sent() -> None:
    assert BearerToken().authorization() is None


def test_the_token_file_is_read_at_start(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    assert creds.reads == 1
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1


def test_surrounding_whitespace_and_a_trailing_newline_are_stripped(token_file: Path, clock: Clock) -> None:
    token_file.write_text("  first-token\n")
    assert file_token(token_file, clock).authorization() == b"Bearer first-token"


def test_the_file_wins_over_a_static_token_like_client_go(token_file: Path, clock: Clock) -> None:
    creds = BearerToken("static", str(token_file), clock=clock, check_interval=CHECK, max_age=MAX_AGE)
    assert creds.authorization() == b"Bearer first-token"


def test_a_changed_file_is_picked_up_at_the_first_check_after_the_interval(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    rotate(token_file, "second-token")
    clock.now += CHECK - 0.1
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1
    clock.now += 0.1
    assert creds.authorization() == b"Bearer second-token"
    assert creds.reads == 2


def test_a_change_in_place_with_a_new_size_is_picked_up(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    token_file.write_text("a-longer-second-token")
    clock.now += CHECK
    assert creds.authorization() == b"Bearer a-longer-second-token"


def test_an_unchanged_file_is_not_re_read_before_max_age(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    for _ in range(int(MAX_AGE / CHECK) - 1):
        clock.now += CHECK
        assert creds.authorization() == b"Bearer first-token"
    assert clock.now < 1000.0 + MAX_AGE
    assert creds.reads == 1


def test_the_file_is_re_read_after_max_age_even_if_it_looks_unchanged(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    rewrite_in_place(token_file, "other-token")  # same length, same mtime, same inode
    clock.now += MAX_AGE - 1
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1
    clock.now += 1
    assert creds.authorization() == b"Bearer other-token"
    assert creds.reads == 2
    clock.now += CHECK
    assert creds.authorization() == b"Bearer other-token"
    assert creds.reads == 2  # the age counts from the last read


def test_unauthorized_forces_a_re_read_on_the_next_call(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    rewrite_in_place(token_file, "fresh-token")
    creds.unauthorized()
    assert creds.reads == 1  # nothing is read until a request needs the token
    assert creds.authorization() == b"Bearer fresh-token"
    assert creds.reads == 2
    assert creds.authorization() == b"Bearer fresh-token"
    assert creds.reads == 2


def test_unauthorized_re_reads_even_an_unchanged_file_only_once(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    creds.unauthorized()
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 2
    clock.now += CHECK
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 2


def test_a_flood_of_401s_re_reads_the_file_once_per_interval(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    for _ in range(100):  # e.g. many requests answered 401 at once
        creds.unauthorized()
        assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 2
    clock.now += REFRESH_AFTER_401_SECONDS
    creds.unauthorized()
    creds.authorization()
    assert creds.reads == 3


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda p: p.unlink(), id="deleted"),
        pytest.param(lambda p: rotate(p, ""), id="empty"),
        pytest.param(lambda p: rotate(p, "  \n"), id="blank"),
        pytest.param(lambda p: rotate(p, "half\nof-two-tokens"), id="inner-newline"),
        pytest.param(lambda p: rotate(p, "tab\tinside"), id="control-character"),
        pytest.param(lambda p: (p.unlink(), p.mkdir()), id="directory"),
    ],
)
def test_an_unusable_file_keeps_the_last_good_token(
    token_file: Path, clock: Clock, spoil: Callable[[Path], object]
) -> None:
    creds = file_token(token_file, clock)
    spoil(token_file)
    clock.now += CHECK
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1
    creds.unauthorized()
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1
    clock.now += MAX_AGE
    assert creds.authorization() == b"Bearer first-token"
    assert creds.reads == 1


def test_a_file_that_becomes_usable_again_is_picked_up(token_file: Path, clock: Clock) -> None:
    creds = file_token(token_file, clock)
    rotate(token_file, "")
    clock.now += CHECK
    assert creds.authorization() == b"Bearer first-token"
    rotate(token_file, "repaired-token")
    clock.now += CHECK
    assert creds.authorization() == b"Bearer repaired-token"
    assert creds.reads == 2


def test_a_file_missing_at_start_sends_no_token_until_it_appears(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "token"
    creds = file_token(path, clock)
    assert creds.authorization() is None
    assert creds.reads == 0
    path.write_text("late-token")
    clock.now += CHECK
    assert creds.authorization() == b"Bearer late-token"
    assert creds.reads == 1


def test_checks_are_rate_limited_to_one_per_interval(
    token_file: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = file_token(token_file, clock)
    stats: list[str] = []
    real_stat = os.stat

    def counting_stat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        stats.append(path)
        return real_stat(path)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(100):
        creds.authorization()
    assert stats == []
    clock.now += CHECK
    for _ in range(100):
        creds.authorization()
    assert stats == [str(token_file)]
