"""What the browser tests share: the browser's settings and small steps on the page.

Nothing here sleeps and hopes: every wait is an `expect` or a `wait_for_function`
with a timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.support.clients import TcpClient

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000

expect.set_options(timeout=TIMEOUT_MS)

OpenPage = Callable[..., Page]


def join(page: Page, nick: str) -> None:
    page.get_by_label("Nickname").fill(nick)
    page.get_by_label("Nickname").press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text(nick)


def record_joins(page: Page) -> list[dict[str, Any]]:
    """Every join frame the page sends from now on, in order (reconnects included)."""
    joins: list[dict[str, Any]] = []

    def sent(payload: str | bytes) -> None:
        frame = json.loads(payload)
        if frame.get("type") == "join":
            joins.append(frame)

    page.on("websocket", lambda ws: ws.on("framesent", sent))
    return joins


def say(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def users(page: Page) -> list[str]:
    return page.locator("#users .nick").all_inner_texts()


def quiet(client: TcpClient) -> None:
    """Wait until the server has handled every line this client sent (commands run in order)."""
    client.line("/who")
    client.expect("online")


def room_item(page: Page, room: str) -> Locator:
    return page.locator(f'#room-list li[data-room="{room}"]')


def rooms_listed(page: Page) -> list[str]:
    return page.locator("#room-list .room-name").all_inner_texts()


def enter_room(page: Page, name: str) -> None:
    """Enter a room through the page's own form, and wait until it is in front."""
    if not page.locator("#room-form").is_visible():  # folded away on a phone
        page.locator("#rooms-panel summary").click()
    page.get_by_label("Join or create a room").fill(name)
    page.get_by_label("Join or create a room").press("Enter")
    room = name.lower() if name.startswith("#") else "#" + name.lower()
    expect(page.locator("#room-title")).to_have_text(room)


def switch_room(page: Page, room: str) -> None:
    if not page.locator("#room-list").is_visible():  # folded away on a phone
        page.locator("#rooms-panel summary").click()
    room_item(page, room).get_by_role("button").click()
    expect(page.locator("#room-title")).to_have_text(room)
    expect(room_item(page, room)).to_have_class(re.compile(r"\bactive\b"))


def tcp_enter(client: TcpClient, room: str) -> None:
    client.line(f"/join {room}")
    client.expect(f"You are now in {room}")
