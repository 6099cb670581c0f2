"""The objects this target wrote or found in ChartMogul (`tcm_synced_objects`), and what the memory can vouch for.

Per data source, object and external id a row keeps ChartMogul's uuid and the hashes of the payload
and record last written (entries.py), so an unchanged record costs no call and a known object skips
its lookup. This run's changes wait in `Pending` (pending.py decides which wins) until `take` hands
them to the ledger's flush, which commits them in one transaction.

The memory vouches for (object, data source) when it holds some of it and no upgrade left it
unproven (`tcm_unproven`, migrations.unprove_hashes). Where it cannot, memory.holdings lists the
data source once, and the listing proves it again (`proven`): from then on every row counts as
found in ChartMogul (its uuid), and its content is compared when its record comes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import typing as t

import sqlalchemy as sa

from target_chartmogul.memory.database import upsert_for
from target_chartmogul.memory.entries import Entry
from target_chartmogul.memory.pending import Changes, Key, Pending, Written
from target_chartmogul.memory.schema import synced, unproven
from target_chartmogul.values.encoding import dumps

_KEY = ["data_source_uuid", "object", "external_id"]
_WRITTEN = ("uuid", "payload_hash", "record_hash", "stream", "synced_at", "tags", "parent")  # all but the status
_ROW = (synced.c.external_id, synced.c.uuid, synced.c.payload_hash, synced.c.stream, synced.c.record_hash,
        synced.c.tags, synced.c.parent, synced.c.status)


def _by_key(table: sa.Table) -> sa.ColumnElement[bool]:
    """The row of one key, bound by executemany parameters b_ds, b_obj, b_ext."""
    return sa.and_(table.c.data_source_uuid == sa.bindparam("b_ds"), table.c.object == sa.bindparam("b_obj"),
                   *([table.c.external_id == sa.bindparam("b_ext")] if "external_id" in table.c else []))


_DELETE = sa.delete(synced).where(_by_key(synced))
_SET_STATUS = sa.update(synced).where(_by_key(synced)).values(status=sa.bindparam("b_status"))
_VOUCHED = sa.delete(unproven).where(_by_key(unproven))


def _entry(row: t.Sequence[t.Any]) -> Entry:
    """An entry from a row of `_ROW`."""
    tags = None if row[5] is None else tuple(json.loads(row[5]))
    return Entry(row[1], row[2], row[3], row[4], tags, row[6], row[7])


def _written_row(key: Key, value: Written, now: dt.datetime) -> dict[str, t.Any]:
    """One `tcm_synced_objects` row for a confirmed write (its status is set apart)."""
    (ds, obj, ext), (uuid, digest, stream, record, tags, parent) = key, value
    return {"data_source_uuid": ds, "object": obj, "external_id": ext, "uuid": uuid, "payload_hash": digest,
            "record_hash": record, "stream": stream, "synced_at": now,
            "tags": None if tags is None else dumps(list(tags)), "parent": parent}


def _adopted_row(key: Key, uuid: str, now: dt.datetime) -> dict[str, t.Any]:
    """One `tcm_synced_objects` row for an object found in ChartMogul: its uuid only."""
    ds, obj, ext = key
    return {"data_source_uuid": ds, "object": obj, "external_id": ext, "uuid": uuid, "payload_hash": None,
            "record_hash": None, "stream": None, "synced_at": now, "tags": None, "parent": None}


@dataclasses.dataclass
class Taken:
    """What one flush commits of the objects: the pending changes and the (object, data source) listed again."""

    changes: Changes
    proven: set[tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.changes or self.proven)


class Objects:
    """Remembered objects with this run's changes buffered (thread-safe)."""

    def __init__(self, engine: sa.Engine) -> None:
        """Statements compiled once (run with many rows at each flush); the unproven marks read once."""
        self.engine = engine
        self._lock = threading.Lock()
        self._pending: dict[Key, Pending] = {}
        self._holding: set[tuple[str, str]] = set()  # (object, data source) known to hold something
        self._proven: set[tuple[str, str]] = set()  # listed in this run: unmarked at the next flush
        insert = upsert_for(engine)
        written, adopted = insert(synced), insert(synced)
        self._upsert = written.on_conflict_do_update(index_elements=_KEY,
                                                     set_={c: written.excluded[c] for c in _WRITTEN})
        # an adoption fills a gap only: a new row, or the uuid of a row that has none (a bulk import's answer names none)
        self._adopt = adopted.on_conflict_do_update(index_elements=_KEY, set_={"uuid": adopted.excluded.uuid},
                                                    where=synced.c.uuid.is_(None))
        with engine.connect() as conn:
            self._unproven = {(row[0], row[1]) for row in conn.execute(sa.select(unproven.c.object,
                                                                                 unproven.c.data_source_uuid))}

    # Reading ---------------------------------------------------------------------------
    def lookup(self, obj: str, data_source_uuid: str, external_ids: t.Iterable[str]) -> dict[str, Entry]:
        """Entries for many external ids of one data source (one query per 500 ids), this run's changes applied."""
        ids = list(dict.fromkeys(external_ids))
        with self._lock:  # copied first: a flush meanwhile is then applied twice, which changes nothing
            pending = {ext: dataclasses.replace(change) for ext in ids
                       if (change := self._pending.get((data_source_uuid, obj, ext))) is not None}
        stored: dict[str, Entry] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(sa.select(*_ROW).where(synced.c.data_source_uuid == data_source_uuid,
                                                           synced.c.object == obj,
                                                           synced.c.external_id.in_(ids[start:start + 500])))
                stored.update({row[0]: _entry(row) for row in rows})
        found: dict[str, Entry] = {}
        for ext in ids:
            entry = pending[ext].over(stored.get(ext)) if ext in pending else stored.get(ext)
            if entry is not None:
                found[ext] = entry
        return found

    def holds_any(self, obj: str, data_source_uuid: str) -> bool:
        """Whether the memory knows any object of this kind in this data source (written or adopted).

        Cheap (one LIMIT 1 query on the primary key's prefix), and a True answer is kept for
        the run; unflushed deletes are ignored, as the question is whether it ever knew one.
        """
        with self._lock:
            if (obj, data_source_uuid) in self._holding:
                return True
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(synced.c.external_id)
                               .where(synced.c.data_source_uuid == data_source_uuid, synced.c.object == obj)
                               .limit(1)).first()
        if row is None:
            return False
        with self._lock:
            self._holding.add((obj, data_source_uuid))
        return True

    def unproven(self, obj: str, data_source_uuid: str) -> bool:
        """Whether an upgrade left these rows without hashes it trusts and no listing of this run proved them since."""
        with self._lock:
            return (obj, data_source_uuid) in self._unproven

    def stream_objects(self, obj: str, stream: str) -> dict[tuple[str, str], str | None]:
        """(data source, external id) -> uuid of every object this stream wrote (as last flushed)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(synced.c.data_source_uuid, synced.c.external_id, synced.c.uuid)
                                .where(synced.c.object == obj, synced.c.stream == stream))
            return {(row[0], row[1]): row[2] for row in rows}

    # Changes of this run (pending.py decides which wins) ----------------------------------
    def written(self, key: Key, row: Written) -> None:
        """A confirmed write."""
        with self._lock:
            self._pending.setdefault(key, Pending()).write(row)
            self._holding.add((key[1], key[0]))

    def set_status(self, key: Key, status: str | None) -> None:
        """The status this target applied to an invoice."""
        with self._lock:
            self._pending.setdefault(key, Pending()).set_status(status)

    def deleted(self, key: Key) -> None:
        """The object is gone from ChartMogul."""
        with self._lock:
            self._pending.setdefault(key, Pending()).delete()

    def adopt(self, obj: str, data_source_uuid: str, found: t.Mapping[str, str]) -> None:
        """Objects found in ChartMogul (external id -> uuid): they fill gaps only (pending.py)."""
        with self._lock:
            for external_id, uuid in found.items():
                self._pending.setdefault((data_source_uuid, obj, external_id), Pending()).adopt(uuid)
            if found:
                self._holding.add((obj, data_source_uuid))

    def proven(self, obj: str, data_source_uuid: str) -> None:
        """A whole listing of (object, data source) was read in this run: the memory vouches for it again."""
        with self._lock:
            if (obj, data_source_uuid) in self._unproven:
                self._unproven.discard((obj, data_source_uuid))
                self._proven.add((obj, data_source_uuid))

    # Flush -------------------------------------------------------------------------------
    def take(self) -> Taken:
        """Hand over the changes made since the last flush (and forget them here)."""
        with self._lock:
            pending, self._pending = self._pending, {}
            proven, self._proven = self._proven, set()
        return Taken(Changes.of(pending), proven)

    def write(self, conn: sa.Connection, taken: Taken, now: dt.datetime) -> None:
        """Run `taken` in the flush's transaction, in the order `Changes` names."""
        changes = taken.changes
        if changes.deleted:
            conn.execute(_DELETE, [{"b_ds": ds, "b_obj": obj, "b_ext": ext} for ds, obj, ext in changes.deleted])
        if changes.written:
            conn.execute(self._upsert, [_written_row(key, value, now) for key, value in changes.written.items()])
        if changes.adopted:
            conn.execute(self._adopt, [_adopted_row(key, uuid, now) for key, uuid in changes.adopted.items()])
        if changes.statuses:
            conn.execute(_SET_STATUS, [{"b_ds": ds, "b_obj": obj, "b_ext": ext, "b_status": status}
                                       for (ds, obj, ext), status in changes.statuses.items()])
        if taken.proven:
            conn.execute(_VOUCHED, [{"b_ds": ds, "b_obj": obj} for obj, ds in taken.proven])
