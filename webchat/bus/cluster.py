"""What the nodes of a cluster share besides the stream: key names, the wire form of
events and audiences, nick claims, and each node's heartbeat.

Session ids are global: each node takes a number from Redis when it starts, and
its sessions are numbered from ``number << 32``, so an audience of session ids
means the same people on every node.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from webchat.core.events import Audience, Event, utc_now
from webchat.text import ChatError, NickError

log = logging.getLogger(__name__)

# Seconds a node's heartbeat key lives; a node silent for longer is taken for dead.
HEARTBEAT_TTL = 10
# Seconds between two heartbeats, and between two looks for dead nodes.
HEARTBEAT_EVERY = 2.0
SESSION_BITS = 32
# Seconds any command may take before Redis counts as unreachable.
COMMAND_TIMEOUT = 1.0
# Sockets to Redis per client: enough for bursts of nick claims, few enough for the
# file limit (a thread that finds none free waits up to COMMAND_TIMEOUT for one).
POOL_CONNECTIONS = 32


@dataclass(frozen=True)
class Keys:
    """Every key a cluster uses, under one prefix, so two chats can share a Redis."""

    prefix: str = "webchat:"

    def __getattr__(self, name: str) -> str:
        return self.prefix + name

    def heartbeat(self, number: int) -> str:
        return f"{self.prefix}node:{number}"

    def tombstone(self, number: int) -> str:
        return f"{self.prefix}buried:{number}"


def event_json(event: Event) -> str:
    return json.dumps(
        {
            "type": event.type,
            "nick": event.nick,
            "text": event.text,
            "ts": event.ts,
            "extra": dict(event.extra) if event.extra else None,
            "room": event.room,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def event_from(raw: bytes, event_id: int | None = None) -> Event:
    data = json.loads(raw)
    return Event(
        data["type"],
        data.get("nick"),
        data.get("text"),
        event_id,
        data.get("ts"),
        data.get("extra") or None,
        data.get("room") or None,
    )


def audience_json(audience: Audience) -> str:
    return json.dumps(
        {
            "all": audience.everyone,
            "r": sorted(audience.rooms),
            "s": sorted(audience.sessions),
            "o": audience.origin,
            "echo": audience.echo,
        },
        separators=(",", ":"),
    )


def audience_from(raw: bytes) -> Audience:
    data = json.loads(raw)
    return Audience(
        data["all"], frozenset(data["r"]), frozenset(data["s"]), data["o"], data["echo"]
    )


# KEYS: nicks.  ARGV: key, id.  1 if claimed, 0 if someone else holds it.
CLAIM = "return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])"
# KEYS: nicks.  ARGV: key, id.  Lets go of a nick only if this session holds it.
RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 1
"""


class RedisClaims:
    """Nicks unique across the cluster: one Redis hash, nick key -> session id."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self._claim = client.register_script(CLAIM)
        self._release = client.register_script(RELEASE)

    def claim(self, key: str, nick: str, session_id: int) -> None:
        try:
            won = self._claim(keys=[self.keys.nicks], args=[key, session_id])
        except redis.RedisError as exc:
            raise ChatError("unavailable", f"the chat cluster cannot be reached ({exc})") from None
        if not won:
            raise NickError(
                "nick_taken", f"the nickname {nick!r} is already taken (in use); choose another"
            )

    def release(self, key: str, session_id: int) -> None:
        try:
            self._release(keys=[self.keys.nicks], args=[key, session_id])
        except redis.RedisError as exc:
            log.warning("cluster: the nick %r stays claimed (Redis: %s)", key, exc)


# KEYS: nodes, users, nicks, counter, stream, tombstone.  ARGV: dead node number,
# maxlen, ts, floor (the burying node's last id: ids never go backwards). Once only
# (the SREM decides who does it): a leave for each user of the dead node, and a
# tombstone that tells the node, should it come back, that it was buried.
BURY = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local count = 0
for _, raw in ipairs(redis.call('HVALS', KEYS[2])) do
  local user = cjson.decode(raw)
  if math.floor(user['id'] / 4294967296) == tonumber(ARGV[1]) then
    local id = tonumber(redis.call('INCR', KEYS[4]))
    local top = tonumber(ARGV[4])
    local last = redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', 1)
    if last[1] then top = math.max(top, tonumber(string.match(last[1][1], '^(%d+)'))) end
    if id <= top then id = top + 1; redis.call('SET', KEYS[4], id) end
    local event = cjson.encode({type='leave', nick=user['nick'],
      text='their server stopped answering', ts=ARGV[3], room=cjson.null, extra=cjson.null})
    local audience = cjson.encode({all=false, r=user['rooms'], s={user['id']},
      o=user['id'], echo=true})
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], id .. '-0', 'e', event,
      'a', audience, 'p', '', 'm', '0 0', 'u', '-' .. user['id'] .. ' ' .. user['key'],
      'n', 'cluster')
    redis.call('HDEL', KEYS[2], user['id'])
    if tonumber(redis.call('HGET', KEYS[3], user['key'])) == user['id'] then
      redis.call('HDEL', KEYS[3], user['key'])
    end
    count = count + 1
  end
end
redis.call('SET', KEYS[6], '1', 'EX', 3600)
return count
"""


class Heartbeat:
    """Keeps this node's heartbeat key alive and buries nodes whose key expired."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        number: int,
        maxlen: int,
        on_buried: Callable[[], None],
        on_forgotten: Callable[[], None],
        floor: Callable[[], int],
    ) -> None:
        self.client = client
        self.keys = keys
        self.number = number
        self.maxlen = maxlen
        self._on_buried = on_buried
        self._on_forgotten = on_forgotten
        self._floor = floor
        self._bury = client.register_script(BURY)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cluster-heartbeat", daemon=True)

    def start(self) -> None:
        self._beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _beat(self) -> tuple[bool, bool]:
        """Refresh the key: whether the cluster had lost this node, and whether it buried it."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.keys.heartbeat(self.number), "1", ex=HEARTBEAT_TTL)
        pipe.sadd(self.keys.nodes, self.number)
        pipe.getdel(self.keys.tombstone(self.number))
        _, added, buried = pipe.execute()
        return bool(added), buried is not None

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_EVERY):
            try:
                lost, buried = self._beat()
                if buried:
                    self._on_buried()  # the others said our users left: end them here too
                elif lost:
                    self._on_forgotten()  # Redis came back empty: tell it who is here again
                self._bury_the_dead()
            except redis.RedisError as exc:
                log.debug("cluster: heartbeat failed: %s", exc)

    def _bury_the_dead(self) -> None:
        for raw in self.client.smembers(self.keys.nodes):
            number = int(raw)
            if number == self.number or self.client.exists(self.keys.heartbeat(number)):
                continue
            keys = [self.keys.nodes, self.keys.users, self.keys.nicks, self.keys.counter]
            keys += [self.keys.stream, self.keys.tombstone(number)]
            args: list[int | str] = [number, self.maxlen, utc_now(), self._floor()]
            count = self._bury(keys=keys, args=args)
            if count:
                log.warning("cluster: node %d stopped answering; %d users left", number, count)


def connect(url: str, timeout: float = COMMAND_TIMEOUT) -> redis.Redis:
    """A client that fails fast, never re-sends a command on its own, and waits for a
    free connection rather than failing when many threads need Redis at once.

    redis-py retries a command after a connection error by default, which could
    append a batch twice; webchat retries itself, with the batch number the append
    script recognises. A one-second command timeout lets a send be refused within
    two seconds while Redis is down or frozen. The pool is a blocking one: a join
    storm (every connection thread claiming its nick) waits its turn for one of
    ``POOL_CONNECTIONS`` sockets instead of getting redis-py's "Too many connections".
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_CONNECTIONS,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        retry_on_timeout=False,
        health_check_interval=0,
    )
    return redis.Redis(connection_pool=pool)


def node_number(client: redis.Redis, keys: Keys) -> int:
    """A number for this node, never given twice, that its session ids start from."""
    return int(client.incr(keys.node_numbers))


def session_base(number: int) -> int:
    return number << SESSION_BITS
