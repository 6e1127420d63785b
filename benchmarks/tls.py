"""What TLS costs: a handshake per connection, and scenario 1's fan-out with TLS on and off.

    python -m benchmarks.tls handshakes [--count 200] [--key rsa|ec]
    python -m benchmarks.tls fanout [--tls] [--clients 100 --senders 10 --messages 2000 --size 64]

Both start ``webchat`` the way the load generator does (benchmarks/servers.py: free
loopback ports, the fairness limits off, history in a scratch SQLite file), with a
throwaway certificate made by ``openssl req`` (RSA 2048 or EC P-256).

**handshakes** opens ``--count`` connections one after another to the TLS port and,
for comparison, to the plain TCP port, and reports per connection the median and 95th
percentile of: connect + handshake (TLS only), and connect to the nickname prompt;
and the server's CPU (utime + stime from /proc) per connection. The client takes
TLS 1.3 (the default) and closes right after the prompt.

**fanout** is scenario 1 of benchmarks/README.md over the TCP chat only: ``--clients``
TCP clients join (over TLS with ``--tls``, certificate not checked), ``--senders`` of
them send ``--messages`` lines of ``--size`` bytes as fast as their sockets take them,
and every other client must receive each once. One generator process, one selector
loop, non-blocking sockets. It reports deliveries per second (first send to last
delivery), the server's and the generator's CPU over that time, and any shortfall.
With ``--rate R`` the senders instead send R messages a second in all (in turn, each
stamped with the time it was due), and it reports the latency of every delivery:
``--clients 1000 --senders 10 --messages 20 --rate 20`` offers 20 x 999 = ~20,000
deliveries a second, scenario 3's load, over TCP only.
(The load generator itself speaks only plain TCP and WebSocket; its clients are
non-blocking state machines, and teaching them TLS is a bigger change than this.)
"""

from __future__ import annotations

import argparse
import selectors
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.servers import (
    Server,
    free_port,
    listening,
    machine_cpu,
    own_cpu,
    raise_nofile,
    sample,
)

PROMPT = b"Enter your nickname: "
CHUNK = 16384  # bytes per send: one TLS record
KEYS = {"rsa": "RSA 2048", "ec": "EC P-256"}


def make_cert(folder: Path, key: str) -> tuple[str, str]:
    cert, keyfile = folder / "cert.pem", folder / "key.pem"
    new_key = ["-newkey", "rsa:2048"] if key == "rsa" else ["-newkey", "ec"]
    if key != "rsa":
        new_key += ["-pkeyopt", "ec_paramgen_curve:P-256"]
    subprocess.run(
        [
            *("openssl", "req", "-x509", *new_key, "-nodes", "-days", "2"),
            *("-subj", "/CN=localhost", "-keyout", str(keyfile), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(keyfile)


def start(key: str, folder: Path) -> tuple[Server, int]:
    cert, keyfile = make_cert(folder, key)
    tls_port = free_port()
    extra = ["--tls-cert", cert, "--tls-key", keyfile, "--tls-port", str(tls_port)]
    server = Server.make("webchat", extra)
    server.start()
    server.wait_ready(time.monotonic() + 30)
    deadline = time.monotonic() + 30
    while not listening(tls_port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no TLS listener:\n{server.log_tail()}")
        time.sleep(0.02)
    return server, tls_port


def insecure_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}; got {data[-200:]!r}")
        data += chunk
    return data


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples):6.2f} ms   p95 {p95:6.2f} ms"


def handshakes(count: int, key: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        server, tls_port = start(key, Path(folder))
        try:
            context = insecure_context()
            for name, port, tls in (("plain TCP", server.tcp_port, False), ("TLS", tls_port, True)):
                handshake_ms: list[float] = []
                prompt_ms: list[float] = []
                version = ""
                before = sample(server.pid)
                cpu0 = before.cpu_s
                for _ in range(count):
                    t0 = time.perf_counter()
                    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                    if tls:
                        sock = context.wrap_socket(sock, server_hostname="localhost")
                        handshake_ms.append((time.perf_counter() - t0) * 1000)
                        version = f"{sock.version()} {sock.cipher()[0]}"  # type: ignore[index]
                    read_until(sock, PROMPT)
                    prompt_ms.append((time.perf_counter() - t0) * 1000)
                    sock.close()
                # Each closed connection's thread sees its EOF and ends: count its CPU too.
                deadline = time.monotonic() + 10
                while sample(server.pid).threads > before.threads:
                    if time.monotonic() > deadline:
                        raise TimeoutError("the connections' threads did not end")
                    time.sleep(0.02)
                cpu = (sample(server.pid).cpu_s - cpu0) / count * 1000
                what = f", {version}, {KEYS[key]} key" if tls else ""
                print(f"{name} ({count} connections, one at a time{what})")
                if tls:
                    print(f"  connect + handshake    {percentiles(handshake_ms)}")
                print(f"  connect to prompt      {percentiles(prompt_ms)}")
                print(f"  server CPU             {cpu:6.2f} ms per connection")
        finally:
            server.stop()
            print(f"server log warnings: {server.log_grep('Traceback', 'ERROR', 'WARNING')}")
            server.cleanup(keep_log=False)


@dataclass
class Client:
    index: int
    sock: socket.socket
    sender: bool
    expected: int
    received: int = 0
    out: bytearray = field(default_factory=bytearray)
    last: float = 0.0
    pending: bytes = b""  # an unfinished line (paced mode reads each line's stamp)
    latencies: list[int] | None = None  # ns, paced mode only


def join(index: int, port: int, context: ssl.SSLContext | None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    read_until(sock, PROMPT)
    nick = f"c{index:05d}"
    sock.sendall(nick.encode() + b"\n")
    read_until(sock, f"*** Welcome, {nick}!".encode())
    return sock


def drain(c: Client) -> bool:
    """Read what is there; count '~' (only message payloads have one). False at EOF."""
    while True:
        try:
            data = c.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        if not data:
            return False
        got = data.count(b"~")
        if got:
            c.received += got
            c.last = time.monotonic()
            if c.latencies is not None:
                now = time.monotonic_ns()
                *lines, c.pending = (c.pending + data).split(b"\n")
                for line in lines:
                    at = line.find(b"~")
                    if at >= 0:
                        c.latencies.append(now - int(line[at + 1 : at + 21]))
        elif c.latencies is not None:
            c.pending = (c.pending + data).rsplit(b"\n", 1)[-1]


def flush(c: Client) -> None:
    """Send what the socket takes, a record at a time (TLS retries the same bytes)."""
    while c.out:
        try:
            sent = c.sock.send(c.out[:CHUNK])
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return
        del c.out[:sent]


def fanout(opts: argparse.Namespace) -> None:
    raise_nofile()
    with tempfile.TemporaryDirectory() as folder:
        server, tls_port = start(opts.key, Path(folder))
        try:
            context = insecure_context() if opts.tls else None
            port = tls_port if opts.tls else server.tcp_port
            clients = []
            rss0 = sample(server.pid).rss_kb
            t_join = time.monotonic()
            for i in range(opts.clients):
                sender = i < opts.senders
                others = opts.senders - (1 if sender else 0)
                sock = join(i, port, context)
                clients.append(Client(i, sock, sender, others * opts.messages))
            # Everyone hears a marker from client 0 after every join: the join storm is over.
            clients[0].sock.sendall(b"!sync\n")
            for c in clients[1:]:
                read_until(c.sock, b"c00000: !sync")
            join_s = time.monotonic() - t_join
            rss_per = (sample(server.pid).rss_kb - rss0) / opts.clients
            sel = selectors.DefaultSelector()
            for c in clients:
                c.sock.setblocking(False)
                sel.register(c.sock, selectors.EVENT_READ, c)
            pad = "~" + "x" * (opts.size - 1)
            line = (pad + "\n").encode()
            senders = [c for c in clients if c.sender]
            if opts.rate:
                for c in clients:
                    c.latencies = []
            else:
                for c in senders:
                    c.out += line * opts.messages
            expected = sum(c.expected for c in clients)
            srv0, gen0, busy0 = sample(server.pid).cpu_s, own_cpu(), machine_cpu()[0]
            t0 = time.monotonic()
            t0_ns = time.monotonic_ns()
            deadline = t0 + opts.timeout
            for c in clients:
                flush(c)
                if c.out:
                    sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
            done = 0
            total = opts.messages * len(senders)
            next_k = 0  # paced mode: the next message to send, due at t0 + k / rate
            while done < expected and time.monotonic() < deadline:
                wait = 1.0
                if opts.rate:
                    now_ns = time.monotonic_ns()
                    while next_k < total and t0_ns + next_k * 1e9 / opts.rate <= now_ns:
                        due = int(t0_ns + next_k * 1e9 / opts.rate)
                        c = senders[next_k % len(senders)]
                        text = f"~{due:020d}".ljust(opts.size, "x") + "\n"
                        c.out += text.encode()
                        flush(c)
                        if c.out:
                            sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
                        next_k += 1
                    if next_k < total:
                        wait = max(0.0, (t0_ns + next_k * 1e9 / opts.rate - now_ns) / 1e9)
                for key, mask in sel.select(timeout=wait):
                    c = key.data
                    if mask & selectors.EVENT_READ and not drain(c):
                        sel.unregister(c.sock)
                        continue
                    if c.out:
                        flush(c)
                        if not c.out:
                            sel.modify(c.sock, selectors.EVENT_READ, c)
                    # TLS may hold decrypted bytes the selector cannot see.
                    while isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
                        drain(c)
                done = sum(c.received for c in clients)
            last = max(c.last for c in clients)
            elapsed = last - t0
            server_cpu = sample(server.pid).cpu_s - srv0
            generator_cpu = own_cpu() - gen0
            other_cpu = machine_cpu()[0] - busy0 - server_cpu - generator_cpu
            mode = "TLS" if opts.tls else "plain TCP"
            print(
                f"{mode}: {opts.clients} clients, {opts.senders} senders x {opts.messages} "
                f"messages of {opts.size} bytes (joined and settled in {join_s:.1f} s, "
                f"server RSS {rss_per:.0f} KB per connection)"
            )
            print(f"  deliveries       {done:,} of {expected:,} (missing {expected - done:,})")
            print(f"  deliveries/s     {done / elapsed:,.0f}   ({elapsed:.2f} s)")
            print(
                f"  CPU while sending: server {server_cpu / elapsed:.2f} cores, "
                f"generator {generator_cpu / elapsed:.2f} cores, "
                f"other processes {max(0.0, other_cpu) / elapsed:.2f} cores; "
                f"server {server_cpu / max(done, 1) * 1e6:.2f} us per delivery"
            )
            if opts.rate:
                lat = sorted(x for c in clients for x in (c.latencies or []))
                if lat:
                    at = [lat[min(len(lat) - 1, int(q * len(lat)))] / 1e6 for q in (0.5, 0.99)]
                    print(
                        f"  latency          p50 {at[0]:.1f} ms   p99 {at[1]:.1f} ms   "
                        f"max {lat[-1] / 1e6:.1f} ms ({opts.rate:g} messages/s offered, "
                        f"{opts.rate * (opts.clients - 1):,.0f} deliveries/s)"
                    )
            for c in clients:
                c.sock.close()
        finally:
            server.stop()
            print(f"  server log warnings: {server.log_grep('Traceback', 'ERROR', 'WARNING')}")
            server.cleanup(keep_log=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tls", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("handshakes", help="handshake cost per connection")
    h.add_argument("--count", type=int, default=200)
    h.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    f = sub.add_parser("fanout", help="scenario 1 over the TCP chat, with or without TLS")
    f.add_argument("--tls", action="store_true")
    f.add_argument("--key", choices=["rsa", "ec"], default="rsa")
    f.add_argument("--clients", type=int, default=100)
    f.add_argument("--senders", type=int, default=10)
    f.add_argument("--messages", type=int, default=2000)
    f.add_argument("--size", type=int, default=64)
    f.add_argument("--timeout", type=float, default=120.0)
    f.add_argument("--rate", type=float, default=0.0, help="messages/s in all (0: flat out)")
    opts = parser.parse_args(argv)
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"load average before: {' '.join(load)}")
    if opts.command == "handshakes":
        handshakes(opts.count, opts.key)
    else:
        fanout(opts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
