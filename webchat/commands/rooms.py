"""Commands about rooms: entering, leaving, listing, topics and members."""

from __future__ import annotations

from typing import Any

from webchat.commands.chat import describe, more, page_start
from webchat.commands.table import Context, command, usage
from webchat.core.listings import Page
from webchat.core.rooms import check_room
from webchat.text import ChatError, clean_text


def _split_room(ctx: Context, args: str) -> tuple[str | None, str]:
    """``#room rest`` -> (room, rest); anything else -> (None, args): the room is implied."""
    first, _, rest = args.partition(" ")
    if first.startswith("#"):
        return check_room(first), rest.strip()
    return None, args


@command("join", "/join #ROOM", "enter a room (made if new) and talk there", ("j",))
def _join(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("join")
    name = check_room(args)
    if not ctx.hub.membership.enter(ctx.session, name):
        ctx.reply("system", f"You are in {name}; it is now your active room", name, code="active")


@command("part", "/part [#ROOM] [REASON]", "leave a room (by default the one you are in)")
def _part(ctx: Context, args: str) -> None:
    room, reason = _split_room(ctx, args)
    name = ctx.hub.membership.part(ctx.session, room or ctx.here(), reason)
    active = ctx.session.active_room
    where = f"plain lines now go to {active}" if active else "you are in no room; /join #ROOM"
    ctx.reply("system", f"You left {name}; {where}", code="parted", active=active)


@command("rooms", "/rooms", "list the rooms, with how many are in each and their topics")
def _rooms(ctx: Context, args: str) -> None:
    rooms = ctx.hub.membership.listing()
    shown = ", ".join(
        f"{r['room']} ({r['users']})" + (f": {r['topic']}" if r["topic"] else "") for r in rooms
    )
    ctx.reply("rooms", f"{len(rooms)} room{'s' if len(rooms) != 1 else ''}: {shown}", rooms=rooms)


@command("topic", "/topic [#ROOM] [TEXT]", "show a room's topic, or set it")
def _topic(ctx: Context, args: str) -> None:
    named, text = _split_room(ctx, args)
    room = named or ctx.here()
    text = clean_text(text).strip()
    if text:
        ctx.hub.membership.set_topic(ctx.session, room, text)
        return
    found = ctx.hub.membership.room(room)
    shown = f"Topic of {room}: {found.topic}" if found.topic else f"{room} has no topic"
    ctx.reply("system", shown, room, code="topic", topic=found.topic)


@command("names", "/names [#ROOM] [FROM]", "list who is in a room (by default the one you are in)")
def _names(ctx: Context, args: str) -> None:
    words = args.split()
    if len(words) > 2:
        raise ChatError("usage", "usage: /names [#ROOM] [FROM]")
    room = check_room(words[0]) if words else ctx.here()
    after = words[1] if len(words) == 2 else ""

    def render(page: Page) -> tuple[str, dict[str, Any]]:
        listed = ", ".join(describe(p.nick, p.via, p.idle, p.away) for p in page.people)
        text = f"{page.total} in {room}: {listed}{more(page, f'/names {room}')}"
        return text, page.fields()

    ctx.hub.listings.reply(ctx.session, "names", room, page_start(after), render)
