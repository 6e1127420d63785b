"""The page with accounts and moderation, in a real browser (Debian's chromium).

Registered nicks and the server password ask for their password in the join form;
operators are marked in the people list and moderate from it; kicks, bans, mutes and
operator changes show in the log. Nothing here sleeps: every wait is an `expect` or a
`wait_for_function` with a timeout.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.support.chat import RunningChat
from tests.support.clients import wait_until
from tests.web.helpers import (
    OpenPage,
    enter_room,
    join,
    quiet,
    record_joins,
    room_item,
    rooms_listed,
    say,
    tcp_enter,
    users,
)

PASSWORD = "longpassword1"


def register(chat: RunningChat, nick: str, password: str = PASSWORD) -> None:
    """Register ``nick`` from a terminal, then leave, so that the nick is free but owned."""
    client = chat.tcp(nick)
    client.line(f"/register {password}")
    client.expect("is registered to you")
    client.line("/quit")
    client.read_until_closed()
    wait_until(lambda: chat.runtime.hub.people.find(nick) is None, what=f"{nick} gone")


def record_says(page: Page) -> list[dict[str, Any]]:
    """Every say frame the page sends on sockets opened from now on, but its own /names."""
    says: list[dict[str, Any]] = []

    def sent(payload: str | bytes) -> None:
        frame = json.loads(payload)
        if frame.get("type") == "say" and not frame["text"].startswith("/names "):
            says.append(frame)

    page.on("websocket", lambda ws: ws.on("framesent", sent))
    return says


def person(page: Page, nick: str) -> Any:
    """One entry of the people list."""
    return page.locator(f'#users li[data-nick="{nick}"]')


def stored(page: Page) -> str:
    """Everything the page keeps in web storage."""
    return str(page.evaluate("JSON.stringify([{...localStorage}, {...sessionStorage}])"))


def nick_password(page: Page) -> Any:
    return page.get_by_label("Password", exact=True)


def server_password(page: Page) -> Any:
    return page.get_by_label("Server password", exact=True)


# ----- passwords in the join form ---------------------------------------------------------


def test_a_registered_nick_asks_for_its_password_and_the_right_one_joins(
    chat: RunningChat, open_page: OpenPage
) -> None:
    register(chat, "alice")
    tom = chat.tcp("tom")
    page = open_page()
    joins = record_joins(page)
    # The field is not there until the server asks for it.
    expect(nick_password(page)).to_be_hidden()
    expect(server_password(page)).to_be_hidden()

    page.get_by_label("Nickname").fill("alice")
    page.get_by_label("Nickname").press("Enter")
    field = nick_password(page)
    expect(field).to_be_visible()
    expect(field).to_have_attribute("type", "password")
    expect(field).to_be_focused()
    expect(page.locator("#password-error")).to_contain_text("alice is a registered nickname")
    expect(field).to_have_attribute("aria-invalid", "false")
    expect(page.locator("#chat-view")).to_be_hidden()
    expect(server_password(page)).to_be_hidden()
    assert joins == [{"type": "join", "nick": "alice"}]

    # The password goes in the join frame, on the same socket.
    field.fill(PASSWORD)
    field.press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text("alice")
    tom.expect("alice joined (browser)")
    assert joins[-1] == {"type": "join", "nick": "alice", "password": PASSWORD}
    expect(field).to_be_hidden()
    expect(field).to_have_value("")  # not left lying in the page
    assert PASSWORD not in stored(page)

    # A dropped socket comes back with the password it held in memory.
    session = chat.runtime.hub.people.find("alice")
    assert session is not None
    session.transport.abort()
    tom.expect("alice left")
    tom.expect("alice joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    assert joins[-1]["password"] == PASSWORD
    assert "since" in joins[-1]
    expect(page.locator("#log")).to_contain_text("Reconnected.")
    expect(page.locator("#join-view")).to_be_hidden()
    assert PASSWORD not in stored(page)


def test_a_wrong_password_is_explained_and_another_nick_needs_none(
    chat: RunningChat, open_page: OpenPage
) -> None:
    register(chat, "alice")
    page = open_page()
    joins = record_joins(page)
    nick = page.get_by_label("Nickname")
    nick.fill("alice")
    nick.press("Enter")
    field = nick_password(page)
    expect(field).to_be_visible()

    field.fill("not the password")
    field.press("Enter")
    expect(page.locator("#password-error")).to_contain_text("password is wrong")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_be_focused()
    expect(page.locator("#chat-view")).to_be_hidden()
    wait_until(lambda: len(joins) == 2)
    assert joins[-1] == {"type": "join", "nick": "alice", "password": "not the password"}

    # Another nickname: the field goes, and no password is sent for it.
    nick.fill("alice2")
    expect(field).to_be_hidden()
    nick.press("Enter")
    expect(page.locator("#status")).to_contain_text("alice2")
    assert joins[-1] == {"type": "join", "nick": "alice2"}


def test_too_many_wrong_passwords_are_told(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    chat = make_chat(login_failures=1)
    register(chat, "alice")
    page = open_page(chat.url)
    page.get_by_label("Nickname").fill("alice")
    page.get_by_label("Nickname").press("Enter")
    field = nick_password(page)
    field.fill("not the password")
    field.press("Enter")
    expect(page.locator("#password-error")).to_contain_text("password is wrong")
    field.fill(PASSWORD)  # right, but too late: the server holds attempts back
    field.press("Enter")
    expect(page.locator("#nick-error")).to_contain_text("too many wrong passwords")
    expect(page.locator("#chat-view")).to_be_hidden()
    expect(page.locator("#status")).not_to_have_attribute("data-state", "disconnected")


def test_a_password_registered_from_the_page_is_held_for_reconnecting(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page()
    joins = record_joins(page)
    join(page, "carol")
    say(page, "/register " + PASSWORD)
    expect(page.locator("#log .ev-system", has_text="registered")).to_contain_text(
        "carol is registered to you"
    )
    # The line with the password is not recalled with ↑, nor kept anywhere.
    page.get_by_label("Message").press("ArrowUp")
    expect(page.get_by_label("Message")).to_have_value("")
    assert PASSWORD not in stored(page)

    session = chat.runtime.hub.people.find("carol")
    assert session is not None
    session.transport.abort()
    tom.expect("carol left")
    tom.expect("carol joined (browser)")
    expect(page.locator("#log")).to_contain_text("Reconnected.")
    assert joins[-1]["password"] == PASSWORD
    assert "password" not in joins[0]


def test_the_server_password_field(
    make_chat: Callable[..., RunningChat], open_page: OpenPage, tmp_path: Path
) -> None:
    secret = "server-secret-9"
    hashed = subprocess.run(
        [sys.executable, "-m", "webchat", "hash-password"],
        input=secret + "\n",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    path = tmp_path / "server-password"
    path.write_text(hashed + "\n")
    chat = make_chat(server_password_file=str(path))

    page = open_page(chat.url)
    joins = record_joins(page)
    expect(server_password(page)).to_be_hidden()
    page.get_by_label("Nickname").fill("sam")
    page.get_by_label("Nickname").press("Enter")
    field = server_password(page)
    expect(field).to_be_visible()
    expect(field).to_have_attribute("type", "password")
    expect(field).to_be_focused()
    expect(page.locator("#server-password-error")).to_contain_text("needs a server password")
    expect(nick_password(page)).to_be_hidden()

    field.fill("guess")
    field.press("Enter")
    expect(page.locator("#server-password-error")).to_contain_text("wrong")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#chat-view")).to_be_hidden()

    field.fill(secret)
    field.press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text("sam")
    assert joins[-1] == {"type": "join", "nick": "sam", "server_password": secret}
    assert secret not in stored(page)

    # /quit, then "Join again": the server password is still held for this tab.
    say(page, "/quit")
    page.get_by_role("button", name="Join again").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    assert joins[-1]["server_password"] == secret


# ----- operators and moderation ------------------------------------------------------------


def test_room_operators_are_marked_and_follow_op_and_deop(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page(viewport={"width": 1000, "height": 600})
    says = record_says(page)
    join(page, "alice")
    # Nobody made the lobby: no operators there, and no actions for alice.
    expect(person(page, "tom")).to_be_visible()
    expect(page.locator("#users .op-mark")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Moderate"))).to_have_count(0)

    enter_room(page, "#dev")  # alice made it: its operator
    tcp_enter(tom, "#dev")
    expect(person(page, "tom")).to_be_visible()
    expect(person(page, "alice").locator(".op-mark")).to_be_visible()
    expect(person(page, "alice")).to_contain_text("operator")  # what a screen reader hears
    expect(person(page, "tom").locator(".op-mark")).to_have_count(0)
    assert users(page) == ["alice", "tom"]  # the marker is not part of the name

    # alice makes tom an operator from the list; the marker follows the events.
    person(page, "tom").get_by_role("button", name="Moderate tom").click()
    actions = page.get_by_role("group", name="Actions for tom")
    say(page, "one moment")  # the menu stays open while the reader types (Enter is no click)
    expect(page.locator("#log .ev-message.mine")).to_have_count(1)
    expect(actions).to_be_visible()
    page.locator("#room-title").click()  # a click elsewhere closes it
    expect(actions).to_have_count(0)
    person(page, "tom").get_by_role("button", name="Moderate tom").click()
    person(page, "tom").get_by_role("button", name="Make operator tom").click()
    expect(person(page, "tom").locator(".op-mark")).to_be_visible()
    expect(page.locator("#log .ev-mod")).to_contain_text("alice made tom an operator of #dev")
    assert says[-1] == {"type": "say", "room": "#dev", "text": "/op tom"}
    tom.line("/deop alice")
    expect(person(page, "alice").locator(".op-mark")).to_have_count(0)
    expect(page.locator("#log .ev-mod", has_text="took operator")).to_contain_text(
        "tom took operator status from alice"
    )
    # No longer an operator: no more actions.
    expect(page.get_by_role("button", name=re.compile("^Moderate"))).to_have_count(0)

    # A /names answer sets the markers again (tom is still an operator there).
    say(page, "/names")
    expect(page.locator("#log .ev-system", has_text="2 in #dev")).to_be_visible()
    expect(person(page, "tom").locator(".op-mark")).to_be_visible()


def test_an_operator_kicks_and_mutes_from_the_people_list(
    chat: RunningChat, open_page: OpenPage
) -> None:
    alice = open_page(viewport={"width": 1000, "height": 600})
    bob = open_page(viewport={"width": 1000, "height": 600})
    says = record_says(alice)
    join(alice, "alice")
    join(bob, "bob")
    enter_room(alice, "#dev")
    enter_room(bob, "#dev")
    expect(person(alice, "bob")).to_be_visible()

    # bob is no operator: nothing to moderate with, not even in a room alice made.
    expect(person(bob, "alice").locator(".op-mark")).to_be_visible()
    expect(bob.get_by_role("button", name=re.compile("^Moderate"))).to_have_count(0)
    # alice is: actions for bob, none for herself.
    expect(alice.get_by_role("button", name="Moderate alice")).to_have_count(0)
    toggle = person(alice, "bob").get_by_role("button", name="Moderate bob")
    expect(toggle).to_have_attribute("aria-expanded", "false")

    # By keyboard: open bob's actions, Escape closes them, open again, mute him.
    toggle.focus()
    alice.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    actions = alice.get_by_role("group", name="Actions for bob")
    expect(actions.get_by_role("button")).to_have_text(
        ["Kick", "Mute 10m", "Unmute", "Ban", "Make operator"]
    )
    expect(toggle).to_be_focused()
    alice.keyboard.press("Escape")
    expect(actions).to_have_count(0)
    expect(toggle).to_be_focused()
    alice.keyboard.press("Enter")
    alice.keyboard.press("Tab")
    expect(actions.get_by_role("button", name="Kick bob")).to_be_focused()
    alice.keyboard.press("Tab")
    expect(actions.get_by_role("button", name="Mute 10m bob")).to_be_focused()
    alice.keyboard.press("Enter")
    mute = "alice muted bob in #dev for 10m"
    expect(alice.locator("#log .ev-mod")).to_contain_text(mute)
    expect(bob.locator("#log .ev-mod")).to_contain_text(mute)
    expect(actions).to_have_count(0)  # the action closed the menu
    say(alice, "/bans")  # its answer is shown as text
    expect(alice.locator("#log .ev-system", has_text="mutes:")).to_contain_text("bob (by alice")
    say(bob, "can I still talk?")
    expect(bob.locator("#log .ev-error")).to_be_visible()
    expect(alice.locator("#log .ev-message", has_text="still talk")).to_have_count(0)

    # Kick, with the mouse.
    person(alice, "bob").get_by_role("button", name="Moderate bob").click()
    alice.get_by_role("button", name="Kick bob").click()
    assert [s for s in says if s["text"].startswith(("/mute", "/kick"))] == [
        {"type": "say", "room": "#dev", "text": "/mute bob 10m"},
        {"type": "say", "room": "#dev", "text": "/kick bob"},
    ]
    expect(alice.locator("#log .ev-mod", has_text="kicked")).to_contain_text(
        "alice kicked bob from #dev"
    )
    expect(person(alice, "bob")).to_have_count(0)
    expect(alice.locator("#user-count")).to_have_text("1")
    # bob's page: out of #dev, told so in the room that came to the front.
    expect(bob.locator("#room-title")).to_have_text("#lobby")
    assert rooms_listed(bob) == ["#lobby"]
    expect(bob.locator("#log .ev-mod", has_text="kicked")).to_contain_text(
        "alice kicked bob from #dev"
    )
    expect(bob.locator("#announce")).to_contain_text("alice kicked bob from #dev")
    expect(bob.locator("#status")).to_have_attribute("data-state", "online")


def test_moderation_lines_are_text_and_replayed_as_history(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    tcp_enter(tom, "#ops")  # tom made it: its operator
    page = open_page()
    join(page, "bob")
    enter_room(page, "#ops")
    payload = '<img src=x onerror="window.__pwned=1">'
    tom.line(f"/ban bob 2h {payload}")
    line = page.locator("#log .ev-mod", has_text="banned")
    expect(line).to_contain_text(f"tom banned bob from #ops for 2h ({payload})")
    expect(page.locator("#log img")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#room-title")).to_have_text("#lobby")
    assert rooms_listed(page) == ["#lobby"]
    expect(room_item(page, "#ops")).to_have_count(0)

    # Banned: the page's attempt to come back is refused, and told.
    say(page, "/join #ops")
    expect(page.locator("#log .ev-error")).to_be_visible()

    # Whoever enters later sees it in the room's past.
    tom.line("/unban bob")
    quiet(tom)
    late = open_page()
    join(late, "dave")
    enter_room(late, "#ops")
    expect(late.locator("#log .ev-mod.history", has_text="banned")).to_contain_text(
        "tom banned bob from #ops for 2h"
    )
    expect(late.locator("#log .ev-mod", has_text="lifted")).to_contain_text(
        "tom lifted the ban on bob in #ops"
    )


def test_a_server_operator_removes_someone_from_the_chat(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    chat = make_chat(operators=("boss",))
    register(chat, "boss")
    boss = open_page(chat.url, viewport={"width": 1000, "height": 600})
    boss.get_by_label("Nickname").fill("boss")
    boss.get_by_label("Nickname").press("Enter")
    nick_password(boss).fill(PASSWORD)
    nick_password(boss).press("Enter")
    expect(boss.locator("#status")).to_contain_text("boss")
    bob = open_page(chat.url, viewport={"width": 1000, "height": 600})
    join(bob, "bob")
    bob_joins = record_joins(bob)

    # A server operator moderates the lobby too.
    expect(person(boss, "boss").locator(".op-mark")).to_be_visible()
    expect(person(bob, "boss").locator(".op-mark")).to_be_visible()
    expect(bob.get_by_role("button", name=re.compile("^Moderate"))).to_have_count(0)
    person(boss, "bob").get_by_role("button", name="Moderate bob").click()
    boss.get_by_role("button", name="Kick bob").click()

    # Out of #lobby is out of the chat: bob's page says so and does not come back by itself.
    expect(boss.locator("#log .ev-mod")).to_contain_text("boss kicked bob from the chat")
    expect(bob.locator("#log .ev-mod")).to_contain_text("boss kicked bob from the chat")
    expect(bob.get_by_role("button", name="Join again")).to_be_visible()
    expect(bob.locator("#left-text")).to_contain_text("boss kicked bob from the chat")
    expect(bob.locator("#status")).to_have_attribute("data-state", "offline")
    expect(person(boss, "bob")).to_have_count(0)
    assert bob_joins == []
    # Joining again is bob's own choice, and a kick is no ban.
    bob.get_by_role("button", name="Join again").click()
    expect(bob.locator("#status")).to_have_attribute("data-state", "online")
    expect(person(boss, "bob")).to_be_visible()

    # A ban from the lobby: refused when bob tries to come back.
    person(boss, "bob").get_by_role("button", name="Moderate bob").click()
    boss.get_by_role("button", name="Ban bob").click()
    expect(bob.locator("#left-text")).to_contain_text("boss banned bob from the chat")
    bob.get_by_role("button", name="Join again").click()
    expect(bob.locator("#join-view")).to_be_visible()
    expect(bob.locator("#nick-error")).not_to_be_empty()
    expect(bob.get_by_label("Nickname")).to_be_focused()
    assert chat.runtime.hub.people.find("bob") is None
    # No reconnect loop: no countdown, the page waits for the reader.
    expect(bob.locator("#status")).to_have_attribute("data-state", re.compile("offline|connecting"))
    expect(bob.locator("#retry")).to_be_hidden()
    assert len(bob_joins) == 2  # the two presses of "Join again", nothing on its own
