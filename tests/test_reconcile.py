"""`reconcile: true` (issue 23): load, change ChartMogul behind the loader's back, then compare.

The comparison reads the input and ChartMogul's listings only, writes nothing (no request that
is not a GET, no sync-memory change, no STATE) and reports exactly what differs, field by
field with both values, with the revenue months the changes move.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import typing as t

import pytest

from tests.cli_runner import cli
from tests.helpers import FakeApi, reads, write_calls
from tests.page_checks import external_references
from tests.reconcile_data import (
    CUSTOMERS_STREAM,
    INVOICES_STREAM,
    PLANS_STREAM,
    REFUNDS_STREAM,
    ROWS,
    change_behind_the_loaders_back,
    findings,
    messages,
    reconcile_config,
)
from tests.running import API_KEY, run_target
from tests.singer_messages import lines


@pytest.fixture
def loaded(fake, ds, base_config, tmp_path) -> dict[str, t.Any]:
    """The billing data loaded through the target (incremental streams, as a first run reads them)."""
    config = reconcile_config(base_config, tmp_path)
    result = run_target(config, messages())
    assert result.rejects == []
    assert {stream: counts["created"] for stream, counts in result.target.summary.as_dict().items()} == {
        "billing-plans": 2, CUSTOMERS_STREAM: 3, INVOICES_STREAM: 4, "billing-refunds": 1}
    return config


def ledger_bytes(config: dict[str, t.Any]) -> str:
    return hashlib.sha256(pathlib.Path(config["ledger_url"].removeprefix("sqlite:///")).read_bytes()).hexdigest()


def report_paths(config: dict[str, t.Any]) -> tuple[pathlib.Path, pathlib.Path]:
    path = pathlib.Path(config["reconcile_path"])
    return path, path.with_suffix(".html")


def expected_differences(fake, ds: str, changed: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The six changes, one line each with both values, then the revenue of February (inv-2 deleted) and March
    (inv-3's line raised from 1200.00 to 1250.00 EUR)."""
    plan = fake.find_plan(ds, "pl-basic")["uuid"]
    return [
        {"object": "customers", "key": "acct-1", "kind": "different", "field": "name",
         "source": "Müller GmbH", "chartmogul": "Müller AG"},
        {"object": "customers", "key": "acct-2", "kind": "different", "field": "tags",
         "source": ["vip", "béta"], "chartmogul": changed["tags"]},
        {"object": "customers", "key": "acct-3", "kind": "different", "field": "custom.seats",
         "source": 40, "chartmogul": 45},
        {"object": "customers", "key": "acct-99", "kind": "extra", "field": None, "source": None,
         "chartmogul": {"uuid": changed["extra_uuid"], "external_id": "acct-99", "name": "Zusätzlich Ltd",
                        "email": "neu@zusaetzlich.test"}},
        {"object": "invoices", "key": "inv-2", "kind": "missing", "field": None, "chartmogul": None,
         "source": {"external_id": "inv-2", "date": "2025-02-05T00:00:00Z", "currency": "EUR", "data_source_uuid": ds,
                    "customer_external_id": "acct-1",
                    "line_items": [{"type": "subscription", "amount_in_cents": 9990,
                                    "service_period_start": "2025-02-05T00:00:00Z",
                                    "service_period_end": "2025-03-05T00:00:00Z",
                                    "subscription_external_id": "sub-acct-1", "external_id": "li-2-1",
                                    "description": "Abonnement pl-basic", "quantity": 1, "plan_uuid": plan}],
                    "transactions": [{"type": "payment", "result": "successful", "date": "2025-02-05T00:00:00Z",
                                      "external_id": "pay-2", "amount_in_cents": 9990}]}},
        {"object": "invoices", "key": "inv-3", "kind": "different", "field": "line_items[li-3-1].amount_in_cents",
         "source": 120000, "chartmogul": 125000},
        {"object": "revenue", "key": "2025-02 EUR", "kind": "different", "field": "amount_in_cents",
         "source": 9990, "chartmogul": 0},
        {"object": "revenue", "key": "2025-03 EUR", "kind": "different", "field": "amount_in_cents",
         "source": 145050, "chartmogul": 150050},
    ]


def test_reconcile_reports_exactly_what_changed_behind_the_loaders_back(fake, ds, loaded):
    changed = change_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)
    assert changed["tags"] == ["béta", "gold"]
    memory = ledger_bytes(loaded)
    fake.clear_requests()

    result = run_target({**loaded, "reconcile": True}, messages(version=1))

    path, page = report_paths(loaded)
    assert findings(path) == expected_differences(fake, ds, changed)
    assert result.target.reconciliation.exit_code == 3
    assert write_calls(fake) == []
    assert ledger_bytes(loaded) == memory
    assert result.states == []  # no STATE: Meltano would keep it as the bookmark of a run that wrote nothing
    # One read per listing (fewer than 200 objects each), never one per object; plans for the lines' plan_uuid.
    assert sorted((r.path, r.query.get("per_page")) for r in fake.requests) == sorted([
        ("/ping", None), (f"/data_sources/{ds}", None), ("/customers", "200"), ("/plans", "200"),
        ("/invoices", "200")])
    assert all(r.query.get("data_source_uuid") == ds for r in reads(fake, "^/(customers|plans|invoices)$"))
    text = page.read_text(encoding="utf-8")
    assert external_references(text) == []
    assert "8 difference(s), 2 of them revenue month(s)." in text
    assert API_KEY not in text and API_KEY not in path.read_text(encoding="utf-8")
    assert "<td><code>Müller GmbH</code></td><td><code>Müller AG</code></td>" in text


def test_reconcile_with_nothing_changed_is_an_empty_report(fake, ds, loaded):
    fake.clear_requests()

    result = run_target({**loaded, "reconcile": True}, messages(version=1))

    path, page = report_paths(loaded)
    assert path.read_text(encoding="utf-8") == ""
    assert result.target.reconciliation.exit_code == 0
    assert write_calls(fake) == []
    text = page.read_text(encoding="utf-8")
    assert "The source and ChartMogul agree." in text
    assert external_references(text) == []


def test_the_exit_status_and_the_summary_file_say_agree_or_differ(fake, ds, loaded, tmp_path):
    """As a scheduler sees it: the command exits 0 when ChartMogul agrees, 3 once it differs, and `summary_path`
    says `succeeded` or `succeeded_with_differences` with what was found; the log has the table and a closing line
    naming both report files."""
    summary = tmp_path / "summary.json"
    config_path = tmp_path / "reconcile.json"
    config_path.write_text(json.dumps({**loaded, "reconcile": True, "summary_path": str(summary)}))
    path, page = report_paths(loaded)

    agree = cli(["--config", str(config_path)], input_text=lines(messages(version=1)))

    assert agree.exit_code == 0, agree.lines
    assert agree.lines[-1] == f"target-chartmogul reconcile: the source and ChartMogul agree (report: {path}, {page})"
    assert (json.loads(summary.read_text())["status"], json.loads(summary.read_text())["exit_code"]) == ("succeeded", 0)
    change_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)
    fake.clear_requests()

    differ = cli(["--config", str(config_path)], input_text=lines(messages(version=1)))

    assert differ.exit_code == 3, differ.lines
    assert write_calls(fake) == []
    table = next(line for line in differ.lines if line.startswith("Reconcile (nothing was written; 9 object(s) listed):"))
    assert table.splitlines()[1:] == [
        "object        source  ChartMogul  missing  different  fields  extra  refused",
        "plans              2           2        0          0       0      0        0",
        "customers          3           4        0          3       3      1        0",
        "invoices           4           3        1          1       1      0        0",
        "transactions       5           4        0          0       0      0        0",
    ]
    assert ("Revenue: 4 month(s) compared (4 invoice(s) in the source, 3 in ChartMogul), 2 differ: 2025-02 EUR, "
            "2025-03 EUR") in differ.lines
    assert differ.lines[-1] == (f"target-chartmogul reconcile: 8 difference(s): 1 missing, 4 different, 1 extra, "
                                f"2 revenue month(s) (see {path}, {page})")
    written = json.loads(summary.read_text())
    assert (written["status"], written["exit_code"], written["reason"]) == ("succeeded_with_differences", 3, None)
    assert written["reconcile"] == {
        "reconcile_path": str(path), "page": str(page), "differences": 8, "missing": 1, "different": 4, "extra": 1,
        "refused": 0, "revenue_months": 2, "objects": {
            "plans": {"source": 2, "chartmogul": 2, "missing": 0, "different": 0, "fields": 0, "extra": 0, "refused": 0},
            "customers": {"source": 3, "chartmogul": 4, "missing": 0, "different": 3, "fields": 3, "extra": 1,
                          "refused": 0},
            "invoices": {"source": 4, "chartmogul": 3, "missing": 1, "different": 1, "fields": 1, "extra": 0, "refused": 0},
            "transactions": {"source": 5, "chartmogul": 4, "missing": 0, "different": 0, "fields": 0, "extra": 0,
                             "refused": 0}}}


def test_a_data_source_found_by_name_is_reconciled_and_a_missing_one_is_never_created(fake, ds, loaded):
    """`data_source_name`: the data source of that name is compared; a name no data source has stops the run (a
    reconcile run writes nothing, so it creates no data source either)."""
    by_name = {k: v for k, v in loaded.items() if k != "data_source_uuid"}
    fake.clear_requests()

    found = run_target({**by_name, "reconcile": True, "data_source_name": "warehouse"}, messages(version=1))
    missing = run_target({**by_name, "reconcile": True, "data_source_name": "Lager Süd"}, messages(version=1),
                         expect_error=True)

    assert found.target.reconciliation.exit_code == 0
    assert str(missing.error) == ("no data source is named 'Lager Süd' (data_source_name), and a reconcile run creates "
                                  "nothing: ChartMogul holds none of the input")
    assert write_calls(fake) == []


def add_invoice_behind_the_loaders_back(fake, api: FakeApi, ds: str) -> str:
    """An invoice of January the billing database does not have (50.00 EUR), imported through the API."""
    customer = fake.find_customers(ds, "acct-1")[0]["uuid"]
    body = {"invoices": [{"external_id": "inv-9", "date": "2025-01-31T12:00:00Z", "currency": "EUR",
                          "line_items": [{"type": "one_time", "external_id": "li-9-1", "amount_in_cents": 5000,
                                          "quantity": 1, "description": "Nachtrag"}]}]}
    return str(api.ok("POST", f"/import/customers/{customer}/invoices", body, status=201)["invoices"][0]["uuid"])


def test_a_complete_full_table_input_reports_what_chartmogul_holds_beyond_it(fake, ds, loaded):
    uuid = add_invoice_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)

    result = run_target({**loaded, "reconcile": True}, messages(version=1))

    assert findings(report_paths(loaded)[0]) == [
        {"object": "invoices", "key": "inv-9", "kind": "extra", "field": None, "source": None,
         "chartmogul": {"uuid": uuid, "external_id": "inv-9", "date": "2025-01-31T12:00:00.000Z", "currency": "EUR",
                        "amount_in_cents": 5000}},
        {"object": "revenue", "key": "2025-01 EUR", "kind": "different", "field": "amount_in_cents",
         "source": 11490, "chartmogul": 16490},
    ]
    assert result.target.reconciliation.exit_code == 3


def test_an_incremental_input_never_reports_extras(fake, ds, loaded):
    """Without full-table versions the input says nothing of the rows it did not send: ChartMogul's customer and
    invoice beyond it are no extra, and its revenue counts only the invoices the input has."""
    add_invoice_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)
    api = FakeApi(fake, API_KEY)
    api.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "acct-99", "name": "Zusätzlich Ltd"}, status=201)

    result = run_target({**loaded, "reconcile": True}, messages())

    assert report_paths(loaded)[0].read_text(encoding="utf-8") == ""
    assert result.target.reconciliation.exit_code == 0


def test_a_version_still_open_when_the_input_ends_is_not_complete(fake, ds, loaded):
    """The invoices come last and their version has no closing ACTIVATE_VERSION (a tap that died mid-stream looks
    the same): what ChartMogul holds beyond it is not extra, and revenue counts only the input's invoices."""
    add_invoice_behind_the_loaders_back(fake, FakeApi(fake, API_KEY), ds)
    invoices_last = {stream: ROWS[stream] for stream in (PLANS_STREAM, CUSTOMERS_STREAM, REFUNDS_STREAM, INVOICES_STREAM)}
    *open_version, closing = messages(version=1, rows=invoices_last)
    assert closing == {"type": "ACTIVATE_VERSION", "stream": INVOICES_STREAM, "version": 1}

    result = run_target({**loaded, "reconcile": True}, open_version)

    assert report_paths(loaded)[0].read_text(encoding="utf-8") == ""
    assert result.target.reconciliation.exit_code == 0
