"""The TCP side, byte by byte, as `nc` and `telnet` users meet it."""

from __future__ import annotations

import socket
import struct
import tracemalloc
import unicodedata

import pytest

from tests.support.clients import TcpClient, assert_no_tracebacks, wait_until

PROMPT = b"Enter your nickname: "


@pytest.fixture(autouse=True)
def no_tracebacks(caplog, capfd):
    yield
    assert_no_tracebacks(caplog.records, capfd.readouterr().err)


def unjoined(chat) -> TcpClient:
    client = chat.tcp()
    client.read_exact(PROMPT)
    return client


def say_and_sync(sender: TcpClient, text: str, *readers: TcpClient) -> None:
    """Send a line and wait until every reader has it, so later checks are ordered."""
    sender.line(text)
    for reader in readers:
        reader.expect(f": {text}")


def test_prompt_is_exactly_the_assignment_text_without_a_newline(chat):
    client = chat.tcp()
    client.read_exact(PROMPT)
    client.line("alice")
    # The next byte after the prompt starts the welcome: the prompt had no line end.
    assert client.read_line().startswith("*** Welcome, alice!")


def test_lf_and_crlf_both_end_a_line(chat):
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.send(b"with lf\n")
    sender.send(b"with crlf\r\n")
    assert reader.expect("alice:") == "alice: with lf"
    assert reader.read_line() == "alice: with crlf\r\n"


def test_a_line_split_over_many_sends_arrives_whole(chat):
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    text = "héllo ✓ wörld 👋"
    for byte in (text + "\r\n").encode():  # splits every multi-byte character
        sender.send(bytes([byte]))
    assert reader.expect("alice:") == f"alice: {text}"


def test_many_lines_in_one_send_arrive_in_order(unlimited_chat):
    chat = unlimited_chat
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.send("".join(f"line {i}\n" if i % 2 else f"line {i}\r\n" for i in range(50)))
    got = reader.read_until("alice: line 49")
    assert [line for line in got if line.startswith("alice:")] == [
        f"alice: line {i}" for i in range(50)
    ]


def test_nick_and_first_message_in_one_send(chat):
    reader = chat.tcp("bob")
    client = unjoined(chat)
    client.send(b"alice\r\nhello at once\r\n")
    assert reader.expect("alice:") == "alice: hello at once"


def test_invalid_utf8_is_replaced_and_not_fatal(chat):
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.send(b"bad \xc3\x28 \x80 \xed\xa0\x80 end\n")
    line = reader.expect("alice:")
    assert line.startswith("alice: bad \ufffd( \ufffd ") and line.endswith(" end")
    say_and_sync(sender, "still here", reader)


@pytest.mark.parametrize("ending", [b"\n", b"\r\n"])
def test_line_of_exactly_the_limit_passes_and_one_byte_more_is_refused(make_chat, ending):
    chat = make_chat(max_line_bytes=64)
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.send(b"a" * 64 + ending)
    assert reader.expect("alice:") == "alice: " + "a" * 64
    sender.send("é".encode() * 32 + ending)  # the limit counts bytes, not characters
    assert reader.expect("alice:") == "alice: " + "é" * 32
    sender.send(b"b" * 65 + ending)
    assert sender.expect("error") == (
        "*** error: line too long: more than 64 bytes; it was not sent"
    )
    say_and_sync(sender, "after", reader)
    reader_lines = reader.received.decode()
    assert "b" * 64 not in reader_lines, "a refused line reached someone"


def test_overlong_nick_line_is_refused_and_the_prompt_comes_again(make_chat):
    chat = make_chat(max_line_bytes=32)
    client = unjoined(chat)
    client.send(b"n" * 33 + b"\r\n")
    assert client.read_line() == "*** error: nickname line is too long (limit 32 bytes)\r\n"
    client.read_exact(PROMPT)
    client.line("alice")
    client.expect("Welcome, alice!")


def test_two_megabyte_line_without_newline_is_refused_without_buffering_it(chat):
    sender, bob, carol = chat.tcp("alice"), chat.tcp("bob"), chat.tcp("carol")
    flood = b"x" * (2 * 1024 * 1024)
    tracemalloc.start()
    try:
        sender.sock.sendall(flood)  # the server reads and drops it as it comes
        assert sender.expect("error") == (
            "*** error: line too long: more than 4096 bytes; it was not sent"
        )
        say_and_sync(bob, "others are unaffected", carol)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024, f"the server held {peak} bytes for a line it refused"
    sender.send(b"\n")
    say_and_sync(sender, "the connection still works", bob, carol)
    assert b"xxxx" not in bob.received
    assert chat.runtime.hub.people.count() == 3


def test_disconnect_in_the_middle_of_a_line_drops_the_partial_line(chat):
    leaver, reader = chat.tcp("alice"), chat.tcp("bob")
    leaver.expect("bob joined")  # nothing unread, so closing sends FIN, not RST
    leaver.send(b"half a li")
    leaver.close()
    lines = reader.read_until("alice left")
    assert lines[-1] == "*** alice left (connection closed)"
    assert not any("half" in line for line in lines)


def test_leave_by_eof_is_announced_and_the_socket_closes(chat):
    leaver, reader = chat.tcp("alice"), chat.tcp("bob")
    leaver.sock.shutdown(socket.SHUT_WR)  # what `nc -N` does at the end of its input
    assert reader.expect("alice left") == "*** alice left (connection closed)"
    leaver.read_until_closed()
    assert leaver.closed
    wait_until(lambda: chat.runtime.hub.people.count() == 1)


def test_leave_by_reset_is_announced(chat):
    leaver, reader = chat.tcp("alice"), chat.tcp("bob")
    leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    leaver.close()  # RST instead of FIN
    line = reader.expect("alice left")
    assert line.startswith("*** alice left (connection")
    wait_until(lambda: chat.runtime.hub.people.count() == 1)
    say_and_sync(reader, "server still fine", chat.tcp("carol"))


def test_quit_with_a_reason_says_bye_and_others_see_the_reason(chat):
    leaver, reader = chat.tcp("alice"), chat.tcp("bob")
    leaver.line("/quit gone fishing")
    assert reader.expect("alice left") == "*** alice left (gone fishing)"
    rest = leaver.read_until_closed().decode()
    assert rest.endswith("*** bye (gone fishing)\r\n")


def test_tcp_sender_gets_no_echo_of_its_own_message(chat):
    sender, reader = chat.tcp("alice"), chat.tcp("bob")
    sender.line("hello")
    assert reader.expect("alice:") == "alice: hello"
    reader.line("marker")
    lines = sender.read_until("bob: marker")
    assert not any(line.startswith("alice:") for line in lines)


@pytest.mark.parametrize("taken", ["alice", "ALICE", "Alice", "ａｌｉｃｅ"])
def test_taken_nick_gets_one_line_why_then_the_prompt_again(chat, taken):
    holder = chat.tcp("alice")
    client = unjoined(chat)
    client.line(taken)
    assert client.read_line() == (
        f"*** error: the nickname {taken!r} is already taken (in use); choose another\r\n"
    )
    client.read_exact(PROMPT)
    client.line("alice2")
    client.expect("Welcome, alice2!")
    holder.close()


@pytest.mark.parametrize(
    ("nick", "why"),
    [
        ("", "a nickname is required"),
        ("two words", "nickname may only hold letters"),
        ("x" * 25, "the limit is 24"),
        ("admin", "is reserved"),
        ("-dash", "must start with a letter or a digit"),
    ],
)
def test_bad_nick_gets_one_line_why_then_the_prompt_again(chat, nick, why):
    client = unjoined(chat)
    client.line(nick)
    line = client.read_line()
    assert line.startswith("*** error: ") and why in line
    client.read_exact(PROMPT)
    client.line("fine")
    client.expect("Welcome, fine!")


def test_no_nick_in_time_ends_the_connection_with_a_reason(make_chat):
    chat = make_chat(nick_timeout=0.5)
    client = unjoined(chat)
    client.send(b"ali")  # a partial line does not count
    rest = client.read_until_closed(timeout=10)
    assert rest == b"*** no nickname given within 0.5 seconds; bye\r\n"
    assert chat.runtime.hub.people.count() == 0


def test_telnet_negotiation_is_ignored(chat):
    reader = chat.tcp("bob")
    client = unjoined(chat)
    # What `telnet` sends first: DO SUPPRESS-GO-AHEAD, WILL TERMINAL-TYPE, WILL NAWS + SB NAWS.
    client.send(b"\xff\xfd\x03\xff\xfb\x18\xff\xfb\x1f\xff\xfa\x1f\x00\x50\x00\x18\xff\xf0")
    client.send(b"alice\r\n")
    client.expect("Welcome, alice!")
    client.send(b"hi \xff\xf1there\r\n")  # IAC NOP inside a line
    assert reader.expect("alice:") == "alice: hi there"


HOSTILE = (
    "\x1b[2J\x1b[Hwiped \x1b[31mred\x1b[0m \x1b]0;owned\x07title \x07bell "
    "back\x08\x08space fake\rbob: lies \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \x9b1mC1 \x7f"
)
CLEANED = "wiped red title bell backspace fakebob: lies link C1 "


def assert_printable(text: str) -> None:
    for ch in text:
        assert unicodedata.category(ch) != "Cc", f"control {ch!r} in {text!r}"


def test_control_characters_from_a_terminal_never_reach_anyone(chat):
    sender, tcp_reader, ws_reader = chat.tcp("mallory"), chat.tcp("bob"), chat.ws("carol")
    sender.send(HOSTILE.encode() + b"\r\n")
    line = tcp_reader.expect("mallory:")
    assert line == f"mallory: {CLEANED}".rstrip()
    assert_printable(line)
    event = ws_reader.expect("message")
    assert event["text"] == CLEANED.rstrip()
    assert_printable(event["text"])
    raw = tcp_reader.received
    assert not any(b < 0x20 and b not in b"\r\n" for b in raw) and b"\x7f" not in raw


def test_control_characters_from_a_browser_never_reach_a_terminal(chat):
    sender, tcp_reader = chat.ws("mallory"), chat.tcp("bob")
    sender.say(HOSTILE)
    line = tcp_reader.expect("mallory:")
    assert line == f"mallory: {CLEANED}".rstrip()
    sender.say("/me \x1b[5mblinks\x07")
    assert tcp_reader.expect("* mallory") == "* mallory blinks"
    raw = tcp_reader.received
    assert not any(b < 0x20 and b not in b"\r\n" for b in raw) and b"\x7f" not in raw


def test_every_server_line_ends_with_crlf_and_is_utf8(chat):
    peer = chat.ws("bob")
    client = unjoined(chat)
    client.send(b"alice\n")
    client.expect("Welcome")
    peer.expect(lambda e: e.get("type") == "join" and e["nick"] == "alice")
    peer.say("ünïcödé 👋 from bob")
    client.expect("ünïcödé")
    for command in [
        "/help",
        "/help msg",
        "/who",
        "/me waves",
        "/msg bob hi",
        "/nope",
        "/away lunch",
        "/back",
        "/nick alicia",
        "\xff\xfe",
        "x" * 5000,
    ]:
        client.send(command.encode("latin-1") if command == "\xff\xfe" else command.encode())
        client.send(b"\n")
    peer.say("last")
    client.expect("bob: last")
    client.line("/quit done")
    client.read_until_closed()
    raw = bytes(client.received)
    assert raw.startswith(PROMPT)
    body = raw[len(PROMPT) :]
    assert body.endswith(b"\r\n")
    assert body.count(b"\n") == body.count(b"\r\n") == body.count(b"\r")
    lines = body.decode("utf-8").split("\r\n")[:-1]  # strict: raises on invalid UTF-8
    assert len(lines) > 20
    for line in lines:
        assert line and "\n" not in line
        assert_printable(line)
