"""A lost sync memory costs reads, never writes or losses (against the fake in recorded shapes).

The memory is lost whenever the working directory is new: another worker, a deleted
file, a container without a volume. ChartMogul then answers in its own shapes: unset
text as "", dates as `….000Z`, invoices without a data source.
"""

from __future__ import annotations

import json
import pathlib
import sqlite3
import subprocess
import sys
import time
import typing as t
from decimal import Decimal

import pytest

from tests.billing import (
    IMPORT_PATH,
    INVOICES,
    INVOICES_STREAM,
    REFUNDS,
    REFUNDS_STREAM,
    assert_billing_landed,
    assert_invoice_matches,
    billing_config,
    billing_messages,
    customers_messages,
    invoices_messages,
    plans_messages,
    refunds_messages,
    transactions_by_external_id,
)
from tests.fake_chartmogul import Fault
from tests.helpers import fresh_memory, reads, write_calls
from tests.running import run_target
from tests.singer_messages import customers_stream, lines

STREAM = "public-customers"


def customer_rows(n: int) -> list[dict[str, t.Any]]:
    """Customers as a warehouse holds them: many optional fields unset, dates with offsets."""
    rows = []
    for i in range(n):
        row: dict[str, t.Any] = {"external_id": f"c-{i:03d}", "name": f"Customer {i}"}
        if i % 2:
            row["email"] = f"c{i}@example.test"
        if i % 3:
            row["company"] = f"Company {i}"
        if i % 4 == 0:
            row["country"] = "DE"
            row["city"] = "Berlin"
        else:
            row["country"] = None
            row["city"] = None
        row["zip"] = None
        row["lead_created_at"] = "2024-03-01T10:00:00+02:00" if i % 5 == 0 else None
        row["tags"] = ["Enterprise", "eu"] if i % 6 == 0 else []
        rows.append(row)
    return rows


@pytest.mark.parametrize("unset_city", ["", None])
def test_unchanged_customers_with_the_memory_lost_cost_one_read_per_200_and_no_write(
    fake, ds, base_config, tmp_path, unset_city
):
    fake.unset_city = unset_city
    rows = customer_rows(120)
    first = run_target(base_config, customers_stream(STREAM, rows))
    assert first.counts(STREAM)["created"] == 120
    fake.clear_requests()

    second = run_target(fresh_memory(base_config, tmp_path, "lost"), customers_stream(STREAM, rows))

    assert write_calls(fake) == []
    listing = reads(fake, r"^/customers$", query={"data_source_uuid": ds})
    assert len(listing) == 1  # 120 customers: one page of 200
    assert [r.path for r in fake.requests] == ["/ping", f"/data_sources/{ds}", "/customers"]
    counts = second.counts(STREAM)
    assert (counts["unchanged"], counts["updated"], counts["created"], counts["rejected"]) == (120, 0, 0, 0)


def test_450_unchanged_customers_with_the_memory_lost_cost_three_pages_of_200_and_no_write(
    fake, ds, base_config, tmp_path
):
    rows = customer_rows(450)
    run_target(base_config, customers_stream(STREAM, rows))
    fake.clear_requests()

    second = run_target(fresh_memory(base_config, tmp_path, "lost"), customers_stream(STREAM, rows))

    assert write_calls(fake) == []
    pages = reads(fake, r"^/customers$", query={"data_source_uuid": ds})
    assert [r.query.get("per_page") for r in pages] == ["200", "200", "200"]
    assert [r.path for r in fake.requests] == ["/ping", f"/data_sources/{ds}", "/customers", "/customers", "/customers"]
    counts = second.counts(STREAM)
    assert (counts["unchanged"], counts["updated"], counts["created"], counts["rejected"]) == (450, 0, 0, 0)


def held_back_run(config: dict[str, t.Any], tmp_path: pathlib.Path, first: str, rest: str,
                  seen: t.Callable[[], bool]) -> tuple[bool, int, str]:
    """Run the CLI on `first`, wait until `seen()` (the rest of the input has not come yet), then send `rest`:
    whether it was seen before the rest came, the exit code and stderr.
    """
    config_path = tmp_path / "held-back.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "target_chartmogul", "--config", str(config_path)], cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    try:
        proc.stdin.write(first)
        proc.stdin.flush()
        deadline = time.monotonic() + 30
        while not seen() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        early = seen()
        proc.stdin.write(rest)
    finally:
        _, stderr = proc.communicate(timeout=60)
    return early, proc.returncode, stderr


@pytest.mark.subprocess  # a tap's stdin held open between two parts of the input
def test_with_the_memory_lost_the_listing_is_read_while_the_records_still_arrive(fake, ds, base_config, tmp_path):
    rows = customer_rows(3)
    run_target(base_config, customers_stream(STREAM, rows))
    fake.clear_requests()
    messages = lines(customers_stream(STREAM, rows)).splitlines(keepends=True)

    # the SCHEMA and one record; the others have not come yet
    early, code, stderr = held_back_run(fresh_memory(base_config, tmp_path, "lost"), tmp_path, "".join(messages[:2]),
                                        "".join(messages[2:]), lambda: bool(reads(fake, r"^/customers$")))

    assert early, stderr
    assert code == 0, stderr
    assert len(reads(fake, r"^/customers$")) == 1
    assert write_calls(fake) == []


@pytest.mark.subprocess  # a tap's stdin held open between two parts of the input
def test_with_no_memory_the_plans_new_invoices_name_are_listed_before_the_plans_stream_comes(
        fake, ds, base_config, tmp_path):
    config = billing_config(base_config, batch_size_rows=2)  # the invoices are drained while they arrive
    # tap-postgres's order: accounts, invoices, then price_plans (held back until the plans were listed)
    first = lines(billing_messages(("customers", "invoices")))
    rest = lines(billing_messages(("plans", "refunds")))

    early, code, stderr = held_back_run(fresh_memory(config, tmp_path, "first"), tmp_path, first, rest,
                                        lambda: bool(reads(fake, r"^/plans$")))

    assert early, stderr
    assert code == 0, stderr
    assert [r.query for r in reads(fake, r"^/plans$")] == [{"data_source_uuid": ds, "per_page": "200"}]  # one listing
    assert_billing_landed(fake, ds)


def test_with_the_memory_lost_records_that_name_no_object_cost_no_call(fake, ds, base_config, tmp_path):
    rows = [{**row, "external_id": " "} for row in customer_rows(2)]  # valid for the schema, but no external id

    result = run_target(fresh_memory(base_config, tmp_path, "lost"), customers_stream(STREAM, rows))

    assert fake.requests == []  # no listing, not even the account check
    assert [(r["field"], r["key"]) for r in result.rejects] == [("external_id", {"external_id": " "})] * 2


def test_a_changed_customer_with_the_memory_lost_costs_only_its_own_write(fake, ds, base_config, tmp_path):
    rows = customer_rows(30)
    run_target(base_config, customers_stream(STREAM, rows))
    fake.clear_requests()
    rows[7] = {**rows[7], "company": "Renamed Ltd"}

    second = run_target(fresh_memory(base_config, tmp_path, "lost"), customers_stream(STREAM, rows))

    writes = write_calls(fake)
    assert [(r.method, r.body) for r in writes] == [("PATCH", {"company": "Renamed Ltd"})]
    assert second.counts(STREAM)["updated"] == 1
    assert second.counts(STREAM)["unchanged"] == 29


def test_unchanged_billing_rerun_with_the_memory_lost_makes_no_write(fake, ds, base_config, tmp_path):
    config = billing_config(base_config)
    run_target(config, billing_messages())
    before = fake.dump_state()
    fake.clear_requests()

    second = run_target(fresh_memory(config, tmp_path, "lost"), billing_messages())

    assert write_calls(fake) == []
    assert fake.dump_state() == before
    assert second.rejects == []
    # one listing page per kind of object (every data source here holds fewer than 200)
    assert len(reads(fake, r"^/(plans|customers|invoices)$")) == 3
    assert second.counts(INVOICES_STREAM)["unchanged"] == len(INVOICES)
    assert second.counts(REFUNDS_STREAM)["unchanged"] == len(REFUNDS)


def test_refunds_sent_in_a_later_run_with_no_memory_land_on_their_invoices(fake, ds, base_config, tmp_path):
    config = billing_config(base_config)
    run_target(config, billing_messages(("plans", "customers", "invoices")))
    fake.clear_requests()

    later = run_target(fresh_memory(config, tmp_path, "lost"), refunds_messages())

    assert later.rejects == []
    assert_billing_landed(fake, ds)
    counts = later.counts(REFUNDS_STREAM)
    assert (counts["created"], counts["rejected"]) == (len(REFUNDS), 0)
    assert len(reads(fake, r"^/invoices$", query={"data_source_uuid": ds})) == 1  # one listing, no per-refund lookup
    assert len(write_calls(fake)) == len(REFUNDS)


def late_payment(invoice: dict[str, t.Any]) -> dict[str, t.Any]:
    payment = {"type": "payment", "result": "successful", "date": "2024-02-20T08:00:00+00:00",
               "external_id": f"late-{invoice['external_id']}", "amount_in_cents": Decimal("500.00")}
    return {**invoice, "transactions": [*invoice["transactions"], payment]}


@pytest.mark.parametrize("memory", ["kept", "lost"])
def test_a_payment_added_later_to_an_imported_invoice_lands(fake, ds, base_config, tmp_path, memory):
    config = billing_config(base_config)
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages(INVOICES)])
    held_before = fake.find_invoice(ds, INVOICES[1]["external_id"])
    assert held_before is not None
    fake.clear_requests()
    if memory == "lost":
        config = fresh_memory(config, tmp_path, "lost")
    changed = [late_payment(INVOICES[1]) if i == 1 else invoice for i, invoice in enumerate(INVOICES)]

    result = run_target(config, invoices_messages(changed))

    assert result.rejects == []
    held = assert_invoice_matches(fake, ds, changed[1])
    assert held["uuid"] == held_before["uuid"]
    by_ext = transactions_by_external_id(fake)
    assert len(by_ext["late-inv-2"]) == 1
    assert [(r.method, r.path) for r in write_calls(fake)] == [("POST", f"/import/invoices/{held['uuid']}/transactions")]
    counts = result.counts(INVOICES_STREAM)
    assert (counts["updated"], counts["unchanged"], counts["created"]) == (1, len(INVOICES) - 1, 0)


def test_refunds_land_on_an_invoice_whose_import_answer_was_lost(fake, ds, base_config, tmp_path):
    config = billing_config(base_config)
    fake.inject(Fault("drop_after", method="POST", path_regex=IMPORT_PATH, times=1))
    first = run_target(config, billing_messages(("plans", "customers", "invoices")))
    assert first.rejects == []
    fake.clear_requests()

    later = run_target(config, refunds_messages())

    assert later.rejects == []
    assert_billing_landed(fake, ds)
    assert later.counts(REFUNDS_STREAM)["created"] == len(REFUNDS)
    assert reads(fake, r"^/invoices$") == []  # the memory learnt every invoice's uuid in the first run


def test_refunds_land_on_invoices_the_memory_holds_without_a_uuid_and_the_uuids_are_learnt(
    fake, ds, base_config, tmp_path
):
    config = billing_config(base_config)
    run_target(config, billing_messages(("plans", "customers", "invoices")))
    ledger = sqlite3.connect(config["ledger_url"].removeprefix("sqlite:///"))
    with ledger:  # as a lost import answer leaves them: remembered, no uuid
        nulled = ledger.execute("UPDATE tcm_synced_objects SET uuid = NULL WHERE object = 'invoices'").rowcount
    ledger.close()
    assert nulled == len(INVOICES)
    fake.clear_requests()

    later = run_target(config, refunds_messages())

    assert later.rejects == []
    assert_billing_landed(fake, ds)
    assert later.counts(REFUNDS_STREAM)["created"] == len(REFUNDS)
    refunded = {refund["invoice_ref"] for refund in REFUNDS}
    assert len(reads(fake, r"^/invoices$")) == len(refunded)  # one lookup per invoice refunded, none per invoice held
    fake.clear_requests()
    again = run_target(config, refunds_messages())
    assert reads(fake, r"^/invoices$") == []  # the uuids found were remembered
    assert again.counts(REFUNDS_STREAM)["unchanged"] == len(REFUNDS)


def test_dry_run_does_not_report_invoices_chartmogul_holds_as_new(fake, ds, base_config, tmp_path):
    config = billing_config(base_config)
    run_target(config, billing_messages(("plans", "customers", "invoices")))
    fake.clear_requests()

    dry = run_target(fresh_memory({**config, "dry_run": True}, tmp_path, "lost"),
                     invoices_messages([late_payment(INVOICES[0]), *INVOICES[1:]]))

    counts = dry.counts(INVOICES_STREAM)
    assert (counts["created"], counts["updated"], counts["unchanged"]) == (0, 1, len(INVOICES) - 1)
    assert write_calls(fake) == []
    assert sorted(transactions_by_external_id(fake)) == sorted(tx["external_id"] for i in INVOICES
                                                               for tx in i["transactions"])


@pytest.mark.parametrize("memory", ["kept", "lost"])
def test_with_invoice_changes_keep_a_corrected_invoice_is_reported_on_every_run_never_counted_present(
    fake, ds, base_config, tmp_path, memory, caplog
):
    config = billing_config(base_config)
    config["streams"] = {**config["streams"], INVOICES_STREAM: {"invoice_changes": "keep"}}
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages(INVOICES)])
    before = fake.dump_state()
    corrected = [dict(invoice) for invoice in INVOICES]
    corrected[2] = {**INVOICES[2], "currency": "EUR"}
    if memory == "lost":
        config = fresh_memory(config, tmp_path, "lost")

    for _ in range(2):  # and again on the next run: the memory never records it as written
        fake.clear_requests()
        caplog.clear()
        result = run_target(config, invoices_messages(corrected))

        counts = result.counts(INVOICES_STREAM)
        assert (counts["changed_not_applied"], counts["unchanged"], counts["created"]) == (1, len(INVOICES) - 1, 0)
        warnings = [r.getMessage() for r in caplog.records if "changed in the source" in r.getMessage()]
        assert len(warnings) == 1 and "inv-3" in warnings[0] and "currency" in warnings[0], warnings
        assert write_calls(fake) == []
        assert fake.dump_state() == before
