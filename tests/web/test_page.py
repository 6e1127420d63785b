"""The web page in a real browser (Debian's chromium, driven by Playwright).

Browser downloads do not work here, so Playwright is pointed at /usr/bin/chromium;
`make test` installs it (`make system-deps`). Nothing here sleeps and hopes: every
wait is an `expect` or a `wait_for_function` with a timeout.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect
from werkzeug.serving import make_server

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient
from tests.web.helpers import (
    OpenPage,
    enter_room,
    join,
    quiet,
    record_joins,
    room_item,
    rooms_listed,
    say,
    switch_room,
    tcp_enter,
    users,
)
from webchat import create_app
from webchat.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
STATIC = ROOT / "static"


def texts(page: Page, selector: str = "#log .ev-message .text") -> list[str]:
    return page.locator(selector).all_text_contents()


def log_ids(page: Page) -> list[int]:
    return page.evaluate(
        "[...document.querySelectorAll('#log li[data-id]')].map(li => Number(li.dataset.id))"
    )


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name))


# Visibility as the page sees it: a hidden tab, without minimising a headless window.
SET_HIDDEN = """(hidden) => {
    const state = hidden ? "hidden" : "visible";
    for (const [name, value] of [["hidden", hidden], ["visibilityState", state]])
        Object.defineProperty(document, name, {configurable: true, get: () => value});
    document.dispatchEvent(new Event("visibilitychange"));
}"""

# Scroll the log (null: to the bottom) and resolve once the page has seen the scroll.
SCROLL_LOG = """(top) => new Promise((done) => {
    const log = document.getElementById("log");
    const target = top === null ? log.scrollHeight - log.clientHeight : top;
    if (Math.abs(log.scrollTop - target) < 1) return done(log.scrollTop);
    log.addEventListener("scroll", () => done(log.scrollTop), {once: true});
    log.scrollTop = target;
})"""


# ----- chatting -----------------------------------------------------------------------


def test_two_browsers_chat_both_ways(open_page: OpenPage) -> None:
    alice = open_page(locale="en-GB", timezone_id="Asia/Kolkata")
    bob = open_page()
    join(alice, "alice")
    join(bob, "bob")
    expect(alice.locator("#log .ev-join", has_text="bob")).to_contain_text("bob joined (browser)")

    say(alice, "hi bob")
    line = bob.locator("#log .ev-message", has_text="hi bob")
    expect(line).to_have_count(1)
    expect(line.locator(".nick")).to_have_text("alice")
    expect(line).not_to_have_class(re.compile(r"\bmine\b"))
    say(bob, "hello alice")
    expect(alice.locator("#log .ev-message", has_text="hello alice")).to_contain_text("bob")
    # The sender sees its own message once, marked as its own.
    expect(alice.locator("#log .ev-message.mine", has_text="hi bob")).to_have_count(1)
    expect(alice.locator("#user-count")).to_have_text("2")
    expect(bob.locator("#users")).to_contain_text("alice")

    # Times are the viewer's own: UTC from the server, shown in Kolkata (UTC+5:30).
    stamp = alice.locator("#log .ev-message", has_text="hello alice").locator("time")
    utc = datetime.fromisoformat(stamp.get_attribute("datetime") or "")
    local = utc.astimezone(ZoneInfo("Asia/Kolkata"))
    expect(stamp).to_have_text(local.strftime("%H:%M"))
    expect(stamp).to_have_attribute("title", re.compile(local.strftime("%H:%M:%S")))


def test_browser_and_terminal_chat_both_ways(chat: RunningChat, open_page: OpenPage) -> None:
    tom = chat.tcp("tom")
    page = open_page(viewport={"width": 1000, "height": 560})
    join(page, "wendy")
    tom.expect("wendy joined (browser)")
    bob = chat.ws("bob")

    tom.line("hi! anyone around?")
    expect(page.locator("#log .ev-message", has_text="anyone around")).to_contain_text("tom")
    say(page, "hello from the browser")
    assert tom.expect("wendy:") == "wendy: hello from the browser"
    bob.say("the protocol is at https://example.com/docs/PROTOCOL.md")

    tom.line("/me waves from nc")
    expect(page.locator("#log .ev-me")).to_contain_text("* tom waves from nc")
    tom.line("/msg wendy lunch at 12?")
    private = page.locator("#log .ev-private")
    expect(private).to_contain_text("tom → wendy")
    expect(private).to_contain_text("lunch at 12?")
    tom.line("/away lunch")
    expect(page.locator("#log .ev-away")).to_contain_text("tom is away: lunch")
    expect(page.locator("#users li", has_text="tom")).to_contain_text("away: lunch")
    expect(page.locator("#users li", has_text="tom")).to_contain_text("terminal")
    expect(page.locator("#users li", has_text="bob")).to_contain_text("browser")
    expect(page.locator("#users li.me")).to_contain_text("wendy")
    expect(page.locator("#user-count")).to_have_text("3")
    expect(page.locator("#log a")).to_have_count(1)
    screenshot(page, "page-desktop.png")


def test_presence_follows_events(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page()
    join(page, "stay")
    dave = chat.tcp("dave")
    expect(page.locator("#users")).to_contain_text("dave")
    expect(page.locator("#user-count")).to_have_text("2")
    # The list is kept from events: count the page's requests to be sure it never polls.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))

    dave.line("/nick david")
    expect(page.locator("#log .ev-nick")).to_contain_text("dave is now known as david")
    expect(page.locator("#users li", has_text="david")).to_contain_text("terminal")
    dave.line("/away")
    expect(page.locator("#users li.away", has_text="david")).to_contain_text("away")
    dave.line("/back")
    expect(page.locator("#users li.away")).to_have_count(0)
    dave.line("/quit gone fishing")
    expect(page.locator("#log .ev-leave")).to_contain_text("david left (gone fishing)")
    expect(page.locator("#user-count")).to_have_text("1")
    assert users(page) == ["stay"]
    assert requests == []


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

    nick.fill("server")
    nick.press("Enter")
    expect(page.locator("#nick-error")).to_contain_text("reserved")

    nick.fill("bob2")
    nick.press("Enter")
    expect(page.locator("#status")).to_contain_text("bob2")
    expect(page.locator("#chat-view")).to_be_visible()
    expect(page.locator("#nick-error")).to_have_text("")
    expect(nick).to_have_attribute("aria-invalid", "false")
    bob.expect("bob2 joined (browser)")


def test_mentions_are_highlighted_and_private_messages_offer_a_reply(
    chat: RunningChat, open_page: OpenPage
) -> None:
    page = open_page()
    join(page, "kim")
    tom = chat.tcp("tom")
    tom.line("KIM: are you there?")
    tom.line("kimberly says hi")
    tom.line("/me pokes kim.")
    say(page, "I am kim")
    tom.line("/msg kim psst")

    mention = page.locator("#log .ev-message", has_text="are you there")
    expect(mention).to_have_class(re.compile(r"\bmention\b"))
    expect(mention.locator("mark")).to_have_text("KIM")
    expect(page.locator("#log .ev-me", has_text="pokes")).to_have_class(re.compile(r"\bmention\b"))
    not_me = page.locator("#log .ev-message", has_text="kimberly")
    expect(not_me).to_be_visible()
    expect(not_me).not_to_have_class(re.compile(r"\bmention\b"))
    own = page.locator("#log .ev-message", has_text="I am kim")
    expect(own).to_have_class(re.compile(r"\bmine\b"))
    expect(own).not_to_have_class(re.compile(r"\bmention\b"))
    expect(page.locator("#log mark")).to_have_count(2)

    private = page.locator("#log .ev-private", has_text="psst")
    expect(private).to_contain_text("tom → kim")
    private.get_by_role("button", name="Reply to tom privately").click()
    message = page.get_by_label("Message")
    expect(message).to_have_value("/msg tom ")
    expect(message).to_be_focused()
    page.keyboard.type("not now")
    page.keyboard.press("Enter")
    assert tom.expect("[private] kim") == "[private] kim -> tom: not now"
    # Our own private message is shown, without a reply button.
    mine = page.locator("#log .ev-private", has_text="not now")
    expect(mine).to_contain_text("kim → tom")
    expect(mine.get_by_role("button")).to_have_count(0)


# ----- safety -------------------------------------------------------------------------

PAYLOADS = [
    '<img src=x onerror="window.__pwned=1">',
    "<script>window.__pwned=2</script>",
    '<svg onload="window.__pwned=3"></svg>',
    "javascript:window.__pwned=4",
    '<a href="javascript:window.__pwned=5">click</a>',
    "<alice> said <b>bob</b> &lt;i&gt;carol&lt;/i&gt; &amp;",
    '"><img src=x onerror=window.__pwned=6>',
]


def test_received_markup_is_shown_as_text(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page()
    join(page, "victim")
    mallory = chat.tcp("mallory")
    for payload in PAYLOADS:
        mallory.line(payload)
    mallory.line("/me <b>bold</b> <img src=x onerror=window.__pwned=7>")
    mallory.line("/msg victim <img src=x onerror=window.__pwned=8>")
    mallory.line('/away <img src=x onerror="window.__pwned=9">')

    expect(page.locator("#log .ev-away")).to_contain_text("mallory is away: <img src=x")
    assert texts(page) == PAYLOADS
    assert texts(page, "#log .ev-me .text") == ["<b>bold</b> <img src=x onerror=window.__pwned=7>"]
    assert texts(page, "#log .ev-private .text") == ["<img src=x onerror=window.__pwned=8>"]
    expect(page.locator("#users li", has_text="mallory")).to_contain_text(
        'away: <img src=x onerror="window.__pwned=9">'
    )

    # A nick cannot hold "<"; the refusal that quotes it is text as well.
    other = open_page()
    other.get_by_label("Nickname").fill("<svg/onload=__pwned=10>")
    other.get_by_label("Nickname").press("Enter")
    expect(other.locator("#nick-error")).to_contain_text("'<' is not allowed")

    for p in (page, other):
        assert p.locator("img, script:not([src]), svg, b, i, #log a, #users a").count() == 0
        assert p.evaluate("window.__pwned") is None


def test_links_open_safely(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page()
    join(page, "reader")
    tom = chat.tcp("tom")
    tom.line(
        "docs at https://example.com/a?b=1&c=2. and (see https://en.wikipedia.org/wiki/Foo_(bar))"
        ' not ftp://example.com/f or javascript:alert(1) or http://x.org/"><b>y</b>'
    )
    line = page.locator("#log .ev-message", has_text="docs at")
    expect(line).to_be_visible()
    links = line.locator("a")
    expect(links).to_have_count(3)
    hrefs = [links.nth(i).get_attribute("href") for i in range(3)]
    assert hrefs == [
        "https://example.com/a?b=1&c=2",
        "https://en.wikipedia.org/wiki/Foo_(bar)",
        "http://x.org/",
    ]
    for i in range(3):
        expect(links.nth(i)).to_have_attribute("target", "_blank")
        expect(links.nth(i)).to_have_attribute("rel", "noopener noreferrer")
    expect(links.nth(0)).to_have_text("https://example.com/a?b=1&c=2")
    assert line.locator(".text").text_content() == (
        "docs at https://example.com/a?b=1&c=2. and (see https://en.wikipedia.org/wiki/Foo_(bar))"
        ' not ftp://example.com/f or javascript:alert(1) or http://x.org/"><b>y</b>'
    )
    assert page.locator("#log b").count() == 0


# ----- history: replay, resume, scroll-back -------------------------------------------------


def test_replay_on_join_is_shown_as_history(chat: RunningChat, open_page: OpenPage) -> None:
    tom = chat.tcp("tom")
    tom.line("earlier one")
    tom.line("/me was here earlier")
    tom.line("earlier two")
    quiet(tom)

    page = open_page()
    join(page, "late")
    history = page.locator("#log li.history")
    expect(history.filter(has_text="earlier two")).to_have_count(1)
    assert texts(page, "#log li.history .text") == [
        "earlier one",
        "was here earlier",
        "earlier two",
    ]
    expect(history.first).to_contain_text("tom joined (terminal)")
    # A quiet boundary between the past and now; the server's notice about UTC is not shown
    # (the page shows local times).
    boundary = page.locator("#log li.sep")
    expect(boundary).to_have_count(1)
    expect(boundary).to_have_text("New")
    expect(page.locator("#log")).not_to_contain_text("times in UTC")
    order = page.evaluate(
        """[...document.querySelectorAll('#log li')].map((li) => li.classList.contains('sep')
            ? 'sep' : li.classList.contains('history') ? 'h' : 'now')"""
    )
    assert order[order.index("sep") - 1] == "h"
    assert "h" not in order[order.index("sep") :]
    expect(page.locator("#older")).to_contain_text("Beginning of history")

    tom.line("live now")
    live = page.locator("#log .ev-message", has_text="live now")
    expect(live).to_be_visible()
    expect(live).not_to_have_class(re.compile(r"\bhistory\b"))
    assert log_ids(page) == sorted(set(log_ids(page)))

    # /history shows past events again on request, even those already on screen.
    say(page, "/history 2")
    expect(page.locator("#log li.history", has_text="live now")).to_have_count(1)
    expect(page.locator("#log .ev-system", has_text="History: 2 events")).to_be_visible()
    expect(page.locator("#log li.history").last).to_contain_text("live now")
    expect(page.locator("#log li.history").nth(-2)).to_contain_text("late joined (browser)")
    assert texts(page)[-2:] == ["live now", "live now"]
    assert log_ids(page) == sorted(set(log_ids(page)))


def test_scrolling_to_the_top_loads_older_messages(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    chat = make_chat(rate_per_second=0)
    tom = chat.tcp("tom")  # id 1
    for i in range(120):  # ids 2..121
        tom.line(f"old {i}")
    quiet(tom)

    page = open_page(url=chat.url, viewport={"width": 800, "height": 500})
    join(page, "reader")
    expect(page.locator("#log .ev-message", has_text="old 119")).to_be_in_viewport()
    assert texts(page)[0] == "old 70"  # the replay: the last 50 events
    expect(page.get_by_role("button", name="Show earlier messages")).to_be_attached()

    # Scroll to the top: the 50 before arrive above, and what was on screen stays there.
    with page.expect_response(lambda r: "/api/history" in r.url) as response:
        page.evaluate(SCROLL_LOG, 0)
    assert "before=72&limit=50" in response.value.url
    assert response.value.json()["more"] is True
    expect(page.locator("#log .ev-message", has_text="old 20")).to_be_attached()
    expect(page.locator("#log .ev-message", has_text="old 70")).to_be_in_viewport()
    expect(page.locator("#log .ev-message", has_text="old 20")).not_to_be_in_viewport()
    assert page.evaluate("document.getElementById('log').scrollTop") > 0

    with page.expect_response(lambda r: "/api/history" in r.url) as response:
        page.evaluate(SCROLL_LOG, 0)
    assert "before=22&limit=50" in response.value.url
    assert response.value.json()["more"] is False
    expect(page.locator("#older")).to_have_text("Beginning of history")
    expect(page.locator("#log .ev-message", has_text="old 0")).to_be_attached()
    assert texts(page) == [f"old {i}" for i in range(120)]
    assert log_ids(page) == list(range(1, 122)) + log_ids(page)[121:]
    expect(page.locator("#log li.history").first).to_contain_text("tom joined (terminal)")

    # At the beginning, scrolling up asks for nothing more.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.evaluate(SCROLL_LOG, None)
    page.evaluate(SCROLL_LOG, 0)
    tom.line("after all that")
    expect(page.locator("#log .ev-message", has_text="after all that")).to_be_attached()
    assert requests == []


def _last_id(page: Page) -> int:
    return max(log_ids(page))


def test_reconnects_and_resumes_after_the_socket_drops(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page()
    joins = record_joins(page)
    join(page, "carol")
    say(page, "before the drop")
    tom.expect("carol: before the drop")
    expect(page.locator("#log .ev-message", has_text="before the drop")).to_be_visible()
    seen_before = _last_id(page)
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

    session = chat.runtime.hub.people.find("carol")
    assert session is not None
    session.transport.abort()
    tom.expect("carol left")
    tom.line("while you were away")

    page.wait_for_function(
        "() => window.__states.some(s => s.startsWith('disconnected Disconnected — reconnecting'))"
    )
    tom.expect("carol joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#status")).to_contain_text("carol")
    expect(page.locator("#log")).to_contain_text("Reconnected.")
    expect(page.locator("#user-count")).to_have_text("2")
    # The page asked for exactly what came after the last event it had shown.
    assert joins[0] == {"type": "join", "nick": "carol"}
    assert joins[-1] == {"type": "join", "nick": "carol", "since": seen_before}

    say(page, "after the drop")
    assert tom.expect("carol:") == "carol: after the drop"
    tom.line("welcome back")
    expect(page.locator("#log .ev-message", has_text="welcome back")).to_have_count(1)
    assert texts(page) == [
        "before the drop",
        "while you were away",
        "after the drop",
        "welcome back",
    ]
    ids = log_ids(page)
    assert ids == sorted(set(ids))


@contextlib.contextmanager
def serve_web(app: Any, port: int) -> Iterator[None]:
    """Serve an app's page and /ws on a chosen port (the one the page knows)."""
    web = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        web.shutdown()
        thread.join()
        web.server_close()


def test_resumes_after_a_server_restart_with_no_gap_and_no_duplicate(
    make_chat: Callable[..., RunningChat], open_page: OpenPage, tmp_path: Path
) -> None:
    db = str(tmp_path / "history.sqlite3")
    first = make_chat(history_db=db)
    port = first.web.server_port
    page = open_page(url=first.url)
    join(page, "pat")
    tom = first.tcp("tom")
    tom.line("before 1")
    say(page, "mine before")
    tom.expect("pat: mine before")
    tom.line("before 2")
    expect(page.locator("#log .ev-message", has_text="before 2")).to_be_visible()

    first.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")
    expect(page.locator("#log")).to_contain_text("Disconnected (server shutting down).")

    # The new server is up (its TCP side too) before the page can reach it: what is
    # said now, the page can only learn from the log, with `since`.
    app = create_app(
        Settings(tcp_host="127.0.0.1", tcp_port=0, tcp_enabled=True, history_db=db),
    )
    runtime = app.extensions["webchat"]
    try:
        ann = TcpClient(runtime.tcp_port)
        ann.join("ann")
        ann.line("while down 1")
        ann.line("/me while down 2")
        quiet(ann)
        with serve_web(app, port):
            expect(page.locator("#status")).to_have_attribute(
                "data-state", "online", timeout=40_000
            )
            expect(page.locator("#log")).to_contain_text("Reconnected.")
            ann.expect("pat joined (browser)")
            ann.line("after 1")
            say(page, "mine after")
            ann.expect("pat: mine after")
            expect(page.locator("#log .ev-message", has_text="mine after")).to_be_visible()
            assert texts(page, "#log .ev-message .text, #log .ev-me .text") == [
                "before 1",
                "mine before",
                "before 2",
                "while down 1",
                "while down 2",
                "after 1",
                "mine after",
            ]
            ids = log_ids(page)
            assert ids == sorted(set(ids))
            assert page.locator("#log .ev-message.mine").count() == 2
            expect(page.locator("#user-count")).to_have_text("2")
    finally:
        runtime.close()


def test_a_restart_that_lost_its_log_does_not_hide_new_messages(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    """Without a log to resume from, ids start again at 1: de-duplication must not eat them."""
    first = make_chat()
    port = first.web.server_port
    page = open_page(url=first.url)
    join(page, "pat")
    tom = first.tcp("tom")
    for i in range(5):
        tom.line(f"old {i}")
    expect(page.locator("#log .ev-message", has_text="old 4")).to_be_visible()
    first.stop()
    expect(page.locator("#status")).to_have_attribute("data-state", "disconnected")

    app = create_app(
        Settings(tcp_host="127.0.0.1", tcp_port=0, tcp_enabled=True, history_db=":memory:")
    )
    runtime = app.extensions["webchat"]
    try:
        ann = TcpClient(runtime.tcp_port)
        ann.join("ann")
        with serve_web(app, port):
            ann.expect("pat joined (browser)", timeout=40)
            expect(page.locator("#log")).to_contain_text("the log never had it")
            ann.line("new 1")
            ann.line("new 2")
            expect(page.locator("#log .ev-message", has_text="new 2")).to_be_visible()
            assert texts(page) == [*(f"old {i}" for i in range(5)), "new 1", "new 2"]
            expect(page.locator("#user-count")).to_have_text("2")
    finally:
        runtime.close()


# ----- attention: scrolling, unread count, notifications --------------------------------


def test_follows_new_messages_only_at_the_bottom(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    chat = make_chat(rate_per_second=0)
    tom = chat.tcp("tom")
    page = open_page(url=chat.url, viewport={"width": 800, "height": 420})
    join(page, "reader")
    for i in range(40):
        tom.line(f"line {i}")
    expect(page.locator("#log li", has_text="line 39")).to_be_in_viewport()
    expect(page.locator("#log li").last).to_be_in_viewport()

    assert page.evaluate(SCROLL_LOG, 0) == 0  # the reader scrolls up to read
    tom.line("while you were reading")
    tom.line("and more")
    expect(page.locator("#log li", has_text="and more")).to_be_attached()
    expect(page.locator("#log li", has_text="while you were reading")).not_to_be_in_viewport()
    assert page.evaluate("document.getElementById('log').scrollTop") == 0
    jump = page.get_by_role("button", name="2 new messages")
    expect(jump).to_be_visible()

    jump.click()
    expect(page.locator("#log li", has_text="and more")).to_be_in_viewport()
    expect(jump).to_be_hidden()
    tom.line("caught up")
    expect(page.locator("#log li", has_text="caught up")).to_be_in_viewport()
    expect(page.locator("#jump")).to_be_hidden()


def test_unread_count_in_the_title_while_hidden(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page()
    join(page, "kim")
    tom = chat.tcp("tom")
    expect(page).to_have_title("webchat")

    page.evaluate(SET_HIDDEN, True)
    tina = chat.tcp("tina")  # presence is not news
    tom.line("one")
    tom.line("/me two")
    tom.line("/msg kim three")
    expect(page).to_have_title("(3) webchat")
    expect(page.locator("#log .ev-join", has_text="tina")).to_be_visible()
    tina.close()

    page.evaluate(SET_HIDDEN, False)
    expect(page).to_have_title("webchat")
    tom.line("seen at once")
    expect(page.locator("#log .ev-message", has_text="seen at once")).to_be_visible()
    expect(page).to_have_title("webchat")


# A stand-in for the browser's Notification, recording what the page shows.
FAKE_NOTIFICATION = """
window.__notes = [];
window.__asked = 0;
window.Notification = class {
    static get permission() { return localStorage.getItem("test.permission") ?? "default"; }
    static async requestPermission() {
        window.__asked += 1;
        localStorage.setItem("test.permission", "granted");
        return "granted";
    }
    constructor(title, options) { window.__notes.push([title, options.body]); }
    close() {}
};
"""


def test_notifications_for_mentions_and_private_messages(
    chat: RunningChat, open_page: OpenPage
) -> None:
    page = open_page(init_script=FAKE_NOTIFICATION)
    join(page, "kim")
    tom = chat.tcp("tom")
    toggle = page.get_by_role("button", name="Notify me")
    expect(toggle).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("window.__asked") == 0  # never asked on load

    toggle.click()  # a user gesture asks
    expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.__asked") == 1

    tom.line("kim: visible, no notification")
    expect(page.locator("#log .mention")).to_have_count(1)
    page.evaluate(SET_HIDDEN, True)
    tom.line("just chatting")
    tom.line("hey kim, look")
    tom.line("/msg kim psst")
    page.wait_for_function("window.__notes.length >= 2")
    tom.line("last")
    expect(page).to_have_title("(4) webchat")
    assert page.evaluate("window.__notes") == [
        ["tom mentioned you", "hey kim, look"],
        ["Private message from tom", "psst"],
    ]

    # Remembered for the next visit.
    page.evaluate(SET_HIDDEN, False)
    page.reload()
    join(page, "kim2")
    expect(page.locator("#notify")).to_have_attribute("aria-pressed", "true")


# ----- keyboard, labels, live region ------------------------------------------------------


def test_inputs_have_labels_and_the_nick_is_remembered(
    chat: RunningChat, open_page: OpenPage
) -> None:
    page = open_page()
    nick = page.get_by_label("Nickname")
    expect(nick).to_be_visible()
    expect(nick).to_be_focused()
    join(page, "labelled")
    expect(page.get_by_role("log")).to_be_visible()
    live = page.locator("#announce")
    expect(live).to_have_attribute("aria-live", "polite")
    message = page.get_by_label("Message")
    expect(message).to_be_visible()
    expect(message).to_be_focused()

    # The live region announces messages, not the comings and goings.
    tom = chat.tcp("tom")
    tom.line("hello there")
    expect(live).to_contain_text("tom: hello there")
    expect(live).not_to_contain_text("joined")

    page.reload()
    expect(page.get_by_label("Nickname")).to_have_value("labelled")
    expect(page.locator("#nick-hint")).to_contain_text("Last time you were labelled")


def test_keyboard_only(chat: RunningChat, open_page: OpenPage) -> None:
    tony = chat.tcp("tony")
    tom = chat.tcp("tom")
    page = open_page()
    nick = page.get_by_label("Nickname")
    expect(nick).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Join")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(nick).to_be_focused()
    page.keyboard.type("keys")
    page.keyboard.press("Enter")
    message = page.get_by_label("Message")
    expect(message).to_be_focused()
    expect(page.locator("#status")).to_contain_text("keys")

    page.keyboard.type("typed, not clicked")
    page.keyboard.press("Enter")
    expect(page.get_by_role("log")).to_contain_text("typed, not clicked")
    expect(message).to_have_value("")
    page.keyboard.type("second line")
    page.keyboard.press("Enter")
    assert tom.expect("keys: second") == "keys: second line"

    # Up and Down walk through what was sent; Down past the newest brings the draft back.
    page.keyboard.type("draft")
    page.keyboard.press("ArrowUp")
    expect(message).to_have_value("second line")
    page.keyboard.press("ArrowUp")
    expect(message).to_have_value("typed, not clicked")
    page.keyboard.press("ArrowDown")
    expect(message).to_have_value("second line")
    page.keyboard.press("ArrowDown")
    expect(message).to_have_value("draft")
    page.keyboard.press("Escape")
    message.fill("")

    # Tab completes nicks (cycling through the choices) and commands; Escape undoes.
    page.keyboard.type("to")
    page.keyboard.press("Tab")
    expect(message).to_have_value("tom: ")
    page.keyboard.press("Tab")
    expect(message).to_have_value("tony: ")
    page.keyboard.press("Escape")
    expect(message).to_have_value("to")
    page.keyboard.press("Tab")
    page.keyboard.type("hi")
    page.keyboard.press("Enter")
    assert tom.expect("keys: tom") == "keys: tom: hi"

    page.keyboard.type("/ms")
    page.keyboard.press("Tab")
    expect(message).to_have_value("/msg ")
    page.keyboard.type("tom")
    page.keyboard.press("Tab")
    expect(message).to_have_value("/msg tom ")
    page.keyboard.type("done")
    page.keyboard.press("Enter")
    assert tom.expect("[private] keys") == "[private] keys -> tom: done"

    # The word under the cursor, in the middle of a line.
    page.keyboard.type("ask ton about it")
    for _ in range(" about it".__len__()):
        page.keyboard.press("ArrowLeft")
    page.keyboard.press("Tab")
    expect(message).to_have_value("ask tony about it")
    page.keyboard.press("Enter")
    tony.expect("keys: ask tony about it")

    # With nothing to complete, Tab moves on: the field is no trap.
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send")).to_be_focused()
    focused = page.evaluate(
        "getComputedStyle(document.activeElement).boxShadow"
    )  # a visible focus ring
    assert focused != "none"
    page.keyboard.press("Shift+Tab")
    expect(message).to_be_focused()


# ----- layout ---------------------------------------------------------------------------


def _within_viewport(page: Page, selector: str, width: int, height: int) -> None:
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not shown"
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= width + 0.5, (selector, box)
    assert box["y"] + box["height"] <= height + 0.5, (selector, box)


def _no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    )
    assert page.evaluate("document.body.scrollWidth <= document.body.clientWidth")


def test_fits_a_phone(chat: RunningChat, open_page: OpenPage) -> None:
    width, height = 375, 667
    page = open_page(viewport={"width": width, "height": height}, has_touch=True)
    for selector in ("#join-view", "#nick", "#join-form button"):
        _within_viewport(page, selector, width, height)
    _no_horizontal_scroll(page)

    join(page, "phone")
    tom = chat.tcp("tom")
    tom.line("a-very-long-word-" * 12)
    tom.line("see https://example.com/" + "x" * 120)
    tom.line("/msg phone a private note")
    tom.line("/away on a train")
    expect(page.locator("#log .ev-private")).to_be_visible()
    say(page, "/who")
    expect(page.locator("#log .ev-system", has_text="online: phone (")).to_be_visible()
    _no_horizontal_scroll(page)
    for selector in (".top", "#status", "#people summary", "#log", "#message", "#say-form button"):
        _within_viewport(page, selector, width, height)
    for item in page.locator("#log li").all():
        box = item.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5

    # Who is online folds away on a phone; Enter opens it, Escape closes it.
    people = page.locator("#people")
    expect(people).not_to_have_attribute("open", "")
    expect(page.locator("#user-count")).to_have_text("2")
    page.locator("#people summary").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#users li", has_text="tom")).to_contain_text("away: on a train")
    _within_viewport(page, "#users", width, height)
    screenshot(page, "page-phone.png")
    page.keyboard.press("Escape")
    expect(page.locator("#users")).to_be_hidden()
    expect(page.locator("#people summary")).to_be_focused()
    _no_horizontal_scroll(page)


def test_dark_mode_follows_the_system(chat: RunningChat, open_page: OpenPage) -> None:
    page = open_page(viewport={"width": 1000, "height": 560})
    background = "getComputedStyle(document.body).backgroundColor"
    assert page.evaluate(background) == "rgb(246, 247, 249)"
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(background) == "rgb(18, 20, 24)"
    join(page, "night")
    tom = chat.tcp("tom")
    tom.line("hello night, it is dark here")
    tom.line("/msg night psst")
    say(page, "quite dark")
    expect(page.locator("#log .ev-message.mine")).to_be_visible()
    expect(page.locator("#log .ev-private")).to_be_visible()
    text = page.evaluate("getComputedStyle(document.body).color")
    assert text == "rgb(230, 232, 235)"
    screenshot(page, "page-dark.png")


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
    assert chat.runtime.hub.people.find("quitter") is None
    tom.line("said while you were out")

    rejoin.click()
    tom.expect("quitter joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.get_by_label("Message")).to_be_focused()
    expect(page.locator("#log .ev-message", has_text="said while you were out")).to_have_count(1)
    say(page, "I'm back")
    assert tom.expect("quitter:") == "quitter: I'm back"


def test_page_assets_fit_the_budget() -> None:
    scripts = sorted(STATIC.rglob("*.js"))
    assets = scripts + sorted(STATIC.rglob("*.css"))
    assert scripts, "no page scripts found"
    size = sum(p.stat().st_size for p in assets)
    assert size < 80_000, f"the page's JS and CSS are {size} bytes; the budget is 80 000"
    page_html = (ROOT / "templates" / "index.html").read_text()
    assert re.findall(r"<script[^>]*src=\"(?!\{\{)", page_html) == []  # no third-party scripts
    # One module script; the modules import each other by relative path, nothing from elsewhere.
    assert re.findall(r"<script[^>]*>", page_html) == [
        "<script type=\"module\" src=\"{{ url_for('static', filename='js/main.js') }}\">"
    ]
    for script in scripts:
        source = script.read_text()
        assert (
            re.findall(
                r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function",
                source,
            )
            == []
        ), script.name
        for target in re.findall(r"\bfrom \"([^\"]+)\";$", source, re.M):
            assert target.startswith("./") and (script.parent / target).is_file(), target


# ----- rooms ------------------------------------------------------------------------------


def test_rooms_start_in_the_lobby_and_a_room_is_made_entered_and_left(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    page = open_page(viewport={"width": 1000, "height": 600})
    join(page, "alice")
    assert rooms_listed(page) == ["#lobby"]
    expect(room_item(page, "#lobby").get_by_role("button")).to_have_attribute(
        "aria-current", "true"
    )
    expect(page.locator("#room-title")).to_have_text("#lobby")
    expect(page.locator("#room-topic")).to_be_hidden()
    expect(page.locator("#leave-room")).to_be_hidden()  # nobody leaves the lobby from here
    expect(page.locator("#people-title")).to_have_text("In #lobby")
    expect(page.locator("#user-count")).to_have_text("2")

    # A bad name is explained on the page and never sent.
    page.get_by_label("Join or create a room").fill("#no spaces")
    page.get_by_label("Join or create a room").press("Enter")
    expect(page.locator("#room-error")).to_contain_text("1 to 32")
    expect(page.get_by_label("Join or create a room")).to_have_attribute("aria-invalid", "true")

    enter_room(page, "Dev")  # the form adds the "#"; the server shows names in lower case
    expect(page.locator("#room-error")).to_have_text("")
    assert rooms_listed(page) == ["#lobby", "#dev"]
    expect(room_item(page, "#dev").get_by_role("button")).to_have_attribute("aria-current", "true")
    expect(page.locator("#log .ev-enter")).to_contain_text("alice entered #dev")
    expect(page.locator("#older")).to_have_text("Beginning of history")  # a new room
    expect(page.locator("#people-title")).to_have_text("In #dev")
    expect(page.locator("#user-count")).to_have_text("1")
    assert users(page) == ["alice"]
    expect(page.get_by_label("Message")).to_be_focused()
    expect(page.get_by_label("Message")).to_have_attribute("placeholder", "Message #dev")

    tcp_enter(tom, "#dev")
    expect(page.locator("#log .ev-enter", has_text="tom")).to_contain_text("tom entered #dev")
    expect(page.locator("#user-count")).to_have_text("2")
    say(page, "hello dev")
    assert tom.expect("alice: hello dev") == "[#dev] alice: hello dev"
    say(page, "/me waves")
    tom.expect("[#dev] * alice waves")
    expect(page.locator("#log .ev-me.mine")).to_contain_text("alice waves")

    # The lobby's log shows none of it, and what is said there stays there.
    switch_room(page, "#lobby")
    expect(page.locator("#log .ev-message")).to_have_count(0)
    expect(page.locator("#log")).not_to_contain_text("hello dev")
    say(page, "hello lobby")
    tom.expect("alice: hello lobby")
    expect(page.locator("#log .ev-message.mine")).to_have_text(re.compile("hello lobby"))
    switch_room(page, "#dev")
    assert texts(page) == ["hello dev"]

    # Entering a room one is in only brings it to the front.
    switch_room(page, "#lobby")
    say(page, "/join #DEV")
    expect(page.locator("#room-title")).to_have_text("#dev")
    assert rooms_listed(page) == ["#lobby", "#dev"]

    leave = page.get_by_role("button", name="Leave #dev")
    expect(leave).to_be_visible()
    leave.click()
    tom.expect("alice left")
    expect(page.locator("#room-title")).to_have_text("#lobby")
    assert rooms_listed(page) == ["#lobby"]
    expect(page.locator("#log .ev-exit")).to_contain_text("alice left #dev")
    expect(page.locator("#people-title")).to_have_text("In #lobby")
    expect(page.locator("#user-count")).to_have_text("2")
    say(page, "back in the lobby")
    tom.expect("alice: back in the lobby")


def test_another_rooms_messages_stay_there_and_count_as_unread(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    bob = chat.tcp("bob")
    page = open_page(viewport={"width": 1000, "height": 600})
    join(page, "kim")
    enter_room(page, "#dev")
    tcp_enter(tom, "#dev")
    expect(page.locator("#log .ev-enter", has_text="tom")).to_be_visible()
    switch_room(page, "#lobby")

    tom.line("a line for dev")  # tom's active room is #dev
    tom.line("/me hums in dev")
    bob.line("a line for the lobby")
    expect(page.locator("#log .ev-message", has_text="a line for the lobby")).to_be_visible()
    dev = room_item(page, "#dev")
    expect(dev.locator(".badge.unread")).to_have_text("2")
    expect(dev.locator(".badge.mention")).to_have_count(0)
    expect(dev.get_by_role("button")).to_have_attribute("aria-label", "#dev, 2 unread")
    expect(page.locator("#rooms-badge")).to_have_text("2")
    expect(room_item(page, "#lobby").locator(".badge")).to_have_count(0)
    assert texts(page) == ["a line for the lobby"]
    expect(page.locator("#log")).not_to_contain_text("hums in dev")

    tom.line("kim: are you in dev?")
    expect(dev.locator(".badge.mention")).to_have_text("@1")
    expect(dev.locator(".badge.unread")).to_have_text("3")
    expect(dev.get_by_role("button")).to_have_attribute("aria-label", "#dev, 3 unread, 1 mention")
    # Someone else's mention of kim in the lobby is seen at once: no badge there.
    bob.line("kim is in the lobby")
    expect(page.locator("#log .ev-message.mention")).to_contain_text("kim is in the lobby")
    expect(room_item(page, "#lobby").locator(".badge")).to_have_count(0)

    switch_room(page, "#dev")
    expect(dev.locator(".badge")).to_have_count(0)
    expect(page.locator("#rooms-badge")).to_be_hidden()
    assert texts(page) == ["a line for dev", "kim: are you in dev?"]
    expect(page.locator("#log .ev-me")).to_contain_text("tom hums in dev")
    expect(page.locator("#log .ev-message.mention mark")).to_have_text("kim")
    # "New" marks where the reader stopped: just before the first message not yet seen.
    marker = page.locator("#log li.sep.marker")
    expect(marker).to_have_count(1)
    expect(marker).to_have_text("New")
    assert page.evaluate(
        "document.querySelector('#log li.sep.marker').nextElementSibling.textContent"
    ).endswith("tom a line for dev")
    ids = log_ids(page)
    assert ids == sorted(set(ids))

    # Once the reader has moved on, the marker goes; the next unread ones get a new one.
    switch_room(page, "#lobby")
    tom.line("later in dev")
    expect(dev.locator(".badge.unread")).to_have_text("1")
    switch_room(page, "#dev")
    expect(page.locator("#log li.sep.marker")).to_have_count(1)
    assert page.evaluate(
        "document.querySelector('#log li.sep.marker').nextElementSibling.textContent"
    ).endswith("tom later in dev")


def test_the_header_shows_the_room_and_its_topic(chat: RunningChat, open_page: OpenPage) -> None:
    tom = chat.tcp("tom")
    tcp_enter(tom, "#dev")
    page = open_page(viewport={"width": 1000, "height": 600})
    join(page, "ann")
    enter_room(page, "#dev")
    expect(page.locator("#room-topic")).to_be_hidden()
    tom.line("/topic #dev hello")
    topic = page.locator("#room-topic")
    expect(topic).to_have_text("hello")
    expect(topic).to_be_visible()
    expect(page.locator("#log .ev-topic")).to_contain_text("tom set the topic of #dev: hello")
    switch_room(page, "#lobby")
    expect(topic).to_be_hidden()
    switch_room(page, "#dev")
    expect(topic).to_have_text("hello")

    # Whoever enters later sees the topic at once; markup in it stays text.
    tom.line('/topic #dev <img src=x onerror="window.__pwned=1"> release <b>today</b>')
    expect(topic).to_have_text('<img src=x onerror="window.__pwned=1"> release <b>today</b>')
    other = open_page(viewport={"width": 1000, "height": 600})
    join(other, "ben")
    enter_room(other, "dev")
    expect(other.locator("#room-topic")).to_have_text(
        '<img src=x onerror="window.__pwned=1"> release <b>today</b>'
    )
    # The room's past came with it, marked as such, before the "New" line.
    expect(other.locator("#log li.history.ev-topic")).to_have_count(2)
    expect(other.locator("#log li.sep")).to_have_text("New")
    for p in (page, other):
        assert p.locator("#room-topic img, #room-topic b, #log img, #log b").count() == 0
        assert p.evaluate("window.__pwned") is None


def test_entering_a_room_replays_it_and_scrolls_back_through_it(
    make_chat: Callable[..., RunningChat], open_page: OpenPage
) -> None:
    chat = make_chat(rate_per_second=0)
    tom = chat.tcp("tom")
    bob = chat.tcp("bob")
    tcp_enter(tom, "#dev")
    for i in range(80):
        tom.line(f"dev {i}")
        if i % 20 == 0:
            bob.line(f"lobby {i}")  # interleaved ids: #dev's pages skip them
    quiet(tom)

    page = open_page(url=chat.url, viewport={"width": 800, "height": 500})
    join(page, "reader")
    assert texts(page) == [f"lobby {i}" for i in range(0, 80, 20)]
    enter_room(page, "#dev")
    expect(page.locator("#log .ev-message", has_text="dev 79")).to_be_in_viewport()
    assert texts(page) == [f"dev {i}" for i in range(30, 80)]  # the room's last 50 events
    assert page.locator("#log li.history.ev-message").count() == 50
    order = page.evaluate(
        """[...document.querySelectorAll('#log li')].slice(1).map((li) => li.classList
            .contains('sep') ? 'sep' : li.classList.contains('history') ? 'h' : 'now')"""
    )
    assert order == ["h"] * 50 + ["sep", "now", "now"]  # the past, "New", our enter, the notice

    with page.expect_response(lambda r: "/api/history" in r.url) as response:
        page.evaluate(SCROLL_LOG, 0)
    assert "room=%23dev&" in response.value.url
    expect(page.locator("#log .ev-message", has_text="dev 0")).to_be_attached()
    expect(page.locator("#log .ev-message", has_text="dev 30")).to_be_in_viewport()
    if page.locator("#older button").count():  # the enter of tom may be one page further
        with page.expect_response(lambda r: "/api/history" in r.url):
            page.evaluate(SCROLL_LOG, 0)
    expect(page.locator("#older")).to_have_text("Beginning of history")
    assert texts(page) == [f"dev {i}" for i in range(80)]
    ids = log_ids(page)
    assert ids == sorted(set(ids))
    expect(page.locator("#log li.history").first).to_contain_text("tom entered #dev")

    # /history in a room shows that room's past again, in that room.
    say(page, "/history 2")
    expect(page.locator("#log .ev-system", has_text="History: 2 events")).to_be_visible()
    expect(page.locator("#log")).not_to_contain_text("times in UTC")
    switch_room(page, "#lobby")
    expect(page.locator("#log")).not_to_contain_text("History: 2 events")
    assert texts(page) == [f"lobby {i}" for i in range(0, 80, 20)]


def test_reconnect_resumes_every_room_without_gaps_or_repeats(
    chat: RunningChat, open_page: OpenPage
) -> None:
    tom = chat.tcp("tom")
    tcp_enter(tom, "#ops")
    tcp_enter(tom, "#dev")
    bob = chat.tcp("bob")
    page = open_page(viewport={"width": 1000, "height": 600})
    joins = record_joins(page)
    join(page, "carol")
    enter_room(page, "#dev")
    enter_room(page, "#ops")
    switch_room(page, "#dev")
    tom.line("dev before")
    bob.line("lobby before")
    expect(page.locator("#log .ev-message", has_text="dev before")).to_be_visible()
    expect(room_item(page, "#lobby").locator(".badge.unread")).to_have_text("1")
    seen_before = _last_id(page)

    session = chat.runtime.hub.people.find("carol")
    assert session is not None
    session.transport.abort()
    bob.expect("carol left")
    tom.line("dev while away")
    tom.line("/msg #ops ops while away")
    bob.line("lobby while away")
    quiet(bob)

    bob.expect("carol joined (browser)")
    expect(page.locator("#status")).to_have_attribute("data-state", "online")
    expect(page.locator("#log")).to_contain_text("Reconnected.")
    assert joins[-1]["since"] >= seen_before
    assert joins[-1] == {
        "type": "join",
        "nick": "carol",
        "since": joins[-1]["since"],
        "rooms": ["#dev", "#ops"],
    }
    # Still in front: the room the reader had open; the others counted what they missed.
    expect(page.locator("#room-title")).to_have_text("#dev")
    assert rooms_listed(page) == ["#lobby", "#dev", "#ops"]
    expect(page.locator("#log .ev-message", has_text="dev while away")).to_have_count(1)
    expect(room_item(page, "#lobby").locator(".badge.unread")).to_have_text("2")
    expect(room_item(page, "#ops").locator(".badge.unread")).to_have_text("1")

    tom.line("dev after")
    bob.line("lobby after")
    expect(page.locator("#log .ev-message", has_text="dev after")).to_be_visible()
    assert texts(page) == ["dev before", "dev while away", "dev after"]
    ids = log_ids(page)
    assert ids == sorted(set(ids))
    expect(page.locator("#user-count")).to_have_text("2")  # tom and carol, asked again
    switch_room(page, "#lobby")
    expect(page.locator("#log .ev-message", has_text="lobby after")).to_be_visible()
    assert texts(page) == ["lobby before", "lobby while away", "lobby after"]
    ids = log_ids(page)
    assert ids == sorted(set(ids))
    switch_room(page, "#ops")
    assert texts(page) == ["ops while away"]


def test_rooms_on_a_phone(chat: RunningChat, open_page: OpenPage) -> None:
    width, height = 375, 667
    tom = chat.tcp("tom")
    tcp_enter(tom, "#dev")
    tom.line("/topic #dev phones welcome; keep it short, this line is long enough to be cut")
    page = open_page(viewport={"width": width, "height": height}, has_touch=True)
    join(page, "phone")
    rooms_panel = page.locator("#rooms-panel")
    expect(rooms_panel).not_to_have_attribute("open", "")
    enter_room(page, "#dev")  # opens the folded panel to reach the form
    expect(page.locator("#room-topic")).to_contain_text("phones welcome")
    tom.line("hi phone")
    expect(page.locator("#log .ev-message", has_text="hi phone")).to_be_visible()
    _no_horizontal_scroll(page)
    for selector in (".top", ".room-head", "#room-title", "#log", "#message"):
        _within_viewport(page, selector, width, height)

    # The panel is one tap away, and closes once a room is picked.
    page.locator("#rooms-panel summary").click()
    expect(page.locator("#room-list")).to_be_visible()
    _within_viewport(page, "#room-list", width, height)
    _within_viewport(page, "#room-form", width, height)
    screenshot(page, "page-rooms-phone.png")
    room_item(page, "#lobby").get_by_role("button").click()
    expect(page.locator("#room-title")).to_have_text("#lobby")
    expect(page.locator("#room-list")).to_be_hidden()
    switch_room(page, "#dev")
    screenshot(page, "page-rooms-phone-folded.png")
    switch_room(page, "#lobby")
    tom.line("more for dev")
    expect(page.locator("#rooms-badge")).to_have_text("1")
    # Opening one panel folds the other.
    page.locator("#people summary").click()
    expect(page.locator("#users")).to_be_visible()
    page.locator("#rooms-panel summary").click()
    expect(page.locator("#users")).to_be_hidden()
    expect(room_item(page, "#dev").locator(".badge.unread")).to_have_text("1")
    page.keyboard.press("Escape")
    expect(page.locator("#room-list")).to_be_hidden()
    _no_horizontal_scroll(page)


def test_screenshot_with_rooms(chat: RunningChat, open_page: OpenPage) -> None:
    """Not a check but a picture: artifacts/page-rooms.png, for docs/screenshot.png."""
    tom = chat.tcp("tom")
    ann = chat.tcp("ann")
    tcp_enter(tom, "#dev")
    tcp_enter(ann, "#ops")
    tom.line("/topic #dev Release 2.0: rooms, and the page split into modules")
    page = open_page(viewport={"width": 1100, "height": 620})
    join(page, "wendy")
    enter_room(page, "#ops")
    enter_room(page, "#dev")
    tom.line("morning! the room list is on the left now")
    say(page, "nice: unread counts per room, and a badge when someone says my name")
    tom.line("/me tries it from nc")
    ann.line("wendy: can you check the deploy in #ops?")
    ann.line("it is at https://example.com/deploys/42")
    tom.line("the reconnect resumes every room, too")
    expect(room_item(page, "#ops").locator(".badge.mention")).to_have_text("@1")
    expect(page.locator("#log .ev-message", has_text="resumes every room")).to_be_visible()
    expect(page.locator("#user-count")).to_have_text("2")
    screenshot(page, "page-rooms.png")
