"""What the chat counts for monitoring, as plain numbers: no Prometheus in the core.

Every figure here is a Python int (or a list of them) changed by code that already
holds the lock guarding it: the hub's lock, a session's write lock, or the one thread
that owns it (a bus's committer). Nothing here takes a lock of its own on a busy path,
and nothing is counted per packet per receiver: the delivery path counts per batch.
:mod:`webchat.web.metrics` reads these figures when ``/metrics`` is scraped.
"""

from __future__ import annotations

import threading
from bisect import bisect_left

# Upper bounds (seconds) of the delivery-latency buckets: publish to socket write.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Upper bounds (seconds) of the history commit-time buckets: one batch into the log.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0)

# The disconnect reasons /metrics tells apart; every free-text reason maps to one.
DISCONNECT_REASONS = (
    "quit",
    "closed",
    "too_slow",
    "flooding",
    "kicked",
    "banned",
    "timeout",
    "error",
    "shutdown",
)
# Close codes a session is closed with (WebSocket's, used for every transport).
_SHUTDOWN_CODES = (1001,)
_ERROR_CODES = (1002, 1009, 1011)


class Histogram:
    """Fixed buckets as a list of counts (the last one past every bound) and their sum.

    Not thread-safe: each one is changed by one thread at a time (its owner, or whoever
    holds the lock its owner names), and read as a copy when scraped.
    """

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound counts in that bound's bucket ("le").
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add(self, other: Histogram) -> None:
        """Fold another histogram with the same bounds into this one."""
        counts = other.counts[:]  # one copy: consistent even while its owner observes
        for i, n in enumerate(counts):
            self.counts[i] += n
        self.sum += other.sum

    def copy(self) -> Histogram:
        out = Histogram(self.bounds)
        out.add(self)
        return out


class Tally:
    """Counts by label for rare events (a refused connection): its own small lock.

    Transports count here from their own threads, where no shared lock is held; a
    refusal is rare enough that one uncontended lock costs nothing.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, label: str, n: int = 1) -> None:
        with self._lock:
            self._counts[label] = self._counts.get(label, 0) + n

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


class HubStats:
    """The hub's counters; the dicts and ints change only under the hub's lock."""

    def __init__(self) -> None:
        # Events this node published (replies to one session included), by type.
        self.events: dict[str, int] = {}
        # Sessions of this node that ended, by reason (one of DISCONNECT_REASONS).
        self.disconnects: dict[str, int] = dict.fromkeys(DISCONNECT_REASONS, 0)
        # Lines refused by the rate limit, from sessions that have left (the open
        # ones keep their own count in their token bucket until they leave).
        self.rate_limited_gone = 0
        # Connections refused before a session existed, by reason (per_address,
        # server_full, origin, banned, ...): counted by the transports.
        self.refused = Tally()

    def count_disconnect_locked(self, reason: str) -> None:
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1


def disconnect_reason(closing: bool, code: int, close_reason: str, reason: str) -> str:
    """One of :data:`DISCONNECT_REASONS` for how a session ended.

    ``closing``, ``code`` and ``close_reason`` are the session's close (if the server
    or the user closed it); ``reason`` is what its connection said otherwise (the peer
    went away, or broke the protocol). A /quit closes with 1000 and the user's own
    words, so the words of a 1000 close are never read: "/quit too slow" is a quit.
    """
    if not closing:
        return "error" if reason.startswith(("protocol error", "message too big")) else "closed"
    if code == 1000:
        return "quit"
    if code in _SHUTDOWN_CODES:
        return "shutdown"
    if code in _ERROR_CODES:
        return "error"
    for prefix, label in (
        ("too slow", "too_slow"),
        ("flooding", "flooding"),
        ("kicked", "kicked"),
        ("banned", "banned"),
        ("ping timeout", "timeout"),
        ("timed out", "timeout"),
        ("idle", "timeout"),
    ):
        if close_reason.startswith(prefix):
            return label
    return "error"
