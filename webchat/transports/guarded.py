"""What every listening server of webchat does the same way, whatever it speaks.

- **Admission in the accept thread.** Each accepted socket takes a slot of the
  :class:`~webchat.policy.connections.ConnectionGate` before a thread is started
  for it; a refused one gets a short answer written without waiting (a TCP line,
  an HTTP 503 or 429) and is closed, so a flood of connections costs no threads.
- **Out of descriptors, calmly.** ``accept()`` failing with EMFILE leaves the
  connection in the kernel's queue, and the listening socket stays readable: a
  plain ``socketserver`` loop would spin at 100% of a core. Here the accept
  thread pauses briefly instead, and says so in the log once in a while.
- **No tracebacks** for a connection that breaks: one log line.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import logging
import socketserver
import sys
import threading
import time
from typing import Any

from webchat.policy.connections import ConnectionGate

log = logging.getLogger(__name__)

# Seconds the accept loop rests after running out of descriptors: long enough not to
# spin, short enough that a slot freed by a leaving user is used at once.
OUT_OF_FILES_PAUSE = 0.1
# Seconds between two warnings about running out of descriptors.
OUT_OF_FILES_WARN_EVERY = 10.0
_OUT_OF_FILES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GuardedServer(socketserver.BaseServer, metaclass=abc.ABCMeta):
    """A mixin for ``socketserver`` servers; set ``gate`` before serving."""

    gate: ConnectionGate
    _admitted: dict[int, str]
    _admitted_lock: threading.Lock
    _warned_at: float = 0.0

    def init_guard(self, gate: ConnectionGate) -> None:
        self.gate = gate
        self._admitted = {}
        self._admitted_lock = threading.Lock()

    @abc.abstractmethod
    def refusal(self, reason: str, text: str) -> bytes:
        """The bytes a refused client is sent (this server's protocol)."""

    def get_request(self) -> Any:
        try:
            return super().get_request()
        except OSError as exc:
            if exc.errno in _OUT_OF_FILES:
                self._out_of_files(exc)
            raise

    def _out_of_files(self, exc: OSError) -> None:
        now = time.monotonic()
        if now - self._warned_at >= OUT_OF_FILES_WARN_EVERY:
            self._warned_at = now
            log.warning(
                "cannot accept connections: %s (%d open); newcomers wait in the queue. "
                "Raise the open-files limit or lower --max-connections",
                exc.strerror,
                self.gate.open,
            )
        time.sleep(OUT_OF_FILES_PAUSE)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        address = str(client_address[0]) if client_address else "unknown"
        reason = self.gate.acquire(address)
        if reason is None:
            with self._admitted_lock:
                self._admitted[id(request)] = address
            return True
        self.refused(reason, address)
        with contextlib.suppress(OSError):
            request.setblocking(False)
            request.send(self.refusal(reason, self.gate.explain(reason, address)))
        return False

    def refused(self, reason: str, address: str) -> None:
        """A connection was turned away (counted by the metrics, logged quietly)."""
        log.debug("refused a connection from %s: %s", address, reason)

    def shutdown_request(self, request: Any) -> None:
        with self._admitted_lock:
            address = self._admitted.pop(id(request), None)
        if address is not None:
            self.gate.release(address)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection's thread failed: one line, never a traceback for a broken socket."""
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            log.info("connection from %s ended: %s", client_address, exc)
        else:
            log.exception("connection from %s failed", client_address)
