"""Fixtures: a real chat server (web and TCP) on port 0, and clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.chat import RunningChat, start_chat
from webchat.history import SqliteHistory


@pytest.fixture
def make_chat() -> Iterator[Callable[..., RunningChat]]:
    """Start chats with chosen settings; all are stopped after the test."""
    stops: list[Callable[[], None]] = []

    def make(**overrides: Any) -> RunningChat:
        chat, stop = start_chat(**overrides)
        stops.append(stop)
        return chat

    yield make
    for stop in reversed(stops):
        stop()


@pytest.fixture
def chat(make_chat: Callable[..., RunningChat]) -> RunningChat:
    return make_chat()


@pytest.fixture
def unlimited_chat(make_chat: Callable[..., RunningChat]) -> RunningChat:
    """A chat without the rate limit, for tests that paste far more than a burst."""
    return make_chat(rate_per_second=0)


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A path for a history file of this test's own."""
    return str(tmp_path / "history.db")


@pytest.fixture
def store(db: str) -> Iterator[SqliteHistory]:
    """A working history log on a real file."""
    s = SqliteHistory(db)
    assert s.error is None
    yield s
    s.close()
