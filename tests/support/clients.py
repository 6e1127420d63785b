"""Test clients that speak the wire protocol over real sockets, and wait on conditions."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from simple_websocket import Client, ConnectionClosed

DEFAULT_TIMEOUT = 10.0


def assert_no_tracebacks(records: list[logging.LogRecord], stderr: str) -> None:
    """The server may refuse, close and cut; it may never crash a handler."""
    errors = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    assert not errors, f"the server logged errors: {errors}"
    assert "Traceback" not in stderr, stderr


def wait_until(
    predicate: Callable[[], Any], timeout: float = DEFAULT_TIMEOUT, what: str = "the condition"
) -> Any:
    """Poll a condition until it holds (returning its value); fail after the timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class TcpClient:
    """A `nc`-like client: raw bytes out, CRLF lines in."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        rcvbuf: int | None = None,
        source: str | None = None,
    ) -> None:
        """``source``: the local address to connect from (another 127.x.y.z is another user)."""
        if rcvbuf is None:
            origin = (source, 0) if source is not None else None
            self.sock = socket.create_connection(
                (host, port), timeout=DEFAULT_TIMEOUT, source_address=origin
            )
        else:  # a small receive window, set before connecting so the handshake announces it
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.settimeout(DEFAULT_TIMEOUT)
            self.sock.connect((host, port))
        self.buffer = b""
        self.received = bytearray()  # every byte that ever arrived, for checks on the raw stream
        self.closed = False

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self, text: str) -> None:
        self.send(text + "\r\n")

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"nothing more arrived; buffer holds {self.buffer!r}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError(f"nothing more arrived; buffer holds {self.buffer!r}") from None
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        self.received += chunk
        return True

    def read_exact(self, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < len(data):
            if not self._fill(deadline):
                break
        got, self.buffer = self.buffer[: len(data)], self.buffer[len(data) :]
        assert got == data, f"expected {data!r}, got {got!r}"

    def greeting(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """The first thing the server says: its prompt (no line end) or one whole line."""
        deadline = time.monotonic() + timeout
        prompt = b"Enter your nickname: "
        while not self.buffer.startswith(prompt) and b"\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"connection closed; buffer holds {self.buffer!r}")
        if self.buffer.startswith(prompt):
            self.buffer = self.buffer[len(prompt) :]
            return prompt.decode()
        return self.read_line(timeout)

    def read_line(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """One raw line including its CRLF, decoded; raises at EOF."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"connection closed; buffer holds {self.buffer!r}")
        raw, _, self.buffer = self.buffer.partition(b"\r\n")
        return raw.decode("utf-8") + "\r\n"

    def expect(
        self, predicate: Callable[[str], bool] | str, timeout: float = DEFAULT_TIMEOUT
    ) -> str:
        """Read lines until one matches; return it (without CRLF). Lines before it are skipped."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            try:
                line = self.read_line(max(0.001, deadline - time.monotonic()))[:-2]
            except TimeoutError:
                raise TimeoutError(f"no line matched; saw {seen!r}") from None
            seen.append(line)
            if test(line):
                return line

    def read_until(
        self, predicate: Callable[[str], bool] | str, timeout: float = DEFAULT_TIMEOUT
    ) -> list[str]:
        """Every line (without CRLF) up to and including the first that matches."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        seen: list[str] = []

        def record(line: str) -> bool:
            seen.append(line)
            return test(line)

        self.expect(record, timeout)
        return seen

    def read_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        data, self.buffer = self.buffer, b""
        return data

    def join(self, nick: str) -> None:
        self.read_exact(b"Enter your nickname: ")
        self.line(nick)
        self.expect("Welcome")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class WsClient:
    """A WebSocket client that flattens batched arrays into single events."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.ws = Client.connect(base_url.replace("http", "ws", 1) + "/ws", headers=headers)
        self.pending: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def say(self, text: str) -> None:
        self.send({"type": "say", "text": text})

    def next_event(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no event arrived")
            raw = self.ws.receive(timeout=remaining)
            if raw is None:
                continue
            data = json.loads(raw)
            self.pending.extend(data if isinstance(data, list) else [data])
        return self.pending.pop(0)

    def expect(
        self, predicate: Callable[[dict[str, Any]], bool] | str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Read events until one matches (a type name, or a predicate); return it."""
        test = (lambda e: e.get("type") == predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            try:
                event = self.next_event(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no event matched; saw {seen!r}") from None
            seen.append(event)
            if test(event):
                return event

    def read_until(
        self, predicate: Callable[[dict[str, Any]], bool] | str, timeout: float = DEFAULT_TIMEOUT
    ) -> list[dict[str, Any]]:
        """Every event up to and including the first that matches."""
        test = (lambda e: e.get("type") == predicate) if isinstance(predicate, str) else predicate
        seen: list[dict[str, Any]] = []

        def record(event: dict[str, Any]) -> bool:
            seen.append(event)
            return test(event)

        self.expect(record, timeout)
        return seen

    def join(self, nick: str, **extra: Any) -> dict[str, Any]:
        self.send({"type": "join", "nick": nick, **extra})
        return self.expect("welcome")

    def wait_closed(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, str]:
        """Drain until the server closes; return its close code and reason."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                raw = self.ws.receive(timeout=0.2)
            except ConnectionClosed:
                return int(self.ws.close_reason), str(self.ws.close_message or "")
            if raw is not None:
                data = json.loads(raw)
                self.pending.extend(data if isinstance(data, list) else [data])
        raise TimeoutError("the server did not close the socket")

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already closed by the server
            self.ws.close()


@dataclass
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    rest: bytes = field(default=b"", repr=False)


def read_http_head(sock: socket.socket, timeout: float = DEFAULT_TIMEOUT) -> HttpReply:
    """Read a status line and headers; bytes after them are kept in ``rest``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed inside the HTTP head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status_line.split()[1]), headers, rest=rest)


def http_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> HttpReply:
    """One raw HTTP/1.1 request on its own connection; the body is read by Content-Length."""
    with socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT) as sock:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = read_http_head(sock)
        if reply.status == 101:  # switched to WebSocket: no body follows
            return reply
        body = reply.rest
        length = int(reply.headers.get("content-length", "-1"))
        while length < 0 or len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        reply.body, reply.rest = body, b""
        return reply


def websocket_upgrade_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **(extra or {}),
    }


class RawWsClient:
    """A WebSocket client on a bare socket that reads only when asked.

    Unlike simple-websocket's client (which reads in a background thread), this one
    can stall: with a small ``rcvbuf`` it stops the server's writes as a slow reader
    would. It also sends frames of any size and reads the close frame's code.
    """

    def __init__(
        self,
        port: int,
        headers: dict[str, str] | None = None,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """``tls``: speak wss:// to a server with a certificate for localhost. (One thread
        uses the socket: an ssl.SSLSocket must never be read and written at once.)"""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(DEFAULT_TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        host = "127.0.0.1"
        if tls is not None:
            host = "localhost"
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        lines = ["GET /ws HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in websocket_upgrade_headers(headers).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        reply = read_http_head(self.sock)
        self.status = reply.status
        self.buffer = reply.rest
        self.pending: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.close_reason = ""

    def send_frame(self, payload: bytes, opcode: int = 0x1, fin: bool = True) -> None:
        """One masked frame, as RFC 6455 asks of clients (``fin=False``: more parts follow)."""
        size = len(payload)
        first = (0x80 if fin else 0) | opcode
        if size < 126:
            head = struct.pack("!BB", first, 0x80 | size)
        elif size < 65536:
            head = struct.pack("!BBH", first, 0x80 | 126, size)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, size)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def send(self, frame: dict[str, Any] | str) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        self.send_frame(text.encode())

    def _need(self, size: int, deadline: float) -> bool:
        while len(self.buffer) < size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no complete frame arrived; buffer holds {self.buffer[:80]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return False
            self.buffer += chunk
        return True

    def read_frame(self, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame, or None if the connection ended first."""
        deadline = time.monotonic() + timeout
        if not self._need(2, deadline):
            return None
        opcode, size = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
        assert not self.buffer[1] & 0x80, "a server must not mask its frames"
        offset = 2
        if size == 126:
            if not self._need(4, deadline):
                return None
            (size,) = struct.unpack("!H", self.buffer[2:4])
            offset = 4
        elif size == 127:
            if not self._need(10, deadline):
                return None
            (size,) = struct.unpack("!Q", self.buffer[2:10])
            offset = 10
        if not self._need(offset + size, deadline):
            return None
        payload = self.buffer[offset : offset + size]
        self.buffer = self.buffer[offset + size :]
        return opcode, payload

    def next_event(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
        """The next JSON event (arrays are flattened), or None once the server closed."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            frame = self.read_frame(max(0.001, deadline - time.monotonic()))
            if frame is None:
                return None
            opcode, payload = frame
            if opcode == 0x8:
                if len(payload) >= 2:
                    (self.close_code,) = struct.unpack("!H", payload[:2])
                    self.close_reason = payload[2:].decode()
                return None
            if opcode == 0x1:
                data = json.loads(payload)
                self.pending.extend(data if isinstance(data, list) else [data])
        return self.pending.pop(0)

    def expect(
        self, predicate: Callable[[dict[str, Any]], bool] | str, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        test = (lambda e: e.get("type") == predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        seen: list[dict[str, Any]] = []
        while True:
            event = self.next_event(max(0.001, deadline - time.monotonic()))
            if event is None:
                raise EOFError(f"closed ({self.close_code}) before a match; saw {seen!r}")
            seen.append(event)
            if test(event):
                return event

    def join(self, nick: str) -> dict[str, Any]:
        self.send({"type": "join", "nick": nick})
        return self.expect("welcome")

    def read_until_closed(self, timeout: float = DEFAULT_TIMEOUT) -> list[dict[str, Any]]:
        """Every event left, until the server's close frame or the end of the stream."""
        deadline = time.monotonic() + timeout
        events = []
        while (event := self.next_event(max(0.001, deadline - time.monotonic()))) is not None:
            events.append(event)
        return events

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def parse_ts(ts: str) -> datetime:
    """A protocol timestamp as a datetime, after checking it has the promised shape."""
    assert ISO_UTC.match(ts), ts
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))
