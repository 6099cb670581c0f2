"""Payments and line items deleted in the source leave ChartMogul, whatever the sync memory knows (issue 11).

The three-table schema nests payments in their invoice's import, so ChartMogul gives them no
uuid of their own in the memory's usual path; a lost memory knows nothing at all. A deletion
(`_sdc_deleted_at`, or a complete full-table version without the row) must still reach
ChartMogul, found through the invoice ChartMogul holds, and be counted as what happened: a
line counts `deleted` and its invoice `corrected`; `unchanged` only when ChartMogul holds none.
"""

from __future__ import annotations

import typing as t

import pytest
import sqlalchemy as sa

from tests.billing import IMPORT_PATH, customers_messages, encode, plans_messages
from tests.fake_chartmogul import Fault
from tests.helpers import fresh_memory, reads, write_calls
from tests.running import run_target
from tests.singer_messages import STRING, schema
from tests.three_tables import (
    HEADER_PROPS,
    HEADERS_STREAM,
    LINE_PROPS,
    LINES_STREAM,
    PAYMENT_PROPS,
    PAYMENTS_STREAM,
    Tables,
    assert_holds,
    streams_config,
)

DELETED = {"_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
WHEN = "2024-12-02T00:00:00+00:00"


def config_for(base_config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    streams = {name: {**options, "delete_missing": True} for name, options in streams_config().items()}
    return {**base_config, "streams": streams, **extra}


def rows_messages(stream: str, props: dict[str, t.Any], rows: list[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(stream, {**props, **DELETED}),
            *(encode({"type": "RECORD", "stream": stream, "record": r}) for r in rows)]


@pytest.fixture
def loaded(fake, ds, base_config) -> tuple[dict[str, t.Any], Tables]:
    """Eight invoices from the three tables, payments nested in their invoices' imports (no payment POSTed)."""
    config = config_for(base_config)
    tables = Tables(invoices=8)
    first = run_target(config, [*plans_messages(), *customers_messages(), *tables.messages()])
    assert first.rejects == []
    assert_holds(fake, ds, tables)
    assert fake.count("POST", r"/transactions$") == 0  # every payment rode in its invoice's import
    fake.clear_requests()
    return config, tables


def pay_uuid(fake: t.Any, external_id: str) -> str:
    with fake.lock:
        return next(tx["uuid"] for tx in fake.transactions.values() if tx["external_id"] == external_id)


def forget_transaction_uuids(config: dict[str, t.Any]) -> None:
    """The memory as an older release left nested payments: remembered without a uuid."""
    engine = sa.create_engine(config["ledger_url"])
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE tcm_synced_objects SET uuid = NULL, parent = NULL WHERE object = 'transactions'")
    engine.dispose()


# Payments ------------------------------------------------------------------------------------
def test_a_nested_payment_deleted_in_the_source_is_deleted_by_the_uuid_its_import_answered(fake, ds, loaded):
    config, tables = loaded
    uuid = pay_uuid(fake, "pay-001")
    gone = {"external_id": "pay-001", "_sdc_deleted_at": WHEN}

    result = run_target(config, rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [gone]))

    assert result.rejects == []
    assert [(r.method, r.path) for r in write_calls(fake)] == [("DELETE", f"/transactions/{uuid}")]
    assert reads(fake, r"^/invoices") == []  # the memory kept the uuid the import answered
    tables.payments = [p for p in tables.payments if p["external_id"] != "pay-001"]
    assert_holds(fake, ds, tables)
    assert (result.counts(PAYMENTS_STREAM)["deleted"], result.counts(PAYMENTS_STREAM)["unchanged"]) == (1, 0)


@pytest.mark.parametrize("row", ["with-invoice", "key-only"])
def test_a_nested_payment_without_a_remembered_uuid_is_found_on_its_invoice(fake, ds, loaded, row):
    config, tables = loaded
    forget_transaction_uuids(config)
    uuid = pay_uuid(fake, "pay-002")
    gone = {"external_id": "pay-002", "_sdc_deleted_at": WHEN,
            **({"invoice_external_id": "inv-002"} if row == "with-invoice" else {})}

    result = run_target(config, rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [gone]))

    assert result.rejects == []
    assert [(r.method, r.path) for r in write_calls(fake)] == [("DELETE", f"/transactions/{uuid}")]
    invoice_uuid = fake.find_invoice(ds, "inv-002")["uuid"]
    # with the invoice named: one read of it; with the key only: one listing of the data source, then the invoice
    expected_listings = 0 if row == "with-invoice" else 1
    assert len(reads(fake, r"^/invoices$", query={"data_source_uuid": ds})) == expected_listings
    assert len(reads(fake, rf"^/invoices/{invoice_uuid}$")) == 1
    tables.payments = [p for p in tables.payments if p["external_id"] != "pay-002"]
    assert_holds(fake, ds, tables)
    assert result.counts(PAYMENTS_STREAM)["deleted"] == 1


def test_a_uuid_learnt_from_the_invoice_is_remembered_when_the_delete_fails(fake, ds, loaded):
    config, tables = loaded
    forget_transaction_uuids(config)
    uuid = pay_uuid(fake, "pay-002")
    gone = rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [{"external_id": "pay-002", "_sdc_deleted_at": WHEN}])
    fake.inject(Fault("error_before", method="DELETE", path_regex=r"^/transactions/", status=400))

    refused = run_target(config, gone)

    assert [(r["key"], r["status"]) for r in refused.rejects] == [({"external_id": "pay-002"}, 400)]
    engine = sa.create_engine(config["ledger_url"])
    with engine.connect() as conn:
        kept = conn.exec_driver_sql("SELECT uuid, parent FROM tcm_synced_objects WHERE object = 'transactions' "
                                    "AND external_id = 'pay-002'").all()
    engine.dispose()
    assert [tuple(row) for row in kept] == [(uuid, "inv-002")]
    fake.clear_requests()

    retried = run_target(config, gone)

    assert [(r.method, r.path) for r in write_calls(fake)] == [("DELETE", f"/transactions/{uuid}")]
    assert reads(fake, r"^/invoices") == []  # the uuid learnt last run: no lookup
    assert retried.counts(PAYMENTS_STREAM)["deleted"] == 1
    tables.payments = [p for p in tables.payments if p["external_id"] != "pay-002"]
    assert_holds(fake, ds, tables)


def test_a_nested_payment_deleted_with_a_lost_memory_is_deleted(fake, ds, loaded, tmp_path):
    config, tables = loaded
    config = fresh_memory(config, tmp_path, "lost")
    uuid = pay_uuid(fake, "pay-003")
    gone = {"external_id": "pay-003", "invoice_external_id": "inv-003", "_sdc_deleted_at": WHEN}

    result = run_target(config, rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [gone]))

    assert result.rejects == []
    assert [(r.method, r.path) for r in write_calls(fake)] == [("DELETE", f"/transactions/{uuid}")]
    tables.payments = [p for p in tables.payments if p["external_id"] != "pay-003"]
    assert_holds(fake, ds, tables)
    assert result.counts(PAYMENTS_STREAM)["deleted"] == 1


def test_a_nested_payment_absent_from_a_complete_full_table_version_is_deleted(fake, ds, loaded):
    config, tables = loaded
    forget_transaction_uuids(config)  # found through its invoice, as an older memory needs
    uuid = pay_uuid(fake, "pay-005")
    kept = [p for p in tables.payments if p["external_id"] != "pay-005"]
    head, *records = rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, kept)
    version = [head, {"type": "ACTIVATE_VERSION", "stream": PAYMENTS_STREAM, "version": 2},
               *(r.replace('"record"', '"version": 2, "record"') for r in records),
               schema("billing-audit", {"id": STRING}, key=["id"])]  # the tap moved on: the version is whole

    result = run_target(config, version)

    assert result.rejects == []
    assert [(r.method, r.path) for r in write_calls(fake)] == [("DELETE", f"/transactions/{uuid}")]
    tables.payments = kept
    assert_holds(fake, ds, tables)
    assert result.counts(PAYMENTS_STREAM)["deleted"] == 1


def test_a_deleted_payment_chartmogul_does_not_hold_is_unchanged_after_looking(fake, ds, loaded, tmp_path):
    config, tables = loaded
    config = fresh_memory(config, tmp_path, "lost")
    gone = {"external_id": "pay-never", "_sdc_deleted_at": WHEN}

    result = run_target(config, rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [gone]))

    assert write_calls(fake) == []
    assert len(reads(fake, r"^/invoices$", query={"data_source_uuid": ds})) == 1  # looked, did not assume
    assert result.counts(PAYMENTS_STREAM)["unchanged"] == 1
    assert_holds(fake, ds, tables)


# Line items -----------------------------------------------------------------------------------
@pytest.mark.parametrize("row", ["with-invoice", "key-only"])
def test_a_line_deleted_with_a_lost_memory_leaves_its_invoice(fake, ds, loaded, tmp_path, row):
    config, tables = loaded
    config = fresh_memory(config, tmp_path, "lost")
    gone = {"external_id": "inv-004-2", "_sdc_deleted_at": WHEN,
            **({"invoice_external_id": "inv-004"} if row == "with-invoice" else {})}

    result = run_target(config, rows_messages(LINES_STREAM, LINE_PROPS, [gone]))

    assert result.rejects == []
    assert sorted((r.method, r.path.split("/")[1]) for r in write_calls(fake)) == [("DELETE", "invoices"),
                                                                                  ("POST", "import")]
    tables.lines = [line for line in tables.lines if line["external_id"] != "inv-004-2"]
    assert_holds(fake, ds, tables)
    counts = result.counts(LINES_STREAM)
    assert (counts["deleted"], counts["corrected"], counts["unchanged"]) == (1, 0, 0)


def test_a_deleted_line_no_invoice_holds_is_unchanged_after_looking(fake, ds, loaded, tmp_path):
    config, tables = loaded
    config = fresh_memory(config, tmp_path, "lost")
    gone = {"external_id": "inv-009-1", "_sdc_deleted_at": WHEN}

    result = run_target(config, rows_messages(LINES_STREAM, LINE_PROPS, [gone]))

    assert result.rejects == []
    assert write_calls(fake) == []
    assert len(reads(fake, r"^/invoices$", query={"data_source_uuid": ds})) == 1
    assert result.counts(LINES_STREAM)["unchanged"] == 1
    assert_holds(fake, ds, tables)


@pytest.mark.parametrize("header", ["line-only", "with-changed-header"])
def test_a_deleted_line_counts_deleted_and_its_invoice_corrected(fake, ds, loaded, header):
    config, tables = loaded
    gone = {"external_id": "inv-005-2", "invoice_external_id": "inv-005", "_sdc_deleted_at": WHEN}
    messages = rows_messages(LINES_STREAM, LINE_PROPS, [gone])
    if header == "with-changed-header":
        tables.headers[4]["date"] = tables.headers[4]["date"].replace("T00:00:00", "T12:00:00")
        messages += rows_messages(HEADERS_STREAM, HEADER_PROPS, [tables.headers[4]])

    result = run_target(config, messages)

    assert result.rejects == []
    assert fake.count("DELETE", r"^/invoices/") == 1
    assert fake.count("POST", IMPORT_PATH) == 1
    tables.lines = [line for line in tables.lines if line["external_id"] != "inv-005-2"]
    assert_holds(fake, ds, tables)
    lines = result.counts(LINES_STREAM)
    assert (lines["deleted"], lines["corrected"]) == (1, 0)
    if header == "with-changed-header":
        assert result.counts(HEADERS_STREAM)["corrected"] == 1
    # a rerun of the same rows writes nothing
    fake.clear_requests()
    again = run_target(config, messages)
    assert again.rejects == []
    assert write_calls(fake) == []
