"""People: nick changes, away and back, and looking someone up.

Like :mod:`webchat.core.membership`, every change happens under the hub's lock
together with the event that announces it, to everyone who shares a room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webchat.core.events import Event
from webchat.core.roster import Presence
from webchat.core.session import Session
from webchat.text import check_nick, nick_key

if TYPE_CHECKING:
    from webchat.core.hub import Hub


class People:
    """The people operations of one hub; every method may be called from any thread."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def rename(self, session: Session, raw_nick: str) -> None:
        nick = check_nick(raw_nick, self.hub.limits.max_nick_chars)
        with self.hub.lock:
            old, old_key = session.nick, session.key
            self.hub.roster.rename(session, nick, nick_key(nick))
            self.hub.rooms.rekey(list(session.rooms), session.id, old_key, session.key)
            self.hub.publish_locked(Event("nick", old, extra={"new": nick}), session.near())

    def set_away(self, session: Session, reason: str | None) -> None:
        with self.hub.lock:
            session.away = reason
            self.hub.roster.refresh(session)
            if reason is None:
                event = Event("back", session.nick)
            else:
                event = Event("away", session.nick, reason or None)
            self.hub.publish_locked(event, session.near())

    def find(self, raw_nick: str) -> Session | None:
        with self.hub.lock:
            return self.hub.roster.by_key(nick_key(raw_nick))

    def session(self, session_id: int) -> Session | None:
        """A session by id: ids are never reused, so a stale id finds nobody."""
        with self.hub.lock:
            return self.hub.roster.sessions.get(session_id)

    def presence(self) -> list[Presence]:
        with self.hub.lock:
            return self.hub.roster.presence()

    def count(self) -> int:
        with self.hub.lock:
            return len(self.hub.roster.sessions)
