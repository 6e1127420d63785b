"""One connection's life, the same for every transport: join, lines, leave.

CPython's ``socketserver`` has ``handle()`` for the read loop and ``finish()`` that
always runs; here :func:`serve` is both, written once. A transport provides a
:class:`Connection` that reads its own wire format; everything after that (who
may join, what a line means, how a session ends) happens here and in the hub.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from webchat.commands import handle_input
from webchat.core.hub import Hub
from webchat.core.session import Session, Transport
from webchat.text import ChatError


@dataclass(frozen=True)
class JoinRequest:
    nick: str
    since: int | None = None
    rooms: tuple[str, ...] = ()
    # Given up front by clients that cannot be asked (a WebSocket's join frame).
    password: str | None = field(default=None, repr=False)
    server_password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Line:
    """One line of user text, and the room it was typed in when the client says so."""

    text: str
    room: str | None = None


@dataclass(frozen=True)
class Refusal:
    """Input that could not be read as a line (too long, a bad frame): only its sender is told."""

    text: str
    code: str


class Ended(Exception):
    """The connection ended while reading: the peer left, or broke the protocol.

    ``close_code`` is set when the server must close with a reason (1002, 1009).
    """

    def __init__(self, reason: str, close_code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


class Connection(Protocol):
    @property
    def transport(self) -> Transport:
        """How the session's writer reaches this client."""

    @property
    def address(self) -> str:
        """The client's IP address: per-address limits and bans use it."""

    @property
    def asks(self) -> bool:
        """True if the client can be asked for a password at a prompt (TCP)."""

    def ask(self, prompt: str) -> str | None:
        """Show ``prompt`` and read one line, never echoed or logged; None if the client
        went away (it was told why). May raise ChatError for a line it cannot take."""

    def read_join(self) -> JoinRequest | None:
        """The next attempt to join, or None when the client gave up (it was told why)."""

    def refuse_join(self, error: ChatError) -> None:
        """Say why a join was refused; the client may try again."""

    def joined(self, wake_writer: Callable[[], None]) -> None:
        """The session exists: from now on only its writer writes to the socket."""

    def read(self, session: Session) -> Line | Refusal | None:
        """The next line, a refusal to report, or None at the end of the stream."""


SERVER_PASSWORD_PROMPT = "Server password: "
# Refused joins that /metrics counts among refused connections (by this code).
COUNTED_REFUSALS = frozenset({"banned", "unavailable", "too_many_attempts"})


def serve(hub: Hub, conn: Connection, close_grace: float) -> None:
    """Run one connection from its first byte to its goodbye."""
    session = admit(hub, conn)
    if session is None:
        return
    conn.joined(lambda: hub.wake(session))
    hub.start(session)
    reason = "connection closed"
    try:
        while not session.closing:
            item = conn.read(session)
            if item is None:
                break
            if isinstance(item, Refusal):
                hub.notify(session, "error", item.text, code=item.code)
            else:
                handle_input(hub, session, item.text, item.room)
    except Ended as exc:
        reason = exc.reason
        if exc.close_code is not None:
            hub.close_session(session, exc.reason, exc.close_code)
    finally:
        # As the server stops, ten thousand threads ending at once would take the CPU
        # (and the hub's lock) from the goodbyes still being sent: they wait instead.
        hub.wait_if_stopping()
        hub.leave(session, session.close_reason if session.closing else reason)
        hub.wait_closed(session, close_grace)


def admit(hub: Hub, conn: Connection) -> Session | None:
    """Ask until the client joins or gives up: the server password first (if the
    server has one), then a nick, then that nick's password if it is registered."""
    logins = hub.logins
    proven = logins.server_password_hash is None
    while True:
        try:
            if not proven and conn.asks:
                answer = conn.ask(SERVER_PASSWORD_PROMPT)
                if answer is None:
                    return None
                logins.check_server_password(answer, conn.address)
                proven = True
            request = conn.read_join()
            if request is None:
                return None
            if not proven:
                logins.check_server_password(request.server_password, conn.address)
                proven = True
            password = request.password
            if password is None and conn.asks and logins.registered(request.nick):
                password = conn.ask(f"Password for {request.nick.strip()}: ")
                if password is None:
                    return None
            account = logins.identify(request.nick, password, conn.address)
            return hub.join(
                request.nick,
                conn.transport,
                request.since,
                request.rooms,
                address=conn.address,
                account=account,
            )
        except ChatError as exc:
            if exc.code in COUNTED_REFUSALS:
                hub.stats.refused.add(exc.code)
            conn.refuse_join(exc)
