"""Commands about owning a nick and about whom you hear: register, password, ignore."""

from __future__ import annotations

from webchat.commands.table import Context, command, usage
from webchat.text import ChatError, nick_key


@command("register", "/register PASSWORD", "register your nick: taking it will need PASSWORD")
def _register(ctx: Context, args: str) -> None:
    if not args:
        raise usage("register")
    session = ctx.session
    if session.via == "udp":
        raise ChatError("insecure", "UDP has no encryption: register over TCP, TLS or the page")
    ctx.hub.logins.register(session.nick, session.key, args)
    with ctx.hub.lock:
        session.account = session.key
    ctx.reply(
        "system",
        f"{session.nick} is registered to you. Next time, give its password to take it",
        code="registered",
    )


@command("password", "/password OLD NEW", "change the password of your registered nick")
def _password(ctx: Context, args: str) -> None:
    old, _, new = args.partition(" ")
    if not old or not new.strip():
        raise usage("password")
    session = ctx.session
    _identified(ctx)
    ctx.hub.logins.change(session.key, old, new.strip(), session.address)
    ctx.reply("system", "Your password is changed", code="password_changed")


@command("unregister", "/unregister PASSWORD", "give your nick back: anyone may take it then")
def _unregister(ctx: Context, args: str) -> None:
    if not args:
        raise usage("unregister")
    session = ctx.session
    _identified(ctx)
    ctx.hub.logins.unregister(session.key, args, session.address)
    with ctx.hub.lock:
        session.account = None
    ctx.reply("system", f"{session.nick} is no longer registered", code="unregistered")


def _identified(ctx: Context) -> None:
    if ctx.session.account != ctx.session.key:
        raise ChatError("not_registered", "your nickname is not registered; /register PASSWORD")


@command("ignore", "/ignore [NICK]", "stop receiving someone's messages; alone, list whom")
def _ignore(ctx: Context, args: str) -> None:
    session, hub = ctx.session, ctx.hub
    if not args:
        with hub.lock:
            keys = sorted(session.ignore_keys)
        shown = ", ".join(keys) if keys else "nobody"
        ctx.reply("system", f"You ignore: {shown}", code="ignoring", ignoring=keys)
        return
    if " " in args:
        raise usage("ignore")
    key = nick_key(args)
    if key == session.key:
        raise ChatError("self", "that is you")
    if session.account is not None:  # remembered across visits
        hub.logins.store.set_ignore(session.account, key, True)
    with hub.lock:
        hub.ignoring.ignore_locked(session, key, True)
    ctx.reply(
        "system",
        f"You ignore {args}: their messages no longer reach you (/unignore {args} undoes it)",
        code="ignored",
        target=args,
    )


@command("unignore", "/unignore NICK", "receive someone's messages again")
def _unignore(ctx: Context, args: str) -> None:
    if not args or " " in args:
        raise usage("unignore")
    session, hub = ctx.session, ctx.hub
    key = nick_key(args)
    if key not in session.ignore_keys:
        raise ChatError("not_ignored", f"you do not ignore {args}")
    if session.account is not None:
        hub.logins.store.set_ignore(session.account, key, False)
    with hub.lock:
        hub.ignoring.ignore_locked(session, key, False)
    ctx.reply("system", f"You hear {args} again", code="unignored", target=args)
