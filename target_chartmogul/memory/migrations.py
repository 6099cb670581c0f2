"""The sync memory's schema versions: an older memory is brought forward when it is opened, one step per version.

1: the 0.1.0 format.  2: + tcm_synced_objects.record_hash.  3: + tcm_synced_objects.tags.
4: + tcm_invoice_replacements, tcm_synced_objects.parent.  5: + tcm_bulk_imports.
6: + tcm_invoice_replacements.status, tcm_synced_objects.status.  7: + tcm_facts.
8: + tcm_unproven; the hashes of every earlier release are forgotten (`unprove_hashes`).

Each step is written against the columns as they were at its version (never against `schema`,
which moves on), keeps every row, and is idempotent, so a half-known memory (a table dropped by
hand, a stamp lost) is brought forward too. All steps run in one transaction; a memory from a newer
release stops the run with one line.

A hash is only worth keeping while the code that compares it would compute the same one. A release
that changes what a sink hashes (a fingerprint, a record hash) adds a step that calls `unprove_hashes`:
the uuids stay, each (data source, object) is listed once by the next run and compared, so the
upgrade costs reads, never writes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import typing as t

import sqlalchemy as sa

from target_chartmogul.errors import FatalError
from target_chartmogul.memory.schema import metadata, synced, version_table
from target_chartmogul.values.encoding import dumps

LOGGER = logging.getLogger("target_chartmogul.memory.migrations")


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


def _to_8(conn: sa.Connection) -> None:
    """No earlier release said which format its hashes were taken in, and they changed (0.1.0's customer fingerprint
    lacks `tags_mode`, its invoice fingerprint is of another shape): kept, they can never match again, and every row
    looks changed. So they are forgotten, and what they covered is marked for one listing (`tcm_unproven`).
    """
    sa.Table(
        "tcm_unproven",
        sa.MetaData(),
        sa.Column("data_source_uuid", sa.String(100), primary_key=True),
        sa.Column("object", sa.String(32), primary_key=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
    ).create(conn, checkfirst=True)
    unprove_hashes(conn)


# The tables as `unprove_hashes` reads and writes them (version 8 onwards).
_SYNCED = sa.table("tcm_synced_objects", sa.column("data_source_uuid"), sa.column("object"),
                   sa.column("payload_hash"), sa.column("record_hash"))
_UNPROVEN = sa.table("tcm_unproven", sa.column("data_source_uuid"), sa.column("object"),
                     sa.column("marked_at", sa.DateTime(timezone=True)))  # typed: no driver date adapter
_BULK = sa.table("tcm_bulk_imports", sa.column("local_id"), sa.column("entries"))


def unprove_hashes(conn: sa.Connection) -> None:
    """Forget every payload and record hash (the uuids, streams, tags, parents and statuses stay) and mark each
    (data source, object) the memory holds as unproven: the next run lists it once and compares what it holds with
    each record before writing (memory.holdings), which writes nothing for a row that did not change.

    Bulk imports still in flight carry hashes of the same kind for the rows they will write: forgotten too.
    """
    pairs = sa.select(_SYNCED.c.data_source_uuid, _SYNCED.c.object).distinct()
    marked = {tuple(row) for row in conn.execute(sa.select(_UNPROVEN.c.data_source_uuid, _UNPROVEN.c.object))}
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{"data_source_uuid": ds, "object": obj, "marked_at": now}
            for ds, obj in conn.execute(pairs) if (ds, obj) not in marked]
    if rows:
        conn.execute(sa.insert(_UNPROVEN), rows)
    conn.execute(sa.update(_SYNCED).values(payload_hash=None, record_hash=None))
    for local_id, text in conn.execute(sa.select(_BULK.c.local_id, _BULK.c.entries)).all():
        entries = json.loads(str(text), parse_float=decimal.Decimal)
        for entry in entries:
            for row in entry.get("memory") or []:
                row.update(payload_hash=None, record_hash=None)
        conn.execute(sa.update(_BULK).where(_BULK.c.local_id == local_id).values(entries=dumps(entries)))


MIGRATIONS: dict[int, t.Callable[[sa.Connection], None]] = {  # version reached -> step
    2: _to_2, 3: _to_3, 4: _to_4, 5: _to_5, 6: _to_6, 7: _to_7, 8: _to_8,
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


def prepare_schema(engine: sa.Engine, where: str) -> None:
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
        if version is not None and version < SCHEMA_VERSION:
            for step in range(version + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[step](conn)
        if version != SCHEMA_VERSION:
            conn.execute(sa.delete(version_table))
            conn.execute(sa.insert(version_table).values(version=SCHEMA_VERSION))
        conn.commit()
    if version is not None and version < SCHEMA_VERSION:
        LOGGER.info(
            "Sync memory at %s migrated from schema %d to %d (every remembered row kept; what earlier releases wrote "
            "is compared with ChartMogul's listings once, not written again)",
            where,
            version,
            SCHEMA_VERSION,
        )
