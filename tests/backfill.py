"""A company's history for the bulk import tests and benchmark: what a first load sends.

Plans, customers (every fourth with a typed custom attribute, every fifth with tags),
invoices per customer (two line items and a payment each), refunds of every tenth invoice
in a stream of their own, and a subscription start per third customer. Streams come in
tap-postgres order (sorted by name): customers, invoices, plans, refunds, events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing as t
from decimal import Decimal

from tests.billing import (
    CUSTOMERS_STREAM,
    PLANS,
    assert_invoice_matches,
    assert_refund_matches,
    billing_config,
    invoices_messages,
    make_invoice,
    plans_messages,
    refunds_messages,
)
from tests.fake_chartmogul import FakeChartMogul
from tests.singer_messages import INTEGER, customers_stream
from tests.subscription_rows import EVENTS_STREAM, assert_event_matches, events_messages

START = dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)


@dataclasses.dataclass
class Backfill:
    """The rows of each stream."""

    customers: list[dict[str, t.Any]]
    invoices: list[dict[str, t.Any]]
    refunds: list[dict[str, t.Any]]
    events: list[dict[str, t.Any]]

    @property
    def records(self) -> int:
        """Input records (plans included)."""
        return len(PLANS) + len(self.customers) + len(self.invoices) + len(self.refunds) + len(self.events)


def customer_row(i: int) -> dict[str, t.Any]:
    """One customer; custom attribute `seats` on every fourth, tags on every fifth."""
    return {
        "external_id": f"c-{i:05d}",
        "name": f"Customer {i}",
        "email": f"billing{i}@example.test",
        "country": ("DE", "US", "FR")[i % 3],
        "city": "Berlin" if i % 2 else None,
        "lead_created_at": (START + dt.timedelta(days=i % 300)).isoformat(),
        "seats": i % 50 + 1 if i % 4 == 0 else None,
        "tags": ["vip", f"cohort-{i % 3}"] if i % 5 == 0 else None,
    }


def backfill(customers: int, invoices_each: int = 3) -> Backfill:
    """The history of `customers` customers."""
    rows = [customer_row(i) for i in range(customers)]
    invoices, refunds, events = [], [], []
    for i, customer in enumerate(rows):
        account = customer["external_id"]
        for k in range(invoices_each):
            n = i * invoices_each + k
            start = START + dt.timedelta(days=30 * k + i % 28)
            end = start + dt.timedelta(days=30)
            plan = PLANS[n % len(PLANS)]["external_id"]
            invoices.append(make_invoice(n, account, plan, start.isoformat(), end.isoformat(), str(1000 + n % 9000),
                                         "0" if k else "1500"))
            if n % 10 == 0:
                refunds.append({"external_id": f"ref-{n}", "invoice_ref": f"inv-{n}", "type": "refund",
                                "result": "successful", "date": (start + dt.timedelta(days=5)).isoformat(),
                                "amount_in_cents": Decimal("500"), "transaction_fees_in_cents": None})
        if i % 3 == 0:
            events.append(start_event(i, account))
    return Backfill(rows, invoices, refunds, events)


def start_event(i: int, account: str) -> dict[str, t.Any]:
    """A subscription start of the customer's second subscription (one billed without invoices)."""
    day = START + dt.timedelta(days=i % 365)
    return {"external_id": f"ev-{i:05d}", "customer_external_id": account, "subscription_external_id": f"es-{i}",
            "subscription_set_external_id": None, "event_type": "subscription_start",
            "event_date": day.isoformat(), "effective_date": day.isoformat(),
            "plan_external_id": PLANS[i % len(PLANS)]["external_id"], "currency": "EUR",
            "amount_in_cents": Decimal(2000 + i), "quantity": 1, "tax_amount_in_cents": None,
            "retracted_event_id": None, "event_order": None}


def messages(data: Backfill) -> list[t.Any]:
    """Every stream, in tap-postgres order."""
    return [
        *customers_stream(CUSTOMERS_STREAM, data.customers, {"seats": INTEGER}),
        *invoices_messages(data.invoices),
        *plans_messages(),
        *refunds_messages(data.refunds),
        *events_messages(data.events),
    ]


def config(base_config: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
    """Billing streams as mapped in tests.billing, the customers' custom attribute, the events stream."""
    settings = billing_config(base_config, **extra)
    settings["streams"] = {**settings["streams"], CUSTOMERS_STREAM: {"custom_attributes": ["seats"]},
                           EVENTS_STREAM: {"object": "subscription_events"}}
    return settings


def assert_landed(fake: FakeChartMogul, ds: str, data: Backfill) -> None:
    """ChartMogul holds every row exactly once, as sent: fields, custom attributes, tags, lines, payments, events."""
    with fake.lock:
        assert len(fake.customers) == len(data.customers)
        assert len(fake.invoices) == len(data.invoices)
        expected_tx = len(data.invoices) + len(data.refunds)
        assert len(fake.transactions) == expected_tx
    for row in data.customers:
        found = fake.find_customers(ds, row["external_id"])
        assert len(found) == 1, row["external_id"]
        held = found[0]
        for name in ("name", "email", "country"):
            assert held[name] == row[name], (row["external_id"], name)
        assert (held["city"] or None) == row["city"], row["external_id"]
        custom = held["attributes"]["custom"]
        assert custom == ({"seats": row["seats"]} if row["seats"] is not None else {}), row["external_id"]
        assert sorted(held["attributes"]["tags"]) == sorted(row["tags"] or []), row["external_id"]
    for invoice in data.invoices:
        assert_invoice_matches(fake, ds, invoice)
    for refund in data.refunds:
        assert_refund_matches(fake, ds, refund)
    for event in data.events:
        assert_event_matches(fake, ds, event)
    assert len(fake.subscription_events.items) == len(data.events)
