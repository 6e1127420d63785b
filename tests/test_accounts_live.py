"""Accounts on a real server, over both transports: registering, proving a nick at
join, the server password, and that no password ever reaches a log or the disk."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient, WsClient

PASSWORD = "correct-horse-battery"
OTHER = "wrong-horse-battery"
MakeChat = Callable[..., RunningChat]


def register(chat: RunningChat, nick: str, password: str = PASSWORD) -> None:
    """Register ``nick`` from a terminal, then leave, so the nick is free but owned."""
    client = chat.tcp(nick)
    client.line(f"/register {password}")
    client.expect("is registered to you")
    client.line("/quit")
    client.read_until_closed()


def refusal(client: WsClient, code: str) -> dict[str, object]:
    return client.expect(lambda e: e.get("type") == "error" and e.get("code") == code)


def test_a_registered_nick_asks_a_terminal_for_its_password(chat: RunningChat) -> None:
    register(chat, "alice")
    client = TcpClient(chat.tcp_port)
    client.read_exact(b"Enter your nickname: ")
    client.line("Alice")  # another case of the same nick is the same account
    client.read_exact(b"Password for Alice: ")
    client.line(OTHER)
    assert "wrong password" in client.expect("error")
    client.read_exact(b"Enter your nickname: ")
    client.line("alice")
    client.read_exact(b"Password for alice: ")
    client.line(PASSWORD)
    assert "Welcome, alice!" in client.expect("Welcome")


def test_a_look_alike_of_a_registered_nick_needs_its_password(chat: RunningChat) -> None:
    register(chat, "alice")
    client = chat.ws()
    client.send({"type": "join", "nick": "\u0430lice"})  # a Cyrillic a
    assert "registered" in str(refusal(client, "password_required")["text"])


def test_a_websocket_join_carries_the_password(chat: RunningChat) -> None:
    register(chat, "alice")
    client = chat.ws()
    client.send({"type": "join", "nick": "alice"})
    refusal(client, "password_required")
    client.send({"type": "join", "nick": "alice", "password": OTHER})
    refusal(client, "wrong_password")
    welcome = client.join("alice", password=PASSWORD)
    assert welcome["account"] is True and welcome["operator"] is False
    assert chat.ws("bob") is not None  # an unregistered nick needs nothing


def test_the_welcome_says_who_is_a_server_operator(make_chat: MakeChat) -> None:
    chat = make_chat(operators=("boss",))
    plain = chat.ws()
    assert plain.join("boss")["operator"] is False  # named, but not registered: no power
    plain.say(f"/register {PASSWORD}")
    plain.expect(lambda e: e.get("code") == "registered")
    plain.say("/quit")
    plain.wait_closed()
    welcome = chat.ws().join("boss", password=PASSWORD)
    assert welcome["operator"] is True and welcome["account"] is True


def test_password_change_and_unregister(chat: RunningChat) -> None:
    client = chat.ws()
    client.join("alice")
    client.say("/password a b")
    assert refusal(client, "not_registered")
    client.say(f"/register {PASSWORD}")
    client.expect(lambda e: e.get("code") == "registered")
    client.say(f"/register {PASSWORD}")
    refusal(client, "already_registered")
    client.say(f"/password {OTHER} new-password-1")
    refusal(client, "wrong_password")
    client.say(f"/password {PASSWORD} new-password-1")
    client.expect(lambda e: e.get("code") == "password_changed")
    other = chat.ws()
    other.send({"type": "join", "nick": "alice", "password": PASSWORD})
    refusal(other, "wrong_password")  # the old password no longer works
    client.say("/unregister new-password-1")
    client.expect(lambda e: e.get("code") == "unregistered")
    client.say("/quit")
    client.wait_closed()
    assert chat.ws().join("alice")["account"] is False  # free for anyone again


def test_nick_change_to_a_registered_nick_needs_its_password(chat: RunningChat) -> None:
    register(chat, "alice")
    client = chat.ws("bob")
    client.say("/nick alice")
    refusal(client, "password_required")
    client.say(f"/nick alice {OTHER}")
    refusal(client, "wrong_password")
    client.say(f"/nick alice {PASSWORD}")
    client.expect(lambda e: e.get("type") == "nick" and e.get("new") == "alice")


def test_wrong_passwords_are_held_back_per_account_and_per_address(make_chat: MakeChat) -> None:
    chat = make_chat(login_failures=3, login_window=600)
    register(chat, "alice")
    register(chat, "carol")
    for source in ("127.0.0.2", "127.0.0.3", "127.0.0.4"):  # spread over addresses
        client = TcpClient(chat.tcp_port, source=source)
        client.read_exact(b"Enter your nickname: ")
        client.line("alice")
        client.read_exact(b"Password for alice: ")
        client.line(OTHER)
        client.expect("wrong password")
        client.close()
    # The account is held back, even with the right password, from a fresh address.
    late = chat.ws()
    late.send({"type": "join", "nick": "alice", "password": PASSWORD})
    assert "try again in" in str(refusal(late, "too_many_attempts")["text"])
    # That address (127.0.0.2) has one failure; three from one address hold it back too.
    client = TcpClient(chat.tcp_port, source="127.0.0.5")
    for _ in range(3):
        client.read_exact(b"Enter your nickname: ")
        client.line("carol")
        client.read_exact(b"Password for carol: ")
        client.line(OTHER)
        client.expect("wrong password")
    client.read_exact(b"Enter your nickname: ")
    client.line("carol")
    client.read_exact(b"Password for carol: ")
    client.line(PASSWORD)
    assert "too many wrong passwords" in client.expect("error")


def test_the_password_is_in_no_log_and_nowhere_on_disk(
    make_chat: MakeChat, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    db = tmp_path / "chat.sqlite3"
    chat = make_chat(history_db=str(db))
    secret = "Zebra-Quartz-7781-secret"
    client = chat.tcp("alice")
    client.line(f"/register {secret}")
    client.expect("is registered to you")
    client.line("/quit")
    client.read_until_closed()
    again = TcpClient(chat.tcp_port)
    again.read_exact(b"Enter your nickname: ")
    again.line("alice")
    again.read_exact(b"Password for alice: ")
    again.line(secret)
    again.expect("Welcome")
    web = chat.ws()
    web.send({"type": "join", "nick": "alice", "password": secret + "x"})
    refusal(web, "wrong_password")
    bob = chat.ws("bob")
    again.line("hello")
    bob.expect(lambda e: e.get("text") == "hello")
    chat.stop()
    needle = secret.encode()
    for file in tmp_path.iterdir():
        assert needle not in file.read_bytes(), f"the password is in {file.name}"
    assert secret not in caplog.text
    assert "$argon2id$" in db.read_bytes().decode("latin-1") or any(
        b"$argon2id$" in f.read_bytes() for f in tmp_path.iterdir()
    )


def test_a_server_password_is_asked_first_on_tcp_and_sent_in_the_join(
    make_chat: MakeChat, tmp_path: Path
) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "webchat", "hash-password"],
        input="club-secret-42\n",
        capture_output=True,
        text=True,
        check=True,
    )
    hashed = made.stdout.strip()
    assert hashed.startswith("$argon2id$") and "club-secret-42" not in hashed
    path = tmp_path / "server-password"
    path.write_text(hashed + "\n")
    chat = make_chat(server_password_file=str(path))
    client = TcpClient(chat.tcp_port)
    client.read_exact(b"Server password: ")
    client.line("guess-guess")
    assert "wrong server password" in client.expect("error")
    client.read_exact(b"Server password: ")
    client.line("club-secret-42")
    client.read_exact(b"Enter your nickname: ")
    client.line("alice")
    client.expect("Welcome, alice!")
    web = chat.ws()
    web.send({"type": "join", "nick": "bob"})
    refusal(web, "server_password_required")
    web.send({"type": "join", "nick": "bob", "server_password": "nope-nope"})
    refusal(web, "wrong_server_password")
    assert web.join("bob", server_password="club-secret-42")["nick"] == "bob"


def test_hash_password_refuses_a_short_password() -> None:
    made = subprocess.run(
        [sys.executable, "-m", "webchat", "hash-password"],
        input="short\n",
        capture_output=True,
        text=True,
    )
    assert made.returncode == 2 and "at least 8" in made.stderr


def test_a_missing_server_password_file_stops_the_start(tmp_path: Path) -> None:
    made = subprocess.run(
        [sys.executable, "-m", "webchat", "--server-password-file", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 2 and "server password file" in made.stderr
