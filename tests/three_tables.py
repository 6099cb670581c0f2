"""Invoices as billing databases hold them: headers, lines and payments in three tables, amounts in units.

Shaped like tap-postgres output of `invoices`, `invoice_lines` and `payments` tables with
`numeric(12,2)` amounts (currency units: `99.90`), and checks that ChartMogul holds them
exactly, cents included.
"""

from __future__ import annotations

import copy
import typing as t
from decimal import Decimal

from tests.billing import CUSTOMERS, PLANS, encode, instant, one_customer_uuid
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import DATETIME, INTEGER, NUMBER, STRING, schema

HEADERS_STREAM = "billing-invoices"
LINES_STREAM = "billing-invoice_lines"
PAYMENTS_STREAM = "billing-payments"
HEADER_PROPS = {"external_id": STRING, "customer_external_id": STRING, "date": DATETIME, "due_date": DATETIME,
                "currency": STRING, "status": STRING}
LINE_PROPS = {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "plan_external_id": STRING,
              "subscription_external_id": STRING, "service_period_start": DATETIME, "service_period_end": DATETIME,
              "quantity": INTEGER, "amount": NUMBER, "description": STRING}
PAYMENT_PROPS = {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "result": STRING,
                 "date": DATETIME, "amount": NUMBER}


def streams_config() -> dict[str, t.Any]:
    """The `streams` setting of the three tables: amounts in currency units."""
    return {
        HEADERS_STREAM: {"object": "invoices", "amount_unit": "units"},
        LINES_STREAM: {"object": "line_items", "amount_unit": "units"},
        PAYMENTS_STREAM: {"object": "transactions", "amount_unit": "units"},
    }


class Tables:
    """Rows of the three tables (deterministic), and their messages."""

    def __init__(self, invoices: int = 12) -> None:
        self.headers: list[dict[str, t.Any]] = []
        self.lines: list[dict[str, t.Any]] = []
        self.payments: list[dict[str, t.Any]] = []
        for n in range(1, invoices + 1):
            customer = CUSTOMERS[n % len(CUSTOMERS)]["external_id"]
            plan = PLANS[n % len(PLANS)]["external_id"]
            currency = "JPY" if n % 6 == 0 else "EUR"
            ext = f"inv-{n:03d}"
            date = f"2024-{1 + n % 12:02d}-0{1 + n % 9}T00:00:00+00:00"
            self.headers.append({"external_id": ext, "customer_external_id": customer, "date": date, "due_date": None,
                                 "currency": currency, "status": "paid"})
            price = Decimal("12900") if currency == "JPY" else Decimal("99.90") + n
            self.lines.append({"external_id": f"{ext}-1", "invoice_external_id": ext, "type": "subscription",
                               "plan_external_id": plan, "subscription_external_id": f"sub-{customer}",
                               "service_period_start": date, "service_period_end": date.replace("2024-", "2025-"),
                               "quantity": 1, "amount": price, "description": "Subscription"})
            setup = Decimal("500") if currency == "JPY" else Decimal("15.50")
            self.lines.append({"external_id": f"{ext}-2", "invoice_external_id": ext, "type": "one_time",
                               "plan_external_id": None, "subscription_external_id": None,
                               "service_period_start": None, "service_period_end": None, "quantity": 2,
                               "amount": setup, "description": "Setup"})
            if n % 4 != 0:
                self.payments.append({"external_id": f"pay-{n:03d}", "invoice_external_id": ext, "type": "payment",
                                      "result": "successful", "date": date, "amount": price + setup * 2})

    def copy(self) -> Tables:
        return copy.deepcopy(self)

    def messages(self, order: t.Sequence[str] = ("lines", "headers", "payments")) -> list[t.Any]:
        """SCHEMA and RECORD messages, stream after stream in `order` (tap-postgres: alphabetical)."""
        parts = {
            "headers": (HEADERS_STREAM, HEADER_PROPS, self.headers),
            "lines": (LINES_STREAM, LINE_PROPS, self.lines),
            "payments": (PAYMENTS_STREAM, PAYMENT_PROPS, self.payments),
        }
        out: list[t.Any] = []
        for name in order:
            stream, props, rows = parts[name]
            out.append(schema(stream, props))
            out.extend(encode({"type": "RECORD", "stream": stream, "record": row}) for row in rows)
        return out


def cents(value: t.Any, currency: str) -> int:
    """Units to cents, as ChartMogul holds them (JPY has no minor unit)."""
    return int(Decimal(str(value)) * (1 if currency == "JPY" else 100))


def assert_holds(fake: FakeChartMogul, ds: str, tables: Tables) -> None:
    """ChartMogul holds exactly the tables: every invoice, line and payment, cents exact; nothing else."""
    with fake.lock:
        held_invoices = sorted(i["external_id"] for i in fake.invoices.values())
    assert held_invoices == sorted(h["external_id"] for h in tables.headers)
    for header in tables.headers:
        held = fake.find_invoice(ds, header["external_id"])
        assert held is not None, header["external_id"]
        where = f"invoice {header['external_id']}"
        assert held["customer_uuid"] == one_customer_uuid(fake, ds, header["customer_external_id"]), where
        assert instant(held["date"]) == instant(header["date"]), where
        assert held["currency"] == header["currency"], where
        lines = {item["external_id"]: item for item in held["line_items"]}
        wanted = [line for line in tables.lines if line["invoice_external_id"] == header["external_id"]]
        assert sorted(lines) == sorted(line["external_id"] for line in wanted), where
        for line in wanted:
            item = lines[line["external_id"]]
            assert item["amount_in_cents"] == cents(line["amount"], header["currency"]), (where, line["external_id"])
            assert item["quantity"] == line["quantity"], where
            if line["type"] == "subscription":
                assert item["plan_uuid"] == fake.find_plan(ds, line["plan_external_id"])["uuid"], where
        payments = {tx["external_id"]: tx for tx in held["transactions"] if tx["external_id"].startswith("pay-")}
        wanted_payments = [p for p in tables.payments if p["invoice_external_id"] == header["external_id"]]
        assert sorted(payments) == sorted(p["external_id"] for p in wanted_payments), where
        for payment in wanted_payments:
            tx = payments[payment["external_id"]]
            assert (tx["result"], tx["amount_in_cents"]) == (payment["result"], cents(payment["amount"],
                                                                                        header["currency"])), where
    with fake.lock:
        copies: dict[str, int] = {}
        for tx in fake.transactions.values():
            copies[tx["external_id"]] = copies.get(tx["external_id"], 0) + 1
    assert all(n == 1 for n in copies.values()), copies
