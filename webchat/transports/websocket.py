"""One WebSocket after its handshake: JSON frames in on the request thread, frames out.

flask-sock and simple-websocket do the HTTP upgrade. After that simple-websocket
would run a reader thread of its own that also writes (pongs, close replies) and
can miss a close; webchat starts no such thread (:class:`NoReaderThread`). The
request thread reads frames with wsproto (:class:`FrameReader`) and turns them into
joins and lines (:class:`WsConnection`). Until the join the request thread writes
too; after it, everything that goes out, control frames included, is written under
the session's write lock (see :mod:`webchat.core.writer`), whole frames at a time.
"""

from __future__ import annotations

import contextlib
import json
import select
import socket
import struct
import threading
import time
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

from webchat.core.events import Event, Packet, encode_json, utc_now
from webchat.core.serve import Ended, JoinRequest, Line, Refusal
from webchat.core.session import Session
from webchat.text import ChatError, clean_text
from webchat.transports.sockets import SocketTransport

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
    shows_own_input = False  # the page shows a message once the server sends it back
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
        reason = self.unanswered()
        if reason is None:
            self.sock.sendall(self.ping())
        return reason

    def unanswered(self) -> str | None:
        """Why to close if the last ping got no pong; else None, and a ping is owed."""
        if not self.pong_received:
            return "ping timeout: no answer to the last ping"
        self.pong_received = False
        return None

    def ping(self) -> bytes:
        return self._take_control() + frame(OP_PING, b"")

    def goodbye(self, reason: str, code: int) -> bytes:
        if self.peer_close is not None:  # answer the peer's close with its own code
            return close_frame(self.peer_close, "")
        data = close_frame(code, reason)
        if code != 1000:
            error = Event("error", text=f"disconnected: {reason}", ts=utc_now())
            data = frame(OP_TEXT, encode_json(error)) + data
        return data

    def send_goodbye(self, reason: str, code: int) -> None:
        self.sock.sendall(self.goodbye(reason, code))

    def end_write(self) -> None:
        return None  # the close frame ends the stream; the peer answers it (see _finish)


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
            # Wait first, then read: recv(65536) would hold a 64 KB buffer for as long as
            # it waits, and an idle browser waits for hours (32 KB a connection, measured).
            if not self._readable(timeout):
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

    def _readable(self, timeout: float | None) -> bool:
        """Wait until the socket has something (or has ended); False after ``timeout``."""
        pending = getattr(self.sock, "pending", None)  # TLS: decrypted bytes the fd cannot show
        if pending is not None and pending():
            return True
        poller = select.poll()  # poll, not select: no FD_SETSIZE limit with many sockets
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))

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


class WsConnection:
    """A browser's side of :func:`~webchat.core.serve.serve`: a join frame, then say frames."""

    asks = False  # passwords come in the join frame

    def __init__(
        self, reader: FrameReader, transport: WsTransport, nick_timeout: float, address: str
    ) -> None:
        self.reader = reader
        self.transport = transport
        self.nick_timeout = nick_timeout
        self.address = address

    def ask(self, prompt: str) -> str | None:
        return None

    def read_join(self) -> JoinRequest | None:
        deadline = time.monotonic() + self.nick_timeout
        try:
            while True:
                raw = self.reader.receive(max(0.0, deadline - time.monotonic()))
                if raw is None:
                    self.transport.send_goodbye(
                        f"no join within {self.nick_timeout:g} seconds", 1008
                    )
                    return None
                request = join_request(decode(raw))
                if isinstance(request, JoinRequest):
                    return request
                self.refuse_join(request)
        except Closed as exc:
            if exc.code in (1002, 1009):  # our close to make, with the reason
                with contextlib.suppress(OSError):
                    self.transport.send_goodbye(exc.reason, exc.code)
            return None

    def refuse_join(self, error: ChatError) -> None:
        event = Event("error", text=str(error), ts=utc_now(), extra={"code": error.code})
        self.transport.send_event(event)

    def joined(self, wake_writer: Callable[[], None]) -> None:
        self.reader.direct = False  # from now on the session's writer sends everything
        self.reader.wake_writer = wake_writer

    def read(self, session: Session) -> Line | Refusal | None:
        try:
            raw = self.reader.receive(None)
        except Closed as exc:
            if exc.code in (1002, 1009):
                raise Ended(exc.reason, exc.code) from None
            raise Ended("connection closed") from None
        if raw is None:  # only a timeout returns None, and this read has none
            return None
        return say_line(decode(raw), session.nick)


def decode(raw: str | bytes) -> dict[str, Any] | ChatError:
    """Parse a client frame into a dict, or say what is wrong with it."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        return ChatError("bad_frame", 'frames must be JSON, like {"type":"say","text":"hello"}')
    if not isinstance(frame, dict):
        return ChatError(
            "bad_frame", 'frames must be JSON objects, like {"type":"say","text":"hello"}'
        )
    return frame


def join_request(frame: dict[str, Any] | ChatError) -> JoinRequest | ChatError:
    if isinstance(frame, ChatError):
        return frame
    if frame.get("type") != "join":
        return ChatError("join_first", 'join first: {"type":"join","nick":"NAME"}')
    nick = frame.get("nick")
    if not isinstance(nick, str):
        return ChatError("nick_empty", "join needs a nick, as a string")
    since = frame.get("since")
    if since is not None and (type(since) is not int or since < 0):
        return ChatError("bad_frame", "since must be the id of the last event you saw, >= 0")
    rooms = frame.get("rooms", [])
    if not isinstance(rooms, list) or not all(isinstance(r, str) for r in rooms):
        return ChatError("bad_frame", 'rooms must be a list of room names, like ["#dev"]')
    password, server_password = frame.get("password"), frame.get("server_password")
    for name, value in (("password", password), ("server_password", server_password)):
        if value is not None and not isinstance(value, str):
            return ChatError("bad_frame", f"{name} must be a string")
    return JoinRequest(clean_text(nick), since, tuple(rooms), password, server_password)


def say_line(frame: dict[str, Any] | ChatError, nick: str) -> Line | Refusal:
    if isinstance(frame, ChatError):
        return Refusal(str(frame), frame.code)
    kind = frame.get("type")
    if kind == "say":
        text, room = frame.get("text"), frame.get("room")
        if not isinstance(text, str):
            return Refusal("say needs a text, as a string", "bad_frame")
        if room is not None and not isinstance(room, str):
            return Refusal("room must be a room name, as a string", "bad_frame")
        return Line(text, room)
    if kind == "join":
        return Refusal(f"already joined as {nick}", "already_joined")
    return Refusal(f'unknown frame type {kind!r}; send {{"type":"say","text":"..."}}', "bad_frame")
