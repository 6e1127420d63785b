"""Several nodes, one chat: a Bus on one Redis stream.

Each node's committer appends its batches with one Lua script (``APPEND``) that
takes the ids from one counter and ``XADD``s the events with the stream id
``<event id>-0``, so the stream is the one order. One reader thread per node
``XREAD``s the stream from its last id, writes each batch to the node's SQLite
history, and only then hands it to the hub: nothing is delivered before it is in
the stream, on the node that sent it too. Replies to one session never leave the
node; a thread of their own hands them over (under the same lock as the reader), so
a refusal never waits behind an append that waits for Redis.

While Redis cannot be reached, new events are refused at once (``unavailable``);
a batch already accepted is retried with the same batch number, which the script
recognises, so it is appended once. Ids never go backwards: the script starts
from the highest id this node has seen when the counter is behind it (Redis
restarted empty). See docs/DESIGN-NOTES.md, "Several nodes".
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import redis

from webchat.bus import Outgoing, stored
from webchat.bus.cluster import Keys, audience_from, audience_json, event_from, event_json
from webchat.core.events import SEQUENCED, utc_now
from webchat.core.stats import COMMIT_BUCKETS, Histogram
from webchat.history import History
from webchat.text import ChatError

log = logging.getLogger(__name__)

# Entries one XREAD or XRANGE takes at a time.
READ_COUNT = 500
# Milliseconds the reader blocks waiting for new entries; stop() wakes it sooner.
READ_BLOCK_MS = 1000
# Seconds stop() waits for the bus's threads in all, and between its wake-ups of a reader
# that has not noticed the stop yet (it was between two reads when first woken).
STOP_WAIT = 5.0
UNBLOCK_EVERY = 0.05
# Seconds between two tries while Redis is unreachable (doubling up to the last).
BACKOFF = (0.1, 0.2, 0.5, 1.0)

# KEYS: counter, stream, batches, users, nicks.  ARGV: node, batch, floor, maxlen, count,
# then five values per event: event JSON, audience JSON, parties, "enters exits", user
# state ("" none, "-ID KEY" gone: the user, and their nick if they still hold it, are
# let go of with the leave, so a leave during an outage frees the nick once it is
# appended). Returns the first id of the batch.
APPEND = """
local node, batch = ARGV[1], ARGV[2]
local done = redis.call('HGET', KEYS[3], node)
if done then
  local b, first = string.match(done, '^(%d+) (%d+)$')
  if b == batch then return tonumber(first) end
end
local top = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(ARGV[3])
if top < floor then top = floor end
local n = tonumber(ARGV[5])
for i = 0, n - 1 do
  local at = 6 + 5 * i
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], (top + 1 + i) .. '-0',
    'e', ARGV[at], 'a', ARGV[at + 1], 'p', ARGV[at + 2], 'm', ARGV[at + 3],
    'u', ARGV[at + 4], 'n', node)
  local user = ARGV[at + 4]
  if string.sub(user, 1, 1) == '-' then
    local id, key = string.match(user, '^%-(%d+) (.*)$')
    redis.call('HDEL', KEYS[4], id)
    if redis.call('HGET', KEYS[5], key) == id then redis.call('HDEL', KEYS[5], key) end
  elseif user ~= '' then
    redis.call('HSET', KEYS[4], cjson.decode(user)['id'], user)
  end
end
redis.call('SET', KEYS[1], top + n)
redis.call('HSET', KEYS[3], node, batch .. ' ' .. (top + 1))
return top + 1
"""


class RedisBus:
    """A :class:`~webchat.bus.Bus` shared by every node on one Redis."""

    def __init__(
        self,
        client: redis.Redis,
        reader: redis.Redis,
        history: History,
        node: str,
        *,
        keys: Keys,
        maxlen: int = 100_000,
    ) -> None:
        self.client = client
        # The reader's own connection: its blocking XREAD waits longer than a command may.
        self.reader = reader
        self.history = history
        self.node = node
        self.keys = keys
        self.maxlen = maxlen
        self._append = client.register_script(APPEND)
        self._cond = threading.Condition()
        self._queue: list[Outgoing] = []  # sequenced items waiting for the stream
        self._local: list[Outgoing] = []  # replies to one session: never leave the node
        self._deliver_lock = threading.Lock()  # one deliverer at a time, in order
        self._deliver: Callable[[list[Outgoing]], None] = lambda items: None
        self._last_id = history.last_id()  # the highest id seen on the stream
        self._batch = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # The reader's connection id in Redis, so that stop() can end its blocking read
        # (CLIENT UNBLOCK) rather than wait up to READ_BLOCK_MS; None until it is known.
        self._reader_id: int | None = None
        # Why Redis cannot be reached now; None while it can.
        self.error: str | None = None
        # Seconds per batch, for /metrics: the append into the stream (committer's
        # thread) and into this node's SQLite log (reader's thread).
        self.commit_times = {
            "redis": Histogram(COMMIT_BUCKETS),
            "sqlite": Histogram(COMMIT_BUCKETS),
        }

    # ----- the Bus protocol -------------------------------------------------------

    def start(self, deliver: Callable[[list[Outgoing]], None]) -> None:
        self._deliver = deliver
        for name, target in (
            ("redis-committer", self._commit_loop),
            ("redis-replies", self._reply_loop),
            ("redis-reader", self._read_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, item: Outgoing) -> Outgoing:
        event = item.event
        sequenced = event.type in SEQUENCED and not item.replayed
        # A leave is queued even now: a session that ends must be announced once Redis
        # is back, or the other nodes would keep a ghost.
        if sequenced and self.error is not None and event.type != "leave":
            raise ChatError("unavailable", f"the chat cluster cannot be reached ({self.error})")
        if not item.replayed:
            item.event = event.stamped(None, utc_now())
        with self._cond:
            (self._queue if sequenced else self._local).append(item)
            self._cond.notify_all()  # the committer or the reply thread: both wait here
        return item

    def last_id(self) -> int:
        return self._last_id

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()  # the committer or the reply thread: both wait here
        deadline = time.monotonic() + STOP_WAIT
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                # The reader may be inside XREAD, or just about to enter it: wake it
                # until it has seen that we are stopping (once, nearly always).
                self._unblock_reader()
                thread.join(min(UNBLOCK_EVERY, max(0.0, deadline - time.monotonic())))

    def _unblock_reader(self) -> None:
        reader_id = self._reader_id
        if reader_id is not None:
            with contextlib.suppress(redis.RedisError):
                self.client.client_unblock(reader_id)

    # ----- catching up, at start ----------------------------------------------------

    def catch_up(self) -> list[dict[str, Any]]:
        """Store what the stream holds beyond our history; return who is online now.

        The users and the stream's top are read in one transaction, so the reader
        starts exactly where that snapshot of who is here ends.
        """
        pipe = self.client.pipeline(transaction=True)
        pipe.hvals(self.keys.users)
        pipe.xrevrange(self.keys.stream, count=1)
        users, top = pipe.execute()
        top_id = int(top[0][0].split(b"-")[0]) if top else 0
        after = self._last_id
        while after < top_id:
            entries = self.client.xrange(
                self.keys.stream, f"{after + 1}-0", f"{top_id}-0", count=READ_COUNT
            )
            if not entries:
                break
            items = [self._item(entry_id, fields) for entry_id, fields in _entries(entries)]
            self._note_gap(after, items[0].event.id or 0)
            self._store(items)
            after = items[-1].event.id or after
        self._last_id = max(self._last_id, top_id)
        return [json.loads(u) for u in users]

    # ----- committing -------------------------------------------------------------

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping.is_set():
                    self._cond.wait()
                batch, self._queue = self._queue, []
            if batch:
                self._batch += 1
                self._append_until_done(batch, self._batch)
            elif self._stopping.is_set():
                return

    def _reply_loop(self) -> None:
        """Hands over replies to one session on a thread of their own: a refusal
        (``unavailable``) must never wait behind an append that waits for Redis."""
        while True:
            with self._cond:
                while not self._local and not self._stopping.is_set():
                    self._cond.wait()
                local, self._local = self._local, []
            if local:
                with self._deliver_lock:
                    self._deliver(local)
            elif self._stopping.is_set():
                return

    def _append_until_done(self, batch: list[Outgoing], number: int) -> None:
        """Append one batch, retrying through outages; the batch number makes it once."""
        args: list[Any] = [self.node, number, self._last_id, self.maxlen, len(batch)]
        for item in batch:
            args += [
                event_json(item.event),
                audience_json(item.audience),
                ",".join(sorted(item.parties or ())),
                f"{item.enters} {item.exits}",
                _user_field(item),
            ]
        keys = [self.keys.counter, self.keys.stream, self.keys.batches, self.keys.users]
        keys.append(self.keys.nicks)
        tries = 0
        while True:
            try:
                began = time.monotonic()
                self._append(keys=keys, args=args)
                self.commit_times["redis"].observe(time.monotonic() - began)
                self._recovered()
                return
            except redis.RedisError as exc:
                self._failed(exc)
                if self._stopping.is_set():
                    log.error("cluster: %d events not appended at stop: %s", len(batch), exc)
                    return
                self._stopping.wait(BACKOFF[min(tries, len(BACKOFF) - 1)])
                tries += 1
                args[2] = self._last_id  # the floor may have risen meanwhile

    # ----- reading ----------------------------------------------------------------

    def _read_loop(self) -> None:
        tries = 0
        while not self._stopping.is_set():
            try:
                if self._reader_id is None:  # one connection, reused by this thread alone
                    self._reader_id = self.reader.client_id()
                answer = self.reader.xread(
                    {self.keys.stream: f"{self._last_id}-0"}, count=READ_COUNT, block=READ_BLOCK_MS
                )
                self._recovered()
                tries = 0
            except redis.RedisError as exc:
                self._reader_id = None  # a new connection comes with a new id
                self._failed(exc)
                self._stopping.wait(BACKOFF[min(tries, len(BACKOFF) - 1)])
                tries += 1
                continue
            for _, entries in cast(list[tuple[bytes, Any]], answer or []):
                items = [self._item(entry_id, fields) for entry_id, fields in _entries(entries)]
                self._note_gap(self._last_id, items[0].event.id or 0)
                _set_born(items)
                began = time.monotonic()
                self._store(items)
                if self.history.error is None:
                    self.commit_times["sqlite"].observe(time.monotonic() - began)
                with self._deliver_lock:
                    self._deliver(items)
                self._last_id = max(self._last_id, items[-1].event.id or 0)

    def _note_gap(self, after: int, first: int) -> None:
        """Ids are consecutive in the stream: a jump means events this node never got
        (trimmed while it lagged, or lost when Redis restarted without them)."""
        if first > after + 1:
            log.warning(
                "cluster: events %d to %d are not in the stream any more", after + 1, first - 1
            )
            self.history.mark_gap(first - 1)

    def _item(self, entry_id: bytes, fields: dict[bytes, bytes]) -> Outgoing:
        event = event_from(fields[b"e"], int(entry_id.split(b"-")[0]))
        enters, exits = (int(x) for x in fields[b"m"].split())
        parties = fields[b"p"].decode()
        user = fields[b"u"].decode()
        state: dict[str, Any] | None = None
        if user.startswith("-"):
            state = {"id": int(user[1:].split(" ", 1)[0]), "gone": True}
        elif user:
            state = json.loads(user)
        return Outgoing(
            event,
            audience_from(fields[b"a"]),
            frozenset(parties.split(",")) if parties else None,
            enters=enters,
            exits=exits,
            remote=fields[b"n"].decode() != self.node,
            user=state,
        )

    def _store(self, items: list[Outgoing]) -> None:
        """Into this node's history, skipping what it already has (a catch-up overlaps)."""
        top = self.history.last_id()
        rows = [row for item in items if (item.event.id or 0) > top and (row := stored(item))]
        self.history.append(rows)

    # ----- health -----------------------------------------------------------------

    def _failed(self, exc: BaseException) -> None:
        if self.error is None:
            log.error("cluster: Redis cannot be reached: %s", exc)
        self.error = " ".join(str(exc).split()) or type(exc).__name__

    def _recovered(self) -> None:
        if self.error is not None:
            log.warning("cluster: Redis is back")
            self.error = None


def _entries(raw: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Stream entries as redis-py returns them (its types say less than it gives)."""
    return cast(list[tuple[bytes, dict[bytes, bytes]]], raw)


def _set_born(items: list[Outgoing]) -> None:
    """When each was published, on this node's clock, from its timestamp: an item read
    from the stream is a new object, so the publisher's own mark did not travel."""
    offset = time.monotonic() - time.time()
    for item in items:
        ts = item.event.ts
        if ts:
            with contextlib.suppress(ValueError):  # not a timestamp: not measured
                item.born = datetime.fromisoformat(ts).timestamp() + offset


def _user_field(item: Outgoing) -> str:
    if item.user is None:
        return ""
    if item.event.type == "leave":
        return f"-{item.user['id']} {item.user['key']}"
    return json.dumps(dict(item.user), ensure_ascii=False, separators=(",", ":"))
