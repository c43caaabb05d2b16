"""The SQLite settings shared by the event store and the side-by-side store.

Both are embedded, append-only logs where an acknowledged write must survive a crash:

- ``journal_mode=WAL``: a commit appends to the write-ahead log; readers never block the writer.
- ``synchronous=FULL``: every commit fsyncs the WAL before returning, so a write acknowledged by
  ``append()``/``record()`` survives a killed process *and* a power cut (NORMAL, the usual WAL
  setting, may lose the last commits on power loss).
- the directory is fsynced once after the WAL file is created, so the file itself is durable.
- ``busy_timeout``: several processes (serve workers) may append to one file; a writer waits for
  the lock instead of failing.
- ``user_version`` records the schema version; a file with another version is refused.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shopsearch.data.errors import ShopsearchError

BUSY_TIMEOUT_MS = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(ts: datetime) -> int:
    """Epoch microseconds of an aware datetime, exact (integer timedelta arithmetic, no float rounding)."""
    return (ts - _EPOCH) // _US


def from_us(us: int) -> datetime:
    return _EPOCH + int(us) * _US


class StoreError(ShopsearchError):
    """A store file cannot be opened or written (not SQLite, another schema version, locked)."""


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse directory fsync; nothing more to do there
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class SqliteLog:
    """One connection to an append-only SQLite file, guarded by a lock (usable from threads).

    ``schema`` is the ``CREATE TABLE IF NOT EXISTS ...`` script; ``kind`` names the store in errors.
    """

    def __init__(self, path: str | Path, schema: str, version: int, kind: str) -> None:
        self.path = Path(path)
        self.kind = kind
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            self._conn.execute("PRAGMA synchronous=FULL")
            found = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if found not in (0, version):
                raise StoreError(f"{self.path}: {kind} schema version {found}, this shopsearch reads version {version}")
            with self.transaction() as cur:
                # statement by statement: executescript() would COMMIT outside this transaction
                for statement in filter(str.strip, schema.split(";")):
                    cur.execute(statement)
                cur.execute(f"PRAGMA user_version={version}")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open as a {kind} (SQLite said: {exc})") from None
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: the filesystem does not support SQLite WAL mode (got {mode!r})")
        _fsync_dir(self.path.parent)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """BEGIN IMMEDIATE ... COMMIT under the lock; rolled back on any error. COMMIT returning
        means the rows are on disk (synchronous=FULL)."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for pandas readers; hold no reference past the store's life."""
        return self._conn

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def pragma(self, name: str) -> object:
        return self.query(f"PRAGMA {name}")[0][0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
