"""What the socket transports share: a socket written whole, or without waiting.

A :class:`SocketTransport` is a :class:`~webchat.core.session.DirectTransport`:
the hub's committer may write to it with a non-blocking send while it holds the
session's write lock (see :mod:`webchat.core.writer`); everything else is written
by the session's writer thread.
"""

from __future__ import annotations

import abc
import contextlib
import socket
import threading

from webchat.core.events import Packet
from webchat.transports.tls import TlsStream


class SocketTransport(abc.ABC):
    direct = True

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._aborted = threading.Event()
        # A TLS connection takes a direct send's plaintext whole or not at all (it returns
        # len(data) or 0); what the socket did not take is ciphertext that it keeps, and
        # send_raw then finishes that rather than sending the plaintext again.
        self._tls = sock if isinstance(sock, TlsStream) else None

    @abc.abstractmethod
    def frame(self, packets: list[Packet]) -> bytes:
        """The bytes for these packets (and any control frames owed)."""

    @abc.abstractmethod
    def unanswered(self) -> str | None:
        """Why to close if the peer never answered the last keepalive; else None."""

    @abc.abstractmethod
    def ping(self) -> bytes:
        """A keepalive's bytes, for a direct send (see core.writer)."""

    @abc.abstractmethod
    def end_write(self) -> None:
        """After the goodbye: end the writing side (TLS: close_notify), or nothing."""

    @abc.abstractmethod
    def goodbye(self, reason: str, code: int) -> bytes:
        """The last words, as bytes: a direct send may carry them (see core.writer)."""

    def send_packets(self, packets: list[Packet]) -> None:
        self.sock.sendall(self.frame(packets))

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes now; how many bytes that was."""
        try:
            return self.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return 0

    def send_raw(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls.send_rest(data)
        else:
            self.sock.sendall(data)

    def abort(self) -> None:
        """Cut the connection now; safe from any thread, wakes a blocked reader and writer."""
        if self._aborted.is_set():
            return
        self._aborted.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
