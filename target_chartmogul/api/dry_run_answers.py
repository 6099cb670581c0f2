"""How ChartMogul answers a write, object by object: the shapes a dry run answers in.

Each shape is the recorded one (tests/contract/fixtures; the fake answers the same): a created
customer, plan, invoice (its line items and transactions), contact or subscription event, and
what a PATCH makes of one. `api.dry_run` decides whether a write is answered or refused; this
module only builds the answer.
"""

from __future__ import annotations

import copy
import typing as t

from target_chartmogul.config.registry import DUPLICATE_INVOICE, DUPLICATE_LINE_ITEM, DUPLICATE_TRANSACTION
from target_chartmogul.values import dates

JSON = dict[str, t.Any]

# Customers: unset text answers "", the rest null (recorded).
CUSTOMER_TEXT = ("name", "email", "company")
CUSTOMER_NULLABLE = ("country", "state", "city", "zip", "lead_created_at", "free_trial_started_at", "owner",
                     "website_url")
CUSTOMER_DATES = ("lead_created_at", "free_trial_started_at")
PLAN_FIELDS = ("name", "interval_count", "interval_unit")
# What a line item answers for a field it was not sent, and what it echoes as sent (recorded).
LINE_ITEM_DEFAULTS: JSON = {"quantity": 1, "discount_code": "", "discount_amount_in_cents": 0, "tax_amount_in_cents": 0,
                            "transaction_fees_in_cents": 0, "account_code": ""}
LINE_ITEM_ECHOED = ("transaction_fees_currency", "discount_description", "event_order")
CONTACT_FIELDS = ("external_id", "position", "first_name", "last_name", "title", "email", "phone", "linked_in",
                  "twitter", "notes")
EVENT_FIELDS = ("customer_external_id", "subscription_set_external_id", "subscription_external_id", "plan_external_id",
                "event_date", "effective_date", "event_type", "quantity", "currency", "amount_in_cents",
                "tax_amount_in_cents", "retracted_event_id")


def answered_time(value: t.Any, *, millis: bool = True) -> t.Any:
    """A date as ChartMogul answers it (`2016-01-01T12:00:00.000Z`; events without milliseconds)."""
    return dates.as_answered(value, millis=millis)


def _default(value: t.Any, default: t.Any) -> t.Any:
    return default if value is None else value


# Customers ------------------------------------------------------------------------------------
def typed_custom(entries: t.Any) -> JSON:
    """`[{type, key, value}]` (create, POST attributes/custom) as the `{key: value}` map answers hold."""
    values: JSON = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            value = entry.get("value")
            values[entry["key"]] = answered_time(value) if entry.get("type") == "Timestamp" else value
    return values


def custom_map(values: t.Any) -> JSON:
    """`{key: value | {value, source}}` (PATCH, PUT attributes/custom) as values."""
    if not isinstance(values, dict):
        return {}
    return {str(k): v.get("value") if isinstance(v, dict) else v for k, v in values.items()}


def tag_union(held: t.Sequence[t.Any], added: t.Iterable[t.Any]) -> list[t.Any]:
    """Tags after adding some: idempotent and case-insensitive, as ChartMogul keeps them."""
    tags = list(held)
    seen = {str(tag).casefold() for tag in tags}
    for tag in added:
        text = str(tag).strip()
        if text and text.casefold() not in seen:
            tags.append(text)
            seen.add(text.casefold())
    return tags


def apply_customer(customer: JSON, body: t.Any, *, creating: bool = False) -> None:
    """A create's or PATCH's standard fields (a create sets every one) and `attributes` (replacing what is held)."""
    body = body if isinstance(body, dict) else {}
    for name in (*CUSTOMER_TEXT, *CUSTOMER_NULLABLE):
        if creating or name in body:
            value = answered_time(body.get(name)) if name in CUSTOMER_DATES else body.get(name)
            customer[name] = ("" if value is None else value) if name in CUSTOMER_TEXT else value
    if body.get("status"):
        customer["status"] = body["status"]
    if customer.get("country") not in (None, "US"):  # recorded: state "NY" with country DE came back null
        customer["state"] = None
    if isinstance(customer.get("address"), dict):  # a held customer's address: the parts answered as sent
        customer["address"].update(city=customer.get("city"), address_zip=customer.get("zip"))
    attributes = body.get("attributes")
    if creating or not isinstance(attributes, dict):
        return
    held = customer.setdefault("attributes", {})
    if "custom" in attributes:
        held["custom"] = custom_map(attributes["custom"])
    if "tags" in attributes:
        held["tags"] = tag_union([], attributes["tags"] or [])


def new_customer(uuid: str, ds: str, ext: str, body: JSON) -> JSON:
    """A created customer as the create answers it (recorded keys a dry run can know)."""
    given = body.get("attributes")
    attributes: JSON = given if isinstance(given, dict) else {}
    customer: JSON = {
        "uuid": uuid, "external_id": ext, "status": "New Lead", "customer-since": None,
        "attributes": {"custom": typed_custom(attributes.get("custom")), "clearbit": {}, "stripe": {},
                       "tags": tag_union([], attributes.get("tags") or [])},
        "data_source_uuid": ds, "data_source_uuids": [ds], "external_ids": [ext], "mrr": 0, "arr": 0,
        "billing-system-url": None,
    }
    apply_customer(customer, body, creating=True)
    return customer


def attributes_view(customer: JSON) -> JSON:
    """GET customers/{uuid}/attributes (recorded keys: no clearbit here, unlike the customer)."""
    held = customer.get("attributes") or {}
    return {"tags": held.get("tags", []), "stripe": held.get("stripe", {}), "custom": held.get("custom", {})}


# Plans, contacts, subscription events ---------------------------------------------------------
def new_plan(uuid: str, ds: str, ext: str, body: JSON) -> JSON:
    """A created plan."""
    return {"external_id": ext, **{name: body.get(name) for name in PLAN_FIELDS}, "data_source_uuid": ds, "uuid": uuid}


def apply_plan(plan: JSON, body: t.Any) -> None:
    """A plan PATCH."""
    if isinstance(body, dict):
        plan.update({name: body[name] for name in PLAN_FIELDS if name in body})


def contact_custom(held: JSON, entries: t.Any) -> JSON:
    """`custom` `[{key, value}]` applied to a contact's `{key: value}` map (a null value clears the key)."""
    custom = dict(held)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("key"), str):
            if entry.get("value") is None:
                custom.pop(entry["key"], None)
            else:
                custom[entry["key"]] = entry["value"]
    return custom


def new_contact(uuid: str, sent: JSON) -> JSON:
    """A created contact."""
    contact: JSON = {"uuid": uuid, "customer_uuid": sent["customer_uuid"], "customer_external_id": None,
                     "data_source_uuid": sent["data_source_uuid"]}
    contact.update({name: sent.get(name) for name in CONTACT_FIELDS})
    contact["position"] = sent.get("position") or 1
    contact["custom"] = contact_custom({}, sent.get("custom"))
    return contact


def apply_contact(contact: JSON, sent: t.Any) -> None:
    """A contact PATCH."""
    sent = sent if isinstance(sent, dict) else {}
    contact.update({name: sent[name] for name in CONTACT_FIELDS if name in sent})
    if "custom" in sent:
        contact["custom"] = contact_custom(contact.get("custom") or {}, sent["custom"])


def apply_event(event: JSON, sent: JSON, *, creating: bool = False) -> None:
    """An event envelope's fields (a create sets every one); dates as events answer them (no milliseconds)."""
    for name in EVENT_FIELDS:
        if creating or name in sent:
            value = sent.get(name)
            event[name] = answered_time(value, millis=False) if name.endswith("_date") else value


def new_event(event_id: str, sent: JSON) -> JSON:
    """A created subscription event (an `id`, `errors: {}`)."""
    event: JSON = {"id": event_id, "data_source_uuid": sent.get("data_source_uuid"),
                   "external_id": sent.get("external_id"), "errors": {}}
    apply_event(event, sent, creating=True)
    return event


# Invoices and transactions --------------------------------------------------------------------
def transaction(uuid: str, sent: JSON) -> JSON:
    """A transaction as nested in an invoice answer (amount null when it was left out)."""
    return {"uuid": uuid, "external_id": sent.get("external_id"), "amount_in_cents": sent.get("amount_in_cents"),
            "type": sent.get("type"), "date": answered_time(sent.get("date")), "result": sent.get("result"),
            "transaction_fees_in_cents": sent.get("transaction_fees_in_cents"),
            "transaction_fees_currency": sent.get("transaction_fees_currency")}


def standalone(tx: JSON) -> JSON:
    """A transaction as `POST /import/invoices/{uuid}/transactions` answers it (no fees currency, recorded)."""
    keys = ("external_id", "result", "amount_in_cents", "transaction_fees_in_cents", "uuid", "type", "date")
    return {key: tx.get(key) for key in keys}


def line_item(uuid: str, subscription: str | None, sent: t.Any) -> JSON:
    """A line item as answered: defaults for what was not sent, never `plan_external_id` (recorded)."""
    item: JSON = sent if isinstance(sent, dict) else {}
    view: JSON = {"uuid": uuid, "external_id": item.get("external_id"), "type": item.get("type")}
    if item.get("type") == "one_time":
        view["description"] = item.get("description")
    else:
        view["subscription_uuid"] = subscription
        view["subscription_external_id"] = item.get("subscription_external_id")
        view["prorated"] = _default(item.get("prorated"), False)
        view["proration_type"] = item.get("proration_type")
        for name in ("service_period_start", "service_period_end"):
            view[name] = answered_time(item.get(name))
        if item.get("subscription_set_external_id") is not None:
            view["subscription_set_external_id"] = item["subscription_set_external_id"]
        view["plan_uuid"] = item.get("plan_uuid")
    view["amount_in_cents"] = item.get("amount_in_cents")
    view.update({name: _default(item.get(name), default) for name, default in LINE_ITEM_DEFAULTS.items()})
    view.update({name: item.get(name) for name in LINE_ITEM_ECHOED})
    return view


def new_invoice(uuid: str, sent: JSON, lines: list[JSON], transactions: list[JSON]) -> JSON:
    """An invoice as the import answers it once saved (no `customer_uuid`, no data source: recorded)."""
    return {"uuid": uuid, "external_id": sent.get("external_id"), "date": answered_time(sent.get("date")),
            "due_date": answered_time(sent.get("due_date")), "currency": sent.get("currency"), "errors": {},
            "line_items": lines, "transactions": transactions}


def invoice_view(invoice: JSON, customer_uuid: str | None) -> JSON:
    """A created invoice as `GET /invoices` and `GET /invoices/{uuid}` answer it (with `customer_uuid`)."""
    view = {key: value for key, value in invoice.items() if key not in ("errors", "line_items", "transactions")}
    return {**view, "customer_uuid": customer_uuid, **{k: invoice[k] for k in ("errors", "line_items", "transactions")}}


def duplicate_invoice_errors(sent: JSON, held: JSON) -> JSON:
    """The errors of an invoice whose external id is taken; its line items and transactions that the held invoice
    has are taken too, named as ChartMogul names them (chartmogul-api.md §9).
    """
    errors: JSON = {"external_id": DUPLICATE_INVOICE}
    for name, message in (("line_items", DUPLICATE_LINE_ITEM), ("transactions", DUPLICATE_TRANSACTION)):
        taken = {part.get("external_id") for part in held.get(name) or [] if isinstance(part, dict)} - {None}
        if any(isinstance(part, dict) and part.get("external_id") in taken for part in sent.get(name) or []):
            errors[f"{name}.external_id"] = message
    return errors


def refused_invoice(sent: t.Any, errors: JSON) -> JSON:
    """An invoice the import did not save: echoed with its errors (as the fake does; the shape is not recorded)."""
    echo = copy.deepcopy(sent) if isinstance(sent, dict) else {}
    for name in ("uuid", "data_source_uuid", "customer_external_id", "collection_method"):
        echo.pop(name, None)
    for item in echo.get("line_items") or []:
        if isinstance(item, dict):
            item.pop("plan_external_id", None)
    echo.setdefault("external_id", None)
    echo["errors"] = errors
    return echo
