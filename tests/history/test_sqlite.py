"""The history log: real SQLite files in tmp_path, real threads, no mocks."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.history import WAIT, Clock, ev, hammer_reads, ids, private, public
from webchat.core.events import SEQUENCED, Event
from webchat.history.sqlite import PRUNE_BATCH, StoredEvent
from webchat.history.sqlite import SqliteHistory as Store

# ----- round trip ---------------------------------------------------------------------


MODERATION: list[tuple[str, dict[str, str | None]]] = [
    ("kick", {"target": "bob"}),
    ("ban", {"target": "bob", "until": "2026-01-02T00:00:00.000Z", "duration": "1d"}),
    ("unban", {"target": "bob"}),
    ("mute", {"target": "bob", "until": None, "duration": None}),
    ("unmute", {"target": "bob"}),
    ("op", {"target": "bob"}),
    ("deop", {"target": "bob"}),
]
EVERY_TYPE = [
    StoredEvent(Event("message", "alice", "hello, мир 👋", 1, "2026-01-01T00:00:01.000Z"), None),
    StoredEvent(Event("me", "alice", "waves", 2, "2026-01-01T00:00:02.000Z"), None),
    StoredEvent(
        Event("private", "alice", "psst", 3, "2026-01-01T00:00:03.000Z", {"to": "Bob"}),
        frozenset({"alice", "bob"}),
    ),
    StoredEvent(Event("join", "carol", None, 4, "2026-01-01T00:00:04.000Z", {"via": "tcp"}), None),
    StoredEvent(Event("leave", "carol", "bye", 5, "2026-01-01T00:00:05.000Z"), None),
    StoredEvent(Event("leave", "dave", None, 6, "2026-01-01T00:00:06.000Z"), None),
    StoredEvent(Event("nick", "alice", None, 7, "2026-01-01T00:00:07.000Z", {"new": "al"}), None),
    StoredEvent(Event("away", "al", "lunch", 8, "2026-01-01T00:00:08.000Z"), None),
    StoredEvent(Event("back", "al", None, 9, "2026-01-01T00:00:09.000Z"), None),
    StoredEvent(
        Event("message", "al", "", 10, "2026-01-01T00:00:10.000Z", {"n": [1, 2.5, None], "e": {}}),
        None,
    ),
    StoredEvent(Event("message", None, None, 11, "2026-01-01T00:00:11.000Z", {}), None),
    StoredEvent(Event("enter", "al", None, 12, "2026-01-01T00:00:12.000Z", room="#dev"), None),
    StoredEvent(Event("topic", "al", "go", 13, "2026-01-01T00:00:13.000Z", room="#dev"), None),
    StoredEvent(Event("message", "al", "hi", 14, "2026-01-01T00:00:14.000Z", room="#dev"), None),
    StoredEvent(Event("exit", "al", "bye", 15, "2026-01-01T00:00:15.000Z", room="#dev"), None),
    *(
        StoredEvent(
            Event(kind, "al", "why", 16 + i, f"2026-01-01T00:00:{16 + i}.000Z", extra, "#dev"),
            None,
        )
        for i, (kind, extra) in enumerate(MODERATION)
    ),
    StoredEvent(
        Event(
            "presence",
            None,
            "1 joined: eve; 1 left: dan",
            16 + len(MODERATION),
            f"2026-01-01T00:00:{16 + len(MODERATION)}.000Z",
            {"joined": [{"nick": "eve", "via": "web", "away": None}], "left": ["dan"], "users": 9},
            "#lobby",
        ),
        None,
    ),
]
LAST = len(EVERY_TYPE)


def test_every_sequenced_type_round_trips_exactly_including_extra(db: str):
    assert {s.event.type for s in EVERY_TYPE} == SEQUENCED
    store = Store(db)
    store.append(EVERY_TYPE)
    assert store.since(0, up_to=LAST, viewer_key="bob") == [s.event for s in EVERY_TYPE]
    store.close()
    reopened = Store(db)
    assert reopened.since(0, up_to=LAST, viewer_key="alice") == [s.event for s in EVERY_TYPE]
    loaded = reopened.since(0, up_to=LAST, viewer_key="alice")
    assert loaded is not None
    assert loaded[5].extra is None and loaded[10].extra == {}
    reopened.close()


@pytest.mark.parametrize(
    ("stored", "why"),
    [
        (lambda: StoredEvent(Event("message", "a", "x"), None), "with id and ts"),
        (lambda: StoredEvent(Event("error", text="x", id=1, ts="t"), None), "not sequenced"),
        (lambda: StoredEvent(ev(1, "private", extra={"to": "b"}), None), "needs its parties"),
        (lambda: StoredEvent(ev(1, "private"), frozenset({"a", "b", "c"})), "one or two"),
        (lambda: StoredEvent(ev(1, "private"), frozenset()), "one or two"),
    ],
)
def test_stored_event_refuses_what_the_log_must_not_keep(stored: Any, why: str):
    with pytest.raises(ValueError, match=why):
        stored()


def test_a_bad_event_is_skipped_and_the_rest_of_its_batch_is_kept(store: Store):
    store.append(
        [
            public(1),
            public(2, extra={"x": object()}),  # not JSON
            public(3, text="lone \ud800 surrogate"),  # not UTF-8
            public(4),
            public(2**70),  # too big for SQLite
            public(5),
        ]
    )
    assert store.error is None
    assert ids(store.recent(10)) == [1, 4, 5]
    assert store.last_id() == 5


# ----- last_id ------------------------------------------------------------------------


def test_last_id_is_zero_for_a_new_log(store: Store):
    assert store.last_id() == 0
    assert store.recent(10) == []
    assert store.since(0, up_to=100, viewer_key=None) == []


def test_last_id_survives_close_and_reopen(db: str):
    store = Store(db)
    store.append([public(i) for i in range(1, 8)])
    assert store.last_id() == 7
    store.close()
    reopened = Store(db)
    assert reopened.last_id() == 7
    reopened.append([public(8)])
    reopened.close()
    assert Store(db).last_id() == 8


def test_last_id_survives_pruning_everything(db: str):
    clock = Clock()
    store = Store(db, retention_seconds=60, clock=clock)
    store.append([public(i) for i in range(1, 11)])
    clock.now += 61
    assert store.prune() == 10
    assert store.recent(100) == []
    assert store.last_id() == 10
    store.close()
    reopened = Store(db)
    assert reopened.last_id() == 10
    reopened.close()


# ----- recent -------------------------------------------------------------------------


def test_recent_returns_the_newest_public_events_oldest_first(store: Store):
    store.append([public(1), private(2), public(3), private(4), public(5), public(6)])
    assert ids(store.recent(3)) == [3, 5, 6]
    assert ids(store.recent(100)) == [1, 3, 5, 6]
    assert store.recent(0) == []


def test_recent_never_shows_private_events(store: Store):
    store.append([private(i) for i in range(1, 6)])
    assert store.recent(10) == []


def test_recent_before_and_up_to_bound_the_window(store: Store):
    store.append([public(i) for i in range(1, 21)])
    assert ids(store.recent(3, before=10)) == [7, 8, 9]
    assert ids(store.recent(3, up_to=10)) == [8, 9, 10]
    assert ids(store.recent(5, before=10, up_to=5)) == [1, 2, 3, 4, 5]
    assert ids(store.recent(5, before=3, up_to=10)) == [1, 2]
    assert store.recent(5, before=1) == []


# ----- since --------------------------------------------------------------------------


def test_since_returns_exactly_the_events_after_after_up_to_up_to(store: Store):
    store.append([public(i) for i in range(1, 31)])
    assert ids(store.since(10, up_to=15, viewer_key=None)) == [11, 12, 13, 14, 15]
    assert ids(store.since(0, up_to=30, viewer_key=None)) == list(range(1, 31))
    assert ids(store.since(-5, up_to=2, viewer_key=None)) == [1, 2]
    assert ids(store.since(29, up_to=1000, viewer_key=None)) == [30]
    assert store.since(30, up_to=30, viewer_key=None) == []
    assert store.since(15, up_to=10, viewer_key=None) == []


def test_since_shows_private_events_only_to_their_parties(store: Store):
    store.append(
        [
            public(1),
            private(2, "alice", "bob"),
            private(3, "carol", "alice"),
            public(4),
            StoredEvent(ev(5, "private", "dave", "note", {"to": "dave"}), frozenset({"dave"})),
        ]
    )
    assert ids(store.since(0, up_to=5, viewer_key="alice")) == [1, 2, 3, 4]
    assert ids(store.since(0, up_to=5, viewer_key="bob")) == [1, 2, 4]
    assert ids(store.since(0, up_to=5, viewer_key="carol")) == [1, 3, 4]
    assert ids(store.since(0, up_to=5, viewer_key="dave")) == [1, 4, 5]
    assert ids(store.since(0, up_to=5, viewer_key="eve")) == [1, 4]
    assert ids(store.since(0, up_to=5, viewer_key=None)) == [1, 4]


def test_since_is_none_once_retention_pruned_past_after(db: str):
    store = Store(db, retention_events=5)
    store.append([public(i) for i in range(1, 21)])
    assert store.prune() == 15  # ids 1..15 are gone
    assert store.since(14, up_to=20, viewer_key=None) is None
    assert store.since(0, up_to=20, viewer_key=None) is None
    assert ids(store.since(15, up_to=20, viewer_key=None)) == [16, 17, 18, 19, 20]
    store.close()
    reopened = Store(db, retention_events=5)  # the boundary is kept on disk
    assert reopened.since(14, up_to=20, viewer_key=None) is None
    assert ids(reopened.since(17, up_to=20, viewer_key=None)) == [18, 19, 20]
    reopened.close()


def test_since_is_none_for_ids_the_log_never_had(store: Store):
    store.append([public(i) for i in range(1, 6)])
    # A client that saw id 9 saw events this log lost (e.g. history was off then).
    assert store.since(9, up_to=12, viewer_key=None) is None
    assert store.since(5, up_to=12, viewer_key=None) == []


def test_reads_do_not_wait_for_a_write_in_progress(store: Store, db: str):
    store.append([public(1), public(2)])
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "INSERT INTO events (id, ts, type, created) VALUES (3, 't', 'message', 0)"
    )  # a write holding the lock, not committed
    try:
        started = time.monotonic()
        assert ids(store.since(0, up_to=10, viewer_key=None)) == [1, 2]
        assert ids(store.recent(10)) == [1, 2]
        assert time.monotonic() - started < 1.0
    finally:
        other.execute("ROLLBACK")
        other.close()


# ----- retention ----------------------------------------------------------------------


def test_retention_by_count_keeps_only_the_newest(db: str):
    store = Store(db, retention_events=50)
    store.append([public(i) for i in range(1, 121)])
    assert store.prune() == 70
    assert ids(store.recent(1000)) == list(range(71, 121))
    assert store.prune() == 0
    store.close()
    reopened = Store(db, retention_events=20)  # the count is read back on open
    assert reopened.prune() == 30
    assert ids(reopened.recent(1000)) == list(range(101, 121))
    reopened.close()


def test_retention_by_count_counts_private_events_too(store: Store):
    store.retention_events = 3
    store.append([private(1), public(2), private(3), public(4), private(5)])
    assert store.prune() == 2
    assert ids(store.since(2, up_to=5, viewer_key="bob")) == [3, 4, 5]


def test_retention_by_age_drops_only_events_older_than_the_limit(db: str):
    clock = Clock()
    store = Store(db, retention_events=0, retention_seconds=3600, clock=clock)
    store.append([public(i) for i in range(1, 11)])
    clock.now += 1800
    store.append([public(i) for i in range(11, 16)])
    assert store.prune() == 0
    clock.now += 1801  # the first ten are now older than an hour, the last five are not
    assert store.prune() == 10
    assert ids(store.recent(100)) == [11, 12, 13, 14, 15]
    assert store.since(5, up_to=15, viewer_key=None) is None
    clock.now += 1800
    assert store.prune() == 5
    assert store.recent(100) == []
    store.close()


def test_no_limits_keep_everything(db: str):
    clock = Clock()
    store = Store(db, retention_events=0, retention_seconds=0, clock=clock)
    store.append([public(i) for i in range(1, 301)])
    clock.now += 10**9
    assert store.prune() == 0
    assert len(store.recent(1000)) == 300
    store.close()


def test_prune_deletes_in_bounded_steps(store: Store):
    store.retention_events = 100
    total = 3 * PRUNE_BATCH + 100
    store.append([public(i) for i in range(1, total + 1)])
    assert store.prune(limit=PRUNE_BATCH + 10) == PRUNE_BATCH + 10
    assert store.since(PRUNE_BATCH + 10, up_to=total, viewer_key=None) is not None
    assert store.prune() == 2 * PRUNE_BATCH - 10
    assert store.prune() == 0
    assert ids(store.recent(1000)) == list(range(total - 99, total + 1))


# ----- the file -----------------------------------------------------------------------


def test_wal_mode_is_on_for_a_file_database(store: Store, db: str):
    other = sqlite3.connect(db)
    try:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        other.close()


def test_memory_store_has_no_file_and_works(tmp_path: Path):
    store = Store(":memory:")
    store.append([public(1), private(2)])
    assert ids(store.since(0, up_to=2, viewer_key="bob")) == [1, 2]
    assert list(tmp_path.iterdir()) == []
    store.close()


def assert_disabled(store: Store) -> None:
    assert store.error is not None and store.error.startswith("history is off: ")
    assert "\n" not in store.error
    store.append([public(1), public(2)])  # a no-op, not an exception
    assert store.last_id() == 0
    assert store.recent(10) == []
    assert store.since(0, up_to=2, viewer_key=None) is None
    assert store.prune() == 0
    store.close()


def test_a_path_in_a_missing_directory_disables_the_log(tmp_path: Path, caplog):
    path = tmp_path / "no" / "such" / "dir" / "history.db"
    with caplog.at_level(logging.ERROR, logger="webchat.history.sqlite"):
        store = Store(str(path))
    assert store.error is not None and "unable to open" in store.error
    assert repr(str(path)) in store.error
    assert "history is off" in caplog.text
    assert_disabled(store)
    assert not path.parent.exists()  # creating directories is not the store's job


def test_a_path_that_is_a_directory_disables_the_log(tmp_path: Path):
    assert_disabled(Store(str(tmp_path)))


def test_a_corrupt_file_disables_the_log_and_is_left_alone(tmp_path: Path):
    path = tmp_path / "history.db"
    garbage = b"this is not an SQLite database\n" * 200
    path.write_bytes(garbage)
    store = Store(str(path))
    assert store.error is not None and "not a database" in store.error
    assert_disabled(store)
    assert path.read_bytes() == garbage


def test_a_path_sqlite_cannot_take_disables_the_log():
    assert_disabled(Store("bad\0path.db"))


def test_a_newer_schema_is_refused(db: str):
    Store(db).close()
    other = sqlite3.connect(db)
    other.execute("PRAGMA user_version = 99")
    other.close()
    store = Store(db)
    assert store.error is not None and "schema version 99" in store.error
    assert_disabled(store)


READ_ONLY_CHECK = """
import os, sys, tempfile
from webchat.history.sqlite import SqliteHistory as Store, StoredEvent
from webchat.core.events import Event
base = tempfile.mkdtemp()
for existing in (False, True):
    d = tempfile.mkdtemp(dir=base)
    if existing:
        Store(os.path.join(d, "h.db")).close()
    os.chmod(d, 0o500)
    s = Store(os.path.join(d, "h.db"))
    s.append([StoredEvent(Event("message", "a", "x", 1, "t"), None)])
    print(existing, s.error, s.last_id(), s.since(0, up_to=1, viewer_key=None))
    s.close()
    os.chmod(d, 0o700)
"""


def test_a_read_only_directory_disables_the_log(tmp_path: Path):
    if os.geteuid() != 0:
        for existing in (False, True):
            directory = tmp_path / f"ro-{existing}"
            directory.mkdir()
            if existing:
                Store(str(directory / "h.db")).close()
            directory.chmod(0o500)
            try:
                store = Store(str(directory / "h.db"))
                assert store.error is not None
                assert "unable to open" in store.error or "readonly" in store.error
                assert_disabled(store)
            finally:
                directory.chmod(0o700)
        return
    # root ignores permissions: run the same check as an unprivileged user if we can.
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root (permissions are ignored) and setpriv is missing")
    root = Path(__file__).resolve().parents[2]
    as_nobody = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    result = subprocess.run(
        [*as_nobody, sys.executable, "-c", READ_ONLY_CHECK],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "TMPDIR": "/tmp"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0 and "Permission denied" in result.stderr:
        pytest.skip(f"running as root, and nobody cannot run this interpreter: {result.stderr}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    assert lines[0].startswith("False history is off: unable to open database file")
    assert lines[1].startswith("True history is off: attempt to write a readonly database")
    assert all(line.endswith(" 0 None") for line in lines)


def test_a_failure_mid_run_turns_history_off_for_good(store: Store, db: str, caplog):
    store.append([public(1)])
    other = sqlite3.connect(db)
    other.execute("DROP TABLE events")
    other.close()
    with caplog.at_level(logging.ERROR, logger="webchat.history.sqlite"):
        store.append([public(2)])  # does not raise
    assert store.error is not None and "no such table: events" in store.error
    assert "history is off" in caplog.text
    other = sqlite3.connect(db)
    other.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, ts, type, nick, text, extra,"
        " party_a, party_b, created)"
    )
    other.close()
    store.append([public(3)])  # stays off even though the table is back
    assert store.since(0, up_to=3, viewer_key=None) is None
    assert store.recent(10) == []
    assert store.last_id() == 1
    assert store.commits == 1


def test_a_reused_id_turns_history_off_loudly(store: Store):
    store.append([public(1), public(2)])
    store.append([public(3), public(2)])
    assert store.error is not None and "UNIQUE" in store.error
    assert ids(store.recent(10)) == []  # a disabled log answers nothing


def test_a_closed_store_is_a_disabled_log(db: str):
    store = Store(db)
    store.append([public(1)])
    store.close()
    store.append([public(2)])
    assert store.recent(10) == []
    assert store.since(0, up_to=2, viewer_key=None) is None
    assert store.prune() == 0
    store.close()  # twice is fine
    assert Store(db).last_id() == 1


# ----- threads ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["file", ":memory:"])
def test_reads_from_several_threads_see_committed_data(tmp_path: Path, path: str):
    store = Store(str(tmp_path / "h.db") if path == "file" else ":memory:")
    done = threading.Event()
    problems: list[str] = []
    readers = [
        threading.Thread(target=hammer_reads, args=(store, done, problems)) for _ in range(4)
    ]
    for reader in readers:
        reader.start()
    for start in range(1, 2001, 20):
        store.append([public(i) for i in range(start, start + 20)])
    done.set()
    for reader in readers:
        reader.join(WAIT)
    assert problems == []
    assert store.last_id() == 2000
    store.close()


# ----- rooms --------------------------------------------------------------------------


def in_room(event_id: int, room: str, type_: str = "message") -> StoredEvent:
    text = f"message {event_id}" if type_ == "message" else None
    return StoredEvent(
        Event(type_, "al", text, event_id, f"2026-01-01T00:00:{event_id:02d}.000Z", room=room), None
    )


def about(event_id: int, *rooms: str) -> StoredEvent:
    """An event about a person (an away), told in ``rooms``."""
    event = Event("away", "al", "lunch", event_id, f"2026-01-01T00:00:{event_id:02d}.000Z")
    return StoredEvent(event, None, frozenset(rooms))


def test_each_room_has_its_own_history(store: Store):
    store.append(
        [in_room(1, "#lobby"), in_room(2, "#dev"), in_room(3, "#dev"), in_room(4, "#lobby")]
    )
    assert ids(store.recent(10)) == [1, 4]  # #lobby by default
    assert ids(store.recent(10, room="#dev")) == [2, 3]
    assert ids(store.recent(1, room="#dev")) == [3]
    assert store.recent(10, room="#ops") == []


def test_events_about_people_belong_to_the_lobby_history_only_where_the_lobby_was_told(
    store: Store,
):
    store.append([about(1, "#lobby", "#dev"), about(2, "#dev"), in_room(3, "#dev"), about(4)])
    assert ids(store.recent(10)) == [1]
    assert ids(store.recent(10, room="#dev")) == [3]  # a room's history is its own events


def test_since_over_rooms_tells_exactly_whom_the_live_events_told(store: Store):
    store.append(
        [
            about(1, "#lobby"),
            about(2, "#dev"),
            in_room(3, "#dev"),
            in_room(4, "#ops"),
            about(5, "#a_b"),
            private(6),
        ]
    )
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=["#lobby"])) == [1]
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=["#dev"])) == [2, 3]
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=["#lobby", "#ops"])) == [1, 4]
    # '_' is no wildcard: #a_b's scope does not match #axb.
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=["#axb"])) == []
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=["#a_b"])) == [5]
    assert ids(store.since(0, up_to=6, viewer_key=None, rooms=[])) == []
    assert ids(store.since(0, up_to=6, viewer_key="bob", rooms=[])) == [6]


V1_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, ts TEXT NOT NULL, type TEXT NOT NULL, nick TEXT, text TEXT,
    extra TEXT, party_a TEXT, party_b TEXT, created REAL NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('last_id', 3), ('pruned_through', 0);
INSERT INTO events VALUES (1, '2026-01-01T00:00:01.000Z', 'join', 'al', NULL, '{"via":"tcp"}',
    NULL, NULL, 1.0);
INSERT INTO events VALUES (2, '2026-01-01T00:00:02.000Z', 'message', 'al', 'hi', NULL,
    NULL, NULL, 2.0);
INSERT INTO events VALUES (3, '2026-01-01T00:00:03.000Z', 'private', 'al', 'psst', '{"to":"bo"}',
    'al', 'bo', 3.0);
PRAGMA user_version = 1;
"""


def test_a_log_from_before_rooms_becomes_the_lobby_history(db: str):
    with sqlite3.connect(db) as conn:
        conn.executescript(V1_SCHEMA)
    store = Store(db)
    assert store.error is None and store.last_id() == 3
    assert [(e.id, e.room) for e in store.recent(10)] == [(1, None), (2, "#lobby")]
    assert store.recent(10, room="#dev") == []
    assert ids(store.since(0, up_to=3, viewer_key="bo", rooms=["#lobby"])) == [1, 2, 3]
    store.append([in_room(4, "#dev")])
    store.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)


def test_a_marked_gap_makes_a_resume_from_before_it_inexact(store: Store):
    """A cluster node that finds events gone from the stream marks them: a client
    resuming from before them gets a history_gap, not a quiet hole."""
    store.append([public(1), public(2), public(3)])
    store.mark_gap(10)
    assert store.since(2, up_to=12, viewer_key=None) is None
    store.append([public(11), public(12)])
    assert ids(store.since(10, up_to=12, viewer_key=None)) == [11, 12]
    assert ids(store.recent(10)) == [1, 2, 3, 11, 12]
