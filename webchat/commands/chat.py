"""Commands about people and talk: nicks, actions, private messages, presence, history."""

from __future__ import annotations

from typing import Any

from webchat.commands.table import COMMANDS, Context, command, fits, post, usage
from webchat.core.events import LOBBY, VIA_NAMES, Audience, Event
from webchat.core.listings import Page
from webchat.core.rooms import check_room
from webchat.core.session import Session
from webchat.text import ChatError, nick_key

HISTORY_DEFAULT = 20
HISTORY_MAX = 200


@command("help", "/help [COMMAND]", "list the commands, or explain one")
def _help(ctx: Context, args: str) -> None:
    if args:
        entry = COMMANDS.get(args.lstrip("/").lower())
        if entry is None:
            raise ChatError(
                "unknown_command", f"no command /{args.lstrip('/')}; type /help for the list"
            )
        also = f" (also /{', /'.join(entry.aliases)})" if entry.aliases else ""
        ctx.reply("system", f"{entry.usage}: {entry.summary}{also}")
        return
    ctx.reply("system", "Commands (type /help COMMAND for one):")
    seen: set[str] = set()
    for entry in COMMANDS.values():
        if entry.name not in seen:
            seen.add(entry.name)
            also = f" (also /{', /'.join(entry.aliases)})" if entry.aliases else ""
            ctx.reply("system", f"  {entry.usage:<26} {entry.summary}{also}")
    ctx.reply("system", "  A line that starts with // is sent as a message starting with /.")


@command("nick", "/nick NEW [PASSWORD]", "change your nickname (a registered one: its password)")
def _nick(ctx: Context, args: str) -> None:
    nick, _, password = args.partition(" ")
    if not nick:
        raise usage("nick")
    session = ctx.session
    if nick_key(nick) == session.key:  # a change of case: still the same nick, and owner
        ctx.hub.people.rename(session, nick, session.account)
        return
    password = password.strip()
    account = ctx.hub.logins.identify(nick, password or None, session.address)
    if password and account is None:
        raise ChatError(
            "nick_bad",
            "a nickname cannot contain spaces; usage: /nick NEW [PASSWORD] "
            "(the password only for a registered nick)",
        )
    ctx.hub.people.rename(session, nick, account)


@command("me", "/me ACTION", "say what you are doing, as '* nick ACTION'")
def _me(ctx: Context, args: str) -> None:
    if not args:
        raise usage("me")
    post(ctx, "me", args, ctx.here())


def _send_private(ctx: Context, target: Session, text: str) -> None:
    fits(ctx, text)
    session = ctx.session
    with ctx.hub.lock:
        ctx.hub.moderation.check_post_locked(session, None)
    # /reply follows the person, not the name (the recipient's reply_to is set to the
    # sender's session id when this is delivered): it never reaches someone who picked
    # up the old nick.
    ctx.hub.publish(
        "private",
        session.nick,
        text,
        extra={"to": target.nick},
        audience=Audience(sessions=frozenset({session.id, target.id}), origin=session.id),
        parties=frozenset({session.key, target.key}),
        origin=session,
    )


@command(
    "msg",
    "/msg NICK|#ROOM TEXT",
    "a private message, or a message into one of your rooms",
    aliases=("query", "tell"),
)
def _msg(ctx: Context, args: str) -> None:
    target_name, _, text = args.partition(" ")
    if not target_name or not text.strip():
        raise usage("msg")
    if target_name.startswith("#"):
        post(ctx, "message", text.strip(), check_room(target_name))
        return
    target = ctx.hub.people.find(target_name)
    if target is None:
        raise ChatError("no_such_nick", f"no one called {target_name} is online")
    if target is ctx.session:
        raise ChatError("self", "that is you; /msg NICK TEXT goes to someone else")
    _send_private(ctx, target, text.strip())


@command("reply", "/reply TEXT", "answer the last person who messaged you privately", ("r",))
def _reply(ctx: Context, args: str) -> None:
    if not args:
        raise usage("reply")
    if ctx.session.reply_to is None:
        raise ChatError(
            "no_reply_target", "no one has messaged you privately yet; use /msg NICK TEXT"
        )
    target = ctx.hub.people.session(ctx.session.reply_to)
    if target is None:
        raise ChatError(
            "no_such_nick", "the last person who messaged you has left; use /msg NICK TEXT"
        )
    _send_private(ctx, target, args)


@command("history", "/history [N]", "show the last N events of this room (default 20, at most 200)")
def _history(ctx: Context, args: str) -> None:
    if args and not (args.isdecimal() and 1 <= int(args) <= HISTORY_MAX):
        raise ChatError("usage", f"usage: /history [N], with N from 1 to {HISTORY_MAX}")
    hub = ctx.hub
    if hub.history.error is not None:
        raise ChatError("history_off", hub.history.error)
    room = ctx.here()
    events = hub.membership.history(room, int(args) if args else HISTORY_DEFAULT)
    if events:
        plural = "s" if len(events) != 1 else ""
        where = "" if room == LOBBY else f" of {room}"
        text = f"History{where}: {len(events)} event{plural} (times in UTC)"
        extra = {"code": "history", "count": len(events)}
    else:
        text, extra = "No history yet.", {"code": "history_empty"}
    hub.membership.show_history(
        ctx.session, Event("system", text=text, extra=extra, room=room), events
    )


@command(
    "who", "/who [FROM]", "list who is online, how, idle time and away state (a page from FROM)"
)
def _who(ctx: Context, args: str) -> None:
    if " " in args:
        raise ChatError("usage", "usage: /who [FROM]")

    def render(page: Page) -> tuple[str, dict[str, Any]]:
        listed = ", ".join(describe(p.nick, p.via, p.idle, p.away) for p in page.people)
        text = f"{page.total} online: {listed}{more(page, '/who')}"
        return text, page.fields()

    ctx.hub.listings.reply(ctx.session, "users", None, page_start(args), render)


def page_start(args: str) -> str | None:
    """The nick key a page starts after: the ``next`` of the page before, or any nick."""
    return nick_key(args) if args else None


def more(page: Page, ask: str) -> str:
    """How a terminal user asks for the rest, when this page is not the last."""
    if page.next is None:
        return ""
    return f" ({len(page.people)} shown; {ask} {page.next} for more)"


def describe(nick: str, via: str, idle: float, away: str | None) -> str:
    state = (f"away: {away}" if away else "away") if away is not None else f"idle {_duration(idle)}"
    return f"{nick} ({VIA_NAMES.get(via, via)}, {state})"


@command("away", "/away [REASON]", "mark yourself away; the people in your rooms are told")
def _away(ctx: Context, args: str) -> None:
    ctx.hub.people.set_away(ctx.session, args or "")


@command("back", "/back", "mark yourself back")
def _back(ctx: Context, args: str) -> None:
    if ctx.session.away is None:
        raise ChatError("not_away", "you are not away; /away [REASON] marks you away")
    ctx.hub.people.set_away(ctx.session, None)


@command("quit", "/quit [REASON]", "leave the chat; the reason shows in the leave notice")
def _quit(ctx: Context, args: str) -> None:
    ctx.hub.close_session(ctx.session, args)


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"
