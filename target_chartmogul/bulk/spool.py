"""Records waiting for a bulk import, kept on disk so a backfill of any size keeps memory flat.

A record is spooled under its data source and customer external id; the last record of a
key wins (as within a batch). Records are read back grouped by customer, so one import
request can carry all of one customer's records without holding the whole spool in memory.

The spool lives beside the sync memory's state (`state_dir`: the folder of a SQLite sync memory,
else of the rejects file), in a folder of its own per run that the run holds locked
(`fcntl.flock` where the platform has it). A run that was killed leaves its folder behind; the
next run removes every folder no living run holds.
"""

from __future__ import annotations

import decimal
import itertools
import json
import pathlib
import shutil
import sqlite3
import threading
import typing as t
import uuid as uuidlib

from target_chartmogul.values.encoding import dumps

try:  # POSIX: a lock the kernel drops when the run dies, however it dies
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock to test, so no folder is ever taken for stale
    fcntl = None  # type: ignore[assignment]

Record = dict[str, t.Any]
SPOOL_PREFIX = "bulk-spool-"
LOCK_FILE = "run.lock"


def _lock(handle: t.IO[str]) -> bool:
    """Hold an exclusive lock on an open file without waiting; False when another process holds it (or no lock
    can be had on this platform).
    """
    if fcntl is None:
        return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


def remove_stale(state_dir: pathlib.Path) -> list[pathlib.Path]:
    """Remove the spool folders of runs that ended without removing theirs (killed); returns them."""
    removed: list[pathlib.Path] = []
    if not state_dir.is_dir():
        return removed
    for folder in sorted(state_dir.glob(f"{SPOOL_PREFIX}*")):
        lock = folder / LOCK_FILE
        try:
            with lock.open("a") as handle:
                if not _lock(handle):
                    continue  # a living run holds it
        except OSError:
            pass  # no lock file (killed while creating it): stale too
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class Spool:
    """An SQLite file in a folder of this run's own beside the sync memory, removed when closed."""

    def __init__(self, state_dir: pathlib.Path) -> None:
        self.state_dir = state_dir
        self._dir: pathlib.Path | None = None
        self._held: t.IO[str] | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self.count = 0
        self._holds: dict[tuple[str, str, str], bool] = {}  # answers of `holds` since the spool last changed

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self._dir = self._folder()
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
            # entries of finished imports, until a listing shows what they brought (`parent`: the entry that fails
            # with it, an invoice for its lines from their own stream)
            self._db.execute("CREATE TABLE imported (seq INTEGER PRIMARY KEY, ds TEXT NOT NULL, kind TEXT NOT NULL, "
                             "external_id TEXT NOT NULL, parent INTEGER, entry TEXT NOT NULL)")
            self._db.execute("CREATE INDEX imported_object ON imported (ds, kind, external_id)")
            self._db.execute("CREATE INDEX imported_parent ON imported (parent)")
        return self._db

    def _folder(self) -> pathlib.Path:
        """A folder of this run's own, locked for as long as the run lives."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        folder = self.state_dir / f"{SPOOL_PREFIX}{uuidlib.uuid4().hex}"
        folder.mkdir()
        self._held = (folder / LOCK_FILE).open("w")
        _lock(self._held)
        return folder

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

    # Imported entries, until a listing of ChartMogul shows them -----------------------------------
    def stash(self, ds: str, entries: t.Sequence[tuple[str, str, int | None, t.Any]]) -> None:
        """Keep one finished import's entries on disk until verified: (kind, external id, index of the entry that
        fails with it or None, entry as JSON), indexes counted within this call.
        """
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN")
            seqs: list[int] = []
            for kind, external_id, parent, entry in entries:
                cursor = conn.execute(
                    "INSERT INTO imported (ds, kind, external_id, parent, entry) VALUES (?, ?, ?, ?, ?)",
                    (ds, kind, external_id, seqs[parent] if parent is not None else None, dumps(entry)))
                seqs.append(int(cursor.lastrowid or 0))
            conn.execute("COMMIT")

    def to_verify(self) -> list[tuple[str, str]]:
        """(data source, kind) of the imported entries not verified yet."""
        with self._lock:
            if self._db is None:
                return []
            return [(row[0], row[1]) for row in
                    self._db.execute("SELECT DISTINCT ds, kind FROM imported WHERE parent IS NULL ORDER BY ds, kind")]

    def waiting(self, ds: str, kind: str) -> int:
        """How many imported objects of one (data source, kind) are not verified yet."""
        with self._lock:
            if self._db is None:
                return 0
            return int(self._db.execute("SELECT COUNT(*) FROM imported WHERE ds = ? AND kind = ? AND parent IS NULL",
                                        (ds, kind)).fetchone()[0])

    def waiting_ids(self, ds: str, kind: str) -> list[str]:
        """The external ids of the imported objects of one (data source, kind) not verified yet, in import order."""
        with self._lock:
            if self._db is None:
                return []
            return [row[0] for row in self._db.execute(
                "SELECT external_id FROM imported WHERE ds = ? AND kind = ? AND parent IS NULL ORDER BY seq", (ds, kind))]

    def imported(self, ds: str, kind: str, external_ids: t.Sequence[str]) -> list[tuple[int, str, t.Any, list[t.Any]]]:
        """(seq, external id, entry, [entries that fail with it]) of these imported objects of one kind."""
        found: list[tuple[int, str, t.Any, list[t.Any]]] = []
        if not external_ids:
            return found
        with self._lock:
            if self._db is None:
                return found
            for chunk in _chunks(list(external_ids), 500):
                marks = ",".join("?" * len(chunk))
                rows = self._db.execute(
                    f"SELECT seq, external_id, entry FROM imported WHERE ds = ? AND kind = ? AND parent IS NULL "  # noqa: S608
                    f"AND external_id IN ({marks})", (ds, kind, *chunk)).fetchall()
                for seq, external_id, entry in rows:
                    children = [_loads(row[0]) for row in self._db.execute(
                        "SELECT entry FROM imported WHERE parent = ? ORDER BY seq", (seq,))]
                    found.append((seq, external_id, _loads(entry), children))
        return found

    def verified(self, seqs: t.Iterable[int]) -> None:
        """These entries (and those that fail with them) are in ChartMogul: no longer waiting."""
        with self._lock:
            if self._db is None:
                return
            pairs = [(seq, seq) for seq in seqs]
            self._db.executemany("DELETE FROM imported WHERE seq = ? OR parent = ?", pairs)

    def unverified(self) -> t.Iterator[t.Any]:
        """Every imported entry no listing showed (taken out), in import order: they go through REST."""
        with self._lock:
            if self._db is None:
                return
            rows = self._db.execute("SELECT entry FROM imported ORDER BY seq").fetchall()
            self._db.execute("DELETE FROM imported")
        for row in rows:
            yield _loads(row[0])

    def discard(self, stream: str, key: str) -> bool:
        """Take a spooled record out (a later row deleted it); True if it was there."""
        with self._lock:
            if self._db is None:
                return False
            self._holds.clear()
            removed = self._db.execute("DELETE FROM spool WHERE stream = ? AND key = ?", (stream, key)).rowcount
            self.count -= removed
            return bool(removed)

    def sources_of(self, kind: str) -> list[str]:
        """Data sources with records of this kind waiting."""
        with self._lock:
            if self._db is None:
                return []
            return [row[0] for row in self._db.execute("SELECT DISTINCT ds FROM spool WHERE kind = ? ORDER BY ds", (kind,))]

    def first_of(self, kind: str, ds: str, wanted: t.Callable[[str, Record], bool]) -> tuple[str, str] | None:
        """(customer, stream) of the first waiting record of this kind that `wanted(stream, record)` accepts."""
        if self._db is None:
            return None
        cursor = self._db.execute("SELECT customer, stream, record FROM spool WHERE kind = ? AND ds = ? ORDER BY seq",
                                  (kind, ds))
        for customer, stream, record in cursor:
            if wanted(stream, _loads(record)):
                return customer, stream
        return None

    def customer_rows(self, ds: str, customer: str) -> list[tuple[str, Record]]:
        """Every record waiting for one customer, in arrival order (left waiting)."""
        with self._lock:
            if self._db is None:
                return []
            rows = self._db.execute("SELECT stream, record FROM spool WHERE ds = ? AND customer = ? ORDER BY seq",
                                    (ds, customer)).fetchall()
        return [(stream, _loads(record)) for stream, record in rows]

    def drop_customer(self, ds: str, customer: str) -> None:
        """Take every record of one customer out (they were sent)."""
        with self._lock:
            if self._db is None:
                return
            self._holds.clear()
            self.count -= self._db.execute("DELETE FROM spool WHERE ds = ? AND customer = ?", (ds, customer)).rowcount

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

    def by_customer(self) -> t.Generator[tuple[str, str, list[tuple[str, Record]]], None, None]:
        """(data source, customer, [(stream, record)] in arrival order), customer by customer, streamed."""
        if self._db is None:
            return
        cursor = self._db.execute("SELECT ds, customer, stream, record FROM spool ORDER BY ds, customer, seq")
        for (ds, customer), rows in itertools.groupby(cursor, key=lambda row: (row[0], row[1])):
            yield ds, customer, [(row[2], _loads(row[3])) for row in rows]

    def by_stream(self) -> t.Iterator[tuple[str, list[Record]]]:
        """(stream, records in arrival order), stream by stream (for writing them through REST)."""
        if self._db is None:
            return
        for (stream,) in self._db.execute("SELECT DISTINCT stream FROM spool").fetchall():
            rows = self._db.execute("SELECT record FROM spool WHERE stream = ? ORDER BY seq", (stream,))
            yield stream, [_loads(row[0]) for row in rows]

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
            if self._held is not None:
                self._held.close()
                self._held = None


def _loads(text: str) -> t.Any:
    return json.loads(text, parse_float=decimal.Decimal)


def _chunks(items: list[str], size: int) -> t.Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
