"""A hub on its own, with recording transports, and the test-only ways to look inside it."""

from __future__ import annotations

import threading
import time

from tests.support.clients import wait_until
from webchat.bus.local import LocalBus
from webchat.core.events import Event, Packet
from webchat.core.hub import Hub
from webchat.core.limits import HubLimits
from webchat.core.session import Session
from webchat.core.writer import Writer
from webchat.history import SqliteHistory


class Recorder:
    """A session Transport that keeps every packet its writer hands it."""

    keepalive_interval: float | None = None
    direct = False

    def __init__(self, kind: str = "web") -> None:
        self.kind = kind
        self.shows_own_input = kind == "tcp"  # like nc: no echo of one's own lines
        self.packets: list[Packet] = []
        self.goodbye: tuple[str, int] | None = None
        self.aborted = threading.Event()
        self._lock = threading.Lock()

    def send_packets(self, packets: list[Packet]) -> None:
        with self._lock:
            self.packets.extend(packets)

    def keepalive(self) -> str | None:
        return None

    def flush_control(self) -> None:
        return None

    def send_goodbye(self, reason: str, code: int) -> None:
        self.goodbye = (reason, code)

    def abort(self) -> None:
        self.aborted.set()

    def events(self) -> list[Event]:
        with self._lock:
            return [p.event for p in self.packets]

    def texts(self, type_: str = "message") -> list[str | None]:
        return [e.text for e in self.events() if e.type == type_]

    def wait_for_text(self, text: str, timeout: float = 10.0) -> None:
        wait_until(lambda: text in self.texts(), timeout, f"{text!r} reaching {self.kind}")


class StuckRecorder(Recorder):
    """A transport whose send blocks until the connection is cut, like a stalled peer."""

    def send_packets(self, packets: list[Packet]) -> None:
        self.aborted.wait()
        raise OSError("cut")


def new_hub(**limits: object) -> Hub:
    """A hub with an in-memory history behind the embedded bus."""
    history = SqliteHistory(":memory:")
    return Hub(HubLimits(**limits), LocalBus(history), history)  # type: ignore[arg-type]


def join(
    hub: Hub,
    nick: str,
    kind: str = "web",
    writer: bool = True,
    transport: Recorder | None = None,
    rooms: tuple[str, ...] = (),
) -> tuple[Session, Recorder]:
    recorder = transport or Recorder(kind)
    session = hub.join(nick, recorder, rooms=rooms)
    if writer:
        # The preamble is written by the connection's own thread, as serve() does; a
        # stuck transport keeps that thread, so it is only waited for otherwise.
        connection = threading.Thread(
            target=hub.start, args=(session,), name=f"connection-{nick}", daemon=True
        )
        connection.start()
        if not isinstance(recorder, StuckRecorder):
            connection.join(10)
    return session, recorder


def flush(hub: Hub, timeout: float = 10.0) -> bool:
    """Wait until everything published so far is in the ring."""
    with hub.lock:
        target = hub.fanout.submitted
    try:
        wait_until(lambda: hub.fanout.released >= target, timeout, "the ring to have it all")
    except TimeoutError:
        return False
    return True


def take(hub: Hub, session: Session, timeout: float) -> tuple[list[Packet], bool]:
    """What a session without a writer thread is owed: wait up to ``timeout``, then take it."""
    deadline = time.monotonic() + timeout
    while True:
        packets, closing = hub.fanout.take(session)
        if packets or closing or time.monotonic() >= deadline:
            return packets, closing
        time.sleep(0.001)


def writer_of(hub: Hub, session: Session) -> Writer:
    """The session's writer, to watch it end."""
    return hub.delivery._writers[session.id]
