"""Events and clocks for the history and bus tests."""

from __future__ import annotations

import threading
from typing import Any

from webchat.core.events import Event
from webchat.history.sqlite import SqliteHistory, StoredEvent

WAIT = 10.0  # seconds; a test waits this long for a condition before it fails


def ev(
    event_id: int,
    type_: str = "message",
    nick: str | None = "alice",
    text: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Event:
    text = f"message {event_id}" if text is None and type_ == "message" else text
    return Event(type_, nick, text, event_id, f"2026-01-01T00:00:{event_id % 60:02d}.000Z", extra)


def public(event_id: int, **kw: Any) -> StoredEvent:
    return StoredEvent(ev(event_id, **kw), None)


def private(event_id: int, sender: str = "alice", to: str = "bob") -> StoredEvent:
    event = ev(event_id, "private", sender, f"psst {event_id}", {"to": to})
    return StoredEvent(event, frozenset({sender.lower(), to.lower()}))


def ids(events: list[Event] | None) -> list[int | None]:
    assert events is not None
    return [e.id for e in events]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def hammer_reads(store: SqliteHistory, done: threading.Event, problems: list[str]) -> None:
    """Read while writes go on: every answer must be a gap-free prefix of the log."""
    reads = 0
    while not done.is_set() or reads == 0:
        top = store.last_id()
        got = store.since(0, up_to=top, viewer_key=None)
        if got is None or ids(got) != list(range(1, top + 1)):
            problems.append(f"since(0, up_to={top}) gave {got and ids(got)[-3:]}")
            return
        newest = store.recent(5, up_to=top)
        if ids(newest) != list(range(max(1, top - 4), top + 1)):
            problems.append(f"recent(5, up_to={top}) gave {ids(newest)}")
            return
        reads += 1
