"""The local sync memory: what this target last wrote, and what ChartMogul refused.

Per data source, object and external id it keeps the ChartMogul uuid and a hash of
the mapped payload last written, so unchanged records cost no API call and known
objects skip their lookup. It also keeps refused records (to retry next run) and
stream schemas (to rebuild a sink for a retry). It holds no secrets and may be
deleted at any time: the next run rebuilds it without duplicates, because every
write is idempotent by external id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import pathlib
import threading
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from target_chartmogul.encoding import dumps
from target_chartmogul.errors import FatalError
from target_chartmogul.settings import DEFAULT_LEDGER_URL

metadata = sa.MetaData()
synced = sa.Table(
    "tcm_synced_objects",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("object", sa.String(32), primary_key=True),
    sa.Column("external_id", sa.String(1000), primary_key=True),
    sa.Column("uuid", sa.String(100), nullable=True),
    sa.Column("payload_hash", sa.String(64), nullable=True),
    sa.Column("record_hash", sa.String(64), nullable=True),
    sa.Column("stream", sa.String(500), nullable=True),
    sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
)
rejected = sa.Table(
    "tcm_rejected_records",
    metadata,
    sa.Column("stream", sa.String(500), primary_key=True),
    sa.Column("record_key", sa.String(2000), primary_key=True),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("field", sa.String(500), nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False),
)
schemas = sa.Table(
    "tcm_stream_schemas",
    metadata,
    sa.Column("stream", sa.String(500), primary_key=True),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("key_properties", sa.Text, nullable=False),
)


def payload_hash(payload: t.Any) -> str:
    """Stable hash of a mapped payload (key order does not matter)."""
    return hashlib.sha256(dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Entry:
    """What the memory holds for one object."""

    uuid: str | None
    payload_hash: str | None
    stream: str | None
    record_hash: str | None = None  # hash of the incoming record: lets an unchanged one skip mapping


@dataclasses.dataclass(frozen=True)
class RememberedReject:
    """A record refused in an earlier run, waiting to be retried."""

    stream: str
    key: str
    record: dict[str, t.Any]
    reason: str


def _engine_url(url: str) -> str:
    """`postgresql://` means psycopg 3 here (the driver we ship); create sqlite's folder."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
        pathlib.Path(url[len("sqlite:///") :]).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return url


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Ledger:
    """SQLAlchemy-backed memory; writes are buffered and committed by `flush()`.

    Sinks call `flush()` at the end of each batch, before the SDK may emit STATE, so
    the memory never claims a write that ChartMogul did not confirm.
    """

    def __init__(self, url: str = DEFAULT_LEDGER_URL, *, read_only: bool = False) -> None:
        try:
            self.engine = sa.create_engine(_engine_url(url), future=True)
            metadata.create_all(self.engine)
        except Exception as exc:  # a bad URL or an unreachable server: say which setting
            raise FatalError(f"cannot open the sync memory (ledger_url): {type(exc).__name__}: {exc}") from None
        self.read_only = read_only
        self._lock = threading.Lock()
        self._written: dict[tuple[str, str, str], tuple[str | None, str | None, str, str | None]] = {}
        self._deleted: set[tuple[str, str, str]] = set()
        self._rejects: dict[tuple[str, str], dict[str, t.Any] | None] = {}
        self._upsert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        upsert = self._upsert(synced)
        # One statement, compiled once, run with many rows (executemany) at each flush.
        self._upsert_synced = upsert.on_conflict_do_update(
            index_elements=["data_source_uuid", "object", "external_id"],
            set_={c: upsert.excluded[c] for c in ("uuid", "payload_hash", "record_hash", "stream", "synced_at")},
        )
        with self.engine.connect() as conn:  # refused records waiting for a retry: few, so kept in memory
            keys = conn.execute(sa.select(rejected.c.stream, rejected.c.record_key))
            self._remembered = {(row[0], row[1]) for row in keys}

    # Objects --------------------------------------------------------------------------
    def lookup(self, obj: str, data_source_uuid: str, external_ids: t.Iterable[str]) -> dict[str, Entry]:
        """Entries for many external ids of one data source (one query per 500 ids)."""
        ids = list(dict.fromkeys(external_ids))
        found: dict[str, Entry] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(
                    sa.select(
                        synced.c.external_id, synced.c.uuid, synced.c.payload_hash, synced.c.stream, synced.c.record_hash
                    ).where(
                        synced.c.data_source_uuid == data_source_uuid,
                        synced.c.object == obj,
                        synced.c.external_id.in_(ids[start : start + 500]),
                    ),
                )
                found.update({row[0]: Entry(row[1], row[2], row[3], row[4]) for row in rows})
        with self._lock:  # unflushed writes of this run win
            for ext in ids:
                key = (data_source_uuid, obj, ext)
                if key in self._deleted:
                    found.pop(ext, None)
                elif key in self._written:
                    found[ext] = Entry(*self._written[key])
        return found

    def get(self, obj: str, data_source_uuid: str, external_id: str) -> Entry | None:
        """One entry, or None."""
        return self.lookup(obj, data_source_uuid, [external_id]).get(external_id)

    def written(
        self,
        obj: str,
        data_source_uuid: str,
        external_id: str,
        *,
        uuid: str | None,
        payload: str | None,
        stream: str,
        record: str | None = None,
    ) -> None:
        """Note a confirmed write (`payload` and `record` are hashes; None when ChartMogul holds other data)."""
        key = (data_source_uuid, obj, external_id)
        with self._lock:
            self._deleted.discard(key)
            self._written[key] = (uuid, payload, stream, record)

    def deleted(self, obj: str, data_source_uuid: str, external_id: str) -> None:
        """Note that the object is gone from ChartMogul."""
        key = (data_source_uuid, obj, external_id)
        with self._lock:
            self._written.pop(key, None)
            self._deleted.add(key)

    def stream_objects(self, obj: str, stream: str) -> dict[tuple[str, str], str | None]:
        """(data source, external id) -> uuid of every object this stream wrote."""
        self.flush()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(synced.c.data_source_uuid, synced.c.external_id, synced.c.uuid).where(
                    synced.c.object == obj,
                    synced.c.stream == stream,
                ),
            )
            return {(row[0], row[1]): row[2] for row in rows}

    # Refused records -----------------------------------------------------------------
    def remember_reject(
        self, stream: str, key: str, record: dict[str, t.Any], reason: str, field: str | None, status: int | None
    ) -> None:
        """Keep a refused record for the next run (a newer one with the same key replaces it)."""
        with self._lock:
            self._remembered.add((stream, key))
            self._rejects[(stream, key)] = {
                "stream": stream,
                "record_key": key,
                "record": dumps(record),
                "reason": reason,
                "field": field,
                "status": status,
                "rejected_at": _now(),
            }

    def remembers_rejects(self) -> bool:
        """Whether any refused record waits for a retry (most runs: none, so nothing to forget)."""
        return bool(self._remembered)

    def forget_reject(self, stream: str, key: str) -> None:
        """A newer record with this key arrived, or it landed: drop the remembered one."""
        with self._lock:
            if (stream, key) in self._remembered:
                self._remembered.discard((stream, key))
                self._rejects[(stream, key)] = None

    def remembered_rejects(self) -> list[RememberedReject]:
        """Every refused record waiting for a retry (as of the last flush)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(rejected.c.stream, rejected.c.record_key, rejected.c.record, rejected.c.reason)
            )
            return [
                RememberedReject(row[0], row[1], json.loads(row[2], parse_float=decimal.Decimal), row[3])
                for row in rows
            ]

    # Schemas -------------------------------------------------------------------------
    def save_schema(self, stream: str, schema: dict[str, t.Any], key_properties: t.Sequence[str]) -> None:
        """Keep a stream's schema, so its remembered rejects can be retried without the tap."""
        if self.read_only:
            return
        row = {"stream": stream, "schema": dumps(schema), "key_properties": dumps(list(key_properties))}
        stmt = self._upsert(schemas).values(**row)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["stream"], set_=row))

    def schema(self, stream: str) -> tuple[dict[str, t.Any], list[str]] | None:
        """A saved schema and key properties."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(schemas.c.schema, schemas.c.key_properties).where(schemas.c.stream == stream)
            ).first()
        return (json.loads(row[0]), json.loads(row[1])) if row else None

    # Commit ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit buffered changes in one transaction."""
        with self._lock:
            written, self._written = self._written, {}
            deleted, self._deleted = self._deleted, set()
            rejects, self._rejects = self._rejects, {}
        if self.read_only or not (written or deleted or rejects):
            return
        now = _now()
        with self.engine.begin() as conn:
            for ds, obj, ext in deleted:
                conn.execute(
                    sa.delete(synced).where(
                        synced.c.data_source_uuid == ds, synced.c.object == obj, synced.c.external_id == ext
                    )
                )
            rows = [
                {
                    "data_source_uuid": ds,
                    "object": obj,
                    "external_id": ext,
                    "uuid": uuid,
                    "payload_hash": digest,
                    "record_hash": record,
                    "stream": stream,
                    "synced_at": now,
                }
                for (ds, obj, ext), (uuid, digest, stream, record) in written.items()
            ]
            if rows:
                conn.execute(self._upsert_synced, rows)
            for (stream, key), row in rejects.items():
                conn.execute(sa.delete(rejected).where(rejected.c.stream == stream, rejected.c.record_key == key))
                if row is not None:
                    conn.execute(sa.insert(rejected).values(**row))

    def close(self) -> None:
        """Flush and release connections."""
        self.flush()
        self.engine.dispose()
