"""The web page in a real browser (Debian's chromium, driven by Playwright).

Browser downloads do not work here, so Playwright is pointed at /usr/bin/chromium;
`make test` installs it (`make system-deps`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import RunningChat

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
TIMEOUT_MS = 10_000
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"

expect.set_options(timeout=TIMEOUT_MS)

OpenPage = Callable[..., Page]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), (
        f"{CHROMIUM} is missing: the browser tests need Debian's chromium. "
        "`make test` installs it (or: apt-get install chromium)."
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(browser: Browser, chat: RunningChat) -> Iterator[OpenPage]:
    """Open the chat page in a fresh browser context (its own localStorage).

    Any uncaught exception in a page's script fails the test.
    """
    contexts = []
    errors: list[str] = []

    def open_(**context_options: Any) -> Page:
        context = browser.new_context(**context_options)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(chat.url + "/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == [], f"the page's script raised: {errors}"


def join(page: Page, nick: str) -> None:
    page.get_by_label("Nickname").fill(nick)
    page.get_by_label("Nickname").press("Enter")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text(nick)


def say(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def users(page: Page) -> list[str]:
    return page.locator("#users .nick").all_inner_texts()


def test_two_browsers_chat_both_ways(open_page: OpenPage) -> None:
    alice, bob = open_page(), open_page()
    join(alice, "alice")
    join(bob, "bob")
    expect(alice.locator("#log .ev-join", has_text="bob")).to_contain_text("bob joined (browser)")

    say(alice, "hi bob")
    line = bob.locator("#log .ev-message", has_text="hi bob")
    expect(line).to_have_count(1)
    expect(line.locator(".nick")).to_have_text("alice")
    expect(line.locator("time")).to_have_text(re.compile(r"\d"))
    say(bob, "hello alice")
    expect(alice.locator("#log .ev-message", has_text="hello alice")).to_contain_text("bob")
    # The sender sees its own message once, marked as its own.
    expect(alice.locator("#log .ev-message.mine", has_text="hi bob")).to_have_count(1)
    expect(alice.locator("#user-count")).to_have_text("2")
    expect(bob.locator("#users")).to_contain_text("alice")


def test_browser_and_terminal_chat_both_ways(chat: RunningChat, open_page: OpenPage) -> None:
    tom = chat.tcp("tom")
    page = open_page(viewport={"width": 1000, "height": 640})
    join(page, "wendy")
    tom.expect("wendy joined (browser)")

    tom.line("hello from the terminal")
    expect(page.locator("#log .ev-message", has_text="hello from the terminal")).to_contain_text(
        "tom"
    )
    say(page, "hello from the browser")
    assert tom.expect("wendy:") == "wendy: hello from the browser"

    tom.line("/me waves")
    expect(page.locator("#log .ev-me")).to_contain_text("* tom waves")
    tom.line("/msg wendy psst")
    private = page.locator("#log .ev-private")
    expect(private).to_contain_text("tom → wendy")
    expect(private).to_contain_text("psst")
    tom.line("/away lunch")
    expect(page.locator("#log .ev-away")).to_contain_text("tom is away: lunch")
    expect(page.locator("#users li", has_text="tom")).to_contain_text("away: lunch")
    expect(page.locator("#users li", has_text="tom")).to_contain_text("terminal")

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-desktop.png"))


def test_refused_nick_is_explained_and_a_retry_works(
    chat: RunningChat, open_page: OpenPage
) -> None:
    bob = chat.tcp("bob")
    page = open_page()
    nick = page.get_by_label("Nickname")
    nick.fill("Bob")
    nick.press("Enter")
    expect(page.locator("#nick-error")).to_contain_text("already taken")
    expect(nick).to_have_attribute("aria-invalid", "true")
    expect(nick).to_be_focused()
    expect(page.locator("#chat-view")).to_be_hidden()

    nick.fill("bob2")
    nick.press("Enter")
    expect(page.locator("#status")).to_contain_text("bob2")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#nick-error")).to_have_text("")
    bob.expect("bob2 joined (browser)")


def test_received_markup_is_shown_as_text(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page()
    join(page, "victim")
    mallory = chat.tcp("mallory")
    img = '<img src=x onerror="window.__pwned=1">'
    script = "<script>window.__pwned=2</script>"
    mallory.line(img)
    mallory.line(script)
    mallory.line("/me <b>bold</b>")
    expect(page.locator("#log .ev-message .text").nth(0)).to_have_text(img)
    expect(page.locator("#log .ev-message .text").nth(1)).to_have_text(script)
    expect(page.locator("#log .ev-me .text")).to_have_text("<b>bold</b>")
    assert page.locator("#log img, #log script, #log b").count() == 0
    assert page.locator("img, b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_leave_shows_the_reason_and_updates_the_list(
    chat: RunningChat, open_page: OpenPage
) -> None:
    page = open_page()
    join(page, "stay")
    dave = chat.tcp("dave")
    expect(page.locator("#users")).to_contain_text("dave")
    expect(page.locator("#user-count")).to_have_text("2")

    dave.line("/quit gone fishing")
    expect(page.locator("#log .ev-leave")).to_contain_text("dave left (gone fishing)")
    expect(page.locator("#user-count")).to_have_text("1")
    assert users(page) == ["stay"]


def test_reconnects_and_rejoins_after_the_socket_drops(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page()
    join(page, "carol")
    say(page, "before the drop")
    tom.expect("carol: before the drop")
    # Record every state the status indicator passes through: the disconnected
    # one lasts only as long as the first backoff (0.25-0.5 s).
    page.evaluate(
        """() => {
            const status = document.getElementById("status");
            window.__states = [];
            new MutationObserver(() => window.__states.push(status.dataset.state + " " +
                status.textContent)).observe(status, {attributes: true, childList: true});
        }"""
    )

    session = chat.runtime.hub.find("carol")
    assert session is not None
    session.transport.abort()

    page.wait_for_function(
        "() => window.__states.some(s => s.startsWith('disconnected Disconnected — reconnecting'))"
    )
    tom.expect("carol left")
    tom.expect("carol joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text("carol")
    expect(page.locator("#log")).to_contain_text("Reconnected.")
    expect(page.locator("#user-count")).to_have_text("2")

    say(page, "after the drop")
    assert tom.expect("carol:") == "carol: after the drop"
    tom.line("welcome back")
    expect(page.locator("#log .ev-message", has_text="welcome back")).to_have_count(1)
    expect(page.locator("#log .ev-message", has_text="before the drop")).to_have_count(1)


def test_quit_does_not_reconnect_and_offers_to_join_again(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page()
    join(page, "quitter")
    say(page, "/quit bye all")
    tom.expect("quitter left (bye all)")
    rejoin = page.get_by_role("button", name="Join again")
    expect(rejoin).to_be_visible()
    expect(page.locator("#status")).to_have_attribute("data-state", "offline")
    expect(page.get_by_label("Message")).to_be_hidden()
    assert chat.runtime.hub.find("quitter") is None

    rejoin.click()
    tom.expect("quitter joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.get_by_label("Message")).to_be_focused()
    say(page, "I'm back")
    assert tom.expect("quitter:") == "quitter: I'm back"


def test_inputs_have_labels_and_the_nick_is_remembered(open_page: OpenPage) -> None:
    page = open_page()
    nick = page.get_by_label("Nickname")
    expect(nick).to_be_visible()
    expect(nick).to_be_focused()
    join(page, "labelled")
    expect(page.get_by_role("log")).to_have_attribute("aria-live", "polite")
    message = page.get_by_label("Message")
    expect(message).to_be_visible()
    expect(message).to_be_focused()

    # Keyboard only: Enter sends, the message comes back into the log.
    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.get_by_role("log")).to_contain_text("typed, not clicked")
    expect(message).to_have_value("")

    page.reload()
    expect(page.get_by_label("Nickname")).to_have_value("labelled")


def test_fits_a_phone_in_dark_mode(chat: RunningChat, open_page: OpenPage) -> None:
    tom = chat.tcp("tom")
    page = open_page(viewport={"width": 375, "height": 700}, color_scheme="dark")
    join(page, "phone")
    tom.line("a-very-long-word-" * 12)
    expect(page.locator("#log .ev-message", has_text="a-very-long-word-")).to_be_visible()
    say(page, "/who")
    expect(page.locator("#log .ev-system", has_text="online: phone (")).to_be_visible()
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= 375
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 20, 24)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-phone-dark.png"))


SCROLL_LOG = """(top) => new Promise((done) => {
    const log = document.getElementById("log");
    log.addEventListener("scroll", () => done(log.scrollTop), {once: true});
    log.scrollTop = top === null ? log.scrollHeight : top;
})"""


def test_follows_new_messages_only_at_the_bottom(chat: RunningChat, open_page: OpenPage) -> None:
    # Four people, ten lines each: a busy room, each of them inside the rate limit's burst.
    talkers = [chat.tcp(f"tom{k}") for k in range(4)]
    tom = talkers[0]
    page = open_page(viewport={"width": 800, "height": 420})
    join(page, "reader")
    for i in range(40):
        talkers[i % 4].line(f"line {i}")
    expect(page.locator("#log li", has_text="line 39")).to_be_attached()
    expect(page.locator("#log li", has_text="line 38")).to_be_attached()
    expect(page.locator("#log li", has_text="line 37")).to_be_attached()
    expect(page.locator("#log li", has_text="line 36")).to_be_attached()
    expect(page.locator("#log li").last).to_be_in_viewport()

    assert page.evaluate(SCROLL_LOG, 0) == 0  # the reader scrolls up to read
    tom.line("while you were reading")
    expect(page.locator("#log li", has_text="while you were reading")).to_be_attached()
    expect(page.locator("#log li", has_text="while you were reading")).not_to_be_in_viewport()
    assert page.evaluate("document.getElementById('log').scrollTop") == 0

    page.evaluate(SCROLL_LOG, None)  # back at the bottom: follow again
    tom.line("caught up")
    expect(page.locator("#log li", has_text="caught up")).to_be_in_viewport()
