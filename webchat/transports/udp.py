"""The UDP chat: framed JSON datagrams for programs, bare lines for ``nc -u``.

One socket, one receiving thread that sorts datagrams by source address and
session token, and one timer thread for retransmissions and the silence timeout.
Each joined user is a :class:`Link`: both the Connection that
:func:`~webchat.core.serve.serve` reads (a queue the receiving thread fills, in
a thread of its own, as for TCP) and the session's Transport.

Nothing is sent to an address before it has proven that it receives there (a
cookie, or bare mode's code), except replies worth at most three times the bytes
it sent (QUIC's anti-amplification rule), drawn from a global budget. The wire
format is in docs/PROTOCOL.md ("UDP").
"""

from __future__ import annotations

import abc
import contextlib
import logging
import queue
import secrets
import socket
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from webchat.core.events import Packet
from webchat.core.hub import Hub
from webchat.core.serve import Ended, JoinRequest, Line, Refusal, serve
from webchat.core.session import Session
from webchat.policy.connections import ConnectionGate, normal_address
from webchat.policy.limits import TokenBucket
from webchat.settings import Settings
from webchat.text import ChatError, clean_text
from webchat.transports.udp_wire import (
    HELLO_SIZE,
    MAX_DATAGRAM,
    RTO_MAX,
    RTO_MIN,
    TICK,
    WINDOW,
    Addr,
    Cookies,
    SequencedBody,
    decode,
    encode,
    end_datagram,
    event_datagrams,
)

log = logging.getLogger(__name__)

AMPLIFICATION = 3  # an unproven address gets at most this many times the bytes it sent
ADDRESS_TABLE = 65536  # unproven addresses remembered (least recent forgotten first)
INBOX = 256  # lines waiting for a session's reader; past it a framed line is not acked
REORDER = 64  # client lines kept when they arrive ahead of a missing one
GOODBYE_WAIT = 1.0  # seconds the last datagrams get to be acknowledged
INSECURE = "UDP has no encryption"

Item = Line | Refusal | Ended | None


class Flight:
    """A numbered datagram sent and not yet acknowledged."""

    __slots__ = ("data", "deadline", "fast", "resent", "rto", "sent_at")

    def __init__(self, data: bytes, now: float, rto: float) -> None:
        self.data = data
        self.sent_at = now
        self.rto = rto
        self.deadline = now + rto
        self.resent = False  # Karn: the ack of a resent datagram measures nothing
        self.fast = False  # resent once already by fast retransmit


class Link(abc.ABC):
    """One UDP user: a Connection for serve() and the session's Transport."""

    kind = "udp"
    direct = False
    keepalive_interval: float | None = None
    asks = False
    shows_own_input = False

    def __init__(self, server: UdpChatServer, addr: Addr, request: JoinRequest) -> None:
        self.server = server
        self.addr = addr
        self.address = normal_address(addr[0])
        self.request = request
        self.inbox: queue.Queue[Item] = queue.Queue(INBOX)
        self.last_heard = time.monotonic()
        self.session: Session | None = None
        self._asked = False
        self._ended = False

    @property
    def transport(self) -> Link:
        return self

    def ask(self, prompt: str) -> str | None:
        return None

    def read_join(self) -> JoinRequest | None:
        if self._asked:
            return None  # refused once: the client starts again with a new join
        self._asked = True
        logins = self.server.hub.logins
        if logins.server_password_hash is not None:
            raise ChatError(
                "insecure", f"this server has a password and {INSECURE}: join over TCP or the page"
            )
        if logins.registered(self.request.nick):
            raise ChatError(
                "insecure",
                f"{self.request.nick.strip()} is registered and {INSECURE}: "
                "log in over TCP, TLS or the page",
            )
        return self.request

    def read(self, session: Session) -> Line | Refusal | None:
        item = self.inbox.get()
        if isinstance(item, Ended):
            raise item
        return item

    def end(self, reason: str) -> None:
        """Wake the reader with the end of the stream; the first reason wins."""
        if self._ended:
            return
        self._ended = True
        while True:
            try:
                self.inbox.put_nowait(Ended(reason))
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self.inbox.get_nowait()

    def heard(self) -> None:
        self.last_heard = time.monotonic()

    @abc.abstractmethod
    def joined(self, wake_writer: Callable[[], None]) -> None:
        """Each mode (framed, bare) does this its own way."""

    @abc.abstractmethod
    def refuse_join(self, error: ChatError) -> None:
        """Each mode (framed, bare) does this its own way."""

    @abc.abstractmethod
    def send_packets(self, packets: list[Packet]) -> None:
        """Each mode (framed, bare) does this its own way."""

    @abc.abstractmethod
    def send_goodbye(self, reason: str, code: int) -> None:
        """Each mode (framed, bare) does this its own way."""

    def keepalive(self) -> str | None:
        return None

    def flush_control(self) -> None:
        return None

    def abort(self) -> None:
        self.end("connection closed")

    def tick(self, now: float) -> None:
        """Called by the timer thread every TICK seconds; bare mode resends nothing."""
        return None

    def run(self) -> None:
        """The connection's own thread: its whole life, then its slot back."""
        server = self.server
        try:
            serve(server.hub, self, server.settings.close_grace)
        except Exception:
            log.exception("UDP session from %s failed", self.addr)
        finally:
            self.abort()
            server.forget(self)


class FramedLink(Link):
    """A client of the framed protocol: numbered, acknowledged, retransmitted datagrams."""

    def __init__(
        self, server: UdpChatServer, addr: Addr, request: JoinRequest, cookie: str
    ) -> None:
        super().__init__(server, addr, request)
        self.token = secrets.token_hex(16)
        self.cookie = cookie
        self.reply: bytes | None = None  # "joined" or "refused", repeated for a repeated join
        self._cond = threading.Condition()
        self._next = 1
        # Sent and not acknowledged, in order: n -> [datagram, deadline, rto, fast-resent].
        self._unacked: OrderedDict[int, Flight] = OrderedDict()
        # RFC 6298's estimate: the timeout follows the measured round trip, so a busy
        # server is not flooded with resends of datagrams that were merely slow.
        self._srtt: float | None = None
        self._rttvar = 0.0
        self.rto = RTO_MIN
        self._aborted = False
        self.applied = 0  # client lines applied: every CSEQ up to this one
        self._early: dict[int, Line] = {}

    # --- the connection's side ----------------------------------------------------

    def joined(self, wake_writer: Callable[[], None]) -> None:
        self.reply = encode({"t": "joined", "token": self.token})
        self.server.sendto(self.reply, self.addr)

    def refuse_join(self, error: ChatError) -> None:
        # A refusal may quote the nick; cut so that the datagram stays within 1200 bytes.
        text = str(error).encode()[:900].decode("utf-8", "ignore")
        self.reply = encode({"t": "refused", "code": error.code, "text": text})
        self.server.sendto(self.reply, self.addr)

    def on_say(self, message: dict[str, Any]) -> None:
        cseq, text, room = message.get("n"), message.get("text"), message.get("room")
        if (
            not isinstance(cseq, int)
            or not isinstance(text, str)
            or not (room is None or isinstance(room, str))
        ):
            self.server.drop("bad_say")
            return
        if cseq == self.applied + 1:
            try:
                self.inbox.put_nowait(Line(text, room))
            except queue.Full:
                return  # not acknowledged: the client sends it again
            self.applied = cseq
            while self.applied + 1 in self._early:
                try:
                    self.inbox.put_nowait(self._early[self.applied + 1])
                except queue.Full:
                    break
                del self._early[self.applied + 1]
                self.applied += 1
        elif self.applied + 1 < cseq <= self.applied + REORDER:
            self._early[cseq] = Line(text, room)
        self.server.sendto(encode({"t": "got", "n": self.applied}), self.addr)

    def on_ack(self, n: object, sack: object = None) -> None:
        """A cumulative ack, and the numbers above it the client already holds (SACK)."""
        if not isinstance(n, int):
            self.server.drop("bad_ack")
            return
        held: list[int] = []
        if isinstance(sack, list):
            held = [x for x in sack[:WINDOW] if isinstance(x, int) and x > n]
        resend: list[bytes] = []
        with self._cond:
            unacked = self._unacked
            now = time.monotonic()
            newest: Flight | None = None
            while unacked and next(iter(unacked)) <= n:
                newest = unacked.popitem(last=False)[1]
            for number in held:
                newest = unacked.pop(number, None) or newest
            if newest is not None and not newest.resent:
                self._measure(now - newest.sent_at)
            if held:
                # Fast retransmit: a datagram three numbers below one that arrived is
                # lost, most likely; resend it now (once) rather than at its timeout.
                top = max(held)
                for number, flight in unacked.items():
                    if number >= top - 2:
                        break
                    if not flight.fast:
                        flight.fast = flight.resent = True
                        resend.append(flight.data)
            addr = self.addr
            self._cond.notify_all()
        for data in resend:
            self.server.sendto(data, addr)
        if resend:
            self.server.count("retransmissions", len(resend))

    def _measure(self, rtt: float) -> None:
        """One round-trip sample (under the lock): SRTT, RTTVAR and RTO as RFC 6298 has them."""
        if self._srtt is None:
            self._srtt, self._rttvar = rtt, rtt / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - rtt)
            self._srtt = 0.875 * self._srtt + 0.125 * rtt
        self.rto = min(RTO_MAX, max(RTO_MIN, self._srtt + 4 * self._rttvar))

    def move(self, addr: Addr) -> None:
        """The client proved a new source address: everything owed goes there now."""
        with self._cond:
            self.addr = addr
            now = time.monotonic()
            for flight in self._unacked.values():
                flight.deadline = now
        self.server.sendto(encode({"t": "moved"}), addr)

    # --- the transport's side -----------------------------------------------------

    def send_packets(self, packets: list[Packet]) -> None:
        for packet in packets:
            for body in event_datagrams(packet.json):
                self._send_numbered(body)

    def _send_numbered(self, body: SequencedBody, wait: float | None = None) -> None:
        """Send within the window, waiting for room (so a slow reader backs up the hub)."""
        deadline = None if wait is None else time.monotonic() + wait
        with self._cond:
            while len(self._unacked) >= WINDOW and not self._aborted:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise OSError("the client stopped acknowledging")
                self._cond.wait(0.5 if left is None else min(left, 0.5))
            if self._aborted:
                raise OSError("connection closed")
            n = self._next
            self._next += 1
            data = body(n)
            self._unacked[n] = Flight(data, time.monotonic(), self.rto)
            addr = self.addr
        self.server.sendto(data, addr)

    def send_goodbye(self, reason: str, code: int) -> None:
        self._send_numbered(end_datagram(reason[:200], code), GOODBYE_WAIT)
        deadline = time.monotonic() + GOODBYE_WAIT
        with self._cond:
            while self._unacked and not self._aborted:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
        super().abort()

    def tick(self, now: float) -> None:
        resend: list[bytes] = []
        with self._cond:
            for flight in self._unacked.values():
                if flight.deadline <= now:
                    resend.append(flight.data)
                    flight.resent = True
                    flight.rto = min(flight.rto * 2, RTO_MAX)
                    flight.deadline = now + flight.rto
            addr = self.addr
        for data in resend:
            self.server.sendto(data, addr)
        if resend:
            self.server.count("retransmissions", len(resend))


class BareLink(Link):
    """Someone at ``nc -u``: each datagram is a line, each event one datagram. Lossy."""

    shows_own_input = True  # nc shows what was typed

    def joined(self, wake_writer: Callable[[], None]) -> None:
        return None

    def refuse_join(self, error: ChatError) -> None:
        self.say(f"*** error: {error}")

    def say(self, text: str) -> None:
        data = f"{text}\r\n".encode()
        self.server.sendto(data if len(data) <= MAX_DATAGRAM else data[:MAX_DATAGRAM], self.addr)

    def on_data(self, data: bytes) -> None:
        limit = self.server.settings.max_line_bytes
        for raw in data.split(b"\n"):
            raw = raw.rstrip(b"\r")
            if not raw.strip():
                continue  # an empty line only says "still here"
            item: Item
            if len(raw) > limit:
                item = Refusal(
                    f"line too long: more than {limit} bytes; it was not sent", "line_too_long"
                )
            else:
                item = Line(raw.decode("utf-8", "replace"))
            with contextlib.suppress(queue.Full):  # lossy by nature
                self.inbox.put_nowait(item)

    def send_packets(self, packets: list[Packet]) -> None:
        for packet in packets:
            data = packet.line
            for start in range(0, len(data), MAX_DATAGRAM):
                self.server.sendto(data[start : start + MAX_DATAGRAM], self.addr)

    def send_goodbye(self, reason: str, code: int) -> None:
        if code == 1000:
            self.say(f"*** bye ({reason})" if reason and reason != "quit" else "*** bye")
        else:
            self.say(f"*** disconnected: {reason}")


class UdpChatServer:
    """The UDP listener; start() and stop() like the TCP one."""

    def __init__(self, settings: Settings, hub: Hub, gate: ConnectionGate, port: int) -> None:
        self.settings = settings
        self.hub = hub
        self.gate = gate
        host = settings.tcp_host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError:
            self.sock.close()
            raise
        self.sock.settimeout(0.2)
        self.cookies = Cookies()
        rate = settings.udp_cookie_rate
        self.budget = TokenBucket(rate, max(1, int(rate)))
        self.idle_timeout = settings.udp_idle_timeout
        self._lock = threading.Lock()
        self.by_token: dict[str, FramedLink] = {}
        self.by_addr: dict[Addr, Link] = {}  # proven addresses with a live session
        self._joins: dict[tuple[Addr, str], FramedLink] = {}
        self._traffic: OrderedDict[Addr, list[int]] = OrderedDict()  # unproven: [in, out]
        self.dropped: Counter[str] = Counter()  # malformed or unwanted datagrams, by why
        self.counts: Counter[str] = Counter()  # cookies, instructions, retransmissions...
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def start(self) -> None:
        for target, name in ((self._receive_loop, "udp-receive"), (self._timer_loop, "udp-timer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        host = self.settings.tcp_host
        log.info(
            "UDP chat listening on %s port %d: nc -u %s %d, or webchat-client --udp %s %d",
            host,
            self.port,
            host,
            self.port,
            host,
            self.port,
        )

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            links = list(self.by_addr.values()) + list(self.by_token.values())
        for link in links:
            link.end("server shutting down")
        for thread in self._threads:
            thread.join()
        self._threads = []
        self.sock.close()

    # --- counting -----------------------------------------------------------------

    def drop(self, why: str) -> None:
        with self._lock:
            self.dropped[why] += 1

    def count(self, what: str, amount: int = 1) -> None:
        with self._lock:
            self.counts[what] += amount

    # --- sending ------------------------------------------------------------------

    def sendto(self, data: bytes, addr: Addr) -> None:
        """To a proven address."""
        with contextlib.suppress(OSError):
            self.sock.sendto(data, addr)

    def send_unproven(self, data: bytes, addr: Addr) -> bool:
        """Within three times what the address sent, and the global reply budget."""
        with self._lock:
            entry = self._traffic.get(addr)
            if entry is None or entry[1] + len(data) > AMPLIFICATION * entry[0]:
                self.counts["amplification_limited"] += 1
                return False
            if not self.budget.take():
                self.counts["budget_limited"] += 1
                return False
            entry[1] += len(data)
        self.sendto(data, addr)
        return True

    def _note_received(self, addr: Addr, size: int) -> None:
        with self._lock:
            if addr in self.by_addr:
                return
            entry = self._traffic.get(addr)
            if entry is None:
                entry = self._traffic[addr] = [0, 0]
                if len(self._traffic) > ADDRESS_TABLE:
                    self._traffic.popitem(last=False)
            else:
                self._traffic.move_to_end(addr)
            entry[0] += size

    # --- receiving ----------------------------------------------------------------

    def _receive_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:  # an ICMP "port unreachable" from an earlier send, or closing
                continue
            addr: Addr = (str(source[0]), int(source[1]))
            try:
                self.handle(data, addr)
            except Exception:
                log.exception("a UDP datagram from %s could not be handled", addr)
                self.drop("error")

    def handle(self, data: bytes, addr: Addr) -> None:
        self._note_received(addr, len(data))
        with self._lock:
            link = self.by_addr.get(addr)
        if isinstance(link, BareLink):
            link.heard()
            link.on_data(data)
            return
        if data[:1] != b"{":
            if link is None:
                self._bare(data, addr)
            else:
                self.drop("not_json")
            return
        if len(data) > MAX_DATAGRAM:
            self.drop("too_big")
            return
        message = decode(data)
        if message is None:
            self.drop("malformed")
            return
        kind = message["t"]
        if kind == "hello":
            if len(data) < HELLO_SIZE:
                self.drop("short_hello")
                return
            if self.send_unproven(
                encode({"t": "cookie", "cookie": self.cookies.cookie(addr)}), addr
            ):
                self.count("cookies")
            return
        if kind == "join":
            self._join(message, addr)
            return
        token = message.get("token")
        with self._lock:
            framed = self.by_token.get(token) if isinstance(token, str) else None
        if framed is None:
            self.drop("unknown_token")
            if isinstance(token, str):
                self.send_unproven(encode({"t": "gone"}), addr)
            return
        if framed.addr != addr:
            self._moved(framed, message, addr)
            return
        framed.heard()
        if kind == "ack":
            framed.on_ack(message.get("n"), message.get("sack"))
        elif kind == "say":
            framed.on_say(message)
        elif kind == "ping":
            self.sendto(b'{"t":"pong"}', addr)
        elif kind == "bye":
            framed.end("quit")
        elif kind == "migrate":
            self.sendto(encode({"t": "moved"}), addr)
        else:
            self.drop("unknown_type")

    def _moved(self, link: FramedLink, message: dict[str, Any], addr: Addr) -> None:
        """A live token from a new source address: nothing goes there until it proves itself."""
        if message["t"] == "migrate" and self.cookies.valid_cookie(message.get("cookie"), addr):
            with self._lock:
                if self.by_addr.get(link.addr) is link:
                    del self.by_addr[link.addr]
                self.by_addr[addr] = link
                self._traffic.pop(addr, None)
            link.heard()
            link.move(addr)
            return
        self.count("challenges")
        self.send_unproven(encode({"t": "cookie", "cookie": self.cookies.cookie(addr)}), addr)

    def _join(self, message: dict[str, Any], addr: Addr) -> None:
        cookie = message.get("cookie")
        if not self.cookies.valid_cookie(cookie, addr):
            self.drop("bad_cookie")
            return
        assert isinstance(cookie, str)
        with self._lock:
            earlier = self._joins.get((addr, cookie))
        if earlier is not None:  # the same join again: its answer was lost
            earlier.heard()
            if earlier.reply is not None:
                self.sendto(earlier.reply, addr)
            return
        nick, rooms, since = message.get("nick"), message.get("rooms", []), message.get("since")
        if (
            not isinstance(nick, str)
            or not isinstance(rooms, list)
            or not all(isinstance(room, str) for room in rooms)
            or not (since is None or isinstance(since, int))
        ):
            self.drop("bad_join")
            return
        request = JoinRequest(clean_text(nick), since, tuple(rooms))
        link = FramedLink(self, addr, request, cookie)
        if not self._admit(link):
            return
        with self._lock:
            self._traffic.pop(addr, None)
            self.by_token[link.token] = link
            self.by_addr[addr] = link
            self._joins[(addr, cookie)] = link
        self._run(link)

    def _bare(self, data: bytes, addr: Addr) -> None:
        """A datagram that is not JSON from a stranger: instructions, or "CODE NICK"."""
        words = data.decode("utf-8", "replace").split(None, 1)
        if len(words) == 2 and self.cookies.valid_code(words[0], addr):
            link = BareLink(self, addr, JoinRequest(clean_text(words[1].strip())))
            if not self._admit(link):
                return
            with self._lock:
                self._traffic.pop(addr, None)
                self.by_addr[addr] = link
            self._run(link)
            return
        code = self.cookies.code(addr)
        for text in (
            f"*** webchat over UDP: to join, send  {code} YOURNICK\r\n",
            f"{code} NICK\r\n",
        ):
            if self.send_unproven(text.encode(), addr):
                self.count("instructions")
                return

    def _admit(self, link: Link) -> bool:
        """A slot of the connection gate, as every TCP and web connection takes."""
        reason = self.gate.acquire(link.address)
        if reason is None:
            return True
        self.hub.stats.refused.add(reason)
        link.refuse_join(ChatError(reason, self.gate.explain(reason, link.address)))
        return False

    def _run(self, link: Link) -> None:
        threading.Thread(target=link.run, name=f"udp-{link.addr[1]}", daemon=True).start()

    def forget(self, link: Link) -> None:
        with self._lock:
            if self.by_addr.get(link.addr) is link:
                del self.by_addr[link.addr]
            if isinstance(link, FramedLink):
                self.by_token.pop(link.token, None)
                self._joins.pop((link.addr, link.cookie), None)
                for key in [key for key, value in self._joins.items() if value is link]:
                    del self._joins[key]
        self.gate.release(link.address)

    # --- time ---------------------------------------------------------------------

    def _timer_loop(self) -> None:
        while not self._stopping.wait(TICK):
            now = time.monotonic()
            with self._lock:
                links = set(self.by_addr.values()) | set(self.by_token.values())
            for link in links:
                if now - link.last_heard > self.idle_timeout:
                    link.end(f"timed out: no datagram for {self.idle_timeout:g} seconds")
                else:
                    link.tick(now)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sessions": len(set(self.by_addr.values()) | set(self.by_token.values())),
                "dropped": dict(self.dropped),
                **dict(self.counts),
            }
