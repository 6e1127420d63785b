"""Events, who they are for, and their two wire forms, made once per event.

An :class:`Event` is what happened; an :class:`Audience` says who may receive it;
a :class:`Packet` is the event already encoded as a TCP line and as WebSocket
JSON, with its audience. Writers only join bytes, so a thousand receivers cost one
encoding, not a thousand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# Types that get an id and belong to the shared order (and so to history).
SEQUENCED = frozenset(
    {"message", "me", "private", "join", "leave", "nick", "away", "back", "enter", "exit", "topic"}
    | {"kick", "ban", "unban", "mute", "unmute", "op", "deop"}  # moderation, in the room
    | {"presence"}  # a crowded room's comings and goings (core/presence.py)
)
# The room everyone is in from the start; its events look on TCP as they did before rooms.
LOBBY = "#lobby"
# Fields the log does not keep, by event type. A crowded room's update names everyone who
# came and went: that describes one moment, for the lists of those present. Nobody reads
# it back (a newcomer's list comes from the welcome), and replaying every earlier update's
# lists to each newcomer made a crowd's arrival O(n²): 10,000 people took 76.2 s to join,
# against 28.8 s without (benchmarks/README.md). The log keeps the line and the count.
NOT_LOGGED: Mapping[str, frozenset[str]] = {"presence": frozenset({"joined", "left"})}

VIA_NAMES = {"tcp": "terminal", "web": "browser", "udp": "datagrams"}


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as the protocol promises."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_time(unix: float) -> str:
    """A unix time in the protocol's form (ISO 8601 UTC, milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in the chat; ``extra`` holds type-specific fields."""

    type: str
    nick: str | None = None
    text: str | None = None
    id: int | None = None
    ts: str | None = None
    extra: Mapping[str, Any] | None = None
    room: str | None = None  # the room it happened in; None for server-wide events

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.id is not None:
            out["id"] = self.id
        if self.ts is not None:
            out["ts"] = self.ts
        if self.nick is not None:
            out["nick"] = self.nick
        if self.room is not None:
            out["room"] = self.room
        if self.text is not None:
            out["text"] = self.text
        if self.extra:
            out.update(self.extra)
        return out

    def stamped(self, event_id: int | None, ts: str) -> Event:
        """The same event with its place in the order (or None for a one-off reply)."""
        return Event(self.type, self.nick, self.text, event_id, ts, self.extra, self.room)

    def as_logged(self) -> Event:
        """The event as the log keeps it: without the fields of NOT_LOGGED."""
        dropped = NOT_LOGGED.get(self.type)
        if not dropped or not self.extra:
            return self
        kept = {k: v for k, v in self.extra.items() if k not in dropped}
        return Event(self.type, self.nick, self.text, self.id, self.ts, kept, self.room)


@dataclass(slots=True)
class Audience:
    """Who may receive a packet: everyone, the members of rooms, or some sessions.

    Never changed once made (not frozen only because a frozen dataclass is several
    times slower to create, and one is made for every message).

    ``origin`` is the session that caused it. ``echo`` False means the origin's own
    copy is left out when its transport shows what its user typed (``nc`` does), so
    a terminal user is not shown their own line twice.
    """

    everyone: bool = False
    rooms: frozenset[str] = frozenset()
    sessions: frozenset[int] = frozenset()
    origin: int = 0
    echo: bool = True
    # The fan-out's fast path: the one room, when that is the whole audience.
    only_room: str | None = field(default=None, init=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.rooms) == 1 and not self.sessions and not self.everyone:
            self.only_room = next(iter(self.rooms))

    @classmethod
    def all(cls) -> Audience:
        return _EVERYONE

    @classmethod
    def room(cls, room: str, origin: int = 0, echo: bool = True) -> Audience:
        return cls(rooms=frozenset({room}), origin=origin, echo=echo)

    @classmethod
    def only(cls, *session_ids: int) -> Audience:
        return cls(sessions=frozenset(session_ids))


_EVERYONE = Audience(everyone=True)
NOBODY = Audience()


def encode_json(event: Event) -> bytes:
    """The WebSocket form: one compact JSON object, UTF-8."""
    return json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def encode_line(event: Event) -> bytes:
    """The TCP form: one human-readable line ending in CRLF."""
    return (render_line(event) + "\r\n").encode("utf-8", "replace")


def render_line(event: Event) -> str:
    """How a terminal user sees an event: ``[#room] `` first unless it is the lobby's."""
    body = _render_body(event)
    if event.room is not None and event.room != LOBBY:
        return f"[{event.room}] {body}"
    return body


def _render_body(event: Event) -> str:
    extra = event.extra or {}
    nick, text, kind = event.nick or "", event.text or "", event.type
    in_lobby = " " + LOBBY if event.room == LOBBY else ""
    if kind == "message":
        return f"{nick}: {text}"
    if kind == "me":
        return f"* {nick} {text}"
    if kind == "private":
        return f"[private] {nick} -> {extra.get('to', '')}: {text}"
    if kind == "join":
        return f"*** {nick} joined ({VIA_NAMES.get(str(extra.get('via')), 'unknown')})"
    if kind == "leave":
        return f"*** {nick} left" + (f" ({text})" if text else "")
    if kind == "enter":
        return f"*** {nick} entered{in_lobby}"
    if kind == "exit":
        return f"*** {nick} left{in_lobby}" + (f" ({text})" if text else "")
    if kind == "topic":
        return f"*** {nick} set the topic: {text}" if text else f"*** {nick} cleared the topic"
    if kind == "nick":
        return f"*** {nick} is now known as {extra.get('new', '')}"
    if kind == "away":
        return f"*** {nick} is away" + (f": {text}" if text else "")
    if kind == "back":
        return f"*** {nick} is back"
    if kind in _MODERATION_LINES:
        return _moderation_line(event, extra)
    if kind == "error":
        return f"*** error: {text}"
    if kind == "welcome":
        return f"*** Welcome, {nick}! {text}"
    return f"*** {text}"


# How a moderation action reads; #lobby's kicks and bans are from the whole server.
_MODERATION_LINES = {
    "kick": "{nick} kicked {target}{where}",
    "ban": "{nick} banned {target}{where} {span}",
    "mute": "{nick} muted {target}{where} {span}",
    "unban": "{nick} lifted the ban on {target}{where}",
    "unmute": "{nick} lifted the mute on {target}{where}",
    "op": "{nick} made {target} an operator",
    "deop": "{nick} took operator status from {target}",
}


def _moderation_line(event: Event, extra: Mapping[str, Any]) -> str:
    duration = extra.get("duration")
    where = ""
    if event.room == LOBBY:
        where = " from the server" if event.type in ("kick", "ban") else " everywhere"
        where = "" if event.type.startswith("un") else where
    body = _MODERATION_LINES[event.type].format(
        nick=event.nick or "",
        target=extra.get("target", ""),
        where=where,
        span=f"for {duration}" if duration else "until lifted",
    )
    return f"*** {body}" + (f" ({event.text})" if event.text else "")


@dataclass(slots=True)
class Packet:
    """An event encoded for both wires, with its audience; never changed once made.

    ``enters`` and ``exits`` name the session (if any) whose delivery membership of
    ``event.room`` changes at this point of the order: a session starts receiving a
    room's events right at the packet that lets it in, and stops right after the
    packet that sees it out, so what it gets of a room never depends on timing.
    """

    event: Event
    line: bytes
    json: bytes
    audience: Audience
    enters: int = 0
    exits: int = 0
    # True when enters or exits is set: the fan-out looks at them only then.
    moves: bool = field(default=False, init=False, compare=False)
    # time.monotonic() when it was published on this node (0: a replay, a welcome, or
    # not known); a writer measures delivery latency on the first packet it sends.
    born: float = field(default=0.0, init=False, compare=False)

    def __post_init__(self) -> None:
        if self.enters or self.exits:
            self.moves = True

    @property
    def size(self) -> int:
        return max(len(self.line), len(self.json))


def history_packet(event: Event, audience: Audience = NOBODY) -> Packet:
    """An event from the log, shown again: marked so nobody mistakes it for live.

    Over TCP it carries its time (UTC, HH:MM); over WebSocket ``"history": true``.
    """
    stamp = (event.ts or "")[11:16]
    line = (f"[{stamp}] " + render_line(event) + "\r\n").encode("utf-8", "replace")
    payload = {**event.as_dict(), "history": True}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Packet(event, line, body, audience)


def with_json_fields(event: Event, fields: Mapping[str, bytes], audience: Audience) -> Packet:
    """A packet whose JSON gets big fields spliced in as ready-made JSON, never re-encoded."""
    body = encode_json(event)[:-1]
    for name, raw in fields.items():
        body += b',"' + name.encode() + b'":' + raw
    return Packet(event, encode_line(event), body + b"}", audience)


def presence_json(nick: str, via: str, away: str | None) -> bytes:
    """One user as a welcome lists them (idle time is in /who, which is made on demand)."""
    return json.dumps(
        {"nick": nick, "via": via, "away": away}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def make_packet(
    event: Event, audience: Audience = _EVERYONE, *, enters: int = 0, exits: int = 0
) -> Packet:
    return Packet(event, encode_line(event), encode_json(event), audience, enters, exits)
