"""The UDP chat over real sockets on port 0: framed clients, a lossy path, the abuse rules.

No mocks and no sleeps that hope: every wait is on a condition with a timeout.
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import wait_until
from tests.support.udp import Datagrams, LossyRelay, expect_event
from webchat.transports.udp_client import Refused, UdpClient
from webchat.transports.udp_wire import HELLO_SIZE, MAX_DATAGRAM, hello


def udp_port(chat: RunningChat) -> int:
    port = chat.runtime.udp_port
    assert port is not None
    return port


def framed(chat: RunningChat, nick: str, port: int | None = None) -> UdpClient:
    client = UdpClient("127.0.0.1", port or udp_port(chat))
    client.join(nick)
    expect_event(client, "welcome")
    return client


def test_udp_listens_on_the_tcp_chats_port_number(chat: RunningChat) -> None:
    assert chat.runtime.udp_port == chat.tcp_port


def test_a_framed_client_chats_with_a_tcp_user(chat: RunningChat) -> None:
    alice = framed(chat, "alice")
    bob = chat.tcp("bob")
    expect_event(alice, "join", nick="bob")
    bob.line("hello over there")
    expect_event(alice, "message", nick="bob", text="hello over there")
    alice.say("hello back")
    bob.expect("alice: hello back")
    alice.close()
    bob.expect("alice left")


def test_through_a_lossy_path_every_event_arrives_once_and_in_order(
    make_chat: Any,
) -> None:
    chat = make_chat(rate_per_second=0)
    relay = LossyRelay(udp_port(chat), seed=13)
    try:
        alice = framed(chat, "alice", relay.port)
        bob = chat.tcp("bob")
        expect_event(alice, "join", nick="bob")
        for i in range(500):
            bob.line(f"line {i}")
        got: list[str] = []
        while len(got) < 500:
            event = expect_event(alice, "message", timeout=30)
            got.append(event["text"])
        assert got == [f"line {i}" for i in range(500)]
        for i in range(50):
            alice.say(f"from udp {i}")
        seen = bob.read_until(lambda line: "from udp 49" in line, timeout=30)
        mine = [line for line in seen if line.startswith("alice: from udp")]
        assert mine == [f"alice: from udp {i}" for i in range(50)]
        wait_until(alice.all_acknowledged)
        assert relay.dropped["up"] > 0 and relay.dropped["down"] > 0
        udp = chat.runtime.udp
        assert udp is not None and udp.counts["retransmissions"] > 0
        # Nothing more came: no duplicate of a line was posted late.
        alice.say("marker")
        after = bob.read_until(lambda line: "alice: marker" in line, timeout=30)
        assert not any("from udp" in line for line in after)
        alice.close()
    finally:
        relay.close()


def test_a_large_event_is_split_and_reassembled(make_chat: Any) -> None:
    chat = make_chat(max_message_chars=2000)
    alice = framed(chat, "alice")
    bob = chat.tcp("bob")
    text = "é" * 1900  # 3800 bytes of JSON: five parts
    bob.line(text)
    assert expect_event(alice, "message", nick="bob")["text"] == text
    alice.close()


def test_a_source_that_never_answers_gets_at_most_three_times_its_bytes(
    chat: RunningChat,
) -> None:
    spoofed = Datagrams(udp_port(chat))
    for _ in range(20):
        spoofed.send(hello())
    for _ in range(30):
        spoofed.send("x")  # bare mode: instructions, within the budget
    for _ in range(30):
        spoofed.send({"t": "ping", "token": "0" * 32})
    for _ in range(30):
        spoofed.send({"t": "join", "cookie": "f" * 32, "nick": "mallory"})
    spoofed.drain()
    assert spoofed.received_bytes > 0
    assert spoofed.received_bytes <= 3 * spoofed.sent_bytes
    tiny = Datagrams(udp_port(chat))
    tiny.send("a")  # one byte earns three: too few for any instructions
    assert tiny.drain() == []
    tiny.send("hi\n")  # four bytes in all: still too few
    assert tiny.drain() == []
    tiny.send("hello there\n")  # sixteen in all: the short form, "CODE NICK"
    (reply,) = tiny.drain()
    assert reply.endswith(b" NICK\r\n") and tiny.received_bytes <= 3 * tiny.sent_bytes
    spoofed.close()
    tiny.close()


def test_a_short_hello_gets_nothing(chat: RunningChat) -> None:
    client = Datagrams(udp_port(chat))
    client.send(b'{"t":"hello"}')
    assert client.drain() == []
    client.send(hello())
    reply = json.loads(client.expect(b"cookie"))
    assert reply["t"] == "cookie" and len(reply["cookie"]) == 32
    assert len(hello()) == HELLO_SIZE == MAX_DATAGRAM
    client.close()


def test_cookie_replies_share_one_budget(make_chat: Any) -> None:
    chat = make_chat(udp_cookie_rate=5)
    clients = [Datagrams(udp_port(chat)) for _ in range(30)]
    for client in clients:
        client.send(hello())
    answered = sum(1 for client in clients if client.drain(0.2))
    udp = chat.runtime.udp
    assert udp is not None
    # Five at once, and five a second after that.
    assert 5 <= answered <= 12
    assert udp.counts["budget_limited"] >= 30 - answered
    for client in clients:
        client.close()


def test_malformed_datagrams_are_dropped_and_counted(chat: RunningChat) -> None:
    alice = framed(chat, "alice")
    raw = Datagrams(udp_port(chat))
    for junk in (b"{", b"{}", b"[1,2]", b'{"t":5}', b"\xff\xfe{", b"{" + b" " * 1500 + b"}"):
        raw.send(junk)
    raw.send({"t": "join", "cookie": "nope", "nick": "x"})
    raw.send({"t": "ack", "token": "unknown", "n": 1})
    udp = chat.runtime.udp
    assert udp is not None
    wait_until(lambda: sum(udp.dropped.values()) >= 6)
    assert udp.dropped["malformed"] == 3 and udp.dropped["too_big"] == 1
    assert udp.dropped["bad_cookie"] == 1 and udp.dropped["unknown_token"] >= 1
    bob = chat.tcp("bob")  # the server goes on
    bob.line("still here")
    expect_event(alice, "message", text="still here")
    alice.close()
    raw.close()


def test_silence_ends_a_session_and_the_others_see_it_leave(make_chat: Any) -> None:
    chat = make_chat(udp_idle_timeout=1.0)
    bob = chat.tcp("bob")
    raw = Datagrams(udp_port(chat))
    raw.send(hello())
    cookie = json.loads(raw.expect(b"cookie"))["cookie"]
    raw.send({"t": "join", "cookie": cookie, "nick": "ghost"})
    raw.expect(b"joined")
    bob.expect("ghost joined (datagrams)")
    line = bob.expect("ghost left", timeout=5)
    assert "timed out" in line
    raw.close()


def test_quit_ends_the_session(chat: RunningChat) -> None:
    alice = framed(chat, "alice")
    bob = chat.tcp("bob")
    expect_event(alice, "join", nick="bob")
    alice.say("/quit see you")
    wait_until(lambda: alice.end is not None)
    assert alice.end is not None and alice.end["code"] == 1000
    bob.expect("alice left (see you)")
    udp = chat.runtime.udp
    assert udp is not None
    wait_until(lambda: not udp.by_token)
    assert chat.runtime.gate.count("127.0.0.1") == 1  # bob's
    alice.close()


def test_a_new_source_address_must_prove_itself(chat: RunningChat) -> None:
    alice = framed(chat, "alice")
    bob = chat.tcp("bob")
    expect_event(alice, "join", nick="bob")
    moved = Datagrams(udp_port(chat))
    moved.send({"t": "ping", "token": alice.token})
    challenge = json.loads(moved.expect(b"cookie"))
    bob.line("not for the new address yet")
    expect_event(alice, "message", text="not for the new address yet")
    assert moved.drain() == []  # nothing but the challenge went there
    moved.send({"t": "migrate", "token": alice.token, "cookie": challenge["cookie"]})
    moved.expect(b"moved")
    bob.line("now it is")
    data = moved.expect(b"now it is")
    assert json.loads(data)["t"] == "ev"
    moved.close()
    alice.close(bye=False)


def test_the_client_library_moves_to_a_new_socket(chat: RunningChat) -> None:
    alice = framed(chat, "alice")
    bob = chat.tcp("bob")
    expect_event(alice, "join", nick="bob")
    fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    alice.move_to(fresh)
    alice.say("from my new address")
    bob.expect("alice: from my new address")
    bob.line("and back")
    expect_event(alice, "message", text="and back")
    alice.close()


def test_a_registered_nick_and_a_password_server_are_refused_over_udp(
    make_chat: Any, tmp_path: Any
) -> None:
    chat = make_chat()
    owner = chat.tcp("carol")
    owner.line("/register longenough1")
    owner.expect("registered")
    owner.close()
    client = UdpClient("127.0.0.1", udp_port(chat))
    with pytest.raises(Refused) as refused:
        client.join("carol")
    assert refused.value.code == "insecure"
    client.close()


def test_nick_taken_is_refused_and_a_new_join_works(chat: RunningChat) -> None:
    bob = chat.tcp("bob")
    client = UdpClient("127.0.0.1", udp_port(chat))
    with pytest.raises(Refused) as refused:
        client.join("bob")
    assert refused.value.code == "nick_taken"
    client.join("bobby")
    expect_event(client, "welcome")
    client.close()
    bob.close()


def test_udp_sessions_take_slots_of_the_connection_gate(make_chat: Any) -> None:
    chat = make_chat(max_connections_per_ip=2)
    one = framed(chat, "one")
    two = framed(chat, "two")
    three = UdpClient("127.0.0.1", udp_port(chat))
    with pytest.raises(Refused) as refused:
        three.join("three")
    assert refused.value.code == "per_address"
    one.close()
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 1)
    three.join("three")
    three.close()
    two.close()


def test_bare_mode_end_to_end(chat: RunningChat) -> None:
    bob = chat.tcp("bob")
    person = Datagrams(udp_port(chat))
    person.send("hello, is anyone there?\n")
    instructions = person.expect(b"YOURNICK").decode()
    code = instructions.split("send")[1].split()[0]
    person.send(f"{code} dave\n")
    person.expect(b"Welcome, dave")
    bob.expect("dave joined (datagrams)")
    person.send("hi bob\n")
    bob.expect("dave: hi bob")
    bob.line("hi dave")
    assert person.expect(b"bob: hi dave") == b"bob: hi dave\r\n"
    person.send("/quit\n")
    person.expect(b"bye")
    bob.expect("dave left")
    person.close()


def test_bare_mode_with_a_wrong_code_gets_instructions_again(chat: RunningChat) -> None:
    person = Datagrams(udp_port(chat))
    person.send("zzzzzz dave\n")  # 12 bytes: room for the short form only
    assert person.expect(b"NICK").endswith(b" NICK\r\n")
    udp = chat.runtime.udp
    assert udp is not None and not udp.by_addr
    person.close()


def test_no_udp_turns_it_off(make_chat: Any) -> None:
    chat = make_chat(udp_enabled=False)
    assert chat.runtime.udp_port is None


def test_healthz_lists_the_udp_listener(chat: RunningChat) -> None:
    from tests.test_health import get_health

    status, body = get_health(chat)
    assert status == 200 and body["udp"] == {"listening": True, "port": udp_port(chat)}
    udp = chat.runtime.udp
    assert udp is not None
    udp.stop()
    chat.runtime.udp = None
    status, body = get_health(chat)
    assert status == 503 and "udp is not listening" in body["problems"]  # type: ignore[operator]


def test_cli_flags() -> None:
    from webchat.cli import build_parser

    args = build_parser().parse_args(["--no-udp", "--udp-port", "9999", "--udp-idle-timeout", "2"])
    assert args.no_udp and args.udp_port == 9999 and args.udp_idle_timeout == 2.0
    assert build_parser().parse_args(["--udp-port", "auto"]).udp_port is None


def test_a_server_with_a_password_refuses_udp_joins(make_chat: Any, tmp_path: Any) -> None:
    from webchat.accounts.passwords import Passwords

    path = tmp_path / "server-password"
    path.write_text(Passwords(8, 1024).hash("club-secret-42") + "\n")
    chat = make_chat(server_password_file=str(path))
    client = UdpClient("127.0.0.1", udp_port(chat))
    with pytest.raises(Refused) as refused:
        client.join("alice")
    assert refused.value.code == "insecure" and "password" in refused.value.text
    client.close()
    person = Datagrams(udp_port(chat))
    person.send("let me in, please\n")
    code = person.expect(b"YOURNICK").decode().split("send")[1].split()[0]
    person.send(f"{code} alice\n")
    assert b"has a password" in person.expect(b"error")
    person.close()


def test_a_client_that_stops_acknowledging_is_cut_off_as_too_slow(make_chat: Any) -> None:
    chat = make_chat(rate_per_second=0, outbox_max_events=200)
    bob = chat.tcp("bob")
    raw = Datagrams(udp_port(chat))
    raw.send(hello())
    cookie = json.loads(raw.expect(b"cookie"))["cookie"]
    raw.send({"t": "join", "cookie": cookie, "nick": "stuck"})
    raw.expect(b"joined")
    bob.expect("stuck joined")
    for i in range(1000):  # never acknowledged: the window fills, then the outbox
        bob.line(f"flood {i}")
    line = bob.expect("stuck left", timeout=20)
    assert "too slow" in line
    raw.close()


def test_udp_lines_share_the_tcp_rate_limit(make_chat: Any) -> None:
    chat = make_chat(rate_per_second=1, rate_burst=3, flood_refusals=0)
    alice = framed(chat, "alice")
    for i in range(6):
        alice.say(f"quick {i}")
    refusal = expect_event(alice, "error", code="rate_limited")
    assert refusal["text"]
    wait_until(alice.all_acknowledged)  # refused lines are still applied once, not resent
    alice.close()


def test_over_ipv6(make_chat: Any) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    chat = make_chat(tcp_host="::1")
    client = UdpClient("::1", udp_port(chat))
    client.join("six")
    expect_event(client, "welcome", nick="six")
    client.say("over v6")
    expect_event(client, "message", text="over v6")
    client.close()


def test_no_datagram_from_the_server_is_over_1200_bytes(make_chat: Any) -> None:
    chat = make_chat(max_nick_chars=24)
    raw = Datagrams(udp_port(chat))
    raw.send(hello())
    cookie = json.loads(raw.expect(b"cookie"))["cookie"]
    raw.send({"t": "join", "cookie": cookie, "nick": "n" * 1100})  # refused: too long
    reply = raw.expect(b"refused")
    assert len(reply) <= MAX_DATAGRAM
    raw.close()
