"""Writer threads exist only while there is work: idle people cost their reader thread.

Real servers and sockets: idle connections end up with no writer thread, a socket
that backs up gets one (and loses it again once drained), idle browsers are still
pinged, and goodbyes still arrive.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.support.chat import RunningChat
from tests.support.clients import RawWsClient, TcpClient, wait_until
from tests.support.hub import Recorder
from webchat.core.events import Audience, Event, make_packet
from webchat.core.fanout import Fanout
from webchat.core.session import Session
from webchat.core.writer import WRITER_LINGER

TIMEOUT = 5.0 + WRITER_LINGER
OP_PING, OP_PONG = 0x9, 0xA
MESSAGES = 3000  # of 1.9 KB: 5.7 MB, more than the 4 MB a loopback socket buffers


def read_lines(client: TcpClient, count: int) -> list[bytes]:
    """The next ``count`` chat lines, read in big chunks (megabytes of them)."""
    data = bytearray(client.buffer)
    lines = data.count(b"\n")  # every line ends in CRLF, and no text holds a bare LF
    client.sock.settimeout(TIMEOUT)
    while lines < count:
        chunk = client.sock.recv(1 << 20)
        assert chunk, "the connection ended early"
        data += chunk
        lines += chunk.count(b"\n")
    return [bytes(line) for line in data.split(b"\r\n")[:count]]


def writer_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("writer-")]


def test_idle_connections_keep_no_writer_thread(make_chat: Callable[..., RunningChat]) -> None:
    chat = make_chat(rate_per_second=0)
    before = threading.active_count()
    terminals = [chat.tcp(f"t{i}") for i in range(10)]
    browsers = [RawWsClient(chat.web.server_port) for _ in range(10)]  # no thread of its own
    try:
        for i, client in enumerate(browsers):
            client.join(f"w{i}")
        terminals[0].line("hello, everyone")
        for client in browsers:
            client.expect(lambda e: e.get("text") == "hello, everyone")
        wait_until(lambda: writer_threads() == [], TIMEOUT, "idle writers to end")
        # One thread per idle connection: the one reading it.
        assert threading.active_count() - before <= len(terminals) + len(browsers)
        terminals[1].line("still there?")  # direct sends need no thread
        for terminal in terminals[2:]:
            terminal.expect("t1: still there?")
    finally:
        for c in terminals:
            c.close()
        for b in browsers:
            b.close()


def test_a_backed_up_socket_gets_a_writer_until_it_drains(
    make_chat: Callable[..., RunningChat],
) -> None:
    chat = make_chat(rate_per_second=0, outbox_max_bytes=64 * 1024 * 1024)
    slow = TcpClient(chat.tcp_port)
    slow.join("slow")
    talker = chat.tcp("talker")
    try:
        wait_until(lambda: writer_threads() == [], TIMEOUT, "idle writers to end")
        for i in range(MESSAGES):  # far more than the socket buffers hold
            talker.line(f"{i:04d} " + "x" * 1900)
        wait_until(lambda: writer_threads() != [], TIMEOUT, "a writer for the backed-up socket")
        # Reading now: everything arrives, in order, after its own join and the talker's.
        received = read_lines(slow, MESSAGES + 2)
        assert received[:2] == [b"*** slow joined (terminal)", b"*** talker joined (terminal)"]
        assert [line[8:12] for line in received[2:]] == [b"%04d" % i for i in range(MESSAGES)]
        wait_until(lambda: writer_threads() == [], TIMEOUT, "the writer to end once drained")
    finally:
        slow.close()
        talker.close()


def test_an_idle_browser_is_still_pinged_and_closed_when_it_never_answers(
    make_chat: Callable[..., RunningChat],
) -> None:
    chat = make_chat(ping_interval=0.5)
    client = RawWsClient(chat.web.server_port)
    watcher = chat.tcp("watcher")
    try:
        client.join("quiet")
        frame = client.read_frame(TIMEOUT)
        while frame is not None and frame[0] != OP_PING:
            frame = client.read_frame(TIMEOUT)
        assert frame == (OP_PING, b"")
        # Not answering: the next ping finds the last one unanswered, and closes.
        watcher.expect("*** quiet left (ping timeout: no answer to the last ping)", TIMEOUT)
    finally:
        client.close()
        watcher.close()


def test_an_answered_ping_keeps_an_idle_browser(make_chat: Callable[..., RunningChat]) -> None:
    chat = make_chat(ping_interval=0.3)
    client = RawWsClient(chat.web.server_port)
    try:
        client.join("awake")
        for _ in range(3):
            frame = client.read_frame(TIMEOUT)
            while frame is not None and frame[0] != OP_PING:
                frame = client.read_frame(TIMEOUT)
            assert frame is not None
            client.send_frame(frame[1], opcode=OP_PONG)
        assert chat.runtime.hub.people.find("awake") is not None
    finally:
        client.close()


def test_goodbyes_reach_idle_connections_at_shutdown(
    make_chat: Callable[..., RunningChat],
) -> None:
    chat = make_chat()
    terminal = chat.tcp("term")
    browser = RawWsClient(chat.web.server_port)
    browser.join("page")
    wait_until(lambda: writer_threads() == [], TIMEOUT, "idle writers to end")
    chat.stop()
    assert terminal.read_until_closed().endswith(b"*** disconnected: server shutting down\r\n")
    browser.read_until_closed()
    assert browser.close_code == 1001


def test_the_ring_wakes_a_session_it_needs_slots_from() -> None:
    """The ring is handed to writers only when a batch may be for them (Delivery), so a
    session can be behind with no thread and no ring. When the ring needs its slots, it
    must wake it (and wait for it), not close it as too slow: it never was."""
    lock = threading.Lock()
    idle = Session(1, "idle", "idle", Recorder())
    woken: list[Session] = []
    fanout: Fanout

    def wake(session: Session) -> None:  # what its writer thread would do: take it all
        woken.append(session)
        threading.Thread(target=fanout.take, args=(session,), daemon=True).start()

    fanout = Fanout(lock, 8, 5.0, {idle.id: idle}, lambda s: None, lambda s: None, wake)
    packets = [make_packet(Event("system", text=f"p{i}"), Audience.only(2)) for i in range(12)]
    with lock:
        fanout.append_locked(packets[:4])  # idle takes nothing: none was for it
        fanout.append_locked(packets[4:])  # needs idle's slots
    assert woken == [idle]
    assert not idle.closing, idle.close_reason
    assert idle.cursor >= 4
