"""Rooms over both transports: names, entering and leaving, posting, who hears what,
the TCP prefixes, the WebSocket fields, and /rooms, /topic, /names, /who.

Every point of DESIGN.md "Wire contract, wave 2 / Rooms" that a person can see is
checked here for a terminal user and for a browser user (the ``via`` parameter).
History, resume and ids are in test_history.py; the limits in
test_limits.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.chat import RunningChat
from tests.support.rooms import Person, other, people_of, token


@pytest.fixture
def rchat(make_chat: Callable[..., RunningChat]) -> RunningChat:
    """A chat without the rate limit: these tests type many lines quickly."""
    return make_chat(rate_per_second=0)


@pytest.fixture
def person(rchat: RunningChat) -> Iterator[Callable[..., Person]]:
    yield from people_of(rchat)


def settle(*people: Person, room: str = "#lobby") -> None:
    """Everyone has read everything up to now: the first person posts a fence into
    ``room`` (which all share) and everyone reads up to it."""
    mark = people[0].fence(room)
    for p in people:
        if p.via == "tcp" and p is people[0]:
            continue  # a terminal user is not sent their own message back
        p.until(mark)


# ----- names -------------------------------------------------------------------------


def test_room_names_at_their_edges(person, via):
    alice = person("alice", via)
    longest = "#" + "a" * 32
    alice.type(f"/join {longest}")
    alice.sees(f"[{longest}] *** alice entered", type="enter", room=longest, nick="alice")
    for bad in ("#" + "b" * 33, "#", "#no!", "#a.b", "#ä", "#a+b"):
        alice.type(f"/join {bad}")
        alice.error("bad_room", "not a room name")
    # Every character class that is allowed, at once.
    alice.type("/join #a-z_0-9")
    alice.sees("[#a-z_0-9] *** alice entered", type="enter", room="#a-z_0-9")


def test_a_name_without_hash_is_taken_as_a_room(person, via):
    alice = person("alice", via)
    alice.type("/join Dev")
    alice.sees("[#dev] *** alice entered", type="enter", room="#dev", nick="alice")


def test_room_names_compare_case_insensitively_and_show_lower_case(person, via):
    alice = person("alice", via)
    bob = person("bob", other(via))
    alice.type("/join #DeV")
    alice.sees("[#dev] *** alice entered", type="enter", room="#dev")
    bob.type("/join #DEV")
    bob.notice("room", "#dev", "2 people here", tcp_prefix="[#dev] ")
    for p in (alice, bob):
        p.sees("[#dev] *** bob entered", type="enter", room="#dev", nick="bob")
    alice.post("#Dev", "mixed case")
    bob.sees("[#dev] alice: mixed case", type="message", room="#dev", text="mixed case")


def test_a_bad_room_in_a_websocket_say_is_refused(person):
    alice = person("alice", "web")
    alice.w.send({"type": "say", "room": "#no!", "text": "hi"})
    alice.error("bad_room")


# ----- the lobby ---------------------------------------------------------------------


def test_everyone_starts_in_the_lobby_as_their_active_room(person, via):
    alice = person("alice", via)
    bob = person("bob", other(via))
    if alice.welcome is not None:
        assert alice.welcome["rooms"] == [{"room": "#lobby", "users": 1, "topic": ""}]
        assert alice.welcome["active"] == "#lobby"
    alice.type("/names")
    if via == "tcp":
        alice.expect(lambda line: line.startswith("*** 2 in #lobby: "))
    else:
        names = alice.w.expect("names")
        assert names["room"] == "#lobby"
        assert sorted(u["nick"] for u in names["users"]) == ["alice", "bob"]
    # A plain line goes to the lobby without anyone having typed /join.
    bob.type("hello all")
    alice.sees("bob: hello all", type="message", room="#lobby", nick="bob", text="hello all")


def test_lobby_events_on_tcp_look_exactly_as_in_wave_1(person, via):
    watcher = person("watcher", "tcp")
    alice = person("alice", via)
    joined = "*** alice joined (terminal)" if via == "tcp" else "*** alice joined (browser)"
    assert watcher.t.expect(lambda line: "alice" in line) == joined
    alice.type("hi")
    alice.type("/me waves")
    alice.type("/nick alicia")
    alice.type("/away lunch")
    alice.type("/back")
    alice.type("/quit bye")
    lines = watcher.t.read_until(lambda line: "left" in line)
    assert lines == [
        "alice: hi",
        "* alice waves",
        "*** alice is now known as alicia",
        "*** alicia is away: lunch",
        "*** alicia is back",
        "*** alicia left (bye)",
    ]


def test_websocket_talk_in_the_lobby_names_the_lobby(person, via):
    watcher = person("watcher", "web")
    alice = person("alice", via)
    alice.type("hi")
    alice.type("/me waves")
    got = watcher.w.expect("message")
    assert got["room"] == "#lobby" and got["text"] == "hi" and isinstance(got["id"], int)
    got = watcher.w.expect("me")
    assert got["room"] == "#lobby" and got["text"] == "waves"


def test_lobby_enter_and_exit_name_the_lobby_on_tcp(person, via):
    watcher = person("watcher", "tcp")
    bob = person("bob", via)
    watcher.t.expect("*** bob joined")
    bob.type("/part #lobby brb")
    assert watcher.t.expect(lambda line: "bob" in line) == "*** bob left #lobby (brb)"
    bob.sees("*** bob left #lobby (brb)", type="exit", room="#lobby", nick="bob", text="brb")
    bob.type("/join #lobby")
    assert watcher.t.expect(lambda line: "bob" in line) == "*** bob entered #lobby"
    bob.sees("*** bob entered #lobby", type="enter", room="#lobby", nick="bob")
    bob.type("/part")
    assert watcher.t.expect(lambda line: "bob" in line) == "*** bob left #lobby"


# ----- entering ----------------------------------------------------------------------


def test_join_creates_the_room_and_makes_it_active(person, via, rchat):
    alice = person("alice", via)
    bob = person("bob", other(via))
    alice.type("/join #dev")
    alice.notice("room", "You are now in #dev", "1 person here", tcp_prefix="[#dev] ")
    alice.sees("[#dev] *** alice entered", type="enter", room="#dev", nick="alice")
    assert "#dev" in [r["room"] for r in rchat.runtime.hub.membership.listing()]
    bob.type("/join #dev")
    alice.sees("[#dev] *** bob entered", type="enter", room="#dev", nick="bob")
    # Alice's plain line now goes to #dev, her active room.
    alice.type("in dev")
    bob.sees("[#dev] alice: in dev", type="message", room="#dev", nick="alice", text="in dev")


def test_the_joiner_gets_history_then_the_room_notice_then_the_enter(person, via):
    alice = person("alice", "web")
    alice.type("/join #dev")
    alice.type("/topic plans")
    alice.type("first")
    alice.w.expect(lambda e: e.get("text") == "first")
    bob = person("bob", via)
    bob.type("/join #dev")
    if via == "web":
        got = bob.w.read_until(lambda e: e["type"] == "enter" and "history" not in e)
        got = [e for e in got if e.get("room") == "#dev"]
        assert got[0]["type"] == "system" and got[0]["code"] == "history", got
        assert got[0]["room"] == "#dev"
        replayed = got[1:4]
        assert [(e["type"], e.get("text")) for e in replayed] == [
            ("enter", None),
            ("topic", "plans"),
            ("message", "first"),
        ]
        assert all(e["history"] is True and e["room"] == "#dev" for e in replayed)
        assert got[4]["type"] == "system" and got[4]["code"] == "room", got
        assert got[4]["room"] == "#dev" and "2 people here" in got[4]["text"]
        assert "plans" in got[4]["text"]
        assert got[5]["type"] == "enter" and got[5]["nick"] == "bob" and len(got) == 6
    else:
        lines = bob.t.read_until("*** bob entered")
        lines = [line for line in lines if "[#dev]" in line]  # lobby lines may interleave
        lines = lines[lines.index("[#dev] *** History of #dev: 3 earlier events (times in UTC)") :]
        assert [line[8:] for line in lines[1:4]] == [
            "[#dev] *** alice entered",
            "[#dev] *** alice set the topic: plans",
            "[#dev] alice: first",
        ]
        assert all(line[0] == "[" and line[6:8] == "] " for line in lines[1:4]), lines
        assert lines[4] == "[#dev] *** You are now in #dev (2 people here); topic: plans"
        assert lines[5:] == ["[#dev] *** bob entered"]


def test_join_of_a_room_you_are_in_makes_it_active(person, via):
    alice = person("alice", via)
    watcher = person("watcher", other(via), rooms=("#dev",))
    alice.type("/join #dev")
    alice.sees("[#dev] *** alice entered", type="enter", room="#dev")
    alice.type("/join #lobby")
    alice.notice("active", "#lobby")
    alice.type("lobby line")
    watcher.sees("alice: lobby line", type="message", room="#lobby", text="lobby line")
    alice.type("/join #dev")
    alice.notice("active", "#dev", tcp_prefix="[#dev] ")
    alice.type("dev line")
    watcher.sees("[#dev] alice: dev line", type="message", room="#dev", text="dev line")
    # Making a room active again announces nothing to its members.
    mark = alice.fence()
    assert not [x for x in watcher.until(mark) if "entered" in x or '"enter"' in x]


# ----- leaving -----------------------------------------------------------------------


def test_part_tells_the_room_and_the_leaver_then_says_where_lines_go(person, via):
    bob = person("bob", via, rooms=("#dev",))
    alice = person("alice", other(via), rooms=("#dev",))
    settle(alice, bob, room="#dev")
    bob.type("/part #dev gone fishing")
    line = "[#dev] *** bob left (gone fishing)"
    fields = {"type": "exit", "room": "#dev", "nick": "bob", "text": "gone fishing"}
    got = alice.sees(line, **fields)
    mine = bob.sees(line, **fields)
    if via == "web":
        assert isinstance(mine["id"], int) and isinstance(mine["ts"], str)
    else:
        assert isinstance(got["id"], int) and isinstance(got["ts"], str)
    parted = bob.notice("parted", "You left #dev", "#lobby")
    if via == "web":
        assert parted["active"] == "#lobby"
    # Alice no longer hears about bob's room and bob no longer hears #dev.
    alice.post("#dev", "still here?")
    mark = alice.fence("#lobby")
    assert not [x for x in bob.until(mark) if "still here?" in x]


def test_part_without_a_room_leaves_the_active_one_with_the_reason(person, via):
    bob = person("bob", via, rooms=("#dev",))
    alice = person("alice", other(via), rooms=("#dev",))
    bob.type("/join #dev")  # active
    bob.type("/part back later")
    alice.sees("[#dev] *** bob left (back later)", type="exit", room="#dev", text="back later")
    bob.notice("parted", "You left #dev")
    bob.type("/join #dev")
    bob.type("/part")
    got = alice.sees("[#dev] *** bob left", type="exit", room="#dev", nick="bob")
    if alice.via == "web":
        assert got.get("text") in (None, ""), got


def test_parting_the_active_room_falls_back_to_the_lobby(person, via):
    bob = person("bob", via)
    watcher = person("watcher", other(via), rooms=("#a", "#b"))
    bob.type("/join #a")
    bob.type("/join #b")
    bob.type("/part")
    watcher.sees("[#b] *** bob left", type="exit", room="#b", nick="bob")
    got = bob.notice("parted", "You left #b", "#lobby")
    if via == "web":
        assert got["active"] == "#lobby"
    bob.type("where am i")
    watcher.sees("bob: where am i", type="message", room="#lobby", text="where am i")


def test_without_the_lobby_the_room_entered_last_becomes_active(person, via):
    bob = person("bob", via)
    watcher = person("watcher", other(via), rooms=("#a", "#b", "#c"))
    bob.type("/part #lobby")
    bob.type("/join #a")
    bob.type("/join #b")
    bob.type("/join #c")
    bob.type("/join #a")  # #a active again; #c is still the one entered last
    bob.notice("parted", "You left #lobby")
    bob.type("/part")
    watcher.sees("[#a] *** bob left", type="exit", room="#a", nick="bob")
    got = bob.notice("parted", "You left #a", "#c")
    if via == "web":
        assert got["active"] == "#c"
    bob.type("in c")
    watcher.sees("[#c] bob: in c", type="message", room="#c", text="in c")


def test_after_parting_every_room_plain_lines_are_refused(person, via):
    bob = person("bob", via)
    watcher = person("watcher", other(via))
    bob.type("/part #lobby")
    got = bob.notice("parted", "You left #lobby")
    if via == "web":
        assert got["active"] is None
    bob.type("anyone?")
    bob.error("not_in_room")
    bob.type("/me shrugs")
    bob.error("not_in_room")
    bob.type("/join #lobby")
    bob.type("back again")
    watcher.sees("bob: back again", type="message", room="#lobby", text="back again")


def test_part_of_a_room_you_are_not_in_is_refused(person, via):
    bob = person("bob", via)
    person("owner", other(via), rooms=("#dev",))
    bob.type("/part #dev")
    bob.error("not_in_room", "#dev")
    bob.type("/part #nowhere")
    bob.error("not_in_room", "#nowhere")


def test_part_of_a_bad_room_name_is_refused(person, via):
    bob = person("bob", via)
    bob.type("/part #no!")
    bob.error("bad_room")


# ----- posting -----------------------------------------------------------------------


def test_posting_into_another_room_keeps_the_active_room(person, via):
    alice = person("alice", via, rooms=("#dev",))
    watcher = person("watcher", other(via), rooms=("#dev",))
    alice.type("/join #lobby")  # the lobby is active
    alice.post("#dev", "to dev")
    watcher.sees("[#dev] alice: to dev", type="message", room="#dev", text="to dev")
    alice.type("plain")
    watcher.sees("alice: plain", type="message", room="#lobby", text="plain")
    alice.type("/join #dev")  # now #dev is active
    alice.post("#lobby", "to lobby")
    watcher.sees("alice: to lobby", type="message", room="#lobby", text="to lobby")
    alice.type("plain again")
    watcher.sees("[#dev] alice: plain again", type="message", room="#dev", text="plain again")


def test_posting_into_a_room_you_are_not_in_is_refused(person, via):
    alice = person("alice", via)
    owner = person("owner", other(via), rooms=("#dev",))
    alice.post("#dev", "sneaky")
    alice.error("not_in_room", "#dev")
    alice.post("#nowhere", "into the void")
    alice.error("not_in_room", "#nowhere")
    if via == "web":  # a command typed into a room you are not in
        alice.w.send({"type": "say", "room": "#dev", "text": "/me sneaks"})
        alice.error("not_in_room", "#dev")
    mark = alice.fence("#lobby")
    assert not [x for x in owner.until(mark) if "sneaky" in x]


def test_a_terminal_sender_is_not_sent_its_own_room_message(person):
    alice = person("alice", "tcp", rooms=("#dev",))
    person("bob", "web", rooms=("#dev",))
    alice.post("#dev", "by msg")
    alice.t.line("/join #dev")
    alice.t.line("by line")
    alice.t.line("/me acts")
    lines = alice.t.read_until("* alice acts")
    assert not [line for line in lines if "by msg" in line or "by line" in line], lines
    assert lines[-1] == "[#dev] * alice acts"


def test_a_browser_sender_gets_its_own_room_message_with_id_and_room(person):
    alice = person("alice", "web", rooms=("#dev",))
    alice.post("#dev", "mine")
    got = alice.w.expect("message")
    assert got["room"] == "#dev" and got["text"] == "mine" and isinstance(got["id"], int)


def test_a_websocket_say_with_a_room_runs_commands_in_that_room(person):
    alice = person("alice", "web", rooms=("#dev",))
    bob = person("bob", "web", rooms=("#dev",))
    assert alice.welcome is not None and alice.welcome["active"] == "#lobby"

    def in_dev(text: str) -> None:
        alice.w.send({"type": "say", "room": "#dev", "text": text})

    in_dev("/me codes")
    got = bob.w.expect("me")
    assert (got["room"], got["nick"], got["text"]) == ("#dev", "alice", "codes")
    in_dev("/topic shipping")
    got = bob.w.expect("topic")
    assert (got["room"], got["nick"], got["text"]) == ("#dev", "alice", "shipping")
    in_dev("/topic")
    got = alice.w.expect(lambda e: e.get("code") == "topic")
    assert got["room"] == "#dev" and "shipping" in got["text"]
    in_dev("/names")
    got = alice.w.expect("names")
    assert got["room"] == "#dev"
    in_dev("/history")
    got = alice.w.expect(lambda e: e.get("code") == "history")
    assert got["room"] == "#dev", got
    replayed = alice.w.read_until(lambda e: e.get("text") == "shipping")
    assert all(e.get("room") == "#dev" and e.get("history") for e in replayed), replayed
    in_dev("/part see you")
    got = bob.w.expect("exit")
    assert (got["room"], got["nick"], got["text"]) == ("#dev", "alice", "see you")
    # The active room never changed: plain says still go to the lobby.
    mark = token()
    alice.w.say(mark)
    got = bob.w.expect(lambda e: e.get("text") == mark)
    assert got["room"] == "#lobby"


# ----- who hears what ----------------------------------------------------------------


def test_only_the_members_of_a_room_receive_its_events(person, via):
    outsider = person("outsider", via)
    inside = person("inside", other(via), rooms=("#dev",))
    alice = person("alice", via)
    settle(alice, outsider, inside)
    alice.type("/join #dev")
    alice.type("secret-message")
    alice.type("/me secret-action")
    alice.type("/topic secret-topic")
    alice.type("/part #dev secret-reason")
    mark = alice.fence("#lobby")
    seen = outsider.until(mark)
    assert not [x for x in seen if "secret" in x or "#dev" in x], seen
    got = inside.until(mark)
    assert [x for x in got if "secret-message" in x]
    assert [x for x in got if "secret-action" in x]
    assert [x for x in got if "secret-topic" in x]
    assert [x for x in got if "secret-reason" in x]


def test_someone_who_left_the_lobby_does_not_hear_it(person, via):
    bob = person("bob", via, rooms=("#dev",))
    alice = person("alice", other(via), rooms=("#dev",))
    bob.type("/part #lobby")
    alice.sees("*** bob left #lobby", type="exit", room="#lobby", nick="bob")
    alice.post("#lobby", "lobby-only")
    carol = person("carol", "web")  # joins the lobby only
    carol.type("/me lobby-action")
    mark = alice.fence("#dev")
    seen = bob.until(mark)
    assert not [x for x in seen if "lobby-only" in x or "lobby-action" in x], seen
    # Carol shares no room with bob: her join does not reach him either.
    assert not [x for x in seen if "carol" in x], seen


def test_presence_goes_to_those_who_share_a_room(person, via):
    dave = person("dave", via, rooms=("#ops",))
    erin = person("erin", other(via), rooms=("#ops",))
    alice = person("alice", via)
    dave.type("/part #lobby")
    erin.sees("*** dave left #lobby", type="exit", room="#lobby", nick="dave")
    alice.sees("*** dave left #lobby", type="exit", room="#lobby", nick="dave")
    dave.type("/nick davey")
    erin.sees("*** dave is now known as davey", type="nick", nick="dave", new="davey")
    dave.sees("*** dave is now known as davey", type="nick", nick="dave", new="davey")
    dave.type("/away coffee")
    erin.sees("*** davey is away: coffee", type="away", nick="davey", text="coffee")
    dave.sees("*** davey is away: coffee", type="away", nick="davey", text="coffee")
    dave.type("/back")
    erin.sees("*** davey is back", type="back", nick="davey")
    mark = erin.fence("#lobby")
    seen = alice.until(mark)
    assert not [x for x in seen if "dave" in x], seen
    dave.type("/quit done")
    erin.sees("*** davey left (done)", type="leave", nick="davey", text="done")
    mark = erin.fence("#lobby")
    seen = alice.until(mark)
    assert not [x for x in seen if "dave" in x], seen


def test_join_and_leave_still_mean_the_server(person, via):
    watcher = person("watcher", via)
    alice = person("alice", other(via), rooms=("#dev",))
    how = "terminal" if alice.via == "tcp" else "browser"
    got = watcher.sees(f"*** alice joined ({how})", type="join", nick="alice")
    if via == "web":
        assert "room" not in got, got
    alice.type("/quit")
    got = watcher.sees("*** alice left", type="leave", nick="alice")
    if via == "web":
        assert "room" not in got, got


# ----- the TCP forms -----------------------------------------------------------------


def test_every_room_event_on_tcp_starts_with_the_room(person, via):
    tcp = person("tcp", "tcp", rooms=("#dev",))
    alice = person("alice", via)
    bob = person("bob", "web")
    alice.type("/join #dev")
    alice.post("#dev", "hi")
    alice.type("/me waves")
    alice.type("/topic big plans")
    alice.type("/topic #dev")  # shows it only to alice
    lines = tcp.t.read_until(lambda line: "big plans" in line)
    assert [line for line in lines if "alice" in line or "#dev" in line] == [
        "*** alice joined (terminal)" if via == "tcp" else "*** alice joined (browser)",
        "[#dev] *** alice entered",
        "[#dev] alice: hi",
        "[#dev] * alice waves",
        "[#dev] *** alice set the topic: big plans",
    ]
    bob.type("/join #dev")
    bob.type("/part #dev off")
    bob.type("/join #dev")
    bob.type("/part")
    mark = bob.fence("#lobby")
    lines = tcp.t.read_until(lambda line: mark in line)
    assert [line for line in lines if "#dev" in line or mark in line] == [
        "[#dev] *** bob entered",
        "[#dev] *** bob left (off)",
        "[#dev] *** bob entered",
        "[#dev] *** bob left",
        f"bob: {mark}",
    ]


def test_a_private_message_stays_private_inside_a_room(person, via):
    alice = person("alice", via, rooms=("#dev",))
    bob = person("bob", "tcp", rooms=("#dev",))
    alice.type("/join #dev")
    alice.type("/msg bob psst")
    bob.sees("[private] alice -> bob: psst")
    if via == "web":
        got = alice.w.expect("private")
        assert got["text"] == "psst" and got["to"] == "bob"


# ----- the WebSocket event fields ----------------------------------------------------


def test_enter_exit_and_topic_events_carry_their_fields(person):
    watcher = person("watcher", "web", rooms=("#dev",))
    alice = person("alice", "web")
    alice.type("/join #dev")
    alice.type("/topic hello")
    alice.type("/me waves")
    alice.type("talk")
    alice.type("/part bye")
    got = watcher.w.read_until(lambda e: e.get("type") == "exit")
    room_events = [e for e in got if e.get("room") == "#dev" and e.get("nick") == "alice"]
    kinds = [e["type"] for e in room_events]
    assert kinds == ["enter", "topic", "me", "message", "exit"], got
    for e in room_events:
        assert isinstance(e["id"], int) and isinstance(e["ts"], str), e
        assert e["nick"] == "alice" and e["room"] == "#dev", e
    assert room_events[1]["text"] == "hello" and room_events[4]["text"] == "bye"
    assert "text" not in room_events[0] or not room_events[0]["text"]
    ids = [e["id"] for e in room_events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# ----- /rooms, /topic, /names, /who --------------------------------------------------


def test_rooms_lists_every_room_with_its_members_and_topic(person, via):
    alice = person("alice", via, rooms=("#dev",))
    person("bob", other(via), rooms=("#dev", "#ops"))
    alice.type("/join #dev")
    alice.type("/topic the dev room")
    alice.sees("[#dev] *** alice set the topic: the dev room", type="topic", room="#dev")
    alice.type("/rooms")
    if via == "web":
        got = alice.w.expect("rooms")
        rooms = {r["room"]: r for r in got["rooms"]}
        assert rooms == {
            "#lobby": {"room": "#lobby", "users": 2, "topic": ""},
            "#dev": {"room": "#dev", "users": 2, "topic": "the dev room"},
            "#ops": {"room": "#ops", "users": 1, "topic": ""},
        }
    else:
        line = alice.t.expect(lambda s: s.startswith("*** 3 rooms: "))
        assert "#dev (2): the dev room" in line and "#lobby (2)" in line and "#ops (1)" in line


def test_topic_shows_and_sets(person, via):
    alice = person("alice", via, rooms=("#dev",))
    bob = person("bob", other(via), rooms=("#dev",))
    alice.type("/topic #dev")
    got = alice.notice("topic", "#dev", "no topic", tcp_prefix="[#dev] ")
    if via == "web":
        assert got["room"] == "#dev" and got["topic"] == ""
    # Set from the lobby, naming the room: only its members hear it.
    alice.type("/topic #dev release on friday")
    line = "[#dev] *** alice set the topic: release on friday"
    for p in (alice, bob):
        p.sees(line, type="topic", room="#dev", nick="alice", text="release on friday")
    bob.type("/topic #dev")
    got = bob.notice("topic", "release on friday", tcp_prefix="[#dev] ")
    if bob.via == "web":
        assert got["topic"] == "release on friday" and got["room"] == "#dev"
    # Without a room: the active one.
    alice.type("/join #dev")
    alice.type("/topic hotfix first")
    bob.sees("[#dev] *** alice set the topic: hotfix first", type="topic", text="hotfix first")
    alice.type("/topic")
    alice.notice("topic", "hotfix first", tcp_prefix="[#dev] ")


def test_the_lobby_has_a_topic_too(person, via):
    alice = person("alice", via)
    bob = person("bob", other(via))
    alice.type("/topic welcome all")
    bob.sees("*** alice set the topic: welcome all", type="topic", room="#lobby")


def test_a_topic_for_a_room_you_are_not_in_is_refused(person, via):
    alice = person("alice", via)
    owner = person("owner", other(via), rooms=("#dev",))
    alice.type("/topic #dev hijack")
    alice.error("not_in_room", "#dev")
    mark = alice.fence("#lobby")
    assert not [x for x in owner.until(mark) if "hijack" in x]


def test_names_lists_a_rooms_members(person, via):
    alice = person("alice", via, rooms=("#dev",))
    person("bob", other(via), rooms=("#dev",))
    person("carol", "web")
    alice.type("/names #dev")
    if via == "web":
        got = alice.w.expect("names")
        assert got["room"] == "#dev"
        users = sorted(got["users"], key=lambda u: u["nick"])
        assert [(u["nick"], u["via"], u["away"]) for u in users] == [
            ("alice", "web", None),
            ("bob", "tcp", None),
        ]
        assert all(set(u) == {"nick", "via", "idle", "away", "op"} for u in users), users
        assert all(isinstance(u["idle"], int | float) for u in users)
    else:
        line = alice.t.expect(lambda s: "in #dev:" in s)
        assert line.startswith("[#dev] *** 2 in #dev: ") or line.startswith("*** 2 in #dev: ")
        assert "alice (terminal" in line and "bob (browser" in line and "carol" not in line
    alice.type("/join #dev")
    alice.type("/names")
    if via == "web":
        assert alice.w.expect("names")["room"] == "#dev"
    else:
        assert "2 in #dev" in alice.t.expect(lambda s: "in #dev:" in s)


def test_names_shows_who_is_away(person, via):
    alice = person("alice", via, rooms=("#dev",))
    bob = person("bob", "web", rooms=("#dev",))
    bob.type("/away lunch")
    alice.sees("*** bob is away: lunch", type="away", nick="bob")
    alice.type("/names #dev")
    if via == "web":
        users = {u["nick"]: u for u in alice.w.expect("names")["users"]}
        assert users["bob"]["away"] == "lunch" and users["alice"]["away"] is None
    else:
        assert "bob (browser, away: lunch)" in alice.t.expect(lambda s: "in #dev:" in s)


def test_names_of_a_room_that_does_not_exist_is_an_error(person, via):
    alice = person("alice", via)
    alice.type("/names #ghost")
    if via == "web":
        got = alice.w.expect("error")
        assert got["code"] in ("no_such_room", "not_in_room"), got
    else:
        alice.t.expect(lambda s: s.startswith("*** error: ") and "#ghost" in s)


def test_who_stays_server_wide(person, via):
    alice = person("alice", via, rooms=("#dev",))
    person("bob", other(via))
    loner = person("loner", "web", rooms=("#far",))
    loner.type("/part #lobby")
    loner.notice("parted", "#lobby")
    alice.type("/join #dev")
    alice.type("/who")
    if via == "web":
        got = alice.w.expect("users")
        assert sorted(u["nick"] for u in got["users"]) == ["alice", "bob", "loner"]
        assert "room" not in got
    else:
        line = alice.t.expect(lambda s: "online:" in s)
        assert line.startswith("*** 3 online: "), line
        assert all(n in line for n in ("alice", "bob", "loner"))
