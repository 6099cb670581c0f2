"""The local sync memory: what this target last wrote, and what ChartMogul refused.

Per data source, object and external id it keeps the ChartMogul uuid and a hash of
the mapped payload last written, so unchanged records cost no API call and known
objects skip their lookup. It also keeps refused records (to retry next run) and
stream schemas (to rebuild a sink for a retry). It holds no secrets and may be
deleted at any time: the next run rebuilds it without duplicates, because every
write is idempotent by external id.

Its tables carry a schema version (`tcm_schema`), so a memory written by an older
release is migrated forward when it is opened instead of failing on a missing column;
a memory written by a newer release stops the run with one clear line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import importlib.util
import json
import logging
import pathlib
import threading
import typing as t

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from target_chartmogul.config.settings import DEFAULT_LEDGER_URL
from target_chartmogul.errors import FatalError
from target_chartmogul.values.encoding import dumps

LOGGER = logging.getLogger("target_chartmogul.memory.ledger")

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
    sa.Column("tags", sa.Text, nullable=True),  # JSON list of the customer tags the loader set; NULL = unknown
    sa.Column("parent", sa.String(1000), nullable=True),  # a line item's invoice (external id)
    sa.Column("status", sa.String(32), nullable=True),  # an invoice's status last applied (voided, written_off)
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
replacements = sa.Table(  # invoices being replaced: the new content, kept until the replacement is done
    "tcm_invoice_replacements",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("external_id", sa.String(1000), primary_key=True),
    sa.Column("customer_uuid", sa.String(100), nullable=False),
    sa.Column("invoice", sa.Text, nullable=False),  # the import body (JSON), transactions included
    sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(32), nullable=True),  # voided / written_off, set after the import; NULL: none
)
bulk_imports = sa.Table(  # bulk imports submitted and not yet recorded: polled again by the next run
    "tcm_bulk_imports",
    metadata,
    sa.Column("local_id", sa.String(64), primary_key=True),
    sa.Column("data_source_uuid", sa.String(100), nullable=False),
    sa.Column("import_id", sa.String(100), nullable=True),  # NULL: sent, ChartMogul's answer not yet read
    sa.Column("entries", sa.Text, nullable=False),  # JSON: what each record brought and what to remember
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
)
facts = sa.Table(  # what the loader learnt of ChartMogul's behaviour, per data source (bulk_customer_attributes)
    "tcm_facts",
    metadata,
    sa.Column("data_source_uuid", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("learnt_at", sa.DateTime(timezone=True), nullable=False),
)
version_table = sa.Table(  # one row: the schema version below, stamped when the memory is created or migrated
    "tcm_schema",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)


# Schema versions -------------------------------------------------------------------------
# 1: the 0.1.0 format.  2: + tcm_synced_objects.record_hash.  3: + tcm_synced_objects.tags.
# 4: + tcm_invoice_replacements, tcm_synced_objects.parent.  5: + tcm_bulk_imports.
# 6: + tcm_invoice_replacements.status, tcm_synced_objects.status.  7: + tcm_facts.
# Each step is written against the columns as they were at its version (never against
# `synced` above, which moves on), only adds nullable columns, and is idempotent, so a
# half-known memory (a table dropped by hand, a stamp lost) is brought forward too.


def _add_column(conn: sa.Connection, table: str, column: sa.Column[t.Any]) -> None:
    """`ALTER TABLE ... ADD COLUMN` unless present: keeps every row, cheap on SQLite and PostgreSQL."""
    if column.name in {c["name"] for c in sa.inspect(conn).get_columns(table)}:
        return
    sa.Table(table, sa.MetaData(), column)  # CreateColumn compiles a column bound to a table
    spec = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {conn.dialect.identifier_preparer.quote(table)} ADD COLUMN {spec}")


def _to_2(conn: sa.Connection) -> None:
    """A hash of the incoming record, so an unchanged one skips mapping (04309b3)."""
    _add_column(conn, "tcm_synced_objects", sa.Column("record_hash", sa.String(64), nullable=True))


def _to_3(conn: sa.Connection) -> None:
    """The customer tags the loader set (JSON list), so it can tell its own tags from others'."""
    _add_column(conn, "tcm_synced_objects", sa.Column("tags", sa.Text, nullable=True))


def _to_4(conn: sa.Connection) -> None:
    """Invoice replacements in progress (a run that died between delete and re-import is repaired), and
    the invoice of each line item (so a line deleted in the source corrects its invoice).
    """
    sa.Table(
        "tcm_invoice_replacements",
        sa.MetaData(),
        sa.Column("data_source_uuid", sa.String(100), primary_key=True),
        sa.Column("external_id", sa.String(1000), primary_key=True),
        sa.Column("customer_uuid", sa.String(100), nullable=False),
        sa.Column("invoice", sa.Text, nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    ).create(conn, checkfirst=True)
    _add_column(conn, "tcm_synced_objects", sa.Column("parent", sa.String(1000), nullable=True))


def _to_5(conn: sa.Connection) -> None:
    """Bulk imports in flight, so a run that died while one was processing polls it instead of sending it again."""
    sa.Table(
        "tcm_bulk_imports",
        sa.MetaData(),
        sa.Column("local_id", sa.String(64), primary_key=True),
        sa.Column("data_source_uuid", sa.String(100), nullable=False),
        sa.Column("import_id", sa.String(100), nullable=True),
        sa.Column("entries", sa.Text, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    ).create(conn, checkfirst=True)


def _to_6(conn: sa.Connection) -> None:
    """The status (voided, written_off) an invoice replacement must set after its import, so a repair keeps it;
    and each invoice's status last applied, so a replacement sets it again and an applied one is not sent twice.
    """
    _add_column(conn, "tcm_invoice_replacements", sa.Column("status", sa.String(32), nullable=True))
    _add_column(conn, "tcm_synced_objects", sa.Column("status", sa.String(32), nullable=True))


def _to_7(conn: sa.Connection) -> None:
    """What the loader learnt of ChartMogul per data source (whether a bulk body's customer attributes are kept), so
    it is found out once, not in every run.
    """
    sa.Table(
        "tcm_facts",
        sa.MetaData(),
        sa.Column("data_source_uuid", sa.String(100), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("learnt_at", sa.DateTime(timezone=True), nullable=False),
    ).create(conn, checkfirst=True)


MIGRATIONS: dict[int, t.Callable[[sa.Connection], None]] = {  # version reached -> step
    2: _to_2, 3: _to_3, 4: _to_4, 5: _to_5, 6: _to_6, 7: _to_7,
}
SCHEMA_VERSION = max(MIGRATIONS)
_PG_LOCK = 0x7463_6D5F_6C65_6467  # "tcm_ledg": one advisory lock serialises opening across processes


def _found_schema(conn: sa.Connection) -> tuple[int | None, set[str]]:
    """The memory's schema version (None: it holds none of our tables) and the tables it lacks."""
    present = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
    missing = set(metadata.tables) - present
    if not present:
        return None, missing
    if version_table.name in present:
        stamped = conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar()
        if stamped is not None:
            return int(stamped), missing
    if synced.name in present:  # written before schema versions: tell 0.1.0 from 04309b3 by the column
        columns = {c["name"] for c in sa.inspect(conn).get_columns(synced.name)}
        return (2 if "record_hash" in columns else 1), missing
    return 1, missing  # only tables that never changed: any version fits, the steps are idempotent


def _check_known(version: int | None, where: str) -> None:
    """Refuse a memory from a newer release: guessing at its columns could lose what it remembers."""
    if version is not None and version > SCHEMA_VERSION:
        raise FatalError(
            f"the sync memory at {where} was written by a newer target-chartmogul (schema {version}); "
            f"this version understands up to {SCHEMA_VERSION}"
        )


def _lock_schema(conn: sa.Connection) -> None:
    """Start the one transaction of a migration, holding off other processes opening the same memory.

    pysqlite runs DDL outside any transaction unless one was begun explicitly; BEGIN IMMEDIATE
    makes the ALTERs roll back with the rest and takes the write lock up front.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    elif conn.dialect.name == "postgresql":  # DDL is transactional there; the lock only orders processes
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK)))


def _prepare_schema(engine: sa.Engine, where: str) -> None:
    """Create, or migrate to, the current schema; a memory already current costs two reads."""
    with engine.connect() as conn:
        version, missing = _found_schema(conn)
    _check_known(version, where)
    if version == SCHEMA_VERSION and not missing:
        return
    with engine.connect() as conn:
        _lock_schema(conn)
        version, missing = _found_schema(conn)  # again under the lock: another process may have done it
        _check_known(version, where)
        if missing:
            metadata.create_all(conn, tables=[metadata.tables[name] for name in sorted(missing)])
        start = version
        if version is not None and version < SCHEMA_VERSION:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
        if version != SCHEMA_VERSION:
            conn.execute(sa.delete(version_table))
            conn.execute(sa.insert(version_table).values(version=SCHEMA_VERSION))
        conn.commit()
    if start is not None and start < SCHEMA_VERSION:
        LOGGER.info(
            "Sync memory at %s migrated from schema %d to %d (tables or columns added; every remembered row kept)",
            where,
            start,
            SCHEMA_VERSION,
        )


class Digest(str):
    """A payload's hash taken already (before the payload changed), which `payload_hash` passes through."""


def payload_hash(payload: t.Any) -> str:
    """Stable hash of a mapped payload (key order does not matter)."""
    if isinstance(payload, Digest):
        return payload
    return hashlib.sha256(dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class Entry:
    """What the memory holds for one object."""

    uuid: str | None
    payload_hash: str | None
    stream: str | None
    record_hash: str | None = None  # hash of the incoming record: lets an unchanged one skip mapping
    tags: tuple[str, ...] | None = None  # customer tags the loader set from the record; None = unknown
    parent: str | None = None  # a line item's invoice (external id)
    status: str | None = None  # an invoice's status last applied (voided, written_off); None: none, or unknown


@dataclasses.dataclass(frozen=True)
class RememberedReject:
    """A record refused in an earlier run, waiting to be retried."""

    stream: str
    key: str
    record: dict[str, t.Any]
    reason: str


def _require_psycopg() -> None:
    """The PostgreSQL driver (psycopg) comes with the `postgres` extra only: say so, not `No module named`."""
    if importlib.util.find_spec("psycopg") is None:
        msg = (
            "ledger_url is a postgresql:// URL, which needs the PostgreSQL driver: "
            "pip install 'target-chartmogul[postgres]' (or use the default sqlite:/// ledger_url)"
        )
        raise FatalError(msg)


def _engine_url(url: str) -> sa.URL:
    """`postgresql://` means psycopg 3 here (the `postgres` extra); create sqlite's folder."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        _require_psycopg()
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        if parsed.query.get("uri"):  # a file: URI names its own options; leave it as given
            return parsed
        path = pathlib.Path(parsed.database).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return parsed.set(database=str(path))
    return parsed


def state_dir(ledger_url: str, rejects_path: str | pathlib.Path) -> pathlib.Path:
    """Where a run keeps files beside the sync memory (the bulk spool): the folder of a SQLite sync memory, else the
    folder of the rejects file.
    """
    parsed = make_url(ledger_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.query.get("uri"):
        return pathlib.Path(parsed.database).expanduser().parent
    return pathlib.Path(rejects_path).expanduser().parent


def _tags(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(json.loads(text))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


_Key = tuple[str, str, str]  # (data source, object, external id)
_Written = tuple[str | None, str | None, str, str | None, tuple[str, ...] | None, str | None]  # Entry's fields


# Deletes and the reject insert: one statement each, run with many rows (executemany) at each flush.
_DELETE_SYNCED = sa.delete(synced).where(
    synced.c.data_source_uuid == sa.bindparam("b_ds"),
    synced.c.object == sa.bindparam("b_obj"),
    synced.c.external_id == sa.bindparam("b_ext"),
)
_DELETE_REJECT = sa.delete(rejected).where(
    rejected.c.stream == sa.bindparam("b_stream"), rejected.c.record_key == sa.bindparam("b_key")
)
_INSERT_REJECT = sa.insert(rejected)
# An invoice's status is set apart from `written` (which leaves it as it is), after the row's upsert.
_SET_STATUS = (
    sa.update(synced)
    .where(synced.c.data_source_uuid == sa.bindparam("b_ds"), synced.c.object == sa.bindparam("b_obj"),
           synced.c.external_id == sa.bindparam("b_ext"))
    .values(status=sa.bindparam("b_status"))
)


def _open_engine(url: str) -> sa.Engine:
    """An engine on a current schema; a bad URL or an unreachable server is a FatalError naming the setting."""
    engine: sa.Engine | None = None
    try:
        where = make_url(url).render_as_string(hide_password=True)
        engine = sa.create_engine(_engine_url(url), future=True)
        _prepare_schema(engine, where)
    except FatalError:
        if engine is not None:
            engine.dispose()
        raise
    except Exception as exc:  # a bad URL or an unreachable server: say which setting
        if engine is not None:
            engine.dispose()
        raise FatalError(f"cannot open the sync memory (ledger_url): {type(exc).__name__}: {exc}") from None
    return engine


def _written_row(key: _Key, value: _Written, now: dt.datetime) -> dict[str, t.Any]:
    """One `tcm_synced_objects` row for a confirmed write."""
    (ds, obj, ext), (uuid, digest, stream, record, tags, parent) = key, value
    return {
        "data_source_uuid": ds,
        "object": obj,
        "external_id": ext,
        "uuid": uuid,
        "payload_hash": digest,
        "record_hash": record,
        "stream": stream,
        "synced_at": now,
        "tags": None if tags is None else dumps(list(tags)),
        "parent": parent,
    }


def _adopted_row(key: _Key, uuid: str, now: dt.datetime) -> dict[str, t.Any]:
    """One `tcm_synced_objects` row for an object found in ChartMogul: its uuid only."""
    ds, obj, ext = key
    return {
        "data_source_uuid": ds,
        "object": obj,
        "external_id": ext,
        "uuid": uuid,
        "payload_hash": None,
        "record_hash": None,
        "stream": None,
        "synced_at": now,
        "tags": None,
        "parent": None,
    }


class Ledger:
    """SQLAlchemy-backed memory; writes are buffered and committed by `flush()`.

    Sinks call `flush()` at the end of each batch, before the SDK may emit STATE, so
    the memory never claims a write that ChartMogul did not confirm.
    """

    def __init__(self, url: str = DEFAULT_LEDGER_URL, *, read_only: bool = False) -> None:
        """Open the memory, creating it or migrating an older one to the current schema.

        `read_only` (dry run) keeps this run's writes out of the memory, but an older
        schema is still migrated: the steps only add empty columns and lose nothing,
        and the code below cannot read the old layout.
        """
        self.engine = _open_engine(url)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._written: dict[_Key, _Written] = {}
        self._deleted: set[_Key] = set()
        self._adopted: dict[_Key, str] = {}
        self._statuses: dict[_Key, str | None] = {}  # invoice statuses applied, written after the rows
        self._any_marks = self._marks_checked = False  # invoice replacements pending (looked up once)
        self._holding: set[tuple[str, str]] = set()  # (object, data source) known to hold something
        self._rejects: dict[tuple[str, str], dict[str, t.Any] | None] = {}
        self._upsert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        upsert = self._upsert(synced)
        # One statement, compiled once, run with many rows (executemany) at each flush.
        self._upsert_synced = upsert.on_conflict_do_update(
            index_elements=["data_source_uuid", "object", "external_id"],
            set_={
                c: upsert.excluded[c]
                for c in ("uuid", "payload_hash", "record_hash", "stream", "synced_at", "tags", "parent")
            },
        )
        # Adopted objects never replace a row: whatever the memory already knows is better.
        self._insert_adopted = self._upsert(synced).on_conflict_do_nothing(
            index_elements=["data_source_uuid", "object", "external_id"]
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
                        synced.c.external_id,
                        synced.c.uuid,
                        synced.c.payload_hash,
                        synced.c.stream,
                        synced.c.record_hash,
                        synced.c.tags,
                        synced.c.parent,
                        synced.c.status,
                    ).where(
                        synced.c.data_source_uuid == data_source_uuid,
                        synced.c.object == obj,
                        synced.c.external_id.in_(ids[start : start + 500]),
                    ),
                )
                found.update({row[0]: Entry(row[1], row[2], row[3], row[4], _tags(row[5]), row[6], row[7])
                              for row in rows})
        with self._lock:  # unflushed writes of this run win; unflushed adoptions only fill gaps
            for ext in ids:
                key = (data_source_uuid, obj, ext)
                if key in self._deleted:
                    found.pop(ext, None)
                elif key in self._written:  # `written` leaves the status as it was
                    before = found.get(ext)
                    found[ext] = Entry(*self._written[key], status=before.status if before is not None else None)
                elif key in self._adopted and ext not in found:
                    found[ext] = Entry(self._adopted[key], None, None)
                if ext in found and key in self._statuses:
                    found[ext] = dataclasses.replace(found[ext], status=self._statuses[key])
        return found

    def get(self, obj: str, data_source_uuid: str, external_id: str) -> Entry | None:
        """One entry, or None."""
        return self.lookup(obj, data_source_uuid, [external_id]).get(external_id)

    def holds_any(self, obj: str, data_source_uuid: str) -> bool:
        """Whether the memory knows any object of this kind in this data source (written or adopted).

        Cheap (one LIMIT 1 query on the primary key's prefix), and a True answer is kept for
        the run; unflushed deletes are ignored, as the question is whether it ever knew one.
        """
        with self._lock:
            if (obj, data_source_uuid) in self._holding:
                return True
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(synced.c.external_id)
                .where(synced.c.data_source_uuid == data_source_uuid, synced.c.object == obj)
                .limit(1)
            ).first()
        if row is None:
            return False
        with self._lock:
            self._holding.add((obj, data_source_uuid))
        return True

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
        tags: t.Sequence[str] | None = None,
        parent: str | None = None,
    ) -> None:
        """Note a confirmed write (`payload` and `record` are hashes; None when ChartMogul holds other data).

        `tags` are the customer tags the loader set from the record (kept as given, order and
        case included); None when unknown. `parent` is a line item's invoice.
        """
        if isinstance(tags, str):
            raise TypeError("tags is a sequence of tag names, not one string")
        key = (data_source_uuid, obj, external_id)
        with self._lock:
            if key in self._deleted:  # deleted earlier in this run: the row written again has no status
                self._statuses.setdefault(key, None)
            self._deleted.discard(key)
            self._adopted.pop(key, None)
            self._written[key] = (uuid, payload, stream, record, None if tags is None else tuple(tags), parent)
            self._holding.add((obj, data_source_uuid))

    def set_status(self, obj: str, data_source_uuid: str, external_id: str, status: str | None) -> None:
        """Note the status (voided, written_off; None: none) ChartMogul's invoice now has, as this target applied it.

        Kept apart from `written`, which leaves it as it is, so every other writer of the row keeps it;
        written at the next `flush()` after the row itself (a row never written stays without one).
        """
        with self._lock:
            self._statuses[(data_source_uuid, obj, external_id)] = status

    def adopt(self, obj: str, data_source_uuid: str, found: t.Mapping[str, str]) -> None:
        """Note objects found in ChartMogul (external id -> uuid) that this run did not write.

        They are remembered with their uuid only (no hashes, stream or tags), so a later
        record skips its lookup but is still sent. Anything the memory already holds, or that
        this run wrote or deleted, is left as it is; the rows land at the next `flush()`.
        """
        with self._lock:
            for external_id, uuid in found.items():
                key = (data_source_uuid, obj, external_id)
                if key not in self._written and key not in self._deleted:
                    self._adopted.setdefault(key, uuid)
            if found:
                self._holding.add((obj, data_source_uuid))

    def deleted(self, obj: str, data_source_uuid: str, external_id: str) -> None:
        """Note that the object is gone from ChartMogul."""
        key = (data_source_uuid, obj, external_id)
        with self._lock:
            self._written.pop(key, None)
            self._adopted.pop(key, None)
            self._deleted.add(key)
            self._statuses.pop(key, None)

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

    # Invoice replacements ------------------------------------------------------------
    def mark_replacement(
        self, data_source_uuid: str, external_id: str, customer_uuid: str, invoice: t.Any, status: str | None = None
    ) -> None:
        """Note, durably and at once, that an invoice is about to be deleted and imported again as `invoice`
        (then set to `status`, voided or written_off, when given).

        Committed before the delete, so a run that dies between the delete and the new import
        leaves what the next run needs to finish the job (even if the record does not come again).
        """
        if self.read_only:
            return
        self._any_marks = self._marks_checked = True
        row = {"data_source_uuid": data_source_uuid, "external_id": external_id, "customer_uuid": customer_uuid,
               "invoice": dumps(invoice), "marked_at": _now(), "status": status}
        stmt = self._upsert(replacements).values(**row)
        with self.engine.begin() as conn:
            conn.execute(stmt.on_conflict_do_update(index_elements=["data_source_uuid", "external_id"], set_=row))

    def clear_replacement(self, data_source_uuid: str, external_id: str) -> None:
        """The replacement is done (the new invoice and its transactions are in ChartMogul)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(replacements).where(
                    replacements.c.data_source_uuid == data_source_uuid, replacements.c.external_id == external_id
                )
            )

    def pending_replacement(self, data_source_uuid: str, external_id: str) -> dict[str, t.Any] | None:
        """The content an unfinished replacement of this invoice was to import, if one is pending."""
        if not self._marks_checked:
            self._any_marks = bool(self.pending_replacements())
            self._marks_checked = True
        if not self._any_marks:  # the usual case: one query per run, not one per invoice
            return None
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(replacements.c.invoice).where(
                    replacements.c.data_source_uuid == data_source_uuid, replacements.c.external_id == external_id
                )
            ).first()
        return None if row is None else t.cast("dict[str, t.Any]", json.loads(row[0], parse_float=decimal.Decimal))

    def pending_replacements(self) -> list[tuple[str, str, str, dict[str, t.Any], str | None]]:
        """(data source, external id, customer uuid, invoice body, status to set) of every replacement not finished."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(replacements.c.data_source_uuid, replacements.c.external_id, replacements.c.customer_uuid,
                          replacements.c.invoice, replacements.c.status)
            )
            return [(row[0], row[1], row[2], json.loads(row[3], parse_float=decimal.Decimal), row[4]) for row in rows]

    # Bulk imports in flight -------------------------------------------------------------
    def bulk_import_sending(self, local_id: str, data_source_uuid: str, entries: t.Any) -> None:
        """Note, durably and before the request, an import about to be sent (committed at once)."""
        if self.read_only:
            return
        row = {"local_id": local_id, "data_source_uuid": data_source_uuid, "import_id": None,
               "entries": dumps(entries), "submitted_at": _now()}
        with self.engine.begin() as conn:
            conn.execute(sa.insert(bulk_imports).values(**row))

    def bulk_import_sent(self, local_id: str, import_id: str) -> None:
        """ChartMogul answered with the import's id: from now on a rerun polls it (committed at once)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.update(bulk_imports).where(bulk_imports.c.local_id == local_id).values(import_id=import_id))

    def bulk_import_done(self, local_id: str) -> None:
        """Its outcome is in the memory (flushed first): forget it."""
        if self.read_only:
            return
        self.flush()
        with self.engine.begin() as conn:
            conn.execute(sa.delete(bulk_imports).where(bulk_imports.c.local_id == local_id))

    def bulk_imports_in_flight(self) -> list[tuple[str, str, str | None, list[t.Any]]]:
        """(local id, data source, import id or None, entries) of every import whose outcome is not recorded."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(bulk_imports.c.local_id, bulk_imports.c.data_source_uuid, bulk_imports.c.import_id,
                          bulk_imports.c.entries).order_by(bulk_imports.c.submitted_at)
            )
            return [(row[0], row[1], row[2], json.loads(row[3], parse_float=decimal.Decimal)) for row in rows]

    # Facts learnt of ChartMogul ---------------------------------------------------------
    def fact(self, data_source_uuid: str, name: str) -> str | None:
        """A fact learnt in an earlier run (or this one), or None."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(facts.c.value).where(facts.c.data_source_uuid == data_source_uuid,
                                                               facts.c.name == name)).scalar()

    def set_fact(self, data_source_uuid: str, name: str, value: str) -> None:
        """Remember a fact (committed at once; a dry run remembers nothing)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(facts).where(facts.c.data_source_uuid == data_source_uuid, facts.c.name == name))
            conn.execute(sa.insert(facts).values(data_source_uuid=data_source_uuid, name=name, value=value,
                                                 learnt_at=_now()))

    def forget_fact(self, data_source_uuid: str, name: str) -> None:
        """Drop a fact (committed at once)."""
        if self.read_only:
            return
        with self.engine.begin() as conn:
            conn.execute(sa.delete(facts).where(facts.c.data_source_uuid == data_source_uuid, facts.c.name == name))

    # Commit ----------------------------------------------------------------------------
    def flush(self) -> None:
        """Commit buffered changes in one transaction."""
        with self._lock:
            written, self._written = self._written, {}
            deleted, self._deleted = self._deleted, set()
            adopted, self._adopted = self._adopted, {}
            rejects, self._rejects = self._rejects, {}
            statuses, self._statuses = self._statuses, {}
        if self.read_only or not (written or deleted or adopted or rejects or statuses):
            return
        now = _now()
        with self.engine.begin() as conn:
            if deleted:
                conn.execute(_DELETE_SYNCED, [{"b_ds": ds, "b_obj": obj, "b_ext": ext} for ds, obj, ext in deleted])
            if written:
                conn.execute(self._upsert_synced, [_written_row(key, value, now) for key, value in written.items()])
            if adopted:  # after the writes, so a row written in this batch is never replaced
                conn.execute(self._insert_adopted, [_adopted_row(key, uuid, now) for key, uuid in adopted.items()])
            if statuses:  # after the rows they belong to
                conn.execute(_SET_STATUS, [{"b_ds": ds, "b_obj": obj, "b_ext": ext, "b_status": status}
                                           for (ds, obj, ext), status in statuses.items()])
            if rejects:  # a newer reject replaces the remembered one; a forgotten one only goes
                conn.execute(_DELETE_REJECT, [{"b_stream": stream, "b_key": key} for stream, key in rejects])
                replacements = [row for row in rejects.values() if row is not None]
                if replacements:
                    conn.execute(_INSERT_REJECT, replacements)

    def close(self) -> None:
        """Flush and release connections."""
        self.flush()
        self.engine.dispose()
