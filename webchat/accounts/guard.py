"""Wrong passwords, counted per account and per address, so guessing is slow.

After ``max_failures`` wrong passwords within ``window`` seconds, for the same
account or from the same address, every attempt is refused with
``too_many_attempts`` (without hashing anything) until the oldest of those
failures is ``window`` seconds old. Counting per account stops a botnet spread
over many addresses; per address stops one address trying many accounts. The
price of the first (anyone can lock an account for a minute by failing on
purpose) is the usual one; the owner already logged in is not affected.
In a cluster each node counts its own attempts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from webchat.text import ChatError

# Addresses and accounts tracked at once; past this the quietest are forgotten, so a
# flood of addresses cannot grow the table without bound.
MAX_TRACKED = 10_000


class LoginGuard:
    def __init__(
        self, max_failures: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str | None, address: str) -> None:
        """Raise ChatError too_many_attempts while this account or address is held back
        (``key`` None: the address alone, as for the server password)."""
        if self.max_failures <= 0:
            return
        with self._lock:
            now = self._clock()
            wait = self._wait(f"a:{address}", now)
            if key is not None:
                wait = max(wait, self._wait(f"k:{key}", now))
        if wait > 0:
            raise ChatError(
                "too_many_attempts",
                f"too many wrong passwords for this nick or from your address; "
                f"try again in {wait:.0f} s",
            )

    def failed(self, key: str | None, address: str) -> None:
        if self.max_failures <= 0:
            return
        with self._lock:
            now = self._clock()
            names = [f"a:{address}"] if key is None else [f"k:{key}", f"a:{address}"]
            for name in names:
                times = self._failures.pop(name, None) or deque(maxlen=self.max_failures)
                times.append(now)
                self._failures[name] = times  # re-inserted: the dict is oldest-first
            while len(self._failures) > MAX_TRACKED:
                del self._failures[next(iter(self._failures))]

    def _wait(self, name: str, now: float) -> float:
        times = self._failures.get(name)
        if times is None or len(times) < self.max_failures:
            return 0.0
        return times[0] + self.window - now
