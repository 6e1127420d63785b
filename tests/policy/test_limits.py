"""The token bucket and the per-address counter, at their edges."""

from __future__ import annotations

import threading

from webchat.policy.connections import PER_ADDRESS, SERVER_FULL, ConnectionGate
from webchat.policy.limits import TokenBucket


class Clock:
    """A clock the test moves by hand, so refill is exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_exactly_the_burst_then_refuses() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=10, clock=clock)
    assert all(bucket.take() for _ in range(10))
    assert not bucket.take()
    assert bucket.refusals_within(1.0) == 1


def test_bucket_refills_at_its_rate_and_never_past_the_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=4.0, burst=3, clock=clock)
    for _ in range(3):
        bucket.take()
    clock.now += 0.125  # half a token
    assert not bucket.take()
    assert bucket.wait_hint() == 0.125
    clock.now += 0.125
    assert bucket.take()
    assert bucket.refusals_within(1.0) == 1  # the one at +0.125 s; this take passed
    clock.now += 3600
    assert sum(bucket.take() for _ in range(10)) == 3


def test_bucket_with_rate_zero_is_off() -> None:
    bucket = TokenBucket(rate=0, burst=1)
    assert all(bucket.take() for _ in range(10_000))


def test_address_limit_edge_and_release() -> None:
    limiter = ConnectionGate(0, 3)
    assert all(limiter.acquire("10.0.0.1") is None for _ in range(3))
    assert limiter.acquire("10.0.0.1") == PER_ADDRESS
    assert limiter.acquire("10.0.0.2") is None
    limiter.release("10.0.0.1")
    assert limiter.acquire("10.0.0.1") is None
    for _ in range(3):
        limiter.release("10.0.0.1")
    assert limiter.count("10.0.0.1") == 0
    assert limiter.open == 1


def test_total_limit_edge_and_release() -> None:
    gate = ConnectionGate(2, 0)
    assert gate.acquire("10.0.0.1") is None and gate.acquire("10.0.0.2") is None
    assert gate.acquire("10.0.0.3") == SERVER_FULL
    assert "full (2 connections)" in gate.explain(SERVER_FULL, "10.0.0.3")
    gate.release("10.0.0.2")
    assert gate.acquire("10.0.0.3") is None
    gate.release("10.0.0.9")  # never admitted: nothing to give back
    assert gate.open == 2


def test_an_ipv4_address_seen_through_ipv6_counts_as_itself() -> None:
    gate = ConnectionGate(0, 1)
    assert gate.acquire("10.0.0.1") is None
    assert gate.acquire("::ffff:10.0.0.1") == PER_ADDRESS


def test_address_limit_zero_means_unlimited() -> None:
    limiter = ConnectionGate(0, 0)
    assert all(limiter.acquire("::1") is None for _ in range(1000))


def test_address_limit_is_exact_under_contention() -> None:
    limiter = ConnectionGate(0, 50)
    granted: list[bool] = []
    lock = threading.Lock()

    def grab() -> None:
        ok = limiter.acquire("127.0.0.1") is None
        with lock:
            granted.append(ok)

    threads = [threading.Thread(target=grab) for _ in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert granted.count(True) == 50
    assert limiter.count("127.0.0.1") == 50
