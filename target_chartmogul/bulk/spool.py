"""Records waiting for a bulk import, kept on disk so a backfill of any size keeps memory flat.

A record is spooled under its data source and customer external id; the last record of a
key wins (as within a batch). Records are read back grouped by customer, so one import
request can carry all of one customer's records without holding the whole spool in memory.
"""

from __future__ import annotations

import decimal
import itertools
import json
import pathlib
import shutil
import sqlite3
import tempfile
import threading
import typing as t

from target_chartmogul.values.encoding import dumps

Record = dict[str, t.Any]


class Spool:
    """An SQLite file in a temporary directory, removed when closed."""

    def __init__(self) -> None:
        self._dir: pathlib.Path | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.count = 0
        self._holds: dict[tuple[str, str, str], bool] = {}  # answers of `holds` since the spool last changed

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = pathlib.Path(tempfile.mkdtemp(prefix="target-chartmogul-bulk-"))
            self._db = sqlite3.connect(self._dir / "spool.db", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=OFF")
            self._db.execute("PRAGMA synchronous=OFF")
            self._db.execute(
                "CREATE TABLE spool (seq INTEGER PRIMARY KEY, ds TEXT NOT NULL, customer TEXT NOT NULL, "
                "stream TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, record TEXT NOT NULL, "
                "UNIQUE (stream, key))"
            )
            self._db.execute("CREATE INDEX spool_customer ON spool (ds, customer, seq)")
            self._db.execute("CREATE INDEX spool_kind ON spool (kind, ds, key)")
            # customers a bulk import landed, until they are compared with ChartMogul's copy
            self._db.execute("CREATE TABLE landed (ds TEXT NOT NULL, external_id TEXT NOT NULL, entry TEXT NOT NULL, "
                             "PRIMARY KEY (ds, external_id))")
        return self._db

    def add(self, kind: str, rows: t.Iterable[tuple[str, str, str, str, Record]]) -> None:
        """Spool (data source, customer, stream, key, record) rows of one kind of object; a key spooled before is
        replaced.
        """
        with self._lock:
            self._holds.clear()
            conn = self._conn()
            conn.execute("BEGIN")
            for ds, customer, stream, key, record in rows:
                conn.execute("DELETE FROM spool WHERE stream = ? AND key = ?", (stream, key))
                conn.execute(
                    "INSERT INTO spool (ds, customer, stream, kind, key, record) VALUES (?, ?, ?, ?, ?, ?)",
                    (ds, customer, stream, kind, key, dumps(record)),
                )
            conn.execute("COMMIT")
            self.count = conn.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def holds(self, kind: str, ds: str, key: str) -> bool:
        """Whether an object of this kind waits in the spool."""
        with self._lock:
            if self._db is None or not self.count:
                return False
            known = self._holds.get((kind, ds, key))
            if known is None:  # a flush asks once per invoice about the same customer and plans
                known = self._holds[(kind, ds, key)] = self._db.execute(
                    "SELECT 1 FROM spool WHERE kind = ? AND ds = ? AND key = ? LIMIT 1", (kind, ds, key)
                ).fetchone() is not None
            return known

    def stash_landed(self, ds: str, external_id: str, entry: t.Any) -> None:
        """Keep a landed customer's entry on disk until it is compared with ChartMogul's copy."""
        with self._lock:
            self._conn().execute("INSERT OR REPLACE INTO landed VALUES (?, ?, ?)", (ds, external_id, dumps(entry)))

    def landed_sources(self) -> list[str]:
        """Data sources with landed customers waiting."""
        with self._lock:
            if self._db is None:
                return []
            return [row[0] for row in self._db.execute("SELECT DISTINCT ds FROM landed ORDER BY ds")]

    def take_landed(self, ds: str, external_ids: t.Sequence[str]) -> dict[str, t.Any]:
        """The entries of these landed customers (external id -> entry), taken out."""
        found: dict[str, t.Any] = {}
        with self._lock:
            if self._db is None:
                return found
            for external_id in external_ids:
                row = self._db.execute("SELECT entry FROM landed WHERE ds = ? AND external_id = ?",
                                       (ds, external_id)).fetchone()
                if row is not None:
                    found[external_id] = json.loads(row[0], parse_float=decimal.Decimal)
            self._db.executemany("DELETE FROM landed WHERE ds = ? AND external_id = ?",
                                 [(ds, external_id) for external_id in found])
        return found

    def rest_landed(self, ds: str) -> list[t.Any]:
        """Entries of landed customers no listing page had (taken out)."""
        with self._lock:
            if self._db is None:
                return []
            rows = self._db.execute("SELECT entry FROM landed WHERE ds = ?", (ds,)).fetchall()
            self._db.execute("DELETE FROM landed WHERE ds = ?", (ds,))
            return [json.loads(row[0], parse_float=decimal.Decimal) for row in rows]

    def discard(self, stream: str, key: str) -> bool:
        """Take a spooled record out (a later row deleted it); True if it was there."""
        with self._lock:
            if self._db is None:
                return False
            self._holds.clear()
            removed = self._db.execute("DELETE FROM spool WHERE stream = ? AND key = ?", (stream, key)).rowcount
            self.count -= removed
            return bool(removed)

    def streams(self) -> dict[str, int]:
        """Records waiting per stream."""
        with self._lock:
            if self._db is None:
                return {}
            return dict(self._db.execute("SELECT stream, COUNT(*) FROM spool GROUP BY stream").fetchall())

    def customers(self) -> int:
        """Customers (per data source) with records waiting."""
        with self._lock:
            if self._db is None:
                return 0
            return int(self._db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT ds, customer FROM spool)").fetchone()[0])

    def by_customer(self) -> t.Iterator[tuple[str, str, list[tuple[str, Record]]]]:
        """(data source, customer, [(stream, record)] in arrival order), customer by customer, streamed."""
        if self._db is None:
            return
        cursor = self._db.execute("SELECT ds, customer, stream, record FROM spool ORDER BY ds, customer, seq")
        for (ds, customer), rows in itertools.groupby(cursor, key=lambda row: (row[0], row[1])):
            yield ds, customer, [(row[2], json.loads(row[3], parse_float=decimal.Decimal)) for row in rows]

    def by_stream(self) -> t.Iterator[tuple[str, list[Record]]]:
        """(stream, records in arrival order), stream by stream (for writing them through REST)."""
        if self._db is None:
            return
        for (stream,) in self._db.execute("SELECT DISTINCT stream FROM spool").fetchall():
            rows = self._db.execute("SELECT record FROM spool WHERE stream = ? ORDER BY seq", (stream,))
            yield stream, [json.loads(row[0], parse_float=decimal.Decimal) for row in rows]

    def clear(self) -> None:
        """Empty the spool (its records were imported, written or refused)."""
        with self._lock:
            self._holds.clear()
            if self._db is not None:
                self._db.execute("DELETE FROM spool")
            self.count = 0

    def close(self) -> None:
        """Remove the file."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None
