"""Invoice records (headers, line items, nested transactions) to ChartMogul import payloads.

Line items arrive in the invoice record (a jsonb array, a json_agg view, a JSON string),
or as rows of their own stream (`object: line_items`, see mapping/line_items.py) when the
header has no `line_items` column. Plan references may be given by `plan_external_id`;
the sink resolves them to `plan_uuid`. Amounts are cents, or currency units with
`amount_unit: units` (converted exactly, by the invoice's currency).
"""

from __future__ import annotations

import dataclasses
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.mapping.common import (
    amount_column,
    json_value,
    optional_text,
    required_data_source,
    required_text,
)
from target_chartmogul.mapping.transactions import map_transaction
from target_chartmogul.values.booleans import boolean
from target_chartmogul.values.dates import timestamp_text
from target_chartmogul.values.numbers import amount_cents, integer, parse
from target_chartmogul.values.text import choice, currency, is_blank, text

LINE_ITEM_TYPES = ("subscription", "one_time", "trial")
PRORATION_TYPES = ("differential", "differential_mrr", "full")
CENT_FIELDS = ("amount_in_cents", "discount_amount_in_cents", "tax_amount_in_cents", "transaction_fees_in_cents")
DATE_FIELDS = ("service_period_start", "service_period_end", "cancelled_at")
TEXT_FIELDS = (
    "subscription_external_id",
    "subscription_set_external_id",
    "discount_code",
    "discount_description",
    "account_code",
    "external_id",
    "description",
)
# A `status` column's values that ChartMogul's invoice status takes; others (paid, open, draft) change nothing.
STATUSES = {"voided": "voided", "void": "voided", "written_off": "written_off", "uncollectible": "written_off"}


@dataclasses.dataclass
class InvoicePayload:
    """One invoice, its customer reference, and its line items awaiting plan resolution."""

    data_source_uuid: str
    external_id: str
    customer_uuid: str | None
    customer_external_id: str | None
    body: dict[str, t.Any]
    plan_refs: list[tuple[int, str]]  # (line item index, plan_external_id) to resolve
    status: str | None = None  # voided / written_off, applied after the import
    lines_from_stream: bool = False  # the header had no line_items: its lines come from a line_items stream
    nested_payments: list[str] = dataclasses.field(default_factory=list)  # payments of other streams nested in
    stream_lines: list[t.Any] = dataclasses.field(default_factory=list)  # LineParts that arrived for it
    fingerprint: str | None = None  # what the sync memory holds (a Digest), taken before resolution
    content: str | None = None  # hash of the header and lines alone (no payments, no status), taken with it

    @property
    def transactions(self) -> list[dict[str, t.Any]]:
        """The nested transactions' bodies."""
        return list(self.body.get("transactions") or [])


def map_line_item(
    item: t.Any, prefix: str, *, unit: str = "cents", currency_code: str | None = None
) -> tuple[dict[str, t.Any], str | None]:
    """One line item's body, and the plan_external_id still to resolve (if it names its plan that way).

    With `unit: units` the amounts are converted in `currency_code`; without one they are only checked as numbers
    and left out (`check_line_item`: a line of the line_items stream before its invoice is known).
    """
    where = prefix.rstrip(".")
    if not isinstance(item, dict):
        raise RecordRejected(f"field '{where}' must be an object", field=where)
    if is_blank(item.get("type")):
        raise RecordRejected(f"field '{prefix}type' is required", field=f"{prefix}type")
    kind = choice(item["type"], f"{prefix}type", LINE_ITEM_TYPES)
    body: dict[str, t.Any] = {"type": kind, **_line_item_values(item, prefix, unit, currency_code)}
    if kind not in ("subscription", "trial"):
        return body, None
    if "subscription_external_id" not in body:
        msg = f"field '{prefix}subscription_external_id' is required for a {kind} line item"
        raise RecordRejected(msg, field=prefix + "subscription_external_id")
    if not is_blank(item.get("plan_uuid")):
        body["plan_uuid"] = text(item["plan_uuid"], prefix + "plan_uuid").strip()
        return body, None
    if not is_blank(item.get("plan_external_id")):
        return body, text(item["plan_external_id"], prefix + "plan_external_id").strip()
    msg = f"field '{prefix}plan_uuid' or '{prefix}plan_external_id' is required for a {kind} line item"
    raise RecordRejected(msg, field=prefix + "plan_uuid")


def check_line_item(item: t.Any, *, unit: str) -> None:
    """A line row's checks on arrival, before its invoice (and so its currency) is known: RecordRejected naming the
    field. Amounts in currency units must only be numbers here; their decimals are checked against the invoice's
    currency when the invoice is assembled (`map_line_item`), so a KWD line of 1.234 is not refused as too precise.
    """
    map_line_item(item, "", unit=unit, currency_code=None)


def _line_item_values(
    item: t.Mapping[str, t.Any], prefix: str, unit: str, currency_code: str | None
) -> dict[str, t.Any]:
    """The amounts, dates, texts and flags of a line item that are set (unset ones are not sent)."""
    body: dict[str, t.Any] = dict(_amounts(item, prefix, unit, currency_code))
    for name in DATE_FIELDS:
        if not is_blank(item.get(name)):
            body[name] = timestamp_text(item[name], prefix + name)
    for name in TEXT_FIELDS:
        if not is_blank(item.get(name)):
            body[name] = text(item[name], prefix + name).strip()
    for name in ("quantity", "event_order"):
        if item.get(name) is not None:
            body[name] = integer(item[name], prefix + name)
    if item.get("prorated") is not None:
        body["prorated"] = boolean(item["prorated"], prefix + "prorated")
    if not is_blank(item.get("proration_type")):
        body["proration_type"] = choice(item["proration_type"], prefix + "proration_type", PRORATION_TYPES)
    if not is_blank(item.get("transaction_fees_currency")):
        body["transaction_fees_currency"] = currency(
            item["transaction_fees_currency"], prefix + "transaction_fees_currency"
        )
    if len(body.get("account_code", "")) > 30:
        raise RecordRejected(
            f"field '{prefix}account_code' is longer than 30 characters", field=prefix + "account_code"
        )
    return body


def _amounts(item: t.Mapping[str, t.Any], prefix: str, unit: str, currency_code: str | None) -> dict[str, int]:
    """A line item's amounts in cents; in units without a currency (`check_line_item`) only read as numbers."""
    body: dict[str, int] = {}
    for name in CENT_FIELDS:
        column = amount_column(item, name, unit)
        if column is None:
            continue
        if unit == "units" and currency_code is None:
            parse(item[column], prefix + column, what="an amount")
            continue
        # a negative amount is a credit (proration on a downgrade)
        body[name] = amount_cents(
            item[column], prefix + column, unit=unit, currency=currency_code, allow_negative=name == "amount_in_cents"
        )
    return body


def map_invoice(
    record: t.Mapping[str, t.Any], default_data_source_uuid: str | None, *, unit: str = "cents"
) -> InvoicePayload:
    """Build the payload, or raise RecordRejected naming the field.

    Without a `line_items` column the payload has no line items yet (`lines_from_stream`):
    the sink adds them from the line_items stream before importing.
    """
    ds = required_data_source(record, default_data_source_uuid)
    external_id = required_text(record, "external_id")
    customer_uuid = optional_text(record, "customer_uuid")
    customer_external_id = optional_text(record, "customer_external_id")
    if not customer_uuid and not customer_external_id:
        raise RecordRejected(
            "field 'customer_uuid' or 'customer_external_id' is required", field="customer_external_id"
        )
    body = _header(record, ds, external_id)
    if customer_external_id:
        body["customer_external_id"] = customer_external_id
    plan_refs: list[tuple[int, str]] = []
    from_stream = "line_items" not in record
    if not from_stream:
        body["line_items"], plan_refs = _line_items(record, unit, body["currency"])
    transactions = _nested_transactions(record, unit, body["currency"])
    if transactions:
        body["transactions"] = transactions
    return InvoicePayload(
        ds, external_id, customer_uuid, customer_external_id, body, plan_refs, requested_status(record), from_stream
    )


def requested_status(record: t.Mapping[str, t.Any]) -> str | None:
    """The status the record asks ChartMogul to set (voided, written_off), or None (paid, open, blank)."""
    if is_blank(record.get("status")):
        return None
    return STATUSES.get(text(record["status"], "status").strip().lower())


def _header(record: t.Mapping[str, t.Any], ds: str, external_id: str) -> dict[str, t.Any]:
    for name in ("date", "currency"):
        if is_blank(record.get(name)):
            raise RecordRejected(f"field '{name}' is required", field=name)
    body: dict[str, t.Any] = {
        "external_id": external_id,
        "date": timestamp_text(record["date"], "date"),
        "currency": currency(record["currency"]),
        "data_source_uuid": ds,
    }
    if not is_blank(record.get("due_date")):
        body["due_date"] = timestamp_text(record["due_date"], "due_date")
    if not is_blank(record.get("collection_method")):
        body["collection_method"] = choice(record["collection_method"], "collection_method", ("automatic", "manual"))
    return body


def _line_items(
    record: t.Mapping[str, t.Any], unit: str, currency_code: str
) -> tuple[list[dict[str, t.Any]], list[tuple[int, str]]]:
    """The line items' bodies, and (index, plan_external_id) of those whose plan is still to resolve."""
    items = json_value(record.get("line_items"), "line_items")
    if not isinstance(items, list) or not items:
        raise RecordRejected("field 'line_items' must hold at least one line item", field="line_items")
    line_items: list[dict[str, t.Any]] = []
    plan_refs: list[tuple[int, str]] = []
    for index, item in enumerate(items):
        line, plan_external_id = map_line_item(item, f"line_items[{index}].", unit=unit, currency_code=currency_code)
        line_items.append(line)
        if plan_external_id:
            plan_refs.append((index, plan_external_id))
    return line_items, plan_refs


def _nested_transactions(record: t.Mapping[str, t.Any], unit: str, currency_code: str) -> list[dict[str, t.Any]]:
    nested = json_value(record.get("transactions"), "transactions")
    if not nested:
        return []
    if not isinstance(nested, list):
        raise RecordRejected("field 'transactions' must be an array", field="transactions")
    return [
        map_transaction(
            tr if isinstance(tr, dict) else {},
            f"transactions[{i}].",
            require_external_id=False,
            unit=unit,
            currency_code=currency_code,
        )
        for i, tr in enumerate(nested)
    ]
