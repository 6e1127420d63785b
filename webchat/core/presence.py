"""Presence in crowded rooms: one update per interval instead of an event per person.

When ten thousand people arrive in one room, an event per arrival sent to everyone
already there is fifty million deliveries. Like the big chat services, a room of
more than ``presence_batch_above`` people gets its joins and leaves (for another
room: entries and exits) gathered, and every ``presence_interval`` seconds one
``presence`` event tells the room who came and who went. Smaller rooms keep their
exact ``join``/``leave`` (``enter``/``exit``) lines.

People lists stay exact. An update is made when it is published, under the hub's
lock, from who is in the room *then*: ``joined`` lists those who arrived since the
last update and are still there (with their nick now), ``left`` the nicks of those
who went and that nobody in the room holds now. The two never overlap, so a client
adds and removes in any order; together with the individual ``nick``, ``away`` and
``back`` events (which still go to everyone) and the pages of ``/who`` and ``/names``
(see :mod:`webchat.core.listings`), its list is the room's.

The person arriving or going still gets their own event, and it is still in the
log and still carries their state to the other nodes of a cluster; only the room's
copy is replaced by the update. Each node gathers its own users' comings and goings.
"""

from __future__ import annotations

from typing import Any

from webchat.core.events import LOBBY, Audience, Event
from webchat.core.session import Session
from webchat.core.state import HubState

# Names an update's text spells out for a terminal; the JSON lists everyone.
NAMES_SHOWN = 30


class PresenceBatches:
    """Not thread-safe by itself: every method expects the hub's lock held."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub
        self._arrived: dict[str, dict[int, None]] = {}  # room -> session ids, in order
        self._departed: dict[str, dict[str, str]] = {}  # room -> nick key -> nick
        self._next_flush = 0.0

    def crowded_locked(self, room: str) -> bool:
        """True when the room's comings and goings go into updates (counting the one
        arriving or going: the size decides before and after alike)."""
        found = self.hub.rooms.get(room)
        return found is not None and len(found.members) > self.hub.limits.presence_batch_above

    def audience_locked(self, session: Session, crowded: list[str]) -> Audience:
        """Who hears of this person's join or leave now: their rooms that are not
        crowded, and themselves (who may be in no room that is not)."""
        if not crowded:
            return session.near()
        rooms = frozenset(r for r in session.rooms if r not in crowded)
        return Audience(rooms=rooms, sessions=frozenset({session.id}), origin=session.id)

    def arrived_locked(self, room: str, session: Session) -> None:
        self._arrived.setdefault(room, {})[session.id] = None

    def departed_locked(self, room: str, session: Session) -> None:
        self._departed.setdefault(room, {})[session.key] = session.nick

    def flush_locked(self, now: float, force: bool = False) -> None:
        """Publish each crowded room's update, once per interval (the hub's reaper), or
        now (``force``: the server is stopping, and the other nodes must hear of it)."""
        if (now < self._next_flush and not force) or not (self._arrived or self._departed):
            return
        self._next_flush = now + self.hub.limits.presence_interval
        for room in list({*self._arrived, *self._departed}):
            self._publish_locked(room, self._arrived.pop(room, {}), self._departed.pop(room, {}))

    def _publish_locked(
        self, room: str, arrived: dict[int, None], departed: dict[str, str]
    ) -> None:
        hub = self.hub
        found = hub.rooms.get(room)
        if found is None:
            return  # the room is gone (it emptied and expired): nobody is left to tell
        members = found.members
        came = [s for i in arrived if i in members and (s := hub.roster.get(i)) is not None]
        here = set(members.values())
        went = [nick for key, nick in departed.items() if key not in here]
        if not came and not went:
            return
        joined = [{"nick": s.nick, "via": s.via, "away": s.away} for s in came]
        extra: dict[str, Any] = {"joined": joined, "left": went, "users": len(members)}
        text = _summary(room, [s.nick for s in came], went)
        # The reaper's thread: it must never wait for room in the ring.
        hub.publish_locked(
            Event("presence", text=text, extra=extra, room=room), Audience.room(room), hold=False
        )


def _summary(room: str, came: list[str], went: list[str]) -> str:
    """``12 joined: a, b, ... and 2 more; 3 left: c, d, e`` (entered, in a room)."""
    verb = "joined" if room == LOBBY else "entered"
    parts = []
    if came:
        parts.append(f"{len(came)} {verb}: {_names(came)}")
    if went:
        parts.append(f"{len(went)} left: {_names(went)}")
    return "; ".join(parts)


def _names(nicks: list[str]) -> str:
    shown = ", ".join(nicks[:NAMES_SHOWN])
    more = len(nicks) - NAMES_SHOWN
    return f"{shown} and {more} more" if more > 0 else shown
