"""Moderation commands: room operators in their room, server operators everywhere.

Each acts in the room the line is for (the active room, or a WebSocket ``say``'s
room); in ``#lobby`` it acts on the whole server. Who may do what is checked in
:mod:`webchat.core.moderation` before anything changes.
"""

from __future__ import annotations

from webchat.commands.table import Context, command, usage
from webchat.core.sanctions import split_duration
from webchat.text import clean_text


def _target(args: str, name: str) -> tuple[str, str]:
    nick, _, rest = args.partition(" ")
    if not nick:
        raise usage(name)
    return nick, clean_text(rest).strip()


@command("kick", "/kick NICK [REASON]", "operators: put someone out of here (#lobby: the server)")
def _kick(ctx: Context, args: str) -> None:
    nick, reason = _target(args, "kick")
    ctx.hub.moderation.kick(ctx.session, ctx.here(), nick, reason)


@command(
    "mute",
    "/mute NICK [DURATION] [REASON]",
    "operators: stop someone posting here (#lobby: anywhere); 30s, 10m, 2h, 7d",
)
def _mute(ctx: Context, args: str) -> None:
    _sanction(ctx, "mute", args)


@command(
    "ban",
    "/ban NICK [DURATION] [REASON]",
    "operators: put someone out and keep them out (#lobby: the server, and their address)",
)
def _ban(ctx: Context, args: str) -> None:
    _sanction(ctx, "ban", args)


def _sanction(ctx: Context, kind: str, args: str) -> None:
    nick, rest = _target(args, kind)
    seconds, reason = split_duration(rest)
    ctx.hub.moderation.sanction(kind, ctx.session, ctx.here(), nick, seconds, reason)


@command("unmute", "/unmute NICK", "operators: let someone post again")
def _unmute(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("unmute")
    ctx.hub.moderation.lift("mute", ctx.session, ctx.here(), args)


@command("unban", "/unban NICK", "operators: lift a ban")
def _unban(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("unban")
    ctx.hub.moderation.lift("ban", ctx.session, ctx.here(), args)


@command("bans", "/bans", "operators: list the bans and mutes of this room (#lobby: the server)")
def _bans(ctx: Context, args: str) -> None:
    room = ctx.here()
    found = ctx.hub.moderation.listing(ctx.session, room)
    bans = [s.as_dict() for s in found if s.kind == "ban"]
    mutes = [s.as_dict() for s in found if s.kind == "mute"]

    def shown(entries: list[dict[str, object]]) -> str:
        return (
            ", ".join(
                f"{e['nick']} (by {e['by']}, until {e['until'] or 'lifted'})" for e in entries
            )
            or "none"
        )

    text = f"In {room}: bans: {shown(bans)}; mutes: {shown(mutes)}"
    ctx.reply("bans", text, room, bans=bans, mutes=mutes)


@command("op", "/op NICK", "operators: make someone an operator of this room")
def _op(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("op")
    ctx.hub.moderation.set_operator(ctx.session, ctx.here(), args, True)


@command("deop", "/deop NICK", "operators: take someone's operator status in this room")
def _deop(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("deop")
    ctx.hub.moderation.set_operator(ctx.session, ctx.here(), args, False)
