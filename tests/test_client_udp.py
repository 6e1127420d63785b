"""`webchat-client --udp` as a subprocess against a real chat."""

from __future__ import annotations

from tests.support.chat import RunningChat
from tests.support.client_process import ClientProcess
from tests.support.clients import DEFAULT_TIMEOUT

PROMPT = "Enter your nickname: "


def udp_client(port: int) -> ClientProcess:
    return ClientProcess(["--udp", "127.0.0.1", str(port)])


def test_udp_client_chats_and_quits_with_0(chat: RunningChat) -> None:
    port = chat.runtime.udp_port
    assert port is not None
    bob = chat.tcp("bob")
    client = udp_client(port)
    try:
        client.out.expect(PROMPT)
        client.type("bob")  # taken: asked again
        client.out.expect("error")
        client.out.expect(PROMPT)
        client.type("alice")
        client.out.expect("*** Welcome, alice!")
        bob.expect("alice joined (datagrams)")
        client.type("hello from udp")
        bob.expect("alice: hello from udp")
        bob.line("hello from tcp ☃")
        client.out.expect("bob: hello from tcp ☃")
        client.type("/quit bye all")
        assert client.proc.wait(DEFAULT_TIMEOUT) == 0
        bob.expect("alice left (bye all)")
    finally:
        client.stop()


def test_udp_client_end_of_input_quits(chat: RunningChat) -> None:
    port = chat.runtime.udp_port
    assert port is not None
    bob = chat.tcp("bob")
    client = udp_client(port)
    try:
        client.out.expect(PROMPT)
        client.type("carol")
        client.out.expect("*** Welcome, carol!")
        assert client.proc.stdin is not None
        client.proc.stdin.close()
        assert client.proc.wait(DEFAULT_TIMEOUT) == 0
        bob.expect("carol left")
    finally:
        client.stop()


def test_udp_client_exits_1_when_the_server_goes(chat: RunningChat) -> None:
    port = chat.runtime.udp_port
    assert port is not None
    client = udp_client(port)
    try:
        client.out.expect(PROMPT)
        client.type("dora")
        client.out.expect("*** Welcome, dora!")
        chat.stop()
        client.out.expect("server shutting down")
        assert client.proc.wait(DEFAULT_TIMEOUT) == 1
    finally:
        client.stop()


def test_udp_client_with_no_server_exits_2(chat: RunningChat) -> None:
    port = chat.runtime.udp_port
    assert port is not None
    chat.stop()
    client = udp_client(port)
    try:
        client.out.expect(PROMPT)
        client.type("erin")
        assert client.proc.wait(20) == 2
    finally:
        client.stop()
