"""How the server holds up when connections outnumber what it can take.

    python -m benchmarks.connections files [--clients 1500] [--soft 1024] [--hard 4096]
    python -m benchmarks.connections slowloris [--holders 300]
    (either with --checkout DIR to measure another checkout of webchat, e.g. an older commit)

``files`` starts ``webchat`` with the given open-files limits and opens ``--clients``
TCP connections from 50 loopback addresses, then counts how many got the nickname
prompt, how many were told the server is full, and how many heard nothing within
5 s; how long ``/healthz`` took meanwhile; and the tracebacks in the server's log.

``slowloris`` opens ``--holders`` connections to the web port from 50 loopback
addresses, each sending half a request and then nothing, and while they hang
times a page load and a WebSocket join; then counts the server's threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import selectors
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from simple_websocket import Client

from tests.support.processes import ServerProcess

PROMPT = b"Enter your nickname: "


def start(checkout: str | None, limits: tuple[int, int] | None, *flags: str) -> ServerProcess:
    env = {"PYTHONPATH": checkout} if checkout else {}

    def lower() -> None:
        if limits is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)

    argv = [sys.executable, "-m", "webchat", "--web-port", "0", "--tcp-port", "0", *flags]
    return ServerProcess(argv, cwd=checkout or Path.cwd(), env=env, preexec_fn=lower)


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
    server = start(args.checkout, (args.soft, args.hard), "--max-connections-per-ip", "0")
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
    server = start(args.checkout, None, "--max-connections-per-ip", "0")
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", help="another webchat checkout to measure")
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("files")
    f.add_argument("--clients", type=int, default=1500)
    f.add_argument("--soft", type=int, default=1024)
    f.add_argument("--hard", type=int, default=4096)
    s = sub.add_parser("slowloris")
    s.add_argument("--holders", type=int, default=300)
    args = parser.parse_args()
    {"files": files, "slowloris": slowloris}[args.what](args)


if __name__ == "__main__":
    main()
