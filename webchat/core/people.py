"""People: arriving and leaving, nick changes, away and back, and looking someone up.

Like :mod:`webchat.core.membership`, every change happens under the hub's lock
together with the event that announces it, to everyone who shares a room.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from webchat.bus import Outgoing
from webchat.core.events import LOBBY, Audience, Event
from webchat.core.moderation import ACTIONS
from webchat.core.replay import join_replay
from webchat.core.rooms import check_room
from webchat.core.roster import Presence
from webchat.core.session import Session, Splice, Transport
from webchat.core.state import HubState
from webchat.core.stats import disconnect_reason
from webchat.core.welcome import welcome_packet
from webchat.policy.limits import TokenBucket
from webchat.text import ChatError, check_nick, nick_key

log = logging.getLogger(__name__)


class People:
    """The people operations of one hub; every method may be called from any thread."""

    def __init__(self, hub: HubState) -> None:
        self.hub = hub

    def join(
        self,
        raw_nick: str,
        transport: Transport,
        since: int | None,
        rooms: tuple[str, ...],
        address: str = "",
        account: str | None = None,
    ) -> Session:
        """Admit a user to #lobby (and ``rooms``); raise ChatError if refused.

        A server ban refuses the join; a room's ban leaves that room out (server
        operators are spared, even from the address bans they made). The nick
        is claimed first (in a cluster, in Redis, so two nodes cannot both give it
        out). The session's writer first sends history (each room's last events, or
        what it missed after ``since``) and the welcome, then everything live.
        """
        hub = self.hub
        nick = check_nick(raw_nick, hub.limits.max_nick_chars)
        key = nick_key(nick)
        wanted = list(dict.fromkeys([LOBBY, *(check_room(r) for r in rooms)]))
        hub.require_bus()
        if not hub.moderation.is_operator_account(account):  # an address ban spares them
            hub.moderation.check_ban(LOBBY, key, address)
            wanted = [LOBBY, *(r for r in wanted[1:] if not self._banned(r, key, address))]
        bucket = TokenBucket(hub.limits.rate_per_second, hub.limits.rate_burst)
        with hub.lock:
            session_id = hub.roster.next_id()
        session = Session(session_id, nick, key, transport, bucket, address, account)
        if account is not None:
            session.ignore_keys = hub.ignoring.remembered(account)
        hub.claims.claim(key, nick, session_id)
        try:
            return self._admit(session, wanted, since)
        except BaseException:
            hub.claims.release(key, session_id)
            raise

    def _joined(self, session: Session) -> dict[str, Any]:
        """A join's fields: how they came, and whether they are a server operator."""
        if self.hub.moderation.is_server_operator(session):
            return {"via": session.via, "op": True}
        return {"via": session.via}

    def _banned(self, room: str, key: str, address: str) -> bool:
        try:
            self.hub.moderation.check_ban(room, key, address)
        except ChatError:
            return True
        return False

    def _admit(self, session: Session, wanted: list[str], since: int | None) -> Session:
        hub = self.hub
        nick = session.nick
        with hub.lock:
            if hub.closing_all:  # shutdown() has taken its list of whom to say goodbye to
                raise ChatError("unavailable", "the server is shutting down")
            hub.roster.claim(session)
            try:
                hub.rooms.enter_all(wanted, session.id, session.key)
            except ChatError:
                hub.roster.release(session)
                raise
            session.rooms = dict.fromkeys(wanted)
            session.active_room = LOBBY
            session.receiving = set(wanted)
            session.cursor, session.cursor_bytes = hub.fanout.head, hub.fanout.bytes_total
            seam = hub.delivery.released_id  # up to here from the log, the rest comes live
            welcome = welcome_packet(hub, session)
            hub.delivery.add_locked(session)
            hub.ignoring.arrived_locked(session)
            for ignored in list(session.ignore_keys):
                hub.ignoring.ignore_locked(session, ignored, True)
            crowded = [name for name in wanted if hub.presence.crowded_locked(name)]
            for name in crowded:
                hub.presence.arrived_locked(name, session)
            join = Event("join", nick, extra=self._joined(session))
            hub.publish_locked(join, hub.presence.audience_locked(session, crowded), about=session)
            for name in wanted[1:]:
                enter = Event("enter", nick, room=name)
                heard = Audience.only(session.id) if name in crowded else Audience.room(name)
                hub.publish_locked(enter, heard, about=session)
        log.info("%s joined via %s", nick, session.via)
        replay = join_replay(hub.history, hub.limits, session.id, wanted, seam, since)
        session.splices.append(Splice(session.cursor, [*replay, welcome]))
        return session

    def leave(self, session: Session, reason: str = "") -> None:
        """Remove a user and tell everyone who shares a room; safe to call more than once."""
        hub = self.hub
        with hub.lock:
            if hub.closing_all:  # the server is stopping: leave_all announces everyone
                return
            if not self._leave_locked(session, reason, hold=True):
                return
        hub.claims.release(session.key, session.id)
        log.info("%s left (%s)", session.nick, reason or "no reason")

    def leave_all(self, sessions: list[Session], reason: str) -> None:
        """Everyone at once, as the server stops: one hold of the lock rather than one per
        person (ten thousand acquisitions, each fought over by the connection threads
        waking to their goodbyes), and the bus is not waited for."""
        hub = self.hub
        with hub.lock:
            gone = [s for s in sessions if self._leave_locked(s, reason, hold=False)]
            hub.presence.flush_locked(time.monotonic(), force=True)  # other nodes' rooms
        for session in gone:
            hub.claims.release(session.key, session.id)
        log.info("%d left (%s)", len(gone), reason)

    def _leave_locked(self, session: Session, reason: str, hold: bool) -> bool:
        hub = self.hub
        if not hub.roster.release(session):
            return False
        stats = hub.stats
        stats.count_disconnect_locked(
            disconnect_reason(session.closing, session.close_code, session.close_reason, reason)
        )
        stats.rate_limited_gone += session.bucket.refused
        crowded = [name for name in session.rooms if hub.presence.crowded_locked(name)]
        audience = hub.presence.audience_locked(session, crowded)
        for name in crowded:
            hub.presence.departed_locked(name, session)
        for name in session.rooms:
            hub.rooms.exit(name, session.id)
        hub.ignoring.forget_locked(session)
        if session.account is None:  # nobody else may inherit an unproven operator
            hub.rooms.forget_operator(session.key)
        leave = Event("leave", session.nick, reason or None)
        hub.publish_locked(leave, audience, about=session, hold=hold)
        hub.fanout.close_locked(session, reason or "left", 1000)
        return True

    def rename(self, session: Session, raw_nick: str, account: str | None = None) -> None:
        """Change nick; ``account`` is the new nick's key if its password was given."""
        hub = self.hub
        nick = check_nick(raw_nick, hub.limits.max_nick_chars)
        key = nick_key(nick)
        hub.require_bus()
        if key != session.key:  # a change of case keeps the claim
            hub.claims.claim(key, nick, session.id)
        try:
            with hub.lock:
                old, old_key = session.nick, session.key
                hub.roster.rename(session, nick, key)
                carried: list[tuple[str, float]] = []
                if key != old_key:  # a new nick is owned only if its password was given
                    session.account = account
                    carried = hub.moderation.renamed_locked(old_key, key)
                hub.rooms.rekey(list(session.rooms), session.id, old_key, session.key)
                hub.ignoring.arrived_locked(session)
                event = Event("nick", old, extra={"new": nick})
                hub.publish_locked(event, session.near(), about=session)
        except BaseException:
            if key != session.key:
                hub.claims.release(key, session.id)
            raise
        if key != old_key:
            hub.claims.release(old_key, session.id)
        if carried:
            hub.moderation.store_carried(session, carried)

    def set_away(self, session: Session, reason: str | None) -> None:
        self.hub.require_bus()
        with self.hub.lock:
            session.away = reason
            self.hub.roster.refresh(session)
            if reason is None:
                event = Event("back", session.nick)
            else:
                event = Event("away", session.nick, reason or None)
            self.hub.publish_locked(event, session.near(), about=session)

    def apply_locked(self, item: Outgoing) -> None:
        """What a delivered event changes about people here: who to /reply to, and, for
        an event of another node, this node's mirror of its user and their rooms."""
        event, audience = item.event, item.audience
        if event.type == "private":
            for session_id in audience.sessions - {audience.origin}:
                if (recipient := self.hub.roster.sessions.get(session_id)) is not None:
                    recipient.reply_to = audience.origin
        hub = self.hub
        if item.remote and event.type == "topic" and (room := hub.rooms.get(event.room or "")):
            room.topic, room.topic_by = event.text or "", event.nick
        if item.remote and event.type in ACTIONS:
            hub.moderation.apply_locked(event)
        if not item.remote or item.user is None:
            return
        user = dict(item.user)
        known = hub.roster.get(user["id"])
        if event.type == "nick" and known is not None and known.key != user["key"]:
            hub.moderation.renamed_locked(known.key, user["key"])  # its node stores them
        for name in known.rooms if known is not None else ():
            hub.rooms.exit(name, user["id"])
        if event.type == "leave":
            if known is not None:
                hub.roster.release(known)
                if known.account is None:
                    hub.rooms.forget_operator(known.key)
            return
        mirrored = hub.roster.mirror(user)
        for name in mirrored.rooms:
            hub.rooms.enter(name, mirrored.id, mirrored.key)
        hub.ignoring.arrived_locked(mirrored)

    def mirror_all(self, users: list[dict[str, Any]]) -> None:
        """Who is on the other nodes when this one starts (a snapshot from the cluster)."""
        with self.hub.lock:
            for user in users:
                mirrored = self.hub.roster.mirror(user)
                for name in mirrored.rooms:
                    self.hub.rooms.enter(name, mirrored.id, mirrored.key)

    def lost_contact(self) -> None:
        """The other nodes took this one for dead and said its users left: end them."""
        with self.hub.lock:
            for session in list(self.hub.roster.sessions.values()):
                self.hub.fanout.close_locked(
                    session, "lost contact with the chat cluster; reconnect", 1011
                )

    def find(self, raw_nick: str) -> Session | None:
        with self.hub.lock:
            return self.hub.roster.by_key(nick_key(raw_nick))

    def session(self, session_id: int) -> Session | None:
        """A session by id: ids are never reused, so a stale id finds nobody."""
        with self.hub.lock:
            return self.hub.roster.get(session_id)

    def presence(self) -> list[Presence]:
        """Everyone, in nick-key order, with server operators marked (unpaged: for tests
        and tools; users get pages, see core.listings)."""
        with self.hub.lock:
            roster = self.hub.roster
            everyone, _ = roster.page(None, roster.count())
            return roster.presence(everyone, self.hub.moderation.is_server_operator)

    def count(self) -> int:
        with self.hub.lock:
            return len(self.hub.roster.sessions) + len(self.hub.roster.remote)
