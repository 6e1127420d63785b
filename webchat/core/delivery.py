"""Delivery: the ring, one writer per session, and the direct send from the bus's thread.

The hub decides what happens and in which order; this module only gets the
ordered packets to the sockets. After each committed batch the packets go into
the ring and straight to the sockets they may be for (every one, at least once
per quarter of the ring), written without waiting; a writer thread is started
only for a socket that does not take them all (at a thousand users, waking a
thousand threads for each message costs far more than the writes).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Collection, Mapping
from typing import cast

from webchat.core.events import Packet
from webchat.core.fanout import Fanout
from webchat.core.session import Session
from webchat.core.stats import Histogram
from webchat.core.writer import Writer

# A fraction of the ring: every writer is handed a batch at least once per
# capacity // FULL_EVERY packets, however few of them were for it.
FULL_EVERY = 4


class Delivery:
    """Methods ending in ``_locked`` expect the caller to hold the hub's lock."""

    def __init__(
        self,
        lock: threading.Lock,
        capacity: int,
        close_grace: float,
        sessions: Mapping[int, Session],
        released_id: int,
        mark_close: Callable[[Session], None],
        members: Callable[[str], Collection[int]],
    ) -> None:
        self.fanout = Fanout(
            lock, capacity, close_grace, sessions, self._nudge, mark_close, self.wake
        )
        self._writers: dict[int, Writer] = {}
        # The writers whose peers get keepalives, by when the next one may be owed:
        # (when, session id, writer). The reaper pops only those due, rather than asking
        # every writer each second (13.8 ms of CPU a second with ten thousand idle
        # people). An entry may be early (its peer was written to since): it is put back
        # for later. One entry per writer; a gone writer's is dropped when popped.
        self._keepalives: list[tuple[float, int, Writer]] = []
        self._members = members
        # Every writer is handed a batch at least every FULL_EVERY-th part of the ring, so
        # even a session no batch was for keeps its cursor near the head (see targets).
        self._full_every = max(1, capacity // FULL_EVERY)
        self._full_at = 0
        self._lock = lock
        # The highest event id in the ring: the seam between replay and live delivery.
        self.released_id = released_id
        # What the writers of sessions that are gone delivered (/metrics); under the lock.
        self.delivered_gone = 0
        self.latency_gone = Histogram()
        # One figure per batch handed over directly; only the delivering thread changes it.
        self.latency_direct = Histogram()

    def add_locked(self, session: Session) -> None:
        writer = Writer(session, self.fanout, session.transport.direct)
        self._writers[session.id] = writer
        self._queue_keepalive_locked(writer)

    def _queue_keepalive_locked(self, writer: Writer) -> None:
        due = writer.keepalive_at()
        if due is not None:
            heapq.heappush(self._keepalives, (due, writer.session.id, writer))

    def start(self, session: Session) -> None:
        """Start the session's writer: its splices (history, welcome) first, then live."""
        self._writers[session.id].start()

    def wake(self, session: Session) -> None:
        """Ring the session's writer: something is owed, or its transport has control frames."""
        writer = self._writers.get(session.id)
        if writer is not None:
            writer.ring()

    def _nudge(self, session: Session) -> None:
        """The session is closing (Fanout): its goodbye usually goes direct (Writer.nudge)."""
        writer = self._writers.get(session.id)
        if writer is not None:
            writer.nudge()

    def ring_keepalives(self, now: float) -> None:
        """Ping the peers owed a keepalive: idle writers have no thread to do it."""
        due: list[Writer] = []
        with self._lock:
            queue = self._keepalives
            while queue and queue[0][0] <= now:
                writer = heapq.heappop(queue)[2]
                if self._writers.get(writer.session.id) is writer:
                    due.append(writer)
        for writer in due:
            if writer.keepalive_due(now):
                writer.keepalive_direct(now)
        with self._lock:
            for writer in due:
                if self._writers.get(writer.session.id) is writer:
                    self._queue_keepalive_locked(writer)

    def wait_closed(self, session: Session, timeout: float) -> None:
        """Let the writer finish its last words; then the session is gone for good."""
        writer = self._writers.get(session.id)
        if writer is not None:
            writer.wait_closed(timeout)
            with self._lock:
                if self._writers.pop(session.id, None) is writer:
                    self.delivered_gone += writer.delivered
                    self.latency_gone.add(writer.latency)

    def wait_all_closed(self, grace: float) -> None:
        """As the server stops: give every writer ``grace`` seconds in all (not each) for
        its last words, then cut the rest at once and give them as long again."""
        with self._lock:
            writers = [w for w in self._writers.values() if w.started]
        deadline = time.monotonic() + grace
        for writer in writers:
            writer.done.wait(max(0.0, deadline - time.monotonic()))
        late = [w for w in writers if not w.done.is_set()]
        deadline = time.monotonic() + grace
        for writer in late:
            writer.wait_closed(max(0.0, deadline - time.monotonic()))

    def totals(self) -> tuple[int, Histogram]:
        """Packets handed to sockets so far, and the delivery-latency histogram.

        The hub's lock is held only to copy the list; the sums are made off it (each
        writer's figures only grow, so a scrape never sees them go down).
        """
        with self._lock:
            writers = list(self._writers.values())
            delivered, latency = self.delivered_gone, self.latency_gone.copy()
        latency.add(self.latency_direct)
        for writer in writers:
            delivered += writer.delivered
            latency.add(writer.latency)
        return delivered, latency

    def writers_locked(self) -> list[Writer]:
        return list(self._writers.values())

    def append_locked(self, packets: list[Packet | int]) -> list[Writer]:
        """Put a committed batch in the ring; returns the writers to hand it to.

        An int in the batch is a close marker: that session is owed what came before.
        """
        fanout = self.fanout
        if not any(isinstance(p, int) for p in packets):  # no close marker: the usual batch
            ring = cast(list[Packet], packets)
            fanout.append_locked(ring)
            for newest in reversed(ring):  # ids rise within a batch: the last one is the top
                if newest.event.id is not None:
                    self.released_id = max(self.released_id, newest.event.id)
                    break
            return self._targets_locked(packets)
        run: list[Packet] = []
        for packet in packets:
            if isinstance(packet, int):
                fanout.append_locked(run)
                run = []
                writer = self._writers.get(packet)
                if writer is not None:
                    fanout.closed_at_locked(writer.session, fanout.head)
            else:
                run.append(packet)
                if packet.event.id is not None and packet.event.id > self.released_id:
                    self.released_id = packet.event.id
        fanout.append_locked(run)
        return self._targets_locked(packets)

    def _targets_locked(self, packets: list[Packet | int]) -> list[Writer]:
        """The writers a batch may be for: its sessions, the members of its rooms, whoever
        enters or leaves a room by it, and whoever it closes; everyone when that is most.

        A join in a crowded room (core/presence.py) is for the joiner alone: handing it to
        ten thousand writers, each to find nothing in it, made a crowd's arrival O(n²). A
        writer left out takes what it skipped with the next batch it is handed.
        """
        writers = self._writers
        head = self.fanout.head
        if head - self._full_at >= self._full_every:
            self._full_at = head
            return list(writers.values())
        ids: set[int] = set()
        enough = len(writers) // 2
        for packet in packets:
            if isinstance(packet, int):
                ids.add(packet)
                continue
            audience = packet.audience
            if audience.everyone:
                return list(writers.values())
            ids |= audience.sessions
            for room in audience.rooms:
                members = self._members(room)
                if len(members) > enough:  # the lobby's talk: no set of everyone first
                    return list(writers.values())
                ids.update(members)
            if packet.moves:
                ids.update((packet.enters, packet.exits))
            if len(ids) > enough:
                return list(writers.values())
        return [w for i in ids if (w := writers.get(i)) is not None]

    def hand_over(self, writers: list[Writer], born: float = 0.0) -> None:
        """Off the lock: write directly where it fits now, else wake the writer. Never blocks.

        Called by the bus's one delivering thread at a time. ``born`` is when the batch's
        first event was published: one latency figure per batch, once the direct writes
        are done (a writer thread measures its own writes).
        """
        now = time.monotonic()
        for writer in writers:
            if not writer.send_direct(now):
                writer.ring()
        if born:
            self.latency_direct.observe(time.monotonic() - born)
