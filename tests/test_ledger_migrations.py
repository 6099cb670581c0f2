"""The sync memory's schema version: older memories are migrated on open, newer ones refused.

Also the memory's newer parts: customer tags, `holds_any` and `adopt`. Every test runs
with the memory in SQLite and again in the real PostgreSQL server (`ledger_url`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import pathlib
import threading
import typing as t

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from target_chartmogul.errors import FatalError
from target_chartmogul.memory import migrations, schema
from target_chartmogul.memory.database import engine_url
from target_chartmogul.memory.ledger import Entry, Ledger, RememberedReject
from tests.customer_rows import STREAM, rows, stream
from tests.memory_versions import DDL_0_1_0, DDL_V2, engine_for, old_tables, unproven_marks
from tests.running import run_target

CURRENT = migrations.SCHEMA_VERSION

V1_COLUMNS = ["data_source_uuid", "object", "external_id", "uuid", "payload_hash", "stream", "synced_at"]
CURRENT_COLUMNS = {*V1_COLUMNS, "record_hash", "tags", "parent", "status"}
DS = "ds_00000000-aaaa"
HASH_A, HASH_B, HASH_C = "a" * 64, "b" * 64, "c" * 64
SYNCED_AT = dt.datetime(2026, 11, 1, 12, 30, 5, 123456, tzinfo=dt.timezone.utc)
REJECTED_AT = dt.datetime(2026, 11, 2, 8, 0, 0, tzinfo=dt.timezone.utc)
REJECT_RECORD = '{"external_id": "x", "country": "Germany", "amount": 12.50}'
SCHEMA_JSON = '{"properties": {"external_id": {"type": "string"}}}'


def synced_rows(version: int) -> list[dict[str, t.Any]]:
    rows = [
        {"data_source_uuid": DS, "object": "customers", "external_id": "c1", "uuid": "cus_1",
         "payload_hash": HASH_A, "stream": "public-customers", "synced_at": SYNCED_AT},
        {"data_source_uuid": DS, "object": "customers", "external_id": " spaced id ", "uuid": "cus_2",
         "payload_hash": None, "stream": "public-customers", "synced_at": SYNCED_AT},
        {"data_source_uuid": DS, "object": "plans", "external_id": "gold", "uuid": "pl_1",
         "payload_hash": HASH_B, "stream": "billing-plans", "synced_at": SYNCED_AT},
    ]
    if version == 2:
        for row, record_hash in zip(rows, (HASH_C, None, HASH_A), strict=True):
            row["record_hash"] = record_hash
    return rows


def write_old_memory(url: str, version: int) -> None:
    """A memory as 0.1.0 (version 1) or 04309b3 (version 2) left it: exact DDL, no version table."""
    engine = engine_for(url)
    meta = old_tables(version)
    with engine.begin() as conn:
        for ddl in (DDL_0_1_0 if version == 1 else DDL_V2)[engine.dialect.name]:
            conn.exec_driver_sql(ddl)
        conn.execute(sa.insert(meta.tables["tcm_synced_objects"]), synced_rows(version))
        conn.execute(sa.insert(meta.tables["tcm_rejected_records"]).values(
            stream="public-customers", record_key='["x"]', record=REJECT_RECORD,
            reason="country: not an ISO 3166-1 alpha-2 code", field="country", status=422, rejected_at=REJECTED_AT))
        conn.execute(sa.insert(meta.tables["tcm_stream_schemas"]).values(
            stream="public-customers", schema=SCHEMA_JSON, key_properties='["external_id"]'))
    engine.dispose()


def dump(url: str) -> dict[str, t.Any]:
    """Everything the memory holds, by table (only the columns every version has), plus its stamp."""
    engine = engine_for(url)
    with engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
        result = {
            "synced": conn.exec_driver_sql(
                f"SELECT {', '.join(V1_COLUMNS)} FROM tcm_synced_objects ORDER BY object, external_id").all(),
            "rejected": conn.exec_driver_sql("SELECT * FROM tcm_rejected_records").all(),
            "schemas": conn.exec_driver_sql("SELECT * FROM tcm_stream_schemas").all(),
            "version": conn.exec_driver_sql("SELECT version FROM tcm_schema").all() if "tcm_schema" in tables else None,
            "columns": {c["name"] for c in sa.inspect(conn).get_columns("tcm_synced_objects")},
        }
    engine.dispose()
    return result


class Statements:
    """Every SQL statement any engine runs meanwhile: (first word, executemany, rows)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool, int]] = []

    def __enter__(self) -> Statements:
        sa.event.listen(sa.Engine, "before_cursor_execute", self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self._note)

    def _note(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.seen.append((statement.split()[0].upper(), executemany, len(parameters) if executemany else 1))

    def writes(self) -> list[tuple[str, bool, int]]:
        return [s for s in self.seen if s[0] not in {"SELECT", "PRAGMA", "SHOW"}]


def migrated(url: str, version: int) -> str:
    """The one line a migration from `version` logs."""
    return (f"Sync memory at {url} migrated from schema {version} to {CURRENT} (every remembered row kept; what "
            "earlier releases wrote is compared with ChartMogul's listings once, not written again)")


def unhashed(dumped: dict[str, t.Any]) -> dict[str, t.Any]:
    """A dump as migration 8 leaves it: every row and uuid kept, the hashes of earlier releases forgotten."""
    position = V1_COLUMNS.index("payload_hash")
    rows = [(*row[:position], None, *row[position + 1:]) for row in dumped["synced"]]
    return {**dumped, "synced": rows}


def migration_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "target_chartmogul.memory.migrations"]


# Migrations ---------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [1, 2])
def test_the_old_ddl_is_what_the_old_code_created(version):
    """The literal DDL above and the tables the rows are written through describe the same memory."""
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        compiled = [
            "\n".join(line.rstrip() for line in str(sa.schema.CreateTable(table).compile(dialect=dialect)).strip().splitlines())
            for table in old_tables(version).sorted_tables
        ]
        assert compiled == (DDL_0_1_0 if version == 1 else DDL_V2)[dialect.name]


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_memory_is_migrated_on_open_and_keeps_everything(ledger_url, version, caplog):
    write_old_memory(ledger_url, version)
    before = dump(ledger_url)
    assert before["version"] is None
    assert before["columns"] == set(V1_COLUMNS) | ({"record_hash"} if version == 2 else set())

    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    memory = Ledger(ledger_url)
    after = dump(ledger_url)
    assert after == unhashed({**before, "version": [(CURRENT,)], "columns": CURRENT_COLUMNS})
    assert migration_logs(caplog) == [migrated(ledger_url, version)]
    assert memory.lookup("customers", DS, ["c1", " spaced id ", "c9"]) == {  # uuids kept, hashes forgotten
        "c1": Entry("cus_1", None, "public-customers", None, None),
        " spaced id ": Entry("cus_2", None, "public-customers", None, None),
    }
    assert memory.get("plans", DS, "gold") == Entry("pl_1", None, "billing-plans", None, None)
    assert unproven_marks(ledger_url) == {(DS, "customers"), (DS, "plans")}
    assert (memory.vouches_for("customers", DS), memory.vouches_for("plans", DS)) == (False, False)
    assert memory.stream_objects("customers", "public-customers") == {(DS, "c1"): "cus_1", (DS, " spaced id "): "cus_2"}
    assert memory.remembers_rejects() is True
    assert memory.remembered_rejects() == [RememberedReject(
        "public-customers", '["x"]', {"external_id": "x", "country": "Germany", "amount": decimal.Decimal("12.50")},
        "country: not an ISO 3166-1 alpha-2 code")]
    assert memory.schema("public-customers") == ({"properties": {"external_id": {"type": "string"}}}, ["external_id"])
    assert memory.holds_any("customers", DS) is True
    memory.close()

    caplog.clear()
    with Statements() as statements:  # a second open only reads
        again = Ledger(ledger_url)
        again.close()
    assert ("SELECT", False, 1) in statements.seen  # (the listener saw the reads)
    assert statements.writes() == []
    assert migration_logs(caplog) == []
    assert dump(ledger_url) == after


def test_upgrading_the_loader_over_a_0_1_0_shaped_memory_costs_one_listing(fake, ds, base_config, ledger_url, caplog):
    """The user's view: the next run after the upgrade finds every unchanged row unchanged, proven by one listing
    page (the memory's hashes are not trusted), and the run after it costs nothing.
    """
    config = {**base_config, "ledger_url": ledger_url, "streams": {STREAM: {"custom_attributes": ["seats"]}}}
    run_target(config, stream(rows(20)))
    engine = engine_for(ledger_url)
    v1_synced = old_tables(1).tables["tcm_synced_objects"]
    with engine.begin() as conn:  # the same memory, as 0.1.0 would hold it
        kept = conn.execute(sa.select(v1_synced)).mappings().all()
        for table in ("tcm_schema", "tcm_synced_objects", "tcm_rejected_records", "tcm_stream_schemas"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
        for ddl in DDL_0_1_0[engine.dialect.name]:
            conn.exec_driver_sql(ddl)
        conn.execute(sa.insert(v1_synced), [dict(row) for row in kept])
    engine.dispose()
    assert len(kept) == 20

    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    fake.clear_requests()
    result = run_target(config, stream(rows(20)))
    assert [(r.method, r.path, r.query) for r in fake.requests] == [  # the first call checks the key and the source
        ("GET", "/ping", {}), ("GET", f"/data_sources/{ds}", {}),
        ("GET", "/customers", {"data_source_uuid": ds, "per_page": "200"})]
    assert result.counts(STREAM)["unchanged"] == 20
    assert migration_logs(caplog) == [migrated(ledger_url, 1)]
    assert unproven_marks(ledger_url) == set()
    fake.clear_requests()
    assert run_target(config, stream(rows(20))).counts(STREAM)["unchanged"] == 20
    assert fake.count() == 0


def test_the_migrated_memory_takes_new_writes(ledger_url):
    write_old_memory(ledger_url, 1)
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c1", uuid="cus_1", payload=HASH_B, stream="public-customers",
                   record=HASH_C, tags=["VIP"])
    memory.written("customers", DS, "c2", uuid="cus_3", payload=HASH_A, stream="public-customers")
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.lookup("customers", DS, ["c1", "c2", " spaced id "]) == {
        "c1": Entry("cus_1", HASH_B, "public-customers", HASH_C, ("VIP",)),
        "c2": Entry("cus_3", HASH_A, "public-customers", None, None),
        " spaced id ": Entry("cus_2", None, "public-customers", None, None),
    }
    reopened.close()


def test_a_migrated_memory_has_the_columns_and_types_of_a_new_one(ledger_url):
    write_old_memory(ledger_url, 1)
    Ledger(ledger_url).close()
    engine = engine_for(ledger_url)
    with engine.connect() as conn:
        migrated = {c["name"]: (str(c["type"]), c["nullable"]) for c in sa.inspect(conn).get_columns("tcm_synced_objects")}
        # the same database, created fresh by the current code under another name
        meta = sa.MetaData()
        schema.synced.to_metadata(meta, name="fresh_synced_objects")
        meta.create_all(conn)
        fresh = {c["name"]: (str(c["type"]), c["nullable"]) for c in sa.inspect(conn).get_columns("fresh_synced_objects")}
        conn.commit()
    engine.dispose()
    assert migrated == fresh
    assert migrated["tags"] == ("TEXT", True) and migrated["record_hash"] == ("VARCHAR(64)", True)


def test_dry_run_also_migrates_the_schema(ledger_url):
    write_old_memory(ledger_url, 1)
    before = dump(ledger_url)
    memory = Ledger(ledger_url, read_only=True)
    memory.written("customers", DS, "c1", uuid="cus_9", payload=HASH_C, stream="public-customers")
    memory.close()  # dry run: the write is not kept
    assert dump(ledger_url) == unhashed({**before, "version": [(CURRENT,)], "columns": CURRENT_COLUMNS})


def test_a_failed_migration_changes_nothing(ledger_url, monkeypatch):
    write_old_memory(ledger_url, 1)
    before = dump(ledger_url)

    def add_tags_then_fail(conn: sa.Connection) -> None:
        migrations._to_3(conn)
        raise RuntimeError("disk full")

    monkeypatch.setitem(migrations.MIGRATIONS, 3, add_tags_then_fail)
    with pytest.raises(FatalError) as failed:
        Ledger(ledger_url)
    assert str(failed.value) == "cannot open the sync memory (ledger_url): RuntimeError: disk full"
    assert dump(ledger_url) == before  # record_hash, tags and tcm_schema all rolled back with it


def test_two_processes_opening_an_old_memory_at_once_migrate_it_once(ledger_url, caplog):
    write_old_memory(ledger_url, 1)
    before = dump(ledger_url)
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def open_memory() -> None:
        start.wait()
        try:
            Ledger(ledger_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_memory) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(migration_logs(caplog)) == 1
    assert dump(ledger_url) == unhashed({**before, "version": [(CURRENT,)], "columns": CURRENT_COLUMNS})


def test_a_lost_version_stamp_is_inferred_from_the_columns(ledger_url, caplog):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c1", uuid="cus_1", payload=HASH_A, stream="s", record=HASH_B, tags=["a"])
    memory.close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE tcm_schema")
    engine.dispose()
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    reopened = Ledger(ledger_url)  # record_hash present: schema 2, so step 3 runs and finds tags there
    assert migration_logs(caplog) == [migrated(ledger_url, 2)]
    assert reopened.get("customers", DS, "c1") == Entry("cus_1", None, "s", None, ("a",))  # hashes forgotten, tags kept
    reopened.close()
    assert dump(ledger_url)["version"] == [(CURRENT,)]


def test_dropped_tables_under_a_current_stamp_are_created_again(ledger_url, caplog):
    Ledger(ledger_url).close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE tcm_synced_objects")
    engine.dispose()
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    memory = Ledger(ledger_url)
    assert memory.holds_any("customers", DS) is False
    memory.close()
    assert migration_logs(caplog) == []
    assert dump(ledger_url)["columns"] == CURRENT_COLUMNS


def test_a_new_memory_is_stamped_current(ledger_url, caplog):
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")
    Ledger(ledger_url).close()
    created = dump(ledger_url)
    assert (created["version"], created["columns"], created["synced"]) == ([(CURRENT,)], CURRENT_COLUMNS, [])
    assert migration_logs(caplog) == []


def test_a_memory_from_a_newer_release_is_refused_in_one_line(ledger_url):
    Ledger(ledger_url).close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE tcm_schema SET version = {CURRENT + 1}")
    engine.dispose()
    with pytest.raises(FatalError) as refused:
        Ledger(ledger_url)
    assert str(refused.value) == (
        f"the sync memory at {ledger_url} was written by a newer target-chartmogul (schema {CURRENT + 1}); "
        f"this version understands up to {CURRENT}"
    )
    assert dump(ledger_url)["version"] == [(CURRENT + 1,)]  # left as it was


# Tags, holds_any, adopt ---------------------------------------------------------------------
def test_tags_round_trip(ledger_url):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "none", uuid="u0", payload=HASH_A, stream="s")
    memory.written("customers", DS, "empty", uuid="u1", payload=HASH_A, stream="s", tags=[])
    memory.written("customers", DS, "mixed", uuid="u2", payload=HASH_A, stream="s", tags=("VIP", "vip", "Churn Risk"))
    expected = {
        "none": Entry("u0", HASH_A, "s", None, None),
        "empty": Entry("u1", HASH_A, "s", None, ()),
        "mixed": Entry("u2", HASH_A, "s", None, ("VIP", "vip", "Churn Risk")),
    }
    assert memory.lookup("customers", DS, ["none", "empty", "mixed"]) == expected  # unflushed
    memory.flush()
    assert memory.lookup("customers", DS, ["none", "empty", "mixed"]) == expected
    assert memory.get("customers", DS, "mixed") == expected["mixed"]
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.lookup("customers", DS, ["none", "empty", "mixed"]) == expected
    reopened.close()
    engine = engine_for(ledger_url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT external_id, tags FROM tcm_synced_objects ORDER BY external_id").all()
    engine.dispose()
    assert [tuple(row) for row in stored] == [("empty", "[]"), ("mixed", '["VIP", "vip", "Churn Risk"]'), ("none", None)]


def test_tags_are_a_sequence_of_names_not_one_string(ledger_url):
    memory = Ledger(ledger_url)
    with pytest.raises(TypeError):
        memory.written("customers", DS, "c1", uuid="u", payload=None, stream="s", tags="VIP")
    memory.close()


def test_holds_any(ledger_url):
    memory = Ledger(ledger_url)
    assert memory.holds_any("customers", DS) is False
    memory.written("customers", DS, "c1", uuid="u1", payload=HASH_A, stream="s")
    assert memory.holds_any("customers", DS) is True  # unflushed
    assert memory.holds_any("customers", "ds_other") is False
    assert memory.holds_any("plans", DS) is False
    memory.flush()
    assert memory.holds_any("customers", DS) is True
    memory.close()

    reopened = Ledger(ledger_url)
    with Statements() as statements:
        assert reopened.holds_any("customers", DS) is True
        assert reopened.holds_any("customers", DS) is True  # kept for the run: no second query
    assert statements.seen == [("SELECT", False, 1)]
    reopened.deleted("customers", DS, "c1")
    assert reopened.holds_any("customers", DS) is True  # unflushed deletes do not matter
    assert reopened.holds_any("customers", "ds_other") is False
    reopened.adopt("customers", "ds_other", {"c7": "u7"})
    assert reopened.holds_any("customers", "ds_other") is True
    reopened.close()


def test_adopt_never_overwrites_and_lands_in_one_flush(ledger_url):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "flushed", uuid="u-f", payload=HASH_A, stream="s", record=HASH_B, tags=["t"])
    memory.flush()
    memory.written("customers", DS, "pending", uuid="u-p", payload=HASH_C, stream="s")
    memory.written("customers", DS, "gone", uuid="u-g", payload=HASH_C, stream="s")
    memory.deleted("customers", DS, "gone")

    found = {f"c{i:05d}": f"cus_{i}" for i in range(5000)}
    found.update({"flushed": "other-f", "pending": "other-p", "gone": "other-g"})
    with Statements() as statements:
        memory.adopt("customers", DS, found)
        memory.adopt("customers", DS, {"c00001": "second-guess"})  # the first adoption stands
        assert memory.lookup("customers", DS, ["flushed", "pending", "gone", "c00001"]) == {
            "flushed": Entry("u-f", HASH_A, "s", HASH_B, ("t",)),
            "pending": Entry("u-p", HASH_C, "s", None, None),
            "c00001": Entry("cus_1", None, None, None, None),
        }
        statements.seen.clear()
        memory.flush()
    # one DELETE (gone), one INSERT (pending), one executemany for the adopted objects: the 5000
    # new ones and "flushed", which the database leaves as it is (ON CONFLICT DO NOTHING)
    assert sorted(statements.writes()) == [("DELETE", False, 1), ("INSERT", False, 1), ("INSERT", True, 5001)]
    memory.close()

    reopened = Ledger(ledger_url)
    ids = list(found)
    entries = reopened.lookup("customers", DS, ids)
    assert len(entries) == 5002
    assert entries["flushed"] == Entry("u-f", HASH_A, "s", HASH_B, ("t",))
    assert entries["pending"] == Entry("u-p", HASH_C, "s", None, None)
    assert "gone" not in entries  # deleted in this run: an older listing does not bring it back
    assert {ext: e for ext, e in entries.items() if ext.startswith("c")} == {
        f"c{i:05d}": Entry(f"cus_{i}", None, None, None, None) for i in range(5000)
    }
    assert reopened.stream_objects("customers", "s") == {(DS, "flushed"): "u-f", (DS, "pending"): "u-p"}
    reopened.close()


def test_a_write_after_adopt_wins_and_a_delete_after_adopt_forgets(ledger_url):
    memory = Ledger(ledger_url)
    memory.adopt("customers", DS, {"a": "u-a", "b": "u-b"})
    memory.written("customers", DS, "a", uuid="u-a", payload=HASH_A, stream="s", tags=["x"])
    memory.deleted("customers", DS, "b")
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.lookup("customers", DS, ["a", "b"]) == {"a": Entry("u-a", HASH_A, "s", None, ("x",))}
    reopened.close()


def test_dry_run_adopts_nothing(ledger_url):
    memory = Ledger(ledger_url, read_only=True)
    memory.adopt("customers", DS, {"a": "u-a"})
    assert memory.get("customers", DS, "a") == Entry("u-a", None, None, None, None)
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.holds_any("customers", DS) is False
    reopened.close()


# URLs --------------------------------------------------------------------------------------
def testengine_url(tmp_path: pathlib.Path, monkeypatch):
    for given in ("postgresql://u:p@db.example:5433/warehouse", "postgres://u:p@db.example:5433/warehouse"):
        assert engine_url(given).render_as_string(hide_password=False) == "postgresql+psycopg://u:p@db.example:5433/warehouse"
    assert engine_url("postgresql+psycopg2://u@h/d").render_as_string() == "postgresql+psycopg2://u@h/d"
    path = tmp_path / "a" / "b" / "ledger.db"
    assert engine_url(f"sqlite:///{path}").render_as_string() == f"sqlite:///{path}"
    assert path.parent.is_dir()
    monkeypatch.chdir(tmp_path)
    assert engine_url("sqlite:///.target-chartmogul/ledger.db").database == ".target-chartmogul/ledger.db"
    assert (tmp_path / ".target-chartmogul").is_dir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert engine_url("sqlite:///~/memory/ledger.db").database == str(tmp_path / "home" / "memory" / "ledger.db")
    assert (tmp_path / "home" / "memory").is_dir()
    assert engine_url("sqlite:///:memory:").database == ":memory:"
    assert engine_url("sqlite://").database is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [".target-chartmogul", "a", "home"]


def test_an_in_memory_sqlite_memory_opens():
    memory = Ledger("sqlite:///:memory:")
    memory.written("customers", DS, "c1", uuid="u1", payload=HASH_A, stream="s", tags=["t"])
    memory.flush()
    assert memory.get("customers", DS, "c1") == Entry("u1", HASH_A, "s", None, ("t",))
    memory.close()


def test_an_invoice_replacement_stays_remembered_until_it_is_cleared(ledger_url):
    def pending() -> list[tuple[str, str, str, dict[str, t.Any], str | None]]:
        other = Ledger(ledger_url)  # another connection: what is committed, not what is buffered
        try:
            return other.pending_replacements()
        finally:
            other.close()

    memory = Ledger(ledger_url)
    body = {"external_id": "inv-1", "currency": "EUR", "line_items": [{"type": "one_time", "amount_in_cents": 990}]}
    try:
        memory.mark_replacement(DS, "inv-1", "cus_1", body)
        # committed at once, before the delete it announces: another connection sees it without a flush
        assert pending() == [(DS, "inv-1", "cus_1", body, None)]
        memory.mark_replacement(DS, "inv-1", "cus_1", {**body, "currency": "USD"}, "voided")  # newer content wins
        assert pending() == [(DS, "inv-1", "cus_1", {**body, "currency": "USD"}, "voided")]
        assert memory.pending_replacement(DS, "inv-1") == {**body, "currency": "USD"}
        memory.clear_replacement(DS, "inv-1")
        assert pending() == []
        assert memory.pending_replacement(DS, "inv-1") is None
    finally:
        memory.close()


def test_a_version_4_memory_gains_the_bulk_import_table_and_keeps_its_rows(ledger_url, caplog):
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c-1", uuid="cus_1", payload="h" * 64, stream="public-customers")
    memory.close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:  # what release 4 left: no tcm_bulk_imports, stamped 4
        conn.exec_driver_sql("DROP TABLE tcm_bulk_imports")
        conn.exec_driver_sql("UPDATE tcm_schema SET version = 4")
    engine.dispose()
    before = dump(ledger_url)
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")

    memory = Ledger(ledger_url)
    memory.bulk_import_sending("local-1", DS, [{"stream": "public-customers"}])
    memory.bulk_import_sent("local-1", "imp-1")
    in_flight = memory.bulk_imports_in_flight()
    memory.close()

    assert migration_logs(caplog) == [migrated(ledger_url, 4)]
    assert dump(ledger_url) == unhashed({**before, "version": [(CURRENT,)]})
    assert in_flight == [("local-1", DS, "imp-1", [{"stream": "public-customers"}])]
    reopened = Ledger(ledger_url)
    entry = reopened.get("customers", DS, "c-1")
    reopened.close()
    assert entry is not None and entry.uuid == "cus_1"


def test_a_version_5_memory_gains_the_replacement_status_and_keeps_its_marks(ledger_url, caplog):
    """Version 6 keeps with each replacement mark the status to set after the import (a repair must not drop it),
    and with each invoice the status last applied (a replacement sets it again, an applied one is not re-sent).
    """
    body = {"external_id": "inv-1", "currency": "EUR", "line_items": [{"type": "one_time", "amount_in_cents": 990}]}
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c-1", uuid="cus_1", payload="h" * 64, stream="public-customers")
    memory.written("invoices", DS, "inv-1", uuid="inv_1", payload=HASH_A, stream="billing-invoices", record=HASH_B)
    memory.mark_replacement(DS, "inv-1", "cus_1", body)
    memory.close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:  # what release 5 left: marks and invoices without status, stamped 5
        conn.exec_driver_sql("ALTER TABLE tcm_invoice_replacements DROP COLUMN status")
        conn.exec_driver_sql("ALTER TABLE tcm_synced_objects DROP COLUMN status")
        conn.exec_driver_sql("UPDATE tcm_schema SET version = 5")
    engine.dispose()
    before = dump(ledger_url)
    assert "status" not in before["columns"]
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")

    memory = Ledger(ledger_url)
    kept = memory.pending_replacements()
    invoice = memory.get("invoices", DS, "inv-1")
    memory.mark_replacement(DS, "inv-2", "cus_1", {**body, "external_id": "inv-2"}, "written_off")
    marks = memory.pending_replacements()
    memory.set_status("invoices", DS, "inv-1", "voided")
    memory.close()

    assert migration_logs(caplog) == [migrated(ledger_url, 5)]
    assert dump(ledger_url) == unhashed({**before, "version": [(CURRENT,)], "columns": CURRENT_COLUMNS})
    assert invoice == Entry("inv_1", None, "billing-invoices", None, None, None, None)
    reopened = Ledger(ledger_url)
    assert reopened.get("invoices", DS, "inv-1") == Entry("inv_1", None, "billing-invoices", None, None, None,
                                                          "voided")
    reopened.close()
    assert kept == [(DS, "inv-1", "cus_1", body, None)]
    assert sorted(marks) == [(DS, "inv-1", "cus_1", body, None),
                             (DS, "inv-2", "cus_1", {**body, "external_id": "inv-2"}, "written_off")]


def test_an_invoice_status_survives_other_writes_of_its_row_and_goes_with_a_delete(ledger_url):
    """`written` (by any writer of the row) leaves the status as it is; `set_status` lands after the row, in the same
    flush; a delete forgets it, also for a row written again afterwards in the same run.
    """
    memory = Ledger(ledger_url)
    memory.written("invoices", DS, "inv-1", uuid="inv_1", payload=HASH_A, stream="billing-invoices", record=HASH_B)
    memory.set_status("invoices", DS, "inv-1", "voided")
    assert memory.get("invoices", DS, "inv-1").status == "voided"  # before the flush
    memory.flush()
    memory.written("invoices", DS, "inv-1", uuid="inv_2", payload=None, stream="(repair)")
    assert memory.get("invoices", DS, "inv-1") == Entry("inv_2", None, "(repair)", None, None, None, "voided")
    memory.flush()
    assert memory.get("invoices", DS, "inv-1") == Entry("inv_2", None, "(repair)", None, None, None, "voided")
    memory.set_status("invoices", DS, "inv-1", None)
    memory.flush()
    assert memory.get("invoices", DS, "inv-1").status is None
    memory.set_status("invoices", DS, "inv-1", "written_off")
    memory.deleted("invoices", DS, "inv-1")
    memory.written("invoices", DS, "inv-1", uuid="inv_3", payload=HASH_C, stream="billing-invoices")
    assert memory.get("invoices", DS, "inv-1").status is None
    memory.close()
    reopened = Ledger(ledger_url)
    assert reopened.get("invoices", DS, "inv-1") == Entry("inv_3", HASH_C, "billing-invoices", None, None, None, None)
    reopened.set_status("invoices", DS, "inv-9", "voided")  # a row never written stays without one
    reopened.close()
    again = Ledger(ledger_url)
    assert again.get("invoices", DS, "inv-9") is None
    again.close()


def test_a_version_6_memory_gains_the_facts_table_and_keeps_everything(ledger_url, caplog):
    """Version 7 keeps what the loader learnt of ChartMogul per data source (whether a bulk body's customer
    attributes are kept), so it is found out once, not in every run.
    """
    memory = Ledger(ledger_url)
    memory.written("customers", DS, "c-1", uuid="cus_1", payload=HASH_A, stream="public-customers")
    memory.bulk_import_sending("local-1", DS, [{"stream": "public-customers"}])
    memory.close()
    engine = engine_for(ledger_url)
    with engine.begin() as conn:  # what release 6 left: no facts table, stamped 6
        conn.exec_driver_sql("DROP TABLE tcm_facts")
        conn.exec_driver_sql("UPDATE tcm_schema SET version = 6")
    engine.dispose()
    before = dump(ledger_url)
    caplog.set_level(logging.INFO, logger="target_chartmogul.memory.migrations")

    memory = Ledger(ledger_url)
    unknown = memory.fact(DS, "bulk_customer_attributes")
    memory.set_fact(DS, "bulk_customer_attributes", "kept")
    memory.set_fact(DS, "bulk_customer_attributes", "dropped")  # a fact learnt again replaces the first
    memory.set_fact("", "bulk_import_polled_by", "external_id")
    in_flight = memory.bulk_imports_in_flight()
    memory.close()

    assert migration_logs(caplog) == [migrated(ledger_url, 6)]
    assert dump(ledger_url) == unhashed({**before, "version": [(CURRENT,)]})
    assert unknown is None
    assert in_flight == [("local-1", DS, None, [{"stream": "public-customers"}])]
    reopened = Ledger(ledger_url)
    assert (reopened.fact(DS, "bulk_customer_attributes"), reopened.fact("", "bulk_import_polled_by"),
            reopened.fact("ds_other", "bulk_customer_attributes")) == ("dropped", "external_id", None)
    reopened.forget_fact(DS, "bulk_customer_attributes")
    assert reopened.fact(DS, "bulk_customer_attributes") is None
    reopened.close()


def test_a_dry_run_learns_no_fact(ledger_url):
    Ledger(ledger_url).close()
    dry = Ledger(ledger_url, read_only=True)
    dry.set_fact(DS, "bulk_customer_attributes", "kept")
    assert dry.fact(DS, "bulk_customer_attributes") is None
    dry.close()
