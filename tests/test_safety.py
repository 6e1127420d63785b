"""Property tests: whatever bytes arrive, nobody else receives a control character or escape."""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.chat import RunningChat, start_chat
from tests.support.clients import TcpClient, WsClient
from webchat.text import clean_text, strip_telnet

BIDI_CONTROLS = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]}

# Bytes a hostile terminal user might send, mixed with ordinary text.
hostile_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from(
            [
                b"\x1b[2J",
                b"\x1b[H",
                b"\x1b]0;owned\x07",
                b"\x1b]8;;http://x\x1b\\",
                b"\x1bP1$r\x1b\\",
                b"\x9b31m",
                b"\x07",
                b"\x08\x08\x08",
                b"\r",
                b"\rmallory: fake",
                b"\xe2\x80\xae",  # RIGHT-TO-LEFT OVERRIDE
                b"\xff\xfb\x01",  # telnet IAC WILL ECHO
                b"\xff\xfa\x18\x01\xff\xf0",  # telnet subnegotiation
                b"\x1b",
                b"\xc3",
                "héllo 👋".encode(),
            ]
        ),
    ),
    max_size=8,
).map(lambda parts: b"".join(parts).replace(b"/", b"|"))  # no commands: /quit would end the test


def assert_safe_line(line: str) -> None:
    """A received line may hold printable text only; CRLF was already split off."""
    for ch in line:
        assert unicodedata.category(ch) != "Cc", f"control {ch!r} in {line!r}"
        assert ch not in BIDI_CONTROLS, f"bidi control {ch!r} in {line!r}"


@given(st.text())
def test_clean_text_leaves_no_control_or_bidi_characters(text: str) -> None:
    assert_safe_line(clean_text(text))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Zl", "Zp"))))
def test_clean_text_keeps_printable_text(text: str) -> None:
    assert clean_text(text) == text


@given(st.binary())
def test_strip_telnet_removes_every_negotiation(data: bytes) -> None:
    assert b"\xff\xfb" not in strip_telnet(b"\xff\xfb\x01" + data.replace(b"\xff", b""))


@pytest.fixture(scope="module")
def shared_chat() -> Iterator[RunningChat]:
    chat, stop = start_chat(rate_per_second=0)  # hypothesis sends far faster than people type
    yield chat
    stop()


@pytest.fixture(scope="module")
def trio(shared_chat: RunningChat) -> Iterator[tuple[TcpClient, TcpClient, WsClient]]:
    sender = shared_chat.tcp("mallory")
    tcp_reader = shared_chat.tcp("terminal_reader")
    ws_reader = shared_chat.ws("browser_reader")
    tcp_reader.expect("browser_reader joined")
    yield sender, tcp_reader, ws_reader
    for client in (sender, tcp_reader, ws_reader):
        client.close()


marks = itertools.count()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=hostile_bytes)
def test_hostile_bytes_never_reach_others_raw(
    trio: tuple[TcpClient, TcpClient, WsClient], payload: bytes
) -> None:
    sender, tcp_reader, ws_reader = trio
    mark = f"MARK{next(marks)}"
    sender.send(payload + b"\n" + mark.encode() + b"\n")
    # Every byte the terminal reader got up to the marker must be safe.
    while True:
        line = tcp_reader.read_line()
        assert line.endswith("\r\n")
        body = line[:-2]
        assert "\r" not in body and "\n" not in body
        assert_safe_line(body)
        if body == f"mallory: {mark}":
            break
        assert body.startswith("mallory: "), f"unexpected line {body!r}"
    while True:
        event = ws_reader.expect("message")
        assert event["nick"] == "mallory"
        assert_safe_line(event["text"])
        if event["text"] == mark:
            break
