"""How the server holds up when connections outnumber what it can take.

    python -m benchmarks.connections files [--clients 1500] [--soft 1024] [--hard 4096]
    python -m benchmarks.connections slowloris [--holders 300]
    python -m benchmarks.connections storm [--clients 1000] [--addresses 20] [--json]
    (any with --checkout DIR to measure another checkout of webchat, e.g. an older commit,
    or --server-python PATH to run PATH -m webchat, e.g. that checkout's virtualenv)

``files`` starts ``webchat`` with the given open-files limits and opens ``--clients``
TCP connections from 50 loopback addresses, then counts how many got the nickname
prompt, how many were told the server is full, and how many heard nothing within
5 s; how long ``/healthz`` took meanwhile; and the tracebacks in the server's log.

``slowloris`` opens ``--holders`` connections to the web port from 50 loopback
addresses, each sending half a request and then nothing, and while they hang
times a page load and a WebSocket join; then counts the server's threads.

``storm`` starts ``webchat`` on its defaults (the per-address limit included) and starts
``--clients`` connections at once from ``--addresses`` loopback addresses, so that no
address goes over that limit: half TCP, waiting for the nickname prompt, half WebSocket,
which send a join after the 101 and wait for the welcome. It reports how many got there,
how many were refused and with what, each connect's time to its prompt or welcome
(p50/p99/max) and the time from the first connect until the last one was served.
``--server-cpus``/``--generator-cpus`` pin the server and this process, as in loadgen.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from simple_websocket import Client

from benchmarks import wire
from benchmarks.servers import ALL_CPUS, affinity, listening, parse_cpus, pin, raise_nofile
from tests.support.processes import ServerProcess

PROMPT = b"Enter your nickname: "


def start(
    checkout: str | None,
    limits: tuple[int, int] | None,
    *flags: str,
    python: str = "",
    cpus: frozenset[int] = frozenset(),
) -> ServerProcess:
    """``python``: the interpreter that runs ``-m webchat`` (default: this one);
    ``cpus``: the CPUs the server runs on, set before exec (default: every CPU)."""
    env = {"PYTHONPATH": checkout} if checkout else {}

    def lower() -> None:
        if limits is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        os.sched_setaffinity(0, cpus or ALL_CPUS)

    argv = [python or sys.executable, "-m", "webchat", "--web-port", "0", "--tcp-port", "0"]
    return ServerProcess([*argv, *flags], cwd=checkout or Path.cwd(), env=env, preexec_fn=lower)


def ports(server: ServerProcess) -> tuple[int, int]:
    web = int(server.wait_for(r"Browser:\s+http://localhost:(\d+)/")[1])
    tcp = int(server.wait_for(r"Terminal: nc localhost (\d+)")[1])
    return web, tcp


def timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    try:
        action()
    except urllib.error.HTTPError as exc:
        print(f"    answered HTTP {exc.code} in {time.monotonic() - started:.3f} s")
        return float("inf")
    except OSError as exc:
        print(f"    failed: {exc}")
        return float("inf")
    return time.monotonic() - started


def first_words(socks: list[socket.socket], done: Callable[[bytes], bool]) -> list[bytes]:
    """What each socket received within 5 s, all read at once, until ``done`` holds."""
    got = [b""] * len(socks)
    waiting = selectors.DefaultSelector()
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        waiting.register(sock, selectors.EVENT_READ, i)
    deadline = time.monotonic() + 5
    while waiting.get_map() and time.monotonic() < deadline:
        for key, _ in waiting.select(max(0.0, deadline - time.monotonic())):
            i = key.data
            try:
                chunk = socks[i].recv(4096)
            except OSError:
                chunk = b""
            got[i] += chunk
            if not chunk or done(got[i]):
                waiting.unregister(socks[i])
    waiting.close()
    return got


def files(args: argparse.Namespace) -> None:
    server = start(
        args.checkout,
        (args.soft, args.hard),
        "--max-connections-per-ip",
        "0",
        python=args.server_python,
    )
    web, tcp = ports(server)
    socks = []
    for i in range(args.clients):
        address = (f"127.0.0.{2 + i % 50}", 0)
        try:
            socks.append(socket.create_connection(("127.0.0.1", tcp), 5, address))
        except OSError as exc:
            print(f"connect {i} failed: {exc}")
            break
    words = first_words(socks, lambda d: PROMPT in d or b"\r\n" in d)
    prompted = [sock for sock, said in zip(socks, words, strict=True) if PROMPT in said]
    full = sum(b"full" in said for said in words)
    for i, sock in enumerate(prompted):
        with contextlib.suppress(OSError):
            sock.send(f"u{i}\n".encode())
    joined = sum(b"Welcome" in said for said in first_words(prompted, lambda d: b"Welcome" in d))
    health = timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{web}/healthz", timeout=5))
    for sock in socks:
        sock.close()
    server.stop()
    tracebacks = server.output().count("Traceback")
    silent = len(socks) - len(prompted) - full
    print(f"limits soft={args.soft} hard={args.hard}, {len(socks)} clients connected:")
    print(f"  prompt {len(prompted)} (then joined {joined}), told full {full}", end="")
    print(f", nothing within 5 s {silent}")
    print(f"  /healthz answered in {health:.3f} s; tracebacks in the log: {tracebacks}")


def slowloris(args: argparse.Namespace) -> None:
    server = start(args.checkout, None, "--max-connections-per-ip", "0", python=args.server_python)
    web, _ = ports(server)
    holders = []
    for i in range(args.holders):
        sock = socket.create_connection(
            ("127.0.0.1", web), source_address=(f"127.0.0.{2 + i % 50}", 0)
        )
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        holders.append(sock)
    page = timed(lambda: urllib.request.urlopen(f"http://127.0.0.1:{web}/", timeout=10).read())
    threads = len(os.listdir(f"/proc/{server.proc.pid}/task"))

    def join() -> None:
        ws = Client.connect(f"ws://127.0.0.1:{web}/ws")
        ws.send('{"type":"join","nick":"newcomer"}')
        while "welcome" not in (ws.receive(timeout=10) or ""):
            pass
        ws.close()

    joined = timed(join)
    print(f"{args.holders} half-sent requests held; server threads then: {threads}")
    print(f"  page answered in {page:.3f} s, a WebSocket joined in {joined:.3f} s")
    settle = time.monotonic() + 8
    while time.monotonic() < settle:
        time.sleep(0.5)
    cut = 0
    for sock in holders:
        sock.setblocking(False)
        try:
            cut += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            cut += 1
        sock.close()
    threads_after = len(os.listdir(f"/proc/{server.proc.pid}/task"))
    server.stop()
    print(f"  after 8 s: {cut} of them cut by the server; server threads: {threads_after}")


# ----- storm: many connects at once, each waiting for its prompt or welcome ---------------

STORM_WAIT = 30.0  # seconds a storm client waits for its prompt or welcome at most


class Caller:
    """One storm connection: a non-blocking socket from its own loopback address.

    TCP is done at the nickname prompt. WebSocket sends the upgrade, checks the 101, sends
    a join and is done at the ``welcome`` event. Anything else the server says first (a
    "full" line, an HTTP refusal, an ``error`` event, a close, EOF) is why it was refused.
    """

    def __init__(self, index: int, kind: str, source: str) -> None:
        self.index = index
        self.kind = kind
        self.source = source
        self.sock: socket.socket | None = None
        self.t_start = 0
        self.t_done = 0
        self.buf = b""
        self.key = b""
        self.upgraded = False
        self.refused = ""  # why it did not get there, or "" while it may

    def connect(self, host: str, port: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.sock = sock
        self.t_start = time.monotonic_ns()
        try:
            sock.bind((self.source, 0))
        except OSError as exc:
            self.refused = f"bind {self.source}: {exc.strerror or exc}"
            return
        err = sock.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            self.refused = f"connect: {errno.errorcode.get(err, str(err))}"

    def on_writable(self, host: str, port: int) -> None:
        """Connected (or not): WebSocket sends its upgrade; both then wait for bytes."""
        assert self.sock is not None
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.refused = f"connect: {errno.errorcode.get(err, str(err))}"
        elif self.kind == "ws":
            self.key = wire.ws_key()
            self.send(wire.ws_request(host, port, self.key))

    def send(self, data: bytes) -> None:
        """Tiny requests into an empty send buffer: one send takes all of it."""
        assert self.sock is not None
        try:
            if self.sock.send(data) != len(data):
                self.refused = "send: partial write"
        except OSError as exc:
            self.refused = f"send: {exc.strerror or exc}"

    def on_readable(self) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.refused = f"recv: {exc.strerror or exc}" + self.heard()
            return
        if not data:
            self.refused = "EOF" + self.heard()
            return
        self.buf += data
        if self.kind == "tcp":
            if PROMPT in self.buf:
                self.t_done = time.monotonic_ns()
            elif b"\n" in self.buf:  # a whole line that is not the prompt: a refusal
                self.refused = "said " + repr(
                    self.buf.split(b"\n")[0][:80].decode("utf-8", "replace")
                )
            return
        if not self.upgraded:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            status = head.split(b"\r\n", 1)[0].decode("latin-1")
            if " 101 " not in status + " ":
                self.refused = f"HTTP {status.partition(' ')[2] or status}"
                return
            if wire.ws_accept(self.key) not in head:
                self.refused = "handshake: wrong Sec-WebSocket-Accept"
                return
            self.upgraded = True
            self.buf = rest
            join = {"type": "join", "nick": f"storm{self.index:04d}"}
            self.send(wire.ws_frame(json.dumps(join).encode()))
        try:
            frames, self.buf = wire.ws_parse(self.buf)
        except wire.WsProtocolError as exc:
            self.refused = f"bad framing: {exc}"
            return
        for op, _fin, pl in frames:
            if op == wire.OP_CLOSE:
                code = int.from_bytes(pl[:2], "big") if len(pl) >= 2 else 1005
                self.refused = f"close {code}: {pl[2:].decode('utf-8', 'replace')}"
                return
            if op != wire.OP_TEXT:
                continue
            for event in storm_events(pl):
                if event.get("type") == "welcome":
                    self.t_done = time.monotonic_ns()
                    return
                if event.get("type") == "error":
                    self.refused = f"error event: {str(event.get('text'))[:80]}"
                    return

    def heard(self) -> str:
        """What came before the end, for a refusal's reason (a "full" line, a status)."""
        first = self.buf.split(b"\r\n")[0][:80]
        return f" after {first.decode('utf-8', 'replace')!r}" if first else ""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()


def storm_events(pl: bytes) -> list[dict[str, Any]]:
    """The events in one server frame (an object, or an array of them)."""
    try:
        obj = json.loads(pl)
    except ValueError:
        return [{"type": "error", "text": f"not JSON: {pl[:60]!r}"}]
    evs = obj if isinstance(obj, list) else [obj]
    return [ev for ev in evs if isinstance(ev, dict)]


def help_default(python: str, checkout: str | None, flag: str) -> str:
    """The default the server's ``--help`` gives for ``flag`` ("default 100)" -> "100")."""
    env = {**os.environ, **({"PYTHONPATH": checkout} if checkout else {})}
    try:
        out = subprocess.run(
            [python or sys.executable, "-m", "webchat", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
            cwd=checkout or Path.cwd(),
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    text = " ".join(out.split())  # argparse wraps help text over lines
    at = text.find(" " + flag + " ", text.find("options:"))  # its entry, not the usage
    found = re.compile(r"default ([^)]*)\)").search(text, at) if at >= 0 else None
    return found[1] if found else ""


def percentile_ms(times_ns: list[int], q: float) -> float | None:
    """The q-quantile of sorted durations in ns, in ms (nearest rank)."""
    if not times_ns:
        return None
    k = min(len(times_ns) - 1, max(0, int(q * len(times_ns) + 0.999999) - 1))
    return round(times_ns[k] / 1e6, 2)


def storm(args: argparse.Namespace) -> dict[str, Any]:
    """Start the server on its defaults, then every connection at once; see the module doc."""
    server_cpus: frozenset[int] = args.server_cpu_set
    generator_cpus: frozenset[int] = args.generator_cpu_set
    per_ip = help_default(args.server_python, args.checkout, "--max-connections-per-ip")
    server = start(args.checkout, None, python=args.server_python, cpus=server_cpus)
    callers: list[Caller] = []
    try:
        web, tcp = ports(server)
        deadline = time.monotonic() + 30
        while not (listening(web) and listening(tcp)) and time.monotonic() < deadline:
            time.sleep(0.02)  # the banner comes after both listen; this only double-checks
        own = pin(0, generator_cpus) if generator_cpus else affinity(0)
        base = sample_server(server)
        sources = [f"127.0.0.{2 + k}" for k in range(args.addresses)]
        callers = [
            Caller(i, "tcp" if i % 2 == 0 else "ws", sources[i % len(sources)])
            for i in range(args.clients)
        ]
        t0 = time.monotonic_ns()
        for c in callers:
            c.connect("127.0.0.1", tcp if c.kind == "tcp" else web)
        issued = time.monotonic_ns() - t0
        run_storm(callers, web, args.wait)
        t_end = time.monotonic_ns()
        after = sample_server(server)
        server_affinity = affinity(server.proc.pid)
    finally:
        for c in callers:
            c.close()
        server.stop()
    tracebacks = server.output().count("Traceback")
    done = sorted(c.t_done - c.t_start for c in callers if c.t_done)
    refused = Counter(c.refused for c in callers if c.refused and not c.t_done)
    last = max((c.t_done for c in callers if c.t_done), default=0)
    per_kind = {
        kind: {
            "clients": sum(c.kind == kind for c in callers),
            "served": sum(c.kind == kind and bool(c.t_done) for c in callers),
        }
        for kind in ("tcp", "ws")
    }
    return {
        "clients": args.clients,
        "addresses": len(sources),
        "per_address": -(-args.clients // len(sources)),
        "server_per_ip_default": per_ip,
        "issued_s": round(issued / 1e9, 3),
        "served": len(done),
        "tcp_prompted": per_kind["tcp"],
        "ws_welcomed": per_kind["ws"],
        "refused": sum(refused.values()),
        "refused_reasons": dict(refused.most_common(8)),
        "silent": sum(1 for c in callers if not c.t_done and not c.refused),
        "wait_s": args.wait,
        "per_connect_ms": {
            "p50": percentile_ms(done, 0.50),
            "p99": percentile_ms(done, 0.99),
            "max": percentile_ms(done, 1.0),
        },
        "last_served_s": round((last - t0) / 1e9, 3) if last else None,
        "storm_s": round((t_end - t0) / 1e9, 3),
        "server_threads": {"before": base[1], "after": after[1]},
        "server_rss_kb": {"before": base[0], "after": after[0]},
        "server_tracebacks": tracebacks,
        "server_cpus": sorted(server_cpus) or None,
        "generator_cpus": sorted(generator_cpus) or None,
        "server_actual": server_affinity,
        "generator_actual": own,
    }


def run_storm(callers: list[Caller], web: int, wait: float) -> None:
    """One selector over every connection until each is served or refused, or ``wait``
    seconds pass; sockets that are done leave the selector (their bytes are not read)."""
    sel = selectors.DefaultSelector()
    pending = 0
    for c in callers:
        if c.sock is not None and not c.refused:
            sel.register(c.sock, selectors.EVENT_WRITE, c)
            pending += 1
    deadline = time.monotonic() + wait
    while pending and time.monotonic() < deadline:
        for key, mask in sel.select(max(0.0, min(0.1, deadline - time.monotonic()))):
            c = key.data
            if mask & selectors.EVENT_WRITE:
                c.on_writable("127.0.0.1", web)
                if not c.refused:
                    sel.modify(key.fileobj, selectors.EVENT_READ, c)
            else:
                c.on_readable()
            if c.refused or c.t_done:
                sel.unregister(key.fileobj)
                pending -= 1
    sel.close()


def sample_server(server: ServerProcess) -> tuple[int, int]:
    """(VmRSS in KB, threads) of the server process."""
    rss = threads = 0
    with contextlib.suppress(OSError), open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return rss, threads


def storm_text(r: dict[str, Any]) -> str:
    t, w, pc = r["tcp_prompted"], r["ws_welcomed"], r["per_connect_ms"]
    lines = [
        f"storm: {r['clients']:,} connects at once ({t['clients']:,} TCP, {w['clients']:,}"
        f" WebSocket) from {r['addresses']} addresses (127.0.0.2-127.0.0.{1 + r['addresses']},"
        f" up to {r['per_address']} each; the server's --max-connections-per-ip default is"
        f" {r['server_per_ip_default'] or '?'}), issued in {r['issued_s']:.3f} s",
        f"  served         {r['served']:,} of {r['clients']:,}: TCP prompt {t['served']:,}/"
        f"{t['clients']:,}, WebSocket welcome {w['served']:,}/{w['clients']:,}",
        f"  refused        {r['refused']:,}"
        + (f" {r['refused_reasons']}" if r["refused_reasons"] else "")
        + f"; nothing within"
        f" {r['wait_s']:g} s: {r['silent']:,}",
        f"  per connect    p50 {pc['p50']} ms, p99 {pc['p99']} ms, max {pc['max']} ms; the last"
        f" served {r['last_served_s']} s after the first connect",
        f"  server         threads {r['server_threads']['before']} before,"
        f" {r['server_threads']['after']} after; RSS {r['server_rss_kb']['before']:,} KB"
        f" before, {r['server_rss_kb']['after']:,} KB after; tracebacks in its log:"
        f" {r['server_tracebacks']}",
    ]
    if r["server_cpus"] or r["generator_cpus"]:
        lines.append(
            f"  CPUs           server on {r['server_actual']}, generator on {r['generator_actual']}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", help="another webchat checkout to measure")
    parser.add_argument(
        "--server-python",
        metavar="PATH",
        default="",
        help="run PATH -m webchat (e.g. another checkout's .venv/bin/python); default: this",
    )
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("files")
    f.add_argument("--clients", type=int, default=1500)
    f.add_argument("--soft", type=int, default=1024)
    f.add_argument("--hard", type=int, default=4096)
    s = sub.add_parser("slowloris")
    s.add_argument("--holders", type=int, default=300)
    st = sub.add_parser("storm")
    st.add_argument("--clients", type=int, default=1000, help="connections, half TCP half WS")
    st.add_argument(
        "--addresses",
        type=int,
        default=20,
        help="loopback source addresses 127.0.0.2.. (keep clients/addresses within the"
        " server's --max-connections-per-ip)",
    )
    st.add_argument("--wait", type=float, default=STORM_WAIT, help="seconds to wait at most")
    st.add_argument("--server-cpus", metavar="LIST", default="", help="as taskset -c")
    st.add_argument("--generator-cpus", metavar="LIST", default="", help="as taskset -c")
    st.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    if args.what == "storm":
        if not 1 <= args.addresses <= 250 or args.clients < 1:
            parser.error("storm: --addresses must be 1..250 and --clients at least 1")
        try:
            args.server_cpu_set = parse_cpus(args.server_cpus)
            args.generator_cpu_set = parse_cpus(args.generator_cpus)
        except ValueError as exc:
            parser.error(f"--server-cpus/--generator-cpus: {exc}")
        raise_nofile()
        report = storm(args)
        print(json.dumps(report, indent=2) if args.json else storm_text(report))
        return
    {"files": files, "slowloris": slowloris}[args.what](args)


if __name__ == "__main__":
    main()
