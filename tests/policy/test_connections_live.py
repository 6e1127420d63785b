"""A full server, a short file limit and slow headers: newcomers are told, nobody
already connected notices, and nothing prints a traceback."""

from __future__ import annotations

import resource
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import (
    TcpClient,
    http_request,
    wait_until,
    websocket_upgrade_headers,
)
from tests.support.processes import ServerProcess

MakeChat = Callable[..., RunningChat]
WEBCHAT = str(Path(sys.executable).parent / "webchat")


def test_a_full_server_tells_newcomers_and_the_others_go_on(
    make_chat: MakeChat, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(max_connections=3, max_connections_per_ip=0)
    alice = chat.tcp("alice")
    bob = chat.ws("bob")  # its connection to the web port holds a slot too
    carol = chat.tcp("carol")
    wait_until(lambda: chat.runtime.gate.open == 3)
    late = TcpClient(chat.tcp_port)
    assert late.read_until_closed() == (
        b"*** error: the server is full (3 connections); try again in a minute\r\n"
    )
    reply = http_request(
        chat.web.server_port, "GET", "/ws", websocket_upgrade_headers({"Origin": chat.url})
    )
    assert reply.status == 503 and reply.headers["retry-after"] == "5"
    assert b"The server is full" in reply.body
    alice.line("still here")
    bob.expect(lambda e: e.get("text") == "still here")
    carol.line("/quit")
    carol.read_until_closed()
    wait_until(lambda: chat.runtime.gate.open == 2)
    chat.tcp("dave").line("in at last")
    bob.expect(lambda e: e.get("text") == "in at last")
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_the_address_limit_covers_plain_http_connections(make_chat: MakeChat) -> None:
    chat = make_chat(max_connections_per_ip=2)
    idle = [socket.create_connection(("127.0.0.1", chat.web.server_port)) for _ in range(2)]
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 2)
    reply = http_request(chat.web.server_port, "GET", "/")
    assert reply.status == 429 and b"too many connections from 127.0.0.1" in reply.body.lower()
    for sock in idle:
        sock.close()
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 0)
    assert http_request(chat.web.server_port, "GET", "/").status == 200


def test_headers_must_arrive_within_the_header_timeout(make_chat: MakeChat) -> None:
    chat = make_chat(header_timeout=1.0)
    silent = socket.create_connection(("127.0.0.1", chat.web.server_port))
    silent.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    trickle = socket.create_connection(("127.0.0.1", chat.web.server_port))
    started = time.monotonic()
    trickle.settimeout(0.2)
    closed = False
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:  # one byte at a time
        try:
            trickle.sendall(bytes([byte]))
            if trickle.recv(1) == b"":
                closed = True
                break
        except TimeoutError:
            continue
        except OSError:
            closed = True
            break
    assert closed and time.monotonic() - started < 5, "a trickle of header bytes was not cut"
    silent.settimeout(5)
    assert silent.recv(100) == b""  # cut, not answered
    assert http_request(chat.web.server_port, "GET", "/healthz").status == 200


def test_a_chat_over_the_web_socket_outlives_the_header_timeout(make_chat: MakeChat) -> None:
    chat = make_chat(header_timeout=0.5)
    quiet = chat.ws("quiet")
    talker = chat.tcp("talker")
    deadline = time.monotonic() + 2.0  # four header timeouts of silence on the socket
    wait_until(lambda: time.monotonic() >= deadline, 5, "the silence")
    talker.line("are you still there?")
    quiet.expect(lambda e: e.get("text") == "are you still there?")


def _low_file_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_under_ulimit_256_the_server_derives_its_limit_and_refuses_cleanly() -> None:
    server = ServerProcess(
        [WEBCHAT, "--web-port", "0", "--tcp-port", "0", "--max-connections-per-ip", "0"],
        preexec_fn=_low_file_limit,
    )
    try:
        assert server.wait_for(r"open-files limit is (\d+)")[1] == "256"
        total = int(server.wait_for(r"connections: at most (\d+) in all")[1])
        assert total == 192  # 256 minus a reserve of a quarter
        web_port = int(server.wait_for(r"Browser:\s+http://localhost:(\d+)/")[1])
        tcp_port = int(server.wait_for(r"Terminal: nc localhost (\d+)")[1])
        clients: list[TcpClient] = []
        refused = 0
        for i in range(total + 40):
            client = TcpClient(tcp_port, source=f"127.0.0.{2 + i % 50}")
            first = client.greeting()
            if first == "Enter your nickname: ":
                clients.append(client)
            else:
                assert "the server is full" in first
                refused += 1
                client.close()
        assert len(clients) == total and refused == 40
        clients[0].line("first")
        clients[0].expect("Welcome")
        reply = http_request(web_port, "GET", "/healthz")
        assert reply.status == 503  # a web connection is one more: the server is full
        clients[-1].close()
        wait_until(lambda: http_request(web_port, "GET", "/healthz").status == 200)
        for client in clients:
            client.close()
    finally:
        server.stop()
    assert "Traceback" not in server.output()


def test_running_out_of_descriptors_pauses_accepting_without_spinning() -> None:
    server = ServerProcess(
        [
            WEBCHAT,
            "--web-port",
            "0",
            "--tcp-port",
            "0",
            "--max-connections-per-ip",
            "0",
            "--max-connections",
            "5000",
        ],
        preexec_fn=_low_file_limit,
    )
    try:
        server.wait_for(r"max-connections is 5000 but the open-files limit \(256\)")
        tcp_port = int(server.wait_for(r"Terminal: nc localhost (\d+)")[1])
        held = [socket.create_connection(("127.0.0.1", tcp_port)) for _ in range(300)]
        server.wait_for(r"cannot accept connections: Too many open files")
        cpu_before = _cpu_seconds(server.proc.pid)
        wall = time.monotonic()
        wait_until(lambda: time.monotonic() - wall >= 2.0, 5, "two seconds")
        used = _cpu_seconds(server.proc.pid) - cpu_before
        assert used < 0.5, f"the server used {used:.2f} s of CPU in 2 s while out of files"
        for sock in held:
            sock.close()
        late = TcpClient(tcp_port)  # the accept loop is alive: served once files are free
        late.read_exact(b"Enter your nickname: ", timeout=10)
        late.close()
    finally:
        server.stop()
    assert "Traceback" not in server.output()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_three_hundred_half_sent_requests_stop_neither_the_page_nor_a_newcomer(
    make_chat: MakeChat,
) -> None:
    chat = make_chat(max_connections_per_ip=0)
    port = chat.web.server_port
    holders = []
    for i in range(300):  # from 50 addresses, as a small botnet would
        sock = socket.create_connection(
            ("127.0.0.1", port), source_address=(f"127.0.1.{i % 50 + 1}", 0)
        )
        sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        holders.append(sock)
    wait_until(lambda: chat.runtime.gate.open >= 300)
    assert http_request(port, "GET", "/").status == 200
    newcomer = chat.ws("newcomer")
    newcomer.say("made it")
    newcomer.expect(lambda e: e.get("text") == "made it")
    wait_until(lambda: chat.runtime.gate.open <= 1, 15, "the header deadline cutting them")
    for sock in holders:
        sock.close()
