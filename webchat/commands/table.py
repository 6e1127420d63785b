"""The one command table: each entry's name, usage, summary and handler.

A handler gets a :class:`Context` and the text after the command's name; it
refuses by raising :class:`~webchat.text.ChatError`, whose code reaches the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from webchat.core.hub import Hub
from webchat.core.session import Session
from webchat.text import ChatError


@dataclass(frozen=True)
class Context:
    """One line being handled: who typed it, and the room it was typed in, if named."""

    hub: Hub
    session: Session
    room: str | None

    def reply(self, type_: str, text: str, room: str | None = None, **extra: Any) -> None:
        self.hub.notify(self.session, type_, text, room, **extra)

    def here(self) -> str:
        """The room this line acts in: the one it was typed in, else the active room."""
        return self.hub.membership.target(self.session, self.room)


Handler = Callable[[Context, str], None]


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    handler: Handler
    aliases: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {}


def command(
    name: str, usage: str, summary: str, aliases: tuple[str, ...] = ()
) -> Callable[[Handler], Handler]:
    """Register a handler in the one table every transport uses."""

    def register(handler: Handler) -> Handler:
        entry = Command(name, usage, summary, handler, aliases)
        for key in (name, *aliases):
            COMMANDS[key] = entry
        return handler

    return register


def post(ctx: Context, type_: str, text: str, room: str) -> None:
    """A message or an action into a room, if it fits the length limit."""
    fits(ctx, text)
    ctx.hub.membership.post(ctx.session, type_, text, room)


def fits(ctx: Context, text: str) -> None:
    limit = ctx.hub.limits.max_message_chars
    if len(text) > limit:
        raise ChatError(
            "message_too_long",
            f"message is {len(text)} characters; the limit is {limit}. It was not sent",
        )


def usage(name: str) -> ChatError:
    return ChatError("usage", f"usage: {COMMANDS[name].usage}")
