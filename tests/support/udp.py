"""UDP test helpers: a lossy relay, and a datagram-level client that counts bytes."""

from __future__ import annotations

import contextlib
import json
import queue
import random
import socket
import threading
import time
from typing import Any

from tests.support.clients import DEFAULT_TIMEOUT
from webchat.transports.udp_client import UdpClient


class LossyRelay:
    """Sits between one client and the server; drops, duplicates and reorders datagrams.

    Seeded, so every run loses the same share. ``front`` is where the client sends;
    the server sees the relay's ``back`` socket as the client's address.
    """

    def __init__(
        self,
        server_port: int,
        seed: int = 7,
        drop: float = 0.1,
        duplicate: float = 0.05,
        reorder: float = 0.05,
    ) -> None:
        self.server = ("127.0.0.1", server_port)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind(("127.0.0.1", 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind(("127.0.0.1", 0))
        self.client: tuple[str, int] | None = None
        self.rates = (drop, duplicate, reorder)
        self.forwarded = {"up": 0, "down": 0}
        self.dropped = {"up": 0, "down": 0}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=("up", random.Random(seed)), daemon=True),
            threading.Thread(
                target=self._pump, args=("down", random.Random(seed + 1)), daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def port(self) -> int:
        return int(self.front.getsockname()[1])

    def _pump(self, direction: str, rng: random.Random) -> None:
        source = self.front if direction == "up" else self.back
        out = self.back if direction == "up" else self.front
        source.settimeout(0.02)
        held: bytes | None = None
        drop, duplicate, reorder = self.rates
        while not self._stop.is_set():
            try:
                data, addr = source.recvfrom(65535)
            except TimeoutError:
                if held is not None:
                    self._forward(out, direction, held)
                    held = None
                continue
            except OSError:
                continue
            if direction == "up":
                self.client = addr
            roll = rng.random()
            if roll < drop:
                self.dropped[direction] += 1
                continue
            if roll < drop + reorder and held is None:
                held = data  # goes after the next one
                continue
            self._forward(out, direction, data)
            if roll < drop + reorder + duplicate:
                self._forward(out, direction, data)
            if held is not None:
                self._forward(out, direction, held)
                held = None

    def _forward(self, out: socket.socket, direction: str, data: bytes) -> None:
        target = self.server if direction == "up" else self.client
        if target is None:
            return
        self.forwarded[direction] += 1
        with contextlib.suppress(OSError):
            out.sendto(data, target)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.front.close()
        self.back.close()


class Datagrams:
    """A raw UDP socket that remembers every byte it sent and received."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.server = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sent_bytes = 0
        self.received_bytes = 0
        self.received: list[bytes] = []

    def send(self, data: bytes | str | dict[str, Any]) -> None:
        if isinstance(data, dict):
            data = json.dumps(data).encode()
        elif isinstance(data, str):
            data = data.encode()
        self.sent_bytes += len(data)
        self.sock.sendto(data, self.server)

    def recv(self, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65535)
        except TimeoutError:
            return None
        self.received_bytes += len(data)
        self.received.append(data)
        return data

    def drain(self, quiet: float = 0.3) -> list[bytes]:
        """Everything that arrives until ``quiet`` seconds pass without a datagram."""
        out = []
        while (data := self.recv(quiet)) is not None:
            out.append(data)
        return out

    def expect(self, needle: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            data = self.recv(max(0.0, left)) if left > 0 else None
            if data is None:
                raise TimeoutError(f"no datagram with {needle!r} within {timeout} s")
            if needle in data:
                return data

    def close(self) -> None:
        self.sock.close()


def next_event(client: UdpClient, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any] | None:
    return client.events.get(timeout=timeout)


def expect_event(
    client: UdpClient, type_: str, timeout: float = DEFAULT_TIMEOUT, **fields: Any
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            event = client.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"no {type_} event {fields} within {timeout} s") from None
        if event is None:
            raise AssertionError(f"the session ended ({client.end or client.lost})")
        if event.get("type") == type_ and all(event.get(k) == v for k, v in fields.items()):
            return event
