"""Read connections for the history file, reused so a read never waits for a write.

Under WAL each reader sees every committed batch; a small pool keeps a few
connections open for reuse and opens (and closes) more under a burst.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

# Idle read connections kept for reuse; more are opened (and closed) under a burst.
READ_POOL_IDLE = 8


class ReadPool:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False

    def checkout(self) -> sqlite3.Connection:
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("the history store is closed")
            if self._idle:
                return self._idle.pop()
        conn = self._connect()
        conn.execute("PRAGMA query_only = 1")
        return conn

    def checkin(self, conn: sqlite3.Connection, ok: bool) -> None:
        with self._lock:
            if ok and not self._closed and len(self._idle) < READ_POOL_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
