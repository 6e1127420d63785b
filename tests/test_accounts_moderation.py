"""Moderation on a real server: operators, kicks, bans and mutes that outlive a
restart and expire, a banned address under a new nick, and /ignore."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chat import RunningChat, start_chat
from tests.support.clients import TcpClient, WsClient, wait_until

PASSWORD = "correct-horse-battery"
MakeChat = Callable[..., RunningChat]


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[Callable[[], RunningChat]]:
    """The same chat (one history file, boss a server operator), started again on demand."""
    stops: list[Callable[[], None]] = []

    def start() -> RunningChat:
        for stop in stops:
            stop()
        chat, stop = start_chat(
            history_db=str(tmp_path / "chat.sqlite3"), operators=("boss",), rate_per_second=0
        )
        stops.append(stop)
        return chat

    yield start
    for stop in stops:
        stop()


def boss(chat: RunningChat, first: bool = False) -> WsClient:
    """The server operator; registers on the first run, logs in afterwards."""
    client = chat.ws()
    if first:
        client.join("boss")
        client.say(f"/register {PASSWORD}")
        client.expect(lambda e: e.get("code") == "registered")
        client.say("/quit")
        client.wait_closed()
        client = chat.ws()
    assert client.join("boss", password=PASSWORD)["operator"] is True
    return client


def code_is(code: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("code") == code


def in_dev(chat: RunningChat, owner: str, guest: str) -> tuple[WsClient, WsClient]:
    """``owner`` makes #dev (so is its operator), ``guest`` enters it, and owner has seen it."""
    first = chat.ws(owner)
    first.say("/join #dev")
    second = chat.ws(guest)
    second.say("/join #dev")
    first.expect(lambda e: e.get("type") == "enter" and e.get("nick") == guest)
    return first, second


def refused(chat: RunningChat, nick: str, source: str = "127.0.0.1") -> str:
    """Try to join over TCP from ``source``; the error line that refuses it."""
    client = TcpClient(chat.tcp_port, source=source)
    client.read_exact(b"Enter your nickname: ")
    client.line(nick)
    line = client.expect(lambda s: "error" in s or "Welcome" in s)
    client.close()
    return line


def test_a_server_ban_holds_across_a_restart_and_covers_the_address(
    restartable: Callable[[], RunningChat],
) -> None:
    chat = restartable()
    op = boss(chat, first=True)
    troll = chat.tcp("troll")
    op.say("/ban troll 2h spamming")
    event = op.expect("ban")
    assert event["target"] == "troll" and event["room"] == "#lobby"
    assert event["duration"] == "2h" and event["until"] and event["text"] == "spamming"
    assert "banned by boss: spamming" in troll.read_until_closed().decode()

    chat = restartable()
    assert "banned from this server" in refused(chat, "troll")
    assert "banned from this server" in refused(chat, "fresh-nick")  # same address
    assert "Welcome" in refused(chat, "fresh-nick", source="127.0.0.9")  # another address
    op = boss(chat)
    op.say("/bans")
    listed = op.expect("bans")
    assert [b["nick"] for b in listed["bans"]] == ["troll"]
    op.say("/unban troll")
    op.expect("unban")
    assert "Welcome" in refused(chat, "troll")


def test_a_mute_holds_across_a_restart_until_lifted(
    restartable: Callable[[], RunningChat],
) -> None:
    chat = restartable()
    op = boss(chat, first=True)
    chatty = chat.ws("chatty")
    op.say("/mute chatty too loud")
    assert op.expect("mute")["until"] is None
    chatty.say("can I talk?")
    assert "until an operator lifts it" in chatty.expect(code_is("muted"))["text"]

    chat = restartable()
    op = boss(chat)
    chatty = chat.ws("chatty")
    chatty.say("and now?")
    chatty.expect(code_is("muted"))
    chatty.say("/msg boss psst")
    chatty.expect(code_is("muted"))  # a server-wide mute covers private messages too
    op.say("/unmute chatty")
    op.expect("unmute")
    chatty.say("thanks")
    op.expect(lambda e: e.get("text") == "thanks")


def test_a_mute_and_a_room_ban_end_when_their_time_is_up(make_chat: MakeChat) -> None:
    chat = make_chat(rate_per_second=0)
    owner, other = in_dev(chat, "owner", "other")
    owner.send({"type": "say", "room": "#dev", "text": "/mute other 1s"})
    assert owner.expect("mute")["duration"] == "1s"
    other.send({"type": "say", "room": "#dev", "text": "early"})
    other.expect(code_is("muted"))

    def posts() -> bool:
        other.send({"type": "say", "room": "#dev", "text": "later"})
        event = other.expect(lambda e: e.get("text") == "later" or e.get("code") == "muted")
        return event.get("type") == "message"

    wait_until(posts, 5, "the mute ending")
    owner.send({"type": "say", "room": "#dev", "text": "/ban other 1s"})
    owner.expect("ban")
    other.expect(lambda e: e.get("type") == "ban")
    other.say("/join #dev")
    other.expect(code_is("banned"))

    def enters() -> bool:
        other.say("/join #dev")
        event = other.expect(lambda e: e.get("code") in ("banned", "room"))
        return event["code"] == "room"

    wait_until(enters, 5, "the ban ending")


def test_room_operators_kick_in_their_room_and_no_one_else_may(make_chat: MakeChat) -> None:
    chat = make_chat(rate_per_second=0)
    owner = chat.tcp("owner")
    owner.line("/join #dev")
    guest = chat.ws("guest")
    guest.say("/join #dev")
    owner.expect("guest entered")
    guest.send({"type": "say", "room": "#dev", "text": "/kick owner"})
    assert "operators of #dev" in guest.expect(code_is("not_operator"))["text"]
    guest.send({"type": "say", "room": "#lobby", "text": "/kick owner"})  # the server's
    assert "server operators" in guest.expect(code_is("not_operator"))["text"]
    owner.line("/kick guest off topic")
    assert owner.expect("kicked") == "[#dev] *** owner kicked guest (off topic)"
    kick = guest.expect("kick")
    assert kick["room"] == "#dev" and kick["target"] == "guest"
    owner.line("still here?")
    guest.send({"type": "say", "room": "#dev", "text": "let me back"})
    guest.expect(code_is("not_in_room"))
    owner.line("/names")
    assert "1 in #dev: owner" in owner.expect("in #dev")


def test_operators_share_and_lose_their_status(make_chat: MakeChat) -> None:
    chat = make_chat(rate_per_second=0)
    owner, helper = in_dev(chat, "owner", "helper")
    owner.send({"type": "say", "room": "#dev", "text": "/names"})
    people = {u["nick"]: u["op"] for u in owner.expect("names")["users"]}
    assert people == {"owner": True, "helper": False}
    owner.send({"type": "say", "room": "#dev", "text": "/op helper"})
    assert helper.expect("op")["target"] == "helper"
    helper.send({"type": "say", "room": "#dev", "text": "/names"})
    assert all(u["op"] for u in helper.expect("names")["users"])
    helper.send({"type": "say", "room": "#dev", "text": "/deop owner"})
    owner.expect("deop")
    owner.send({"type": "say", "room": "#dev", "text": "/op owner"})
    owner.expect(code_is("self"))
    owner.send({"type": "say", "room": "#dev", "text": "/kick helper"})
    owner.expect(code_is("not_operator"))


def test_an_unproven_operator_leaves_no_status_for_the_next_holder_of_the_nick(
    make_chat: MakeChat,
) -> None:
    chat = make_chat(rate_per_second=0)
    first, _stays = in_dev(chat, "owner", "stays")
    first.say("/quit")
    first.wait_closed()
    impostor = chat.ws("owner")
    impostor.say("/join #dev")
    impostor.expect(code_is("room"))
    impostor.send({"type": "say", "room": "#dev", "text": "/kick stays"})
    impostor.expect(code_is("not_operator"))


def test_a_server_operator_acts_everywhere_and_only_one_may_act_on_another(
    make_chat: MakeChat,
) -> None:
    chat = make_chat(rate_per_second=0, operators=("boss",))
    op = boss(chat, first=True)
    owner, troll = in_dev(chat, "owner", "troll")
    op.say("/join #dev")
    op.expect(code_is("room"))
    owner.send({"type": "say", "room": "#dev", "text": "/kick boss"})
    assert "server operator" in owner.expect(code_is("not_operator"))["text"]
    op.send({"type": "say", "room": "#dev", "text": "/mute troll 10m"})
    troll.expect("mute")
    op.send({"type": "say", "room": "#lobby", "text": "/kick troll bye"})
    code, reason = troll.wait_closed()
    assert code == 1008 and "kicked by boss: bye" in reason
    owner.expect(lambda e: e.get("type") == "leave" and e.get("nick") == "troll")


def test_ignore_stops_talk_but_not_presence_and_an_account_remembers_it(
    make_chat: MakeChat,
) -> None:
    chat = make_chat(rate_per_second=0)
    bob = chat.ws("bob")
    bob.say(f"/register {PASSWORD}")
    bob.expect(code_is("registered"))
    carol = chat.ws("carol")
    pest = chat.tcp("pest")
    bob.say("/ignore pest")
    bob.expect(code_is("ignored"))
    pest.line("hello all")
    pest.line("/me waves")
    pest.line("/msg bob psst")
    pest.line("/nick pest2")
    pest.line("after the rename")
    carol.expect(lambda e: e.get("text") == "after the rename")
    carol.say("fence")
    seen = bob.read_until(lambda e: e.get("text") == "fence")
    assert not [e for e in seen if e.get("type") in ("message", "me", "private")][:-1]
    assert any(e.get("type") == "nick" and e.get("nick") == "pest" for e in seen)
    bob.say("/quit")
    bob.wait_closed()
    pest.line("/quit")
    pest.read_until_closed()

    pest = chat.tcp("pest")  # comes back under the ignored nick
    bob = chat.ws()
    bob.join("bob", password=PASSWORD)
    bob.say("/ignore")
    assert bob.expect(code_is("ignoring"))["ignoring"] == ["pest"]
    pest.line("remember me?")
    carol.expect(lambda e: e.get("text") == "remember me?")
    carol.say("fence 2")
    seen = bob.read_until(lambda e: e.get("text") == "fence 2")
    assert "remember me?" not in [e.get("text") for e in seen]
    bob.say("/unignore pest")
    bob.expect(code_is("unignored"))
    pest.line("heard again")
    bob.expect(lambda e: e.get("text") == "heard again")
