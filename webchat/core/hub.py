"""The hub: one lock over who is here, the rooms, and the order in which things happen.

It is a facade. The :class:`~webchat.core.roster.Roster` knows who is here, the
:class:`~webchat.core.rooms.Rooms` who is in which room, the
:class:`~webchat.bus.Bus` gives events their ids and makes them durable, and the
:class:`~webchat.core.fanout.Fanout` ring delivers them. The hub holds one lock
across all of them, so a change of membership and the events around it are in one
order for everyone. Once the bus hands a batch back (``_release``) the hub puts it
in the ring and writes it straight to the sockets it may be for, without waiting;
only a socket that does not take it all gets a writer thread. See docs/DESIGN-NOTES.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any

from webchat.accounts.logins import Logins
from webchat.accounts.sqlite import SqliteAccounts
from webchat.bus import Bus, Outgoing
from webchat.core.delivery import Delivery
from webchat.core.events import (
    Audience,
    Event,
    Packet,
    history_packet,
    make_packet,
)
from webchat.core.ignoring import Ignoring
from webchat.core.limits import HubLimits
from webchat.core.listings import Listings
from webchat.core.membership import Membership
from webchat.core.moderation import Moderation
from webchat.core.people import People
from webchat.core.presence import PresenceBatches
from webchat.core.rooms import Rooms
from webchat.core.roster import Claims, LocalClaims, Roster
from webchat.core.session import Session, Transport
from webchat.core.stats import HubStats
from webchat.history import History
from webchat.text import ChatError

log = logging.getLogger(__name__)


class Hub:
    """Thread-safe: every method may be called from any connection's thread."""

    def __init__(
        self,
        limits: HubLimits,
        bus: Bus,
        history: History,
        claims: Claims | None = None,
        first_session_id: int = 1,
        logins: Logins | None = None,
    ) -> None:
        self.limits = limits
        self.bus = bus
        self.history = history
        # Who holds which nick: the roster alone in one process, Redis in a cluster.
        self.claims = claims or LocalClaims()
        self.lock = threading.Lock()
        # What /metrics reads: plain numbers, changed under this lock (core/stats.py).
        self.stats = HubStats()
        self.roster = Roster(first_session_id)
        self.rooms = Rooms(limits)
        self.membership = Membership(self)
        self.people = People(self)
        self.listings = Listings(self)
        self.presence = PresenceBatches(self)
        # Accounts and sanctions: in memory unless a store is given (a file, or Redis).
        self.logins = logins or Logins(SqliteAccounts(":memory:"))
        self.moderation = Moderation(self, self.logins.store, self.logins.operators)
        self.ignoring = Ignoring(self.roster, self.logins.store)
        self.delivery = Delivery(
            self.lock,
            limits.outbox_max_events,
            limits.close_grace,
            self.roster.sessions,
            bus.last_id(),
            self._mark_close,
            self._members,
        )
        self.fanout = self.delivery.fanout
        # A log that never opened is told to each newcomer at join; only a failure
        # during the run is news for everyone.
        self._history_failure_told = history.error is not None
        self._stopping = threading.Event()
        # Set as the server stops: leave_all announces everyone (see shutdown).
        self.closing_all = False
        # What the connections' threads wait for once shutdown has begun (release()).
        self._released = threading.Event()
        bus.start(self._release)
        self._reaper = threading.Thread(target=self._reap_loop, name="hub-reaper", daemon=True)
        self._reaper.start()

    # ----- arriving and leaving ---------------------------------------------------

    def join(
        self,
        raw_nick: str,
        transport: Transport,
        since: int | None = None,
        rooms: tuple[str, ...] = (),
        *,
        address: str = "",
        account: str | None = None,
    ) -> Session:
        """Admit a user to #lobby (and ``rooms``); raise ChatError if refused.

        ``account`` is the registered nick key the user proved (see accounts.Logins).
        """
        return self.people.join(raw_nick, transport, since, rooms, address, account)

    def start(self, session: Session) -> None:
        self.delivery.start(session)

    def wake(self, session: Session) -> None:
        self.delivery.wake(session)

    def leave(self, session: Session, reason: str = "") -> None:
        """Remove a user and tell everyone who shares a room; safe to call more than once."""
        self.people.leave(session, reason)

    def wait_closed(self, session: Session, timeout: float) -> None:
        self.delivery.wait_closed(session, timeout)

    def wait_if_stopping(self) -> None:
        """Once shutdown() has begun, hold a connection's thread until release()."""
        if self.closing_all:
            self._released.wait()

    def release(self) -> None:
        """Let the connections' threads end, after shutdown(). A process that exits right
        after need not: ten thousand threads ending at once kept one alive for seconds."""
        self._released.set()

    def require_bus(self) -> None:
        """Refuse at once, before anything changes, while events cannot be sequenced."""
        if self.bus.error is not None:
            raise ChatError("unavailable", f"the chat cluster cannot be reached ({self.bus.error})")

    def close_session(self, session: Session, reason: str, code: int = 1000) -> None:
        """Flush what is owed, say goodbye and close; the first reason wins."""
        self.fanout.close(session, reason, code)

    # ----- publishing -------------------------------------------------------------

    def publish(
        self,
        type_: str,
        nick: str | None = None,
        text: str | None = None,
        *,
        room: str | None = None,
        extra: Mapping[str, Any] | None = None,
        audience: Audience | None = None,
        parties: frozenset[str] | None = None,
        origin: Session | None = None,
    ) -> Event:
        """Sequence and deliver one event; returns it as everyone will see it.

        Without an audience it goes to the room's members (everyone, without a room).
        A terminal user is not sent their own plain message (see Audience.echo).
        """
        origin_id = origin.id if origin is not None else 0
        if audience is None:
            echo = type_ != "message"
            if room is None:
                audience = Audience(everyone=True, origin=origin_id, echo=echo)
            else:
                audience = Audience.room(room, origin_id, echo)
        with self.lock:
            if origin is not None:
                origin.last_active = time.monotonic()
            event = Event(type_, nick, text, extra=extra, room=room)
            return self.publish_locked(event, audience, parties)

    def notify(
        self, session: Session, type_: str, text: str, room: str | None = None, **extra: Any
    ) -> None:
        """A one-off event for one session only: errors, replies, notices."""
        with self.lock:
            event = Event(type_, text=text, extra=extra or None, room=room)
            self.publish_locked(event, Audience.only(session.id))

    def publish_locked(
        self,
        event: Event,
        audience: Audience,
        parties: frozenset[str] | None = None,
        *,
        enters: int = 0,
        exits: int = 0,
        hold: bool = True,
        about: Session | None = None,
    ) -> Event:
        """Give the event its place in the order and hand it to the bus.

        Delivery happens when the bus hands it back (``_release``): rule 3, an event
        is in the log before anyone receives it. Replies go the same way, so each
        session still sees one order. ``about`` is the user an event about a person
        concerns, after the change.
        """
        if hold:  # the bus or the writers are a whole ring behind: hold the sender
            self.fanout.hold_sender_locked()
        if self._stopping.is_set():
            return event  # shutting down: the leaves that follow are nobody's news
        user = about.state() if about is not None else None  # for other nodes' mirrors
        item = Outgoing(event, audience, parties, enters=enters, exits=exits, user=user)
        return self.submit_locked(item).event

    def _members(self, name: str) -> Collection[int]:
        """The session ids in a room now (with the lock held): whom its events may reach."""
        room = self.rooms.get(name)
        return room.members.keys() if room is not None else ()

    def _mark_close(self, session: Session) -> None:
        """Called with the lock held when a session starts closing (Fanout.close_locked)."""
        self.submit_locked(Outgoing(Event(""), Audience(), closes=session.id))

    def submit_locked(self, item: Outgoing) -> Outgoing:
        item.born = time.monotonic()
        item = self.bus.submit(item)  # may refuse (unavailable): then nothing was submitted
        self.fanout.submitted += 1
        kind = item.event.type
        if kind and not item.replayed:  # not a close marker, nor /history shown again
            events = self.stats.events
            events[kind] = events.get(kind, 0) + 1
        return item

    def _release(self, items: list[Outgoing]) -> None:
        """Called by the bus's thread with each committed batch, in order."""
        packets = [_packet(i) for i in items]  # encoded off the lock
        # Most items are plain talk: only a few need more than a place in the ring.
        special = [i for i in items if i.remote or i.enters or i.closes or i.user or i.parties]
        replays = self.membership.replays(items) if special else {}  # off the lock: committed
        with self.lock:
            self.fanout.released += len(items) - sum(i.remote for i in special)
            for item in special:
                self.people.apply_locked(item)
            if replays:
                positions = _positions(packets, self.fanout.head)
                self.membership.splice_locked(items, replays, positions)
            writers = self.delivery.append_locked(packets)
            if self.history.error is not None and not self._history_failure_told:
                self._history_failure_told = True
                text = f"{self.history.error}; the chat goes on without it"
                # This is the bus's own thread: it must never wait for room in the ring.
                self.publish_locked(Event("system", text=text), Audience.all(), hold=False)
        self.delivery.hand_over(writers, _first_born(packets))

    # ----- housekeeping -----------------------------------------------------------

    def _reap_loop(self) -> None:
        """Close sessions that fell too far behind, cut those that will not close,
        wake the writers owed a keepalive, publish crowded rooms' presence updates, and
        forget rooms that stayed empty."""
        while not self._stopping.wait(self.limits.reap_interval):
            now = time.monotonic()
            self.delivery.ring_keepalives(now)  # only the writers that may be due
            with self.lock:
                self.presence.flush_locked(now)
                stuck = self.fanout.reap_locked(self.limits.outbox_max_bytes, now)
                for name in self.rooms.expire():
                    log.info("room %s was empty for %gs and is gone", name, self.limits.room_expiry)
            for s in stuck:
                s.transport.abort()

    def shutdown(self, reason: str = "server shutting down") -> None:
        """Close every session and stop; used when the server stops."""
        began = time.monotonic()
        with self.lock:
            self.closing_all = True  # the connections' own leaves wait for leave_all
            sessions = list(self.roster.sessions.values())
            for s in sessions:
                self.fanout.close_locked(s, reason, 1001)
        # Goodbyes first, while the bus has nothing else to do; then everyone's leave at
        # once, for the log and the other nodes (nobody here is left to hear it).
        self.delivery.wait_all_closed(self.limits.close_grace)
        log.info("goodbyes to %d sessions took %.2f s", len(sessions), time.monotonic() - began)
        self.people.leave_all(sessions, reason)
        self._stopping.set()
        self.bus.stop()
        self.history.close()
        log.info("the hub stopped in %.2f s", time.monotonic() - began)


def _packet(item: Outgoing) -> Packet | int:
    if item.closes:
        return item.closes  # no packet: only the point where that session's stream ends
    if item.replayed:
        return history_packet(item.event, item.audience)
    packet = make_packet(item.event, item.audience, enters=item.enters, exits=item.exits)
    packet.born = item.born
    return packet


def _first_born(packets: list[Packet | int]) -> float:
    """When the batch's first live event was published (0.0: none was, e.g. a replay)."""
    for packet in packets:
        if not isinstance(packet, int) and packet.born:
            return packet.born
    return 0.0


def _positions(packets: list[Packet | int], head: int) -> list[int]:
    """Where each item of a batch lands in the ring (a close marker takes no slot)."""
    out = []
    for packet in packets:
        out.append(head)
        head += not isinstance(packet, int)
    return out
