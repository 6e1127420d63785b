"""A framed UDP client: the handshake, in-order delivery, acks and retransmission.

Used by ``webchat-client --udp``, the tests and the benchmark. Its receiving
thread reads every datagram, puts events in order on :attr:`UdpClient.events`
(dicts as the WebSocket sends them; None once the session is over), acknowledges
them, and retransmits unacknowledged lines with exponential backoff.
"""

from __future__ import annotations

import base64
import contextlib
import json
import queue
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from webchat.transports.udp_wire import (
    RTO_MAX,
    RTO_MIN,
    TICK,
    WINDOW,
    Addr,
    decode,
    encode,
    hello,
)

PING_EVERY = 15.0  # seconds between keepalives (the server ends a session after 60 silent)
LOST_AFTER = 45.0  # seconds without a datagram from the server: the session is lost
EARLY_MAX = 4096  # events kept while waiting for an earlier one


class Refused(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class UdpClient:
    def __init__(self, host: str, port: int, sock: socket.socket | None = None) -> None:
        # IPv4 first: "localhost" may name ::1 first, and the server listens on
        # 127.0.0.1 by default (a TCP client tries each address; a datagram cannot tell).
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        info = sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0]
        self.server: Addr = (str(info[4][0]), int(info[4][1]))
        self.sock = sock or socket.socket(info[0], socket.SOCK_DGRAM)
        self.sock.settimeout(TICK)
        self.token: str | None = None
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.end: dict[str, Any] | None = None  # the server's last word: reason and code
        self.lost: str | None = None
        self.retransmissions = 0
        self._cookie: str | None = None
        self._refusal: Refused | None = None
        self._expected = 1
        self._early: dict[int, dict[str, Any]] = {}
        self._parts: list[bytes] = []
        self._lock = threading.Lock()
        self._window = threading.Condition(self._lock)
        self._cseq = 0
        self._unacked: OrderedDict[int, list[Any]] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_heard = time.monotonic()
        self._last_sent = 0.0

    # --- sending ------------------------------------------------------------------

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):
            self.sock.sendto(data, self.server)
            self._last_sent = time.monotonic()

    def join(
        self,
        nick: str,
        rooms: tuple[str, ...] = (),
        since: int | None = None,
        timeout: float = 10.0,
    ) -> str:
        """Get a cookie, join, start the receiving thread; the token, or Refused/TimeoutError."""
        deadline = time.monotonic() + timeout
        wait = RTO_MIN
        while self._cookie is None:
            self._send(hello())
            self._pump(min(wait, deadline - time.monotonic()), lambda: self._cookie is not None)
            wait = min(wait * 2, RTO_MAX)
            if self._cookie is None and time.monotonic() >= deadline:
                raise TimeoutError("no answer from the server")
        message: dict[str, Any] = {"t": "join", "cookie": self._cookie, "nick": nick}
        if rooms:
            message["rooms"] = list(rooms)
        if since is not None:
            message["since"] = since
        wait = RTO_MIN
        while self.token is None:
            if self._refusal is not None:
                refusal, self._refusal, self._cookie = self._refusal, None, None
                raise refusal
            self._send(encode(message))
            self._pump(
                min(wait, deadline - time.monotonic()),
                lambda: self.token is not None or self._refusal is not None,
            )
            wait = min(wait * 2, RTO_MAX)
            if self.token is None and self._refusal is None and time.monotonic() >= deadline:
                raise TimeoutError("no answer to the join")
        self._thread = threading.Thread(target=self._loop, name="udp-client", daemon=True)
        self._thread.start()
        return self.token

    def say(self, text: str, room: str | None = None, timeout: float | None = None) -> None:
        """Send a line; waits while WINDOW lines are unacknowledged."""
        with self._window:
            deadline = None if timeout is None else time.monotonic() + timeout
            while len(self._unacked) >= WINDOW and not self._stop.is_set():
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("the server is not acknowledging")
                self._window.wait(0.5 if left is None else min(left, 0.5))
            self._cseq += 1
            message: dict[str, Any] = {
                "t": "say",
                "token": self.token,
                "n": self._cseq,
                "text": text,
            }
            if room is not None:
                message["room"] = room
            data = encode(message)
            self._unacked[self._cseq] = [data, time.monotonic() + RTO_MIN, RTO_MIN]
        self._send(data)

    def all_acknowledged(self) -> bool:
        with self._lock:
            return not self._unacked

    def close(self, bye: bool = True) -> None:
        if bye and self.token is not None and self.end is None:
            for _ in range(3):  # lost, the session times out anyway
                self._send(encode({"t": "bye", "token": self.token}))
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sock.close()

    def move_to(self, sock: socket.socket) -> None:
        """Go on from another socket (a new source address), as after a NAT rebinding."""
        sock.settimeout(TICK)
        old, self.sock = self.sock, sock
        old.close()

    # --- receiving ----------------------------------------------------------------

    def _pump(self, timeout: float, done: Callable[[], bool]) -> None:
        """Read datagrams for up to ``timeout`` seconds, or until done() (before the thread)."""
        end = time.monotonic() + max(0.0, timeout)
        while not done() and time.monotonic() < end:
            self._receive_one()

    def _receive_one(self) -> None:
        try:
            data, _ = self.sock.recvfrom(65535)
        except (TimeoutError, BlockingIOError):
            return
        except OSError:
            time.sleep(TICK)  # a closed socket, or "port unreachable": try again later
            return
        self._last_heard = time.monotonic()
        message = decode(data)
        if message is not None:
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message["t"]
        if kind == "cookie":
            if self.token is None:
                cookie = message.get("cookie")
                self._cookie = cookie if isinstance(cookie, str) else None
            else:  # our address changed: prove the new one
                self._send(
                    encode({"t": "migrate", "token": self.token, "cookie": message.get("cookie")})
                )
        elif kind == "joined" and self.token is None:
            token = message.get("token")
            if isinstance(token, str):
                self.token = token
                self._ack()
        elif kind == "refused" and self.token is None:
            self._refusal = Refused(str(message.get("code")), str(message.get("text")))
        elif kind == "ev":
            self._on_event(message)
        elif kind == "got":
            n = message.get("n")
            if isinstance(n, int):
                with self._window:
                    while self._unacked and next(iter(self._unacked)) <= n:
                        self._unacked.popitem(last=False)
                    self._window.notify_all()
        elif kind == "gone" and self.token is not None and self.end is None:
            self._finish("the server no longer knows this session")

    def _on_event(self, message: dict[str, Any]) -> None:
        n = message.get("n")
        if not isinstance(n, int):
            return
        if n >= self._expected and len(self._early) < EARLY_MAX:
            self._early[n] = message
        while self._expected in self._early:
            self._deliver(self._early.pop(self._expected))
            self._expected += 1
        self._ack()

    def _ack(self) -> None:
        if self.token is not None:
            message: dict[str, Any] = {"t": "ack", "token": self.token, "n": self._expected - 1}
            if self._early:  # what arrived beyond a gap: not to be sent again
                message["sack"] = sorted(self._early)[:WINDOW]
            self._send(encode(message))

    def _deliver(self, message: dict[str, Any]) -> None:
        if "e" in message:
            self.events.put(message["e"])
        elif "b64" in message:
            self._parts.append(base64.b64decode(message["b64"]))
            if message.get("part") == message.get("of", 0) - 1:
                data, self._parts = b"".join(self._parts), []
                self.events.put(json.loads(data))
        elif "end" in message:
            self.end = message["end"]
            self.events.put(None)

    def _finish(self, why: str) -> None:
        self.lost = why
        self.events.put(None)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._receive_one()
            now = time.monotonic()
            resend: list[bytes] = []
            with self._lock:
                for flight in self._unacked.values():
                    if flight[1] <= now:
                        resend.append(flight[0])
                        flight[2] = min(flight[2] * 2, RTO_MAX)
                        flight[1] = now + flight[2]
            for data in resend:
                self._send(data)
            self.retransmissions += len(resend)
            if self.end is not None or self.lost is not None:
                if self.end is not None:
                    self._ack()
                continue
            if now - self._last_sent > PING_EVERY:
                self._send(encode({"t": "ping", "token": self.token}))
            if now - self._last_heard > LOST_AFTER:
                self._finish(f"no datagram from the server for {LOST_AFTER:g} seconds")
