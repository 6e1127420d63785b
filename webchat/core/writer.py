"""The one writer of a session's socket, and the direct send that usually spares it.

Rule 1 of DESIGN.md: one writer at a time per connection. Whoever writes holds
the session's write lock: the committer's thread, for a non-blocking direct send
of what is new (``send_direct``), or the session's writer thread for everything
else (history, a socket that is backed up, keepalives, the goodbye). The writer
only knows a :class:`Feed` of packets, never the hub.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Protocol, cast

from webchat.core.events import Packet
from webchat.core.session import DirectTransport, Session, Transport
from webchat.core.stats import Histogram

log = logging.getLogger(__name__)


class Feed(Protocol):
    """Where a writer takes its session's packets from (the hub's fan-out ring)."""

    def take(self, session: Session) -> tuple[list[Packet], bool]:
        """Everything owed to the session now, and whether it is closing with nothing left."""

    def wait_for(self, session: Session, doorbell: Doorbell, timeout: float | None) -> None:
        """Sleep on the doorbell unless something is already owed."""

    def close(self, session: Session, reason: str, code: int) -> None:
        """Start closing the session; the first reason wins."""


class Doorbell:
    """A one-slot wake-up for one writer, on a bare lock: ring() by anyone, wait() by the writer.

    threading.Event is a Condition in Python; with a thousand writers woken for each
    event, a lock held while "not rung" (released by ring, taken back by wait) is cheaper.
    """

    def __init__(self) -> None:
        self._bell = threading.Lock()
        self._bell.acquire()  # not rung

    def ring(self) -> None:
        with contextlib.suppress(RuntimeError):  # already rung: one ring is enough
            self._bell.release()

    def wait(self, timeout: float | None) -> bool:
        """Wait for a ring and consume it; False when the timeout passed first."""
        return self._bell.acquire(timeout=-1 if timeout is None else max(0.0, timeout))


class Writer:
    """Sends one session's packets: first its preamble, then everything live, then goodbye."""

    def __init__(self, session: Session, feed: Feed, direct: bool) -> None:
        self.session = session
        self.feed = feed
        self.doorbell = Doorbell()
        self.done = threading.Event()
        # Bytes of a direct send that did not fit; they go out before anything else.
        self.unsent = b""
        self._direct = cast(DirectTransport, session.transport) if direct else None
        self._lock = threading.Lock()  # the session's write lock
        self._live = False  # the preamble is out: live packets may go direct
        self._last_wrote = 0.0
        self._thread: threading.Thread | None = None
        # For /metrics, changed only under the write lock: packets handed to the socket,
        # and the latency (publish to write) of the first live packet of each write this
        # thread makes (direct writes are measured per batch, by Delivery.hand_over).
        self.delivered = 0
        self.latency = Histogram()
        self._unsent_born = 0.0  # that first packet's, when a direct send wrote nothing

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"writer-{self.session.id}", daemon=True
        )
        self._thread.start()

    def wait_closed(self, timeout: float) -> None:
        """Let the writer finish its last words before the transport tears down."""
        if self._thread is not None and not self.done.wait(timeout):
            self.session.transport.abort()
            self.done.wait(timeout)

    def send_direct(self, now: float) -> bool:
        """Deliver what is new without waiting, from the committer's thread.

        True when nothing is left for the writer thread. At a thousand users, waking a
        thousand writer threads for each message costs far more than the writes.
        """
        direct = self._direct
        if direct is None or not self._live or self.session.closing:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # the writer is at it
        try:
            if self.unsent:
                return False
            packets, closing = self.feed.take(self.session)
            mine = self.session.select(packets)
            if mine:
                data = direct.frame(mine)
                try:
                    sent = direct.send_nowait(data)
                except OSError:
                    sent = 0  # the writer thread meets the error itself
                self.delivered += len(mine)  # counted per write, never per packet
                if sent:
                    self._last_wrote = now  # its latency is the batch's (Delivery.hand_over)
                else:
                    self._unsent_born = mine[0].born
                if sent < len(data):
                    self.unsent = data[sent:]
                    return False
            return not closing
        finally:
            self._lock.release()

    def _send(self, transport: Transport, packets: list[Packet]) -> None:
        self.session.sending = True
        transport.send_packets(packets)
        self.session.sending = False
        now = self._last_wrote = time.monotonic()
        self.delivered += len(packets)
        if born := packets[0].born:
            self.latency.observe(now - born)

    def _write_owed(self, transport: Transport) -> bool:
        """Send the rest of a direct write, then whatever is new; True once closing."""
        packets, closing = self.feed.take(self.session)
        unsent, self.unsent = self.unsent, b""
        mine = self.session.select(packets)
        if unsent:
            assert self._direct is not None  # only a direct send leaves bytes behind
            self.session.sending = True
            self._direct.send_raw(unsent)
            self.session.sending = False
            if born := self._unsent_born:  # the direct send that left it wrote nothing
                self._unsent_born = 0.0
                self.latency.observe(time.monotonic() - born)
        if mine:
            self._send(transport, mine)
        elif not unsent:
            transport.flush_control()
        return closing

    def _run(self) -> None:
        session, transport = self.session, self.session.transport
        interval = transport.keepalive_interval
        # Writers wake for every close and every reply, so "woke with nothing" does not
        # mean "idle": keepalives go by the clock.
        next_keepalive = None if interval is None else time.monotonic() + interval
        try:
            with self._lock:
                self._write_owed(transport)  # the preamble (history, welcome) first
                self._live = True
            while True:
                wait = None
                if next_keepalive is not None:
                    wait = max(0.0, next_keepalive - time.monotonic())
                self.feed.wait_for(session, self.doorbell, wait)
                with self._lock:
                    closing = self._write_owed(transport)
                if next_keepalive is not None and interval is not None and not closing:
                    now = time.monotonic()
                    if self._last_wrote > now - interval:
                        next_keepalive = self._last_wrote + interval
                    elif now >= next_keepalive:
                        next_keepalive = now + interval
                        with self._lock:
                            reason = transport.keepalive()
                        if reason:
                            self.feed.close(session, reason, 1008)
                            continue
                if closing:
                    with self._lock:
                        transport.send_goodbye(session.close_reason, session.close_code)
                    break
        except OSError as exc:
            log.debug("writer for %r stopped: %s", session, exc)
        finally:
            transport.abort()
            self.done.set()
