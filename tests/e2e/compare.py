"""What the fake ChartMogul holds, compared field by field with the demo database (seed.sql)."""

from __future__ import annotations

import datetime as dt
import typing as t

from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul

CUSTOM_ATTRIBUTES = {"seats": "Integer", "segment": "String"}
LINE_ITEM_AMOUNTS = ("amount_in_cents", "discount_amount_in_cents", "tax_amount_in_cents", "quantity")


def moment(value: t.Any) -> dt.datetime | None:
    """A date or timestamp string (PostgreSQL's or ChartMogul's rendering) as an aware datetime."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def tag_list(value: t.Any) -> list[str]:
    """Tags compared as ChartMogul does: case-insensitively, without duplicates (order ignored)."""
    return sorted({str(v).strip().casefold() for v in (value or []) if str(v).strip()})


def _in_source(objects: t.Mapping[str, t.Any], ds: str) -> list[dict[str, t.Any]]:
    return [o for o in objects.values() if o.get("data_source_uuid") == ds]


def assert_fake_matches_db(fake: FakeChartMogul, ds: str, db: Database) -> None:
    """Every plan, customer, invoice (line by line) and transaction of the database is in the fake, exactly."""
    problems: list[str] = []

    def check(what: str, held: t.Any, want: t.Any) -> None:
        if held != want:
            problems.append(f"{what}: ChartMogul holds {held!r}, database has {want!r}")

    # Plans ---------------------------------------------------------------------------
    plans = db.rows("SELECT * FROM billing.plans ORDER BY external_id")
    plan_uuid: dict[str, str] = {}
    with fake.lock:
        check("number of plans", len(_in_source(fake.plans, ds)), len(plans))
    for row in plans:
        held = fake.find_plan(ds, row["external_id"])
        if held is None:
            problems.append(f"plan {row['external_id']} is missing")
            continue
        plan_uuid[row["external_id"]] = held["uuid"]
        for name in ("name", "interval_count", "interval_unit"):
            check(f"plan {row['external_id']}.{name}", held[name], row[name])

    # Customers -------------------------------------------------------------------------
    customers = db.rows("SELECT * FROM billing.customers ORDER BY external_id")
    customer_uuid: dict[str, str] = {}
    with fake.lock:
        check("number of customers", len(_in_source(fake.customers, ds)), len(customers))
    for row in customers:
        ext = row["external_id"]
        found = fake.find_customers(ds, ext)
        if len(found) != 1:
            problems.append(f"customer {ext}: {len(found)} customers in ChartMogul, expected 1")
            continue
        held = found[0]
        customer_uuid[ext] = held["uuid"]
        for name in ("name", "email", "country", "city"):
            check(f"customer {ext}.{name}", held[name], row[name])
        want_custom = {k: row[k] for k in CUSTOM_ATTRIBUTES if row[k] is not None}
        check(f"customer {ext} custom attributes", held["attributes"]["custom"], want_custom)
        types = fake.custom_attribute_types(held["uuid"])
        for key in want_custom:
            check(f"customer {ext} custom attribute {key} type", types.get(key), CUSTOM_ATTRIBUTES[key])
        check(f"customer {ext} tags", tag_list(held["attributes"]["tags"]), tag_list(row["tags"]))

    # Invoices, line items, payments and refunds ---------------------------------------------
    invoices = db.rows("SELECT * FROM billing.invoices ORDER BY external_id")
    items = db.rows("SELECT * FROM billing.invoice_line_items ORDER BY invoice_external_id, position")
    transactions = db.rows(
        "SELECT * FROM billing.payments UNION ALL SELECT * FROM billing.refunds ORDER BY external_id"
    )
    with fake.lock:
        check("number of invoices", len(_in_source(fake.invoices, ds)), len(invoices))
        held_transactions = sum(len(i["transactions"]) for i in _in_source(fake.invoices, ds))
    check("number of transactions", held_transactions, len(transactions))
    for row in invoices:
        ext = row["external_id"]
        held = fake.find_invoice(ds, ext)
        if held is None:
            problems.append(f"invoice {ext} is missing")
            continue
        check(f"invoice {ext}.customer_uuid", held["customer_uuid"], customer_uuid.get(row["customer_external_id"]))
        check(f"invoice {ext}.currency", held["currency"], row["currency"])
        check(f"invoice {ext}.date", moment(held["date"]), moment(row["date"]))
        check(f"invoice {ext}.due_date", moment(held["due_date"]), moment(row["due_date"]))

        want_items = [i for i in items if i["invoice_external_id"] == ext]
        check(f"invoice {ext}: number of line items", len(held["line_items"]), len(want_items))
        for got, want in zip(held["line_items"], want_items, strict=False):
            where = f"invoice {ext} line item {want['external_id']}"
            check(f"{where}.external_id", got.get("external_id"), want["external_id"])
            check(f"{where}.type", got.get("type"), want["type"])
            for name in LINE_ITEM_AMOUNTS:
                check(f"{where}.{name}", got.get(name), want[name])
            check(f"{where}.description", got.get("description"), want["description"])
            if want["type"] == "subscription":
                check(f"{where}.plan_uuid", got.get("plan_uuid"), plan_uuid.get(want["plan_external_id"]))
                check(f"{where}.subscription_external_id", got.get("subscription_external_id"),
                      want["subscription_external_id"])
                for name in ("service_period_start", "service_period_end"):
                    check(f"{where}.{name}", moment(got.get(name)), moment(want[name]))

        want_txs = [tx for tx in transactions if tx["invoice_external_id"] == ext]
        got_txs = sorted(held["transactions"], key=lambda tx: str(tx.get("external_id")))
        check(f"invoice {ext}: transactions", [tx.get("external_id") for tx in got_txs],
              [tx["external_id"] for tx in want_txs])
        for got, want in zip(got_txs, want_txs, strict=False):
            where = f"invoice {ext} transaction {want['external_id']}"
            for name in ("type", "result", "amount_in_cents"):
                check(f"{where}.{name}", got.get(name), want[name])
            check(f"{where}.date", moment(got.get("date")), moment(want["date"]))

    assert not problems, "ChartMogul does not match the database:\n  " + "\n  ".join(problems)


def writes_by_customer(fake: FakeChartMogul, ds: str) -> dict[str, list[str]]:
    """Successful write requests grouped by the customer external id they touch ('' = no customer)."""
    with fake.lock:
        by_uuid = {c["uuid"]: c["external_id"] for c in _in_source(fake.customers, ds)}
        invoice_owner = {i["uuid"]: by_uuid.get(i["customer_uuid"], "?") for i in _in_source(fake.invoices, ds)}
    grouped: dict[str, list[str]] = {}
    for request in fake.writes():
        parts = request.path.removeprefix("/v1").strip("/").split("/")
        owner = ""
        if parts[0] == "customers" and len(parts) > 1:
            owner = by_uuid.get(parts[1], "?")
        elif parts[0] == "customers" and isinstance(request.body, dict):
            owner = str(request.body.get("external_id"))
        elif parts[:2] == ["import", "customers"]:
            owner = by_uuid.get(parts[2], "?")
        elif parts[:2] == ["import", "invoices"]:
            owner = invoice_owner.get(parts[2], "?")
        grouped.setdefault(owner, []).append(f"{request.method} {request.path} -> {request.status}")
    return grouped


def assert_only_customer_written(fake: FakeChartMogul, ds: str, external_id: str) -> None:
    """The incremental rerun wrote the changed customer, and nothing about any other."""
    writes = writes_by_customer(fake, ds)
    others = {owner: calls for owner, calls in writes.items() if owner != external_id}
    assert sum(len(calls) for calls in others.values()) == 0, f"writes not about {external_id}: {others}"
    assert writes.get(external_id), f"the change of {external_id} was not written; requests: {fake.requests}"
