"""The embedded bus's committer: real SQLite files, real threads, no mocks."""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from tests.support.history import WAIT, hammer_reads, ids, public
from webchat.bus.local import GroupCommitter
from webchat.history.sqlite import SqliteHistory as Store
from webchat.history.sqlite import StoredEvent

# ----- GroupCommitter -----------------------------------------------------------------


Item = tuple[int, int, int]  # (event id, producer, sequence within the producer)


def item_to_stored(item: Item) -> StoredEvent:
    return public(item[0], text=f"{item[1]}:{item[2]}")


class Sequencer:
    """What the hub does: an id and the submission, under one lock, so id order is submit order."""

    def __init__(self, committer: GroupCommitter[Item]) -> None:
        self.committer = committer
        self.lock = threading.Lock()
        self.next_id = 1

    def submit(self, producer: int, seq: int) -> None:
        with self.lock:
            self.committer.submit((self.next_id, producer, seq))
            self.next_id += 1

    def producers(self, numbers: range, per_producer: int) -> list[threading.Thread]:
        def produce(producer: int) -> None:
            for seq in range(per_producer):
                self.submit(producer, seq)

        return [threading.Thread(target=produce, args=(p,)) for p in numbers]


def test_committer_commits_every_item_once_in_submission_order(store: Store):
    delivered: list[Item] = []
    committer = GroupCommitter(store, delivered.extend, item_to_stored)
    committer.start()
    sequencer = Sequencer(committer)
    threads_n, per_thread = 8, 500
    producers = sequencer.producers(range(threads_n), per_thread)
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(WAIT)
    committer.stop()
    total = threads_n * per_thread
    assert [item[0] for item in delivered] == list(range(1, total + 1))
    for p in range(threads_n):
        assert [item[2] for item in delivered if item[1] == p] == list(range(per_thread))
    assert ids(store.since(0, up_to=total, viewer_key=None)) == list(range(1, total + 1))
    assert store.last_id() == total


def test_committer_groups_a_burst_into_few_commits(store: Store):
    first_batch_in = threading.Event()
    release = threading.Event()
    delivered: list[Item] = []

    def on_committed(items: list[Item]) -> None:
        delivered.extend(items)
        first_batch_in.set()
        assert release.wait(WAIT)

    committer = GroupCommitter(store, on_committed, item_to_stored)
    committer.start()
    sequencer = Sequencer(committer)
    sequencer.submit(0, 0)
    assert first_batch_in.wait(WAIT)  # the committer is busy delivering the first batch
    producers = sequencer.producers(range(1, 5), 250)
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join(WAIT)
    release.set()
    committer.stop()
    assert len(delivered) == 1001
    assert store.commits == 2  # one for the first item, one for the thousand behind it
    assert store.last_id() == 1001


def test_stop_flushes_everything_pending(store: Store):
    delivered: list[Item] = []
    committer = GroupCommitter(store, delivered.extend, item_to_stored)
    for i in range(1, 501):
        committer.submit((i, 0, i))  # before start: queued
    committer.start()
    for i in range(501, 1001):
        committer.submit((i, 0, i))
    committer.stop()
    assert [item[0] for item in delivered] == list(range(1, 1001))
    assert store.last_id() == 1000
    assert len(ids(store.since(0, up_to=1000, viewer_key=None))) == 1000


def test_stop_without_start_flushes_in_the_caller(store: Store):
    delivered: list[Item] = []
    committer = GroupCommitter(store, delivered.extend, item_to_stored)
    committer.submit((1, 0, 0))
    committer.submit((2, 0, 1))
    committer.stop()
    assert [item[0] for item in delivered] == [1, 2]
    assert store.last_id() == 2
    committer.submit((3, 0, 2))  # after stop: dropped, with a warning
    committer.stop()
    assert [item[0] for item in delivered] == [1, 2]


def test_a_committed_batch_is_in_the_log_before_on_committed(store: Store):
    seen_by_reader: list[tuple[list[int], list[int]]] = []

    def on_committed(items: list[Item]) -> None:
        wanted = [item[0] for item in items]
        found: list[int] = []

        def read() -> None:  # another thread, as a joining WebSocket would
            got = store.since(wanted[0] - 1, up_to=wanted[-1], viewer_key=None)
            found.extend(e.id for e in got or [] if e.id is not None)

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(WAIT)
        seen_by_reader.append((wanted, found))

    committer = GroupCommitter(store, on_committed, item_to_stored)
    committer.start()
    sequencer = Sequencer(committer)
    for i in range(300):
        sequencer.submit(0, i)
    committer.stop()
    assert sum(len(wanted) for wanted, _ in seen_by_reader) == 300
    for wanted, found in seen_by_reader:
        assert found == wanted


def test_items_not_logged_are_still_delivered_in_order(store: Store, caplog):
    def to_stored(item: Item) -> StoredEvent | None:
        if item[2] == 1:
            return None  # e.g. an error reply for one session: not history
        if item[2] == 2:
            raise ValueError("a broken conversion")
        return item_to_stored(item)

    delivered: list[Item] = []
    committer = GroupCommitter(store, delivered.extend, to_stored)
    with caplog.at_level(logging.ERROR, logger="webchat.history.sqlite"):
        committer.start()
        for i in range(4):
            committer.submit((i + 1, 0, i))
        committer.stop()
    assert [item[2] for item in delivered] == [0, 1, 2, 3]
    assert ids(store.recent(10)) == [1, 4]
    assert "a broken conversion" in caplog.text


def test_committer_goes_on_delivering_after_the_store_fails(store: Store, db: str):
    batch_done = threading.Condition()
    delivered: list[Item] = []

    def on_committed(items: list[Item]) -> None:
        with batch_done:
            delivered.extend(items)
            batch_done.notify_all()

    committer = GroupCommitter(store, on_committed, item_to_stored)
    committer.start()
    committer.submit((1, 0, 0))
    with batch_done:
        assert batch_done.wait_for(lambda: len(delivered) == 1, WAIT)
    other = sqlite3.connect(db)
    other.execute("DROP TABLE events")
    other.close()
    for i in range(2, 101):
        committer.submit((i, 0, i))
    committer.stop()
    assert [item[0] for item in delivered] == list(range(1, 101))
    assert store.error is not None and "no such table" in store.error
    assert store.since(0, up_to=100, viewer_key=None) is None


def test_a_failing_on_committed_does_not_stop_the_committer(store: Store):
    delivered: list[Item] = []

    def on_committed(items: list[Item]) -> None:
        delivered.extend(items)
        raise RuntimeError("a delivery bug")

    committer = GroupCommitter(store, on_committed, item_to_stored)
    committer.start()
    for i in range(1, 51):
        committer.submit((i, 0, i))
    committer.stop()
    assert [item[0] for item in delivered] == list(range(1, 51))
    assert store.last_id() == 50


class SignallingStore(Store):
    """A real store that says when it pruned, so the test can wait instead of sleeping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pruned = threading.Event()
        self.deleted = 0

    def prune(self, limit: int | None = None) -> int:
        deleted = super().prune(limit)
        self.deleted += deleted
        if self.deleted:
            self.pruned.set()
        return deleted


def test_committer_prunes_from_its_own_thread(db: str):
    store = SignallingStore(db, retention_events=10)
    store.append([public(i) for i in range(1, 101)])
    committer = GroupCommitter(store, lambda items: None, item_to_stored, prune_every=3600)
    committer.start()
    assert store.pruned.wait(WAIT)  # it prunes once at start, then every prune_every
    committer.submit((101, 0, 0))
    committer.stop()
    assert store.deleted == 90
    assert ids(store.recent(100)) == list(range(91, 102))  # no second prune within the hour
    store.close()


def test_memory_store_with_a_committer_and_readers_on_other_threads():
    store = Store(":memory:")
    delivered: list[Item] = []
    committer = GroupCommitter(store, delivered.extend, item_to_stored)
    committer.start()
    done = threading.Event()
    problems: list[str] = []
    readers = [
        threading.Thread(target=hammer_reads, args=(store, done, problems)) for _ in range(3)
    ]
    for reader in readers:
        reader.start()
    sequencer = Sequencer(committer)
    for i in range(2000):
        sequencer.submit(0, i)
    committer.stop()
    done.set()
    for reader in readers:
        reader.join(WAIT)
    assert problems == []
    assert len(delivered) == 2000
    assert ids(store.since(1990, up_to=2000, viewer_key=None)) == list(range(1991, 2001))
    store.close()
