"""The log in a real server process: nothing lost on kill -9, and a broken disk is no crash."""

from __future__ import annotations

import json
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import TcpClient, WsClient
from tests.support.processes import ServerProcess

WEBCHAT = str(Path(sys.executable).parent / "webchat")
BROWSER = r"Browser:\s+http://localhost:(\d+)/"
TERMINAL = r"Terminal: nc localhost (\d+)"


def start(db: str, **env: str) -> tuple[ServerProcess, str, int]:
    server = ServerProcess(
        [WEBCHAT, "--web-port", "0", "--tcp-port", "0", "--history-db", db],
        env={"WEBCHAT_RATE_PER_SECOND": "0", "WEBCHAT_HISTORY_REPLAY": "1000", **env},
    )
    web_port = int(server.wait_for(BROWSER).group(1))
    tcp_port = int(server.wait_for(TERMINAL).group(1))
    return server, f"http://127.0.0.1:{web_port}", tcp_port


def messages(events: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(e["id"], e["nick"], e["text"]) for e in events if e["type"] == "message"]


def read_messages(client: WsClient, count: int) -> list[tuple[int, str, str]]:
    got: list[tuple[int, str, str]] = []

    def record(event: dict[str, Any]) -> bool:
        got.extend(messages([event]))
        return len(got) == count

    client.expect(record, timeout=30)
    return got


def test_every_delivered_message_survives_kill_9_with_its_id_and_place(tmp_path: Path) -> None:
    db = str(tmp_path / "chat.sqlite3")
    server, url, tcp_port = start(db)
    try:
        witnesses = [WsClient(url) for _ in range(2)]
        for i, witness in enumerate(witnesses):
            witness.join(f"witness{i}")
        terms = [TcpClient(tcp_port) for _ in range(2)]
        for i, term in enumerate(terms):
            term.join(f"term{i}")
        pages = [WsClient(url) for _ in range(2)]
        for i, page in enumerate(pages):
            page.join(f"page{i}")
        for round_ in range(25):
            for i, term in enumerate(terms):
                term.line(f"term{i} says {round_}")
            for i, page in enumerate(pages):
                page.say(f"page{i} says {round_}")
        # Every receiver has every message; each was in the log before it was sent out.
        seen = [read_messages(w, 100) for w in witnesses + pages]
        assert all(s == seen[0] for s in seen)
        for term in terms:
            term.expect(lambda line: line.startswith("page1: page1 says 24"))
    finally:
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL

    again, url, _ = start(db)
    try:
        newcomer = WsClient(url)
        newcomer.send({"type": "join", "nick": "newcomer"})
        replay = newcomer.read_until("welcome")
        assert messages([e for e in replay if e.get("history")]) == seen[0]
        newcomer.say("after the crash")
        fresh = newcomer.expect(lambda e: e.get("text") == "after the crash")
        assert fresh["id"] > seen[0][-1][0]
    finally:
        assert again.stop() == 0


def test_an_unwritable_history_location_is_no_crash_and_everyone_is_told(tmp_path: Path) -> None:
    # /proc refuses new files even to root: a real read-only location.
    server, url, tcp_port = start("/proc/webchat-history.sqlite3")
    try:
        assert "ERROR webchat.history.sqlite: history is off" in server.output()  # logged loudly
        # 503, so a load balancer acts on it; the body says why.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/healthz", timeout=10)
        health = json.loads(refused.value.read())
        assert refused.value.code == 503 and health["status"] == "degraded"
        assert health["history"]["ok"] is False and "history is off" in health["history"]["error"]

        alice = TcpClient(tcp_port)
        alice.read_exact(b"Enter your nickname: ")
        alice.line("alice")
        notice = alice.expect("history is off")
        assert notice.startswith("*** history is off") and "the chat goes on" in notice
        bob = WsClient(url)
        bob.send({"type": "join", "nick": "bob"})
        before = bob.read_until("welcome")
        assert any("history is off" in e.get("text", "") for e in before if e["type"] == "system")
        alice.line("still chatting")
        assert bob.expect("message")["text"] == "still chatting"
        bob.say("/history")
        assert bob.expect("error")["code"] == "history_off"
    finally:
        assert server.stop() == 0


def test_a_log_that_never_opened_is_announced_once_per_newcomer(tmp_path: Path) -> None:
    server, _, tcp_port = start("/proc/webchat-history.sqlite3")
    try:
        first = TcpClient(tcp_port)
        first.read_exact(b"Enter your nickname: ")
        first.line("first")
        first.line("/who")  # something after the join, to read past any second notice
        lines = first.read_until(lambda line: line.startswith("*** 1 online"))
        assert len([line for line in lines if "history is off" in line]) == 1, lines
    finally:
        assert server.stop() == 0
