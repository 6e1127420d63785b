"""One load-generator process: a single selector loop over its share of the clients.

Threads would make the generator compete with the server it measures, so a worker is
one thread, one epoll set, non-blocking sockets, and receive paths that check a whole
chunk at C speed (strided column slices over TCP lines, ``json.loads`` and joined strings
over WebSocket frames), falling back to an exact one-by-one path for anything unusual.
The coordinator (``loadgen.py``) drives the phases over a pipe:

    connect -> (stall) -> barrier -> go -> sent -> all_sent -> result [-> watch -> goodbyes]

The last two are ``--sigterm-connected``: every client stays connected and reads on while
the coordinator sends the server SIGTERM, and says whether it got its goodbye.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import os
import re
import resource
import selectors
import signal
import socket
import struct
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import Any

from benchmarks import wire

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE

# Latency histogram: 10 µs buckets up to 1 s, then 1 ms buckets.
FINE_NS = 10_000
FINE_N = 100_000
COARSE_NS = 1_000_000

RECV_SIZE = 262_144
# --arrival-times: the kernel stamps each received segment (SO_TIMESTAMPNS, which the
# socket module does not name; SCM_TIMESTAMPNS is the same number) with CLOCK_REALTIME,
# and recvmsg hands back the stamp of the last one read as a struct timespec.
SO_TIMESTAMPNS = 35
STAMP_SPACE = socket.CMSG_SPACE(16)
SEND_CHUNK = 65_536
TCP_ESTABLISHED = 1
TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}

SID = itemgetter(slice(0, 5))
STAMP = itemgetter(slice(13, 31))
TYPE, NICK, TEXT = itemgetter("type"), itemgetter("nick"), itemgetter("text")
ROOM = itemgetter("room")
WEBCHAT_PROMPT = b"Enter your nickname: "
SEED_PROMPT = b"Enter your nickname: "


@dataclass(frozen=True)
class WorkerConfig:
    """Everything a worker needs; picklable, sent once at start."""

    index: int
    target: str  # "webchat", "seed" or "miniircd"
    host: str
    tcp_port: int
    web_port: int
    clients: tuple[tuple[int, str], ...]  # (global index, "tcp" | "ws")
    senders: frozenset[int]  # the senders among this worker's clients
    all_senders: frozenset[int]  # every sender, whichever worker owns it
    stalls: tuple[tuple[int, str], ...]
    messages: int
    size: int
    per_sender_rate: float  # messages/s for each sender; 0: as fast as possible
    connect_concurrency: int
    stall_rcvbuf: int
    drain_s: float
    handshake_timeout_s: float
    deadline_ns: int
    rooms: int = 0  # --rooms: client i is in #bench-(i % rooms) too; 0: the lobby only
    # --nodes N: (tcp port, web port) of each node; client i connects to node
    # wire.node_of(i, N), stalled client k to node k % N. Empty: tcp_port and web_port.
    node_ports: tuple[tuple[int, int], ...] = ()
    cpus: tuple[int, ...] = ()  # --generator-cpus: this process runs on these; (): anywhere
    # --arrival-times: latency up to the kernel's receive stamp, not up to our reading it.
    arrival_times: bool = False
    # --settle-presence: the join storm is over once a crowded room's presence update
    # counts everyone who joined (the barrier's marker waits for it).
    settle_presence: bool = False
    # --settle-quiet: with settle_presence, also wait until no update came for this long.
    settle_quiet_s: float = 0.0


@dataclass
class Hist:
    """Latency histogram: 10 µs buckets up to 1 s, then 1 ms buckets; the max exact."""

    fine: list[int] = field(default_factory=lambda: [0] * FINE_N)
    coarse: dict[int, int] = field(default_factory=dict)
    lat_max: int = 0

    def add(self, lat: int, count: int = 1) -> None:
        b = lat // FINE_NS
        if b < FINE_N:
            self.fine[b if b > 0 else 0] += count
        else:
            k = lat // COARSE_NS
            self.coarse[k] = self.coarse.get(k, 0) + count
        if lat > self.lat_max:
            self.lat_max = lat

    def add_stamps(self, fields: list[Any], now: int) -> None:
        """Every field's latency, binned once per distinct send time (``add``, inlined:
        this runs for every chunk)."""
        if not fields:
            return
        fine, coarse, top = self.fine, self.coarse, self.lat_max
        for t, c in Counter(map(STAMP, fields)).items():
            lat = now - int(t)
            b = lat // FINE_NS
            if b < FINE_N:
                fine[b if b > 0 else 0] += c
            else:
                k = lat // COARSE_NS
                coarse[k] = coarse.get(k, 0) + c
            if lat > top:
                top = lat
        self.lat_max = top

    def sparse(self) -> dict[int, int]:
        """{bucket lower bound in ns: count}, the non-empty buckets only."""
        out = {i * FINE_NS: n for i, n in enumerate(self.fine) if n}
        for k, n in self.coarse.items():
            out[k * COARSE_NS] = out.get(k * COARSE_NS, 0) + n
        return out


@dataclass
class Stats:
    """Counters for one worker's receivers; merged by the coordinator."""

    # Latency of deliveries whose sender is on the receiver's node (all of them with one
    # node), and of those from a sender on another node (--nodes N).
    same: Hist = field(default_factory=Hist)
    cross: Hist = field(default_factory=Hist)
    # --arrival-times: from a message's arrival in its socket to this worker reading it.
    read_lag: Hist = field(default_factory=Hist)
    delivered: int = 0
    dups: int = 0
    reorders: int = 0
    corrupt: int = 0
    corrupt_samples: list[str] = field(default_factory=list)
    unattributed: int = 0
    echoes: int = 0
    echo_dups: int = 0
    wrong_room: int = 0  # a message delivered to someone not in its room
    wrong_room_samples: list[str] = field(default_factory=list)
    unexpected_echoes: int = 0
    other: int = 0
    markers: int = 0
    first_recv: int = 0
    last_recv: int = 0
    fast_chunks: int = 0
    slow_chunks: int = 0

    def bad_line(self, line: bytes | str) -> None:
        self.corrupt += 1
        if len(self.corrupt_samples) < 5:
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            self.corrupt_samples.append(text[:160])

    def misplaced(self, what: str) -> None:
        """A message arrived where it should not: at a non-member, or tagged with
        another room. Never a delivery; always a server bug."""
        self.wrong_room += 1
        if len(self.wrong_room_samples) < 5:
            self.wrong_room_samples.append(what[:200])


def tcp_state(sock: socket.socket) -> int:
    """The kernel's view of a connection (tcpi_state), without reading a byte of it."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 7


# ----- clients ---------------------------------------------------------------------------

NEW, CONNECTING, HANDSHAKE, JOINED, CLOSED, FAILED = range(6)


class Client:
    """One connection. Subclasses know a dialect; this class knows sockets and bookkeeping."""

    echoes_own = False  # does the server send a sender its own messages back?

    def __init__(self, w: Worker, index: int, nick: str, *, sender: bool, stall: bool) -> None:
        self.w = w
        self.index = index
        self.nick = nick
        self.sid = nick[1:]
        self.room = wire.room_of(index, w.cfg.rooms) if not stall else wire.LOBBY
        nodes = len(w.cfg.node_ports)
        self.node = (index % nodes if stall else wire.node_of(index, nodes)) if nodes else 0
        # Senders on another node than this client's (their keys): cross-node latency.
        self.remote: frozenset[Any] = frozenset()
        self.sender = sender
        self.stall = stall
        self.sock: socket.socket | None = None
        self.state = NEW
        self.events = 0
        self.inbuf = b""
        self.out = bytearray()
        self.t_start = 0
        self.t_joined = 0
        self.synced = False
        self.sent = 0
        self.done_sending = False
        self.holes: dict[Any, set[int]] = {}
        self.close_reason = ""
        self.closed_at = 0
        self.error = ""
        self.nxt: dict[Any, int] = {}
        self.offset = 0
        self.got = 0

    # --- sockets ---

    def connect(self, now: int) -> None:
        self.t_start = now
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.stall:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.w.cfg.stall_rcvbuf)
        if self.w.cfg.arrival_times:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.sock = sock
        err = sock.connect_ex((self.w.cfg.host, self.port()))
        if err not in (0, errno.EINPROGRESS):
            self.fail(f"connect: {errno.errorcode.get(err, err)}")
            return
        self.state = CONNECTING
        self.events = EVENT_WRITE
        self.w.sel.register(sock, EVENT_WRITE, self)

    def port(self) -> int:
        ports = self.w.cfg.node_ports
        return ports[self.node][0] if ports else self.w.cfg.tcp_port

    def interest(self, events: int) -> None:
        if events == self.events or self.sock is None:
            return
        if self.events and events:
            self.w.sel.modify(self.sock, events, self)
        elif events:
            self.w.sel.register(self.sock, events, self)
        else:
            self.w.sel.unregister(self.sock)
        self.events = events

    def wanted_events(self) -> int:
        if self.state in (CLOSED, FAILED):
            return 0
        if self.stall and self.state == JOINED:
            return 0  # a stalled client never reads again, and has nothing to write
        ev = EVENT_READ
        if self.out or (self.w.fast and self.sender and not self.done_sending and self.w.sending):
            ev |= EVENT_WRITE
        return ev

    def on_event(self, mask: int, now: int) -> None:
        if self.state == CONNECTING:
            assert self.sock is not None
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.fail(f"connect: {errno.errorcode.get(err, err)}")
                return
            self.state = HANDSHAKE
            self.on_connected()
            self.interest(self.wanted_events())
            return
        if mask & EVENT_READ:
            assert self.sock is not None
            at = now  # when the bytes came: now, or the kernel's stamp (--arrival-times)
            try:
                # Into one reused buffer: a fresh 256 KiB bytes per recv() costs an mmap
                # and page faults, far more than copying out the few bytes that came.
                if self.w.cfg.arrival_times:
                    got, stamps, _flags, _addr = self.sock.recvmsg_into([self.w.rbuf], STAMP_SPACE)
                    at = self.w.arrival(stamps, now) if got else now
                else:
                    got = self.sock.recv_into(self.w.rbuf)
                data: bytes | None = self.w.rview[:got].tobytes()
            except BlockingIOError:
                data = None
            except OSError as exc:
                self.lost(f"recv: {exc.strerror or exc}", now)
                return
            if data is not None:
                if not data:
                    self.lost("EOF", now)
                    return
                if self.state == HANDSHAKE:
                    self.handshake(data, at)
                else:
                    self.on_data(data, at)
        if mask & EVENT_WRITE and self.state in (HANDSHAKE, JOINED):
            if self.w.fast and self.sender and self.w.sending and not self.done_sending:
                self.w.fill(self, now)
            self.flush()

    def send(self, data: bytes) -> None:
        self.out += data
        self.flush()

    def flush(self) -> None:
        if self.out and self.sock is not None and self.state not in (CLOSED, FAILED):
            try:
                n = self.sock.send(self.out)
            except BlockingIOError:
                n = 0
            except OSError as exc:
                self.lost(f"send: {exc.strerror or exc}", time.monotonic_ns())
                return
            if n:
                del self.out[:n]
        self.interest(self.wanted_events())

    def fail(self, why: str) -> None:
        """Could not connect or join: not a receiver at all."""
        self.error = why
        self.state = FAILED
        self.close()
        self.w.handshake_over(self, ok=False)

    def lost(self, why: str, now: int) -> None:
        """The server ended a joined connection (or one still handshaking)."""
        if self.state == HANDSHAKE:
            self.fail(why)
            return
        if self.state == CLOSED:
            return
        self.state = CLOSED
        self.closed_at = now
        self.close_reason = self.close_reason or why
        self.close()
        self.w.on_closed(self)

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                if self.events:
                    self.w.sel.unregister(self.sock)
            self.events = 0
            with contextlib.suppress(OSError):
                self.sock.close()

    def joined(self, now: int) -> None:
        self.state = JOINED
        self.t_joined = now
        self.w.handshake_over(self, ok=True)
        self.interest(self.wanted_events())

    # --- dialect hooks ---

    def on_connected(self) -> None:
        raise NotImplementedError

    def handshake(self, data: bytes, now: int) -> None:
        raise NotImplementedError

    def on_data(self, data: bytes, now: int) -> None:
        raise NotImplementedError

    def encode(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def send_marker(self) -> None:
        self.send(self.encode(wire.MARKER))

    # --- receiving: one place decides what a message means ---

    def accept(self, key: Any, seq: int, t_ns: int, now: int) -> None:
        """Count one message: a delivery, a reorder, a duplicate or an echo."""
        st = self.w.stats
        nxt = self.nxt
        if key == self.own_key:
            if not self.echoes_own:
                st.unexpected_echoes += 1
            elif seq >= nxt.get(key, 0):
                nxt[key] = seq + 1
                st.echoes += 1
            else:
                st.echo_dups += 1
            return
        e = nxt.get(key)
        if e is None:
            if key in self.w.sender_keys:
                st.misplaced(f"{self.nick} in {self.room} got message {seq} of sender {key!r}")
            else:
                st.bad_line(f"message from unknown sender {key!r}")
            return
        if seq == e:
            nxt[key] = e + 1
        elif seq > e:
            if seq - e > 1_000_000:
                st.bad_line(f"impossible sequence number {seq} from {key!r}")
                return
            holes = self.holes.get(key)
            if holes is None:
                holes = self.holes[key] = set()
            holes.update(range(e, seq))
            nxt[key] = seq + 1
        else:
            holes = self.holes.get(key)
            if holes and seq in holes:
                holes.discard(seq)
                st.reorders += 1
            else:
                st.dups += 1
                return
        st.delivered += 1
        self.got += 1
        (st.cross if key in self.remote else st.same).add(now - t_ns)

    own_key: Any = None
    keys_bytes = True  # line clients key senders by bytes, WebSocket clients by str
    lastf: dict[Any, Any]

    def init_expect(self, keys: list[Any], own: Any, remote: frozenset[Any] = frozenset()) -> None:
        """Every sender, own included (its echoes are tracked, though not as deliveries);
        ``remote``: the keys of senders on another node."""
        self.own_key = own
        self.remote = remote
        self.nxt = dict.fromkeys(keys, 0)
        self.resync()

    def resync(self) -> None:
        """After the one-by-one path: the fast path's view of the last seen per sender.

        The last sequence number with the largest possible send time, so that only a
        higher number compares greater; "-0000001" sorts before every number.
        """
        if self.keys_bytes:
            self.lastf = {k: k + b"%08d" % (e - 1) + b"9" * 18 for k, e in self.nxt.items()}
        else:
            self.lastf = {k: f"{k}{e - 1:08d}{'9' * 18}" for k, e in self.nxt.items()}

    def take_fields(self, fields: list[Any], now: int) -> bool:
        """Accept a batch of 31-digit fields (sender id, sequence number, send time).

        Exact, not a sample. The caller proved every field is ASCII decimal of one width,
        so comparing them compares numbers. Per sender they must rise strictly from just
        after the last one seen; if the per-sender spans then add up to the batch size, no
        sender skipped a number: each message arrived once and in order. Any doubt returns
        False before anything is counted, and the caller goes one by one instead.
        """
        if len(fields) <= 4:
            return self.take_few(fields, now)
        prev = self.lastf
        last = prev.copy()
        try:
            for f in fields:
                k = f[:5]
                if f > last[k]:
                    last[k] = f
                else:
                    return False  # a duplicate or a reorder
        except KeyError:
            return False  # an unknown sender
        nxt = self.nxt
        own = self.own_key
        moved = [(k, int(f[5:13]) + 1) for k, f in last.items() if f is not prev[k]]
        if sum(e - nxt[k] for k, e in moved) != len(fields):
            return False  # a gap: some message is missing (so far)
        echoes = 0
        for k, e in moved:
            if k == own:
                if not self.echoes_own:
                    return False  # the one-by-one path counts it as unexpected
                echoes = e - nxt[k]
        for k, e in moved:
            nxt[k] = e
        self.lastf = last
        st = self.w.stats
        if echoes:
            st.echoes += echoes
            fields = [f for f in fields if f[:5] != own]
        n = len(fields)
        remote = self.remote
        if remote:
            st.cross.add_stamps([f for f in fields if f[:5] in remote], now)
            fields = [f for f in fields if f[:5] not in remote]
        st.same.add_stamps(fields, now)
        if n:
            st.delivered += n
            self.got += n
            self.received(now)
        return True

    def take_few(self, fields: list[Any], now: int) -> bool:
        """A handful of messages (a quiet chat): one by one is cheaper than in bulk."""
        nxt = self.nxt
        if any(f[:5] not in nxt for f in fields):
            return False
        before = self.w.stats.delivered
        for f in fields:
            self.accept(f[:5], int(f[5:13]), int(f[13:31]), now)
        for f in fields:
            k = f[:5]
            e = nxt[k] - 1
            self.lastf[k] = k + (
                b"%08d" % e + b"9" * 18 if self.keys_bytes else f"{e:08d}{'9' * 18}"
            )
        if self.w.stats.delivered != before:
            self.received(now)
        return True

    def received(self, now: int) -> None:
        st = self.w.stats
        if not st.first_recv:
            st.first_recv = now
        st.last_recv = now
        if self is self.w.observer:
            self.w.observe(self.got, now)

    def mark_synced(self) -> None:
        self.w.stats.markers += 1
        if not self.synced:
            self.synced = True
            self.w.on_synced(self)


class LineClient(Client):
    """A line-based dialect: webchat's TCP chat, the seed server, or IRC."""

    msg_re: Any
    shape: wire.LineShape
    idle_triggers: tuple[bytes, ...] = (wire.MARKER,)

    def on_data(self, data: bytes, now: int) -> None:
        buf = self.inbuf + data if self.inbuf else data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            self.inbuf = buf
            return
        if cut == len(buf):
            self.inbuf = b""
            block = buf
        else:
            self.inbuf = buf[cut:]
            block = buf[:cut]
        if self.w.sending:
            self.scan(block, now)
        elif any(t in block for t in self.idle_triggers):
            self.slow(block, now)
            self.resync()
        else:
            self.w.stats.other += block.count(b"\n")

    def scan(self, block: bytes, now: int) -> None:
        """Every message in a chunk: the whole-chunk fast path, else line by line."""
        if self.fast(block, now):
            self.w.stats.fast_chunks += 1
            return
        self.w.stats.slow_chunks += 1
        matched = 0
        accept = self.accept
        for m in self.msg_re.finditer(block):
            matched += 1
            sid, seq, t = m.groups()
            accept(sid, int(seq), int(t), now)
        if matched:
            self.received(now)
        if matched != block.count(b"\n"):
            self.slow(block, now, skip_messages=True)
        self.resync()

    def fast(self, block: bytes, now: int) -> bool:
        """A chunk made only of whole message lines, checked a column at a time.

        The columns prove every line has the message shape, the sender's nick matches
        the id in its payload, and the padding is intact; ``take_fields`` does the rest.
        """
        shape = self.shape
        size = shape.line_len
        n, rem = divmod(len(block), size)
        if rem or not n:
            return False
        for col, ch in shape.fixed_cols:
            if block[col::size] != ch * n:
                return False
        for a, b in shape.same_cols:
            if block[a::size] != block[b::size]:
                return False
        if block.count(shape.pad) != n:
            return False
        at = shape.sid_at
        fields = [block[i : i + 31] for i in range(at, len(block), size)]
        if not b"".join(fields).isdigit():
            return False
        return self.take_fields(fields, now)

    def slow(self, block: bytes, now: int, skip_messages: bool = False) -> None:
        for line in block.split(b"\n")[:-1]:
            m = self.msg_re.match(line + b"\n")
            if m:
                if not skip_messages:
                    sid, seq, t = m.groups()
                    self.accept(sid, int(seq), int(t), now)
                continue
            self.classify(line.rstrip(b"\r"), now)

    def classify(self, line: bytes, now: int) -> None:
        raise NotImplementedError

    @staticmethod
    def template(nick: bytes) -> bytes:
        """The bytes before the payload in a message line from ``nick``."""
        raise NotImplementedError


class WebchatTcpClient(LineClient):
    """`nc localhost 8080`: the prompt, a nick line, then "nick: text" lines."""

    idle_triggers = (wire.MARKER, b" left", b"*** disconnected", b"*** bye")

    @staticmethod
    def template(nick: bytes) -> bytes:
        return nick + b": "

    prompted = False
    entering = False  # --rooms: welcomed, /join sent, waiting for our own "entered" line

    def on_connected(self) -> None:
        # Type the nick without waiting for the prompt, as a pasted line would; the prompt
        # is still checked below.
        self.send(self.nick.encode() + b"\n")

    def handshake(self, data: bytes, now: int) -> None:
        """The prompt, then (history replay, if any) until our welcome or an error; with
        --rooms, then ``/join #bench-k`` and on until our own ``[#bench-k] *** NICK entered``
        (the room's history and its "You are now in" notice come before it)."""
        self.inbuf += data
        buf = self.inbuf
        if not self.prompted:
            if len(buf) < len(WEBCHAT_PROMPT):
                return
            if not buf.startswith(WEBCHAT_PROMPT):
                self.fail(f"no prompt: {buf[:60]!r}")
                return
            self.prompted = True
            buf = buf[len(WEBCHAT_PROMPT) :]
        nick = self.nick.encode()
        welcome = b"*** Welcome, " + nick + b"!"
        entered = wire.webchat_room_tag(self.room) + b"*** " + nick + b" entered"
        pos = 0
        while True:
            end = buf.find(b"\r\n", pos)
            if end < 0:
                self.inbuf = buf[pos:]
                return
            line = buf[pos:end]
            pos = end + 2
            if self.entering:
                if line == entered:
                    break
            elif line.startswith(welcome):
                if self.room == wire.LOBBY:
                    break
                self.entering = True
                self.send(b"/join " + self.room.encode() + b"\n")
                continue
            if strip_room_tag(line).startswith(b"*** error"):
                self.fail(f"join refused: {line[:120].decode('utf-8', 'replace')}")
                return
            self.w.stats.other += 1
        self.inbuf = b""
        rest = buf[pos:]
        self.joined(now)
        if rest and not self.stall:
            self.on_data(rest, now)

    def encode(self, payload: bytes) -> bytes:
        return payload + b"\n"

    def send_marker(self) -> None:
        # After /join the active room is the client's own: the marker goes to the lobby.
        if self.room != wire.LOBBY:
            self.send(b"/msg " + wire.LOBBY.encode() + b" " + wire.MARKER + b"\n")
        else:
            self.send(self.encode(wire.MARKER))

    def classify(self, line: bytes, now: int) -> None:
        st = self.w.stats
        bare = strip_room_tag(line)
        if wire.MARKER in line:
            self.mark_synced()
            return
        if self.w.any_room_re.fullmatch(line):
            # A whole message, but not one for this client here: its room tag is not
            # this client's room (else msg_re would have taken it).
            st.misplaced(f"{self.nick} in {self.room} got {line[:60].decode('latin-1')}")
            return
        line = bare
        if line.startswith(b"*** disconnected: ") or line.startswith(b"*** bye"):
            self.close_reason = line[4:].decode("utf-8", "replace")
            st.other += 1
        elif line.startswith(b"*** "):
            parts = line[4:].split(b" ", 2)
            if len(parts) >= 2 and parts[1] == b"left":
                reason = parts[2].decode("utf-8", "replace").strip("()") if len(parts) > 2 else ""
                self.w.on_leave(parts[0].decode("utf-8", "replace"), reason, now)
            st.other += 1
        else:
            st.bad_line(line)


class SeedClient(LineClient):
    """The assignment's sample: a prompt, one recv(1024) for the nick, no framing at all.

    The sample client sends what ``input()`` returns, without a newline; this one ends
    every message with "\\n" so that lines can be told apart at all, which is the most
    the seed server can be helped.
    """

    echoes_own = True  # it relays to every socket, the sender's too

    @staticmethod
    def template(nick: bytes) -> bytes:
        return nick + b" send: "

    def on_connected(self) -> None:
        pass  # the sample client reads the prompt first, and so do we

    def handshake(self, data: bytes, now: int) -> None:
        self.inbuf += data
        if len(self.inbuf) < len(SEED_PROMPT):
            return
        if not self.inbuf.startswith(SEED_PROMPT):
            self.fail(f"no prompt: {self.inbuf[:60]!r}")
            return
        rest = self.inbuf[len(SEED_PROMPT) :]
        self.inbuf = b""
        self.send(self.nick.encode())  # no newline: the nick is one recv(1024)
        self.joined(now)
        if rest and not self.stall:
            self.on_data(rest, now)

    def encode(self, payload: bytes) -> bytes:
        return payload + b"\n"

    def classify(self, line: bytes, now: int) -> None:
        if wire.MARKER in line:
            self.mark_synced()
            return
        if line[:1] == b"~" and self.w.bare_re.fullmatch(line):
            # A whole payload on a line of its own: it came in the same recv(1024) as
            # an earlier message, and the relay put the nick only before the first.
            self.w.stats.unattributed += 1
        self.w.stats.bad_line(line)


class IrcClient(LineClient):
    """An IRC user: NICK/USER, wait for 001, JOIN #bench, wait for the end of NAMES (366)."""

    idle_triggers = (wire.MARKER, b" QUIT ", b" PART ", b"PING", b"ERROR")

    @staticmethod
    def template(nick: bytes) -> bytes:
        return b":%s!%s@127.0.0.1 PRIVMSG #bench :" % (nick, nick)

    def on_connected(self) -> None:
        n = self.nick.encode()
        self.send(b"NICK %s\r\nUSER %s 0 * :loadgen\r\n" % (n, n))

    def handshake(self, data: bytes, now: int) -> None:
        self.inbuf += data
        while True:
            end = self.inbuf.find(b"\n")
            if end < 0:
                return
            line, self.inbuf = self.inbuf[:end].rstrip(b"\r"), self.inbuf[end + 1 :]
            parts = line.split(b" ", 2)
            if line.startswith(b"PING"):
                self.send(b"PONG" + line[4:] + b"\r\n")
            elif len(parts) >= 2 and parts[1] == b"001":
                self.send(b"JOIN #bench\r\n")
            elif len(parts) >= 2 and parts[1] == b"366":
                rest, self.inbuf = self.inbuf, b""
                self.joined(now)
                if rest and not self.stall:
                    self.on_data(rest, now)
                return
            elif len(parts) >= 2 and parts[1] in (b"432", b"433", b"451"):
                self.fail(f"refused: {line.decode('utf-8', 'replace')}")
                return
            elif line.startswith(b"ERROR"):
                self.fail(line.decode("utf-8", "replace"))
                return

    def encode(self, payload: bytes) -> bytes:
        return b"PRIVMSG #bench :" + payload + b"\r\n"

    def classify(self, line: bytes, now: int) -> None:
        st = self.w.stats
        if line.startswith(b"PING"):
            self.send(b"PONG" + line[4:] + b"\r\n")
        elif wire.MARKER in line:
            self.mark_synced()
        elif b" QUIT " in line or b" PART " in line:
            nick = line[1 : line.find(b"!")].decode("utf-8", "replace")
            reason = line.split(b" :", 1)[1].decode("utf-8", "replace") if b" :" in line else ""
            self.w.on_leave(nick, reason, now)
            st.other += 1
        elif line.startswith(b"ERROR"):
            self.close_reason = line.decode("utf-8", "replace")
            st.other += 1
        elif b" PRIVMSG " in line:
            st.bad_line(line)
        else:
            st.other += 1


class WsClient(Client):
    """A bot on webchat's /ws: a hand-rolled client framer, masked frames out, JSON in."""

    echoes_own = True
    keys_bytes = False

    def __init__(self, w: Worker, index: int, nick: str, *, sender: bool, stall: bool) -> None:
        super().__init__(w, index, nick, sender=sender, stall=stall)
        self.key = b""
        self.upgraded = False
        self.fragments: list[bytes] = []
        self.close_code = 0

    def port(self) -> int:
        ports = self.w.cfg.node_ports
        return ports[self.node][1] if ports else self.w.cfg.web_port

    def on_connected(self) -> None:
        self.key = wire.ws_key()
        self.send(wire.ws_request(self.w.cfg.host, self.port(), self.key))

    def handshake(self, data: bytes, now: int) -> None:
        self.inbuf += data
        if not self.upgraded:
            end = self.inbuf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.inbuf) > 16384:
                    self.fail("HTTP response header too long")
                return
            head, self.inbuf = self.inbuf[:end], self.inbuf[end + 4 :]
            status = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                self.fail(f"handshake refused: {status.decode('latin-1')}")
                return
            if wire.ws_accept(self.key) not in head:
                self.fail("handshake: wrong Sec-WebSocket-Accept")
                return
            self.upgraded = True
            hello: dict[str, Any] = {"type": "join", "nick": self.nick}
            if self.room != wire.LOBBY:
                hello["rooms"] = [self.room]  # entered at once, before the welcome
            join = json.dumps(hello).encode()
            self.send(wire.ws_frame(join))
        if not self.inbuf:
            return
        try:
            frames, self.inbuf = wire.ws_parse(self.inbuf)
        except wire.WsProtocolError as exc:
            self.fail(str(exc))
            return
        for i, (op, _fin, pl) in enumerate(frames):
            if op == wire.OP_TEXT:
                kinds = event_types(pl)
                if "welcome" in kinds:
                    rest = frames[i + 1 :]
                    self.joined(now)
                    if not self.stall:
                        self.frames(rest, now)
                    return
                if "error" in kinds:
                    self.fail(f"join refused: {pl[:160].decode('utf-8', 'replace')}")
                    return
                self.w.stats.other += len(kinds)  # history replay before the welcome
            elif op == wire.OP_CLOSE:
                self.fail(f"closed during join: {pl[2:].decode('utf-8', 'replace')}")
                return

    def on_data(self, data: bytes, now: int) -> None:
        buf = self.inbuf + data if self.inbuf else data
        try:
            frames, self.inbuf = wire.ws_parse(buf)
        except wire.WsProtocolError as exc:
            self.lost(str(exc), now)
            return
        self.frames(frames, now)

    def frames(self, frames: list[tuple[int, bool, bytes]], now: int) -> None:
        sending = self.w.sending
        for op, fin, pl in frames:
            if op == wire.OP_TEXT or op == wire.OP_CONT:
                if not fin or self.fragments:
                    self.fragments.append(pl)
                    if not fin:
                        continue
                    pl = b"".join(self.fragments)
                    self.fragments = []
                if pl.startswith(PRESENCE):
                    # A crowded room's update lists everyone who came: thousands of
                    # entries, for thousands of clients on one generator core. A browser
                    # parses its own once; parsing them all here made the generator the
                    # one behind (p99 1,975 ms at 3,000 clients). No delivery is in it.
                    self.w.stats.other += 1
                    self.w.saw_presence(pl)
                elif sending:
                    obj = parsed(pl)
                    if self.fast_frame(obj, now):
                        self.w.stats.fast_chunks += 1
                    else:
                        self.w.stats.slow_chunks += 1
                        self.events_in(pl, obj, now)
                        self.resync()
                elif wire.MARKER in pl or b'"leave"' in pl or b'"error"' in pl:
                    self.events_in(pl, parsed(pl), now)
                    self.resync()
                else:
                    self.w.stats.other += 1
            elif op == wire.OP_PING:
                self.send(wire.ws_frame(pl, wire.OP_PONG))
            elif op == wire.OP_CLOSE:
                self.close_code = int.from_bytes(pl[:2], "big") if len(pl) >= 2 else 1005
                reason = pl[2:].decode("utf-8", "replace")
                self.close_reason = f"close {self.close_code}" + (f": {reason}" if reason else "")
                with contextlib.suppress(OSError):
                    assert self.sock is not None
                    self.sock.send(wire.ws_frame(pl[:2], wire.OP_CLOSE))
                self.lost(self.close_reason, now)
                return

    def fast_frame(self, obj: Any, now: int) -> bool:
        """A frame of message events only (``parsed`` once), checked in bulk.

        The checks run over joined strings and C-level maps instead of a Python loop
        per event: every event is a "message", every nick is "c" and five digits, every
        text is exactly the payload size, starts with "~" and the nick's digits, ends in
        the padding, and carries ASCII digits.
        """
        if obj is NOT_JSON:
            return False
        evs = obj if type(obj) is list else [obj]
        n = len(evs)
        size, pad = self.w.size, self.w.pad_s
        try:
            if list(map(TYPE, evs)).count("message") != n:
                return False
            if self.w.cfg.rooms and list(map(ROOM, evs)).count(self.room) != n:
                return False  # the one-by-one path says which went astray
            nicks = "".join(map(NICK, evs))
            texts = list(map(TEXT, evs))
            text = "".join(texts)
        except (KeyError, TypeError):
            return False  # not objects, a field missing, or not strings
        if len(nicks) != 6 * n or nicks[0::6] != "c" * n:
            return False
        if set(map(len, texts)) != {size} or text[0::size] != "~" * n:
            return False
        for k in range(1, 6):
            if nicks[k::6] != text[k::size]:
                return False
        if text.count(pad) != n:
            return False  # a padding can only occur at its own text's end
        fields = [text[i : i + 31] for i in range(1, len(text), size)]
        digits = "".join(fields)
        if not (digits.isascii() and digits.encode().isdigit()):
            return False
        return self.take_fields(fields, now)

    def events_in(self, pl: bytes, obj: Any, now: int) -> None:
        """One event at a time, from the frame ``pl`` that ``parsed`` made ``obj`` of."""
        st = self.w.stats
        if obj is NOT_JSON:
            st.bad_line(pl)
            return
        evs = obj if isinstance(obj, list) else (obj,)
        size, pad = self.w.size, self.w.pad_s
        rooms = self.w.cfg.rooms
        delivered = st.delivered
        for ev in evs:
            if not isinstance(ev, dict):
                st.bad_line(repr(ev))
                continue
            kind = ev.get("type")
            if kind == "message" and rooms and ev.get("room") != self.room and text_is_payload(ev):
                st.misplaced(f"{self.nick} in {self.room} got {json.dumps(ev)[:150]}")
            elif kind == "message":
                text, nick = ev.get("text"), ev.get("nick")
                if (
                    type(text) is str
                    and len(text) == size
                    and text[0] == "~"
                    and text[32:] == pad
                    and type(nick) is str
                    and nick[1:] == text[1:6]
                    and nick[0] == "c"
                ):
                    try:
                        seq, t_ns = int(text[6:14]), int(text[14:32])
                    except ValueError:
                        st.bad_line(text)
                        continue
                    self.accept(text[1:6], seq, t_ns, now)
                elif text == "!sync":
                    self.mark_synced()
                else:
                    st.bad_line(json.dumps(ev))
            elif kind == "leave":
                self.w.on_leave(str(ev.get("nick")), str(ev.get("text") or ""), now)
                st.other += 1
            elif kind == "error" and str(ev.get("text", "")).startswith("disconnected"):
                self.close_reason = str(ev.get("text"))
                st.other += 1
            else:
                st.other += 1
        if st.delivered != delivered:
            if not st.first_recv:
                st.first_recv = now
            st.last_recv = now
            if self is self.w.observer:
                self.w.observe(self.got, now)

    def encode(self, payload: bytes) -> bytes:
        if self.room != wire.LOBBY:
            return wire.ws_frame(
                b'{"type":"say","room":"' + self.room.encode() + b'","text":"' + payload + b'"}'
            )
        return wire.ws_frame(b'{"type":"say","text":"' + payload + b'"}')

    def send_marker(self) -> None:
        # A say without a room goes to the active room, which stays #lobby.
        self.send(wire.ws_frame(b'{"type":"say","text":"' + wire.MARKER + b'"}'))


def strip_room_tag(line: bytes) -> bytes:
    """A TCP line without its "[#room] " tag, if it has one."""
    if line.startswith(b"[#"):
        tag, sep, rest = line.partition(b"] ")
        if sep and b" " not in tag:
            return rest
    return line


def text_is_payload(ev: dict[str, Any]) -> bool:
    """A message event whose text is a benchmark payload (not the marker, say)."""
    text = ev.get("text")
    return type(text) is str and text[:1] == "~"


# How every crowded room's update frame begins (the server writes "type" first).
PRESENCE = b'{"type":"presence"'
# --settle-presence: the longest the barrier waits for an update that counts everyone
# (the server's interval is 10 s), and then for --settle-quiet seconds without one;
# past it, it goes on without.
PRESENCE_WAIT_NS = 30_000_000_000
# What ``parsed`` gives for a frame that is not JSON.
NOT_JSON = object()


def parsed(pl: bytes) -> Any:
    """The frame's JSON, or NOT_JSON: parsed once, whichever check looks at it."""
    try:
        return json.loads(pl)
    except ValueError:
        return NOT_JSON


def event_types(pl: bytes) -> list[str]:
    """The event types in one server frame (an object or an array of them)."""
    obj = parsed(pl)
    if obj is NOT_JSON:
        return ["error"]
    evs = obj if isinstance(obj, list) else [obj]
    return [str(ev.get("type")) for ev in evs if isinstance(ev, dict)]


def client_class(target: str, kind: str) -> type[Client]:
    if kind == "ws":
        if target != "webchat":
            raise ValueError(f"{target} has no WebSocket side; use --mix tcp")
        return WsClient
    return {"webchat": WebchatTcpClient, "seed": SeedClient, "miniircd": IrcClient}[target]


# ----- the worker -------------------------------------------------------------------------


class Worker:
    """Owns the selector, the clients and the phase; talks to the coordinator."""

    def __init__(self, cfg: WorkerConfig, pipe: Connection) -> None:
        self.cfg = cfg
        self.pipe = pipe
        self.sel = selectors.DefaultSelector()
        self.stats = Stats()
        self.size = cfg.size
        self.pad = wire.padding(cfg.size)
        self.pad_s = self.pad.decode()
        self.fast = cfg.per_sender_rate <= 0
        self.rate = cfg.per_sender_rate  # recomputed at "go" from who actually joined
        self.sending = False
        self.finished = False
        self.phase = "connect"
        self.t_go = 0
        self.clients: list[Client] = []
        self.stall_clients: list[Client] = []
        self.rbuf = bytearray(RECV_SIZE)
        self.rview = memoryview(self.rbuf)
        # CLOCK_REALTIME minus CLOCK_MONOTONIC, for the kernel's receive stamps; taken
        # again at each turn of the loop, so a clock step costs at most one turn.
        self.realtime_ahead = time.time_ns() - time.monotonic_ns()
        prefix, suffix = {
            "webchat": (wire.WEBCHAT_TCP_PREFIX, b"\r\n"),
            "seed": (wire.SEED_PREFIX, b"\n"),
            "miniircd": (wire.IRC_PREFIX, b"\r\n"),
        }[cfg.target]
        msg_re = wire.message_regex(prefix, suffix, self.pad)
        self.bare_re = re.compile(rb"~\d{31}" + re.escape(self.pad))
        for idx, kind in cfg.clients:
            cls = client_class(cfg.target, kind)
            self.clients.append(
                cls(self, idx, wire.nick_of(idx), sender=idx in cfg.senders, stall=False)
            )
        for idx, kind in cfg.stalls:
            cls = client_class(cfg.target, kind)
            self.stall_clients.append(
                cls(self, idx, wire.stall_nick_of(idx), sender=False, stall=True)
            )
        self.any_room_re = wire.any_room_message_regex(self.pad)
        # Every sender's key, both spellings: a message from one of them that a client
        # does not expect (another room's) is a wrong-room delivery, not a corrupt line.
        sids = [wire.nick_of(i)[1:] for i in cfg.all_senders]
        self.sender_keys: set[Any] = set(sids) | {k.encode() for k in sids}
        shapes: dict[str, tuple[Any, wire.LineShape]] = {}
        for c in self.clients + self.stall_clients:
            if isinstance(c, LineClient):
                if c.room not in shapes:
                    tag = wire.webchat_room_tag(c.room) if cfg.target == "webchat" else b""
                    shapes[c.room] = (
                        wire.message_regex(re.escape(tag) + prefix, suffix, self.pad)
                        if tag
                        else msg_re,
                        wire.LineShape(tag + c.template(b"c00000"), suffix, self.pad),
                    )
                c.msg_re, c.shape = shapes[c.room]
        self.queue: list[Client] = list(reversed(self.clients))
        # One receiver's (messages so far, time) curve: when was the k-th message out?
        listeners = [c for c in self.clients if not c.sender] or self.clients
        self.observer: Client | None = listeners[0] if listeners else None
        self.timeline: list[tuple[int, int]] = []
        self.inflight: set[Client] = set()
        self.connect_ok = 0
        self.connect_failed = 0
        self.connect_times: list[int] = []
        self.errors: dict[str, int] = {}
        self.reported_connect = False
        self.synced_count = 0
        self.barrier = False
        self.last_marker = 0
        # --settle-presence: how many joined in all (from the coordinator), and the most
        # a presence update has counted so far.
        self.barrier_users = 0
        self.barrier_until = 0
        self.presence_users = 0
        self.last_presence_ns = 0  # when the last presence update came (--settle-quiet)
        self.last_barrier_check = 0
        self.last_handshake_check = 0
        self.last_progress = time.monotonic_ns()
        self.reported_synced = False
        self.senders = [c for c in self.clients if c.sender]
        self.sending_left = 0
        self.first_send = 0
        self.last_send = 0
        self.max_send_lag = 0
        self.schedule: list[tuple[int, int, Client]] = []
        self.reported_sent = False
        self.all_sent = False
        self.all_sent_at = 0
        self.expected = 0
        self.echo_expected = 0
        self.leaves: dict[str, tuple[int, str]] = {}
        self.closed: list[tuple[str, int, str]] = []
        self.stall_state_change: dict[str, tuple[int, str]] = {}
        self.last_stall_poll = 0
        self.cpu_marks: dict[str, float] = {}
        self.mark_cpu("start")

    # --- plumbing ---

    def mark_cpu(self, name: str) -> None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu_marks[name] = ru.ru_utime + ru.ru_stime

    def tell(self, kind: str, payload: Any = None) -> None:
        self.pipe.send((kind, payload))

    def run(self) -> None:
        self.sel.register(self.pipe.fileno(), EVENT_READ, None)
        rooms = self.cfg.rooms
        nodes = len(self.cfg.node_ports)
        for c in self.clients:
            # Only the senders of the client's own room (own included, for the echoes).
            mine = [i for i in sorted(self.cfg.all_senders) if wire.room_of(i, rooms) == c.room]
            keys = [wire.nick_of(i)[1:] for i in mine]
            far = [wire.nick_of(i)[1:] for i in mine if wire.node_of(i, nodes) != c.node]
            if c.keys_bytes:
                c.init_expect(
                    [k.encode() for k in keys], c.sid.encode(), frozenset(k.encode() for k in far)
                )
            else:
                c.init_expect(keys, c.sid, frozenset(far))
        self.tick(time.monotonic_ns())
        while not self.finished:
            now = time.monotonic_ns()
            self.realtime_ahead = time.time_ns() - now
            timeout = self.timeout(now)
            for key, mask in self.sel.select(timeout):
                c = key.data
                if c is None:
                    self.command()
                    if self.finished:
                        break
                else:
                    c.on_event(mask, time.monotonic_ns())
            self.tick(time.monotonic_ns())

    def arrival(self, stamps: list[tuple[int, int, bytes]], now: int) -> int:
        """When the bytes just read reached their socket (monotonic), from the kernel's
        stamp; the wait until now is the read lag, kept apart while sending. Without a
        stamp (the kernel turns stamping on a moment after the first socket asks), the
        read's own time: a latency too long, never too short."""
        for level, kind, data in stamps:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                sec, nsec = struct.unpack_from("qq", data)
                at = min(now, sec * 1_000_000_000 + nsec - self.realtime_ahead)
                if self.sending:
                    self.stats.read_lag.add(now - at)
                return at
        return now

    def timeout(self, now: int) -> float:
        t = 0.1
        if self.sending and self.schedule:
            t = min(t, max(0.0, (self.schedule[0][0] - now) / 1e9))
        if self.phase == "go-wait":
            t = min(t, max(0.0, (self.t_go - now) / 1e9))
        return t

    def command(self) -> None:
        try:
            kind, arg = self.pipe.recv()
        except (EOFError, OSError):
            self.finished = True  # the coordinator is gone: never outlive it
            return
        if kind == "stall":
            self.queue = list(reversed(self.stall_clients))
            self.phase = "stall"
            self.reported_connect = False
        elif kind == "stop_connect":
            self.stop_connecting()
        elif kind == "barrier":
            self.barrier_users = arg
            self.barrier_until = time.monotonic_ns() + PRESENCE_WAIT_NS
            self.barrier = True
            self.phase = "barrier"
            self.mark_cpu("connected")
        elif kind == "go":
            self.t_go, rate = arg
            self.rate = rate or self.rate
            self.phase = "go-wait"
        elif kind == "all_sent":
            self.on_all_sent(arg)
        elif kind == "stop":
            self.finish(stopped=True)

    # --- connecting ---

    def start_connects(self, now: int) -> None:
        while self.queue and len(self.inflight) < self.cfg.connect_concurrency:
            c = self.queue.pop()
            self.inflight.add(c)
            c.connect(now)

    def stop_connecting(self) -> None:
        """The connect budget is spent: go on with whoever has joined."""
        for c in self.queue:
            c.error = "not started: the connect budget ran out"
            c.state = FAILED
            self.connect_failed += 1
            self.errors[c.error] = self.errors.get(c.error, 0) + 1
        self.queue = []
        for c in list(self.inflight):
            c.fail("still joining when the connect budget ran out")

    def handshake_over(self, c: Client, ok: bool) -> None:
        if c not in self.inflight:
            return
        self.inflight.discard(c)
        if ok:
            self.connect_ok += 1
            self.connect_times.append(time.monotonic_ns() - c.t_start)
        else:
            self.connect_failed += 1
            key = c.error.split(":", 1)[0] if c.error.startswith("connect") else c.error[:120]
            self.errors[key] = self.errors.get(key, 0) + 1

    def check_handshakes(self, now: int) -> None:
        limit = int(self.cfg.handshake_timeout_s * 1e9)
        for c in list(self.inflight):
            if now - c.t_start > limit:
                c.fail("handshake timeout")

    # --- barrier: one marker message, received by everyone, means the join storm is over ---

    def on_synced(self, c: Client) -> None:
        if not c.stall and c.state == JOINED:
            self.synced_count += 1

    def saw_presence(self, pl: bytes) -> None:
        """--settle-presence: how many a crowded room's update counts (its last field),
        and when the last update came (--settle-quiet)."""
        if self.cfg.settle_presence:
            at = pl.rfind(b'"users":')
            count = pl[at + 8 :].rstrip(b"}")
            if at >= 0 and count.isdigit():
                self.presence_users = max(self.presence_users, int(count))
            self.last_presence_ns = time.monotonic_ns()

    def barrier_tick(self, now: int) -> None:
        first = self.clients[0] if self.clients and self.clients[0].index == 0 else None
        if (
            self.cfg.settle_presence
            and first is not None
            and now < self.barrier_until
            and (
                self.presence_users < self.barrier_users
                or now - self.last_presence_ns < self.cfg.settle_quiet_s * 1e9
            )
        ):
            return  # some lists do not have everyone yet: the marker would come before
        if first is not None and first.state == JOINED:
            if not first.synced:
                first.synced = True
                self.synced_count += 1
            if now - self.last_marker > 1_000_000_000:
                self.last_marker = now
                first.send_marker()
        live = sum(1 for c in self.clients if c.state == JOINED)
        closed_synced = sum(1 for c in self.clients if c.state == CLOSED and c.synced)
        if self.synced_count - closed_synced >= live and not self.reported_synced:
            self.reported_synced = True
            closed = sum(1 for c in self.clients if c.state == CLOSED)
            self.tell("synced", {"closed": closed, "presence_users": self.presence_users})

    # --- sending ---

    def go(self, now: int) -> None:
        self.mark_cpu("go")
        self.phase = "send"
        self.sending = True
        live = [c for c in self.senders if c.state == JOINED]
        self.sending_left = len(live)
        for c in self.senders:
            if c.state != JOINED:
                c.done_sending = True
        if self.fast:
            for c in live:
                c.interest(c.wanted_events())
        else:
            interval = 1e9 / self.rate
            ranks = {idx: r for r, idx in enumerate(sorted(self.cfg.all_senders))}
            for c in live:
                # Spread the senders over one interval so the offered load is smooth.
                c.offset = int(interval * ranks[c.index] / max(1, len(ranks)))
                heapq.heappush(self.schedule, (self.t_go + c.offset, c.index, c))
        if not live:
            self.report_sent()

    def fill(self, c: Client, now: int) -> None:
        """As fast as possible: stamp and queue messages while the socket takes them."""
        if not self.first_send:
            self.first_send = now
        sid, pad, m = c.sid.encode(), self.pad, self.cfg.messages
        encode = c.encode
        out = c.out
        while c.sent < m and len(out) < SEND_CHUNK:
            out += encode(wire.payload(sid, c.sent, now, pad))
            c.sent += 1
        self.last_send = now
        if c.sent >= m:
            self.sender_done(c)

    def sender_done(self, c: Client) -> None:
        if not c.done_sending:
            c.done_sending = True
            self.sending_left -= 1
            if self.sending_left <= 0:
                self.report_sent()

    def run_schedule(self, now: int) -> None:
        """At a fixed rate: each message is stamped with its intended time, so time spent
        behind the server's backpressure counts as latency (no coordinated omission)."""
        interval = 1e9 / self.rate
        m = self.cfg.messages
        while self.schedule and self.schedule[0][0] <= now:
            due, idx, c = heapq.heappop(self.schedule)
            if c.state != JOINED:
                self.sender_done(c)
                continue
            if not self.first_send:
                self.first_send = now
            self.max_send_lag = max(self.max_send_lag, now - due)
            c.send(c.encode(wire.payload(c.sid.encode(), c.sent, due, self.pad)))
            c.sent += 1
            self.last_send = now
            if c.sent >= m:
                self.sender_done(c)
            else:
                due = self.t_go + c.offset + int(c.sent * interval)
                heapq.heappush(self.schedule, (due, idx, c))

    def report_sent(self) -> None:
        if not self.reported_sent:
            self.reported_sent = True
            sent = {c.index: c.sent for c in self.senders}
            self.tell("sent", {"sent": sent, "first": self.first_send, "last": self.last_send})

    def on_all_sent(self, sent: dict[int, int]) -> None:
        """Now the exact number of deliveries this worker should see is known."""
        self.all_sent = True
        self.all_sent_at = time.monotonic_ns()
        recv = [c for c in self.clients if c.t_joined]
        local = {c.index for c in recv}
        members = Counter(c.room for c in recv)
        rooms = self.cfg.rooms
        self.expected = sum(
            n * (members[wire.room_of(s, rooms)] - (1 if s in local else 0))
            for s, n in sent.items()
        )
        self.echo_expected = sum(sent.get(c.index, 0) for c in recv if c.sender and c.echoes_own)

    def complete(self, now: int) -> bool:
        st = self.stats
        if st.delivered + st.echoes >= self.expected + self.echo_expected:
            return True
        last = max(st.last_recv, self.all_sent_at)
        return now - last > self.cfg.drain_s * 1e9

    # --- events about other users ---

    def on_leave(self, nick: str, reason: str, now: int) -> None:
        if nick not in self.leaves:
            self.leaves[nick] = (now, reason)

    def observe(self, got: int, now: int) -> None:
        if not self.timeline or got - self.timeline[-1][0] >= 16:
            self.timeline.append((got, now))

    def on_closed(self, c: Client) -> None:
        if not c.stall:
            self.closed.append((c.nick, c.closed_at, c.close_reason))

    def poll_stalls(self, now: int) -> None:
        for c in self.stall_clients:
            if c.sock is not None and c.state == JOINED and c.nick not in self.stall_state_change:
                st = tcp_state(c.sock)
                if st != TCP_ESTABLISHED:
                    self.stall_state_change[c.nick] = (now, TCP_STATES.get(st, str(st)))

    # --- the loop's clock ---

    def tick(self, now: int) -> None:
        if now > self.cfg.deadline_ns:
            self.finish(stopped=True)
            return
        if self.phase in ("connect", "stall"):
            self.start_connects(now)
            if now - self.last_progress > 5_000_000_000:
                self.last_progress = now
                self.tell("progress", {"ok": self.connect_ok, "failed": self.connect_failed})
            if now - self.last_handshake_check > 100_000_000:
                self.last_handshake_check = now
                self.check_handshakes(now)
            if not self.queue and not self.inflight and not self.reported_connect:
                self.reported_connect = True
                group = self.stall_clients if self.phase == "stall" else self.clients
                self.tell(
                    "connected" if self.phase == "connect" else "stalled",
                    {
                        "ok": sum(1 for c in group if c.state == JOINED),
                        "failed": sum(1 for c in group if c.state == FAILED),
                        "errors": dict(self.errors),
                        "connect_ns": sorted(self.connect_times),
                        "senders_ok": [c.index for c in self.senders if c.state == JOINED],
                        "rooms_ok": dict(Counter(c.room for c in group if c.state == JOINED)),
                        # From this worker's first connect() to its last welcome: the
                        # coordinator's "all joined" is the span over every worker.
                        "first_connect_ns": min((c.t_start for c in group if c.t_start), default=0),
                        "last_joined_ns": max((c.t_joined for c in group), default=0),
                    },
                )
                self.connect_times = []
                self.errors = {}
        elif self.phase == "barrier" and now - self.last_barrier_check > 20_000_000:
            self.last_barrier_check = now
            self.barrier_tick(now)
        elif self.phase == "go-wait" and now >= self.t_go:
            self.go(now)
        if self.sending:
            if self.schedule:
                self.run_schedule(now)
            if now - self.last_stall_poll > 50_000_000:
                self.last_stall_poll = now
                self.poll_stalls(now)
            if self.all_sent and self.complete(now):
                self.finish(stopped=False)

    # --- the end ---

    def drain_stalls(self) -> list[dict[str, Any]]:
        """Read what a stalled client never read, to see whether the server cut it off."""
        out = []
        for c in self.stall_clients:
            info: dict[str, Any] = {
                "nick": c.nick,
                "via": "ws" if isinstance(c, WsClient) else "tcp",
            }
            info["joined"] = c.state == JOINED
            if c.sock is None or c.state != JOINED:
                info["error"] = c.error or c.close_reason
                out.append(info)
                continue
            sock = c.sock
            info["state_before_drain"] = TCP_STATES.get(tcp_state(sock), "?")
            got, end = 0, "still open"
            chunks = [c.inbuf]
            sock.setblocking(True)
            deadline = time.monotonic() + 3.0
            sock.settimeout(0.5)
            try:
                while time.monotonic() < deadline:
                    data = sock.recv(RECV_SIZE)
                    if not data:
                        end = "EOF"
                        break
                    got += len(data)
                    chunks.append(data)
            except TimeoutError:
                end = "still open"
            except OSError as exc:
                end = f"error: {exc.strerror or exc}"
            info["drained_bytes"] = got
            info["drained_messages"] = sum(ch.count(b"~") for ch in chunks)
            info["end"] = end
            info["last_words"] = last_words(b"".join(chunks), isinstance(c, WsClient))
            if c.nick in self.stall_state_change:
                t, state = self.stall_state_change[c.nick]
                info["state_change_ns"] = t
                info["state_change"] = state
            c.close()
            out.append(info)
        return out

    def finish(self, stopped: bool) -> None:
        if self.finished:
            return
        self.finished = True
        self.mark_cpu("end")
        stalls = self.drain_stalls()
        st = self.stats
        for c in self.clients:
            if c.state == JOINED and c.close_reason:
                # Told it would be cut off, but the close itself is still on its way.
                self.closed.append((c.nick, time.monotonic_ns(), c.close_reason))
        group = self.clients
        result = {
            "connect": {
                "ok": sum(1 for c in group if c.t_joined),
                "failed": sum(1 for c in group if c.state == FAILED),
                "errors": dict(self.errors),
                "connect_ns": sorted(self.connect_times),
                "rooms_ok": dict(Counter(c.room for c in group if c.t_joined)),
            },
            "stopped": stopped,
            "expected": self.expected,
            "echo_expected": self.echo_expected,
            "delivered": st.delivered,
            "dups": st.dups,
            "reorders": st.reorders,
            "corrupt": st.corrupt,
            "corrupt_samples": st.corrupt_samples,
            "unattributed": st.unattributed,
            "echoes": st.echoes,
            "echo_dups": st.echo_dups,
            "unexpected_echoes": st.unexpected_echoes,
            "wrong_room": st.wrong_room,
            "wrong_room_samples": st.wrong_room_samples,
            "other": st.other,
            "markers": st.markers,
            "fast_chunks": st.fast_chunks,
            "slow_chunks": st.slow_chunks,
            "first_recv": st.first_recv,
            "last_recv": st.last_recv,
            "first_send": self.first_send,
            "last_send": self.last_send,
            "max_send_lag": self.max_send_lag,
            "hist": st.same.sparse(),
            "lat_max": st.same.lat_max,
            "hist_cross": st.cross.sparse(),
            "lat_max_cross": st.cross.lat_max,
            "hist_read_lag": st.read_lag.sparse(),
            "read_lag_max": st.read_lag.lat_max,
            "leaves": self.leaves,
            "closed": self.closed,
            "stalls": stalls,
            "sent": {c.index: c.sent for c in self.senders},
            "cpu": self.cpu_marks,
            "timeline": self.timeline,
            "t_end": time.monotonic_ns(),
            "cpus": sorted(os.sched_getaffinity(0)),
        }
        with contextlib.suppress(OSError):
            self.tell("result", result)


# ----- --sigterm-connected: the goodbye each connected client is owed ----------------------

SHUTDOWN_CLOSE = 1001  # webchat's close code when the server stops ("going away")
TAIL_KEEP = 4096  # bytes of a TCP stream kept: its last line is all that is judged


@dataclass
class Farewell:
    """What one connected client hears from the moment the watch starts until its end.

    TCP keeps the tail of the stream: the goodbye is the last line before EOF, and it must
    be a whole line starting with "*** " (webchat's ``*** disconnected: REASON``).
    WebSocket keeps the unparsed bytes, so frames are cut where they begin even when the
    watch starts mid-frame; the goodbye is a close frame with code 1001, answered as a
    client should (a close frame back).
    """

    client: Client
    ws: bool
    buf: bytearray
    close_code: int = 0
    close_reason: str = ""
    end_ns: int = 0
    end: str = ""  # "EOF", "reset: ...", "still open", "bad framing: ..."

    def feed(self, data: bytes) -> None:
        self.buf += data
        if not self.ws:
            if len(self.buf) > 2 * TAIL_KEEP:
                del self.buf[:-TAIL_KEEP]
            return
        try:
            frames, rest = wire.ws_parse(bytes(self.buf))
        except wire.WsProtocolError as exc:
            self.end = f"bad framing: {exc}"
            self.buf = bytearray()
            return
        self.buf = bytearray(rest)
        for op, _fin, pl in frames:
            if op == wire.OP_CLOSE and not self.close_code:
                self.close_code = int.from_bytes(pl[:2], "big") if len(pl) >= 2 else 1005
                self.close_reason = pl[2:].decode("utf-8", "replace")
                sock = self.client.sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.send(wire.ws_frame(pl[:2], wire.OP_CLOSE))

    def words(self) -> str:
        """The goodbye as heard: "close CODE: reason", or the TCP stream's last line."""
        if self.ws:
            if not self.close_code:
                return "no close frame"
            return f"close {self.close_code}: {self.close_reason}"
        tail = bytes(self.buf)
        if not tail:
            return "nothing"
        if not tail.endswith(b"\n"):
            return "unfinished line: " + tail[-80:].decode("utf-8", "replace")
        return tail.rstrip(b"\r\n").rsplit(b"\n", 1)[-1].decode("utf-8", "replace")

    def said_goodbye(self) -> bool:
        if self.ws:
            return self.close_code == SHUTDOWN_CLOSE
        return self.words().startswith("*** ")


def watch_goodbyes(w: Worker, deadline_ns: int) -> dict[str, Any]:
    """Read every still-connected client until the server ends its connection.

    Called after the run's result is sent, when the coordinator is about to stop the
    server: it says "watching" once every socket is in the selector (so the SIGTERM comes
    after), then reads until each connection has ended, ``deadline_ns`` passes, or the
    coordinator says "bye". Returns, per transport, how many were connected and how many
    got their goodbye, how each ended and when, and what they were told.
    """
    watched: list[Farewell] = []
    for c in w.clients:
        if c.state != JOINED or c.sock is None:
            continue
        c.interest(0)
        f = Farewell(c, isinstance(c, WsClient), bytearray(c.inbuf))
        w.sel.register(c.sock, EVENT_READ, f)
        c.events = EVENT_READ
        watched.append(f)
    w.tell("watching", {"connected": len(watched)})
    open_ = len(watched)
    told_bye = False
    while open_ and not told_bye:
        now = time.monotonic_ns()
        if now >= deadline_ns:
            break
        for key, _mask in w.sel.select(min(0.1, (deadline_ns - now) / 1e9)):
            f = key.data
            if f is None:
                try:
                    kind, _arg = w.pipe.recv()
                except (EOFError, OSError):
                    kind = "bye"
                told_bye = told_bye or kind == "bye"
                continue
            if f.end:
                continue
            sock = f.client.sock
            assert sock is not None
            try:
                got = sock.recv_into(w.rbuf)
            except BlockingIOError:
                continue
            except OSError as exc:
                f.end = f"reset: {exc.strerror or exc}"
                got = 0
            if got:
                f.feed(w.rview[:got].tobytes())
            elif not f.end:
                f.end = "EOF"
            if f.end:
                f.end_ns = time.monotonic_ns()
                f.client.close()
                f.client.state = CLOSED
                open_ -= 1
    out: dict[str, Any] = {
        "connected": {"tcp": 0, "ws": 0},
        "goodbye": {"tcp": 0, "ws": 0},
        "ends": {},
        "words": {},
        "without": [],
        "end_ns": [],
    }
    ends: Counter[str] = Counter()
    words: Counter[str] = Counter()
    for f in watched:
        kind = "ws" if f.ws else "tcp"
        out["connected"][kind] += 1
        said = f.words()
        words[said[:100]] += 1
        if f.said_goodbye():
            out["goodbye"][kind] += 1
        elif len(out["without"]) < 5:
            out["without"].append(f"{f.client.nick} ({kind}): {said[:100]!r}, {f.end or 'open'}")
        end = f.end or "still open"
        ends[end.split(":", 1)[0] if end.startswith("reset") else end[:60]] += 1
        if f.end_ns:
            out["end_ns"].append(f.end_ns)
    out["ends"] = dict(ends)
    out["words"] = dict(words.most_common(5))
    out["end_ns"].sort()
    return out


def last_words(stream: bytes, ws: bool) -> str:
    """The server's goodbye at the end of what a stalled client never read."""
    if ws:
        try:
            frames, _ = wire.ws_parse(stream)
        except wire.WsProtocolError as exc:
            return f"bad framing: {exc}"
        words = []
        for op, _fin, pl in frames[-3:]:
            if op == wire.OP_CLOSE and len(pl) >= 2:
                code = int.from_bytes(pl[:2], "big")
                words.append(f"close {code}: {pl[2:].decode('utf-8', 'replace')}")
            elif op == wire.OP_TEXT and b'"error"' in pl:
                words.append(pl[:200].decode("utf-8", "replace"))
        return " | ".join(words)
    lines = stream[-4096:].rstrip(b"\r\n").split(b"\n")
    return lines[-1].decode("utf-8", "replace").strip() if lines else ""


def worker_main(cfg: WorkerConfig, pipe: Connection) -> None:
    """Entry point of a worker process."""
    # Ctrl-C goes to the whole terminal group: let the coordinator handle it and stop us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if cfg.cpus:
        os.sched_setaffinity(0, cfg.cpus)
    w: Worker | None = None
    try:
        w = Worker(cfg, pipe)
        w.run()
        # Stay connected until the coordinator has stopped the server: a server is
        # stopped with its clients on, and the seed server's threads would otherwise die
        # on broken pipes as we leave. With --sigterm-connected, "watch" comes first.
        while pipe.poll(120):
            kind, arg = pipe.recv()
            if kind == "watch":
                pipe.send(("goodbyes", watch_goodbyes(w, arg)))
            elif kind == "bye":
                break
    except EOFError:
        pass  # the coordinator is gone: so are we
    except Exception:
        with contextlib.suppress(OSError):
            pipe.send(("error", traceback.format_exc()))
    finally:
        if w is not None:
            for c in w.clients + w.stall_clients:
                c.close()
