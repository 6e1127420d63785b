"""Rooms in use: entering, leaving, topics, member lists, and posting into a room.

Each change happens under the hub's lock together with the event that announces
it, so membership and the order of events agree. Someone who enters a room
mid-conversation starts receiving it at their own ``enter`` event; everything of
the room ordered before that event is shown as history, read from the log once
the ``enter`` is committed (so nothing still on its way is missed), and spliced
in right before it (see :class:`~webchat.core.session.Splice`).
"""

from __future__ import annotations

import time

from webchat.bus import Outgoing
from webchat.core.events import LOBBY, Audience, Event, Packet
from webchat.core.replay import notice, room_history
from webchat.core.rooms import Room, check_room
from webchat.core.session import Session, Splice
from webchat.core.state import HubState
from webchat.text import ChatError


def not_in_room(room: str) -> ChatError:
    return ChatError("not_in_room", f"you are not in {room}; /join {room} first")


class Membership:
    """The room operations of one hub; every method may be called from any thread."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub

    def target(self, session: Session, raw: str | None) -> str:
        """The room a command acts in: the one named, else the active one."""
        if raw:
            return check_room(raw)
        if session.active_room is None:
            raise ChatError("not_in_room", "you are in no room; /join #room first")
        return session.active_room

    def post(self, session: Session, type_: str, text: str, room: str) -> Event:
        """A message or an action in a room the user is in; refused with not_in_room."""
        hub = self.hub
        with hub.lock:
            if room not in session.rooms:
                raise not_in_room(room)
            hub.moderation.check_post_locked(session, room)
            session.last_active = time.monotonic()
            audience = Audience.room(room, session.id, echo=type_ != "message")
            event = Event(type_, session.nick, text, room=room)
            return hub.publish_locked(event, audience)

    def enter(self, session: Session, raw: str) -> bool:
        """Enter a room (creating it if new) and make it active; False if already in it.

        The history shown on entering is added when the ``enter`` is released
        (:meth:`replays`, :meth:`splice_locked`).
        """
        name = check_room(raw)
        hub = self.hub
        hub.require_bus()
        if name not in session.rooms and not hub.moderation.is_server_operator(session):
            hub.moderation.check_ban(name, session.key, session.address)
        with hub.lock:
            if name in session.rooms:
                session.active_room = name
                return False
            hub.rooms.check_enter(name, len(session.rooms))
            hub.rooms.enter(name, session.id, session.key)
            session.rooms[name] = None
            session.active_room = name
            heard = Audience.room(name)
            if hub.presence.crowded_locked(name):  # the room hears of it in an update
                hub.presence.arrived_locked(name, session)
                heard = Audience.only(session.id)
            event = Event("enter", session.nick, room=name)
            hub.publish_locked(event, heard, enters=session.id, about=session)
        return True

    def history(self, room: str, limit: int, before: int | None = None) -> list[Event]:
        """A room's public events from the log, oldest first, for /history and scroll-back."""
        with self.hub.lock:
            seam = self.hub.delivery.released_id
        return self.hub.history.recent(limit, room=room, before=before, up_to=seam)

    def show_history(self, session: Session, notice: Event, events: list[Event]) -> None:
        """Past events for one session, marked as history, in the session's one order."""
        with self.hub.lock:
            self.hub.publish_locked(notice, Audience.only(session.id))
            only = Audience.only(session.id)
            for event in events:
                self.hub.submit_locked(Outgoing(event, only, replayed=True))

    def replays(self, items: list[Outgoing]) -> dict[int, list[Packet]]:
        """For each ``enter`` in a committed batch, the room's history before it.

        Called off the lock by the bus's thread: everything ordered before the enter
        is in the log by now, so the replay and the live events meet exactly.
        """
        hub = self.hub
        return {
            index: room_history(hub.history, hub.limits, item.enters, room, event_id - 1)
            for index, item in enumerate(items)
            if item.enters
            and not item.remote  # the enterer is on another node, which shows them the past
            and (room := item.event.room) is not None
            and (event_id := item.event.id) is not None
        }

    def splice_locked(
        self, items: list[Outgoing], replays: dict[int, list[Packet]], positions: list[int]
    ) -> None:
        """Before the batch goes into the ring (item i at ``positions[i]``): each
        enterer's history and a notice go in right before their own ``enter``."""
        hub = self.hub
        for index, packets in replays.items():
            item = items[index]
            session = hub.roster.sessions.get(item.enters)
            room = hub.rooms.get(item.event.room or "")
            if session is None or room is None:
                continue
            about = notice(session.id, _describe(room), room.name, code="room", topic=room.topic)
            session.splices.append(Splice(positions[index], [*packets, about]))

    def part(self, session: Session, raw: str | None, reason: str = "") -> str:
        """Leave a room; plain lines then go to the lobby, or the room entered last."""
        name = self.target(session, raw)
        hub = self.hub
        hub.require_bus()
        with hub.lock:
            if name not in session.rooms:
                raise not_in_room(name)
            heard = Audience.room(name)
            if hub.presence.crowded_locked(name):  # the room hears of it in an update
                hub.presence.departed_locked(name, session)
                heard = Audience.only(session.id)
            hub.rooms.exit(name, session.id)
            del session.rooms[name]
            event = Event("exit", session.nick, reason or None, room=name)
            hub.publish_locked(event, heard, exits=session.id, about=session)
            if session.active_room == name:
                rest = list(session.rooms)
                fallback = rest[-1] if rest else None
                session.active_room = LOBBY if LOBBY in session.rooms else fallback
        return name

    def set_topic(self, session: Session, room: str, text: str) -> None:
        hub = self.hub
        hub.rooms.check_topic(text)
        hub.require_bus()
        with hub.lock:
            found = hub.rooms.get(room)
            if found is None or room not in session.rooms:
                raise not_in_room(room)
            hub.moderation.check_post_locked(session, room)
            found.topic, found.topic_by = text, session.nick
            hub.publish_locked(Event("topic", session.nick, text, room=room), Audience.room(room))

    def room(self, name: str) -> Room:
        """A room that exists now; ChatError no_such_room otherwise."""
        with self.hub.lock:
            room = self.hub.rooms.get(name)
            if room is None:
                raise ChatError("no_such_room", f"there is no room {name} now; /rooms lists them")
            return Room(name, room.permanent, room.topic, room.topic_by, dict(room.members))

    def listing(self) -> list[dict[str, object]]:
        with self.hub.lock:
            return [room.summary() for room in self.hub.rooms.listing()]


def _describe(room: Room) -> str:
    count = len(room.members)
    people = f"{count} {'person' if count == 1 else 'people'} here"
    topic = f"; topic: {room.topic}" if room.topic else "; no topic (/topic TEXT sets one)"
    return f"You are now in {room.name} ({people}){topic}"
