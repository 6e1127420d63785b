"""The terminal client: run as a real process against a real server, and in-process."""

from __future__ import annotations

import io
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.chat import RunningChat
from tests.support.client_process import REPO, ChunkReader, ClientProcess
from tests.support.clients import DEFAULT_TIMEOUT
from webchat.client import (
    EXIT_INTERRUPTED,
    EXIT_LOST,
    EXIT_QUIT,
    EXIT_USAGE,
    PROMPT,
    ChatClient,
    Console,
    ServerText,
    is_quit,
    main,
)


@pytest.fixture
def run_client() -> Iterator[Callable[[int], ClientProcess]]:
    started: list[ClientProcess] = []

    def start(port: int) -> ClientProcess:
        client = ClientProcess(["127.0.0.1", str(port)])
        started.append(client)
        return client

    yield start
    for client in started:
        client.stop()


def closed_port() -> int:
    """A port nothing listens on: bound once by us, then released."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# The real client process against the real server.


def test_shows_the_prompt_before_any_newline(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.out.expect(PROMPT)
    assert client.out.text == PROMPT


def test_message_reaches_tcp_and_websocket_peers(chat: RunningChat, run_client) -> None:
    bob = chat.tcp("bob")
    carol = chat.ws("carol")
    client = run_client(chat.tcp_port)
    client.join("alice")
    bob.expect("alice joined")
    client.type("hello, everyone")
    assert bob.expect("alice:") == "alice: hello, everyone"
    event = carol.expect(lambda e: e.get("type") == "message" and e.get("nick") == "alice")
    assert event["text"] == "hello, everyone"


def test_prints_peer_messages_with_plain_newlines(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.join("alice")
    bob = chat.tcp("bob")
    carol = chat.ws("carol")
    client.out.expect("carol joined")
    bob.line("hi alice")
    assert client.out.expect("bob: ") == "bob: hi alice"
    carol.say("hello from the browser")
    assert client.out.expect("carol: ") == "carol: hello from the browser"
    assert "\r" not in client.out.text


def test_many_lines_arrive_whole_and_in_order(unlimited_chat: RunningChat, run_client) -> None:
    chat = unlimited_chat
    client = run_client(chat.tcp_port)
    client.join("alice")
    bob = chat.tcp("bob")
    client.out.expect("bob joined")
    bob.send("".join(f"line {i:04d} {'x' * 50}\r\n" for i in range(300)))
    client.out.expect("bob: line 0299")
    shown = [line for line in client.out.text.split("\n") if line.startswith("bob: line")]
    assert shown == [f"bob: line {i:04d} {'x' * 50}" for i in range(300)]


def test_multibyte_utf8_round_trips(chat: RunningChat, run_client) -> None:
    bob = chat.tcp("bob")
    carol = chat.ws("carol")
    client = run_client(chat.tcp_port)
    client.join("алиса")
    client.type("привет 👋")
    assert bob.expect("алиса:") == "алиса: привет 👋"
    assert carol.expect("message")["text"] == "привет 👋"
    bob.line("ёжик 🦔 — ok")
    assert client.out.expect("bob: ") == "bob: ёжик 🦔 — ok"


def test_quit_command_exits_0(chat: RunningChat, run_client) -> None:
    bob = chat.tcp("bob")
    client = run_client(chat.tcp_port)
    client.join("alice")
    client.type("/quit see you")
    client.out.expect("*** bye (see you)")
    assert client.wait() == EXIT_QUIT
    assert bob.expect("alice left") == "*** alice left (see you)"
    assert client.err.read_to_end() == ""


def test_end_of_input_quits_with_0_and_peer_sees_leave(chat: RunningChat, run_client) -> None:
    bob = chat.tcp("bob")
    client = run_client(chat.tcp_port)
    client.join("alice")
    client.close_stdin()
    assert client.wait() == EXIT_QUIT
    assert bob.expect("alice left") == "*** alice left"
    assert "*** bye" in client.out.read_to_end()
    assert client.err.read_to_end() == ""


def test_end_of_input_at_the_prompt_sends_no_nickname(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.out.expect(PROMPT)
    client.close_stdin()
    assert client.wait() == EXIT_QUIT
    assert client.out.read_to_end() == PROMPT + "\n"
    assert chat.runtime.hub.people.count() == 0


def test_quit_typed_at_the_prompt_is_not_a_nickname(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.out.expect(PROMPT)
    client.type("/quit")
    assert client.wait() == EXIT_QUIT
    assert "error" not in client.out.read_to_end()


def test_piped_input_is_sent_then_quits(chat: RunningChat, run_client) -> None:
    """Input that ends before the welcome arrives still joins, speaks and says /quit."""
    bob = chat.tcp("bob")
    client = run_client(chat.tcp_port)
    client.type("alice")
    client.type("one message")
    client.close_stdin()
    assert client.wait() == EXIT_QUIT
    assert bob.expect("alice:") == "alice: one message"
    assert bob.expect("alice left") == "*** alice left"


def test_server_dropping_the_connection_exits_1(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.join("alice")
    session = chat.runtime.hub.people.find("alice")
    assert session is not None
    session.transport.abort()
    assert client.wait() == EXIT_LOST
    assert "webchat-client: the server closed the connection" in client.err.read_to_end()


def test_server_shutting_down_exits_1_after_its_last_words(chat: RunningChat, run_client) -> None:
    client = run_client(chat.tcp_port)
    client.join("alice")
    chat.runtime.close()
    assert client.wait() == EXIT_LOST
    assert client.out.read_to_end().endswith("*** disconnected: server shutting down\n")
    assert "the server closed the connection" in client.err.read_to_end()


def test_closed_port_exits_2(run_client) -> None:
    port = closed_port()
    client = run_client(port)
    assert client.wait() == EXIT_USAGE
    err = client.err.read_to_end()
    assert f"webchat-client: cannot connect to 127.0.0.1:{port}: " in err
    assert client.out.read_to_end() == ""


def test_bad_port_argument_exits_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "webchat.client", "localhost", "http"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEFAULT_TIMEOUT,
    )
    assert proc.returncode == EXIT_USAGE
    assert "usage: webchat-client" in proc.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT is POSIX")
def test_ctrl_c_quits_and_exits_130(chat: RunningChat, run_client) -> None:
    bob = chat.tcp("bob")
    client = run_client(chat.tcp_port)
    client.join("alice")
    bob.expect("alice joined")
    client.proc.send_signal(signal.SIGINT)
    assert client.wait() == EXIT_INTERRUPTED
    assert bob.expect("alice left") == "*** alice left"


# main() in this process.


def test_main_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "exit status:" in out
    for code in ("0", "1", "2", "130"):
        assert f"\n  {code} " in out
    assert "default 8080" in out and "default localhost" in out


@pytest.mark.parametrize("argv", [["localhost", "0"], ["localhost", "x"], ["a", "1", "extra"]])
def test_main_usage_errors_return_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == EXIT_USAGE
    assert "usage: webchat-client" in capsys.readouterr().err


def test_main_cannot_connect_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    port = closed_port()
    assert main(["127.0.0.1", str(port)]) == EXIT_USAGE
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().err


def test_main_chats_from_piped_input(
    chat: RunningChat, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bob = chat.tcp("bob")
    bob.expect("bob joined")  # live, so in the log: alice's replay will hold it
    stdin_path = tmp_path / "in.txt"
    stdin_path.write_text("alice\nhello from main\n", encoding="utf-8")
    stdout_path = tmp_path / "out.txt"
    with (
        open(stdin_path, encoding="utf-8") as stdin,
        open(stdout_path, "w", encoding="utf-8") as stdout,
    ):
        monkeypatch.setattr(sys, "stdin", stdin)
        monkeypatch.setattr(sys, "stdout", stdout)
        assert main(["127.0.0.1", str(chat.tcp_port)]) == EXIT_QUIT
    assert bob.expect("alice:") == "alice: hello from main"
    assert bob.expect("alice left") == "*** alice left"
    out = stdout_path.read_text(encoding="utf-8")
    assert out.startswith(PROMPT + "*** History: 1 earlier event ")  # bob's join
    assert "\n*** Welcome, alice!" in out
    assert out.endswith("*** bye\n")


# ChatClient against a hand-driven fake server, to control how the stream is cut.


class FakeServer:
    """One accepted connection that the test writes to byte by byte."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        self.listener.settimeout(DEFAULT_TIMEOUT)
        self.conn, _ = self.listener.accept()
        self.conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.conn

    def close(self) -> None:
        for s in (self.conn, self.listener):
            if s is not None:
                s.close()


class InProcessClient:
    """ChatClient on pipes, run in a thread; its output and exit code are collected."""

    def __init__(self, port: int) -> None:
        self.in_r, self.in_w = os.pipe()
        out_r, self.out_w = os.pipe()
        self.out = ChunkReader(lambda: os.read(out_r, 65536))
        self.err = io.StringIO()
        sock = socket.create_connection(("127.0.0.1", port), timeout=DEFAULT_TIMEOUT)
        sock.settimeout(None)
        self.client = ChatClient(sock, Console(self.in_r, self.out_w), stderr=self.err)
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.code = self.client.run()
        finally:
            os.close(self.out_w)

    def close_stdin(self) -> None:
        os.close(self.in_w)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int | None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the client did not finish"
        return self.code


@pytest.fixture
def fake_server() -> Iterator[FakeServer]:
    server = FakeServer()
    yield server
    server.close()


def test_stream_cut_inside_characters_and_crlf(fake_server: FakeServer) -> None:
    client = InProcessClient(fake_server.port)
    conn = fake_server.accept()
    conn.sendall(PROMPT.encode())
    client.out.expect(PROMPT)
    payload = "*** Welcome, x! Hi.\r\nпривет 👋\r\n".encode()
    for i in range(len(payload)):  # one byte per segment: every possible cut
        conn.sendall(payload[i : i + 1])
    client.out.expect("привет 👋\n")
    conn.close()
    assert client.wait() == EXIT_LOST
    assert client.out.read_to_end() == PROMPT + "*** Welcome, x! Hi.\nпривет 👋\n"
    assert "the server closed the connection" in client.err.getvalue()
    client.close_stdin()


def test_connection_reset_exits_1(fake_server: FakeServer) -> None:
    client = InProcessClient(fake_server.port)
    conn = fake_server.accept()
    conn.sendall(PROMPT.encode())
    client.out.expect(PROMPT)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # with a zero linger: a reset, not an orderly close
    assert client.wait() == EXIT_LOST
    assert "webchat-client: " in client.err.getvalue()
    client.close_stdin()


def test_end_of_input_before_prompt_sends_nothing(fake_server: FakeServer) -> None:
    client = InProcessClient(fake_server.port)
    conn = fake_server.accept()
    client.close_stdin()
    conn.sendall(PROMPT.encode())
    conn.settimeout(DEFAULT_TIMEOUT)
    assert conn.recv(100) == b""  # the client's side shut down with nothing sent
    conn.close()
    assert client.wait() == EXIT_QUIT
    assert client.err.getvalue() == ""


# Pieces.


def test_server_text_holds_back_split_sequences() -> None:
    data = "a\r\nб👋\r\n\r\n".encode()
    decoder = ServerText()
    text = "".join(decoder.feed(data[i : i + 1]) for i in range(len(data)))
    assert text + decoder.feed(b"", final=True) == "a\nб👋\n\n"
    assert ServerText().feed(b"\xff ok\r", final=True) == "\ufffd ok\r"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("/quit", True),
        ("/QUIT bye now", True),
        ("/quit   ", True),
        ("/quitter", False),
        ("//quit", False),
        (" /quit", False),
        ("quit", False),
        ("/msg bob /quit", False),
    ],
)
def test_is_quit_matches_the_server(line: str, expected: bool) -> None:
    assert is_quit(line) is expected


def test_console_lines_keep_characters_split_across_reads() -> None:
    r, w = os.pipe()
    console = Console(r, w)
    data = "один\r\nдва 👋\nlast".encode()
    lines = console.lines()
    os.write(w, data[:5])
    os.write(w, data[5:12])
    assert next(lines) == "один"
    os.write(w, data[12:])
    assert next(lines) == "два 👋"
    os.close(w)
    assert list(lines) == ["last"]
    os.close(r)
