"""The floor under a fan-out: how long bare sends to N loopback sockets take, no server.

    .venv/bin/python -m benchmarks.send_floor                      # 10,000 sockets, CPU 0
    .venv/bin/python -m benchmarks.send_floor --sockets 9000 --threads 2 --sender-cpus 0,1
    .venv/bin/python -m benchmarks.send_floor --gap 0.3          # rounds apart, as a chat's

One process accepts N TCP connections on 127.0.0.1 and, in each round, sends 64 bytes
to every one of them, non-blocking, from ``--threads`` threads (each its share); a reader
process pinned to ``--reader-cpu`` drains them all with epoll, as the load generator
does. The time of a round is what the last socket of a fan-out waits on this machine
before any chat logic: whatever a server does per message comes on top of it.

``--gap`` pauses between rounds. After more than the retransmission timeout (at least
200 ms) with nothing received, a TCP receiver acknowledges the next segments at once
("quick ACKs"; the first 16 of a connection are quick too). On loopback the receiver's
work runs on the sender's core, inside its send: making that ACK and taking it back in.
Back-to-back rounds leave quick ACKs after the 16th, and get cheaper; a chat's messages
to an idle room, half a second apart, never do.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import select
import socket
import statistics
import threading
import time
from multiprocessing.connection import Connection

from benchmarks.servers import parse_cpus, raise_nofile

PAYLOAD = b"x" * 63 + b"\n"


def drain(port: int, sockets: int, rounds: int, cpu: int, done: Connection) -> None:
    """The reader: connect every socket, say so, then read each round whole and say so;
    the next round is sent only then, so each meets idle sockets, as a chat's messages do."""
    os.sched_setaffinity(0, {cpu})
    raise_nofile()
    conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(sockets)]
    poller = select.epoll()
    by_fd = {}
    for conn in conns:
        conn.setblocking(False)
        poller.register(conn.fileno(), select.EPOLLIN)
        by_fd[conn.fileno()] = conn
    done.send("connected")
    per_round = sockets * len(PAYLOAD)
    for _ in range(rounds):
        owed = per_round
        while owed > 0:
            for fd, _events in poller.poll(1):
                owed -= len(by_fd[fd].recv(65536))
        done.send("drained")


def send_round(shares: list[list[socket.socket]]) -> float:
    """One message to every socket, each share from its own thread; the seconds it took."""

    def send_all(share: list[socket.socket]) -> None:
        for conn in share:
            conn.send(PAYLOAD)

    if len(shares) == 1:
        began = time.perf_counter()
        send_all(shares[0])
        return time.perf_counter() - began
    start = threading.Barrier(len(shares) + 1)

    def run(share: list[socket.socket]) -> None:
        start.wait()
        send_all(share)

    threads = [threading.Thread(target=run, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=1, help="sending threads")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sender-cpus", default="0", help="as taskset -c")
    parser.add_argument("--reader-cpu", type=int, default=1)
    parser.add_argument(
        "--gap", type=float, default=0.0, help="seconds between rounds (quick ACKs after 0.2)"
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, parse_cpus(args.sender_cpus))
    raise_nofile()
    with socket.create_server(("127.0.0.1", 0), backlog=args.sockets) as listener:
        told, done = mp.get_context("fork").Pipe(duplex=False)
        reader = mp.get_context("fork").Process(
            target=drain,
            args=(listener.getsockname()[1], args.sockets, args.rounds, args.reader_cpu, done),
        )
        reader.start()
        conns = []
        for _ in range(args.sockets):
            conn, _address = listener.accept()
            conn.setblocking(False)
            conns.append(conn)
        assert told.recv() == "connected"
        shares = [conns[i :: args.threads] for i in range(args.threads)]
        rounds = []
        for _ in range(args.rounds):
            rounds.append(send_round(shares))
            assert told.recv() == "drained"  # every socket is idle again
            time.sleep(args.gap)
        reader.join()
    ms = sorted(r * 1e3 for r in rounds)
    print(
        f"{args.sockets:,} sockets, {args.threads} thread(s) on CPUs {args.sender_cpus},"
        f" {args.gap:g} s between rounds:"
        f" a round took median {statistics.median(ms):.1f} ms, min {ms[0]:.1f},"
        f" p90 {ms[int(0.9 * (len(ms) - 1))]:.1f}"
        f" ({statistics.median(ms) * 1e3 / args.sockets:.1f} µs a send)"
    )


if __name__ == "__main__":
    main()
