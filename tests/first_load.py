"""A first load as a real billing database sends it, for the tests that run both lanes (tests/lanes.py).

Streams come as tap-postgres sends them, sorted by name: `public-accounts` (customers with every standard field
Create a Customer takes, custom attributes of all five types from the stream's schema, tags),
`public-invoices` (headers whose lines come from `public-line_items` and payments from `public-payments`),
`public-invoices_with_lines` (a json_agg view: nested lines and payments), `public-people` (contacts),
`public-plans` (after the invoices that use them), `public-refunds` and `public-subscription_changes`. Values are
what users have: nulls, empty strings, umlauts and Japanese, amounts as `numeric` decimals. Each `*_scenario`
function is a scenario for `assert_same_in_both_lanes`.
"""

from __future__ import annotations

import datetime as dt
import typing as t
from decimal import Decimal

from tests.billing import INVOICE_PROPS, PLAN_PROPS, PLANS, encode, make_invoice, raw_record
from tests.lanes import Run
from tests.singer_messages import (
    BOOLEAN,
    DATE,
    DATETIME,
    INTEGER,
    NUMBER,
    OBJECT,
    STRING,
    customers_stream,
    schema,
)
from tests.subscription_rows import EVENT_PROPS, PEOPLE_PROPS, event_rows, people_config, people_rows
from tests.three_tables import Tables, streams_config

ACCOUNTS = "public-accounts"
INVOICES = "public-invoices"
NESTED = "public-invoices_with_lines"
LINE_ITEMS = "public-line_items"
PAYMENTS = "public-payments"
PEOPLE = "public-people"
PLANS_STREAM = "public-plans"
REFUNDS = "public-refunds"
EVENTS = "public-subscription_changes"
TABLE_NAMES = {"headers": INVOICES, "lines": LINE_ITEMS, "payments": PAYMENTS}
START = dt.datetime(2023, 1, 1, tzinfo=dt.timezone.utc)

ALL_PLANS = [*PLANS, {"external_id": "pl-jp", "name": "プロ 四半期 (Größe L)", "interval_count": 3, "interval_unit": "month"}]
CUSTOM = {"plan_tier": STRING, "seats": INTEGER, "discount_rate": NUMBER, "renewal_at": DATETIME, "signed_on": DATE,
          "is_partner": BOOLEAN}  # String, Integer, Decimal, Timestamp (date-time and date), Boolean
ACCOUNT_PROPS = {"owner": STRING, "primary_contact": OBJECT, **CUSTOM}
NINE_FIELDS = ("name", "email", "company", "country", "state", "city", "zip", "lead_created_at", "free_trial_started_at")
NESTED_PROPS = {**{k: v for k, v in INVOICE_PROPS.items() if k != "account_code"}, "customer_external_id": STRING,
                "status": STRING}
REFUND_PROPS = {"external_id": STRING, "invoice_external_id": STRING, "type": STRING, "result": STRING,
                "date": DATETIME, "amount_in_cents": NUMBER, "transaction_fees_in_cents": NUMBER,
                "transaction_fees_currency": STRING}

# Who the customers are: German, Japanese, American; one with nothing but a name, one with blanks everywhere.
PLACES = [
    {"name": "Müller & Söhne GmbH", "company": "Müller & Söhne", "country": "DE", "state": None, "city": "Düsseldorf",
     "zip": "40213", "email": "buchhaltung@müller.example"},
    {"name": "株式会社サンプル", "company": "サンプル商事", "country": "JP", "state": None, "city": "東京都渋谷区",
     "zip": "150-0002", "email": "keiri@sample.example"},
    {"name": "Acme Inc.", "company": "Acme", "country": "US", "state": "US-CA", "city": "San Francisco", "zip": "94103",
     "email": "ap@acme.example"},
    {"name": "Österreichische Bäckerei", "company": None, "country": "AT", "state": None, "city": None, "zip": None,
     "email": None},
    {"name": "Zoë's Café", "company": "", "country": "", "state": "", "city": "", "zip": "", "email": ""},
]
TAGS = [["VIP", "Großkunde"], ["日本", "vip"], [], None, ["Enterprise", "enterprise", "Beta-Tester"]]


def account_row(i: int) -> dict[str, t.Any]:
    """Customer `i` with every standard field, six custom attributes and tags; nulls and blanks on some rows."""
    place = PLACES[i % len(PLACES)]
    blank = i % len(PLACES) == 4  # "" wherever a text column can hold one
    bare = i % len(PLACES) == 3  # null wherever a column can be null
    lead = START + dt.timedelta(days=i % 200, hours=i % 24)
    row: dict[str, t.Any] = {
        "external_id": f"acct-{i:04d}",
        **place,
        "name": f"{place['name']} {i}",
        "lead_created_at": None if bare else lead.isoformat(),
        "free_trial_started_at": None if bare or i % 2 else (lead + dt.timedelta(days=3)).astimezone(
            dt.timezone(dt.timedelta(hours=9))).isoformat(),
        "website_url": "" if blank else None if bare else f"https://www.kunde-{i}.example/über-uns",
        "owner": "" if blank else None if bare else ("anna@vendor.example", "jun@vendor.example")[i % 2],
        "primary_contact": None if bare else {
            "first_name": ("Jürgen", "太郎", "Mary")[i % 3], "last_name": ("Groß", "山田", "O'Neil")[i % 3],
            "email": f"contact{i}@kunde.example", "title": "Geschäftsführer" if i % 2 else "CFO",
            "phone": f"+49 211 {1000 + i}", "linked_in": f"https://linkedin.com/in/c{i}" if i % 3 else "",
            "twitter": None, "notes": "Bevorzugt E-Mail / メール希望" if i % 2 else None},
        "tags": TAGS[i % len(TAGS)],
        "plan_tier": "" if blank else None if bare else ("Gold", "ゴールド", "Größe M")[i % 3],
        "seats": None if bare else i % 40 + 1,
        "discount_rate": None if bare else Decimal(f"0.{i % 9 + 1}5"),
        "renewal_at": None if bare else (lead + dt.timedelta(days=365)).isoformat(),
        "signed_on": None if bare else (lead + dt.timedelta(days=1)).date().isoformat(),
        "is_partner": None if bare else i % 2 == 0,
    }
    return row


def nine_field_row(i: int) -> dict[str, t.Any]:
    """Customer `i` with only the nine fields of ChartMogul's bulk import example (and its external id)."""
    full = account_row(i)
    return {"external_id": full["external_id"], **{k: full[k] for k in NINE_FIELDS}}


def accounts_messages(rows: t.Sequence[dict[str, t.Any]], *, extra: bool = True) -> list[t.Any]:
    """The accounts stream (decimals written as numbers exactly, as tap-postgres does)."""
    messages = customers_stream(ACCOUNTS, [], ACCOUNT_PROPS if extra else None)
    return [*messages, *(raw_record(ACCOUNTS, row) for row in rows)]


def accounts_config() -> dict[str, t.Any]:
    return {ACCOUNTS: {"object": "customers", "custom_attributes": list(CUSTOM)}}


def nested_config() -> dict[str, t.Any]:
    """The view's name says no object: it is listed."""
    return {NESTED: {"object": "invoices"}}


def plans_messages() -> list[t.Any]:
    return [schema(PLANS_STREAM, PLAN_PROPS), *(raw_record(PLANS_STREAM, plan) for plan in ALL_PLANS)]


# ---------------------------------------------------------------------------------- invoices


def nested_invoice(n: int, account: str) -> dict[str, t.Any]:
    """Invoice `n` as a json_agg view gives it: every standard field of the header, its lines and payments."""
    start = START + dt.timedelta(days=30 * (n % 12), hours=n % 5)
    end = start + dt.timedelta(days=30)
    currency = ("EUR", "JPY", "usd")[n % 3]
    plan = ALL_PLANS[n % len(ALL_PLANS)]["external_id"]
    row = make_invoice(n, account, plan, start.isoformat(), end.isoformat(), str(4900 + n % 5000),
                       "0" if n % 4 else "2500", currency=currency, due_date=(end - dt.timedelta(days=15)).isoformat()
                       if n % 2 else None, collection_method=("automatic", "manual", None)[n % 3])
    row["customer_external_id"] = row.pop("account_code")
    row["status"] = "voided" if n % 17 == 5 else "written_off" if n % 19 == 7 else "paid"
    subscription, one_time = row["line_items"]
    subscription.update(
        subscription_set_external_id=f"set-{account}" if n % 2 else None, prorated=n % 3 == 0,
        proration_type="full" if n % 3 == 0 else None, cancelled_at=end.isoformat() if n % 7 == 0 else None,
        discount_code="" if n % 2 else "SOMMER", discount_amount_in_cents=Decimal("0") if n % 2 else Decimal("490.00"),
        discount_description=None if n % 2 else "Sommerrabatt 10 %", transaction_fees_in_cents=Decimal("35"),
        transaction_fees_currency=currency.upper(), account_code=f"40{n % 100:02d}", event_order=n % 3 or None,
        description=("Abonnement \u2013 Größe M", "月額プラン\uff08標準\uff09", "Pro subscription")[n % 3])
    one_time.update(discount_amount_in_cents=None, tax_amount_in_cents=Decimal("190") if n % 2 else None,
                    account_code="" if n % 2 else "8400", description="Einrichtung / 初期設定")
    if n % 5 == 0:  # a downgrade: the unused part of the plan credited, prorated
        row["line_items"].append({"type": "subscription", "subscription_external_id": f"sub-{account}",
                                  "plan_external_id": plan, "service_period_start": start.isoformat(),
                                  "service_period_end": end.isoformat(), "amount_in_cents": Decimal("-1200"),
                                  "quantity": 1, "prorated": True, "proration_type": "differential",
                                  "external_id": f"li-{n}-3", "description": "Gutschrift Downgrade"})
    if n % 6 == 0:  # a trial before the subscription
        row["line_items"].append({"type": "trial", "subscription_external_id": f"trial-{account}",
                                  "plan_external_id": plan, "service_period_start": start.isoformat(),
                                  "service_period_end": (start + dt.timedelta(days=14)).isoformat(),
                                  "amount_in_cents": Decimal("0"), "quantity": 1, "external_id": f"li-{n}-4"})
    payment = row["transactions"][0]
    payment.update(transaction_fees_in_cents=Decimal("30") if n % 2 else None,
                   transaction_fees_currency=currency.upper() if n % 2 else None)
    if n % 4 == 3:  # a failed attempt before the payment that went through
        row["transactions"].insert(0, {**payment, "external_id": f"pay-{n}-failed", "result": "failed",
                                       "transaction_fees_in_cents": None, "transaction_fees_currency": None})
    if n % 8 == 1:
        row["transactions"] = []  # unpaid
    return row


def nested_invoices(accounts: t.Sequence[str], each: int = 2, first: int = 1) -> list[dict[str, t.Any]]:
    return [nested_invoice(first + i * each + k, account) for i, account in enumerate(accounts) for k in range(each)]


def nested_messages(invoices: t.Sequence[dict[str, t.Any]]) -> list[t.Any]:
    """The view's stream: lines as a jsonb array, payments as a json text column."""
    rows = [{**inv, "transactions": encode(inv["transactions"])} for inv in invoices]
    return [schema(NESTED, NESTED_PROPS), *(raw_record(NESTED, row) for row in rows)]


def refund_rows(invoices: t.Sequence[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """A refund of every third paid invoice, some failed, some with fees."""
    rows = []
    for n, invoice in enumerate(invoices):
        paid = [tx for tx in invoice["transactions"] if tx["result"] == "successful"]
        if not paid or n % 3:
            continue
        day = dt.datetime.fromisoformat(invoice["date"]) + dt.timedelta(days=9, hours=n % 7)
        rows.append({"external_id": f"ref-{invoice['external_id']}", "invoice_external_id": invoice["external_id"],
                     "type": "refund", "result": "failed" if n % 4 == 3 else "successful", "date": day.isoformat(),
                     "amount_in_cents": Decimal("1000.00") if n % 2 else paid[0]["amount_in_cents"],
                     "transaction_fees_in_cents": Decimal("25") if n % 2 else None,
                     "transaction_fees_currency": invoice["currency"].upper() if n % 2 else None})
    return rows


def refunds_messages(rows: t.Sequence[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(REFUNDS, REFUND_PROPS), *(raw_record(REFUNDS, row) for row in rows)]


def tables(accounts: t.Sequence[str], invoices: int) -> Tables:
    """Headers, lines of their own stream and payments, every standard field filled (three_tables.Tables)."""
    return Tables(invoices, customers=accounts, every_field=True, prefix="ord")


def tables_messages(data: Tables) -> list[t.Any]:
    """The three tables under the public-* names, sorted as tap-postgres sends them."""
    return data.messages(("headers", "lines", "payments"), names=TABLE_NAMES)


# ---------------------------------------------------------------------------------- events and contacts


def events(accounts: t.Sequence[str], subscriptions: int) -> list[dict[str, t.Any]]:
    """Every event type per subscription (tests.subscription_rows), on these customers and all plans."""
    return event_rows(subscriptions, START, customers=accounts, plans=[p["external_id"] for p in ALL_PLANS])


def events_messages(rows: t.Sequence[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(EVENTS, EVENT_PROPS), *(raw_record(EVENTS, row) for row in rows)]


def people(accounts: t.Sequence[str]) -> list[dict[str, t.Any]]:
    """Two or three people per customer (tests.subscription_rows), some with umlauts and Japanese names."""
    rows = people_rows(accounts)
    for n, row in enumerate(rows):
        if n % 3 == 1:
            row.update(first_name="Jürgen", last_name="Weiß", notes="Zuständig für Verträge")
        elif n % 3 == 2:
            row.update(first_name="花子", last_name="佐藤", title="経理部長", email=None)
    return rows


def people_messages(rows: t.Sequence[dict[str, t.Any]]) -> list[t.Any]:
    return [schema(PEOPLE, PEOPLE_PROPS), *(raw_record(PEOPLE, row) for row in rows)]


# ---------------------------------------------------------------------------------- scenarios


def ids(rows: t.Sequence[dict[str, t.Any]]) -> list[str]:
    return [row["external_id"] for row in rows]


def customers_nine_fields_scenario(customers: int = 12) -> Run:
    """Customers with only the nine fields of the bulk import's documented example: the lanes agree today."""
    rows = [nine_field_row(i) for i in range(customers)]
    return Run(accounts_messages(rows, extra=False), {"streams": {ACCOUNTS: {"object": "customers"}}})


def customers_nine_fields_with_attributes_scenario(customers: int = 12) -> Run:
    """Customers with the nine documented fields plus custom attributes of every type and tags."""
    rows = [{**nine_field_row(i), **{k: account_row(i)[k] for k in (*CUSTOM, "tags")}} for i in range(customers)]
    messages = [*customers_stream(ACCOUNTS, [], CUSTOM), *(raw_record(ACCOUNTS, row) for row in rows)]
    return Run(messages, {"streams": accounts_config()})


def billing_nine_fields_scenario(customers: int = 12) -> Run:
    """Every billing object (both invoice shapes, payments, refunds, events) of customers with only the nine
    documented fields: the lanes agree today.
    """
    rows = [nine_field_row(i) for i in range(customers)]
    accounts = ids(rows)
    invoices = nested_invoices(accounts)
    data = tables(accounts, 2 * customers)
    table_messages = tables_messages(data)
    return Run([*accounts_messages(rows, extra=False), *table_messages[: 1 + len(data.headers)],
                *nested_messages(invoices), *table_messages[1 + len(data.headers):], *plans_messages(),
                *refunds_messages(refund_rows(invoices)), *events_messages(events(accounts, customers // 2))],
               {"streams": {**first_load_streams(), ACCOUNTS: {"object": "customers"}}})


def customers_scenario(customers: int = 15) -> Run:
    """Customers with every standard field, custom attributes of every type, tags."""
    rows = [account_row(i) for i in range(customers)]
    return Run(accounts_messages(rows), {"streams": accounts_config()})


def nested_invoices_scenario(customers: int = 12) -> Run:
    """Those customers with invoices of nested lines and payments (invoices_with_lines); plans last."""
    rows = [account_row(i) for i in range(customers)]
    invoices = nested_invoices(ids(rows))
    return Run([*accounts_messages(rows), *nested_messages(invoices), *plans_messages()],
               {"streams": {**accounts_config(), **nested_config()}})


def line_items_stream_scenario(customers: int = 12) -> Run:
    """Invoices whose lines come from their own stream and payments from theirs, amounts in units; plans last."""
    rows = [account_row(i) for i in range(customers)]
    data = tables(ids(rows), 2 * customers)
    return Run([*accounts_messages(rows), *tables_messages(data), *plans_messages()],
               {"streams": {**accounts_config(), **streams_config(TABLE_NAMES)}})


def refunds_scenario(customers: int = 12) -> Run:
    """Invoices with payments, and refunds in their own transactions stream after the plans."""
    rows = [account_row(i) for i in range(customers)]
    invoices = nested_invoices(ids(rows))
    return Run([*accounts_messages(rows), *nested_messages(invoices), *plans_messages(),
                *refunds_messages(refund_rows(invoices))],
               {"streams": {**accounts_config(), **nested_config(), REFUNDS: {"object": "transactions"}}})


def events_scenario(customers: int = 9) -> Run:
    """Subscription events of every type for those customers; plans before the events, as sorted."""
    rows = [account_row(i) for i in range(customers)]
    return Run([*accounts_messages(rows), *plans_messages(), *events_messages(events(ids(rows), customers))],
               {"streams": {**accounts_config(), EVENTS: {"object": "subscription_events"}}})


def contacts_scenario(customers: int = 9) -> Run:
    """Contacts (people) of those customers, with custom attributes of three types."""
    rows = [account_row(i) for i in range(customers)]
    return Run([*accounts_messages(rows), *people_messages(people(ids(rows)))],
               {"streams": {**accounts_config(), **contacts_streams()}})


def contacts_streams() -> dict[str, t.Any]:
    """The people stream as tests.subscription_rows configures it (custom attributes of three types)."""
    return {PEOPLE: people_config({})["streams"][PEOPLE]}


def first_load_streams() -> dict[str, t.Any]:
    return {**accounts_config(), **streams_config(TABLE_NAMES), **nested_config(), REFUNDS: {"object": "transactions"},
            EVENTS: {"object": "subscription_events"}, **contacts_streams()}


def first_load_messages(customers: int) -> list[t.Any]:
    """Everything above for `customers` customers, every stream in tap-postgres order."""
    rows = [account_row(i) for i in range(customers)]
    accounts = ids(rows)
    half = len(accounts) // 2
    invoices = nested_invoices(accounts[:half])  # the view's invoices for half of them, the tables' for the rest
    data = tables(accounts[half:], 2 * (len(accounts) - half))
    table_messages = tables_messages(data)
    return [
        *accounts_messages(rows),
        *table_messages[: 1 + len(data.headers)],  # public-invoices
        *nested_messages(invoices),  # public-invoices_with_lines
        *table_messages[1 + len(data.headers):],  # public-line_items, public-payments
        *people_messages(people(accounts[::5])),
        *plans_messages(),
        *refunds_messages(refund_rows(invoices)),
        *events_messages(events(accounts[::3], len(accounts) // 10)),
    ]


def first_load_scenario(customers: int = 250) -> Run:
    """One first load of every object above `bulk_min_records` (200): what a new user's database sends."""
    return Run(first_load_messages(customers), {"streams": first_load_streams()})
