"""Stopping a Redis bus: its reader is woken from its blocking read, not waited for.

A node's reader waits in XREAD for up to ``READ_BLOCK_MS``; a stopping node must not
wait that out (with 10,000 people the whole stop has three seconds).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.clients import wait_until
from tests.support.redis import RedisServer
from webchat.bus.cluster import Keys, connect
from webchat.bus.redis import RedisBus
from webchat.history import SqliteHistory


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def blocked_readers(client: redis.Redis) -> list[dict[str, str]]:
    return [c for c in client.client_list() if c.get("cmd") == "xread" and "b" in c["flags"]]


def test_stop_wakes_the_reader_from_a_read_that_would_block_a_minute(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("webchat.bus.redis.READ_BLOCK_MS", 60_000)
    client = connect(redis_server.url)
    reader = connect(redis_server.url, timeout=120)
    bus = RedisBus(client, reader, SqliteHistory(":memory:"), "node0", keys=Keys("stoptest:"))
    bus.start(lambda items: None)
    wait_until(lambda: blocked_readers(client), what="the reader blocked in XREAD")
    bus.stop()
    assert not any(t.is_alive() for t in bus._threads), "stop() left a thread running"
    assert not blocked_readers(client)
