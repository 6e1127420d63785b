"""`webchat-client --udp` as a subprocess against a real chat."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import sys

from tests.support.chat import RunningChat
from tests.support.clients import DEFAULT_TIMEOUT
from tests.test_client import REPO, ChunkReader

PROMPT = "Enter your nickname: "


class UdpClientProcess:
    def __init__(self, port: int) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "webchat.client", "--udp", "127.0.0.1", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.out = ChunkReader(functools.partial(os.read, self.proc.stdout.fileno(), 65536))

    def type(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(DEFAULT_TIMEOUT)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def test_udp_client_chats_and_quits_with_0(chat: RunningChat) -> None:
    port = chat.runtime.udp_port
    assert port is not None
    bob = chat.tcp("bob")
    client = UdpClientProcess(port)
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
    client = UdpClientProcess(port)
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
    client = UdpClientProcess(port)
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
    client = UdpClientProcess(port)
    try:
        client.out.expect(PROMPT)
        client.type("erin")
        assert client.proc.wait(20) == 2
    finally:
        client.stop()
