"""RedisAccounts against a real redis-server (its own free port, never 6379): the
same store contract as SQLite's, and what only a shared Redis has."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
import redis

from tests.accounts.store_contract import StoreContract, account, sanction
from tests.support.clients import wait_until
from tests.support.redis import RedisServer
from webchat.accounts import AccountStore
from webchat.accounts.redis import RedisAccounts
from webchat.bus.cluster import COMMAND_TIMEOUT, Keys, connect
from webchat.text import ChatError

_prefixes = itertools.count(1)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    assert server.port != 6379
    yield server
    server.stop()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    c = connect(redis_server.url)  # the chat's own client: fails fast, never re-sends
    yield c
    c.close()


def fresh_keys() -> Keys:
    """A prefix of the test's own: the tests share one redis-server, never its keys."""
    return Keys(f"test{next(_prefixes)}:")


class TestRedisAccounts(StoreContract):
    @pytest.fixture
    def store(self, client: redis.Redis) -> AccountStore:
        return RedisAccounts(client, fresh_keys())


def test_two_nodes_see_one_store(redis_server: RedisServer) -> None:
    keys = fresh_keys()
    one, two = connect(redis_server.url), connect(redis_server.url)
    try:
        first, second = RedisAccounts(one, keys), RedisAccounts(two, keys)
        assert first.create(account())
        assert second.create(account()) is False  # HSETNX: one nick, one owner
        assert second.get("alice") == account()
        second.add_sanction(sanction(until=None))
        assert first.banned("#dev", "bob", "", 0.0) == sanction(until=None)
        first.set_ignore("alice", "bob", True)
        assert second.ignores("alice") == {"bob"}
    finally:
        one.close()
        two.close()


def test_two_chats_with_their_own_prefix_do_not_mix(client: redis.Redis) -> None:
    first, second = RedisAccounts(client, fresh_keys()), RedisAccounts(client, fresh_keys())
    first.create(account())
    first.add_sanction(sanction())
    first.set_ignore("alice", "bob", True)
    assert second.get("alice") is None
    assert second.sanctions(0.0) == []
    assert second.ignores("alice") == set()


def test_keys_live_under_the_prefix(client: redis.Redis) -> None:
    keys = fresh_keys()
    store = RedisAccounts(client, keys)
    store.create(account())
    store.add_sanction(sanction())
    store.set_ignore("alice", "bob", True)
    found = {k.decode() for k in client.scan_iter(match="*")}
    mine = {k for k in found if k.startswith(keys.prefix)}
    assert mine == {keys.accounts, keys.sanctions, f"{keys.prefix}ignores:alice"}


def test_an_unreachable_redis_is_unavailable(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-gone")).start()
    client = connect(server.url)
    store = RedisAccounts(client, fresh_keys())
    try:
        store.create(account())
        server.stop()
        for call in (
            lambda: store.get("alice"),
            lambda: store.create(account("bob")),
            lambda: store.add_sanction(sanction()),
            lambda: store.sanctions(0.0),
            lambda: store.banned("#lobby", "bob", "", 0.0),
            lambda: store.ignores("alice"),
            lambda: store.set_ignore("alice", "bob", True),
            lambda: store.delete("alice"),
        ):
            started = time.monotonic()
            with pytest.raises(ChatError) as caught:
                call()
            assert caught.value.code == "unavailable"
            assert time.monotonic() - started < 2 * COMMAND_TIMEOUT + 1  # never blocks long
    finally:
        client.close()
        server.stop()


def test_a_frozen_redis_is_unavailable_within_the_timeout(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = RedisServer(tmp_path_factory.mktemp("redis-frozen")).start()
    client = connect(server.url)
    store = RedisAccounts(client, fresh_keys())
    try:
        store.create(account())
        server.freeze()
        started = time.monotonic()
        with pytest.raises(ChatError) as caught:
            store.get("alice")
        assert caught.value.code == "unavailable"
        assert time.monotonic() - started < 2 * COMMAND_TIMEOUT + 1
        server.thaw()
        assert wait_until(lambda: answers(store), what="the store to answer again")
        assert store.get("alice") == account()
    finally:
        client.close()
        server.stop()


def answers(store: RedisAccounts) -> bool:
    try:
        store.get("nobody")
    except ChatError:
        return False
    return True
