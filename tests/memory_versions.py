"""Sync memories as earlier releases left them: the tables they created, a memory 0.1.0 really wrote, and a current
memory turned back into the shape of any earlier schema version. Used by the migration and upgrade tests.

`tests/fixtures/memory_0_1_0/` was produced by target-chartmogul 0.1.0 itself (commit d5bd8d3, built in a worktree of
its own with its own virtualenv): its CLI read `input.singer` twice with `config.json` against that commit's fake
ChartMogul API (data source `ds_0a1b2c3d-0010-4000-8000-000000000010`; 5 plans, 40 customers with a `seats` custom
attribute and tags, 80 invoices with two lines each and most with a payment, 20 refunds in their own stream); the
first run created everything, the second was unchanged. `ledger.db` is the SQLite sync memory it left, `fake.json`
what its fake held afterwards (`dump_state`), which `FakeChartMogul.load_state` restores with the same uuids.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import typing as t

import sqlalchemy as sa

MEMORY_0_1_0 = pathlib.Path(__file__).resolve().parent / "fixtures" / "memory_0_1_0"
DS_0_1_0 = "ds_0a1b2c3d-0010-4000-8000-000000000010"

# The tables exactly as target-chartmogul 0.1.0 created them: `metadata.create_all` of
# target_chartmogul/ledger.py at 8063fab (the commit before 04309b3 added record_hash; the
# tables are unchanged since c079b6c), compiled with SQLAlchemy 2.0 for each dialect.
DDL_0_1_0 = {
    "sqlite": [
        """CREATE TABLE tcm_rejected_records (
\tstream VARCHAR(500) NOT NULL,
\trecord_key VARCHAR(2000) NOT NULL,
\trecord TEXT NOT NULL,
\treason TEXT NOT NULL,
\tfield VARCHAR(500),
\tstatus INTEGER,
\trejected_at DATETIME NOT NULL,
\tPRIMARY KEY (stream, record_key)
)""",
        """CREATE TABLE tcm_stream_schemas (
\tstream VARCHAR(500) NOT NULL,
\tschema TEXT NOT NULL,
\tkey_properties TEXT NOT NULL,
\tPRIMARY KEY (stream)
)""",
        """CREATE TABLE tcm_synced_objects (
\tdata_source_uuid VARCHAR(100) NOT NULL,
\tobject VARCHAR(32) NOT NULL,
\texternal_id VARCHAR(1000) NOT NULL,
\tuuid VARCHAR(100),
\tpayload_hash VARCHAR(64),
\tstream VARCHAR(500),
\tsynced_at DATETIME NOT NULL,
\tPRIMARY KEY (data_source_uuid, object, external_id)
)""",
    ],
    "postgresql": [
        """CREATE TABLE tcm_rejected_records (
\tstream VARCHAR(500) NOT NULL,
\trecord_key VARCHAR(2000) NOT NULL,
\trecord TEXT NOT NULL,
\treason TEXT NOT NULL,
\tfield VARCHAR(500),
\tstatus INTEGER,
\trejected_at TIMESTAMP WITH TIME ZONE NOT NULL,
\tPRIMARY KEY (stream, record_key)
)""",
        """CREATE TABLE tcm_stream_schemas (
\tstream VARCHAR(500) NOT NULL,
\tschema TEXT NOT NULL,
\tkey_properties TEXT NOT NULL,
\tPRIMARY KEY (stream)
)""",
        """CREATE TABLE tcm_synced_objects (
\tdata_source_uuid VARCHAR(100) NOT NULL,
\tobject VARCHAR(32) NOT NULL,
\texternal_id VARCHAR(1000) NOT NULL,
\tuuid VARCHAR(100),
\tpayload_hash VARCHAR(64),
\tstream VARCHAR(500),
\tsynced_at TIMESTAMP WITH TIME ZONE NOT NULL,
\tPRIMARY KEY (data_source_uuid, object, external_id)
)""",
    ],
}
# Version 2 (04309b3 .. before schema versions): the same, plus record_hash after payload_hash.
DDL_V2 = {
    dialect: [ddl.replace("\tpayload_hash VARCHAR(64),\n", "\tpayload_hash VARCHAR(64),\n\trecord_hash VARCHAR(64),\n")
              for ddl in ddls]
    for dialect, ddls in DDL_0_1_0.items()
}

def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def old_tables(version: int) -> sa.MetaData:
    """The tables as the old code declared them, to write rows exactly as it did (types included)."""
    meta = sa.MetaData()
    sa.Table("tcm_synced_objects", meta,
             sa.Column("data_source_uuid", sa.String(100), primary_key=True),
             sa.Column("object", sa.String(32), primary_key=True),
             sa.Column("external_id", sa.String(1000), primary_key=True),
             sa.Column("uuid", sa.String(100)),
             sa.Column("payload_hash", sa.String(64)),
             *([sa.Column("record_hash", sa.String(64))] if version == 2 else []),
             sa.Column("stream", sa.String(500)),
             sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False))
    sa.Table("tcm_rejected_records", meta,
             sa.Column("stream", sa.String(500), primary_key=True),
             sa.Column("record_key", sa.String(2000), primary_key=True),
             sa.Column("record", sa.Text, nullable=False),
             sa.Column("reason", sa.Text, nullable=False),
             sa.Column("field", sa.String(500)),
             sa.Column("status", sa.Integer),
             sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=False))
    sa.Table("tcm_stream_schemas", meta,
             sa.Column("stream", sa.String(500), primary_key=True),
             sa.Column("schema", sa.Text, nullable=False),
             sa.Column("key_properties", sa.Text, nullable=False))
    return meta


def unproven_marks(url: str) -> set[tuple[str, str]]:
    """(data source, object) the memory cannot vouch for until a listing proves them."""
    engine = engine_for(url)
    with engine.connect() as conn:
        marks = {(row[0], row[1]) for row in conn.exec_driver_sql("SELECT data_source_uuid, object FROM tcm_unproven")}
    engine.dispose()
    return marks



def load_0_1_0_memory(url: str) -> None:
    """The sync memory 0.1.0 wrote, at `url`: the file itself for SQLite, its rows in 0.1.0's tables for PostgreSQL."""
    source = MEMORY_0_1_0 / "ledger.db"
    target = sa.engine.make_url(url)
    if target.get_backend_name() == "sqlite":
        shutil.copyfile(source, str(target.database))
        return
    written = sa.create_engine(f"sqlite:///{source}")
    meta = old_tables(2)  # d5bd8d3 already kept record_hash: schema 2, no version stamp
    engine = engine_for(url)
    with written.connect() as old, engine.begin() as conn:
        for ddl in DDL_V2[engine.dialect.name]:
            conn.exec_driver_sql(ddl)
        for table in meta.sorted_tables:
            rows = [dict(row) for row in old.execute(sa.select(table)).mappings()]
            if rows:
                conn.execute(sa.insert(table), rows)
    written.dispose()
    engine.dispose()


def fixture_config() -> dict[str, t.Any]:
    """The settings 0.1.0 ran with (stream maps, stream options, data source), without key, URL or paths."""
    return t.cast("dict[str, t.Any]", json.loads((MEMORY_0_1_0 / "config.json").read_text()))


def fixture_state() -> dict[str, t.Any]:
    """What 0.1.0's fake ChartMogul held after those runs."""
    return t.cast("dict[str, t.Any]", json.loads((MEMORY_0_1_0 / "fake.json").read_text()))


def fixture_input() -> list[str]:
    """The Singer lines 0.1.0 read (RECORD values as tap-postgres writes them: decimals as numbers)."""
    return (MEMORY_0_1_0 / "input.singer").read_text().splitlines()


# What each schema version added, newest first: turning a current memory back into version N undoes every step above N.
_ADDED: dict[int, list[str]] = {
    8: ["DROP TABLE tcm_unproven"],
    7: ["DROP TABLE tcm_facts"],
    6: ["ALTER TABLE tcm_invoice_replacements DROP COLUMN status", "ALTER TABLE tcm_synced_objects DROP COLUMN status"],
    5: ["DROP TABLE tcm_bulk_imports"],
    4: ["DROP TABLE tcm_invoice_replacements", "ALTER TABLE tcm_synced_objects DROP COLUMN parent"],
    3: ["ALTER TABLE tcm_synced_objects DROP COLUMN tags", "DROP TABLE tcm_schema"],  # versions 1 and 2: no stamp
    2: ["ALTER TABLE tcm_synced_objects DROP COLUMN record_hash"],
}


def as_version(url: str, version: int) -> None:
    """Turn the current memory at `url` into what release `version` left: every later table and column dropped (rows
    kept), stamped `version` (versions 1 and 2 carried no stamp).
    """
    engine = engine_for(url)
    with engine.begin() as conn:
        for added in sorted(_ADDED, reverse=True):
            if added > version:
                for statement in _ADDED[added]:
                    conn.exec_driver_sql(statement)
        if version >= 3:
            conn.exec_driver_sql(f"UPDATE tcm_schema SET version = {version}")
    engine.dispose()
