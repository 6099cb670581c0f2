"""The sync memory: only changed rows are sent, rows that left are deleted, refused rows retried.

Every test runs twice: with the memory in SQLite and in the real PostgreSQL server.
"""

from __future__ import annotations

import typing as t

import pytest
import requests
import sqlalchemy as sa

from tests.customer_rows import STREAM, rows, stream
from tests.running import API_KEY, run_target
from tests.singer_messages import INTEGER, STRING, customers_stream, record, schema


@pytest.fixture
def config(base_config, ledger_url):
    return {**base_config, "ledger_url": ledger_url,
            "streams": {STREAM: {"custom_attributes": ["seats"], "delete_missing": True}}}


def versioned(rows_: list[dict[str, t.Any]], version: int, *, complete: bool = True) -> list[dict[str, t.Any]]:
    """A full-table sync as tap-postgres sends it with emit_activate_version_messages."""
    head, *records = stream(rows_)
    for message in records:
        message["version"] = version
    tail: list[dict[str, t.Any]] = []
    if complete:  # the tap moves on to its next stream: this one arrived whole
        tail = [schema("public-audit", {"id": INTEGER}, key=["id"])]
    return [head, {"type": "ACTIVATE_VERSION", "stream": STREAM, "version": version}, *records, *tail]


def test_unchanged_rerun_makes_zero_calls(fake, ds, config):
    run_target(config, stream(rows(200)))
    fake.clear_requests()
    result = run_target(config, stream(rows(200)))
    assert fake.count() == 0
    assert result.counts(STREAM)["unchanged"] == 200


def test_one_changed_row_makes_only_that_customers_calls(fake, ds, config):
    run_target(config, stream(rows(50)))
    changed = rows(50)
    changed[7] = {**changed[7], "name": "Renamed", "seats": 99, "tags": ["a", "b"]}
    uuid = fake.find_customers(ds, "c0007")[0]["uuid"]
    fake.clear_requests()

    result = run_target(config, stream(changed))

    # Besides the account check made before a run's first call (ping, data source),
    # every call is about the changed customer, and none is a lookup.
    calls = [r for r in fake.requests if r.path != "/ping" and not r.path.startswith("/data_sources/")]
    assert len(calls) == len(fake.requests) - 2
    assert [(r.method, r.path, r.body) for r in calls] == [
        ("PATCH", f"/customers/{uuid}", {"name": "Renamed"}),
        ("PUT", f"/customers/{uuid}/attributes/custom", {"custom": {"seats": 99}}),
        ("POST", f"/customers/{uuid}/attributes/tags", {"tags": ["b"]}),
    ]
    assert [r for r in calls if r.method == "GET"] == []  # the memory knew the uuid
    customer = fake.customers[uuid]
    assert (customer["name"], customer["attributes"]["custom"]["seats"]) == ("Renamed", 99)
    assert sorted(customer["attributes"]["tags"]) == ["a", "b"]
    assert result.counts(STREAM)["updated"] == 1 and result.counts(STREAM)["unchanged"] == 49


def test_customer_deleted_in_chartmogul_is_created_again_on_its_next_change(fake, ds, config):
    run_target(config, stream(rows(3)))
    lost = fake.find_customers(ds, "c0001")[0]["uuid"]
    deleted = requests.delete(f"{fake.url}/customers/{lost}", auth=(API_KEY, ""), timeout=5)  # as in the UI
    assert deleted.status_code == 204
    changed = rows(3)
    changed[1]["name"] = "Back again"
    run_target(config, stream(changed))
    found = fake.find_customers(ds, "c0001")
    assert len(found) == 1 and found[0]["name"] == "Back again" and found[0]["uuid"] != lost


def test_five_rows_removed_from_a_full_table_version_delete_exactly_those(fake, ds, config):
    run_target(config, versioned(rows(40), 1))
    kept = [r for i, r in enumerate(rows(40)) if i not in {3, 9, 17, 25, 38}]
    result = run_target(config, versioned(kept, 2))
    assert sorted(c["external_id"] for c in fake.customers.values()) == sorted(r["external_id"] for r in kept)
    assert result.counts(STREAM)["deleted"] == 5
    fake.clear_requests()
    run_target(config, versioned(kept, 3))  # the memory forgot the deleted ones: nothing more to do
    assert fake.count(method="DELETE") == 0


def test_half_the_rows_removed_deletes_none_and_says_why(fake, ds, config, caplog):
    run_target(config, versioned(rows(20), 1))
    result = run_target({**config, "on_reject": "fail"}, versioned(rows(10), 2), expect_error=True)
    assert len(fake.customers) == 20
    assert "lacks 10 of the 20 customers" in caplog.text and "deleting none" in caplog.text
    assert result.error is not None and "max_delete_fraction" in str(result.error)


def test_without_a_complete_version_nothing_is_deleted(fake, ds, config):
    run_target(config, versioned(rows(10), 1))
    run_target(config, stream(rows(8)))  # incremental: no ACTIVATE_VERSION
    run_target(config, versioned(rows(8), 2, complete=False))  # input ended inside the version
    assert len(fake.customers) == 10


def test_trailing_activate_version_also_marks_a_version_whole(fake, ds, config):
    run_target(config, versioned(rows(10), 1))
    messages = versioned(rows(9), 2, complete=False)
    messages.append({"type": "ACTIVATE_VERSION", "stream": STREAM, "version": 2})
    run_target(config, messages)
    assert len(fake.customers) == 9


def test_sdc_deleted_at_deletes_the_customer(fake, ds, config):
    run_target(config, stream(rows(3)))
    deleted = {"external_id": "c0002", "_sdc_deleted_at": "2024-05-01T00:00:00+00:00"}
    props = {"external_id": STRING, "name": STRING, "seats": INTEGER,
             "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
    result = run_target(config, [schema(STREAM, props), record(STREAM, deleted)])
    assert fake.find_customers(ds, "c0002") == []
    assert len(fake.customers) == 2
    assert result.counts(STREAM)["deleted"] == 1


def test_refused_invoice_lands_next_run_once_its_plan_exists(fake, ds, config):
    invoice_props = {"external_id": STRING, "customer_external_id": STRING, "date": STRING, "currency": STRING,
                     "line_items": {"type": ["array", "null"], "items": {"type": "object"}}}
    invoice = {"external_id": "inv-1", "customer_external_id": "c0000", "date": "2024-02-01T00:00:00Z",
               "currency": "EUR", "line_items": [{"type": "subscription", "subscription_external_id": "s1",
                                                  "plan_external_id": "gold", "amount_in_cents": 4900}]}
    first = run_target(config, [*stream(rows(1)), schema("billing-invoices", invoice_props),
                                record("billing-invoices", invoice)])
    assert [r["field"] for r in first.rejects] == ["line_items[0].plan_external_id"]
    assert fake.invoices == {}

    plan_props = {"external_id": STRING, "name": STRING, "interval_count": INTEGER, "interval_unit": STRING}
    second = run_target(config, [schema("billing-plans", plan_props),
                                 record("billing-plans", {"external_id": "gold", "name": "Gold",
                                                          "interval_count": 1, "interval_unit": "month"})])
    landed = fake.find_invoice(ds, "inv-1")
    assert landed is not None and landed["line_items"][0]["plan_uuid"] == fake.find_plan(ds, "gold")["uuid"]
    counts = second.counts("billing-invoices")
    assert (counts["retried"], counts["retry_refused"], counts["created"]) == (1, 0, 1)

    fake.clear_requests()
    third = run_target(config, [schema("billing-plans", plan_props)])
    assert fake.count(path_regex="invoices") == 0  # it left the list
    assert third.counts("billing-invoices") == {}


def test_newer_record_replaces_the_remembered_one(fake, ds, config):
    first = run_target(config, stream([{"external_id": "x", "name": "X", "seats": 1, "country": "Germany"}]))
    assert len(first.rejects) == 1
    second = run_target(config, stream([{"external_id": "x", "name": "X", "seats": 1, "country": "DE"}]))
    assert fake.find_customers(ds, "x")[0]["country"] == "DE"
    assert second.counts(STREAM).get("retried", 0) == 0


def test_memory_wiped_between_runs_gives_no_duplicates(fake, ds, config, ledger_url):
    run_target(config, stream(rows(30)))
    engine = sa.create_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for table in ("tcm_synced_objects", "tcm_rejected_records", "tcm_stream_schemas"):
            conn.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()
    changed = rows(30)
    changed[0]["name"] = "Changed after the wipe"
    result = run_target(config, stream(changed))
    assert len(fake.customers) == 30
    assert fake.find_customers(ds, "c0000")[0]["name"] == "Changed after the wipe"
    assert result.counts(STREAM)["created"] == 0


def test_memory_holds_no_secret(fake, ds, config, ledger_url):
    run_target(config, stream([*rows(3), {"external_id": "bad", "name": "B", "country": "Nowhere"}]))
    engine = sa.create_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as conn:
        dump = "".join(
            str(row) for table in ("tcm_synced_objects", "tcm_rejected_records", "tcm_stream_schemas")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        )
    engine.dispose()
    assert "c0001" in dump and "Nowhere" in dump
    assert API_KEY not in dump


def test_a_change_in_an_unmapped_column_sends_nothing(fake, ds, config):
    extra = {"seats": INTEGER, "internal_note": STRING}
    first = [{**row, "internal_note": "a"} for row in rows(20)]
    run_target(config, customers_stream(STREAM, first, extra))
    fake.clear_requests()
    second = [{**row, "internal_note": "changed"} for row in rows(20)]
    result = run_target(config, customers_stream(STREAM, second, extra))
    assert fake.count() == 0
    assert result.counts(STREAM)["unchanged"] == 20
    fake.clear_requests()
    third = run_target(config, customers_stream(STREAM, second, extra))  # now the record itself is remembered
    assert fake.count() == 0 and third.counts(STREAM)["unchanged"] == 20


def test_ids_with_surrounding_spaces_are_not_taken_for_missing_rows(fake, ds, config):
    spaced = [{**row, "external_id": f" {row['external_id']} "} for row in rows(10)]
    config["streams"][STREAM]["max_delete_fraction"] = 1.0  # no guard: only the key comparison protects them
    run_target(config, versioned(spaced, 1))
    result = run_target(config, versioned(spaced, 2))
    assert len(fake.customers) == 10
    assert result.counts(STREAM).get("deleted", 0) == 0


def test_invoice_for_a_customer_deleted_in_chartmogul_is_refused_and_the_memory_forgets_it(fake, ds, config):
    invoice_props = {"external_id": STRING, "customer_external_id": STRING, "date": STRING, "currency": STRING,
                     "line_items": {"type": ["array", "null"], "items": {"type": "object"}}}

    def invoice(external_id):
        return {"external_id": external_id, "customer_external_id": "c0000", "date": "2024-02-01T00:00:00Z",
                "currency": "EUR", "line_items": [{"type": "one_time", "amount_in_cents": 100}]}

    run_target(config, [*stream(rows(1)), schema("billing-invoices", invoice_props),
                        record("billing-invoices", invoice("inv-1"))])
    lost = fake.find_customers(ds, "c0000")[0]["uuid"]
    assert requests.delete(f"{fake.url}/customers/{lost}", auth=(API_KEY, ""), timeout=5).status_code == 204

    second = run_target(config, [schema("billing-invoices", invoice_props), record("billing-invoices", invoice("inv-2"))])
    assert [r["status"] for r in second.rejects] == [404]
    assert lost in second.rejects[0]["reason"]

    third = run_target(config, stream(rows(1)))  # the same, unchanged row: the memory no longer vouches for it
    assert third.counts(STREAM)["created"] == 1
    assert len(fake.find_customers(ds, "c0000")) == 1
    assert fake.find_invoice(ds, "inv-2") is not None  # the refused invoice was retried after its customer
    assert third.counts("billing-invoices")["retried"] == 1
