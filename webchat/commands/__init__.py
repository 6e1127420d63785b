"""The chat's rulebook: what a line of input means, for every transport alike.

Transports hand every line of user text to :func:`handle_input`; nothing about
commands, messages or their limits lives in a transport. The commands themselves
are entries of one table (:mod:`webchat.commands.table`), filled by
:mod:`~webchat.commands.chat`, :mod:`~webchat.commands.rooms`,
:mod:`~webchat.commands.accounts` and :mod:`~webchat.commands.moderation`.
"""

from __future__ import annotations

from webchat.commands import accounts, chat, moderation, rooms
from webchat.commands.table import COMMANDS, Context, post
from webchat.core.hub import Hub
from webchat.core.rooms import check_room
from webchat.core.session import Session
from webchat.text import ChatError, clean_text

__all__ = ["COMMANDS", "handle_input"]
# Importing them fills the table.
_HANDLER_MODULES = (chat, rooms, accounts, moderation)


def handle_input(hub: Hub, session: Session, raw: str, room: str | None = None) -> None:
    """Act on one line a user typed: a command if it starts with '/', else a message.

    ``room`` is where the line was typed (a WebSocket ``say`` may name one); without
    it, plain lines go to the user's active room.
    """
    text = clean_text(raw).rstrip()
    if not text.strip():
        return
    if not _within_rate(hub, session, text):
        return
    try:
        ctx = Context(hub, session, None if room is None else check_room(room))
        if text.startswith("/") and not text.startswith("//"):
            name, _, args = text[1:].partition(" ")
            entry = COMMANDS.get(name.lower())
            if entry is None:
                raise ChatError(
                    "unknown_command",
                    f"unknown command /{name}; type /help for the list, or //{text[1:]} to say it",
                )
            entry.handler(ctx, args.strip())
            return
        if text.startswith("//"):
            text = text[1:]
        post(ctx, "message", text, ctx.here())
    except ChatError as exc:
        hub.notify(session, "error", str(exc), code=exc.code)


def _within_rate(hub: Hub, session: Session, text: str) -> bool:
    """Every line counts, commands too (a /who flood is a flood); /quit always passes."""
    if session.bucket.take() or text.split(" ", 1)[0].lower() == "/quit":
        return True
    limits = hub.limits
    if limits.flood_refusals > 0 and (
        session.bucket.refusals_within(limits.flood_window) > limits.flood_refusals
    ):
        hub.close_session(
            session,
            f"flooding: more than {limits.flood_refusals} lines refused "
            f"within {limits.flood_window:g} seconds",
            1008,
        )
        return False
    hub.notify(
        session,
        "error",
        f"slow down: at most {limits.rate_per_second:g} lines a second "
        f"(after a burst of {limits.rate_burst}); wait {session.bucket.wait_hint():.1f} s. "
        "That line was not sent",
        code="rate_limited",
    )
    return False
