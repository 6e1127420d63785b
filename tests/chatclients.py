"""Test clients that speak the wire protocol over real sockets, and wait on conditions."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from simple_websocket import Client, ConnectionClosed

DEFAULT_TIMEOUT = 10.0


class TcpClient:
    """A `nc`-like client: raw bytes out, CRLF lines in."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_connection((host, port), timeout=DEFAULT_TIMEOUT)
        self.buffer = b""
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
        return True

    def read_exact(self, data: bytes, timeout: float = DEFAULT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < len(data):
            if not self._fill(deadline):
                break
        got, self.buffer = self.buffer[: len(data)], self.buffer[len(data) :]
        assert got == data, f"expected {data!r}, got {got!r}"

    def read_line(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        """One raw line including its CRLF, decoded; raises at EOF."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buffer:
            if not self._fill(deadline):
                raise EOFError(f"connection closed; buffer holds {self.buffer!r}")
        raw, _, self.buffer = self.buffer.partition(b"\r\n")
        return raw.decode("utf-8") + "\r\n"

    def expect(self, predicate: Callable[[str], bool] | str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Read lines until one matches; return it (without CRLF). Lines before it are skipped."""
        test = (lambda s: predicate in s) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            try:
                line = self.read_line(max(0.001, deadline - time.monotonic()))[:-2]
            except TimeoutError:
                raise TimeoutError(f"no line matched; saw {seen!r}") from None
            seen.append(line)
            if test(line):
                return line

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
        try:
            self.sock.close()
        except OSError:
            pass


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
        seen = []
        while True:
            try:
                event = self.next_event(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"no event matched; saw {seen!r}") from None
            seen.append(event)
            if test(event):
                return event

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
        try:
            self.ws.close()
        except Exception:  # already closed by the server
            pass
