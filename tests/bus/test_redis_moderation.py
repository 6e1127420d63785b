"""Accounts, bans, mutes and kicks are the same on every node of a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clients import TcpClient
from tests.support.redis import TIMEOUT, Cluster, RedisServer

PASSWORD = "correct-horse-battery"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_an_account_made_on_one_node_is_asked_for_on_another(cluster: Cluster) -> None:
    a, b = cluster.node("a"), cluster.node("b")
    alice = cluster.ws(a, "alice")
    alice.say(f"/register {PASSWORD}")
    alice.expect(lambda e: e.get("code") == "registered", TIMEOUT)
    alice.say("/quit")
    alice.wait_closed()
    other = cluster.ws(b)
    other.send({"type": "join", "nick": "Alice"})
    other.expect(lambda e: e.get("code") == "password_required", TIMEOUT)
    assert other.join("alice", password=PASSWORD)["account"] is True


def test_bans_mutes_and_kicks_hold_on_every_node(cluster: Cluster) -> None:
    a = cluster.node("a", operators=("boss",))
    b = cluster.node("b", operators=("boss",))
    boss = cluster.ws(a, "boss")
    boss.say(f"/register {PASSWORD}")
    boss.expect(lambda e: e.get("code") == "registered", TIMEOUT)
    boss.say("/quit")
    boss.wait_closed()
    boss = cluster.ws(a, "boss", password=PASSWORD)
    owner = cluster.ws(a, "owner")
    owner.say("/join #dev")
    guest = cluster.ws(b, "guest")
    guest.say("/join #dev")
    owner.expect(lambda e: e.get("type") == "enter" and e.get("nick") == "guest", TIMEOUT)

    # A room operator on node a mutes, then kicks, someone on node b.
    owner.send({"type": "say", "room": "#dev", "text": "/mute guest 10m"})
    guest.expect("mute", TIMEOUT)
    guest.send({"type": "say", "room": "#dev", "text": "let me speak"})
    guest.expect(lambda e: e.get("code") == "muted", TIMEOUT)
    owner.send({"type": "say", "room": "#dev", "text": "/kick guest"})
    assert guest.expect("kick", TIMEOUT)["target"] == "guest"
    guest.send({"type": "say", "room": "#dev", "text": "still here?"})
    guest.expect(lambda e: e.get("code") == "not_in_room", TIMEOUT)
    owner.send({"type": "say", "room": "#dev", "text": "/names"})
    assert [u["nick"] for u in owner.expect("names", TIMEOUT)["users"]] == ["owner"]

    # The server operator on node a bans someone on node b from the server.
    troll = cluster.tcp(b, "troll")
    # Node a must know troll (and so the address troll came from) before the ban.
    boss.expect(lambda e: e.get("type") == "join" and e.get("nick") == "troll", TIMEOUT)
    boss.say("/ban troll 1h")
    boss.expect("ban", TIMEOUT)
    assert b"banned by boss" in troll.read_until_closed(TIMEOUT)
    again = TcpClient(b.tcp_port, source="127.0.0.1")
    again.read_exact(b"Enter your nickname: ")
    again.line("new-name")  # the same address under a new nick, on the other node
    assert "banned from this server" in again.expect("error", TIMEOUT)
    again.close()
