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

from tests.billing import IMPORT_PATH, TRANSACTION_PATH, customers_messages, encode, instant, plans_messages
from tests.fake_chartmogul import Fault
from tests.helpers import fresh_memory, reads, write_calls
from tests.robustness.load import TargetProcess, wait_for
from tests.running import run_target
from tests.singer_messages import DATETIME, NUMBER, STRING, lines, schema
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

REFUNDS_STREAM = "billing-refunds"
REFUND_PROPS = {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "result": STRING,
                "date": DATETIME, "amount": NUMBER}
DELETED = {"_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
COLLECTION_PROPS = {**HEADER_PROPS, "collection_method": STRING}
PAID_PROPS = {**HEADER_PROPS, "transactions": STRING}  # a header with its payments in a json column
LATE = {"type": "payment", "result": "successful", "date": "2024-12-05T00:00:00+00:00", "external_id": "pay-late",
        "amount": Decimal("1.00")}


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


@pytest.mark.parametrize("asked", ["written_off", "voided"])
@pytest.mark.parametrize("answers", ["show-status", "as-recorded"])
def test_a_refused_status_transition_with_a_lost_memory_is_never_counted_done(fake, ds, base_config, tmp_path, caplog,
                                                                                answers, asked):
    """A lost memory cannot say what was set: ChartMogul's word (its answers, a re-read) decides, never a guess."""
    tables = Tables(invoices=3)
    tables.headers[0]["status"] = "voided"
    first_load(base_config, tables, [])
    fake.store.invoice_status_in_answers = answers == "show-status"
    tables.headers[0]["status"] = asked
    fake.clear_requests()

    result = run_target(fresh_memory(config_for(base_config), tmp_path, "lost"),
                        rows_messages(HEADERS_STREAM, HEADER_PROPS, tables.headers[:1]))

    invoice = fake.find_invoice(ds, "inv-001")
    assert invoice["status"] == "voided"
    puts = [(r.method, r.status) for r in write_calls(fake)]
    rereads = len(reads(fake, rf"^/invoices/{invoice['uuid']}$"))
    counts = result.counts(HEADERS_STREAM)
    rejects = [(r["key"], r["status"], r["reason"]) for r in result.rejects]
    if answers == "show-status" and asked == "voided":  # ChartMogul shows it has the status: nothing to do
        assert (puts, rereads, rejects, counts["unchanged"]) == ([], 0, [], 1)
    elif answers == "show-status":  # ChartMogul shows another status: its refusal is a reject with its message
        assert (puts, rereads, counts["status_unconfirmed"]) == ([("PUT", 422)], 0, 0)
        assert rejects == [({"external_id": "inv-001"}, 422, "ChartMogul refused it: Status transition is not allowed")]
    else:  # no recorded answer shows invoice status: re-read once, then say it cannot be checked
        assert (puts, rereads, rejects, counts["status_unconfirmed"], counts["unchanged"]) == (
            [("PUT", 422)], 1, [], 1, 0)
        warning = next(r.getMessage() for r in caplog.records if "refused to set status" in r.getMessage())
        assert f"refused to set status {asked} (Status transition is not allowed)" in warning
        assert f"whether the invoice is {asked} already cannot be checked" in warning
        assert "most likely" not in warning


@pytest.mark.subprocess  # a run killed (SIGKILL) mid-replacement
@pytest.mark.parametrize("status", ["paid", "voided"])
def test_a_run_killed_between_the_delete_and_the_new_import_is_repaired_by_the_next(fake, ds, base_config,
                                                                                    tmp_path, status):
    tables = Tables(invoices=4)
    tables.headers[1]["status"] = status
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
    header = []
    if status == "voided":  # its header changed too: the replacement knows the status to keep
        tables.headers[1]["date"] = tables.headers[1]["date"].replace("T00:00:00", "T12:00:00")
        header = rows_messages(HEADERS_STREAM, HEADER_PROPS, [tables.headers[1]])
    feed.write_text(lines([*rows_messages(LINES_STREAM, LINE_PROPS, [line]), *header]))
    proc = TargetProcess(config, work, input_file=feed)
    try:
        wait_for(lambda: fake.count("DELETE", r"^/invoices/") == 1 and fake.count("POST", IMPORT_PATH) >= 2,
                 timeout=60, fake=fake)
    finally:
        proc.kill(signal.SIGKILL)
    proc.wait()
    assert fake.find_invoice(ds, "inv-002") is None  # deleted, not imported again
    fake.clear_faults()

    # The next run does not carry that line at all.
    fake.clear_requests()
    rerun = run_target(config, customers_messages())

    assert rerun.rejects == []
    assert_holds(fake, ds, tables)
    assert_refunds_attached(fake, ds, ["inv-002"], tables)
    status_path = f"/data_sources/{ds}/invoices/inv-002/status"
    assert [(r.method, r.path) for r in write_calls(fake)] == [
        ("POST", f"/import/customers/{fake.find_invoice(ds, 'inv-002')['customer_uuid']}/invoices"),
        *([("PUT", status_path)] if status == "voided" else [])]
    assert fake.find_invoice(ds, "inv-002").get("status") == ("voided" if status == "voided" else None)


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


# Changes ChartMogul's answers do not show, and the status an invoice keeps --------------------------------
def load_with_collection_method(base_config: dict[str, t.Any], tables: Tables, **options: t.Any) -> None:
    for header in tables.headers:
        header["collection_method"] = "automatic"
    result = run_target(config_for(base_config, **options),
                        [*plans_messages(), *customers_messages(), *rows_messages(LINES_STREAM, LINE_PROPS, tables.lines),
                         *rows_messages(HEADERS_STREAM, COLLECTION_PROPS, tables.headers),
                         *rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, tables.payments)])
    assert result.rejects == []


def writes(fake: t.Any) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in write_calls(fake)]


def test_a_changed_collection_method_is_a_correction_although_chartmogul_never_answers_with_it(fake, ds, base_config):
    """No answer carries collection_method: the memory's content hash says it changed, so the invoice is replaced."""
    tables = Tables(invoices=3)
    load_with_collection_method(base_config, tables)
    held = fake.find_invoice(ds, "inv-002")
    assert held["collection_method"] == "automatic"
    tables.headers[1]["collection_method"] = "manual"
    fake.clear_requests()

    result = run_target(config_for(base_config), rows_messages(HEADERS_STREAM, COLLECTION_PROPS, tables.headers[1:2]))

    assert result.rejects == []
    assert writes(fake) == [("DELETE", f"/invoices/{held['uuid']}"),
                            ("POST", f"/import/customers/{held['customer_uuid']}/invoices")]
    assert fake.find_invoice(ds, "inv-002")["collection_method"] == "manual"
    assert_holds(fake, ds, tables)  # its lines and its payment came back with it
    assert (result.counts(HEADERS_STREAM)["corrected"], result.counts(HEADERS_STREAM)["unchanged"]) == (1, 0)
    fake.clear_requests()
    again = run_target(config_for(base_config), rows_messages(HEADERS_STREAM, COLLECTION_PROPS, tables.headers[1:2]))
    assert (writes(fake), again.counts(HEADERS_STREAM)["unchanged"]) == ([], 1)


def test_with_keep_a_changed_collection_method_is_reported_on_every_run(fake, ds, base_config, caplog):
    tables = Tables(invoices=3)
    load_with_collection_method(base_config, tables, invoice_changes="keep")
    before = fake.dump_state()
    tables.headers[1]["collection_method"] = "manual"
    for _ in range(2):  # never remembered as written: the next run reports it again
        fake.clear_requests()
        caplog.clear()
        result = run_target(config_for(base_config, invoice_changes="keep"),
                            rows_messages(HEADERS_STREAM, COLLECTION_PROPS, tables.headers[1:2]))
        assert writes(fake) == []
        assert fake.dump_state() == before
        counts = result.counts(HEADERS_STREAM)
        assert (counts["changed_not_applied"], counts["unchanged"]) == (1, 0)
        warned = [r.getMessage() for r in caplog.records if "invoice_changes is 'keep'" in r.getMessage()]
        assert warned == ["Invoice inv-002 changed in the source (collection_method or customer_external_id (not in "
                          "ChartMogul's answers)); invoice_changes is 'keep', so ChartMogul keeps it as imported"]


@pytest.mark.parametrize("change", ["due_date", "quantity", "currency"])
def test_due_date_quantity_and_currency_corrections_replace_the_invoice_keeping_its_refund(fake, ds, base_config,
                                                                                            change):
    tables = Tables(invoices=3)
    first_load(base_config, tables, ["inv-002"])
    held = fake.find_invoice(ds, "inv-002")
    header = tables.headers[1]
    if change == "quantity":
        line = next(li for li in tables.lines if li["external_id"] == "inv-002-2")
        line["quantity"] = 5
        messages = rows_messages(LINES_STREAM, LINE_PROPS, [line])
    else:
        header.update({"due_date": "2024-04-15T00:00:00+00:00"} if change == "due_date" else {"currency": "USD"})
        messages = rows_messages(HEADERS_STREAM, HEADER_PROPS, [header])
    fake.clear_requests()

    result = run_target(config_for(base_config), messages)

    assert result.rejects == []
    assert writes(fake) == [("DELETE", f"/invoices/{held['uuid']}"),
                            ("POST", f"/import/customers/{held['customer_uuid']}/invoices")]
    assert_holds(fake, ds, tables)  # currency, quantities, amounts and payments, cents exact
    assert_refunds_attached(fake, ds, ["inv-002"], tables)
    now = fake.find_invoice(ds, "inv-002")
    assert (instant(now["due_date"]) if now["due_date"] else None) == (
        instant(header["due_date"]) if header["due_date"] else None)
    stream = LINES_STREAM if change == "quantity" else HEADERS_STREAM
    assert result.counts(stream)["corrected"] == 1


@pytest.mark.parametrize("header", ["absent", "unchanged"])
def test_a_voided_invoice_corrected_through_its_lines_alone_is_voided_again(fake, ds, base_config, header):
    """The line rows do not carry the status and ChartMogul's answers do not show it: the memory's does."""
    tables = Tables(invoices=3)
    tables.headers[1]["status"] = "voided"
    first_load(base_config, tables, ["inv-002"])
    held = fake.find_invoice(ds, "inv-002")
    assert held["status"] == "voided"
    line = next(li for li in tables.lines if li["external_id"] == "inv-002-1")
    line["amount"] += Decimal("1.00")
    headers = rows_messages(HEADERS_STREAM, HEADER_PROPS, tables.headers[1:2]) if header == "unchanged" else []
    fake.clear_requests()

    result = run_target(config_for(base_config), [*rows_messages(LINES_STREAM, LINE_PROPS, [line]), *headers])

    assert result.rejects == []
    assert writes(fake) == [("DELETE", f"/invoices/{held['uuid']}"),
                            ("POST", f"/import/customers/{held['customer_uuid']}/invoices"),
                            ("PUT", f"/data_sources/{ds}/invoices/inv-002/status")]
    assert fake.find_invoice(ds, "inv-002")["status"] == "voided"
    assert_holds(fake, ds, tables)
    assert_refunds_attached(fake, ds, ["inv-002"], tables)
    assert result.counts(LINES_STREAM)["corrected"] == 1
    assert result.counts(HEADERS_STREAM).get("unchanged", 0) == (1 if header == "unchanged" else 0)
    fake.clear_requests()
    again = run_target(config_for(base_config), [*rows_messages(LINES_STREAM, LINE_PROPS, [line]), *headers])
    assert (writes(fake), again.rejects) == ([], [])


def test_a_late_payment_in_a_voided_invoice_s_header_is_added_and_the_status_not_sent_again(fake, ds, base_config):
    tables = Tables(invoices=3)
    tables.headers[1]["status"] = "voided"
    first_load(base_config, tables, [])
    held = fake.find_invoice(ds, "inv-002")
    fake.clear_requests()

    result = run_target(config_for(base_config),
                        rows_messages(HEADERS_STREAM, PAID_PROPS, [{**tables.headers[1], "transactions": encode([LATE])}]))

    assert result.rejects == []
    assert writes(fake) == [("POST", f"/import/invoices/{held['uuid']}/transactions")]
    now = fake.find_invoice(ds, "inv-002")
    assert (now["uuid"], now["status"]) == (held["uuid"], "voided")
    assert sorted(tx["external_id"] for tx in now["transactions"]) == ["pay-002", "pay-late"]
    assert result.counts(HEADERS_STREAM)["updated"] == 1


def test_invoice_changes_keep_sets_no_status_and_adds_no_payment(fake, ds, base_config, caplog):
    """Never touch an imported invoice: a new status, a payment new in its header or in a payments stream are
    warned and counted `changed_not_applied`, on every run.
    """
    tables = Tables(invoices=4)
    first_load(base_config, tables, [], invoice_changes="keep")
    before = fake.dump_state()
    voided = {**tables.headers[0], "status": "voided", "transactions": None}
    paid = {**tables.headers[1], "transactions": encode([LATE])}
    payment = {**LATE, "external_id": "pay-late-3", "invoice_external_id": "inv-003"}
    messages = [*rows_messages(HEADERS_STREAM, PAID_PROPS, [voided, paid]),
                *rows_messages(PAYMENTS_STREAM, PAYMENT_PROPS, [payment])]
    for _ in range(2):
        fake.clear_requests()
        caplog.clear()
        result = run_target(config_for(base_config, invoice_changes="keep"), messages)

        assert result.rejects == []
        assert writes(fake) == []
        assert fake.dump_state() == before
        assert result.counts(HEADERS_STREAM)["changed_not_applied"] == 2
        assert result.counts(PAYMENTS_STREAM)["changed_not_applied"] == 1
        warned = sorted(r.getMessage() for r in caplog.records if "invoice_changes is 'keep'" in r.getMessage())
        assert warned == [
            "Invoice inv-001 changed in the source (status voided); invoice_changes is 'keep', so ChartMogul keeps it "
            "as imported",
            "Invoice inv-002 changed in the source (transactions[pay-late] (not in ChartMogul)); invoice_changes is "
            "'keep', so ChartMogul keeps it as imported",
            "Transaction pay-late-3 is new in the source; invoice_changes is 'keep', so invoice inv-003 keeps the "
            "transactions it was imported with",
        ]


def test_with_keep_payments_still_join_invoices_imported_in_the_same_run(fake, ds, base_config):
    """Headers imported in batches before their payments came: completing this run's imports touches nothing older."""
    tables = Tables(invoices=8)
    config = {**config_for(base_config, invoice_changes="keep"), "batch_size_rows": 2, "bulk_import": "never"}
    result = run_target(config, [*plans_messages(), *customers_messages(), *tables.messages()])

    assert result.rejects == []
    assert_holds(fake, ds, tables)
    assert fake.count("POST", TRANSACTION_PATH) == len(tables.payments)
    assert result.counts(PAYMENTS_STREAM)["created"] == len(tables.payments)
