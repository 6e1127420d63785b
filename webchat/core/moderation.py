"""Moderation: operators, kicks, bans and mutes.

Who may act: the operators of a room (its creator, and whoever an operator gives
``/op``) in that room, and the server operators everywhere. ``#lobby`` is the
whole server: only server operators moderate it, and a kick or ban there is from
the server (a server ban covers the account and the address it came from).

Each action is an event of the room, in the shared order and the history. Its
effect on this node's state is :meth:`Moderation.apply_locked`, run by the node
that acts as it publishes, and by every other node of a cluster as the event
arrives, so all of them agree. Bans and mutes are written to the account store
first, so they outlive a restart.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from webchat.accounts import AccountStore, Sanction
from webchat.core.events import LOBBY, Audience, Event, iso_time
from webchat.core.sanctions import Mutes, shown_duration
from webchat.core.session import Session
from webchat.core.state import HubState
from webchat.text import ChatError, nick_key

log = logging.getLogger(__name__)

# The events moderation publishes; each names the person it is about as "target".
ACTIONS = frozenset({"kick", "ban", "unban", "mute", "unmute", "op", "deop"})


def not_operator(room: str) -> ChatError:
    who = "server operators" if room == LOBBY else f"operators of {room}"
    return ChatError("not_operator", f"only {who} may do that")


class Moderation:
    """The moderation of one hub; every method may be called from any thread."""

    def __init__(self, hub: HubState, store: AccountStore, operators: frozenset[str]) -> None:
        self.hub = hub
        self.store = store
        self.operators = operators  # account keys of the server operators
        self.mutes = Mutes()

    def load(self) -> None:
        """The mutes in force, from the store (at start: they survive restarts)."""
        found = [s for s in self.store.sanctions(time.time()) if s.kind == "mute"]
        with self.hub.lock:
            for sanction in found:
                self.mutes.set(sanction.scope, sanction.key, sanction.until)

    # ----- who may act ------------------------------------------------------------

    def is_server_operator(self, session: Session) -> bool:
        return self.is_operator_account(session.account)

    def is_operator_account(self, account: str | None) -> bool:
        return account is not None and account in self.operators

    def may_moderate_locked(self, session: Session, room: str) -> bool:
        if self.is_server_operator(session):
            return True
        found = self.hub.rooms.get(room)
        return room != LOBBY and found is not None and session.key in found.operators

    def _authorise(self, actor: Session, room: str, target_nick: str) -> Session | None:
        """The target if online; ChatError unless the actor may act on them here."""
        key = nick_key(target_nick)
        if key == actor.key:
            raise ChatError("self", "that is you")
        if not self.may_moderate_locked(actor, room):
            raise not_operator(room)
        target = self.hub.roster.by_key(key)
        protected = target is not None and self.is_server_operator(target)
        if protected and not self.is_server_operator(actor):
            raise ChatError("not_operator", "only a server operator may act on one")
        return target

    # ----- checks -----------------------------------------------------------------

    def check_post_locked(self, session: Session, room: str | None) -> None:
        """Raise ChatError muted if this person may not post in ``room`` (None: privately)."""
        if not self.mutes:
            return
        until = self.mutes.muted(room or LOBBY, session.key, time.time())
        if until is not None:
            where = "anywhere" if room is None or room == LOBBY else f"in {room}"
            lifted = until == math.inf
            end = "until an operator lifts it" if lifted else f"until {iso_time(until)}"
            raise ChatError("muted", f"you are muted {where} {end}")

    def check_ban(self, scope: str, key: str, address: str) -> None:
        """Raise ChatError banned while a ban on this key or address holds in ``scope``.

        A store that never opened (an unwritable file) holds no bans: the chat goes
        on without accounts, as it does without history.
        """
        if self.store.error is not None:
            return
        ban = self.store.banned(scope, key, address, time.time())
        if ban is not None:
            where = "this server" if scope == LOBBY else scope
            end = "until lifted" if ban.until is None else f"until {iso_time(ban.until)}"
            why = f" ({ban.reason})" if ban.reason else ""
            raise ChatError("banned", f"you are banned from {where} {end}{why}")

    # ----- acting -----------------------------------------------------------------

    def kick(self, actor: Session, room: str, target_nick: str, reason: str) -> None:
        with self.hub.lock:
            target = self._authorise(actor, room, target_nick)
            if target is None:
                raise ChatError("no_such_nick", f"no one called {target_nick} is online")
            if room != LOBBY and room not in target.rooms:
                raise ChatError("not_in_room", f"{target.nick} is not in {room}")
            self._publish_locked(actor, "kick", room, target.nick, reason, {}, target)

    def sanction(
        self,
        kind: str,
        actor: Session,
        room: str,
        target_nick: str,
        seconds: int | None,
        reason: str,
    ) -> None:
        """A ban or a mute, stored before it is announced (so it outlives a restart)."""
        with self.hub.lock:
            target = self._authorise(actor, room, target_nick)
            nick = target.nick if target is not None else target_nick
            address = target.address or None if target is not None else None
        now = time.time()
        until = now + seconds if seconds is not None else None
        self.store.add_sanction(
            Sanction(
                kind,
                room,
                nick_key(nick),
                nick,
                address if kind == "ban" else None,
                actor.nick,
                reason,
                until,
                now,
            )
        )
        extra = {
            "until": iso_time(until) if until is not None else None,
            "duration": shown_duration(seconds) if seconds is not None else None,
        }
        with self.hub.lock:
            target = self.hub.roster.by_key(nick_key(nick))
            self._publish_locked(actor, kind, room, nick, reason, extra, target)

    def lift(self, kind: str, actor: Session, room: str, target_nick: str) -> None:
        """/unban or /unmute."""
        with self.hub.lock:
            self._authorise(actor, room, target_nick)
        if not self.store.remove_sanction(kind, room, nick_key(target_nick)):
            state = "banned" if kind == "ban" else "muted"
            raise ChatError(f"not_{state}", f"{target_nick} is not {state} in {room}")
        with self.hub.lock:
            self._publish_locked(actor, "un" + kind, room, target_nick, "", {}, None)

    def set_operator(self, actor: Session, room: str, target_nick: str, on: bool) -> None:
        with self.hub.lock:
            if room == LOBBY:
                raise ChatError(
                    "not_operator",
                    f"{LOBBY} is the whole server: its operators are the "
                    "server operators (--operators)",
                )
            target = self._authorise(actor, room, target_nick)
            if target is None or room not in target.rooms:
                raise ChatError("not_in_room", f"{target_nick} is not in {room}")
            found = self.hub.rooms.get(room)
            if found is not None and (target.key in found.operators) == on:
                state = "already" if on else "not"
                raise ChatError("no_change", f"{target.nick} is {state} an operator of {room}")
            self._publish_locked(actor, "op" if on else "deop", room, target.nick, "", {}, target)

    def listing(self, actor: Session, room: str) -> list[Sanction]:
        with self.hub.lock:
            if not self.may_moderate_locked(actor, room):
                raise not_operator(room)
        return [s for s in self.store.sanctions(time.time()) if s.scope == room]

    def _publish_locked(
        self,
        actor: Session,
        kind: str,
        room: str,
        target_nick: str,
        reason: str,
        extra: Mapping[str, Any],
        target: Session | None,
    ) -> None:
        """Announce the action to the room (and the actor), then apply it here.

        A kicked or banned member stops receiving the room right after this event.
        """
        event = Event(
            kind, actor.nick, reason or None, room=room, extra={"target": target_nick, **extra}
        )
        audience = Audience(rooms=frozenset({room}), sessions=frozenset({actor.id}))
        removed = kind in ("kick", "ban") and room != LOBBY
        exits = target.id if removed and target is not None and room in target.rooms else 0
        published = self.hub.publish_locked(event, audience, exits=exits)
        self.apply_locked(published)

    # ----- effects, on every node -------------------------------------------------

    def apply_locked(self, event: Event) -> None:
        """What an action changes here: mutes, operators, and the target's rooms
        (a kick or ban from ``#lobby`` ends the target's connection to this node)."""
        room, extra = event.room or "", event.extra or {}
        key = nick_key(str(extra.get("target", "")))
        kind = event.type
        if kind == "mute":
            until = extra.get("until")
            self.mutes.set(room, key, _unix(until) if isinstance(until, str) else None)
        elif kind == "unmute":
            self.mutes.lift(room, key)
        elif kind in ("op", "deop") and (found := self.hub.rooms.get(room)) is not None:
            (found.operators.add if kind == "op" else found.operators.discard)(key)
        elif kind in ("kick", "ban"):
            self._remove_locked(key, room, event)

    def _remove_locked(self, key: str, room: str, event: Event) -> None:
        target = self.hub.roster.by_key(key)
        if target is None:
            return
        by = f"{'kicked' if event.type == 'kick' else 'banned'} by {event.nick}"
        reason = f"{by}: {event.text}" if event.text else by
        if room == LOBBY:
            if target.id in self.hub.roster.sessions:  # its own node ends it; its leave follows
                self.hub.fanout.close_locked(target, reason, 1008)
            return
        if room not in target.rooms:
            return
        self.hub.rooms.exit(room, target.id)
        del target.rooms[room]
        if target.active_room == room:
            rest = list(target.rooms)
            target.active_room = LOBBY if LOBBY in target.rooms else (rest[-1] if rest else None)

    # ----- renames ----------------------------------------------------------------

    def renamed_locked(self, old_key: str, new_key: str) -> list[tuple[str, float]]:
        """A muted person changed nick: the mutes follow them (every node does this as
        the ``nick`` event passes); the (scope, until) carried."""
        return self.mutes.carry(old_key, new_key) if self.mutes else []

    def store_carried(self, session: Session, carried: list[tuple[str, float]]) -> None:
        """Store the mutes a rename carried, so they outlive a restart too (unlocked)."""
        now = time.time()
        for scope, until in carried:
            end = None if until == math.inf else until
            mute = Sanction("mute", scope, session.key, session.nick, None, "", "", end, now)
            try:
                self.store.add_sanction(mute)
            except ChatError as exc:
                log.warning("a mute carried over a nick change is not stored: %s", exc)


def _unix(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
