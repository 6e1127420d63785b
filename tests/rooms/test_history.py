"""Rooms and the past: replay on entering, /history, GET /api/history?room=, the WebSocket
join frame's ``rooms`` with exact resume through ``since``, and one id order for all rooms."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.support.chat import RunningChat
from tests.support.clients import WsClient, wait_until
from tests.support.rooms import TIMEOUT, Person, token

SEQUENCED = frozenset(
    {"message", "me", "private", "join", "leave", "nick", "away", "back", "enter", "exit", "topic"}
)


def api(chat: RunningChat, query: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    url = chat.url + "/api/history?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def say_in(client: WsClient, room: str, text: str) -> dict[str, Any]:
    """A browser user's message into a room, as everyone got it (with its id)."""
    client.send({"type": "say", "room": room, "text": text})
    return client.expect(lambda e: e.get("type") == "message" and e.get("text") == text)


def ws_join(chat: RunningChat, nick: str, **extra: Any) -> tuple[WsClient, list[dict[str, Any]]]:
    """Join over WebSocket; return the client and everything up to and with the welcome."""
    client = WsClient(chat.url)
    client.send({"type": "join", "nick": nick, **extra})
    return client, client.read_until("welcome", TIMEOUT)


# ----- replay on entering a room -----------------------------------------------------


def test_entering_a_room_replays_its_last_events_only(make_chat, closing, via):
    chat = make_chat(rate_per_second=0, history_replay=3)
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    sent = [say_in(alice, "#dev", f"d{i}") for i in range(1, 5)]
    say_in(alice, "#lobby", "lobby talk")
    bob = closing(Person(chat, "bob", via))
    bob.type("/join #dev")
    if via == "web":
        got = bob.w.read_until(lambda e: e.get("type") == "enter" and e.get("nick") == "bob")
        head = next(i for i, e in enumerate(got) if e.get("code") == "history")
        assert got[head]["room"] == "#dev" and "3" in got[head]["text"]
        replayed = got[head + 1 : head + 4]
        assert [(e["id"], e["text"]) for e in replayed] == [(m["id"], m["text"]) for m in sent[1:]]
        assert all(e["history"] is True and e["room"] == "#dev" for e in replayed)
        assert got[head + 4]["code"] == "room" and got[head + 4 :][-1]["type"] == "enter"
        assert not [e for e in got[head:] if e.get("text") == "lobby talk"]
    else:
        lines = bob.t.read_until("[#dev] *** bob entered")
        lines = [line for line in lines if "[#dev]" in line]  # lobby lines may interleave
        head = lines.index("[#dev] *** History of #dev: 3 earlier events (times in UTC)")
        stamps = [m["ts"][11:16] for m in sent[1:]]
        assert lines[head + 1 : head + 4] == [
            f"[{stamps[0]}] [#dev] alice: d2",
            f"[{stamps[1]}] [#dev] alice: d3",
            f"[{stamps[2]}] [#dev] alice: d4",
        ]
        assert lines[head + 4].startswith("[#dev] *** You are now in #dev (2 people here)")
        assert lines[head + 5 :] == ["[#dev] *** bob entered"]


def test_entering_a_new_room_has_no_history_notice(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice = closing(chat.ws("alice"))
    alice.say("/join #fresh")
    got = alice.read_until("enter")
    fresh = [e for e in got if e.get("room") == "#fresh"]
    assert [(e["type"], e.get("code")) for e in fresh] == [("system", "room"), ("enter", None)]
    assert "history" not in fresh[1]


def test_entering_replay_can_be_turned_off(make_chat, closing):
    chat = make_chat(rate_per_second=0, history_replay=0)
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    say_in(alice, "#dev", "old")
    bob = closing(chat.ws("bob"))
    bob.say("/join #dev")
    got = bob.read_until(lambda e: e.get("type") == "enter" and e.get("nick") == "bob")
    assert not [e for e in got if e.get("history") or e.get("code") == "history"], got


def test_a_newcomer_replay_of_the_lobby_names_its_room(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice = closing(chat.ws("alice"))
    alice.say("/me hums")
    say_in(alice, "#lobby", "hello")
    _, got = ws_join(chat, "bob")
    talk = [e for e in got if e.get("type") in ("message", "me")]
    assert [(e["type"], e["room"], e["history"]) for e in talk] == [
        ("me", "#lobby", True),
        ("message", "#lobby", True),
    ]


# ----- /history ----------------------------------------------------------------------


def test_history_command_shows_the_active_room(make_chat, closing, via):
    chat = make_chat(rate_per_second=0)
    bob = closing(Person(chat, "bob", via, rooms=("#dev",)))
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    sent = [say_in(alice, "#dev", f"d{i}") for i in range(1, 4)]
    say_in(alice, "#lobby", "lobby talk")
    bob.until("d3")
    bob.type("/join #dev")
    bob.type("/history 2")
    if via == "web":
        head = bob.w.expect(lambda e: e.get("code") == "history")
        assert head["room"] == "#dev" and head["count"] == 2
        got = bob.w.read_until(lambda e: e.get("text") == "d3")
        assert [(e["id"], e["text"], e["room"], e["history"]) for e in got] == [
            (m["id"], m["text"], "#dev", True) for m in sent[1:]
        ]
    else:
        lines = bob.t.read_until(lambda line: line.endswith("alice: d3"))
        head = lines.index("[#dev] *** History of #dev: 2 events (times in UTC)")
        assert [line[8:] for line in lines[head + 1 :]] == [
            "[#dev] alice: d2",
            "[#dev] alice: d3",
        ]
    # Without N: the room's history, and nothing of the lobby's.
    bob.type("/history")
    bob.notice("history", "History of #dev", tcp_prefix="[#dev] ")
    seen = bob.until("d3")
    assert [x for x in seen if "d1" in x]
    assert not [x for x in seen if "lobby talk" in x], seen


def test_history_in_the_lobby_holds_server_wide_events_but_not_other_rooms(make_chat, closing, via):
    chat = make_chat(rate_per_second=0)
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    say_in(alice, "#dev", "dev talk")
    say_in(alice, "#lobby", "lobby talk")
    alice.say("/nick alicia")
    alice.expect("nick")
    bob = closing(Person(chat, "bob", via))
    bob.type("/history")
    if via == "web":
        bob.w.expect(lambda e: e.get("code") == "history")
        got = bob.w.read_until(lambda e: e.get("type") == "nick")
        assert [e["type"] for e in got] == ["join", "message", "nick"], got
        assert all(e["history"] for e in got)
    else:
        lines = bob.t.read_until(lambda line: "is now known as" in line)
        # Three or four events: bob's own join (after the rename) may not be in the log yet.
        lines = lines[next(i for i, line in enumerate(lines) if line.startswith("*** History: ")) :]
        assert [line[8:] for line in lines[1:]] == [
            "*** alice joined (browser)",
            "alice: lobby talk",
            "*** alice is now known as alicia",
        ]
        assert not [line for line in lines if "dev talk" in line]


# ----- GET /api/history?room= ----------------------------------------------------------


def test_api_history_pages_one_room(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    enter = alice.expect("enter")
    dev = [say_in(alice, "#dev", f"d{i}") for i in range(1, 6)]
    lobby = [say_in(alice, "#lobby", f"l{i}") for i in range(1, 3)]

    status, body = api(chat, {"room": "#dev"})
    assert status == 200 and body["more"] is False
    assert [e["id"] for e in body["events"]] == [enter["id"]] + [m["id"] for m in dev]
    assert all(e["room"] == "#dev" for e in body["events"])
    assert body["events"][1] == {k: v for k, v in dev[0].items()}

    status, body = api(chat, {"room": "#dev", "limit": 2})
    assert [e["text"] for e in body["events"]] == ["d4", "d5"] and body["more"] is True
    status, body = api(chat, {"room": "#dev", "limit": 2, "before": dev[3]["id"]})
    assert [e["text"] for e in body["events"]] == ["d2", "d3"] and body["more"] is True
    status, body = api(chat, {"room": "#dev", "limit": 3, "before": dev[1]["id"]})
    assert [e.get("text") for e in body["events"]] == [None, "d1"] and body["more"] is False

    # The default is the lobby: its talk and the server-wide events, nothing of #dev.
    status, body = api(chat, {})
    assert status == 200
    kinds = [(e["type"], e.get("text")) for e in body["events"]]
    assert kinds == [("join", None), ("message", "l1"), ("message", "l2")]
    assert [e["id"] for e in body["events"][1:]] == [m["id"] for m in lobby]
    assert api(chat, {"room": "#lobby"})[1] == body

    # Names compare case-insensitively, and '#' may be left out as with /join.
    assert api(chat, {"room": "#DEV"})[1] == api(chat, {"room": "#dev"})[1]
    assert api(chat, {"room": "#nobody-here"}) == (200, {"events": [], "more": False})


def test_api_history_refuses_a_bad_room(chat):
    for bad in ("#no!", "#" + "x" * 33, "#"):
        status, body = api(chat, {"room": bad})
        assert status == 400 and body["code"] == "bad_room", (bad, body)
    status, body = api(chat, {"room": "#" + "x" * 32})
    assert status == 200 and body == {"events": [], "more": False}


def test_api_history_shows_room_enter_exit_and_topic(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice = closing(chat.ws("alice"))
    alice.say("/join #dev")
    alice.say("/topic planning")
    alice.say("/part #dev done")
    alice.expect("exit")
    _, body = api(chat, {"room": "#dev"})
    assert [(e["type"], e["nick"], e["room"], e.get("text")) for e in body["events"]] == [
        ("enter", "alice", "#dev", None),
        ("topic", "alice", "#dev", "planning"),
        ("exit", "alice", "#dev", "done"),
    ]
    assert all(isinstance(e["id"], int) and isinstance(e["ts"], str) for e in body["events"])


# ----- one order ---------------------------------------------------------------------


def test_ids_are_one_sequence_across_rooms(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice, _ = ws_join(chat, "alice", rooms=["#a", "#b"])
    closing(alice)
    only_a, _ = ws_join(chat, "only_a", rooms=["#a"])
    closing(only_a)
    only_a.say("/part #lobby")
    only_a.expect(lambda e: e.get("code") == "parted")
    bob = closing(Person(chat, "bob", "tcp", rooms=("#a", "#b")))
    order = ["#a", "#b", "#lobby", "#a", "#b", "#a", "#lobby", "#b"]
    for i, room in enumerate(order):
        bob.post(room, f"m{i}")
    got = alice.read_until(lambda e: e.get("text") == f"m{len(order) - 1}")
    talk = [e for e in got if e.get("type") == "message"]
    assert [(e["room"], e["text"]) for e in talk] == [(r, f"m{i}") for i, r in enumerate(order)]
    ids = [e["id"] for e in got if "id" in e]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # One counter: the rooms' messages take consecutive ids, whichever room they are in.
    talk_ids = [e["id"] for e in talk]
    assert talk_ids == list(range(talk_ids[0], talk_ids[0] + len(order)))
    # Someone in #a only sees the same ids for the same events, with gaps for the rest.
    seen = only_a.read_until(lambda e: e.get("text") == "m5")
    assert [(e["id"], e["text"]) for e in seen if e.get("type") == "message"] == [
        (e["id"], e["text"]) for e in talk if e["room"] == "#a"
    ]


# ----- the WebSocket join frame's rooms ------------------------------------------------


def test_a_join_frame_with_rooms_enters_them_at_once(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    watcher = closing(Person(chat, "watcher", "tcp", rooms=("#dev",)))
    owner = closing(chat.ws("owner"))
    owner.say("/join #ops")
    owner.say("/topic the ops room")
    owner.expect("topic")
    alice, got = ws_join(chat, "alice", rooms=["#Dev", "ops", "#lobby", "#dev"])
    closing(alice)
    welcome = got[-1]
    assert welcome["active"] == "#lobby"
    rooms = {r["room"]: r for r in welcome["rooms"]}
    assert rooms == {
        "#lobby": {"room": "#lobby", "users": 3, "topic": ""},
        "#dev": {"room": "#dev", "users": 2, "topic": ""},
        "#ops": {"room": "#ops", "users": 2, "topic": "the ops room"},
    }
    assert welcome["rooms"][0]["room"] == "#lobby"
    watcher.sees("[#dev] *** alice entered")
    got = owner.expect(lambda e: e.get("type") == "enter" and e.get("nick") == "alice")
    assert got["room"] == "#ops" and isinstance(got["id"], int)
    # She can post into them at once, and a plain say goes to the lobby.
    alice.send({"type": "say", "room": "#dev", "text": "morning"})
    watcher.sees("[#dev] alice: morning")
    alice.say("plain")
    watcher.sees("alice: plain")


def test_a_join_frame_with_a_bad_room_is_refused_and_may_be_retried(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    alice = closing(WsClient(chat.url))
    alice.send({"type": "join", "nick": "alice", "rooms": ["#ok", "#no!"]})
    got = alice.expect("error")
    assert got["code"] == "bad_room", got
    assert "#ok" not in [r["room"] for r in chat.runtime.hub.membership.listing()]
    welcome = alice.join("alice", rooms=["#ok"])
    assert [r["room"] for r in welcome["rooms"]] == ["#lobby", "#ok"]


# ----- resuming with since -----------------------------------------------------------


def test_resume_with_since_gets_exactly_what_was_missed_in_each_room(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    hub = chat.runtime.hub
    # The witness stays connected in the same rooms: what it gets is what alice missed.
    witness, _ = ws_join(chat, "witness", rooms=["#dev"])
    closing(witness)
    bob = closing(Person(chat, "bob", "tcp", rooms=("#dev", "#ops")))
    carol = closing(chat.ws("carol"))
    alice, _ = ws_join(chat, "alice", rooms=["#dev"])
    last = say_in(alice, "#dev", "last one alice saw")
    since = last["id"]
    alice.close()
    wait_until(lambda: hub.people.find("alice") is None, TIMEOUT, "alice to be gone")

    bob.post("#lobby", "L1")
    bob.post("#dev", "D1")
    bob.post("#ops", "O1 not for alice")
    bob.type("/join #dev")
    bob.type("/me codes")
    bob.type("/topic new topic")
    bob.type("/msg carol private, not for alice")
    carol.say("/join #dev")
    carol.say("/part #dev")
    carol.expect("exit")  # before bob goes on: one order for the witness to compare
    bob.type("/join #ops")
    bob.type("/topic ops topic not for alice")
    bob.type("/nick bobby")
    end = token("end")
    bob.post("#lobby", end)
    missed = [e for e in witness.read_until(lambda e: e.get("text") == end) if e["id"] > since]
    missed = [e for e in missed if e["type"] in SEQUENCED]

    alice2 = closing(WsClient(chat.url))
    alice2.send({"type": "join", "nick": "alice", "rooms": ["#dev"], "since": since})
    got = alice2.read_until("welcome", TIMEOUT)
    replayed = [e for e in got if e.get("history")]
    assert [(e["id"], e["type"]) for e in replayed] == [(e["id"], e["type"]) for e in missed]
    assert [e for e in got if e["type"] == "private"] == []
    assert not [e for e in got if "not for alice" in json.dumps(e)], got
    assert {"L1", "D1", "codes", "new topic", end} <= {e.get("text") for e in replayed}
    for e in replayed:
        if e["type"] in ("message", "me", "enter", "exit", "topic"):
            assert e["room"] in ("#lobby", "#dev"), e
    # Then live: nothing twice.
    after = token("after")
    alice2.send({"type": "say", "room": "#dev", "text": after})
    live = alice2.read_until(lambda e: e.get("text") == after)
    ids = [e["id"] for e in got + live if "id" in e]
    assert len(ids) == len(set(ids)) and ids == sorted(ids), ids
    assert [e["type"] for e in live if "id" in e][:2] == ["join", "enter"]


def test_resume_leaves_out_rooms_not_asked_for_again(make_chat, closing):
    chat = make_chat(rate_per_second=0)
    hub = chat.runtime.hub
    bob, _ = ws_join(chat, "bob", rooms=["#dev", "#ops"])
    closing(bob)
    alice, _ = ws_join(chat, "alice", rooms=["#dev", "#ops"])
    since = say_in(alice, "#ops", "seen")["id"]
    alice.close()
    wait_until(lambda: hub.people.find("alice") is None, TIMEOUT, "alice to be gone")
    say_in(bob, "#ops", "ops after")
    say_in(bob, "#dev", "dev after")
    alice2, got = ws_join(chat, "alice", rooms=["#dev"], since=since)
    closing(alice2)
    texts = [e.get("text") for e in got if e.get("history")]
    assert "dev after" in texts and "ops after" not in texts, got
    assert [r["room"] for r in got[-1]["rooms"]] == ["#lobby", "#dev"]


def test_resume_leaves_out_presence_of_people_who_share_no_room(make_chat, closing):
    """A live lobby member never hears dave, who is only in #ops; a resume must not
    show his away, nick and leave either ("none from rooms it's not in")."""
    chat = make_chat(rate_per_second=0)
    hub = chat.runtime.hub
    dave, _ = ws_join(chat, "dave", rooms=["#ops"])
    closing(dave)
    dave.say("/part #lobby")
    dave.expect(lambda e: e.get("code") == "parted")
    witness = closing(chat.ws("witness"))
    alice, _ = ws_join(chat, "alice")
    since = say_in(alice, "#lobby", "seen")["id"]
    alice.close()
    wait_until(lambda: hub.people.find("alice") is None, TIMEOUT, "alice to be gone")
    dave.say("/away elsewhere")
    dave.say("/nick david")
    dave.expect("nick")
    witness.say("/me was here")
    live = witness.read_until("me")
    assert not [e for e in live if "dav" in json.dumps(e)], live  # live: never heard of him
    alice2, got = ws_join(chat, "alice", since=since)
    closing(alice2)
    replayed = [e for e in got if e.get("history")]
    assert "was here" in [e.get("text") for e in replayed]
    assert not [e for e in replayed if "dav" in json.dumps(e)], replayed


def test_entering_during_a_burst_loses_and_repeats_nothing(make_chat, closing, via):
    """Replay up to the seam, live after it: every message once, in order, whatever
    the timing of the /join against the burst."""
    chat = make_chat(rate_per_second=0)
    alice = closing(Person(chat, "alice", "tcp", rooms=("#dev",)))
    bob = closing(Person(chat, "bob", via))
    count = 40
    burst = "".join(f"/msg #dev m{i}\r\n" for i in range(count))
    alice.t.send(burst)
    bob.type("/join #dev")
    last = f"m{count - 1}"
    if via == "web":

        def bob_entered(e: dict[str, Any]) -> bool:
            return e.get("type") == "enter" and e.get("nick") == "bob"

        got = bob.w.read_until(lambda e: e.get("text") == last)
        if not any(bob_entered(e) for e in got):
            got += bob.w.read_until(bob_entered)
        msgs = [e for e in got if e.get("type") == "message"]
        assert [e["text"] for e in msgs] == [f"m{i}" for i in range(count)]
        ids = [e["id"] for e in msgs]
        assert ids == sorted(ids) and len(ids) == len(set(ids)), ids
        live = [e["id"] for e in got if "id" in e and not e.get("history")]
        assert live == sorted(live) and len(live) == len(set(live)), live
        enter = next(e for e in got if bob_entered(e))
        # What happened before bob entered is the past: replayed and marked, before the
        # "You are now in #dev" notice; after it comes only the live enter and what follows.
        early = [
            (e["id"], e["text"]) for e in msgs if e["id"] < enter["id"] and not e.get("history")
        ]
        assert not early, f"unmarked messages from before bob's enter (id {enter['id']}): {early}"
        assert not [e for e in msgs if e["id"] > enter["id"] and e.get("history")]
    else:
        lines = bob.t.read_until(lambda line: line.endswith(f"alice: {last}"))
        if "[#dev] *** bob entered" not in lines:
            lines += bob.t.read_until("[#dev] *** bob entered")
        msgs = [line.rsplit(": ", 1)[1] for line in lines if "[#dev] alice: m" in line]
        assert msgs == [f"m{i}" for i in range(count)], lines
        before = lines[: lines.index("[#dev] *** bob entered")]
        early = [line for line in before if line.startswith("[#dev] alice: m")]
        assert not early, f"unstamped (live-looking) lines from before bob entered: {early}"
