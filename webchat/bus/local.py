"""The embedded bus: ids from a counter, durability from a group commit into SQLite.

One committer thread takes everything submitted while the last transaction ran,
appends it in one transaction, and only then hands the batch on for delivery, so
the cost of a commit is shared by the whole batch and nothing is delivered before
it is in the log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from webchat.bus import Outgoing, stored
from webchat.core.events import SEQUENCED, utc_now
from webchat.core.stats import COMMIT_BUCKETS, Histogram
from webchat.history import History, StoredEvent
from webchat.history.sqlite import PRUNE_BUDGET

log = logging.getLogger(__name__)

T = TypeVar("T")


class LocalBus:
    """A :class:`~webchat.bus.Bus` for one process, on its history's SQLite file."""

    def __init__(self, history: History, *, prune_every: float = 5.0) -> None:
        self.history = history
        # Ids go on from the log's high-water mark, so they keep increasing across restarts.
        self._last_id = history.last_id()
        self._prune_every = prune_every
        self._committer: GroupCommitter[Outgoing] | None = None

    def start(self, deliver: Callable[[list[Outgoing]], None]) -> None:
        self._committer = GroupCommitter(
            self.history, deliver, stored, prune_every=self._prune_every
        )
        self._committer.start()

    def submit(self, item: Outgoing) -> Outgoing:
        event = item.event
        if event.type in SEQUENCED and not item.replayed:
            self._last_id += 1
            item.event = event.stamped(self._last_id, utc_now())
        elif not item.replayed:
            item.event = event.stamped(None, utc_now())
        assert self._committer is not None, "submit() before start()"
        self._committer.submit(item)
        return item

    def last_id(self) -> int:
        return self._last_id

    @property
    def commit_times(self) -> dict[str, Histogram]:
        """Seconds each batch took to go into the log, for /metrics."""
        return {"sqlite": self._committer.commit_seconds} if self._committer else {}

    @property
    def error(self) -> str | None:
        return None  # a counter in this process never fails; the history reports its own

    def stop(self) -> None:
        if self._committer is not None:
            self._committer.stop()


class GroupCommitter(Generic[T]):
    """The single writer thread: log a batch, then hand it on, so delivery follows the log.

    Under load, everything submitted while one transaction commits goes into the
    next one, so the cost of a commit is shared by the whole batch.
    """

    def __init__(
        self,
        history: History,
        on_committed: Callable[[list[T]], None],
        to_stored: Callable[[T], StoredEvent | None],
        *,
        prune_every: float = 5.0,
    ) -> None:
        self.history = history
        self._on_committed = on_committed
        self._to_stored = to_stored
        self._prune_every = prune_every
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[T] = []
        self._stopping = False
        self._dropped = 0
        self._thread: threading.Thread | None = None
        # Seconds each batch's append took; changed only by the committer's thread.
        self.commit_seconds = Histogram(COMMIT_BUCKETS)

    def submit(self, item: T) -> None:
        """Queue one item; never blocks on the disk. Order of submission is kept."""
        with self._cond:
            if self._stopping:
                self._dropped += 1
                if self._dropped == 1:
                    log.warning("history: item submitted after stop() was dropped")
                return
            self._queue.append(item)
            if len(self._queue) == 1:
                self._cond.notify()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="webchat-store", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Commit and hand on everything pending, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread = self._thread
        if thread is None:
            with self._cond:
                items, self._queue = self._queue, []
            if items:
                self._commit(items)
        elif thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        periodic = self._prune_every > 0
        next_prune = time.monotonic()  # once at start: retention may have been lowered
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    wait = max(0.0, next_prune - time.monotonic()) if periodic else None
                    if wait == 0.0:
                        break
                    self._cond.wait(wait)
                items, self._queue = self._queue, []
                stopping = self._stopping
            if items:
                self._commit(items)
            if stopping:
                return
            if periodic and time.monotonic() >= next_prune:
                deleted = self.history.prune(PRUNE_BUDGET)
                # More to delete: go on after the next batch of appends, not in 5 s.
                next_prune = time.monotonic() + (
                    0 if deleted >= PRUNE_BUDGET else self._prune_every
                )

    def _commit(self, items: list[T]) -> None:
        stored: list[StoredEvent] = []
        for item in items:
            try:
                converted = self._to_stored(item)
            except Exception:
                log.exception("history: cannot log %r", item)
                continue
            if converted is not None:
                stored.append(converted)
        began = time.monotonic()
        self.history.append(stored)
        if stored and self.history.error is None:  # a log that is off commits nothing
            self.commit_seconds.observe(time.monotonic() - began)
        try:
            self._on_committed(items)
        except Exception:
            log.exception("history: delivering a committed batch failed")
