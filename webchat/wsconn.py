"""One WebSocket after its handshake: frames in on the request thread, frames out by one writer.

flask-sock and simple-websocket do the HTTP upgrade. After that simple-websocket
would run a reader thread of its own that also writes (pongs, close replies) and
can miss a close; webchat starts no such thread (:class:`NoReaderThread`). The
request thread reads frames with wsproto (:class:`FrameReader`), and everything
that goes out, control frames included, is written by the session's writer thread
(:class:`WsTransport`), whole frames with one ``sendall`` each batch.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.utilities import ProtocolError

from webchat.events import Event, Packet, encode_json, utc_now
from webchat.session import SocketTransport

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


class NoReaderThread:
    """Stands in for simple-websocket's reader thread, which webchat does not run."""

    name = "unused"

    def __init__(self, target: Callable[[], None]) -> None:
        self.target = target

    def start(self) -> None:
        return None


class Closed(Exception):
    """The connection ended: the peer closed, broke the protocol, or went away."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


def frame(opcode: int, payload: bytes) -> bytes:
    """A final, unmasked server-to-client frame (RFC 6455 section 5.2)."""
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


def close_frame(code: int, reason: str) -> bytes:
    """A close frame; the reason is cut to fit a control frame's 125 bytes."""
    text = reason.encode()[:123].decode("utf-8", "ignore").encode()
    return frame(OP_CLOSE, struct.pack("!H", code) + text)


class WsTransport(SocketTransport):
    """The session.Transport for a WebSocket (who writes, and when: see SocketTransport).

    Before the join the request thread is its only writer."""

    kind = "web"
    # The last single event framed, shared by every socket (replaced as one tuple).
    _last_framed: tuple[Packet | None, bytes] = (None, b"")

    def __init__(self, sock: socket.socket, ping_interval: float) -> None:
        super().__init__(sock)
        self.keepalive_interval: float | None = ping_interval if ping_interval > 0 else None
        self.pong_received = True
        self._control: list[bytes] = []  # pongs owed to the peer, queued by the reader
        self._control_lock = threading.Lock()
        self.peer_close: int | None = None  # the code of the peer's close frame, once read

    def queue_control(self, data: bytes) -> None:
        with self._control_lock:
            self._control.append(data)

    def _take_control(self) -> bytes:
        if not self._control:  # the usual case, and no lock to take for it
            return b""
        with self._control_lock:
            data, self._control = b"".join(self._control), []
        return data

    def flush_control(self) -> None:
        data = self._take_control()
        if data:
            self.sock.sendall(data)

    def frame(self, packets: list[Packet]) -> bytes:
        if len(packets) == 1:
            # One event fanned out to every browser in turn: frame it once, not per socket.
            packet, framed = WsTransport._last_framed
            if packet is not packets[0]:
                packet, framed = packets[0], frame(OP_TEXT, packets[0].json)
                WsTransport._last_framed = (packet, framed)
            return self._take_control() + framed
        payload = b"[" + b",".join([p.json for p in packets]) + b"]"
        return self._take_control() + frame(OP_TEXT, payload)

    def send_event(self, event: Event) -> None:
        self.sock.sendall(frame(OP_TEXT, encode_json(event)))

    def keepalive(self) -> str | None:
        if not self.pong_received:
            return "ping timeout: no answer to the last ping"
        self.pong_received = False
        self.sock.sendall(self._take_control() + frame(OP_PING, b""))
        return None

    def send_goodbye(self, reason: str, code: int) -> None:
        if code != 1000 and self.peer_close is None:
            self.send_event(Event("error", text=f"disconnected: {reason}", ts=utc_now()))
        if self.peer_close is not None:  # answer the peer's close with its own code
            self.sock.sendall(close_frame(self.peer_close, ""))
        else:
            self.sock.sendall(close_frame(code, reason))


class FrameReader:
    """Reads whole client messages with wsproto, on the connection's request thread."""

    def __init__(
        self,
        ws: Any,
        transport: WsTransport,
        max_message_bytes: int,
    ) -> None:
        self.conn = ws.ws  # the wsproto connection simple-websocket made for the handshake
        self.sock: socket.socket = ws.sock
        self.transport = transport
        self.max_message_bytes = max_message_bytes
        self.wake_writer: Callable[[], None] = lambda: None  # the session's, once joined
        self.direct = True  # before the join the request thread writes control frames itself
        self._parts: list[str | bytes] = []
        self._size = 0
        self._ready: list[str | bytes] = []

    def receive(self, timeout: float | None) -> str | bytes | None:
        """The next message, or None when ``timeout`` passes; raises Closed when it ends."""
        while not self._ready:
            if timeout is not None and not self._readable(timeout):
                return None
            try:
                data = self.sock.recv(65536)
            except OSError as exc:
                raise Closed(1006, f"connection lost: {exc.strerror or exc}") from None
            if not data:
                raise Closed(1006, "connection closed")
            try:
                self.conn.receive_data(data)
                for event in self.conn.events():
                    self._handle(event)
            except ProtocolError as exc:
                raise Closed(1002, f"protocol error: {exc}") from None
        return self._ready.pop(0)

    def _readable(self, timeout: float) -> bool:
        poller = select.poll()  # poll, not select: no FD_SETSIZE limit with many sockets
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(max(0, int(timeout * 1000))))

    def _handle(self, event: Any) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            self._add(event)
        elif isinstance(event, Ping):
            self._send_control(frame(OP_PONG, bytes(event.payload)))
        elif isinstance(event, Pong):
            self.transport.pong_received = True
        elif isinstance(event, CloseConnection):
            self.transport.peer_close = event.code
            raise Closed(event.code, event.reason or "closed by the client")

    def _add(self, event: Message[Any]) -> None:
        data = event.data
        self._size += len(data.encode()) if isinstance(data, str) else len(data)
        if self._size > self.max_message_bytes:
            raise Closed(1009, f"message too big: the limit is {self.max_message_bytes} bytes")
        self._parts.append(data)
        if event.message_finished:
            parts, self._parts, self._size = self._parts, [], 0
            if isinstance(event, TextMessage):
                self._ready.append("".join(p for p in parts if isinstance(p, str)))
            else:
                self._ready.append(b"".join(p for p in parts if isinstance(p, bytes)))

    def _send_control(self, data: bytes) -> None:
        if self.direct:
            self.sock.sendall(data)
        else:
            self.transport.queue_control(data)
            self.wake_writer()
