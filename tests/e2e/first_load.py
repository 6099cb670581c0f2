"""The first load of a billing database shaped as users have it (sql/accounts.sql), for test_first_load.py.

What the database holds, how the target is configured for it (the same in the plain pipe and in
Meltano), the changes of the incremental run and the writes they must cost.
"""

from __future__ import annotations

import json
import pathlib
import typing as t

import yaml

from tests.e2e.compare import Layout
from tests.e2e.postgres import Database
from tests.fake_chartmogul import FakeChartMogul
from tests.running import API_KEY, REPO

CUSTOM_ATTRIBUTES = {
    "seats": "Integer",
    "contract_value": "Decimal",
    "is_enterprise": "Boolean",
    "contract_start": "Timestamp",  # a date column
    "last_login_at": "Timestamp",
    "segment": "String",
}
# Every standard field of ChartMogul's Create a Customer the target maps (target_chartmogul/mapping/customers.py).
CUSTOMER_FIELDS = (
    "name", "email", "company", "country", "state", "city", "zip", "website_url", "owner",
    "lead_created_at", "free_trial_started_at", "primary_contact",
)
LAYOUT = Layout(schema="accounts", customer_fields=CUSTOMER_FIELDS, custom_attributes=CUSTOM_ATTRIBUTES,
                line_items="invoice_lines")

# Invoices as one view row with nested lines and payments (the plain pipe) or as three tables (Meltano).
VIEW_STREAMS = ("accounts-plans", "accounts-customers", "accounts-invoices_with_lines", "accounts-refunds")
TABLE_STREAMS = ("accounts-plans", "accounts-customers", "accounts-invoices", "accounts-invoice_lines",
                 "accounts-payments", "accounts-refunds")
TARGET_STREAMS: dict[str, dict[str, t.Any]] = {
    "accounts-plans": {"object": "plans"},
    "accounts-customers": {"object": "customers", "mode": "upsert", "custom_attributes": list(CUSTOM_ATTRIBUTES)},
    "accounts-invoices_with_lines": {"object": "invoices"},
    "accounts-invoices": {"object": "invoices"},
    "accounts-invoice_lines": {"object": "line_items"},
    "accounts-payments": {"object": "transactions"},
    "accounts-refunds": {"object": "transactions"},
}


def target_streams(selected: t.Iterable[str]) -> dict[str, dict[str, t.Any]]:
    return {stream: TARGET_STREAMS[stream] for stream in selected}


def assert_shape(db: Database) -> None:
    """The database is what the tests claim: a first load past the bulk threshold, customers carrying every
    field (website_url and owner included), attributes of every type, tags, blanks and non-ASCII text.
    """
    counts = db.rows(
        "SELECT (SELECT count(*) FROM accounts.customers) AS customers,"
        " (SELECT count(*) FROM accounts.customers WHERE website_url <> '') AS with_website,"
        " (SELECT count(*) FROM accounts.customers WHERE owner IS NOT NULL) AS with_owner,"
        " (SELECT count(*) FROM accounts.customers WHERE primary_contact IS NOT NULL) AS with_contact,"
        " (SELECT count(*) FROM accounts.customers WHERE state LIKE 'US-%') AS with_state,"
        " (SELECT count(*) FROM accounts.customers WHERE cardinality(tags) > 0) AS with_tags,"
        " (SELECT count(*) FROM accounts.customers WHERE city = '' OR email = '' OR segment = '') AS with_blanks,"
        " (SELECT count(*) FROM accounts.customers WHERE name ~ '[^\\x01-\\x7f]') AS non_ascii_names,"
        " (SELECT count(*) FROM accounts.plans) AS plans,"
        " (SELECT count(*) FROM accounts.invoices) AS invoices,"
        " (SELECT count(*) FROM accounts.invoice_lines) AS lines,"
        " (SELECT count(*) FROM accounts.payments) AS payments,"
        " (SELECT count(*) FROM accounts.refunds) AS refunds"
    )[0]
    assert counts == {
        "customers": 320, "with_website": 241, "with_owner": 208, "with_contact": 208, "with_state": 45,
        "with_tags": 242, "with_blanks": 81, "non_ascii_names": 200, "plans": 6, "invoices": 1017,
        "lines": 1142, "payments": 1060, "refunds": 57,
    }, counts


def write_target_config(workdir: pathlib.Path, fake: FakeChartMogul, ds: str, streams: t.Iterable[str],
                        memory: str) -> None:
    """config.json of the target with the defaults users have (bulk_import auto from 200 records)."""
    (workdir / "config.json").write_text(json.dumps({
        "api_key": API_KEY,
        "api_url": fake.url,
        "data_source_uuid": ds,
        "streams": target_streams(streams),
        "rejects_path": str(workdir / "rejects.jsonl"),
        "ledger_url": f"sqlite:///{workdir / memory}",
        "request_timeout": 10,
    }))


def meltano_project() -> str:
    """The repo's meltano.yml pointed at the accounts schema, invoices from their three tables."""
    project = yaml.safe_load((REPO / "meltano.yml").read_text())
    tap = next(p for p in project["plugins"]["extractors"] if p["name"] == "tap-postgres")
    tap["config"]["filter_schemas"] = ["accounts"]
    tap["select"] = [f"{stream}.*" for stream in TABLE_STREAMS]
    tap["metadata"] = {stream: {"replication-method": "INCREMENTAL", "replication-key": "updated_at"}
                       for stream in TABLE_STREAMS}
    loader = next(p for p in project["plugins"]["loaders"] if p["name"] == "target-chartmogul")
    loader["config"]["streams"] = target_streams(TABLE_STREAMS)
    return yaml.safe_dump(project, sort_keys=False, allow_unicode=True)


# The incremental run: a customer renamed, another's attribute and a tag changed, a new invoice (with its
# line and payment), a new refund of an old invoice.
CHANGES = """
UPDATE accounts.customers SET name = 'Müller & Söhne Holding AG', updated_at = now() WHERE external_id = 'acct_0008';
UPDATE accounts.customers SET seats = 90, tags = '{ベータ,Bestandskunde}', updated_at = now()
 WHERE external_id = 'acct_0012';
INSERT INTO accounts.invoices VALUES ('inv_0020_6', 'acct_0020', '2028-01-21 00:00:00+00', 'USD', NULL, now());
INSERT INTO accounts.invoice_lines VALUES
    ('li_0020_6_1', 'inv_0020_6', 1, 'subscription', 'pl_business_y', 'sub_0020', '2028-01-21 00:00:00+00',
     '2029-01-21 00:00:00+00', 1, 99000, 0, 0, 'Business (yearly)', now());
INSERT INTO accounts.payments VALUES
    ('pay_0020_6_1', 'inv_0020_6', 'payment', 'successful', '2028-01-22 00:00:00+00', 99000, now());
INSERT INTO accounts.refunds VALUES
    ('ref_0030_1', 'inv_0030_1', 'refund', 'successful', '2023-02-20 00:00:00+00', 1000, now());
"""
CHANGED_CUSTOMERS = ("acct_0008", "acct_0012")


def assert_changes_apply(db: Database) -> None:
    """The rows CHANGES touches are as it expects before it runs."""
    rows = db.rows("SELECT external_id, seats, tags FROM accounts.customers WHERE external_id = 'acct_0012'")
    assert rows == [{"external_id": "acct_0012", "seats": 85, "tags": ["trial", "ベータ"]}], rows
    assert db.rows("SELECT external_id FROM accounts.invoices WHERE external_id LIKE 'inv_0020_%' ORDER BY 1")[-1] == {
        "external_id": "inv_0020_5"}
    assert db.rows("SELECT count(*) AS n FROM accounts.payments WHERE invoice_external_id = 'inv_0030_1'") == [{"n": 1}]


# What the incremental run must write, and nothing else (tests/e2e/compare.py: described_writes).
CHANGE_WRITES = sorted([
    "PATCH customers/acct_0008 -> 200",
    "PATCH customers/acct_0012 -> 200",
    'PUT customers/acct_0012/attributes/custom {"custom": {"seats": 90}} -> 200',
    'POST customers/acct_0012/attributes/tags {"tags": ["Bestandskunde"]} -> 200',
    'DELETE customers/acct_0012/attributes/tags {"tags": ["trial"]} -> 200',
    "POST import/customers/acct_0020/invoices [inv_0020_6] -> 201",
    "POST import/invoices/inv_0030_1/transactions [ref_0030_1] -> 201",
])
