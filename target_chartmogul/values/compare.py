"""One rule for "changed": what ChartMogul holds against what a record asks for.

ChartMogul answers in its own conventions (see tests/contract, copied from its recorded
answers): unset text comes back as `""` or null, dates as `….000Z`, amounts it was never
sent as their defaults, line items in any order, and some fields are never echoed at all.
Comparing raw values would write changes that are not there, or miss real ones, so every
sink asks here. The rules:

- text: `""` and null are the same;
- dates: the same UTC instant to the second;
- amounts and counts: the same integer, a field we do not send compared with its default;
- a field ChartMogul does not answer with is not compared; for an invoice, the sync memory's hash of
  the content last written says whether such a field changed (`invoice_changes`);
- tags: case-insensitively.
"""

from __future__ import annotations

import datetime as dt
import decimal
import typing as t

from target_chartmogul.errors import RecordRejected
from target_chartmogul.values import attributes, dates
from target_chartmogul.values.text import is_blank

Obj = t.Mapping[str, t.Any]

# What ChartMogul answers for a line-item field it was not sent (recorded answers).
LINE_ITEM_DEFAULTS: dict[str, t.Any] = {
    "quantity": 1,
    "discount_amount_in_cents": 0,
    "tax_amount_in_cents": 0,
    "transaction_fees_in_cents": 0,
    "prorated": False,
}
LINE_ITEM_DATES = frozenset({"service_period_start", "service_period_end", "cancelled_at"})
LINE_ITEM_COMPARED = (
    "type",
    "amount_in_cents",
    "quantity",
    "plan_uuid",
    "subscription_external_id",
    "subscription_set_external_id",
    "service_period_start",
    "service_period_end",
    "cancelled_at",
    "prorated",
    "proration_type",
    "discount_code",
    "discount_amount_in_cents",
    "discount_description",
    "tax_amount_in_cents",
    "transaction_fees_in_cents",
    "transaction_fees_currency",
    "account_code",
    "description",
    "event_order",
)
INVOICE_DATES = frozenset({"date", "due_date"})
INVOICE_COMPARED = ("date", "due_date", "currency", "collection_method")
# Invoice fields no recorded answer carries: a change to them shows only in the sync memory's content hash.
INVOICE_UNANSWERED = ("collection_method", "customer_external_id")
TRANSACTION_COMPARED = ("type", "result", "date", "amount_in_cents", "transaction_fees_in_cents", "transaction_fees_currency")


def _instant(value: t.Any) -> dt.datetime | None:
    if is_blank(value):
        return None
    try:
        return dates.parse(value, "").replace(microsecond=0)
    except RecordRejected:
        return None


def same_value(ours: t.Any, held: t.Any, *, is_date: bool = False) -> bool:
    """Whether ChartMogul's `held` value is what we would send as `ours`."""
    if is_blank(ours) or is_blank(held):
        return is_blank(ours) and is_blank(held)
    if is_date:
        mine, theirs = _instant(ours), _instant(held)
        return mine is not None and mine == theirs
    if isinstance(ours, bool) or isinstance(held, bool):
        return isinstance(ours, bool) and isinstance(held, bool) and ours == held
    if isinstance(ours, (int, decimal.Decimal)) and isinstance(held, (int, float, decimal.Decimal)):
        return decimal.Decimal(str(ours)) == decimal.Decimal(str(held))
    if isinstance(ours, str) and isinstance(held, str):
        return ours == held
    return bool(ours == held)


class Difference(t.NamedTuple):
    """One field ChartMogul holds otherwise: its name (as the writing path words it), our value and ChartMogul's.

    The values are what the rule compared (a field we do not send as its default), so a report can show both.
    """

    name: str
    ours: t.Any
    held: t.Any


def field_differences(
    ours: Obj,
    held: Obj,
    *,
    dates: t.Collection[str] = (),
    defaults: t.Mapping[str, t.Any] | None = None,
    compared: t.Iterable[str] | None = None,
) -> list[Difference]:
    """The fields whose held value differs from ours, with both values; fields not in `held` are not compared.

    `compared` limits the fields looked at (default: the keys of `ours`); a field of
    `compared` that we do not send counts as its default, or as unset.
    """
    names = list(compared) if compared is not None else list(ours)
    found = []
    for name in names:
        if name not in held:
            continue
        mine = ours[name] if name in ours else (defaults or {}).get(name)
        if not same_value(mine, held[name], is_date=name in dates):
            found.append(Difference(name, mine, held[name]))
    return found


def changed_fields(
    ours: Obj,
    held: Obj,
    *,
    dates: t.Collection[str] = (),
    defaults: t.Mapping[str, t.Any] | None = None,
    compared: t.Iterable[str] | None = None,
) -> list[str]:
    """Names of the fields whose held value differs from ours (see `field_differences`)."""
    return [found.name for found in field_differences(ours, held, dates=dates, defaults=defaults, compared=compared)]


# Customers ---------------------------------------------------------------------------
def customer_differences(fields: Obj, held: Obj, date_fields: t.Collection[str]) -> list[Difference]:
    """Standard customer fields ChartMogul holds otherwise, with both values (fields it does not echo, such as
    primary_contact, are not compared).
    """
    return field_differences(fields, held, dates=date_fields)


def customer_changes(fields: Obj, held: Obj, date_fields: t.Collection[str]) -> list[str]:
    """Standard customer fields to PATCH (see `customer_differences`)."""
    return [found.name for found in customer_differences(fields, held, date_fields)]


def custom_attribute_differences(ours: t.Mapping[str, tuple[str, t.Any]], held: Obj | None) -> list[Difference]:
    """Custom attributes (key -> (type, value)) ChartMogul holds otherwise, with both values.

    A key ChartMogul does not hold counts as null, so a value that became null is no change
    when it is already gone. Customers and contacts both compare their attributes so.
    """
    have = held or {}
    return [Difference(key, value, have.get(key)) for key, (kind, value) in ours.items()
            if not attributes.same_value(kind, value, have.get(key))]


def _folded(tags: t.Iterable[str]) -> dict[str, str]:
    return {tag.casefold(): tag for tag in tags}


def tag_changes(
    wanted: t.Sequence[str],
    held: t.Iterable[str],
    owned: t.Iterable[str] | None,
    *,
    exact: bool,
) -> tuple[list[str], list[str]]:
    """(tags to add, tags to remove), compared case-insensitively.

    `exact`: ChartMogul mirrors the record, every other tag goes. Otherwise only tags the
    loader set earlier (`owned`, from the sync memory) and the record dropped are removed:
    tags ChartMogul sets itself and tags people add in the app stay.
    """
    have = _folded(held)
    want = _folded(wanted)
    add = [tag for key, tag in want.items() if key not in have]
    removable = have if exact else {key: have[key] for key in _folded(owned or ()) if key in have}
    remove = [tag for key, tag in removable.items() if key not in want]
    return add, remove


# Plans -------------------------------------------------------------------------------
PLAN_COMPARED = ("name", "interval_count", "interval_unit")


def plan_differences(ours: Obj, held: Obj) -> list[Difference]:
    """The plan fields ChartMogul holds differently, with both values."""
    return field_differences(ours, held, compared=PLAN_COMPARED)


def plan_changes(ours: Obj, held: Obj) -> dict[str, t.Any]:
    """The plan fields ChartMogul holds differently (for a PATCH)."""
    return {found.name: ours[found.name] for found in plan_differences(ours, held)}


# Invoices ----------------------------------------------------------------------------
def _line_key(item: Obj) -> tuple[t.Any, ...]:
    """A line item's content, normalised, for matching items that carry no external id."""
    key: list[t.Any] = []
    for name in LINE_ITEM_COMPARED:
        value = item.get(name, LINE_ITEM_DEFAULTS.get(name))
        if name in LINE_ITEM_DATES:
            value = _instant(value)
        elif is_blank(value):
            value = None
        elif isinstance(value, (int, decimal.Decimal)) and not isinstance(value, bool):
            value = decimal.Decimal(str(value))
        key.append(value)
    return tuple(key)


def _line_differences(ours: Obj, held: Obj, where: str) -> list[Difference]:
    fields = field_differences(ours, held, dates=LINE_ITEM_DATES, defaults=LINE_ITEM_DEFAULTS, compared=LINE_ITEM_COMPARED)
    return [Difference(f"{where}.{found.name}", found.ours, found.held) for found in fields]


def line_item_differences(ours: t.Sequence[Obj], held: t.Sequence[Obj]) -> list[Difference]:
    """What differs between our line items and ChartMogul's, with both sides: matched by external id, else by content.

    ChartMogul may answer line items in another order than they were sent (recorded). A line only
    one side has is named with where it is, and carries the whole line on that side (None on the other).
    """
    changes: list[Difference] = []
    held_by_id = {item["external_id"]: item for item in held if not is_blank(item.get("external_id"))}
    unmatched_held = [item for item in held if is_blank(item.get("external_id"))]
    for index, item in enumerate(ours):
        ext = item.get("external_id")
        where = f"line_items[{ext if not is_blank(ext) else index}]"
        if not is_blank(ext):
            match = held_by_id.pop(ext, None)
            if match is None:
                changes.append(Difference(f"{where} (not in ChartMogul)", item, None))
            else:
                changes.extend(_line_differences(item, match, where))
            continue
        key = _line_key(item)
        found = next((i for i, other in enumerate(unmatched_held) if _line_key(other) == key), None)
        if found is None:
            changes.append(Difference(f"{where} (no such line item in ChartMogul)", item, None))
        else:
            unmatched_held.pop(found)
    for ext, line in held_by_id.items():
        changes.append(Difference(f"line_items[{ext}] (only in ChartMogul)", None, line))
    if unmatched_held:
        changes.append(Difference(f"{len(unmatched_held)} line item(s) only in ChartMogul", None, unmatched_held))
    return changes


def invoice_differences(ours: Obj, held: Obj) -> list[Difference]:
    """What differs between an invoice body (plans resolved) and ChartMogul's invoice, with both values
    (transactions aside; fields ChartMogul does not answer with are not compared).
    """
    # collection_method only when we send it: what ChartMogul assumes without it is not recorded.
    compared = [name for name in INVOICE_COMPARED if name in ours or name != "collection_method"]
    changes = field_differences(ours, held, dates=INVOICE_DATES, compared=compared)
    return changes + line_item_differences(ours.get("line_items") or [], held.get("line_items") or [])


def invoice_changes(ours: Obj, held: Obj, *, written_differs: bool = False) -> list[str]:
    """What differs between an invoice body (plans resolved) and ChartMogul's invoice, transactions aside.

    `written_differs`: the sync memory says the content changed since it was written. When the
    fields ChartMogul answers with show no difference, the change is in one it does not echo
    (collection_method, the customer): still a change, named as far as it can be.
    """
    changes = [found.name for found in invoice_differences(ours, held)]
    if changes or not written_differs:
        return changes
    unanswered = " or ".join(name for name in INVOICE_UNANSWERED if name in ours and name not in held)
    return [f"{unanswered or 'a field'} (not in ChartMogul's answers)"]


def transaction_differences(ours: Obj, held: Obj) -> list[Difference]:
    """Fields of a transaction that ChartMogul holds differently, with both values (amount null means the full
    amount).
    """
    return field_differences(ours, held, dates=("date",), compared=TRANSACTION_COMPARED)


def transaction_changes(ours: Obj, held: Obj) -> list[str]:
    """Fields of a transaction that ChartMogul holds differently (see `transaction_differences`)."""
    return [found.name for found in transaction_differences(ours, held)]


def _transaction_key(tx: Obj) -> tuple[t.Any, ...]:
    amount = tx.get("amount_in_cents")
    return (tx.get("type"), tx.get("result"), _instant(tx.get("date")), None if amount is None else int(amount))


def missing_transactions(ours: t.Sequence[Obj], held: t.Sequence[Obj]) -> tuple[list[Obj], list[str]]:
    """(our transactions ChartMogul lacks, descriptions of those it holds differently).

    Matched by external id; one without an external id matches a held one of the same
    type, result, date and amount (it cannot be told apart otherwise).
    """
    held_by_id = {tx["external_id"]: tx for tx in held if not is_blank(tx.get("external_id"))}
    anonymous = [_transaction_key(tx) for tx in held if is_blank(tx.get("external_id"))]
    missing: list[Obj] = []
    differing: list[str] = []
    for tx in ours:
        ext = tx.get("external_id")
        if is_blank(ext):
            key = _transaction_key(tx)
            if key in anonymous:
                anonymous.remove(key)
            else:
                missing.append(tx)
            continue
        match = held_by_id.get(ext)
        if match is None:
            missing.append(tx)
        else:
            differing.extend(f"transactions[{ext}].{name}" for name in transaction_changes(tx, match))
    return missing, differing


def changed_transactions(ours: t.Sequence[Obj], held: t.Sequence[Obj]) -> list[tuple[Obj, Obj, dict[str, t.Any]]]:
    """(ours, held, the fields to change) of each transaction ChartMogul holds differently (by external id)."""
    held_by_id = {tx["external_id"]: tx for tx in held if not is_blank(tx.get("external_id"))}
    changed = []
    for tx in ours:
        match = held_by_id.get(tx.get("external_id")) if not is_blank(tx.get("external_id")) else None
        if match is not None:
            fields = transaction_changes(tx, match)
            if fields:
                changed.append((tx, match, {name: tx.get(name) for name in fields}))
    return changed


# Subscription events -----------------------------------------------------------------
EVENT_DATES = frozenset({"event_date", "effective_date"})


def event_differences(ours: Obj, held: Obj) -> list[Difference]:
    """Event fields ChartMogul holds differently, with both values.

    Unset numbers and texts are answered as "" or null (both recorded), dates as `…Z`; a
    field ChartMogul does not answer with (`event_order`) is not compared.
    """
    return field_differences(ours, held, dates=EVENT_DATES)


def event_changes(ours: Obj, held: Obj) -> list[str]:
    """Event fields ChartMogul holds differently (see `event_differences`)."""
    return [found.name for found in event_differences(ours, held)]


# Contacts ------------------------------------------------------------------------------
def contact_differences(fields: Obj, held: Obj) -> list[Difference]:
    """Standard contact fields ChartMogul holds differently, with both values (a column that became null clears
    its field).
    """
    return field_differences(fields, held)


def contact_changes(fields: Obj, held: Obj) -> list[str]:
    """Standard contact fields ChartMogul holds differently (see `contact_differences`)."""
    return [found.name for found in contact_differences(fields, held)]


def contact_custom_changes(ours: t.Mapping[str, tuple[str, t.Any]], held: Obj | None) -> list[str]:
    """Keys of the contact's custom attributes (key -> (type, value)) that ChartMogul holds otherwise (see
    `custom_attribute_differences`).
    """
    return [found.name for found in custom_attribute_differences(ours, held)]
