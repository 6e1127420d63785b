"""The history file's schema, its migrations, and opening it.

Version 2 added rooms: a ``room`` column (version 1's public messages and actions
were the lobby's) and a ``scope`` column for events about a person.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from webchat.core.events import LOBBY

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_SCHEMA = f"""
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS events (
    id      INTEGER PRIMARY KEY,  -- the event id from the hub's sequencer
    ts      TEXT NOT NULL,
    type    TEXT NOT NULL,
    nick    TEXT,
    text    TEXT,
    extra   TEXT,                 -- JSON object, or NULL
    party_a TEXT,                 -- NULL for a public event; else a nick key
    party_b TEXT,                 -- the other party (party_a again for a note to oneself)
    created REAL NOT NULL,        -- unix time of the append, for retention by age
    room    TEXT,                 -- the room it happened in; NULL: about a person, or private
    scope   TEXT                  -- about a person: ",#a,#b," the rooms told; NULL: #lobby's
);
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta (key, value) VALUES ('last_id', 0), ('pruned_through', 0);
PRAGMA user_version = {SCHEMA_VERSION};
COMMIT;
"""

# Version 1 had one conversation: its public messages and actions were the lobby's.
_MIGRATE_FROM_1 = f"""
BEGIN IMMEDIATE;
ALTER TABLE events ADD COLUMN room TEXT;
ALTER TABLE events ADD COLUMN scope TEXT;
UPDATE events SET room = '{LOBBY}' WHERE type IN ('message', 'me') AND party_a IS NULL;
PRAGMA user_version = 2;
COMMIT;
"""
_INDEX = "CREATE INDEX IF NOT EXISTS events_room ON events (room, id)"

INSERT = (
    "INSERT INTO events"
    " (id, ts, type, nick, text, extra, party_a, party_b, created, room, scope)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RAISE_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?)"
    " ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)"
)


def open_log(conn: sqlite3.Connection, path: str, memory: bool) -> tuple[int, int]:
    """Set the connection up, create or migrate the schema; the highest id and the row count.

    Creating the tables also proves the file is writable now, not at the first message.
    """
    if not memory:
        (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
        if str(mode).lower() != "wal":
            log.warning("history: %s stays in journal mode %s, not WAL", path, mode)
    conn.execute("PRAGMA synchronous = NORMAL")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"{path} has schema version {version}; this webchat knows {SCHEMA_VERSION}"
        )
    if version == 1:
        conn.executescript(_MIGRATE_FROM_1)
    conn.executescript(_SCHEMA)
    conn.execute(_INDEX)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    (top, rows) = conn.execute("SELECT coalesce(max(id), 0), count(*) FROM events").fetchone()
    return max(int(meta.get("last_id", 0)), int(top)), int(rows)


def insert_one_by_one(conn: sqlite3.Connection, rows: list[Any]) -> list[Any]:
    """Insert what SQLite takes of a batch it refused whole (a lone surrogate, a huge
    int); the rows kept. The caller has rolled the batch back and commits after."""
    conn.execute("BEGIN IMMEDIATE")
    kept = []
    for row in rows:
        try:
            conn.execute(INSERT, row)
        except (ValueError, TypeError, OverflowError) as exc:
            log.error("history: event %s not logged: %s", row[0], exc)
        else:
            kept.append(row)
    return kept


def delete_oldest(conn: sqlite3.Connection, batch: int, excess: int, cutoff: float | None) -> int:
    """Within the caller's transaction, delete the oldest rows past the retention
    (``excess`` by count, older than ``cutoff`` by age), at most ``batch``; how many."""
    oldest = conn.execute("SELECT id, created FROM events ORDER BY id LIMIT ?", (batch,)).fetchall()
    count, through = 0, 0
    for event_id, created in oldest:
        if count >= excess and (cutoff is None or created >= cutoff):
            break
        count, through = count + 1, event_id
    if not count:
        return 0
    deleted = int(conn.execute("DELETE FROM events WHERE id <= ?", (through,)).rowcount)
    conn.execute(RAISE_META, ("pruned_through", through))
    return deleted
