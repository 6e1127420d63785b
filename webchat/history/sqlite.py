"""The chat's history: an append-only log of sequenced events in SQLite.

DESIGN.md rule 3 says an event is in the log before it is delivered; the bus
(:mod:`webchat.bus.local`) appends each batch here in one transaction before it
hands the batch on. A log that cannot be written never stops the chat:
:class:`SqliteHistory` records why in :attr:`SqliteHistory.error` and from then on
behaves as a disabled log.

Connections: every write goes through one connection, used by the bus's
committer thread (a lock keeps direct calls from other threads safe too). Reads
take a connection of their own from a small pool (:mod:`~webchat.history.pool`),
so under WAL they see every committed batch and never wait for a write.
``":memory:"`` is one database per connection, so there a single connection
serves reads and writes under the lock. The schema and its migrations are in
:mod:`~webchat.history.schema`.

The store assumes it is the only writer of its file (one webchat process per
database), which lets it keep the row count and the highest id in memory.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from webchat.core.events import LOBBY, SEQUENCED, Event
from webchat.history.pool import ReadPool
from webchat.history.schema import (
    INSERT,
    RAISE_META,
    delete_oldest,
    insert_one_by_one,
    open_log,
)

log = logging.getLogger(__name__)

# Rows deleted per pruning transaction: small, so the write lock is never held long.
PRUNE_BATCH = 1000
# Rows the committer prunes between two batches of appends, so that shrinking a big
# log after a restart does not hold up delivery.
PRUNE_BUDGET = 10 * PRUNE_BATCH
BUSY_TIMEOUT = 5.0
_MAX_ID = 2**63 - 1

_COLUMNS = "id, ts, type, nick, text, extra, room"

_Row = tuple[
    int,
    str,
    str,
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    float,
    str | None,
    str | None,
]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the log keeps it: who may read it travels with it, so history never leaks."""

    event: Event
    parties: frozenset[str] | None  # None: public; else the nick keys that may see it
    # For an event about a person rather than a room (join, leave, nick, away, back):
    # the rooms whose members were told, so a replay tells the same people.
    scope: frozenset[str] | None = None

    def __post_init__(self) -> None:
        event = self.event
        if event.id is None or event.ts is None:
            raise ValueError(f"only sequenced events (with id and ts) are logged: {event!r}")
        if event.type not in SEQUENCED:
            raise ValueError(f"event type {event.type!r} is not sequenced, so it is not logged")
        if self.parties is not None and not 1 <= len(self.parties) <= 2:
            raise ValueError(f"a private event has one or two parties, not {len(self.parties)}")
        if event.type == "private" and self.parties is None:
            raise ValueError("a private event needs its parties, or history would show it to all")


class SqliteHistory:
    """The history log; never raises once built, so the chat outlives its disk."""

    def __init__(
        self,
        path: str,
        *,
        retention_events: int = 100_000,
        retention_seconds: float = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.retention_events = retention_events
        self.retention_seconds = retention_seconds
        self._clock = clock
        self._memory = path in ("", ":memory:")
        self._lock = threading.Lock()  # the writer connection (and, in memory, every read)
        self._readers = ReadPool(self._connect)
        self._writer: sqlite3.Connection | None = None
        self._error: str | None = None
        self._closed = False
        self._last_id = 0
        self._rows = 0
        self._commits = 0
        try:
            self._writer = self._open()
        except (sqlite3.Error, OSError, ValueError) as exc:  # ValueError: a NUL in the path
            self._fail(exc, "open")

    # ----- state ------------------------------------------------------------------

    @property
    def error(self) -> str | None:
        """None while the log works; else one line for operators and /healthz."""
        return self._error

    @property
    def commits(self) -> int:
        """Append transactions committed: fewer than events appended means batching works."""
        return self._commits

    def last_id(self) -> int:
        """The highest id ever stored, pruned or not, so ids keep rising across restarts."""
        return self._last_id

    # ----- writing ----------------------------------------------------------------

    def mark_gap(self, through: int) -> None:
        """Events up to ``through`` that this log lacks are gone for good (a cluster's
        stream no longer held them): a resume from before them is told so."""
        with self._lock:
            conn = self._writer
            if conn is None or self._error is not None:
                return
            try:
                conn.execute(RAISE_META, ("pruned_through", through))
            except sqlite3.Error as exc:
                self._fail(exc, "mark a gap in")

    def append(self, events: Sequence[StoredEvent]) -> None:
        """Write a whole batch in one transaction: one commit for many events (group commit)."""
        if not events:
            return
        created = self._clock()
        rows: list[_Row] = []
        for stored in events:
            try:
                rows.append(_row(stored, created))
            except (TypeError, ValueError) as exc:
                log.error("history: event %s not logged: %s", stored.event.id, exc)
        if not rows:
            return
        with self._lock:
            conn = self._writer
            if conn is None or self._error is not None:
                return
            try:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.executemany(INSERT, rows)
                except (ValueError, TypeError, OverflowError):
                    # A value SQLite cannot take (a lone surrogate, a huge int): keep the rest.
                    _rollback(conn)
                    rows = insert_one_by_one(conn, rows)
                if rows:
                    conn.execute(RAISE_META, ("last_id", max(row[0] for row in rows)))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                self._fail(exc, "append")
                return
            self._last_id = max(self._last_id, max((row[0] for row in rows), default=0))
            self._rows += len(rows)
            self._commits += 1

    def prune(self, limit: int | None = None) -> int:
        """Enforce retention, oldest first, in short transactions; returns rows deleted.

        Deleting only a prefix of ids keeps :meth:`since` exact: everything after
        ``pruned_through`` is still there. ``limit`` caps the rows deleted by one call.
        """
        deleted = 0
        while limit is None or deleted < limit:
            batch = PRUNE_BATCH if limit is None else min(PRUNE_BATCH, limit - deleted)
            n = self._prune_batch(batch)
            deleted += n
            if n < batch:
                break
        return deleted

    def _prune_batch(self, batch: int) -> int:
        with self._lock:
            conn = self._writer
            if conn is None or self._error is not None:
                return 0
            excess = self._rows - self.retention_events if self.retention_events > 0 else 0
            cutoff = self._clock() - self.retention_seconds if self.retention_seconds > 0 else None
            if excess <= 0 and cutoff is None:
                return 0
            try:
                conn.execute("BEGIN IMMEDIATE")
                deleted = delete_oldest(conn, batch, excess, cutoff)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(conn)
                self._fail(exc, "prune")
                return 0
            self._rows -= deleted
            return deleted

    # ----- reading ----------------------------------------------------------------

    def recent(
        self,
        limit: int,
        *,
        room: str = LOBBY,
        before: int | None = None,
        up_to: int | None = None,
    ) -> list[Event]:
        """A room's newest public events, oldest first: what a newcomer sees of the past.

        The lobby's history also holds the server-wide events (joins, leaves, renames).
        """
        if limit <= 0 or self._error is not None:
            return []
        # The lobby's history also holds the events about people told in the lobby.
        scope, params = _scope(None, [room], people=room == LOBBY)
        try:
            with self._reading() as conn:
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events"
                    f" WHERE {scope} AND party_a IS NULL AND id < ? AND id <= ?"
                    " ORDER BY id DESC LIMIT ?",
                    (*params, _clamp(before, _MAX_ID), _clamp(up_to, _MAX_ID), limit),
                ).fetchall()
        except sqlite3.Error as exc:
            self._read_failed(exc, "recent")
            return []
        return [_event(row) for row in reversed(rows)]

    def since(
        self,
        after: int,
        *,
        up_to: int,
        viewer_key: str | None,
        rooms: Collection[str] | None = None,
    ) -> list[Event] | None:
        """Everything a returning viewer missed, or None when the log cannot say exactly.

        ``rooms`` limits it to those rooms' events (server-wide ones count as the
        lobby's); None means every room. ``viewer_key`` adds that viewer's private
        events. None means: the store is off, events after ``after`` were pruned, or
        ``after`` is beyond anything ever stored (the ids came from a run whose log
        was lost).
        """
        if self._error is not None:
            return None
        after = max(after, 0)
        if up_to <= after:
            return []
        scope, params = _scope(viewer_key, rooms)
        try:
            with self._reading() as conn:
                meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
                if after < meta.get("pruned_through", 0) or after > meta.get("last_id", 0):
                    return None
                rows = conn.execute(
                    f"SELECT {_COLUMNS} FROM events WHERE id > ? AND id <= ?"
                    f" AND {scope} ORDER BY id",
                    (_clamp(after, _MAX_ID), _clamp(up_to, _MAX_ID), *params),
                ).fetchall()
        except sqlite3.Error as exc:
            self._read_failed(exc, "since")
            return None
        return [_event(row) for row in rows]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so the checks and the rows come from one snapshot."""
        if self._memory:
            with self._lock:
                if self._writer is None:
                    raise sqlite3.ProgrammingError("the history store is closed")
                yield self._writer
            return
        conn = self._readers.checkout()
        ok = False
        try:
            conn.execute("BEGIN")
            yield conn
            conn.execute("COMMIT")
            ok = True
        finally:
            if not ok:
                _rollback(conn)
            self._readers.checkin(conn, ok)

    # ----- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        """Release the file; later calls act as a disabled log. Safe to call twice."""
        self._closed = True
        self._readers.close()
        with self._lock:
            writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except sqlite3.Error as exc:
                log.warning("history: closing %s: %s", self.path, exc)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )

    def _open(self) -> sqlite3.Connection:
        conn = self._connect()
        try:
            self._last_id, self._rows = open_log(conn, self.path, self._memory)
        except BaseException:
            _rollback(conn)
            conn.close()
            raise
        return conn

    def _fail(self, exc: BaseException, doing: str) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if doing == "open":
            reason = f"{reason} ({self.path!r})"
        if self._error is None:
            self._error = f"history is off: {reason}"
        log.error(
            "history is off: %s of %s failed: %s",
            doing,
            self.path or ":memory:",
            reason,
            exc_info=exc,
        )

    def _read_failed(self, exc: BaseException, doing: str) -> None:
        if not self._closed:
            log.warning("history: %s from %s failed: %s", doing, self.path, exc)


def _row(stored: StoredEvent, created: float) -> _Row:
    event = stored.event
    assert event.id is not None and event.ts is not None  # checked by StoredEvent
    extra = (
        None
        if event.extra is None
        else json.dumps(dict(event.extra), ensure_ascii=False, separators=(",", ":"))
    )
    party_a = party_b = None
    if stored.parties is not None:
        keys = sorted(stored.parties)
        party_a, party_b = keys[0], keys[-1]
    return (
        event.id,
        event.ts,
        event.type,
        event.nick,
        event.text,
        extra,
        party_a,
        party_b,
        created,
        event.room,
        None if stored.scope is None else "," + ",".join(sorted(stored.scope)) + ",",
    )


def _event(row: tuple[int, str, str, str | None, str | None, str | None, str | None]) -> Event:
    event_id, ts, type_, nick, text, extra, room = row
    loaded = None if extra is None else json.loads(extra)
    return Event(type_, nick, text, event_id, ts, loaded, room)


def _scope(
    viewer_key: str | None, rooms: Collection[str] | None, people: bool = True
) -> tuple[str, list[object]]:
    """The WHERE clause for what one viewer may be shown: public events of those rooms
    (all when ``rooms`` is None), and their own mail. ``people``: also the events about
    people (joins, leaves, renames) that were told in those rooms."""
    mail = "(party_a = ? OR party_b = ?)"
    if rooms is None:
        return f"(party_a IS NULL OR {mail})", [viewer_key, viewer_key]
    names = sorted(set(rooms))
    marks = ", ".join("?" * len(names))
    # An event about a person counts where its scope names one of the rooms (instr,
    # not LIKE: '_' is a wildcard there and a common letter in room names).
    told = " OR ".join("instr(scope, ?) > 0" for _ in names)
    if LOBBY in names:
        told = f"{told} OR scope IS NULL"  # logged before rooms existed: the lobby's
    public = f"room IN ({marks}) OR (room IS NULL AND party_a IS NULL AND ({told}))"
    params: list[object] = [*names, *(f",{name}," for name in names)]
    if not people:
        public, params = f"room IN ({marks})", [*names]
    if not names:
        public = "0"
        params = []
    return f"({public} OR {mail})", [*params, viewer_key, viewer_key]


def _clamp(value: int | None, default: int) -> int:
    if value is None:
        return default
    return max(-_MAX_ID, min(_MAX_ID, value))


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
