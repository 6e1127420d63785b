"""One connected user: identity, presence, and the single thread allowed to write to them."""

from __future__ import annotations

import abc
import contextlib
import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Protocol

from webchat.events import Packet
from webchat.limits import TokenBucket

if TYPE_CHECKING:
    from webchat.hub import Hub

log = logging.getLogger(__name__)


class Transport(Protocol):
    """What a session needs from its connection; only the writer thread calls these."""

    kind: str  # "tcp" or "web"
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


class SocketTransport(abc.ABC):
    """What both real transports share: a socket, written whole or without waiting.

    The hub may write to a SocketTransport directly (Session.send_direct); other
    transports (the tests' recorders) are only ever written by their writer thread.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._aborted = threading.Event()

    @abc.abstractmethod
    def frame(self, packets: list[Packet]) -> bytes:
        """The bytes for these packets (and any control frames owed)."""

    def send_packets(self, packets: list[Packet]) -> None:
        self.sock.sendall(self.frame(packets))

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes now; how many bytes that was."""
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def abort(self) -> None:
        if self._aborted.is_set():
            return
        self._aborted.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class Wakeup:
    """A one-slot doorbell for one writer, on a bare lock: set() by anyone, wait() by the writer.

    threading.Event is a Condition in Python; with a thousand writers woken for each
    event, a lock held while "rung" (released by set, taken back by wait) is cheaper.
    """

    def __init__(self) -> None:
        self._bell = threading.Lock()
        self._bell.acquire()  # not rung

    def set(self) -> None:
        with contextlib.suppress(RuntimeError):  # already rung: one ring is enough
            self._bell.release()

    def wait(self, timeout: float | None) -> bool:
        """Wait for a ring and consume it; False when the timeout passed first."""
        return self._bell.acquire(timeout=-1 if timeout is None else max(0.0, timeout))


class Session:
    """A joined user. The hub owns its fields; the writer thread owns its socket."""

    def __init__(
        self,
        hub: Hub,
        session_id: int,
        nick: str,
        key: str,
        transport: Transport,
        bucket: TokenBucket | None = None,
    ):
        self.hub = hub
        self.id = session_id
        self.nick = nick
        self.key = key
        self.transport = transport
        self.via = transport.kind
        self.joined_at = time.monotonic()
        self.last_active = self.joined_at
        self.away: str | None = None
        self.reply_to: int | None = None  # the session id of the last private sender
        # Touched only by this connection's reader thread, so it needs no lock.
        self.bucket = bucket or TokenBucket(0, 0)
        # Position in the hub's shared event ring: everything before it was taken.
        self.cursor = 0
        self.cursor_bytes = 0
        self.closing = False
        # True while the writer is inside a send: if the backlog grows then, the peer is
        # not reading (a writer that is only waiting for the CPU is not "too slow").
        self.sending = False
        self.closing_since = 0.0
        self.close_reason = ""
        self.close_code = 1000
        self.close_seq = 0  # events published before the close: the last ones it is sent
        # History to send before anything live; set by the hub when it admits the session.
        self.preamble: list[Packet] = []
        # Set when there is something for the writer: new packets, a close, a control frame.
        self.wake = Wakeup()
        self.presence_json = b""  # this user in a welcome's list; the hub keeps it current
        self.writer_done = threading.Event()
        self._writer: threading.Thread | None = None
        # Whoever writes to the socket holds this: the writer thread, or the hub's
        # committer taking the fast path. ``pending`` is the rest of a fast write that
        # did not fit; it goes out before anything else.
        self.write_lock = threading.Lock()
        self.pending = b""
        self.direct_ready = False  # the preamble is out: live events may go direct
        self.last_wrote = 0.0

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.nick!r} via {self.via}>"

    def start_writer(self) -> None:
        self._writer = threading.Thread(
            target=self._write_loop, name=f"writer-{self.id}", daemon=True
        )
        self._writer.start()

    def close(self, reason: str, code: int = 1000) -> None:
        """Ask the writer to flush, say goodbye and end; the first reason wins."""
        self.hub.close_session(self, reason, code)

    def wait_closed(self, timeout: float) -> None:
        """Let the writer finish its last words before the transport tears down."""
        if self._writer is not None and not self.writer_done.wait(timeout):
            self.transport.abort()
            self.writer_done.wait(timeout)

    def send_direct(self, now: float) -> bool:
        """Deliver what is new straight from the committer, if it fits without waiting.

        True when nothing is left for the writer thread. At a thousand users, waking a
        thousand writer threads for each message costs far more than the writes.
        """
        direct = self.transport
        if not self.direct_ready or self.closing or not isinstance(direct, SocketTransport):
            return False
        if not self.write_lock.acquire(blocking=False):
            return False  # the writer is at it
        try:
            if self.pending:
                return False
            packets, closing = self.hub.take_now(self)
            mine = [p for p in packets if self.wants(p)]
            if mine:
                data = direct.frame(mine)
                try:
                    sent = direct.send_nowait(data)
                except OSError:
                    sent = 0  # the writer meets the error itself
                if sent:
                    self.last_wrote = now
                if sent < len(data):
                    self.pending = data[sent:]
                    return False
            return not closing
        finally:
            self.write_lock.release()

    def wants(self, packet: Packet) -> bool:
        if packet.audience is not None and self.id not in packet.audience:
            return False
        return not (self.via == "tcp" and packet.tcp_skip == self.id)

    def _write_pending(self, transport: Transport) -> bool:
        """Send the rest of a direct write, then whatever is new; True once closing."""
        packets, closing = self.hub.take_now(self)
        pending, self.pending = self.pending, b""
        mine = [p for p in packets if self.wants(p)]
        if pending or mine:
            self.sending = True
            if pending:  # only a SocketTransport is ever left with pending bytes
                assert isinstance(transport, SocketTransport)
                transport.send_raw(pending)
            if mine:
                transport.send_packets(mine)
            self.sending = False
            self.last_wrote = time.monotonic()
        else:
            transport.flush_control()
        return closing

    def _write_loop(self) -> None:
        transport = self.transport
        interval = transport.keepalive_interval
        # Writers wake for every close and every private event, so "woke with nothing"
        # does not mean "idle": keepalives go by the clock.
        next_keepalive = None if interval is None else time.monotonic() + interval
        try:
            with self.write_lock:
                if self.preamble:
                    self.sending = True
                    transport.send_packets(self.preamble)
                    self.sending = False
                    self.preamble = []
                self.direct_ready = True
            while True:
                wait = None
                if next_keepalive is not None:
                    wait = max(0.0, next_keepalive - time.monotonic())
                self.hub.wait_for(self, wait)
                with self.write_lock:
                    closing = self._write_pending(transport)
                if next_keepalive is not None and interval is not None and not closing:
                    now = time.monotonic()
                    if self.last_wrote > now - interval:
                        next_keepalive = self.last_wrote + interval
                    elif now >= next_keepalive:
                        next_keepalive = now + interval
                        with self.write_lock:
                            reason = transport.keepalive()
                        if reason:
                            self.close(reason, 1008)
                            continue
                if closing:
                    with self.write_lock:
                        transport.send_goodbye(self.close_reason, self.close_code)
                    break
        except OSError as exc:
            log.debug("writer for %r stopped: %s", self, exc)
        finally:
            transport.abort()
            self.writer_done.set()
