"""One connected user: who they are, which rooms they are in, and what they may receive.

The hub owns a session's identity and room fields (under its lock). What the
session receives is decided by :meth:`Session.select`, called by whoever holds the
session's write lock, in the order of the packets.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from webchat.core.events import Audience, Packet
from webchat.policy.limits import TokenBucket


class Transport(Protocol):
    """What a session needs from its connection; only its writer calls these."""

    kind: str  # "tcp", "web", ...: shown to others as how this user is connected
    # True when the user's own program already shows what they typed (nc, telnet), so
    # their plain messages are not sent back to them.
    shows_own_input: bool
    # True for a DirectTransport (a socket): the hub may write to it without waiting.
    direct: bool
    keepalive_interval: float | None

    def send_packets(self, packets: list[Packet]) -> None:
        """Write every packet in one send; raise OSError if the peer is gone."""

    def keepalive(self) -> str | None:
        """Called when idle; return a reason to close, or None."""

    def send_goodbye(self, reason: str, code: int) -> None:
        """Last words before closing: an error line, or a close frame."""

    def flush_control(self) -> None:
        """Send protocol replies the reader queued (WebSocket pongs); nothing for TCP."""

    def abort(self) -> None:
        """Cut the connection now; safe from any thread, wakes a blocked reader and writer."""


class DirectTransport(Transport, Protocol):
    """A transport that can also be written without waiting, from any thread holding the lock.

    Only such a transport gets direct fan-out (see :mod:`webchat.core.writer`).
    """

    def frame(self, packets: list[Packet]) -> bytes:
        """The bytes for these packets (and any control frames owed)."""

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes now; how many bytes that was."""

    def send_raw(self, data: bytes) -> None:
        """Write all of ``data``, waiting as long as it takes."""

    def goodbye(self, reason: str, code: int) -> bytes:
        """The bytes of send_goodbye's last words, for a direct send that ends the session."""

    def unanswered(self) -> str | None:
        """keepalive()'s first half: why to close if the last one went unanswered."""

    def ping(self) -> bytes:
        """keepalive()'s second half: the bytes of a keepalive."""

    def end_write(self) -> None:
        """After the goodbye: end the stream's writing side (TLS: close_notify)."""


@dataclass(frozen=True, slots=True)
class Splice:
    """Packets for one session that go in before the ring's packet at ``position``.

    A session entering a room mid-conversation gets the room's recent history here:
    after everything it was owed before, and before the room's first live event.
    """

    position: int
    packets: list[Packet]


class Session:
    """A joined user. The hub owns its identity and rooms; its writer owns its socket."""

    def __init__(
        self,
        session_id: int,
        nick: str,
        key: str,
        transport: Transport,
        bucket: TokenBucket | None = None,
        address: str = "",
        account: str | None = None,
    ):
        self.id = session_id
        self.nick = nick
        self.key = key
        self.transport = transport
        self.via = transport.kind
        # Where the connection comes from (a ban covers it), and the registered nick key
        # this user proved with its password (None: not identified).
        self.address = address
        self.account = account
        # Whom this user ignores: nick keys (kept for an account), and the session ids
        # holding them now, which the fan-out checks (replaced whole, never changed).
        self.ignore_keys: set[str] = set()
        self.ignored: frozenset[int] = frozenset()
        self.shows_own_input = transport.shows_own_input
        self.joined_at = time.monotonic()
        self.last_active = self.joined_at
        self.away: str | None = None
        self.reply_to: int | None = None  # the session id of the last private sender
        # Touched only by this connection's reader thread, so it needs no lock.
        self.bucket = bucket or TokenBucket(0, 0)
        self.presence_json = b""  # this user in a welcome's list; the hub keeps it current
        # The rooms this user is in, in the order entered, and where plain lines go.
        self.rooms: dict[str, None] = {}
        self.active_room: str | None = None
        # The rooms whose events reach this user at the writer's point in the order:
        # they change only as packets go by (select), so timing never adds or loses one.
        self.receiving: set[str] = set()
        # Position in the shared ring: everything before it was taken.
        self.cursor = 0
        self.cursor_bytes = 0
        self.splices: deque[Splice] = deque()
        # Closing: set once by the hub; what was published before the close is still owed.
        self.closing = False
        self.closing_since = 0.0
        self.close_reason = ""
        self.close_code = 1000
        self.close_seq = 0

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.nick!r} via {self.via}>"

    def near(self) -> Audience:
        """Everyone who shares a room with this user, and the user: who hears of their presence."""
        return Audience(rooms=frozenset(self.rooms), sessions=frozenset({self.id}), origin=self.id)

    def state(self) -> dict[str, Any]:
        """Who this user is now, for the other nodes' mirrors (see Roster.mirror)."""
        return {
            "id": self.id,
            "nick": self.nick,
            "key": self.key,
            "via": self.via,
            "away": self.away,
            "rooms": list(self.rooms),
            "account": self.account,
            "address": self.address,
        }

    def select(self, packets: list[Packet]) -> list[Packet]:
        """The packets this user receives, in order; moves in and out of rooms on the way."""
        # The fan-out's inner loop (every packet, for every session): kept flat, with
        # the common cases (one room; nobody entering or leaving) tested first.
        me, receiving, shows_input = self.id, self.receiving, self.shows_own_input
        ignored = self.ignored
        mine: list[Packet] = []
        for packet in packets:
            audience = packet.audience
            if packet.moves and packet.enters == me and packet.event.room is not None:
                receiving.add(packet.event.room)
            room = audience.only_room
            if room is not None:
                admitted = room in receiving
            else:
                admitted = (
                    audience.everyone
                    or me in audience.sessions
                    or not audience.rooms.isdisjoint(receiving)
                )
            if (
                admitted
                and (audience.echo or not shows_input or audience.origin != me)
                and (not ignored or not _ignores(ignored, packet))
            ):
                mine.append(packet)
            if packet.moves and packet.exits == me and packet.event.room is not None:
                receiving.discard(packet.event.room)
        return mine


# What /ignore stops: talk, not presence (a people list stays exact).
IGNORABLE = frozenset({"message", "me", "private"})


def _ignores(ignored: frozenset[int], packet: Packet) -> bool:
    return packet.audience.origin in ignored and packet.event.type in IGNORABLE
