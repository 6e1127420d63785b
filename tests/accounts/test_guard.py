"""LoginGuard: wrong passwords counted per account and per address, on a clock we move."""

from __future__ import annotations

import pytest

from webchat.accounts.guard import MAX_TRACKED, LoginGuard
from webchat.text import ChatError

WINDOW = 60.0
MAX = 5


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def guard(clock: Clock) -> LoginGuard:
    return LoginGuard(MAX, WINDOW, clock)


def held(guard: LoginGuard, key: str = "alice", address: str = "10.0.0.1") -> bool:
    try:
        guard.check(key, address)
    except ChatError as exc:
        assert exc.code == "too_many_attempts"
        return True
    return False


def fail(guard: LoginGuard, times: int, key: str = "alice", address: str = "10.0.0.1") -> None:
    for _ in range(times):
        guard.failed(key, address)


# ----- the edge of max_failures -------------------------------------------------------


def test_nothing_is_held_before_any_failure(guard: LoginGuard) -> None:
    assert not held(guard)


def test_one_less_than_max_failures_is_still_allowed(guard: LoginGuard) -> None:
    fail(guard, MAX - 1)
    assert not held(guard)


def test_max_failures_hold_further_attempts(guard: LoginGuard) -> None:
    fail(guard, MAX)
    assert held(guard)


def test_the_refusal_says_how_long_to_wait(guard: LoginGuard, clock: Clock) -> None:
    fail(guard, MAX)
    clock.now += 20
    with pytest.raises(ChatError, match="try again in 40 s"):
        guard.check("alice", "10.0.0.1")


def test_a_max_of_one(clock: Clock) -> None:
    guard = LoginGuard(1, WINDOW, clock)
    assert not held(guard)
    fail(guard, 1)
    assert held(guard)


# ----- the window ---------------------------------------------------------------------


def test_held_until_the_oldest_failure_is_window_seconds_old(
    guard: LoginGuard, clock: Clock
) -> None:
    start = clock.now
    fail(guard, MAX)
    clock.now = start + WINDOW - 0.001
    assert held(guard)
    clock.now = start + WINDOW
    assert not held(guard)


def test_the_window_counts_from_the_oldest_of_the_last_max_failures(
    guard: LoginGuard, clock: Clock
) -> None:
    start = clock.now
    for i in range(MAX):  # one every 10 s: at 0, 10, 20, 30, 40
        clock.now = start + 10 * i
        fail(guard, 1)
    clock.now = start + WINDOW - 0.001
    assert held(guard)
    clock.now = start + WINDOW  # the failure at 0 is out of the window: one attempt free
    assert not held(guard)
    fail(guard, 1)  # ...and failing it holds again, until the one at 10 is old
    assert held(guard)
    clock.now = start + 10 + WINDOW - 0.001
    assert held(guard)
    clock.now = start + 10 + WINDOW
    assert not held(guard)


def test_failures_spread_wider_than_the_window_never_hold(guard: LoginGuard, clock: Clock) -> None:
    for _ in range(3 * MAX):
        assert not held(guard)
        fail(guard, 1)
        clock.now += WINDOW / (MAX - 1)  # MAX failures always span more than the window
        assert not held(guard)


def test_after_the_window_a_fresh_start(guard: LoginGuard, clock: Clock) -> None:
    fail(guard, MAX)
    clock.now += WINDOW
    fail(guard, MAX - 1)
    assert not held(guard)
    fail(guard, 1)
    assert held(guard)


# ----- per account, per address -------------------------------------------------------


def test_per_account_across_addresses(guard: LoginGuard) -> None:
    """A botnet guessing one account from many addresses is held back."""
    for i in range(MAX):
        guard.failed("alice", f"10.0.1.{i}")
    assert held(guard, "alice", "10.0.2.99")  # a fresh address, the same account
    assert not held(guard, "bob", "10.0.2.99")  # another account from there: free
    assert not held(guard, "bob", "10.0.1.0")  # each address failed only once


def test_per_address_across_accounts(guard: LoginGuard) -> None:
    """One address trying many accounts is held back."""
    for i in range(MAX):
        guard.failed(f"user{i}", "10.0.0.7")
    assert held(guard, "someone-new", "10.0.0.7")
    assert not held(guard, "someone-new", "10.0.0.8")
    assert not held(guard, "user0", "10.0.0.8")


def test_the_owner_elsewhere_is_held_too_while_the_account_is(guard: LoginGuard) -> None:
    """The documented price of counting per account."""
    fail(guard, MAX, "alice", "10.6.6.6")
    assert held(guard, "alice", "192.168.1.2")


# ----- off ----------------------------------------------------------------------------


@pytest.mark.parametrize("max_failures", [0, -1])
def test_zero_or_less_disables_it(clock: Clock, max_failures: int) -> None:
    guard = LoginGuard(max_failures, WINDOW, clock)
    fail(guard, 100)
    assert not held(guard)


# ----- a bounded table ----------------------------------------------------------------


def test_the_table_is_bounded_and_forgets_the_oldest_first(guard: LoginGuard) -> None:
    fail(guard, MAX, "victim", "10.9.9.9")  # two names: the account and the address
    assert held(guard, "victim", "10.9.9.9")
    # Fill the table up to its bound exactly: nothing forgotten yet.
    room_left = MAX_TRACKED - 2
    for i in range(room_left // 2):
        guard.failed(f"k{i}", f"a{i}")
    assert held(guard, "victim", "10.9.9.9")
    # Two names more: the two oldest (the victim's account and address) are forgotten.
    guard.failed("one-more", "one-more-address")
    assert not held(guard, "victim", "10.9.9.9")


def test_failing_again_makes_a_name_the_newest(guard: LoginGuard) -> None:
    fail(guard, MAX - 1, "victim", "10.9.9.9")
    for i in range((MAX_TRACKED - 2) // 2):
        guard.failed(f"k{i}", f"a{i}")
    fail(guard, 1, "victim", "10.9.9.9")  # moves to the end: now k0 and a0 are the oldest
    guard.failed("one-more", "one-more-address")
    assert held(guard, "victim", "10.9.9.9")
