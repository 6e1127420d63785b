"""The chat's rulebook: what a line of input means, for TCP and WebSocket alike.

Transports hand every line of user text to :func:`handle_input`; nothing about
commands, messages or their limits lives in a transport.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from webchat.events import VIA_NAMES
from webchat.hub import Hub
from webchat.session import Session
from webchat.text import NickError, clean_text

Handler = Callable[[Hub, Session, str], None]

HISTORY_DEFAULT = 20
HISTORY_MAX = 200


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
    """Register a handler in the one table both transports use."""

    def register(handler: Handler) -> Handler:
        entry = Command(name, usage, summary, handler, aliases)
        for key in (name, *aliases):
            COMMANDS[key] = entry
        return handler

    return register


def handle_input(hub: Hub, session: Session, raw: str) -> None:
    """Act on one line a user typed: a command if it starts with '/', else a message."""
    text = clean_text(raw).rstrip()
    if not text.strip():
        return
    if not _within_rate(hub, session, text):
        return
    if text.startswith("/") and not text.startswith("//"):
        name, _, args = text[1:].partition(" ")
        entry = COMMANDS.get(name.lower())
        if entry is None:
            hub.tell(
                session,
                "error",
                f"unknown command /{name}; type /help for the list, or //{text[1:]} to say it",
                code="unknown_command",
            )
            return
        entry.handler(hub, session, args.strip())
        return
    if text.startswith("//"):
        text = text[1:]
    if _fits(hub, session, text):
        hub.publish("message", session.nick, text, origin=session)


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
    hub.tell(
        session,
        "error",
        f"slow down: at most {limits.rate_per_second:g} lines a second "
        f"(after a burst of {limits.rate_burst}); wait {session.bucket.wait_hint():.1f} s. "
        "That line was not sent",
        code="rate_limited",
    )
    return False


def _fits(hub: Hub, session: Session, text: str) -> bool:
    limit = hub.limits.max_message_chars
    if len(text) <= limit:
        return True
    hub.tell(
        session,
        "error",
        f"message is {len(text)} characters; the limit is {limit}. It was not sent",
        code="message_too_long",
    )
    return False


def _usage(hub: Hub, session: Session, name: str) -> None:
    hub.tell(session, "error", f"usage: {COMMANDS[name].usage}", code="usage")


@command("help", "/help [COMMAND]", "list the commands, or explain one")
def _help(hub: Hub, session: Session, args: str) -> None:
    if args:
        entry = COMMANDS.get(args.lstrip("/").lower())
        if entry is None:
            hub.tell(
                session,
                "error",
                f"no command /{args.lstrip('/')}; type /help for the list",
                code="unknown_command",
            )
            return
        also = f" (also /{', /'.join(entry.aliases)})" if entry.aliases else ""
        hub.tell(session, "system", f"{entry.usage}: {entry.summary}{also}")
        return
    hub.tell(session, "system", "Commands (type /help COMMAND for one):")
    seen: set[str] = set()
    for entry in COMMANDS.values():
        if entry.name not in seen:
            seen.add(entry.name)
            also = f" (also /{', /'.join(entry.aliases)})" if entry.aliases else ""
            hub.tell(session, "system", f"  {entry.usage:<22} {entry.summary}{also}")
    hub.tell(
        session, "system", "  A line that starts with // is sent as a message starting with /."
    )


@command("nick", "/nick NEW", "change your nickname")
def _nick(hub: Hub, session: Session, args: str) -> None:
    if not args:
        _usage(hub, session, "nick")
        return
    if " " in args:
        hub.tell(
            session, "error", "a nickname cannot contain spaces; usage: /nick NEW", code="nick_bad"
        )
        return
    try:
        hub.rename(session, args)
    except NickError as exc:
        hub.tell(session, "error", str(exc), code=exc.code)


@command("me", "/me ACTION", "say what you are doing, as '* nick ACTION'")
def _me(hub: Hub, session: Session, args: str) -> None:
    if not args:
        _usage(hub, session, "me")
    elif _fits(hub, session, args):
        hub.publish("me", session.nick, args, origin=session)


def _send_private(hub: Hub, session: Session, target: Session, text: str) -> None:
    if not _fits(hub, session, text):
        return
    # The person, not the name: a /reply must follow a rename and never reach someone
    # who picked up the old nick.
    target.reply_to = session.id
    hub.publish(
        "private",
        session.nick,
        text,
        extra={"to": target.nick},
        audience=frozenset({session.id, target.id}),
        origin=session,
    )


@command("msg", "/msg NICK TEXT", "send a private message", aliases=("query", "tell"))
def _msg(hub: Hub, session: Session, args: str) -> None:
    target_nick, _, text = args.partition(" ")
    if not target_nick or not text.strip():
        _usage(hub, session, "msg")
        return
    target = hub.find(target_nick)
    if target is None:
        hub.tell(session, "error", f"no one called {target_nick} is online", code="no_such_nick")
    elif target is session:
        hub.tell(session, "error", "that is you; /msg NICK TEXT goes to someone else", code="self")
    else:
        _send_private(hub, session, target, text.strip())


@command("reply", "/reply TEXT", "answer the last person who messaged you privately", ("r",))
def _reply(hub: Hub, session: Session, args: str) -> None:
    if not args:
        _usage(hub, session, "reply")
    elif session.reply_to is None:
        hub.tell(
            session,
            "error",
            "no one has messaged you privately yet; use /msg NICK TEXT",
            code="no_reply_target",
        )
    elif (target := hub.session(session.reply_to)) is None:
        hub.tell(
            session,
            "error",
            "the last person who messaged you has left; use /msg NICK TEXT",
            code="no_such_nick",
        )
    else:
        _send_private(hub, session, target, args)


@command("history", "/history [N]", "show the last N public events (default 20, at most 200)")
def _history(hub: Hub, session: Session, args: str) -> None:
    if args and not (args.isdecimal() and 1 <= int(args) <= HISTORY_MAX):
        hub.tell(
            session,
            "error",
            f"usage: /history [N], with N from 1 to {HISTORY_MAX}",
            code="usage",
        )
        return
    if hub.store.error is not None:
        hub.tell(session, "error", hub.store.error, code="history_off")
        return
    hub.tell_history(session, hub.history(int(args) if args else HISTORY_DEFAULT))


@command("who", "/who", "list who is online, how, idle time and away state", ("names",))
def _who(hub: Hub, session: Session, args: str) -> None:
    people = hub.presence()
    parts = []
    for p in people:
        if p.away is not None:
            state = f"away: {p.away}" if p.away else "away"
        else:
            state = f"idle {_duration(p.idle)}"
        parts.append(f"{p.nick} ({VIA_NAMES.get(p.via, p.via)}, {state})")
    hub.tell(
        session,
        "users",
        f"{len(people)} online: {', '.join(parts)}",
        users=[p.as_dict() for p in people],
    )


@command("away", "/away [REASON]", "mark yourself away; everyone is told")
def _away(hub: Hub, session: Session, args: str) -> None:
    hub.set_away(session, args or "")


@command("back", "/back", "mark yourself back")
def _back(hub: Hub, session: Session, args: str) -> None:
    if session.away is None:
        hub.tell(
            session, "error", "you are not away; /away [REASON] marks you away", code="not_away"
        )
    else:
        hub.set_away(session, None)


@command("quit", "/quit [REASON]", "leave the chat; the reason shows in the leave notice")
def _quit(hub: Hub, session: Session, args: str) -> None:
    session.close(args)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
