"""The one writer of a session's socket, and the direct send that usually spares it.

Rule 1 of DESIGN.md: one writer at a time per connection. Whoever writes holds
the session's write lock: the committer's thread, for a non-blocking direct send
of what is new (``send_direct``), or the session's writer thread for everything
else (history, a socket that is backed up, keepalives, a goodbye that did not fit).

A writer thread exists only while it has work: it is started when a direct send
cannot finish (or for a transport that has no direct send), and it ends after
``WRITER_LINGER`` seconds with nothing to do. With ten thousand idle connections that
is ten thousand threads fewer. The preamble (history and the welcome) is written by
the connection's own thread as it joins, so a join starts no thread at all. The
writer only knows a :class:`Feed` of packets, never the hub.
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

# Seconds a writer thread stays after its last work. A socket that backed up once is
# likely to again within a burst, and a thread costs about 0.1 ms to start; an idle
# thread costs its stack. A second keeps threads for bursts and not for idle people.
WRITER_LINGER = 1.0


class Feed(Protocol):
    """Where a writer takes its session's packets from (the hub's fan-out ring)."""

    def take(self, session: Session) -> tuple[list[Packet], bool]:
        """Everything owed to the session now, and whether it is closing with nothing left."""

    def wait_for(self, session: Session, doorbell: Doorbell, timeout: float | None) -> None:
        """Sleep on the doorbell unless something is already owed."""

    def close(self, session: Session, reason: str, code: int) -> None:
        """Start closing the session; the first reason wins."""

    def sending(self, session: Session) -> contextlib.AbstractContextManager[None]:
        """Held around a blocking send: a peer that stops reading meanwhile is too slow."""


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
        self._ended = False  # done is set: a plain bool for the fan-out's inner loop
        # Bytes of a direct send that did not fit; they go out before anything else.
        self.unsent = b""
        self._direct = cast(DirectTransport, session.transport) if direct else None
        self._lock = threading.Lock()  # the session's write lock
        self._live = False  # the preamble is out: live packets may go direct
        self._said_goodbye = False  # the goodbye is written, or is in ``unsent``
        self._last_wrote = 0.0
        self._last_keepalive = time.monotonic()
        # Whether a thread is running (or about to); under _spawn, with _started.
        self._spawn = threading.Lock()
        self._running = False
        self._started = False  # start() was called: the preamble's splice is in place
        # For /metrics, changed only under the write lock: packets handed to the socket,
        # and the latency (publish to write) of the first live packet of each write this
        # thread makes (direct writes are measured per batch, by Delivery.hand_over).
        self.delivered = 0
        self.latency = Histogram()
        self._unsent_born = 0.0  # that first packet's, when a direct send wrote nothing

    def start(self) -> None:
        """Write the preamble (and anything owed after it) now, in the calling thread: the
        connection's own, which has nothing else to do yet. Until now a ring only marked
        work as owed; from now on a ring starts a thread if none is writing. Starting a
        thread for each join (and ending it) cost more than the rest of the join: 6,000
        people joined in 45 s that way, against 29 s (benchmarks/README.md)."""
        with self._spawn:
            self._started = True
            self._running = True
        self._run(linger=0.0)

    @property
    def started(self) -> bool:
        """start() was called: the writer will end (a session still joining has not)."""
        return self._started

    def ring(self) -> None:
        """Something is owed: wake the thread, or start one if none is running."""
        with self._spawn:
            if self._running or not self._started or self.done.is_set():
                self.doorbell.ring()
                return
            self._running = True
        threading.Thread(
            target=self._run, args=(WRITER_LINGER,), name=f"writer-{self.session.id}", daemon=True
        ).start()

    def nudge(self) -> None:
        """The session started closing: a direct send follows the close marker's batch
        (Delivery.hand_over) and says goodbye, so only a writer without one needs a thread."""
        if self._direct is not None and self._live:
            self.doorbell.ring()  # a running thread sees it; no thread is started for it
        else:
            self.ring()

    def keepalive_at(self) -> float | None:
        """When the peer is owed a keepalive unless something is written first; None: never."""
        interval = self.session.transport.keepalive_interval
        if interval is None:
            return None
        return max(self._last_wrote, self._last_keepalive) + interval

    def keepalive_due(self, now: float) -> bool:
        due = self.keepalive_at()
        return due is not None and now >= due

    def keepalive_direct(self, now: float) -> None:
        """Ping an idle peer from the hub's reaper, without waiting and without a thread
        (a thread started for each ping would keep hundreds of threads for pings alone)."""
        direct = self._direct
        if direct is None or not self._live or not self._lock.acquire(blocking=False):
            self.ring()  # the thread does it
            return
        try:
            if self.unsent or self._said_goodbye or self.session.closing:
                return
            if not self.keepalive_due(now):  # its thread pinged it meanwhile
                return
            self._last_keepalive = now
            reason = direct.unanswered()
            if reason:
                self.feed.close(self.session, reason, 1008)
                return
            data = direct.ping()
            try:
                sent = direct.send_nowait(data)
            except OSError:
                sent = 0  # a writer thread meets the error itself
            if sent < len(data):
                self.unsent = data[sent:]
        finally:
            self._lock.release()
        if self.unsent:
            self.ring()

    def wait_closed(self, timeout: float) -> None:
        """Let the writer finish its last words before the transport tears down."""
        if self._started and not self.done.wait(timeout):
            self.session.transport.abort()
            with self._spawn:
                running = self._running
            if not running:  # nobody is left to finish it (its close marker never came)
                self._ended = True
                self.done.set()
            self.done.wait(timeout)

    def send_direct(self, now: float) -> bool:
        """Deliver what is new without waiting, from the committer's thread.

        True when nothing is left for a writer thread. At a thousand users, waking a
        thousand writer threads for each message costs far more than the writes. A
        closing session gets its goodbye here too, and is finished.
        """
        direct = self._direct
        if direct is None or not self._live or self._ended:
            return False
        if not self._lock.acquire(blocking=False):
            return False  # the writer is at it
        try:
            if self.unsent or self._said_goodbye:
                return False
            packets, closing = self.feed.take(self.session)
            mine = self.session.select(packets)
            if not mine and not closing:
                return True
            data = direct.frame(mine) if mine else b""
            if closing:
                session = self.session
                data += direct.goodbye(session.close_reason, session.close_code)
                self._said_goodbye = True
            try:
                sent = direct.send_nowait(data)
            except OSError:
                sent = 0  # the writer thread meets the error itself
            self.delivered += len(mine)  # counted per write, never per packet
            if sent:
                self._last_wrote = now  # its latency is the batch's (Delivery.hand_over)
            elif mine:
                self._unsent_born = mine[0].born
            if sent < len(data):
                self.unsent = data[sent:]
                return False
            if closing:
                self._finish()
            return True
        finally:
            self._lock.release()

    def _finish(self) -> None:
        if self._said_goodbye and self._direct is not None:
            with contextlib.suppress(OSError):  # TLS says close_notify; TCP sends its FIN
                self._direct.end_write()
        self.session.transport.abort()
        self._ended = True
        self.done.set()

    def _send(self, transport: Transport, packets: list[Packet]) -> None:
        with self.feed.sending(self.session):
            transport.send_packets(packets)
        now = self._last_wrote = time.monotonic()
        self.delivered += len(packets)
        if born := packets[0].born:
            self.latency.observe(now - born)

    def _write_owed(self, transport: Transport) -> bool:
        """Send the rest of a direct write, then whatever is new; True once closing."""
        unsent, self.unsent = self.unsent, b""
        if unsent:
            assert self._direct is not None  # only a direct send leaves bytes behind
            with self.feed.sending(self.session):
                self._direct.send_raw(unsent)
            self._last_wrote = time.monotonic()
            if born := self._unsent_born:  # the direct send that left it wrote nothing
                self._unsent_born = 0.0
                self.latency.observe(self._last_wrote - born)
        if self._said_goodbye:
            return True
        packets, closing = self.feed.take(self.session)
        mine = self.session.select(packets)
        if mine:
            self._send(transport, mine)
        elif not unsent:
            transport.flush_control()
        return closing

    def _run(self, linger: float) -> None:
        session, transport = self.session, self.session.transport
        retired = False
        try:
            with self._lock:
                if not self._live:
                    self._write_owed(transport)  # the preamble (history, welcome) first
                    self._live = True
            idle_since = time.monotonic()
            while True:
                with self._lock:
                    closing = self._write_owed(transport)
                    if closing and not self._said_goodbye:
                        self._said_goodbye = True
                        transport.send_goodbye(session.close_reason, session.close_code)
                if closing:
                    break
                now = time.monotonic()
                idle_since = max(idle_since, self._last_wrote)
                if self.keepalive_due(now) and self._keepalive(transport, now):
                    continue
                if now - idle_since >= linger and self._retire():
                    retired = True
                    return
                wait = self._wait(now, idle_since + linger)
                self.feed.wait_for(session, self.doorbell, wait)
        except OSError as exc:
            log.debug("writer for %r stopped: %s", session, exc)
        finally:
            if not retired:
                self._finish()

    def _keepalive(self, transport: Transport, now: float) -> bool:
        """Ping an idle peer; True when that closed the session (the loop says goodbye)."""
        with self._lock:
            if not self.keepalive_due(now):  # the reaper pinged it meanwhile
                return False
            self._last_keepalive = now
            reason = transport.keepalive()
        if reason:
            self.feed.close(self.session, reason, 1008)
            return True
        return False

    def _wait(self, now: float, retire_at: float) -> float:
        wait = retire_at - now
        due = self.keepalive_at()
        if due is not None:
            wait = min(wait, due - now)
        return max(0.0, wait)

    def _retire(self) -> bool:
        """End this thread unless a ring came in meanwhile (then there is work)."""
        with self._spawn:
            if self.doorbell.wait(0) or self.session.closing:
                return False
            self._running = False
            return True
