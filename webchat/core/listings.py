"""People lists in pages: the welcome's, /who's and /names'.

A list of ten thousand people is half a megabyte; sent in every welcome, a crowd
arriving costs O(n²) bytes. So a list is at most ``people_page`` people, in nick-key
order, with the total and the key to ask for the next page from. A page is made
and its reply published under one hold of the hub's lock, so it sits at its true
place in the order: a client that applies pages and the events between them in the
order received ends with the exact list (see :meth:`Roster.page`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webchat.core.events import LOBBY, Audience, Event
from webchat.core.roster import Presence
from webchat.core.session import Session
from webchat.core.state import HubState
from webchat.text import ChatError


@dataclass(frozen=True)
class Page:
    """One page of a people list: who, how many in all, and where the next page starts."""

    people: list[Presence]
    total: int
    after: str | None  # where it starts: None for the first page
    next: str | None  # the nick key to ask the next page after; None: this is the last

    def fields(self) -> dict[str, Any]:
        """What a reply carries besides its text (no ``after`` on the first page, no
        ``next`` on the last: a field that does not apply is left out)."""
        fields: dict[str, Any] = {"users": [p.as_dict() for p in self.people], "total": self.total}
        if self.after is not None:
            fields["after"] = self.after
        if self.next is not None:
            fields["next"] = self.next
        return fields


# Renders a page as (text, extra fields) for the reply.
Render = Callable[[Page], tuple[str, dict[str, Any]]]


class Listings:
    """Every method may be called from any thread; ``_locked`` ones with the hub's lock."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub

    def page_locked(self, room: str | None, after: str | None) -> Page:
        """A page of everyone (``room`` None) or of a room's members, after ``after``."""
        hub = self.hub
        limit = hub.limits.people_page
        if room is None or room == LOBBY:  # everyone is in the lobby
            people, next_key = hub.roster.page(after, limit)
            is_op: Callable[[Session], bool] = hub.moderation.is_server_operator
            total = hub.roster.count()
        else:
            found = hub.rooms.get(room)
            if found is None:
                raise ChatError("no_such_room", f"there is no room {room} now; /rooms lists them")
            keys = sorted(found.members.values())
            people, next_key = hub.roster.page(after, limit, keys)
            total = len(keys)

            def is_op(s: Session) -> bool:
                return hub.moderation.may_moderate_locked(s, room)

        return Page(hub.roster.presence(people, is_op), total, after, next_key)

    def reply(
        self, session: Session, type_: str, room: str | None, after: str | None, render: Render
    ) -> None:
        """Publish a page to ``session`` at the place in the order where it was made."""
        hub = self.hub
        with hub.lock:
            page = self.page_locked(room, after)
            text, extra = render(page)
            event = Event(type_, text=text, extra=extra, room=room)
            hub.publish_locked(event, Audience.only(session.id))
