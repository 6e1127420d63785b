"""How many connections the server holds: in all, and from one address.

Every open socket counts once: a TCP chat user, and each connection to the web
port (a page load, a WebSocket, a half-sent request alike). The server refuses
the next one before it costs a thread: a TCP client gets one line saying why, a
web client an HTTP 503 (full) or 429 (its address has too many), with
``Retry-After``. The total stays below the open-files limit (see
:mod:`webchat.policy.files`), so the server never runs out of descriptors and
never fails halfway through a connection.
"""

from __future__ import annotations

import threading

SERVER_FULL = "server_full"
PER_ADDRESS = "per_address"


class ConnectionGate:
    """Thread-safe; ``total`` or ``per_address`` of 0 means no limit of that kind."""

    def __init__(self, total: int, per_address: int) -> None:
        self.total = total
        self.limit = per_address
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    @property
    def open(self) -> int:
        return self._count

    def acquire(self, address: str) -> str | None:
        """Take a slot; None if granted, else why not (SERVER_FULL or PER_ADDRESS)."""
        address = normal_address(address)
        with self._lock:
            if self.total > 0 and self._count >= self.total:
                return SERVER_FULL
            count = self._open.get(address, 0)
            if self.limit > 0 and count >= self.limit:
                return PER_ADDRESS
            self._open[address] = count + 1
            self._count += 1
            return None

    def release(self, address: str) -> None:
        address = normal_address(address)
        with self._lock:
            count = self._open.get(address, 0) - 1
            if count < 0:
                return
            self._count -= 1
            if count > 0:
                self._open[address] = count
            else:
                del self._open[address]

    def count(self, address: str) -> int:
        with self._lock:
            return self._open.get(normal_address(address), 0)

    def explain(self, reason: str, address: str) -> str:
        """Why a connection was refused, for the person who made it."""
        if reason == SERVER_FULL:
            return f"the server is full ({self.total} connections); try again in a minute"
        return f"too many connections from {address} (limit {self.limit}); close one and try again"


def normal_address(address: str) -> str:
    """One key per machine: an IPv4 client seen through an IPv6 socket counts as itself."""
    return address.removeprefix("::ffff:") if address.startswith("::ffff:") else address
