"""How stored objects look in HTTP answers: the shapes ChartMogul's recorded exchanges show.

The store keeps what it needs for its rules (an invoice's data source, the customer's
primary contact, ...); real answers leave some of that out and fill unset fields with
``""`` or ``null`` in a fixed pattern. Keeping the rendering here, apart from the rules,
lets tests read the store freely while the HTTP answers stay as recorded
(see ``tests/contract/README.md`` for the recordings behind each shape).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

JSON = dict[str, Any]
InvoiceAnswer = Literal["import", "get", "list", "customer_list"]

APP_URL = "https://app.chartmogul.com/#/customers/"
TEXT_AS_EMPTY = ("name", "email", "company")  # unset -> "" (every recording)
NULLABLE = ("country", "state", "zip", "lead_created_at", "free_trial_started_at", "owner", "website_url")
INVOICE_HANDLING: JSON = {
    "create_subscription_when_invoice_is": "open",
    "update_subscription_when_invoice_is": "open",
    "prevent_subscription_for_invoice_voided": True,
    "prevent_subscription_for_invoice_refunded": False,
    "prevent_subscription_for_invoice_written_off": True,
}


def _label(customer: JSON) -> str:
    """The readable tail of ``chartmogul-url``: company (or name) with runs of other characters as ``_``."""
    text = customer.get("company") or customer.get("name") or ""
    return re.sub(r"[^A-Za-z0-9]+", "_", str(text)).strip("_")


def customer_since(moment: datetime | None) -> str | None:
    """``customer-since`` is the one date answered with ``+00:00`` instead of ``.000Z``."""
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")


def customer_view(customer: JSON, *, status: str, since: datetime | None, unset_city: str | None) -> JSON:
    """A stored customer as answered: recorded keys only, no ``primary_contact``."""

    def text(name: str) -> Any:
        value = customer.get(name)
        return "" if value is None else value

    city = customer.get("city")
    if city is None:
        city = unset_city
    nullable = {name: customer.get(name) for name in NULLABLE}
    attributes = customer["attributes"]
    return {
        "id": customer["id"],
        "uuid": customer["uuid"],
        "external_id": customer["external_id"],
        "name": text("name"),
        "email": text("email"),
        "status": status,
        "customer-since": customer_since(since),
        "attributes": {
            "custom": dict(attributes["custom"]),
            "clearbit": dict(attributes["clearbit"]),
            "stripe": dict(attributes["stripe"]),
            "tags": list(attributes["tags"]),
        },
        "data_source_uuid": customer["data_source_uuid"],
        "data_source_uuids": list(customer["data_source_uuids"]),
        "external_ids": list(customer["external_ids"]),
        "company": text("company"),
        "country": nullable["country"],
        "state": nullable["state"],
        "city": city,
        "zip": nullable["zip"],
        "lead_created_at": nullable["lead_created_at"],
        "free_trial_started_at": nullable["free_trial_started_at"],
        "address": {"country": nullable["country"], "state": nullable["state"], "city": city, "address_zip": nullable["zip"]},
        "mrr": customer["mrr"],
        "arr": customer["arr"],
        "billing-system-url": customer["billing-system-url"],
        "chartmogul-url": f"{APP_URL}{customer['id']}-{_label(customer)}",
        "billing-system-type": customer["billing-system-type"],
        "currency": customer["currency"],
        "currency-sign": customer["currency-sign"],
        "owner": nullable["owner"],
        "website_url": nullable["website_url"],
    }


def _or(item: JSON, name: str, default: Any) -> Any:
    value = item.get(name)
    return default if value is None else value


def line_item_view(item: JSON, *, balance_transfer: bool = False) -> JSON:
    """A line item with ChartMogul's defaults for what was not sent; never ``plan_external_id``.

    ``balance_transfer`` (null) appears only in ``GET /invoices`` listings, as recorded.
    """
    view: JSON = {"uuid": item["uuid"], "external_id": item.get("external_id"), "type": item.get("type")}
    if item.get("type") == "one_time":
        view["description"] = item.get("description")
    else:
        view["subscription_uuid"] = item.get("subscription_uuid")
        view["subscription_external_id"] = item.get("subscription_external_id")
        view["prorated"] = _or(item, "prorated", False)
        view["proration_type"] = item.get("proration_type")
        view["service_period_start"] = item.get("service_period_start")
        view["service_period_end"] = item.get("service_period_end")
        if item.get("subscription_set_external_id") is not None:
            view["subscription_set_external_id"] = item["subscription_set_external_id"]
        view["plan_uuid"] = item.get("plan_uuid")
    view.update(
        {
            "amount_in_cents": item.get("amount_in_cents"),
            "quantity": _or(item, "quantity", 1),
            "discount_code": _or(item, "discount_code", ""),
            "discount_amount_in_cents": _or(item, "discount_amount_in_cents", 0),
            "tax_amount_in_cents": _or(item, "tax_amount_in_cents", 0),
            "transaction_fees_in_cents": _or(item, "transaction_fees_in_cents", 0),
            "account_code": _or(item, "account_code", ""),
            "transaction_fees_currency": item.get("transaction_fees_currency"),
            "discount_description": item.get("discount_description"),
            "event_order": item.get("event_order"),
        }
    )
    if balance_transfer:
        view["balance_transfer"] = None
    return view


def transaction_view(tx: JSON, *, standalone: bool = False) -> JSON:
    """A transaction as nested in an invoice, or as the standalone create answers it.

    The standalone answer (``POST /import/invoices/{uuid}/transactions``) has no
    ``transaction_fees_currency`` key, as recorded in 2025.
    """
    if standalone:
        return {
            "external_id": tx["external_id"],
            "result": tx["result"],
            "amount_in_cents": tx["amount_in_cents"],
            "transaction_fees_in_cents": tx["transaction_fees_in_cents"],
            "uuid": tx["uuid"],
            "type": tx["type"],
            "date": tx["date"],
        }
    return {
        "uuid": tx["uuid"],
        "external_id": tx["external_id"],
        "amount_in_cents": tx["amount_in_cents"],
        "type": tx["type"],
        "date": tx["date"],
        "result": tx["result"],
        "transaction_fees_in_cents": tx["transaction_fees_in_cents"],
        "transaction_fees_currency": tx.get("transaction_fees_currency"),
    }


def invoice_status(invoice: JSON) -> str:
    """`voided`/`written_off` once set through the API, else `paid` with a successful payment, else `open`."""
    if invoice.get("status") in ("voided", "written_off"):
        return str(invoice["status"])
    txs = invoice["transactions"]
    return "paid" if any(t.get("type") == "payment" and t.get("result") == "successful" for t in txs) else "open"


def invoice_view(invoice: JSON, answer: InvoiceAnswer, *, reverse_line_items: bool = False) -> JSON:
    """An invoice as each endpoint answers it: never ``data_source_uuid``,
    ``customer_external_id`` or ``collection_method``; ``customer_uuid`` only in
    ``GET /invoices`` and ``GET /invoices/{uuid}`` (the import answer and the per-customer
    listing leave it out).
    """
    items = list(invoice["line_items"])
    if reverse_line_items:
        items.reverse()
    line_items = [line_item_view(i, balance_transfer=answer == "list") for i in items]
    transactions = [transaction_view(tx) for tx in invoice["transactions"]]
    view: JSON = {
        "uuid": invoice["uuid"],
        "external_id": invoice["external_id"],
        "date": invoice["date"],
        "due_date": invoice["due_date"],
        "currency": invoice["currency"],
    }
    if answer in ("get", "list"):
        view["customer_uuid"] = invoice["customer_uuid"]
    view.update(errors={}, line_items=line_items, transactions=transactions)
    return view


def data_source_view(source: JSON, query: dict[str, str], *, processed: int, auto_churn: bool) -> JSON:
    """A data source, plus the blocks the ``with_*=true`` flags ask for (recorded 2025)."""
    view = dict(source)
    if query.get("with_processing_status") == "true":
        view["processing_status"] = {"processed": processed, "failed": 0, "pending": 0}
    if query.get("with_auto_churn_subscription_setting") == "true":
        view["auto_churn_subscription_setting"] = {"enabled": auto_churn, "interval": 30}
    if query.get("with_invoice_handling_setting") == "true":
        view["invoice_handling_setting"] = {"manual": dict(INVOICE_HANDLING), "automatic": dict(INVOICE_HANDLING)}
    return view
