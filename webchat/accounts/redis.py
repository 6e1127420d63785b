"""Accounts, sanctions and ignore lists in the cluster's Redis, so every node agrees.

Keys (under the chat's prefix): ``accounts`` (a hash, nick key -> JSON),
``sanctions`` (a hash, "kind scope key" -> JSON) and ``ignores:KEY`` (a set per
account). ``HSETNX`` makes registering a nick atomic across nodes. Every call has
the cluster's one-second timeout; an unreachable Redis refuses with ``unavailable``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import redis

from webchat.accounts import Account, Sanction
from webchat.bus.cluster import Keys
from webchat.text import ChatError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RedisAccounts:
    """The AccountStore of a cluster node."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys

    @property
    def error(self) -> str | None:
        return None  # Redis trouble is the cluster's, reported per call and in /healthz

    def _call(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except redis.RedisError as exc:
            log.warning("accounts: Redis: %s", exc)
            raise ChatError("unavailable", f"the chat cluster cannot be reached ({exc})") from None

    def get(self, key: str) -> Account | None:
        raw = self._call(lambda: self.client.hget(self.keys.accounts, key))
        if raw is None:
            return None
        data = json.loads(raw)
        return Account(key, data["nick"], data["hash"], data["created"])

    def create(self, account: Account) -> bool:
        value = json.dumps({"nick": account.nick, "hash": account.hash, "created": account.created})
        return bool(self._call(lambda: self.client.hsetnx(self.keys.accounts, account.key, value)))

    def set_hash(self, key: str, password_hash: str) -> None:
        account = self.get(key)
        if account is None:
            return
        value = json.dumps(
            {"nick": account.nick, "hash": password_hash, "created": account.created}
        )
        self._call(lambda: self.client.hset(self.keys.accounts, key, value))

    def delete(self, key: str) -> None:
        def run() -> None:
            pipe = self.client.pipeline()
            pipe.hdel(self.keys.accounts, key)
            pipe.delete(self._ignores(key))
            pipe.execute()

        self._call(run)

    def add_sanction(self, sanction: Sanction) -> None:
        field, value = _field(sanction.kind, sanction.scope, sanction.key), _dump(sanction)
        self._call(lambda: self.client.hset(self.keys.sanctions, field, value))

    def remove_sanction(self, kind: str, scope: str, key: str) -> bool:
        field = _field(kind, scope, key)
        return bool(self._call(lambda: self.client.hdel(self.keys.sanctions, field)))

    def sanctions(self, now: float) -> list[Sanction]:
        raw = self._call(lambda: self.client.hgetall(self.keys.sanctions))
        found = [_load(value) for value in raw.values()]
        expired = [_field(s.kind, s.scope, s.key) for s in found if not s.active(now)]
        if expired:
            self._call(lambda: self.client.hdel(self.keys.sanctions, *expired))
        return sorted((s for s in found if s.active(now)), key=lambda s: s.created)

    def banned(self, scope: str, key: str, address: str, now: float) -> Sanction | None:
        # A handful of bans in the usual chat: one read of them all is one round trip.
        for sanction in self.sanctions(now):
            if sanction.kind != "ban" or sanction.scope != scope:
                continue
            if sanction.key == key or (address and sanction.address == address):
                return sanction
        return None

    def ignores(self, account: str) -> set[str]:
        members = self._call(lambda: self.client.smembers(self._ignores(account)))
        return {m.decode() if isinstance(m, bytes) else m for m in members}

    def set_ignore(self, account: str, key: str, on: bool) -> None:
        name = self._ignores(account)
        if on:
            self._call(lambda: self.client.sadd(name, key))
        else:
            self._call(lambda: self.client.srem(name, key))

    def close(self) -> None:
        return None  # the cluster node owns the connection

    def _ignores(self, account: str) -> str:
        return f"{self.keys.prefix}ignores:{account}"


def _field(kind: str, scope: str, key: str) -> str:
    return f"{kind} {scope} {key}"


def _dump(sanction: Sanction) -> str:
    data: dict[str, Any] = dict(sanction.__dict__)
    return json.dumps(data, ensure_ascii=False)


def _load(raw: bytes | str) -> Sanction:
    return Sanction(**json.loads(raw))
