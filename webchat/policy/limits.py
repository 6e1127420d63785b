"""Fairness limits that protect the other users from one connection or one address."""

from __future__ import annotations

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
