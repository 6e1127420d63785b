"""Fairness limits that protect the other users from one connection or one address."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class TokenBucket:
    """Allows a burst (a pasted block), then a steady rate; not thread-safe by design.

    Each connection has its own bucket, touched only by that connection's reader.
    ``rate <= 0`` turns the limit off.
    """

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._refusals: deque[float] = deque()
        self.refused = 0  # lines refused in all, for /metrics

    def take(self) -> bool:
        """Spend one token if there is one; a refusal is remembered for the flood check."""
        if self.rate <= 0:
            return True
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self._refusals.append(now)
        self.refused += 1
        return False

    def refusals_within(self, window: float) -> int:
        """Refusals in the last ``window`` seconds: a steady flood, not one eager paste."""
        horizon = self.clock() - window
        while self._refusals and self._refusals[0] < horizon:
            self._refusals.popleft()
        return len(self._refusals)

    def wait_hint(self) -> float:
        """Seconds until the next token, for the refusal message."""
        if self.rate <= 0:
            return 0.0
        return max(0.0, (1.0 - self.tokens) / self.rate)


class AddressLimiter:
    """Counts open connections per IP address; shared by both transports."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Take a slot for this address, or return False when it has ``limit`` already."""
        address = normal_address(address)
        with self._lock:
            count = self._open.get(address, 0)
            if self.limit > 0 and count >= self.limit:
                return False
            self._open[address] = count + 1
            return True

    def release(self, address: str) -> None:
        address = normal_address(address)
        with self._lock:
            count = self._open.get(address, 0) - 1
            if count > 0:
                self._open[address] = count
            else:
                self._open.pop(address, None)

    def count(self, address: str) -> int:
        with self._lock:
            return self._open.get(normal_address(address), 0)


def normal_address(address: str) -> str:
    """One key per machine: an IPv4 client seen through an IPv6 socket counts as itself."""
    return address.removeprefix("::ffff:") if address.startswith("::ffff:") else address
