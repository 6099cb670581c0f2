"""Billing data for the reconcile tests: non-ASCII names, amounts in currency units (EUR, JPY) and in cents, and the
same input sent as incremental streams or as complete full-table versions (tap-postgres with
emit_activate_version_messages: ACTIVATE_VERSION, the version's records, ACTIVATE_VERSION).
"""

from __future__ import annotations

import copy
import json
import pathlib
import typing as t
from decimal import Decimal

from tests.billing import encode
from tests.fake_chartmogul import FakeChartMogul
from tests.helpers import FakeApi
from tests.singer_messages import DATETIME, INTEGER, NUMBER, STRING, STRINGS, schema

PLANS_STREAM = "billing-plans"
CUSTOMERS_STREAM = "billing-customers"
INVOICES_STREAM = "billing-invoices"
REFUNDS_STREAM = "billing-refunds"
OBJECTS = {"type": ["array", "null"], "items": {"type": "object"}}

PLANS = [
    {"external_id": "pl-basic", "name": "Basic monatlich", "interval_count": 1, "interval_unit": "month"},
    {"external_id": "pl-pro", "name": "Pro jährlich", "interval_count": 1, "interval_unit": "year"},
]
CUSTOMERS = [
    {"external_id": "acct-1", "name": "Müller GmbH", "email": "rechnung@mueller.test", "country": "DE",
     "tags": ["vip"], "seats": 5},
    {"external_id": "acct-2", "name": "Société Générale d'Études", "email": "compta@etudes.test", "country": "FR",
     "tags": ["vip", "béta"], "seats": 12},
    {"external_id": "acct-3", "name": "株式会社サンプル", "email": "keiri@sample.test", "country": "JP",
     "tags": ["enterprise"], "seats": 40},
]


def line(invoice: int, n: int, kind: str, amount: str, **extra: t.Any) -> dict[str, t.Any]:
    """One line item, its amount in currency units as numeric columns arrive (`99.90`)."""
    return {"type": kind, "external_id": f"li-{invoice}-{n}", "amount": Decimal(amount), "quantity": 1, **extra}


def subscription(invoice: int, account: str, plan: str, amount: str, start: str, end: str) -> dict[str, t.Any]:
    return line(invoice, 1, "subscription", amount, subscription_external_id=f"sub-{account}", plan_external_id=plan,
                service_period_start=start, service_period_end=end, description=f"Abonnement {plan}")


def invoice(n: int, account: str, date: str, currency: str, lines: list[dict[str, t.Any]],
            paid: str) -> dict[str, t.Any]:
    """An invoice with its lines (jsonb) and its payment (json text) in currency units."""
    payment = {"type": "payment", "result": "successful", "date": date, "external_id": f"pay-{n}", "amount": Decimal(paid)}
    return {"external_id": f"inv-{n}", "customer_external_id": account, "date": date, "currency": currency,
            "line_items": lines, "transactions": encode([payment])}


INVOICES = [
    invoice(1, "acct-1", "2025-01-05T00:00:00+00:00", "EUR",
            [subscription(1, "acct-1", "pl-basic", "99.90", "2025-01-05T00:00:00+00:00", "2025-02-05T00:00:00+00:00"),
             line(1, 2, "one_time", "15.00", description="Schulung « Einführung »")], "114.90"),
    invoice(2, "acct-1", "2025-02-05T00:00:00+00:00", "EUR",
            [subscription(2, "acct-1", "pl-basic", "99.90", "2025-02-05T00:00:00+00:00", "2025-03-05T00:00:00+00:00")],
            "99.90"),
    invoice(3, "acct-2", "2025-03-10T09:30:00+01:00", "EUR",
            [subscription(3, "acct-2", "pl-pro", "1200.00", "2025-03-10T09:30:00+01:00", "2026-03-10T09:30:00+01:00"),
             line(3, 2, "one_time", "250.50", description="Mise en service")], "1450.50"),
    invoice(4, "acct-3", "2025-03-20T00:00:00+09:00", "JPY",
            [subscription(4, "acct-3", "pl-basic", "12000", "2025-03-20T00:00:00+09:00", "2025-04-20T00:00:00+09:00")],
            "12000"),
]
# Refunds in cents (the refunds table keeps minor units).
REFUNDS = [
    {"external_id": "ref-1", "invoice_external_id": "inv-1", "type": "refund", "result": "successful",
     "date": "2025-01-20T10:00:00+00:00", "amount_in_cents": Decimal("2500")},
]

PROPS: dict[str, dict[str, t.Any]] = {
    PLANS_STREAM: {"external_id": STRING, "name": STRING, "interval_count": INTEGER, "interval_unit": STRING},
    CUSTOMERS_STREAM: {"external_id": STRING, "name": STRING, "email": STRING, "country": STRING, "tags": STRINGS,
                       "seats": INTEGER},
    INVOICES_STREAM: {"external_id": STRING, "customer_external_id": STRING, "date": DATETIME, "currency": STRING,
                      "line_items": OBJECTS, "transactions": STRING},
    REFUNDS_STREAM: {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "result": STRING,
                     "date": DATETIME, "amount_in_cents": NUMBER},
}
ROWS: dict[str, list[dict[str, t.Any]]] = {PLANS_STREAM: PLANS, CUSTOMERS_STREAM: CUSTOMERS, INVOICES_STREAM: INVOICES,
                                           REFUNDS_STREAM: REFUNDS}


def reconcile_config(base_config: dict[str, t.Any], tmp_path: pathlib.Path, **extra: t.Any) -> dict[str, t.Any]:
    """The streams' options: custom attribute `seats`, invoices in currency units, refunds in cents."""
    return {**base_config, "reconcile_path": str(tmp_path / "out" / "reconcile.jsonl"),
            "streams": {CUSTOMERS_STREAM: {"custom_attributes": ["seats"]},
                        INVOICES_STREAM: {"amount_unit": "units"},
                        REFUNDS_STREAM: {"object": "transactions"}}, **extra}


def messages(*, version: int | None = None, rows: dict[str, list[dict[str, t.Any]]] | None = None) -> list[t.Any]:
    """Every stream in turn; with `version`, each as a complete full-table version (closed by ACTIVATE_VERSION)."""
    out: list[t.Any] = []
    for stream, stream_rows in (rows or ROWS).items():
        out.append(schema(stream, PROPS[stream]))
        activate = {"type": "ACTIVATE_VERSION", "stream": stream, "version": version}
        if version is not None:
            out.append(activate)
        for row in stream_rows:
            message: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": row}
            if version is not None:
                message["version"] = version
            out.append(encode(message))
        if version is not None:
            out.append(activate)
    return out


def findings(path: pathlib.Path) -> list[dict[str, t.Any]]:
    """The lines of a reconcile_path file."""
    return [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]


def change_behind_the_loaders_back(fake: FakeChartMogul, api: FakeApi, ds: str) -> dict[str, t.Any]:
    """Through the fake's API: rename acct-1, swap a tag of acct-2, change acct-3's seats, delete inv-2, raise the
    amount of inv-3's subscription line (deleted and imported again, as an edit in the app would), add acct-99.
    Returns what the test needs to know of ChartMogul afterwards.
    """
    uuids = {row["external_id"]: fake.find_customers(ds, row["external_id"])[0]["uuid"] for row in CUSTOMERS}
    api.ok("PATCH", f"/customers/{uuids['acct-1']}", {"name": "Müller AG"})
    api.ok("DELETE", f"/customers/{uuids['acct-2']}/attributes/tags", {"tags": ["vip"]})
    tags = api.ok("POST", f"/customers/{uuids['acct-2']}/attributes/tags", {"tags": ["gold"]})["tags"]
    api.ok("PUT", f"/customers/{uuids['acct-3']}/attributes/custom", {"custom": {"seats": 45}})
    api.ok("DELETE", f"/invoices/{fake.find_invoice(ds, 'inv-2')['uuid']}", status=204)
    held = copy.deepcopy(fake.find_invoice(ds, "inv-3"))
    api.ok("DELETE", f"/invoices/{held['uuid']}", status=204)
    lines = [{k: item[k] for k in ("type", "external_id", "amount_in_cents", "quantity", "description", "plan_uuid",
                                   "subscription_external_id", "service_period_start", "service_period_end") if item.get(k)}
             for item in held["line_items"]]
    lines[0]["amount_in_cents"] = 125000
    payments = [{k: tx[k] for k in ("type", "result", "date", "external_id", "amount_in_cents")}
                for tx in held["transactions"]]
    body = {"invoices": [{"external_id": "inv-3", "date": held["date"], "currency": held["currency"],
                          "line_items": lines, "transactions": payments}]}
    api.ok("POST", f"/import/customers/{uuids['acct-2']}/invoices", body, status=201)
    extra = api.ok("POST", "/customers", {"data_source_uuid": ds, "external_id": "acct-99", "name": "Zusätzlich Ltd",
                                          "email": "neu@zusaetzlich.test"}, status=201)
    return {"tags": tags, "extra_uuid": extra["uuid"]}


def as_full_table(input_messages: t.Sequence[t.Any], version: int) -> list[t.Any]:
    """The same messages with every stream sent as a complete full-table version: ACTIVATE_VERSION after its SCHEMA,
    its records carrying `version`, and a closing ACTIVATE_VERSION (as tap-postgres with
    emit_activate_version_messages sends a FULL_TABLE stream)."""
    out: list[t.Any] = []
    current: str | None = None

    def close() -> None:
        if current is not None:
            out.append({"type": "ACTIVATE_VERSION", "stream": current, "version": version})

    for raw in input_messages:
        message = json.loads(raw, parse_float=Decimal) if isinstance(raw, str) else copy.deepcopy(raw)
        if message["type"] == "SCHEMA" and message["stream"] != current:
            close()
            current = message["stream"]
            out += [message, {"type": "ACTIVATE_VERSION", "stream": current, "version": version}]
            continue
        if message["type"] == "RECORD":
            message["version"] = version
        out.append(encode(message))
    close()
    return out
