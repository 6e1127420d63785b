"""Events and their two wire forms, made once per event and shared by every receiver.

An :class:`Event` is what happened; a :class:`Packet` is that event already encoded
as a TCP line and as WebSocket JSON, plus who may receive it. Writers only join
bytes, so a thousand receivers cost one encoding, not a thousand.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Types that get an id and belong to the shared order (and later, to history).
SEQUENCED = frozenset({"message", "me", "private", "join", "leave", "nick", "away", "back"})

VIA_NAMES = {"tcp": "terminal", "web": "browser"}


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds and a ``Z``, as the protocol promises."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in the chat; ``extra`` holds type-specific fields."""

    type: str
    nick: str | None = None
    text: str | None = None
    id: int | None = None
    ts: str | None = None
    extra: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.id is not None:
            out["id"] = self.id
        if self.ts is not None:
            out["ts"] = self.ts
        if self.nick is not None:
            out["nick"] = self.nick
        if self.text is not None:
            out["text"] = self.text
        if self.extra:
            out.update(self.extra)
        return out


def encode_json(event: Event) -> bytes:
    """The WebSocket form: one compact JSON object, UTF-8."""
    return json.dumps(event.as_dict(), ensure_ascii=False, separators=(",", ":")).encode()


def encode_line(event: Event) -> bytes:
    """The TCP form: one human-readable line ending in CRLF."""
    return (render_line(event) + "\r\n").encode("utf-8", "replace")


def render_line(event: Event) -> str:
    """How a terminal user sees an event; the text was cleaned on the way in."""
    extra = event.extra or {}
    nick, text, kind = event.nick or "", event.text or "", event.type
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
    if kind == "nick":
        return f"*** {nick} is now known as {extra.get('new', '')}"
    if kind == "away":
        return f"*** {nick} is away" + (f": {text}" if text else "")
    if kind == "back":
        return f"*** {nick} is back"
    if kind == "error":
        return f"*** error: {text}"
    if kind == "welcome":
        return f"*** Welcome, {nick}! {text}"
    if kind == "users":
        return f"*** {text}"
    return f"*** {text}"


@dataclass(frozen=True, slots=True)
class Packet:
    """An event encoded for both wires, with its audience.

    ``audience`` is None for everyone, else the session ids that may see it.
    ``tcp_skip`` is the session id of a TCP sender of a plain message: `nc`
    already shows what was typed, so it is not echoed (0 means nobody).
    """

    event: Event
    line: bytes
    json: bytes
    audience: frozenset[int] | None
    tcp_skip: int

    @property
    def size(self) -> int:
        return max(len(self.line), len(self.json))


def history_packet(event: Event, audience: frozenset[int] | None = None) -> Packet:
    """An event from the log, replayed to one newcomer: marked so nobody mistakes it for live.

    Over TCP it carries its time (UTC, HH:MM); over WebSocket ``"history": true``.
    """
    stamp = (event.ts or "")[11:16]
    line = (f"[{stamp}] " + render_line(event) + "\r\n").encode("utf-8", "replace")
    payload = {**event.as_dict(), "history": True}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Packet(event, line, body, audience, 0)


def welcome_packet(event: Event, users_json: bytes) -> Packet:
    """The welcome, with its ``users`` list spliced in as ready-made JSON."""
    body = encode_json(event)
    return Packet(event, encode_line(event), body[:-1] + b',"users":' + users_json + b"}", None, 0)


def presence_json(nick: str, via: str, away: str | None) -> bytes:
    """One user as a welcome lists them (idle time is in /who, which is made on demand)."""
    return json.dumps(
        {"nick": nick, "via": via, "away": away}, ensure_ascii=False, separators=(",", ":")
    ).encode()


def make_packet(event: Event, audience: frozenset[int] | None = None, tcp_skip: int = 0) -> Packet:
    return Packet(event, encode_line(event), encode_json(event), audience, tcp_skip)
