"""The load generator (benchmarks/loadgen.py) counts every delivery exactly.

One end-to-end run against a real `webchat` process, small enough for a few seconds;
the run ends when the last expected message arrives, not after a sleep. Then the
receive paths are fed crafted chunks: the whole-chunk fast path and the one-by-one path
must agree on every duplicate, gap, reorder and echo, since a real server rarely
produces them.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks import wire
from benchmarks.servers import listening
from benchmarks.worker import SO_TIMESTAMPNS, STAMP_SPACE, Worker, WorkerConfig

REPO = Path(__file__).resolve().parent.parent


def test_small_mixed_run_delivers_everything_exactly_once() -> None:
    clients, senders, messages = 6, 2, 20
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--json", "--quiet", "--timeout", "60"]
    argv += ["--clients", str(clients), "--mix", "mixed"]
    argv += ["--senders", str(senders), "--messages", str(messages)]
    result = subprocess.run(
        argv,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["phase"] == "done", report["notes"]
    assert report["connect"] == {**report["connect"], "ok": clients, "failed": 0}
    d = report["deliveries"]
    sent = senders * messages
    assert d["messages_sent"] == sent
    # Everyone but the sender receives each message; echoes are counted apart.
    assert d["expected"] == d["delivered"] == sent * (clients - 1)
    assert d["missing"] == d["duplicates"] == d["reordered"] == d["corrupt_lines"] == 0
    # Mixed: client 0 is TCP (no echo), client 1 is WebSocket (gets its own back).
    assert d["echoes_expected"] == d["echoes"] == messages
    assert d["unexpected_echoes"] == 0
    assert report["latency_ms"]["count"] == sent * (clients - 1)
    assert report["server"]["rss_idle_kb"] > 0
    assert report["cut_off"]["clients"] == 0


def test_two_nodes_through_redis_deliver_everything_exactly_once() -> None:
    """--nodes 2: the run starts its own redis-server and two nodes, and stops them."""
    clients, senders, messages = 8, 4, 20
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--json", "--quiet", "--timeout", "30"]
    argv += ["--clients", str(clients), "--mix", "mixed", "--nodes", "2"]
    argv += ["--senders", str(senders), "--messages", str(messages)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["phase"] == "done", report["notes"]
    assert report["connect"] == {**report["connect"], "ok": clients, "failed": 0}
    d = report["deliveries"]
    sent = senders * messages
    assert d["messages_sent"] == sent
    assert d["expected"] == d["delivered"] == sent * (clients - 1)
    assert d["missing"] == d["duplicates"] == d["reordered"] == d["corrupt_lines"] == 0
    assert d["echoes_expected"] == d["echoes"] == 2 * messages  # senders 1 and 3 are WS
    # Clients alternate over the nodes (0 1 1 0 0 1 1 0): a delivery is same-node when
    # the receiver is on its sender's node.
    same = sum(
        messages
        for s in range(senders)
        for r in range(clients)
        if r != s and wire.node_of(r, 2) == wire.node_of(s, 2)
    )
    assert report["latency_same_node_ms"]["count"] == same
    assert report["latency_cross_node_ms"]["count"] == sent * (clients - 1) - same
    assert report["latency_ms"]["count"] == sent * (clients - 1)
    cluster = report["cluster"]
    assert [n["node"] for n in cluster["nodes"]] == ["node0", "node1"]
    assert cluster["redis_commands"] > 0
    assert cluster["stream_events_appended"] >= sent
    assert report["server"]["log_problems"] == []
    # Its redis-server is gone with it: nothing listens on its port any more.
    assert not listening(cluster["redis_port"])
    assert not Path(f"/proc/{cluster['redis_pid']}").exists()


def test_pinned_nodes_run_each_on_its_own_cpu_and_the_generator_only_when_idle() -> None:
    """--pin-nodes: node k alone on the k-th CPU of --server-cpus; --generator-idle: the
    generator under SCHED_IDLE, so the nodes come first on the CPUs it shares."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    listed = ",".join(map(str, cpus))
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--json", "--quiet", "--timeout", "30"]
    argv += [
        "--clients",
        "4",
        "--senders",
        "2",
        "--mix",
        "mixed",
        "--nodes",
        "2",
        "--messages",
        "5",
    ]
    argv += ["--pin-nodes", "--server-cpus", listed, "--generator-cpus", listed]
    argv += ["--generator-idle"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["deliveries"]["missing"] == report["deliveries"]["duplicates"] == 0
    affinity = report["affinity"]
    assert affinity["server_actual"] == [[cpus[k % len(cpus)]] for k in range(2)]
    assert affinity["generator_idle"] is True
    assert affinity["coordinator_actual"] == cpus


def test_node_of_alternates_and_mixes_transports() -> None:
    assert [wire.node_of(i, 1) for i in range(4)] == [0, 0, 0, 0]
    assert [wire.node_of(i, 2) for i in range(8)] == [0, 1, 1, 0, 0, 1, 1, 0]
    for nodes in (2, 3, 4):
        placed = [wire.node_of(i, nodes) for i in range(4 * nodes)]
        for k in range(nodes):
            mine = [i for i, n in enumerate(placed) if n == k]
            assert len(mine) == 4  # evenly
            assert {i % 2 for i in mine} == {0, 1}  # TCP and WebSocket (--mix mixed)


# ----- the receive paths, without a server ------------------------------------------------

OWN = 5
FILLER = 2  # a sender whose in-order messages make a chunk big enough for the bulk path
PAD = wire.padding(64)
NOW = time.monotonic_ns()
Item = tuple[int, int]  # (sender, sequence number)


def one_client(kind: str, rooms: int = 0) -> WorkerConfig:
    """A worker with one receiving client, OWN, of the given kind, that connects nowhere."""
    return WorkerConfig(
        index=0,
        target="webchat",
        host="127.0.0.1",
        tcp_port=1,
        web_port=1,
        clients=((OWN, kind),),
        senders=frozenset(),
        all_senders=frozenset({0, 1, FILLER, OWN}),
        stalls=(),
        messages=100,
        size=64,
        per_sender_rate=0,
        connect_concurrency=1,
        stall_rcvbuf=4096,
        drain_s=1,
        handshake_timeout_s=1,
        deadline_ns=0,
        rooms=rooms,
    )


def make_client(kind: str) -> tuple[Worker, Any]:
    cfg = one_client(kind)
    ours, _theirs = multiprocessing.Pipe()
    w = Worker(cfg, ours)
    c = w.clients[0]
    keys = [wire.nick_of(i)[1:] for i in (0, 1, FILLER, OWN)]
    if c.keys_bytes:
        c.init_expect([k.encode() for k in keys], c.sid.encode())
    else:
        c.init_expect(keys, c.sid)
    w.sending = True
    return w, c


def payload(sender: int, seq: int) -> bytes:
    return wire.payload(b"%05d" % sender, seq, NOW - 1000, PAD)


def feed(kind: str, chunks: list[list[Item]]) -> dict[str, int]:
    w, c = make_client(kind)
    for items in chunks:
        if kind == "tcp":
            block = b"".join(
                wire.nick_of(s).encode() + b": " + payload(s, q) + b"\r\n" for s, q in items
            )
            c.scan(block, NOW)
        else:
            events = [
                {"type": "message", "id": i, "ts": "t", "nick": wire.nick_of(s)}
                | {"text": payload(s, q).decode()}
                for i, (s, q) in enumerate(items)
            ]
            c.frames([(wire.OP_TEXT, True, json.dumps(events).encode())], NOW)
    st = w.stats
    return {
        "delivered": st.delivered,
        "dups": st.dups,
        "reorders": st.reorders,
        "echoes": st.echoes,
        "echo_dups": st.echo_dups,
        "unexpected": st.unexpected_echoes,
        "corrupt": st.corrupt,
        "holes": sum(len(h) for h in c.holes.values()),
    }


CASES: dict[str, tuple[list[list[Item]], dict[str, int]]] = {
    "in order": ([[(s, q) for q in range(3) for s in (0, 1)], [(0, 3), (1, 3)]], {"delivered": 8}),
    "duplicate in a chunk": ([[(0, 0), (0, 0)]], {"delivered": 1, "dups": 1}),
    "duplicate across chunks": ([[(0, 0), (0, 1)], [(0, 1), (0, 2)]], {"delivered": 3, "dups": 1}),
    "gap": ([[(0, 0), (0, 2)]], {"delivered": 2, "holes": 1}),
    "gap filled later": ([[(0, 0), (0, 2)], [(0, 1)]], {"delivered": 3, "reorders": 1}),
    "reorder": ([[(0, 1), (0, 0)]], {"delivered": 2, "reorders": 1}),
    "own message": ([[(OWN, 0), (0, 0), (OWN, 1)]], {"delivered": 1, "echoes": 2}),
    "own message twice": (
        [[(OWN, 0)], [(OWN, 0), (0, 0)]],
        {"delivered": 1, "echoes": 1, "echo_dups": 1},
    ),
}


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@pytest.mark.parametrize("bulk", [False, True], ids=["few", "bulk"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_and_exact_paths_agree(kind: str, bulk: bool, case: str) -> None:
    chunks, want = CASES[case]
    if bulk:
        chunks = [[(FILLER, 8 * i + q) for q in range(8)] + ch for i, ch in enumerate(chunks)]
    expected = dict.fromkeys(("delivered", "dups", "reorders", "echoes", "echo_dups"), 0)
    expected |= {"unexpected": 0, "corrupt": 0, "holes": 0} | want
    if bulk:
        expected["delivered"] += 8 * len(chunks)
    if kind == "tcp" and case.startswith("own"):
        # The TCP chat never sends you your own message: each one is a server bug.
        expected["unexpected"] = sum(s == OWN for ch in chunks for s, _ in ch)
        expected["echoes"] = expected["echo_dups"] = 0
    assert feed(kind, chunks) == expected


# ----- rooms ----------------------------------------------------------------------------


def test_small_run_in_rooms_delivers_to_members_only() -> None:
    clients, rooms, senders, messages = 12, 3, 4, 20
    argv = [sys.executable, "-m", "benchmarks.loadgen", "--json", "--quiet", "--timeout", "60"]
    argv += ["--clients", str(clients), "--mix", "mixed", "--rooms", str(rooms)]
    argv += ["--senders", str(senders), "--messages", str(messages)]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["phase"] == "done", report["notes"]
    assert report["connect"] == {**report["connect"], "ok": clients, "failed": 0}
    d = report["deliveries"]
    sent = senders * messages
    # Rooms of 4 (client i in #bench-(i % 3)): each message reaches the 3 other members.
    assert d["messages_sent"] == sent
    assert d["expected"] == d["delivered"] == sent * (clients // rooms - 1)
    assert d["missing"] == d["duplicates"] == d["reordered"] == d["corrupt_lines"] == 0
    assert d["wrong_room"] == 0
    # Senders 1 and 3 are WebSocket: their own messages come back in their room.
    assert d["echoes_expected"] == d["echoes"] == 2 * messages
    assert d["unexpected_echoes"] == 0


def room_client(kind: str) -> tuple[Worker, Any]:
    """Client OWN (5) in #bench-1 of 2 rooms: it expects senders 1 and OWN only."""
    cfg = one_client(kind, rooms=2)
    ours, _theirs = multiprocessing.Pipe()
    w = Worker(cfg, ours)
    c = w.clients[0]
    assert c.room == "#bench-1"
    keys = [wire.nick_of(i)[1:] for i in (1, OWN)]
    if c.keys_bytes:
        c.init_expect([k.encode() for k in keys], c.sid.encode())
    else:
        c.init_expect(keys, c.sid)
    w.sending = True
    return w, c


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@pytest.mark.parametrize("bulk", [False, True], ids=["few", "bulk"])
@pytest.mark.parametrize("astray", ["other room's sender", "own room's sender, other tag"])
def test_a_delivery_into_the_wrong_room_is_counted(kind: str, bulk: bool, astray: str) -> None:
    w, c = room_client(kind)
    # (sender, sequence number, room the server said it was in)
    good = [(1, q, "#bench-1") for q in range(8 if bulk else 2)]
    bad = (0, 0, "#bench-0") if astray.startswith("other") else (1, len(good), "#lobby")
    items = [*good, bad]
    if kind == "tcp":
        block = b"".join(
            wire.webchat_room_tag(room) + wire.nick_of(s).encode() + b": " + payload(s, q) + b"\r\n"
            for s, q, room in items
        )
        c.scan(block, NOW)
    else:
        events = [
            {"type": "message", "id": i, "nick": wire.nick_of(s), "room": room}
            | {"text": payload(s, q).decode()}
            for i, (s, q, room) in enumerate(items)
        ]
        c.frames([(wire.OP_TEXT, True, json.dumps(events).encode())], NOW)
    st = w.stats
    assert (st.delivered, st.wrong_room, st.corrupt, st.dups) == (len(good), 1, 0, 0)


@pytest.mark.parametrize("kind", ["tcp", "ws"])
@pytest.mark.parametrize("bulk", [False, True], ids=["few", "bulk"])
def test_cross_node_latency_is_told_apart(kind: str, bulk: bool) -> None:
    """--nodes 2: client OWN (5) is on node 1, sender 0 on node 0, senders 1 and FILLER
    on node 1; both receive paths put each delivery in the right histogram."""
    w, c = make_client(kind)
    assert [wire.node_of(i, 2) for i in (0, 1, FILLER, OWN)] == [0, 1, 1, 1]
    far = wire.nick_of(0)[1:]
    c.remote = frozenset({far.encode() if c.keys_bytes else far})
    items = [(0, 0), (1, 0), (0, 1)]
    if bulk:
        items += [(FILLER, q) for q in range(8)]
    if kind == "tcp":
        c.scan(
            b"".join(wire.nick_of(s).encode() + b": " + payload(s, q) + b"\r\n" for s, q in items),
            NOW,
        )
    else:
        events = [
            {"type": "message", "id": i, "nick": wire.nick_of(s), "text": payload(s, q).decode()}
            for i, (s, q) in enumerate(items)
        ]
        c.frames([(wire.OP_TEXT, True, json.dumps(events).encode())], NOW)
    st = w.stats
    assert st.delivered == len(items)
    assert sum(st.cross.sparse().values()) == 2
    assert sum(st.same.sparse().values()) == len(items) - 2
    assert st.cross.lat_max == st.same.lat_max == 1000


def test_a_presence_update_is_counted_not_parsed_and_its_count_kept() -> None:
    """A crowded room's update is thousands of entries for each of thousands of clients:
    the generator only counts it (and, for --settle-presence, reads its last field)."""
    cfg = dataclasses.replace(one_client("ws"), settle_presence=True)
    ours, _theirs = multiprocessing.Pipe()
    w = Worker(cfg, ours)
    c: Any = w.clients[0]  # a WsClient
    w.sending = True
    # Not JSON past its start: parsed, it would count as a corrupt line.
    update = b'{"type":"presence","room":"#lobby","joined":[{"nick":"c0000' + b',"users":7}'
    c.frames([(wire.OP_TEXT, True, update)], NOW)
    assert (w.stats.other, w.stats.corrupt, w.stats.delivered) == (1, 0, 0)
    assert w.presence_users == 7


def test_arrival_is_the_kernels_receive_stamp_and_the_wait_is_the_read_lag() -> None:
    """--arrival-times: latency ends when the bytes reached the socket, not when the
    generator got round to reading them; the difference is kept as the read lag."""
    ours, _theirs = multiprocessing.Pipe()
    w = Worker(dataclasses.replace(one_client("tcp"), arrival_times=True), ours)
    w.sending = True
    with socket.create_server(("127.0.0.1", 0)) as server:
        reader = socket.create_connection(server.getsockname())
        reader.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        writer, _ = server.accept()
        with reader, writer:
            # The kernel turns stamping on a moment after the first socket asks (a
            # deferred switch): until then a read carries no stamp.
            deadline = time.monotonic() + 5
            while True:
                writer.sendall(b"warm\n")
                assert select.select([reader], [], [], 5)[0]
                _got, warm, _flags, _addr = reader.recvmsg_into([w.rbuf], STAMP_SPACE)
                if warm or time.monotonic() > deadline:
                    break
            before = time.monotonic_ns()
            writer.sendall(b"hello\n")
            assert select.select([reader], [], [], 5)[0]  # it has arrived
            arrived_by = time.monotonic_ns()
            got, stamps, _flags, _addr = reader.recvmsg_into([w.rbuf], STAMP_SPACE)
            now = time.monotonic_ns() + 50_000_000  # read as if the generator were 50 ms late
            at = w.arrival(stamps, now)
    assert bytes(w.rbuf[:got]) == b"hello\n"
    assert before <= at <= arrived_by
    assert w.stats.read_lag.lat_max == now - at >= 50_000_000
