"""Invoices change after import: corrections, voids and deletions reach ChartMogul (issue 11).

The source is the three-table billing schema (headers, lines, payments in currency units)
plus refunds imported through a transactions stream of their own. After the next run
ChartMogul must hold what the source holds: corrected invoices with their refunds still
attached, voided ones voided, deleted ones gone, no duplicates.
"""

from __future__ import annotations

import signal
import typing as t
from decimal import Decimal

import pytest

from tests.billing import IMPORT_PATH, customers_messages, encode, plans_messages
from tests.fake_chartmogul import Fault
from tests.helpers import fresh_memory, write_calls
from tests.robustness.load import TargetProcess, wait_for
from tests.running import run_target
from tests.singer_messages import DATETIME, NUMBER, STRING, lines, schema
from tests.three_tables import (
    HEADER_PROPS,
    HEADERS_STREAM,
    LINE_PROPS,
    LINES_STREAM,
    Tables,
    assert_holds,
    streams_config,
)

REFUNDS_STREAM = "billing-refunds"
REFUND_PROPS = {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "result": STRING,
                "date": DATETIME, "amount": NUMBER}
DELETED = {"_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}


def config_for(base_config: dict[str, t.Any], **options: t.Any) -> dict[str, t.Any]:
    streams = streams_config()
    for name in streams:
        streams[name] = {**streams[name], **options}
    streams[REFUNDS_STREAM] = {"object": "transactions", "amount_unit": "units"}
    return {**base_config, "streams": streams}


def refunds(invoices: t.Iterable[str]) -> list[dict[str, t.Any]]:
    return [{"external_id": f"ref-{ext}", "invoice_external_id": ext, "type": "refund", "result": "successful",
             "date": "2024-12-01T00:00:00+00:00", "amount": Decimal("5.00")} for ext in invoices]


def rows_messages(stream: str, props: dict[str, t.Any], rows: list[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(stream, props), *(encode({"type": "RECORD", "stream": stream, "record": r}) for r in rows)]


def first_load(base_config: dict[str, t.Any], tables: Tables, refunded: list[str], **options: t.Any) -> None:
    result = run_target(config_for(base_config, **options),
                        [*plans_messages(), *customers_messages(), *tables.messages(),
                         *rows_messages(REFUNDS_STREAM, REFUND_PROPS, refunds(refunded))])
    assert result.rejects == []


def assert_refunds_attached(fake: t.Any, ds: str, refunded: list[str], tables: Tables) -> None:
    existing = {h["external_id"] for h in tables.headers}
    for ext in refunded:
        held = fake.find_invoice(ds, ext)
        if ext not in existing:
            assert held is None, ext
            continue
        assert [tx["external_id"] for tx in held["transactions"]].count(f"ref-{ext}") == 1, ext


@pytest.mark.parametrize("memory", ["same", "fresh"])
def test_corrections_voids_and_deletions_reach_chartmogul(fake, ds, base_config, tmp_path, memory):
    tables = Tables(invoices=24)
    refunded = [f"inv-{n:03d}" for n in (1, 2, 3, 7, 11)]
    first_load(base_config, tables, refunded, delete_missing=True)
    # Ten corrections: five amounts, three header dates, two new lines (some of them refunded).
    changed_lines = []
    for n in (1, 2, 3, 4, 5):
        line = next(li for li in tables.lines if li["external_id"] == f"inv-{n:03d}-1")
        line["amount"] += Decimal("10.00") if n % 6 else Decimal("1000")
        changed_lines.append(line)
    changed_headers = []
    for n in (7, 8, 9):
        header = tables.headers[n - 1]
        header["date"] = header["date"].replace("T00:00:00", "T12:00:00")
        changed_headers.append(header)
    for n in (10, 11):
        extra = {**tables.lines[2 * (n - 1) + 1], "external_id": f"inv-{n:03d}-3", "amount": Decimal("7.25")}
        tables.lines.append(extra)
        changed_lines.append(extra)
    # Five voided, three deleted.
    for n in (13, 14, 15, 16, 17):
        tables.headers[n - 1]["status"] = "voided"
        changed_headers.append(tables.headers[n - 1])
    deleted = [f"inv-{n:03d}" for n in (19, 20, 21)]
    gone = [{"external_id": ext, "_sdc_deleted_at": "2024-12-02T00:00:00+00:00"} for ext in deleted]
    tables.headers = [h for h in tables.headers if h["external_id"] not in deleted]
    tables.lines = [li for li in tables.lines if li["invoice_external_id"] not in deleted]
    tables.payments = [p for p in tables.payments if p["invoice_external_id"] not in deleted]
    config = config_for(base_config, delete_missing=True)
    if memory == "fresh":
        config = fresh_memory(config, tmp_path, "fresh")
    fake.clear_requests()

    # An incremental run: only the changed rows (tap-postgres, log-based for the deletions).
    result = run_target(config, [*rows_messages(LINES_STREAM, LINE_PROPS, changed_lines),
                                 *rows_messages(HEADERS_STREAM, {**HEADER_PROPS, **DELETED}, [*changed_headers, *gone])])

    assert result.rejects == []
    assert_holds(fake, ds, tables)
    assert_refunds_attached(fake, ds, refunded, tables)
    with fake.lock:
        voided = sorted(i["external_id"] for i in fake.invoices.values() if i.get("status") == "voided")
    assert voided == [f"inv-{n:03d}" for n in (13, 14, 15, 16, 17)]
    headers, line_counts = result.counts(HEADERS_STREAM), result.counts(LINES_STREAM)
    assert (headers["corrected"], headers["status_changed"], headers["deleted"]) == (3, 5, 3)
    assert line_counts["corrected"] == len(changed_lines)
    assert fake.count("PUT", r"/status$") == 5
    # A rerun changes nothing more.
    fake.clear_requests()
    again = run_target(config, [*rows_messages(LINES_STREAM, LINE_PROPS, changed_lines),
                                *rows_messages(HEADERS_STREAM, HEADER_PROPS, changed_headers)])
    assert again.rejects == []
    assert write_calls(fake) == []


def test_invoice_changes_keep_touches_nothing_and_reports_every_changed_invoice(fake, ds, base_config, caplog):
    tables = Tables(invoices=8)
    first_load(base_config, tables, [], invoice_changes="keep")
    before = fake.dump_state()
    changed_lines = []
    for n in (1, 2, 3):
        line = next(li for li in tables.lines if li["external_id"] == f"inv-{n:03d}-2")
        line["quantity"] = 3
        changed_lines.append(line)
    header = {**tables.headers[4], "currency": "USD"}
    fake.clear_requests()

    result = run_target(config_for(base_config, invoice_changes="keep"),
                        [*rows_messages(LINES_STREAM, LINE_PROPS, changed_lines),
                         *rows_messages(HEADERS_STREAM, HEADER_PROPS, [header])])

    assert write_calls(fake) == []
    assert fake.dump_state() == before
    assert result.counts(LINES_STREAM)["changed_not_applied"] == 3
    assert result.counts(HEADERS_STREAM)["changed_not_applied"] == 1
    warned = sorted({r.getMessage().split()[1] for r in caplog.records if "invoice_changes is 'keep'" in r.getMessage()})
    assert warned == ["inv-001", "inv-002", "inv-003", "inv-005"]


def test_a_mass_deletion_beyond_max_delete_fraction_deletes_nothing_and_says_why(fake, ds, base_config, caplog):
    tables = Tables(invoices=10)
    config = config_for(base_config, delete_missing=True)

    def version(headers: list[dict[str, t.Any]], number: int) -> list[t.Any]:
        head, *records = rows_messages(HEADERS_STREAM, HEADER_PROPS, headers)
        tail = [schema("billing-audit", {"id": STRING}, key=["id"])]  # the tap moved on: the version is whole
        return [head, {"type": "ACTIVATE_VERSION", "stream": HEADERS_STREAM, "version": number},
                *(r.replace('"record"', f'"version": {number}, "record"') for r in records), *tail]

    run_target(config, [*plans_messages(), *customers_messages(), *tables.messages(("lines",)),
                        *version(tables.headers, 1)])
    assert len(fake.invoices) == 10
    fake.clear_requests()
    result = run_target(config, version(tables.headers[:5], 2))

    assert len(fake.invoices) == 10
    assert fake.count("DELETE") == 0
    assert "lacks 5 of the 10 invoices this stream wrote" in caplog.text and "deleting none" in caplog.text
    assert result.counts(HEADERS_STREAM)["deleted"] == 0


@pytest.mark.parametrize("updates", ["patch", "refused"])
def test_a_failed_payment_that_later_succeeded_is_updated(fake, ds, base_config, updates):
    tables = Tables(invoices=4)
    tables.payments[0]["result"] = "failed"
    first_load(base_config, tables, ["inv-001"])
    fake.lifecycle.transaction_updates = updates
    tables.payments[0]["result"] = "successful"
    fake.clear_requests()

    result = run_target(config_for(base_config), tables.messages(("payments",)))

    assert result.rejects == []
    assert_holds(fake, ds, tables)
    assert_refunds_attached(fake, ds, ["inv-001"], tables)
    assert result.counts("billing-payments")["corrected"] == 1
    methods = sorted(r.method for r in write_calls(fake))
    assert methods == (["PATCH"] if updates == "patch" else ["DELETE", "PATCH", "POST"])


def test_a_refused_status_transition_is_a_reject_with_chartmogul_s_message(fake, ds, base_config):
    tables = Tables(invoices=3)
    tables.headers[0]["status"] = "voided"
    first_load(base_config, tables, [])
    assert fake.find_invoice(ds, "inv-001")["status"] == "voided"  # imported already voided: voided right after
    tables.headers[0]["status"] = "written_off"

    result = run_target(config_for(base_config), rows_messages(HEADERS_STREAM, HEADER_PROPS, tables.headers[:1]))

    assert [(r["key"], r["field"], r["status"], r["reason"]) for r in result.rejects] == [
        ({"external_id": "inv-001"}, None, 422, "ChartMogul refused it: Status transition is not allowed")]


def test_a_run_killed_between_the_delete_and_the_new_import_is_repaired_by_the_next(fake, ds, base_config,
                                                                                    tmp_path):
    tables = Tables(invoices=4)
    work = tmp_path / "work"
    work.mkdir()
    config = {**config_for(base_config), "ledger_url": f"sqlite:///{work / 'ledger.db'}", "max_retries": 50,
              "request_timeout": 2}
    result = run_target(config, [*plans_messages(), *customers_messages(), *tables.messages(),
                                 *rows_messages(REFUNDS_STREAM, REFUND_PROPS, refunds(["inv-002"]))])
    assert result.rejects == []
    line = next(li for li in tables.lines if li["external_id"] == "inv-002-1")
    line["amount"] += Decimal("1.00")
    fake.inject(Fault("drop_before", method="POST", path_regex=IMPORT_PATH, times=1000))  # the import never lands
    feed = work / "change.singer"
    feed.write_text(lines(rows_messages(LINES_STREAM, LINE_PROPS, [line])))
    proc = TargetProcess(config, work, input_file=feed)
    try:
        wait_for(lambda: fake.count("DELETE", r"^/invoices/") == 1 and fake.count("POST", IMPORT_PATH) >= 2,
                 timeout=60)
    finally:
        proc.kill(signal.SIGKILL)
    proc.wait()
    assert fake.find_invoice(ds, "inv-002") is None  # deleted, not imported again
    fake.clear_faults()

    # The next run does not carry that line at all.
    rerun = run_target(config, customers_messages())

    assert rerun.rejects == []
    assert_holds(fake, ds, tables)
    assert_refunds_attached(fake, ds, ["inv-002"], tables)


def test_a_dry_run_reports_corrections_and_voids_and_writes_nothing(fake, ds, base_config):
    tables = Tables(invoices=6)
    first_load(base_config, tables, ["inv-002"])
    before = fake.dump_state()
    line = next(li for li in tables.lines if li["external_id"] == "inv-002-1")
    line["amount"] += Decimal("1.00")
    tables.headers[3]["status"] = "voided"
    fake.clear_requests()

    result = run_target({**config_for(base_config), "dry_run": True},
                        [*rows_messages(LINES_STREAM, LINE_PROPS, [line]),
                         *rows_messages(HEADERS_STREAM, HEADER_PROPS, [tables.headers[3]])])

    assert write_calls(fake) == []
    assert fake.dump_state() == before
    assert result.counts(LINES_STREAM)["corrected"] == 1
    assert result.counts(HEADERS_STREAM)["status_changed"] == 1
