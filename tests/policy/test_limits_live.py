"""Rate, flood and per-address limits on a live server, over both transports, at their edges."""

from __future__ import annotations

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import (
    TcpClient,
    WsClient,
    assert_no_tracebacks,
    http_request,
    wait_until,
    websocket_upgrade_headers,
)

# A refill so slow that no token comes back while a test runs: the burst is exact.
NO_REFILL = 0.001


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


class Typist:
    """One user on either transport, seen as lines typed and errors received."""

    def __init__(self, chat: RunningChat, kind: str, nick: str) -> None:
        self.kind = kind
        self.nick = nick
        self.tcp: TcpClient | None = chat.tcp(nick) if kind == "tcp" else None
        self.ws: WsClient | None = chat.ws(nick) if kind == "ws" else None

    def type_lines(self, lines: list[str]) -> None:
        if self.tcp is not None:
            self.tcp.send("".join(f"{line}\r\n" for line in lines))  # a paste: one send
        else:
            assert self.ws is not None
            for line in lines:
                self.ws.say(line)

    def expect_error(self, code: str, words: str) -> str:
        if self.tcp is not None:
            return self.tcp.expect(lambda line: line.startswith("*** error:") and words in line)
        assert self.ws is not None
        event = self.ws.expect("error")
        assert event["code"] == code and words in event["text"], event
        return str(event["text"])


@pytest.mark.parametrize("kind", ["tcp", "ws"])
def test_a_pasted_burst_passes_whole_and_the_next_line_is_refused(make_chat, kind):
    chat = make_chat(rate_per_second=NO_REFILL, rate_burst=10, flood_refusals=0)
    observer = chat.ws("observer")
    typist = Typist(chat, kind, "paster")
    typist.type_lines([f"line {i}" for i in range(11)])
    error = typist.expect_error("rate_limited", "slow down")
    assert "burst of 10" in error
    typist.type_lines(["/quit bye"])  # /quit is never refused
    seen = observer.read_until(lambda e: e["type"] == "leave")
    assert [e["text"] for e in seen if e["type"] == "message"] == [f"line {i}" for i in range(10)]
    assert seen[-1]["text"] == "bye"


@pytest.mark.parametrize("kind", ["tcp", "ws"])
def test_commands_count_against_the_rate_too(make_chat, kind):
    chat = make_chat(rate_per_second=NO_REFILL, rate_burst=2, flood_refusals=0)
    typist = Typist(chat, kind, "asker")
    typist.type_lines(["/who", "/who", "/who"])
    typist.expect_error("rate_limited", "slow down")


@pytest.mark.parametrize("kind", ["tcp", "ws"])
def test_flooding_past_the_refusal_limit_disconnects_with_a_reason(make_chat, kind):
    chat = make_chat(rate_per_second=NO_REFILL, rate_burst=2, flood_refusals=3, flood_window=60)
    observer = chat.ws("observer")
    typist = Typist(chat, kind, "flooder")
    typist.type_lines([f"spam {i}" for i in range(2 + 3)])  # the burst, then 3 refusals: allowed
    for _ in range(3):
        typist.expect_error("rate_limited", "slow down")
    assert chat.runtime.hub.people.find("flooder") is not None
    typist.type_lines(["one refusal too many"])
    left = observer.expect("leave")
    assert left["nick"] == "flooder" and left["text"].startswith("flooding")
    if typist.tcp is not None:
        assert b"*** disconnected: flooding" in typist.tcp.read_until_closed()
    else:
        assert typist.ws is not None
        code, reason = typist.ws.wait_closed()
        assert code == 1008 and reason.startswith("flooding")


def test_a_flood_in_one_paste_still_gets_every_refusal_before_the_goodbye(make_chat):
    chat = make_chat(rate_per_second=NO_REFILL, rate_burst=2, flood_refusals=3, flood_window=60)
    flooder = chat.tcp("flooder")
    flooder.send("".join(f"spam {i}\r\n" for i in range(2 + 3 + 1)))
    lines = flooder.read_until_closed().decode().splitlines()
    refusals = [i for i, line in enumerate(lines) if "slow down" in line]
    assert len(refusals) == 3
    assert lines[-1].startswith("*** disconnected: flooding")


def test_rate_limit_zero_turns_it_off(make_chat):
    chat = make_chat(rate_per_second=0, rate_burst=1)
    observer = chat.ws("observer")
    sender = chat.tcp("sender")
    sender.send("".join(f"m{i}\r\n" for i in range(200)))
    seen = observer.read_until(lambda e: e.get("text") == "m199")
    assert len([e for e in seen if e["type"] == "message"]) == 200


def test_connections_per_address_count_both_transports_and_refuse_at_the_limit(make_chat):
    chat = make_chat(max_connections_per_ip=2)
    first = chat.tcp("first")
    second = chat.ws("second")
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 2)

    refused_tcp = TcpClient(chat.tcp_port)
    text = refused_tcp.read_until_closed()
    assert (
        text
        == b"*** error: too many connections from 127.0.0.1 (limit 2); close one and try again\r\n"
    )

    reply = http_request(
        chat.web.server_port, "GET", "/ws", websocket_upgrade_headers({"Origin": chat.url})
    )
    assert reply.status == 429 and b"Too many connections from 127.0.0.1 (limit 2)" in reply.body

    second.close()
    wait_until(lambda: chat.runtime.gate.count("127.0.0.1") == 1)
    again = chat.tcp("again")
    first.line("still fine")
    assert again.expect("first:") == "first: still fine"


def test_no_limit_on_connections_when_zero(make_chat):
    chat = make_chat(max_connections_per_ip=0)
    clients = [chat.tcp(f"u{i}") for i in range(30)]
    wait_until(lambda: chat.runtime.hub.people.count() == 30)
    clients[0].line("/quit")
