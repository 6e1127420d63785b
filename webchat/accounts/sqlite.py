"""Accounts, sanctions and ignore lists in SQLite: the embedded chat's store.

They live in the history file (tables of their own, next to the log), so one
file is the whole chat; ``":memory:"`` keeps them for this run only. One
connection behind a lock: these are a few small writes a minute and one indexed
read per join. A file that cannot be opened leaves the store off (``error``) and
the chat running; registering then says why.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from webchat.accounts import Account, Sanction
from webchat.text import ChatError

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    key     TEXT PRIMARY KEY,  -- nick key: case and look-alikes are one account
    nick    TEXT NOT NULL,
    hash    TEXT NOT NULL,     -- argon2id PHC string; never the password
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sanctions (
    kind    TEXT NOT NULL,     -- 'ban' or 'mute'
    scope   TEXT NOT NULL,     -- a room; '#lobby' is the whole server
    key     TEXT NOT NULL,
    nick    TEXT NOT NULL,
    address TEXT,
    by      TEXT NOT NULL,
    reason  TEXT NOT NULL,
    until   REAL,              -- unix time; NULL until lifted
    created REAL NOT NULL,
    PRIMARY KEY (kind, scope, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sanctions_address ON sanctions (scope, address);
CREATE TABLE IF NOT EXISTS ignores (
    account TEXT NOT NULL,
    ignored TEXT NOT NULL,
    PRIMARY KEY (account, ignored)
) WITHOUT ROWID;
"""
_SANCTION_COLUMNS = "kind, scope, key, nick, address, by, reason, until, created"


class SqliteAccounts:
    """The AccountStore of one process."""

    def __init__(self, path: str) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._error: str | None = None
        try:
            conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
            conn.executescript(_SCHEMA)
            self._conn = conn
        except sqlite3.Error as exc:
            self._error = f"accounts are off: {path} cannot be used ({exc})"
            log.error("%s", self._error)

    @property
    def error(self) -> str | None:
        return self._error

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        if self._conn is None:
            raise ChatError("unavailable", self._error or "accounts are off")
        with self._lock:
            try:
                with self._conn:  # one transaction, committed or rolled back
                    yield self._conn
            except sqlite3.Error as exc:
                log.error("accounts: %s", exc)
                raise ChatError("unavailable", f"accounts cannot be reached now ({exc})") from None

    def get(self, key: str) -> Account | None:
        with self._db() as db:
            row = db.execute(
                "SELECT key, nick, hash, created FROM accounts WHERE key = ?", (key,)
            ).fetchone()
        return Account(*row) if row else None

    def create(self, account: Account) -> bool:
        with self._db() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO accounts (key, nick, hash, created) VALUES (?, ?, ?, ?)",
                (account.key, account.nick, account.hash, account.created),
            )
        return cursor.rowcount == 1

    def set_hash(self, key: str, password_hash: str) -> None:
        with self._db() as db:
            db.execute("UPDATE accounts SET hash = ? WHERE key = ?", (password_hash, key))

    def delete(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM accounts WHERE key = ?", (key,))
            db.execute("DELETE FROM ignores WHERE account = ?", (key,))

    def add_sanction(self, sanction: Sanction) -> None:
        s = sanction
        with self._db() as db:
            db.execute(
                f"INSERT OR REPLACE INTO sanctions ({_SANCTION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.kind, s.scope, s.key, s.nick, s.address, s.by, s.reason, s.until, s.created),
            )

    def remove_sanction(self, kind: str, scope: str, key: str) -> bool:
        with self._db() as db:
            cursor = db.execute(
                "DELETE FROM sanctions WHERE kind = ? AND scope = ? AND key = ?",
                (kind, scope, key),
            )
        return cursor.rowcount > 0

    def sanctions(self, now: float) -> list[Sanction]:
        with self._db() as db:
            db.execute("DELETE FROM sanctions WHERE until IS NOT NULL AND until <= ?", (now,))
            rows = db.execute(
                f"SELECT {_SANCTION_COLUMNS} FROM sanctions ORDER BY created"
            ).fetchall()
        return [Sanction(*row) for row in rows]

    def banned(self, scope: str, key: str, address: str, now: float) -> Sanction | None:
        with self._db() as db:
            row = db.execute(
                f"SELECT {_SANCTION_COLUMNS} FROM sanctions"
                " WHERE kind = 'ban' AND scope = ? AND (key = ? OR address = ?)"
                " AND (until IS NULL OR until > ?) LIMIT 1",
                (scope, key, address or None, now),
            ).fetchone()
        return Sanction(*row) if row else None

    def ignores(self, account: str) -> set[str]:
        with self._db() as db:
            rows = db.execute("SELECT ignored FROM ignores WHERE account = ?", (account,))
            return {row[0] for row in rows}

    def set_ignore(self, account: str, key: str, on: bool) -> None:
        with self._db() as db:
            if on:
                db.execute("INSERT OR IGNORE INTO ignores VALUES (?, ?)", (account, key))
            else:
                db.execute("DELETE FROM ignores WHERE account = ? AND ignored = ?", (account, key))

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
                self._error = "accounts are closed"
