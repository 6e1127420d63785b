"""Several nodes through one Redis: one chat across nodes, over both transports.

DESIGN.md "Wire contract, wave 2 / Several nodes": the same rooms, nicks unique
across nodes, /who lists everyone, private messages cross nodes, every client on
every node receives the same events with the same ids in the same order, and
replay, ``since`` and /api/history on any node cover the whole chat. Each test
runs its own redis-server (never 6379) and its own nodes, all in this process.
Failures (a node dying, Redis killed or frozen) are in test_redis_failures.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.clients import TcpClient, WsClient, assert_no_tracebacks, wait_until
from tests.support.redis import TIMEOUT, RedisServer, api_history, mark, text_is
from webchat.core.events import SEQUENCED


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def ws_try_join(ws: WsClient, nick: str, **extra: Any) -> dict[str, Any]:
    """Send a join and return the welcome or the error that answers it."""
    ws.send({"type": "join", "nick": nick, **extra})
    return ws.expect(lambda e: e.get("type") in ("welcome", "error"), TIMEOUT)


def sequenced(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["id"], e["type"], e.get("nick"), e.get("text")) for e in events if "id" in e]


# ----- messages and one order ----------------------------------------------------------


def test_messages_cross_nodes_both_ways_between_tcp_and_websocket(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice = cluster.tcp(a, "alice")
    bob = cluster.ws(b, "bob")
    assert alice.expect("bob", TIMEOUT) == "*** bob joined (browser)"
    bob.say("hello from b")
    assert alice.expect("hello from b", TIMEOUT) == "bob: hello from b"
    echo = bob.expect(text_is("hello from b"), TIMEOUT)
    alice.line("hi from a")
    got = bob.expect(text_is("hi from a"), TIMEOUT)
    assert got["type"] == "message" and got["nick"] == "alice" and got["room"] == "#lobby"
    assert got["id"] > echo["id"]
    alice.line("/me waves across")
    got = bob.expect("me", TIMEOUT)
    assert got["nick"] == "alice" and got["text"] == "waves across"
    # Both nodes stored the same log.
    wait_until(
        lambda: a.runtime.history.last_id() == b.runtime.history.last_id() >= got["id"],
        TIMEOUT,
        "both histories at the same id",
    )


def test_every_node_delivers_the_same_ids_in_the_same_order(cluster):
    """A mixed burst from four senders (TCP and WebSocket on both nodes): a witness
    on each node receives the very same sequence of ids and events."""
    a, b = cluster.node("a"), cluster.node("b")
    wa, wb = cluster.ws(a, "wa"), cluster.ws(b, "wb")
    senders: list[tuple[str, TcpClient | WsClient]] = [
        ("ta", cluster.tcp(a, "ta")),
        ("sa", cluster.ws(a, "sa")),
        ("tb", cluster.tcp(b, "tb")),
        ("sb", cluster.ws(b, "sb")),
    ]
    start = mark("start")
    wa.say(start)
    for w in (wa, wb):
        w.expect(text_is(start), TIMEOUT)
    per_sender = 25
    go = threading.Barrier(len(senders))

    def burst(nick: str, client: TcpClient | WsClient) -> None:
        go.wait(TIMEOUT)
        for i in range(per_sender):
            text = f"{nick} {i}"
            if isinstance(client, TcpClient):
                client.line(text)
            else:
                client.say(text)
                if i % 5 == 4:
                    client.say(f"/me {nick} acts {i}")
        if isinstance(client, TcpClient):
            client.line(f"{nick} done")
        else:
            client.say(f"{nick} done")

    threads = [threading.Thread(target=burst, args=s) for s in senders]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT * 2)
    got = {}
    for name, w in (("a", wa), ("b", wb)):
        done: set[str] = set()

        def all_done(e: dict[str, Any], done: set[str] = done) -> bool:
            if str(e.get("text", "")).endswith(" done"):
                done.add(e["text"])
            return len(done) == len(senders)

        got[name] = sequenced(w.read_until(all_done, TIMEOUT * 2))
    assert got["a"] == got["b"]
    ids = [e[0] for e in got["a"]]
    assert ids == sorted(set(ids)), ids
    # Everything sent arrived, once, each sender's lines in the order sent.
    texts = [e[3] for e in got["a"] if e[1] == "message"]
    for nick, _ in senders:
        mine = [t for t in texts if t and t.startswith(f"{nick} ") and t != f"{nick} done"]
        assert mine == [f"{nick} {i}" for i in range(per_sender)], mine
    acts = [e for e in got["a"] if e[1] == "me"]
    assert len(acts) == 2 * per_sender // 5


# ----- rooms ---------------------------------------------------------------------------


def test_rooms_span_nodes(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice = cluster.tcp(a, "alice")  # member, TCP on A
    bob = cluster.ws(b, "bob")  # member, WebSocket on B
    carol = cluster.tcp(b, "carol")  # not a member, on B
    dave = cluster.ws(a, "dave")  # not a member, on A
    alice.expect("dave joined", TIMEOUT)
    alice.line("/join #dev")
    alice.expect(lambda s: s == "[#dev] *** alice entered", TIMEOUT)
    bob.say("/join #Dev")
    assert alice.expect("bob", TIMEOUT) == "[#dev] *** bob entered"
    got = bob.expect(lambda e: e.get("type") == "enter" and not e.get("history"), TIMEOUT)
    assert got["nick"] == "bob" and got["room"] == "#dev"
    bob.send({"type": "say", "room": "#dev", "text": "dev hello"})
    assert alice.expect("dev hello", TIMEOUT) == "[#dev] bob: dev hello"
    alice.line("dev from a")  # alice's active room is #dev
    got = bob.expect(text_is("dev from a"), TIMEOUT)
    assert got["room"] == "#dev" and got["nick"] == "alice"
    alice.line("/me codes")
    got = bob.expect("me", TIMEOUT)
    assert got["room"] == "#dev"
    alice.line("/topic ship it")
    assert alice.expect("topic", TIMEOUT) == "[#dev] *** alice set the topic: ship it"
    got = bob.expect("topic", TIMEOUT)
    assert (got["room"], got["nick"], got["text"]) == ("#dev", "alice", "ship it")
    # The members of both nodes are counted on both nodes.
    bob.say("/names #dev")
    got = bob.expect("names", TIMEOUT)
    assert got["room"] == "#dev" and sorted(u["nick"] for u in got["users"]) == ["alice", "bob"]
    alice.line("/names")
    line = alice.expect(lambda s: " in #dev: " in s, TIMEOUT)
    assert line.startswith("[#dev] *** 2 in #dev: ") or line.startswith("*** 2 in #dev: "), line
    assert "alice" in line and "bob" in line
    carol.line("/rooms")
    line = carol.expect(lambda s: s.startswith("*** 2 rooms: "), TIMEOUT)
    assert "#dev (2): ship it" in line and "#lobby (4)" in line, line
    dave.say("/rooms")
    rooms = {r["room"]: r for r in dave.expect("rooms", TIMEOUT)["rooms"]}
    assert rooms["#dev"] == {"room": "#dev", "users": 2, "topic": "ship it"}
    assert rooms["#lobby"]["users"] == 4
    bob.say("/topic #dev")
    got = bob.expect(lambda e: e.get("code") == "topic", TIMEOUT)
    assert got["topic"] == "ship it"
    # Those outside #dev heard none of it: a fence in the lobby, then look.
    fence = mark()
    alice.line(f"/msg #lobby {fence}")
    seen_c = carol.read_until(fence, TIMEOUT)
    seen_d = dave.read_until(text_is(fence), TIMEOUT)
    assert not [s for s in seen_c if "dev" in s.lower() or "ship it" in s], seen_c
    assert not [e for e in seen_d if e.get("room") == "#dev"], seen_d
    # Leaving the room is seen by the other node's member only.
    bob.say("/part #dev gone")
    assert alice.expect("bob", TIMEOUT) == "[#dev] *** bob left (gone)"
    fence = mark()
    alice.line(f"/msg #lobby {fence}")
    assert not [s for s in carol.read_until(fence, TIMEOUT) if "#dev" in s]


# ----- nicks ---------------------------------------------------------------------------


def test_a_nick_is_unique_across_nodes(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice = cluster.tcp(a, "alice")
    cluster.ws(a, "carol")
    other = cluster.ws(b)
    for nick in ("alice", "ALICE", "Alice", "\uff41lice"):  # the last: a fullwidth 'a'
        got = ws_try_join(other, nick)
        assert got["type"] == "error" and got["code"] == "nick_taken", (nick, got)
    tcp_other = cluster.tcp(b)
    tcp_other.read_exact(b"Enter your nickname: ")
    tcp_other.line("aLiCe")
    assert "already taken" in tcp_other.expect("error", TIMEOUT)
    tcp_other.read_exact(b"Enter your nickname: ")
    # /nick to a nick held on the other node is refused; a case change of one's own is not.
    bob = cluster.ws(b, "bob")
    for nick in ("carol", "CAROL", "alice"):
        bob.say(f"/nick {nick}")
        got = bob.expect("error", TIMEOUT)
        assert got["code"] == "nick_taken", (nick, got)
    bob.say("/nick Bob")
    assert bob.expect("nick", TIMEOUT)["new"] == "Bob"
    # Once alice leaves A, B may take her nick.
    alice.close()
    wait_until(lambda: b.runtime.hub.people.find("alice") is None, TIMEOUT, "alice gone on b")

    def b_takes_it() -> bool:
        return ws_try_join(other, "Alice")["type"] == "welcome"

    wait_until(b_takes_it, TIMEOUT, "B to take the nick alice")
    got = ws_try_join(cluster.ws(a), "alice")
    assert got["type"] == "error" and got["code"] == "nick_taken"
    # And /nick away frees the old one for the other node.
    bob.say("/nick robert")
    bob.expect(lambda e: e.get("type") == "nick" and e.get("new") == "robert", TIMEOUT)
    on_a = cluster.ws(a)
    wait_until(lambda: ws_try_join(on_a, "bob")["type"] == "welcome", TIMEOUT, "bob free")


def test_two_nodes_racing_for_one_nick_give_it_to_exactly_one(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    for round_ in range(20):
        nick = f"racer{round_}"
        clients = [cluster.ws(a), cluster.ws(b)]
        go = threading.Barrier(2)
        answers: list[dict[str, Any]] = [{}, {}]

        def race(
            i: int,
            nick: str,
            clients: list[WsClient],
            go: threading.Barrier,
            answers: list[dict[str, Any]],
        ) -> None:
            go.wait(TIMEOUT)
            answers[i] = ws_try_join(clients[i], nick)

        threads = [
            threading.Thread(target=race, args=(i, nick, clients, go, answers)) for i in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 2)
        kinds = sorted(x.get("type", "none") for x in answers)
        assert kinds == ["error", "welcome"], (round_, answers)
        loser = next(x for x in answers if x["type"] == "error")
        assert loser["code"] == "nick_taken", loser
        for c in clients:
            c.close()
    # Nobody holds two sessions under one nick on either node.
    for chat in (a, b):
        nicks = [p.nick for p in chat.runtime.hub.people.presence()]
        assert len(nicks) == len(set(nicks)), nicks


# ----- who, the welcome, private messages ----------------------------------------------


def test_who_welcome_and_private_messages_cross_nodes(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    alice = cluster.tcp(a, "alice")
    bob = cluster.ws(b, "bob")
    carol = cluster.ws(a)
    welcome = carol.join("carol")
    assert sorted(u["nick"] for u in welcome["users"]) == ["alice", "bob", "carol"]
    assert welcome["text"].startswith("3 online: carol, "), welcome
    dave = cluster.tcp(b)
    dave.read_exact(b"Enter your nickname: ")
    dave.line("dave")
    line = dave.expect("Welcome", TIMEOUT)
    assert line.startswith("*** Welcome, dave! 4 online: dave, "), line
    assert all(n in line for n in ("alice", "bob", "carol")), line
    alice.expect("dave joined", TIMEOUT)
    alice.line("/who")
    line = alice.expect(lambda s: "online:" in s, TIMEOUT)
    assert line.startswith("*** 4 online: "), line
    assert all(n in line for n in ("alice", "bob", "carol", "dave")), line
    bob.say("/who")
    users = bob.expect("users", TIMEOUT)["users"]
    assert sorted(u["nick"] for u in users) == ["alice", "bob", "carol", "dave"]
    # Private across nodes, both ways, and /reply to whoever wrote last.
    bob.say("/msg alice secret from b")
    assert alice.expect("secret", TIMEOUT) == "[private] bob -> alice: secret from b"
    alice.line("/r back from a")
    got = bob.expect(lambda e: e.get("type") == "private" and e.get("nick") == "alice", TIMEOUT)
    assert got["text"] == "back from a" and got["to"] == "bob"
    dave.line("/msg carol psst")
    got = carol.expect("private", TIMEOUT)
    assert (got["nick"], got["text"], got["to"]) == ("dave", "psst", "carol")
    carol.say("/reply ok dave")
    assert dave.expect("ok dave", TIMEOUT) == "[private] carol -> dave: ok dave"
    # Nobody else saw them.
    fence = mark()
    bob.say(fence)
    seen = alice.read_until(fence, TIMEOUT)
    assert not [s for s in seen if "psst" in s or "ok dave" in s], seen
    for e in carol.read_until(text_is(fence), TIMEOUT):
        if e["type"] == "private":
            assert "carol" in (e["nick"], e["to"]), e
    # A private message to someone not there is refused on either node.
    bob.say("/msg nobody hi")
    assert bob.expect("error", TIMEOUT)["code"]


# ----- replay, since, history on another node ------------------------------------------


def test_resume_with_since_on_the_other_node_gets_exactly_what_was_missed(cluster):
    a, b = cluster.node("a"), cluster.node("b")
    witness = cluster.ws(b, "witness", rooms=["#dev"])
    bob = cluster.tcp(a, "bob")
    carol = cluster.ws(b, "carol", rooms=["#dev"])
    alice = cluster.ws(a, "alice", rooms=["#dev"])
    alice.send({"type": "say", "room": "#dev", "text": "last one alice saw"})
    since = alice.expect(text_is("last one alice saw"), TIMEOUT)["id"]
    alice.close()
    wait_until(
        lambda: all(c.runtime.hub.people.find("alice") is None for c in (a, b)),
        TIMEOUT,
        "alice gone on both nodes",
    )
    bob.line("L1 from a")
    carol.send({"type": "say", "room": "#dev", "text": "D1 from b"})
    bob.line("/join #ops")
    bob.line("O1 not for alice")
    carol.say("/me waves")
    carol.say("/topic #dev new topic")
    carol.say("/msg bob private, not for alice")
    bob.line("/nick bobby")
    # Lines sent on two nodes have no order between them: settle before the end mark.
    witness_before = witness.read_until(
        lambda e: e.get("type") == "nick" and e.get("new") == "bobby", TIMEOUT
    )
    end = mark("end")
    carol.say(end)
    seen = witness.read_until(text_is(end), TIMEOUT)
    seen = [*witness_before, *seen]
    missed = [e for e in seen if e.get("id", 0) > since and e["type"] in SEQUENCED]
    assert {"L1 from a", "D1 from b", "waves", "new topic", end} <= {
        e.get("text") for e in missed
    }, seen
    alice2 = cluster.ws(b)
    alice2.send({"type": "join", "nick": "alice", "rooms": ["#dev"], "since": since})
    got = alice2.read_until("welcome", TIMEOUT)
    replayed = [e for e in got if e.get("history")]
    assert [(e["id"], e["type"], e.get("text")) for e in replayed] == [
        (e["id"], e["type"], e.get("text")) for e in missed
    ]
    assert not [e for e in got if "not for alice" in str(e)], got
    after = mark("after")
    alice2.say(after)
    live = alice2.read_until(text_is(after), TIMEOUT)
    ids = [e["id"] for e in got + live if "id" in e]
    assert len(ids) == len(set(ids)) and ids == sorted(ids), ids


def test_a_node_started_later_catches_up_history_and_people(cluster):
    a = cluster.node("a")
    alice = cluster.tcp(a, "alice")
    bob = cluster.ws(a, "bob", rooms=["#dev"])
    alice.line("early in the lobby")
    bob.send({"type": "say", "room": "#dev", "text": "early in dev"})
    bob.expect(text_is("early in dev"), TIMEOUT)
    c = cluster.node("c")
    lobby = [e.get("text") for e in api_history(c)["events"]]
    assert "early in the lobby" in lobby, lobby
    dev = [e.get("text") for e in api_history(c, "?room=%23dev")["events"]]
    assert "early in dev" in dev and "early in the lobby" not in dev, dev
    assert api_history(c)["events"] == api_history(a)["events"]
    carol = cluster.ws(c)
    carol.send({"type": "join", "nick": "carol", "rooms": ["#dev"]})
    got = carol.read_until("welcome", TIMEOUT)
    welcome = got[-1]
    assert sorted(u["nick"] for u in welcome["users"]) == ["alice", "bob", "carol"]
    rooms = {r["room"]: r for r in welcome["rooms"]}
    assert rooms["#dev"]["users"] == 2, rooms
    replayed = [e.get("text") for e in got if e.get("history")]
    assert "early in dev" in replayed and "early in the lobby" in replayed, got
    carol.say("/who")
    users = carol.expect("users", TIMEOUT)["users"]
    assert sorted(u["nick"] for u in users) == ["alice", "bob", "carol"]
    # And the new node is a full member: both ways.
    carol.say("hi from c")
    assert alice.expect("hi from c", TIMEOUT) == "carol: hi from c"
    alice.line("hi from a")
    assert carol.expect(text_is("hi from a"), TIMEOUT)["nick"] == "alice"


def test_a_join_storm_on_one_node_is_not_refused(cluster):
    """redis-py allows 100 connections per client by default: 400 people joining at
    the same moment once got 'Too many connections' as 'unavailable'."""
    a = cluster.node("a", max_connections_per_ip=0)
    count = 400
    clients = [cluster.ws(a) for _ in range(count)]
    start = threading.Barrier(count)
    answers: list[dict[str, Any]] = [{} for _ in range(count)]

    def join(i: int) -> None:
        start.wait()
        answers[i] = ws_try_join(clients[i], f"storm{i}")

    threads = [threading.Thread(target=join, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    refused = [a.get("text") for a in answers if a.get("type") != "welcome"]
    assert not refused, refused[:3]
    assert a.runtime.hub.people.count() == count
