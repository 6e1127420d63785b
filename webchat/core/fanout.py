"""Fan-out: one shared ring of encoded packets, and a cursor per session.

Rather than a queue per session, every packet goes once into a ring; each session
takes everything between its cursor and the head in one slice. Publishing costs
the same whatever the number of receivers, everyone gets one order for free, and a
session's backlog is exactly its lag behind the head, bounded in packets and bytes.

Before the ring reuses a slot, every open session must have taken it: a session
whose writer is stuck in a send is a peer that stopped reading, and is closed as
too slow; a writer that is merely waiting for the CPU (or has no thread, because
no batch since was for it) is woken and waited for, which holds back the publisher
and slows a flood at its source. Nobody waits longer than ``close_grace``. The
ring shares the hub's lock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from webchat.core.events import Packet
from webchat.core.session import Session
from webchat.core.writer import Doorbell

# Seconds a closing writer waits between looks for the last packets it is owed.
CLOSING_POLL = 0.05
# Seconds between looks at a session the ring waits for (it may have taken meanwhile).
LAGGARD_POLL = 0.01
# A closing session's end while its close marker is on its way: nothing is done yet.
UNKNOWN = 2**62


class Fanout:
    """The ring; methods ending in ``_locked`` expect the caller to hold ``lock``."""

    def __init__(
        self,
        lock: threading.Lock,
        capacity: int,
        close_grace: float,
        sessions: Mapping[int, Session],
        ring_doorbell: Callable[[Session], None],
        mark_close: Callable[[Session], None],
        wake: Callable[[Session], None],
    ) -> None:
        self.lock = lock
        self.capacity = capacity
        self.close_grace = close_grace
        # This node's sessions by id (the roster's own mapping, kept current by it).
        self._sessions = sessions
        # What the reaper looks at, rather than every session four times a second (with
        # ten thousand idle people, that and the keepalive scan cost 16 ms of CPU a
        # second, for nothing): the sessions whose writer is inside a blocking send
        # (changed by writer threads, under its own lock), and those closing (under the
        # hub's lock).
        self._sending: set[Session] = set()
        self._sending_lock = threading.Lock()
        self._closing: set[Session] = set()
        self._ring_doorbell = ring_doorbell
        # Wakes a writer that must take now, starting its thread if it has none.
        self._wake = wake
        self._mark_close = mark_close
        self._slots: list[Packet | None] = [None] * capacity
        self.head = 0  # packets ever appended; the next one goes in slot head % capacity
        self.bytes_total = 0
        # A lower bound of every open session's cursor (cursors only grow), so appending
        # looks at the sessions only when the ring is about to reuse a slot someone needs.
        self._low_cursor = 0
        # Wakes publishers held back while the ring is full, and the ring waiting for
        # slow writers; both wait on the hub's lock.
        self._space = threading.Condition(lock)
        self._space_waiters = 0
        # This node's items handed to the bus, and those back from it.
        self.submitted = 0
        self.released = 0

    # ----- publishing side --------------------------------------------------------

    def hold_sender_locked(self) -> None:
        """While a whole ring's worth is on its way, hold the publishing thread."""
        while self.submitted - self.released >= self.capacity:
            self._wait_locked(self.close_grace)

    def append_locked(self, packets: list[Packet]) -> None:
        for packet in packets:
            if self.head - self.capacity >= self._low_cursor:
                self._free_slot_locked()
            self._slots[self.head % self.capacity] = packet
            self.head += 1
            self.bytes_total += packet.size
        if self._space_waiters:
            self._space.notify_all()

    def _wait_locked(self, timeout: float) -> None:
        self._space_waiters += 1
        try:
            self._space.wait(timeout)
        finally:
            self._space_waiters -= 1

    def _free_slot_locked(self) -> None:
        deadline: float | None = None
        while True:
            oldest = self.head - self.capacity  # the packet whose slot is next
            low = self.head
            laggards: list[Session] = []
            with self._sending_lock:
                sending = set(self._sending)
            for s in self._sessions.values():
                if s.closing:
                    continue
                if s.cursor > oldest:
                    low = min(low, s.cursor)
                elif s in sending:
                    self.close_locked(
                        s, f"too slow: more than {self.capacity} events waiting to be sent", 1008
                    )
                else:
                    laggards.append(s)
            if not laggards:
                self._low_cursor = low
                return
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.close_grace
                # A session no batch was for has no thread and was not rung (Delivery's
                # targets): wake it, so that it takes what it skipped.
                for s in laggards:
                    self._wake(s)
            if now >= deadline:
                for s in laggards:
                    self.close_locked(s, "too slow: its writer did not keep up", 1008)
                continue
            # Looked at again soon: a writer that took its packets just before we began
            # to wait saw no waiter to notify.
            self._wait_locked(min(deadline - now, LAGGARD_POLL))

    # ----- delivery side ----------------------------------------------------------

    @contextlib.contextmanager
    def sending(self, session: Session) -> Iterator[None]:
        """Around a writer thread's blocking send: if the backlog grows meanwhile, the peer
        is not reading (a writer that is only waiting for the CPU is not "too slow")."""
        with self._sending_lock:
            self._sending.add(session)
        try:
            yield
        finally:
            with self._sending_lock:
                self._sending.discard(session)

    def _end(self, session: Session) -> tuple[int, bool]:
        head = self.head
        if session.closing:
            return min(head, session.close_seq), head >= session.close_seq
        return head, False

    def wait_for(self, session: Session, doorbell: Doorbell, timeout: float | None) -> None:
        """Sleep on the session's doorbell unless something is already there for it."""
        end, done = self._end(session)
        splices = session.splices
        if session.cursor >= end and not done and not (splices and splices[0].position <= end):
            # A closing session waits only for its last few packets to leave the bus.
            doorbell.wait(CLOSING_POLL if session.closing else timeout)

    def take(self, session: Session) -> tuple[list[Packet], bool]:
        """Everything owed between the session's cursor and the head, with its splices.

        Called with the session's write lock, not the hub's: a slot is filled before
        the head moves past it, and no slot a live session still needs is reused.
        """
        # The head is read before the splices (see Splice). Inlined _end: this runs for
        # every session after every batch.
        end, done = self.head, False
        if session.closing:
            end, done = min(end, session.close_seq), end >= session.close_seq
        start = session.cursor
        if end - start > self.capacity:  # only a closing session is ever overtaken
            self.close(session, f"too slow: more than {self.capacity} events waiting")
            return [], True
        chunk: list[Packet] = []
        if start < end:
            # Copy first, move the cursor after: until the cursor moves, the slots from
            # `start` on are kept for this session, so the copy cannot see a reused slot.
            first, last = start % self.capacity, end % self.capacity
            slots = self._slots
            taken = slots[first:last] if first < last else slots[first:] + slots[:last]
            chunk = taken  # type: ignore[assignment]  # every slot in [start, end) is filled
            if self.head - start > self.capacity:  # a closing session is not waited for
                self.close(session, f"too slow: more than {self.capacity} events waiting")
                return [], True
            session.cursor = end
            session.cursor_bytes = self.bytes_total
            if self._space_waiters:
                with self.lock:
                    self._space.notify_all()
        splices = session.splices
        if splices and splices[0].position <= end:
            chunk = self._spliced(session, chunk, start, end)
        return chunk, done

    @staticmethod
    def _spliced(session: Session, chunk: list[Packet], start: int, end: int) -> list[Packet]:
        merged: list[Packet] = []
        at = start
        splices = session.splices
        while splices and splices[0].position <= end:
            splice = splices.popleft()
            cut = max(splice.position, start)
            merged.extend(chunk[at - start : cut - start])
            merged.extend(splice.packets)
            at = cut
        merged.extend(chunk[at - start :])
        return merged

    # ----- closing and lag --------------------------------------------------------

    def close(self, session: Session, reason: str, code: int = 1000) -> None:
        with self.lock:
            self.close_locked(session, reason, code)

    def close_locked(self, session: Session, reason: str, code: int) -> None:
        if session.closing:
            return
        session.closing = True
        session.closing_since = time.monotonic()
        session.close_reason = reason
        session.close_code = code
        # What was published before the close is still owed to it (errors that explain
        # the close, above all); what comes after is not. Where that ends is known once
        # a marker published now reaches the ring (closed_at_locked).
        session.close_seq = UNKNOWN
        self._closing.add(session)
        self._mark_close(session)
        self._ring_doorbell(session)

    def closed_at_locked(self, session: Session, position: int) -> None:
        """The close marker of ``session`` is at ``position``: it is owed what comes before."""
        session.close_seq = position
        self._ring_doorbell(session)

    def reap_locked(self, max_bytes: int, now: float) -> list[Session]:
        """Close sessions whose peer stopped reading; return those that will not close.

        Only the sessions that can be either are looked at (see ``sending``): a session
        whose writer is stuck in a send with more than ``max_bytes`` behind it, and one
        still here ``close_grace`` seconds after it began to close.
        """
        with self._sending_lock:
            sending = [s for s in self._sending if not s.closing]
        for s in sending:
            lag = self.bytes_total - s.cursor_bytes
            if lag > max_bytes:
                self.close_locked(s, f"too slow: {lag} bytes waiting to be sent", 1008)
        stuck: list[Session] = []
        for s in list(self._closing):
            if self._sessions.get(s.id) is not s:
                self._closing.discard(s)  # gone from the roster: nothing left to cut
            elif now - s.closing_since > self.close_grace:
                stuck.append(s)
        return stuck
