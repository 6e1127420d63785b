"""The welcome: who is here and which rooms you are in, for the newcomer only.

It travels in the joiner's own splice rather than the shared ring. Its people list
is the first page of everyone (``people_page``, see :mod:`webchat.core.listings`),
joined from each session's ready-made presence JSON, never re-encoded: a crowd
arriving costs a page per join, not everyone per join.
"""

from __future__ import annotations

import json

from webchat.core.events import Audience, Event, Packet, utc_now, with_json_fields
from webchat.core.session import Session
from webchat.core.state import HubState

# Names a welcome spells out; beyond that it gives a count (a room of 5,000 is one line).
WELCOME_NAMES = 30


def welcome_packet(hub: HubState, session: Session) -> Packet:
    """Called with the hub's lock held, right after the session was admitted."""
    total = hub.roster.count()
    if total <= hub.limits.people_page:  # all of them, in the order they came
        first, next_key = hub.roster.everyone(), None
    else:  # the first page in nick-key order: /who NEXT goes on from it
        first, next_key = hub.roster.page(None, hub.limits.people_page)
    others = [s.nick for s in first[: WELCOME_NAMES + 1] if s is not session][:WELCOME_NAMES]
    if total == 1:
        summary = "You are the only one here. Type /help for commands."
    else:
        shown = ", ".join([session.nick, *others])
        more = total - 1 - len(others)
        tail = f" and {more} more (/who lists everyone)" if more > 0 else ""
        summary = f"{total} online: {shown}{tail}. Type /help for commands."
    rooms = [room.summary() for name in session.rooms if (room := hub.rooms.get(name))]
    if len(rooms) > 1:
        summary += " You are in " + ", ".join(str(r["room"]) for r in rooms) + "."
    users = b"[" + b",".join([s.presence_json for s in first]) + b"]"
    fields = {
        "users": users,
        "total": str(total).encode(),
        "rooms": json.dumps(rooms, ensure_ascii=False, separators=(",", ":")).encode(),
        "active": json.dumps(session.active_room).encode(),
        # Whether this user proved its registered nick, and may moderate the server.
        "account": b"true" if session.account is not None else b"false",
        "operator": b"true" if hub.moderation.is_server_operator(session) else b"false",
    }
    if next_key is not None:  # the list is not whole: /who NEXT asks for the rest
        fields["next"] = json.dumps(next_key).encode()
    event = Event("welcome", session.nick, summary, ts=utc_now())
    return with_json_fields(event, fields, Audience.only(session.id))
