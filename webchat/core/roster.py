"""Who is here: sessions by id and by nick, nick claims, and presence snapshots.

Plain data guarded by the hub's lock, like :mod:`webchat.core.rooms`. A cluster
roster (nicks unique across nodes) replaces this one behind the same methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from webchat.core.events import presence_json
from webchat.core.session import Session
from webchat.text import NickError


def nick_taken(nick: str) -> NickError:
    return NickError(
        "nick_taken", f"the nickname {nick!r} is already taken (in use); choose another"
    )


@dataclass(frozen=True)
class Presence:
    """A snapshot of one user, for /who, /names and the welcome."""

    nick: str
    via: str
    idle: float
    away: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"nick": self.nick, "via": self.via, "idle": round(self.idle), "away": self.away}


class Roster:
    """Every joined session; not thread-safe by itself (the hub's lock guards it)."""

    def __init__(self) -> None:
        self.sessions: dict[int, Session] = {}
        self._by_key: dict[str, Session] = {}
        self._next_id = 1

    def next_id(self) -> int:
        """Session ids are never reused, so a stale id finds nobody."""
        session_id, self._next_id = self._next_id, self._next_id + 1
        return session_id

    def claim(self, session: Session) -> None:
        if session.key in self._by_key:
            raise nick_taken(session.nick)
        self.sessions[session.id] = session
        self._by_key[session.key] = session
        session.presence_json = presence_json(session.nick, session.via, None)

    def release(self, session: Session) -> bool:
        """Forget the session; False if it was already gone."""
        if self.sessions.pop(session.id, None) is None:
            return False
        self._by_key.pop(session.key, None)
        return True

    def rename(self, session: Session, nick: str, key: str) -> None:
        holder = self._by_key.get(key)
        if holder is not None and holder is not session:
            raise nick_taken(nick)
        if nick == session.nick:
            raise NickError("nick_same", f"you are already {nick}")
        del self._by_key[session.key]
        session.nick, session.key = nick, key
        self._by_key[key] = session
        self.refresh(session)

    @staticmethod
    def refresh(session: Session) -> None:
        session.presence_json = presence_json(session.nick, session.via, session.away)

    def by_key(self, key: str) -> Session | None:
        return self._by_key.get(key)

    def presence(self, ids: list[int] | None = None) -> list[Presence]:
        """Everyone (or these session ids), sorted by nick."""
        now = time.monotonic()
        chosen = self.sessions.values() if ids is None else (self.sessions[i] for i in ids)
        return sorted(
            (Presence(s.nick, s.via, now - s.last_active, s.away) for s in chosen),
            key=lambda p: p.nick.casefold(),
        )
