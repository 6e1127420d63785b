"""What a newcomer, a returning client or someone entering a room is shown of the past.

Everything here reads the history outside the hub's lock, up to a "seam": the
highest id already in the ring when the session was admitted. What came before
the seam is replayed from the log, what comes after arrives live, so nothing is
shown twice and nothing falls in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webchat.core.events import LOBBY, Audience, Event, Packet, history_packet, make_packet, utc_now
from webchat.history import History


@dataclass(frozen=True)
class ReplayLimits:
    history_replay: int = 50
    history_resume_max: int = 1000


def notice(session_id: int, text: str, room: str | None = None, **extra: Any) -> Packet:
    """A one-off system line for one session."""
    event = Event("system", text=text, ts=utc_now(), extra=extra or None, room=room)
    return make_packet(event, Audience.only(session_id))


def history_notice(
    session_id: int, count: int, room: str | None, earlier: bool, more: bool = False
) -> Packet:
    """The line before a replay; ``code`` tells programs what it is without reading it.

    ``more`` says the log holds older events than these (scroll-back has something).
    """
    if count == 0:
        return notice(session_id, "No history yet.", room, code="history_empty")
    plural = "s" if count != 1 else ""
    what = "earlier event" if earlier else "event"
    where = f" of {room}" if room is not None and room != LOBBY else ""
    text = f"History{where}: {count} {what}{plural} (times in UTC)"
    return notice(session_id, text, room, code="history", count=count, more=more)


def room_history(
    history: History, limits: ReplayLimits, session_id: int, room: str, seam: int
) -> list[Packet]:
    """A room's last events, for someone entering it (nothing when replay is off)."""
    if history.error is not None or limits.history_replay <= 0:
        return []
    events = history.recent(limits.history_replay + 1, room=room, up_to=seam)
    if not events:
        return []
    more = len(events) > limits.history_replay
    events = events[-limits.history_replay :]
    only = Audience.only(session_id)
    return [history_notice(session_id, len(events), room, True, more)] + [
        history_packet(e, only) for e in events
    ]


def join_replay(
    history: History,
    limits: ReplayLimits,
    session_id: int,
    rooms: list[str],
    seam: int,
    since: int | None,
) -> list[Packet]:
    """History for a newcomer in ``rooms``: exactly what it missed since ``since``, if it can."""
    if history.error is not None:
        return [notice(session_id, f"{history.error}; the chat goes on without it")]
    if since is None:
        return [p for room in rooms for p in room_history(history, limits, session_id, room, seam)]
    # Private messages are never replayed, not even on resume: a nick is no proof of
    # identity, and whoever takes a nick later must not read its mail.
    events: list[Event] | None = None
    if since <= seam:
        events = history.since(since, up_to=seam, viewer_key=None, rooms=rooms)
    why = ""
    if events is None:  # pruned past it, or an id this log never had
        why = "the log no longer holds it" if since < seam else "the log never had it"
    elif len(events) > limits.history_resume_max:
        events, why = None, f"you missed more than {limits.history_resume_max} events"
    if events is not None:
        only = Audience.only(session_id)
        head = [history_notice(session_id, len(events), None, True)] if events else []
        return head + [history_packet(e, only) for e in events]
    recent = [p for room in rooms for p in room_history(history, limits, session_id, room, seam)]
    shown = sum(1 for p in recent if p.event.id is not None)
    gap = notice(
        session_id,
        f"history after #{since} is not available ({why}); here are the last {shown} events",
        code="history_gap",
    )
    return [gap, *recent]
