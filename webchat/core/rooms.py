"""Rooms: their names, members, topics and operators, and the limits on them.

:class:`Rooms` is plain data guarded by the hub's lock: the hub calls it while it
holds that lock, so membership, the order of events and delivery agree.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from webchat.core.events import LOBBY
from webchat.text import ChatError

ROOM_NAME = re.compile(r"#[a-z0-9_-]{1,32}")


def check_room(raw: str) -> str:
    """The room's name as the server shows it, or :class:`ChatError` ``bad_room``.

    Letters compare case-insensitively and are shown in lower case. ``dev`` is taken
    as ``#dev``: people forget the ``#``, and a room is the only thing it can mean.
    """
    name = raw.strip().lower()
    if name and not name.startswith("#"):
        name = "#" + name
    if not ROOM_NAME.fullmatch(name):
        raise ChatError(
            "bad_room",
            f"{raw.strip()!r} is not a room name: '#' and 1 to 32 of a-z, 0-9, '_' and '-'",
        )
    return name


@dataclass(frozen=True)
class RoomLimits:
    max_rooms_per_user: int = 20
    max_rooms: int = 1000
    max_topic_chars: int = 300
    # Seconds an empty room lingers (with its topic) before it is forgotten.
    room_expiry: float = 300.0
    permanent_rooms: tuple[str, ...] = (LOBBY,)


@dataclass
class Room:
    name: str
    permanent: bool = False
    topic: str = ""
    topic_by: str | None = None
    members: dict[int, str] = field(default_factory=dict)  # session id -> nick key
    operators: set[str] = field(default_factory=set)  # nick keys
    empty_since: float | None = None

    def summary(self) -> dict[str, object]:
        return {"room": self.name, "users": len(self.members), "topic": self.topic}


class Rooms:
    """Every room on the server; not thread-safe by itself (the hub's lock guards it)."""

    def __init__(self, limits: RoomLimits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._rooms: dict[str, Room] = {}
        for raw in (LOBBY, *limits.permanent_rooms):
            name = check_room(raw)
            self._rooms[name] = Room(name, permanent=True, empty_since=clock())

    def get(self, name: str) -> Room | None:
        return self._rooms.get(name)

    def listing(self) -> list[Room]:
        """Rooms that exist now, the busiest first, then by name."""
        return sorted(self._rooms.values(), key=lambda r: (-len(r.members), r.name))

    def check_enter(self, name: str, held: int) -> None:
        """Raise ChatError if a user in ``held`` rooms may not enter ``name``."""
        limit = self.limits.max_rooms_per_user
        if held >= limit:
            raise ChatError(
                "too_many_rooms",
                f"you are in {held} rooms, the most one person may be in; /part one",
            )
        if name not in self._rooms and len(self._rooms) >= self.limits.max_rooms:
            raise ChatError(
                "rooms_full",
                f"the server has {len(self._rooms)} rooms, its limit; "
                "enter an existing one (/rooms)",
            )

    def enter(self, name: str, session_id: int, key: str) -> Room:
        """Add a member, creating the room (with them as its operator) if it is new."""
        room = self._rooms.get(name)
        if room is None:
            room = self._rooms[name] = Room(name, operators={key})
        room.members[session_id] = key
        room.empty_since = None
        return room

    def enter_all(self, names: list[str], session_id: int, key: str) -> None:
        """Enter every room or none: a refusal undoes the rooms entered, and made."""
        made: list[str] = []
        try:
            for held, name in enumerate(names):  # one by one: each may create a room
                self.check_enter(name, held)
                if name not in self._rooms:
                    made.append(name)
                self.enter(name, session_id, key)
        except ChatError:
            for name in names:
                self.exit(name, session_id)
            for name in made:
                del self._rooms[name]
            raise

    def exit(self, name: str, session_id: int) -> None:
        room = self._rooms.get(name)
        if room is None or session_id not in room.members:
            return
        del room.members[session_id]
        if not room.members:
            room.empty_since = self._clock()

    def rekey(self, names: list[str], session_id: int, old_key: str, new_key: str) -> None:
        """A member changed nick: membership and operator status follow the person,
        also in rooms they left (whoever takes the old nick next is not an operator)."""
        for name in names:
            self._rooms[name].members[session_id] = new_key
        for room in self._rooms.values():
            if old_key in room.operators:
                room.operators.discard(old_key)
                room.operators.add(new_key)

    def forget_operator(self, key: str) -> None:
        """Someone who never proved their nick left: their operator status goes with them."""
        for room in self._rooms.values():
            room.operators.discard(key)

    def check_topic(self, text: str) -> None:
        limit = self.limits.max_topic_chars
        if len(text) > limit:
            raise ChatError(
                "topic_too_long", f"the topic is {len(text)} characters; the limit is {limit}"
            )

    def expire(self) -> list[str]:
        """Forget rooms that stayed empty past the expiry; their history stays in the log."""
        horizon = self._clock() - self.limits.room_expiry
        gone = [
            r.name
            for r in self._rooms.values()
            if not r.permanent and r.empty_since is not None and r.empty_since <= horizon
        ]
        for name in gone:
            del self._rooms[name]
        return gone
