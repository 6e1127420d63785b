"""CPU per delivery on the hub's direct path, in-process, when every write carries one packet.

100 sessions on sinks that take every byte at once (no sockets, no generator); one
message at a time into #lobby, each waited for, so each of the 99 receivers gets it
in a write of its own: the worst case for anything counted per write (see the
"Metrics" section of benchmarks/README.md). Run it against another checkout with
``PYTHONPATH=/path/to/checkout .venv/bin/python -m benchmarks.direct_writes``.
"""

from __future__ import annotations

import argparse
import threading
import time

from webchat.bus.local import LocalBus
from webchat.core.events import Packet
from webchat.core.hub import Hub
from webchat.core.limits import HubLimits
from webchat.history import SqliteHistory
from webchat.settings import Settings


class Sink:
    """A terminal that takes every write whole, at once."""

    kind = "tcp"
    shows_own_input = True
    direct = True
    keepalive_interval: float | None = None

    def __init__(self) -> None:
        self.writes = 0
        self.got = threading.Event()

    def frame(self, packets: list[Packet]) -> bytes:
        return packets[0].line if len(packets) == 1 else b"".join([p.line for p in packets])

    def send_nowait(self, data: bytes) -> int:
        self.writes += 1
        self.got.set()
        return len(data)

    def send_raw(self, data: bytes) -> None:
        self.writes += 1
        self.got.set()

    def send_packets(self, packets: list[Packet]) -> None:
        self.writes += 1
        self.got.set()

    def keepalive(self) -> str | None:
        return None

    def send_goodbye(self, reason: str, code: int) -> None:
        return None

    def goodbye(self, reason: str, code: int) -> bytes:
        return b""

    def unanswered(self) -> str | None:
        return None

    def ping(self) -> bytes:
        return b""

    def end_write(self) -> None:
        return None

    def flush_control(self) -> None:
        return None

    def abort(self) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    history = SqliteHistory(":memory:")
    limits = HubLimits.from_settings(Settings(rate_per_second=0, history_replay=0))
    hub = Hub(limits, LocalBus(history), history)
    sinks = [Sink() for _ in range(args.sessions)]
    sessions = []
    for i, sink in enumerate(sinks):
        session = hub.join(f"u{i}", sink)
        hub.start(session)
        sessions.append(session)
    last, sender = sinks[-1], sessions[0]
    while last.writes == 0:  # its preamble (the welcome) went out
        last.got.wait(1)
    began = time.process_time()
    for i in range(args.messages):
        last.got.clear()
        hub.publish("message", sender.nick, f"m {i}", room="#lobby", origin=sender)
        last.got.wait(10)
    cpu = time.process_time() - began
    deliveries = args.messages * (args.sessions - 1)
    print(
        f"{cpu / args.messages * 1e6:.1f} µs CPU per message, "
        f"{cpu / deliveries * 1e9:.0f} ns per delivery (one packet a write)"
    )
    hub.shutdown()


if __name__ == "__main__":
    main()
