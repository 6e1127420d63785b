"""Crowded rooms: presence updates instead of an event per person, and lists in pages.

The threshold and the page size are settings; here they are tiny (a room is
crowded above 3 people, a page is 2 people) so that a handful of real clients,
over both transports, reach every edge a crowd of ten thousand would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.chat import RunningChat
from tests.support.clients import WsClient, wait_until
from tests.support.rooms import TIMEOUT, Person, people_of
from webchat import create_app
from webchat.settings import Settings

ABOVE = 3  # presence_batch_above: a room of 4 or more is crowded
PAGE = 2  # people_page


@pytest.fixture
def crowd_chat(make_chat: Callable[..., RunningChat]) -> RunningChat:
    return make_chat(
        rate_per_second=0, presence_batch_above=ABOVE, presence_interval=0.2, people_page=PAGE
    )


@pytest.fixture
def person(crowd_chat: RunningChat) -> Iterator[Callable[..., Person]]:
    yield from people_of(crowd_chat)


def presence_events(watcher: Person, mark: str) -> list[dict[str, Any]]:
    """WebSocket: the presence updates before the fence ``mark``."""
    return [e for e in watcher.events_until(mark) if e["type"] == "presence"]


def test_a_room_at_the_threshold_still_hears_each_join(person, via):
    watcher = person("watcher", via)
    person("b", "tcp")
    person("c", "web")  # the lobby has 3: not crowded yet, every join is its own event
    watcher.sees("*** c joined (browser)", type="join", nick="c")


def test_above_the_threshold_joins_arrive_as_one_update(person, via):
    watcher = person("watcher", via)
    person("b", "tcp")
    person("c", "web")
    d = person("d", "tcp")  # the 4th: now the lobby is crowded
    person("e", "web")
    if via == "tcp":
        line = watcher.expect(lambda got: "joined: " in got)
        assert line in ("*** 2 joined: d, e", "*** 1 joined: d"), line
        if line == "*** 1 joined: d":
            watcher.sees("*** 1 joined: e")
        mark = d.fence()  # a terminal is not sent its own lines: someone else posts it
        assert not [ln for ln in watcher.until(mark) if ln.startswith("*** d joined")]
        return
    seen: list[str] = []
    while len(seen) < 2:
        event = watcher.w.expect("presence", TIMEOUT)
        assert event["room"] == "#lobby" and event["left"] == []
        assert "id" in event  # in the one order, and in the log
        seen += [u["nick"] for u in event["joined"]]
        assert event["joined"][0]["via"] in ("terminal", "tcp", "web", "browser")
    assert seen == ["d", "e"]
    mark = d.fence()
    assert not [e for e in watcher.events_until(mark) if e["type"] == "join"]


def test_an_update_is_logged_with_its_line_and_count_not_its_lists(person, crowd_chat):
    """A newcomer's list comes from the welcome; the lists of an update replayed to each
    newcomer made a crowd's arrival O(n²) (benchmarks/README.md, "Ten thousand people")."""
    watcher = person("watcher", "web")
    for nick in ("b", "c", "d"):  # the 4th makes the lobby crowded: d is in an update
        person(nick, "tcp")
    live = watcher.w.expect("presence", TIMEOUT)
    assert [u["nick"] for u in live["joined"]] == ["d"]
    newcomer = WsClient(crowd_chat.url)
    try:
        newcomer.send({"type": "join", "nick": "late"})
        past = [e for e in newcomer.read_until("welcome") if e["type"] == "presence"]
    finally:
        newcomer.close()
    assert [(e["id"], e["text"], e["users"], e["history"]) for e in past] == [
        (live["id"], "1 joined: d", 4, True)
    ]
    assert "joined" not in past[0] and "left" not in past[0]


def test_the_one_joining_a_crowded_room_still_gets_their_own_join(person, via):
    for nick in ("a", "b", "c"):
        person(nick, "web")
    newcomer = person("d", via)
    newcomer.sees("*** d joined (" + ("terminal)" if via == "tcp" else "browser)"), type="join")


def apply(known: set[str], event: dict[str, Any]) -> None:
    """What a client does with the events that change the lobby's list."""
    if event["type"] == "presence" and event["room"] == "#lobby":
        assert not set(event["left"]) & {u["nick"] for u in event["joined"]}, event
        known -= set(event["left"])
        known |= {u["nick"] for u in event["joined"]}
    elif event["type"] == "join":
        known.add(event["nick"])
    elif event["type"] == "leave":
        known.discard(event["nick"])
    elif event["type"] == "nick":
        known.discard(event["nick"])
        known.add(event["new"])


def follow_until(client: WsClient, known: set[str], done: Callable[[], bool]) -> None:
    """Apply events in order until ``done``; fails after TIMEOUT without it."""
    deadline = time.monotonic() + TIMEOUT
    while not done():
        apply(known, client.next_event(max(0.01, deadline - time.monotonic())))


def everyone(chat: RunningChat) -> set[str]:
    return {p.nick for p in chat.runtime.hub.people.presence()}


def test_leaves_and_a_return_under_the_same_nick_end_exact(person, crowd_chat):
    client = WsClient(crowd_chat.url)
    try:
        known = {u["nick"] for u in client.join("watcher")["users"]}
        for nick in ("b", "c", "d"):
            person(nick, "tcp")
        gone, back = person("gone", "tcp"), person("back", "tcp")
        follow_until(client, known, lambda: known == everyone(crowd_chat))
        gone.close()
        back.close()
        wait_until(lambda: not {"gone", "back"} & everyone(crowd_chat), TIMEOUT)
        person("back", "web")  # the same nick returns, perhaps within the same interval
        follow_until(client, known, lambda: "gone" not in known and "back" in known)
        assert known == everyone(crowd_chat) == {"watcher", "b", "c", "d", "back"}
    finally:
        client.close()


def test_a_crowded_room_gets_entries_and_exits_as_updates(person, via):
    for nick in ("a", "b", "c", "d"):
        person(nick, "web", ("#big",))
    watcher = person("watcher", via, ("#big",))  # the 5th in #big
    newcomer = person("late", "tcp")
    newcomer.type("/join #big")
    newcomer.sees("[#big] *** late entered")  # their own enter, after the room's history

    def update(verb: str) -> Callable[[Any], bool]:
        if via == "tcp":
            return lambda got: (
                got.startswith("[#big] *** ") and f"{verb}: " in got and "late" in got
            )
        key = "joined" if verb == "entered" else "left"
        return lambda e: (
            e["type"] == "presence"
            and e["room"] == "#big"
            and "late" in [u if isinstance(u, str) else u["nick"] for u in e[key]]
        )

    watcher.expect(update("entered"))
    newcomer.type("/part #big")
    newcomer.sees("[#big] *** late left")
    got = watcher.expect(update("left"))
    assert got == "[#big] *** 1 left: late" if via == "tcp" else got["joined"] == []


def test_welcome_lists_one_page_with_the_total_and_where_to_go_on(person):
    for nick in ("carol", "alice", "bob"):
        person(nick, "tcp")
    dave = person("dave", "web")
    welcome = dave.welcome
    assert welcome is not None
    assert [u["nick"] for u in welcome["users"]] == ["alice", "bob"]  # nick order, one page
    assert welcome["total"] == 4 and welcome["next"] == "bob"
    assert "4 online: dave, alice, bob" in welcome["text"]


def test_a_welcome_of_exactly_one_page_says_there_is_no_next(person):
    person("alice", "tcp")
    bob = person("bob", "web")
    assert bob.welcome is not None
    assert [u["nick"] for u in bob.welcome["users"]] == ["alice", "bob"]
    assert bob.welcome["total"] == 2 and "next" not in bob.welcome


def test_who_pages_from_the_start_to_the_end(person, via):
    for nick in ("dave", "carol", "bob"):
        person(nick, "tcp")
    asker = person("alice", via)
    asker.type("/who")
    first = asker.sees(
        "*** 4 online: alice (terminal, idle 0s), bob (terminal, idle 0s) "
        "(2 shown; /who bob for more)",
        type="users",
        total=4,
        next="bob",
    )
    if via == "web":
        assert [u["nick"] for u in first["users"]] == ["alice", "bob"] and "after" not in first
    asker.type("/who bob")
    last = asker.expect(lambda got: "carol" in str(got))
    if via == "tcp":
        assert last == "*** 4 online: carol (terminal, idle 0s), dave (terminal, idle 0s)"
    else:
        assert last["type"] == "users" and "next" not in last and last["after"] == "bob"
        assert [u["nick"] for u in last["users"]] == ["carol", "dave"]


def test_names_pages_a_room_and_takes_any_nick_as_where_to_start(person, via):
    for nick in ("ann", "ben", "cat"):
        person(nick, "web", ("#dev",))
    asker = person("zed", via, ("#dev",))
    asker.type("/names #dev Ben")  # any spelling of a nick: pages go by nick key
    if via == "tcp":
        asker.sees("[#dev] *** 4 in #dev: cat (browser, idle 0s), zed (terminal, idle 0s)")
    else:
        event = asker.w.expect("names", TIMEOUT)
        assert [u["nick"] for u in event["users"]] == ["cat", "zed"]
        assert "next" not in event and event["total"] == 4


def test_names_with_too_many_words_is_refused(person, via):
    asker = person("asker", via)
    asker.type("/names #lobby a b")
    asker.error("usage", "/names [#ROOM] [FROM]")


def test_a_list_built_from_pages_and_updates_is_exact(person, crowd_chat):
    """A browser's way: the welcome's page, the rest by page, and the events between."""
    for nick in ("p1", "p2", "p3", "p4"):
        person(nick, "tcp")
    client = WsClient(crowd_chat.url)
    try:
        welcome = client.join("watcher")
        known = {u["nick"] for u in welcome["users"]}
        cursor = welcome.get("next")
        assert cursor is not None
        arriving = [person("p5", "tcp"), person("p0", "web")]  # they come while pages are read
        arriving[0].close()  # and one goes again
        while cursor is not None:
            client.say(f"/who {cursor}")
            while (event := client.next_event(TIMEOUT))["type"] != "users":
                apply(known, event)
            known |= {u["nick"] for u in event["users"]}
            cursor = event.get("next")
        follow_until(client, known, lambda: known == everyone(crowd_chat))
        assert "p5" not in known and "p0" in known
    finally:
        client.close()


@pytest.mark.parametrize("setting", [{"people_page": 0}, {"presence_interval": 0}])
def test_a_page_of_nobody_or_updates_without_an_interval_are_refused_at_start(setting):
    with pytest.raises(ValueError, match="people_page must be at least 1"):
        create_app(Settings(history_db=":memory:", tcp_enabled=False, **setting))
