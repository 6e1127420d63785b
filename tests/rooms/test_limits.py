"""The room limits at their edges (exactly the limit passes, one more is refused), over
both transports: rooms per user, rooms on the server, topic length, the expiry of
empty rooms and the permanent rooms; and how the settings are given."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import urllib.request
from typing import Any

from tests.support.chat import RunningChat
from tests.support.clients import WsClient, wait_until
from tests.support.rooms import TIMEOUT, Person, other
from webchat.cli import build_parser
from webchat.settings import Settings


def rooms_now(chat: RunningChat) -> dict[str, int]:
    """Room name -> members, as /rooms would list them right now."""
    return {str(r["room"]): int(str(r["users"])) for r in chat.runtime.hub.membership.listing()}


def entered(p: Person, room: str) -> None:
    p.sees(f"[{room}] *** {p.nick} entered", type="enter", room=room, nick=p.nick)


def is_rooms_line(line: str) -> bool:
    return re.match(r"\*\*\* \d+ rooms?: ", line) is not None


def history_of(chat: RunningChat, room: str) -> list[dict[str, Any]]:
    url = chat.url + "/api/history?" + urllib.parse.urlencode({"room": room})
    with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
        events: list[dict[str, Any]] = json.loads(reply.read())["events"]
        return events


# ----- rooms per user ----------------------------------------------------------------


def test_rooms_per_user_at_the_edge(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, max_rooms_per_user=3)  # #lobby counts
    alice = closing(Person(chat, "alice", via))
    alice.type("/join #a")
    entered(alice, "#a")
    alice.type("/join #b")
    entered(alice, "#b")
    alice.type("/join #c")
    alice.error("too_many_rooms")
    assert "#c" not in rooms_now(chat)
    # A room you are already in is no new room: it only becomes active.
    alice.type("/join #a")
    alice.notice("active", "#a", tcp_prefix="[#a] ")
    # Leaving one (the lobby too) makes room for one more.
    alice.type("/part #lobby")
    alice.notice("parted", "#lobby")
    alice.type("/join #c")
    entered(alice, "#c")
    alice.type("/join #d")
    alice.error("too_many_rooms")


def test_rooms_per_user_counts_the_rooms_of_the_join_frame(make_chat, closing):
    chat = make_chat(rate_per_second=0, max_rooms_per_user=3)
    alice = closing(WsClient(chat.url))
    alice.send({"type": "join", "nick": "alice", "rooms": ["#a", "#b", "#c"]})
    assert alice.expect("error")["code"] == "too_many_rooms"
    assert not {"#a", "#b", "#c"} & set(rooms_now(chat))
    welcome = alice.join("alice", rooms=["#a", "#b"])
    assert [r["room"] for r in welcome["rooms"]] == ["#lobby", "#a", "#b"]
    # #lobby named again, and a name twice, are no extra rooms.
    bob = closing(WsClient(chat.url))
    welcome = bob.join("bob", rooms=["#lobby", "#a", "#A", "#b"])
    assert [r["room"] for r in welcome["rooms"]] == ["#lobby", "#a", "#b"]
    alice.say("/join #c")
    assert alice.expect("error")["code"] == "too_many_rooms"


def test_the_default_is_twenty_rooms_per_user(make_chat, closing, via):
    chat = make_chat(rate_per_second=0)
    alice = closing(Person(chat, "alice", via))
    for i in range(1, 20):  # with #lobby: 20
        alice.type(f"/join #r{i}")
        entered(alice, f"#r{i}")
    alice.type("/join #r20")
    alice.error("too_many_rooms")


# ----- rooms on the server -----------------------------------------------------------


def test_rooms_on_the_server_at_the_edge(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, max_rooms=3)  # #lobby counts
    alice = closing(Person(chat, "alice", via))
    bob = closing(Person(chat, "bob", other(via)))
    alice.type("/join #a")
    entered(alice, "#a")
    bob.type("/join #b")
    entered(bob, "#b")
    alice.type("/join #c")
    alice.error("rooms_full")
    assert sorted(rooms_now(chat)) == ["#a", "#b", "#lobby"]
    # Existing rooms can still be entered.
    alice.type("/join #b")
    entered(alice, "#b")
    bob.type("/join #a")
    entered(bob, "#a")
    bob.type("/join #other")
    bob.error("rooms_full")


def test_permanent_rooms_count_towards_the_rooms_on_the_server(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, max_rooms=3, permanent_rooms=("#help",))
    alice = closing(Person(chat, "alice", via))
    alice.type("/join #a")
    entered(alice, "#a")
    alice.type("/join #b")
    alice.error("rooms_full")
    alice.type("/join #help")
    entered(alice, "#help")


def test_a_join_frame_may_not_make_more_rooms_than_the_server_allows(make_chat, closing):
    chat = make_chat(rate_per_second=0, max_rooms=2)
    alice = closing(WsClient(chat.url))
    alice.send({"type": "join", "nick": "alice", "rooms": ["#a", "#b"]})
    got = alice.expect(lambda e: e.get("type") in ("error", "welcome"))
    assert len(rooms_now(chat)) <= 2, f"max_rooms=2, yet the server has {rooms_now(chat)}"
    assert got["type"] == "error" and got["code"] == "rooms_full", got
    welcome = alice.join("alice", rooms=["#a"])
    assert [r["room"] for r in welcome["rooms"]] == ["#lobby", "#a"]


# ----- topic length ------------------------------------------------------------------


def test_topic_length_at_the_edge(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, max_topic_chars=10)
    alice = closing(Person(chat, "alice", via, rooms=("#dev",)))
    watcher = closing(Person(chat, "watcher", other(via), rooms=("#dev",)))
    alice.type("/join #dev")
    alice.type("/topic " + "x" * 10)
    line = "[#dev] *** alice set the topic: " + "x" * 10
    watcher.sees(line, type="topic", room="#dev", text="x" * 10)
    alice.type("/topic " + "y" * 11)
    alice.error("topic_too_long", "10")
    alice.type("/topic " + "é" * 10)  # characters, not bytes
    watcher.sees("[#dev] *** alice set the topic: " + "é" * 10, type="topic", text="é" * 10)
    assert [r["topic"] for r in chat.runtime.hub.membership.listing() if r["room"] == "#dev"] == [
        "é" * 10
    ]


def test_the_default_topic_limit_is_300_characters(make_chat, closing, via):
    chat = make_chat(rate_per_second=0)
    alice = closing(Person(chat, "alice", via))
    alice.type("/topic " + "x" * 300)
    alice.sees("*** alice set the topic: " + "x" * 300, type="topic", text="x" * 300)
    alice.type("/topic " + "x" * 301)
    alice.error("topic_too_long", "300")


# ----- expiry and permanent rooms ----------------------------------------------------


def test_an_empty_room_lingers_then_is_gone_but_its_history_stays(make_chat, closing, via):
    expiry = 1.0
    chat = make_chat(rate_per_second=0, room_expiry=expiry)
    alice = closing(Person(chat, "alice", via, rooms=("#tmp",)))
    alice.post("#tmp", "remember me")
    alice.type("/topic #tmp short-lived")
    alice.sees("[#tmp] *** alice set the topic: short-lived", type="topic")
    alice.type("/part #tmp")
    alice.notice("parted", "#tmp")
    left = time.monotonic()
    # Empty, but still there (and still listed by /rooms) until the expiry.
    assert rooms_now(chat).get("#tmp") == 0
    alice.type("/rooms")
    if via == "web":
        got = {r["room"]: r for r in alice.w.expect("rooms")["rooms"]}
        assert got["#tmp"] == {"room": "#tmp", "users": 0, "topic": "short-lived"}
    else:
        assert "#tmp (0): short-lived" in alice.t.expect(is_rooms_line)
    wait_until(lambda: "#tmp" not in rooms_now(chat), 10 * expiry, "#tmp to expire")
    assert time.monotonic() - left >= expiry * 0.9
    alice.type("/rooms")
    if via == "web":
        assert "#tmp" not in [r["room"] for r in alice.w.expect("rooms")["rooms"]]
    else:
        assert "#tmp" not in alice.t.expect(is_rooms_line)
    texts = [e.get("text") for e in history_of(chat, "#tmp")]
    assert "remember me" in texts and "short-lived" in texts
    # The name is free again: entering makes a new room, with no topic.
    alice.type("/join #tmp")
    alice.notice("room", "You are now in #tmp", "no topic", tcp_prefix="[#tmp] ")


def test_a_room_empty_because_its_members_quit_expires_too(make_chat, closing):
    chat = make_chat(rate_per_second=0, room_expiry=0.3)
    alice = Person(chat, "alice", "tcp", rooms=("#tmp",))
    alice.type("/quit")
    alice.t.read_until_closed()
    alice.close()
    wait_until(lambda: "#tmp" not in rooms_now(chat), 5.0, "#tmp to expire")


def test_a_room_with_people_in_it_never_expires(make_chat, closing):
    chat = make_chat(rate_per_second=0, room_expiry=0.3)
    closing(Person(chat, "bob", "web", rooms=("#busy",)))
    alice = closing(Person(chat, "alice", "web", rooms=("#tmp", "#busy")))
    alice.type("/part #tmp")
    alice.notice("parted", "#tmp")
    alice.type("/part #busy")
    alice.notice("parted", "#busy")
    wait_until(lambda: "#tmp" not in rooms_now(chat), 5.0, "#tmp to expire")
    assert rooms_now(chat)["#busy"] == 1


def test_an_expired_room_frees_its_place_under_the_server_limit(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, max_rooms=2, room_expiry=0.3)
    alice = closing(Person(chat, "alice", via))
    alice.type("/join #a")
    entered(alice, "#a")
    alice.type("/part #a")
    alice.notice("parted", "#a")
    alice.type("/join #b")
    alice.error("rooms_full")  # #a lingers, and counts, until it expires
    wait_until(lambda: "#a" not in rooms_now(chat), 5.0, "#a to expire")
    alice.type("/join #b")
    entered(alice, "#b")


def test_permanent_rooms_exist_from_the_start_and_never_expire(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, room_expiry=0.3, permanent_rooms=("#help", "News"))
    assert rooms_now(chat) == {"#lobby": 0, "#help": 0, "#news": 0}
    alice = closing(Person(chat, "alice", via))
    alice.type("/rooms")
    if via == "web":
        got = {r["room"]: r["users"] for r in alice.w.expect("rooms")["rooms"]}
        assert got == {"#lobby": 1, "#help": 0, "#news": 0}
    else:
        line = alice.t.expect(is_rooms_line)
        assert "#help (0)" in line and "#news (0)" in line and "#lobby (1)" in line
    alice.type("/join #help")
    entered(alice, "#help")
    alice.type("/join #tmp")
    entered(alice, "#tmp")
    alice.type("/part #help")
    alice.notice("parted", "#help")
    alice.type("/part #tmp")
    alice.notice("parted", "#tmp")
    # #tmp became empty after #help: once #tmp is gone, #help would have gone too.
    wait_until(lambda: "#tmp" not in rooms_now(chat), 5.0, "#tmp to expire")
    assert rooms_now(chat)["#help"] == 0 and rooms_now(chat)["#news"] == 0


def test_the_lobby_never_expires(make_chat, closing):
    chat = make_chat(rate_per_second=0, room_expiry=0.2)
    alice = closing(Person(chat, "alice", "web", rooms=("#tmp",)))
    alice.type("/part #lobby")
    alice.type("/part #tmp")
    alice.notice("parted", "#tmp")
    wait_until(lambda: "#tmp" not in rooms_now(chat), 5.0, "#tmp to expire")
    assert rooms_now(chat) == {"#lobby": 0}


# ----- the settings ------------------------------------------------------------------


def test_room_limit_defaults():
    settings = Settings()
    assert settings.max_rooms_per_user == 20
    assert settings.max_rooms == 1000
    assert settings.max_topic_chars == 300
    assert settings.room_expiry == 300.0


def test_room_limits_from_the_environment():
    settings = Settings.from_env(
        {
            "WEBCHAT_MAX_ROOMS_PER_USER": "5",
            "WEBCHAT_MAX_ROOMS": "50",
            "WEBCHAT_MAX_TOPIC_CHARS": "80",
            "WEBCHAT_ROOM_EXPIRY": "2.5",
            "WEBCHAT_PERMANENT_ROOMS": "#help, #news",
        }
    )
    assert settings.max_rooms_per_user == 5
    assert settings.max_rooms == 50
    assert settings.max_topic_chars == 80
    assert settings.room_expiry == 2.5
    assert settings.permanent_rooms == ("#help", "#news")


def test_room_limits_from_flags():
    args = build_parser().parse_args(
        [
            "--max-rooms-per-user",
            "4",
            "--max-rooms",
            "9",
            "--max-topic-chars",
            "12",
            "--room-expiry",
            "7",
            "--permanent-rooms",
            "#a,#b",
        ]
    )
    assert (args.max_rooms_per_user, args.max_rooms, args.max_topic_chars) == (4, 9, 12)
    assert args.room_expiry == 7.0 and args.permanent_rooms == ("#a", "#b")


def test_permanent_rooms_from_the_environment_reach_the_chat(make_chat, closing):
    settings = Settings.from_env({"WEBCHAT_PERMANENT_ROOMS": "#help,#news"})
    chat = make_chat(permanent_rooms=settings.permanent_rooms)
    assert set(rooms_now(chat)) == {"#lobby", "#help", "#news"}
