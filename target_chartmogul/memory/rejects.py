"""Records ChartMogul (or the target) refused, kept to be retried next run, and the stream schemas to retry them with.

Refused records wait in `tcm_rejected_records` until a newer record with the same key replaces
or forgets them; they are buffered like the objects and committed by the ledger's flush. Stream
schemas (`tcm_stream_schemas`) are saved at once: a retry rebuilds its sink without the tap.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import threading
import typing as t

import sqlalchemy as sa

from target_chartmogul.memory.database import now, upsert_for
from target_chartmogul.memory.schema import rejected, schemas
from target_chartmogul.values.encoding import dumps

_DELETE = sa.delete(rejected).where(rejected.c.stream == sa.bindparam("b_stream"),
                                    rejected.c.record_key == sa.bindparam("b_key"))
_INSERT = sa.insert(rejected)

Taken = dict[tuple[str, str], "dict[str, t.Any] | None"]  # (stream, key) -> the newer row, or None: forgotten


@dataclasses.dataclass(frozen=True)
class RememberedReject:
    """A record refused in an earlier run, waiting to be retried."""

    stream: str
    key: str
    record: dict[str, t.Any]
    reason: str


class Rejects:
    """Refused records: which wait (known at open, kept current), and this run's changes until the flush."""

    def __init__(self, engine: sa.Engine) -> None:
        """Read the keys of the records waiting for a retry: few, so kept in memory."""
        self.engine = engine
        self._lock = threading.Lock()
        self._changes: Taken = {}
        with engine.connect() as conn:
            keys = conn.execute(sa.select(rejected.c.stream, rejected.c.record_key))
            self._remembered = {(row[0], row[1]) for row in keys}

    def remember(self, stream: str, key: str, record: dict[str, t.Any], reason: str, field: str | None,
                 status: int | None) -> None:
        """Keep a refused record for the next run (a newer one with the same key replaces it)."""
        with self._lock:
            self._remembered.add((stream, key))
            self._changes[(stream, key)] = {"stream": stream, "record_key": key, "record": dumps(record),
                                            "reason": reason, "field": field, "status": status, "rejected_at": now()}

    def any(self) -> bool:
        """Whether any refused record waits for a retry (most runs: none, so nothing to forget)."""
        return bool(self._remembered)

    def forget(self, stream: str, key: str) -> None:
        """A newer record with this key arrived, or it landed: drop the remembered one."""
        with self._lock:
            if (stream, key) in self._remembered:
                self._remembered.discard((stream, key))
                self._changes[(stream, key)] = None

    def remembered(self) -> list[RememberedReject]:
        """Every refused record waiting for a retry (as of the last flush)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(rejected.c.stream, rejected.c.record_key, rejected.c.record,
                                          rejected.c.reason))
            return [RememberedReject(row[0], row[1], json.loads(row[2], parse_float=decimal.Decimal), row[3])
                    for row in rows]

    def take(self) -> Taken:
        """Hand over the changes made since the last flush."""
        with self._lock:
            taken, self._changes = self._changes, {}
        return taken

    @staticmethod
    def write(conn: sa.Connection, taken: Taken, at: dt.datetime) -> None:
        """A newer reject replaces the remembered one; a forgotten one only goes (in the flush's transaction)."""
        if not taken:
            return
        conn.execute(_DELETE, [{"b_stream": stream, "b_key": key} for stream, key in taken])
        rows = [row for row in taken.values() if row is not None]
        if rows:
            conn.execute(_INSERT, rows)


class StreamSchemas:
    """Each stream's schema and key, saved at once (a dry run saves none)."""

    def __init__(self, engine: sa.Engine, *, read_only: bool) -> None:
        self.engine = engine
        self.read_only = read_only
        self._upsert = upsert_for(engine)

    def save(self, stream: str, schema: dict[str, t.Any], key_properties: t.Sequence[str]) -> None:
        """Keep a stream's schema, so its remembered rejects can be retried without the tap."""
        if self.read_only:
            return
        row = {"stream": stream, "schema": dumps(schema), "key_properties": dumps(list(key_properties))}
        stmt = self._upsert(schemas).values(**row)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["stream"], set_=row))

    def get(self, stream: str) -> tuple[dict[str, t.Any], list[str]] | None:
        """A saved schema and key properties."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(schemas.c.schema, schemas.c.key_properties)
                               .where(schemas.c.stream == stream)).first()
        return (json.loads(row[0]), json.loads(row[1])) if row else None
