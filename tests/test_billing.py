"""Plans, invoices and transactions through real HTTP against the fake API.

The input is shaped like tap-postgres output: `schema-table` stream names, nullable
types, numeric columns arriving as decimals (`9990.00`), timestamps with offsets,
line items as a jsonb array and nested transactions as a json text column.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import shutil
import typing as t
from decimal import Decimal

import pytest

from target_chartmogul.target import TargetChartMogul
from tests.billing import (
    CUSTOMERS,
    CUSTOMERS_STREAM,
    IMPORT_PATH,
    INVOICE_PROPS,
    INVOICES,
    INVOICES_STREAM,
    PLANS,
    PLANS_STREAM,
    REFUND_PROPS,
    REFUNDS,
    REFUNDS_STREAM,
    assert_all_created,
    assert_billing_landed,
    assert_invoice_matches,
    assert_refund_matches,
    billing_config,
    billing_messages,
    customers_messages,
    encode,
    import_calls,
    invoice_row,
    invoices_messages,
    make_invoice,
    one_customer_uuid,
    plans_messages,
    raw_record,
    refunds_messages,
    transactions_by_external_id,
)
from tests.fake_chartmogul import FakeChartMogul
from tests.running import run_target
from tests.singer_messages import STRING, lines, schema, state

# ---------------------------------------------------------------------------------- 1. full run


def test_tap_postgres_shaped_run_lands_line_by_line(fake, ds, base_config):
    result = run_target(billing_config(base_config), billing_messages())

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


def test_line_items_as_json_text_column(fake, ds, base_config):
    props = {**INVOICE_PROPS, "line_items": STRING}
    invoice = INVOICES[0]
    row = {**invoice_row(invoice), "line_items": encode(invoice["line_items"])}
    messages = [*plans_messages(), *customers_messages(),
                schema(INVOICES_STREAM, props), raw_record(INVOICES_STREAM, row)]
    result = run_target(billing_config(base_config), messages)

    assert result.rejects == []
    assert_invoice_matches(fake, ds, invoice)
    assert result.counts(INVOICES_STREAM)["created"] == 1


# ---------------------------------------------------------------------------------- 2. replay


def test_replay_with_working_directory_wiped_duplicates_and_changes_nothing(fake, ds, base_config, tmp_path,
                                                                            monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    # The working directory holds the rejects file and the sync memory: both are wiped.
    config = billing_config(base_config, rejects_path=str(work / "rejects.jsonl"),
                            ledger_url=f"sqlite:///{work / 'ledger.db'}")
    first = run_target(config, billing_messages())
    assert first.rejects == []
    before = fake.dump_state()

    shutil.rmtree(work)
    work.mkdir()
    fake.clear_requests()
    second = run_target(config, billing_messages())

    assert second.rejects == []
    assert fake.dump_state() == before  # nothing duplicated, nothing changed
    assert (len(fake.plans), len(fake.customers), len(fake.invoices), len(fake.transactions)) == (
        len(PLANS), len(CUSTOMERS), len(INVOICES), len(INVOICES) + len(REFUNDS))
    assert_billing_landed(fake, ds)
    invoices = second.counts(INVOICES_STREAM)
    assert (invoices["unchanged"], invoices["created"], invoices["rejected"]) == (len(INVOICES), 0, 0)
    refunds = second.counts(REFUNDS_STREAM)
    assert (refunds["unchanged"], refunds["created"], refunds["rejected"]) == (len(REFUNDS), 0, 0)
    assert second.counts(PLANS_STREAM)["unchanged"] == len(PLANS)
    assert second.counts(CUSTOMERS_STREAM)["unchanged"] == len(CUSTOMERS)
    assert [r for r in fake.requests if r.method in ("POST", "PATCH", "PUT", "DELETE")] == []


def test_replay_adds_nested_transactions_missing_from_an_existing_invoice(fake, ds, base_config):
    config = billing_config(base_config)
    invoice = INVOICES[0]
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages([invoice])])
    held_before = fake.find_invoice(ds, invoice["external_id"])
    assert held_before is not None

    second_payment = {"type": "payment", "result": "successful", "date": "2024-01-10T08:00:00+00:00",
                      "external_id": "pay-1b", "amount_in_cents": Decimal("100.00")}
    replayed = {**invoice, "transactions": [*invoice["transactions"], second_payment]}
    result = run_target(config, invoices_messages([replayed]))

    assert result.rejects == []
    assert len(fake.invoices) == 1
    held = assert_invoice_matches(fake, ds, replayed)
    assert held["uuid"] == held_before["uuid"]
    by_ext = transactions_by_external_id(fake)
    assert sorted(by_ext) == ["pay-1", "pay-1b"]
    assert all(len(copies) == 1 for copies in by_ext.values())
    assert by_ext["pay-1"][0]["uuid"] == held_before["transactions"][0]["uuid"]  # the old one was kept, not redone
    counts = result.counts(INVOICES_STREAM)
    assert (counts["created"], counts["already_present"], counts["updated"]) == (0, 0, 1), counts


# ---------------------------------------------------------------------------------- 3. order


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(("refunds", "invoices", "customers", "plans"), id="reversed"),
        pytest.param(("invoices", "plans", "refunds", "customers"), id="invoices-first"),
        pytest.param(("customers", "refunds", "invoices", "plans"), id="plans-last"),
    ],
)
def test_dependencies_are_written_first_whatever_the_stream_order(fake, ds, base_config, order):
    result = run_target(billing_config(base_config), billing_messages(order))

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


def test_invoices_drained_before_their_customers_arrive_still_land(fake, ds, base_config):
    # With two rows per batch the invoices sink is full, and drains, twice before the
    # customers' or plans' SCHEMA has even been read.
    config = billing_config(base_config, batch_size_rows=2)
    result = run_target(config, billing_messages(("invoices", "refunds", "customers", "plans")))

    assert result.rejects == []
    assert_billing_landed(fake, ds)
    assert_all_created(result)


class StateProbe(io.StringIO):
    """Stdout that notes what ChartMogul held at the moment each STATE line was written."""

    def __init__(self, fake: FakeChartMogul) -> None:
        super().__init__()
        self.fake = fake
        self.seen: list[tuple[dict[str, t.Any], int, int]] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.strip():
                with self.fake.lock:
                    self.seen.append((json.loads(line), len(self.fake.invoices), len(self.fake.transactions)))
        return super().write(text)


def test_state_is_not_emitted_while_invoices_wait_for_their_customers(fake, ds, base_config):
    config = billing_config(base_config, batch_size_rows=2)
    messages = [*billing_messages(("invoices", "refunds")), state({"bookmarks": {"step": 1}}),
                *billing_messages(("customers", "plans")), state({"bookmarks": {"step": 2}})]
    probe = StateProbe(fake)
    with contextlib.redirect_stdout(probe):
        target = TargetChartMogul(config=config, validate_config=True)
        # As in a long run where records outgrow the SDK's max age: every record drains all
        # sinks and writes the latest STATE, so a STATE has every chance to go out too early.
        target._MAX_RECORD_AGE_IN_MINUTES = -1.0
        target.listen(io.StringIO(lines(messages)))

    assert_billing_landed(fake, ds)
    # Step 1 is held back while the invoices wait; only the last STATE goes out, at the end.
    assert [emitted for emitted, _, _ in probe.seen] == [{"bookmarks": {"step": 2}}]
    # Every STATE here follows all invoices and refunds, so it may only go out once they are in ChartMogul.
    for emitted, invoices, transactions in probe.seen:
        assert (invoices, transactions) == (len(INVOICES), len(INVOICES) + len(REFUNDS)), emitted


def test_references_already_in_chartmogul_resolve_without_being_in_the_run(fake, ds, base_config):
    config = billing_config(base_config)
    run_target(config, billing_messages(("plans", "customers", "invoices")))
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    pro = fake.find_plan(ds, "pl-pro")
    assert pro is not None

    later = make_invoice(5, "acct-1", "pl-basic", "2024-04-01T00:00:00+00:00", "2024-05-01T00:00:00+00:00", "9990", "0")
    by_uuid = make_invoice(6, "acct-2", "pl-pro", "2025-02-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00", "120000",
                       "0")
    by_uuid_row = {**by_uuid, "account_code": None, "customer_uuid": acct_2}
    by_uuid_row["line_items"] = [dict(by_uuid["line_items"][0], plan_external_id=None, plan_uuid=pro["uuid"]),
                                 by_uuid["line_items"][1]]
    props = {**INVOICE_PROPS, "customer_uuid": STRING}
    messages = [*invoices_messages([later, by_uuid_row], props=props), *refunds_messages()]
    result = run_target(config, messages)

    assert result.rejects == []
    assert_invoice_matches(fake, ds, later)
    assert_invoice_matches(fake, ds, {**by_uuid, "account_code": "acct-2"})
    for refund in REFUNDS:
        assert_refund_matches(fake, ds, refund)
    assert len(fake.invoices) == len(INVOICES) + 2
    assert result.counts(INVOICES_STREAM)["created"] == 2
    assert result.counts(REFUNDS_STREAM)["created"] == len(REFUNDS)


# ---------------------------------------------------------------------------------- 4. batch modes


def _batch_invoice(n: int, line_external_id: str | None = None, plan_uuid: str | None = None) -> dict[str, t.Any]:
    invoice = make_invoice(n, "acct-1", "pl-basic", f"2024-0{n}-01T00:00:00+00:00", f"2024-0{n + 1}-01T00:00:00+00:00",
                       "9990", "1500")
    invoice["transactions"] = []
    if line_external_id is not None:
        invoice["line_items"][1]["external_id"] = line_external_id
    if plan_uuid is not None:
        invoice["line_items"][0] = dict(invoice["line_items"][0], plan_external_id=None, plan_uuid=plan_uuid)
    return invoice


@pytest.mark.parametrize("mode", ["save_valid", "save_none"])
@pytest.mark.parametrize(
    ("bad", "api_message"),
    [
        pytest.param({"line_external_id": "li-taken"}, "The external ID for this line item already exists in our "
                     "system.", id="line-item-external-id-taken"),
        pytest.param({"plan_uuid": "pl_00000000000000000000000000000000"}, "Plan not found", id="unknown-plan-uuid"),
    ],
)
def test_one_refused_invoice_in_a_batch_does_not_lose_the_others(fake, ds, base_config, mode, bad, api_message):
    config = billing_config(base_config)
    taken = make_invoice(9, "acct-1", "pl-basic", "2023-12-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00", "9990", "0")
    taken["line_items"][1]["external_id"] = "li-taken"
    taken["transactions"] = []
    run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages([taken])])
    assert len(fake.invoices) == 1
    fake.invoice_batch_mode = mode
    fake.clear_requests()

    batch = [_batch_invoice(n, **(bad if n == 3 else {})) for n in range(1, 6)]
    result = run_target(config, invoices_messages(batch))

    good = [i for i in batch if i["external_id"] != "inv-3"]
    for invoice in good:
        assert_invoice_matches(fake, ds, invoice)
    assert fake.find_invoice(ds, "inv-3") is None
    assert len(fake.invoices) == 1 + len(good)
    assert len(result.rejects) == 1
    reject = result.rejects[0]
    assert reject["record"]["external_id"] == "inv-3"
    assert reject["key"] == {"external_id": "inv-3"}
    assert api_message in reject["reason"]
    assert reject["status"] == 422
    assert fake.count("POST", IMPORT_PATH, status=422) == 1  # the API, not the target, found the fault
    counts = result.counts(INVOICES_STREAM)
    assert (counts["received"], counts["created"], counts["rejected"]) == (5, 4, 1), counts
    # they went out together: one import call carried all five; when the API saved none of
    # them (save_none), the four good ones went again in a second call
    calls = [(len(r.body["invoices"]), r.status) for r in import_calls(fake)]
    assert calls == ([(5, 422)] if mode == "save_valid" else [(5, 422), (4, 201)])


# ---------------------------------------------------------------------------------- 6. bad rows


def test_bad_rows_are_rejected_naming_the_field_and_the_rest_lands(fake, ds, base_config):
    good = INVOICES[0]

    def variant(ext: str, **changes: t.Any) -> dict[str, t.Any]:
        row = copy.deepcopy(good)
        row.update(external_id=ext, transactions=[])
        for item in row["line_items"]:
            item["external_id"] = f"{ext}-{item['external_id']}"
        row.update(changes)
        return row

    fractional = variant("inv-frac")
    fractional["line_items"][0]["amount_in_cents"] = Decimal("12.5")
    unknown_plan = variant("inv-noplan")
    unknown_plan["line_items"][0]["plan_external_id"] = "pl-x"
    invoices = [good, variant("inv-euro", currency="euro"), variant("inv-empty", line_items=[]), fractional,
                unknown_plan, variant("inv-nocust", account_code="acct-9")]
    refunds = [
        REFUNDS[0],
        {**REFUNDS[0], "external_id": "ref-ghost", "invoice_ref": "inv-x"},
        {**REFUNDS[0], "external_id": "ref-cb", "type": "chargeback"},
    ]
    messages = [*plans_messages(), *customers_messages(), *invoices_messages(invoices), *refunds_messages(refunds)]
    result = run_target(billing_config(base_config), messages)

    assert_invoice_matches(fake, ds, good)
    assert_refund_matches(fake, ds, REFUNDS[0])
    assert len(fake.invoices) == 1
    assert sorted(transactions_by_external_id(fake)) == ["pay-1", "ref-1"]

    assert all(set(r) == {"time", "stream", "key", "field", "reason", "status", "record"} for r in result.rejects)
    by_ext = {r["record"]["external_id"]: r for r in result.rejects}
    assert sorted(by_ext) == ["inv-empty", "inv-euro", "inv-frac", "inv-nocust", "inv-noplan", "ref-cb", "ref-ghost"]
    assert len(result.rejects) == 7
    expected_fields = {
        "inv-euro": "currency",
        "inv-empty": "line_items",
        "inv-frac": "line_items[0].amount_in_cents",
        "inv-noplan": "line_items[0].plan_external_id",
        "inv-nocust": "customer_external_id",
        "ref-ghost": "invoice_external_id",
        "ref-cb": "type",
    }
    for ext, field in expected_fields.items():
        assert by_ext[ext]["field"] == field, (ext, by_ext[ext])
    for ext in ("inv-euro", "inv-empty", "inv-frac", "ref-cb"):
        assert expected_fields[ext] in by_ext[ext]["reason"], by_ext[ext]
    assert "euro" in by_ext["inv-euro"]["reason"]
    assert "12.5" in by_ext["inv-frac"]["reason"]
    assert "chargeback" in by_ext["ref-cb"]["reason"]
    assert by_ext["inv-noplan"]["reason"] == f'no plan with external_id "pl-x" in data source {ds}'
    assert by_ext["inv-nocust"]["reason"] == f'no customer with external_id "acct-9" in data source {ds}'
    assert by_ext["ref-ghost"]["reason"] == f'no invoice with external_id "inv-x" in data source {ds}'
    for reject in result.rejects:
        stream = REFUNDS_STREAM if reject["record"]["external_id"].startswith("ref-") else INVOICES_STREAM
        assert reject["stream"] == stream
        assert reject["key"] == {"external_id": reject["record"]["external_id"]}
        assert reject["time"].endswith("Z")
    invoice_counts = result.counts(INVOICES_STREAM)
    assert (invoice_counts["received"], invoice_counts["created"], invoice_counts["rejected"]) == (6, 1, 5)
    refund_counts = result.counts(REFUNDS_STREAM)
    assert (refund_counts["received"], refund_counts["created"], refund_counts["rejected"]) == (3, 1, 2)


def test_transaction_without_external_id_is_rejected(fake, ds, base_config):
    refund = {**REFUNDS[0], "external_id": None}
    messages = [*plans_messages(), *customers_messages(), *invoices_messages(INVOICES[:1]),
                schema(REFUNDS_STREAM, REFUND_PROPS, key=()), raw_record(REFUNDS_STREAM, refund)]
    result = run_target(billing_config(base_config), messages)

    assert [r["field"] for r in result.rejects] == ["external_id"]
    assert sorted(transactions_by_external_id(fake)) == ["pay-1"]


# ---------------------------------------------------------------------------------- 7. batching


def test_invoices_per_request_splits_one_customers_invoices(fake, ds, base_config):
    config = billing_config(base_config, streams={REFUNDS_STREAM: {"object": "transactions"},
                                                  INVOICES_STREAM: {"invoices_per_request": 2}})
    batch = [_batch_invoice(n) for n in range(1, 6)]
    result = run_target(config, [*plans_messages(), *customers_messages(), *invoices_messages(batch)])

    assert result.rejects == []
    for invoice in batch:
        assert_invoice_matches(fake, ds, invoice)
    calls = import_calls(fake)
    assert len(calls) == 3
    assert fake.count("POST", IMPORT_PATH) == 3
    assert sorted(len(call.body["invoices"]) for call in calls) == [1, 2, 2]  # the calls may overlap
    sent = sorted(i["external_id"] for call in calls for i in call.body["invoices"])
    assert sent == [f"inv-{n}" for n in range(1, 6)]
    assert result.counts(INVOICES_STREAM)["created"] == 5


def test_invoices_of_one_customer_go_out_in_one_call_by_default(fake, ds, base_config):
    batch = [_batch_invoice(n) for n in range(1, 6)]
    other = make_invoice(7, "acct-2", "pl-pro", "2024-02-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00", "120000", "0")
    result = run_target(billing_config(base_config),
                        [*plans_messages(), *customers_messages(), *invoices_messages([*batch, other])])

    assert result.rejects == []
    assert len(fake.invoices) == 6
    calls = import_calls(fake)
    assert len(calls) == 2
    acct_1 = one_customer_uuid(fake, ds, "acct-1")
    acct_2 = one_customer_uuid(fake, ds, "acct-2")
    by_customer = {call.path.split("/")[3]: sorted(i["external_id"] for i in call.body["invoices"])
                   for call in calls}
    assert by_customer == {acct_1: [f"inv-{n}" for n in range(1, 6)], acct_2: ["inv-7"]}


# ---------------------------------------------------------------------------------- 8. plans upsert


@pytest.mark.parametrize("memory", ["kept", "wiped"])
def test_plans_upsert_updates_in_place(fake, ds, base_config, tmp_path, memory):
    runs = iter(range(3))

    def config() -> dict[str, t.Any]:
        # "wiped": every run starts with an empty sync memory, so only ChartMogul knows the plan.
        n = next(runs)
        ledger = base_config["ledger_url"] if memory == "kept" else f"sqlite:///{tmp_path / f'ledger-{n}.db'}"
        return billing_config(base_config, ledger_url=ledger)

    first = run_target(config(), plans_messages(PLANS[:1]))
    plan = fake.find_plan(ds, "pl-basic")
    assert plan is not None and plan["name"] == "Basic monthly"
    assert first.counts(PLANS_STREAM)["created"] == 1

    renamed = [{**PLANS[0], "name": "Basic (monthly, 2024)"}]
    second = run_target(config(), plans_messages(renamed))
    assert len(fake.plans) == 1
    held = fake.find_plan(ds, "pl-basic")
    assert held is not None
    assert held["uuid"] == plan["uuid"]
    assert (held["name"], held["interval_count"], held["interval_unit"]) == ("Basic (monthly, 2024)", 1, "month")
    counts = second.counts(PLANS_STREAM)
    assert (counts["updated"], counts["created"], counts["unchanged"]) == (1, 0, 0), counts

    third = run_target(config(), plans_messages(renamed))
    assert len(fake.plans) == 1
    assert fake.find_plan(ds, "pl-basic") == held
    counts = third.counts(PLANS_STREAM)
    assert (counts["unchanged"], counts["updated"], counts["created"]) == (1, 0, 0), counts
    assert third.rejects == []
