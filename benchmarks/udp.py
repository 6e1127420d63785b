"""UDP beside TCP: framed UDP clients and TCP clients receive the same messages.

    .venv/bin/python -m benchmarks.udp --udp-clients 100 --tcp-clients 100 \\
        --senders 5 --messages 200 --rate 100 --loss 0.05

Three processes besides this one: the server (webchat's own runtime, started the
way ``create_app`` starts it, so its UDP counters can be read at the end), one for
the ``--udp-clients`` framed clients (the library that ``webchat-client --udp``
uses, each with its receiving thread), and one for the ``--tcp-clients`` terminal
clients and the ``--senders`` (TCP clients too) in a selector loop. The senders
send ``--rate`` messages a second in all, each stamped with the time it was due;
every receiver checks that it gets each message exactly once, in order per sender,
and records its latency (arrival minus due time: one machine, one clock).

``--loss P`` drops that share of datagrams in both directions, inside the UDP
clients (seeded): what they send is dropped before it leaves, what arrives is
dropped before it is read. TCP is not made lossy. Reported per transport:
deliveries per second (first due time to last delivery), latency p50/p99/max, and
for UDP the server's retransmissions and the clients' own.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import selectors
import socket
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from webchat.transports.udp_client import UdpClient


def serve(conn: Connection) -> None:
    import logging

    from webchat import create_app
    from webchat.settings import Settings
    from webchat.web.server import web_server

    logging.disable(logging.INFO)
    settings = Settings(
        tcp_host="127.0.0.1",
        tcp_port=0,
        tcp_enabled=True,
        history_db=":memory:",
        rate_per_second=0,
        max_connections_per_ip=0,
        flood_refusals=0,
    )
    app = create_app(settings)
    web = web_server(app, "127.0.0.1", 0)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    runtime = app.extensions["webchat"]
    conn.send((runtime.tcp_port, runtime.udp_port))
    conn.recv()  # stop
    stats = runtime.udp.stats() if runtime.udp is not None else {}
    web.shutdown()
    runtime.close()
    conn.send(stats)


class Tally:
    """One receiver's deliveries: exactly once and in order per sender, and latencies."""

    def __init__(self) -> None:
        self.last: dict[int, int] = {}
        self.count = 0
        self.bad = 0
        self.latencies: list[float] = []
        self.last_at = 0.0

    def record(self, text: str, now: float) -> None:
        parts = text.split()
        if len(parts) != 4 or parts[0] != "b":
            return
        sender, seq, due = int(parts[1]), int(parts[2]), float(parts[3])
        if seq != self.last.get(sender, -1) + 1:
            self.bad += 1
        self.last[sender] = seq
        self.count += 1
        self.latencies.append(now - due)
        self.last_at = now


class LossyClient(UdpClient):
    def __init__(self, host: str, port: int, loss: float, seed: int) -> None:
        super().__init__(host, port)
        self.loss = loss
        self.rng = random.Random(seed)
        self.tally = Tally()

    def _send(self, data: bytes) -> None:
        if self.token is not None and self.rng.random() < self.loss:
            return
        super()._send(data)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if self.token is not None and self.rng.random() < self.loss:
            return
        super()._dispatch(message)

    def _deliver(self, message: dict[str, Any]) -> None:
        event = message.get("e")
        if isinstance(event, dict) and event.get("type") == "message":
            self.tally.record(str(event.get("text", "")), time.time())
            return
        super()._deliver(message)


def udp_worker(opts: dict[str, Any], port: int, conn: Connection) -> None:
    clients = []
    for i in range(opts["udp_clients"]):
        client = LossyClient("127.0.0.1", port, opts["loss"], seed=i)
        client.join(f"u{i}", timeout=30)
        clients.append(client)
    conn.send("ready")
    expected = opts["senders"] * opts["messages"]
    deadline = time.monotonic() + opts["timeout"]
    conn.recv()  # go
    while time.monotonic() < deadline and any(c.tally.count < expected for c in clients):
        time.sleep(0.05)
    conn.send(report(clients, [c.tally for c in clients], expected))
    for client in clients:
        client.close()


def report(clients: list[Any], tallies: list[Tally], expected: int) -> dict[str, Any]:
    latencies = sorted(x for t in tallies for x in t.latencies)
    return {
        "received": sum(t.count for t in tallies),
        "expected": expected * len(tallies),
        "out_of_order_or_doubled": sum(t.bad for t in tallies),
        "last_at": max((t.last_at for t in tallies), default=0.0),
        "latencies": latencies,
        "client_retransmissions": sum(getattr(c, "retransmissions", 0) for c in clients),
    }


class TcpReceiver:
    def __init__(self, port: int, nick: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(f"{nick}\n".encode())
        self.buffer = b""
        self.tally = Tally()
        self.welcomed = False
        self.sock.setblocking(False)

    def feed(self, now: float) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\r\n")
        for line in lines:
            self.welcomed = self.welcomed or line.startswith(b"*** Welcome, ")
            nick, sep, text = line.decode("utf-8", "replace").partition(": ")
            if sep and nick.startswith("s"):
                self.tally.record(text, now)


def tcp_worker(opts: dict[str, Any], port: int, conn: Connection) -> None:
    receivers = [TcpReceiver(port, f"t{i}") for i in range(opts["tcp_clients"])]
    senders = [socket.create_connection(("127.0.0.1", port)) for _ in range(opts["senders"])]
    for i, sender in enumerate(senders):
        sender.sendall(f"s{i}\n".encode())
    selector = selectors.DefaultSelector()
    for receiver in receivers:
        selector.register(receiver.sock, selectors.EVENT_READ, receiver)
    for sender in senders:  # each sender joined: its welcome came
        sender.settimeout(30)
        seen = b""
        while b"*** Welcome, " not in seen:
            chunk = sender.recv(65536)
            if not chunk:
                raise ConnectionError(f"a sender was refused: {seen[-200:]!r}")
            seen += chunk
    deadline = time.monotonic() + 30
    while not all(r.welcomed for r in receivers):  # and every receiver
        if time.monotonic() > deadline:
            raise TimeoutError("not every TCP receiver was welcomed within 30 s")
        for key, _ in selector.select(0.05):
            key.data.feed(time.time())
    for receiver in receivers:
        receiver.tally = Tally()
    conn.send("ready")
    conn.recv()  # go
    expected = opts["senders"] * opts["messages"]
    start = time.time() + 0.2
    interval = 1.0 / opts["rate"]
    total = expected
    sent = 0
    deadline = time.monotonic() + opts["timeout"]
    while time.monotonic() < deadline:
        now = time.time()
        while sent < total and start + sent * interval <= now:
            who, seq = sent % len(senders), sent // len(senders)
            due = start + sent * interval
            senders[who].sendall(f"b {who} {seq} {due:.6f}\n".encode())
            sent += 1
        for key, _ in selector.select(0.002):
            key.data.feed(time.time())
        if sent == total and all(r.tally.count >= expected for r in receivers):
            break
    result = report(receivers, [r.tally for r in receivers], expected)
    result["start"] = start
    conn.send(result)
    for sock in senders:
        sock.close()
    for receiver in receivers:
        receiver.sock.close()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))] * 1000


def run(opts: dict[str, Any]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    server_end, here = ctx.Pipe()
    server = ctx.Process(target=serve, args=(server_end,), daemon=True)
    server.start()
    tcp_port, udp_port = here.recv()
    pipes = {}
    procs = []
    for name, target, port in (("udp", udp_worker, udp_port), ("tcp", tcp_worker, tcp_port)):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=target, args=(opts, port, theirs), daemon=True)
        proc.start()
        procs.append(proc)
        pipes[name] = mine
    for pipe in pipes.values():
        assert pipe.recv() == "ready"
    for pipe in pipes.values():
        pipe.send("go")
    results = {name: pipe.recv() for name, pipe in pipes.items()}
    here.send("stop")
    server_stats = here.recv()
    for proc in [*procs, server]:
        proc.join(10)
    start = results["tcp"]["start"]
    out: dict[str, Any] = {"options": opts, "server_udp": server_stats}
    for name, r in results.items():
        span = max(1e-9, r["last_at"] - start)
        out[name] = {
            "received": r["received"],
            "expected": r["expected"],
            "out_of_order_or_doubled": r["out_of_order_or_doubled"],
            "deliveries_per_s": round(r["received"] / span),
            "p50_ms": round(pct(r["latencies"], 0.50), 1),
            "p99_ms": round(pct(r["latencies"], 0.99), 1),
            "max_ms": round(pct(r["latencies"], 1.0), 1),
        }
    out["udp"]["client_retransmissions"] = results["udp"]["client_retransmissions"]
    out["udp"]["server_retransmissions"] = server_stats.get("retransmissions", 0)
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.udp", description=__doc__.split("\n")[0])
    p.add_argument("--udp-clients", type=int, default=100)
    p.add_argument("--tcp-clients", type=int, default=100)
    p.add_argument("--senders", type=int, default=5, help="TCP clients that send")
    p.add_argument("--messages", type=int, default=200, help="messages per sender")
    p.add_argument("--rate", type=float, default=100, help="messages per second, all senders")
    p.add_argument("--loss", type=float, default=0.0, help="share of UDP datagrams dropped")
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    opts = {k: v for k, v in vars(args).items() if k != "json"}
    result = run(opts)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"options: {opts}")
    for name in ("tcp", "udp"):
        r = result[name]
        extra = ""
        if name == "udp":
            extra = (
                f", retransmissions: server {r['server_retransmissions']},"
                f" clients {r['client_retransmissions']}"
            )
        print(
            f"{name}: {r['received']}/{r['expected']} delivered"
            f" ({r['out_of_order_or_doubled']} out of order or doubled),"
            f" {r['deliveries_per_s']}/s, latency p50 {r['p50_ms']} ms,"
            f" p99 {r['p99_ms']} ms, max {r['max_ms']} ms{extra}"
        )
    print(f"server UDP counters: {result['server_udp']}")


if __name__ == "__main__":
    main()
