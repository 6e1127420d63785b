"""The page in a crowded room: its people list from pages and presence updates.

Tiny settings (crowded above 3 people, pages of 2) give a crowd's every case with a
handful of terminal users; the list must always be exactly who is there.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from tests.support.chat import RunningChat
from tests.support.clients import TcpClient
from tests.web.helpers import OpenPage, join, users


@pytest.fixture
def crowd(make_chat: Callable[..., RunningChat]) -> RunningChat:
    return make_chat(
        rate_per_second=0, presence_batch_above=3, presence_interval=0.2, people_page=2
    )


def test_the_list_is_whole_from_pages_and_follows_updates(
    crowd: RunningChat, open_page: OpenPage
) -> None:
    terminals: list[TcpClient] = [crowd.tcp(n) for n in ("ann", "bea", "cid", "dot", "eve")]
    try:
        page = open_page(crowd.url)
        join(page, "web")  # 6 people; the welcome lists 2 and the page asks for the rest
        expect(page.locator("#user-count")).to_have_text("6")
        assert users(page) == ["ann", "bea", "cid", "dot", "eve", "web"]
        late = crowd.tcp("fay")  # crowded: arrives in a presence update
        expect(page.locator("#log .ev-presence", has_text="fay")).to_contain_text("joined: ")
        expect(page.locator("#user-count")).to_have_text("7")
        terminals[0].line("/quit")
        terminals[1].line("/quit")
        expect(page.locator("#user-count")).to_have_text("5")
        assert users(page) == ["cid", "dot", "eve", "fay", "web"]
        late.line("/nick fox")  # a rename is still its own event
        expect(page.locator("#users")).to_contain_text("fox")
        assert users(page) == ["cid", "dot", "eve", "fox", "web"]
        live_joins = page.locator("#log .ev-join:not(.history)")  # only the page's own
        assert live_joins.all_inner_texts() == [live_joins.first.inner_text()]
        expect(live_joins).to_contain_text("web joined")
    finally:
        for client in terminals:
            client.close()
