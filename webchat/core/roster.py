"""Who is here: sessions by id and by nick, nick claims, and presence snapshots.

Plain data guarded by the hub's lock, like :mod:`webchat.core.rooms`. A cluster
roster (nicks unique across nodes) replaces this one behind the same methods.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from webchat.core.events import Packet, presence_json
from webchat.core.session import Session
from webchat.text import NickError


def nick_taken(nick: str) -> NickError:
    return NickError(
        "nick_taken", f"the nickname {nick!r} is already taken (in use); choose another"
    )


@dataclass(frozen=True)
class Presence:
    """A snapshot of one user, for /who, /names and the welcome."""

    nick: str
    via: str
    idle: float
    away: str | None
    op: bool = False  # may moderate: the room's (for /names) or the server's (for /who)

    def as_dict(self) -> dict[str, Any]:
        return {
            "nick": self.nick,
            "via": self.via,
            "idle": round(self.idle),
            "away": self.away,
            "op": self.op,
        }


class Claims(Protocol):
    """Who holds which nick beyond this process (a cluster's Redis)."""

    def claim(self, key: str, nick: str, session_id: int) -> None:
        """Take the nick for the session, or raise ChatError (nick_taken, unavailable)."""

    def release(self, key: str, session_id: int) -> None:
        """Let go of the nick if the session holds it; never raises."""


class LocalClaims:
    """One process: the roster's own nick index is the authority, nothing to do here."""

    def claim(self, key: str, nick: str, session_id: int) -> None:
        return None

    def release(self, key: str, session_id: int) -> None:
        return None


class Elsewhere:
    """The transport of someone connected to another node: nothing here writes to them."""

    shows_own_input = False
    direct = False
    keepalive_interval: float | None = None

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def send_packets(self, packets: list[Packet]) -> None:
        raise RuntimeError("a user on another node is never written to from here")

    def keepalive(self) -> str | None:
        return None

    def send_goodbye(self, reason: str, code: int) -> None:
        return None

    def flush_control(self) -> None:
        return None

    def abort(self) -> None:
        return None


class Roster:
    """Every joined session; not thread-safe by itself (the hub's lock guards it).

    ``sessions`` are this node's own users; ``remote`` mirrors the users of the other
    nodes of a cluster (kept current from their events), so nick lookups, /who and
    room member lists cover everyone.
    """

    def __init__(self, first_id: int = 1) -> None:
        self.sessions: dict[int, Session] = {}
        self.remote: dict[int, Session] = {}
        self._by_key: dict[str, Session] = {}
        # Every nick key, sorted: a page of ten thousand people costs a bisect and a slice.
        self._keys: list[str] = []
        self._next_id = first_id

    def next_id(self) -> int:
        """Session ids are never reused, so a stale id finds nobody."""
        session_id, self._next_id = self._next_id, self._next_id + 1
        return session_id

    def claim(self, session: Session) -> None:
        if session.key in self._by_key:
            raise nick_taken(session.nick)
        self.sessions[session.id] = session
        self._index(session)
        session.presence_json = presence_json(session.nick, session.via, None)

    def get(self, session_id: int) -> Session | None:
        """A user by id, on this node or another."""
        return self.sessions.get(session_id) or self.remote.get(session_id)

    def everyone(self) -> list[Session]:
        return [*self.sessions.values(), *self.remote.values()]

    def mirror(self, state: dict[str, Any]) -> Session:
        """Create or update the mirror of a user of another node from its state."""
        session = self.remote.get(state["id"])
        if session is None:
            session = Session(state["id"], state["nick"], state["key"], Elsewhere(state["via"]))
            self.remote[session.id] = session
        else:
            self._unindex(session)
        session.nick, session.key, session.away = state["nick"], state["key"], state["away"]
        session.account, session.address = state.get("account"), state.get("address", "")
        session.rooms = dict.fromkeys(state["rooms"])
        self._index(session)
        self.refresh(session)
        return session

    def release(self, session: Session) -> bool:
        """Forget the session; False if it was already gone."""
        if (self.sessions.pop(session.id, None) or self.remote.pop(session.id, None)) is None:
            return False
        self._unindex(session)
        return True

    def rename(self, session: Session, nick: str, key: str) -> None:
        holder = self._by_key.get(key)
        if holder is not None and holder is not session:
            raise nick_taken(nick)
        if nick == session.nick:
            raise NickError("nick_same", f"you are already {nick}")
        self._unindex(session)
        session.nick, session.key = nick, key
        self._index(session)
        self.refresh(session)

    @staticmethod
    def refresh(session: Session) -> None:
        session.presence_json = presence_json(session.nick, session.via, session.away)

    def by_key(self, key: str) -> Session | None:
        return self._by_key.get(key)

    def _index(self, session: Session) -> None:
        if self._by_key.get(session.key) is None:
            bisect.insort(self._keys, session.key)
        self._by_key[session.key] = session

    def _unindex(self, session: Session) -> None:
        if self._by_key.get(session.key) is not session:
            return  # a mirror that lost its nick to someone else keeps no entry
        del self._by_key[session.key]
        at = bisect.bisect_left(self._keys, session.key)
        if at < len(self._keys) and self._keys[at] == session.key:
            del self._keys[at]

    def page(
        self, after: str | None, limit: int, keys: list[str] | None = None
    ) -> tuple[list[Session], str | None]:
        """Up to ``limit`` people in nick-key order, after the key ``after``; and the key
        to ask for the next page with (None: this was the last).

        ``keys`` (sorted) narrows it to a room's members; by default it is everyone.
        Asking page after page, in the hub's order, together with the events in
        between, gives an exact list, however people come, go or rename meanwhile.
        """
        keys = self._keys if keys is None else keys
        start = 0 if after is None else bisect.bisect_right(keys, after)
        chosen = keys[start : start + limit]
        people = [s for k in chosen if (s := self._by_key.get(k)) is not None]
        more = start + limit < len(keys)
        return people, (chosen[-1] if more and chosen else None)

    def count(self) -> int:
        """Everyone here, on every node."""
        return len(self._keys)

    @staticmethod
    def presence(
        people: list[Session], is_op: Callable[[Session], bool] | None = None
    ) -> list[Presence]:
        """Snapshots of these people, in the order given; ``is_op`` marks operators."""
        now = time.monotonic()
        return [
            Presence(s.nick, s.via, now - s.last_active, s.away, bool(is_op and is_op(s)))
            for s in people
        ]
