"""The hub owns the chat's state: who is here, the order of events, and their delivery.

Fan-out is a shared ring of encoded packets rather than a queue per session.
Publishing gives an event its id and hands it to the log's committer; once it is
committed, the committer appends it to the ring and writes it straight to every
idle socket that takes it without waiting. A session whose socket is busy or full
is handed to its own writer thread, which takes everything between its cursor and
the head in one slice. Publishing stays cheap whatever the number of receivers,
everyone gets one order for free, and a session's "outbox" is exactly its lag
behind the head, bounded in events and bytes. A session whose peer stops reading
is disconnected as too slow; nobody else waits for it. See docs/DESIGN-NOTES.md.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webchat.events import (
    SEQUENCED,
    Event,
    Packet,
    history_packet,
    make_packet,
    presence_json,
    utc_now,
    welcome_packet,
)
from webchat.limits import TokenBucket
from webchat.session import Session, Transport
from webchat.store import GroupCommitter, Store, StoredEvent
from webchat.text import NickError, check_nick, nick_key

log = logging.getLogger(__name__)

# Names a welcome spells out; beyond that it gives a count (a room of 5,000 is one line).
WELCOME_NAMES = 30
# Seconds a closing writer waits between looks for the events it is still owed.
CLOSING_POLL = 0.05


@dataclass(frozen=True)
class HubLimits:
    max_nick_chars: int = 24
    max_message_chars: int = 2000
    outbox_max_events: int = 4096
    outbox_max_bytes: int = 2 * 1024 * 1024
    close_grace: float = 2.0
    reap_interval: float = 0.25
    rate_per_second: float = 3.0
    rate_burst: int = 15
    flood_refusals: int = 20
    flood_window: float = 10.0
    history_replay: int = 50
    history_resume_max: int = 1000

    @classmethod
    def from_settings(cls, settings: object) -> HubLimits:
        """The hub's share of the server settings: every field of the same name."""
        names = [f.name for f in dataclasses.fields(cls) if hasattr(settings, f.name)]
        return cls(**{name: getattr(settings, name) for name in names})


@dataclass(frozen=True, slots=True)
class Pending:
    """An event that has its id and is on its way to the log; delivered once committed."""

    event: Event
    audience: frozenset[int] | None
    tcp_skip: int
    parties: frozenset[str] | None
    history: bool = False  # a past event shown again: marked, and never logged twice


def _stored(item: Pending) -> StoredEvent | None:
    if item.event.id is None or item.history:
        return None  # replies to one session are not history, and history is logged already
    return StoredEvent(item.event, item.parties)


@dataclass(frozen=True)
class Presence:
    """A snapshot of one user, for /who and the welcome."""

    nick: str
    via: str
    idle: float
    away: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"nick": self.nick, "via": self.via, "idle": round(self.idle), "away": self.away}


class Hub:
    """Thread-safe: every method may be called from any connection's thread."""

    def __init__(self, limits: HubLimits | None = None, store: Store | None = None) -> None:
        self.limits = limits or HubLimits()
        self.store = store if store is not None else Store(":memory:")
        self._lock = threading.Lock()
        self._capacity = self.limits.outbox_max_events
        self._ring: list[Packet | None] = [None] * self._capacity
        self._head = 0
        self._bytes_total = 0
        # A lower bound of every open session's cursor (cursors only grow), so publishing
        # checks the sessions only when the ring is about to reuse a slot someone needs.
        self._low_cursor = 0
        self._room = threading.Condition(self._lock)
        self._room_waiters = 0
        # Ids go on from the log's high-water mark, so they keep increasing across restarts.
        self._next_event_id = self.store.last_id() + 1
        # Submitted to the committer / released into the ring, counted in events.
        self._submitted = 0
        self._released = 0
        # The highest event id in the ring: the seam between replay and live delivery.
        self._released_id = self._next_event_id - 1
        # A log that never opened is told to each newcomer at join; only a failure
        # during the run is news for everyone.
        self._history_failure_told = self.store.error is not None
        self._committer: GroupCommitter[Pending] = GroupCommitter(
            self.store, self._release, _stored
        )
        self._committer.start()
        self._next_session_id = 1
        self._sessions: dict[int, Session] = {}
        self._by_key: dict[str, Session] = {}
        self._stopping = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="hub-reaper", daemon=True)
        self._reaper.start()

    # ----- membership -------------------------------------------------------------

    def join(self, raw_nick: str, transport: Transport, since: int | None = None) -> Session:
        """Register a user and announce them; raise NickError if the nick is refused.

        The session's writer first sends history (the last events, or those after
        ``since`` for a client that resumes), then everything live from the seam on.
        """
        nick = check_nick(raw_nick, self.limits.max_nick_chars)
        key = nick_key(nick)
        with self._lock:
            if key in self._by_key:
                raise NickError(
                    "nick_taken", f"the nickname {nick!r} is already taken (in use); choose another"
                )
            bucket = TokenBucket(self.limits.rate_per_second, self.limits.rate_burst)
            session = Session(self, self._next_session_id, nick, key, transport, bucket)
            self._next_session_id += 1
            session.cursor = self._head
            session.cursor_bytes = self._bytes_total
            seam = self._released_id  # everything up to here is in the log, the rest comes live
            self._sessions[session.id] = session
            session.presence_json = presence_json(nick, session.via, None)
            self._by_key[key] = session
            welcome = self._welcome_locked(session)
            self._publish_locked(Event("join", nick, extra={"via": session.via}))
        log.info("%s joined via %s", nick, session.via)
        session.preamble = [*self._replay(session, seam, since), welcome]
        return session

    def _welcome_locked(self, session: Session) -> Packet:
        """Who is here, for the newcomer only: built from each session's cached presence.

        It is O(users) bytes per join, so it travels in the joiner's preamble rather than
        the shared ring, and its list is joined from ready-made JSON, never re-encoded.
        """
        count = len(self._sessions)
        others = [s.nick for s in self._sessions.values() if s is not session]
        if not others:
            summary = "You are the only one here. Type /help for commands."
        else:
            shown = ", ".join([session.nick, *others[:WELCOME_NAMES]])
            more = len(others) - WELCOME_NAMES
            tail = f" and {more} more (/who lists everyone)" if more > 0 else ""
            summary = f"{count} online: {shown}{tail}. Type /help for commands."
        users = b"[" + b",".join([s.presence_json for s in self._sessions.values()]) + b"]"
        return welcome_packet(Event("welcome", session.nick, summary, ts=utc_now()), users)

    def _replay(self, session: Session, seam: int, since: int | None) -> list[Packet]:
        """History for a newcomer, read outside the lock: the log is append-only."""
        store, count = self.store, self.limits.history_replay
        if store.error is not None:
            return [self._notice(f"{store.error}; the chat goes on without it")]
        notes: list[Packet] = []
        events: list[Event] | None = None
        why = ""
        if since is not None:
            # Private messages are never replayed, not even on resume: a nick is no proof
            # of identity, and whoever takes a nick later must not read its mail.
            if since <= seam:
                events = store.since(since, up_to=seam, viewer_key=None)
            resume_max = self.limits.history_resume_max
            if events is None:  # pruned past it, or an id this log never had
                why = "the log no longer holds it" if since < seam else "the log never had it"
            elif len(events) > resume_max:
                events, why = None, f"you missed more than {resume_max} events"
        if events is None:
            events = store.recent(count, up_to=seam) if count > 0 else []
        if why:
            notes.append(
                self._notice(
                    f"history after #{since} is not available ({why}); "
                    f"here are the last {len(events)} events",
                    code="history_gap",
                )
            )
        if events:
            plural = "s" if len(events) != 1 else ""
            notes.append(
                self._notice(f"History: {len(events)} earlier event{plural} (times in UTC)")
            )
        return notes + [history_packet(e) for e in events]

    def history(self, limit: int, before: int | None = None) -> list[Event]:
        """Public events from the log, oldest first, for /history and scroll-back."""
        with self._lock:
            seam = self._released_id
        return self.store.recent(limit, before=before, up_to=seam)

    @staticmethod
    def _notice(text: str, **extra: Any) -> Packet:
        return make_packet(Event("system", text=text, ts=utc_now(), extra=extra or None))

    def leave(self, session: Session, reason: str = "") -> None:
        """Remove a user and announce it; safe to call more than once."""
        with self._lock:
            if self._sessions.pop(session.id, None) is None:
                return
            self._by_key.pop(session.key, None)
            self._publish_locked(Event("leave", session.nick, reason or None))
            self._close_locked(session, reason or "left", 1000)
        log.info("%s left (%s)", session.nick, reason or "no reason")

    def rename(self, session: Session, raw_nick: str) -> None:
        nick = check_nick(raw_nick, self.limits.max_nick_chars)
        key = nick_key(nick)
        with self._lock:
            holder = self._by_key.get(key)
            if holder is not None and holder is not session:
                raise NickError(
                    "nick_taken", f"the nickname {nick!r} is already taken (in use); choose another"
                )
            if nick == session.nick:
                raise NickError("nick_same", f"you are already {nick}")
            old = session.nick
            del self._by_key[session.key]
            session.nick, session.key = nick, key
            session.presence_json = presence_json(nick, session.via, session.away)
            self._by_key[key] = session
            self._publish_locked(Event("nick", old, extra={"new": nick}))

    def find(self, raw_nick: str) -> Session | None:
        with self._lock:
            return self._by_key.get(nick_key(raw_nick))

    def session(self, session_id: int) -> Session | None:
        """A session by id: ids are never reused, so a stale id finds nobody."""
        with self._lock:
            return self._sessions.get(session_id)

    def presence(self) -> list[Presence]:
        with self._lock:
            return self._presence_locked()

    def count(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _presence_locked(self) -> list[Presence]:
        now = time.monotonic()
        return sorted(
            (Presence(s.nick, s.via, now - s.last_active, s.away) for s in self._sessions.values()),
            key=lambda p: p.nick.casefold(),
        )

    # ----- publishing -------------------------------------------------------------

    def publish(
        self,
        type_: str,
        nick: str | None = None,
        text: str | None = None,
        *,
        extra: Mapping[str, Any] | None = None,
        audience: frozenset[int] | None = None,
        origin: Session | None = None,
    ) -> Event:
        """Sequence, encode and deliver one event; returns it as everyone will see it."""
        with self._lock:
            if origin is not None:
                origin.last_active = time.monotonic()
            skip = origin.id if origin is not None and type_ == "message" else 0
            return self._publish_locked(Event(type_, nick, text, extra=extra), audience, skip)

    def tell(self, session: Session, type_: str, text: str, **extra: Any) -> None:
        """An unsequenced event for one session only: errors, replies, notices."""
        with self._lock:
            self._publish_locked(
                Event(type_, text=text, extra=extra or None), frozenset({session.id})
            )

    def tell_history(self, session: Session, events: list[Event]) -> None:
        """Past events for one session, marked as history, in the session's one order."""
        with self._lock:
            if not events:
                self._publish_locked(
                    Event("system", text="No history yet."), frozenset({session.id})
                )
                return
            plural = "s" if len(events) != 1 else ""
            self._publish_locked(
                Event("system", text=f"History: {len(events)} event{plural} (times in UTC)"),
                frozenset({session.id}),
            )
            for event in events:
                self._submitted += 1
                self._committer.submit(Pending(event, frozenset({session.id}), 0, None, True))

    def set_away(self, session: Session, reason: str | None) -> None:
        with self._lock:
            session.away = reason
            session.presence_json = presence_json(session.nick, session.via, reason)
            if reason is None:
                self._publish_locked(Event("back", session.nick))
            else:
                self._publish_locked(Event("away", session.nick, reason or None))

    def _publish_locked(
        self,
        event: Event,
        audience: frozenset[int] | None = None,
        tcp_skip: int = 0,
        hold: bool = True,
    ) -> Event:
        """Give the event its place in the order and hand it to the log.

        Delivery happens when the log has committed it (``_release``): rule 3, an
        event is in the log before anyone receives it. Everything, replies too, goes
        the same way, so each session still sees one order.
        """
        while hold and self._submitted - self._released >= self._capacity:
            # The committer or the writers are behind by a whole ring: hold the sender.
            self._room_waiters += 1
            try:
                self._room.wait(self.limits.close_grace)
            finally:
                self._room_waiters -= 1
        if self._stopping.is_set():
            return event  # shutting down: the leaves that follow are nobody's news
        parties = None
        if event.type in SEQUENCED:
            event = Event(
                event.type, event.nick, event.text, self._next_event_id, utc_now(), event.extra
            )
            self._next_event_id += 1
            if audience is not None:
                parties = frozenset(
                    self._sessions[i].key for i in audience if i in self._sessions
                ) or frozenset({""})
        else:
            event = Event(event.type, event.nick, event.text, None, utc_now(), event.extra)
        self._submitted += 1
        self._committer.submit(Pending(event, audience, tcp_skip, parties))
        return event

    def _release(self, items: list[Pending]) -> None:
        """Called by the committer thread once ``items`` are in the log, in order."""
        packets = [  # encoded off the lock
            history_packet(i.event, i.audience)
            if i.history
            else make_packet(i.event, i.audience, i.tcp_skip)
            for i in items
        ]
        with self._lock:
            for packet in packets:
                if self._head - self._capacity >= self._low_cursor:
                    self._make_room_locked()
                self._ring[self._head % self._capacity] = packet
                self._head += 1
                self._bytes_total += packet.size
                if packet.event.id is not None and packet.event.id > self._released_id:
                    self._released_id = packet.event.id
            self._released += len(packets)
            sessions = list(self._sessions.values())
            if self._room_waiters:
                self._room.notify_all()
            failed = self.store.error is not None and not self._history_failure_told
            if failed:
                self._history_failure_told = True
                self._publish_locked(
                    Event("system", text=f"{self.store.error}; the chat goes on without it"),
                    hold=False,  # this is the committer's own thread: it must never wait
                )
        # Fan out from here where a socket takes the bytes at once (the common case);
        # only the rest wake their writer threads. Never blocks: see Session.send_direct.
        now = time.monotonic()
        for s in sessions:
            if not s.send_direct(now):
                s.wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything published so far has been delivered to the ring."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._submitted
            while self._released < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._room_waiters += 1
                try:
                    self._room.wait(remaining)
                finally:
                    self._room_waiters -= 1
        return True

    def _make_room_locked(self) -> None:
        """Before the ring reuses a slot, everyone still open must have taken it.

        A session whose writer is stuck in a send is a peer that stopped reading: it is
        disconnected as too slow. A session whose writer is merely waiting for the CPU
        is waited for: the publisher (some reader thread) is held back instead, which
        slows the flood at its source. Nobody is waited for longer than close_grace.
        """
        deadline: float | None = None
        while True:
            oldest = self._head - self._capacity  # the packet whose slot is next
            low = self._head
            laggards: list[Session] = []
            for s in self._sessions.values():
                if s.closing:
                    continue
                if s.cursor > oldest:
                    low = min(low, s.cursor)
                elif s.sending:
                    self._close_locked(
                        s, f"too slow: more than {self._capacity} events waiting to be sent", 1008
                    )
                else:
                    laggards.append(s)
            if not laggards:
                self._low_cursor = low
                return
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.limits.close_grace
            if now >= deadline:
                for s in laggards:
                    self._close_locked(s, "too slow: its writer did not keep up", 1008)
                continue
            self._room_waiters += 1
            try:
                self._room.wait(deadline - now)
            finally:
                self._room_waiters -= 1

    # ----- delivery ---------------------------------------------------------------

    def take(self, session: Session, timeout: float | None) -> tuple[list[Packet], bool]:
        """Wait for something for this session (at most ``timeout``), then hand over all of it.

        Returns the packets (unfiltered: the session decides what is its own) and
        whether the session is closing and has been handed everything it is owed.
        """
        self.wait_for(session, timeout)
        return self.take_now(session)

    def wait_for(self, session: Session, timeout: float | None) -> None:
        """Sleep on the session's doorbell unless something is already there for it."""
        closing = session.closing
        end = min(self._head, session.close_seq) if closing else self._head
        done = closing and self._head >= session.close_seq
        if session.cursor >= end and not done and not session.pending:
            # A closing session waits only for its last few events to leave the log.
            session.wake.wait(CLOSING_POLL if closing else timeout)

    def take_now(self, session: Session) -> tuple[list[Packet], bool]:
        """Everything between the session's cursor and the head; called with its write lock.

        No hub lock: the releaser fills a slot before it moves the head, and no slot a
        live session still needs is reused (``_make_room_locked``).
        """
        closing = session.closing
        end = min(self._head, session.close_seq) if closing else self._head
        done = closing and self._head >= session.close_seq
        start = session.cursor
        if end - start > self._capacity:  # only a closing session is ever overtaken
            self.close_session(session, f"too slow: more than {self._capacity} events waiting")
            return [], True
        if start >= end:
            return [], done
        # Copy first, move the cursor after: until the cursor moves, the slots from
        # `start` on are kept for this session, so the copy cannot see a reused slot.
        first, last = start % self._capacity, end % self._capacity
        ring = self._ring
        chunk = ring[first:last] if first < last else ring[first:] + ring[:last]
        if self._head - start > self._capacity:  # a closing session is not waited for
            self.close_session(session, f"too slow: more than {self._capacity} events waiting")
            return [], True
        session.cursor = end
        session.cursor_bytes = self._bytes_total
        if self._room_waiters:
            with self._lock:
                self._room.notify_all()
        return chunk, done  # type: ignore[return-value]

    def close_session(self, session: Session, reason: str, code: int = 1000) -> None:
        with self._lock:
            self._close_locked(session, reason, code)

    def _close_locked(self, session: Session, reason: str, code: int) -> None:
        if session.closing:
            return
        session.closing = True
        session.closing_since = time.monotonic()
        session.close_reason = reason
        session.close_code = code
        # What was published before the close is still owed to it (errors that explain
        # the close, above all); what comes after is not.
        session.close_seq = self._submitted
        session.wake.set()

    # ----- housekeeping -----------------------------------------------------------

    def _reap_loop(self) -> None:
        """Disconnect sessions that fell too far behind, and cut those that will not close."""
        limits = self.limits
        while not self._stopping.wait(limits.reap_interval):
            now = time.monotonic()
            stuck: list[Session] = []
            with self._lock:
                for s in self._sessions.values():
                    if not s.closing:
                        lag_bytes = self._bytes_total - s.cursor_bytes
                        # Only a writer stuck in a send means the peer stopped reading.
                        if s.sending and lag_bytes > limits.outbox_max_bytes:
                            self._close_locked(
                                s,
                                f"too slow: {lag_bytes} bytes waiting to be sent",
                                1008,
                            )
                    elif now - s.closing_since > limits.close_grace:
                        stuck.append(s)
            for s in stuck:
                s.transport.abort()

    def shutdown(self, reason: str = "server shutting down") -> None:
        """Close every session and stop the reaper; used when the server stops."""
        with self._lock:
            sessions = list(self._sessions.values())
            for s in sessions:
                self._close_locked(s, reason, 1001)
        for s in sessions:
            s.wait_closed(self.limits.close_grace)
        self._stopping.set()
        self._committer.stop()
        self.store.close()
