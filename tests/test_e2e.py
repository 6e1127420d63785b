"""End to end: real servers on port 0, real sockets, both transports talking to each other."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from simple_websocket import ConnectionClosed

from tests.support.chat import RunningChat
from tests.support.clients import RawWsClient, TcpClient, WsClient, assert_no_tracebacks, wait_until


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


def test_tcp_to_tcp(chat):
    alice, bob = chat.tcp("alice"), chat.tcp("bob")
    alice.expect("bob joined (terminal)")
    alice.line("hello bob")
    assert bob.expect("alice:") == "alice: hello bob"
    bob.line("hi alice")
    assert alice.expect("bob:") == "bob: hi alice"


def test_websocket_to_websocket(chat):
    alice, bob = chat.ws("alice"), chat.ws("bob")
    alice.expect(lambda e: e["type"] == "join" and e["nick"] == "bob")
    alice.say("hello bob")
    got = bob.expect("message")
    assert (got["nick"], got["text"]) == ("alice", "hello bob")
    bob.say("hi alice")
    got = alice.expect(lambda e: e["type"] == "message" and e["nick"] == "bob")
    assert got["text"] == "hi alice"


def test_tcp_to_websocket(chat):
    term, page = chat.tcp("term"), chat.ws("page")
    term.expect("page joined (browser)")
    term.line("from the terminal")
    got = page.expect("message")
    assert (got["nick"], got["text"]) == ("term", "from the terminal")
    assert isinstance(got["id"], int) and got["ts"].endswith("Z")


def test_websocket_to_tcp(chat):
    page, term = chat.ws("page"), chat.tcp("term")
    page.expect(lambda e: e["type"] == "join" and e["nick"] == "term" and e["via"] == "tcp")
    page.say("from the browser")
    assert term.expect("page:") == "page: from the browser"


def test_leave_of_either_kind_reaches_the_other(chat):
    term, page = chat.tcp("term"), chat.ws("page")
    term.expect("page joined")
    page.close()
    assert term.expect("page left").startswith("*** page left")
    observer = chat.ws("observer")
    term.line("/quit done here")
    left = observer.expect("leave")
    assert (left["nick"], left["text"]) == ("term", "done here")


def test_nick_collision_across_transports_refuses_the_second(chat):
    first = chat.tcp("Alice")
    late = chat.ws()
    late.send({"type": "join", "nick": "alice"})
    error = late.expect("error")
    assert error["code"] == "nick_taken" and "taken" in error["text"]
    term = TcpClient(chat.tcp_port)
    term.read_exact(b"Enter your nickname: ")
    term.line("ALICE")
    assert "taken" in term.read_line()
    term.read_exact(b"Enter your nickname: ")
    assert chat.runtime.hub.people.count() == 1
    holder = chat.runtime.hub.people.find("alice")
    assert holder is not None and (holder.nick, holder.via) == ("Alice", "tcp")
    first.line("still here")  # the first Alice is unaffected
    assert chat.ws("witness") and first.expect("witness joined")


def collect_tcp(client: TcpClient, stop_line: str, into: list[str]) -> Callable[[], None]:
    """Read lines in the background until ``stop_line``; returns a join function."""

    def run() -> None:
        into.extend(client.read_until(lambda line: line == stop_line, timeout=60))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return lambda: thread.join(60)


def collect_ws(client: WsClient, stop_text: str, into: list[dict[str, Any]]) -> Callable[[], None]:
    def run() -> None:
        into.extend(
            client.read_until(
                lambda e: e["type"] == "message" and e.get("text") == stop_text, timeout=60
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return lambda: thread.join(60)


def test_fifty_mixed_clients_each_sending_twenty_get_everything_once_in_one_order(make_chat):
    chat: RunningChat = make_chat(rate_per_second=0)
    tcp_nicks = [f"t{i}" for i in range(25)]
    ws_nicks = [f"w{i}" for i in range(25)]
    tcps = {nick: chat.tcp(nick) for nick in tcp_nicks}
    wss = {nick: chat.ws(nick) for nick in ws_nicks}
    announcer = chat.ws("announcer")
    wait_until(lambda: chat.runtime.hub.people.count() == 51)

    tcp_lines: dict[str, list[str]] = {nick: [] for nick in tcps}
    ws_events: dict[str, list[dict[str, Any]]] = {nick: [] for nick in wss}
    joins = [collect_tcp(c, "announcer: done", tcp_lines[n]) for n, c in tcps.items()]
    joins += [collect_ws(c, "done", ws_events[n]) for n, c in wss.items()]

    def send_all(nick: str) -> None:
        for i in range(20):
            text = f"{nick}-{i}"
            if nick in tcps:
                tcps[nick].line(text)
            else:
                wss[nick].say(text)

    senders = [threading.Thread(target=send_all, args=(n,)) for n in tcp_nicks + ws_nicks]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join(60)
    # Each sender's last message, seen by the announcer, means all of theirs are ordered.
    last = {f"{n}-19" for n in tcp_nicks + ws_nicks}

    def all_senders_done(event: dict[str, Any]) -> bool:
        if event["type"] == "message":
            last.discard(event["text"])
        return not last

    announcer.expect(all_senders_done)
    announcer.say("done")
    for join in joins:
        join()

    def plain(events: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        return [(e["id"], e["nick"], e["text"]) for e in events if e["type"] == "message"]

    order = plain(ws_events["w0"])
    assert len(order) == 50 * 20 + 1
    assert [i for i, _, _ in order] == sorted(i for i, _, _ in order)
    assert len({text for _, _, text in order}) == len(order), "a message arrived twice"
    for nick, events in ws_events.items():
        assert plain(events) == order, f"{nick} saw another order"
    for nick, lines in tcp_lines.items():
        messages = [line for line in lines if not line.startswith("***")]
        expected = [f"{who}: {text}" for _, who, text in order if who != nick]
        assert messages == expected, f"{nick} saw another order, a loss or its own echo"


class Collector:
    """Reads one client's messages in the background, so the test can wait on counts."""

    def __init__(self, client: TcpClient | WsClient) -> None:
        self.client = client
        self.texts: list[str] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(EOFError, TimeoutError, OSError, ConnectionClosed):
            while True:
                if isinstance(self.client, TcpClient):
                    line = self.client.read_line(timeout=60)[:-2]
                    if line.startswith("sender: "):
                        self.texts.append(line[len("sender: ") :])
                else:
                    event = self.client.next_event(timeout=60)
                    if event["type"] == "message":
                        self.texts.append(event["text"])

    def wait_for(self, count: int) -> None:
        wait_until(lambda: len(self.texts) >= count, 30, f"{count} messages")


def test_stalled_tcp_and_websocket_readers_are_cut_and_everyone_else_gets_everything(make_chat):
    chat: RunningChat = make_chat(
        outbox_max_events=256, outbox_max_bytes=256 * 1024, close_grace=1.0, rate_per_second=0
    )
    stalled_tcp = TcpClient(chat.tcp_port, rcvbuf=4096)
    stalled_tcp.join("stuck_term")
    stalled_ws = RawWsClient(chat.web.server_port, rcvbuf=4096)
    stalled_ws.join("stuck_page")
    watcher = chat.ws("watcher")
    sender = chat.tcp("sender")
    readers = [Collector(chat.tcp("reader_t")), Collector(chat.ws("reader_w"))]
    filler = "x" * 1500
    sent = 0
    # Rounds of 50, each waited for by the readers: they never fall behind, so only the
    # two peers that stopped reading can fill their outboxes.
    while chat.runtime.hub.people.find("stuck_term") or chat.runtime.hub.people.find("stuck_page"):
        assert sent < 20_000, "the stalled readers were never disconnected"
        for _ in range(50):
            sender.line(f"m{sent} {filler}")
            sent += 1
        for reader in readers:
            reader.wait_for(sent)

    want = [f"m{i} {filler}" for i in range(sent)]
    for reader in readers:
        assert reader.texts == want
    reasons: dict[str, str] = {}
    while len(reasons) < 2:
        event = watcher.expect("leave")
        reasons[event["nick"]] = event["text"]
    assert set(reasons) == {"stuck_term", "stuck_page"}
    assert all(reason.startswith("too slow") for reason in reasons.values()), reasons
