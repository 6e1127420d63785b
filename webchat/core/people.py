"""People: nick changes, away and back, and looking someone up.

Like :mod:`webchat.core.membership`, every change happens under the hub's lock
together with the event that announces it, to everyone who shares a room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webchat.bus import Outgoing
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
            event = Event("nick", old, extra={"new": nick})
            self.hub.publish_locked(event, session.near(), about=session)

    def set_away(self, session: Session, reason: str | None) -> None:
        with self.hub.lock:
            session.away = reason
            self.hub.roster.refresh(session)
            if reason is None:
                event = Event("back", session.nick)
            else:
                event = Event("away", session.nick, reason or None)
            self.hub.publish_locked(event, session.near(), about=session)

    def apply_locked(self, item: Outgoing) -> None:
        """What a delivered event changes about people here: who to /reply to, and, for
        an event of another node, this node's mirror of its user and their rooms."""
        event, audience = item.event, item.audience
        if event.type == "private":
            for session_id in audience.sessions - {audience.origin}:
                if (recipient := self.hub.roster.sessions.get(session_id)) is not None:
                    recipient.reply_to = audience.origin
        hub = self.hub
        if item.remote and event.type == "topic" and (room := hub.rooms.get(event.room or "")):
            room.topic, room.topic_by = event.text or "", event.nick
        if not item.remote or item.user is None:
            return
        user = dict(item.user)
        known = hub.roster.get(user["id"])
        for name in known.rooms if known is not None else ():
            hub.rooms.exit(name, user["id"])
        if event.type == "leave":
            if known is not None:
                hub.roster.release(known)
            return
        mirrored = hub.roster.mirror(user)
        for name in mirrored.rooms:
            hub.rooms.enter(name, mirrored.id, mirrored.key)

    def find(self, raw_nick: str) -> Session | None:
        with self.hub.lock:
            return self.hub.roster.by_key(nick_key(raw_nick))

    def session(self, session_id: int) -> Session | None:
        """A session by id: ids are never reused, so a stale id finds nobody."""
        with self.hub.lock:
            return self.hub.roster.get(session_id)

    def presence(self) -> list[Presence]:
        with self.hub.lock:
            return self.hub.roster.presence()

    def count(self) -> int:
        with self.hub.lock:
            return len(self.hub.roster.sessions) + len(self.hub.roster.remote)
