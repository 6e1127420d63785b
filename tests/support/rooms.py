"""One chat user on either transport, with room expectations written once for both wires.

A :class:`Person` is on TCP (``via="tcp"``) or WebSocket (``via="web"``). A test
says what must arrive as the TCP line and as the JSON fields; each person checks
the form that matches their transport.

"Must not receive" is checked without sleeping: after the action, the same actor
posts a fence (a message with a unique token) into a room the watcher shares. Each
session receives events in id order and one connection's lines are handled in
order, so anything the action caused for the watcher arrives before the fence.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient, WsClient

TIMEOUT = 5.0
VIAS = ("tcp", "web")
_tokens = itertools.count(1)


def token(prefix: str = "fence") -> str:
    """A text no other line of the test contains."""
    return f"{prefix}-{next(_tokens)}"


def has_fields(event: dict[str, Any], fields: dict[str, Any]) -> bool:
    return all(event.get(k) == v for k, v in fields.items())


class Person:
    """A joined user; ``tcp`` or ``ws`` is set depending on ``via``."""

    def __init__(self, chat: RunningChat, nick: str, via: str, rooms: tuple[str, ...] = ()) -> None:
        self.nick, self.via = nick, via
        self.tcp: TcpClient | None = None
        self.ws: WsClient | None = None
        self.welcome: dict[str, Any] | None = None
        if via == "tcp":
            self.tcp = chat.tcp(nick)
            for room in rooms:
                self.tcp.line(f"/join {room}")
                self.tcp.expect(f"[{room}] *** {nick} entered")
        else:
            self.ws = WsClient(chat.url)
            extra: dict[str, Any] = {"rooms": list(rooms)} if rooms else {}
            self.welcome = self.ws.join(nick, **extra)

    @property
    def t(self) -> TcpClient:
        assert self.tcp is not None, f"{self.nick} is not on TCP"
        return self.tcp

    @property
    def w(self) -> WsClient:
        assert self.ws is not None, f"{self.nick} is not on WebSocket"
        return self.ws

    # ----- sending -------------------------------------------------------------------

    def type(self, line: str) -> None:
        """A line as typed: a TCP line, or a WebSocket ``say`` without a room."""
        if self.tcp is not None:
            self.tcp.line(line)
        else:
            self.w.say(line)

    def post(self, room: str, text: str) -> None:
        """Into a room without changing the active one: ``/msg #room`` or ``say`` + room."""
        if self.tcp is not None:
            self.tcp.line(f"/msg {room} {text}")
        else:
            self.w.send({"type": "say", "room": room, "text": text})

    def fence(self, room: str | None = None) -> str:
        """Post a unique token (into ``room``, else the active room); return it."""
        mark = token()
        if room is None:
            self.type(mark)
        else:
            self.post(room, mark)
        return mark

    # ----- receiving -----------------------------------------------------------------

    def sees(self, line: str, /, **fields: Any) -> Any:
        """TCP: the exact line; WebSocket: an event holding ``fields``. Returns it."""
        if self.tcp is not None:
            return self.tcp.expect(lambda got: got == line, TIMEOUT)
        return self.w.expect(lambda e: has_fields(e, fields), TIMEOUT)

    def error(self, code: str, *has: str) -> Any:
        """An error for this person: TCP ``*** error: ...``; WebSocket type error with code."""
        if self.tcp is not None:
            got = self.tcp.expect(lambda line: line.startswith("*** error: "), TIMEOUT)
            assert all(h in got for h in has), f"{got!r} should hold {has!r}"
            return got
        event = self.w.expect("error", TIMEOUT)
        assert event.get("code") == code, f"expected code {code!r}, got {event!r}"
        assert all(h in event["text"] for h in has), f"{event!r} should hold {has!r}"
        return event

    def notice(self, code: str, *has: str, tcp_prefix: str = "") -> Any:
        """A one-off notice: TCP ``{tcp_prefix}*** ...`` holding ``has``; WS system with code."""
        if self.tcp is not None:
            start = tcp_prefix + "*** "

            def test(line: str) -> bool:
                return (
                    line.startswith(start)
                    and not line.startswith("*** error")
                    and all(h in line for h in has)
                )

            return self.tcp.expect(test, TIMEOUT)
        event = self.w.expect(lambda e: e.get("code") == code, TIMEOUT)
        assert event["type"] == "system", event
        assert all(h in event["text"] for h in has), f"{event!r} should hold {has!r}"
        return event

    def until(self, mark: str) -> list[str]:
        """Everything up to and including the first arrival that holds ``mark``, as text
        (TCP lines; WebSocket events as JSON)."""
        if self.tcp is not None:
            return self.tcp.read_until(lambda line: mark in line, TIMEOUT)
        events = self.w.read_until(lambda e: mark in str(e.get("text", "")), TIMEOUT)
        return [json.dumps(e) for e in events]

    def events_until(self, mark: str) -> list[dict[str, Any]]:
        """WebSocket only: the events up to and including the message holding ``mark``."""
        return self.w.read_until(lambda e: mark in str(e.get("text", "")), TIMEOUT)

    def expect(self, test: Callable[[Any], bool]) -> Any:
        if self.tcp is not None:
            return self.tcp.expect(test, TIMEOUT)
        return self.w.expect(test, TIMEOUT)

    def close(self) -> None:
        if self.tcp is not None:
            self.tcp.close()
        if self.ws is not None:
            self.ws.close()


def people_of(chat: RunningChat) -> Iterator[Callable[..., Person]]:
    """A fixture's body: make people on ``chat`` (``make(nick, via, rooms)``), and close
    them all after the test."""
    made: list[Person] = []

    def make(nick: str, via: str, rooms: tuple[str, ...] = ()) -> Person:
        p = Person(chat, nick, via, rooms)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def other(via: str) -> str:
    return "web" if via == "tcp" else "tcp"
