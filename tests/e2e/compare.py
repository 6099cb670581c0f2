"""What the fake ChartMogul holds, compared field by field with a billing database (seed.sql, accounts.sql);
what a run wrote and refused."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import pathlib
import re
import typing as t
from decimal import Decimal

from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul

CUSTOM_ATTRIBUTES = {"seats": "Integer", "segment": "String"}
LINE_ITEM_AMOUNTS = ("amount_in_cents", "discount_amount_in_cents", "tax_amount_in_cents", "quantity")
CUSTOMER_DATE_FIELDS = ("lead_created_at", "free_trial_started_at")
CONTACT_FIELDS = ("first_name", "last_name", "email", "title", "phone", "linked_in", "twitter", "notes")
SHOWN = 25  # differences listed in a failure message (the count says how many there are)


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where a billing database keeps what ChartMogul must hold, and which customer columns it has.

    Customers, plans, invoices, payments and refunds are tables of `schema`; the invoices' lines are
    in `line_items` (with `invoice_external_id`). `customer_fields` are the ChartMogul customer fields
    the customers table has columns for; `custom_attributes` the columns sent as custom attributes,
    with the ChartMogul type each must have.
    """

    schema: str = "billing"
    customer_fields: tuple[str, ...] = ("name", "email", "country", "city")
    custom_attributes: t.Mapping[str, str] = dataclasses.field(default_factory=lambda: dict(CUSTOM_ATTRIBUTES))
    line_items: str = "invoice_line_items"


SEED = Layout()  # tests/e2e/sql/seed.sql


def moment(value: t.Any) -> dt.datetime | None:
    """A date or timestamp string (PostgreSQL's or ChartMogul's rendering) as an aware datetime."""
    if value is None:
        return None
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def tag_list(value: t.Any) -> list[str]:
    """Tags compared as ChartMogul does: case-insensitively, without duplicates (order ignored)."""
    return sorted({str(v).strip().casefold() for v in (value or []) if str(v).strip()})


def _blank(value: t.Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def expected_customer_field(name: str, value: t.Any) -> t.Any:
    """What ChartMogul holds for a customer column: blank text is unset, text is trimmed, dates are moments,
    a primary contact keeps its non-blank fields.
    """
    if name == "primary_contact":
        if value is None:
            return None
        contact = json.loads(value) if isinstance(value, str) else value
        return {key: contact[key] for key in CONTACT_FIELDS if not _blank(contact.get(key))}
    if _blank(value):
        return None
    if name in CUSTOMER_DATE_FIELDS:
        return moment(value)
    text = str(value).strip()
    return text.upper() if name == "country" else text


def held_customer_field(name: str, held: t.Mapping[str, t.Any]) -> t.Any:
    value = held.get(name)
    return moment(value) if name in CUSTOMER_DATE_FIELDS else value


def typed_value(kind: str, value: t.Any) -> t.Any:
    """A custom attribute value in a form that compares as ChartMogul's type does (12.5 == "12.50")."""
    if value is None:
        return None
    if kind == "Decimal":
        return Decimal(str(value))
    if kind == "Timestamp":
        return moment(value)
    return value


def _in_source(objects: t.Mapping[str, t.Any], ds: str) -> list[dict[str, t.Any]]:
    return [o for o in objects.values() if o.get("data_source_uuid") == ds]


def fake_differences(fake: FakeChartMogul, ds: str, db: Database, layout: Layout = SEED) -> list[str]:
    """Every difference between the database and what the fake holds in data source `ds`: plans, customers
    (fields, typed custom attributes, tags), invoices line by line, payments and refunds. Empty when exact.
    """
    problems: list[str] = []
    schema = layout.schema

    def check(what: str, held: t.Any, want: t.Any) -> None:
        if held != want:
            problems.append(f"{what}: ChartMogul holds {held!r}, database has {want!r}")

    # Plans ---------------------------------------------------------------------------
    plans = db.rows(f"SELECT * FROM {schema}.plans ORDER BY external_id")
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
    customers = db.rows(f"SELECT * FROM {schema}.customers ORDER BY external_id")
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
        for name in layout.customer_fields:
            check(f"customer {ext}.{name}", held_customer_field(name, held), expected_customer_field(name, row[name]))
        kinds = layout.custom_attributes
        want_custom = {k: typed_value(kind, row[k]) for k, kind in kinds.items() if row[k] is not None}
        held_custom = {k: typed_value(kinds.get(k, "String"), v) for k, v in held["attributes"]["custom"].items()}
        check(f"customer {ext} custom attributes", held_custom, want_custom)
        types = fake.custom_attribute_types(held["uuid"])
        for key in want_custom:
            check(f"customer {ext} custom attribute {key} type", types.get(key), kinds[key])
        check(f"customer {ext} tags", tag_list(held["attributes"]["tags"]), tag_list(row["tags"]))

    # Invoices, line items, payments and refunds ---------------------------------------------
    invoices = db.rows(f"SELECT * FROM {schema}.invoices ORDER BY external_id")
    items = db.rows(f"SELECT * FROM {schema}.{layout.line_items} ORDER BY invoice_external_id, external_id")
    transactions = db.rows(
        f"SELECT external_id, invoice_external_id, type, result, date, amount_in_cents FROM {schema}.payments "
        f"UNION ALL SELECT external_id, invoice_external_id, type, result, date, amount_in_cents FROM {schema}.refunds "
        "ORDER BY external_id"
    )
    items_of: dict[str, list[dict[str, t.Any]]] = {}
    for item in items:
        items_of.setdefault(item["invoice_external_id"], []).append(item)
    transactions_of: dict[str, list[dict[str, t.Any]]] = {}
    for tx in transactions:
        transactions_of.setdefault(tx["invoice_external_id"], []).append(tx)
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

        want_items = items_of.get(ext, [])
        got_items = {str(i.get("external_id")): i for i in held["line_items"]}
        check(f"invoice {ext}: line items", sorted(got_items), [i["external_id"] for i in want_items])
        for want in want_items:
            got = got_items.get(want["external_id"])
            if got is None:
                continue
            where = f"invoice {ext} line item {want['external_id']}"
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

        want_txs = transactions_of.get(ext, [])
        got_txs = sorted(held["transactions"], key=lambda tx: str(tx.get("external_id")))
        check(f"invoice {ext}: transactions", [tx.get("external_id") for tx in got_txs],
              [tx["external_id"] for tx in want_txs])
        for got, want in zip(got_txs, want_txs, strict=False):
            where = f"invoice {ext} transaction {want['external_id']}"
            for name in ("type", "result", "amount_in_cents"):
                check(f"{where}.{name}", got.get(name), want[name])
            check(f"{where}.date", moment(got.get("date")), moment(want["date"]))
    return problems


def shown(problems: t.Sequence[str], limit: int = SHOWN) -> str:
    """The first `limit` lines, indented, and how many more there are."""
    lines = [f"  {p}" for p in problems[:limit]]
    if len(problems) > limit:
        lines.append(f"  ... and {len(problems) - limit} more")
    return "\n".join(lines)


def assert_fake_matches_db(fake: FakeChartMogul, ds: str, db: Database, layout: Layout = SEED) -> None:
    """Every plan, customer, invoice (line by line) and transaction of the database is in the fake, exactly."""
    problems = fake_differences(fake, ds, db, layout)
    assert not problems, f"ChartMogul does not match the database ({len(problems)} differences):\n{shown(problems)}"


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


# What a run wrote, refused and sent in bulk ---------------------------------------------------------

ATTRIBUTE_PATHS = re.compile(r"/attributes/(custom|tags)$")


def _external_ids(body: t.Any) -> list[str]:
    """External ids a write body names: its own, or those of the invoices it imports."""
    if not isinstance(body, dict):
        return []
    if isinstance(body.get("invoices"), list):
        return [str(i.get("external_id")) for i in body["invoices"] if isinstance(i, dict)]
    return [str(body["external_id"])] if body.get("external_id") is not None else []


def described_writes(fake: FakeChartMogul, ds: str) -> list[str]:
    """Every write request (POST/PUT/PATCH/DELETE, whatever its answer) in a readable, exact form, uuids named
    by external id: `PATCH customers/acct_0007 -> 200`, `POST import/customers/acct_0020/invoices
    [inv_0020_9] -> 201`, the body of custom attribute and tag writes as sent.
    """
    with fake.lock:
        names = {c["uuid"]: c["external_id"] for c in _in_source(fake.customers, ds)}
        names |= {i["uuid"]: i["external_id"] for i in _in_source(fake.invoices, ds)}
        names |= {p["uuid"]: p["external_id"] for p in _in_source(fake.plans, ds)}
        names[ds] = "<ds>"
    found = []
    for request in fake.requests:
        if request.method == "GET":
            continue
        parts = [names.get(part, part) for part in request.path.removeprefix("/v1").strip("/").split("/")]
        text = f"{request.method} {'/'.join(parts)}"
        if ATTRIBUTE_PATHS.search(request.path):
            text += " " + json.dumps(request.body, ensure_ascii=False, sort_keys=True)
        elif ids := _external_ids(request.body):
            text += f" [{', '.join(ids)}]"
        found.append(f"{text} -> {request.status}")
    return sorted(found)


def bulk_imports(fake: FakeChartMogul) -> list[t.Any]:
    """The `POST /data_sources/{ds}/json_imports` requests the fake received."""
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/json_imports")]


def failed_bulk_objects(fake: FakeChartMogul) -> list[str]:
    """Objects a bulk import reported failed: `invoices inv_1 (acct_1): customer_external_id Customer not found`."""
    found = []
    with fake.lock:
        records = list(fake.json_imports.imports.values())
    for record in records:
        for outcome in record.outcomes:
            if outcome.failed:
                errors = ", ".join(f"{key} {message}" for key, message in outcome.errors.items())
                found.append(f"{outcome.kind} {outcome.external_id} ({outcome.customer}): {errors}")
    return found


def refused_writes(fake: FakeChartMogul) -> list[str]:
    """Write requests ChartMogul refused (4xx other than 429), as `POST /v1/... -> 422 {...}`."""
    return [
        f"{r.method} {r.path} -> {r.status}"
        for r in fake.requests
        if r.method != "GET" and 400 <= r.status < 500 and r.status != 429
    ]


UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
IDS = re.compile(r"\b(?:acct|cus|inv|li|pay|ref|pl|sub|ds|tr)_[\w-]+")


def _general(reason: str) -> str:
    """A reject reason with its ids left out (`...`), so equal reasons count together."""
    return IDS.sub("...", UUID.sub("...", reason))


def counted(lines: t.Iterable[str]) -> str:
    """Lines with their ids left out, counted: `  927 x invoices ... (...): customer_external_id Customer not found`."""
    counts = collections.Counter(_general(line) for line in lines)
    return "\n".join(f"  {n} x {line}" for line, n in counts.most_common())


def rejects_of(path: pathlib.Path) -> list[dict[str, t.Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rejects_summary(path: pathlib.Path) -> str:
    """`998 rejected records:` then one line per stream and reason: `  943 x accounts-invoices...: customer ... not found`."""
    rejects = rejects_of(path)
    counts = collections.Counter((r.get("stream"), _general(str(r.get("reason")))) for r in rejects)
    lines = [f"{len(rejects)} rejected records ({path}):"]
    lines += [f"  {n} x {stream}: {reason}" for (stream, reason), n in counts.most_common()]
    return "\n".join(lines)


def assert_no_rejects(path: pathlib.Path) -> None:
    """The rejects file is created at the first reject: it must not exist."""
    assert not path.exists(), rejects_summary(path)


def assert_exact_first_load(fake: FakeChartMogul, ds: str, db: Database, rejects: pathlib.Path, layout: Layout) -> None:
    """A first load that went through the bulk import and left ChartMogul holding exactly the database:
    no reject, no object an import reported failed, no write refused, every field equal. All that is
    wrong is reported at once.
    """
    problems = []
    if rejects.exists():
        problems.append(rejects_summary(rejects))
    if not bulk_imports(fake):
        problems.append("the bulk import was not used: no POST .../json_imports")
    if failed := failed_bulk_objects(fake):
        problems.append(f"{len(failed)} objects failed in bulk imports:\n{counted(failed)}")
    if refused := refused_writes(fake):
        problems.append(f"{len(refused)} writes refused:\n{counted(refused)}")
    if differences := fake_differences(fake, ds, db, layout):
        problems.append(f"ChartMogul does not match the database ({len(differences)} differences):\n{shown(differences)}")
    assert not problems, "the first load is not exact:\n" + "\n".join(problems)
