"""Invoices as billing databases hold them: headers, lines and payments in three tables, amounts in units.

Shaped like tap-postgres output of `invoices`, `invoice_lines` and `payments` tables with
`numeric(12,2)` amounts (currency units: `99.90`), and checks that ChartMogul holds them
exactly, cents included. `Tables(every_field=True)` fills every standard field of a header, a line
and a payment (discounts, taxes, fees, proration, account codes, event order, non-ASCII text), for
any customers (`customers=`) and under other stream names (`messages(names=...)`).
"""

from __future__ import annotations

import copy
import typing as t
from decimal import Decimal

from tests.billing import CUSTOMERS, PLANS, encode, instant, one_customer_uuid
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import BOOLEAN, DATETIME, INTEGER, NUMBER, STRING, schema

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
# every_field: what a billing database also keeps for each header, line and payment
FULL_HEADER_PROPS = {**HEADER_PROPS, "collection_method": STRING}
FULL_LINE_PROPS = {**LINE_PROPS, "subscription_set_external_id": STRING, "prorated": BOOLEAN,
                   "proration_type": STRING, "cancelled_at": DATETIME, "discount_code": STRING,
                   "discount_amount": NUMBER, "discount_description": STRING, "tax_amount": NUMBER,
                   "transaction_fees": NUMBER, "transaction_fees_currency": STRING, "account_code": STRING,
                   "event_order": INTEGER}
FULL_PAYMENT_PROPS = {**PAYMENT_PROPS, "transaction_fees": NUMBER, "transaction_fees_currency": STRING}


def streams_config(names: t.Mapping[str, str] | None = None) -> dict[str, t.Any]:
    """The `streams` setting of the three tables: amounts in currency units (`names` as in `Tables.messages`)."""
    streams = {"headers": HEADERS_STREAM, "lines": LINES_STREAM, "payments": PAYMENTS_STREAM, **(names or {})}
    return {
        streams["headers"]: {"object": "invoices", "amount_unit": "units"},
        streams["lines"]: {"object": "line_items", "amount_unit": "units"},
        streams["payments"]: {"object": "transactions", "amount_unit": "units"},
    }


class Tables:
    """Rows of the three tables (deterministic), and their messages."""

    def __init__(self, invoices: int = 12, *, customers: t.Sequence[str] | None = None, every_field: bool = False,
                 prefix: str = "inv") -> None:
        self.every_field = every_field
        self.headers: list[dict[str, t.Any]] = []
        self.lines: list[dict[str, t.Any]] = []
        self.payments: list[dict[str, t.Any]] = []
        accounts = list(customers) if customers is not None else [c["external_id"] for c in CUSTOMERS]
        for n in range(1, invoices + 1):
            customer = accounts[n % len(accounts)]
            plan = PLANS[n % len(PLANS)]["external_id"]
            currency = "JPY" if n % 6 == 0 else "EUR"
            ext = f"{prefix}-{n:03d}"
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
                pay = "pay" if prefix == "inv" else f"{prefix}-pay"
                self.payments.append({"external_id": f"{pay}-{n:03d}", "invoice_external_id": ext, "type": "payment",
                                      "result": "successful", "date": date, "amount": price + setup * 2})
            if every_field:
                self._fill(n, currency)

    def _fill(self, n: int, currency: str) -> None:
        """Every other standard field of invoice `n`'s header, lines and payment (nulls and blanks among them)."""
        header, lines = self.headers[-1], self.lines[-2:]
        header.update(collection_method=("automatic", "manual", None)[n % 3], due_date=None if n % 2 else header["date"])
        subscription, one_time = lines
        small = Decimal("100") if currency == "JPY" else Decimal("1.50")
        subscription.update(
            subscription_set_external_id=f"set-{subscription['subscription_external_id']}" if n % 2 else None,
            prorated=n % 3 == 0, proration_type="differential" if n % 3 == 0 else None,
            cancelled_at=header["date"].replace("2024-", "2025-") if n % 5 == 0 else None,
            discount_code="WILLKOMMEN" if n % 2 else "", discount_amount=small if n % 2 else None,
            discount_description="Willkommensrabatt für Neukunden" if n % 2 else None, tax_amount=small * 2,
            transaction_fees=small, transaction_fees_currency=currency, account_code=f"4{n:03d}", event_order=n,
            description=("Abonnement Größe M", "月額プラン", "Subscription")[n % 3])
        one_time.update(
            subscription_set_external_id=None, prorated=None, proration_type=None, cancelled_at=None,
            discount_code=None, discount_amount=None, discount_description=None, tax_amount=small if n % 2 else None,
            transaction_fees=None, transaction_fees_currency=None, account_code="" if n % 2 else "8400",
            event_order=None, description="Einrichtung / 初期設定")
        if self.payments and self.payments[-1]["invoice_external_id"] == header["external_id"]:
            self.payments[-1].update(transaction_fees=small if n % 2 else None,
                                     transaction_fees_currency=currency if n % 2 else None)

    def copy(self) -> Tables:
        return copy.deepcopy(self)

    def messages(self, order: t.Sequence[str] = ("lines", "headers", "payments"),
                 names: t.Mapping[str, str] | None = None) -> list[t.Any]:
        """SCHEMA and RECORD messages, stream after stream in `order` (tap-postgres: alphabetical); `names` renames
        the streams (`{"headers": "public-invoices", ...}`).
        """
        full = self.every_field
        streams = {"headers": HEADERS_STREAM, "lines": LINES_STREAM, "payments": PAYMENTS_STREAM, **(names or {})}
        parts = {
            "headers": (streams["headers"], FULL_HEADER_PROPS if full else HEADER_PROPS, self.headers),
            "lines": (streams["lines"], FULL_LINE_PROPS if full else LINE_PROPS, self.lines),
            "payments": (streams["payments"], FULL_PAYMENT_PROPS if full else PAYMENT_PROPS, self.payments),
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
