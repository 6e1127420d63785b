"""History: the log of sequenced events, behind a small protocol the core reads through.

Replay on join, ``since`` resume, ``/history`` and ``GET /api/history`` only ever
read; appending is the bus's job (it makes each event durable before delivery).
The embedded implementation is :class:`~webchat.history.sqlite.SqliteHistory`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from webchat.core.events import LOBBY, Event
from webchat.history.sqlite import SqliteHistory, StoredEvent

__all__ = ["History", "SqliteHistory", "StoredEvent"]


class History(Protocol):
    @property
    def error(self) -> str | None:
        """None while the log works; else one line for people and /healthz."""

    def last_id(self) -> int:
        """The highest id ever stored, so ids keep rising across restarts."""

    def append(self, events: Sequence[StoredEvent]) -> None:
        """Store a batch in one transaction."""

    def mark_gap(self, through: int) -> None:
        """Events up to ``through`` that the log lacks are gone: a resume from before is told."""

    def prune(self, limit: int | None = None) -> int:
        """Enforce retention; returns the rows deleted."""

    def recent(
        self, limit: int, *, room: str = LOBBY, before: int | None = None, up_to: int | None = None
    ) -> list[Event]:
        """A room's newest public events, oldest first."""

    def since(
        self,
        after: int,
        *,
        up_to: int,
        viewer_key: str | None,
        rooms: Collection[str] | None = None,
    ) -> list[Event] | None:
        """What a returning viewer missed in those rooms, or None if it cannot say exactly."""

    def close(self) -> None:
        """Release the storage; later calls act as a disabled log."""
